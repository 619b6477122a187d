//! `plexusctl exec` end to end, as root: a CNI 1.1.0 conflist with Debian's bridge plugin
//! (which speaks at most 1.0.0) and plexus-ipam, in a real network namespace; the plugin
//! and plexusctl share SQLite and, under `scripts/with-servers`, PostgreSQL and etcd.
//!
//! Skipped with `SKIPPED …` on stderr when not root or Debian's plugins are missing, unless
//! `PLEXUS_REQUIRE_PRIVILEGED=1`, where that is a failure.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::Env;
use common::backends::backends;
use plexus_test_support::privileged::{HostLink, Need, Netns};

/// Whether the test can run here (root, Debian's CNI plugins, iproute2); see
/// [`plexus_test_support::privileged::privileged`].
fn privileged(what: &str) -> bool {
    plexus_test_support::privileged::privileged(
        what,
        &[Need::Root, Need::CniPlugins, Need::Iproute2],
    )
}

/// The plexus-ipam binary of this source tree. It is another package, so cargo does not
/// build it for these tests: build it (a no-op when it is up to date) so a stale binary
/// with an older store schema is never used.
fn plexus_ipam() -> PathBuf {
    let dir = common::binary()
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default();
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut build = Command::new(cargo);
    build.args(["build", "-p", "plexus-ipam"]);
    if dir.ends_with("release") {
        build.arg("--release");
    }
    let status = build.status().expect("cargo build -p plexus-ipam");
    assert!(status.success(), "building plexus-ipam failed");
    let binary = dir.join("plexus-ipam");
    assert!(binary.exists(), "{} missing", binary.display());
    binary
}

#[test]
fn exec_runs_a_1_1_conflist_with_older_plugins_in_a_real_netns() {
    if !privileged("exec_runs_a_1_1_conflist_with_older_plugins_in_a_real_netns") {
        return;
    }
    for (index, env) in backends("exec").into_iter().enumerate() {
        eprintln!("{}", env.label);
        let subnet = format!("10.231.{index}");
        let tag = format!("{:x}{index}", std::process::id() % 0xffff);
        let network = format!("ex{tag}");
        let conf = common::bridge_conflist_in(
            &network,
            &format!("{subnet}.0/24"),
            &format!("{subnet}.1"),
            env.store_json(),
        );
        std::fs::write(env.conf_dir().join("10-ex.conflist"), conf).unwrap();
        let _bridge = HostLink(format!("plx{}", &network[..network.len().min(8)]));
        let ns = Netns::new("plxexec");
        let bin = env.dir.path().join("bin");
        std::fs::create_dir(&bin).unwrap();
        std::os::unix::fs::symlink(plexus_ipam(), bin.join("plexus-ipam")).unwrap();
        let cni_path = format!("{}:/usr/lib/cni", bin.display());
        let cache = env.dir.path().join("cache");
        let cache = cache.to_str().unwrap();
        let exec = |verb: &str, extra: &[&str]| {
            let mut args = vec!["exec", verb, network.as_str()];
            args.extend_from_slice(extra);
            args.extend_from_slice(&["--cache-dir", cache, "--cni-path", &cni_path]);
            args.extend_from_slice(&[
                "--args",
                "IgnoreUnknown=1;K8S_POD_NAMESPACE=demo;K8S_POD_NAME=pod-1",
            ]);
            env.ctl(&args)
        };

        let add = exec("add", &[&ns.name]);
        let result: serde_json::Value = serde_json::from_str(add.ok()).unwrap();
        assert_eq!(
            result["cniVersion"], "1.1.0",
            "result converted to the list's version"
        );
        assert_eq!(result["ips"][0]["address"], format!("{subnet}.2/24"));
        let addr = Command::new("ip")
            .args(["-n", &ns.name, "-4", "addr", "show", "eth0"])
            .output()
            .unwrap();
        assert!(String::from_utf8_lossy(&addr.stdout).contains(&format!("{subnet}.2/24")));
        assert!(
            add.stderr.is_empty() || !add.stderr.contains("ERROR"),
            "{add:#?}"
        );

        // The allocation is in the store, with the pod from CNI_ARGS.
        let shown = env.ctl(&["showalloc", &network]);
        assert!(
            shown
                .ok()
                .contains(&format!("{subnet}.2 : allocated (Pod: demo/pod-1)")),
            "{shown:#?}"
        );

        // plexus-ipam claimed a per-node block for this host: usage shows it with its node.
        let usage = env.ctl(&["-o", "json", "usage", &network]).json();
        let block = &usage[0]["pools"][0]["blocks"][0];
        assert_eq!(block["cidr"], format!("{subnet}.0/26"), "{usage}");
        assert_eq!(block["allocated"], 1, "{usage}");
        assert!(
            block["node"].as_str().is_some_and(|n| !n.is_empty()),
            "{usage}"
        );
        env.ctl(&["check", &network]).ok();

        exec("check", &[&ns.name]).ok();
        // STATUS: bridge (1.0.0) cannot answer, so its IPAM plugin is asked directly.
        exec("status", &[]).ok();
        // GC with the cache as the valid set keeps the attachment.
        exec("gc", &["--valid-from-cache"]).ok();
        assert!(
            env.ctl(&["showalloc", &network])
                .ok()
                .contains(&format!("{subnet}.2 : allocated"))
        );
        let err = exec("gc", &[]).fails(2).to_string();
        assert!(err.contains("--valid-from-cache"), "{err}");

        exec("del", &[&ns.name]).ok();
        assert!(!env.ctl(&["showalloc", &network]).ok().contains("allocated"));
        // DEL again succeeds (CNI requires it), and CHECK without an ADD says why it fails.
        exec("del", &[&ns.name]).ok();
        let err = exec("check", &[&ns.name]).fails(1).to_string();
        assert!(err.contains("no cached result"), "{err}");
    }
}

#[test]
fn exec_reports_plugin_errors_and_missing_plugins() {
    let env = Env::new();
    std::fs::write(
        env.conf_dir().join("10-x.conflist"),
        r#"{"cniVersion":"1.1.0","name":"x","plugins":[{"type":"no-such-plugin"}]}"#,
    )
    .unwrap();
    let out = env.ctl(&["exec", "status", "x", "--cni-path", "/nonexistent"]);
    assert_eq!(out.code, 1, "{out:#?}");
    assert!(
        out.stderr.contains("plugin \"no-such-plugin\" not found"),
        "{out:#?}"
    );
    let out = env.ctl(&["exec", "add", "missing-net", "ns"]);
    assert!(
        out.fails(2).contains("no configuration with that name"),
        "{out:#?}"
    );
    let out = env.ctl(&["exec", "add", "x"]);
    assert!(out.fails(2).contains("need a NETNS"), "{out:#?}");
}
