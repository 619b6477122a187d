//! Networks several configurations share (whereabouts' overlapping-range protection).
//!
//! whereabouts keeps an address unique across every range of the cluster by default
//! (`enable_overlapping_ranges`), so two network configurations with overlapping ranges
//! never hand out one address twice. plexus gives the same guarantee by keeping the
//! allocations of every such configuration in one network (`WHEREABOUTS_SHARED_NETWORK`,
//! or the configurations' common `network_name`), where the store's uniqueness holds
//! across them; each configuration's range sets carry its name, so its GC collects its
//! own attachments only.
//!
//! Before that, plexus kept them under the netconf name (the "legacy" network). Addresses
//! still held there are invisible to the shared network's uniqueness, so a configuration
//! refuses to allocate until none of its ranges is held there.

use plexus_cni::{Error as CniError, codes};
use plexus_ipam_core::PoolConfig;
use plexus_store::{GcScope, Store};

use crate::IpamError;

/// Refuses an ADD while the legacy network of `pool` holds an address inside its ranges:
/// the shared network cannot see those, and would hand them out again.
pub async fn refuse_legacy_holdings(pool: &PoolConfig, store: &dyn Store) -> Result<(), IpamError> {
    let Some(legacy) = &pool.legacy_network else {
        return Ok(());
    };
    let mut held = 0;
    for range in pool.range_sets.iter().flat_map(|set| &set.ranges) {
        held += store.count_between(legacy, range.start, range.end).await?;
    }
    if held == 0 {
        return Ok(());
    }
    Err(IpamError::Cni(CniError::new(
        codes::INVALID_CONFIG,
        format!(
            "network {legacy:?} still holds {held} address(es) in this configuration's ranges, \
             allocated before plexus kept whereabouts ranges unique across configurations \
             (network {:?}); allocating now could hand them out twice",
            pool.network
        ),
        format!(
            "set \"network_name\": \"{legacy}\" in the ipam section to keep those allocations \
             (addresses stay unique among configurations with that network_name), or \
             \"enable_overlapping_ranges\": false, or release them first (DEL the pods, or \
             `plexusctl gc {legacy} --valid FILE`)"
        ),
    )))
}

/// The scope of this node's GC for `pool`: its own range sets only when the network is
/// shared by several configurations.
pub fn gc_scope(pool: &PoolConfig, node: String) -> GcScope {
    let scope = GcScope::node(node);
    if pool.range_sets.iter().any(|set| set.shared_by.is_some()) {
        scope.with_range_sets(pool.range_sets.iter().map(|set| set.id()))
    } else {
        scope
    }
}
