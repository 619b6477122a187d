//! The `"native"` layout: plexus's own versioned schema (`plexus_*` tables, see `schema`),
//! written through [`PgTxn`] and read through `rows` and `records`.

use std::net::IpAddr;

use tokio_postgres::{Client, Transaction};

use super::errors::ErrCtx;
use super::tables::{GcPass, Tables, sweep};
use super::txn::{self, NetworkLock, PgTxn};
use super::{block_rows, records, rows, schema};
use crate::engine;
use crate::error::StoreError;
use crate::records::{HistoryEvent, HistoryQuery, NetworkDeletion, NetworkRecord, PutMode};
use crate::types::{Allocation, AttachmentKey, Block, Claim, ClaimContext, GcReport, Owner};

/// The native layout (see the module docs).
pub(super) struct NativeTables {
    /// History events kept per network.
    pub history_limit: u32,
}

impl NativeTables {
    fn txn<'a>(&self, client: &'a Client, ctx: &'a ErrCtx) -> PgTxn<'a> {
        PgTxn {
            client,
            ctx,
            history_limit: self.history_limit,
        }
    }

    /// A transaction holding `name`'s exclusive lock (the lock claims of it take).
    async fn begin_exclusive<'c>(
        &self,
        client: &'c mut Client,
        ctx: &ErrCtx,
        name: &str,
    ) -> Result<Transaction<'c>, StoreError> {
        let transaction = client.transaction().await.map_err(|e| ctx.map(&e))?;
        txn::lock_network(transaction.client(), ctx, name, NetworkLock::Exclusive).await?;
        Ok(transaction)
    }
}

#[async_trait::async_trait]
impl Tables for NativeTables {
    async fn prepare(&self, client: &mut Client, ctx: &ErrCtx) -> Result<(), StoreError> {
        schema::ensure_current(client, ctx).await
    }

    async fn lock(
        &self,
        client: &Client,
        ctx: &ErrCtx,
        network: &str,
        mode: NetworkLock<'_>,
        _bind: bool,
    ) -> Result<(), StoreError> {
        txn::lock_network(client, ctx, network, mode).await
    }

    fn has_blocks(&self) -> bool {
        true
    }

    fn check_claim(&self, _key: &AttachmentKey, _claims: usize) -> Result<(), StoreError> {
        Ok(())
    }

