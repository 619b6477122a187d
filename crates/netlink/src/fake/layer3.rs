//! The fake kernel's layer 3 and per-link extras: addresses, routes (which need an up link
//! and a reachable gateway), policy rules (with the kernel's priority choice), sysctls and
//! announcements.

use std::net::{IpAddr, Ipv4Addr};

use ipnet::IpNet;

use super::state::{FakeKernel, invalid_name, missing_link};
use crate::error::{ErrorContext, ErrorKind, Result};
use crate::routing::{AddressEntry, Dad, IpFamily, Route, RouteScope, Rule};
use crate::sysctl::Sysctl;
use crate::types::MacAddr;

/// The MAC address of the fake host that holds every duplicate address.
pub const DUPLICATE_HOLDER: MacAddr = MacAddr([0x02, 0xd0, 0x0b, 0x1e, 0x00, 0x01]);

impl FakeKernel {
    /// Adds an address (duplicate = Exists).
    pub fn add_address(
        &mut self,
        ctx: &ErrorContext,
        name: &str,
        address: IpNet,
        dad: Dad,
    ) -> Result<()> {
        let dad_fails = dad == Dad::Run
            && matches!(address, IpNet::V6(_))
            && self.duplicates.contains(&address.addr());
        let ns = self.ns_mut(ctx)?;
        let link = ns.link_mut(name).ok_or_else(|| missing_link(ctx, name))?;
        if link.addresses.iter().any(|a| a.address == address) {
            return Err(ctx.error(ErrorKind::Exists, "File exists (EEXIST)"));
        }
        link.addresses.push(AddressEntry {
            address,
            tentative: false,
            dad_failed: dad_fails,
        });
        Ok(())
    }

    /// Removes an address (absent, link gone or netns gone = Ok).
    pub fn del_address(&mut self, ctx: &ErrorContext, name: &str, address: IpNet) -> Result<()> {
        let Some(ns) = self.namespaces.get_mut(&ctx.netns) else {
            return Ok(());
        };
        if let Some(link) = ns.link_mut(name) {
            link.addresses.retain(|a| a.address != address);
        }
        Ok(())
    }

    /// Adds a route: its link must exist and be up, its gateway on a connected prefix.
    pub fn add_route(&mut self, ctx: &ErrorContext, route: &Route) -> Result<()> {
        if !route.is_consistent() {
            return Err(ctx.error(
                ErrorKind::Invalid,
                "gateway family differs from destination",
            ));
        }
        let ns = self.ns_mut(ctx)?;
        if let Some(name) = &route.link {
            let link = ns.link(name).ok_or_else(|| missing_link(ctx, name))?;
            if !link.link.up {
                // What this kernel answers: IPv4 finds no connected route to the gateway.
                let detail = match route.family() {
                    IpFamily::V4 => {
                        "Nexthop has invalid gateway: Network is unreachable (ENETUNREACH)"
                    }
                    IpFamily::V6 => "Nexthop device is not up: Network is down (ENETDOWN)",
                };
                return Err(ctx.error(ErrorKind::Other, detail));
            }
        } else if route.gateway.is_none() {
            return Err(ctx.error(ErrorKind::Invalid, "a route needs a gateway or a link"));
        }
        if let Some(gw) = route.gateway
            && !ns.reachable(gw, route.link.as_deref())
        {
            return Err(ctx.error(
                ErrorKind::Other,
                "Nexthop has invalid gateway: Network is unreachable (ENETUNREACH)",
            ));
        }
        let mut stored = route.clone();
        stored.destination = route.destination.trunc();
        stored.scope = Some(route.effective_scope());
        if stored.link.is_none() {
            // The kernel resolves the output link from the gateway.
            stored.link = route.gateway.and_then(|gw| {
                ns.links
                    .iter()
                    .find(|l| l.link.up && l.addresses.iter().any(|a| a.address.contains(&gw)))
                    .map(|l| l.link.name.clone())
            });
        }
        if ns.routes.iter().any(|r| {
            r.destination == stored.destination
                && r.table == stored.table
                && r.metric == stored.metric
        }) {
            return Err(ctx.error(ErrorKind::Exists, "File exists (EEXIST)"));
        }
        ns.routes.push(stored);
        Ok(())
    }

    /// Deletes the routes `route` describes (absent or netns gone = Ok).
    pub fn del_route(&mut self, ctx: &ErrorContext, route: &Route) -> Result<()> {
        if let Some(ns) = self.namespaces.get_mut(&ctx.netns) {
            ns.routes.retain(|r| !r.covers(route));
        }
        Ok(())
    }

