//! SQLite-specific behaviour on real files: permissions, migrations, refusal of unknown
//! schemas, read-only and locked databases, bulk import, store configuration.

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::{ip, open, range_set, runtime};
use plexus_store::{
    Allocation, AttachmentKey, Claim, Owner, SQLITE_SCHEMA_VERSION, SqliteConfig, SqliteStore,
    Store, StoreConfig, StoreError,
};
use rusqlite::Connection;

fn mode_of(path: &Path) -> u32 {
    fs::metadata(path).unwrap().permissions().mode() & 0o777
}

fn schema_version(path: &Path) -> i64 {
    let conn = Connection::open(path).unwrap();
    conn.query_row("SELECT version FROM schema_version WHERE id = 1", [], |r| {
        r.get(0)
    })
    .unwrap()
}

#[test]
fn new_database_is_private_in_a_private_directory() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("missing/parent/plexus.db");
    let store = open(&path);
    assert_eq!(mode_of(&path), 0o600, "database file");
    assert_eq!(mode_of(path.parent().unwrap()), 0o700, "created directory");
    assert_eq!(
        mode_of(&dir.path().join("missing")),
        0o700,
        "created ancestor"
    );
    runtime().block_on(store.probe()).unwrap();
    let wal = PathBuf::from(format!("{}-wal", path.display()));
    assert_eq!(
        mode_of(&wal),
        0o600,
        "SQLite copies the database mode to the WAL"
    );
}

#[test]
fn empty_file_is_migrated_to_the_latest_schema() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("empty.db");
    fs::write(&path, b"").unwrap();
    let store = open(&path);
    assert_eq!(schema_version(&path), SQLITE_SCHEMA_VERSION);
    let set = range_set("10.1.0.0/29");
    let key = AttachmentKey::new("n", "c", "eth0");
    let got = runtime()
        .block_on(store.claim(
            &key,
            &Owner::default(),
            &[Claim::Dynamic(&set)],
            &common::ctx(),
        ))
        .unwrap();
    assert_eq!(got[0].ip, ip("10.1.0.1"));
}

/// Builds the v1 layout by hand (as a v1 build of plexus left it), with data in it.
fn build_v1(path: &Path) {
    let conn = Connection::open(path).unwrap();
    conn.execute_batch(
        "CREATE TABLE schema_version (id INTEGER PRIMARY KEY CHECK (id = 1),
                                      version INTEGER NOT NULL);
         INSERT INTO schema_version VALUES (1, 1);
         CREATE TABLE allocations (
             network TEXT NOT NULL, addr BLOB NOT NULL CHECK (length(addr) = 16),
             range_set TEXT NOT NULL, container_id TEXT NOT NULL, ifname TEXT NOT NULL,
             pod_namespace TEXT, pod_name TEXT, created_at INTEGER NOT NULL,
             PRIMARY KEY (network, addr),
             UNIQUE (network, container_id, ifname, range_set)) WITHOUT ROWID;
         CREATE TABLE cursors (
             network TEXT NOT NULL, range_set TEXT NOT NULL,
             last_addr BLOB NOT NULL CHECK (length(last_addr) = 16),
             PRIMARY KEY (network, range_set)) WITHOUT ROWID;",
    )
    .unwrap();
    let set_id = range_set("10.1.1.0/29").id();
    let addr = |s: &str| plexus_ipam_core::addr::key(ip(s)).to_be_bytes();
    conn.execute(
        "INSERT INTO allocations VALUES ('n', ?1, ?2, 'old-c', 'eth0', 'ns', 'pod', 1700000000)",
        rusqlite::params![addr("10.1.1.1"), set_id],
    )
    .unwrap();
    conn.execute(
        "INSERT INTO cursors VALUES ('n', ?1, ?2)",
        rusqlite::params![set_id, addr("10.1.1.1")],
    )
    .unwrap();
}

