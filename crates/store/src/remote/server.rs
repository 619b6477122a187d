//! The agent's side: a Unix socket server that keeps the stores it was asked for open
//! (PostgreSQL as a pool of warm connections, one etcd client, one SQLite handle) and
//! serves every connection on its own task.

use std::collections::HashMap;
use std::future::Future;
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::net::{UnixListener, UnixStream};
use tokio::sync::watch;
use tokio::task::JoinSet;

use super::batch::{BatchRunner, ClaimBatcher};
use super::frame::{self, FrameError};
use super::protocol::{AgentStats, ClientMessage, Op, PROTOCOL_VERSION, ServerMessage};
use crate::config::StoreConfig;
use crate::error::StoreError;
use crate::postgres::PostgresStore;
use crate::store::Store;

/// Connections one PostgreSQL store of the agent keeps at most.
pub const DEFAULT_PG_POOL_SIZE: usize = 8;

/// How long a claim waits in its network's queue before it goes ahead alone.
const QUEUE_PATIENCE: Duration = Duration::from_secs(2);

/// How long shutdown waits for in-flight requests before giving up on them.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(30);

/// Why the agent cannot start or run.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// Another agent answers on the socket.
    #[error("a node agent is already listening on {0}")]
    AlreadyRunning(PathBuf),
    /// Something other than a socket sits at the socket path.
    #[error("{0} exists and is not a socket; refusing to replace it")]
    NotASocket(PathBuf),
    /// A file system or socket operation failed.
    #[error("{what} {path}: {source}")]
    Io {
        /// What was attempted.
        what: &'static str,
        /// The path involved.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
}

/// A bound, not yet serving agent.
#[derive(Debug)]
pub struct Agent {
    listener: UnixListener,
    socket: PathBuf,
    state: Arc<State>,
}

/// An open store and how to drive it.
struct OpenStore {
    store: Arc<dyn Store>,
    /// SQLite blocks its thread while it waits for locks: run it off the async workers.
    blocking: bool,
    /// One claim queue per network for the claims of this node (PostgreSQL and etcd):
    /// see [`super::batch`].
    claim_queues: Mutex<HashMap<String, Arc<ClaimBatcher>>>,
    /// Runs a batch of claims on `store`.
    run_batch: BatchRunner,
}

impl OpenStore {
    /// `batches` counts the claim batches run (shared with the agent's stats).
    fn new(store: Box<dyn Store>, blocking: bool, batches: Arc<AtomicU64>) -> Self {
        let store: Arc<dyn Store> = Arc::from(store);
        let run_batch: BatchRunner = {
            let store = store.clone();
            Arc::new(move |ops| {
                let store = store.clone();
                batches.fetch_add(1, Ordering::Relaxed);
                Box::pin(async move { super::dispatch::claim_batch(store.as_ref(), ops).await })
            })
        };
        OpenStore {
            store,
            blocking,
            claim_queues: Mutex::new(HashMap::new()),
            run_batch,
        }
    }

    /// The claim queue of `network`.
    fn claim_queue(&self, network: &str) -> Arc<ClaimBatcher> {
        let mut queues = self.claim_queues.lock().unwrap_or_else(|p| p.into_inner());
        queues.entry(network.to_owned()).or_default().clone()
    }

    /// Runs `op`: a claim through its network's queue, anything else at once.
    async fn run(&self, op: Op) -> Result<serde_json::Value, StoreError> {
        match &op {
            Op::Claim { key, .. } => {
                let queue = self.claim_queue(&key.network);
                queue.claim(&self.run_batch, op, QUEUE_PATIENCE).await
            }
            _ => super::dispatch::run(self.store.as_ref(), op).await,
        }
    }
}

/// What every connection task shares.
struct State {
    pg_pool_size: usize,
    stores: tokio::sync::Mutex<HashMap<String, Arc<OpenStore>>>,
    stats: Mutex<AgentStats>,
    /// Claim batches run, over all stores ([`AgentStats::claim_batches`]).
    claim_batches: Arc<AtomicU64>,
}

impl std::fmt::Debug for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The store keys hold the store JSON (maybe a password): never print them.
        f.debug_struct("State").finish_non_exhaustive()
    }
}

