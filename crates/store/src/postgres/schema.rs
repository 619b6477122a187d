//! The native PostgreSQL schema (`plexus_*` tables) and its ordered migrations.
//!
//! The version lives in the one-row table `plexus_schema_version`. A store checks it once
//! per process (one `SELECT`); when it is missing or old, the missing migrations run in one
//! transaction under `pg_advisory_xact_lock`, so plugin processes starting together on an
//! empty database migrate exactly once and never see a half-built schema (PostgreSQL DDL is
//! transactional).
//!
//! Addresses are `bytea` holding the 16-byte big-endian `u128` key of
//! `plexus_ipam_core::addr::key` (IPv4 as `::ffff:a.b.c.d`): `bytea` compares bytewise, so
//! the B-tree of the primary key `(network, addr)` is in address order and every window of
//! the free-address search is an index range scan. (`inet` orders IPv4 before IPv6 too, but
//! the engine works in `u128` keys, and a fixed-width byte string keeps one encoding for
//! every backend; `numeric` would be slower to compare.) Text keys use the `"C"` collation:
//! byte equality, independent of the database's locale.
//!
//! History:
//! - v1: `plexus_allocations` (unique address per network, one address per attachment and
//!   range set), next-fit `plexus_cursors`, the STATUS probe's `plexus_heartbeat`.
//! - v2: per-node blocks (`plexus_blocks`) and the claiming node on allocations.
//! - v3: stored networks (`plexus_networks`, the definition as `jsonb`), the bounded
//!   claim/release history (`plexus_history`, keyed by `(network, seq)`) and the owner's
//!   opaque `details` (`jsonb`) on allocations.
//! - v4: `plexus_history_seq`, the sequence every history append draws its `seq` from
//!   (appends no longer lock their network's history), started past every stored `seq`.

use tokio_postgres::Client;
use tokio_postgres::error::SqlState;

use super::errors::ErrCtx;
use crate::error::StoreError;

/// The native schema version this build creates and understands.
pub const LATEST_VERSION: i32 = 4;

/// Advisory lock (one `bigint` key) serializing migrations of the native schema: "plexus",
/// then 1.
pub(crate) const MIGRATION_LOCK: i64 = 0x706c_6578_7573_0001;

/// `(version reached, SQL)`, in order. Never edit a released step: append a new one.
pub(crate) const MIGRATIONS: &[(i32, &str)] = &[
    (
        1,
        r#"CREATE TABLE plexus_schema_version (
             id smallint PRIMARY KEY CHECK (id = 1),
             version integer NOT NULL
           );
           CREATE TABLE plexus_allocations (
             network text COLLATE "C" NOT NULL,
             addr bytea NOT NULL CHECK (octet_length(addr) = 16),
             range_set text COLLATE "C" NOT NULL,
             container_id text COLLATE "C" NOT NULL,
             ifname text COLLATE "C" NOT NULL,
             pod_namespace text,
             pod_name text,
             pod_uid text,
             created_at bigint NOT NULL,
             PRIMARY KEY (network, addr),
             UNIQUE (network, container_id, ifname, range_set)
           );
           CREATE TABLE plexus_cursors (
             network text COLLATE "C" NOT NULL,
             range_set text COLLATE "C" NOT NULL,
             last_addr bytea NOT NULL CHECK (octet_length(last_addr) = 16),
             PRIMARY KEY (network, range_set)
           );
           CREATE TABLE plexus_heartbeat (
             id smallint PRIMARY KEY CHECK (id = 1),
             beat_at bigint NOT NULL
           );"#,
    ),
    (
        2,
        r#"ALTER TABLE plexus_allocations ADD COLUMN node text;
           CREATE TABLE plexus_blocks (
             network text COLLATE "C" NOT NULL,
             base bytea NOT NULL CHECK (octet_length(base) = 16),
             range_set text COLLATE "C" NOT NULL,
             prefix smallint NOT NULL CHECK (prefix BETWEEN 0 AND 128),
             node text COLLATE "C" NOT NULL,
             claimed_at bigint NOT NULL,
             emptied_at bigint,
             cursor_addr bytea CHECK (octet_length(cursor_addr) = 16),
             PRIMARY KEY (network, base)
           );
           CREATE INDEX plexus_blocks_of_node ON plexus_blocks (network, range_set, node, base);
           CREATE INDEX plexus_blocks_emptied ON plexus_blocks (network, emptied_at)
             WHERE emptied_at IS NOT NULL;"#,
    ),
    (
        3,
        r#"ALTER TABLE plexus_allocations ADD COLUMN details jsonb;
           CREATE TABLE plexus_networks (
             name text COLLATE "C" PRIMARY KEY,
             definition jsonb NOT NULL,
             revision bigint NOT NULL CHECK (revision >= 1),
             created_at bigint NOT NULL,
             updated_at bigint NOT NULL
           );
           CREATE TABLE plexus_history (
             network text COLLATE "C" NOT NULL,
             seq bigint NOT NULL,
             at bigint NOT NULL,
             kind text NOT NULL CHECK (kind IN ('claim', 'release')),
             addr bytea NOT NULL CHECK (octet_length(addr) = 16),
             container_id text COLLATE "C" NOT NULL,
             ifname text COLLATE "C" NOT NULL,
             pod_namespace text COLLATE "C",
             pod_name text COLLATE "C",
             pod_uid text COLLATE "C",
             node text,
             PRIMARY KEY (network, seq)
           );
           CREATE INDEX plexus_history_by_addr ON plexus_history (network, addr);
           CREATE INDEX plexus_history_by_pod ON plexus_history (pod_namespace, pod_name)
             WHERE pod_name IS NOT NULL;
           CREATE INDEX plexus_history_by_uid ON plexus_history (pod_uid)
             WHERE pod_uid IS NOT NULL;"#,
    ),
    (
        4,
        r#"CREATE SEQUENCE plexus_history_seq AS bigint;
           SELECT setval('plexus_history_seq',
                         coalesce((SELECT max(seq) FROM plexus_history), 0) + 1, false);"#,
    ),
];

