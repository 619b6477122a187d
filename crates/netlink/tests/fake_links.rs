//! [`plexus_netlink::FakeDataplane`] links through the public trait: the kernel rules it
//! models for creating, moving, renaming and deleting links, and the call record. No root.

mod fake_support;

use std::sync::Arc;

use fake_support::{attach, net, pod, setup};
use ipnet::IpNet;
use plexus_netlink::{
    Call, Dad, Dataplane, ErrorKind, LinkKind, LinkSpec, MacAddr, MacvlanMode, Netns, Op, Route,
    Rule, VxlanSpec,
};

#[tokio::test]
async fn macvlan_attach_sequence_builds_the_expected_state() {
    let fake = setup();
    attach(&fake, "plxtmp1", "eth1").await.expect("attach");

    assert!(
        !fake.link_exists(&Netns::Host, "plxtmp1").await.expect("ok"),
        "moved away from the host"
    );
    let link = fake
        .link(&pod(), "eth1")
        .await
        .expect("ok")
        .expect("exists");
    assert_eq!(link.kind, Some(LinkKind::Macvlan));
    assert_eq!(link.mtu, 9000, "MTU inherited from the parent");
    assert!(link.up);
    let host_nic = fake
        .link(&Netns::Host, "eth1")
        .await
        .expect("ok")
        .expect("nic");
    assert_eq!(link.parent_index, Some(host_nic.index));
    let addrs: Vec<IpNet> = fake
        .list_addresses(&pod(), "eth1")
        .await
        .expect("ok")
        .iter()
        .map(|a| a.address)
        .collect();
    assert_eq!(addrs, vec![net("10.0.0.5/24"), net("fd00::5/64")]);
    assert_eq!(
        fake.ops()[..6],
        [
            Op::CreateLink,
            Op::MoveLink,
            Op::AddAddress,
            Op::AddAddress,
            Op::RenameLink,
            Op::SetUp
        ]
    );
}

#[tokio::test]
async fn calls_are_recorded_with_their_arguments_in_order() {
    let fake = setup();
    attach(&fake, "plxtmp1", "net1").await.expect("attach");
    let calls = fake.calls();
    assert_eq!(calls.len(), 6);
    assert_eq!(
        calls[0],
        Call::CreateLink {
            netns: Netns::Host,
            spec: LinkSpec::macvlan("plxtmp1", "eth1", MacvlanMode::Bridge),
        }
    );
    assert_eq!(
        calls[1],
        Call::MoveLink {
            netns: Netns::Host,
            link: "plxtmp1".into(),
            target: pod(),
        }
    );
    assert_eq!(
        calls[3],
        Call::AddAddress {
            netns: pod(),
            link: "plxtmp1".into(),
            address: net("fd00::5/64"),
            dad: Dad::Skip,
        }
    );
    assert_eq!(calls[5].op(), Op::SetUp);
    assert_eq!(calls[5].link(), Some("net1"));
    assert_eq!(calls[5].netns(), &pod());
    fake.clear_calls();
    assert!(fake.calls().is_empty());
    assert_eq!(fake.call_count(), 6, "the failure counter keeps running");
}

#[tokio::test]
async fn create_link_enforces_kernel_rules() {
    let fake = setup();
    let host = Netns::Host;
    let missing = fake
        .create_link(&host, &LinkSpec::macvlan("m1", "eth9", MacvlanMode::Bridge))
        .await
        .expect_err("no parent");
    assert_eq!(missing.kind(), ErrorKind::NotFound);
    assert!(missing.to_string().contains("\"eth9\""), "{missing}");

    fake.create_link(&host, &LinkSpec::macvlan("m1", "eth1", MacvlanMode::Bridge))
        .await
        .expect("first");
    let dup = fake
        .create_link(&host, &LinkSpec::bridge("m1"))
        .await
        .expect_err("name taken");
    assert_eq!(dup.kind(), ErrorKind::Exists);

    let long = fake
        .create_link(&host, &LinkSpec::bridge("a234567890123456"))
        .await
        .expect_err("too long");
    assert_eq!(long.kind(), ErrorKind::Invalid);

    let too_big = fake
        .create_link(
            &host,
            &LinkSpec::macvlan("m2", "eth1", MacvlanMode::Bridge).with_mtu(9001),
        )
        .await
        .expect_err("above parent MTU");
    assert_eq!(too_big.kind(), ErrorKind::Invalid);

    let nowhere = fake
        .create_link(&Netns::path("/run/netns/gone"), &LinkSpec::bridge("b"))
        .await
        .expect_err("no netns");
    assert_eq!(nowhere.kind(), ErrorKind::NotFound);
    assert!(nowhere.to_string().contains("/run/netns/gone"), "{nowhere}");

    let vlan = fake
        .create_link(&host, &LinkSpec::vlan("eth1.4095", "eth1", 4095))
        .await
        .expect_err("vlan id");
    assert_eq!(vlan.kind(), ErrorKind::Invalid);
}

