//! The `"cni-1.1-talk"` layout: the shared engine on the CNI 1.1 talk's `ips` table.
//!
//! That table has no network, range set or owner columns and allows one row per
//! container (`pod_id` is unique), so this layout:
//! - serves ONE network: the first network that writes binds the table (recorded in
//!   `plexus_talk`); any other network is refused with a configuration error;
//! - holds one address per container: a second interface, or a dual-stack ADD, is refused
//!   with a configuration error that says so;
//! - has no per-node blocks: dynamic claims search the whole range set next-fit;
//! - reads back allocations without owner, their range set being the subnet of the stored
//!   `address/prefix`; the claiming node is kept in the column `plexus_node` that plexus
//!   adds to `ips` (rows written by the talk's own plugin have none).

use std::collections::BTreeMap;
use std::net::IpAddr;

use plexus_ipam_core::range::RangeSet;
use tokio_postgres::Client;
use tokio_postgres::types::Type;

use super::errors::ErrCtx;
use super::talk_rows::{self, MAX_INTERFACE, MAX_POD_ID, TALK_LOCK};
use crate::engine::{self, StoreTxn};
use crate::error::StoreError;
use crate::gc_scope::AttachedRow;
use crate::records::{HistoryEvent, NetworkRecord};
use crate::types::{Allocation, AttachmentKey, Block};

/// The configuration field errors of this layout name.
const FIELD: &str = "ipam.store.layout";

/// Side-table key of the bound network.
const NETWORK_KEY: &str = "network";

/// Takes the layout's write lock (all writers of the table, one after another).
pub(crate) async fn lock(client: &Client, ctx: &ErrCtx) -> Result<(), StoreError> {
    client
        .query_typed(
            "SELECT pg_advisory_xact_lock($1)",
            &[(&TALK_LOCK, Type::INT8)],
        )
        .await
        .map(drop)
        .map_err(|e| ctx.map(&e))
}

/// Creates the talk's table (when missing), plexus's index and side table, once per store.
pub(crate) async fn ensure_ready(client: &mut Client, ctx: &ErrCtx) -> Result<(), StoreError> {
    let ready: bool = client
        .query_typed_one(talk_rows::READY_SQL, &[])
        .await
        .and_then(|row| row.try_get(0))
        .map_err(|e| ctx.map(&e))?;
    if ready {
        return Ok(());
    }
    let txn = client.transaction().await.map_err(|e| ctx.map(&e))?;
    lock(txn.client(), ctx).await?;
    txn.batch_execute(talk_rows::SETUP_SQL).await.map_err(|e| {
        let err = ctx.map(&e);
        StoreError::Unavailable {
            reason: format!(
                "cannot prepare the cni-1.1-talk table ips (plexus adds the unique index \
                 plexus_ips_addr and the table plexus_talk; connect once as the owner of \
                 ips, and make sure every ip value is an address/prefix): {err}"
            ),
        }
    })?;
    txn.commit().await.map_err(|e| ctx.map(&e))
}

/// Refuses `network` unless the table belongs to it; `bind` records it when the table
/// belongs to no network yet (writes bind, reads do not).
pub(crate) async fn check_network(
    client: &Client,
    ctx: &ErrCtx,
    network: &str,
    bind: bool,
) -> Result<(), StoreError> {
    match talk_rows::get_value(client, ctx, NETWORK_KEY).await? {
        Some(bound) if bound == network => Ok(()),
        Some(bound) => Err(StoreError::config(
            FIELD,
            format!(
                "the cni-1.1-talk table ips holds the addresses of ONE network, {bound:?}; \
                 network {network:?} needs its own database or the native layout"
            ),
        )),
        None if bind => talk_rows::set_value(client, ctx, NETWORK_KEY, network).await,
        None => Ok(()),
    }
}

/// The bound network when the table holds any address (the layout serves one network).
pub(crate) async fn allocated_networks(
    client: &Client,
    ctx: &ErrCtx,
) -> Result<Vec<String>, StoreError> {
    let Some(bound) = talk_rows::get_value(client, ctx, NETWORK_KEY).await? else {
        return Ok(Vec::new());
    };
    let any = talk_rows::count_between(
        client,
        ctx,
        IpAddr::from([0u8; 4]),
        IpAddr::from([255u8; 4]),
    )
    .await?
        + talk_rows::count_between(
            client,
            ctx,
            IpAddr::from([0u16; 8]),
            IpAddr::from([0xffffu16; 8]),
        )
        .await?;
    Ok(if any > 0 { vec![bound] } else { Vec::new() })
}

