//! Range and range-set semantics: defaults, reservations, exclusions, capacity, static requests.

use std::net::IpAddr;

use ipnet::IpNet;
use plexus_ipam_core::{
    Family, Range, RangeError, RangeField, RangeSet, StaticError, place_static,
};

fn ip(s: &str) -> IpAddr {
    s.parse().expect("test address")
}

fn net(s: &str) -> IpNet {
    s.parse().expect("test network")
}

fn range(subnet: &str) -> Range {
    Range::new(net(subnet), None, None, None, Vec::new()).expect("valid range")
}

#[test]
fn v4_defaults_skip_network_and_broadcast() {
    let r = range("10.0.0.0/24");
    assert_eq!(r.start, ip("10.0.0.1"));
    assert_eq!(r.end, ip("10.0.0.254"));
    assert_eq!(r.gateway, None);
    assert_eq!(r.family(), Family::V4);
    assert_eq!(r.capacity(), 254);
    assert_eq!(r.id(), "10.0.0.0/24[10.0.0.1-10.0.0.254]");
}

#[test]
fn v6_defaults_end_at_the_last_address() {
    let r = range("fd00::/120");
    assert_eq!(r.start, ip("fd00::1"));
    assert_eq!(r.end, ip("fd00::ff"));
    assert_eq!(r.capacity(), 255);
    assert!(r.is_allocatable(ip("fd00::ff")), "no broadcast in IPv6");
    assert!(
        r.is_reserved(ip("fd00::")),
        "the subnet-router anycast address is reserved"
    );
}

#[test]
fn reserved_addresses_are_named() {
    let r = Range::new(
        net("10.0.0.0/24"),
        None,
        None,
        Some(ip("10.0.0.1")),
        Vec::new(),
    )
    .expect("valid");
    assert_eq!(r.reserved_as(ip("10.0.0.0")), Some("network address"));
    assert_eq!(r.reserved_as(ip("10.0.0.255")), Some("broadcast address"));
    assert_eq!(r.reserved_as(ip("10.0.0.1")), Some("gateway"));
    assert_eq!(r.reserved_as(ip("10.0.0.2")), None);
    assert_eq!(r.reserved_as(ip("fd00::")), None, "other family");
    assert_eq!(r.capacity(), 253);
}

#[test]
fn gateway_inside_start_end_is_not_allocatable() {
    let r = Range::new(
        net("10.0.0.0/24"),
        Some(ip("10.0.0.10")),
        Some(ip("10.0.0.20")),
        Some(ip("10.0.0.15")),
        Vec::new(),
    )
    .expect("valid");
    assert!(!r.is_allocatable(ip("10.0.0.15")));
    assert!(r.is_allocatable(ip("10.0.0.14")));
    assert!(!r.is_allocatable(ip("10.0.0.9")), "before start");
    assert!(!r.is_allocatable(ip("10.0.0.21")), "after end");
    assert_eq!(r.capacity(), 10);
}

#[test]
fn exclusions_are_overlap_aware_and_normalised() {
    let r = Range::new(
        net("192.168.2.224/28"),
        None,
        None,
        None,
        vec![
            net("192.168.2.229/30"),
            net("192.168.2.236/32"),
            net("192.168.2.230/31"),
            net("10.0.0.0/8"),
        ],
    )
    .expect("valid");
    assert_eq!(r.exclude[0], net("192.168.2.228/30"), "host bits cleared");
    // .225-.238 is 14 candidates; .228-.231 and .236 are excluded (.230/31 is inside .228/30).
    assert_eq!(r.capacity(), 9);
    assert!(r.is_excluded(ip("192.168.2.228")));
    assert_eq!(
        r.excluded_by(ip("192.168.2.231")),
        Some(net("192.168.2.228/30"))
    );
    assert!(!r.is_allocatable(ip("192.168.2.236")));
    assert!(r.is_allocatable(ip("192.168.2.237")));
    assert!(!r.accepts_static(ip("192.168.2.236")));
}

#[test]
fn exclusion_covering_everything_leaves_zero_capacity() {
    let r = Range::new(
        net("10.0.0.0/24"),
        None,
        None,
        None,
        vec![net("10.0.0.0/23")],
    )
    .expect("an emptied pool is valid");
    assert_eq!(r.capacity(), 0);
}

#[test]
fn static_addresses_may_lie_outside_start_end() {
    let r = Range::new(
        net("10.0.0.0/24"),
        Some(ip("10.0.0.100")),
        Some(ip("10.0.0.200")),
        None,
        Vec::new(),
    )
    .expect("valid");
    assert!(r.accepts_static(ip("10.0.0.5")));
    assert!(!r.is_allocatable(ip("10.0.0.5")));
    assert!(!r.accepts_static(ip("10.0.1.5")));
    assert!(!r.accepts_static(ip("10.0.0.255")));
    assert!(r.accepts_static(ip("::ffff:10.0.0.5")), "IPv4-mapped form");
}

