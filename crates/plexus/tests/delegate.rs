//! Delegation through real processes: shell-script CNI plugins in `CNI_PATH` that log every
//! call, beside built-in interfaces on the fake dataplane. Covers the IPAM replacement,
//! the version downgrade, a delegate's own IPAM, a delegate naming its interface otherwise,
//! a failing delegate, the ADD deadline, and STATUS/GC forwarding.

mod support;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::{Duration, Instant};

use plexus_netlink::{Dad, Dataplane};
use serde_json::{Value, json};
use support::{World, fake_plugin};

const POD: &str = "/run/netns/delegatepod";

/// Writes a logging CNI plugin `name` speaking `versions`.
fn script(world: &World, name: &str, versions: &str) {
    let bin = world.dir.path().join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let log = world.dir.path().join(format!("{name}.log"));
    let text = format!(
        r#"#!/bin/sh
conf=$(cat)
printf '%s %s %s\n' "$CNI_COMMAND" "${{CNI_IFNAME:-}}" "$conf" >> {log}
case "$CNI_COMMAND" in
  VERSION) echo '{{"cniVersion":"1.0.0","supportedVersions":[{versions}]}}'; exit 0;;
  ADD)
    name=$CNI_IFNAME
    case "$conf" in
      *'"behaviour":"fail"'*) echo '{{"cniVersion":"1.0.0","code":42,"msg":"refused by the test"}}'; exit 1;;
      *'"behaviour":"sleep"'*) sleep 5;;
      *'"behaviour":"rename"'*) name=net9;;
    esac
    echo "{{\"cniVersion\":\"1.0.0\",\"interfaces\":[{{\"name\":\"$name\",\"mac\":\"02:00:00:00:00:09\",\"sandbox\":\"$CNI_NETNS\"}}],\"ips\":[{{\"address\":\"10.90.0.9/24\",\"interface\":0}}]}}";;
esac
exit 0
"#,
        log = log.display()
    );
    let path = bin.join(name);
    std::fs::write(&path, text).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

fn log(world: &World, name: &str) -> Vec<String> {
    std::fs::read_to_string(world.dir.path().join(format!("{name}.log")))
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect()
}

fn static_conf(world: &World, id: &str, conf: Value) {
    std::fs::write(world.cni_dir().join(format!("{id}.conf")), conf.to_string()).unwrap();
}

