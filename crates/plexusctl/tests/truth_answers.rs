//! Issue 23, "the tools tell the truth" — the answers: an unknown network is an error
//! suggesting the nearest name (never "free" or "released 0"), addresses of a deleted
//! network are reported and released on request, `network apply` neither strands held
//! addresses nor bumps an unchanged revision, times are RFC 3339 and `kind` is the object
//! kind, showalloc tells about the other family, usage rows stay inside their pool. Each
//! against SQLite and, under `scripts/with-servers`, PostgreSQL and etcd.
//!
//! The IPv6 prefix of a stored network (item 1) is tested through both plugins in
//! `crates/plexus/tests/stored_prefix.rs` and `crates/plexus-ipam/tests/stored_network.rs`.

mod common;

use common::backends::{Backend, backends};
use common::stored::{BLUE, claim, object};
use serde_json::{Value, json};

/// `b` with `blue` stored and two containers holding an address of each family on node-a.
fn blue_held(b: &Backend) -> Vec<std::net::IpAddr> {
    let file = b.file("blue.yaml", BLUE);
    b.ctl(&["network", "create", "-f", file.to_str().unwrap()])
        .ok();
    claim(
        &b.store_json(),
        "blue",
        &object(BLUE),
        &["c1", "c2"],
        "node-a",
    )
}

#[test]
fn unknown_networks_are_errors_that_suggest_the_nearest_name() {
    for b in backends("truth_unknown") {
        let label = b.label;
        blue_held(&b);
        let valid = b.file("valid.json", "[]");
        let valid = valid.to_str().unwrap();
        let cases: Vec<Vec<&str>> = vec![
            vec!["showalloc", "bleu"],
            vec!["showalloc", "bleu", "--cidr", "10.91.0.0/24"],
            vec!["usage", "bleu"],
            vec!["check", "bleu"],
            vec!["export", "bleu"],
            vec!["why", "10.91.0.10", "--network", "bleu"],
            vec!["gc", "bleu", "--dry-run", "--allow-empty", "--valid", valid],
            vec!["gc", "bleu", "--allow-empty", "--valid", valid],
            vec!["gc", "bleu", "--orphaned"],
            vec!["network", "show", "bleu"],
            vec!["network", "delete", "bleu"],
        ];
        for args in cases {
            let run = b.ctl(&args);
            let err = run.fails(2);
            assert!(
                err.contains("\"bleu\" is not defined") && err.contains("did you mean \"blue\"?"),
                "{label} {args:?}: {run:#?}"
            );
            assert!(run.stdout.is_empty(), "{label} {args:?}: {run:#?}");
        }
        // A name close to nothing gets no suggestion, and still fails.
        let run = b.ctl(&["export", "nosuch"]);
        assert!(!run.fails(2).contains("did you mean"), "{label}: {run:#?}");
        // exec looks names up in the CNI configuration directory, the same way.
        std::fs::write(
            b.conf_dir().join("10-blue.conflist"),
            common::bridge_conflist_in("blue", "10.9.0.0/24", "10.9.0.1", b.store_json()),
        )
        .unwrap();
        let run = b.ctl(&["exec", "status", "bleu"]);
        assert!(
            run.fails(2).contains("did you mean \"blue\"?"),
            "{label}: {run:#?}"
        );
    }
}

#[test]
fn why_says_free_only_for_addresses_the_pool_can_hand_out() {
    for b in backends("truth_why") {
        let label = b.label;
        let held = blue_held(&b);
        let why = |ip: &str| b.ctl(&["why", ip, "--network", "blue"]).ok().to_string();
        let text = why(&held[0].to_string());
        assert!(text.contains("held by container c1"), "{label}: {text}");
        assert!(why("10.91.0.50").contains("free now"), "{label}");
        let text = why("10.91.0.200");
        assert!(
            text.contains("not held; outside the pool's start-end range") && !text.contains("free"),
            "{label}: {text}"
        );
        let text = why("10.92.0.1");
        assert!(
            text.contains("not held; outside every pool") && !text.contains("free"),
            "{label}: {text}"
        );
        let text = why("10.91.0.0");
        assert!(text.contains("the network address"), "{label}: {text}");
        // Without --network, an address in no pool is said to be so (not "free").
        let run = b.ctl(&["why", "10.92.0.1"]);
        assert!(
            run.fails(2).contains("outside every pool"),
            "{label}: {run:#?}"
        );
        let json = b.ctl(&["-o", "json", "why", "10.91.0.200", "--network", "blue"]);
        let json = json.json();
        assert_eq!(json[0]["holder"], Value::Null);
        assert!(
            json[0]["unheld"].as_str().unwrap().contains("outside"),
            "{json}"
        );
    }
}

