//! A real `plexusd node` for the process-level tests.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use plexus_store::remote::protocol::AgentStats;
use plexus_store::{RemoteStore, StoreConfig};
use serde_json::Value;

/// The `plexusd` binary next to the plugin's, built once per test process (cargo builds
/// only this crate's binaries for its tests).
pub fn plexusd_binary() -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT
        .get_or_init(|| {
            let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
            let status = Command::new(cargo)
                .args(["build", "--quiet", "-p", "plexusd"])
                .status()
                .expect("run cargo build -p plexusd");
            assert!(status.success(), "cargo build -p plexusd failed");
            // Next to the plugin cargo built (not PLEXUS_TEST_PLUGIN's): the one just built.
            PathBuf::from(env!("CARGO_BIN_EXE_plexus-ipam")).with_file_name("plexusd")
        })
        .clone()
}

/// A running `plexusd node`; killed on drop.
pub struct AgentProcess {
    child: Child,
    socket: PathBuf,
}

impl AgentProcess {
    /// Starts `plexusd node` on `socket` and waits until it listens.
    pub fn start(socket: &Path) -> AgentProcess {
        let child = Command::new(plexusd_binary())
            .args(["node", "--socket"])
            .arg(socket)
            .args(["--log-level", "debug"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn plexusd");
        let started = Instant::now();
        while std::os::unix::net::UnixStream::connect(socket).is_err() {
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "agent never listened"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        AgentProcess {
            child,
            socket: socket.to_path_buf(),
        }
    }

    /// The socket it listens on.
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// The agent's counters.
    pub fn stats(&self, store: &Value) -> AgentStats {
        let cfg = StoreConfig::from_json(Some(store)).unwrap();
        RemoteStore::connect(&self.socket, &cfg)
            .unwrap()
            .stats()
            .unwrap()
    }

    /// Kills the agent and waits for it.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for AgentProcess {
    fn drop(&mut self) {
        self.kill();
    }
}
