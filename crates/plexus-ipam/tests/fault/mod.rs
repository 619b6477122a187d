//! Shared by the fault tests (`crash.rs`, `outage.rs`): run the real `plexus-ipam` binary
//! with an optional SIGKILL after a delay, a hard cap against hangs and the wall-clock time
//! of the call; store configurations for the three backends; reading a store back through
//! `plexus_store`; a small seeded PRNG so a failing run can be replayed.

#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::IpAddr;
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use plexus_store::{Allocation, Store, StoreConfig};
pub use plexus_test_support::servers::skip;
use plexus_test_support::servers::var as env;
use serde_json::{Value, json};

pub mod scenario;

#[path = "../support/plugin.rs"]
mod plugin;
pub use plugin::plugin_binary;

/// No plugin call may take longer than this; past it the harness kills it and fails.
pub const HANG_LIMIT: Duration = Duration::from_secs(60);

/// How one plugin process ended.
#[derive(Debug, Clone)]
pub enum Outcome {
    /// It exited by itself.
    Exited {
        /// Exit status code.
        code: i32,
        /// Everything on stdout.
        stdout: String,
        /// Everything on stderr.
        stderr: String,
    },
    /// The harness killed it with SIGKILL before it exited.
    Killed,
}

/// One finished plugin call and how long it took.
#[derive(Debug, Clone)]
pub struct Run {
    /// How it ended.
    pub outcome: Outcome,
    /// Wall-clock time from spawn to exit.
    pub took: Duration,
}

impl Run {
    /// True when it exited with status 0.
    pub fn succeeded(&self) -> bool {
        matches!(self.outcome, Outcome::Exited { code: 0, .. })
    }

    /// True when the harness killed it.
    pub fn killed(&self) -> bool {
        matches!(self.outcome, Outcome::Killed)
    }

    /// The CNI error code on stdout of a failed call (None on success or when killed).
    pub fn cni_code(&self) -> Option<u64> {
        match &self.outcome {
            Outcome::Exited { code, stdout, .. } if *code != 0 => {
                serde_json::from_str::<Value>(stdout).ok()?["code"].as_u64()
            }
            _ => None,
        }
    }

    /// The CNI error message of a failed call.
    pub fn cni_msg(&self) -> String {
        match &self.outcome {
            Outcome::Exited { stdout, .. } => serde_json::from_str::<Value>(stdout)
                .ok()
                .and_then(|v| v["msg"].as_str().map(str::to_string))
                .unwrap_or_default(),
            Outcome::Killed => String::new(),
        }
    }

    /// The addresses of a successful ADD, prefix stripped, sorted.
    pub fn ips(&self) -> Vec<IpAddr> {
        let Outcome::Exited {
            code: 0, stdout, ..
        } = &self.outcome
        else {
            panic!("not a successful call: {self:?}");
        };
        let v: Value = serde_json::from_str(stdout)
            .unwrap_or_else(|e| panic!("ADD printed no JSON ({e}): {self:?}"));
        let mut ips: Vec<IpAddr> = v["ips"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|ip| ip["address"].as_str())
            .map(|s| s.split('/').next().unwrap_or_default().parse().unwrap())
            .collect();
        ips.sort();
        ips
    }
}

/// One CNI invocation to make.
#[derive(Debug, Clone, Copy)]
pub struct Call<'a> {
    /// CNI_COMMAND.
    pub command: &'a str,
    /// CNI_CONTAINERID.
    pub container: &'a str,
    /// NODE_NAME.
    pub node: &'a str,
    /// The network configuration on stdin.
    pub conf: &'a Value,
}

impl Call<'_> {
    /// Runs the plugin; SIGKILLs it once `kill_after` has passed if it is still running.
    pub fn run(&self, kill_after: Option<Duration>) -> Run {
        let mut cmd = Command::new(plugin_binary());
        cmd.env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("NODE_NAME", self.node)
            .env("CNI_COMMAND", self.command)
            .env("CNI_CONTAINERID", self.container)
            .env("CNI_NETNS", "/run/netns/fault-test")
            .env("CNI_IFNAME", "eth0")
            .env("CNI_PATH", "/usr/lib/cni")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let started = Instant::now();
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {}: {e}", plugin_binary().display()));
        if let Some(mut input) = child.stdin.take() {
            // A plugin killed early closes its stdin; that is not the test's failure.
            let _ = input.write_all(self.conf.to_string().as_bytes());
        }
        let kill_at = started + kill_after.unwrap_or(HANG_LIMIT);
        let mut killed = false;
        let status = loop {
            if let Some(status) = child.try_wait().unwrap_or_else(|e| panic!("wait: {e}")) {
                break status;
            }
            let now = Instant::now();
            if now >= kill_at {
                // Child::kill sends SIGKILL on Unix.
                let _ = child.kill();
                killed = true;
                break child.wait().unwrap_or_else(|e| panic!("wait: {e}"));
            }
            std::thread::sleep((kill_at - now).min(Duration::from_micros(300)));
        };
        let took = started.elapsed();
        let mut stdout = String::new();
        let mut stderr = String::new();
        if let Some(mut out) = child.stdout.take() {
            let _ = out.read_to_string(&mut stdout);
        }
        if let Some(mut err) = child.stderr.take() {
            let _ = err.read_to_string(&mut stderr);
        }
        assert!(
            !(killed && kill_after.is_none()),
            "{} of {} hung for {took:?} and was killed; stderr: {stderr}",
            self.command,
            self.container
        );
        // A process that exited on its own just before the kill landed is not "killed".
        let outcome = if killed && status.signal() == Some(9) {
            Outcome::Killed
        } else {
            Outcome::Exited {
                code: status.code().unwrap_or(-1),
                stdout,
                stderr,
            }
        };
        Run { outcome, took }
    }
}

