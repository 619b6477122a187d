//! Static address requests (CNI_ARGS `IP=`, `args.cni.ips`, `runtimeConfig.ips`).

use std::net::IpAddr;

use crate::addr::{canonical, net_contains};
use crate::error::StaticError;
use crate::range::{Range, RangeSet};

/// Which range set (index) a statically requested address belongs to.
///
/// A range whose start..end holds the address wins; otherwise any range whose subnet holds it
/// (static addresses may lie outside start..end). The address must be neither reserved
/// (network, IPv4 broadcast, gateway) nor excluded; the error names the address and why.
pub fn place_static(sets: &[RangeSet], ip: IpAddr) -> Result<usize, StaticError> {
    let ip = canonical(ip);
    let in_subnet = |r: &Range| net_contains(&r.subnet, ip);
    let holders = || {
        sets.iter()
            .enumerate()
            .flat_map(|(i, set)| set.ranges.iter().map(move |r| (i, r)))
    };
    let preferred = holders()
        .filter(|(_, r)| r.in_bounds(ip))
        .chain(holders().filter(|(_, r)| in_subnet(r)));
    let mut refusal = None;
    for (index, range) in preferred {
        if range.accepts_static(ip) {
            return Ok(index);
        }
        refusal.get_or_insert_with(|| refusal_reason(range, ip));
    }
    Err(refusal.unwrap_or(StaticError::NotInAnyRange(ip)))
}

/// Why `range`, whose subnet holds `ip`, refuses it.
fn refusal_reason(range: &Range, ip: IpAddr) -> StaticError {
    if let Some(what) = range.reserved_as(ip) {
        StaticError::Reserved { ip, what }
    } else if let Some(by) = range.excluded_by(ip) {
        StaticError::Excluded { ip, by }
    } else {
        StaticError::NotInAnyRange(ip)
    }
}
