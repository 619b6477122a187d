//! The etcd backend against the shared server of `scripts/with-servers` (each test on its
//! own key prefix): concurrent writers in many tasks and many processes, the layout-version
//! key, awkward names, and the cost of one plugin call. Without a server these tests print
//! `SKIPPED` and pass, unless `PLEXUS_REQUIRE_SERVERS=1`.

#[path = "support/etcd.rs"]
mod etcd_support;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use etcd_client::{Client, GetOptions};
use etcd_support::config;
use plexus_ipam_core::range::{Range, RangeSet};
use plexus_store::{
    AttachmentKey, BlockPolicy, Claim, ClaimContext, ETCD_LAYOUT_VERSION, EtcdConfig, EtcdStore,
    Owner, Store, StoreError,
};
use plexus_test_support::servers::etcd::shared_endpoints;

fn range_set(cidr: &str) -> RangeSet {
    let range = Range::new(cidr.parse().unwrap(), None, None, None, Vec::new()).unwrap();
    RangeSet::new(vec![range]).unwrap()
}

fn ctx() -> ClaimContext {
    ClaimContext::new("node-a", BlockPolicy::default())
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

async fn raw_client(cfg: &EtcdConfig) -> Client {
    Client::connect(&cfg.endpoints, None).await.unwrap()
}

async fn raw_get(client: &mut Client, key: &str) -> Option<String> {
    let response = client.get(key, None).await.unwrap();
    response
        .kvs()
        .first()
        .map(|kv| String::from_utf8_lossy(kv.value()).into_owned())
}

async fn raw_keys(client: &mut Client, prefix: &str) -> Vec<String> {
    let options = GetOptions::new().with_prefix().with_keys_only();
    let response = client
        .get(format!("{prefix}/"), Some(options))
        .await
        .unwrap();
    response
        .kvs()
        .iter()
        .map(|kv| String::from_utf8_lossy(kv.key()).into_owned())
        .collect()
}

/// Who holds each address right now, as the writers observed it. An address enters after
/// its claim returned and leaves before its release starts, so a second holder showing up
/// is a real double allocation.
type Ledger = Mutex<HashMap<IpAddr, AttachmentKey>>;

/// Claims and releases at random on one small pool; returns what it still holds.
async fn churn(
    store: &dyn Store,
    network: &str,
    writer: usize,
    ops: usize,
    ledger: &Ledger,
) -> Vec<(AttachmentKey, Vec<IpAddr>)> {
    let (v4, v6) = (range_set("10.30.0.0/26"), range_set("fd00:30::/122"));
    let mut seed = 0x5eed_u64 + writer as u64;
    let mut next = move |n: u64| {
        seed = seed
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (seed >> 33) % n
    };
    let mut live: Vec<(AttachmentKey, Vec<IpAddr>)> = Vec::new();
    for op in 0..ops {
        if live.is_empty() || (live.len() < 4 && next(2) == 0) {
            let key = AttachmentKey::new(network, format!("w{writer}-op{op}"), "eth1");
            let claims: Vec<Claim<'_>> = if next(3) == 0 {
                vec![Claim::Dynamic(&v4), Claim::Dynamic(&v6)]
            } else {
                vec![Claim::Dynamic(&v4)]
            };
            let got = store
                .claim(&key, &Owner::default(), &claims, &ctx())
                .await
                .unwrap_or_else(|e| panic!("writer {writer} claim: {e}"));
            let ips: Vec<IpAddr> = got.iter().map(|a| a.ip).collect();
            let mut held = ledger.lock().unwrap();
            for ip in &ips {
                if let Some(other) = held.insert(*ip, key.clone()) {
                    panic!("{ip} handed to {key:?} while {other:?} still holds it");
                }
            }
            drop(held);
            live.push((key, ips));
        } else {
            let (key, ips) = live.remove(usize::try_from(next(live.len() as u64)).unwrap());
            {
                let mut held = ledger.lock().unwrap();
                for ip in &ips {
                    held.remove(ip);
                }
            }
            let released = store.release(&key).await.unwrap();
            let mut released: Vec<IpAddr> = released.iter().map(|a| a.ip).collect();
            released.sort();
            let mut expected = ips.clone();
            expected.sort();
            assert_eq!(released, expected, "release returns what the claim gave");
        }
    }
    live
}

