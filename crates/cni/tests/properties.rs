//! Property tests of the pure protocol logic: parsers never panic, and renderings round-trip.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use plexus_cni::{
    CniArgs, CniVersion, Dns, Environment, Error, Interface, IpConfig, NetConf, Route,
    SuccessResult, render_error,
};
use proptest::prelude::*;
use serde_json::{Value, json};

fn ip_addr() -> impl Strategy<Value = IpAddr> {
    prop_oneof![
        any::<u32>().prop_map(|bits| IpAddr::V4(Ipv4Addr::from(bits))),
        any::<u128>().prop_map(|bits| IpAddr::V6(Ipv6Addr::from(bits))),
    ]
}

fn ip_net() -> impl Strategy<Value = IpNet> {
    prop_oneof![
        (any::<u32>(), 0u8..=32).prop_filter_map("valid prefix", |(bits, prefix)| {
            Ipv4Net::new(Ipv4Addr::from(bits), prefix)
                .ok()
                .map(IpNet::V4)
        }),
        (any::<u128>(), 0u8..=128).prop_filter_map("valid prefix", |(bits, prefix)| {
            Ipv6Net::new(Ipv6Addr::from(bits), prefix)
                .ok()
                .map(IpNet::V6)
        }),
    ]
}

fn text() -> impl Strategy<Value = String> {
    any::<String>()
}

fn interface() -> impl Strategy<Value = Interface> {
    (
        text(),
        proptest::option::of(text()),
        proptest::option::of(any::<u32>()),
        proptest::option::of(text()),
        proptest::option::of(text()),
        proptest::option::of(text()),
    )
        .prop_map(|(name, mac, mtu, sandbox, socket_path, pci_id)| Interface {
            name,
            mac,
            mtu,
            sandbox,
            socket_path,
            pci_id,
        })
}

fn ip_config() -> impl Strategy<Value = IpConfig> {
    (
        ip_net(),
        proptest::option::of(ip_addr()),
        proptest::option::of(0usize..8),
    )
        .prop_map(|(address, gateway, interface)| IpConfig {
            address,
            gateway,
            interface,
        })
}

fn route() -> impl Strategy<Value = Route> {
    (
        ip_net(),
        proptest::option::of(ip_addr()),
        proptest::option::of(any::<u32>()),
        proptest::option::of(any::<u32>()),
        proptest::option::of(any::<u32>()),
        proptest::option::of(any::<u32>()),
        proptest::option::of(any::<u8>()),
    )
        .prop_map(|(dst, gw, mtu, advmss, priority, table, scope)| Route {
            dst,
            gw,
            mtu,
            advmss,
            priority,
            table,
            scope,
        })
}

fn dns() -> impl Strategy<Value = Dns> {
    let list = || proptest::collection::vec(text(), 0..3);
    (list(), proptest::option::of(text()), list(), list()).prop_map(
        |(nameservers, domain, search, options)| Dns {
            nameservers,
            domain,
            search,
            options,
        },
    )
}

fn success_result() -> impl Strategy<Value = SuccessResult> {
    (
        proptest::collection::vec(interface(), 0..3),
        proptest::collection::vec(ip_config(), 0..4),
        proptest::collection::vec(route(), 0..4),
        proptest::option::of(dns()),
    )
        .prop_map(|(interfaces, ips, routes, dns)| SuccessResult {
            interfaces,
            ips,
            routes,
            dns,
        })
}

/// `result` without the fields `version` cannot represent.
fn representable_in(mut result: SuccessResult, version: &CniVersion) -> SuccessResult {
    if *version < CniVersion::V1_1_0 {
        for iface in &mut result.interfaces {
            iface.mtu = None;
            iface.socket_path = None;
            iface.pci_id = None;
        }
        for route in &mut result.routes {
            *route = Route::new(route.dst, route.gw);
        }
    }
    result
}

fn supported_version() -> impl Strategy<Value = CniVersion> {
    proptest::sample::select(CniVersion::supported().to_vec())
}

/// JSON values biased towards the fields a network configuration has.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        text().prop_map(Value::String),
        proptest::sample::select(vec![
            "0.3.1",
            "1.1.0",
            "0.2.0",
            "1.1",
            "net-1",
            "10.0.0.5/24"
        ])
        .prop_map(Value::from),
    ];
    let key = prop_oneof![
        proptest::sample::select(vec![
            "cniVersion",
            "name",
            "type",
            "ipam",
            "runtimeConfig",
            "args",
            "prevResult",
            "cni.dev/valid-attachments",
            "cni.dev/attachments",
            "containerID",
            "ifname",
            "ips",
            "cni",
        ])
        .prop_map(str::to_owned),
        text(),
    ];
    leaf.prop_recursive(4, 64, 8, move |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            proptest::collection::vec((key.clone(), inner), 0..8)
                .prop_map(|pairs| Value::Object(pairs.into_iter().collect())),
        ]
    })
}

