//! [`MemoryStore`]: an in-memory [`Store`] with the same semantics as the real backends,
//! for the tests of other crates (and as the reference model in this crate's tests).

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Mutex;

use plexus_ipam_core::BlockPolicy;
use plexus_ipam_core::addr::key as addr_key;
use tokio::sync::{Mutex as AsyncMutex, MutexGuard};

mod txn;

use self::txn::MemTxn;
use crate::engine::{self, StoreTxn};
use crate::error::StoreError;
use crate::gc_scope::GcScope;
use crate::records::{
    DEFAULT_HISTORY_LIMIT, HistoryEvent, HistoryQuery, NetworkDeletion, NetworkRecord, PutMode,
    sort_events,
};
use crate::store::Store;
use crate::types::{
    Allocation, AttachmentKey, Block, Claim, ClaimContext, GcReport, Owner, unix_now,
};

/// Allocations per (network, address key); the map order is the address order.
type AllocationMap = BTreeMap<(String, u128), Allocation>;
/// Next-fit cursors per (network, range set id).
type CursorMap = BTreeMap<(String, String), IpAddr>;
/// Blocks per (network, base key).
type BlockMap = BTreeMap<(String, u128), Block>;
/// History events per (network, seq); the map order is the order of each network's events.
type HistoryMap = BTreeMap<(String, u64), HistoryEvent>;

/// An in-memory [`Store`] (BTreeMap-based). Claims are atomic; uniqueness, next-fit and
/// per-node blocks behave exactly as in the SQLite backend.
///
/// [`MemoryStore::set_failure`] makes every call fail, to test how callers handle an
/// unavailable or busy store.
///
/// Transactions run the engine on the caller's task while holding an async mutex: they
/// never block the thread, and concurrent writers queue on the mutex.
#[derive(Debug, Default)]
pub struct MemoryStore {
    state: AsyncMutex<MemState>,
    /// The injected failure; a plain mutex, never held across an `.await`.
    failure: Mutex<Option<StoreError>>,
}

#[derive(Debug)]
struct MemState {
    allocations: AllocationMap,
    cursors: CursorMap,
    blocks: BlockMap,
    networks: BTreeMap<String, NetworkRecord>,
    history: HistoryMap,
    history_limit: u32,
}

