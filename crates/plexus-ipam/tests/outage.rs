//! Store outages through the real plugin binary, with a runtime churning ADD/DEL in the
//! background: PostgreSQL and etcd stopped, paused (SIGSTOP) and restarted mid-run (private
//! servers, never the shared ones), and the SQLite file made read-only, its disk full (a
//! small tmpfs) and its file locked by another process; and the server crashing under load
//! (a PostgreSQL backend SIGKILLed, so the server restarts itself; etcd SIGKILLed and
//! started again), which kills transactions mid-commit. While the store is broken every
//! ADD and DEL answers code 11 within the configured deadline (2 s here) and STATUS answers
//! 50 within 2 s; afterwards ADD works again without manual steps and the store holds
//! exactly the live attachments' addresses: nothing lost, duplicated or half-written.
//! Without PostgreSQL, etcd, `sqlite3` or root these tests print `SKIPPED` and pass, unless
//! `PLEXUS_REQUIRE_SERVERS=1` / `PLEXUS_REQUIRE_PRIVILEGED=1`.

mod fault;

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fault::scenario::{DEADLINE, Scenario};
use plexus_test_support::servers::{etcd as etcd_support, postgres as pg_support};
use serde_json::{Value, json};

fn deadline_ms() -> u64 {
    DEADLINE.as_millis() as u64
}

