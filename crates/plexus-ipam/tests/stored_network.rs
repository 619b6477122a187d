//! `"network": "<name>"`: the real `plexus-ipam` binary allocating from a network
//! definition kept in the SQLite store (addresses reported with the network's prefix), and
//! refusing inline ranges next to it, a network the store does not know, or a store that
//! does not exist (code 7, naming the store; nothing created).

mod common;

use std::path::Path;

use common::{held, ipam, ipam_args};
use plexus_store::{HistoryKind, HistoryQuery, PutMode, SqliteConfig, SqliteStore, Store};
use serde_json::{Value, json};
use tempfile::TempDir;

/// A DANM-style network with both families, a gateway route, an exclusion and a block size.
fn definition() -> Value {
    json!({
        "apiVersion": "plexus.io/v1",
        "kind": "ClusterNetwork",
        "metadata": {"name": "blue"},
        "spec": {
            "NetworkID": "blue",
            "NetworkType": "ipvlan",
            "Options": {
                "host_device": "eth1",
                "cidr": "10.77.0.0/24",
                "allocation_pool": {"start": "10.77.0.10", "end": "10.77.0.20"},
                "routes": {"10.99.0.0/16": "10.77.0.1"},
                "net6": "fd00:77::/64",
                "allocation_pool_v6": {"cidr": "fd00:77::/120"}
            }
        }
    })
}

fn define(db: &Path, name: &str, definition: &Value) {
    let store = SqliteStore::open(&SqliteConfig::new(db)).unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    runtime
        .block_on(store.put_network(name, definition, PutMode::Upsert))
        .unwrap();
}

fn conf(db: &Path, ipam: Value) -> Value {
    let mut ipam = ipam;
    ipam["type"] = json!("plexus-ipam");
    ipam["store"] = json!({"type": "sqlite", "path": db});
    json!({"cniVersion": "1.1.0", "name": "conflist-name", "type": "ipvlan", "ipam": ipam})
}

#[test]
fn add_check_del_use_the_stored_ranges_and_routes() {
    let dir = TempDir::new().unwrap();
    let db = dir.path().join("p.db");
    define(&db, "blue", &definition());
    let conf = conf(
        &db,
        json!({"network": "blue", "dns": {"nameservers": ["10.77.0.53"]}}),
    );

    let reply = ipam_args(
        "ADD",
        "c1",
        "net1",
        "K8S_POD_NAMESPACE=ns;K8S_POD_NAME=p1",
        &conf,
    );
    let result = reply.ok();
    let ips: Vec<&str> = result["ips"]
        .as_array()
        .unwrap()
        .iter()
        .map(|ip| ip["address"].as_str().unwrap())
        .collect();
    // Handed out from the /120 allocation pool, reported with net6's /64 (the model's
    // conversion, the one the meta-plugin reports with).
    assert_eq!(ips, ["10.77.0.10/24", "fd00:77::1/64"], "{result}");
    assert_eq!(
        result["routes"],
        json!([{"dst": "10.99.0.0/16", "gw": "10.77.0.1"}])
    );
    assert_eq!(result["dns"]["nameservers"], json!(["10.77.0.53"]));
    let rows = held(&db, "blue");
    assert_eq!(
        rows.len(),
        2,
        "allocations are stored under the network's name: {rows:?}"
    );

    let mut check = conf.clone();
    check["prevResult"] = result;
    ipam("CHECK", "c1", "net1", &check).ok();
    ipam("DEL", "c1", "net1", &conf).ok();
    assert!(held(&db, "blue").is_empty());

    let store = SqliteStore::open(&SqliteConfig::new(&db)).unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let query = HistoryQuery::Pod {
        namespace: "ns".into(),
        name: "p1".into(),
    };
    let events = runtime.block_on(store.history(&query)).unwrap();
    let kinds: Vec<HistoryKind> = events.iter().map(|e| e.kind).collect();
    assert_eq!(
        kinds,
        [
            HistoryKind::Claim,
            HistoryKind::Claim,
            HistoryKind::Release,
            HistoryKind::Release
        ]
    );

    // STATUS counts the stored pool; GC sweeps the stored network's allocations.
    ipam("STATUS", "", "", &conf).ok();
    ipam("ADD", "c2", "net1", &conf).ok();
    assert_eq!(held(&db, "blue").len(), 2);
    let mut gc = conf.clone();
    gc["cni.dev/valid-attachments"] = json!([]);
    ipam("GC", "", "", &gc).ok();
    assert!(
        held(&db, "blue").is_empty(),
        "GC released the stored network's addresses"
    );
}

