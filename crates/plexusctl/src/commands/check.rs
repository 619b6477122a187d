//! `plexusctl check`: a consistency report of the store against the network definitions.
//! Exit status 1 when anything is wrong.
//!
//! Problems: an allocation outside every pool of its network, on a reserved (network,
//! broadcast, gateway) or excluded address, held in a network that has no definition any
//! more (`network delete --force`; `gc NETWORK --orphaned` releases them), or an address
//! held in two networks whose pools overlap. Notes (not failures): allocations recorded
//! under a range set the current definition no longer has (the configuration changed
//! since they were claimed).

use std::collections::{HashMap, HashSet};
use std::io::Write;
use std::net::IpAddr;

use clap::Args;
use plexus_ipam_core::addr::{first_key, last_key, net_contains};
use plexus_store::{Allocation, Block};
use serde::Serialize;

use crate::cli::OutputFormat;
use crate::context::Context;
use crate::error::{CtlError, CtlResult};
use crate::known::{self, Found};
use crate::netdef::NetworkDef;
use crate::output::{Table, out_err, stdout, write_structured};

/// Arguments of `check`.
#[derive(Debug, Args)]
pub struct Check {
    /// Networks to check (default: every network plexusctl knows, and every network the
    /// store holds addresses of without a definition).
    pub networks: Vec<String>,
}

/// One finding.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// The network.
    pub network: String,
    /// The address concerned.
    pub ip: IpAddr,
    /// What is wrong.
    pub problem: String,
    /// Who holds it: `container/ifname`.
    pub holder: String,
}

/// The whole report.
#[derive(Debug, Default, Serialize)]
pub struct Report {
    /// Networks checked.
    pub networks: usize,
    /// Allocations examined.
    pub allocations: usize,
    /// Things that are wrong (exit status 1).
    pub problems: Vec<Finding>,
    /// Things worth knowing that are not wrong.
    pub notes: Vec<Finding>,
}

impl Check {
    /// Runs the command.
    pub async fn exec(&self, ctx: &Context) -> CtlResult<()> {
        let store = ctx.open_store().await?;
        let catalog = ctx.catalog_of(store.as_ref()).await?;
        let (defs, orphans): (Vec<&NetworkDef>, Vec<String>) = if self.networks.is_empty() {
            (
                catalog.unique(),
                known::orphans(&catalog, store.as_ref()).await?,
            )
        } else {
            let mut defs = Vec::new();
            let mut orphans = Vec::new();
            for name in &self.networks {
                match known::find(&catalog, store.as_ref(), name).await? {
                    Found::Defined(def) => defs.push(def),
                    Found::Orphaned => orphans.push(name.clone()),
                }
            }
            (defs, orphans)
        };
        let mut held: Vec<(&NetworkDef, Vec<Allocation>)> = Vec::new();
        let mut block_problems = Vec::new();
        for def in &defs {
            held.push((def, store.list(&def.name).await?));
            let mut counted = Vec::new();
            for block in store.blocks(&def.name).await? {
                let n = store
                    .count_between(&def.name, block.base, block.last())
                    .await?;
                counted.push((block, n));
            }
            block_problems.extend(check_blocks(def, &counted));
        }
        let mut report = check(&held);
        report.problems.extend(block_problems);
        for network in &orphans {
            let allocations = store.list(network).await?;
            report.networks += 1;
            report.allocations += allocations.len();
            report
                .problems
                .extend(orphan_findings(network, &allocations));
        }
        let mut out = stdout();
        match ctx.output() {
            OutputFormat::Table => write_table(&mut out, &report).map_err(out_err)?,
            format => write_structured(&mut out, format, &report)?,
        }
        out.flush().map_err(out_err)?;
        if report.problems.is_empty() {
            Ok(())
        } else {
            Err(CtlError::Problems(format!(
                "check found {} problem(s)",
                report.problems.len()
            )))
        }
    }
}

/// Checks every network's allocations against its definition and against each other.
pub fn check(held: &[(&NetworkDef, Vec<Allocation>)]) -> Report {
    let mut report = Report {
        networks: held.len(),
        ..Report::default()
    };
    for (def, allocations) in held {
        report.allocations += allocations.len();
        let set_ids: HashSet<String> = def.range_sets.iter().map(|s| s.id()).collect();
        for a in allocations {
            let finding = |problem: String| Finding {
                network: def.name.clone(),
                ip: a.ip,
                problem,
                holder: format!("{}/{}", a.container_id, a.ifname),
            };
            if let Some(problem) = placement_problem(def, a.ip) {
                report.problems.push(finding(problem));
            }
            if !set_ids.is_empty() && !set_ids.contains(&a.range_set) {
                report.notes.push(finding(format!(
                    "claimed under range set {} which the definition no longer has",
                    a.range_set
                )));
            }
        }
    }
    report.problems.extend(cross_network_duplicates(held));
    report
}

