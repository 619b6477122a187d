//! Interop with real outside components: `plexus-ipam` as the IPAM of Debian's reference
//! `bridge` and `macvlan` plugins in real network namespaces, driven by direct exec and by
//! Debian's libcni through the Go driver in `tests/libcni-driver`. Needs root.

mod common;

use std::path::Path;
use std::process::Command;

use common::{Reply, SHARED, cni_path, exec, held, privileged};
use plexus_test_support::privileged::{HostLink, Netns, sh, unique};
use serde_json::{Value, json};
use tempfile::TempDir;

/// Runs a Debian plugin (`/usr/lib/cni/<plugin>`) for one verb in `netns`.
fn run_plugin(
    plugin: &str,
    command: &str,
    container: &str,
    netns: &Netns,
    path: &str,
    conf: &Value,
) -> Reply {
    let binary = Path::new("/usr/lib/cni").join(plugin);
    let netns_path = netns.path();
    let env = [
        ("CNI_COMMAND", command),
        ("CNI_CONTAINERID", container),
        ("CNI_NETNS", netns_path.as_str()),
        ("CNI_IFNAME", "eth0"),
        ("CNI_PATH", path),
        (
            "CNI_ARGS",
            "IgnoreUnknown=1;K8S_POD_NAMESPACE=interop;K8S_POD_NAME=p",
        ),
    ];
    exec(&binary, &env, &conf.to_string())
}

fn first_ip(result: &Value) -> String {
    let address = result["ips"][0]["address"].as_str().expect("an address");
    address.split('/').next().unwrap_or_default().to_string()
}

fn ping(from: &Netns, to: &str) {
    let out = from.run(&["ping", "-c", "1", "-W", "2", to]);
    assert!(
        out.status.success(),
        "ping {to} from {}: {}",
        from.name,
        String::from_utf8_lossy(&out.stdout)
    );
}

