//! `duplicateAddressCheck`: before an attachment of such a network succeeds, each new
//! address is probed on the segment — an RFC 5227 ARP probe for IPv4 (before the address
//! is put on the interface), the kernel's IPv6 DAD for IPv6 (the address is added without
//! `NODAD` and plexus waits for DAD to end).
//!
//! An address some other host already uses was handed out by the store in good faith (the
//! host is outside plexus' knowledge: a router, a VM, a stale static configuration), so
//! handing it out again would fail the next pod too. It is therefore *quarantined*: claimed
//! in the store, like any address, by a synthetic attachment
//! `(network, "plexus-quarantine", <address>)` whose owner details carry
//! `quarantine_until` (Unix seconds). Every backend supports that (it is an ordinary
//! claim), `plexusctl showalloc` shows it, and nobody gets the address until it is
//! released: by the next ADD on the network with the check on, once expired
//! ([`Engine::free_expired_quarantines`]), or by hand (`plexusctl release`).
//! The attachment then gets another address (bounded attempts); a static request, or the
//! last attempt, fails with code 114.

use std::net::IpAddr;
use std::time::Duration;

use ipnet::IpNet;
use plexus_ipam_core::Family;
use plexus_netlink::{ArpProbe, DEFAULT_DAD_TIMEOUT, Dad, DadOutcome, MacAddr};
use plexus_store::{AttachmentKey, Claim, Owner, unix_now};
use serde_json::json;

use crate::engine::{Engine, Journal};
use crate::error::PlexusError;
use crate::plan::Planned;

/// The `CNI_CONTAINERID` of quarantine claims.
pub const QUARANTINE_CONTAINER: &str = "plexus-quarantine";

/// Settings of the check (from the netconf's `duplicateAddress`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DuplicateCheck {
    /// Addresses tried per attachment before giving up.
    pub attempts: u32,
    /// How long a conflicting address stays quarantined.
    pub quarantine: Duration,
    /// The IPv4 probe.
    pub arp: ArpProbe,
    /// Longest wait for IPv6 DAD.
    pub dad_timeout: Duration,
}

impl Default for DuplicateCheck {
    fn default() -> DuplicateCheck {
        DuplicateCheck {
            attempts: crate::config::DEFAULT_DUPLICATE_ATTEMPTS,
            quarantine: crate::config::DEFAULT_QUARANTINE,
            arp: ArpProbe::default(),
            dad_timeout: DEFAULT_DAD_TIMEOUT,
        }
    }
}

/// An address found in use by another host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Conflict {
    /// The address (with the network's prefix).
    pub address: IpNet,
    /// The MAC that answered (IPv4 only; DAD does not tell).
    pub holder: Option<MacAddr>,
}

impl std::fmt::Display for Conflict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.holder {
            Some(mac) => write!(f, "{} is in use by {mac}", self.address.addr()),
            None => write!(f, "{} failed IPv6 DAD", self.address.addr()),
        }
    }
}

/// The store key of the quarantine of `ip` in `network`.
pub fn quarantine_key(network: &str, ip: IpAddr) -> AttachmentKey {
    AttachmentKey::new(network, QUARANTINE_CONTAINER, ip.to_string())
}

