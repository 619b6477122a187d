//! `plexusctl usage [NETWORK]`: per network, pool and block, how many addresses exist,
//! are held and are free, with a fill bar per row.
//!
//! Every number is one indexed count in the store (`count_between`), so the cost grows
//! with the number of rows, never with the pool or the number of allocations.
//!
//! A block row never reaches past its pool (a node's /26 block in a /29 pool is shown as
//! the /29); blocks entirely outside the pool's start..end that hold nothing are left out;
//! addresses held outside every node block (imported, static, or claimed before blocks)
//! get a row of their own, marked so. A network the store holds addresses of without a
//! definition gets one row with its count.

use std::io::Write;

use clap::Args;
use ipnet::IpNet;
use plexus_ipam_core::addr::{first_key, from_key, key, last_key};
use plexus_store::Store;
use serde::Serialize;

use crate::cli::OutputFormat;
use crate::context::Context;
use crate::error::{CtlError, CtlResult};
use crate::heatmap::{blocks, capacity_in};
use crate::known::{self, Found};
use crate::netdef::{NetworkDef, Pool};
use crate::output::{Table, bar, out_err, percent, stdout, write_structured};

/// Width of the fill bar in table output.
const BAR_WIDTH: usize = 20;

/// Arguments of `usage`.
#[derive(Debug, Args)]
pub struct Usage {
    /// One network (default: every network plexusctl knows).
    pub network: Option<String>,
    /// Block size for the per-block rows, as a prefix length. Default: the per-node blocks
    /// nodes have claimed, when there are any; else /26 (IPv4) or /122 (IPv6) blocks,
    /// larger so that a pool shows at most 64 rows.
    #[arg(long, value_name = "PREFIX")]
    pub block_prefix: Option<u8>,
    /// Only one row per pool.
    #[arg(long)]
    pub no_blocks: bool,
}

/// The figures of one row.
#[derive(Debug, Clone, Serialize)]
pub struct Figures {
    /// The pool or block.
    pub cidr: IpNet,
    /// Addresses that can be handed out.
    pub size: u128,
    /// Addresses held (including static ones outside start..end).
    pub allocated: u64,
    /// `size` minus the held addresses inside start..end.
    pub free: u128,
    /// The node owning the block (per-node blocks claimed by the plugin).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    /// Held addresses inside start..end (what `free` is computed from).
    #[serde(skip)]
    pub in_pool: u64,
    /// What the row is when it is not a plain block (e.g. addresses outside every node
    /// block).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// One pool with its blocks.
#[derive(Debug, Serialize)]
pub struct PoolUsage {
    /// The pool's own figures.
    #[serde(flatten)]
    pub total: Figures,
    /// Per block, when asked for.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub blocks: Vec<Figures>,
}

/// One network.
#[derive(Debug, Serialize)]
pub struct NetworkUsage {
    /// The network.
    pub network: String,
    /// Its pools.
    pub pools: Vec<PoolUsage>,
    /// For a network without a definition: the addresses the store still holds of it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub held_without_definition: Option<u64>,
}

/// The note of a row of addresses held outside every node block.
const OUTSIDE_BLOCKS: &str = "outside every node block (imported, static or older)";

/// The default block prefix for `cidr`: /26 (IPv4) or /122 (IPv6) blocks, fewer and larger
/// when that would exceed 64 rows, never smaller than the pool.
pub fn default_block_prefix(cidr: &IpNet) -> u8 {
    let node_block = if cidr.max_prefix_len() == 32 { 26 } else { 122 };
    (cidr.prefix_len() + 6)
        .min(node_block)
        .max(cidr.prefix_len())
}

impl Usage {
    /// Runs the command.
    pub async fn exec(&self, ctx: &Context) -> CtlResult<()> {
        if let Some(prefix) = self.block_prefix
            && prefix > 128
        {
            return Err(CtlError::invalid(
                "--block-prefix",
                format!("{prefix} is not a prefix length"),
            ));
        }
        let store = ctx.open_store().await?;
        let catalog = ctx.catalog_of(store.as_ref()).await?;
        let (defs, orphans): (Vec<&NetworkDef>, Vec<String>) = match &self.network {
            Some(name) => match known::find(&catalog, store.as_ref(), name).await? {
                Found::Defined(def) => (vec![def], Vec::new()),
                Found::Orphaned => (Vec::new(), vec![name.clone()]),
            },
            None => (
                catalog.unique(),
                known::orphans(&catalog, store.as_ref()).await?,
            ),
        };
        let mut report = Vec::new();
        for def in defs {
            report.push(self.network_usage(store.as_ref(), def).await?);
        }
        for network in orphans {
            let held = crate::commands::network::list::allocated(store.as_ref(), &network).await?;
            report.push(NetworkUsage {
                network,
                pools: Vec::new(),
                held_without_definition: Some(held),
            });
        }
        let mut out = stdout();
        match ctx.output() {
            OutputFormat::Table => render(&report).write(&mut out).map_err(out_err)?,
            format => write_structured(&mut out, format, &report)?,
        }
        out.flush().map_err(out_err)
    }

