//! The `"store"` object of the IPAM configuration.
//!
//! ```json
//! "store": {"type": "sqlite", "path": "/var/lib/plexus/plexus.db",
//!           "busy_timeout_ms": 10000, "synchronous": "normal"}
//! ```
//! An absent (or `null`) object means SQLite at [`DEFAULT_SQLITE_PATH`]; an absent `type`
//! means `sqlite`. Unknown types and unknown keys are refused, naming the offending field,
//! so a typo never silently falls back to a default store.

use std::path::PathBuf;
use std::time::Duration;

use serde_json::{Map, Value};

use crate::common::{absolute_path as parse_path, json_kind};
use crate::error::StoreError;

/// Where the embedded SQLite store lives when the configuration names none.
pub const DEFAULT_SQLITE_PATH: &str = "/var/lib/plexus/plexus.db";

/// How long a SQLite writer waits for another process's lock by default.
pub const DEFAULT_BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// Longest accepted `busy_timeout_ms`: a CNI call must not hang for much longer.
const MAX_BUSY_TIMEOUT_MS: u64 = 600_000;

/// Whether opening a store may create it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OpenMode {
    /// Create what is missing (a SQLite file and its directory; a schema): what a write —
    /// a plugin's ADD, `plexusctl network create`, an import — does.
    #[default]
    CreateIfMissing,
    /// The store must exist already: a missing or empty SQLite file is refused and nothing
    /// is created, so a mistyped path never reads as an empty store. PostgreSQL and etcd
    /// have nothing to create on the filesystem; they open as they always do.
    MustExist,
}

/// Which store backend to use and how to reach it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreConfig {
    /// The embedded SQLite database (the default).
    Sqlite(SqliteConfig),
    /// A PostgreSQL server shared by the cluster.
    Postgres(crate::postgres::PostgresConfig),
    /// An etcd v3 cluster shared by the cluster's nodes.
    Etcd(crate::etcd::EtcdConfig),
}

/// SQLite `synchronous` setting (durability of commits, see [`SqliteConfig::synchronous`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Synchronous {
    /// `NORMAL`: in WAL mode a commit survives a crash of any process; after a power loss
    /// or kernel panic the last few commits may be rolled back (the database stays
    /// consistent). Fast: no fsync per commit.
    #[default]
    Normal,
    /// `FULL`: every commit is fsynced and survives power loss, at the cost of one fsync
    /// per claim/release.
    Full,
}

impl Synchronous {
    /// The value for `PRAGMA synchronous`.
    pub fn pragma_value(self) -> &'static str {
        match self {
            Synchronous::Normal => "NORMAL",
            Synchronous::Full => "FULL",
        }
    }
}

/// Settings of the SQLite backend.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SqliteConfig {
    /// Database file; its parent directory is created (mode 0700) and the file created with
    /// mode 0600 when missing.
    pub path: PathBuf,
    /// How long a writer waits for another process's lock before giving up.
    pub busy_timeout: Duration,
    /// Commit durability.
    ///
    /// The default, [`Synchronous::Normal`], is safe against any process crash. A power
    /// loss can roll back the last commits; on a node-local store the containers that held
    /// those addresses are gone after the power loss as well, so nothing is handed out twice
    /// among running containers. Choose [`Synchronous::Full`] when the database outlives the
    /// node's containers (e.g. on shared storage).
    pub synchronous: Synchronous,
    /// History events kept per network (`"history_limit"`, default
    /// [`crate::DEFAULT_HISTORY_LIMIT`]).
    pub history_limit: u32,
}

impl SqliteConfig {
    /// Defaults for a database at `path`.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        SqliteConfig {
            path: path.into(),
            busy_timeout: DEFAULT_BUSY_TIMEOUT,
            synchronous: Synchronous::default(),
            history_limit: crate::records::DEFAULT_HISTORY_LIMIT,
        }
    }
}

impl Default for SqliteConfig {
    fn default() -> Self {
        SqliteConfig::new(DEFAULT_SQLITE_PATH)
    }
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig::Sqlite(SqliteConfig::default())
    }
}

impl StoreConfig {
    /// Where the store is, for messages: the SQLite file, the PostgreSQL endpoint and
    /// database, or the etcd endpoints. Never a credential.
    pub fn location(&self) -> String {
        match self {
            StoreConfig::Sqlite(sqlite) => sqlite.path.display().to_string(),
            StoreConfig::Postgres(pg) => format!("postgres {}/{}", pg.endpoint(), pg.dbname),
            StoreConfig::Etcd(etcd) => format!("etcd {}", etcd.endpoints.join(",")),
        }
    }

