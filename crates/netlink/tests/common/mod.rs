//! Helpers for the real-kernel tests: the privileged-test gate, unique names, throwaway
//! named network namespaces, and running `ip`.

#![allow(dead_code)]

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};

use ipnet::IpNet;
use plexus_netlink::{
    Dad, Dataplane, LinkSpec, MacvlanMode, Netns, RealDataplane, temporary_link_name,
};

/// True when privileged tests can run here. When they cannot, prints why and returns false
/// — unless `PLEXUS_REQUIRE_PRIVILEGED=1` (set by `.ci/run`), where a skip is a failure.
pub fn privileged(what: &str) -> bool {
    let reason = if !is_root() {
        Some("not running as root".to_string())
    } else if Command::new("ip").arg("-V").output().is_err() {
        Some("iproute2 is not installed".to_string())
    } else if !Path::new("/proc/thread-self/ns/net").exists() {
        Some("no /proc/thread-self/ns/net (is /proc mounted?)".to_string())
    } else {
        None
    };
    match reason {
        None => true,
        Some(reason) => {
            assert!(
                std::env::var("PLEXUS_REQUIRE_PRIVILEGED").as_deref() != Ok("1"),
                "{what}: privileged test cannot run ({reason}) but PLEXUS_REQUIRE_PRIVILEGED=1"
            );
            eprintln!("SKIPPED {what}: {reason}");
            false
        }
    }
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

static UNIQUE: AtomicUsize = AtomicUsize::new(0);

/// A short name unique to this process and call, for netns and link names (≤ 15 bytes).
pub fn unique(prefix: &str) -> String {
    let n = UNIQUE.fetch_add(1, Ordering::Relaxed);
    format!("{prefix}{:x}{n}", std::process::id() % 0xfffff)
}

/// Runs a command and panics with its output when it fails.
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
        .map(|o| o.status.success())
        .unwrap_or(false)
}

/// A named network namespace (`ip netns add`) deleted on drop.
pub struct TestNetns {
    /// Name under /run/netns.
    pub name: String,
}

impl TestNetns {
    /// Creates a fresh namespace with its loopback up.
    pub fn new(prefix: &str) -> TestNetns {
        let name = unique(prefix);
        sh(&["ip", "netns", "add", &name]);
        sh(&["ip", "-n", &name, "link", "set", "lo", "up"]);
        TestNetns { name }
    }

    /// Its file, as a runtime passes it in CNI_NETNS.
    pub fn path(&self) -> PathBuf {
        PathBuf::from(format!("/run/netns/{}", self.name))
    }

    /// The dataplane's handle on it.
    pub fn netns(&self) -> Netns {
        Netns::Path(self.path())
    }

    /// `ip -n <ns> <args…>`, panicking on failure.
    pub fn ip(&self, args: &[&str]) -> String {
        let mut full = vec!["ip", "-n", &self.name];
        full.extend_from_slice(args);
        sh(&full)
    }

    /// Runs a command inside the namespace.
    pub fn exec(&self, args: &[&str]) -> String {
        let mut full = vec!["ip", "netns", "exec", &self.name];
        full.extend_from_slice(args);
        sh(&full)
    }

    /// Like [`TestNetns::exec`], reporting success instead of panicking.
    pub fn try_exec(&self, args: &[&str]) -> bool {
        let mut full = vec!["ip", "netns", "exec", &self.name];
        full.extend_from_slice(args);
        try_sh(&full)
    }

    /// Writes a sysctl inside the namespace (no dependency on procps' `sysctl`).
    pub fn write_sysctl(&self, path: &str, value: &str) {
        self.exec(&["sh", "-c", &format!("echo {value} > {path}")]);
    }

    /// Reads a sysctl inside the namespace.
    pub fn sysctl(&self, path: &str) -> String {
        self.exec(&["cat", path]).trim().to_string()
    }
}

impl Drop for TestNetns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .output();
    }
}

pub fn net(s: &str) -> IpNet {
    s.parse().expect("test prefix")
}

pub fn ip(s: &str) -> IpAddr {
    s.parse().expect("test address")
}

/// A node namespace with an up veth pair: `nic` is the NIC macvlans sit on, `peer` the
/// switch side.
pub struct Lab {
    /// The dataplane under test.
    pub dp: RealDataplane,
    /// The node namespace.
    pub node: TestNetns,
    /// The NIC (veth end) macvlans sit on.
    pub nic: String,
    /// The other veth end (the "switch").
    pub peer: String,
}

impl Lab {
    /// A fresh node namespace whose NIC has `nic_mtu`.
    pub async fn new(nic_mtu: u32) -> Lab {
        let dp = RealDataplane::new().expect("dataplane");
        let node = TestNetns::new("nlh");
        let (nic, peer) = (unique("nic"), unique("sw"));
        dp.create_link(
            &node.netns(),
            &LinkSpec::veth(&nic, &peer).with_mtu(nic_mtu),
        )
        .await
        .expect("veth");
        dp.set_up(&node.netns(), &nic).await.expect("nic up");
        dp.set_up(&node.netns(), &peer).await.expect("peer up");
        Lab {
            dp,
            node,
            nic,
            peer,
        }
    }

    /// The node namespace as the dataplane names it.
    pub fn host(&self) -> Netns {
        self.node.netns()
    }

    /// DANM's built-in sequence: temporary name on the node, moved, addressed, renamed, up.
    pub async fn attach(&self, pod: &TestNetns, name: &str, addrs: &[&str]) -> String {
        let tmp = temporary_link_name();
        let spec = LinkSpec::macvlan(&tmp, &self.nic, MacvlanMode::Bridge);
        self.dp
            .create_link(&self.host(), &spec)
            .await
            .expect("create");
        self.dp
            .move_link(&self.host(), &tmp, &pod.netns())
            .await
            .expect("move");
        for addr in addrs {
            self.dp
                .add_address(&pod.netns(), &tmp, net(addr), Dad::Skip)
                .await
                .expect("address");
        }
        self.dp
            .rename_link(&pod.netns(), &tmp, name)
            .await
            .expect("rename");
        self.dp.set_up(&pod.netns(), name).await.expect("up");
        tmp
    }
}
