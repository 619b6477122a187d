//! The PostgreSQL backend against real servers: the shared one of `scripts/with-servers`
//! (a fresh database per test) and private ones that the outage test stops and restarts.
//! Without a server these tests print `SKIPPED` and pass, unless
//! `PLEXUS_REQUIRE_SERVERS=1`.

#[path = "support/postgres.rs"]
mod pg_support;

use std::collections::{BTreeSet, HashMap};
use std::net::{IpAddr, TcpListener};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use pg_support::{PrivateConfig, ServerConfig};
use plexus_ipam_core::range::{Range, RangeSet};
use plexus_store::{
    AttachmentKey, BlockPolicy, Claim, ClaimContext, Owner, PasswordSource, PostgresConfig,
    PostgresStore, Secret, SslMode, Store, StoreConfig, StoreError,
};
use plexus_test_support::servers::free_port;
use plexus_test_support::servers::postgres::{PgServer, PrivatePg};

fn range_set(cidr: &str) -> RangeSet {
    let range = Range::new(cidr.parse().unwrap(), None, None, None, Vec::new()).unwrap();
    RangeSet::new(vec![range]).unwrap()
}

fn ctx(node: &str) -> ClaimContext {
    ClaimContext::new(node, BlockPolicy::default())
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

async fn claim_one(
    store: &dyn Store,
    key: &AttachmentKey,
    set: &RangeSet,
    node: &str,
) -> Result<IpAddr, StoreError> {
    let got = store
        .claim(key, &Owner::default(), &[Claim::Dynamic(set)], &ctx(node))
        .await?;
    Ok(got[0].ip)
}

#[tokio::test]
async fn one_connection_per_call_claims_lists_and_releases() {
    let Some(server) = PgServer::shared("one_connection_per_call") else {
        return;
    };
    let store = PostgresStore::open(&server.fresh_database("basic")).unwrap();
    let set = range_set("10.20.0.0/24");
    let key = AttachmentKey::new("pg-basic", "c1", "eth0");
    let first = claim_one(&store, &key, &set, "node-a").await.unwrap();
    assert!(set.is_allocatable(first), "{first}");
    // The claim took a block for node-a (blocks are on by default) and allocated in it.
    let blocks = store.blocks("pg-basic").await.unwrap();
    assert_eq!(blocks.len(), 1, "{blocks:?}");
    assert_eq!(blocks[0].node, "node-a");
    assert!(blocks[0].contains(first), "{first} outside {blocks:?}");
    assert_eq!(
        claim_one(&store, &key, &set, "node-a").await.unwrap(),
        first
    );
    let listed = store.list("pg-basic").await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].node.as_deref(), Some("node-a"));
    assert_eq!(store.release(&key).await.unwrap().len(), 1);
    assert!(store.list("pg-basic").await.unwrap().is_empty());
    store.probe().await.unwrap();
}

/// A listener that accepts connections and never answers: a hung server.
fn black_hole() -> (TcpListener, u16) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    (listener, port)
}

fn unreachable_config(port: u16, timeout_ms: u64) -> PostgresConfig {
    let mut cfg = PostgresConfig::new("127.0.0.1");
    cfg.port = port;
    cfg.sslmode = SslMode::Disable;
    cfg.timeout = Duration::from_millis(timeout_ms);
    cfg.password = Some(PasswordSource::Inline(Secret::new("inline-SECRET-pw")));
    cfg
}

#[test]
fn a_closed_port_is_unavailable_at_once() {
    let port = free_port();
    let store = PostgresStore::open(&unreachable_config(port, 3000)).unwrap();
    // The plugin's runtime: no I/O driver, no timers.
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let started = Instant::now();
    let err = rt.block_on(store.probe()).unwrap_err();
    assert!(matches!(err, StoreError::Unavailable { .. }), "{err:?}");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    assert!(
        err.to_string().contains(&format!("127.0.0.1:{port}")),
        "{err}"
    );
}

