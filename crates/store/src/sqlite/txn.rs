//! [`SqlTxn`]: the engine's [`StoreTxn`] on an open `BEGIN IMMEDIATE` transaction.

use std::net::IpAddr;

use plexus_ipam_core::addr::key as addr_key;
use rusqlite::Connection;

use super::errors::ErrCtx;
use super::{blocks, records, rows};
use crate::engine::StoreTxn;
use crate::error::StoreError;
use crate::gc_scope::AttachedRow;
use crate::records::{HistoryEvent, NetworkRecord};
use crate::types::{Allocation, AttachmentKey, Block};

/// The connection inside an open write transaction. Holds `&mut Connection` (which is
/// `Send`, unlike `&Connection` or rusqlite's `Transaction`) so the engine's futures are
/// `Send`; [`super::SqliteStore`] begins and ends the transaction around it.
pub(crate) struct SqlTxn<'c> {
    /// The connection, inside `BEGIN IMMEDIATE`.
    pub conn: &'c mut Connection,
    /// Error context of the operation.
    pub ctx: ErrCtx<'c>,
    /// History events kept per network.
    pub history_limit: u32,
}

impl SqlTxn<'_> {
    /// Runs a statement batch without parameters (savepoints) inside the transaction.
    pub fn batch(&mut self, sql: &str) -> Result<(), StoreError> {
        self.conn.execute_batch(sql).map_err(|e| self.ctx.map(e))
    }
}

#[async_trait::async_trait]
impl StoreTxn for SqlTxn<'_> {
    async fn existing(
        &mut self,
        key: &AttachmentKey,
        range_set: &str,
    ) -> Result<Option<Allocation>, StoreError> {
        rows::existing(self.conn, &self.ctx, key, range_set)
    }

    async fn holder(
        &mut self,
        network: &str,
        ip: IpAddr,
    ) -> Result<Option<Allocation>, StoreError> {
        rows::holder(self.conn, &self.ctx, network, ip)
    }

    async fn held_between(
        &mut self,
        network: &str,
        lo: IpAddr,
        hi: IpAddr,
    ) -> Result<Vec<IpAddr>, StoreError> {
        rows::held_between(self.conn, &self.ctx, network, lo, hi)
    }

    async fn count_between(
        &mut self,
        network: &str,
        lo: IpAddr,
        hi: IpAddr,
    ) -> Result<u64, StoreError> {
        rows::count_between(self.conn, &self.ctx, network, addr_key(lo), addr_key(hi))
    }

    async fn cursor(
        &mut self,
        network: &str,
        range_set: &str,
    ) -> Result<Option<IpAddr>, StoreError> {
        rows::cursor(self.conn, &self.ctx, network, range_set)
    }

    async fn set_cursor(
        &mut self,
        network: &str,
        range_set: &str,
        ip: IpAddr,
    ) -> Result<(), StoreError> {
        rows::set_cursor(self.conn, &self.ctx, network, range_set, ip)
    }

    async fn insert(&mut self, allocation: &Allocation) -> Result<(), StoreError> {
        rows::insert(self.conn, &self.ctx, allocation)
    }

    async fn delete_attachment(
        &mut self,
        key: &AttachmentKey,
    ) -> Result<Vec<Allocation>, StoreError> {
        rows::delete_attachment(self.conn, &self.ctx, key)
    }

    async fn attachments_of(&mut self, network: &str) -> Result<Vec<AttachedRow>, StoreError> {
        rows::attachments_of(self.conn, &self.ctx, network)
    }

    async fn node_blocks(
        &mut self,
        network: &str,
        range_set: &str,
        node: &str,
    ) -> Result<Vec<Block>, StoreError> {
        blocks::node_blocks(self.conn, &self.ctx, network, range_set, node)
    }

    async fn blocks_between(
        &mut self,
        network: &str,
        lo: IpAddr,
        hi: IpAddr,
    ) -> Result<Vec<Block>, StoreError> {
        blocks::blocks_between(self.conn, &self.ctx, network, addr_key(lo), addr_key(hi))
    }

    async fn emptied_blocks(
        &mut self,
        network: &str,
        emptied_by: i64,
    ) -> Result<Vec<Block>, StoreError> {
        blocks::emptied_blocks(self.conn, &self.ctx, network, emptied_by)
    }

    async fn insert_block(&mut self, block: &Block) -> Result<bool, StoreError> {
        blocks::insert_block(self.conn, &self.ctx, block)
    }

    async fn update_block(&mut self, block: &Block) -> Result<(), StoreError> {
        blocks::update_block(self.conn, &self.ctx, block)
    }

    async fn delete_block(&mut self, network: &str, base: IpAddr) -> Result<(), StoreError> {
        blocks::delete_block(self.conn, &self.ctx, network, base)
    }

    async fn get_network(&mut self, name: &str) -> Result<Option<NetworkRecord>, StoreError> {
        records::network(self.conn, &self.ctx, name)
    }

    async fn write_network(&mut self, record: &NetworkRecord) -> Result<(), StoreError> {
        records::write_network(self.conn, &self.ctx, record)
    }

    async fn remove_network(&mut self, name: &str) -> Result<(), StoreError> {
        records::remove_network(self.conn, &self.ctx, name)
    }

    async fn append_history(&mut self, event: &HistoryEvent) -> Result<(), StoreError> {
        records::append_history(self.conn, &self.ctx, event, self.history_limit)
    }
}
