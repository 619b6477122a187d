//! Where plexusctl finds its store, network definitions and output format: flags, env,
//! the settings file (`plexusctl.yaml`), then defaults, in that order.
//!
//! ```yaml
//! # /etc/plexus/plexusctl.yaml
//! store: {type: sqlite, path: /var/lib/plexus/plexus.db}   # or a bare database path
//! output: table                                            # table | json | yaml
//! cni_conf_dir: /etc/cni/net.d
//! networks: [/etc/plexus/networks.yaml]                    # network definition files
//! ```

use std::path::{Path, PathBuf};

use plexus_store::{SqliteConfig, StoreConfig};
use serde::Deserialize;
use serde_json::Value;

use crate::cli::{Opts, OutputFormat};
use crate::error::{CtlError, CtlResult};

/// The settings file read when `--config` and `PLEXUSCTL_CONFIG` are absent, if it exists.
pub const DEFAULT_SETTINGS_PATH: &str = "/etc/plexus/plexusctl.yaml";
/// The CNI configuration directory when nothing else names one.
pub const DEFAULT_CNI_CONF_DIR: &str = "/etc/cni/net.d";

/// The contents of `plexusctl.yaml`. Unknown keys are refused so typos are not ignored.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SettingsFile {
    /// The store: an object as in the IPAM config, or a SQLite database path.
    pub store: Option<Value>,
    /// Default output format.
    pub output: Option<OutputFormat>,
    /// CNI configuration directory.
    pub cni_conf_dir: Option<PathBuf>,
    /// Network definition files.
    #[serde(default)]
    pub networks: Vec<PathBuf>,
}

/// Everything a command needs to know about its environment, resolved once.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The store to open.
    pub store: StoreConfig,
    /// How to print results.
    pub output: OutputFormat,
    /// CNI configuration directory scanned for plexus-ipam networks.
    pub cni_conf_dir: PathBuf,
    /// Network definition files, flags first.
    pub network_files: Vec<PathBuf>,
}

impl Settings {
    /// Resolves flags, env (already folded into `opts` by clap) and the settings file.
    pub fn resolve(opts: &Opts) -> CtlResult<Settings> {
        let file = match &opts.config {
            Some(path) => read_settings_file(path)?,
            None if Path::new(DEFAULT_SETTINGS_PATH).exists() => {
                read_settings_file(Path::new(DEFAULT_SETTINGS_PATH))?
            }
            None => SettingsFile::default(),
        };
        let store = match (&opts.store, &file.store) {
            (Some(flag), _) => parse_store_flag(flag)?,
            (None, Some(value)) => store_from_value("store (settings file)", value)?,
            (None, None) => StoreConfig::default(),
        };
        let mut network_files = opts.network_files.clone();
        network_files.extend(file.networks);
        Ok(Settings {
            store,
            output: opts.output.or(file.output).unwrap_or(OutputFormat::Table),
            cni_conf_dir: opts
                .cni_conf_dir
                .clone()
                .or(file.cni_conf_dir)
                .unwrap_or_else(|| PathBuf::from(DEFAULT_CNI_CONF_DIR)),
            network_files,
        })
    }
}

fn read_settings_file(path: &Path) -> CtlResult<SettingsFile> {
    let text = std::fs::read_to_string(path).map_err(|e| CtlError::io(path, e))?;
    serde_norway::from_str::<Option<SettingsFile>>(&text)
        .map(Option::unwrap_or_default)
        .map_err(|e| CtlError::invalid(path.display().to_string(), e.to_string()))
}

