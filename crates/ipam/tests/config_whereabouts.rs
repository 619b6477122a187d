//! whereabouts syntax: the README examples, the documented keys, and the places where plexus
//! is deliberately stricter than whereabouts.

use std::convert::Infallible;
use std::net::IpAddr;

use std::net::Ipv4Addr;

use ipnet::IpNet;
use plexus_ipam_core::{
    ConfigError, PoolConfig, Range, Route, StaticAddress, WHEREABOUTS_SHARED_NETWORK,
    allocation_networks, find_free, parse_pool_config,
};
use proptest::prelude::*;
use serde_json::{Value, json};

fn ip(s: &str) -> IpAddr {
    s.parse().expect("test address")
}

fn net(s: &str) -> IpNet {
    s.parse().expect("test network")
}

/// Wrap an `ipam` object into the README's macvlan netconf and parse it like the plugin.
fn parse_readme(ipam: Value) -> Result<PoolConfig, ConfigError> {
    let netconf = json!({
        "cniVersion": "0.3.0", "name": "whereaboutsexample", "type": "macvlan",
        "master": "eth0", "mode": "bridge", "ipam": ipam
    });
    parse_pool_config(
        netconf["name"].as_str().unwrap_or_default(),
        &netconf["ipam"],
        None,
    )
}

fn parse(ipam: Value) -> PoolConfig {
    parse_pool_config("net1", &ipam, None).expect("config must parse")
}

fn err(ipam: Value) -> ConfigError {
    parse_pool_config("net1", &ipam, None).expect_err("config must be refused")
}

fn first_address(config: &PoolConfig, set: usize) -> Option<IpAddr> {
    find_free(&config.range_sets[set], None, |_, _| {
        Ok::<_, Infallible>(Vec::new())
    })
    .expect("infallible")
}

#[test]
fn readme_example_with_exclusions() {
    let config = parse_readme(json!({
        "type": "whereabouts",
        "range": "192.168.2.225/28",
        "exclude": ["192.168.2.229/30", "192.168.2.236/32"]
    }))
    .expect("parses");
    // Overlapping-range protection (whereabouts' default): one network for every such
    // configuration, the range set owned by this one.
    assert_eq!(config.network, WHEREABOUTS_SHARED_NETWORK);
    assert_eq!(config.legacy_network.as_deref(), Some("whereaboutsexample"));
    assert_eq!(
        config.range_sets[0].shared_by.as_deref(),
        Some("whereaboutsexample")
    );
    let expected = Range::new(
        net("192.168.2.224/28"),
        Some(ip("192.168.2.225")),
        Some(ip("192.168.2.238")),
        None,
        vec![net("192.168.2.228/30"), net("192.168.2.236/32")],
    )
    .expect("valid");
    assert_eq!(config.range_sets.len(), 1);
    assert_eq!(config.range_sets[0].ranges, vec![expected]);
    assert_eq!(config.range_sets[0].capacity(), 9);
    assert_eq!(
        config.warnings,
        vec![
            "ipam.exclude[0] 192.168.2.229/30 has host bits set; all of 192.168.2.228/30 is excluded"
        ]
    );
    assert_eq!(first_address(&config, 0), Some(ip("192.168.2.225")));
}

#[test]
fn readme_nad_example_and_range_end_syntax() {
    let config =
        parse_readme(json!({"type": "whereabouts", "range": "192.168.2.225/28"})).expect("parses");
    assert_eq!(
        config.range_sets[0].id(),
        "whereaboutsexample|192.168.2.224/28[192.168.2.225-192.168.2.238]"
    );
    assert!(config.warnings.is_empty());

    let config = parse(json!({"range": "192.168.2.225-192.168.2.230/28"}));
    assert_eq!(
        config.range_sets[0].id(),
        "net1|192.168.2.224/28[192.168.2.225-192.168.2.230]"
    );
    assert_eq!(config.range_sets[0].capacity(), 6);
}

