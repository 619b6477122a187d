//! The behaviour every [`Store`] backend must show, as async checks over a fresh, empty
//! store. A failed check panics with what differed, so they run as ordinary tests:
//!
//! ```ignore
//! #[tokio::test]
//! async fn my_backend_conforms() {
//!     plexus_store::conformance::run_all(|| Box::new(MyBackend::new_empty())).await;
//! }
//! ```
//!
//! Each check uses its own network names, but expects a store nobody else writes to.
//! Available inside this crate's tests and, for other crates, with the `conformance`
//! feature.

mod batch;
mod blocks;
mod gc;
mod records;
mod support;
mod unmarked;

pub use self::batch::*;
pub use self::blocks::*;
pub use self::gc::*;
pub use self::records::*;
pub use self::support::{NODE, ip, no_blocks, range_set, range_set_with};
pub use self::unmarked::*;

use std::collections::BTreeSet;

use self::support::{claim_ip, ips_of, key, ok, owner, release};
use crate::types::unix_now;
use crate::{Allocation, BlockPolicy, Claim, GcScope, Store, StoreError};

/// Runs every check, each against a fresh store from `make`.
pub async fn run_all(make: impl Fn() -> Box<dyn Store>) {
    claim_then_release(&*make()).await;
    reclaim_is_idempotent(&*make()).await;
    static_claim(&*make()).await;
    static_conflict_names_holder(&*make()).await;
    dynamic_skips_held_addresses(&*make()).await;
    multi_claim_is_atomic(&*make()).await;
    exhaustion_at_exact_capacity(&*make()).await;
    next_fit_does_not_reuse_at_once(&*make()).await;
    networks_are_independent(&*make()).await;
    gc_releases_only_stale_of_one_network(&*make()).await;
    gc_of_a_node_spares_other_nodes(&*make()).await;
    gc_scoped_to_range_sets(&*make()).await;
    gc_of_a_node_releases_only_its_blocks(&*make()).await;
    count_between_counts_a_window(&*make()).await;
    probe_succeeds(&*make()).await;
    blocks_two_nodes_get_different_blocks(&*make()).await;
    blocks_fill_then_claim_another(&*make()).await;
    blocks_borrow_when_all_claimed(&*make()).await;
    blocks_released_only_after_grace(&*make()).await;
    blocks_never_released_while_holding(&*make()).await;
    owner_details_are_kept(&*make()).await;
    list_between_pages_in_order(&*make()).await;
    networks_are_stored_with_revisions(&*make()).await;
    allocated_networks_outlive_their_definitions(&*make()).await;
    history_records_claims_and_releases(&*make()).await;
    history_is_atomic_with_claims(&*make()).await;
    recorded_history_is_kept(&*make()).await;
    claim_batch_answers_each_request(&*make()).await;
    claim_batch_with_blocks_until_exhaustion(&*make()).await;
}

/// A dynamic claim is recorded with its full identity and is released by DEL.
pub async fn claim_then_release(store: &dyn Store) {
    let set = range_set("10.0.0.0/29");
    let k = key("conf-basic", "c1", "eth1");
    let before = crate::types::unix_now();
    let got = ok(
        store
            .claim(&k, &owner("a"), &[Claim::Dynamic(&set)], &no_blocks())
            .await,
        "claim",
    );
    let after = crate::types::unix_now();
    assert_eq!(got.len(), 1);
    let a = &got[0];
    assert_eq!(
        a.ip,
        ip("10.0.0.1"),
        "first claim of an empty pool takes its start"
    );
    assert_eq!(a.key(), k);
    assert_eq!(a.range_set, set.id());
    assert_eq!(a.owner, owner("a"));
    assert_eq!(
        a.node.as_deref(),
        Some(NODE),
        "the claiming node is recorded"
    );
    assert!(
        (before..=after).contains(&a.created_at),
        "created_at {}",
        a.created_at
    );

    assert_eq!(ok(store.attachment(&k).await, "attachment"), got);
    assert_eq!(
        ok(store.holder("conf-basic", a.ip).await, "holder"),
        Some(a.clone())
    );
    let mapped = ok(
        store.holder("conf-basic", ip("::ffff:10.0.0.1")).await,
        "holder",
    );
    assert_eq!(
        mapped,
        Some(a.clone()),
        "an IPv4-mapped query names the same holder"
    );
    assert_eq!(ok(store.holder("other-net", a.ip).await, "holder"), None);
    assert_eq!(ok(store.list("conf-basic").await, "list"), got);

    assert_eq!(
        release(store, &k).await,
        got,
        "release returns what it released"
    );
    assert!(ok(store.attachment(&k).await, "attachment").is_empty());
    assert_eq!(ok(store.holder("conf-basic", a.ip).await, "holder"), None);
    assert!(
        release(store, &k).await.is_empty(),
        "a second DEL finds nothing, no error"
    );
    let unknown = key("conf-basic", "never-added", "eth0");
    assert!(release(store, &unknown).await.is_empty());
}

