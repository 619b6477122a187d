//! Tests of the network-status annotation: NPWG's derivation from a CNI result, the JSON
//! keys other readers expect, the caps, and render/parse round trips (proptest).

use std::net::IpAddr;

use ipnet::IpNet;
use plexus_cni::{Interface, IpConfig, Route, SuccessResult};
use proptest::prelude::*;

use super::*;

fn ip(text: &str) -> IpAddr {
    text.parse().unwrap()
}

fn net(text: &str) -> IpNet {
    text.parse().unwrap()
}

fn iface(name: &str, mac: &str, sandbox: Option<&str>) -> Interface {
    Interface {
        name: name.into(),
        mac: Some(mac.into()),
        mtu: Some(1450),
        sandbox: sandbox.map(Into::into),
        ..Default::default()
    }
}

/// A macvlan-like result: a host interface first, then the pod's, IPs on the pod's, one on
/// the host's, one on none; a default route and a plain route.
fn result() -> SuccessResult {
    SuccessResult {
        interfaces: vec![
            iface("vx_blue", "aa:aa:aa:aa:aa:01", None),
            iface("net1", "aa:aa:aa:aa:aa:02", Some("/var/run/netns/pod")),
        ],
        ips: vec![
            IpConfig {
                address: net("10.1.0.5/24"),
                gateway: Some(ip("10.1.0.1")),
                interface: Some(1),
            },
            IpConfig {
                address: net("192.0.2.9/24"),
                gateway: None,
                interface: Some(0),
            },
            IpConfig {
                address: net("fd00::5/64"),
                gateway: None,
                interface: None,
            },
        ],
        routes: vec![
            Route {
                dst: net("0.0.0.0/0"),
                gw: Some(ip("10.1.0.1")),
                mtu: None,
                advmss: None,
                priority: None,
                table: None,
                scope: None,
            },
            Route {
                dst: net("10.2.0.0/16"),
                gw: Some(ip("10.1.0.254")),
                mtu: None,
                advmss: None,
                priority: None,
                table: None,
                scope: None,
            },
        ],
        dns: Some(plexus_cni::Dns {
            nameservers: vec!["10.1.0.53".into()],
            domain: None,
            search: vec!["svc.cluster.local".into()],
            options: vec![],
        }),
    }
}

#[test]
fn an_entry_comes_from_the_first_sandbox_interface() {
    let entry = entry_from_result(
        "ns1/blue",
        false,
        &[ip("10.1.0.1"), ip("fd00::1")],
        &result(),
    );
    assert_eq!(entry.name, "ns1/blue");
    assert_eq!(entry.interface.as_deref(), Some("net1"));
    // The host interface's address is not the pod's; one on no interface is kept.
    assert_eq!(entry.ips, vec![ip("10.1.0.5"), ip("fd00::5")]);
    assert_eq!(entry.mac.as_deref(), Some("aa:aa:aa:aa:aa:02"));
    assert_eq!(entry.mtu, Some(1450));
    assert!(!entry.default);
    // The result's default route first, then the requested one not already there.
    assert_eq!(entry.gateway, vec![ip("10.1.0.1"), ip("fd00::1")]);
    assert_eq!(entry.default_route, entry.gateway);
    assert_eq!(entry.dns.nameservers, vec!["10.1.0.53".to_owned()]);
}

#[test]
fn without_a_sandbox_interface_the_first_one_is_taken_and_without_any_none() {
    let mut r = result();
    r.interfaces[1].sandbox = None;
    let entry = entry_from_result("x", true, &[], &r);
    assert_eq!(entry.interface.as_deref(), Some("vx_blue"));
    assert_eq!(entry.ips, vec![ip("192.0.2.9"), ip("fd00::5")]);

    r.interfaces.clear();
    let entry = entry_from_result("x", true, &[], &r);
    assert_eq!(entry.interface, None);
    assert_eq!(entry.mac, None);
    // IPs naming an interface that does not exist are not the pod's; unnamed ones are.
    assert_eq!(entry.ips, vec![ip("fd00::5")]);
}

