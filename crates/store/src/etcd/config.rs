//! The `"store"` object of the etcd backend.
//!
//! ```json
//! "store": {"type": "etcd", "endpoints": ["https://10.0.0.1:2379"],
//!           "ca_file": "/etc/plexus/etcd-ca.pem", "cert_file": "/etc/plexus/etcd.pem",
//!           "key_file": "/etc/plexus/etcd-key.pem", "username": "plexus",
//!           "password_file": "/etc/plexus/etcd-password", "prefix": "/plexus/v1",
//!           "timeout_ms": 10000}
//! ```
//! Only `endpoints` is required. TLS is used exactly when the endpoints are `https://`
//! (all of them or none); its server verification cannot be turned off. Secrets come from
//! files; an inline `password` is accepted for compatibility but is never shown.
//!
//! `require_absent` (a list of etcd keys outside the prefix) makes every claim that hands
//! out an address commit only while none of those keys exists: the ranges whereabouts
//! ≤ 0.5.4 kept in this etcd, until `plexusctl import --from whereabouts-etcd` took them
//! over ([`crate::whereabouts`]). It costs one compare in the claim's own transaction.

use std::path::PathBuf;
use std::time::Duration;

use serde_json::{Map, Value};

use crate::common::{Secret, absolute_path as parse_path, json_kind, string as parse_string};
use crate::error::StoreError;

/// Key prefix of all plexus data when the configuration names none.
pub const DEFAULT_ETCD_PREFIX: &str = "/plexus/v1";

/// How long one store call may take by default, connecting and retrying included.
pub const DEFAULT_ETCD_TIMEOUT: Duration = Duration::from_secs(10);

/// Longest accepted `timeout_ms`: a CNI call must not hang for much longer.
const MAX_TIMEOUT_MS: u64 = 600_000;

/// The keys the etcd store object accepts, for error messages.
const KNOWN_KEYS: &str = "type, endpoints, ca_file, cert_file, key_file, username, \
                          password_file, password, prefix, timeout_ms, \
                          history_limit, require_absent";

/// Settings of the etcd v3 backend.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EtcdConfig {
    /// Client URLs of the etcd members, all `http://` or all `https://`.
    pub endpoints: Vec<String>,
    /// PEM file of the CA that signed the etcd server certificates (required with https).
    pub ca_file: Option<PathBuf>,
    /// PEM client certificate for mutual TLS (together with `key_file`).
    pub cert_file: Option<PathBuf>,
    /// PEM private key of `cert_file`.
    pub key_file: Option<PathBuf>,
    /// etcd user, when etcd authentication is enabled.
    pub username: Option<String>,
    /// File holding the password of `username` (a trailing newline is ignored).
    pub password_file: Option<PathBuf>,
    /// Inline password, accepted for compatibility; prefer `password_file`.
    pub password: Option<Secret>,
    /// Key prefix of all plexus data (starts with `/`, no trailing `/`).
    pub prefix: String,
    /// Deadline of one store call, connecting and conflict retries included.
    pub timeout: Duration,
    /// History events kept per network (`"history_limit"`, default
    /// [`crate::DEFAULT_HISTORY_LIMIT`]).
    pub history_limit: u32,
    /// Keys that must not exist when a claim commits (`"require_absent"`): whereabouts'
    /// not yet imported ranges. A claim that finds one refuses with the import to run.
    pub require_absent: Vec<String>,
}

impl EtcdConfig {
    /// Defaults for a cluster reachable at `endpoints` without TLS or authentication.
    pub fn new(endpoints: Vec<String>) -> Self {
        EtcdConfig {
            endpoints,
            ca_file: None,
            cert_file: None,
            key_file: None,
            username: None,
            password_file: None,
            password: None,
            prefix: DEFAULT_ETCD_PREFIX.to_string(),
            timeout: DEFAULT_ETCD_TIMEOUT,
            history_limit: crate::records::DEFAULT_HISTORY_LIMIT,
            require_absent: Vec::new(),
        }
    }

