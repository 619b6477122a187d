//! Per-interface sysctls plexus sets inside a pod netns (DANM §3.7: IPv6 on/off, no router
//! advertisements, no autoconfiguration, neighbour notifications).

use std::fmt;

use crate::names::{NameError, validate_link_name};

/// One per-interface sysctl and the value to write.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Sysctl {
    /// `net.ipv6.conf.<if>.disable_ipv6`.
    DisableIpv6(bool),
    /// `net.ipv6.conf.<if>.accept_ra` (false = 0, true = 1).
    AcceptRa(bool),
    /// `net.ipv6.conf.<if>.autoconf`.
    Autoconf(bool),
    /// `net.ipv6.conf.<if>.ndisc_notify`: unsolicited NA when the link or its MAC changes.
    NdiscNotify(bool),
    /// `net.ipv4.conf.<if>.arp_notify`: gratuitous ARP when the link comes up.
    ArpNotify(bool),
}

impl Sysctl {
    /// The key's last component.
    pub fn key(self) -> &'static str {
        match self {
            Sysctl::DisableIpv6(_) => "disable_ipv6",
            Sysctl::AcceptRa(_) => "accept_ra",
            Sysctl::Autoconf(_) => "autoconf",
            Sysctl::NdiscNotify(_) => "ndisc_notify",
            Sysctl::ArpNotify(_) => "arp_notify",
        }
    }

    /// The value written to the file.
    pub fn value(self) -> &'static str {
        match self {
            Sysctl::DisableIpv6(on)
            | Sysctl::AcceptRa(on)
            | Sysctl::Autoconf(on)
            | Sysctl::NdiscNotify(on)
            | Sysctl::ArpNotify(on) => {
                if on {
                    "1"
                } else {
                    "0"
                }
            }
        }
    }

    /// Path under `/proc/sys` for interface `link` (`all` and `default` are accepted too).
    pub fn path(self, link: &str) -> Result<String, NameError> {
        validate_link_name(link)?;
        let family = match self {
            Sysctl::ArpNotify(_) => "ipv4",
            _ => "ipv6",
        };
        Ok(format!("/proc/sys/net/{family}/conf/{link}/{}", self.key()))
    }
}

impl fmt::Display for Sysctl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}={}", self.key(), self.value())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_and_values_match_procfs() {
        assert_eq!(
            Sysctl::DisableIpv6(true).path("eth1"),
            Ok("/proc/sys/net/ipv6/conf/eth1/disable_ipv6".into())
        );
        assert_eq!(
            Sysctl::ArpNotify(true).path("all"),
            Ok("/proc/sys/net/ipv4/conf/all/arp_notify".into())
        );
        assert_eq!(Sysctl::AcceptRa(false).value(), "0");
        assert_eq!(Sysctl::Autoconf(true).value(), "1");
        assert_eq!(Sysctl::NdiscNotify(true).to_string(), "ndisc_notify=1");
    }

    #[test]
    fn hostile_interface_names_cannot_escape_procfs() {
        for bad in ["..", "../../../etc", "a/b", ""] {
            assert!(Sysctl::AcceptRa(false).path(bad).is_err(), "{bad:?}");
        }
    }
}
