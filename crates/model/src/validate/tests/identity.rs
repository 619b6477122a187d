//! Identity rules: names, type, devices, VLAN/VxLAN, tables, tenants, prefixes.

use super::{base, breaks, cluster};
use crate::network::NetworkKind;
use crate::validate::{Operation, Rule, validate, violations};

#[test]
fn api_version() {
    let mut object = cluster();
    object.api_version = "v1".to_owned();
    breaks(&object, Operation::Create, Rule::ApiVersion, "apiVersion");
    for ok in ["danm.io/v1", "plexus.io/v1"] {
        object.api_version = ok.to_owned();
        assert!(violations(&object, Operation::Create).is_empty());
    }
}

#[test]
fn metadata_name_and_namespace() {
    let mut object = base(NetworkKind::DanmNet);
    object.metadata.name = "Blue_Net".to_owned();
    object.metadata.namespace = Some("Team A".to_owned());
    breaks(
        &object,
        Operation::Create,
        Rule::MetadataName,
        "metadata.name",
    );
    breaks(
        &object,
        Operation::Create,
        Rule::MetadataNamespace,
        "metadata.namespace",
    );
}

#[test]
fn network_id_must_not_be_empty() {
    let mut object = cluster();
    object.spec.network_id = String::new();
    breaks(
        &object,
        Operation::Create,
        Rule::NetworkIdEmpty,
        "spec.NetworkID",
    );
}

#[test]
fn network_id_must_be_safe_as_a_file_name() {
    for bad in ["a/b", "..", "a..b", "a\0b", "a b", "a\nb", "a\u{7f}"] {
        let mut object = cluster();
        object.spec.network_id = bad.to_owned();
        breaks(
            &object,
            Operation::Create,
            Rule::NetworkIdUnsafe,
            "spec.NetworkID",
        );
    }
}

#[test]
fn network_id_is_short_on_dynamic_networks_with_a_vlan_or_vxlan() {
    let mut object = cluster();
    object.spec.network_id = "abcdefghijk".to_owned();
    breaks(
        &object,
        Operation::Create,
        Rule::NetworkIdTooLong,
        "spec.NetworkID",
    );
    object.spec.options.vlan = None;
    object.spec.options.vxlan = Some(1000);
    breaks(
        &object,
        Operation::Create,
        Rule::NetworkIdTooLong,
        "spec.NetworkID",
    );
    // Ten characters fit; so does any length without a VNI or on a static delegate.
    object.spec.network_id = "abcdefghij".to_owned();
    assert!(violations(&object, Operation::Create).is_empty());
    object.spec.network_id = "abcdefghijk".to_owned();
    object.spec.options.vxlan = None;
    assert!(violations(&object, Operation::Create).is_empty());
    object.spec.options.vxlan = Some(1000);
    object.spec.network_type = "flannel".to_owned();
    object.spec.options.host_device = String::new();
    assert!(violations(&object, Operation::Create).is_empty());
}

#[test]
fn network_type_must_be_a_plain_binary_name() {
    let mut object = cluster();
    object.spec.network_type = "../../bin/sh".to_owned();
    breaks(
        &object,
        Operation::Create,
        Rule::NetworkTypeUnsafe,
        "spec.NetworkType",
    );
}

#[test]
fn vlan_range() {
    for bad in [-1, 4095, 1 << 40] {
        let mut object = cluster();
        object.spec.options.vlan = Some(bad);
        breaks(
            &object,
            Operation::Create,
            Rule::VlanRange,
            "spec.Options.vlan",
        );
    }
    let mut object = cluster();
    object.spec.options.vlan = Some(0);
    let valid = validate(&object, Operation::Create).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(valid.vlan, None, "0 means unset, as in DANM");
    object.spec.options.vlan = Some(4094);
    assert!(violations(&object, Operation::Create).is_empty());
}

#[test]
fn vxlan_range() {
    for bad in [-5, 16_777_215] {
        let mut object = cluster();
        object.spec.options.vlan = None;
        object.spec.options.vxlan = Some(bad);
        breaks(
            &object,
            Operation::Create,
            Rule::VxlanRange,
            "spec.Options.vxlan",
        );
    }
}

#[test]
fn vlan_and_vxlan_are_mutually_exclusive() {
    let mut object = cluster();
    object.spec.options.vxlan = Some(600);
    breaks(
        &object,
        Operation::Create,
        Rule::VlanAndVxlan,
        "spec.Options.vxlan",
    );
}