impl Default for MemState {
    fn default() -> Self {
        MemState {
            allocations: AllocationMap::new(),
            cursors: CursorMap::new(),
            blocks: BlockMap::new(),
            networks: BTreeMap::new(),
            history: HistoryMap::new(),
            history_limit: DEFAULT_HISTORY_LIMIT,
        }
    }
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        MemoryStore::default()
    }

    /// An empty store keeping the newest `limit` history events per network (at least 1).
    pub fn with_history_limit(limit: u32) -> Self {
        let mut store = MemoryStore::default();
        store.state.get_mut().history_limit = limit.max(1);
        store
    }

    /// While `Some`, every operation (including [`Store::probe`]) fails with a clone of
    /// this error; `None` restores normal operation.
    pub fn set_failure(&self, failure: Option<StoreError>) {
        *self
            .failure
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = failure;
    }

    /// The state, after checking the injected failure.
    async fn state(&self) -> Result<MutexGuard<'_, MemState>, StoreError> {
        let failure = self
            .failure
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone();
        match failure {
            Some(err) => Err(err),
            // A transaction that does not commit is undone before the lock is released.
            None => Ok(self.state.lock().await),
        }
    }

    /// Runs `f` as one transaction on the state: committed when it returns `Ok`, undone
    /// otherwise.
    async fn write<R>(
        &self,
        f: impl AsyncFnOnce(&mut MemTxn<'_>) -> Result<R, StoreError>,
    ) -> Result<R, StoreError> {
        let mut state = self.state().await?;
        let mut txn = MemTxn {
            state: &mut state,
            undo: Vec::new(),
        };
        let result = f(&mut txn).await;
        if result.is_err() {
            txn.roll_back();
        }
        result
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

    fn network_blocks(&self, network: &str) -> impl Iterator<Item = &Block> {
        self.blocks.range(network_bounds(network)).map(|(_, b)| b)
    }

    fn network_history(&self, network: &str) -> impl DoubleEndedIterator<Item = &HistoryEvent> {
        let bounds = (network.to_string(), 0)..=(network.to_string(), u64::MAX);
        self.history.range(bounds).map(|(_, e)| e)
    }
}

#[async_trait::async_trait]
impl Store for MemoryStore {
    async fn claim(
        &self,
        key: &AttachmentKey,
        owner: &Owner,
        claims: &[Claim<'_>],
        ctx: &ClaimContext,
    ) -> Result<Vec<Allocation>, StoreError> {
        self.write(async |txn| engine::claim_all(txn, key, owner, claims, ctx).await)
            .await
    }

    async fn release(&self, key: &AttachmentKey) -> Result<Vec<Allocation>, StoreError> {
        let now = unix_now();
        self.write(async |txn| engine::release(txn, key, now).await)
            .await
    }

    async fn attachment(&self, key: &AttachmentKey) -> Result<Vec<Allocation>, StoreError> {
        Ok(self.state().await?.held_by(key).cloned().collect())
    }

    async fn holder(&self, network: &str, ip: IpAddr) -> Result<Option<Allocation>, StoreError> {
        let state = self.state().await?;
        Ok(state
            .allocations
            .get(&(network.to_string(), addr_key(ip)))
            .cloned())
    }

    async fn list(&self, network: &str) -> Result<Vec<Allocation>, StoreError> {
        Ok(self.state().await?.network(network).cloned().collect())
    }

    async fn count_between(
        &self,
        network: &str,
        lo: IpAddr,
        hi: IpAddr,
    ) -> Result<u64, StoreError> {
        let ranges = engine::family_key_ranges(lo, hi)?;
        let state = self.state().await?;
        let count: usize = ranges
            .into_iter()
            .map(|(lo, hi)| {
                let bounds = (network.to_string(), lo)..=(network.to_string(), hi);
                state.allocations.range(bounds).count()
            })
            .sum();
        Ok(u64::try_from(count).unwrap_or(u64::MAX))
    }

    async fn list_between(
        &self,
        network: &str,
        lo: IpAddr,
        hi: IpAddr,
        limit: usize,
    ) -> Result<Vec<Allocation>, StoreError> {
        let ranges = engine::family_key_ranges(lo, hi)?;
        let state = self.state().await?;
        Ok(ranges
            .into_iter()
            .flat_map(|(lo, hi)| {
                let bounds = (network.to_string(), lo)..=(network.to_string(), hi);
                state.allocations.range(bounds).map(|(_, a)| a.clone())
            })
            .take(limit)
            .collect())
    }

    async fn put_network(
        &self,
        name: &str,
        definition: &serde_json::Value,
        mode: PutMode,
    ) -> Result<NetworkRecord, StoreError> {
        let now = unix_now();
        self.write(async |txn| engine::put_network(txn, name, definition, mode, now).await)
            .await
    }

    async fn network(&self, name: &str) -> Result<Option<NetworkRecord>, StoreError> {
        Ok(self.state().await?.networks.get(name).cloned())
    }

    async fn networks(&self) -> Result<Vec<NetworkRecord>, StoreError> {
        Ok(self.state().await?.networks.values().cloned().collect())
    }

    async fn allocated_networks(&self) -> Result<Vec<String>, StoreError> {
        let mut names: Vec<String> = self
            .state()
            .await?
            .allocations
            .keys()
            .map(|(network, _)| network.clone())
            .collect();
        names.dedup();
        Ok(names)
    }

    async fn delete_network(&self, name: &str, force: bool) -> Result<NetworkDeletion, StoreError> {
        self.write(async |txn| engine::delete_network(txn, name, force).await)
            .await
    }

    async fn history(&self, query: &HistoryQuery) -> Result<Vec<HistoryEvent>, StoreError> {
        let state = self.state().await?;
        let mut events: Vec<HistoryEvent> = match query {
            HistoryQuery::Network { network } | HistoryQuery::Address { network, .. } => state
                .network_history(network)
                .filter(|e| e.matches(query))
                .cloned()
                .collect(),
            HistoryQuery::Pod { .. } | HistoryQuery::PodUid { .. } => state
                .history
                .values()
                .filter(|e| e.matches(query))
                .cloned()
                .collect(),
        };
        sort_events(&mut events);
        Ok(events)
    }

    async fn record_history(&self, events: &[HistoryEvent]) -> Result<(), StoreError> {
        self.write(async |txn| engine::record_history(txn, events).await)
            .await
    }

    async fn blocks(&self, network: &str) -> Result<Vec<Block>, StoreError> {
        Ok(self
            .state()
            .await?
            .network_blocks(network)
            .cloned()
            .collect())
    }

    async fn gc(
        &self,
        network: &str,
        valid: &[(String, String)],
        scope: &GcScope,
        blocks: &BlockPolicy,
        now: i64,
    ) -> Result<GcReport, StoreError> {
        self.write(async |txn| {
            let attached = txn.attachments_of(network).await?;
            let stale = engine::stale_attachments(attached, valid, scope);
            let mut report = GcReport::default();
            for (container_id, ifname) in stale {
                let key = AttachmentKey::new(network, container_id, ifname);
                report
                    .released
                    .extend(engine::release(txn, &key, now).await?);
            }
            report.released.sort_by_key(|a| addr_key(a.ip));
            report.released_blocks = engine::sweep_blocks(txn, network, scope, blocks, now).await?;
            Ok(report)
        })
        .await
    }

    async fn probe(&self) -> Result<(), StoreError> {
        self.state().await.map(drop)
    }
}

#[cfg(test)]
mod tests;
