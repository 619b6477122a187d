//! whereabouts syntax: `range` (+ `range_start`, `range_end`, `exclude`), `ipRanges`, and
//! the top-level `gateway`.
//!
//! Differences from whereabouts, all in the direction of refusing what would silently hand
//! out unintended addresses: a `range_start`/`range_end` outside the subnet or inverted is an
//! error (whereabouts ignores it), the gateway is reserved (whereabouts may hand it out), and
//! `range_start`/`range_end`/`exclude` without a top-level `range` are errors.
//!
//! A gateway outside every range (whereabouts' own README example: range `2001::0/116`,
//! gateway `2001::f:1`) works as in whereabouts: reported in the result for the addresses
//! of its family, not reserved (it cannot be handed out anyway), with a warning. Only a
//! gateway of a family no range has is refused.

use std::net::IpAddr;

use super::json::{
    Object, RangePaths, as_array, as_object, cidr_list, field, ip_field, join, parse_cidr,
    parse_ip, set_error, text_field,
};
use super::{ParsedSet, note_exclusions, warn_unknown_keys};
use crate::addr::{Family, net_contains};
use crate::error::ConfigError;
use crate::range::{Range, RangeSet};
use ipnet::IpNet;

/// Keys of an `ipRanges` entry.
const ENTRY_KEYS: &[&str] = &["range", "range_start", "range_end", "exclude"];

/// Example of the accepted `range` forms, for error messages.
const RANGE_FORMS: &str =
    "expected a CIDR like 10.0.0.0/24 or start-end/prefix like 10.0.0.5-10.0.0.50/24";

/// A range as written, before the gateway is attached.
struct Spec {
    /// Subnet, host bits cleared.
    subnet: IpNet,
    /// Explicit start.
    start: Option<IpAddr>,
    /// Explicit end.
    end: Option<IpAddr>,
    /// Exclusions as written.
    exclude: Vec<IpNet>,
    /// Where each part was written.
    paths: RangePaths,
}

/// The range sets of a whereabouts-style `ipam` object, and its gateway when no range
/// holds it.
pub(crate) struct Parsed {
    /// The top-level `range` (if any) as set 0, then one set per `ipRanges` entry.
    pub(crate) sets: Vec<ParsedSet>,
    /// The top-level `gateway` when it lies outside every range of its family: reported,
    /// not reserved.
    pub(crate) unreserved_gateway: Option<IpAddr>,
}

/// Parse the range sets of a whereabouts-style `ipam` object: the top-level `range` (if any)
/// as set 0, then one set per `ipRanges` entry.
pub(crate) fn parse_range_sets(
    ipam: &Object,
    warnings: &mut Vec<String>,
) -> Result<Parsed, ConfigError> {
    let mut specs = Vec::new();
    if text_field(ipam, "range", "range")?.is_some() {
        specs.push(parse_spec("", ipam, warnings)?);
    } else {
        for key in ["range_start", "range_end", "exclude"] {
            if let Some(v) = field(ipam, key) {
                return Err(ConfigError::new(
                    key,
                    super::json::render(v),
                    format!(
                        "{key} only applies to ipam.range, which is not set; \
                         inside ipRanges give each entry its own {key}"
                    ),
                ));
            }
        }
    }
    if let Some(list) = field(ipam, "ipRanges") {
        let entries = as_array(
            "ipRanges",
            list,
            "a list of {range, range_start, range_end, exclude}",
        )?;
        for (i, entry) in entries.iter().enumerate() {
            let path = format!("ipRanges[{i}]");
            let obj = as_object(&path, entry, "an object like {\"range\": \"10.0.0.0/24\"}")?;
            warn_unknown_keys(&path, obj, ENTRY_KEYS, warnings);
            specs.push(parse_spec(&path, obj, warnings)?);
        }
    }

    let gateway = ip_field(ipam, "gateway", "gateway")?;
    let takes_gateway = |spec: &Spec| {
        gateway.is_some_and(|gw| {
            Family::of(gw) == Family::of_net(&spec.subnet) && net_contains(&spec.subnet, gw)
        })
    };
    let mut unreserved_gateway = None;
    if let Some(gw) = gateway
        && !specs.iter().any(takes_gateway)
    {
        let family = |spec: &Spec| Family::of_net(&spec.subnet) == Family::of(gw);
        if !specs.iter().any(family) {
            return Err(gateway_error(gw, &specs));
        }
        let ranges: Vec<String> = specs
            .iter()
            .filter(|s| family(s))
            .map(|s| s.subnet.to_string())
            .collect();
        warnings.push(format!(
            "ipam.gateway {gw} lies outside {}: reported in the result as whereabouts does, \
             not reserved; check that the node can reach it",
            ranges.join(", ")
        ));
        unreserved_gateway = Some(gw);
    }

    let mut parsed = Vec::with_capacity(specs.len());
    for spec in specs {
        let gw = if takes_gateway(&spec) { gateway } else { None };
        let range = Range::new(spec.subnet, spec.start, spec.end, gw, spec.exclude)
            .map_err(|e| spec.paths.error(&e))?;
        let paths = vec![spec.paths];
        let set = RangeSet::new(vec![range]).map_err(|e| set_error(&paths, &e))?;
        parsed.push(ParsedSet { set, paths });
    }
    Ok(Parsed {
        sets: parsed,
        unreserved_gateway,
    })
}

