//! `plexusctl gc NETWORK`: what CNI GC does, from the command line. Every allocation of
//! the network within the scope whose attachment (container id, interface) is not in the
//! valid set is released; `--dry-run` only lists them.
//!
//! The valid set comes from a file (`--valid`: the `cni.dev/valid-attachments` list) or
//! from a runtime's libcni result cache (`--from-runtime /var/lib/cni`). An empty valid set
//! releases everything in scope, so it is refused unless `--allow-empty` says it is meant.
//!
//! A valid set is what ONE node knows, and a shared store holds every node's allocations,
//! so the scope is one node by default: `--node NAME`, or this host (`NODE_NAME`, else the
//! host name), exactly as the plugin's own GC. Allocations whose node was never recorded
//! (imported, older versions) and other nodes' are touched only by an explicit
//! `--unknown-node` or `--all-nodes`, which say what they would touch and need `--yes`
//! unless `--dry-run`.

use std::collections::HashSet;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use clap::Args;
use plexus_store::{Allocation, GcScope, NodeScope};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::cli::OutputFormat;
use crate::context::Context;
use crate::error::{CtlError, CtlResult};
use crate::output::{Table, out_err, stdout, write_structured};

/// Arguments of `gc`.
#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("source").required(true).args(["valid", "from_runtime", "orphaned"])))]
pub struct Gc {
    /// The network.
    pub network: String,
    /// JSON file with the valid attachments: `[{"containerID": "…", "ifname": "…"}]`, or an
    /// object holding that list under `cni.dev/valid-attachments`; `-` reads stdin.
    #[arg(long, value_name = "FILE")]
    pub valid: Option<PathBuf>,
    /// A libcni cache directory (e.g. /var/lib/cni): every attachment cached there is valid.
    #[arg(long, value_name = "DIR")]
    pub from_runtime: Option<PathBuf>,
    /// List what would be released, release nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Accept an empty valid set (which releases every allocation in scope).
    #[arg(long)]
    pub allow_empty: bool,
    /// Release every allocation of NETWORK, which has no definition any more (left by
    /// `network delete --force`; `check` reports them). Every node's: no plugin can use a
    /// network without a definition.
    #[arg(long, conflicts_with_all = ["node", "all_nodes", "unknown_node"])]
    pub orphaned: bool,
    /// Collect the allocations and blocks of this node (default: this host, as the plugin:
    /// NODE_NAME, else the host name).
    #[arg(long, value_name = "NAME", conflicts_with_all = ["all_nodes", "unknown_node"])]
    pub node: Option<String>,
    /// Collect every node's allocations and blocks, and those with no recorded node: only
    /// for a valid set known cluster-wide. Says what it would touch; needs --yes unless
    /// --dry-run.
    #[arg(long, conflicts_with_all = ["unknown_node", "from_runtime"])]
    pub all_nodes: bool,
    /// Collect only allocations with no recorded node (imported, or written by older
    /// versions). Needs --yes unless --dry-run.
    #[arg(long, conflicts_with = "from_runtime")]
    pub unknown_node: bool,
    /// Confirm --all-nodes or --unknown-node.
    #[arg(long)]
    pub yes: bool,
}

/// One valid attachment as CNI GC sends it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ValidAttachment {
    /// `CNI_CONTAINERID` at ADD.
    #[serde(rename = "containerID")]
    pub container_id: String,
    /// `CNI_IFNAME` at ADD.
    pub ifname: String,
}

/// What `gc` did or would do.
#[derive(Debug, Serialize)]
struct GcOutcome<'a> {
    network: &'a str,
    scope: &'a GcScope,
    dry_run: bool,
    valid_attachments: usize,
    released: Vec<Allocation>,
    errors: Vec<String>,
}

