//! `plexusctl network create -f FILE` and `plexusctl network apply -f FILE`.
//!
//! Everything is decided before anything is written: a file with an invalid definition is
//! refused like `network validate` reports it (same lines, exit status 1); `create`
//! refuses names that exist; `apply` leaves an unchanged network alone (no new revision)
//! and refuses a change that would leave held addresses outside the new pools unless
//! `--force`. `--dry-run` prints what would change, field by field, and writes nothing.
//! These are the only `network` commands that may create the store.

use std::io::Write as _;
use std::path::PathBuf;

use clap::Args;
use plexus_model::Operation;
use plexus_store::{NetworkRecord, PutMode, Store};
use serde::Serialize;

use super::change::{Stranded, def_of, diff, stranded};
use super::read_file;
use super::validate::{Verdict, host_bit_notes, write_verdicts};
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

/// Arguments of `network create`.
#[derive(Debug, Args)]
pub struct Write {
    /// Network definition file (YAML or JSON, several documents allowed; `-` for stdin).
    #[arg(short = 'f', long = "file", value_name = "FILE", required = true)]
    pub files: Vec<PathBuf>,
    /// Print what would be written, field by field; write nothing.
    #[arg(long)]
    pub dry_run: bool,
}

/// Arguments of `network apply`.
#[derive(Debug, Args)]
pub struct Apply {
    /// The files, and --dry-run.
    #[command(flatten)]
    pub write: Write,
    /// Apply even when held addresses would be left outside the new pools (they stay held;
    /// `check` then reports them).
    #[arg(long)]
    pub force: bool,
}

/// What happens (or would happen) to one network.
#[derive(Debug, Serialize)]
struct Planned {
    name: String,
    /// The revision after the write (the current one when unchanged or refused).
    revision: u64,
    /// Whether the network is new.
    created: bool,
    /// `created`, `updated`, `unchanged` or `refused` (`would create`, … with --dry-run).
    result: String,
    /// Changed fields of the definition, `path: old -> new`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    changes: Vec<String>,
    /// Held addresses the new definition leaves outside its pools.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    stranded: Vec<Stranded>,
    /// Why it is refused.
    #[serde(skip_serializing_if = "Option::is_none")]
    refused: Option<String>,
    #[serde(skip)]
    definition: serde_json::Value,
}

impl Write {
    /// Validates every definition of every file, decides each write, then writes them
    /// (nothing when any definition is invalid or any change is refused).
    pub async fn exec(&self, ctx: &Context, mode: Mode, force: bool) -> CtlResult<()> {
        // Create follows DANM's CREATE rules; apply may carry DANM's alloc bitmaps.
        let op = match mode {
            Mode::Create => Operation::Create,
            Mode::Apply => Operation::Update,
        };
        let mut parsed = Vec::new();
        for file in &self.files {
            parsed.extend(read_file(file, op)?);
        }
        for p in &parsed {
            for note in host_bit_notes(&p.definition) {
                eprintln!("note: {} ({}): {note}", p.name, p.source);
            }
        }
        let invalid: Vec<Verdict> = parsed
            .iter()
            .filter(|p| !p.problems.is_empty())
            .map(Verdict::of)
            .collect();
        if !invalid.is_empty() {
            let mut out = stdout();
            write_verdicts(&mut out, ctx.output(), &invalid)?;
            out.flush().map_err(out_err)?;
            return Err(CtlError::Problems(format!(
                "{} of {} network definition(s) invalid; nothing stored",
                invalid.len(),
                parsed.len()
            )));
        }
        // A dry run never creates the store: a missing one holds nothing yet.
        let store = if self.dry_run && !ctx.store_exists() {
            None
        } else if self.dry_run {
            Some(ctx.open_store().await?)
        } else {
            Some(ctx.open_store_for_writing().await?)
        };
        let mut plans = Vec::new();
        for p in &parsed {
            let existing = match &store {
                Some(store) => store.network(&p.name).await?,
                None => None,
            };
            plans.push(
                plan(
                    store.as_deref(),
                    mode,
                    force,
                    &p.name,
                    &p.definition,
                    existing,
                )
                .await?,
            );
        }
        let refused = plans.iter().filter(|p| p.refused.is_some()).count();
        if !self.dry_run && refused == 0 {
            let store = store
                .as_deref()
                .ok_or_else(|| CtlError::Internal("no store opened for writing".to_string()))?;
            write_all(store, mode, &mut plans).await?;
        }
        if self.dry_run {
            for p in plans.iter_mut() {
                p.result = match p.result.as_str() {
                    "created" => "would create",
                    "updated" => "would update",
                    other => other,
                }
                .to_string();
            }
        }
        let mut out = stdout();
        match ctx.output() {
            OutputFormat::Table => write_table(&mut out, &plans).map_err(out_err)?,
            format => write_structured(&mut out, format, &plans)?,
        }
        out.flush().map_err(out_err)?;
        if refused > 0 {
            let reasons: Vec<String> = plans
                .iter()
                .filter_map(|p| Some(format!("{}: {}", p.name, p.refused.as_ref()?)))
                .collect();
            return Err(CtlError::Problems(format!(
                "{refused} of {} network(s) refused, nothing stored: {}",
                plans.len(),
                reasons.join("; ")
            )));
        }
        Ok(())
    }
}

