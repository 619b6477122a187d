//! The `"store": {"type": "postgres", ...}` object.
//!
//! ```json
//! "store": {"type": "postgres", "host": "db.example", "port": 5432, "dbname": "plexus",
//!           "user": "plexus", "password_file": "/etc/plexus/pg-password",
//!           "sslmode": "verify-full", "ca_file": "/etc/plexus/pg-ca.pem",
//!           "timeout_ms": 10000}
//! ```
//! Only `host` is required. The password is read from `password_file` on every connection
//! (so a rotated secret is picked up); an inline `password` is accepted for compatibility
//! with the CNI 1.1 talk's plugin, and is redacted from every `Debug` output and message.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use serde_json::{Map, Value};

use crate::common::{self, Secret, json_kind};
use crate::error::StoreError;

/// Default PostgreSQL port.
pub const DEFAULT_PG_PORT: u16 = 5432;

/// Default deadline of one store call (connect, transaction, commit).
pub const DEFAULT_PG_TIMEOUT: Duration = Duration::from_secs(10);

/// Longest accepted `timeout_ms`: a CNI call must not hang for much longer.
const MAX_TIMEOUT_MS: u64 = 600_000;

/// The keys of the object, for the "unknown key" message.
const KNOWN_KEYS: &str = "type, host, port, dbname, user, password_file, password, sslmode, \
                          ca_file, cert_file, key_file, timeout_ms, layout, history_limit";

/// Settings of the PostgreSQL backend.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PostgresConfig {
    /// Server host name or IP address; an absolute path names a Unix socket directory.
    pub host: String,
    /// Server port.
    pub port: u16,
    /// Database name.
    pub dbname: String,
    /// Role to log in as.
    pub user: String,
    /// Where the password comes from, if the server asks for one.
    pub password: Option<PasswordSource>,
    /// Whether and how TLS is used.
    pub sslmode: SslMode,
    /// PEM file of the certificate authorities trusted for the server certificate (the
    /// system roots when absent).
    pub ca_file: Option<PathBuf>,
    /// PEM client certificate chain, for servers that authenticate clients by certificate.
    pub cert_file: Option<PathBuf>,
    /// PEM private key of `cert_file`.
    pub key_file: Option<PathBuf>,
    /// Deadline of one store call: connecting, the transaction and the commit together.
    /// Also the server-side statement, lock and idle-in-transaction timeouts.
    pub timeout: Duration,
    /// Which tables hold the allocations.
    pub layout: Layout,
    /// History events kept per network (`"history_limit"`, default
    /// [`crate::DEFAULT_HISTORY_LIMIT`]).
    pub history_limit: u32,
}

impl PostgresConfig {
    /// Defaults (port 5432, database and user `plexus`, `sslmode` verify-full, 10 s) for
    /// `host`.
    pub fn new(host: impl Into<String>) -> Self {
        PostgresConfig {
            host: host.into(),
            port: DEFAULT_PG_PORT,
            dbname: "plexus".into(),
            user: "plexus".into(),
            password: None,
            sslmode: SslMode::default(),
            ca_file: None,
            cert_file: None,
            key_file: None,
            timeout: DEFAULT_PG_TIMEOUT,
            layout: Layout::default(),
            history_limit: crate::records::DEFAULT_HISTORY_LIMIT,
        }
    }

    /// `host:port` (or the socket directory), for messages.
    pub fn endpoint(&self) -> String {
        if self.host.starts_with('/') {
            format!("{}/.s.PGSQL.{}", self.host, self.port)
        } else if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

/// Where the password comes from.
#[derive(Clone, PartialEq, Eq)]
pub enum PasswordSource {
    /// Read from this file on every connection; one trailing line break is ignored.
    File(PathBuf),
    /// Given inline in the configuration (discouraged; never printed).
    Inline(Secret),
}

impl fmt::Debug for PasswordSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PasswordSource::File(path) => f.debug_tuple("File").field(path).finish(),
            PasswordSource::Inline(secret) => f.debug_tuple("Inline").field(secret).finish(),
        }
    }
}

