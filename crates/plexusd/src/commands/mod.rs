//! One module per `plexusd` subcommand.

pub mod node;
