//! Address keys and address arithmetic.
//!
//! Stores persist addresses as one `u128` key per address: IPv6 addresses are their own
//! 128-bit value, IPv4 addresses live in the IPv4-mapped block `::ffff:0:0/96`. Keys of one
//! family are contiguous, so every range computation (capacity, skipping exclusions,
//! stepping windows) is plain integer arithmetic and never walks the pool address by address.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::IpNet;

/// Key of `0.0.0.0`: the first key of the IPv4-mapped block `::ffff:0:0/96`.
pub const V4_KEY_BASE: u128 = 0xffff_0000_0000;
/// Key of `255.255.255.255`: the last key of the IPv4-mapped block.
pub const V4_KEY_LAST: u128 = 0xffff_ffff_ffff;

/// An IP address family.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Family {
    /// IPv4.
    V4,
    /// IPv6.
    V6,
}

impl Family {
    /// The family of an address. IPv4-mapped IPv6 addresses (`::ffff:a.b.c.d`) count as IPv4,
    /// because they share their key with the IPv4 address.
    pub fn of(ip: IpAddr) -> Family {
        match canonical(ip) {
            IpAddr::V4(_) => Family::V4,
            IpAddr::V6(_) => Family::V6,
        }
    }

    /// The family of a network.
    pub fn of_net(net: &IpNet) -> Family {
        match net {
            IpNet::V4(_) => Family::V4,
            IpNet::V6(_) => Family::V6,
        }
    }

    /// Number of bits in an address of this family (32 or 128).
    pub fn bits(self) -> u8 {
        match self {
            Family::V4 => 32,
            Family::V6 => 128,
        }
    }

    /// The first and last key of this family's address space.
    pub fn key_bounds(self) -> (u128, u128) {
        match self {
            Family::V4 => (V4_KEY_BASE, V4_KEY_LAST),
            Family::V6 => (0, u128::MAX),
        }
    }
}

impl fmt::Display for Family {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Family::V4 => "4",
            Family::V6 => "6",
        })
    }
}

/// The same address with IPv4-mapped IPv6 (`::ffff:a.b.c.d`) turned into plain IPv4.
pub fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        IpAddr::V4(_) => ip,
    }
}

/// The store key of an address: IPv4 `a.b.c.d` becomes `::ffff:a.b.c.d` as a `u128`.
pub fn key(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(v4) => V4_KEY_BASE | u128::from(u32::from(v4)),
        IpAddr::V6(v6) => u128::from(v6),
    }
}

/// The address of a store key; keys inside `::ffff:0:0/96` become IPv4.
pub fn from_key(k: u128) -> IpAddr {
    if (V4_KEY_BASE..=V4_KEY_LAST).contains(&k) {
        // The range check guarantees the value fits in 32 bits.
        IpAddr::V4(Ipv4Addr::from((k - V4_KEY_BASE) as u32))
    } else {
        IpAddr::V6(Ipv6Addr::from(k))
    }
}

/// `ip + n` within the family of `ip`, or `None` past the end of the address space.
pub fn checked_add(ip: IpAddr, n: u128) -> Option<IpAddr> {
    match ip {
        IpAddr::V4(v4) => {
            let sum = u128::from(u32::from(v4)).checked_add(n)?;
            u32::try_from(sum)
                .ok()
                .map(|v| IpAddr::V4(Ipv4Addr::from(v)))
        }
        IpAddr::V6(v6) => u128::from(v6)
            .checked_add(n)
            .map(|v| IpAddr::V6(Ipv6Addr::from(v))),
    }
}

/// `ip - n` within the family of `ip`, or `None` before the start of the address space.
pub fn checked_sub(ip: IpAddr, n: u128) -> Option<IpAddr> {
    match ip {
        IpAddr::V4(v4) => {
            let diff = u128::from(u32::from(v4)).checked_sub(n)?;
            u32::try_from(diff)
                .ok()
                .map(|v| IpAddr::V4(Ipv4Addr::from(v)))
        }
        IpAddr::V6(v6) => u128::from(v6)
            .checked_sub(n)
            .map(|v| IpAddr::V6(Ipv6Addr::from(v))),
    }
}

