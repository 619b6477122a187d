//! Input safety of the real `plexus-ipam` binary (the findings of `docs/security.md`):
//! hostile names from the config and the environment, private SQLite files under any
//! umask, secrets kept out of stdout/stderr, TLS on by default, bounded range sets.
//! Tests needing PostgreSQL print `SKIPPED` and pass without a server, unless
//! `PLEXUS_REQUIRE_SERVERS=1`.

mod common;

use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use common::{Reply, SHARED, exec, held, ipam, netconf, plugin_binary};
use plexus_test_support::servers::{skip, var as env};
use serde_json::{Value, json};
use tempfile::TempDir;

/// A password that must never be printed anywhere.
const SECRET: &str = "Pl3xus-INLINE-s3cret-pw";

fn mode_of(path: &Path) -> u32 {
    std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o7777
}

/// A loopback port nobody listens on.
fn closed_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

/// Runs one verb with a trace-level log, so every log line the call could write is seen.
fn run_traced(command: &str, container: &str, ifname: &str, conf: &Value) -> Reply {
    let env = [
        ("CNI_COMMAND", command),
        ("CNI_CONTAINERID", container),
        ("CNI_NETNS", "/var/run/netns/does-not-matter"),
        ("CNI_IFNAME", ifname),
        ("CNI_PATH", "/usr/lib/cni"),
        ("PLEXUS_LOG", "trace"),
    ];
    exec(&plugin_binary(), &env, &conf.to_string())
}

fn assert_no_secret(reply: &Reply, secret: &str, what: &str) {
    assert!(
        !reply.stdout.contains(secret) && !reply.stderr.contains(secret),
        "{what}: the password leaked: {reply:?}"
    );
}

#[test]
fn hostile_network_names_are_refused_with_code_7_and_store_nothing() {
    let dir = TempDir::new().unwrap();
    let db = dir.path().join("p.db");
    let overlong = "n".repeat(254);
    let hostile = [
        "../etc",
        "a/b",
        "/abs",
        "x\u{0}y",
        "net\nname",
        "net\u{1b}[31m",
        "\u{0435}th-net", // Cyrillic е
        "net\u{200b}a",   // zero-width space
        "a..b",
        "-leading-dash",
        overlong.as_str(),
    ];
    for key in ["network_name", "network"] {
        for name in hostile {
            let conf = netconf(
                "1.1.0",
                "net-a",
                &db,
                json!({key: name, "range": "10.9.0.0/24"}),
            );
            let conf = if key == "network" {
                // A stored-network reference stands alone, without inline ranges.
                netconf("1.1.0", "net-a", &db, json!({key: name}))
            } else {
                conf
            };
            for verb in ["ADD", "DEL"] {
                let reply = ipam(verb, "c1", "eth0", &conf);
                let msg = reply.err(7);
                assert!(
                    msg.contains(&format!("invalid ipam.{key}"))
                        || msg.contains("invalid network name"),
                    "{key}={name:?} {verb}: {msg}"
                );
                assert!(
                    !reply.stdout.contains('\u{0}') && msg.len() < 600,
                    "{reply:?}"
                );
            }
        }
    }
    // The netconf name itself is checked by the CNI layer the same way.
    for name in ["../x", "a/b", "\u{0435}th"] {
        let conf = netconf("1.1.0", name, &db, json!({"range": "10.9.0.0/24"}));
        let msg = ipam("ADD", "c1", "eth0", &conf).err(7);
        assert!(msg.contains("invalid network name"), "{name:?}: {msg}");
    }
    if db.exists() {
        assert!(held(&db, SHARED).is_empty());
    }
}

#[test]
fn hostile_ifnames_and_container_ids_from_the_environment_are_code_4() {
    let dir = TempDir::new().unwrap();
    let db = dir.path().join("p.db");
    let conf = netconf("1.1.0", "net-a", &db, json!({"range": "10.9.1.0/24"}));
    for ifname in [
        "../eth0",
        "eth/0",
        "..",
        // (A NUL cannot reach the plugin: the kernel's environment strings end at it.)
        "eth\n0",
        "\u{0435}th0",
        "1234567890123456",
    ] {
        let msg = ipam("ADD", "c1", ifname, &conf).err(4);
        assert!(msg.contains("CNI_IFNAME"), "{ifname:?}: {msg}");
    }
    for container in ["../c", "c/d", "c\u{1}", ".c", "\u{0441}1", ""] {
        let reply = ipam("ADD", container, "eth0", &conf);
        let msg = reply.err(4);
        assert!(msg.contains("CNI_CONTAINERID"), "{container:?}: {msg}");
    }
    if db.exists() {
        assert!(held(&db, SHARED).is_empty());
    }
}

