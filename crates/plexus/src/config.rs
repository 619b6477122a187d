//! The plexus network configuration (the netconf of `"type": "plexus"`).
//!
//! ```json
//! {"cniVersion": "1.1.0", "name": "plexus", "type": "plexus",
//!  "store": {"type": "sqlite", "path": "/var/lib/plexus/plexus.db"},
//!  "networksDir": "/etc/plexus/networks", "cniDir": "/etc/cni/net.d",
//!  "stateDir": "/var/lib/plexus/endpoints", "namingScheme": "indexed",
//!  "defaultNetwork": "default", "nodeName": "worker-1", "maxParallel": 4,
//!  "timeouts": {"addMs": 30000, "delMs": 20000}, "logLevel": "info",
//!  "duplicateAddress": {"attempts": 3, "cooldownSeconds": 600},
//!  "kubelet": {"podResourcesSocket": "/var/lib/kubelet/pod-resources/kubelet.sock",
//!              "checkpointFile": "/var/lib/kubelet/device-plugins/kubelet_internal_checkpoint",
//!              "timeoutMs": 2000},
//!  "kubeconfig": "/etc/cni/net.d/plexus.d/plexus.kubeconfig"}
//! ```
//! Every key is optional. `kubeconfig` (DANM's key) turns on the Kubernetes source
//! ([`crate::kube`]): the pod's requests and networks come from the API server, and its
//! network-status is written there; an empty string means the in-cluster configuration. `cniDir` defaults to `CNI_CONF_DIR`, else `/etc/cni/net.d`.
//! Unknown plexus keys are refused naming the key; the CNI spec's own keys (`cniVersion`,
//! `name`, `type`, `runtimeConfig`, `args`, `prevResult`, `capabilities`, `cni.dev/…`) and
//! keys with a `.` or `/` (runtime extensions) pass.

use std::path::PathBuf;
use std::time::Duration;

use plexus_store::{AgentSetting, StoreConfig};
use serde_json::{Map, Value};

use crate::error::PlexusError;
use crate::naming::NamingScheme;

/// Where static delegate configurations are read when neither `cniDir` nor `CNI_CONF_DIR`
/// says otherwise.
pub const DEFAULT_CNI_DIR: &str = "/etc/cni/net.d";
/// Where network definitions are read when `networksDir` is not set.
pub const DEFAULT_NETWORKS_DIR: &str = "/etc/plexus/networks";
/// Where endpoint records are kept when `stateDir` is not set.
pub const DEFAULT_STATE_DIR: &str = "/var/lib/plexus/endpoints";
/// DANM's deadline for a whole ADD (it waited 30 s for its goroutines).
pub const DEFAULT_ADD_TIMEOUT: Duration = Duration::from_secs(30);
/// Deadline of a DEL (and of the rollback after a failed ADD).
pub const DEFAULT_DEL_TIMEOUT: Duration = Duration::from_secs(20);
/// How many attachments are set up at once by default.
pub const DEFAULT_MAX_PARALLEL: usize = 4;
/// How many addresses an attachment of a `duplicateAddressCheck` network tries by default.
pub const DEFAULT_DUPLICATE_ATTEMPTS: u32 = 3;
/// How long a conflicting address stays quarantined by default.
pub const DEFAULT_QUARANTINE: Duration = Duration::from_secs(600);
/// Longest accepted quarantine (a day).
const MAX_QUARANTINE_SECS: u64 = 86_400;
/// Longest accepted timeout.
const MAX_TIMEOUT_MS: u64 = 600_000;

/// The parsed plexus configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct PlexusConf {
    /// The allocation store.
    pub store: StoreConfig,
    /// Whether and where to reach the node agent (`"agent"`: socket path or `false`).
    pub agent: AgentSetting,
    /// Directory of static delegate configurations (`<NetworkID>.conf`/`.conflist`).
    pub cni_dir: PathBuf,
    /// Directory of network definitions (the file-backed network source).
    pub networks_dir: PathBuf,
    /// Directory of endpoint records (what DEL tears down).
    pub state_dir: PathBuf,
    /// Interface naming scheme.
    pub naming: NamingScheme,
    /// Name of the network a pod without a request gets (DANM: `default`).
    pub default_network: String,
    /// Node name recorded with claims and endpoints.
    pub node_name: Option<String>,
    /// How many attachments are set up concurrently.
    pub max_parallel: usize,
    /// Deadline of the whole ADD.
    pub add_timeout: Duration,
    /// Deadline of DEL and of an ADD's rollback.
    pub del_timeout: Duration,
    /// `tracing` filter (else `PLEXUS_LOG`, else `warn`).
    pub log_level: Option<String>,
    /// `duplicateAddress.attempts`: addresses tried per attachment and family when the
    /// network has `duplicateAddressCheck`.
    pub duplicate_attempts: u32,
    /// `duplicateAddress.cooldownSeconds`: how long an address found in use elsewhere is
    /// kept out of allocation.
    pub quarantine: Duration,
    /// `kubelet`: where the devices of device-plugin resources (SR-IOV) are looked up.
    pub kubelet: plexus_kubelet::Sources,
    /// `kubeconfig`: read the pod and its networks from the API server with this
    /// kubeconfig (empty path: in-cluster); `None` without Kubernetes.
    pub kubeconfig: Option<PathBuf>,
}