/// Parses `--store`: inline JSON, a store URL ([`crate::store_url`]), a store config file
/// (JSON or YAML), or a SQLite database. A file that is none of these (an export, a
/// network definition) is refused as such.
pub fn parse_store_flag(flag: &str) -> CtlResult<StoreConfig> {
    let trimmed = flag.trim_start();
    if trimmed.is_empty() {
        return Err(CtlError::invalid(
            "--store",
            "is empty: give a database file, a store URL, a store config file or inline JSON",
        ));
    }
    if trimmed.starts_with('{') {
        let value: Value = serde_json::from_str(trimmed)
            .map_err(|e| CtlError::invalid("--store", format!("invalid JSON: {e}")))?;
        refuse_inline_password(&value)?;
        return store_from_value("--store", &value);
    }
    if let Some(value) = crate::store_url::parse("--store", flag)? {
        return store_from_value("--store", &value);
    }
    let path = absolute(Path::new(flag))?;
    if is_config_file(&path) {
        let text = std::fs::read_to_string(&path).map_err(|e| CtlError::io(&path, e))?;
        let value: Value = serde_norway::from_str(&text)
            .map_err(|e| CtlError::invalid(path.display().to_string(), e.to_string()))?;
        return store_from_file_value(&path, &value);
    }
    refuse_other_files(&path)?;
    Ok(StoreConfig::Sqlite(SqliteConfig::new(path)))
}

/// The store of a config file's contents: its `"store"` object, also inside a whole IPAM
/// section or netconf, or the object itself. A document of another kind is refused.
fn store_from_file_value(path: &Path, value: &Value) -> CtlResult<StoreConfig> {
    let what = path.display().to_string();
    let store = value
        .get("store")
        .or_else(|| value.get("ipam").and_then(|ipam| ipam.get("store")));
    if let Some(store) = store {
        return store_from_value(&what, store);
    }
    if let Some(refusal) = not_a_store(path, value) {
        return Err(CtlError::invalid(what, refusal));
    }
    store_from_value(&what, value)
}

/// Why a parsed document is not a store configuration, when it has a `kind` (or
/// `apiVersion`) of its own: an export, network definitions, a Kubernetes object.
fn not_a_store(path: &Path, doc: &Value) -> Option<String> {
    let kind = doc
        .get("kind")
        .and_then(Value::as_str)
        .or_else(|| doc.get("apiVersion").map(|_| "(no kind)"))?;
    let hint = match kind {
        crate::import::native::EXPORT_KIND => format!(
            "; load it into a store with plexusctl import {}",
            path.display()
        ),
        "DanmNet" | "ClusterNetwork" | "TenantNetwork" | "List" => format!(
            "; store its networks with plexusctl network create -f {}, or read it with \
             --networks {}",
            path.display(),
            path.display()
        ),
        _ => String::new(),
    };
    Some(format!(
        "is a {kind} document, not a store or store configuration{hint}"
    ))
}

/// Refuses an existing file that is no SQLite database: a text document (YAML or JSON) is
/// named for what it is. A missing file, a directory or an empty file is left to the store,
/// which names them.
fn refuse_other_files(path: &Path) -> CtlResult<()> {
    use std::io::Read;
    let Ok(mut file) = std::fs::File::open(path) else {
        return Ok(());
    };
    let mut head = [0u8; 16];
    let n = file.read(&mut head).unwrap_or(0);
    if n == 0 || path.is_dir() || head[..n] == b"SQLite format 3\0"[..n] {
        return Ok(());
    }
    let what = path.display().to_string();
    let mut text = String::from_utf8_lossy(&head[..n]).into_owned();
    if file.read_to_string(&mut text).is_ok()
        && let Ok(doc) = serde_norway::from_str::<Value>(&text)
        && let Some(refusal) = not_a_store(path, &doc)
    {
        return Err(CtlError::invalid(what, refusal));
    }
    Err(CtlError::invalid(
        what,
        "is not a SQLite database (nor a store config: those end in .json, .yaml or .yml)",
    ))
}

