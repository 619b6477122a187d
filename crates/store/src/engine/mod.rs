//! Backend-independent claim, release and GC logic.
//!
//! Every backend exposes the few primitive reads and writes of one open transaction
//! through [`StoreTxn`]; [`claim_all`], [`release`] and [`expire_blocks`] run the
//! idempotency checks, static conflicts, next-fit search and per-node block bookkeeping on
//! top of them. Sharing this code is what makes all backends hand out exactly the same
//! addresses for the same history.

mod blocks;
mod records;
mod txn;

use std::collections::{BTreeMap, HashSet};
use std::net::IpAddr;

use plexus_ipam_core::BlockPolicy;
use plexus_ipam_core::addr::{Family, V4_KEY_BASE, V4_KEY_LAST, canonical, from_key, key};
use plexus_ipam_core::blocks::MAX_BLOCK_ADDRESSES;
use plexus_ipam_core::range::RangeSet;
use plexus_ipam_core::search::FreeSearch;

use crate::error::StoreError;
use crate::gc_scope::{AttachedRow, GcScope};
use crate::records::{HistoryEvent, HistoryKind};
use crate::types::{Allocation, AttachmentKey, Block, Claim, ClaimContext, Owner};

pub(crate) use self::blocks::{log_marked, mark_if_empty, sweep_blocks, unmarked_empty_blocks};
pub(crate) use self::records::{delete_network, put_network, record_history};
pub(crate) use self::txn::StoreTxn;

