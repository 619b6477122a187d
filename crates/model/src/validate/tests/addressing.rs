//! Address rules: networks, routes, pools, bitmaps, and plexus' own settings.

use super::{breaks, cluster, ip, net};
use crate::bitmap::AllocBitmap;
use crate::validate::{Operation, Rule, validate, violations};

#[test]
fn cidr_must_parse_and_be_ipv4() {
    for bad in [
        "10.0.0.0",
        "10.0.0.0/33",
        "ten/8",
        "2001:db8::/64",
        "010.0.0.0/24",
    ] {
        let mut object = cluster();
        object.spec.options.cidr = bad.to_owned();
        object.spec.options.routes.clear();
        breaks(
            &object,
            Operation::Create,
            Rule::CidrInvalid,
            "spec.Options.cidr",
        );
    }
}

#[test]
fn cidr_may_be_as_large_as_a_slash_8_but_no_larger() {
    let mut object = cluster();
    object.spec.options.cidr = "10.0.0.0/8".to_owned();
    let valid = validate(&object, Operation::Create).unwrap_or_else(|e| panic!("{e}"));
    let v4 = valid.v4.unwrap_or_else(|| panic!("no v4"));
    assert_eq!(v4.end, ip("10.255.255.254"));
    object.spec.options.cidr = "10.0.0.0/7".to_owned();
    breaks(
        &object,
        Operation::Create,
        Rule::CidrSize,
        "spec.Options.cidr",
    );
    object.spec.options.cidr = "10.10.0.0/31".to_owned();
    object.spec.options.routes.clear();
    breaks(
        &object,
        Operation::Create,
        Rule::CidrSize,
        "spec.Options.cidr",
    );
}

#[test]
fn host_bits_in_cidr_are_cleared_like_danm_does() {
    let mut object = cluster();
    object.spec.options.cidr = "10.10.7.7/16".to_owned();
    let valid = validate(&object, Operation::Create).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(valid.v4.map(|f| f.network), Some(net("10.10.0.0/16")));
}

#[test]
fn net6_must_parse_be_ipv6_and_usable() {
    for bad in [
        "2001:db8::",
        "10.0.0.0/24",
        "2001:db8::/127",
        "::ffff:0:0/96",
        "::/0",
    ] {
        let mut object = cluster();
        object.spec.options.net6 = bad.to_owned();
        object.spec.options.routes6.clear();
        breaks(
            &object,
            Operation::Create,
            Rule::Net6Invalid,
            "spec.Options.net6",
        );
    }
}

#[test]
fn routes_need_a_network() {
    let mut object = cluster();
    object.spec.options.cidr = String::new();
    breaks(
        &object,
        Operation::Create,
        Rule::RoutesWithoutNetwork,
        "spec.Options.routes",
    );
    let mut object = cluster();
    object.spec.options.net6 = String::new();
    breaks(
        &object,
        Operation::Create,
        Rule::RoutesWithoutNetwork,
        "spec.Options.routes6",
    );
}

#[test]
fn route_destinations_are_cidrs_of_the_family() {
    let mut object = cluster();
    object
        .spec
        .options
        .routes
        .insert("192.168.0.1".to_owned(), "10.10.0.1".to_owned());
    object
        .spec
        .options
        .routes6
        .insert("10.0.0.0/8".to_owned(), "2001:db8:1::1".to_owned());
    breaks(
        &object,
        Operation::Create,
        Rule::RouteDestinationInvalid,
        "spec.Options.routes[\"192.168.0.1\"]",
    );
    breaks(
        &object,
        Operation::Create,
        Rule::RouteDestinationInvalid,
        "spec.Options.routes6[\"10.0.0.0/8\"]",
    );
}

#[test]
fn route_gateways_are_addresses_of_the_family() {
    let mut object = cluster();
    object
        .spec
        .options
        .routes
        .insert("172.16.0.0/12".to_owned(), "gw".to_owned());
    object
        .spec
        .options
        .routes6
        .insert("2001:db8:98::/48".to_owned(), "10.10.0.1".to_owned());
    breaks(
        &object,
        Operation::Create,
        Rule::RouteGatewayInvalid,
        "spec.Options.routes[\"172.16.0.0/12\"]",
    );
    breaks(
        &object,
        Operation::Create,
        Rule::RouteGatewayInvalid,
        "spec.Options.routes6[\"2001:db8:98::/48\"]",
    );
}

