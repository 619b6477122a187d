//! The `"ips-table"` layout (old spelling `"cni-1.1-talk"`): the shared engine on the
//! `ips` table of the CNI 1.1 talk's IPAM plugin.
//!
//! That table has no network, range set or owner columns and allows one row per
//! container (`pod_id` is unique), so this layout:
//! - serves ONE network: the first network that writes binds the table (recorded in
//!   `plexus_talk`); any other network is refused with a configuration error;
//! - holds one address per container: a second interface, or a dual-stack ADD, is refused
//!   with a configuration error that says so;
//! - has no per-node blocks: dynamic claims search the whole range set next-fit;
//! - keeps no network definitions or history;
//! - reads back allocations without owner, their range set being the subnet of the stored
//!   `address/prefix`; the claiming node is kept in the column `plexus_node` that plexus
//!   adds to `ips` (rows written by the talk's own plugin have none).

mod rows;
mod txn;

use std::collections::BTreeMap;
use std::net::IpAddr;

use plexus_ipam_core::BlockPolicy;
use tokio_postgres::Client;
use tokio_postgres::types::Type;

use self::rows::{IPS_TABLE_LOCK, MAX_INTERFACE, MAX_POD_ID};
use self::txn::IpsTableTxn;
use super::errors::ErrCtx;
use super::tables::{GcPass, Tables, sweep};
use super::txn::NetworkLock;
use crate::engine;
use crate::error::StoreError;
use crate::records::{HistoryEvent, HistoryQuery, NetworkDeletion, NetworkRecord, PutMode};
use crate::types::{Allocation, AttachmentKey, Block, Claim, ClaimContext, GcReport, Owner};

/// The configuration field errors of this layout name.
const FIELD: &str = "ipam.store.layout";

/// Side-table key of the bound network.
const NETWORK_KEY: &str = "network";

/// Takes the layout's write lock (all writers of the table, one after another).
async fn lock_table(client: &Client, ctx: &ErrCtx) -> Result<(), StoreError> {
    client
        .query_typed(
            "SELECT pg_advisory_xact_lock($1)",
            &[(&IPS_TABLE_LOCK, Type::INT8)],
        )
        .await
        .map(drop)
        .map_err(|e| ctx.map(&e))
}

/// Creates the talk's table `ips` (when missing), plexus's index and side table, once per store.
async fn ensure_ready(client: &mut Client, ctx: &ErrCtx) -> Result<(), StoreError> {
    let ready: bool = client
        .query_typed_one(rows::READY_SQL, &[])
        .await
        .and_then(|row| row.try_get(0))
        .map_err(|e| ctx.map(&e))?;
    if ready {
        return Ok(());
    }
    let txn = client.transaction().await.map_err(|e| ctx.map(&e))?;
    lock_table(txn.client(), ctx).await?;
    txn.batch_execute(rows::SETUP_SQL).await.map_err(|e| {
        let err = ctx.map(&e);
        StoreError::Unavailable {
            reason: format!(
                "cannot prepare the table ips (layout \"ips-table\") (plexus adds the unique index \
                 plexus_ips_addr and the table plexus_talk; connect once as the owner of \
                 ips, and make sure every ip value is an address/prefix): {err}"
            ),
        }
    })?;
    txn.commit().await.map_err(|e| ctx.map(&e))
}

/// Refuses `network` unless the table belongs to it; `bind` records it when the table
/// belongs to no network yet (writes bind, reads do not).
async fn check_network(
    client: &Client,
    ctx: &ErrCtx,
    network: &str,
    bind: bool,
) -> Result<(), StoreError> {
    match rows::get_value(client, ctx, NETWORK_KEY).await? {
        Some(bound) if bound == network => Ok(()),
        Some(bound) => Err(StoreError::config(
            FIELD,
            format!(
                "the table ips (layout \"ips-table\") holds the addresses of ONE network, {bound:?}; \
                 network {network:?} needs its own database or the native layout"
            ),
        )),
        None if bind => rows::set_value(client, ctx, NETWORK_KEY, network).await,
        None => Ok(()),
    }
}