#[test]
fn v1_database_is_migrated_keeping_its_allocations_and_cursors() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("v1.db");
    build_v1(&path);
    let store = open(&path);
    assert_eq!(schema_version(&path), SQLITE_SCHEMA_VERSION);
    let rt = runtime();
    let old = rt.block_on(store.list("n")).unwrap();
    assert_eq!(old.len(), 1);
    assert_eq!(old[0].ip, ip("10.1.1.1"));
    assert_eq!(old[0].container_id, "old-c");
    assert_eq!(old[0].created_at, 1_700_000_000);
    let expected_owner = Owner {
        pod_namespace: Some("ns".into()),
        pod_name: Some("pod".into()),
        pod_uid: None,
        details: None,
    };
    assert_eq!(old[0].owner, expected_owner, "v1 rows have no pod UID");
    assert_eq!(old[0].node, None, "v1 rows have no node");
    // The v1 cursor is honoured, and the v2 column and heartbeat work.
    let set = range_set("10.1.1.0/29");
    let key = AttachmentKey::new("n", "new-c", "eth0");
    let owner = Owner {
        pod_uid: Some("u-1".into()),
        ..Owner::default()
    };
    let got = rt
        .block_on(store.claim(&key, &owner, &[Claim::Dynamic(&set)], &common::ctx()))
        .unwrap();
    assert_eq!(got[0].ip, ip("10.1.1.2"));
    assert_eq!(rt.block_on(store.attachment(&key)).unwrap()[0].owner, owner);
    rt.block_on(store.probe()).unwrap();
    // The v3 blocks table works: a claim with blocks takes one around the old rows.
    let with_blocks =
        plexus_store::ClaimContext::new("node-1", plexus_store::BlockPolicy::default());
    let key3 = AttachmentKey::new("n", "blocky", "eth0");
    let got = rt
        .block_on(store.claim(&key3, &owner, &[Claim::Dynamic(&set)], &with_blocks))
        .unwrap();
    assert_eq!(
        got[0].ip,
        ip("10.1.1.3"),
        "the only block of a /29, first free address"
    );
    assert_eq!(got[0].node.as_deref(), Some("node-1"));
    let blocks = rt.block_on(store.blocks("n")).unwrap();
    assert_eq!(blocks.len(), 1);
    assert_eq!(blocks[0].base, ip("10.1.1.0"));
    drop(store);
    let reopened = open(&path);
    assert_eq!(rt.block_on(reopened.list("n")).unwrap().len(), 3);
    assert_eq!(rt.block_on(reopened.blocks("n")).unwrap(), blocks);
}

#[test]
fn newer_schema_is_refused_as_corrupt() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("future.db");
    drop(open(&path));
    let future = SQLITE_SCHEMA_VERSION + 1;
    Connection::open(&path)
        .unwrap()
        .execute("UPDATE schema_version SET version = ?1", [future])
        .unwrap();
    let err = SqliteStore::open(&SqliteConfig::new(&path)).unwrap_err();
    let StoreError::Corrupt { reason } = &err else {
        panic!("expected Corrupt, got {err:?}");
    };
    let expected = format!(
        "database schema v{future} is newer than this plexus supports (v{SQLITE_SCHEMA_VERSION})"
    );
    assert!(reason.contains(&expected), "{reason}");
    assert!(reason.contains(&path.display().to_string()), "{reason}");
}

#[test]
fn a_file_that_is_not_sqlite_is_corrupt_and_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("notes.db");
    let text = b"this is not a database, but it is long enough to have a header ...........";
    fs::write(&path, text).unwrap();
    let err = SqliteStore::open(&SqliteConfig::new(&path)).unwrap_err();
    assert!(matches!(err, StoreError::Corrupt { .. }), "{err:?}");
    assert_eq!(fs::read(&path).unwrap(), text);
}

#[test]
fn a_directory_in_the_way_is_refused_as_one_naming_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("is-a-dir.db");
    fs::create_dir(&path).unwrap();
    // A configuration problem (CNI code 7), not an outage to retry: it says what is there.
    let err = SqliteStore::open(&SqliteConfig::new(&path)).unwrap_err();
    assert!(matches!(err, StoreError::Config { .. }), "{err:?}");
    assert!(
        err.to_string().contains("is-a-dir.db is a directory"),
        "{err}"
    );
}

/// Makes `path` unwritable even for root: `chattr +i`, undone on drop.
struct Immutable(PathBuf);

impl Immutable {
    fn set(path: &Path) -> Option<Immutable> {
        let ok = Command::new("chattr").arg("+i").arg(path).status();
        ok.ok()
            .filter(|s| s.success())
            .map(|_| Immutable(path.to_path_buf()))
    }
}

impl Drop for Immutable {
    fn drop(&mut self) {
        let _ = Command::new("chattr").arg("-i").arg(&self.0).status();
    }
}

/// Whether the current process can still open `path` for writing.
fn writable(path: &Path) -> bool {
    fs::OpenOptions::new().append(true).open(path).is_ok()
}