#[test]
fn the_sqlite_files_are_private_under_a_permissive_umask() {
    let dir = TempDir::new().unwrap();
    let db = dir.path().join("state/plexus/p.db");
    let conf = netconf("1.1.0", "net-a", &db, json!({"range": "10.9.2.0/24"}));
    // umask 000: whatever the runtime's umask, the files must come out private.
    let shell = PathBuf::from("/bin/sh");
    let script = format!("umask 000; exec {}", plugin_binary().display());
    let mut env: Vec<(&str, &str)> = vec![
        ("CNI_COMMAND", "ADD"),
        ("CNI_CONTAINERID", "c1"),
        ("CNI_NETNS", "/var/run/netns/x"),
        ("CNI_IFNAME", "eth0"),
        ("CNI_PATH", "/usr/lib/cni"),
    ];
    let reply = exec_shell(&shell, &script, &mut env, &conf);
    assert_eq!(reply.code, 0, "{reply:?}");
    assert_eq!(mode_of(&db), 0o600, "database");
    for suffix in ["-wal", "-shm"] {
        let side = PathBuf::from(format!("{}{suffix}", db.display()));
        if side.exists() {
            assert_eq!(mode_of(&side), 0o600, "{}", side.display());
        }
    }
    assert_eq!(mode_of(db.parent().unwrap()), 0o700, "created directory");
    assert_eq!(
        mode_of(&dir.path().join("state")),
        0o700,
        "created ancestor"
    );
    // Nothing else readable by others appeared next to the database.
    for entry in std::fs::read_dir(db.parent().unwrap()).unwrap() {
        let path = entry.unwrap().path();
        assert_eq!(
            mode_of(&path) & 0o077,
            0,
            "{} is not private",
            path.display()
        );
    }
}

