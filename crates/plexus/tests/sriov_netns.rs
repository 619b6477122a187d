//! SR-IOV through the device plugin, as root in real network namespaces without SR-IOV
//! hardware: a fake kubelet serving the pod-resources API (and a device checkpoint file)
//! hands out device IDs, and a fake `sriov` delegate records the `deviceID` it receives and
//! stands in for the VF with one end of a veth pair in the pod (which plexus post-processes like any
//! kernel link). Two interfaces from one pool get two devices; CHECK and DEL pass the same
//! ones; a pod without enough devices fails naming the resource and leaves nothing.

mod support;

use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use plexus_kubelet::fake::{FakeKubelet, FakePod};
use serde_json::{Value, json};
use support::World;
use support::netns::{
    Netns, POD_ARGS, assert_pod_empty, exec, exec_with, ok, plugin_path, privileged,
};

const POOL: &str = "intel.com/sriov_vf_a";

/// The fake SR-IOV CNI: logs every call to `sriov.log` (its stderr to `sriov.err`); ADD
/// makes a link named `CNI_IFNAME` in the pod (one end of a veth pair, standing in for a
/// VF moved out of the host) with the address plexus passed in `ipam.static`; DEL deletes
/// it (and so its host end).
fn install_fake_sriov(world: &World) {
    let dir = world.dir.path();
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let text = format!(
        r#"#!/bin/sh
exec 2>>{dir}/sriov.err
conf=$(cat)
printf '%s %s %s\n' "$CNI_COMMAND" "${{CNI_IFNAME:-}}" "$conf" >> {dir}/sriov.log
ns=$(basename "${{CNI_NETNS:-none}}")
case "$CNI_COMMAND" in
  VERSION) echo '{{"cniVersion":"1.0.0","supportedVersions":["0.4.0","1.0.0","1.1.0"]}}';;
  ADD)
    address=$(printf '%s' "$conf" | sed -n 's/.*"static":\[{{"address":"\([^"]*\)".*/\1/p')
    pf=plxvf$$
    ip link add "$pf" type veth peer name "$CNI_IFNAME" netns "$ns" &&
      ip link set "$pf" up &&
      ip -n "$ns" addr add "$address" dev "$CNI_IFNAME" &&
      ip -n "$ns" link set "$CNI_IFNAME" up ||
      {{ echo '{{"cniVersion":"1.0.0","code":11,"msg":"fake VF set-up failed"}}'; exit 1; }}
    echo "{{\"cniVersion\":\"1.0.0\",\"interfaces\":[{{\"name\":\"$CNI_IFNAME\",\"sandbox\":\"$CNI_NETNS\"}}],\"ips\":[{{\"address\":\"$address\",\"interface\":0}}]}}";;
  DEL) ip -n "$ns" link del "$CNI_IFNAME" 2>/dev/null;;
esac
exit 0
"#,
        dir = dir.display()
    );
    let path = bin.join("sriov");
    std::fs::write(&path, text).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// (verb, ifname, top-level deviceID, runtimeConfig.deviceID) of every call but VERSION.
fn calls(world: &World) -> Vec<(String, String, Value, Value)> {
    std::fs::read_to_string(world.dir.path().join("sriov.log"))
        .unwrap_or_default()
        .lines()
        .filter(|l| !l.starts_with("VERSION"))
        .map(|line| {
            let mut parts = line.splitn(3, ' ');
            let verb = parts.next().unwrap().to_owned();
            let ifname = parts.next().unwrap().to_owned();
            let conf: Value = serde_json::from_str(parts.next().unwrap()).unwrap();
            let top = conf["deviceID"].clone();
            let runtime = conf["runtimeConfig"]["deviceID"].clone();
            (verb, ifname, top, runtime)
        })
        .collect()
}

/// The device each interface got from `verb` calls (both places must agree).
fn devices(world: &World, verb: &str) -> Vec<(String, String)> {
    calls(world)
        .into_iter()
        .filter(|c| c.0 == verb)
        .map(|(_, ifname, top, runtime)| {
            assert_eq!(
                top, runtime,
                "{verb} {ifname}: config and runtimeConfig differ"
            );
            (ifname, top.as_str().unwrap_or("<none>").to_owned())
        })
        .collect()
}

