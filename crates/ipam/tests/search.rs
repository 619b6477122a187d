//! Next-fit search: order, wrap-around, window shapes, and cost on huge pools.

use std::collections::BTreeSet;
use std::convert::Infallible;
use std::net::IpAddr;

use ipnet::IpNet;
use plexus_ipam_core::{FreeSearch, Range, RangeSet, find_free, from_key, key};

fn ip(s: &str) -> IpAddr {
    s.parse().expect("test address")
}

fn net(s: &str) -> IpNet {
    s.parse().expect("test network")
}

fn set_of(ranges: Vec<Range>) -> RangeSet {
    RangeSet::new(ranges).expect("valid set")
}

fn simple(subnet: &str) -> RangeSet {
    set_of(vec![
        Range::new(net(subnet), None, None, None, vec![]).expect("valid"),
    ])
}

/// Held addresses as a sorted key set, queried by window like a store index would be.
struct Held {
    keys: BTreeSet<u128>,
    queries: usize,
}

impl Held {
    fn new(addrs: impl IntoIterator<Item = IpAddr>) -> Held {
        Held {
            keys: addrs.into_iter().map(key).collect(),
            queries: 0,
        }
    }

    fn between(&mut self, lo: IpAddr, hi: IpAddr) -> Result<Vec<IpAddr>, Infallible> {
        self.queries += 1;
        Ok(self
            .keys
            .range(key(lo)..=key(hi))
            .map(|k| from_key(*k))
            .collect())
    }
}

fn windows(mut search: FreeSearch<'_>) -> Vec<(IpAddr, IpAddr)> {
    std::iter::from_fn(|| search.next_window()).collect()
}

#[test]
fn starts_at_the_first_range_without_cursor() {
    let set = simple("10.0.0.0/24");
    let mut held = Held::new([]);
    let got = find_free(&set, None, |lo, hi| held.between(lo, hi)).expect("infallible");
    assert_eq!(got, Some(ip("10.0.0.1")));
}

#[test]
fn a_freed_address_is_not_reused_at_once() {
    let set = simple("10.0.0.0/24");
    // .1-.5 were handed out, .3 was released; the cursor is .5.
    let mut held = Held::new(["10.0.0.1", "10.0.0.2", "10.0.0.4", "10.0.0.5"].map(ip));
    let got = find_free(&set, Some(ip("10.0.0.5")), |lo, hi| held.between(lo, hi));
    assert_eq!(got, Ok(Some(ip("10.0.0.6"))));
}

#[test]
fn wraps_around_to_the_start_and_ends_with_the_cursor() {
    let set = simple("10.0.0.0/29"); // .1-.6
    let mut held = Held::new(["10.0.0.5", "10.0.0.6", "10.0.0.1"].map(ip));
    let got = find_free(&set, Some(ip("10.0.0.4")), |lo, hi| held.between(lo, hi));
    assert_eq!(got, Ok(Some(ip("10.0.0.2"))));

    let search = FreeSearch::new(&set, Some(ip("10.0.0.4")));
    assert_eq!(
        windows(search),
        vec![
            (ip("10.0.0.5"), ip("10.0.0.6")),
            (ip("10.0.0.1"), ip("10.0.0.4")),
        ]
    );
}

#[test]
fn cursor_at_the_very_end_restarts_at_the_beginning() {
    let set = simple("10.0.0.0/29");
    let search = FreeSearch::new(&set, Some(ip("10.0.0.6")));
    assert_eq!(windows(search), vec![(ip("10.0.0.1"), ip("10.0.0.6"))]);
}

#[test]
fn cursor_outside_the_set_starts_at_the_first_range() {
    let set = simple("10.0.0.0/29");
    for cursor in ["10.9.9.9", "fd00::1", "10.0.0.7"] {
        let search = FreeSearch::new(&set, Some(ip(cursor)));
        assert_eq!(
            windows(search),
            vec![(ip("10.0.0.1"), ip("10.0.0.6"))],
            "cursor {cursor}"
        );
    }
}

#[test]
fn exhausted_pool_returns_none() {
    let set = simple("10.0.0.0/30"); // .1, .2
    let mut held = Held::new(["10.0.0.1", "10.0.0.2"].map(ip));
    let got = find_free(&set, Some(ip("10.0.0.1")), |lo, hi| held.between(lo, hi));
    assert_eq!(got, Ok(None));
}

#[test]
fn windows_skip_reserved_and_excluded_stretches() {
    let set = set_of(vec![
        Range::new(
            net("10.0.0.0/24"),
            None,
            None,
            Some(ip("10.0.0.1")),
            vec![
                net("10.0.0.16/28"),
                net("10.0.0.40/32"),
                net("10.0.0.41/32"),
            ],
        )
        .expect("valid"),
    ]);
    assert_eq!(
        windows(FreeSearch::new(&set, None)),
        vec![
            (ip("10.0.0.2"), ip("10.0.0.15")),
            (ip("10.0.0.32"), ip("10.0.0.39")),
            (ip("10.0.0.42"), ip("10.0.0.254")),
        ]
    );
}

#[test]
fn windows_never_span_two_ranges_and_follow_set_order() {
    let set = set_of(vec![
        Range::new(net("10.0.1.0/29"), None, None, None, vec![]).expect("valid"),
        Range::new(net("10.0.0.0/29"), None, None, None, vec![]).expect("valid"),
    ]);
    assert_eq!(
        windows(FreeSearch::new(&set, Some(ip("10.0.1.3")))),
        vec![
            (ip("10.0.1.4"), ip("10.0.1.6")),
            (ip("10.0.0.1"), ip("10.0.0.6")),
            (ip("10.0.1.1"), ip("10.0.1.3")),
        ]
    );
}