/// Why a `gateway` fits no range: the range's own error when there is one range.
fn gateway_error(gw: IpAddr, specs: &[Spec]) -> ConfigError {
    if let [only] = specs {
        // Building the range with the gateway yields the precise reason (family, outside).
        if let Err(e) = Range::new(only.subnet, only.start, only.end, Some(gw), Vec::new()) {
            return only.paths.error(&e);
        }
    }
    let ranges: Vec<String> = specs.iter().map(|s| s.subnet.to_string()).collect();
    let reason = if ranges.is_empty() {
        "a gateway needs ipam.range or ipam.ipRanges".to_owned()
    } else {
        format!("not inside any configured range ({})", ranges.join(", "))
    };
    ConfigError::new("gateway", gw.to_string(), reason)
}

/// Parse `range`, `range_start`, `range_end`, `exclude` of the object at `path`.
fn parse_spec(path: &str, obj: &Object, warnings: &mut Vec<String>) -> Result<Spec, ConfigError> {
    let range_path = join(path, "range");
    let mut paths = RangePaths {
        object: if path.is_empty() {
            "range".into()
        } else {
            path.into()
        },
        subnet: range_path.clone(),
        start: join(path, "range_start"),
        end: join(path, "range_end"),
        gateway: "gateway".into(),
        exclude: join(path, "exclude"),
    };
    let text = text_field(obj, "range", &range_path)?.ok_or_else(|| {
        ConfigError::new(
            &range_path,
            "",
            format!("each ipRanges entry needs a range; {RANGE_FORMS}"),
        )
    })?;
    let mut start = ip_field(obj, "range_start", &paths.start)?;
    let mut end = ip_field(obj, "range_end", &paths.end)?;

    let subnet = match text.split_once('-') {
        Some((first, rest)) => {
            let (from, to, subnet) = parse_dash_form(&range_path, text, first, rest)?;
            for (explicit, given, key_path) in [(start, from, &paths.start), (end, to, &paths.end)]
            {
                if explicit.is_some_and(|ip| ip != given) {
                    return Err(ConfigError::new(
                        key_path.clone(),
                        explicit.map(|ip| ip.to_string()).unwrap_or_default(),
                        format!(
                            "conflicts with ipam.{range_path} \"{text}\", which already sets it"
                        ),
                    ));
                }
            }
            start = Some(from);
            end = Some(to);
            // Errors about start or end now point at the `range` string that set them.
            paths.start = range_path.clone();
            paths.end = range_path.clone();
            subnet
        }
        None => parse_cidr(&range_path, text)
            .map_err(|mut e| {
                e.reason = format!("not a valid range: {RANGE_FORMS}");
                e
            })?
            .trunc(),
    };

    let exclude = match field(obj, "exclude") {
        Some(v) => cidr_list(&paths.exclude, v)?,
        None => Vec::new(),
    };
    note_exclusions(&paths.exclude, &exclude, &subnet, warnings);
    Ok(Spec {
        subnet,
        start,
        end,
        exclude,
        paths,
    })
}

/// `first-rest` where `rest` is `end/prefix`: start, end, and the subnet of start/prefix.
fn parse_dash_form(
    path: &str,
    text: &str,
    first: &str,
    rest: &str,
) -> Result<(IpAddr, IpAddr, IpNet), ConfigError> {
    let bad = |why: &str| ConfigError::new(path, text, format!("{why}; {RANGE_FORMS}"));
    let from =
        parse_ip(path, first).map_err(|_| bad("the part before '-' is not an IP address"))?;
    let net = parse_cidr(path, rest).map_err(|_| bad("the part after '-' is not end/prefix"))?;
    if Family::of(from) != Family::of(net.addr()) {
        return Err(bad("start and end are of different IP families"));
    }
    // Same family, so the prefix length is valid for the start address too.
    let subnet = IpNet::new(from, net.prefix_len())
        .map_err(|_| bad("the prefix length does not fit the address family"))?;
    Ok((from, net.addr(), subnet.trunc()))
}
