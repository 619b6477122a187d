//! plexus' `plexus.io/v1` `TenantConfig` (cluster-scoped): the host devices TenantNetworks
//! may be put on, the VLAN/VxLAN ids each hands out, and the `NetworkID` per network type.
//! DANM's TenantConfig fields, under `spec`; the rules are `plexus_model`'s
//! ([`plexus_model::validate_tenant_config`]). The ids in use are not kept in the object
//! (DANM's `alloc` bitmap): plexus keeps allocations in its store.

use std::collections::BTreeMap;

use kube::CustomResource;
use plexus_model::{Operation, ValidTenantConfig, ValidationErrors};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A cpuset-style id list: `2000-2500,2601,2650-2700`.
const VNI_RANGE: &str = r"^[0-9]+(-[0-9]+)?(,[0-9]+(-[0-9]+)?)*$";

/// The spec of a `plexus.io/v1` TenantConfig.
#[derive(
    CustomResource, Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema,
)]
#[kube(
    group = "plexus.io",
    version = "v1",
    kind = "TenantConfig",
    shortname = "ptc",
    shortname = "ptconf",
    category = "plexus",
    derive = "PartialEq",
    doc = "Host devices and VLAN/VxLAN ids TenantNetworks may use, and their NetworkIDs.",
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
pub struct TenantConfigSpec {
    /// Devices (interfaces, or device-plugin pools `domain/resource`) tenants may use.
    #[serde(rename = "hostDevices", default, skip_serializing_if = "Vec::is_empty")]
    pub host_devices: Vec<TenantDevice>,
    /// `NetworkType` → the `NetworkID` a TenantNetwork of that type is given.
    #[serde(
        rename = "networkIds",
        default,
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub network_ids: BTreeMap<String, String>,
}

/// One device of a TenantConfig.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct TenantDevice {
    /// Interface name, or device-plugin resource name.
    #[schemars(length(min = 1))]
    pub name: String,
    /// What kind of id a TenantNetwork on this device is given.
    #[serde(rename = "vniType", default, skip_serializing_if = "Option::is_none")]
    pub vni_type: Option<VniType>,
    /// The ids handed out, cpuset-style.
    #[serde(rename = "vniRange", default, skip_serializing_if = "String::is_empty")]
    #[schemars(pattern(VNI_RANGE))]
    pub vni_range: String,
}

/// `vlan` or `vxlan`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum VniType {
    /// 802.1Q VLAN ids.
    Vlan,
    /// VxLAN network identifiers.
    Vxlan,
}

impl VniType {
    /// As written in `vniType`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Vlan => "vlan",
            Self::Vxlan => "vxlan",
        }
    }
}

impl TenantConfig {
    /// The configuration as `plexus_model` reads it.
    pub fn to_model(&self) -> plexus_model::TenantConfigSpec {
        plexus_model::TenantConfigSpec {
            host_devices: self
                .spec
                .host_devices
                .iter()
                .map(|d| plexus_model::HostDevice {
                    name: d.name.clone(),
                    vni_type: d
                        .vni_type
                        .map(VniType::as_str)
                        .unwrap_or_default()
                        .to_owned(),
                    vni_range: d.vni_range.clone(),
                    alloc: String::new(),
                })
                .collect(),
            network_ids: self.spec.network_ids.clone(),
        }
    }

    /// Check the configuration against every rule of `plexus_model`.
    pub fn validate(&self, op: Operation) -> Result<ValidTenantConfig, ValidationErrors> {
        plexus_model::validate_tenant_config(
            self.metadata.name.as_deref().unwrap_or_default(),
            &self.to_model(),
            op,
        )
    }
}

#[cfg(test)]
mod tests {
    use plexus_model::{Operation, Rule, VniKind};

    use super::*;

    fn config() -> TenantConfig {
        TenantConfig::new(
            "tenants",
            TenantConfigSpec {
                host_devices: vec![
                    TenantDevice {
                        name: "ens4".into(),
                        vni_type: Some(VniType::Vlan),
                        vni_range: "700-710,750".into(),
                    },
                    TenantDevice {
                        name: "nokia.k8s.io/sriov_ens1f0".into(),
                        vni_type: None,
                        vni_range: String::new(),
                    },
                ],
                network_ids: BTreeMap::from([("ipvlan".into(), "internal".into())]),
            },
        )
    }

    #[test]
    fn a_config_validates_through_the_model() {
        let valid = config().validate(Operation::Create).unwrap();
        assert_eq!(valid.name, "tenants");
        let pool = valid.host_devices[0].vni.as_ref().unwrap();
        assert_eq!(pool.kind, VniKind::Vlan);
        assert_eq!(pool.len(), 12);
        assert!(valid.host_devices[1].is_device_pool);
    }

    #[test]
    fn the_model_rules_apply() {
        let mut bad = config();
        bad.spec.host_devices[0].vni_range = "4000-5000".into();
        bad.spec.host_devices[1].vni_type = Some(VniType::Vxlan);
        let errors = bad.validate(Operation::Create).unwrap_err();
        assert!(errors.has(Rule::VniRangeInvalid), "{errors}");
        assert!(errors.has(Rule::VniIncomplete), "{errors}");
    }

    #[test]
    fn keys_are_danms() -> Result<(), serde_json::Error> {
        let text = serde_json::to_string(&config())?;
        assert!(
            text.contains(r#""apiVersion":"plexus.io/v1","kind":"TenantConfig""#),
            "{text}"
        );
        assert!(
            text.contains(
                r#""hostDevices":[{"name":"ens4","vniType":"vlan","vniRange":"700-710,750"}"#
            ),
            "{text}"
        );
        assert!(
            text.contains(r#""networkIds":{"ipvlan":"internal"}"#),
            "{text}"
        );
        Ok(())
    }
}