/// The store holds exactly `live`, one attachment per address.
async fn assert_holds_exactly(
    store: &dyn Store,
    network: &str,
    live: &[(AttachmentKey, Vec<IpAddr>)],
) {
    let listed = store.list(network).await.unwrap();
    let mut expected: BTreeMap<IpAddr, AttachmentKey> = BTreeMap::new();
    for (key, ips) in live {
        for ip in ips {
            assert!(
                expected.insert(*ip, key.clone()).is_none(),
                "{ip} believed held twice"
            );
        }
    }
    let actual: BTreeMap<IpAddr, AttachmentKey> = listed.iter().map(|a| (a.ip, a.key())).collect();
    assert_eq!(actual.len(), listed.len(), "list names an address twice");
    assert_eq!(
        actual, expected,
        "the store holds exactly what the writers hold"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_tasks_never_share_an_address() {
    let Some(endpoints) = shared_endpoints("many_tasks_never_share_an_address") else {
        return;
    };
    let cfg = config(&endpoints, "tasks");
    let ledger = Arc::new(Ledger::default());
    let mut tasks = Vec::new();
    for writer in 0..6 {
        let (cfg, ledger) = (cfg.clone(), ledger.clone());
        tasks.push(tokio::spawn(async move {
            // A store per writer, as separate plugin processes would have.
            let store = EtcdStore::open(&cfg).unwrap();
            churn(&store, "busy-net", writer, 40, &ledger).await
        }));
    }
    let mut live = Vec::new();
    for task in tasks {
        live.extend(task.await.unwrap());
    }
    let store = EtcdStore::open(&cfg).unwrap();
    assert_holds_exactly(&store, "busy-net", &live).await;
}

/// Environment of a worker process of `many_processes_never_share_an_address`.
const WORKER_VAR: &str = "PLEXUS_ETCD_TEST_WORKER";

#[test]
fn many_processes_never_share_an_address() {
    let Some(endpoints) = shared_endpoints("many_processes_never_share_an_address") else {
        return;
    };
    let cfg = config(&endpoints, "processes");
    let dir = tempfile::tempdir().unwrap();
    let exe = std::env::current_exe().unwrap();
    let children: Vec<_> = (0..4)
        .map(|writer| {
            let out = dir.path().join(format!("worker-{writer}.json"));
            let child = std::process::Command::new(&exe)
                .args(["--ignored", "--exact", "worker_process", "--test-threads=1"])
                .env(
                    WORKER_VAR,
                    format!("{writer}|{}|{}", cfg.prefix, out.display()),
                )
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap();
            (child, out)
        })
        .collect();
    let mut live: Vec<(AttachmentKey, Vec<IpAddr>)> = Vec::new();
    for (child, out) in children {
        let output = child.wait_with_output().unwrap();
        assert!(
            output.status.success(),
            "a worker process failed: {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        let text = std::fs::read_to_string(&out).unwrap();
        live.extend(serde_json::from_str::<Vec<(AttachmentKey, Vec<IpAddr>)>>(&text).unwrap());
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let store = EtcdStore::open(&cfg).unwrap();
    rt.block_on(assert_holds_exactly(&store, "proc-net", &live));
}

/// One writer of `many_processes_never_share_an_address`, run in a child process.
#[test]
#[ignore = "run as a child process by many_processes_never_share_an_address"]
fn worker_process() {
    let spec = std::env::var(WORKER_VAR).expect("run by many_processes_never_share_an_address");
    let mut parts = spec.splitn(3, '|');
    let (writer, prefix, out) = (
        parts.next().unwrap().parse::<usize>().unwrap(),
        parts.next().unwrap().to_string(),
        parts.next().unwrap().to_string(),
    );
    let endpoints = shared_endpoints("worker_process").expect("the parent checked");
    let mut cfg = EtcdConfig::new(endpoints);
    cfg.prefix = prefix;
    // Like the plugin: a bare current-thread runtime, the store brings its own I/O thread.
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let ledger = Ledger::default();
    let live = rt.block_on(async {
        let store = EtcdStore::open(&cfg).unwrap();
        churn(&store, "proc-net", writer, 40, &ledger).await
    });
    std::fs::write(out, serde_json::to_string(&live).unwrap()).unwrap();
}

#[tokio::test]
async fn layout_key_is_created_on_first_use() {
    let Some(endpoints) = shared_endpoints("layout_key_is_created_on_first_use") else {
        return;
    };
    let cfg = config(&endpoints, "layout-new");
    let mut raw = raw_client(&cfg).await;
    let layout_key = format!("{}/layout", cfg.prefix);
    assert_eq!(raw_get(&mut raw, &layout_key).await, None);
    let store = EtcdStore::open(&cfg).unwrap();
    store.probe().await.unwrap();
    let expected = ETCD_LAYOUT_VERSION.to_string();
    assert_eq!(raw_get(&mut raw, &layout_key).await, Some(expected));
}

#[tokio::test]
async fn older_layout_is_migrated_in_place() {
    let Some(endpoints) = shared_endpoints("older_layout_is_migrated_in_place") else {
        return;
    };
    let cfg = config(&endpoints, "layout-v1");
    let p = &cfg.prefix;
    let mut raw = raw_client(&cfg).await;
    // A layout-1 store: allocations carry no node, no block keys exist.
    let v1_allocation = serde_json::json!({
        "network": "old-net", "container_id": "c-old", "ifname": "eth0", "ip": "10.40.0.1",
        "range_set": range_set("10.40.0.0/29").id(),
        "owner": {"pod_namespace": null, "pod_name": "old", "pod_uid": null},
        "created_at": 1_600_000_000
    });
    raw.put(format!("{p}/layout"), "1", None).await.unwrap();
    let alloc_key = format!("{p}/alloc/old-net/00000000000000000000ffff0a280001");
    raw.put(alloc_key, v1_allocation.to_string(), None)
        .await
        .unwrap();
    let index_key = format!(
        "{p}/attach/old-net/c-old/eth0/{}",
        range_set("10.40.0.0/29")
            .id()
            .replace('/', "%2F")
            .replace('[', "%5B")
            .replace(']', "%5D")
    );
    raw.put(index_key, "10.40.0.1", None).await.unwrap();
    raw.put(format!("{p}/cursor/old-net/x"), "10.40.0.1", None)
        .await
        .unwrap();

    let store = EtcdStore::open(&cfg).unwrap();
    let listed = store.list("old-net").await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].ip, ip("10.40.0.1"));
    assert_eq!(listed[0].node, None, "layout-1 allocations have no node");
    let layout = raw_get(&mut raw, &format!("{p}/layout")).await;
    assert_eq!(layout, Some(ETCD_LAYOUT_VERSION.to_string()));
    // The old attachment is found through its index; new claims skip its address.
    let old = AttachmentKey::new("old-net", "c-old", "eth0");
    assert_eq!(store.attachment(&old).await.unwrap(), listed);
    let set = range_set("10.40.0.0/29");
    let new = AttachmentKey::new("old-net", "c-new", "eth0");
    let got = store
        .claim(&new, &Owner::default(), &[Claim::Dynamic(&set)], &ctx())
        .await
        .unwrap();
    assert_eq!(got[0].ip, ip("10.40.0.2"));
    assert_eq!(store.release(&old).await.unwrap(), listed);
}

#[tokio::test]
async fn newer_or_foreign_layouts_are_refused_untouched() {
    let Some(endpoints) = shared_endpoints("newer_or_foreign_layouts_are_refused_untouched") else {
        return;
    };
    let set = range_set("10.41.0.0/29");
    let key = AttachmentKey::new("n", "c", "eth0");
    for (case, setup) in [
        ("newer", Some("99")),
        ("garbage", Some("v2")),
        ("foreign", None),
    ] {
        let cfg = config(&endpoints, &format!("layout-{case}"));
        let mut raw = raw_client(&cfg).await;
        match setup {
            Some(version) => {
                raw.put(format!("{}/layout", cfg.prefix), version, None)
                    .await
            }
            None => {
                raw.put(format!("{}/someone-else", cfg.prefix), "x", None)
                    .await
            }
        }
        .unwrap();
        let before = raw_keys(&mut raw, &cfg.prefix).await;
        let store = EtcdStore::open(&cfg).unwrap();
        let err = store
            .claim(&key, &Owner::default(), &[Claim::Dynamic(&set)], &ctx())
            .await
            .unwrap_err();
        let StoreError::Corrupt { reason } = &err else {
            panic!("{case}: {err:?}")
        };
        if case == "newer" {
            assert!(
                reason.contains("99") && reason.contains("newer"),
                "{reason}"
            );
        }
        assert!(matches!(
            store.probe().await,
            Err(StoreError::Corrupt { .. })
        ));
        assert_eq!(
            raw_keys(&mut raw, &cfg.prefix).await,
            before,
            "{case}: nothing written"
        );
    }
}

#[tokio::test]
async fn names_that_look_like_paths_stay_apart() {
    let Some(endpoints) = shared_endpoints("names_that_look_like_paths_stay_apart") else {
        return;
    };
    let cfg = config(&endpoints, "names");
    let store = EtcdStore::open(&cfg).unwrap();
    let set = range_set("10.42.0.0/29");
    let tricky = [
        AttachmentKey::new("a/b", "c", "eth0"),
        AttachmentKey::new("a", "b/c", "eth0"),
        AttachmentKey::new("a", "b", "c/eth0"),
        AttachmentKey::new("a", "../..", "%2F"),
        AttachmentKey::new("a", "b", "c"),
        AttachmentKey::new("a%2Fb", "c", "eth0"),
        AttachmentKey::new("ä\n\0", "c", "eth0"),
    ];
    for key in &tricky {
        store
            .claim(key, &Owner::default(), &[Claim::Dynamic(&set)], &ctx())
            .await
            .unwrap_or_else(|e| panic!("{key:?}: {e}"));
    }
    for key in &tricky {
        let held = store.attachment(key).await.unwrap();
        assert_eq!(held.len(), 1, "{key:?}");
        assert_eq!(held[0].key(), *key);
    }
    let networks: BTreeSet<&str> = tricky.iter().map(|k| k.network.as_str()).collect();
    for network in networks {
        let listed = store.list(network).await.unwrap();
        let expected = tricky.iter().filter(|k| k.network == network).count();
        assert_eq!(listed.len(), expected, "network {network:?}");
        assert!(listed.iter().all(|a| a.network == network));
    }
    // GC of "a" with nothing valid releases exactly the four attachments of "a".
    let report = store
        .gc(
            "a",
            &[],
            &plexus_store::GcScope::all_nodes(),
            &BlockPolicy::default(),
            0,
        )
        .await
        .unwrap();
    assert_eq!(report.released.len(), 4, "{report:?}");
    assert_eq!(store.list("a/b").await.unwrap().len(), 1);
    assert_eq!(store.list("a%2Fb").await.unwrap().len(), 1);
    let mut raw = raw_client(&cfg).await;
    for key in raw_keys(&mut raw, &cfg.prefix).await {
        let rest = key.strip_prefix(&format!("{}/", cfg.prefix)).unwrap();
        assert!(
            rest.bytes().all(|b| b.is_ascii_graphic()),
            "every key is printable ASCII: {key:?}"
        );
    }
}

/// Not an assertion: prints what one plugin call costs on loopback (a fresh store, i.e.
/// a new connection, plus one claim), for `docs/stores.md`.
#[test]
fn claim_cost_on_loopback() {
    let Some(endpoints) = shared_endpoints("claim_cost_on_loopback") else {
        return;
    };
    let cfg = config(&endpoints, "cost");
    let set = range_set("10.43.0.0/20");
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    // First call creates the layout key: not representative.
    rt.block_on(EtcdStore::open(&cfg).unwrap().probe()).unwrap();
    let mut samples: Vec<Duration> = (0..60)
        .map(|i| {
            let key = AttachmentKey::new("cost-net", format!("c{i}"), "eth0");
            let started = Instant::now();
            let store = EtcdStore::open(&cfg).unwrap();
            rt.block_on(store.claim(&key, &Owner::default(), &[Claim::Dynamic(&set)], &ctx()))
                .unwrap();
            drop(store);
            started.elapsed()
        })
        .collect();
    report("open + connect + claim (one plugin call)", &mut samples);
    // The same claims on one warm connection: the transaction alone.
    let store = EtcdStore::open(&cfg).unwrap();
    let mut warm: Vec<Duration> = (0..60)
        .map(|i| {
            let key = AttachmentKey::new("cost-net", format!("warm{i}"), "eth0");
            let started = Instant::now();
            rt.block_on(store.claim(&key, &Owner::default(), &[Claim::Dynamic(&set)], &ctx()))
                .unwrap();
            started.elapsed()
        })
        .collect();
    report("claim on a warm connection", &mut warm);
}

fn report(what: &str, samples: &mut [Duration]) {
    samples.sort();
    let at = |q: usize| samples[(samples.len() - 1) * q / 100];
    eprintln!(
        "etcd on loopback, {what}: median {:?}, p90 {:?}, max {:?}",
        at(50),
        at(90),
        at(100)
    );
}
