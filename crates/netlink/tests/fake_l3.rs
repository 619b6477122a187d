//! [`plexus_netlink::FakeDataplane`] layer 3 and failure injection through the public
//! trait: routes, rules, sysctls, announcements, DAD, and programmed failures. No root.

mod fake_support;

use fake_support::{attach, ip, net, pod, setup};
use ipnet::IpNet;
use plexus_netlink::{
    Dad, Dataplane, ErrorKind, IpFamily, LinkSpec, MacvlanMode, Netns, Op, Route, Rule, Sysctl,
};

#[tokio::test]
async fn routes_need_an_up_link_and_a_reachable_gateway() {
    let fake = setup();
    fake.create_link(
        &Netns::Host,
        &LinkSpec::macvlan("t1", "eth1", MacvlanMode::Bridge),
    )
    .await
    .expect("create");
    fake.move_link(&Netns::Host, "t1", &pod())
        .await
        .expect("move");
    fake.add_address(&pod(), "t1", net("10.0.0.5/24"), Dad::Skip)
        .await
        .expect("addr");
    let route = Route::new(net("10.9.0.0/16")).via(ip("10.0.0.1")).dev("t1");
    let down = fake.add_route(&pod(), &route).await.expect_err("down");
    assert_eq!(down.kind(), ErrorKind::Other);
    assert!(down.detail().contains("ENETUNREACH"), "{down}");

    fake.set_up(&pod(), "t1").await.expect("up");
    let off_link = Route::new(net("10.9.0.0/16")).via(ip("10.1.0.1")).dev("t1");
    let unreachable = fake.add_route(&pod(), &off_link).await.expect_err("gw");
    assert!(
        unreachable.detail().contains("ENETUNREACH"),
        "{unreachable}"
    );

    fake.add_route(&pod(), &route).await.expect("route");
    let dup = fake.add_route(&pod(), &route).await.expect_err("dup");
    assert_eq!(dup.kind(), ErrorKind::Exists);
    let table = route.clone().in_table(100);
    fake.add_route(&pod(), &table).await.expect("other table");
    let routes = fake.list_routes(&pod()).await.expect("ok");
    assert!(routes.iter().any(|r| r.covers(&route)));
    assert!(routes.iter().any(|r| r.covers(&table)));
    assert!(
        routes
            .iter()
            .any(|r| r.covers(&Route::new(net("10.0.0.0/24")).dev("t1"))),
        "connected route of the address"
    );

    fake.rename_link(&pod(), "t1", "eth1")
        .await
        .expect("rename");
    let renamed = fake.list_routes(&pod()).await.expect("ok");
    assert!(renamed.iter().any(|r| r.covers(&route.clone().dev("eth1"))));

    fake.del_route(&pod(), &table.clone().dev("eth1"))
        .await
        .expect("del");
    assert!(
        !fake
            .list_routes(&pod())
            .await
            .expect("ok")
            .iter()
            .any(|r| r.table == 100)
    );
    fake.set_down(&pod(), "eth1").await.expect("down");
    assert!(
        !fake
            .list_routes(&pod())
            .await
            .expect("ok")
            .iter()
            .any(|r| r.link.as_deref() == Some("eth1")),
        "routes through a down link are gone"
    );
}

#[tokio::test]
async fn rules_are_added_once_prioritised_and_deleted() {
    let fake = setup();
    let defaults = fake.list_rules(&pod()).await.expect("ok");
    assert_eq!(defaults.len(), 5, "v4 local/main/default, v6 local/main");
    let rule = Rule::from_source(net("10.0.0.5/24"), 100);
    fake.add_rule(&pod(), &rule).await.expect("add");
    let listed = fake.list_rules(&pod()).await.expect("ok");
    let added = listed.iter().find(|r| r.table == 100).expect("listed");
    assert_eq!(added.from, Some(net("10.0.0.0/24")));
    assert_eq!(added.priority, Some(32765), "just below main");
    let explicit = rule.clone().with_priority(32765);
    let dup = fake.add_rule(&pod(), &explicit).await.expect_err("dup");
    assert_eq!(dup.kind(), ErrorKind::Exists);
    let mixed = Rule {
        family: IpFamily::V6,
        ..rule.clone()
    };
    assert_eq!(
        fake.add_rule(&pod(), &mixed)
            .await
            .expect_err("mixed")
            .kind(),
        ErrorKind::Invalid
    );
    fake.del_rule(&pod(), &rule).await.expect("del");
    assert_eq!(fake.list_rules(&pod()).await.expect("ok"), defaults);
}

