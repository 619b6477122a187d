//! [`EtcdStore`]: the etcd v3 backend, for clusters that already run etcd.
//!
//! - One key per allocation, an index key per attachment, cursor and block keys under one
//!   prefix ([`keys`] documents the layout); no whole-pool value is rewritten per claim.
//! - Every claim, release and GC step is ONE optimistic etcd transaction: the shared engine
//!   runs on reads at one snapshot revision, the writes are buffered, and the commit
//!   compares what the reads relied on (create-if-absent for every new key). A failed
//!   compare means a concurrent writer won: the whole attempt re-runs on a fresh snapshot,
//!   with jittered backoff, until the deadline ([`StoreError::Busy`] then). No lock, no
//!   lease, no global mutex.
//! - Every call has one deadline (`timeout_ms`), connecting and retries included; an
//!   unreachable cluster is [`StoreError::Unavailable`] by then. A client that failed is
//!   dropped and rebuilt by the next attempt.
//! - All network I/O runs on a private runtime thread ([`runtime`]), so callers may use any
//!   executor.

mod buffered;
mod claims;
mod config;
mod conn;
mod foreign;
mod keys;
mod layout;
mod records;
mod txn;

use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use etcd_client::{Client, Compare, CompareOp, KvClient, Txn, TxnOp};
use plexus_ipam_core::BlockPolicy;

use self::buffered::{BufferedTxn, ReadBackSink};
use self::claims::{BlockBounds, NodeViews, OwnedRequest, ViewUse};
use self::conn::{Attempts, Connector, Failure};
use self::keys::Keys;
use self::txn::EtcdTxn;
use crate::engine::{self, StoreTxn};
use crate::error::StoreError;
use crate::gc_scope::GcScope;
use crate::io_thread::Executor;
use crate::records::{HistoryEvent, HistoryQuery, NetworkDeletion, NetworkRecord, PutMode};
use crate::store::Store;
use crate::types::{
    Allocation, AttachmentKey, Block, Claim, ClaimContext, ClaimRequest, GcReport, Owner, unix_now,
};

pub(crate) use self::config::parse as parse_config;
pub use self::config::{DEFAULT_ETCD_PREFIX, DEFAULT_ETCD_TIMEOUT, EtcdConfig};
pub use self::foreign::{ForeignEtcd, ForeignValue};
pub use self::layout::LATEST_LAYOUT;

/// Runs `$body` (which uses `$txn: &mut EtcdTxn`) in one optimistic transaction of
/// `$inner`, committed when it returns `Ok`, and re-runs it on conflicts and transient
/// failures until the deadline. A macro rather than a closure-taking fn: the futures stay
/// concrete, so the compiler can see they are `Send`.
macro_rules! in_txn {
    ($inner:expr, |$txn:ident| $body:expr) => {{
        let inner: &Inner = $inner;
        let mut attempts = Attempts::new(inner.timeout);
        loop {
            let step = async {
                let mut txn = inner.begin(attempts.is_first()).await?;
                // The body's own `?` must end the body, not the attempt: its error goes
                // to `finish`, which tells a lost race (re-run) from one that ends the call.
                let result = store_result(async {
                    let $txn = &mut txn;
                    $body
                })
                .await;
                inner.finish(txn, result).await
            };
            match attempts.bounded(step).await {
                Ok(value) => break Ok(value),
                Err(failure) => {
                    if let Err(err) = inner.after_failure(&mut attempts, failure).await {
                        break Err(err);
                    }
                }
            }
        }
    }};
}

/// `body` as it is: names the error type of an `in_txn!` body for its `?`.
fn store_result<T>(
    body: impl std::future::Future<Output = Result<T, StoreError>>,
) -> impl std::future::Future<Output = Result<T, StoreError>> {
    body
}

/// Emptied blocks released per GC transaction, so one transaction stays well below etcd's
/// limit of 128 operations.
const EXPIRE_BATCH: usize = 16;

