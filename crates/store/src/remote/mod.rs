//! The node agent (`plexusd node`): one long-running process per node that keeps warm
//! store connections, which `plexus-ipam` and `plexus` reach over a Unix socket instead
//! of connecting to PostgreSQL or etcd on every CNI call.
//!
//! - [`frame`]: u32 big-endian length-prefixed frames, capped at [`frame::MAX_FRAME`].
//! - [`protocol`]: the JSON messages; errors come back as the same [`crate::StoreError`].
//! - [`RemoteStore`]: the plugin side, a [`crate::Store`] forwarding every call.
//! - [`Agent`]: the server side; `batch` queues a node's claims and hands them to the
//!   store in batches.
//! - [`AgentSetting`] and [`open_with_agent`]: the `"agent"` key of the IPAM config and
//!   the fallback to direct access when no agent answers.

mod batch;
mod client;
mod dispatch;
pub mod frame;
pub mod protocol;
mod server;
mod setting;
#[cfg(test)]
mod tests;
mod wire_config;

pub use client::{AgentUnavailable, CONNECT_TIMEOUT, RemoteStore};
pub use server::{Agent, AgentError, DEFAULT_PG_POOL_SIZE};
pub use setting::{AgentSetting, DEFAULT_AGENT_SOCKET, open_with_agent, open_with_agent_as};