#[test]
fn addresses_of_a_deleted_network_are_reported_and_released_on_request() {
    for b in backends("truth_orphans") {
        let label = b.label;
        let held = blue_held(&b);
        assert_eq!(b.ctl(&["check"]).code, 0, "{label}: clean before");
        let deleted = b.ctl(&["network", "delete", "blue", "--force"]);
        assert!(
            deleted.ok().contains("4 address(es) stay allocated"),
            "{label}"
        );

        let check = b.ctl(&["check"]);
        assert_eq!(check.code, 1, "{label}: {check:#?}");
        assert!(
            check.stdout.contains("4 problem(s)")
                && check
                    .stdout
                    .contains("held in a network without a definition"),
            "{label}: {check:#?}"
        );
        assert_eq!(b.ctl(&["check", "blue"]).code, 1, "{label}");
        let list = b.ctl(&["-o", "json", "network", "list"]).json();
        assert_eq!(list[0]["name"], "blue", "{label}: {list}");
        assert_eq!(list[0]["source"], "none");
        assert_eq!(list[0]["allocated"], 4);
        let usage = b.ctl(&["usage"]);
        assert!(
            usage.ok().contains("blue     (no definition)"),
            "{label}: {usage:#?}"
        );
        let why = b.ctl(&["why", &held[0].to_string()]);
        assert!(why.ok().contains("held by container c1"), "{label}");
        let export = b.ctl(&["-o", "json", "export"]).json();
        assert_eq!(
            export["allocations"].as_array().unwrap().len(),
            4,
            "{label}"
        );
        // A backup of a missing name is an error, never an empty file.
        let backup = b.dir.path().join("backup.json");
        let run = b.ctl(&["export", "bleu", "-f", backup.to_str().unwrap()]);
        assert_eq!(run.code, 2, "{label}: {run:#?}");
        assert!(!backup.exists(), "{label}: no export written");

        let dry = b.ctl(&["gc", "blue", "--orphaned", "--dry-run"]);
        assert!(
            dry.ok()
                .contains("blue (no definition): would release 4 address(es)"),
            "{label}: {dry:#?}"
        );
        assert_eq!(
            b.ctl(&["check"]).code,
            1,
            "{label}: the dry run released nothing"
        );
        let released = b.ctl(&["gc", "blue", "--orphaned"]);
        assert!(
            released.ok().contains("released 4 address(es)"),
            "{label}: {released:#?}"
        );
        assert!(b.ctl(&["check"]).ok().starts_with("OK"), "{label}");
        assert_eq!(b.ctl(&["-o", "json", "network", "list"]).json(), json!([]));
        // --orphaned refuses a network that is defined.
        blue_held(&b);
        let run = b.ctl(&["gc", "blue", "--orphaned"]);
        assert!(run.fails(2).contains("is defined"), "{label}: {run:#?}");
    }
}

