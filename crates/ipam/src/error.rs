//! Error types: range validation, static requests, and the netconf parser's field-level error.

use std::fmt;
use std::net::IpAddr;

use ipnet::IpNet;

use crate::addr::Family;

/// Which part of a range (or range set) a [`RangeError`] is about. The config parser maps it
/// to the field path of the syntax the user wrote (`rangeStart`, `range_start`, ...).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RangeField {
    /// The subnet (`subnet` / `range`).
    Subnet,
    /// The first allocatable candidate (`rangeStart` / `range_start`).
    Start,
    /// The last allocatable candidate (`rangeEnd` / `range_end`).
    End,
    /// The gateway.
    Gateway,
    /// The exclusion at this index.
    Exclude(usize),
    /// The whole range at this index of a range set.
    Range(usize),
}

impl fmt::Display for RangeField {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RangeField::Subnet => f.write_str("subnet"),
            RangeField::Start => f.write_str("range start"),
            RangeField::End => f.write_str("range end"),
            RangeField::Gateway => f.write_str("gateway"),
            RangeField::Exclude(i) => write!(f, "exclude[{i}]"),
            RangeField::Range(i) => write!(f, "range[{i}]"),
        }
    }
}

/// Why a [`crate::Range`] or [`crate::RangeSet`] could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RangeError {
    /// The subnet is not a network address.
    #[error("subnet {subnet} has host bits set; the network is {network}")]
    HostBitsSet {
        /// The subnet as given.
        subnet: IpNet,
        /// The same subnet with host bits cleared.
        network: IpNet,
    },
    /// IPv4 /31 and /32, IPv6 /127 and /128 leave nothing to hand out.
    #[error(
        "subnet {0} is too small to allocate from: IPv4 needs /30 or shorter, IPv6 /126 or shorter"
    )]
    TooSmall(IpNet),
    /// IPv6 subnets may not touch `::ffff:0:0/96`, where IPv4 keys live.
    #[error(
        "subnet {0} overlaps ::ffff:0:0/96 (IPv4-mapped IPv6 addresses), which cannot be \
         allocated as IPv6"
    )]
    V4MappedOverlap(IpNet),
    /// An address of the other family.
    #[error("{field} {ip} is IPv{} but subnet {subnet} is IPv{}", Family::of(*.ip), Family::of_net(.subnet))]
    WrongFamily {
        /// Which address.
        field: RangeField,
        /// The address.
        ip: IpAddr,
        /// The range's subnet.
        subnet: IpNet,
    },
    /// An address outside the subnet.
    #[error("{field} {ip} is outside subnet {subnet}")]
    OutsideSubnet {
        /// Which address.
        field: RangeField,
        /// The address.
        ip: IpAddr,
        /// The range's subnet.
        subnet: IpNet,
    },
    /// Start after end.
    #[error("range start {start} is after range end {end}")]
    StartAfterEnd {
        /// The first candidate.
        start: IpAddr,
        /// The last candidate.
        end: IpAddr,
    },
    /// The gateway is the network or broadcast address.
    #[error("gateway {gateway} is the {what} of {subnet}")]
    GatewayReserved {
        /// The gateway.
        gateway: IpAddr,
        /// "network address" or "broadcast address".
        what: &'static str,
        /// The range's subnet.
        subnet: IpNet,
    },
    /// An exclusion of the other family.
    #[error("exclude {exclude} is IPv{} but subnet {subnet} is IPv{}", Family::of_net(.exclude), Family::of_net(.subnet))]
    ExcludeWrongFamily {
        /// Position in the exclusion list.
        index: usize,
        /// The exclusion.
        exclude: IpNet,
        /// The range's subnet.
        subnet: IpNet,
    },
    /// start..end holds only the network, broadcast and gateway addresses.
    #[error("range {id} holds only reserved addresses (network, broadcast, gateway)")]
    NoUsableAddress {
        /// Canonical id of the range.
        id: String,
    },
    /// A range set without ranges.
    #[error("a range set needs at least one range")]
    EmptySet,
    /// A range set mixing IPv4 and IPv6.
    #[error(
        "range {id} is IPv{family} but the first range of its set is IPv{first}; \
         one set hands out one address of one family"
    )]
    MixedFamilies {
        /// Position of the offending range in its set.
        index: usize,
        /// Its canonical id.
        id: String,
        /// Its family.
        family: Family,
        /// The family of the set.
        first: Family,
    },
    /// Two ranges share candidate addresses.
    #[error("range {second_id} overlaps range {first_id}")]
    Overlap {
        /// Position of the earlier range in its set.
        first: usize,
        /// Its canonical id.
        first_id: String,
        /// Position of the later range in its set.
        second: usize,
        /// Its canonical id.
        second_id: String,
    },
}

