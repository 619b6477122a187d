//! Unit tests for network configuration parsing.

use std::net::IpAddr;

use serde_json::{Value, json};

use super::*;
use crate::codes;

fn parse_value(value: &Value) -> Result<NetConf, Error> {
    NetConf::parse(value.to_string().as_bytes())
}

fn minimal() -> Value {
    json!({"cniVersion": "1.1.0", "name": "telco-net", "type": "plexus-ipam"})
}

fn with(field: &str, value: Value) -> Value {
    let mut conf = minimal();
    conf[field] = value;
    conf
}

fn without(field: &str) -> Value {
    let mut conf = minimal();
    conf.as_object_mut().map(|object| object.remove(field));
    conf
}

fn ip(s: &str) -> IpAddr {
    s.parse().expect(s)
}

fn code_of(value: &Value) -> u32 {
    parse_value(value).expect_err(&value.to_string()).code
}

#[test]
fn parses_a_minimal_config() {
    let conf = parse_value(&minimal()).expect("valid");
    assert_eq!(conf.cni_version, CniVersion::V1_1_0);
    assert_eq!(conf.name, "telco-net");
    assert_eq!(conf.plugin_type, "plexus-ipam");
    assert_eq!(conf.ipam, None);
    assert!(conf.runtime_config.is_empty());
    assert_eq!(conf.args, None);
    assert_eq!(conf.prev_result, None);
    assert_eq!(conf.valid_attachments, None);
    assert_eq!(conf.raw, minimal());
}

#[test]
fn keeps_ipam_runtime_config_args_prev_result_and_unknown_fields() {
    let input = json!({
        "cniVersion": "0.4.0", "name": "n", "type": "macvlan", "master": "eth1",
        "ipam": {"type": "plexus-ipam", "range": "10.0.0.0/24"},
        "runtimeConfig": {"ips": ["10.0.0.7/24"]},
        "args": {"cni": {"labels": [{"key": "a", "value": "b"}]}},
        "prevResult": {"cniVersion": "0.4.0", "ips": []}
    });
    let conf = parse_value(&input).expect("valid");
    assert_eq!(
        conf.ipam,
        Some(json!({"type": "plexus-ipam", "range": "10.0.0.0/24"}))
    );
    assert_eq!(
        conf.runtime_config.get("ips"),
        Some(&json!(["10.0.0.7/24"]))
    );
    assert_eq!(conf.args, Some(input["args"].clone()));
    assert_eq!(conf.prev_result, Some(input["prevResult"].clone()));
    assert_eq!(conf.raw, input);
    assert_eq!(conf.raw["master"], "eth1");
}

#[test]
fn null_optional_fields_read_as_absent() {
    for field in ["ipam", "runtimeConfig", "args", "prevResult"] {
        let conf = parse_value(&with(field, Value::Null)).expect(field);
        assert_eq!((conf.ipam, conf.args, conf.prev_result), (None, None, None));
        assert!(conf.runtime_config.is_empty());
    }
}

#[test]
fn garbage_is_code_6() {
    for bytes in [
        &b"not json"[..],
        b"{",
        b"\xff\xfe",
        b"{\"cniVersion\": \"1.1.0\",}",
        b"   ",
    ] {
        let err = NetConf::parse(bytes).expect_err("garbage");
        assert_eq!(err.code, codes::DECODE_FAILURE, "{bytes:?}");
    }
    assert_eq!(
        NetConf::parse(b"").expect_err("empty").msg,
        "network configuration is empty"
    );
}

#[test]
fn non_object_is_code_6() {
    for value in [json!([]), json!("x"), json!(1), json!(null), json!(true)] {
        assert_eq!(code_of(&value), codes::DECODE_FAILURE, "{value}");
    }
}

#[test]
fn wrong_field_types_are_code_6() {
    for (field, value) in [
        ("cniVersion", json!(1.1)),
        ("name", json!(["a"])),
        ("type", json!({})),
        ("ipam", json!("plexus-ipam")),
        ("runtimeConfig", json!([])),
        ("args", json!("K=V")),
        ("prevResult", json!([])),
    ] {
        let err = parse_value(&with(field, value)).expect_err(field);
        assert_eq!(err.code, codes::DECODE_FAILURE, "{field}");
        assert!(err.msg.contains(field), "{}", err.msg);
    }
}

#[test]
fn missing_or_empty_required_fields_are_code_7_naming_them() {
    for field in ["cniVersion", "name", "type"] {
        for conf in [
            without(field),
            with(field, json!("")),
            with(field, Value::Null),
        ] {
            let err = parse_value(&conf).expect_err(field);
            assert_eq!(err.code, codes::INVALID_CONFIG, "{field}");
            assert!(err.msg.contains(field), "{}", err.msg);
        }
    }
}