/// Decides what to do with one network.
async fn plan(
    store: Option<&dyn Store>,
    mode: Mode,
    force: bool,
    name: &str,
    definition: &serde_json::Value,
    existing: Option<NetworkRecord>,
) -> CtlResult<Planned> {
    let mut planned = Planned {
        name: name.to_string(),
        revision: 1,
        created: true,
        result: "created".to_string(),
        changes: Vec::new(),
        stranded: Vec::new(),
        refused: None,
        definition: definition.clone(),
    };
    let Some(record) = existing else {
        return Ok(planned);
    };
    planned.created = false;
    planned.revision = record.revision;
    if mode == Mode::Create {
        planned.result = "refused".to_string();
        planned.refused = Some(format!(
            "exists already (revision {}); network apply replaces it",
            record.revision
        ));
        return Ok(planned);
    }
    planned.changes = diff(&record.definition, definition);
    if planned.changes.is_empty() {
        planned.result = "unchanged".to_string();
        return Ok(planned);
    }
    planned.result = "updated".to_string();
    planned.revision = record.revision + 1;
    if let Some(store) = store {
        let held = store.list(name).await?;
        planned.stranded = stranded(&def_of(name, definition)?, &held);
    }
    if !planned.stranded.is_empty() && !force {
        planned.result = "refused".to_string();
        planned.revision = record.revision;
        planned.refused = Some(format!(
            "{} held address(es) would be left outside the new pools; release them first, \
             or apply with --force (they stay held and check reports them)",
            planned.stranded.len()
        ));
    }
    Ok(planned)
}

/// Writes every planned create and update (unchanged networks are not touched).
async fn write_all(store: &dyn Store, mode: Mode, plans: &mut [Planned]) -> CtlResult<()> {
    let put = match mode {
        Mode::Create => PutMode::Create,
        Mode::Apply => PutMode::Upsert,
    };
    for p in plans.iter_mut() {
        if p.result == "unchanged" {
            continue;
        }
        let record = store.put_network(&p.name, &p.definition, put).await?;
        p.revision = record.revision;
        p.created = record.revision == 1;
    }
    Ok(())
}

fn write_table(out: &mut impl std::io::Write, plans: &[Planned]) -> std::io::Result<()> {
    let mut table = Table::new(&["NETWORK", "REVISION", "RESULT"]).right_aligned(&[1]);
    for p in plans {
        table.row(vec![
            p.name.clone(),
            p.revision.to_string(),
            p.result.clone(),
        ]);
    }
    table.write(out)?;
    for p in plans {
        for change in &p.changes {
            writeln!(out, "{}: {change}", p.name)?;
        }
        if let Some(refused) = &p.refused {
            writeln!(out, "{}: refused: {refused}", p.name)?;
        }
        for s in &p.stranded {
            writeln!(out, "{}:   {} {} ({})", p.name, s.ip, s.holder, s.problem)?;
        }
    }
    Ok(())
}
