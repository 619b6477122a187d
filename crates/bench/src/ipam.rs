//! `plexus-bench ipam`: plexus-ipam against Debian's host-local, in one run.
//!
//! 1. Sequential ADD then DEL latency, the two plugins interleaved call by call.
//! 2. 16 concurrent callers doing 2,000 ADDs in all: throughput and duplicates found.
//! 3. ADD into a /8 pool already holding 1,000,000 allocations vs into an empty /8 pool.

use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Args;
use plexus_store::{Allocation, Owner, SqliteConfig, SqliteStore};
use serde_json::json;

use crate::measure::{Summary, cni_call, first_address, ms, summarise};

/// Options of `plexus-bench ipam`.
#[derive(Debug, Args)]
pub struct IpamArgs {
    /// The plexus-ipam binary (`scripts/build-release` builds it).
    #[arg(long)]
    plexus: PathBuf,
    /// The peer: Debian's host-local.
    #[arg(long, default_value = "/usr/lib/cni/host-local")]
    host_local: PathBuf,
    /// Sequential ADDs (and DELs) per plugin.
    #[arg(long, default_value_t = 300)]
    sequential: usize,
    /// Concurrent callers.
    #[arg(long, default_value_t = 16)]
    concurrency: usize,
    /// ADDs in all across the concurrent callers.
    #[arg(long, default_value_t = 2000)]
    concurrent_total: usize,
    /// Rounds of the concurrent phase (median reported; 0 skips phase 2).
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Allocations pre-loaded into the big pool (0 skips phase 3).
    #[arg(long, default_value_t = 1_000_000)]
    big_fill: u32,
    /// ADDs measured into the big and the empty pool.
    #[arg(long, default_value_t = 200)]
    big_adds: usize,
}

/// One plugin under test and how to configure it.
struct Subject {
    name: &'static str,
    binary: PathBuf,
    conf: String,
}

fn host_local(binary: &Path, data: &Path, subnet: &str) -> Subject {
    let conf = json!({"cniVersion": "1.0.0", "name": "bench", "type": "bridge",
        "ipam": {"type": "host-local", "ranges": [[{"subnet": subnet}]], "dataDir": data}});
    Subject {
        name: "host-local",
        binary: binary.to_path_buf(),
        conf: conf.to_string(),
    }
}

fn plexus(binary: &Path, db: &Path, range: &str) -> Subject {
    let conf = json!({"cniVersion": "1.0.0", "name": "bench", "type": "bridge",
        "ipam": {"type": "plexus-ipam", "range": range,
                 "store": {"type": "sqlite", "path": db}}});
    Subject {
        name: "plexus-ipam (SQLite)",
        binary: binary.to_path_buf(),
        conf: conf.to_string(),
    }
}

/// Runs all three phases and prints a Markdown report on stdout.
pub fn run(args: &IpamArgs) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let version = cni_call(
        &args.host_local,
        "VERSION",
        "v",
        r#"{"cniVersion":"1.0.0"}"#,
    )
    .map(|(out, _)| out)
    .unwrap_or_default();
    println!(
        "# plexus-ipam vs host-local ({})\n",
        args.host_local.display()
    );
    println!("host-local VERSION reply: `{}`\n", version.trim());
    sequential(args, dir.path())?;
    concurrent(args, dir.path())?;
    if args.big_fill > 0 {
        big_pool(args, dir.path())?;
    }
    Ok(())
}

