//! `plexusctl network list`: every stored network, its pools, revision and how many
//! addresses it holds (one indexed count per family), and every network the store holds
//! addresses of without a definition (left by `network delete --force`).

use std::io::Write as _;
use std::net::IpAddr;

use clap::Args;
use plexus_store::{NetworkRecord, Store};
use serde::Serialize;

use crate::cli::OutputFormat;
use crate::context::Context;
use crate::error::CtlResult;
use crate::netfile::{STORED_SOURCE, stored_def};
use crate::output::{Table, out_err, stdout, write_structured};

/// Arguments of `network list`.
#[derive(Debug, Args)]
pub struct List {}

/// One row.
#[derive(Debug, Serialize)]
struct Row {
    name: String,
    /// The object kind (`ClusterNetwork`, …); `None` without a usable definition.
    kind: Option<String>,
    /// Where the definition is: `store`, or `none` for addresses without a definition.
    source: &'static str,
    pools: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    revision: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    updated_at: Option<i64>,
    allocated: u64,
    /// Why the stored definition is unusable, when it is.
    #[serde(skip_serializing_if = "Option::is_none")]
    problem: Option<String>,
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

/// A stored network as listed: its object kind, `cidr[start-end]` per pool, and the
/// problem when the definition is unusable.
#[derive(Debug)]
pub struct Described {
    /// The object kind, when the definition is usable.
    pub kind: Option<String>,
    /// One `cidr[start-end]` per pool.
    pub pools: Vec<String>,
    /// Why the definition is unusable.
    pub problem: Option<String>,
}

/// Describes a stored network.
pub fn describe(record: &NetworkRecord) -> Described {
    match stored_def(record) {
        Ok(def) => Described {
            kind: def.kind.object_kind().map(str::to_string),
            pools: def
                .pools
                .iter()
                .map(|p| format!("{}[{}-{}]", p.cidr, p.start, p.end))
                .collect(),
            problem: None,
        },
        Err(e) => Described {
            kind: None,
            pools: Vec::new(),
            problem: Some(e.to_string()),
        },
    }
}

impl List {
    /// Runs the command.
    pub async fn exec(&self, ctx: &Context) -> CtlResult<()> {
        let store = ctx.open_store().await?;
        let mut rows = Vec::new();
        let records = store.networks().await?;
        for record in &records {
            let described = describe(record);
            rows.push(Row {
                allocated: allocated(store.as_ref(), &record.name).await?,
                name: record.name.clone(),
                kind: described.kind,
                source: STORED_SOURCE,
                pools: described.pools,
                revision: Some(record.revision),
                updated_at: Some(record.updated_at),
                problem: described.problem,
            });
        }
        for name in store.allocated_networks().await? {
            if records.iter().any(|r| r.name == name) {
                continue;
            }
            rows.push(Row {
                allocated: allocated(store.as_ref(), &name).await?,
                name,
                kind: None,
                source: "none",
                pools: Vec::new(),
                revision: None,
                updated_at: None,
                problem: Some(
                    "no definition: its addresses stay held (check lists them, gc --orphaned \
                     releases them)"
                        .to_string(),
                ),
            });
        }
        let mut out = stdout();
        match ctx.output() {
            OutputFormat::Table => {
                let mut table = Table::new(&["NETWORK", "KIND", "REVISION", "ALLOCATED", "POOLS"])
                    .right_aligned(&[2, 3]);
                for r in &rows {
                    let kind = match (&r.kind, r.source) {
                        (Some(kind), _) => kind.clone(),
                        (None, "none") => "(no definition)".to_string(),
                        (None, _) => "(invalid)".to_string(),
                    };
                    let pools = match (&r.problem, r.pools.is_empty()) {
                        (Some(problem), true) => problem.clone(),
                        _ => r.pools.join(" "),
                    };
                    table.row(vec![
                        r.name.clone(),
                        kind,
                        r.revision.map(|n| n.to_string()).unwrap_or("-".into()),
                        r.allocated.to_string(),
                        pools,
                    ]);
                }
                table.write(&mut out).map_err(out_err)?;
            }
            format => write_structured(&mut out, format, &rows)?,
        }
        out.flush().map_err(out_err)
    }
}