    /// Whether the endpoints are `https://` (checked at parse time to be all or none).
    pub fn uses_tls(&self) -> bool {
        self.endpoints.iter().any(|e| e.starts_with("https://"))
    }

    /// Checks the combination of settings (also for configurations built in code).
    pub fn validate(&self) -> Result<(), StoreError> {
        if self.endpoints.is_empty() {
            return Err(StoreError::config(
                "ipam.store.endpoints",
                "must list at least one etcd client URL",
            ));
        }
        for (i, endpoint) in self.endpoints.iter().enumerate() {
            check_endpoint(&format!("ipam.store.endpoints[{i}]"), endpoint)?;
        }
        let tls = self.uses_tls();
        if tls && self.endpoints.iter().any(|e| e.starts_with("http://")) {
            return Err(StoreError::config(
                "ipam.store.endpoints",
                "mixes http:// and https:// URLs; use one scheme for all members",
            ));
        }
        if tls && self.ca_file.is_none() {
            return Err(StoreError::config(
                "ipam.store.ca_file",
                "is required with https:// endpoints (the CA that signed the etcd server \
                 certificates)",
            ));
        }
        if !tls {
            for (field, set) in [
                ("ca_file", self.ca_file.is_some()),
                ("cert_file", self.cert_file.is_some()),
                ("key_file", self.key_file.is_some()),
            ] {
                if set {
                    return Err(StoreError::config(
                        format!("ipam.store.{field}"),
                        "is only used with https:// endpoints",
                    ));
                }
            }
        }
        if self.cert_file.is_some() != self.key_file.is_some() {
            return Err(StoreError::config(
                "ipam.store.cert_file",
                "cert_file and key_file go together (mutual TLS needs both)",
            ));
        }
        if self.password_file.is_some() && self.password.is_some() {
            return Err(StoreError::config(
                "ipam.store.password",
                "give either password_file or password, not both",
            ));
        }
        let has_password = self.password_file.is_some() || self.password.is_some();
        if has_password != self.username.is_some() {
            return Err(StoreError::config(
                "ipam.store.username",
                "username and a password (password_file) go together",
            ));
        }
        check_prefix(&self.prefix)?;
        for (i, key) in self.require_absent.iter().enumerate() {
            check_absent_key(&format!("ipam.store.require_absent[{i}]"), key)?;
        }
        if self.timeout.is_zero() {
            return Err(StoreError::config(
                "ipam.store.timeout_ms",
                "must be at least 1 millisecond",
            ));
        }
        Ok(())
    }
}

/// Parses the etcd `"store"` object (its `type` already known to be `etcd`).
pub(crate) fn parse(object: &Map<String, Value>) -> Result<EtcdConfig, StoreError> {
    let mut cfg = EtcdConfig::new(Vec::new());
    let mut saw_endpoints = false;
    for (name, value) in object {
        let field = format!("ipam.store.{name}");
        match name.as_str() {
            "type" => {}
            "endpoints" => {
                cfg.endpoints = parse_endpoints(&field, value)?;
                saw_endpoints = true;
            }
            "ca_file" => cfg.ca_file = Some(parse_path(&field, value)?),
            "cert_file" => cfg.cert_file = Some(parse_path(&field, value)?),
            "key_file" => cfg.key_file = Some(parse_path(&field, value)?),
            "username" => cfg.username = Some(parse_string(&field, value)?),
            "password_file" => cfg.password_file = Some(parse_path(&field, value)?),
            // Never echo the value: it is a secret even when it has the wrong type.
            "password" => match value {
                Value::String(s) => cfg.password = Some(Secret::new(s.clone())),
                _ => return Err(StoreError::config(field, "must be a string")),
            },
            "prefix" => cfg.prefix = parse_prefix(&field, value)?,
            "timeout_ms" => cfg.timeout = parse_timeout(&field, value)?,
            "history_limit" => {
                cfg.history_limit = crate::records::parse_history_limit(&field, value)?;
            }
            "require_absent" => cfg.require_absent = parse_strings(&field, value)?,
            _ => {
                return Err(StoreError::config(
                    field,
                    format!("unknown key for the etcd store (known: {KNOWN_KEYS})"),
                ));
            }
        }
    }
    if !saw_endpoints {
        return Err(StoreError::config(
            "ipam.store.endpoints",
            "is required for the etcd store, e.g. [\"https://10.0.0.1:2379\"]",
        ));
    }
    cfg.validate()?;
    Ok(cfg)
}

