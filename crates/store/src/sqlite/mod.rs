//! [`SqliteStore`]: the embedded default backend, one SQLite file per node.
//!
//! - WAL journal, so readers never wait for the writer.
//! - Every write is one `BEGIN IMMEDIATE` transaction: the free-address search and the
//!   insert of a claim run under the database write lock, serialized across processes,
//!   with no read-then-write race. Uniqueness is additionally a primary-key constraint.
//! - Lock waits are bounded by the busy timeout (default 10 s).
//! - `synchronous=NORMAL` by default (see [`crate::Synchronous`] for the durability
//!   trade-off).
//! - The file is created mode 0600 (its directory 0700) before SQLite opens it.

mod blocks;
mod errors;
mod file;
mod records;
mod rows;
mod schema;
mod txn;

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use plexus_ipam_core::BlockPolicy;
use rusqlite::Connection;
use rusqlite::OpenFlags;
use rusqlite::config::DbConfig;
use tokio::sync::{Mutex, MutexGuard};

use self::errors::ErrCtx;
use self::txn::SqlTxn;
use crate::backoff::Backoff;
use crate::config::{OpenMode, SqliteConfig};
use crate::engine;
use crate::error::StoreError;
use crate::gc_scope::GcScope;
use crate::records::{HistoryEvent, HistoryQuery, NetworkDeletion, NetworkRecord, PutMode};
use crate::store::Store;
use crate::types::{
    Allocation, AttachmentKey, Block, Claim, ClaimContext, GcReport, Owner, unix_now,
};

pub(crate) use self::file::check_existing;
pub use self::schema::LATEST_VERSION;

/// Rows per transaction in [`SqliteStore::bulk_insert`].
const BULK_BATCH: usize = 10_000;

/// The SQLite backend. `Send + Sync`: the connection sits behind an async mutex; open one
/// store per process (or thread) for parallelism, the database serializes writers itself.
///
/// Statements run on the calling task. They block its thread for as long as SQLite works
/// or waits for another process's write lock (at most the busy timeout); a caller serving
/// other tasks meanwhile (the node agent) runs each call on a blocking thread.
#[derive(Debug)]
pub struct SqliteStore {
    conn: Mutex<Connection>,
    path: PathBuf,
    busy_timeout: Duration,
    history_limit: u32,
}

impl SqliteStore {
    /// Opens (creating if missing) the database of `cfg` and brings its schema up to date.
    ///
    /// Cheap when the schema is current: a few pragmas and one `SELECT`, no DDL, since a
    /// plugin opens the database on every CNI call.
    pub fn open(cfg: &SqliteConfig) -> Result<SqliteStore, StoreError> {
        SqliteStore::open_as(cfg, OpenMode::CreateIfMissing)
    }