    /// The same configuration with every store timeout capped at `limit`, for calls that
    /// must answer quickly whatever the store does (CNI STATUS).
    #[must_use]
    pub fn with_timeout(self, limit: Duration) -> StoreConfig {
        match self {
            StoreConfig::Sqlite(mut sqlite) => {
                sqlite.busy_timeout = sqlite.busy_timeout.min(limit);
                StoreConfig::Sqlite(sqlite)
            }
            StoreConfig::Postgres(mut pg) => {
                pg.timeout = pg.timeout.min(limit);
                StoreConfig::Postgres(pg)
            }
            StoreConfig::Etcd(mut etcd) => {
                etcd.timeout = etcd.timeout.min(limit);
                StoreConfig::Etcd(etcd)
            }
        }
    }

    /// The deadline the configuration gives one store call: `busy_timeout_ms` for SQLite,
    /// `timeout_ms` for PostgreSQL and etcd (default 10 s each). Callers that retry
    /// transient errors stop retrying at this deadline too.
    pub fn deadline(&self) -> Duration {
        match self {
            StoreConfig::Sqlite(sqlite) => sqlite.busy_timeout,
            StoreConfig::Postgres(pg) => pg.timeout,
            StoreConfig::Etcd(etcd) => etcd.timeout,
        }
    }

    /// Parses the `"store"` object of the IPAM configuration (`None` when it is absent).
    pub fn from_json(v: Option<&Value>) -> Result<StoreConfig, StoreError> {
        let object = match v {
            None | Some(Value::Null) => return Ok(StoreConfig::default()),
            Some(Value::Object(object)) => object,
            Some(other) => {
                return Err(StoreError::config(
                    "ipam.store",
                    format!("must be an object, found {}", json_kind(other)),
                ));
            }
        };
        let store_type = match object.get("type") {
            None | Some(Value::Null) => "sqlite",
            Some(Value::String(s)) => s.as_str(),
            Some(other) => {
                return Err(StoreError::config(
                    "ipam.store.type",
                    format!("must be a string, found {}", json_kind(other)),
                ));
            }
        };
        match store_type {
            "sqlite" => parse_sqlite(object).map(StoreConfig::Sqlite),
            "postgres" => crate::postgres::parse_config(object).map(StoreConfig::Postgres),
            "etcd" => crate::etcd::parse_config(object).map(StoreConfig::Etcd),
            other => Err(StoreError::config(
                "ipam.store.type",
                format!(
                    "unknown store type {other:?} (supported: \"sqlite\", \"postgres\", \"etcd\")"
                ),
            )),
        }
    }
}

fn parse_sqlite(object: &Map<String, Value>) -> Result<SqliteConfig, StoreError> {
    let mut cfg = SqliteConfig::default();
    for (name, value) in object {
        let field = format!("ipam.store.{name}");
        match name.as_str() {
            "type" => {}
            "path" => cfg.path = parse_path(&field, value)?,
            "busy_timeout_ms" => cfg.busy_timeout = parse_busy_timeout(&field, value)?,
            "synchronous" => cfg.synchronous = parse_synchronous(&field, value)?,
            "history_limit" => {
                cfg.history_limit = crate::records::parse_history_limit(&field, value)?;
            }
            _ => {
                return Err(StoreError::config(
                    field,
                    "unknown key for the sqlite store (known: type, path, busy_timeout_ms, \
                     synchronous, history_limit)",
                ));
            }
        }
    }
    Ok(cfg)
}

fn parse_busy_timeout(field: &str, value: &Value) -> Result<Duration, StoreError> {
    match value.as_u64() {
        Some(ms) if ms <= MAX_BUSY_TIMEOUT_MS => Ok(Duration::from_millis(ms)),
        _ => Err(StoreError::config(
            field,
            format!(
                "must be an integer from 0 to {MAX_BUSY_TIMEOUT_MS} (milliseconds), found {value}"
            ),
        )),
    }
}

