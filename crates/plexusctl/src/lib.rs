//! plexusctl: the operator CLI of plexus.
//!
//! The binary (`src/main.rs`) only parses the command line, sets up logging and maps errors
//! to exit codes; everything else lives here so it can be unit-tested:
//! - [`cli`]: the clap definitions (also the source of completions and the man page);
//! - [`commands`]: one module per subcommand;
//! - [`walk`], [`source`], [`heatmap`]: the streaming address walk of `showalloc`, the
//!   paged allocation reader and the pool heat-map;
//! - [`netdef`], [`netfile`], [`settings`], [`store_url`], [`context`]: where networks
//!   and the store are found;
//! - [`import`]: parsers of plexus', whereabouts' and DANM's formats;
//! - [`runner`]: the CNI runner behind `exec`.

pub mod cli;
pub mod commands;
pub mod context;
pub mod error;
pub mod heatmap;
pub mod import;
pub mod known;
pub mod netdef;
pub mod netfile;
pub mod output;
pub mod runner;
pub mod settings;
pub mod source;
pub mod store_url;
pub mod timefmt;
pub mod walk;

pub use cli::{Command, Opts, OutputFormat};
pub use context::Context;
pub use error::{CtlError, CtlResult};

/// Runs one parsed command line.
pub async fn run(opts: Opts) -> CtlResult<()> {
    // Commands that need no settings or store work even with a broken settings file.
    match &opts.command {
        Command::Completions(c) => return c.exec(),
        Command::Man(m) => return m.exec(),
        _ => {}
    }
    let ctx = Context::new(settings::Settings::resolve(&opts)?);
    match &opts.command {
        Command::Showalloc(c) => c.exec(&ctx).await,
        Command::Usage(c) => c.exec(&ctx).await,
        Command::Gc(c) => c.exec(&ctx).await,
        Command::Check(c) => c.exec(&ctx).await,
        Command::Exec(c) => c.exec(&ctx).await,
        Command::Import(c) => c.exec(&ctx).await,
        Command::Export(c) => c.exec(&ctx).await,
        Command::Network(c) => c.exec(&ctx).await,
        Command::Why(c) => c.exec(&ctx).await,
        Command::Completions(_) | Command::Man(_) => Ok(()),
    }
}
