//! The thin I/O layer over the API server (kube-rs): read the pod a CNI call is for and
//! check its UID, fetch the network objects its requests may name, and write its
//! network-status. Every decision is made by the pure modules ([`crate::pod`],
//! [`crate::catalog`], [`crate::resolve`], [`crate::status`]); this module only reads and
//! writes, so the node agent's watch cache can feed the same functions.
//!
//! Reads are plain GETs of single objects (a 404 means "absent", also when a kind's CRD is
//! not installed: a cluster without DANM simply has no DANM objects), issued concurrently.
//! Only APIs a 1.20 server serves are used. Failures become [`ApiError`], whose text names
//! the object and the server's answer; no credential is ever part of it.

use std::path::Path;

use futures::future::try_join_all;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, Patch, PatchParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};

use crate::catalog::{Catalog, CatalogObject, ObjectKey};
use crate::danm::{DanmClusterNetwork, DanmNet, DanmTenantNetwork};
use crate::nad::NetworkAttachmentDefinition;
use crate::network::{ClusterNetwork, TenantNetwork};
use crate::pod::{self, PodError, PodKey};
use crate::resolve::{self, Policy, ResolveError, ResolvedAttachment};
use crate::status::{self, NetworkStatusEntry, StatusError};

/// Field manager plexus' writes are recorded under.
pub const FIELD_MANAGER: &str = "plexus";

/// Why talking to the API server failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApiError {
    /// The kubeconfig cannot be read or used.
    #[error("kubeconfig {path}: {detail}")]
    Kubeconfig {
        /// The file (`in-cluster` for the service-account configuration).
        path: String,
        /// What is wrong.
        detail: String,
    },
    /// The API server refused a request.
    #[error("{what}: the API server answered {code} {reason}: {message}")]
    Refused {
        /// The request (`get pod team-a/web-0`).
        what: String,
        /// HTTP status code.
        code: u16,
        /// The server's reason (`Forbidden`, `Conflict`, ...).
        reason: String,
        /// The server's message.
        message: String,
    },
    /// The request did not get an answer (connection, TLS, timeout, decoding).
    #[error("{what}: {detail}")]
    Transport {
        /// The request.
        what: String,
        /// What failed.
        detail: String,
    },
    /// The pod is not the one asked for, or its annotations are malformed.
    #[error(transparent)]
    Pod(#[from] PodError),
    /// The pod's requests cannot be served.
    #[error(transparent)]
    Resolve(#[from] ResolveError),
    /// The network-status to write is invalid.
    #[error(transparent)]
    Status(#[from] StatusError),
}

impl ApiError {
    /// `error` of the request `what`: the server's refusal, or a transport failure.
    pub(crate) fn from_kube(what: impl Into<String>, error: kube::Error) -> ApiError {
        let what = what.into();
        match error {
            kube::Error::Api(status) => ApiError::Refused {
                what,
                code: status.code,
                reason: status.reason.clone(),
                message: status.message.clone(),
            },
            other => ApiError::Transport {
                what,
                detail: other.to_string(),
            },
        }
    }
}

/// A client of the API server with plexus' reads and writes.
#[derive(Clone)]
pub struct KubeApi {
    client: Client,
}

impl std::fmt::Debug for KubeApi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KubeApi").finish_non_exhaustive()
    }
}

impl KubeApi {
    /// Use `client`.
    pub fn new(client: Client) -> KubeApi {
        KubeApi { client }
    }

    /// A client from the kubeconfig at `path` (its current context), or from the pod's
    /// service account (in-cluster) when `path` is `None` or empty, as DANM's `kubeconfig`.
    pub async fn from_kubeconfig(path: Option<&Path>) -> Result<KubeApi, ApiError> {
        let config = match path.filter(|p| !p.as_os_str().is_empty()) {
            Some(path) => {
                let fail = |detail: String| ApiError::Kubeconfig {
                    path: path.display().to_string(),
                    detail,
                };
                let kubeconfig = Kubeconfig::read_from(path).map_err(|e| fail(e.to_string()))?;
                Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
                    .await
                    .map_err(|e| fail(e.to_string()))?
            }
            None => Config::incluster().map_err(|e| ApiError::Kubeconfig {
                path: "in-cluster".to_owned(),
                detail: e.to_string(),
            })?,
        };
        let client = Client::try_from(config).map_err(|e| ApiError::Kubeconfig {
            path: path.map_or("in-cluster".to_owned(), |p| p.display().to_string()),
            detail: e.to_string(),
        })?;
        Ok(KubeApi { client })
    }

    /// The underlying client.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// The pod `key` names, checked to be that incarnation when `key` has a UID.
    pub async fn pod(&self, key: &PodKey) -> Result<Pod, ApiError> {
        let api: Api<Pod> = Api::namespaced(self.client.clone(), &key.namespace);
        let pod = api
            .get_opt(&key.name)
            .await
            .map_err(|e| ApiError::from_kube(format!("get pod {key}"), e))?
            .ok_or_else(|| PodError::NotFound {
                pod: key.to_string(),
            })?;
        pod::check_uid(&pod, key)?;
        Ok(pod)
    }

