//! `plexus-ipam` through the node agent: a real `plexusd node` process on a temporary
//! socket, the real plugin binary, every verb on SQLite, PostgreSQL and etcd (the latter
//! two under scripts/with-servers), the agent's counters proving it served the calls,
//! fallback to direct access once the agent is killed, and store outages behind it.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::{Duration, Instant};

use common::agent::AgentProcess;
use common::{Reply, exec, plugin_binary};
use plexus_store::remote::protocol::AgentStats;
use plexus_test_support::servers::skip;
use serde_json::{Value, json};
use tempfile::TempDir;

fn conf(name: &str, store: &Value, agent: &Path) -> Value {
    json!({"cniVersion": "1.1.0", "name": name, "type": "bridge",
           "ipam": {"type": "plexus-ipam", "ranges": [[{"subnet": "10.66.0.0/24"}]],
                    "store": store, "agent": agent, "log_level": "debug"}})
}

fn call(command: &str, container: &str, conf: &Value) -> Reply {
    let env = [
        ("CNI_COMMAND", command),
        ("CNI_CONTAINERID", container),
        ("CNI_NETNS", "/var/run/netns/agent-test"),
        ("CNI_IFNAME", "eth0"),
        ("CNI_PATH", "/usr/lib/cni"),
    ];
    exec(&plugin_binary(), &env, &conf.to_string())
}

fn count(stats: &AgentStats, op: &str) -> u64 {
    stats.calls.get(op).copied().unwrap_or(0)
}

/// Every verb through the agent, then the agent killed and the plugin going direct.
fn verbs_through_agent_then_fallback(store: Value, network: &str) {
    let dir = TempDir::new().unwrap();
    let socket = dir.path().join("run/agent.sock");
    let mut agent = AgentProcess::start(&socket);
    let mode = std::fs::metadata(&socket).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "socket mode");
    let conf = conf(network, &store, &socket);

    let first = call("ADD", "agent-c1", &conf).ips();
    let second = call("ADD", "agent-c2", &conf).ips();
    let third = call("ADD", "agent-c3", &conf).ips();
    assert_ne!(first, second);
    let mut checked = conf.clone();
    checked["prevResult"] = call("ADD", "agent-c1", &conf).ok();
    assert_eq!(
        call("ADD", "agent-c1", &conf).ips(),
        first,
        "ADD is idempotent"
    );
    call("CHECK", "agent-c1", &checked).ok();
    call("STATUS", "", &conf).ok();
    call("DEL", "agent-c2", &conf).ok();
    let mut gc = conf.clone();
    gc["cni.dev/valid-attachments"] = json!([{"containerID": "agent-c1", "ifname": "eth0"}]);
    call("GC", "", &gc).ok();

    let stats = agent.stats(&store);
    assert_eq!(count(&stats, "claim"), 5, "{stats:?}");
    // One claim at a time: each its own batch; SQLite's claims are never queued.
    let batches = if store["type"] == "sqlite" { 0 } else { 5 };
    assert_eq!(stats.claim_batches, batches, "{stats:?}");
    assert!(count(&stats, "attachment") >= 1, "{stats:?}");
    assert!(count(&stats, "probe") >= 1, "{stats:?}");
    assert!(count(&stats, "count_between") >= 1, "{stats:?}");
    assert_eq!(count(&stats, "release"), 1, "{stats:?}");
    assert_eq!(count(&stats, "gc"), 1, "{stats:?}");
    assert_eq!(
        stats.stores_open, 2,
        "one warm store for calls, one capped for STATUS"
    );

    // The agent dies: the same config keeps working directly, with the same allocations.
    agent.kill();
    assert_eq!(call("ADD", "agent-c1", &conf).ips(), first);
    let fourth = call("ADD", "agent-c4", &conf).ips();
    assert!(!fourth.is_empty() && fourth != first);
    // agent-c3 was collected by GC: its address may be handed out again, but not twice.
    assert_ne!(fourth, call("ADD", "agent-c5", &conf).ips());
    call("CHECK", "agent-c1", &checked).ok();
    call("STATUS", "", &conf).ok();
    call("DEL", "agent-c1", &conf).ok();
    call("DEL", "agent-c4", &conf).ok();
    call("DEL", "agent-c5", &conf).ok();
    let _ = third;
}

