//! What the pod asks for, and where that comes from.
//!
//! In order: `runtimeConfig["plexus.networks"]`, then `args.cni["plexus.networks"]` (a list
//! in DANM's interfaces format, as JSON or as a string holding JSON), then the pod's
//! annotations from a [`RequestSource`] (the Kubernetes seam: `plexus.io/interfaces`,
//! `danm.k8s.io/interfaces`, `danm.io/interfaces`, NPWG), else the default network with
//! one interface and a dynamic IPv4 address (DANM's rule). An empty list also means the
//! default network. With `kubeconfig` the annotations are read and resolved by the
//! Kubernetes source ([`crate::kube`]); `plexus.networks` still wins there.

use std::collections::BTreeMap;

use async_trait::async_trait;
use plexus_cni::NetConf;
use plexus_model::{AttachmentRequest, parse_danm_interfaces, parse_pod_annotations};
use serde_json::Value;

use crate::error::PlexusError;

/// The key under `runtimeConfig` and `args.cni` holding the request.
pub const NETWORKS_KEY: &str = "plexus.networks";

/// Which pod a CNI call is for (from `CNI_ARGS`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PodIdentity {
    /// `K8S_POD_NAMESPACE`, `default` when absent.
    pub namespace: String,
    /// `K8S_POD_NAME`, if given.
    pub name: Option<String>,
    /// `K8S_POD_UID`, if given.
    pub uid: Option<String>,
}

/// A provider of pod annotations: the seam the Kubernetes source plugs into.
#[async_trait]
pub trait RequestSource: Send + Sync {
    /// The annotations of `pod`; `Ok(None)` when the source does not know the pod.
    async fn annotations(
        &self,
        pod: &PodIdentity,
    ) -> Result<Option<BTreeMap<String, String>>, PlexusError>;
}

/// A [`RequestSource`] holding fixed annotations per `namespace/name` (for tests and for
/// runtimes that hand plexus the annotations themselves).
#[derive(Debug, Clone, Default)]
pub struct StaticRequestSource {
    pods: BTreeMap<String, BTreeMap<String, String>>,
}

impl StaticRequestSource {
    /// An empty source.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds the annotations of pod `namespace/name`.
    pub fn with_pod(
        mut self,
        namespace: &str,
        name: &str,
        annotations: impl IntoIterator<Item = (String, String)>,
    ) -> Self {
        self.pods.insert(
            format!("{namespace}/{name}"),
            annotations.into_iter().collect(),
        );
        self
    }
}

#[async_trait]
impl RequestSource for StaticRequestSource {
    async fn annotations(
        &self,
        pod: &PodIdentity,
    ) -> Result<Option<BTreeMap<String, String>>, PlexusError> {
        let Some(name) = &pod.name else {
            return Ok(None);
        };
        Ok(self.pods.get(&format!("{}/{name}", pod.namespace)).cloned())
    }
}