/// `vf-a` and `vf-b`, both sriov networks on the pool, with routes; the kubelet sources in
/// the world's directory.
fn setup() -> World {
    let mut world = World::new("");
    world.cni_path = plugin_path(world.dir.path());
    install_fake_sriov(&world);
    world.cluster_network(
        "vf-a",
        "sriov",
        json!({"device_pool": POOL, "cidr": "10.75.0.0/24", "vlan": 300,
               "routes": {"10.175.0.0/16": "10.75.0.1"}}),
    );
    world.cluster_network(
        "vf-b",
        "sriov",
        json!({"device_pool": POOL, "cidr": "10.76.0.0/24",
               "routes": {"10.176.0.0/16": "10.76.0.1"}}),
    );
    world
}

fn conf(world: &World) -> Value {
    let mut conf = world.conf(Some(json!([{"clusterNetwork": "vf-a", "ip": "dynamic"},
                                          {"clusterNetwork": "vf-b", "ip": "dynamic"}])));
    conf["kubelet"] = json!({
        "podResourcesSocket": world.dir.path().join("kubelet.sock"),
        "checkpointFile": world.dir.path().join("kubelet_internal_checkpoint"),
        "timeoutMs": 2000});
    conf
}

fn nothing_left(world: &World, pod: &Netns) {
    assert_pod_empty(pod);
    for network in ["vf-a", "vf-b"] {
        assert!(world.held(network).is_empty(), "{network}");
    }
    assert!(world.records().is_empty());
}

#[test]
fn two_interfaces_from_one_pool_get_two_devices_and_del_passes_them_back() {
    if !privileged("two_interfaces_from_one_pool_get_two_devices_and_del_passes_them_back") {
        return;
    }
    let world = &setup();
    let kubelet = FakeKubelet::start(
        &world.dir.path().join("kubelet.sock"),
        vec![
            FakePod::new("ns", "other").devices("app", POOL, &["0000:03:02.7"]),
            FakePod::new("ns", "p")
                .devices("app", POOL, &["0000:03:02.1"])
                .devices("sidecar", POOL, &["0000:03:02.2"])
                .devices("app", "example.com/dpdk", &["0000:05:00.1"]),
        ],
    )
    .unwrap();
    let conf = conf(world);
    let pod = Netns::new("plxp");
    let result = ok(exec(world, "ADD", "ctr-s", &pod, &conf));
    assert_eq!(kubelet.calls(), 1);
    let added = devices(world, "ADD");
    assert_eq!(
        added,
        [
            ("eth0".to_owned(), "0000:03:02.1".to_owned()),
            ("eth1".to_owned(), "0000:03:02.2".to_owned())
        ],
        "one device each, the pod's own, in the kubelet's order"
    );
    // The "VFs" are kernel links: plexus post-processes them like any other.
    let routes = pod.text(&["ip", "route"]);
    assert!(
        routes.contains("10.175.0.0/16 via 10.75.0.1 dev eth0"),
        "{routes}"
    );
    assert!(
        routes.contains("10.176.0.0/16 via 10.76.0.1 dev eth1"),
        "{routes}"
    );
    assert_eq!(world.held("vf-a").len(), 1);
    let recorded = std::fs::read_to_string(
        std::fs::read_dir(world.dir.path().join("state"))
            .unwrap()
            .next()
            .unwrap()
            .unwrap()
            .path(),
    )
    .unwrap();
    assert!(
        recorded.contains("0000:03:02.1") && recorded.contains("0000:03:02.2"),
        "the devices are kept with the pod's records: {recorded}"
    );
    // The kubelet is gone (or has moved on): CHECK and DEL pass the recorded devices.
    drop(kubelet);
    let mut check = conf.clone();
    check["prevResult"] = result;
    ok(exec(world, "CHECK", "ctr-s", &pod, &check));
    assert_eq!(devices(world, "CHECK"), added);
    ok(exec(world, "DEL", "ctr-s", &pod, &conf));
    let mut deleted = devices(world, "DEL");
    deleted.sort();
    assert_eq!(deleted, added);
    nothing_left(world, &pod);
}

