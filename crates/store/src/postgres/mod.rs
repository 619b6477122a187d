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
//! - All I/O runs on a worker thread owned by the store (see `executor`), so the store
//!   works from any caller runtime, including one without I/O or timers.

mod batch;
mod config;
mod connect;
mod errors;
mod executor;
#[cfg(test)]
mod lock_tests;
mod ops;
mod records;
mod rows;
mod schema;
#[cfg(test)]
mod server_tests;
mod statements;
mod talk;
mod talk_rows;
mod tls;
mod txn;

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use plexus_ipam_core::BlockPolicy;
use tokio_postgres::Client;

use self::batch::OwnedClaim;
use self::connect::{OpFuture, Source};
use self::errors::ErrCtx;
use self::executor::Executor;
use self::txn::{NetworkLock, PgTxn};
use crate::engine;
use crate::error::StoreError;
use crate::gc_scope::GcScope;
use crate::records::{HistoryEvent, HistoryQuery, NetworkDeletion, NetworkRecord, PutMode};
use crate::store::Store;
use crate::types::{
    Allocation, AttachmentKey, Block, Claim, ClaimContext, ClaimRequest, GcReport, Owner,
};

pub use self::config::{
    DEFAULT_PG_PORT, DEFAULT_PG_TIMEOUT, Layout, PasswordSource, PostgresConfig, Secret, SslMode,
};
pub use self::schema::LATEST_VERSION;

pub(crate) use self::config::parse as parse_config;