    /// Fetch the objects `keys` into `catalog` (absent ones stay absent), concurrently.
    pub async fn fetch(&self, keys: &[ObjectKey], catalog: &mut Catalog) -> Result<(), ApiError> {
        let found = try_join_all(keys.iter().map(|key| self.get(key))).await?;
        for object in found.into_iter().flatten() {
            catalog.insert(object);
        }
        Ok(())
    }

    /// One object, `None` when absent.
    async fn get(&self, key: &ObjectKey) -> Result<Option<CatalogObject>, ApiError> {
        let what = format!("get {key}");
        let client = self.client.clone();
        let name = key.name();
        let ns = key.namespace().unwrap_or_default();
        let found = match key {
            ObjectKey::ClusterNetwork(_) => Api::<ClusterNetwork>::all(client)
                .get_opt(name)
                .await
                .map(|o| o.map(CatalogObject::from)),
            ObjectKey::TenantNetwork { .. } => Api::<TenantNetwork>::namespaced(client, ns)
                .get_opt(name)
                .await
                .map(|o| o.map(CatalogObject::from)),
            ObjectKey::DanmNet { .. } => Api::<DanmNet>::namespaced(client, ns)
                .get_opt(name)
                .await
                .map(|o| o.map(CatalogObject::from)),
            ObjectKey::DanmClusterNetwork(_) => Api::<DanmClusterNetwork>::all(client)
                .get_opt(name)
                .await
                .map(|o| o.map(CatalogObject::from)),
            ObjectKey::DanmTenantNetwork { .. } => Api::<DanmTenantNetwork>::namespaced(client, ns)
                .get_opt(name)
                .await
                .map(|o| o.map(CatalogObject::from)),
            ObjectKey::Nad { .. } => Api::<NetworkAttachmentDefinition>::namespaced(client, ns)
                .get_opt(name)
                .await
                .map(|o| o.map(CatalogObject::from)),
        };
        found.map_err(|e| ApiError::from_kube(what, e))
    }

    /// Everything the requests of a pod in `pod_namespace` may name: the objects of
    /// [`resolve::wanted`], then the networks its NADs name.
    pub async fn catalog_for(
        &self,
        pod_namespace: &str,
        request: Option<&plexus_model::PodRequest>,
        policy: &Policy,
    ) -> Result<Catalog, ApiError> {
        let mut catalog = Catalog::new();
        self.fetch(
            &resolve::wanted(pod_namespace, request, policy),
            &mut catalog,
        )
        .await?;
        let second: Vec<ObjectKey> = resolve::wanted_for_nads(&catalog)
            .into_iter()
            .filter(|k| catalog.get(k).is_none())
            .collect();
        self.fetch(&second, &mut catalog).await?;
        Ok(catalog)
    }

    /// The pod `key` names and its attachments, resolved: read the pod (UID checked),
    /// parse its request annotation, fetch what it may name, resolve.
    pub async fn pod_networks(
        &self,
        key: &PodKey,
        policy: &Policy,
    ) -> Result<(Pod, Vec<ResolvedAttachment>), ApiError> {
        let pod = self.pod(key).await?;
        let request = pod::pod_request(&pod, key)?;
        let catalog = self
            .catalog_for(&key.namespace, request.as_ref(), policy)
            .await?;
        let attachments = resolve::resolve(&key.namespace, request.as_ref(), &catalog, policy)?;
        Ok((pod, attachments))
    }

    /// Write `entries` as the network-status of the pod `key` names, whose UID must be
    /// `uid` (the one read before setting the pod up): if the pod was replaced meanwhile,
    /// nothing is written and the error is [`PodError::UidMismatch`]. `None` removes the
    /// annotation; a pod that no longer exists is then fine.
    pub async fn write_network_status(
        &self,
        key: &PodKey,
        uid: &str,
        entries: Option<&[NetworkStatusEntry]>,
    ) -> Result<(), ApiError> {
        let value = entries.map(status::render).transpose()?;
        let patch = pod::status_patch(uid, value.as_deref());
        let api: Api<Pod> = Api::namespaced(self.client.clone(), &key.namespace);
        let params = PatchParams {
            field_manager: Some(FIELD_MANAGER.to_owned()),
            ..PatchParams::default()
        };
        match api.patch(&key.name, &params, &Patch::Merge(&patch)).await {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(status)) if status.code == 404 && entries.is_none() => Ok(()),
            Err(kube::Error::Api(status)) if status.code == 404 => Err(PodError::NotFound {
                pod: key.to_string(),
            }
            .into()),
            // The UID precondition failed: the pod of that name is another incarnation.
            Err(kube::Error::Api(status)) if status.code == 409 || status.code == 422 => {
                let current = api
                    .get_opt(&key.name)
                    .await
                    .map_err(|e| ApiError::from_kube(format!("get pod {key}"), e))?;
                let found = current.and_then(|p| p.metadata.uid);
                if found.as_deref() != Some(uid) {
                    return Err(PodError::UidMismatch {
                        pod: key.to_string(),
                        expected: uid.to_owned(),
                        found,
                    }
                    .into());
                }
                Err(ApiError::from_kube(
                    format!("patch network-status of pod {key}"),
                    kube::Error::Api(status),
                ))
            }
            Err(e) => Err(ApiError::from_kube(
                format!("patch network-status of pod {key}"),
                e,
            )),
        }
    }
}
