//! The network objects one pod's requests may name, fetched beforehand: [`ObjectKey`] says
//! which object, [`candidates`] lists the objects a request may name in lookup order, and
//! [`Catalog`] holds what was found. Pure: the API layer ([`crate::api`]) or the node
//! agent's watch cache fetches, [`crate::resolve`] decides.
//!
//! Lookup order for a name (DANM's, extended with plexus' own kinds, which come first so a
//! cluster migrated to `plexus.io` objects uses them while DANM's still exist):
//! - `network` (DANM): the `danm.k8s.io` DanmNet in the pod's namespace;
//! - `tenantNetwork`: the `plexus.io` TenantNetwork in the pod's namespace, then DANM's;
//! - `clusterNetwork`: the `plexus.io` ClusterNetwork, then DANM's;
//! - an NPWG name: the NetworkAttachmentDefinition in the namespace given, else the pod's;
//! - the default network (no request): DanmNet, TenantNetwork (plexus, DANM),
//!   ClusterNetwork (plexus, DANM) of that name, as DANM looks up `default`.

use std::collections::BTreeMap;
use std::fmt;

use plexus_model::{NetworkRef, NetworkRefKind};

use crate::danm::{DanmClusterNetwork, DanmNet, DanmTenantNetwork};
use crate::nad::NetworkAttachmentDefinition;
use crate::network::{ClusterNetwork, TenantNetwork};

/// Which object: kind, API group and name (namespace for namespaced kinds).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ObjectKey {
    /// `plexus.io/v1` ClusterNetwork.
    ClusterNetwork(String),
    /// `plexus.io/v1` TenantNetwork.
    TenantNetwork {
        /// Namespace.
        namespace: String,
        /// Name.
        name: String,
    },
    /// `danm.k8s.io/v1` DanmNet.
    DanmNet {
        /// Namespace.
        namespace: String,
        /// Name.
        name: String,
    },
    /// `danm.k8s.io/v1` ClusterNetwork.
    DanmClusterNetwork(String),
    /// `danm.k8s.io/v1` TenantNetwork.
    DanmTenantNetwork {
        /// Namespace.
        namespace: String,
        /// Name.
        name: String,
    },
    /// `k8s.cni.cncf.io/v1` NetworkAttachmentDefinition.
    Nad {
        /// Namespace.
        namespace: String,
        /// Name.
        name: String,
    },
}

impl ObjectKey {
    /// The object's name.
    pub fn name(&self) -> &str {
        match self {
            ObjectKey::ClusterNetwork(name) | ObjectKey::DanmClusterNetwork(name) => name,
            ObjectKey::TenantNetwork { name, .. }
            | ObjectKey::DanmNet { name, .. }
            | ObjectKey::DanmTenantNetwork { name, .. }
            | ObjectKey::Nad { name, .. } => name,
        }
    }

    /// The object's namespace; `None` for cluster-scoped kinds.
    pub fn namespace(&self) -> Option<&str> {
        match self {
            ObjectKey::ClusterNetwork(_) | ObjectKey::DanmClusterNetwork(_) => None,
            ObjectKey::TenantNetwork { namespace, .. }
            | ObjectKey::DanmNet { namespace, .. }
            | ObjectKey::DanmTenantNetwork { namespace, .. }
            | ObjectKey::Nad { namespace, .. } => Some(namespace),
        }
    }

    /// `name` or `namespace/name`: how network-status names the attachment.
    pub fn qualified_name(&self) -> String {
        match self.namespace() {
            Some(namespace) => format!("{namespace}/{}", self.name()),
            None => self.name().to_owned(),
        }
    }

    /// `kind.group` as kubectl spells a resource type.
    pub fn kind(&self) -> &'static str {
        match self {
            ObjectKey::ClusterNetwork(_) => "ClusterNetwork.plexus.io",
            ObjectKey::TenantNetwork { .. } => "TenantNetwork.plexus.io",
            ObjectKey::DanmNet { .. } => "DanmNet.danm.k8s.io",
            ObjectKey::DanmClusterNetwork(_) => "ClusterNetwork.danm.k8s.io",
            ObjectKey::DanmTenantNetwork { .. } => "TenantNetwork.danm.k8s.io",
            ObjectKey::Nad { .. } => "NetworkAttachmentDefinition.k8s.cni.cncf.io",
        }
    }
}

impl fmt::Display for ObjectKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.kind(), self.qualified_name())
    }
}

/// The objects `reference` may name, in lookup order, for a pod in `pod_namespace`.
pub fn candidates(reference: &NetworkRef, pod_namespace: &str) -> Vec<ObjectKey> {
    let namespace = reference
        .namespace
        .clone()
        .unwrap_or_else(|| pod_namespace.to_owned());
    let name = reference.name.clone();
    match reference.kind {
        NetworkRefKind::DanmNet => vec![ObjectKey::DanmNet { namespace, name }],
        NetworkRefKind::TenantNetwork => vec![
            ObjectKey::TenantNetwork {
                namespace: namespace.clone(),
                name: name.clone(),
            },
            ObjectKey::DanmTenantNetwork { namespace, name },
        ],
        NetworkRefKind::ClusterNetwork => vec![
            ObjectKey::ClusterNetwork(name.clone()),
            ObjectKey::DanmClusterNetwork(name),
        ],
        NetworkRefKind::Attachment => vec![ObjectKey::Nad { namespace, name }],
    }
}

