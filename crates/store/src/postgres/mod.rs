//! [`PostgresStore`]: the PostgreSQL backend, for a cluster sharing one address space.
//!
//! - [`PostgresStore::open`] (plugin processes): no connection until the first call; then
//!   ONE connection per call: connect, one transaction, commit, close. Nothing is cached
//!   between calls, so a restarted server is simply used by the next call.
//! - [`PostgresStore::pooled`] (the long-running daemon): a deadpool of warm connections;
//!   a connection that failed is discarded, never handed out again.
//! - Every call (connect, transaction, commit) must finish within `timeout_ms` (default
//!   10 s), else it fails with [`StoreError::Unavailable`]; dropping the connection makes
//!   the server roll the transaction back, and the same value is sent as the server's
//!   `statement_timeout`, `lock_timeout` and `idle_in_transaction_session_timeout` so a
//!   vanished client never holds locks longer. Contention (serialization failures,
//!   deadlocks, too many connections) is retried a few times with jittered exponential
//!   backoff, then reported as [`StoreError::Busy`].
//! - Writers of one network are coordinated by transaction-scoped advisory locks: claims
//!   of different nodes run side by side, whole-network operations alone (see `txn`);
//!   uniqueness is enforced by the tables' constraints.
//! - Which tables hold the allocations is the layout's business (see `tables`): plexus's
//!   own schema (`native`) or the CNI 1.1 talk's `ips` table (`ips_table`); this module
//!   never asks which one it runs on.
//! - All I/O runs on a worker thread owned by the store (see `crate::io_thread`), so the store
//!   works from any caller runtime, including one without I/O or timers.

mod batch;
mod block_rows;
mod config;
mod connect;
mod errors;
mod ips_table;
#[cfg(test)]
mod lock_tests;
mod native;
mod records;
mod rows;
mod schema;
#[cfg(test)]
mod server_tests;
mod statements;
mod tables;
mod tls;
mod txn;

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use plexus_ipam_core::BlockPolicy;
use tokio_postgres::Client;

use self::batch::OwnedClaim;
use self::connect::{OpFuture, Source};
use self::errors::ErrCtx;
use self::tables::{GcPass, Tables};
use self::txn::NetworkLock;
use crate::engine;
use crate::error::StoreError;
use crate::gc_scope::GcScope;
use crate::io_thread::Executor;
use crate::records::{HistoryEvent, HistoryQuery, NetworkDeletion, NetworkRecord, PutMode};
use crate::store::Store;
use crate::types::{
    Allocation, AttachmentKey, Block, Claim, ClaimContext, ClaimRequest, GcReport, Owner,
};

pub use self::config::{
    DEFAULT_PG_PORT, DEFAULT_PG_TIMEOUT, Layout, PasswordSource, PostgresConfig, SslMode,
};
pub use self::schema::LATEST_VERSION;

pub(crate) use self::config::parse as parse_config;

/// The PostgreSQL backend (see the module docs). `Send + Sync`; cheap to keep open.
pub struct PostgresStore {
    shared: Arc<Shared>,
    executor: Executor,
}

impl std::fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresStore")
            .field("config", &self.shared.cfg)
            .field("pooled", &matches!(self.shared.source, Source::Pool(_)))
            .finish_non_exhaustive()
    }
}

/// What every operation needs, shared with the tasks on the store's runtime.
struct Shared {
    cfg: PostgresConfig,
    source: Source,
    ctx: ErrCtx,
    /// The tables of the configured layout.
    tables: Box<dyn Tables>,
    /// Set once this store has seen the schema current: later connections skip the check.
    schema_ready: AtomicBool,
}

impl PostgresStore {
    /// A store for plugin processes: one short connection per call. Connects nothing yet;
    /// the first call connects and creates or migrates the schema when needed.
    pub fn open(cfg: &PostgresConfig) -> Result<PostgresStore, StoreError> {
        PostgresStore::with_source(cfg, Source::direct(cfg)?)
    }

