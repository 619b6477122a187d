//! Per-node block arithmetic: aligned blocks, clipping, and the windowed search for
//! unclaimed block bases (unit tests and properties against brute force).

use std::collections::BTreeSet;
use std::net::IpAddr;

use plexus_ipam_core::addr::{from_key, key};
use plexus_ipam_core::blocks::{BlockSearch, block_len, block_of, clip_to_range, node_seed};
use plexus_ipam_core::{BlockPolicy, Family, Range, RangeSet};
use proptest::prelude::*;

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn range(cidr: &str, start: Option<&str>, end: Option<&str>) -> Range {
    Range::new(
        cidr.parse().unwrap(),
        start.map(ip),
        end.map(ip),
        None,
        Vec::new(),
    )
    .unwrap()
}

fn set(ranges: Vec<Range>) -> RangeSet {
    RangeSet::new(ranges).unwrap()
}

/// Every window of a search, as (first, last) addresses, plus the unclaimed bases seen
/// with nothing claimed.
fn walk(search: &mut BlockSearch) -> (Vec<(IpAddr, IpAddr)>, Vec<IpAddr>) {
    let mut windows = Vec::new();
    let mut bases = Vec::new();
    while let Some(w) = search.next_window() {
        windows.push(w);
        bases.extend(search.unclaimed(&[]));
    }
    (windows, bases)
}

#[test]
fn aligned_blocks() {
    assert_eq!(
        block_of(ip("10.0.0.77"), 26),
        (ip("10.0.0.64"), ip("10.0.0.127"))
    );
    assert_eq!(
        block_of(ip("10.0.0.64"), 26),
        (ip("10.0.0.64"), ip("10.0.0.127"))
    );
    assert_eq!(
        block_of(ip("::ffff:10.0.0.1"), 30),
        (ip("10.0.0.0"), ip("10.0.0.3"))
    );
    assert_eq!(
        block_of(ip("fd00::1:45"), 122),
        (ip("fd00::1:40"), ip("fd00::1:7f"))
    );
    assert_eq!(block_len(Family::V4, 26), 64);
    assert_eq!(block_len(Family::V6, 116), 4096);
    assert_eq!(block_len(Family::V6, 0), u128::MAX);
}

#[test]
fn policy_prefix_per_family() {
    let p = BlockPolicy::default();
    assert_eq!(p.prefix_for(Family::V4), 26);
    assert_eq!(p.prefix_for(Family::V6), 122);
    assert!(p.enabled);
    assert!(!BlockPolicy::disabled().enabled);
}

#[test]
fn clipping_to_start_and_end() {
    let r = range("10.0.0.0/24", Some("10.0.0.10"), Some("10.0.0.70"));
    let (b, l) = block_of(ip("10.0.0.0"), 26);
    assert_eq!(
        clip_to_range(&r, b, l),
        Some((ip("10.0.0.10"), ip("10.0.0.63")))
    );
    let (b, l) = block_of(ip("10.0.0.64"), 26);
    assert_eq!(
        clip_to_range(&r, b, l),
        Some((ip("10.0.0.64"), ip("10.0.0.70")))
    );
    let (b, l) = block_of(ip("10.0.0.128"), 26);
    assert_eq!(clip_to_range(&r, b, l), None);
    assert_eq!(clip_to_range(&r, ip("fd00::"), ip("fd00::3f")), None);
}

#[test]
fn a_range_smaller_than_a_block_is_one_block() {
    let s = set(vec![range("10.9.0.16/28", None, None)]);
    let mut search = BlockSearch::new(&s, 26, 12345);
    assert_eq!(search.count(), 1);
    let (windows, bases) = walk(&mut search);
    assert_eq!(windows, vec![(ip("10.9.0.0"), ip("10.9.0.63"))]);
    assert_eq!(bases, vec![ip("10.9.0.0")]);
}

#[test]
fn a_slash_8_is_never_walked_whole() {
    let s = set(vec![range("10.0.0.0/8", None, None)]);
    let mut search = BlockSearch::new(&s, 26, node_seed("worker-17"));
    assert_eq!(search.count(), 262_144);
    let (lo, hi) = search.next_window().unwrap();
    assert_eq!(
        key(hi) - key(lo) + 1,
        64 * 64,
        "one window = 64 blocks of 64"
    );
    assert_eq!(search.unclaimed(&[]).len(), 64);
}

#[test]
fn claimed_blocks_of_any_size_hide_the_bases_they_overlap() {
    let s = set(vec![range("10.0.0.0/24", None, None)]);
    let mut search = BlockSearch::new(&s, 26, 0);
    search.next_window().unwrap();
    let claimed = [
        (ip("10.0.0.64"), ip("10.0.0.127")),
        (ip("10.0.0.200"), ip("10.0.0.203")),
    ];
    assert_eq!(
        search.unclaimed(&claimed),
        vec![ip("10.0.0.0"), ip("10.0.0.128")]
    );
    // A wider (/24) block from an older policy covers every /26 base.
    let wide = [(ip("10.0.0.0"), ip("10.0.0.255"))];
    assert!(search.unclaimed(&wide).is_empty());
}

