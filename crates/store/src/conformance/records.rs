//! Conformance checks of endpoint details, allocation pages, stored networks and the
//! bounded claim history.

use serde_json::json;

use super::support::{claim_ip, ip, key, no_blocks, ok, owner, range_set, release};
use crate::{
    Claim, HistoryEvent, HistoryKind, HistoryQuery, NetworkDeletion, PutMode, Store, StoreError,
};

/// Opaque owner details are stored with every allocation of the claim and read back by
/// every query, unchanged.
pub async fn owner_details_are_kept(store: &dyn Store) {
    let net = "conf-details";
    let (v4, v6) = (range_set("10.0.20.0/29"), range_set("fd00:20::/125"));
    let k = key(net, "c1", "net1");
    let details = json!({"ifname": "net1", "mac": "02:42:ac:11:00:02",
                         "netns": "/var/run/netns/x", "network": "blue", "vlan": 42});
    let who = owner("d").with_details(details.clone());
    let claims = [Claim::Dynamic(&v4), Claim::Dynamic(&v6)];
    let got = ok(store.claim(&k, &who, &claims, &no_blocks()).await, "claim");
    assert_eq!(got.len(), 2);
    for a in &got {
        assert_eq!(
            a.owner.details.as_ref(),
            Some(&details),
            "claim returns details"
        );
    }
    assert_eq!(ok(store.attachment(&k).await, "attachment"), got);
    assert_eq!(ok(store.list(net).await, "list"), got);
    let held = ok(store.holder(net, got[1].ip).await, "holder");
    assert_eq!(held.and_then(|a| a.owner.details), Some(details.clone()));
    let again = ok(
        store.claim(&k, &who, &claims, &no_blocks()).await,
        "re-claim",
    );
    assert_eq!(again, got, "an idempotent ADD returns the stored details");
    let plain = key(net, "c2", "eth0");
    let without = ok(
        store
            .claim(&plain, &owner("p"), &[Claim::Dynamic(&v4)], &no_blocks())
            .await,
        "claim without details",
    );
    assert_eq!(without[0].owner.details, None);
    assert_eq!(
        release(store, &k).await,
        got,
        "release returns the details too"
    );
}

/// `list_between` pages through a network in address order, one family at a time.
pub async fn list_between_pages_in_order(store: &dyn Store) {
    let net = "conf-pages";
    let (v4, v6) = (range_set("10.0.21.0/28"), range_set("fd00:21::/124"));
    let mut v4_ips = Vec::new();
    for i in 0..10 {
        v4_ips.push(claim_ip(store, &key(net, &format!("c{i}"), "eth0"), &v4).await);
        claim_ip(store, &key(net, &format!("c{i}"), "eth1"), &v6).await;
    }
    claim_ip(store, &key("conf-pages-other", "x", "eth0"), &v4).await;
    let (lo, hi) = (ip("0.0.0.0"), ip("255.255.255.255"));
    let mut seen = Vec::new();
    let mut from = lo;
    loop {
        let page = ok(store.list_between(net, from, hi, 3).await, "page");
        assert!(page.len() <= 3, "a page holds at most the limit");
        let Some(last) = page.last() else { break };
        assert!(page.iter().all(|a| a.network == net));
        seen.extend(page.iter().map(|a| a.ip));
        let next = plexus_ipam_core::addr::checked_add(last.ip, 1);
        match next {
            Some(next) => from = next,
            None => break,
        }
    }
    assert_eq!(seen, v4_ips, "every IPv4 allocation once, ascending");
    let v6_all = ok(
        store.list_between(net, ip("::"), ip("ffff::"), 100).await,
        "v6",
    );
    assert_eq!(v6_all.len(), 10, "IPv6 bounds list only IPv6 allocations");
    assert!(v6_all.iter().all(|a| a.ip.is_ipv6()));
    let window = ok(
        store
            .list_between(net, ip("10.0.21.3"), ip("10.0.21.5"), 100)
            .await,
        "window",
    );
    let window: Vec<_> = window.iter().map(|a| a.ip).collect();
    assert_eq!(window, [ip("10.0.21.3"), ip("10.0.21.4"), ip("10.0.21.5")]);
    let none = ok(
        store
            .list_between(net, ip("10.0.21.9"), ip("10.0.21.1"), 9)
            .await,
        "lo>hi",
    );
    assert!(none.is_empty());
    assert!(ok(store.list_between(net, lo, hi, 0).await, "limit 0").is_empty());
    let mixed = store.list_between(net, lo, ip("::1"), 5).await;
    assert!(
        matches!(mixed, Err(StoreError::Internal { .. })),
        "{mixed:?}"
    );
}