/// Refuses a `password` in inline `--store` JSON: the command line is readable by every
/// user through `ps` and `/proc/PID/cmdline`. A config file (mode 0600) may keep one.
fn refuse_inline_password(value: &Value) -> CtlResult<()> {
    let store = value
        .get("store")
        .or_else(|| value.get("ipam").and_then(|ipam| ipam.get("store")))
        .unwrap_or(value);
    if store.get("password").is_some() {
        return Err(CtlError::invalid(
            "--store",
            "an inline \"password\" is refused because the command line is visible to every \
             user (ps, /proc/PID/cmdline); put the password in a file and name it with \
             \"password_file\", or pass --store a config file (JSON or YAML) instead",
        ));
    }
    Ok(())
}

/// A store given as a settings value: a bare string is a store URL or a SQLite path, an
/// object is parsed like the IPAM config's `"store"`.
fn store_from_value(what: &str, value: &Value) -> CtlResult<StoreConfig> {
    match value {
        Value::String(text) => match crate::store_url::parse(what, text)? {
            Some(Value::String(path)) => Ok(StoreConfig::Sqlite(SqliteConfig::new(absolute(
                Path::new(&path),
            )?))),
            Some(object) => store_from_value(what, &object),
            None if text.trim().is_empty() => Err(CtlError::invalid(what, "is empty")),
            None => Ok(StoreConfig::Sqlite(SqliteConfig::new(absolute(
                Path::new(text),
            )?))),
        },
        other => StoreConfig::from_json(Some(other))
            .map_err(|e| CtlError::invalid(what.to_string(), e.to_string())),
    }
}

/// Whether `path` holds a store configuration rather than being the database itself.
fn is_config_file(path: &Path) -> bool {
    let by_name = path
        .extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| matches!(e, "json" | "yaml" | "yml" | "conf" | "conflist"));
    by_name && !starts_with_sqlite_magic(path)
}

fn starts_with_sqlite_magic(path: &Path) -> bool {
    use std::io::Read;
    let mut magic = [0u8; 16];
    std::fs::File::open(path)
        .and_then(|mut f| f.read_exact(&mut magic))
        .is_ok_and(|()| &magic == b"SQLite format 3\0")
}