#[test]
fn malformed_version_is_code_6_and_unsupported_version_is_code_1() {
    assert_eq!(
        code_of(&with("cniVersion", json!("1.1"))),
        codes::DECODE_FAILURE
    );
    assert_eq!(
        code_of(&with("cniVersion", json!("latest"))),
        codes::DECODE_FAILURE
    );
    for old_or_new in ["0.1.0", "0.2.0", "1.2.0", "2.0.0"] {
        let err = parse_value(&with("cniVersion", json!(old_or_new))).expect_err(old_or_new);
        assert_eq!(err.code, codes::INCOMPATIBLE_VERSION);
        assert!(err.msg.contains(old_or_new), "{}", err.msg);
        assert!(
            err.msg.contains("1.1.0"),
            "should list supported: {}",
            err.msg
        );
    }
}

#[test]
fn every_supported_version_parses() {
    for version in crate::version::SUPPORTED_VERSIONS {
        let conf = parse_value(&with("cniVersion", json!(version))).expect(version);
        assert_eq!(conf.cni_version.to_string(), *version);
    }
}

#[test]
fn network_name_must_follow_the_spec_grammar() {
    for good in ["a", "net-1", "Net_2.v6", "0"] {
        assert!(parse_value(&with("name", json!(good))).is_ok(), "{good}");
    }
    for bad in ["-net", "net/1", "../etc", "net 1", "net:1", ".hidden"] {
        let err = parse_value(&with("name", json!(bad))).expect_err(bad);
        assert_eq!(err.code, codes::INVALID_CONFIG, "{bad}");
        assert!(err.msg.contains(&format!("{bad:?}")), "{}", err.msg);
    }
}

#[test]
fn oversized_input_is_code_7() {
    let padding = "x".repeat(MAX_CONFIG_BYTES);
    let big = with("padding", json!(padding));
    let err = parse_value(&big).expect_err("too big");
    assert_eq!(err.code, codes::INVALID_CONFIG);
    assert!(err.msg.contains("1 MiB"), "{}", err.msg);
}

#[test]
fn input_of_exactly_the_limit_is_accepted() {
    let mut text = minimal().to_string();
    text.push_str(&" ".repeat(MAX_CONFIG_BYTES - text.len()));
    assert_eq!(text.len(), MAX_CONFIG_BYTES);
    assert!(NetConf::parse(text.as_bytes()).is_ok());
}

#[test]
fn deeply_nested_input_is_an_error_not_a_crash() {
    let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    let err = NetConf::parse(deep.as_bytes()).expect_err("too deep");
    assert_eq!(err.code, codes::DECODE_FAILURE);
}

#[test]
fn valid_attachments_new_key_wins_over_legacy_key() {
    let mut conf = minimal();
    conf[KEY_VALID_ATTACHMENTS] = json!([{"containerID": "c1", "ifname": "eth0"}]);
    conf[KEY_ATTACHMENTS_LEGACY] = json!([{"containerID": "old", "ifname": "eth9"}]);
    let parsed = parse_value(&conf).expect("valid");
    assert_eq!(
        parsed.valid_attachments,
        Some(vec![Attachment {
            container_id: "c1".into(),
            ifname: "eth0".into()
        }])
    );
}

#[test]
fn valid_attachments_falls_back_to_the_legacy_key() {
    let mut conf = minimal();
    conf[KEY_ATTACHMENTS_LEGACY] = json!([
        {"containerID": "c1", "ifname": "eth0", "extra": true},
        {"containerID": "c2", "ifname": "net1"}
    ]);
    let parsed = parse_value(&conf).expect("valid");
    let ids: Vec<String> = parsed
        .valid_attachments
        .expect("present")
        .into_iter()
        .map(|a| format!("{}/{}", a.container_id, a.ifname))
        .collect();
    assert_eq!(ids, ["c1/eth0", "c2/net1"]);
}

#[test]
fn empty_and_null_valid_attachments_are_an_empty_set_not_absent() {
    for value in [json!([]), Value::Null] {
        let parsed = parse_value(&with(KEY_VALID_ATTACHMENTS, value)).expect("valid");
        assert_eq!(parsed.valid_attachments, Some(vec![]));
    }
}

#[test]
fn malformed_valid_attachments_are_code_6() {
    for value in [
        json!({"containerID": "c1", "ifname": "eth0"}),
        json!([{"containerID": "c1"}]),
        json!([{"containerID": 1, "ifname": "eth0"}]),
        json!("c1/eth0"),
    ] {
        let err = parse_value(&with(KEY_VALID_ATTACHMENTS, value.clone())).expect_err("bad");
        assert_eq!(err.code, codes::DECODE_FAILURE, "{value}");
        assert!(err.msg.contains(KEY_VALID_ATTACHMENTS), "{}", err.msg);
    }
}

