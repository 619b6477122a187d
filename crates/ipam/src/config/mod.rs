//! The IPAM section of a netconf, in both syntaxes users already have: host-local
//! (`ranges`) and whereabouts (`range`, `ipRanges`). Unknown keys are warnings, never errors;
//! anything that would change which addresses are handed out is validated strictly.

mod blocks;
mod hostlocal;
mod json;
mod whereabouts;

use std::net::IpAddr;

use ipnet::IpNet;
use serde::Serialize;
use serde_json::Value;

use self::json::{
    Object, RangePaths, as_array, as_object, field, ip_field, join, parse_cidr, render, text_field,
    wrong_type,
};
use crate::addr::{Family, first_key, last_key};
use crate::blocks::BlockPolicy;
use crate::error::{ConfigError, qualified};
use crate::range::{DisjointSpans, RangeSet};

/// Keys plexus itself reads from `ipam` (or leaves to other crates).
/// Most range sets one pool may have (host-local's `ranges`, whereabouts' `ipRanges`, plus
/// `runtimeConfig.ipRanges`). The canonical text of a range set is stored with every
/// allocation and in etcd keys, so an unbounded set would bloat every row.
pub const MAX_RANGE_SETS: usize = 16;

/// Most ranges one range set may have (see [`MAX_RANGE_SETS`]).
pub const MAX_RANGES_PER_SET: usize = 64;

const PLEXUS_KEYS: &[&str] = &[
    "type",
    "store",
    "agent",
    "network",
    "node_name",
    "blocks",
    "log_level",
    "log_file",
    "capabilities",
];
/// Keys of both syntaxes that this parser reads.
const POOL_KEYS: &[&str] = &[
    "routes",
    "dns",
    "addresses",
    "network_name",
    "enable_overlapping_ranges",
    "gateway",
];
/// host-local keys: `ranges` plus the deprecated top-level range.
const HOST_LOCAL_KEYS: &[&str] = &["ranges", "subnet", "rangeStart", "rangeEnd"];
/// whereabouts range keys.
const WHEREABOUTS_KEYS: &[&str] = &["range", "range_start", "range_end", "exclude", "ipRanges"];
/// Keys accepted for compatibility that have no effect in plexus.
const UNUSED_KEYS: &[(&str, &str)] = &[
    (
        "dataDir",
        "plexus keeps allocations in its store, not in files",
    ),
    (
        "resolvConf",
        "plexus-ipam does not read resolv.conf; set ipam.dns instead",
    ),
    ("leader_lease_duration", "plexus takes no cluster-wide lock"),
    ("leader_renew_deadline", "plexus takes no cluster-wide lock"),
    ("leader_retry_period", "plexus takes no cluster-wide lock"),
    (
        "reconciler_cron_expression",
        "the plexus garbage collector is configured elsewhere",
    ),
    ("sleep_for_race", "whereabouts test hook"),
    (
        "node_slice_size",
        "whereabouts node slices; plexus sizes per-node blocks with ipam.blocks",
    ),
];
/// whereabouts' datastore keys: without `store` they pick the plexus store (the etcd ones
/// name the plexus etcd store, the Kubernetes ones are refused), with `store` they are
/// ignored (`plexus_store::whereabouts`).
const DATASTORE_KEYS: &[&str] = &[
    "datastore",
    "kubernetes",
    "etcd_host",
    "etcd_username",
    "etcd_password",
    "etcd_key_file",
    "etcd_cert_file",
    "etcd_ca_cert_file",
];
/// Keys the plugin reads before this parser: where whereabouts' flat file is.
const FLAT_FILE_KEYS: &[&str] = &["configuration_path"];
/// Route keys of CNI 1.1 that plexus does not pass on yet.
const UNSUPPORTED_ROUTE_KEYS: &[&str] = &["mtu", "advmss", "priority", "table", "scope"];

/// The network every whereabouts-syntax configuration without a `network_name` shares
/// while `enable_overlapping_ranges` is on (whereabouts' default): an address is then held
/// at most once across all of them, as whereabouts' cluster-wide
/// OverlappingRangeIPReservations guarantee.
pub const WHEREABOUTS_SHARED_NETWORK: &str = "whereabouts.cluster";