/// Networks are created, updated with a revision check, listed, and deleted only when
/// empty unless forced.
pub async fn networks_are_stored_with_revisions(store: &dyn Store) {
    let spec = json!({"NetworkID": "blue", "Options": {"cidr": "10.0.22.0/24"}});
    let created = ok(
        store.put_network("blue", &spec, PutMode::Create).await,
        "create",
    );
    assert_eq!((created.name.as_str(), created.revision), ("blue", 1));
    assert_eq!(created.definition, spec);
    assert_eq!(created.created_at, created.updated_at);
    let twice = store.put_network("blue", &spec, PutMode::Create).await;
    assert!(
        matches!(twice, Err(StoreError::Conflict { .. })),
        "{twice:?}"
    );

    let spec2 = json!({"NetworkID": "blue", "Options": {"cidr": "10.0.22.0/23"}});
    let updated = ok(
        store.put_network("blue", &spec2, PutMode::Update(1)).await,
        "update",
    );
    assert_eq!(updated.revision, 2);
    assert_eq!(updated.created_at, created.created_at);
    let stale = store.put_network("blue", &spec, PutMode::Update(1)).await;
    match stale {
        Err(StoreError::Conflict { reason }) => assert!(reason.contains("revision 2"), "{reason}"),
        other => panic!("a stale update must conflict: {other:?}"),
    }
    let missing = store.put_network("nope", &spec, PutMode::Update(1)).await;
    assert!(
        matches!(missing, Err(StoreError::Conflict { .. })),
        "{missing:?}"
    );
    let upserted = ok(
        store.put_network("blue", &spec, PutMode::Upsert).await,
        "upsert",
    );
    assert_eq!(upserted.revision, 3);
    let red = ok(
        store
            .put_network("a-red", &json!({"x": 1}), PutMode::Upsert)
            .await,
        "new",
    );
    assert_eq!(red.revision, 1);

    assert_eq!(
        ok(store.network("blue").await, "get"),
        Some(upserted.clone())
    );
    assert_eq!(ok(store.network("nope").await, "get"), None);
    let names: Vec<String> = ok(store.networks().await, "list")
        .into_iter()
        .map(|n| n.name)
        .collect();
    assert_eq!(names, ["a-red", "blue"], "ordered by name");

    let set = range_set("10.0.22.0/29");
    claim_ip(store, &key("blue", "c1", "eth0"), &set).await;
    claim_ip(store, &key("blue", "c2", "eth0"), &set).await;
    let refused = ok(store.delete_network("blue", false).await, "delete");
    assert_eq!(refused, NetworkDeletion::InUse { allocations: 2 });
    assert!(
        ok(store.network("blue").await, "get").is_some(),
        "kept while in use"
    );
    let forced = ok(store.delete_network("blue", true).await, "forced delete");
    assert_eq!(
        forced,
        NetworkDeletion::Deleted {
            record: upserted,
            allocations: 2
        }
    );
    assert_eq!(
        ok(store.list("blue").await, "list").len(),
        2,
        "allocations stay"
    );
    assert_eq!(ok(store.network("blue").await, "get"), None);
    assert_eq!(
        ok(store.delete_network("blue", false).await, "delete again"),
        NetworkDeletion::NotFound
    );
    let empty = ok(store.delete_network("a-red", false).await, "delete empty");
    assert!(
        matches!(empty, NetworkDeletion::Deleted { allocations: 0, .. }),
        "{empty:?}"
    );
    assert!(ok(store.networks().await, "list").is_empty());
}