#[tokio::test]
async fn missing_modules_are_unsupported() {
    let fake = setup();
    fake.set_unsupported(LinkKind::Ipvlan);
    let err = fake
        .create_link(
            &Netns::Host,
            &LinkSpec::ipvlan("i1", "eth1", Default::default()),
        )
        .await
        .expect_err("no module");
    assert_eq!(err.kind(), ErrorKind::Unsupported);
    assert!(err.is_unsupported());
    // Other kinds still work.
    fake.create_link(&Netns::Host, &LinkSpec::bridge("br0"))
        .await
        .expect("bridge");
}

#[tokio::test]
async fn ipvlan_shares_the_parent_mac_and_vxlan_subtracts_its_header() {
    let fake = setup();
    let nic = fake
        .link(&Netns::Host, "eth1")
        .await
        .expect("ok")
        .expect("nic");
    let ipvlan = fake
        .create_link(
            &Netns::Host,
            &LinkSpec::ipvlan("i1", "eth1", Default::default()),
        )
        .await
        .expect("ipvlan");
    assert_eq!(ipvlan.mac, nic.mac);
    let macvlan = fake
        .create_link(
            &Netns::Host,
            &LinkSpec::macvlan("m1", "eth1", MacvlanMode::Private),
        )
        .await
        .expect("macvlan");
    assert_ne!(macvlan.mac, nic.mac);
    assert!(macvlan.mac.is_some_and(|m| m.is_local_unicast()));
    let mut vx = VxlanSpec::new(50);
    vx.parent = Some("eth1".into());
    let vxlan = fake
        .create_link(&Netns::Host, &LinkSpec::vxlan("vx_a", vx))
        .await
        .expect("vxlan");
    assert_eq!(vxlan.mtu, 8950);
    assert!(!vxlan.up, "every link starts down");
}

#[tokio::test]
async fn moving_a_link_flushes_its_addresses_and_sets_it_down() {
    let fake = setup();
    let host = Netns::Host;
    fake.create_link(&host, &LinkSpec::macvlan("m1", "eth1", MacvlanMode::Bridge))
        .await
        .expect("create");
    fake.add_address(&host, "m1", net("10.0.0.9/24"), Dad::Skip)
        .await
        .expect("addr");
    fake.set_up(&host, "m1").await.expect("up");
    fake.move_link(&host, "m1", &pod()).await.expect("move");
    let moved = fake.link(&pod(), "m1").await.expect("ok").expect("there");
    assert!(!moved.up);
    assert!(
        fake.list_addresses(&pod(), "m1")
            .await
            .expect("ok")
            .is_empty()
    );

    let err = fake
        .move_link(&pod(), "m1", &Netns::path("/run/netns/none"))
        .await
        .expect_err("missing target");
    assert_eq!(err.kind(), ErrorKind::NotFound);

    fake.create_link(&host, &LinkSpec::macvlan("m1", "eth1", MacvlanMode::Bridge))
        .await
        .expect("same name again on the host");
    let clash = fake
        .move_link(&host, "m1", &pod())
        .await
        .expect_err("name clash in the pod");
    assert_eq!(clash.kind(), ErrorKind::Exists);
}

#[tokio::test]
async fn deletes_cascade_like_the_kernel_and_are_idempotent() {
    let fake = setup();
    let host = Netns::Host;
    fake.create_link(&host, &LinkSpec::veth("v0", "v1"))
        .await
        .expect("veth");
    fake.delete_link(&host, "v1").await.expect("delete peer");
    assert!(
        !fake.link_exists(&host, "v0").await.expect("ok"),
        "pair gone"
    );

    attach(&fake, "t1", "eth1").await.expect("attach");
    fake.delete_link(&host, "eth1")
        .await
        .expect("delete parent");
    assert!(
        !fake.link_exists(&pod(), "eth1").await.expect("ok"),
        "a macvlan dies with its parent, even in another netns"
    );
    fake.delete_link(&host, "eth1")
        .await
        .expect("absent is fine");
    fake.del_address(&pod(), "eth1", net("10.0.0.5/24"))
        .await
        .expect("absent is fine");
    fake.del_route(&pod(), &Route::new(net("10.9.0.0/16")))
        .await
        .expect("absent is fine");
    fake.del_rule(&pod(), &Rule::from_source(net("10.0.0.5/24"), 100))
        .await
        .expect("absent is fine");
    let lo = fake.delete_link(&pod(), "lo").await.expect_err("lo stays");
    assert_eq!(lo.kind(), ErrorKind::Unsupported);
}