#[test]
fn apply_refuses_to_strand_held_addresses_and_leaves_unchanged_networks_alone() {
    for b in backends("truth_apply") {
        let label = b.label;
        blue_held(&b);
        let revision = |b: &Backend| {
            b.ctl(&["-o", "json", "network", "show", "blue"]).json()["revision"].clone()
        };
        let same = b.file("same.yaml", BLUE);
        let out = b.ctl(&["network", "apply", "-f", same.to_str().unwrap()]);
        assert!(out.ok().contains("unchanged"), "{label}: {out:#?}");
        assert_eq!(
            revision(&b),
            1,
            "{label}: an unchanged apply is no new revision"
        );

        let moved = b.file("moved.yaml", &BLUE.replace("10.91.0", "10.93.0"));
        let moved = moved.to_str().unwrap();
        let dry = b.ctl(&["network", "apply", "--dry-run", "-f", moved]);
        assert_eq!(dry.code, 1, "{label}: {dry:#?}");
        assert!(
            dry.stdout
                .contains("blue: spec.Options.cidr: 10.91.0.0/24 -> 10.93.0.0/24")
                && dry
                    .stdout
                    .contains("2 held address(es) would be left outside"),
            "{label}: {dry:#?}"
        );
        let refused = b.ctl(&["network", "apply", "-f", moved]);
        assert_eq!(refused.code, 1, "{label}: {refused:#?}");
        assert!(refused.stderr.contains("nothing stored"), "{label}");
        assert_eq!(revision(&b), 1, "{label}: refused, so nothing written");
        assert!(b.ctl(&["check"]).ok().starts_with("OK"), "{label}");

        // A change that keeps every held address is applied, and shown field by field.
        let wider = b.file(
            "wider.yaml",
            &BLUE.replace("end: 10.91.0.99", "end: 10.91.0.120"),
        );
        let wider = wider.to_str().unwrap();
        let dry = b.ctl(&["network", "apply", "--dry-run", "-f", wider]);
        let text = dry.ok();
        assert!(
            text.contains("would update")
                && text.contains("allocation_pool.end: 10.91.0.99 -> 10.91.0.120"),
            "{label}: {text}"
        );
        assert_eq!(revision(&b), 1, "{label}: a dry run writes nothing");
        let applied = b
            .ctl(&["-o", "json", "network", "apply", "-f", wider])
            .json();
        assert_eq!(applied[0]["result"], "updated", "{label}: {applied}");
        assert_eq!(revision(&b), 2);

        // --force applies the move; the stranded addresses are then check's problems.
        let forced = b.ctl(&["network", "apply", "--force", "-f", moved]);
        assert!(forced.ok().contains("updated"), "{label}: {forced:#?}");
        assert_eq!(revision(&b), 3);
        assert_eq!(b.ctl(&["check"]).code, 1, "{label}");

        // Importing the same export twice stores its networks once.
        let export = b.dir.path().join("export.json");
        b.ctl(&["export", "-f", export.to_str().unwrap()]).ok();
        b.ctl(&["import", export.to_str().unwrap()]).ok();
        assert_eq!(revision(&b), 3, "{label}: re-import of the same definition");
    }
}

#[test]
fn times_are_rfc_3339_and_kind_is_the_object_kind() {
    let rfc3339 = |v: &Value| {
        let text = v.as_str().unwrap_or_else(|| panic!("not text: {v}"));
        assert!(
            text.len() == 20 && text.ends_with('Z') && text.as_bytes()[10] == b'T',
            "{text}"
        );
    };
    for b in backends("truth_times") {
        let label = b.label;
        let held = blue_held(&b);
        let shown = b.ctl(&["network", "show", "blue"]);
        let text = shown.ok();
        let created = text
            .lines()
            .find_map(|l| l.strip_prefix("Created:   "))
            .unwrap_or_else(|| panic!("{label}: {text}"));
        rfc3339(&json!(created));
        assert!(
            text.contains("Kind:      ClusterNetwork\n"),
            "{label}: {text}"
        );
        let shown = b.ctl(&["-o", "json", "network", "show", "blue"]).json();
        rfc3339(&shown["created_at"]);
        rfc3339(&shown["updated_at"]);
        assert_eq!(shown["kind"], "ClusterNetwork", "{label}: {shown}");
        assert_eq!(shown["source"], "store");
        let yaml = b.ctl(&["-o", "yaml", "network", "list"]);
        assert!(
            yaml.ok().contains("kind: ClusterNetwork\n"),
            "{label}: {yaml:#?}"
        );
        let list = b.ctl(&["-o", "json", "network", "list"]).json();
        rfc3339(&list[0]["updated_at"]);
        assert_eq!(list[0]["kind"], "ClusterNetwork");
        let alloc = b.ctl(&["-o", "json", "showalloc", "blue"]).json();
        assert_eq!(alloc["kind"], "ClusterNetwork", "{label}: {alloc}");
        assert_eq!(alloc["source"], "store");
        let first = &alloc["pools"][0]["addresses"][1];
        assert_eq!(first["status"], "allocated", "{label}: {alloc}");
        rfc3339(&first["created_at"]);
        let why = b.ctl(&["-o", "json", "why", &held[0].to_string()]).json();
        rfc3339(&why[0]["holder"]["created_at"]);
        rfc3339(&why[0]["history"][0]["at"]);
        let export = b.ctl(&["-o", "json", "export"]).json();
        rfc3339(&export["allocations"][0]["created_at"]);
    }
}

#[test]
fn showalloc_tells_of_the_other_family_and_labels_last_addresses_alike() {
    for b in backends("truth_showalloc") {
        let label = b.label;
        blue_held(&b);
        let v4 = b.ctl(&["showalloc", "blue", "--all", "--cidr", "10.91.0.248/29"]);
        assert!(
            v4.stderr.contains("also has IPv6 pool(s) fd91::/120") && v4.stderr.contains("-6"),
            "{label}: {v4:#?}"
        );
        assert!(
            v4.ok()
                .contains("    10.91.0.255 : reserved (broadcast address)"),
            "{label}: {v4:#?}"
        );
        let v6 = b.ctl(&["showalloc", "blue", "-6", "--all", "--cidr", "fd91::f8/125"]);
        assert!(
            v6.stderr.contains("also has IPv4 pool(s)"),
            "{label}: {v6:#?}"
        );
        assert!(
            v6.ok()
                .contains("       fd91::ff : reserved (broadcast address)"),
            "{label}: {v6:#?}"
        );
    }
}