#[test]
fn capacity_is_arithmetic_for_huge_pools() {
    assert_eq!(range("10.0.0.0/8").capacity(), (1 << 24) - 2);
    assert_eq!(range("fd00::/64").capacity(), (1u128 << 64) - 1);
    assert_eq!(range("2001:db8::/32").capacity(), (1u128 << 96) - 1);
    let holes = Range::new(
        net("fd00::/48"),
        None,
        None,
        Some(ip("fd00::1")),
        vec![net("fd00::/64"), net("fd00:0:0:1::/64"), net("fd00::5/128")],
    )
    .expect("valid");
    assert_eq!(holes.capacity(), (1u128 << 80) - (2u128 << 64));
}

#[test]
fn invalid_ranges_are_refused_with_the_field() {
    let cases: Vec<(Result<Range, RangeError>, RangeField)> = vec![
        (
            Range::new(net("10.0.0.1/24"), None, None, None, vec![]),
            RangeField::Subnet,
        ),
        (
            Range::new(net("10.0.0.0/31"), None, None, None, vec![]),
            RangeField::Subnet,
        ),
        (
            Range::new(net("fd00::/127"), None, None, None, vec![]),
            RangeField::Subnet,
        ),
        (
            Range::new(net("::/64"), None, None, None, vec![]),
            RangeField::Subnet,
        ),
        (
            Range::new(net("10.0.0.0/24"), Some(ip("10.0.1.1")), None, None, vec![]),
            RangeField::Start,
        ),
        (
            Range::new(net("10.0.0.0/24"), None, Some(ip("fd00::1")), None, vec![]),
            RangeField::End,
        ),
        (
            Range::new(
                net("10.0.0.0/24"),
                Some(ip("10.0.0.9")),
                Some(ip("10.0.0.8")),
                None,
                vec![],
            ),
            RangeField::Start,
        ),
        (
            Range::new(
                net("10.0.0.0/24"),
                None,
                None,
                Some(ip("10.0.0.255")),
                vec![],
            ),
            RangeField::Gateway,
        ),
        (
            Range::new(net("fd00::/64"), None, None, Some(ip("10.0.0.1")), vec![]),
            RangeField::Gateway,
        ),
        (
            Range::new(
                net("10.0.0.0/24"),
                None,
                None,
                None,
                vec![net("10.0.0.0/28"), net("fd00::/64")],
            ),
            RangeField::Exclude(1),
        ),
        (
            Range::new(
                net("10.0.0.0/30"),
                Some(ip("10.0.0.1")),
                Some(ip("10.0.0.1")),
                Some(ip("10.0.0.1")),
                vec![],
            ),
            RangeField::Start,
        ),
    ];
    for (i, (result, field)) in cases.into_iter().enumerate() {
        let err = result.expect_err(&format!("case {i} must be refused"));
        assert_eq!(err.field(), field, "case {i}: {err}");
    }
}

#[test]
fn error_messages_name_the_values() {
    let err = Range::new(net("10.0.0.0/24"), Some(ip("10.0.1.1")), None, None, vec![])
        .expect_err("outside");
    assert_eq!(
        err.to_string(),
        "range start 10.0.1.1 is outside subnet 10.0.0.0/24"
    );
    let err = Range::new(net("10.0.0.7/24"), None, None, None, vec![]).expect_err("host bits");
    assert_eq!(
        err.to_string(),
        "subnet 10.0.0.7/24 has host bits set; the network is 10.0.0.0/24"
    );
}

#[test]
fn a_set_rejects_mixed_families_and_overlaps() {
    let v4 = range("10.0.0.0/24");
    let v6 = range("fd00::/64");
    let err = RangeSet::new(vec![v4.clone(), v6]).expect_err("mixed");
    assert!(
        matches!(err, RangeError::MixedFamilies { index: 1, .. }),
        "{err}"
    );
    let err = RangeSet::new(vec![v4.clone(), range("10.0.0.0/16")]).expect_err("overlap");
    assert!(
        matches!(
            err,
            RangeError::Overlap {
                first: 0,
                second: 1,
                ..
            }
        ),
        "{err}"
    );
    assert_eq!(RangeSet::new(vec![]), Err(RangeError::EmptySet));
}

