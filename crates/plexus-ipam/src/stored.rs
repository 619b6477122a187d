//! `"network": "<name>"` in the IPAM configuration: the pool comes from the network
//! definition kept in the store (`plexusctl network create`) instead of inline ranges.
//!
//! The stored definition (a `plexus-model` network object) gives the ranges of both
//! families (cidr / allocation_pool, net6 / allocation_pool_v6), exclusions and reserved
//! addresses, the routes and the per-node block sizes. The IPAM section may still set
//! what is not part of a network: `store`, `dns`, `node_name`, `blocks` (on/off and the
//! grace period; the network's block sizes win), logging. Inline ranges next to `network`
//! are refused (code 7), and so is a network the store does not know (naming the store).
//!
//! Addresses of a stored network are reported with the network's prefix (`cidr`, `net6`),
//! through the model's conversion the meta-plugin uses too ([`Resolved::interface_address`]).
//!
//! This is the second step of a call, after [`crate::request`] parsed the input (and
//! decided the [`PoolSource`]): it reads the store, never the request again.

use std::net::IpAddr;

use ipnet::IpNet;
use plexus_cni::{Error as CniError, NetConf, codes};
use plexus_ipam_core::{PoolConfig, parse_pool_config};
use plexus_model::{NetworkObject, NetworkPool, Operation, to_pool, validate};
use plexus_store::{NetworkRecord, Store};
use serde_json::{Map, Value};

use crate::IpamError;
use crate::request::PoolSource;

/// A placeholder range that lets the shared keys of the section be parsed by the
/// allocator's own parser (its ranges are then replaced by the stored network's).
const PLACEHOLDER_RANGE: &str = "198.18.0.0/15";

/// The pool of one call: the allocator's configuration and, for a stored network, the
/// network itself, which says the prefix each address is reported with.
#[derive(Debug, Clone, PartialEq)]
pub struct Resolved {
    /// What the allocator claims from.
    pub pool: PoolConfig,
    /// The stored network the pool came from (`None` for inline ranges).
    pub network: Option<NetworkPool>,
}

impl Resolved {
    /// Inline ranges: each address is reported with its range's subnet.
    pub fn inline(pool: PoolConfig) -> Resolved {
        Resolved {
            pool,
            network: None,
        }
    }

    /// The interface address (with its reported prefix) and gateway of an allocated `ip`:
    /// the stored network's `cidr` / `net6` prefix through the model's conversion, or for
    /// inline ranges the subnet of the range holding it.
    pub fn interface_address(&self, ip: IpAddr) -> Option<(IpNet, Option<IpAddr>)> {
        if let Some(network) = &self.network {
            return network.interface_address(ip);
        }
        let range = self.pool.range_sets.iter().find_map(|set| set.find(ip))?;
        let address = IpNet::new(ip, range.subnet.prefix_len()).ok()?;
        Some((address, range.gateway))
    }
}

fn invalid(msg: impl Into<String>, details: impl Into<String>) -> IpamError {
    IpamError::Cni(CniError::new(codes::INVALID_CONFIG, msg, details))
}

/// The `ipam` object (already checked to be an object by the caller's parse).
fn section(conf: &NetConf) -> Result<&Map<String, Value>, IpamError> {
    conf.ipam
        .as_ref()
        .and_then(Value::as_object)
        .ok_or_else(|| {
            invalid(
                "missing or invalid \"ipam\" object in the network configuration",
                format!("network {:?}", conf.name),
            )
        })
}

/// The pool of `source`: inline as parsed, or the stored network read from `store`
/// (found at `location`, which messages name).
pub async fn resolve(
    conf: &NetConf,
    source: PoolSource,
    store: &dyn Store,
    location: &str,
) -> Result<Resolved, IpamError> {
    match source {
        PoolSource::Inline(pool) => Ok(Resolved::inline(*pool)),
        PoolSource::Stored(name) => {
            let record = store.network(&name).await?;
            pool_of_record(conf, &name, record, location)
        }
    }
}

/// The pool of a stored network `record` (looked up as `name` in the store at
/// `location`), with the shared keys of the IPAM section applied.
pub fn pool_of_record(
    conf: &NetConf,
    name: &str,
    record: Option<NetworkRecord>,
    location: &str,
) -> Result<Resolved, IpamError> {
    let record = record.ok_or_else(|| {
        invalid(
            format!(
                "network {name:?} named by ipam.network is not defined in the store \
                 ({location})"
            ),
            "define it first: plexusctl network create -f <file.yaml>, or check ipam.store",
        )
    })?;
    let object: NetworkObject = serde_json::from_value(record.definition).map_err(|e| {
        invalid(
            format!("stored network {name:?} is not a network definition"),
            e.to_string(),
        )
    })?;
    let valid = validate(&object, Operation::Update)
        .map_err(|e| invalid(format!("stored network {name:?} is invalid"), e.to_string()))?;
    let converted = to_pool(&valid)
        .and_then(|pool| pool.pool_config().map(|config| (pool, config)))
        .map_err(|e| {
            invalid(
                format!("stored network {name:?} has no usable pool"),
                e.to_string(),
            )
        })?;
    let (network_pool, mut pool) = converted;
    // Allocations are kept under the name the configuration asked for (the record's key).
    pool.network = name.to_string();
    let shared = shared_settings(conf)?;
    pool.dns = shared.dns;
    pool.store = shared.store;
    pool.blocks.enabled = shared.blocks.enabled;
    pool.blocks.release_after_secs = shared.blocks.release_after_secs;
    if network_pool
        .v4
        .as_ref()
        .and_then(|f| f.block_size)
        .is_none()
    {
        pool.blocks.v4_prefix = shared.blocks.v4_prefix;
    }
    if network_pool
        .v6
        .as_ref()
        .and_then(|f| f.block_size)
        .is_none()
    {
        pool.blocks.v6_prefix = shared.blocks.v6_prefix;
    }
    pool.warnings = shared.warnings;
    for warning in &pool.warnings {
        tracing::warn!(network = %pool.network, "{warning}");
    }
    if conf.runtime_ip_ranges().is_some_and(|v| !v.is_null()) {
        tracing::warn!(
            network = %pool.network,
            "runtimeConfig.ipRanges ignored: the pool is the stored network's"
        );
    }
    Ok(Resolved {
        pool,
        network: Some(network_pool),
    })
}

/// The settings of the section that are not the network's (`dns`, `store`, `blocks`),
/// parsed and checked by the allocator's own parser on a placeholder range.
fn shared_settings(conf: &NetConf) -> Result<PoolConfig, IpamError> {
    let mut copy = section(conf)?.clone();
    copy.remove("network");
    copy.insert("range".into(), Value::String(PLACEHOLDER_RANGE.into()));
    let mut parsed = parse_pool_config(&conf.name, &Value::Object(copy), None)?;
    parsed.range_sets.clear();
    Ok(parsed)
}
