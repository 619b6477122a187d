//! The data a store keeps besides allocations: stored network definitions and the bounded
//! history of claims and releases.
//!
//! The store stays independent of `plexus-model`: a network's definition is opaque JSON
//! that the store keeps next to its name, revision and timestamps.

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use crate::types::Allocation;

/// How many history events a store keeps per network unless configured otherwise
/// (`"history_limit"` in the store configuration).
pub const DEFAULT_HISTORY_LIMIT: u32 = 10_000;

/// Largest accepted `history_limit`.
pub const MAX_HISTORY_LIMIT: u32 = 10_000_000;

/// One in how many appends prunes a history bounded to `limit`: often enough that the
/// excess stays around `limit / 16`, rarely enough that the prune (a count or a range
/// delete) costs little when spread over the appends (at most 1024). Exact for limits up
/// to 16.
pub(crate) fn prune_interval(limit: u32) -> u32 {
    (limit / 16).clamp(1, 1024)
}

/// A network definition kept in the store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkRecord {
    /// The network name (unique in the store; the CNI netconf `name`).
    pub name: String,
    /// The definition, opaque to the store (a `plexus-model` network spec as JSON).
    pub definition: serde_json::Value,
    /// Starts at 1 on creation and grows by one with every update: the optimistic
    /// concurrency token of [`PutMode::Update`].
    pub revision: u64,
    /// When the network was created, in seconds since the Unix epoch.
    pub created_at: i64,
    /// When the definition was last written, in seconds since the Unix epoch.
    pub updated_at: i64,
}

/// What a network write expects to find.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PutMode {
    /// Create only: fails with [`crate::StoreError::Conflict`] when the name exists.
    Create,
    /// Update only the stored revision given: fails with [`crate::StoreError::Conflict`]
    /// when the network is missing or another writer changed it since.
    Update(u64),
    /// Create, or overwrite whatever revision is stored (`plexusctl network apply`).
    Upsert,
}

/// The answer of [`crate::Store::delete_network`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum NetworkDeletion {
    /// The definition was deleted; `allocations` addresses of the network were still
    /// held (only possible when forced; they stay allocated until released or GC'd).
    Deleted {
        /// The deleted record.
        record: NetworkRecord,
        /// Allocations of the network at the time of deletion.
        allocations: u64,
    },
    /// Not deleted: the network still holds addresses and the deletion was not forced.
    InUse {
        /// How many addresses the network holds.
        allocations: u64,
    },
    /// No network of that name is stored.
    NotFound,
}

/// Whether an event claimed or released its address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HistoryKind {
    /// The address was handed to the attachment.
    Claim,
    /// The attachment gave the address back (DEL, GC, or an operator).
    Release,
}

impl HistoryKind {
    /// `claim` or `release`, as stored.
    pub fn as_str(self) -> &'static str {
        match self {
            HistoryKind::Claim => "claim",
            HistoryKind::Release => "release",
        }
    }

    /// The inverse of [`HistoryKind::as_str`].
    pub fn parse(text: &str) -> Option<HistoryKind> {
        match text {
            "claim" => Some(HistoryKind::Claim),
            "release" => Some(HistoryKind::Release),
            _ => None,
        }
    }
}

/// One claim or release in the history of a network.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct HistoryEvent {
    /// Network name.
    pub network: String,
    /// Position in the network's history: larger is later. Assigned by the store when
    /// the event is appended (not necessarily contiguous); ignored by
    /// [`crate::Store::record_history`].
    #[serde(default)]
    pub seq: u64,
    /// When it happened, in seconds since the Unix epoch.
    pub at: i64,
    /// Claim or release.
    pub kind: HistoryKind,
    /// The address.
    pub ip: IpAddr,
    /// Container id of the attachment.
    pub container_id: String,
    /// Interface name of the attachment.
    pub ifname: String,
    /// Kubernetes namespace of the pod, when known.
    #[serde(default)]
    pub pod_namespace: Option<String>,
    /// Kubernetes pod name, when known.
    #[serde(default)]
    pub pod_name: Option<String>,
    /// Kubernetes pod UID, when known.
    #[serde(default)]
    pub pod_uid: Option<String>,
    /// The node that claimed the address, when known.
    #[serde(default)]
    pub node: Option<String>,
}

