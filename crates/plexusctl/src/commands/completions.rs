//! `plexusctl completions SHELL`: a completion script generated from the clap definitions.

use std::io::Write;

use clap::{Args, CommandFactory};
use clap_complete::Shell;

use crate::cli::Opts;
use crate::error::CtlResult;
use crate::output::{out_err, stdout};

/// Arguments of `completions`.
#[derive(Debug, Args)]
pub struct Completions {
    /// The shell (bash, zsh, fish, elvish, powershell).
    pub shell: Shell,
}

impl Completions {
    /// Prints the script.
    pub fn exec(&self) -> CtlResult<()> {
        let mut out = stdout();
        clap_complete::generate(self.shell, &mut Opts::command(), "plexusctl", &mut out);
        out.flush().map_err(out_err)
    }
}
