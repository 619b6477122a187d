//! `plexusctl why IP|POD`: who holds an address now and who held it before, or, for a
//! pod, every attachment it has (network, interface, addresses) and its claim history.
//!
//! Answers come from the store's bounded history of claims and releases (the newest
//! `history_limit` events per network) and from the current allocations.

use std::collections::BTreeSet;
use std::io::Write;
use std::net::IpAddr;

use clap::Args;
use plexus_store::{Allocation, AttachmentKey, HistoryEvent, HistoryQuery, Store};
use serde::Serialize;

use crate::cli::OutputFormat;
use crate::context::Context;
use crate::error::{CtlError, CtlResult};
use crate::output::{Table, out_err, stdout, write_structured};

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
    history: Vec<HistoryEvent>,
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
        let networks: Vec<String> = match &self.network {
            Some(network) => vec![network.clone()],
            None => {
                let catalog = ctx.catalog().await?;
                let found: Vec<String> = catalog
                    .unique()
                    .into_iter()
                    .filter(|def| def.contains(ip))
                    .map(|def| def.name.clone())
                    .collect();
                if found.is_empty() {
                    return Err(CtlError::invalid(
                        format!("address {ip}"),
                        "is in no known network; name one with --network",
                    ));
                }
                found
            }
        };
        let mut stories = Vec::new();
        for network in networks {
            let query = HistoryQuery::Address {
                network: network.clone(),
                ip,
            };
            stories.push(AddressStory {
                holder: store.holder(&network, ip).await?,
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
                        None => writeln!(out, "  free now"),
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

/// `secs` since the Unix epoch as `YYYY-MM-DDTHH:MM:SSZ` (UTC).
pub fn utc(secs: i64) -> String {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Howard Hinnant's days-from-civil, inverted.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_formats_known_instants() {
        assert_eq!(utc(0), "1970-01-01T00:00:00Z");
        assert_eq!(utc(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(utc(1_700_000_000), "2023-11-14T22:13:20Z");
        assert_eq!(utc(-1), "1969-12-31T23:59:59Z");
    }

    #[test]
    fn pods_are_labelled_by_namespace_and_name() {
        assert_eq!(pod_label(Some("ns"), Some("p")).as_deref(), Some("ns/p"));
        assert_eq!(pod_label(None, Some("p")).as_deref(), Some("p"));
        assert_eq!(pod_label(Some("ns"), None), None);
    }
}
