//! Backend-independent claim and GC logic.
//!
//! Every backend exposes the few primitive reads and writes of one open transaction
//! through [`ClaimTxn`]; [`claim_all`] runs the idempotency checks, static conflicts and the
//! next-fit search on top of them. Sharing this code is what makes all backends hand out
//! exactly the same addresses for the same history.

use std::collections::HashSet;
use std::net::IpAddr;

use plexus_ipam_core::addr::{Family, V4_KEY_BASE, V4_KEY_LAST, canonical, key};
use plexus_ipam_core::search::find_free;

use crate::error::StoreError;
use crate::types::{Allocation, AttachmentKey, Claim, Owner};

/// The primitive operations of one open write transaction of a backend.
pub(crate) trait ClaimTxn {
    /// The allocation `key` holds under range set `range_set`, if any.
    fn existing(
        &mut self,
        key: &AttachmentKey,
        range_set: &str,
    ) -> Result<Option<Allocation>, StoreError>;
    /// The allocation holding `ip` in `network`, if any.
    fn holder(&mut self, network: &str, ip: IpAddr) -> Result<Option<Allocation>, StoreError>;
    /// Held addresses of `network` within `[lo, hi]`, ascending.
    fn held_between(
        &mut self,
        network: &str,
        lo: IpAddr,
        hi: IpAddr,
    ) -> Result<Vec<IpAddr>, StoreError>;
    /// The next-fit cursor of (network, range set), if one was ever set.
    fn cursor(&mut self, network: &str, range_set: &str) -> Result<Option<IpAddr>, StoreError>;
    /// Moves the next-fit cursor of (network, range set) to `ip`.
    fn set_cursor(&mut self, network: &str, range_set: &str, ip: IpAddr) -> Result<(), StoreError>;
    /// Inserts a new allocation. A held address must fail with
    /// [`StoreError::AddressTaken`] (the backend's uniqueness guarantee).
    fn insert(&mut self, allocation: &Allocation) -> Result<(), StoreError>;
}