#[test]
fn the_pool_ends_where_the_stored_allocation_pool_ends() {
    let dir = TempDir::new().unwrap();
    let db = dir.path().join("p.db");
    let mut small = definition();
    small["spec"]["Options"]["allocation_pool"] =
        json!({"start": "10.77.0.10", "end": "10.77.0.11"});
    small["spec"]["Options"]
        .as_object_mut()
        .unwrap()
        .remove("net6");
    small["spec"]["Options"]
        .as_object_mut()
        .unwrap()
        .remove("allocation_pool_v6");
    define(&db, "blue", &small);
    let conf = conf(&db, json!({"network": "blue"}));
    assert_eq!(ipam("ADD", "a", "eth0", &conf).ips(), ["10.77.0.10"]);
    assert_eq!(ipam("ADD", "b", "eth0", &conf).ips(), ["10.77.0.11"]);
    let msg = ipam("ADD", "c", "eth0", &conf).err(100);
    assert!(msg.contains("blue"), "{msg}");
}

#[test]
fn inline_ranges_next_to_a_network_are_refused() {
    let dir = TempDir::new().unwrap();
    let db = dir.path().join("p.db");
    define(&db, "blue", &definition());
    for inline in [
        json!({"network": "blue", "range": "10.0.0.0/24"}),
        json!({"network": "blue", "ranges": [[{"subnet": "10.0.0.0/24"}]]}),
        json!({"network": "blue", "routes": [{"dst": "0.0.0.0/0"}]}),
    ] {
        let msg = ipam("ADD", "c1", "eth0", &conf(&db, inline.clone())).err(7);
        assert!(msg.contains("cannot be combined"), "{inline}: {msg}");
    }
    assert!(held(&db, "blue").is_empty());
}

#[test]
fn an_unknown_network_is_a_config_error_naming_it() {
    let dir = TempDir::new().unwrap();
    let db = dir.path().join("p.db");
    define(&db, "blue", &definition());
    let reply = ipam(
        "ADD",
        "c1",
        "eth0",
        &conf(&db, json!({"network": "nosuch"})),
    );
    let msg = reply.err(7);
    assert!(
        msg.contains("\"nosuch\"") && msg.contains("not defined"),
        "{msg}"
    );
    assert!(
        msg.contains(&db.display().to_string()),
        "names the store: {msg}"
    );
    assert!(
        reply.json()["details"]
            .as_str()
            .unwrap()
            .contains("plexusctl network create")
    );
    let empty = ipam("ADD", "c1", "eth0", &conf(&db, json!({"network": ""}))).err(7);
    assert!(empty.contains("ipam.network"), "{empty}");
    // DEL of a network the store does not know releases nothing and succeeds.
    ipam(
        "DEL",
        "c1",
        "eth0",
        &conf(&db, json!({"network": "nosuch"})),
    )
    .ok();
}

/// Every entry below `dir`, recursively, with its size: what a call may have created.
fn snapshot(dir: &Path) -> Vec<(String, u64)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let meta = std::fs::symlink_metadata(&path).unwrap();
        out.push((path.display().to_string(), meta.len()));
        if meta.is_dir() {
            out.extend(snapshot(&path));
        }
    }
    out.sort();
    out
}

#[test]
fn a_mistyped_store_path_is_named_and_never_created() {
    let dir = TempDir::new().unwrap();
    let db = dir.path().join("p.db");
    define(&db, "blue", &definition());
    let typo = dir.path().join("typo/p.db");
    let before = snapshot(dir.path());
    let stored = conf(&typo, json!({"network": "blue"}));
    let mut with_prev = stored.clone();
    with_prev["prevResult"] = json!({"cniVersion": "1.1.0", "ips": []});
    let mut gc = stored.clone();
    gc["cni.dev/valid-attachments"] = json!([]);
    // ADD from a stored network and CHECK need the store: code 7 naming it.
    for (verb, conf) in [("ADD", &stored), ("CHECK", &with_prev)] {
        let reply = ipam(verb, "c1", "eth0", conf);
        let msg = reply.err(7);
        assert!(
            msg.contains(&typo.display().to_string()) && msg.contains("does not exist"),
            "{verb}: {msg}"
        );
    }
    // STATUS of a stored network in a missing store is not ready, naming the store.
    let msg = ipam("STATUS", "", "", &stored).err(50);
    assert!(msg.contains(&typo.display().to_string()), "{msg}");
    // DEL and GC have nothing to release; STATUS of inline ranges is ready (ADD creates).
    ipam("DEL", "c1", "eth0", &stored).ok();
    ipam("GC", "", "", &gc).ok();
    let inline = conf(&typo, json!({"range": "10.5.0.0/24"}));
    ipam("STATUS", "", "", &inline).ok();
    ipam("DEL", "c1", "eth0", &inline).ok();
    assert_eq!(
        snapshot(dir.path()),
        before,
        "no call above created anything"
    );
    // Only an ADD with its own ranges creates the store.
    assert_eq!(ipam("ADD", "c1", "eth0", &inline).ips(), ["10.5.0.1"]);
    assert!(typo.exists());
}