/// Repeating an ADD returns what the attachment already holds, per range set, in claim order.
pub async fn reclaim_is_idempotent(store: &dyn Store) {
    let (v4, v6) = (range_set("10.0.1.0/29"), range_set("fd00:1::/125"));
    let k = key("conf-idem", "c1", "eth1");
    let first = ok(
        store
            .claim(&k, &owner("a"), &[Claim::Dynamic(&v4)], &no_blocks())
            .await,
        "claim",
    );
    let again = ok(
        store
            .claim(&k, &owner("b"), &[Claim::Dynamic(&v4)], &no_blocks())
            .await,
        "re-claim",
    );
    assert_eq!(
        again, first,
        "a repeated ADD returns the very same allocation"
    );

    let both = ok(
        store
            .claim(
                &k,
                &owner("a"),
                &[Claim::Dynamic(&v4), Claim::Dynamic(&v6)],
                &no_blocks(),
            )
            .await,
        "claim with a second range set",
    );
    assert_eq!(both[0], first[0], "the held IPv4 address is kept");
    assert_eq!(both[1].ip, ip("fd00:1::1"));
    let reversed = ok(
        store
            .claim(
                &k,
                &owner("a"),
                &[Claim::Dynamic(&v6), Claim::Dynamic(&v4)],
                &no_blocks(),
            )
            .await,
        "claim in the other order",
    );
    assert_eq!(
        reversed,
        vec![both[1].clone(), both[0].clone()],
        "results follow claim order"
    );
    assert_eq!(
        ok(store.list("conf-idem").await, "list").len(),
        2,
        "nothing extra allocated"
    );
    let other = key("conf-idem", "c2", "eth1");
    assert_eq!(claim_ip(store, &other, &v4).await, ip("10.0.1.2"));
}

/// A static claim takes exactly its address; repeating it is idempotent; asking the same
/// attachment for another address of that range set is refused.
pub async fn static_claim(store: &dyn Store) {
    let set = range_set("10.0.2.0/29");
    let k = key("conf-static", "c1", "net1");
    let want = ip("10.0.2.3");
    let got = ok(
        store
            .claim(
                &k,
                &owner("a"),
                &[Claim::Static {
                    set: &set,
                    ip: want,
                }],
                &no_blocks(),
            )
            .await,
        "static claim",
    );
    assert_eq!(got[0].ip, want);
    assert_eq!(got[0].range_set, set.id());
    let mapped = Claim::Static {
        set: &set,
        ip: ip("::ffff:10.0.2.3"),
    };
    let again = ok(
        store.claim(&k, &owner("a"), &[mapped], &no_blocks()).await,
        "static re-claim",
    );
    assert_eq!(again, got, "the IPv4-mapped spelling is the same address");
    let dynamic = ok(
        store
            .claim(&k, &owner("a"), &[Claim::Dynamic(&set)], &no_blocks())
            .await,
        "dynamic",
    );
    assert_eq!(
        dynamic, got,
        "a dynamic claim on the same range set returns the static one"
    );

    let other = Claim::Static {
        set: &set,
        ip: ip("10.0.2.4"),
    };
    let err = store.claim(&k, &owner("a"), &[other], &no_blocks()).await;
    assert_eq!(
        err,
        Err(StoreError::AttachmentHoldsOther {
            network: "conf-static".into(),
            held: want,
            requested: ip("10.0.2.4"),
        })
    );
    assert_eq!(ips_of(store, "conf-static").await, vec![want]);
}

