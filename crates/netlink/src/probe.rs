//! Duplicate address detection before an address is used: the RFC 5227 ARP probe for IPv4
//! ([`ArpProbe`], run by [`crate::Dataplane::arp_probe`]) and the kernel's IPv6 DAD, whose
//! end [`crate::Dataplane::wait_dad`] waits for.

use std::time::Duration;

/// How an IPv4 address is probed. RFC 5227 waits 1–2 s between probes and 2 s after the
/// last; a CNI ADD cannot afford that, and a pod segment answers in well under a
/// millisecond, so the defaults are much shorter (≈ 0.5 s in all).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ArpProbe {
    /// Probes sent (at least 1).
    pub probes: u32,
    /// Pause between two probes.
    pub interval: Duration,
    /// How long to keep listening after the last probe.
    pub wait: Duration,
}

impl Default for ArpProbe {
    fn default() -> ArpProbe {
        ArpProbe {
            probes: 3,
            interval: Duration::from_millis(100),
            wait: Duration::from_millis(250),
        }
    }
}

impl ArpProbe {
    /// Total time a probe without answer takes.
    pub fn duration(&self) -> Duration {
        self.interval * self.probes.saturating_sub(1) + self.wait
    }
}

/// How IPv6 duplicate address detection of one address ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DadOutcome {
    /// DAD finished: the address is no longer tentative and usable.
    Unique,
    /// Another node holds the address (`IFA_F_DADFAILED`).
    Duplicate,
    /// Still tentative when the wait ended.
    TimedOut,
    /// The address is not on the link (removed meanwhile).
    Missing,
}

/// Poll interval of [`crate::Dataplane::wait_dad`].
pub const DAD_POLL: Duration = Duration::from_millis(25);
/// How long the meta-plugin waits for IPv6 DAD by default: the kernel's defaults
/// (`dad_transmits` 1, `retrans_time` 1 s, plus a random start delay of up to 1 s) end
/// within about 2 s.
pub const DEFAULT_DAD_TIMEOUT: Duration = Duration::from_secs(3);
