//! The SQLite schema and its ordered migrations.
//!
//! The version lives in the one-row table `schema_version`. Opening a current database
//! costs one `SELECT`; otherwise the version is read again and the missing migrations run
//! inside one `BEGIN IMMEDIATE` transaction, so concurrent openers (plugin processes
//! starting together) migrate exactly once and never judge a half-built schema.
//!
//! History:
//! - v1: `allocations` (unique address per network, one address per attachment and range
//!   set) and the next-fit `cursors`.
//! - v2: the owner's pod UID on allocations, and the `heartbeat` row the STATUS probe writes.
//! - v3: per-node address `blocks` (with their cursor and emptied mark) and the claiming
//!   node on allocations.
//! - v4: stored `networks` (opaque JSON definitions with revision and timestamps), the
//!   bounded claim/release `history` per network, and the owner's opaque `details` (JSON
//!   text) on allocations.

use rusqlite::{Connection, OptionalExtension, TransactionBehavior};

use super::errors::ErrCtx;
use crate::error::StoreError;

/// The SQLite schema version this build creates and understands.
pub const LATEST_VERSION: i64 = 4;

/// `(version reached, SQL)`, in order. Never edit a released step: append a new one.
const MIGRATIONS: &[(i64, &str)] = &[
    (
        1,
        "CREATE TABLE schema_version (
             id INTEGER PRIMARY KEY CHECK (id = 1),
             version INTEGER NOT NULL
         );
         CREATE TABLE allocations (
             network TEXT NOT NULL,
             addr BLOB NOT NULL CHECK (length(addr) = 16),
             range_set TEXT NOT NULL,
             container_id TEXT NOT NULL,
             ifname TEXT NOT NULL,
             pod_namespace TEXT,
             pod_name TEXT,
             created_at INTEGER NOT NULL,
             PRIMARY KEY (network, addr),
             UNIQUE (network, container_id, ifname, range_set)
         ) WITHOUT ROWID;
         CREATE TABLE cursors (
             network TEXT NOT NULL,
             range_set TEXT NOT NULL,
             last_addr BLOB NOT NULL CHECK (length(last_addr) = 16),
             PRIMARY KEY (network, range_set)
         ) WITHOUT ROWID;",
    ),
    (
        2,
        "ALTER TABLE allocations ADD COLUMN pod_uid TEXT;
         CREATE TABLE heartbeat (
             id INTEGER PRIMARY KEY CHECK (id = 1),
             beat_at INTEGER NOT NULL
         );",
    ),
    (
        3,
        "ALTER TABLE allocations ADD COLUMN node TEXT;
         CREATE TABLE blocks (
             network TEXT NOT NULL,
             base BLOB NOT NULL CHECK (length(base) = 16),
             prefix INTEGER NOT NULL,
             range_set TEXT NOT NULL,
             node TEXT NOT NULL,
             claimed_at INTEGER NOT NULL,
             emptied_at INTEGER,
             cursor BLOB CHECK (cursor IS NULL OR length(cursor) = 16),
             PRIMARY KEY (network, base)
         ) WITHOUT ROWID;
         CREATE INDEX blocks_by_node ON blocks (network, range_set, node);
         CREATE INDEX blocks_emptied ON blocks (network, emptied_at)
             WHERE emptied_at IS NOT NULL;",
    ),
    (
        4,
        "ALTER TABLE allocations ADD COLUMN details TEXT;
         CREATE TABLE networks (
             name TEXT NOT NULL PRIMARY KEY,
             definition TEXT NOT NULL,
             revision INTEGER NOT NULL CHECK (revision >= 1),
             created_at INTEGER NOT NULL,
             updated_at INTEGER NOT NULL
         ) WITHOUT ROWID;
         CREATE TABLE history (
             network TEXT NOT NULL,
             seq INTEGER NOT NULL,
             at INTEGER NOT NULL,
             kind TEXT NOT NULL CHECK (kind IN ('claim', 'release')),
             addr BLOB NOT NULL CHECK (length(addr) = 16),
             container_id TEXT NOT NULL,
             ifname TEXT NOT NULL,
             pod_namespace TEXT,
             pod_name TEXT,
             pod_uid TEXT,
             node TEXT,
             PRIMARY KEY (network, seq)
         ) WITHOUT ROWID;
         CREATE INDEX history_by_addr ON history (network, addr);
         CREATE INDEX history_by_pod ON history (pod_namespace, pod_name)
             WHERE pod_name IS NOT NULL;
         CREATE INDEX history_by_uid ON history (pod_uid) WHERE pod_uid IS NOT NULL;",
    ),
];