    async fn claim(
        &self,
        client: &Client,
        ctx: &ErrCtx,
        key: &AttachmentKey,
        owner: &Owner,
        claims: &[Claim<'_>],
        claim_ctx: &ClaimContext,
    ) -> Result<Vec<Allocation>, StoreError> {
        engine::claim_all(&mut self.txn(client, ctx), key, owner, claims, claim_ctx).await
    }

    async fn release(
        &self,
        client: &Client,
        ctx: &ErrCtx,
        key: &AttachmentKey,
        now: i64,
    ) -> Result<Vec<Allocation>, StoreError> {
        engine::release(&mut self.txn(client, ctx), key, now).await
    }

    async fn gc(
        &self,
        client: &Client,
        ctx: &ErrCtx,
        pass: &GcPass<'_>,
    ) -> Result<GcReport, StoreError> {
        sweep(client, ctx, &mut self.txn(client, ctx), pass).await
    }

    async fn attachment(
        &self,
        client: &Client,
        ctx: &ErrCtx,
        key: &AttachmentKey,
    ) -> Result<Vec<Allocation>, StoreError> {
        rows::attachment(client, ctx, key).await
    }

    async fn holder(
        &self,
        client: &Client,
        ctx: &ErrCtx,
        network: &str,
        ip: IpAddr,
    ) -> Result<Option<Allocation>, StoreError> {
        rows::holder(client, ctx, network, ip).await
    }

    async fn list(
        &self,
        client: &Client,
        ctx: &ErrCtx,
        network: &str,
    ) -> Result<Vec<Allocation>, StoreError> {
        rows::list(client, ctx, network).await
    }

    async fn count_between(
        &self,
        client: &Client,
        ctx: &ErrCtx,
        network: &str,
        ranges: &[(u128, u128)],
    ) -> Result<u64, StoreError> {
        let mut sum = 0;
        for &(lo, hi) in ranges {
            sum += rows::count_between(client, ctx, network, lo, hi).await?;
        }
        Ok(sum)
    }

    async fn list_between(
        &self,
        client: &Client,
        ctx: &ErrCtx,
        network: &str,
        ranges: &[(u128, u128)],
        limit: usize,
    ) -> Result<Vec<Allocation>, StoreError> {
        let mut page = Vec::new();
        for &(lo, hi) in ranges {
            let left = limit - page.len();
            page.extend(rows::list_between(client, ctx, network, lo, hi, left).await?);
        }
        Ok(page)
    }

    async fn allocated_networks(
        &self,
        client: &Client,
        ctx: &ErrCtx,
    ) -> Result<Vec<String>, StoreError> {
        rows::allocated_networks(client, ctx).await
    }

    async fn blocks(
        &self,
        client: &Client,
        ctx: &ErrCtx,
        network: &str,
    ) -> Result<Vec<Block>, StoreError> {
        block_rows::blocks(client, ctx, network).await
    }

    async fn heartbeat(&self, client: &Client, ctx: &ErrCtx, now: i64) -> Result<(), StoreError> {
        rows::heartbeat(client, ctx, now).await
    }

    async fn put_network(
        &self,
        client: &mut Client,
        ctx: &ErrCtx,
        name: &str,
        definition: &serde_json::Value,
        mode: PutMode,
    ) -> Result<NetworkRecord, StoreError> {
        let now = crate::types::unix_now();
        let transaction = self.begin_exclusive(client, ctx, name).await?;
        let mut pg = self.txn(transaction.client(), ctx);
        let record = engine::put_network(&mut pg, name, definition, mode, now).await?;
        transaction.commit().await.map_err(|e| ctx.map(&e))?;
        Ok(record)
    }

    async fn delete_network(
        &self,
        client: &mut Client,
        ctx: &ErrCtx,
        name: &str,
        force: bool,
    ) -> Result<NetworkDeletion, StoreError> {
        let transaction = self.begin_exclusive(client, ctx, name).await?;
        let mut pg = self.txn(transaction.client(), ctx);
        let outcome = engine::delete_network(&mut pg, name, force).await?;
        transaction.commit().await.map_err(|e| ctx.map(&e))?;
        Ok(outcome)
    }

    async fn read_networks(
        &self,
        client: &Client,
        ctx: &ErrCtx,
        name: Option<&str>,
    ) -> Result<Vec<NetworkRecord>, StoreError> {
        match name {
            Some(name) => Ok(records::network(client, ctx, name)
                .await?
                .into_iter()
                .collect()),
            None => records::networks(client, ctx).await,
        }
    }

    async fn history(
        &self,
        client: &Client,
        ctx: &ErrCtx,
        query: &HistoryQuery,
    ) -> Result<Vec<HistoryEvent>, StoreError> {
        records::history(client, ctx, query).await
    }

    /// Holds the lock of every network the events touch, taken in name order: two
    /// importers never wait for each other in a cycle.
    async fn record_history(
        &self,
        client: &mut Client,
        ctx: &ErrCtx,
        events: &[HistoryEvent],
    ) -> Result<(), StoreError> {
        let mut networks: Vec<&str> = events.iter().map(|e| e.network.as_str()).collect();
        networks.sort_unstable();
        networks.dedup();
        let transaction = client.transaction().await.map_err(|e| ctx.map(&e))?;
        for network in networks {
            txn::lock_network(transaction.client(), ctx, network, NetworkLock::Exclusive).await?;
        }
        let mut pg = self.txn(transaction.client(), ctx);
        engine::record_history(&mut pg, events).await?;
        transaction.commit().await.map_err(|e| ctx.map(&e))
    }
}
