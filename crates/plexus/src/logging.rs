//! Logging: `tracing` to stderr, never stdout (stdout carries the CNI result alone). The
//! filter is `logLevel` from the configuration, else `PLEXUS_LOG`, else `warn`.

use tracing_subscriber::EnvFilter;

/// Installs the subscriber for this process; later calls are no-ops.
pub fn init(level: Option<&str>) {
    let level = level
        .map(str::to_owned)
        .or_else(|| std::env::var("PLEXUS_LOG").ok())
        .unwrap_or_else(|| "warn".to_owned());
    let filter = EnvFilter::try_new(&level).unwrap_or_else(|_| EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .with_writer(std::io::stderr)
        .try_init();
}