/// Runs `script` under `/bin/sh` with the CNI environment and `conf` on stdin.
fn exec_shell(shell: &Path, script: &str, env: &mut Vec<(&str, &str)>, conf: &Value) -> Reply {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let mut cmd = Command::new(shell);
    cmd.arg("-c")
        .arg(script)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("NODE_NAME", "test-node")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env.drain(..) {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().unwrap();
    let _ = child
        .stdin
        .take()
        .unwrap()
        .write_all(conf.to_string().as_bytes());
    let out = child.wait_with_output().unwrap();
    Reply {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

#[test]
fn a_world_writable_database_directory_is_refused() {
    let dir = TempDir::new().unwrap();
    let shared = dir.path().join("shared");
    std::fs::create_dir(&shared).unwrap();
    for mode in [0o777, 0o1777] {
        std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(mode)).unwrap();
        let db = shared.join("p.db");
        let conf = netconf("1.1.0", "net-a", &db, json!({"range": "10.9.3.0/24"}));
        let msg = ipam("ADD", "c1", "eth0", &conf).err(7);
        assert!(msg.contains("world-writable"), "{mode:o}: {msg}");
        assert!(!db.exists(), "no database may be created there");
    }
}

#[test]
fn an_inline_password_never_reaches_stdout_or_stderr() {
    let dir = TempDir::new().unwrap();
    let port = closed_port();
    let stores = [
        json!({"type": "postgres", "host": "127.0.0.1", "port": port, "user": "plexus",
               "password": SECRET, "sslmode": "disable", "timeout_ms": 300}),
        // The default sslmode (verify-full) against the same closed port.
        json!({"type": "postgres", "host": "127.0.0.1", "port": port, "password": SECRET,
               "timeout_ms": 300}),
        json!({"type": "etcd", "endpoints": [format!("http://127.0.0.1:{port}")],
               "username": "plexus", "password": SECRET, "timeout_ms": 300}),
    ];
    for store in stores {
        let mut conf = netconf(
            "1.1.0",
            "net-a",
            &dir.path().join("p.db"),
            json!({"range": "10.9.4.0/24"}),
        );
        conf["ipam"]["store"] = store.clone();
        for verb in ["ADD", "DEL", "STATUS"] {
            let reply = run_traced(verb, "c1", "eth0", &conf);
            assert_ne!(reply.code, 0, "{verb} against a closed port: {reply:?}");
            // STATUS reports an unreachable store as "not available" (50), the others
            // as "try again later" (11).
            let code = reply.json()["code"].as_u64();
            let expected = if verb == "STATUS" { 50 } else { 11 };
            assert_eq!(code, Some(expected), "{verb} {store}: {reply:?}");
            assert_no_secret(&reply, SECRET, &format!("{verb} {}", store["type"]));
        }
        // CHECK with a prevResult, and a broken config next to the password.
        conf["prevResult"] = json!({"cniVersion": "1.1.0", "ips": [{"address": "10.9.4.2/24"}]});
        let reply = run_traced("CHECK", "c1", "eth0", &conf);
        assert_no_secret(&reply, SECRET, "CHECK");
        conf["ipam"]["store"]["timeout_ms"] = json!("soon");
        let reply = run_traced("ADD", "c1", "eth0", &conf);
        reply.err(7);
        assert_no_secret(&reply, SECRET, "bad config");
    }
}

/// The PostgreSQL server of `scripts/with-servers`: host, port, db, user, password.
fn shared_pg(test: &str) -> Option<(String, u16, String, String, String)> {
    let got = (|| {
        let password = std::fs::read_to_string(env("PLEXUS_TEST_PG_PASSWORD_FILE")?).ok()?;
        Some((
            env("PLEXUS_TEST_PG_HOST")?,
            env("PLEXUS_TEST_PG_PORT")?.parse().ok()?,
            env("PLEXUS_TEST_PG_DB")?,
            env("PLEXUS_TEST_PG_USER")?,
            password.trim_end_matches(['\r', '\n']).to_string(),
        ))
    })();
    if got.is_none() {
        skip::<()>(
            test,
            "no PostgreSQL server (run under scripts/with-servers)",
        );
    }
    got
}

#[test]
fn a_real_server_result_and_logs_carry_no_password() {
    let Some((host, port, db, user, password)) = shared_pg("a_real_server_result") else {
        return;
    };
    let dir = TempDir::new().unwrap();
    let mut conf = netconf(
        "1.1.0",
        "sec-real-pw",
        &dir.path().join("unused.db"),
        json!({"range": "10.9.5.0/24"}),
    );
    conf["ipam"]["store"] = json!({"type": "postgres", "host": host, "port": port, "dbname": db,
                                   "user": user, "password": password, "sslmode": "disable"});
    let container = format!("sec-{}", std::process::id());
    let add = run_traced("ADD", &container, "eth0", &conf);
    assert_eq!(add.code, 0, "{add:?}");
    assert!(add.json()["ips"][0]["address"].is_string(), "{add:?}");
    assert_no_secret(&add, &password, "ADD result");
    let del = run_traced("DEL", &container, "eth0", &conf);
    assert_eq!(del.code, 0, "{del:?}");
    assert_no_secret(&del, &password, "DEL");
    // A wrong inline password: refused login, and neither password is printed.
    conf["ipam"]["store"]["password"] = json!(SECRET);
    let reply = run_traced("ADD", &container, "eth0", &conf);
    let msg = reply.err(11);
    assert!(
        msg.contains("refused the login") || msg.contains("password"),
        "{msg}"
    );
    assert_no_secret(&reply, SECRET, "wrong password");
    assert_no_secret(&reply, &password, "wrong password");
}

#[test]
fn the_default_sslmode_refuses_a_plain_server_and_names_sslmode() {
    let Some((host, port, db, user, _)) = shared_pg("the_default_sslmode") else {
        return;
    };
    let dir = TempDir::new().unwrap();
    let mut conf = netconf(
        "1.1.0",
        "sec-tls",
        &dir.path().join("unused.db"),
        json!({"range": "10.9.6.0/24"}),
    );
    let password_file = env("PLEXUS_TEST_PG_PASSWORD_FILE").unwrap();
    // No sslmode: verify-full. The test server has no TLS.
    conf["ipam"]["store"] = json!({"type": "postgres", "host": host, "port": port, "dbname": db,
                                   "user": user, "password_file": password_file});
    let reply = ipam("ADD", "c-tls", "eth0", &conf);
    let msg = reply.err(11);
    assert!(msg.contains("sslmode"), "{msg}");
    assert!(msg.contains("verify-full"), "{msg}");
    // The same config with an explicit "disable" works: the failure was TLS, nothing else.
    conf["ipam"]["store"]["sslmode"] = json!("disable");
    ipam("ADD", "c-tls", "eth0", &conf).ok();
    ipam("DEL", "c-tls", "eth0", &conf).ok();
}

#[test]
fn range_sets_are_bounded_in_number_and_size() {
    let dir = TempDir::new().unwrap();
    let db = dir.path().join("p.db");
    // 65 disjoint /30s in one set, and 17 single-range sets.
    let many_ranges: Vec<Value> = (0..65)
        .map(|i| json!({"subnet": format!("10.10.{i}.0/30")}))
        .collect();
    let conf = netconf("1.1.0", "net-a", &db, json!({"ranges": [many_ranges]}));
    let msg = ipam("ADD", "c1", "eth0", &conf).err(7);
    assert!(msg.contains("at most 64 ranges"), "{msg}");
    let many_sets: Vec<Value> = (0..17)
        .map(|i| json!([{"subnet": format!("10.11.{i}.0/30")}]))
        .collect();
    let conf = netconf("1.1.0", "net-a", &db, json!({"ranges": many_sets}));
    let msg = ipam("ADD", "c1", "eth0", &conf).err(7);
    assert!(msg.contains("at most 16 range sets"), "{msg}");
    // At the limit it works.
    let at_limit: Vec<Value> = (0..64)
        .map(|i| json!({"subnet": format!("10.12.{i}.0/30")}))
        .collect();
    let conf = netconf("1.1.0", "net-a", &db, json!({"ranges": [at_limit]}));
    assert_eq!(ipam("ADD", "c1", "eth0", &conf).ips().len(), 1);
    // A config over 1 MB is refused before it is parsed.
    let mut huge = netconf("1.1.0", "net-a", &db, json!({"range": "10.13.0.0/24"}));
    huge["ipam"]["padding"] = json!("x".repeat(1024 * 1024 + 1));
    let reply = ipam("ADD", "c2", "eth0", &huge);
    assert_ne!(reply.code, 0, "{}", reply.stdout);
    let msg = reply.json()["msg"].as_str().unwrap_or_default().to_string();
    assert!(
        msg.contains("1048576") || msg.to_lowercase().contains("too large"),
        "{msg}"
    );
}
