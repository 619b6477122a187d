//! Unit tests for result rendering and decoding.

use serde_json::json;

use super::*;
use crate::codes;

fn net(s: &str) -> IpNet {
    s.parse().expect(s)
}

fn addr(s: &str) -> IpAddr {
    s.parse().expect(s)
}

fn version(s: &str) -> CniVersion {
    s.parse().expect(s)
}

/// A result using every field, including the 1.1.0-only ones.
fn full_result() -> SuccessResult {
    SuccessResult {
        interfaces: vec![Interface {
            name: "eth0".into(),
            mac: Some("aa:bb:cc:dd:ee:ff".into()),
            mtu: Some(1500),
            sandbox: Some("/var/run/netns/pod1".into()),
            socket_path: Some("/run/vhost.sock".into()),
            pci_id: Some("0000:00:1f.0".into()),
        }],
        ips: vec![
            IpConfig {
                address: net("10.0.0.5/24"),
                gateway: Some(addr("10.0.0.1")),
                interface: Some(0),
            },
            IpConfig {
                address: net("fd00::5/64"),
                gateway: None,
                interface: Some(0),
            },
        ],
        routes: vec![
            Route {
                dst: net("0.0.0.0/0"),
                gw: Some(addr("10.0.0.1")),
                mtu: Some(1400),
                advmss: Some(1360),
                priority: Some(100),
                table: Some(200),
                scope: Some(0),
            },
            Route::new(net("fd00:1::/64"), None),
        ],
        dns: Some(Dns {
            nameservers: vec!["10.0.0.53".into()],
            domain: Some("example.local".into()),
            search: vec!["example.local".into()],
            options: vec!["ndots:2".into()],
        }),
    }
}

fn legacy_shape(version: &str) -> Value {
    json!({
        "cniVersion": version,
        "interfaces": [{"name": "eth0", "mac": "aa:bb:cc:dd:ee:ff", "sandbox": "/var/run/netns/pod1"}],
        "ips": [
            {"version": "4", "address": "10.0.0.5/24", "gateway": "10.0.0.1", "interface": 0},
            {"version": "6", "address": "fd00::5/64", "interface": 0}
        ],
        "routes": [{"dst": "0.0.0.0/0", "gw": "10.0.0.1"}, {"dst": "fd00:1::/64"}],
        "dns": {"nameservers": ["10.0.0.53"], "domain": "example.local",
                "search": ["example.local"], "options": ["ndots:2"]}
    })
}

#[test]
fn renders_0_3_1_with_ip_versions_and_without_1_1_fields() {
    assert_eq!(
        full_result().to_json(&version("0.3.1")),
        legacy_shape("0.3.1")
    );
}

#[test]
fn renders_0_3_0_like_0_3_1() {
    assert_eq!(
        full_result().to_json(&version("0.3.0")),
        legacy_shape("0.3.0")
    );
}

#[test]
fn renders_0_4_0_with_ip_versions_and_without_1_1_fields() {
    assert_eq!(
        full_result().to_json(&version("0.4.0")),
        legacy_shape("0.4.0")
    );
}

#[test]
fn renders_1_0_0_without_ip_versions_or_1_1_fields() {
    assert_eq!(
        full_result().to_json(&version("1.0.0")),
        json!({
            "cniVersion": "1.0.0",
            "interfaces": [{"name": "eth0", "mac": "aa:bb:cc:dd:ee:ff", "sandbox": "/var/run/netns/pod1"}],
            "ips": [
                {"address": "10.0.0.5/24", "gateway": "10.0.0.1", "interface": 0},
                {"address": "fd00::5/64", "interface": 0}
            ],
            "routes": [{"dst": "0.0.0.0/0", "gw": "10.0.0.1"}, {"dst": "fd00:1::/64"}],
            "dns": {"nameservers": ["10.0.0.53"], "domain": "example.local",
                    "search": ["example.local"], "options": ["ndots:2"]}
        })
    );
}

#[test]
fn renders_1_1_0_with_every_field() {
    assert_eq!(
        full_result().to_json(&version("1.1.0")),
        json!({
            "cniVersion": "1.1.0",
            "interfaces": [{"name": "eth0", "mac": "aa:bb:cc:dd:ee:ff", "mtu": 1500,
                            "sandbox": "/var/run/netns/pod1", "socketPath": "/run/vhost.sock",
                            "pciID": "0000:00:1f.0"}],
            "ips": [
                {"address": "10.0.0.5/24", "gateway": "10.0.0.1", "interface": 0},
                {"address": "fd00::5/64", "interface": 0}
            ],
            "routes": [
                {"dst": "0.0.0.0/0", "gw": "10.0.0.1", "mtu": 1400, "advmss": 1360,
                 "priority": 100, "table": 200, "scope": 0},
                {"dst": "fd00:1::/64"}
            ],
            "dns": {"nameservers": ["10.0.0.53"], "domain": "example.local",
                    "search": ["example.local"], "options": ["ndots:2"]}
        })
    );
}