/// Brings the database to [`LATEST_VERSION`], or refuses one this build cannot read.
pub(crate) async fn ensure_current(client: &mut Client, ctx: &ErrCtx) -> Result<(), StoreError> {
    // Fast path, no lock: the committed version only ever grows.
    match client
        .query_opt(
            "SELECT version FROM plexus_schema_version WHERE id = 1",
            &[],
        )
        .await
    {
        Ok(Some(row)) => {
            let version: i32 = row.try_get(0).map_err(|e| ctx.map(&e))?;
            if version == LATEST_VERSION {
                return Ok(());
            }
            check_not_newer(version, ctx)?;
        }
        Ok(None) => {}
        Err(err) if err.code() == Some(&SqlState::UNDEFINED_TABLE) => {}
        Err(err) => return Err(ctx.map(&err)),
    }
    migrate_to(client, ctx, LATEST_VERSION).await
}

/// Runs the migrations up to `target` under the migration lock (tests stop early to build
/// an older schema).
pub(crate) async fn migrate_to(
    client: &mut Client,
    ctx: &ErrCtx,
    target: i32,
) -> Result<(), StoreError> {
    let txn = client.transaction().await.map_err(|e| ctx.map(&e))?;
    txn.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
        .await
        .map_err(|e| ctx.map(&e))?;
    let version = read_version(&txn, ctx).await?;
    if version >= target {
        check_not_newer(version, ctx)?;
        return Ok(());
    }
    for (step, sql) in MIGRATIONS
        .iter()
        .filter(|(step, _)| *step > version && *step <= target)
    {
        txn.batch_execute(sql).await.map_err(|e| {
            let err = ctx.map(&e);
            StoreError::Internal {
                reason: format!("migration to schema v{step} failed: {err}"),
            }
        })?;
    }
    txn.execute(
        "INSERT INTO plexus_schema_version (id, version) VALUES (1, $1) \
         ON CONFLICT (id) DO UPDATE SET version = excluded.version",
        &[&target],
    )
    .await
    .map_err(|e| ctx.map(&e))?;
    txn.commit().await.map_err(|e| ctx.map(&e))?;
    tracing::info!(
        endpoint = %ctx.endpoint,
        from = version,
        to = target,
        "migrated the PostgreSQL allocation schema"
    );
    Ok(())
}

fn check_not_newer(version: i32, ctx: &ErrCtx) -> Result<(), StoreError> {
    if version > LATEST_VERSION {
        return Err(ctx.corrupt(format!(
            "schema v{version} is newer than this plexus supports (v{LATEST_VERSION})"
        )));
    }
    Ok(())
}

/// The stored version, 0 when no plexus table exists yet.
async fn read_version(
    txn: &tokio_postgres::Transaction<'_>,
    ctx: &ErrCtx,
) -> Result<i32, StoreError> {
    let row = txn
        .query_one(
            "SELECT to_regclass('plexus_schema_version') IS NOT NULL, \
                    to_regclass('plexus_allocations') IS NOT NULL",
            &[],
        )
        .await
        .map_err(|e| ctx.map(&e))?;
    let (has_version, has_allocations): (bool, bool) = (row.get(0), row.get(1));
    if !has_version {
        if has_allocations {
            // Never "migrate" tables some other program (or a broken install) made.
            return Err(ctx.corrupt(
                "table plexus_allocations exists without plexus_schema_version: not a schema \
                 plexus created",
            ));
        }
        return Ok(0);
    }
    let row = txn
        .query_opt(
            "SELECT version FROM plexus_schema_version WHERE id = 1",
            &[],
        )
        .await
        .map_err(|e| ctx.map(&e))?;
    match row {
        Some(row) => row.try_get(0).map_err(|e| ctx.map(&e)),
        None => Err(ctx.corrupt("table plexus_schema_version is empty")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrations_are_ordered_and_end_at_latest() {
        let versions: Vec<i32> = MIGRATIONS.iter().map(|(v, _)| *v).collect();
        let expected: Vec<i32> = (1..=LATEST_VERSION).collect();
        assert_eq!(versions, expected);
    }

    #[test]
    fn every_table_is_prefixed() {
        for (_, sql) in MIGRATIONS {
            for word in [
                "CREATE TABLE ",
                "CREATE INDEX ",
                "ALTER TABLE ",
                "CREATE SEQUENCE ",
            ] {
                for (at, _) in sql.match_indices(word) {
                    let name = &sql[at + word.len()..];
                    assert!(name.starts_with("plexus_"), "{word}{name:.40}");
                }
            }
        }
    }
}