/// Sends `signal` (`-STOP`, `-CONT`) to `pid`; false when there is no such process.
fn try_signal(signal: &str, pid: u32) -> bool {
    Command::new("kill")
        .args([signal, &pid.to_string()])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Sends `signal` to `pid`, which must exist.
fn signal(signal: &str, pid: u32) {
    assert!(try_signal(signal, pid), "kill {signal} {pid}");
}

/// A process frozen with SIGSTOP, thawed when dropped (also when the test fails).
struct Frozen(u32);

impl Frozen {
    fn new(pid: u32) -> Frozen {
        signal("-STOP", pid);
        Frozen(pid)
    }
}

impl Drop for Frozen {
    fn drop(&mut self) {
        signal("-CONT", self.0);
    }
}

#[test]
fn postgres_stopped_paused_and_restarted() {
    let test = "postgres_stopped_paused_and_restarted";
    let Some(mut pg) = pg_support::PrivatePg::start(test) else {
        return;
    };
    let server = pg.server.clone();
    let store = json!({"type": "postgres", "host": server.host, "port": server.port,
        "dbname": "plexus", "user": server.user, "password_file": server.password_file,
        "sslmode": "disable", "timeout_ms": deadline_ms()});
    let mut s = Scenario::new("pg-outage", store);
    s.healthy_round();

    let churn = s.churn("stop");
    std::thread::sleep(Duration::from_millis(300));
    pg.stop();
    s.expect_outage("postgres stopped");
    pg.start_again();
    s.recover("postgres restarted", churn);

    let churn = s.churn("pause");
    std::thread::sleep(Duration::from_millis(300));
    let frozen = Frozen::new(pg.postmaster_pid());
    s.expect_outage("postgres paused");
    drop(frozen);
    s.recover("postgres resumed", churn);
}

#[test]
fn etcd_stopped_paused_and_restarted() {
    let test = "etcd_stopped_paused_and_restarted";
    let Some(mut etcd) = etcd_support::PrivateEtcd::start(test) else {
        return;
    };
    let store = json!({"type": "etcd", "endpoints": [etcd.endpoint()],
        "prefix": "/plexus-outage", "timeout_ms": deadline_ms()});
    let mut s = Scenario::new("etcd-outage", store);
    s.healthy_round();

    let churn = s.churn("stop");
    std::thread::sleep(Duration::from_millis(300));
    etcd.stop();
    s.expect_outage("etcd stopped");
    etcd.restart();
    s.recover("etcd restarted", churn);

    let churn = s.churn("pause");
    std::thread::sleep(Duration::from_millis(300));
    etcd.pause();
    s.expect_outage("etcd paused");
    etcd.resume();
    s.recover("etcd resumed", churn);
}

/// A PostgreSQL shutting down (smart shutdown: SIGTERM to the postmaster while a session is
/// open) refuses new connections with SQLSTATE 57P03 "the database system is shutting
/// down" for as long as that session lasts: calls must still end within their deadline.
#[test]
fn postgres_shutting_down_answers_within_the_deadline() {
    let test = "postgres_shutting_down_answers_within_the_deadline";
    let Some(mut pg) = pg_support::PrivatePg::start(test) else {
        return;
    };
    let server = pg.server.clone();
    let store = json!({"type": "postgres", "host": server.host, "port": server.port,
        "dbname": "plexus", "user": server.user, "password_file": server.password_file,
        "sslmode": "disable", "timeout_ms": deadline_ms()});
    let mut s = Scenario::new("pg-shutdown", store);
    s.healthy_round();
    // A session that keeps the server in "shutting down" for up to 60 s.
    let mut session = psql(&server, "SELECT pg_sleep(60)")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("psql");
    let session_started = Instant::now();
    while plexus_session_count(&server) == 0 {
        assert!(
            session_started.elapsed() < Duration::from_secs(10),
            "psql session"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let churn = s.churn("shutdown");
    std::thread::sleep(Duration::from_millis(300));
    let postmaster = pg.postmaster_pid();
    signal("-TERM", postmaster);
    s.expect_outage("postgres shutting down");
    // Finish the shutdown at once (immediate mode ends the session too); start again.
    pg.stop();
    let _ = session.kill();
    let _ = session.wait();
    pg.start_again();
    s.recover("postgres started again after its shutdown", churn);
}

/// `psql` running `sql` as the superuser (trusted on loopback), unaligned and tuples only.
fn psql(server: &pg_support::PgServer, sql: &str) -> Command {
    let mut cmd = Command::new(server.bin.join("psql"));
    cmd.args(["-X", "-A", "-t", "-h", &server.host, "-p"])
        .arg(server.port.to_string())
        .args(["-U", "postgres", "-d", "postgres", "-c", sql]);
    cmd
}

/// Number of sessions running `pg_sleep` (the test's own psql session).
fn plexus_session_count(server: &pg_support::PgServer) -> usize {
    let sql = "SELECT count(*) FROM pg_stat_activity WHERE query LIKE 'SELECT pg_sleep%'";
    psql(server, sql)
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .unwrap_or(0)
}

/// Process ids of the PostgreSQL backends serving plexus calls (`application_name`), empty
/// while the server cannot answer.
fn plexus_backends(server: &pg_support::PgServer) -> Vec<u32> {
    let sql = "SELECT pid FROM pg_stat_activity WHERE application_name = 'plexus'";
    let output = psql(server, sql).output();
    match output {
        Ok(out) if out.status.success() => String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| l.trim().parse().ok())
            .collect(),
        _ => Vec::new(),
    }
}

/// The store crashing under load: a backend serving a plexus call is SIGKILLed, so the
/// postmaster kills every other backend (their transactions die mid-flight, commits
/// included) and restarts by itself. Three times, while a runtime churns.
#[test]
fn postgres_crashing_mid_transaction_recovers_by_itself() {
    let test = "postgres_crashing_mid_transaction_recovers_by_itself";
    let Some(pg) = pg_support::PrivatePg::start(test) else {
        return;
    };
    let server = pg.server.clone();
    let store = json!({"type": "postgres", "host": server.host, "port": server.port,
        "dbname": "plexus", "user": server.user, "password_file": server.password_file,
        "sslmode": "disable", "timeout_ms": deadline_ms()});
    let mut s = Scenario::new("pg-crash", store);
    s.healthy_round();
    let churn = s.churn("crash");
    let started = Instant::now();
    let mut crashes = 0;
    while crashes < 3 {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "no plexus backend to kill within 60 s"
        );
        match plexus_backends(&server).first() {
            // The call may have ended between the query and the kill: try the next one.
            Some(pid) if try_signal("-KILL", *pid) => {
                crashes += 1;
                std::thread::sleep(Duration::from_millis(1500));
            }
            Some(_) => {}
            None => std::thread::sleep(Duration::from_millis(2)),
        }
    }
    s.recover("postgres crash-restarted 3 times", churn);
}

/// etcd SIGKILLed three times while a runtime churns (calls in flight die before, during
/// or after their transaction is applied) and started again on the same data.
#[test]
fn etcd_killed_mid_commit_recovers() {
    let test = "etcd_killed_mid_commit_recovers";
    let Some(mut etcd) = etcd_support::PrivateEtcd::start(test) else {
        return;
    };
    let store = json!({"type": "etcd", "endpoints": [etcd.endpoint()],
        "prefix": "/plexus-crash", "timeout_ms": deadline_ms()});
    let mut s = Scenario::new("etcd-crash", store);
    s.healthy_round();
    let churn = s.churn("crash");
    for pause_ms in [250, 400, 330] {
        std::thread::sleep(Duration::from_millis(pause_ms));
        etcd.restart();
    }
    s.recover("etcd killed 3 times", churn);
}

fn sqlite_store(path: &Path) -> Value {
    json!({"type": "sqlite", "path": path, "busy_timeout_ms": deadline_ms()})
}

/// Runs a command, true when it succeeded.
fn run_ok(program: &str, args: &[&str]) -> bool {
    Command::new(program)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Whether a test needing root (mount, chattr) can run; prints the skip otherwise, or
/// fails under `PLEXUS_REQUIRE_PRIVILEGED=1`.
fn privileged(test: &str, probe: impl FnOnce() -> bool, what: &str) -> bool {
    let reason = (!probe()).then(|| format!("cannot {what} (needs root)"));
    plexus_test_support::privileged::gate(test, reason.as_deref())
}

/// The database file made unwritable even for root (mode 0400 and `chattr +i`), undone on
/// drop.
struct ReadOnly(PathBuf);

impl ReadOnly {
    fn set(path: &Path) -> Option<ReadOnly> {
        let p = path.to_str()?;
        (run_ok("chmod", &["0400", p]) && run_ok("chattr", &["+i", p]))
            .then(|| ReadOnly(path.to_path_buf()))
    }
}

impl Drop for ReadOnly {
    fn drop(&mut self) {
        let p = self.0.display().to_string();
        run_ok("chattr", &["-i", &p]);
        run_ok("chmod", &["0600", &p]);
    }
}

#[test]
fn sqlite_file_made_read_only() {
    let test = "sqlite_file_made_read_only";
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("ro.db");
    let probe = dir.path().join("probe");
    std::fs::write(&probe, "x").unwrap();
    if !privileged(test, || ReadOnly::set(&probe).is_some(), "chattr +i") {
        return;
    }
    let mut s = Scenario::new("sqlite-ro", sqlite_store(&db));
    s.healthy_round();
    let churn = s.churn("ro");
    std::thread::sleep(Duration::from_millis(300));
    let guard = ReadOnly::set(&db).expect("chattr +i worked on the probe file");
    s.expect_outage("sqlite read-only");
    drop(guard);
    s.recover("sqlite writable again", churn);
}

/// A tmpfs of `size` mounted on `dir`, unmounted on drop.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(dir: &Path, size: &str) -> Option<Tmpfs> {
        std::fs::create_dir_all(dir).ok()?;
        let d = dir.to_str()?;
        run_ok(
            "mount",
            // mode=0700: plexus refuses a world-writable database directory (tmpfs
            // defaults to 1777), see docs/security.md.
            &[
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0700"),
                "tmpfs",
                d,
            ],
        )
        .then(|| Tmpfs(dir.to_path_buf()))
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        run_ok("umount", &["-l", &self.0.display().to_string()]);
    }
}

