//! The command line: global options and the subcommands, as clap derive types.
//!
//! Completions and the man page are generated from these same definitions
//! (`plexusctl completions`, `plexusctl man`), so they never drift from the parser.

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

use crate::commands;
use crate::error::EXIT_STATUS;

/// Operate plexus: show and clean allocations, import and export, run CNI configs.
#[derive(Debug, Parser)]
#[command(
    name = "plexusctl",
    version,
    about,
    long_about = None,
    propagate_version = true,
    after_long_help = after_long_help()
)]
pub struct Opts {
    /// The allocation store: a SQLite database file, a store URL (sqlite:///path,
    /// postgres://[user@]host[:port]/dbname?sslmode=..., etcd://host:port[,host:port],
    /// http(s)://host:port), a store config file (JSON or YAML, the `"store"` object of
    /// the IPAM config) or inline JSON such as '{"type":"sqlite","path":"/x.db"}'. Env
    /// PLEXUS_STORE. Default: the settings file's `store`, else SQLite at
    /// /var/lib/plexus/plexus.db. Only commands that write may create a store.
    #[arg(
        long,
        global = true,
        value_name = "STORE",
        help_heading = GLOBAL_OPTIONS
    )]
    pub store: Option<String>,

    /// plexusctl settings file (YAML). Env PLEXUSCTL_CONFIG. Default:
    /// /etc/plexus/plexusctl.yaml when it exists.
    #[arg(long, global = true, value_name = "FILE", help_heading = GLOBAL_OPTIONS)]
    pub config: Option<PathBuf>,

    /// Network definition files (plexus or DANM YAML/JSON; several documents per file
    /// allowed), consulted before the CNI configuration directory. Repeatable.
    #[arg(
        long = "networks",
        global = true,
        value_name = "FILE",
        help_heading = GLOBAL_OPTIONS
    )]
    pub network_files: Vec<PathBuf>,

    /// Directory of CNI network configurations whose plexus-ipam networks plexusctl knows.
    /// Env PLEXUS_CNI_CONF_DIR.
    #[arg(long, global = true, value_name = "DIR", help_heading = GLOBAL_OPTIONS)]
    pub cni_conf_dir: Option<PathBuf>,

    /// Output format: human tables (default), JSON or YAML.
    #[arg(
        short = 'o',
        long,
        global = true,
        value_enum,
        help_heading = GLOBAL_OPTIONS
    )]
    pub output: Option<OutputFormat>,

    /// More log output on stderr (-v info, -vv debug, -vvv trace). Env PLEXUS_LOG overrides.
    #[arg(
        short,
        long,
        global = true,
        action = clap::ArgAction::Count,
        help_heading = GLOBAL_OPTIONS
    )]
    pub verbose: u8,

    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The heading the options every subcommand shares are listed under, after the
/// subcommand's own.
pub const GLOBAL_OPTIONS: &str = "Global options";

/// The environment variables that stand in for global options left off the command line.
/// Read here rather than by clap, so that a variable that is set never makes its option
/// look required in a usage line.
pub const ENV_OPTIONS: &[(&str, &str)] = &[
    ("PLEXUS_STORE", "--store"),
    ("PLEXUSCTL_CONFIG", "--config"),
    ("PLEXUS_CNI_CONF_DIR", "--cni-conf-dir"),
];

impl Opts {
    /// Parses the command line, then takes what it left out from the environment
    /// ([`ENV_OPTIONS`]; an empty variable counts as unset).
    pub fn parse_from_env() -> Opts {
        let mut opts = Opts::parse();
        opts.fill_from_env(|name| std::env::var(name).ok());
        opts
    }

    /// Fills global options absent from the command line from `var`.
    pub fn fill_from_env(&mut self, var: impl Fn(&str) -> Option<String>) {
        let var = |name: &str| var(name).filter(|v| !v.is_empty());
        if self.store.is_none() {
            self.store = var("PLEXUS_STORE");
        }
        if self.config.is_none() {
            self.config = var("PLEXUSCTL_CONFIG").map(PathBuf::from);
        }
        if self.cni_conf_dir.is_none() {
            self.cni_conf_dir = var("PLEXUS_CNI_CONF_DIR").map(PathBuf::from);
        }
    }
}

/// The end of `plexusctl --help`: exit statuses and store forms (the man page has them as
/// sections of their own).
fn after_long_help() -> String {
    let mut text = String::from("Exit status:\n");
    for (code, meaning) in EXIT_STATUS {
        text.push_str(&format!("  {code}\n      {meaning}\n"));
    }
    text.push_str("\nStores (--store, PLEXUS_STORE):\n");
    for (form, meaning) in STORE_FORMS {
        text.push_str(&format!("  {form}\n      {meaning}\n"));
    }
    text
}

/// The forms `--store` takes, for `--help`, the man page and the README.
pub const STORE_FORMS: &[(&str, &str)] = &[
    (
        "/var/lib/plexus/plexus.db",
        "a SQLite database file (relative paths are taken from the working directory)",
    ),
    (
        "sqlite:///var/lib/plexus/plexus.db",
        "the same as a URL (sqlite:relative.db and sqlite://relative.db are relative)",
    ),
    (
        "postgres://user@db.example:5432/plexus?sslmode=verify-full&password_file=/etc/plexus/pg.pw",
        "PostgreSQL (also postgresql://); query keys are those of the \"store\" object; a \
         password in the URL is refused (use password_file)",
    ),
    (
        "etcd://10.0.0.1:2379,10.0.0.2:2379/plexus",
        "etcd endpoints over http, the path is the key prefix (etcds:// for https); \
         http(s)://host:port also names etcd",
    ),
    (
        "store.yaml, store.json",
        "a store config file: the \"store\" object of the IPAM config (or a whole IPAM \
         section or netconf holding one); may keep a password",
    ),
    (
        r#"'{"type":"postgres","host":"db","password_file":"/etc/plexus/pg.pw"}'"#,
        "inline JSON, like the \"store\" object (an inline password is refused)",
    ),
];

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
