//! [`MemTxn`]: one journaled transaction on the state of a [`super::MemoryStore`].

use std::net::IpAddr;

use plexus_ipam_core::addr::key as addr_key;

use super::MemState;
use crate::engine::{self, StoreTxn};
use crate::error::StoreError;
use crate::gc_scope::AttachedRow;
use crate::records::{HistoryEvent, NetworkRecord};
use crate::types::{Allocation, AttachmentKey, Block};

/// How to undo one write of a [`MemTxn`].
pub(super) enum Undo {
    /// Remove the allocation inserted at this id.
    Inserted((String, u128)),
    /// Put back this deleted allocation.
    Deleted(Allocation),
    /// Restore the cursor at this id to its old value.
    Cursor((String, String), Option<IpAddr>),
    /// Restore the block at this id to its old value.
    Block((String, u128), Option<Block>),
    /// Restore the network of this name to its old value.
    Network(String, Option<NetworkRecord>),
    /// Remove the history event appended at this id.
    Appended((String, u64)),
    /// Put back this pruned history event.
    Pruned(HistoryEvent),
}

/// One transaction: writes go straight to the state and are journaled, so a failed
/// transaction is undone by [`MemTxn::roll_back`] before the lock is released.
pub(super) struct MemTxn<'a> {
    pub(super) state: &'a mut MemState,
    pub(super) undo: Vec<Undo>,
}

impl MemTxn<'_> {
    pub(super) fn roll_back(&mut self) {
        while let Some(undo) = self.undo.pop() {
            match undo {
                Undo::Network(name, old) => match old {
                    Some(record) => {
                        self.state.networks.insert(name, record);
                    }
                    None => {
                        self.state.networks.remove(&name);
                    }
                },
                Undo::Appended(id) => {
                    self.state.history.remove(&id);
                }
                Undo::Pruned(event) => {
                    self.state
                        .history
                        .insert((event.network.clone(), event.seq), event);
                }
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

    async fn attachments_of(&mut self, network: &str) -> Result<Vec<AttachedRow>, StoreError> {
        Ok(self
            .state
            .network(network)
            .map(|a| AttachedRow {
                container_id: a.container_id.clone(),
                ifname: a.ifname.clone(),
                node: a.node.clone(),
                range_set: a.range_set.clone(),
            })
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

    async fn get_network(&mut self, name: &str) -> Result<Option<NetworkRecord>, StoreError> {
        Ok(self.state.networks.get(name).cloned())
    }

    async fn write_network(&mut self, record: &NetworkRecord) -> Result<(), StoreError> {
        let old = self
            .state
            .networks
            .insert(record.name.clone(), record.clone());
        self.undo.push(Undo::Network(record.name.clone(), old));
        Ok(())
    }

    async fn remove_network(&mut self, name: &str) -> Result<(), StoreError> {
        if let Some(old) = self.state.networks.remove(name) {
            self.undo.push(Undo::Network(name.to_string(), Some(old)));
        }
        Ok(())
    }

    async fn append_history(&mut self, event: &HistoryEvent) -> Result<(), StoreError> {
        let network = event.network.clone();
        let last = self
            .state
            .network_history(&network)
            .next_back()
            .map(|e| e.seq);
        let seq = last.map_or(1, |s| s + 1);
        let id = (network.clone(), seq);
        self.state.history.insert(
            id.clone(),
            HistoryEvent {
                seq,
                ..event.clone()
            },
        );
        self.undo.push(Undo::Appended(id));
        // Newest `limit` kept: everything at or below `seq - limit` goes (usually one event).
        let keep_from = seq.saturating_sub(u64::from(self.state.history_limit));
        let bounds = (network.clone(), 0)..=(network, keep_from);
        let stale: Vec<(String, u64)> = self
            .state
            .history
            .range(bounds)
            .map(|(k, _)| k.clone())
            .collect();
        for id in stale {
            if let Some(old) = self.state.history.remove(&id) {
                self.undo.push(Undo::Pruned(old));
            }
        }
        Ok(())
    }
}
