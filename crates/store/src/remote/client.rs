//! [`RemoteStore`]: the plugin's side of the node agent, a [`Store`] that forwards every
//! call over one Unix socket connection.
//!
//! The socket is blocking, like the SQLite backend: a plugin process drives one call on a
//! current-thread runtime without an I/O driver, so there is nothing else to run meanwhile.

use std::io::Write;
use std::net::IpAddr;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use plexus_ipam_core::BlockPolicy;
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::frame::{self, FrameError};
use super::protocol::{AgentStats, ClientMessage, Op, PROTOCOL_VERSION, ServerMessage, WireClaim};
use crate::config::StoreConfig;
use crate::error::StoreError;
use crate::gc_scope::GcScope;
use crate::records::{HistoryEvent, HistoryQuery, NetworkDeletion, NetworkRecord, PutMode};
use crate::store::Store;
use crate::types::{Allocation, AttachmentKey, Block, Claim, ClaimContext, GcReport, Owner};

/// How long connecting and the hello may take before the plugin gives up on the agent and
/// opens the store itself: an agent that is stopped or wedged must not cost a CNI call
/// more than this.
pub const CONNECT_TIMEOUT: Duration = Duration::from_millis(200);

/// Added to the store's own deadline when waiting for an answer: the agent enforces the
/// store deadline itself and needs a moment to send the error back.
const ANSWER_SLACK: Duration = Duration::from_millis(500);

/// Why the agent cannot serve this plugin; the plugin then uses the store directly.
#[derive(Debug, thiserror::Error)]
pub enum AgentUnavailable {
    /// No socket, nobody listening, or the hello failed on the socket.
    #[error("cannot reach the node agent at {socket}: {reason}")]
    Unreachable {
        /// The socket path.
        socket: PathBuf,
        /// What failed.
        reason: String,
    },
    /// The agent speaks another protocol version or answered nonsense.
    #[error("the node agent at {socket} is incompatible: {reason}")]
    Incompatible {
        /// The socket path.
        socket: PathBuf,
        /// What it said.
        reason: String,
    },
}

/// A [`Store`] served by the node agent (`plexusd node`).
///
/// If the connection breaks during a call, the call is repeated once against the store
/// itself (opened directly) when repeating it is safe ([`Op::is_idempotent`]), and every
/// later call goes direct too.
pub struct RemoteStore {
    socket: PathBuf,
    config: StoreConfig,
    store_json: Value,
    conn: Mutex<Option<Connection>>,
    direct: tokio::sync::OnceCell<Box<dyn Store>>,
}

/// The connection to the agent, and whether its hello was answered yet.
struct Connection {
    stream: UnixStream,
    greeted: bool,
}

impl std::fmt::Debug for RemoteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The store JSON may hold a password: leave it out.
        f.debug_struct("RemoteStore")
            .field("socket", &self.socket)
            .finish_non_exhaustive()
    }
}

impl RemoteStore {
    /// Connects to the agent at `socket`. The hello naming [`PROTOCOL_VERSION`] goes out
    /// with the first request, in the same write: a CNI call then costs one round trip to
    /// the agent instead of two. An agent that refuses the hello never runs that request,
    /// so an incompatible agent found then still means the store is used directly.
    pub fn connect(socket: &Path, config: &StoreConfig) -> Result<RemoteStore, AgentUnavailable> {
        let stream = UnixStream::connect(socket).map_err(|e| AgentUnavailable::Unreachable {
            socket: socket.to_path_buf(),
            reason: e.to_string(),
        })?;
        Ok(RemoteStore {
            socket: socket.to_path_buf(),
            config: config.clone(),
            store_json: config.to_json(),
            conn: Mutex::new(Some(Connection {
                stream,
                greeted: false,
            })),
            direct: tokio::sync::OnceCell::new(),
        })
    }

    /// The agent's counters.
    pub fn stats(&self) -> Result<AgentStats, StoreError> {
        match self.send(&ClientMessage::Stats, true) {
            Ok(ServerMessage::Stats { stats }) => Ok(stats),
            Ok(other) => Err(StoreError::Internal {
                reason: format!(
                    "node agent answered {} to a stats request",
                    message_kind(&other)
                ),
            }),
            Err(e) => Err(StoreError::Unavailable {
                reason: format!("node agent at {}: {e}", self.socket.display()),
            }),
        }
    }

    /// Sends one message on the live connection; a failure drops the connection. On a
    /// connection not greeted yet, the hello goes first: in the same write as `message`
    /// when `pipeline` allows it (the request is safe to run twice, should the agent answer
    /// the hello too late and run it after the plugin went direct), else in a round trip
    /// of its own.
    fn send(&self, message: &ClientMessage, pipeline: bool) -> Result<ServerMessage, CallError> {
        let mut guard = self.conn.lock().unwrap_or_else(|p| p.into_inner());
        let Some(conn) = guard.as_mut() else {
            return Err(CallError::Gone);
        };
        let answer = if conn.greeted {
            exchange(&mut conn.stream, message)
        } else {
            self.greet_and_exchange(conn, message, pipeline)
        };
        if answer.is_err() {
            *guard = None;
        }
        answer
    }

