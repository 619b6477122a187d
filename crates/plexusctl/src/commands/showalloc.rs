//! `plexusctl showalloc NETWORK`: every reserved and held address of a network, in DANM
//! Showalloc's exact format, streamed; `--map` draws the pool as a heat-map instead.
//!
//! One family is shown (IPv4 unless `-6`); a note on stderr says when the network has
//! pools of the other. Networks defined by a network object reserve the last address of
//! each pool in both families (as DANM does), labelled alike; an unknown network is an
//! error suggesting the nearest name.

use std::io::Write;
use std::net::IpAddr;

use clap::Args;
use ipnet::IpNet;
use plexus_ipam_core::addr::Family;
use plexus_store::{Allocation, Store};
use serde_json::json;

use crate::cli::OutputFormat;
use crate::context::Context;
use crate::error::{CtlError, CtlResult};
use crate::known::{self, Found};
use crate::netdef::{NetworkDef, NetworkKind, Pool};
use crate::output::{out_err, stdout};
use crate::source::Pager;
use crate::walk::{Status, Walker};

/// Arguments of `showalloc`.
#[derive(Debug, Args)]
pub struct Showalloc {
    /// The network.
    pub network: String,
    /// Show the IPv6 pools (default IPv4).
    #[arg(short = '6', long = "ipv6")]
    pub ipv6: bool,
    /// Also print free, excluded and out-of-pool addresses (every address of the subnet).
    #[arg(short = 'a', long)]
    pub all: bool,
    /// Only addresses inside this CIDR (DANM's -showCIDR). For a network the store holds
    /// addresses of without a definition, its allocations inside this CIDR are shown.
    #[arg(long, value_name = "CIDR")]
    pub cidr: Option<IpNet>,
    /// Draw a heat-map of the pool (one cell per block, shade = fill) instead of lines.
    #[arg(long)]
    pub map: bool,
    /// Append the container id and interface of each holder.
    #[arg(short = 'w', long)]
    pub wide: bool,
}

impl Showalloc {
    /// Runs the command.
    pub async fn exec(&self, ctx: &Context) -> CtlResult<()> {
        let store = ctx.open_store().await?;
        let catalog = ctx.catalog_of(store.as_ref()).await?;
        let def = match (
            known::find(&catalog, store.as_ref(), &self.network).await?,
            &self.cidr,
        ) {
            (Found::Defined(def), _) => def.clone(),
            (Found::Orphaned, Some(cidr)) => NetworkDef {
                name: self.network.clone(),
                kind: NetworkKind::Cidr,
                source: "--cidr".to_string(),
                pools: vec![Pool::from_cidr(*cidr)?],
                range_sets: Vec::new(),
                object: None,
                blocks: Default::default(),
                owners: Vec::new(),
            },
            (Found::Orphaned, None) => {
                return Err(CtlError::invalid(
                    format!("network {}", self.network),
                    "has no definition (deleted with --force?) but the store holds addresses \
                     of it: show them with --cidr CIDR; check lists them, gc --orphaned \
                     releases them",
                ));
            }
        };
        let family = if self.ipv6 { Family::V6 } else { Family::V4 };
        let pools: Vec<&Pool> = def.pools_of(family).collect();
        if pools.is_empty() {
            return Err(CtlError::invalid(
                format!("network {}", def.name),
                format!(
                    "has no {} pool (defined in {}){}",
                    family_name(family),
                    def.source,
                    if self.ipv6 { "" } else { "; use -6 for IPv6" }
                ),
            ));
        }
        let other = if self.ipv6 { Family::V4 } else { Family::V6 };
        let other_pools: Vec<String> = def.pools_of(other).map(|p| p.cidr.to_string()).collect();
        if !other_pools.is_empty() {
            eprintln!(
                "note: network {} also has {} pool(s) {}; show {} with{} -6",
                def.name,
                family_name(other),
                other_pools.join(", "),
                if other_pools.len() == 1 { "it" } else { "them" },
                if self.ipv6 { "out" } else { "" }
            );
        }
        if self.map {
            return crate::heatmap::show(store.as_ref(), &def, &pools, ctx.output()).await;
        }
        let mut out = stdout();
        let mut printer = Printer::new(ctx.output(), &def, family, self.wide);
        printer.begin(&mut out)?;
        for (i, pool) in pools.iter().enumerate() {
            printer.pool_header(&mut out, pool, i)?;
            self.stream_pool(store.as_ref(), &def, pool, &mut printer, &mut out)
                .await?;
            printer.pool_end(&mut out)?;
        }
        printer.end(&mut out)?;
        out.flush().map_err(out_err)
    }

