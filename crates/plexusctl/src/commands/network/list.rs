//! `plexusctl network list`: every stored network, its pools, revision and how many
//! addresses it holds (one indexed count per family).

use std::io::Write as _;
use std::net::IpAddr;

use clap::Args;
use plexus_store::{NetworkRecord, Store};
use serde::Serialize;

use crate::cli::OutputFormat;
use crate::context::Context;
use crate::error::CtlResult;
use crate::netfile::stored_def;
use crate::output::{Table, out_err, stdout, write_structured};

/// Arguments of `network list`.
#[derive(Debug, Args)]
pub struct List {}

/// One row.
#[derive(Debug, Serialize)]
struct Row {
    name: String,
    kind: String,
    pools: Vec<String>,
    revision: u64,
    updated_at: i64,
    allocated: u64,
}

/// Addresses `network` holds, both families.
pub async fn allocated(store: &dyn Store, network: &str) -> CtlResult<u64> {
    let v4 = store
        .count_between(network, IpAddr::from([0u8; 4]), IpAddr::from([255u8; 4]))
        .await?;
    let v6 = store
        .count_between(
            network,
            IpAddr::from([0u16; 8]),
            IpAddr::from([0xffffu16; 8]),
        )
        .await?;
    Ok(v4 + v6)
}

/// `cidr` or `cidr[start-end]` per pool; the problem when the definition is unusable.
pub fn pools(record: &NetworkRecord) -> (String, Vec<String>) {
    match stored_def(record) {
        Ok(def) => (
            def.kind.to_string(),
            def.pools
                .iter()
                .map(|p| format!("{}[{}-{}]", p.cidr, p.start, p.end))
                .collect(),
        ),
        Err(e) => ("invalid".to_string(), vec![e.to_string()]),
    }
}

impl List {
    /// Runs the command.
    pub async fn exec(&self, ctx: &Context) -> CtlResult<()> {
        let store = ctx.open_store().await?;
        let mut rows = Vec::new();
        for record in store.networks().await? {
            let (kind, pools) = pools(&record);
            rows.push(Row {
                allocated: allocated(store.as_ref(), &record.name).await?,
                name: record.name,
                kind,
                pools,
                revision: record.revision,
                updated_at: record.updated_at,
            });
        }
        let mut out = stdout();
        match ctx.output() {
            OutputFormat::Table => {
                let mut table = Table::new(&["NETWORK", "KIND", "REVISION", "ALLOCATED", "POOLS"])
                    .right_aligned(&[2, 3]);
                for r in &rows {
                    table.row(vec![
                        r.name.clone(),
                        r.kind.clone(),
                        r.revision.to_string(),
                        r.allocated.to_string(),
                        r.pools.join(" "),
                    ]);
                }
                table.write(&mut out).map_err(out_err)?;
            }
            format => write_structured(&mut out, format, &rows)?,
        }
        out.flush().map_err(out_err)
    }
}
