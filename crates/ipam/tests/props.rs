//! Property tests: on small random pools the search, capacity, static placement and config
//! parsing agree with a brute-force enumeration of every address.

use std::collections::BTreeSet;
use std::convert::Infallible;
use std::net::IpAddr;

use ipnet::IpNet;
use plexus_ipam_core::addr::{first_key, last_key};
use plexus_ipam_core::{
    Family, FreeSearch, Range, RangeSet, StaticError, find_free, from_key, key, parse_pool_config,
    place_static,
};
use proptest::prelude::*;
use serde_json::{Value, json};

/// Raw parameters of one random range inside its own 256-address block.
#[derive(Debug, Clone)]
struct RangeParams {
    host_bits: u32,
    slot: u32,
    start: Option<u32>,
    end: Option<u32>,
    gateway: Option<u32>,
    exclude: Vec<(u32, u32)>,
}

fn range_params() -> impl Strategy<Value = RangeParams> {
    (
        2u32..=8,
        any::<u32>(),
        proptest::option::of(any::<u32>()),
        proptest::option::of(any::<u32>()),
        proptest::option::of(any::<u32>()),
        proptest::collection::vec((any::<u32>(), any::<u32>()), 0..4),
    )
        .prop_map(
            |(host_bits, slot, start, end, gateway, exclude)| RangeParams {
                host_bits,
                slot,
                start,
                end,
                gateway,
                exclude,
            },
        )
}

/// First key of 256-address block `block`: 10.0.<block>.0 or fd00::<block>:0.
fn block_base(family: Family, block: u32) -> u128 {
    match family {
        Family::V4 => key("10.0.0.0".parse().expect("v4")) + (u128::from(block) << 8),
        Family::V6 => (0xfd00u128 << 112) + (u128::from(block) << 16),
    }
}

/// Build a valid range from raw parameters, or `None` when they happen to be invalid.
fn build_range(family: Family, block: u32, p: &RangeParams) -> Option<Range> {
    let size = 1u32 << p.host_bits;
    let base = block_base(family, block) + u128::from((p.slot % (256 / size)) * size);
    let at = |offset: u32| from_key(base + u128::from(offset));
    let subnet = IpNet::new(at(0), family.bits() - p.host_bits as u8).ok()?;
    let (mut start, mut end) = (p.start.map(|s| s % size), p.end.map(|e| e % size));
    if let (Some(s), Some(e)) = (start, end)
        && s > e
    {
        (start, end) = (Some(e), Some(s));
    }
    let gateway = p.gateway.map(|g| 1 + g % (size - 2));
    let exclude = p
        .exclude
        .iter()
        .filter_map(|&(offset, bits)| {
            let bits = bits % (p.host_bits + 2);
            IpNet::new(at(offset % (size + 8)), family.bits() - bits as u8).ok()
        })
        .collect();
    Range::new(subnet, start.map(at), end.map(at), gateway.map(at), exclude).ok()
}

fn range_set(family: Family) -> impl Strategy<Value = RangeSet> {
    proptest::collection::vec(range_params(), 1..=3).prop_filter_map(
        "parameters must form a valid set",
        move |params| {
            let ranges: Option<Vec<Range>> = params
                .iter()
                .enumerate()
                .map(|(i, p)| build_range(family, i as u32, p))
                .collect();
            RangeSet::new(ranges?).ok()
        },
    )
}

fn any_set() -> impl Strategy<Value = RangeSet> {
    prop_oneof![range_set(Family::V4), range_set(Family::V6)]
}

/// Every key of every range's subnet.
fn subnet_keys(set: &RangeSet) -> Vec<u128> {
    set.ranges
        .iter()
        .flat_map(|r| first_key(&r.subnet)..=last_key(&r.subnet))
        .collect()
}

/// Allocatable (range index, key) pairs in search order, rotated to start after `cursor`.
fn expected_order(
    set: &RangeSet,
    cursor: Option<IpAddr>,
    bounds: Option<(u128, u128)>,
) -> Vec<u128> {
    let mut pairs: Vec<(usize, u128)> = set
        .ranges
        .iter()
        .enumerate()
        .flat_map(|(i, r)| {
            (first_key(&r.subnet)..=last_key(&r.subnet))
                .filter(|k| r.is_allocatable(from_key(*k)))
                .map(move |k| (i, k))
        })
        .filter(|(_, k)| bounds.is_none_or(|(lo, hi)| (lo..=hi).contains(k)))
        .collect();
    let (b_lo, b_hi) = bounds.unwrap_or((0, u128::MAX));
    let cursor_at = cursor.and_then(|c| {
        let ck = key(c);
        set.ranges
            .iter()
            .position(|r| r.in_bounds(c) && (b_lo..=b_hi).contains(&ck))
            .map(|i| (i, ck))
    });
    if let Some(at) = cursor_at {
        let split = pairs.partition_point(|p| *p <= at);
        pairs.rotate_left(split);
    }
    pairs.into_iter().map(|(_, k)| k).collect()
}

