//! The Kubernetes source (netconf `kubeconfig`, DANM's key): the pod a CNI call is for and
//! its requests come from the API server, resolved by plexus-k8s, and its network-status
//! is written back there.
//!
//! Every rule lives in plexus-k8s; this module only wires it into the meta-plugin:
//! - ADD reads the pod `CNI_ARGS` names (its UID checked when the runtime passes one, so a
//!   late call for a deleted incarnation never takes the new pod's requests), parses its
//!   request annotation (`plexus.io/interfaces`, `danm.k8s.io/interfaces`,
//!   `danm.io/interfaces`, NPWG `k8s.v1.cni.cncf.io/networks`) unless `runtimeConfig` or
//!   `args.cni` carries `plexus.networks`, fetches the objects those may name and resolves
//!   them (`plexus_k8s::resolve`: DANM's lookup order and default network, AllowedTenants,
//!   NADs and the plexus networks they name). The resolved networks replace the
//!   [`crate::networks::NetworkSource`] lookups; planning and set-up are unchanged.
//! - After a successful ADD, one network-status entry per attachment
//!   (`plexus_k8s::status::entry_from_result`) is written with the pod's UID as
//!   precondition: a pod replaced meanwhile is not written to, and the ADD fails and is
//!   undone.
//! - DEL removes the network-status annotation of the pod's incarnation; a pod that is gone
//!   or was replaced is left alone (DEL stays idempotent).
//!
//! Errors are plexus-k8s' `ApiError`, reported with its CNI mapping
//! ([`PlexusError::Kube`]).

use std::path::Path;

use plexus_cni::{Error as CniError, SuccessResult, codes};
use plexus_k8s::api::{ApiError, KubeApi};
use plexus_k8s::pod::{PodError, PodKey};
use plexus_k8s::resolve::{self, Policy, ResolvedAttachment, Target};
use plexus_k8s::status::{NetworkStatusEntry, entry_from_result};
use plexus_model::{AttachmentRequest, NetworkKind, NetworkRefKind, PodRequest, RequestFormat};

use crate::add::default_request;
use crate::error::PlexusError;
use crate::networks::Network;
use crate::request::PodIdentity;

/// A connection to the API server for one pod.
#[derive(Debug, Clone)]
pub struct KubeSource {
    api: KubeApi,
    key: PodKey,
    policy: Policy,
}

/// The pod as read for an ADD: the incarnation and its attachments, resolved.
#[derive(Debug, Clone)]
pub struct KubePod {
    /// The UID of the pod read (the network-status write's precondition).
    pub uid: Option<String>,
    /// Every attachment, in interface order (the default network first when it applies).
    pub attachments: Vec<ResolvedAttachment>,
}

impl KubeSource {
    /// A client from `kubeconfig` (empty: in-cluster) for the pod of `CNI_ARGS`.
    pub async fn connect(
        kubeconfig: &Path,
        pod: &PodIdentity,
        default_network: &str,
    ) -> Result<KubeSource, PlexusError> {
        let Some(name) = pod.name.clone().filter(|n| !n.is_empty()) else {
            return Err(PlexusError::Cni(CniError::new(
                codes::INVALID_ENV,
                "kubeconfig is set but CNI_ARGS has no K8S_POD_NAME",
                "the runtime must pass K8S_POD_NAMESPACE and K8S_POD_NAME (and K8S_POD_UID)",
            )));
        };
        let api = KubeApi::from_kubeconfig(Some(kubeconfig)).await?;
        Ok(KubeSource {
            api,
            key: PodKey {
                namespace: pod.namespace.clone(),
                name,
                uid: pod.uid.clone().filter(|u| !u.is_empty()),
            },
            policy: Policy {
                default_network: default_network.to_owned(),
                ..Policy::default()
            },
        })
    }

    /// The pod this source serves.
    pub fn key(&self) -> &PodKey {
        &self.key
    }

