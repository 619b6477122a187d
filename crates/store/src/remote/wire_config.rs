//! [`StoreConfig::to_json`]: the configuration back in the `"store"` syntax, so the plugin
//! can name its store to the node agent with exactly what [`StoreConfig::from_json`] reads.

use serde_json::{Map, Value, json};

use crate::config::{SqliteConfig, StoreConfig};
use crate::etcd::EtcdConfig;
use crate::postgres::{Layout, PasswordSource, PostgresConfig};

impl StoreConfig {
    /// The configuration as a `"store"` object that [`StoreConfig::from_json`] parses back
    /// into an equal value.
    ///
    /// The object holds an inline password when the configuration has one: never log it.
    pub fn to_json(&self) -> Value {
        match self {
            StoreConfig::Sqlite(sqlite) => sqlite_json(sqlite),
            StoreConfig::Postgres(pg) => postgres_json(pg),
            StoreConfig::Etcd(etcd) => etcd_json(etcd),
        }
    }
}

fn millis(d: std::time::Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

fn sqlite_json(cfg: &SqliteConfig) -> Value {
    json!({
        "type": "sqlite",
        "path": cfg.path,
        "busy_timeout_ms": millis(cfg.busy_timeout),
        "synchronous": cfg.synchronous.pragma_value().to_ascii_lowercase(),
        "history_limit": cfg.history_limit,
    })
}

fn postgres_json(cfg: &PostgresConfig) -> Value {
    let mut object = Map::new();
    object.insert("type".into(), "postgres".into());
    object.insert("host".into(), cfg.host.clone().into());
    object.insert("port".into(), cfg.port.into());
    object.insert("dbname".into(), cfg.dbname.clone().into());
    object.insert("user".into(), cfg.user.clone().into());
    match &cfg.password {
        Some(PasswordSource::File(path)) => {
            object.insert("password_file".into(), json!(path));
        }
        Some(PasswordSource::Inline(secret)) => {
            object.insert("password".into(), secret.expose().into());
        }
        None => {}
    }
    object.insert("sslmode".into(), cfg.sslmode.as_str().into());
    insert_path(&mut object, "ca_file", cfg.ca_file.as_ref());
    insert_path(&mut object, "cert_file", cfg.cert_file.as_ref());
    insert_path(&mut object, "key_file", cfg.key_file.as_ref());
    object.insert("timeout_ms".into(), millis(cfg.timeout).into());
    // The old spelling of the ips-table layout, which agents of every release read (the
    // name "ips-table" is new): a plugin may meet an agent not yet upgraded.
    let layout = match cfg.layout {
        Layout::Native => Layout::Native.as_str(),
        Layout::IpsTable => "cni-1.1-talk",
    };
    object.insert("layout".into(), layout.into());
    object.insert("history_limit".into(), cfg.history_limit.into());
    Value::Object(object)
}

fn etcd_json(cfg: &EtcdConfig) -> Value {
    let mut object = Map::new();
    object.insert("type".into(), "etcd".into());
    object.insert("endpoints".into(), json!(cfg.endpoints));
    insert_path(&mut object, "ca_file", cfg.ca_file.as_ref());
    insert_path(&mut object, "cert_file", cfg.cert_file.as_ref());
    insert_path(&mut object, "key_file", cfg.key_file.as_ref());
    if let Some(user) = &cfg.username {
        object.insert("username".into(), user.clone().into());
    }
    insert_path(&mut object, "password_file", cfg.password_file.as_ref());
    if let Some(secret) = &cfg.password {
        object.insert("password".into(), secret.expose().into());
    }
    object.insert("prefix".into(), cfg.prefix.clone().into());
    object.insert("timeout_ms".into(), millis(cfg.timeout).into());
    object.insert("history_limit".into(), cfg.history_limit.into());
    if !cfg.require_absent.is_empty() {
        object.insert("require_absent".into(), json!(cfg.require_absent));
    }
    Value::Object(object)
}

fn insert_path(object: &mut Map<String, Value>, key: &str, path: Option<&std::path::PathBuf>) {
    if let Some(path) = path {
        object.insert(key.into(), json!(path));
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use serde_json::json;

    use crate::StoreConfig;

    #[test]
    fn every_backend_round_trips_through_its_json() {
        let inputs = [
            json!({"type": "sqlite", "path": "/tmp/a.db", "busy_timeout_ms": 1234,
                   "synchronous": "full", "history_limit": 7}),
            json!({}),
            json!({"type": "postgres", "host": "db", "port": 6543, "dbname": "d", "user": "u",
                   "password": "s3cret", "sslmode": "disable", "timeout_ms": 900,
                   "layout": "ips-table", "history_limit": 9}),
            json!({"type": "postgres", "host": "db", "password_file": "/etc/pw",
                   "sslmode": "verify-full", "ca_file": "/etc/ca.pem"}),
            json!({"type": "etcd", "endpoints": ["http://a:2379", "http://b:2379"],
                   "username": "root", "password": "pw", "prefix": "/x", "timeout_ms": 700}),
            json!({"type": "etcd", "endpoints": ["http://a:2379"],
                   "require_absent": ["/whereabouts/10.0.0.0/24"]}),
            json!({"type": "etcd", "endpoints": ["https://a:2379"], "ca_file": "/ca.pem",
                   "cert_file": "/c.pem", "key_file": "/k.pem", "username": "u",
                   "password_file": "/pw"}),
        ];
        for input in inputs {
            let cfg = StoreConfig::from_json(Some(&input)).unwrap();
            let back = StoreConfig::from_json(Some(&cfg.to_json())).unwrap();
            assert_eq!(back, cfg, "{input}");
            let capped = cfg.clone().with_timeout(Duration::from_millis(300));
            let back = StoreConfig::from_json(Some(&capped.to_json())).unwrap();
            assert_eq!(back, capped, "{input} capped");
        }
    }
}
