//! Multi-node simulation: 8 "nodes" (plugin processes with different NODE_NAMEs) × 4
//! concurrent callers each, churning ADD/DEL through the real binary on a pool sized exactly
//! to the peak number of live attachments, against each backend: SQLite, and the shared
//! PostgreSQL and etcd started by `scripts/with-servers`, the latter two also through one
//! node agent (`plexusd node`) per node, as they are deployed. In the middle of the churn
//! every node's runtime sends CNI GC with the attachments IT knows (exclusively on its own
//! node, as the CNI spec has runtimes do, while the other nodes keep churning): a GC that
//! reached beyond its node would free live addresses and the next ADDs would duplicate
//! them. Zero duplicates, zero failures (the pool never runs out unless an address leaks),
//! store == live set at the end.

mod common;

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use common::agent::AgentProcess;
use common::{Reply, exec, plugin_binary};
use plexus_test_support::servers::skip;
use serde_json::{Value, json};
use tempfile::TempDir;

const NODES: usize = 8;
const CALLERS_PER_NODE: usize = 4;
const LIVE_PER_CALLER: usize = 4;
const OPS_PER_CALLER: usize = 40;
/// Exactly the peak number of live attachments: 8 × 4 × 4.
const POOL: u32 = (NODES * CALLERS_PER_NODE * LIVE_PER_CALLER) as u32;
/// At most this many GC rounds (one GC per node each) during the churn.
const GC_ROUNDS: usize = 4;

/// The `store` object for `backend`, or None (after printing why) when its server is absent.
fn store_for(backend: &str, dir: &TempDir) -> Option<Value> {
    let env = |k: &str| std::env::var(k).ok();
    let store = match backend {
        // Generous deadlines: 32 callers on two loaded cores queue; this test is about
        // duplicates and leaks, not latency (scripts/bench-multinode measures that).
        "sqlite" => Some(
            json!({"type": "sqlite", "path": dir.path().join("mn.db"), "busy_timeout_ms": 60000}),
        ),
        "postgres" => (|| {
            Some(
                json!({"type": "postgres", "host": env("PLEXUS_TEST_PG_HOST")?,
                "port": env("PLEXUS_TEST_PG_PORT")?.parse::<u16>().ok()?,
                "dbname": env("PLEXUS_TEST_PG_DB")?, "user": env("PLEXUS_TEST_PG_USER")?,
                "password_file": env("PLEXUS_TEST_PG_PASSWORD_FILE")?, "sslmode": "disable", "timeout_ms": 60000}),
            )
        })(),
        "etcd" => env("PLEXUS_TEST_ETCD_ENDPOINTS").map(|e| {
            json!({"type": "etcd", "endpoints": [e], "timeout_ms": 60000,
                   "prefix": format!("/plexus-test/multinode-{}", std::process::id())})
        }),
        other => panic!("unknown backend {other}"),
    };
    store.or_else(|| {
        skip(
            &format!("multinode on {backend}"),
            "no server (run under scripts/with-servers)",
        )
    })
}

fn call(command: &str, node: usize, container: &str, conf: &Value) -> Reply {
    let node_name = format!("node-{node}");
    let env = [
        ("CNI_COMMAND", command),
        ("CNI_CONTAINERID", container),
        ("CNI_NETNS", "/run/netns/sim"),
        ("CNI_IFNAME", "net1"),
        ("CNI_PATH", "/usr/lib/cni"),
        (
            "CNI_ARGS",
            "IgnoreUnknown=1;K8S_POD_NAMESPACE=sim;K8S_POD_NAME=p",
        ),
        ("NODE_NAME", node_name.as_str()),
    ];
    exec(&plugin_binary(), &env, &conf.to_string())
}