/// Every allocation of `network`, which has no definition any more, as a problem: nothing
/// says where its addresses belong, and nothing else will ever release them.
pub fn orphan_findings(network: &str, allocations: &[Allocation]) -> Vec<Finding> {
    allocations
        .iter()
        .map(|a| Finding {
            network: network.to_string(),
            ip: a.ip,
            problem: format!(
                "held in a network without a definition (deleted with --force?): define it \
                 again, or release with plexusctl gc {network} --orphaned"
            ),
            holder: format!("{}/{}", a.container_id, a.ifname),
        })
        .collect()
}

/// Per-node blocks whose bookkeeping disagrees with the allocations: a block marked empty
/// that holds addresses (it could be released from under them), or a block outside every
/// pool of the network. `blocks` pairs each block with the number of addresses held in it.
pub fn check_blocks(def: &NetworkDef, blocks: &[(Block, u64)]) -> Vec<Finding> {
    let mut findings = Vec::new();
    for (block, held) in blocks {
        let finding = |problem: String| Finding {
            network: def.name.clone(),
            ip: block.base,
            problem,
            holder: format!("block /{} of node {}", block.prefix, block.node),
        };
        if let Some(since) = block.emptied_at
            && *held > 0
        {
            findings.push(finding(format!(
                "marked empty since {} but holds {held} address(es)",
                crate::timefmt::rfc3339(since)
            )));
        }
        if !def.contains(block.base) {
            findings.push(finding("outside every pool of the network".to_string()));
        }
    }
    findings
}

/// Why `ip` should not be held in `def`, if it should not: outside every pool, or a
/// reserved (network, broadcast, gateway) or excluded address.
pub fn placement_problem(def: &NetworkDef, ip: IpAddr) -> Option<String> {
    let pools: Vec<_> = def
        .pools
        .iter()
        .filter(|p| net_contains(&p.cidr, ip))
        .collect();
    if pools.is_empty() {
        return Some(format!(
            "outside every pool of the network ({})",
            def.source
        ));
    }
    for pool in pools {
        let k = plexus_ipam_core::addr::key(ip);
        if k == first_key(&pool.cidr) {
            return Some(format!("the network address of {}", pool.cidr));
        }
        if pool.family() == plexus_ipam_core::Family::V4 && k == last_key(&pool.cidr) {
            return Some(format!("the broadcast address of {}", pool.cidr));
        }
        if pool.gateways.contains(&ip) {
            return Some(format!("the gateway of {}", pool.cidr));
        }
        if let Some(net) = pool.exclude.iter().find(|net| net_contains(net, ip)) {
            return Some(format!("inside exclusion {net} of {}", pool.cidr));
        }
    }
    None
}

/// Addresses held in two networks whose pools overlap (the same address given twice).
fn cross_network_duplicates(held: &[(&NetworkDef, Vec<Allocation>)]) -> Vec<Finding> {
    let mut findings = Vec::new();
    for (i, (a_def, a_held)) in held.iter().enumerate() {
        for (b_def, b_held) in held.iter().skip(i + 1) {
            let overlapping = a_def.pools.iter().any(|pa| {
                b_def
                    .pools
                    .iter()
                    .any(|pb| pa.cidr.contains(&pb.cidr) || pb.cidr.contains(&pa.cidr))
            });
            if !overlapping || a_def.name == b_def.name {
                continue;
            }
            let in_b: HashMap<IpAddr, &Allocation> = b_held.iter().map(|x| (x.ip, x)).collect();
            for x in a_held {
                if let Some(y) = in_b.get(&x.ip) {
                    findings.push(Finding {
                        network: format!("{}+{}", a_def.name, b_def.name),
                        ip: x.ip,
                        problem: "held in two overlapping networks".to_string(),
                        holder: format!(
                            "{}/{} and {}/{}",
                            x.container_id, x.ifname, y.container_id, y.ifname
                        ),
                    });
                }
            }
        }
    }
    findings
}