#[test]
fn read_only_database_is_unavailable_for_probe_and_claim() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ro.db");
    let set = range_set("10.1.2.0/29");
    let rt = runtime();
    {
        let store = open(&path);
        let key = AttachmentKey::new("n", "before", "eth0");
        rt.block_on(store.claim(
            &key,
            &Owner::default(),
            &[Claim::Dynamic(&set)],
            &common::ctx(),
        ))
        .unwrap();
    }
    fs::set_permissions(&path, fs::Permissions::from_mode(0o400)).unwrap();
    // Root ignores file modes: fall back to the immutable attribute.
    let _guard = if writable(&path) {
        match Immutable::set(&path) {
            Some(guard) => Some(guard),
            None => {
                eprintln!(
                    "skipped: cannot make {} read-only (root without chattr)",
                    path.display()
                );
                return;
            }
        }
    } else {
        None
    };
    assert!(!writable(&path));

    let store = match SqliteStore::open(&SqliteConfig::new(&path)) {
        Ok(store) => store,
        Err(err) => panic!("a read-only database must still open for reads and STATUS: {err:?}"),
    };
    let list = rt.block_on(store.list("n")).unwrap();
    assert_eq!(list.len(), 1, "reads still work");

    let probe = rt.block_on(store.probe()).unwrap_err();
    assert!(matches!(probe, StoreError::Unavailable { .. }), "{probe:?}");
    assert!(probe.to_string().contains("ro.db"), "{probe}");
    assert!(probe.to_string().contains("read-only"), "{probe}");

    let key = AttachmentKey::new("n", "after", "eth0");
    let claim = rt.block_on(store.claim(
        &key,
        &Owner::default(),
        &[Claim::Dynamic(&set)],
        &common::ctx(),
    ));
    assert!(
        matches!(claim, Err(StoreError::Unavailable { .. })),
        "{claim:?}"
    );
    let release = rt.block_on(store.release(&AttachmentKey::new("n", "before", "eth0")));
    assert!(
        matches!(release, Err(StoreError::Unavailable { .. })),
        "{release:?}"
    );
}

#[test]
fn a_writer_holding_the_lock_past_the_busy_timeout_makes_the_store_unavailable() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("locked.db");
    drop(open(&path));
    let holder = Connection::open(&path).unwrap();
    holder.execute_batch("BEGIN IMMEDIATE").unwrap();

    let mut cfg = SqliteConfig::new(&path);
    cfg.busy_timeout = Duration::from_millis(200);
    let store = SqliteStore::open(&cfg).unwrap();
    let rt = runtime();
    let started = std::time::Instant::now();
    let err = rt.block_on(store.probe()).unwrap_err();
    assert!(
        started.elapsed() >= Duration::from_millis(200),
        "waited the busy timeout"
    );
    assert!(matches!(err, StoreError::Unavailable { .. }), "{err:?}");
    assert!(err.to_string().contains("200 ms"), "{err}");
    let key = AttachmentKey::new("n", "c", "eth0");
    let set = range_set("10.1.3.0/29");
    let claim = rt.block_on(store.claim(
        &key,
        &Owner::default(),
        &[Claim::Dynamic(&set)],
        &common::ctx(),
    ));
    assert!(
        matches!(claim, Err(StoreError::Unavailable { .. })),
        "{claim:?}"
    );
    // Readers are never blocked by the writer in WAL mode.
    assert!(rt.block_on(store.list("n")).unwrap().is_empty());

    holder.execute_batch("COMMIT").unwrap();
    rt.block_on(store.probe()).unwrap();
}

fn bulk_rows(network: &str, set_id: &str, first: u32, count: u32) -> Vec<Allocation> {
    (first..first + count)
        .map(|i| Allocation {
            network: network.into(),
            container_id: format!("bulk-{i}"),
            ifname: "eth0".into(),
            ip: std::net::IpAddr::V4(std::net::Ipv4Addr::from(0x0a00_0000 + i)),
            range_set: set_id.into(),
            owner: Owner::default(),
            created_at: 1,
            node: None,
        })
        .collect()
}

#[test]
fn bulk_insert_fills_in_batches_and_moves_the_cursor() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir.path().join("bulk.db"));
    let set = range_set("10.0.0.0/8");
    let rows = bulk_rows("big", &set.id(), 1, 25_000);
    assert_eq!(store.bulk_insert(rows.into_iter()).unwrap(), 25_000);
    let rt = runtime();
    let count = rt.block_on(store.count_between("big", ip("10.0.0.0"), ip("10.255.255.255")));
    assert_eq!(count.unwrap(), 25_000);
    let key = AttachmentKey::new("big", "fresh", "eth0");
    let got = rt
        .block_on(store.claim(
            &key,
            &Owner::default(),
            &[Claim::Dynamic(&set)],
            &common::ctx(),
        ))
        .unwrap();
    assert_eq!(
        got[0].ip,
        std::net::IpAddr::V4(std::net::Ipv4Addr::from(0x0a00_0000 + 25_001))
    );

    let duplicate = bulk_rows("big", &set.id(), 10, 1);
    let err = store.bulk_insert(duplicate.into_iter()).unwrap_err();
    assert!(
        matches!(&err, StoreError::AddressTaken { container_id, .. } if container_id == "bulk-10"),
        "{err:?}"
    );
}

