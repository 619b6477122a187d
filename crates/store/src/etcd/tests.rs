//! The shared conformance suite (and the store's internals) against a real etcd
//! (`PLEXUS_TEST_ETCD_ENDPOINTS`, set by `scripts/with-servers`), each check on a fresh key
//! prefix. Without a server the tests print `SKIPPED` and pass, unless
//! `PLEXUS_REQUIRE_SERVERS=1`.

use std::sync::atomic::{AtomicUsize, Ordering};

use super::*;
use crate::StoreError;

/// The endpoints of the shared test server, or `None` after reporting the skip.
pub(super) fn endpoints(test: &str) -> Option<Vec<String>> {
    match std::env::var("PLEXUS_TEST_ETCD_ENDPOINTS") {
        Ok(v) if !v.trim().is_empty() => Some(v.split(',').map(|e| e.trim().to_string()).collect()),
        _ => plexus_test_support::servers::skip(test, "PLEXUS_TEST_ETCD_ENDPOINTS is not set"),
    }
}

/// A store on a key prefix nobody else uses.
pub(super) fn fresh_store(endpoints: &[String], test: &str) -> EtcdStore {
    EtcdStore::open(&fresh_config(endpoints, test))
        .unwrap_or_else(|e| panic!("open etcd store: {e}"))
}

/// A configuration on a key prefix nobody else uses.
pub(super) fn fresh_config(endpoints: &[String], test: &str) -> EtcdConfig {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let mut cfg = EtcdConfig::new(endpoints.to_vec());
    cfg.prefix = format!(
        "/plexus-unit/{test}/{}-{}-{n}",
        std::process::id(),
        unix_now()
    );
    cfg
}

/// The conformance suite, one test per check, each on a fresh key prefix.
mod conformance {
    use super::{endpoints, fresh_store};
    use crate::conformance::list::conformance_tests;
    use crate::conformance::{Backend, Fresh};

    const ETCD: Backend = Backend {
        name: "etcd",
        lacks: &[],
        fresh: |check| Some(Fresh::one(fresh_store(&endpoints(check)?, check))),
    };

    conformance_tests!(ETCD);
}

#[tokio::test]
async fn history_is_bounded() {
    let Some(endpoints) = endpoints("history_is_bounded") else {
        return;
    };
    let mut cfg = fresh_config(&endpoints, "history_is_bounded");
    cfg.history_limit = 5;
    let store = EtcdStore::open(&cfg).unwrap();
    crate::conformance::history_is_bounded(&store, 5).await;
}

/// A [`BufferedTxn`] under a fresh prefix with its layout key written, plus a second,
/// plain client to play the concurrent writer.
async fn optimistic(test: &str) -> Option<(BufferedTxn, etcd_client::Client, String)> {
    let endpoints = endpoints(test)?;
    let store = fresh_store(&endpoints, test);
    let prefix = store
        .inner
        .keys
        .layout()
        .trim_end_matches("/layout")
        .to_string();
    let mut other = etcd_client::Client::connect(&endpoints, None)
        .await
        .unwrap();
    other
        .put(
            store.inner.keys.layout(),
            layout::value(LATEST_LAYOUT),
            None,
        )
        .await
        .unwrap();
    let client = store.inner.conn.connect().await.unwrap();
    let txn = BufferedTxn::new(
        client.kv_client(),
        store.inner.conn.clone(),
        store.inner.keys.layout(),
        layout::value(LATEST_LAYOUT),
    );
    Some((txn, other, prefix))
}

fn end_of(prefix: &str) -> Vec<u8> {
    let mut end = prefix.as_bytes().to_vec();
    end.push(0xff);
    end
}

