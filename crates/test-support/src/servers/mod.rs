//! The servers gate and the database servers of the tests: the shared PostgreSQL and etcd
//! of `scripts/with-servers` (found through its environment variables) and private servers
//! on loopback that a test may stop, pause and restart.
//!
//! When a server (or a tool) is missing a test is skipped with `SKIPPED <test>: <reason>`,
//! unless `PLEXUS_REQUIRE_SERVERS=1`, where the skip is a failure ([`skip`]).
//!
//! Nothing here depends on plexus' crates: the store's own tests build their
//! configurations from these connection details.

pub mod etcd;
pub mod postgres;

use std::net::TcpListener;
use std::process::Command;

/// The variable that turns a skipped server test into a failure (`=1`).
pub const REQUIRE_VAR: &str = "PLEXUS_REQUIRE_SERVERS";

/// Whether a missing server must fail the test instead of skipping it.
pub fn servers_required() -> bool {
    std::env::var(REQUIRE_VAR).is_ok_and(|v| v == "1")
}

/// Skips (returns `None`, printing `SKIPPED <test>: <reason>`) or, under
/// `PLEXUS_REQUIRE_SERVERS=1`, fails.
pub fn skip<T>(test: &str, reason: &str) -> Option<T> {
    assert!(!servers_required(), "{test}: {reason} ({REQUIRE_VAR}=1)");
    eprintln!("SKIPPED {test}: {reason}");
    None
}

/// A free loopback port (bound and released; good enough for a test server).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| panic!("no free loopback port: {e}"))
}

/// The value of the environment variable `name`, unless unset or blank.
pub fn var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

/// Runs `cmd` and panics with its output when it fails.
fn run_ok(cmd: &mut Command) {
    let output = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(
        output.status.success(),
        "{cmd:?} failed: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}