#[test]
fn a_silent_server_fails_within_the_deadline() {
    let (_listener, port) = black_hole();
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    for timeout_ms in [300, 1500] {
        let store = PostgresStore::open(&unreachable_config(port, timeout_ms)).unwrap();
        let key = AttachmentKey::new("n", "c", "eth0");
        let set = range_set("10.0.0.0/24");
        let started = Instant::now();
        let err = rt
            .block_on(claim_one(&store, &key, &set, "node-a"))
            .unwrap_err();
        let took = started.elapsed();
        assert!(matches!(err, StoreError::Unavailable { .. }), "{err:?}");
        let deadline = Duration::from_millis(timeout_ms);
        assert!(took >= deadline.mul_f64(0.9), "gave up early: {took:?}");
        assert!(
            took < deadline + Duration::from_millis(500),
            "took {took:?}"
        );
        assert!(
            err.to_string().contains(&format!("{timeout_ms} ms")),
            "{err}"
        );
    }
}

#[test]
fn status_timeout_cap_applies_to_postgres() {
    let cfg = StoreConfig::from_json(Some(&serde_json::json!({
        "type": "postgres", "host": "127.0.0.1", "timeout_ms": 10000
    })))
    .unwrap();
    let StoreConfig::Postgres(pg) = cfg.with_timeout(Duration::from_millis(1500)) else {
        panic!("expected postgres");
    };
    assert_eq!(pg.timeout, Duration::from_millis(1500));
}

/// Every message a caller can see, for an inline password and a password file.
#[tokio::test]
async fn secrets_never_appear_in_debug_output_or_errors() {
    let secret = "inline-SECRET-pw";
    let (_listener, hole) = black_hole();
    let mut messages = Vec::new();
    let closed = unreachable_config(free_port(), 2000);
    let silent = unreachable_config(hole, 200);
    let mut missing_file = unreachable_config(hole, 200);
    missing_file.password = Some(PasswordSource::File("/nonexistent/plexus-pw".into()));
    let json = serde_json::json!({"type": "postgres", "host": "h", "password": secret});
    messages.push(format!(
        "{:?}",
        StoreConfig::from_json(Some(&json)).unwrap()
    ));
    for cfg in [&closed, &silent, &missing_file] {
        messages.push(format!("{cfg:?} {cfg:#?}"));
        let store = PostgresStore::open(cfg).unwrap();
        messages.push(format!("{store:?}"));
        let err = store.probe().await.unwrap_err();
        messages.push(format!("{err} {err:?}"));
    }
    if let Some(server) = PgServer::shared("secrets_never_appear") {
        // A real server refusing a wrong inline password.
        let mut wrong = server.config("plexus");
        wrong.password = Some(PasswordSource::Inline(Secret::new(secret)));
        let err = PostgresStore::open(&wrong)
            .unwrap()
            .probe()
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::Unavailable { .. }), "{err:?}");
        assert!(err.to_string().contains("refused the login"), "{err}");
        messages.push(format!("{err} {err:?}"));
        // And a correct password read from a file: it must not show up either.
        let right = std::fs::read_to_string(&server.password_file).unwrap();
        let good = server.fresh_database("secrets");
        let store = PostgresStore::open(&good).unwrap();
        store.probe().await.unwrap();
        let err = store
            .count_between("n", ip("10.0.0.1"), ip("fd00::1"))
            .await
            .unwrap_err();
        let text = format!("{store:?} {err} {err:?}");
        assert!(!text.contains(right.trim()), "{text}");
    }
    for message in &messages {
        assert!(!message.contains(secret), "secret leaked: {message}");
    }
    assert!(messages.iter().any(|m| m.contains("<redacted>")));
}

/// Live attachments as the writers observed them: a second holder is a real duplicate.
type Ledger = Mutex<HashMap<IpAddr, AttachmentKey>>;

fn book(ledger: &Ledger, ip: IpAddr, key: &AttachmentKey) {
    if let Some(other) = ledger.lock().unwrap().insert(ip, key.clone()) {
        panic!("{ip} handed to {key:?} while {other:?} still holds it");
    }
}