/// The bound network when the table holds any address (the layout serves one network).
async fn allocated_networks(client: &Client, ctx: &ErrCtx) -> Result<Vec<String>, StoreError> {
    let Some(bound) = rows::get_value(client, ctx, NETWORK_KEY).await? else {
        return Ok(Vec::new());
    };
    let any = rows::count_between(
        client,
        ctx,
        IpAddr::from([0u8; 4]),
        IpAddr::from([255u8; 4]),
    )
    .await?
        + rows::count_between(
            client,
            ctx,
            IpAddr::from([0u16; 8]),
            IpAddr::from([0xffffu16; 8]),
        )
        .await?;
    Ok(if any > 0 { vec![bound] } else { Vec::new() })
}

/// Refuses what the table cannot hold before any write.
fn check_claimable(key: &AttachmentKey, claims: usize) -> Result<(), StoreError> {
    if claims > 1 {
        return Err(StoreError::config(
            FIELD,
            format!(
                "the table ips (layout \"ips-table\") holds one address per container; this ADD asks \
                 for {claims} (dual-stack or several ranges need the native layout)"
            ),
        ));
    }
    if key.container_id.chars().count() > MAX_POD_ID {
        return Err(StoreError::config(
            FIELD,
            format!(
                "the table ips (layout \"ips-table\") takes container ids of at most {MAX_POD_ID} \
                 characters; {:?} is longer",
                key.container_id
            ),
        ));
    }
    if key.ifname.chars().count() > MAX_INTERFACE {
        return Err(StoreError::config(
            FIELD,
            format!(
                "the table ips (layout \"ips-table\") takes interface names of at most {MAX_INTERFACE} \
                 characters; {:?} is longer",
                key.ifname
            ),
        ));
    }
    Ok(())
}

/// The error of every stored-network operation in this layout.
fn no_networks() -> StoreError {
    StoreError::config(
        FIELD,
        "the ips-table layout keeps no network definitions or history; use the native \
         layout for them",
    )
}

fn no_blocks() -> StoreError {
    StoreError::Internal {
        reason: "the ips-table layout has no per-node blocks".into(),
    }
}

/// The `ips`-table layout (see the module docs).
pub(super) struct IpsTable;

#[async_trait::async_trait]
impl Tables for IpsTable {
    async fn prepare(&self, client: &mut Client, ctx: &ErrCtx) -> Result<(), StoreError> {
        ensure_ready(client, ctx).await
    }

    /// One lock for the whole table, whatever `mode`: the table holds one network.
    async fn lock(
        &self,
        client: &Client,
        ctx: &ErrCtx,
        network: &str,
        _mode: NetworkLock<'_>,
        bind: bool,
    ) -> Result<(), StoreError> {
        lock_table(client, ctx).await?;
        check_network(client, ctx, network, bind).await
    }

    fn has_blocks(&self) -> bool {
        false
    }

    fn check_claim(&self, key: &AttachmentKey, claims: usize) -> Result<(), StoreError> {
        check_claimable(key, claims)
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
        let sets = claims
            .iter()
            .map(|c| (c.range_set().id(), c.range_set()))
            .collect::<BTreeMap<_, _>>();
        let mut txn = IpsTableTxn { client, ctx, sets };
        // The table has no blocks: every dynamic claim searches the whole set.
        let claim_ctx = ClaimContext {
            blocks: BlockPolicy::disabled(),
            ..claim_ctx.clone()
        };
        let claimed = engine::claim_all(&mut txn, key, owner, claims, &claim_ctx).await?;
        // Return what a later read returns: the table keeps no owner, node or set id.
        let mut read_back = Vec::with_capacity(claimed.len());
        for a in &claimed {
            let row = rows::holder(client, ctx, &key.network, a.ip).await?;
            read_back.push(row.ok_or_else(|| StoreError::Internal {
                reason: format!("claimed {} is not in table ips", a.ip),
            })?);
        }
        Ok(read_back)
    }

    async fn release(
        &self,
        client: &Client,
        ctx: &ErrCtx,
        key: &AttachmentKey,
        _now: i64,
    ) -> Result<Vec<Allocation>, StoreError> {
        rows::delete_attachment(client, ctx, key).await
    }

