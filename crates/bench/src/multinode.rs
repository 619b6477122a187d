//! `plexus-bench multinode`: 8 "nodes" × 4 concurrent plugin processes, side by side for the
//! harness floor, Debian host-local (one data dir per node, as it runs in reality) and
//! plexus-ipam on each configured backend. Each caller does its ADDs, then its DELs; ADD/s
//! and DEL/s are over the whole phase, latencies per call.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Args;
use serde_json::{Value, json};

use crate::measure::{Summary, cni_call_env, first_address, ms, summarise};

/// Options of `plexus-bench multinode`.
#[derive(Debug, Args)]
pub struct MultinodeArgs {
    /// The plexus-ipam binary (`scripts/build-release` builds it).
    #[arg(long)]
    plexus: PathBuf,
    /// The floor plugin (`cni-floor`), as `[LABEL=]PATH`. Repeat it to show floors built
    /// differently side by side (e.g. `musl=…/cni-floor glibc=…/glibc/cni-floor`): each is
    /// a row and a "% of floor" column; the first is the floor of the per-round ratios.
    #[arg(long, required = true, value_parser = parse_floor)]
    floor: Vec<Floor>,
    /// Debian's host-local.
    #[arg(long, default_value = "/usr/lib/cni/host-local")]
    host_local: PathBuf,
    /// Simulated nodes.
    #[arg(long, default_value_t = 8)]
    nodes: usize,
    /// Concurrent plugin processes per node.
    #[arg(long, default_value_t = 4)]
    procs: usize,
    /// ADDs (then DELs) per process.
    #[arg(long, default_value_t = 50)]
    adds: usize,
    /// Backends to run plexus on (sqlite, postgres, etcd); servers come from the
    /// PLEXUS_TEST_* variables that scripts/with-servers exports.
    #[arg(long, value_delimiter = ',', default_value = "sqlite,postgres,etcd")]
    backends: Vec<String>,
    /// Also run every backend through a node agent: one `plexusd node` per simulated node
    /// (its own socket), each node's plugin calls pointed at it with `ipam.agent`.
    #[arg(long)]
    agent: bool,
    /// The plexusd binary for `--agent` (default: next to `--plexus`).
    #[arg(long)]
    plexusd: Option<PathBuf>,
    /// Offered load of the second, open-loop table, in ADDs per second over all callers
    /// (0: no such table). Each caller starts its ADDs on a fixed schedule, whether or not
    /// the previous one returned, and a latency counts from the scheduled start: the ADD
    /// latency a runtime sees at this pod start rate, free of the saturated table's
    /// queueing (where 32 callers on 2 cores wait for each other, floor included).
    #[arg(long, default_value_t = 200.0)]
    rate: f64,
    /// Run only the plexus rows whose name contains this text (e.g. "agent"), besides the
    /// floor and host-local, which every table needs for its ratios (profiling one row).
    #[arg(long)]
    only: Option<String>,
    /// Rounds of the saturated table: every row runs once per round, rows interleaved, and
    /// the table shows per row the median over rounds (ratios: the median of each round's
    /// ratio to that round's floor and host-local), so a slow spell of a noisy machine
    /// does not land on one row only.
    #[arg(long, default_value_t = 1, overrides_with = "rounds")]
    rounds: usize,
}

/// The `plexusd node` processes of `--agent`, one per simulated node; killed on drop.
struct Agents {
    children: Vec<std::process::Child>,
    sockets: Vec<PathBuf>,
}

