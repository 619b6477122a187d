//! `plexusd`: the plexus node daemon. `plexusd node` runs the node agent that the CNI
//! plugins of this node reach over a Unix socket (see `plexus_store::remote`).

mod commands;

use clap::{Parser, Subcommand};

/// The plexus node daemon.
#[derive(Debug, Parser)]
#[command(name = "plexusd", version, about)]
struct Opts {
    #[command(subcommand)]
    command: Command,
}

/// What to run.
#[derive(Debug, Subcommand)]
enum Command {
    /// Serve the node agent: warm store connections for this node's CNI plugin calls.
    Node(commands::node::NodeArgs),
}

fn main() -> anyhow::Result<()> {
    let opts = Opts::parse();
    match opts.command {
        Command::Node(args) => commands::node::run(args),
    }
}
