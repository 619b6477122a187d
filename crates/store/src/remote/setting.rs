//! The `"agent"` key of the IPAM configuration and how a plugin opens its store with it.
//!
//! ```json
//! "ipam": {"type": "plexus-ipam", "agent": "/run/plexus/agent.sock", ...}
//! ```
//! A string names the agent's socket, `false` turns the agent off, and an absent key (or
//! `true`) uses [`DEFAULT_AGENT_SOCKET`] when that socket exists.

use std::path::{Path, PathBuf};

use serde_json::Value;

use super::client::RemoteStore;
use crate::config::{OpenMode, StoreConfig};
use crate::error::StoreError;
use crate::store::Store;

/// Where `plexusd node` listens unless told otherwise.
pub const DEFAULT_AGENT_SOCKET: &str = "/run/plexus/agent.sock";

/// Whether and where a plugin looks for the node agent.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum AgentSetting {
    /// [`DEFAULT_AGENT_SOCKET`] if it exists, else direct access.
    #[default]
    Default,
    /// The agent at this socket, falling back to direct access when it does not answer.
    Socket(PathBuf),
    /// Always direct access.
    Disabled,
}

impl AgentSetting {
    /// Parses the `"agent"` value found at `field` (`None` when absent).
    pub fn from_json(value: Option<&Value>, field: &str) -> Result<AgentSetting, StoreError> {
        match value {
            None | Some(Value::Null | Value::Bool(true)) => Ok(AgentSetting::Default),
            Some(Value::Bool(false)) => Ok(AgentSetting::Disabled),
            Some(Value::String(path)) if Path::new(path).is_absolute() => {
                Ok(AgentSetting::Socket(PathBuf::from(path)))
            }
            Some(Value::String(path)) => Err(StoreError::config(
                field,
                format!("must be an absolute socket path, found {path:?}"),
            )),
            Some(other) => Err(StoreError::config(
                field,
                format!(
                    "must be a socket path or false, found {}",
                    match other {
                        Value::Number(_) => "a number",
                        Value::Array(_) => "an array",
                        Value::Object(_) => "an object",
                        _ => "another value",
                    }
                ),
            )),
        }
    }

    /// The socket to try, if any.
    pub fn socket(&self) -> Option<&Path> {
        match self {
            AgentSetting::Default => {
                let default = Path::new(DEFAULT_AGENT_SOCKET);
                // No agent installed: skip even the connect attempt (the SQLite fast path).
                default.exists().then_some(default)
            }
            AgentSetting::Socket(path) => Some(path),
            AgentSetting::Disabled => None,
        }
    }
}

/// Opens the store `config` names through the node agent `agent` selects, or directly
/// when there is none or it does not answer (logged at debug: a node without an agent is
/// a normal setup).
pub async fn open_with_agent(
    config: &StoreConfig,
    agent: &AgentSetting,
) -> Result<Box<dyn Store>, StoreError> {
    open_with_agent_as(config, agent, OpenMode::CreateIfMissing).await
}

/// [`open_with_agent`] with an [`OpenMode`]: with [`OpenMode::MustExist`] a missing SQLite
/// store is refused before the agent is asked (plugin and agent share the node's files), so
/// neither creates it.
pub async fn open_with_agent_as(
    config: &StoreConfig,
    agent: &AgentSetting,
    mode: OpenMode,
) -> Result<Box<dyn Store>, StoreError> {
    if mode == OpenMode::MustExist
        && let StoreConfig::Sqlite(sqlite) = config
    {
        crate::sqlite::check_existing(&sqlite.path)?;
    }
    if let Some(socket) = agent.socket() {
        match RemoteStore::connect(socket, config) {
            Ok(remote) => {
                tracing::debug!(socket = %socket.display(), "using the node agent");
                return Ok(Box::new(remote));
            }
            Err(e) => {
                tracing::debug!(error = %e, "node agent not usable; opening the store directly")
            }
        }
    }
    crate::open_as(config, mode).await
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn agent_values() {
        let parse = |v: Value| AgentSetting::from_json(Some(&v), "ipam.agent");
        assert_eq!(
            AgentSetting::from_json(None, "ipam.agent").unwrap(),
            AgentSetting::Default
        );
        assert_eq!(parse(json!(true)).unwrap(), AgentSetting::Default);
        assert_eq!(parse(json!(false)).unwrap(), AgentSetting::Disabled);
        assert_eq!(
            parse(json!("/run/x.sock")).unwrap(),
            AgentSetting::Socket("/run/x.sock".into())
        );
        for bad in [json!(1), json!("rel.sock"), json!([]), json!({})] {
            match parse(bad.clone()).unwrap_err() {
                StoreError::Config { field, .. } => assert_eq!(field, "ipam.agent", "{bad}"),
                other => panic!("{bad}: {other:?}"),
            }
        }
        assert_eq!(AgentSetting::Disabled.socket(), None);
    }
}
