//! One test per rule (identity rules in `identity`, address rules in `addressing`), plus
//! defaults and reporting.

mod addressing;
mod identity;

use std::net::IpAddr;

use ipnet::IpNet;

use super::{Operation, Rule, ValidationErrors, validate};
use crate::network::{NetworkKind, NetworkObject, NetworkSpec, ObjectMeta};

pub(super) fn ip(text: &str) -> IpAddr {
    text.parse().unwrap_or_else(|e| panic!("{text}: {e}"))
}

pub(super) fn net(text: &str) -> IpNet {
    text.parse().unwrap_or_else(|e| panic!("{text}: {e}"))
}

/// A valid dual-stack ClusterNetwork with a route and a VLAN.
pub(super) fn base(kind: NetworkKind) -> NetworkObject {
    let mut spec = NetworkSpec {
        network_id: "blue".to_owned(),
        network_type: "ipvlan".to_owned(),
        ..NetworkSpec::default()
    };
    let o = &mut spec.options;
    o.host_device = "ens4".to_owned();
    o.cidr = "10.10.0.0/16".to_owned();
    o.routes
        .insert("192.168.0.0/16".to_owned(), "10.10.0.1".to_owned());
    o.net6 = "2001:db8:1::/64".to_owned();
    o.routes6
        .insert("2001:db8:99::/48".to_owned(), "2001:db8:1::1".to_owned());
    o.vlan = Some(100);
    NetworkObject {
        api_version: "danm.k8s.io/v1".to_owned(),
        kind,
        metadata: ObjectMeta {
            name: "blue".to_owned(),
            ..ObjectMeta::default()
        },
        spec,
    }
}

pub(super) fn cluster() -> NetworkObject {
    base(NetworkKind::ClusterNetwork)
}

/// Assert that validating `object` breaks `rule` at `path`, and return all violations.
#[track_caller]
pub(super) fn breaks(
    object: &NetworkObject,
    op: Operation,
    rule: Rule,
    path: &str,
) -> ValidationErrors {
    match validate(object, op) {
        Ok(_) => panic!("expected {rule:?} at {path}, but the network is valid"),
        Err(errors) => {
            assert!(
                errors
                    .violations
                    .iter()
                    .any(|v| v.rule == rule && v.path == path),
                "expected {rule:?} at {path}, got {errors:#?}"
            );
            errors
        }
    }
}

#[test]
fn a_full_network_passes_with_danm_defaults() {
    let valid = validate(&cluster(), Operation::Create).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(valid.qualified_name(), "blue");
    assert_eq!(valid.namespace, None);
    assert_eq!(valid.vlan, Some(100));
    let v4 = valid.v4.unwrap_or_else(|| panic!("no v4"));
    assert_eq!(v4.network, net("10.10.0.0/16"));
    assert_eq!((v4.start, v4.end), (ip("10.10.0.1"), ip("10.10.255.254")));
    assert_eq!(v4.routes, vec![(net("192.168.0.0/16"), ip("10.10.0.1"))]);
    let v6 = valid.v6.unwrap_or_else(|| panic!("no v6"));
    assert_eq!(v6.allocation_cidr, net("2001:db8:1::/64"));
    assert_eq!(v6.start, ip("2001:db8:1::1"));
    assert_eq!(v6.end, ip("2001:db8:1::ffff:ffff:ffff:fffe"));
}

#[test]
fn an_empty_type_defaults_to_ipvlan_and_known_types_are_lower_cased() {
    let mut object = cluster();
    object.spec.network_type = String::new();
    let valid = validate(&object, Operation::Create).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(valid.network_type, "ipvlan");
    object.spec.network_type = "MACVLAN".to_owned();
    let valid = validate(&object, Operation::Create).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(valid.network_type, "macvlan");
    assert!(valid.is_dynamic());
}

#[test]
fn namespaced_kinds_default_to_the_default_namespace() {
    let valid =
        validate(&base(NetworkKind::DanmNet), Operation::Create).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(valid.qualified_name(), "default/blue");
}

#[test]
fn every_broken_rule_is_reported_at_once() {
    let mut object = cluster();
    object.spec.network_id = String::new();
    object.spec.options.cidr = "10.0.0.0/33".to_owned();
    object.spec.options.vlan = Some(5000);
    object.spec.options.rt_tables = Some(-1);
    let errors = breaks(
        &object,
        Operation::Create,
        Rule::NetworkIdEmpty,
        "spec.NetworkID",
    );
    for rule in [Rule::CidrInvalid, Rule::VlanRange, Rule::RtTablesRange] {
        assert!(errors.has(rule), "{rule:?} missing from {errors}");
    }
    let text = errors.to_string();
    assert!(
        text.starts_with("network \"blue\" is invalid (4 problems): "),
        "{text}"
    );
    assert!(text.contains("spec.Options.vlan = \"5000\": VLAN id must be between 1 and 4094"));
}

#[test]
fn an_l2_network_is_valid() {
    let mut object = cluster();
    let o = &mut object.spec.options;
    o.cidr.clear();
    o.net6.clear();
    o.routes.clear();
    o.routes6.clear();
    let valid = validate(&object, Operation::Create).unwrap_or_else(|e| panic!("{e}"));
    assert!(valid.is_l2());
}
