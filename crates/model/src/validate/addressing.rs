//! Address rules: `cidr`/`net6`, pools, routes and DANM bitmaps.

use std::collections::BTreeMap;
use std::net::IpAddr;

use ipnet::IpNet;
use plexus_ipam_core::Family;
use plexus_ipam_core::addr::{V4_KEY_BASE, V4_KEY_LAST, first_key, key, last_key, net_contains};

use super::plexus;
use super::{Checker, Operation, Rule, ValidFamily};
use crate::bitmap::AllocBitmap;
use crate::convert::{ConvertError, default_pool_bounds, family_pool};
use crate::network::{NetworkOptions, NetworkSpec};
use crate::parse::parse_cidr;

/// Largest IPv4 network: a /8.
pub const MIN_V4_PREFIX: u8 = 8;
/// Smallest IPv4 network that leaves an address to hand out: a /30.
pub const MAX_V4_PREFIX: u8 = 30;
/// Smallest IPv6 network that leaves an address to hand out: a /126.
pub const MAX_V6_PREFIX: u8 = 126;

/// The checked families of a spec.
#[derive(Debug, Default)]
pub(super) struct Families {
    /// IPv4, when `cidr` is set and everything checked out.
    pub(super) v4: Option<ValidFamily>,
    /// IPv6, when `net6` is set and everything checked out.
    pub(super) v6: Option<ValidFamily>,
}

/// One family's network as far as the rules got.
#[derive(Debug, Default, Clone, Copy)]
pub(super) struct Side {
    /// Whether `cidr`/`net6` is written at all.
    pub(super) configured: bool,
    /// The network, if it parsed.
    pub(super) network: Option<IpNet>,
    /// The allocation CIDR, if it parsed.
    pub(super) allocation_cidr: Option<IpNet>,
    /// The pool bounds, if they checked out.
    pub(super) bounds: Option<(IpAddr, IpAddr)>,
}

/// Field names of one family.
pub(super) struct Fields {
    /// The family.
    pub(super) family: Family,
    /// `cidr` / `net6`.
    pub(super) network: &'static str,
    /// `routes` / `routes6`.
    pub(super) routes: &'static str,
    /// `allocation_pool` / `allocation_pool_v6`.
    pub(super) pool: &'static str,
    /// `alloc` / `alloc6`.
    pub(super) alloc: &'static str,
}

/// IPv4 field names.
pub(super) const V4: Fields = Fields {
    family: Family::V4,
    network: "cidr",
    routes: "routes",
    pool: "allocation_pool",
    alloc: "alloc",
};
/// IPv6 field names.
pub(super) const V6: Fields = Fields {
    family: Family::V6,
    network: "net6",
    routes: "routes6",
    pool: "allocation_pool_v6",
    alloc: "alloc6",
};

/// Run the address rules.
pub(super) fn check(c: &mut Checker, spec: &NetworkSpec, op: Operation) -> Families {
    let o = &spec.options;
    let (v4, routes4) = check_v4(c, o, op);
    let (v6, routes6) = check_v6(c, o, op);
    let extras = plexus::check(c, &spec.plexus, &v4, &v6);
    let build = |side: Side, routes: Vec<(IpNet, IpAddr)>, extras: plexus::Extras| {
        let (network, allocation_cidr, (start, end)) =
            (side.network?, side.allocation_cidr?, side.bounds?);
        Some(ValidFamily {
            network,
            allocation_cidr,
            start,
            end,
            routes,
            exclude: extras.exclude,
            reserved: extras.reserved,
            block_size: extras.block_size,
        })
    };
    Families {
        v4: build(v4, routes4, extras.v4).filter(|f| has_room(c, &V4, f)),
        v6: build(v6, routes6, extras.v6).filter(|f| has_room(c, &V6, f)),
    }
}

