//! One store-outage scenario through the real plugin binary: a healthy round, a runtime
//! churning ADD/DEL in the background while the store breaks, the answers the plugin must
//! give while it is broken (ADD and DEL: code 11 within the deadline; STATUS: code 50
//! within 2 s), then recovery without manual steps and a check that nothing was lost,
//! duplicated or half-written.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use plexus_store::AttachmentKey;
use serde_json::{Value, json};

use super::{Call, Run, gc_conf, list, open_store, runtime};

/// The store deadline the outage tests configure (`timeout_ms` / `busy_timeout_ms`).
pub const DEADLINE: Duration = Duration::from_millis(2000);
/// Slack on a loaded 2-core machine: process start, scheduling, the last backoff step.
pub const MARGIN: Duration = Duration::from_millis(1500);
/// STATUS must answer within this (the runtime polls it).
pub const STATUS_LIMIT: Duration = Duration::from_secs(2);
/// How long after the store is back the first ADD may still fail.
pub const RECOVERY_LIMIT: Duration = Duration::from_secs(20);

/// Asserts that `run` failed with CNI `code` within `limit`.
pub fn assert_fails_within(run: &Run, code: u64, limit: Duration, what: &str) {
    assert_eq!(run.cni_code(), Some(code), "{what}: {run:?}");
    assert!(
        !run.cni_msg().is_empty(),
        "{what}: a clear message: {run:?}"
    );
    assert!(
        run.took <= limit,
        "{what}: answered after {:?}, limit {limit:?}: {run:?}",
        run.took
    );
}

/// The network configuration and the truth about it.
pub struct Scenario {
    /// The netconf every call gets.
    pub conf: Value,
    /// The `store` object.
    pub store: Value,
    /// The network name.
    pub network: String,
    /// Attachments whose ADD succeeded and whose DEL has not: container -> addresses.
    pub live: BTreeMap<String, Vec<IpAddr>>,
    /// Attachments whose ADD failed (the runtime will DEL them).
    pub failed_adds: BTreeSet<String>,
    /// Live attachments whose DEL failed (the runtime retries it).
    pub pending_dels: BTreeSet<String>,
    /// Prefix of the container ids this runtime makes.
    prefix: String,
    seq: usize,
}

/// Background runtime churning while the store breaks and comes back.
pub struct Churn {
    stop: Arc<AtomicBool>,
    handle: JoinHandle<Scenario>,
}

impl Scenario {
    /// A dual-stack network (one IPv4 and one IPv6 address per ADD, one transaction)
    /// named `network` on `store`.
    pub fn new(network: &str, store: Value) -> Scenario {
        let conf = json!({
            "cniVersion": "1.1.0", "name": network, "type": "bridge",
            "ipam": {"type": "plexus-ipam", "store": store,
                     "ranges": [[{"subnet": "10.66.0.0/24"}], [{"subnet": "fd66::/120"}]]}
        });
        Scenario {
            conf,
            store,
            network: network.to_string(),
            live: BTreeMap::new(),
            failed_adds: BTreeSet::new(),
            pending_dels: BTreeSet::new(),
            prefix: "fg".to_string(),
            seq: 0,
        }
    }

    /// Another runtime on the same network, naming its containers `<prefix>-<n>`.
    fn fork(&self, prefix: &str) -> Scenario {
        Scenario {
            conf: self.conf.clone(),
            store: self.store.clone(),
            network: self.network.clone(),
            live: BTreeMap::new(),
            failed_adds: BTreeSet::new(),
            pending_dels: BTreeSet::new(),
            prefix: prefix.to_string(),
            seq: 0,
        }
    }

    fn next_container(&mut self) -> String {
        self.seq += 1;
        format!("{}-{}", self.prefix, self.seq)
    }

    /// Runs `command` for `container`.
    pub fn call(&self, command: &str, container: &str) -> Run {
        Call {
            command,
            container,
            node: "node-outage",
            conf: &self.conf,
        }
        .run(None)
    }

    /// ADD of a new container; a success is recorded as live, a failure must be code 11
    /// within the deadline and is recorded for the runtime's DEL. Returns the run.
    pub fn add(&mut self) -> Run {
        let container = self.next_container();
        let run = self.call("ADD", &container);
        if run.succeeded() {
            let ips = run.ips();
            assert_eq!(ips.len(), 2, "one IPv4 and one IPv6 address: {run:?}");
            self.live.insert(container, ips);
        } else {
            assert_fails_within(&run, 11, DEADLINE + MARGIN, &format!("ADD of {container}"));
            self.failed_adds.insert(container);
        }
        run
    }

