//! Claim latency of the SQLite store in an empty /8 pool versus one already holding
//! 1,000,000 allocations, plus the cost of opening the database (done on every CNI call).
//!
//! Claims run with per-node blocks (the default) and without; a third run uses a node
//! whose block search starts inside the pre-filled addresses (a pool filled before blocks
//! existed), the worst case of the bounded block search.
//!
//! Run: `cargo bench -p plexus-store --bench claim_scale` (results go to stderr).
//! Set `PLEXUS_BENCH_PREFILL` to change the number of pre-filled allocations.

use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;
use std::time::{Duration, Instant};

use plexus_ipam_core::range::{Range, RangeSet};
use plexus_store::{
    Allocation, AttachmentKey, BlockPolicy, Claim, ClaimContext, Owner, SqliteConfig, SqliteStore,
    Store,
};

const NETWORK: &str = "bench";
const CLAIMS: u32 = 2_000;

fn pool() -> RangeSet {
    let subnet = "10.0.0.0/8".parse().expect("bench subnet");
    let range = Range::new(subnet, None, None, None, Vec::new()).expect("bench range");
    RangeSet::new(vec![range]).expect("bench range set")
}

fn prefill(store: &SqliteStore, set_id: &str, count: u32) {
    let rows = (1..=count).map(|i| Allocation {
        network: NETWORK.into(),
        container_id: format!("prefill-{i}"),
        ifname: "eth0".into(),
        ip: IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + i)),
        range_set: set_id.into(),
        owner: Owner::default(),
        created_at: 0,
        node: None,
    });
    let started = Instant::now();
    let inserted = store.bulk_insert(rows).expect("bulk insert");
    eprintln!(
        "  bulk_insert of {inserted} allocations: {:.1?}",
        started.elapsed()
    );
}

/// The node of the default runs; its block search starts beyond the pre-filled addresses.
const NODE: &str = "bench-node";
/// A node whose block search starts inside the pre-filled addresses (block 4886 of
/// 262,144; the first 1,000,000 addresses span blocks 0 to 15,625).
const NODE_IN_PREFILL: &str = "bench-node-90";

/// Mean time per claim over `CLAIMS` new attachments claimed by `node` under `blocks`.
fn time_claims(
    store: &SqliteStore,
    set: &RangeSet,
    label: &str,
    node: &str,
    blocks: BlockPolicy,
) -> Duration {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let ctx = ClaimContext::new(node, blocks);
    let started = Instant::now();
    for i in 0..CLAIMS {
        let key = AttachmentKey::new(NETWORK, format!("{label}-{i}"), "eth0");
        rt.block_on(store.claim(&key, &Owner::default(), &[Claim::Dynamic(set)], &ctx))
            .expect("claim");
    }
    started.elapsed() / CLAIMS
}

fn time_open(path: &Path) -> Duration {
    let runs = 200;
    let started = Instant::now();
    for _ in 0..runs {
        drop(SqliteStore::open(&SqliteConfig::new(path)).expect("open"));
    }
    started.elapsed() / runs
}

fn main() {
    let prefill_count: u32 = std::env::var("PLEXUS_BENCH_PREFILL")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let dir = tempfile::tempdir().expect("tempdir");
    let set = pool();

    let empty_path = dir.path().join("empty.db");
    let empty = SqliteStore::open(&SqliteConfig::new(&empty_path)).expect("open");
    let blocks = BlockPolicy::default();
    let empty_claim = time_claims(&empty, &set, "empty", NODE, blocks);
    eprintln!("claim into an empty /8: {empty_claim:.1?} per claim");
    let empty_plain = time_claims(&empty, &set, "empty-plain", NODE, BlockPolicy::disabled());
    eprintln!("claim into an empty /8 without blocks: {empty_plain:.1?} per claim");

    let full_path = dir.path().join("full.db");
    let full = SqliteStore::open(&SqliteConfig::new(&full_path)).expect("open");
    eprintln!("pre-filling {prefill_count} allocations:");
    prefill(&full, &set.id(), prefill_count);
    let full_claim = time_claims(&full, &set, "full", NODE, blocks);
    eprintln!("claim into a /8 holding {prefill_count}: {full_claim:.1?} per claim");
    eprintln!(
        "ratio full/empty: {:.2}",
        full_claim.as_secs_f64() / empty_claim.as_secs_f64()
    );
    let full_plain = time_claims(&full, &set, "full-plain", NODE, BlockPolicy::disabled());
    eprintln!("claim into a /8 holding {prefill_count} without blocks: {full_plain:.1?} per claim");
    let worst = time_claims(&full, &set, "full-legacy", NODE_IN_PREFILL, blocks);
    eprintln!(
        "claim into a /8 holding {prefill_count}, block search starting in the pre-filled \
         addresses: {worst:.1?} per claim"
    );

    eprintln!(
        "open (schema current), empty db: {:.1?}",
        time_open(&empty_path)
    );
    eprintln!(
        "open (schema current), {prefill_count} rows: {:.1?}",
        time_open(&full_path)
    );
}
