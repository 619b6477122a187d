//! The write locks of the native layout against the shared PostgreSQL of
//! `scripts/with-servers`: claims of different nodes run side by side, a node's own
//! claims and whole-network work wait, and history appends of one network neither wait
//! for each other nor lose or repeat an event. Without a server they print `SKIPPED` and pass, unless
//! `PLEXUS_REQUIRE_SERVERS=1`.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use super::server_tests::owner;
use super::server_tests::pg_support::ServerConfig;
use plexus_test_support::servers::postgres::PgServer;
use tokio_postgres::NoTls;

use super::txn::{NetworkLock, lock_network};
use super::*;
use crate::conformance::range_set;
use crate::records::HistoryQuery;

/// A connection of its own (outside every store) with a transaction open. Its timeouts
/// are a minute: the store's (1 s here) would end its idle transaction too soon.
async fn raw_transaction(cfg: &PostgresConfig) -> Client {
    let cfg = PostgresConfig {
        timeout: Duration::from_secs(60),
        ..cfg.clone()
    };
    let mut config = connect::pg_config(&cfg);
    if let Some(password) = connect::read_password(&cfg).unwrap() {
        config.password(password);
    }
    let (client, connection) = config.connect(NoTls).await.unwrap();
    tokio::spawn(connection);
    client.batch_execute("BEGIN").await.unwrap();
    client
}

fn on(node: &str) -> ClaimContext {
    ClaimContext::new(node, BlockPolicy::default())
}

/// Claims one dynamic address of 10.71.0.0/16 for container `container` from `node`.
async fn claim(
    store: &PostgresStore,
    container: &str,
    ctx: &ClaimContext,
) -> Result<Vec<Allocation>, StoreError> {
    let set = range_set("10.71.0.0/16");
    let key = AttachmentKey::new("locks", container, "eth0");
    store
        .claim(&key, &owner(), &[Claim::Dynamic(&set)], ctx)
        .await
}

