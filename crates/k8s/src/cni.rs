//! How plexus-k8s' errors are reported to a CNI runtime: the one mapping of a pod's, a
//! resolution's and the API server's failures onto CNI codes (`docs/errors.md`,
//! "Kubernetes errors"), so the meta-plugin and the node agent report them alike.
//!
//! | error | code |
//! |---|---|
//! | `PodError::NotFound`, `PodError::UidMismatch` | 4 `INVALID_ENV` (`CNI_ARGS` names no current pod) |
//! | `PodError::Annotation`, `PodError::Status`, every `ResolveError` | 7 `INVALID_CONFIG` |
//! | `StatusError` (a status plexus built is invalid) | 999 `INTERNAL` |
//! | `ApiError::Kubeconfig`; `ApiError::Refused` 401, 403 | 7 `INVALID_CONFIG` |
//! | `ApiError::Refused` 408, 409, 429, 5xx; `ApiError::Transport` | 11 `TRY_AGAIN_LATER` |
//! | `ApiError::Refused`, any other code | 999 `INTERNAL` |

use plexus_cni::codes;

#[cfg(feature = "client")]
use crate::api::ApiError;
use crate::pod::PodError;
use crate::resolve::ResolveError;
use crate::status::StatusError;

/// Details of errors the runtime should simply retry.
#[cfg(feature = "client")]
const RETRY_LATER: &str = "retry the operation later";

impl PodError {
    /// The CNI code of this error.
    pub fn cni_code(&self) -> u32 {
        match self {
            PodError::NotFound { .. } | PodError::UidMismatch { .. } => codes::INVALID_ENV,
            PodError::Annotation { .. } | PodError::Status { .. } => codes::INVALID_CONFIG,
        }
    }

    /// This error as a CNI error.
    pub fn to_cni_error(&self) -> plexus_cni::Error {
        let details = match self {
            PodError::NotFound { .. } => {
                "K8S_POD_NAMESPACE and K8S_POD_NAME of CNI_ARGS name no existing pod"
            }
            PodError::UidMismatch { .. } => {
                "K8S_POD_UID of CNI_ARGS is an earlier incarnation of the pod; the new pod \
                 gets its own sandbox and its own addresses"
            }
            _ => "",
        };
        plexus_cni::Error::new(self.cni_code(), self.to_string(), details)
    }
}

impl ResolveError {
    /// The CNI code of this error: always 7, the pod's request or a network is at fault.
    pub fn cni_code(&self) -> u32 {
        codes::INVALID_CONFIG
    }

    /// This error as a CNI error.
    pub fn to_cni_error(&self) -> plexus_cni::Error {
        plexus_cni::Error::new(self.cni_code(), self.to_string(), "")
    }
}

impl StatusError {
    /// The CNI code of this error when plexus built the status: 999, a bug.
    pub fn cni_code(&self) -> u32 {
        codes::INTERNAL
    }
}

#[cfg(feature = "client")]
impl ApiError {
    /// The CNI code of this error.
    pub fn cni_code(&self) -> u32 {
        match self {
            ApiError::Kubeconfig { .. } => codes::INVALID_CONFIG,
            ApiError::Refused {
                code: 401 | 403, ..
            } => codes::INVALID_CONFIG,
            ApiError::Refused {
                code: 408 | 409 | 429 | 500..=599,
                ..
            }
            | ApiError::Transport { .. } => codes::TRY_AGAIN_LATER,
            ApiError::Refused { .. } => codes::INTERNAL,
            ApiError::Pod(e) => e.cni_code(),
            ApiError::Resolve(e) => e.cni_code(),
            ApiError::Status(e) => e.cni_code(),
        }
    }

    /// This error as a CNI error: the code, the message (naming the request and the
    /// server's answer, never a credential), and what to do when the code does not say it.
    pub fn to_cni_error(&self) -> plexus_cni::Error {
        match self {
            ApiError::Pod(e) => return e.to_cni_error(),
            ApiError::Resolve(e) => return e.to_cni_error(),
            _ => {}
        }
        let details = match self {
            ApiError::Refused { code: 401, .. } => {
                "the API server does not accept the kubeconfig's credentials"
            }
            ApiError::Refused { code: 403, .. } => {
                "the kubeconfig's user needs get on pods, networkattachmentdefinitions and \
                 the plexus.io and danm.k8s.io networks, and patch on pods"
            }
            _ if self.cni_code() == codes::TRY_AGAIN_LATER => RETRY_LATER,
            _ => "",
        };
        plexus_cni::Error::new(self.cni_code(), self.to_string(), details)
    }
}

#[cfg(all(test, feature = "client"))]
mod tests {
    use plexus_model::AnnotationError;

    use super::*;
    use crate::catalog::ObjectKey;

    fn refused(code: u16) -> ApiError {
        ApiError::Refused {
            what: "get pod a/b".into(),
            code,
            reason: "R".into(),
            message: "m".into(),
        }
    }

    #[test]
    fn every_error_has_its_code_and_a_message_naming_it() {
        let pod = || "team-a/web-0".to_owned();
        let cases: Vec<(ApiError, u32)> = vec![
            (
                ApiError::Kubeconfig {
                    path: "/etc/k".into(),
                    detail: "no such file".into(),
                },
                7,
            ),
            (refused(401), 7),
            (refused(403), 7),
            (refused(409), 11),
            (refused(429), 11),
            (refused(503), 11),
            (refused(400), 999),
            (
                ApiError::Transport {
                    what: "get pod a/b".into(),
                    detail: "connection refused".into(),
                },
                11,
            ),
            (PodError::NotFound { pod: pod() }.into(), 4),
            (
                PodError::UidMismatch {
                    pod: pod(),
                    expected: "u1".into(),
                    found: Some("u2".into()),
                }
                .into(),
                4,
            ),
            (
                PodError::Annotation {
                    pod: pod(),
                    source: AnnotationError::Conflict {
                        first: "a",
                        second: "b",
                    },
                }
                .into(),
                7,
            ),
            (
                ResolveError::NotFound {
                    what: "[0] network \"x\"".into(),
                    looked_for: vec![ObjectKey::DanmNet {
                        namespace: "team-a".into(),
                        name: "x".into(),
                    }],
                }
                .into(),
                7,
            ),
            (StatusError::EmptyName { index: 0 }.into(), 999),
        ];
        for (error, code) in cases {
            let cni = error.to_cni_error();
            assert_eq!(cni.code, code, "{error}");
            assert_eq!(cni.msg, error.to_string());
            assert!(!cni.msg.is_empty());
            if code == 11 {
                assert_eq!(cni.details, RETRY_LATER);
            }
        }
        assert!(
            refused(403)
                .to_cni_error()
                .details
                .contains("patch on pods")
        );
        let uid = ApiError::from(PodError::UidMismatch {
            pod: pod(),
            expected: "u1".into(),
            found: None,
        });
        assert!(uid.to_cni_error().details.contains("earlier incarnation"));
    }
}
