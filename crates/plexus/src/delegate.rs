//! Delegation to other CNI plugins: static configurations from `cniDir`, the IPAM
//! replacement that makes a delegate use plexus' addresses, version negotiation, and
//! running the binary from `CNI_PATH`.
//!
//! Static integration reads `<cniDir>/<NetworkID>.conf`, else `.conflist` (a chain, run in
//! order with `prevResult`, torn down in reverse). The NetworkID must not contain `/`, `..`
//! or NUL, and the resolved file (symlinks followed) must lie inside `cniDir`.
//!
//! When plexus allocated the addresses, the delegate's `ipam` becomes
//! `{"type": "plexus-ipam", "static": [{"address": …, "gateway": …}]}`: plexus-ipam's echo
//! mode returns exactly those addresses (DANM's fakeipam), so nothing is allocated twice.
//!
//! A delegate whose VERSION does not list the configuration's `cniVersion` is called with
//! the highest version both support (Debian's plugins stop at 1.0.0); one without 1.1.0 is
//! not sent STATUS or GC.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Mutex;

use ipnet::IpNet;
use plexus_cni::CniVersion;
use serde_json::{Value, json};
use tokio::io::AsyncWriteExt;

/// Why a delegate could not be configured or run.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DelegateError {
    /// The NetworkID cannot name a file inside `cniDir`.
    #[error("NetworkID {id:?} cannot name a configuration file: {reason}")]
    UnsafeId {
        /// The NetworkID (cut to 64 characters: it may be overlong).
        id: String,
        /// Why.
        reason: String,
    },
    /// Neither `<id>.conf` nor `<id>.conflist` exists.
    #[error("no static delegate configuration {id}.conf or {id}.conflist in {dir}")]
    NoConfig {
        /// The NetworkID.
        id: String,
        /// `cniDir`.
        dir: String,
    },
    /// The file is unreadable, not JSON, outside `cniDir`, or has no `type`.
    #[error("delegate configuration {path}: {reason}")]
    BadConfig {
        /// The file.
        path: String,
        /// Why.
        reason: String,
    },
    /// The binary is not in `CNI_PATH`.
    #[error("plugin {plugin:?} not found in CNI_PATH ({path})")]
    NotFound {
        /// The plugin type.
        plugin: String,
        /// The search path.
        path: String,
    },
    /// The binary could not be run.
    #[error("cannot run {plugin}: {reason}")]
    Exec {
        /// The plugin type.
        plugin: String,
        /// Why.
        reason: String,
    },
    /// The plugin answered with a CNI error.
    #[error("{msg}{}", if .details.is_empty() { String::new() } else { format!(" ({})", .details) })]
    Failed {
        /// Its CNI code.
        code: Option<u32>,
        /// Its message.
        msg: String,
        /// Its details.
        details: String,
    },
}

/// Longest accepted NetworkID in bytes: `<id>.conflist` must fit NAME_MAX (255).
pub const MAX_NETWORK_ID_BYTES: usize = 200;

/// Checks that `id` can name a file in `cniDir`: not empty, at most
/// [`MAX_NETWORK_ID_BYTES`], no `/`, no `..`, no NUL or other control character, not
/// starting with `.`, and ASCII only (a Cyrillic `е` would make `еth-net` a lookalike of
/// `eth-net` in every log line and file listing).
pub fn check_id(id: &str) -> Result<(), DelegateError> {
    let reason = if id.is_empty() {
        Some("it is empty")
    } else if id.len() > MAX_NETWORK_ID_BYTES {
        Some("it is longer than 200 bytes")
    } else if id.contains('/') {
        Some("it contains '/'")
    } else if id.contains("..") {
        Some("it contains '..'")
    } else if id.contains('\0') {
        Some("it contains NUL")
    } else if id.chars().any(char::is_control) {
        Some("it contains a control character")
    } else if !id.is_ascii() {
        Some("it contains non-ASCII characters (lookalikes of ASCII names are refused)")
    } else if id.starts_with('.') {
        Some("it starts with '.'")
    } else {
        None
    };
    match reason {
        Some(reason) => Err(DelegateError::UnsafeId {
            id: id.chars().take(64).collect(),
            reason: reason.to_owned(),
        }),
        None => Ok(()),
    }
}

