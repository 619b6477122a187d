//! Tests against the shared PostgreSQL of `scripts/with-servers` that need the crate's
//! internals: the conformance suite on both layouts (fresh databases per check), racing
//! first calls on an empty database, and the `ips-table` layout. Without a server they
//! print `SKIPPED` and pass, unless `PLEXUS_REQUIRE_SERVERS=1`.

#[path = "../../tests/support/postgres.rs"]
pub(super) mod pg_support;

use pg_support::ServerConfig;
use plexus_test_support::servers::postgres::PgServer;

use super::*;
use crate::conformance::{Fresh, ip, range_set};

/// Fresh databases of `layout` for `check`: one store on its own connection, one on a
/// warm pool (the same check must pass on both).
fn fresh_databases(check: &str, layout: Layout) -> Option<Fresh> {
    let server = PgServer::shared(&format!("postgres_conformance_{check}"))?;
    let open = |pooled: bool| -> Box<dyn Store> {
        let mut cfg = server.fresh_database(check);
        cfg.layout = layout;
        if pooled {
            Box::new(PostgresStore::pooled(&cfg, 2).unwrap())
        } else {
            Box::new(PostgresStore::open(&cfg).unwrap())
        }
    };
    Some(Fresh {
        stores: vec![open(false), open(true)],
        guard: Box::new(()),
    })
}

/// The conformance suite on the native layout, one test per check.
mod conformance {
    use super::{Layout, fresh_databases};
    use crate::conformance::Backend;
    use crate::conformance::list::conformance_tests;

    const POSTGRES: Backend = Backend {
        name: "PostgreSQL",
        lacks: &[],
        fresh: |check| fresh_databases(check, Layout::Native),
    };

    conformance_tests!(POSTGRES);
}

/// The conformance suite on the `ips-table` layout (the CNI 1.1 talk's `ips` table), one test
/// per check; what the table cannot hold is listed with the refusal that proves it.
mod conformance_ips_table {
    use super::{Layout, fresh_databases};
    use crate::conformance::list::conformance_tests;
    use crate::conformance::{Backend, Capability, Lack, Refusal};

    /// What the talk's table cannot hold (`docs/stores.md`, "Compatibility layout").
    const IPS_TABLE_LACKS: &[Lack] = &[
        Lack {
            capability: Capability::ManyNetworks,
            reason: "the ips table holds the addresses of one network, bound by its first write",
            refusal: Refusal::Says("holds the addresses of ONE network"),
        },
        Lack {
            capability: Capability::ManyAddressesPerContainer,
            reason: "pod_id is unique in the ips table: one address per container",
            refusal: Refusal::Says("one address per container"),
        },
        Lack {
            capability: Capability::RecordsAndHistory,
            reason: "only the ips table is written: no network definitions, no history",
            refusal: Refusal::Says("keeps no network definitions or history"),
        },
        Lack {
            capability: Capability::Blocks,
            reason: "no per-node blocks: dynamic claims search the whole range set next-fit",
            refusal: Refusal::Differs,
        },
        Lack {
            capability: Capability::AllocationDetails,
            reason: "a row is container, interface and address/prefix: an allocation reads \
                     back without owner or node, its range set being the subnet",
            refusal: Refusal::Differs,
        },
    ];

    const IPS_TABLE: Backend = Backend {
        name: "PostgreSQL ips-table",
        lacks: IPS_TABLE_LACKS,
        fresh: |check| fresh_databases(check, Layout::IpsTable),
    };

    conformance_tests!(IPS_TABLE);
}

#[tokio::test]
async fn history_is_bounded() {
    let test = "postgres_history_is_bounded";
    let Some(server) = PgServer::shared(test) else {
        return;
    };
    let mut cfg = server.fresh_database("history_is_bounded");
    cfg.history_limit = 5;
    let store = PostgresStore::open(&cfg).unwrap();
    crate::conformance::history_is_bounded(&store, 5).await;
}

/// Leaves `cfg`'s database as a build of schema `version` would, holding `rows` (SQL run
/// after the schema, as the store's role).
fn leave_old_schema(server: &PgServer, cfg: &PostgresConfig, version: i32, rows: &str) {
    let steps: Vec<&str> = schema::MIGRATIONS
        .iter()
        .filter(|(step, _)| *step <= version)
        .map(|(_, sql)| *sql)
        .collect();
    server.superuser_sql(
        &cfg.dbname,
        &format!(
            "SET ROLE {}; {} INSERT INTO plexus_schema_version VALUES (1, {version}); {rows}",
            cfg.user,
            steps.join("\n")
        ),
    );
}

