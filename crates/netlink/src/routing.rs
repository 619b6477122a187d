//! Value types for layer 3: addresses on links, routes and policy rules.

use std::fmt;
use std::net::IpAddr;

use ipnet::IpNet;

/// The main routing table (`ip route` without `table`).
pub const MAIN_TABLE: u32 = 254;
/// The local routing table (kernel-maintained local and broadcast routes).
pub const LOCAL_TABLE: u32 = 255;

/// IP version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum IpFamily {
    /// IPv4.
    V4,
    /// IPv6.
    V6,
}

impl IpFamily {
    /// The family of an address.
    pub fn of(ip: IpAddr) -> IpFamily {
        match ip {
            IpAddr::V4(_) => IpFamily::V4,
            IpAddr::V6(_) => IpFamily::V6,
        }
    }
}

impl fmt::Display for IpFamily {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            IpFamily::V4 => "IPv4",
            IpFamily::V6 => "IPv6",
        })
    }
}

/// Whether the kernel runs IPv6 duplicate address detection on a new address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Dad {
    /// `IFA_F_NODAD`: the address is usable at once (DANM's behaviour; plexus's default,
    /// because the cluster-wide IPAM already guarantees uniqueness).
    #[default]
    Skip,
    /// Let the kernel probe; the address stays tentative, then either becomes usable or is
    /// flagged `dad_failed` (used by the `duplicateAddressCheck` network option).
    Run,
}

/// An address on a link, as the kernel reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct AddressEntry {
    /// Address with its prefix length.
    pub address: IpNet,
    /// IPv6 DAD still running.
    pub tentative: bool,
    /// IPv6 DAD found a duplicate.
    pub dad_failed: bool,
}

/// Scope of a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RouteScope {
    /// Global (routes via a gateway).
    Universe,
    /// Directly attached (routes to an on-link prefix).
    Link,
    /// This host only.
    Host,
    /// Another scope, by its kernel number.
    Other(u8),
}

/// A route in some table. Used both to ask for a route and to report one.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Route {
    /// Destination prefix (`0.0.0.0/0` / `::/0` for a default route).
    pub destination: IpNet,
    /// Next hop.
    pub gateway: Option<IpAddr>,
    /// Output link by name.
    pub link: Option<String>,
    /// Routing table ([`MAIN_TABLE`] unless policy routing).
    pub table: u32,
    /// Scope; `None` when asking means: link scope for an IPv4 route without a gateway,
    /// universe otherwise (what `ip route add` does). Always set in reports.
    pub scope: Option<RouteScope>,
    /// Metric (`RTA_PRIORITY`); `None` when asking leaves the kernel default (IPv6: 1024).
    pub metric: Option<u32>,
}

impl Route {
    /// A route to `destination` in the main table, nothing else set.
    pub fn new(destination: IpNet) -> Route {
        Route {
            destination,
            gateway: None,
            link: None,
            table: MAIN_TABLE,
            scope: None,
            metric: None,
        }
    }

    /// The same route via `gateway`.
    pub fn via(mut self, gateway: IpAddr) -> Route {
        self.gateway = Some(gateway);
        self
    }

    /// The same route out of `link`.
    pub fn dev(mut self, link: impl Into<String>) -> Route {
        self.link = Some(link.into());
        self
    }

    /// The same route in `table`.
    pub fn in_table(mut self, table: u32) -> Route {
        self.table = table;
        self
    }

    /// The same route with an explicit scope.
    pub fn with_scope(mut self, scope: RouteScope) -> Route {
        self.scope = Some(scope);
        self
    }

    /// The same route with a metric.
    pub fn with_metric(mut self, metric: u32) -> Route {
        self.metric = Some(metric);
        self
    }

    /// Family of the destination.
    pub fn family(&self) -> IpFamily {
        IpFamily::of(self.destination.addr())
    }

    /// The scope a request for this route uses (see [`Route::scope`]).
    pub fn effective_scope(&self) -> RouteScope {
        match (self.scope, self.family(), self.gateway) {
            (Some(scope), _, _) => scope,
            (None, IpFamily::V4, None) => RouteScope::Link,
            (None, _, _) => RouteScope::Universe,
        }
    }

    /// True when the gateway (if any) has the destination's family.
    pub fn is_consistent(&self) -> bool {
        self.gateway
            .is_none_or(|gw| IpFamily::of(gw) == self.family())
    }

    /// True when this (reported) route satisfies `wanted`: same destination (compared
    /// normalised) and table, and the same gateway, link, scope and metric wherever `wanted`
    /// sets them. This is what CHECK needs: the kernel fills in fields a request left out.
    pub fn covers(&self, wanted: &Route) -> bool {
        self.destination.trunc() == wanted.destination.trunc()
            && self.table == wanted.table
            && (wanted.gateway.is_none() || self.gateway == wanted.gateway)
            && (wanted.link.is_none() || self.link == wanted.link)
            && (wanted.scope.is_none() || self.scope == wanted.scope)
            && (wanted.metric.is_none() || self.metric == wanted.metric)
    }
}

impl fmt::Display for Route {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.destination)?;
        if let Some(gw) = self.gateway {
            write!(f, " via {gw}")?;
        }
        if let Some(link) = &self.link {
            write!(f, " dev {link}")?;
        }
        if self.table != MAIN_TABLE {
            write!(f, " table {}", self.table)?;
        }
        if let Some(metric) = self.metric {
            write!(f, " metric {metric}")?;
        }
        Ok(())
    }
}

