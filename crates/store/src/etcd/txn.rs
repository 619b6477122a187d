//! [`EtcdTxn`]: the engine's [`StoreTxn`] over the etcd key layout ([`super::keys`]), on an
//! optimistic [`BufferedTxn`].
//!
//! The uniqueness guarantees of the trait are create-if-absent compares: inserting an
//! allocation reads its address key and its attachment-index key, and the commit requires
//! both still absent (`create_revision == 0`), so of two writers choosing one address (or
//! one attachment claiming twice), exactly one commits. A conflict seen already in the
//! snapshot is reported at once ([`StoreError::AddressTaken`], or `Ok(false)` for a block)
//! and leaves the transaction usable, since nothing was buffered.

use std::net::IpAddr;

use plexus_ipam_core::addr::key as addr_key;
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::buffered::BufferedTxn;
use super::conn::Failure;
use super::keys::Keys;
use crate::engine::{self, StoreTxn};
use crate::error::StoreError;
use crate::gc_scope::AttachedRow;
use crate::records::{HistoryEvent, NetworkRecord};
use crate::types::{Allocation, AttachmentKey, Block};

/// One claim, release or GC transaction of the etcd backend.
pub(crate) struct EtcdTxn<'a> {
    pub(crate) inner: BufferedTxn,
    pub(crate) keys: &'a Keys,
    /// At most this many blocks from [`StoreTxn::emptied_blocks`] (GC batches).
    emptied_limit: Option<usize>,
    /// Whether [`StoreTxn::emptied_blocks`] left blocks out because of the limit.
    emptied_truncated: bool,
    /// The position of the last history event this transaction appended.
    pub(crate) last_seq: u64,
    /// What [`StoreTxn::node_blocks`] found: the node's blocks per (network, range set,
    /// node), for the next claims' prefetch ([`super::claims::BlockBounds`]).
    pub(crate) blocks_seen: Vec<(NodeSet, Vec<(u128, u128)>)>,
}

/// A network, a range set id and a node: whose blocks.
pub(crate) type NodeSet = (String, String, String);

impl<'a> EtcdTxn<'a> {
    /// Wraps `inner` for the layout of `keys`.
    pub(crate) fn new(inner: BufferedTxn, keys: &'a Keys) -> Self {
        EtcdTxn {
            inner,
            keys,
            emptied_limit: None,
            emptied_truncated: false,
            last_seq: 0,
            blocks_seen: Vec::new(),
        }
    }

    /// Makes [`StoreTxn::emptied_blocks`] return at most `limit` blocks.
    pub(crate) fn limit_emptied(&mut self, limit: usize) {
        self.emptied_limit = Some(limit);
    }

    /// Whether [`StoreTxn::emptied_blocks`] left blocks for a later transaction.
    pub(crate) fn emptied_truncated(&self) -> bool {
        self.emptied_truncated
    }

    /// Every allocation of `network`, ascending by address.
    pub(crate) async fn all_allocations(
        &mut self,
        network: &str,
    ) -> Result<Vec<Allocation>, StoreError> {
        let (start, end) = self.keys.alloc_all(network);
        let entries = self.inner.range(&start, &end, false).await?;
        entries
            .iter()
            .map(|(key, value)| {
                let key = String::from_utf8_lossy(key);
                let allocation: Allocation = decode(&key, value)?;
                if self.keys.alloc(network, allocation.ip) != key {
                    return Err(corrupt(&key, "holds the allocation of another address"));
                }
                Ok(allocation)
            })
            .collect()
    }

    /// Every block of `network`, ascending by base.
    pub(crate) async fn all_blocks(&mut self, network: &str) -> Result<Vec<Block>, StoreError> {
        let (start, end) = self.keys.block_all(network);
        let mut blocks = self.blocks_in(&start, &end).await?;
        let (start, end) = self.keys.block_cursors_all(network);
        self.apply_cursor_hints(&mut blocks, &start, &end).await?;
        Ok(blocks)
    }