    /// Every route: the connected ones implied by addresses on up links, then added ones.
    pub fn list_routes(&self, ctx: &ErrorContext) -> Result<Vec<Route>> {
        let ns = self.ns(ctx)?;
        let mut routes: Vec<Route> = ns
            .links
            .iter()
            .filter(|l| l.link.up)
            .flat_map(|l| {
                l.addresses.iter().map(|a| Route {
                    destination: a.address.trunc(),
                    gateway: None,
                    link: Some(l.link.name.clone()),
                    table: crate::MAIN_TABLE,
                    scope: Some(RouteScope::Link),
                    metric: None,
                })
            })
            .collect();
        routes.extend(ns.routes.iter().cloned());
        Ok(routes)
    }

    /// Adds a rule (identical one present = Exists); priority defaults below the last.
    pub fn add_rule(&mut self, ctx: &ErrorContext, rule: &Rule) -> Result<()> {
        if !rule.is_consistent() {
            return Err(ctx.error(ErrorKind::Invalid, "source family differs from the rule's"));
        }
        let ns = self.ns_mut(ctx)?;
        if ns.rules.iter().any(|r| r.covers(rule) && rule.covers(r)) {
            return Err(ctx.error(ErrorKind::Exists, "File exists (EEXIST)"));
        }
        let mut stored = rule.clone();
        stored.from = rule.from.map(|n| n.trunc());
        if stored.priority.is_none() {
            // The kernel picks one below the first non-zero priority in use.
            let first = ns
                .rules
                .iter()
                .filter(|r| r.family == rule.family)
                .filter_map(|r| r.priority)
                .filter(|p| *p > 0)
                .min()
                .unwrap_or(32766);
            stored.priority = Some(first.saturating_sub(1));
        }
        ns.rules.push(stored);
        ns.rules.sort_by_key(|r| (r.family, r.priority));
        Ok(())
    }

    /// Deletes the first rule `rule` describes (absent or netns gone = Ok).
    pub fn del_rule(&mut self, ctx: &ErrorContext, rule: &Rule) -> Result<()> {
        let Some(ns) = self.namespaces.get_mut(&ctx.netns) else {
            return Ok(());
        };
        if let Some(pos) = ns.rules.iter().position(|r| r.covers(rule)) {
            ns.rules.remove(pos);
        }
        Ok(())
    }

    /// Records sysctl writes; the link must exist unless it is `all`/`default`.
    pub fn set_sysctls(
        &mut self,
        ctx: &ErrorContext,
        name: &str,
        sysctls: &[Sysctl],
    ) -> Result<()> {
        for sysctl in sysctls {
            sysctl.path(name).map_err(|e| invalid_name(ctx, e))?;
        }
        let ns = self.ns_mut(ctx)?;
        if name != "all" && name != "default" && ns.link(name).is_none() {
            return Err(ctx.error(
                ErrorKind::NotFound,
                format!("no sysctl directory for {name:?}: No such file or directory (ENOENT)"),
            ));
        }
        for sysctl in sysctls {
            ns.sysctls.insert(
                (name.to_owned(), sysctl.key().to_owned()),
                sysctl.value().to_owned(),
            );
        }
        Ok(())
    }

    /// Records announcements; the link must be up and hold each address.
    pub fn announce(&mut self, ctx: &ErrorContext, name: &str, addresses: &[IpAddr]) -> Result<()> {
        let ns = self.ns_mut(ctx)?;
        let link = ns.link(name).ok_or_else(|| missing_link(ctx, name))?;
        if !link.link.up {
            return Err(ctx.error(ErrorKind::Other, "link is down: Network is down (ENETDOWN)"));
        }
        if let Some(missing) = addresses
            .iter()
            .find(|ip| !link.addresses.iter().any(|a| a.address.addr() == **ip))
        {
            return Err(ctx.error(
                ErrorKind::NotFound,
                format!("{missing} is not an address of the link"),
            ));
        }
        for ip in addresses {
            ns.announcements.push((name.to_owned(), *ip));
        }
        Ok(())
    }

    /// An ARP probe: the link must be up and must not hold `ip` yet; a "host" answers when
    /// `ip` is one of the [`FakeKernel::duplicates`].
    pub fn arp_probe(
        &mut self,
        ctx: &ErrorContext,
        name: &str,
        ip: Ipv4Addr,
    ) -> Result<Option<MacAddr>> {
        let answers = self.duplicates.contains(&IpAddr::V4(ip));
        let ns = self.ns_mut(ctx)?;
        let link = ns.link(name).ok_or_else(|| missing_link(ctx, name))?;
        if !link.link.up {
            return Err(ctx.error(ErrorKind::Other, "link is down: Network is down (ENETDOWN)"));
        }
        Ok(answers.then_some(DUPLICATE_HOLDER))
    }
}