/// The parsed IPAM section: what to allocate from and what to report.
#[derive(Debug, Clone, PartialEq)]
pub struct PoolConfig {
    /// The network the allocations are kept in (addresses are unique within it): the
    /// `network_name` if non-empty; for whereabouts syntax with overlapping-range
    /// protection on, else [`WHEREABOUTS_SHARED_NETWORK`]; else the netconf `name`. Where
    /// several configurations may share it (whereabouts syntax, protection on), every range
    /// set is [`RangeSet::shared_by`] the netconf `name`.
    pub network: String,
    /// The network this configuration's allocations were kept in before whereabouts
    /// overlapping-range protection (the netconf `name`), when that differs from
    /// [`PoolConfig::network`]: the plugin refuses to allocate while it still holds
    /// addresses, releases from it on DEL and collects it on GC.
    pub legacy_network: Option<String>,
    /// One address is allocated per set; never empty. Runtime `ipRanges` come first.
    pub range_sets: Vec<RangeSet>,
    /// Routes for the CNI result.
    pub routes: Vec<Route>,
    /// Passed through verbatim to the CNI result.
    pub dns: Option<Value>,
    /// whereabouts `addresses`: echoed into the result, not allocated.
    pub addresses: Vec<StaticAddress>,
    /// whereabouts `gateway` when it lies outside every range of its family (as in
    /// whereabouts' README IPv6 example): reported in the result for the addresses of its
    /// family, never reserved. `None` when a range holds the gateway (then it is that
    /// range's reserved [`crate::Range::gateway`]) and for host-local syntax.
    pub unreserved_gateway: Option<IpAddr>,
    /// The raw `store` object; another crate parses it.
    pub store: Option<Value>,
    /// whereabouts `enable_overlapping_ranges` (default true): with whereabouts syntax, an
    /// address is unique across every configuration sharing [`PoolConfig::network`].
    pub overlapping_ranges: bool,
    /// Per-node address blocks (`ipam.blocks`; enabled with the defaults when absent).
    pub blocks: BlockPolicy,
    /// Keys ignored and settings accepted but unused, one human-readable line each.
    pub warnings: Vec<String>,
}

/// A route for the CNI result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Route {
    /// Destination, host bits cleared.
    pub dst: IpNet,
    /// Next hop; `None` means the interface's gateway.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gw: Option<IpAddr>,
}

/// A fixed address from whereabouts `addresses`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StaticAddress {
    /// Interface address with its prefix (host bits kept).
    pub address: IpNet,
    /// Its gateway.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gateway: Option<IpAddr>,
}

/// A range set with the field paths it was written at.
pub(crate) struct ParsedSet {
    /// The set.
    pub(crate) set: RangeSet,
    /// Paths of its ranges, in order.
    pub(crate) paths: Vec<RangePaths>,
}

/// Which syntax the `ipam` object uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Syntax {
    /// `ranges` or the deprecated top-level `subnet`.
    HostLocal,
    /// `range` / `ipRanges`, or no range at all.
    Whereabouts,
}

