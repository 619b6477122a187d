//! Interfaces the kernel does not manage, as root in real network namespaces: a fake
//! user-space delegate (a script that creates no kernel link and reports a `socketPath`,
//! as vhost-user and DPDK plugins do) beside a built-in macvlan network, with routes on
//! both. The macvlan side is fully set up, the user-space side gets no post-processing and
//! a warning, its addresses are plexus' and DEL and GC release them; a failing user-space
//! delegate rolls the whole pod back.

mod support;

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;

use serde_json::{Value, json};
use support::World;
use support::netns::{
    HostLink, Netns, POD_ARGS, assert_pod_empty, exec, exec_with, ok, plugin_path, privileged, veth,
};

/// The fake user-space delegate, installed as `userspace` (the userspace CNI's type) and
/// `fakedp` (a type plexus knows nothing about). It logs every call to `<name>.log`; its
/// ADD creates a socket file in `sharedDir` (else `<dir>/sockets`) and reports it, or,
/// with `reportName`, reports an interface of that name and nothing else; with
/// `"behaviour":"fail"` it refuses.
fn install_fake(world: &World) {
    let dir = world.dir.path();
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let text = format!(
        r#"#!/bin/sh
conf=$(cat)
name=$(basename "$0")
printf '%s %s %s\n' "$CNI_COMMAND" "${{CNI_IFNAME:-}}" "$conf" >> {dir}/$name.log
field() {{ printf '%s' "$conf" | sed -n "s/.*\"$1\":\"\([^\"]*\)\".*/\1/p"; }}
shared=$(field sharedDir)
[ -n "$shared" ] || shared={dir}/sockets
sock="$shared/$CNI_CONTAINERID-$CNI_IFNAME.sock"
case "$CNI_COMMAND" in
  VERSION) echo '{{"cniVersion":"1.0.0","supportedVersions":["0.4.0","1.0.0","1.1.0"]}}';;
  ADD)
    case "$conf" in
      *'"behaviour":"fail"'*)
        echo '{{"cniVersion":"1.0.0","code":42,"msg":"vhost-user port refused by the test"}}'
        exit 1;;
    esac
    reported=$(field reportName)
    if [ -n "$reported" ]; then
      echo "{{\"cniVersion\":\"1.0.0\",\"interfaces\":[{{\"name\":\"$reported\",\"sandbox\":\"$CNI_NETNS\"}}]}}"
    else
      mkdir -p "$shared" && : > "$sock"
      echo "{{\"cniVersion\":\"1.0.0\",\"interfaces\":[{{\"name\":\"$CNI_IFNAME\",\"sandbox\":\"$CNI_NETNS\",\"socketPath\":\"$sock\"}}]}}"
    fi;;
  DEL) rm -f "$sock";;
esac
exit 0
"#,
        dir = dir.display()
    );
    let path = bin.join("userspace");
    std::fs::write(&path, text).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::os::unix::fs::symlink(&path, bin.join("fakedp")).unwrap();
}

/// Calls of the fake installed as `name`: (verb, ifname, configuration).
fn calls(world: &World, name: &str) -> Vec<(String, String, Value)> {
    std::fs::read_to_string(world.dir.path().join(format!("{name}.log")))
        .unwrap_or_default()
        .lines()
        .map(|line| {
            let mut parts = line.splitn(3, ' ');
            let verb = parts.next().unwrap().to_owned();
            let ifname = parts.next().unwrap().to_owned();
            let conf = serde_json::from_str(parts.next().unwrap_or("{}")).unwrap_or(Value::Null);
            (verb, ifname, conf)
        })
        .collect()
}

fn static_conf(world: &World, id: &str, conf: Value) {
    std::fs::write(world.cni_dir().join(format!("{id}.conf")), conf.to_string()).unwrap();
}

struct Setup {
    world: World,
    sockets: PathBuf,
    _parent: HostLink,
}