#[test]
fn gc_reports_a_damaged_attachment_and_releases_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("gc.db");
    let store = open(&path);
    let set = range_set("10.1.4.0/29");
    let rt = runtime();
    for c in ["good-1", "damaged", "good-2"] {
        let key = AttachmentKey::new("n", c, "eth0");
        rt.block_on(store.claim(
            &key,
            &Owner::default(),
            &[Claim::Dynamic(&set)],
            &common::ctx(),
        ))
        .unwrap();
    }
    // Someone edited the database by hand: a timestamp that is not a number.
    Connection::open(&path)
        .unwrap()
        .execute(
            "UPDATE allocations SET created_at = 'yesterday' WHERE container_id = 'damaged'",
            [],
        )
        .unwrap();
    let report = rt
        .block_on(store.gc(
            "n",
            &[],
            &plexus_store::GcScope::all_nodes(),
            &plexus_store::BlockPolicy::disabled(),
            0,
        ))
        .unwrap();
    let released: Vec<&str> = report
        .released
        .iter()
        .map(|a| a.container_id.as_str())
        .collect();
    assert_eq!(released, ["good-1", "good-2"]);
    assert_eq!(report.errors.len(), 1, "{:?}", report.errors);
    assert!(report.errors[0].contains("damaged"), "{:?}", report.errors);
    let count = rt.block_on(store.count_between("n", ip("10.1.4.0"), ip("10.1.4.7")));
    assert_eq!(
        count.unwrap(),
        1,
        "the damaged attachment stays for an operator to look at"
    );
}

#[test]
fn open_follows_the_store_config() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("from-config.db");
    let json = serde_json::json!({"type": "sqlite", "path": path, "busy_timeout_ms": 500});
    let cfg = StoreConfig::from_json(Some(&json)).unwrap();
    let rt = runtime();
    let store = rt.block_on(plexus_store::open(&cfg)).unwrap();
    rt.block_on(store.probe()).unwrap();
    assert_eq!(mode_of(&path), 0o600);
    let bad = serde_json::json!({"type": "etcd3"});
    let err = StoreConfig::from_json(Some(&bad)).unwrap_err();
    assert!(
        matches!(&err, StoreError::Config { field, reason } if field == "ipam.store.type" && reason.contains("etcd3")),
        "{err:?}"
    );
}

#[test]
fn concurrent_openers_of_a_new_file_all_succeed_and_migrate_once() {
    let dir = tempfile::tempdir().unwrap();
    for round in 0..10 {
        let path = dir.path().join(format!("race-{round}.db"));
        let start = std::sync::Arc::new(std::sync::Barrier::new(8));
        let openers: Vec<_> = (0..8)
            .map(|_| {
                let (path, start) = (path.clone(), start.clone());
                std::thread::spawn(move || {
                    start.wait();
                    SqliteStore::open(&SqliteConfig::new(path)).map(drop)
                })
            })
            .collect();
        for opener in openers {
            let result = opener.join().unwrap();
            assert_eq!(result, Ok(()), "round {round}");
        }
        assert_eq!(schema_version(&path), SQLITE_SCHEMA_VERSION);
    }
}

/// Size of the WAL file next to `db` (0 when absent).
fn wal_len(db: &Path) -> u64 {
    let mut wal = db.as_os_str().to_owned();
    wal.push("-wal");
    fs::metadata(PathBuf::from(wal))
        .map(|m| m.len())
        .unwrap_or(0)
}

#[test]
fn one_shot_connections_keep_the_wal_short_and_lose_nothing() {
    // Each CNI call is a process that opens, claims once and exits: the WAL must neither
    // grow without bound (every opener replays it) nor be checkpointed on every close.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("wal.db");
    let set = range_set("10.40.0.0/20");
    let rt = runtime();
    let mut largest = 0;
    for i in 0..400 {
        let store = open(&path);
        let key = AttachmentKey::new("n", format!("c{i}"), "eth0");
        rt.block_on(store.claim(
            &key,
            &Owner::default(),
            &[Claim::Dynamic(&set)],
            &common::ctx(),
        ))
        .unwrap();
        drop(store);
        largest = largest.max(wal_len(&path));
    }
    assert!(
        largest > 0,
        "the WAL is kept between connections, not deleted on close"
    );
    assert!(
        largest < 1024 * 1024,
        "WAL grew to {largest} bytes: checkpoints are not happening"
    );
    let store = open(&path);
    let all = rt.block_on(store.list("n")).unwrap();
    assert_eq!(all.len(), 400);
    let distinct: std::collections::HashSet<_> = all.iter().map(|a| a.ip).collect();
    assert_eq!(distinct.len(), 400);
}
