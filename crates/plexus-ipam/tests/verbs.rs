//! Every CNI verb of the real `plexus-ipam` binary against a real SQLite file, as a
//! runtime calls it: one process per call, config on stdin, result or error on stdout.

mod common;

use common::{SHARED, held, ipam, ipam_args, netconf};
use serde_json::{Value, json};
use tempfile::TempDir;

fn v4_pool(dir: &TempDir, range: &str) -> Value {
    netconf(
        "1.1.0",
        "net-a",
        &dir.path().join("p.db"),
        json!({"range": range}),
    )
}

#[test]
fn add_returns_an_address_from_the_range_in_each_version_shape() {
    let dir = TempDir::new().unwrap();
    for (i, version) in ["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"]
        .iter()
        .enumerate()
    {
        let mut conf = v4_pool(&dir, "10.1.0.0/24");
        conf["cniVersion"] = json!(version);
        let reply = ipam("ADD", &format!("c{i}"), "eth0", &conf);
        let result = reply.ok();
        assert_eq!(result["cniVersion"], json!(version));
        let ip = &result["ips"][0];
        assert!(
            ip["address"].as_str().unwrap().starts_with("10.1.0."),
            "{result}"
        );
        assert!(ip["address"].as_str().unwrap().ends_with("/24"), "{result}");
        if version.starts_with("0.") {
            assert_eq!(ip["version"], json!("4"), "{version}: {result}");
        } else {
            assert!(ip.get("version").is_none(), "{version}: {result}");
        }
        assert!(
            ip.get("interface").is_none(),
            "IPAM results carry no interface index"
        );
    }
}

#[test]
fn add_is_idempotent_and_next_fit_skips_the_freed_address() {
    let dir = TempDir::new().unwrap();
    let conf = v4_pool(&dir, "10.2.0.0/24");
    let first = ipam("ADD", "c1", "eth0", &conf).ips();
    let again = ipam("ADD", "c1", "eth0", &conf).ips();
    assert_eq!(first, again, "same attachment, same address");
    assert_eq!(first, vec!["10.2.0.1"]);
    ipam("DEL", "c1", "eth0", &conf).ok();
    let next = ipam("ADD", "c2", "eth0", &conf).ips();
    assert_eq!(
        next,
        vec!["10.2.0.2"],
        "a freed address is not handed out again at once"
    );
    assert_eq!(held(&dir.path().join("p.db"), SHARED).len(), 1);
}

#[test]
fn dual_stack_gets_one_address_per_range_set() {
    let dir = TempDir::new().unwrap();
    let conf = netconf(
        "1.1.0",
        "ds",
        &dir.path().join("p.db"),
        json!({"ipRanges": [{"range": "10.3.0.0/24"}, {"range": "fd00:3::/64"}],
               "routes": [{"dst": "0.0.0.0/0"}]}),
    );
    let reply = ipam("ADD", "c1", "net1", &conf);
    // Each address starts the block TEST_NODE's name hashes to: the first of the four /26
    // blocks of the /24, one /122 block somewhere in the /64.
    assert_eq!(reply.ips(), vec!["10.3.0.1", "fd00:3::1744:ee8a:5488:e100"]);
    assert_eq!(reply.ok()["routes"][0]["dst"], json!("0.0.0.0/0"));
}

#[test]
fn host_local_syntax_reserves_the_default_gateway() {
    let dir = TempDir::new().unwrap();
    let conf = netconf(
        "1.0.0",
        "hl",
        &dir.path().join("p.db"),
        json!({"ranges": [[{"subnet": "10.4.0.0/29"}]], "dns": {"nameservers": ["10.4.0.1"]}}),
    );
    let result = ipam("ADD", "c1", "eth0", &conf).ok();
    assert_eq!(result["ips"][0]["address"], json!("10.4.0.2/29"));
    assert_eq!(result["ips"][0]["gateway"], json!("10.4.0.1"));
    assert_eq!(result["dns"]["nameservers"][0], json!("10.4.0.1"));
}

#[test]
fn exhausted_pool_fails_with_a_plugin_code_naming_network_and_pool() {
    let dir = TempDir::new().unwrap();
    // A /30 has two usable addresses.
    let conf = v4_pool(&dir, "10.5.0.0/30");
    ipam("ADD", "c1", "eth0", &conf).ok();
    ipam("ADD", "c2", "eth0", &conf).ok();
    let msg = ipam("ADD", "c3", "eth0", &conf).err(100);
    assert!(
        msg.contains("net-a") && msg.contains("10.5.0.0/30"),
        "{msg}"
    );
    assert_eq!(
        held(&dir.path().join("p.db"), SHARED).len(),
        2,
        "a failed ADD holds nothing"
    );
}