#[tokio::test]
async fn a_changed_or_created_key_fails_the_commit() {
    for case in ["changed", "deleted", "created", "created-in-range"] {
        let Some((mut txn, mut other, p)) = optimistic("changed_key").await else {
            return;
        };
        other
            .put(format!("{p}/a/present"), "1", None)
            .await
            .unwrap();
        assert_eq!(
            txn.get(&format!("{p}/a/present")).await.unwrap(),
            Some(b"1".to_vec())
        );
        assert_eq!(txn.get(&format!("{p}/a/absent")).await.unwrap(), None);
        let dir = format!("{p}/r/");
        assert!(
            txn.range(&dir, &end_of(&dir), true)
                .await
                .unwrap()
                .is_empty()
        );
        txn.put(&format!("{p}/a/mine"), b"x".to_vec());
        match case {
            "changed" => other
                .put(format!("{p}/a/present"), "2", None)
                .await
                .map(drop),
            "deleted" => other.delete(format!("{p}/a/present"), None).await.map(drop),
            "created" => other
                .put(format!("{p}/a/absent"), "1", None)
                .await
                .map(drop),
            _ => other.put(format!("{dir}k"), "1", None).await.map(drop),
        }
        .unwrap();
        let result = txn.commit().await;
        assert!(
            matches!(result, Err(Failure::Conflict(_))),
            "{case}: {result:?}"
        );
        let mine = other.get(format!("{p}/a/mine"), None).await.unwrap();
        assert!(mine.kvs().is_empty(), "{case}: nothing written");
    }
}

#[tokio::test]
async fn unrelated_writes_and_deletions_in_a_range_do_not_conflict() {
    let Some((mut txn, mut other, p)) = optimistic("unrelated_writes").await else {
        return;
    };
    other.put(format!("{p}/r/held"), "1", None).await.unwrap();
    let dir = format!("{p}/r/");
    let listed = txn.range(&dir, &end_of(&dir), true).await.unwrap();
    assert_eq!(listed.len(), 1);
    // Known absent from the range read: answered without the server, checked at commit.
    assert_eq!(txn.get(&format!("{dir}new")).await.unwrap(), None);
    txn.put(&format!("{dir}new"), b"x".to_vec());
    // Our own write shows in later reads.
    assert_eq!(txn.range(&dir, &end_of(&dir), true).await.unwrap().len(), 2);
    assert_eq!(txn.count(&dir, &end_of(&dir)).await.unwrap(), 2);
    other
        .put(format!("{p}/elsewhere"), "1", None)
        .await
        .unwrap();
    other.delete(format!("{p}/r/held"), None).await.unwrap();
    assert!(txn.commit().await.is_ok());
    let written = other.get(format!("{dir}new"), None).await.unwrap();
    assert_eq!(written.kvs()[0].value(), b"x");
}

#[tokio::test]
async fn a_changed_layout_is_no_conflict_but_an_error() {
    let Some((mut txn, mut other, p)) = optimistic("changed_layout").await else {
        return;
    };
    assert_eq!(txn.get(&format!("{p}/a/x")).await.unwrap(), None);
    txn.put(&format!("{p}/a/x"), b"1".to_vec());
    other.put(format!("{p}/layout"), "99", None).await.unwrap();
    let result = txn.commit().await;
    assert!(
        matches!(result, Err(Failure::Fatal(StoreError::Corrupt { .. }))),
        "{result:?}"
    );
}

#[tokio::test]
async fn reads_stay_on_one_snapshot() {
    let Some((mut txn, mut other, p)) = optimistic("one_snapshot").await else {
        return;
    };
    other.put(format!("{p}/s/a"), "1", None).await.unwrap();
    assert_eq!(
        txn.get(&format!("{p}/s/a")).await.unwrap(),
        Some(b"1".to_vec())
    );
    other.put(format!("{p}/s/b"), "1", None).await.unwrap();
    // Written after the snapshot: invisible to this transaction.
    assert_eq!(txn.get(&format!("{p}/s/b")).await.unwrap(), None);
    let dir = format!("{p}/s/");
    assert_eq!(txn.count(&dir, &end_of(&dir)).await.unwrap(), 1);
}

#[tokio::test]
async fn unguarded_reads_do_not_fail_the_commit() {
    let Some((mut txn, mut other, p)) = optimistic("unguarded_reads").await else {
        return;
    };
    other.put(format!("{p}/h/hint"), "1", None).await.unwrap();
    assert_eq!(
        txn.get_unguarded(&format!("{p}/h/hint")).await.unwrap(),
        Some(b"1".to_vec())
    );
    let dir = format!("{p}/c/");
    assert_eq!(txn.count_unguarded(&dir, &end_of(&dir)).await.unwrap(), 0);
    txn.put(&format!("{p}/h/hint"), b"3".to_vec());
    other.put(format!("{p}/h/hint"), "2", None).await.unwrap();
    other.put(format!("{dir}k"), "1", None).await.unwrap();
    assert!(txn.commit().await.is_ok(), "hints are written blindly");
    let hint = other.get(format!("{p}/h/hint"), None).await.unwrap();
    assert_eq!(hint.kvs()[0].value(), b"3");
}

