//! End-to-end tests of usage, gc (`--valid`, `--dry-run`, `--from-runtime`), check,
//! import/export and whereabouts import, each against SQLite and, under
//! `scripts/with-servers`, PostgreSQL and etcd; completions and the man page.

mod common;

use common::backends::{Backend, backends};
use common::{Env, export_doc};

const SET: &str = "10.9.0.0/24[10.9.0.1-10.9.0.254]";

/// A store holding three addresses of network `blue` (10.9.0.0/24, defined by a conflist).
fn blue() -> Env {
    let env = Env::new();
    std::fs::write(
        env.conf_dir().join("10-blue.conflist"),
        common::bridge_conflist("blue", "10.9.0.0/24", "10.9.0.1", &env.db()),
    )
    .unwrap();
    let file = env.file("blue.json", &blue_doc());
    env.ctl(&["import", file.to_str().unwrap()]).ok();
    env
}

/// [`blue`] on every backend: `test` names the databases.
fn blue_everywhere(test: &str) -> Vec<Backend> {
    let all = backends(test);
    for b in &all {
        let conflist = common::bridge_conflist(
            "blue",
            "10.9.0.0/24",
            "10.9.0.1",
            &b.dir.path().join("unused.db"),
        );
        std::fs::write(b.conf_dir().join("10-blue.conflist"), conflist).unwrap();
        let file = b.file("blue.json", &blue_doc());
        b.ctl(&["import", file.to_str().unwrap()]).ok();
    }
    all
}

/// The export of `blue`'s three allocations.
fn blue_doc() -> String {
    export_doc(
        "blue",
        SET,
        &[
            ("c1", "10.9.0.5", Some("default/web-1")),
            ("c2", "10.9.0.70", None),
            ("c3", "10.9.0.71", Some("default/web-3")),
        ],
    )
}

#[test]
fn usage_counts_per_pool_and_block() {
    for env in blue_everywhere("usage") {
        let label = env.label;
        eprintln!("{label}");
        let v = env.ctl(&["-o", "json", "usage"]).json();
        let pool = &v[0]["pools"][0];
        assert_eq!(v[0]["network"], "blue");
        assert_eq!(
            (
                pool["size"].as_u64(),
                pool["allocated"].as_u64(),
                pool["free"].as_u64()
            ),
            (Some(253), Some(3), Some(250))
        );
        let blocks = pool["blocks"].as_array().unwrap();
        assert_eq!(blocks.len(), 4);
        assert_eq!(blocks[1]["cidr"], "10.9.0.64/26");
        assert_eq!(blocks[1]["allocated"], 2);
        let table = env.ctl(&["usage", "blue"]);
        let text = table.ok();
        assert!(
            text.lines()
                .next()
                .unwrap()
                .starts_with("NETWORK  POOL/BLOCK"),
            "{text}"
        );
        assert!(text.contains("[#"), "{text}");
        assert_eq!(text.lines().count(), 6, "{text}");
        let err = env.ctl(&["usage", "nope"]).fails(2).to_string();
        assert!(err.contains("\"nope\" is not defined"), "{err}");
    }
}

/// `blue` with c1, c2 claimed on node-a, c3 on node-b and c4 imported with no node.
fn blue_on_nodes(test: &str) -> Vec<Backend> {
    let all = blue_everywhere(test);
    for b in &all {
        let mut doc: serde_json::Value = serde_json::from_str(&export_doc(
            "blue",
            SET,
            &[
                ("c1", "10.9.0.5", None),
                ("c2", "10.9.0.70", None),
                ("c3", "10.9.0.71", None),
                ("c4", "10.9.0.72", None),
            ],
        ))
        .unwrap();
        for (row, node) in ["node-a", "node-a", "node-b", ""].iter().enumerate() {
            if !node.is_empty() {
                doc["allocations"][row]["node"] = serde_json::json!(node);
            }
        }
        // Replace the three imported by blue_everywhere (no node) with these.
        let empty = b.file("empty.json", "[]");
        b.ctl(&[
            "gc",
            "blue",
            "--valid",
            empty.to_str().unwrap(),
            "--allow-empty",
            "--all-nodes",
            "--yes",
        ])
        .ok();
        let file = b.file("nodes.json", &doc.to_string());
        b.ctl(&["import", file.to_str().unwrap()]).ok();
    }
    all
}