/// The arguments of one GC, handed down to its sweep.
#[derive(Clone, Copy)]
struct GcPass<'a> {
    network: &'a str,
    valid: &'a [(String, String)],
    scope: &'a GcScope,
    policy: &'a BlockPolicy,
    now: i64,
}
/// Savepoint isolating one attachment of a GC sweep.
const GC_SAVEPOINT: &str = "plexus_gc_one";

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
                schema_ready: AtomicBool::new(false),
            }),
            executor: Executor::start()?,
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
        match self.cfg.layout {
            config::Layout::Native => schema::ensure_current(client, &self.ctx).await?,
            config::Layout::Cni11Talk => talk::ensure_ready(client, &self.ctx).await?,
        }
        self.schema_ready.store(true, Ordering::Release);
        Ok(())
    }

    fn is_talk(&self) -> bool {
        self.cfg.layout == config::Layout::Cni11Talk
    }

    /// Opens a transaction holding the write lock of `network` in `mode` (native) or of
    /// the table (talk, always exclusive; the network is checked, and bound when `bind`).
    async fn begin<'c>(
        &self,
        client: &'c mut Client,
        network: &str,
        mode: NetworkLock<'_>,
        bind: bool,
    ) -> Result<tokio_postgres::Transaction<'c>, StoreError> {
        let txn = client.transaction().await.map_err(|e| self.ctx.map(&e))?;
        if self.is_talk() {
            talk::lock(txn.client(), &self.ctx).await?;
            talk::check_network(txn.client(), &self.ctx, network, bind).await?;
        } else {
            txn::lock_network(txn.client(), &self.ctx, network, mode).await?;
        }
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
        if self.is_talk() {
            talk::check_claimable(key, claims.len())?;
        }
        // With blocks, a claim mostly stays inside its node's blocks: nodes run side by
        // side. Without, every claim moves the set's one cursor: one at a time.
        let mode = if ctx.blocks.enabled {
            NetworkLock::Node(&ctx.node)
        } else {
            NetworkLock::Exclusive
        };
        let txn = self.begin(client, &key.network, mode, true).await?;
        let allocations = if self.is_talk() {
            let sets = claims
                .iter()
                .map(|c| (c.range_set().id(), c.range_set()))
                .collect::<BTreeMap<_, _>>();
            let mut talk = talk::TalkTxn {
                client: txn.client(),
                ctx: &self.ctx,
                sets,
            };
            // The talk's table has no blocks: every dynamic claim searches the whole set.
            let ctx = ClaimContext {
                blocks: BlockPolicy::disabled(),
                ..ctx.clone()
            };
            let claimed = engine::claim_all(&mut talk, key, owner, &claims, &ctx).await?;
            // Return what a later read returns: the table keeps no owner, node or set id.
            let mut read_back = Vec::with_capacity(claimed.len());
            for a in &claimed {
                let row = talk_rows::holder(txn.client(), &self.ctx, &key.network, a.ip).await?;
                read_back.push(row.ok_or_else(|| StoreError::Internal {
                    reason: format!("claimed {} is not in table ips", a.ip),
                })?);
            }
            read_back
        } else {
            let mut pg = PgTxn {
                client: txn.client(),
                ctx: &self.ctx,
                history_limit: self.cfg.history_limit,
            };
            engine::claim_all(&mut pg, key, owner, &claims, ctx).await?
        };
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
        let released = if self.is_talk() {
            talk_rows::delete_attachment(txn.client(), &self.ctx, key).await?
        } else {
            let mut pg = PgTxn {
                client: txn.client(),
                ctx: &self.ctx,
                history_limit: self.cfg.history_limit,
            };
            engine::release(&mut pg, key, now).await?
        };
        self.commit(txn).await?;
        Ok(released)
    }

    async fn gc(&self, client: &mut Client, pass: &GcPass<'_>) -> Result<GcReport, StoreError> {
        let txn = self
            .begin(client, pass.network, NetworkLock::Exclusive, true)
            .await?;
        let report = if self.is_talk() {
            let mut talk = talk::TalkTxn {
                client: txn.client(),
                ctx: &self.ctx,
                sets: BTreeMap::new(),
            };
            let no_blocks = BlockPolicy::disabled();
            let pass = GcPass {
                policy: &no_blocks,
                ..*pass
            };
            self.sweep(txn.client(), &mut talk, &pass).await?
        } else {
            let mut pg = PgTxn {
                client: txn.client(),
                ctx: &self.ctx,
                history_limit: self.cfg.history_limit,
            };
            self.sweep(txn.client(), &mut pg, pass).await?
        };
        self.commit(txn).await?;
        Ok(report)
    }

    /// Releases the stale attachments one savepoint each (one failing attachment is
    /// reported and rolled back alone), then the blocks empty past their grace period.
    async fn sweep<T: engine::StoreTxn>(
        &self,
        client: &Client,
        txn: &mut T,
        pass: &GcPass<'_>,
    ) -> Result<GcReport, StoreError> {
        let GcPass {
            network,
            valid,
            scope,
            policy,
            now,
        } = *pass;
        let stale = engine::stale_attachments(txn.attachments_of(network).await?, valid, scope);
        let mut report = GcReport::default();
        let sql = async |statement: String| {
            client
                .batch_execute(&statement)
                .await
                .map_err(|e| self.ctx.map(&e))
        };
        for (container_id, ifname) in stale {
            let key = AttachmentKey::new(network, container_id, ifname);
            sql(format!("SAVEPOINT {GC_SAVEPOINT}")).await?;
            match engine::release(txn, &key, now).await {
                Ok(released) => {
                    sql(format!("RELEASE SAVEPOINT {GC_SAVEPOINT}")).await?;
                    report.released.extend(released);
                }
                Err(err) if engine::is_store_wide(&err) => return Err(err),
                Err(err) => {
                    sql(format!(
                        "ROLLBACK TO SAVEPOINT {GC_SAVEPOINT}; RELEASE SAVEPOINT {GC_SAVEPOINT}"
                    ))
                    .await?;
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
    }

    /// Reads need no lock; in the talk layout they check the network (without binding).
    async fn check_read(&self, client: &Client, network: &str) -> Result<(), StoreError> {
        if self.is_talk() {
            talk::check_network(client, &self.ctx, network, false).await?;
        }
        Ok(())
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
            Box::pin(async move {
                shared.check_read(client, &key.network).await?;
                if shared.is_talk() {
                    talk_rows::attachment(client, &shared.ctx, &key).await
                } else {
                    rows::attachment(client, &shared.ctx, &key).await
                }
            })
        })
        .await
    }

    async fn holder(&self, network: &str, ip: IpAddr) -> Result<Option<Allocation>, StoreError> {
        let network: Arc<str> = network.into();
        self.run("the holder query", move |client, shared| {
            let network = network.clone();
            Box::pin(async move {
                shared.check_read(client, &network).await?;
                if shared.is_talk() {
                    talk_rows::holder(client, &shared.ctx, &network, ip).await
                } else {
                    rows::holder(client, &shared.ctx, &network, ip).await
                }
            })
        })
        .await
    }

    async fn list(&self, network: &str) -> Result<Vec<Allocation>, StoreError> {
        let network: Arc<str> = network.into();
        self.run("the list query", move |client, shared| {
            let network = network.clone();
            Box::pin(async move {
                shared.check_read(client, &network).await?;
                if shared.is_talk() {
                    talk_rows::list(client, &shared.ctx, &network).await
                } else {
                    rows::list(client, &shared.ctx, &network).await
                }
            })
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
                shared.check_read(client, &network).await?;
                let mut sum = 0;
                for &(lo, hi) in ranges.iter() {
                    sum += if shared.is_talk() {
                        let (lo, hi) = (
                            plexus_ipam_core::addr::from_key(lo),
                            plexus_ipam_core::addr::from_key(hi),
                        );
                        talk_rows::count_between(client, &shared.ctx, lo, hi).await?
                    } else {
                        rows::count_between(client, &shared.ctx, &network, lo, hi).await?
                    };
                }
                Ok(sum)
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
        let network: Arc<str> = network.into();
        self.run("the page query", move |client, shared| {
            let network = network.clone();
            Box::pin(async move { shared.list_between(client, &network, lo, hi, limit).await })
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
            Box::pin(async move { shared.put_network(client, &args.0, &args.1, mode).await })
        })
        .await
    }

    async fn network(&self, name: &str) -> Result<Option<NetworkRecord>, StoreError> {
        let name: Arc<str> = name.into();
        let found = self
            .run("the network query", move |client, shared| {
                let name = name.clone();
                Box::pin(async move { shared.read_networks(client, Some(&name)).await })
            })
            .await?;
        Ok(found.into_iter().next())
    }

    async fn networks(&self) -> Result<Vec<NetworkRecord>, StoreError> {
        self.run("the network list", |client, shared| {
            Box::pin(async move { shared.read_networks(client, None).await })
        })
        .await
    }

    async fn allocated_networks(&self) -> Result<Vec<String>, StoreError> {
        self.run("the allocated networks query", |client, shared| {
            Box::pin(async move {
                if shared.is_talk() {
                    talk::allocated_networks(client, &shared.ctx).await
                } else {
                    rows::allocated_networks(client, &shared.ctx).await
                }
            })
        })
        .await
    }

    async fn delete_network(&self, name: &str, force: bool) -> Result<NetworkDeletion, StoreError> {
        let name: Arc<str> = name.into();
        self.run("the network deletion", move |client, shared| {
            let name = name.clone();
            Box::pin(async move { shared.delete_network(client, &name, force).await })
        })
        .await
    }

    async fn history(&self, query: &HistoryQuery) -> Result<Vec<HistoryEvent>, StoreError> {
        let query = Arc::new(query.clone());
        self.run("the history query", move |client, shared| {
            let query = query.clone();
            Box::pin(async move { shared.history(client, &query).await })
        })
        .await
    }

    async fn record_history(&self, events: &[HistoryEvent]) -> Result<(), StoreError> {
        let events: Arc<[HistoryEvent]> = events.into();
        self.run("the history import", move |client, shared| {
            let events = events.clone();
            Box::pin(async move { shared.record_history(client, &events).await })
        })
        .await
    }

    async fn blocks(&self, network: &str) -> Result<Vec<Block>, StoreError> {
        let network: Arc<str> = network.into();
        self.run("the block query", move |client, shared| {
            let network = network.clone();
            Box::pin(async move {
                shared.check_read(client, &network).await?;
                if shared.is_talk() {
                    Ok(Vec::new())
                } else {
                    rows::blocks(client, &shared.ctx, &network).await
                }
            })
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
                if shared.is_talk() {
                    talk_rows::set_value(client, &shared.ctx, "heartbeat", &now.to_string()).await
                } else {
                    rows::heartbeat(client, &shared.ctx, now).await
                }
            })
        })
        .await
    }
}
