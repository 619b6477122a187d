//! Dynamic claims with per-node blocks, shared by every backend.
//!
//! Order for a node (next-fit inside its blocks: a freed address is reused only after the
//! cursor went round its block):
//! 1. its own blocks, each from its cursor to its end, no wrap;
//! 2. its own blocks again, wrapping: from each block's start up to its cursor;
//! 3. a new block, only when its own blocks are full: the first unclaimed block with a free
//!    address, searched from an offset derived from the node name (so racing nodes
//!    diverge), after releasing blocks whose grace period is over;
//! 4. borrow: any free address of the range set, next-fit from the set's cursor.
//!
//! Wrapping before claiming keeps a node at the blocks its live attachments need. Claiming
//! first (the order until 2026-12) made a churning node walk through the whole pool, one
//! new block per block's worth of claims, holding every block until its grace period
//! ended: other nodes were left to borrow, and every claim read hundreds of block records.
//!
//! Step 4 covers the whole set, so exhaustion stays exact. Blocks are placement hints:
//! the uniqueness of addresses never depends on them.

use std::net::IpAddr;

use plexus_ipam_core::BlockPolicy;
use plexus_ipam_core::addr::{checked_add, key};
use plexus_ipam_core::blocks::{BlockSearch, block_of, node_seed};
use plexus_ipam_core::range::RangeSet;
use plexus_ipam_core::search::FreeSearch;

use super::{StoreTxn, block_floor, block_holding, expire_blocks, search};
use crate::error::StoreError;
use crate::gc_scope::GcScope;
use crate::types::{Block, ClaimContext};

/// Windows of candidate blocks a claim looks at before borrowing instead (8 × 64 blocks):
/// bounds the cost of a claim when nearly every block is claimed.
const MAX_BLOCK_WINDOWS: usize = 8;

/// Candidate blocks whose addresses a claim searches before borrowing instead: bounds the
/// cost when unclaimed blocks are full of addresses claimed before blocks existed.
const MAX_BLOCK_PROBES: usize = 8;

/// Picks (and books) a free address of `set` for a dynamic claim by `ctx.node`.
pub(super) async fn claim_address<T: StoreTxn + ?Sized>(
    txn: &mut T,
    network: &str,
    set: &RangeSet,
    set_id: &str,
    ctx: &ClaimContext,
) -> Result<Option<IpAddr>, StoreError> {
    let mut own = txn.node_blocks(network, set_id, &ctx.node).await?;
    // 1. Own blocks, from the cursor to the end.
    for block in &mut own {
        let Some(lo) = after_cursor(block) else {
            continue;
        };
        let window = FreeSearch::new(set, None).within(lo, block.last());
        if let Some(ip) = search(txn, network, window).await? {
            book(txn, block, ip).await?;
            return Ok(Some(ip));
        }
    }
    // 2. Own blocks again, from the start up to the cursor (released addresses).
    for block in &mut own {
        let hi = block.cursor.unwrap_or_else(|| block.last());
        let window = FreeSearch::new(set, None).within(block.base, hi);
        if let Some(ip) = search(txn, network, window).await? {
            book(txn, block, ip).await?;
            return Ok(Some(ip));
        }
    }
    // 3. A new block.
    if let Some(ip) = claim_new_block(txn, network, set, set_id, ctx).await? {
        return Ok(Some(ip));
    }
    // 4. Borrow from anywhere in the set.
    let found = borrow(txn, network, set, set_id).await?;
    if let Some(ip) = found {
        note_used(txn, network, ip).await?;
    }
    Ok(found)
}

/// Whole-set next-fit from the set's cursor, moving the cursor (blocks disabled, or a
/// node borrowing).
pub(super) async fn borrow<T: StoreTxn + ?Sized>(
    txn: &mut T,
    network: &str,
    set: &RangeSet,
    set_id: &str,
) -> Result<Option<IpAddr>, StoreError> {
    let cursor = txn.cursor(network, set_id).await?;
    let found = search(txn, network, FreeSearch::new(set, cursor)).await?;
    if let Some(ip) = found {
        txn.set_cursor(network, set_id, ip).await?;
    }
    Ok(found)
}

/// The first address after the block's cursor, or its base when it has none; `None` when
/// the cursor is the block's last address.
fn after_cursor(block: &Block) -> Option<IpAddr> {
    match block.cursor {
        None => Some(block.base),
        Some(cursor) if key(cursor) < key(block.last()) => checked_add(cursor, 1),
        Some(_) => None,
    }
}

/// Records `ip` as handed out in `block`: its cursor moves there and it is no longer empty.
/// The block record itself is rewritten only when its emptied mark must go; otherwise only
/// the cursor moves (see [`StoreTxn::set_block_cursor`]).
async fn book<T: StoreTxn + ?Sized>(
    txn: &mut T,
    block: &mut Block,
    ip: IpAddr,
) -> Result<(), StoreError> {
    block.cursor = Some(ip);
    if block.emptied_at.take().is_some() {
        txn.update_block(block).await
    } else {
        txn.set_block_cursor(block).await
    }
}

/// Clears the emptied mark of the block holding `ip` (an address placed in a block by
/// someone other than its node: a borrow or a static claim), so its grace period restarts
/// when it empties again.
pub(super) async fn note_used<T: StoreTxn + ?Sized>(
    txn: &mut T,
    network: &str,
    ip: IpAddr,
) -> Result<(), StoreError> {
    if let Some(mut block) = block_holding(txn, network, ip).await?
        && block.emptied_at.is_some()
    {
        block.emptied_at = None;
        txn.update_block(&block).await?;
    }
    Ok(())
}

