//! From a validated network to the allocator's pool, and the defaults DANM's webhook fills in.
//!
//! Each family becomes one [`Range`] over its allocation CIDR (`cidr`, or
//! `allocation_pool_v6.cidr` for IPv6) from `start` to `end`. Reserved, as DANM reserves them
//! in a fresh bitmap: the network address, the last address (the IPv4 broadcast; DANM does
//! this for IPv6 too) and every route gateway. plexus' `exclude` and `reserved` are never
//! handed out either.

use std::fmt;
use std::net::IpAddr;

use ipnet::IpNet;
use plexus_ipam_core::addr::{checked_add, checked_sub, first_key, key, last_key, net_contains};
use plexus_ipam_core::{BlockPolicy, Family, PoolConfig, Range, RangeError, RangeSet, Route};

use crate::network::NetworkSpec;
use crate::parse::parse_cidr;
use crate::validate::{ValidFamily, ValidNetwork};

/// Why a validated network could not become a pool.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConvertError {
    /// The allocator refused the range (only possible if a [`ValidNetwork`] was edited).
    #[error("network {network}: IPv{family} range: {source}")]
    Range {
        /// Qualified network name.
        network: String,
        /// Which family.
        family: Family,
        /// The allocator's reason.
        source: RangeError,
    },
    /// The network has no `cidr` and no `net6`: nothing to allocate.
    #[error(
        "network {network} is an L2 network (no cidr, no net6); it has no addresses to allocate"
    )]
    L2Network {
        /// Qualified network name.
        network: String,
    },
}

/// DANM's default pool bounds for an allocation CIDR: `base + 1` to `last − 1`.
pub fn default_pool_bounds(cidr: &IpNet) -> Option<(IpAddr, IpAddr)> {
    let cidr = cidr.trunc();
    let start = checked_add(cidr.network(), 1)?;
    let end = checked_sub(cidr.broadcast(), 1)?;
    (key(start) <= key(end)).then_some((start, end))
}

/// Fill in what DANM's webhook fills on create, leaving everything already set alone:
/// `NetworkType` `ipvlan`; `allocation_pool` start/end from `cidr`;
/// `allocation_pool_v6.cidr` (= `net6`; DANM narrowed it to /105 or longer) and its
/// start/end. Values that do not parse are left for validation to report.
pub fn apply_defaults(spec: &mut NetworkSpec) {
    if spec.network_type.is_empty() {
        spec.network_type = "ipvlan".to_owned();
    }
    let o = &mut spec.options;
    if let Some(cidr) = parse_cidr(&o.cidr)
        && let Some((start, end)) = default_pool_bounds(&cidr)
    {
        fill(&mut o.allocation_pool.start, start);
        fill(&mut o.allocation_pool.end, end);
    }
    if let Some(net6) = parse_cidr(&o.net6) {
        if o.allocation_pool_v6.cidr.is_empty() {
            o.allocation_pool_v6.cidr = net6.trunc().to_string();
        }
        if let Some(pool6) = parse_cidr(&o.allocation_pool_v6.cidr)
            && let Some((start, end)) = default_pool_bounds(&pool6)
        {
            fill(&mut o.allocation_pool_v6.start, start);
            fill(&mut o.allocation_pool_v6.end, end);
        }
    }
}

/// Set `field` to `ip` if it is empty.
fn fill(field: &mut String, ip: IpAddr) {
    if field.is_empty() {
        *field = ip.to_string();
    }
}

/// Why an address of a pool is never handed out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reservation {
    /// The first address of the allocation CIDR.
    NetworkAddress,
    /// The last address of the allocation CIDR (the IPv4 broadcast address; DANM reserves
    /// the last IPv6 address the same way).
    Broadcast,
    /// A route gateway.
    Gateway,
    /// Listed in `spec.plexus.reserved`.
    Reserved,
    /// Inside this `spec.plexus.exclude` entry.
    Excluded(IpNet),
}

