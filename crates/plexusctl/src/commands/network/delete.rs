//! `plexusctl network delete NAME [--force]`.

use std::io::Write as _;

use clap::Args;
use plexus_store::NetworkDeletion;

use super::not_stored;
use crate::cli::OutputFormat;
use crate::context::Context;
use crate::error::{CtlError, CtlResult};
use crate::output::{out_err, stdout, write_structured};

/// Arguments of `network delete`.
#[derive(Debug, Args)]
pub struct Delete {
    /// The stored network.
    pub name: String,
    /// Delete even while the network holds addresses (they stay allocated until released
    /// by DEL or `plexusctl gc`).
    #[arg(long)]
    pub force: bool,
}

impl Delete {
    /// Runs the command: deleted (exit 0), still in use (exit 1) or unknown (exit 2).
    pub async fn exec(&self, ctx: &Context) -> CtlResult<()> {
        let store = ctx.open_store().await?;
        let outcome = store.delete_network(&self.name, self.force).await?;
        match &outcome {
            NetworkDeletion::NotFound => {
                return Err(not_stored(ctx, store.as_ref(), &self.name).await);
            }
            NetworkDeletion::InUse { allocations } => {
                return Err(CtlError::Problems(format!(
                    "network {} still holds {allocations} address(es): release them first, or \
                     delete with --force (the addresses stay allocated)",
                    self.name
                )));
            }
            NetworkDeletion::Deleted { .. } => {}
        }
        let mut out = stdout();
        match (ctx.output(), &outcome) {
            (OutputFormat::Table, NetworkDeletion::Deleted { allocations, .. }) => {
                if *allocations > 0 {
                    writeln!(
                        out,
                        "network {} deleted; {allocations} address(es) stay allocated (check \
                         reports them, gc {} --orphaned releases them)",
                        self.name, self.name
                    )
                } else {
                    writeln!(out, "network {} deleted", self.name)
                }
                .map_err(out_err)?;
            }
            (OutputFormat::Table, _) => {}
            (format, outcome) => write_structured(&mut out, format, outcome)?,
        }
        out.flush().map_err(out_err)
    }
}