fn parse_synchronous(field: &str, value: &Value) -> Result<Synchronous, StoreError> {
    match value.as_str().map(str::to_ascii_lowercase).as_deref() {
        Some("normal") => Ok(Synchronous::Normal),
        Some("full") => Ok(Synchronous::Full),
        _ => Err(StoreError::config(
            field,
            format!("must be \"normal\" or \"full\", found {value}"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn field_of(err: StoreError) -> String {
        match err {
            StoreError::Config { field, .. } => field,
            other => panic!("expected a Config error, got {other:?}"),
        }
    }

    #[test]
    fn absent_or_null_is_default_sqlite() {
        let expected = StoreConfig::Sqlite(SqliteConfig::new(DEFAULT_SQLITE_PATH));
        assert_eq!(StoreConfig::from_json(None).unwrap(), expected);
        assert_eq!(
            StoreConfig::from_json(Some(&Value::Null)).unwrap(),
            expected
        );
    }

    #[test]
    fn full_sqlite_object() {
        let v = json!({"type": "sqlite", "path": "/tmp/x.db", "busy_timeout_ms": 2500,
                       "synchronous": "full"});
        let StoreConfig::Sqlite(cfg) = StoreConfig::from_json(Some(&v)).unwrap() else {
            panic!("expected sqlite")
        };
        assert_eq!(cfg.path, PathBuf::from("/tmp/x.db"));
        assert_eq!(cfg.busy_timeout, Duration::from_millis(2500));
        assert_eq!(cfg.synchronous, Synchronous::Full);
    }

    #[test]
    fn type_defaults_to_sqlite_and_keeps_defaults() {
        let v = json!({"path": "/srv/p.db"});
        let StoreConfig::Sqlite(cfg) = StoreConfig::from_json(Some(&v)).unwrap() else {
            panic!("expected sqlite")
        };
        assert_eq!(cfg.path, PathBuf::from("/srv/p.db"));
        assert_eq!(cfg.busy_timeout, DEFAULT_BUSY_TIMEOUT);
        assert_eq!(cfg.synchronous, Synchronous::Normal);
    }

    #[test]
    fn unknown_type_is_named() {
        let err = StoreConfig::from_json(Some(&json!({"type": "redis"}))).unwrap_err();
        assert!(err.to_string().contains("\"redis\""), "{err}");
        assert_eq!(field_of(err), "ipam.store.type");
    }

    #[test]
    fn unknown_key_is_named() {
        let err =
            StoreConfig::from_json(Some(&json!({"type": "sqlite", "pth": "/x"}))).unwrap_err();
        assert_eq!(field_of(err), "ipam.store.pth");
    }

    #[test]
    fn bad_values_are_refused() {
        let cases = [
            (json!("sqlite"), "ipam.store"),
            (json!({"type": 1}), "ipam.store.type"),
            (json!({"path": "relative.db"}), "ipam.store.path"),
            (json!({"path": 5}), "ipam.store.path"),
            (json!({"busy_timeout_ms": -1}), "ipam.store.busy_timeout_ms"),
            (
                json!({"busy_timeout_ms": "10"}),
                "ipam.store.busy_timeout_ms",
            ),
            (
                json!({"busy_timeout_ms": 600_001}),
                "ipam.store.busy_timeout_ms",
            ),
            (json!({"synchronous": "off"}), "ipam.store.synchronous"),
        ];
        for (value, field) in cases {
            let err = StoreConfig::from_json(Some(&value)).unwrap_err();
            assert_eq!(field_of(err), field, "for {value}");
        }
    }

    #[test]
    fn deadline_is_the_configured_timeout_of_each_backend() {
        let sqlite = json!({"busy_timeout_ms": 2500});
        let pg = json!({"type": "postgres", "host": "db", "timeout_ms": 1500});
        let etcd = json!({"type": "etcd", "endpoints": ["http://e:2379"], "timeout_ms": 700});
        for (value, ms) in [(sqlite, 2500), (pg, 1500), (etcd, 700)] {
            let cfg = StoreConfig::from_json(Some(&value)).unwrap();
            assert_eq!(cfg.deadline(), Duration::from_millis(ms), "{value}");
        }
        assert_eq!(StoreConfig::default().deadline(), DEFAULT_BUSY_TIMEOUT);
    }

    #[test]
    fn synchronous_is_case_insensitive() {
        let StoreConfig::Sqlite(cfg) =
            StoreConfig::from_json(Some(&json!({"synchronous": "NORMAL"}))).unwrap()
        else {
            panic!("expected sqlite")
        };
        assert_eq!(cfg.synchronous, Synchronous::Normal);
    }
}