impl RangeError {
    /// The part of the range the error is about.
    pub fn field(&self) -> RangeField {
        match self {
            RangeError::HostBitsSet { .. }
            | RangeError::TooSmall(_)
            | RangeError::V4MappedOverlap(_)
            | RangeError::EmptySet => RangeField::Subnet,
            RangeError::WrongFamily { field, .. } | RangeError::OutsideSubnet { field, .. } => {
                *field
            }
            RangeError::StartAfterEnd { .. } | RangeError::NoUsableAddress { .. } => {
                RangeField::Start
            }
            RangeError::GatewayReserved { .. } => RangeField::Gateway,
            RangeError::ExcludeWrongFamily { index, .. } => RangeField::Exclude(*index),
            RangeError::MixedFamilies { index, .. } => RangeField::Range(*index),
            RangeError::Overlap { second, .. } => RangeField::Range(*second),
        }
    }

    /// The offending value, as the user would recognise it.
    pub fn value(&self) -> String {
        match self {
            RangeError::HostBitsSet { subnet, .. }
            | RangeError::TooSmall(subnet)
            | RangeError::V4MappedOverlap(subnet) => subnet.to_string(),
            RangeError::WrongFamily { ip, .. } | RangeError::OutsideSubnet { ip, .. } => {
                ip.to_string()
            }
            RangeError::StartAfterEnd { start, .. } => start.to_string(),
            RangeError::GatewayReserved { gateway, .. } => gateway.to_string(),
            RangeError::ExcludeWrongFamily { exclude, .. } => exclude.to_string(),
            RangeError::NoUsableAddress { id } | RangeError::MixedFamilies { id, .. } => id.clone(),
            RangeError::Overlap { second_id, .. } => second_id.clone(),
            RangeError::EmptySet => String::new(),
        }
    }
}

/// Why a statically requested address cannot be given out.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StaticError {
    /// No configured subnet holds the address.
    #[error("requested address {0} is not inside any configured subnet")]
    NotInAnyRange(IpAddr),
    /// The network, broadcast or gateway address.
    #[error("requested address {ip} is reserved: it is the {what} of its subnet")]
    Reserved {
        /// The requested address.
        ip: IpAddr,
        /// "network address", "broadcast address" or "gateway".
        what: &'static str,
    },
    /// Inside an `exclude` entry.
    #[error("requested address {ip} is excluded from the pool by exclude {by}")]
    Excluded {
        /// The requested address.
        ip: IpAddr,
        /// The exclusion that holds it.
        by: IpNet,
    },
}

/// An invalid IPAM configuration: which field, what value, and why.
///
/// `field` is the path below `ipam` (`ranges[0][1].rangeStart`, `gateway`); paths of
/// runtime-supplied ranges start with `runtimeConfig.` and are shown without the `ipam.` prefix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {} \"{value}\": {reason}", qualified(.field))]
pub struct ConfigError {
    /// Path of the field below `ipam`; empty for the `ipam` object itself.
    pub field: String,
    /// The offending value (JSON text for non-strings).
    pub value: String,
    /// What is wrong with it.
    pub reason: String,
}

impl ConfigError {
    /// Build an error for `field` holding `value`.
    pub fn new(
        field: impl Into<String>,
        value: impl Into<String>,
        reason: impl Into<String>,
    ) -> ConfigError {
        ConfigError {
            field: field.into(),
            value: value.into(),
            reason: reason.into(),
        }
    }
}

/// The field path as the user sees it (`ipam.` prefix unless it is a runtime path).
pub(crate) fn qualified(field: &str) -> String {
    if field.is_empty() {
        "ipam".to_owned()
    } else if field.starts_with("runtimeConfig.") {
        field.to_owned()
    } else {
        format!("ipam.{field}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_error_display_names_the_field_and_value() {
        let err = ConfigError::new("ranges[0][1].rangeStart", "10.9.0.1", "outside subnet");
        assert_eq!(
            err.to_string(),
            "invalid ipam.ranges[0][1].rangeStart \"10.9.0.1\": outside subnet"
        );
        let err = ConfigError::new("", "42", "expected an object");
        assert_eq!(err.to_string(), "invalid ipam \"42\": expected an object");
        let err = ConfigError::new("runtimeConfig.ipRanges[0][0].subnet", "x", "bad CIDR");
        assert_eq!(
            err.to_string(),
            "invalid runtimeConfig.ipRanges[0][0].subnet \"x\": bad CIDR"
        );
    }

    #[test]
    fn range_error_reports_field_and_value() {
        let subnet: IpNet = "10.0.0.0/24".parse().expect("net");
        let ip: IpAddr = "fd00::1".parse().expect("ip");
        let err = RangeError::WrongFamily {
            field: RangeField::Gateway,
            ip,
            subnet,
        };
        assert_eq!(err.field(), RangeField::Gateway);
        assert_eq!(err.value(), "fd00::1");
        assert_eq!(
            err.to_string(),
            "gateway fd00::1 is IPv6 but subnet 10.0.0.0/24 is IPv4"
        );
    }
}
