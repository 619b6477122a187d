//! plexus' own network objects: `plexus.io/v1` `ClusterNetwork` (cluster-scoped, with the
//! namespaces allowed to use it) and `TenantNetwork` (namespaced).
//!
//! Their spec has the shape of DANM's (`NetworkID`, `NetworkType`, `Options` with
//! snake_case keys) plus plexus' `plexus` section, so a file `plexusctl network apply` reads
//! is also an object `kubectl apply` takes. DANM's state fields (`alloc`, `alloc6`,
//! `lastIp`) are not part of it: plexus keeps allocations in its store.
//!
//! The API server checks the shape (types, id ranges, address syntax); every rule is
//! checked by [`NetworkResource::validate`], which is `plexus_model::validate` on the object
//! converted by [`NetworkResource::to_model`]. The model is the one source of rules; the
//! schema's bounds are its constants.

use std::collections::BTreeMap;

use kube::CustomResource;
use plexus_model::validate::{
    MAX_RT_TABLE, MAX_V4_PREFIX, MAX_V6_PREFIX, MAX_VLAN, MAX_VXLAN, MIN_V4_BLOCK, MIN_V6_BLOCK,
};
use plexus_model::{IpPool, IpPoolV6, NetworkKind, NetworkObject, NetworkSpec, PlexusOptions};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::{NetworkResource, model_meta};

/// An IPv4 CIDR as the schema accepts it (the model parses it strictly), or empty.
const V4_CIDR: &str = r"^$|^([0-9]{1,3}\.){3}[0-9]{1,3}/[0-9]{1,2}$";
/// An IPv4 address, or empty.
const V4_ADDR: &str = r"^$|^([0-9]{1,3}\.){3}[0-9]{1,3}$";
/// An IPv6 CIDR, or empty.
const V6_CIDR: &str = r"^$|^[0-9a-fA-F:.]*:[0-9a-fA-F:.]*/[0-9]{1,3}$";
/// An IPv6 address, or empty.
const V6_ADDR: &str = r"^$|^[0-9a-fA-F:.]*:[0-9a-fA-F:.]*$";

/// The spec of a `plexus.io/v1` ClusterNetwork.
// clippy reads the repeated `type_ = "string"` of the printer columns as duplicates.
#[allow(clippy::duplicated_attributes)]
#[derive(
    CustomResource, Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema,
)]
#[kube(
    group = "plexus.io",
    version = "v1",
    kind = "ClusterNetwork",
    status = "NetworkStatus",
    shortname = "pcn",
    shortname = "pcnet",
    category = "plexus",
    derive = "PartialEq",
    doc = "A plexus network any namespace may use, or those listed in AllowedTenants.",
    printcolumn(name = "CIDR", type_ = "string", json_path = ".spec.Options.cidr"),
    printcolumn(name = "V6", type_ = "string", json_path = ".spec.Options.net6"),
    printcolumn(name = "Allocated", type_ = "integer", json_path = ".status.allocated"),
    printcolumn(name = "Free", type_ = "string", json_path = ".status.free"),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
pub struct ClusterNetworkSpec {
    /// A second identifier: names static delegate configs (`<NetworkID>.conf`) and host
    /// VLAN/VxLAN interfaces (`<NetworkID>.<vlan>`, `vx_<NetworkID>`).
    #[serde(rename = "NetworkID")]
    #[schemars(length(min = 1))]
    pub network_id: String,
    /// `ipvlan` (the default), `macvlan`, `sriov`, or the CNI binary of a static delegate.
    #[serde(
        rename = "NetworkType",
        default,
        skip_serializing_if = "String::is_empty"
    )]
    pub network_type: String,
    /// Namespaces allowed to use the network; empty means every namespace.
    #[serde(
        rename = "AllowedTenants",
        default,
        skip_serializing_if = "Vec::is_empty"
    )]
    pub allowed_tenants: Vec<String>,
    /// Addresses, routes, devices.
    #[serde(rename = "Options", default)]
    pub options: NetworkOptions,
    /// plexus' own settings.
    #[serde(default, skip_serializing_if = "PlexusSettings::is_empty")]
    pub plexus: PlexusSettings,
}