#[tokio::test]
async fn programmed_failures_fire_as_configured_and_change_nothing() {
    let fake = setup();
    let start = fake.call_count();
    fake.fail_call(start + 3, ErrorKind::Other); // the first add_address
    let err = attach(&fake, "t1", "eth1").await.expect_err("third call");
    assert_eq!(err.kind(), ErrorKind::Other);
    assert_eq!(err.context().op, Op::AddAddress);
    assert_eq!(err.context().link.as_deref(), Some("t1"));
    assert_eq!(err.context().netns, pod());
    assert!(err.detail().contains("injected"), "{err}");
    assert!(
        fake.list_addresses(&pod(), "t1")
            .await
            .expect("ok")
            .is_empty(),
        "the failed call had no effect"
    );
    assert_eq!(
        fake.ops().last(),
        Some(&Op::ListAddresses),
        "failed calls are recorded too"
    );

    // One-shot: the same call number never fires again; later calls succeed.
    fake.add_address(&pod(), "t1", net("10.0.0.5/24"), Dad::Skip)
        .await
        .expect("no longer failing");

    fake.fail_op(Op::SetUp, ErrorKind::Permission);
    for _ in 0..2 {
        let e = fake.set_up(&pod(), "t1").await.expect_err("every time");
        assert_eq!(e.kind(), ErrorKind::Permission);
    }
    fake.clear_failures();
    fake.set_up(&pod(), "t1").await.expect("cleared");

    fake.fail_op_once(Op::DeleteLink, ErrorKind::Other);
    assert!(fake.delete_link(&pod(), "zz").await.is_err());
    assert!(fake.delete_link(&pod(), "zz").await.is_ok());

    fake.fail_op_on_link(Op::SetMtu, "t1", ErrorKind::Invalid);
    assert_eq!(
        fake.set_mtu(&pod(), "t1", 1400)
            .await
            .expect_err("t1")
            .kind(),
        ErrorKind::Invalid
    );
    fake.add_device(&pod(), "other", 1500);
    fake.set_mtu(&pod(), "other", 1400)
        .await
        .expect("other links unaffected");
}

#[tokio::test]
async fn sysctls_and_announcements_are_checked_and_recorded() {
    let fake = setup();
    attach(&fake, "t1", "eth1").await.expect("attach");
    fake.set_sysctls(
        &pod(),
        "eth1",
        &[Sysctl::AcceptRa(false), Sysctl::Autoconf(false)],
    )
    .await
    .expect("sysctls");
    fake.set_sysctls(&pod(), "all", &[Sysctl::DisableIpv6(false)])
        .await
        .expect("all");
    let missing = fake
        .set_sysctls(&pod(), "eth7", &[Sysctl::AcceptRa(false)])
        .await
        .expect_err("no link");
    assert_eq!(missing.kind(), ErrorKind::NotFound);
    let hostile = fake
        .set_sysctls(&pod(), "../x", &[Sysctl::AcceptRa(false)])
        .await
        .expect_err("path escape");
    assert_eq!(hostile.kind(), ErrorKind::Invalid);
    let state = fake.netns_state(&pod()).expect("pod");
    assert_eq!(
        state.sysctls.get(&("eth1".into(), "accept_ra".into())),
        Some(&"0".to_string())
    );
    assert_eq!(
        state.sysctls.get(&("all".into(), "disable_ipv6".into())),
        Some(&"0".to_string())
    );

    fake.announce(&pod(), "eth1", &[ip("10.0.0.5"), ip("fd00::5")])
        .await
        .expect("announce");
    let stranger = fake
        .announce(&pod(), "eth1", &[ip("10.0.0.6")])
        .await
        .expect_err("not ours");
    assert_eq!(stranger.kind(), ErrorKind::NotFound);
    fake.set_down(&pod(), "eth1").await.expect("down");
    assert!(
        fake.announce(&pod(), "eth1", &[ip("10.0.0.5")])
            .await
            .is_err()
    );
    let state = fake.netns_state(&pod()).expect("pod");
    assert_eq!(state.announcements.len(), 2);
}

#[tokio::test]
async fn ipv6_dad_can_be_made_to_find_a_duplicate() {
    let fake = setup();
    attach(&fake, "t1", "eth1").await.expect("attach");
    fake.set_duplicate(ip("fd00::7"));
    fake.add_address(&pod(), "eth1", net("fd00::7/64"), Dad::Run)
        .await
        .expect("added");
    fake.add_address(&pod(), "eth1", net("fd00::8/64"), Dad::Run)
        .await
        .expect("added");
    let addrs = fake.list_addresses(&pod(), "eth1").await.expect("ok");
    let flagged: Vec<IpNet> = addrs
        .iter()
        .filter(|a| a.dad_failed)
        .map(|a| a.address)
        .collect();
    assert_eq!(flagged, vec![net("fd00::7/64")]);
}