/// Parse the IPAM section of a netconf.
///
/// `netconf_name` is the netconf's `name`; `ipam` its `ipam` object; `runtime_ip_ranges`
/// is `runtimeConfig.ipRanges` if the runtime sent it (host-local `ranges` shape), which is
/// prepended to the configured ranges as CNI conventions require.
pub fn parse_pool_config(
    netconf_name: &str,
    ipam: &Value,
    runtime_ip_ranges: Option<&Value>,
) -> Result<PoolConfig, ConfigError> {
    let ipam = as_object("", ipam, "an object")?;
    let mut warnings = Vec::new();
    warn_top_level_keys(ipam, &mut warnings);

    let syntax = detect_syntax(ipam)?;
    let mut sets = Vec::new();
    let mut unreserved_gateway = None;
    if let Some(runtime) = runtime_ip_ranges.filter(|v| !v.is_null()) {
        let path = "runtimeConfig.ipRanges";
        sets.extend(hostlocal::parse_range_sets(path, runtime, &mut warnings)?);
    }
    match syntax {
        Syntax::HostLocal => {
            if text_field(ipam, "subnet", "subnet")?.is_some() {
                // Deprecated single range at the top level, prepended as host-local does.
                let (range, paths) = hostlocal::parse_range("", ipam, &mut warnings)?;
                let set = RangeSet::new(vec![range])
                    .map_err(|e| json::set_error(std::slice::from_ref(&paths), &e))?;
                sets.push(ParsedSet {
                    set,
                    paths: vec![paths],
                });
            }
            if let Some(ranges) = field(ipam, "ranges") {
                sets.extend(hostlocal::parse_range_sets(
                    "ranges",
                    ranges,
                    &mut warnings,
                )?);
            }
        }
        Syntax::Whereabouts => {
            let parsed = whereabouts::parse_range_sets(ipam, &mut warnings)?;
            sets.extend(parsed.sets);
            unreserved_gateway = parsed.unreserved_gateway;
        }
    }
    if sets.is_empty() {
        return Err(no_range_error(ipam));
    }
    check_size_limits(&sets, syntax)?;
    check_sets_disjoint(&sets)?;
    let range_sets: Vec<RangeSet> = sets.into_iter().map(|p| p.set).collect();

    let overlapping_ranges = match field(ipam, "enable_overlapping_ranges") {
        Some(v) => v
            .as_bool()
            .ok_or_else(|| wrong_type("enable_overlapping_ranges", v, "true or false"))?,
        None => true,
    };
    let keying = pool_keying(
        netconf_name,
        text_field(ipam, "network_name", "network_name")?,
        syntax == Syntax::Whereabouts && has_whereabouts_ranges(ipam) && overlapping_ranges,
    )?;
    let range_sets = match &keying.shared_by {
        Some(name) => range_sets.into_iter().map(|s| s.shared_by(name)).collect(),
        None => range_sets,
    };
    let routes = match field(ipam, "routes") {
        Some(v) => parse_routes(v, &mut warnings)?,
        None => Vec::new(),
    };
    let addresses = match field(ipam, "addresses") {
        Some(v) => parse_addresses(v, &range_sets, &mut warnings)?,
        None => Vec::new(),
    };
    let blocks = blocks::parse_blocks(ipam, &mut warnings)?;
    Ok(PoolConfig {
        network: keying.network,
        legacy_network: keying.legacy_network,
        range_sets,
        routes,
        dns: object_field(
            ipam,
            "dns",
            "an object like {\"nameservers\": [\"10.0.0.53\"]}",
        )?,
        addresses,
        unreserved_gateway,
        store: object_field(ipam, "store", "an object like {\"type\": \"sqlite\"}")?,
        overlapping_ranges,
        blocks,
        warnings,
    })
}

/// Whether the section names whereabouts ranges (`range` or `ipRanges`): only those
/// configurations share [`WHEREABOUTS_SHARED_NETWORK`].
fn has_whereabouts_ranges(ipam: &Object) -> bool {
    field(ipam, "range").is_some_and(|v| !v.is_null())
        || field(ipam, "ipRanges").is_some_and(|v| !v.is_null())
}

/// The network an `ipam` section keeps its allocations in and, when it moved there with
/// whereabouts overlapping-range protection, the network it used before: what DEL needs,
/// read leniently (a malformed key falls back to its default) so that a config edited
/// into something invalid still releases.
pub fn allocation_networks(netconf_name: &str, ipam: &Value) -> Option<(String, Option<String>)> {
    let ipam = ipam.as_object()?;
    let network_name = field(ipam, "network_name")
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|s| !s.is_empty());
    let host_local = field(ipam, "ranges").is_some() || field(ipam, "subnet").is_some();
    let overlapping = field(ipam, "enable_overlapping_ranges")
        .and_then(Value::as_bool)
        .unwrap_or(true);
    let protected = !host_local && has_whereabouts_ranges(ipam) && overlapping;
    pool_keying(netconf_name, network_name, protected)
        .ok()
        .map(|k| (k.network, k.legacy_network))
}