    fn greet_and_exchange(
        &self,
        conn: &mut Connection,
        message: &ClientMessage,
        pipeline: bool,
    ) -> Result<ServerMessage, CallError> {
        let unusable = |e: AgentUnavailable| CallError::Unusable(Box::new(e));
        let unreachable = |reason: String| {
            unusable(AgentUnavailable::Unreachable {
                socket: self.socket.clone(),
                reason,
            })
        };
        let stream = &mut conn.stream;
        set_timeouts(stream, CONNECT_TIMEOUT).map_err(|e| unreachable(e.to_string()))?;
        let hello = serde_json::to_vec(&ClientMessage::Hello {
            version: PROTOCOL_VERSION,
        })?;
        let mut bytes = frame::encode(&hello)?;
        if pipeline {
            bytes.extend(frame::encode(&serde_json::to_vec(message)?)?);
        }
        stream
            .write_all(&bytes)
            .map_err(|e| unreachable(e.to_string()))?;
        let answer = frame::read_sync(stream)
            .map_err(|e| unreachable(e.to_string()))
            .and_then(|bytes| {
                serde_json::from_slice(&bytes).map_err(|e| unreachable(e.to_string()))
            })?;
        match answer {
            ServerMessage::Hello { version, .. } if version == PROTOCOL_VERSION => {}
            ServerMessage::ProtocolError { reason } => {
                return Err(unusable(AgentUnavailable::Incompatible {
                    socket: self.socket.clone(),
                    reason,
                }));
            }
            other => {
                return Err(unusable(AgentUnavailable::Incompatible {
                    socket: self.socket.clone(),
                    reason: format!("unexpected answer to hello: {}", message_kind(&other)),
                }));
            }
        }
        conn.greeted = true;
        set_timeouts(stream, self.config.deadline() + ANSWER_SLACK)
            .map_err(|e| unreachable(e.to_string()))?;
        if pipeline {
            let answer = frame::read_sync(stream)?;
            Ok(serde_json::from_slice(&answer)?)
        } else {
            exchange(stream, message)
        }
    }

    /// Runs `op` through the agent, or directly once the agent is gone.
    async fn call(&self, op: Op) -> Result<Value, StoreError> {
        if self.direct.get().is_none() {
            let message = ClientMessage::Call {
                store: self.store_json.clone(),
                op: op.clone(),
            };
            match self.send(&message, op.is_idempotent()) {
                Ok(ServerMessage::Result { value }) => return Ok(value),
                Ok(ServerMessage::Error { error }) => return Err(error),
                Ok(other) => {
                    return Err(StoreError::Internal {
                        reason: format!(
                            "node agent answered {} to a store call",
                            message_kind(&other)
                        ),
                    });
                }
                Err(e @ (CallError::Unusable(_) | CallError::Gone)) => {
                    // The agent refused or never answered the hello, or the connection was
                    // lost before this call: the agent did not take the call (pipelined
                    // behind a hello answered too late, it runs one that is safe to repeat).
                    tracing::debug!(error = %e, "node agent not usable; using the store directly");
                }
                Err(CallError::Frame(FrameError::Io(e)))
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) =>
                {
                    // The agent is alive but the deadline is spent: no time left to retry.
                    return Err(StoreError::Unavailable {
                        reason: format!(
                            "node agent at {} did not answer within {:?}",
                            self.socket.display(),
                            self.config.deadline() + ANSWER_SLACK
                        ),
                    });
                }
                Err(e) if !op.is_idempotent() => {
                    return Err(StoreError::Unavailable {
                        reason: format!(
                            "node agent at {} failed during {} ({e}); its outcome is unknown",
                            self.socket.display(),
                            op.name()
                        ),
                    });
                }
                Err(e) => {
                    // Safe to repeat: a claim is idempotent by (network, container id,
                    // ifname), so if the agent committed it before dying, the direct
                    // retry returns that same allocation instead of a second one.
                    tracing::debug!(
                        socket = %self.socket.display(),
                        op = op.name(),
                        error = %e,
                        "node agent lost mid-call; repeating it with direct store access"
                    );
                }
            }
        }
        let direct = self
            .direct
            .get_or_try_init(|| crate::open(&self.config))
            .await?;
        super::dispatch::run(direct.as_ref(), op).await
    }

    async fn call_as<T: DeserializeOwned>(&self, op: Op) -> Result<T, StoreError> {
        let value = self.call(op).await?;
        serde_json::from_value(value).map_err(|e| StoreError::Internal {
            reason: format!("cannot decode the node agent's answer: {e}"),
        })
    }
}