async fn churn(store: Arc<dyn Store>, worker: usize, ops: usize, ledger: Arc<Ledger>) {
    let set = range_set("10.30.0.0/26");
    let mut live: Vec<(AttachmentKey, IpAddr)> = Vec::new();
    for op in 0..ops {
        if live.len() < 4 && (op % 3 != 2 || live.is_empty()) {
            let key = AttachmentKey::new("pg-churn", format!("w{worker}-op{op}"), "eth0");
            let got = claim_one(&*store, &key, &set, &format!("node-{}", worker % 4))
                .await
                .unwrap();
            book(&ledger, got, &key);
            live.push((key, got));
        } else {
            let (key, got) = live.remove(op % live.len());
            ledger.lock().unwrap().remove(&got);
            let released = store.release(&key).await.unwrap();
            assert_eq!(released.len(), 1);
            assert_eq!(released[0].ip, got);
        }
    }
}

async fn assert_table_is_ledger(store: &dyn Store, ledger: &Ledger) {
    let table = store.list("pg-churn").await.unwrap();
    let actual: BTreeSet<(String, IpAddr)> = table
        .iter()
        .map(|a| (a.container_id.clone(), a.ip))
        .collect();
    let expected: BTreeSet<(String, IpAddr)> = ledger
        .lock()
        .unwrap()
        .iter()
        .map(|(ip, key)| (key.container_id.clone(), *ip))
        .collect();
    assert_eq!(actual.len(), table.len(), "a row listed twice");
    assert_eq!(actual, expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_tasks_on_direct_and_pooled_stores_never_share_an_address() {
    let Some(server) = PgServer::shared("many_tasks") else {
        return;
    };
    let mut cfg = server.fresh_database("tasks");
    // This test is about uniqueness, not latency: a machine shared with parallel builds may
    // queue twelve writers of one network for longer than the default deadline.
    cfg.timeout = Duration::from_secs(60);
    let pooled: Arc<dyn Store> = Arc::new(PostgresStore::pooled(&cfg, 8).unwrap());
    let ledger: Arc<Ledger> = Arc::default();
    let mut tasks = Vec::new();
    for worker in 0..12 {
        // Half share one pool, half open a connection per call like plugin processes.
        let store: Arc<dyn Store> = if worker % 2 == 0 {
            pooled.clone()
        } else {
            Arc::new(PostgresStore::open(&cfg).unwrap())
        };
        tasks.push(tokio::spawn(churn(store, worker, 30, ledger.clone())));
    }
    for task in tasks {
        task.await.unwrap();
    }
    assert_table_is_ledger(&*pooled, &ledger).await;
}

/// Helper, not a test: one "plugin process" of the test below (spawned as a child).
#[test]
#[ignore = "run by many_processes_never_share_an_address"]
fn child_process_churn() {
    let (Ok(db), Ok(worker)) = (
        std::env::var("PLEXUS_PG_CHILD_DB"),
        std::env::var("PLEXUS_PG_CHILD_WORKER"),
    ) else {
        return;
    };
    let Some(server) = PgServer::shared("child_process_churn") else {
        return;
    };
    let worker: usize = worker.parse().unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let set = range_set("10.40.0.0/27");
    let mut held = Vec::new();
    for op in 0..20 {
        // A new store (one connection per call) each time, like a plugin process per call.
        let mut cfg = server.config(&db);
        cfg.timeout = Duration::from_secs(60);
        let store = PostgresStore::open(&cfg).unwrap();
        let key = AttachmentKey::new("pg-procs", format!("p{worker}-op{op}"), "eth0");
        if held.len() < 3 || op % 2 == 0 {
            let got = rt
                .block_on(claim_one(&store, &key, &set, &format!("node-{worker}")))
                .unwrap();
            held.push((key, got));
        } else {
            let (key, _) = held.remove(0);
            assert_eq!(rt.block_on(store.release(&key)).unwrap().len(), 1);
        }
    }
    let lines: Vec<String> = held
        .iter()
        .map(|(k, ip)| format!("{} {ip}", k.container_id))
        .collect();
    std::fs::write(
        std::env::var("PLEXUS_PG_CHILD_OUT").unwrap(),
        lines.join("\n"),
    )
    .unwrap();
}

#[test]
fn many_processes_never_share_an_address() {
    let Some(server) = PgServer::shared("many_processes") else {
        return;
    };
    let cfg = server.fresh_database("procs");
    let dir = tempfile::tempdir().unwrap();
    let exe = std::env::current_exe().unwrap();
    let children: Vec<_> = (0..6)
        .map(|worker| {
            let out = dir.path().join(format!("w{worker}"));
            let child = std::process::Command::new(&exe)
                .args(["--exact", "child_process_churn", "--ignored", "--nocapture"])
                .env("PLEXUS_PG_CHILD_DB", &cfg.dbname)
                .env("PLEXUS_PG_CHILD_WORKER", worker.to_string())
                .env("PLEXUS_PG_CHILD_OUT", &out)
                .stdout(std::process::Stdio::null())
                .spawn()
                .unwrap();
            (child, out)
        })
        .collect();
    let mut expected = BTreeSet::new();
    for (mut child, out) in children {
        assert!(child.wait().unwrap().success(), "a child process failed");
        let text = std::fs::read_to_string(out).unwrap();
        for line in text.lines() {
            let (container, addr) = line.split_once(' ').unwrap();
            assert!(expected.insert(addr.to_string()), "{addr} held twice");
            expected.insert(format!("{container} {addr}"));
        }
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let store = PostgresStore::open(&cfg).unwrap();
    let table = rt.block_on(store.list("pg-procs")).unwrap();
    let mut actual = BTreeSet::new();
    for a in &table {
        assert!(
            actual.insert(a.ip.to_string()),
            "{} twice in the table",
            a.ip
        );
        actual.insert(format!("{} {}", a.container_id, a.ip));
    }
    assert_eq!(
        actual, expected,
        "the table is exactly what the processes hold"
    );
    assert_eq!(table.len(), 6 * 2, "two live attachments per process");
}

#[test]
fn outage_then_recovery_loses_and_duplicates_nothing() {
    let Some(mut pg) = PrivatePg::start("outage_then_recovery") else {
        return;
    };
    let mut cfg = pg.config();
    cfg.timeout = Duration::from_millis(1500);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let set = range_set("10.50.0.0/26");
    let store = PostgresStore::open(&cfg).unwrap();
    let pooled = PostgresStore::pooled(&cfg, 4).unwrap();
    let mut live: Vec<(AttachmentKey, IpAddr)> = Vec::new();
    let mut failed: Vec<AttachmentKey> = Vec::new();
    let mut claim = |op: usize, store: &PostgresStore, failed: &mut Vec<AttachmentKey>| {
        let key = AttachmentKey::new("pg-outage", format!("c{op}"), "eth0");
        let started = Instant::now();
        match rt.block_on(claim_one(store, &key, &set, "node-a")) {
            Ok(got) => live.push((key, got)),
            Err(err) => {
                assert!(matches!(err, StoreError::Unavailable { .. }), "{err:?}");
                assert!(
                    started.elapsed() < Duration::from_millis(2000),
                    "{:?}",
                    started.elapsed()
                );
                failed.push(key);
            }
        }
    };
    for op in 0..10 {
        claim(op, if op % 2 == 0 { &store } else { &pooled }, &mut failed);
    }
    assert!(failed.is_empty(), "{failed:?}");
    pg.stop();
    for op in 10..14 {
        claim(op, if op % 2 == 0 { &store } else { &pooled }, &mut failed);
    }
    assert_eq!(failed.len(), 4, "every claim during the outage fails");
    let started = Instant::now();
    assert!(matches!(
        rt.block_on(pooled.probe()),
        Err(StoreError::Unavailable { .. })
    ));
    assert!(started.elapsed() < Duration::from_millis(2000));
    pg.start_again();
    // Recovery is automatic: the same store objects work again (no cached broken connection).
    for op in 14..24 {
        claim(op, if op % 2 == 0 { &store } else { &pooled }, &mut failed);
    }
    assert_eq!(failed.len(), 4, "nothing fails after the restart");
    // The runtime calls DEL for the failed ADDs; they must find nothing half-written.
    for key in &failed {
        assert!(
            rt.block_on(store.release(key)).unwrap().is_empty(),
            "{key:?}"
        );
    }
    let table = rt.block_on(pooled.list("pg-outage")).unwrap();
    let actual: BTreeSet<(String, IpAddr)> = table
        .iter()
        .map(|a| (a.container_id.clone(), a.ip))
        .collect();
    let expected: BTreeSet<(String, IpAddr)> = live
        .iter()
        .map(|(k, ip)| (k.container_id.clone(), *ip))
        .collect();
    assert_eq!(actual.len(), table.len());
    assert_eq!(actual, expected);
    assert_eq!(table.len(), 20);
}

#[tokio::test]
async fn an_older_schema_is_migrated_keeping_its_rows() {
    let Some(server) = PgServer::shared("older_schema") else {
        return;
    };
    let cfg = server.fresh_database("older");
    // Schema v1 exactly as released, with one allocation in it.
    server.superuser_sql(
        &cfg.dbname,
        &format!("SET ROLE {}; {V1_SCHEMA} {V1_ROW}", cfg.user),
    );
    let store = PostgresStore::open(&cfg).unwrap();
    let held = store.list("pg-old").await.unwrap();
    assert_eq!(held.len(), 1);
    assert_eq!(held[0].ip, ip("10.60.0.7"));
    assert_eq!(held[0].node, None, "recorded before nodes were");
    let set = range_set("10.60.0.0/24");
    let key = AttachmentKey::new("pg-old", "new", "eth0");
    let new = claim_one(&store, &key, &set, "node-b").await.unwrap();
    assert!(new != ip("10.60.0.7") && set.is_allocatable(new), "{new}");
    let after = store.list("pg-old").await.unwrap();
    assert_eq!(after.len(), 2);
    assert!(after.iter().any(|a| a.node.as_deref() == Some("node-b")));
    // The v2 table answers (an error here would mean the migration did not run).
    store.blocks("pg-old").await.unwrap();
    let version = std::process::Command::new(server.bin.join("psql"))
        .args([
            "-X",
            "-At",
            "-h",
            &server.host,
            "-p",
            &server.port.to_string(),
            "-U",
            "postgres",
        ])
        .args([
            "-d",
            &cfg.dbname,
            "-c",
            "SELECT version FROM plexus_schema_version",
        ])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&version.stdout).trim(),
        plexus_store::POSTGRES_SCHEMA_VERSION.to_string()
    );
}

#[tokio::test]
async fn a_newer_schema_is_refused_untouched() {
    let Some(server) = PgServer::shared("newer_schema") else {
        return;
    };
    let cfg = server.fresh_database("newer");
    server.superuser_sql(
        &cfg.dbname,
        &format!(
            "SET ROLE {}; CREATE TABLE plexus_schema_version (id smallint PRIMARY KEY, \
             version integer NOT NULL); INSERT INTO plexus_schema_version VALUES (1, 99);",
            cfg.user
        ),
    );
    let err = PostgresStore::open(&cfg)
        .unwrap()
        .probe()
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Corrupt { .. }), "{err:?}");
    assert!(err.to_string().contains("schema v99 is newer"), "{err}");
}