/// The plugin configurations of the static delegate of `network_id`, in chain order, each
/// with `cniVersion` (the file's, else `default_version`) and `name`.
pub fn static_config(
    cni_dir: &Path,
    network_id: &str,
    default_version: &str,
) -> Result<Vec<Value>, DelegateError> {
    check_id(network_id)?;
    let root = cni_dir
        .canonicalize()
        .map_err(|e| DelegateError::BadConfig {
            path: cni_dir.display().to_string(),
            reason: format!("cniDir is not usable: {e}"),
        })?;
    for (suffix, list) in [("conf", false), ("conflist", true)] {
        let path = cni_dir.join(format!("{network_id}.{suffix}"));
        let bad = |reason: String| DelegateError::BadConfig {
            path: path.display().to_string(),
            reason,
        };
        let resolved = match path.canonicalize() {
            Ok(resolved) => resolved,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(bad(e.to_string())),
        };
        if !resolved.starts_with(&root) {
            return Err(bad(format!(
                "resolves to {}, outside cniDir",
                resolved.display()
            )));
        }
        let text = std::fs::read_to_string(&resolved).map_err(|e| bad(e.to_string()))?;
        let value: Value = serde_json::from_str(&text).map_err(|e| bad(e.to_string()))?;
        return split_config(value, list, default_version).map_err(bad);
    }
    Err(DelegateError::NoConfig {
        id: network_id.to_owned(),
        dir: cni_dir.display().to_string(),
    })
}

/// A `.conf` as a one-plugin chain, or a `.conflist`'s plugins with the list's
/// `cniVersion` and `name` copied into each.
fn split_config(value: Value, list: bool, default_version: &str) -> Result<Vec<Value>, String> {
    let version = value
        .get("cniVersion")
        .and_then(Value::as_str)
        .unwrap_or(default_version)
        .to_owned();
    let name = value.get("name").and_then(Value::as_str).map(str::to_owned);
    let mut plugins = if list {
        match value.get("plugins") {
            Some(Value::Array(plugins)) if !plugins.is_empty() => plugins.clone(),
            _ => return Err("a .conflist needs a non-empty \"plugins\" list".to_owned()),
        }
    } else {
        vec![value]
    };
    for plugin in &mut plugins {
        let Some(object) = plugin.as_object_mut() else {
            return Err("every plugin configuration must be an object".to_owned());
        };
        if !object.get("type").is_some_and(Value::is_string) {
            return Err("a plugin configuration has no \"type\"".to_owned());
        }
        object.insert("cniVersion".into(), Value::String(version.clone()));
        if let Some(name) = &name {
            object.insert("name".into(), Value::String(name.clone()));
        }
        if !object.contains_key("name") {
            return Err("the configuration has no \"name\"".to_owned());
        }
    }
    Ok(plugins)
}

/// Replaces the `ipam` of the first plugin of a chain with plexus-ipam's echo of
/// `addresses` (the first plugin is the one that configures the interface).
pub fn use_plexus_addresses(
    plugins: &mut [Value],
    addresses: &[(IpNet, Option<std::net::IpAddr>)],
) {
    let list: Vec<Value> = addresses
        .iter()
        .map(|(address, gateway)| match gateway {
            Some(gw) => json!({"address": address.to_string(), "gateway": gw.to_string()}),
            None => json!({"address": address.to_string()}),
        })
        .collect();
    if let Some(first) = plugins.first_mut().and_then(Value::as_object_mut) {
        first.insert(
            "ipam".into(),
            json!({"type": "plexus-ipam", "static": list}),
        );
    }
}

/// The plugin type of a configuration.
pub fn plugin_type(conf: &Value) -> &str {
    conf.get("type").and_then(Value::as_str).unwrap_or_default()
}

/// What every delegate call shares: the CNI environment plexus was called with.
#[derive(Debug, Clone)]
pub struct DelegateEnv {
    /// `CNI_PATH`.
    pub cni_path: Vec<PathBuf>,
    /// `CNI_CONTAINERID`.
    pub container_id: String,
    /// `CNI_NETNS`.
    pub netns: Option<PathBuf>,
    /// `CNI_ARGS` as received.
    pub args: String,
}

/// Runs delegates and remembers their versions (one VERSION call per binary and process).
#[derive(Debug, Default)]
pub struct Runner {
    versions: Mutex<HashMap<PathBuf, Vec<CniVersion>>>,
}

impl Runner {
    /// A runner with an empty version cache.
    pub fn new() -> Self {
        Self::default()
    }