/// History events imported per transaction (etcd's limit is 128 operations).
const HISTORY_BATCH: usize = 100;

/// The etcd backend. Cheap to open: the connection is made by the first call (and remade
/// after a failure), the layout version checked once per store.
#[derive(Debug)]
pub struct EtcdStore {
    inner: Arc<Inner>,
    executor: Executor,
}

struct Inner {
    conn: Arc<Connector>,
    keys: Keys,
    timeout: Duration,
    client: Mutex<Option<Client>>,
    layout_checked: AtomicBool,
    history_limit: u32,
    /// Where each node's blocks were at its last claim (what claims prefetch).
    block_bounds: BlockBounds,
    /// What each node's last claim batch read back at its commit (where the next starts).
    views: NodeViews,
    /// Keys every claim requires absent (`require_absent`: whereabouts ranges to import).
    require_absent: Vec<String>,
}

impl std::fmt::Debug for Inner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Inner")
            .field("conn", &self.conn)
            .field("keys", &self.keys)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl EtcdStore {
    /// Prepares a store for `cfg`: reads its password, CA, certificate and key files and
    /// starts the I/O thread. Makes no network call.
    pub fn open(cfg: &EtcdConfig) -> Result<EtcdStore, StoreError> {
        let conn = Connector::new(cfg)?;
        Ok(EtcdStore {
            inner: Arc::new(Inner {
                conn: Arc::new(conn),
                keys: Keys::new(&cfg.prefix),
                timeout: cfg.timeout,
                client: Mutex::new(None),
                layout_checked: AtomicBool::new(false),
                history_limit: cfg.history_limit,
                block_bounds: BlockBounds::default(),
                views: NodeViews::default(),
                require_absent: cfg.require_absent.clone(),
            }),
            executor: Executor::start("etcd")?,
        })
    }

    /// Runs `op` with the shared state on the I/O thread.
    async fn run<T, F>(&self, op: impl FnOnce(Arc<Inner>) -> F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: Future<Output = Result<T, StoreError>> + Send + 'static,
    {
        self.executor.run(op(self.inner.clone())).await
    }
}

impl Inner {
    fn cached_client(&self) -> MutexGuard<'_, Option<Client>> {
        // The guarded value is a plain Option: a panic elsewhere cannot leave it torn.
        self.client
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// A client whose layout was checked, connecting first when needed.
    async fn ready(&self) -> Result<KvClient, Failure> {
        let cached = self.cached_client().clone();
        let client = match cached {
            Some(client) => client,
            None => {
                let client = self.conn.connect().await?;
                *self.cached_client() = Some(client.clone());
                client
            }
        };
        let mut kv = client.kv_client();
        if !self.layout_checked.load(Ordering::Acquire) {
            layout::ensure(&mut kv, &self.keys, &self.conn).await?;
            self.layout_checked.store(true, Ordering::Release);
        }
        Ok(kv)
    }

    /// Opens an optimistic transaction on a ready client.
    async fn begin(&self, first_attempt: bool) -> Result<EtcdTxn<'_>, Failure> {
        let kv = self.ready().await?;
        let mut inner = BufferedTxn::new(
            kv,
            self.conn.clone(),
            self.keys.layout(),
            layout::value(LATEST_LAYOUT),
        );
        if first_attempt {
            inner.read_prefetch_locally();
        }
        Ok(EtcdTxn::new(inner, &self.keys))
    }

    /// Commits `txn` when the engine's `result` is `Ok`; otherwise tells why it failed.
    async fn finish<T>(
        &self,
        mut txn: EtcdTxn<'_>,
        result: Result<T, StoreError>,
    ) -> Result<T, Failure> {
        match result {
            Ok(value) => {
                txn.commit().await?;
                Ok(value)
            }
            Err(err) => Err(txn.take_failure().unwrap_or(match err {
                // The engine lost a race it could already see (an address taken since the
                // snapshot): like a failed compare, a fresh snapshot decides.
                StoreError::Busy { reason } => Failure::Conflict(reason),
                other => Failure::Fatal(other),
            })),
        }
    }

    /// After a failed attempt: drops a client that failed, then waits or gives up.
    async fn after_failure(
        &self,
        attempts: &mut Attempts,
        failure: Failure,
    ) -> Result<(), StoreError> {
        if matches!(failure, Failure::Transient(_)) {
            // Never keep a client that just failed: the next attempt connects anew.
            *self.cached_client() = None;
        }
        attempts.retry_after(failure, &self.conn.endpoints()).await
    }

    /// The STATUS probe: a transaction that needs the write path (quorum, write permission
    /// on the prefix, no NOSPACE alarm) but whose guard never holds, so it writes nothing.
    async fn probe(&self) -> Result<(), StoreError> {
        let mut attempts = Attempts::new(self.timeout);
        loop {
            let step = async {
                let mut kv = self.ready().await?;
                let probe_key = self.keys.probe();
                let txn = Txn::new()
                    .when(vec![Compare::version(
                        probe_key.clone(),
                        CompareOp::Less,
                        0,
                    )])
                    .and_then(vec![TxnOp::put(probe_key, "", None)]);
                kv.txn(txn).await.map_err(|e| self.conn.classify(e))?;
                Ok(())
            };
            match attempts.bounded(step).await {
                Ok(()) => return Ok(()),
                Err(failure) => self.after_failure(&mut attempts, failure).await?,
            }
        }
    }

    /// Keeps the history of `network` near its bound after appends: prunes with
    /// probability `1 / prune_interval` (always when `force`). Best effort: a failure only
    /// leaves the pruning to a later call.
    async fn after_appends(&self, network: &str, force: bool) {
        let interval = records::prune_interval(self.history_limit);
        if !force && interval > 1 && rand::random_range(0..interval) != 0 {
            return;
        }
        let step = async {
            let mut kv = self.ready().await?;
            records::prune(&mut kv, &self.conn, &self.keys, network, self.history_limit).await
        };
        let attempts = Attempts::new(self.timeout);
        if let Err(failure) = attempts.bounded(step).await {
            tracing::debug!(network, ?failure, "history pruning postponed");
        }
    }

    async fn gc(
        &self,
        network: &str,
        valid: &[(String, String)],
        scope: &GcScope,
        policy: &BlockPolicy,
        now: i64,
    ) -> Result<GcReport, StoreError> {
        // GC releases and deletes blocks wholesale: claims start from fresh reads after it.
        self.views.forget(network);
        let attached = in_txn!(self, |txn| txn.attachments_of(network).await)?;
        let mut report = GcReport::default();
        // One transaction per stale attachment: each release stands on its own.
        for (container_id, ifname) in engine::stale_attachments(attached, valid, scope) {
            let key = AttachmentKey::new(network, container_id, ifname);
            match in_txn!(self, |txn| engine::release(txn, &key, now).await) {
                Ok(released) => report.released.extend(released),
                Err(err) if engine::is_store_wide(&err) => return Err(err),
                Err(err) => report.errors.push(format!(
                    "container {} interface {}: {err}",
                    key.container_id, key.ifname
                )),
            }
        }
        report
            .released
            .sort_by_key(|a| plexus_ipam_core::addr::key(a.ip));
        // Blocks left empty but unmarked (see `engine::unmarked_empty_blocks`): each
        // confirmed and marked in a transaction of its own.
        let unmarked = in_txn!(self, |txn| engine::unmarked_empty_blocks(
            txn, network, scope
        )
        .await)?;
        let mut marked = 0usize;
        for base in unmarked {
            let done = in_txn!(self, |txn| engine::mark_if_empty(txn, network, base, now)
                .await)?;
            marked += usize::from(done);
        }
        engine::log_marked(network, marked);
        loop {
            let (released, more) = in_txn!(self, |txn| {
                txn.limit_emptied(EXPIRE_BATCH);
                match engine::expire_blocks(txn, network, scope, policy, now).await {
                    Ok(released) => Ok((released, txn.emptied_truncated())),
                    Err(err) => Err(err),
                }
            })?;
            report.released_blocks.extend(released);
            if !more {
                break;
            }
        }
        report
            .released_blocks
            .sort_by_key(|b| plexus_ipam_core::addr::key(b.base));
        if !report.released.is_empty() {
            self.after_appends(network, false).await;
        }
        Ok(report)
    }
}