/// Released schema v1 (never edit: it is what old databases hold).
const V1_SCHEMA: &str = r#"CREATE TABLE plexus_schema_version (
     id smallint PRIMARY KEY CHECK (id = 1), version integer NOT NULL);
   CREATE TABLE plexus_allocations (
     network text COLLATE "C" NOT NULL,
     addr bytea NOT NULL CHECK (octet_length(addr) = 16),
     range_set text COLLATE "C" NOT NULL,
     container_id text COLLATE "C" NOT NULL,
     ifname text COLLATE "C" NOT NULL,
     pod_namespace text, pod_name text, pod_uid text,
     created_at bigint NOT NULL,
     PRIMARY KEY (network, addr),
     UNIQUE (network, container_id, ifname, range_set));
   CREATE TABLE plexus_cursors (
     network text COLLATE "C" NOT NULL, range_set text COLLATE "C" NOT NULL,
     last_addr bytea NOT NULL CHECK (octet_length(last_addr) = 16),
     PRIMARY KEY (network, range_set));
   CREATE TABLE plexus_heartbeat (id smallint PRIMARY KEY CHECK (id = 1), beat_at bigint NOT NULL);
   INSERT INTO plexus_schema_version VALUES (1, 1);"#;

/// 10.60.0.7 as its 16-byte key (`::ffff:10.60.0.7`).
const V1_ROW: &str = "INSERT INTO plexus_allocations VALUES ('pg-old', \
     '\\x00000000000000000000ffff0a3c0007'::bytea, '10.60.0.0/24[10.60.0.1-10.60.0.254]', \
     'old', 'eth0', NULL, NULL, NULL, 1700000000);";