/// Asserts that `call` failed with the deadline (it waited for a lock held elsewhere).
fn waited_out<T: std::fmt::Debug>(call: Result<T, StoreError>, started: Instant, what: &str) {
    assert!(
        matches!(call, Err(StoreError::Unavailable { .. })),
        "{what} did not wait for the held lock: {call:?}"
    );
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "{what} gave up before the deadline: {:?}",
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn other_nodes_claim_while_one_node_is_locked() {
    let Some(server) = PgServer::shared("postgres_other_nodes_claim") else {
        return;
    };
    // Two stores on one database: calls that must not wait get a patient deadline (had
    // one waited for the held lock, it would fail after it: the holder never lets go
    // before the end), calls that must wait an impatient one. One short deadline for both
    // failed the schema-creating warm-up on a CI machine at load 16.
    let mut cfg = server.fresh_database("locks_nodes");
    cfg.timeout = Duration::from_secs(15);
    let store = PostgresStore::open(&cfg).unwrap();
    claim(&store, "warm-up", &on("node-b")).await.unwrap(); // creates the schema
    let impatient_cfg = PostgresConfig {
        timeout: Duration::from_secs(1),
        ..cfg.clone()
    };
    let impatient = PostgresStore::open(&impatient_cfg).unwrap();

    // Hold node-a's claim lock (and the network's, shared) in another transaction.
    let holder = raw_transaction(&cfg).await;
    lock_network(
        &holder,
        &store.shared.ctx,
        "locks",
        NetworkLock::Node("node-a"),
    )
    .await
    .unwrap();

    // Another node claims, and anyone releases, meanwhile: they go through while the
    // holder still holds (no time bound needed: waiting would never end before ROLLBACK).
    let got = claim(&store, "b1", &on("node-b")).await.unwrap();
    let key = AttachmentKey::new("locks", "b1", "eth0");
    assert_eq!(store.release(&key).await.unwrap(), got);

    // node-a's next claim waits for its earlier one; so do GC and claims without blocks,
    // which take the whole network.
    let started = Instant::now();
    waited_out(
        claim(&impatient, "a1", &on("node-a")).await,
        started,
        "node-a's claim",
    );
    let started = Instant::now();
    let gc = impatient
        .gc(
            "locks",
            &[],
            &crate::GcScope::node("node-a"),
            &BlockPolicy::default(),
            crate::types::unix_now(),
        )
        .await;
    waited_out(gc, started, "GC");
    let started = Instant::now();
    let no_blocks = ClaimContext::new("node-c", BlockPolicy::disabled());
    waited_out(
        claim(&impatient, "c1", &no_blocks).await,
        started,
        "a claim without blocks",
    );

    // Once the holder is gone, all of them go through.
    holder.batch_execute("ROLLBACK").await.unwrap();
    claim(&store, "a1", &on("node-a")).await.unwrap();
    claim(&store, "c1", &no_blocks).await.unwrap();
    store
        .gc(
            "locks",
            &[],
            &crate::GcScope::node("node-a"),
            &BlockPolicy::default(),
            crate::types::unix_now(),
        )
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_claiming_side_by_side_keep_addresses_unique_and_history_complete() {
    let Some(server) = PgServer::shared("postgres_side_by_side") else {
        return;
    };
    let cfg = server.fresh_database("locks_side_by_side");
    let store = Arc::new(PostgresStore::pooled(&cfg, 8).unwrap());
    claim(&store, "warm-up", &on("node-0")).await.unwrap();
    let (nodes, per_node) = (8, 15);
    let tasks: Vec<_> = (0..nodes)
        .map(|n| {
            let store = store.clone();
            tokio::spawn(async move {
                let ctx = on(&format!("node-{n}"));
                let mut got = Vec::new();
                for i in 0..per_node {
                    let container = format!("n{n}-c{i}");
                    got.extend(claim(&store, &container, &ctx).await.unwrap());
                    if i % 3 == 2 {
                        // Releases run beside the claims too.
                        let key = AttachmentKey::new("locks", &container, "eth0");
                        store.release(&key).await.unwrap();
                        got.pop();
                    }
                }
                got
            })
        })
        .collect();
    let mut live = BTreeSet::new();
    for task in tasks {
        for allocation in task.await.unwrap() {
            assert!(
                live.insert(allocation.ip),
                "{} handed out twice",
                allocation.ip
            );
        }
    }
    let history = store
        .history(&HistoryQuery::Network {
            network: "locks".into(),
        })
        .await
        .unwrap();
    // warm-up claim, nodes × per_node claims, and one release per third claim.
    let expected = 1 + nodes * per_node + nodes * (per_node / 3);
    assert_eq!(history.len(), expected, "one event per claim and release");
    // Unique positions; gaps are allowed (a rolled-back append leaves one).
    let seqs: BTreeSet<u64> = history.iter().map(|e| e.seq).collect();
    assert_eq!(seqs.len(), expected);
}

/// A transaction that appended to a network's history and has not committed does not
/// hold up another node's claim (and its append) in that network: until schema v4 every
/// append took the network's history lock to the commit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_open_history_append_does_not_hold_up_other_claims() {
    let Some(server) = PgServer::shared("postgres_history_side_by_side") else {
        return;
    };
    // A patient deadline: a claim that waited for the append would fail after it anyway
    // (the holder commits only after the claim), and a short one failed under load.
    let mut cfg = server.fresh_database("locks_history");
    cfg.timeout = Duration::from_secs(15);
    let store = PostgresStore::open(&cfg).unwrap();
    let first = claim(&store, "warm-up", &on("node-b")).await.unwrap();

    let holder = raw_transaction(&cfg).await;
    let mut event = crate::records::HistoryEvent::of(
        &first[0],
        crate::records::HistoryKind::Claim,
        1_700_000_000,
    );
    event.container_id = "held-open".into();
    records::append_history(&holder, &store.shared.ctx, &event, 100)
        .await
        .unwrap();

    let started = Instant::now();
    let got = claim(&store, "beside", &on("node-c")).await;
    assert!(
        got.is_ok(),
        "a claim waited for an open history append ({:?}): {got:?}",
        started.elapsed()
    );
    holder.batch_execute("COMMIT").await.unwrap();
    let history = store
        .history(&HistoryQuery::Network {
            network: "locks".into(),
        })
        .await
        .unwrap();
    let containers: BTreeSet<&str> = history.iter().map(|e| e.container_id.as_str()).collect();
    assert_eq!(
        containers,
        BTreeSet::from(["warm-up", "held-open", "beside"]),
        "{history:?}"
    );
}

/// Releases run side by side now, so two of them can leave a block empty but unmarked;
/// GC marks it (the rows are removed behind the store's back to leave that state).
#[tokio::test]
async fn gc_marks_a_block_left_empty_unmarked() {
    let Some(server) = PgServer::shared("postgres_unmarked_block") else {
        return;
    };
    let cfg = server.fresh_database("unmarked_block");
    let store = PostgresStore::open(&cfg).unwrap();
    let forgotten = crate::conformance::unmarked_block_setup(&store).await;
    server.superuser_sql(
        &cfg.dbname,
        "DELETE FROM plexus_allocations WHERE container_id IN ('a0', 'a1')",
    );
    crate::conformance::unmarked_block_check(&store, &forgotten).await;
}