impl fmt::Display for Reservation {
    /// The wording of DANM's showalloc (`reserved (network base address)`, …).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reservation::NetworkAddress => f.write_str("reserved (network base address)"),
            Reservation::Broadcast => f.write_str("reserved (broadcast address)"),
            Reservation::Gateway => f.write_str("reserved (gateway)"),
            Reservation::Reserved => f.write_str("reserved"),
            Reservation::Excluded(net) => write!(f, "excluded ({net})"),
        }
    }
}

/// One family of a network, ready for the allocator.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct FamilyPool {
    /// `cidr` / `net6`: the prefix reported with each address.
    pub network: IpNet,
    /// Where addresses are tracked (the range's subnet; DANM's bitmap base).
    pub allocation_cidr: IpNet,
    /// The allocator's view: one range over the allocation CIDR.
    pub range_set: RangeSet,
    /// Routes for the CNI result.
    pub routes: Vec<Route>,
    /// Route gateways, ascending.
    pub gateways: Vec<IpAddr>,
    /// `spec.plexus.reserved` of this family.
    pub reserved: Vec<IpAddr>,
    /// `spec.plexus.exclude` of this family.
    pub exclude: Vec<IpNet>,
    /// Per-node block prefix length, if configured.
    pub block_size: Option<u8>,
}

impl FamilyPool {
    /// The range (a family pool always has exactly one).
    pub fn range(&self) -> Option<&Range> {
        self.range_set.ranges.first()
    }

    /// The interface address of an allocated `ip` of this family: `ip` with the prefix of
    /// the network (`cidr` / `net6`) and the range's gateway. The allocation CIDR
    /// (`allocation_pool_v6.cidr`) only bounds where addresses are handed out; a pod told
    /// its /120 would treat the rest of the /64 as off-link. `None` when `ip` is outside
    /// the network.
    pub fn interface_address(&self, ip: IpAddr) -> Option<(IpNet, Option<IpAddr>)> {
        if !net_contains(&self.network, ip) {
            return None;
        }
        let address = IpNet::new(ip, self.network.prefix_len()).ok()?;
        Some((address, self.range().and_then(|r| r.gateway)))
    }

    /// Why `ip` is never handed out, if it is reserved or excluded. Checked in DANM's
    /// showalloc order: network address, last address, then gateways, then plexus' own.
    pub fn reservation(&self, ip: IpAddr) -> Option<Reservation> {
        let cidr = &self.allocation_cidr;
        if !net_contains(cidr, ip) {
            return None;
        }
        let k = key(ip);
        if k == first_key(cidr) {
            Some(Reservation::NetworkAddress)
        } else if k == last_key(cidr) {
            Some(Reservation::Broadcast)
        } else if self.gateways.iter().any(|gw| key(*gw) == k) {
            Some(Reservation::Gateway)
        } else if self.reserved.iter().any(|r| key(*r) == k) {
            Some(Reservation::Reserved)
        } else {
            self.exclude
                .iter()
                .find(|net| net_contains(net, ip))
                .map(|net| Reservation::Excluded(*net))
        }
    }
}

/// A network ready for the allocator.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct NetworkPool {
    /// `name` or `namespace/name`: the pool's identity in the store.
    pub network: String,
    /// IPv4, if the network has `cidr`.
    pub v4: Option<FamilyPool>,
    /// IPv6, if the network has `net6`.
    pub v6: Option<FamilyPool>,
}

impl NetworkPool {
    /// The interface address (with the prefix reported: `cidr` / `net6`) and gateway of an
    /// allocated `ip`, from the family holding it — the one conversion both plugins
    /// (`plexus-ipam` with `"network"`, and `plexus`) report addresses with.
    pub fn interface_address(&self, ip: IpAddr) -> Option<(IpNet, Option<IpAddr>)> {
        let family = match ip {
            IpAddr::V4(_) => self.v4.as_ref()?,
            IpAddr::V6(_) => self.v6.as_ref()?,
        };
        family.interface_address(ip)
    }