#[test]
fn route_gateways_lie_inside_the_network() {
    let mut object = cluster();
    object
        .spec
        .options
        .routes
        .insert("172.16.0.0/12".to_owned(), "10.11.0.1".to_owned());
    object
        .spec
        .options
        .routes6
        .insert("2001:db8:98::/48".to_owned(), "2001:db8:2::1".to_owned());
    let errors = breaks(
        &object,
        Operation::Create,
        Rule::RouteGatewayOutside,
        "spec.Options.routes[\"172.16.0.0/12\"]",
    );
    assert!(
        errors.to_string().contains("inside cidr 10.10.0.0/16"),
        "{errors}"
    );
    breaks(
        &object,
        Operation::Create,
        Rule::RouteGatewayOutside,
        "spec.Options.routes6[\"2001:db8:98::/48\"]",
    );
}

#[test]
fn route_gateways_are_not_the_network_or_broadcast_address() {
    let mut object = cluster();
    object
        .spec
        .options
        .routes
        .insert("172.16.0.0/12".to_owned(), "10.10.255.255".to_owned());
    object
        .spec
        .options
        .routes
        .insert("172.32.0.0/12".to_owned(), "10.10.0.0".to_owned());
    object
        .spec
        .options
        .routes6
        .insert("2001:db8:98::/48".to_owned(), "2001:db8:1::".to_owned());
    for path in [
        "spec.Options.routes[\"172.16.0.0/12\"]",
        "spec.Options.routes[\"172.32.0.0/12\"]",
        "spec.Options.routes6[\"2001:db8:98::/48\"]",
    ] {
        breaks(&object, Operation::Create, Rule::RouteGatewayReserved, path);
    }
}

#[test]
fn pools_need_a_network() {
    let mut object = cluster();
    object.spec.options.cidr = String::new();
    object.spec.options.routes.clear();
    object.spec.options.allocation_pool.start = "10.0.0.5".to_owned();
    breaks(
        &object,
        Operation::Create,
        Rule::PoolWithoutNetwork,
        "spec.Options.allocation_pool",
    );
    let mut object = cluster();
    object.spec.options.net6 = String::new();
    object.spec.options.routes6.clear();
    object.spec.options.allocation_pool_v6.cidr = "2001:db8::/120".to_owned();
    let errors = breaks(
        &object,
        Operation::Create,
        Rule::PoolWithoutNetwork,
        "spec.Options.allocation_pool_v6",
    );
    assert_eq!(errors.violations.len(), 1, "{errors}");
}

#[test]
fn pool_addresses_parse_in_the_family() {
    let mut object = cluster();
    object.spec.options.allocation_pool.start = "10.10.0.300".to_owned();
    object.spec.options.allocation_pool_v6.end = "10.10.0.3".to_owned();
    breaks(
        &object,
        Operation::Create,
        Rule::PoolAddressInvalid,
        "spec.Options.allocation_pool.start",
    );
    breaks(
        &object,
        Operation::Create,
        Rule::PoolAddressInvalid,
        "spec.Options.allocation_pool_v6.end",
    );
}

#[test]
fn pool_lies_inside_its_cidr() {
    let mut object = cluster();
    object.spec.options.allocation_pool.end = "10.11.0.1".to_owned();
    breaks(
        &object,
        Operation::Create,
        Rule::PoolAddressOutside,
        "spec.Options.allocation_pool.end",
    );
    let mut object = cluster();
    object.spec.options.allocation_pool_v6.cidr = "2001:db8:1::/120".to_owned();
    object.spec.options.allocation_pool_v6.start = "2001:db8:1::1:0".to_owned();
    breaks(
        &object,
        Operation::Create,
        Rule::PoolAddressOutside,
        "spec.Options.allocation_pool_v6.start",
    );
}

#[test]
fn pool_end_comes_after_start() {
    let mut object = cluster();
    object.spec.options.allocation_pool.start = "10.10.0.50".to_owned();
    object.spec.options.allocation_pool.end = "10.10.0.50".to_owned();
    breaks(
        &object,
        Operation::Create,
        Rule::PoolOrder,
        "spec.Options.allocation_pool.end",
    );
    object.spec.options.allocation_pool.end = "10.10.0.51".to_owned();
    assert!(violations(&object, Operation::Create).is_empty());
    object.spec.options.allocation_pool_v6.start = "2001:db8:1::9".to_owned();
    object.spec.options.allocation_pool_v6.end = "2001:db8:1::8".to_owned();
    breaks(
        &object,
        Operation::Create,
        Rule::PoolOrder,
        "spec.Options.allocation_pool_v6.end",
    );
}

