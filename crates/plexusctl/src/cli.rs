//! The command line: global options and the subcommands, as clap derive types.
//!
//! Completions and the man page are generated from these same definitions
//! (`plexusctl completions`, `plexusctl man`), so they never drift from the parser.

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

use crate::commands;

/// Operate plexus: show and clean allocations, import and export, run CNI configs.
#[derive(Debug, Parser)]
#[command(name = "plexusctl", version, about, long_about = None, propagate_version = true)]
pub struct Opts {
    /// The allocation store: a SQLite database file, a store config file (JSON or YAML,
    /// the `"store"` object of the IPAM config) or inline JSON such as
    /// '{"type":"sqlite","path":"/var/lib/plexus/plexus.db"}'.
    /// Default: the config file's `store`, else SQLite at /var/lib/plexus/plexus.db.
    #[arg(long, global = true, env = "PLEXUS_STORE", value_name = "FILE|JSON")]
    pub store: Option<String>,

    /// plexusctl settings file (YAML). Default: /etc/plexus/plexusctl.yaml when it exists.
    #[arg(long, global = true, env = "PLEXUSCTL_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// Network definition files (plexus or DANM YAML/JSON; several documents per file
    /// allowed), consulted before the CNI configuration directory. Repeatable.
    #[arg(long = "networks", global = true, value_name = "FILE")]
    pub network_files: Vec<PathBuf>,

    /// Directory of CNI network configurations whose plexus-ipam networks plexusctl knows.
    #[arg(long, global = true, env = "PLEXUS_CNI_CONF_DIR", value_name = "DIR")]
    pub cni_conf_dir: Option<PathBuf>,

    /// Output format: human tables (default), JSON or YAML.
    #[arg(short = 'o', long, global = true, value_enum)]
    pub output: Option<OutputFormat>,

    /// More log output on stderr (-v info, -vv debug, -vvv trace). Env PLEXUS_LOG overrides.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,

    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// How results are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OutputFormat {
    /// Aligned text for people.
    Table,
    /// JSON for machines.
    Json,
    /// YAML for machines and people.
    Yaml,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Print every address of a network and who holds it (DANM Showalloc's format).
    Showalloc(commands::showalloc::Showalloc),
    /// Per network and per block: size, allocated, free and a fill bar.
    Usage(commands::usage::Usage),
    /// Release the allocations of attachments that no longer exist (what CNI GC does).
    Gc(commands::gc::Gc),
    /// Consistency report; exit status 1 when anything is wrong.
    Check(commands::check::Check),
    /// Run a CNI network configuration against a network namespace, like cnitool.
    Exec(commands::exec::Exec),
    /// Import allocations: plexus' own export, whereabouts IPPools or DANM networks.
    Import(commands::import::Import),
    /// Export allocations (and network definitions) as JSON or YAML.
    Export(commands::export::Export),
    /// Network definitions kept in the store: create, apply, list, show, validate, delete.
    Network(commands::network::Network),
    /// Who holds an address now and who held it before; or a pod's attachments.
    Why(commands::why::Why),
    /// Print a shell completion script.
    Completions(commands::completions::Completions),
    /// Print the man page (roff).
    Man(commands::man::Man),
}
