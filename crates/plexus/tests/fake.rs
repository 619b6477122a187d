//! The meta-plugin end to end through the CNI runner, on the fake dataplane with a real
//! SQLite store: naming, the merged result, DEL, rollback ordering and every error path.

mod support;

use plexus_netlink::{Call, ErrorKind, FakeDataplane, LinkKind, Netns, Op};
use serde_json::{Value, json};
use support::{World, fake_plugin};

const POD: &str = "/run/netns/fakepod";

/// Two macvlan networks on eth1 and eth2 (dual stack on the second, policy routing).
fn two_networks(world: &World) {
    world.cluster_network(
        "blue",
        "macvlan",
        json!({"host_device": "eth1", "cidr": "10.10.0.0/24",
               "routes": {"10.99.0.0/16": "10.10.0.1"}}),
    );
    world.cluster_network(
        "red",
        "macvlan",
        json!({"host_device": "eth2", "cidr": "10.20.0.0/24", "net6": "fd20::/64",
               "container_prefix": "red", "rt_tables": 100}),
    );
}

fn pod_links(fake: &FakeDataplane) -> Vec<String> {
    fake.netns_state(&Netns::path(POD))
        .map(|ns| ns.links.iter().map(|l| l.link.name.clone()).collect())
        .unwrap_or_default()
}

fn request() -> Value {
    json!([{"clusterNetwork": "blue", "ip": "dynamic"},
           {"clusterNetwork": "red", "ip": "dynamic", "ip6": "dynamic",
            "proutes": {"192.168.0.0/16": "10.20.0.254"}},
           {"clusterNetwork": "blue", "ip": "dynamic"}])
}

#[test]
fn add_builds_every_interface_and_del_removes_everything() {
    let world = World::new(POD);
    two_networks(&world);
    let (plugin, fake) = fake_plugin(POD);
    let conf = world.conf(Some(request()));
    let result = world.run(&plugin, "ADD", "c1", &conf).ok();

    let names: Vec<&str> = result["interfaces"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["eth0", "red1", "eth2"]);
    assert_eq!(
        result["interfaces"][1]["mtu"],
        json!(9000),
        "MTU of the parent"
    );
    assert_eq!(result["interfaces"][0]["sandbox"], json!(POD));
    let ips = result["ips"].as_array().unwrap();
    assert_eq!(ips.len(), 4);
    assert!(ips[0]["address"].as_str().unwrap().starts_with("10.10.0."));
    assert_eq!(ips[0]["interface"], json!(0), "eth0's address first");
    assert_eq!(ips[2]["interface"], json!(1));
    assert!(ips[2]["address"].as_str().unwrap().starts_with("fd20::"));
    assert_eq!(ips[3]["interface"], json!(2));
    let routes = result["routes"].as_array().unwrap();
    assert!(
        routes.contains(&json!({"dst": "10.99.0.0/16", "gw": "10.10.0.1"})),
        "{result}"
    );
    assert!(
        routes.contains(&json!({"dst": "192.168.0.0/16", "gw": "10.20.0.254", "table": 100})),
        "{result}"
    );

    let state = fake.netns_state(&Netns::path(POD)).unwrap();
    let mut links = pod_links(&fake);
    links.sort();
    assert_eq!(links, ["eth0", "eth2", "lo", "red1"]);
    assert!(
        state
            .links
            .iter()
            .filter(|l| l.link.name != "lo")
            .all(|l| l.link.up && l.link.kind == Some(LinkKind::Macvlan))
    );
    assert_eq!(
        state.rules.len(),
        6,
        "the kernel's five rules plus one: {:?}",
        state.rules
    );
    assert_eq!(
        state
            .sysctls
            .get(&("red1".into(), "accept_ra".into()))
            .map(String::as_str),
        None,
        "sysctls are written on the temporary name, before the rename"
    );
    assert_eq!(world.held("blue").len(), 2);
    assert_eq!(world.held("red").len(), 2);
    let details = world.held("red")[0].owner.details.clone().unwrap();
    assert_eq!(details["ifname"], json!("red1"));
    assert_eq!(world.records().len(), 1);
    // No link was ever created in the host netns: straight into the pod.
    assert!(
        fake.calls()
            .iter()
            .all(|c| !matches!(c, Call::MoveLink { .. }))
    );

    world.run(&plugin, "DEL", "c1", &conf).ok();
    assert_eq!(pod_links(&fake), ["lo"]);
    assert_eq!(fake.netns_state(&Netns::path(POD)).unwrap().rules.len(), 5);
    assert!(world.held("blue").is_empty() && world.held("red").is_empty());
    assert!(world.records().is_empty());
    world.run(&plugin, "DEL", "c1", &conf).ok();
}

