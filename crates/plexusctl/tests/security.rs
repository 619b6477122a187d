//! plexusctl's part of `docs/security.md`: no password on the command line (argv is
//! world-readable through `ps` and `/proc/PID/cmdline`), and no password in any output.

mod common;

use std::net::TcpListener;
use std::process::Command;

use common::{Env, binary, run};

const SECRET: &str = "ctl-INLINE-s3cret";

fn closed_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

fn plexusctl(args: &[&str], store_env: Option<&str>) -> common::Run {
    let mut cmd = Command::new(binary());
    cmd.args(args)
        .env_remove("PLEXUS_STORE")
        .env_remove("PLEXUSCTL_CONFIG")
        .env("PLEXUS_LOG", "trace");
    if let Some(store) = store_env {
        cmd.env("PLEXUS_STORE", store);
    }
    run(&mut cmd, "")
}

#[test]
fn an_inline_password_in_store_json_is_refused() {
    let port = closed_port();
    let inline = format!(
        r#"{{"type":"postgres","host":"127.0.0.1","port":{port},"password":"{SECRET}","sslmode":"disable"}}"#
    );
    // As a flag, and through PLEXUS_STORE (same parser, same rule).
    for (args, env) in [
        (vec!["--store", inline.as_str(), "usage"], None),
        (vec!["usage"], Some(inline.as_str())),
    ] {
        let reply = plexusctl(&args, env);
        let stderr = reply.fails(2);
        assert!(stderr.contains("password_file"), "{stderr}");
        assert!(stderr.contains("config file"), "{stderr}");
        assert!(
            !reply.stdout.contains(SECRET) && !stderr.contains(SECRET),
            "{reply:?}"
        );
    }
}

#[test]
fn a_store_config_file_may_hold_the_password_and_never_prints_it() {
    let env = Env::new();
    let port = closed_port();
    let file = env.file(
        "store.json",
        &format!(
            r#"{{"type":"postgres","host":"127.0.0.1","port":{port},"password":"{SECRET}","sslmode":"disable","timeout_ms":300}}"#
        ),
    );
    let reply = plexusctl(&["--store", file.to_str().unwrap(), "usage"], None);
    // Accepted (not the argv refusal); the store is only unreachable.
    assert!(!reply.stderr.contains("password_file"), "{reply:?}");
    assert!(
        reply.stderr.contains("cannot reach PostgreSQL"),
        "{reply:?}"
    );
    // The debug log names the store by endpoint, never by its config object.
    assert!(reply.stderr.contains("opening store"), "{reply:?}");
    assert!(!reply.stderr.contains("PostgresConfig"), "{reply:?}");
    assert!(
        !reply.stdout.contains(SECRET) && !reply.stderr.contains(SECRET),
        "{reply:?}"
    );
}
