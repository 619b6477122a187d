//! The network definition, field for field as DANM writes it, plus plexus' own section.
//!
//! DANM's three network kinds (`DanmNet`, `ClusterNetwork`, `TenantNetwork`) share one spec.
//! Its JSON keys are unusual and case-sensitive: capitalised `NetworkID`, `NetworkType`,
//! `AllowedTenants`, `Options`, and snake_case options. They are kept verbatim here so a
//! DANM object exported with `kubectl get -o yaml` parses unchanged.
//!
//! Every value is kept as written (strings stay strings, numbers stay signed): parsing is
//! lenient so that [`crate::validate()`] can report *every* broken rule at once, with the
//! field path and the value, instead of stopping at the first type error. Unknown keys in
//! `spec` and below are refused, as DANM's webhook does: a misspelt option silently ignored
//! would hand out addresses the operator did not mean to.
//!
//! plexus' own settings (exclusions, extra reserved addresses, per-node block sizes) live in
//! `spec.plexus`, clearly apart from DANM's fields.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

/// `apiVersion` values accepted for network objects: DANM's two API groups and plexus' own.
pub const API_VERSIONS: &[&str] = &["danm.k8s.io/v1", "danm.io/v1", "plexus.io/v1"];

/// Which of DANM's three network APIs an object belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum NetworkKind {
    /// Namespaced, with every option; `AllowedTenants` is forbidden.
    DanmNet,
    /// Cluster-scoped; `AllowedTenants` restricts which namespaces may use it.
    ClusterNetwork,
    /// Namespaced; host resources are assigned by the administrator, so VLAN/VxLAN ids may
    /// not be chosen on create.
    TenantNetwork,
}

impl NetworkKind {
    /// Whether objects of this kind live in a namespace.
    pub fn is_namespaced(self) -> bool {
        !matches!(self, NetworkKind::ClusterNetwork)
    }

    /// The kind as written in `kind:`.
    pub fn as_str(self) -> &'static str {
        match self {
            NetworkKind::DanmNet => "DanmNet",
            NetworkKind::ClusterNetwork => "ClusterNetwork",
            NetworkKind::TenantNetwork => "TenantNetwork",
        }
    }
}

impl fmt::Display for NetworkKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A whole network document: `apiVersion`, `kind`, `metadata`, `spec`.
///
/// Top-level keys other than these (`status`, which some DANM forks write) are ignored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NetworkObject {
    /// `danm.k8s.io/v1`, `danm.io/v1` or `plexus.io/v1` (checked by validation).
    pub api_version: String,
    /// Which network API.
    pub kind: NetworkKind,
    /// Name, namespace, labels, annotations.
    #[serde(default)]
    pub metadata: ObjectMeta,
    /// The network itself.
    pub spec: NetworkSpec,
}

impl NetworkObject {
    /// The identity plexus stores the network under: `name` for a ClusterNetwork,
    /// `namespace/name` for the namespaced kinds (namespace `default` when unset).
    pub fn qualified_name(&self) -> String {
        qualified_name(self.kind, &self.metadata)
    }
}

/// `name` for cluster-scoped kinds, `namespace/name` otherwise (namespace `default` if unset).
pub(crate) fn qualified_name(kind: NetworkKind, meta: &ObjectMeta) -> String {
    if kind.is_namespaced() {
        format!("{}/{}", meta.namespace_or_default(), meta.name)
    } else {
        meta.name.clone()
    }
}

/// A list of network objects, as `kubectl get -o yaml` prints several (`kind: List`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NetworkList {
    /// Usually `v1`.
    #[serde(default)]
    pub api_version: String,
    /// `List`, `DanmNetList`, `ClusterNetworkList` or `TenantNetworkList`.
    #[serde(default)]
    pub kind: String,
    /// The objects.
    #[serde(default)]
    pub items: Vec<NetworkObject>,
}

/// The parts of Kubernetes object metadata plexus keeps; others (`managedFields`,
/// `creationTimestamp`, …) are ignored on input.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ObjectMeta {
    /// Object name.
    #[serde(default)]
    pub name: String,
    /// Namespace (namespaced kinds only; `default` when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Labels.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// Annotations.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    /// Kubernetes' object UID, kept for provenance on import.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uid: Option<String>,
    /// Kubernetes' resource version, kept for provenance on import.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_version: Option<String>,
}