/// Keys of the CNI spec (and libcni) that may appear at the top level of any netconf.
const SPEC_KEYS: &[&str] = &[
    "cniVersion",
    "cniVersions",
    "name",
    "type",
    "runtimeConfig",
    "args",
    "prevResult",
    "capabilities",
    "ipam",
    "dns",
    "disableCheck",
    "disableGC",
];

impl PlexusConf {
    /// Parses the netconf object; `env` reads environment variables (`CNI_CONF_DIR`).
    pub fn parse(raw: &Value, env: impl Fn(&str) -> Option<String>) -> Result<Self, PlexusError> {
        let empty = Map::new();
        let object = raw.as_object().unwrap_or(&empty);
        let mut conf = PlexusConf {
            store: StoreConfig::default(),
            agent: AgentSetting::Default,
            cni_dir: env("CNI_CONF_DIR")
                .filter(|d| !d.is_empty())
                .map_or_else(|| PathBuf::from(DEFAULT_CNI_DIR), PathBuf::from),
            networks_dir: PathBuf::from(DEFAULT_NETWORKS_DIR),
            state_dir: PathBuf::from(DEFAULT_STATE_DIR),
            naming: NamingScheme::default(),
            default_network: "default".to_owned(),
            node_name: None,
            max_parallel: DEFAULT_MAX_PARALLEL,
            add_timeout: DEFAULT_ADD_TIMEOUT,
            del_timeout: DEFAULT_DEL_TIMEOUT,
            log_level: None,
            duplicate_attempts: DEFAULT_DUPLICATE_ATTEMPTS,
            quarantine: DEFAULT_QUARANTINE,
            kubelet: plexus_kubelet::Sources::default(),
            kubeconfig: None,
        };
        for (key, value) in object {
            match key.as_str() {
                "store" => conf.store = StoreConfig::from_json(Some(value))?,
                "agent" => conf.agent = AgentSetting::from_json(Some(value), key)?,
                "cniDir" => conf.cni_dir = dir(key, value)?,
                "networksDir" => conf.networks_dir = dir(key, value)?,
                "stateDir" => conf.state_dir = dir(key, value)?,
                "namingScheme" => {
                    conf.naming = string(key, value)?
                        .parse()
                        .map_err(|e| PlexusError::config(key, e))?;
                }
                "defaultNetwork" => {
                    let name = string(key, value)?;
                    if name.is_empty() {
                        return Err(PlexusError::config(key, "must not be empty"));
                    }
                    conf.default_network = name.to_owned();
                }
                "nodeName" => {
                    conf.node_name =
                        Some(string(key, value)?.trim().to_owned()).filter(|n| !n.is_empty());
                }
                "maxParallel" => match value.as_u64() {
                    Some(n @ 1..=64) => conf.max_parallel = usize::try_from(n).unwrap_or(1),
                    _ => {
                        return Err(PlexusError::config(
                            key,
                            format!("must be an integer from 1 to 64, found {value}"),
                        ));
                    }
                },
                "timeouts" => parse_timeouts(&mut conf, value)?,
                "duplicateAddress" => parse_duplicate_address(&mut conf, value)?,
                "kubelet" => parse_kubelet(&mut conf, value)?,
                "kubeconfig" => {
                    let text = string(key, value)?.trim();
                    let path = PathBuf::from(text);
                    if !text.is_empty() && !path.is_absolute() {
                        return Err(PlexusError::config(
                            key,
                            format!(
                                "must be an absolute path or empty (in-cluster), found {text:?}"
                            ),
                        ));
                    }
                    conf.kubeconfig = Some(path);
                }
                "logLevel" => conf.log_level = Some(string(key, value)?.to_owned()),
                known if SPEC_KEYS.contains(&known) => {}
                extension if extension.contains('.') || extension.contains('/') => {}
                unknown => {
                    return Err(PlexusError::config(
                        unknown,
                        "unknown key (known: store, cniDir, networksDir, stateDir, namingScheme, \
                         defaultNetwork, nodeName, maxParallel, timeouts, logLevel, duplicateAddress, \
                         kubelet, kubeconfig)",
                    ));
                }
            }
        }
        Ok(conf)
    }