    /// Reads the pod (UID checked) and resolves its attachments: `runtime` (the
    /// `plexus.networks` of `runtimeConfig`/`args.cni`, in DANM's format; `Some(empty)`
    /// means the default network) when given, else the pod's request annotation.
    pub async fn pod(
        &self,
        runtime: Option<Option<Vec<AttachmentRequest>>>,
    ) -> Result<KubePod, PlexusError> {
        let ns = &self.key.namespace;
        let (uid, attachments) = match runtime {
            None => {
                let (pod, attachments) = self.api.pod_networks(&self.key, &self.policy).await?;
                (pod.metadata.uid, attachments)
            }
            Some(list) => {
                let pod = self.api.pod(&self.key).await?;
                let request = PodRequest {
                    key: crate::request::NETWORKS_KEY,
                    format: RequestFormat::Danm,
                    attachments: list.unwrap_or_default(),
                };
                let catalog = self
                    .api
                    .catalog_for(ns, Some(&request), &self.policy)
                    .await?;
                let attachments = resolve::resolve(ns, Some(&request), &catalog, &self.policy)
                    .map_err(ApiError::from)?;
                (pod.metadata.uid, attachments)
            }
        };
        Ok(KubePod { uid, attachments })
    }

    /// Writes the network-status of a successful ADD: one entry per attachment of `pod`,
    /// from its part of the result (`parts`, in the same order).
    pub async fn write_status(
        &self,
        pod: &KubePod,
        parts: &[SuccessResult],
    ) -> Result<(), PlexusError> {
        let Some(uid) = &pod.uid else {
            tracing::warn!(pod = %self.key, "the pod has no UID; network-status not written");
            return Ok(());
        };
        let entries = status_entries(pod, parts);
        self.api
            .write_network_status(&self.key, uid, Some(&entries))
            .await?;
        Ok(())
    }

    /// Removes the network-status of the pod's incarnation (`K8S_POD_UID`, else `recorded`,
    /// the UID the endpoint record kept, else the current pod's). A pod that is gone, or
    /// that is another incarnation, is left alone.
    pub async fn remove_status(&self, recorded: Option<&str>) -> Result<(), PlexusError> {
        let uid = match self
            .key
            .uid
            .as_deref()
            .or(recorded.filter(|u| !u.is_empty()))
        {
            Some(uid) => uid.to_owned(),
            None => match self.api.pod(&self.key).await {
                Ok(pod) => match pod.metadata.uid {
                    Some(uid) => uid,
                    None => return Ok(()),
                },
                Err(ApiError::Pod(PodError::NotFound { .. })) => return Ok(()),
                Err(e) => return Err(e.into()),
            },
        };
        match self.api.write_network_status(&self.key, &uid, None).await {
            Ok(()) => Ok(()),
            Err(ApiError::Pod(PodError::UidMismatch { .. } | PodError::NotFound { .. })) => {
                tracing::info!(pod = %self.key, "DEL: the pod was replaced; its status is not ours");
                Ok(())
            }
            Err(e) => Err(e.into()),
        }
    }
}

/// The network-status entries of `pod`'s attachments from their results.
pub fn status_entries(pod: &KubePod, parts: &[SuccessResult]) -> Vec<NetworkStatusEntry> {
    pod.attachments
        .iter()
        .zip(parts)
        .map(|(a, result)| {
            let default_route = a
                .request
                .as_ref()
                .map(|r| r.default_route.clone())
                .unwrap_or_default();
            entry_from_result(&a.status_name(), a.default, &default_route, result)
        })
        .collect()
}

impl KubePod {
    /// Each attachment as the planner takes it: its request (DANM's default request for
    /// the default network) and the plexus network serving it.
    pub fn requests(&self) -> Result<Vec<(AttachmentRequest, Network)>, PlexusError> {
        self.attachments.iter().map(planned_input).collect()
    }
}