/// `blue` (macvlan), `vhost` (NetworkType userspace, socket directory from the annotation,
/// policy table 101), `dp` (a delegate reporting a socket) and `renamed` (a delegate
/// reporting a name the pod has no link of); routes on every one.
fn setup(vhost_behaviour: &str) -> Setup {
    let mut world = World::new("");
    world.cni_path = plugin_path(world.dir.path());
    install_fake(&world);
    let parent = veth();
    let sockets = world.dir.path().join("vhost-sockets");
    world.cluster_network(
        "blue",
        "macvlan",
        json!({"host_device": parent.0, "cidr": "10.71.0.0/24",
               "routes": {"10.171.0.0/16": "10.71.0.1"}}),
    );
    world.cluster_network_with(
        "vhost",
        "userspace",
        json!({"cidr": "10.72.0.0/24", "routes": {"10.172.0.0/16": "10.72.0.1"},
               "rt_tables": 101}),
        json!({"plexus.io/socket-dir": sockets}),
    );
    static_conf(
        &world,
        "vhost",
        json!({"cniVersion": "1.1.0", "name": "vhost", "type": "userspace",
               "host": {"engine": "ovs-dpdk", "iftype": "vhostuser"},
               "behaviour": vhost_behaviour}),
    );
    world.cluster_network(
        "dp",
        "fakedp",
        json!({"cidr": "10.73.0.0/24", "routes": {"10.173.0.0/16": "10.73.0.1"}}),
    );
    static_conf(
        &world,
        "dp",
        json!({"cniVersion": "1.1.0", "name": "dp", "type": "fakedp"}),
    );
    world.cluster_network(
        "renamed",
        "fakedp",
        json!({"cidr": "10.74.0.0/24", "routes": {"10.174.0.0/16": "10.74.0.1"}}),
    );
    static_conf(
        &world,
        "renamed",
        json!({"cniVersion": "1.1.0", "name": "renamed", "type": "fakedp",
               "reportName": "dpdk0"}),
    );
    Setup {
        world,
        sockets,
        _parent: parent,
    }
}

fn request() -> Value {
    json!([{"clusterNetwork": "blue", "ip": "dynamic"},
           {"clusterNetwork": "vhost", "ip": "dynamic",
            "proutes": {"192.168.60.0/24": "10.72.0.254"}},
           {"clusterNetwork": "dp", "ip": "dynamic"},
           {"clusterNetwork": "renamed", "ip": "dynamic"}])
}

const NETWORKS: [&str; 4] = ["blue", "vhost", "dp", "renamed"];

/// The index of the result's interface `name` and the addresses the result gives it.
fn interface(result: &Value, name: &str) -> (Value, Vec<String>) {
    let ifaces = result["interfaces"].as_array().unwrap();
    let index = ifaces
        .iter()
        .position(|i| i["name"] == json!(name))
        .unwrap_or_else(|| panic!("no interface {name}: {result}"));
    let addresses = result["ips"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|ip| ip["interface"] == json!(index))
        .map(|ip| ip["address"].as_str().unwrap().to_owned())
        .collect();
    (ifaces[index].clone(), addresses)
}