#[test]
fn readme_ipv6_example_reports_its_off_subnet_gateway_without_reserving_it() {
    // 2001::f:1 is not inside 2001::/116 (2001:: - 2001::fff); whereabouts reports it as
    // the gateway anyway, and a drop-in must accept what whereabouts accepts.
    let config = parse_readme(
        json!({"type": "whereabouts", "range": "2001::0/116", "gateway": "2001::f:1"}),
    )
    .expect("whereabouts' own README example parses");
    assert_eq!(config.unreserved_gateway, Some(ip("2001::f:1")));
    let r = &config.range_sets[0].ranges[0];
    assert_eq!(
        r.gateway, None,
        "not a gateway of the range, so not reserved there"
    );
    assert_eq!((r.start, r.end), (ip("2001::1"), ip("2001::fff")));
    assert_eq!(first_address(&config, 0), Some(ip("2001::1")));
    assert_eq!(
        config.warnings,
        [
            "ipam.gateway 2001::f:1 lies outside 2001::/116: reported in the result as \
          whereabouts does, not reserved; check that the node can reach it"
        ]
    );
    let config = parse(json!({"range": "2001::0/116", "gateway": "2001::1"}));
    assert_eq!(config.unreserved_gateway, None);
    let r = &config.range_sets[0].ranges[0];
    assert_eq!((r.start, r.end), (ip("2001::1"), ip("2001::fff")));
    assert_eq!(
        first_address(&config, 0),
        Some(ip("2001::2")),
        "the gateway is reserved"
    );
}

proptest! {
    /// A gateway outside every range of its family is reported and never reserved: the
    /// ranges are exactly those without a gateway, whatever the subnet and gateway.
    #[test]
    fn an_off_subnet_gateway_is_never_reserved(base in any::<u32>(), prefix in 8u8..=30, gw in any::<u32>()) {
        let subnet = IpNet::new(IpAddr::from(Ipv4Addr::from(base)), prefix).unwrap().trunc();
        let gateway = IpAddr::from(Ipv4Addr::from(gw));
        prop_assume!(!subnet.contains(&gateway));
        let config = parse(json!({"range": subnet.to_string(), "gateway": gateway.to_string(),
                                  "ipRanges": [{"range": "fd00::/120"}]}));
        let without = parse(json!({"range": subnet.to_string(), "ipRanges": [{"range": "fd00::/120"}]}));
        prop_assert_eq!(config.unreserved_gateway, Some(gateway));
        prop_assert_eq!(&config.range_sets, &without.range_sets);
        prop_assert_eq!(config.warnings.len(), 1);
    }
}

#[test]
fn readme_multiple_ip_examples() {
    let config = parse_readme(json!({
        "type": "whereabouts",
        "ipRanges": [{"range": "192.168.10.1/24"}, {"range": "176.168.10.1/16"}]
    }))
    .expect("parses");
    let ids: Vec<String> = config.range_sets.iter().map(|s| s.id()).collect();
    assert_eq!(
        ids,
        [
            "whereaboutsexample|192.168.10.0/24[192.168.10.1-192.168.10.254]",
            "whereaboutsexample|176.168.0.0/16[176.168.0.1-176.168.255.254]"
        ]
    );

    let config = parse_readme(json!({
        "type": "whereabouts",
        "ipRanges": [{"range": "192.168.10.1/24"}, {"range": "176.168.10.1/16"}],
        "range": "abcd::1/64"
    }))
    .expect("parses");
    let subnets: Vec<IpNet> = config
        .range_sets
        .iter()
        .map(|s| s.ranges[0].subnet)
        .collect();
    assert_eq!(
        subnets,
        [
            net("abcd::/64"),
            net("192.168.10.0/24"),
            net("176.168.0.0/16")
        ],
        "top-level range is set 0"
    );
}

