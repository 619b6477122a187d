//! Helpers for the end-to-end tests: run the built `plexusctl` against a temporary SQLite
//! store and CNI configuration directory.

#![allow(dead_code)]

pub mod backends;
pub mod stored;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// A temporary store, configuration directory and scratch space.
pub struct Env {
    /// Holds everything; removed on drop.
    pub dir: tempfile::TempDir,
}

/// What one run produced.
#[derive(Debug)]
pub struct Run {
    /// Exit status.
    pub code: i32,
    /// Stdout.
    pub stdout: String,
    /// Stderr.
    pub stderr: String,
}

impl Run {
    /// Asserts success and returns stdout.
    pub fn ok(&self) -> &str {
        assert_eq!(self.code, 0, "expected success: {self:#?}");
        &self.stdout
    }

    /// Asserts exit status `code` and returns stderr.
    pub fn fails(&self, code: i32) -> &str {
        assert_eq!(self.code, code, "expected exit status {code}: {self:#?}");
        &self.stderr
    }

    /// Stdout parsed as JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(self.ok()).unwrap_or_else(|e| panic!("not JSON ({e}): {self:#?}"))
    }
}

impl Env {
    /// A fresh environment with an empty configuration directory.
    pub fn new() -> Env {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir(dir.path().join("net.d")).expect("net.d");
        Env { dir }
    }

    /// The SQLite database.
    pub fn db(&self) -> PathBuf {
        self.dir.path().join("plexus.db")
    }

    /// The CNI configuration directory.
    pub fn conf_dir(&self) -> PathBuf {
        self.dir.path().join("net.d")
    }

    /// Writes `text` to `name` in the scratch space and returns its path.
    pub fn file(&self, name: &str, text: &str) -> PathBuf {
        let path = self.dir.path().join(name);
        std::fs::write(&path, text).expect("write");
        path
    }

    /// Runs plexusctl with the store and configuration directory set.
    pub fn ctl(&self, args: &[&str]) -> Run {
        self.ctl_stdin(args, "")
    }

    /// Runs plexusctl with `stdin`.
    pub fn ctl_stdin(&self, args: &[&str], stdin: &str) -> Run {
        run(
            Command::new(binary())
                .arg("--store")
                .arg(self.db())
                .arg("--cni-conf-dir")
                .arg(self.conf_dir())
                .args(args)
                .env_remove("PLEXUS_STORE")
                .env_remove("PLEXUSCTL_CONFIG")
                .env_remove("PLEXUS_LOG"),
            stdin,
        )
    }
}

/// The plexusctl binary under test.
pub fn binary() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_plexusctl"))
}

/// Runs a prepared command to completion.
pub fn run(cmd: &mut Command, stdin: &str) -> Run {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn plexusctl");
    if let Some(mut pipe) = child.stdin.take() {
        let _ = pipe.write_all(stdin.as_bytes());
    }
    let out: Output = child.wait_with_output().expect("wait");
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// A conflist of one bridge plugin with plexus-ipam on `range`, storing in `db`.
pub fn bridge_conflist(name: &str, range: &str, gateway: &str, db: &Path) -> String {
    bridge_conflist_in(
        name,
        range,
        gateway,
        serde_json::json!({"type": "sqlite", "path": db}),
    )
}

/// A conflist of one bridge plugin with plexus-ipam on `range`, storing in `store` (an
/// `ipam.store` value).
pub fn bridge_conflist_in(
    name: &str,
    range: &str,
    gateway: &str,
    store: serde_json::Value,
) -> String {
    serde_json::json!({
        "cniVersion": "1.1.0",
        "name": name,
        "plugins": [{
            "type": "bridge",
            "bridge": format!("plx{}", &name[..name.len().min(8)]),
            "isGateway": true,
            // host-local syntax: a network of its own, named after the netconf (whereabouts
            // syntax would share one network with every other whereabouts configuration).
            "ipam": {"type": "plexus-ipam", "ranges": [[{"subnet": range, "gateway": gateway}]],
                     "store": store}
        }]
    })
    .to_string()
}

/// An export document holding `allocations` (network, container, ip, pod) of one /24.
pub fn export_doc(network: &str, range_set: &str, rows: &[(&str, &str, Option<&str>)]) -> String {
    let allocations: Vec<serde_json::Value> = rows
        .iter()
        .map(|(container, ip, pod)| {
            let (ns, name) = match pod.and_then(|p| p.split_once('/')) {
                Some((ns, name)) => (Some(ns), Some(name)),
                None => (None, None),
            };
            serde_json::json!({
                "network": network, "container_id": container, "ifname": "eth0", "ip": ip,
                "range_set": range_set,
                "owner": {"pod_namespace": ns, "pod_name": name, "pod_uid": null},
                "created_at": 1_700_000_000
            })
        })
        .collect();
    serde_json::json!({"kind": "PlexusExport", "version": 1, "networks": [], "allocations": allocations})
        .to_string()
}