#[test]
fn usage_rows_stay_inside_their_pool() {
    for b in backends("truth_usage") {
        let label = b.label;
        // A /29 pool: the node's /26 block (the default size) is shown as the /29.
        let small = "apiVersion: plexus.io/v1\nkind: ClusterNetwork\nmetadata: {name: small}\n\
                     spec: {NetworkID: small, NetworkType: ipvlan,\n\
                     Options: {host_device: eth1, cidr: 10.94.0.0/29}}\n";
        let file = b.file("small.yaml", small);
        b.ctl(&["network", "create", "-f", file.to_str().unwrap()])
            .ok();
        claim(&b.store_json(), "small", &object(small), &["c1"], "node-a");
        let usage = b.ctl(&["-o", "json", "usage", "small"]).json();
        let pool = &usage[0]["pools"][0];
        assert_eq!(pool["cidr"], "10.94.0.0/29", "{label}: {usage}");
        assert_eq!(
            pool["blocks"][0]["cidr"], "10.94.0.0/29",
            "{label}: {usage}"
        );
        assert_eq!(pool["blocks"][0]["node"], "node-a");

        // Without node blocks the pool is cut into fixed blocks: those entirely outside
        // start..end that hold nothing are not shown (they were size-0 rows).
        let narrow = "apiVersion: plexus.io/v1\nkind: ClusterNetwork\nmetadata: {name: narrow}\n\
                      spec: {NetworkID: narrow, NetworkType: ipvlan, Options: {host_device: eth1,\n\
                      cidr: 10.95.0.0/24, allocation_pool: {start: 10.95.0.10, end: 10.95.0.20}}}\n";
        let file = b.file("narrow.yaml", narrow);
        b.ctl(&["network", "create", "-f", file.to_str().unwrap()])
            .ok();
        let doc = common::export_doc(
            "narrow",
            "10.95.0.0/24[10.95.0.10-10.95.0.20]",
            &[("imported", "10.95.0.15", None)],
        );
        let doc = b.file("narrow.json", &doc);
        b.ctl(&["import", doc.to_str().unwrap()]).ok();
        let usage = b.ctl(&["-o", "json", "usage", "narrow"]).json();
        let rows = usage[0]["pools"][0]["blocks"].as_array().unwrap().clone();
        assert_eq!(
            rows.len(),
            1,
            "{label}: only 10.95.0.0/26 meets the pool: {usage}"
        );
        assert_eq!(rows[0]["cidr"], "10.95.0.0/26");
        assert_eq!(
            (rows[0]["size"].clone(), rows[0]["allocated"].clone()),
            (json!(11), json!(1))
        );

        // With node blocks, an address
        // imported outside every node block (node-a holds 10.91.0.64/26) has a marked row
        // of its own.
        blue_held(&b);
        let usage = b.ctl(&["-o", "json", "usage", "blue"]).json();
        let v4 = &usage[0]["pools"][0];
        let blocks = v4["blocks"].as_array().unwrap();
        assert!(
            blocks.iter().all(|r| r["size"] != 0 || r["allocated"] != 0),
            "{usage}"
        );
        let doc = common::export_doc(
            "blue",
            "10.91.0.0/24[10.91.0.10-10.91.0.99]",
            &[("imported", "10.91.0.20", None)],
        );
        let doc = b.file("imported.json", &doc);
        b.ctl(&["import", doc.to_str().unwrap()]).ok();
        let usage = b.ctl(&["-o", "json", "usage", "blue"]).json();
        let rows = usage[0]["pools"][0]["blocks"].as_array().unwrap().clone();
        let marked: Vec<&Value> = rows.iter().filter(|r| r["note"].is_string()).collect();
        assert_eq!(marked.len(), 1, "{label}: {usage}");
        assert_eq!(marked[0]["allocated"], 1);
        assert!(
            marked[0]["note"]
                .as_str()
                .unwrap()
                .contains("outside every node block"),
            "{usage}"
        );
        let table = b.ctl(&["usage", "blue"]);
        assert!(
            table.ok().contains("(outside every node block"),
            "{label}: {table:#?}"
        );
    }
}
