//! The [`Store`] trait every backend implements.

use std::net::IpAddr;

use plexus_ipam_core::BlockPolicy;

use crate::error::StoreError;
use crate::gc_scope::GcScope;
use crate::records::{HistoryEvent, HistoryQuery, NetworkDeletion, NetworkRecord, PutMode};
use crate::types::{
    Allocation, AttachmentKey, Block, Claim, ClaimContext, ClaimRequest, GcReport, Owner,
};

/// Transactional storage of address allocations, keyed by CNI attachment.
///
/// The trait is async so network backends (PostgreSQL, etcd, Kubernetes) fit naturally;
/// embedded backends may block inside the async fns (a CNI plugin process serves one call
/// on a current-thread runtime).
///
/// Uniqueness of an address within a network is guaranteed by the backend itself (a
/// database constraint, a create-if-absent transaction), never only by a read before a
/// write.
#[async_trait::async_trait]
pub trait Store: Send + Sync {
    /// Claims the addresses of one ADD in ONE atomic transaction: either every claim
    /// succeeds or nothing is kept.
    ///
    /// Idempotent per key: for each claim whose range set (by id) already has an
    /// allocation for `key`, the existing allocation is returned instead of a new one (a
    /// [`Claim::Static`] whose existing address differs fails with
    /// [`StoreError::AttachmentHoldsOther`]).
    ///
    /// [`Claim::Dynamic`] with blocks enabled in `ctx.blocks` allocates from the blocks of
    /// `ctx.node` first, claims a new block when they are full and borrows any free
    /// address of the set when no block is free; with blocks disabled it searches next-fit
    /// from the per-(network, range set id) cursor. Cursors and blocks move in the same
    /// transaction. [`Claim::Static`] ignores blocks and fails with
    /// [`StoreError::AddressTaken`] naming the holder when another attachment holds the
    /// address in this network.
    ///
    /// New allocations record `ctx.node`, `ctx.now` and `owner` (including its opaque
    /// `details`), and append one [`crate::HistoryKind::Claim`] event each to the network's
    /// history, all in the same transaction. Returns one allocation per claim, in claim
    /// order.
    async fn claim(
        &self,
        key: &AttachmentKey,
        owner: &Owner,
        claims: &[Claim<'_>],
        ctx: &ClaimContext,
    ) -> Result<Vec<Allocation>, StoreError>;

    /// Runs the claims of several ADDs, each as [`claim`](Self::claim) would, and answers
    /// each in request order. Each request stays atomic on its own: one that fails (an
    /// exhausted pool, a taken static address) keeps nothing and does not stop the others.
    ///
    /// The node agent hands a node's queued claims over this way. A backend may commit
    /// them in one transaction (etcd: one snapshot read, one commit for the lot); the
    /// default runs them one after the other.
    async fn claim_batch(
        &self,
        requests: &[ClaimRequest<'_>],
    ) -> Vec<Result<Vec<Allocation>, StoreError>> {
        let mut answers = Vec::with_capacity(requests.len());
        for request in requests {
            answers.push(
                self.claim(request.key, request.owner, request.claims, request.ctx)
                    .await,
            );
        }
        answers
    }

    /// Releases everything held by `key` and returns what was released, ordered by
    /// address. Nothing held is not an error: the result is empty. A block left without
    /// any address is marked emptied now (it is released after its grace period). Every
    /// released address appends a [`crate::HistoryKind::Release`] event in the same
    /// transaction (so do GC's releases).
    async fn release(&self, key: &AttachmentKey) -> Result<Vec<Allocation>, StoreError>;

    /// Everything held by `key`, ordered by address.
    async fn attachment(&self, key: &AttachmentKey) -> Result<Vec<Allocation>, StoreError>;

    /// The allocation holding `ip` in `network`, if any.
    async fn holder(&self, network: &str, ip: IpAddr) -> Result<Option<Allocation>, StoreError>;

    /// Every allocation of `network`, ordered by address (IPv4 before IPv6).
    async fn list(&self, network: &str) -> Result<Vec<Allocation>, StoreError>;

    /// Number of allocations of `network` with `lo <= ip <= hi` of the family of `lo` and
    /// `hi`, which must agree ([`StoreError::Internal`] otherwise); `lo > hi` counts nothing.
    /// IPv6 bounds never count IPv4 allocations, although IPv4 keys live inside
    /// `::ffff:0:0/96`. Answered from an index, never by loading rows.
    async fn count_between(&self, network: &str, lo: IpAddr, hi: IpAddr)
    -> Result<u64, StoreError>;

    /// The allocations of `network` with `lo <= ip <= hi` (one family, as in
    /// [`Store::count_between`]), ascending by address, at most `limit` of them: a page.
    /// The next page starts just above the last address returned. Answered from an index.
    async fn list_between(
        &self,
        network: &str,
        lo: IpAddr,
        hi: IpAddr,
        limit: usize,
    ) -> Result<Vec<Allocation>, StoreError>;

    /// Writes the definition of network `name` as `mode` allows (create, update of a
    /// known revision, or upsert) and returns the stored record. A refused write is
    /// [`StoreError::Conflict`] saying what was found.
    async fn put_network(
        &self,
        name: &str,
        definition: &serde_json::Value,
        mode: PutMode,
    ) -> Result<NetworkRecord, StoreError>;

    /// The stored network `name`, if any.
    async fn network(&self, name: &str) -> Result<Option<NetworkRecord>, StoreError>;

    /// Every stored network, ordered by name.
    async fn networks(&self) -> Result<Vec<NetworkRecord>, StoreError>;

    /// The name of every network holding at least one allocation, ordered by name, whether
    /// or not a definition of it is stored: allocations outlive `network delete --force`,
    /// and this is how they are found again. Cost grows with the number of such networks,
    /// not with the number of allocations.
    async fn allocated_networks(&self) -> Result<Vec<String>, StoreError>;

    /// Deletes the definition of network `name`. While the network holds addresses the
    /// definition is kept and [`NetworkDeletion::InUse`] reports how many, unless `force`,
    /// which deletes it anyway (the allocations stay until released or collected). The
    /// count and the deletion are one transaction.
    async fn delete_network(&self, name: &str, force: bool) -> Result<NetworkDeletion, StoreError>;

    /// The kept history events matching `query`, oldest first (by time, then network,
    /// then position). Each network keeps its newest `history_limit` events (store
    /// configuration, default [`crate::DEFAULT_HISTORY_LIMIT`]).
    async fn history(&self, query: &HistoryQuery) -> Result<Vec<HistoryEvent>, StoreError>;

    /// Appends `events` (given oldest first) to the histories of their networks as they
    /// are, except `seq`, which the store assigns; the bound applies. For imports: claims
    /// and releases record their events themselves.
    async fn record_history(&self, events: &[HistoryEvent]) -> Result<(), StoreError>;

    /// Every block of `network`, ordered by base address (IPv4 before IPv6).
    async fn blocks(&self, network: &str) -> Result<Vec<Block>, StoreError>;

    /// CNI GC: releases every allocation of `network` within `scope` whose
    /// `(container_id, ifname)` is not in `valid`, then every block of `network` within
    /// `scope` that has been empty for at least `blocks.release_after_secs` at `now`
    /// (seconds since the Unix epoch). Only `network` is touched; a block that still holds
    /// an address is never released.
    ///
    /// On a shared store `valid` is what ONE node's runtime knows, so a runtime's GC runs
    /// with [`GcScope::node`]: allocations claimed on other nodes, or with no recorded
    /// node, are never considered (see [`crate::GcScope`]). An attachment is in scope only
    /// when every allocation it holds is.
    ///
    /// Keeps going past errors of individual attachments and reports them all in
    /// [`GcReport::errors`]. A store-wide failure ([`StoreError::Unavailable`],
    /// [`StoreError::Busy`]) ends the sweep with that error; whatever a backend had already
    /// committed stays released.
    async fn gc(
        &self,
        network: &str,
        valid: &[(String, String)],
        scope: &GcScope,
        blocks: &BlockPolicy,
        now: i64,
    ) -> Result<GcReport, StoreError>;

    /// Cheap health probe for CNI STATUS: succeeds only when the store is reachable AND
    /// writable.
    async fn probe(&self) -> Result<(), StoreError>;
}