    /// Opens the database of `cfg` as `mode` says: [`OpenMode::MustExist`] refuses a
    /// missing (or empty) file and creates nothing, not even its directory.
    pub fn open_as(cfg: &SqliteConfig, mode: OpenMode) -> Result<SqliteStore, StoreError> {
        let ctx = ErrCtx::start(&cfg.path, cfg.busy_timeout);
        match mode {
            OpenMode::CreateIfMissing => file::create_private_file(&cfg.path, &ctx)?,
            OpenMode::MustExist => file::check_existing(&cfg.path)?,
        }
        // No CREATE flag: the file exists with our mode; no URI parsing of a plain path.
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let mut conn = Connection::open_with_flags(&cfg.path, flags).map_err(|e| ctx.map(e))?;
        conn.busy_timeout(cfg.busy_timeout)
            .map_err(|e| ctx.map(e))?;
        set_journal_wal(&conn, &ctx)?;
        // Each plugin process is usually the database's only connection. By default SQLite
        // checkpoints and deletes the WAL on every close (fsyncs and unlinks per CNI call),
        // and a process opening the database alone replays the whole WAL (recovery), which
        // also forgets what was already checkpointed. So: no checkpoint on close, none
        // automatic, and a writer empties the WAL once it grows (`checkpoint_if_long`).
        conn.set_db_config(DbConfig::SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, true)
            .map_err(|e| ctx.map(e))?;
        conn.pragma_update(None, "wal_autocheckpoint", 0)
            .map_err(|e| ctx.map(e))?;
        conn.pragma_update(None, "synchronous", cfg.synchronous.pragma_value())
            .map_err(|e| ctx.map(e))?;
        schema::ensure_current(&mut conn, &ctx)?;
        Ok(SqliteStore {
            conn: Mutex::new(conn),
            path: cfg.path.clone(),
            busy_timeout: cfg.busy_timeout,
            history_limit: cfg.history_limit,
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Inserts pre-built allocations in batched transactions (benchmarks and imports) and
    /// returns how many were inserted. Synchronous: call it outside any async runtime (or
    /// on a blocking thread).
    ///
    /// The input counts as handed out in iteration order: the next-fit cursor of each
    /// (network, range set) ends at the last address inserted for it. An address already
    /// held fails with [`StoreError::AddressTaken`]; batches committed before stay.
    pub fn bulk_insert(
        &self,
        allocations: impl Iterator<Item = Allocation>,
    ) -> Result<u64, StoreError> {
        let mut allocations = allocations.peekable();
        let mut inserted = 0u64;
        while allocations.peek().is_some() {
            let batch = allocations.by_ref().take(BULK_BATCH);
            inserted += self.write_blocking(|txn| {
                let mut cursors: BTreeMap<(String, String), IpAddr> = BTreeMap::new();
                let mut count = 0u64;
                for a in batch {
                    rows::insert(txn.conn, &txn.ctx, &a)?;
                    cursors.insert((a.network, a.range_set), a.ip);
                    count += 1;
                }
                for ((network, range_set), ip) in cursors {
                    rows::set_cursor(txn.conn, &txn.ctx, &network, &range_set, ip)?;
                }
                Ok(count)
            })?;
        }
        Ok(inserted)
    }

    /// Locks the connection.
    async fn lock(&self) -> MutexGuard<'_, Connection> {
        roll_back_leftover(self.conn.lock().await)
    }

    /// Locks the connection from synchronous code (not from a runtime thread).
    fn lock_blocking(&self) -> MutexGuard<'_, Connection> {
        roll_back_leftover(self.conn.blocking_lock())
    }

    fn ctx(&self) -> ErrCtx<'_> {
        ErrCtx::start(&self.path, self.busy_timeout)
    }