    /// Sets the cursor of each of `blocks` from its cursor-hint key in `[start, end)`, read
    /// unguarded. A block without a hint keeps the cursor of its record (the one it was
    /// claimed with, or one written by a plexus version that kept cursors only there).
    async fn apply_cursor_hints(
        &mut self,
        blocks: &mut [Block],
        start: &str,
        end: &[u8],
    ) -> Result<(), StoreError> {
        if blocks.is_empty() {
            return Ok(());
        }
        let entries = self.inner.range_unguarded(start, end, false).await?;
        for (key, value) in entries {
            let text = String::from_utf8_lossy(&key);
            let base = Keys::block_cursor_base(&key)
                .ok_or_else(|| corrupt(&text, "is no cursor-hint key"))?;
            let cursor = decode_ip(&text, &value)?;
            let hinted = blocks.iter_mut().find(|b| {
                b.base == base
                    && self
                        .keys
                        .block_cursor(&b.network, &b.range_set, &b.node, base)
                        == text
            });
            // A hint may outlive its block for a moment (an older version released it);
            // one outside its block is ignored, as no search may start outside the block.
            if let Some(block) = hinted
                && block.contains(cursor)
            {
                block.cursor = Some(cursor);
            }
        }
        Ok(())
    }

    /// The failure of a server call, if any (decides whether the call is retried).
    pub(crate) fn take_failure(&mut self) -> Option<Failure> {
        self.inner.take_failure()
    }

    /// Commits the buffered writes (see [`BufferedTxn::commit`]).
    pub(crate) async fn commit(self) -> Result<(), Failure> {
        self.inner.commit().await
    }

    /// The stored allocation of `ip` in `network`.
    pub(crate) async fn allocation(
        &mut self,
        network: &str,
        ip: IpAddr,
    ) -> Result<Option<Allocation>, StoreError> {
        let key = self.keys.alloc(network, ip);
        match self.inner.get(&key).await? {
            Some(value) => decode(&key, &value).map(Some),
            None => Ok(None),
        }
    }

    /// Everything `key` holds, ascending by address, from the attachment index.
    pub(crate) async fn held_by(
        &mut self,
        key: &AttachmentKey,
    ) -> Result<Vec<Allocation>, StoreError> {
        let (start, end) = self
            .keys
            .attach_all(&key.network, &key.container_id, &key.ifname);
        let entries = self.inner.range(&start, &end, false).await?;
        let mut held = Vec::with_capacity(entries.len());
        for (index_key, value) in entries {
            let index_key = String::from_utf8_lossy(&index_key).into_owned();
            let ip = decode_ip(&index_key, &value)?;
            let allocation = self.allocation(&key.network, ip).await?;
            held.push(indexed(&index_key, key, allocation, ip)?);
        }
        held.sort_by_key(|a| addr_key(a.ip));
        Ok(held)
    }

    /// The stored block of `network` based at `base`.
    async fn block(&mut self, network: &str, base: IpAddr) -> Result<Option<Block>, StoreError> {
        let key = self.keys.block(network, base);
        match self.inner.get(&key).await? {
            Some(value) => decode(&key, &value).map(Some),
            None => Ok(None),
        }
    }

    /// Decoded blocks of a range of block (or by-node index) keys.
    pub(crate) async fn blocks_in(
        &mut self,
        start: &str,
        end: &[u8],
    ) -> Result<Vec<Block>, StoreError> {
        let entries = self.inner.range(start, end, false).await?;
        entries
            .iter()
            .map(|(key, value)| decode(&String::from_utf8_lossy(key), value))
            .collect()
    }

