//! `plexusctl man`: the man page (roff), generated from the clap definitions, with one
//! section per subcommand.

use std::io::Write;

use clap::{Args, CommandFactory};

use crate::cli::Opts;
use crate::error::{CtlError, CtlResult};
use crate::output::{out_err, stdout};

/// Arguments of `man`.
#[derive(Debug, Args)]
pub struct Man {}

impl Man {
    /// Prints the page.
    pub fn exec(&self) -> CtlResult<()> {
        let mut out = stdout();
        render(&mut out)?;
        out.flush().map_err(out_err)
    }
}

/// Writes the whole page: the main page, then each subcommand's options as a section.
pub fn render(out: &mut impl Write) -> CtlResult<()> {
    let cmd = Opts::command();
    let man = clap_mangen::Man::new(cmd.clone());
    man.render(out).map_err(out_err)?;
    for sub in cmd.get_subcommands() {
        if sub.get_name() == "help" {
            continue;
        }
        let sub = sub.clone().name(format!("plexusctl {}", sub.get_name()));
        let page = clap_mangen::Man::new(sub);
        // Subcommand sections reuse the generator's NAME/SYNOPSIS/OPTIONS blocks as a
        // sub-heading each, so `man plexusctl` documents every flag.
        page.render_name_section(out).map_err(out_err)?;
        page.render_synopsis_section(out).map_err(out_err)?;
        page.render_options_section(out)
            .map_err(|e| CtlError::Problems(format!("man page: {e}")))?;
    }
    Ok(())
}