/// Asserts that the failed ADD left nothing: links, rules, claims, records.
fn assert_nothing_left(world: &World, fake: &FakeDataplane) {
    assert_eq!(pod_links(fake), ["lo"]);
    assert_eq!(fake.netns_state(&Netns::path(POD)).unwrap().rules.len(), 5);
    assert!(world.held("blue").is_empty(), "{:?}", world.held("blue"));
    assert!(world.held("red").is_empty(), "{:?}", world.held("red"));
    assert!(world.records().is_empty(), "{:?}", world.records());
}

#[test]
fn a_missing_parent_on_the_third_attachment_undoes_the_first_two_in_reverse() {
    let world = World::new(POD);
    two_networks(&world);
    world.cluster_network(
        "green",
        "macvlan",
        json!({"host_device": "eth1", "cidr": "10.30.0.0/24", "vlan": 700}),
    );
    let (plugin, fake) = fake_plugin(POD);
    let mut req = request();
    req[2] = json!({"clusterNetwork": "green", "ip": "dynamic"});
    let err = world
        .run(&plugin, "ADD", "c1", &world.conf(Some(req)))
        .err(111);
    assert!(err["msg"].as_str().unwrap().contains("green.700"), "{err}");
    assert_nothing_left(&world, &fake);
    let deletes: Vec<String> = fake
        .calls()
        .iter()
        .filter_map(|c| match c {
            Call::DeleteLink { link, .. } if !link.starts_with("plx") => Some(link.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(deletes, ["red1", "eth0"], "newest first");
}

#[test]
fn an_exhausted_pool_fails_with_code_100_and_releases_the_others() {
    let world = World::new(POD);
    two_networks(&world);
    world.cluster_network(
        "tiny",
        "macvlan",
        json!({"host_device": "eth1", "cidr": "10.40.0.0/30"}),
    );
    let (plugin, fake) = fake_plugin(POD);
    let req = json!([{"clusterNetwork": "tiny", "ip": "dynamic"},
                     {"clusterNetwork": "red", "ip": "dynamic"},
                     {"clusterNetwork": "tiny", "ip": "dynamic"},
                     {"clusterNetwork": "tiny", "ip": "dynamic"}]);
    world
        .run(&plugin, "ADD", "c1", &world.conf(Some(req)))
        .err(100);
    assert_nothing_left(&world, &fake);
    assert!(world.held("tiny").is_empty());
}

#[test]
fn kernel_failures_at_every_step_roll_back() {
    for (op, link) in [
        (Op::CreateLink, None),
        (Op::SetSysctls, None),
        (Op::AddAddress, None),
        (Op::RenameLink, None),
        (Op::SetUp, Some("eth2")),
        (Op::AddRoute, None),
        (Op::AddRule, None),
    ] {
        let world = World::new(POD);
        two_networks(&world);
        let (plugin, fake) = fake_plugin(POD);
        match link {
            Some(link) => fake.fail_op_on_link(op, link, ErrorKind::Permission),
            None => fake.fail_op(op, ErrorKind::Permission),
        }
        let reply = world.run(&plugin, "ADD", "c1", &world.conf(Some(request())));
        let err = reply.err(110);
        assert!(
            err["msg"].as_str().unwrap().contains("interface"),
            "{op:?}: {err}"
        );
        fake.clear_failures();
        assert_nothing_left(&world, &fake);
    }
}

#[test]
fn announcement_failures_are_not_fatal() {
    let world = World::new(POD);
    two_networks(&world);
    let (plugin, fake) = fake_plugin(POD);
    fake.fail_op(Op::Announce, ErrorKind::Permission);
    world
        .run(&plugin, "ADD", "c1", &world.conf(Some(request())))
        .ok();
    assert_eq!(world.held("blue").len(), 2);
}

#[test]
fn ipvlan_without_kernel_support_is_code_113_and_modes_come_from_the_network() {
    let world = World::new(POD);
    world.cluster_network_with(
        "l3net",
        "ipvlan",
        json!({"host_device": "eth1", "cidr": "10.50.0.0/24"}),
        json!({"plexus.io/link-mode": "l3"}),
    );
    let (plugin, fake) = fake_plugin(POD);
    let conf = world.conf(Some(json!([{"clusterNetwork": "l3net", "ip": "dynamic"}])));
    world.run(&plugin, "ADD", "c1", &conf).ok();
    let spec = fake
        .calls()
        .into_iter()
        .find_map(|c| match c {
            Call::CreateLink { spec, .. } => Some(spec),
            _ => None,
        })
        .unwrap();
    assert!(format!("{:?}", spec.kind).contains("L3"), "{spec:?}");
    world.run(&plugin, "DEL", "c1", &conf).ok();

    fake.set_unsupported(LinkKind::Ipvlan);
    world.run(&plugin, "ADD", "c2", &conf).err(113);
    assert!(world.held("l3net").is_empty());
}

#[test]
fn request_and_naming_errors_touch_nothing() {
    let world = World::new(POD);
    two_networks(&world);
    world.cluster_network(
        "long",
        "macvlan",
        json!({"host_device": "eth1", "cidr": "10.60.0.0/24", "container_prefix": "averyverylongpf"}),
    );
    let (plugin, fake) = fake_plugin(POD);
    let cases = [
        json!([{"clusterNetwork": "blue"}, {"clusterNetwork": "long", "ip": "dynamic"}]),
        json!([{"clusterNetwork": "nope", "ip": "dynamic"}]),
        json!([{"clusterNetwork": "blue", "ip6": "dynamic"}]),
        json!([{"clusterNetwork": "blue", "ip": "10.99.0.5/24"}]),
        json!([{"clusterNetwork": "blue", "bogus": 1}]),
    ];
    for req in cases {
        let reply = world.run(&plugin, "ADD", "c1", &world.conf(Some(req.clone())));
        let err = reply.err(7);
        assert!(!err["msg"].as_str().unwrap().is_empty(), "{req}");
        assert!(fake.calls().is_empty(), "{req}: {:?}", fake.calls());
        assert!(world.records().is_empty());
    }
    let mut legacy = world.conf(Some(json!([{"clusterNetwork": "blue"},
        {"clusterNetwork": "red"}, {"clusterNetwork": "red"}])));
    legacy["namingScheme"] = json!("legacy");
    let err = world.run(&plugin, "ADD", "c1", &legacy).err(7);
    assert!(err["msg"].as_str().unwrap().contains("\"red\""), "{err}");
    assert!(fake.calls().is_empty());
}

#[test]
fn the_default_network_gives_one_eth0_and_check_verifies_it() {
    let world = World::new(POD);
    world.cluster_network(
        "default",
        "macvlan",
        json!({"host_device": "eth1", "cidr": "10.70.0.0/24"}),
    );
    let (plugin, fake) = fake_plugin(POD);
    let conf = world.conf(None);
    let result = world.run(&plugin, "ADD", "c1", &conf).ok();
    assert_eq!(result["interfaces"].as_array().unwrap().len(), 1);
    assert_eq!(result["ips"][0]["interface"], json!(0));
    let mut check = conf.clone();
    check["prevResult"] = result.clone();
    world.run(&plugin, "CHECK", "c1", &check).ok();
    world.run(&plugin, "STATUS", "c1", &conf).ok();
    // The interface disappears behind plexus' back: CHECK notices.
    use plexus_netlink::Dataplane;
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
        .block_on(fake.delete_link(&Netns::path(POD), "eth0"))
        .unwrap();
    world.run(&plugin, "CHECK", "c1", &check).err(103);
    // GC with c1 not valid tears it down.
    let mut gc = conf.clone();
    gc["cni.dev/valid-attachments"] = json!([]);
    world.run(&plugin, "GC", "c1", &gc).ok();
    assert!(world.held("default").is_empty());
    assert!(world.records().is_empty());
}

#[test]
fn names_taken_in_the_pod_and_repeated_adds_are_refused_without_harm() {
    let world = World::new(POD);
    two_networks(&world);
    let (plugin, fake) = fake_plugin(POD);
    // Another plugin's interface called red1 already lives in the pod.
    fake.add_device(&Netns::path(POD), "red1", 1500);
    let conf = world.conf(Some(request()));
    let err = world.run(&plugin, "ADD", "c1", &conf).err(7);
    assert!(err["msg"].as_str().unwrap().contains("red1"), "{err}");
    let mut links = pod_links(&fake);
    links.sort();
    assert_eq!(links, ["lo", "red1"], "the foreign interface is untouched");
    assert!(world.held("blue").is_empty());

    let other = World::new(POD);
    two_networks(&other);
    let (plugin, fake) = fake_plugin(POD);
    let conf = other.conf(Some(request()));
    other.run(&plugin, "ADD", "c1", &conf).ok();
    let calls = fake.call_count();
    let err = other.run(&plugin, "ADD", "c1", &conf).err(7);
    assert!(err["msg"].as_str().unwrap().contains("DEL"), "{err}");
    assert_eq!(fake.call_count(), calls, "nothing touched");
    assert_eq!(other.held("blue").len(), 2);
    other.run(&plugin, "DEL", "c1", &conf).ok();
    other.run(&plugin, "ADD", "c1", &conf).ok();
}

#[test]
fn annotations_from_a_request_source_drive_the_pod() {
    use plexus::request::StaticRequestSource;
    use std::sync::Arc;
    let world = World::new(POD);
    two_networks(&world);
    let (mut plugin, fake) = fake_plugin(POD);
    let source = StaticRequestSource::new().with_pod(
        "ns",
        "p",
        [(
            "danm.k8s.io/interfaces".to_owned(),
            r#"[{"clusterNetwork":"red","ip":"dynamic"},{"clusterNetwork":"blue","ip":"dynamic"}]"#
                .to_owned(),
        )],
    );
    plugin.requests = Some(Arc::new(source));
    let conf = world.conf(None);
    let result = world.run(&plugin, "ADD", "c1", &conf).ok();
    assert_eq!(result["interfaces"][0]["name"], json!("eth0"));
    assert_eq!(result["interfaces"][1]["name"], json!("eth1"));
    assert!(
        result["ips"][0]["address"]
            .as_str()
            .unwrap()
            .starts_with("10.20.0.")
    );
    world.run(&plugin, "DEL", "c1", &conf).ok();
    assert_eq!(pod_links(&fake), ["lo"]);
}

#[test]
fn hostile_network_ids_never_reach_the_file_system() {
    let world = World::new(POD);
    for (file, id) in [("a", "../../etc/cni"), ("b", "x/y"), ("c", "..")] {
        let object = json!({"apiVersion": "plexus.io/v1", "kind": "ClusterNetwork",
            "metadata": {"name": file},
            "spec": {"NetworkID": id, "NetworkType": "bridge", "Options": {"cidr": "10.1.0.0/24"}}});
        std::fs::write(
            world
                .dir
                .path()
                .join("networks")
                .join(format!("{file}.json")),
            object.to_string(),
        )
        .unwrap();
        let (plugin, fake) = fake_plugin(POD);
        let conf = world.conf(Some(json!([{"clusterNetwork": file, "ip": "dynamic"}])));
        let err = world.run(&plugin, "ADD", "c1", &conf).err(7);
        assert!(
            err["msg"].as_str().unwrap().contains("NetworkID"),
            "{id}: {err}"
        );
        assert!(fake.calls().is_empty());
    }
}