/// A static address held by another attachment is refused, naming the holder; other
/// networks are unaffected.
pub async fn static_conflict_names_holder(store: &dyn Store) {
    let set = range_set("10.0.3.0/29");
    let want = ip("10.0.3.5");
    let holder = key("conf-conflict", "holder-c", "eth7");
    let claim = [Claim::Static {
        set: &set,
        ip: want,
    }];
    ok(
        store
            .claim(&holder, &owner("a"), &claim, &no_blocks())
            .await,
        "first static claim",
    );

    let intruder = key("conf-conflict", "intruder-c", "eth1");
    let err = store
        .claim(&intruder, &owner("b"), &claim, &no_blocks())
        .await;
    assert_eq!(
        err,
        Err(StoreError::AddressTaken {
            network: "conf-conflict".into(),
            ip: want,
            container_id: "holder-c".into(),
            ifname: "eth7".into(),
        })
    );
    assert!(ok(store.attachment(&intruder).await, "attachment").is_empty());

    let elsewhere = key("conf-conflict-2", "intruder-c", "eth1");
    let got = ok(
        store
            .claim(&elsewhere, &owner("b"), &claim, &no_blocks())
            .await,
        "other network",
    );
    assert_eq!(got[0].ip, want, "uniqueness is per network");
}

/// Dynamic claims pass over statically held addresses.
pub async fn dynamic_skips_held_addresses(store: &dyn Store) {
    let set = range_set("10.0.4.0/29");
    let net = "conf-skip";
    for (container, addr) in [("s1", "10.0.4.1"), ("s3", "10.0.4.3")] {
        let claim = [Claim::Static {
            set: &set,
            ip: ip(addr),
        }];
        ok(
            store
                .claim(
                    &key(net, container, "eth0"),
                    &owner("s"),
                    &claim,
                    &no_blocks(),
                )
                .await,
            "static",
        );
    }
    assert_eq!(
        claim_ip(store, &key(net, "d1", "eth0"), &set).await,
        ip("10.0.4.2")
    );
    assert_eq!(
        claim_ip(store, &key(net, "d2", "eth0"), &set).await,
        ip("10.0.4.4")
    );
}

/// A failing claim of a multi-claim ADD keeps nothing of the others, cursor included.
pub async fn multi_claim_is_atomic(store: &dyn Store) {
    let net = "conf-atomic";
    let (v4, v6) = (range_set("10.0.5.0/29"), range_set("fd00:5::/126"));
    let capacity = v6.capacity();
    for i in 0..capacity {
        claim_ip(store, &key(net, &format!("filler-{i}"), "eth0"), &v6).await;
    }
    let k = key(net, "victim", "eth0");
    let err = store
        .claim(
            &k,
            &owner("v"),
            &[Claim::Dynamic(&v4), Claim::Dynamic(&v6)],
            &no_blocks(),
        )
        .await;
    assert_eq!(
        err,
        Err(StoreError::Exhausted {
            network: net.into(),
            range_set: v6.id(),
        })
    );
    assert!(
        ok(store.attachment(&k).await, "attachment").is_empty(),
        "first claim rolled back"
    );
    let v4_held = ok(
        store
            .count_between(net, ip("0.0.0.0"), ip("255.255.255.255"))
            .await,
        "count",
    );
    assert_eq!(v4_held, 0);

    let conflict = [
        Claim::Dynamic(&v4),
        Claim::Static {
            set: &v6,
            ip: ip("fd00:5::1"),
        },
    ];
    let err = store.claim(&k, &owner("v"), &conflict, &no_blocks()).await;
    assert!(
        matches!(err, Err(StoreError::AddressTaken { .. })),
        "{err:?}"
    );
    assert!(ok(store.attachment(&k).await, "attachment").is_empty());

    // Rolled-back claims must not have moved the next-fit cursor either.
    assert_eq!(
        claim_ip(store, &key(net, "after", "eth0"), &v4).await,
        ip("10.0.5.1")
    );
}

