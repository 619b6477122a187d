//! The tenant configuration: which host devices TenantNetworks may use, with which VLAN or
//! VxLAN ids, and which `NetworkID` each network type gets. DANM's `TenantConfig`, keys as
//! DANM writes them (`hostDevices`, `vniType`, `vniRange`, `networkIds`).
//!
//! DANM's TenantConfig has no `spec`: these fields sit at the top level of its object.
//! plexus' `plexus.io/v1` TenantConfig keeps them under `spec`, and its validation messages
//! name them so (`spec.hostDevices[0].vniRange`).
//!
//! Rules (DANM's webhook, `pkg/admit`, plus plexus' own, see [`validate_tenant_config`]):
//! at least one device or NetworkID mapping; every device named; `vniType` and `vniRange`
//! together, the type `vlan` or `vxlan`, the range a cpuset-style list (`2000-2500,2601`);
//! no `alloc` on create; NetworkIDs non-empty, safe as file names and, for the dynamic types,
//! at most 10 bytes. plexus departs from DANM in two places: VNIs go up to the protocol's
//! limit (VLAN 4094, VxLAN 16777214) instead of DANM's bitmap cap of 5000 for both, and a
//! device name listed twice is refused (DANM would pick one of them at random).

use std::collections::BTreeMap;
use std::fmt;
use std::ops::RangeInclusive;

use serde::{Deserialize, Serialize};

/// The fields of a TenantConfig.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TenantConfigSpec {
    /// Devices (NICs or device-plugin pools) TenantNetworks may be put on.
    #[serde(rename = "hostDevices", default, skip_serializing_if = "Vec::is_empty")]
    pub host_devices: Vec<HostDevice>,
    /// `NetworkType` → the `NetworkID` a TenantNetwork of that type is given.
    #[serde(
        rename = "networkIds",
        default,
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub network_ids: BTreeMap<String, String>,
}

/// One entry of `hostDevices`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HostDevice {
    /// A host interface name, or a device-plugin resource name (those contain `/`).
    #[serde(default)]
    pub name: String,
    /// `vlan` or `vxlan`: what kind of id a TenantNetwork on this device is given.
    #[serde(rename = "vniType", default, skip_serializing_if = "String::is_empty")]
    pub vni_type: String,
    /// The ids to hand out, cpuset-style: `2000-2500,2601,2650-2700`.
    #[serde(rename = "vniRange", default, skip_serializing_if = "String::is_empty")]
    pub vni_range: String,
    /// DANM's bitmap of the ids in use (filled in by its webhook, never by users).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub alloc: String,
}

/// The kind of id a device hands out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum VniKind {
    /// 802.1Q VLAN ids, 1..=4094.
    Vlan,
    /// VxLAN network identifiers, 1..=16777214.
    Vxlan,
}

impl VniKind {
    /// The kind named by `vniType`, if it is one.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "vlan" => Some(Self::Vlan),
            "vxlan" => Some(Self::Vxlan),
            _ => None,
        }
    }

    /// The highest id of the kind (the lowest is 1).
    pub fn max(self) -> u32 {
        match self {
            Self::Vlan => 4094,
            Self::Vxlan => 16_777_214,
        }
    }

    /// `vlan` or `vxlan`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Vlan => "vlan",
            Self::Vxlan => "vxlan",
        }
    }
}

impl fmt::Display for VniKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The ids a device hands out: the kind, and the ranges sorted and merged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VniPool {
    /// VLAN or VxLAN.
    pub kind: VniKind,
    /// Disjoint, ascending, non-adjacent ranges.
    pub ranges: Vec<RangeInclusive<u32>>,
}

impl VniPool {
    /// How many ids the pool holds.
    pub fn len(&self) -> u64 {
        self.ranges
            .iter()
            .map(|r| u64::from(*r.end()) - u64::from(*r.start()) + 1)
            .sum()
    }

    /// Whether the pool holds no id (never true for a validated pool).
    pub fn is_empty(&self) -> bool {
        self.ranges.is_empty()
    }

    /// Whether `id` is in the pool.
    pub fn contains(&self, id: u32) -> bool {
        self.ranges.iter().any(|r| r.contains(&id))
    }
}