    async fn gc(
        &self,
        client: &Client,
        ctx: &ErrCtx,
        pass: &GcPass<'_>,
    ) -> Result<GcReport, StoreError> {
        let mut txn = IpsTableTxn {
            client,
            ctx,
            sets: BTreeMap::new(),
        };
        let no_blocks = BlockPolicy::disabled();
        let pass = GcPass {
            policy: &no_blocks,
            ..*pass
        };
        sweep(client, ctx, &mut txn, &pass).await
    }

    async fn attachment(
        &self,
        client: &Client,
        ctx: &ErrCtx,
        key: &AttachmentKey,
    ) -> Result<Vec<Allocation>, StoreError> {
        check_network(client, ctx, &key.network, false).await?;
        rows::attachment(client, ctx, key).await
    }

    async fn holder(
        &self,
        client: &Client,
        ctx: &ErrCtx,
        network: &str,
        ip: IpAddr,
    ) -> Result<Option<Allocation>, StoreError> {
        check_network(client, ctx, network, false).await?;
        rows::holder(client, ctx, network, ip).await
    }

    async fn list(
        &self,
        client: &Client,
        ctx: &ErrCtx,
        network: &str,
    ) -> Result<Vec<Allocation>, StoreError> {
        check_network(client, ctx, network, false).await?;
        rows::list(client, ctx, network).await
    }

    async fn count_between(
        &self,
        client: &Client,
        ctx: &ErrCtx,
        network: &str,
        ranges: &[(u128, u128)],
    ) -> Result<u64, StoreError> {
        check_network(client, ctx, network, false).await?;
        let mut sum = 0;
        for &(lo, hi) in ranges {
            let (lo, hi) = (
                plexus_ipam_core::addr::from_key(lo),
                plexus_ipam_core::addr::from_key(hi),
            );
            sum += rows::count_between(client, ctx, lo, hi).await?;
        }
        Ok(sum)
    }

    /// One small network per table: filtering its list is the whole layout's size.
    async fn list_between(
        &self,
        client: &Client,
        ctx: &ErrCtx,
        network: &str,
        ranges: &[(u128, u128)],
        limit: usize,
    ) -> Result<Vec<Allocation>, StoreError> {
        check_network(client, ctx, network, false).await?;
        let all = rows::list(client, ctx, network).await?;
        Ok(all
            .into_iter()
            .filter(|a| {
                let k = plexus_ipam_core::addr::key(a.ip);
                ranges.iter().any(|&(lo, hi)| lo <= k && k <= hi)
            })
            .take(limit)
            .collect())
    }

    async fn allocated_networks(
        &self,
        client: &Client,
        ctx: &ErrCtx,
    ) -> Result<Vec<String>, StoreError> {
        allocated_networks(client, ctx).await
    }

    async fn blocks(
        &self,
        client: &Client,
        ctx: &ErrCtx,
        network: &str,
    ) -> Result<Vec<Block>, StoreError> {
        check_network(client, ctx, network, false).await?;
        Ok(Vec::new())
    }

    async fn heartbeat(&self, client: &Client, ctx: &ErrCtx, now: i64) -> Result<(), StoreError> {
        rows::set_value(client, ctx, "heartbeat", &now.to_string()).await
    }

    async fn put_network(
        &self,
        _client: &mut Client,
        _ctx: &ErrCtx,
        _name: &str,
        _definition: &serde_json::Value,
        _mode: PutMode,
    ) -> Result<NetworkRecord, StoreError> {
        Err(no_networks())
    }

    async fn delete_network(
        &self,
        _client: &mut Client,
        _ctx: &ErrCtx,
        _name: &str,
        _force: bool,
    ) -> Result<NetworkDeletion, StoreError> {
        Err(no_networks())
    }

    async fn read_networks(
        &self,
        _client: &Client,
        _ctx: &ErrCtx,
        _name: Option<&str>,
    ) -> Result<Vec<NetworkRecord>, StoreError> {
        Err(no_networks())
    }

    async fn history(
        &self,
        _client: &Client,
        _ctx: &ErrCtx,
        _query: &HistoryQuery,
    ) -> Result<Vec<HistoryEvent>, StoreError> {
        Err(no_networks())
    }

    async fn record_history(
        &self,
        _client: &mut Client,
        _ctx: &ErrCtx,
        _events: &[HistoryEvent],
    ) -> Result<(), StoreError> {
        Err(no_networks())
    }
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
