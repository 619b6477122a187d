//! [`MemoryStore`]: an in-memory [`Store`] with the same semantics as the real backends,
//! for the tests of other crates (and as the reference model in this crate's tests).

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::{Mutex, MutexGuard};

use plexus_ipam_core::BlockPolicy;
use plexus_ipam_core::addr::key as addr_key;

use crate::engine::{self, StoreTxn};
use crate::error::StoreError;
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

/// An in-memory [`Store`] (BTreeMap-based). Claims are atomic; uniqueness, next-fit and
/// per-node blocks behave exactly as in the SQLite backend.
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
    blocks: BlockMap,
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
        // A panic elsewhere cannot leave the maps half-updated: a transaction that does not
        // commit is undone before the lock is released.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Runs `f` as one transaction on the state: committed when it returns `Ok`, undone
    /// otherwise.
    fn write<R>(
        &self,
        f: impl AsyncFnOnce(&mut MemTxn<'_>) -> Result<R, StoreError>,
    ) -> Result<R, StoreError> {
        let mut state = self.state()?;
        let mut txn = MemTxn {
            state: &mut state,
            undo: Vec::new(),
        };
        let result = engine::run_ready(f(&mut txn)).and_then(|r| r);
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
}

/// How to undo one write of a [`MemTxn`].
enum Undo {
    /// Remove the allocation inserted at this id.
    Inserted((String, u128)),
    /// Put back this deleted allocation.
    Deleted(Allocation),
    /// Restore the cursor at this id to its old value.
    Cursor((String, String), Option<IpAddr>),
    /// Restore the block at this id to its old value.
    Block((String, u128), Option<Block>),
}

/// One transaction: writes go straight to the state and are journaled, so a failed
/// transaction is undone by [`MemTxn::roll_back`] before the lock is released.
struct MemTxn<'a> {
    state: &'a mut MemState,
    undo: Vec<Undo>,
}

impl MemTxn<'_> {
    fn roll_back(&mut self) {
        while let Some(undo) = self.undo.pop() {
            match undo {
                Undo::Inserted(id) => {
                    self.state.allocations.remove(&id);
                }
                Undo::Deleted(a) => {
                    self.state
                        .allocations
                        .insert((a.network.clone(), addr_key(a.ip)), a);
                }
                Undo::Cursor(id, old) => match old {
                    Some(ip) => {
                        self.state.cursors.insert(id, ip);
                    }
                    None => {
                        self.state.cursors.remove(&id);
                    }
                },
                Undo::Block(id, old) => match old {
                    Some(block) => {
                        self.state.blocks.insert(id, block);
                    }
                    None => {
                        self.state.blocks.remove(&id);
                    }
                },
            }
        }
    }

    fn put_block(&mut self, id: (String, u128), block: Option<Block>) {
        let old = match block {
            Some(block) => self.state.blocks.insert(id.clone(), block),
            None => self.state.blocks.remove(&id),
        };
        self.undo.push(Undo::Block(id, old));
    }
}