/// Where a configuration's allocations are kept: see [`PoolConfig::network`].
#[derive(Debug, Clone, PartialEq, Eq)]
struct Keying {
    network: String,
    legacy_network: Option<String>,
    shared_by: Option<String>,
}

/// The [`Keying`] of a configuration named `netconf_name` with `network_name`, where
/// `protected` says whether whereabouts overlapping-range protection applies (whereabouts
/// syntax with `enable_overlapping_ranges` on).
fn pool_keying(
    netconf_name: &str,
    network_name: Option<&str>,
    protected: bool,
) -> Result<Keying, ConfigError> {
    let shared_by = (protected && !netconf_name.is_empty()).then(|| netconf_name.to_string());
    match network_name {
        Some(name) => Ok(Keying {
            network: name.to_owned(),
            legacy_network: None,
            shared_by,
        }),
        None if netconf_name.is_empty() => Err(ConfigError::new(
            "network_name",
            "",
            "the netconf has no name: set \"name\" (or ipam.network_name) to name the pool",
        )),
        None if protected => Ok(Keying {
            network: WHEREABOUTS_SHARED_NETWORK.to_owned(),
            legacy_network: Some(netconf_name.to_owned()),
            shared_by,
        }),
        None => Ok(Keying {
            network: netconf_name.to_owned(),
            legacy_network: None,
            shared_by: None,
        }),
    }
}

/// Tell the syntaxes apart, refusing keys of the other syntax that would otherwise be
/// silently ignored (an ignored `exclude` or `rangeStart` hands out unintended addresses).
fn detect_syntax(ipam: &Object) -> Result<Syntax, ConfigError> {
    let present = |key: &str| match field(ipam, key) {
        Some(Value::String(s)) => !s.is_empty(),
        Some(_) => true,
        None => false,
    };
    let host_local = present("ranges") || present("subnet");
    let refuse = |key: &str, reason: &str| {
        let value = field(ipam, key).map(render).unwrap_or_default();
        Err(ConfigError::new(key, value, reason))
    };
    if host_local {
        for key in ["range", "ipRanges"] {
            if present(key) {
                return refuse(
                    key,
                    "whereabouts syntax cannot be combined with host-local ipam.ranges/ipam.subnet; \
                     use one syntax",
                );
            }
        }
        if present("range_start") || present("range_end") {
            let key = if present("range_start") {
                "range_start"
            } else {
                "range_end"
            };
            return refuse(
                key,
                "host-local syntax uses rangeStart/rangeEnd inside each range",
            );
        }
        if present("exclude") {
            return refuse(
                "exclude",
                "with ipam.ranges, put exclude inside each range object",
            );
        }
        if present("gateway") && !present("subnet") {
            return refuse(
                "gateway",
                "with ipam.ranges, give each range object its own gateway",
            );
        }
        return Ok(Syntax::HostLocal);
    }
    for key in ["rangeStart", "rangeEnd"] {
        if present(key) {
            return refuse(
                key,
                "host-local key without ipam.subnet; with ipam.range use range_start/range_end",
            );
        }
    }
    Ok(Syntax::Whereabouts)
}

/// The error for a config that names no range at all.
fn no_range_error(ipam: &Object) -> ConfigError {
    let reason = "no address range configured: set ipam.range or ipam.ipRanges (whereabouts \
                  syntax) or ipam.ranges (host-local syntax)";
    for key in ["ranges", "ipRanges"] {
        if let Some(v) = field(ipam, key) {
            return ConfigError::new(key, render(v), reason);
        }
    }
    ConfigError::new("range", "", reason)
}

