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

/// Parses `--store`: inline JSON, a store config file (JSON or YAML), or a SQLite database.
pub fn parse_store_flag(flag: &str) -> CtlResult<StoreConfig> {
    let trimmed = flag.trim_start();
    if trimmed.starts_with('{') {
        let value: Value = serde_json::from_str(trimmed)
            .map_err(|e| CtlError::invalid("--store", format!("invalid JSON: {e}")))?;
        refuse_inline_password(&value)?;
        return store_from_value("--store", &value);
    }
    let path = absolute(Path::new(flag))?;
    if is_config_file(&path) {
        let text = std::fs::read_to_string(&path).map_err(|e| CtlError::io(&path, e))?;
        let value: Value = serde_norway::from_str(&text)
            .map_err(|e| CtlError::invalid(path.display().to_string(), e.to_string()))?;
        // A whole IPAM section or netconf is accepted too: take its "store" object.
        let value = value
            .get("store")
            .or_else(|| value.get("ipam").and_then(|ipam| ipam.get("store")))
            .cloned()
            .unwrap_or(value);
        return store_from_value(&path.display().to_string(), &value);
    }
    Ok(StoreConfig::Sqlite(SqliteConfig::new(path)))
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

/// A store given as a settings value: a bare string is a SQLite path, an object is parsed
/// like the IPAM config's `"store"`.
fn store_from_value(what: &str, value: &Value) -> CtlResult<StoreConfig> {
    match value {
        Value::String(path) => Ok(StoreConfig::Sqlite(SqliteConfig::new(absolute(
            Path::new(path),
        )?))),
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
    std::path::absolute(path).map_err(|e| CtlError::io(path, e))
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
