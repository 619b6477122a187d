//! [`Tables`]: what a PostgreSQL layout (the tables holding the allocations) does, so the
//! store around it (connections, deadlines, transactions, batches) never asks which layout
//! it runs on.
//!
//! Two layouts implement it: [`super::native::NativeTables`] (plexus's own versioned
//! schema) and [`super::ips_table::IpsTable`] (the CNI 1.1 talk's `ips` table). Each hands
//! the shared engine its own [`StoreTxn`] (the transaction primitives), and says what it
//! cannot hold with the error that explains why.

use std::net::IpAddr;

use plexus_ipam_core::BlockPolicy;
use tokio_postgres::Client;

use super::config::{Layout, PostgresConfig};
use super::errors::ErrCtx;
use super::ips_table::IpsTable;
use super::native::NativeTables;
use super::txn::NetworkLock;
use crate::engine::{self, StoreTxn};
use crate::error::StoreError;
use crate::gc_scope::GcScope;
use crate::records::{HistoryEvent, HistoryQuery, NetworkDeletion, NetworkRecord, PutMode};
use crate::types::{Allocation, AttachmentKey, Block, Claim, ClaimContext, GcReport, Owner};

/// The arguments of one GC, handed down to its sweep.
#[derive(Clone, Copy)]
pub(super) struct GcPass<'a> {
    pub network: &'a str,
    pub valid: &'a [(String, String)],
    pub scope: &'a GcScope,
    pub policy: &'a BlockPolicy,
    pub now: i64,
}

/// Savepoint isolating one attachment of a GC sweep.
const GC_SAVEPOINT: &str = "plexus_gc_one";

/// The tables of `cfg.layout`.
pub(super) fn of(cfg: &PostgresConfig) -> Box<dyn Tables> {
    match cfg.layout {
        Layout::Native => Box::new(NativeTables {
            history_limit: cfg.history_limit,
        }),
        Layout::IpsTable => Box::new(IpsTable),
    }
}

/// One layout of the PostgreSQL backend. Methods given a `client` inside a transaction
/// (`lock`, `claim`, `release`, `gc`) run in the store's transaction, which the store
/// commits; reads and the stored-network methods run on a bare connection.
#[async_trait::async_trait]
pub(super) trait Tables: Send + Sync {
    /// Creates or migrates the layout's tables (the store calls it once).
    async fn prepare(&self, client: &mut Client, ctx: &ErrCtx) -> Result<(), StoreError>;

    /// Takes the write lock of `network` in `mode` in the open transaction; `bind` is set
    /// for writes of allocations (a layout serving one network binds it then).
    async fn lock(
        &self,
        client: &Client,
        ctx: &ErrCtx,
        network: &str,
        mode: NetworkLock<'_>,
        bind: bool,
    ) -> Result<(), StoreError>;

    /// Whether claims may use per-node blocks (and so a node's batch may share one
    /// transaction while other nodes claim).
    fn has_blocks(&self) -> bool;

    /// Refuses, before any write, a claim of `claims` addresses the tables cannot hold.
    fn check_claim(&self, key: &AttachmentKey, claims: usize) -> Result<(), StoreError>;