    /// The number of allocations of `network` in `[lo, hi]`; `guarded` makes the commit
    /// depend on the count (see [`BufferedTxn::count_unguarded`]).
    async fn count_allocations(
        &mut self,
        network: &str,
        lo: IpAddr,
        hi: IpAddr,
        guarded: bool,
    ) -> Result<u64, StoreError> {
        let mut count = 0;
        for (lo, hi) in engine::family_key_ranges(lo, hi)? {
            let (start, end) = self.keys.alloc_range(network, lo, hi);
            count += if guarded {
                self.inner.count(&start, &end).await?
            } else {
                self.inner.count_unguarded(&start, &end).await?
            };
        }
        Ok(count)
    }

    /// Writes the cursor-hint key of `block` (nothing when it has no cursor), unguarded.
    fn put_cursor_hint(&mut self, block: &Block) {
        if let Some(cursor) = block.cursor {
            let key =
                self.keys
                    .block_cursor(&block.network, &block.range_set, &block.node, block.base);
            self.inner.put(&key, cursor.to_string().into_bytes());
        }
    }

    /// Writes `block` and its by-node index; moves its emptied-index key from `old`'s.
    fn write_block(&mut self, block: &Block, old: Option<&Block>) -> Result<(), StoreError> {
        let value = encode(block)?;
        let network = &block.network;
        self.inner
            .put(&self.keys.block(network, block.base), value.clone());
        let by_node = self
            .keys
            .node_block(network, &block.range_set, &block.node, block.base);
        self.inner.put(&by_node, value);
        self.put_cursor_hint(block);
        let old_emptied = old.and_then(|b| b.emptied_at);
        if old_emptied != block.emptied_at {
            if let Some(at) = old_emptied {
                self.inner
                    .delete(&self.keys.emptied(network, at, block.base));
            }
            if let Some(at) = block.emptied_at {
                self.inner
                    .put(&self.keys.emptied(network, at, block.base), Vec::new());
            }
        }
        Ok(())
    }
}

