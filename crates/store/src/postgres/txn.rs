//! [`PgTxn`]: the engine's [`StoreTxn`] on one open PostgreSQL transaction of the native
//! layout.
//!
//! Isolation: every write transaction first takes the transaction-scoped advisory lock of
//! its network ([`lock_network`]), so writers of one network run one after another while
//! other networks proceed in parallel. Under that lock the engine's reads (READ COMMITTED,
//! one fresh snapshot per statement) stay valid until commit: no other writer of the
//! network can change them. Uniqueness does not rest on the lock: the primary key
//! `(network, addr)` and the unique `(network, container_id, ifname, range_set)` refuse a
//! duplicate regardless, via `INSERT ... ON CONFLICT DO NOTHING`, which leaves the
//! transaction usable.

use std::net::IpAddr;

use tokio_postgres::Client;
use tokio_postgres::types::Type;

use super::errors::ErrCtx;
use super::{records, rows};
use crate::engine::{self, StoreTxn};
use crate::error::StoreError;
use crate::records::{HistoryEvent, NetworkRecord};
use crate::types::{Allocation, AttachmentKey, Block};

/// First key of the two-key advisory locks of networks: "plex".
pub(crate) const NETWORK_LOCK_CLASS: i32 = 0x706c_6578;

/// Takes the transaction-scoped write lock of `network` (waits at most `lock_timeout`,
/// which is the store's deadline).
pub(crate) async fn lock_network(
    client: &Client,
    ctx: &ErrCtx,
    network: &str,
) -> Result<(), StoreError> {
    client
        .query_typed(
            "SELECT pg_advisory_xact_lock($1, hashtext($2))",
            &[(&NETWORK_LOCK_CLASS, Type::INT4), (&network, Type::TEXT)],
        )
        .await
        .map(drop)
        .map_err(|e| ctx.map(&e))
}

/// The native layout's primitives on the connection of an open transaction.
pub(crate) struct PgTxn<'a> {
    /// The client whose transaction is open.
    pub client: &'a Client,
    /// Error context of the store.
    pub ctx: &'a ErrCtx,
    /// History events kept per network.
    pub history_limit: u32,
}

#[async_trait::async_trait]
impl StoreTxn for PgTxn<'_> {
    async fn existing(
        &mut self,
        key: &AttachmentKey,
        range_set: &str,
    ) -> Result<Option<Allocation>, StoreError> {
        rows::existing(self.client, self.ctx, key, range_set).await
    }

    async fn holder(
        &mut self,
        network: &str,
        ip: IpAddr,
    ) -> Result<Option<Allocation>, StoreError> {
        rows::holder(self.client, self.ctx, network, ip).await
    }

    async fn held_between(
        &mut self,
        network: &str,
        lo: IpAddr,
        hi: IpAddr,
    ) -> Result<Vec<IpAddr>, StoreError> {
        rows::held_between(self.client, self.ctx, network, lo, hi).await
    }

    async fn count_between(
        &mut self,
        network: &str,
        lo: IpAddr,
        hi: IpAddr,
    ) -> Result<u64, StoreError> {
        let (lo, hi) = (
            plexus_ipam_core::addr::key(lo),
            plexus_ipam_core::addr::key(hi),
        );
        rows::count_between(self.client, self.ctx, network, lo, hi).await
    }

    async fn cursor(
        &mut self,
        network: &str,
        range_set: &str,
    ) -> Result<Option<IpAddr>, StoreError> {
        rows::cursor(self.client, self.ctx, network, range_set).await
    }

    async fn set_cursor(
        &mut self,
        network: &str,
        range_set: &str,
        ip: IpAddr,
    ) -> Result<(), StoreError> {
        rows::set_cursor(self.client, self.ctx, network, range_set, ip).await
    }

    async fn insert(&mut self, allocation: &Allocation) -> Result<(), StoreError> {
        if rows::insert(self.client, self.ctx, allocation).await? {
            return Ok(());
        }
        // The constraints refused the row; name who holds the address.
        match rows::holder(self.client, self.ctx, &allocation.network, allocation.ip).await? {
            Some(holder) => Err(engine::address_taken(&holder)),
            None => Err(StoreError::Internal {
                reason: format!(
                    "attachment {}/{} already holds an address from range set {} of network {}",
                    allocation.container_id,
                    allocation.ifname,
                    allocation.range_set,
                    allocation.network
                ),
            }),
        }
    }

    async fn delete_attachment(
        &mut self,
        key: &AttachmentKey,
    ) -> Result<Vec<Allocation>, StoreError> {
        rows::delete_attachment(self.client, self.ctx, key).await
    }

    async fn attachments_of(&mut self, network: &str) -> Result<Vec<(String, String)>, StoreError> {
        rows::attachments_of(self.client, self.ctx, network).await
    }

    async fn node_blocks(
        &mut self,
        network: &str,
        range_set: &str,
        node: &str,
    ) -> Result<Vec<Block>, StoreError> {
        rows::node_blocks(self.client, self.ctx, network, range_set, node).await
    }

    async fn blocks_between(
        &mut self,
        network: &str,
        lo: IpAddr,
        hi: IpAddr,
    ) -> Result<Vec<Block>, StoreError> {
        rows::blocks_between(self.client, self.ctx, network, lo, hi).await
    }

    async fn emptied_blocks(
        &mut self,
        network: &str,
        emptied_by: i64,
    ) -> Result<Vec<Block>, StoreError> {
        rows::emptied_blocks(self.client, self.ctx, network, emptied_by).await
    }

    async fn insert_block(&mut self, block: &Block) -> Result<bool, StoreError> {
        rows::insert_block(self.client, self.ctx, block).await
    }

    async fn update_block(&mut self, block: &Block) -> Result<(), StoreError> {
        rows::update_block(self.client, self.ctx, block).await
    }

    async fn delete_block(&mut self, network: &str, base: IpAddr) -> Result<(), StoreError> {
        rows::delete_block(self.client, self.ctx, network, base).await
    }

    async fn get_network(&mut self, name: &str) -> Result<Option<NetworkRecord>, StoreError> {
        records::network(self.client, self.ctx, name).await
    }

    async fn write_network(&mut self, record: &NetworkRecord) -> Result<(), StoreError> {
        records::write_network(self.client, self.ctx, record).await
    }

    async fn remove_network(&mut self, name: &str) -> Result<(), StoreError> {
        records::remove_network(self.client, self.ctx, name).await
    }

    async fn append_history(&mut self, event: &HistoryEvent) -> Result<(), StoreError> {
        records::append_history(self.client, self.ctx, event, self.history_limit).await
    }
}
