//! Interfaces the kernel does not manage: vhost-user and memif sockets of user-space
//! dataplanes (OVS-DPDK, VPP) and DPDK-bound devices, which a delegate reports but which
//! are no links in the pod's netns.
//!
//! After a delegate's ADD, its interface is user-space when the network says so
//! (NetworkType `userspace`, or [`USERSPACE_ANNOTATION`] `"true"`), when the delegate
//! reports it with a `socketPath`, or when the pod has no kernel link of the name the
//! delegate reported. Such an interface gets no post-processing — no address, route,
//! policy route, sysctl, DAD or announcement, all of which need a kernel link — and a
//! warning names it and its network, so that a kernel link that vanished is still
//! visible in the logs (DANM's fix for the same problem). The ADD succeeds; the result
//! carries the delegate's interface as reported and plexus' addresses for it; CHECK skips
//! its kernel checks; DEL and GC release its addresses like any other.
//!
//! The `userspace` type is the userspace CNI (`intel/userspace-cni-network-plugin`),
//! configured from `<cniDir>/<NetworkID>.conf` like any static delegate; the network's
//! [`SOCKET_DIR_ANNOTATION`] is passed to it as `sharedDir`, the host directory its
//! sockets are created in.

use std::path::Path;

use plexus_cni::{Interface, SuccessResult};
use plexus_netlink::{Dataplane, Netns};
use serde_json::Value;

use crate::error::PlexusError;
use crate::networks::{Network, SOCKET_DIR_ANNOTATION, USERSPACE_ANNOTATION};
use crate::plan::Planned;

/// The NetworkType of userspace CNI networks.
pub const USERSPACE_TYPE: &str = "userspace";

/// Whether the network marks its delegate's interfaces as user-space.
pub fn marked(network: &Network) -> Result<bool, PlexusError> {
    if network
        .valid
        .network_type
        .eq_ignore_ascii_case(USERSPACE_TYPE)
    {
        return Ok(true);
    }
    match network.annotation(USERSPACE_ANNOTATION) {
        None => Ok(false),
        Some(v) if v.eq_ignore_ascii_case("true") => Ok(true),
        Some(v) if v.eq_ignore_ascii_case("false") => Ok(false),
        Some(v) => Err(PlexusError::Network {
            reference: network.qualified_name(),
            reason: format!(
                "annotation {USERSPACE_ANNOTATION} must be \"true\" or \"false\", found {:?}",
                v.chars().take(64).collect::<String>()
            ),
        }),
    }
}

/// Passes the network's socket directory to a userspace CNI chain as `sharedDir` of its
/// first plugin. Without the annotation the configuration must name one itself
/// (`sharedDir`), or give the plugin a `kubeconfig` to find it.
pub fn pass_socket_dir(network: &Network, plugins: &mut [Value]) -> Result<(), PlexusError> {
    let bad = |reason: String| PlexusError::Network {
        reference: network.qualified_name(),
        reason,
    };
    let Some(first) = plugins.first_mut().and_then(Value::as_object_mut) else {
        return Ok(());
    };
    match network.annotation(SOCKET_DIR_ANNOTATION) {
        Some(dir) => {
            check_dir(dir)
                .map_err(|reason| bad(format!("annotation {SOCKET_DIR_ANNOTATION}: {reason}")))?;
            first.insert("sharedDir".into(), Value::String(dir.to_owned()));
            Ok(())
        }
        None if first.get("sharedDir").is_some_and(Value::is_string)
            || first.get("kubeconfig").is_some_and(Value::is_string) =>
        {
            Ok(())
        }
        None => Err(bad(format!(
            "the userspace CNI needs the host directory of its sockets: set the \
             {SOCKET_DIR_ANNOTATION} annotation on the network or \"sharedDir\" in \
             {}.conf",
            network.valid.network_id
        ))),
    }
}

/// An absolute, normal path without control characters.
fn check_dir(dir: &str) -> Result<(), String> {
    let path = Path::new(dir);
    if !path.is_absolute() {
        return Err(format!("{dir:?} is not an absolute path"));
    }
    if dir.chars().any(char::is_control) {
        return Err("it contains a control character".to_owned());
    }
    // Not `Path::components`, which drops the `.` it would have to report.
    if dir
        .split('/')
        .any(|segment| segment == "." || segment == "..")
    {
        return Err(format!("{dir:?} contains '.' or '..'"));
    }
    Ok(())
}

/// The delegate's own interface in its result: the one in the pod named as requested,
/// else the first in the pod (a delegate that named it otherwise), else the first with a
/// socket.
pub fn own_interface(result: &SuccessResult, requested: &str) -> Option<usize> {
    let ifaces = &result.interfaces;
    ifaces
        .iter()
        .position(|i| i.name == requested && i.sandbox.is_some())
        .or_else(|| ifaces.iter().position(|i| i.sandbox.is_some()))
        .or_else(|| ifaces.iter().position(|i| i.socket_path.is_some()))
}

/// Why an interface is not a kernel link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NotKernel {
    /// The network marks its delegate as user-space.
    Marked,
    /// The delegate reported a socket.
    Socket(String),
    /// No link of that name in the pod.
    NoLink,
}

impl std::fmt::Display for NotKernel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NotKernel::Marked => f.write_str(
                "the network marks its delegate as user-space (NetworkType userspace or \
                 plexus.io/userspace)",
            ),
            NotKernel::Socket(path) => write!(f, "the delegate reported socketPath {path}"),
            NotKernel::NoLink => f.write_str("the pod has no kernel link of that name"),
        }
    }
}