/// Fills the filesystem of `dir` with `dir/filler` until it is full.
fn fill(dir: &Path) -> PathBuf {
    let path = dir.join("filler");
    top_up(&path);
    path
}

/// Appends to `filler` until the filesystem is full again.
fn top_up(filler: &Path) {
    let Ok(mut file) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(filler)
    else {
        return;
    };
    let chunk = vec![0u8; 4096];
    while file.write_all(&chunk).is_ok() {}
    let _ = file.sync_all();
}

/// Keeps the filesystem of `filler` full until dropped: SQLite gives space back when a
/// failed write rolls back or the WAL is truncated, and a disk that stays full is what
/// the scenario is about (a freed page would let STATUS's heartbeat through, correctly).
struct KeepFull {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl KeepFull {
    fn start(filler: &Path) -> KeepFull {
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = std::sync::Arc::clone(&stop);
        let filler = filler.to_path_buf();
        let thread = std::thread::spawn(move || {
            while !flag.load(std::sync::atomic::Ordering::Relaxed) {
                top_up(&filler);
                std::thread::sleep(Duration::from_millis(2));
            }
        });
        KeepFull {
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for KeepFull {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

#[test]
fn sqlite_disk_full() {
    let test = "sqlite_disk_full";
    let dir = tempfile::tempdir().unwrap();
    let mnt = dir.path().join("mnt");
    let mut tmpfs = None;
    if !privileged(
        test,
        || {
            tmpfs = Tmpfs::mount(&mnt, "8m");
            tmpfs.is_some()
        },
        "mount a tmpfs",
    ) {
        return;
    }
    let db = mnt.join("full.db");
    let mut s = Scenario::new("sqlite-full", sqlite_store(&db));
    s.healthy_round();
    let churn = s.churn("full");
    std::thread::sleep(Duration::from_millis(300));
    let filler = fill(&mnt);
    let full = KeepFull::start(&filler);
    s.expect_outage("sqlite disk full");
    drop(full);
    std::fs::remove_file(&filler).unwrap();
    s.recover("sqlite disk freed", churn);
    drop(tmpfs);
}

/// A `sqlite3` process holding the write lock of a database (`BEGIN IMMEDIATE`) until
/// released or dropped.
struct Locker(Child);

impl Locker {
    fn lock(db: &Path) -> Option<Locker> {
        let mut child = Command::new("sqlite3")
            .arg(db)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .ok()?;
        let stdin = child.stdin.as_mut()?;
        stdin
            .write_all(b".timeout 10000\nBEGIN IMMEDIATE;\nSELECT 'locked';\n")
            .ok()?;
        stdin.flush().ok()?;
        let mut line = String::new();
        BufReader::new(child.stdout.as_mut()?)
            .read_line(&mut line)
            .ok()?;
        assert_eq!(line.trim(), "locked", "sqlite3 did not take the lock");
        Some(Locker(child))
    }

    fn release(mut self) {
        if let Some(stdin) = self.0.stdin.as_mut() {
            let _ = stdin.write_all(b"COMMIT;\n.quit\n");
        }
        drop(self.0.stdin.take());
        let _ = self.0.wait();
    }
}

impl Drop for Locker {
    fn drop(&mut self) {
        // Only when the test failed before release(): a killed holder drops its lock.
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn sqlite_file_locked_by_another_process() {
    let test = "sqlite_file_locked_by_another_process";
    if !run_ok("sqlite3", &["-version"]) {
        fault::skip::<()>(test, "the sqlite3 command is not installed");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("locked.db");
    let mut s = Scenario::new("sqlite-locked", sqlite_store(&db));
    s.healthy_round();
    let churn = s.churn("lock");
    std::thread::sleep(Duration::from_millis(300));
    let locker = Locker::lock(&db).expect("sqlite3 holds the write lock");
    s.expect_outage("sqlite locked by another process");
    locker.release();
    s.recover("sqlite lock released", churn);
}