/// A held set: a random subset, everything, or everything but one address.
fn held_for(set: &RangeSet, mode: u8, picks: &[u32]) -> BTreeSet<u128> {
    let keys = subnet_keys(set);
    let allocatable: Vec<u128> = keys
        .iter()
        .copied()
        .filter(|k| set.is_allocatable(from_key(*k)))
        .collect();
    match mode % 3 {
        0 => picks
            .iter()
            .map(|p| keys[*p as usize % keys.len()])
            .collect(),
        1 => allocatable.into_iter().collect(),
        _ => {
            let mut all: BTreeSet<u128> = allocatable.iter().copied().collect();
            if let Some(p) = picks.first()
                && !allocatable.is_empty()
            {
                all.remove(&allocatable[*p as usize % allocatable.len()]);
            }
            all
        }
    }
}

/// A cursor anywhere in (or just around) the set's subnets, or none.
fn cursor_for(set: &RangeSet, pick: Option<u32>) -> Option<IpAddr> {
    let keys = subnet_keys(set);
    pick.map(|p| from_key(keys[p as usize % keys.len()] + u128::from(p % 3 == 0)))
}

fn held_between(held: &BTreeSet<u128>, lo: IpAddr, hi: IpAddr) -> Vec<IpAddr> {
    held.range(key(lo)..=key(hi))
        .map(|k| from_key(*k))
        .collect()
}

