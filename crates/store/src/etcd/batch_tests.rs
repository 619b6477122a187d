//! What a claim and a batch of claims cost in read requests, and that batches of several
//! agents side by side never share an address (real etcd, like [`super::tests`]).

use std::collections::BTreeSet;
use std::net::IpAddr;

use plexus_ipam_core::BlockPolicy;

use super::EtcdStore;
use super::claims::claim_batch_in;
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
        let answers = claim_batch_in(&mut txn, &requests, &store.inner.block_bounds)
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
