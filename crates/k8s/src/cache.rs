//! A watch cache of one node's pods and of every network object a pod may name, for the
//! node agent (`plexusd node`): a CNI call is a new process, and reading the pod and up to
//! a dozen objects from the API server on every ADD would make pod start-up slow. The agent
//! keeps this cache and answers from memory with the same pure functions as the direct
//! path ([`crate::resolve`]); [`pod_networks`] falls back to [`KubeApi`] whenever the cache
//! cannot answer for sure.
//!
//! What is watched (kube-runtime reflectors, list then watch, bookmarks; all served by
//! 1.20): the pods with `spec.nodeName` = the node, and, cluster-wide, plexus'
//! ClusterNetworks and TenantNetworks, DANM's three kinds and the NADs. A kind the server
//! does not serve (DANM not installed) is not watched and counts as empty; one installed
//! after the start is seen after a restart of the agent (until then lookups of it fall
//! back to the API server only when something else fails).
//!
//! **When the cache answers.** The watch lags the API server by a little, so the cache
//! answers only when it can be trusted: the pod is cached as the incarnation the runtime
//! names (its UID) and its requests resolve. A pod not yet cached, a cached pod of another
//! UID (the watch has not yet seen the re-creation, or the call is late), or any resolution
//! error (a NAD or network created a moment ago, a changed `AllowedTenants`) goes to the
//! API server, whose answer is final.

use std::fmt::Debug;
use std::hash::Hash;
use std::time::Duration;

use futures::{FutureExt, StreamExt};
use k8s_openapi::api::core::v1::Pod;
use kube::Resource;
use kube::api::Api;
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use serde::de::DeserializeOwned;

use crate::api::{ApiError, KubeApi};
use crate::catalog::{Catalog, CatalogObject, ObjectKey};
use crate::danm::{DanmClusterNetwork, DanmNet, DanmTenantNetwork};
use crate::nad::NetworkAttachmentDefinition;
use crate::network::{ClusterNetwork, TenantNetwork};
use crate::pod::{self, PodKey};
use crate::resolve::{self, Policy, ResolvedAttachment};

/// Why the cache did not become ready.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the watch cache of node {node} is not ready after {seconds} s: {}", .kinds.join(", "))]
pub struct NotReady {
    /// The node.
    pub node: String,
    /// How long it waited.
    pub seconds: u64,
    /// The kinds whose first list has not completed.
    pub kinds: Vec<&'static str>,
}

/// The reflector stores of one node, and the tasks feeding them (stopped on drop).
pub struct NodeCache {
    node: String,
    pods: Store<Pod>,
    cluster_networks: Option<Store<ClusterNetwork>>,
    tenant_networks: Option<Store<TenantNetwork>>,
    danm_nets: Option<Store<DanmNet>>,
    danm_cluster_networks: Option<Store<DanmClusterNetwork>>,
    danm_tenant_networks: Option<Store<DanmTenantNetwork>>,
    nads: Option<Store<NetworkAttachmentDefinition>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Debug for NodeCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeCache")
            .field("node", &self.node)
            .field("watched", &self.watched())
            .finish_non_exhaustive()
    }
}

