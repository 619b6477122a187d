//! What a claim and a batch of claims cost in read requests, and that batches of several
//! agents side by side never share an address (real etcd, like [`super::tests`]).

use std::collections::BTreeSet;
use std::net::IpAddr;

use plexus_ipam_core::BlockPolicy;

use super::EtcdStore;
use super::buffered::ReadBackSink;
use super::claims::{ViewUse, claim_batch_in, single_node_set};
use super::tests::{endpoints, fresh_config, fresh_store};
use crate::conformance::range_set;
use crate::{AttachmentKey, Claim, ClaimContext, ClaimRequest, Owner, Store, StoreError};

fn ctx(node: &str) -> ClaimContext {
    ClaimContext::new(node, BlockPolicy::default())
}

fn keys(prefix: &str, n: usize) -> Vec<AttachmentKey> {
    (0..n)
        .map(|i| AttachmentKey::new("batch", format!("{prefix}{i}"), "eth0"))
        .collect()
}

/// One request per key, all with the same owner, claims and context.
fn requests_for<'a>(
    keys: &'a [AttachmentKey],
    owner: &'a Owner,
    claims: &'a [Claim<'a>],
    ctx: &'a ClaimContext,
) -> Vec<ClaimRequest<'a>> {
    keys.iter()
        .map(|key| ClaimRequest {
            key,
            owner,
            claims,
            ctx,
        })
        .collect()
}

#[tokio::test]
async fn a_claim_and_a_batch_of_claims_each_read_once_before_the_commit() {
    let Some(endpoints) = endpoints("batch_reads") else {
        return;
    };
    let store = fresh_store(&endpoints, "batch_reads");
    let set = range_set("10.78.0.0/24");
    let (owner, ctx) = (Owner::default(), ctx("node-1"));
    let dynamic = [Claim::Dynamic(&set)];
    // The node's first claim claims its block, its second finds it (and the store learns
    // where it is): the costs below are the steady state.
    let warm = AttachmentKey::new("batch", "warm", "eth0");
    let first = store.claim(&warm, &owner, &dynamic, &ctx).await.unwrap()[0].ip;
    let again = AttachmentKey::new("batch", "again", "eth0");
    store.claim(&again, &owner, &dynamic, &ctx).await.unwrap();

    for size in [1, 4] {
        let keys = keys(&format!("s{size}-"), size);
        let requests = requests_for(&keys, &owner, &dynamic, &ctx);
        let mut txn = store.inner.begin(true).await.unwrap();
        let answers = claim_batch_in(&mut txn, &requests, &store.inner.block_bounds, None)
            .await
            .unwrap();
        // One read-only Txn: attachments, the node's blocks, their cursors, and the address
        // keys of the block its last claim found (the window searched lies inside).
        assert_eq!(txn.inner.reads_sent(), 1, "a batch of {size}");
        assert!(answers.iter().all(Result::is_ok), "{answers:?}");
        let seen = std::mem::take(&mut txn.blocks_seen);
        txn.commit().await.expect("the batch commits");
        store.inner.block_bounds.remember(seen);
    }
    let held: Vec<IpAddr> = store
        .list("batch")
        .await
        .unwrap()
        .into_iter()
        .map(|a| a.ip)
        .collect();
    let expected: Vec<IpAddr> = (0..7)
        .map(|n| plexus_ipam_core::addr::checked_add(first, n).unwrap())
        .collect();
    assert_eq!(
        held, expected,
        "next-fit inside the node's block, in request order"
    );
}