impl Agent {
    /// Creates the socket: its directory with mode 0700 when missing, the socket itself
    /// with mode 0600. A stale socket file (nobody answers) is replaced; a live agent is
    /// [`AgentError::AlreadyRunning`]. Must run inside a tokio runtime.
    pub fn bind(socket: &Path, pg_pool_size: usize) -> Result<Agent, AgentError> {
        let io = |what, source| AgentError::Io {
            what,
            path: socket.to_path_buf(),
            source,
        };
        if let Some(dir) = socket.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .map_err(|e| io("cannot create the directory of", e))?;
        }
        match std::fs::symlink_metadata(socket) {
            Ok(meta) if !meta.file_type().is_socket() => {
                return Err(AgentError::NotASocket(socket.to_path_buf()));
            }
            Ok(_) => {
                if std::os::unix::net::UnixStream::connect(socket).is_ok() {
                    return Err(AgentError::AlreadyRunning(socket.to_path_buf()));
                }
                tracing::info!(socket = %socket.display(), "replacing a stale socket");
                std::fs::remove_file(socket).map_err(|e| io("cannot remove stale socket", e))?;
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io("cannot inspect", e)),
        }
        let listener = UnixListener::bind(socket).map_err(|e| io("cannot listen on", e))?;
        // The directory is 0700, so nobody else can connect in the moment before this.
        std::fs::set_permissions(socket, std::fs::Permissions::from_mode(0o600))
            .map_err(|e| io("cannot restrict the mode of", e))?;
        Ok(Agent {
            listener,
            socket: socket.to_path_buf(),
            state: Arc::new(State {
                pg_pool_size: pg_pool_size.max(1),
                stores: tokio::sync::Mutex::new(HashMap::new()),
                stats: Mutex::new(AgentStats::default()),
                claim_batches: Arc::new(AtomicU64::new(0)),
            }),
        })
    }

    /// The socket path.
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// Serves until `shutdown` completes; then stops accepting, removes the socket, lets
    /// every connection finish the request it is running, and returns.
    pub async fn serve(self, shutdown: impl Future<Output = ()>) {
        let (stop_tx, stop_rx) = watch::channel(false);
        let mut tasks = JoinSet::new();
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                () = &mut shutdown => break,
                accepted = self.listener.accept() => match accepted {
                    Ok((stream, _)) => {
                        self.state.count(|s| s.connections += 1);
                        tasks.spawn(serve_connection(stream, self.state.clone(), stop_rx.clone()));
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                },
                Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
            }
        }
        // Plugins starting now find no socket and go direct at once.
        if let Err(e) = std::fs::remove_file(&self.socket) {
            tracing::warn!(socket = %self.socket.display(), error = %e, "cannot remove the socket");
        }
        drop(self.listener);
        let _ = stop_tx.send(true);
        let in_flight = tasks.len();
        tracing::info!(connections = in_flight, "shutting down");
        let drained = tokio::time::timeout(SHUTDOWN_GRACE, async {
            while tasks.join_next().await.is_some() {}
        })
        .await;
        if drained.is_err() {
            tracing::warn!("connections still busy after {SHUTDOWN_GRACE:?}; leaving them");
        }
    }
}

impl State {
    fn count(&self, update: impl FnOnce(&mut AgentStats)) {
        update(&mut self.stats.lock().unwrap_or_else(|p| p.into_inner()));
    }

    /// The open store for `store_json`, opening it on first use. Failures are not cached.
    async fn store(&self, store_json: &serde_json::Value) -> Result<Arc<OpenStore>, StoreError> {
        let key = store_json.to_string();
        let mut stores = self.stores.lock().await;
        if let Some(open) = stores.get(&key) {
            return Ok(open.clone());
        }
        let config = StoreConfig::from_json(Some(store_json))?;
        let batches = self.claim_batches.clone();
        let open = match &config {
            StoreConfig::Postgres(pg) => OpenStore::new(
                Box::new(PostgresStore::pooled(pg, self.pg_pool_size)?),
                false,
                batches,
            ),
            StoreConfig::Sqlite(_) => OpenStore::new(crate::open(&config).await?, true, batches),
            StoreConfig::Etcd(_) => OpenStore::new(crate::open(&config).await?, false, batches),
        };
        let open = Arc::new(open);
        stores.insert(key, open.clone());
        let count = stores.len() as u64;
        drop(stores);
        self.count(|s| s.stores_open = count);
        tracing::info!(backend = backend_name(&config), "opened a store");
        Ok(open)
    }