impl Agents {
    fn start(binary: &Path, nodes: usize, dir: &Path) -> anyhow::Result<Agents> {
        let mut agents = Agents {
            children: Vec::new(),
            sockets: Vec::new(),
        };
        for node in 0..nodes {
            let socket = dir.join(format!("agent-node-{node}/agent.sock"));
            let child = std::process::Command::new(binary)
                .args(["node", "--log-level", "warn", "--socket"])
                .arg(&socket)
                .stdout(std::process::Stdio::null())
                .spawn()
                .with_context(|| format!("cannot start {}", binary.display()))?;
            agents.children.push(child);
            agents.sockets.push(socket);
        }
        let started = Instant::now();
        for socket in &agents.sockets {
            while std::os::unix::net::UnixStream::connect(socket).is_err() {
                anyhow::ensure!(
                    started.elapsed() < Duration::from_secs(10),
                    "node agent at {} never listened",
                    socket.display()
                );
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        Ok(agents)
    }
}

impl Agents {
    /// Claims served and claim batches run, summed over every agent.
    fn claim_counters(&self, store: &Value) -> anyhow::Result<(u64, u64)> {
        let config = plexus_store::StoreConfig::from_json(Some(store))?;
        let (mut claims, mut batches) = (0, 0);
        for socket in &self.sockets {
            let stats = plexus_store::RemoteStore::connect(socket, &config)
                .map_err(|e| anyhow::anyhow!("{e}"))?
                .stats()?;
            claims += stats.calls.get("claim").copied().unwrap_or(0);
            batches += stats.claim_batches;
        }
        Ok((claims, batches))
    }
}

impl Drop for Agents {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A floor plugin and the label of its row and column.
#[derive(Debug, Clone, PartialEq)]
struct Floor {
    label: Option<String>,
    binary: PathBuf,
}

/// `[LABEL=]PATH` of `--floor`.
fn parse_floor(value: &str) -> Result<Floor, String> {
    let (label, path) = match value.split_once('=') {
        Some((label, path)) if !label.is_empty() && !label.contains('/') => {
            (Some(label.to_string()), path)
        }
        _ => (None, value),
    };
    if path.is_empty() {
        return Err("an empty path".into());
    }
    Ok(Floor {
        label,
        binary: PathBuf::from(path),
    })
}

impl Floor {
    /// The name of the floor's row.
    fn row(&self) -> String {
        match &self.label {
            Some(label) => format!("floor (fixed result, {label})"),
            None => "floor (fixed result)".into(),
        }
    }

    /// The header of the floor's "% of floor" column.
    fn column(&self) -> String {
        match &self.label {
            Some(label) => format!("% of floor ({label}) ADD/s"),
            None => "% of floor ADD/s".into(),
        }
    }
}

/// One plugin configuration under test; `conf(node)` gives the stdin for a node.
struct Subject {
    name: String,
    binary: PathBuf,
    confs: Vec<String>,
    /// Whether results carry real addresses worth checking for duplicates.
    check_duplicates: bool,
    /// The store, for the rows through the node agents (their batch counters).
    agent_store: Option<Value>,
}

fn plexus_store(backend: &str, dir: &Path) -> anyhow::Result<Value> {
    let env =
        |k: &str| std::env::var(k).with_context(|| format!("{k} (run under scripts/with-servers)"));
    Ok(match backend {
        "sqlite" => json!({"type": "sqlite", "path": dir.join("multinode.db")}),
        "postgres" => json!({"type": "postgres", "host": env("PLEXUS_TEST_PG_HOST")?,
            "port": env("PLEXUS_TEST_PG_PORT")?.parse::<u16>()?, "dbname": env("PLEXUS_TEST_PG_DB")?,
            "user": env("PLEXUS_TEST_PG_USER")?, "password_file": env("PLEXUS_TEST_PG_PASSWORD_FILE")?,
            "sslmode": "disable"}),
        "etcd" => json!({"type": "etcd", "endpoints": [env("PLEXUS_TEST_ETCD_ENDPOINTS")?],
            "prefix": format!("/plexus-bench/{}", std::process::id())}),
        other => anyhow::bail!("unknown backend {other}"),
    })
}

fn subjects(
    args: &MultinodeArgs,
    dir: &Path,
    agents: Option<&Agents>,
) -> anyhow::Result<Vec<Subject>> {
    let range = "10.96.0.0/16";
    let same = |conf: Value| vec![conf.to_string(); args.nodes];
    let mut out: Vec<Subject> = args
        .floor
        .iter()
        .map(|floor| Subject {
            name: floor.row(),
            binary: floor.binary.clone(),
            confs: same(
                json!({"cniVersion": "1.0.0", "name": "bench", "type": "bridge", "ipam": {}}),
            ),
            check_duplicates: false,
            agent_store: None,
        })
        .collect();
    out.push(Subject {
        name: "host-local (one data dir per node)".into(),
        binary: args.host_local.clone(),
        confs: (0..args.nodes)
            .map(|n| {
                json!({"cniVersion": "1.0.0", "name": "bench", "type": "bridge",
                    "ipam": {"type": "host-local", "ranges": [[{"subnet": format!("10.{}.0.0/16", 100 + n)}]],
                             "dataDir": dir.join(format!("hl-node-{n}"))}})
                .to_string()
            })
            .collect(),
        check_duplicates: true,
        agent_store: None,
    });
    for backend in &args.backends {
        let store = plexus_store(backend, dir)?;
        // Direct access explicitly: a node agent installed on this host must not serve it.
        out.push(Subject {
            name: format!("plexus-ipam on {backend}"),
            binary: args.plexus.clone(),
            confs: same(json!({"cniVersion": "1.0.0", "name": format!("bench-{backend}-{}-{ROUND}", std::process::id()),
                "type": "bridge", "ipam": {"type": "plexus-ipam", "range": range, "store": store,
                "agent": false}})),
            check_duplicates: true,
            agent_store: None,
        });
        if let Some(agents) = agents {
            out.push(Subject {
                name: format!("plexus-ipam on {backend} via node agent"),
                binary: args.plexus.clone(),
                confs: agents
                    .sockets
                    .iter()
                    .map(|socket| {
                        json!({"cniVersion": "1.0.0",
                            "name": format!("bench-{backend}-agent-{}-{ROUND}", std::process::id()),
                            "type": "bridge", "ipam": {"type": "plexus-ipam", "range": range,
                            "store": store, "agent": socket}})
                        .to_string()
                    })
                    .collect(),
                check_duplicates: true,
                agent_store: Some(store.clone()),
            });
        }
    }
    if let Some(only) = &args.only {
        out.retain(|s| !s.name.starts_with("plexus-ipam") || s.name.contains(only.as_str()));
    }
    Ok(out)
}

/// Stands for the round in a network name: every round (and the open-loop table) claims
/// in a network of its own, so rounds repeat one experiment instead of each inheriting the
/// churn of the rounds before it (which a long-running network shows differently: see
/// docs/benchmarks.md).
const ROUND: &str = "@round@";

/// What one subject measured.
struct Outcome {
    add_rate: f64,
    del_rate: f64,
    add: Summary,
    duplicates: usize,
}

/// Every caller's `verb` calls, side by side; with `rate`, call `i` of caller `c` is due
/// at `(i × callers + c) / rate` seconds after the start and its time counts from then.
fn phase(
    subject: &Arc<Subject>,
    args: &MultinodeArgs,
    verb: &'static str,
    rate: Option<f64>,
    round: &str,
) -> anyhow::Result<(Duration, Vec<Duration>, Vec<String>)> {
    let callers = args.nodes * args.procs;
    let started = Instant::now();
    let handles: Vec<_> = (0..callers)
        .map(|caller| {
            let subject = Arc::clone(subject);
            let (node, adds) = (caller / args.procs, args.adds);
            let conf = subject.confs[node].replace(ROUND, round);
            std::thread::spawn(move || -> anyhow::Result<(Vec<Duration>, Vec<String>)> {
                let node_name = format!("node-{node}");
                let mut times = Vec::with_capacity(adds);
                let mut ips = Vec::new();
                for i in 0..adds {
                    let due = rate.map(|rate| {
                        started + Duration::from_secs_f64((i * callers + caller) as f64 / rate)
                    });
                    if let Some(due) = due {
                        std::thread::sleep(due.saturating_duration_since(Instant::now()));
                    }
                    let container = format!("c{caller}-{i}");
                    let (out, t) = cni_call_env(
                        &subject.binary,
                        verb,
                        &container,
                        &conf,
                        &[("NODE_NAME", &node_name)],
                    )?;
                    // Behind schedule, the wait for the caller counts too.
                    times.push(due.map_or(t, |due| due.elapsed()));
                    if verb == "ADD" && subject.check_duplicates {
                        ips.push(format!("{node_name}/{}", first_address(&out)?));
                    }
                }
                Ok((times, ips))
            })
        })
        .collect();
    let (mut times, mut ips) = (Vec::new(), Vec::new());
    for h in handles {
        let (t, i) = h.join().map_err(|_| anyhow::anyhow!("caller panicked"))??;
        times.extend(t);
        ips.extend(i);
    }
    Ok((started.elapsed(), times, ips))
}

/// Runs `subject`'s ADDs, then its DELs, in the networks of `round`.
fn run_subject(
    subject: &Arc<Subject>,
    args: &MultinodeArgs,
    rate: Option<f64>,
    round: &str,
) -> anyhow::Result<Outcome> {
    let (add_wall, mut add_times, ips) = phase(subject, args, "ADD", rate, round)?;
    let (del_wall, _, _) = phase(subject, args, "DEL", None, round)?;
    // host-local's addresses are per node; plexus' are cluster-wide: strip the node for plexus.
    let keys: Vec<String> = if subject.name.starts_with("host-local") {
        ips
    } else {
        ips.iter()
            .map(|k| k.split('/').nth(1).unwrap_or_default().to_string())
            .collect()
    };
    let unique: HashSet<&String> = keys.iter().collect();
    let total = (args.nodes * args.procs * args.adds) as f64;
    Ok(Outcome {
        add_rate: total / add_wall.as_secs_f64(),
        del_rate: total / del_wall.as_secs_f64(),
        add: summarise(&mut add_times),
        duplicates: keys.len() - unique.len(),
    })
}

/// The median of `values` (the mean of the middle two for an even count; 0 when empty).
fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    match values.len() {
        0 => 0.0,
        n if n % 2 == 1 => values[n / 2],
        n => (values[n / 2 - 1] + values[n / 2]) / 2.0,
    }
}

/// Runs every subject `--rounds` times and prints Markdown tables.
pub fn run(args: &MultinodeArgs) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let agents = if args.agent {
        let binary = args
            .plexusd
            .clone()
            .unwrap_or_else(|| args.plexus.with_file_name("plexusd"));
        Some(Agents::start(&binary, args.nodes, dir.path())?)
    } else {
        None
    };
    let subjects: Vec<Arc<Subject>> = subjects(args, dir.path(), agents.as_ref())?
        .into_iter()
        .map(Arc::new)
        .collect();
    let rounds = args.rounds.max(1);
    // [`subjects`] lists the floors first, then host-local.
    let host_local = args.floor.len();
    let mut outcomes: Vec<Vec<Outcome>> = subjects.iter().map(|_| Vec::new()).collect();
    let mut batches = vec![(0u64, 0u64); subjects.len()];
    for round in 1..=rounds {
        for (i, subject) in subjects.iter().enumerate() {
            let counters = |subject: &Subject| match (&agents, &subject.agent_store) {
                (Some(agents), Some(store)) => agents.claim_counters(store).map(Some),
                _ => Ok(None),
            };
            let before = counters(subject)?;
            let o = run_subject(subject, args, None, &round.to_string())
                .with_context(|| subject.name.clone())?;
            if let (Some((c0, b0)), Some((c1, b1))) = (before, counters(subject)?) {
                batches[i].0 += c1 - c0;
                batches[i].1 += b1 - b0;
            }
            outcomes[i].push(o);
        }
        if rounds > 1 {
            eprintln!("multinode: round {round} of {rounds} done");
        }
    }
    println!(
        "# {} nodes × {} processes, {} ADDs then {} DELs per process (whole processes){}\n",
        args.nodes,
        args.procs,
        args.adds,
        args.adds,
        if rounds > 1 {
            format!("; median of {rounds} interleaved rounds")
        } else {
            String::new()
        }
    );
    let floor_columns: Vec<String> = args.floor.iter().map(Floor::column).collect();
    println!(
        "| plugin | ADD/s | DEL/s | ADD p50 (ms) | ADD p99 (ms) | duplicates | {} | × host-local ADD/s |",
        floor_columns.join(" | ")
    );
    println!(
        "|---|---|---|---|---|---|{}---|",
        "---|".repeat(floor_columns.len())
    );
    let ratio = |i: usize, to: usize| {
        median(
            outcomes[i]
                .iter()
                .zip(&outcomes[to])
                .map(|(o, base)| o.add_rate / base.add_rate)
                .collect(),
        )
    };
    let median_of = |i: usize, f: fn(&Outcome) -> f64| median(outcomes[i].iter().map(f).collect());
    for (i, subject) in subjects.iter().enumerate() {
        let vs_hl = if i > host_local {
            format!("{:.2}", ratio(i, host_local))
        } else {
            String::new()
        };
        let of_floors: Vec<String> = (0..args.floor.len())
            .map(|floor| format!("{:.0}%", 100.0 * ratio(i, floor)))
            .collect();
        let secs = |d: Duration| d.as_secs_f64();
        println!(
            "| {} | {:.0} | {:.0} | {} | {} | {} | {} | {vs_hl} |",
            subject.name,
            median_of(i, |o| o.add_rate),
            median_of(i, |o| o.del_rate),
            ms(Duration::from_secs_f64(median(
                outcomes[i].iter().map(|o| secs(o.add.p50)).collect()
            ))),
            ms(Duration::from_secs_f64(median(
                outcomes[i].iter().map(|o| secs(o.add.p99)).collect()
            ))),
            outcomes[i].iter().map(|o| o.duplicates).sum::<usize>(),
            of_floors.join(" | ")
        );
    }
    if rounds > 1 {
        println!("\nADD/s of each round:\n");
        let header: Vec<String> = (1..=rounds).map(|r| format!("round {r}")).collect();
        println!("| plugin | {} |", header.join(" | "));
        println!("|---|{}", "---|".repeat(rounds));
        for (i, subject) in subjects.iter().enumerate() {
            let rates: Vec<String> = outcomes[i]
                .iter()
                .map(|o| format!("{:.0}", o.add_rate))
                .collect();
            println!("| {} | {} |", subject.name, rates.join(" | "));
        }
    }
    let notes: Vec<String> = subjects
        .iter()
        .zip(&batches)
        // SQLite serializes its writers itself: its claims are never queued.
        .filter(|(_, (_, batches))| *batches > 0)
        .map(|(subject, (claims, batches))| {
            format!(
                "{}: {claims} claims in {batches} batches ({:.2} per batch)",
                subject.name,
                *claims as f64 / *batches as f64
            )
        })
        .collect();
    if !notes.is_empty() {
        println!("\nClaim batches of the node agents (group commit per node and network):\n");
        for note in notes {
            println!("- {note}");
        }
    }
    if args.rate > 0.0 {
        println!(
            "\n# ADD latency at an offered load of {:.0} ADD/s (open loop, same callers)\n",
            args.rate
        );
        println!(
            "| plugin | ADD/s achieved | ADD p50 (ms) | ADD p90 (ms) | ADD p99 (ms) | duplicates |"
        );
        println!("|---|---|---|---|---|---|");
        for subject in &subjects {
            let name = subject.name.clone();
            let o = run_subject(subject, args, Some(args.rate), "open")
                .with_context(|| name.clone())?;
            println!(
                "| {name} | {:.0} | {} | {} | {} | {} |",
                o.add_rate,
                ms(o.add.p50),
                ms(o.add.p90),
                ms(o.add.p99),
                o.duplicates
            );
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::{Floor, median, parse_floor};

    #[test]
    fn a_floor_is_a_path_with_an_optional_label() {
        assert_eq!(
            parse_floor("musl=/t/bin/cni-floor").unwrap(),
            Floor {
                label: Some("musl".into()),
                binary: PathBuf::from("/t/bin/cni-floor")
            }
        );
        let plain = parse_floor("/t/bin/glibc/cni-floor").unwrap();
        assert_eq!(plain.label, None);
        assert_eq!(plain.row(), "floor (fixed result)");
        // A '=' inside the path is not a label.
        let odd = parse_floor("/t/a=b/cni-floor").unwrap();
        assert_eq!(odd.binary, PathBuf::from("/t/a=b/cni-floor"));
        assert_eq!(odd.label, None);
        assert_eq!(
            parse_floor("glibc=/x").unwrap().column(),
            "% of floor (glibc) ADD/s"
        );
        assert!(parse_floor("").is_err());
        assert!(parse_floor("musl=").is_err());
    }

    #[test]
    fn median_of_odd_even_and_no_values() {
        assert_eq!(median(vec![3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(vec![4.0, 1.0, 3.0, 2.0]), 2.5);
        assert_eq!(median(vec![7.0]), 7.0);
        assert_eq!(median(Vec::new()), 0.0);
    }
}