impl ObjectMeta {
    /// The namespace, or `default`.
    pub fn namespace_or_default(&self) -> &str {
        self.namespace
            .as_deref()
            .filter(|ns| !ns.is_empty())
            .unwrap_or("default")
    }
}

/// DANM's `DanmNetSpec`, shared by the three kinds, plus plexus' own section.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NetworkSpec {
    /// A second identifier: names static delegate configs (`<NetworkID>.conf`) and host
    /// VLAN/VxLAN interfaces (`<NetworkID>.<vlan>`, `vx_<NetworkID>`).
    #[serde(rename = "NetworkID", default)]
    pub network_id: String,
    /// `ipvlan` (the default), `macvlan`, `sriov`, or any CNI binary name (a static delegate).
    #[serde(
        rename = "NetworkType",
        default,
        skip_serializing_if = "String::is_empty"
    )]
    pub network_type: String,
    /// ClusterNetwork only: namespaces allowed to use the network; empty means all.
    #[serde(
        rename = "AllowedTenants",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub allowed_tenants: Option<Vec<String>>,
    /// DANM's options.
    #[serde(rename = "Options", default)]
    pub options: NetworkOptions,
    /// plexus' own settings; not part of DANM's schema.
    #[serde(default, skip_serializing_if = "PlexusOptions::is_empty")]
    pub plexus: PlexusOptions,
}

/// DANM's `Options`, keys exactly as DANM writes them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NetworkOptions {
    /// Parent NIC for ipvlan/macvlan and base device for VLAN/VxLAN interfaces.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub host_device: String,
    /// Kubernetes device-plugin resource name (e.g. `nokia.k8s.io/sriov_ens1f0`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub device_pool: String,
    /// The IPv4 network. Any size from /8 to /30 (DANM stopped at /9 because of its bitmap).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub cidr: String,
    /// IPv4 dynamic allocation range inside `cidr`.
    #[serde(default, skip_serializing_if = "IpPool::is_empty")]
    pub allocation_pool: IpPool,
    /// IPv4 routes: destination CIDR → gateway (inside `cidr`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub routes: BTreeMap<String, String>,
    /// DANM's IPv4 allocation bitmap (base64); plexus keeps allocations in its store.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub alloc: String,
    /// The IPv6 network.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub net6: String,
    /// IPv6 dynamic allocation range; its `cidr` lies inside `net6`.
    #[serde(default, skip_serializing_if = "IpPoolV6::is_empty")]
    pub allocation_pool_v6: IpPoolV6,
    /// IPv6 routes: destination CIDR → gateway (inside `net6`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub routes6: BTreeMap<String, String>,
    /// DANM's IPv6 allocation bitmap (base64), indexed from `allocation_pool_v6.cidr`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub alloc6: String,
    /// Prefix of container interface names (`<prefix><index>`; index 0 is always `eth0`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub container_prefix: String,
    /// Routing table for the policy routes of the attachment (0..=255; 0 means none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rt_tables: Option<i64>,
    /// VLAN id (1..=4094; 0 means none). Excludes `vxlan`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vlan: Option<i64>,
    /// VxLAN VNI (1..=16777214; 0 means none). Excludes `vlan`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vxlan: Option<i64>,
}

/// DANM's IPv4 `allocation_pool`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IpPool {
    /// First address handed out dynamically (default: network address + 1).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub start: String,
    /// Last address handed out dynamically (default: broadcast address − 1).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub end: String,
    /// DANM's last allocated address (`a.b.c.d/nn`); informational, plexus ignores it.
    #[serde(rename = "lastIp", default, skip_serializing_if = "String::is_empty")]
    pub last_ip: String,
}

impl IpPool {
    /// Whether no field is set.
    pub fn is_empty(&self) -> bool {
        self.start.is_empty() && self.end.is_empty() && self.last_ip.is_empty()
    }
}