    async fn stream_pool(
        &self,
        store: &dyn Store,
        def: &NetworkDef,
        pool: &Pool,
        printer: &mut Printer,
        out: &mut impl Write,
    ) -> CtlResult<()> {
        // A network object (DANM's rule, which plexus-model follows) reserves the last
        // address of IPv6 pools too; a CNI configuration's IPv6 range hands it out.
        let object = def.kind.object_kind().is_some();
        let broadcast = object || pool.family() == Family::V4;
        let mut walker = Walker::new(pool, self.cidr.as_ref(), self.all, broadcast);
        let Some((lo, hi)) = walker.bounds() else {
            return Ok(());
        };
        let mut failure: Option<std::io::Error> = None;
        let mut emit = |ip: IpAddr, status: Status<'_>| -> bool {
            match printer.line(out, ip, status) {
                Ok(()) => true,
                Err(e) => {
                    failure = Some(e);
                    false
                }
            }
        };
        let mut pager = Pager::new(store, &def.name, lo, hi);
        loop {
            let page = pager.next_page().await?;
            if page.is_empty() {
                break;
            }
            for allocation in &page {
                walker.allocation(allocation, &mut emit);
            }
            if walker.is_done() {
                break;
            }
        }
        walker.finish(&mut emit);
        tracing::debug!(queries = pager.queries, "store queries for {}", pool.cidr);
        match failure {
            Some(e) => Err(out_err(e)),
            None => Ok(()),
        }
    }
}

fn family_name(family: Family) -> &'static str {
    match family {
        Family::V4 => "IPv4",
        Family::V6 => "IPv6",
    }
}

/// DANM's text for a status, e.g. `allocated (Pod: ns/name)`.
pub fn status_text(status: &Status<'_>, wide: bool) -> String {
    match status {
        Status::NetworkBase => "reserved (network base address)".to_string(),
        Status::Broadcast => "reserved (broadcast address)".to_string(),
        Status::Gateway => "reserved (gateway)".to_string(),
        Status::Excluded => "reserved (excluded)".to_string(),
        Status::Free => "free".to_string(),
        Status::OutOfPool => "out of pool range".to_string(),
        Status::Allocated(a) => {
            let holder = match pod_of(a) {
                Some(pod) => format!("allocated (Pod: {pod})"),
                None => "allocated (unknown Pod)".to_string(),
            };
            if wide {
                format!("{holder} [container {} {}]", a.container_id, a.ifname)
            } else {
                holder
            }
        }
    }
}

/// `ns/name` (or just `name`) of the pod holding `a`, when recorded.
pub fn pod_of(a: &Allocation) -> Option<String> {
    let name = a.owner.pod_name.as_deref().filter(|n| !n.is_empty())?;
    Some(
        match a.owner.pod_namespace.as_deref().filter(|n| !n.is_empty()) {
            Some(ns) => format!("{ns}/{name}"),
            None => name.to_string(),
        },
    )
}

/// Writes the header, lines and trailer in one of the three formats, streaming.
struct Printer {
    format: OutputFormat,
    network: String,
    kind: NetworkKind,
    source: String,
    family: Family,
    wide: bool,
    /// Whether a JSON item was already written in the current list (for commas).
    first_item: bool,
    lines: u64,
}

impl Printer {
    fn new(format: OutputFormat, def: &NetworkDef, family: Family, wide: bool) -> Printer {
        Printer {
            format,
            network: def.name.clone(),
            kind: def.kind.clone(),
            source: def.source.clone(),
            family,
            wide,
            first_item: true,
            lines: 0,
        }
    }

    fn begin(&mut self, out: &mut impl Write) -> CtlResult<()> {
        let head = match self.format {
            OutputFormat::Table => return Ok(()),
            OutputFormat::Json => format!(
                "{{\"network\": {}, \"kind\": {}, \"source\": {}, \"family\": {}, \"pools\": [",
                json!(self.network),
                json!(self.kind.object_kind()),
                json!(self.source),
                json!(family_name(self.family))
            ),
            OutputFormat::Yaml => format!(
                "network: {}\nkind: {}\nsource: {}\nfamily: {}\npools:\n",
                json!(self.network),
                json!(self.kind.object_kind()),
                json!(self.source),
                family_name(self.family)
            ),
        };
        out.write_all(head.as_bytes()).map_err(out_err)
    }

    fn pool_header(&mut self, out: &mut impl Write, pool: &Pool, index: usize) -> CtlResult<()> {
        let text = match self.format {
            OutputFormat::Table => {
                let mut t = String::new();
                if index > 0 {
                    t.push('\n');
                }
                match &self.kind {
                    NetworkKind::Danm(kind) => t.push_str(&format!("DANM network Kind: {kind}\n")),
                    other => {
                        t.push_str(&format!("{:>17}: {}\n", "Network", self.network));
                        t.push_str(&format!("{:>17}: {other}\n", "Defined by"));
                    }
                }
                t.push_str(&format!(
                    "{:>17}: {}\n",
                    "IP version",
                    family_name(self.family)
                ));
                t.push_str(&format!("{:>17}: {}\n", "CIDR", pool.cidr));
                t.push_str(&format!("{:>17}: {}\n", "Pool start", pool.start));
                t.push_str(&format!("{:>17}: {}\n", "Pool   end", pool.end));
                t.push_str(&"-".repeat(62));
                t.push('\n');
                t
            }
            OutputFormat::Json => format!(
                "{}\n  {{\"cidr\": \"{}\", \"start\": \"{}\", \"end\": \"{}\", \"addresses\": [",
                if index > 0 { "," } else { "" },
                pool.cidr,
                pool.start,
                pool.end
            ),
            OutputFormat::Yaml => format!(
                "- cidr: {}\n  start: {}\n  end: {}\n  addresses:\n",
                json!(pool.cidr.to_string()),
                json!(pool.start.to_string()),
                json!(pool.end.to_string())
            ),
        };
        self.first_item = true;
        out.write_all(text.as_bytes()).map_err(out_err)
    }

