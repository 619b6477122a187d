//! The layout-version key: created on first use, migrated forward, refused when newer.
//!
//! Layout history (never change a released step, append one):
//! - 1: allocations, the attachment index and next-fit cursors.
//! - 2: per-node blocks (block, by-node and emptied-index keys) and the claiming node in
//!   allocations. Nothing is rewritten: blocks appear as nodes claim them and allocations
//!   without a node read as `node: None`.
//! - 3: stored networks (`network/` keys), the claim history (`history/` keys) and the
//!   owner's opaque `details` inside allocation values. Nothing is rewritten: allocations
//!   without details read as `details: None`.
//!
//! Every change of the key is a compare-and-swap, so plugins starting at once on a new or
//! old store agree on one outcome; every write of a claim also compares the key, so no
//! write of an older layout lands after a migration.

use etcd_client::{Compare, CompareOp, GetOptions, KvClient, Txn, TxnOp};

use super::conn::{Connector, Failure};
use super::keys::Keys;
use crate::error::StoreError;

/// The layout this build writes and understands.
pub const LATEST_LAYOUT: u32 = 3;

/// The value of the layout key for `version`.
pub(crate) fn value(version: u32) -> String {
    version.to_string()
}

/// Brings the store under `keys` to [`LATEST_LAYOUT`] (creating it when empty), or refuses
/// a layout this build cannot read. A lost race with another migrating writer is a
/// [`Failure::Conflict`]: the caller calls again and finds the winner's result.
pub(crate) async fn ensure(
    kv: &mut KvClient,
    keys: &Keys,
    conn: &Connector,
) -> Result<(), Failure> {
    let layout_key = keys.layout();
    let mut response = kv
        .get(layout_key.as_str(), None)
        .await
        .map_err(|e| conn.classify(e))?;
    let current = response.take_kvs().into_iter().next();
    let Some(current) = current else {
        let revision = response.header().map_or(0, |h| h.revision());
        return create(kv, keys, conn, revision).await;
    };
    let version = parse(&layout_key, current.value())?;
    if version == LATEST_LAYOUT {
        return Ok(());
    }
    if version > LATEST_LAYOUT {
        return Err(Failure::Fatal(StoreError::Corrupt {
            reason: format!(
                "etcd layout version {version} at {layout_key} is newer than this plexus \
                 supports ({LATEST_LAYOUT}); upgrade plexus on this node"
            ),
        }));
    }
    migrate(kv, keys, conn, version).await
}

fn parse(layout_key: &str, value: &[u8]) -> Result<u32, Failure> {
    std::str::from_utf8(value)
        .ok()
        .and_then(|v| v.parse::<u32>().ok())
        .filter(|v| *v >= 1)
        .ok_or_else(|| {
            Failure::Fatal(StoreError::Corrupt {
                reason: format!(
                    "{layout_key} holds {:?}, not a plexus layout version",
                    String::from_utf8_lossy(value)
                ),
            })
        })
}

/// Writes the layout key of a prefix that was empty at `revision`, where the key was found
/// missing; refuses a prefix that held other keys then. (Counting at that same revision
/// matters: a moment later, another plugin may have created the key and written data.)
async fn create(
    kv: &mut KvClient,
    keys: &Keys,
    conn: &Connector,
    revision: i64,
) -> Result<(), Failure> {
    let (start, end) = keys.everything();
    let options = GetOptions::new()
        .with_range(end.clone())
        .with_count_only()
        .with_revision(revision);
    let count = kv
        .get(start.as_str(), Some(options))
        .await
        .map_err(|e| conn.classify(e))?
        .count();
    if count > 0 {
        return Err(Failure::Fatal(StoreError::Corrupt {
            reason: format!(
                "{count} keys under {start} but no layout version key {}: not a plexus \
                 store; choose another ipam.store.prefix",
                keys.layout()
            ),
        }));
    }
    let txn = Txn::new()
        .when(vec![
            // Still empty: nothing under the prefix has a version yet.
            Compare::version(start, CompareOp::Equal, 0).with_range(end),
        ])
        .and_then(vec![TxnOp::put(keys.layout(), value(LATEST_LAYOUT), None)]);
    commit(kv, conn, txn, "creating the layout version key").await
}

/// Steps from `from` to [`LATEST_LAYOUT`], one compare-and-swap per step.
async fn migrate(
    kv: &mut KvClient,
    keys: &Keys,
    conn: &Connector,
    from: u32,
) -> Result<(), Failure> {
    for version in from..LATEST_LAYOUT {
        let next = version + 1;
        // Every step so far only announces new key kinds: there is nothing to rewrite.
        let txn = Txn::new()
            .when(vec![Compare::value(
                keys.layout(),
                CompareOp::Equal,
                value(version),
            )])
            .and_then(vec![TxnOp::put(keys.layout(), value(next), None)]);
        commit(kv, conn, txn, "migrating the layout").await?;
        tracing::info!(
            layout_key = %keys.layout(),
            from = version,
            to = next,
            "etcd layout migrated"
        );
    }
    Ok(())
}

async fn commit(kv: &mut KvClient, conn: &Connector, txn: Txn, what: &str) -> Result<(), Failure> {
    let response = kv.txn(txn).await.map_err(|e| conn.classify(e))?;
    if response.succeeded() {
        Ok(())
    } else {
        Err(Failure::Conflict(format!(
            "another writer changed the store while {what}"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_parse_strictly() {
        assert!(matches!(parse("k", b"2"), Ok(2)));
        for bad in [&b""[..], b"0", b"-1", b"two", b"2 ", b"\xff"] {
            assert!(
                matches!(
                    parse("k", bad),
                    Err(Failure::Fatal(StoreError::Corrupt { .. }))
                ),
                "{bad:?}"
            );
        }
    }
}