fn world() -> World {
    let mut world = World::new(POD);
    script(&world, "oldplug", r#""0.3.1","0.4.0","1.0.0""#);
    script(&world, "newplug", r#""0.4.0","1.0.0","1.1.0""#);
    world.cni_path = world.dir.path().join("bin").display().to_string();
    world.cluster_network(
        "blue",
        "macvlan",
        json!({"host_device": "eth1", "cidr": "10.10.0.0/24"}),
    );
    world.cluster_network("ext", "oldplug", json!({"cidr": "10.91.0.0/24"}));
    static_conf(
        &world,
        "ext",
        json!({"cniVersion": "1.1.0", "name": "ext", "type": "oldplug",
        "ipam": {"type": "host-local", "subnet": "10.90.0.0/24"}}),
    );
    world.cluster_network("own", "newplug", json!({}));
    static_conf(
        &world,
        "own",
        json!({"cniVersion": "1.1.0", "name": "own", "type": "newplug"}),
    );
    world
}

fn exists(path: &Path) -> bool {
    path.exists()
}

#[test]
fn plexus_addresses_reach_a_downgraded_delegate_through_the_echo() {
    let world = world();
    let (plugin, _fake) = fake_plugin(POD);
    let conf = world.conf(Some(json!([{"clusterNetwork": "blue", "ip": "dynamic"},
                                      {"clusterNetwork": "ext", "ip": "dynamic"}])));
    let result = world.run(&plugin, "ADD", "c1", &conf).ok();
    assert_eq!(result["interfaces"][1]["name"], json!("eth1"));
    assert_eq!(result["interfaces"][1]["mac"], json!("02:00:00:00:00:09"));
    let ips = result["ips"].as_array().unwrap();
    assert_eq!(ips.len(), 2, "{result}");
    assert!(
        ips[1]["address"].as_str().unwrap().starts_with("10.91.0."),
        "plexus' address: {result}"
    );
    assert_eq!(ips[1]["interface"], json!(1));
    let adds: Vec<String> = log(&world, "oldplug")
        .into_iter()
        .filter(|l| l.starts_with("ADD"))
        .collect();
    assert_eq!(adds.len(), 1);
    assert!(adds[0].contains(r#""type":"plexus-ipam""#), "{}", adds[0]);
    assert!(!adds[0].contains("host-local"), "{}", adds[0]);
    assert!(
        adds[0].contains(r#""cniVersion":"1.0.0""#),
        "downgraded: {}",
        adds[0]
    );
    assert_eq!(world.held("ext").len(), 1);

    world.run(&plugin, "DEL", "c1", &conf).ok();
    assert!(
        log(&world, "oldplug")
            .iter()
            .any(|l| l.starts_with("DEL eth1 "))
    );
    assert!(world.held("ext").is_empty() && world.held("blue").is_empty());
}

#[test]
fn a_delegate_without_plexus_addresses_keeps_its_own_ipam_result() {
    let world = world();
    let (plugin, _fake) = fake_plugin(POD);
    let conf = world.conf(Some(
        json!([{"clusterNetwork": "own"}, {"clusterNetwork": "blue", "ip": "dynamic"}]),
    ));
    let result = world.run(&plugin, "ADD", "c1", &conf).ok();
    assert_eq!(
        result["ips"][0]["address"],
        json!("10.90.0.9/24"),
        "{result}"
    );
    assert_eq!(result["ips"][0]["interface"], json!(0));
    assert_eq!(result["ips"][1]["interface"], json!(1));
    let add = log(&world, "newplug")
        .into_iter()
        .find(|l| l.starts_with("ADD"))
        .unwrap();
    assert!(
        add.contains(r#""cniVersion":"1.1.0""#) && !add.contains("ipam"),
        "{add}"
    );
    world.run(&plugin, "DEL", "c1", &conf).ok();
}

#[test]
fn a_delegate_that_names_its_link_otherwise_gets_routes_and_checks_on_that_name() {
    let world = world();
    world.cluster_network(
        "ren",
        "newplug",
        json!({"cidr": "10.94.0.0/24", "routes": {"10.194.0.0/16": "10.94.0.1"}}),
    );
    static_conf(
        &world,
        "ren",
        json!({"cniVersion": "1.1.0", "name": "ren", "type": "newplug", "behaviour": "rename"}),
    );
    let (plugin, fake) = fake_plugin(POD);
    let pod = plexus_netlink::Netns::path(POD);
    // The kernel link the delegate made, under its own name, with plexus' address.
    fake.add_device(&pod, "net9", 1500);
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
        .block_on(fake.add_address(&pod, "net9", "10.94.0.5/24".parse().unwrap(), Dad::Skip))
        .unwrap();
    let conf = world.conf(Some(json!([{"clusterNetwork": "blue", "ip": "dynamic"},
                                      {"clusterNetwork": "ren", "ip": "10.94.0.5/24"}])));
    let result = world.run(&plugin, "ADD", "c1", &conf).ok();
    assert_eq!(result["interfaces"][1]["name"], json!("net9"), "{result}");
    assert_eq!(result["ips"][1]["interface"], json!(1), "{result}");
    assert!(
        result["ips"][1]["address"]
            .as_str()
            .unwrap()
            .starts_with("10.94.0.5/"),
        "{result}"
    );
    let routes = fake.netns_state(&pod).unwrap().routes;
    assert!(
        routes
            .iter()
            .any(|r| r.destination.to_string() == "10.194.0.0/16"
                && r.link.as_deref() == Some("net9")),
        "the route goes out of the reported link: {routes:?}"
    );
    let mut check = conf.clone();
    check["prevResult"] = result;
    world.run(&plugin, "CHECK", "c1", &check).ok();
    world.run(&plugin, "DEL", "c1", &conf).ok();
    assert!(
        log(&world, "newplug")
            .iter()
            .any(|l| l.starts_with("DEL eth1 ")),
        "DEL goes to the delegate under the CNI_IFNAME it was given"
    );
    assert!(world.held("ren").is_empty() && world.records().is_empty());
}

#[test]
fn a_failing_delegate_is_code_112_and_everything_before_it_is_undone() {
    let world = world();
    world.cluster_network("bad", "oldplug", json!({"cidr": "10.92.0.0/24"}));
    static_conf(
        &world,
        "bad",
        json!({"cniVersion": "1.0.0", "name": "bad", "type": "oldplug",
        "behaviour": "fail"}),
    );
    let (plugin, fake) = fake_plugin(POD);
    let conf = world.conf(Some(json!([{"clusterNetwork": "blue", "ip": "dynamic"},
        {"clusterNetwork": "ext", "ip": "dynamic"}, {"clusterNetwork": "bad", "ip": "dynamic"}])));
    let err = world.run(&plugin, "ADD", "c1", &conf).err(112);
    assert!(
        err["msg"].as_str().unwrap().contains("refused by the test"),
        "{err}"
    );
    assert!(err["details"].as_str().unwrap().contains("42"), "{err}");
    let calls: Vec<String> = log(&world, "oldplug")
        .iter()
        .filter(|l| !l.starts_with("VERSION"))
        .map(|l| l.split(' ').take(2).collect::<Vec<_>>().join(" "))
        .collect();
    assert_eq!(
        calls,
        ["ADD eth1", "ADD eth2", "DEL eth2", "DEL eth1"],
        "newest first"
    );
    for network in ["blue", "ext", "bad"] {
        assert!(world.held(network).is_empty(), "{network}");
    }
    let links = fake
        .netns_state(&plexus_netlink::Netns::path(POD))
        .unwrap()
        .links;
    assert_eq!(links.len(), 1, "{links:?}");
    assert!(world.records().is_empty());
}

#[test]
fn an_add_past_its_deadline_is_code_11_and_undone() {
    let world = world();
    world.cluster_network("slow", "oldplug", json!({"cidr": "10.93.0.0/24"}));
    static_conf(
        &world,
        "slow",
        json!({"cniVersion": "1.0.0", "name": "slow", "type": "oldplug",
        "behaviour": "sleep"}),
    );
    let (plugin, _fake) = fake_plugin(POD);
    let mut conf = world.conf(Some(json!([{"clusterNetwork": "blue", "ip": "dynamic"},
        {"clusterNetwork": "slow", "ip": "dynamic"}])));
    conf["timeouts"]["addMs"] = json!(700);
    conf["maxParallel"] = json!(4);
    let started = Instant::now();
    let err = world.run(&plugin, "ADD", "c1", &conf).err(11);
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "{:?}",
        started.elapsed()
    );
    assert!(err["msg"].as_str().unwrap().contains("700 ms"), "{err}");
    assert!(world.held("blue").is_empty() && world.held("slow").is_empty());
    assert!(
        log(&world, "oldplug")
            .iter()
            .any(|l| l.starts_with("DEL eth1 "))
    );
    assert!(world.records().is_empty());
}

#[test]
fn status_and_gc_reach_only_delegates_that_speak_1_1() {
    let world = world();
    let (plugin, _fake) = fake_plugin(POD);
    let conf = world.conf(Some(
        json!([{"clusterNetwork": "own"}, {"clusterNetwork": "ext", "ip": "dynamic"}]),
    ));
    world.run(&plugin, "ADD", "c1", &conf).ok();
    world.run(&plugin, "ADD", "c2", &conf).ok();
    world.run(&plugin, "STATUS", "c1", &conf).ok();
    let mut gc = conf.clone();
    gc["cni.dev/valid-attachments"] = json!([{"containerID": "c1", "ifname": "eth0"}]);
    world.run(&plugin, "GC", "c1", &gc).ok();
    let new = log(&world, "newplug");
    assert!(new.iter().any(|l| l.starts_with("STATUS")), "{new:?}");
    let gc_line = new
        .iter()
        .find(|l| l.starts_with("GC"))
        .expect("GC forwarded");
    assert!(
        gc_line.contains(r#"{"containerID":"c1","ifname":"eth0"}"#),
        "{gc_line}"
    );
    assert!(!gc_line.contains("\"c2\""), "{gc_line}");
    assert!(
        new.iter().any(|l| l.starts_with("DEL eth0")),
        "c2 torn down: {new:?}"
    );
    let old = log(&world, "oldplug");
    assert!(
        !old.iter()
            .any(|l| l.starts_with("STATUS") || l.starts_with("GC")),
        "{old:?}"
    );
    assert_eq!(world.held("ext").len(), 1, "c1 kept, c2 released");
    assert!(exists(&world.dir.path().join("state/c1.eth0.json")));
}