/// Runs every claim of one ADD inside `txn`; the caller commits only on `Ok`.
pub(crate) async fn claim_all<T: StoreTxn + ?Sized>(
    txn: &mut T,
    key: &AttachmentKey,
    owner: &Owner,
    claims: &[Claim<'_>],
    ctx: &ClaimContext,
) -> Result<Vec<Allocation>, StoreError> {
    let mut allocations = Vec::with_capacity(claims.len());
    let mut events = Vec::new();
    for claim in claims {
        let (allocation, is_new) = claim_one(txn, key, owner, claim, ctx).await?;
        if is_new && ctx.record_history {
            events.push(HistoryEvent::of(&allocation, HistoryKind::Claim, ctx.now));
        }
        allocations.push(allocation);
    }
    // History last, once every claim of the request has succeeded.
    for event in &events {
        txn.append_history(event).await?;
    }
    Ok(allocations)
}

async fn claim_one<T: StoreTxn + ?Sized>(
    txn: &mut T,
    key: &AttachmentKey,
    owner: &Owner,
    claim: &Claim<'_>,
    ctx: &ClaimContext,
) -> Result<(Allocation, bool), StoreError> {
    let set = claim.range_set();
    let set_id = set.id();
    // `::ffff:a.b.c.d` and `a.b.c.d` are one address (one key); compare and store the IPv4 form.
    let claim = match claim {
        Claim::Static { set, ip } => Claim::Static {
            set,
            ip: canonical(*ip),
        },
        Claim::Dynamic(set) => Claim::Dynamic(set),
    };
    if let Some(existing) = txn.existing(key, &set_id).await? {
        return match claim {
            Claim::Static { ip, .. } if ip != existing.ip => {
                Err(StoreError::AttachmentHoldsOther {
                    network: key.network.clone(),
                    held: existing.ip,
                    requested: ip,
                })
            }
            _ => Ok((existing, false)),
        };
    }
    let ip = match claim {
        Claim::Static { ip, .. } => {
            if let Some(holder) = txn.holder(&key.network, ip).await? {
                return Err(address_taken(&holder));
            }
            ip
        }
        Claim::Dynamic(set) => dynamic_address(txn, &key.network, set, &set_id, ctx)
            .await?
            .ok_or_else(|| StoreError::Exhausted {
                network: key.network.clone(),
                range_set: set_id.clone(),
            })?,
    };
    let allocation = Allocation {
        network: key.network.clone(),
        container_id: key.container_id.clone(),
        ifname: key.ifname.clone(),
        ip,
        range_set: set_id,
        owner: owner.clone(),
        created_at: ctx.now,
        // An empty node (imports of allocations that recorded none) stays unknown, so no
        // node's GC ever collects it.
        node: (!ctx.node.is_empty()).then(|| ctx.node.clone()),
    };
    match claim {
        Claim::Static { .. } => {
            txn.insert(&allocation).await?;
            blocks::note_used(txn, &key.network, ip).await?;
        }
        Claim::Dynamic(_) => txn.insert(&allocation).await.map_err(lost_race)?,
    }
    Ok((allocation, true))
}

/// Picks (and books: cursors, blocks) a free address of `set` for a dynamic claim.
async fn dynamic_address<T: StoreTxn + ?Sized>(
    txn: &mut T,
    network: &str,
    set: &RangeSet,
    set_id: &str,
    ctx: &ClaimContext,
) -> Result<Option<IpAddr>, StoreError> {
    if ctx.blocks.enabled {
        return blocks::claim_address(txn, network, set, set_id, ctx).await;
    }
    let found = blocks::borrow(txn, network, set, set_id).await?;
    if let Some(ip) = found {
        // Blocks claimed while they were enabled stay accurate.
        blocks::note_used(txn, network, ip).await?;
    }
    Ok(found)
}

/// Runs `search` window by window against the held addresses of `network`, so a pool
/// holding millions costs no more than an empty one.
pub(crate) async fn search<T: StoreTxn + ?Sized>(
    txn: &mut T,
    network: &str,
    mut search: FreeSearch<'_>,
) -> Result<Option<IpAddr>, StoreError> {
    while let Some((lo, hi)) = search.next_window() {
        let held = txn.held_between(network, lo, hi).await?;
        if let Some(ip) = search.first_free(&held) {
            return Ok(Some(ip));
        }
    }
    Ok(None)
}

/// A dynamic claim found `ip` free in its snapshot, yet the insert collided: another
/// writer won the race (possible on backends without a serialized writer). Retrying the
/// whole transaction finds another address, so the error is transient.
fn lost_race(err: StoreError) -> StoreError {
    match err {
        StoreError::AddressTaken {
            network,
            ip,
            container_id,
            ifname,
        } => StoreError::Busy {
            reason: format!(
                "address {ip} of network {network} was taken by container {container_id} \
                 interface {ifname} while this claim was choosing it"
            ),
        },
        other => other,
    }
}

/// Releases everything `key` holds inside `txn` and marks blocks left empty as emptied at
/// `now`. Returns the released allocations, ascending by address.
pub(crate) async fn release<T: StoreTxn + ?Sized>(
    txn: &mut T,
    key: &AttachmentKey,
    now: i64,
) -> Result<Vec<Allocation>, StoreError> {
    let released = txn.delete_attachment(key).await?;
    for allocation in &released {
        mark_if_emptied(txn, &key.network, allocation.ip, now).await?;
    }
    // History last, as in `claim_all`.
    for allocation in &released {
        let event = HistoryEvent::of(allocation, HistoryKind::Release, now);
        txn.append_history(&event).await?;
    }
    Ok(released)
}

/// The block of `network` holding `ip`, if any.
pub(crate) async fn block_holding<T: StoreTxn + ?Sized>(
    txn: &mut T,
    network: &str,
    ip: IpAddr,
) -> Result<Option<Block>, StoreError> {
    let blocks = txn.blocks_between(network, block_floor(ip), ip).await?;
    Ok(blocks.into_iter().rev().find(|b| b.contains(ip)))
}

/// The lowest base a block holding `ip` (or anything above it) can have: the widest block
/// starts at most `MAX_BLOCK_ADDRESSES - 1` below, within `ip`'s family and, for IPv6, on
/// the same side of the IPv4-mapped block.
pub(crate) fn block_floor(ip: IpAddr) -> IpAddr {
    let k = key(ip);
    let (family_lo, _) = Family::of(ip).key_bounds();
    let mut floor = k.saturating_sub(MAX_BLOCK_ADDRESSES - 1).max(family_lo);
    if Family::of(ip) == Family::V6 && k > V4_KEY_LAST && floor <= V4_KEY_LAST {
        floor = V4_KEY_LAST + 1;
    }
    from_key(floor)
}

/// Marks the block holding `ip` as emptied at `now` when it holds no address any more.
async fn mark_if_emptied<T: StoreTxn + ?Sized>(
    txn: &mut T,
    network: &str,
    ip: IpAddr,
    now: i64,
) -> Result<(), StoreError> {
    let Some(mut block) = block_holding(txn, network, ip).await? else {
        return Ok(());
    };
    // Unguarded: an address a concurrent claim places in the block meanwhile only makes
    // the mark premature, and release counts again (guarded) before freeing a block.
    // Guarded, every release conflicted with every claim in its block.
    if block.emptied_at.is_none()
        && txn
            .count_between_unguarded(network, block.base, block.last())
            .await?
            == 0
    {
        block.emptied_at = Some(now);
        txn.update_block(&block).await?;
    }
    Ok(())
}

/// Releases the blocks of `network` that have been empty for at least
/// `policy.release_after_secs` at `now`, and returns them. A block that turns out to hold
/// an address (a borrowed or static one placed in it after it emptied) is kept and its
/// emptied mark cleared instead: a block is never released while it holds an address.
pub(crate) async fn expire_blocks<T: StoreTxn + ?Sized>(
    txn: &mut T,
    network: &str,
    scope: &GcScope,
    policy: &BlockPolicy,
    now: i64,
) -> Result<Vec<Block>, StoreError> {
    let grace = i64::try_from(policy.release_after_secs).unwrap_or(i64::MAX);
    let emptied_by = now.saturating_sub(grace);
    let mut released = Vec::new();
    for mut block in txn.emptied_blocks(network, emptied_by).await? {
        if !scope.covers_block(&block.node, &block.range_set) {
            continue; // another node's: its own GC releases it
        }
        if txn.count_between(network, block.base, block.last()).await? == 0 {
            txn.delete_block(network, block.base).await?;
            released.push(block);
        } else {
            block.emptied_at = None;
            txn.update_block(&block).await?;
        }
    }
    released.sort_by_key(|b| key(b.base));
    Ok(released)
}

/// The [`StoreError::AddressTaken`] naming `holder`.
pub(crate) fn address_taken(holder: &Allocation) -> StoreError {
    StoreError::AddressTaken {
        network: holder.network.clone(),
        ip: holder.ip,
        container_id: holder.container_id.clone(),
        ifname: holder.ifname.clone(),
    }
}

/// The attachments among `attached` (one row per allocation) that GC must release: those
/// not in `valid` whose every allocation lies in `scope`.
///
/// An attachment with even one allocation outside the scope (another node's, or one with
/// no recorded node under a node's scope) is left alone whole: releasing it would take
/// that allocation too.
pub(crate) fn stale_attachments(
    attached: impl IntoIterator<Item = AttachedRow>,
    valid: &[(String, String)],
    scope: &GcScope,
) -> Vec<(String, String)> {
    let valid: HashSet<(&str, &str)> = valid
        .iter()
        .map(|(container_id, ifname)| (container_id.as_str(), ifname.as_str()))
        .collect();
    // Attachment -> whether every row seen so far is in scope.
    let mut in_scope: BTreeMap<(String, String), bool> = BTreeMap::new();
    for row in attached {
        if valid.contains(&(row.container_id.as_str(), row.ifname.as_str())) {
            continue;
        }
        let covered = scope.covers_allocation(row.node.as_deref(), &row.range_set);
        *in_scope
            .entry((row.container_id, row.ifname))
            .or_insert(true) &= covered;
    }
    in_scope
        .into_iter()
        .filter_map(|(attachment, covered)| covered.then_some(attachment))
        .collect()
}

/// Whether `err` concerns the whole store rather than one attachment, so that a GC sweep
/// should stop instead of failing the same way for every remaining attachment.
pub(crate) fn is_store_wide(err: &StoreError) -> bool {
    matches!(
        err,
        StoreError::Unavailable { .. } | StoreError::Busy { .. }
    )
}

/// The address-key ranges that make up `[lo, hi]` for counting: one range for IPv4; for
/// IPv6, the same minus the IPv4-mapped block `::ffff:0:0/96`, whose keys belong to IPv4
/// allocations. Empty when `lo > hi`; an error when the families differ.
pub(crate) fn family_key_ranges(lo: IpAddr, hi: IpAddr) -> Result<Vec<(u128, u128)>, StoreError> {
    let family = Family::of(lo);
    if family != Family::of(hi) {
        return Err(StoreError::Internal {
            reason: format!("address range {lo}..{hi} mixes IPv4 and IPv6"),
        });
    }
    let (lo, hi) = (key(lo), key(hi));
    if lo > hi {
        return Ok(Vec::new());
    }
    if family == Family::V4 {
        return Ok(vec![(lo, hi)]);
    }
    let mut ranges = Vec::with_capacity(2);
    if lo < V4_KEY_BASE {
        ranges.push((lo, hi.min(V4_KEY_BASE - 1)));
    }
    if hi > V4_KEY_LAST {
        ranges.push((lo.max(V4_KEY_LAST + 1), hi));
    }
    Ok(ranges)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair(c: &str, i: &str) -> (String, String) {
        (c.to_string(), i.to_string())
    }

    fn row(c: &str, i: &str, node: Option<&str>, set: &str) -> AttachedRow {
        AttachedRow {
            container_id: c.to_string(),
            ifname: i.to_string(),
            node: node.map(str::to_string),
            range_set: set.to_string(),
        }
    }

    #[test]
    fn stale_excludes_valid_and_dedups() {
        let attached = vec![
            row("a", "eth0", Some("n"), "s"),
            row("b", "eth0", Some("n"), "s"),
            row("a", "eth1", Some("n"), "s"),
            row("b", "eth0", Some("n"), "t"),
        ];
        let valid = vec![pair("a", "eth0"), pair("zzz", "eth9")];
        assert_eq!(
            stale_attachments(attached, &valid, &GcScope::node("n")),
            vec![pair("a", "eth1"), pair("b", "eth0")]
        );
    }

    #[test]
    fn stale_with_empty_valid_is_everything_in_scope() {
        let attached = vec![row("a", "eth0", Some("n"), "s")];
        assert_eq!(
            stale_attachments(attached, &[], &GcScope::node("n")),
            vec![pair("a", "eth0")]
        );
    }

    #[test]
    fn stale_never_includes_other_nodes_or_unknown_nodes() {
        let attached = vec![
            row("mine", "eth0", Some("a"), "s"),
            row("theirs", "eth0", Some("b"), "s"),
            row("old", "eth0", None, "s"),
            // Half in scope: left whole.
            row("mixed", "eth0", Some("a"), "s"),
            row("mixed", "eth0", Some("b"), "t"),
        ];
        assert_eq!(
            stale_attachments(attached.clone(), &[], &GcScope::node("a")),
            vec![pair("mine", "eth0")]
        );
        assert_eq!(
            stale_attachments(attached.clone(), &[], &GcScope::unknown_node()),
            vec![pair("old", "eth0")]
        );
        assert_eq!(
            stale_attachments(attached, &[], &GcScope::all_nodes()).len(),
            4
        );
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn key_ranges_of_one_family() {
        let (v4, v6) = (ip("10.0.0.1"), ip("fd00::1"));
        assert_eq!(family_key_ranges(v4, v4).unwrap(), vec![(key(v4), key(v4))]);
        assert_eq!(family_key_ranges(v6, v6).unwrap(), vec![(key(v6), key(v6))]);
        assert!(matches!(
            family_key_ranges(v4, v6),
            Err(StoreError::Internal { .. })
        ));
        assert!(family_key_ranges(ip("10.0.0.2"), v4).unwrap().is_empty());
    }

    #[test]
    fn ipv6_ranges_skip_the_ipv4_mapped_block() {
        let all = family_key_ranges(ip("::"), ip("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"));
        assert_eq!(
            all.unwrap(),
            vec![(0, V4_KEY_BASE - 1), (V4_KEY_LAST + 1, u128::MAX)]
        );
        let below = family_key_ranges(ip("::1"), ip("::2")).unwrap();
        assert_eq!(below, vec![(1, 2)]);
    }

    proptest::proptest! {
        /// The split never includes an IPv4 key and covers every IPv6 key of [lo, hi].
        #[test]
        fn split_covers_exactly_the_ipv6_keys(a in proptest::num::u128::ANY, b in proptest::num::u128::ANY, probe in proptest::num::u128::ANY) {
            let (lo, hi) = (a.min(b), a.max(b));
            let (lo_ip, hi_ip) = (std::net::Ipv6Addr::from(lo), std::net::Ipv6Addr::from(hi));
            let lo_ip = IpAddr::V6(lo_ip);
            let hi_ip = IpAddr::V6(hi_ip);
            // Addresses inside the mapped block are IPv4 by definition: skip those bounds.
            proptest::prop_assume!(Family::of(lo_ip) == Family::V6 && Family::of(hi_ip) == Family::V6);
            let ranges = family_key_ranges(lo_ip, hi_ip).unwrap();
            let covered = ranges.iter().any(|(l, h)| (*l..=*h).contains(&probe));
            let expected = (lo..=hi).contains(&probe) && !(V4_KEY_BASE..=V4_KEY_LAST).contains(&probe);
            proptest::prop_assert_eq!(covered, expected);
        }
    }

    #[test]
    fn block_floor_stays_in_family_and_off_the_mapped_block() {
        assert_eq!(block_floor(ip("10.0.16.0")), ip("10.0.0.1"));
        assert_eq!(block_floor(ip("0.0.0.5")), ip("0.0.0.0"));
        assert_eq!(block_floor(ip("::5")), ip("::"));
        // Just above ::ffff:255.255.255.255 the floor stops at the first IPv6 key.
        assert_eq!(block_floor(ip("::1:0:0:5")), ip("::1:0:0:0"));
        assert_eq!(block_floor(ip("fd00::1:0")), ip("fd00::f001"));
    }

    #[test]
    fn store_wide_errors() {
        assert!(is_store_wide(&StoreError::Busy {
            reason: String::new()
        }));
        assert!(is_store_wide(&StoreError::Unavailable {
            reason: String::new()
        }));
        assert!(!is_store_wide(&StoreError::Corrupt {
            reason: String::new()
        }));
    }
}