#[test]
fn a_pool_must_leave_an_address_to_hand_out() {
    let mut object = cluster();
    object.spec.options.cidr = "10.10.0.0/30".to_owned();
    object.spec.plexus.reserved = vec!["10.10.0.2".to_owned()];
    let errors = breaks(
        &object,
        Operation::Create,
        Rule::PoolEmpty,
        "spec.Options.allocation_pool",
    );
    assert!(
        errors.to_string().contains("10.10.0.1-10.10.0.2"),
        "{errors}"
    );
    // Gateway and broadcast only.
    let mut object = cluster();
    object.spec.options.allocation_pool.start = "10.10.0.1".to_owned();
    object.spec.options.allocation_pool.end = "10.10.255.255".to_owned();
    object
        .spec
        .options
        .routes
        .insert("0.0.0.0/0".to_owned(), "10.10.255.254".to_owned());
    object.spec.options.allocation_pool.start = "10.10.255.254".to_owned();
    breaks(
        &object,
        Operation::Create,
        Rule::PoolEmpty,
        "spec.Options.allocation_pool",
    );
    // Excluded entirely.
    let mut object = cluster();
    object.spec.options.allocation_pool_v6.cidr = "2001:db8:1::/120".to_owned();
    object.spec.plexus.exclude = vec![
        "2001:db8:1::/121".to_owned(),
        "2001:db8:1::80/121".to_owned(),
    ];
    breaks(
        &object,
        Operation::Create,
        Rule::PoolEmpty,
        "spec.Options.allocation_pool_v6",
    );
}

#[test]
fn pool6_cidr_must_be_a_usable_ipv6_cidr() {
    for bad in ["2001:db8:1::", "10.0.0.0/24", "2001:db8:1::/127"] {
        let mut object = cluster();
        object.spec.options.allocation_pool_v6.cidr = bad.to_owned();
        breaks(
            &object,
            Operation::Create,
            Rule::Pool6CidrInvalid,
            "spec.Options.allocation_pool_v6.cidr",
        );
    }
}

#[test]
fn pool6_cidr_lies_within_net6() {
    let mut object = cluster();
    object.spec.options.allocation_pool_v6.cidr = "2001:db8:2::/106".to_owned();
    breaks(
        &object,
        Operation::Create,
        Rule::Pool6CidrOutside,
        "spec.Options.allocation_pool_v6.cidr",
    );
    object.spec.options.allocation_pool_v6.cidr = "2001:db8::/48".to_owned();
    breaks(
        &object,
        Operation::Create,
        Rule::Pool6CidrOutside,
        "spec.Options.allocation_pool_v6.cidr",
    );
    object.spec.options.allocation_pool_v6.cidr = "2001:db8:1::/106".to_owned();
    let valid = validate(&object, Operation::Create).unwrap_or_else(|e| panic!("{e}"));
    let v6 = valid.v6.unwrap_or_else(|| panic!("no v6"));
    assert_eq!(v6.network, net("2001:db8:1::/64"));
    assert_eq!(v6.allocation_cidr, net("2001:db8:1::/106"));
    assert_eq!(v6.end, ip("2001:db8:1::3f:fffe"));
}

#[test]
fn bitmaps_are_refused_on_create() {
    let mut object = cluster();
    object.spec.options.alloc = "gAAB".to_owned();
    object.spec.options.alloc6 = "gAAB".to_owned();
    breaks(
        &object,
        Operation::Create,
        Rule::AllocOnCreate,
        "spec.Options.alloc",
    );
    breaks(
        &object,
        Operation::Create,
        Rule::AllocOnCreate,
        "spec.Options.alloc6",
    );
}

#[test]
fn existing_bitmaps_must_match_their_allocation_cidr() {
    let mut object = cluster();
    object.spec.options.cidr = "10.10.0.0/24".to_owned();
    object.spec.options.allocation_pool_v6.cidr = "2001:db8:1::/120".to_owned();
    let fresh4 = AllocBitmap::fresh(&net("10.10.0.0/24"), [ip("10.10.0.1")]);
    let fresh6 = AllocBitmap::fresh(&net("2001:db8:1::/120"), []);
    object.spec.options.alloc = fresh4.map(|b| b.encode()).unwrap_or_default();
    object.spec.options.alloc6 = fresh6.map(|b| b.encode()).unwrap_or_default();
    assert!(violations(&object, Operation::Update).is_empty());
    // A bitmap of another size, and garbage.
    object.spec.options.alloc = AllocBitmap::fresh(&net("10.0.0.0/23"), [])
        .map(|b| b.encode())
        .unwrap_or_default();
    object.spec.options.alloc6 = "%%%".to_owned();
    breaks(
        &object,
        Operation::Update,
        Rule::AllocInvalid,
        "spec.Options.alloc",
    );
    breaks(
        &object,
        Operation::Update,
        Rule::AllocInvalid,
        "spec.Options.alloc6",
    );
}

