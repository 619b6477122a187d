//! Store-level findings of `docs/security.md`: names full of SQL metacharacters are data in
//! every backend (SQL only through bound parameters; etcd keys escaped), and the parsing
//! defaults that keep TLS on. PostgreSQL and etcd parts print `SKIPPED` without servers.

#[path = "support/etcd.rs"]
mod etcd_support;
#[path = "support/postgres.rs"]
mod pg_support;

use std::collections::BTreeSet;

use pg_support::ServerConfig;
use plexus_ipam_core::range::{Range, RangeSet};
use plexus_store::{
    AttachmentKey, BlockPolicy, Claim, ClaimContext, EtcdStore, Owner, PostgresStore, PutMode,
    SqliteConfig, SqliteStore, SslMode, Store, StoreConfig,
};
use plexus_test_support::servers::etcd::shared_endpoints;
use plexus_test_support::servers::postgres::PgServer;
use serde_json::json;

/// Names an injectable query would mangle: quotes, statement separators, comments, LIKE
/// wildcards, backslashes, a NUL-free binary-looking name, and a classic payload.
const HOSTILE: &[&str] = &[
    "o'brien",
    "x'; DROP TABLE plexus_allocations; --",
    "a\"b",
    "semi;colon",
    "dash--comment",
    "/* c */",
    "100%_like",
    "back\\slash",
    "' OR '1'='1",
    "$1",
    "%00",
];

fn range_set(cidr: &str) -> RangeSet {
    let range = Range::new(cidr.parse().unwrap(), None, None, None, Vec::new()).unwrap();
    RangeSet::new(vec![range]).unwrap()
}

/// Claims one address per hostile (network, container, ifname, pod) combination, stores a
/// network definition under each hostile name, reads everything back byte for byte, and
/// releases it again.
async fn hostile_names_round_trip(store: &dyn Store, label: &str) {
    let set = range_set("10.77.0.0/24");
    let ctx = ClaimContext::new("node'; --", BlockPolicy::default());
    let mut seen = BTreeSet::new();
    for (i, name) in HOSTILE.iter().enumerate() {
        let network = format!("net-{name}");
        let key = AttachmentKey::new(network.as_str(), *name, format!("if{i}"));
        let owner = Owner {
            pod_namespace: Some((*name).to_string()),
            pod_name: Some(format!("pod {name}")),
            pod_uid: Some((*name).to_string()),
            ..Owner::default()
        };
        let got = store
            .claim(&key, &owner, &[Claim::Dynamic(&set)], &ctx)
            .await
            .unwrap_or_else(|e| panic!("{label}: claim for {name:?}: {e}"));
        assert_eq!(got.len(), 1, "{label} {name:?}");
        assert!(
            seen.insert((network.clone(), got[0].ip)),
            "{label}: duplicate"
        );
        let listed = store.list(&network).await.unwrap();
        assert_eq!(listed.len(), 1, "{label}: {network:?} holds {listed:?}");
        assert_eq!(listed[0].network, network, "{label}");
        assert_eq!(listed[0].container_id, *name, "{label}");
        assert_eq!(
            listed[0].owner.pod_namespace.as_deref(),
            Some(*name),
            "{label}"
        );
        assert_eq!(
            listed[0].owner.pod_name.as_deref(),
            Some(format!("pod {name}").as_str()),
            "{label}"
        );
        let definition = json!({"name": name, "note": format!("{name} stays text")});
        store
            .put_network(name, &definition, PutMode::Create)
            .await
            .unwrap_or_else(|e| panic!("{label}: put_network {name:?}: {e}"));
        let record = store.network(name).await.unwrap().expect("stored network");
        assert_eq!(record.definition, definition, "{label}");
    }
    // Every row is still there: no payload dropped or matched more than its own row.
    let networks = store.networks().await.unwrap();
    assert_eq!(networks.len(), HOSTILE.len(), "{label}: {networks:?}");
    for (i, name) in HOSTILE.iter().enumerate() {
        let network = format!("net-{name}");
        let key = AttachmentKey::new(network.as_str(), *name, format!("if{i}"));
        assert_eq!(store.attachment(&key).await.unwrap().len(), 1, "{label}");
        // A LIKE-style wildcard name must not match its neighbours.
        assert!(
            store
                .list(&format!("net-{name}%"))
                .await
                .unwrap()
                .is_empty(),
            "{label}"
        );
        assert_eq!(store.release(&key).await.unwrap().len(), 1, "{label}");
        assert!(store.list(&network).await.unwrap().is_empty(), "{label}");
    }
    store.probe().await.unwrap();
}