/// `path` made absolute against the working directory (the store refuses relative paths,
/// which are fine on a command line).
fn absolute(path: &Path) -> CtlResult<PathBuf> {
    std::path::absolute(path)
        .map_err(|e| CtlError::invalid(path.display().to_string(), e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sqlite_path(cfg: &StoreConfig) -> PathBuf {
        match cfg {
            StoreConfig::Sqlite(sqlite) => sqlite.path.clone(),
            other => panic!("expected SQLite, got {other:?}"),
        }
    }

    #[test]
    fn store_flag_forms() {
        let dir = tempfile::tempdir().unwrap();
        // A database path, relative or absolute, existing or not.
        let db = dir.path().join("p.db");
        assert_eq!(
            sqlite_path(&parse_store_flag(db.to_str().unwrap()).unwrap()),
            db
        );
        let rel = sqlite_path(&parse_store_flag("rel.db").unwrap());
        assert!(rel.is_absolute() && rel.ends_with("rel.db"));
        // Inline JSON.
        let inline = format!(r#"{{"type":"sqlite","path":"{}"}}"#, db.display());
        assert_eq!(sqlite_path(&parse_store_flag(&inline).unwrap()), db);
        // A YAML config file, also as a whole IPAM section.
        let file = dir.path().join("store.yaml");
        std::fs::write(
            &file,
            format!("ipam:\n  store:\n    path: {}\n", db.display()),
        )
        .unwrap();
        assert_eq!(
            sqlite_path(&parse_store_flag(file.to_str().unwrap()).unwrap()),
            db
        );
    }

    #[test]
    fn urls_and_non_store_files() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(
            sqlite_path(&parse_store_flag("sqlite:///var/lib/x/p.db").unwrap()),
            PathBuf::from("/var/lib/x/p.db")
        );
        let pg = parse_store_flag("postgres://u@db/plexus?sslmode=disable").unwrap();
        assert_eq!(pg.location(), "postgres db:5432/plexus");
        let etcd = parse_store_flag("etcd://e1:2379,e2:2379").unwrap();
        assert_eq!(etcd.location(), "etcd http://e1:2379,http://e2:2379");
        let export = dir.path().join("backup.json");
        std::fs::write(
            &export,
            r#"{"kind":"PlexusExport","version":1,"allocations":[]}"#,
        )
        .unwrap();
        let err = parse_store_flag(export.to_str().unwrap())
            .unwrap_err()
            .to_string();
        assert!(err.contains("PlexusExport document, not a store"), "{err}");
        assert!(err.contains("plexusctl import"), "{err}");
        let nets = dir.path().join("nets");
        std::fs::write(&nets, "apiVersion: plexus.io/v1\nkind: ClusterNetwork\n").unwrap();
        let err = parse_store_flag(nets.to_str().unwrap())
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("ClusterNetwork document, not a store"),
            "{err}"
        );
        let text = dir.path().join("notes.db");
        std::fs::write(&text, "hello").unwrap();
        let err = parse_store_flag(text.to_str().unwrap())
            .unwrap_err()
            .to_string();
        assert!(err.contains("is not a SQLite database"), "{err}");
        assert!(
            parse_store_flag("")
                .unwrap_err()
                .to_string()
                .contains("empty")
        );
    }

    #[test]
    fn bad_store_flags_name_the_problem() {
        let err = parse_store_flag("{not json").unwrap_err();
        assert!(
            err.to_string().starts_with("--store: invalid JSON"),
            "{err}"
        );
        let err = parse_store_flag(r#"{"type":"redis"}"#).unwrap_err();
        assert!(err.to_string().contains("redis"), "{err}");
    }

    #[test]
    fn inline_json_with_a_password_is_refused_without_echoing_it() {
        for flag in [
            r#"{"type":"postgres","host":"db","password":"hunter2-argv"}"#,
            r#"{"type":"etcd","endpoints":["http://e:2379"],"username":"u","password":"hunter2-argv"}"#,
            r#"{"ipam":{"store":{"type":"postgres","host":"db","password":"hunter2-argv"}}}"#,
        ] {
            let err = parse_store_flag(flag).unwrap_err();
            let text = err.to_string();
            assert!(text.contains("password_file"), "{text}");
            assert!(text.contains("config file"), "{text}");
            assert!(!format!("{text} {err:?}").contains("hunter2"), "{text}");
        }
        // password_file inline is fine: the path is no secret.
        let ok = parse_store_flag(r#"{"type":"postgres","host":"db","password_file":"/etc/pw"}"#);
        assert!(ok.is_ok(), "{ok:?}");
    }

    #[test]
    fn a_store_config_file_may_keep_an_inline_password() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("store.json");
        std::fs::write(
            &file,
            r#"{"type":"postgres","host":"db","password":"hunter2-file","sslmode":"disable"}"#,
        )
        .unwrap();
        let cfg = parse_store_flag(file.to_str().unwrap()).unwrap();
        assert!(matches!(cfg, StoreConfig::Postgres(_)), "{cfg:?}");
        assert!(!format!("{cfg:?}").contains("hunter2"));
    }

    #[test]
    fn settings_file_refuses_unknown_keys() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("plexusctl.yaml");
        std::fs::write(&file, "stroe: /x.db\n").unwrap();
        let err = read_settings_file(&file).unwrap_err();
        assert!(err.to_string().contains("stroe"), "{err}");
        std::fs::write(&file, "output: json\nnetworks: [a.yaml]\n").unwrap();
        let parsed = read_settings_file(&file).unwrap();
        assert_eq!(parsed.output, Some(OutputFormat::Json));
        assert_eq!(parsed.networks, vec![PathBuf::from("a.yaml")]);
        std::fs::write(&file, "").unwrap();
        assert!(read_settings_file(&file).unwrap().networks.is_empty());
    }
}
