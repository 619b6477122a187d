//! `plexusctl network validate -f FILE`: every validation rule, nothing stored. Exit
//! status 1 when a definition breaks a rule.

use std::io::Write as _;
use std::path::PathBuf;

use clap::Args;
use plexus_model::Operation;
use serde::Serialize;

use super::read_file;
use crate::cli::OutputFormat;
use crate::context::Context;
use crate::error::{CtlError, CtlResult};
use crate::output::{out_err, stdout, write_structured};

/// Arguments of `network validate`.
#[derive(Debug, Args)]
pub struct Validate {
    /// Network definition file (YAML or JSON; `-` for stdin).
    #[arg(short = 'f', long = "file", value_name = "FILE", required = true)]
    pub files: Vec<PathBuf>,
    /// Validate as updates of existing networks (DANM `alloc` bitmaps allowed).
    #[arg(long)]
    pub existing: bool,
}

/// The verdict on one definition.
#[derive(Debug, Serialize)]
struct Verdict {
    network: String,
    source: String,
    valid: bool,
    problems: Vec<String>,
}

impl Validate {
    /// Runs the command.
    pub fn exec(&self, ctx: &Context) -> CtlResult<()> {
        let op = if self.existing {
            Operation::Update
        } else {
            Operation::Create
        };
        let mut verdicts = Vec::new();
        for file in &self.files {
            for p in read_file(file, op)? {
                verdicts.push(Verdict {
                    valid: p.problems.is_empty(),
                    network: p.name,
                    source: p.source,
                    problems: p.problems,
                });
            }
        }
        let mut out = stdout();
        match ctx.output() {
            OutputFormat::Table => {
                for v in &verdicts {
                    if v.valid {
                        writeln!(out, "{}: valid ({})", v.network, v.source).map_err(out_err)?;
                    } else {
                        writeln!(out, "{}: INVALID ({})", v.network, v.source).map_err(out_err)?;
                        for problem in &v.problems {
                            writeln!(out, "  - {problem}").map_err(out_err)?;
                        }
                    }
                }
            }
            format => write_structured(&mut out, format, &verdicts)?,
        }
        out.flush().map_err(out_err)?;
        let broken = verdicts.iter().filter(|v| !v.valid).count();
        if broken > 0 {
            return Err(CtlError::Problems(format!(
                "{broken} of {} network definition(s) invalid",
                verdicts.len()
            )));
        }
        Ok(())
    }
}
