//! plexus' own rules (`spec.plexus`): exclusions, reserved addresses, per-node block sizes.

use std::net::IpAddr;

use ipnet::IpNet;
use plexus_ipam_core::Family;
use plexus_ipam_core::addr::{first_key, last_key, net_contains};

use super::addressing::{Fields, MAX_V4_PREFIX, MAX_V6_PREFIX, Side, V4, V6};
use super::{Checker, Rule};
use crate::network::PlexusOptions;
use crate::parse::parse_cidr;

/// Largest per-node IPv4 block: a /20 (4096 addresses), as the allocator's `ipam.blocks`.
pub const MIN_V4_BLOCK: u8 = 20;
/// Largest per-node IPv6 block: a /116 (4096 addresses), as the allocator's `ipam.blocks`.
pub const MIN_V6_BLOCK: u8 = 116;

/// plexus settings of one family.
#[derive(Debug, Default)]
pub(super) struct Extras {
    /// Exclusions.
    pub(super) exclude: Vec<IpNet>,
    /// Reserved addresses.
    pub(super) reserved: Vec<IpAddr>,
    /// Block prefix length.
    pub(super) block_size: Option<u8>,
}

/// plexus settings of both families.
#[derive(Debug, Default)]
pub(super) struct BothExtras {
    /// IPv4.
    pub(super) v4: Extras,
    /// IPv6.
    pub(super) v6: Extras,
}

/// `spec.plexus`: exclusions and reserved addresses fall inside their family's network;
/// block sizes lie between the network's prefix and the address length.
pub(super) fn check(c: &mut Checker, p: &PlexusOptions, v4: &Side, v6: &Side) -> BothExtras {
    let mut out = BothExtras::default();
    let side_of = |family: Family| match family {
        Family::V4 => (v4, &V4),
        Family::V6 => (v6, &V6),
    };
    for (i, text) in p.exclude.iter().enumerate() {
        let path = format!("spec.plexus.exclude[{i}]");
        let Some(net) = parse_cidr(text) else {
            c.report(
                Rule::ExcludeInvalid,
                path,
                text,
                "not a CIDR; write e.g. 10.0.0.0/28, or 10.0.0.7/32 for one address",
            );
            continue;
        };
        let family = Family::of_net(&net);
        let (side, fields) = side_of(family);
        let net = net.trunc();
        if !side.configured {
            c.report(
                Rule::ExcludeOutside,
                path,
                text,
                format!("an IPv{family} exclusion needs {}", fields.network),
            );
            continue;
        }
        let Some(network) = side.network else {
            continue;
        };
        let overlaps =
            first_key(&net) <= last_key(&network) && first_key(&network) <= last_key(&net);
        if !overlaps {
            c.report(
                Rule::ExcludeOutside,
                path,
                text,
                format!(
                    "lies outside {} {network} and would exclude nothing",
                    fields.network
                ),
            );
            continue;
        }
        match family {
            Family::V4 => out.v4.exclude.push(net),
            Family::V6 => out.v6.exclude.push(net),
        }
    }
    for (i, text) in p.reserved.iter().enumerate() {
        let path = format!("spec.plexus.reserved[{i}]");
        let Ok(ip) = text.parse::<IpAddr>() else {
            c.report(Rule::ReservedInvalid, path, text, "not an IP address");
            continue;
        };
        let family = Family::of(ip);
        let (side, fields) = side_of(family);
        if !side.configured {
            c.report(
                Rule::ReservedOutside,
                path,
                text,
                format!("an IPv{family} reserved address needs {}", fields.network),
            );
            continue;
        }
        let Some(network) = side.network else {
            continue;
        };
        if !net_contains(&network, ip) {
            c.report(
                Rule::ReservedOutside,
                path,
                text,
                format!("must lie inside {} {network}", fields.network),
            );
            continue;
        }
        match family {
            Family::V4 => out.v4.reserved.push(ip),
            Family::V6 => out.v6.reserved.push(ip),
        }
    }
    out.v4.block_size = check_block_size(c, "block_size", p.block_size, v4, &V4);
    out.v6.block_size = check_block_size(c, "block_size6", p.block_size6, v6, &V6);
    out
}

/// A block prefix length between the allocation CIDR's prefix and the address length.
fn check_block_size(
    c: &mut Checker,
    name: &str,
    value: Option<i64>,
    side: &Side,
    fields: &Fields,
) -> Option<u8> {
    let size = value?;
    let path = format!("spec.plexus.{name}");
    if !side.configured {
        c.report(
            Rule::BlockSizeInvalid,
            path,
            size.to_string(),
            format!("a block size needs {}", fields.network),
        );
        return None;
    }
    let cidr = side.allocation_cidr?;
    // The allocator's `ipam.blocks` accepts /20../30 and /116../126; a block never spans
    // more than the allocation CIDR.
    let (lo, hi) = match fields.family {
        Family::V4 => (MIN_V4_BLOCK.max(cidr.prefix_len()), MAX_V4_PREFIX),
        Family::V6 => (MIN_V6_BLOCK.max(cidr.prefix_len()), MAX_V6_PREFIX),
    };
    match u8::try_from(size) {
        Ok(prefix) if (lo..=hi).contains(&prefix) => Some(prefix),
        _ => {
            c.report(
                Rule::BlockSizeInvalid,
                path,
                size.to_string(),
                format!("a block is a prefix length from {lo} to {hi} (inside {cidr})"),
            );
            None
        }
    }
}