/// Range sets must not share candidate addresses.
/// Refuses pools beyond [`MAX_RANGE_SETS`] sets or [`MAX_RANGES_PER_SET`] ranges per set.
fn check_size_limits(sets: &[ParsedSet], syntax: Syntax) -> Result<(), ConfigError> {
    let key = match syntax {
        Syntax::HostLocal => "ranges",
        Syntax::Whereabouts => "ipRanges",
    };
    if sets.len() > MAX_RANGE_SETS {
        return Err(ConfigError::new(
            key,
            format!("{} range sets", sets.len()),
            format!("a pool may have at most {MAX_RANGE_SETS} range sets"),
        ));
    }
    if let Some((index, set)) = sets
        .iter()
        .enumerate()
        .find(|(_, parsed)| parsed.set.ranges.len() > MAX_RANGES_PER_SET)
    {
        return Err(ConfigError::new(
            format!("{key}[{index}]"),
            format!("{} ranges", set.set.ranges.len()),
            format!("a range set may have at most {MAX_RANGES_PER_SET} ranges"),
        ));
    }
    Ok(())
}

fn check_sets_disjoint(sets: &[ParsedSet]) -> Result<(), ConfigError> {
    // The first earlier set sharing an address with each later set, found per range in
    // O(log n), so thousands of sets do not cost a scan of every pair.
    let mut spans = DisjointSpans::default();
    for (j, later) in sets.iter().enumerate() {
        let first = later.set.ranges.iter();
        let first = first.filter_map(|range| spans.first_overlap(range)).min();
        if let Some(earlier) = first.map(|i| &sets[i])
            && let Some((a, b)) = earlier.set.overlap_with(&later.set)
        {
            return Err(ConfigError::new(
                later.paths[b].object.clone(),
                later.set.ranges[b].id(),
                format!(
                    "overlaps {} ({}); range sets must not share addresses",
                    qualified(&earlier.paths[a].object),
                    earlier.set.ranges[a].id()
                ),
            ));
        }
        for range in &later.set.ranges {
            spans.insert(range, j);
        }
    }
    Ok(())
}

/// An optional object passed through verbatim.
fn object_field(ipam: &Object, key: &str, expected: &str) -> Result<Option<Value>, ConfigError> {
    field(ipam, key)
        .map(|v| as_object(key, v, expected).map(|_| v.clone()))
        .transpose()
}

/// Warn about top-level keys that are unknown or accepted without effect.
fn warn_top_level_keys(ipam: &Object, warnings: &mut Vec<String>) {
    let has_store = field(ipam, "store").is_some();
    for key in ipam.keys() {
        let known = [
            PLEXUS_KEYS,
            POOL_KEYS,
            HOST_LOCAL_KEYS,
            WHEREABOUTS_KEYS,
            FLAT_FILE_KEYS,
        ]
        .iter()
        .any(|keys| keys.contains(&key.as_str()));
        if known {
            continue;
        }
        if DATASTORE_KEYS.contains(&key.as_str()) {
            if has_store && field(ipam, key).is_some() {
                warnings.push(format!(
                    "ipam.{key} is ignored: ipam.store is set, and it wins over whereabouts' \
                     datastore keys"
                ));
            }
            continue;
        }
        match UNUSED_KEYS.iter().find(|(k, _)| k == key) {
            Some((_, why)) => warnings.push(format!("ipam.{key} is ignored: {why}")),
            None => warnings.push(format!("ipam.{key} is not a recognised key; ignored")),
        }
    }
}

/// Warn about keys of the object at `path` that are not in `known`.
pub(crate) fn warn_unknown_keys(
    path: &str,
    obj: &Object,
    known: &[&str],
    warnings: &mut Vec<String>,
) {
    for key in obj.keys().filter(|k| !known.contains(&k.as_str())) {
        let shown = qualified(&join(path, key));
        warnings.push(format!("{shown} is not a recognised key; ignored"));
    }
}