fn parse_endpoints(field: &str, value: &Value) -> Result<Vec<String>, StoreError> {
    parse_strings(field, value)
}

fn parse_strings(field: &str, value: &Value) -> Result<Vec<String>, StoreError> {
    let Value::Array(items) = value else {
        return Err(StoreError::config(
            field,
            format!("must be an array of strings, found {}", json_kind(value)),
        ));
    };
    items
        .iter()
        .enumerate()
        .map(|(i, item)| parse_string(&format!("{field}[{i}]"), item))
        .collect()
}

/// An endpoint must be `http(s)://host[:port]` with nothing that the client would
/// misread: no credentials (they belong in `username`/`password_file`), no path.
fn check_endpoint(field: &str, endpoint: &str) -> Result<(), StoreError> {
    let rest = endpoint
        .strip_prefix("https://")
        .or_else(|| endpoint.strip_prefix("http://"))
        .ok_or_else(|| {
            StoreError::config(
                field,
                format!("must start with http:// or https://, found {endpoint:?}"),
            )
        })?;
    let authority = rest.strip_suffix('/').unwrap_or(rest);
    if authority.contains('@') {
        // Do not echo it: the part before '@' may be a password.
        return Err(StoreError::config(
            field,
            "must not contain credentials; use username and password_file",
        ));
    }
    let well_formed = !authority.is_empty()
        && authority
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']'));
    if !well_formed {
        return Err(StoreError::config(
            field,
            format!(
                "must be a URL like https://10.0.0.1:2379 (host and port only), found {endpoint:?}"
            ),
        ));
    }
    Ok(())
}

/// A key of `require_absent`: an absolute key path without control characters.
fn check_absent_key(field: &str, key: &str) -> Result<(), StoreError> {
    if !key.starts_with('/') || key.len() < 2 || key.chars().any(char::is_control) {
        return Err(StoreError::config(
            field,
            format!("must be an etcd key like \"/whereabouts/10.0.0.0/24\", found {key:?}"),
        ));
    }
    Ok(())
}

fn parse_prefix(field: &str, value: &Value) -> Result<String, StoreError> {
    let prefix = parse_string(field, value)?;
    // "/plexus/v1/" and "/plexus/v1" mean the same place.
    let prefix = prefix.trim_end_matches('/').to_string();
    check_prefix(&prefix)?;
    Ok(prefix)
}

/// A prefix is `/` followed by at least one character, without a trailing `/`, so that
/// `<prefix>/alloc/...` never overlaps keys of other applications at the root.
fn check_prefix(prefix: &str) -> Result<(), StoreError> {
    let field = "ipam.store.prefix";
    if !prefix.starts_with('/') || prefix.len() < 2 || prefix.ends_with('/') {
        return Err(StoreError::config(
            field,
            format!("must be a key path below the root like \"/plexus/v1\", found {prefix:?}"),
        ));
    }
    if prefix.chars().any(char::is_control) {
        return Err(StoreError::config(
            field,
            "must not contain control characters",
        ));
    }
    Ok(())
}

fn parse_timeout(field: &str, value: &Value) -> Result<Duration, StoreError> {
    match value.as_u64() {
        Some(ms) if (1..=MAX_TIMEOUT_MS).contains(&ms) => Ok(Duration::from_millis(ms)),
        _ => Err(StoreError::config(
            field,
            format!("must be an integer from 1 to {MAX_TIMEOUT_MS} (milliseconds), found {value}"),
        )),
    }
}

#[cfg(test)]
mod tests;
