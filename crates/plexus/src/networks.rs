//! Where network definitions come from: the [`NetworkSource`] seam and its file-backed
//! implementation, plus DANM's lookup rules (namespaced kinds, the default network,
//! `AllowedTenants`).
//!
//! [`FileNetworkSource`] reads every `*.json`, `*.yaml` and `*.yml` file of a directory —
//! DANM objects as `kubectl get -o yaml` prints them, one object or a `List` per file — and
//! validates them with the same rules as the webhook. A Kubernetes source (the Kubernetes
//! issue) or the store's stored networks implement the same trait.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use async_trait::async_trait;
use plexus_model::{
    NetworkKind, NetworkList, NetworkObject, NetworkRef, NetworkRefKind, Operation, ValidNetwork,
    validate,
};

use crate::error::PlexusError;

/// One usable network: the validated definition plus the object's annotations (where
/// plexus reads per-network link options such as [`LINK_MODE_ANNOTATION`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Network {
    /// The validated definition.
    pub valid: ValidNetwork,
    /// `metadata.annotations` of the object.
    pub annotations: BTreeMap<String, String>,
}

/// Annotation on a network object choosing the macvlan mode (`bridge` by default,
/// `private`, `vepa`, `passthru`) or ipvlan mode (`l2` by default, `l3`, `l3s`). DANM's
/// schema has no field for it, so plexus keeps it beside the spec.
pub const LINK_MODE_ANNOTATION: &str = "plexus.io/link-mode";

/// Annotation on a network object marking its delegate as user-space (`"true"`): the
/// interfaces it reports are not kernel links (vhost-user, memif, DPDK), so plexus does no
/// post-processing on them. NetworkType `userspace` is user-space without it.
pub const USERSPACE_ANNOTATION: &str = "plexus.io/userspace";

/// Annotation on a `userspace` network object: the host directory where the user-space
/// dataplane creates the pods' sockets, passed to the userspace CNI as `sharedDir`.
pub const SOCKET_DIR_ANNOTATION: &str = "plexus.io/socket-dir";

/// Annotation naming the device-plugin resource of a delegated network (what a
/// NetworkAttachmentDefinition carries for Multus); DANM's `device_pool` is the same for
/// its networks and wins when both are set.
pub const RESOURCE_NAME_ANNOTATION: &str = "k8s.v1.cni.cncf.io/resourceName";

impl Network {
    /// The identity of the network in the store (`name` or `namespace/name`).
    pub fn qualified_name(&self) -> String {
        self.valid.qualified_name()
    }

    /// The link mode annotation, if set.
    pub fn link_mode(&self) -> Option<&str> {
        self.annotations
            .get(LINK_MODE_ANNOTATION)
            .map(String::as_str)
    }

    /// The annotation `key`, if set and not blank.
    pub fn annotation(&self, key: &str) -> Option<&str> {
        self.annotations
            .get(key)
            .map(|v| v.trim())
            .filter(|v| !v.is_empty())
    }
}

/// Looks up network definitions by kind and qualified name.
#[async_trait]
pub trait NetworkSource: Send + Sync {
    /// The network of `kind` named `qualified` (`name` for ClusterNetworks,
    /// `namespace/name` otherwise); `Ok(None)` when there is none. A definition that exists
    /// but fails validation is an error naming every broken rule.
    async fn network(
        &self,
        kind: NetworkKind,
        qualified: &str,
    ) -> Result<Option<Network>, PlexusError>;
}

/// Network definitions read from the files of one directory.
#[derive(Debug, Clone)]
pub struct FileNetworkSource {
    dir: PathBuf,
}

impl FileNetworkSource {
    /// A source reading `dir`.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        FileNetworkSource { dir: dir.into() }
    }

    fn objects(&self) -> Result<Vec<(PathBuf, NetworkObject)>, PlexusError> {
        let entries = match std::fs::read_dir(&self.dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(source) => {
                return Err(PlexusError::Io {
                    what: "cannot read the networks directory",
                    path: self.dir.display().to_string(),
                    source,
                });
            }
        };
        let mut paths: Vec<PathBuf> = entries
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| {
                p.extension()
                    .and_then(|e| e.to_str())
                    .is_some_and(|e| matches!(e, "json" | "yaml" | "yml"))
            })
            .collect();
        paths.sort();
        let mut out = Vec::new();
        for path in paths {
            for object in read_objects(&path)? {
                out.push((path.clone(), object));
            }
        }
        Ok(out)
    }
}