    /// Runs `f` in one `BEGIN IMMEDIATE` transaction, committed only if `f` succeeds.
    ///
    /// `BEGIN IMMEDIATE` waits for the write lock in SQLite's busy handler, but SQLite
    /// refuses at once (`SQLITE_BUSY` without waiting) while another process recovers or
    /// checkpoints the WAL; that refusal is retried here with the shared [`Backoff`] until
    /// the busy timeout is spent, as the plugin's own retry loop did before there was one
    /// retry policy. Inside the transaction the write lock is held, so nothing else can be
    /// refused for a lock.
    ///
    /// The engine's futures are awaited like any other: SQLite's own calls complete
    /// synchronously inside them, with the connection's lock held across the awaits.
    async fn write<T>(
        &self,
        f: impl AsyncFnOnce(&mut SqlTxn<'_>) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let mut conn = self.lock().await;
        let ctx = self.ctx();
        retry_early_busy(&ctx, &mut conn, |conn| {
            conn.execute_batch("BEGIN IMMEDIATE")
                .map_err(|e| ctx.map(e))
        })
        .await?;
        let mut txn = SqlTxn {
            conn: &mut conn,
            ctx,
            history_limit: self.history_limit,
        };
        let result = f(&mut txn).await;
        self.end_write(&conn, ctx, result)
    }

    /// [`SqliteStore::write`] of a synchronous `f`, from synchronous code.
    fn write_blocking<T>(
        &self,
        f: impl FnOnce(&mut SqlTxn<'_>) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let mut conn = self.lock_blocking();
        let ctx = self.ctx();
        let mut backoff = Backoff::until(ctx.started + ctx.busy_timeout);
        loop {
            match conn
                .execute_batch("BEGIN IMMEDIATE")
                .map_err(|e| ctx.map(e))
            {
                Ok(()) => break,
                Err(err) if err.is_transient() && backoff.wait_blocking() => {}
                Err(err) => return Err(err),
            }
        }
        let mut txn = SqlTxn {
            conn: &mut conn,
            ctx,
            history_limit: self.history_limit,
        };
        let result = f(&mut txn);
        self.end_write(&conn, ctx, result)
    }

    /// Commits the open transaction when `result` is `Ok`, rolls it back otherwise.
    fn end_write<T>(
        &self,
        conn: &Connection,
        ctx: ErrCtx<'_>,
        result: Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let committed = result.and_then(|value| {
            conn.execute_batch("COMMIT")
                .map(|()| value)
                .map_err(|e| ctx.map(e))
        });
        if committed.is_err() && !conn.is_autocommit() {
            // Best effort: the error being reported matters more than a failed rollback,
            // and `lock` rolls back whatever is still open before the next use.
            let _ = conn.execute_batch("ROLLBACK");
        }
        if committed.is_ok() {
            self.checkpoint_if_long(conn);
        }
        committed
    }

    /// Copies the WAL into the database and empties it once it passes
    /// [`WAL_CHECKPOINT_BYTES`]. Best effort: a reader holding an old snapshot makes the
    /// checkpoint partial, and the next writer tries again; the data is safe either way.
    fn checkpoint_if_long(&self, conn: &Connection) {
        let mut wal = self.path.clone().into_os_string();
        wal.push("-wal");
        let long = std::fs::metadata(&wal).is_ok_and(|m| m.len() > WAL_CHECKPOINT_BYTES);
        if long {
            // Never wait for other processes here: the CNI result is not written yet. A busy
            // database just means another writer will checkpoint a moment later.
            let _ = conn.busy_timeout(Duration::ZERO);
            let result = conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |row| {
                row.get::<_, i64>(0)
            });
            let _ = conn.busy_timeout(self.busy_timeout);
            match result {
                Ok(0) => {}
                Ok(_) => {
                    tracing::debug!(path = %self.path.display(), "WAL checkpoint postponed: busy")
                }
                Err(err) => {
                    tracing::debug!(path = %self.path.display(), %err, "WAL checkpoint postponed")
                }
            }
        }
    }

    /// Runs the read-only `f` on the connection (a consistent WAL snapshot per statement).
    ///
    /// SQLite refuses a reader at once, without its busy handler, while another process
    /// recovers the WAL; such a refusal is retried with the shared [`Backoff`] until the
    /// busy timeout is spent, like a writer's.
    async fn read<T>(
        &self,
        f: impl Fn(&Connection, &ErrCtx<'_>) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let mut conn = self.lock().await;
        let ctx = self.ctx();
        retry_early_busy(&ctx, &mut conn, |conn| f(conn, &ctx)).await
    }
}

/// Runs `attempt` again, with the shared [`Backoff`], while it fails with an early lock
/// refusal ([`StoreError::Busy`]: SQLite did not wait in its busy handler), until the busy
/// timeout of `ctx` is spent; any other outcome is returned as it is.
///
/// The connection is held as `&mut` across the pauses (a `Connection` is `Send` but not
/// `Sync`, and the store's futures must be `Send`); each attempt borrows it briefly.
async fn retry_early_busy<T>(
    ctx: &ErrCtx<'_>,
    conn: &mut Connection,
    mut attempt: impl FnMut(&Connection) -> Result<T, StoreError>,
) -> Result<T, StoreError> {
    let mut backoff = Backoff::until(ctx.started + ctx.busy_timeout);
    loop {
        match attempt(conn) {
            Err(err) if err.is_transient() && backoff.wait().await => {
                tracing::debug!(path = %ctx.path.display(), %err, "refused at once, retrying");
            }
            outcome => return outcome,
        }
    }
}

/// `conn`, after rolling back a transaction left open by a panic inside it, so the
/// connection is usable again and nothing of that transaction is committed later.
fn roll_back_leftover(conn: MutexGuard<'_, Connection>) -> MutexGuard<'_, Connection> {
    if !conn.is_autocommit() {
        let _ = conn.execute_batch("ROLLBACK");
    }
    conn
}

/// Switches to WAL (a no-op when the file already is). A database that cannot switch (e.g.
/// a read-only file not yet in WAL) keeps working in its mode; writes then report why.
///
/// Processes opening a brand-new file together race for the switch, and SQLite refuses the
/// losers at once (deadlock avoidance) instead of calling the busy handler, so they retry
/// here, with the shared [`Backoff`], until the busy timeout is spent. Opening is
/// synchronous, so the pauses block the thread.
fn set_journal_wal(conn: &Connection, ctx: &ErrCtx<'_>) -> Result<(), StoreError> {
    let mut backoff = Backoff::until(ctx.started + ctx.busy_timeout);
    loop {
        let result = conn
            .pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get::<_, String>(0));
        match result {
            Ok(mode) => {
                if !mode.eq_ignore_ascii_case("wal") {
                    tracing::warn!(path = %ctx.path.display(), mode, "database is not in WAL mode");
                }
                return Ok(());
            }
            Err(err) if is_lock_conflict(&err) && backoff.wait_blocking() => {}
            Err(err) => return Err(ctx.map(err)),
        }
    }
}

/// WAL size after which a writer checkpoints and truncates it: short, because every
/// process opening the database alone replays the WAL, yet long enough (about 30 claims)
/// that the checkpoint's fsyncs are shared by many CNI calls.
const WAL_CHECKPOINT_BYTES: u64 = 512 * 1024;

fn is_lock_conflict(err: &rusqlite::Error) -> bool {
    matches!(
        err.sqlite_error_code(),
        Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked)
    )
}

/// Opens the savepoint that isolates one attachment of a GC sweep.
const SAVEPOINT_GC: &str = "SAVEPOINT gc_attachment";
/// Keeps what the attachment's release did.
const RELEASE_GC: &str = "RELEASE gc_attachment";
/// Undoes the attachment's release (and closes the savepoint).
const ROLLBACK_GC: &str = "ROLLBACK TO gc_attachment; RELEASE gc_attachment";

#[async_trait::async_trait]
impl Store for SqliteStore {
    async fn claim(
        &self,
        key: &AttachmentKey,
        owner: &Owner,
        claims: &[Claim<'_>],
        ctx: &ClaimContext,
    ) -> Result<Vec<Allocation>, StoreError> {
        self.write(async |txn| engine::claim_all(txn, key, owner, claims, ctx).await)
            .await
    }

    async fn release(&self, key: &AttachmentKey) -> Result<Vec<Allocation>, StoreError> {
        let now = unix_now();
        self.write(async |txn| engine::release(txn, key, now).await)
            .await
    }

    async fn attachment(&self, key: &AttachmentKey) -> Result<Vec<Allocation>, StoreError> {
        self.read(|conn, ctx| rows::attachment(conn, ctx, key))
            .await
    }

    async fn holder(&self, network: &str, ip: IpAddr) -> Result<Option<Allocation>, StoreError> {
        self.read(|conn, ctx| rows::holder(conn, ctx, network, ip))
            .await
    }

    async fn list(&self, network: &str) -> Result<Vec<Allocation>, StoreError> {
        self.read(|conn, ctx| rows::list(conn, ctx, network)).await
    }

    async fn count_between(
        &self,
        network: &str,
        lo: IpAddr,
        hi: IpAddr,
    ) -> Result<u64, StoreError> {
        let ranges = engine::family_key_ranges(lo, hi)?;
        self.read(|conn, ctx| {
            ranges.iter().try_fold(0, |sum, &(lo, hi)| {
                Ok(sum + rows::count_between(conn, ctx, network, lo, hi)?)
            })
        })
        .await
    }

    async fn list_between(
        &self,
        network: &str,
        lo: IpAddr,
        hi: IpAddr,
        limit: usize,
    ) -> Result<Vec<Allocation>, StoreError> {
        let ranges = engine::family_key_ranges(lo, hi)?;
        self.read(|conn, ctx| {
            let mut page = Vec::new();
            for &(lo, hi) in &ranges {
                let left = limit - page.len();
                page.extend(rows::list_between(conn, ctx, network, lo, hi, left)?);
            }
            Ok(page)
        })
        .await
    }

    async fn put_network(
        &self,
        name: &str,
        definition: &serde_json::Value,
        mode: PutMode,
    ) -> Result<NetworkRecord, StoreError> {
        let now = unix_now();
        self.write(async |txn| engine::put_network(txn, name, definition, mode, now).await)
            .await
    }

    async fn network(&self, name: &str) -> Result<Option<NetworkRecord>, StoreError> {
        self.read(|conn, ctx| records::network(conn, ctx, name))
            .await
    }

    async fn networks(&self) -> Result<Vec<NetworkRecord>, StoreError> {
        self.read(records::networks).await
    }

    async fn allocated_networks(&self) -> Result<Vec<String>, StoreError> {
        self.read(rows::allocated_networks).await
    }

    async fn delete_network(&self, name: &str, force: bool) -> Result<NetworkDeletion, StoreError> {
        self.write(async |txn| engine::delete_network(txn, name, force).await)
            .await
    }

    async fn history(&self, query: &HistoryQuery) -> Result<Vec<HistoryEvent>, StoreError> {
        self.read(|conn, ctx| records::history(conn, ctx, query))
            .await
    }

    async fn record_history(&self, events: &[HistoryEvent]) -> Result<(), StoreError> {
        self.write(async |txn| engine::record_history(txn, events).await)
            .await
    }

    async fn blocks(&self, network: &str) -> Result<Vec<Block>, StoreError> {
        self.read(|conn, ctx| blocks::list_blocks(conn, ctx, network))
            .await
    }

    async fn gc(
        &self,
        network: &str,
        valid: &[(String, String)],
        scope: &GcScope,
        policy: &BlockPolicy,
        now: i64,
    ) -> Result<GcReport, StoreError> {
        // One transaction for the sweep; a savepoint per attachment lets one bad attachment
        // fail alone while the others are released.
        self.write(async |txn| {
            let attached = rows::attachments_of(txn.conn, &txn.ctx, network)?;
            let stale = engine::stale_attachments(attached, valid, scope);
            let mut report = GcReport::default();
            for (container_id, ifname) in stale {
                let key = AttachmentKey::new(network, container_id, ifname);
                txn.batch(SAVEPOINT_GC)?;
                match engine::release(txn, &key, now).await {
                    Ok(released) => {
                        txn.batch(RELEASE_GC)?;
                        report.released.extend(released);
                    }
                    Err(err) if engine::is_store_wide(&err) => return Err(err),
                    Err(err) => {
                        txn.batch(ROLLBACK_GC)?;
                        report.errors.push(format!(
                            "container {} interface {}: {err}",
                            key.container_id, key.ifname
                        ));
                    }
                }
            }
            report
                .released
                .sort_by_key(|a| plexus_ipam_core::addr::key(a.ip));
            report.released_blocks = engine::sweep_blocks(txn, network, scope, policy, now).await?;
            Ok(report)
        })
        .await
    }

    async fn probe(&self) -> Result<(), StoreError> {
        self.write(async |txn| {
            txn.conn
                .execute(
                    "INSERT INTO heartbeat (id, beat_at) VALUES (1, ?1) \
                     ON CONFLICT (id) DO UPDATE SET beat_at = excluded.beat_at",
                    [unix_now()],
                )
                .map(drop)
                .map_err(|e| txn.ctx.map(e))
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Synchronous;

    fn plan(conn: &Connection, sql: &str) -> String {
        let mut stmt = conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}")).unwrap();
        let details: Vec<String> = stmt
            .query_map([], |row| row.get::<_, String>(3))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        details.join(" | ")
    }

    /// GC marks a block whose addresses went without the release's bookkeeping.
    #[tokio::test]
    async fn gc_marks_a_block_left_empty_unmarked() {
        use crate::engine::StoreTxn;
        let (_dir, store) = open_temp();
        let forgotten = crate::conformance::unmarked_block_setup(&store).await;
        for key in &forgotten {
            store
                .write(async |txn| txn.delete_attachment(key).await)
                .await
                .unwrap();
        }
        crate::conformance::unmarked_block_check(&store, &forgotten).await;
    }

    fn busy() -> StoreError {
        StoreError::Busy {
            reason: "refused at once".into(),
        }
    }

    /// An early lock refusal is tried again until it goes away.
    #[tokio::test]
    async fn early_refusals_are_retried_until_they_pass() {
        let ctx = ErrCtx::start(Path::new("t.db"), Duration::from_secs(30));
        let mut conn = Connection::open_in_memory().unwrap();
        let mut calls = 0;
        let out = retry_early_busy(&ctx, &mut conn, |_| {
            calls += 1;
            if calls < 4 { Err(busy()) } else { Ok(calls) }
        })
        .await;
        assert_eq!(out.unwrap(), 4);
    }

    /// Past the busy timeout the refusal is the answer; other errors are never retried.
    #[tokio::test]
    async fn retries_end_with_the_busy_timeout_and_skip_other_errors() {
        let ctx = ErrCtx::start(Path::new("t.db"), Duration::from_millis(60));
        let mut conn = Connection::open_in_memory().unwrap();
        let mut calls = 0u32;
        let out: Result<(), _> = retry_early_busy(&ctx, &mut conn, |_| {
            calls += 1;
            Err(busy())
        })
        .await;
        assert!(matches!(out, Err(StoreError::Busy { .. })), "{out:?}");
        assert!(calls > 1, "retried before giving up");
        assert!(ctx.started.elapsed() <= Duration::from_millis(60) + Duration::from_secs(5));

        let mut calls = 0u32;
        let out: Result<(), _> = retry_early_busy(&ctx, &mut conn, |_| {
            calls += 1;
            Err(StoreError::Corrupt {
                reason: "bad".into(),
            })
        })
        .await;
        assert!(matches!(out, Err(StoreError::Corrupt { .. })), "{out:?}");
        assert_eq!(calls, 1);
    }

    fn open_temp() -> (tempfile::TempDir, SqliteStore) {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&SqliteConfig::new(dir.path().join("plexus.db"))).unwrap();
        (dir, store)
    }

    #[test]
    fn history_append_is_one_statement_and_pruned_every_interval() {
        let (_dir, store) = open_temp();
        let conn = store.lock_blocking();
        let ctx = store.ctx();
        let limit = 64;
        let interval = i64::from(crate::records::prune_interval(limit));
        assert_eq!(interval, 4);
        let event = |network: &str, n: i64| HistoryEvent {
            network: network.into(),
            seq: 0,
            at: n,
            kind: crate::records::HistoryKind::Claim,
            ip: "10.0.0.1".parse().unwrap(),
            container_id: format!("c{n}"),
            ifname: "eth0".into(),
            pod_namespace: None,
            pod_name: None,
            pod_uid: None,
            node: None,
        };
        records::append_history(&conn, &ctx, &event("other", 0), limit).unwrap();
        let appends = 203;
        for n in 1..=appends {
            records::append_history(&conn, &ctx, &event("n", n), limit).unwrap();
            let (count, lo, hi): (i64, i64, i64) = conn
                .query_row(
                    "SELECT count(*), min(seq), max(seq) FROM history WHERE network = 'n'",
                    [],
                    |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
                )
                .unwrap();
            assert_eq!(hi, n, "seq grows by one per append");
            assert_eq!(count, hi - lo + 1, "no gaps");
            assert!(count < i64::from(limit) + interval, "{count} after {n}");
            if n >= i64::from(limit) {
                assert!(count >= i64::from(limit), "{count} after {n}");
            }
            if n % interval == 0 && n > i64::from(limit) {
                assert_eq!(count, i64::from(limit), "pruned to the limit at {n}");
            }
        }
        let other: i64 = conn
            .query_row(
                "SELECT count(*) FROM history WHERE network = 'other'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(other, 1, "another network's history is untouched");
    }

    #[test]
    fn hot_queries_use_the_primary_key_not_a_scan() {
        let (_dir, store) = open_temp();
        let conn = store.lock_blocking();
        let lookups = [
            rows::HELD_BETWEEN_SQL
                .replace("?1", "'n'")
                .replace("?2", "x'00'")
                .replace("?3", "x'ff'"),
            rows::COUNT_BETWEEN_SQL
                .replace("?1", "'n'")
                .replace("?2", "x'00'")
                .replace("?3", "x'ff'"),
            "SELECT * FROM allocations WHERE network = 'n' AND container_id = 'c' \
             AND ifname = 'i' AND range_set = 'r'"
                .to_string(),
            "DELETE FROM allocations WHERE network = 'n' AND container_id = 'c' AND ifname = 'i'"
                .to_string(),
            blocks::NODE_BLOCKS_SQL
                .replace("?1", "'n'")
                .replace("?2", "'s'")
                .replace("?3", "'node-a'"),
            blocks::BLOCKS_BETWEEN_SQL
                .replace("?1", "'n'")
                .replace("?2", "x'00'")
                .replace("?3", "x'ff'"),
            blocks::EMPTIED_BLOCKS_SQL
                .replace("?1", "'n'")
                .replace("?2", "100"),
            "UPDATE blocks SET cursor = NULL, emptied_at = 1 WHERE network = 'n' AND base = x'00'"
                .to_string(),
        ];
        for sql in lookups {
            let plan = plan(&conn, &sql);
            assert!(plan.contains("SEARCH"), "{sql}: {plan}");
            assert!(!plan.contains("SCAN"), "{sql}: {plan}");
        }
    }

    #[test]
    fn allocated_networks_seek_instead_of_scanning_allocations() {
        let (_dir, store) = open_temp();
        let conn = store.lock_blocking();
        let plan = plan(&conn, rows::ALLOCATED_NETWORKS_SQL);
        assert!(plan.contains("SEARCH allocations"), "{plan}");
        assert!(!plan.contains("SCAN allocations"), "{plan}");
    }

    #[test]
    fn open_sets_wal_and_synchronous() {
        let dir = tempfile::tempdir().unwrap();
        let mut cfg = SqliteConfig::new(dir.path().join("p.db"));
        cfg.synchronous = Synchronous::Full;
        let store = SqliteStore::open(&cfg).unwrap();
        let conn = store.lock_blocking();
        let mode: String = conn
            .query_row("PRAGMA journal_mode", [], |r| r.get(0))
            .unwrap();
        let sync: i64 = conn
            .query_row("PRAGMA synchronous", [], |r| r.get(0))
            .unwrap();
        assert_eq!(mode, "wal");
        assert_eq!(sync, 2, "FULL");
        drop(conn);
        drop(store);
        let store = SqliteStore::open(&SqliteConfig::new(dir.path().join("p.db"))).unwrap();
        let sync: i64 = store
            .lock_blocking()
            .query_row("PRAGMA synchronous", [], |r| r.get(0))
            .unwrap();
        assert_eq!(sync, 1, "NORMAL by default");
    }
}