/// Whether the pool can hand out at least one address once everything reserved and
/// excluded is taken out: builds the allocator's range exactly as conversion will.
fn has_room(c: &mut Checker, fields: &Fields, family: &ValidFamily) -> bool {
    let path = format!("spec.Options.{}", fields.pool);
    let shown = format!("{}-{}", family.start, family.end);
    match family_pool("", family) {
        Err(e) => {
            let reason = match e {
                ConvertError::Range { source, .. } => source.to_string(),
                other => other.to_string(),
            };
            c.report(Rule::PoolEmpty, path, shown, reason);
            false
        }
        Ok(pool) if pool.range().is_none_or(|r| r.capacity() == 0) => {
            c.report(
                Rule::PoolEmpty,
                path,
                shown,
                "every address of the pool is reserved (network, broadcast, gateway, \
                 plexus.reserved) or excluded; nothing could be handed out",
            );
            false
        }
        Ok(_) => true,
    }
}

/// `cidr`, `routes`, `allocation_pool`, `alloc`.
fn check_v4(c: &mut Checker, o: &NetworkOptions, op: Operation) -> (Side, Vec<(IpNet, IpAddr)>) {
    let mut side = Side {
        configured: !o.cidr.is_empty(),
        ..Side::default()
    };
    if side.configured {
        side.network = parse_network(c, &V4, &o.cidr);
        if let Some(net) = side.network {
            let prefix = net.prefix_len();
            if prefix < MIN_V4_PREFIX {
                c.report(
                    Rule::CidrSize,
                    "spec.Options.cidr",
                    &o.cidr,
                    format!(
                        "a /{prefix} is larger than plexus supports; IPv4 networks go up to \
                         /{MIN_V4_PREFIX} (16777216 addresses)"
                    ),
                );
            } else if prefix > MAX_V4_PREFIX {
                c.report(
                    Rule::CidrSize,
                    "spec.Options.cidr",
                    &o.cidr,
                    format!(
                        "a /{prefix} leaves no address to hand out; use /{MAX_V4_PREFIX} or larger"
                    ),
                );
            }
        }
        side.allocation_cidr = side.network;
    }
    let pool = &o.allocation_pool;
    let routes = check_routes(c, &V4, &o.routes, &side);
    side.bounds = check_pool(c, &V4, [&pool.start, &pool.end], &side);
    check_alloc(c, &V4, &o.alloc, &side, op);
    (side, routes)
}

/// `net6`, `routes6`, `allocation_pool_v6`, `alloc6`.
fn check_v6(c: &mut Checker, o: &NetworkOptions, op: Operation) -> (Side, Vec<(IpNet, IpAddr)>) {
    let mut side = Side {
        configured: !o.net6.is_empty(),
        ..Side::default()
    };
    let pool = &o.allocation_pool_v6;
    if side.configured {
        side.network = parse_network(c, &V6, &o.net6).filter(|net| {
            let problem = v6_size_problem(net);
            if let Some(problem) = &problem {
                c.report(Rule::Net6Invalid, "spec.Options.net6", &o.net6, problem);
            }
            problem.is_none()
        });
        side.allocation_cidr = if pool.cidr.is_empty() {
            side.network
        } else {
            check_pool6_cidr(c, &pool.cidr, side.network)
        };
    }
    let routes = check_routes(c, &V6, &o.routes6, &side);
    if !side.configured && !pool.cidr.is_empty() {
        report_pool_without_network(c, &V6);
    } else {
        side.bounds = check_pool(c, &V6, [&pool.start, &pool.end], &side);
    }
    check_alloc(c, &V6, &o.alloc6, &side, op);
    (side, routes)
}

/// Parse `cidr`/`net6`, reporting syntax and family errors.
fn parse_network(c: &mut Checker, fields: &Fields, text: &str) -> Option<IpNet> {
    let path = format!("spec.Options.{}", fields.network);
    let rule = match fields.family {
        Family::V4 => Rule::CidrInvalid,
        Family::V6 => Rule::Net6Invalid,
    };
    let net = match parse_cidr(text) {
        Some(net) => net,
        None => {
            let example = match fields.family {
                Family::V4 => "10.0.0.0/24",
                Family::V6 => "2001:db8::/64",
            };
            c.report(
                rule,
                path,
                text,
                format!("not a CIDR; write the network as address/prefix, e.g. {example}"),
            );
            return None;
        }
    };
    if Family::of_net(&net) != fields.family {
        let (is, goes) = match fields.family {
            Family::V4 => ("IPv6", "net6"),
            Family::V6 => ("IPv4", "cidr"),
        };
        c.report(
            rule,
            path,
            text,
            format!("is an {is} network; {is} networks go in {goes}"),
        );
        return None;
    }
    Some(net.trunc())
}