fn planned_input(a: &ResolvedAttachment) -> Result<(AttachmentRequest, Network), PlexusError> {
    let Some(resolved) = a.network() else {
        let nad = match &a.target {
            Target::Nad { key, .. } => key.to_string(),
            Target::Network(n) => n.key.to_string(),
        };
        return Err(PlexusError::Network {
            reference: nad,
            reason: "its configuration names no plexus network; the meta-plugin serves \
                     NetworkAttachmentDefinitions whose config is {\"type\": \"plexus\"} with \
                     clusterNetwork, tenantNetwork or network"
                .to_owned(),
        });
    };
    let network = Network {
        valid: resolved.valid.clone(),
        annotations: resolved.annotations.clone(),
    };
    let request = match &a.request {
        Some(r) => r.clone(),
        None => {
            let kind = match network.valid.kind {
                NetworkKind::DanmNet => NetworkRefKind::DanmNet,
                NetworkKind::TenantNetwork => NetworkRefKind::TenantNetwork,
                NetworkKind::ClusterNetwork => NetworkRefKind::ClusterNetwork,
            };
            default_request(kind, resolved.key.name(), &network)?
        }
    };
    Ok((request, network))
}

#[cfg(test)]
mod tests {
    use plexus_cni::{Interface, IpConfig};
    use plexus_k8s::catalog::ObjectKey;
    use plexus_k8s::resolve::ResolvedNetwork;
    use plexus_model::{NetworkObject, Operation, validate};

    use super::*;

    fn network(name: &str) -> ResolvedNetwork {
        let object: NetworkObject = serde_json::from_value(serde_json::json!({
            "apiVersion": "plexus.io/v1", "kind": "ClusterNetwork",
            "metadata": {"name": name},
            "spec": {"NetworkID": name, "NetworkType": "macvlan",
                     "Options": {"host_device": "eth1", "cidr": "10.9.0.0/24"}}}))
        .unwrap();
        ResolvedNetwork {
            key: ObjectKey::ClusterNetwork(name.into()),
            valid: validate(&object, Operation::Update).unwrap(),
            annotations: Default::default(),
        }
    }

    #[test]
    fn the_default_network_gets_danms_request_and_a_foreign_nad_is_refused() {
        let pod = KubePod {
            uid: Some("u".into()),
            attachments: vec![ResolvedAttachment {
                request: None,
                default: true,
                target: Target::Network(network("dflt")),
            }],
        };
        let inputs = pod.requests().unwrap();
        assert_eq!(inputs[0].0.network.name, "dflt");
        assert_eq!(inputs[0].0.network.kind, NetworkRefKind::ClusterNetwork);
        assert_eq!(inputs[0].0.ipv4, plexus_model::AddressRequest::Dynamic);
        assert_eq!(inputs[0].1.qualified_name(), "dflt");

        let foreign = KubePod {
            uid: None,
            attachments: vec![ResolvedAttachment {
                request: None,
                default: false,
                target: Target::Nad {
                    key: ObjectKey::Nad {
                        namespace: "ns".into(),
                        name: "br".into(),
                    },
                    config: None,
                    network: None,
                },
            }],
        };
        let err = foreign.requests().unwrap_err();
        assert_eq!(err.code(), codes::INVALID_CONFIG);
        assert!(err.to_string().contains("ns/br"), "{err}");
    }

    #[test]
    fn status_entries_name_each_attachment_with_its_own_result() {
        let pod = KubePod {
            uid: Some("u".into()),
            attachments: vec![ResolvedAttachment {
                request: None,
                default: true,
                target: Target::Network(network("dflt")),
            }],
        };
        let part = SuccessResult {
            interfaces: vec![Interface {
                name: "eth0".into(),
                sandbox: Some("/run/netns/x".into()),
                ..Interface::default()
            }],
            ips: vec![IpConfig {
                address: "10.9.0.5/24".parse().unwrap(),
                gateway: None,
                interface: Some(0),
            }],
            ..SuccessResult::default()
        };
        let entries = status_entries(&pod, &[part]);
        assert_eq!(entries.len(), 1);
        assert_eq!(entries[0].name, "dflt");
        assert!(entries[0].default);
        assert_eq!(entries[0].interface.as_deref(), Some("eth0"));
        assert_eq!(
            entries[0].ips,
            vec!["10.9.0.5".parse::<std::net::IpAddr>().unwrap()]
        );
    }
}
