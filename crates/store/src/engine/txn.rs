//! [`StoreTxn`]: the primitive reads and writes of one open backend transaction, the only
//! thing a backend has to provide for the shared engine to run claims, releases, GC and
//! per-node blocks on it.

use std::net::IpAddr;

use crate::error::StoreError;
use crate::gc_scope::AttachedRow;
use crate::records::{HistoryEvent, NetworkRecord};
use crate::types::{Allocation, AttachmentKey, Block};

/// The primitive operations of ONE open read-write transaction of a backend.
///
/// The engine ([`crate::engine`]) runs all logic (idempotency, static conflicts, next-fit,
/// per-node blocks, grace periods) on top of these calls; a backend opens the transaction,
/// hands it to an engine function, and commits only when that function returns `Ok`
/// (dropping or rolling back otherwise, so nothing is half-written).
///
/// # The contract
///
/// - **Snapshot plus own writes.** Reads see one consistent state of the store plus every
///   write made earlier through this same transaction (read-your-writes), including
///   rows this transaction deleted being gone.
/// - **Hard guarantees live in the backend, not in reads.** [`StoreTxn::insert`] must
///   refuse a second allocation of the same `(network, ip)` and a second allocation of the
///   same `(network, container_id, ifname, range_set)`; [`StoreTxn::insert_block`] must
///   refuse a second block of the same `(network, base)`. A unique constraint, a
///   create-if-absent transaction, or a serialized writer: never only a read before the
///   write. When such a conflict can only be detected at commit (optimistic backends such
///   as etcd), the commit fails with [`StoreError::Busy`] and the caller retries the whole
///   transaction; nothing of it may be kept.
/// - **Isolation.** Backends should keep the engine's reads valid until commit
///   (SQLite: `BEGIN IMMEDIATE`; PostgreSQL: `SERIALIZABLE` or row locks; etcd: compare the
///   mod revisions of what was read). If a backend cannot, the worst outcome must be a
///   block record that disagrees with the addresses inside it (blocks are placement hints),
///   never a duplicate address.
/// - **Addresses** are [`IpAddr`]s in canonical form (IPv4 as `IpAddr::V4`, never
///   IPv4-mapped IPv6). "Ascending" and "between" mean the order of
///   `plexus_ipam_core::addr::key`, a `u128` per address in which IPv4 `a.b.c.d` is
///   `::ffff:a.b.c.d`; bounds are inclusive. The engine always passes `lo` and `hi` of one
///   family, and IPv6 bounds never straddle the IPv4-mapped block `::ffff:0:0/96`, so a
///   plain key-range query is exact.
/// - **Errors.** A store that cannot be reached, or stayed locked past its timeout, is
///   [`StoreError::Unavailable`]; transient contention (serialization failure, lost
///   optimistic race) is [`StoreError::Busy`]; undecodable stored data is
///   [`StoreError::Corrupt`]. Messages name the path or endpoint, never secrets.
/// - **Cost.** Every method must be answered from an index: never load a whole network,
///   range set or table. Lists returned are small by construction (a window of at most
///   `FreeSearch::WINDOW` addresses, one attachment, one node's blocks).
/// - The futures are `Send`: a backend keeps only `Send` state (e.g. `&mut Connection`,
///   a `tokio_postgres::Transaction`, buffered etcd operations) in the implementing type.
#[async_trait::async_trait]
pub(crate) trait StoreTxn: Send {
    /// The allocation `key` holds under range set `range_set` (the id, `RangeSet::id()`),
    /// if any. At most one exists (the second uniqueness guarantee of [`StoreTxn::insert`]).
    async fn existing(
        &mut self,
        key: &AttachmentKey,
        range_set: &str,
    ) -> Result<Option<Allocation>, StoreError>;

    /// The allocation holding `ip` in `network`, if any.
    async fn holder(&mut self, network: &str, ip: IpAddr)
    -> Result<Option<Allocation>, StoreError>;

    /// The held addresses of `network` within `[lo, hi]`, ascending. The window spans at
    /// most `FreeSearch::WINDOW` (1024) addresses.
    async fn held_between(
        &mut self,
        network: &str,
        lo: IpAddr,
        hi: IpAddr,
    ) -> Result<Vec<IpAddr>, StoreError>;

    /// The number of held addresses of `network` within `[lo, hi]` (one block, at most
    /// 4096 addresses), counted from an index: used to decide whether a block is empty.
    async fn count_between(
        &mut self,
        network: &str,
        lo: IpAddr,
        hi: IpAddr,
    ) -> Result<u64, StoreError>;