/// A pool yields exactly its capacity (never a reserved or excluded address), then
/// reports exhaustion; a released address is available again.
pub async fn exhaustion_at_exact_capacity(store: &dyn Store) {
    let net = "conf-full";
    let set = range_set_with("10.0.6.0/28", Some("10.0.6.1"), &["10.0.6.8/30"]);
    let capacity = usize::try_from(set.capacity()).unwrap_or(usize::MAX);
    assert_eq!(capacity, 9, "14 hosts minus the gateway and 4 excluded");
    let mut seen = BTreeSet::new();
    for i in 0..capacity {
        let got = claim_ip(store, &key(net, &format!("c{i}"), "eth0"), &set).await;
        assert!(set.is_allocatable(got), "{got} is reserved or excluded");
        assert!(seen.insert(got), "{got} handed out twice");
    }
    let extra = key(net, "one-too-many", "eth0");
    let err = store
        .claim(&extra, &owner("x"), &[Claim::Dynamic(&set)], &no_blocks())
        .await;
    assert_eq!(
        err,
        Err(StoreError::Exhausted {
            network: net.into(),
            range_set: set.id(),
        })
    );
    let freed = release(store, &key(net, "c4", "eth0")).await;
    assert_eq!(freed.len(), 1);
    let again = claim_ip(store, &key(net, "late", "eth0"), &set).await;
    assert_eq!(
        again, freed[0].ip,
        "the only free address is the released one"
    );
}

/// A released address is not handed out again until the search wraps around.
pub async fn next_fit_does_not_reuse_at_once(store: &dyn Store) {
    let net = "conf-nextfit";
    let set = range_set("10.0.7.0/29");
    let k = |c: &str| key(net, c, "eth0");
    assert_eq!(claim_ip(store, &k("a"), &set).await, ip("10.0.7.1"));
    assert_eq!(claim_ip(store, &k("b"), &set).await, ip("10.0.7.2"));
    release(store, &k("a")).await;
    assert_eq!(
        claim_ip(store, &k("c"), &set).await,
        ip("10.0.7.3"),
        "not the freed .1"
    );
    assert_eq!(claim_ip(store, &k("d"), &set).await, ip("10.0.7.4"));
    assert_eq!(claim_ip(store, &k("e"), &set).await, ip("10.0.7.5"));
    assert_eq!(claim_ip(store, &k("f"), &set).await, ip("10.0.7.6"));
    assert_eq!(
        claim_ip(store, &k("g"), &set).await,
        ip("10.0.7.1"),
        "wraps to the start"
    );
    release(store, &k("b")).await;
    release(store, &k("e")).await;
    assert_eq!(claim_ip(store, &k("h"), &set).await, ip("10.0.7.2"));
    assert_eq!(claim_ip(store, &k("i"), &set).await, ip("10.0.7.5"));
    let err = store
        .claim(&k("j"), &owner("j"), &[Claim::Dynamic(&set)], &no_blocks())
        .await;
    assert!(matches!(err, Err(StoreError::Exhausted { .. })), "{err:?}");
}

/// Allocations, uniqueness and cursors are per network.
pub async fn networks_are_independent(store: &dyn Store) {
    let set = range_set("10.0.8.0/29");
    let x1 = claim_ip(store, &key("conf-net-x", "c1", "eth0"), &set).await;
    let y1 = claim_ip(store, &key("conf-net-y", "c1", "eth0"), &set).await;
    assert_eq!((x1, y1), (ip("10.0.8.1"), ip("10.0.8.1")));
    let x2 = claim_ip(store, &key("conf-net-x", "c2", "eth0"), &set).await;
    assert_eq!(x2, ip("10.0.8.2"));
    release(store, &key("conf-net-x", "c1", "eth0")).await;
    assert_eq!(
        ips_of(store, "conf-net-y").await,
        vec![ip("10.0.8.1")],
        "y untouched"
    );
    assert_eq!(ips_of(store, "conf-net-x").await, vec![ip("10.0.8.2")]);
}

