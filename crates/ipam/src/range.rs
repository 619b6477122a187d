//! Address ranges (a subnet with start, end, gateway and exclusions) and range sets.
//!
//! Everything here is arithmetic on address keys: a /8 or a /48 costs the same as a /30.

use std::collections::BTreeMap;
use std::net::IpAddr;

use ipnet::IpNet;

use crate::addr::{self, Family, canonical, first_key, key, last_key, net_contains};
use crate::error::{RangeError, RangeField};

/// What the network address is called in errors.
const NETWORK_ADDRESS: &str = "network address";
/// What the IPv4 broadcast address is called in errors.
const BROADCAST_ADDRESS: &str = "broadcast address";
/// What the gateway is called in errors.
const GATEWAY: &str = "gateway";

/// One subnet to allocate from: candidates `start..=end` minus reserved and excluded addresses.
///
/// [`Range::new`] validates; the fields are public for reading. Methods stay panic-free even
/// if a caller edits the fields into an inconsistent state (they then simply match less).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Range {
    /// Network address with host bits cleared.
    pub subnet: IpNet,
    /// First allocatable candidate (inclusive).
    pub start: IpAddr,
    /// Last allocatable candidate (inclusive).
    pub end: IpAddr,
    /// Reserved when present.
    pub gateway: Option<IpAddr>,
    /// Never handed out dynamically nor statically (host bits cleared).
    pub exclude: Vec<IpNet>,
}

impl Range {
    /// Validate and build a range.
    ///
    /// Defaults: `start` = network + 1; `end` = broadcast − 1 for IPv4, the last address for
    /// IPv6. No default gateway (the host-local parser supplies network + 1 itself).
    /// Exclusions are normalised to their network; they may lie partly or wholly outside the
    /// subnet (whereabouts allows that) but must be of the subnet's family.
    pub fn new(
        subnet: IpNet,
        start: Option<IpAddr>,
        end: Option<IpAddr>,
        gateway: Option<IpAddr>,
        exclude: Vec<IpNet>,
    ) -> Result<Range, RangeError> {
        check_subnet(&subnet)?;
        let family = Family::of_net(&subnet);
        let network = first_key(&subnet);
        let last = last_key(&subnet);

        let start = match start {
            Some(ip) => check_inside(RangeField::Start, ip, &subnet)?,
            None => addr::from_key(network + 1),
        };
        let end = match end {
            Some(ip) => check_inside(RangeField::End, ip, &subnet)?,
            None if family == Family::V4 => addr::from_key(last - 1),
            None => addr::from_key(last),
        };
        if key(start) > key(end) {
            return Err(RangeError::StartAfterEnd { start, end });
        }

        let gateway = match gateway {
            Some(ip) => {
                let gw = check_inside(RangeField::Gateway, ip, &subnet)?;
                let what = if key(gw) == network {
                    Some(NETWORK_ADDRESS)
                } else if family == Family::V4 && key(gw) == last {
                    Some(BROADCAST_ADDRESS)
                } else {
                    None
                };
                if let Some(what) = what {
                    return Err(RangeError::GatewayReserved {
                        gateway: gw,
                        what,
                        subnet,
                    });
                }
                Some(gw)
            }
            None => None,
        };

        let mut excluded = Vec::with_capacity(exclude.len());
        for (index, net) in exclude.into_iter().enumerate() {
            if Family::of_net(&net) != family {
                return Err(RangeError::ExcludeWrongFamily {
                    index,
                    exclude: net,
                    subnet,
                });
            }
            excluded.push(net.trunc());
        }

        let range = Range {
            subnet,
            start,
            end,
            gateway,
            exclude: excluded,
        };
        if range.candidates() == range.reserved_in_bounds() {
            return Err(RangeError::NoUsableAddress { id: range.id() });
        }
        Ok(range)
    }

    /// The address family of the subnet.
    pub fn family(&self) -> Family {
        Family::of_net(&self.subnet)
    }