#[test]
fn attachment_serde_uses_spec_field_names() {
    let attachment = Attachment {
        container_id: "c".into(),
        ifname: "eth0".into(),
    };
    assert_eq!(
        serde_json::to_value(&attachment).expect("serialise"),
        json!({"containerID": "c", "ifname": "eth0"})
    );
}

#[test]
fn requested_ips_merge_runtime_config_and_args_without_duplicates() {
    let mut conf = minimal();
    conf["runtimeConfig"] = json!({"ips": ["10.0.0.7/24", "fd00::7"]});
    conf["args"] = json!({"cni": {"ips": ["10.0.0.7", "10.0.0.8/24"]}});
    let parsed = parse_value(&conf).expect("valid");
    assert_eq!(
        parsed.requested_ips(),
        Ok(vec![ip("10.0.0.7"), ip("fd00::7"), ip("10.0.0.8")])
    );
}

/// Regression (found by fuzzing): de-duplication used to scan the list per address, so a
/// 1 MiB config of ~50,000 addresses took seconds. It must stay linear.
#[test]
fn requested_ips_of_a_one_mib_config_are_deduplicated_in_linear_time() {
    let addresses: Vec<String> = (0..50_000u32)
        .map(|i| format!("10.{}.{}.{}/8", i >> 16, (i >> 8) & 255, i & 255))
        .collect();
    let mut conf = minimal();
    conf["runtimeConfig"] = json!({"ips": addresses});
    conf["args"] = json!({"cni": {"ips": ["10.0.0.0", "10.0.0.1", "11.0.0.1"]}});
    let bytes = serde_json::to_vec(&conf).expect("serialise");
    assert!(bytes.len() < MAX_CONFIG_BYTES, "{} bytes", bytes.len());
    let parsed = NetConf::parse(&bytes).expect("valid");
    let started = std::time::Instant::now();
    let ips = parsed.requested_ips().expect("valid addresses");
    let elapsed = started.elapsed();
    assert_eq!(ips.len(), 50_001);
    assert_eq!(ips[1], ip("10.0.0.1"));
    assert_eq!(ips[50_000], ip("11.0.0.1"));
    // Linear: a few milliseconds even unoptimised; the quadratic scan took over 10 s.
    assert!(elapsed.as_secs() < 5, "took {elapsed:?}");
}

#[test]
fn requested_ips_empty_when_absent() {
    assert_eq!(
        parse_value(&minimal()).expect("valid").requested_ips(),
        Ok(vec![])
    );
    let args_without_ips = with("args", json!({"cni": {"labels": []}}));
    assert_eq!(
        parse_value(&args_without_ips)
            .expect("valid")
            .requested_ips(),
        Ok(vec![])
    );
}

#[test]
fn bad_requested_ips_are_code_7_naming_the_location() {
    for (conf, location) in [
        (
            with("runtimeConfig", json!({"ips": ["10.0.0.300"]})),
            "runtimeConfig.ips[0]",
        ),
        (
            with("runtimeConfig", json!({"ips": "10.0.0.7"})),
            "runtimeConfig.ips",
        ),
        (
            with("args", json!({"cni": {"ips": ["10.0.0.1", 7]}})),
            "args.cni.ips[1]",
        ),
        (
            with("args", json!({"cni": {"ips": ["10.0.0.1/40"]}})),
            "args.cni.ips[0]",
        ),
    ] {
        let err = parse_value(&conf)
            .expect("parses")
            .requested_ips()
            .expect_err(location);
        assert_eq!(err.code, codes::INVALID_CONFIG, "{location}");
        assert!(err.msg.contains(location), "{}", err.msg);
    }
}

#[test]
fn runtime_ip_ranges_are_exposed() {
    let ranges = json!([[{"subnet": "10.1.0.0/16"}]]);
    let conf = with("runtimeConfig", json!({"ipRanges": ranges}));
    let parsed = parse_value(&conf).expect("valid");
    assert_eq!(parsed.runtime_ip_ranges(), Some(&ranges));
    assert_eq!(
        parse_value(&minimal()).expect("valid").runtime_ip_ranges(),
        None
    );
}

#[test]
fn parsed_prev_result_decodes_or_reports() {
    let conf = with(
        "prevResult",
        json!({"cniVersion": "1.1.0", "ips": [{"address": "10.0.0.5/24"}]}),
    );
    let prev = parse_value(&conf)
        .expect("valid")
        .parsed_prev_result()
        .expect("decodes");
    assert_eq!(prev.map(|r| r.ips.len()), Some(1));
    let bad = with("prevResult", json!({"ips": [{"address": "nope"}]}));
    let err = parse_value(&bad)
        .expect("valid")
        .parsed_prev_result()
        .expect_err("bad address");
    assert_eq!(err.code, codes::INVALID_CONFIG);
    assert_eq!(
        parse_value(&minimal()).expect("valid").parsed_prev_result(),
        Ok(None)
    );
}
