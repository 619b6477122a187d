//! The [`super::PostgresStore`] operations on stored networks, history and allocation
//! pages, run on one connection by the store's `run`.

use std::net::IpAddr;

use tokio_postgres::Client;

use super::txn::NetworkLock;
use super::{Shared, records, rows, talk, talk_rows, txn};
use crate::engine;
use crate::error::StoreError;
use crate::records::{HistoryEvent, HistoryQuery, NetworkDeletion, NetworkRecord, PutMode};
use crate::types::Allocation;

impl Shared {
    /// A page of `network`'s allocations in `[lo, hi]` (see `Store::list_between`).
    pub(super) async fn list_between(
        &self,
        client: &Client,
        network: &str,
        lo: IpAddr,
        hi: IpAddr,
        limit: usize,
    ) -> Result<Vec<Allocation>, StoreError> {
        let ranges = engine::family_key_ranges(lo, hi)?;
        self.check_read(client, network).await?;
        if self.is_talk() {
            // One small network per table: filtering its list is the whole layout's size.
            let (lo, hi) = (
                plexus_ipam_core::addr::key(lo),
                plexus_ipam_core::addr::key(hi),
            );
            let all = talk_rows::list(client, &self.ctx, network).await?;
            return Ok(all
                .into_iter()
                .filter(|a| {
                    let k = plexus_ipam_core::addr::key(a.ip);
                    lo <= k && k <= hi && a.ip.is_ipv4() == lo_is_v4(lo)
                })
                .take(limit)
                .collect());
        }
        let mut page = Vec::new();
        for (lo, hi) in ranges {
            let left = limit - page.len();
            page.extend(rows::list_between(client, &self.ctx, network, lo, hi, left).await?);
        }
        Ok(page)
    }

    /// Writes a network definition under the lock of its name.
    pub(super) async fn put_network(
        &self,
        client: &mut Client,
        name: &str,
        definition: &serde_json::Value,
        mode: PutMode,
    ) -> Result<NetworkRecord, StoreError> {
        if self.is_talk() {
            return Err(talk::no_networks());
        }
        let now = crate::types::unix_now();
        let txn = self
            .begin(client, name, NetworkLock::Exclusive, false)
            .await?;
        let mut pg = self.pg_txn(txn.client());
        let record = engine::put_network(&mut pg, name, definition, mode, now).await?;
        self.commit(txn).await?;
        Ok(record)
    }

    /// Deletes a network definition under the lock of its name (the lock claims take).
    pub(super) async fn delete_network(
        &self,
        client: &mut Client,
        name: &str,
        force: bool,
    ) -> Result<NetworkDeletion, StoreError> {
        if self.is_talk() {
            return Err(talk::no_networks());
        }
        let txn = self
            .begin(client, name, NetworkLock::Exclusive, false)
            .await?;
        let mut pg = self.pg_txn(txn.client());
        let outcome = engine::delete_network(&mut pg, name, force).await?;
        self.commit(txn).await?;
        Ok(outcome)
    }

    /// One stored network, or all of them.
    pub(super) async fn read_networks(
        &self,
        client: &Client,
        name: Option<&str>,
    ) -> Result<Vec<NetworkRecord>, StoreError> {
        if self.is_talk() {
            return Err(talk::no_networks());
        }
        match name {
            Some(name) => Ok(records::network(client, &self.ctx, name)
                .await?
                .into_iter()
                .collect()),
            None => records::networks(client, &self.ctx).await,
        }
    }

    /// The history events matching `query`.
    pub(super) async fn history(
        &self,
        client: &Client,
        query: &HistoryQuery,
    ) -> Result<Vec<HistoryEvent>, StoreError> {
        if self.is_talk() {
            return Err(talk::no_networks());
        }
        records::history(client, &self.ctx, query).await
    }

    /// Appends imported events, holding the lock of every network they touch.
    pub(super) async fn record_history(
        &self,
        client: &mut Client,
        events: &[HistoryEvent],
    ) -> Result<(), StoreError> {
        if self.is_talk() {
            return Err(talk::no_networks());
        }
        let mut networks: Vec<&str> = events.iter().map(|e| e.network.as_str()).collect();
        networks.sort_unstable();
        networks.dedup();
        let transaction = client.transaction().await.map_err(|e| self.ctx.map(&e))?;
        // Locks in name order: two importers never wait for each other in a cycle.
        for network in networks {
            txn::lock_network(
                transaction.client(),
                &self.ctx,
                network,
                NetworkLock::Exclusive,
            )
            .await?;
        }
        let mut pg = self.pg_txn(transaction.client());
        engine::record_history(&mut pg, events).await?;
        self.commit(transaction).await
    }

    fn pg_txn<'a>(&'a self, client: &'a Client) -> txn::PgTxn<'a> {
        txn::PgTxn {
            client,
            ctx: &self.ctx,
            history_limit: self.cfg.history_limit,
        }
    }
}

/// Whether an address key bound belongs to IPv4 (inside `::ffff:0:0/96`).
fn lo_is_v4(key: u128) -> bool {
    (plexus_ipam_core::addr::V4_KEY_BASE..=plexus_ipam_core::addr::V4_KEY_LAST).contains(&key)
}
