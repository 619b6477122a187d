//! `plexusd node`: serve the node agent on a Unix socket until SIGTERM or SIGINT.
//!
//! The agent needs no store flags: every request names the store the plugin was
//! configured with, and the agent keeps one open store per distinct configuration.

use std::path::PathBuf;

use anyhow::Context as _;
use clap::Args;
use plexus_store::remote::{Agent, DEFAULT_AGENT_SOCKET, DEFAULT_PG_POOL_SIZE};
use tokio::signal::unix::{SignalKind, signal};
use tracing_subscriber::EnvFilter;

/// Options of `plexusd node`.
#[derive(Debug, Args)]
pub struct NodeArgs {
    /// The Unix socket to listen on (created 0600, its directory 0700).
    #[arg(long, default_value = DEFAULT_AGENT_SOCKET)]
    socket: PathBuf,
    /// Log filter for stderr (`error`, `warn`, `info`, `debug`, or an env-filter directive);
    /// `PLEXUS_LOG` wins when set.
    #[arg(long, default_value = "info")]
    log_level: String,
    /// Most PostgreSQL connections kept per configured store.
    #[arg(long, default_value_t = DEFAULT_PG_POOL_SIZE)]
    pg_pool_size: usize,
}

/// Runs the agent until a termination signal, then drains in-flight requests.
pub fn run(args: NodeArgs) -> anyhow::Result<()> {
    let filter = std::env::var("PLEXUS_LOG")
        .ok()
        .and_then(|f| EnvFilter::try_new(f).ok())
        .map_or_else(|| EnvFilter::try_new(&args.log_level), Ok)
        .context("invalid --log-level")?;
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .init();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("plexusd")
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async {
        let agent = Agent::bind(&args.socket, args.pg_pool_size)?;
        let mut term = signal(SignalKind::terminate()).context("cannot watch SIGTERM")?;
        let mut int = signal(SignalKind::interrupt()).context("cannot watch SIGINT")?;
        tracing::info!(socket = %agent.socket().display(), "node agent listening");
        agent
            .serve(async move {
                tokio::select! {
                    _ = term.recv() => tracing::info!("SIGTERM received"),
                    _ = int.recv() => tracing::info!("SIGINT received"),
                }
            })
            .await;
        tracing::info!("node agent stopped");
        Ok(())
    })
}