/// ADD, repeated like a runtime repeats a failed sandbox set-up when the plugin answers code
/// 11 (try again later): on two loaded cores, optimistic etcd transactions of one node's
/// callers sharing a block can lose the race for the whole deadline (a known weakness,
/// docs/stores.md). Any other failure, or 11 on every attempt, fails the test; a failed
/// ADD rolled back, so repeating it is safe and cannot duplicate.
fn add_as_a_runtime_would(node: usize, container: &str, conf: &Value) -> Reply {
    const ATTEMPTS: usize = 4;
    let mut reply = call("ADD", node, container, conf);
    for _ in 1..ATTEMPTS {
        if reply.code == 0 || reply.json()["code"].as_u64() != Some(11) {
            break;
        }
        eprintln!("{container}: code 11, repeating the ADD as a runtime would");
        reply = call("ADD", node, container, conf);
    }
    reply
}

fn stored(store: &Value, network: &str) -> BTreeSet<(String, String)> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let config = plexus_store::StoreConfig::from_json(Some(store)).unwrap();
        let store = plexus_store::open(&config).await.unwrap();
        store
            .list(network)
            .await
            .unwrap()
            .into_iter()
            .map(|a| (a.container_id, a.ip.to_string()))
            .collect()
    })
}

fn simulate(backend: &str, via_agents: bool) {
    let dir = TempDir::new().unwrap();
    let Some(store) = store_for(backend, &dir) else {
        return;
    };
    let agents: Vec<AgentProcess> = if via_agents {
        (0..NODES)
            .map(|n| AgentProcess::start(&dir.path().join(format!("agent-{n}/agent.sock"))))
            .collect()
    } else {
        Vec::new()
    };
    let via = if via_agents { "-agents" } else { "" };
    let network = format!("mn-{backend}{via}-{}", std::process::id());
    // 10.60.0.16 ..= 10.60.0.143: exactly POOL addresses, eight whole /28 blocks, one per
    // node (a node's 4 callers × 4 live = 16). Per-node blocks are how plexus avoids
    // cross-node contention; borrowing is exercised by the conformance suite.
    let last = 15 + POOL;
    let conf_of = |node: usize| {
        let agent = agents.get(node).map_or(json!(false), |a| json!(a.socket()));
        json!({
            "cniVersion": "1.1.0", "name": network, "type": "macvlan",
            // network_name: each test's own network on the servers the tests share
            // (without it, whereabouts' overlapping-range protection would make every
            // test's 10.60.0.0/24 one pool).
            "ipam": {"type": "plexus-ipam", "range": "10.60.0.0/24", "network_name": network,
                     "range_start": "10.60.0.16", "range_end": format!("10.60.0.{last}"),
                     "blocks": {"v4": 28}, "store": store, "agent": agent}
        })
    };
    let confs: Arc<Vec<Value>> = Arc::new((0..NODES).map(conf_of).collect());
    let live: Arc<Mutex<HashMap<String, String>>> = Arc::default();
    // What each node's runtime knows, and the gate its GC runs under exclusively (no ADD
    // or DEL of that node in flight during its GC, as the CNI spec requires of runtimes).
    let known: Arc<Vec<Mutex<BTreeSet<String>>>> =
        Arc::new((0..NODES).map(|_| Mutex::default()).collect());
    let gates: Arc<Vec<RwLock<()>>> = Arc::new((0..NODES).map(|_| RwLock::default()).collect());
    let churning = Arc::new(AtomicBool::new(true));
    let mut callers = Vec::new();
    for node in 0..NODES {
        for caller in 0..CALLERS_PER_NODE {
            let (confs, live) = (Arc::clone(&confs), Arc::clone(&live));
            let (known, gates) = (Arc::clone(&known), Arc::clone(&gates));
            callers.push(std::thread::spawn(move || {
                let conf = &confs[node];
                let mut mine: Vec<(String, String)> = Vec::new();
                for op in 0..OPS_PER_CALLER {
                    let _runtime_busy = gates[node].read().unwrap();
                    if mine.len() < LIVE_PER_CALLER && op % 5 != 4 {
                        let container = format!("n{node}c{caller}op{op}");
                        let reply = add_as_a_runtime_would(node, &container, conf);
                        let ip = reply.ips().pop().expect("one address");
                        let holder = live.lock().unwrap().insert(ip.clone(), container.clone());
                        assert!(
                            holder.is_none(),
                            "{ip} given to {container} while {holder:?} holds it"
                        );
                        known[node].lock().unwrap().insert(container.clone());
                        mine.push((container, ip));
                    } else if !mine.is_empty() {
                        let (container, ip) = mine.remove(op % mine.len());
                        live.lock().unwrap().remove(&ip);
                        call("DEL", node, &container, conf).ok();
                        known[node].lock().unwrap().remove(&container);
                    }
                }
                mine
            }));
        }
    }
    // Every node's runtime sends GC now and then while all nodes churn.
    let collector = {
        let (confs, known, gates, churning) = (
            Arc::clone(&confs),
            Arc::clone(&known),
            Arc::clone(&gates),
            Arc::clone(&churning),
        );
        std::thread::spawn(move || {
            let mut sent = 0;
            for _ in 0..GC_ROUNDS {
                for node in 0..NODES {
                    if !churning.load(Ordering::Relaxed) {
                        return sent;
                    }
                    let _exclusive = gates[node].write().unwrap();
                    let valid: Vec<Value> = known[node]
                        .lock()
                        .unwrap()
                        .iter()
                        .map(|c| json!({"containerID": c, "ifname": "net1"}))
                        .collect();
                    let mut conf = confs[node].clone();
                    conf["cni.dev/valid-attachments"] = json!(valid);
                    let reply = call("GC", node, "", &conf);
                    assert_eq!(reply.code, 0, "GC from node-{node}: {}", reply.stdout);
                    sent += 1;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            sent
        })
    };
    let mut expected = BTreeSet::new();
    for caller in callers {
        for (container, ip) in caller.join().expect("a caller failed") {
            expected.insert((container, ip));
        }
    }
    churning.store(false, Ordering::Relaxed);
    let gcs = collector.join().expect("a GC failed");
    assert!(gcs > 0, "{backend}: no GC ran during the churn");
    assert_eq!(
        stored(&store, &network),
        expected,
        "{backend}: store == live attachments"
    );
    for (node, agent) in agents.iter().enumerate() {
        let stats = agent.stats(&store);
        let claims = stats.calls.get("claim").copied().unwrap_or(0);
        assert!(
            claims > 0,
            "node {node}'s agent served its claims: {stats:?}"
        );
        assert!(
            (1..=claims).contains(&stats.claim_batches),
            "node {node}: claims go to the store in batches: {stats:?}"
        );
    }
    // Clean up so the shared servers do not keep this run's allocations: each node's GC
    // with an empty list releases that node's allocations, and only those.
    for node in 0..NODES {
        let on_node = |held: &BTreeSet<(String, String)>| {
            held.iter()
                .filter(|(c, _)| c.starts_with(&format!("n{node}c")))
                .count()
        };
        let before = stored(&store, &network);
        let mut cleanup = confs[node].clone();
        cleanup["cni.dev/valid-attachments"] = json!([]);
        let reply = call("GC", node, "", &cleanup);
        assert_eq!(
            reply.code, 0,
            "cleanup GC from node-{node}: {}",
            reply.stdout
        );
        let after = stored(&store, &network);
        assert_eq!(
            on_node(&after),
            0,
            "{backend}: node-{node}'s GC released its own"
        );
        assert_eq!(
            before.len() - after.len(),
            on_node(&before),
            "{backend}: node-{node}'s GC released nothing of other nodes"
        );
    }
    assert!(
        stored(&store, &network).is_empty(),
        "{backend}: every node's GC with an empty valid list releases all"
    );
}

#[test]
fn eight_nodes_on_sqlite() {
    simulate("sqlite", false);
}

#[test]
fn eight_nodes_on_postgres() {
    simulate("postgres", false);
}

#[test]
fn eight_nodes_on_etcd() {
    simulate("etcd", false);
}

#[test]
fn eight_nodes_on_postgres_via_agents() {
    simulate("postgres", true);
}

#[test]
fn eight_nodes_on_etcd_via_agents() {
    simulate("etcd", true);
}
