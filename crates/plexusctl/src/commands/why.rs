//! `plexusctl why IP|POD`: who holds an address now and who held it before, or, for a
//! pod, every attachment it has (network, interface, addresses) and its claim history.
//!
//! Answers come from the store's bounded history of claims and releases (the newest
//! `history_limit` events per network) and from the current allocations. An address that
//! nothing holds is "free" only when its network's pool could hand it out; otherwise the
//! answer says why not (outside every pool, reserved, no definition). An unknown
//! `--network` is an error suggesting the nearest name.

use std::collections::BTreeSet;
use std::io::Write;
use std::net::IpAddr;

use clap::Args;
use plexus_store::{Allocation, AttachmentKey, HistoryEvent, HistoryQuery, Store};
use serde::Serialize;

use crate::cli::OutputFormat;
use crate::commands::check::placement_problem;
use crate::context::Context;
use crate::error::{CtlError, CtlResult};
use crate::known::{self, Found};
use crate::netdef::NetworkDef;
use crate::output::{Table, out_err, stdout, write_structured};
use crate::timefmt::rfc3339 as utc;

/// Arguments of `why`.
#[derive(Debug, Args)]
pub struct Why {
    /// An address, or a pod as `namespace/name` (a bare name means namespace `default`).
    pub target: String,
    /// The network of the address (default: every known network whose pools hold it).
    #[arg(long)]
    pub network: Option<String>,
    /// TARGET is a pod UID (`K8S_POD_UID`) rather than `namespace/name`.
    #[arg(long)]
    pub uid: bool,
}

/// The story of one address in one network.
#[derive(Debug, Serialize)]
struct AddressStory {
    network: String,
    ip: IpAddr,
    holder: Option<Allocation>,
    /// When nothing holds it: whether the pool could hand it out (`free`), or why not.
    #[serde(skip_serializing_if = "Option::is_none")]
    unheld: Option<String>,
    history: Vec<HistoryEvent>,
}

/// What an address nothing holds is: `free` when the network's pool could hand it out,
/// else why it cannot (outside every pool or range, reserved, no definition).
fn unheld(def: Option<&NetworkDef>, network: &str, ip: IpAddr) -> String {
    let Some(def) = def else {
        return format!(
            "not held; network {network} has no definition (its remaining addresses can \
             only be released: plexusctl gc {network} --orphaned)"
        );
    };
    if let Some(problem) = placement_problem(def, ip) {
        return format!("not held; {problem}, never handed out");
    }
    let k = plexus_ipam_core::addr::key(ip);
    let in_range = def.pools.iter().any(|p| {
        plexus_ipam_core::addr::key(p.start) <= k && k <= plexus_ipam_core::addr::key(p.end)
    });
    if in_range {
        "free".to_string()
    } else {
        "not held; outside the pool's start-end range (only a static request takes it)".to_string()
    }
}

/// The attachments and history of one pod.
#[derive(Debug, Serialize)]
struct PodStory {
    pod: String,
    attachments: Vec<Attachment>,
    history: Vec<HistoryEvent>,
}

/// One attachment of a pod that still holds addresses.
#[derive(Debug, Serialize)]
struct Attachment {
    network: String,
    container_id: String,
    ifname: String,
    addresses: Vec<IpAddr>,
    details: Option<serde_json::Value>,
}

impl Why {
    /// Runs the command.
    pub async fn exec(&self, ctx: &Context) -> CtlResult<()> {
        let store = ctx.open_store().await?;
        match (self.uid, self.target.parse::<IpAddr>()) {
            (false, Ok(ip)) => self.address(ctx, store.as_ref(), ip).await,
            _ => self.pod(ctx, store.as_ref()).await,
        }
    }

    async fn address(&self, ctx: &Context, store: &dyn Store, ip: IpAddr) -> CtlResult<()> {
        let catalog = ctx.catalog_of(store).await?;
        let networks: Vec<(String, Option<&NetworkDef>)> = match &self.network {
            Some(network) => match known::find(&catalog, store, network).await? {
                Found::Defined(def) => vec![(network.clone(), Some(def))],
                Found::Orphaned => vec![(network.clone(), None)],
            },
            None => {
                let mut found: Vec<(String, Option<&NetworkDef>)> = catalog
                    .unique()
                    .into_iter()
                    .filter(|def| def.contains(ip))
                    .map(|def| (def.name.clone(), Some(def)))
                    .collect();
                // A network without a definition has no pools: ask whether it holds `ip`.
                for orphan in known::orphans(&catalog, store).await? {
                    if store.holder(&orphan, ip).await?.is_some() {
                        found.push((orphan, None));
                    }
                }
                if found.is_empty() {
                    return Err(CtlError::invalid(
                        format!("address {ip}"),
                        "is outside every pool of every known network, and no network \
                         without a definition holds it; name one with --network",
                    ));
                }
                found
            }
        };
        let mut stories = Vec::new();
        for (network, def) in networks {
            let query = HistoryQuery::Address {
                network: network.clone(),
                ip,
            };
            let holder = store.holder(&network, ip).await?;
            stories.push(AddressStory {
                unheld: holder.is_none().then(|| unheld(def, &network, ip)),
                holder,
                history: store.history(&query).await?,
                network,
                ip,
            });
        }
        let mut out = stdout();
        match ctx.output() {
            OutputFormat::Table => {
                for story in &stories {
                    writeln!(out, "{} in network {}:", story.ip, story.network).map_err(out_err)?;
                    match &story.holder {
                        Some(a) => writeln!(
                            out,
                            "  held by container {} interface {}{}{} since {}",
                            a.container_id,
                            a.ifname,
                            pod_label(
                                a.owner.pod_namespace.as_deref(),
                                a.owner.pod_name.as_deref()
                            )
                            .map(|p| format!(" (pod {p})"))
                            .unwrap_or_default(),
                            a.node
                                .as_deref()
                                .map(|n| format!(" on node {n}"))
                                .unwrap_or_default(),
                            utc(a.created_at)
                        ),
                        None => match story.unheld.as_deref() {
                            Some("free") | None => writeln!(out, "  free now"),
                            Some(why) => writeln!(out, "  {why}"),
                        },
                    }
                    .map_err(out_err)?;
                    history_table(&mut out, &story.history)?;
                }
            }
            format => write_structured(&mut out, format, &stories)?,
        }
        out.flush().map_err(out_err)
    }

