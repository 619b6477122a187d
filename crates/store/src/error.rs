//! The one error type of every store backend.
//!
//! Variants describe what went wrong in terms a network engineer can act on;
//! [`StoreError::cni_code`] (in `cni.rs`) maps them onto CNI error codes (e.g.
//! [`StoreError::Busy`] → 11 "try again later", [`StoreError::Config`] → 7 "invalid
//! network config"). Messages never contain secrets:
//! backends put paths and addresses in them, never passwords or tokens.

use std::net::IpAddr;

/// Why a store operation failed.
///
/// Serializes (tagged by `kind`) so the node agent can hand the store's error back to the
/// plugin variant for variant.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, serde::Serialize, serde::Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum StoreError {
    /// The store cannot be used at all right now: it cannot be opened, stayed locked past
    /// the busy timeout, is read-only, or its disk is full. The reason names the path or
    /// endpoint involved.
    #[error("allocation store unavailable: {reason}")]
    Unavailable {
        /// What failed, including the path or endpoint.
        reason: String,
    },
    /// Transient contention with another writer; retrying shortly is expected to succeed.
    #[error("allocation store busy, try again later: {reason}")]
    Busy {
        /// What was contended.
        reason: String,
    },
    /// Every allocatable address of the range set is held.
    #[error("no free address left in range set {range_set} of network {network}")]
    Exhausted {
        /// The network whose pool is full.
        network: String,
        /// Canonical id of the full range set.
        range_set: String,
    },
    /// A static address was requested that another attachment already holds.
    #[error(
        "address {ip} of network {network} is already held by container {container_id} \
         interface {ifname}"
    )]
    AddressTaken {
        /// The network of the conflict.
        network: String,
        /// The contested address.
        ip: IpAddr,
        /// Container id of the current holder.
        container_id: String,
        /// Interface name of the current holder.
        ifname: String,
    },
    /// The attachment already holds a different address in this range set than the static
    /// address it now requests (ADD must be idempotent, so the request is refused rather
    /// than silently replacing the address).
    #[error(
        "attachment already holds {held} in network {network}; it cannot also claim \
         {requested} (delete the attachment first)"
    )]
    AttachmentHoldsOther {
        /// The network of the attachment.
        network: String,
        /// The address the attachment holds today.
        held: IpAddr,
        /// The static address requested now.
        requested: IpAddr,
    },
    /// The store configuration is invalid.
    #[error("invalid {field}: {reason}")]
    Config {
        /// Dotted path of the offending configuration field, e.g. `ipam.store.type`.
        field: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The stored data cannot be interpreted: a schema newer than this build, or rows that
    /// violate the store's own invariants.
    #[error("allocation store data is corrupt or unsupported: {reason}")]
    Corrupt {
        /// What was found.
        reason: String,
    },
    /// A write found the store in another state than it expected: a stored network
    /// exists already, is missing, or another writer changed its revision since it was
    /// read. Not transient: read the current state and decide again.
    #[error("conflicting store update: {reason}")]
    Conflict {
        /// What was expected and what was found.
        reason: String,
    },
    /// An unexpected failure inside the backend (a bug or an unclassified backend error).
    #[error("internal allocation store error: {reason}")]
    Internal {
        /// The backend's description of the failure.
        reason: String,
    },
}

impl StoreError {
    /// True when the same call may succeed if simply retried a little later.
    ///
    /// Only [`StoreError::Busy`] qualifies: [`StoreError::Unavailable`] means the store
    /// already waited its full busy timeout or has a condition (read-only, disk full) that
    /// a quick retry will not fix.
    pub fn is_transient(&self) -> bool {
        matches!(self, StoreError::Busy { .. })
    }

    /// Shorthand for a [`StoreError::Config`].
    pub(crate) fn config(field: impl Into<String>, reason: impl Into<String>) -> Self {
        StoreError::Config {
            field: field.into(),
            reason: reason.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_busy_is_transient() {
        let busy = StoreError::Busy { reason: "x".into() };
        let unavailable = StoreError::Unavailable { reason: "x".into() };
        let corrupt = StoreError::Corrupt { reason: "x".into() };
        assert!(busy.is_transient());
        assert!(!unavailable.is_transient());
        assert!(!corrupt.is_transient());
    }

    #[test]
    fn address_taken_names_the_holder() {
        let err = StoreError::AddressTaken {
            network: "net1".into(),
            ip: IpAddr::from([10, 0, 0, 5]),
            container_id: "abc123".into(),
            ifname: "eth1".into(),
        };
        let msg = err.to_string();
        assert!(msg.contains("10.0.0.5"), "{msg}");
        assert!(msg.contains("abc123"), "{msg}");
        assert!(msg.contains("eth1"), "{msg}");
        assert!(msg.contains("net1"), "{msg}");
    }

    #[test]
    fn config_error_names_the_field() {
        let msg = StoreError::config("ipam.store.type", "unknown store type \"redis\"").to_string();
        assert_eq!(msg, "invalid ipam.store.type: unknown store type \"redis\"");
    }
}
