//! PostgreSQL for the tests: the shared server of `scripts/with-servers` (behind the servers
//! gate; every test gets a fresh database on it) and private servers that a test may stop
//! and restart.

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use super::{free_port, run_ok, skip, var};

/// A server the tests may create databases on: as superuser `postgres` (trusted on
/// loopback) for setup, as the password role for the store under test.
#[derive(Debug, Clone)]
pub struct PgServer {
    /// Host (loopback).
    pub host: String,
    /// Port.
    pub port: u16,
    /// The store's role.
    pub user: String,
    /// The store role's password file.
    pub password_file: PathBuf,
    /// The server's `bin` directory (initdb, pg_ctl).
    pub bin: PathBuf,
}

impl PgServer {
    /// The shared server of `scripts/with-servers`, or `None` after reporting the skip.
    pub fn shared(test: &str) -> Option<PgServer> {
        let found = (|| {
            Some(PgServer {
                host: var("PLEXUS_TEST_PG_HOST")?,
                port: var("PLEXUS_TEST_PG_PORT")?.parse().ok()?,
                user: var("PLEXUS_TEST_PG_USER")?,
                password_file: var("PLEXUS_TEST_PG_PASSWORD_FILE")?.into(),
                bin: var("PLEXUS_TEST_PG_BIN")?.into(),
            })
        })();
        match found {
            Some(server) => Some(server),
            None => skip(
                test,
                "PLEXUS_TEST_PG_HOST/PORT/USER/PASSWORD_FILE/BIN are not set (run under \
                 scripts/with-servers)",
            ),
        }
    }

    /// Runs `sql` as the superuser on database `db`.
    pub fn superuser_sql(&self, db: &str, sql: &str) {
        self.psql(db, sql, &["-q"]);
    }

    /// Runs query `sql` as the superuser on database `db` and returns its rows: one line
    /// per row, columns separated by `|` (`psql -At`).
    pub fn superuser_query(&self, db: &str, sql: &str) -> String {
        self.psql(db, sql, &["-A", "-t"])
    }

