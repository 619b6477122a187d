//! [`plexus_netlink::RealDataplane`] and namespaces on the running kernel, as root: traffic
//! between pods, announcements, error reporting, netns identity and caching, and that no
//! tokio worker ever changes netns.

mod common;

use std::time::Duration;

use common::{Lab, TestNetns, ip, net, privileged, unique};
use plexus_netlink::{
    Dad, Dataplane, ErrorKind, LinkSpec, MacvlanMode, Netns, RealDataplane, Route, Rule, Sysctl,
};
use plexus_test_support::privileged::sh;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn traffic_flows_between_two_pods_on_one_parent() {
    if !privileged("traffic_flows_between_two_pods_on_one_parent") {
        return;
    }
    let lab = Lab::new(1500).await;
    let (a, b) = (TestNetns::new("nla"), TestNetns::new("nlb"));
    lab.attach(&a, "eth1", &["10.81.0.1/24", "fd00:81::1/64"])
        .await;
    lab.attach(&b, "eth1", &["10.81.0.2/24", "fd00:81::2/64"])
        .await;
    a.exec(&["ping", "-c", "1", "-W", "2", "10.81.0.2"]);
    b.exec(&["ping", "-c", "1", "-W", "2", "10.81.0.1"]);
    a.exec(&["ping", "-6", "-c", "1", "-W", "2", "fd00:81::2"]);
    lab.dp
        .delete_link(&b.netns(), "eth1")
        .await
        .expect("delete");
    assert!(
        !a.try_exec(&["ping", "-c", "1", "-W", "1", "10.81.0.2"]),
        "no answer once the peer's interface is gone"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn announcements_reach_the_segment() {
    if !privileged("announcements_reach_the_segment") {
        return;
    }
    let lab = Lab::new(1500).await;
    let pod = TestNetns::new("nlp");
    // The switch side learns neighbours from unsolicited ARP/NA only when told to.
    lab.node
        .ip(&["addr", "add", "10.82.0.1/24", "dev", &lab.peer]);
    lab.node
        .ip(&["addr", "add", "fd00:82::1/64", "dev", &lab.peer, "nodad"]);
    lab.node.write_sysctl(
        &format!("/proc/sys/net/ipv4/conf/{}/arp_accept", lab.peer),
        "1",
    );
    // Since RFC 9131 Linux creates entries from untracked NAs only on routers.
    for (key, value) in [("accept_untracked_na", "1"), ("forwarding", "1")] {
        lab.node.write_sysctl(
            &format!("/proc/sys/net/ipv6/conf/{}/{key}", lab.peer),
            value,
        );
    }
    lab.attach(&pod, "eth1", &["10.82.0.5/24", "fd00:82::5/64"])
        .await;
    let mac = lab
        .dp
        .link(&pod.netns(), "eth1")
        .await
        .expect("ok")
        .and_then(|l| l.mac)
        .expect("mac");
    lab.node.ip(&["neigh", "flush", "dev", &lab.peer]);
    // Control: nothing else teaches the switch side these addresses.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let quiet = lab.node.ip(&["neigh", "show", "dev", &lab.peer]);
    assert!(
        !quiet.contains("10.82.0.5 ") && !quiet.contains("fd00:82::5 "),
        "{quiet}"
    );

    lab.dp
        .announce(&pod.netns(), "eth1", &[ip("10.82.0.5"), ip("fd00:82::5")])
        .await
        .expect("announce");

    let mut neigh = String::new();
    for _ in 0..50 {
        neigh = lab.node.ip(&["neigh", "show", "dev", &lab.peer]);
        if neigh.contains("10.82.0.5 ") && neigh.contains("fd00:82::5 ") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for addr in ["10.82.0.5", "fd00:82::5"] {
        let line = neigh
            .lines()
            .find(|l| l.starts_with(&format!("{addr} ")))
            .unwrap_or_else(|| panic!("{addr} not learned: {neigh}"));
        assert!(line.contains(&mac.to_string()), "{line}");
    }
    let down = lab.dp.set_down(&pod.netns(), "eth1").await;
    down.expect("down");
    let err = lab
        .dp
        .announce(&pod.netns(), "eth1", &[ip("10.82.0.5")])
        .await
        .expect_err("link down");
    assert_eq!(err.context().link.as_deref(), Some("eth1"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_say_what_failed_where() {
    if !privileged("errors_say_what_failed_where") {
        return;
    }
    let lab = Lab::new(1500).await;
    let (host, dp) = (lab.host(), &lab.dp);
    let err = dp
        .create_link(
            &host,
            &LinkSpec::macvlan("m1", "nope0", MacvlanMode::Bridge),
        )
        .await
        .expect_err("missing parent");
    assert_eq!(err.kind(), ErrorKind::NotFound);
    let text = err.to_string();
    assert!(
        text.contains("create link \"m1\"")
            && text.contains("nope0")
            && text.contains(&lab.node.name),
        "{text}"
    );

    let gone = Netns::path(format!("/run/netns/{}", unique("gone")));
    let err = dp.list_links(&gone).await.expect_err("no such netns");
    assert_eq!(err.kind(), ErrorKind::NotFound);
    assert!(err.to_string().contains("/run/netns/"), "{err}");
    dp.delete_link(&gone, "eth1")
        .await
        .expect("deleting in a gone netns");
    dp.del_rule(&gone, &Rule::from_source(net("10.0.0.5/24"), 100))
        .await
        .expect("deleting in a gone netns");

    dp.create_link(&host, &LinkSpec::bridge("b1"))
        .await
        .expect("b1");
    let err = dp
        .move_link(&host, "b1", &gone)
        .await
        .expect_err("no target");
    assert_eq!(err.kind(), ErrorKind::NotFound);
    let err = dp
        .rename_link(&host, "b1", &lab.nic)
        .await
        .expect_err("taken");
    assert_eq!(err.kind(), ErrorKind::Exists);
    let err = dp
        .rename_link(&host, "b1", "bad/name")
        .await
        .expect_err("bad");
    assert_eq!(err.kind(), ErrorKind::Invalid);
    let err = dp
        .list_addresses(&host, "nope0")
        .await
        .expect_err("no link");
    assert_eq!(err.kind(), ErrorKind::NotFound);
    let err = dp.set_up(&host, "nope0").await.expect_err("no link");
    assert_eq!(err.kind(), ErrorKind::NotFound);

    // A route through a link that is down: the kernel refuses (ENETDOWN / ENETUNREACH).
    dp.add_address(&host, "b1", net("10.84.0.1/24"), Dad::Skip)
        .await
        .expect("addr");
    let err = dp
        .add_route(
            &host,
            &Route::new(net("10.85.0.0/16"))
                .via(ip("10.84.0.2"))
                .dev("b1"),
        )
        .await
        .expect_err("down link");
    assert!(
        err.to_string().contains("10.85.0.0/16 via 10.84.0.2"),
        "{err}"
    );
    let err = dp
        .add_route(&host, &Route::new(net("10.85.0.0/16")).via(ip("fd00::1")))
        .await
        .expect_err("mixed families");
    assert_eq!(err.kind(), ErrorKind::Invalid);
    let err = dp
        .set_mtu(&host, &lab.nic, 10)
        .await
        .expect_err("MTU below the minimum");
    assert_eq!(err.kind(), ErrorKind::Invalid);
    let multicast = "01:00:5e:00:00:01".parse().expect("mac");
    let err = dp
        .set_mac(&host, "b1", multicast)
        .await
        .expect_err("multicast");
    assert_eq!(err.kind(), ErrorKind::Invalid);
    let err = dp
        .delete_link(&host, "lo")
        .await
        .expect_err("loopback stays");
    assert_eq!(err.kind(), ErrorKind::Unsupported);
    let pod = TestNetns::new("nlp");
    let err = dp
        .move_link(&host, "lo", &pod.netns())
        .await
        .expect_err("lo");
    assert_eq!(err.kind(), ErrorKind::Invalid);
    let err = dp
        .create_link(
            &host,
            &LinkSpec::macvlan("m2", &lab.nic, MacvlanMode::Bridge).with_mtu(1600),
        )
        .await
        .expect_err("above the parent's MTU");
    assert_eq!(err.kind(), ErrorKind::Invalid);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recreated_netns_path_is_a_new_namespace() {
    if !privileged("a_recreated_netns_path_is_a_new_namespace") {
        return;
    }
    let dp = RealDataplane::new().expect("dataplane");
    let ns = TestNetns::new("nlr");
    dp.create_link(&ns.netns(), &LinkSpec::bridge("old0"))
        .await
        .expect("bridge");
    assert_eq!(dp.open_connections(), 1);
    // The runtime deletes the sandbox and a new one gets the same name.
    sh(&["ip", "netns", "del", &ns.name]);
    sh(&["ip", "netns", "add", &ns.name]);
    let links = dp.list_links(&ns.netns()).await.expect("fresh netns");
    assert_eq!(
        links.iter().map(|l| l.name.as_str()).collect::<Vec<_>>(),
        vec!["lo"],
        "no stale socket into the old namespace"
    );
    assert_eq!(dp.open_connections(), 2);
    dp.forget_netns(&ns.netns());
    assert_eq!(dp.open_connections(), 1);
    assert!(
        dp.list_links(&ns.netns()).await.is_ok(),
        "reopens on demand"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_setups_never_move_a_worker_thread() {
    if !privileged("concurrent_setups_never_move_a_worker_thread") {
        return;
    }
    let own_netns = || std::fs::read_link("/proc/thread-self/ns/net").expect("netns link");
    let before = own_netns();
    let lab = std::sync::Arc::new(Lab::new(1500).await);
    let pods: Vec<std::sync::Arc<TestNetns>> = (0..6)
        .map(|_| std::sync::Arc::new(TestNetns::new("nlc")))
        .collect();
    let mut tasks = Vec::new();
    for (i, pod) in pods.iter().enumerate() {
        let (lab, pod) = (lab.clone(), pod.clone());
        tasks.push(tokio::spawn(async move {
            let addr = format!("10.86.0.{}/24", i + 10);
            lab.attach(&pod, "eth1", &[&addr]).await;
            lab.dp
                .set_sysctls(&pod.netns(), "eth1", &[Sysctl::AcceptRa(false)])
                .await
                .expect("sysctl");
            // Whatever ran on this worker, it is still in the netns it started in.
            std::fs::read_link("/proc/thread-self/ns/net").expect("netns link")
        }));
    }
    for task in tasks {
        assert_eq!(task.await.expect("joined"), before);
    }
    for pod in &pods {
        let link = lab
            .dp
            .link(&pod.netns(), "eth1")
            .await
            .expect("ok")
            .expect("eth1");
        assert!(link.up);
    }
    assert_eq!(own_netns(), before);
}

#[tokio::test]
async fn the_host_netns_is_the_constructing_threads() {
    if !privileged("the_host_netns_is_the_constructing_threads") {
        return;
    }
    let dp = RealDataplane::new().expect("dataplane");
    let lo = dp.link(&Netns::Host, "lo").await.expect("ok").expect("lo");
    assert_eq!(lo.index, 1);
    let names = |out: String| -> Vec<String> {
        out.lines()
            .filter_map(|l| l.split(": ").nth(1))
            .map(|n| n.split('@').next().unwrap_or(n).to_string())
            .collect()
    };
    // Other processes may add or remove links meanwhile: compare what is stable.
    let before = names(sh(&["ip", "-o", "link", "show"]));
    let ours: Vec<String> = dp
        .list_links(&Netns::Host)
        .await
        .expect("ok")
        .into_iter()
        .map(|l| l.name)
        .collect();
    let after = names(sh(&["ip", "-o", "link", "show"]));
    for name in before.iter().filter(|n| after.contains(n)) {
        assert!(ours.contains(name), "{name} missing from {ours:?}");
    }
    let via_proc = Netns::path(format!("/proc/{}/ns/net", std::process::id()));
    let lo_again = dp.link(&via_proc, "lo").await.expect("ok").expect("lo");
    assert_eq!(lo_again, lo, "another path to the same netns");
    assert_eq!(
        dp.open_connections(),
        1,
        "one connection per namespace, not per path"
    );
}