/// Refuses what the table cannot hold before any write.
pub(crate) fn check_claimable(key: &AttachmentKey, claims: usize) -> Result<(), StoreError> {
    if claims > 1 {
        return Err(StoreError::config(
            FIELD,
            format!(
                "the cni-1.1-talk table ips holds one address per container; this ADD asks \
                 for {claims} (dual-stack or several ranges need the native layout)"
            ),
        ));
    }
    if key.container_id.chars().count() > MAX_POD_ID {
        return Err(StoreError::config(
            FIELD,
            format!(
                "the cni-1.1-talk table ips takes container ids of at most {MAX_POD_ID} \
                 characters; {:?} is longer",
                key.container_id
            ),
        ));
    }
    if key.ifname.chars().count() > MAX_INTERFACE {
        return Err(StoreError::config(
            FIELD,
            format!(
                "the cni-1.1-talk table ips takes interface names of at most {MAX_INTERFACE} \
                 characters; {:?} is longer",
                key.ifname
            ),
        ));
    }
    Ok(())
}

/// The talk layout's primitives on the connection of an open transaction.
pub(crate) struct TalkTxn<'a> {
    /// The client whose transaction is open.
    pub client: &'a Client,
    /// Error context of the store.
    pub ctx: &'a ErrCtx,
    /// The range sets of the claims, by id: where a new address's prefix comes from.
    pub sets: BTreeMap<String, &'a RangeSet>,
}

impl TalkTxn<'_> {
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

/// The error of every stored-network operation in this layout.
pub(crate) fn no_networks() -> StoreError {
    StoreError::config(
        FIELD,
        "the cni-1.1-talk layout keeps no network definitions or history; use the native \
         layout for them",
    )
}

fn no_blocks() -> StoreError {
    StoreError::Internal {
        reason: "the cni-1.1-talk layout has no per-node blocks".into(),
    }
}

#[async_trait::async_trait]
impl StoreTxn for TalkTxn<'_> {
    async fn existing(
        &mut self,
        key: &AttachmentKey,
        range_set: &str,
    ) -> Result<Option<Allocation>, StoreError> {
        let Some(held) =
            talk_rows::by_container(self.client, self.ctx, &key.network, &key.container_id).await?
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
                "the cni-1.1-talk table ips holds one address per container, and container \
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
        talk_rows::holder(self.client, self.ctx, network, ip).await
    }

    async fn held_between(
        &mut self,
        _network: &str,
        lo: IpAddr,
        hi: IpAddr,
    ) -> Result<Vec<IpAddr>, StoreError> {
        talk_rows::held_between(self.client, self.ctx, lo, hi).await
    }

    async fn count_between(
        &mut self,
        _network: &str,
        lo: IpAddr,
        hi: IpAddr,
    ) -> Result<u64, StoreError> {
        talk_rows::count_between(self.client, self.ctx, lo, hi).await
    }

    async fn cursor(
        &mut self,
        network: &str,
        range_set: &str,
    ) -> Result<Option<IpAddr>, StoreError> {
        let key = cursor_key(network, range_set);
        let value = talk_rows::get_value(self.client, self.ctx, &key).await?;
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
        talk_rows::set_value(self.client, self.ctx, &key, &ip.to_string()).await
    }

    async fn insert(&mut self, allocation: &Allocation) -> Result<(), StoreError> {
        let prefix = self.prefix_of(&allocation.range_set, allocation.ip);
        if talk_rows::insert(self.client, self.ctx, allocation, prefix).await? {
            return Ok(());
        }
        let network = &allocation.network;
        if let Some(holder) =
            talk_rows::holder(self.client, self.ctx, network, allocation.ip).await?
        {
            return Err(engine::address_taken(&holder));
        }
        match talk_rows::by_container(self.client, self.ctx, network, &allocation.container_id)
            .await?
        {
            Some(held) => Err(StoreError::config(
                FIELD,
                format!(
                    "the cni-1.1-talk table ips holds one address per container, and \
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
        talk_rows::delete_attachment(self.client, self.ctx, key).await
    }

    async fn attachments_of(&mut self, _network: &str) -> Result<Vec<AttachedRow>, StoreError> {
        talk_rows::attachments(self.client, self.ctx).await
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

#[cfg(test)]
mod tests {
    use super::*;

    fn field_and_reason(err: StoreError) -> (String, String) {
        match err {
            StoreError::Config { field, reason } => (field, reason),
            other => panic!("expected a Config error, got {other:?}"),
        }
    }

    #[test]
    fn one_claim_per_add_and_column_widths() {
        let ok = AttachmentKey::new("n", "c".repeat(64), "e".repeat(16));
        check_claimable(&ok, 1).unwrap();
        let (field, reason) = field_and_reason(check_claimable(&ok, 2).unwrap_err());
        assert_eq!(field, FIELD);
        assert!(reason.contains("one address per container"), "{reason}");
        let long_id = AttachmentKey::new("n", "c".repeat(65), "eth0");
        let (_, reason) = field_and_reason(check_claimable(&long_id, 1).unwrap_err());
        assert!(reason.contains("at most 64"), "{reason}");
        let long_if = AttachmentKey::new("n", "c", "e".repeat(17));
        let (_, reason) = field_and_reason(check_claimable(&long_if, 1).unwrap_err());
        assert!(reason.contains("at most 16"), "{reason}");
    }
}