    fn psql(&self, db: &str, sql: &str, format: &[&str]) -> String {
        let output = Command::new(self.bin.join("psql"))
            .args(["-X", "-v", "ON_ERROR_STOP=1", "-h", &self.host])
            .args(format)
            .args([
                "-p",
                &self.port.to_string(),
                "-U",
                "postgres",
                "-d",
                db,
                "-c",
                sql,
            ])
            .output()
            .unwrap_or_else(|e| panic!("cannot run psql: {e}"));
        assert!(
            output.status.success(),
            "psql {sql:?} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    /// A new empty database owned by the store's role, named after `test`; its name.
    pub fn create_database(&self, test: &str) -> String {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let slug: String = test
            .chars()
            .filter(char::is_ascii_alphanumeric)
            .take(30)
            .collect::<String>()
            .to_ascii_lowercase();
        let name = format!("t_{slug}_{}_{n}_{nanos}", std::process::id());
        self.superuser_sql(
            "postgres",
            &format!(
                "CREATE DATABASE {name} OWNER {} TEMPLATE template0",
                self.user
            ),
        );
        name
    }
}

/// A private PostgreSQL on loopback (same commands as `scripts/with-servers`), with its
/// data in a temporary directory, stopped when dropped.
pub struct PrivatePg {
    /// Connection details (role `plexus` with a password, database [`PrivatePg::DATABASE`]).
    pub server: PgServer,
    dir: tempfile::TempDir,
    running: bool,
}

impl PrivatePg {
    /// The database a private server is started with, owned by the store's role.
    pub const DATABASE: &str = "plexus";

    /// Starts one, or returns `None` after reporting the skip when PostgreSQL (or the
    /// `postgres` OS user) is missing.
    pub fn start(test: &str) -> Option<PrivatePg> {
        let bin = match var("PLEXUS_TEST_PG_BIN")
            .map(PathBuf::from)
            .or_else(find_bin)
        {
            Some(bin) => bin,
            None => return skip(test, "PostgreSQL is not installed"),
        };
        let has_user = Command::new("id")
            .arg("postgres")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !has_user {
            return skip(test, "there is no postgres OS user to run a private server");
        }
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
        chmod(dir.path(), "755");
        let password_file = dir.path().join("pg-password");
        let password = format!("private-{}-{}", std::process::id(), free_port());
        std::fs::write(&password_file, &password).unwrap_or_else(|e| panic!("password: {e}"));
        let mut pg = PrivatePg {
            server: PgServer {
                host: "127.0.0.1".into(),
                port: free_port(),
                user: "plexus".into(),
                password_file,
                bin,
            },
            dir,
            running: false,
        };
        for sub in ["pg", "sock"] {
            let path = pg.dir.path().join(sub);
            std::fs::create_dir(&path).unwrap_or_else(|e| panic!("mkdir: {e}"));
            run_ok(Command::new("chown").arg("postgres:postgres").arg(&path));
        }
        run_ok(
            Command::new("runuser")
                .args(["-u", "postgres", "--"])
                .arg(pg.server.bin.join("initdb"))
                .arg("-D")
                .arg(pg.data())
                .args([
                    "-U",
                    "postgres",
                    "--auth-local=trust",
                    "--auth-host=scram-sha-256",
                ]),
        );
        let hba = pg.data().join("pg_hba.conf");
        let rest = std::fs::read_to_string(&hba).unwrap_or_default();
        std::fs::write(
            &hba,
            format!("host all postgres 127.0.0.1/32 trust\n{rest}"),
        )
        .unwrap_or_else(|e| panic!("pg_hba.conf: {e}"));
        pg.start_again();
        pg.server.superuser_sql(
            "postgres",
            &format!("CREATE ROLE plexus LOGIN PASSWORD '{password}' CREATEDB"),
        );
        pg.server
            .superuser_sql("postgres", "CREATE DATABASE plexus OWNER plexus");
        Some(pg)
    }

    /// Turns TLS on with a certificate for `names` (`IP:127.0.0.1`, `DNS:db.example`)
    /// signed by a fresh CA; returns the CA's PEM file. Needs the `openssl` command.
    pub fn enable_tls(&self, names: &str) -> PathBuf {
        let dir = self.dir.path();
        let ca_key = dir.join("ca.key");
        let ca = dir.join("ca.pem");
        let key = self.data().join("server.key");
        let csr = dir.join("server.csr");
        let cert = self.data().join("server.crt");
        let ext = dir.join("san.ext");
        std::fs::write(&ext, format!("subjectAltName={names}\n"))
            .unwrap_or_else(|e| panic!("san.ext: {e}"));
        run_ok(
            Command::new("openssl")
                .args(["req", "-x509", "-newkey", "ec"])
                .args([
                    "-pkeyopt",
                    "ec_paramgen_curve:prime256v1",
                    "-nodes",
                    "-days",
                    "2",
                    "-subj",
                    "/CN=plexus test CA",
                ])
                .arg("-keyout")
                .arg(&ca_key)
                .arg("-out")
                .arg(&ca),
        );
        run_ok(
            Command::new("openssl")
                .args(["req", "-newkey", "ec"])
                .args([
                    "-pkeyopt",
                    "ec_paramgen_curve:prime256v1",
                    "-nodes",
                    "-subj",
                    "/CN=plexus test server",
                ])
                .arg("-keyout")
                .arg(&key)
                .arg("-out")
                .arg(&csr),
        );
        run_ok(
            Command::new("openssl")
                .args(["x509", "-req", "-days", "2"])
                .arg("-in")
                .arg(&csr)
                .arg("-CA")
                .arg(&ca)
                .arg("-CAkey")
                .arg(&ca_key)
                .arg("-CAcreateserial")
                .arg("-extfile")
                .arg(&ext)
                .arg("-out")
                .arg(&cert),
        );
        run_ok(
            Command::new("chown")
                .arg("postgres:postgres")
                .arg(&key)
                .arg(&cert),
        );
        run_ok(Command::new("chmod").arg("600").arg(&key));
        self.server
            .superuser_sql("postgres", "ALTER SYSTEM SET ssl = on");
        self.server
            .superuser_sql("postgres", "SELECT pg_reload_conf()");
        ca
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("pg")
    }

    fn pg_ctl(&self) -> Command {
        let mut cmd = Command::new("runuser");
        cmd.args(["-u", "postgres", "--"])
            .arg(self.server.bin.join("pg_ctl"))
            .arg("-D")
            .arg(self.data());
        cmd
    }

    /// Stops the server abruptly (`-m immediate`: like a crash, no shutdown checkpoint).
    pub fn stop(&mut self) {
        if self.running {
            let _ = self
                .pg_ctl()
                .args(["-m", "immediate", "stop"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
            self.running = false;
        }
    }

    /// Process id of the running postmaster (first line of `postmaster.pid`).
    pub fn postmaster_pid(&self) -> u32 {
        let text = std::fs::read_to_string(self.data().join("postmaster.pid"))
            .unwrap_or_else(|e| panic!("postmaster.pid: {e}"));
        text.lines()
            .next()
            .and_then(|l| l.trim().parse().ok())
            .unwrap_or_else(|| panic!("postmaster.pid has no pid: {text:?}"))
    }

    /// Starts it (again) on the same port with the same data, and waits until it accepts
    /// connections.
    pub fn start_again(&mut self) {
        let options = format!(
            "-p {} -c listen_addresses=127.0.0.1 -k {} -c max_connections=200 -c fsync=off",
            self.server.port,
            self.dir.path().join("sock").display()
        );
        let log = self.dir.path().join("sock").join("pg.log");
        run_ok(
            self.pg_ctl()
                .arg("-w")
                .arg("-l")
                .arg(&log)
                .args(["-o", &options, "start"]),
        );
        self.running = true;
        let started = Instant::now();
        while TcpStream::connect(("127.0.0.1", self.server.port)).is_err() {
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "private PostgreSQL did not listen within 20 s"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for PrivatePg {
    fn drop(&mut self) {
        self.stop();
    }
}

fn find_bin() -> Option<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(Result::ok)
        .map(|entry| entry.path().join("bin"))
        .filter(|bin| bin.join("pg_ctl").exists())
        .collect();
    found.sort_by_key(|p| {
        p.parent()
            .and_then(Path::file_name)
            .and_then(|v| v.to_str())
            .and_then(|v| v.parse::<u32>().ok())
            .unwrap_or(0)
    });
    found.pop()
}

fn chmod(path: &Path, mode: &str) {
    run_ok(Command::new("chmod").arg(mode).arg(path));
}
