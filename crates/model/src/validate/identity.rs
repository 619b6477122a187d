//! Rules about everything but addresses: names, type, devices, VLAN/VxLAN ids, routing table,
//! tenants and the container interface prefix.

use super::{Checker, Operation, Rule, is_dynamic_type};
use crate::annotation::MAX_ATTACHMENTS;
use crate::names::{
    MAX_IFNAME_LEN, dns_label_problem, dns_subdomain_problem, file_component_problem,
    ifname_chars_problem, ifname_problem,
};
use crate::network::{API_VERSIONS, NetworkKind, NetworkObject};

/// Longest NetworkID on a dynamic network with a VLAN/VxLAN: IFNAMSIZ (15) minus `.` and
/// four VLAN digits, for the host interface `<NetworkID>.<vlan>`.
pub const MAX_VNI_NETWORK_ID_LEN: usize = 10;
/// Highest VLAN id.
pub const MAX_VLAN: i64 = 4094;
/// Highest VxLAN VNI DANM accepts.
pub const MAX_VXLAN: i64 = 16_777_214;
/// Highest `rt_tables` value (DANM's CRD schema).
pub const MAX_RT_TABLE: i64 = 255;

/// The parsed values of the identity rules.
#[derive(Debug, Default)]
pub(super) struct Identity {
    /// `NetworkType` with the default applied.
    pub(super) network_type: String,
    /// `rt_tables` if in range and non-zero.
    pub(super) rt_table: Option<u8>,
    /// `vlan` if in range and non-zero.
    pub(super) vlan: Option<u16>,
    /// `vxlan` if in range and non-zero.
    pub(super) vxlan: Option<u32>,
}

/// Run the identity rules.
pub(super) fn check(c: &mut Checker, object: &NetworkObject, op: Operation) -> Identity {
    check_metadata(c, object);
    let spec = &object.spec;
    let o = &spec.options;
    let vlan = vni(
        c,
        "spec.Options.vlan",
        o.vlan,
        MAX_VLAN,
        Rule::VlanRange,
        "VLAN id",
    );
    let vxlan = vni(
        c,
        "spec.Options.vxlan",
        o.vxlan,
        MAX_VXLAN,
        Rule::VxlanRange,
        "VxLAN VNI",
    );
    let vlan_set = o.vlan.is_some_and(|v| v != 0);
    let vxlan_set = o.vxlan.is_some_and(|v| v != 0);
    if vlan_set && vxlan_set {
        c.report(
            Rule::VlanAndVxlan,
            "spec.Options.vxlan",
            o.vxlan.unwrap_or_default().to_string(),
            format!(
                "vlan ({}) and vxlan are mutually exclusive; set one of them",
                o.vlan.unwrap_or_default()
            ),
        );
    }

    check_network_id(
        c,
        &spec.network_id,
        &spec.network_type,
        vlan_set || vxlan_set,
    );
    let network_type = check_network_type(c, &spec.network_type);
    check_devices(c, &network_type, &o.host_device, &o.device_pool);
    check_container_prefix(c, &o.container_prefix);
    check_tenants(c, object.kind, spec.allowed_tenants.as_deref());
    if object.kind == NetworkKind::TenantNetwork && op == Operation::Create {
        for (field, set) in [("vlan", vlan_set), ("vxlan", vxlan_set)] {
            if set {
                let value = if field == "vlan" { o.vlan } else { o.vxlan };
                c.report(
                    Rule::TenantVniOnCreate,
                    format!("spec.Options.{field}"),
                    value.unwrap_or_default().to_string(),
                    "a TenantNetwork may not choose its VLAN/VxLAN id; the administrator \
                     assigns one from the TenantConfig",
                );
            }
        }
    }

    let rt_table = match o.rt_tables {
        Some(t) if !(0..=MAX_RT_TABLE).contains(&t) => {
            c.report(
                Rule::RtTablesRange,
                "spec.Options.rt_tables",
                t.to_string(),
                format!("must be a routing table number from 0 to {MAX_RT_TABLE} (0: none)"),
            );
            None
        }
        Some(t) => u8::try_from(t).ok().filter(|t| *t != 0),
        None => None,
    };
    Identity {
        network_type,
        rt_table,
        vlan: vlan.and_then(|v| u16::try_from(v).ok()),
        vxlan: vxlan.and_then(|v| u32::try_from(v).ok()),
    }
}

/// `apiVersion`, `metadata.name`, `metadata.namespace`.
fn check_metadata(c: &mut Checker, object: &NetworkObject) {
    if !API_VERSIONS.contains(&object.api_version.as_str()) {
        c.report(
            Rule::ApiVersion,
            "apiVersion",
            &object.api_version,
            format!("must be one of {}", API_VERSIONS.join(", ")),
        );
    }
    if let Some(problem) = dns_subdomain_problem(&object.metadata.name) {
        c.report(
            Rule::MetadataName,
            "metadata.name",
            &object.metadata.name,
            problem,
        );
    }
    if object.kind.is_namespaced()
        && let Some(ns) = object
            .metadata
            .namespace
            .as_deref()
            .filter(|ns| !ns.is_empty())
        && let Some(problem) = dns_label_problem(ns)
    {
        c.report(Rule::MetadataNamespace, "metadata.namespace", ns, problem);
    }
}