impl Drop for NodeCache {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// Start a reflector for `api` on the current tokio runtime.
fn spawn<K>(
    api: Api<K>,
    config: watcher::Config,
    tasks: &mut Vec<tokio::task::JoinHandle<()>>,
) -> Store<K>
where
    K: Resource + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
    K::DynamicType: Eq + Hash + Clone + Default,
{
    let (reader, writer) = reflector::store();
    let kind = K::kind(&K::DynamicType::default()).into_owned();
    let stream = reflector::reflector(writer, watcher(api, config)).default_backoff();
    tasks.push(tokio::spawn(async move {
        stream
            .for_each(|event| {
                if let Err(e) = event {
                    tracing::warn!(kind, error = %e, "watch failed; retrying with backoff");
                }
                futures::future::ready(())
            })
            .await;
    }));
    reader
}

/// Whether `store` has completed its first list.
fn is_ready<K>(store: &Store<K>) -> bool
where
    K: kube::runtime::reflector::Lookup + Clone + 'static,
    K::DynamicType: Eq + Hash + Clone,
{
    store
        .wait_until_ready()
        .now_or_never()
        .is_some_and(|r| r.is_ok())
}

/// Whether the server serves `plural` in `api_version`.
async fn served(api: &KubeApi, api_version: &str, plural: &str) -> Result<bool, ApiError> {
    match api.client().list_api_group_resources(api_version).await {
        Ok(list) => Ok(list.resources.iter().any(|r| r.name == plural)),
        Err(kube::Error::Api(status)) if status.code == 404 => Ok(false),
        Err(e) => Err(ApiError::from_kube(format!("discover {api_version}"), e)),
    }
}

impl NodeCache {
    /// Start watching the pods of `node` and the network kinds the server serves. Call
    /// [`NodeCache::wait_ready`] before trusting it.
    pub async fn start(api: &KubeApi, node: &str) -> Result<NodeCache, ApiError> {
        let client = api.client().clone();
        let mut tasks = Vec::new();
        let pods = spawn(
            Api::<Pod>::all(client.clone()),
            watcher::Config::default().fields(&format!("spec.nodeName={node}")),
            &mut tasks,
        );
        macro_rules! watch_if_served {
            ($kind:ty, $version:expr, $plural:expr) => {
                if served(api, $version, $plural).await? {
                    Some(spawn(
                        Api::<$kind>::all(client.clone()),
                        watcher::Config::default(),
                        &mut tasks,
                    ))
                } else {
                    None
                }
            };
        }
        Ok(NodeCache {
            node: node.to_owned(),
            pods,
            cluster_networks: watch_if_served!(ClusterNetwork, "plexus.io/v1", "clusternetworks"),
            tenant_networks: watch_if_served!(TenantNetwork, "plexus.io/v1", "tenantnetworks"),
            danm_nets: watch_if_served!(DanmNet, DanmNet::API_VERSION, "danmnets"),
            danm_cluster_networks: watch_if_served!(
                DanmClusterNetwork,
                DanmClusterNetwork::API_VERSION,
                "clusternetworks"
            ),
            danm_tenant_networks: watch_if_served!(
                DanmTenantNetwork,
                DanmTenantNetwork::API_VERSION,
                "tenantnetworks"
            ),
            nads: watch_if_served!(
                NetworkAttachmentDefinition,
                NetworkAttachmentDefinition::API_VERSION,
                "network-attachment-definitions"
            ),
            tasks,
        })
    }

    /// The node whose pods are watched.
    pub fn node(&self) -> &str {
        &self.node
    }

    /// The kinds watched (`kind.group`); the others are not served by the API server.
    pub fn watched(&self) -> Vec<&'static str> {
        let mut kinds = vec!["Pod"];
        let pairs = [
            (self.cluster_networks.is_some(), "ClusterNetwork.plexus.io"),
            (self.tenant_networks.is_some(), "TenantNetwork.plexus.io"),
            (self.danm_nets.is_some(), "DanmNet.danm.k8s.io"),
            (
                self.danm_cluster_networks.is_some(),
                "ClusterNetwork.danm.k8s.io",
            ),
            (
                self.danm_tenant_networks.is_some(),
                "TenantNetwork.danm.k8s.io",
            ),
            (
                self.nads.is_some(),
                "NetworkAttachmentDefinition.k8s.cni.cncf.io",
            ),
        ];
        kinds.extend(pairs.iter().filter(|(on, _)| *on).map(|(_, k)| *k));
        kinds
    }