/// Waits (up to 10 s) until no IPv6 address in `netns` is tentative.
fn wait_for_dad(netns: &Netns) {
    for _ in 0..100 {
        let out = netns.run(&["ip", "-6", "addr", "show", "tentative"]);
        if String::from_utf8_lossy(&out.stdout).trim().is_empty() {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    panic!(
        "IPv6 addresses in {} still tentative after 10 s",
        netns.name
    );
}

fn links_in(netns: &Netns) -> String {
    String::from_utf8_lossy(&netns.run(&["ip", "-o", "link"]).stdout).into_owned()
}

#[test]
fn bridge_with_plexus_ipam_by_direct_exec() {
    if !privileged("bridge_with_plexus_ipam_by_direct_exec") {
        return;
    }
    let dir = TempDir::new().unwrap();
    let db = dir.path().join("bridge.db");
    let path = cni_path(dir.path());
    let bridge = HostLink(unique("plxbr"));
    let conf = json!({
        "cniVersion": "1.0.0", "name": "interop-bridge", "type": "bridge",
        "bridge": bridge.0, "isGateway": true,
        "ipam": {"type": "plexus-ipam", "range": "10.77.0.0/24", "gateway": "10.77.0.1",
                 "store": {"type": "sqlite", "path": db}}
    });
    let (a, b) = (Netns::new("plxa"), Netns::new("plxb"));
    let ra = run_plugin("bridge", "ADD", "ctr-a", &a, &path, &conf).ok();
    let rb = run_plugin("bridge", "ADD", "ctr-b", &b, &path, &conf).ok();
    let (ip_a, ip_b) = (first_ip(&ra), first_ip(&rb));
    assert_ne!(ip_a, ip_b);
    assert_eq!(ra["ips"][0]["gateway"], json!("10.77.0.1"));
    assert!(String::from_utf8_lossy(&a.run(&["ip", "-o", "addr"]).stdout).contains(&ip_a));
    ping(&a, &ip_b);
    ping(&b, &ip_a);
    let mut check = conf.clone();
    check["prevResult"] = ra.clone();
    run_plugin("bridge", "CHECK", "ctr-a", &a, &path, &check).ok();
    assert_eq!(held(&db, SHARED).len(), 2);
    run_plugin("bridge", "DEL", "ctr-a", &a, &path, &conf).ok();
    run_plugin("bridge", "DEL", "ctr-a", &a, &path, &conf).ok();
    run_plugin("bridge", "DEL", "ctr-b", &b, &path, &conf).ok();
    assert!(held(&db, SHARED).is_empty());
    assert!(
        !links_in(&a).contains("eth0"),
        "DEL removed the pod interface"
    );
}

#[test]
fn macvlan_on_a_veth_parent_with_plexus_ipam_dual_stack() {
    if !privileged("macvlan_on_a_veth_parent_with_plexus_ipam_dual_stack") {
        return;
    }
    let dir = TempDir::new().unwrap();
    let db = dir.path().join("macvlan.db");
    let path = cni_path(dir.path());
    let parent = HostLink(unique("plxv"));
    let peer = format!("{}p", parent.0);
    sh(&[
        "ip", "link", "add", &parent.0, "type", "veth", "peer", "name", &peer,
    ]);
    sh(&["ip", "link", "set", &parent.0, "up"]);
    sh(&["ip", "link", "set", &peer, "up"]);
    let conf = json!({
        "cniVersion": "1.0.0", "name": "interop-macvlan", "type": "macvlan",
        "master": parent.0, "mode": "bridge",
        "ipam": {"type": "plexus-ipam",
                 "ipRanges": [{"range": "10.78.0.0/24"}, {"range": "fd00:78::/64"}],
                 "store": {"type": "sqlite", "path": db}}
    });
    let (a, b) = (Netns::new("plxma"), Netns::new("plxmb"));
    let ra = run_plugin("macvlan", "ADD", "mv-a", &a, &path, &conf).ok();
    let rb = run_plugin("macvlan", "ADD", "mv-b", &b, &path, &conf).ok();
    assert_eq!(ra["ips"].as_array().map(Vec::len), Some(2), "{ra}");
    ping(&a, &first_ip(&rb));
    let v6_b = rb["ips"][1]["address"]
        .as_str()
        .unwrap()
        .split('/')
        .next()
        .unwrap()
        .to_string();
    // IPv6 duplicate address detection runs for a second or two after ADD.
    wait_for_dad(&a);
    wait_for_dad(&b);
    let out = a.run(&["ping", "-6", "-c", "2", "-W", "3", &v6_b]);
    assert!(
        out.status.success(),
        "ping6 {v6_b}: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    run_plugin("macvlan", "DEL", "mv-a", &a, &path, &conf).ok();
    run_plugin("macvlan", "DEL", "mv-b", &b, &path, &conf).ok();
    assert!(held(&db, SHARED).is_empty());
    let _ = Command::new("ip").args(["link", "del", &peer]).output();
}

/// Builds the Go driver against Debian's libcni into `dir`.
fn build_driver(dir: &Path) -> std::path::PathBuf {
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/libcni-driver/main.go");
    let out = dir.join("libcni-driver");
    let status = Command::new("go")
        .args(["build", "-o"])
        .arg(&out)
        .arg(&source)
        .env("GOPATH", "/usr/share/gocode")
        .env("GO111MODULE", "off")
        .env("GOCACHE", dir.join("gocache"))
        .status()
        .expect("go is installed (golang-go)");
    assert!(status.success(), "building the libcni driver failed");
    out
}

#[test]
fn libcni_drives_a_bridge_conflist_with_plexus_ipam() {
    if !privileged("libcni_drives_a_bridge_conflist_with_plexus_ipam") {
        return;
    }
    if Command::new("go").arg("version").output().is_err() {
        assert!(
            std::env::var("PLEXUS_REQUIRE_PRIVILEGED").as_deref() != Ok("1"),
            "go is missing"
        );
        eprintln!("SKIPPED libcni test: go (golang-go) is not installed");
        return;
    }
    let dir = TempDir::new().unwrap();
    let driver = build_driver(dir.path());
    let db = dir.path().join("libcni.db");
    let path = cni_path(dir.path());
    let bridge = HostLink(unique("plxlb"));
    let conflist = json!({
        "cniVersion": "1.0.0", "name": "interop-libcni",
        "plugins": [{"type": "bridge", "bridge": bridge.0, "isGateway": true,
                     "ipam": {"type": "plexus-ipam", "range": "10.79.0.0/24",
                              "store": {"type": "sqlite", "path": db}}}]
    });
    let file = dir.path().join("net.conflist");
    std::fs::write(&file, conflist.to_string()).unwrap();
    let cache = dir.path().join("cache");
    let netns = Netns::new("plxl");
    let run = |verb: &str| {
        let out = Command::new(&driver)
            .args([
                verb,
                file.to_str().unwrap(),
                "libcni-ctr",
                &netns.path(),
                "eth0",
                cache.to_str().unwrap(),
            ])
            .env("CNI_PATH", &path)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "libcni {verb}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let result: Value = serde_json::from_str(&run("add")).unwrap();
    let ip = first_ip(&result);
    assert!(ip.starts_with("10.79.0."), "{result}");
    assert_eq!(
        held(&db, SHARED),
        vec![("libcni-ctr".into(), "eth0".into(), ip)]
    );
    run("check");
    run("del");
    assert!(held(&db, SHARED).is_empty());
    run("del");
}