#[test]
fn the_json_has_npwg_keys_and_leaves_out_what_is_unset() {
    let mut entry = entry_from_result("ns1/blue", true, &[], &result());
    entry.device_info = Some(serde_json::json!({"type": "pci", "version": "1.1.0"}));
    let value = render(&[entry]).unwrap();
    let json: serde_json::Value = serde_json::from_str(&value).unwrap();
    assert_eq!(
        json,
        serde_json::json!([{
            "name": "ns1/blue",
            "interface": "net1",
            "ips": ["10.1.0.5", "fd00::5"],
            "mac": "aa:aa:aa:aa:aa:02",
            "mtu": 1450,
            "default": true,
            "dns": {"nameservers": ["10.1.0.53"], "search": ["svc.cluster.local"]},
            "device-info": {"type": "pci", "version": "1.1.0"},
            "gateway": ["10.1.0.1"],
            "default-route": ["10.1.0.1"],
        }])
    );
    let bare = render(&[NetworkStatusEntry {
        name: "n".into(),
        ..Default::default()
    }])
    .unwrap();
    assert_eq!(bare, r#"[{"name":"n"}]"#);
}

#[test]
fn multus_output_reads() {
    // As Multus writes it: extension keys and an empty dns object.
    let value = r#"[{"name":"cbr0","interface":"eth0","ips":["10.244.1.7"],"mac":"0a:58:0a:f4:01:07","default":true,"dns":{}},
        {"name":"ns1/macvlan-conf","interface":"net1","ips":["192.168.1.200"],"mac":"c2:4a:1f:2e:7d:11","dns":{},"gateway":["192.168.1.1"],"example.com/extra":1}]"#;
    let entries = parse(value).unwrap();
    assert_eq!(entries.len(), 2);
    assert!(entries[0].default);
    assert_eq!(entries[1].gateway, vec![ip("192.168.1.1")]);
    assert!(entries[1].default_route.is_empty());
}

#[test]
fn bad_values_are_refused_with_the_reason() {
    let too_big = format!("[{}]", " ".repeat(MAX_STATUS_BYTES));
    assert!(matches!(parse(&too_big), Err(StatusError::TooLarge { .. })));
    let many = format!(
        "[{}]",
        vec![r#"{"name":"n"}"#; MAX_STATUS_ENTRIES + 1].join(",")
    );
    assert_eq!(
        parse(&many),
        Err(StatusError::TooManyEntries {
            count: MAX_STATUS_ENTRIES + 1
        })
    );
    let err = parse(r#"[{"name":"a"},{"name":"b","ips":["10.0.0.300"]}]"#).unwrap_err();
    assert!(err.to_string().contains("[1]"), "{err}");
    assert_eq!(
        parse(r#"[{"name":"a","default":true},{"name":"b","default":true}]"#),
        Err(StatusError::TwoDefaults {
            first: 0,
            second: 1
        })
    );
    assert_eq!(
        parse(r#"[{"name":""}]"#),
        Err(StatusError::EmptyName { index: 0 })
    );
    assert!(matches!(parse("{}"), Err(StatusError::Syntax { .. })));
    let two = vec![
        NetworkStatusEntry {
            name: "a".into(),
            default: true,
            ..Default::default()
        };
        2
    ];
    assert!(matches!(render(&two), Err(StatusError::TwoDefaults { .. })));
}

fn arb_ip() -> impl Strategy<Value = IpAddr> {
    prop_oneof![
        any::<u32>().prop_map(|v| IpAddr::from(v.to_be_bytes())),
        any::<u128>().prop_map(|v| IpAddr::from(v.to_be_bytes())),
    ]
}

fn arb_entry() -> impl Strategy<Value = NetworkStatusEntry> {
    (
        "[a-z0-9-]{1,20}(/[a-z0-9-]{1,20})?",
        proptest::option::of("[a-z0-9]{1,15}"),
        proptest::collection::vec(arb_ip(), 0..4),
        proptest::option::of("([0-9a-f]{2}:){5}[0-9a-f]{2}"),
        proptest::option::of(576u32..9001),
        proptest::collection::vec("[0-9.]{1,15}", 0..3),
        proptest::collection::vec(arb_ip(), 0..3),
    )
        .prop_map(|(name, interface, ips, mac, mtu, nameservers, gateway)| {
            NetworkStatusEntry {
                name,
                interface,
                ips,
                mac,
                mtu,
                default: false,
                dns: Dns {
                    nameservers,
                    ..Default::default()
                },
                device_info: None,
                default_route: gateway.clone(),
                gateway,
            }
        })
}

proptest! {
    #[test]
    fn render_then_parse_is_the_identity(
        mut entries in proptest::collection::vec(arb_entry(), 0..8),
        default in proptest::option::of(0usize..8),
    ) {
        if let Some(d) = default.filter(|d| *d < entries.len()) {
            entries[d].default = true;
        }
        let value = render(&entries).unwrap();
        prop_assert_eq!(parse(&value).unwrap(), entries);
    }

    #[test]
    fn parse_never_panics_and_errors_are_bounded(value in ".{0,300}") {
        if let Err(err) = parse(&value) {
            prop_assert!(err.to_string().len() < 1024 + value.len());
        }
    }

    #[test]
    fn entries_hold_only_the_results_addresses_and_unique_gateways(
        requested in proptest::collection::vec(arb_ip(), 0..4),
        sandbox_first in any::<bool>(),
    ) {
        let mut r = result();
        if sandbox_first {
            r.interfaces.swap(0, 1);
        }
        let entry = entry_from_result("n", false, &requested, &r);
        for address in &entry.ips {
            prop_assert!(r.ips.iter().any(|i| i.address.addr() == *address));
        }
        let unique: BTreeSet<_> = entry.gateway.iter().collect();
        prop_assert_eq!(unique.len(), entry.gateway.len());
        for gw in &requested {
            prop_assert!(entry.gateway.contains(gw));
        }
    }
}
