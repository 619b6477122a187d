//! Stored networks and history on top of [`StoreTxn`]: the revision checks of a network
//! write, the in-use check of a deletion, and appending imported history.

use std::net::IpAddr;

use plexus_ipam_core::addr::from_key;

use super::{StoreTxn, family_key_ranges};
use crate::error::StoreError;
use crate::records::{HistoryEvent, NetworkDeletion, NetworkRecord, PutMode};

/// Writes `definition` as network `name` inside `txn` if `mode` allows it, at `now`.
pub(crate) async fn put_network<T: StoreTxn + ?Sized>(
    txn: &mut T,
    name: &str,
    definition: &serde_json::Value,
    mode: PutMode,
    now: i64,
) -> Result<NetworkRecord, StoreError> {
    let stored = txn.get_network(name).await?;
    let record = match (mode, stored) {
        (PutMode::Create, Some(old)) => {
            return Err(StoreError::Conflict {
                reason: format!(
                    "network {name} exists already (revision {}); update or apply it instead",
                    old.revision
                ),
            });
        }
        (PutMode::Update(_), None) => {
            return Err(StoreError::Conflict {
                reason: format!("network {name} does not exist; create it first"),
            });
        }
        (PutMode::Update(expected), Some(old)) if old.revision != expected => {
            return Err(StoreError::Conflict {
                reason: format!(
                    "network {name} is at revision {}, not {expected}: another writer changed \
                     it; read it again",
                    old.revision
                ),
            });
        }
        (PutMode::Create | PutMode::Upsert, None) => NetworkRecord {
            name: name.to_string(),
            definition: definition.clone(),
            revision: 1,
            created_at: now,
            updated_at: now,
        },
        (PutMode::Update(_) | PutMode::Upsert, Some(old)) => NetworkRecord {
            definition: definition.clone(),
            revision: old.revision + 1,
            updated_at: now,
            ..old
        },
    };
    txn.write_network(&record).await?;
    Ok(record)
}

/// Deletes network `name` inside `txn` unless it holds addresses and `force` is off.
pub(crate) async fn delete_network<T: StoreTxn + ?Sized>(
    txn: &mut T,
    name: &str,
    force: bool,
) -> Result<NetworkDeletion, StoreError> {
    let Some(record) = txn.get_network(name).await? else {
        return Ok(NetworkDeletion::NotFound);
    };
    let allocations = count_all(txn, name).await?;
    if allocations > 0 && !force {
        return Ok(NetworkDeletion::InUse { allocations });
    }
    txn.remove_network(name).await?;
    Ok(NetworkDeletion::Deleted {
        record,
        allocations,
    })
}

/// Every allocation of `network`, both families, counted from the index.
pub(crate) async fn count_all<T: StoreTxn + ?Sized>(
    txn: &mut T,
    network: &str,
) -> Result<u64, StoreError> {
    let v4 = (IpAddr::from([0u8; 4]), IpAddr::from([255u8; 4]));
    let v6 = (IpAddr::from([0u16; 8]), IpAddr::from([0xffffu16; 8]));
    let mut total = 0;
    for (lo, hi) in [v4, v6] {
        for (lo, hi) in family_key_ranges(lo, hi)? {
            total += txn
                .count_between(network, from_key(lo), from_key(hi))
                .await?;
        }
    }
    Ok(total)
}

/// Appends imported `events` in order inside `txn`.
pub(crate) async fn record_history<T: StoreTxn + ?Sized>(
    txn: &mut T,
    events: &[HistoryEvent],
) -> Result<(), StoreError> {
    for event in events {
        let mut event = event.clone();
        event.ip = plexus_ipam_core::addr::canonical(event.ip);
        txn.append_history(&event).await?;
    }
    Ok(())
}