impl Gc {
    /// Runs the command.
    pub async fn exec(&self, ctx: &Context) -> CtlResult<()> {
        if self.orphaned {
            return super::gc_network::release_orphaned(ctx, &self.network, self.dry_run).await;
        }
        let valid = match (&self.valid, &self.from_runtime) {
            (Some(file), _) => read_valid_file(file)?,
            (None, Some(dir)) => valid_from_cache(dir)?,
            (None, None) => return Err(CtlError::invalid("gc", "give --valid or --from-runtime")),
        };
        if valid.is_empty() && !self.allow_empty {
            return Err(CtlError::invalid(
                "valid attachments",
                "the set is empty, which would release every allocation of the network; \
                 pass --allow-empty if that is meant",
            ));
        }
        let pairs: Vec<(String, String)> = valid
            .iter()
            .map(|v| (v.container_id.clone(), v.ifname.clone()))
            .collect();
        let mut scope = self.scope()?;
        // Expired per-node blocks are released by the network's own policy.
        let catalog = ctx.catalog().await.ok();
        let blocks = catalog
            .as_ref()
            .and_then(|c| c.find(&self.network).ok().map(|d| d.blocks))
            .unwrap_or_default();
        let store = ctx.open_store().await?;
        super::gc_network::check_network(ctx, store.as_ref(), &self.network).await?;
        // A configuration sharing a network collects its own range sets of it only.
        let resolved = catalog.as_ref().and_then(|c| c.resolve(&self.network));
        let network = resolved
            .as_ref()
            .map_or_else(|| self.network.clone(), |r| r.network.clone());
        if let Some(ids) = resolved.as_ref().and_then(|r| r.range_set_ids()) {
            scope = scope.with_range_sets(ids);
        }
        if !matches!(scope.nodes, NodeScope::Node(_)) {
            // Beyond one node: say what is in scope before anything happens.
            let all = store.list(&network).await?;
            eprintln!("plexusctl: {}", describe_reach(&network, &scope, &all));
            if !self.dry_run && !self.yes {
                return Err(CtlError::invalid(
                    "gc",
                    format!(
                        "{} reaches beyond one node; look at the above, then pass --yes \
                         (or --dry-run to list what would be released)",
                        if self.all_nodes {
                            "--all-nodes"
                        } else {
                            "--unknown-node"
                        }
                    ),
                ));
            }
        }
        let (released, errors) = if self.dry_run {
            let stale = stale_in_scope(store.list(&network).await?, &pairs, &scope);
            (stale, Vec::new())
        } else {
            let report = store
                .gc(&network, &pairs, &scope, &blocks, plexus_store::unix_now())
                .await?;
            (report.released, report.errors)
        };
        let outcome = GcOutcome {
            network: &self.network,
            scope: &scope,
            dry_run: self.dry_run,
            valid_attachments: valid.len(),
            released,
            errors,
        };
        let mut out = stdout();
        match ctx.output() {
            OutputFormat::Table => write_table(&mut out, &outcome).map_err(out_err)?,
            format => write_structured(&mut out, format, &outcome)?,
        }
        out.flush().map_err(out_err)?;
        if outcome.errors.is_empty() {
            Ok(())
        } else {
            for e in &outcome.errors {
                tracing::error!("{e}");
            }
            Err(CtlError::Problems(format!(
                "gc of {}: {} attachment(s) could not be released",
                self.network,
                outcome.errors.len()
            )))
        }
    }
}

impl Gc {
    /// The scope the flags ask for: one node (this host by default), every node, or the
    /// allocations with no recorded node.
    fn scope(&self) -> CtlResult<GcScope> {
        if self.all_nodes {
            return Ok(GcScope::all_nodes());
        }
        if self.unknown_node {
            return Ok(GcScope::unknown_node());
        }
        let node = match &self.node {
            Some(name) if name.trim().is_empty() => {
                return Err(CtlError::invalid(
                    "--node",
                    "is empty (for allocations with no recorded node, use --unknown-node)",
                ));
            }
            Some(name) => name.trim().to_string(),
            None => plexus_store::local_node_name().ok_or_else(|| {
                CtlError::invalid(
                    "--node",
                    "this host has no NODE_NAME and no host name; name the node",
                )
            })?,
        };
        Ok(GcScope::node(node))
    }
}