#[test]
fn static_requests_from_every_channel_and_conflicts() {
    let dir = TempDir::new().unwrap();
    let mut conf = v4_pool(&dir, "10.6.0.0/24");
    let by_args = ipam_args("ADD", "c1", "eth0", "IP=10.6.0.50/24", &conf);
    assert_eq!(by_args.ips(), vec!["10.6.0.50"]);
    conf["runtimeConfig"] = json!({"ips": ["10.6.0.60/24"]});
    assert_eq!(ipam("ADD", "c2", "eth0", &conf).ips(), vec!["10.6.0.60"]);
    conf["runtimeConfig"] = json!({});
    conf["args"] = json!({"cni": {"ips": ["10.6.0.70"]}});
    assert_eq!(ipam("ADD", "c3", "eth0", &conf).ips(), vec!["10.6.0.70"]);
    // Taken by c1: a clear error naming the holder.
    conf["args"] = json!({"cni": {"ips": ["10.6.0.50"]}});
    let msg = ipam("ADD", "c4", "eth0", &conf).err(101);
    assert!(msg.contains("10.6.0.50") && msg.contains("c1"), "{msg}");
    // Outside every range.
    conf["args"] = json!({"cni": {"ips": ["192.168.9.9"]}});
    ipam("ADD", "c5", "eth0", &conf).err(102);
    assert_eq!(held(&dir.path().join("p.db"), SHARED).len(), 3);
}

#[test]
fn del_is_idempotent_and_tolerates_unknown_attachments_and_missing_netns() {
    let dir = TempDir::new().unwrap();
    let conf = v4_pool(&dir, "10.7.0.0/24");
    ipam("ADD", "c1", "eth0", &conf).ok();
    ipam("DEL", "c1", "eth0", &conf).ok();
    ipam("DEL", "c1", "eth0", &conf).ok();
    ipam("DEL", "never-added", "eth9", &conf).ok();
    let env = [
        ("CNI_COMMAND", "DEL"),
        ("CNI_CONTAINERID", "c1"),
        ("CNI_IFNAME", "eth0"),
        ("CNI_PATH", "/usr/lib/cni"),
    ];
    common::exec(&common::plugin_binary(), &env, &conf.to_string()).ok();
    assert!(held(&dir.path().join("p.db"), SHARED).is_empty());
}

#[test]
fn del_releases_even_when_the_ranges_no_longer_parse() {
    let dir = TempDir::new().unwrap();
    let mut conf = v4_pool(&dir, "10.8.0.0/24");
    ipam("ADD", "c1", "eth0", &conf).ok();
    conf["ipam"]["range"] = json!("not-a-cidr");
    ipam("ADD", "c2", "eth0", &conf).err(7);
    ipam("DEL", "c1", "eth0", &conf).ok();
    assert!(held(&dir.path().join("p.db"), SHARED).is_empty());
}

#[test]
fn check_compares_prev_result_with_the_store() {
    let dir = TempDir::new().unwrap();
    let mut conf = v4_pool(&dir, "10.9.0.0/24");
    let result = ipam("ADD", "c1", "eth0", &conf).ok();
    conf["prevResult"] = result.clone();
    ipam("CHECK", "c1", "eth0", &conf).ok();
    // Another attachment claiming the same result fails.
    let msg = ipam("CHECK", "c2", "eth0", &conf).err(103);
    assert!(msg.contains("c2/eth0"), "{msg}");
    // After DEL the reservation is gone.
    ipam("DEL", "c1", "eth0", &conf).ok();
    ipam("CHECK", "c1", "eth0", &conf).err(103);
    // A prevResult naming a different address fails too.
    ipam("ADD", "c1", "eth0", &conf).ok();
    conf["prevResult"]["ips"][0]["address"] = json!("10.9.0.200/24");
    let msg = ipam("CHECK", "c1", "eth0", &conf).err(103);
    assert!(msg.contains("10.9.0.200"), "{msg}");
    // CHECK needs prevResult, and CNI >= 0.4.0.
    conf.as_object_mut().unwrap().remove("prevResult");
    ipam("CHECK", "c1", "eth0", &conf).err(7);
    conf["cniVersion"] = json!("0.3.1");
    ipam("CHECK", "c1", "eth0", &conf).err(1);
}

