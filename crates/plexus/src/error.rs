//! The meta-plugin's errors and their CNI codes.
//!
//! Every failure is a [`PlexusError`]; the one `From` impl below maps it to a
//! [`plexus_cni::Error`] (code, message, details), which `plexus_cni::render_error` turns
//! into the JSON on stdout. The codes are `plexus_cni::codes` (100–105 shared with
//! `plexus-ipam`, 110 and up the meta-plugin's own); a store error takes the code and
//! details every plexus binary gives it (`StoreError::to_cni_error`), and a Kubernetes
//! error (the pod, its requests, the API server) the one plexus-k8s gives it
//! (`ApiError::to_cni_error`: a forbidden or missing network is 7, an unreachable API
//! server 11, a replaced pod 4).

use plexus_cni::Error as CniError;
use plexus_cni::codes::{
    self,
    plexus::{
        CHECK_FAILED, DATAPLANE, DELEGATE_FAILED, DEVICES_UNKNOWN, DUPLICATE_ADDRESS,
        MISSING_PARENT, NO_DEVICE, UNSUPPORTED_LINK,
    },
};
use plexus_model::AnnotationError;
use plexus_store::StoreError;

use crate::naming::NamingError;

/// Everything that can go wrong in the meta-plugin.
#[derive(Debug, thiserror::Error)]
pub enum PlexusError {
    /// An error that already carries its CNI code (from the protocol layer or a delegate's
    /// reply that is passed on as is).
    #[error("{}", .0.msg)]
    Cni(CniError),
    /// A field of the plexus network configuration is invalid.
    #[error("invalid plexus configuration: {field}: {reason}")]
    Config {
        /// The offending field, e.g. `timeouts.addMs`.
        field: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The request (annotation or `plexus.networks`) was refused.
    #[error("invalid network request: {0}")]
    Request(String),
    /// The pod annotation was refused.
    #[error(transparent)]
    Annotation(#[from] AnnotationError),
    /// A requested network does not exist or is invalid.
    #[error("network {reference}: {reason}")]
    Network {
        /// How the request named it (`clusterNetwork blue`, `network ns/red`).
        reference: String,
        /// Why it cannot be used.
        reason: String,
    },
    /// Interface names derived for the pod are unusable.
    #[error(transparent)]
    Naming(#[from] NamingError),
    /// The parent link of a built-in interface is missing on this node.
    #[error(
        "network {network}: parent link {parent:?} does not exist on this node (it is the \
         network's host_device, <NetworkID>.<vlan> or vx_<NetworkID>)"
    )]
    MissingParent {
        /// Network (qualified name).
        network: String,
        /// The parent name plexus looked for.
        parent: String,
    },
    /// A kernel operation failed.
    #[error("interface {ifname} of network {network}: {source}")]
    Dataplane {
        /// Network (qualified name).
        network: String,
        /// Pod interface name.
        ifname: String,
        /// What the kernel said.
        source: Box<plexus_netlink::Error>,
    },
    /// A store operation failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A delegated plugin failed or could not be run.
    #[error("network {network}: delegate {plugin} {verb} failed: {message}")]
    Delegate {
        /// Network (qualified name).
        network: String,
        /// The delegate binary.
        plugin: String,
        /// The CNI verb.
        verb: String,
        /// What went wrong (the delegate's `msg`, or why it could not run).
        message: String,
        /// The delegate's CNI code, when it answered with an error object.
        code: Option<u32>,
    },
    /// The ADD (or DEL) did not finish within its deadline.
    #[error("{verb} did not finish within {ms} ms")]
    Deadline {
        /// The verb.
        verb: &'static str,
        /// The deadline in milliseconds.
        ms: u128,
    },
    /// DEL or GC could not release what the store holds for the pod.
    #[error("could not release the addresses of {count} attachment(s) from the store")]
    ReleaseFailed {
        /// How many attachments kept their addresses.
        count: usize,
        /// One message per failure.
        details: Vec<String>,
    },
    /// Reading or writing plexus' own files (endpoint records, network definitions).
    #[error("{what} {path}: {source}")]
    Io {
        /// What plexus was doing.
        what: &'static str,
        /// The path.
        path: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// `duplicateAddressCheck` found every address it tried in use on the segment, or a
    /// static one, or could not finish the check.
    #[error("interface {ifname} of network {network}: {message}")]
    DuplicateAddress {
        /// Network.
        network: String,
        /// Interface.
        ifname: String,
        /// What was found (addresses and the MACs that hold them).
        message: String,
    },
    /// An interface finds no device of its network's device-plugin resource left for the
    /// pod.
    #[error("{0}")]
    NoDevice(Box<DeviceShortage>),
    /// The kubelet could not say which devices the pod holds.
    #[error(transparent)]
    DevicesUnknown(plexus_kubelet::DeviceError),
    /// CHECK found a difference.
    #[error("CHECK: {0}")]
    CheckFailed(String),
    /// The Kubernetes source: the pod, its requests or the API server.
    #[error(transparent)]
    Kube(#[from] plexus_k8s::api::ApiError),
    /// STATUS: plexus cannot service ADD.
    #[error("{0}")]
    NotAvailable(String),
}

impl From<CniError> for PlexusError {
    fn from(err: CniError) -> Self {
        PlexusError::Cni(err)
    }
}

/// An interface of a network with a device-plugin resource finds no device of it left.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "interface {ifname} of network {network}: no device of resource {resource} left for \
     pod {pod}: {origin} lists {} ({}) and the pod's interfaces on {resource} need {needed}; \
     request {needed} {resource} in the pod's resources.limits",
    .held.len(),
    if .held.is_empty() { "none".to_owned() } else { .held.join(", ") }
)]
pub struct DeviceShortage {
    /// Network.
    pub network: String,
    /// Interface.
    pub ifname: String,
    /// The device-plugin resource.
    pub resource: String,
    /// The pod (`namespace/name (uid …)`).
    pub pod: String,
    /// The devices of the resource the pod holds.
    pub held: Vec<String>,
    /// How many of the pod's interfaces take a device of the resource.
    pub needed: usize,
    /// Which kubelet source said so.
    pub origin: String,
}

impl PlexusError {
    /// Shorthand for a [`PlexusError::Config`].
    pub fn config(field: impl Into<String>, reason: impl Into<String>) -> Self {
        PlexusError::Config {
            field: field.into(),
            reason: reason.into(),
        }
    }