/// The objects of one file: a single object or a `List`.
fn read_objects(path: &Path) -> Result<Vec<NetworkObject>, PlexusError> {
    let text = std::fs::read_to_string(path).map_err(|source| PlexusError::Io {
        what: "cannot read network definition",
        path: path.display().to_string(),
        source,
    })?;
    let value: serde_json::Value = serde_norway::from_str(&text).map_err(|e| {
        PlexusError::config(
            "networksDir",
            format!("{} is not JSON/YAML: {e}", path.display()),
        )
    })?;
    let bad = |e: serde_json::Error| {
        PlexusError::config(
            "networksDir",
            format!("{} is not a network object: {e}", path.display()),
        )
    };
    if value.get("items").is_some() {
        let list: NetworkList = serde_json::from_value(value).map_err(bad)?;
        Ok(list.items)
    } else {
        Ok(vec![serde_json::from_value(value).map_err(bad)?])
    }
}

#[async_trait]
impl NetworkSource for FileNetworkSource {
    async fn network(
        &self,
        kind: NetworkKind,
        qualified: &str,
    ) -> Result<Option<Network>, PlexusError> {
        for (path, object) in self.objects()? {
            if object.kind != kind || object.qualified_name() != qualified {
                continue;
            }
            let valid = validate(&object, Operation::Update).map_err(|e| PlexusError::Network {
                reference: format!("{kind} {qualified}"),
                reason: format!("definition in {} is invalid: {e}", path.display()),
            })?;
            return Ok(Some(Network {
                valid,
                annotations: object.metadata.annotations.clone(),
            }));
        }
        Ok(None)
    }
}

/// Network definitions stored in the allocation store (`plexusctl network apply`): the
/// record's definition is a network object, stored under its qualified name.
pub struct StoreNetworkSource<'a> {
    store: &'a dyn plexus_store::Store,
}

impl<'a> StoreNetworkSource<'a> {
    /// A source reading `store`.
    pub fn new(store: &'a dyn plexus_store::Store) -> Self {
        StoreNetworkSource { store }
    }
}

#[async_trait]
impl NetworkSource for StoreNetworkSource<'_> {
    async fn network(
        &self,
        kind: NetworkKind,
        qualified: &str,
    ) -> Result<Option<Network>, PlexusError> {
        let Some(record) = self.store.network(qualified).await? else {
            return Ok(None);
        };
        let reference = format!("{kind} {qualified}");
        let object: NetworkObject =
            serde_json::from_value(record.definition).map_err(|e| PlexusError::Network {
                reference: reference.clone(),
                reason: format!("stored definition is not a network object: {e}"),
            })?;
        if object.kind != kind {
            return Ok(None);
        }
        let valid = validate(&object, Operation::Update).map_err(|e| PlexusError::Network {
            reference,
            reason: format!("stored definition is invalid: {e}"),
        })?;
        Ok(Some(Network {
            valid,
            annotations: object.metadata.annotations,
        }))
    }
}

/// Files first, then the next source: a network defined in `networksDir` overrides one in
/// the store.
pub struct Chain<'a>(pub Vec<&'a dyn NetworkSource>);

#[async_trait]
impl NetworkSource for Chain<'_> {
    async fn network(
        &self,
        kind: NetworkKind,
        qualified: &str,
    ) -> Result<Option<Network>, PlexusError> {
        for source in &self.0 {
            if let Some(network) = source.network(kind, qualified).await? {
                return Ok(Some(network));
            }
        }
        Ok(None)
    }
}

/// How a reference reads in messages (`clusterNetwork blue`).
pub fn describe(reference: &NetworkRef) -> String {
    let field = match reference.kind {
        NetworkRefKind::DanmNet => "network",
        NetworkRefKind::TenantNetwork => "tenantNetwork",
        NetworkRefKind::ClusterNetwork => "clusterNetwork",
        NetworkRefKind::Attachment => "NetworkAttachmentDefinition",
    };
    format!("{field} {}", reference.name)
}

/// Finds the network a request names, for a pod in `pod_namespace`, and checks that the
/// pod may use it (`AllowedTenants`).
pub async fn resolve(
    source: &dyn NetworkSource,
    reference: &NetworkRef,
    pod_namespace: &str,
) -> Result<Network, PlexusError> {
    let namespace = reference.namespace.as_deref().unwrap_or(pod_namespace);
    let (kind, qualified) = match reference.kind {
        NetworkRefKind::DanmNet => (
            NetworkKind::DanmNet,
            format!("{namespace}/{}", reference.name),
        ),
        NetworkRefKind::TenantNetwork => (
            NetworkKind::TenantNetwork,
            format!("{namespace}/{}", reference.name),
        ),
        NetworkRefKind::ClusterNetwork => (NetworkKind::ClusterNetwork, reference.name.clone()),
        NetworkRefKind::Attachment => {
            return Err(PlexusError::Network {
                reference: describe(reference),
                reason: "NetworkAttachmentDefinitions are served by the Kubernetes source, \
                         which this configuration does not use"
                    .to_owned(),
            });
        }
    };
    let network = source
        .network(kind, &qualified)
        .await?
        .ok_or_else(|| PlexusError::Network {
            reference: describe(reference),
            reason: format!("no {kind} named {qualified:?}"),
        })?;
    check_tenant(&network, reference, pod_namespace)?;
    Ok(network)
}

