//! The SQL of the allocation tables: row encoding and decoding, and every query the
//! backend runs. All queries go through the `(network, addr)` primary key or the
//! `(network, container_id, ifname, range_set)` unique index; none scans the table.

use std::net::IpAddr;

use plexus_ipam_core::addr::{from_key, key as addr_key};
use rusqlite::{Connection, OptionalExtension, Row, params};

use super::errors::ErrCtx;
use crate::engine;
use crate::error::StoreError;
use crate::gc_scope::AttachedRow;
use crate::types::{Allocation, AttachmentKey, Owner};

/// Columns of `allocations` in the order [`RawRow::read`] expects.
const COLUMNS: &str = "network, addr, range_set, container_id, ifname, pod_namespace, pod_name, \
                       pod_uid, created_at, node, details";

/// An address as stored: its 16-byte big-endian `u128` key, so BLOB order is address order.
pub(crate) fn addr_blob(ip: IpAddr) -> [u8; 16] {
    addr_key(ip).to_be_bytes()
}

/// The address of a stored 16-byte key.
pub(crate) fn blob_addr(blob: &[u8], ctx: &ErrCtx<'_>) -> Result<IpAddr, StoreError> {
    let bytes: [u8; 16] = blob.try_into().map_err(|_| {
        ctx.corrupt(format!(
            "stored address has {} bytes instead of 16",
            blob.len()
        ))
    })?;
    Ok(from_key(u128::from_be_bytes(bytes)))
}

/// One `allocations` row before validation.
struct RawRow {
    network: String,
    addr: Vec<u8>,
    range_set: String,
    container_id: String,
    ifname: String,
    pod_namespace: Option<String>,
    pod_name: Option<String>,
    pod_uid: Option<String>,
    created_at: i64,
    node: Option<String>,
    details: Option<String>,
}

impl RawRow {
    fn read(row: &Row<'_>) -> rusqlite::Result<RawRow> {
        Ok(RawRow {
            network: row.get(0)?,
            addr: row.get(1)?,
            range_set: row.get(2)?,
            container_id: row.get(3)?,
            ifname: row.get(4)?,
            pod_namespace: row.get(5)?,
            pod_name: row.get(6)?,
            pod_uid: row.get(7)?,
            created_at: row.get(8)?,
            node: row.get(9)?,
            details: row.get(10)?,
        })
    }

    fn into_allocation(self, ctx: &ErrCtx<'_>) -> Result<Allocation, StoreError> {
        let details = self
            .details
            .map(|text| {
                serde_json::from_str(&text).map_err(|e| {
                    ctx.corrupt(format!(
                        "details of {} in network {} are not JSON: {e}",
                        self.container_id, self.network
                    ))
                })
            })
            .transpose()?;
        Ok(Allocation {
            ip: blob_addr(&self.addr, ctx)?,
            network: self.network,
            container_id: self.container_id,
            ifname: self.ifname,
            range_set: self.range_set,
            owner: Owner {
                pod_namespace: self.pod_namespace,
                pod_name: self.pod_name,
                pod_uid: self.pod_uid,
                details,
            },
            created_at: self.created_at,
            node: self.node,
        })
    }
}

/// Runs `sql` with `params` and decodes every row as an allocation.
fn query_allocations(
    conn: &Connection,
    ctx: &ErrCtx<'_>,
    sql: &str,
    params: impl rusqlite::Params,
) -> Result<Vec<Allocation>, StoreError> {
    let mut stmt = conn.prepare_cached(sql).map_err(|e| ctx.map(e))?;
    let raw: Vec<RawRow> = stmt
        .query_map(params, RawRow::read)
        .and_then(|rows| rows.collect())
        .map_err(|e| ctx.map(e))?;
    raw.into_iter().map(|r| r.into_allocation(ctx)).collect()
}

/// Everything held by `key`, ordered by address.
pub(crate) fn attachment(
    conn: &Connection,
    ctx: &ErrCtx<'_>,
    key: &AttachmentKey,
) -> Result<Vec<Allocation>, StoreError> {
    let sql = format!(
        "SELECT {COLUMNS} FROM allocations \
         WHERE network = ?1 AND container_id = ?2 AND ifname = ?3 ORDER BY addr"
    );
    query_allocations(
        conn,
        ctx,
        &sql,
        params![key.network, key.container_id, key.ifname],
    )
}

/// The allocation `key` holds under `range_set`.
pub(crate) fn existing(
    conn: &Connection,
    ctx: &ErrCtx<'_>,
    key: &AttachmentKey,
    range_set: &str,
) -> Result<Option<Allocation>, StoreError> {
    let sql = format!(
        "SELECT {COLUMNS} FROM allocations WHERE network = ?1 AND container_id = ?2 \
         AND ifname = ?3 AND range_set = ?4"
    );
    let rows = query_allocations(
        conn,
        ctx,
        &sql,
        params![key.network, key.container_id, key.ifname, range_set],
    )?;
    Ok(rows.into_iter().next())
}