/// GC of `conf`'s network keeping exactly `valid` (container ids, ifname eth0).
pub fn gc_conf<'a>(conf: &Value, valid: impl IntoIterator<Item = &'a String>) -> Value {
    let mut conf = conf.clone();
    conf["cni.dev/valid-attachments"] = valid
        .into_iter()
        .map(|c| json!({"containerID": c, "ifname": "eth0"}))
        .collect();
    conf
}

/// The store backends under test.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// The embedded SQLite file.
    Sqlite,
    /// PostgreSQL.
    Postgres,
    /// etcd.
    Etcd,
}

impl Backend {
    /// Lower-case name, as in `--backends`.
    pub fn name(self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
            Backend::Etcd => "etcd",
        }
    }
}

/// A unique suffix for network names and key prefixes on shared servers.
pub fn unique_suffix() -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!("{}-{nanos}", std::process::id())
}

/// The `store` object for `backend` on the shared servers of `scripts/with-servers` (a
/// SQLite file in `dir`), with `timeout_ms` as its deadline; None (after the skip report)
/// when the server is not configured.
pub fn shared_store(backend: Backend, dir: &Path, test: &str, timeout_ms: u64) -> Option<Value> {
    let store = match backend {
        Backend::Sqlite => Some(json!({"type": "sqlite", "path": dir.join("fault.db"),
                                        "busy_timeout_ms": timeout_ms})),
        Backend::Postgres => (|| {
            Some(
                json!({"type": "postgres", "host": env("PLEXUS_TEST_PG_HOST")?,
                "port": env("PLEXUS_TEST_PG_PORT")?.parse::<u16>().ok()?,
                "dbname": env("PLEXUS_TEST_PG_DB")?, "user": env("PLEXUS_TEST_PG_USER")?,
                "password_file": env("PLEXUS_TEST_PG_PASSWORD_FILE")?, "sslmode": "disable",
                "timeout_ms": timeout_ms}),
            )
        })(),
        Backend::Etcd => env("PLEXUS_TEST_ETCD_ENDPOINTS").map(|e| {
            let endpoints: Vec<&str> = e.split(',').map(str::trim).collect();
            json!({"type": "etcd", "endpoints": endpoints, "timeout_ms": timeout_ms,
                   "prefix": format!("/plexus-test/{test}-{}", unique_suffix())})
        }),
    };
    match store {
        Some(store) => Some(store),
        None => skip(
            test,
            &format!(
                "no {} server (run under scripts/with-servers)",
                backend.name()
            ),
        ),
    }
}

/// A current-thread runtime for store reads from the test.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap_or_else(|e| panic!("runtime: {e}"))
}

/// Opens the store described by the `store` object `store`.
pub fn open_store(rt: &tokio::runtime::Runtime, store: &Value) -> Box<dyn Store> {
    let config = StoreConfig::from_json(Some(store)).unwrap_or_else(|e| panic!("{e}"));
    rt.block_on(plexus_store::open(&config))
        .unwrap_or_else(|e| panic!("open store: {e}"))
}

/// Every allocation of `network`, read through `plexus_store`.
pub fn list(rt: &tokio::runtime::Runtime, store: &dyn Store, network: &str) -> Vec<Allocation> {
    rt.block_on(store.list(network))
        .unwrap_or_else(|e| panic!("list {network}: {e}"))
}

/// xorshift64*: deterministic for a seed, so a failing run can be replayed.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator for `seed` (0 is replaced by a constant).
    pub fn new(seed: u64) -> Rng {
        Rng(if seed == 0 {
            0x9e37_79b9_7f4a_7c15
        } else {
            seed
        })
    }

    /// A seed from the clock.
    pub fn clock_seed() -> u64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(1)
    }

    /// The next 64 random bits.
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Uniform in `0..n` (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    /// True with probability `p` (0..=1).
    pub fn chance(&mut self, p: f64) -> bool {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64 <= p
    }

    /// Uniform in `0..=max`.
    pub fn duration(&mut self, max: Duration) -> Duration {
        let micros = max.as_micros().max(1) as u64;
        Duration::from_micros(self.below(micros + 1))
    }
}