/// Where the request came from, for logs and endpoint records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// `runtimeConfig` or `args.cni`.
    Runtime(&'static str),
    /// A pod annotation (its key).
    Annotation(&'static str),
    /// Nothing was requested: the default network.
    Default,
}

/// A request and where it came from: `Some(list)` of attachments, or `None` for the
/// default network.
pub type Requested = (Origin, Option<Vec<AttachmentRequest>>);

/// The request `runtimeConfig` or `args.cni` carries under [`NETWORKS_KEY`], if any:
/// `Some(list)` of attachments, or `None` (an empty list) for the default network.
pub fn runtime_request(conf: &NetConf) -> Result<Option<Requested>, PlexusError> {
    let from_args = conf
        .args
        .as_ref()
        .and_then(|a| a.get("cni"))
        .and_then(|c| c.get(NETWORKS_KEY));
    for (origin, value) in [
        ("runtimeConfig", conf.runtime_config.get(NETWORKS_KEY)),
        ("args.cni", from_args),
    ] {
        let Some(value) = value.filter(|v| !v.is_null()) else {
            continue;
        };
        let text = match value {
            Value::String(text) => text.clone(),
            other => other.to_string(),
        };
        let list = parse_danm_interfaces(&text)
            .map_err(|e| PlexusError::Request(format!("{origin}.{NETWORKS_KEY}: {e}")))?;
        let origin = Origin::Runtime(origin);
        return Ok(Some((origin, (!list.is_empty()).then_some(list))));
    }
    Ok(None)
}

/// The pod's request: `Some(list)` of attachments, or `None` for the default network.
pub async fn pod_request(
    conf: &NetConf,
    source: Option<&dyn RequestSource>,
    pod: &PodIdentity,
) -> Result<(Origin, Option<Vec<AttachmentRequest>>), PlexusError> {
    if let Some(runtime) = runtime_request(conf)? {
        return Ok(runtime);
    }
    if let Some(source) = source
        && let Some(annotations) = source.annotations(pod).await?
        && let Some(request) = parse_pod_annotations(&annotations)?
    {
        let list = request.attachments;
        return Ok((
            Origin::Annotation(request.key),
            (!list.is_empty()).then_some(list),
        ));
    }
    Ok((Origin::Default, None))
}

#[cfg(test)]
mod tests {
    use plexus_model::{AddressRequest, NetworkRefKind};
    use serde_json::json;

    use super::*;

    fn conf(extra: Value) -> NetConf {
        let mut raw = json!({"cniVersion": "1.1.0", "name": "p", "type": "plexus"});
        for (k, v) in extra.as_object().unwrap() {
            raw[k] = v.clone();
        }
        NetConf::parse(raw.to_string().as_bytes()).unwrap()
    }

    fn block_on<F: std::future::Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(f)
    }

    fn pod() -> PodIdentity {
        PodIdentity {
            namespace: "ns".into(),
            name: Some("p1".into()),
            uid: None,
        }
    }

    #[test]
    fn runtime_config_wins_then_args_then_annotations_then_default() {
        let source = StaticRequestSource::new().with_pod(
            "ns",
            "p1",
            [(
                "danm.k8s.io/interfaces".to_owned(),
                r#"[{"clusterNetwork":"fromannotation"}]"#.to_owned(),
            )],
        );
        let rc = conf(json!({"runtimeConfig": {"plexus.networks":
            [{"clusterNetwork": "a", "ip": "dynamic"}, {"network": "b", "ip6": "none"}]},
            "args": {"cni": {"plexus.networks": [{"clusterNetwork": "x"}]}}}));
        let (origin, list) = block_on(pod_request(&rc, Some(&source), &pod())).unwrap();
        assert_eq!(origin, Origin::Runtime("runtimeConfig"));
        let list = list.unwrap();
        assert_eq!(list.len(), 2);
        assert_eq!(list[0].ipv4, AddressRequest::Dynamic);
        assert_eq!(list[1].network.kind, NetworkRefKind::DanmNet);

        let args = conf(json!({"args": {"cni": {"plexus.networks":
            "[{\"clusterNetwork\": \"x\"}]"}}}));
        let (origin, list) = block_on(pod_request(&args, Some(&source), &pod())).unwrap();
        assert_eq!(origin, Origin::Runtime("args.cni"));
        assert_eq!(list.unwrap()[0].network.name, "x");

        let plain = conf(json!({}));
        let (origin, list) = block_on(pod_request(&plain, Some(&source), &pod())).unwrap();
        assert_eq!(origin, Origin::Annotation("danm.k8s.io/interfaces"));
        assert_eq!(list.unwrap()[0].network.name, "fromannotation");

        let (origin, list) = block_on(pod_request(&plain, None, &pod())).unwrap();
        assert_eq!((origin, list), (Origin::Default, None));
        let empty = conf(json!({"runtimeConfig": {"plexus.networks": []}}));
        assert_eq!(block_on(pod_request(&empty, None, &pod())).unwrap().1, None);
    }

    #[test]
    fn bad_requests_are_refused_with_the_location() {
        let unknown = conf(json!({"runtimeConfig": {"plexus.networks":
            [{"clusterNetwork": "a", "colour": "red"}]}}));
        let err = block_on(pod_request(&unknown, None, &pod())).unwrap_err();
        assert!(
            err.to_string().contains("runtimeConfig.plexus.networks"),
            "{err}"
        );
        assert!(err.to_string().contains("colour"), "{err}");
        let two = conf(json!({"runtimeConfig": {"plexus.networks":
            [{"clusterNetwork": "a", "network": "b"}]}}));
        assert!(block_on(pod_request(&two, None, &pod())).is_err());
        let source = StaticRequestSource::new().with_pod(
            "ns",
            "p1",
            [("plexus.io/interfaces".to_owned(), "not json".to_owned())],
        );
        let plain = conf(json!({}));
        let err = block_on(pod_request(&plain, Some(&source), &pod())).unwrap_err();
        assert!(matches!(err, PlexusError::Annotation(_)), "{err}");
    }
}