#[test]
fn readme_dual_stack_example() {
    let config = parse_readme(json!({
        "type": "whereabouts",
        "ipRanges": [{"range": "192.168.10.1/24"}, {"range": "abcd::1/64"}]
    }))
    .expect("parses");
    assert_eq!(first_address(&config, 0), Some(ip("192.168.10.1")));
    assert_eq!(first_address(&config, 1), Some(ip("abcd::1")));
    assert_eq!(
        config.range_sets[1].ranges[0].end,
        ip("abcd::ffff:ffff:ffff:ffff")
    );
}

#[test]
fn no_default_gateway_but_a_given_one_is_reserved() {
    let config = parse(json!({"range": "10.0.0.0/24"}));
    assert_eq!(config.range_sets[0].ranges[0].gateway, None);
    assert_eq!(first_address(&config, 0), Some(ip("10.0.0.1")));

    let config = parse(json!({"range": "10.0.0.0/24", "gateway": "10.0.0.1"}));
    assert_eq!(config.range_sets[0].ranges[0].gateway, Some(ip("10.0.0.1")));
    assert_eq!(first_address(&config, 0), Some(ip("10.0.0.2")));
}

#[test]
fn gateway_goes_to_the_ranges_that_hold_it() {
    let config = parse(json!({
        "ipRanges": [{"range": "10.0.0.0/24"}, {"range": "fd00::/64"}],
        "gateway": "10.0.0.254"
    }));
    assert_eq!(
        config.range_sets[0].ranges[0].gateway,
        Some(ip("10.0.0.254"))
    );
    assert_eq!(config.range_sets[1].ranges[0].gateway, None);

    let e = err(json!({"range": "fd00::/64", "gateway": "10.0.0.1"}));
    assert_eq!(
        e.to_string(),
        "invalid ipam.gateway \"10.0.0.1\": gateway 10.0.0.1 is IPv4 but subnet fd00::/64 is IPv6"
    );
    // Of a family no range has: refused. Outside every range of its family: reported.
    let e = err(
        json!({"ipRanges": [{"range": "fd00::/64"}, {"range": "fd01::/64"}],
                       "gateway": "10.2.0.1"}),
    );
    assert_eq!(e.field, "gateway");
    assert_eq!(
        e.reason,
        "not inside any configured range (fd00::/64, fd01::/64)"
    );
    let config = parse(json!({
        "ipRanges": [{"range": "10.0.0.0/24"}, {"range": "10.1.0.0/24"}, {"range": "fd00::/64"}],
        "gateway": "10.2.0.1"
    }));
    assert_eq!(config.unreserved_gateway, Some(ip("10.2.0.1")));
    assert!(
        config
            .range_sets
            .iter()
            .all(|s| s.ranges[0].gateway.is_none())
    );
    assert!(
        config.warnings[0].contains("lies outside 10.0.0.0/24, 10.1.0.0/24:"),
        "{:?}",
        config.warnings
    );
    let e = err(json!({"range": "10.0.0.0/24", "gateway": "10.0.0.255"}));
    assert_eq!(e.field, "gateway");
    assert!(e.reason.contains("broadcast address"), "{e}");
}