    /// The CNI code this error is reported with.
    pub fn code(&self) -> u32 {
        match self {
            PlexusError::Cni(inner) => inner.code,
            PlexusError::Config { .. }
            | PlexusError::Request(_)
            | PlexusError::Annotation(_)
            | PlexusError::Network { .. }
            | PlexusError::Naming(_) => codes::INVALID_CONFIG,
            PlexusError::MissingParent { .. } => MISSING_PARENT,
            PlexusError::Dataplane { source, .. } => match source.kind() {
                plexus_netlink::ErrorKind::Unsupported => UNSUPPORTED_LINK,
                _ => DATAPLANE,
            },
            PlexusError::Store(store) => store.cni_code(),
            PlexusError::Delegate { .. } => DELEGATE_FAILED,
            PlexusError::DuplicateAddress { .. } => DUPLICATE_ADDRESS,
            PlexusError::Deadline { .. } | PlexusError::ReleaseFailed { .. } => {
                codes::TRY_AGAIN_LATER
            }
            PlexusError::Io { .. } => codes::IO_FAILURE,
            PlexusError::CheckFailed(_) => CHECK_FAILED,
            PlexusError::NoDevice(_) => NO_DEVICE,
            PlexusError::DevicesUnknown(_) => DEVICES_UNKNOWN,
            PlexusError::NotAvailable(_) => codes::NOT_AVAILABLE,
            PlexusError::Kube(kube) => kube.cni_code(),
        }
    }
}

impl From<PlexusError> for CniError {
    fn from(err: PlexusError) -> Self {
        let code = err.code();
        let details = match &err {
            PlexusError::Cni(inner) => return inner.clone(),
            PlexusError::Store(store) => return store.to_cni_error(),
            PlexusError::Kube(kube) => return kube.to_cni_error(),
            PlexusError::Delegate { code: Some(c), .. } => {
                format!("the delegate answered CNI code {c}")
            }
            PlexusError::ReleaseFailed { details, .. } => details.join("; "),
            PlexusError::Deadline { .. } => {
                "everything set up so far was undone; retry the operation".to_owned()
            }
            PlexusError::NoDevice(_) | PlexusError::DevicesUnknown(_) => {
                "nothing was set up or allocated".to_owned()
            }
            PlexusError::DuplicateAddress { .. } => {
                "the conflicting addresses are quarantined in the store for the cool-down; \
                 everything set up was undone"
                    .to_owned()
            }
            _ => String::new(),
        };
        CniError::new(code, err.to_string(), details)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_follow_the_table() {
        let missing = PlexusError::MissingParent {
            network: "blue".into(),
            parent: "blue.700".into(),
        };
        let cni = CniError::from(missing);
        assert_eq!(cni.code, MISSING_PARENT);
        assert!(cni.msg.contains("\"blue.700\""), "{}", cni.msg);

        let exhausted = PlexusError::Store(StoreError::Exhausted {
            network: "n".into(),
            range_set: "r".into(),
        });
        assert_eq!(
            CniError::from(exhausted).code,
            codes::plexus::POOL_EXHAUSTED
        );

        let release = PlexusError::ReleaseFailed {
            count: 2,
            details: vec!["a".into(), "b".into()],
        };
        let cni = CniError::from(release);
        assert_eq!(cni.code, codes::TRY_AGAIN_LATER);
        assert_eq!(cni.details, "a; b");

        let passthrough = CniError::new(42, "x", "y");
        assert_eq!(
            CniError::from(PlexusError::Cni(passthrough.clone())),
            passthrough
        );
    }

    /// A store error is reported exactly as `plexus-ipam` reports it: one mapping.
    #[test]
    fn store_errors_take_the_shared_mapping() {
        let errors = [
            StoreError::Conflict {
                reason: "network blue is at revision 3, not 2".into(),
            },
            StoreError::Busy { reason: "x".into() },
            StoreError::Corrupt { reason: "x".into() },
            StoreError::Config {
                field: "ipam.store.type".into(),
                reason: "x".into(),
            },
        ];
        for store in errors {
            let shared = store.to_cni_error();
            let err = PlexusError::Store(store);
            assert_eq!(err.code(), shared.code);
            assert_eq!(CniError::from(err), shared);
        }
        let conflict = PlexusError::Store(StoreError::Conflict { reason: "r".into() });
        assert_eq!(conflict.code(), codes::TRY_AGAIN_LATER);
    }

    /// A Kubernetes error is reported exactly as plexus-k8s maps it.
    #[test]
    fn kubernetes_errors_take_plexus_k8s_mapping() {
        use plexus_k8s::api::ApiError;
        let unreachable = ApiError::Transport {
            what: "get pod a/b".into(),
            detail: "connection refused".into(),
        };
        let shared = unreachable.to_cni_error();
        let err = PlexusError::from(unreachable);
        assert_eq!(err.code(), codes::TRY_AGAIN_LATER);
        assert_eq!(CniError::from(err), shared);
        let missing = ApiError::from(plexus_k8s::resolve::ResolveError::NotFound {
            what: "[0] clusterNetwork \"x\"".into(),
            looked_for: Vec::new(),
        });
        let err = PlexusError::from(missing);
        assert_eq!(err.code(), codes::INVALID_CONFIG);
        assert!(CniError::from(err).msg.contains("not found"));
    }
}