/// DANM's default network: a DanmNet named `name` in the pod's namespace, else a
/// TenantNetwork there, else a ClusterNetwork.
pub async fn resolve_default(
    source: &dyn NetworkSource,
    name: &str,
    pod_namespace: &str,
) -> Result<(NetworkRef, Network), PlexusError> {
    for kind in [
        NetworkRefKind::DanmNet,
        NetworkRefKind::TenantNetwork,
        NetworkRefKind::ClusterNetwork,
    ] {
        let reference = NetworkRef {
            kind,
            name: name.to_owned(),
            namespace: None,
        };
        match resolve(source, &reference, pod_namespace).await {
            Ok(network) => return Ok((reference, network)),
            Err(PlexusError::Network { reason, .. }) if reason.starts_with("no ") => {}
            Err(other) => return Err(other),
        }
    }
    Err(PlexusError::Network {
        reference: format!("default network {name:?}"),
        reason: format!(
            "the pod requested no networks and there is no DanmNet or TenantNetwork {name:?} \
             in namespace {pod_namespace:?} and no ClusterNetwork {name:?}"
        ),
    })
}

fn check_tenant(
    network: &Network,
    reference: &NetworkRef,
    pod_namespace: &str,
) -> Result<(), PlexusError> {
    let allowed = &network.valid.allowed_tenants;
    if network.valid.kind == NetworkKind::ClusterNetwork
        && !allowed.is_empty()
        && !allowed.iter().any(|t| t == pod_namespace)
    {
        return Err(PlexusError::Network {
            reference: describe(reference),
            reason: format!(
                "namespace {pod_namespace:?} is not in its AllowedTenants ({})",
                allowed.join(", ")
            ),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, file: &str, text: &str) {
        std::fs::write(dir.join(file), text).unwrap();
    }

    fn block_on<F: std::future::Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(f)
    }

    fn cluster(name: &str, extra: &str) -> String {
        format!(
            r#"{{"apiVersion":"plexus.io/v1","kind":"ClusterNetwork","metadata":{{"name":"{name}"}},
               "spec":{{"NetworkID":"{name}","NetworkType":"macvlan",{extra}
               "Options":{{"host_device":"eth1","cidr":"10.1.0.0/24"}}}}}}"#
        )
    }

    #[test]
    fn lookup_default_order_and_tenants() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "a.json", &cluster("default", ""));
        write(
            dir.path(),
            "b.yaml",
            "apiVersion: danm.k8s.io/v1\nkind: DanmNet\nmetadata: {name: default, namespace: team}\n\
             spec: {NetworkID: teamnet, Options: {host_device: eth1, cidr: 10.2.0.0/24}}\n",
        );
        write(
            dir.path(),
            "c.json",
            &cluster("private", r#""AllowedTenants":["ops"],"#),
        );
        write(dir.path(), "ignored.txt", "not read");
        let source = FileNetworkSource::new(dir.path());
        block_on(async {
            let (r, n) = resolve_default(&source, "default", "team").await.unwrap();
            assert_eq!(r.kind, NetworkRefKind::DanmNet);
            assert_eq!(n.qualified_name(), "team/default");
            let (r, n) = resolve_default(&source, "default", "other").await.unwrap();
            assert_eq!(r.kind, NetworkRefKind::ClusterNetwork);
            assert_eq!(n.valid.network_type, "macvlan");
            let private = NetworkRef {
                kind: NetworkRefKind::ClusterNetwork,
                name: "private".into(),
                namespace: None,
            };
            assert!(resolve(&source, &private, "ops").await.is_ok());
            let err = resolve(&source, &private, "dev").await.unwrap_err();
            assert!(err.to_string().contains("AllowedTenants"), "{err}");
            let missing = NetworkRef {
                name: "nope".into(),
                ..private
            };
            let err = resolve(&source, &missing, "ops").await.unwrap_err();
            assert!(err.to_string().contains("no ClusterNetwork"), "{err}");
            assert!(resolve_default(&source, "none", "x").await.is_err());
        });
    }

    #[test]
    fn an_invalid_definition_is_reported_with_its_file() {
        let dir = tempfile::tempdir().unwrap();
        write(
            dir.path(),
            "bad.json",
            r#"{"apiVersion":"plexus.io/v1","kind":"ClusterNetwork","metadata":{"name":"bad"},
               "spec":{"NetworkID":"bad","Options":{"cidr":"10.0.0.0/33"}}}"#,
        );
        let source = FileNetworkSource::new(dir.path());
        let reference = NetworkRef {
            kind: NetworkRefKind::ClusterNetwork,
            name: "bad".into(),
            namespace: None,
        };
        let err = block_on(resolve(&source, &reference, "x")).unwrap_err();
        assert!(err.to_string().contains("bad.json"), "{err}");
        assert!(err.to_string().contains("cidr"), "{err}");
    }
}