    fn line(
        &mut self,
        out: &mut impl Write,
        ip: IpAddr,
        status: Status<'_>,
    ) -> std::io::Result<()> {
        self.lines += 1;
        match self.format {
            OutputFormat::Table => {
                writeln!(out, "{:>15} : {}", ip, status_text(&status, self.wide))?
            }
            OutputFormat::Json => {
                let sep = if self.first_item { "" } else { "," };
                write!(out, "{sep}\n    {}", item_json(ip, &status))?;
            }
            OutputFormat::Yaml => {
                let item = item_json(ip, &status);
                let mut first = true;
                if let Some(fields) = item.as_object() {
                    for (k, v) in fields {
                        let lead = if first { "  - " } else { "    " };
                        first = false;
                        writeln!(out, "{lead}{k}: {v}")?;
                    }
                }
            }
        }
        self.first_item = false;
        // Flush early lines at once so the first screen appears immediately.
        if self.lines <= 64 || self.lines.is_multiple_of(4096) {
            out.flush()?;
        }
        Ok(())
    }

    fn pool_end(&mut self, out: &mut impl Write) -> CtlResult<()> {
        let text = match self.format {
            OutputFormat::Json => "\n  ]}",
            // An empty list must not be left as a bare `addresses:`, which reads as null.
            OutputFormat::Yaml if self.first_item => "    []\n",
            _ => "",
        };
        out.write_all(text.as_bytes()).map_err(out_err)
    }

    fn end(&mut self, out: &mut impl Write) -> CtlResult<()> {
        if self.format == OutputFormat::Json {
            out.write_all(b"\n]}\n").map_err(out_err)?;
        }
        Ok(())
    }
}

/// One address as a JSON object for `-o json|yaml`.
fn item_json(ip: IpAddr, status: &Status<'_>) -> serde_json::Value {
    let mut item = json!({"ip": ip.to_string(), "status": status.name()});
    if let Status::Allocated(a) = status {
        item["pod"] = json!(pod_of(a));
        item["container_id"] = json!(a.container_id);
        item["ifname"] = json!(a.ifname);
        item["created_at"] = json!(crate::timefmt::rfc3339(a.created_at));
    }
    item
}

#[cfg(test)]
mod tests {
    use super::*;
    use plexus_store::Owner;

    fn held(ns: Option<&str>, pod: Option<&str>) -> Allocation {
        Allocation {
            network: "n".into(),
            container_id: "c1".into(),
            ifname: "net1".into(),
            ip: "10.0.0.5".parse().unwrap(),
            range_set: String::new(),
            owner: Owner {
                pod_namespace: ns.map(str::to_string),
                pod_name: pod.map(str::to_string),
                pod_uid: None,
                details: None,
            },
            created_at: 7,
            node: None,
        }
    }

    #[test]
    fn danm_status_texts() {
        let a = held(Some("default"), Some("web-1"));
        assert_eq!(
            status_text(&Status::Allocated(&a), false),
            "allocated (Pod: default/web-1)"
        );
        assert_eq!(
            status_text(&Status::Allocated(&a), true),
            "allocated (Pod: default/web-1) [container c1 net1]"
        );
        let unknown = held(None, None);
        assert_eq!(
            status_text(&Status::Allocated(&unknown), false),
            "allocated (unknown Pod)"
        );
        let no_ns = held(None, Some("p"));
        assert_eq!(pod_of(&no_ns).as_deref(), Some("p"));
        assert_eq!(
            status_text(&Status::NetworkBase, false),
            "reserved (network base address)"
        );
        assert_eq!(
            status_text(&Status::Broadcast, false),
            "reserved (broadcast address)"
        );
        assert_eq!(status_text(&Status::OutOfPool, false), "out of pool range");
    }

    #[test]
    fn json_items_carry_the_holder() {
        let a = held(Some("ns"), Some("p"));
        let v = item_json(a.ip, &Status::Allocated(&a));
        assert_eq!(v["pod"], "ns/p");
        assert_eq!(v["container_id"], "c1");
        assert_eq!(item_json(a.ip, &Status::Free)["status"], "free");
    }
}
