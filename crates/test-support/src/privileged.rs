//! The privileged-test gate and what the privileged tests run: unique names, commands
//! (`sh`, `try_sh`), named network namespaces and host links removed on drop.
//!
//! A test calls [`privileged`] with what it needs; when something is missing the test is
//! skipped with `SKIPPED <what>: <reason>` on stderr, unless `PLEXUS_REQUIRE_PRIVILEGED=1`
//! (set by `.ci/run`), where the skip is a failure.

use std::path::Path;
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};

/// The variable that turns a skipped privileged test into a failure (`=1`).
pub const REQUIRE_VAR: &str = "PLEXUS_REQUIRE_PRIVILEGED";

/// One thing a privileged test needs from the machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    /// Running as root (`id -u` is 0).
    Root,
    /// iproute2's `ip` command.
    Iproute2,
    /// `/proc/thread-self/ns/net` (a mounted /proc), for per-thread namespace switches.
    ThreadNetns,
    /// Debian's containernetworking-plugins in `/usr/lib/cni`.
    CniPlugins,
}

impl Need {
    /// Why this need is not met here, or `None` when it is.
    pub fn unmet(self) -> Option<&'static str> {
        let met = match self {
            Need::Root => is_root(),
            Need::Iproute2 => Command::new("ip").arg("-V").output().is_ok(),
            Need::ThreadNetns => Path::new("/proc/thread-self/ns/net").exists(),
            Need::CniPlugins => Path::new("/usr/lib/cni/bridge").exists(),
        };
        (!met).then_some(match self {
            Need::Root => "not running as root",
            Need::Iproute2 => "iproute2 is not installed",
            Need::ThreadNetns => "no /proc/thread-self/ns/net (is /proc mounted?)",
            Need::CniPlugins => {
                "Debian's containernetworking-plugins are not installed (/usr/lib/cni)"
            }
        })
    }
}

/// True when the privileged test `what` can run here: every one of `needs` is met (checked
/// in order; the first unmet one is the reason). Otherwise see [`gate`].
pub fn privileged(what: &str, needs: &[Need]) -> bool {
    gate(what, needs.iter().find_map(|need| need.unmet()))
}

/// The gate itself: true without a `reason`; with one, prints `SKIPPED <what>: <reason>`
/// and returns false — or panics when `PLEXUS_REQUIRE_PRIVILEGED=1`.
pub fn gate(what: &str, reason: Option<&str>) -> bool {
    let Some(reason) = reason else {
        return true;
    };
    assert!(
        std::env::var(REQUIRE_VAR).as_deref() != Ok("1"),
        "{what}: privileged test cannot run ({reason}) but {REQUIRE_VAR}=1"
    );
    eprintln!("SKIPPED {what}: {reason}");
    false
}

/// Whether this process runs as root (per `id -u`).
pub fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

static UNIQUE: AtomicUsize = AtomicUsize::new(0);

/// A short name unique to this process and call, for netns and link names (≤ 15 bytes
/// with a prefix of up to 5).
pub fn unique(prefix: &str) -> String {
    let n = UNIQUE.fetch_add(1, Ordering::Relaxed);
    format!("{prefix}{:x}{n}", std::process::id() % 0xfffff)
}

/// Runs a command and panics with its output when it fails; its stdout.
pub fn sh(args: &[&str]) -> String {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .unwrap_or_else(|e| panic!("{args:?}: {e}"));
    assert!(
        out.status.success(),
        "{args:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Runs a command and reports only whether it succeeded.
pub fn try_sh(args: &[&str]) -> bool {
    Command::new(args[0])
        .args(&args[1..])
        .output()
        .is_ok_and(|o| o.status.success())
}

/// A named network namespace (`ip netns add`) with `lo` up, deleted on drop.
#[derive(Debug)]
pub struct Netns {
    /// Name under /run/netns.
    pub name: String,
}

impl Netns {
    /// Creates a fresh namespace named [`unique`]`(prefix)` with its loopback up.
    pub fn new(prefix: &str) -> Netns {
        let name = unique(prefix);
        sh(&["ip", "netns", "add", &name]);
        sh(&["ip", "-n", &name, "link", "set", "lo", "up"]);
        Netns { name }
    }

    /// Its file, as a runtime passes it in `CNI_NETNS`.
    pub fn path(&self) -> String {
        format!("/run/netns/{}", self.name)
    }

    /// Runs a command inside the namespace; what it did, success or not.
    pub fn run(&self, args: &[&str]) -> Output {
        Command::new("ip")
            .args(["netns", "exec", &self.name])
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("netns exec {args:?}: {e}"))
    }

    /// The stdout of `args` run inside the namespace, success or not.
    pub fn text(&self, args: &[&str]) -> String {
        String::from_utf8_lossy(&self.run(args).stdout).into_owned()
    }

    /// Runs a command inside the namespace, panicking on failure; its stdout.
    pub fn exec(&self, args: &[&str]) -> String {
        let mut full = vec!["ip", "netns", "exec", &self.name];
        full.extend_from_slice(args);
        sh(&full)
    }

    /// Like [`Netns::exec`], reporting success instead of panicking.
    pub fn try_exec(&self, args: &[&str]) -> bool {
        let mut full = vec!["ip", "netns", "exec", &self.name];
        full.extend_from_slice(args);
        try_sh(&full)
    }

    /// `ip -n <ns> <args…>`, panicking on failure; its stdout.
    pub fn ip(&self, args: &[&str]) -> String {
        let mut full = vec!["ip", "-n", &self.name];
        full.extend_from_slice(args);
        sh(&full)
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .output();
    }
}

/// A host link (bridge, veth) deleted on drop.
#[derive(Debug)]
pub struct HostLink(pub String);

impl Drop for HostLink {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["link", "del", &self.0]).output();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nothing_missing_lets_the_test_run() {
        assert!(gate("nothing_missing_lets_the_test_run", None));
        assert!(privileged("no needs", &[]));
    }

    #[test]
    fn unique_names_differ_and_fit_an_interface_name() {
        let (a, b) = (unique("plxbr"), unique("plxbr"));
        assert_ne!(a, b);
        assert!(a.starts_with("plxbr") && a.len() <= 15, "{a}");
    }

    #[test]
    fn sh_returns_stdout_and_try_sh_reports_failure() {
        assert_eq!(sh(&["echo", "hi"]), "hi\n");
        assert!(try_sh(&["true"]));
        assert!(!try_sh(&["false"]));
        assert!(!try_sh(&["/nonexistent/plexus-no-such-command"]));
    }
}