#[test]
fn status_reports_ready_exhausted_and_unusable_store() {
    let dir = TempDir::new().unwrap();
    let conf = v4_pool(&dir, "10.10.0.0/30");
    ipam("STATUS", "", "", &conf).ok();
    ipam("ADD", "c1", "eth0", &conf).ok();
    ipam("STATUS", "", "", &conf).ok();
    ipam("ADD", "c2", "eth0", &conf).ok();
    let msg = ipam("STATUS", "", "", &conf).err(50);
    assert!(msg.contains("exhausted"), "{msg}");
    // A store that cannot be created: its directory is a file.
    let blocker = dir.path().join("file");
    std::fs::write(&blocker, b"x").unwrap();
    let bad = netconf(
        "1.1.0",
        "net-a",
        &blocker.join("p.db"),
        json!({"range": "10.10.0.0/24"}),
    );
    ipam("STATUS", "", "", &bad).err(50);
    let mut old = conf.clone();
    old["cniVersion"] = json!("1.0.0");
    ipam("STATUS", "", "", &old).err(1);
}

#[test]
fn gc_releases_what_is_not_valid_in_this_network_only() {
    let dir = TempDir::new().unwrap();
    let db = dir.path().join("p.db");
    let conf = v4_pool(&dir, "10.11.0.0/24");
    let other = netconf("1.1.0", "net-b", &db, json!({"range": "10.12.0.0/24"}));
    for c in ["c1", "c2", "c3"] {
        ipam("ADD", c, "eth0", &conf).ok();
    }
    ipam("ADD", "c9", "eth0", &other).ok();
    // No key at all: nothing is released (and it says so on stderr).
    let reply = ipam("GC", "", "", &conf);
    reply.ok();
    assert!(reply.stderr.contains("valid-attachments"), "{reply:?}");
    let holders = |db: &std::path::Path| -> Vec<String> {
        let mut c: Vec<String> = held(db, SHARED).into_iter().map(|(c, _, _)| c).collect();
        c.sort();
        c
    };
    // Both configurations keep their allocations in one network (overlapping-range
    // protection), so net-a's GC must leave net-b's attachment alone.
    assert_eq!(holders(&db), ["c1", "c2", "c3", "c9"]);
    // The older key is honoured.
    let mut gc = conf.clone();
    gc["cni.dev/attachments"] = json!([{"containerID": "c1", "ifname": "eth0"},
                                        {"containerID": "c2", "ifname": "eth0"}]);
    ipam("GC", "", "", &gc).ok();
    assert_eq!(holders(&db), ["c1", "c2", "c9"]);
    // The current key wins over the older one; an empty list releases everything.
    gc["cni.dev/valid-attachments"] = json!([]);
    ipam("GC", "", "", &gc).ok();
    assert_eq!(
        holders(&db),
        ["c9"],
        "another configuration's attachment is untouched"
    );
    gc["cniVersion"] = json!("1.0.0");
    ipam("GC", "", "", &gc).err(1);
}

/// Runs one verb as the plugin does on node `node` (`NODE_NAME`, as Kubernetes' downward
/// API sets it).
fn on_node(node: &str, command: &str, container: &str, conf: &Value) -> common::Reply {
    let env = [
        ("CNI_COMMAND", command),
        ("CNI_CONTAINERID", container),
        ("CNI_NETNS", "/var/run/netns/does-not-matter"),
        ("CNI_IFNAME", "eth0"),
        ("CNI_PATH", "/usr/lib/cni"),
        ("NODE_NAME", node),
    ];
    common::exec(&common::plugin_binary(), &env, &conf.to_string())
}

#[test]
fn gc_from_one_node_never_releases_another_nodes_allocations() {
    let dir = TempDir::new().unwrap();
    let db = dir.path().join("p.db");
    let conf = v4_pool(&dir, "10.13.0.0/24");
    on_node("node-a", "ADD", "a-live", &conf).ok();
    on_node("node-a", "ADD", "a-stale", &conf).ok();
    on_node("node-b", "ADD", "b-live", &conf).ok();
    // Node A's runtime knows only its own live attachment, as CRI-O and containerd send.
    let mut gc = conf.clone();
    gc["cni.dev/valid-attachments"] = json!([{"containerID": "a-live", "ifname": "eth0"}]);
    on_node("node-a", "GC", "", &gc).ok();
    let mut holders: Vec<String> = held(&db, SHARED).into_iter().map(|(c, _, _)| c).collect();
    holders.sort();
    assert_eq!(
        holders,
        ["a-live", "b-live"],
        "node-b's address survives node-a's GC"
    );
    // ipam.node_name wins over NODE_NAME, for both the claim and the GC.
    let mut named = gc.clone();
    named["ipam"]["node_name"] = json!("node-b");
    named["cni.dev/valid-attachments"] = json!([]);
    on_node("node-a", "GC", "", &named).ok();
    let mut holders: Vec<String> = held(&db, SHARED).into_iter().map(|(c, _, _)| c).collect();
    holders.sort();
    assert_eq!(holders, ["a-live"], "node-b's GC released node-b's only");
}

