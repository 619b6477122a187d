//! `duplicateAddressCheck` on the fake dataplane with a real SQLite store: a conflicting
//! address is quarantined and replaced, static requests and used-up attempts fail with
//! code 114 leaving only the quarantines, and expired quarantines are freed.

mod support;

use std::net::IpAddr;

use plexus::duplicate::QUARANTINE_CONTAINER;
use plexus_netlink::{Call, DUPLICATE_HOLDER, Dad, FakeDataplane, Netns};
use serde_json::{Value, json};
use support::{World, fake_plugin};

const POD: &str = "/run/netns/duppod";

/// A dual-stack macvlan network on eth1 with the check on.
fn checked_network(world: &World) {
    let object = json!({"apiVersion": "plexus.io/v1", "kind": "ClusterNetwork",
        "metadata": {"name": "dup"},
        "spec": {"NetworkID": "dup", "NetworkType": "macvlan",
                 "Options": {"host_device": "eth1", "cidr": "10.30.0.0/24", "net6": "fd30::/64",
                             "allocation_pool_v6": {"cidr": "fd30::/120"},
                             "routes": {"10.99.0.0/16": "10.30.0.254"}},
                 "plexus": {"duplicateAddressCheck": true}}});
    std::fs::write(
        world.dir.path().join("networks").join("dup.json"),
        object.to_string(),
    )
    .unwrap();
}

fn ip(text: &str) -> IpAddr {
    text.parse().unwrap()
}

/// `(container_id, address)` of every allocation of the network.
fn holders(world: &World) -> Vec<(String, String)> {
    world
        .held("dup")
        .iter()
        .map(|a| (a.container_id.clone(), a.ip.to_string()))
        .collect()
}

fn addresses(result: &Value) -> Vec<&str> {
    result["ips"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["address"].as_str().unwrap())
        .collect()
}

fn pod_addresses(fake: &FakeDataplane) -> Vec<String> {
    let state = fake.netns_state(&Netns::path(POD)).unwrap();
    state
        .links
        .iter()
        .flat_map(|l| l.addresses.iter().map(|a| a.address.to_string()))
        .collect()
}

#[test]
fn a_conflict_quarantines_the_address_and_the_pod_gets_another() {
    let world = World::new(POD);
    checked_network(&world);
    let (plugin, fake) = fake_plugin(POD);
    fake.set_duplicate(ip("10.30.0.1"));
    fake.set_duplicate(ip("fd30::1"));
    let conf = world.conf(Some(
        json!([{"clusterNetwork": "dup", "ip": "dynamic", "ip6": "dynamic"}]),
    ));
    let result = world.run(&plugin, "ADD", "c1", &conf).ok();
    assert_eq!(
        addresses(&result),
        ["10.30.0.2/24", "fd30::2/64"],
        "{result}"
    );
    let mut on_link = pod_addresses(&fake);
    on_link.sort();
    assert_eq!(
        on_link,
        ["10.30.0.2/24", "fd30::2/64"],
        "conflicting ones removed"
    );
    assert_eq!(
        holders(&world),
        [
            (QUARANTINE_CONTAINER.to_owned(), "10.30.0.1".to_owned()),
            ("c1".to_owned(), "10.30.0.2".to_owned()),
            (QUARANTINE_CONTAINER.to_owned(), "fd30::1".to_owned()),
            ("c1".to_owned(), "fd30::2".to_owned()),
        ]
    );
    let quarantine = world.held("dup")[0].owner.details.clone().unwrap();
    assert_eq!(
        quarantine["holder_mac"],
        json!(DUPLICATE_HOLDER.to_string())
    );
    assert_eq!(quarantine["found_by"], json!("c1/eth0"));
    assert!(quarantine["quarantine_until"].as_i64().unwrap() > plexus_store::unix_now() + 500);

    // IPv4 was probed before it was put on the link; IPv6 ran the kernel's DAD.
    let calls = fake.calls();
    let probe = calls
        .iter()
        .position(|c| matches!(c, Call::ArpProbe { ip, .. } if ip.to_string() == "10.30.0.2"))
        .expect("probe of the second address");
    let added = calls
        .iter()
        .position(|c| matches!(c, Call::AddAddress { address, .. } if address.to_string() == "10.30.0.2/24"))
        .expect("second address added");
    assert!(probe < added);
    assert!(calls.iter().any(|c| matches!(c,
        Call::AddAddress { address, dad: Dad::Run, .. } if address.to_string() == "fd30::2/64")));
    // Routes and announcements come after the check, for the final addresses only.
    let state = fake.netns_state(&Netns::path(POD)).unwrap();
    assert_eq!(state.routes.len(), 1);
    let announced: Vec<String> = state
        .announcements
        .iter()
        .map(|(_, a)| a.to_string())
        .collect();
    assert_eq!(announced, ["10.30.0.2", "fd30::2"]);

    // DEL frees the pod's addresses; the quarantines stay for their cool-down.
    world.run(&plugin, "DEL", "c1", &conf).ok();
    assert_eq!(
        holders(&world),
        [
            (QUARANTINE_CONTAINER.to_owned(), "10.30.0.1".to_owned()),
            (QUARANTINE_CONTAINER.to_owned(), "fd30::1".to_owned()),
        ]
    );
}