mod hot_keys {
    //! Claims and releases of one node in one block must not conflict with each other
    //! unless they touch the same address: every claim moving the block's cursor inside
    //! the guarded block record made them all conflict, and under full-rate churn an
    //! unlucky ADD lost every round until its deadline (the etcd soak finding).

    use std::net::IpAddr;

    use plexus_ipam_core::BlockPolicy;
    use plexus_ipam_core::addr::checked_add;

    use super::{endpoints, fresh_store};
    use crate::conformance::range_set;
    use crate::engine;
    use crate::etcd::EtcdStore;
    use crate::etcd::conn::Failure;
    use crate::etcd::txn::EtcdTxn;
    use crate::{AttachmentKey, Claim, ClaimContext, ClaimRequest, Owner, Store};

    fn ctx() -> ClaimContext {
        ClaimContext::new("node-1", BlockPolicy::default())
    }

    fn key(container: &str) -> AttachmentKey {
        AttachmentKey::new("hot", container, "eth0")
    }

    /// The address `n` after `ip`.
    fn plus(ip: IpAddr, n: u128) -> IpAddr {
        checked_add(ip, n).expect("inside the test range")
    }

    /// Runs one claim for `container` inside `txn` (not committed) and returns its address.
    async fn claim_in(txn: &mut EtcdTxn<'_>, container: &str, claim: Claim<'_>) -> IpAddr {
        let got = engine::claim_all(txn, &key(container), &Owner::default(), &[claim], &ctx())
            .await
            .unwrap_or_else(|e| panic!("claim {container}: {e}"));
        got[0].ip
    }

    async fn claim(store: &EtcdStore, container: &str) -> IpAddr {
        let set = range_set("10.77.0.0/24");
        let got = store
            .claim(
                &key(container),
                &Owner::default(),
                &[Claim::Dynamic(&set)],
                &ctx(),
            )
            .await
            .unwrap_or_else(|e| panic!("claim {container}: {e}"));
        got[0].ip
    }

    #[tokio::test]
    async fn a_release_and_a_claim_in_one_block_both_commit() {
        let Some(endpoints) = endpoints("release_and_claim") else {
            return;
        };
        let store = fresh_store(&endpoints, "release_and_claim");
        // The node's block starts where its name's seed points; addresses follow in order.
        let first = claim(&store, "a").await;
        assert_eq!(claim(&store, "b").await, plus(first, 1));
        let set = range_set("10.77.0.0/24");
        let inner = &store.inner;
        let mut release = inner.begin(true).await.unwrap();
        let mut add = inner.begin(true).await.unwrap();
        // Both read before either commits: each works on its own snapshot.
        let released = engine::release(&mut release, &key("a"), ctx().now)
            .await
            .unwrap();
        assert_eq!(released.len(), 1);
        let claimed = claim_in(&mut add, "c", Claim::Dynamic(&set)).await;
        assert_eq!(claimed, plus(first, 2));
        add.commit().await.expect("the claim commits");
        release
            .commit()
            .await
            .expect("the release commits although a claim landed in its block meanwhile");

        let held: Vec<_> = store
            .list("hot")
            .await
            .unwrap()
            .into_iter()
            .map(|a| (a.container_id, a.ip))
            .collect();
        assert_eq!(
            held,
            vec![("b".into(), plus(first, 1)), ("c".into(), plus(first, 2))]
        );
        // The cursor moved to the last claim, although the block record was not rewritten.
        let blocks = store.blocks("hot").await.unwrap();
        assert_eq!(blocks.len(), 1);
        assert_eq!(blocks[0].cursor, Some(plus(first, 2)));
        assert_eq!(claim(&store, "d").await, plus(first, 3));
    }

