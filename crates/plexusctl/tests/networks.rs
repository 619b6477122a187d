//! End-to-end tests of `network create|apply|list|show|validate|delete`, `why IP|POD` and
//! the lossless export/import round trip (networks, allocations with details, history),
//! each against SQLite and, under `scripts/with-servers`, PostgreSQL and etcd (skipped with
//! a message otherwise; a failure when `PLEXUS_REQUIRE_SERVERS=1`).

mod common;

use common::backends::backends;
use serde_json::{Value, json};

const BLUE: &str = "\
apiVersion: plexus.io/v1
kind: ClusterNetwork
metadata: {name: blue}
spec:
  NetworkID: blue
  NetworkType: ipvlan
  Options:
    host_device: eth1
    cidr: 10.88.0.0/24
    allocation_pool: {start: 10.88.0.10, end: 10.88.0.99}
    routes: {10.99.0.0/16: 10.88.0.1}
---
apiVersion: danm.k8s.io/v1
kind: DanmNet
metadata: {name: red, namespace: prod}
spec:
  NetworkID: red
  NetworkType: ipvlan
  Options: {host_device: eth2, net6: 'fd00:88::/64', allocation_pool_v6: {cidr: 'fd00:88::/120'}}
";

const BROKEN: &str = "\
apiVersion: plexus.io/v1
kind: ClusterNetwork
metadata: {name: broken}
spec:
  NetworkID: broken
  Options: {host_device: eth1, cidr: 10.88.0.0/24, vlan: 5000}
";

const SET: &str = "10.88.0.0/24[10.88.0.10-10.88.0.99]";

/// An export holding allocations of `blue` (one with endpoint details).
fn allocations_doc() -> String {
    let owner = |pod: &str| json!({"pod_namespace": "prod", "pod_name": pod, "pod_uid": format!("uid-{pod}")});
    let mut with_details = owner("web-1");
    with_details["details"] = json!({"ifname": "net1", "mac": "02:42:0a:58:00:0a"});
    json!({"kind": "PlexusExport", "version": 1, "allocations": [
        {"network": "blue", "container_id": "c1", "ifname": "net1", "ip": "10.88.0.10",
         "range_set": SET, "owner": with_details, "created_at": 1_700_000_000, "node": "n1"},
        {"network": "blue", "container_id": "c2", "ifname": "net1", "ip": "10.88.0.11",
         "range_set": SET, "owner": owner("web-2"), "created_at": 1_700_000_100, "node": "n2"}
    ]})
    .to_string()
}

