//! host-local syntax: the documented examples parse as host-local would read them, and every
//! invalid input is refused with the field path and value.

use std::convert::Infallible;
use std::net::IpAddr;

use ipnet::IpNet;
use plexus_ipam_core::{ConfigError, PoolConfig, Range, Route, find_free, parse_pool_config};
use serde_json::{Value, json};

fn ip(s: &str) -> IpAddr {
    s.parse().expect("test address")
}

fn net(s: &str) -> IpNet {
    s.parse().expect("test network")
}

/// Parse the `ipam` of a whole netconf, as the plugin does.
fn parse_netconf(netconf: &Value) -> Result<PoolConfig, ConfigError> {
    let name = netconf["name"].as_str().unwrap_or_default();
    parse_pool_config(name, &netconf["ipam"], None)
}

fn parse(ipam: Value) -> Result<PoolConfig, ConfigError> {
    parse_pool_config("net1", &ipam, None)
}

fn err(ipam: Value) -> ConfigError {
    parse(ipam).expect_err("config must be refused")
}

fn range(subnet: &str, start: &str, end: &str, gw: &str) -> Range {
    Range::new(
        net(subnet),
        Some(ip(start)),
        Some(ip(end)),
        Some(ip(gw)),
        vec![],
    )
    .expect("valid")
}

/// First address the pool would hand out, with nothing held.
fn first_address(config: &PoolConfig, set: usize) -> Option<IpAddr> {
    find_free(&config.range_sets[set], None, |_, _| {
        Ok::<_, Infallible>(Vec::new())
    })
    .expect("infallible")
}

#[test]
fn readme_multi_range_example() {
    let netconf = json!({
        "cniVersion": "1.0.0",
        "name": "mynet",
        "ipam": {
            "type": "host-local",
            "ranges": [
                [
                    {
                        "subnet": "10.10.0.0/16",
                        "rangeStart": "10.10.1.20",
                        "rangeEnd": "10.10.3.50",
                        "gateway": "10.10.0.254"
                    },
                    { "subnet": "172.16.5.0/24" }
                ],
                [
                    {
                        "subnet": "3ffe:ffff:0:01ff::/64",
                        "rangeStart": "3ffe:ffff:0:01ff::0010",
                        "rangeEnd": "3ffe:ffff:0:01ff::0020"
                    }
                ]
            ],
            "routes": [
                { "dst": "0.0.0.0/0" },
                { "dst": "192.168.0.0/16", "gw": "10.10.5.1" },
                { "dst": "3ffe:ffff:0:01ff::1/64" }
            ],
            "dataDir": "/run/my-orchestrator/container-ipam-state"
        }
    });
    let config = parse_netconf(&netconf).expect("README example parses");
    assert_eq!(config.network, "mynet");
    assert_eq!(config.range_sets.len(), 2);
    assert_eq!(
        config.range_sets[0].ranges,
        vec![
            range("10.10.0.0/16", "10.10.1.20", "10.10.3.50", "10.10.0.254"),
            range("172.16.5.0/24", "172.16.5.1", "172.16.5.254", "172.16.5.1"),
        ]
    );
    assert_eq!(
        config.range_sets[1].ranges,
        vec![range(
            "3ffe:ffff:0:1ff::/64",
            "3ffe:ffff:0:1ff::10",
            "3ffe:ffff:0:1ff::20",
            "3ffe:ffff:0:1ff::1"
        )]
    );
    assert_eq!(
        config.routes,
        vec![
            Route {
                dst: net("0.0.0.0/0"),
                gw: None
            },
            Route {
                dst: net("192.168.0.0/16"),
                gw: Some(ip("10.10.5.1"))
            },
            Route {
                dst: net("3ffe:ffff:0:1ff::/64"),
                gw: None
            },
        ]
    );
    assert_eq!(config.dns, None);
    assert_eq!(config.store, None);
    assert!(config.overlapping_ranges);
    assert_eq!(
        config.warnings,
        vec![
            "ipam.dataDir is ignored: plexus keeps allocations in its store, not in files",
            "ipam.routes[2].dst 3ffe:ffff:0:1ff::1/64 has host bits set; using 3ffe:ffff:0:1ff::/64",
        ]
    );
    assert_eq!(first_address(&config, 0), Some(ip("10.10.1.20")));
    assert_eq!(first_address(&config, 1), Some(ip("3ffe:ffff:0:1ff::10")));
}

