//! The real `plexus` binary as root in real network namespaces: eth0 from Debian's `bridge`
//! (a static delegate using plexus' addresses through plexus-ipam's echo mode) plus two
//! built-in macvlan networks on veth parents, dual stack with a policy route; traffic
//! between two pods on every network; DEL and failed ADDs leave nothing behind.

mod support;

use std::process::Command;

use serde_json::{Value, json};
use support::World;
use support::netns::{
    HostLink, Netns, assert_pod_empty, cni_path, exec, ok, privileged, sh, unique, veth,
};

fn address_of(result: &Value, iface: usize, v6: bool) -> String {
    result["ips"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|ip| ip["interface"] == json!(iface))
        .map(|ip| {
            ip["address"]
                .as_str()
                .unwrap()
                .split('/')
                .next()
                .unwrap()
                .to_owned()
        })
        .find(|a| a.contains(':') == v6)
        .unwrap_or_else(|| panic!("no address on interface {iface}: {result}"))
}

fn ping(from: &Netns, to: &str) {
    let cmd = if to.contains(':') { "ping6" } else { "ping" };
    let out = from.run(&[cmd, "-c", "1", "-W", "2", to]);
    assert!(
        out.status.success(),
        "{cmd} {to} from {}: {}",
        from.name,
        String::from_utf8_lossy(&out.stdout)
    );
}

struct Setup {
    world: World,
    _links: Vec<HostLink>,
}

fn setup() -> Setup {
    let mut world = World::new("");
    world.cni_path = cni_path(world.dir.path());
    let (a, b) = (veth(), veth());
    let bridge = HostLink(unique("plxbr"));
    world.cluster_network(
        "pods",
        "bridge",
        json!({"cidr": "10.80.0.0/24", "routes": {"10.180.0.0/16": "10.80.0.1"}}),
    );
    std::fs::write(
        world.cni_dir().join("pods.conf"),
        // 1.1.0, which Debian's bridge does not speak: plexus downgrades it to 1.0.0.
        json!({"cniVersion": "1.1.0", "name": "pods", "type": "bridge", "bridge": bridge.0,
               "isGateway": true, "ipam": {"type": "host-local", "subnet": "10.80.0.0/24"}})
        .to_string(),
    )
    .unwrap();
    world.cluster_network(
        "blue",
        "macvlan",
        json!({"host_device": a.0, "cidr": "10.81.0.0/24", "net6": "fd81::/64"}),
    );
    world.cluster_network(
        "red",
        "macvlan",
        json!({"host_device": b.0, "cidr": "10.82.0.0/24", "net6": "fd82::/64",
               "container_prefix": "red", "rt_tables": 100}),
    );
    Setup {
        world,
        _links: vec![a, b, bridge],
    }
}

fn request() -> Value {
    json!([{"clusterNetwork": "pods", "ip": "dynamic"},
           {"clusterNetwork": "blue", "ip": "dynamic", "ip6": "dynamic"},
           {"clusterNetwork": "red", "ip": "dynamic", "ip6": "dynamic",
            "proutes": {"192.168.50.0/24": "10.82.0.254"},
            "proutes6": {"fd99::/64": "fd82::fe"}}])
}