#[test]
fn range_start_and_end_are_validated_not_ignored() {
    let config = parse(
        json!({"range": "10.0.0.0/24", "range_start": "10.0.0.50", "range_end": "10.0.0.60"}),
    );
    assert_eq!(
        config.range_sets[0].id(),
        "net1|10.0.0.0/24[10.0.0.50-10.0.0.60]"
    );

    let cases = [
        (
            json!({"range": "10.0.0.0/24", "range_start": "10.0.1.5"}),
            "range_start",
            "10.0.1.5",
            "outside subnet",
        ),
        (
            json!({"range": "10.0.0.0/24", "range_end": "10.0.1.5"}),
            "range_end",
            "10.0.1.5",
            "outside subnet",
        ),
        (
            json!({"range": "10.0.0.0/24", "range_start": "10.0.0.9", "range_end": "10.0.0.8"}),
            "range_start",
            "10.0.0.9",
            "after range end",
        ),
        (
            json!({"range": "10.0.0.0/24", "range_start": "fd00::1"}),
            "range_start",
            "fd00::1",
            "IPv6 but subnet",
        ),
        (
            json!({"range": "10.0.0.0/24", "range_start": "10.0.0.5/24"}),
            "range_start",
            "10.0.0.5/24",
            "not an IP address",
        ),
        (
            json!({"range": "10.0.0.0/24", "range_end": true}),
            "range_end",
            "true",
            "expected a string",
        ),
        (
            json!({"ipRanges": [{"range": "10.0.0.0/24"}, {"range": "10.1.0.0/24", "range_start": "10.2.0.1"}]}),
            "ipRanges[1].range_start",
            "10.2.0.1",
            "outside subnet",
        ),
    ];
    for (ipam, field, value, reason) in cases {
        let e = err(ipam);
        assert_eq!((e.field.as_str(), e.value.as_str()), (field, value), "{e}");
        assert!(e.reason.contains(reason), "{e}");
    }
}

#[test]
fn range_strings_are_checked() {
    let cases = [
        (json!({"range": "10.0.0.0"}), "range", "not a valid range"),
        (
            json!({"range": "10.0.0.0/33"}),
            "range",
            "not a valid range",
        ),
        (json!({"range": 24}), "range", "expected a string"),
        (json!({"range": "10.0.0.5-/24"}), "range", "not end/prefix"),
        (
            json!({"range": "x-10.0.0.9/24"}),
            "range",
            "before '-' is not an IP address",
        ),
        (
            json!({"range": "10.0.0.5-fd00::9/24"}),
            "range",
            "different IP families",
        ),
        (
            json!({"range": "10.0.0.5-10.0.1.9/24"}),
            "range",
            "range end 10.0.1.9 is outside subnet 10.0.0.0/24",
        ),
        (
            json!({"range": "10.0.0.9-10.0.0.5/24"}),
            "range",
            "after range end",
        ),
        (json!({"range": "10.0.0.0/31"}), "range", "too small"),
        (
            json!({"ipRanges": [{"range": "10.0.0.0/24"}, {"range": "10.0.0.0/24"}, {"range": "nope"}]}),
            "ipRanges[2].range",
            "not a valid range",
        ),
        (
            json!({"ipRanges": [{"range_start": "10.0.0.5"}]}),
            "ipRanges[0].range",
            "needs a range",
        ),
        (
            json!({"ipRanges": {"range": "10.0.0.0/24"}}),
            "ipRanges",
            "expected a list",
        ),
        (
            json!({"ipRanges": ["10.0.0.0/24"]}),
            "ipRanges[0]",
            "expected an object",
        ),
    ];
    for (ipam, field, reason) in cases {
        let e = err(ipam.clone());
        assert_eq!(e.field, field, "{ipam}: {e}");
        assert!(e.reason.contains(reason), "{ipam}: {e}");
    }
}

#[test]
fn dash_form_conflicting_with_range_start_is_refused() {
    let e = err(json!({"range": "10.0.0.5-10.0.0.9/24", "range_start": "10.0.0.6"}));
    assert_eq!(
        (e.field.as_str(), e.value.as_str()),
        ("range_start", "10.0.0.6")
    );
    // Repeating the same value is harmless.
    let config = parse(json!({"range": "10.0.0.5-10.0.0.9/24", "range_end": "10.0.0.9"}));
    assert_eq!(config.range_sets[0].capacity(), 5);
}

