//! host-local syntax: `ranges` (a list of range sets), the runtime `ipRanges` capability in
//! the same shape, and the deprecated single range at the top of `ipam`.
//!
//! As host-local does, a range without `gateway` gets network + 1 as its gateway, which is
//! then reserved and reported. plexus also accepts `exclude` in a range object.

use serde_json::Value;

use super::json::{
    Object, RangePaths, as_array, as_object, cidr_list, field, ip_field, join, parse_cidr,
    set_error, text_field,
};
use super::{ParsedSet, note_exclusions, warn_unknown_keys};
use crate::addr;
use crate::error::ConfigError;
use crate::range::{Range, RangeSet};

/// Keys of a host-local range object.
pub(crate) const RANGE_KEYS: &[&str] = &["subnet", "rangeStart", "rangeEnd", "gateway", "exclude"];

/// Parse a list of range sets (`ranges` or `runtimeConfig.ipRanges`) found at `path`.
pub(crate) fn parse_range_sets(
    path: &str,
    value: &Value,
    warnings: &mut Vec<String>,
) -> Result<Vec<ParsedSet>, ConfigError> {
    let expected = "a list of range sets, each a list of {subnet, rangeStart, rangeEnd, gateway}";
    let sets = as_array(path, value, expected)?;
    let mut parsed = Vec::with_capacity(sets.len());
    for (s, set) in sets.iter().enumerate() {
        let set_path = format!("{path}[{s}]");
        let members = as_array(&set_path, set, "a list of range objects")?;
        if members.is_empty() {
            return Err(ConfigError::new(
                set_path,
                "[]",
                "a range set needs at least one range",
            ));
        }
        let mut ranges = Vec::with_capacity(members.len());
        let mut paths = Vec::with_capacity(members.len());
        for (r, member) in members.iter().enumerate() {
            let range_path = format!("{set_path}[{r}]");
            let obj = as_object(&range_path, member, "a range object like {\"subnet\": ...}")?;
            warn_unknown_keys(&range_path, obj, RANGE_KEYS, warnings);
            let (range, range_paths) = parse_range(&range_path, obj, warnings)?;
            ranges.push(range);
            paths.push(range_paths);
        }
        let set = RangeSet::new(ranges).map_err(|e| set_error(&paths, &e))?;
        parsed.push(ParsedSet { set, paths });
    }
    Ok(parsed)
}

/// Parse one range object at `path` (`""` for the deprecated top-level range).
pub(crate) fn parse_range(
    path: &str,
    obj: &Object,
    warnings: &mut Vec<String>,
) -> Result<(Range, RangePaths), ConfigError> {
    let paths = RangePaths {
        object: if path.is_empty() {
            "subnet".into()
        } else {
            path.into()
        },
        subnet: join(path, "subnet"),
        start: join(path, "rangeStart"),
        end: join(path, "rangeEnd"),
        gateway: join(path, "gateway"),
        exclude: join(path, "exclude"),
    };
    let subnet_text = text_field(obj, "subnet", &paths.subnet)?.ok_or_else(|| {
        ConfigError::new(
            &paths.subnet,
            "",
            "a range needs a subnet, e.g. 10.0.0.0/24",
        )
    })?;
    let subnet = parse_cidr(&paths.subnet, subnet_text)?;
    let start = ip_field(obj, "rangeStart", &paths.start)?;
    let end = ip_field(obj, "rangeEnd", &paths.end)?;
    // host-local claims network + 1 as gateway when none is given.
    let gateway = match ip_field(obj, "gateway", &paths.gateway)? {
        Some(gw) => Some(gw),
        None => addr::checked_add(subnet.network(), 1),
    };
    let exclude = match field(obj, "exclude") {
        Some(v) => cidr_list(&paths.exclude, v)?,
        None => Vec::new(),
    };
    note_exclusions(&paths.exclude, &exclude, &subnet.trunc(), warnings);
    let range = Range::new(subnet, start, end, gateway, exclude).map_err(|e| paths.error(&e))?;
    Ok((range, paths))
}