impl HistoryEvent {
    /// The event of `kind` for `allocation` at `at` (seq to be assigned by the store).
    pub fn of(allocation: &Allocation, kind: HistoryKind, at: i64) -> HistoryEvent {
        HistoryEvent {
            network: allocation.network.clone(),
            seq: 0,
            at,
            kind,
            ip: allocation.ip,
            container_id: allocation.container_id.clone(),
            ifname: allocation.ifname.clone(),
            pod_namespace: allocation.owner.pod_namespace.clone(),
            pod_name: allocation.owner.pod_name.clone(),
            pod_uid: allocation.owner.pod_uid.clone(),
            node: allocation.node.clone(),
        }
    }

    /// Whether this event matches `query`.
    pub fn matches(&self, query: &HistoryQuery) -> bool {
        match query {
            HistoryQuery::Network { network } => self.network == *network,
            HistoryQuery::Address { network, ip } => {
                self.network == *network
                    && plexus_ipam_core::addr::canonical(self.ip)
                        == plexus_ipam_core::addr::canonical(*ip)
            }
            HistoryQuery::Pod { namespace, name } => {
                self.pod_namespace.as_deref() == Some(namespace.as_str())
                    && self.pod_name.as_deref() == Some(name.as_str())
            }
            HistoryQuery::PodUid { uid } => self.pod_uid.as_deref() == Some(uid.as_str()),
        }
    }
}

/// Which history events to read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HistoryQuery {
    /// Every kept event of a network.
    Network {
        /// Network name.
        network: String,
    },
    /// The events of one address of one network.
    Address {
        /// Network name.
        network: String,
        /// The address.
        ip: IpAddr,
    },
    /// The events of a pod, by namespace and name, in every network.
    Pod {
        /// Kubernetes namespace.
        namespace: String,
        /// Pod name.
        name: String,
    },
    /// The events of a pod, by UID, in every network.
    PodUid {
        /// Kubernetes pod UID.
        uid: String,
    },
}

/// Sorts events into the order [`crate::Store::history`] returns: oldest first, by time,
/// then network, then position in the network's history.
pub(crate) fn sort_events(events: &mut [HistoryEvent]) {
    events.sort_by(|a, b| (a.at, &a.network, a.seq).cmp(&(b.at, &b.network, b.seq)));
}

/// Parses a configured `history_limit` (`field` names it in errors).
pub(crate) fn parse_history_limit(
    field: &str,
    value: &serde_json::Value,
) -> Result<u32, crate::StoreError> {
    value
        .as_u64()
        .filter(|n| (1..=u64::from(MAX_HISTORY_LIMIT)).contains(n))
        .and_then(|n| u32::try_from(n).ok())
        .ok_or_else(|| {
            crate::StoreError::config(
                field,
                format!("must be an integer from 1 to {MAX_HISTORY_LIMIT}, got {value}"),
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_round_trip_as_text() {
        for kind in [HistoryKind::Claim, HistoryKind::Release] {
            assert_eq!(HistoryKind::parse(kind.as_str()), Some(kind));
        }
        assert_eq!(HistoryKind::parse("Claim"), None);
    }

    #[test]
    fn history_limit_is_bounded() {
        let ok = parse_history_limit("f", &serde_json::json!(5)).unwrap();
        assert_eq!(ok, 5);
        for bad in [
            serde_json::json!(0),
            serde_json::json!(-1),
            serde_json::json!("9"),
        ] {
            let err = parse_history_limit("ipam.store.history_limit", &bad).unwrap_err();
            assert!(
                err.to_string().contains("ipam.store.history_limit"),
                "{err}"
            );
        }
    }

    #[test]
    fn queries_match_their_events() {
        let event = HistoryEvent {
            network: "n".into(),
            seq: 1,
            at: 5,
            kind: HistoryKind::Claim,
            ip: "10.0.0.1".parse().unwrap(),
            container_id: "c".into(),
            ifname: "eth0".into(),
            pod_namespace: Some("ns".into()),
            pod_name: Some("p".into()),
            pod_uid: Some("u".into()),
            node: None,
        };
        let ip = event.ip;
        assert!(event.matches(&HistoryQuery::Address {
            network: "n".into(),
            ip
        }));
        assert!(!event.matches(&HistoryQuery::Address {
            network: "m".into(),
            ip
        }));
        assert!(event.matches(&HistoryQuery::Pod {
            namespace: "ns".into(),
            name: "p".into()
        }));
        assert!(!event.matches(&HistoryQuery::Pod {
            namespace: "x".into(),
            name: "p".into()
        }));
        assert!(event.matches(&HistoryQuery::PodUid { uid: "u".into() }));
        assert!(event.matches(&HistoryQuery::Network {
            network: "n".into()
        }));
    }
}