    async fn run(
        &self,
        store_json: &serde_json::Value,
        op: Op,
    ) -> Result<serde_json::Value, StoreError> {
        let name = op.name();
        self.count(|s| *s.calls.entry(name.to_owned()).or_default() += 1);
        let open = self.store(store_json).await?;
        if open.blocking {
            let handle = tokio::runtime::Handle::current();
            tokio::task::spawn_blocking(move || {
                handle.block_on(super::dispatch::run(open.store.as_ref(), op))
            })
            .await
            .map_err(|e| StoreError::Internal {
                reason: format!("store operation {name} aborted: {e}"),
            })?
        } else {
            // SQLite (above) serializes its writers itself.
            open.run(op).await
        }
    }
}

fn backend_name(config: &StoreConfig) -> &'static str {
    match config {
        StoreConfig::Sqlite(_) => "sqlite",
        StoreConfig::Postgres(_) => "postgres",
        StoreConfig::Etcd(_) => "etcd",
    }
}

/// Serves one plugin connection: a hello, then calls until the plugin hangs up, the
/// request is malformed, or the agent shuts down (between requests, never during one).
async fn serve_connection(
    mut stream: UnixStream,
    state: Arc<State>,
    mut stop: watch::Receiver<bool>,
) {
    let mut greeted = false;
    loop {
        let frame = tokio::select! {
            frame = frame::read_async(&mut stream) => frame,
            _ = stop.wait_for(|stopping| *stopping) => return,
        };
        let payload = match frame {
            Ok(payload) => payload,
            Err(FrameError::Closed) => return,
            Err(FrameError::TooLarge(len)) => {
                refuse(
                    &mut stream,
                    &state,
                    format!("frame of {len} bytes exceeds the limit"),
                )
                .await;
                return;
            }
            Err(FrameError::Io(e)) => {
                tracing::debug!(error = %e, "connection failed");
                return;
            }
        };
        let message: ClientMessage = match serde_json::from_slice(&payload) {
            Ok(message) => message,
            Err(e) => {
                refuse(&mut stream, &state, format!("malformed request: {e}")).await;
                return;
            }
        };
        let answer = match (greeted, message) {
            (false, ClientMessage::Hello { version }) if version == PROTOCOL_VERSION => {
                greeted = true;
                ServerMessage::Hello {
                    version: PROTOCOL_VERSION,
                    agent: format!("plexusd {}", env!("CARGO_PKG_VERSION")),
                }
            }
            (false, ClientMessage::Hello { version }) => {
                let reason = format!(
                    "unsupported protocol version {version} (this agent speaks {PROTOCOL_VERSION})"
                );
                refuse(&mut stream, &state, reason).await;
                return;
            }
            (false, _) => {
                refuse(
                    &mut stream,
                    &state,
                    "the first request must be a hello".into(),
                )
                .await;
                return;
            }
            (true, ClientMessage::Hello { .. }) => {
                refuse(&mut stream, &state, "hello sent twice".into()).await;
                return;
            }
            (true, ClientMessage::Stats) => {
                let mut stats = state
                    .stats
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .clone();
                stats.claim_batches = state.claim_batches.load(Ordering::Relaxed);
                ServerMessage::Stats { stats }
            }
            (true, ClientMessage::Call { store, op }) => {
                let name = op.name();
                match state.run(&store, op).await {
                    Ok(value) => ServerMessage::Result { value },
                    Err(error) => {
                        state.count(|s| s.errors += 1);
                        tracing::debug!(op = name, error = %error, "store call failed");
                        ServerMessage::Error { error }
                    }
                }
            }
        };
        if send(&mut stream, &answer).await.is_err() {
            return;
        }
    }
}

async fn send(stream: &mut UnixStream, message: &ServerMessage) -> Result<(), FrameError> {
    let payload = serde_json::to_vec(message).unwrap_or_else(|e| {
        // Every message type serializes; this keeps the plugin informed if one ever fails.
        serde_json::to_vec(&ServerMessage::Error {
            error: StoreError::Internal {
                reason: format!("cannot encode the answer: {e}"),
            },
        })
        .unwrap_or_default()
    });
    frame::write_async(stream, &payload).await
}

/// Answers a protocol error; the caller closes the connection afterwards.
async fn refuse(stream: &mut UnixStream, state: &State, reason: String) {
    state.count(|s| s.protocol_errors += 1);
    tracing::debug!(%reason, "refusing a request");
    let _ = send(stream, &ServerMessage::ProtocolError { reason }).await;
}