/// Runs every claim of one ADD inside `txn`; the caller commits only on `Ok`.
pub(crate) fn claim_all(
    txn: &mut impl ClaimTxn,
    key: &AttachmentKey,
    owner: &Owner,
    claims: &[Claim<'_>],
    now: i64,
) -> Result<Vec<Allocation>, StoreError> {
    claims
        .iter()
        .map(|claim| claim_one(txn, key, owner, claim, now))
        .collect()
}

fn claim_one(
    txn: &mut impl ClaimTxn,
    key: &AttachmentKey,
    owner: &Owner,
    claim: &Claim<'_>,
    now: i64,
) -> Result<Allocation, StoreError> {
    let set = claim.range_set();
    let set_id = set.id();
    // `::ffff:a.b.c.d` and `a.b.c.d` are one address (one key); compare and store the IPv4 form.
    let claim = match claim {
        Claim::Static { set, ip } => Claim::Static {
            set,
            ip: canonical(*ip),
        },
        Claim::Dynamic(set) => Claim::Dynamic(set),
    };
    if let Some(existing) = txn.existing(key, &set_id)? {
        return match claim {
            Claim::Static { ip, .. } if ip != existing.ip => {
                Err(StoreError::AttachmentHoldsOther {
                    network: key.network.clone(),
                    held: existing.ip,
                    requested: ip,
                })
            }
            _ => Ok(existing),
        };
    }
    let ip = match claim {
        Claim::Static { ip, .. } => {
            if let Some(holder) = txn.holder(&key.network, ip)? {
                return Err(address_taken(&holder));
            }
            ip
        }
        Claim::Dynamic(set) => {
            let cursor = txn.cursor(&key.network, &set_id)?;
            // Window by window, so a pool holding millions costs no more than an empty one.
            let found = find_free(set, cursor, |lo, hi| txn.held_between(&key.network, lo, hi))?;
            let ip = found.ok_or_else(|| StoreError::Exhausted {
                network: key.network.clone(),
                range_set: set_id.clone(),
            })?;
            txn.set_cursor(&key.network, &set_id, ip)?;
            ip
        }
    };
    let allocation = Allocation {
        network: key.network.clone(),
        container_id: key.container_id.clone(),
        ifname: key.ifname.clone(),
        ip,
        range_set: set_id,
        owner: owner.clone(),
        created_at: now,
    };
    txn.insert(&allocation)?;
    Ok(allocation)
}

/// The [`StoreError::AddressTaken`] naming `holder`.
pub(crate) fn address_taken(holder: &Allocation) -> StoreError {
    StoreError::AddressTaken {
        network: holder.network.clone(),
        ip: holder.ip,
        container_id: holder.container_id.clone(),
        ifname: holder.ifname.clone(),
    }
}

/// The attachments among `attached` that GC must release: those not in `valid`.
pub(crate) fn stale_attachments(
    attached: impl IntoIterator<Item = (String, String)>,
    valid: &[(String, String)],
) -> Vec<(String, String)> {
    let valid: HashSet<(&str, &str)> = valid
        .iter()
        .map(|(container_id, ifname)| (container_id.as_str(), ifname.as_str()))
        .collect();
    let mut stale: Vec<(String, String)> = attached
        .into_iter()
        .filter(|(container_id, ifname)| !valid.contains(&(container_id.as_str(), ifname.as_str())))
        .collect();
    stale.sort();
    stale.dedup();
    stale
}

/// Whether `err` concerns the whole store rather than one attachment, so that a GC sweep
/// should stop instead of failing the same way for every remaining attachment.
pub(crate) fn is_store_wide(err: &StoreError) -> bool {
    matches!(
        err,
        StoreError::Unavailable { .. } | StoreError::Busy { .. }
    )
}

/// The address-key ranges that make up `[lo, hi]` for counting: one range for IPv4; for
/// IPv6, the same minus the IPv4-mapped block `::ffff:0:0/96`, whose keys belong to IPv4
/// allocations. Empty when `lo > hi`; an error when the families differ.
pub(crate) fn family_key_ranges(lo: IpAddr, hi: IpAddr) -> Result<Vec<(u128, u128)>, StoreError> {
    let family = Family::of(lo);
    if family != Family::of(hi) {
        return Err(StoreError::Internal {
            reason: format!("address range {lo}..{hi} mixes IPv4 and IPv6"),
        });
    }
    let (lo, hi) = (key(lo), key(hi));
    if lo > hi {
        return Ok(Vec::new());
    }
    if family == Family::V4 {
        return Ok(vec![(lo, hi)]);
    }
    let mut ranges = Vec::with_capacity(2);
    if lo < V4_KEY_BASE {
        ranges.push((lo, hi.min(V4_KEY_BASE - 1)));
    }
    if hi > V4_KEY_LAST {
        ranges.push((lo.max(V4_KEY_LAST + 1), hi));
    }
    Ok(ranges)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair(c: &str, i: &str) -> (String, String) {
        (c.to_string(), i.to_string())
    }

    #[test]
    fn stale_excludes_valid_and_dedups() {
        let attached = vec![
            pair("a", "eth0"),
            pair("b", "eth0"),
            pair("a", "eth1"),
            pair("b", "eth0"),
        ];
        let valid = vec![pair("a", "eth0"), pair("zzz", "eth9")];
        assert_eq!(
            stale_attachments(attached, &valid),
            vec![pair("a", "eth1"), pair("b", "eth0")]
        );
    }

    #[test]
    fn stale_with_empty_valid_is_everything() {
        let attached = vec![pair("a", "eth0")];
        assert_eq!(stale_attachments(attached, &[]), vec![pair("a", "eth0")]);
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn key_ranges_of_one_family() {
        let (v4, v6) = (ip("10.0.0.1"), ip("fd00::1"));
        assert_eq!(family_key_ranges(v4, v4).unwrap(), vec![(key(v4), key(v4))]);
        assert_eq!(family_key_ranges(v6, v6).unwrap(), vec![(key(v6), key(v6))]);
        assert!(matches!(
            family_key_ranges(v4, v6),
            Err(StoreError::Internal { .. })
        ));
        assert!(family_key_ranges(ip("10.0.0.2"), v4).unwrap().is_empty());
    }

    #[test]
    fn ipv6_ranges_skip_the_ipv4_mapped_block() {
        let all = family_key_ranges(ip("::"), ip("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"));
        assert_eq!(
            all.unwrap(),
            vec![(0, V4_KEY_BASE - 1), (V4_KEY_LAST + 1, u128::MAX)]
        );
        let below = family_key_ranges(ip("::1"), ip("::2")).unwrap();
        assert_eq!(below, vec![(1, 2)]);
    }

    proptest::proptest! {
        /// The split never includes an IPv4 key and covers every IPv6 key of [lo, hi].
        #[test]
        fn split_covers_exactly_the_ipv6_keys(a in proptest::num::u128::ANY, b in proptest::num::u128::ANY, probe in proptest::num::u128::ANY) {
            let (lo, hi) = (a.min(b), a.max(b));
            let (lo_ip, hi_ip) = (std::net::Ipv6Addr::from(lo), std::net::Ipv6Addr::from(hi));
            let lo_ip = IpAddr::V6(lo_ip);
            let hi_ip = IpAddr::V6(hi_ip);
            // Addresses inside the mapped block are IPv4 by definition: skip those bounds.
            proptest::prop_assume!(Family::of(lo_ip) == Family::V6 && Family::of(hi_ip) == Family::V6);
            let ranges = family_key_ranges(lo_ip, hi_ip).unwrap();
            let covered = ranges.iter().any(|(l, h)| (*l..=*h).contains(&probe));
            let expected = (lo..=hi).contains(&probe) && !(V4_KEY_BASE..=V4_KEY_LAST).contains(&probe);
            proptest::prop_assert_eq!(covered, expected);
        }
    }

    #[test]
    fn store_wide_errors() {
        assert!(is_store_wide(&StoreError::Busy {
            reason: String::new()
        }));
        assert!(is_store_wide(&StoreError::Unavailable {
            reason: String::new()
        }));
        assert!(!is_store_wide(&StoreError::Corrupt {
            reason: String::new()
        }));
    }
}