proptest! {
    #[test]
    fn cni_args_parse_never_panics(input in any::<String>()) {
        let _ = CniArgs::parse(&input).map(|args| {
            let _ = args.ips();
            let _ = args.unknown_keys();
            let _ = args.reject_unknown();
        });
    }

    #[test]
    fn cni_args_parse_never_panics_on_args_like_input(input in "[A-Za-z0-9_=;,./:]{0,64}") {
        if let Ok(args) = CniArgs::parse(&input) {
            let _ = args.ips();
            prop_assert!(args.pairs().all(|(key, _)| !key.is_empty()));
        }
    }

    #[test]
    fn cni_args_round_trip_k_v_lists(
        pairs in proptest::collection::vec(("[A-Za-z0-9_]{1,12}", "[^;]{0,16}"), 0..8)
    ) {
        let joined = pairs
            .iter()
            .map(|(key, value)| format!("{key}={value}"))
            .collect::<Vec<_>>()
            .join(";");
        let args = CniArgs::parse(&joined).map_err(|err| TestCaseError::fail(err.to_string()))?;
        let parsed: Vec<(String, String)> =
            args.pairs().map(|(k, v)| (k.to_owned(), v.to_owned())).collect();
        prop_assert_eq!(&parsed, &pairs);
        prop_assert_eq!(args.to_string(), joined);
        let last: HashMap<&str, &str> =
            pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        for (key, value) in last {
            prop_assert_eq!(args.get(key), Some(value));
        }
    }

    #[test]
    fn cni_args_ips_round_trip(ips in proptest::collection::vec(ip_addr(), 1..4)) {
        let list = ips.iter().map(ToString::to_string).collect::<Vec<_>>().join(",");
        let args = CniArgs::parse(&format!("IP={list}"))
            .map_err(|err| TestCaseError::fail(err.to_string()))?;
        prop_assert_eq!(args.ips(), Ok(ips));
    }

    #[test]
    fn success_result_round_trips_in_every_version(
        result in success_result(),
        version in supported_version(),
    ) {
        let wire = result.to_json(&version).to_string();
        let value: Value = serde_json::from_str(&wire)
            .map_err(|err| TestCaseError::fail(err.to_string()))?;
        prop_assert_eq!(&value["cniVersion"], &json!(version.to_string()));
        let decoded = SuccessResult::from_json(&value);
        prop_assert_eq!(decoded, Ok(representable_in(result, &version)));
    }

    #[test]
    fn ip_version_field_only_below_1_0_0(result in success_result(), version in supported_version()) {
        let value = result.to_json(&version);
        let ips = value.get("ips").and_then(Value::as_array).cloned().unwrap_or_default();
        for (ip, wire) in result.ips.iter().zip(&ips) {
            let expected = match ip.address {
                IpNet::V4(_) => "4",
                IpNet::V6(_) => "6",
            };
            if version < CniVersion::V1_0_0 {
                prop_assert_eq!(&wire["version"], &json!(expected));
            } else {
                prop_assert!(wire.get("version").is_none());
            }
        }
    }

    #[test]
    fn cni_version_ordering_matches_numeric_ordering(
        a in (any::<u16>(), any::<u16>(), any::<u16>()),
        b in (any::<u16>(), any::<u16>(), any::<u16>()),
    ) {
        let va = CniVersion::new(a.0, a.1, a.2);
        let vb = CniVersion::new(b.0, b.1, b.2);
        prop_assert_eq!(va.cmp(&vb), a.cmp(&b));
        let pa: CniVersion = format!("{}.{}.{}", a.0, a.1, a.2).parse()
            .map_err(|err: Error| TestCaseError::fail(err.to_string()))?;
        prop_assert_eq!(pa, va);
        prop_assert_eq!(va.to_string().parse::<CniVersion>(), Ok(va));
    }

    #[test]
    fn cni_version_parse_never_panics(input in any::<String>()) {
        if let Ok(version) = input.parse::<CniVersion>() {
            prop_assert_eq!(version.to_string(), input);
        }
    }

    #[test]
    fn netconf_parse_never_panics_on_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = NetConf::parse(&bytes);
    }

    #[test]
    fn netconf_parse_never_panics_on_json(value in json_value()) {
        if let Ok(conf) = NetConf::parse(value.to_string().as_bytes()) {
            prop_assert!(conf.cni_version.is_supported());
            prop_assert_eq!(&conf.raw, &value);
            let _ = conf.requested_ips();
            let _ = conf.parsed_prev_result();
        }
    }

    #[test]
    fn result_from_json_never_panics(value in json_value()) {
        let _ = SuccessResult::from_json(&value);
    }

    #[test]
    fn environment_from_vars_never_panics(
        command in prop_oneof![
            proptest::sample::select(vec!["ADD", "DEL", "CHECK", "STATUS", "GC", "VERSION"])
                .prop_map(str::to_owned),
            any::<String>(),
        ],
        values in proptest::collection::vec(proptest::option::of(any::<String>()), 5),
    ) {
        let names = ["CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME", "CNI_ARGS", "CNI_PATH"];
        let mut vars: HashMap<&str, String> = names
            .iter()
            .zip(values)
            .filter_map(|(name, value)| value.map(|v| (*name, v)))
            .collect();
        vars.insert("CNI_COMMAND", command);
        if let Ok(env) = Environment::from_vars(|k| vars.get(k).cloned())
            && env.command.is_per_attachment()
        {
            prop_assert!(env.attachment().is_some());
        }
    }

    #[test]
    fn rendered_errors_are_json_carrying_the_error(
        code in any::<u32>(), msg in any::<String>(), details in any::<String>(),
    ) {
        let err = Error::new(code, msg.clone(), details.clone());
        let (text, exit) = render_error(&err, None);
        prop_assert_eq!(exit, 1);
        prop_assert!(!text.contains('\n'));
        let value: Value = serde_json::from_str(&text)
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(&value["code"], &json!(code));
        prop_assert_eq!(&value["msg"], &json!(msg));
        if details.is_empty() {
            prop_assert!(value.get("details").is_none());
        } else {
            prop_assert_eq!(&value["details"], &json!(details));
        }
    }
}
