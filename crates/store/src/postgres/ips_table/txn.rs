//! [`IpsTableTxn`]: the engine's transaction primitives on the `ips` table and plexus's
//! side table, on the connection of an open transaction.

use std::collections::BTreeMap;
use std::net::IpAddr;

use plexus_ipam_core::range::RangeSet;
use tokio_postgres::Client;

use super::{FIELD, no_blocks, no_networks, rows};
use crate::engine::{self, StoreTxn};
use crate::error::StoreError;
use crate::gc_scope::AttachedRow;
use crate::postgres::errors::ErrCtx;
use crate::records::{HistoryEvent, NetworkRecord};
use crate::types::{Allocation, AttachmentKey, Block};

/// The talk layout's primitives on the connection of an open transaction.
pub(crate) struct IpsTableTxn<'a> {
    /// The client whose transaction is open.
    pub client: &'a Client,
    /// Error context of the store.
    pub ctx: &'a ErrCtx,
    /// The range sets of the claims, by id: where a new address's prefix comes from.
    pub sets: BTreeMap<String, &'a RangeSet>,
}

impl IpsTableTxn<'_> {
    /// The prefix length written with `ip`: that of the subnet holding it.
    fn prefix_of(&self, range_set: &str, ip: IpAddr) -> u8 {
        let full = if ip.is_ipv4() { 32 } else { 128 };
        self.sets
            .get(range_set)
            .and_then(|set| set.find(ip))
            .filter(|range| plexus_ipam_core::addr::net_contains(&range.subnet, ip))
            .map_or(full, |range| range.subnet.prefix_len())
    }
}

#[async_trait::async_trait]
impl StoreTxn for IpsTableTxn<'_> {
    async fn existing(
        &mut self,
        key: &AttachmentKey,
        range_set: &str,
    ) -> Result<Option<Allocation>, StoreError> {
        let Some(held) =
            rows::by_container(self.client, self.ctx, &key.network, &key.container_id).await?
        else {
            return Ok(None);
        };
        let in_set = self
            .sets
            .get(range_set)
            .is_some_and(|set| set.find(held.ip).is_some());
        if held.ifname == key.ifname && in_set {
            return Ok(Some(held));
        }
        Err(StoreError::config(
            FIELD,
            format!(
                "the table ips (layout \"ips-table\") holds one address per container, and container \
                 {} already holds {} on interface {}",
                held.container_id, held.ip, held.ifname
            ),
        ))
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
        _network: &str,
        lo: IpAddr,
        hi: IpAddr,
    ) -> Result<Vec<IpAddr>, StoreError> {
        rows::held_between(self.client, self.ctx, lo, hi).await
    }

    async fn count_between(
        &mut self,
        _network: &str,
        lo: IpAddr,
        hi: IpAddr,
    ) -> Result<u64, StoreError> {
        rows::count_between(self.client, self.ctx, lo, hi).await
    }

    async fn cursor(
        &mut self,
        network: &str,
        range_set: &str,
    ) -> Result<Option<IpAddr>, StoreError> {
        let key = cursor_key(network, range_set);
        let value = rows::get_value(self.client, self.ctx, &key).await?;
        value
            .map(|text| {
                text.parse().map_err(|_| {
                    self.ctx
                        .corrupt(format!("plexus_talk {key:?} holds {text:?}"))
                })
            })
            .transpose()
    }

    async fn set_cursor(
        &mut self,
        network: &str,
        range_set: &str,
        ip: IpAddr,
    ) -> Result<(), StoreError> {
        let key = cursor_key(network, range_set);
        rows::set_value(self.client, self.ctx, &key, &ip.to_string()).await
    }

    async fn insert(&mut self, allocation: &Allocation) -> Result<(), StoreError> {
        let prefix = self.prefix_of(&allocation.range_set, allocation.ip);
        if rows::insert(self.client, self.ctx, allocation, prefix).await? {
            return Ok(());
        }
        let network = &allocation.network;
        if let Some(holder) = rows::holder(self.client, self.ctx, network, allocation.ip).await? {
            return Err(engine::address_taken(&holder));
        }
        match rows::by_container(self.client, self.ctx, network, &allocation.container_id).await? {
            Some(held) => Err(StoreError::config(
                FIELD,
                format!(
                    "the table ips (layout \"ips-table\") holds one address per container, and \
                     container {} already holds {} on interface {}",
                    held.container_id, held.ip, held.ifname
                ),
            )),
            None => Err(StoreError::Internal {
                reason: format!(
                    "table ips refused {} for container {} without a visible conflict",
                    allocation.ip, allocation.container_id
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

    async fn attachments_of(&mut self, _network: &str) -> Result<Vec<AttachedRow>, StoreError> {
        rows::attachments(self.client, self.ctx).await
    }

    async fn node_blocks(
        &mut self,
        _network: &str,
        _range_set: &str,
        _node: &str,
    ) -> Result<Vec<Block>, StoreError> {
        Ok(Vec::new())
    }

    async fn blocks_between(
        &mut self,
        _network: &str,
        _lo: IpAddr,
        _hi: IpAddr,
    ) -> Result<Vec<Block>, StoreError> {
        Ok(Vec::new())
    }

    async fn emptied_blocks(
        &mut self,
        _network: &str,
        _emptied_by: i64,
    ) -> Result<Vec<Block>, StoreError> {
        Ok(Vec::new())
    }

    async fn insert_block(&mut self, _block: &Block) -> Result<bool, StoreError> {
        Err(no_blocks())
    }

    async fn update_block(&mut self, _block: &Block) -> Result<(), StoreError> {
        Err(no_blocks())
    }

    async fn delete_block(&mut self, _network: &str, _base: IpAddr) -> Result<(), StoreError> {
        Ok(())
    }

    async fn get_network(&mut self, _name: &str) -> Result<Option<NetworkRecord>, StoreError> {
        Err(no_networks())
    }

    async fn write_network(&mut self, _record: &NetworkRecord) -> Result<(), StoreError> {
        Err(no_networks())
    }

    async fn remove_network(&mut self, _name: &str) -> Result<(), StoreError> {
        Err(no_networks())
    }

    /// The talk's table is all this layout may write: claims and releases keep no history
    /// here (documented in `docs/stores.md`).
    async fn append_history(&mut self, _event: &HistoryEvent) -> Result<(), StoreError> {
        Ok(())
    }
}

/// Side-table key of a next-fit cursor.
fn cursor_key(network: &str, range_set: &str) -> String {
    format!("cursor/{network}/{range_set}")
}
