//! Tests of the plexus network types: conversion into the model, validation through it,
//! and that the CRD spec and the model's spec have the same keys.

use std::collections::BTreeMap;

use plexus_model::{NetworkKind, Operation, Rule};

use super::*;
use crate::NetworkResource;

/// A dual-stack ClusterNetwork setting every field.
fn full() -> ClusterNetwork {
    let mut net = ClusterNetwork::new(
        "blue",
        ClusterNetworkSpec {
            network_id: "blue".into(),
            network_type: "macvlan".into(),
            allowed_tenants: vec!["team-a".into(), "team-b".into()],
            options: NetworkOptions {
                host_device: "ens4".into(),
                device_pool: String::new(),
                cidr: "10.10.0.0/16".into(),
                allocation_pool: Pool {
                    start: "10.10.1.0".into(),
                    end: "10.10.200.255".into(),
                },
                routes: BTreeMap::from([("192.168.0.0/16".into(), "10.10.0.1".into())]),
                net6: "2001:db8:1::/64".into(),
                allocation_pool_v6: Pool6 {
                    cidr: "2001:db8:1::/80".into(),
                    start: "2001:db8:1::10".into(),
                    end: "2001:db8:1::ffff".into(),
                },
                routes6: BTreeMap::from([("2001:db8:99::/48".into(), "2001:db8:1::1".into())]),
                container_prefix: "blu".into(),
                rt_tables: Some(100),
                vlan: Some(42),
                vxlan: None,
            },
            plexus: PlexusSettings {
                exclude: vec!["10.10.7.0/24".into()],
                reserved: vec!["10.10.0.2".into()],
                block_size: Some(26),
                block_size6: Some(122),
                duplicate_address_check: true,
            },
        },
    );
    net.status = Some(NetworkStatus {
        allocated: Some(3),
        free: Some("51197".into()),
        observed_generation: Some(1),
    });
    net
}

#[test]
fn every_field_reaches_the_model() -> Result<(), Box<dyn std::error::Error>> {
    let net = full();
    let model = net.to_model();
    assert_eq!(model.api_version, "plexus.io/v1");
    assert_eq!(model.kind, NetworkKind::ClusterNetwork);
    assert_eq!(model.metadata.name, "blue");
    // The CRD spec, written as JSON, is read by the model's own (strict) parser into the
    // same spec: no field of one is missing from the other, and every key is spelt alike.
    let spec_json = serde_json::to_value(&net.spec)?;
    let parsed: plexus_model::NetworkSpec = serde_json::from_value(spec_json)?;
    assert_eq!(parsed, model.spec);
    let valid = net.validate(Operation::Create)?;
    assert_eq!(valid.allowed_tenants, vec!["team-a", "team-b"]);
    assert_eq!(valid.vlan, Some(42));
    assert_eq!(valid.rt_table, Some(100));
    assert!(valid.duplicate_address_check);
    let v4 = valid.v4.ok_or("no v4")?;
    assert_eq!(v4.block_size, Some(26));
    assert_eq!(v4.exclude, vec!["10.10.7.0/24".parse()?]);
    assert_eq!(
        valid.v6.ok_or("no v6")?.allocation_cidr,
        "2001:db8:1::/80".parse()?
    );
    Ok(())
}

#[test]
fn objects_serialize_with_their_api_version_and_read_back() -> Result<(), serde_json::Error> {
    let net = full();
    let text = serde_json::to_string(&net)?;
    assert!(text.contains(r#""apiVersion":"plexus.io/v1""#), "{text}");
    assert!(text.contains(r#""kind":"ClusterNetwork""#), "{text}");
    assert!(text.contains(r#""NetworkID":"blue""#), "{text}");
    assert!(text.contains(r#""duplicateAddressCheck":true"#), "{text}");
    assert!(text.contains(r#""observedGeneration":1"#), "{text}");
    let again: ClusterNetwork = serde_json::from_str(&text)?;
    assert_eq!(again, net);
    Ok(())
}

#[test]
fn a_plexusctl_network_file_is_a_kubernetes_object() -> Result<(), Box<dyn std::error::Error>> {
    // The document plexusctl's tests apply, read as the CRD type.
    let doc = "\
apiVersion: plexus.io/v1
kind: ClusterNetwork
metadata: {name: blue}
spec:
  NetworkID: blue
  NetworkType: ipvlan
  Options:
    host_device: eth1
    cidr: 10.88.0.0/24
    allocation_pool: {start: 10.88.0.10, end: 10.88.0.99}
    routes: {10.99.0.0/16: 10.88.0.1}
";
    let net: ClusterNetwork = serde_norway::from_str(doc)?;
    let model: plexus_model::NetworkObject = serde_norway::from_str(doc)?;
    assert_eq!(net.to_model().spec, model.spec);
    assert_eq!(net.to_model().qualified_name(), model.qualified_name());
    Ok(())
}

#[test]
fn the_model_rules_apply() {
    let mut net = full();
    net.spec.options.routes = BTreeMap::from([("192.168.0.0/16".into(), "10.99.0.1".into())]);
    net.spec.allowed_tenants = vec!["Team_A".into()];
    net.spec.options.allocation_pool.start = "10.10.250.0".into();
    let errors = net.validate(Operation::Create).unwrap_err();
    for rule in [
        Rule::RouteGatewayOutside,
        Rule::AllowedTenantInvalid,
        Rule::PoolOrder,
    ] {
        assert!(errors.has(rule), "{rule:?} missing from {errors}");
    }
    assert!(
        errors
            .violations
            .iter()
            .any(|v| v.path == "spec.AllowedTenants[0]" && v.value == "Team_A"),
        "{errors}"
    );
    assert_eq!(errors.network, "blue");
}

#[test]
fn tenant_networks_are_namespaced_and_may_not_choose_a_vni() {
    let mut net = TenantNetwork::new(
        "red",
        TenantNetworkSpec {
            network_id: "red".into(),
            options: NetworkOptions {
                cidr: "10.20.0.0/24".into(),
                ..NetworkOptions::default()
            },
            ..TenantNetworkSpec::default()
        },
    );
    let model = net.to_model();
    assert_eq!(model.kind, NetworkKind::TenantNetwork);
    assert_eq!(model.qualified_name(), "default/red");
    net.metadata.namespace = Some("team-a".into());
    let valid = net.validate(Operation::Create).unwrap();
    assert_eq!(valid.qualified_name(), "team-a/red");
    assert_eq!(valid.network_type, "ipvlan");
    net.spec.options.vlan = Some(7);
    assert!(
        net.validate(Operation::Create)
            .unwrap_err()
            .has(Rule::TenantVniOnCreate)
    );
    // The administrator's assignment, seen on update, is fine.
    assert!(net.validate(Operation::Update).is_ok());
}

#[test]
fn empty_optional_sections_are_not_written() -> Result<(), serde_json::Error> {
    let net = ClusterNetwork::new(
        "l2",
        ClusterNetworkSpec {
            network_id: "l2".into(),
            ..ClusterNetworkSpec::default()
        },
    );
    let spec = serde_json::to_value(&net.spec)?;
    assert_eq!(spec, serde_json::json!({"NetworkID": "l2", "Options": {}}));
    Ok(())
}
