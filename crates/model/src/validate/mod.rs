//! All of DANM's network validation rules (its admission webhook's, `pkg/admit`), plus
//! plexus' own, as one pure function that reports **every** broken rule, each with the field
//! path (`spec.Options.cidr`) and the offending value.
//!
//! Differences from DANM, on purpose:
//! - IPv4 networks are not capped at /9: any size from /8 to /30 works, because plexus keeps
//!   allocations in its store instead of a bitmap inside the object. Likewise the IPv6
//!   allocation CIDR defaults to the whole `net6` instead of a /105-or-longer slice, and the
//!   combined 2^23-address cap of both families is gone.
//! - Names that become file names, binary names or interface names are checked for
//!   traversal and junk (`NetworkType`, `host_device`, `container_prefix`, `NetworkID`).
//! - Route gateways may not be the network or broadcast address.
//! - The rules DANM implements but never runs (UPDATE checks against connected pods) belong
//!   to the store, which knows the allocations; they are not here.

mod addressing;
mod identity;
mod plexus;
pub(crate) mod tenant;

/// The numeric limits the rules enforce, for schemas that mirror them (the CRDs of
/// `plexus-k8s` check the same bounds on the API server).
pub use addressing::{MAX_V4_PREFIX, MAX_V6_PREFIX, MIN_V4_PREFIX};
pub use identity::{MAX_RT_TABLE, MAX_VLAN, MAX_VNI_NETWORK_ID_LEN, MAX_VXLAN};
pub use plexus::{MIN_V4_BLOCK, MIN_V6_BLOCK};

use std::fmt;
use std::net::IpAddr;

use ipnet::IpNet;

use crate::network::{NetworkKind, NetworkObject, qualified_name};

/// When the object is being checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Operation {
    /// A new network: DANM's CREATE rules (no `alloc`/`alloc6`, no VLAN/VxLAN on a
    /// TenantNetwork).
    Create,
    /// An existing network (an update, or an import of an object DANM already filled in):
    /// `alloc`/`alloc6` may be present and must then decode for their allocation CIDR.
    Update,
}

/// The rule a [`Violation`] breaks. Tests and tools match on it; the message explains it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum Rule {
    /// `apiVersion` is not one of [`crate::network::API_VERSIONS`].
    ApiVersion,
    /// `metadata.name` is not a DNS-1123 subdomain.
    MetadataName,
    /// `metadata.namespace` is not a DNS-1123 label.
    MetadataNamespace,
    /// `NetworkID` is empty.
    NetworkIdEmpty,
    /// `NetworkID` holds `/`, `..`, NUL, whitespace or control characters (it names files).
    NetworkIdUnsafe,
    /// `NetworkID` is over 10 characters on a dynamic network with a VLAN or VxLAN, so the
    /// host interface `<NetworkID>.<vlan>` would not fit in IFNAMSIZ.
    NetworkIdTooLong,
    /// `NetworkType` is not usable as a CNI binary name.
    NetworkTypeUnsafe,
    /// `cidr` does not parse as an IPv4 CIDR.
    CidrInvalid,
    /// `cidr` is larger than /8 or smaller than /30.
    CidrSize,
    /// `net6` does not parse as a usable IPv6 CIDR.
    Net6Invalid,
    /// Routes on a network without the matching `cidr`/`net6` (an L2 network).
    RoutesWithoutNetwork,
    /// A route destination is not a CIDR of the right family.
    RouteDestinationInvalid,
    /// A route gateway is not an address of the right family.
    RouteGatewayInvalid,
    /// A route gateway lies outside the network.
    RouteGatewayOutside,
    /// A route gateway is the network or broadcast address.
    RouteGatewayReserved,
    /// Pool fields on a network without the matching `cidr`/`net6`.
    PoolWithoutNetwork,
    /// A pool `start`/`end` is not an address of the right family.
    PoolAddressInvalid,
    /// A pool `start`/`end` lies outside its CIDR.
    PoolAddressOutside,
    /// A pool whose `end` is not after its `start`.
    PoolOrder,
    /// `allocation_pool_v6.cidr` does not parse as a usable IPv6 CIDR.
    Pool6CidrInvalid,
    /// `allocation_pool_v6.cidr` does not lie within `net6`.
    Pool6CidrOutside,
    /// Every address from `start` to `end` is reserved (network, broadcast, gateways,
    /// `plexus.reserved`) or excluded: nothing could ever be handed out.
    PoolEmpty,
    /// `alloc`/`alloc6` set on create (they are filled in, never written by users).
    AllocOnCreate,
    /// `alloc`/`alloc6` does not decode as the bitmap of its allocation CIDR.
    AllocInvalid,
    /// `vlan` outside 1..=4094.
    VlanRange,
    /// `vxlan` outside 1..=16777214.
    VxlanRange,
    /// Both `vlan` and `vxlan` set.
    VlanAndVxlan,
    /// An `sriov` network without `device_pool`.
    SriovWithoutDevicePool,
    /// An `sriov` network with `host_device`.
    SriovWithHostDevice,
    /// Both `host_device` and `device_pool` set.
    HostDeviceAndDevicePool,
    /// `host_device` is not a valid interface name.
    HostDeviceInvalid,
    /// `rt_tables` outside 0..=255.
    RtTablesRange,
    /// `AllowedTenants` on a kind other than ClusterNetwork.
    AllowedTenantsForbidden,
    /// An `AllowedTenants` entry is not a namespace name.
    AllowedTenantInvalid,
    /// A TenantNetwork created with `vlan` or `vxlan` (the administrator assigns them).
    TenantVniOnCreate,
    /// `container_prefix` holds characters interface names may not contain.
    ContainerPrefixInvalid,
    /// `container_prefix` leaves no room for the interface index within IFNAMSIZ.
    ContainerPrefixTooLong,
    /// A `plexus.exclude` entry is not a CIDR.
    ExcludeInvalid,
    /// A `plexus.exclude` entry does not overlap the network of its family.
    ExcludeOutside,
    /// A `plexus.reserved` entry is not an address.
    ReservedInvalid,
    /// A `plexus.reserved` entry lies outside the network of its family.
    ReservedOutside,
    /// A `plexus.block_size`/`block_size6` outside the prefix range of its network.
    BlockSizeInvalid,
    /// A TenantConfig with neither `hostDevices` nor `networkIds`.
    TenantConfigEmpty,
    /// A TenantConfig device name that is neither an interface name nor a device-plugin
    /// resource name (`domain/resource`).
    TenantDeviceName,
    /// A TenantConfig device listed twice.
    TenantDeviceDuplicate,
    /// A TenantConfig device with only one of `vniType` and `vniRange`.
    VniIncomplete,
    /// A `vniType` other than `vlan` or `vxlan`.
    VniTypeInvalid,
    /// A `vniRange` that does not parse or leaves its type's ids.
    VniRangeInvalid,
    /// Two `networkIds` keys naming the same `NetworkType` (they match case-insensitively).
    NetworkIdsDuplicate,
}