/// DANM's `allocation_pool_v6`: like [`IpPool`] plus the allocation CIDR.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IpPoolV6 {
    /// The IPv6 allocation CIDR inside `net6` (default: `net6` itself in plexus; DANM
    /// narrowed it to /105 or longer because of its bitmap). DANM's `alloc6` is indexed from it.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub cidr: String,
    /// First address handed out dynamically (default: allocation CIDR + 1).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub start: String,
    /// Last address handed out dynamically (default: last address of the CIDR − 1).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub end: String,
    /// DANM's last allocated address; informational, plexus ignores it.
    #[serde(rename = "lastIp", default, skip_serializing_if = "String::is_empty")]
    pub last_ip: String,
}

impl IpPoolV6 {
    /// Whether no field is set.
    pub fn is_empty(&self) -> bool {
        self.cidr.is_empty()
            && self.start.is_empty()
            && self.end.is_empty()
            && self.last_ip.is_empty()
    }
}

/// plexus' own settings, under `spec.plexus` (snake_case like DANM's options).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlexusOptions {
    /// CIDRs never handed out, dynamically or statically (IPv4 ones apply to `cidr`, IPv6
    /// ones to `net6`). A single address is written as `/32` or `/128`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exclude: Vec<String>,
    /// Single addresses kept out of allocation and shown as reserved (e.g. VRRP addresses,
    /// routers not named in `routes`). Each lies inside `cidr` or `net6`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reserved: Vec<String>,
    /// Prefix length of the per-node IPv4 address blocks (like Calico's `blockSize`), from 20
    /// to 30 and not shorter than the prefix of `cidr`. Unset: the allocator's default (26).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub block_size: Option<i64>,
    /// Prefix length of the per-node IPv6 address blocks, from 116 to 126 and not shorter
    /// than the IPv6 allocation CIDR. Unset: the allocator's default (122).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub block_size6: Option<i64>,
    /// `duplicateAddressCheck` (also spelled `duplicate_address_check`): before an ADD
    /// succeeds, probe each new address on the segment (IPv4 ARP probe, IPv6 DAD); an
    /// address another host already uses is quarantined and another one is taken.
    #[serde(
        rename = "duplicateAddressCheck",
        alias = "duplicate_address_check",
        default,
        skip_serializing_if = "std::ops::Not::not"
    )]
    pub duplicate_address_check: bool,
}

impl PlexusOptions {
    /// Whether no field is set.
    pub fn is_empty(&self) -> bool {
        self.exclude.is_empty()
            && self.reserved.is_empty()
            && self.block_size.is_none()
            && self.block_size6.is_none()
            && !self.duplicate_address_check
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A DanmNet as DANM's webhook leaves it (defaults filled, bitmap written).
    const DANM_JSON: &str = r#"{
      "apiVersion": "danm.k8s.io/v1",
      "kind": "DanmNet",
      "metadata": {"name": "internal", "namespace": "default", "generation": 7,
                   "creationTimestamp": "2021-05-06T10:00:00Z"},
      "spec": {
        "NetworkID": "internal",
        "NetworkType": "ipvlan",
        "Options": {
          "host_device": "ens4",
          "cidr": "10.100.100.0/24",
          "allocation_pool": {"start": "10.100.100.1", "end": "10.100.100.254", "lastIp": "10.100.100.1/24"},
          "routes": {"10.20.0.0/16": "10.100.100.1"},
          "alloc": "wAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAE=",
          "net6": "2001:db8::/64",
          "allocation_pool_v6": {"cidr": "2001:db8::/106", "start": "2001:db8::1", "end": "2001:db8::3f:fffe"},
          "container_prefix": "int",
          "rt_tables": 200,
          "vlan": 500
        }
      },
      "status": {"reservedIPs": []}
    }"#;

