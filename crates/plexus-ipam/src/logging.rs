//! Logging for the plugin: `tracing` to stderr (or a file), never to stdout.
//!
//! Stdout carries the CNI result alone. The level comes from `ipam.log_level` when the
//! config sets it, else from `PLEXUS_LOG`, else `warn`. `ipam.log_file` appends to a file.

use std::fs::OpenOptions;
use std::os::unix::fs::OpenOptionsExt;
use std::sync::Mutex;

use serde_json::Value;
use tracing_subscriber::EnvFilter;

/// Installs the subscriber for this process; later calls are no-ops.
pub fn init(ipam: Option<&Value>) {
    let level = ipam
        .and_then(|v| v.get("log_level"))
        .and_then(Value::as_str)
        .map(normalise_level)
        .map(str::to_string)
        .or_else(|| std::env::var("PLEXUS_LOG").ok())
        .unwrap_or_else(|| "warn".to_string());
    let filter = EnvFilter::try_new(&level).unwrap_or_else(|_| EnvFilter::new("warn"));
    let file = ipam
        .and_then(|v| v.get("log_file"))
        .and_then(Value::as_str)
        .and_then(|path| {
            OpenOptions::new()
                .create(true)
                .append(true)
                .mode(0o600)
                .open(path)
                .ok()
        });
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false);
    let _ = match file {
        Some(file) => builder
            .with_ansi(false)
            .with_writer(Mutex::new(file))
            .try_init(),
        None => builder.with_writer(std::io::stderr).try_init(),
    };
}

/// Maps whereabouts' level names onto tracing's.
fn normalise_level(level: &str) -> &str {
    match level {
        "verbose" => "debug",
        "panic" => "error",
        other => other,
    }
}