    /// DEL of some live container; a failure must be code 11 within the deadline.
    pub fn del(&mut self) -> Option<Run> {
        let container = self
            .live
            .keys()
            .find(|c| !self.pending_dels.contains(*c))?
            .clone();
        let run = self.call("DEL", &container);
        if run.succeeded() {
            self.live.remove(&container);
        } else {
            assert_fails_within(&run, 11, DEADLINE + MARGIN, &format!("DEL of {container}"));
            self.pending_dels.insert(container);
        }
        Some(run)
    }

    /// Three ADDs and one DEL that must all succeed. On a loaded 2-core CI machine a healthy
    /// store can still miss the short test deadline once; a runtime retries code 11, so each
    /// step gets a few attempts — every failed attempt must itself be a clean code 11 (checked
    /// by `add`/`del`) and is cleaned up like any other failed call.
    pub fn healthy_round(&mut self) {
        for _ in 0..3 {
            self.until_success("ADD", Self::add);
        }
        self.until_success("DEL", |s| s.del().expect("something is live"));
    }

    /// Runs `step` up to four times until it succeeds; fails the test if it never does.
    fn until_success(&mut self, what: &str, mut step: impl FnMut(&mut Self) -> Run) {
        const ATTEMPTS: usize = 4;
        let mut runs = Vec::new();
        for _ in 0..ATTEMPTS {
            let run = step(self);
            let done = run.succeeded();
            runs.push(run);
            if done {
                break;
            }
        }
        assert!(
            runs.last().is_some_and(Run::succeeded),
            "healthy {what} failed {ATTEMPTS} times: {runs:?}"
        );
    }

    /// Starts a runtime churning ADD/DEL on this network in the background.
    pub fn churn(&self, prefix: &str) -> Churn {
        let mut other = self.fork(prefix);
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let handle = std::thread::spawn(move || {
            let mut n = 0usize;
            while !flag.load(Ordering::Relaxed) {
                n += 1;
                if n.is_multiple_of(3) {
                    other.del();
                } else {
                    other.add();
                }
                std::thread::sleep(Duration::from_millis(30));
            }
            other
        });
        Churn { stop, handle }
    }

    /// While the store is broken: ADD and DEL answer 11 within the deadline, STATUS 50
    /// within 2 s, and the failed ADD holds nothing once the store is back (checked later).
    pub fn expect_outage(&mut self, what: &str) {
        let add = self.add();
        assert!(!add.succeeded(), "{what}: ADD succeeded: {add:?}");
        let del = self.del().expect("something is live");
        assert!(!del.succeeded(), "{what}: DEL succeeded: {del:?}");
        let status = self.call("STATUS", "");
        assert_fails_within(&status, 50, STATUS_LIMIT, &format!("{what}: STATUS"));
        eprintln!(
            "{what}: ADD -> 11 in {:?} ({}), DEL -> 11 in {:?}, STATUS -> 50 in {:?} ({})",
            add.took,
            add.cni_msg(),
            del.took,
            status.took,
            status.cni_msg()
        );
    }