fn write_table(out: &mut impl Write, report: &Report) -> std::io::Result<()> {
    for (title, findings) in [("PROBLEM", &report.problems), ("NOTE", &report.notes)] {
        if findings.is_empty() {
            continue;
        }
        let mut table = Table::new(&["NETWORK", "IP", "HOLDER", title]);
        for f in findings {
            table.row(vec![
                f.network.clone(),
                f.ip.to_string(),
                f.holder.clone(),
                f.problem.clone(),
            ]);
        }
        table.write(out)?;
        writeln!(out)?;
    }
    let verdict = if report.problems.is_empty() {
        "OK"
    } else {
        "FAILED"
    };
    writeln!(
        out,
        "{verdict}: {} network(s), {} allocation(s), {} problem(s), {} note(s)",
        report.networks,
        report.allocations,
        report.problems.len(),
        report.notes.len()
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::netdef::{NetworkKind, Pool};
    use plexus_store::Owner;

    fn def(name: &str, cidr: &str, gw: Option<&str>) -> NetworkDef {
        let mut pool = Pool::from_cidr(cidr.parse().unwrap()).unwrap();
        pool.gateways = gw.map(|g| g.parse().unwrap()).into_iter().collect();
        pool.exclude = vec!["10.0.0.200/29".parse().unwrap()];
        NetworkDef {
            name: name.into(),
            kind: NetworkKind::Plexus("ClusterNetwork".into()),
            source: "test".into(),
            pools: vec![pool],
            range_sets: Vec::new(),
            object: None,
            blocks: Default::default(),
            owners: Vec::new(),
        }
    }

    fn held(network: &str, ip: &str, c: &str) -> Allocation {
        Allocation {
            network: network.into(),
            container_id: c.into(),
            ifname: "eth0".into(),
            ip: ip.parse().unwrap(),
            range_set: String::new(),
            owner: Owner::default(),
            created_at: 0,
            node: None,
        }
    }

    #[test]
    fn finds_misplaced_allocations() {
        let a = def("a", "10.0.0.0/24", Some("10.0.0.1"));
        let allocs = vec![
            held("a", "10.0.0.5", "ok"),
            held("a", "10.0.1.5", "outside"),
            held("a", "10.0.0.1", "gateway"),
            held("a", "10.0.0.255", "broadcast"),
            held("a", "10.0.0.201", "excluded"),
        ];
        let report = check(&[(&a, allocs)]);
        let bad: Vec<&str> = report.problems.iter().map(|f| f.holder.as_str()).collect();
        assert_eq!(
            bad,
            [
                "outside/eth0",
                "gateway/eth0",
                "broadcast/eth0",
                "excluded/eth0"
            ]
        );
        assert_eq!(report.allocations, 5);
    }

    #[test]
    fn finds_blocks_with_wrong_counts() {
        let a = def("a", "10.0.0.0/24", None);
        let block = |base: &str, emptied: Option<i64>| Block {
            network: "a".into(),
            range_set: String::new(),
            base: base.parse().unwrap(),
            prefix: 26,
            node: "n1".into(),
            claimed_at: 0,
            emptied_at: emptied,
            cursor: None,
        };
        let found = check_blocks(
            &a,
            &[
                (block("10.0.0.0", None), 3),
                (block("10.0.0.64", Some(100)), 0),
                (block("10.0.0.128", Some(100)), 2),
                (block("10.9.0.0", None), 0),
            ],
        );
        let problems: Vec<(String, &str)> = found
            .iter()
            .map(|f| (f.ip.to_string(), f.problem.as_str()))
            .collect();
        assert_eq!(
            problems,
            [
                (
                    "10.0.0.128".to_string(),
                    "marked empty since 1970-01-01T00:01:40Z but holds 2 address(es)"
                ),
                ("10.9.0.0".to_string(), "outside every pool of the network")
            ]
        );
    }

    #[test]
    fn allocations_of_a_network_without_definition_are_problems() {
        let found = orphan_findings("gone", &[held("gone", "10.0.0.5", "c1")]);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].holder, "c1/eth0");
        assert!(
            found[0].problem.contains("gc gone --orphaned"),
            "{:?}",
            found[0]
        );
        assert!(orphan_findings("gone", &[]).is_empty());
    }

    #[test]
    fn finds_duplicates_across_overlapping_networks_only() {
        let a = def("a", "10.0.0.0/24", None);
        let b = def("b", "10.0.0.0/25", None);
        let c = def("c", "10.9.0.0/24", None);
        let report = check(&[
            (
                &a,
                vec![held("a", "10.0.0.5", "x"), held("a", "10.0.0.6", "y")],
            ),
            (&b, vec![held("b", "10.0.0.5", "z")]),
            (&c, vec![held("c", "10.9.0.5", "w")]),
        ]);
        assert_eq!(report.problems.len(), 1, "{:?}", report.problems);
        assert_eq!(report.problems[0].network, "a+b");
        assert_eq!(report.problems[0].holder, "x/eth0 and z/eth0");
    }
}
