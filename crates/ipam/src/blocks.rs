//! Per-node address blocks: the policy and the pure block arithmetic.
//!
//! A node claims an aligned block of a range set (a /26 of IPv4 or a /122 of IPv6 by
//! default) and allocates inside it, so nodes rarely contend for the same addresses.
//! Everything here is arithmetic on address keys; the store keeps which blocks are claimed.
//!
//! - [`block_of`]: the aligned block holding an address; [`clip_to_range`]: the part of a
//!   block a range may hand out (reserved and excluded addresses are skipped later by
//!   `FreeSearch::within`).
//! - [`BlockSearch`]: walks the candidate block bases of a set window by window, starting
//!   at an offset derived from the node name ([`node_seed`]) so racing nodes look at
//!   different blocks first, while the store says which blocks of each window are claimed.
//!   Like `FreeSearch`, it never iterates the pool: a /8 holds 262,144 /26 blocks.

use std::net::IpAddr;
use std::ops::RangeInclusive;

use crate::addr::{Family, canonical, from_key, key};
use crate::range::{Range, RangeSet};

/// Accepted IPv4 block prefixes: /20 (4096 addresses) to /30 (4).
pub const V4_PREFIXES: RangeInclusive<u8> = 20..=30;
/// Accepted IPv6 block prefixes: /116 (4096 addresses) to /126 (4).
pub const V6_PREFIXES: RangeInclusive<u8> = 116..=126;
/// The most addresses a block may span (a /20 of IPv4, a /116 of IPv6): a block holding
/// an address has its base at most `MAX_BLOCK_ADDRESSES - 1` below it.
pub const MAX_BLOCK_ADDRESSES: u128 = 4096;

/// How per-node blocks behave for one pool (`ipam.blocks`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct BlockPolicy {
    /// Block prefix length for IPv4 range sets (20..=30).
    pub v4_prefix: u8,
    /// Block prefix length for IPv6 range sets (116..=126).
    pub v6_prefix: u8,
    /// A block that stayed empty this long (seconds) is released for other nodes.
    pub release_after_secs: u64,
    /// Whether nodes claim blocks at all; when false every claim searches the whole set.
    pub enabled: bool,
}

impl BlockPolicy {
    /// Default IPv4 block prefix (64 addresses).
    pub const DEFAULT_V4_PREFIX: u8 = 26;
    /// Default IPv6 block prefix (64 addresses).
    pub const DEFAULT_V6_PREFIX: u8 = 122;
    /// Default grace period of an empty block, in seconds.
    pub const DEFAULT_RELEASE_AFTER_SECS: u64 = 600;

    /// Blocks turned off: every dynamic claim searches the whole range set.
    pub fn disabled() -> Self {
        BlockPolicy {
            enabled: false,
            ..BlockPolicy::default()
        }
    }
}

impl BlockPolicy {
    /// The block prefix for range sets of `family`.
    pub fn prefix_for(&self, family: Family) -> u8 {
        match family {
            Family::V4 => self.v4_prefix,
            Family::V6 => self.v6_prefix,
        }
    }
}

impl Default for BlockPolicy {
    fn default() -> Self {
        BlockPolicy {
            v4_prefix: Self::DEFAULT_V4_PREFIX,
            v6_prefix: Self::DEFAULT_V6_PREFIX,
            release_after_secs: Self::DEFAULT_RELEASE_AFTER_SECS,
            enabled: true,
        }
    }
}

/// Number of addresses in a block of `prefix` in `family` (a prefix longer than the family
/// counts as a single address; `::/0` saturates).
pub fn block_len(family: Family, prefix: u8) -> u128 {
    let host_bits = u32::from(family.bits().saturating_sub(prefix));
    1u128.checked_shl(host_bits).unwrap_or(u128::MAX)
}

/// First and last key of the aligned block of `prefix` holding `k` in `family`.
fn block_keys(family: Family, k: u128, prefix: u8) -> (u128, u128) {
    let len = block_len(family, prefix);
    if len == u128::MAX {
        return family.key_bounds();
    }
    let (family_lo, _) = family.key_bounds();
    // IPv4 keys sit at `V4_KEY_BASE`, which is aligned to every IPv4 block size.
    let offset = k - family_lo;
    let base = family_lo + offset - offset % len;
    (base, base + (len - 1))
}

/// The aligned block of `prefix` holding `ip`: its first and last address.
pub fn block_of(ip: IpAddr, prefix: u8) -> (IpAddr, IpAddr) {
    let ip = canonical(ip);
    let (lo, hi) = block_keys(Family::of(ip), key(ip), prefix);
    (from_key(lo), from_key(hi))
}

/// The part of the block `[base, last]` inside `range`'s `start..=end`, if any. Reserved
/// and excluded addresses inside it are still skipped by `FreeSearch::within`.
pub fn clip_to_range(range: &Range, base: IpAddr, last: IpAddr) -> Option<(IpAddr, IpAddr)> {
    let (base, last) = (canonical(base), canonical(last));
    let family = range.family();
    if Family::of(base) != family || Family::of(last) != family {
        return None;
    }
    let lo = key(base).max(key(range.start));
    let hi = key(last).min(key(range.end));
    (lo <= hi).then(|| (from_key(lo), from_key(hi)))
}

