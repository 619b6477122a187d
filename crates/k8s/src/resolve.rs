//! From a pod's requests to the objects that serve them, as pure functions over a
//! [`Catalog`] fetched beforehand: which objects to fetch ([`wanted`], then
//! [`wanted_for_nads`] for the networks NADs name), then [`resolve`].
//!
//! Rules:
//! - each request is looked up in [`crate::catalog`]'s order; the first object found
//!   serves it, and must pass `plexus_model`'s rules (as an existing object: DANM's
//!   `alloc` bitmaps may be filled in);
//! - a ClusterNetwork (plexus' or DANM's) with `AllowedTenants` serves only pods in those
//!   namespaces; that holds also when a NAD names it;
//! - NPWG: a name without namespace is a NAD in the pod's namespace; with
//!   [`Policy::namespace_isolation`] (Multus' `namespaceIsolation`) a NAD of another
//!   namespace is refused unless that namespace is one of [`Policy::global_namespaces`];
//!   a NAD whose configuration names a plexus network (`"type": "plexus"` with
//!   `clusterNetwork`/`tenantNetwork`/`network`) resolves that network too, namespaced
//!   kinds in the NAD's namespace;
//! - the default network: a pod without request annotation, or with an empty DANM list,
//!   gets DANM's default network ([`Policy::default_network`], looked up as DANM does);
//!   an NPWG pod gets it first (as Multus' cluster network), then its NADs. The first
//!   attachment is the one network-status marks `default` (DANM: whatever owns `eth0` is
//!   the cluster network).

use std::collections::{BTreeMap, BTreeSet};

use plexus_model::{
    AttachmentRequest, NetworkKind, NetworkRef, NetworkRefKind, Operation, PodRequest,
    RequestFormat, ValidNetwork,
};

use crate::NetworkResource;
use crate::catalog::{Catalog, CatalogObject, ObjectKey, candidates, default_candidates};
use crate::nad::{NadConfig, NadError, PlexusAttachment};

/// Settings of the resolution (from the plugin's configuration).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    /// Name of DANM's default network (`default`).
    pub default_network: String,
    /// Refuse NADs outside the pod's namespace and [`Policy::global_namespaces`].
    pub namespace_isolation: bool,
    /// Namespaces whose NADs every pod may use under isolation.
    pub global_namespaces: Vec<String>,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            default_network: "default".to_owned(),
            namespace_isolation: false,
            global_namespaces: Vec::new(),
        }
    }
}

/// A network object that serves an attachment, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedNetwork {
    /// Which object.
    pub key: ObjectKey,
    /// Its definition, through `plexus_model`'s rules.
    pub valid: ValidNetwork,
    /// Its `metadata.annotations` (per-network options such as `plexus.io/link-mode`).
    pub annotations: BTreeMap<String, String>,
}

/// What serves an attachment.
#[derive(Debug, Clone, PartialEq)]
pub enum Target {
    /// A plexus or DANM network object.
    Network(ResolvedNetwork),
    /// A NetworkAttachmentDefinition.
    Nad {
        /// Which NAD.
        key: ObjectKey,
        /// Its CNI configuration; `None` when `spec.config` is empty (an on-disk
        /// configuration of that name then applies, as NPWG says).
        config: Option<NadConfig>,
        /// The plexus network its configuration names, if any.
        network: Option<ResolvedNetwork>,
    },
}

/// One attachment of the pod, resolved.
#[derive(Debug, Clone, PartialEq)]
pub struct ResolvedAttachment {
    /// The request; `None` for the default network (DANM: one interface, `eth0`, a
    /// dynamic IPv4 address).
    pub request: Option<AttachmentRequest>,
    /// Whether this is the pod's cluster network (`default` in network-status).
    pub default: bool,
    /// What serves it.
    pub target: Target,
}

impl ResolvedAttachment {
    /// The name network-status gives the attachment: `namespace/name` of the NAD, the
    /// network's qualified name otherwise.
    pub fn status_name(&self) -> String {
        match &self.target {
            Target::Network(network) => network.key.qualified_name(),
            Target::Nad { key, .. } => key.qualified_name(),
        }
    }

    /// The plexus network that serves the attachment, directly or through a NAD.
    pub fn network(&self) -> Option<&ResolvedNetwork> {
        match &self.target {
            Target::Network(network) => Some(network),
            Target::Nad { network, .. } => network.as_ref(),
        }
    }
}

