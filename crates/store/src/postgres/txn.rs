//! [`PgTxn`]: the engine's [`StoreTxn`] on one open PostgreSQL transaction of the native
//! layout.
//!
//! Isolation: every write transaction first locks its network with transaction-scoped
//! advisory locks ([`lock_network`], [`NetworkLock`]):
//! - claims with per-node blocks take the network's lock **shared** and their node's lock
//!   exclusive: one node's claims run one after another, different nodes' side by side,
//!   each mostly inside its own blocks;
//! - releases take the network's lock shared;
//! - everything that reads or rewrites the whole network (GC, network definitions, history
//!   imports, claims without blocks, which all move one cursor) takes it exclusive.
//!
//! Uniqueness never rests on these locks: the primary key `(network, addr)` and the unique
//! `(network, container_id, ifname, range_set)` refuse a duplicate regardless, via
//! `INSERT ... ON CONFLICT DO NOTHING`, which leaves the transaction usable; a dynamic
//! claim that lost an address to another node that way is retried (`engine::lost_race`).
//! What runs side by side is kept consistent by row locks: borrowers read the set's
//! cursor `FOR UPDATE`, racing block claims meet on the blocks' primary key, a block is
//! deleted only while its emptied mark is still set, and history appends draw their
//! `seq` from a sequence (see `records::append_history`).

use std::net::IpAddr;

use tokio_postgres::Client;
use tokio_postgres::types::Type;

use super::errors::ErrCtx;
use super::statements;
use super::{block_rows, records, rows};
use crate::engine::{self, StoreTxn};
use crate::error::StoreError;
use crate::gc_scope::AttachedRow;
use crate::records::{HistoryEvent, NetworkRecord};
use crate::types::{Allocation, AttachmentKey, Block};

/// First key of the two-key advisory locks of networks: "plex".
pub(crate) const NETWORK_LOCK_CLASS: i32 = 0x706c_6578;

/// First key of the two-key advisory locks of (network, node) claims: "plxn".
pub(crate) const NODE_LOCK_CLASS: i32 = 0x706c_786e;

/// Takes the transaction-scoped exclusive two-key lock (`$1` class, `hashtext($2)`).
const EXCLUSIVE_LOCK_SQL: &str = "SELECT pg_advisory_xact_lock($1, hashtext($2))";

/// How a write transaction locks its network (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum NetworkLock<'a> {
    /// Alone on the network.
    Exclusive,
    /// Beside other shared holders (releases).
    Shared,
    /// Beside other nodes' claims, after this node's earlier ones (claims with blocks).
    Node(&'a str),
}

/// Takes the transaction-scoped lock(s) of `network` in `mode` (waits at most
/// `lock_timeout`, which is the store's deadline). Always network first, then node: every
/// transaction takes them in that order, so they never wait for each other in a cycle.
pub(crate) async fn lock_network(
    client: &Client,
    ctx: &ErrCtx,
    network: &str,
    mode: NetworkLock<'_>,
) -> Result<(), StoreError> {
    let result = match mode {
        NetworkLock::Exclusive | NetworkLock::Shared => {
            let sql = if mode == NetworkLock::Exclusive {
                EXCLUSIVE_LOCK_SQL
            } else {
                "SELECT pg_advisory_xact_lock_shared($1, hashtext($2))"
            };
            let params: [statements::Param<'_>; 2] =
                [(&NETWORK_LOCK_CLASS, Type::INT4), (&network, Type::TEXT)];
            statements::query_typed(client, sql, &params).await
        }
        NetworkLock::Node(node) => {
            // Network names never hold a '/' (they are file and key names): unambiguous.
            let pair = format!("{network}/{node}");
            statements::query_typed(
                client,
                "SELECT pg_advisory_xact_lock_shared($1, hashtext($2)), \
                            pg_advisory_xact_lock($3, hashtext($4))",
                &[
                    (&NETWORK_LOCK_CLASS, Type::INT4),
                    (&network, Type::TEXT),
                    (&NODE_LOCK_CLASS, Type::INT4),
                    (&pair, Type::TEXT),
                ],
            )
            .await
        }
    };
    result.map(drop).map_err(|e| ctx.map(&e))
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

    async fn attachments_of(&mut self, network: &str) -> Result<Vec<AttachedRow>, StoreError> {
        rows::attachments_of(self.client, self.ctx, network).await
    }

    async fn node_blocks(
        &mut self,
        network: &str,
        range_set: &str,
        node: &str,
    ) -> Result<Vec<Block>, StoreError> {
        block_rows::node_blocks(self.client, self.ctx, network, range_set, node).await
    }

    async fn blocks_between(
        &mut self,
        network: &str,
        lo: IpAddr,
        hi: IpAddr,
    ) -> Result<Vec<Block>, StoreError> {
        block_rows::blocks_between(self.client, self.ctx, network, lo, hi).await
    }

    async fn emptied_blocks(
        &mut self,
        network: &str,
        emptied_by: i64,
    ) -> Result<Vec<Block>, StoreError> {
        block_rows::emptied_blocks(self.client, self.ctx, network, emptied_by).await
    }

    async fn insert_block(&mut self, block: &Block) -> Result<bool, StoreError> {
        block_rows::insert_block(self.client, self.ctx, block).await
    }

    async fn update_block(&mut self, block: &Block) -> Result<(), StoreError> {
        block_rows::update_block(self.client, self.ctx, block).await
    }

    async fn delete_block(&mut self, network: &str, base: IpAddr) -> Result<(), StoreError> {
        block_rows::delete_block(self.client, self.ctx, network, base).await
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