/// Claims and releases append events, found by address, by pod name and by pod UID.
pub async fn history_records_claims_and_releases(store: &dyn Store) {
    let net = "conf-history";
    let set = range_set("10.0.23.0/30");
    let first = key(net, "c1", "eth0");
    let before = crate::types::unix_now();
    let a = claim_ip(store, &first, &set).await;
    release(store, &first).await;
    // The /30 has two addresses: after next-fit moves on, the pool wraps back to `a`.
    let filler = key(net, "filler", "eth0");
    let b = claim_ip(store, &filler, &set).await;
    assert_ne!(a, b);
    let second = key(net, "c2", "eth0");
    assert_eq!(
        claim_ip(store, &second, &set).await,
        a,
        "the freed address again"
    );

    let events = ok(
        store
            .history(&HistoryQuery::Address {
                network: net.into(),
                ip: a,
            })
            .await,
        "history by address",
    );
    let summary: Vec<(HistoryKind, &str)> = events
        .iter()
        .map(|e| (e.kind, e.container_id.as_str()))
        .collect();
    assert_eq!(
        summary,
        [
            (HistoryKind::Claim, "c1"),
            (HistoryKind::Release, "c1"),
            (HistoryKind::Claim, "c2")
        ],
        "oldest first"
    );
    let e = &events[0];
    assert_eq!(
        (e.network.as_str(), e.ip, e.ifname.as_str()),
        (net, a, "eth0")
    );
    assert_eq!(e.pod_namespace.as_deref(), Some("telco"));
    assert_eq!(e.pod_name.as_deref(), Some("p"));
    assert_eq!(e.pod_uid.as_deref(), Some("uid-p"));
    assert_eq!(e.node.as_deref(), Some(super::NODE));
    assert!(
        e.at >= before,
        "event time {} before the test {before}",
        e.at
    );
    assert!(
        events.windows(2).all(|w| w[0].seq < w[1].seq),
        "positions grow"
    );

    let all = ok(
        store
            .history(&HistoryQuery::Network {
                network: net.into(),
            })
            .await,
        "all",
    );
    assert_eq!(all.len(), 4);
    let by_pod = HistoryQuery::Pod {
        namespace: "telco".into(),
        name: "p".into(),
    };
    assert_eq!(ok(store.history(&by_pod).await, "by pod").len(), 4);
    let by_uid = HistoryQuery::PodUid {
        uid: "uid-p".into(),
    };
    assert_eq!(ok(store.history(&by_uid).await, "by uid").len(), 4);
    let nobody = HistoryQuery::Pod {
        namespace: "telco".into(),
        name: "q".into(),
    };
    assert!(ok(store.history(&nobody).await, "nobody").is_empty());
    let v6 = HistoryQuery::Address {
        network: net.into(),
        ip: ip("fd00::1"),
    };
    assert!(ok(store.history(&v6).await, "other address").is_empty());
}

/// A claim that fails leaves no event: history is written in the claim's transaction.
pub async fn history_is_atomic_with_claims(store: &dyn Store) {
    let net = "conf-history-atomic";
    let (v4, v6) = (range_set("10.0.24.0/29"), range_set("fd00:24::/126"));
    let holder = key(net, "holder", "eth0");
    let held = ok(
        store
            .claim(
                &holder,
                &owner("h"),
                &[Claim::Static {
                    set: &v6,
                    ip: ip("fd00:24::1"),
                }],
                &no_blocks(),
            )
            .await,
        "static claim",
    );
    assert_eq!(held.len(), 1);
    let k = key(net, "victim", "eth0");
    let conflict = [
        Claim::Dynamic(&v4),
        Claim::Static {
            set: &v6,
            ip: ip("fd00:24::1"),
        },
    ];
    let err = store.claim(&k, &owner("v"), &conflict, &no_blocks()).await;
    assert!(
        matches!(err, Err(StoreError::AddressTaken { .. })),
        "{err:?}"
    );
    let events = ok(
        store
            .history(&HistoryQuery::Network {
                network: net.into(),
            })
            .await,
        "h",
    );
    assert_eq!(events.len(), 1, "only the successful claim: {events:?}");
    assert_eq!(events[0].container_id, "holder");
    let by_pod = HistoryQuery::Pod {
        namespace: "telco".into(),
        name: "v".into(),
    };
    assert!(ok(store.history(&by_pod).await, "victim").is_empty());
}

/// Imported events keep their time, kind and identity; the store assigns positions.
pub async fn recorded_history_is_kept(store: &dyn Store) {
    let event = |network: &str, at: i64, kind: HistoryKind, container: &str| HistoryEvent {
        network: network.into(),
        seq: 0,
        at,
        kind,
        ip: ip("10.0.25.7"),
        container_id: container.into(),
        ifname: "eth0".into(),
        pod_namespace: Some("old".into()),
        pod_name: Some("pod".into()),
        pod_uid: None,
        node: Some("n1".into()),
    };
    let events = [
        event("conf-import-a", 100, HistoryKind::Claim, "x"),
        event("conf-import-b", 150, HistoryKind::Claim, "y"),
        event("conf-import-a", 200, HistoryKind::Release, "x"),
    ];
    ok(store.record_history(&events).await, "record");
    let by_pod = HistoryQuery::Pod {
        namespace: "old".into(),
        name: "pod".into(),
    };
    let got = ok(store.history(&by_pod).await, "by pod");
    let plain: Vec<HistoryEvent> = got
        .iter()
        .map(|e| HistoryEvent {
            seq: 0,
            ..e.clone()
        })
        .collect();
    assert_eq!(plain, events, "ordered by time across networks");
    let a = ok(
        store
            .history(&HistoryQuery::Address {
                network: "conf-import-a".into(),
                ip: ip("10.0.25.7"),
            })
            .await,
        "by address",
    );
    assert_eq!(a.len(), 2);
    assert!(a[0].seq < a[1].seq);

    // An import that restores history claims without appending events of its own.
    let set = range_set("10.0.25.0/29");
    let quiet = key("conf-import-a", "restored", "eth0");
    let ctx = no_blocks().without_history();
    ok(
        store
            .claim(&quiet, &owner("r"), &[Claim::Dynamic(&set)], &ctx)
            .await,
        "claim",
    );
    let by_r = HistoryQuery::Pod {
        namespace: "telco".into(),
        name: "r".into(),
    };
    assert!(
        ok(store.history(&by_r).await, "quiet").is_empty(),
        "no event recorded"
    );
    assert_eq!(release(store, &quiet).await.len(), 1);
    assert_eq!(
        ok(store.history(&by_r).await, "release").len(),
        1,
        "releases still recorded"
    );
}