    /// Why `ip` is reserved ("network address", "broadcast address", "gateway"), if it is.
    pub fn reserved_as(&self, ip: IpAddr) -> Option<&'static str> {
        let ip = canonical(ip);
        if Family::of(ip) != self.family() {
            return None;
        }
        let k = key(ip);
        if k == first_key(&self.subnet) {
            Some(NETWORK_ADDRESS)
        } else if self.family() == Family::V4 && k == last_key(&self.subnet) {
            Some(BROADCAST_ADDRESS)
        } else if self.gateway.is_some_and(|gw| key(gw) == k) {
            Some(GATEWAY)
        } else {
            None
        }
    }

    /// The network address (IPv4 and IPv6), the IPv4 broadcast address, and the gateway.
    pub fn is_reserved(&self, ip: IpAddr) -> bool {
        self.reserved_as(ip).is_some()
    }

    /// The first exclusion holding `ip`, if any.
    pub fn excluded_by(&self, ip: IpAddr) -> Option<IpNet> {
        self.exclude
            .iter()
            .find(|net| net_contains(net, ip))
            .copied()
    }

    /// Whether an exclusion holds `ip`.
    pub fn is_excluded(&self, ip: IpAddr) -> bool {
        self.excluded_by(ip).is_some()
    }

    /// Whether `ip` lies in `start..=end` (reservations and exclusions aside).
    pub fn in_bounds(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        Family::of(ip) == self.family() && (key(self.start)..=key(self.end)).contains(&key(ip))
    }

    /// `start <= ip <= end`, not reserved, not excluded.
    pub fn is_allocatable(&self, ip: IpAddr) -> bool {
        self.in_bounds(ip) && !self.is_reserved(ip) && !self.is_excluded(ip)
    }

    /// In the subnet, not reserved, not excluded; a static address may lie outside start..end.
    pub fn accepts_static(&self, ip: IpAddr) -> bool {
        net_contains(&self.subnet, ip) && !self.is_reserved(ip) && !self.is_excluded(ip)
    }

    /// Number of allocatable addresses, computed from the merged blocked spans.
    pub fn capacity(&self) -> u128 {
        let blocked: u128 = self
            .blocked_spans()
            .iter()
            .fold(0, |sum, &(lo, hi)| sum.saturating_add(span_len(lo, hi)));
        self.candidates().saturating_sub(blocked)
    }

    /// Canonical identity: `subnet[start-end]`. Gateway and exclusions are not part of it.
    pub fn id(&self) -> String {
        format!("{}[{}-{}]", self.subnet, self.start, self.end)
    }

    /// Whether two ranges share a candidate address (same family, intersecting start..end).
    pub fn overlaps(&self, other: &Range) -> bool {
        self.family() == other.family()
            && key(self.start).max(key(other.start)) <= key(self.end).min(key(other.end))
    }

    /// Key spans inside `start..=end` that are never handed out dynamically: reserved
    /// addresses and exclusions, clipped, sorted and merged (adjacent spans joined).
    pub fn blocked_spans(&self) -> Vec<(u128, u128)> {
        let (lo, hi) = (key(self.start), key(self.end));
        let family = self.family();
        let mut spans: Vec<(u128, u128)> = self
            .reserved_keys()
            .into_iter()
            .map(|k| (k, k))
            .chain(
                self.exclude
                    .iter()
                    .filter(|net| Family::of_net(net) == family)
                    .map(|net| (first_key(net), last_key(net))),
            )
            .filter_map(|(a, b)| {
                let (a, b) = (a.max(lo), b.min(hi));
                (a <= b).then_some((a, b))
            })
            .collect();
        spans.sort_unstable();
        let mut merged: Vec<(u128, u128)> = Vec::with_capacity(spans.len());
        for (a, b) in spans {
            match merged.last_mut() {
                Some(last) if a <= last.1.saturating_add(1) => last.1 = last.1.max(b),
                _ => merged.push((a, b)),
            }
        }
        merged
    }

    /// Keys of the network address, the IPv4 broadcast address and the gateway.
    fn reserved_keys(&self) -> Vec<u128> {
        let mut keys = vec![first_key(&self.subnet)];
        if self.family() == Family::V4 {
            keys.push(last_key(&self.subnet));
        }
        if let Some(gw) = self.gateway
            && Family::of(gw) == self.family()
        {
            keys.push(key(gw));
        }
        keys
    }

    /// Number of keys in `start..=end` (0 if inverted).
    fn candidates(&self) -> u128 {
        let (lo, hi) = (key(self.start), key(self.end));
        if lo > hi { 0 } else { span_len(lo, hi) }
    }

    /// Number of distinct reserved keys inside `start..=end`.
    fn reserved_in_bounds(&self) -> u128 {
        let (lo, hi) = (key(self.start), key(self.end));
        let mut keys = self.reserved_keys();
        keys.retain(|k| (lo..=hi).contains(k));
        keys.sort_unstable();
        keys.dedup();
        keys.len() as u128
    }
}

