//! `plexusctl network show NAME`: the stored record and its definition.

use std::io::Write as _;

use clap::Args;
use serde::Serialize;

use super::list::{allocated, pools};
use crate::cli::OutputFormat;
use crate::context::Context;
use crate::error::{CtlError, CtlResult};
use crate::output::{out_err, stdout, write_structured};

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
    revision: u64,
    created_at: i64,
    updated_at: i64,
    allocated: u64,
    definition: serde_json::Value,
}

impl Show {
    /// Runs the command; an unknown network is exit status 2.
    pub async fn exec(&self, ctx: &Context) -> CtlResult<()> {
        let store = ctx.open_store().await?;
        let record = store.network(&self.name).await?.ok_or_else(|| {
            CtlError::invalid(
                format!("network {}", self.name),
                "is not stored (plexusctl network list shows the stored networks)",
            )
        })?;
        let (kind, pool_list) = pools(&record);
        let shown = Shown {
            allocated: allocated(store.as_ref(), &record.name).await?,
            name: record.name,
            revision: record.revision,
            created_at: record.created_at,
            updated_at: record.updated_at,
            definition: record.definition,
        };
        let mut out = stdout();
        match ctx.output() {
            OutputFormat::Table => {
                writeln!(out, "Network:   {}", shown.name).map_err(out_err)?;
                writeln!(out, "Kind:      {kind}").map_err(out_err)?;
                writeln!(out, "Revision:  {}", shown.revision).map_err(out_err)?;
                writeln!(out, "Created:   {}", shown.created_at).map_err(out_err)?;
                writeln!(out, "Updated:   {}", shown.updated_at).map_err(out_err)?;
                writeln!(out, "Allocated: {}", shown.allocated).map_err(out_err)?;
                writeln!(out, "Pools:     {}", pool_list.join(" ")).map_err(out_err)?;
                writeln!(out, "Definition:").map_err(out_err)?;
                write_structured(&mut out, OutputFormat::Yaml, &shown.definition)?;
            }
            format => write_structured(&mut out, format, &shown)?,
        }
        out.flush().map_err(out_err)
    }
}