/// Why an IPv6 network cannot be allocated from, if so.
fn v6_size_problem(net: &IpNet) -> Option<String> {
    if net.prefix_len() > MAX_V6_PREFIX {
        return Some(format!(
            "a /{} leaves no address to hand out; use /{MAX_V6_PREFIX} or larger",
            net.prefix_len()
        ));
    }
    if first_key(net) <= V4_KEY_LAST && last_key(net) >= V4_KEY_BASE {
        return Some(
            "overlaps ::ffff:0:0/96, the IPv4-mapped addresses, which cannot be handed out as \
             IPv6"
                .to_owned(),
        );
    }
    None
}

/// `allocation_pool_v6.cidr`: parses, is usable, lies within `net6`.
fn check_pool6_cidr(c: &mut Checker, text: &str, net6: Option<IpNet>) -> Option<IpNet> {
    const PATH: &str = "spec.Options.allocation_pool_v6.cidr";
    let Some(cidr) = parse_cidr(text) else {
        c.report(
            Rule::Pool6CidrInvalid,
            PATH,
            text,
            "not a CIDR; write it as address/prefix inside net6, e.g. 2001:db8::/106",
        );
        return None;
    };
    if Family::of_net(&cidr) != Family::V6 {
        c.report(
            Rule::Pool6CidrInvalid,
            PATH,
            text,
            "must be an IPv6 CIDR inside net6",
        );
        return None;
    }
    let cidr = cidr.trunc();
    if let Some(problem) = v6_size_problem(&cidr) {
        c.report(Rule::Pool6CidrInvalid, PATH, text, problem);
        return None;
    }
    if let Some(net6) = net6
        && !(net_contains(&net6, cidr.network()) && net_contains(&net6, cidr.broadcast()))
    {
        c.report(
            Rule::Pool6CidrOutside,
            PATH,
            text,
            format!("must lie within net6 {net6}"),
        );
        return None;
    }
    Some(cidr)
}

/// `routes`/`routes6`: need the network; destinations are CIDRs; gateways lie inside the
/// network and are neither its network nor its broadcast address.
fn check_routes(
    c: &mut Checker,
    fields: &Fields,
    routes: &BTreeMap<String, String>,
    side: &Side,
) -> Vec<(IpNet, IpAddr)> {
    let base = format!("spec.Options.{}", fields.routes);
    if !side.configured && !routes.is_empty() {
        let keys: Vec<&str> = routes.keys().map(String::as_str).collect();
        c.report(
            Rule::RoutesWithoutNetwork,
            &base,
            keys.join(","),
            format!(
                "routes need {}: an L2 network (no {}) has no gateway to route through",
                fields.network, fields.network
            ),
        );
    }
    let mut parsed = Vec::with_capacity(routes.len());
    for (dst_text, gw_text) in routes {
        let path = format!("{base}[{dst_text:?}]");
        let dst = match parse_cidr(dst_text) {
            Some(dst) if Family::of_net(&dst) == fields.family => Some(dst.trunc()),
            _ => {
                c.report(
                    Rule::RouteDestinationInvalid,
                    &path,
                    dst_text,
                    format!("the destination must be an IPv{} CIDR", fields.family),
                );
                None
            }
        };
        let gw = match gw_text.parse::<IpAddr>() {
            Ok(gw) if Family::of(gw) == fields.family => Some(gw),
            _ => {
                c.report(
                    Rule::RouteGatewayInvalid,
                    &path,
                    gw_text,
                    format!("the gateway must be an IPv{} address", fields.family),
                );
                None
            }
        };
        let Some(gw) = gw else { continue };
        if let Some(net) = side.network {
            if !net_contains(&net, gw) {
                c.report(
                    Rule::RouteGatewayOutside,
                    &path,
                    gw_text,
                    format!("the gateway must lie inside {} {net}", fields.network),
                );
                continue;
            }
            let what = if key(gw) == first_key(&net) {
                Some("network address")
            } else if fields.family == Family::V4 && key(gw) == last_key(&net) {
                Some("broadcast address")
            } else {
                None
            };
            if let Some(what) = what {
                c.report(
                    Rule::RouteGatewayReserved,
                    &path,
                    gw_text,
                    format!("the gateway is the {what} of {net}"),
                );
                continue;
            }
        }
        if let Some(dst) = dst {
            parsed.push((dst, gw));
        }
    }
    parsed
}

