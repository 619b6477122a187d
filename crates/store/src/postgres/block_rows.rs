//! The SQL of the native layout's per-node blocks (`plexus_blocks`): row decoding and
//! every block query, through the `(network, base)` primary key or the block indexes; none
//! scans a table. Shares `rows`' address encoding and typed-query helpers.

use std::net::IpAddr;

use tokio_postgres::Client;
use tokio_postgres::Row;
use tokio_postgres::types::Type;

use super::errors::ErrCtx;
use super::rows::{addr_bytes, bytes_addr, get, query};
use super::statements;
use crate::error::StoreError;
use crate::types::Block;

/// Columns of `plexus_blocks` in the order [`block_of`] expects.
const BLOCK_COLUMNS: &str =
    "network, base, range_set, prefix, node, claimed_at, emptied_at, cursor_addr";

fn block_of(row: &Row, ctx: &ErrCtx) -> Result<Block, StoreError> {
    let base: &[u8] = get(row, 1, ctx)?;
    let prefix: i16 = get(row, 3, ctx)?;
    let cursor: Option<&[u8]> = get(row, 7, ctx)?;
    Ok(Block {
        network: get(row, 0, ctx)?,
        base: bytes_addr(base, ctx)?,
        range_set: get(row, 2, ctx)?,
        prefix: u8::try_from(prefix)
            .map_err(|_| ctx.corrupt(format!("block prefix {prefix} out of range")))?,
        node: get(row, 4, ctx)?,
        claimed_at: get(row, 5, ctx)?,
        emptied_at: get(row, 6, ctx)?,
        cursor: cursor.map(|c| bytes_addr(c, ctx)).transpose()?,
    })
}

fn blocks_of(rows: &[Row], ctx: &ErrCtx) -> Result<Vec<Block>, StoreError> {
    rows.iter().map(|row| block_of(row, ctx)).collect()
}

/// Every block of `network`, ordered by base.
pub(crate) async fn blocks(
    client: &Client,
    ctx: &ErrCtx,
    network: &str,
) -> Result<Vec<Block>, StoreError> {
    let sql = format!("SELECT {BLOCK_COLUMNS} FROM plexus_blocks WHERE network = $1 ORDER BY base");
    let rows = query(client, ctx, &sql, &[(&network, Type::TEXT)]).await?;
    blocks_of(&rows, ctx)
}

/// The blocks `node` holds in (network, range set), ordered by base.
pub(crate) async fn node_blocks(
    client: &Client,
    ctx: &ErrCtx,
    network: &str,
    range_set: &str,
    node: &str,
) -> Result<Vec<Block>, StoreError> {
    let sql = format!(
        "SELECT {BLOCK_COLUMNS} FROM plexus_blocks \
         WHERE network = $1 AND range_set = $2 AND node = $3 ORDER BY base"
    );
    let rows = query(
        client,
        ctx,
        &sql,
        &[
            (&network, Type::TEXT),
            (&range_set, Type::TEXT),
            (&node, Type::TEXT),
        ],
    )
    .await?;
    blocks_of(&rows, ctx)
}

/// The blocks of `network` whose base lies within `[lo, hi]`, ordered by base.
pub(crate) async fn blocks_between(
    client: &Client,
    ctx: &ErrCtx,
    network: &str,
    lo: IpAddr,
    hi: IpAddr,
) -> Result<Vec<Block>, StoreError> {
    let sql = format!(
        "SELECT {BLOCK_COLUMNS} FROM plexus_blocks \
         WHERE network = $1 AND base BETWEEN $2 AND $3 ORDER BY base"
    );
    let (lo, hi) = (addr_bytes(lo), addr_bytes(hi));
    let rows = query(
        client,
        ctx,
        &sql,
        &[
            (&network, Type::TEXT),
            (&lo, Type::BYTEA),
            (&hi, Type::BYTEA),
        ],
    )
    .await?;
    blocks_of(&rows, ctx)
}

/// The blocks of `network` emptied at or before `emptied_by`.
pub(crate) async fn emptied_blocks(
    client: &Client,
    ctx: &ErrCtx,
    network: &str,
    emptied_by: i64,
) -> Result<Vec<Block>, StoreError> {
    let sql = format!(
        "SELECT {BLOCK_COLUMNS} FROM plexus_blocks \
         WHERE network = $1 AND emptied_at IS NOT NULL AND emptied_at <= $2"
    );
    let rows = query(
        client,
        ctx,
        &sql,
        &[(&network, Type::TEXT), (&emptied_by, Type::INT8)],
    )
    .await?;
    blocks_of(&rows, ctx)
}

/// Inserts `block`; `Ok(false)` when (network, base) is taken (transaction still usable).
pub(crate) async fn insert_block(
    client: &Client,
    ctx: &ErrCtx,
    block: &Block,
) -> Result<bool, StoreError> {
    let sql = format!(
        "INSERT INTO plexus_blocks ({BLOCK_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
         ON CONFLICT (network, base) DO NOTHING"
    );
    let base = addr_bytes(block.base);
    let cursor = block.cursor.map(addr_bytes);
    let prefix = i16::from(block.prefix);
    let inserted = statements::execute_typed(
        client,
        &sql,
        &[
            (&block.network, Type::TEXT),
            (&base, Type::BYTEA),
            (&block.range_set, Type::TEXT),
            (&prefix, Type::INT2),
            (&block.node, Type::TEXT),
            (&block.claimed_at, Type::INT8),
            (&block.emptied_at, Type::INT8),
            (&cursor, Type::BYTEA),
        ],
    )
    .await
    .map_err(|e| ctx.map(&e))?;
    Ok(inserted == 1)
}

/// Stores the mutable fields (cursor, emptied_at) of an existing block.
pub(crate) async fn update_block(
    client: &Client,
    ctx: &ErrCtx,
    block: &Block,
) -> Result<(), StoreError> {
    let base = addr_bytes(block.base);
    let cursor = block.cursor.map(addr_bytes);
    let updated = statements::execute_typed(
        client,
        "UPDATE plexus_blocks SET cursor_addr = $3, emptied_at = $4 \
             WHERE network = $1 AND base = $2",
        &[
            (&block.network, Type::TEXT),
            (&base, Type::BYTEA),
            (&cursor, Type::BYTEA),
            (&block.emptied_at, Type::INT8),
        ],
    )
    .await
    .map_err(|e| ctx.map(&e))?;
    if updated == 0 {
        return Err(StoreError::Internal {
            reason: format!(
                "block {}/{} of network {} vanished during the transaction",
                block.base, block.prefix, block.network
            ),
        });
    }
    Ok(())
}

/// Deletes the block (network, base); a missing block is fine.
pub(crate) async fn delete_block(
    client: &Client,
    ctx: &ErrCtx,
    network: &str,
    base: IpAddr,
) -> Result<(), StoreError> {
    let base = addr_bytes(base);
    // Only while still marked emptied: a claim of the block's node running side by side
    // (see `txn`) clears the mark when it places an address there, and then the block stays.
    statements::execute_typed(
        client,
        "DELETE FROM plexus_blocks WHERE network = $1 AND base = $2 \
             AND emptied_at IS NOT NULL",
        &[(&network, Type::TEXT), (&base, Type::BYTEA)],
    )
    .await
    .map(drop)
    .map_err(|e| ctx.map(&e))
}