/// Number of keys in `lo..=hi` (`lo <= hi`), saturating for the full 128-bit space.
pub(crate) fn span_len(lo: u128, hi: u128) -> u128 {
    (hi - lo).saturating_add(1)
}

/// Subnet sanity: no host bits, room for at least two hosts, IPv6 clear of the IPv4 keys.
fn check_subnet(subnet: &IpNet) -> Result<(), RangeError> {
    let network = subnet.trunc();
    if network != *subnet {
        return Err(RangeError::HostBitsSet {
            subnet: *subnet,
            network,
        });
    }
    if subnet.prefix_len() > subnet.max_prefix_len() - 2 {
        return Err(RangeError::TooSmall(*subnet));
    }
    if Family::of_net(subnet) == Family::V6
        && first_key(subnet) <= addr::V4_KEY_LAST
        && last_key(subnet) >= addr::V4_KEY_BASE
    {
        return Err(RangeError::V4MappedOverlap(*subnet));
    }
    Ok(())
}

/// The canonical form of `ip` if it is of the subnet's family and inside it.
fn check_inside(field: RangeField, ip: IpAddr, subnet: &IpNet) -> Result<IpAddr, RangeError> {
    let ip = canonical(ip);
    if Family::of(ip) != Family::of_net(subnet) {
        return Err(RangeError::WrongFamily {
            field,
            ip,
            subnet: *subnet,
        });
    }
    if !net_contains(subnet, ip) {
        return Err(RangeError::OutsideSubnet {
            field,
            ip,
            subnet: *subnet,
        });
    }
    Ok(ip)
}

/// Separates [`RangeSet::shared_by`] from the ranges in a set's id: never part of a network
/// configuration name (the CNI name grammar) nor of a range id.
pub const SHARED_BY_SEPARATOR: char = '|';

/// Ranges that together yield one address per attachment: same family, no shared candidates.
/// Order matters: the free-address search walks the ranges in this order.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RangeSet {
    /// The ranges, in search order.
    pub ranges: Vec<Range>,
    /// The network configuration (netconf name) this set belongs to when several
    /// configurations share one network (whereabouts' overlapping-range protection): part
    /// of the id, so each configuration's allocations, cursors and GC stay its own while
    /// addresses stay unique across all of them. `None` for a network of its own.
    pub shared_by: Option<String>,
}

impl RangeSet {
    /// Validate and build a set: non-empty, one family, pairwise non-overlapping start..end
    /// (ranges may share a subnet, as host-local allows, if their start..end are disjoint).
    pub fn new(ranges: Vec<Range>) -> Result<RangeSet, RangeError> {
        let first = ranges.first().ok_or(RangeError::EmptySet)?.family();
        let mut earlier = DisjointSpans::default();
        for (index, range) in ranges.iter().enumerate() {
            if range.family() != first {
                return Err(RangeError::MixedFamilies {
                    index,
                    id: range.id(),
                    family: range.family(),
                    first,
                });
            }
            if let Some(earlier) = earlier.first_overlap(range) {
                return Err(RangeError::Overlap {
                    first: earlier,
                    first_id: ranges[earlier].id(),
                    second: index,
                    second_id: range.id(),
                });
            }
            earlier.insert(range, index);
        }
        Ok(RangeSet {
            ranges,
            shared_by: None,
        })
    }

