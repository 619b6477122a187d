//! Conformance checks of [`Store::claim_batch`]: every request answered on its own, as
//! [`Store::claim`] would, whether the backend commits the batch at once or one by one.

use std::collections::BTreeSet;
use std::net::IpAddr;

use super::support::{ip, key, no_blocks, ok, owner, range_set};
use crate::records::{HistoryKind, HistoryQuery};
use crate::{Allocation, BlockPolicy, Claim, ClaimContext, ClaimRequest, Store, StoreError};

fn single_ip(answer: &Result<Vec<Allocation>, StoreError>, what: &str) -> IpAddr {
    match answer {
        Ok(allocations) if allocations.len() == 1 => allocations[0].ip,
        other => panic!("{what}: expected one allocation, got {other:?}"),
    }
}

/// A batch mixing new, failing and repeated requests: each is answered as a lone claim
/// would be, a failed one keeps nothing, the others keep everything (history included).
pub async fn claim_batch_answers_each_request(store: &dyn Store) {
    let net = "conf-batch";
    let set = range_set("10.0.31.0/29");
    let ctx = no_blocks();
    let holder = key(net, "holder", "eth0");
    let held = ip("10.0.31.3");
    ok(
        store
            .claim(
                &holder,
                &owner("holder"),
                &[Claim::Static {
                    set: &set,
                    ip: held,
                }],
                &ctx,
            )
            .await,
        "static claim before the batch",
    );

    let (c0, c1, c2) = (
        key(net, "c0", "eth0"),
        key(net, "c1", "eth0"),
        key(net, "c2", "eth0"),
    );
    let (o0, o1, o2) = (owner("c0"), owner("c1"), owner("c2"));
    let dynamic = [Claim::Dynamic(&set)];
    let taken = [Claim::Static {
        set: &set,
        ip: held,
    }];
    let request = |k, o, claims| ClaimRequest {
        key: k,
        owner: o,
        claims,
        ctx: &ctx,
    };
    let answers = store
        .claim_batch(&[
            request(&c0, &o0, &dynamic),
            request(&c1, &o1, &taken),
            request(&c2, &o2, &dynamic),
            request(&c0, &o0, &dynamic),
        ])
        .await;
    assert_eq!(answers.len(), 4, "one answer per request");
    let first = single_ip(&answers[0], "c0");
    assert_eq!(
        first,
        ip("10.0.31.1"),
        "next-fit from the start of the pool"
    );
    match &answers[1] {
        Err(StoreError::AddressTaken { container_id, .. }) => assert_eq!(container_id, "holder"),
        other => panic!("c1 claims a held address: expected AddressTaken, got {other:?}"),
    }
    let second = single_ip(&answers[2], "c2");
    assert_eq!(
        second,
        ip("10.0.31.2"),
        "the batch's second claim sees the first"
    );
    assert_eq!(
        single_ip(&answers[3], "c0 again"),
        first,
        "a repeated request in the batch is idempotent"
    );

    let listed: BTreeSet<IpAddr> = ok(store.list(net).await, "list")
        .iter()
        .map(|a| a.ip)
        .collect();
    assert_eq!(listed, BTreeSet::from([first, second, held]));
    assert!(ok(store.attachment(&c1).await, "attachment").is_empty());
    let claimed: Vec<String> = ok(
        store
            .history(&HistoryQuery::Network {
                network: net.into(),
            })
            .await,
        "history",
    )
    .into_iter()
    .filter(|e| e.kind == HistoryKind::Claim)
    .map(|e| e.container_id)
    .collect();
    assert_eq!(
        claimed,
        ["holder", "c0", "c2"],
        "one event per new allocation"
    );
}

/// A batch of dynamic claims with per-node blocks: distinct addresses from the node's
/// block, and exhaustion answered to exactly the requests the pool cannot serve.
pub async fn claim_batch_with_blocks_until_exhaustion(store: &dyn Store) {
    let net = "conf-batch-blocks";
    // A /29 pool with /30 blocks: 6 usable addresses in two blocks.
    let set = range_set("10.0.32.0/29");
    let policy = BlockPolicy {
        v4_prefix: 30,
        v6_prefix: 126,
        release_after_secs: 600,
        enabled: true,
    };
    let ctx = ClaimContext::new("node-batch", policy);
    let keys: Vec<_> = (0..8).map(|i| key(net, &format!("c{i}"), "eth0")).collect();
    let owners: Vec<_> = (0..8).map(|i| owner(&format!("c{i}"))).collect();
    let dynamic = [Claim::Dynamic(&set)];
    let requests: Vec<ClaimRequest<'_>> = keys
        .iter()
        .zip(&owners)
        .map(|(k, o)| ClaimRequest {
            key: k,
            owner: o,
            claims: &dynamic,
            ctx: &ctx,
        })
        .collect();
    let answers = store.claim_batch(&requests).await;
    assert_eq!(answers.len(), 8);
    let got: Vec<IpAddr> = answers[..6]
        .iter()
        .enumerate()
        .map(|(i, a)| single_ip(a, &format!("c{i}")))
        .collect();
    let distinct: BTreeSet<IpAddr> = got.iter().copied().collect();
    assert_eq!(distinct.len(), 6, "distinct addresses: {got:?}");
    for (i, answer) in answers[6..].iter().enumerate() {
        assert!(
            matches!(answer, Err(StoreError::Exhausted { .. })),
            "c{}: expected Exhausted, got {answer:?}",
            i + 6
        );
    }
    let listed: BTreeSet<IpAddr> = ok(store.list(net).await, "list")
        .iter()
        .map(|a| a.ip)
        .collect();
    assert_eq!(listed, distinct);
    let blocks = ok(store.blocks(net).await, "blocks");
    assert!(
        !blocks.is_empty() && blocks.iter().all(|b| b.node == "node-batch"),
        "the batch's claims came from the node's blocks: {blocks:?}"
    );
}