/// libpq's `sslmode` values. Unlike libpq, a certificate is ALWAYS verified when TLS is
/// used: `prefer` and `require` check it like `verify-full`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum SslMode {
    /// Plain TCP.
    Disable,
    /// TLS when the server offers it (verified like `verify-full`), plain TCP otherwise.
    Prefer,
    /// TLS or fail; the certificate is verified like `verify-full`.
    Require,
    /// TLS; the certificate chain is verified against the CA, the host name is not.
    VerifyCa,
    /// TLS; chain and host name (or IP address) are verified. The default: a store that
    /// hands out addresses must not be reachable through a man in the middle.
    #[default]
    VerifyFull,
}

impl SslMode {
    /// The configuration spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            SslMode::Disable => "disable",
            SslMode::Prefer => "prefer",
            SslMode::Require => "require",
            SslMode::VerifyCa => "verify-ca",
            SslMode::VerifyFull => "verify-full",
        }
    }
}

/// Which tables hold the allocations.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Layout {
    /// plexus's own versioned schema (`plexus_*` tables).
    #[default]
    Native,
    /// The `ips` table of the CNI 1.1 talk's IPAM plugin (`"layout": "ips-table"`, also
    /// spelled `"cni-1.1-talk"`): one network, one address per container.
    IpsTable,
}

impl Layout {
    /// The spelling of the layout in the configuration.
    pub fn as_str(self) -> &'static str {
        match self {
            Layout::Native => "native",
            Layout::IpsTable => "ips-table",
        }
    }
}

/// Parses the `"store"` object whose `type` is `postgres`.
pub(crate) fn parse(object: &Map<String, Value>) -> Result<PostgresConfig, StoreError> {
    let mut host = None;
    let mut cfg = PostgresConfig::new(String::new());
    let mut password_file = None;
    let mut inline_password = None;
    for (name, value) in object {
        let field = format!("ipam.store.{name}");
        match name.as_str() {
            "type" => {}
            "host" => host = Some(non_empty_string(&field, value)?),
            "port" => cfg.port = parse_port(&field, value)?,
            "dbname" => cfg.dbname = non_empty_string(&field, value)?,
            "user" => cfg.user = non_empty_string(&field, value)?,
            "password_file" => password_file = Some(absolute_path(&field, value)?),
            // Never echo the value: it is a secret.
            "password" => match value {
                Value::String(s) => inline_password = Some(Secret::new(s.as_str())),
                other => {
                    return Err(StoreError::config(
                        field,
                        format!("must be a string, found {}", json_kind(other)),
                    ));
                }
            },
            "sslmode" => cfg.sslmode = parse_sslmode(&field, value)?,
            "ca_file" => cfg.ca_file = Some(absolute_path(&field, value)?),
            "cert_file" => cfg.cert_file = Some(absolute_path(&field, value)?),
            "key_file" => cfg.key_file = Some(absolute_path(&field, value)?),
            "timeout_ms" => cfg.timeout = parse_timeout(&field, value)?,
            "layout" => cfg.layout = parse_layout(&field, value)?,
            "history_limit" => {
                cfg.history_limit = crate::records::parse_history_limit(&field, value)?;
            }
            _ => {
                return Err(StoreError::config(
                    field,
                    format!("unknown key for the postgres store (known: {KNOWN_KEYS})"),
                ));
            }
        }
    }
    cfg.host = host.ok_or_else(|| {
        StoreError::config(
            "ipam.store.host",
            "is required for the postgres store (a host name, an IP address or a Unix \
             socket directory)",
        )
    })?;
    cfg.password = match (password_file, inline_password) {
        (Some(_), Some(_)) => {
            return Err(StoreError::config(
                "ipam.store.password",
                "give either password_file or password, not both (password_file is preferred)",
            ));
        }
        (Some(path), None) => Some(PasswordSource::File(path)),
        (None, Some(secret)) => Some(PasswordSource::Inline(secret)),
        (None, None) => None,
    };
    match (&cfg.cert_file, &cfg.key_file) {
        (Some(_), None) => {
            return Err(StoreError::config(
                "ipam.store.key_file",
                "is required with cert_file",
            ));
        }
        (None, Some(_)) => {
            return Err(StoreError::config(
                "ipam.store.cert_file",
                "is required with key_file",
            ));
        }
        _ => {}
    }
    let tls_files = cfg.ca_file.is_some() || cfg.cert_file.is_some();
    if cfg.sslmode == SslMode::Disable && tls_files {
        return Err(StoreError::config(
            "ipam.store.sslmode",
            "is \"disable\" but ca_file/cert_file are set: choose a TLS mode or drop the files",
        ));
    }
    Ok(cfg)
}

