//! [`plexus_netlink::RealDataplane`] links on the running kernel, as root: the built-in
//! macvlan sequence end to end, vxlan, bridge, veth, and ipvlan/vlan where the kernel has
//! them. Each test works in fresh named namespaces (a "node" with a veth pair as its NIC,
//! and pods); nothing touches the machine's own host netns.

mod common;

use common::{Lab, TestNetns, ip, net, privileged, unique};
use plexus_netlink::{
    Dad, Dataplane, ErrorKind, IpvlanMode, LinkKind, LinkSpec, MacvlanMode, Route, Rule, Sysctl,
    VxlanSpec, temporary_link_name, vlan_link_name,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn macvlan_full_lifecycle() {
    if !privileged("macvlan_full_lifecycle") {
        return;
    }
    let lab = Lab::new(1400).await;
    let pod = TestNetns::new("nlp");
    let (host, podns, dp) = (lab.host(), pod.netns(), &lab.dp);

    let tmp = temporary_link_name();
    let created = dp
        .create_link(
            &host,
            &LinkSpec::macvlan(&tmp, &lab.nic, MacvlanMode::Bridge),
        )
        .await
        .expect("create");
    assert_eq!(created.kind, Some(LinkKind::Macvlan));
    assert_eq!(created.mtu, 1400, "MTU inherited from the parent");
    assert!(!created.up);
    let nic = dp.link(&host, &lab.nic).await.expect("ok").expect("nic");
    assert_eq!(created.parent_index, Some(nic.index));
    let dup = dp
        .create_link(
            &host,
            &LinkSpec::macvlan(&tmp, &lab.nic, MacvlanMode::Bridge),
        )
        .await
        .expect_err("same name");
    assert_eq!(dup.kind(), ErrorKind::Exists);

    dp.move_link(&host, &tmp, &podns).await.expect("move");
    assert!(!dp.link_exists(&host, &tmp).await.expect("ok"));
    assert!(dp.link_exists(&podns, &tmp).await.expect("ok"));

    dp.add_address(&podns, &tmp, net("10.77.0.5/24"), Dad::Skip)
        .await
        .expect("v4");
    dp.add_address(&podns, &tmp, net("fd00:77::5/64"), Dad::Skip)
        .await
        .expect("v6");
    let again = dp
        .add_address(&podns, &tmp, net("10.77.0.5/24"), Dad::Skip)
        .await
        .expect_err("duplicate address");
    assert_eq!(again.kind(), ErrorKind::Exists);
    dp.rename_link(&podns, &tmp, "eth1").await.expect("rename");
    dp.set_up(&podns, "eth1").await.expect("up");

    let link = dp.link(&podns, "eth1").await.expect("ok").expect("renamed");
    assert!(link.up);
    assert_eq!(link.mac, created.mac, "a move keeps the MAC");
    let addrs = dp.list_addresses(&podns, "eth1").await.expect("ok");
    for want in ["10.77.0.5/24", "fd00:77::5/64"] {
        let entry = addrs
            .iter()
            .find(|a| a.address == net(want))
            .unwrap_or_else(|| panic!("{want} missing from {addrs:?}"));
        assert!(!entry.tentative, "NODAD: {want} usable at once");
    }
    let shown = pod.ip(&["-6", "addr", "show", "dev", "eth1"]);
    assert!(
        shown.contains("fd00:77::5/64") && shown.contains("nodad"),
        "{shown}"
    );

    // Main-table routes, and DANM's policy routing: rule + routes in table 100.
    let v4 = Route::new(net("10.78.0.0/16"))
        .via(ip("10.77.0.1"))
        .dev("eth1");
    let v6 = Route::new(net("fd00:78::/64"))
        .via(ip("fd00:77::1"))
        .dev("eth1");
    let policy = Route::new(net("0.0.0.0/0"))
        .via(ip("10.77.0.1"))
        .dev("eth1")
        .in_table(100);
    let rule = Rule::from_source(net("10.77.0.5/24"), 100).with_priority(1000);
    for route in [&v4, &v6, &policy] {
        dp.add_route(&podns, route).await.expect("route");
    }
    dp.add_rule(&podns, &rule).await.expect("rule");
    let dup_rule = dp.add_rule(&podns, &rule).await.expect_err("dup rule");
    assert_eq!(dup_rule.kind(), ErrorKind::Exists);
    let routes = dp.list_routes(&podns).await.expect("ok");
    for route in [&v4, &v6, &policy] {
        assert!(
            routes.iter().any(|r| r.covers(route)),
            "{route} not in {routes:?}"
        );
    }
    assert!(
        pod.ip(&["route", "show", "table", "100"])
            .contains("default via 10.77.0.1 dev eth1"),
        "iproute2 sees the policy route"
    );
    let rules = dp.list_rules(&podns).await.expect("ok");
    assert!(rules.iter().any(|r| r.covers(&rule)), "{rules:?}");
    let shown = pod.ip(&["rule"]);
    assert!(
        shown
            .lines()
            .any(|l| l.starts_with("1000:") && l.contains("from 10.77.0.0/24 lookup 100")),
        "{shown}"
    );

    // Sysctls land in the pod netns: eth1 exists nowhere else.
    dp.set_sysctls(
        &podns,
        "eth1",
        &[
            Sysctl::AcceptRa(false),
            Sysctl::Autoconf(false),
            Sysctl::NdiscNotify(true),
        ],
    )
    .await
    .expect("sysctls");
    assert_eq!(pod.sysctl("/proc/sys/net/ipv6/conf/eth1/accept_ra"), "0");
    assert_eq!(pod.sysctl("/proc/sys/net/ipv6/conf/eth1/autoconf"), "0");
    assert_eq!(pod.sysctl("/proc/sys/net/ipv6/conf/eth1/ndisc_notify"), "1");

    // Teardown: rule and routes explicitly, then the link; everything is idempotent.
    dp.del_rule(&podns, &rule).await.expect("del rule");
    dp.del_rule(&podns, &rule).await.expect("del rule again");
    dp.del_route(&podns, &policy).await.expect("del route");
    dp.del_route(&podns, &policy)
        .await
        .expect("del route again");
    dp.del_address(&podns, "eth1", net("10.77.0.5/24"))
        .await
        .expect("del address");
    dp.del_address(&podns, "eth1", net("10.77.0.5/24"))
        .await
        .expect("del address again");
    dp.delete_link(&podns, "eth1").await.expect("delete");
    dp.delete_link(&podns, "eth1").await.expect("delete again");
    assert!(!dp.link_exists(&podns, "eth1").await.expect("ok"));
    assert!(
        !dp.list_rules(&podns)
            .await
            .expect("ok")
            .iter()
            .any(|r| r.table == 100)
    );
    assert!(!pod.ip(&["-o", "link"]).contains("eth1"));
    dp.del_route(&podns, &v4)
        .await
        .expect("route of a deleted link");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vxlan_and_bridge_links() {
    if !privileged("vxlan_and_bridge_links") {
        return;
    }
    let lab = Lab::new(1500).await;
    let (host, dp) = (lab.host(), &lab.dp);
    lab.node
        .ip(&["addr", "add", "192.168.90.1/24", "dev", &lab.nic]);
    let mut vx = VxlanSpec::new(42);
    vx.parent = Some(lab.nic.clone());
    vx.local = Some(ip("192.168.90.1"));
    vx.remote = Some(ip("239.0.0.42"));
    vx.l2miss = true;
    vx.l3miss = true;
    let name = plexus_netlink::vxlan_link_name("net42").expect("name");
    let link = dp
        .create_link(&host, &LinkSpec::vxlan(&name, vx))
        .await
        .expect("vxlan");
    assert_eq!(link.kind, Some(LinkKind::Vxlan));
    assert_eq!(link.mtu, 1450, "parent MTU minus the VXLAN header");
    let details = lab.node.ip(&["-d", "link", "show", &name]);
    for want in [
        "vxlan id 42",
        "group 239.0.0.42",
        "local 192.168.90.1",
        "dstport 4789",
    ] {
        assert!(details.contains(want), "{want} missing: {details}");
    }
    dp.set_up(&host, &name).await.expect("up");

    let bridge = dp
        .create_link(&host, &LinkSpec::bridge("br-nl").with_mtu(1400))
        .await
        .expect("bridge");
    assert_eq!(bridge.kind, Some(LinkKind::Bridge));
    assert!(!bridge.up);
    let mac = "02:12:34:56:78:9a".parse().expect("mac");
    dp.set_mac(&host, "br-nl", mac).await.expect("mac");
    dp.set_mtu(&host, "br-nl", 1300).await.expect("mtu");
    dp.set_up(&host, "br-nl").await.expect("up");
    let bridge = dp.link(&host, "br-nl").await.expect("ok").expect("bridge");
    assert_eq!((bridge.mac, bridge.mtu, bridge.up), (Some(mac), 1300, true));
    dp.set_down(&host, "br-nl").await.expect("down");
    assert!(!dp.link(&host, "br-nl").await.expect("ok").expect("br").up);
    let names: Vec<String> = dp
        .list_links(&host)
        .await
        .expect("ok")
        .into_iter()
        .map(|l| l.name)
        .collect();
    for want in [
        "lo",
        lab.nic.as_str(),
        lab.peer.as_str(),
        name.as_str(),
        "br-nl",
    ] {
        assert!(names.iter().any(|n| n == want), "{want} not in {names:?}");
    }
    dp.delete_link(&host, "br-nl").await.expect("delete");
    dp.delete_link(&host, &name).await.expect("delete");
    assert!(!dp.link_exists(&host, &name).await.expect("ok"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ipvlan_where_the_kernel_has_it() {
    if !privileged("ipvlan_where_the_kernel_has_it") {
        return;
    }
    let lab = Lab::new(1500).await;
    let pod = TestNetns::new("nlp");
    let tmp = temporary_link_name();
    let spec = LinkSpec::ipvlan(&tmp, &lab.nic, IpvlanMode::L2);
    let link = match lab.dp.create_link(&lab.host(), &spec).await {
        Ok(link) => link,
        Err(e) if e.is_unsupported() => {
            eprintln!("SKIPPED ipvlan_where_the_kernel_has_it: no ipvlan in this kernel ({e})");
            return;
        }
        Err(e) => panic!("ipvlan: {e}"),
    };
    let nic = lab
        .dp
        .link(&lab.host(), &lab.nic)
        .await
        .expect("ok")
        .expect("nic");
    assert_eq!(link.kind, Some(LinkKind::Ipvlan));
    assert_eq!(link.mac, nic.mac, "ipvlan shares the parent's MAC");
    lab.dp
        .move_link(&lab.host(), &tmp, &pod.netns())
        .await
        .expect("move");
    lab.dp
        .add_address(&pod.netns(), &tmp, net("10.83.0.5/24"), Dad::Skip)
        .await
        .expect("addr");
    lab.dp
        .rename_link(&pod.netns(), &tmp, "eth1")
        .await
        .expect("rename");
    lab.dp.set_up(&pod.netns(), "eth1").await.expect("up");
    for mode in [IpvlanMode::L3, IpvlanMode::L3s] {
        let name = temporary_link_name();
        lab.dp
            .create_link(&lab.host(), &LinkSpec::ipvlan(&name, &lab.nic, mode))
            .await
            .expect("other mode");
        assert!(
            lab.node
                .ip(&["-d", "link", "show", &name])
                .contains(mode.as_str())
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vlan_where_the_kernel_has_it() {
    if !privileged("vlan_where_the_kernel_has_it") {
        return;
    }
    let lab = Lab::new(1500).await;
    let name = vlan_link_name("nl", 700).expect("name");
    let spec = LinkSpec::vlan(&name, &lab.nic, 700);
    let link = match lab.dp.create_link(&lab.host(), &spec).await {
        Ok(link) => link,
        Err(e) if e.is_unsupported() => {
            eprintln!("SKIPPED vlan_where_the_kernel_has_it: no 802.1Q in this kernel ({e})");
            return;
        }
        Err(e) => panic!("vlan: {e}"),
    };
    assert_eq!(link.kind, Some(LinkKind::Vlan));
    assert_eq!(link.mtu, 1500);
    assert!(
        lab.node
            .ip(&["-d", "link", "show", &name])
            .contains("vlan protocol 802.1Q id 700")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn links_can_be_created_straight_into_the_pod() {
    if !privileged("links_can_be_created_straight_into_the_pod") {
        return;
    }
    let lab = Lab::new(1500).await;
    let (a, b) = (TestNetns::new("nla"), TestNetns::new("nlb"));
    let tmp = temporary_link_name();
    let spec = LinkSpec::macvlan(&tmp, &lab.nic, MacvlanMode::Bridge).in_netns(a.netns());
    let link = lab
        .dp
        .create_link(&lab.host(), &spec)
        .await
        .expect("create");
    assert_eq!(link.kind, Some(LinkKind::Macvlan));
    assert!(!lab.dp.link_exists(&lab.host(), &tmp).await.expect("ok"));
    assert!(a.ip(&["-o", "link"]).contains(&tmp));
    let again = lab
        .dp
        .create_link(&lab.host(), &spec)
        .await
        .expect_err("taken");
    assert_eq!(again.kind(), ErrorKind::Exists);
    lab.dp
        .add_address(&a.netns(), &tmp, net("10.87.0.1/24"), Dad::Skip)
        .await
        .expect("addr");
    lab.dp
        .rename_link(&a.netns(), &tmp, "eth1")
        .await
        .expect("rename");
    lab.dp.set_up(&a.netns(), "eth1").await.expect("up");
    lab.attach(&b, "eth1", &["10.87.0.2/24"]).await;
    a.exec(&["ping", "-c", "1", "-W", "2", "10.87.0.2"]);

    // A veth: the named end goes to the pod, the peer stays on the node.
    let peer = unique("veth");
    lab.dp
        .create_link(
            &lab.host(),
            &LinkSpec::veth("eth0", &peer).in_netns(b.netns()),
        )
        .await
        .expect("veth");
    assert!(lab.dp.link_exists(&b.netns(), "eth0").await.expect("ok"));
    assert!(lab.dp.link_exists(&lab.host(), &peer).await.expect("ok"));
}
