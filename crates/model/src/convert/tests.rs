//! Conversion to the allocator's pool, and DANM's defaults.

use std::net::IpAddr;

use ipnet::IpNet;
use plexus_ipam_core::{BlockPolicy, find_free, place_static};

use super::{ConvertError, Reservation, apply_defaults, default_pool_bounds, to_pool};
use crate::network::NetworkObject;
use crate::validate::{Operation, validate};

fn ip(text: &str) -> IpAddr {
    text.parse().unwrap_or_else(|e| panic!("{text}: {e}"))
}

fn net(text: &str) -> IpNet {
    text.parse().unwrap_or_else(|e| panic!("{text}: {e}"))
}

fn object(options: &str, plexus: &str) -> NetworkObject {
    let doc = format!(
        r#"{{"apiVersion":"danm.io/v1","kind":"DanmNet","metadata":{{"name":"red","namespace":"team-a"}},
            "spec":{{"NetworkID":"red","Options":{options},"plexus":{plexus}}}}}"#
    );
    serde_json::from_str(&doc).unwrap_or_else(|e| panic!("{doc}: {e}"))
}

fn pool_of(object: &NetworkObject) -> super::NetworkPool {
    let valid = validate(object, Operation::Create).unwrap_or_else(|e| panic!("{e}"));
    to_pool(&valid).unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn ipv4_pool_with_danm_defaults_and_gateways_reserved() {
    let pool = pool_of(&object(
        r#"{"cidr":"10.1.0.0/24","routes":{"10.9.0.0/16":"10.1.0.1","10.8.0.0/16":"10.1.0.254"}}"#,
        "{}",
    ));
    assert_eq!(pool.network, "team-a/red");
    let v4 = pool.v4.as_ref().unwrap_or_else(|| panic!("no v4"));
    assert!(pool.v6.is_none());
    let range = v4.range().unwrap_or_else(|| panic!("no range"));
    assert_eq!(range.subnet, net("10.1.0.0/24"));
    assert_eq!((range.start, range.end), (ip("10.1.0.1"), ip("10.1.0.254")));
    assert_eq!(range.gateway, Some(ip("10.1.0.1")));
    assert_eq!(range.exclude, vec![net("10.1.0.254/32")]);
    assert_eq!(range.capacity(), 252);
    assert_eq!(v4.gateways, vec![ip("10.1.0.1"), ip("10.1.0.254")]);
    for gw in ["10.1.0.1", "10.1.0.254"] {
        assert!(
            !range.is_allocatable(ip(gw)),
            "{gw} must never be handed out"
        );
    }

    let config = pool.pool_config().unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(config.network, "team-a/red");
    assert_eq!(config.range_sets.len(), 1);
    assert_eq!(config.routes.len(), 2);
    assert_eq!(config.routes[0].dst, net("10.8.0.0/16"));
    assert_eq!(config.routes[0].gw, Some(ip("10.1.0.254")));
    assert_eq!(config.blocks, BlockPolicy::default());
    let free = find_free(&config.range_sets[0], None, |_, _| {
        Ok::<_, std::convert::Infallible>(Vec::new())
    });
    assert_eq!(free, Ok(Some(ip("10.1.0.2"))));
}

#[test]
fn a_slash_8_converts_without_cost() {
    let pool = pool_of(&object(r#"{"cidr":"10.0.0.0/8"}"#, "{}"));
    let range = pool.v4.as_ref().and_then(|f| f.range()).cloned();
    assert_eq!(range.map(|r| r.capacity()), Some((1 << 24) - 2));
}

#[test]
fn ipv6_pool_uses_the_allocation_cidr_and_reserves_its_last_address() {
    let pool = pool_of(&object(
        r#"{"net6":"2001:db8::/64","allocation_pool_v6":{"cidr":"2001:db8::/120"},
            "routes6":{"2001:db8:99::/48":"2001:db8::1","2001:db8:98::/48":"2001:db8::ff:1"}}"#,
        "{}",
    ));
    let v6 = pool.v6.as_ref().unwrap_or_else(|| panic!("no v6"));
    assert_eq!(v6.network, net("2001:db8::/64"));
    let range = v6.range().unwrap_or_else(|| panic!("no range"));
    assert_eq!(range.subnet, net("2001:db8::/120"));
    assert_eq!(
        (range.start, range.end),
        (ip("2001:db8::1"), ip("2001:db8::fe"))
    );
    assert_eq!(range.gateway, Some(ip("2001:db8::1")));
    // The gateway outside the allocation CIDR is not tracked there; the last address is.
    assert_eq!(range.exclude, vec![net("2001:db8::ff/128")]);
    assert!(!range.accepts_static(ip("2001:db8::ff")));
    assert_eq!(
        v6.reservation(ip("2001:db8::ff")),
        Some(Reservation::Broadcast)
    );
}

#[test]
fn exclusions_and_reserved_addresses_are_never_handed_out() {
    let pool = pool_of(&object(
        r#"{"cidr":"10.1.0.0/24","allocation_pool":{"start":"10.1.0.10","end":"10.1.0.20"}}"#,
        r#"{"exclude":["10.1.0.12/31"],"reserved":["10.1.0.15"],"block_size":28}"#,
    ));
    let v4 = pool.v4.as_ref().unwrap_or_else(|| panic!("no v4"));
    let range = v4.range().unwrap_or_else(|| panic!("no range"));
    assert_eq!((range.start, range.end), (ip("10.1.0.10"), ip("10.1.0.20")));
    assert_eq!(range.capacity(), 11 - 3);
    for blocked in ["10.1.0.12", "10.1.0.13", "10.1.0.15"] {
        assert!(!range.is_allocatable(ip(blocked)), "{blocked}");
        assert!(
            place_static(std::slice::from_ref(&v4.range_set), ip(blocked)).is_err(),
            "{blocked}"
        );
    }
    assert_eq!(v4.reservation(ip("10.1.0.15")), Some(Reservation::Reserved));
    assert_eq!(
        v4.reservation(ip("10.1.0.13")),
        Some(Reservation::Excluded(net("10.1.0.12/31")))
    );
    assert_eq!(v4.reservation(ip("10.1.0.14")), None);
    let config = pool.pool_config().unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(config.blocks.v4_prefix, 28);
    assert_eq!(config.blocks.v6_prefix, BlockPolicy::DEFAULT_V6_PREFIX);
}

#[test]
fn statics_outside_the_pool_but_inside_the_cidr_are_accepted() {
    let pool = pool_of(&object(
        r#"{"cidr":"10.1.0.0/24","allocation_pool":{"start":"10.1.0.10","end":"10.1.0.20"}}"#,
        "{}",
    ));
    let set = pool
        .v4
        .map(|f| f.range_set)
        .unwrap_or_else(|| panic!("no v4"));
    assert_eq!(
        place_static(std::slice::from_ref(&set), ip("10.1.0.200")),
        Ok(0)
    );
}

#[test]
fn reservation_labels_follow_danm_showalloc() {
    let pool = pool_of(&object(
        r#"{"cidr":"10.1.0.0/24","routes":{"0.0.0.0/0":"10.1.0.1"}}"#,
        "{}",
    ));
    let v4 = pool.v4.unwrap_or_else(|| panic!("no v4"));
    let label = |text: &str| v4.reservation(ip(text)).map(|r| r.to_string());
    assert_eq!(
        label("10.1.0.0").as_deref(),
        Some("reserved (network base address)")
    );
    assert_eq!(
        label("10.1.0.255").as_deref(),
        Some("reserved (broadcast address)")
    );
    assert_eq!(label("10.1.0.1").as_deref(), Some("reserved (gateway)"));
    assert_eq!(label("10.1.0.2"), None);
    assert_eq!(label("10.2.0.0"), None);
}

#[test]
fn l2_networks_have_no_pool_config() {
    let pool = pool_of(&object(r#"{"host_device":"ens5"}"#, "{}"));
    assert!(pool.v4.is_none() && pool.v6.is_none());
    assert!(matches!(
        pool.pool_config(),
        Err(ConvertError::L2Network { .. })
    ));
}

#[test]
fn defaults_are_those_of_danm_webhook() {
    let mut object = object(
        r#"{"cidr":"10.1.0.0/24","net6":"2001:db8::/64","allocation_pool":{"end":"10.1.0.100"}}"#,
        "{}",
    );
    apply_defaults(&mut object.spec);
    let o = &object.spec.options;
    assert_eq!(object.spec.network_type, "ipvlan");
    assert_eq!(o.allocation_pool.start, "10.1.0.1");
    assert_eq!(o.allocation_pool.end, "10.1.0.100", "set values are kept");
    assert_eq!(o.allocation_pool_v6.cidr, "2001:db8::/64");
    assert_eq!(o.allocation_pool_v6.start, "2001:db8::1");
    assert_eq!(o.allocation_pool_v6.end, "2001:db8::ffff:ffff:ffff:fffe");
    // Defaults never make a valid network invalid, nor change what validation computes.
    let before = validate(&object, Operation::Create).unwrap_or_else(|e| panic!("{e}"));
    apply_defaults(&mut object.spec);
    assert_eq!(validate(&object, Operation::Create), Ok(before));
}

#[test]
fn defaults_leave_unparsable_values_for_validation() {
    let mut object = object(r#"{"cidr":"10.1.0.0/33","net6":"nope"}"#, "{}");
    apply_defaults(&mut object.spec);
    assert!(object.spec.options.allocation_pool.is_empty());
    assert!(object.spec.options.allocation_pool_v6.is_empty());
}

#[test]
fn default_bounds() {
    assert_eq!(
        default_pool_bounds(&net("10.0.0.0/30")),
        Some((ip("10.0.0.1"), ip("10.0.0.2")))
    );
    assert_eq!(default_pool_bounds(&net("10.0.0.0/31")), None);
    assert_eq!(
        default_pool_bounds(&net("10.0.0.9/24")).map(|b| b.0),
        Some(ip("10.0.0.1"))
    );
}

#[test]
fn interface_addresses_carry_the_network_prefix_not_the_allocation_cidr() {
    let pool = pool_of(&object(
        r#"{"cidr":"10.91.0.0/24","allocation_pool":{"start":"10.91.0.10","end":"10.91.0.99"},
            "routes":{"10.99.0.0/16":"10.91.0.1"},
            "net6":"fd91::/64","allocation_pool_v6":{"cidr":"fd91::/120"}}"#,
        "{}",
    ));
    let v6 = pool.v6.as_ref().unwrap_or_else(|| panic!("no v6"));
    assert_eq!(
        v6.allocation_cidr,
        net("fd91::/120"),
        "handed out from the /120"
    );
    assert_eq!(
        pool.interface_address(ip("fd91::1")),
        Some((net("fd91::1/64"), None)),
        "reported with net6's /64"
    );
    assert_eq!(
        pool.interface_address(ip("10.91.0.10")),
        Some((net("10.91.0.10/24"), Some(ip("10.91.0.1"))))
    );
    assert_eq!(pool.interface_address(ip("fd92::1")), None, "outside net6");
    assert_eq!(
        pool.interface_address(ip("10.92.0.1")),
        None,
        "outside cidr"
    );
    let v4_only = pool_of(&object(r#"{"cidr":"10.1.0.0/24"}"#, "{}"));
    assert_eq!(
        v4_only.interface_address(ip("fd91::1")),
        None,
        "no IPv6 family"
    );
}