fn non_empty_string(field: &str, value: &Value) -> Result<String, StoreError> {
    match value {
        Value::String(s) if !s.is_empty() => Ok(s.clone()),
        Value::String(_) => Err(StoreError::config(field, "must not be empty")),
        other => Err(StoreError::config(
            field,
            format!("must be a string, found {}", json_kind(other)),
        )),
    }
}

fn absolute_path(field: &str, value: &Value) -> Result<PathBuf, StoreError> {
    common::absolute(field, PathBuf::from(non_empty_string(field, value)?))
}

fn parse_port(field: &str, value: &Value) -> Result<u16, StoreError> {
    match value.as_u64().and_then(|p| u16::try_from(p).ok()) {
        Some(port) if port > 0 => Ok(port),
        _ => Err(StoreError::config(
            field,
            format!("must be an integer from 1 to 65535, found {value}"),
        )),
    }
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

fn parse_sslmode(field: &str, value: &Value) -> Result<SslMode, StoreError> {
    let modes = [
        SslMode::Disable,
        SslMode::Prefer,
        SslMode::Require,
        SslMode::VerifyCa,
        SslMode::VerifyFull,
    ];
    let wanted = value.as_str().map(str::to_ascii_lowercase);
    modes
        .into_iter()
        .find(|mode| wanted.as_deref() == Some(mode.as_str()))
        .ok_or_else(|| {
            StoreError::config(
                field,
                format!(
                    "must be one of \"disable\", \"prefer\", \"require\", \"verify-ca\", \
                     \"verify-full\", found {value}"
                ),
            )
        })
}

fn parse_layout(field: &str, value: &Value) -> Result<Layout, StoreError> {
    match value.as_str() {
        Some("native") => Ok(Layout::Native),
        // The old spelling, after the talk that introduced the table: still accepted.
        Some("ips-table" | "cni-1.1-talk") => Ok(Layout::IpsTable),
        _ => Err(StoreError::config(
            field,
            format!("must be \"native\" or \"ips-table\", found {value}"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse_value(v: Value) -> Result<PostgresConfig, StoreError> {
        match v {
            Value::Object(object) => parse(&object),
            other => panic!("test input must be an object, got {other}"),
        }
    }

    fn field_of(err: StoreError) -> String {
        match err {
            StoreError::Config { field, .. } => field,
            other => panic!("expected a Config error, got {other:?}"),
        }
    }

    #[test]
    fn full_object() {
        let cfg = parse_value(json!({
            "type": "postgres", "host": "db.example", "port": 6432, "dbname": "ipam",
            "user": "cni", "password_file": "/etc/plexus/pg", "sslmode": "verify-full",
            "ca_file": "/etc/plexus/ca.pem", "cert_file": "/etc/plexus/c.pem",
            "key_file": "/etc/plexus/k.pem", "timeout_ms": 2500, "layout": "ips-table"
        }))
        .unwrap();
        assert_eq!(cfg.host, "db.example");
        assert_eq!(cfg.port, 6432);
        assert_eq!(cfg.dbname, "ipam");
        assert_eq!(cfg.user, "cni");
        assert_eq!(
            cfg.password,
            Some(PasswordSource::File("/etc/plexus/pg".into()))
        );
        assert_eq!(cfg.sslmode, SslMode::VerifyFull);
        assert_eq!(cfg.ca_file, Some(PathBuf::from("/etc/plexus/ca.pem")));
        assert_eq!(cfg.cert_file, Some(PathBuf::from("/etc/plexus/c.pem")));
        assert_eq!(cfg.key_file, Some(PathBuf::from("/etc/plexus/k.pem")));
        assert_eq!(cfg.timeout, Duration::from_millis(2500));
        assert_eq!(cfg.layout, Layout::IpsTable);
        assert_eq!(cfg.endpoint(), "db.example:6432");
    }

    #[test]
    fn the_old_layout_spelling_is_an_alias() {
        let cfg = parse_value(json!({"host": "h", "layout": "cni-1.1-talk"})).unwrap();
        assert_eq!(cfg.layout, Layout::IpsTable);
        assert_eq!(cfg.layout.as_str(), "ips-table");
        assert_eq!(Layout::Native.as_str(), "native");
    }

    #[test]
    fn defaults_need_only_a_host() {
        let cfg = parse_value(json!({"type": "postgres", "host": "10.1.2.3"})).unwrap();
        assert_eq!(cfg, PostgresConfig::new("10.1.2.3"));
        assert_eq!(cfg.port, 5432);
        // TLS with chain and host-name verification unless the config says otherwise.
        assert_eq!(cfg.sslmode, SslMode::VerifyFull);
        assert_eq!(cfg.timeout, DEFAULT_PG_TIMEOUT);
        assert_eq!(cfg.layout, Layout::Native);
        assert_eq!(cfg.password, None);
    }

    #[test]
    fn endpoints_of_ipv6_and_sockets() {
        assert_eq!(PostgresConfig::new("fd00::5").endpoint(), "[fd00::5]:5432");
        assert_eq!(
            PostgresConfig::new("/run/postgresql").endpoint(),
            "/run/postgresql/.s.PGSQL.5432"
        );
    }

    #[test]
    fn inline_password_is_accepted_and_never_printed() {
        let cfg = parse_value(json!({"host": "h", "password": "hunter2-secret"})).unwrap();
        assert_eq!(
            cfg.password,
            Some(PasswordSource::Inline(Secret::new("hunter2-secret")))
        );
        let debug = format!("{cfg:?} {cfg:#?}");
        assert!(!debug.contains("hunter2"), "{debug}");
        assert!(debug.contains("<redacted>"), "{debug}");
    }

    #[test]
    fn a_bad_password_value_is_not_echoed() {
        let err = parse_value(json!({"host": "h", "password": ["hunter2-secret"]})).unwrap_err();
        assert!(!format!("{err} {err:?}").contains("hunter2"), "{err:?}");
        assert_eq!(field_of(err), "ipam.store.password");
    }

    #[test]
    fn errors_name_the_field() {
        let cases = [
            (json!({}), "ipam.store.host"),
            (json!({"host": ""}), "ipam.store.host"),
            (json!({"host": 5}), "ipam.store.host"),
            (json!({"host": "h", "port": 0}), "ipam.store.port"),
            (json!({"host": "h", "port": 70000}), "ipam.store.port"),
            (json!({"host": "h", "port": "5432"}), "ipam.store.port"),
            (json!({"host": "h", "dbname": ""}), "ipam.store.dbname"),
            (
                json!({"host": "h", "password_file": "pw"}),
                "ipam.store.password_file",
            ),
            (
                json!({"host": "h", "password_file": "/pw", "password": "x"}),
                "ipam.store.password",
            ),
            (
                json!({"host": "h", "sslmode": "allow"}),
                "ipam.store.sslmode",
            ),
            (
                json!({"host": "h", "sslmode": "disable", "ca_file": "/ca.pem"}),
                "ipam.store.sslmode",
            ),
            (
                json!({"host": "h", "cert_file": "/c.pem"}),
                "ipam.store.key_file",
            ),
            (
                json!({"host": "h", "key_file": "/k.pem"}),
                "ipam.store.cert_file",
            ),
            (
                json!({"host": "h", "timeout_ms": 0}),
                "ipam.store.timeout_ms",
            ),
            (
                json!({"host": "h", "timeout_ms": 600_001}),
                "ipam.store.timeout_ms",
            ),
            (
                json!({"host": "h", "layout": "whereabouts"}),
                "ipam.store.layout",
            ),
            (json!({"host": "h", "hots": "x"}), "ipam.store.hots"),
        ];
        for (value, field) in cases {
            let err = parse_value(value.clone()).unwrap_err();
            assert_eq!(field_of(err), field, "for {value}");
        }
    }

    #[test]
    fn sslmode_is_case_insensitive() {
        let cfg = parse_value(json!({"host": "h", "sslmode": "Verify-CA"})).unwrap();
        assert_eq!(cfg.sslmode, SslMode::VerifyCa);
    }
}