/// Warn about exclusions that will not do what they look like they do.
pub(crate) fn note_exclusions(
    path: &str,
    nets: &[IpNet],
    subnet: &IpNet,
    warnings: &mut Vec<String>,
) {
    for (i, net) in nets.iter().enumerate() {
        let shown = qualified(&format!("{path}[{i}]"));
        if *net != net.trunc() {
            warnings.push(format!(
                "{shown} {net} has host bits set; all of {} is excluded",
                net.trunc()
            ));
        }
        let same_family = Family::of_net(net) == Family::of_net(subnet);
        let overlaps = first_key(net) <= last_key(subnet) && first_key(subnet) <= last_key(net);
        if same_family && !overlaps {
            warnings.push(format!(
                "{shown} {net} lies outside subnet {subnet} and has no effect"
            ));
        }
    }
}

/// Parse `routes`: a list of `{dst, gw?}`.
fn parse_routes(value: &Value, warnings: &mut Vec<String>) -> Result<Vec<Route>, ConfigError> {
    let items = as_array("routes", value, "a list of {dst, gw}")?;
    let mut routes = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let path = format!("routes[{i}]");
        let obj = as_object(&path, item, "a route like {\"dst\": \"0.0.0.0/0\"}")?;
        for key in obj.keys().filter(|k| *k != "dst" && *k != "gw") {
            let shown = qualified(&join(&path, key));
            if UNSUPPORTED_ROUTE_KEYS.contains(&key.as_str()) {
                warnings.push(format!("{shown} is not supported yet; ignored"));
            } else {
                warnings.push(format!("{shown} is not a recognised key; ignored"));
            }
        }
        let dst_path = join(&path, "dst");
        let text = text_field(obj, "dst", &dst_path)?
            .ok_or_else(|| ConfigError::new(&dst_path, "", "a route needs a dst CIDR"))?;
        let dst = parse_cidr(&dst_path, text)?;
        if dst != dst.trunc() {
            warnings.push(format!(
                "{} {dst} has host bits set; using {}",
                qualified(&dst_path),
                dst.trunc()
            ));
        }
        let gw_path = join(&path, "gw");
        let gw = ip_field(obj, "gw", &gw_path)?;
        check_gateway_family(&gw_path, gw, &dst, "destination")?;
        routes.push(Route {
            dst: dst.trunc(),
            gw,
        });
    }
    Ok(routes)
}

/// Parse whereabouts `addresses`: a list of `{address, gateway?}`.
fn parse_addresses(
    value: &Value,
    sets: &[RangeSet],
    warnings: &mut Vec<String>,
) -> Result<Vec<StaticAddress>, ConfigError> {
    let items = as_array("addresses", value, "a list of {address, gateway}")?;
    let mut addresses = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let path = format!("addresses[{i}]");
        let obj = as_object(&path, item, "an object like {\"address\": \"10.0.0.5/24\"}")?;
        warn_unknown_keys(&path, obj, &["address", "gateway"], warnings);
        let addr_path = join(&path, "address");
        let text = text_field(obj, "address", &addr_path)?.ok_or_else(|| {
            ConfigError::new(
                &addr_path,
                "",
                "needs an address with prefix, e.g. 10.0.0.5/24",
            )
        })?;
        let address = parse_cidr(&addr_path, text)?;
        let gw_path = join(&path, "gateway");
        let gateway = ip_field(obj, "gateway", &gw_path)?;
        check_gateway_family(&gw_path, gateway, &address, "address")?;
        if sets.iter().any(|s| s.is_allocatable(address.addr())) {
            warnings.push(format!(
                "{} {address} lies inside a dynamic range and may also be handed out \
                 dynamically; exclude it",
                qualified(&addr_path)
            ));
        }
        addresses.push(StaticAddress { address, gateway });
    }
    Ok(addresses)
}

/// A gateway must be of the same family as the network it serves.
fn check_gateway_family(
    path: &str,
    gw: Option<IpAddr>,
    net: &IpNet,
    what: &str,
) -> Result<(), ConfigError> {
    match gw {
        Some(gw) if Family::of(gw) != Family::of_net(net) => Err(ConfigError::new(
            path,
            gw.to_string(),
            format!(
                "gateway is IPv{} but {what} {net} is IPv{}",
                Family::of(gw),
                Family::of_net(net)
            ),
        )),
        _ => Ok(()),
    }
}