    async fn pod(&self, ctx: &Context, store: &dyn Store) -> CtlResult<()> {
        let (label, query) = if self.uid {
            (
                format!("uid {}", self.target),
                HistoryQuery::PodUid {
                    uid: self.target.clone(),
                },
            )
        } else {
            let (namespace, name) = self
                .target
                .split_once('/')
                .unwrap_or(("default", self.target.as_str()));
            if name.is_empty() || namespace.is_empty() {
                return Err(CtlError::invalid(
                    format!("pod {:?}", self.target),
                    "expected an address or namespace/name",
                ));
            }
            (
                format!("{namespace}/{name}"),
                HistoryQuery::Pod {
                    namespace: namespace.to_string(),
                    name: name.to_string(),
                },
            )
        };
        let history = store.history(&query).await?;
        // Every attachment the pod ever claimed with, asked for what it holds now.
        let keys: BTreeSet<AttachmentKey> = history
            .iter()
            .map(|e| AttachmentKey::new(&e.network, &e.container_id, &e.ifname))
            .collect();
        let mut attachments = Vec::new();
        for key in keys {
            let held = store.attachment(&key).await?;
            if held.is_empty() {
                continue;
            }
            attachments.push(Attachment {
                details: held.iter().find_map(|a| a.owner.details.clone()),
                addresses: held.iter().map(|a| a.ip).collect(),
                network: key.network,
                container_id: key.container_id,
                ifname: key.ifname,
            });
        }
        let story = PodStory {
            pod: label,
            attachments,
            history,
        };
        let mut out = stdout();
        match ctx.output() {
            OutputFormat::Table => {
                writeln!(out, "pod {}:", story.pod).map_err(out_err)?;
                if story.attachments.is_empty() {
                    writeln!(out, "  holds no address now").map_err(out_err)?;
                } else {
                    let mut table = Table::new(&["  NETWORK", "CONTAINER", "IFNAME", "ADDRESSES"]);
                    for a in &story.attachments {
                        let addresses: Vec<String> =
                            a.addresses.iter().map(ToString::to_string).collect();
                        table.row(vec![
                            format!("  {}", a.network),
                            a.container_id.clone(),
                            a.ifname.clone(),
                            addresses.join(" "),
                        ]);
                    }
                    table.write(&mut out).map_err(out_err)?;
                }
                history_table(&mut out, &story.history)?;
            }
            format => write_structured(&mut out, format, &story)?,
        }
        out.flush().map_err(out_err)
    }
}

fn pod_label(namespace: Option<&str>, name: Option<&str>) -> Option<String> {
    match (namespace, name) {
        (Some(ns), Some(name)) => Some(format!("{ns}/{name}")),
        (None, Some(name)) => Some(name.to_string()),
        _ => None,
    }
}

fn history_table(out: &mut impl Write, events: &[HistoryEvent]) -> CtlResult<()> {
    if events.is_empty() {
        return writeln!(out, "  no history kept").map_err(out_err);
    }
    writeln!(out, "  history (oldest first):").map_err(out_err)?;
    let mut table = Table::new(&[
        "    TIME",
        "EVENT",
        "NETWORK",
        "ADDRESS",
        "CONTAINER",
        "IFNAME",
        "POD",
        "NODE",
    ]);
    for e in events {
        table.row(vec![
            format!("    {}", utc(e.at)),
            e.kind.as_str().to_string(),
            e.network.clone(),
            e.ip.to_string(),
            e.container_id.clone(),
            e.ifname.clone(),
            pod_label(e.pod_namespace.as_deref(), e.pod_name.as_deref()).unwrap_or_default(),
            e.node.clone().unwrap_or_default(),
        ]);
    }
    table.write(out).map_err(out_err)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pods_are_labelled_by_namespace_and_name() {
        assert_eq!(pod_label(Some("ns"), Some("p")).as_deref(), Some("ns/p"));
        assert_eq!(pod_label(None, Some("p")).as_deref(), Some("p"));
        assert_eq!(pod_label(Some("ns"), None), None);
    }
}