    /// A store for the long-running daemon: up to `max_connections` pooled connections,
    /// opened lazily. The password file is read once, now.
    pub fn pooled(
        cfg: &PostgresConfig,
        max_connections: usize,
    ) -> Result<PostgresStore, StoreError> {
        PostgresStore::with_source(cfg, Source::pool(cfg, max_connections)?)
    }

    fn with_source(cfg: &PostgresConfig, source: Source) -> Result<PostgresStore, StoreError> {
        let ctx = ErrCtx {
            endpoint: cfg.endpoint(),
            dbname: cfg.dbname.clone(),
            timeout: cfg.timeout,
            // Known now only when readable now; messages are scrubbed of it regardless of
            // where they come from.
            secret: connect::read_password(cfg).ok().flatten(),
            sslmode: cfg.sslmode,
        };
        Ok(PostgresStore {
            shared: Arc::new(Shared {
                cfg: cfg.clone(),
                source,
                ctx,
                tables: tables::of(cfg),
                schema_ready: AtomicBool::new(false),
            }),
            executor: Executor::start("PostgreSQL")?,
        })
    }

    /// The configuration this store was opened with.
    pub fn config(&self) -> &PostgresConfig {
        &self.shared.cfg
    }

    /// Runs `op` on a connection (schema checked first) within the deadline, on the
    /// store's runtime.
    async fn run<T, F>(&self, what: &'static str, op: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: for<'c> Fn(&'c mut Client, Arc<Shared>) -> OpFuture<'c, T> + Send + Sync + 'static,
    {
        let shared = self.shared.clone();
        self.executor
            .run(async move {
                connect::run(
                    &shared.source,
                    &shared.cfg,
                    &shared.ctx,
                    what,
                    |client| {
                        let shared = shared.clone();
                        Box::pin(async move { shared.prepare(client).await })
                    },
                    |client| op(client, shared.clone()),
                )
                .await
            })
            .await
    }
}

impl Shared {
    /// Makes sure the tables of the layout exist, once per store.
    async fn prepare(&self, client: &mut Client) -> Result<(), StoreError> {
        if self.schema_ready.load(Ordering::Acquire) {
            return Ok(());
        }
        self.tables.prepare(client, &self.ctx).await?;
        self.schema_ready.store(true, Ordering::Release);
        Ok(())
    }

    /// Opens a transaction holding the layout's write lock of `network` in `mode`; `bind`
    /// for writes of allocations.
    async fn begin<'c>(
        &self,
        client: &'c mut Client,
        network: &str,
        mode: NetworkLock<'_>,
        bind: bool,
    ) -> Result<tokio_postgres::Transaction<'c>, StoreError> {
        let txn = client.transaction().await.map_err(|e| self.ctx.map(&e))?;
        self.tables
            .lock(txn.client(), &self.ctx, network, mode, bind)
            .await?;
        Ok(txn)
    }

    async fn commit(&self, txn: tokio_postgres::Transaction<'_>) -> Result<(), StoreError> {
        txn.commit().await.map_err(|e| self.ctx.map(&e))
    }

    async fn claim(
        &self,
        client: &mut Client,
        key: &AttachmentKey,
        owner: &Owner,
        claims: &[OwnedClaim],
        ctx: &ClaimContext,
    ) -> Result<Vec<Allocation>, StoreError> {
        let claims: Vec<Claim<'_>> = claims.iter().map(OwnedClaim::borrow).collect();
        self.tables.check_claim(key, claims.len())?;
        // With blocks, a claim mostly stays inside its node's blocks: nodes run side by
        // side. Without, every claim moves the set's one cursor: one at a time.
        let mode = if ctx.blocks.enabled {
            NetworkLock::Node(&ctx.node)
        } else {
            NetworkLock::Exclusive
        };
        let txn = self.begin(client, &key.network, mode, true).await?;
        let allocations = self
            .tables
            .claim(txn.client(), &self.ctx, key, owner, &claims, ctx)
            .await?;
        self.commit(txn).await?;
        Ok(allocations)
    }