#[test]
fn two_pods_on_three_networks_talk_and_del_leaves_nothing() {
    if !privileged("two_pods_on_three_networks_talk_and_del_leaves_nothing") {
        return;
    }
    let s = setup();
    let world = &s.world;
    let mut conf = world.conf(Some(request()));
    conf["maxParallel"] = json!(4);
    let (pa, pb) = (Netns::new("plxp"), Netns::new("plxp"));
    let ra = ok(exec(world, "ADD", "ctr-a", &pa, &conf));
    let rb = ok(exec(world, "ADD", "ctr-b", &pb, &conf));

    let names: Vec<&str> = ra["interfaces"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i["sandbox"].is_string())
        .map(|i| i["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["eth0", "eth1", "red2"], "{ra}");
    assert!(
        ra["ips"][0]["address"]
            .as_str()
            .unwrap()
            .starts_with("10.80.0."),
        "eth0 first: {ra}"
    );
    let links = pa.text(&["ip", "-o", "link"]);
    for name in ["eth0", "eth1", "red2"] {
        assert!(
            links.contains(&format!(": {name}@")),
            "{name} missing: {links}"
        );
    }
    let rules = pa.text(&["ip", "rule"]);
    assert!(rules.contains("lookup 100"), "{rules}");
    assert!(pa.text(&["ip", "-6", "rule"]).contains("lookup 100"));
    assert!(
        pa.text(&["ip", "route", "show", "table", "100"])
            .contains("192.168.50.0/24 via 10.82.0.254")
    );

    let eth0_b = rb["ips"]
        .as_array()
        .unwrap()
        .iter()
        .find(|ip| ip["address"].as_str().unwrap().starts_with("10.80."))
        .map(|ip| {
            ip["address"]
                .as_str()
                .unwrap()
                .split('/')
                .next()
                .unwrap()
                .to_owned()
        })
        .unwrap();
    ping(&pa, &eth0_b);
    let iface = |r: &Value, name: &str| {
        r["interfaces"]
            .as_array()
            .unwrap()
            .iter()
            .position(|i| i["name"] == json!(name) && i["sandbox"].is_string())
            .unwrap()
    };
    for name in ["eth1", "red2"] {
        for v6 in [false, true] {
            ping(&pa, &address_of(&rb, iface(&rb, name), v6));
            ping(&pb, &address_of(&ra, iface(&ra, name), v6));
        }
    }
    for network in ["pods", "blue", "red"] {
        assert_eq!(
            world.held(network).len(),
            if network == "pods" { 2 } else { 4 },
            "{network}"
        );
    }
    let mut check = conf.clone();
    check["prevResult"] = ra.clone();
    ok(exec(world, "CHECK", "ctr-a", &pa, &check));
    // A policy route deleted behind plexus' back: CHECK names it (code 103).
    sh(&[
        "ip",
        "-n",
        &pa.name,
        "route",
        "del",
        "192.168.50.0/24",
        "table",
        "100",
    ]);
    let (code, err) = exec(world, "CHECK", "ctr-a", &pa, &check);
    assert_eq!((code, err["code"].clone()), (1, json!(103)), "{err}");
    assert!(
        err["msg"]
            .as_str()
            .unwrap_or("")
            .contains("192.168.50.0/24"),
        "{err}"
    );

    ok(exec(world, "DEL", "ctr-a", &pa, &conf));
    ok(exec(world, "DEL", "ctr-a", &pa, &conf));
    ok(exec(world, "DEL", "ctr-b", &pb, &conf));
    assert_pod_empty(&pa);
    assert_pod_empty(&pb);
    for network in ["pods", "blue", "red"] {
        assert!(
            world.held(network).is_empty(),
            "{network}: {:?}",
            world.held(network)
        );
    }
    assert!(world.records().is_empty());
}

#[test]
fn a_failing_third_attachment_leaves_nothing_behind() {
    if !privileged("a_failing_third_attachment_leaves_nothing_behind") {
        return;
    }
    let s = setup();
    let world = &s.world;
    world.cluster_network(
        "ghost",
        "macvlan",
        json!({"host_device": "plxnosuchdev", "cidr": "10.83.0.0/24"}),
    );
    world.cluster_network(
        "tiny",
        "macvlan",
        json!({"host_device": s._links[0].0, "cidr": "10.84.0.0/30"}),
    );
    world.cluster_network("broken", "bridge", json!({"cidr": "10.85.0.0/24"}));
    std::fs::write(
        world.cni_dir().join("broken.conf"),
        json!({"cniVersion": "1.0.0", "name": "broken", "type": "bridge",
               "bridge": "this-bridge-name-is-too-long"})
        .to_string(),
    )
    .unwrap();
    let blue = json!({"clusterNetwork": "blue", "ip": "dynamic", "ip6": "dynamic"});
    let cases = [
        (
            "missing parent",
            json!({"clusterNetwork": "ghost", "ip": "dynamic"}),
            111,
        ),
        (
            "failing delegate",
            json!({"clusterNetwork": "broken", "ip": "dynamic"}),
            112,
        ),
        (
            "exhausted pool",
            json!({"clusterNetwork": "tiny", "ip": "dynamic"}),
            100,
        ),
    ];
    for (what, third, code) in cases {
        let pod = Netns::new("plxp");
        let mut req = request();
        req[2] = third.clone();
        if what == "exhausted pool" {
            // The /30 has two addresses: another pod holds one, this pod's first
            // attachment the other, so its third finds none.
            req = json!([third, blue, third]);
            let fill = json!([third]);
            let fill_pod = Netns::new("plxp");
            ok(exec(
                world,
                "ADD",
                "filler",
                &fill_pod,
                &world.conf(Some(fill.clone())),
            ));
            let (status, reply) = exec(world, "ADD", "ctr", &pod, &world.conf(Some(req)));
            assert_ne!(status, 0, "{what}");
            assert_eq!(reply["code"], json!(code), "{what}: {reply}");
            ok(exec(
                world,
                "DEL",
                "filler",
                &fill_pod,
                &world.conf(Some(fill)),
            ));
        } else {
            let (status, reply) = exec(world, "ADD", "ctr", &pod, &world.conf(Some(req)));
            assert_ne!(status, 0, "{what}");
            assert_eq!(reply["code"], json!(code), "{what}: {reply}");
        }
        assert_pod_empty(&pod);
        for network in ["pods", "blue", "red", "ghost", "tiny", "broken"] {
            assert!(
                world.held(network).is_empty(),
                "{what}: {network} {:?}",
                world.held(network)
            );
        }
        assert!(world.records().is_empty(), "{what}");
    }
}

#[test]
fn ipvlan_works_or_skips_saying_why() {
    if !privileged("ipvlan_works_or_skips_saying_why") {
        return;
    }
    let probe = unique("plxiv");
    let parent = veth();
    let supported = Command::new("ip")
        .args([
            "link", "add", &probe, "link", &parent.0, "type", "ipvlan", "mode", "l2",
        ])
        .output()
        .is_ok_and(|o| o.status.success());
    if !supported {
        eprintln!("SKIPPED ipvlan_works_or_skips_saying_why: the kernel has no ipvlan support");
        return;
    }
    let _probe = HostLink(probe);
    let s = setup();
    let world = &s.world;
    world.cluster_network(
        "iv",
        "ipvlan",
        json!({"host_device": parent.0, "cidr": "10.86.0.0/24"}),
    );
    let conf = world.conf(Some(json!([{"clusterNetwork": "iv", "ip": "dynamic"}])));
    let pod = Netns::new("plxp");
    let result = ok(exec(world, "ADD", "iv1", &pod, &conf));
    assert!(
        pod.text(&["ip", "-d", "link", "show", "eth0"])
            .contains("ipvlan"),
        "{result}"
    );
    ok(exec(world, "DEL", "iv1", &pod, &conf));
    assert_pod_empty(&pod);
    assert!(world.held("iv").is_empty());
}

#[test]
fn duplicate_address_check_skips_an_address_another_netns_holds() {
    if !privileged("duplicate_address_check_skips_an_address_another_netns_holds") {
        return;
    }
    let s = setup();
    let world = &s.world;
    let parent = veth();
    let object = json!({"apiVersion": "plexus.io/v1", "kind": "ClusterNetwork",
        "metadata": {"name": "dupchk"},
        "spec": {"NetworkID": "dupchk", "NetworkType": "macvlan",
                 "Options": {"host_device": parent.0, "cidr": "10.87.0.0/24",
                             "net6": "fd87::/64", "allocation_pool_v6": {"cidr": "fd87::/120"}},
                 "plexus": {"duplicateAddressCheck": true}}});
    std::fs::write(
        world.dir.path().join("networks").join("dupchk.json"),
        object.to_string(),
    )
    .unwrap();
    // Another host on the same segment already uses the first address of each pool.
    let intruder = Netns::new("plxp");
    let link = unique("plxin");
    sh(&[
        "ip", "link", "add", &link, "link", &parent.0, "type", "macvlan", "mode", "bridge",
    ]);
    sh(&["ip", "link", "set", &link, "netns", &intruder.name]);
    sh(&[
        "ip",
        "-n",
        &intruder.name,
        "addr",
        "add",
        "10.87.0.1/24",
        "dev",
        &link,
    ]);
    sh(&[
        "ip",
        "-n",
        &intruder.name,
        "addr",
        "add",
        "fd87::1/64",
        "dev",
        &link,
        "nodad",
    ]);
    sh(&["ip", "-n", &intruder.name, "link", "set", &link, "up"]);

    let conf = world.conf(Some(
        json!([{"clusterNetwork": "dupchk", "ip": "dynamic", "ip6": "dynamic"}]),
    ));
    let pod = Netns::new("plxp");
    let result = ok(exec(world, "ADD", "dup1", &pod, &conf));
    assert_eq!(address_of(&result, 0, false), "10.87.0.2", "{result}");
    assert_eq!(address_of(&result, 0, true), "fd87::2", "{result}");
    let held: Vec<(String, String)> = world
        .held("dupchk")
        .iter()
        .map(|a| (a.container_id.clone(), a.ip.to_string()))
        .collect();
    for quarantined in ["10.87.0.1", "fd87::1"] {
        assert!(
            held.contains(&("plexus-quarantine".to_owned(), quarantined.to_owned())),
            "{held:?}"
        );
    }
    let addresses = pod.text(&["ip", "-o", "addr", "show", "dev", "eth0"]);
    assert!(!addresses.contains("10.87.0.1/") && !addresses.contains("fd87::1/"));
    let global = addresses.lines().filter(|l| l.contains("fd87::"));
    assert!(
        global.clone().all(|l| !l.contains("tentative")),
        "DAD finished before success: {addresses}"
    );
    ping(&pod, "10.87.0.1");
    ping(&pod, "fd87::1");
    ok(exec(world, "DEL", "dup1", &pod, &conf));
    assert_pod_empty(&pod);
    let left: Vec<String> = world
        .held("dupchk")
        .iter()
        .map(|a| a.container_id.clone())
        .collect();
    assert_eq!(left, ["plexus-quarantine", "plexus-quarantine"]);
}
