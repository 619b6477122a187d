//! Scale benchmark (ignored by default): `showalloc` and `usage` on an IPv4 /8 holding
//! 1,000,000 allocations in SQLite. Run it with
//! `cargo test --release -p plexusctl --test scale -- --ignored --nocapture`
//! (`PLEXUS_SCALE_N` changes the count). Targets: first `showalloc` line < 100 ms,
//! `usage` < 1 s.

mod common;

use std::io::{BufRead, BufReader};
use std::net::{IpAddr, Ipv4Addr};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::Env;
use ipnet::IpNet;
use plexus_ipam_core::{BlockPolicy, Range, RangeSet};
use plexus_store::{AttachmentKey, Claim, ClaimContext, Owner, SqliteConfig, SqliteStore, Store};

/// Addresses claimed per transaction (one attachment, one range set per address).
const BATCH: usize = 1000;

/// Fills `network` with `n` allocations packed from 10.0.0.2 upward (as next-fit and
/// per-node blocks pack them), `BATCH` per transaction.
fn populate(env: &Env, network: &str, n: usize) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let store = SqliteStore::open(&SqliteConfig::new(env.db())).unwrap();
    let subnet: IpNet = "10.0.0.0/8".parse().unwrap();
    // Idempotency is per (attachment, range set): one single-address set per slot.
    let sets: Vec<RangeSet> = (0..BATCH as u32)
        .map(|j| {
            let ip = IpAddr::V4(Ipv4Addr::from(u32::from(Ipv4Addr::new(10, 255, 0, 1)) + j));
            RangeSet::new(vec![
                Range::new(subnet, Some(ip), Some(ip), None, Vec::new()).unwrap(),
            ])
            .unwrap()
        })
        .collect();
    let ctx = ClaimContext::new("bench", BlockPolicy::disabled());
    let base = u32::from(Ipv4Addr::new(10, 0, 0, 2));
    let started = Instant::now();
    for batch in 0..n.div_ceil(BATCH) {
        let count = BATCH.min(n - batch * BATCH);
        let claims: Vec<Claim<'_>> = (0..count)
            .map(|j| Claim::Static {
                set: &sets[j],
                ip: IpAddr::V4(Ipv4Addr::from(base + (batch * BATCH + j) as u32)),
            })
            .collect();
        let key = AttachmentKey::new(network, format!("c{batch}"), "eth0");
        let owner = Owner {
            pod_namespace: Some("bench".into()),
            pod_name: Some(format!("pod-{batch}")),
            pod_uid: None,
            details: None,
        };
        rt.block_on(store.claim(&key, &owner, &claims, &ctx))
            .unwrap();
    }
    eprintln!("populated {n} allocations in {:?}", started.elapsed());
}

#[test]
#[ignore = "benchmark: a million allocations; run with --ignored --release"]
fn showalloc_and_usage_on_a_slash_8_with_a_million_allocations() {
    let n: usize = std::env::var("PLEXUS_SCALE_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let env = Env::new();
    std::fs::write(
        env.conf_dir().join("10-big.conflist"),
        common::bridge_conflist("big", "10.0.0.0/8", "10.0.0.1", &env.db()),
    )
    .unwrap();
    populate(&env, "big", n);

    // usage: one count per row.
    let started = Instant::now();
    let usage = env.ctl(&["usage", "big"]);
    let usage_time = started.elapsed();
    assert!(usage.ok().contains(&format!("{n}")), "{usage:#?}");
    eprintln!(
        "usage: {usage_time:?} ({} rows)",
        usage.stdout.lines().count()
    );

    // showalloc: time to the first line and to the first allocation line, then the rest.
    let started = Instant::now();
    let mut child = Command::new(common::binary())
        .arg("--store")
        .arg(env.db())
        .arg("--cni-conf-dir")
        .arg(env.conf_dir())
        .args(["showalloc", "big"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let first = lines.next().unwrap().unwrap();
    let first_line = started.elapsed();
    let mut first_alloc = None;
    let mut count = 1usize;
    for line in lines {
        let line = line.unwrap();
        if first_alloc.is_none() && line.contains("allocated") {
            first_alloc = Some(started.elapsed());
        }
        count += 1;
    }
    let total = started.elapsed();
    assert!(child.wait().unwrap().success());
    eprintln!(
        "showalloc: first line {first_line:?} ({first:?}), first allocation {first_alloc:?}, \
         {count} lines in {total:?}"
    );
    assert_eq!(
        count,
        7 + 3 + n,
        "7 header lines, 3 reserved, one per allocation"
    );

    // The usage target holds in release builds; debug builds only report.
    if !cfg!(debug_assertions) {
        assert!(
            usage_time < Duration::from_secs(1),
            "usage took {usage_time:?}"
        );
        assert!(
            first_line < Duration::from_millis(100),
            "first line after {first_line:?}"
        );
    }
}
