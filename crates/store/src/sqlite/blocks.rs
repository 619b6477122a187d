//! The SQL of the `blocks` table (per-node address blocks). Every query goes through the
//! `(network, base)` primary key or one of the two indexes of schema v3; none scans.

use std::net::IpAddr;

use rusqlite::{Connection, Row, params};

use super::errors::ErrCtx;
use super::rows::{addr_blob, blob_addr};
use crate::error::StoreError;
use crate::types::Block;

/// Columns of `blocks` in the order [`RawBlock::read`] expects.
const BLOCK_COLUMNS: &str =
    "network, base, prefix, range_set, node, claimed_at, emptied_at, cursor";

/// The node's blocks of one range set (index `blocks_by_node`).
pub(crate) const NODE_BLOCKS_SQL: &str = "SELECT network, base, prefix, range_set, node, \
     claimed_at, emptied_at, cursor FROM blocks \
     WHERE network = ?1 AND range_set = ?2 AND node = ?3 ORDER BY base";

/// Blocks whose base lies in a key window (primary key range).
pub(crate) const BLOCKS_BETWEEN_SQL: &str = "SELECT network, base, prefix, range_set, node, \
     claimed_at, emptied_at, cursor FROM blocks \
     WHERE network = ?1 AND base BETWEEN ?2 AND ?3 ORDER BY base";

/// Blocks emptied at or before a time (partial index `blocks_emptied`).
pub(crate) const EMPTIED_BLOCKS_SQL: &str = "SELECT network, base, prefix, range_set, node, \
     claimed_at, emptied_at, cursor FROM blocks \
     WHERE network = ?1 AND emptied_at IS NOT NULL AND emptied_at <= ?2";

/// One `blocks` row before validation.
struct RawBlock {
    network: String,
    base: Vec<u8>,
    prefix: i64,
    range_set: String,
    node: String,
    claimed_at: i64,
    emptied_at: Option<i64>,
    cursor: Option<Vec<u8>>,
}

impl RawBlock {
    fn read(row: &Row<'_>) -> rusqlite::Result<RawBlock> {
        Ok(RawBlock {
            network: row.get(0)?,
            base: row.get(1)?,
            prefix: row.get(2)?,
            range_set: row.get(3)?,
            node: row.get(4)?,
            claimed_at: row.get(5)?,
            emptied_at: row.get(6)?,
            cursor: row.get(7)?,
        })
    }

    fn into_block(self, ctx: &ErrCtx<'_>) -> Result<Block, StoreError> {
        let prefix = u8::try_from(self.prefix)
            .map_err(|_| ctx.corrupt(format!("block prefix {} out of range", self.prefix)))?;
        Ok(Block {
            base: blob_addr(&self.base, ctx)?,
            cursor: self.cursor.map(|c| blob_addr(&c, ctx)).transpose()?,
            network: self.network,
            prefix,
            range_set: self.range_set,
            node: self.node,
            claimed_at: self.claimed_at,
            emptied_at: self.emptied_at,
        })
    }
}

/// Runs `sql` with `params` and decodes every row as a block.
fn query_blocks(
    conn: &Connection,
    ctx: &ErrCtx<'_>,
    sql: &str,
    params: impl rusqlite::Params,
) -> Result<Vec<Block>, StoreError> {
    let mut stmt = conn.prepare_cached(sql).map_err(|e| ctx.map(e))?;
    let raw: Vec<RawBlock> = stmt
        .query_map(params, RawBlock::read)
        .and_then(|rows| rows.collect())
        .map_err(|e| ctx.map(e))?;
    raw.into_iter().map(|r| r.into_block(ctx)).collect()
}

/// The blocks `node` holds in `(network, range_set)`, ascending by base.
pub(crate) fn node_blocks(
    conn: &Connection,
    ctx: &ErrCtx<'_>,
    network: &str,
    range_set: &str,
    node: &str,
) -> Result<Vec<Block>, StoreError> {
    query_blocks(
        conn,
        ctx,
        NODE_BLOCKS_SQL,
        params![network, range_set, node],
    )
}

/// The blocks of `network` whose base key lies in `[lo, hi]`, ascending.
pub(crate) fn blocks_between(
    conn: &Connection,
    ctx: &ErrCtx<'_>,
    network: &str,
    lo: u128,
    hi: u128,
) -> Result<Vec<Block>, StoreError> {
    query_blocks(
        conn,
        ctx,
        BLOCKS_BETWEEN_SQL,
        params![network, lo.to_be_bytes(), hi.to_be_bytes()],
    )
}

/// The blocks of `network` emptied at or before `emptied_by`.
pub(crate) fn emptied_blocks(
    conn: &Connection,
    ctx: &ErrCtx<'_>,
    network: &str,
    emptied_by: i64,
) -> Result<Vec<Block>, StoreError> {
    query_blocks(conn, ctx, EMPTIED_BLOCKS_SQL, params![network, emptied_by])
}

/// Inserts `b`; `false` when a block with its base already exists in its network.
pub(crate) fn insert_block(
    conn: &Connection,
    ctx: &ErrCtx<'_>,
    b: &Block,
) -> Result<bool, StoreError> {
    let mut stmt = conn
        .prepare_cached(&format!(
            "INSERT INTO blocks ({BLOCK_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) \
             ON CONFLICT (network, base) DO NOTHING"
        ))
        .map_err(|e| ctx.map(e))?;
    let inserted = stmt
        .execute(params![
            b.network,
            addr_blob(b.base),
            b.prefix,
            b.range_set,
            b.node,
            b.claimed_at,
            b.emptied_at,
            b.cursor.map(addr_blob)
        ])
        .map_err(|e| ctx.map(e))?;
    Ok(inserted == 1)
}

/// Stores the cursor and emptied mark of the block `(b.network, b.base)`.
pub(crate) fn update_block(
    conn: &Connection,
    ctx: &ErrCtx<'_>,
    b: &Block,
) -> Result<(), StoreError> {
    let mut stmt = conn
        .prepare_cached(
            "UPDATE blocks SET cursor = ?3, emptied_at = ?4 WHERE network = ?1 AND base = ?2",
        )
        .map_err(|e| ctx.map(e))?;
    stmt.execute(params![
        b.network,
        addr_blob(b.base),
        b.cursor.map(addr_blob),
        b.emptied_at
    ])
    .map(drop)
    .map_err(|e| ctx.map(e))
}

/// Deletes the block `(network, base)`.
pub(crate) fn delete_block(
    conn: &Connection,
    ctx: &ErrCtx<'_>,
    network: &str,
    base: IpAddr,
) -> Result<(), StoreError> {
    let mut stmt = conn
        .prepare_cached("DELETE FROM blocks WHERE network = ?1 AND base = ?2")
        .map_err(|e| ctx.map(e))?;
    stmt.execute(params![network, addr_blob(base)])
        .map(drop)
        .map_err(|e| ctx.map(e))
}

/// Every block of `network`, ascending by base.
pub(crate) fn list_blocks(
    conn: &Connection,
    ctx: &ErrCtx<'_>,
    network: &str,
) -> Result<Vec<Block>, StoreError> {
    blocks_between(conn, ctx, network, 0, u128::MAX)
}