#[test]
fn readme_command_line_example_hands_out_dot_two() {
    let netconf = json!({
        "cniVersion": "0.3.1", "name": "examplenet",
        "ipam": {
            "type": "host-local",
            "ranges": [ [{"subnet": "203.0.113.0/24"}], [{"subnet": "2001:db8:1::/64"}]],
            "dataDir": "/tmp/cni-example"
        }
    });
    let config = parse_netconf(&netconf).expect("parses");
    // host-local answered 203.0.113.2 with gateway .1, and 2001:db8:1::2 with gateway ::1.
    assert_eq!(first_address(&config, 0), Some(ip("203.0.113.2")));
    assert_eq!(first_address(&config, 1), Some(ip("2001:db8:1::2")));
    assert_eq!(
        config.range_sets[0].ranges[0].gateway,
        Some(ip("203.0.113.1"))
    );
    assert_eq!(
        config.range_sets[1].ranges[0].gateway,
        Some(ip("2001:db8:1::1"))
    );
    assert_eq!(
        config.range_sets[1].ranges[0].end,
        ip("2001:db8:1::ffff:ffff:ffff:ffff")
    );
}

#[test]
fn deprecated_top_level_range_is_prepended() {
    let config = parse(json!({
        "type": "host-local",
        "subnet": "3ffe:ffff:0:01ff::/64",
        "rangeStart": "3ffe:ffff:0:01ff::0010",
        "rangeEnd": "3ffe:ffff:0:01ff::0020",
        "ranges": [[{"subnet": "10.0.0.0/24"}]],
        "routes": [{ "dst": "3ffe:ffff:0:01ff::/64" }],
        "resolvConf": "/etc/resolv.conf"
    }))
    .expect("parses");
    assert_eq!(config.range_sets.len(), 2);
    assert_eq!(
        config.range_sets[0].ranges[0].start,
        ip("3ffe:ffff:0:1ff::10")
    );
    assert_eq!(config.range_sets[1].ranges[0].subnet, net("10.0.0.0/24"));
    assert_eq!(
        config.warnings,
        vec![
            "ipam.resolvConf is ignored: plexus-ipam does not read resolv.conf; set ipam.dns instead"
        ]
    );
}

#[test]
fn exclude_inside_a_range_object_is_honoured() {
    let config = parse(json!({
        "ranges": [[{"subnet": "10.0.0.0/29", "exclude": ["10.0.0.2", "10.0.0.4/31"]}]]
    }))
    .expect("parses");
    let r = &config.range_sets[0].ranges[0];
    assert_eq!(r.exclude, vec![net("10.0.0.2/32"), net("10.0.0.4/31")]);
    // .1 is the default gateway; .2, .4, .5 are excluded.
    assert_eq!(r.capacity(), 2);
    assert_eq!(first_address(&config, 0), Some(ip("10.0.0.3")));
}

#[test]
fn runtime_ip_ranges_are_prepended() {
    let runtime = json!([[{"subnet": "192.168.0.0/24", "rangeStart": "192.168.0.100"}]]);
    let config = parse_pool_config(
        "net1",
        &json!({"ranges": [[{"subnet": "10.0.0.0/24"}]]}),
        Some(&runtime),
    )
    .expect("parses");
    assert_eq!(config.range_sets.len(), 2);
    assert_eq!(config.range_sets[0].ranges[0].start, ip("192.168.0.100"));
    assert_eq!(
        config.range_sets[0].ranges[0].gateway,
        Some(ip("192.168.0.1"))
    );
    assert_eq!(config.range_sets[1].ranges[0].subnet, net("10.0.0.0/24"));

    let only_runtime = parse_pool_config("net1", &json!({"type": "plexus-ipam"}), Some(&runtime))
        .expect("runtime ranges alone suffice");
    assert_eq!(only_runtime.range_sets.len(), 1);
}