#[tokio::test]
async fn batches_of_two_agents_side_by_side_never_share_an_address() {
    let Some(endpoints) = endpoints("batch_race") else {
        return;
    };
    let cfg = fresh_config(&endpoints, "batch_race");
    let (one, two) = (
        EtcdStore::open(&cfg).unwrap(),
        EtcdStore::open(&cfg).unwrap(),
    );
    // 62 addresses in /28 blocks; 2 agents × 8 batches × 4 claims = 64 requests.
    let set = range_set("10.79.0.0/26");
    let policy = BlockPolicy {
        v4_prefix: 28,
        v6_prefix: 124,
        release_after_secs: 600,
        enabled: true,
    };
    let (a, b) = tokio::join!(
        agent(&one, "node-a", &set, &policy),
        agent(&two, "node-b", &set, &policy)
    );
    let mut claimed = Vec::new();
    let mut exhausted = 0;
    for answer in a.into_iter().chain(b) {
        match answer {
            Ok(allocations) => claimed.push(allocations[0].ip),
            Err(StoreError::Exhausted { .. }) => exhausted += 1,
            Err(other) => panic!("unexpected answer: {other:?}"),
        }
    }
    let unique: BTreeSet<IpAddr> = claimed.iter().copied().collect();
    assert_eq!(unique.len(), claimed.len(), "no address answered twice");
    assert_eq!(claimed.len(), 62, "every address of the pool handed out");
    assert_eq!(
        exhausted, 2,
        "exactly the requests beyond the pool are refused"
    );
    let held: BTreeSet<IpAddr> = one
        .list("batch")
        .await
        .unwrap()
        .into_iter()
        .map(|a| a.ip)
        .collect();
    assert_eq!(held, unique, "the store holds exactly what was answered");
}

/// Eight batches of four dynamic claims from `node`, one after the other; every answer.
async fn agent(
    store: &EtcdStore,
    node: &str,
    set: &plexus_ipam_core::range::RangeSet,
    policy: &BlockPolicy,
) -> Vec<Result<Vec<crate::Allocation>, StoreError>> {
    let ctx = ClaimContext::new(node, *policy);
    let owner = Owner::default();
    let dynamic = [Claim::Dynamic(set)];
    let mut answers = Vec::new();
    for round in 0..8 {
        let keys = keys(&format!("{node}-{round}-"), 4);
        let requests = requests_for(&keys, &owner, &dynamic, &ctx);
        answers.extend(store.claim_batch(&requests).await);
    }
    answers
}

#[tokio::test]
async fn a_batch_after_a_batch_starts_from_its_view_and_reads_nothing() {
    let Some(endpoints) = endpoints("batch_view") else {
        return;
    };
    let store = fresh_store(&endpoints, "batch_view");
    let set = range_set("10.80.0.0/24");
    let (owner, ctx) = (Owner::default(), ctx("node-1"));
    let dynamic = [Claim::Dynamic(&set)];
    // Claims through the store leave the node's view behind (each commit reads it back).
    // The node's first claim claims its block; the second's view holds the block's keys.
    let warm = AttachmentKey::new("batch", "warm", "eth0");
    let first = store.claim(&warm, &owner, &dynamic, &ctx).await.unwrap()[0].ip;
    let again = AttachmentKey::new("batch", "again", "eth0");
    store.claim(&again, &owner, &dynamic, &ctx).await.unwrap();
    for size in [1, 4] {
        let keys = keys(&format!("v{size}-"), size);
        let requests = requests_for(&keys, &owner, &dynamic, &ctx);
        let sink = ReadBackSink::default();
        let whose = single_node_set(&requests).unwrap();
        let view = ViewUse {
            views: &store.inner.views,
            whose: &whose,
            sink: &sink,
        };
        let mut txn = store.inner.begin(true).await.unwrap();
        let answers = claim_batch_in(&mut txn, &requests, &store.inner.block_bounds, Some(view))
            .await
            .unwrap();
        assert_eq!(txn.inner.reads_sent(), 0, "a batch of {size} read");
        assert!(answers.iter().all(Result::is_ok), "{answers:?}");
        txn.commit().await.expect("the batch commits");
        let read_back = sink.lock().unwrap().take().expect("the commit read back");
        store.inner.views.remember(whose, read_back);
    }
    let held: Vec<IpAddr> = store
        .list("batch")
        .await
        .unwrap()
        .into_iter()
        .map(|a| a.ip)
        .collect();
    let expected: Vec<IpAddr> = (0..7)
        .map(|n| plexus_ipam_core::addr::checked_add(first, n).unwrap())
        .collect();
    assert_eq!(held, expected, "next-fit from the view, in request order");
}

