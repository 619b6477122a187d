//! Crash consistency: concurrent runtimes drive ADD/DEL through the real `plexus-ipam`
//! binary while the harness SIGKILLs plugin processes at random points (a delay drawn from
//! 0 to the verb's typical run time, half of them from its second half, so kills land while
//! connecting, searching, inside the store transaction and after the commit), for each
//! backend (SQLite, and the shared PostgreSQL and etcd of `scripts/with-servers`).
//!
//! The harness keeps the truth: an ADD that answered success is live until its DEL answers
//! success. A killed ADD is unknown; like a runtime (CNI: a failed ADD is followed by DEL)
//! it then calls DEL until that succeeds, except for a few it "forgets" (a runtime that
//! crashed too; only ADDs that had committed), which only GC can collect. A killed DEL is retried. Afterwards GC runs
//! (itself killed a few times first) with the true live set as `cni.dev/valid-attachments`
//! and the store is read back through `plexus_store`: no address is held by two
//! attachments, every live attachment holds exactly the addresses its ADD returned, every
//! other address is free. Pools are small (40 addresses per family for up to 26 holders)
//! so a duplicate or leak would show; each ADD claims one IPv4 and one IPv6 address in one
//! transaction, so a half-written claim would show too.
//!
//! The CI form makes 100 kills per backend; `scripts/crash-test` runs the long form
//! (`PLEXUS_CRASH_KILLS`, default there 1,000) and prints the figures.

mod fault;

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use fault::{Backend, Call, Rng, Run, gc_conf, list, open_store, runtime, shared_store};
use plexus_store::{AttachmentKey, Store};
use serde_json::{Value, json};

/// Kills per backend when `PLEXUS_CRASH_KILLS` is not set (the CI form).
const DEFAULT_KILLS: usize = 100;
/// Concurrent runtimes, each on its own node name.
const WORKERS: usize = 4;
/// Live attachments per runtime at most.
const LIVE_PER_WORKER: usize = 5;
/// Killed ADDs left for GC at most at any time (keeps the pool from running out).
const MAX_ORPHANS: usize = 6;
/// Probability that a call is killed.
const KILL_CHANCE: f64 = 0.5;
/// Probability that a killed ADD which committed is forgotten instead of followed by DEL.
const FORGET_CHANCE: f64 = 0.5;
/// The store deadline: generous, this test is about consistency, not latency.
const TIMEOUT_MS: u64 = 30_000;

