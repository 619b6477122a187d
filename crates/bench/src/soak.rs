//! `plexus-bench soak`: churn ADD/DEL through the real `plexus-ipam` binary on one backend
//! for a fixed time, sampling throughput, the store server's memory and descriptors and the
//! SQLite file sizes, then checks the store against the live set and judges the run against
//! stated bounds (see `docs/reliability.md`, "Soak"). Fails when the verdict fails.

use std::collections::{HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Args;
use nix::sys::resource::{UsageWho, getrusage};
use serde_json::{Value, json};

use crate::measure::{cni_call_env, first_address};
use crate::soak_procs::{ProcSample, etcd_db_file, server_pids, usage_of};

/// The network every soak call allocates in (`network_name`: a whereabouts-syntax range
/// without it would allocate in the shared `whereabouts.cluster` network).
const NETWORK: &str = "soak";
/// A /16: callers × window live attachments never come close to exhausting it.
const POOL: &str = "10.200.0.0/16";

/// Options of `plexus-bench soak`.
#[derive(Debug, Args)]
pub struct SoakArgs {
    /// The plexus-ipam binary.
    #[arg(long)]
    plexus: PathBuf,
    /// sqlite, postgres or etcd (servers from scripts/with-servers' PLEXUS_TEST_* vars).
    #[arg(long)]
    backend: String,
    /// How long to churn.
    #[arg(long, default_value_t = 1200)]
    seconds: u64,
    /// Concurrent callers.
    #[arg(long, default_value_t = 8)]
    callers: usize,
    /// Attachments each caller keeps alive (ADD a new one, DEL the oldest beyond this).
    #[arg(long, default_value_t = 16)]
    window: usize,
    /// Seconds between samples.
    #[arg(long, default_value_t = 10)]
    sample_seconds: u64,
    /// Bound: server RSS growth from the second quarter of the run to the last (medians), in
    /// percent. The first quarter is warm-up: caches and buffers fill, etcd reaches its
    /// compaction and snapshot cycle. Unbounded growth still shows over the second half...
    #[arg(long, default_value_t = 10.0)]
    max_rss_growth_pct: f64,
    /// ...with this absolute slack in MiB (small servers: allocator noise).
    #[arg(long, default_value_t = 16.0)]
    rss_slack_mib: f64,
    /// Bound: open descriptors of the server, second quarter vs last quarter (medians).
    #[arg(long, default_value_t = 8)]
    max_fd_growth: u64,
    /// Bound: largest SQLite WAL seen, in MiB.
    #[arg(long, default_value_t = 64.0)]
    max_wal_mib: f64,
    /// Directory for the SQLite database (a temporary directory by default).
    #[arg(long)]
    dir: Option<PathBuf>,
}

/// One row of the report.
#[derive(Debug, Clone)]
struct Sample {
    at: Duration,
    ops_per_sec: f64,
    server: Option<ProcSample>,
    db_bytes: u64,
    wal_bytes: u64,
}

fn store_config(backend: &str, dir: &Path) -> anyhow::Result<Value> {
    let env =
        |k: &str| std::env::var(k).with_context(|| format!("{k} (run under scripts/with-servers)"));
    Ok(match backend {
        "sqlite" => json!({"type": "sqlite", "path": dir.join("soak.db")}),
        "postgres" => json!({"type": "postgres", "host": env("PLEXUS_TEST_PG_HOST")?,
            "port": env("PLEXUS_TEST_PG_PORT")?.parse::<u16>()?, "dbname": env("PLEXUS_TEST_PG_DB")?,
            "user": env("PLEXUS_TEST_PG_USER")?, "password_file": env("PLEXUS_TEST_PG_PASSWORD_FILE")?,
            "sslmode": "disable", "timeout_ms": 30000}),
        "etcd" => json!({"type": "etcd", "endpoints": [env("PLEXUS_TEST_ETCD_ENDPOINTS")?],
            "prefix": format!("/plexus-soak/{}", std::process::id()), "timeout_ms": 30000}),
        other => anyhow::bail!("unknown backend {other} (sqlite, postgres, etcd)"),
    })
}

/// What the callers share: the live set, counters and the stop flag.
struct Shared {
    live: Mutex<HashMap<String, String>>,
    ops: AtomicU64,
    failures: AtomicU64,
    first_failure: Mutex<Option<String>>,
    stop: AtomicBool,
}

impl Shared {
    fn fail(&self, what: String) {
        self.failures.fetch_add(1, Ordering::Relaxed);
        let mut first = self.first_failure.lock().unwrap_or_else(|p| p.into_inner());
        first.get_or_insert(what);
    }
}

fn caller(index: usize, binary: &Path, conf: &str, window: usize, shared: &Shared) {
    let node = format!("soak-node-{}", index % 4);
    let env = [("NODE_NAME", node.as_str())];
    let mut mine: VecDeque<String> = VecDeque::new();
    let mut n = 0u64;
    while !shared.stop.load(Ordering::Relaxed) {
        let container = format!("soak-{index}-{n}");
        n += 1;
        match cni_call_env(binary, "ADD", &container, conf, &env)
            .and_then(|(out, _)| first_address(&out))
        {
            Ok(ip) => {
                lock(&shared.live).insert(container.clone(), ip);
                mine.push_back(container);
            }
            Err(e) => {
                shared.fail(format!("ADD {container}: {e:#}"));
                // A failed ADD stored nothing, but DEL is idempotent: make sure.
                let _ = cni_call_env(binary, "DEL", &container, conf, &env);
            }
        }
        shared.ops.fetch_add(1, Ordering::Relaxed);
        if mine.len() > window
            && let Some(oldest) = mine.pop_front()
        {
            match cni_call_env(binary, "DEL", &oldest, conf, &env) {
                Ok(_) => {
                    lock(&shared.live).remove(&oldest);
                }
                Err(e) => {
                    shared.fail(format!("DEL {oldest}: {e:#}"));
                    mine.push_front(oldest);
                }
            }
            shared.ops.fetch_add(1, Ordering::Relaxed);
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn file_size(path: &Path) -> u64 {
    std::fs::metadata(path).map(|m| m.len()).unwrap_or(0)
}

/// Runs the soak and prints the report; an error when the verdict fails.
pub fn run(args: &SoakArgs) -> anyhow::Result<()> {
    let scratch = tempfile::tempdir()?;
    let dir = args
        .dir
        .clone()
        .unwrap_or_else(|| scratch.path().to_path_buf());
    let store = store_config(&args.backend, &dir)?;
    let conf = json!({"cniVersion": "1.1.0", "name": NETWORK, "type": "bridge",
                      "ipam": {"type": "plexus-ipam", "range": POOL, "network_name": NETWORK,
                               "store": store}})
    .to_string();
    let servers = server_pids(&args.backend)?;
    // The DB column: the SQLite file, or the etcd member's bolt database (it grows until
    // compaction frees revisions, then pages are reused).
    let db = match args.backend.as_str() {
        "etcd" => servers.first().and_then(|pid| etcd_db_file(*pid)),
        _ => None,
    }
    .unwrap_or_else(|| dir.join("soak.db"));
    let wal = dir.join("soak.db-wal");
    let shared = Arc::new(Shared {
        live: Mutex::new(HashMap::new()),
        ops: AtomicU64::new(0),
        failures: AtomicU64::new(0),
        first_failure: Mutex::new(None),
        stop: AtomicBool::new(false),
    });
    let started = Instant::now();
    let workers: Vec<_> = (0..args.callers)
        .map(|i| {
            let shared = Arc::clone(&shared);
            let binary = args.plexus.clone();
            let conf = conf.clone();
            let window = args.window;
            std::thread::spawn(move || caller(i, &binary, &conf, window, &shared))
        })
        .collect();
    let total = Duration::from_secs(args.seconds);
    let step = Duration::from_secs(args.sample_seconds.max(1));
    let mut samples = Vec::new();
    let mut last_ops = 0;
    let mut last_at = Duration::ZERO;
    let mut next = step.min(total);
    while next <= total {
        std::thread::sleep(next.saturating_sub(started.elapsed()));
        let at = started.elapsed();
        let ops = shared.ops.load(Ordering::Relaxed);
        samples.push(Sample {
            at,
            ops_per_sec: (ops - last_ops) as f64 / (at - last_at).as_secs_f64().max(0.001),
            server: (!servers.is_empty()).then(|| usage_of(&servers)),
            db_bytes: file_size(&db),
            wal_bytes: file_size(&wal),
        });
        last_ops = ops;
        last_at = at;
        next += step;
    }
    shared.stop.store(true, Ordering::Relaxed);
    for worker in workers {
        worker
            .join()
            .map_err(|_| anyhow::anyhow!("a caller panicked"))?;
    }
    let plugin_peak_kib = getrusage(UsageWho::RUSAGE_CHILDREN)
        .map(|u| u.max_rss())
        .unwrap_or(0);
    let live = lock(&shared.live).clone();
    let check = verify_store(&store, &live)?;
    let report = Report {
        args,
        samples: &samples,
        plugin_peak_kib,
        ops: shared.ops.load(Ordering::Relaxed),
        failures: shared.failures.load(Ordering::Relaxed),
        first_failure: lock(&shared.first_failure).clone(),
        check,
        elapsed: started.elapsed(),
    };
    report.print();
    let failed = report.verdict();
    if failed.is_empty() {
        println!("\n**verdict ({}): PASS**", args.backend);
        Ok(())
    } else {
        println!("\n**verdict ({}): FAIL**", args.backend);
        for reason in &failed {
            println!("- {reason}");
        }
        anyhow::bail!("soak on {} failed: {}", args.backend, failed.join("; "))
    }
}

/// The store compared with the live set the callers saw succeed.
#[derive(Debug)]
struct StoreCheck {
    stored: usize,
    live: usize,
    duplicates: usize,
    missing: usize,
    leaked: usize,
    wrong_address: usize,
}

fn verify_store(store: &Value, live: &HashMap<String, String>) -> anyhow::Result<StoreCheck> {
    let cfg = plexus_store::StoreConfig::from_json(Some(store))?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let rows = runtime.block_on(async {
        let store = plexus_store::open(&cfg).await?;
        store.list(NETWORK).await
    })?;
    let mut by_ip: HashMap<String, usize> = HashMap::new();
    let mut held: HashMap<String, String> = HashMap::new();
    for row in &rows {
        *by_ip.entry(row.ip.to_string()).or_default() += 1;
        held.insert(row.container_id.clone(), row.ip.to_string());
    }
    Ok(StoreCheck {
        stored: rows.len(),
        live: live.len(),
        duplicates: by_ip.values().filter(|n| **n > 1).count(),
        missing: live.keys().filter(|c| !held.contains_key(*c)).count(),
        leaked: held.keys().filter(|c| !live.contains_key(*c)).count(),
        wrong_address: live
            .iter()
            .filter(|(c, ip)| held.get(*c).is_some_and(|h| h != *ip))
            .count(),
    })
}

struct Report<'a> {
    args: &'a SoakArgs,
    samples: &'a [Sample],
    plugin_peak_kib: i64,
    ops: u64,
    failures: u64,
    first_failure: Option<String>,
    check: StoreCheck,
    elapsed: Duration,
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

fn median(mut values: Vec<f64>) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// (before, after) for a growth bound: the medians of the second and the last quarter of
/// `values`, so a warm-up in the first quarter does not count and growth that goes on does;
/// with fewer than eight values, the first and the last. `None` when empty.
fn steady_growth(values: &[f64]) -> Option<(f64, f64)> {
    let (first, last) = (values.first()?, values.last()?);
    if values.len() < 8 {
        return Some((*first, *last));
    }
    let q = values.len() / 4;
    Some((
        median(values[q..2 * q].to_vec()),
        median(values[values.len() - q..].to_vec()),
    ))
}

impl Report<'_> {
    /// Medians of `f` over the second and the last quarter of the samples: growth after
    /// warm-up. Runs of fewer than eight samples compare the first sample with the last.
    fn quarters(&self, f: impl Fn(&Sample) -> Option<f64>) -> Option<(f64, f64)> {
        let values: Vec<f64> = self.samples.iter().filter_map(f).collect();
        steady_growth(&values)
    }

    fn print(&self) {
        let a = self.args;
        println!(
            "## soak: {} — {} callers, window {}, {:.0} s\n",
            a.backend,
            a.callers,
            a.window,
            self.elapsed.as_secs_f64()
        );
        println!(
            "| t (s) | ops/s | server RSS (MiB) | server fds | server procs | DB (MiB) | WAL (MiB) |"
        );
        println!("|---:|---:|---:|---:|---:|---:|---:|");
        for s in self.samples {
            let (rss, fds, procs) = s.server.as_ref().map_or(
                ("-".to_string(), "-".to_string(), "-".to_string()),
                |p| {
                    (
                        format!("{:.1}", mib(p.rss_bytes)),
                        p.fds.to_string(),
                        p.processes.to_string(),
                    )
                },
            );
            println!(
                "| {:.0} | {:.1} | {rss} | {fds} | {procs} | {:.2} | {:.2} |",
                s.at.as_secs_f64(),
                s.ops_per_sec,
                mib(s.db_bytes),
                mib(s.wal_bytes)
            );
        }
        let c = &self.check;
        println!(
            "\ncalls: {} ({:.1}/s), failed: {}; plugin peak RSS {:.1} MiB (getrusage children)",
            self.ops,
            self.ops as f64 / self.elapsed.as_secs_f64().max(0.001),
            self.failures,
            self.plugin_peak_kib as f64 / 1024.0
        );
        println!(
            "store: {} held, {} live; duplicates {}, missing {}, leaked {}, wrong address {}",
            c.stored, c.live, c.duplicates, c.missing, c.leaked, c.wrong_address
        );
        if let Some(first) = &self.first_failure {
            println!("first failure: {first}");
        }
    }

    /// The broken bounds (empty when the run passes).
    fn verdict(&self) -> Vec<String> {
        let a = self.args;
        let c = &self.check;
        let mut failed = Vec::new();
        if self.failures > 0 {
            failed.push(format!("{} calls failed", self.failures));
        }
        if c.duplicates + c.missing + c.leaked + c.wrong_address > 0 || c.stored != c.live {
            failed.push(format!("store != live set ({c:?})"));
        }
        if self.ops == 0 {
            failed.push("no call completed".into());
        }
        let rss = self.quarters(|s| s.server.as_ref().map(|p| p.rss_bytes as f64));
        if let Some((first, last)) = rss {
            let allowed =
                first * (1.0 + a.max_rss_growth_pct / 100.0) + a.rss_slack_mib * 1048576.0;
            if last > allowed {
                failed.push(format!(
                    "server RSS grew {:.1} -> {:.1} MiB after warm-up (bound {:.1})",
                    first / 1048576.0,
                    last / 1048576.0,
                    allowed / 1048576.0
                ));
            }
        }
        let fds = self.quarters(|s| s.server.as_ref().map(|p| p.fds as f64));
        if let Some((first, last)) = fds
            && last > first + a.max_fd_growth as f64
        {
            failed.push(format!("server fds grew {first} -> {last} after warm-up"));
        }
        let wal_peak = self.samples.iter().map(|s| s.wal_bytes).max().unwrap_or(0);
        if mib(wal_peak) > a.max_wal_mib {
            failed.push(format!("WAL reached {:.1} MiB", mib(wal_peak)));
        }
        failed
    }
}

#[cfg(test)]
mod tests {
    use super::steady_growth;

    #[test]
    fn a_warm_up_then_a_plateau_is_not_growth() {
        // etcd in the soak: climbs for the first quarter, then flat.
        let mut rss: Vec<f64> = (0..10).map(|i| 50.0 + 15.0 * f64::from(i)).collect();
        rss.extend(std::iter::repeat_n(200.0, 30));
        assert_eq!(steady_growth(&rss), Some((200.0, 200.0)));
    }

    #[test]
    fn growth_that_goes_on_is_seen() {
        let rss: Vec<f64> = (0..40).map(|i| 34.0 + 8.5 * f64::from(i)).collect();
        let (before, after) = steady_growth(&rss).unwrap();
        assert!(after > before * 1.5, "{before} -> {after}");
    }

    #[test]
    fn short_runs_compare_first_and_last() {
        assert_eq!(steady_growth(&[10.0, 12.0, 30.0]), Some((10.0, 30.0)));
        assert_eq!(steady_growth(&[]), None);
    }
}