#[test]
fn windows_are_at_most_window_sized() {
    let set = simple("10.0.0.0/20");
    let all = windows(FreeSearch::new(&set, None));
    assert_eq!(all.len(), 4);
    for (lo, hi) in &all {
        assert!(key(*hi) - key(*lo) < FreeSearch::WINDOW);
    }
    assert_eq!(all[0], (ip("10.0.0.1"), ip("10.0.4.0")));
    assert_eq!(all[3], (ip("10.0.12.1"), ip("10.0.15.254")));
}

#[test]
fn first_free_ignores_held_addresses_outside_the_window() {
    let set = simple("10.0.0.0/24");
    let mut search = FreeSearch::new(&set, None);
    assert_eq!(search.first_free(&[]), None, "no window yet");
    search.next_window();
    let held = [
        "10.0.0.3", "10.9.0.1", "10.0.0.1", "fd00::2", "10.0.0.2", "10.0.0.2",
    ]
    .map(ip);
    assert_eq!(search.first_free(&held), Some(ip("10.0.0.4")));
}

#[test]
fn within_restricts_to_a_block_with_the_same_wrap_rules() {
    let set = simple("10.0.0.0/24");
    fn block(search: FreeSearch<'_>) -> FreeSearch<'_> {
        search.within(ip("10.0.0.64"), ip("10.0.0.127"))
    }
    assert_eq!(
        windows(block(FreeSearch::new(&set, Some(ip("10.0.0.100"))))),
        vec![
            (ip("10.0.0.101"), ip("10.0.0.127")),
            (ip("10.0.0.64"), ip("10.0.0.100")),
        ]
    );
    assert_eq!(
        windows(block(FreeSearch::new(&set, Some(ip("10.0.0.200"))))),
        vec![(ip("10.0.0.64"), ip("10.0.0.127"))],
        "cursor outside the block"
    );
    let wrong_family = FreeSearch::new(&set, None).within(ip("fd00::"), ip("fd00::ff"));
    assert_eq!(windows(wrong_family), vec![]);
}

#[test]
fn store_errors_propagate() {
    let set = simple("10.0.0.0/24");
    let got = find_free(&set, None, |_, _| Err::<Vec<IpAddr>, _>("store down"));
    assert_eq!(got, Err("store down"));
}

/// Scale: a /8 with a few thousand held addresses right after the cursor needs only a
/// handful of windows (the store is asked once per window).
#[test]
fn huge_v4_pool_costs_windows_not_addresses() {
    let set = simple("10.0.0.0/8");
    let cursor = ip("10.1.2.3");
    let held_count = 5000u128;
    let mut held = Held::new((1..=held_count).map(|i| from_key(key(cursor) + i)));
    let got = find_free(&set, Some(cursor), |lo, hi| held.between(lo, hi)).expect("infallible");
    assert_eq!(got, Some(from_key(key(cursor) + held_count + 1)));
    assert!(
        held.queries <= 6,
        "{} windows for {held_count} held addresses",
        held.queries
    );
}

#[test]
fn huge_v6_pools_cost_windows_not_addresses() {
    for (subnet, cursor) in [
        ("fd00:1:2:3::/64", "fd00:1:2:3::ffff"),
        ("fd00:1::/48", "fd00:1:0:7::ffff"),
    ] {
        let set = simple(subnet);
        let cursor = ip(cursor);
        let mut held = Held::new((1..=3000u128).map(|i| from_key(key(cursor) + i)));
        let got = find_free(&set, Some(cursor), |lo, hi| held.between(lo, hi));
        assert_eq!(got, Ok(Some(from_key(key(cursor) + 3001))), "{subnet}");
        assert!(held.queries <= 4, "{subnet}: {} windows", held.queries);
    }
}

#[test]
fn huge_exclusions_are_jumped_in_one_step() {
    // Everything but the last /24 of a /8 is excluded: the first window is already there.
    let set = set_of(vec![
        Range::new(
            net("10.0.0.0/8"),
            None,
            None,
            None,
            vec![
                net("10.0.0.0/9"),
                net("10.128.0.0/10"),
                net("10.192.0.0/11"),
                net("10.224.0.0/12"),
                net("10.240.0.0/13"),
                net("10.248.0.0/14"),
                net("10.252.0.0/15"),
                net("10.254.0.0/16"),
                net("10.255.0.0/17"),
                net("10.255.128.0/18"),
                net("10.255.192.0/19"),
                net("10.255.224.0/20"),
                net("10.255.240.0/21"),
                net("10.255.248.0/22"),
                net("10.255.252.0/23"),
                net("10.255.254.0/24"),
            ],
        )
        .expect("valid"),
    ]);
    assert_eq!(set.capacity(), 255);
    assert_eq!(
        windows(FreeSearch::new(&set, None)),
        vec![(ip("10.255.255.0"), ip("10.255.255.254"))]
    );
}

#[test]
fn v6_pool_reaching_the_top_of_the_address_space_terminates() {
    let set = simple("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ff00/120");
    let all = windows(FreeSearch::new(
        &set,
        Some(ip("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff")),
    ));
    assert_eq!(
        all,
        vec![(
            ip("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ff01"),
            ip("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff")
        )]
    );
}
