//! plexus-k8s: plexus' networks as Kubernetes objects, and the objects of the systems it
//! replaces, as Rust types with their CRDs.
//!
//! - [`network`]: `plexus.io/v1` `ClusterNetwork` (cluster-scoped, `AllowedTenants`) and
//!   `TenantNetwork` (namespaced), derived with `kube::CustomResource`, with short names
//!   and printer columns (CIDR, V6, Allocated, Free).
//! - [`tenant`]: `plexus.io/v1` `TenantConfig`.
//! - [`danm`]: DANM's `danm.k8s.io/v1` `DanmNet`, `ClusterNetwork`, `TenantNetwork`, read
//!   as DANM writes them.
//! - [`nad`]: NPWG's `NetworkAttachmentDefinition` and a reader of its CNI configuration
//!   that recognises what plexus serves.
//! - [`crds`]: every CRD above, rendered into `deploy/crds/` by the `crdgen` binary.
//!
//! Pods asking for networks (pure, I/O-free):
//! - [`pod`]: the pod a CNI call is for (`CNI_ARGS`), the UID check, its request
//!   annotation (parsed by `plexus_model`) and its network-status;
//! - [`catalog`]: the objects a request may name, in lookup order, and the fetched ones;
//! - [`resolve`]: requests to objects (DANM's default network, AllowedTenants, NAD
//!   namespaces and isolation), with the fetch plan;
//! - [`status`]: the NPWG `k8s.v1.cni.cncf.io/network-status` annotation.
//!
//! And the I/O: `api` (feature `client`, on by default): kube-rs reads of the pod and the
//! objects, and the network-status write with the pod's UID as precondition; `cache`: the
//! node agent's watch cache of its pods and the networks, with the API as fallback. Every error
//! of these modules maps onto one CNI code (`to_cni_error`, `docs/errors.md`).
//!
//! `plexus_model` is the one source of rules: each network type converts into the model's
//! [`NetworkObject`] ([`NetworkResource::to_model`]) and is checked by
//! `plexus_model::validate` ([`NetworkResource::validate`]); the CRD schemas check the shape
//! on the API server with the model's bounds.
//!
//! Kubernetes versions: types come from `k8s-openapi`'s earliest API level, and only APIs
//! a 1.20 API server serves are used (the CRDs are `apiextensions.k8s.io/v1` with
//! structural schemas). Tested against 1.20.2 built from Debian's source
//! (`scripts/with-kube`, `docs/kubernetes.md`).
//!
//! ```
//! use plexus_k8s::NetworkResource;
//! use plexus_k8s::network::{ClusterNetwork, ClusterNetworkSpec, NetworkOptions};
//! use plexus_model::Operation;
//!
//! let net = ClusterNetwork::new("blue", ClusterNetworkSpec {
//!     network_id: "blue".into(),
//!     options: NetworkOptions { cidr: "10.0.0.0/8".into(), ..Default::default() },
//!     ..Default::default()
//! });
//! let valid = net.validate(Operation::Create)?;
//! assert_eq!(valid.qualified_name(), "blue");
//!
//! let mut bad = net.clone();
//! bad.spec.options.allocation_pool.start = "11.0.0.1".into();
//! let errors = bad.validate(Operation::Create).unwrap_err();
//! assert!(errors.has(plexus_model::Rule::PoolAddressOutside));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

#[cfg(feature = "client")]
pub mod api;
#[cfg(feature = "client")]
pub mod cache;
pub mod catalog;
mod cni;
pub mod crds;
pub mod danm;
mod foreign;
pub mod nad;
pub mod network;
pub mod pod;
pub mod resolve;
pub mod status;
pub mod tenant;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use plexus_model::{NetworkObject, Operation, ValidNetwork, ValidationErrors};

pub use danm::{DanmClusterNetwork, DanmNet, DanmTenantNetwork};
pub use nad::{NadConfig, NadError, NetworkAttachmentDefinition, PlexusAttachment};
pub use network::{ClusterNetwork, NetworkStatus, TenantNetwork};
pub use tenant::TenantConfig;

/// plexus' API group.
pub const PLEXUS_GROUP: &str = "plexus.io";
/// `apiVersion` of plexus' objects.
pub const PLEXUS_API_VERSION: &str = "plexus.io/v1";

/// A network object of any of the five network kinds (plexus' two, DANM's three).
pub trait NetworkResource {
    /// The object as `plexus_model` reads it (its `apiVersion`, kind, metadata and spec).
    fn to_model(&self) -> NetworkObject;

    /// Check the object against every rule of `plexus_model`: the parsed network with
    /// DANM's defaults applied, or every broken rule with its field path.
    fn validate(&self, op: Operation) -> Result<ValidNetwork, ValidationErrors> {
        plexus_model::validate(&self.to_model(), op)
    }
}

/// The metadata `plexus_model` keeps.
pub(crate) fn model_meta(meta: &ObjectMeta) -> plexus_model::ObjectMeta {
    plexus_model::ObjectMeta {
        name: meta.name.clone().unwrap_or_default(),
        namespace: meta.namespace.clone(),
        labels: meta.labels.clone().unwrap_or_default(),
        annotations: meta.annotations.clone().unwrap_or_default(),
        uid: meta.uid.clone(),
        resource_version: meta.resource_version.clone(),
    }
}

/// A CRD written as JSON in this crate. The JSON is constant; every CRD is rendered by the
/// tests, so a mistake in it fails them.
pub(crate) fn crd_from_json(value: serde_json::Value) -> CustomResourceDefinition {
    serde_json::from_value(value).expect("the CRD JSON written in plexus-k8s is a valid CRD")
}