#[test]
fn runtime_errors_name_the_runtime_path() {
    let runtime = json!([[{"subnet": "192.168.0.0/24", "rangeEnd": "192.168.9.9"}]]);
    let e = parse_pool_config("n", &json!({}), Some(&runtime)).expect_err("bad runtime range");
    assert_eq!(e.field, "runtimeConfig.ipRanges[0][0].rangeEnd");
    assert_eq!(
        e.to_string(),
        "invalid runtimeConfig.ipRanges[0][0].rangeEnd \"192.168.9.9\": range end 192.168.9.9 \
         is outside subnet 192.168.0.0/24"
    );
    let runtime = json!([[{"subnet": "10.0.0.0/24"}]]);
    let e = parse_pool_config(
        "n",
        &json!({"ranges": [[{"subnet": "10.0.0.0/25"}]]}),
        Some(&runtime),
    )
    .expect_err("overlap with runtime range");
    assert_eq!(e.field, "ranges[0][0]");
    assert!(e.reason.contains("runtimeConfig.ipRanges[0][0]"), "{e}");
}

#[test]
fn subnet_with_host_bits_is_refused() {
    let e = err(json!({"ranges": [[{"subnet": "10.0.0.1/24"}]]}));
    assert_eq!(
        (e.field.as_str(), e.value.as_str()),
        ("ranges[0][0].subnet", "10.0.0.1/24")
    );
    assert_eq!(
        e.to_string(),
        "invalid ipam.ranges[0][0].subnet \"10.0.0.1/24\": subnet 10.0.0.1/24 has host bits \
         set; the network is 10.0.0.0/24"
    );
}

#[test]
fn too_small_subnets_are_refused() {
    for subnet in ["10.0.0.0/31", "10.0.0.0/32", "fd00::/127", "fd00::/128"] {
        let e = err(json!({"ranges": [[{"subnet": subnet}]]}));
        assert_eq!(e.field, "ranges[0][0].subnet", "{subnet}");
        assert!(e.reason.contains("too small"), "{e}");
    }
    assert!(parse(json!({"ranges": [[{"subnet": "10.0.0.0/30"}]]})).is_ok());
}

#[test]
fn overlaps_within_and_between_sets_are_refused() {
    let e = err(json!({"ranges": [[{"subnet": "10.0.0.0/24"}, {"subnet": "10.0.0.128/25"}]]}));
    assert_eq!(
        (e.field.as_str(), e.value.as_str()),
        ("ranges[0][1]", "10.0.0.128/25[10.0.0.129-10.0.0.254]")
    );
    let e = err(json!({"ranges": [[{"subnet": "10.0.0.0/24"}], [{"subnet": "10.0.0.0/16"}]]}));
    assert_eq!(e.field, "ranges[1][0]");
    assert_eq!(
        e.reason,
        "overlaps ipam.ranges[0][0] (10.0.0.0/24[10.0.0.1-10.0.0.254]); range sets must not share addresses"
    );
    // Disjoint start..end inside one subnet is fine, as in host-local.
    assert!(
        parse(json!({"ranges": [[
            {"subnet": "10.0.0.0/24", "rangeStart": "10.0.0.10", "rangeEnd": "10.0.0.19"},
            {"subnet": "10.0.0.0/24", "rangeStart": "10.0.0.20", "rangeEnd": "10.0.0.29"}
        ]]}))
        .is_ok()
    );
}