/// A stable 64-bit hash of a node name (FNV-1a): the same on every build and platform, so
/// a node starts its block search at the same place across restarts and backends.
pub fn node_seed(node: &str) -> u64 {
    node.bytes().fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// A stretch of consecutive candidate block bases: keys `first`, `first + len`, ...
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct BaseSpan {
    /// Key of the first base.
    first: u128,
    /// Number of bases.
    count: u128,
}

/// A walk over the candidate block bases of a [`RangeSet`], window by window.
///
/// Candidates are the aligned blocks of `prefix` that intersect the `start..=end` of some
/// range (each counted once, even when two ranges share it), in address order, rotated to
/// start at `seed % count` and wrapping around. Each window is a run of at most
/// [`BlockSearch::WINDOW`] consecutive candidates; the caller asks its store which blocks
/// overlap the window's address span and [`BlockSearch::unclaimed`] names the free bases.
#[derive(Debug, Clone)]
pub struct BlockSearch {
    family: Family,
    /// Addresses per block.
    len: u128,
    /// Candidate bases in address order, disjoint.
    spans: Vec<BaseSpan>,
    /// Total number of candidates.
    count: u128,
    /// Index (in address order) of the first candidate of the walk.
    start: u128,
    /// Candidates visited so far.
    visited: u128,
    /// Keys of the first base and number of bases of the last window.
    last: Option<(u128, u128)>,
}

impl BlockSearch {
    /// Maximum number of candidate blocks per window.
    pub const WINDOW: u128 = 64;

    /// The candidates of `set` for blocks of `prefix`, starting at `seed % count`.
    pub fn new(set: &RangeSet, prefix: u8, seed: u64) -> Self {
        let family = set.family();
        let len = block_len(family, prefix);
        let mut bounds: Vec<(u128, u128)> = set
            .ranges
            .iter()
            .filter(|r| r.family() == family && key(r.start) <= key(r.end))
            .map(|r| {
                let (first, _) = block_keys(family, key(r.start), prefix);
                let (last, _) = block_keys(family, key(r.end), prefix);
                (first, last)
            })
            .collect();
        bounds.sort_unstable();
        let mut merged: Vec<(u128, u128)> = Vec::with_capacity(bounds.len());
        for (first, last) in bounds {
            match merged.last_mut() {
                // Bases are multiples of `len`: touching or shared blocks join one run.
                Some(prev) if first <= prev.1.saturating_add(len) => prev.1 = prev.1.max(last),
                _ => merged.push((first, last)),
            }
        }
        let spans: Vec<BaseSpan> = merged
            .into_iter()
            .map(|(first, last)| BaseSpan {
                first,
                count: ((last - first) / len).saturating_add(1),
            })
            .collect();
        let count = spans.iter().fold(0u128, |n, s| n.saturating_add(s.count));
        let start = if count == 0 {
            0
        } else {
            u128::from(seed) % count
        };
        BlockSearch {
            family,
            len,
            spans,
            count,
            start,
            visited: 0,
            last: None,
        }
    }

    /// Number of candidate blocks of the set.
    pub fn count(&self) -> u128 {
        self.count
    }

    /// The address span `[first base, last address of the last block]` of the next window,
    /// or `None` once every candidate was visited. A window never wraps and never spans a
    /// gap between candidates.
    pub fn next_window(&mut self) -> Option<(IpAddr, IpAddr)> {
        if self.visited >= self.count {
            self.last = None;
            return None;
        }
        let index = (self.start + self.visited) % self.count;
        let (span, offset) = self.locate(index)?;
        let room = (span.count - offset)
            .min(self.count - index)
            .min(self.count - self.visited)
            .min(Self::WINDOW);
        let first = span.first + offset * self.len;
        self.visited += room;
        self.last = Some((first, room));
        let last_addr = first + (room - 1) * self.len + (self.len - 1);
        Some((from_key(first), from_key(last_addr)))
    }

    /// The bases of the last window that overlap none of `claimed` (blocks as first and
    /// last address, any prefix, any order), in walk order.
    pub fn unclaimed(&self, claimed: &[(IpAddr, IpAddr)]) -> Vec<IpAddr> {
        let Some((first, n)) = self.last else {
            return Vec::new();
        };
        let mut taken: Vec<(u128, u128)> = claimed
            .iter()
            .map(|(lo, hi)| (canonical(*lo), canonical(*hi)))
            .filter(|(lo, hi)| Family::of(*lo) == self.family && Family::of(*hi) == self.family)
            .map(|(lo, hi)| (key(lo), key(hi)))
            .collect();
        taken.sort_unstable();
        (0..n)
            .map(|i| first + i * self.len)
            .filter(|&base| {
                let end = base + (self.len - 1);
                // Overlap: a claimed block starting at or before `end` that ends at or
                // after `base` (claimed blocks may be larger than ours).
                !taken
                    .iter()
                    .take_while(|(lo, _)| *lo <= end)
                    .any(|(_, hi)| *hi >= base)
            })
            .map(from_key)
            .collect()
    }

    /// The span holding candidate `index` (in address order) and the offset inside it.
    fn locate(&self, mut index: u128) -> Option<(BaseSpan, u128)> {
        for span in &self.spans {
            if index < span.count {
                return Some((*span, index));
            }
            index -= span.count;
        }
        None
    }
}
