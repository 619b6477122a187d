//! Shared set-up of the fake-dataplane tests: a host with a NIC and an empty pod netns.

#![allow(dead_code)]

use std::net::IpAddr;

use ipnet::IpNet;
use plexus_netlink::{Dad, Dataplane, FakeDataplane, LinkSpec, MacvlanMode, Netns};

pub fn net(s: &str) -> IpNet {
    s.parse().expect("test prefix")
}

pub fn ip(s: &str) -> IpAddr {
    s.parse().expect("test address")
}

pub fn pod() -> Netns {
    Netns::path("/run/netns/pod")
}

/// A host with NIC `eth1` (MTU 9000) and an empty pod netns.
pub fn setup() -> FakeDataplane {
    let fake = FakeDataplane::new();
    fake.add_device(&Netns::Host, "eth1", 9000);
    fake.add_netns(&pod());
    fake
}

/// Runs DANM's built-in sequence for one interface: temporary name on the host, final name
/// in the pod.
pub async fn attach(dp: &dyn Dataplane, tmp: &str, name: &str) -> plexus_netlink::Result<()> {
    dp.create_link(
        &Netns::Host,
        &LinkSpec::macvlan(tmp, "eth1", MacvlanMode::Bridge),
    )
    .await?;
    dp.move_link(&Netns::Host, tmp, &pod()).await?;
    dp.add_address(&pod(), tmp, net("10.0.0.5/24"), Dad::Skip)
        .await?;
    dp.add_address(&pod(), tmp, net("fd00::5/64"), Dad::Skip)
        .await?;
    dp.rename_link(&pod(), tmp, name).await?;
    dp.set_up(&pod(), name).await
}