#[test]
fn sriov_needs_a_device_pool() {
    let mut object = cluster();
    object.spec.network_type = "sriov".to_owned();
    object.spec.options.host_device = String::new();
    breaks(
        &object,
        Operation::Create,
        Rule::SriovWithoutDevicePool,
        "spec.Options.device_pool",
    );
    object.spec.options.device_pool = "nokia.k8s.io/sriov_ens1f0".to_owned();
    assert!(violations(&object, Operation::Create).is_empty());
}

#[test]
fn sriov_forbids_host_device() {
    let mut object = cluster();
    object.spec.network_type = "SRIOV".to_owned();
    object.spec.options.device_pool = "nokia.k8s.io/sriov_ens1f0".to_owned();
    breaks(
        &object,
        Operation::Create,
        Rule::SriovWithHostDevice,
        "spec.Options.host_device",
    );
}

#[test]
fn host_device_and_device_pool_are_mutually_exclusive() {
    let mut object = cluster();
    object.spec.options.device_pool = "nokia.k8s.io/sriov_ens1f0".to_owned();
    breaks(
        &object,
        Operation::Create,
        Rule::HostDeviceAndDevicePool,
        "spec.Options.device_pool",
    );
}

#[test]
fn host_device_is_an_interface_name() {
    let mut object = cluster();
    object.spec.options.host_device = "a-very-long-interface".to_owned();
    breaks(
        &object,
        Operation::Create,
        Rule::HostDeviceInvalid,
        "spec.Options.host_device",
    );
}

#[test]
fn rt_tables_range() {
    let mut object = cluster();
    object.spec.options.rt_tables = Some(256);
    breaks(
        &object,
        Operation::Create,
        Rule::RtTablesRange,
        "spec.Options.rt_tables",
    );
    object.spec.options.rt_tables = Some(255);
    let valid = validate(&object, Operation::Create).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(valid.rt_table, Some(255));
}

#[test]
fn allowed_tenants_only_on_cluster_networks() {
    for kind in [NetworkKind::DanmNet, NetworkKind::TenantNetwork] {
        let mut object = base(kind);
        object.spec.options.vlan = None;
        object.spec.allowed_tenants = Some(vec!["team-a".to_owned()]);
        breaks(
            &object,
            Operation::Create,
            Rule::AllowedTenantsForbidden,
            "spec.AllowedTenants",
        );
    }
    let mut object = cluster();
    object.spec.allowed_tenants = Some(vec!["team-a".to_owned(), "Team B".to_owned()]);
    breaks(
        &object,
        Operation::Create,
        Rule::AllowedTenantInvalid,
        "spec.AllowedTenants[1]",
    );
    object.spec.allowed_tenants = Some(vec!["team-a".to_owned()]);
    let valid = validate(&object, Operation::Create).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(valid.allowed_tenants, vec!["team-a".to_owned()]);
}

#[test]
fn tenant_networks_may_not_choose_a_vni_on_create() {
    let object = base(NetworkKind::TenantNetwork);
    breaks(
        &object,
        Operation::Create,
        Rule::TenantVniOnCreate,
        "spec.Options.vlan",
    );
    assert!(violations(&object, Operation::Update).is_empty());
    let mut object = base(NetworkKind::TenantNetwork);
    object.spec.options.vlan = None;
    object.spec.options.vxlan = Some(77);
    breaks(
        &object,
        Operation::Create,
        Rule::TenantVniOnCreate,
        "spec.Options.vxlan",
    );
}

#[test]
fn container_prefix_characters() {
    let mut object = cluster();
    object.spec.options.container_prefix = "ext:".to_owned();
    breaks(
        &object,
        Operation::Create,
        Rule::ContainerPrefixInvalid,
        "spec.Options.container_prefix",
    );
}

#[test]
fn container_prefix_leaves_room_for_the_index() {
    let mut object = cluster();
    object.spec.options.container_prefix = "abcdefghijklm".to_owned();
    assert!(
        violations(&object, Operation::Create).is_empty(),
        "13 + 2 digits fit"
    );
    object.spec.options.container_prefix = "abcdefghijklmn".to_owned();
    breaks(
        &object,
        Operation::Create,
        Rule::ContainerPrefixTooLong,
        "spec.Options.container_prefix",
    );
}
