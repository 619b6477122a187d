//! The SQL of the native tables: row encoding and decoding and every query the backend
//! runs. All queries go through the `(network, addr)` primary key, the
//! `(network, container_id, ifname, range_set)` unique index or the block indexes; none
//! scans a table. Each is sent through `statements`: one round trip; prepared once per
//! pooled connection. The per-node blocks' queries are in `block_rows`.

use std::net::IpAddr;

use plexus_ipam_core::addr::{from_key, key as addr_key};
use tokio_postgres::types::Type;
use tokio_postgres::{Client, Row};

use super::errors::ErrCtx;
use super::statements::{self, Param};
use crate::error::StoreError;
use crate::gc_scope::AttachedRow;
use crate::types::{Allocation, AttachmentKey, Owner};

/// Columns of `plexus_allocations` in the order [`allocation_of`] expects.
const COLUMNS: &str = "network, addr, range_set, container_id, ifname, pod_namespace, pod_name, \
                       pod_uid, created_at, node, details::text";

/// An address as stored: its 16-byte big-endian key, so `bytea` order is address order.
pub(crate) fn addr_bytes(ip: IpAddr) -> Vec<u8> {
    addr_key(ip).to_be_bytes().to_vec()
}

/// The address of a stored 16-byte key.
pub(crate) fn bytes_addr(bytes: &[u8], ctx: &ErrCtx) -> Result<IpAddr, StoreError> {
    let bytes: [u8; 16] = bytes.try_into().map_err(|_| {
        ctx.corrupt(format!(
            "stored address has {} bytes instead of 16",
            bytes.len()
        ))
    })?;
    Ok(from_key(u128::from_be_bytes(bytes)))
}

