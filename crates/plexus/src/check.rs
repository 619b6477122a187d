//! CHECK of routes and policy rules: every route plexus recorded for an interface must be
//! in `prevResult` and in the pod's kernel tables (out of that interface, via its
//! gateway), and every policy table must still have its `from <address> lookup <table>`
//! rule. (Links, addresses and claims are checked in `plugin.rs`.)

use plexus_cni::SuccessResult;
use plexus_netlink::{Dataplane, IpFamily, MAIN_TABLE, Netns};

use crate::error::PlexusError;
use crate::records::{AttachmentRecord, RecordedRoute};

fn in_prev_result(prev: &SuccessResult, r: &RecordedRoute) -> bool {
    prev.routes
        .iter()
        .any(|p| p.dst == r.dst && p.gw == Some(r.gw) && p.table.unwrap_or(MAIN_TABLE) == r.table)
}

fn describe(r: &RecordedRoute, ifname: &str) -> String {
    let table = if r.table == MAIN_TABLE {
        String::new()
    } else {
        format!(" table {}", r.table)
    };
    format!("route {} via {} dev {ifname}{table}", r.dst, r.gw)
}

/// Verifies the routes and rules of `attachments` against `prev` and the pod's kernel.
pub async fn routes_and_rules(
    dp: &dyn Dataplane,
    pod: &Netns,
    attachments: &[AttachmentRecord],
    prev: &SuccessResult,
) -> Result<(), PlexusError> {
    if attachments.iter().all(|a| a.routes.is_empty()) {
        return Ok(());
    }
    let dp_err = |a: &AttachmentRecord| {
        let (network, ifname) = (a.network.clone(), a.ifname.clone());
        move |source| PlexusError::Dataplane {
            network,
            ifname,
            source: Box::new(source),
        }
    };
    let first = attachments.iter().find(|a| !a.routes.is_empty());
    let first = first.unwrap_or(&attachments[0]);
    let routes = dp.list_routes(pod).await.map_err(dp_err(first))?;
    let rules = dp.list_rules(pod).await.map_err(dp_err(first))?;
    for a in attachments {
        for r in &a.routes {
            if !in_prev_result(prev, r) {
                return Err(PlexusError::CheckFailed(format!(
                    "{} was set up but is missing from prevResult",
                    describe(r, a.link_name())
                )));
            }
            let present = routes.iter().any(|k| {
                k.destination == r.dst
                    && k.gateway == Some(r.gw)
                    && k.table == r.table
                    && k.link.as_deref() == Some(a.link_name())
            });
            if !present {
                return Err(PlexusError::CheckFailed(format!(
                    "{} is missing in the pod",
                    describe(r, a.link_name())
                )));
            }
            if r.table == MAIN_TABLE {
                continue;
            }
            let family = IpFamily::of(r.dst.addr());
            for address in a
                .addresses
                .iter()
                .filter(|n| IpFamily::of(n.addr()) == family)
            {
                let ruled = rules.iter().any(|rule| {
                    rule.table == r.table
                        && rule.family == family
                        && rule.from.is_some_and(|f| {
                            f.prefix_len() == address.prefix_len() && f.trunc() == address.trunc()
                        })
                });
                if !ruled {
                    return Err(PlexusError::CheckFailed(format!(
                        "policy rule \"from {address} lookup {}\" of {} is missing in the pod",
                        r.table,
                        a.link_name()
                    )));
                }
            }
        }
    }
    Ok(())
}
