//! Property tests: validation and parsing never panic; serde and bitmaps round-trip; a
//! validated network always converts; defaults are idempotent.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::IpNet;
use plexus_model::bitmap::{AllocBitmap, address_at, index_of};
use plexus_model::{
    NetworkKind, NetworkObject, NetworkOptions, NetworkSpec, ObjectMeta, Operation, PlexusOptions,
    Rule, apply_defaults, parse_danm_interfaces, parse_npwg_networks, to_pool, validate,
};
use proptest::collection::{btree_map, vec};
use proptest::option;
use proptest::prelude::*;

/// IPv4 addresses clustered in 10.0.0.0/8 so that containment checks get exercised.
fn v4_addr() -> impl Strategy<Value = Ipv4Addr> {
    prop_oneof![
        (0u8..4, any::<u8>(), any::<u8>()).prop_map(|(b, c, d)| Ipv4Addr::new(10, b, c, d)),
        any::<u32>().prop_map(Ipv4Addr::from),
    ]
}

/// IPv6 addresses clustered in 2001:db8::/62.
fn v6_addr() -> impl Strategy<Value = Ipv6Addr> {
    prop_oneof![
        (0u16..4, any::<u16>(), any::<u16>())
            .prop_map(|(s, g, h)| Ipv6Addr::new(0x2001, 0xdb8, 0, s, 0, 0, g, h)),
        any::<u128>().prop_map(Ipv6Addr::from),
    ]
}

/// Text that is a plausible value or junk.
fn junk() -> impl Strategy<Value = String> {
    prop_oneof![Just(String::new()), "[a-z0-9./:_ -]{0,24}", any::<String>(),]
}

/// A CIDR string of either family (any prefix, host bits or not), or junk.
fn cidr_text() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => (v4_addr(), 0u8..=33).prop_map(|(a, p)| format!("{a}/{p}")),
        2 => (v6_addr(), 0u8..=129).prop_map(|(a, p)| format!("{a}/{p}")),
        1 => junk(),
    ]
}

/// An address string of either family, or junk.
fn addr_text() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => v4_addr().prop_map(|a| a.to_string()),
        2 => v6_addr().prop_map(|a| a.to_string()),
        1 => junk(),
    ]
}

/// Small integers, edge values and anything.
fn number() -> impl Strategy<Value = Option<i64>> {
    option::of(prop_oneof![
        -2i64..300,
        Just(4094),
        Just(4095),
        Just(16_777_214),
        Just(16_777_215),
        any::<i64>(),
    ])
}

fn options() -> impl Strategy<Value = NetworkOptions> {
    (
        (junk(), junk(), cidr_text(), addr_text(), addr_text()),
        (
            btree_map(cidr_text(), addr_text(), 0..3),
            cidr_text(),
            cidr_text(),
            addr_text(),
            addr_text(),
        ),
        (
            btree_map(cidr_text(), addr_text(), 0..3),
            junk(),
            number(),
            number(),
            number(),
        ),
    )
        .prop_map(
            |(
                (host_device, device_pool, cidr, start, end),
                (routes, net6, pool6_cidr, start6, end6),
                (routes6, container_prefix, rt_tables, vlan, vxlan),
            )| {
                let mut o = NetworkOptions {
                    host_device,
                    device_pool,
                    cidr,
                    routes,
                    net6,
                    routes6,
                    container_prefix,
                    rt_tables,
                    vlan,
                    vxlan,
                    ..NetworkOptions::default()
                };
                o.allocation_pool.start = start;
                o.allocation_pool.end = end;
                o.allocation_pool_v6.cidr = pool6_cidr;
                o.allocation_pool_v6.start = start6;
                o.allocation_pool_v6.end = end6;
                o
            },
        )
}

fn plexus() -> impl Strategy<Value = PlexusOptions> {
    (
        vec(cidr_text(), 0..3),
        vec(addr_text(), 0..3),
        number(),
        number(),
        any::<bool>(),
    )
        .prop_map(
            |(exclude, reserved, block_size, block_size6, duplicate_address_check)| PlexusOptions {
                exclude,
                reserved,
                block_size,
                block_size6,
                duplicate_address_check,
            },
        )
}