    /// Like [`StoreTxn::count_between`], but an optimistic backend need not make the
    /// commit depend on the count: for decisions checked again before anything relies on
    /// them (marking a block emptied: its release counts again). Locking backends count
    /// as [`StoreTxn::count_between`] does.
    async fn count_between_unguarded(
        &mut self,
        network: &str,
        lo: IpAddr,
        hi: IpAddr,
    ) -> Result<u64, StoreError> {
        self.count_between(network, lo, hi).await
    }

    /// The next-fit cursor of `(network, range_set)`: the address last handed out by a
    /// whole-set search there, if one ever was. (Blocks carry their own cursor.)
    async fn cursor(
        &mut self,
        network: &str,
        range_set: &str,
    ) -> Result<Option<IpAddr>, StoreError>;

    /// Sets the next-fit cursor of `(network, range_set)` to `ip` (create or overwrite).
    async fn set_cursor(
        &mut self,
        network: &str,
        range_set: &str,
        ip: IpAddr,
    ) -> Result<(), StoreError>;

    /// Inserts a new allocation with every field as given.
    ///
    /// An address already held in the network fails with [`StoreError::AddressTaken`]
    /// naming the holder (use [`crate::engine::address_taken`]); an attachment that already
    /// holds an address of the same range set fails with [`StoreError::Internal`]. This
    /// check is the backend's uniqueness guarantee (see the trait docs).
    async fn insert(&mut self, allocation: &Allocation) -> Result<(), StoreError>;

    /// Deletes every allocation held by `key` (all range sets) and returns them, ascending
    /// by address. Nothing held gives an empty list.
    async fn delete_attachment(
        &mut self,
        key: &AttachmentKey,
    ) -> Result<Vec<Allocation>, StoreError>;

    /// One row per allocation of `network` (holder, node, range set), in any order: GC's
    /// view of the network, the one call allowed to grow with the network.
    async fn attachments_of(&mut self, network: &str) -> Result<Vec<AttachedRow>, StoreError>;

    /// The blocks `node` holds in `(network, range_set)`, ascending by base.
    async fn node_blocks(
        &mut self,
        network: &str,
        range_set: &str,
        node: &str,
    ) -> Result<Vec<Block>, StoreError>;

    /// The blocks of `network` (any range set, any node) whose base lies within
    /// `[lo, hi]`, ascending by base.
    async fn blocks_between(
        &mut self,
        network: &str,
        lo: IpAddr,
        hi: IpAddr,
    ) -> Result<Vec<Block>, StoreError>;

    /// The blocks of `network` whose `emptied_at` is set and `<= emptied_by`, in any order
    /// (the candidates for release after the grace period).
    async fn emptied_blocks(
        &mut self,
        network: &str,
        emptied_by: i64,
    ) -> Result<Vec<Block>, StoreError>;

    /// Inserts a new block with every field as given. Returns `Ok(false)`, leaving the
    /// transaction usable, when a block with the same `(network, base)` exists already (a
    /// node that claimed it first); the engine then tries another block. A backend that
    /// learns of the conflict only at commit returns `Ok(true)` and fails the commit with
    /// [`StoreError::Busy`].
    async fn insert_block(&mut self, block: &Block) -> Result<bool, StoreError>;

    /// Stores the mutable fields of the existing block `(block.network, block.base)`:
    /// `cursor` and `emptied_at`. The other fields never change after insertion.
    async fn update_block(&mut self, block: &Block) -> Result<(), StoreError>;

    /// Stores `block.cursor` of the existing block `(block.network, block.base)`, every
    /// other field unchanged. Cursors are hints (a stale one costs a longer search, never
    /// uniqueness), so an optimistic backend may write it without making the commit
    /// depend on the block record: every claim in a block moves its cursor, and a guarded
    /// record would make the claims of one node conflict with each other.
    async fn set_block_cursor(&mut self, block: &Block) -> Result<(), StoreError> {
        self.update_block(block).await
    }

    /// Deletes the block `(network, base)`; a missing block is not an error.
    async fn delete_block(&mut self, network: &str, base: IpAddr) -> Result<(), StoreError>;

    /// The stored network `name`, if any.
    async fn get_network(&mut self, name: &str) -> Result<Option<NetworkRecord>, StoreError>;

    /// Stores `record` under its name, creating or overwriting it (the engine has checked
    /// the revision it expects inside this transaction).
    async fn write_network(&mut self, record: &NetworkRecord) -> Result<(), StoreError>;

    /// Deletes the stored network `name`; a missing one is not an error.
    async fn remove_network(&mut self, name: &str) -> Result<(), StoreError>;

    /// Appends `event` to the history of `event.network`, assigning its position (`seq`,
    /// greater than every kept one of the network), and keeps the history bounded to the
    /// backend's configured number of events per network. Must not cost more as the
    /// history grows (no count or scan of it per append; amortized pruning is fine).
    async fn append_history(&mut self, event: &HistoryEvent) -> Result<(), StoreError>;
}