/// Why a pod's requests cannot be served. `what` says which request (`[1] clusterNetwork
/// "blue"`, `default network "default"`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResolveError {
    /// No object of that name.
    #[error("{what}: not found (looked for {})", list(.looked_for))]
    NotFound {
        /// Which request.
        what: String,
        /// Every object looked for, in order.
        looked_for: Vec<ObjectKey>,
    },
    /// A ClusterNetwork whose `AllowedTenants` does not list the pod's namespace.
    #[error("{what}: namespace {namespace:?} may not use {network} (AllowedTenants: {})", .allowed.join(", "))]
    Forbidden {
        /// Which request.
        what: String,
        /// The network.
        network: Box<ObjectKey>,
        /// The pod's namespace.
        namespace: String,
        /// The network's `AllowedTenants`.
        allowed: Vec<String>,
    },
    /// The object breaks `plexus_model`'s rules.
    #[error("{what}: {network} is invalid: {detail}")]
    Invalid {
        /// Which request.
        what: String,
        /// The object.
        network: Box<ObjectKey>,
        /// Every broken rule.
        detail: String,
    },
    /// The NAD's configuration cannot be read.
    #[error("{what}: {source}")]
    Nad {
        /// Which request.
        what: String,
        /// The NAD's problem.
        source: Box<NadError>,
    },
    /// A NAD of another namespace under namespace isolation.
    #[error(
        "{what}: {nad} is outside the pod's namespace {pod_namespace:?}, and namespace isolation allows only it{}",
        globals(.global_namespaces)
    )]
    Isolated {
        /// Which request.
        what: String,
        /// The NAD.
        nad: Box<ObjectKey>,
        /// The pod's namespace.
        pod_namespace: String,
        /// The namespaces every pod may use.
        global_namespaces: Vec<String>,
    },
}

