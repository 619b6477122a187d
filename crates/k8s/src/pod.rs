//! The pod a CNI call is for: its identity from `CNI_ARGS` (`K8S_POD_NAMESPACE`,
//! `K8S_POD_NAME`, `K8S_POD_UID`), the UID check, its request annotations and its
//! network-status. Pure; [`crate::api`] reads and patches the pod.
//!
//! **The UID check.** A StatefulSet pod deleted and re-created keeps its name; only its UID
//! changes. A CNI call carrying the old incarnation's UID (a late ADD, a DEL after the new
//! pod exists) must neither take the new pod's annotations nor write its network-status,
//! and a store keyed by name would hand the new pod the old one's addresses. So when the
//! runtime passes `K8S_POD_UID` the pod read must have it ([`PodError::UidMismatch`]), and
//! every network-status write carries it as a precondition ([`status_patch`]): the API
//! server refuses the write if the pod was replaced in between. Runtimes that pass no UID
//! (old CRI-O and containerd) get no check.

use k8s_openapi::api::core::v1::Pod;
use plexus_model::{AnnotationError, PodRequest, parse_pod_annotations};
use serde_json::json;

use crate::status::{self, NETWORK_STATUS, NetworkStatusEntry, StatusError};

/// Which pod (from `CNI_ARGS`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodKey {
    /// `K8S_POD_NAMESPACE`.
    pub namespace: String,
    /// `K8S_POD_NAME`.
    pub name: String,
    /// `K8S_POD_UID`, when the runtime passes it.
    pub uid: Option<String>,
}

impl std::fmt::Display for PodKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

/// Why a pod cannot be served.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PodError {
    /// No pod of that name.
    #[error("pod {pod} does not exist")]
    NotFound {
        /// `namespace/name`.
        pod: String,
    },
    /// The pod of that name is another incarnation.
    #[error(
        "pod {pod} has UID {}, but the runtime asked for UID {expected}: the pod was deleted and re-created",
        .found.as_deref().unwrap_or("(none)")
    )]
    UidMismatch {
        /// `namespace/name`.
        pod: String,
        /// `K8S_POD_UID`.
        expected: String,
        /// The UID of the pod read.
        found: Option<String>,
    },
    /// Its request annotation is malformed.
    #[error("pod {pod}: {source}")]
    Annotation {
        /// `namespace/name`.
        pod: String,
        /// The problem.
        source: AnnotationError,
    },
    /// Its network-status annotation is malformed.
    #[error("pod {pod}: {source}")]
    Status {
        /// `namespace/name`.
        pod: String,
        /// The problem.
        source: StatusError,
    },
}

/// Check that `pod` is the incarnation `key` names (when `key` has a UID).
pub fn check_uid(pod: &Pod, key: &PodKey) -> Result<(), PodError> {
    let Some(expected) = key.uid.as_deref().filter(|u| !u.is_empty()) else {
        return Ok(());
    };
    let found = pod.metadata.uid.as_deref();
    if found == Some(expected) {
        return Ok(());
    }
    Err(PodError::UidMismatch {
        pod: key.to_string(),
        expected: expected.to_owned(),
        found: found.map(ToOwned::to_owned),
    })
}

/// The pod's request annotation, parsed; `None` when it has none (the default network).
pub fn pod_request(pod: &Pod, key: &PodKey) -> Result<Option<PodRequest>, PodError> {
    let annotations = pod.metadata.annotations.iter().flatten();
    parse_pod_annotations(annotations).map_err(|source| PodError::Annotation {
        pod: key.to_string(),
        source,
    })
}

/// The pod's network-status, if it has one.
pub fn network_status(
    pod: &Pod,
    key: &PodKey,
) -> Result<Option<Vec<NetworkStatusEntry>>, PodError> {
    let Some(value) = pod
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(NETWORK_STATUS))
    else {
        return Ok(None);
    };
    status::parse(value)
        .map(Some)
        .map_err(|source| PodError::Status {
            pod: key.to_string(),
            source,
        })
}

/// The JSON merge patch that sets the network-status annotation to `value` (or removes
/// it, for `None`) on the pod with UID `uid` only: the API server refuses the patch when
/// the pod's UID differs (422: `metadata.uid` is immutable; checked on 1.20).
pub fn status_patch(uid: &str, value: Option<&str>) -> serde_json::Value {
    json!({
        "metadata": {
            "uid": uid,
            "annotations": { NETWORK_STATUS: value },
        }
    })
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn pod(uid: Option<&str>, annotations: &[(&str, &str)]) -> Pod {
        let mut pod = Pod::default();
        pod.metadata.name = Some("web-0".into());
        pod.metadata.namespace = Some("team-a".into());
        pod.metadata.uid = uid.map(Into::into);
        pod.metadata.annotations = Some(
            annotations
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect::<BTreeMap<_, _>>(),
        );
        pod
    }

    fn key(uid: Option<&str>) -> PodKey {
        PodKey {
            namespace: "team-a".into(),
            name: "web-0".into(),
            uid: uid.map(Into::into),
        }
    }

    #[test]
    fn the_uid_must_match_when_the_runtime_gives_one() {
        let p = pod(Some("u-2"), &[]);
        assert_eq!(check_uid(&p, &key(Some("u-2"))), Ok(()));
        assert_eq!(check_uid(&p, &key(None)), Ok(()));
        assert_eq!(check_uid(&p, &key(Some(""))), Ok(()));
        let err = check_uid(&p, &key(Some("u-1"))).unwrap_err();
        assert_eq!(
            err.to_string(),
            "pod team-a/web-0 has UID u-2, but the runtime asked for UID u-1: the pod was \
             deleted and re-created"
        );
        assert!(check_uid(&pod(None, &[]), &key(Some("u-1"))).is_err());
    }

    #[test]
    fn requests_and_status_come_from_the_annotations() {
        let p = pod(
            Some("u"),
            &[
                ("k8s.v1.cni.cncf.io/networks", "a, b@net7"),
                (NETWORK_STATUS, r#"[{"name":"x","default":true}]"#),
            ],
        );
        let request = pod_request(&p, &key(None)).unwrap().unwrap();
        assert_eq!(request.attachments.len(), 2);
        assert_eq!(request.attachments[1].interface.as_deref(), Some("net7"));
        let status = network_status(&p, &key(None)).unwrap().unwrap();
        assert!(status[0].default);

        assert_eq!(pod_request(&pod(None, &[]), &key(None)), Ok(None));
        assert_eq!(network_status(&pod(None, &[]), &key(None)), Ok(None));

        let bad = pod(
            None,
            &[(
                "danm.k8s.io/interfaces",
                r#"[{"clusterNetwork":"a","ip":"x"}]"#,
            )],
        );
        let err = pod_request(&bad, &key(None)).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("pod team-a/web-0: annotation danm.k8s.io/interfaces"),
            "{err}"
        );
        assert!(err.to_string().contains("[0].ip"), "{err}");
        let bad = pod(None, &[(NETWORK_STATUS, "{")]);
        assert!(matches!(
            network_status(&bad, &key(None)),
            Err(PodError::Status { .. })
        ));
    }

    #[test]
    fn the_status_patch_carries_the_uid_as_precondition() {
        assert_eq!(
            status_patch("u-1", Some("[]")),
            json!({"metadata": {"uid": "u-1", "annotations": {NETWORK_STATUS: "[]"}}})
        );
        assert_eq!(
            status_patch("u-1", None),
            json!({"metadata": {"uid": "u-1", "annotations": {NETWORK_STATUS: null}}})
        );
    }
}
