//! [`MemoryStore`]: an in-memory [`Store`] with the same semantics as the real backends,
//! for the tests of other crates (and as the reference model in this crate's tests).

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::{Mutex, MutexGuard};

use plexus_ipam_core::addr::key as addr_key;

use crate::engine::{self, ClaimTxn};
use crate::error::StoreError;
use crate::store::Store;
use crate::types::{Allocation, AttachmentKey, Claim, GcReport, Owner, unix_now};

/// Allocations per (network, address key); the map order is the address order.
type AllocationMap = BTreeMap<(String, u128), Allocation>;
/// Next-fit cursors per (network, range set id).
type CursorMap = BTreeMap<(String, String), IpAddr>;

/// An in-memory [`Store`] (BTreeMap-based). Claims are atomic, uniqueness and next-fit
/// behave exactly as in the SQLite backend.
///
/// [`MemoryStore::set_failure`] makes every call fail, to test how callers handle an
/// unavailable or busy store.
#[derive(Debug, Default)]
pub struct MemoryStore {
    state: Mutex<MemState>,
}

#[derive(Debug, Default)]
struct MemState {
    allocations: AllocationMap,
    cursors: CursorMap,
    failure: Option<StoreError>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        MemoryStore::default()
    }

    /// While `Some`, every operation (including [`Store::probe`]) fails with a clone of
    /// this error; `None` restores normal operation.
    pub fn set_failure(&self, failure: Option<StoreError>) {
        self.lock().failure = failure;
    }

    /// The state, after checking the injected failure.
    fn state(&self) -> Result<MutexGuard<'_, MemState>, StoreError> {
        let state = self.lock();
        match &state.failure {
            Some(err) => Err(err.clone()),
            None => Ok(state),
        }
    }

    fn lock(&self) -> MutexGuard<'_, MemState> {
        // A panic elsewhere cannot leave the maps half-updated: claims commit in one step.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

fn network_bounds(network: &str) -> std::ops::RangeInclusive<(String, u128)> {
    (network.to_string(), 0)..=(network.to_string(), u128::MAX)
}

impl MemState {
    fn network(&self, network: &str) -> impl Iterator<Item = &Allocation> {
        self.allocations
            .range(network_bounds(network))
            .map(|(_, a)| a)
    }

    fn held_by<'a>(&'a self, key: &'a AttachmentKey) -> impl Iterator<Item = &'a Allocation> {
        self.network(&key.network)
            .filter(move |a| a.is_held_by(key))
    }

    fn remove_attachment(&mut self, key: &AttachmentKey) -> Vec<Allocation> {
        let addrs: Vec<u128> = self.held_by(key).map(|a| addr_key(a.ip)).collect();
        addrs
            .into_iter()
            .filter_map(|k| self.allocations.remove(&(key.network.clone(), k)))
            .collect()
    }
}

/// One claim transaction: reads see the committed state plus this transaction's own
/// writes, which are applied only by [`MemTxn::commit`].
struct MemTxn<'a> {
    base: &'a MemState,
    inserted: AllocationMap,
    cursors: CursorMap,
}

impl MemTxn<'_> {
    fn commit(self) -> (AllocationMap, CursorMap) {
        (self.inserted, self.cursors)
    }

    fn get(&self, network: &str, k: u128) -> Option<&Allocation> {
        let id = (network.to_string(), k);
        self.inserted
            .get(&id)
            .or_else(|| self.base.allocations.get(&id))
    }
}

