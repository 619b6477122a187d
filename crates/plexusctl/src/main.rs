//! The `plexusctl` binary: parse, set up logging on stderr, run, map errors to exit codes.

use std::process::ExitCode;

use anyhow::Context as _;
use plexusctl::{CtlError, Opts};

fn main() -> ExitCode {
    let opts = Opts::parse_from_env();
    init_tracing(opts.verbose);
    match run(opts) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            if let Some(ctl) = err.downcast_ref::<CtlError>() {
                if ctl.is_broken_pipe() {
                    return ExitCode::SUCCESS;
                }
                // A CtlError's own text already carries its cause: printing the source
                // chain as well would say it twice.
                eprintln!("plexusctl: {ctl}");
                return ExitCode::from(ctl.exit_code());
            }
            eprintln!("plexusctl: {err:#}");
            ExitCode::from(plexusctl::error::EXIT_CANNOT_RUN)
        }
    }
}

fn run(opts: Opts) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(plexusctl::run(opts))?;
    Ok(())
}

/// Logs go to stderr: stdout carries results only. `PLEXUS_LOG` (an env-filter) overrides
/// the `-v` level.
fn init_tracing(verbose: u8) {
    let level = match verbose {
        0 => "warn",
        1 => "info",
        2 => "debug",
        _ => "trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("PLEXUS_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .without_time()
        .init();
}