    /// The node name: `nodeName`, else `NODE_NAME`, else the kernel host name.
    pub fn node(&self) -> String {
        self.node_name
            .clone()
            .or_else(plexus_store::local_node_name)
            .unwrap_or_else(|| "unknown".to_owned())
    }
}

fn string<'a>(key: &str, value: &'a Value) -> Result<&'a str, PlexusError> {
    value
        .as_str()
        .ok_or_else(|| PlexusError::config(key, format!("must be a string, found {value}")))
}

fn dir(key: &str, value: &Value) -> Result<PathBuf, PlexusError> {
    let text = string(key, value)?;
    let path = PathBuf::from(text);
    if !path.is_absolute() {
        return Err(PlexusError::config(
            key,
            format!("must be an absolute path, found {text:?}"),
        ));
    }
    Ok(path)
}

fn parse_timeouts(conf: &mut PlexusConf, value: &Value) -> Result<(), PlexusError> {
    let Some(object) = value.as_object() else {
        return Err(PlexusError::config(
            "timeouts",
            format!("must be an object, found {value}"),
        ));
    };
    for (key, value) in object {
        let field = format!("timeouts.{key}");
        let ms = match value.as_u64() {
            Some(ms @ 1..=MAX_TIMEOUT_MS) => Duration::from_millis(ms),
            _ => {
                return Err(PlexusError::config(
                    field,
                    format!("must be an integer from 1 to {MAX_TIMEOUT_MS} (ms), found {value}"),
                ));
            }
        };
        match key.as_str() {
            "addMs" => conf.add_timeout = ms,
            "delMs" => conf.del_timeout = ms,
            _ => {
                return Err(PlexusError::config(
                    field,
                    "unknown key (known: addMs, delMs)",
                ));
            }
        }
    }
    Ok(())
}

fn parse_duplicate_address(conf: &mut PlexusConf, value: &Value) -> Result<(), PlexusError> {
    let Some(object) = value.as_object() else {
        return Err(PlexusError::config(
            "duplicateAddress",
            format!("must be an object, found {value}"),
        ));
    };
    for (key, value) in object {
        let field = format!("duplicateAddress.{key}");
        match (key.as_str(), value.as_u64()) {
            ("attempts", Some(n @ 1..=16)) => {
                conf.duplicate_attempts = u32::try_from(n).unwrap_or(1);
            }
            ("attempts", _) => {
                return Err(PlexusError::config(
                    field,
                    format!("must be an integer from 1 to 16, found {value}"),
                ));
            }
            ("cooldownSeconds", Some(secs @ 0..=MAX_QUARANTINE_SECS)) => {
                conf.quarantine = Duration::from_secs(secs);
            }
            ("cooldownSeconds", _) => {
                return Err(PlexusError::config(
                    field,
                    format!("must be an integer from 0 to {MAX_QUARANTINE_SECS}, found {value}"),
                ));
            }
            _ => {
                return Err(PlexusError::config(
                    field,
                    "unknown key (known: attempts, cooldownSeconds)",
                ));
            }
        }
    }
    Ok(())
}

/// Longest accepted kubelet timeout.
const MAX_KUBELET_TIMEOUT_MS: u64 = 60_000;

