//! The prefix of an address from a network kept in the store: `plexus` (here, on the fake
//! dataplane) and `plexus-ipam` (the real binary, `"network": "blue"`) both report it with
//! the network's `cidr` / `net6` prefix, not the narrower allocation CIDR the address was
//! handed out from — one conversion in `plexus-model`, used by both.

mod support;

use std::path::PathBuf;
use std::process::{Command, Stdio};

use plexus_netlink::Netns;
use plexus_store::{PutMode, StoreConfig};
use serde_json::{Value, json};
use support::{World, fake_plugin};

const POD: &str = "/run/netns/storedprefix";

/// A dual-stack network whose IPv6 addresses come from a /120 of its /64.
fn definition() -> Value {
    json!({"apiVersion": "plexus.io/v1", "kind": "ClusterNetwork",
        "metadata": {"name": "blue"},
        "spec": {"NetworkID": "blue", "NetworkType": "macvlan", "Options": {
            "host_device": "eth1",
            "cidr": "10.91.0.0/24",
            "allocation_pool": {"start": "10.91.0.10", "end": "10.91.0.99"},
            "routes": {"10.99.0.0/16": "10.91.0.1"},
            "net6": "fd91::/64",
            "allocation_pool_v6": {"cidr": "fd91::/120"}}}})
}

/// Stores `blue` in the world's SQLite store (not in networksDir).
fn store_blue(world: &World) {
    let config = StoreConfig::from_json(Some(&json!({"path": world.db()}))).unwrap();
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
        .block_on(async {
            let store = plexus_store::open(&config).await.unwrap();
            store
                .put_network("blue", &definition(), PutMode::Create)
                .await
                .unwrap();
        });
}

fn addresses(result: &Value) -> Vec<String> {
    result["ips"]
        .as_array()
        .unwrap_or_else(|| panic!("no ips: {result}"))
        .iter()
        .map(|ip| ip["address"].as_str().unwrap().to_owned())
        .collect()
}

/// The `plexus-ipam` binary built next to `plexus`.
fn plexus_ipam() -> PathBuf {
    let path = PathBuf::from(env!("CARGO_BIN_EXE_plexus")).with_file_name("plexus-ipam");
    assert!(
        path.exists(),
        "{} is missing: build it first (cargo build -p plexus-ipam)",
        path.display()
    );
    path
}

fn ipam_add(world: &World, container: &str) -> Value {
    let conf = json!({"cniVersion": "1.1.0", "name": "conf", "type": "macvlan",
        "ipam": {"type": "plexus-ipam", "network": "blue", "agent": false,
                 "node_name": "test-node",
                 "store": {"type": "sqlite", "path": world.db()}}});
    let mut child = Command::new(plexus_ipam())
        .env_clear()
        .env("CNI_COMMAND", "ADD")
        .env("CNI_CONTAINERID", container)
        .env("CNI_NETNS", POD)
        .env("CNI_IFNAME", "net1")
        .env("CNI_PATH", "/usr/lib/cni")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(
        &mut child.stdin.take().unwrap(),
        conf.to_string().as_bytes(),
    )
    .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn both_plugins_report_the_networks_prefix_for_both_families() {
    let world = World::new(POD);
    store_blue(&world);
    let (plugin, fake) = fake_plugin(POD);
    let conf = world.conf(Some(
        json!([{"clusterNetwork": "blue", "ip": "dynamic", "ip6": "dynamic"}]),
    ));
    let meta = world.run(&plugin, "ADD", "c1", &conf).ok();
    assert_eq!(
        addresses(&meta),
        ["10.91.0.10/24", "fd91::1/64"],
        "plexus: {meta}"
    );
    // The pod's interface got the same prefixes.
    let pod = fake.netns_state(&Netns::path(POD)).unwrap();
    let mut configured: Vec<String> = pod
        .links
        .iter()
        .flat_map(|l| l.addresses.iter().map(|a| a.address.to_string()))
        .filter(|a| !a.starts_with("127.") && a != "::1/128")
        .collect();
    configured.sort();
    assert_eq!(configured, ["10.91.0.10/24", "fd91::1/64"]);

    let ipam = ipam_add(&world, "c2");
    assert_eq!(
        addresses(&ipam),
        ["10.91.0.11/24", "fd91::2/64"],
        "plexus-ipam: {ipam}"
    );
    assert_eq!(ipam["ips"][0]["gateway"], meta["ips"][0]["gateway"]);
}
