//! Helpers shared by the process-level tests: run the real `plexus-ipam` binary the way a
//! runtime does (environment + stdin), network namespaces, and the privileged-test gate.

#![allow(dead_code)]

pub mod agent;

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use plexus_test_support::privileged::Need;
use serde_json::{Value, json};

#[path = "../support/plugin.rs"]
mod plugin;
pub use plugin::plugin_binary;

/// What one plugin invocation produced.
#[derive(Debug)]
pub struct Reply {
    /// Exit status code.
    pub code: i32,
    /// Everything on stdout.
    pub stdout: String,
    /// Everything on stderr.
    pub stderr: String,
}

impl Reply {
    /// Stdout parsed as JSON (panics with the whole reply when it is not).
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {self:?}"))
    }

    /// Asserts success and returns the parsed result (ADD) or Null (empty stdout).
    pub fn ok(&self) -> Value {
        assert_eq!(self.code, 0, "expected success: {self:?}");
        if self.stdout.trim().is_empty() {
            Value::Null
        } else {
            self.json()
        }
    }

    /// Asserts a CNI error with `code` and returns its message.
    pub fn err(&self, code: u64) -> String {
        assert_ne!(self.code, 0, "expected failure with code {code}: {self:?}");
        let v = self.json();
        assert_eq!(v["code"].as_u64(), Some(code), "wrong CNI code: {self:?}");
        assert!(
            v["msg"].as_str().is_some_and(|m| !m.is_empty()),
            "empty msg: {self:?}"
        );
        v["msg"].as_str().unwrap_or_default().to_string()
    }

    /// The addresses of an ADD result (prefix stripped).
    pub fn ips(&self) -> Vec<String> {
        self.ok()["ips"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|ip| ip["address"].as_str())
                    .map(|s| s.split('/').next().unwrap_or_default().to_string())
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// The NODE_NAME every plugin run gets unless the test sets its own.
pub const TEST_NODE: &str = "test-node";

/// Runs `binary` with the given CNI environment and stdin.
pub fn exec(binary: &Path, env: &[(&str, &str)], stdin: &str) -> Reply {
    let mut cmd = Command::new(binary);
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        // A fixed node name (not the host's), so per-node block placement is the same on
        // every machine; tests that care pass their own NODE_NAME.
        .env("NODE_NAME", TEST_NODE)
        // No whereabouts flat file of the machine running the tests: only what a test
        // gives (whereabouts_compat.rs sets its own directories).
        .env("PLEXUS_WHEREABOUTS_FLATFILE_DIRS", "")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {}: {e}", binary.display()));
    if let Some(mut input) = child.stdin.take() {
        // A plugin that exits early closes its stdin; that is not the test's failure.
        let _ = input.write_all(stdin.as_bytes());
    }
    let Output {
        status,
        stdout,
        stderr,
    } = child
        .wait_with_output()
        .unwrap_or_else(|e| panic!("wait: {e}"));
    Reply {
        code: status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&stdout).into_owned(),
        stderr: String::from_utf8_lossy(&stderr).into_owned(),
    }
}

/// Runs the plexus-ipam binary for one verb on one attachment.
pub fn ipam(command: &str, container: &str, ifname: &str, conf: &Value) -> Reply {
    ipam_args(command, container, ifname, "", conf)
}

/// Like [`ipam`], with CNI_ARGS.
pub fn ipam_args(command: &str, container: &str, ifname: &str, args: &str, conf: &Value) -> Reply {
    let env = [
        ("CNI_COMMAND", command),
        ("CNI_CONTAINERID", container),
        ("CNI_NETNS", "/var/run/netns/does-not-matter"),
        ("CNI_IFNAME", ifname),
        ("CNI_PATH", "/usr/lib/cni"),
        ("CNI_ARGS", args),
    ];
    exec(&plugin_binary(), &env, &conf.to_string())
}

/// A netconf for `plexus-ipam` with the given `ipam` body and a SQLite store at `db`.
pub fn netconf(version: &str, name: &str, db: &Path, mut ipam: Value) -> Value {
    ipam["type"] = json!("plexus-ipam");
    ipam["store"] = json!({"type": "sqlite", "path": db});
    json!({"cniVersion": version, "name": name, "type": "bridge", "ipam": ipam})
}

/// True when the privileged tests can run here (root, Debian's CNI plugins, iproute2); see
/// [`plexus_test_support::privileged::privileged`].
pub fn privileged(what: &str) -> bool {
    plexus_test_support::privileged::privileged(
        what,
        &[Need::Root, Need::CniPlugins, Need::Iproute2],
    )
}

/// A directory for CNI_PATH holding `plexus-ipam` next to Debian's plugins.
pub fn cni_path(dir: &Path) -> String {
    let link = dir.join("plexus-ipam");
    if !link.exists() {
        std::os::unix::fs::symlink(plugin_binary(), &link).unwrap_or_else(|e| panic!("{e}"));
    }
    format!("{}:/usr/lib/cni", dir.display())
}

/// The network a whereabouts-syntax configuration without `network_name` keeps its
/// allocations in (overlapping-range protection, whereabouts' default).
#[allow(dead_code)]
pub const SHARED: &str = plexus_ipam_core::WHEREABOUTS_SHARED_NETWORK;

/// Allocations held in a SQLite store, as (container, ifname, ip) rows, via plexus-store.
pub fn held(db: &Path, network: &str) -> Vec<(String, String, String)> {
    let store = plexus_store::SqliteStore::open(&plexus_store::SqliteConfig::new(db))
        .unwrap_or_else(|e| panic!("open {}: {e}", db.display()));
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap_or_else(|e| panic!("{e}"));
    let mut rows: Vec<_> = rt
        .block_on(plexus_store::Store::list(&store, network))
        .unwrap_or_else(|e| panic!("list: {e}"))
        .into_iter()
        .map(|a| (a.container_id, a.ifname, a.ip.to_string()))
        .collect();
    rows.sort();
    rows
}