#[async_trait::async_trait]
impl StoreTxn for EtcdTxn<'_> {
    async fn existing(
        &mut self,
        key: &AttachmentKey,
        range_set: &str,
    ) -> Result<Option<Allocation>, StoreError> {
        let index_key = self
            .keys
            .attach(&key.network, &key.container_id, &key.ifname, range_set);
        let Some(value) = self.inner.get(&index_key).await? else {
            return Ok(None);
        };
        let ip = decode_ip(&index_key, &value)?;
        let allocation = self.allocation(&key.network, ip).await?;
        let allocation = indexed(&index_key, key, allocation, ip)?;
        if allocation.range_set != range_set {
            return Err(corrupt(
                &index_key,
                "points at an allocation of another range set",
            ));
        }
        Ok(Some(allocation))
    }

    async fn holder(
        &mut self,
        network: &str,
        ip: IpAddr,
    ) -> Result<Option<Allocation>, StoreError> {
        self.allocation(network, ip).await
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
        let (start, end) = self.keys.alloc_range(network, lo, hi);
        let entries = self.inner.range_unguarded(&start, &end, true).await?;
        entries
            .iter()
            .map(|(key, _)| {
                self.keys
                    .alloc_ip(network, key)
                    .ok_or_else(|| corrupt(&String::from_utf8_lossy(key), "is no address key"))
            })
            .collect()
    }

    async fn count_between(
        &mut self,
        network: &str,
        lo: IpAddr,
        hi: IpAddr,
    ) -> Result<u64, StoreError> {
        self.count_allocations(network, lo, hi, true).await
    }

    async fn cursor(
        &mut self,
        network: &str,
        range_set: &str,
    ) -> Result<Option<IpAddr>, StoreError> {
        // Unguarded: a stale cursor costs search, never uniqueness (the chosen address
        // key is created only if absent), and guarding it made every borrow conflict.
        let key = self.keys.cursor(network, range_set);
        match self.inner.get_unguarded(&key).await? {
            Some(value) => decode_ip(&key, &value).map(Some),
            None => Ok(None),
        }
    }

    async fn set_cursor(
        &mut self,
        network: &str,
        range_set: &str,
        ip: IpAddr,
    ) -> Result<(), StoreError> {
        let key = self.keys.cursor(network, range_set);
        self.inner.put(&key, ip.to_string().into_bytes());
        Ok(())
    }

    async fn insert(&mut self, allocation: &Allocation) -> Result<(), StoreError> {
        let network = &allocation.network;
        if let Some(holder) = self.allocation(network, allocation.ip).await? {
            return Err(engine::address_taken(&holder));
        }
        let index_key = self.keys.attach(
            network,
            &allocation.container_id,
            &allocation.ifname,
            &allocation.range_set,
        );
        if self.inner.get(&index_key).await?.is_some() {
            return Err(StoreError::Internal {
                reason: format!(
                    "container {} interface {} already holds an address of range set {} in \
                     network {network}",
                    allocation.container_id, allocation.ifname, allocation.range_set
                ),
            });
        }
        // Both keys were read as absent: the commit requires them still absent.
        let value = encode(allocation)?;
        self.inner
            .put(&self.keys.alloc(network, allocation.ip), value);
        self.inner
            .put(&index_key, allocation.ip.to_string().into_bytes());
        Ok(())
    }

    async fn delete_attachment(
        &mut self,
        key: &AttachmentKey,
    ) -> Result<Vec<Allocation>, StoreError> {
        let held = self.held_by(key).await?;
        for allocation in &held {
            self.inner
                .delete(&self.keys.alloc(&key.network, allocation.ip));
            let index_key = self.keys.attach(
                &key.network,
                &key.container_id,
                &key.ifname,
                &allocation.range_set,
            );
            self.inner.delete(&index_key);
        }
        Ok(held)
    }

    async fn attachments_of(&mut self, network: &str) -> Result<Vec<AttachedRow>, StoreError> {
        // The attachment index keys do not carry the node: GC reads the records (the one
        // read allowed to grow with the network).
        Ok(self
            .all_allocations(network)
            .await?
            .into_iter()
            .map(|a| AttachedRow {
                container_id: a.container_id,
                ifname: a.ifname,
                node: a.node,
                range_set: a.range_set,
            })
            .collect())
    }

    async fn node_blocks(
        &mut self,
        network: &str,
        range_set: &str,
        node: &str,
    ) -> Result<Vec<Block>, StoreError> {
        let (start, end) = self.keys.node_blocks(network, range_set, node);
        let mut blocks = self.blocks_in(&start, &end).await?;
        let bounds = blocks
            .iter()
            .map(|b| (addr_key(b.base), addr_key(b.last())))
            .collect();
        let whose = (network.to_owned(), range_set.to_owned(), node.to_owned());
        self.blocks_seen.push((whose, bounds));
        let (start, end) = self.keys.block_cursors(network, range_set, node);
        self.apply_cursor_hints(&mut blocks, &start, &end).await?;
        Ok(blocks)
    }

    async fn count_between_unguarded(
        &mut self,
        network: &str,
        lo: IpAddr,
        hi: IpAddr,
    ) -> Result<u64, StoreError> {
        self.count_allocations(network, lo, hi, false).await
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
        let (start, end) = self.keys.block_range(network, lo, hi);
        self.blocks_in(&start, &end).await
    }

    async fn emptied_blocks(
        &mut self,
        network: &str,
        emptied_by: i64,
    ) -> Result<Vec<Block>, StoreError> {
        let (start, end) = self.keys.emptied_until(network, emptied_by);
        let mut entries = self.inner.range(&start, &end, true).await?;
        if let Some(limit) = self.emptied_limit {
            self.emptied_truncated = entries.len() > limit;
            entries.truncate(limit);
        }
        let mut blocks = Vec::with_capacity(entries.len());
        for (key, _) in entries {
            let base = self.keys.emptied_base(network, &key).ok_or_else(|| {
                corrupt(&String::from_utf8_lossy(&key), "is no emptied-index key")
            })?;
            match self.block(network, base).await? {
                Some(block) if block.emptied_at.is_some_and(|at| at <= emptied_by) => {
                    blocks.push(block);
                }
                _ => {
                    return Err(corrupt(
                        &String::from_utf8_lossy(&key),
                        "names a block that is not emptied that early",
                    ));
                }
            }
        }
        Ok(blocks)
    }

    async fn insert_block(&mut self, block: &Block) -> Result<bool, StoreError> {
        if self.block(&block.network, block.base).await?.is_some() {
            return Ok(false);
        }
        // Read as absent: the commit requires the block key still absent.
        self.write_block(block, None)?;
        Ok(true)
    }

    async fn update_block(&mut self, block: &Block) -> Result<(), StoreError> {
        let old = self
            .block(&block.network, block.base)
            .await?
            .ok_or_else(|| StoreError::Internal {
                reason: format!(
                    "block {}/{} of network {} vanished before its update",
                    block.base, block.prefix, block.network
                ),
            })?;
        self.write_block(block, Some(&old))
    }

    async fn set_block_cursor(&mut self, block: &Block) -> Result<(), StoreError> {
        // Only the hint: the block record (guarded by every claim of the node) stays as it is.
        self.put_cursor_hint(block);
        Ok(())
    }

    async fn delete_block(&mut self, network: &str, base: IpAddr) -> Result<(), StoreError> {
        let Some(old) = self.block(network, base).await? else {
            return Ok(());
        };
        self.inner.delete(&self.keys.block(network, base));
        self.inner.delete(
            &self
                .keys
                .node_block(network, &old.range_set, &old.node, base),
        );
        if let Some(at) = old.emptied_at {
            self.inner.delete(&self.keys.emptied(network, at, base));
        }
        self.inner.delete(
            &self
                .keys
                .block_cursor(network, &old.range_set, &old.node, base),
        );
        Ok(())
    }

    async fn get_network(&mut self, name: &str) -> Result<Option<NetworkRecord>, StoreError> {
        self.stored_network(name).await
    }

    async fn write_network(&mut self, record: &NetworkRecord) -> Result<(), StoreError> {
        let value = encode(record)?;
        self.inner.put(&self.keys.network(&record.name), value);
        Ok(())
    }

    async fn remove_network(&mut self, name: &str) -> Result<(), StoreError> {
        self.inner.delete(&self.keys.network(name));
        Ok(())
    }

    async fn append_history(&mut self, event: &HistoryEvent) -> Result<(), StoreError> {
        self.push_history(event)
    }
}