/// The spec of a `plexus.io/v1` TenantNetwork: a ClusterNetwork's, without AllowedTenants
/// (the network belongs to its namespace).
// clippy reads the repeated `type_ = "string"` of the printer columns as duplicates.
#[allow(clippy::duplicated_attributes)]
#[derive(
    CustomResource, Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema,
)]
#[kube(
    group = "plexus.io",
    version = "v1",
    kind = "TenantNetwork",
    namespaced,
    status = "NetworkStatus",
    shortname = "ptn",
    shortname = "ptnet",
    category = "plexus",
    derive = "PartialEq",
    doc = "A plexus network of one namespace.",
    printcolumn(name = "CIDR", type_ = "string", json_path = ".spec.Options.cidr"),
    printcolumn(name = "V6", type_ = "string", json_path = ".spec.Options.net6"),
    printcolumn(name = "Allocated", type_ = "integer", json_path = ".status.allocated"),
    printcolumn(name = "Free", type_ = "string", json_path = ".status.free"),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
pub struct TenantNetworkSpec {
    /// As in [`ClusterNetworkSpec::network_id`].
    #[serde(rename = "NetworkID")]
    #[schemars(length(min = 1))]
    pub network_id: String,
    /// As in [`ClusterNetworkSpec::network_type`].
    #[serde(
        rename = "NetworkType",
        default,
        skip_serializing_if = "String::is_empty"
    )]
    pub network_type: String,
    /// Addresses, routes, devices.
    #[serde(rename = "Options", default)]
    pub options: NetworkOptions,
    /// plexus' own settings.
    #[serde(default, skip_serializing_if = "PlexusSettings::is_empty")]
    pub plexus: PlexusSettings,
}

/// DANM's `Options`, keys as DANM writes them, without its bitmaps.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct NetworkOptions {
    /// Parent NIC for ipvlan/macvlan, base device for VLAN/VxLAN interfaces.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    #[schemars(length(max = 15))]
    pub host_device: String,
    /// Device-plugin resource of an sriov network (e.g. `nokia.k8s.io/sriov_ens1f0`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub device_pool: String,
    /// The IPv4 network, /8 to /30.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    #[schemars(pattern(V4_CIDR))]
    pub cidr: String,
    /// The IPv4 dynamic range (default: the whole network but its first and last address).
    #[serde(default, skip_serializing_if = "Pool::is_empty")]
    pub allocation_pool: Pool,
    /// IPv4 routes: destination CIDR → gateway inside `cidr`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub routes: BTreeMap<String, String>,
    /// The IPv6 network.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    #[schemars(pattern(V6_CIDR))]
    pub net6: String,
    /// The IPv6 allocation CIDR (default `net6`) and dynamic range.
    #[serde(default, skip_serializing_if = "Pool6::is_empty")]
    pub allocation_pool_v6: Pool6,
    /// IPv6 routes: destination CIDR → gateway inside `net6`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub routes6: BTreeMap<String, String>,
    /// Prefix of container interface names (`<prefix><index>`; the first is always `eth0`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    #[schemars(length(max = 15))]
    pub container_prefix: String,
    /// Routing table of the attachment's policy routes (0: none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = MAX_RT_TABLE))]
    pub rt_tables: Option<i64>,
    /// VLAN id (0: none); excludes `vxlan`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = MAX_VLAN))]
    pub vlan: Option<i64>,
    /// VxLAN VNI (0: none); excludes `vlan`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = MAX_VXLAN))]
    pub vxlan: Option<i64>,
}

/// The IPv4 dynamic range.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Pool {
    /// First address handed out.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    #[schemars(pattern(V4_ADDR))]
    pub start: String,
    /// Last address handed out.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    #[schemars(pattern(V4_ADDR))]
    pub end: String,
}

impl Pool {
    /// Whether no field is set.
    pub fn is_empty(&self) -> bool {
        self.start.is_empty() && self.end.is_empty()
    }
}

/// The IPv6 allocation CIDR and dynamic range.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Pool6 {
    /// Where addresses are handed out, inside `net6` (default: `net6`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    #[schemars(pattern(V6_CIDR))]
    pub cidr: String,
    /// First address handed out.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    #[schemars(pattern(V6_ADDR))]
    pub start: String,
    /// Last address handed out.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    #[schemars(pattern(V6_ADDR))]
    pub end: String,
}