#[test]
fn invalid_configs_fail_with_code_7_naming_field_and_value() {
    let dir = TempDir::new().unwrap();
    let cases = [
        (json!({"range": "10.0.0.0/33"}), "10.0.0.0/33"),
        (
            json!({"range": "10.0.0.0/24", "range_start": "10.0.1.5"}),
            "10.0.1.5",
        ),
        // whereabouts syntax reports a gateway outside its range (whereabouts_compat.rs);
        // host-local syntax refuses it, as host-local does.
        (
            json!({"ranges": [[{"subnet": "10.0.0.0/24", "gateway": "10.9.9.9"}]]}),
            "10.9.9.9",
        ),
        (
            json!({"range": "fd00::/64", "gateway": "10.0.0.1"}),
            "10.0.0.1",
        ),
        (
            json!({"ranges": [[{"subnet": "10.0.0.5/24"}]]}),
            "10.0.0.5/24",
        ),
        (
            json!({"ranges": [[{"subnet": "10.0.0.0/24", "rangeEnd": "10.0.2.1"}]]}),
            "10.0.2.1",
        ),
    ];
    for (ipam_body, value) in cases {
        let conf = netconf("1.1.0", "bad", &dir.path().join("p.db"), ipam_body.clone());
        let msg = ipam("ADD", "c1", "eth0", &conf).err(7);
        assert!(
            msg.contains(value),
            "message must name {value}: {msg} ({ipam_body})"
        );
    }
    let mut conf = netconf(
        "1.1.0",
        "bad",
        &dir.path().join("p.db"),
        json!({"range": "10.0.0.0/24"}),
    );
    conf["ipam"]["store"] = json!({"type": "mysql"});
    let msg = ipam("ADD", "c1", "eth0", &conf).err(7);
    assert!(msg.contains("mysql"), "{msg}");
    let no_ipam = json!({"cniVersion": "1.1.0", "name": "x", "type": "bridge"});
    ipam("ADD", "c1", "eth0", &no_ipam).err(7);
    let reply = common::exec(
        &common::plugin_binary(),
        &[
            ("CNI_COMMAND", "ADD"),
            ("CNI_CONTAINERID", "c1"),
            ("CNI_IFNAME", "eth0"),
        ],
        &v4_pool(&dir, "10.0.0.0/24").to_string(),
    );
    assert!(reply.err(4).contains("CNI_NETNS"), "{reply:?}");
    ipam("ADD", "c1", "eth0", &json!("{not json")).err(6);
    let unsupported = json!({"cniVersion": "9.9.9", "name": "x", "type": "bridge", "ipam": {}});
    ipam("ADD", "c1", "eth0", &unsupported).err(1);
}

#[test]
fn unknown_cni_args_need_ignore_unknown() {
    let dir = TempDir::new().unwrap();
    let conf = v4_pool(&dir, "10.13.0.0/24");
    let msg = ipam_args("ADD", "c1", "eth0", "FOO=bar", &conf).err(2);
    assert!(msg.contains("FOO"), "{msg}");
    let args = "IgnoreUnknown=1;FOO=bar;K8S_POD_NAMESPACE=ns;K8S_POD_NAME=pod;K8S_POD_UID=u1";
    ipam_args("ADD", "c1", "eth0", args, &conf).ok();
}

#[test]
fn version_lists_every_supported_version_and_logs_stay_off_stdout() {
    let reply = common::exec(
        &common::plugin_binary(),
        &[("CNI_COMMAND", "VERSION")],
        r#"{"cniVersion":"1.0.0"}"#,
    );
    let v = reply.ok();
    assert_eq!(v["cniVersion"], json!("1.0.0"));
    let versions: Vec<&str> = v["supportedVersions"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(versions, ["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"]);
    // With debug logging on, stdout still holds exactly one JSON document.
    let dir = TempDir::new().unwrap();
    let mut conf = v4_pool(&dir, "10.14.0.0/24");
    conf["ipam"]["log_level"] = json!("debug");
    let reply = ipam("ADD", "c1", "eth0", &conf);
    reply.ok();
    assert!(!reply.stderr.is_empty(), "debug logs go to stderr");
}