/// Brings the database to [`LATEST_VERSION`], or refuses one this build cannot read.
pub(crate) fn ensure_current(conn: &mut Connection, ctx: &ErrCtx<'_>) -> Result<(), StoreError> {
    // Fast path, no lock: the committed version only ever grows.
    if let Ok(Some(version)) = committed_version(conn) {
        if version == LATEST_VERSION {
            return Ok(());
        }
        check_not_newer(version, ctx)?;
    }
    // Everything else is decided under the write lock, where no other process can be
    // half-way through creating the schema.
    let txn = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(|e| ctx.map(e))?;
    let version = read_version(&txn, ctx)?;
    if version == LATEST_VERSION {
        return Ok(());
    }
    check_not_newer(version, ctx)?;
    for (target, sql) in MIGRATIONS.iter().filter(|(target, _)| *target > version) {
        txn.execute_batch(sql).map_err(|e| {
            let err = ctx.map(e);
            StoreError::Internal {
                reason: format!("migration to schema v{target} failed: {err}"),
            }
        })?;
    }
    txn.execute(
        "INSERT INTO schema_version (id, version) VALUES (1, ?1) \
         ON CONFLICT (id) DO UPDATE SET version = excluded.version",
        [LATEST_VERSION],
    )
    .map_err(|e| ctx.map(e))?;
    txn.commit().map_err(|e| ctx.map(e))?;
    tracing::info!(
        path = %ctx.path.display(),
        from = version,
        to = LATEST_VERSION,
        "migrated allocation database schema"
    );
    Ok(())
}

fn check_not_newer(version: i64, ctx: &ErrCtx<'_>) -> Result<(), StoreError> {
    if version > LATEST_VERSION {
        return Err(ctx.corrupt(format!(
            "database schema v{version} is newer than this plexus supports (v{LATEST_VERSION})"
        )));
    }
    Ok(())
}

/// The version row, if the table and row exist.
fn committed_version(conn: &Connection) -> rusqlite::Result<Option<i64>> {
    conn.query_row(
        "SELECT version FROM schema_version WHERE id = 1",
        [],
        |row| row.get(0),
    )
    .optional()
}

/// The stored schema version, 0 for a database without any table yet. Call it under the
/// write lock: it reads `sqlite_schema` in more than one statement.
fn read_version(conn: &Connection, ctx: &ErrCtx<'_>) -> Result<i64, StoreError> {
    let (has_version_table, tables): (bool, i64) = conn
        .query_row(
            "SELECT EXISTS (SELECT 1 FROM sqlite_schema \
                            WHERE type = 'table' AND name = 'schema_version'), \
                    (SELECT count(*) FROM sqlite_schema \
                     WHERE type = 'table' AND name NOT LIKE 'sqlite_%')",
            [],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )
        .map_err(|e| ctx.map(e))?;
    if !has_version_table {
        if tables > 0 {
            // Never add tables to, or "migrate", a database some other program owns.
            return Err(
                ctx.corrupt("it holds tables but no plexus schema_version: not a plexus database")
            );
        }
        return Ok(0);
    }
    committed_version(conn)
        .map_err(|e| ctx.map(e))?
        .ok_or_else(|| ctx.corrupt("table schema_version is empty"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;
    use std::time::Duration;

    fn ctx() -> ErrCtx<'static> {
        ErrCtx::start(Path::new("/test.db"), Duration::from_secs(1))
    }

    fn tables(conn: &Connection) -> Vec<String> {
        let mut stmt = conn
            .prepare("SELECT name FROM sqlite_schema WHERE type = 'table' ORDER BY name")
            .unwrap();
        stmt.query_map([], |r| r.get(0))
            .unwrap()
            .map(Result::unwrap)
            .collect()
    }

    #[test]
    fn migrations_are_ordered_and_end_at_latest() {
        let versions: Vec<i64> = MIGRATIONS.iter().map(|(v, _)| *v).collect();
        let expected: Vec<i64> = (1..=LATEST_VERSION).collect();
        assert_eq!(versions, expected);
    }

    #[test]
    fn empty_database_is_migrated_and_reopening_is_a_no_op() {
        let mut conn = Connection::open_in_memory().unwrap();
        ensure_current(&mut conn, &ctx()).unwrap();
        assert_eq!(read_version(&conn, &ctx()).unwrap(), LATEST_VERSION);
        assert_eq!(
            tables(&conn),
            [
                "allocations",
                "blocks",
                "cursors",
                "heartbeat",
                "history",
                "networks",
                "schema_version"
            ]
        );
        let changes_before = conn.total_changes();
        ensure_current(&mut conn, &ctx()).unwrap();
        assert_eq!(
            conn.total_changes(),
            changes_before,
            "second open must not write"
        );
    }

    #[test]
    fn foreign_database_is_refused_untouched() {
        let mut conn = Connection::open_in_memory().unwrap();
        conn.execute_batch("CREATE TABLE users (name TEXT)")
            .unwrap();
        let err = ensure_current(&mut conn, &ctx()).unwrap_err();
        assert!(matches!(err, StoreError::Corrupt { .. }), "{err:?}");
        assert_eq!(tables(&conn), ["users"]);
    }

    #[test]
    fn newer_schema_is_corrupt_with_both_versions() {
        let mut conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(
            "CREATE TABLE schema_version (id INTEGER PRIMARY KEY, version INTEGER NOT NULL);
             INSERT INTO schema_version VALUES (1, 99);",
        )
        .unwrap();
        let err = ensure_current(&mut conn, &ctx()).unwrap_err();
        let msg = err.to_string();
        assert!(matches!(err, StoreError::Corrupt { .. }), "{err:?}");
        assert!(
            msg.contains("database schema v99 is newer than this plexus supports (v4)"),
            "{msg}"
        );
    }
}