fn holders(env: &Backend) -> Vec<String> {
    let v = env.ctl(&["-o", "json", "export", "blue"]).json();
    let mut held: Vec<String> = v["allocations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["container_id"].as_str().unwrap().to_string())
        .collect();
    held.sort();
    held
}

#[test]
fn gc_is_scoped_to_one_node_by_default() {
    for env in blue_on_nodes("gc_node") {
        let label = env.label;
        eprintln!("{label}");
        let valid = env.file("valid.json", r#"[{"containerID":"c1","ifname":"eth0"}]"#);
        let valid = valid.to_str().unwrap();
        let dry = env
            .ctl(&[
                "-o",
                "json",
                "gc",
                "blue",
                "--valid",
                valid,
                "--node",
                "node-a",
                "--dry-run",
            ])
            .json();
        let ips: Vec<&str> = dry["released"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["ip"].as_str().unwrap())
            .collect();
        assert_eq!(ips, ["10.9.0.70"], "only node-a's stale c2");
        assert_eq!(dry["scope"]["nodes"]["node"], "node-a");
        assert_eq!(holders(&env).len(), 4, "the dry run released nothing");
        let real = env.ctl(&["gc", "blue", "--valid", valid, "--node", "node-a"]);
        assert!(real.ok().contains("released 1 address(es)"), "{real:#?}");
        assert_eq!(holders(&env), ["c1", "c3", "c4"]);
        // This host is none of those nodes: its GC releases nothing at all.
        let empty = env.file("empty.json", "[]");
        env.ctl(&[
            "gc",
            "blue",
            "--valid",
            empty.to_str().unwrap(),
            "--allow-empty",
        ])
        .ok();
        assert_eq!(holders(&env), ["c1", "c3", "c4"]);
    }
}

#[test]
fn gc_beyond_one_node_says_what_it_touches_and_needs_yes() {
    for env in blue_on_nodes("gc_all") {
        let label = env.label;
        eprintln!("{label}");
        let valid = env.file("valid.json", r#"[{"containerID":"c1","ifname":"eth0"}]"#);
        let valid = valid.to_str().unwrap();
        let refused = env.ctl(&["gc", "blue", "--valid", valid, "--all-nodes"]);
        assert_eq!(refused.code, 2, "{refused:#?}");
        assert!(refused.stderr.contains("--yes"), "{refused:#?}");
        assert!(
            refused.stderr.contains("node-a: 2")
                && refused.stderr.contains("node-b: 1")
                && refused.stderr.contains("(no recorded node): 1"),
            "says what it would touch: {refused:#?}"
        );
        assert_eq!(holders(&env).len(), 4, "nothing released without --yes");
        let dry = env
            .ctl(&[
                "-o",
                "json",
                "gc",
                "blue",
                "--valid",
                valid,
                "--all-nodes",
                "--dry-run",
            ])
            .json();
        assert_eq!(dry["released"].as_array().unwrap().len(), 3);
        // Allocations with no recorded node: only by their own explicit flag.
        env.ctl(&["gc", "blue", "--valid", valid, "--unknown-node", "--yes"])
            .ok();
        assert_eq!(holders(&env), ["c1", "c2", "c3"]);
        env.ctl(&["gc", "blue", "--valid", valid, "--all-nodes", "--yes"])
            .ok();
        assert_eq!(holders(&env), ["c1"]);
        // --from-runtime reads one node's cache: never with --all-nodes.
        let cache = env.dir.path().join("cni");
        assert_eq!(
            env.ctl(&[
                "gc",
                "blue",
                "--from-runtime",
                cache.to_str().unwrap(),
                "--all-nodes"
            ])
            .code,
            2
        );
    }
}

#[test]
fn gc_refuses_an_empty_valid_set_unless_told() {
    for env in blue_on_nodes("gc_empty") {
        let label = env.label;
        eprintln!("{label}");
        let empty = env.file("empty.json", "[]");
        let empty = empty.to_str().unwrap();
        let err = env
            .ctl(&["gc", "blue", "--valid", empty, "--node", "node-a"])
            .fails(2)
            .to_string();
        assert!(err.contains("--allow-empty"), "{err}");
        assert!(
            env.ctl(&["gc", "blue"]).code != 0,
            "a valid set source is required"
        );
        env.ctl(&[
            "gc",
            "blue",
            "--valid",
            empty,
            "--allow-empty",
            "--node",
            "node-a",
        ])
        .ok();
        assert_eq!(holders(&env), ["c3", "c4"], "node-a's, and only node-a's");
    }
}

#[test]
fn gc_from_a_libcni_cache_is_scoped_to_its_node() {
    for env in blue_on_nodes("gc_runtime") {
        let label = env.label;
        eprintln!("{label}");
        let results = env.dir.path().join("cni/results");
        std::fs::create_dir_all(&results).unwrap();
        std::fs::write(
            results.join("blue-c1-eth0"),
            r#"{"kind":"cniCacheV1","containerId":"c1","ifName":"eth0","networkName":"blue"}"#,
        )
        .unwrap();
        let cache = env.dir.path().join("cni");
        env.ctl(&[
            "gc",
            "blue",
            "--from-runtime",
            cache.to_str().unwrap(),
            "--node",
            "node-a",
        ])
        .ok();
        assert_eq!(
            holders(&env),
            ["c1", "c3", "c4"],
            "node-b's c3 and c4 untouched"
        );
    }
}

#[test]
fn check_passes_clean_stores_and_fails_misplaced_addresses() {
    for env in blue_everywhere("check") {
        let label = env.label;
        eprintln!("{label}");
        let ok = env.ctl(&["check"]);
        assert!(
            ok.ok()
                .starts_with("OK: 1 network(s), 3 allocation(s), 0 problem(s)"),
            "{ok:#?}"
        );
        // An address on the gateway, recorded through an import of a foreign export.
        let doc = export_doc("blue", SET, &[("c9", "10.9.0.1", None)]);
        let file = env.file("bad.json", &doc);
        env.ctl(&["import", file.to_str().unwrap()]).ok();
        let bad = env.ctl(&["check"]);
        assert_eq!(bad.code, 1, "{bad:#?}");
        assert!(
            bad.stdout.contains("the gateway of 10.9.0.0/24"),
            "{bad:#?}"
        );
        assert!(bad.stdout.contains("FAILED"), "{bad:#?}");
        let v: serde_json::Value =
            serde_json::from_str(&env.ctl(&["-o", "json", "check"]).stdout).unwrap();
        assert_eq!(v["problems"][0]["holder"], "c9/eth0");
    }
}

#[test]
fn export_import_round_trip_between_stores() {
    let env = blue();
    let first = env.ctl(&["-o", "yaml", "export", "blue"]);
    let dump = env.file("dump.yaml", first.ok());
    let other = Env::new();
    std::fs::copy(
        env.conf_dir().join("10-blue.conflist"),
        other.conf_dir().join("10-blue.conflist"),
    )
    .unwrap();
    other.ctl(&["import", dump.to_str().unwrap()]).ok();
    let a = env.ctl(&["-o", "json", "export", "blue"]).json();
    let b = other.ctl(&["-o", "json", "export", "blue"]).json();
    let strip = |v: &serde_json::Value| -> Vec<serde_json::Value> {
        v["allocations"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| {
                let mut a = a.clone();
                a.as_object_mut().unwrap().remove("created_at");
                a
            })
            .collect()
    };
    assert_eq!(strip(&a), strip(&b));
    assert_eq!(strip(&a).len(), 3);
    // Importing again changes nothing; importing a conflicting holder fails with status 1.
    other.ctl(&["import", dump.to_str().unwrap()]).ok();
    let clash = other.file(
        "clash.json",
        &export_doc("blue", SET, &[("zz", "10.9.0.5", None)]),
    );
    let out = other.ctl(&["import", clash.to_str().unwrap()]);
    assert_eq!(out.code, 1, "{out:#?}");
    assert!(
        out.stdout.contains("conflict: 10.9.0.5 for zz/eth0"),
        "{out:#?}"
    );
    // An export to a file.
    let path = env.dir.path().join("out.json");
    env.ctl(&["export", "blue", "-f", path.to_str().unwrap()])
        .ok();
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    assert_eq!(v["kind"], "PlexusExport");
}

#[test]
fn whereabouts_ippool_import() {
    for env in backends("whereabouts") {
        let label = env.label;
        let conf = env.file(
            "wb.conf",
            r#"{"cniVersion":"0.4.0","name":"wbnet","type":"macvlan","master":"eth0",
                "ipam":{"type":"whereabouts","range":"10.40.0.0/16","range_start":"10.40.0.10",
                        "kubernetes":{"kubeconfig":"/x"}}}"#,
        );
        let pools = env.file(
            "pools.yaml",
            "apiVersion: whereabouts.cni.cncf.io/v1alpha1
kind: IPPool
metadata: {name: 10.40.0.0-16, namespace: kube-system}
spec:
  range: 10.40.0.0/16
  allocations:
    \"10\": {id: aaa, podref: default/one, ifname: net1}
    \"266\": {id: bbb, podref: default/two, ifname: net1}
---
apiVersion: whereabouts.cni.cncf.io/v1alpha1
kind: OverlappingRangeIPReservation
metadata: {name: 10.40.0.10, namespace: kube-system}
spec: {podref: default/one, ifname: net1}
---
apiVersion: whereabouts.cni.cncf.io/v1alpha1
kind: OverlappingRangeIPReservation
metadata: {name: 10.40.9.9, namespace: kube-system}
spec: {podref: default/leaked}
",
        );
        let out = env.ctl(&[
            "import",
            "--from",
            "whereabouts",
            "--conf",
            conf.to_str().unwrap(),
            pools.to_str().unwrap(),
        ]);
        let text = out.ok();
        // Overlap protection on (whereabouts' default): the addresses go to the network
        // every whereabouts configuration shares, which the configurations define.
        assert!(
            text.contains("imported 2 address(es), 0 network(s)")
                && text.contains("network whereabouts.cluster is shared"),
            "{label}: {out:#?}"
        );
        assert!(
            text.contains("10.40.9.9 for pod \"default/leaked\" has no IPPool allocation"),
            "{label}: {out:#?}"
        );
        // A second import conflicts with nothing (the check below still counts 2).
        let again = env.ctl(&[
            "import",
            "--from",
            "whereabouts",
            "--conf",
            conf.to_str().unwrap(),
            pools.to_str().unwrap(),
        ]);
        assert!(
            again.ok().contains("; 0 conflict(s)"),
            "{label}: {again:#?}"
        );
        // With the configuration installed (migrated to plexus-ipam), its name finds the
        // shared network.
        let migrated = std::fs::read_to_string(&conf)
            .unwrap()
            .replace(r#""type":"whereabouts""#, r#""type":"plexus-ipam""#);
        std::fs::write(env.conf_dir().join("10-wbnet.conf"), migrated).unwrap();
        let check = env.ctl(&["check", "wbnet"]);
        assert!(
            check.ok().starts_with("OK: 1 network(s), 2 allocation(s)"),
            "{label}: {check:#?}"
        );
        let v = env.ctl(&["-o", "json", "export", "wbnet"]).json();
        let rows: Vec<(String, String, String)> = v["allocations"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| {
                (
                    a["ip"].as_str().unwrap().to_string(),
                    a["owner"]["pod_name"].as_str().unwrap().to_string(),
                    a["range_set"].as_str().unwrap().to_string(),
                )
            })
            .collect();
        let set = "wbnet|10.40.0.0/16[10.40.0.10-10.40.255.254]";
        assert_eq!(
            rows,
            [
                ("10.40.0.10".to_string(), "one".to_string(), set.to_string()),
                ("10.40.1.10".to_string(), "two".to_string(), set.to_string())
            ]
        );
        let usage = env.ctl(&["-o", "json", "usage", "wbnet"]).json();
        assert_eq!(usage[0]["network"], "whereabouts.cluster", "{usage}");
        assert_eq!(usage[0]["pools"][0]["allocated"], 2, "{usage}");
        // Without a network name each pool becomes a network named after it.
        let out = env.ctl(&["import", "--from", "whereabouts", pools.to_str().unwrap()]);
        assert!(
            out.ok().contains("imported 2 address(es), 1 network(s)"),
            "{out:#?}"
        );
        let held = env.ctl(&["showalloc", "10.40.0.0-16"]);
        assert!(
            held.ok()
                .contains("10.40.1.10 : allocated (Pod: default/two)"),
            "{held:#?}"
        );
    }
}

#[test]
fn completions_and_man_page_come_from_the_parser() {
    let env = Env::new();
    let bash = env.ctl(&["completions", "bash"]);
    assert!(
        bash.ok().contains("showalloc") && bash.stdout.contains("--cidr"),
        "{bash:#?}"
    );
    let zsh = env.ctl(&["completions", "zsh"]);
    assert!(zsh.ok().contains("#compdef plexusctl"));
    let fish = env.ctl(&["completions", "fish"]);
    assert!(fish.ok().contains("complete -c plexusctl"));
    let man = env.ctl(&["man"]);
    let page = man.ok();
    assert!(
        page.starts_with(".ie") || page.contains(".TH plexusctl"),
        "{page}"
    );
    assert!(
        page.contains("plexusctl showalloc") && page.contains("\\-\\-dry\\-run"),
        "{page}"
    );
}

#[test]
fn settings_file_and_env_select_the_store() {
    let env = blue();
    let settings = env.file(
        "plexusctl.yaml",
        &format!(
            "store: {}\ncni_conf_dir: {}\noutput: json\n",
            env.db().display(),
            env.conf_dir().display()
        ),
    );
    let out = common::run(
        std::process::Command::new(common::binary())
            .args(["--config", settings.to_str().unwrap(), "usage", "blue"])
            .env_remove("PLEXUS_STORE"),
        "",
    );
    let v: serde_json::Value = serde_json::from_str(out.ok()).unwrap();
    assert_eq!(v[0]["pools"][0]["allocated"], 3);
    let out = common::run(
        std::process::Command::new(common::binary())
            .args([
                "--cni-conf-dir",
                env.conf_dir().to_str().unwrap(),
                "-o",
                "json",
                "usage",
                "blue",
            ])
            .env("PLEXUS_STORE", env.db()),
        "",
    );
    let v: serde_json::Value = serde_json::from_str(out.ok()).unwrap();
    assert_eq!(v[0]["pools"][0]["allocated"], 3);
    let bad = env.file("bad.yaml", "stroe: x\n");
    let out = common::run(
        std::process::Command::new(common::binary()).args([
            "--config",
            bad.to_str().unwrap(),
            "usage",
        ]),
        "",
    );
    assert_eq!(out.code, 2, "{out:#?}");
    assert!(out.stderr.contains("stroe"), "{out:#?}");
}

#[test]
fn whereabouts_etcd_import_is_used_as_documented() {
    let env = Env::new();
    // No FILE without --from whereabouts-etcd; no FILE with it; --conf required.
    let err = env.ctl(&["import"]).fails(2).to_string();
    assert!(err.contains("name at least one FILE"), "{err}");
    let conf = env.file(
        "wb.conf",
        r#"{"cniVersion":"0.3.1","name":"wb","type":"macvlan",
            "ipam":{"type":"whereabouts","range":"10.41.0.0/24","etcd_host":"127.0.0.1:1"}}"#,
    );
    let err = env
        .ctl(&[
            "import",
            "--from",
            "whereabouts-etcd",
            conf.to_str().unwrap(),
        ])
        .fails(2)
        .to_string();
    assert!(err.contains("give --conf only"), "{err}");
    let err = env
        .ctl(&["import", "--from", "whereabouts-etcd"])
        .fails(2)
        .to_string();
    assert!(err.contains("needs --conf FILE"), "{err}");
    // A configuration without whereabouts' etcd names nothing to read.
    let k8s = env.file(
        "k8s.conf",
        r#"{"name":"wb","ipam":{"type":"whereabouts","range":"10.41.0.0/24",
            "kubernetes":{"kubeconfig":"/x"}}}"#,
    );
    let err = env
        .ctl(&[
            "import",
            "--from",
            "whereabouts-etcd",
            "--conf",
            k8s.to_str().unwrap(),
        ])
        .fails(2)
        .to_string();
    assert!(err.contains("names no whereabouts etcd"), "{err}");
}