#[test]
fn node_seeds_are_stable_and_spread() {
    assert_eq!(node_seed(""), 0xcbf2_9ce4_8422_2325);
    assert_eq!(node_seed("a"), 0xaf63_dc4c_8601_ec8c);
    let s = set(vec![range("10.0.0.0/16", None, None)]);
    let starts: BTreeSet<IpAddr> = (0..8)
        .map(|n| {
            let mut search = BlockSearch::new(&s, 26, node_seed(&format!("node-{n}")));
            search.next_window().unwrap().0
        })
        .collect();
    assert!(
        starts.len() >= 7,
        "eight nodes should mostly start apart: {starts:?}"
    );
}

/// Brute force: the aligned bases of `prefix` touching some range's start..=end.
fn expected_bases(s: &RangeSet, prefix: u8) -> BTreeSet<u128> {
    let len = block_len(s.family(), prefix);
    let mut bases = BTreeSet::new();
    for r in &s.ranges {
        let (mut b, _) = block_of(r.start, prefix);
        let (last, _) = block_of(r.end, prefix);
        loop {
            bases.insert(key(b));
            if key(b) >= key(last) {
                break;
            }
            b = from_key(key(b) + len);
        }
    }
    bases
}

/// Up to three disjoint IPv4 ranges inside 10.1.0.0/20 (hosts as offsets).
fn ranges_v4() -> impl Strategy<Value = RangeSet> {
    proptest::collection::vec((1u32..4094, 0u32..600), 1..4).prop_filter_map(
        "overlapping ranges",
        |spec| {
            let ranges: Vec<Range> = spec
                .into_iter()
                .map(|(start, len)| {
                    let end = (start + len).min(4094);
                    let at = |h: u32| IpAddr::from((0x0a01_0000u32 + h).to_be_bytes());
                    Range::new(
                        "10.1.0.0/20".parse().unwrap(),
                        Some(at(start)),
                        Some(at(end)),
                        None,
                        Vec::new(),
                    )
                    .unwrap()
                })
                .collect();
            RangeSet::new(ranges).ok()
        },
    )
}

proptest! {
    /// Every candidate base is visited exactly once, starting at `seed % count`, in
    /// windows of at most WINDOW consecutive blocks.
    #[test]
    fn search_visits_each_candidate_once(s in ranges_v4(), prefix in 22u8..=30, seed in any::<u64>()) {
        let expected = expected_bases(&s, prefix);
        let mut search = BlockSearch::new(&s, prefix, seed);
        prop_assert_eq!(search.count(), expected.len() as u128);
        let len = block_len(Family::V4, prefix);
        let (windows, bases) = walk(&mut search);
        let seen: Vec<u128> = bases.iter().map(|b| key(*b)).collect();
        let unique: BTreeSet<u128> = seen.iter().copied().collect();
        prop_assert_eq!(unique.len(), seen.len(), "a base visited twice");
        prop_assert_eq!(&unique, &expected);
        let sorted: Vec<u128> = expected.iter().copied().collect();
        let first = sorted[(u128::from(seed) % sorted.len() as u128) as usize];
        prop_assert_eq!(seen[0], first);
        for (lo, hi) in windows {
            let blocks = (key(hi) - key(lo) + 1) / len;
            prop_assert!((1..=BlockSearch::WINDOW).contains(&blocks));
            prop_assert_eq!((key(hi) - key(lo) + 1) % len, 0);
        }
    }

    /// `unclaimed` keeps exactly the bases of the window that overlap no claimed block.
    #[test]
    fn unclaimed_is_exact(
        s in ranges_v4(),
        prefix in 24u8..=30,
        claimed in proptest::collection::vec((0u32..4096, 24u8..=30), 0..12),
    ) {
        let claimed: Vec<(IpAddr, IpAddr)> = claimed
            .into_iter()
            .map(|(h, p)| block_of(IpAddr::from((0x0a01_0000u32 + h).to_be_bytes()), p))
            .collect();
        let mut search = BlockSearch::new(&s, prefix, 0);
        let len = block_len(Family::V4, prefix);
        while let Some((lo, hi)) = search.next_window() {
            let free: BTreeSet<u128> = search.unclaimed(&claimed).iter().map(|b| key(*b)).collect();
            let mut base = key(lo);
            while base <= key(hi) {
                let end = base + len - 1;
                let overlaps = claimed.iter().any(|(a, b)| key(*a) <= end && key(*b) >= base);
                prop_assert_eq!(free.contains(&base), !overlaps, "base {}", from_key(base));
                base += len;
            }
        }
    }

    /// The block of an address holds it, is aligned and has the block's size.
    #[test]
    fn block_of_holds_the_address(host in any::<u32>(), v6 in any::<u128>(), p4 in 20u8..=30, p6 in 116u8..=126) {
        let v4 = IpAddr::from(host.to_be_bytes());
        let (b, l) = block_of(v4, p4);
        prop_assert!(key(b) <= key(v4) && key(v4) <= key(l));
        prop_assert_eq!(key(l) - key(b) + 1, block_len(Family::V4, p4));
        prop_assert_eq!(u32::from_be_bytes(match b { IpAddr::V4(a) => a.octets(), IpAddr::V6(_) => [1, 1, 1, 1] }) % (1u32 << (32 - p4)), 0);
        let six = IpAddr::V6(v6.into());
        prop_assume!(Family::of(six) == Family::V6);
        let (b, l) = block_of(six, p6);
        prop_assert!(key(b) <= v6 && v6 <= key(l));
        prop_assert_eq!(key(b) % block_len(Family::V6, p6), 0);
    }
}
