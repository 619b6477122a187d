//! Many writers, each with its own connection (as separate plugin processes would have),
//! claiming and releasing from one small pool: no address is ever held twice, and the
//! table ends up exactly equal to what the writers believe they hold.

mod common;

use std::collections::{BTreeSet, HashMap};
use std::net::IpAddr;
use std::sync::{Arc, Barrier, Mutex};

use common::{SplitMix, range_set, runtime};
use plexus_store::{AttachmentKey, Claim, Owner, SqliteConfig, SqliteStore, Store};

const THREADS: usize = 16;
const OPS_PER_THREAD: usize = 2_000;
/// Live attachments per thread: 16 × 12 = 192 of the pool's 254 addresses.
const MAX_LIVE: usize = 12;
const NETWORK: &str = "busy-net";

/// Who holds each address right now, as the writers observed it. An address enters after
/// its claim committed and leaves before its release starts, so a second holder showing
/// up is a real double allocation, never a race of the bookkeeping.
type Ledger = Mutex<HashMap<IpAddr, AttachmentKey>>;

fn worker(
    path: std::path::PathBuf,
    thread: usize,
    start: &Barrier,
    ledger: &Ledger,
) -> Vec<(AttachmentKey, Vec<IpAddr>)> {
    start.wait();
    // Everyone opens the brand-new file at once: migrations must not race either.
    // Sixteen writers on two shared cores queue behind each other; under a loaded CI machine
    // the default 10 s busy timeout can expire. The test is about duplicates, not latency.
    let mut config = SqliteConfig::new(path);
    config.busy_timeout = std::time::Duration::from_secs(120);
    let store = SqliteStore::open(&config).unwrap();
    let rt = runtime();
    let (v4, v6) = (range_set("10.2.0.0/24"), range_set("fd00:2::/120"));
    let mut rng = SplitMix(0x5eed_0000 + thread as u64);
    let mut live: Vec<(AttachmentKey, Vec<IpAddr>)> = Vec::new();
    for op in 0..OPS_PER_THREAD {
        let claim_now = live.is_empty() || (live.len() < MAX_LIVE && rng.below(2) == 0);
        if claim_now {
            let key = AttachmentKey::new(NETWORK, format!("t{thread}-op{op}"), "eth1");
            let dual = rng.below(3) == 0;
            let claims: Vec<Claim<'_>> = if dual {
                vec![Claim::Dynamic(&v4), Claim::Dynamic(&v6)]
            } else {
                vec![Claim::Dynamic(&v4)]
            };
            let got = rt
                .block_on(store.claim(&key, &Owner::default(), &claims, &common::ctx()))
                .unwrap();
            let ips: Vec<IpAddr> = got.iter().map(|a| a.ip).collect();
            let mut held = ledger.lock().unwrap();
            for ip in &ips {
                if let Some(other) = held.insert(*ip, key.clone()) {
                    panic!("{ip} handed to {key:?} while {other:?} still holds it");
                }
            }
            drop(held);
            live.push((key, ips));
        } else {
            let index = usize::try_from(rng.below(live.len() as u64)).unwrap();
            let (key, ips) = live.swap_remove(index);
            {
                let mut held = ledger.lock().unwrap();
                for ip in &ips {
                    assert_eq!(held.remove(ip).as_ref(), Some(&key), "{ip} ledger");
                }
            }
            let released = rt.block_on(store.release(&key)).unwrap();
            let released: BTreeSet<IpAddr> = released.iter().map(|a| a.ip).collect();
            assert_eq!(
                released,
                ips.iter().copied().collect(),
                "release of {key:?}"
            );
        }
    }
    live
}

#[test]
fn sixteen_writers_never_share_an_address() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("contended.db");
    let start = Arc::new(Barrier::new(THREADS));
    let ledger: Arc<Ledger> = Arc::default();
    let handles: Vec<_> = (0..THREADS)
        .map(|thread| {
            let (path, start, ledger) = (path.clone(), start.clone(), ledger.clone());
            std::thread::spawn(move || worker(path, thread, &start, &ledger))
        })
        .collect();
    let mut expected: BTreeSet<(String, IpAddr)> = BTreeSet::new();
    for handle in handles {
        for (key, ips) in handle.join().unwrap() {
            expected.extend(ips.into_iter().map(|ip| (key.container_id.clone(), ip)));
        }
    }

    let store = SqliteStore::open(&SqliteConfig::new(&path)).unwrap();
    let table = runtime().block_on(store.list(NETWORK)).unwrap();
    let actual: BTreeSet<(String, IpAddr)> = table
        .iter()
        .map(|a| (a.container_id.clone(), a.ip))
        .collect();
    assert_eq!(actual.len(), table.len(), "no row listed twice");
    assert_eq!(
        actual, expected,
        "the table is exactly the set of live attachments"
    );
    let ledger = ledger.lock().unwrap();
    assert_eq!(ledger.len(), table.len());
}