    /// Claims `claims` for `key` in the open transaction; returns what a later read returns.
    async fn claim(
        &self,
        client: &Client,
        ctx: &ErrCtx,
        key: &AttachmentKey,
        owner: &Owner,
        claims: &[Claim<'_>],
        claim_ctx: &ClaimContext,
    ) -> Result<Vec<Allocation>, StoreError>;

    /// Releases `key`'s allocations in the open transaction.
    async fn release(
        &self,
        client: &Client,
        ctx: &ErrCtx,
        key: &AttachmentKey,
        now: i64,
    ) -> Result<Vec<Allocation>, StoreError>;

    /// Collects `pass.network`'s stale attachments (and empty blocks) in the open
    /// transaction.
    async fn gc(
        &self,
        client: &Client,
        ctx: &ErrCtx,
        pass: &GcPass<'_>,
    ) -> Result<GcReport, StoreError>;

    /// The allocations of one attachment.
    async fn attachment(
        &self,
        client: &Client,
        ctx: &ErrCtx,
        key: &AttachmentKey,
    ) -> Result<Vec<Allocation>, StoreError>;

    /// Who holds `ip` in `network`.
    async fn holder(
        &self,
        client: &Client,
        ctx: &ErrCtx,
        network: &str,
        ip: IpAddr,
    ) -> Result<Option<Allocation>, StoreError>;

    /// Every allocation of `network`.
    async fn list(
        &self,
        client: &Client,
        ctx: &ErrCtx,
        network: &str,
    ) -> Result<Vec<Allocation>, StoreError>;

    /// How many addresses of `network` are held inside the address key `ranges` (each of
    /// one family, see [`engine::family_key_ranges`]).
    async fn count_between(
        &self,
        client: &Client,
        ctx: &ErrCtx,
        network: &str,
        ranges: &[(u128, u128)],
    ) -> Result<u64, StoreError>;

    /// Up to `limit` allocations of `network` inside the address key `ranges`, in order.
    async fn list_between(
        &self,
        client: &Client,
        ctx: &ErrCtx,
        network: &str,
        ranges: &[(u128, u128)],
        limit: usize,
    ) -> Result<Vec<Allocation>, StoreError>;

    /// The networks holding at least one allocation.
    async fn allocated_networks(
        &self,
        client: &Client,
        ctx: &ErrCtx,
    ) -> Result<Vec<String>, StoreError>;

    /// The per-node blocks of `network`.
    async fn blocks(
        &self,
        client: &Client,
        ctx: &ErrCtx,
        network: &str,
    ) -> Result<Vec<Block>, StoreError>;

    /// Writes the health probe's heartbeat.
    async fn heartbeat(&self, client: &Client, ctx: &ErrCtx, now: i64) -> Result<(), StoreError>;

    /// Writes a network definition (its own transaction).
    async fn put_network(
        &self,
        client: &mut Client,
        ctx: &ErrCtx,
        name: &str,
        definition: &serde_json::Value,
        mode: PutMode,
    ) -> Result<NetworkRecord, StoreError>;

    /// Deletes a network definition (its own transaction).
    async fn delete_network(
        &self,
        client: &mut Client,
        ctx: &ErrCtx,
        name: &str,
        force: bool,
    ) -> Result<NetworkDeletion, StoreError>;

    /// One stored network, or all of them.
    async fn read_networks(
        &self,
        client: &Client,
        ctx: &ErrCtx,
        name: Option<&str>,
    ) -> Result<Vec<NetworkRecord>, StoreError>;

    /// The history events matching `query`.
    async fn history(
        &self,
        client: &Client,
        ctx: &ErrCtx,
        query: &HistoryQuery,
    ) -> Result<Vec<HistoryEvent>, StoreError>;

    /// Appends imported events (its own transaction).
    async fn record_history(
        &self,
        client: &mut Client,
        ctx: &ErrCtx,
        events: &[HistoryEvent],
    ) -> Result<(), StoreError>;
}

/// Releases the stale attachments one savepoint each (one failing attachment is reported
/// and rolled back alone), then the blocks empty past their grace period. `client` is the
/// connection `txn` writes on.
pub(super) async fn sweep<T: StoreTxn + ?Sized>(
    client: &Client,
    ctx: &ErrCtx,
    txn: &mut T,
    pass: &GcPass<'_>,
) -> Result<GcReport, StoreError> {
    let GcPass {
        network,
        valid,
        scope,
        policy,
        now,
    } = *pass;
    let stale = engine::stale_attachments(txn.attachments_of(network).await?, valid, scope);
    let mut report = GcReport::default();
    let sql = async |statement: String| {
        client
            .batch_execute(&statement)
            .await
            .map_err(|e| ctx.map(&e))
    };
    for (container_id, ifname) in stale {
        let key = AttachmentKey::new(network, container_id, ifname);
        sql(format!("SAVEPOINT {GC_SAVEPOINT}")).await?;
        match engine::release(txn, &key, now).await {
            Ok(released) => {
                sql(format!("RELEASE SAVEPOINT {GC_SAVEPOINT}")).await?;
                report.released.extend(released);
            }
            Err(err) if engine::is_store_wide(&err) => return Err(err),
            Err(err) => {
                sql(format!(
                    "ROLLBACK TO SAVEPOINT {GC_SAVEPOINT}; RELEASE SAVEPOINT {GC_SAVEPOINT}"
                ))
                .await?;
                report.errors.push(format!(
                    "container {} interface {}: {err}",
                    key.container_id, key.ifname
                ));
            }
        }
    }
    report
        .released
        .sort_by_key(|a| plexus_ipam_core::addr::key(a.ip));
    report.released_blocks = engine::sweep_blocks(txn, network, scope, policy, now).await?;
    Ok(report)
}