#[test]
fn a_static_address_in_use_fails_with_114_and_leaves_only_the_quarantine() {
    let world = World::new(POD);
    checked_network(&world);
    let (plugin, fake) = fake_plugin(POD);
    fake.set_duplicate(ip("10.30.0.9"));
    let conf = world.conf(Some(
        json!([{"clusterNetwork": "dup", "ip": "10.30.0.9/24"}]),
    ));
    let err = world.run(&plugin, "ADD", "c1", &conf).err(114);
    let msg = err["msg"].as_str().unwrap();
    assert!(
        msg.contains("static address 10.30.0.9 is in use by"),
        "{msg}"
    );
    assert!(msg.contains("eth0"), "{msg}");
    assert_eq!(
        holders(&world),
        [(QUARANTINE_CONTAINER.to_owned(), "10.30.0.9".to_owned())]
    );
    let state = fake.netns_state(&Netns::path(POD)).unwrap();
    assert_eq!(state.links.len(), 1, "only lo: {:?}", state.links);
    assert!(world.records().is_empty());
}

#[test]
fn used_up_attempts_fail_with_114_and_quarantine_every_address_tried() {
    let world = World::new(POD);
    checked_network(&world);
    let (plugin, fake) = fake_plugin(POD);
    for last in 1..=3 {
        fake.set_duplicate(ip(&format!("10.30.0.{last}")));
    }
    let mut conf = world.conf(Some(json!([{"clusterNetwork": "dup", "ip": "dynamic"}])));
    conf["duplicateAddress"] = json!({"attempts": 2});
    let err = world.run(&plugin, "ADD", "c1", &conf).err(114);
    assert!(
        err["msg"].as_str().unwrap().contains("attempt 2 of 2"),
        "{err}"
    );
    assert_eq!(
        holders(&world),
        [
            (QUARANTINE_CONTAINER.to_owned(), "10.30.0.1".to_owned()),
            (QUARANTINE_CONTAINER.to_owned(), "10.30.0.2".to_owned()),
        ]
    );
    assert_eq!(fake.netns_state(&Netns::path(POD)).unwrap().links.len(), 1);
    assert!(world.records().is_empty());
}

#[test]
fn an_expired_quarantine_is_freed_by_the_next_add() {
    let world = World::new(POD);
    checked_network(&world);
    let (plugin, fake) = fake_plugin(POD);
    fake.set_duplicate(ip("10.30.0.1"));
    let mut conf = world.conf(Some(json!([{"clusterNetwork": "dup", "ip": "dynamic"}])));
    conf["duplicateAddress"] = json!({"cooldownSeconds": 0});
    let first = world.run(&plugin, "ADD", "c1", &conf).ok();
    assert_eq!(addresses(&first), ["10.30.0.2/24"]);
    assert_eq!(holders(&world).len(), 2, "quarantine plus c1");
    // With no cool-down the quarantine ends the second it begins (`quarantine_until` is
    // the claim's own second, and one that is not after now is over): the next ADD frees
    // it without waiting for the clock to tick.
    // A second pod, same store and networks (the netconf's absolute paths).
    let second_pod = "/run/netns/duppod2";
    fake.add_netns(&Netns::path(second_pod));
    let second = World {
        dir: tempfile::TempDir::new().unwrap(),
        cni_path: String::new(),
        netns: second_pod.to_owned(),
    };
    let result = second.run(&plugin, "ADD", "c2", &conf).ok();
    assert_eq!(addresses(&result), ["10.30.0.3/24"]);
    assert_eq!(
        holders(&world),
        [
            ("c1".to_owned(), "10.30.0.2".to_owned()),
            ("c2".to_owned(), "10.30.0.3".to_owned()),
        ],
        "the expired quarantine of 10.30.0.1 is gone"
    );
}