/// With `limit` configured (at most 16, where every backend's bound is exact), a network
/// keeps exactly its newest `limit` events, and other networks keep theirs.
pub async fn history_is_bounded(store: &dyn Store, limit: usize) {
    let net = "conf-history-bound";
    let set = range_set("10.0.26.0/24");
    let other = key("conf-history-bound-other", "o", "eth0");
    claim_ip(store, &other, &set).await;
    let rounds = 2 * limit + 3;
    for i in 0..rounds {
        let k = key(net, &format!("c{i}"), "eth0");
        claim_ip(store, &k, &set).await;
        release(store, &k).await;
    }
    let kept = ok(
        store
            .history(&HistoryQuery::Network {
                network: net.into(),
            })
            .await,
        "h",
    );
    assert_eq!(kept.len(), limit, "bounded to the limit");
    let last = kept.last().expect("events kept");
    assert_eq!(
        (last.kind, last.container_id.clone()),
        (HistoryKind::Release, format!("c{}", rounds - 1)),
        "the newest events are the ones kept"
    );
    assert!(kept.windows(2).all(|w| w[0].seq < w[1].seq));
    let others = HistoryQuery::Network {
        network: "conf-history-bound-other".into(),
    };
    assert_eq!(ok(store.history(&others).await, "other").len(), 1);
}

/// Every network holding an allocation is listed once, by name, whether or not a definition
/// of it is stored: the allocations of a force-deleted network are found again here.
pub async fn allocated_networks_outlive_their_definitions(store: &dyn Store) {
    assert_eq!(
        ok(store.allocated_networks().await, "allocated networks"),
        Vec::<String>::new(),
        "an empty store holds nothing"
    );
    let (v4, v6) = (range_set("10.0.24.0/29"), range_set("fd00:24::/125"));
    let both = [Claim::Dynamic(&v4), Claim::Dynamic(&v6)];
    let dual = key("conf-held-b", "c1", "eth0");
    ok(
        store.claim(&dual, &owner("b"), &both, &no_blocks()).await,
        "dual-stack claim",
    );
    claim_ip(store, &key("conf-held-b", "c2", "eth0"), &v4).await;
    claim_ip(store, &key("conf-held-a", "c1", "eth0"), &v4).await;
    // A namespaced name has a separator that key-value layouts must escape.
    claim_ip(store, &key("prod/conf-held", "c1", "net1"), &v4).await;
    let definition = json!({"kind": "ClusterNetwork", "metadata": {"name": "conf-held-a"}});
    ok(
        store
            .put_network("conf-held-a", &definition, PutMode::Create)
            .await,
        "put network",
    );
    ok(
        store
            .put_network("conf-held-none", &definition, PutMode::Create)
            .await,
        "put network without allocations",
    );
    let expected = ["conf-held-a", "conf-held-b", "prod/conf-held"];
    assert_eq!(
        ok(store.allocated_networks().await, "allocated networks"),
        expected,
        "each holding network once, by name; a stored network holding nothing is not listed"
    );
    let deleted = ok(
        store.delete_network("conf-held-a", true).await,
        "forced delete",
    );
    assert!(
        matches!(deleted, NetworkDeletion::Deleted { .. }),
        "{deleted:?}"
    );
    assert_eq!(
        ok(store.allocated_networks().await, "allocated networks"),
        expected,
        "the allocations of a deleted network are still listed"
    );
    release(store, &dual).await;
    release(store, &key("conf-held-b", "c2", "eth0")).await;
    assert_eq!(
        ok(store.allocated_networks().await, "allocated networks"),
        ["conf-held-a", "prod/conf-held"],
        "a network whose last address was released is no longer listed"
    );
}
