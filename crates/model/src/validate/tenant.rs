//! The TenantConfig rules (DANM's `pkg/admit` TenantConfig checks, plus plexus' own); the
//! fields are described in [`crate::tenant`].

use std::collections::{BTreeMap, BTreeSet};

use super::identity::MAX_VNI_NETWORK_ID_LEN;
use super::{Checker, Operation, Rule, ValidationErrors, is_dynamic_type};
use crate::names::{dns_subdomain_problem, file_component_problem, ifname_problem};
use crate::tenant::{
    TenantConfigSpec, ValidHostDevice, ValidTenantConfig, VniKind, VniPool, parse_vni_range,
};

/// Check a TenantConfig named `name` against every rule; returns the parsed configuration
/// or every broken rule (paths under `spec.`, as plexus' `plexus.io/v1` object has them).
pub fn validate_tenant_config(
    name: &str,
    spec: &TenantConfigSpec,
    op: Operation,
) -> Result<ValidTenantConfig, ValidationErrors> {
    let mut c = Checker::default();
    if let Some(problem) = dns_subdomain_problem(name) {
        c.report(Rule::MetadataName, "metadata.name", name, problem);
    }
    if spec.host_devices.is_empty() && spec.network_ids.is_empty() {
        c.report(
            Rule::TenantConfigEmpty,
            "spec",
            "",
            "a TenantConfig needs hostDevices or networkIds (or both)",
        );
    }
    let mut devices = Vec::with_capacity(spec.host_devices.len());
    let mut seen = BTreeSet::new();
    for (i, device) in spec.host_devices.iter().enumerate() {
        let path = format!("spec.hostDevices[{i}]");
        let is_device_pool = device.name.contains('/');
        let name_problem = if device.name.is_empty() {
            Some("must not be empty".to_owned())
        } else if is_device_pool {
            // A device-plugin resource name, `vendor.domain/resource`.
            device_pool_problem(&device.name)
        } else {
            ifname_problem(&device.name).map(|p| format!("not an interface name: {p}"))
        };
        if let Some(problem) = name_problem {
            c.report(
                Rule::TenantDeviceName,
                format!("{path}.name"),
                &device.name,
                problem,
            );
        } else if !seen.insert(device.name.as_str()) {
            c.report(
                Rule::TenantDeviceDuplicate,
                format!("{path}.name"),
                &device.name,
                "listed twice; a TenantNetwork naming this device could not tell which \
                 entry applies",
            );
        }
        let vni = match (device.vni_type.is_empty(), device.vni_range.is_empty()) {
            (true, true) => None,
            (false, true) | (true, false) => {
                let (field, missing) = if device.vni_range.is_empty() {
                    ("vniType", "vniRange")
                } else {
                    ("vniRange", "vniType")
                };
                let value = if field == "vniType" {
                    &device.vni_type
                } else {
                    &device.vni_range
                };
                c.report(
                    Rule::VniIncomplete,
                    format!("{path}.{field}"),
                    value,
                    format!("{field} needs {missing}: set both or neither"),
                );
                None
            }
            (false, false) => match VniKind::parse(&device.vni_type) {
                None => {
                    c.report(
                        Rule::VniTypeInvalid,
                        format!("{path}.vniType"),
                        &device.vni_type,
                        "must be vlan or vxlan",
                    );
                    None
                }
                Some(kind) => match parse_vni_range(&device.vni_range, kind) {
                    Ok(ranges) => Some(VniPool { kind, ranges }),
                    Err(problem) => {
                        c.report(
                            Rule::VniRangeInvalid,
                            format!("{path}.vniRange"),
                            &device.vni_range,
                            problem,
                        );
                        None
                    }
                },
            },
        };
        if !device.alloc.is_empty() && op == Operation::Create {
            c.report(
                Rule::AllocOnCreate,
                format!("{path}.alloc"),
                &device.alloc,
                "the VNI bitmap is never written by hand; remove it",
            );
        }
        devices.push(ValidHostDevice {
            name: device.name.clone(),
            is_device_pool,
            vni,
        });
    }
    let mut network_ids = BTreeMap::new();
    for (network_type, id) in &spec.network_ids {
        let path = format!("spec.networkIds[{network_type}]");
        if let Some(problem) = file_component_problem(network_type) {
            c.report(
                Rule::NetworkTypeUnsafe,
                &path,
                network_type,
                format!("the key is a NetworkType, which names a CNI binary: {problem}"),
            );
        }
        if id.is_empty() {
            c.report(Rule::NetworkIdEmpty, &path, id, "must not be empty");
        } else if let Some(problem) = file_component_problem(id) {
            c.report(
                Rule::NetworkIdUnsafe,
                &path,
                id,
                format!("{problem}; it names files and host interfaces"),
            );
        } else if is_dynamic_type(network_type) && id.len() > MAX_VNI_NETWORK_ID_LEN {
            c.report(
                Rule::NetworkIdTooLong,
                &path,
                id,
                format!(
                    "is {} bytes; a {network_type} TenantNetwork gets a VLAN or VxLAN, so its \
                     NetworkID may have at most {MAX_VNI_NETWORK_ID_LEN}",
                    id.len()
                ),
            );
        }
        if network_ids
            .insert(network_type.to_ascii_lowercase(), id.clone())
            .is_some()
        {
            c.report(
                Rule::NetworkIdsDuplicate,
                &path,
                network_type,
                "another key names the same NetworkType (they match case-insensitively)",
            );
        }
    }
    if !c.found.is_empty() {
        return Err(ValidationErrors {
            network: name.to_owned(),
            violations: c.found,
        });
    }
    Ok(ValidTenantConfig {
        name: name.to_owned(),
        host_devices: devices,
        network_ids,
    })
}