#[test]
fn exclusions_accept_bare_addresses_of_the_right_family() {
    let config = parse(json!({"range": "fd00::/120", "exclude": ["fd00::10", "fd00::20/124"]}));
    assert_eq!(
        config.range_sets[0].ranges[0].exclude,
        vec![net("fd00::10/128"), net("fd00::20/124")]
    );
    assert_eq!(config.range_sets[0].capacity(), 255 - 1 - 16);

    let e = err(json!({"range": "10.0.0.0/24", "exclude": ["10.0.0.5", "fd00::/64"]}));
    assert_eq!(
        (e.field.as_str(), e.value.as_str()),
        ("exclude[1]", "fd00::/64")
    );
    let e = err(json!({"range": "10.0.0.0/24", "exclude": "10.0.0.5"}));
    assert_eq!(e.field, "exclude");
}

#[test]
fn top_level_exclude_applies_to_the_top_level_range_only() {
    let config = parse(json!({
        "range": "10.0.0.0/24",
        "exclude": ["10.1.0.0/28"],
        "ipRanges": [{"range": "10.1.0.0/24", "exclude": ["10.1.0.128/25"]}]
    }));
    assert_eq!(config.range_sets[0].capacity(), 254);
    assert_eq!(config.range_sets[1].capacity(), 127);
    assert_eq!(first_address(&config, 1), Some(ip("10.1.0.1")));
    assert_eq!(
        config.warnings,
        vec!["ipam.exclude[0] 10.1.0.0/28 lies outside subnet 10.0.0.0/24 and has no effect"]
    );
}

#[test]
fn range_keys_without_a_top_level_range_are_refused() {
    for key in ["range_start", "range_end", "exclude"] {
        let value = if key == "exclude" {
            json!(["10.0.0.5"])
        } else {
            json!("10.0.0.5")
        };
        let mut ipam = json!({"ipRanges": [{"range": "10.0.0.0/24"}]});
        ipam[key] = value;
        let e = err(ipam);
        assert_eq!(e.field, key);
        assert!(e.reason.contains("only applies to ipam.range"), "{e}");
    }
    let e = err(json!({"range": "10.0.0.0/24", "rangeStart": "10.0.0.5"}));
    assert_eq!(e.field, "rangeStart");
}

#[test]
fn overlapping_ip_ranges_are_refused() {
    let e = err(json!({"range": "10.0.0.0/16", "ipRanges": [{"range": "10.0.5.0/24"}]}));
    assert_eq!(e.field, "ipRanges[0]");
    assert!(
        e.reason.starts_with("overlaps ipam.range (10.0.0.0/16"),
        "{e}"
    );
}

#[test]
fn network_name_overrides_the_netconf_name() {
    assert_eq!(
        parse(json!({"range": "10.0.0.0/24", "network_name": "blue"})).network,
        "blue"
    );
    assert_eq!(
        parse(json!({"range": "10.0.0.0/24", "network_name": ""})).network,
        WHEREABOUTS_SHARED_NETWORK,
        "an empty network_name is none"
    );
    let e = parse_pool_config("", &json!({"range": "10.0.0.0/24"}), None).expect_err("unnamed");
    assert_eq!(e.field, "network_name");
    assert_eq!(
        err(json!({"range": "10.0.0.0/24", "network_name": 7})).field,
        "network_name"
    );
}

#[test]
fn enable_overlapping_ranges_defaults_to_true() {
    assert!(parse(json!({"range": "10.0.0.0/24"})).overlapping_ranges);
    assert!(
        !parse(json!({"range": "10.0.0.0/24", "enable_overlapping_ranges": false}))
            .overlapping_ranges
    );
    let e = err(json!({"range": "10.0.0.0/24", "enable_overlapping_ranges": "no"}));
    assert_eq!(
        (e.field.as_str(), e.reason.as_str()),
        ("enable_overlapping_ranges", "expected true or false")
    );
}