impl Pool6 {
    /// Whether no field is set.
    pub fn is_empty(&self) -> bool {
        self.cidr.is_empty() && self.start.is_empty() && self.end.is_empty()
    }
}

/// plexus' own settings (`spec.plexus`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct PlexusSettings {
    /// CIDRs never handed out (`/32` or `/128` for one address).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exclude: Vec<String>,
    /// Single addresses kept out of allocation and shown as reserved.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reserved: Vec<String>,
    /// Prefix length of the per-node IPv4 blocks (default 26).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = MIN_V4_BLOCK, max = MAX_V4_PREFIX))]
    pub block_size: Option<i64>,
    /// Prefix length of the per-node IPv6 blocks (default 122).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = MIN_V6_BLOCK, max = MAX_V6_PREFIX))]
    pub block_size6: Option<i64>,
    /// Probe each new address on the segment (ARP probe, DAD) before handing it out.
    #[serde(
        rename = "duplicateAddressCheck",
        default,
        skip_serializing_if = "std::ops::Not::not"
    )]
    pub duplicate_address_check: bool,
}

impl PlexusSettings {
    /// Whether no field is set.
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

/// What plexus reports about a network (the printer columns `Allocated` and `Free`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NetworkStatus {
    /// Addresses held, both families.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allocated: Option<i64>,
    /// Addresses still free in the dynamic ranges, both families, in decimal (an IPv6
    /// range's count does not fit in 64 bits).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub free: Option<String>,
    /// The `metadata.generation` these numbers describe.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}

/// The model's spec of a plexus network (DANM's state fields left empty).
fn model_spec(
    network_id: &str,
    network_type: &str,
    allowed_tenants: Option<Vec<String>>,
    o: &NetworkOptions,
    p: &PlexusSettings,
) -> NetworkSpec {
    // Every field is named (no `..Default::default()`): a field added to the model must be
    // mapped here, or the build fails.
    NetworkSpec {
        network_id: network_id.to_owned(),
        network_type: network_type.to_owned(),
        allowed_tenants,
        options: plexus_model::NetworkOptions {
            host_device: o.host_device.clone(),
            device_pool: o.device_pool.clone(),
            cidr: o.cidr.clone(),
            allocation_pool: IpPool {
                start: o.allocation_pool.start.clone(),
                end: o.allocation_pool.end.clone(),
                last_ip: String::new(),
            },
            routes: o.routes.clone(),
            alloc: String::new(),
            net6: o.net6.clone(),
            allocation_pool_v6: IpPoolV6 {
                cidr: o.allocation_pool_v6.cidr.clone(),
                start: o.allocation_pool_v6.start.clone(),
                end: o.allocation_pool_v6.end.clone(),
                last_ip: String::new(),
            },
            routes6: o.routes6.clone(),
            alloc6: String::new(),
            container_prefix: o.container_prefix.clone(),
            rt_tables: o.rt_tables,
            vlan: o.vlan,
            vxlan: o.vxlan,
        },
        plexus: PlexusOptions {
            exclude: p.exclude.clone(),
            reserved: p.reserved.clone(),
            block_size: p.block_size,
            block_size6: p.block_size6,
            duplicate_address_check: p.duplicate_address_check,
        },
    }
}

impl NetworkResource for ClusterNetwork {
    fn to_model(&self) -> NetworkObject {
        let s = &self.spec;
        let tenants = (!s.allowed_tenants.is_empty()).then(|| s.allowed_tenants.clone());
        NetworkObject {
            api_version: crate::PLEXUS_API_VERSION.to_owned(),
            kind: NetworkKind::ClusterNetwork,
            metadata: model_meta(&self.metadata),
            spec: model_spec(
                &s.network_id,
                &s.network_type,
                tenants,
                &s.options,
                &s.plexus,
            ),
        }
    }
}

impl NetworkResource for TenantNetwork {
    fn to_model(&self) -> NetworkObject {
        let s = &self.spec;
        NetworkObject {
            api_version: crate::PLEXUS_API_VERSION.to_owned(),
            kind: NetworkKind::TenantNetwork,
            metadata: model_meta(&self.metadata),
            spec: model_spec(&s.network_id, &s.network_type, None, &s.options, &s.plexus),
        }
    }
}

#[cfg(test)]
mod tests;