    /// The allocator's pool configuration: one range set per family (IPv4 first), the
    /// routes of both, and per-node blocks with the network's block sizes (the allocator's
    /// defaults otherwise). An L2 network has no range and is refused.
    pub fn pool_config(&self) -> Result<PoolConfig, ConvertError> {
        let families: Vec<&FamilyPool> = self.v4.iter().chain(self.v6.iter()).collect();
        if families.is_empty() {
            return Err(ConvertError::L2Network {
                network: self.network.clone(),
            });
        }
        Ok(PoolConfig {
            network: self.network.clone(),
            legacy_network: None,
            range_sets: families.iter().map(|f| f.range_set.clone()).collect(),
            routes: families.iter().flat_map(|f| f.routes.clone()).collect(),
            dns: None,
            addresses: Vec::new(),
            // Stored networks refuse a gateway outside their subnet (validation).
            unreserved_gateway: None,
            store: None,
            overlapping_ranges: true,
            blocks: BlockPolicy {
                v4_prefix: self
                    .v4
                    .as_ref()
                    .and_then(|f| f.block_size)
                    .unwrap_or(BlockPolicy::DEFAULT_V4_PREFIX),
                v6_prefix: self
                    .v6
                    .as_ref()
                    .and_then(|f| f.block_size)
                    .unwrap_or(BlockPolicy::DEFAULT_V6_PREFIX),
                ..BlockPolicy::default()
            },
            warnings: Vec::new(),
        })
    }
}

/// Turn a validated network into the allocator's pool.
pub fn to_pool(network: &ValidNetwork) -> Result<NetworkPool, ConvertError> {
    let name = network.qualified_name();
    let family =
        |valid: &Option<ValidFamily>| valid.as_ref().map(|f| family_pool(&name, f)).transpose();
    Ok(NetworkPool {
        v4: family(&network.v4)?,
        v6: family(&network.v6)?,
        network: name.clone(),
    })
}

/// One family: the range, with gateways and plexus' reservations kept out of it.
pub(crate) fn family_pool(network: &str, f: &ValidFamily) -> Result<FamilyPool, ConvertError> {
    let cidr = f.allocation_cidr;
    let fam = Family::of_net(&cidr);
    let host = |ip: IpAddr| IpNet::new(ip, fam.bits()).ok();
    let is_edge = |ip: IpAddr| key(ip) == first_key(&cidr) || key(ip) == last_key(&cidr);
    let gateways = f.gateways();
    // The range has one gateway slot; further gateways are excluded as single addresses.
    let gateway = gateways
        .iter()
        .copied()
        .find(|gw| net_contains(&cidr, *gw) && !is_edge(*gw));
    let mut exclude = f.exclude.clone();
    exclude.extend(
        gateways
            .iter()
            .chain(f.reserved.iter())
            .copied()
            .filter(|ip| Some(*ip) != gateway && net_contains(&cidr, *ip))
            .filter_map(host),
    );
    if fam == Family::V6 {
        // DANM reserves the last IPv6 address like a broadcast address.
        exclude.extend(host(cidr.broadcast()));
    }
    let range_error = |source| ConvertError::Range {
        network: network.to_owned(),
        family: fam,
        source,
    };
    let range =
        Range::new(cidr, Some(f.start), Some(f.end), gateway, exclude).map_err(range_error)?;
    let range_set = RangeSet::new(vec![range]).map_err(range_error)?;
    Ok(FamilyPool {
        network: f.network,
        allocation_cidr: cidr,
        range_set,
        routes: f
            .routes
            .iter()
            .map(|(dst, gw)| Route {
                dst: *dst,
                gw: Some(*gw),
            })
            .collect(),
        gateways,
        reserved: f.reserved.clone(),
        exclude: f.exclude.clone(),
        block_size: f.block_size,
    })
}

#[cfg(test)]
mod tests;