    #[test]
    fn reads_a_danm_object_with_its_exact_keys() -> Result<(), serde_json::Error> {
        let net: NetworkObject = serde_json::from_str(DANM_JSON)?;
        assert_eq!(net.kind, NetworkKind::DanmNet);
        assert_eq!(net.metadata.name, "internal");
        assert_eq!(net.spec.network_id, "internal");
        assert_eq!(net.spec.network_type, "ipvlan");
        let o = &net.spec.options;
        assert_eq!(o.host_device, "ens4");
        assert_eq!(o.cidr, "10.100.100.0/24");
        assert_eq!(o.allocation_pool.start, "10.100.100.1");
        assert_eq!(o.allocation_pool.last_ip, "10.100.100.1/24");
        assert_eq!(
            o.routes.get("10.20.0.0/16").map(String::as_str),
            Some("10.100.100.1")
        );
        assert_eq!(o.allocation_pool_v6.cidr, "2001:db8::/106");
        assert_eq!(o.rt_tables, Some(200));
        assert_eq!(o.vlan, Some(500));
        assert_eq!(o.vxlan, None);
        assert!(net.spec.plexus.is_empty());
        assert_eq!(net.qualified_name(), "default/internal");
        Ok(())
    }

    #[test]
    fn writes_danm_keys_back_verbatim() -> Result<(), serde_json::Error> {
        let net: NetworkObject = serde_json::from_str(DANM_JSON)?;
        let text = serde_json::to_string(&net)?;
        for key in [
            "\"NetworkID\"",
            "\"NetworkType\"",
            "\"Options\"",
            "\"host_device\"",
            "\"allocation_pool\"",
            "\"lastIp\"",
            "\"allocation_pool_v6\"",
            "\"container_prefix\"",
            "\"rt_tables\"",
            "\"apiVersion\"",
        ] {
            assert!(text.contains(key), "{key} missing from {text}");
        }
        assert!(
            !text.contains("\"plexus\""),
            "empty plexus section written: {text}"
        );
        let again: NetworkObject = serde_json::from_str(&text)?;
        assert_eq!(again, net);
        Ok(())
    }

    #[test]
    fn unknown_option_keys_are_refused() {
        let typo = r#"{"apiVersion":"danm.io/v1","kind":"ClusterNetwork","metadata":{"name":"a"},
                      "spec":{"NetworkID":"a","Options":{"cdir":"10.0.0.0/24"}}}"#;
        let err = serde_json::from_str::<NetworkObject>(typo)
            .map(|_| ())
            .unwrap_err();
        assert!(err.to_string().contains("cdir"), "{err}");
        let lower = r#"{"apiVersion":"danm.io/v1","kind":"DanmNet","spec":{"networkID":"a"}}"#;
        assert!(serde_json::from_str::<NetworkObject>(lower).is_err());
    }

    #[test]
    fn unknown_kinds_are_refused() {
        let doc = r#"{"apiVersion":"danm.io/v1","kind":"DanmEp","spec":{}}"#;
        assert!(serde_json::from_str::<NetworkObject>(doc).is_err());
    }

    #[test]
    fn plexus_section_round_trips() -> Result<(), serde_json::Error> {
        let doc = r#"{"apiVersion":"plexus.io/v1","kind":"ClusterNetwork","metadata":{"name":"big"},
          "spec":{"NetworkID":"big","Options":{"cidr":"10.0.0.0/8"},
                  "plexus":{"exclude":["10.0.0.0/24"],"reserved":["10.0.1.1"],"block_size":26}}}"#;
        let net: NetworkObject = serde_json::from_str(doc)?;
        assert_eq!(net.spec.plexus.exclude, vec!["10.0.0.0/24".to_owned()]);
        assert_eq!(net.spec.plexus.block_size, Some(26));
        assert_eq!(net.qualified_name(), "big");
        let again: NetworkObject = serde_json::from_str(&serde_json::to_string(&net)?)?;
        assert_eq!(again, net);
        Ok(())
    }

    #[test]
    fn kubectl_lists_parse() -> Result<(), serde_json::Error> {
        let doc = format!(r#"{{"apiVersion":"v1","kind":"List","items":[{DANM_JSON}]}}"#);
        let list: NetworkList = serde_json::from_str(&doc)?;
        assert_eq!(list.items.len(), 1);
        assert_eq!(list.items[0].spec.options.vlan, Some(500));
        Ok(())
    }
}