    async fn network_usage(&self, store: &dyn Store, def: &NetworkDef) -> CtlResult<NetworkUsage> {
        let node_blocks = if self.no_blocks || self.block_prefix.is_some() {
            Vec::new()
        } else {
            store.blocks(&def.name).await?
        };
        let mut pools = Vec::new();
        for pool in &def.pools {
            let mut rows = Vec::new();
            let claimed: Vec<_> = node_blocks
                .iter()
                .filter(|b| plexus_ipam_core::addr::net_contains(&pool.cidr, b.base))
                .collect();
            for block in &claimed {
                if let Ok(cidr) = IpNet::new(block.base, block.prefix) {
                    // A block larger than its pool shows as the pool.
                    let cidr = if cidr.contains(&pool.cidr) {
                        pool.cidr
                    } else {
                        cidr.trunc()
                    };
                    let mut f = figures(store, &def.name, pool, &cidr).await?;
                    f.node = Some(block.node.clone());
                    rows.push(f);
                }
            }
            if !self.no_blocks && claimed.is_empty() {
                let prefix = self
                    .block_prefix
                    .unwrap_or_else(|| default_block_prefix(&pool.cidr))
                    .min(pool.cidr.max_prefix_len());
                let cut = blocks(pool, prefix);
                if cut.len() > 1 {
                    for block in cut {
                        let f = figures(store, &def.name, pool, &block).await?;
                        // Entirely outside start..end and empty: nothing to show.
                        if f.size > 0 || f.allocated > 0 {
                            rows.push(f);
                        }
                    }
                }
            }
            // Fixed blocks partition the pool: its totals are their sums (no second pass
            // over a million index entries). Node blocks need not cover it: count it.
            let total = if !rows.is_empty() && claimed.is_empty() {
                let size = capacity_in(pool, &pool.cidr);
                let allocated = rows.iter().map(|r| r.allocated).sum();
                let in_pool = rows.iter().map(|r| r.in_pool).sum::<u64>();
                Figures {
                    cidr: pool.cidr,
                    size,
                    allocated,
                    free: size.saturating_sub(u128::from(in_pool)),
                    node: None,
                    in_pool,
                    note: None,
                }
            } else {
                figures(store, &def.name, pool, &pool.cidr).await?
            };
            if !claimed.is_empty() {
                let in_blocks: u64 = rows.iter().map(|r| r.allocated).sum();
                if let Some(outside) = total.allocated.checked_sub(in_blocks).filter(|n| *n > 0) {
                    rows.push(Figures {
                        cidr: pool.cidr,
                        size: 0,
                        allocated: outside,
                        free: 0,
                        node: None,
                        in_pool: 0,
                        note: Some(OUTSIDE_BLOCKS.to_string()),
                    });
                }
            }
            pools.push(PoolUsage {
                total,
                blocks: rows,
            });
        }
        Ok(NetworkUsage {
            network: def.name.clone(),
            pools,
            held_without_definition: None,
        })
    }
}

/// The figures of `block` (the whole pool or a part of it).
async fn figures(
    store: &dyn Store,
    network: &str,
    pool: &Pool,
    block: &IpNet,
) -> CtlResult<Figures> {
    let allocated = store
        .count_between(network, block.network(), block.broadcast())
        .await?;
    let size = capacity_in(pool, block);
    // Only held addresses inside start..end use up the size. Counting the (small) parts of
    // the block outside start..end and subtracting keeps the work to one pass.
    let (first, last) = (first_key(block), last_key(block));
    let (start, end) = (key(pool.start), key(pool.end));
    let outside = if start > last || end < first {
        allocated
    } else {
        let mut n = 0;
        if start > first {
            n += store
                .count_between(network, from_key(first), from_key(start - 1))
                .await?;
        }
        if end < last {
            n += store
                .count_between(network, from_key(end + 1), from_key(last))
                .await?;
        }
        n
    };
    let in_pool = allocated.saturating_sub(outside);
    Ok(Figures {
        cidr: *block,
        size,
        allocated,
        free: size.saturating_sub(u128::from(in_pool)),
        node: None,
        in_pool,
        note: None,
    })
}

/// The human table: one row per pool, its blocks indented below it.
pub fn render(report: &[NetworkUsage]) -> Table {
    let mut table = Table::new(&[
        "NETWORK",
        "POOL/BLOCK",
        "NODE",
        "SIZE",
        "ALLOCATED",
        "FREE",
        "USED%",
        "FILL",
    ])
    .right_aligned(&[3, 4, 5, 6]);
    for network in report {
        for pool in &network.pools {
            table.row(row(
                &network.network,
                &pool.total.cidr.to_string(),
                &pool.total,
            ));
            for block in &pool.blocks {
                match &block.note {
                    Some(note) => table.row(vec![
                        String::new(),
                        format!("  ({note})"),
                        String::new(),
                        String::new(),
                        block.allocated.to_string(),
                    ]),
                    None => table.row(row("", &format!("  {}", block.cidr), block)),
                }
            }
        }
        match network.held_without_definition {
            Some(held) => table.row(vec![
                network.network.clone(),
                "(no definition)".into(),
                String::new(),
                String::new(),
                held.to_string(),
            ]),
            None if network.pools.is_empty() => {
                table.row(vec![network.network.clone(), "(no pools)".into()]);
            }
            None => {}
        }
    }
    table
}

fn row(network: &str, cidr: &str, f: &Figures) -> Vec<String> {
    let used = f.size.saturating_sub(f.free);
    let ratio = if f.size == 0 {
        0.0
    } else {
        used as f64 / f.size as f64
    };
    vec![
        network.to_string(),
        cidr.to_string(),
        f.node.clone().unwrap_or_default(),
        f.size.to_string(),
        f.allocated.to_string(),
        f.free.to_string(),
        percent(used, f.size),
        bar(ratio, BAR_WIDTH),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_blocks_are_node_sized_and_few() {
        let p = |s: &str| default_block_prefix(&s.parse().unwrap());
        assert_eq!(p("10.0.0.0/24"), 26);
        assert_eq!(p("10.0.0.0/8"), 14);
        assert_eq!(p("10.0.0.0/28"), 28);
        assert_eq!(p("fd00::/64"), 70);
        assert_eq!(p("fd00::/120"), 122);
    }

    #[test]
    fn table_rows_show_fill() {
        let report = vec![NetworkUsage {
            network: "blue".into(),
            pools: vec![PoolUsage {
                total: Figures {
                    cidr: "10.0.0.0/24".parse().unwrap(),
                    size: 253,
                    allocated: 3,
                    free: 250,
                    node: None,
                    in_pool: 3,
                    note: None,
                },
                blocks: vec![Figures {
                    cidr: "10.0.0.0/26".parse().unwrap(),
                    size: 62,
                    allocated: 3,
                    free: 59,
                    node: Some("node-a".into()),
                    in_pool: 3,
                    note: None,
                }],
            }],
            held_without_definition: None,
        }];
        let mut out = Vec::new();
        render(&report).write(&mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3, "{text}");
        assert!(lines[1].starts_with("blue     10.0.0.0/24"), "{text}");
        assert!(lines[2].contains("10.0.0.0/26  node-a"), "{text}");
        assert!(
            lines[1].ends_with("253          3   250    1.2  [#-------------------]"),
            "{text}"
        );
        assert!(lines[2].contains("  10.0.0.0/26"), "{text}");
    }
}