#[async_trait::async_trait]
impl Store for EtcdStore {
    async fn claim(
        &self,
        key: &AttachmentKey,
        owner: &Owner,
        claims: &[Claim<'_>],
        ctx: &ClaimContext,
    ) -> Result<Vec<Allocation>, StoreError> {
        // One claim is a batch of one: the same prefetch, transaction and retries.
        let request = ClaimRequest {
            key,
            owner,
            claims,
            ctx,
        };
        self.claim_batch(&[request]).await.pop().unwrap_or_else(|| {
            Err(StoreError::Internal {
                reason: "a batch of one claim came back without its answer".into(),
            })
        })
    }

    async fn claim_batch(
        &self,
        requests: &[ClaimRequest<'_>],
    ) -> Vec<Result<Vec<Allocation>, StoreError>> {
        let owned: Vec<OwnedRequest> = requests.iter().map(OwnedRequest::of).collect();
        let count = owned.len();
        let answers = self
            .run(|inner| async move {
                let claims: Vec<Vec<Claim<'_>>> = owned.iter().map(OwnedRequest::claims).collect();
                let requests: Vec<ClaimRequest<'_>> = owned
                    .iter()
                    .zip(&claims)
                    .map(|(request, claims)| request.request(claims))
                    .collect();
                let sink = ReadBackSink::default();
                let whose = claims::single_node_set(&requests);
                let (answers, seen) = in_txn!(&*inner, |txn| {
                    txn.inner.require_absent(&inner.require_absent);
                    let view = whose.as_ref().map(|whose| ViewUse {
                        views: &inner.views,
                        whose,
                        sink: &sink,
                    });
                    let answers =
                        claims::claim_batch_in(txn, &requests, &inner.block_bounds, view).await?;
                    Ok((answers, std::mem::take(&mut txn.blocks_seen)))
                })?;
                inner.block_bounds.remember(seen);
                let read_back = sink.lock().unwrap_or_else(|p| p.into_inner()).take();
                if let (Some(read_back), Some(whose)) = (read_back, whose) {
                    inner.views.remember(whose, read_back);
                }
                let mut networks: Vec<&str> = owned.iter().map(OwnedRequest::network).collect();
                networks.sort_unstable();
                networks.dedup();
                for network in networks {
                    inner.after_appends(network, false).await;
                }
                Ok(answers)
            })
            .await;
        answers.unwrap_or_else(|err| vec![Err(err); count])
    }

    async fn release(&self, key: &AttachmentKey) -> Result<Vec<Allocation>, StoreError> {
        let key = key.clone();
        let now = unix_now();
        self.run(|inner| async move {
            let released = in_txn!(&*inner, |txn| engine::release(txn, &key, now).await)?;
            if !released.is_empty() {
                inner.after_appends(&key.network, false).await;
            }
            Ok(released)
        })
        .await
    }

    async fn attachment(&self, key: &AttachmentKey) -> Result<Vec<Allocation>, StoreError> {
        let key = key.clone();
        self.run(|inner| async move { in_txn!(&*inner, |txn| txn.held_by(&key).await) })
            .await
    }

    async fn holder(&self, network: &str, ip: IpAddr) -> Result<Option<Allocation>, StoreError> {
        let network = network.to_string();
        self.run(|inner| async move { in_txn!(&*inner, |txn| txn.allocation(&network, ip).await) })
            .await
    }

    async fn list(&self, network: &str) -> Result<Vec<Allocation>, StoreError> {
        let network = network.to_string();
        self.run(|inner| async move { in_txn!(&*inner, |txn| txn.all_allocations(&network).await) })
            .await
    }

    async fn count_between(
        &self,
        network: &str,
        lo: IpAddr,
        hi: IpAddr,
    ) -> Result<u64, StoreError> {
        // Mixed families are refused before any network call.
        engine::family_key_ranges(lo, hi)?;
        let network = network.to_string();
        self.run(|inner| async move {
            in_txn!(&*inner, |txn| txn.count_between(&network, lo, hi).await)
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
        let network = network.to_string();
        self.run(|inner| async move {
            in_txn!(&*inner, |txn| {
                let mut page = Vec::new();
                let mut failed = None;
                for &(lo, hi) in &ranges {
                    match txn.alloc_page(&network, lo, hi, limit - page.len()).await {
                        Ok(found) => page.extend(found),
                        Err(err) => {
                            failed = Some(err);
                            break;
                        }
                    }
                }
                match failed {
                    Some(err) => Err(err),
                    None => Ok(page),
                }
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
        let (name, definition) = (name.to_string(), definition.clone());
        let now = unix_now();
        self.run(|inner| async move {
            in_txn!(&*inner, |txn| engine::put_network(
                txn,
                &name,
                &definition,
                mode,
                now
            )
            .await)
        })
        .await
    }

    async fn network(&self, name: &str) -> Result<Option<NetworkRecord>, StoreError> {
        let name = name.to_string();
        self.run(|inner| async move { in_txn!(&*inner, |txn| txn.stored_network(&name).await) })
            .await
    }

    async fn networks(&self) -> Result<Vec<NetworkRecord>, StoreError> {
        self.run(|inner| async move { in_txn!(&*inner, |txn| txn.all_networks().await) })
            .await
    }

    async fn allocated_networks(&self) -> Result<Vec<String>, StoreError> {
        self.run(|inner| async move { in_txn!(&*inner, |txn| txn.allocated_networks().await) })
            .await
    }

    async fn delete_network(&self, name: &str, force: bool) -> Result<NetworkDeletion, StoreError> {
        let name = name.to_string();
        self.run(|inner| async move {
            in_txn!(&*inner, |txn| engine::delete_network(txn, &name, force)
                .await)
        })
        .await
    }

    async fn history(&self, query: &HistoryQuery) -> Result<Vec<HistoryEvent>, StoreError> {
        let query = query.clone();
        self.run(|inner| async move { in_txn!(&*inner, |txn| txn.history(&query).await) })
            .await
    }

    async fn record_history(&self, events: &[HistoryEvent]) -> Result<(), StoreError> {
        let events = events.to_vec();
        self.run(|inner| async move {
            // etcd allows 128 operations per transaction: import in batches.
            for batch in events.chunks(HISTORY_BATCH) {
                in_txn!(&*inner, |txn| engine::record_history(txn, batch).await)?;
            }
            let mut networks: Vec<&str> = events.iter().map(|e| e.network.as_str()).collect();
            networks.sort_unstable();
            networks.dedup();
            for network in networks {
                inner.after_appends(network, true).await;
            }
            Ok(())
        })
        .await
    }

    async fn blocks(&self, network: &str) -> Result<Vec<Block>, StoreError> {
        let network = network.to_string();
        self.run(|inner| async move { in_txn!(&*inner, |txn| txn.all_blocks(&network).await) })
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
        let (network, valid, scope, policy) =
            (network.to_string(), valid.to_vec(), scope.clone(), *policy);
        self.run(|inner| async move { inner.gc(&network, &valid, &scope, &policy, now).await })
            .await
    }

    async fn probe(&self) -> Result<(), StoreError> {
        self.run(|inner| async move { inner.probe().await }).await
    }
}

#[cfg(test)]
mod batch_tests;
#[cfg(test)]
mod tests;
