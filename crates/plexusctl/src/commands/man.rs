//! `plexusctl man`: the man page (roff), generated from the clap definitions, with one
//! section per subcommand, and the EXIT STATUS, STORE and ENVIRONMENT sections written
//! from the same tables `--help` prints ([`crate::error::EXIT_STATUS`],
//! [`crate::cli::STORE_FORMS`], [`crate::cli::ENV_OPTIONS`]).

use std::io::Write;

use clap::{Args, CommandFactory};

use crate::cli::{ENV_OPTIONS, Opts, STORE_FORMS};
use crate::error::{CtlError, CtlResult, EXIT_STATUS};
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

/// Writes the whole page: the main page, the exit statuses, store forms and environment,
/// then each subcommand's options as a section.
pub fn render(out: &mut impl Write) -> CtlResult<()> {
    let cmd = Opts::command();
    let man = clap_mangen::Man::new(cmd.clone());
    // Piece by piece: clap's own "EXTRA" section (the --help epilogue) is replaced by the
    // sections below.
    man.render_title(out).map_err(out_err)?;
    man.render_name_section(out).map_err(out_err)?;
    man.render_synopsis_section(out).map_err(out_err)?;
    man.render_description_section(out).map_err(out_err)?;
    man.render_options_section(out).map_err(out_err)?;
    man.render_subcommands_section(out).map_err(out_err)?;
    out.write_all(sections().as_bytes()).map_err(out_err)?;
    man.render_version_section(out).map_err(out_err)?;
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
            .map_err(|e| CtlError::Internal(format!("man page: {e}")))?;
    }
    Ok(())
}

/// The EXIT STATUS, STORE and ENVIRONMENT sections, in roff.
fn sections() -> String {
    let mut roff = String::from(".SH \"EXIT STATUS\"\n");
    for (code, meaning) in EXIT_STATUS {
        roff.push_str(&format!(".TP\n\\fB{code}\\fR\n{}\n", escape(meaning)));
    }
    roff.push_str(".SH STORE\nWhere allocations are kept (\\fB\\-\\-store\\fR, \\fBPLEXUS_STORE\\fR, the settings file's \\fBstore\\fR). Commands that only read refuse a store that does not exist and create nothing; only network create, network apply and import (and a plugin's ADD) may create one. Every store error names the store (a path or endpoints, never a password).\n");
    for (form, meaning) in STORE_FORMS {
        roff.push_str(&format!(
            ".TP\n\\fB{}\\fR\n{}\n",
            escape(form),
            escape(meaning)
        ));
    }
    roff.push_str(".SH ENVIRONMENT\n");
    for (var, flag) in ENV_OPTIONS {
        roff.push_str(&format!(
            ".TP\n\\fB{var}\\fR\nUsed when \\fB{}\\fR is not given (empty counts as unset).\n",
            escape(flag)
        ));
    }
    roff.push_str(
        ".TP\n\\fBPLEXUS_LOG\\fR\nAn env\\-filter for the log on stderr; overrides \\fB\\-v\\fR.\n",
    );
    roff
}

/// Text safe for a roff line: backslashes doubled, hyphens as minus signs, no leading
/// control character.
fn escape(text: &str) -> String {
    let escaped = text.replace('\\', "\\\\").replace('-', "\\-");
    if escaped.starts_with('.') || escaped.starts_with('\'') {
        format!("\\&{escaped}")
    } else {
        escaped
    }
}
