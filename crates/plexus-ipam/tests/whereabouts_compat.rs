//! whereabouts configurations unchanged, through the real binary: the datastore keys
//! (`etcd_host` → the plexus etcd store; the Kubernetes datastore refused with code 7,
//! never a node-local file), whereabouts' flat file, the addresses whereabouts ≤ 0.5.4
//! holds in etcd (claims refused until `plexusctl import --from whereabouts-etcd`, then
//! never handed out), and the README's IPv6 example with its off-subnet gateway.
//!
//! Every plugin run gets `PLEXUS_WHEREABOUTS_FLATFILE_DIRS` pointing at the test's own
//! directory (or nowhere), so a flat file on the machine running the tests never leaks in.
//! The etcd tests need `scripts/with-servers` (`PLEXUS_TEST_ETCD_ENDPOINTS`).

mod common;

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::{Arc, Mutex};

use common::agent::AgentProcess;
use common::{Reply, exec, plugin_binary};
use plexus_store::StoreConfig;
use plexus_test_support::servers::skip;
use serde_json::{Value, json};
use tempfile::TempDir;

/// One plugin call on `node` with the flat-file search limited to `flat_dirs`.
fn call(command: &str, node: &str, container: &str, flat_dirs: &str, conf: &Value) -> Reply {
    let env = [
        ("CNI_COMMAND", command),
        ("CNI_CONTAINERID", container),
        ("CNI_NETNS", "/run/netns/sim"),
        ("CNI_IFNAME", "net1"),
        ("CNI_PATH", "/usr/lib/cni"),
        (
            "CNI_ARGS",
            "IgnoreUnknown=1;K8S_POD_NAMESPACE=wb;K8S_POD_NAME=p",
        ),
        ("NODE_NAME", node),
        ("PLEXUS_WHEREABOUTS_FLATFILE_DIRS", flat_dirs),
    ];
    exec(&plugin_binary(), &env, &conf.to_string())
}

fn netconf(name: &str, ipam: Value) -> Value {
    json!({"cniVersion": "1.1.0", "name": name, "type": "macvlan", "master": "eth0", "ipam": ipam})
}

#[test]
fn the_kubernetes_datastore_without_a_store_is_code_7_never_a_local_file() {
    let dir = TempDir::new().unwrap();
    let kube = json!({"type": "plexus-ipam", "range": "10.77.0.0/24", "agent": false,
                      "kubernetes": {"kubeconfig": "/etc/cni/net.d/whereabouts.d/whereabouts.kubeconfig"}});
    for ipam in [kube.clone(), {
        let mut explicit = kube.clone();
        explicit["datastore"] = json!("kubernetes");
        explicit
    }] {
        let conf = netconf("wb-k8s", ipam);
        let msg = call("ADD", "node-a", "c1", "", &conf).err(7);
        assert!(
            msg.contains("no Kubernetes store") && msg.contains("ipam.store"),
            "{msg}"
        );
        // Nothing was ever allocated for it: DEL succeeds.
        call("DEL", "node-a", "c1", "", &conf).ok();
    }
    // With an explicit store the whereabouts keys are ignored, with a note on stderr.
    let mut ipam = kube;
    ipam["datastore"] = json!("kubernetes");
    ipam["store"] = json!({"type": "sqlite", "path": dir.path().join("k.db")});
    let reply = call("ADD", "node-a", "c1", "", &netconf("wb-k8s", ipam));
    assert!(reply.ips()[0].starts_with("10.77.0."), "{reply:?}");
    assert!(
        reply
            .stderr
            .contains("ipam.datastore is ignored: ipam.store is set"),
        "{}",
        reply.stderr
    );
}