    /// Wait until every watched kind has completed its first list.
    pub async fn wait_ready(&self, timeout: Duration) -> Result<(), NotReady> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let pending = self.pending();
            if pending.is_empty() {
                return Ok(());
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(NotReady {
                    node: self.node.clone(),
                    seconds: timeout.as_secs(),
                    kinds: pending,
                });
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The kinds whose first list is not complete.
    fn pending(&self) -> Vec<&'static str> {
        let mut pending = Vec::new();
        let mut check = |ready: Option<bool>, kind: &'static str| {
            if ready == Some(false) {
                pending.push(kind);
            }
        };
        check(Some(is_ready(&self.pods)), "Pod");
        check(
            self.cluster_networks.as_ref().map(is_ready),
            "ClusterNetwork.plexus.io",
        );
        check(
            self.tenant_networks.as_ref().map(is_ready),
            "TenantNetwork.plexus.io",
        );
        check(self.danm_nets.as_ref().map(is_ready), "DanmNet.danm.k8s.io");
        check(
            self.danm_cluster_networks.as_ref().map(is_ready),
            "ClusterNetwork.danm.k8s.io",
        );
        check(
            self.danm_tenant_networks.as_ref().map(is_ready),
            "TenantNetwork.danm.k8s.io",
        );
        check(
            self.nads.as_ref().map(is_ready),
            "NetworkAttachmentDefinition.k8s.cni.cncf.io",
        );
        pending
    }

    /// The cached pod `key` names, if it is cached as that incarnation (any incarnation
    /// when `key` has no UID).
    pub fn pod(&self, key: &PodKey) -> Option<Pod> {
        let pod = self
            .pods
            .get(&ObjectRef::new(&key.name).within(&key.namespace))?;
        pod::check_uid(&pod, key).ok()?;
        Some((*pod).clone())
    }

    /// The cached objects among `keys`.
    pub fn catalog(&self, keys: &[ObjectKey]) -> Catalog {
        fn get<K>(store: &Option<Store<K>>, key: &ObjectKey) -> Option<K>
        where
            K: Resource + Clone + 'static,
            K::DynamicType: Eq + Hash + Clone + Default,
        {
            let mut reference = ObjectRef::new(key.name());
            if let Some(ns) = key.namespace() {
                reference = reference.within(ns);
            }
            store.as_ref()?.get(&reference).map(|o| (*o).clone())
        }
        let mut catalog = Catalog::new();
        for key in keys {
            let object: Option<CatalogObject> = match key {
                ObjectKey::ClusterNetwork(_) => get(&self.cluster_networks, key).map(Into::into),
                ObjectKey::TenantNetwork { .. } => get(&self.tenant_networks, key).map(Into::into),
                ObjectKey::DanmNet { .. } => get(&self.danm_nets, key).map(Into::into),
                ObjectKey::DanmClusterNetwork(_) => {
                    get(&self.danm_cluster_networks, key).map(Into::into)
                }
                ObjectKey::DanmTenantNetwork { .. } => {
                    get(&self.danm_tenant_networks, key).map(Into::into)
                }
                ObjectKey::Nad { .. } => get(&self.nads, key).map(Into::into),
            };
            if let Some(object) = object {
                catalog.insert(object);
            }
        }
        catalog
    }

    /// The pod and its attachments from the cache alone; `None` when the cache cannot
    /// answer for sure (see the module documentation).
    pub fn pod_networks(
        &self,
        key: &PodKey,
        policy: &Policy,
    ) -> Option<(Pod, Vec<ResolvedAttachment>)> {
        let pod = self.pod(key)?;
        let request = pod::pod_request(&pod, key).ok()?;
        let mut catalog = self.catalog(&resolve::wanted(&key.namespace, request.as_ref(), policy));
        let second = resolve::wanted_for_nads(&catalog);
        for object in self.catalog(&second).objects() {
            catalog.insert(object.clone());
        }
        let attachments =
            resolve::resolve(&key.namespace, request.as_ref(), &catalog, policy).ok()?;
        Some((pod, attachments))
    }
}

/// Where an answer came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// The node agent's watch cache.
    Cache,
    /// The API server.
    Api,
}

/// The pod `key` names and its attachments: from `cache` when it can answer for sure,
/// else from the API server (whose errors are the answer).
pub async fn pod_networks(
    cache: Option<&NodeCache>,
    api: &KubeApi,
    key: &PodKey,
    policy: &Policy,
) -> Result<(Pod, Vec<ResolvedAttachment>, Source), ApiError> {
    if let Some((pod, attachments)) = cache.and_then(|c| c.pod_networks(key, policy)) {
        return Ok((pod, attachments, Source::Cache));
    }
    let (pod, attachments) = api.pod_networks(key, policy).await?;
    Ok((pod, attachments, Source::Api))
}