/// One broken rule: which, where, with what value, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct Violation {
    /// The rule.
    pub rule: Rule,
    /// Field path as written in the document, e.g. `spec.Options.allocation_pool.start`.
    pub path: String,
    /// The offending value as written (empty when the field is missing or empty).
    pub value: String,
    /// What is wrong and, where it helps, what to write instead.
    pub message: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.value.is_empty() {
            write!(f, "{}: {}", self.path, self.message)
        } else {
            write!(f, "{} = {:?}: {}", self.path, self.value, self.message)
        }
    }
}

/// Every rule a network breaks (never empty).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ValidationErrors {
    /// The network's qualified name (`name` or `namespace/name`).
    pub network: String,
    /// The broken rules, in document order.
    pub violations: Vec<Violation>,
}

impl ValidationErrors {
    /// Whether `rule` is among the violations.
    pub fn has(&self, rule: Rule) -> bool {
        self.violations.iter().any(|v| v.rule == rule)
    }
}

impl fmt::Display for ValidationErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let count = self.violations.len();
        let noun = if count == 1 { "problem" } else { "problems" };
        write!(f, "network {:?} is invalid ({count} {noun})", self.network)?;
        for (i, v) in self.violations.iter().enumerate() {
            let sep = if i == 0 { ": " } else { "; " };
            write!(f, "{sep}{v}")?;
        }
        Ok(())
    }
}

/// A network that passed validation, with values parsed and DANM's defaults applied.
///
/// Only [`validate`] builds one; the fields are public for reading.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ValidNetwork {
    /// Which API the network came from.
    pub kind: NetworkKind,
    /// `metadata.name`.
    pub name: String,
    /// The namespace of a namespaced kind (`default` when unset); `None` for ClusterNetwork.
    pub namespace: Option<String>,
    /// `NetworkID`.
    pub network_id: String,
    /// `NetworkType`, `ipvlan` when empty; the dynamic types are lower-cased.
    pub network_type: String,
    /// ClusterNetwork's `AllowedTenants`; empty means every namespace.
    pub allowed_tenants: Vec<String>,
    /// `host_device`, if set.
    pub host_device: Option<String>,
    /// `device_pool`, if set.
    pub device_pool: Option<String>,
    /// `container_prefix`, if set.
    pub container_prefix: Option<String>,
    /// `rt_tables`, if non-zero.
    pub rt_table: Option<u8>,
    /// `vlan`, if non-zero.
    pub vlan: Option<u16>,
    /// `vxlan`, if non-zero.
    pub vxlan: Option<u32>,
    /// The IPv4 side, if `cidr` is set.
    pub v4: Option<ValidFamily>,
    /// The IPv6 side, if `net6` is set.
    pub v6: Option<ValidFamily>,
    /// `spec.plexus.duplicateAddressCheck`: probe new addresses before using them.
    pub duplicate_address_check: bool,
}