    #[tokio::test]
    async fn two_claims_of_one_node_on_different_addresses_both_commit() {
        let Some(endpoints) = endpoints("two_claims") else {
            return;
        };
        let store = fresh_store(&endpoints, "two_claims");
        let held = claim(&store, "a").await;
        let set = range_set("10.77.0.0/24");
        let inner = &store.inner;
        let mut dynamic_txn = inner.begin(true).await.unwrap();
        let mut static_txn = inner.begin(true).await.unwrap();
        let dynamic = claim_in(&mut dynamic_txn, "b", Claim::Dynamic(&set)).await;
        assert_eq!(dynamic, plus(held, 1));
        // Another claim in the same block, on another address (here a static one).
        let ip = plus(held, 9);
        let fixed = claim_in(&mut static_txn, "c", Claim::Static { set: &set, ip }).await;
        assert_eq!(fixed, ip);
        dynamic_txn
            .commit()
            .await
            .expect("the dynamic claim commits");
        static_txn
            .commit()
            .await
            .expect("the static claim commits although a claim in its block landed meanwhile");
        assert_eq!(store.list("hot").await.unwrap().len(), 3);
    }

    /// The race GC's block pass exists for, for real: two releases emptying one block side
    /// by side each count the other's address and leave the block unmarked; both commit.
    #[tokio::test]
    async fn two_releases_emptying_a_block_leave_it_for_gc() {
        let Some(endpoints) = endpoints("unmarked") else {
            return;
        };
        let store = fresh_store(&endpoints, "unmarked");
        let forgotten = crate::conformance::unmarked_block_setup(&store).await;
        let inner = &store.inner;
        let mut first = inner.begin(true).await.unwrap();
        let mut second = inner.begin(true).await.unwrap();
        let now = crate::types::unix_now();
        let released = engine::release(&mut first, &forgotten[0], now)
            .await
            .unwrap();
        assert_eq!(released.len(), 1);
        let released = engine::release(&mut second, &forgotten[1], now)
            .await
            .unwrap();
        assert_eq!(released.len(), 1);
        first.commit().await.expect("the first release commits");
        second.commit().await.expect("the second release commits");
        crate::conformance::unmarked_block_check(&store, &forgotten).await;
    }

    /// An idempotent re-claim answered from a local (serializable) prefetch writes nothing,
    /// yet its commit still checks what it read: here the attachment is released between
    /// the prefetch and the commit, which is what a lagging member would hide, and the
    /// commit fails as a conflict (the retry reads linearizably) instead of handing back an
    /// address that is free again. A linearizable read in the same place was true when
    /// made, and its commit has nothing to check.
    #[tokio::test]
    async fn a_re_claim_read_locally_is_checked_at_commit() {
        let Some(endpoints) = endpoints("local_reclaim") else {
            return;
        };
        let store = fresh_store(&endpoints, "local_reclaim");
        let set = range_set("10.77.0.0/24");
        let inner = &store.inner;
        let claims = [Claim::Dynamic(&set)];
        let (owner, ctx, attachment) = (Owner::default(), ctx(), key("a"));
        let request = ClaimRequest {
            key: &attachment,
            owner: &owner,
            claims: &claims,
            ctx: &ctx,
        };
        for local in [true, false] {
            let held = claim(&store, "a").await;
            // Nobody interferes: the check passes.
            let mut txn = inner.begin(local).await.unwrap();
            txn.prefetch_claims(std::slice::from_ref(&request), &inner.block_bounds)
                .await
                .unwrap();
            assert_eq!(claim_in(&mut txn, "a", claims[0]).await, held);
            txn.commit().await.expect("an unchanged re-claim commits");
            // The attachment is released before the commit.
            let mut txn = inner.begin(local).await.unwrap();
            txn.prefetch_claims(std::slice::from_ref(&request), &inner.block_bounds)
                .await
                .unwrap();
            assert_eq!(claim_in(&mut txn, "a", claims[0]).await, held);
            store.release(&attachment).await.unwrap();
            let outcome = txn.commit().await;
            if local {
                assert!(
                    matches!(outcome, Err(Failure::Conflict(_))),
                    "a stale local read must not commit: {outcome:?}"
                );
            } else {
                assert!(outcome.is_ok(), "{outcome:?}");
            }
        }
    }
}