#[test]
fn static_plugin_fields_pass_through() {
    let config = parse(json!({
        "range": "10.0.0.0/24",
        "routes": [{"dst": "0.0.0.0/0", "gw": "10.0.0.1"}, {"dst": "fd00::/8"}],
        "dns": {"nameservers": ["10.0.0.53"], "domain": "example.com", "search": ["example.com"]},
        "addresses": [
            {"address": "10.10.0.1/24", "gateway": "10.10.0.254"},
            {"address": "fd10::5/64"},
            {"address": "10.0.0.9/24"}
        ]
    }));
    assert_eq!(
        config.routes,
        vec![
            Route {
                dst: net("0.0.0.0/0"),
                gw: Some(ip("10.0.0.1"))
            },
            Route {
                dst: net("fd00::/8"),
                gw: None
            },
        ]
    );
    assert_eq!(
        config.dns,
        Some(
            json!({"nameservers": ["10.0.0.53"], "domain": "example.com", "search": ["example.com"]})
        )
    );
    assert_eq!(
        config.addresses,
        vec![
            StaticAddress {
                address: net("10.10.0.1/24"),
                gateway: Some(ip("10.10.0.254"))
            },
            StaticAddress {
                address: net("fd10::5/64"),
                gateway: None
            },
            StaticAddress {
                address: net("10.0.0.9/24"),
                gateway: None
            },
        ]
    );
    assert_eq!(
        serde_json::to_value(&config.addresses[0]).expect("serialises"),
        json!({"address": "10.10.0.1/24", "gateway": "10.10.0.254"})
    );
    assert_eq!(
        config.warnings,
        vec![
            "ipam.addresses[2].address 10.0.0.9/24 lies inside a dynamic range and may also be \
             handed out dynamically; exclude it"
        ]
    );
    let e = err(json!({"range": "10.0.0.0/24", "addresses": [{"address": "10.10.0.1"}]}));
    assert_eq!(e.field, "addresses[0].address");
    let e = err(
        json!({"range": "10.0.0.0/24", "addresses": [{"address": "10.10.0.1/24", "gateway": "fd00::1"}]}),
    );
    assert_eq!(e.field, "addresses[0].gateway");
}

#[test]
fn legacy_whereabouts_keys_are_accepted_with_a_warning_and_no_secrets() {
    let config = parse(json!({
        "type": "whereabouts",
        "range": "10.0.0.0/24",
        "kubernetes": {"kubeconfig": "/etc/cni/net.d/whereabouts.d/whereabouts.kubeconfig"},
        "datastore": "kubernetes",
        "etcd_host": "127.0.0.1:2379",
        "etcd_password": "s3cret-value",
        "configuration_path": "/etc/whereabouts.conf",
        "log_file": "/tmp/whereabouts.log",
        "log_level": "debug",
        "leader_lease_duration": 1500,
        "node_slice_size": "/22",
        "store": {"type": "sqlite", "path": "/tmp/x.db"},
        "ipRanges": [{"range": "10.1.0.0/24", "omit_ranges": []}]
    }));
    assert_eq!(config.range_sets.len(), 2);
    assert_eq!(config.warnings.len(), 7, "{:#?}", config.warnings);
    for key in ["kubernetes", "datastore", "etcd_host", "etcd_password"] {
        assert!(
            config.warnings.contains(&format!(
                "ipam.{key} is ignored: ipam.store is set, and it wins over whereabouts' \
                 datastore keys"
            )),
            "{key}: {:#?}",
            config.warnings
        );
    }
    for key in ["leader_lease_duration", "node_slice_size"] {
        assert!(
            config
                .warnings
                .iter()
                .any(|w| w.starts_with(&format!("ipam.{key} is ignored: "))),
            "{key}: {:#?}",
            config.warnings
        );
    }
    assert!(
        config
            .warnings
            .contains(&"ipam.ipRanges[0].omit_ranges is not a recognised key; ignored".to_owned())
    );
    assert!(config.warnings.iter().all(|w| !w.contains("s3cret")));
}