/// The allocations of `all` the store's GC would release for `valid` within `scope`: an
/// attachment not in `valid` whose every allocation is in scope (the store's own rule).
fn stale_in_scope(
    all: Vec<Allocation>,
    valid: &[(String, String)],
    scope: &GcScope,
) -> Vec<Allocation> {
    let keep: HashSet<(&str, &str)> = valid
        .iter()
        .map(|(c, i)| (c.as_str(), i.as_str()))
        .collect();
    let outside: HashSet<(String, String)> = all
        .iter()
        .filter(|a| !scope.covers_allocation(a.node.as_deref(), &a.range_set))
        .map(|a| (a.container_id.clone(), a.ifname.clone()))
        .collect();
    all.into_iter()
        .filter(|a| {
            let attachment = (a.container_id.clone(), a.ifname.clone());
            !keep.contains(&(a.container_id.as_str(), a.ifname.as_str()))
                && !outside.contains(&attachment)
        })
        .collect()
}

/// What a GC beyond one node would consider: the allocations in scope, by node.
fn describe_reach(network: &str, scope: &GcScope, all: &[Allocation]) -> String {
    let mut by_node: std::collections::BTreeMap<String, usize> = Default::default();
    for a in all
        .iter()
        .filter(|a| scope.covers_allocation(a.node.as_deref(), &a.range_set))
    {
        let node = a
            .node
            .clone()
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| "(no recorded node)".to_string());
        *by_node.entry(node).or_default() += 1;
    }
    let total: usize = by_node.values().sum();
    let nodes: Vec<String> = by_node
        .iter()
        .map(|(node, n)| format!("{node}: {n}"))
        .collect();
    format!(
        "gc {network} over {}: {total} allocation(s) in scope ({}); those whose attachment \
         is not in the valid set are released",
        scope.describe(),
        if nodes.is_empty() {
            "none".to_string()
        } else {
            nodes.join(", ")
        }
    )
}

fn write_table(out: &mut impl Write, outcome: &GcOutcome<'_>) -> std::io::Result<()> {
    let verb = if outcome.dry_run {
        "would release"
    } else {
        "released"
    };
    if !outcome.released.is_empty() {
        let mut table = Table::new(&["IP", "CONTAINER", "IFNAME", "POD"]);
        for a in &outcome.released {
            table.row(vec![
                a.ip.to_string(),
                a.container_id.clone(),
                a.ifname.clone(),
                crate::commands::showalloc::pod_of(a).unwrap_or_default(),
            ]);
        }
        table.write(out)?;
    }
    writeln!(
        out,
        "{} ({}): {verb} {} address(es); {} valid attachment(s) kept",
        outcome.network,
        outcome.scope.describe(),
        outcome.released.len(),
        outcome.valid_attachments
    )
}

/// Reads `--valid`: a list, or an object with `cni.dev/valid-attachments` (or the older
/// `cni.dev/attachments`).
pub fn read_valid_file(path: &Path) -> CtlResult<Vec<ValidAttachment>> {
    let what = path.display().to_string();
    let mut text = String::new();
    if path == Path::new("-") {
        std::io::stdin()
            .read_to_string(&mut text)
            .map_err(|e| CtlError::io("stdin", e))?;
    } else {
        text = std::fs::read_to_string(path).map_err(|e| CtlError::io(path, e))?;
    }
    let value: Value = serde_json::from_str(&text)
        .map_err(|e| CtlError::invalid(&what, format!("not JSON: {e}")))?;
    let list = match &value {
        Value::Array(_) => value.clone(),
        Value::Object(o) => o
            .get("cni.dev/valid-attachments")
            .or_else(|| o.get("cni.dev/attachments"))
            .cloned()
            .ok_or_else(|| {
                CtlError::invalid(&what, "an object must hold \"cni.dev/valid-attachments\"")
            })?,
        _ => {
            return Err(CtlError::invalid(
                &what,
                "expected a list of {containerID, ifname}",
            ));
        }
    };
    serde_json::from_value(list).map_err(|e| CtlError::invalid(&what, e.to_string()))
}

