//! The stores plexusctl runs against in end-to-end tests: SQLite always, PostgreSQL and
//! etcd under `scripts/with-servers` (skipped with a printed reason otherwise, a failure
//! when `PLEXUS_REQUIRE_SERVERS=1`).

use std::path::PathBuf;
use std::process::Command;

use plexus_test_support::servers::postgres::PgServer;
use plexus_test_support::servers::skip;
use serde_json::json;

use super::{Run, binary, run};

/// One store to run plexusctl against.
pub struct Backend {
    /// `sqlite`, `postgres` or `etcd`.
    pub label: &'static str,
    /// The `--store` value (JSON).
    pub store: String,
    /// Scratch space (files, the CNI configuration directory `net.d`).
    pub dir: tempfile::TempDir,
}

impl Backend {
    /// Runs plexusctl against this store.
    pub fn ctl(&self, args: &[&str]) -> Run {
        let conf_dir = self.dir.path().join("net.d");
        std::fs::create_dir_all(&conf_dir).unwrap();
        run(
            Command::new(binary())
                .arg("--store")
                .arg(&self.store)
                .arg("--cni-conf-dir")
                .arg(conf_dir)
                .args(args)
                .env_remove("PLEXUS_STORE")
                .env_remove("PLEXUSCTL_CONFIG")
                .env_remove("PLEXUS_LOG"),
            "",
        )
    }

    /// The CNI configuration directory plexusctl reads (`--cni-conf-dir`).
    pub fn conf_dir(&self) -> PathBuf {
        let dir = self.dir.path().join("net.d");
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    /// The store as the JSON value a plugin's `ipam.store` takes.
    pub fn store_json(&self) -> serde_json::Value {
        serde_json::from_str(&self.store).unwrap()
    }

    /// Writes `text` to `name` in the scratch space and returns its path.
    pub fn file(&self, name: &str, text: &str) -> PathBuf {
        let path = self.dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        path
    }
}

/// SQLite always; PostgreSQL and etcd when their servers are configured.
/// `test` must be unique per call (it names the PostgreSQL database and etcd prefix).
pub fn backends(test: &str) -> Vec<Backend> {
    let sqlite_dir = tempfile::tempdir().unwrap();
    let db = sqlite_dir.path().join("plexus.db");
    let mut all = vec![Backend {
        label: "sqlite",
        store: json!({"type": "sqlite", "path": db}).to_string(),
        dir: sqlite_dir,
    }];
    if let Some(server) = PgServer::shared(test) {
        let dbname = server.create_database(test);
        all.push(Backend {
            label: "postgres",
            store: json!({
                "type": "postgres", "host": server.host, "port": server.port, "dbname": dbname,
                "user": server.user, "password_file": server.password_file, "sslmode": "disable"
            })
            .to_string(),
            dir: tempfile::tempdir().unwrap(),
        });
    }
    match std::env::var("PLEXUS_TEST_ETCD_ENDPOINTS") {
        Ok(endpoints) if !endpoints.trim().is_empty() => {
            let endpoints: Vec<&str> = endpoints.split(',').map(str::trim).collect();
            let prefix = format!("/plexusctl-test/{test}/{}", std::process::id());
            all.push(Backend {
                label: "etcd",
                store: json!({"type": "etcd", "endpoints": endpoints, "prefix": prefix})
                    .to_string(),
                dir: tempfile::tempdir().unwrap(),
            });
        }
        _ => {
            let _: Option<()> = skip(
                test,
                "etcd part: PLEXUS_TEST_ETCD_ENDPOINTS is not set (run under scripts/with-servers)",
            );
        }
    }
    all
}