#[test]
fn abbreviated_ipam_result_omits_empty_parts() {
    let ipam = SuccessResult {
        ips: vec![IpConfig {
            address: net("192.168.1.20/24"),
            gateway: None,
            interface: None,
        }],
        ..SuccessResult::default()
    };
    assert_eq!(
        ipam.to_json(&CniVersion::V1_1_0),
        json!({"cniVersion": "1.1.0", "ips": [{"address": "192.168.1.20/24"}]})
    );
    assert_eq!(
        SuccessResult::default().to_json(&CniVersion::V0_4_0),
        json!({"cniVersion": "0.4.0"})
    );
}

#[test]
fn host_bits_of_the_address_are_kept() {
    let result = SuccessResult {
        ips: vec![IpConfig {
            address: net("10.0.0.5/8"),
            gateway: None,
            interface: None,
        }],
        ..SuccessResult::default()
    };
    assert_eq!(
        result.to_json(&CniVersion::V1_0_0)["ips"][0]["address"],
        "10.0.0.5/8"
    );
}

#[test]
fn empty_dns_is_kept_as_an_empty_object() {
    let result = SuccessResult {
        dns: Some(Dns::default()),
        ..SuccessResult::default()
    };
    assert_eq!(result.to_json(&CniVersion::V1_1_0)["dns"], json!({}));
}

#[test]
fn decodes_every_version_shape_back() {
    let mut without_1_1 = full_result();
    without_1_1.interfaces[0].mtu = None;
    without_1_1.interfaces[0].socket_path = None;
    without_1_1.interfaces[0].pci_id = None;
    without_1_1.routes[0] = Route::new(net("0.0.0.0/0"), Some(addr("10.0.0.1")));
    for v in ["0.3.0", "0.3.1", "0.4.0", "1.0.0"] {
        let decoded = SuccessResult::from_json(&full_result().to_json(&version(v)));
        assert_eq!(decoded, Ok(without_1_1.clone()), "{v}");
    }
    let decoded = SuccessResult::from_json(&full_result().to_json(&CniVersion::V1_1_0));
    assert_eq!(decoded, Ok(full_result()));
}

#[test]
fn decoding_tolerates_unknown_fields_nulls_and_empty_gateways() {
    let value = json!({
        "cniVersion": "0.4.0", "somethingNew": {"x": 1},
        "interfaces": null,
        "ips": [{"version": "4", "address": "10.0.0.5/24", "gateway": "", "future": true}],
        "routes": [{"dst": "10.1.0.0/16", "gw": ""}],
        "dns": {"nameservers": null}
    });
    let decoded = SuccessResult::from_json(&value).expect("tolerant");
    assert!(decoded.interfaces.is_empty());
    assert_eq!(decoded.ips[0].gateway, None);
    assert_eq!(decoded.routes[0].gw, None);
    assert_eq!(decoded.dns, Some(Dns::default()));
}

#[test]
fn decoding_wrong_shapes_is_code_6() {
    for value in [
        json!([]),
        json!("result"),
        json!({"ips": {"address": "10.0.0.5/24"}}),
        json!({"ips": [{"gateway": "10.0.0.1"}]}),
        json!({"ips": [{"address": 5}]}),
        json!({"ips": [{"address": "10.0.0.5/24", "interface": -1}]}),
        json!({"routes": [{"dst": "0.0.0.0/0", "scope": 256}]}),
        json!({"interfaces": [{"name": "eth0", "mtu": "1500"}]}),
    ] {
        let err = SuccessResult::from_json(&value).expect_err(&value.to_string());
        assert_eq!(err.code, codes::DECODE_FAILURE, "{value}");
    }
}

#[test]
fn decoding_bad_addresses_is_code_7_naming_the_field() {
    for (value, field) in [
        (json!({"ips": [{"address": "10.0.0.5"}]}), "ips[0].address"),
        (
            json!({"ips": [{"address": "10.0.0.5/24"}, {"address": "10.0.0.5/24", "gateway": "x"}]}),
            "ips[1].gateway",
        ),
        (json!({"routes": [{"dst": "default"}]}), "routes[0].dst"),
        (
            json!({"routes": [{"dst": "0.0.0.0/0", "gw": "10.0.0.256"}]}),
            "routes[0].gw",
        ),
    ] {
        let err = SuccessResult::from_json(&value).expect_err(field);
        assert_eq!(err.code, codes::INVALID_CONFIG, "{field}");
        assert!(err.msg.contains(field), "{}", err.msg);
    }
}

#[test]
fn version_reply_echoes_the_request_and_lists_supported_versions() {
    assert_eq!(
        version_reply(&version("0.4.0")),
        json!({"cniVersion": "0.4.0",
               "supportedVersions": ["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"]})
    );
    assert_eq!(version_reply(&version("9.9.9"))["cniVersion"], "9.9.9");
}