impl Engine<'_> {
    fn duplicate_error(planned: &Planned, message: String) -> PlexusError {
        PlexusError::DuplicateAddress {
            network: planned.network_name(),
            ifname: planned.ifname.clone(),
            message,
        }
    }

    /// Releases the quarantines of the network whose cool-down is over.
    pub async fn free_expired_quarantines(&self, planned: &Planned) -> Result<(), PlexusError> {
        let network = planned.network_name();
        let now = unix_now();
        let held = self.store.list(&network).await?;
        for allocation in held
            .iter()
            .filter(|a| a.container_id == QUARANTINE_CONTAINER)
        {
            let until = allocation
                .owner
                .details
                .as_ref()
                .and_then(|d| d["quarantine_until"].as_i64())
                .unwrap_or(0);
            if until <= now {
                let key = allocation.key();
                self.store.release(&key).await?;
                tracing::info!(%network, ip = %allocation.ip, "quarantine over: address free again");
            }
        }
        Ok(())
    }

    /// Probes every address of a new, up interface. IPv6 ones are on it already (added with
    /// DAD); IPv4 ones are probed first and added only when nobody answered. Conflicting
    /// addresses are quarantined and replaced, up to the attempts allowed. Returns the
    /// addresses the interface ended up with.
    pub async fn settle_addresses(
        &self,
        planned: &Planned,
        mut addresses: Vec<(IpNet, Option<IpAddr>)>,
        journal: &Journal,
    ) -> Result<Vec<(IpNet, Option<IpAddr>)>, PlexusError> {
        let attempts = self.duplicate.attempts.max(1);
        for attempt in 1..=attempts {
            let conflicts = self.probe(planned, &addresses).await?;
            if conflicts.is_empty() {
                for (address, _) in addresses.iter().filter(|(a, _)| a.addr().is_ipv4()) {
                    self.dp
                        .add_address(&self.pod, &planned.ifname, *address, Dad::Skip)
                        .await
                        .map_err(Self::dataplane_error(planned))?;
                }
                return Ok(addresses);
            }
            let listed: Vec<String> = conflicts.iter().map(ToString::to_string).collect();
            tracing::warn!(ifname = %planned.ifname, conflicts = ?listed, attempt, "duplicate address");
            for c in conflicts.iter().filter(|c| c.address.addr().is_ipv6()) {
                self.dp
                    .del_address(&self.pod, &planned.ifname, c.address)
                    .await
                    .map_err(Self::dataplane_error(planned))?;
            }
            let static_conflict = conflicts
                .iter()
                .find(|c| planned.is_static(c.address.addr()));
            let last = attempt == attempts || static_conflict.is_some();
            let replaced = self
                .replace(planned, &addresses, &conflicts, !last, journal)
                .await?;
            if let Some(conflict) = static_conflict {
                return Err(Self::duplicate_error(
                    planned,
                    format!("the requested static address {conflict}"),
                ));
            }
            if last {
                return Err(Self::duplicate_error(
                    planned,
                    format!(
                        "{} (attempt {attempt} of {attempts}; the addresses tried are quarantined)",
                        listed.join(", ")
                    ),
                ));
            }
            for (address, _) in replaced.iter().filter(|(a, _)| a.addr().is_ipv6()) {
                if !addresses.iter().any(|(old, _)| old == address) {
                    self.dp
                        .add_address(&self.pod, &planned.ifname, *address, Dad::Run)
                        .await
                        .map_err(Self::dataplane_error(planned))?;
                }
            }
            addresses = replaced;
        }
        unreachable!("the loop returns on its last attempt")
    }

    /// The addresses someone else answers for.
    async fn probe(
        &self,
        planned: &Planned,
        addresses: &[(IpNet, Option<IpAddr>)],
    ) -> Result<Vec<Conflict>, PlexusError> {
        let dp_err = Self::dataplane_error(planned);
        let mut conflicts = Vec::new();
        for (address, _) in addresses {
            match address.addr() {
                IpAddr::V4(ip) => {
                    let holder = self
                        .dp
                        .arp_probe(&self.pod, &planned.ifname, ip, self.duplicate.arp)
                        .await
                        .map_err(&dp_err)?;
                    if let Some(mac) = holder {
                        conflicts.push(Conflict {
                            address: *address,
                            holder: Some(mac),
                        });
                    }
                }
                IpAddr::V6(_) => {
                    let outcome = self
                        .dp
                        .wait_dad(
                            &self.pod,
                            &planned.ifname,
                            *address,
                            self.duplicate.dad_timeout,
                        )
                        .await
                        .map_err(&dp_err)?;
                    match outcome {
                        DadOutcome::Unique => {}
                        DadOutcome::Duplicate => conflicts.push(Conflict {
                            address: *address,
                            holder: None,
                        }),
                        DadOutcome::TimedOut | DadOutcome::Missing => {
                            return Err(Self::duplicate_error(
                                planned,
                                format!(
                                    "IPv6 DAD of {address} did not finish within {} ms ({}; \
                                     has the parent link a carrier?)",
                                    self.duplicate.dad_timeout.as_millis(),
                                    if outcome == DadOutcome::Missing {
                                        "the address vanished"
                                    } else {
                                        "still tentative"
                                    }
                                ),
                            ));
                        }
                    }
                }
            }
        }
        Ok(conflicts)
    }

    /// Releases the attachment's addresses, quarantines the conflicting ones and, with
    /// `reclaim`, claims again: the same address for a family without conflict, a new one
    /// for the others.
    async fn replace(
        &self,
        planned: &Planned,
        addresses: &[(IpNet, Option<IpAddr>)],
        conflicts: &[Conflict],
        reclaim: bool,
        journal: &Journal,
    ) -> Result<Vec<(IpNet, Option<IpAddr>)>, PlexusError> {
        let key = self.key(planned);
        self.store.release(&key).await?;
        let until = unix_now()
            .saturating_add(i64::try_from(self.duplicate.quarantine.as_secs()).unwrap_or(i64::MAX));
        let planned_claims = planned.claims()?;
        for conflict in conflicts {
            let ip = conflict.address.addr();
            let Some(set) = planned_claims
                .iter()
                .find(|c| family_of_claim(c) == Some(ip.is_ipv4()))
                .map(|c| c.range_set())
            else {
                continue;
            };
            let owner = Owner::new(None, None, None).with_details(json!({
                "quarantine_until": until,
                "holder_mac": conflict.holder.map(|m| m.to_string()),
                "found_by": format!("{}/{}", self.env.container_id, planned.ifname),
                "reason": conflict.to_string(),
            }));
            let qkey = quarantine_key(&planned.network_name(), ip);
            let claim = [Claim::Static { set, ip }];
            match self
                .store
                .claim(&qkey, &owner, &claim, &self.claim_ctx)
                .await
            {
                Ok(_) => tracing::warn!(%ip, until, "address quarantined"),
                // Someone else took it meanwhile; they will find the conflict themselves.
                Err(e) => tracing::warn!(%ip, error = %e, "cannot quarantine the address"),
            }
        }
        if !reclaim {
            return Ok(Vec::new());
        }
        let claims: Vec<Claim<'_>> = planned_claims
            .iter()
            .map(|claim| {
                let kept = addresses.iter().find(|(a, _)| {
                    Some(a.addr().is_ipv4()) == family_of_claim(claim)
                        && !conflicts.iter().any(|c| c.address == *a)
                });
                match kept {
                    Some((a, _)) => Claim::Static {
                        set: claim.range_set(),
                        ip: a.addr(),
                    },
                    None => *claim,
                }
            })
            .collect();
        self.claim_these(planned, &claims, journal).await
    }
}

/// Whether a claim draws IPv4 (`Some(true)`) or IPv6 addresses.
fn family_of_claim(claim: &Claim<'_>) -> Option<bool> {
    Some(claim.range_set().family() == Family::V4)
}