    async fn release(
        &self,
        client: &mut Client,
        key: &AttachmentKey,
    ) -> Result<Vec<Allocation>, StoreError> {
        let now = crate::types::unix_now();
        let txn = self
            .begin(client, &key.network, NetworkLock::Shared, true)
            .await?;
        let released = self
            .tables
            .release(txn.client(), &self.ctx, key, now)
            .await?;
        self.commit(txn).await?;
        Ok(released)
    }

    async fn gc(&self, client: &mut Client, pass: &GcPass<'_>) -> Result<GcReport, StoreError> {
        let txn = self
            .begin(client, pass.network, NetworkLock::Exclusive, true)
            .await?;
        let report = self.tables.gc(txn.client(), &self.ctx, pass).await?;
        self.commit(txn).await?;
        Ok(report)
    }
}

#[async_trait::async_trait]
impl Store for PostgresStore {
    async fn claim(
        &self,
        key: &AttachmentKey,
        owner: &Owner,
        claims: &[Claim<'_>],
        ctx: &ClaimContext,
    ) -> Result<Vec<Allocation>, StoreError> {
        let claims: Vec<OwnedClaim> = claims.iter().map(OwnedClaim::of).collect();
        let args = Arc::new((key.clone(), owner.clone(), claims, ctx.clone()));
        self.run("the claim", move |client, shared| {
            let args = args.clone();
            Box::pin(async move {
                let (key, owner, claims, ctx) = &*args;
                shared.claim(client, key, owner, claims, ctx).await
            })
        })
        .await
    }

    async fn claim_batch(
        &self,
        requests: &[ClaimRequest<'_>],
    ) -> Vec<Result<Vec<Allocation>, StoreError>> {
        batch::claim_batch(self, requests).await
    }

    async fn release(&self, key: &AttachmentKey) -> Result<Vec<Allocation>, StoreError> {
        let key = Arc::new(key.clone());
        self.run("the release", move |client, shared| {
            let key = key.clone();
            Box::pin(async move { shared.release(client, &key).await })
        })
        .await
    }

    async fn attachment(&self, key: &AttachmentKey) -> Result<Vec<Allocation>, StoreError> {
        let key = Arc::new(key.clone());
        self.run("the attachment query", move |client, shared| {
            let key = key.clone();
            Box::pin(async move { shared.tables.attachment(client, &shared.ctx, &key).await })
        })
        .await
    }

    async fn holder(&self, network: &str, ip: IpAddr) -> Result<Option<Allocation>, StoreError> {
        let network: Arc<str> = network.into();
        self.run("the holder query", move |client, shared| {
            let network = network.clone();
            Box::pin(async move {
                shared
                    .tables
                    .holder(client, &shared.ctx, &network, ip)
                    .await
            })
        })
        .await
    }

    async fn list(&self, network: &str) -> Result<Vec<Allocation>, StoreError> {
        let network: Arc<str> = network.into();
        self.run("the list query", move |client, shared| {
            let network = network.clone();
            Box::pin(async move { shared.tables.list(client, &shared.ctx, &network).await })
        })
        .await
    }

    async fn count_between(
        &self,
        network: &str,
        lo: IpAddr,
        hi: IpAddr,
    ) -> Result<u64, StoreError> {
        let ranges: Arc<[(u128, u128)]> = engine::family_key_ranges(lo, hi)?.into();
        let network: Arc<str> = network.into();
        self.run("the count query", move |client, shared| {
            let (ranges, network) = (ranges.clone(), network.clone());
            Box::pin(async move {
                shared
                    .tables
                    .count_between(client, &shared.ctx, &network, &ranges)
                    .await
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
        let ranges: Arc<[(u128, u128)]> = engine::family_key_ranges(lo, hi)?.into();
        let network: Arc<str> = network.into();
        self.run("the page query", move |client, shared| {
            let (ranges, network) = (ranges.clone(), network.clone());
            Box::pin(async move {
                shared
                    .tables
                    .list_between(client, &shared.ctx, &network, &ranges, limit)
                    .await
            })
        })
        .await
    }

    async fn put_network(
        &self,
        name: &str,
        definition: &serde_json::Value,
        mode: PutMode,
    ) -> Result<NetworkRecord, StoreError> {
        let args = Arc::new((name.to_string(), definition.clone()));
        self.run("the network write", move |client, shared| {
            let args = args.clone();
            Box::pin(async move {
                let (name, definition) = &*args;
                shared
                    .tables
                    .put_network(client, &shared.ctx, name, definition, mode)
                    .await
            })
        })
        .await
    }

    async fn network(&self, name: &str) -> Result<Option<NetworkRecord>, StoreError> {
        let name: Arc<str> = name.into();
        let found = self
            .run("the network query", move |client, shared| {
                let name = name.clone();
                Box::pin(async move {
                    shared
                        .tables
                        .read_networks(client, &shared.ctx, Some(&name))
                        .await
                })
            })
            .await?;
        Ok(found.into_iter().next())
    }

    async fn networks(&self) -> Result<Vec<NetworkRecord>, StoreError> {
        self.run("the network list", |client, shared| {
            Box::pin(async move { shared.tables.read_networks(client, &shared.ctx, None).await })
        })
        .await
    }

    async fn allocated_networks(&self) -> Result<Vec<String>, StoreError> {
        self.run("the allocated networks query", |client, shared| {
            Box::pin(async move { shared.tables.allocated_networks(client, &shared.ctx).await })
        })
        .await
    }

    async fn delete_network(&self, name: &str, force: bool) -> Result<NetworkDeletion, StoreError> {
        let name: Arc<str> = name.into();
        self.run("the network deletion", move |client, shared| {
            let name = name.clone();
            Box::pin(async move {
                shared
                    .tables
                    .delete_network(client, &shared.ctx, &name, force)
                    .await
            })
        })
        .await
    }

    async fn history(&self, query: &HistoryQuery) -> Result<Vec<HistoryEvent>, StoreError> {
        let query = Arc::new(query.clone());
        self.run("the history query", move |client, shared| {
            let query = query.clone();
            Box::pin(async move { shared.tables.history(client, &shared.ctx, &query).await })
        })
        .await
    }

    async fn record_history(&self, events: &[HistoryEvent]) -> Result<(), StoreError> {
        let events: Arc<[HistoryEvent]> = events.into();
        self.run("the history import", move |client, shared| {
            let events = events.clone();
            Box::pin(async move {
                shared
                    .tables
                    .record_history(client, &shared.ctx, &events)
                    .await
            })
        })
        .await
    }

    async fn blocks(&self, network: &str) -> Result<Vec<Block>, StoreError> {
        let network: Arc<str> = network.into();
        self.run("the block query", move |client, shared| {
            let network = network.clone();
            Box::pin(async move { shared.tables.blocks(client, &shared.ctx, &network).await })
        })
        .await
    }

    async fn gc(
        &self,
        network: &str,
        valid: &[(String, String)],
        scope: &GcScope,
        blocks: &BlockPolicy,
        now: i64,
    ) -> Result<GcReport, StoreError> {
        let args = Arc::new((network.to_string(), valid.to_vec(), scope.clone(), *blocks));
        self.run("the garbage collection", move |client, shared| {
            let args = args.clone();
            Box::pin(async move {
                let (network, valid, scope, policy) = &*args;
                let pass = GcPass {
                    network,
                    valid,
                    scope,
                    policy,
                    now,
                };
                shared.gc(client, &pass).await
            })
        })
        .await
    }

    async fn probe(&self) -> Result<(), StoreError> {
        self.run("the health probe", |client, shared| {
            Box::pin(async move {
                let now = crate::types::unix_now();
                shared.tables.heartbeat(client, &shared.ctx, now).await
            })
        })
        .await
    }
}