    /// Finds `plugin` in `CNI_PATH`.
    pub fn find(&self, env: &DelegateEnv, plugin: &str) -> Result<PathBuf, DelegateError> {
        let not_found = || DelegateError::NotFound {
            plugin: plugin.to_owned(),
            path: env
                .cni_path
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(":"),
        };
        if check_id(plugin).is_err() {
            return Err(not_found());
        }
        env.cni_path
            .iter()
            .map(|dir| dir.join(plugin))
            .find(|p| p.is_file())
            .ok_or_else(not_found)
    }

    /// The versions `binary` supports (from its VERSION reply; empty when it cannot say).
    async fn versions(&self, env: &DelegateEnv, binary: &Path) -> Vec<CniVersion> {
        if let Some(known) = self.lock().get(binary) {
            return known.clone();
        }
        let reply = run(
            env,
            binary,
            "VERSION",
            None,
            &json!({"cniVersion": "1.1.0"}),
        )
        .await;
        let versions: Vec<CniVersion> = match reply {
            Ok(Some(v)) => v
                .get("supportedVersions")
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(Value::as_str)
                        .filter_map(|s| s.parse().ok())
                        .collect()
                })
                .unwrap_or_default(),
            _ => Vec::new(),
        };
        self.lock().insert(binary.to_owned(), versions.clone());
        versions
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<PathBuf, Vec<CniVersion>>> {
        self.versions
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// `conf` with its `cniVersion` lowered to the highest one `binary` supports, when it
    /// does not support the configured one. Returns the version used.
    pub async fn negotiate(
        &self,
        env: &DelegateEnv,
        binary: &Path,
        conf: &mut Value,
    ) -> CniVersion {
        let wanted: CniVersion = conf
            .get("cniVersion")
            .and_then(Value::as_str)
            .and_then(|s| s.parse().ok())
            .unwrap_or(CniVersion::LATEST);
        let supported = self.versions(env, binary).await;
        if supported.is_empty() || supported.contains(&wanted) {
            return wanted;
        }
        let Some(best) = supported.iter().filter(|v| **v <= wanted).max().copied() else {
            return wanted;
        };
        tracing::debug!(plugin = %binary.display(), from = %wanted, to = %best, "downgrading delegate cniVersion");
        conf["cniVersion"] = Value::String(best.to_string());
        // prevResult in a newer format is still readable by older decoders for the fields
        // plexus sends; fields the older version lacks are ignored by Go's decoder.
        best
    }

    /// Whether `binary` speaks STATUS and GC (CNI 1.1.0).
    pub async fn has_status_gc(&self, env: &DelegateEnv, binary: &Path) -> bool {
        self.versions(env, binary)
            .await
            .iter()
            .any(CniVersion::supports_status_gc)
    }

    /// Runs `verb` of `conf` for interface `ifname`, with the version negotiated; returns
    /// the parsed stdout (ADD), `None` for an empty reply.
    pub async fn call(
        &self,
        env: &DelegateEnv,
        verb: &str,
        ifname: Option<&str>,
        conf: &Value,
    ) -> Result<Option<Value>, DelegateError> {
        let binary = self.find(env, plugin_type(conf))?;
        let mut conf = conf.clone();
        self.negotiate(env, &binary, &mut conf).await;
        run(env, &binary, verb, ifname, &conf).await
    }
}