/// Decides whether the delegate's interface `link` (its `own` entry, if it reported one)
/// is left alone; asks the kernel only when neither the network nor the result says.
pub async fn not_kernel_managed(
    dp: &dyn Dataplane,
    pod: &Netns,
    planned: &Planned,
    own: Option<&Interface>,
    link: &str,
) -> Result<Option<NotKernel>, PlexusError> {
    if planned.userspace {
        return Ok(Some(NotKernel::Marked));
    }
    if let Some(path) = own.and_then(|i| i.socket_path.clone()) {
        return Ok(Some(NotKernel::Socket(path)));
    }
    let present = dp
        .link(pod, link)
        .await
        .map_err(|source| PlexusError::Dataplane {
            network: planned.network_name(),
            ifname: link.to_owned(),
            source: Box::new(source),
        })?;
    Ok(present.is_none().then_some(NotKernel::NoLink))
}

/// The warning for a user-space interface (on stderr, at the default level).
pub fn warn(planned: &Planned, link: &str, why: &NotKernel) {
    tracing::warn!(
        interface = %link,
        network = %planned.network_name(),
        reason = %why,
        "interface {link} of network {} is not managed by the kernel: no address, route, \
         policy route, sysctl, DAD or announcement is configured on it",
        planned.network_name()
    );
}

#[cfg(test)]
pub(crate) mod tests {
    use plexus_model::{NetworkObject, Operation, validate};
    use serde_json::json;

    use super::*;

    /// A validated ClusterNetwork `name` of `network_type` with `options` and
    /// `annotations`.
    pub(crate) fn network(
        network_type: &str,
        options: serde_json::Value,
        annotations: serde_json::Value,
    ) -> Network {
        let object: NetworkObject = serde_json::from_value(json!({
            "apiVersion": "plexus.io/v1", "kind": "ClusterNetwork",
            "metadata": {"name": "n1", "annotations": annotations},
            "spec": {"NetworkID": "n1", "NetworkType": network_type, "Options": options}}))
        .unwrap();
        let valid = validate(&object, Operation::Create).unwrap();
        Network {
            valid,
            annotations: object.metadata.annotations.clone(),
        }
    }

    #[test]
    fn the_userspace_type_and_the_annotation_mark_a_network() {
        let plain = json!({"cidr": "10.0.0.0/24"});
        assert!(marked(&network("userspace", plain.clone(), json!({}))).unwrap());
        assert!(!marked(&network("host-device", plain.clone(), json!({}))).unwrap());
        let with = |v: &str| {
            network(
                "host-device",
                plain.clone(),
                json!({USERSPACE_ANNOTATION: v}),
            )
        };
        assert!(marked(&with("TRUE")).unwrap());
        assert!(!marked(&with("false")).unwrap());
        let err = marked(&with("yes")).unwrap_err().to_string();
        assert!(
            err.contains(USERSPACE_ANNOTATION) && err.contains("\"yes\""),
            "{err}"
        );
    }

    #[test]
    fn the_socket_directory_becomes_shared_dir_or_must_be_configured() {
        let options = json!({"cidr": "10.0.0.0/24"});
        let annotated = network(
            "userspace",
            options.clone(),
            json!({SOCKET_DIR_ANNOTATION: "/var/run/vhost"}),
        );
        let mut plugins = vec![json!({"type": "userspace", "sharedDir": "/old"})];
        pass_socket_dir(&annotated, &mut plugins).unwrap();
        assert_eq!(plugins[0]["sharedDir"], json!("/var/run/vhost"));

        let bare = network("userspace", options.clone(), json!({}));
        let mut own = vec![json!({"type": "userspace", "sharedDir": "/run/vpp"})];
        pass_socket_dir(&bare, &mut own).unwrap();
        assert_eq!(own[0]["sharedDir"], json!("/run/vpp"));
        let err = pass_socket_dir(&bare, &mut [json!({"type": "userspace"})])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains(SOCKET_DIR_ANNOTATION) && err.contains("n1.conf"),
            "{err}"
        );

        let relative = network(
            "userspace",
            options,
            json!({SOCKET_DIR_ANNOTATION: "run/x"}),
        );
        let err = pass_socket_dir(&relative, &mut [json!({})])
            .unwrap_err()
            .to_string();
        assert!(err.contains("not an absolute path"), "{err}");
    }

    #[test]
    fn socket_dirs_must_be_plain_absolute_paths() {
        assert!(check_dir("/var/run/vhost").is_ok());
        for bad in ["run/vhost", "/a/../b", "/a/./b", "/a\nb"] {
            assert!(check_dir(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn the_own_interface_is_found_by_name_then_sandbox_then_socket() {
        let iface = |name: &str, sandbox: bool, socket: bool| Interface {
            name: name.into(),
            sandbox: sandbox.then(|| "/run/netns/p".into()),
            socket_path: socket.then(|| "/var/run/s.sock".into()),
            ..Interface::default()
        };
        let result = |ifaces: Vec<Interface>| SuccessResult {
            interfaces: ifaces,
            ..SuccessResult::default()
        };
        let r = result(vec![iface("br0", false, false), iface("net1", true, false)]);
        assert_eq!(own_interface(&r, "net1"), Some(1));
        assert_eq!(
            own_interface(&r, "eth5"),
            Some(1),
            "renamed by the delegate"
        );
        let r = result(vec![iface("br0", false, false), iface("vhu", false, true)]);
        assert_eq!(own_interface(&r, "net1"), Some(1));
        assert_eq!(own_interface(&result(vec![]), "net1"), None);
    }
}