/// `PoolWithoutNetwork` for `fields`.
fn report_pool_without_network(c: &mut Checker, fields: &Fields) {
    c.report(
        Rule::PoolWithoutNetwork,
        format!("spec.Options.{}", fields.pool),
        "",
        format!(
            "an allocation pool needs {}; without it the network is L2 only",
            fields.network
        ),
    );
}

/// `start`/`end` of a pool: inside the allocation CIDR, `end > start`; defaults otherwise.
fn check_pool(
    c: &mut Checker,
    fields: &Fields,
    [start_text, end_text]: [&String; 2],
    side: &Side,
) -> Option<(IpAddr, IpAddr)> {
    if !side.configured {
        if !start_text.is_empty() || !end_text.is_empty() {
            report_pool_without_network(c, fields);
        }
        return None;
    }
    let cidr = side.allocation_cidr;
    let defaults = cidr.as_ref().and_then(default_pool_bounds);
    let mut bound = |name: &str, text: &String, default: Option<IpAddr>| -> Option<IpAddr> {
        if text.is_empty() {
            return default;
        }
        let path = format!("spec.Options.{}.{name}", fields.pool);
        let ip = match text.parse::<IpAddr>() {
            Ok(ip) if Family::of(ip) == fields.family => ip,
            _ => {
                c.report(
                    Rule::PoolAddressInvalid,
                    path,
                    text,
                    format!("must be an IPv{} address", fields.family),
                );
                return None;
            }
        };
        let cidr = cidr?;
        if !net_contains(&cidr, ip) {
            c.report(
                Rule::PoolAddressOutside,
                path,
                text,
                format!("must lie inside the allocation CIDR {cidr}"),
            );
            return None;
        }
        Some(ip)
    };
    let start = bound("start", start_text, defaults.map(|d| d.0));
    let end = bound("end", end_text, defaults.map(|d| d.1));
    let (start, end) = (start?, end?);
    if key(end) <= key(start) {
        c.report(
            Rule::PoolOrder,
            format!("spec.Options.{}.end", fields.pool),
            end.to_string(),
            format!("the pool end must come after its start {start}"),
        );
        return None;
    }
    Some((start, end))
}

/// `alloc`/`alloc6`: empty on create; otherwise the bitmap of the allocation CIDR.
fn check_alloc(c: &mut Checker, fields: &Fields, text: &str, side: &Side, op: Operation) {
    if text.is_empty() {
        return;
    }
    let path = format!("spec.Options.{}", fields.alloc);
    if op == Operation::Create {
        c.report(
            Rule::AllocOnCreate,
            path,
            text,
            "allocation bitmaps are never written by hand; remove it (plexus tracks \
             allocations in its store)",
        );
        return;
    }
    if !side.configured {
        c.report(
            Rule::AllocInvalid,
            path,
            text,
            format!(
                "an allocation bitmap without {} has no addresses to map",
                fields.network
            ),
        );
        return;
    }
    if let Some(cidr) = side.allocation_cidr
        && let Err(e) = AllocBitmap::decode_for(text, &cidr)
    {
        c.report(Rule::AllocInvalid, path, text, e.to_string());
    }
}