#[async_trait::async_trait]
impl StoreTxn for MemTxn<'_> {
    async fn existing(
        &mut self,
        key: &AttachmentKey,
        range_set: &str,
    ) -> Result<Option<Allocation>, StoreError> {
        Ok(self
            .state
            .held_by(key)
            .find(|a| a.range_set == range_set)
            .cloned())
    }

    async fn holder(
        &mut self,
        network: &str,
        ip: IpAddr,
    ) -> Result<Option<Allocation>, StoreError> {
        let id = (network.to_string(), addr_key(ip));
        Ok(self.state.allocations.get(&id).cloned())
    }

    async fn held_between(
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
        Ok(self
            .state
            .allocations
            .range(bounds)
            .map(|(_, a)| a.ip)
            .collect())
    }

    async fn count_between(
        &mut self,
        network: &str,
        lo: IpAddr,
        hi: IpAddr,
    ) -> Result<u64, StoreError> {
        let held = self.held_between(network, lo, hi).await?;
        Ok(u64::try_from(held.len()).unwrap_or(u64::MAX))
    }

    async fn cursor(
        &mut self,
        network: &str,
        range_set: &str,
    ) -> Result<Option<IpAddr>, StoreError> {
        let id = (network.to_string(), range_set.to_string());
        Ok(self.state.cursors.get(&id).copied())
    }

    async fn set_cursor(
        &mut self,
        network: &str,
        range_set: &str,
        ip: IpAddr,
    ) -> Result<(), StoreError> {
        let id = (network.to_string(), range_set.to_string());
        let old = self.state.cursors.insert(id.clone(), ip);
        self.undo.push(Undo::Cursor(id, old));
        Ok(())
    }

    async fn insert(&mut self, allocation: &Allocation) -> Result<(), StoreError> {
        let id = (allocation.network.clone(), addr_key(allocation.ip));
        if let Some(holder) = self.state.allocations.get(&id) {
            return Err(engine::address_taken(holder));
        }
        let key = allocation.key();
        if self
            .state
            .held_by(&key)
            .any(|a| a.range_set == allocation.range_set)
        {
            return Err(StoreError::Internal {
                reason: format!(
                    "attachment {}/{} already holds an address from range set {} of network {}",
                    key.container_id, key.ifname, allocation.range_set, key.network
                ),
            });
        }
        self.state
            .allocations
            .insert(id.clone(), allocation.clone());
        self.undo.push(Undo::Inserted(id));
        Ok(())
    }

    async fn delete_attachment(
        &mut self,
        key: &AttachmentKey,
    ) -> Result<Vec<Allocation>, StoreError> {
        let addrs: Vec<u128> = self.state.held_by(key).map(|a| addr_key(a.ip)).collect();
        let mut released = Vec::with_capacity(addrs.len());
        for k in addrs {
            if let Some(a) = self.state.allocations.remove(&(key.network.clone(), k)) {
                self.undo.push(Undo::Deleted(a.clone()));
                released.push(a);
            }
        }
        Ok(released)
    }

    async fn attachments_of(&mut self, network: &str) -> Result<Vec<(String, String)>, StoreError> {
        Ok(self
            .state
            .network(network)
            .map(|a| (a.container_id.clone(), a.ifname.clone()))
            .collect())
    }

    async fn node_blocks(
        &mut self,
        network: &str,
        range_set: &str,
        node: &str,
    ) -> Result<Vec<Block>, StoreError> {
        Ok(self
            .state
            .network_blocks(network)
            .filter(|b| b.range_set == range_set && b.node == node)
            .cloned()
            .collect())
    }

    async fn blocks_between(
        &mut self,
        network: &str,
        lo: IpAddr,
        hi: IpAddr,
    ) -> Result<Vec<Block>, StoreError> {
        let (lo, hi) = (addr_key(lo), addr_key(hi));
        if lo > hi {
            return Ok(Vec::new());
        }
        let bounds = (network.to_string(), lo)..=(network.to_string(), hi);
        Ok(self
            .state
            .blocks
            .range(bounds)
            .map(|(_, b)| b.clone())
            .collect())
    }

    async fn emptied_blocks(
        &mut self,
        network: &str,
        emptied_by: i64,
    ) -> Result<Vec<Block>, StoreError> {
        Ok(self
            .state
            .network_blocks(network)
            .filter(|b| b.emptied_at.is_some_and(|at| at <= emptied_by))
            .cloned()
            .collect())
    }

    async fn insert_block(&mut self, block: &Block) -> Result<bool, StoreError> {
        let id = (block.network.clone(), addr_key(block.base));
        if self.state.blocks.contains_key(&id) {
            return Ok(false);
        }
        self.put_block(id, Some(block.clone()));
        Ok(true)
    }

    async fn update_block(&mut self, block: &Block) -> Result<(), StoreError> {
        let id = (block.network.clone(), addr_key(block.base));
        let Some(stored) = self.state.blocks.get(&id) else {
            return Ok(());
        };
        let updated = Block {
            cursor: block.cursor,
            emptied_at: block.emptied_at,
            ..stored.clone()
        };
        self.put_block(id, Some(updated));
        Ok(())
    }

    async fn delete_block(&mut self, network: &str, base: IpAddr) -> Result<(), StoreError> {
        let id = (network.to_string(), addr_key(base));
        if self.state.blocks.contains_key(&id) {
            self.put_block(id, None);
        }
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
        ctx: &ClaimContext,
    ) -> Result<Vec<Allocation>, StoreError> {
        self.write(async |txn| engine::claim_all(txn, key, owner, claims, ctx).await)
    }

    async fn release(&self, key: &AttachmentKey) -> Result<Vec<Allocation>, StoreError> {
        let now = unix_now();
        self.write(async |txn| engine::release(txn, key, now).await)
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

    async fn blocks(&self, network: &str) -> Result<Vec<Block>, StoreError> {
        Ok(self.state()?.network_blocks(network).cloned().collect())
    }

    async fn gc(
        &self,
        network: &str,
        valid: &[(String, String)],
        blocks: &BlockPolicy,
        now: i64,
    ) -> Result<GcReport, StoreError> {
        self.write(async |txn| {
            let attached = txn.attachments_of(network).await?;
            let stale = engine::stale_attachments(attached, valid);
            let mut report = GcReport::default();
            for (container_id, ifname) in stale {
                let key = AttachmentKey::new(network, container_id, ifname);
                report
                    .released
                    .extend(engine::release(txn, &key, now).await?);
            }
            report.released.sort_by_key(|a| addr_key(a.ip));
            report.released_blocks = engine::expire_blocks(txn, network, blocks, now).await?;
            Ok(report)
        })
    }

    async fn probe(&self) -> Result<(), StoreError> {
        self.state().map(drop)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The safety net of expiry, for backends whose reads can go stale before commit: a
    /// block marked emptied that holds an address is kept and its mark cleared.
    #[tokio::test]
    async fn expiry_keeps_an_emptied_block_that_holds_an_address() {
        let store = MemoryStore::new();
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        let stale = Block {
            network: "n".into(),
            range_set: "s".into(),
            base: ip("10.0.0.0"),
            prefix: 28,
            node: "a".into(),
            claimed_at: 0,
            emptied_at: Some(0),
            cursor: None,
        };
        let held = Allocation {
            network: "n".into(),
            container_id: "c".into(),
            ifname: "eth0".into(),
            ip: ip("10.0.0.5"),
            range_set: "s".into(),
            owner: Owner::default(),
            created_at: 0,
            node: None,
        };
        let policy = BlockPolicy::default();
        let released = store
            .write(async |txn| {
                assert!(txn.insert_block(&stale).await?);
                assert!(!txn.insert_block(&stale).await?, "second insert refused");
                txn.insert(&held).await?;
                engine::expire_blocks(txn, "n", &policy, 10_000).await
            })
            .unwrap();
        assert!(released.is_empty());
        let kept = store.blocks("n").await.unwrap();
        assert_eq!(kept.len(), 1);
        assert_eq!(kept[0].emptied_at, None, "the stale mark is cleared");
    }

    #[tokio::test]
    async fn a_failed_transaction_is_undone() {
        let store = MemoryStore::new();
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        let a = Allocation {
            network: "n".into(),
            container_id: "c".into(),
            ifname: "eth0".into(),
            ip: ip("10.0.0.5"),
            range_set: "s".into(),
            owner: Owner::default(),
            created_at: 0,
            node: None,
        };
        store.write(async |txn| txn.insert(&a).await).unwrap();
        let block = Block {
            network: "n".into(),
            range_set: "s".into(),
            base: ip("10.0.0.0"),
            prefix: 28,
            node: "a".into(),
            claimed_at: 0,
            emptied_at: None,
            cursor: None,
        };
        let err = store.write(async |txn| {
            txn.delete_attachment(&a.key()).await?;
            txn.set_cursor("n", "s", ip("10.0.0.9")).await?;
            txn.insert_block(&block).await?;
            Err::<(), _>(StoreError::Busy {
                reason: "test".into(),
            })
        });
        assert!(err.is_err());
        assert_eq!(store.list("n").await.unwrap(), vec![a]);
        assert!(store.blocks("n").await.unwrap().is_empty());
        let cursor = store.write(async |txn| txn.cursor("n", "s").await).unwrap();
        assert_eq!(cursor, None);
    }

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