#[tokio::test]
async fn sqlite_stores_hostile_names_as_data() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&SqliteConfig::new(dir.path().join("p.db"))).unwrap();
    hostile_names_round_trip(&store, "sqlite").await;
}

#[tokio::test]
async fn postgres_stores_hostile_names_as_data() {
    let Some(server) = PgServer::shared("postgres_hostile_names") else {
        return;
    };
    let store = PostgresStore::open(&server.fresh_database("hostile")).unwrap();
    hostile_names_round_trip(&store, "postgres").await;
}

#[tokio::test]
async fn etcd_stores_hostile_names_as_data() {
    let Some(endpoints) = shared_endpoints("etcd_hostile_names") else {
        return;
    };
    let store = EtcdStore::open(&etcd_support::config(&endpoints, "hostile")).unwrap();
    hostile_names_round_trip(&store, "etcd").await;
}

#[test]
fn no_query_is_built_by_formatting_values() {
    // Every SQL text in the two SQL backends: a `format!` that builds SQL may only splice
    // table names chosen by the code (the layout), never a value.
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/src");
    let mut offenders = Vec::new();
    let mut files = Vec::new();
    let mut dirs: Vec<std::path::PathBuf> = ["postgres", "sqlite", "engine"]
        .iter()
        .map(|dir| format!("{root}/{dir}").into())
        .collect();
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else {
                files.push(path);
            }
        }
    }
    assert!(
        files.iter().any(|f| f.ends_with("ips_table/rows.rs")),
        "the layouts' subfolders are read too"
    );
    for path in files {
        let text = std::fs::read_to_string(&path).unwrap();
        for (n, line) in text.lines().enumerate() {
            let sql_start = ["\"SELECT", "\"INSERT", "\"UPDATE", "\"DELETE", "\"WITH"]
                .iter()
                .any(|kw| line.contains(kw));
            let quoted_value = line.contains("'{") || line.contains("= {}");
            if sql_start && line.contains("format!") && quoted_value {
                offenders.push(format!("{}:{}: {line}", path.display(), n + 1));
            }
            // A value interpolated between SQL quotes.
            if line.contains("'{}'") || (line.contains("'{") && line.contains("}'")) {
                offenders.push(format!("{}:{}: {line}", path.display(), n + 1));
            }
        }
    }
    assert!(offenders.is_empty(), "{offenders:#?}");
}

#[test]
fn tls_defaults_verify_the_server() {
    // PostgreSQL: no sslmode means verify-full.
    let StoreConfig::Postgres(pg) =
        StoreConfig::from_json(Some(&json!({"type": "postgres", "host": "db"}))).unwrap()
    else {
        panic!("postgres expected");
    };
    assert_eq!(pg.sslmode, SslMode::VerifyFull);
    // etcd: https:// needs the CA file; there is no key that turns verification off.
    let err = StoreConfig::from_json(Some(
        &json!({"type": "etcd", "endpoints": ["https://10.0.0.1:2379"]}),
    ))
    .unwrap_err();
    assert!(err.to_string().contains("ca_file"), "{err}");
    for knob in [
        "insecure",
        "insecure_skip_verify",
        "skip_verify",
        "tls_skip_verify",
    ] {
        let mut cfg = json!({"type": "etcd", "endpoints": ["https://10.0.0.1:2379"],
                             "ca_file": "/etc/plexus/ca.pem"});
        cfg[knob] = json!(true);
        let err = StoreConfig::from_json(Some(&cfg)).unwrap_err();
        assert!(err.to_string().contains(knob), "{knob}: {err}");
        let mut pg = json!({"type": "postgres", "host": "db"});
        pg[knob] = json!(true);
        let err = StoreConfig::from_json(Some(&pg)).unwrap_err();
        assert!(err.to_string().contains(knob), "{knob}: {err}");
    }
}