/// A VLAN id or VNI: 0 means unset (Go's zero value), otherwise `1..=max`.
fn vni(
    c: &mut Checker,
    path: &str,
    value: Option<i64>,
    max: i64,
    rule: Rule,
    what: &str,
) -> Option<i64> {
    match value {
        Some(0) | None => None,
        Some(v) if (1..=max).contains(&v) => Some(v),
        Some(v) => {
            c.report(
                rule,
                path,
                v.to_string(),
                format!("{what} must be between 1 and {max}"),
            );
            None
        }
    }
}

/// `NetworkID`: non-empty, safe as a file name, short enough for host interface names.
fn check_network_id(c: &mut Checker, id: &str, network_type: &str, has_vni: bool) {
    const PATH: &str = "spec.NetworkID";
    if id.is_empty() {
        c.report(Rule::NetworkIdEmpty, PATH, id, "must not be empty");
        return;
    }
    if let Some(problem) = file_component_problem(id) {
        c.report(
            Rule::NetworkIdUnsafe,
            PATH,
            id,
            format!("{problem}; it names files and host interfaces"),
        );
    }
    // IFNAMSIZ counts bytes, so a non-ASCII NetworkID gets less room.
    let bytes = id.len();
    if has_vni && is_dynamic_type(network_type) && bytes > MAX_VNI_NETWORK_ID_LEN {
        c.report(
            Rule::NetworkIdTooLong,
            PATH,
            id,
            format!(
                "is {bytes} bytes; with vlan or vxlan set it may have at most \
                 {MAX_VNI_NETWORK_ID_LEN}, so the host interface <NetworkID>.<vlan> fits in \
                 {MAX_IFNAME_LEN} bytes"
            ),
        );
    }
}

/// `NetworkType`: any CNI binary name; returns it with the default applied.
fn check_network_type(c: &mut Checker, network_type: &str) -> String {
    if network_type.is_empty() {
        return "ipvlan".to_owned();
    }
    if let Some(problem) = file_component_problem(network_type) {
        c.report(
            Rule::NetworkTypeUnsafe,
            "spec.NetworkType",
            network_type,
            format!("{problem}; it names the CNI binary to run"),
        );
    }
    if is_dynamic_type(network_type) {
        network_type.to_ascii_lowercase()
    } else {
        network_type.to_owned()
    }
}

/// `host_device` / `device_pool` by network type.
fn check_devices(c: &mut Checker, network_type: &str, host_device: &str, device_pool: &str) {
    if network_type == "sriov" {
        if device_pool.is_empty() {
            c.report(
                Rule::SriovWithoutDevicePool,
                "spec.Options.device_pool",
                "",
                "an sriov network needs device_pool, the device-plugin resource of its VFs",
            );
        }
        if !host_device.is_empty() {
            c.report(
                Rule::SriovWithHostDevice,
                "spec.Options.host_device",
                host_device,
                "an sriov network takes its devices from device_pool; remove host_device",
            );
        }
    } else if !host_device.is_empty() && !device_pool.is_empty() {
        c.report(
            Rule::HostDeviceAndDevicePool,
            "spec.Options.device_pool",
            device_pool,
            format!("host_device ({host_device}) and device_pool are mutually exclusive"),
        );
    }
    if !host_device.is_empty()
        && let Some(problem) = ifname_problem(host_device)
    {
        c.report(
            Rule::HostDeviceInvalid,
            "spec.Options.host_device",
            host_device,
            format!("not an interface name: {problem}"),
        );
    }
}

/// `container_prefix`: valid interface characters, and room for the largest index.
fn check_container_prefix(c: &mut Checker, prefix: &str) {
    const PATH: &str = "spec.Options.container_prefix";
    if prefix.is_empty() {
        return;
    }
    if let Some(problem) = ifname_chars_problem(prefix) {
        c.report(Rule::ContainerPrefixInvalid, PATH, prefix, problem);
    }
    let index_digits = (MAX_ATTACHMENTS - 1).to_string().len();
    let max = MAX_IFNAME_LEN - index_digits;
    if prefix.len() > max {
        c.report(
            Rule::ContainerPrefixTooLong,
            PATH,
            prefix,
            format!(
                "is {} bytes; interface names are <prefix><index> within {MAX_IFNAME_LEN} \
                 bytes and the index may take {index_digits} digits, so at most {max}",
                prefix.len()
            ),
        );
    }
}

/// `AllowedTenants`: ClusterNetwork only, each a namespace name.
fn check_tenants(c: &mut Checker, kind: NetworkKind, tenants: Option<&[String]>) {
    let Some(tenants) = tenants else { return };
    if kind != NetworkKind::ClusterNetwork {
        c.report(
            Rule::AllowedTenantsForbidden,
            "spec.AllowedTenants",
            tenants.join(","),
            format!("only a ClusterNetwork may list AllowedTenants, not a {kind}"),
        );
        return;
    }
    for (i, tenant) in tenants.iter().enumerate() {
        if let Some(problem) = dns_label_problem(tenant) {
            c.report(
                Rule::AllowedTenantInvalid,
                format!("spec.AllowedTenants[{i}]"),
                tenant,
                format!("not a namespace name: {problem}"),
            );
        }
    }
}
