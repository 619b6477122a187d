//! Conformance checks of per-node address blocks: claim, fill, borrow, grace period.
//!
//! The clock is injected: claims and GC take `now`, so the checks move time instead of
//! sleeping. Releases stamp blocks with the wall clock, so "later" means
//! `unix_now() + offset`.

use std::collections::BTreeSet;
use std::net::IpAddr;

use plexus_ipam_core::addr::key as addr_key;
use plexus_ipam_core::blocks::block_of;
use plexus_ipam_core::range::RangeSet;

use super::support::{key, ok, owner, range_set};
use crate::types::unix_now;
use crate::{Allocation, Block, BlockPolicy, Claim, ClaimContext, GcScope, Store, StoreError};

/// Blocks of /28 (IPv4) and /124 (IPv6), released after 600 s.
pub(super) fn small_blocks() -> BlockPolicy {
    BlockPolicy {
        v4_prefix: 28,
        v6_prefix: 124,
        release_after_secs: 600,
        enabled: true,
    }
}

/// A context for `node` at `now` with [`small_blocks`].
pub(super) fn on(node: &str, now: i64) -> ClaimContext {
    ClaimContext::new(node, small_blocks()).at(now)
}

/// Claims one dynamic address of `set` for `container` from `node` at `now`.
pub(super) async fn claim_on(
    store: &dyn Store,
    net: &str,
    container: &str,
    set: &RangeSet,
    node: &str,
    now: i64,
) -> Result<Allocation, StoreError> {
    let k = key(net, container, "eth0");
    let mut got = store
        .claim(
            &k,
            &owner(container),
            &[Claim::Dynamic(set)],
            &on(node, now),
        )
        .await?;
    assert_eq!(got.len(), 1, "one claim, one allocation");
    Ok(got.remove(0))
}

/// The blocks of `net` held by `node`.
pub(super) async fn blocks_of(store: &dyn Store, net: &str, node: &str) -> Vec<Block> {
    ok(store.blocks(net).await, "blocks")
        .into_iter()
        .filter(|b| b.node == node)
        .collect()
}

/// The one block of `blocks` holding `ip`.
fn holding(blocks: &[Block], ip: IpAddr) -> Option<&Block> {
    blocks.iter().find(|b| b.contains(ip))
}

/// Two nodes claiming in the same pool get different blocks, and each address lies in
/// its node's block; the allocation records the node.
pub async fn blocks_two_nodes_get_different_blocks(store: &dyn Store) {
    let net = "conf-blocks-two";
    let (v4, v6) = (range_set("10.20.0.0/24"), range_set("fd00:20::/120"));
    let now = unix_now();
    for (node, container) in [("node-a", "a1"), ("node-b", "b1")] {
        let k = key(net, container, "eth0");
        let claims = [Claim::Dynamic(&v4), Claim::Dynamic(&v6)];
        let got = ok(
            store
                .claim(&k, &owner(container), &claims, &on(node, now))
                .await,
            "dual-stack claim",
        );
        let mine = blocks_of(store, net, node).await;
        assert_eq!(
            mine.len(),
            2,
            "{node}: one IPv4 and one IPv6 block: {mine:?}"
        );
        for allocation in &got {
            assert_eq!(allocation.node.as_deref(), Some(node));
            let block = holding(&mine, allocation.ip)
                .unwrap_or_else(|| panic!("{} is outside {node}'s blocks {mine:?}", allocation.ip));
            let expected_prefix = if allocation.ip.is_ipv4() { 28 } else { 124 };
            assert_eq!(block.prefix, expected_prefix);
            assert_eq!(block.range_set, allocation.range_set);
            assert_eq!(block.claimed_at, now);
            assert_eq!(
                block.cursor,
                Some(allocation.ip),
                "the block's cursor moved"
            );
            assert_eq!(block.emptied_at, None);
            assert_eq!(block_of(block.base, block.prefix).0, block.base, "aligned");
        }
    }
    let all = ok(store.blocks(net).await, "blocks");
    let bases: BTreeSet<u128> = all.iter().map(|b| addr_key(b.base)).collect();
    assert_eq!(bases.len(), 4, "four distinct blocks: {all:?}");
    assert!(
        all.windows(2)
            .all(|w| addr_key(w[0].base) < addr_key(w[1].base)),
        "blocks are listed by base"
    );
    assert!(ok(store.blocks("other-net").await, "blocks").is_empty());
}

