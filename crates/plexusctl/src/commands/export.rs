//! `plexusctl export [NETWORK...]`: every allocation of the named networks (default: all
//! known networks, stored ones included, and every network the store holds addresses of
//! without a definition), their definitions and their kept history, as JSON (default) or
//! YAML, for backups and for moving between stores of any backend (`plexusctl import`
//! reads it back losslessly). An unknown network is an error, never an empty export.

use std::io::Write;
use std::path::PathBuf;

use clap::Args;
use plexus_store::HistoryQuery;

use crate::cli::OutputFormat;
use crate::context::Context;
use crate::error::{CtlError, CtlResult};
use crate::import::native::Export as ExportDoc;
use crate::known;
use crate::netdef::NetworkDef;
use crate::output::{out_err, stdout, write_structured};

/// Arguments of `export`.
#[derive(Debug, Args)]
pub struct Export {
    /// Networks to export (default: every network plexusctl knows, and those the store holds
    /// addresses of without a definition).
    pub networks: Vec<String>,
    /// Write to this file instead of stdout (YAML when it ends in .yaml or .yml).
    #[arg(short = 'f', long, value_name = "FILE")]
    pub file: Option<PathBuf>,
}

impl Export {
    /// Runs the command.
    pub async fn exec(&self, ctx: &Context) -> CtlResult<()> {
        let store = ctx.open_store().await?;
        let catalog = ctx.catalog_of(store.as_ref()).await?;
        let names: Vec<String> = if self.networks.is_empty() {
            let mut names: Vec<String> = catalog
                .unique()
                .into_iter()
                .map(|d| d.name.clone())
                .collect();
            names.extend(known::orphans(&catalog, store.as_ref()).await?);
            names
        } else {
            for name in &self.networks {
                known::require(&catalog, store.as_ref(), name).await?;
            }
            self.networks.clone()
        };
        // A network without a definition still has its allocations exported.
        let objects = names
            .iter()
            .filter_map(|n| catalog.get(n))
            .filter_map(|d: &NetworkDef| d.object.clone())
            .collect();
        let mut allocations = Vec::new();
        let mut history = Vec::new();
        let mut exported = std::collections::HashSet::new();
        for name in &names {
            // A configuration sharing a network exports its own range sets of it.
            let (network, owns) = match catalog.resolve(name) {
                Some(resolved) => (resolved.network.clone(), Some(resolved)),
                None => (name.clone(), None),
            };
            let owned = |range_set: &str| owns.as_ref().is_none_or(|r| r.owns(range_set));
            let covered = |ip| owns.as_ref().is_none_or(|r| r.covers_ip(ip));
            allocations.extend(
                store
                    .list(&network)
                    .await?
                    .into_iter()
                    .filter(|a| owned(&a.range_set))
                    .filter(|a| exported.insert((a.key(), a.ip))),
            );
            let query = HistoryQuery::Network {
                network: network.clone(),
            };
            history.extend(
                store
                    .history(&query)
                    .await?
                    .into_iter()
                    .filter(|e| covered(e.ip)),
            );
        }
        let mut doc = ExportDoc::new(objects, allocations);
        doc.history = history;
        let format = match (&self.file, ctx.output()) {
            (Some(path), _) if path.extension().is_some_and(|e| e == "yaml" || e == "yml") => {
                OutputFormat::Yaml
            }
            (_, OutputFormat::Yaml) => OutputFormat::Yaml,
            _ => OutputFormat::Json,
        };
        match &self.file {
            Some(path) => {
                let mut buf = Vec::new();
                write_structured(&mut buf, format, &doc)?;
                std::fs::write(path, buf).map_err(|e| CtlError::io(path, e))?;
                tracing::info!(
                    "exported {} allocation(s) of {} network(s) to {}",
                    doc.allocations.len(),
                    names.len(),
                    path.display()
                );
                Ok(())
            }
            None => {
                let mut out = stdout();
                write_structured(&mut out, format, &doc)?;
                out.flush().map_err(out_err)
            }
        }
    }
}