fn sequential(args: &IpamArgs, dir: &Path) -> anyhow::Result<()> {
    let subjects = [
        host_local(&args.host_local, &dir.join("seq-hl"), "10.64.0.0/16"),
        plexus(&args.plexus, &dir.join("seq.db"), "10.64.0.0/16"),
    ];
    let mut adds = vec![Vec::new(); subjects.len()];
    let mut dels = vec![Vec::new(); subjects.len()];
    // The floor: the same binary answering VERSION (process start, stdin, stdout, exit).
    let mut floor = Vec::new();
    for i in 0..args.sequential {
        for (s, subject) in subjects.iter().enumerate() {
            let (_, t) = cni_call(&subject.binary, "ADD", &format!("seq-{i}"), &subject.conf)?;
            adds[s].push(t);
        }
        floor.push(cni_call(&args.plexus, "VERSION", "v", r#"{"cniVersion":"1.0.0"}"#)?.1);
    }
    for i in 0..args.sequential {
        for (s, subject) in subjects.iter().enumerate() {
            let (_, t) = cni_call(&subject.binary, "DEL", &format!("seq-{i}"), &subject.conf)?;
            dels[s].push(t);
        }
    }
    println!(
        "## Sequential, {} calls each, interleaved (ms, whole process)\n",
        args.sequential
    );
    println!("| plugin | ADD p50 | ADD p99 | DEL p50 | DEL p99 |");
    println!("|---|---|---|---|---|");
    let mut add_p50 = Vec::new();
    for (s, subject) in subjects.iter().enumerate() {
        let a: Summary = summarise(&mut adds[s]);
        let d: Summary = summarise(&mut dels[s]);
        add_p50.push(a.p50);
        println!(
            "| {} | {} | {} | {} | {} |",
            subject.name,
            ms(a.p50),
            ms(a.p99),
            ms(d.p50),
            ms(d.p99)
        );
    }
    let f = summarise(&mut floor);
    println!(
        "| floor: plexus-ipam VERSION | {} | {} | | |",
        ms(f.p50),
        ms(f.p99)
    );
    println!(
        "\nplexus ADD p50 / host-local ADD p50 = **{:.2}** (target ≤ 0.5)\n",
        add_p50[1].as_secs_f64() / add_p50[0].as_secs_f64()
    );
    Ok(())
}

/// `total` ADDs from `concurrency` threads; returns (elapsed, duplicates found).
fn concurrent_round(
    subject: &Arc<Subject>,
    concurrency: usize,
    total: usize,
    round: usize,
) -> anyhow::Result<(Duration, usize)> {
    let started = Instant::now();
    let handles: Vec<_> = (0..concurrency)
        .map(|t| {
            let subject = Arc::clone(subject);
            let share = total / concurrency + usize::from(t < total % concurrency);
            std::thread::spawn(move || -> anyhow::Result<Vec<String>> {
                (0..share)
                    .map(|i| {
                        let (out, _) = cni_call(
                            &subject.binary,
                            "ADD",
                            &format!("r{round}-t{t}-{i}"),
                            &subject.conf,
                        )?;
                        first_address(&out)
                    })
                    .collect()
            })
        })
        .collect();
    let mut all = Vec::with_capacity(total);
    for h in handles {
        all.extend(
            h.join()
                .map_err(|_| anyhow::anyhow!("caller thread panicked"))??,
        );
    }
    let elapsed = started.elapsed();
    let unique: HashSet<&String> = all.iter().collect();
    Ok((elapsed, all.len() - unique.len()))
}

fn concurrent(args: &IpamArgs, dir: &Path) -> anyhow::Result<()> {
    if args.rounds == 0 {
        return Ok(());
    }
    println!(
        "## {} concurrent callers, {} ADDs in all, {} rounds (median)\n",
        args.concurrency, args.concurrent_total, args.rounds
    );
    println!("| plugin | ADD/s (median) | rounds ADD/s | duplicates |");
    println!("|---|---|---|---|");
    let mut rates: [Vec<f64>; 2] = [Vec::new(), Vec::new()];
    let mut dups = [0usize; 2];
    for round in 0..args.rounds {
        let subjects = [
            Arc::new(host_local(
                &args.host_local,
                &dir.join(format!("cc-hl-{round}")),
                "10.65.0.0/16",
            )),
            Arc::new(plexus(
                &args.plexus,
                &dir.join(format!("cc-{round}.db")),
                "10.65.0.0/16",
            )),
        ];
        for (s, subject) in subjects.iter().enumerate() {
            let (elapsed, d) =
                concurrent_round(subject, args.concurrency, args.concurrent_total, round)?;
            rates[s].push(args.concurrent_total as f64 / elapsed.as_secs_f64());
            dups[s] += d;
        }
    }
    let names = ["host-local", "plexus-ipam (SQLite)"];
    let mut medians = Vec::new();
    for s in 0..2 {
        let mut r = rates[s].clone();
        r.sort_by(f64::total_cmp);
        let median = r[r.len() / 2];
        medians.push(median);
        let list: Vec<String> = rates[s].iter().map(|x| format!("{x:.0}")).collect();
        println!(
            "| {} | {median:.0} | {} | {} |",
            names[s],
            list.join(", "),
            dups[s]
        );
    }
    println!(
        "\nplexus / host-local throughput = **{:.2}×** (target ≥ 2)\n",
        medians[1] / medians[0]
    );
    Ok(())
}

/// Scatters `count` allocations over 10.0.0.0/8 (a fixed-seed LCG; no address twice).
fn fill(db: &Path, count: u32) -> anyhow::Result<Duration> {
    let store = SqliteStore::open(&SqliteConfig::new(db))?;
    let set_id = plexus_ipam_core::parse_pool_config("big", &json!({"range": "10.0.0.0/8"}), None)?
        .range_sets[0]
        .id();
    let started = Instant::now();
    // x -> (a*x + c) mod 2^24 is a permutation of the /8 (Hull–Dobell), so no repeats.
    let mut x: u32 = 12345;
    let allocations = (0..count).filter_map(move |i| {
        x = x.wrapping_mul(1_103_515_245).wrapping_add(12_345) & 0x00ff_ffff;
        let host = x;
        // Skip the network and broadcast addresses of the /8.
        if host == 0 || host == 0x00ff_ffff {
            return None;
        }
        Some(Allocation {
            network: "big".into(),
            container_id: format!("fill-{i}"),
            ifname: "eth0".into(),
            ip: IpAddr::V4(Ipv4Addr::from(0x0a00_0000 | host)),
            range_set: set_id.clone(),
            owner: Owner::default(),
            created_at: 0,
            node: None,
        })
    });
    store.bulk_insert(allocations).context("bulk insert")?;
    Ok(started.elapsed())
}

fn big_pool(args: &IpamArgs, dir: &Path) -> anyhow::Result<()> {
    let big_db = dir.join("big.db");
    let fill_time = fill(&big_db, args.big_fill)?;
    let subjects = [
        plexus(&args.plexus, &dir.join("empty.db"), "10.0.0.0/8"),
        plexus(&args.plexus, &big_db, "10.0.0.0/8"),
    ];
    // Same network name in both so the only difference is what the store holds.
    let subjects: Vec<Subject> = subjects
        .into_iter()
        .map(|s| Subject {
            conf: s.conf.replace("\"bench\"", "\"big\""),
            ..s
        })
        .collect();
    let mut samples = [Vec::new(), Vec::new()];
    for i in 0..args.big_adds {
        for (s, subject) in subjects.iter().enumerate() {
            let (_, t) = cni_call(&subject.binary, "ADD", &format!("big-{i}"), &subject.conf)?;
            samples[s].push(t);
        }
    }
    let empty = summarise(&mut samples[0]);
    let full = summarise(&mut samples[1]);
    let size = std::fs::metadata(&big_db)?.len();
    let wal = std::fs::metadata(big_db.with_extension("db-wal"))
        .map(|m| m.len())
        .unwrap_or(0);
    println!(
        "## ADD into a /8 pool holding {} allocations vs an empty /8 pool\n",
        args.big_fill
    );
    println!("| pool | ADD p50 (ms) | ADD p99 (ms) |");
    println!("|---|---|---|");
    println!("| empty /8 | {} | {} |", ms(empty.p50), ms(empty.p99));
    println!(
        "| /8 with {} allocations | {} | {} |",
        args.big_fill,
        ms(full.p50),
        ms(full.p99)
    );
    println!(
        "\nfull / empty ADD p50 = **{:.2}** (target ≤ 1.5); fill took {:.1} s; DB file {:.1} MiB (+ WAL {:.1} MiB)\n",
        full.p50.as_secs_f64() / empty.p50.as_secs_f64(),
        fill_time.as_secs_f64(),
        size as f64 / 1_048_576.0,
        wal as f64 / 1_048_576.0
    );
    Ok(())
}