    /// Ids of the ranges joined with ",", after `shared_by|` when the set is shared.
    pub fn id(&self) -> String {
        let ranges = self
            .ranges
            .iter()
            .map(Range::id)
            .collect::<Vec<_>>()
            .join(",");
        match &self.shared_by {
            Some(by) => format!("{by}{SHARED_BY_SEPARATOR}{ranges}"),
            None => ranges,
        }
    }

    /// The same set, owned by the network configuration `name` inside a shared network
    /// (see [`RangeSet::shared_by`]); an empty name leaves it unowned.
    #[must_use]
    pub fn shared_by(mut self, name: &str) -> Self {
        self.shared_by = (!name.is_empty()).then(|| name.to_string());
        self
    }

    /// The family of the set (IPv4 for an empty set, which [`RangeSet::new`] never builds).
    pub fn family(&self) -> Family {
        self.ranges.first().map_or(Family::V4, Range::family)
    }

    /// The range for `ip`: the one whose start..end holds it, else the first whose subnet does.
    pub fn find(&self, ip: IpAddr) -> Option<&Range> {
        self.ranges
            .iter()
            .find(|r| r.in_bounds(ip))
            .or_else(|| self.ranges.iter().find(|r| net_contains(&r.subnet, ip)))
    }

    /// Whether some range of the set may hand out `ip` dynamically.
    pub fn is_allocatable(&self, ip: IpAddr) -> bool {
        self.ranges.iter().any(|r| r.is_allocatable(ip))
    }

    /// Total allocatable addresses (saturating).
    pub fn capacity(&self) -> u128 {
        self.ranges
            .iter()
            .fold(0, |sum, r| sum.saturating_add(r.capacity()))
    }

    /// The first pair (index here, index in `other`) of ranges sharing a candidate address.
    pub fn overlap_with(&self, other: &RangeSet) -> Option<(usize, usize)> {
        self.ranges.iter().enumerate().find_map(|(i, mine)| {
            other
                .ranges
                .iter()
                .position(|theirs| mine.overlaps(theirs))
                .map(|j| (i, j))
        })
    }
}

/// The `start..=end` spans of ranges checked so far, pairwise disjoint, each with the index
/// of its owner (a range, or a range set): overlap checks in O(log n) per range instead of
/// a scan of every earlier range, so a 1 MiB config of ~20,000 ranges is checked in
/// milliseconds (the scan took seconds; found by fuzzing).
#[derive(Debug, Default)]
pub(crate) struct DisjointSpans {
    /// (family, start key) → (end key, owner index).
    spans: BTreeMap<(Family, u128), (u128, usize)>,
}

impl DisjointSpans {
    /// The smallest owner index among the spans sharing an address with `range` (what
    /// scanning the owners in order for [`Range::overlaps`] finds first).
    pub(crate) fn first_overlap(&self, range: &Range) -> Option<usize> {
        let family = range.family();
        let (lo, hi) = (key(range.start), key(range.end));
        // Spans are disjoint and sorted by start, hence also by end: walking back from the
        // last span starting at or before `hi`, they overlap until one ends before `lo`.
        self.spans
            .range((family, 0)..=(family, hi))
            .rev()
            .take_while(|(_, (end, _))| *end >= lo)
            .map(|(_, (_, owner))| *owner)
            .min()
    }

    /// Records `range` for `owner`; the caller has checked it overlaps nothing recorded.
    pub(crate) fn insert(&mut self, range: &Range, owner: usize) {
        self.spans
            .insert((range.family(), key(range.start)), (key(range.end), owner));
    }
}