#[test]
fn network_lifecycle_on_every_backend() {
    for b in backends("network_lifecycle") {
        let label = b.label;
        let good = b.file("nets.yaml", BLUE);
        let broken = b.file("broken.yaml", BROKEN);
        let good = good.to_str().unwrap();
        let out = b.ctl(&["network", "validate", "-f", good]);
        assert!(out.ok().contains("blue: valid"), "{label}: {out:?}");
        let out = b.ctl(&["network", "validate", "-f", broken.to_str().unwrap()]);
        assert_eq!(out.code, 1, "{label}: {out:?}");
        assert!(
            out.stdout.contains("broken: INVALID") && out.stdout.contains("vlan"),
            "{out:?}"
        );
        // validate, create and apply agree on an invalid file: the same lines, exit
        // status 1, and nothing is stored.
        for verb in ["create", "apply"] {
            let refused = b.ctl(&["network", verb, "-f", broken.to_str().unwrap()]);
            assert_eq!(refused.code, 1, "{label} {verb}: {refused:?}");
            assert_eq!(refused.stdout, out.stdout, "{label} {verb}");
            assert!(refused.stderr.contains("nothing stored"), "{refused:?}");
        }
        // A file that cannot be read is "could not run" for all three.
        for verb in ["validate", "create", "apply"] {
            let missing = b.ctl(&["network", verb, "-f", "/nonexistent/nets.yaml"]);
            assert_eq!(missing.code, 2, "{label} {verb}: {missing:?}");
        }

        let created = b.ctl(&["network", "create", "-f", good]);
        let text = created.ok();
        assert!(
            text.contains("blue") && text.contains("created"),
            "{label}: {text}"
        );
        assert!(
            text.contains("prod/red"),
            "namespaced kinds by namespace/name: {text}"
        );
        let again = b.ctl(&["network", "create", "-f", good]);
        assert_eq!(again.code, 1, "{label}: {again:?}");
        assert!(
            again.stderr.contains("exists already"),
            "{label}: {again:?}"
        );

        let changed = BLUE.replace("end: 10.88.0.99", "end: 10.88.0.120");
        let changed = b.file("changed.yaml", &changed);
        let applied = b.ctl(&[
            "-o",
            "json",
            "network",
            "apply",
            "-f",
            changed.to_str().unwrap(),
        ]);
        let applied = applied.json();
        assert_eq!(applied[0]["revision"], 2, "{label}: {applied}");
        assert_eq!(applied[0]["created"], false);

        let doc = b.file("allocs.json", &allocations_doc());
        b.ctl(&["import", doc.to_str().unwrap()]).ok();
        let list = b.ctl(&["-o", "json", "network", "list"]).json();
        let names: Vec<&str> = list
            .as_array()
            .unwrap()
            .iter()
            .map(|n| n["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["blue", "prod/red"], "{label}");
        assert_eq!(list[0]["allocated"], 2, "{label}: {list}");
        assert_eq!(
            list[0]["pools"],
            json!(["10.88.0.0/24[10.88.0.10-10.88.0.120]"])
        );
        let table = b.ctl(&["network", "list"]);
        assert!(table.ok().starts_with("NETWORK"), "{table:?}");

        let shown = b.ctl(&["-o", "json", "network", "show", "blue"]).json();
        assert_eq!(shown["revision"], 2);
        assert_eq!(
            shown["definition"]["spec"]["Options"]["allocation_pool"]["end"],
            "10.88.0.120"
        );
        let shown = b.ctl(&["network", "show", "prod/red"]);
        assert!(shown.ok().contains("fd00:88::/120"), "{label}: {shown:?}");
        // showalloc and usage know stored networks.
        let alloc = b.ctl(&["showalloc", "blue"]);
        assert!(
            alloc
                .ok()
                .contains("10.88.0.10 : allocated (Pod: prod/web-1)"),
            "{label}: {alloc:?}"
        );

        let refused = b.ctl(&["network", "delete", "blue"]);
        assert_eq!(refused.code, 1, "{label}: {refused:?}");
        assert!(
            refused.stderr.contains("still holds 2 address(es)"),
            "{refused:?}"
        );
        let forced = b.ctl(&["network", "delete", "blue", "--force"]);
        assert!(
            forced.ok().contains("2 address(es) stay allocated"),
            "{label}"
        );
        b.ctl(&["network", "delete", "prod/red"]).ok();
        assert_eq!(b.ctl(&["network", "show", "blue"]).code, 2);
        assert_eq!(b.ctl(&["network", "delete", "blue"]).code, 2);
        // The force-deleted network's addresses are still listed, without a definition.
        let left = b.ctl(&["-o", "json", "network", "list"]).json();
        assert_eq!(
            left,
            json!([{"name": "blue", "kind": null, "source": "none", "pools": [],
                    "allocated": 2, "problem": "no definition: its addresses stay held \
                    (check lists them, gc --orphaned releases them)"}]),
            "{label}"
        );
    }
}

#[test]
fn why_tells_holders_history_and_pod_attachments() {
    for b in backends("why") {
        let label = b.label;
        let nets = b.file("nets.yaml", BLUE);
        b.ctl(&["network", "create", "-f", nets.to_str().unwrap()])
            .ok();
        let doc = b.file("allocs.json", &allocations_doc());
        b.ctl(&["import", doc.to_str().unwrap()]).ok();
        let valid = b.file("valid.json", r#"[{"containerID":"c2","ifname":"net1"}]"#);
        // The allocations were claimed on node n1: its GC releases them.
        b.ctl(&[
            "gc",
            "blue",
            "--valid",
            valid.to_str().unwrap(),
            "--node",
            "n1",
        ])
        .ok();

        let ip = b.ctl(&["-o", "json", "why", "10.88.0.10"]).json();
        assert_eq!(ip[0]["network"], "blue", "{label}: {ip}");
        assert_eq!(ip[0]["holder"], Value::Null, "released by gc");
        let kinds: Vec<&str> = ip[0]["history"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["kind"].as_str().unwrap())
            .collect();
        assert_eq!(kinds, ["claim", "release"], "{label}: {ip}");
        assert_eq!(
            ip[0]["history"][0]["at"], "2023-11-14T22:13:20Z",
            "claims keep the imported time (RFC 3339, as every time plexusctl prints)"
        );
        let text = b.ctl(&["why", "10.88.0.10"]);
        let text = text.ok();
        assert!(
            text.contains("free now") && text.contains("2023-11-14T22:13:20Z"),
            "{label}: {text}"
        );

        let held = b.ctl(&["why", "10.88.0.11", "--network", "blue"]);
        assert!(
            held.ok()
                .contains("held by container c2 interface net1 (pod prod/web-2) on node n2"),
            "{label}: {held:?}"
        );

        let pod = b.ctl(&["-o", "json", "why", "prod/web-2"]).json();
        assert_eq!(
            pod["attachments"],
            json!([{"network": "blue", "container_id": "c2", "ifname": "net1", "addresses": ["10.88.0.11"], "details": null}]),
            "{label}"
        );
        let gone = b.ctl(&["-o", "json", "why", "--uid", "uid-web-1"]).json();
        assert_eq!(gone["attachments"], json!([]), "{label}");
        assert_eq!(gone["history"].as_array().unwrap().len(), 2);
        let none = b.ctl(&["why", "10.200.0.1"]);
        assert_eq!(none.code, 2, "an address of no network: {none:?}");
    }
}

/// Networks, allocations (with details) and history survive export from every backend and
/// import into every backend (each ordered pair, a store into a fresh one of its own kind
/// too), and a second import changes nothing.
#[test]
fn export_import_round_trip_between_backends() {
    let kinds = backends("round_trip_kinds").len();
    // seq is the store's position, assigned anew by every store.
    let comparable = |v: &Value| {
        let mut v = v.clone();
        for e in v["history"].as_array_mut().unwrap() {
            e.as_object_mut().unwrap().remove("seq");
        }
        v
    };
    let mut pairs = 0;
    for from in 0..kinds {
        let sources = backends(&format!("round_trip_from_{from}"));
        let source = &sources[from];
        let nets = source.file("nets.yaml", BLUE);
        source
            .ctl(&["network", "create", "-f", nets.to_str().unwrap()])
            .ok();
        let doc = source.file("allocs.json", &allocations_doc());
        source.ctl(&["import", doc.to_str().unwrap()]).ok();
        let valid = source.file("valid.json", r#"[{"containerID":"c1","ifname":"net1"}]"#);
        source
            .ctl(&[
                "gc",
                "blue",
                "--valid",
                valid.to_str().unwrap(),
                "--all-nodes",
                "--yes",
            ])
            .ok();
        let exported = source.ctl(&["-o", "json", "export"]).json();
        let from_label = source.label;
        assert_eq!(exported["version"], 3);
        assert_eq!(exported["networks"].as_array().unwrap().len(), 2);
        assert_eq!(
            exported["allocations"][0]["owner"]["details"]["mac"], "02:42:0a:58:00:0a",
            "{from_label}"
        );
        assert_eq!(
            exported["history"].as_array().unwrap().len(),
            3,
            "{from_label}: {exported}"
        );
        let dump = source.file("dump.json", &exported.to_string());
        for target in backends(&format!("round_trip_to_{from}")) {
            let label = format!("{from_label} -> {}", target.label);
            let imported = target.ctl(&["import", dump.to_str().unwrap()]);
            assert!(
                imported
                    .ok()
                    .contains("1 address(es), 2 network(s) and 3 history event(s)"),
                "{label}: {imported:?}"
            );
            let back = target.ctl(&["-o", "json", "export"]).json();
            assert_eq!(comparable(&back), comparable(&exported), "{label}");
            let again = target.ctl(&["import", dump.to_str().unwrap()]);
            assert!(again.ok().contains("not restored"), "{label}: {again:?}");
            let twice = target.ctl(&["-o", "json", "export"]).json();
            assert_eq!(
                twice["history"].as_array().unwrap().len(),
                3,
                "{label}: history not doubled"
            );
            pairs += 1;
        }
    }
    assert_eq!(pairs, kinds * kinds);
}