#[test]
fn a_set_may_split_one_subnet_into_disjoint_ranges() {
    let low = Range::new(
        net("10.0.0.0/24"),
        Some(ip("10.0.0.10")),
        Some(ip("10.0.0.19")),
        None,
        vec![],
    )
    .expect("valid");
    let high = Range::new(
        net("10.0.0.0/24"),
        Some(ip("10.0.0.100")),
        Some(ip("10.0.0.109")),
        None,
        vec![],
    )
    .expect("valid");
    let set = RangeSet::new(vec![low.clone(), high.clone()]).expect("disjoint start..end");
    assert_eq!(set.capacity(), 20);
    assert_eq!(set.find(ip("10.0.0.105")), Some(&high));
    assert_eq!(set.find(ip("10.0.0.50")), Some(&low), "first subnet match");
    assert_eq!(set.find(ip("10.0.1.50")), None);
    assert_eq!(
        set.id(),
        "10.0.0.0/24[10.0.0.10-10.0.0.19],10.0.0.0/24[10.0.0.100-10.0.0.109]"
    );
}

#[test]
fn sets_report_cross_overlaps() {
    let a = RangeSet::new(vec![range("10.0.0.0/24"), range("10.1.0.0/24")]).expect("valid");
    let b = RangeSet::new(vec![range("10.2.0.0/24"), range("10.1.0.0/25")]).expect("valid");
    let c = RangeSet::new(vec![range("fd00::/64")]).expect("valid");
    assert_eq!(a.overlap_with(&b), Some((1, 1)));
    assert_eq!(a.overlap_with(&c), None);
}

fn sets() -> Vec<RangeSet> {
    let v4 = Range::new(
        net("10.0.0.0/24"),
        Some(ip("10.0.0.100")),
        Some(ip("10.0.0.200")),
        Some(ip("10.0.0.1")),
        vec![net("10.0.0.128/28")],
    )
    .expect("valid");
    let v6 = Range::new(net("fd00::/64"), None, None, Some(ip("fd00::1")), vec![]).expect("valid");
    vec![
        RangeSet::new(vec![v4]).expect("valid"),
        RangeSet::new(vec![v6]).expect("valid"),
    ]
}

#[test]
fn static_requests_find_their_set() {
    let sets = sets();
    assert_eq!(place_static(&sets, ip("10.0.0.150")), Ok(0));
    assert_eq!(
        place_static(&sets, ip("10.0.0.7")),
        Ok(0),
        "outside start..end"
    );
    assert_eq!(place_static(&sets, ip("fd00::abcd")), Ok(1));
    assert_eq!(place_static(&sets, ip("::ffff:10.0.0.7")), Ok(0));
}

#[test]
fn static_requests_say_why_they_are_refused() {
    let sets = sets();
    assert_eq!(
        place_static(&sets, ip("10.0.1.7")),
        Err(StaticError::NotInAnyRange(ip("10.0.1.7")))
    );
    assert_eq!(
        place_static(&sets, ip("10.0.0.1")),
        Err(StaticError::Reserved {
            ip: ip("10.0.0.1"),
            what: "gateway"
        })
    );
    assert_eq!(
        place_static(&sets, ip("fd00::")),
        Err(StaticError::Reserved {
            ip: ip("fd00::"),
            what: "network address"
        })
    );
    let err = place_static(&sets, ip("10.0.0.130")).expect_err("excluded");
    assert_eq!(
        err,
        StaticError::Excluded {
            ip: ip("10.0.0.130"),
            by: net("10.0.0.128/28")
        }
    );
    assert_eq!(
        err.to_string(),
        "requested address 10.0.0.130 is excluded from the pool by exclude 10.0.0.128/28"
    );
    assert_eq!(
        place_static(&sets, ip("10.0.0.255"))
            .expect_err("broadcast")
            .to_string(),
        "requested address 10.0.0.255 is reserved: it is the broadcast address of its subnet"
    );
}

#[test]
fn static_request_prefers_the_range_holding_it() {
    // Two sets sharing a subnet with disjoint start..end: the one whose bounds hold the
    // address wins even though an earlier set's subnet also holds it.
    let first = Range::new(
        net("10.0.0.0/24"),
        Some(ip("10.0.0.10")),
        Some(ip("10.0.0.19")),
        None,
        vec![],
    )
    .expect("valid");
    let second = Range::new(
        net("10.0.0.0/24"),
        Some(ip("10.0.0.20")),
        Some(ip("10.0.0.29")),
        None,
        vec![],
    )
    .expect("valid");
    let sets = vec![
        RangeSet::new(vec![first]).expect("valid"),
        RangeSet::new(vec![second]).expect("valid"),
    ];
    assert_eq!(place_static(&sets, ip("10.0.0.25")), Ok(1));
    assert_eq!(place_static(&sets, ip("10.0.0.50")), Ok(0));
}