/// GC releases every attachment of the network missing from the valid list, keeps the
/// valid ones and never touches another network.
pub async fn gc_releases_only_stale_of_one_network(store: &dyn Store) {
    let (v4, v6) = (range_set("10.0.9.0/29"), range_set("fd00:9::/125"));
    let (net, other_net) = ("conf-gc", "conf-gc-other");
    let stale_two = key(net, "c-a", "eth0");
    let both = [Claim::Dynamic(&v4), Claim::Dynamic(&v6)];
    ok(
        store
            .claim(&stale_two, &owner("a"), &both, &no_blocks())
            .await,
        "claim",
    );
    let valid_key = key(net, "c-b", "eth0");
    claim_ip(store, &valid_key, &v4).await;
    let stale_one = key(net, "c-a", "eth1");
    claim_ip(store, &stale_one, &v4).await;
    let elsewhere = key(other_net, "c-a", "eth0");
    claim_ip(store, &elsewhere, &v4).await;

    let mut expected: Vec<Allocation> = ok(store.attachment(&stale_two).await, "attachment");
    expected.extend(ok(store.attachment(&stale_one).await, "attachment"));
    expected.sort_by_key(|a| plexus_ipam_core::addr::key(a.ip));
    let valid = vec![
        ("c-b".to_string(), "eth0".to_string()),
        ("not-here".to_string(), "eth0".to_string()),
    ];
    let report = ok(
        store
            .gc(
                net,
                &valid,
                &GcScope::node(NODE),
                &BlockPolicy::disabled(),
                unix_now(),
            )
            .await,
        "gc",
    );
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    assert_eq!(report.released, expected, "released, ordered by address");
    let left = ok(store.list(net).await, "list");
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].key(), valid_key);
    assert_eq!(
        ok(store.attachment(&elsewhere).await, "attachment").len(),
        1
    );

    let report = ok(
        store
            .gc(
                net,
                &[],
                &GcScope::node(NODE),
                &BlockPolicy::disabled(),
                unix_now(),
            )
            .await,
        "gc with nothing valid",
    );
    assert_eq!(report.released.len(), 1);
    assert!(ok(store.list(net).await, "list").is_empty());
    assert_eq!(
        ok(store.list(other_net).await, "list").len(),
        1,
        "other network untouched"
    );
    let report = ok(
        store
            .gc(
                "conf-gc-empty",
                &[],
                &GcScope::node(NODE),
                &BlockPolicy::disabled(),
                unix_now(),
            )
            .await,
        "gc of an empty network",
    );
    assert!(report.released.is_empty() && report.errors.is_empty());
}

/// `count_between` counts held addresses of one network and family inside the bounds.
pub async fn count_between_counts_a_window(store: &dyn Store) {
    let net = "conf-count";
    let (v4, v6) = (range_set("10.0.10.0/29"), range_set("fd00:10::/125"));
    for i in 0..4 {
        claim_ip(store, &key(net, &format!("c{i}"), "eth0"), &v4).await;
    }
    claim_ip(store, &key(net, "c6", "eth0"), &v6).await;
    claim_ip(store, &key("conf-count-other", "c0", "eth0"), &v4).await;
    let count = |lo: &str, hi: &str| store.count_between(net, ip(lo), ip(hi));
    assert_eq!(ok(count("10.0.10.0", "10.0.10.7").await, "count"), 4);
    assert_eq!(ok(count("10.0.10.2", "10.0.10.3").await, "count"), 2);
    assert_eq!(ok(count("10.0.10.5", "10.0.10.7").await, "count"), 0);
    assert_eq!(
        ok(count("10.0.10.3", "10.0.10.2").await, "count"),
        0,
        "lo > hi"
    );
    assert_eq!(ok(count("0.0.0.0", "255.255.255.255").await, "count"), 4);
    let all_v6 = count("::", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff").await;
    assert_eq!(
        ok(all_v6, "count"),
        1,
        "IPv6 bounds never count IPv4 allocations"
    );
    let none = store.count_between("conf-count-none", ip("10.0.10.0"), ip("10.0.10.7"));
    assert_eq!(ok(none.await, "count"), 0);
    let mixed = count("10.0.10.0", "fd00:10::7").await;
    assert!(
        matches!(mixed, Err(StoreError::Internal { .. })),
        "{mixed:?}"
    );
}

/// A healthy store passes the STATUS probe (repeatedly).
pub async fn probe_succeeds(store: &dyn Store) {
    ok(store.probe().await, "probe");
    ok(store.probe().await, "second probe");
}

#[cfg(test)]
mod tests;