/// A policy routing rule `from <prefix> lookup <table>` (DANM's `rt_tables` + `proutes`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Rule {
    /// Family of the rule (a rule without `from` still belongs to one).
    pub family: IpFamily,
    /// Source prefix; `None` means "from all".
    pub from: Option<IpNet>,
    /// Table to look up.
    pub table: u32,
    /// Priority (preference); `None` when asking lets the kernel pick one below the last.
    pub priority: Option<u32>,
}

impl Rule {
    /// `from <source> lookup <table>`, family taken from `source`.
    pub fn from_source(source: IpNet, table: u32) -> Rule {
        Rule {
            family: IpFamily::of(source.addr()),
            from: Some(source),
            table,
            priority: None,
        }
    }

    /// The same rule with a priority.
    pub fn with_priority(mut self, priority: u32) -> Rule {
        self.priority = Some(priority);
        self
    }

    /// True when `from` (if any) has the rule's family.
    pub fn is_consistent(&self) -> bool {
        self.from
            .is_none_or(|net| IpFamily::of(net.addr()) == self.family)
    }

    /// True when this (reported) rule satisfies `wanted`: same family, source (normalised)
    /// and table, and the same priority when `wanted` sets one.
    pub fn covers(&self, wanted: &Rule) -> bool {
        self.family == wanted.family
            && self.from.map(|n| n.trunc()) == wanted.from.map(|n| n.trunc())
            && self.table == wanted.table
            && (wanted.priority.is_none() || self.priority == wanted.priority)
    }
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(priority) = self.priority {
            write!(f, "{priority}: ")?;
        }
        match self.from {
            Some(from) => write!(f, "from {from}")?,
            None => write!(f, "from all ({})", self.family)?,
        }
        write!(f, " lookup {}", self.table)
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn net(s: &str) -> IpNet {
        s.parse().expect("test prefix")
    }

    #[test]
    fn effective_scope_follows_ip_route_defaults() {
        assert_eq!(
            Route::new(net("10.1.0.0/16")).effective_scope(),
            RouteScope::Link
        );
        let via = Route::new(net("10.1.0.0/16")).via("10.0.0.1".parse().expect("ip"));
        assert_eq!(via.effective_scope(), RouteScope::Universe);
        assert_eq!(
            Route::new(net("fd00::/64")).effective_scope(),
            RouteScope::Universe
        );
        assert_eq!(
            Route::new(net("10.1.0.0/16"))
                .with_scope(RouteScope::Host)
                .effective_scope(),
            RouteScope::Host
        );
    }

    #[test]
    fn consistency_catches_mixed_families() {
        let mixed = Route::new(net("10.1.0.0/16")).via("fd00::1".parse().expect("ip"));
        assert!(!mixed.is_consistent());
        assert!(Route::new(net("10.1.0.0/16")).is_consistent());
        let rule = Rule {
            family: IpFamily::V6,
            from: Some(net("10.0.0.0/8")),
            table: 100,
            priority: None,
        };
        assert!(!rule.is_consistent());
        assert!(Rule::from_source(net("10.0.0.5/24"), 100).is_consistent());
    }

    #[test]
    fn covers_ignores_fields_the_request_left_open() {
        let reported = Route {
            destination: net("10.1.0.0/16"),
            gateway: Some("10.0.0.1".parse().expect("ip")),
            link: Some("eth1".into()),
            table: 100,
            scope: Some(RouteScope::Universe),
            metric: Some(0),
        };
        let wanted = Route::new(net("10.1.0.0/16"))
            .via("10.0.0.1".parse().expect("ip"))
            .in_table(100);
        assert!(reported.covers(&wanted));
        assert!(!reported.covers(&wanted.clone().in_table(MAIN_TABLE)));
        assert!(!reported.covers(&wanted.clone().dev("eth2")));
        assert!(!reported.covers(&wanted.clone().with_metric(5)));
        assert!(reported.covers(&wanted.dev("eth1").with_metric(0)));
    }

    #[test]
    fn rule_covers_compares_normalised_source() {
        let reported = Rule::from_source(net("10.0.0.0/24"), 100).with_priority(1000);
        assert!(reported.covers(&Rule::from_source(net("10.0.0.5/24"), 100)));
        assert!(!reported.covers(&Rule::from_source(net("10.0.0.5/25"), 100)));
        assert!(!reported.covers(&Rule::from_source(net("10.0.0.5/24"), 101)));
        assert!(!reported.covers(&Rule::from_source(net("10.0.0.5/24"), 100).with_priority(7)));
    }

    #[test]
    fn display_reads_like_ip_route() {
        let r = Route::new(net("10.1.0.0/16"))
            .via("10.0.0.1".parse().expect("ip"))
            .dev("eth1")
            .in_table(100)
            .with_metric(10);
        assert_eq!(
            r.to_string(),
            "10.1.0.0/16 via 10.0.0.1 dev eth1 table 100 metric 10"
        );
        let rule = Rule::from_source(net("10.0.0.5/24"), 100).with_priority(5);
        assert_eq!(rule.to_string(), "5: from 10.0.0.5/24 lookup 100");
    }

    proptest! {
        #[test]
        fn a_route_covers_itself_and_its_bare_request(
            addr in any::<u32>(), len in 0u8..=32, table in 1u32..1000, metric in any::<u32>()
        ) {
            let dest = IpNet::new(IpAddr::from(addr.to_be_bytes()), len).expect("valid len");
            let full = Route::new(dest).in_table(table).with_metric(metric)
                .with_scope(RouteScope::Link).dev("x");
            prop_assert!(full.covers(&full));
            prop_assert!(full.covers(&Route::new(dest.trunc()).in_table(table)));
        }
    }
}