/// Claims the first unclaimed block of the set holding a free address, in the node's
/// search order, and returns that address; `None` when the bounded search finds none.
async fn claim_new_block<T: StoreTxn + ?Sized>(
    txn: &mut T,
    network: &str,
    set: &RangeSet,
    set_id: &str,
    ctx: &ClaimContext,
) -> Result<Option<IpAddr>, StoreError> {
    // Any node's block empty past its grace period may go: it holds nothing (counted
    // again before deletion), and a dead node's blocks must not stay claimed forever.
    expire_blocks(txn, network, &GcScope::all_nodes(), &ctx.blocks, ctx.now).await?;
    let prefix = ctx.blocks.prefix_for(set.family());
    let mut candidates = BlockSearch::new(set, prefix, node_seed(&ctx.node));
    let mut probes = 0;
    for _ in 0..MAX_BLOCK_WINDOWS {
        let Some((lo, hi)) = candidates.next_window() else {
            break;
        };
        let claimed: Vec<(IpAddr, IpAddr)> = txn
            .blocks_between(network, block_floor(lo), hi)
            .await?
            .iter()
            .map(|b| (b.base, b.last()))
            .collect();
        for base in candidates.unclaimed(&claimed) {
            let (base, last) = block_of(base, prefix);
            let window = FreeSearch::new(set, None).within(base, last);
            if window.clone().next_window().is_none() {
                continue; // Nothing allocatable in it (reserved or excluded): free to skip.
            }
            if probes == MAX_BLOCK_PROBES {
                return Ok(None);
            }
            probes += 1;
            let Some(ip) = search(txn, network, window).await? else {
                // Full of addresses claimed before blocks existed, or borrowed: leave it.
                continue;
            };
            let block = Block {
                network: network.to_string(),
                range_set: set_id.to_string(),
                base,
                prefix,
                node: ctx.node.clone(),
                claimed_at: ctx.now,
                emptied_at: None,
                cursor: Some(ip),
            };
            if txn.insert_block(&block).await? {
                return Ok(Some(ip));
            }
            // Another node claimed it a moment ago: try the next one.
        }
    }
    Ok(None)
}

/// The bases of the blocks of `network` that carry no emptied mark yet hold no address,
/// in ascending order; counted unguarded (GC confirms each with [`mark_if_empty`]).
///
/// A release marks the block it empties, but two releases emptying one block side by side
/// can each still count the other's address (their counts are not serialized with each
/// other) and leave the block unmarked: it would stay its node's until the node used and
/// emptied it again. GC finds such blocks here.
pub(crate) async fn unmarked_empty_blocks<T: StoreTxn + ?Sized>(
    txn: &mut T,
    network: &str,
    scope: &GcScope,
) -> Result<Vec<IpAddr>, StoreError> {
    let everything = (
        IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED),
        IpAddr::V6(std::net::Ipv6Addr::from(u128::MAX)),
    );
    let mut found = Vec::new();
    for block in txn
        .blocks_between(network, everything.0, everything.1)
        .await?
    {
        if block.emptied_at.is_none()
            && scope.covers_block(&block.node, &block.range_set)
            && txn
                .count_between_unguarded(network, block.base, block.last())
                .await?
                == 0
        {
            found.push(block.base);
        }
    }
    Ok(found)
}

/// Marks the block of `network` based at `base` as emptied at `now` when it still has no
/// mark and holds no address (counted guarded); returns whether it did.
pub(crate) async fn mark_if_empty<T: StoreTxn + ?Sized>(
    txn: &mut T,
    network: &str,
    base: IpAddr,
    now: i64,
) -> Result<bool, StoreError> {
    let Some(mut block) = block_holding(txn, network, base).await? else {
        return Ok(false); // released meanwhile
    };
    if block.base != base
        || block.emptied_at.is_some()
        || txn.count_between(network, block.base, block.last()).await? != 0
    {
        return Ok(false);
    }
    block.emptied_at = Some(now);
    txn.update_block(&block).await?;
    Ok(true)
}

/// GC's block pass inside one transaction (backends whose GC is one transaction): marks
/// unmarked empty blocks ([`unmarked_empty_blocks`]), then releases those empty past their
/// grace period ([`expire_blocks`]). A block marked now is released a grace period later.
pub(crate) async fn sweep_blocks<T: StoreTxn + ?Sized>(
    txn: &mut T,
    network: &str,
    scope: &GcScope,
    policy: &BlockPolicy,
    now: i64,
) -> Result<Vec<Block>, StoreError> {
    let mut marked = 0usize;
    for base in unmarked_empty_blocks(txn, network, scope).await? {
        marked += usize::from(mark_if_empty(txn, network, base, now).await?);
    }
    log_marked(network, marked);
    expire_blocks(txn, network, scope, policy, now).await
}

/// Reports the blocks GC found empty and marked (see [`unmarked_empty_blocks`]).
pub(crate) fn log_marked(network: &str, marked: usize) {
    if marked > 0 {
        tracing::info!(
            network,
            marked,
            "GC marked empty blocks its releases had left unmarked"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block(base: &str, prefix: u8, cursor: Option<&str>) -> Block {
        Block {
            network: "n".into(),
            range_set: "s".into(),
            base: base.parse().unwrap(),
            prefix,
            node: "a".into(),
            claimed_at: 0,
            emptied_at: None,
            cursor: cursor.map(|c| c.parse().unwrap()),
        }
    }

    #[test]
    fn after_cursor_stops_at_the_end_of_the_block() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert_eq!(
            after_cursor(&block("10.0.0.64", 26, None)),
            Some(ip("10.0.0.64"))
        );
        assert_eq!(
            after_cursor(&block("10.0.0.64", 26, Some("10.0.0.70"))),
            Some(ip("10.0.0.71"))
        );
        assert_eq!(
            after_cursor(&block("10.0.0.64", 26, Some("10.0.0.127"))),
            None
        );
    }
}