/// Regression (found by fuzzing): overlap checks used to compare every pair of ranges, so a
/// 1 MiB config of ~20,000 range sets took seconds. Pools are now capped (16 sets, 64 ranges
/// per set, docs/security.md): a huge config is refused quickly with the cap named, and
/// overlaps are still named in input order.
#[test]
fn thousands_of_range_sets_are_refused_by_their_count_and_the_first_overlap_is_named() {
    let subnet = |i: u32| format!("10.{}.{}.0/24", i >> 8, i & 255);
    let sets: Vec<Value> = (0..20_000)
        .map(|i| json!([{"subnet": subnet(i)}]))
        .collect();
    let ranges: Vec<Value> = (0..20_000).map(|i| json!({"subnet": subnet(i)})).collect();
    // The count caps refuse these, naming the cap. How long 20,000 entries take to parse
    // is a benchmark matter: a wall clock in a test only measures how loaded the machine is.
    let e = err(json!({"ranges": sets}));
    assert!(e.reason.contains("at most 16 range sets"), "{e}");
    let e = err(json!({"ranges": [ranges]}));
    assert!(e.reason.contains("at most 64 ranges"), "{e}");
    // At the caps, disjoint sets and ranges parse.
    let sets: Vec<Value> = (0..16).map(|i| json!([{"subnet": subnet(i)}])).collect();
    assert_eq!(
        parse(json!({"ranges": sets}))
            .expect("16 sets")
            .range_sets
            .len(),
        16
    );
    let ranges: Vec<Value> = (0..64).map(|i| json!({"subnet": subnet(i)})).collect();
    let config = parse(json!({"ranges": [ranges]})).expect("64 ranges");
    assert_eq!(config.range_sets[0].ranges.len(), 64);

    // A late set overlapping several earlier ones names the earliest of them.
    let mut sets: Vec<Value> = (0..15).map(|i| json!([{"subnet": subnet(i)}])).collect();
    sets.push(json!([{"subnet": "10.0.0.0/16"}]));
    let e = err(json!({"ranges": sets}));
    assert_eq!(e.field, "ranges[15][0]");
    assert!(e.reason.starts_with("overlaps ipam.ranges[0][0] "), "{e}");
    // Within one set: the earliest range the new one overlaps.
    let e = err(json!({"ranges": [[
        {"subnet": "10.0.5.0/24"}, {"subnet": "10.0.1.0/24"}, {"subnet": "fd00::/64"}
    ]]}));
    assert_eq!(e.field, "ranges[0][2]");
    let e = err(json!({"ranges": [[
        {"subnet": "10.0.5.0/24"}, {"subnet": "10.0.1.0/24"}, {"subnet": "10.0.0.0/16"}
    ]]}));
    assert_eq!(e.field, "ranges[0][2]");
    assert!(e.reason.contains("overlaps range 10.0.5.0/24["), "{e}");
}

#[test]
fn mixed_families_in_one_set_are_refused() {
    let e = err(json!({"ranges": [[{"subnet": "10.0.0.0/24"}, {"subnet": "fd00::/64"}]]}));
    assert_eq!(e.field, "ranges[0][1]");
    assert!(
        e.reason
            .contains("IPv6 but the first range of its set is IPv4"),
        "{e}"
    );
}

#[test]
fn start_end_and_gateway_are_checked() {
    let cases = [
        (
            json!({"subnet": "10.0.0.0/24", "rangeStart": "10.0.1.1"}),
            "ranges[0][0].rangeStart",
            "10.0.1.1",
            "outside subnet",
        ),
        (
            json!({"subnet": "10.0.0.0/24", "rangeEnd": "10.0.0.300"}),
            "ranges[0][0].rangeEnd",
            "10.0.0.300",
            "not an IP address",
        ),
        (
            json!({"subnet": "10.0.0.0/24", "rangeStart": "10.0.0.9", "rangeEnd": "10.0.0.8"}),
            "ranges[0][0].rangeStart",
            "10.0.0.9",
            "after range end",
        ),
        (
            json!({"subnet": "10.0.0.0/24", "gateway": "10.0.1.1"}),
            "ranges[0][0].gateway",
            "10.0.1.1",
            "outside subnet",
        ),
        (
            json!({"subnet": "fd00::/64", "gateway": "10.0.0.1"}),
            "ranges[0][0].gateway",
            "10.0.0.1",
            "is IPv4 but subnet fd00::/64 is IPv6",
        ),
        (
            json!({"subnet": "10.0.0.0/24", "gateway": "10.0.0.0"}),
            "ranges[0][0].gateway",
            "10.0.0.0",
            "network address",
        ),
        (
            json!({"subnet": "10.0.0.0/24", "exclude": ["fd00::/64"]}),
            "ranges[0][0].exclude[0]",
            "fd00::/64",
            "IPv6 but subnet",
        ),
        (
            json!({"subnet": "10.0.0.0/24", "rangeStart": 5}),
            "ranges[0][0].rangeStart",
            "5",
            "expected a string",
        ),
        (
            json!({"subnet": "ten"}),
            "ranges[0][0].subnet",
            "ten",
            "not a CIDR",
        ),
        (
            json!({"rangeStart": "10.0.0.5"}),
            "ranges[0][0].subnet",
            "",
            "needs a subnet",
        ),
    ];
    for (obj, field, value, reason) in cases {
        let e = err(json!({"ranges": [[obj]]}));
        assert_eq!((e.field.as_str(), e.value.as_str()), (field, value), "{e}");
        assert!(e.reason.contains(reason), "{e}");
    }
    // A gateway outside start..end is fine: it is reserved, reported, and not in the way.
    let config = parse(json!({"ranges": [[{"subnet": "10.0.0.0/24", "rangeStart": "10.0.0.100", "gateway": "10.0.0.254"}]]}))
        .expect("parses");
    assert_eq!(config.range_sets[0].ranges[0].capacity(), 154);
}