#[tokio::test]
async fn link_settings_are_validated_and_applied() {
    let fake = setup();
    attach(&fake, "t1", "eth1").await.expect("attach");
    fake.set_mtu(&pod(), "eth1", 1400).await.expect("mtu");
    let too_big = fake.set_mtu(&pod(), "eth1", 9001).await.expect_err("mtu");
    assert_eq!(too_big.kind(), ErrorKind::Invalid);
    let mac: MacAddr = "02:aa:bb:cc:dd:ee".parse().expect("mac");
    fake.set_mac(&pod(), "eth1", mac).await.expect("mac");
    let multicast: MacAddr = "01:aa:bb:cc:dd:ee".parse().expect("mac");
    assert!(fake.set_mac(&pod(), "eth1", multicast).await.is_err());
    fake.set_down(&pod(), "eth1").await.expect("down");
    let link = fake
        .link(&pod(), "eth1")
        .await
        .expect("ok")
        .expect("exists");
    assert_eq!((link.mtu, link.mac, link.up), (1400, Some(mac), false));
    let missing = fake.set_up(&pod(), "nope").await.expect_err("missing");
    assert_eq!(missing.kind(), ErrorKind::NotFound);
    let clash = fake
        .rename_link(&pod(), "eth1", "lo")
        .await
        .expect_err("lo");
    assert_eq!(clash.kind(), ErrorKind::Exists);
}

#[tokio::test]
async fn removing_a_netns_takes_its_links_along() {
    let fake = setup();
    attach(&fake, "t1", "eth1").await.expect("attach");
    fake.remove_netns(&pod());
    assert!(fake.netns_state(&pod()).is_none());
    let err = fake.list_links(&pod()).await.expect_err("gone");
    assert_eq!(err.kind(), ErrorKind::NotFound);
    // DEL after the runtime removed the sandbox: nothing left to delete is success.
    fake.delete_link(&pod(), "eth1")
        .await
        .expect("link gone with netns");
    fake.del_address(&pod(), "eth1", net("10.0.0.5/24"))
        .await
        .expect("gone");
    fake.del_route(&pod(), &Route::new(net("10.9.0.0/16")))
        .await
        .expect("gone");
    fake.del_rule(&pod(), &Rule::from_source(net("10.0.0.5/24"), 100))
        .await
        .expect("gone");
    let err = fake
        .set_up(&pod(), "eth1")
        .await
        .expect_err("not a deletion");
    assert_eq!(err.kind(), ErrorKind::NotFound);
    let host_links = fake.list_links(&Netns::Host).await.expect("ok");
    assert_eq!(
        host_links
            .iter()
            .map(|l| l.name.as_str())
            .collect::<Vec<_>>(),
        vec!["lo", "eth1"]
    );
}

#[tokio::test]
async fn usable_as_a_shared_trait_object_across_tasks() {
    let fake = Arc::new(setup());
    let dp: Arc<dyn Dataplane> = fake.clone();
    let mut tasks = Vec::new();
    for i in 0..8 {
        let dp = Arc::clone(&dp);
        tasks.push(tokio::spawn(async move {
            dp.create_link(
                &Netns::Host,
                &LinkSpec::macvlan(format!("m{i}"), "eth1", MacvlanMode::Bridge),
            )
            .await
        }));
    }
    for task in tasks {
        task.await.expect("joined").expect("created");
    }
    assert_eq!(fake.list_links(&Netns::Host).await.expect("ok").len(), 10);
    assert_eq!(fake.call_count(), 9);
}

#[tokio::test]
async fn links_can_be_created_straight_into_another_netns() {
    let fake = setup();
    let spec = LinkSpec::macvlan("t1", "eth1", MacvlanMode::Bridge).in_netns(pod());
    let link = fake.create_link(&Netns::Host, &spec).await.expect("create");
    assert!(!fake.link_exists(&Netns::Host, "t1").await.expect("ok"));
    assert_eq!(fake.link(&pod(), "t1").await.expect("ok"), Some(link));
    assert_eq!(
        fake.create_link(&Netns::Host, &spec)
            .await
            .expect_err("name taken in the target")
            .kind(),
        ErrorKind::Exists
    );
    let nowhere = LinkSpec::bridge("b1").in_netns(Netns::path("/run/netns/none"));
    assert_eq!(
        fake.create_link(&Netns::Host, &nowhere)
            .await
            .expect_err("no target")
            .kind(),
        ErrorKind::NotFound
    );
    // A veth puts its named end in the target and keeps the peer here.
    fake.create_link(
        &Netns::Host,
        &LinkSpec::veth("eth0", "veth0").in_netns(pod()),
    )
    .await
    .expect("veth");
    assert!(fake.link_exists(&pod(), "eth0").await.expect("ok"));
    assert!(fake.link_exists(&Netns::Host, "veth0").await.expect("ok"));
    fake.delete_link(&Netns::Host, "veth0")
        .await
        .expect("delete");
    assert!(
        !fake.link_exists(&pod(), "eth0").await.expect("ok"),
        "pair dies together"
    );
}