/// The allocation an attachment-index key points at, checked against the index.
fn indexed(
    index_key: &str,
    key: &AttachmentKey,
    allocation: Option<Allocation>,
    ip: IpAddr,
) -> Result<Allocation, StoreError> {
    match allocation {
        Some(a) if a.is_held_by(key) && a.ip == ip => Ok(a),
        Some(_) => Err(corrupt(
            index_key,
            "points at an address another attachment holds",
        )),
        None => Err(corrupt(index_key, "points at an address nobody holds")),
    }
}

pub(crate) fn corrupt(key: &str, what: &str) -> StoreError {
    StoreError::Corrupt {
        reason: format!("etcd key {key} {what}"),
    }
}

/// JSON of a stored value.
pub(crate) fn encode(value: &impl Serialize) -> Result<Vec<u8>, StoreError> {
    serde_json::to_vec(value).map_err(|e| StoreError::Internal {
        reason: format!("cannot encode a stored value: {e}"),
    })
}

/// A stored JSON value of `key`.
pub(crate) fn decode<T: DeserializeOwned>(key: &str, value: &[u8]) -> Result<T, StoreError> {
    serde_json::from_slice(value).map_err(|e| corrupt(key, &format!("holds undecodable JSON: {e}")))
}

/// A stored address (text) of `key`.
fn decode_ip(key: &str, value: &[u8]) -> Result<IpAddr, StoreError> {
    std::str::from_utf8(value)
        .ok()
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| corrupt(key, "holds no address"))
}
