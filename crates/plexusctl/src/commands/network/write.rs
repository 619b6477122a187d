//! `plexusctl network create -f FILE` and `plexusctl network apply -f FILE`.

use std::io::Write as _;
use std::path::PathBuf;

use clap::Args;
use plexus_model::Operation;
use plexus_store::{NetworkRecord, PutMode};
use serde::Serialize;

use super::read_file;
use crate::cli::OutputFormat;
use crate::context::Context;
use crate::error::{CtlError, CtlResult};
use crate::output::{Table, out_err, stdout, write_structured};

/// Whether names must be new.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// `create`: every name must be new.
    Create,
    /// `apply`: create or replace.
    Apply,
}

/// Arguments of `network create` and `network apply`.
#[derive(Debug, Args)]
pub struct Write {
    /// Network definition file (YAML or JSON, several documents allowed; `-` for stdin).
    #[arg(short = 'f', long = "file", value_name = "FILE", required = true)]
    pub files: Vec<PathBuf>,
}

/// What was written, per network.
#[derive(Debug, Serialize)]
struct Written {
    name: String,
    revision: u64,
    created: bool,
}

impl Write {
    /// Validates every definition of every file, then writes them (nothing is written
    /// when any definition is invalid).
    pub async fn exec(&self, ctx: &Context, mode: Mode) -> CtlResult<()> {
        // Create follows DANM's CREATE rules; apply may carry DANM's alloc bitmaps.
        let op = match mode {
            Mode::Create => Operation::Create,
            Mode::Apply => Operation::Update,
        };
        let mut parsed = Vec::new();
        for file in &self.files {
            parsed.extend(read_file(file, op)?);
        }
        let invalid: Vec<String> = parsed
            .iter()
            .filter(|p| !p.problems.is_empty())
            .map(|p| format!("{} ({}): {}", p.source, p.name, p.problems.join("; ")))
            .collect();
        if !invalid.is_empty() {
            return Err(CtlError::invalid("network definitions", invalid.join("\n")));
        }
        let put = match mode {
            Mode::Create => PutMode::Create,
            Mode::Apply => PutMode::Upsert,
        };
        let store = ctx.open_store().await?;
        let mut written = Vec::new();
        for p in &parsed {
            let record: NetworkRecord = store.put_network(&p.name, &p.definition, put).await?;
            written.push(Written {
                created: record.revision == 1,
                name: record.name,
                revision: record.revision,
            });
        }
        let mut out = stdout();
        match ctx.output() {
            OutputFormat::Table => {
                let mut table = Table::new(&["NETWORK", "REVISION", "RESULT"]).right_aligned(&[1]);
                for w in &written {
                    let result = if w.created { "created" } else { "updated" };
                    table.row(vec![w.name.clone(), w.revision.to_string(), result.into()]);
                }
                table.write(&mut out).map_err(out_err)?;
            }
            format => write_structured(&mut out, format, &written)?,
        }
        out.flush().map_err(out_err)
    }
}