proptest! {
    #[test]
    fn find_free_is_the_first_unheld_address_in_next_fit_order(
        set in any_set(),
        mode in any::<u8>(),
        picks in proptest::collection::vec(any::<u32>(), 1..120),
        cursor in proptest::option::of(any::<u32>()),
    ) {
        let held = held_for(&set, mode, &picks);
        let cursor = cursor_for(&set, cursor);
        let expected = expected_order(&set, cursor, None)
            .into_iter()
            .find(|k| !held.contains(k))
            .map(from_key);
        let got = find_free(&set, cursor, |lo, hi| {
            Ok::<_, Infallible>(held_between(&held, lo, hi))
        });
        prop_assert_eq!(got, Ok(expected));
        if let Some(ip) = expected {
            prop_assert!(set.is_allocatable(ip));
            // Reservations and exclusions belong to a range: check the one handing it out.
            let owner = set.ranges.iter().find(|r| r.in_bounds(ip));
            prop_assert!(owner.is_some_and(|r| !r.is_reserved(ip) && !r.is_excluded(ip)));
        }
    }

    #[test]
    fn windows_cover_every_allocatable_address_once_in_order(
        set in any_set(),
        cursor in proptest::option::of(any::<u32>()),
    ) {
        let cursor = cursor_for(&set, cursor);
        let mut search = FreeSearch::new(&set, cursor);
        let mut visited = Vec::new();
        while let Some((lo, hi)) = search.next_window() {
            let (lo_k, hi_k) = (key(lo), key(hi));
            prop_assert!(lo_k <= hi_k);
            prop_assert!(hi_k - lo_k < FreeSearch::WINDOW);
            prop_assert!(
                set.ranges.iter().any(|r| r.in_bounds(lo) && r.in_bounds(hi)),
                "window {}-{} spans ranges", lo, hi
            );
            visited.extend(lo_k..=hi_k);
        }
        prop_assert_eq!(visited, expected_order(&set, cursor, None));
    }

    #[test]
    fn within_a_block_covers_exactly_the_block(
        set in any_set(),
        cursor in proptest::option::of(any::<u32>()),
        a in any::<u32>(),
        b in any::<u32>(),
    ) {
        let keys = subnet_keys(&set);
        let (mut lo, mut hi) = (keys[a as usize % keys.len()], keys[b as usize % keys.len()]);
        if lo > hi {
            std::mem::swap(&mut lo, &mut hi);
        }
        let cursor = cursor_for(&set, cursor);
        let mut search = FreeSearch::new(&set, cursor).within(from_key(lo), from_key(hi));
        let mut visited = Vec::new();
        while let Some((w_lo, w_hi)) = search.next_window() {
            prop_assert!(lo <= key(w_lo) && key(w_hi) <= hi);
            visited.extend(key(w_lo)..=key(w_hi));
        }
        prop_assert_eq!(visited, expected_order(&set, cursor, Some((lo, hi))));
    }

    #[test]
    fn repeated_allocation_yields_capacity_distinct_addresses(
        set in any_set(),
        picks in proptest::collection::vec(any::<u32>(), 0..40),
        cursor in proptest::option::of(any::<u32>()),
    ) {
        let brute_capacity = subnet_keys(&set)
            .into_iter()
            .filter(|k| set.is_allocatable(from_key(*k)))
            .count() as u128;
        prop_assert_eq!(set.capacity(), brute_capacity);

        let mut held = if picks.is_empty() { BTreeSet::new() } else { held_for(&set, 0, &picks) };
        let already = held.iter().filter(|k| set.is_allocatable(from_key(**k))).count() as u128;
        let mut cursor = cursor_for(&set, cursor);
        let mut handed_out = 0u128;
        while let Ok(Some(ip)) = find_free(&set, cursor, |lo, hi| {
            Ok::<_, Infallible>(held_between(&held, lo, hi))
        }) {
            prop_assert!(held.insert(key(ip)), "{} handed out twice", ip);
            prop_assert!(set.is_allocatable(ip));
            cursor = Some(ip);
            handed_out += 1;
            prop_assert!(handed_out <= brute_capacity, "more addresses than capacity");
        }
        prop_assert_eq!(handed_out + already, set.capacity());
    }

    #[test]
    fn static_placement_matches_brute_force(
        v4 in range_set(Family::V4),
        v6 in range_set(Family::V6),
    ) {
        let sets = [v4, v6];
        for k in sets.iter().flat_map(subnet_keys) {
            let ip = from_key(k);
            let in_subnet = sets.iter().any(|s| s.ranges.iter().any(|r| r.subnet.contains(&ip)));
            let acceptable = sets
                .iter()
                .position(|s| s.ranges.iter().any(|r| r.accepts_static(ip)));
            match place_static(&sets, ip) {
                Ok(i) => {
                    prop_assert_eq!(Some(i), acceptable);
                    prop_assert!(sets[i].ranges.iter().any(|r| r.accepts_static(ip)));
                }
                Err(StaticError::NotInAnyRange(_)) => prop_assert!(!in_subnet),
                Err(StaticError::Reserved { .. } | StaticError::Excluded { .. }) => {
                    prop_assert!(in_subnet && acceptable.is_none());
                }
            }
        }
    }

    #[test]
    fn host_local_config_round_trips(
        v4 in range_set(Family::V4),
        v6 in range_set(Family::V6),
    ) {
        // host-local gives a range without gateway network+1; make it explicit to compare.
        let explicit = |set: RangeSet| {
            let ranges = set.ranges.into_iter().map(|r| {
                let gw = r.gateway.or_else(|| Some(from_key(first_key(&r.subnet) + 1)));
                Range::new(r.subnet, Some(r.start), Some(r.end), gw, r.exclude)
            }).collect::<Result<Vec<_>, _>>().ok()?;
            RangeSet::new(ranges).ok()
        };
        let (Some(v4), Some(v6)) = (explicit(v4), explicit(v6)) else {
            return Ok(());
        };
        let render = |set: &RangeSet| -> Value {
            set.ranges.iter().map(|r| json!({
                "subnet": r.subnet.to_string(),
                "rangeStart": r.start.to_string(),
                "rangeEnd": r.end.to_string(),
                "gateway": r.gateway.map(|g| g.to_string()),
                "exclude": r.exclude.iter().map(ToString::to_string).collect::<Vec<_>>(),
            })).collect()
        };
        let ipam = json!({"type": "plexus-ipam", "ranges": [render(&v4), render(&v6)]});
        let parsed = parse_pool_config("net", &ipam, None);
        prop_assert!(parsed.is_ok(), "{:?}", parsed);
        let parsed = parsed.expect("checked");
        prop_assert_eq!(parsed.range_sets, vec![v4, v6]);
        prop_assert!(parsed.warnings.iter().all(|w| !w.contains("not a recognised")));
    }

    #[test]
    fn whereabouts_config_round_trips(
        v4 in range_set(Family::V4),
        v6 in range_set(Family::V6),
    ) {
        // Each whereabouts ipRanges entry is a set of one range without gateway.
        let singles: Vec<RangeSet> = [v4, v6]
            .into_iter()
            .filter_map(|set| {
                let r = set.ranges.into_iter().next()?;
                let r = Range::new(r.subnet, Some(r.start), Some(r.end), None, r.exclude).ok()?;
                RangeSet::new(vec![r]).ok()
            })
            .collect();
        let entries: Vec<Value> = singles.iter().map(|s| {
            let r = &s.ranges[0];
            json!({
                "range": r.subnet.to_string(),
                "range_start": r.start.to_string(),
                "range_end": r.end.to_string(),
                "exclude": r.exclude.iter().map(ToString::to_string).collect::<Vec<_>>(),
            })
        }).collect();
        let ipam = json!({"type": "whereabouts", "ipRanges": entries});
        let parsed = parse_pool_config("net", &ipam, None);
        prop_assert!(parsed.is_ok(), "{:?}", parsed);
        // Overlapping-range protection is on by default: the sets are owned by "net".
        let owned: Vec<RangeSet> = singles.into_iter().map(|s| s.shared_by("net")).collect();
        prop_assert_eq!(parsed.expect("checked").range_sets, owned);
    }
}