pub(super) async fn query(
    client: &Client,
    ctx: &ErrCtx,
    sql: &str,
    params: &[Param<'_>],
) -> Result<Vec<Row>, StoreError> {
    statements::query_typed(client, sql, params)
        .await
        .map_err(|e| ctx.map(&e))
}

pub(super) fn get<'r, T: tokio_postgres::types::FromSql<'r>>(
    row: &'r Row,
    index: usize,
    ctx: &ErrCtx,
) -> Result<T, StoreError> {
    row.try_get(index)
        .map_err(|e| ctx.corrupt(format!("unexpected stored value: {e}")))
}

fn allocation_of(row: &Row, ctx: &ErrCtx) -> Result<Allocation, StoreError> {
    let addr: &[u8] = get(row, 1, ctx)?;
    let details: Option<&str> = get(row, 10, ctx)?;
    let details = details
        .map(|text| {
            serde_json::from_str(text)
                .map_err(|e| ctx.corrupt(format!("allocation details are not JSON: {e}")))
        })
        .transpose()?;
    Ok(Allocation {
        network: get(row, 0, ctx)?,
        ip: bytes_addr(addr, ctx)?,
        range_set: get(row, 2, ctx)?,
        container_id: get(row, 3, ctx)?,
        ifname: get(row, 4, ctx)?,
        owner: Owner {
            pod_namespace: get(row, 5, ctx)?,
            pod_name: get(row, 6, ctx)?,
            pod_uid: get(row, 7, ctx)?,
            details,
        },
        created_at: get(row, 8, ctx)?,
        node: get(row, 9, ctx)?,
    })
}

fn allocations_of(rows: &[Row], ctx: &ErrCtx) -> Result<Vec<Allocation>, StoreError> {
    rows.iter().map(|row| allocation_of(row, ctx)).collect()
}

/// Everything held by `key`, ordered by address.
pub(crate) async fn attachment(
    client: &Client,
    ctx: &ErrCtx,
    key: &AttachmentKey,
) -> Result<Vec<Allocation>, StoreError> {
    let sql = format!(
        "SELECT {COLUMNS} FROM plexus_allocations \
         WHERE network = $1 AND container_id = $2 AND ifname = $3 ORDER BY addr"
    );
    let rows = query(
        client,
        ctx,
        &sql,
        &[
            (&key.network, Type::TEXT),
            (&key.container_id, Type::TEXT),
            (&key.ifname, Type::TEXT),
        ],
    )
    .await?;
    allocations_of(&rows, ctx)
}

/// The allocation `key` holds under `range_set`.
pub(crate) async fn existing(
    client: &Client,
    ctx: &ErrCtx,
    key: &AttachmentKey,
    range_set: &str,
) -> Result<Option<Allocation>, StoreError> {
    let sql = format!(
        "SELECT {COLUMNS} FROM plexus_allocations WHERE network = $1 AND container_id = $2 \
         AND ifname = $3 AND range_set = $4"
    );
    let rows = query(
        client,
        ctx,
        &sql,
        &[
            (&key.network, Type::TEXT),
            (&key.container_id, Type::TEXT),
            (&key.ifname, Type::TEXT),
            (&range_set, Type::TEXT),
        ],
    )
    .await?;
    rows.first().map(|row| allocation_of(row, ctx)).transpose()
}

/// The allocation holding `ip` in `network`.
pub(crate) async fn holder(
    client: &Client,
    ctx: &ErrCtx,
    network: &str,
    ip: IpAddr,
) -> Result<Option<Allocation>, StoreError> {
    let sql = format!("SELECT {COLUMNS} FROM plexus_allocations WHERE network = $1 AND addr = $2");
    let addr = addr_bytes(ip);
    let rows = query(
        client,
        ctx,
        &sql,
        &[(&network, Type::TEXT), (&addr, Type::BYTEA)],
    )
    .await?;
    rows.first().map(|row| allocation_of(row, ctx)).transpose()
}

/// Every allocation of `network`, ordered by address.
pub(crate) async fn list(
    client: &Client,
    ctx: &ErrCtx,
    network: &str,
) -> Result<Vec<Allocation>, StoreError> {
    let sql = format!("SELECT {COLUMNS} FROM plexus_allocations WHERE network = $1 ORDER BY addr");
    let rows = query(client, ctx, &sql, &[(&network, Type::TEXT)]).await?;
    allocations_of(&rows, ctx)
}

/// Every network holding an allocation, ascending: one primary-key seek per network (a
/// skip scan), never a pass over the allocations.
pub(crate) const ALLOCATED_NETWORKS_SQL: &str = "WITH RECURSIVE n(name) AS ( \
         SELECT min(network) FROM plexus_allocations \
         UNION ALL \
         SELECT (SELECT min(network) FROM plexus_allocations WHERE network > n.name) \
         FROM n WHERE n.name IS NOT NULL) \
     SELECT name FROM n WHERE name IS NOT NULL";

/// The names of [`ALLOCATED_NETWORKS_SQL`].
pub(crate) async fn allocated_networks(
    client: &Client,
    ctx: &ErrCtx,
) -> Result<Vec<String>, StoreError> {
    let rows = query(client, ctx, ALLOCATED_NETWORKS_SQL, &[]).await?;
    rows.iter().map(|row| get::<String>(row, 0, ctx)).collect()
}

/// The held-window query of the free-address search (a primary-key range scan).
pub(crate) const HELD_BETWEEN_SQL: &str = "SELECT addr FROM plexus_allocations \
     WHERE network = $1 AND addr BETWEEN $2 AND $3 ORDER BY addr";

/// The usage count query (a primary-key range count).
pub(crate) const COUNT_BETWEEN_SQL: &str =
    "SELECT count(*) FROM plexus_allocations WHERE network = $1 AND addr BETWEEN $2 AND $3";

/// Held addresses of `network` within `[lo, hi]`, ascending.
pub(crate) async fn held_between(
    client: &Client,
    ctx: &ErrCtx,
    network: &str,
    lo: IpAddr,
    hi: IpAddr,
) -> Result<Vec<IpAddr>, StoreError> {
    let (lo, hi) = (addr_bytes(lo), addr_bytes(hi));
    let rows = query(
        client,
        ctx,
        HELD_BETWEEN_SQL,
        &[
            (&network, Type::TEXT),
            (&lo, Type::BYTEA),
            (&hi, Type::BYTEA),
        ],
    )
    .await?;
    rows.iter()
        .map(|row| bytes_addr(get(row, 0, ctx)?, ctx))
        .collect()
}

/// Number of allocations of `network` whose address key lies within `[lo, hi]`.
pub(crate) async fn count_between(
    client: &Client,
    ctx: &ErrCtx,
    network: &str,
    lo: u128,
    hi: u128,
) -> Result<u64, StoreError> {
    let (lo, hi) = (lo.to_be_bytes().to_vec(), hi.to_be_bytes().to_vec());
    let rows = query(
        client,
        ctx,
        COUNT_BETWEEN_SQL,
        &[
            (&network, Type::TEXT),
            (&lo, Type::BYTEA),
            (&hi, Type::BYTEA),
        ],
    )
    .await?;
    let count: i64 = match rows.first() {
        Some(row) => get(row, 0, ctx)?,
        None => 0,
    };
    u64::try_from(count).map_err(|_| ctx.corrupt(format!("negative row count {count}")))
}

/// Deletes everything held by `key`, returning it ordered by address.
pub(crate) async fn delete_attachment(
    client: &Client,
    ctx: &ErrCtx,
    key: &AttachmentKey,
) -> Result<Vec<Allocation>, StoreError> {
    let sql = format!(
        "DELETE FROM plexus_allocations WHERE network = $1 AND container_id = $2 AND ifname = $3 \
         RETURNING {COLUMNS}"
    );
    let rows = query(
        client,
        ctx,
        &sql,
        &[
            (&key.network, Type::TEXT),
            (&key.container_id, Type::TEXT),
            (&key.ifname, Type::TEXT),
        ],
    )
    .await?;
    let mut released = allocations_of(&rows, ctx)?;
    released.sort_by_key(|a| addr_key(a.ip));
    Ok(released)
}

/// One row per allocation of `network`: holder, node and range set (GC's view).
pub(crate) async fn attachments_of(
    client: &Client,
    ctx: &ErrCtx,
    network: &str,
) -> Result<Vec<AttachedRow>, StoreError> {
    let rows = query(
        client,
        ctx,
        "SELECT container_id, ifname, node, range_set FROM plexus_allocations WHERE network = $1",
        &[(&network, Type::TEXT)],
    )
    .await?;
    rows.iter()
        .map(|row| {
            Ok(AttachedRow {
                container_id: get(row, 0, ctx)?,
                ifname: get(row, 1, ctx)?,
                node: get(row, 2, ctx)?,
                range_set: get(row, 3, ctx)?,
            })
        })
        .collect()
}

/// One page of the allocations of `network` with address keys in `[lo, hi]`, ascending.
pub(crate) async fn list_between(
    client: &Client,
    ctx: &ErrCtx,
    network: &str,
    lo: u128,
    hi: u128,
    limit: usize,
) -> Result<Vec<Allocation>, StoreError> {
    let sql = format!(
        "SELECT {COLUMNS} FROM plexus_allocations \
         WHERE network = $1 AND addr BETWEEN $2 AND $3 ORDER BY addr LIMIT $4"
    );
    let (lo, hi) = (lo.to_be_bytes().to_vec(), hi.to_be_bytes().to_vec());
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let rows = query(
        client,
        ctx,
        &sql,
        &[
            (&network, Type::TEXT),
            (&lo, Type::BYTEA),
            (&hi, Type::BYTEA),
            (&limit, Type::INT8),
        ],
    )
    .await?;
    allocations_of(&rows, ctx)
}

/// Inserts `a`. `Ok(false)` when a row with the same address or the same (attachment,
/// range set) exists: the statement skips it and the transaction stays usable.
pub(crate) async fn insert(
    client: &Client,
    ctx: &ErrCtx,
    a: &Allocation,
) -> Result<bool, StoreError> {
    let sql = format!(
        "INSERT INTO plexus_allocations ({}) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11::jsonb) ON CONFLICT DO NOTHING",
        COLUMNS.replace("::text", "")
    );
    let addr = addr_bytes(a.ip);
    let details = a.owner.details.as_ref().map(serde_json::Value::to_string);
    let inserted = statements::execute_typed(
        client,
        &sql,
        &[
            (&a.network, Type::TEXT),
            (&addr, Type::BYTEA),
            (&a.range_set, Type::TEXT),
            (&a.container_id, Type::TEXT),
            (&a.ifname, Type::TEXT),
            (&a.owner.pod_namespace, Type::TEXT),
            (&a.owner.pod_name, Type::TEXT),
            (&a.owner.pod_uid, Type::TEXT),
            (&a.created_at, Type::INT8),
            (&a.node, Type::TEXT),
            (&details, Type::TEXT),
        ],
    )
    .await
    .map_err(|e| ctx.map(&e))?;
    Ok(inserted == 1)
}

/// The next-fit cursor of (network, range set).
pub(crate) async fn cursor(
    client: &Client,
    ctx: &ErrCtx,
    network: &str,
    range_set: &str,
) -> Result<Option<IpAddr>, StoreError> {
    let rows = query(
        client,
        ctx,
        // FOR UPDATE: claims of different nodes run side by side (see `txn`), and borrowers
        // must not all start from one cursor; the second waits, then reads the first's.
        "SELECT last_addr FROM plexus_cursors WHERE network = $1 AND range_set = $2 FOR UPDATE",
        &[(&network, Type::TEXT), (&range_set, Type::TEXT)],
    )
    .await?;
    rows.first()
        .map(|row| bytes_addr(get(row, 0, ctx)?, ctx))
        .transpose()
}

/// Moves the next-fit cursor of (network, range set) to `ip`.
pub(crate) async fn set_cursor(
    client: &Client,
    ctx: &ErrCtx,
    network: &str,
    range_set: &str,
    ip: IpAddr,
) -> Result<(), StoreError> {
    let addr = addr_bytes(ip);
    query(
        client,
        ctx,
        "INSERT INTO plexus_cursors (network, range_set, last_addr) VALUES ($1, $2, $3) \
         ON CONFLICT (network, range_set) DO UPDATE SET last_addr = excluded.last_addr",
        &[
            (&network, Type::TEXT),
            (&range_set, Type::TEXT),
            (&addr, Type::BYTEA),
        ],
    )
    .await
    .map(drop)
}

/// Writes the STATUS heartbeat row (proves the database accepts writes).
pub(crate) async fn heartbeat(client: &Client, ctx: &ErrCtx, now: i64) -> Result<(), StoreError> {
    statements::execute_typed(
        client,
        "INSERT INTO plexus_heartbeat (id, beat_at) VALUES (1, $1) \
             ON CONFLICT (id) DO UPDATE SET beat_at = excluded.beat_at",
        &[(&now, Type::INT8)],
    )
    .await
    .map(drop)
    .map_err(|e| ctx.map(&e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn ctx() -> ErrCtx {
        ErrCtx {
            endpoint: "db:5432".into(),
            dbname: "plexus".into(),
            timeout: Duration::from_secs(1),
            secret: None,
            sslmode: super::super::config::SslMode::Disable,
        }
    }

    proptest::proptest! {
        /// The stored bytes decode to the same address, and byte order is address order.
        #[test]
        fn bytes_round_trip_and_keep_order(a in proptest::num::u128::ANY, b in proptest::num::u128::ANY) {
            let (ia, ib) = (from_key(a), from_key(b));
            proptest::prop_assert_eq!(bytes_addr(&addr_bytes(ia), &ctx()).unwrap(), ia);
            proptest::prop_assert_eq!(addr_bytes(ia).cmp(&addr_bytes(ib)), addr_key(ia).cmp(&addr_key(ib)));
        }
    }

    #[test]
    fn short_bytes_are_corrupt() {
        let err = bytes_addr(&[1, 2, 3], &ctx()).unwrap_err();
        assert!(matches!(err, StoreError::Corrupt { .. }), "{err:?}");
        assert!(err.to_string().contains("3 bytes"), "{err}");
    }
}
