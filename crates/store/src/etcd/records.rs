//! Stored networks and the claim history on etcd (keys in [`super::keys`]).
//!
//! A history event's position is the appending node's clock in microseconds (kept
//! increasing within a transaction), and its key carries a random tag, so appends read
//! nothing and never contend: claims of different nodes stay conflict-free. The bound is
//! kept after the commit, amortized: with probability `1 / prune_interval(limit)` a call
//! counts the network's events and deletes the oldest beyond the limit in one range
//! delete. A network's history may therefore exceed its limit by about
//! `prune_interval(limit)` events (exact for limits up to 16).

use std::time::{SystemTime, UNIX_EPOCH};

use etcd_client::{DeleteOptions, GetOptions, KvClient};

use super::conn::{Connector, Failure};
use super::keys::Keys;
use super::txn::{EtcdTxn, corrupt, decode, encode};
use crate::error::StoreError;
pub(crate) use crate::records::prune_interval;
use crate::records::{HistoryEvent, HistoryQuery, NetworkRecord, sort_events};
use crate::types::Allocation;

/// Microseconds since the Unix epoch (0 before 1970).
fn now_micros() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

impl EtcdTxn<'_> {
    /// The stored network `name` (a guarded point read).
    pub(crate) async fn stored_network(
        &mut self,
        name: &str,
    ) -> Result<Option<NetworkRecord>, StoreError> {
        let key = self.keys.network(name);
        match self.inner.get(&key).await? {
            Some(value) => decode(&key, &value).map(Some),
            None => Ok(None),
        }
    }

    /// Every network holding an allocation, by name: one single-key read per network,
    /// jumping past each network's keys (a skip scan), never a read of every allocation.
    pub(crate) async fn allocated_networks(&mut self) -> Result<Vec<String>, StoreError> {
        let (root, end) = self.keys.alloc_every();
        let mut from = root.into_bytes();
        let mut names = Vec::new();
        loop {
            let page = self.inner.page(&from, &end, 1).await?;
            let Some((key, _)) = page.first() else {
                break;
            };
            let (name, next) = self.keys.alloc_network(key).ok_or_else(|| {
                corrupt(
                    &String::from_utf8_lossy(key),
                    "is not an allocation key of any network",
                )
            })?;
            names.push(name);
            from = next;
        }
        // Escaped names sort like their keys only when plain.
        names.sort();
        Ok(names)
    }

    /// Every stored network, by name (keys are escaped names, so key order is name order
    /// only for plain names: sorted here).
    pub(crate) async fn all_networks(&mut self) -> Result<Vec<NetworkRecord>, StoreError> {
        let (start, end) = self.keys.network_all();
        let entries = self.inner.range(&start, &end, false).await?;
        let mut records = entries
            .iter()
            .map(|(key, value)| decode::<NetworkRecord>(&String::from_utf8_lossy(key), value))
            .collect::<Result<Vec<_>, _>>()?;
        records.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(records)
    }

    /// Buffers `event` under a fresh position of its network.
    pub(crate) fn push_history(&mut self, event: &HistoryEvent) -> Result<(), StoreError> {
        let seq = now_micros().max(self.last_seq + 1);
        self.last_seq = seq;
        let event = HistoryEvent {
            seq,
            ..event.clone()
        };
        let key = self.keys.history(&event.network, seq, rand::random());
        self.inner.put(&key, encode(&event)?);
        Ok(())
    }

    /// The events matching `query`, oldest first: one network's events (at most about its
    /// limit) or, for a pod, every network's.
    pub(crate) async fn history(
        &mut self,
        query: &HistoryQuery,
    ) -> Result<Vec<HistoryEvent>, StoreError> {
        let (start, end) = match query {
            HistoryQuery::Network { network } | HistoryQuery::Address { network, .. } => {
                self.keys.history_network(network)
            }
            HistoryQuery::Pod { .. } | HistoryQuery::PodUid { .. } => self.keys.history_all(),
        };
        let entries = self.inner.range(&start, &end, false).await?;
        let mut events = Vec::new();
        for (key, value) in entries {
            let event: HistoryEvent = decode(&String::from_utf8_lossy(&key), &value)?;
            if event.matches(query) {
                events.push(event);
            }
        }
        sort_events(&mut events);
        Ok(events)
    }

    /// At most `limit` allocations of `network` with address keys in `[lo, hi]`.
    pub(crate) async fn alloc_page(
        &mut self,
        network: &str,
        lo: u128,
        hi: u128,
        limit: usize,
    ) -> Result<Vec<Allocation>, StoreError> {
        if limit == 0 {
            // etcd reads limit 0 as "no limit".
            return Ok(Vec::new());
        }
        let (start, end) = self.keys.alloc_range(network, lo, hi);
        let entries = self.inner.page(start.as_bytes(), &end, limit).await?;
        entries
            .iter()
            .map(|(key, value)| {
                let key = String::from_utf8_lossy(key);
                let allocation: Allocation = decode(&key, value)?;
                if self.keys.alloc(network, allocation.ip) != key {
                    return Err(corrupt(&key, "holds the allocation of another address"));
                }
                Ok(allocation)
            })
            .collect()
    }
}

/// Deletes the oldest events of `network` beyond `limit` (see the module docs). Outside
/// any claim transaction: deleting old events never conflicts with what claims read.
pub(crate) async fn prune(
    kv: &mut KvClient,
    conn: &Connector,
    keys: &Keys,
    network: &str,
    limit: u32,
) -> Result<(), Failure> {
    let (start, end) = keys.history_network(network);
    let count = kv
        .get(
            start.as_str(),
            Some(GetOptions::new().with_range(end.clone()).with_count_only()),
        )
        .await
        .map_err(|e| conn.classify(e))?
        .count();
    let excess = count - i64::from(limit);
    if excess <= 0 {
        return Ok(());
    }
    let oldest = kv
        .get(
            start.as_str(),
            Some(
                GetOptions::new()
                    .with_range(end)
                    .with_keys_only()
                    .with_limit(excess),
            ),
        )
        .await
        .map_err(|e| conn.classify(e))?;
    let Some(last) = oldest.kvs().last().map(|kv| kv.key().to_vec()) else {
        return Ok(());
    };
    kv.delete(
        start.as_str(),
        Some(DeleteOptions::new().with_range(Keys::after(&last))),
    )
    .await
    .map_err(|e| conn.classify(e))?;
    Ok(())
}
