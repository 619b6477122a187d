//! Per-node address blocks through the plugin binary: where the node name comes from,
//! nodes landing in different blocks, `"blocks": false`, and validation of `ipam.blocks`.

mod common;

use std::path::Path;

use common::{Reply, SHARED, exec, netconf, plugin_binary};
use plexus_store::{Block, SqliteConfig, SqliteStore, Store};
use serde_json::{Value, json};
use tempfile::TempDir;

/// ADD of `container` on `node` (as NODE_NAME).
fn add_on(node: &str, container: &str, conf: &Value) -> Reply {
    let env = [
        ("CNI_COMMAND", "ADD"),
        ("CNI_CONTAINERID", container),
        ("CNI_NETNS", "/var/run/netns/x"),
        ("CNI_IFNAME", "eth0"),
        ("CNI_PATH", "/usr/lib/cni"),
        ("NODE_NAME", node),
    ];
    exec(&plugin_binary(), &env, &conf.to_string())
}

/// (node of the allocation of `container`, every block) in the store at `db`.
fn stored(db: &Path, network: &str, container: &str) -> (Option<String>, Vec<Block>) {
    let store = SqliteStore::open(&SqliteConfig::new(db)).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let node = rt
        .block_on(store.list(network))
        .unwrap()
        .into_iter()
        .find(|a| a.container_id == container)
        .and_then(|a| a.node);
    (node, rt.block_on(store.blocks(network)).unwrap())
}

#[test]
fn node_name_comes_from_the_netconf_then_node_name() {
    let dir = TempDir::new().unwrap();
    let db = dir.path().join("p.db");
    let mut conf = netconf("1.1.0", "nn", &db, json!({"range": "10.40.0.0/24"}));
    add_on("from-env", "c1", &conf).ok();
    assert_eq!(stored(&db, SHARED, "c1").0.as_deref(), Some("from-env"));
    conf["ipam"]["node_name"] = json!("from-conf");
    add_on("from-env", "c2", &conf).ok();
    let (node, blocks) = stored(&db, SHARED, "c2");
    assert_eq!(node.as_deref(), Some("from-conf"));
    let owners: Vec<&str> = blocks.iter().map(|b| b.node.as_str()).collect();
    assert!(
        owners.contains(&"from-env") && owners.contains(&"from-conf"),
        "{blocks:?}"
    );
    conf["ipam"]["node_name"] = json!("");
    add_on("from-env", "c4", &conf).ok();
    assert_eq!(
        stored(&db, SHARED, "c4").0.as_deref(),
        Some("from-env"),
        "empty is absent"
    );
    conf["ipam"]["node_name"] = json!(7);
    let msg = add_on("x", "c3", &conf).err(7);
    assert!(msg.contains("ipam.node_name"), "{msg}");
}

#[test]
fn nodes_allocate_from_their_own_blocks() {
    let dir = TempDir::new().unwrap();
    let db = dir.path().join("p.db");
    let conf = netconf(
        "1.1.0",
        "bk",
        &db,
        json!({"range": "10.41.0.0/24", "blocks": {"v4": 28}}),
    );
    let mut by_node = Vec::new();
    for (node, container) in [("node-a", "a1"), ("node-b", "b1"), ("node-a", "a2")] {
        let ip: std::net::IpAddr = add_on(node, container, &conf).ips()[0].parse().unwrap();
        by_node.push((node, ip));
    }
    let (_, blocks) = stored(&db, SHARED, "a1");
    assert_eq!(blocks.len(), 2, "one /28 per node: {blocks:?}");
    for (node, ip) in by_node {
        let block = blocks.iter().find(|b| b.contains(ip)).unwrap();
        assert_eq!(block.node, node, "{ip} lies in {block:?}");
        assert_eq!(block.prefix, 28);
    }
}

#[test]
fn blocks_false_is_plain_next_fit() {
    let dir = TempDir::new().unwrap();
    let db = dir.path().join("p.db");
    let conf = netconf(
        "1.1.0",
        "nf",
        &db,
        json!({"range": "10.42.0.0/24", "blocks": false}),
    );
    assert_eq!(add_on("node-a", "a1", &conf).ips(), vec!["10.42.0.1"]);
    assert_eq!(add_on("node-b", "b1", &conf).ips(), vec!["10.42.0.2"]);
    assert!(stored(&db, SHARED, "a1").1.is_empty(), "no blocks claimed");
}

#[test]
fn invalid_block_settings_are_config_errors_naming_the_field() {
    let dir = TempDir::new().unwrap();
    let db = dir.path().join("p.db");
    for (blocks, field) in [
        (json!({"v4": 31}), "ipam.blocks.v4"),
        (json!({"v6": 64}), "ipam.blocks.v6"),
        (
            json!({"release_after_seconds": "soon"}),
            "ipam.blocks.release_after_seconds",
        ),
        (json!("yes"), "ipam.blocks"),
    ] {
        let conf = netconf(
            "1.1.0",
            "bad",
            &db,
            json!({"range": "10.43.0.0/24", "blocks": blocks}),
        );
        let msg = add_on("n", "c", &conf).err(7);
        assert!(msg.contains(field), "{field}: {msg}");
    }
}
