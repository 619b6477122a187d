//! Helpers for the real-kernel tests: the privileged-test gate, unique names, throwaway
//! named network namespaces, and running `ip`.

#![allow(dead_code)]

use std::net::IpAddr;
use std::ops::Deref;
use std::path::PathBuf;

use ipnet::IpNet;
use plexus_netlink::{
    Dad, Dataplane, LinkSpec, MacvlanMode, Netns, RealDataplane, temporary_link_name,
};
use plexus_test_support::privileged::Need;
pub use plexus_test_support::privileged::unique;

/// True when the real-kernel tests can run here (root, iproute2, a mounted /proc); see
/// [`plexus_test_support::privileged::privileged`].
pub fn privileged(what: &str) -> bool {
    plexus_test_support::privileged::privileged(
        what,
        &[Need::Root, Need::Iproute2, Need::ThreadNetns],
    )
}

/// A named network namespace ([`Netns`](plexus_test_support::privileged::Netns)) as the
/// dataplane sees it; deleted on drop.
pub struct TestNetns(plexus_test_support::privileged::Netns);

impl TestNetns {
    /// Creates a fresh namespace with its loopback up.
    pub fn new(prefix: &str) -> TestNetns {
        TestNetns(plexus_test_support::privileged::Netns::new(prefix))
    }

    /// Its file, as a runtime passes it in CNI_NETNS.
    pub fn path(&self) -> PathBuf {
        PathBuf::from(self.0.path())
    }

    /// The dataplane's handle on it.
    pub fn netns(&self) -> Netns {
        Netns::Path(self.path())
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

impl Deref for TestNetns {
    type Target = plexus_test_support::privileged::Netns;

    fn deref(&self) -> &Self::Target {
        &self.0
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
