//! CHECK verifies routes and policy rules (fake dataplane, real SQLite store): a route
//! deleted behind plexus' back, a missing policy rule, or a prevResult without a route
//! plexus set up each fail with code 103 and a message naming the route or rule.

mod support;

use plexus_netlink::{Dataplane, IpFamily, Netns, Route, Rule};
use serde_json::{Value, json};
use support::{World, fake_plugin};

const POD: &str = "/run/netns/checkpod";

fn setup() -> (
    World,
    plexus::PlexusPlugin,
    std::sync::Arc<plexus_netlink::FakeDataplane>,
    Value,
    Value,
) {
    let world = World::new(POD);
    world.cluster_network(
        "blue",
        "macvlan",
        json!({"host_device": "eth1", "cidr": "10.10.0.0/24",
               "routes": {"10.99.0.0/16": "10.10.0.1"}}),
    );
    world.cluster_network(
        "red",
        "macvlan",
        json!({"host_device": "eth2", "cidr": "10.20.0.0/24", "rt_tables": 100}),
    );
    let (plugin, fake) = fake_plugin(POD);
    let conf = world.conf(Some(json!([
        {"clusterNetwork": "blue", "ip": "dynamic"},
        {"clusterNetwork": "red", "ip": "dynamic", "proutes": {"192.168.0.0/16": "10.20.0.254"}}
    ])));
    let result = world.run(&plugin, "ADD", "c1", &conf).ok();
    let mut check = conf.clone();
    check["prevResult"] = result;
    (world, plugin, fake, conf, check)
}

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
        .block_on(f)
}

#[test]
fn check_passes_then_fails_when_a_main_table_route_is_deleted() {
    let (world, plugin, fake, conf, check) = setup();
    world.run(&plugin, "CHECK", "c1", &check).ok();
    let route = Route::new("10.99.0.0/16".parse().unwrap())
        .via("10.10.0.1".parse().unwrap())
        .dev("eth0");
    block_on(fake.del_route(&Netns::path(POD), &route)).unwrap();
    let err = world.run(&plugin, "CHECK", "c1", &check).err(103);
    assert_eq!(
        err["msg"],
        json!("CHECK: route 10.99.0.0/16 via 10.10.0.1 dev eth0 is missing in the pod")
    );
    world.run(&plugin, "DEL", "c1", &conf).ok();
}

#[test]
fn check_fails_when_a_policy_route_or_its_rule_is_gone() {
    let (world, plugin, fake, _conf, check) = setup();
    let pod = Netns::path(POD);
    let rule = fake
        .netns_state(&pod)
        .unwrap()
        .rules
        .into_iter()
        .find(|r| r.table == 100)
        .expect("policy rule");
    block_on(fake.del_rule(&pod, &rule)).unwrap();
    let err = world.run(&plugin, "CHECK", "c1", &check).err(103);
    let msg = err["msg"].as_str().unwrap();
    assert!(
        msg.contains("policy rule \"from 10.20.0.")
            && msg.contains("lookup 100\" of eth1 is missing"),
        "{msg}"
    );
    block_on(fake.add_rule(
        &pod,
        &Rule {
            priority: None,
            ..rule
        },
    ))
    .unwrap();
    world.run(&plugin, "CHECK", "c1", &check).ok();
    let route = Route::new("192.168.0.0/16".parse().unwrap())
        .via("10.20.0.254".parse().unwrap())
        .dev("eth1")
        .in_table(100);
    block_on(fake.del_route(&pod, &route)).unwrap();
    let err = world.run(&plugin, "CHECK", "c1", &check).err(103);
    assert_eq!(
        err["msg"],
        json!(
            "CHECK: route 192.168.0.0/16 via 10.20.0.254 dev eth1 table 100 is missing in the pod"
        )
    );
    assert_eq!(rule.family, IpFamily::V4);
}

#[test]
fn check_fails_when_prev_result_lacks_a_route_plexus_added() {
    let (world, plugin, _fake, _conf, mut check) = setup();
    let routes = check["prevResult"]["routes"].as_array_mut().unwrap();
    routes.retain(|r| r["dst"] != json!("10.99.0.0/16"));
    let err = world.run(&plugin, "CHECK", "c1", &check).err(103);
    assert!(
        err["msg"]
            .as_str()
            .unwrap()
            .contains("missing from prevResult"),
        "{err}"
    );
}