/// Every attachment in a libcni result cache (`<dir>/results/*`, or `dir` itself).
pub fn valid_from_cache(dir: &Path) -> CtlResult<Vec<ValidAttachment>> {
    let results = if dir.join("results").is_dir() {
        dir.join("results")
    } else {
        dir.to_path_buf()
    };
    let entries = std::fs::read_dir(&results).map_err(|e| CtlError::io(&results, e))?;
    let mut valid = Vec::new();
    for entry in entries {
        let path = entry.map_err(|e| CtlError::io(&results, e))?.path();
        if !path.is_file() {
            continue;
        }
        let text = std::fs::read_to_string(&path).map_err(|e| CtlError::io(&path, e))?;
        // An unreadable cache entry must not make its attachment look stale: refuse.
        let cached: Value = serde_json::from_str(&text).map_err(|e| {
            CtlError::invalid(
                path.display().to_string(),
                format!("not a libcni cache entry: {e}"),
            )
        })?;
        let field = |name: &str| cached.get(name).and_then(Value::as_str).map(str::to_string);
        match (field("containerId"), field("ifName")) {
            (Some(container_id), Some(ifname)) => valid.push(ValidAttachment {
                container_id,
                ifname,
            }),
            _ => {
                return Err(CtlError::invalid(
                    path.display().to_string(),
                    "libcni cache entry without containerId/ifName",
                ));
            }
        }
    }
    valid.sort_by(|a, b| (&a.container_id, &a.ifname).cmp(&(&b.container_id, &b.ifname)));
    valid.dedup();
    Ok(valid)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_file_forms() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("v.json");
        std::fs::write(&f, r#"[{"containerID":"a","ifname":"eth0"}]"#).unwrap();
        assert_eq!(read_valid_file(&f).unwrap()[0].container_id, "a");
        std::fs::write(
            &f,
            r#"{"cni.dev/attachments":[{"containerID":"b","ifname":"net1"}]}"#,
        )
        .unwrap();
        assert_eq!(read_valid_file(&f).unwrap()[0].ifname, "net1");
        std::fs::write(&f, r#"{"other":1}"#).unwrap();
        assert!(read_valid_file(&f).is_err());
        std::fs::write(&f, r#"[{"containerID":"a"}]"#).unwrap();
        assert!(
            read_valid_file(&f)
                .unwrap_err()
                .to_string()
                .contains("ifname")
        );
    }

    #[test]
    fn libcni_cache_layout() {
        let dir = tempfile::tempdir().unwrap();
        let results = dir.path().join("results");
        std::fs::create_dir(&results).unwrap();
        std::fs::write(
            results.join("net-c1-eth0"),
            r#"{"kind":"cniCacheV1","containerId":"c1","ifName":"eth0","networkName":"net"}"#,
        )
        .unwrap();
        std::fs::write(
            results.join("other-c2-net1"),
            r#"{"kind":"cniCacheV1","containerId":"c2","ifName":"net1","networkName":"other"}"#,
        )
        .unwrap();
        let valid = valid_from_cache(dir.path()).unwrap();
        assert_eq!(valid.len(), 2);
        assert_eq!(
            valid[0],
            ValidAttachment {
                container_id: "c1".into(),
                ifname: "eth0".into()
            }
        );
        std::fs::write(results.join("broken"), "{").unwrap();
        assert!(valid_from_cache(dir.path()).is_err());
    }
}