/// Why `name` is not a device-plugin resource name (`domain/resource`), if it is not.
fn device_pool_problem(name: &str) -> Option<String> {
    let (domain, resource) = name.split_once('/')?;
    if let Some(problem) = dns_subdomain_problem(domain) {
        return Some(format!("the part before '/' {problem}"));
    }
    let ok = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.');
    if resource.is_empty() || resource.len() > 63 || !resource.chars().all(ok) {
        return Some(
            "the part after '/' must be 1 to 63 letters, digits, '-', '_' or '.'".to_owned(),
        );
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tenant::HostDevice;

    fn device(name: &str, vni_type: &str, vni_range: &str) -> HostDevice {
        HostDevice {
            name: name.to_owned(),
            vni_type: vni_type.to_owned(),
            vni_range: vni_range.to_owned(),
            alloc: String::new(),
        }
    }

    fn valid() -> TenantConfigSpec {
        TenantConfigSpec {
            host_devices: vec![
                device("ens4", "vlan", "700-710,750"),
                device("ens5", "vxlan", "100000-100100"),
                device("nokia.k8s.io/sriov_ens1f0", "vlan", "1200-1300"),
                device("ens6", "", ""),
            ],
            network_ids: BTreeMap::from([
                ("ipvlan".to_owned(), "internal".to_owned()),
                ("flannel".to_owned(), "a-long-flannel-network-id".to_owned()),
            ]),
        }
    }

    #[track_caller]
    fn breaks(spec: &TenantConfigSpec, op: Operation, rule: Rule, path: &str) {
        let err = validate_tenant_config("tenants", spec, op).unwrap_err();
        assert!(
            err.violations
                .iter()
                .any(|v| v.rule == rule && v.path == path),
            "expected {rule:?} at {path}, got {err}"
        );
    }

    #[test]
    fn a_valid_config_is_parsed() {
        let config = validate_tenant_config("tenants", &valid(), Operation::Create).unwrap();
        assert_eq!(config.host_devices.len(), 4);
        let ens4 = &config.host_devices[0];
        assert!(!ens4.is_device_pool);
        let pool = ens4.vni.as_ref().unwrap();
        assert_eq!(pool.kind, VniKind::Vlan);
        assert_eq!(pool.len(), 12);
        assert!(config.host_devices[2].is_device_pool);
        assert_eq!(config.host_devices[3].vni, None);
        assert_eq!(config.network_ids["ipvlan"], "internal");
    }

    #[test]
    fn empty_configs_are_refused() {
        breaks(
            &TenantConfigSpec::default(),
            Operation::Create,
            Rule::TenantConfigEmpty,
            "spec",
        );
        let only_ids = TenantConfigSpec {
            network_ids: BTreeMap::from([("ipvlan".to_owned(), "x".to_owned())]),
            ..TenantConfigSpec::default()
        };
        assert!(validate_tenant_config("t", &only_ids, Operation::Create).is_ok());
    }

    #[test]
    fn device_names() {
        for bad in [
            "",
            "a-very-long-interface-name",
            "eth 0",
            "bad_domain/x",
            "a.b/",
        ] {
            let mut spec = valid();
            spec.host_devices[0].name = bad.to_owned();
            breaks(
                &spec,
                Operation::Create,
                Rule::TenantDeviceName,
                "spec.hostDevices[0].name",
            );
        }
        let mut spec = valid();
        spec.host_devices[1].name = "ens4".to_owned();
        breaks(
            &spec,
            Operation::Create,
            Rule::TenantDeviceDuplicate,
            "spec.hostDevices[1].name",
        );
    }

    #[test]
    fn vni_type_and_range() {
        let mut spec = valid();
        spec.host_devices[0].vni_range = String::new();
        breaks(
            &spec,
            Operation::Create,
            Rule::VniIncomplete,
            "spec.hostDevices[0].vniType",
        );
        let mut spec = valid();
        spec.host_devices[0].vni_type = String::new();
        breaks(
            &spec,
            Operation::Create,
            Rule::VniIncomplete,
            "spec.hostDevices[0].vniRange",
        );
        let mut spec = valid();
        spec.host_devices[0].vni_type = "VLAN".to_owned();
        breaks(
            &spec,
            Operation::Create,
            Rule::VniTypeInvalid,
            "spec.hostDevices[0].vniType",
        );
        for bad in ["4095", "0-10", "10-5", "7OO"] {
            let mut spec = valid();
            spec.host_devices[0].vni_range = bad.to_owned();
            breaks(
                &spec,
                Operation::Create,
                Rule::VniRangeInvalid,
                "spec.hostDevices[0].vniRange",
            );
        }
        // Above DANM's 5000 cap, inside VxLAN's range: plexus accepts it.
        assert!(validate_tenant_config("t", &valid(), Operation::Create).is_ok());
    }

    #[test]
    fn alloc_only_on_update() {
        let mut spec = valid();
        spec.host_devices[0].alloc = "gAAA".to_owned();
        breaks(
            &spec,
            Operation::Create,
            Rule::AllocOnCreate,
            "spec.hostDevices[0].alloc",
        );
        assert!(validate_tenant_config("t", &spec, Operation::Update).is_ok());
    }

    #[test]
    fn network_ids() {
        let mut spec = valid();
        spec.network_ids
            .insert("macvlan".to_owned(), "eleven-char".to_owned());
        spec.network_ids.insert("sriov".to_owned(), String::new());
        spec.network_ids
            .insert("bad/type".to_owned(), "x".to_owned());
        spec.network_ids
            .insert("bridge".to_owned(), "a/b".to_owned());
        spec.network_ids.insert("IPVLAN".to_owned(), "x".to_owned());
        let err = validate_tenant_config("t", &spec, Operation::Create).unwrap_err();
        let rules: Vec<(Rule, &str)> = err
            .violations
            .iter()
            .map(|v| (v.rule, v.path.as_str()))
            .collect();
        for expected in [
            (Rule::NetworkIdTooLong, "spec.networkIds[macvlan]"),
            (Rule::NetworkIdEmpty, "spec.networkIds[sriov]"),
            (Rule::NetworkTypeUnsafe, "spec.networkIds[bad/type]"),
            (Rule::NetworkIdUnsafe, "spec.networkIds[bridge]"),
        ] {
            assert!(rules.contains(&expected), "{expected:?} not in {err}");
        }
        // "IPVLAN" and "ipvlan" are one type.
        assert!(
            err.violations
                .iter()
                .any(|v| v.rule == Rule::NetworkIdsDuplicate),
            "{err}"
        );
    }
}