fn object() -> impl Strategy<Value = NetworkObject> {
    let kind = prop_oneof![
        Just(NetworkKind::DanmNet),
        Just(NetworkKind::ClusterNetwork),
        Just(NetworkKind::TenantNetwork),
    ];
    let api = prop_oneof![Just("danm.k8s.io/v1".to_owned()), junk()];
    let names = ("[a-z][a-z0-9-]{0,8}", option::of("[a-z]{1,6}"));
    let tenants = option::of(vec("[a-z-]{0,6}", 0..3));
    (
        api,
        kind,
        names,
        (
            junk(),
            prop_oneof![Just(String::new()), Just("sriov".to_owned()), junk()],
        ),
        tenants,
        options(),
        plexus(),
        (junk(), junk()),
    )
        .prop_map(
            |(
                api_version,
                kind,
                (name, namespace),
                (network_id, network_type),
                allowed_tenants,
                options,
                plexus,
                (alloc, alloc6),
            )| {
                let mut options = options;
                options.alloc = alloc;
                options.alloc6 = alloc6;
                NetworkObject {
                    api_version,
                    kind,
                    metadata: ObjectMeta {
                        name,
                        namespace,
                        ..ObjectMeta::default()
                    },
                    spec: NetworkSpec {
                        network_id,
                        network_type,
                        allowed_tenants,
                        options,
                        plexus,
                    },
                }
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Arbitrary specs never panic; a valid one always converts, with its pool inside its
    /// CIDR and every gateway kept out of dynamic allocation.
    #[test]
    fn validation_never_panics_and_valid_networks_convert(object in object()) {
        for op in [Operation::Create, Operation::Update] {
            match validate(&object, op) {
                Ok(valid) => {
                    let pool = to_pool(&valid);
                    prop_assert!(pool.is_ok(), "{:?}", pool);
                    let pool = pool.unwrap_or_else(|e| panic!("{e}"));
                    for family in pool.v4.iter().chain(pool.v6.iter()) {
                        let range = family.range();
                        prop_assert!(range.is_some());
                        let range = range.unwrap_or_else(|| panic!("no range"));
                        prop_assert_eq!(range.subnet, family.allocation_cidr);
                        prop_assert!(family.network.contains(&range.start));
                        prop_assert!(family.network.contains(&range.end));
                        for gw in &family.gateways {
                            prop_assert!(!range.is_allocatable(*gw));
                        }
                    }
                    prop_assert_eq!(pool.pool_config().is_ok(), !valid.is_l2());
                }
                Err(errors) => {
                    prop_assert!(!errors.violations.is_empty());
                    prop_assert!(!errors.to_string().is_empty());
                }
            }
        }
    }

    /// JSON and YAML round-trip every spec exactly.
    #[test]
    fn serde_round_trips(object in object()) {
        let json = serde_json::to_string(&object);
        prop_assert!(json.is_ok());
        let json = json.unwrap_or_default();
        let back: Result<NetworkObject, _> = serde_json::from_str(&json);
        prop_assert_eq!(back.ok(), Some(object.clone()));
        let yaml = serde_norway::to_string(&object);
        prop_assert!(yaml.is_ok());
        let back: Result<NetworkObject, _> = serde_norway::from_str(&yaml.unwrap_or_default());
        prop_assert_eq!(back.ok(), Some(object));
    }

    /// Filling DANM's defaults is idempotent and never changes whether a spec is valid.
    #[test]
    fn defaults_are_idempotent_and_keep_validity(object in object()) {
        let mut once = object.clone();
        apply_defaults(&mut once.spec);
        let mut twice = once.clone();
        apply_defaults(&mut twice.spec);
        prop_assert_eq!(&once, &twice);
        let before = validate(&object, Operation::Create);
        let after = validate(&once, Operation::Create);
        prop_assert_eq!(before.is_ok(), after.is_ok());
        if let (Ok(before), Ok(after)) = (before, after) {
            prop_assert_eq!(before.v4, after.v4);
            prop_assert_eq!(before.v6, after.v6);
        }
    }

    /// Encoding then decoding gives the same bits; the set-bit walk matches a naive scan.
    #[test]
    fn bitmaps_round_trip(prefix in 16u8..=30, indices in vec(any::<u32>(), 0..64)) {
        let cidr: IpNet = match format!("10.64.0.0/{prefix}").parse() {
            Ok(net) => net,
            Err(_) => return Ok(()),
        };
        let size = 1u32 << (32 - prefix);
        let mut bitmap = AllocBitmap::empty_for(&cidr).unwrap_or_else(|e| panic!("{e}"));
        let mut expected: Vec<u32> = indices.iter().map(|i| i % size).collect();
        for i in &expected {
            prop_assert!(bitmap.set(*i));
        }
        expected.sort_unstable();
        expected.dedup();
        let decoded = AllocBitmap::decode_for(&bitmap.encode(), &cidr);
        prop_assert_eq!(decoded.as_ref().ok(), Some(&bitmap));
        let walked: Vec<u32> = bitmap.set_bits().collect();
        prop_assert_eq!(&walked, &expected);
        prop_assert_eq!(bitmap.count_set(), expected.len() as u64);
        let addrs: Vec<IpAddr> = bitmap.addresses(&cidr).collect();
        prop_assert_eq!(addrs.len(), expected.len());
        for (addr, index) in addrs.iter().zip(&expected) {
            prop_assert_eq!(index_of(&cidr, *addr), Some(*index));
            prop_assert_eq!(address_at(&cidr, *index), Some(*addr));
        }
    }

    /// Decoding arbitrary text never panics.
    #[test]
    fn bitmap_decoding_never_panics(text in any::<String>(), b64 in "[A-Za-z0-9+/=\n]{0,64}") {
        let _ = AllocBitmap::decode(&text);
        if let Ok(bitmap) = AllocBitmap::decode(&b64) {
            prop_assert_eq!(bitmap.set_bits().count() as u64, bitmap.count_set());
        }
    }

    /// Annotation parsers never panic on arbitrary text.
    #[test]
    fn annotation_parsing_never_panics(text in any::<String>()) {
        let _ = parse_danm_interfaces(&text);
        let _ = parse_npwg_networks(&text);
    }

    /// …nor on JSON-shaped input with plausible keys and values.
    #[test]
    fn annotation_parsing_never_panics_on_json_lists(
        entries in vec(btree_map(
            prop_oneof![
                Just("network".to_owned()), Just("clusterNetwork".to_owned()),
                Just("tenantNetwork".to_owned()), Just("ip".to_owned()), Just("ip6".to_owned()),
                Just("name".to_owned()), Just("namespace".to_owned()), Just("interface".to_owned()),
                Just("ips".to_owned()), Just("mac".to_owned()), Just("default-route".to_owned()),
                Just("proutes".to_owned()), "[a-z.-]{1,8}",
            ],
            prop_oneof![
                addr_text().prop_map(serde_json::Value::from),
                cidr_text().prop_map(serde_json::Value::from),
                vec(addr_text(), 0..3).prop_map(serde_json::Value::from),
                btree_map(cidr_text(), addr_text(), 0..2)
                    .prop_map(|m| serde_json::Value::from(serde_json::Map::from_iter(
                        m.into_iter().map(|(k, v)| (k, serde_json::Value::from(v)))))),
                any::<i64>().prop_map(serde_json::Value::from),
            ],
            0..5,
        ), 0..6),
    ) {
        let list: Vec<serde_json::Value> = entries
            .into_iter()
            .map(|e: BTreeMap<String, serde_json::Value>| {
                serde_json::Value::Object(e.into_iter().collect())
            })
            .collect();
        let text = serde_json::Value::from(list).to_string();
        if let Ok(requests) = parse_danm_interfaces(&text) {
            prop_assert!(requests.iter().enumerate().all(|(i, r)| r.index == i));
        }
        let _ = parse_npwg_networks(&text);
    }
}

/// A network that is valid by construction: an IPv4 /8../30 and an IPv6 network with pools,
/// route gateways, exclusions and reserved addresses all inside.
fn valid_object() -> impl Strategy<Value = NetworkObject> {
    let v4 = (8u8..=30, any::<u32>()).prop_flat_map(|(prefix, base)| {
        let size = 1u64 << (32 - prefix);
        let net = IpNet::new(IpAddr::V4(Ipv4Addr::from(base)), prefix)
            .map(|n| n.trunc())
            .unwrap_or_else(|e| panic!("{e}"));
        let offset = 1..size - 1;
        (
            Just(net),
            (offset.clone(), offset.clone()),
            vec(offset.clone(), 0..3),
            vec(offset.clone(), 0..2),
            vec((offset, prefix..=32), 0..2),
        )
    });
    let v6 = (48u8..=120, 0u8..=6, any::<u128>()).prop_flat_map(|(prefix, extra, base)| {
        let net6 = IpNet::new(
            IpAddr::V6(Ipv6Addr::from((0x2001_0db8u128 << 96) | (base >> 32))),
            prefix,
        )
        .map(|n| n.trunc())
        .unwrap_or_else(|e| panic!("{e}"));
        let pool_prefix = (prefix + extra).max(104);
        let pool = IpNet::new(net6.network(), pool_prefix).unwrap_or_else(|e| panic!("{e}"));
        let size = 1u64 << (128 - pool_prefix);
        let offset = 1..size - 1;
        (
            Just((net6, pool)),
            (offset.clone(), offset.clone()),
            vec(offset, 0..3),
        )
    });
    (v4, v6, option::of(20i64..=30)).prop_map(
        |((net, (a, b), gws, reserved, excludes), ((net6, pool6), (a6, b6), gws6), block)| {
            let at = |net: &IpNet, off: u64| {
                address_at(net, u32::try_from(off).unwrap_or(0))
                    .unwrap_or_else(|| panic!("{off} outside {net}"))
            };
            // Distinct offsets inside 1..=size-2, so neither end is the network or last address.
            let order = |a: u64, b: u64| match a.cmp(&b) {
                std::cmp::Ordering::Less => (a, b),
                std::cmp::Ordering::Greater => (b, a),
                std::cmp::Ordering::Equal if a > 1 => (a - 1, a),
                std::cmp::Ordering::Equal => (a, a + 1),
            };
            let (start, end) = order(a, b);
            let (start6, end6) = order(a6, b6);
            let mut spec = NetworkSpec {
                network_id: "net1".to_owned(),
                ..NetworkSpec::default()
            };
            let o = &mut spec.options;
            o.cidr = net.to_string();
            o.allocation_pool.start = at(&net, start).to_string();
            o.allocation_pool.end = at(&net, end).to_string();
            for (i, gw) in gws.iter().enumerate() {
                o.routes
                    .insert(format!("172.16.{i}.0/24"), at(&net, *gw).to_string());
            }
            o.net6 = net6.to_string();
            o.allocation_pool_v6.cidr = pool6.to_string();
            o.allocation_pool_v6.start = at(&pool6, start6).to_string();
            o.allocation_pool_v6.end = at(&pool6, end6).to_string();
            for (i, gw) in gws6.iter().enumerate() {
                o.routes6
                    .insert(format!("2001:db8:ff{i}::/48"), at(&pool6, *gw).to_string());
            }
            spec.plexus.reserved = reserved.iter().map(|r| at(&net, *r).to_string()).collect();
            spec.plexus.exclude = excludes
                .iter()
                .map(|(off, p)| format!("{}/{p}", at(&net, *off)))
                .collect();
            spec.plexus.block_size = block.filter(|b| *b >= i64::from(net.prefix_len()));
            NetworkObject {
                api_version: "plexus.io/v1".to_owned(),
                kind: NetworkKind::ClusterNetwork,
                metadata: ObjectMeta {
                    name: "net1".to_owned(),
                    ..ObjectMeta::default()
                },
                spec,
            }
        },
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Networks built inside the rules validate (unless reservations fill the whole pool),
    /// and their pools never hand out a gateway, a reserved or an excluded address, nor
    /// anything outside start..end.
    #[test]
    fn valid_networks_keep_reservations_out_of_the_pool(object in valid_object()) {
        let valid = match validate(&object, Operation::Create) {
            Ok(valid) => valid,
            Err(errors) => {
                prop_assert!(
                    errors.violations.iter().all(|v| v.rule == Rule::PoolEmpty),
                    "{}", errors
                );
                return Ok(());
            }
        };
        let pool = to_pool(&valid).unwrap_or_else(|e| panic!("{e}"));
        let config = pool.pool_config().unwrap_or_else(|e| panic!("{e}"));
        prop_assert_eq!(config.range_sets.len(), 2);
        for family in [&pool.v4, &pool.v6].into_iter().flatten() {
            let range = family.range().unwrap_or_else(|| panic!("no range"));
            for ip in family.gateways.iter().chain(&family.reserved) {
                prop_assert!(!range.is_allocatable(*ip), "{} allocatable", ip);
                prop_assert!(family.reservation(*ip).is_some());
            }
            for net in &family.exclude {
                prop_assert!(!range.is_allocatable(net.network()));
                prop_assert!(!range.is_allocatable(net.broadcast()));
            }
            let source = if family.network.addr().is_ipv4() { &valid.v4 } else { &valid.v6 };
            let source = source.as_ref().unwrap_or_else(|| panic!("no family"));
            prop_assert_eq!((range.start, range.end), (source.start, source.end));
        }
    }
}
