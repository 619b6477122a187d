//! One module per subcommand, each with its clap `Args` struct and an `exec` method.

pub mod check;
pub mod completions;
pub mod exec;
pub mod export;
pub mod gc;
pub mod gc_network;
pub mod import;
pub mod man;
pub mod network;
pub mod showalloc;
pub mod usage;
pub mod why;
