//! etcd for the tests: the shared server of `scripts/with-servers` (behind the servers
//! gate) and private servers that a test may stop, pause and restart.

use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use super::{free_port, skip};

/// Environment variable naming the shared test server (`scripts/with-servers`).
pub const ENDPOINTS_VAR: &str = "PLEXUS_TEST_ETCD_ENDPOINTS";

/// The endpoints of the shared test server, or `None` after reporting the skip.
pub fn shared_endpoints(test: &str) -> Option<Vec<String>> {
    match std::env::var(ENDPOINTS_VAR) {
        Ok(v) if !v.trim().is_empty() => Some(v.split(',').map(|e| e.trim().to_string()).collect()),
        _ => skip(
            test,
            &format!("{ENDPOINTS_VAR} is not set (run under scripts/with-servers)"),
        ),
    }
}

/// A key prefix nobody else uses, so tests sharing one server never see each other.
pub fn unique_prefix(test: &str) -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    format!("/plexus-test/{test}/{}-{nanos}-{n}", std::process::id())
}

/// PEM files of a throw-away CA, a server certificate for 127.0.0.1 and a client
/// certificate, made with the `openssl` command.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    /// The CA certificate.
    pub ca: PathBuf,
    /// Server certificate (SAN IP:127.0.0.1) and key.
    pub server_cert: PathBuf,
    /// Key of `server_cert`.
    pub server_key: PathBuf,
    /// Client certificate and key.
    pub client_cert: PathBuf,
    /// Key of `client_cert`.
    pub client_key: PathBuf,
}

impl TlsFiles {
    /// Makes the files in `dir` (prefixing their names with `name`), or `None` after
    /// reporting the skip when `openssl` is missing.
    pub fn make(test: &str, dir: &std::path::Path, name: &str) -> Option<TlsFiles> {
        let path = |file: &str| dir.join(format!("{name}-{file}"));
        let openssl = |args: &[&str]| {
            Command::new("openssl")
                .args(args)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        };
        if !openssl(&["version"]) {
            return skip(test, "the openssl command is not installed");
        }
        let p = |file: &str| path(file).display().to_string();
        let ec = [
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
        ];
        let mut ca = vec!["req", "-x509"];
        ca.extend(ec);
        let (ca_key, ca_pem) = (p("ca.key"), p("ca.pem"));
        ca.extend([
            "-keyout",
            &ca_key,
            "-out",
            &ca_pem,
            "-days",
            "2",
            "-subj",
            "/CN=plexus-test-ca",
        ]);
        assert!(openssl(&ca), "openssl: CA");
        for (who, usage) in [
            ("server", "serverAuth,clientAuth"),
            ("client", "clientAuth"),
        ] {
            let (key, csr, pem, ext) = (
                p(&format!("{who}.key")),
                p(&format!("{who}.csr")),
                p(&format!("{who}.pem")),
                p(&format!("{who}.ext")),
            );
            std::fs::write(
                &ext,
                format!("subjectAltName=IP:127.0.0.1\nextendedKeyUsage={usage}\n"),
            )
            .unwrap_or_else(|e| panic!("write {ext}: {e}"));
            let mut req = vec!["req"];
            req.extend(ec);
            req.extend(["-keyout", &key, "-out", &csr, "-subj", "/CN=127.0.0.1"]);
            assert!(openssl(&req), "openssl: {who} request");
            let sign = [
                "x509",
                "-req",
                "-in",
                &csr,
                "-CA",
                &ca_pem,
                "-CAkey",
                &ca_key,
                "-CAcreateserial",
                "-out",
                &pem,
                "-days",
                "2",
                "-extfile",
                &ext,
            ];
            assert!(openssl(&sign), "openssl: {who} certificate");
        }
        Some(TlsFiles {
            ca: path("ca.pem"),
            server_cert: path("server.pem"),
            server_key: path("server.key"),
            client_cert: path("client.pem"),
            client_key: path("client.key"),
        })
    }
}

/// A private single-member etcd on loopback, with its data in a temporary directory.
/// Stopped (killed) when dropped.
pub struct PrivateEtcd {
    child: Option<Child>,
    dir: tempfile::TempDir,
    client_port: u16,
    peer_port: u16,
    paused: bool,
    tls: Option<TlsFiles>,
}

impl PrivateEtcd {
    /// Starts one, or returns `None` after reporting the skip when `etcd` is missing.
    pub fn start(test: &str) -> Option<PrivateEtcd> {
        Self::start_with(test, None)
    }

    /// Starts one serving https with `tls` (client certificates required).
    pub fn start_tls(test: &str, tls: TlsFiles) -> Option<PrivateEtcd> {
        Self::start_with(test, Some(tls))
    }