/// A database a v2 build left (one allocation) is migrated to v3: the row is kept, and
/// history, networks and details work.
#[tokio::test]
async fn schema_v2_is_migrated_to_v3_keeping_rows() {
    let test = "postgres_v2_to_v3";
    let Some(server) = PgServer::shared(test) else {
        return;
    };
    let cfg = server.fresh_database("v2_to_v3");
    leave_old_schema(
        &server,
        &cfg,
        2,
        "INSERT INTO plexus_allocations (network, addr, range_set, container_id, ifname, \
         pod_namespace, pod_name, created_at, node) VALUES ('old', \
         '\\x00000000000000000000ffff0a3d0007'::bytea, '10.61.0.0/24[10.61.0.1-10.61.0.254]', \
         'c', 'eth0', 'ns', 'p', 1700000000, 'n1');",
    );
    let store = PostgresStore::open(&cfg).unwrap();
    let held = store.list("old").await.unwrap();
    assert_eq!(held.len(), 1);
    assert_eq!(held[0].ip, ip("10.61.0.7"));
    assert_eq!(held[0].owner.details, None, "v2 rows have no details");
    store.release(&held[0].key()).await.unwrap();
    let events = store
        .history(&crate::HistoryQuery::Pod {
            namespace: "ns".into(),
            name: "p".into(),
        })
        .await
        .unwrap();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].kind, crate::HistoryKind::Release);
    let spec = serde_json::json!({"kind": "ClusterNetwork"});
    let record = store
        .put_network("old", &spec, crate::PutMode::Create)
        .await
        .unwrap();
    assert_eq!(store.network("old").await.unwrap(), Some(record));
    let details = serde_json::json!({"mac": "02:00:00:00:00:01"});
    let key = AttachmentKey::new("old", "c2", "net1");
    let who = owner().with_details(details.clone());
    let set = range_set("10.61.0.0/24");
    let got = store
        .claim(&key, &who, &[Claim::Dynamic(&set)], &ctx())
        .await
        .unwrap();
    assert_eq!(store.attachment(&key).await.unwrap(), got);
    assert_eq!(got[0].owner.details, Some(details));
}

/// A database a v3 build left, with history (seq 1..=7 in one network, 3 in another), is
/// migrated to v4: the events are kept and new appends are numbered past every stored one.
#[tokio::test]
async fn schema_v3_history_is_continued_by_the_v4_sequence() {
    let test = "postgres_v3_to_v4";
    let Some(server) = PgServer::shared(test) else {
        return;
    };
    let cfg = server.fresh_database("v3_to_v4");
    let events = "INSERT INTO plexus_history (network, seq, at, kind, addr, container_id, \
                  ifname, pod_namespace, pod_name) \
                  SELECT CASE WHEN s <= 7 THEN 'old' ELSE 'other' END, \
                         CASE WHEN s <= 7 THEN s ELSE 3 END, 1700000000, 'claim', \
                         '\\x00000000000000000000ffff0a3e0007'::bytea, 'c' || s, 'eth0', \
                         'ns', 'p' \
                  FROM generate_series(1, 8) AS s;";
    leave_old_schema(&server, &cfg, 3, events);
    let store = PostgresStore::open(&cfg).unwrap();
    let set = range_set("10.62.0.0/24");
    let key = AttachmentKey::new("old", "new", "eth0");
    store
        .claim(&key, &owner(), &[Claim::Dynamic(&set)], &ctx())
        .await
        .unwrap();
    store.release(&key).await.unwrap();
    let history = store
        .history(&crate::HistoryQuery::Network {
            network: "old".into(),
        })
        .await
        .unwrap();
    assert_eq!(history.len(), 9, "{history:?}");
    let seqs: Vec<u64> = history.iter().map(|e| e.seq).collect();
    assert_eq!(&seqs[..7], &[1, 2, 3, 4, 5, 6, 7]);
    assert!(seqs[7] > 7 && seqs[8] > seqs[7], "{seqs:?}");
    assert_eq!(
        (history[8].kind, history[8].container_id.as_str()),
        (crate::HistoryKind::Release, "new")
    );
}

fn ctx() -> ClaimContext {
    ClaimContext::new("node-a", BlockPolicy::default())
}