#[test]
fn sqlite_verbs_through_the_agent_and_fallback() {
    let dir = TempDir::new().unwrap();
    let store = json!({"type": "sqlite", "path": dir.path().join("agent.db")});
    verbs_through_agent_then_fallback(store, "agent-sqlite");
}

fn server_store(backend: &str) -> Option<Value> {
    let env = |k: &str| std::env::var(k).ok();
    let store = match backend {
        "postgres" => (|| {
            Some(
                json!({"type": "postgres", "host": env("PLEXUS_TEST_PG_HOST")?,
                "port": env("PLEXUS_TEST_PG_PORT")?.parse::<u16>().ok()?,
                "dbname": env("PLEXUS_TEST_PG_DB")?, "user": env("PLEXUS_TEST_PG_USER")?,
                "password_file": env("PLEXUS_TEST_PG_PASSWORD_FILE")?, "sslmode": "disable"}),
            )
        })(),
        _ => env("PLEXUS_TEST_ETCD_ENDPOINTS").map(|e| {
            json!({"type": "etcd", "endpoints": [e],
                   "prefix": format!("/plexus-test/agent-{}", std::process::id())})
        }),
    };
    store.or_else(|| {
        skip(
            &format!("agent test on {backend}"),
            "no server (run under scripts/with-servers)",
        )
    })
}

#[test]
fn postgres_verbs_through_the_agent_and_fallback() {
    if let Some(store) = server_store("postgres") {
        let network = format!("agent-pg-{}", std::process::id());
        verbs_through_agent_then_fallback(store, &network);
    }
}

#[test]
fn etcd_verbs_through_the_agent_and_fallback() {
    if let Some(store) = server_store("etcd") {
        verbs_through_agent_then_fallback(store, "agent-etcd");
    }
}

/// A loopback port nobody listens on.
fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

#[test]
fn store_down_behind_the_agent_answers_like_direct_access() {
    let dir = TempDir::new().unwrap();
    let socket = dir.path().join("agent.sock");
    let agent = AgentProcess::start(&socket);
    let port = closed_port();
    let pg = json!({"type": "postgres", "host": "127.0.0.1", "port": port, "dbname": "x",
                    "user": "x", "password": "not-logged", "sslmode": "disable",
                    "timeout_ms": 1000});
    let etcd = json!({"type": "etcd", "endpoints": [format!("http://127.0.0.1:{port}")],
                      "timeout_ms": 1000});
    for store in [pg, etcd] {
        let conf = conf("agent-down", &store, &socket);
        for (command, code, limit) in [("ADD", 11, 4), ("DEL", 11, 4), ("STATUS", 50, 4)] {
            let started = Instant::now();
            let reply = call(command, "agent-down-c1", &conf);
            reply.err(code);
            assert!(
                started.elapsed() < Duration::from_secs(limit),
                "{command} took {:?}",
                started.elapsed()
            );
            assert!(
                !reply.stderr.contains("not-logged"),
                "password logged: {reply:?}"
            );
        }
        let stats = agent.stats(&store);
        assert!(
            stats.errors >= 3,
            "the agent answered the failures: {stats:?}"
        );
    }
}

#[test]
fn bad_agent_key_is_a_config_error_naming_the_field() {
    let dir = TempDir::new().unwrap();
    let store = json!({"type": "sqlite", "path": dir.path().join("a.db")});
    let mut conf = conf("agent-bad", &store, Path::new("/unused"));
    conf["ipam"]["agent"] = json!(42);
    let msg = call("ADD", "agent-bad-c1", &conf).err(7);
    assert!(msg.contains("ipam.agent"), "{msg}");
    conf["ipam"]["agent"] = json!(false);
    assert!(!call("ADD", "agent-bad-c1", &conf).ips().is_empty());
}