fn parse_kubelet(conf: &mut PlexusConf, value: &Value) -> Result<(), PlexusError> {
    let Some(object) = value.as_object() else {
        return Err(PlexusError::config(
            "kubelet",
            format!("must be an object, found {value}"),
        ));
    };
    for (key, value) in object {
        let field = format!("kubelet.{key}");
        match key.as_str() {
            "podResourcesSocket" => conf.kubelet.pod_resources_socket = dir(&field, value)?,
            "checkpointFile" => conf.kubelet.checkpoint_file = dir(&field, value)?,
            "timeoutMs" => match value.as_u64() {
                Some(ms @ 1..=MAX_KUBELET_TIMEOUT_MS) => {
                    conf.kubelet.timeout = Duration::from_millis(ms);
                }
                _ => {
                    return Err(PlexusError::config(
                        field,
                        format!(
                            "must be an integer from 1 to {MAX_KUBELET_TIMEOUT_MS} (ms), found {value}"
                        ),
                    ));
                }
            },
            _ => {
                return Err(PlexusError::config(
                    field,
                    "unknown key (known: podResourcesSocket, checkpointFile, timeoutMs)",
                ));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn no_env(_: &str) -> Option<String> {
        None
    }

    #[test]
    fn defaults_and_env() {
        let raw = json!({"cniVersion": "1.1.0", "name": "p", "type": "plexus"});
        let conf = PlexusConf::parse(&raw, no_env).unwrap();
        assert_eq!(conf.cni_dir, PathBuf::from(DEFAULT_CNI_DIR));
        assert_eq!(conf.default_network, "default");
        assert_eq!(conf.add_timeout, DEFAULT_ADD_TIMEOUT);
        assert_eq!(conf.kubeconfig, None);
        let conf = PlexusConf::parse(&raw, |k| (k == "CNI_CONF_DIR").then(|| "/x".into())).unwrap();
        assert_eq!(conf.cni_dir, PathBuf::from("/x"));
    }

    #[test]
    fn every_key() {
        let raw = json!({"cniVersion": "1.1.0", "name": "p", "type": "plexus",
            "store": {"path": "/tmp/p.db"}, "cniDir": "/c", "networksDir": "/n",
            "stateDir": "/s", "namingScheme": "legacy", "defaultNetwork": "main",
            "nodeName": "w1", "maxParallel": 2, "timeouts": {"addMs": 500, "delMs": 700},
            "logLevel": "debug", "cni.dev/valid-attachments": [], "runtimeConfig": {},
            "duplicateAddress": {"attempts": 5, "cooldownSeconds": 30},
            "kubelet": {"podResourcesSocket": "/k/s.sock", "checkpointFile": "/k/cp",
                        "timeoutMs": 300}, "kubeconfig": "/k/config"});
        let conf = PlexusConf::parse(&raw, |_| Some("/ignored".into())).unwrap();
        assert_eq!(conf.kubeconfig, Some(PathBuf::from("/k/config")));
        let in_cluster = PlexusConf::parse(&json!({"kubeconfig": ""}), no_env).unwrap();
        assert_eq!(in_cluster.kubeconfig, Some(PathBuf::new()));
        assert_eq!(conf.cni_dir, PathBuf::from("/c"));
        assert_eq!(conf.naming, NamingScheme::Legacy);
        assert_eq!(conf.default_network, "main");
        assert_eq!(conf.node(), "w1");
        assert_eq!(conf.max_parallel, 2);
        assert_eq!(conf.add_timeout, Duration::from_millis(500));
        assert_eq!(conf.del_timeout, Duration::from_millis(700));
        assert_eq!(conf.duplicate_attempts, 5);
        assert_eq!(conf.quarantine, Duration::from_secs(30));
        assert_eq!(
            conf.kubelet.pod_resources_socket,
            PathBuf::from("/k/s.sock")
        );
        assert_eq!(conf.kubelet.checkpoint_file, PathBuf::from("/k/cp"));
        assert_eq!(conf.kubelet.timeout, Duration::from_millis(300));
    }

    #[test]
    fn bad_values_name_their_field() {
        let cases = [
            (json!({"cniDir": "rel"}), "cniDir"),
            (json!({"namingScheme": "x"}), "namingScheme"),
            (json!({"maxParallel": 0}), "maxParallel"),
            (json!({"timeouts": {"addMs": 0}}), "timeouts.addMs"),
            (json!({"timeouts": {"add": 5}}), "timeouts.add"),
            (json!({"cnidir": "/x"}), "cnidir"),
            (json!({"defaultNetwork": ""}), "defaultNetwork"),
            (json!({"duplicateAddress": 3}), "duplicateAddress"),
            (
                json!({"duplicateAddress": {"attempts": 0}}),
                "duplicateAddress.attempts",
            ),
            (
                json!({"duplicateAddress": {"cooldownSeconds": -1}}),
                "duplicateAddress.cooldownSeconds",
            ),
            (
                json!({"duplicateAddress": {"tries": 2}}),
                "duplicateAddress.tries",
            ),
            (json!({"kubelet": "x"}), "kubelet"),
            (
                json!({"kubelet": {"checkpointFile": "rel"}}),
                "kubelet.checkpointFile",
            ),
            (json!({"kubelet": {"timeoutMs": 0}}), "kubelet.timeoutMs"),
            (json!({"kubelet": {"socket": "/x"}}), "kubelet.socket"),
            (json!({"kubeconfig": "rel/config"}), "kubeconfig"),
            (json!({"kubeconfig": 1}), "kubeconfig"),
        ];
        for (raw, field) in cases {
            match PlexusConf::parse(&raw, no_env) {
                Err(PlexusError::Config { field: f, .. }) => assert_eq!(f, field, "{raw}"),
                other => panic!("{raw}: {other:?}"),
            }
        }
        assert!(matches!(
            PlexusConf::parse(&json!({"store": {"type": "redis"}}), no_env),
            Err(PlexusError::Store(_))
        ));
    }
}