/// Another store takes the address this store's view shows free and would hand out next:
/// the batch started from that view fails its commit and re-runs on fresh reads.
#[tokio::test]
async fn a_stale_view_never_hands_out_a_taken_address() {
    let Some(endpoints) = endpoints("stale_view") else {
        return;
    };
    let cfg = fresh_config(&endpoints, "stale_view");
    let (one, two) = (
        EtcdStore::open(&cfg).unwrap(),
        EtcdStore::open(&cfg).unwrap(),
    );
    let set = range_set("10.81.0.0/24");
    let (owner, ctx) = (Owner::default(), ctx("node-1"));
    let dynamic = [Claim::Dynamic(&set)];
    let key = |c: &str| AttachmentKey::new("batch", c, "eth0");
    let first = one.claim(&key("c0"), &owner, &dynamic, &ctx).await.unwrap()[0].ip;
    let plus = |n| plexus_ipam_core::addr::checked_add(first, n).unwrap();
    assert_eq!(
        one.claim(&key("c1"), &owner, &dynamic, &ctx).await.unwrap()[0].ip,
        plus(1)
    );
    let taken = [Claim::Static {
        set: &set,
        ip: plus(2),
    }];
    two.claim(&key("x"), &owner, &taken, &self::ctx("node-9"))
        .await
        .unwrap();
    let keys = [key("c2"), key("c3")];
    let answers = one
        .claim_batch(&requests_for(&keys, &owner, &dynamic, &ctx))
        .await;
    let got: Vec<IpAddr> = answers.iter().map(|a| a.as_ref().unwrap()[0].ip).collect();
    assert_eq!(got, vec![plus(3), plus(4)]);
    let held: BTreeSet<IpAddr> = one
        .list("batch")
        .await
        .unwrap()
        .iter()
        .map(|a| a.ip)
        .collect();
    assert_eq!(held, (0..5).map(plus).collect());
}

/// Claiming an attachment again through a view (which assumes the batch's attachments
/// new) returns the allocation it holds, not a second one.
#[tokio::test]
async fn a_re_claim_through_a_view_returns_its_allocation() {
    let Some(endpoints) = endpoints("view_reclaim") else {
        return;
    };
    let store = fresh_store(&endpoints, "view_reclaim");
    let set = range_set("10.82.0.0/24");
    let (owner, ctx) = (Owner::default(), ctx("node-1"));
    let dynamic = [Claim::Dynamic(&set)];
    let keys = [
        AttachmentKey::new("batch", "c0", "eth0"),
        AttachmentKey::new("batch", "c1", "eth0"),
    ];
    let held = store.claim(&keys[0], &owner, &dynamic, &ctx).await.unwrap();
    let answers = store
        .claim_batch(&requests_for(&keys, &owner, &dynamic, &ctx))
        .await;
    assert_eq!(answers[0].as_ref().unwrap(), &held);
    let second = answers[1].as_ref().unwrap()[0].ip;
    assert_ne!(second, held[0].ip);
    assert_eq!(store.list("batch").await.unwrap().len(), 2);
}

/// A pool that looks exhausted in a view but was freed since (by another store, which
/// this store's view cannot know) still serves the claim: the refusal is re-checked on a
/// fresh snapshot before it is answered.
#[tokio::test]
async fn a_refusal_on_a_view_is_re_checked_on_a_fresh_snapshot() {
    let Some(endpoints) = endpoints("view_refusal") else {
        return;
    };
    let cfg = fresh_config(&endpoints, "view_refusal");
    let (one, two) = (
        EtcdStore::open(&cfg).unwrap(),
        EtcdStore::open(&cfg).unwrap(),
    );
    let set = range_set("10.83.0.0/29");
    let policy = BlockPolicy {
        v4_prefix: 30,
        v6_prefix: 126,
        release_after_secs: 600,
        enabled: true,
    };
    let ctx = ClaimContext::new("node-1", policy);
    let owner = Owner::default();
    let dynamic = [Claim::Dynamic(&set)];
    let key = |n: usize| AttachmentKey::new("batch", format!("c{n}"), "eth0");
    let mut held = Vec::new();
    for n in 0..16 {
        match one.claim(&key(n), &owner, &dynamic, &ctx).await {
            Ok(got) => held.push(got[0].ip),
            Err(StoreError::Exhausted { .. }) => break,
            Err(other) => panic!("claim {n}: {other:?}"),
        }
    }
    assert!(held.len() >= 2 && held.len() < 16, "{held:?}");
    // One address freed by another store: `one`'s view still shows it held.
    assert_eq!(two.release(&key(0)).await.unwrap().len(), 1);
    let got = one.claim(&key(100), &owner, &dynamic, &ctx).await.unwrap();
    assert_eq!(got[0].ip, held[0], "the freed address, not a refusal");
}