/// The objects the default network `name` may be, in DANM's order.
pub fn default_candidates(name: &str, pod_namespace: &str) -> Vec<ObjectKey> {
    let namespaced = |kind: NetworkRefKind| NetworkRef {
        kind,
        name: name.to_owned(),
        namespace: None,
    };
    [
        NetworkRefKind::DanmNet,
        NetworkRefKind::TenantNetwork,
        NetworkRefKind::ClusterNetwork,
    ]
    .into_iter()
    .flat_map(|kind| candidates(&namespaced(kind), pod_namespace))
    .collect()
}

/// One fetched object.
#[derive(Debug, Clone, PartialEq)]
pub enum CatalogObject {
    /// `plexus.io/v1` ClusterNetwork.
    ClusterNetwork(ClusterNetwork),
    /// `plexus.io/v1` TenantNetwork.
    TenantNetwork(TenantNetwork),
    /// `danm.k8s.io/v1` DanmNet.
    DanmNet(DanmNet),
    /// `danm.k8s.io/v1` ClusterNetwork.
    DanmClusterNetwork(DanmClusterNetwork),
    /// `danm.k8s.io/v1` TenantNetwork.
    DanmTenantNetwork(DanmTenantNetwork),
    /// A NetworkAttachmentDefinition.
    Nad(NetworkAttachmentDefinition),
}

impl CatalogObject {
    /// The object's key (namespace `default` when a namespaced object has none).
    pub fn key(&self) -> ObjectKey {
        fn parts(
            meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
        ) -> (String, String) {
            (
                meta.namespace
                    .clone()
                    .unwrap_or_else(|| "default".to_owned()),
                meta.name.clone().unwrap_or_default(),
            )
        }
        match self {
            CatalogObject::ClusterNetwork(o) => {
                ObjectKey::ClusterNetwork(o.metadata.name.clone().unwrap_or_default())
            }
            CatalogObject::DanmClusterNetwork(o) => {
                ObjectKey::DanmClusterNetwork(o.metadata.name.clone().unwrap_or_default())
            }
            CatalogObject::TenantNetwork(o) => {
                let (namespace, name) = parts(&o.metadata);
                ObjectKey::TenantNetwork { namespace, name }
            }
            CatalogObject::DanmNet(o) => {
                let (namespace, name) = parts(&o.metadata);
                ObjectKey::DanmNet { namespace, name }
            }
            CatalogObject::DanmTenantNetwork(o) => {
                let (namespace, name) = parts(&o.metadata);
                ObjectKey::DanmTenantNetwork { namespace, name }
            }
            CatalogObject::Nad(o) => {
                let (namespace, name) = parts(&o.metadata);
                ObjectKey::Nad { namespace, name }
            }
        }
    }
}

macro_rules! catalog_from {
    ($($variant:ident),*) => {$(
        impl From<$variant> for CatalogObject {
            fn from(object: $variant) -> Self {
                CatalogObject::$variant(object)
            }
        }
    )*};
}
catalog_from!(
    ClusterNetwork,
    TenantNetwork,
    DanmNet,
    DanmClusterNetwork,
    DanmTenantNetwork
);

impl From<NetworkAttachmentDefinition> for CatalogObject {
    fn from(object: NetworkAttachmentDefinition) -> Self {
        CatalogObject::Nad(object)
    }
}

/// The objects fetched for a pod, by key; what is not here does not exist.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Catalog {
    objects: BTreeMap<ObjectKey, CatalogObject>,
}

impl Catalog {
    /// An empty catalog.
    pub fn new() -> Self {
        Self::default()
    }

    /// Add (or replace) an object.
    pub fn insert(&mut self, object: impl Into<CatalogObject>) {
        let object = object.into();
        self.objects.insert(object.key(), object);
    }

    /// The object `key`, if fetched and present.
    pub fn get(&self, key: &ObjectKey) -> Option<&CatalogObject> {
        self.objects.get(key)
    }

    /// How many objects are held.
    pub fn len(&self) -> usize {
        self.objects.len()
    }

    /// Whether no object is held.
    pub fn is_empty(&self) -> bool {
        self.objects.is_empty()
    }

    /// Every object held.
    pub fn objects(&self) -> impl Iterator<Item = &CatalogObject> {
        self.objects.values()
    }

    /// The NADs held.
    pub fn nads(&self) -> impl Iterator<Item = &NetworkAttachmentDefinition> {
        self.objects.values().filter_map(|o| match o {
            CatalogObject::Nad(nad) => Some(nad),
            _ => None,
        })
    }
}