fn list(keys: &[ObjectKey]) -> String {
    keys.iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

fn globals(namespaces: &[String]) -> String {
    if namespaces.is_empty() {
        String::new()
    } else {
        format!(" and {}", namespaces.join(", "))
    }
}

/// How errors name a request.
fn describe(request: &AttachmentRequest) -> String {
    let field = match request.network.kind {
        NetworkRefKind::DanmNet => "network",
        NetworkRefKind::TenantNetwork => "tenantNetwork",
        NetworkRefKind::ClusterNetwork => "clusterNetwork",
        NetworkRefKind::Attachment => "NetworkAttachmentDefinition",
    };
    let name = match &request.network.namespace {
        Some(ns) => format!("{ns}/{}", request.network.name),
        None => request.network.name.clone(),
    };
    format!("[{}] {field} {name:?}", request.index)
}

/// Whether the pod gets the default network, and which requests it has.
fn plan(request: Option<&PodRequest>) -> (bool, &[AttachmentRequest]) {
    match request {
        None => (true, &[]),
        Some(r) if r.attachments.is_empty() => (true, &[]),
        Some(r) => (r.format == RequestFormat::Npwg, &r.attachments),
    }
}

/// The objects to fetch for the pod's requests (and the default network), in lookup
/// order, without repeats.
pub fn wanted(
    pod_namespace: &str,
    request: Option<&PodRequest>,
    policy: &Policy,
) -> Vec<ObjectKey> {
    let (default, requests) = plan(request);
    let mut keys = Vec::new();
    if default {
        keys.extend(default_candidates(&policy.default_network, pod_namespace));
    }
    for r in requests {
        keys.extend(candidates(&r.network, pod_namespace));
    }
    dedup(keys)
}

/// The networks named by the configurations of the NADs in `catalog`, to fetch after
/// them. NADs whose configuration cannot be read are skipped; [`resolve`] reports them.
pub fn wanted_for_nads(catalog: &Catalog) -> Vec<ObjectKey> {
    let keys = catalog
        .nads()
        .filter_map(|nad| nad.cni_config().ok().flatten())
        .filter_map(|config| match config.plexus {
            Some(PlexusAttachment::MetaPlugin { network: Some(r) }) => Some(r),
            _ => None,
        })
        .flat_map(|r| {
            // NAD-named references carry the NAD's namespace for namespaced kinds.
            let namespace = r.namespace.clone().unwrap_or_else(|| "default".to_owned());
            candidates(&r, &namespace)
        })
        .collect();
    dedup(keys)
}

fn dedup(keys: Vec<ObjectKey>) -> Vec<ObjectKey> {
    let mut seen = BTreeSet::new();
    keys.into_iter()
        .filter(|k| seen.insert(k.clone()))
        .collect()
}

/// Resolve every attachment of a pod in `pod_namespace`; the first problem is the error.
pub fn resolve(
    pod_namespace: &str,
    request: Option<&PodRequest>,
    catalog: &Catalog,
    policy: &Policy,
) -> Result<Vec<ResolvedAttachment>, ResolveError> {
    let (default, requests) = plan(request);
    let mut out = Vec::with_capacity(requests.len() + 1);
    if default {
        let what = format!("default network {:?}", policy.default_network);
        let keys = default_candidates(&policy.default_network, pod_namespace);
        let network = find_network(&what, &keys, catalog, pod_namespace)?;
        out.push(ResolvedAttachment {
            request: None,
            default: true,
            target: Target::Network(network),
        });
    }
    for r in requests {
        let what = describe(r);
        let target = match r.network.kind {
            NetworkRefKind::Attachment => resolve_nad(&what, r, catalog, pod_namespace, policy)?,
            _ => Target::Network(find_network(
                &what,
                &candidates(&r.network, pod_namespace),
                catalog,
                pod_namespace,
            )?),
        };
        out.push(ResolvedAttachment {
            request: Some(r.clone()),
            default: out.is_empty(),
            target,
        });
    }
    Ok(out)
}

/// The NAD `request` names, its configuration, and the network that names.
fn resolve_nad(
    what: &str,
    request: &AttachmentRequest,
    catalog: &Catalog,
    pod_namespace: &str,
    policy: &Policy,
) -> Result<Target, ResolveError> {
    let keys = candidates(&request.network, pod_namespace);
    let key = keys[0].clone();
    let namespace = key.namespace().unwrap_or(pod_namespace);
    if policy.namespace_isolation
        && namespace != pod_namespace
        && !policy.global_namespaces.iter().any(|g| g == namespace)
    {
        return Err(ResolveError::Isolated {
            what: what.to_owned(),
            nad: Box::new(key),
            pod_namespace: pod_namespace.to_owned(),
            global_namespaces: policy.global_namespaces.clone(),
        });
    }
    let Some(CatalogObject::Nad(nad)) = catalog.get(&key) else {
        return Err(ResolveError::NotFound {
            what: what.to_owned(),
            looked_for: keys,
        });
    };
    let config = nad.cni_config().map_err(|source| ResolveError::Nad {
        what: what.to_owned(),
        source: Box::new(source),
    })?;
    let network = match config.as_ref().and_then(|c| c.plexus.as_ref()) {
        Some(PlexusAttachment::MetaPlugin { network: Some(r) }) => {
            let nad_namespace = r.namespace.clone().unwrap_or_else(|| namespace.to_owned());
            let what = format!("{what} ({} names {})", key, describe_ref(r));
            Some(find_network(
                &what,
                &candidates(r, &nad_namespace),
                catalog,
                pod_namespace,
            )?)
        }
        _ => None,
    };
    Ok(Target::Nad {
        key,
        config,
        network,
    })
}

fn describe_ref(r: &NetworkRef) -> String {
    let field = match r.kind {
        NetworkRefKind::DanmNet => "network",
        NetworkRefKind::TenantNetwork => "tenantNetwork",
        NetworkRefKind::ClusterNetwork => "clusterNetwork",
        NetworkRefKind::Attachment => "NetworkAttachmentDefinition",
    };
    format!("{field} {:?}", r.name)
}

/// The first of `keys` in `catalog`, validated, and allowed for `pod_namespace`.
fn find_network(
    what: &str,
    keys: &[ObjectKey],
    catalog: &Catalog,
    pod_namespace: &str,
) -> Result<ResolvedNetwork, ResolveError> {
    let Some((key, (validated, metadata))) = keys
        .iter()
        .find_map(|k| catalog.get(k).and_then(validate).map(|v| (k.clone(), v)))
    else {
        return Err(ResolveError::NotFound {
            what: what.to_owned(),
            looked_for: keys.to_vec(),
        });
    };
    let valid = validated.map_err(|e| ResolveError::Invalid {
        what: what.to_owned(),
        network: Box::new(key.clone()),
        detail: e.to_string(),
    })?;
    if valid.kind == NetworkKind::ClusterNetwork
        && !valid.allowed_tenants.is_empty()
        && !valid.allowed_tenants.iter().any(|t| t == pod_namespace)
    {
        return Err(ResolveError::Forbidden {
            what: what.to_owned(),
            network: Box::new(key),
            namespace: pod_namespace.to_owned(),
            allowed: valid.allowed_tenants,
        });
    }
    Ok(ResolvedNetwork {
        key,
        valid,
        annotations: metadata.annotations.clone().unwrap_or_default(),
    })
}

type Validated<'a> = (
    Result<ValidNetwork, plexus_model::ValidationErrors>,
    &'a k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
);

/// A network object through the model's rules (as an existing object), with its metadata;
/// `None` for a NAD.
fn validate(object: &CatalogObject) -> Option<Validated<'_>> {
    let op = Operation::Update;
    Some(match object {
        CatalogObject::ClusterNetwork(o) => (o.validate(op), &o.metadata),
        CatalogObject::TenantNetwork(o) => (o.validate(op), &o.metadata),
        CatalogObject::DanmNet(o) => (o.validate(op), &o.metadata),
        CatalogObject::DanmClusterNetwork(o) => (o.validate(op), &o.metadata),
        CatalogObject::DanmTenantNetwork(o) => (o.validate(op), &o.metadata),
        CatalogObject::Nad(_) => return None,
    })
}

#[cfg(test)]
mod tests;