pub(super) fn owner() -> Owner {
    Owner {
        pod_namespace: Some("ns".into()),
        pod_name: Some("pod".into()),
        pod_uid: None,
        details: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_first_calls_migrate_an_empty_database_once() {
    let Some(server) = PgServer::shared("racing_first_calls") else {
        return;
    };
    let cfg = server.fresh_database("racing");
    let set = range_set("10.70.0.0/24");
    let calls: Vec<_> = (0..8)
        .map(|i| {
            let (cfg, set) = (cfg.clone(), set.clone());
            tokio::spawn(async move {
                let store = PostgresStore::open(&cfg)?;
                let key = AttachmentKey::new("race", format!("c{i}"), "eth0");
                store
                    .claim(&key, &owner(), &[Claim::Dynamic(&set)], &ctx())
                    .await
            })
        })
        .collect();
    let mut seen = std::collections::BTreeSet::new();
    for call in calls {
        let got = call.await.unwrap().unwrap();
        assert!(seen.insert(got[0].ip), "{} twice", got[0].ip);
    }
    assert_eq!(seen.len(), 8);
}

/// A store of the ips-table layout on a fresh database, and the server.
fn ips_table_store(test: &str) -> Option<(PgServer, PostgresConfig, PostgresStore)> {
    let server = PgServer::shared(test)?;
    let mut cfg = server.fresh_database(test);
    cfg.layout = Layout::IpsTable;
    let store = PostgresStore::open(&cfg).unwrap();
    Some((server, cfg, store))
}

/// The rows of `ips`, as `pod_id interface ip`.
fn ips_rows(server: &PgServer, db: &str) -> Vec<String> {
    let out = std::process::Command::new(server.bin.join("psql"))
        .args(["-X", "-At", "-F", " ", "-h", &server.host])
        .args(["-p", &server.port.to_string(), "-U", "postgres", "-d", db])
        .args(["-c", "SELECT pod_id, interface, ip FROM ips ORDER BY id"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect()
}

fn config_reason(err: StoreError) -> String {
    match err {
        StoreError::Config { field, reason } => {
            assert_eq!(field, "ipam.store.layout");
            reason
        }
        other => panic!("expected a Config error, got {other:?}"),
    }
}

#[tokio::test]
async fn ips_table_layout_writes_rows_the_talk_plugin_reads() {
    let Some((server, cfg, store)) = ips_table_store("talk_rows") else {
        return;
    };
    let set = range_set("192.168.200.0/24");
    let a = AttachmentKey::new("ipam-status", "cnitool-aaaa", "eth0");
    let got = store
        .claim(&a, &owner(), &[Claim::Dynamic(&set)], &ctx())
        .await
        .unwrap();
    assert_eq!(got[0].ip, ip("192.168.200.1"));
    assert_eq!(got[0].range_set, "192.168.200.0/24");
    // Idempotent: the same ADD returns the same row.
    let again = store
        .claim(&a, &owner(), &[Claim::Dynamic(&set)], &ctx())
        .await
        .unwrap();
    assert_eq!(again, got);
    let b = AttachmentKey::new("ipam-status", "cnitool-bbbb", "eth0");
    let stat = [Claim::Static {
        set: &set,
        ip: ip("192.168.200.22"),
    }];
    store.claim(&b, &owner(), &stat, &ctx()).await.unwrap();
    assert_eq!(
        ips_rows(&server, &cfg.dbname),
        [
            "cnitool-aaaa eth0 192.168.200.1/24",
            "cnitool-bbbb eth0 192.168.200.22/24"
        ]
    );
    // Rows the talk's plugin wrote are read, honoured and never handed out twice.
    server.superuser_sql(
        &cfg.dbname,
        "INSERT INTO ips (pod_id, interface, ip) VALUES ('cnitool-cccc', 'eth0', '192.168.200.2/24')",
    );
    let c = AttachmentKey::new("ipam-status", "plexus-d", "eth0");
    let got = store
        .claim(&c, &owner(), &[Claim::Dynamic(&set)], &ctx())
        .await
        .unwrap();
    assert_eq!(got[0].ip, ip("192.168.200.3"), "skips the talk plugin's .2");
    let holder = store
        .holder("ipam-status", ip("192.168.200.2"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(holder.container_id, "cnitool-cccc");
    assert_eq!(store.list("ipam-status").await.unwrap().len(), 4);
    let count = store
        .count_between("ipam-status", ip("192.168.200.0"), ip("192.168.200.255"))
        .await;
    assert_eq!(count.unwrap(), 4);
    // The address index refuses another spelling of a held address.
    let dup = std::process::Command::new(server.bin.join("psql"))
        .args(["-X", "-h", &server.host, "-p", &server.port.to_string()])
        .args(["-U", "postgres", "-d", &cfg.dbname, "-c"])
        .arg("INSERT INTO ips (pod_id, interface, ip) VALUES ('x', 'eth0', '192.168.200.2/32')")
        .output()
        .unwrap();
    assert!(
        !dup.status.success(),
        "a second spelling of .2 was accepted"
    );
    // A node's GC never touches rows the talk's own plugin wrote (no plexus_node).
    let valid = vec![("cnitool-aaaa".to_string(), "eth0".to_string())];
    let mine = crate::GcScope::node(crate::conformance::NODE);
    let report = store
        .gc("ipam-status", &valid, &mine, &BlockPolicy::default(), 0)
        .await
        .unwrap();
    let released: Vec<&str> = report
        .released
        .iter()
        .map(|a| a.container_id.as_str())
        .collect();
    assert_eq!(released, ["plexus-d", "cnitool-bbbb"], "{report:?}");
    // GC as in the talk's demo, by an operator's explicit choice of every node:
    // everything not valid goes, only from this table.
    let report = store
        .gc(
            "ipam-status",
            &valid,
            &crate::GcScope::all_nodes(),
            &BlockPolicy::default(),
            0,
        )
        .await
        .unwrap();
    assert_eq!(
        report.released.len(),
        1,
        "the talk plugin's row: {report:?}"
    );
    assert_eq!(report.released[0].container_id, "cnitool-cccc");
    assert_eq!(
        ips_rows(&server, &cfg.dbname),
        ["cnitool-aaaa eth0 192.168.200.1/24"]
    );
    assert_eq!(store.release(&a).await.unwrap().len(), 1);
    assert!(ips_rows(&server, &cfg.dbname).is_empty());
    store.probe().await.unwrap();
}

/// A table prepared by an older plexus (no `plexus_node` column) gets the column on the
/// next open, and its rows read as "node unknown": no node's GC collects them.
#[tokio::test]
async fn ips_table_layout_adds_the_node_column_to_an_older_table() {
    let Some((server, cfg, store)) = ips_table_store("talk_node_migration") else {
        return;
    };
    let set = range_set("192.168.210.0/24");
    let old = AttachmentKey::new("ipam-status", "old-row", "eth0");
    store
        .claim(&old, &owner(), &[Claim::Dynamic(&set)], &ctx())
        .await
        .unwrap();
    drop(store);
    // As an older plexus left it: no node column.
    server.superuser_sql(&cfg.dbname, "ALTER TABLE ips DROP COLUMN plexus_node");
    let store = PostgresStore::open(&cfg).unwrap();
    let held = store.attachment(&old).await.unwrap();
    assert_eq!(held.len(), 1);
    assert_eq!(
        held[0].node, None,
        "a row from before the column has no node"
    );
    let report = store
        .gc(
            "ipam-status",
            &[],
            &crate::GcScope::node("node-a"),
            &BlockPolicy::default(),
            0,
        )
        .await
        .unwrap();
    assert!(report.released.is_empty(), "{report:?}");
    let new = AttachmentKey::new("ipam-status", "new-row", "eth0");
    let got = store
        .claim(&new, &owner(), &[Claim::Dynamic(&set)], &ctx())
        .await
        .unwrap();
    assert_eq!(got[0].node.as_deref(), Some("node-a"));
}

#[tokio::test]
async fn ips_table_layout_says_what_the_table_cannot_hold() {
    let Some((_server, _cfg, store)) = ips_table_store("talk_limits") else {
        return;
    };
    let (v4, v6) = (range_set("10.80.0.0/24"), range_set("fd00:80::/120"));
    let a = AttachmentKey::new("net-a", "c1", "eth0");
    store
        .claim(&a, &owner(), &[Claim::Dynamic(&v4)], &ctx())
        .await
        .unwrap();
    // A second interface of the same container.
    let eth1 = AttachmentKey::new("net-a", "c1", "eth1");
    let err = store
        .claim(&eth1, &owner(), &[Claim::Dynamic(&v4)], &ctx())
        .await
        .unwrap_err();
    assert!(config_reason(err).contains("one address per container"));
    // Dual-stack in one ADD.
    let dual = AttachmentKey::new("net-a", "c2", "eth0");
    let both = [Claim::Dynamic(&v4), Claim::Dynamic(&v6)];
    let err = store
        .claim(&dual, &owner(), &both, &ctx())
        .await
        .unwrap_err();
    assert!(config_reason(err).contains("one address per container"));
    // A second network.
    let other = AttachmentKey::new("net-b", "c3", "eth0");
    let err = store
        .claim(&other, &owner(), &[Claim::Dynamic(&v4)], &ctx())
        .await
        .unwrap_err();
    let reason = config_reason(err);
    assert!(
        reason.contains("ONE network") && reason.contains("net-a"),
        "{reason}"
    );
    assert!(store.list("net-b").await.is_err(), "reads of net-b refused");
    // A container id longer than the table's column.
    let long = AttachmentKey::new("net-a", "x".repeat(65), "eth0");
    let err = store
        .claim(&long, &owner(), &[Claim::Dynamic(&v4)], &ctx())
        .await
        .unwrap_err();
    assert!(config_reason(err).contains("at most 64"));
    // Nothing of the refused claims was written.
    assert_eq!(store.list("net-a").await.unwrap().len(), 1);
}

#[tokio::test]
async fn ips_table_layout_reports_an_unparsable_row_as_corrupt() {
    let Some((server, cfg, store)) = ips_table_store("talk_corrupt") else {
        return;
    };
    // The talk's own table, made by its plugin before plexus ever ran, with a bad value:
    // plexus cannot add its address index and says why.
    server.superuser_sql(
        &cfg.dbname,
        &format!(
            "SET ROLE {}; CREATE TABLE ips (id serial PRIMARY KEY, pod_id VARCHAR(64) UNIQUE \
             NOT NULL, interface VARCHAR(16) NOT NULL, ip VARCHAR(128) UNIQUE NOT NULL, \
             created_on TIMESTAMP DEFAULT now()); \
             INSERT INTO ips (pod_id, interface, ip) VALUES ('p', 'eth0', 'not-an-ip');",
            cfg.user
        ),
    );
    let err = store.probe().await.unwrap_err();
    assert!(matches!(err, StoreError::Unavailable { .. }), "{err:?}");
    assert!(err.to_string().contains("plexus_ips_addr"), "{err}");
}

/// A node's batch of claims commits as ONE transaction (its rows carry one inserting
/// transaction id, `xmin`), unless a claim of it fails on its own: then each runs alone,
/// the others still succeed and the failed one keeps nothing.
#[tokio::test]
async fn a_node_batch_of_claims_is_one_transaction_unless_one_fails() {
    let test = "postgres_batch_one_transaction";
    let Some(server) = PgServer::shared(test) else {
        return;
    };
    let cfg = server.fresh_database("batch_one_transaction");
    let store = PostgresStore::pooled(&cfg, 2).unwrap();
    let set = range_set("10.62.0.0/24");
    let ctx = ClaimContext::new("node-1", BlockPolicy::default());
    let who = Owner::default();
    let dynamic = [Claim::Dynamic(&set)];
    let keys: Vec<AttachmentKey> = ["c1", "c2", "c3", "c4", "bad", "c5"]
        .iter()
        .map(|c| AttachmentKey::new("batch", *c, "eth0"))
        .collect();
    let request = |key| ClaimRequest {
        key,
        owner: &who,
        claims: &dynamic,
        ctx: &ctx,
    };
    let transactions = |containers: &str| {
        server
            .superuser_query(
                &cfg.dbname,
                &format!(
                    "SELECT count(DISTINCT xmin::text) FROM plexus_allocations \
                     WHERE container_id IN ({containers})"
                ),
            )
            .trim()
            .to_string()
    };

    let answers = store
        .claim_batch(&[request(&keys[0]), request(&keys[1]), request(&keys[2])])
        .await;
    let ips: Vec<IpAddr> = answers.iter().map(|a| a.as_ref().unwrap()[0].ip).collect();
    assert_eq!(ips.len(), 3);
    assert!(
        ips[0] != ips[1] && ips[1] != ips[2] && ips[0] != ips[2],
        "{ips:?}"
    );
    assert_eq!(transactions("'c1','c2','c3'"), "1");

    // A static claim of an address c1 holds fails; the two around it still commit.
    let taken = [Claim::Static {
        set: &set,
        ip: ips[0],
    }];
    let answers = store
        .claim_batch(&[
            request(&keys[3]),
            ClaimRequest {
                claims: &taken,
                ..request(&keys[4])
            },
            request(&keys[5]),
        ])
        .await;
    assert!(answers[0].is_ok() && answers[2].is_ok(), "{answers:?}");
    assert!(
        matches!(answers[1], Err(StoreError::AddressTaken { .. })),
        "{:?}",
        answers[1]
    );
    assert_eq!(transactions("'c4','c5'"), "2");
    assert!(store.attachment(&keys[4]).await.unwrap().is_empty());
    assert_eq!(store.list("batch").await.unwrap().len(), 5);
}