/// Why one exchange with the agent failed.
#[derive(Debug, thiserror::Error)]
enum CallError {
    #[error("{0}")]
    Frame(#[from] FrameError),
    #[error("malformed answer: {0}")]
    Json(#[from] serde_json::Error),
    #[error("connection already lost")]
    Gone,
    /// The hello failed: the agent did not take the request.
    #[error("{0}")]
    Unusable(Box<AgentUnavailable>),
}

fn set_timeouts(stream: &UnixStream, limit: Duration) -> std::io::Result<()> {
    stream.set_read_timeout(Some(limit))?;
    stream.set_write_timeout(Some(limit))
}

fn exchange(stream: &mut UnixStream, message: &ClientMessage) -> Result<ServerMessage, CallError> {
    let payload = serde_json::to_vec(message)?;
    frame::write_sync(stream, &payload)?;
    let answer = frame::read_sync(stream)?;
    Ok(serde_json::from_slice(&answer)?)
}

fn message_kind(message: &ServerMessage) -> &'static str {
    match message {
        ServerMessage::Hello { .. } => "hello",
        ServerMessage::Result { .. } => "a result",
        ServerMessage::Error { .. } => "an error",
        ServerMessage::ProtocolError { .. } => "a protocol error",
        ServerMessage::Stats { .. } => "stats",
    }
}

#[async_trait::async_trait]
impl Store for RemoteStore {
    async fn claim(
        &self,
        key: &AttachmentKey,
        owner: &Owner,
        claims: &[Claim<'_>],
        ctx: &ClaimContext,
    ) -> Result<Vec<Allocation>, StoreError> {
        self.call_as(Op::Claim {
            key: key.clone(),
            owner: owner.clone(),
            claims: claims.iter().map(WireClaim::from_claim).collect(),
            ctx: ctx.into(),
        })
        .await
    }

    async fn release(&self, key: &AttachmentKey) -> Result<Vec<Allocation>, StoreError> {
        self.call_as(Op::Release { key: key.clone() }).await
    }

    async fn attachment(&self, key: &AttachmentKey) -> Result<Vec<Allocation>, StoreError> {
        self.call_as(Op::Attachment { key: key.clone() }).await
    }

    async fn holder(&self, network: &str, ip: IpAddr) -> Result<Option<Allocation>, StoreError> {
        self.call_as(Op::Holder {
            network: network.into(),
            ip,
        })
        .await
    }

    async fn list(&self, network: &str) -> Result<Vec<Allocation>, StoreError> {
        self.call_as(Op::List {
            network: network.into(),
        })
        .await
    }

    async fn count_between(
        &self,
        network: &str,
        lo: IpAddr,
        hi: IpAddr,
    ) -> Result<u64, StoreError> {
        self.call_as(Op::CountBetween {
            network: network.into(),
            lo,
            hi,
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
        self.call_as(Op::ListBetween {
            network: network.into(),
            lo,
            hi,
            limit,
        })
        .await
    }

    async fn put_network(
        &self,
        name: &str,
        definition: &Value,
        mode: PutMode,
    ) -> Result<NetworkRecord, StoreError> {
        self.call_as(Op::PutNetwork {
            name: name.into(),
            definition: definition.clone(),
            mode: mode.into(),
        })
        .await
    }

    async fn network(&self, name: &str) -> Result<Option<NetworkRecord>, StoreError> {
        self.call_as(Op::Network { name: name.into() }).await
    }

    async fn networks(&self) -> Result<Vec<NetworkRecord>, StoreError> {
        self.call_as(Op::Networks).await
    }

    async fn allocated_networks(&self) -> Result<Vec<String>, StoreError> {
        self.call_as(Op::AllocatedNetworks).await
    }

    async fn delete_network(&self, name: &str, force: bool) -> Result<NetworkDeletion, StoreError> {
        self.call_as(Op::DeleteNetwork {
            name: name.into(),
            force,
        })
        .await
    }

    async fn history(&self, query: &HistoryQuery) -> Result<Vec<HistoryEvent>, StoreError> {
        self.call_as(Op::History {
            query: query.into(),
        })
        .await
    }

    async fn record_history(&self, events: &[HistoryEvent]) -> Result<(), StoreError> {
        self.call_as(Op::RecordHistory {
            events: events.to_vec(),
        })
        .await
    }

    async fn blocks(&self, network: &str) -> Result<Vec<Block>, StoreError> {
        self.call_as(Op::Blocks {
            network: network.into(),
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
        self.call_as(Op::Gc {
            network: network.into(),
            valid: valid.to_vec(),
            scope: scope.clone(),
            blocks: blocks.into(),
            now,
        })
        .await
    }

    async fn probe(&self) -> Result<(), StoreError> {
        self.call_as(Op::Probe).await
    }
}