/// The allocation holding `ip` in `network`.
pub(crate) fn holder(
    conn: &Connection,
    ctx: &ErrCtx<'_>,
    network: &str,
    ip: IpAddr,
) -> Result<Option<Allocation>, StoreError> {
    let sql = format!("SELECT {COLUMNS} FROM allocations WHERE network = ?1 AND addr = ?2");
    let rows = query_allocations(conn, ctx, &sql, params![network, addr_blob(ip)])?;
    Ok(rows.into_iter().next())
}

/// Every allocation of `network`, ordered by address.
pub(crate) fn list(
    conn: &Connection,
    ctx: &ErrCtx<'_>,
    network: &str,
) -> Result<Vec<Allocation>, StoreError> {
    let sql = format!("SELECT {COLUMNS} FROM allocations WHERE network = ?1 ORDER BY addr");
    query_allocations(conn, ctx, &sql, params![network])
}

/// Every network holding an allocation, ascending: one primary-key seek per network (a
/// skip scan), never a pass over the allocations.
pub(crate) const ALLOCATED_NETWORKS_SQL: &str = "WITH RECURSIVE n(name) AS ( \
         SELECT min(network) FROM allocations \
         UNION ALL \
         SELECT (SELECT min(network) FROM allocations WHERE network > n.name) \
         FROM n WHERE n.name IS NOT NULL) \
     SELECT name FROM n WHERE name IS NOT NULL";

/// The names of [`ALLOCATED_NETWORKS_SQL`].
pub(crate) fn allocated_networks(
    conn: &Connection,
    ctx: &ErrCtx<'_>,
) -> Result<Vec<String>, StoreError> {
    let mut stmt = conn
        .prepare_cached(ALLOCATED_NETWORKS_SQL)
        .map_err(|e| ctx.map(e))?;
    let names = stmt
        .query_map([], |row| row.get::<_, String>(0))
        .map_err(|e| ctx.map(e))?;
    names.map(|n| n.map_err(|e| ctx.map(e))).collect()
}

/// One page of the allocations of `network` with address keys in `[lo, hi]`, ascending.
pub(crate) fn list_between(
    conn: &Connection,
    ctx: &ErrCtx<'_>,
    network: &str,
    lo: u128,
    hi: u128,
    limit: usize,
) -> Result<Vec<Allocation>, StoreError> {
    let sql = format!(
        "SELECT {COLUMNS} FROM allocations WHERE network = ?1 AND addr BETWEEN ?2 AND ?3 \
         ORDER BY addr LIMIT ?4"
    );
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    query_allocations(
        conn,
        ctx,
        &sql,
        params![network, lo.to_be_bytes(), hi.to_be_bytes(), limit],
    )
}

/// The held-window query of the next-fit search (a primary-key range scan).
pub(crate) const HELD_BETWEEN_SQL: &str =
    "SELECT addr FROM allocations WHERE network = ?1 AND addr BETWEEN ?2 AND ?3 ORDER BY addr";

/// The usage count query (a primary-key range count).
pub(crate) const COUNT_BETWEEN_SQL: &str =
    "SELECT count(*) FROM allocations WHERE network = ?1 AND addr BETWEEN ?2 AND ?3";

/// Held addresses of `network` within `[lo, hi]`, ascending.
pub(crate) fn held_between(
    conn: &Connection,
    ctx: &ErrCtx<'_>,
    network: &str,
    lo: IpAddr,
    hi: IpAddr,
) -> Result<Vec<IpAddr>, StoreError> {
    let mut stmt = conn
        .prepare_cached(HELD_BETWEEN_SQL)
        .map_err(|e| ctx.map(e))?;
    let blobs: Vec<Vec<u8>> = stmt
        .query_map(params![network, addr_blob(lo), addr_blob(hi)], |row| {
            row.get(0)
        })
        .and_then(|rows| rows.collect())
        .map_err(|e| ctx.map(e))?;
    blobs.iter().map(|b| blob_addr(b, ctx)).collect()
}

/// Number of allocations of `network` whose address key lies within `[lo, hi]`.
pub(crate) fn count_between(
    conn: &Connection,
    ctx: &ErrCtx<'_>,
    network: &str,
    lo: u128,
    hi: u128,
) -> Result<u64, StoreError> {
    let mut stmt = conn
        .prepare_cached(COUNT_BETWEEN_SQL)
        .map_err(|e| ctx.map(e))?;
    let count: i64 = stmt
        .query_row(
            params![network, lo.to_be_bytes(), hi.to_be_bytes()],
            |row| row.get(0),
        )
        .map_err(|e| ctx.map(e))?;
    u64::try_from(count).map_err(|_| ctx.corrupt(format!("negative row count {count}")))
}