/// A node fills its block in order (a freed address is not reused before the block's
/// end), wraps to the freed address, and claims a second block only when the first is full.
pub async fn blocks_fill_then_claim_another(store: &dyn Store) {
    let net = "conf-blocks-fill";
    let set = range_set("10.21.0.0/24");
    let now = unix_now();
    let first = ok(
        claim_on(store, net, "c0", &set, "node-a", now).await,
        "claim",
    );
    let block = blocks_of(store, net, "node-a").await.remove(0);
    let (base, last) = (addr_key(block.base), addr_key(block.last()));
    let capacity = (base..=last)
        .map(plexus_ipam_core::addr::from_key)
        .filter(|ip| set.is_allocatable(*ip))
        .count();
    assert!(capacity >= 2, "a /28 of a /24 holds at least 14 addresses");

    // Free the first address at once: the block's cursor is past it.
    ok(store.release(&key(net, "c0", "eth0")).await, "release");
    let mut held = Vec::new();
    for i in 1..=capacity - 1 {
        let a = ok(
            claim_on(store, net, &format!("c{i}"), &set, "node-a", now).await,
            "claim",
        );
        assert!(
            block.contains(a.ip),
            "claim {i} left the block early: {}",
            a.ip
        );
        assert_ne!(
            a.ip, first.ip,
            "the freed address was reused before the block end"
        );
        held.push(a.ip);
    }
    let sorted: Vec<u128> = held.iter().map(|ip| addr_key(*ip)).collect();
    assert!(
        sorted.windows(2).all(|w| w[0] < w[1]),
        "in address order: {held:?}"
    );

    // The block's end is reached: the cursor wraps to the address freed first...
    let wrapped = ok(
        claim_on(store, net, "wrapped", &set, "node-a", now).await,
        "claim",
    );
    assert_eq!(
        wrapped.ip, first.ip,
        "the freed address, after the block's end"
    );
    assert_eq!(blocks_of(store, net, "node-a").await.len(), 1);
    // ...and with the block full, the next claim takes a new block.
    let next = ok(
        claim_on(store, net, "next", &set, "node-a", now).await,
        "claim",
    );
    let mine = blocks_of(store, net, "node-a").await;
    assert_eq!(mine.len(), 2, "a second block: {mine:?}");
    assert!(
        !block.contains(next.ip),
        "{} should be in the new block",
        next.ip
    );
    assert!(holding(&mine, next.ip).is_some());
}

/// When every block is claimed by other nodes, a node borrows single addresses; the pool
/// still runs out at exactly its capacity, with no address handed out twice.
pub async fn blocks_borrow_when_all_claimed(store: &dyn Store) {
    let net = "conf-blocks-borrow";
    // A /27 (30 addresses) is exactly two /28 blocks.
    let set = range_set("10.22.0.0/27");
    let now = unix_now();
    let a = ok(
        claim_on(store, net, "a0", &set, "node-a", now).await,
        "claim a",
    );
    let b = ok(
        claim_on(store, net, "b0", &set, "node-b", now).await,
        "claim b",
    );
    let blocks = ok(store.blocks(net).await, "blocks");
    assert_eq!(blocks.len(), 2, "{blocks:?}");
    assert_ne!(holding(&blocks, a.ip), holding(&blocks, b.ip));

    let c = ok(
        claim_on(store, net, "c0", &set, "node-c", now).await,
        "borrow",
    );
    assert!(
        blocks_of(store, net, "node-c").await.is_empty(),
        "no block left for node-c"
    );
    assert!(
        holding(&blocks, c.ip).is_some(),
        "borrowed from a claimed block"
    );

    let mut seen: BTreeSet<IpAddr> = [a.ip, b.ip, c.ip].into();
    let nodes = ["node-a", "node-b", "node-c"];
    let mut exhausted = BTreeSet::new();
    let mut i = 0;
    while exhausted.len() < nodes.len() {
        let node = nodes[i % nodes.len()];
        i += 1;
        if exhausted.contains(node) {
            continue;
        }
        match claim_on(store, net, &format!("x{i}"), &set, node, now).await {
            Ok(got) => assert!(seen.insert(got.ip), "{} handed out twice", got.ip),
            Err(StoreError::Exhausted { .. }) => {
                exhausted.insert(node);
            }
            Err(e) => panic!("claim {i} on {node}: {e:?}"),
        }
        assert!(i < 200, "the pool never ran out");
    }
    assert_eq!(seen.len() as u128, set.capacity(), "exhaustion is exact");
}