impl ValidNetwork {
    /// `name` for a ClusterNetwork, `namespace/name` for the namespaced kinds.
    pub fn qualified_name(&self) -> String {
        match &self.namespace {
            Some(ns) => format!("{ns}/{}", self.name),
            None => self.name.clone(),
        }
    }

    /// Whether plexus itself sets up the interface (ipvlan, macvlan, sriov) rather than
    /// delegating to another CNI binary.
    pub fn is_dynamic(&self) -> bool {
        is_dynamic_type(&self.network_type)
    }

    /// Whether the network has no addresses at all (an L2 network).
    pub fn is_l2(&self) -> bool {
        self.v4.is_none() && self.v6.is_none()
    }
}

/// One address family of a [`ValidNetwork`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ValidFamily {
    /// `cidr` or `net6`, host bits cleared: the prefix reported with every address.
    pub network: IpNet,
    /// What addresses are tracked in: `cidr` for IPv4, `allocation_pool_v6.cidr` (default
    /// `net6`) for IPv6. DANM's bitmaps are indexed from its base.
    pub allocation_cidr: IpNet,
    /// First dynamic address (default: allocation CIDR base + 1).
    pub start: IpAddr,
    /// Last dynamic address (default: last address of the allocation CIDR − 1).
    pub end: IpAddr,
    /// Routes, destination (host bits cleared) → gateway, sorted by destination text.
    pub routes: Vec<(IpNet, IpAddr)>,
    /// plexus exclusions of this family (host bits cleared).
    pub exclude: Vec<IpNet>,
    /// plexus reserved addresses of this family.
    pub reserved: Vec<IpAddr>,
    /// Per-node block prefix length, if configured.
    pub block_size: Option<u8>,
}

impl ValidFamily {
    /// Route gateways, ascending, without duplicates.
    pub fn gateways(&self) -> Vec<IpAddr> {
        let mut gws: Vec<IpAddr> = self.routes.iter().map(|(_, gw)| *gw).collect();
        gws.sort_unstable();
        gws.dedup();
        gws
    }
}

/// Whether a `NetworkType` is one plexus sets up itself (DANM's "dynamic" types:
/// empty, ipvlan, macvlan, sriov; case-insensitive).
pub fn is_dynamic_type(network_type: &str) -> bool {
    network_type.is_empty()
        || ["ipvlan", "macvlan", "sriov"]
            .iter()
            .any(|t| network_type.eq_ignore_ascii_case(t))
}

/// Collects violations while the rules run.
#[derive(Debug, Default)]
pub(crate) struct Checker {
    /// What was found so far.
    found: Vec<Violation>,
}

impl Checker {
    /// Record a broken rule.
    pub(crate) fn report(
        &mut self,
        rule: Rule,
        path: impl Into<String>,
        value: impl Into<String>,
        message: impl Into<String>,
    ) {
        self.found.push(Violation {
            rule,
            path: path.into(),
            value: crate::shorten(value.into()),
            message: message.into(),
        });
    }
}

/// Check a network object against every rule.
///
/// Returns the parsed network with DANM's defaults applied (type `ipvlan`, pool
/// `start = base + 1`, `end = broadcast − 1`, IPv6 allocation CIDR = `net6`), or every
/// broken rule.
pub fn validate(object: &NetworkObject, op: Operation) -> Result<ValidNetwork, ValidationErrors> {
    let mut checker = Checker::default();
    let identity = identity::check(&mut checker, object, op);
    let families = addressing::check(&mut checker, &object.spec, op);
    if !checker.found.is_empty() {
        return Err(ValidationErrors {
            network: qualified_name(object.kind, &object.metadata),
            violations: checker.found,
        });
    }
    let meta = &object.metadata;
    Ok(ValidNetwork {
        kind: object.kind,
        name: meta.name.clone(),
        namespace: object
            .kind
            .is_namespaced()
            .then(|| meta.namespace_or_default().to_owned()),
        network_id: object.spec.network_id.clone(),
        network_type: identity.network_type,
        allowed_tenants: object.spec.allowed_tenants.clone().unwrap_or_default(),
        host_device: non_empty(&object.spec.options.host_device),
        device_pool: non_empty(&object.spec.options.device_pool),
        container_prefix: non_empty(&object.spec.options.container_prefix),
        rt_table: identity.rt_table,
        vlan: identity.vlan,
        vxlan: identity.vxlan,
        v4: families.v4,
        v6: families.v6,
        duplicate_address_check: object.spec.plexus.duplicate_address_check,
    })
}

/// Every rule `object` breaks; empty when it is valid.
pub fn violations(object: &NetworkObject, op: Operation) -> Vec<Violation> {
    match validate(object, op) {
        Ok(_) => Vec::new(),
        Err(errors) => errors.violations,
    }
}

/// `Some(text)` unless empty.
fn non_empty(text: &str) -> Option<String> {
    (!text.is_empty()).then(|| text.to_owned())
}

#[cfg(test)]
mod tests;