#[test]
fn the_flat_file_names_the_datastore() {
    let dir = TempDir::new().unwrap();
    let flat_dir = dir.path().join("whereabouts.d");
    std::fs::create_dir_all(&flat_dir).unwrap();
    // What whereabouts' DaemonSet writes.
    std::fs::write(
        flat_dir.join("whereabouts.conf"),
        r#"{"datastore": "kubernetes",
            "kubernetes": {"kubeconfig": "/etc/cni/net.d/whereabouts.d/whereabouts.kubeconfig"},
            "reconciler_cron_expression": "30 4 * * *"}"#,
    )
    .unwrap();
    let dirs = flat_dir.to_str().unwrap();
    let conf = netconf(
        "wb-flat",
        json!({"type": "plexus-ipam", "range": "10.78.0.0/24", "agent": false}),
    );
    let msg = call("ADD", "node-a", "c1", dirs, &conf).err(7);
    assert!(msg.contains("no Kubernetes store"), "{msg}");

    // configuration_path first: a file of its own that names a store via the NAD's keys.
    let own = dir.path().join("own.conf");
    std::fs::write(&own, r#"{"gateway": "10.78.0.254"}"#).unwrap();
    let ipam = json!({"type": "plexus-ipam", "range": "10.78.0.0/24", "agent": false,
                      "configuration_path": own,
                      "store": {"type": "sqlite", "path": dir.path().join("f.db")}});
    let reply = call("ADD", "node-a", "c1", dirs, &netconf("wb-flat", ipam));
    let result = reply.ok();
    let address = result["ips"][0]["address"].as_str().unwrap();
    assert!(
        address.starts_with("10.78.0.") && address.ends_with("/24"),
        "{result}"
    );
    assert_eq!(
        result["ips"][0]["gateway"], "10.78.0.254",
        "gateway from the flat file"
    );

    // A section in host-local syntax never reads the file; no file at all is fine.
    let hostlocal = json!({"type": "plexus-ipam", "ranges": [[{"subnet": "10.79.0.0/24"}]],
                           "agent": false, "store": {"type": "sqlite", "path": dir.path().join("h.db")}});
    call("ADD", "node-a", "c1", dirs, &netconf("wb-hl", hostlocal)).ok();
    let unreadable = dir.path().join("bad.conf");
    std::fs::write(&unreadable, "{not json").unwrap();
    let ipam = json!({"type": "plexus-ipam", "range": "10.78.0.0/24", "agent": false,
                      "configuration_path": unreadable});
    let msg = call("ADD", "node-a", "c2", "", &netconf("wb-flat", ipam)).err(7);
    assert!(msg.contains("bad.conf"), "{msg}");
}