/// Key of the first address (the network address) of `net`, whatever its host bits.
pub fn first_key(net: &IpNet) -> u128 {
    key(net.network())
}

/// Key of the last address of `net` (the IPv4 broadcast address, or the all-ones IPv6 host).
pub fn last_key(net: &IpNet) -> u128 {
    key(net.broadcast())
}

/// Number of addresses in `net` (saturating at `u128::MAX` for `::/0`).
pub fn size(net: &IpNet) -> u128 {
    (last_key(net) - first_key(net)).saturating_add(1)
}

/// Whether `net` holds `ip`, comparing keys so IPv4-mapped IPv6 input matches IPv4 networks.
pub fn net_contains(net: &IpNet, ip: IpAddr) -> bool {
    Family::of_net(net) == Family::of(ip) && (first_key(net)..=last_key(net)).contains(&key(ip))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("test address")
    }

    #[test]
    fn v4_keys_are_v4_mapped() {
        assert_eq!(key(ip("0.0.0.0")), 0xffff_0000_0000);
        assert_eq!(key(ip("10.1.2.3")), 0xffff_0a01_0203);
        assert_eq!(key(ip("255.255.255.255")), 0xffff_ffff_ffff);
        assert_eq!(key(ip("::ffff:10.1.2.3")), key(ip("10.1.2.3")));
    }

    #[test]
    fn from_key_inverts_key() {
        for s in [
            "0.0.0.0",
            "10.1.2.3",
            "255.255.255.255",
            "::",
            "fd00::1",
            "ffff::ffff",
        ] {
            assert_eq!(from_key(key(ip(s))), ip(s));
        }
        // Just outside the mapped block on both sides stays IPv6.
        assert_eq!(from_key(V4_KEY_BASE - 1), ip("::fffe:ffff:ffff"));
        assert_eq!(from_key(V4_KEY_LAST + 1), ip("::1:0:0:0"));
    }

    #[test]
    fn family_and_display() {
        assert_eq!(Family::of(ip("10.0.0.1")), Family::V4);
        assert_eq!(Family::of(ip("::ffff:10.0.0.1")), Family::V4);
        assert_eq!(Family::of(ip("fd00::1")), Family::V6);
        assert_eq!(Family::V4.to_string(), "4");
        assert_eq!(Family::V6.to_string(), "6");
    }

    #[test]
    fn arithmetic_stays_in_family() {
        assert_eq!(checked_add(ip("10.0.0.255"), 1), Some(ip("10.0.1.0")));
        assert_eq!(checked_add(ip("255.255.255.255"), 1), None);
        assert_eq!(checked_sub(ip("0.0.0.0"), 1), None);
        assert_eq!(checked_sub(ip("10.0.1.0"), 256), Some(ip("10.0.0.0")));
        assert_eq!(
            checked_add(ip("::fffe:ffff:ffff"), 1),
            Some(ip("::ffff:0:0"))
        );
        assert_eq!(
            checked_add(ip("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"), 1),
            None
        );
        assert_eq!(checked_sub(ip("::"), 1), None);
    }

    #[test]
    fn network_bounds() {
        let net: IpNet = "10.0.0.7/24".parse().expect("net");
        assert_eq!(from_key(first_key(&net)), ip("10.0.0.0"));
        assert_eq!(from_key(last_key(&net)), ip("10.0.0.255"));
        assert_eq!(size(&net), 256);
        let all: IpNet = "::/0".parse().expect("net");
        assert_eq!(size(&all), u128::MAX);
        assert!(net_contains(&net, ip("::ffff:10.0.0.9")));
        assert!(!net_contains(&net, ip("10.0.1.0")));
    }
}