/// Exponentially weighted typical run time of unkilled calls, per verb.
#[derive(Debug)]
struct Typical(Mutex<BTreeMap<&'static str, Duration>>);

impl Typical {
    fn get(&self, verb: &'static str) -> Duration {
        let map = self.0.lock().unwrap();
        map.get(verb)
            .or_else(|| map.get("ADD"))
            .copied()
            .unwrap_or(Duration::from_millis(20))
    }

    fn observe(&self, verb: &'static str, run: &Run) {
        if run.killed() {
            return;
        }
        let mut map = self.0.lock().unwrap();
        let entry = map.entry(verb).or_insert(run.took);
        *entry = entry.mul_f64(0.9) + run.took.mul_f64(0.1);
    }
}

/// When to kill a call of `verb`, or None to let it run: half the kills are drawn from the
/// whole typical run time, half from its second half (where the store transaction and its
/// commit are; the first half is mostly process start and connecting).
fn kill_delay(rng: &mut Rng, typical: &Typical, verb: &'static str) -> Option<Duration> {
    if !rng.chance(KILL_CHANCE) {
        return None;
    }
    let t = typical.get(verb);
    Some(if rng.chance(0.5) {
        rng.duration(t)
    } else {
        t / 2 + rng.duration(t / 2)
    })
}

/// Counters of one run, summed over the workers.
#[derive(Debug, Default, Clone)]
struct Figures {
    ops: usize,
    adds_ok: usize,
    dels_ok: usize,
    killed_adds: usize,
    killed_adds_committed: usize,
    killed_dels: usize,
    killed_gcs: usize,
    forgotten: usize,
}

impl Figures {
    fn add(&mut self, other: &Figures) {
        self.ops += other.ops;
        self.adds_ok += other.adds_ok;
        self.dels_ok += other.dels_ok;
        self.killed_adds += other.killed_adds;
        self.killed_adds_committed += other.killed_adds_committed;
        self.killed_dels += other.killed_dels;
        self.killed_gcs += other.killed_gcs;
        self.forgotten += other.forgotten;
    }

    fn kills(&self) -> usize {
        self.killed_adds + self.killed_dels + self.killed_gcs
    }
}

/// State shared by the workers.
struct Shared {
    conf: Value,
    store: Value,
    network: String,
    target: usize,
    kills: AtomicUsize,
    orphans: Mutex<Vec<String>>,
    /// ip -> container, for every address handed out by a successful ADD and not yet
    /// given back by a successful DEL.
    live: Mutex<BTreeMap<IpAddr, String>>,
    typical: Typical,
}

/// What one worker leaves behind.
struct WorkerEnd {
    live: Vec<(String, Vec<IpAddr>)>,
    killed_adds: BTreeSet<String>,
    figures: Figures,
}

fn expect_success(run: &Run, what: &str) {
    assert!(
        run.succeeded(),
        "{what} failed while the store was healthy: {run:?}"
    );
}

/// DEL until it succeeds (a runtime retries a failed DEL), each try possibly killed.
fn del_until_done(
    shared: &Shared,
    rng: &mut Rng,
    node: &str,
    container: &str,
    figures: &mut Figures,
) {
    loop {
        let kill = kill_delay(rng, &shared.typical, "DEL");
        let call = Call {
            command: "DEL",
            container,
            node,
            conf: &shared.conf,
        };
        let run = call.run(kill);
        figures.ops += 1;
        shared.typical.observe("DEL", &run);
        if run.killed() {
            figures.killed_dels += 1;
            shared.kills.fetch_add(1, Ordering::Relaxed);
            continue;
        }
        expect_success(&run, &format!("DEL of {container}"));
        figures.dels_ok += 1;
        return;
    }
}

fn worker(shared: &Shared, index: usize, seed: u64) -> WorkerEnd {
    let mut rng = Rng::new(seed ^ (index as u64 + 1).wrapping_mul(0x9e37_79b9));
    let node = format!("node-{index}");
    let rt = runtime();
    let store = open_store(&rt, &shared.store);
    let mut mine: Vec<(String, Vec<IpAddr>)> = Vec::new();
    let mut killed_adds = BTreeSet::new();
    let mut figures = Figures::default();
    let mut seq = 0usize;
    let op_limit = shared.target * 40 + 200;
    while shared.kills.load(Ordering::Relaxed) < shared.target {
        assert!(
            figures.ops < op_limit,
            "worker {index}: {op_limit} calls without reaching {} kills",
            shared.target
        );
        let add = mine.is_empty() || (mine.len() < LIVE_PER_WORKER && rng.chance(0.6));
        if add {
            seq += 1;
            let container = format!("w{index}-{seq}");
            let kill = kill_delay(&mut rng, &shared.typical, "ADD");
            let call = Call {
                command: "ADD",
                container: &container,
                node: &node,
                conf: &shared.conf,
            };
            let run = call.run(kill);
            figures.ops += 1;
            shared.typical.observe("ADD", &run);
            if run.killed() {
                figures.killed_adds += 1;
                shared.kills.fetch_add(1, Ordering::Relaxed);
                killed_adds.insert(container.clone());
                let key = AttachmentKey::new(&shared.network, &container, "eth0");
                let held = rt
                    .block_on(store.attachment(&key))
                    .unwrap_or_else(|e| panic!("read {container}: {e}"));
                assert!(
                    held.is_empty() || held.len() == 2,
                    "killed ADD of {container} left a half-written claim: {held:?}"
                );
                figures.killed_adds_committed += usize::from(!held.is_empty());
                // A forgotten ADD that committed nothing would test nothing: only those
                // holding addresses are left for GC.
                let forget = !held.is_empty() && rng.chance(FORGET_CHANCE) && {
                    let mut orphans = shared.orphans.lock().unwrap();
                    let room = orphans.len() < MAX_ORPHANS;
                    if room {
                        orphans.push(container.clone());
                    }
                    room
                };
                if forget {
                    figures.forgotten += 1;
                } else {
                    del_until_done(shared, &mut rng, &node, &container, &mut figures);
                }
                continue;
            }
            expect_success(&run, &format!("ADD of {container}"));
            figures.adds_ok += 1;
            let ips = run.ips();
            assert_eq!(ips.len(), 2, "one IPv4 and one IPv6 address: {run:?}");
            let mut live = shared.live.lock().unwrap();
            for ip in &ips {
                let holder = live.insert(*ip, container.clone());
                assert!(
                    holder.is_none(),
                    "{ip} handed to {container} while {holder:?} holds it"
                );
            }
            drop(live);
            mine.push((container, ips));
        } else {
            let (container, ips) = mine.swap_remove(rng.below(mine.len() as u64) as usize);
            // Forget it before DEL: until DEL commits nobody else can get it.
            let mut live = shared.live.lock().unwrap();
            for ip in &ips {
                live.remove(ip);
            }
            drop(live);
            del_until_done(shared, &mut rng, &node, &container, &mut figures);
        }
    }
    WorkerEnd {
        live: mine,
        killed_adds,
        figures,
    }
}

/// Rows of the store as container -> sorted addresses.
fn by_container(store: &dyn Store, network: &str) -> BTreeMap<String, Vec<IpAddr>> {
    let rt = runtime();
    let mut rows: BTreeMap<String, Vec<IpAddr>> = BTreeMap::new();
    for a in list(&rt, store, network) {
        assert_eq!(a.ifname, "eth0", "{a:?}");
        rows.entry(a.container_id).or_default().push(a.ip);
    }
    rows.values_mut().for_each(|ips| ips.sort());
    rows
}

/// Addresses held by more than one attachment in `rows`.
fn duplicates(rows: &BTreeMap<String, Vec<IpAddr>>) -> Vec<IpAddr> {
    let mut seen = BTreeSet::new();
    rows.values()
        .flatten()
        .filter(|ip| !seen.insert(**ip))
        .copied()
        .collect()
}

fn crash_run(backend: Backend) {
    let test = format!("crash_kills_on_{}", backend.name());
    let dir = tempfile::tempdir().unwrap();
    let Some(store) = shared_store(backend, dir.path(), &test, TIMEOUT_MS) else {
        return;
    };
    let target: usize = std::env::var("PLEXUS_CRASH_KILLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(DEFAULT_KILLS);
    let seed = std::env::var("PLEXUS_CRASH_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(Rng::clock_seed);
    let network = format!("crash-{}-{}", backend.name(), fault::unique_suffix());
    // 40 addresses per family in blocks of 8, four nodes: own blocks, new blocks and
    // borrowing all happen.
    let conf = json!({
        "cniVersion": "1.1.0", "name": network, "type": "bridge",
        "ipam": {"type": "plexus-ipam", "store": store, "blocks": {"v4": 29, "v6": 125},
                 "ranges": [
                    [{"subnet": "10.77.0.0/26", "rangeStart": "10.77.0.1", "rangeEnd": "10.77.0.40"}],
                    [{"subnet": "fd77::/122", "rangeStart": "fd77::1", "rangeEnd": "fd77::28"}]]}
    });
    let shared = Arc::new(Shared {
        conf,
        store: store.clone(),
        network: network.clone(),
        target,
        kills: AtomicUsize::new(0),
        orphans: Mutex::default(),
        live: Mutex::default(),
        typical: Typical(Mutex::default()),
    });
    // Calibrate the typical run times (the workers keep them current under load).
    for i in 0..3 {
        let container = format!("calibrate-{i}");
        for command in ["ADD", "DEL"] {
            let call = Call {
                command,
                container: &container,
                node: "node-0",
                conf: &shared.conf,
            };
            let run = call.run(None);
            expect_success(&run, &format!("{command} of {container}"));
            shared.typical.observe(command, &run);
        }
    }
    let started = std::time::Instant::now();
    let handles: Vec<_> = (0..WORKERS)
        .map(|i| {
            let shared = Arc::clone(&shared);
            std::thread::spawn(move || worker(&shared, i, seed))
        })
        .collect();
    let mut figures = Figures::default();
    let mut live: BTreeMap<String, Vec<IpAddr>> = BTreeMap::new();
    let mut killed_adds = BTreeSet::new();
    for handle in handles {
        let end = handle.join().expect("a worker failed");
        figures.add(&end.figures);
        live.extend(end.live);
        killed_adds.extend(end.killed_adds);
    }

    let rt = runtime();
    let reader = open_store(&rt, &store);
    // Before GC: every live attachment holds exactly its addresses; anything else belongs
    // to an attachment whose ADD was killed (forgotten, or committed after its DEL read).
    let before = by_container(&*reader, &network);
    for (container, ips) in &live {
        assert_eq!(
            before.get(container),
            Some(ips),
            "live {container} before GC"
        );
    }
    let stale: Vec<&String> = before.keys().filter(|c| !live.contains_key(*c)).collect();
    for container in &stale {
        assert!(
            killed_adds.contains(*container),
            "{container} holds addresses but its ADD answered success and its DEL too, \
             or it was never added: {before:?}"
        );
    }

    // GC with the true live set, killed a few times first.
    let gc = gc_conf(&shared.conf, live.keys());
    let mut rng = Rng::new(seed ^ 0x6763);
    for _ in 0..5 {
        let kill = rng.duration(shared.typical.get("GC").max(shared.typical.get("ADD")));
        let call = Call {
            command: "GC",
            container: "",
            node: "node-0",
            conf: &gc,
        };
        let run = call.run(Some(kill));
        figures.ops += 1;
        if run.killed() {
            figures.killed_gcs += 1;
        } else {
            expect_success(&run, "GC");
        }
    }
    // Then each worker node's runtime: a node's GC collects that node's allocations only.
    for index in 0..WORKERS {
        let node = format!("node-{index}");
        let call = Call {
            command: "GC",
            container: "",
            node: &node,
            conf: &gc,
        };
        let run = call.run(None);
        expect_success(&run, "GC");
        figures.ops += 1;
    }

    let after = by_container(&*reader, &network);
    let dup = duplicates(&after);
    let leaks: Vec<&String> = after.keys().filter(|c| !live.contains_key(*c)).collect();
    let lost: Vec<&String> = live
        .iter()
        .filter(|(c, ips)| after.get(*c) != Some(ips))
        .map(|(c, _)| c)
        .collect();
    let held_v4 = rt
        .block_on(reader.count_between(
            &network,
            "10.77.0.1".parse().unwrap(),
            "10.77.0.40".parse().unwrap(),
        ))
        .unwrap();
    let held_v6 = rt
        .block_on(reader.count_between(
            &network,
            "fd77::1".parse().unwrap(),
            "fd77::28".parse().unwrap(),
        ))
        .unwrap();
    eprintln!(
        "crash-test {}: kills={} (ADD {}, DEL {}, GC {}), calls={}, ADD ok={}, DEL ok={}, \
         killed ADDs found committed={}, forgotten (left to GC)={}, collected by GC={}, \
         live at end={}, duplicates={}, leaks={}, lost={}, seconds={:.1}, seed={seed}",
        backend.name(),
        figures.kills(),
        figures.killed_adds,
        figures.killed_dels,
        figures.killed_gcs,
        figures.ops,
        figures.adds_ok,
        figures.dels_ok,
        figures.killed_adds_committed,
        figures.forgotten,
        stale.len(),
        live.len(),
        dup.len(),
        leaks.len(),
        lost.len(),
        started.elapsed().as_secs_f64(),
    );
    assert!(dup.is_empty(), "addresses held twice: {dup:?} in {after:?}");
    assert!(leaks.is_empty(), "held after GC but not live: {leaks:?}");
    assert!(
        lost.is_empty(),
        "live attachments not holding their addresses: {lost:?}"
    );
    assert_eq!(
        held_v4 as usize,
        live.len(),
        "every other IPv4 address is free"
    );
    assert_eq!(
        held_v6 as usize,
        live.len(),
        "every other IPv6 address is free"
    );
    assert!(figures.kills() >= target, "only {} kills", figures.kills());

    // Leave nothing behind on the shared servers.
    let clean = gc_conf(&shared.conf, []);
    for index in 0..WORKERS {
        let node = format!("node-{index}");
        let call = Call {
            command: "GC",
            container: "",
            node: &node,
            conf: &clean,
        };
        expect_success(&call.run(None), "cleanup GC");
    }
    assert!(list(&rt, &*reader, &network).is_empty(), "cleanup GC");
}

#[test]
fn crash_kills_on_sqlite() {
    crash_run(Backend::Sqlite);
}

#[test]
fn crash_kills_on_postgres() {
    crash_run(Backend::Postgres);
}

#[test]
fn crash_kills_on_etcd() {
    crash_run(Backend::Etcd);
}