/// Runs a CNI binary once.
async fn run(
    env: &DelegateEnv,
    binary: &Path,
    verb: &str,
    ifname: Option<&str>,
    conf: &Value,
) -> Result<Option<Value>, DelegateError> {
    let plugin = binary.display().to_string();
    let exec_err = |reason: String| DelegateError::Exec {
        plugin: plugin.clone(),
        reason,
    };
    let mut cmd = tokio::process::Command::new(binary);
    cmd.env_clear()
        .env("CNI_COMMAND", verb)
        .env("CNI_CONTAINERID", &env.container_id)
        .env("CNI_ARGS", &env.args)
        .env(
            "CNI_PATH",
            std::env::join_paths(&env.cni_path).unwrap_or_default(),
        )
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    if let Some(netns) = &env.netns {
        cmd.env("CNI_NETNS", netns);
    }
    if let Some(ifname) = ifname {
        cmd.env("CNI_IFNAME", ifname);
    }
    let mut child = cmd.spawn().map_err(|e| exec_err(e.to_string()))?;
    if let Some(mut stdin) = child.stdin.take() {
        match stdin.write_all(conf.to_string().as_bytes()).await {
            // A plugin may answer without reading stdin (VERSION) and exit first: its
            // reply still counts.
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {}
            other => other.map_err(|e| exec_err(format!("writing stdin: {e}")))?,
        }
    }
    let output = child
        .wait_with_output()
        .await
        .map_err(|e| exec_err(e.to_string()))?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    if !stderr.trim().is_empty() {
        tracing::debug!(plugin = %plugin, verb, stderr = %stderr.trim(), "delegate stderr");
    }
    let parsed: Option<Value> = if stdout.trim().is_empty() {
        None
    } else {
        serde_json::from_str(stdout.trim()).ok()
    };
    if output.status.success() {
        return Ok(parsed);
    }
    let field = |k: &str| {
        parsed
            .as_ref()
            .and_then(|v| v.get(k))
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned()
    };
    let msg = field("msg");
    Err(DelegateError::Failed {
        code: parsed
            .as_ref()
            .and_then(|v| v.get("code"))
            .and_then(Value::as_u64)
            .and_then(|c| u32::try_from(c).ok()),
        msg: if msg.is_empty() {
            format!(
                "exited with {} and no CNI error object: {}",
                output.status,
                stderr.trim()
            )
        } else {
            msg
        },
        details: field("details"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostile_ids_are_refused_before_any_file_is_touched() {
        let dir = tempfile::tempdir().unwrap();
        for id in [
            "",
            "../etc/passwd",
            "a/b",
            "..",
            "a..b",
            "x\0y",
            ".hidden",
            "/abs",
            "net\n1",
            "net\u{1b}[31m",
            "\u{0435}th-net",
            "net\u{2024}conf",
            &"n".repeat(201),
        ] {
            let err = static_config(dir.path(), id, "1.1.0").unwrap_err();
            assert!(
                matches!(err, DelegateError::UnsafeId { .. }),
                "{id:?}: {err}"
            );
        }
    }

    #[test]
    fn a_symlink_out_of_cni_dir_is_refused() {
        let outside = tempfile::tempdir().unwrap();
        let secret = outside.path().join("secret.conf");
        std::fs::write(
            &secret,
            r#"{"cniVersion":"1.0.0","name":"x","type":"bridge"}"#,
        )
        .unwrap();
        let dir = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink(&secret, dir.path().join("evil.conf")).unwrap();
        let err = static_config(dir.path(), "evil", "1.1.0").unwrap_err();
        assert!(err.to_string().contains("outside cniDir"), "{err}");
    }

    #[test]
    fn conf_and_conflist_are_read_as_chains() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("one.conf"),
            r#"{"name":"one","type":"bridge","bridge":"br0"}"#,
        )
        .unwrap();
        std::fs::write(
            dir.path().join("two.conflist"),
            r#"{"cniVersion":"1.0.0","name":"two","plugins":[{"type":"bridge"},{"type":"tuning"}]}"#,
        )
        .unwrap();
        let one = static_config(dir.path(), "one", "1.1.0").unwrap();
        assert_eq!(one.len(), 1);
        assert_eq!(one[0]["cniVersion"], "1.1.0");
        let two = static_config(dir.path(), "two", "1.1.0").unwrap();
        assert_eq!(two.len(), 2);
        assert_eq!(two[1]["name"], "two");
        assert_eq!(two[1]["cniVersion"], "1.0.0");
        assert!(matches!(
            static_config(dir.path(), "three", "1.1.0"),
            Err(DelegateError::NoConfig { .. })
        ));
        std::fs::write(dir.path().join("bad.conf"), r#"{"name":"bad"}"#).unwrap();
        assert!(
            static_config(dir.path(), "bad", "1.1.0")
                .unwrap_err()
                .to_string()
                .contains("type")
        );
    }

    #[test]
    fn ipam_is_replaced_by_the_echo() {
        let mut plugins = vec![json!({"type": "bridge", "ipam": {"type": "host-local"}})];
        let addr: IpNet = "10.0.0.5/24".parse().unwrap();
        use_plexus_addresses(&mut plugins, &[(addr, Some("10.0.0.1".parse().unwrap()))]);
        assert_eq!(
            plugins[0]["ipam"],
            json!({"type": "plexus-ipam", "static": [{"address": "10.0.0.5/24", "gateway": "10.0.0.1"}]})
        );
    }
}