#[test]
fn wrong_json_shapes_are_refused() {
    let cases = [
        (json!({"ranges": "10.0.0.0/24"}), "ranges"),
        (json!({"ranges": [{"subnet": "10.0.0.0/24"}]}), "ranges[0]"),
        (json!({"ranges": [["10.0.0.0/24"]]}), "ranges[0][0]"),
        (json!({"ranges": [[]]}), "ranges[0]"),
        (
            json!({"ranges": [[{"subnet": "10.0.0.0/24"}]], "routes": {"dst": "0.0.0.0/0"}}),
            "routes",
        ),
        (
            json!({"ranges": [[{"subnet": "10.0.0.0/24"}]], "routes": [{"gw": "10.0.0.1"}]}),
            "routes[0].dst",
        ),
        (
            json!({"ranges": [[{"subnet": "10.0.0.0/24"}]], "routes": [{"dst": "0.0.0.0/0", "gw": "fd00::1"}]}),
            "routes[0].gw",
        ),
        (
            json!({"ranges": [[{"subnet": "10.0.0.0/24"}]], "dns": ["10.0.0.53"]}),
            "dns",
        ),
        (
            json!({"ranges": [[{"subnet": "10.0.0.0/24"}]], "store": "sqlite"}),
            "store",
        ),
    ];
    for (ipam, field) in cases {
        assert_eq!(err(ipam.clone()).field, field, "{ipam}");
    }
    let e = parse_pool_config("n", &json!("ranges"), None).expect_err("not an object");
    assert_eq!(e.to_string(), "invalid ipam \"ranges\": expected an object");
}

#[test]
fn no_range_at_all_names_the_range_field() {
    let e = err(json!({"type": "host-local", "ranges": []}));
    assert_eq!((e.field.as_str(), e.value.as_str()), ("ranges", "[]"));
    let e = err(json!({"type": "plexus-ipam"}));
    assert_eq!(e.field, "range");
    assert!(
        e.to_string()
            .starts_with("invalid ipam.range \"\": no address range configured")
    );
}

#[test]
fn whereabouts_keys_cannot_mix_with_ranges() {
    let base = || json!({"ranges": [[{"subnet": "10.0.0.0/24"}]]});
    for (key, value) in [
        ("range", json!("10.1.0.0/24")),
        ("ipRanges", json!([{"range": "10.1.0.0/24"}])),
        ("range_start", json!("10.0.0.5")),
        ("exclude", json!(["10.0.0.5"])),
        ("gateway", json!("10.0.0.1")),
    ] {
        let mut ipam = base();
        ipam[key] = value;
        assert_eq!(err(ipam).field, key);
    }
}

#[test]
fn unknown_keys_warn_and_plexus_keys_do_not() {
    let config = parse(json!({
        "type": "plexus-ipam",
        "store": {"type": "sqlite", "path": "/var/lib/plexus/plexus.db"},
        "network": "blue", "node_name": "n1", "log_level": "debug", "log_file": "/tmp/x",
        "capabilities": {"ips": true},
        "ranges": [[{"subnet": "10.0.0.0/24", "colour": "red"}]],
        "routes": [{"dst": "0.0.0.0/0", "mtu": 1400}],
        "frobnicate": true
    }))
    .expect("parses");
    assert_eq!(
        config.warnings,
        vec![
            "ipam.frobnicate is not a recognised key; ignored",
            "ipam.ranges[0][0].colour is not a recognised key; ignored",
            "ipam.routes[0].mtu is not supported yet; ignored",
        ]
    );
    assert_eq!(
        config.store,
        Some(json!({"type": "sqlite", "path": "/var/lib/plexus/plexus.db"}))
    );
}

#[test]
fn null_and_empty_optional_fields_are_absent() {
    let config = parse(json!({
        "ranges": [[{"subnet": "10.0.0.0/24", "rangeStart": "", "gateway": null}]],
        "routes": null, "dns": null
    }))
    .expect("parses");
    let r = &config.range_sets[0].ranges[0];
    assert_eq!((r.start, r.gateway), (ip("10.0.0.1"), Some(ip("10.0.0.1"))));
    assert_eq!(first_address(&config, 0), Some(ip("10.0.0.2")));
}