impl ClaimTxn for MemTxn<'_> {
    fn existing(
        &mut self,
        key: &AttachmentKey,
        range_set: &str,
    ) -> Result<Option<Allocation>, StoreError> {
        let base = self.base.held_by(key);
        let own = self.inserted.values().filter(|a| a.is_held_by(key));
        Ok(base.chain(own).find(|a| a.range_set == range_set).cloned())
    }

    fn holder(&mut self, network: &str, ip: IpAddr) -> Result<Option<Allocation>, StoreError> {
        Ok(self.get(network, addr_key(ip)).cloned())
    }

    fn held_between(
        &mut self,
        network: &str,
        lo: IpAddr,
        hi: IpAddr,
    ) -> Result<Vec<IpAddr>, StoreError> {
        let (lo, hi) = (addr_key(lo), addr_key(hi));
        if lo > hi {
            return Ok(Vec::new());
        }
        let bounds = (network.to_string(), lo)..=(network.to_string(), hi);
        let mut held: Vec<u128> = self
            .base
            .allocations
            .range(bounds.clone())
            .chain(self.inserted.range(bounds))
            .map(|((_, k), _)| *k)
            .collect();
        held.sort_unstable();
        Ok(held
            .into_iter()
            .map(plexus_ipam_core::addr::from_key)
            .collect())
    }

    fn cursor(&mut self, network: &str, range_set: &str) -> Result<Option<IpAddr>, StoreError> {
        let id = (network.to_string(), range_set.to_string());
        Ok(self
            .cursors
            .get(&id)
            .or_else(|| self.base.cursors.get(&id))
            .copied())
    }

    fn set_cursor(&mut self, network: &str, range_set: &str, ip: IpAddr) -> Result<(), StoreError> {
        self.cursors
            .insert((network.to_string(), range_set.to_string()), ip);
        Ok(())
    }

    fn insert(&mut self, allocation: &Allocation) -> Result<(), StoreError> {
        let k = addr_key(allocation.ip);
        if let Some(holder) = self.get(&allocation.network, k) {
            return Err(engine::address_taken(holder));
        }
        self.inserted
            .insert((allocation.network.clone(), k), allocation.clone());
        Ok(())
    }
}

#[async_trait::async_trait]
impl Store for MemoryStore {
    async fn claim(
        &self,
        key: &AttachmentKey,
        owner: &Owner,
        claims: &[Claim<'_>],
    ) -> Result<Vec<Allocation>, StoreError> {
        let mut state = self.state()?;
        let mut txn = MemTxn {
            base: &state,
            inserted: AllocationMap::new(),
            cursors: CursorMap::new(),
        };
        let allocations = engine::claim_all(&mut txn, key, owner, claims, unix_now())?;
        let (inserted, cursors) = txn.commit();
        state.allocations.extend(inserted);
        state.cursors.extend(cursors);
        Ok(allocations)
    }

    async fn release(&self, key: &AttachmentKey) -> Result<Vec<Allocation>, StoreError> {
        Ok(self.state()?.remove_attachment(key))
    }

    async fn attachment(&self, key: &AttachmentKey) -> Result<Vec<Allocation>, StoreError> {
        Ok(self.state()?.held_by(key).cloned().collect())
    }

    async fn holder(&self, network: &str, ip: IpAddr) -> Result<Option<Allocation>, StoreError> {
        let state = self.state()?;
        Ok(state
            .allocations
            .get(&(network.to_string(), addr_key(ip)))
            .cloned())
    }

    async fn list(&self, network: &str) -> Result<Vec<Allocation>, StoreError> {
        Ok(self.state()?.network(network).cloned().collect())
    }

    async fn count_between(
        &self,
        network: &str,
        lo: IpAddr,
        hi: IpAddr,
    ) -> Result<u64, StoreError> {
        let ranges = engine::family_key_ranges(lo, hi)?;
        let state = self.state()?;
        let count: usize = ranges
            .into_iter()
            .map(|(lo, hi)| {
                let bounds = (network.to_string(), lo)..=(network.to_string(), hi);
                state.allocations.range(bounds).count()
            })
            .sum();
        Ok(u64::try_from(count).unwrap_or(u64::MAX))
    }

    async fn gc(&self, network: &str, valid: &[(String, String)]) -> Result<GcReport, StoreError> {
        let mut state = self.state()?;
        let attached = state
            .network(network)
            .map(|a| (a.container_id.clone(), a.ifname.clone()));
        let stale = engine::stale_attachments(attached.collect::<Vec<_>>(), valid);
        let mut report = GcReport::default();
        for (container_id, ifname) in stale {
            let key = AttachmentKey::new(network, container_id, ifname);
            report.released.extend(state.remove_attachment(&key));
        }
        report.released.sort_by_key(|a| addr_key(a.ip));
        Ok(report)
    }

    async fn probe(&self) -> Result<(), StoreError> {
        self.state().map(drop)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn injected_failure_fails_every_call_until_cleared() {
        let store = MemoryStore::new();
        let busy = StoreError::Busy {
            reason: "test".into(),
        };
        store.set_failure(Some(busy.clone()));
        assert_eq!(store.probe().await, Err(busy.clone()));
        assert_eq!(store.list("n").await, Err(busy.clone()));
        let key = AttachmentKey::new("n", "c", "eth0");
        assert_eq!(store.release(&key).await, Err(busy));
        store.set_failure(None);
        assert_eq!(store.probe().await, Ok(()));
        assert_eq!(store.release(&key).await, Ok(Vec::new()));
    }
}