/// One validated device.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ValidHostDevice {
    /// Interface or device-pool name.
    pub name: String,
    /// Whether the name is a device-plugin pool (it contains `/`) rather than an interface.
    pub is_device_pool: bool,
    /// The ids the device hands out, if it has a `vniType`.
    pub vni: Option<VniPool>,
}

/// A TenantConfig that passed validation.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ValidTenantConfig {
    /// The object's name.
    pub name: String,
    /// The devices, in the order written.
    pub host_devices: Vec<ValidHostDevice>,
    /// `NetworkType` (lower-cased: DANM matches it case-insensitively) → `NetworkID`.
    pub network_ids: BTreeMap<String, String>,
}

/// Why a `vniRange` does not parse: a short reason.
pub fn parse_vni_range(text: &str, kind: VniKind) -> Result<Vec<RangeInclusive<u32>>, String> {
    let mut ranges = Vec::new();
    for part in text.split(',') {
        let (lo, hi) = match part.split_once('-') {
            Some((lo, hi)) => (lo, hi),
            None => (part, part),
        };
        let number = |s: &str| -> Result<u32, String> {
            if s.is_empty() || s.len() > 8 || !s.bytes().all(|b| b.is_ascii_digit()) {
                return Err(format!(
                    "{part:?} is not an id or a range of ids like 2000-2500"
                ));
            }
            s.parse::<u32>().map_err(|e| format!("{s:?}: {e}"))
        };
        let (lo, hi) = (number(lo)?, number(hi)?);
        if lo > hi {
            return Err(format!("{part:?} runs backwards; write the lower id first"));
        }
        if lo == 0 || hi > kind.max() {
            return Err(format!(
                "{part:?} leaves the {kind} ids; they run from 1 to {}",
                kind.max()
            ));
        }
        ranges.push(lo..=hi);
    }
    ranges.sort_by_key(|r| *r.start());
    let mut merged: Vec<RangeInclusive<u32>> = Vec::with_capacity(ranges.len());
    for r in ranges {
        match merged.last_mut() {
            Some(last) if u64::from(*r.start()) <= u64::from(*last.end()) + 1 => {
                if r.end() > last.end() {
                    *last = *last.start()..=*r.end();
                }
            }
            _ => merged.push(r),
        }
    }
    Ok(merged)
}

pub use crate::validate::tenant::validate_tenant_config;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_danm_keys() -> Result<(), serde_json::Error> {
        let doc = r#"{"hostDevices": [{"name": "ens4", "vniType": "vlan",
                        "vniRange": "700-710,750", "alloc": "gAAA"},
                       {"name": "nokia.k8s.io/sriov_ens1f0"}],
                      "networkIds": {"ipvlan": "internal", "flannel": "flannel"}}"#;
        let spec: TenantConfigSpec = serde_json::from_str(doc)?;
        assert_eq!(spec.host_devices.len(), 2);
        assert_eq!(spec.host_devices[0].vni_range, "700-710,750");
        assert_eq!(spec.host_devices[0].alloc, "gAAA");
        assert_eq!(spec.network_ids["ipvlan"], "internal");
        let again: TenantConfigSpec = serde_json::from_str(&serde_json::to_string(&spec)?)?;
        assert_eq!(again, spec);
        assert!(serde_json::from_str::<TenantConfigSpec>(r#"{"hostDevice": []}"#).is_err());
        Ok(())
    }

    #[test]
    fn vni_ranges_parse_sort_and_merge() {
        let pool = VniPool {
            kind: VniKind::Vlan,
            ranges: parse_vni_range("2650-2700,2000-2500,2601,2501-2510,2600", VniKind::Vlan)
                .unwrap(),
        };
        assert_eq!(pool.ranges, vec![2000..=2510, 2600..=2601, 2650..=2700]);
        assert_eq!(pool.len(), 511 + 2 + 51);
        assert!(pool.contains(2601) && !pool.contains(2602));
        assert_eq!(
            parse_vni_range("16777214", VniKind::Vxlan).unwrap(),
            vec![16_777_214..=16_777_214]
        );
        for bad in [
            "", "0", "4095", "10-5", "1,,2", " 5", "5 ", "a-b", "-5", "5-", "1-2-3", "+5",
        ] {
            assert!(parse_vni_range(bad, VniKind::Vlan).is_err(), "{bad:?}");
        }
        assert!(parse_vni_range("16777215", VniKind::Vxlan).is_err());
    }
}
