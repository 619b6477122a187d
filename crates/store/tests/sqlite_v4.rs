//! SQLite schema v3 → v4 on a real file: a database a v3 build left (allocations with
//! node, blocks, cursors) gains stored networks, the claim history and owner details,
//! keeping every row.

mod common;

use std::path::Path;

use common::{ip, open, range_set, runtime};
use plexus_store::{
    AttachmentKey, Claim, HistoryKind, HistoryQuery, NetworkDeletion, Owner, PutMode,
    SQLITE_SCHEMA_VERSION, Store,
};
use rusqlite::Connection;
use serde_json::json;

/// The v3 layout as a v3 build of plexus created it, holding one allocation and a block.
fn build_v3(path: &Path) {
    let conn = Connection::open(path).unwrap();
    conn.execute_batch(
        "CREATE TABLE schema_version (id INTEGER PRIMARY KEY CHECK (id = 1),
                                      version INTEGER NOT NULL);
         INSERT INTO schema_version VALUES (1, 3);
         CREATE TABLE allocations (
             network TEXT NOT NULL, addr BLOB NOT NULL CHECK (length(addr) = 16),
             range_set TEXT NOT NULL, container_id TEXT NOT NULL, ifname TEXT NOT NULL,
             pod_namespace TEXT, pod_name TEXT, created_at INTEGER NOT NULL,
             pod_uid TEXT, node TEXT,
             PRIMARY KEY (network, addr),
             UNIQUE (network, container_id, ifname, range_set)) WITHOUT ROWID;
         CREATE TABLE cursors (
             network TEXT NOT NULL, range_set TEXT NOT NULL,
             last_addr BLOB NOT NULL CHECK (length(last_addr) = 16),
             PRIMARY KEY (network, range_set)) WITHOUT ROWID;
         CREATE TABLE heartbeat (id INTEGER PRIMARY KEY CHECK (id = 1),
                                 beat_at INTEGER NOT NULL);
         CREATE TABLE blocks (
             network TEXT NOT NULL, base BLOB NOT NULL CHECK (length(base) = 16),
             prefix INTEGER NOT NULL, range_set TEXT NOT NULL, node TEXT NOT NULL,
             claimed_at INTEGER NOT NULL, emptied_at INTEGER,
             cursor BLOB CHECK (cursor IS NULL OR length(cursor) = 16),
             PRIMARY KEY (network, base)) WITHOUT ROWID;
         CREATE INDEX blocks_by_node ON blocks (network, range_set, node);
         CREATE INDEX blocks_emptied ON blocks (network, emptied_at)
             WHERE emptied_at IS NOT NULL;",
    )
    .unwrap();
    let set_id = range_set("10.4.0.0/29").id();
    let addr = |s: &str| plexus_ipam_core::addr::key(ip(s)).to_be_bytes();
    conn.execute(
        "INSERT INTO allocations VALUES ('n', ?1, ?2, 'old-c', 'eth0', 'ns', 'pod', 1700000000,
                                         'uid-old', 'node-1')",
        rusqlite::params![addr("10.4.0.1"), set_id],
    )
    .unwrap();
    conn.execute(
        "INSERT INTO blocks VALUES ('n', ?1, 29, ?2, 'node-1', 1700000000, NULL, ?3)",
        rusqlite::params![addr("10.4.0.0"), set_id, addr("10.4.0.1")],
    )
    .unwrap();
}

#[test]
fn v3_database_is_migrated_to_v4_keeping_its_rows() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("v3.db");
    build_v3(&path);
    let store = open(&path);
    let conn = Connection::open(&path).unwrap();
    let version: i64 = conn
        .query_row("SELECT version FROM schema_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!((version, SQLITE_SCHEMA_VERSION), (4, 4));
    let rt = runtime();
    let old = rt.block_on(store.list("n")).unwrap();
    assert_eq!(old.len(), 1);
    assert_eq!(old[0].owner.pod_uid.as_deref(), Some("uid-old"));
    assert_eq!(old[0].owner.details, None, "v3 rows have no details");
    assert_eq!(old[0].node.as_deref(), Some("node-1"));
    assert_eq!(rt.block_on(store.blocks("n")).unwrap().len(), 1);

    // New claims carry details and append history; releasing the old row does too.
    let set = range_set("10.4.0.0/29");
    let key = AttachmentKey::new("n", "new-c", "net1");
    let owner = Owner::new(Some("ns".into()), Some("new".into()), None)
        .with_details(json!({"mac": "02:00:00:00:00:02"}));
    let got = rt
        .block_on(store.claim(&key, &owner, &[Claim::Dynamic(&set)], &common::ctx()))
        .unwrap();
    assert_eq!(got[0].ip, ip("10.4.0.2"), "the v3 cursor is honoured");
    assert_eq!(got[0].owner, owner);
    rt.block_on(store.release(&AttachmentKey::new("n", "old-c", "eth0")))
        .unwrap();
    let events = rt
        .block_on(store.history(&HistoryQuery::Network {
            network: "n".into(),
        }))
        .unwrap();
    let kinds: Vec<(HistoryKind, &str)> = events
        .iter()
        .map(|e| (e.kind, e.container_id.as_str()))
        .collect();
    assert_eq!(
        kinds,
        [
            (HistoryKind::Claim, "new-c"),
            (HistoryKind::Release, "old-c")
        ]
    );

    // Networks can be stored in the migrated file.
    let spec = json!({"kind": "ClusterNetwork"});
    let record = rt
        .block_on(store.put_network("n", &spec, PutMode::Create))
        .unwrap();
    assert_eq!(record.revision, 1);
    let refused = rt.block_on(store.delete_network("n", false)).unwrap();
    assert_eq!(refused, NetworkDeletion::InUse { allocations: 1 });
    drop(store);
    let reopened = open(&path);
    assert_eq!(rt.block_on(reopened.network("n")).unwrap(), Some(record));
    assert_eq!(rt.block_on(reopened.list("n")).unwrap(), got);
}