    fn start_with(test: &str, tls: Option<TlsFiles>) -> Option<PrivateEtcd> {
        let found = Command::new("etcd")
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !found {
            return skip(test, "the etcd binary is not installed");
        }
        let mut server = PrivateEtcd {
            child: None,
            dir: tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}")),
            client_port: free_port(),
            peer_port: free_port(),
            paused: false,
            tls,
        };
        server.launch();
        Some(server)
    }

    /// Its client URL.
    pub fn endpoint(&self) -> String {
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        format!("{scheme}://127.0.0.1:{}", self.client_port)
    }

    /// A temporary directory that lives as long as the server.
    pub fn scratch_dir(&self) -> &std::path::Path {
        self.dir.path()
    }

    /// Runs `etcdctl` against it with `args`; panics when it fails.
    pub fn etcdctl(&self, args: &[&str]) {
        let output = self
            .etcdctl_command()
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("etcdctl: {e}"));
        assert!(
            output.status.success(),
            "etcdctl {args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }

    /// Turns authentication on with a `root` user whose password is `password`.
    pub fn enable_auth(&self, password: &str) {
        self.etcdctl(&["role", "add", "root"]);
        self.etcdctl(&[
            "user",
            "add",
            &format!("root:{password}"),
            "--interactive=false",
        ]);
        self.etcdctl(&["user", "grant-role", "root", "root"]);
        self.etcdctl(&["auth", "enable"]);
    }

    fn etcdctl_command(&self) -> Command {
        let mut command = Command::new("etcdctl");
        command
            .env("ETCDCTL_API", "3")
            .args(["--endpoints", &self.endpoint()]);
        if let Some(tls) = &self.tls {
            command
                .arg(format!("--cacert={}", tls.ca.display()))
                .arg(format!("--cert={}", tls.client_cert.display()))
                .arg(format!("--key={}", tls.client_key.display()));
        }
        command
    }

    /// Stops it the hard way (SIGKILL), keeping its data.
    pub fn stop(&mut self) {
        self.resume();
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again on the same port with the same data.
    pub fn restart(&mut self) {
        self.stop();
        self.launch();
    }

    /// Freezes the process (SIGSTOP): connections stay open but nothing answers.
    pub fn pause(&mut self) {
        if let Some(child) = &self.child {
            signal("-STOP", child.id());
            self.paused = true;
        }
    }

    /// Thaws a paused process (SIGCONT).
    pub fn resume(&mut self) {
        if let (Some(child), true) = (&self.child, self.paused) {
            signal("-CONT", child.id());
            self.paused = false;
        }
    }

    fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn launch(&mut self) {
        let client = self.endpoint();
        let peer = format!("http://127.0.0.1:{}", self.peer_port);
        let log = std::fs::File::create(self.dir.path().join("etcd.log"))
            .unwrap_or_else(|e| panic!("etcd log file: {e}"));
        let mut command = Command::new("etcd");
        if let Some(tls) = &self.tls {
            command
                .arg(format!("--cert-file={}", tls.server_cert.display()))
                .arg(format!("--key-file={}", tls.server_key.display()))
                .arg(format!("--trusted-ca-file={}", tls.ca.display()))
                .arg("--client-cert-auth");
        }
        let child = command
            .arg("--name=plexus-private")
            .arg(format!("--data-dir={}", self.data_dir().display()))
            .arg(format!("--listen-client-urls={client}"))
            .arg(format!("--advertise-client-urls={client}"))
            .arg(format!("--listen-peer-urls={peer}"))
            .arg(format!("--initial-advertise-peer-urls={peer}"))
            .arg(format!("--initial-cluster=plexus-private={peer}"))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start etcd: {e}"));
        self.child = Some(child);
        self.wait_healthy();
    }

    fn wait_healthy(&mut self) {
        let started = Instant::now();
        let log = |dir: &std::path::Path| {
            std::fs::read_to_string(dir.join("etcd.log")).unwrap_or_default()
        };
        while started.elapsed() < Duration::from_secs(20) {
            // free_port() can hand the same port to two tests: never mistake another
            // test's server for ours.
            if let Some(Ok(Some(status))) = self.child.as_mut().map(Child::try_wait) {
                panic!(
                    "private etcd exited ({status}) before becoming healthy; log:\n{}",
                    log(self.dir.path())
                );
            }
            let listening = TcpStream::connect(("127.0.0.1", self.client_port)).is_ok();
            let healthy = listening
                && self.listener_is_ours()
                && self
                    .etcdctl_command()
                    .args(["endpoint", "health"])
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .status()
                    .is_ok_and(|s| s.success());
            if healthy {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!(
            "private etcd did not become healthy within 20 s; log:\n{}",
            log(self.dir.path())
        );
    }

    /// Whether our child process owns the client port's listening socket (per `ss`; true
    /// when `ss` cannot tell).
    fn listener_is_ours(&self) -> bool {
        let Some(child) = &self.child else {
            return false;
        };
        let filter = format!("sport = :{}", self.client_port);
        match Command::new("ss").args(["-Hltnp", &filter]).output() {
            Ok(out) if out.status.success() => {
                String::from_utf8_lossy(&out.stdout).contains(&format!("pid={},", child.id()))
            }
            _ => true,
        }
    }
}

impl Drop for PrivateEtcd {
    fn drop(&mut self) {
        self.stop();
    }
}

fn signal(which: &str, pid: u32) {
    let ok = Command::new("kill")
        .args([which, &pid.to_string()])
        .status()
        .is_ok_and(|s| s.success());
    assert!(ok, "kill {which} {pid} failed");
}
