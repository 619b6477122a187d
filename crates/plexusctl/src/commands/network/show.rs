//! `plexusctl network show NAME`: the stored record and its definition.

use std::io::Write as _;

use clap::Args;
use serde::Serialize;

use super::list::{allocated, describe};
use super::not_stored;
use crate::cli::OutputFormat;
use crate::context::Context;
use crate::error::CtlResult;
use crate::netfile::STORED_SOURCE;
use crate::output::{out_err, stdout, write_structured};
use crate::timefmt::rfc3339;

/// Arguments of `network show`.
#[derive(Debug, Args)]
pub struct Show {
    /// The stored network.
    pub name: String,
}

/// What is shown.
#[derive(Debug, Serialize)]
struct Shown {
    name: String,
    /// The object kind; `None` when the stored definition is unusable.
    kind: Option<String>,
    source: &'static str,
    revision: u64,
    created_at: i64,
    updated_at: i64,
    allocated: u64,
    pools: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    problem: Option<String>,
    definition: serde_json::Value,
}

impl Show {
    /// Runs the command; an unknown network is exit status 2.
    pub async fn exec(&self, ctx: &Context) -> CtlResult<()> {
        let store = ctx.open_store().await?;
        let Some(record) = store.network(&self.name).await? else {
            return Err(not_stored(ctx, store.as_ref(), &self.name).await);
        };
        let described = describe(&record);
        let shown = Shown {
            allocated: allocated(store.as_ref(), &record.name).await?,
            name: record.name,
            kind: described.kind,
            source: STORED_SOURCE,
            revision: record.revision,
            created_at: record.created_at,
            updated_at: record.updated_at,
            pools: described.pools,
            problem: described.problem,
            definition: record.definition,
        };
        let mut out = stdout();
        match ctx.output() {
            OutputFormat::Table => {
                let kind = shown.kind.as_deref().unwrap_or("(invalid)");
                writeln!(out, "Network:   {}", shown.name).map_err(out_err)?;
                writeln!(out, "Kind:      {kind}").map_err(out_err)?;
                writeln!(out, "Source:    {}", shown.source).map_err(out_err)?;
                writeln!(out, "Revision:  {}", shown.revision).map_err(out_err)?;
                writeln!(out, "Created:   {}", rfc3339(shown.created_at)).map_err(out_err)?;
                writeln!(out, "Updated:   {}", rfc3339(shown.updated_at)).map_err(out_err)?;
                writeln!(out, "Allocated: {}", shown.allocated).map_err(out_err)?;
                writeln!(out, "Pools:     {}", shown.pools.join(" ")).map_err(out_err)?;
                if let Some(problem) = &shown.problem {
                    writeln!(out, "Problem:   {problem}").map_err(out_err)?;
                }
                writeln!(out, "Definition:").map_err(out_err)?;
                write_structured(&mut out, OutputFormat::Yaml, &shown.definition)?;
            }
            format => write_structured(&mut out, format, &shown)?,
        }
        out.flush().map_err(out_err)
    }
}