#[test]
fn huge_values_are_shortened_in_errors() {
    let mut object = cluster();
    object.spec.options.alloc = "A".repeat(1_000_000);
    let errors = breaks(
        &object,
        Operation::Create,
        Rule::AllocOnCreate,
        "spec.Options.alloc",
    );
    assert!(
        errors.to_string().len() < 1000,
        "{}",
        errors.to_string().len()
    );
}

#[test]
fn exclusions_parse() {
    let mut object = cluster();
    object.spec.plexus.exclude = vec!["10.10.0.0/24".to_owned(), "10.10.1".to_owned()];
    breaks(
        &object,
        Operation::Create,
        Rule::ExcludeInvalid,
        "spec.plexus.exclude[1]",
    );
}

#[test]
fn exclusions_fall_inside_the_network_of_their_family() {
    let mut object = cluster();
    object.spec.plexus.exclude = vec![
        "10.10.0.0/28".to_owned(),
        "10.20.0.0/24".to_owned(),
        "2001:db8:1::/120".to_owned(),
    ];
    breaks(
        &object,
        Operation::Create,
        Rule::ExcludeOutside,
        "spec.plexus.exclude[1]",
    );
    object.spec.plexus.exclude.remove(1);
    let valid = validate(&object, Operation::Create).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(valid.v4.map(|f| f.exclude), Some(vec![net("10.10.0.0/28")]));
    assert_eq!(
        valid.v6.map(|f| f.exclude),
        Some(vec![net("2001:db8:1::/120")])
    );
    let mut object = cluster();
    object.spec.options.net6 = String::new();
    object.spec.options.routes6.clear();
    object.spec.plexus.exclude = vec!["2001:db8:1::/120".to_owned()];
    breaks(
        &object,
        Operation::Create,
        Rule::ExcludeOutside,
        "spec.plexus.exclude[0]",
    );
}

#[test]
fn reserved_addresses_parse() {
    let mut object = cluster();
    object.spec.plexus.reserved = vec!["10.10.0.0/32".to_owned()];
    breaks(
        &object,
        Operation::Create,
        Rule::ReservedInvalid,
        "spec.plexus.reserved[0]",
    );
}

#[test]
fn reserved_addresses_fall_inside_the_network() {
    let mut object = cluster();
    object.spec.plexus.reserved = vec!["10.10.3.3".to_owned(), "10.99.0.1".to_owned()];
    breaks(
        &object,
        Operation::Create,
        Rule::ReservedOutside,
        "spec.plexus.reserved[1]",
    );
    object.spec.plexus.reserved.pop();
    let valid = validate(&object, Operation::Create).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(valid.v4.map(|f| f.reserved), Some(vec![ip("10.10.3.3")]));
}

#[test]
fn block_sizes_fit_the_network_and_the_allocator() {
    let mut object = cluster();
    object.spec.plexus.block_size = Some(26);
    object.spec.plexus.block_size6 = Some(120);
    let valid = validate(&object, Operation::Create).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(valid.v4.and_then(|f| f.block_size), Some(26));
    for (v4, v6, path) in [
        (Some(19), None, "spec.plexus.block_size"),
        (Some(31), None, "spec.plexus.block_size"),
        (None, Some(127), "spec.plexus.block_size6"),
        (None, Some(-1), "spec.plexus.block_size6"),
    ] {
        object.spec.plexus.block_size = v4;
        object.spec.plexus.block_size6 = v6;
        breaks(&object, Operation::Create, Rule::BlockSizeInvalid, path);
    }
    // A block may not be larger than the network.
    object.spec.options.cidr = "10.10.0.0/24".to_owned();
    object.spec.plexus.block_size = Some(22);
    object.spec.plexus.block_size6 = None;
    breaks(
        &object,
        Operation::Create,
        Rule::BlockSizeInvalid,
        "spec.plexus.block_size",
    );
    // And needs a network.
    let mut object = cluster();
    object.spec.options.net6 = String::new();
    object.spec.options.routes6.clear();
    object.spec.plexus.block_size6 = Some(122);
    breaks(
        &object,
        Operation::Create,
        Rule::BlockSizeInvalid,
        "spec.plexus.block_size6",
    );
}