#[test]
fn readme_ipv6_example_reports_the_off_subnet_gateway_and_never_reserves_it() {
    let dir = TempDir::new().unwrap();
    let conf = netconf(
        "whereaboutsexample",
        json!({"type": "plexus-ipam", "range": "2001::0/116", "gateway": "2001::f:1",
               "agent": false, "store": {"type": "sqlite", "path": dir.path().join("v6.db")}}),
    );
    let first = call("ADD", "node-a", "c1", "", &conf);
    let result = first.ok();
    let subnet: ipnet::IpNet = "2001::/116".parse().unwrap();
    let address: ipnet::IpNet = result["ips"][0]["address"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(address.prefix_len(), 116);
    assert!(subnet.contains(&address.addr()), "{result}");
    assert_eq!(result["ips"][0]["gateway"], "2001::f:1");
    assert!(
        first
            .stderr
            .contains("ipam.gateway 2001::f:1 lies outside 2001::/116"),
        "{}",
        first.stderr
    );
    let second = call("ADD", "node-a", "c2", "", &conf).ok();
    assert_ne!(second["ips"][0]["address"], result["ips"][0]["address"]);
    assert_eq!(second["ips"][0]["gateway"], "2001::f:1");
    call("DEL", "node-a", "c1", "", &conf).ok();
}

/// The shared test etcd, or `None` after saying why (a failure under
/// `PLEXUS_REQUIRE_SERVERS=1`).
fn etcd_endpoint(test: &str) -> Option<String> {
    match std::env::var("PLEXUS_TEST_ETCD_ENDPOINTS") {
        Ok(v) if !v.trim().is_empty() => v.split(',').next().map(|e| e.trim().to_string()),
        _ => skip(test, "no etcd (run under scripts/with-servers)"),
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// Writes (or with `None` reads) a raw etcd key, as whereabouts would.
fn raw(endpoint: &str, key: &str, value: Option<&str>) -> Option<String> {
    runtime().block_on(async {
        let mut client = etcd_client::Client::connect([endpoint], None)
            .await
            .unwrap();
        if let Some(value) = value {
            client.put(key, value, None).await.unwrap();
        }
        let got = client.get(key, None).await.unwrap();
        got.kvs()
            .first()
            .map(|kv| kv.value_str().unwrap().to_string())
    })
}

/// The allocations inside `range` in `store`: (container, ifname, address). A whereabouts
/// configuration without `network_name` keeps them in the network every such
/// configuration shares (overlapping-range protection), with other tests' ranges.
fn held(store: &StoreConfig, range: &str) -> BTreeSet<(String, String, String)> {
    let range: ipnet::IpNet = range.parse().unwrap();
    runtime().block_on(async {
        let store = plexus_store::open(store).await.unwrap();
        let list = store
            .list(plexus_ipam_core::WHEREABOUTS_SHARED_NETWORK)
            .await
            .unwrap();
        list.into_iter()
            .filter(|a| range.contains(&a.ip))
            .map(|a| (a.container_id, a.ifname, a.ip.to_string()))
            .collect()
    })
}

/// `plexusctl import --from whereabouts-etcd --conf <conf> --default-ifname net1`.
fn import(dir: &Path, conf: &Value) {
    let path = dir.join("nad.json");
    std::fs::write(&path, conf.to_string()).unwrap();
    let opts = <plexusctl::Opts as clap::Parser>::try_parse_from([
        "plexusctl",
        "import",
        "--from",
        "whereabouts-etcd",
        "--conf",
        path.to_str().unwrap(),
        "--default-ifname",
        "net1",
    ])
    .unwrap();
    runtime()
        .block_on(plexusctl::run(opts))
        .unwrap_or_else(|e| panic!("import: {e}"));
}

/// Two simulated nodes (node-b through its node agent) share one unchanged whereabouts
/// configuration with `etcd_host`, on an etcd where whereabouts already holds three
/// addresses of the range in its own format: claims are refused (code 7, naming the
/// import) until the import, then no address is handed out twice nor any whereabouts
/// address at all; a DEL of a whereabouts pod releases its address; when whereabouts
/// writes the range again, claims are refused again until the next import.
#[test]
fn whereabouts_etcd_two_nodes_respect_what_whereabouts_holds() {
    let Some(endpoint) = etcd_endpoint("whereabouts_etcd_two_nodes") else {
        return;
    };
    let dir = TempDir::new().unwrap();
    let agent = AgentProcess::start(&dir.path().join("agent-b/agent.sock"));
    // whereabouts' own etcd_host forms: bare host:port, comma-separated.
    let bare = endpoint.trim_start_matches("http://");
    let network = format!("wb-etcd-{}", std::process::id());
    let range = "10.233.1.0/27";
    let legacy = format!("/whereabouts/{range}");
    let conf_for = |agent: Value| {
        netconf(
            &network,
            json!({"type": "plexus-ipam", "range": range, "datastore": "etcd",
                   "etcd_host": format!("{bare},{bare}"), "agent": agent}),
        )
    };
    let confs = [conf_for(json!(false)), conf_for(json!(agent.socket()))];
    let whereabouts_held = ["10.233.1.1", "10.233.1.5", "10.233.1.6"];
    raw(
        &endpoint,
        &legacy,
        Some("10.233.1.1 wb-a\n10.233.1.5 wb-b default/pod-b\n10.233.1.6 wb-c"),
    );
    let store =
        StoreConfig::from_json(Some(&json!({"type": "etcd", "endpoints": [endpoint]}))).unwrap();

    for (node, conf) in ["node-a", "node-b"].iter().zip(&confs) {
        let msg = call("ADD", node, "early", "", conf).err(7);
        assert!(msg.contains(&legacy), "{msg}");
        assert!(
            msg.contains("plexusctl import --from whereabouts-etcd"),
            "{msg}"
        );
    }
    assert!(
        held(&store, range).is_empty(),
        "a refused ADD keeps nothing"
    );

    import(dir.path(), &confs[0]);
    assert_eq!(
        raw(&endpoint, &legacy, None),
        None,
        "the range key was moved"
    );
    let moved = raw(&endpoint, &format!("/plexus-imported{legacy}"), None);
    assert!(moved.is_some_and(|v| v.contains("10.233.1.5 wb-b")));
    let imported: BTreeSet<String> = held(&store, range).into_iter().map(|h| h.2).collect();
    assert_eq!(
        imported,
        whereabouts_held.iter().map(|s| s.to_string()).collect()
    );

    // 30 usable addresses, 3 held by whereabouts: 2 nodes × 6 concurrent callers, one
    // node through its agent. The subject is what whereabouts holds and uniqueness across
    // both paths; throughput under contention is the multinode test's (with 12 callers per
    // node on one 30-address range, the last claims of a loaded CI machine ran into the
    // 10 s store deadline after 8 attempts, and through the agent behind its queue).
    let given: Arc<Mutex<Vec<String>>> = Arc::default();
    let mut callers = Vec::new();
    for (n, node) in ["node-a", "node-b"].into_iter().enumerate() {
        for c in 0..6 {
            let (conf, given) = (confs[n].clone(), Arc::clone(&given));
            callers.push(std::thread::spawn(move || {
                let container = format!("{node}-c{c}");
                let reply = call("ADD", node, &container, "", &conf);
                let ip = reply.ips().pop().expect("one address");
                given.lock().unwrap().push(ip);
            }));
        }
    }
    for caller in callers {
        caller.join().expect("an ADD failed");
    }
    let given = given.lock().unwrap().clone();
    let unique: BTreeSet<&String> = given.iter().collect();
    assert_eq!(unique.len(), given.len(), "no address twice: {given:?}");
    for ip in whereabouts_held {
        assert!(
            !unique.contains(&ip.to_string()),
            "{ip} is whereabouts': {given:?}"
        );
    }

    // A pod whereabouts attached is deleted through plexus: its address is released.
    call("DEL", "node-a", "wb-b", "", &confs[0]).ok();
    let after: BTreeSet<String> = held(&store, range).into_iter().map(|h| h.2).collect();
    assert!(!after.contains("10.233.1.5") && after.contains("10.233.1.1"));

    // whereabouts (still running on some node) writes the range again: it saw no key,
    // so it hands out the lowest address it thinks free, the one just released.
    raw(&endpoint, &legacy, Some("10.233.1.5 wb-late"));
    let msg = call("ADD", "node-b", "late", "", &confs[1]).err(7);
    assert!(msg.contains("plexusctl import"), "{msg}");
    import(dir.path(), &confs[0]);
    let reply = call("ADD", "node-b", "late", "", &confs[1]);
    let ip = reply.ips().pop().unwrap();
    assert_ne!(ip, "10.233.1.5");
    let last: BTreeSet<(String, String, String)> = held(&store, range);
    assert!(last.contains(&("wb-late".into(), "net1".into(), "10.233.1.5".into())));
    let addresses: Vec<&String> = last.iter().map(|h| &h.2).collect();
    let distinct: BTreeSet<&&String> = addresses.iter().collect();
    assert_eq!(
        distinct.len(),
        addresses.len(),
        "store holds each address once"
    );
}