/// Deletes everything held by `key`, returning it ordered by address.
pub(crate) fn delete_attachment(
    conn: &Connection,
    ctx: &ErrCtx<'_>,
    key: &AttachmentKey,
) -> Result<Vec<Allocation>, StoreError> {
    let sql = format!(
        "DELETE FROM allocations WHERE network = ?1 AND container_id = ?2 AND ifname = ?3 \
         RETURNING {COLUMNS}"
    );
    let mut released = query_allocations(
        conn,
        ctx,
        &sql,
        params![key.network, key.container_id, key.ifname],
    )?;
    released.sort_by_key(|a| addr_key(a.ip));
    Ok(released)
}

/// One row per allocation of `network`: holder, node and range set (GC's view).
pub(crate) fn attachments_of(
    conn: &Connection,
    ctx: &ErrCtx<'_>,
    network: &str,
) -> Result<Vec<AttachedRow>, StoreError> {
    let mut stmt = conn
        .prepare_cached(
            "SELECT container_id, ifname, node, range_set FROM allocations WHERE network = ?1",
        )
        .map_err(|e| ctx.map(e))?;
    stmt.query_map(params![network], |row| {
        Ok(AttachedRow {
            container_id: row.get(0)?,
            ifname: row.get(1)?,
            node: row.get(2)?,
            range_set: row.get(3)?,
        })
    })
    .and_then(|rows| rows.collect())
    .map_err(|e| ctx.map(e))
}

/// Inserts `a`; a held address becomes [`StoreError::AddressTaken`] naming the holder.
pub(crate) fn insert(
    conn: &Connection,
    ctx: &ErrCtx<'_>,
    a: &Allocation,
) -> Result<(), StoreError> {
    let mut stmt = conn
        .prepare_cached(&format!(
            "INSERT INTO allocations ({COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)"
        ))
        .map_err(|e| ctx.map(e))?;
    let result = stmt.execute(params![
        a.network,
        addr_blob(a.ip),
        a.range_set,
        a.container_id,
        a.ifname,
        a.owner.pod_namespace,
        a.owner.pod_name,
        a.owner.pod_uid,
        a.created_at,
        a.node,
        a.owner.details.as_ref().map(serde_json::Value::to_string)
    ]);
    match result {
        Ok(_) => Ok(()),
        Err(err) if err.sqlite_error_code() == Some(rusqlite::ErrorCode::ConstraintViolation) => {
            // The database constraint is the real uniqueness guarantee; name who won.
            match holder(conn, ctx, &a.network, a.ip)? {
                Some(holder) => Err(engine::address_taken(&holder)),
                None => Err(StoreError::Internal {
                    reason: format!(
                        "attachment {}/{} already holds an address from range set {} of \
                         network {} ({err})",
                        a.container_id, a.ifname, a.range_set, a.network
                    ),
                }),
            }
        }
        Err(err) => Err(ctx.map(err)),
    }
}

/// The next-fit cursor of (network, range set).
pub(crate) fn cursor(
    conn: &Connection,
    ctx: &ErrCtx<'_>,
    network: &str,
    range_set: &str,
) -> Result<Option<IpAddr>, StoreError> {
    let mut stmt = conn
        .prepare_cached("SELECT last_addr FROM cursors WHERE network = ?1 AND range_set = ?2")
        .map_err(|e| ctx.map(e))?;
    let blob: Option<Vec<u8>> = stmt
        .query_row(params![network, range_set], |row| row.get(0))
        .optional()
        .map_err(|e| ctx.map(e))?;
    blob.map(|b| blob_addr(&b, ctx)).transpose()
}

/// Moves the next-fit cursor of (network, range set) to `ip`.
pub(crate) fn set_cursor(
    conn: &Connection,
    ctx: &ErrCtx<'_>,
    network: &str,
    range_set: &str,
    ip: IpAddr,
) -> Result<(), StoreError> {
    let mut stmt = conn
        .prepare_cached(
            "INSERT INTO cursors (network, range_set, last_addr) VALUES (?1, ?2, ?3) \
             ON CONFLICT (network, range_set) DO UPDATE SET last_addr = excluded.last_addr",
        )
        .map_err(|e| ctx.map(e))?;
    stmt.execute(params![network, range_set, addr_blob(ip)])
        .map(drop)
        .map_err(|e| ctx.map(e))
}