    /// After the store is back: ADD works again within [`RECOVERY_LIMIT`] without any
    /// manual step; the churn is stopped and merged; nothing is half-written; the
    /// runtime's DELs of failed ADDs and retried DELs succeed; STATUS answers success; and
    /// the store holds exactly the live attachments' addresses. Returns the recovery time.
    pub fn recover(&mut self, what: &str, churn: Churn) -> Duration {
        let back = Instant::now();
        loop {
            if self.add().succeeded() {
                break;
            }
            assert!(
                back.elapsed() < RECOVERY_LIMIT,
                "{what}: ADD still failing {RECOVERY_LIMIT:?} after the store came back"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        let recovered = back.elapsed();
        churn.stop.store(true, Ordering::Relaxed);
        let other = churn.handle.join().expect("the churning runtime failed");
        assert!(
            other.live.keys().all(|c| !self.live.contains_key(c)),
            "container names collide"
        );
        eprintln!(
            "{what}: the churning runtime saw {} failed ADD(s) and {} failed DEL(s), all code \
             11 within the deadline",
            other.failed_adds.len(),
            other.pending_dels.len()
        );
        self.live.extend(other.live);
        self.failed_adds.extend(other.failed_adds);
        self.pending_dels.extend(other.pending_dels);
        self.check_atomic(what);
        let mut busy = 0;
        for container in std::mem::take(&mut self.failed_adds) {
            let run = self.del_as_a_runtime(&container, back, &mut busy);
            assert!(run.succeeded(), "{what}: DEL after failed ADD: {run:?}");
        }
        for container in std::mem::take(&mut self.pending_dels) {
            let run = self.del_as_a_runtime(&container, back, &mut busy);
            assert!(run.succeeded(), "{what}: retried DEL: {run:?}");
            self.live.remove(&container);
        }
        if busy > 0 {
            eprintln!("{what}: {busy} DEL(s) after recovery answered code 11 and were retried");
        }
        let run = self.call("STATUS", "");
        assert!(run.succeeded(), "{what}: STATUS after recovery: {run:?}");
        self.verify(what);
        eprintln!("{what}: ADD works again {recovered:?} after the store came back");
        recovered
    }

    /// DEL as a runtime sends it: again after code 11 ("try again later"), until
    /// [`RECOVERY_LIMIT`] after `back`. Right after an outage a server may still be busy
    /// (PostgreSQL forking backends for connections queued while it was frozen, or at its
    /// connection limit) past one call's deadline on a loaded machine; every other answer,
    /// and code 11 past the limit, is returned as it is. `busy` counts the retries.
    fn del_as_a_runtime(&self, container: &str, back: Instant, busy: &mut usize) -> Run {
        loop {
            let run = self.call("DEL", container);
            if run.cni_code() != Some(11) || back.elapsed() >= RECOVERY_LIMIT {
                return run;
            }
            *busy += 1;
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Every attachment in the store holds exactly one address per range set (or none),
    /// every live one exactly what its ADD returned, and one whose DEL failed either all
    /// of it or nothing.
    fn check_atomic(&self, what: &str) {
        let rt = runtime();
        let store = open_store(&rt, &self.store);
        for container in self.failed_adds.iter().chain(self.live.keys()) {
            let key = AttachmentKey::new(&self.network, container, "eth0");
            let mut held: Vec<IpAddr> = rt
                .block_on(store.attachment(&key))
                .unwrap_or_else(|e| panic!("{what}: read {container}: {e}"))
                .into_iter()
                .map(|a| a.ip)
                .collect();
            held.sort();
            match self.live.get(container) {
                // A DEL that answered 11 may still have committed (the store applied it and
                // went away before the reply): all or nothing, and the retried DEL is a no-op.
                Some(ips) if self.pending_dels.contains(container) => assert!(
                    held.is_empty() || &held == ips,
                    "{what}: DEL of {container} that answered 11 is half-done: {held:?} vs {ips:?}"
                ),
                Some(ips) => assert_eq!(&held, ips, "{what}: live {container}"),
                None => assert!(
                    held.is_empty() || held.len() == 2,
                    "{what}: failed ADD of {container} is half-written: {held:?}"
                ),
            }
        }
    }

    /// The store holds exactly the live attachments' addresses, none twice, and GC with
    /// the live set leaves it so.
    pub fn verify(&self, what: &str) {
        let rt = runtime();
        let store = open_store(&rt, &self.store);
        let mut stored: BTreeMap<String, Vec<IpAddr>> = BTreeMap::new();
        let rows = list(&rt, &*store, &self.network);
        for a in &rows {
            stored.entry(a.container_id.clone()).or_default().push(a.ip);
        }
        stored.values_mut().for_each(|ips| ips.sort());
        let distinct: BTreeSet<IpAddr> = rows.iter().map(|a| a.ip).collect();
        assert_eq!(distinct.len(), rows.len(), "{what}: an address held twice");
        assert_eq!(stored, self.live, "{what}: store == live attachments");
        let gc = gc_conf(&self.conf, self.live.keys());
        let run = Call {
            command: "GC",
            container: "",
            node: "node-outage",
            conf: &gc,
        }
        .run(None);
        assert!(run.succeeded(), "{what}: GC: {run:?}");
        assert_eq!(
            list(&rt, &*store, &self.network).len(),
            rows.len(),
            "{what}: GC with the live set released nothing"
        );
    }
}