#[test]
fn datastore_keys_without_a_store_pick_the_store_and_are_not_called_ignored() {
    // Which store they name is the store crate's business (plexus_store::whereabouts).
    let config = parse(json!({
        "range": "10.0.0.0/24", "datastore": "etcd", "etcd_host": "10.0.0.1:2379",
        "etcd_username": "u", "etcd_password": "p", "configuration_path": "/etc/w.conf"
    }));
    assert!(config.warnings.is_empty(), "{:#?}", config.warnings);
}

/// whereabouts keeps an address unique across every range by default: plexus keeps the
/// allocations of all such configurations in one network, each configuration's range sets
/// carrying its name (so its GC collects its own).
#[test]
fn overlapping_range_protection_shares_one_network() {
    let a = parse_pool_config("nad-a", &json!({"range": "10.44.0.0/24"}), None).unwrap();
    let b = parse_pool_config("nad-b", &json!({"range": "10.44.0.0/25"}), None).unwrap();
    assert_eq!(a.network, WHEREABOUTS_SHARED_NETWORK);
    assert_eq!(b.network, WHEREABOUTS_SHARED_NETWORK);
    assert_eq!(a.legacy_network.as_deref(), Some("nad-a"));
    assert_eq!(a.range_sets[0].shared_by.as_deref(), Some("nad-a"));
    assert!(
        a.range_sets[0].id().starts_with("nad-a|10.44.0.0/24["),
        "{}",
        a.range_sets[0].id()
    );
    // Same ranges, different configurations: different range set ids.
    let a2 = parse_pool_config("nad-b", &json!({"range": "10.44.0.0/24"}), None).unwrap();
    assert_ne!(a.range_sets[0].id(), a2.range_sets[0].id());

    // network_name scopes the sharing to configurations with that name.
    let named = parse(json!({"range": "10.44.0.0/24", "network_name": "blue"}));
    assert_eq!(named.network, "blue");
    assert_eq!(named.legacy_network, None);
    assert_eq!(named.range_sets[0].shared_by.as_deref(), Some("net1"));

    // Protection off: the configuration's own network, as before.
    let own = parse(json!({"range": "10.44.0.0/24", "enable_overlapping_ranges": false}));
    assert_eq!(own.network, "net1");
    assert_eq!(own.legacy_network, None);
    assert_eq!(own.range_sets[0].shared_by, None);

    // host-local syntax is not whereabouts': its own network.
    let host_local = parse_pool_config(
        "hl",
        &json!({"ranges": [[{"subnet": "10.44.0.0/24"}]]}),
        None,
    )
    .unwrap();
    assert_eq!(host_local.network, "hl");
    assert_eq!(host_local.range_sets[0].shared_by, None);
}

#[test]
fn del_finds_the_same_networks_leniently() {
    let cases = [
        (
            json!({"range": "10.44.0.0/24"}),
            WHEREABOUTS_SHARED_NETWORK,
            Some("n"),
        ),
        // A range that no longer parses still releases from the shared network.
        (
            json!({"range": "nonsense"}),
            WHEREABOUTS_SHARED_NETWORK,
            Some("n"),
        ),
        (
            json!({"range": "10.44.0.0/24", "enable_overlapping_ranges": "yes"}),
            WHEREABOUTS_SHARED_NETWORK,
            Some("n"),
        ),
        (
            json!({"range": "10.44.0.0/24", "network_name": "blue"}),
            "blue",
            None,
        ),
        (
            json!({"range": "10.44.0.0/24", "enable_overlapping_ranges": false}),
            "n",
            None,
        ),
        (json!({"ranges": [[{"subnet": "10.44.0.0/24"}]]}), "n", None),
    ];
    for (ipam, network, legacy) in cases {
        let (got, got_legacy) = allocation_networks("n", &ipam).unwrap();
        assert_eq!(got, network, "{ipam}");
        assert_eq!(got_legacy.as_deref(), legacy, "{ipam}");
        if let Ok(pool) = parse_pool_config("n", &ipam, None) {
            assert_eq!(
                (pool.network, pool.legacy_network),
                (got, got_legacy),
                "{ipam}"
            );
        }
    }
}