#[test]
fn the_device_checkpoint_serves_when_the_pod_resources_api_is_down() {
    if !privileged("the_device_checkpoint_serves_when_the_pod_resources_api_is_down") {
        return;
    }
    let world = &setup();
    // Kubernetes ≥ 1.21's format: device IDs per NUMA node.
    let checkpoint = json!({"Data": {"PodDeviceEntries": [
            {"PodUID": "uid-other", "ContainerName": "app", "ResourceName": POOL,
             "DeviceIDs": {"0": ["0000:03:02.5"]}, "AllocResp": "CgA="},
            {"PodUID": "uid-7", "ContainerName": "app", "ResourceName": POOL,
             "DeviceIDs": {"0": ["0000:03:02.3"], "1": ["0000:81:02.4"]}, "AllocResp": "CgA="}],
        "RegisteredDevices": {POOL: ["0000:03:02.3", "0000:81:02.4", "0000:03:02.5"]}},
        "Checksum": 1});
    std::fs::write(
        world.dir.path().join("kubelet_internal_checkpoint"),
        checkpoint.to_string(),
    )
    .unwrap();
    let conf = conf(world);
    let pod = Netns::new("plxp");
    let args = format!("{POD_ARGS};K8S_POD_UID=uid-7");
    let add = exec_with(world, "ADD", "ctr-c", &pod, &conf, &args);
    assert_eq!(add.code, 0, "{}\n{}", add.value, add.stderr);
    assert_eq!(
        devices(world, "ADD"),
        [
            ("eth0".to_owned(), "0000:03:02.3".to_owned()),
            ("eth1".to_owned(), "0000:81:02.4".to_owned())
        ]
    );
    let del = exec_with(world, "DEL", "ctr-c", &pod, &conf, &args);
    assert_eq!(del.code, 0, "{}", del.value);
    let mut deleted = devices(world, "DEL");
    deleted.sort();
    assert_eq!(deleted, devices(world, "ADD"));
    nothing_left(world, &pod);
}

#[test]
fn a_pod_short_of_devices_fails_naming_the_resource_and_leaves_nothing() {
    if !privileged("a_pod_short_of_devices_fails_naming_the_resource_and_leaves_nothing") {
        return;
    }
    let world = &setup();
    let conf = conf(world);
    {
        let _kubelet = FakeKubelet::start(
            &world.dir.path().join("kubelet.sock"),
            vec![FakePod::new("ns", "p").devices("app", POOL, &["0000:03:02.1"])],
        )
        .unwrap();
        let pod = Netns::new("plxp");
        let (code, err) = exec(world, "ADD", "ctr-x", &pod, &conf);
        assert_ne!(code, 0);
        assert_eq!(err["code"], json!(115), "{err}");
        let msg = err["msg"].as_str().unwrap();
        for part in [POOL, "eth1", "vf-b", "0000:03:02.1", "need 2"] {
            assert!(msg.contains(part), "{part}: {msg}");
        }
        assert!(
            calls(world).is_empty(),
            "no delegate ran: {:?}",
            calls(world)
        );
        nothing_left(world, &pod);
    }
    // Neither source can say (no API, no K8S_POD_UID for the checkpoint): 116, each
    // source's reason given, nothing set up.
    let pod = Netns::new("plxp");
    let started = std::time::Instant::now();
    let (code, err) = exec(world, "ADD", "ctr-y", &pod, &conf);
    assert!(started.elapsed() < Duration::from_secs(10));
    assert_ne!(code, 0);
    assert_eq!(err["code"], json!(116), "{err}");
    let msg = err["msg"].as_str().unwrap();
    assert!(msg.contains("K8S_POD_UID"), "{msg}");
    assert!(calls(world).is_empty());
    nothing_left(world, &pod);
}