/// A block whose last address is released is marked emptied and released only once the
/// grace period has passed; a claim inside it first clears the mark.
pub async fn blocks_released_only_after_grace(store: &dyn Store) {
    let net = "conf-blocks-grace";
    let set = range_set("10.23.0.0/27");
    let start = unix_now();
    let a = ok(
        claim_on(store, net, "a0", &set, "node-a", start).await,
        "claim",
    );
    let released_at = unix_now();
    ok(store.release(&key(net, "a0", "eth0")).await, "release");
    let block = blocks_of(store, net, "node-a").await.remove(0);
    assert!(block.contains(a.ip));
    let emptied = block.emptied_at.expect("an empty block is marked");
    assert!(
        (released_at..=unix_now()).contains(&emptied),
        "emptied at {emptied}"
    );

    // Within the grace period neither a claim needing a new block nor GC releases it.
    ok(
        claim_on(store, net, "b0", &set, "node-b", emptied + 10).await,
        "claim b",
    );
    let policy = small_blocks();
    let keep_b = [("b0".to_string(), "eth0".to_string())];
    let report = ok(
        store
            .gc(net, &keep_b, &GcScope::all_nodes(), &policy, emptied + 599)
            .await,
        "gc",
    );
    assert!(report.released_blocks.is_empty(), "{report:?}");
    assert_eq!(blocks_of(store, net, "node-a").await.len(), 1);

    // A claim by its node inside it clears the mark, so even a late GC keeps it.
    let again = ok(
        claim_on(store, net, "a1", &set, "node-a", emptied + 20).await,
        "claim",
    );
    assert!(block.contains(again.ip), "node-a reuses its block");
    assert_eq!(blocks_of(store, net, "node-a").await[0].emptied_at, None);
    let keep_a = [("a1".to_string(), "eth0".to_string())];
    let report = ok(
        store
            .gc(
                net,
                &keep_a,
                &GcScope::all_nodes(),
                &policy,
                emptied + 10_000,
            )
            .await,
        "gc",
    );
    assert!(report.released_blocks.is_empty(), "{report:?}");
    assert_eq!(report.released.len(), 1, "b0 was not valid");
    // GC marks the block it emptied at its own `now`.
    let b_block = blocks_of(store, net, "node-b").await.remove(0);
    assert_eq!(b_block.emptied_at, Some(emptied + 10_000));

    // Empty again: released by GC only after the grace period.
    ok(store.release(&key(net, "a1", "eth0")).await, "release");
    let emptied = blocks_of(store, net, "node-a").await[0]
        .emptied_at
        .expect("marked again");
    let report = ok(
        store
            .gc(net, &keep_a, &GcScope::all_nodes(), &policy, emptied + 599)
            .await,
        "gc",
    );
    assert!(report.released_blocks.is_empty(), "{report:?}");
    let report = ok(
        store
            .gc(net, &keep_a, &GcScope::all_nodes(), &policy, emptied + 600)
            .await,
        "gc",
    );
    assert_eq!(report.released_blocks.len(), 1, "{report:?}");
    assert_eq!(report.released_blocks[0].base, block.base);
    assert!(blocks_of(store, net, "node-a").await.is_empty());
    assert_eq!(
        ok(store.blocks(net).await, "blocks"),
        vec![b_block],
        "node-b's block is still in its grace period"
    );
}

/// A block is never released while it holds an address, even one placed in it by another
/// node (a borrow) or a static claim after it emptied; a claim needing a new block
/// releases expired blocks too.
pub async fn blocks_never_released_while_holding(store: &dyn Store) {
    let net = "conf-blocks-hold";
    let set = range_set("10.24.0.0/27");
    let now = unix_now();
    let a = ok(
        claim_on(store, net, "a0", &set, "node-a", now).await,
        "claim",
    );
    ok(store.release(&key(net, "a0", "eth0")).await, "release");
    let block = blocks_of(store, net, "node-a").await.remove(0);
    assert!(block.emptied_at.is_some());

    // A static claim inside the emptied block: the block holds an address again.
    let statik = key(net, "static", "eth0");
    let claim = [Claim::Static {
        set: &set,
        ip: a.ip,
    }];
    ok(
        store
            .claim(&statik, &owner("s"), &claim, &on("node-z", now))
            .await,
        "static claim",
    );
    assert!(
        blocks_of(store, net, "node-z").await.is_empty(),
        "static claims take no block"
    );
    let late = now + 100_000;
    let valid = [("static".to_string(), "eth0".to_string())];
    let report = ok(
        store
            .gc(net, &valid, &GcScope::all_nodes(), &small_blocks(), late)
            .await,
        "gc",
    );
    assert!(report.released_blocks.is_empty(), "{report:?}");
    assert_eq!(blocks_of(store, net, "node-a").await.len(), 1);

    // Once the static address goes, the block empties again and a later claim that
    // needs a new block releases it after the grace period.
    ok(store.release(&statik).await, "release static");
    let emptied = blocks_of(store, net, "node-a").await[0]
        .emptied_at
        .expect("marked again");
    let other = ok(
        claim_on(store, net, "b0", &set, "node-b", emptied + 601).await,
        "claim",
    );
    let remaining = ok(store.blocks(net).await, "blocks");
    assert!(
        remaining.iter().all(|b| b.node == "node-b"),
        "node-a's expired block was released by node-b's claim: {remaining:?}"
    );
    assert!(holding(&remaining, other.ip).is_some());
}