#[test]
fn user_space_interfaces_beside_macvlan_get_no_post_processing_and_are_released() {
    if !privileged("user_space_interfaces_beside_macvlan_get_no_post_processing_and_are_released") {
        return;
    }
    let s = setup("ok");
    let world = &s.world;
    let conf = world.conf(Some(request()));
    let pod = Netns::new("plxp");
    let add = exec_with(world, "ADD", "ctr-a", &pod, &conf, POD_ARGS);
    assert_eq!(add.code, 0, "{}\n{}", add.value, add.stderr);
    let result = add.value;

    // The macvlan side is fully set up: link, address, route.
    let (_, blue) = interface(&result, "eth0");
    assert!(blue[0].starts_with("10.71.0."), "{result}");
    let addresses = pod.text(&["ip", "-o", "addr", "show", "dev", "eth0"]);
    assert!(addresses.contains(&blue[0]), "{addresses}");
    let routes = pod.text(&["ip", "route"]);
    assert!(
        routes.contains("10.171.0.0/16 via 10.71.0.1 dev eth0"),
        "{routes}"
    );
    // Nothing of the user-space side is in the kernel.
    let links = pod.text(&["ip", "-o", "link"]);
    assert_eq!(links.lines().count(), 2, "only lo and eth0: {links}");
    for absent in ["10.172.", "10.173.", "10.174."] {
        assert!(!routes.contains(absent), "{absent}: {routes}");
    }
    assert!(!pod.text(&["ip", "rule"]).contains("lookup 101"));

    // The result carries the delegates' interfaces as reported, with plexus' addresses.
    let (vhost, vhost_ips) = interface(&result, "eth1");
    let socket = s.sockets.join("ctr-a-eth1.sock");
    assert_eq!(vhost["socketPath"], json!(socket), "{result}");
    assert!(
        socket.exists(),
        "the fake made its socket in the passed directory"
    );
    assert!(vhost_ips[0].starts_with("10.72.0."), "{result}");
    let (dp, dp_ips) = interface(&result, "eth2");
    assert!(dp["socketPath"].is_string(), "{result}");
    assert!(dp_ips[0].starts_with("10.73.0."), "{result}");
    let (_, renamed_ips) = interface(&result, "dpdk0");
    assert!(renamed_ips[0].starts_with("10.74.0."), "{result}");
    let adds: Vec<_> = calls(world, "userspace")
        .into_iter()
        .filter(|c| c.0 == "ADD")
        .collect();
    assert_eq!(adds.len(), 1);
    assert_eq!(adds[0].2["sharedDir"], json!(s.sockets), "{:?}", adds[0]);

    // A warning per user-space interface, naming it and its network; none for eth0.
    for (ifname, network) in [("eth1", "vhost"), ("eth2", "dp"), ("dpdk0", "renamed")] {
        let line = format!("interface {ifname} of network {network} is not managed by the kernel");
        assert!(add.stderr.contains(&line), "{line}: {}", add.stderr);
    }
    assert!(!add.stderr.contains("interface eth0 of network blue"));
    for network in NETWORKS {
        assert_eq!(world.held(network).len(), 1, "{network}");
    }

    let mut check = conf.clone();
    check["prevResult"] = result.clone();
    ok(exec(world, "CHECK", "ctr-a", &pod, &check));

    ok(exec(world, "DEL", "ctr-a", &pod, &conf));
    let dels: Vec<String> = calls(world, "userspace")
        .into_iter()
        .chain(calls(world, "fakedp"))
        .filter(|c| c.0 == "DEL")
        .map(|c| c.1)
        .collect();
    assert_eq!(dels.len(), 3, "{dels:?}");
    for ifname in ["eth1", "eth2", "eth3"] {
        assert!(dels.contains(&ifname.to_owned()), "{ifname}: {dels:?}");
    }
    assert!(!socket.exists());
    assert_pod_empty(&pod);
    for network in NETWORKS {
        assert!(world.held(network).is_empty(), "{network}");
    }
    assert!(world.records().is_empty());

    // GC releases a user-space interface's addresses like any other.
    let other = Netns::new("plxp");
    ok(exec(world, "ADD", "ctr-b", &other, &conf));
    assert_eq!(world.held("vhost").len(), 1);
    let mut gc = conf.clone();
    gc["cni.dev/valid-attachments"] = json!([]);
    ok(exec(world, "GC", "", &other, &gc));
    for network in NETWORKS {
        assert!(world.held(network).is_empty(), "GC: {network}");
    }
    assert!(world.records().is_empty());
    assert!(!s.sockets.join("ctr-b-eth1.sock").exists());
}

#[test]
fn a_failing_user_space_delegate_rolls_the_whole_pod_back() {
    if !privileged("a_failing_user_space_delegate_rolls_the_whole_pod_back") {
        return;
    }
    let s = setup("fail");
    let world = &s.world;
    let conf = world.conf(Some(request()));
    let pod = Netns::new("plxp");
    let (code, err) = exec(world, "ADD", "ctr-f", &pod, &conf);
    assert_ne!(code, 0);
    assert_eq!(err["code"], json!(112), "{err}");
    assert!(
        err["msg"]
            .as_str()
            .unwrap()
            .contains("vhost-user port refused by the test"),
        "{err}"
    );
    // blue was set up first (maxParallel 1); nothing of it or the others is left.
    assert_pod_empty(&pod);
    assert!(
        !pod.text(&["ip", "route"]).contains("10.171."),
        "blue's route"
    );
    for network in NETWORKS {
        assert!(
            world.held(network).is_empty(),
            "{network}: {:?}",
            world.held(network)
        );
    }
    assert!(world.records().is_empty());
    let seen: Vec<String> = calls(world, "userspace")
        .into_iter()
        .map(|c| c.0)
        .filter(|v| v != "VERSION")
        .collect();
    assert_eq!(seen, ["ADD", "DEL"], "the failed ADD is undone with DEL");
    assert!(
        calls(world, "fakedp").iter().all(|c| c.0 != "ADD"),
        "nothing after the failure runs"
    );
}
