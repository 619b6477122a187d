//! The values a store keeps and returns: attachment identity, owner metadata, claims,
//! the claim context (node, block policy, clock), allocations, per-node blocks and the GC
//! report.

use std::net::IpAddr;

use plexus_ipam_core::BlockPolicy;
use plexus_ipam_core::addr::{Family, checked_add, key};
use plexus_ipam_core::range::RangeSet;
use serde::{Deserialize, Serialize};

/// The CNI identity of one attachment: the key every allocation is stored under.
///
/// ADD is idempotent on this key and DEL releases everything held by it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct AttachmentKey {
    /// Network name (the netconf `name`).
    pub network: String,
    /// `CNI_CONTAINERID`.
    pub container_id: String,
    /// `CNI_IFNAME`.
    pub ifname: String,
}

impl AttachmentKey {
    /// Builds a key from its three parts.
    pub fn new(
        network: impl Into<String>,
        container_id: impl Into<String>,
        ifname: impl Into<String>,
    ) -> Self {
        AttachmentKey {
            network: network.into(),
            container_id: container_id.into(),
            ifname: ifname.into(),
        }
    }
}

/// Who the attachment belongs to. Metadata for operators and the Cleaner only: it never
/// takes part in identity or uniqueness.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Owner {
    /// Kubernetes namespace of the pod, when known (`K8S_POD_NAMESPACE`).
    pub pod_namespace: Option<String>,
    /// Kubernetes pod name, when known (`K8S_POD_NAME`).
    pub pod_name: Option<String>,
    /// Kubernetes pod UID, when known (`K8S_POD_UID`).
    pub pod_uid: Option<String>,
    /// Opaque endpoint details of the attachment (e.g. the meta-plugin's interface name,
    /// MAC, netns and network), stored with each of its allocations in the claim's
    /// transaction and returned as given. `None` when the caller records none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub details: Option<serde_json::Value>,
}

impl Owner {
    /// An owner with the pod's namespace, name and UID (any may be unknown) and no details.
    pub fn new(
        pod_namespace: Option<String>,
        pod_name: Option<String>,
        pod_uid: Option<String>,
    ) -> Self {
        Owner {
            pod_namespace,
            pod_name,
            pod_uid,
            details: None,
        }
    }

    /// The same owner with `details` recorded (see [`Owner::details`]).
    #[must_use]
    pub fn with_details(mut self, details: serde_json::Value) -> Self {
        self.details = Some(details);
        self
    }
}

/// One address requested by an ADD.
#[derive(Debug, Clone, Copy)]
pub enum Claim<'a> {
    /// Any free address of the range set, found by next-fit from the set's cursor.
    Dynamic(&'a RangeSet),
    /// Exactly `ip`, recorded under `set`.
    ///
    /// The store checks only that no other attachment holds `ip` in the network; whether
    /// `ip` lies inside `set` is the caller's policy.
    Static {
        /// The range set the address is recorded under (its id keys idempotency).
        set: &'a RangeSet,
        /// The requested address.
        ip: IpAddr,
    },
}

impl<'a> Claim<'a> {
    /// The range set this claim draws from or is recorded under.
    pub fn range_set(&self) -> &'a RangeSet {
        match self {
            Claim::Dynamic(set) | Claim::Static { set, .. } => set,
        }
    }
}

/// The claims of one ADD, as [`crate::Store::claim`] takes them: one entry of a
/// [`crate::Store::claim_batch`].
#[derive(Debug, Clone, Copy)]
pub struct ClaimRequest<'a> {
    /// The attachment claiming.
    pub key: &'a AttachmentKey,
    /// Who owns the attachment.
    pub owner: &'a Owner,
    /// One claim per range set.
    pub claims: &'a [Claim<'a>],
    /// Node, block policy and time of the claim.
    pub ctx: &'a ClaimContext,
}

/// Who claims and when: the part of a claim that is not the attachment itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimContext {
    /// The node the claim runs on: dynamic claims allocate from this node's blocks and the
    /// allocation records it.
    pub node: String,
    /// How per-node blocks behave for this pool.
    pub blocks: BlockPolicy,
    /// The time of the claim in seconds since the Unix epoch: `created_at` of new
    /// allocations, and the clock block expiry is judged by (tests move it).
    pub now: i64,
    /// Whether new allocations append claim events to the history (default `true`).
    /// Imports that restore an exported history turn it off, so events are not doubled.
    pub record_history: bool,
}

impl ClaimContext {
    /// A context for `node` with `blocks`, at the current time.
    pub fn new(node: impl Into<String>, blocks: BlockPolicy) -> Self {
        ClaimContext {
            node: node.into(),
            blocks,
            now: unix_now(),
            record_history: true,
        }
    }

    /// The same context without claim events (see [`ClaimContext::record_history`]).
    #[must_use]
    pub fn without_history(mut self) -> Self {
        self.record_history = false;
        self
    }

    /// The same context at `now` (seconds since the Unix epoch).
    #[must_use]
    pub fn at(mut self, now: i64) -> Self {
        self.now = now;
        self
    }
}

/// One held address. Serializes (for export and `plexusctl`) with these field names.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Allocation {
    /// Network name.
    pub network: String,
    /// Container id of the holder.
    pub container_id: String,
    /// Interface name of the holder.
    pub ifname: String,
    /// The address.
    pub ip: IpAddr,
    /// Canonical id of the range set it was claimed from (`RangeSet::id()`).
    pub range_set: String,
    /// Owner metadata recorded at claim time.
    pub owner: Owner,
    /// When it was claimed, in seconds since the Unix epoch.
    pub created_at: i64,
    /// The node that claimed it (metadata; `None` for allocations made before nodes were
    /// recorded).
    #[serde(default)]
    pub node: Option<String>,
}

impl Allocation {
    /// The attachment that holds this allocation.
    pub fn key(&self) -> AttachmentKey {
        AttachmentKey::new(&self.network, &self.container_id, &self.ifname)
    }

    /// Whether this allocation is held by `key`.
    pub fn is_held_by(&self, key: &AttachmentKey) -> bool {
        self.network == key.network
            && self.container_id == key.container_id
            && self.ifname == key.ifname
    }
}

/// An aligned block of addresses of one range set, claimed by one node (node affinity).
///
/// Blocks only steer where a node looks first: uniqueness of addresses never depends on
/// them. A block is identified by `(network, base)`; no two blocks of a network overlap.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Block {
    /// Network name.
    pub network: String,
    /// Canonical id of the range set the block was claimed in (`RangeSet::id()`).
    pub range_set: String,
    /// First address of the block (its network address; host bits clear).
    pub base: IpAddr,
    /// Prefix length of the block (`base/prefix` is the block).
    pub prefix: u8,
    /// The node that claimed it.
    pub node: String,
    /// When it was claimed, in seconds since the Unix epoch.
    pub claimed_at: i64,
    /// Since when it holds no address (seconds since the Unix epoch); `None` while it
    /// holds one, or has not been judged empty yet.
    pub emptied_at: Option<i64>,
    /// The last address this node handed out in the block (its next-fit cursor).
    pub cursor: Option<IpAddr>,
}

impl Block {
    /// The last address of the block (`base` when the prefix is out of range).
    pub fn last(&self) -> IpAddr {
        let bits: u32 = if self.base.is_ipv4() { 32 } else { 128 };
        let host_bits = bits.saturating_sub(u32::from(self.prefix));
        let span = 1u128.checked_shl(host_bits).map_or(u128::MAX, |s| s - 1);
        checked_add(self.base, span).unwrap_or(self.base)
    }

    /// Whether `ip` lies in the block.
    pub fn contains(&self, ip: IpAddr) -> bool {
        Family::of(ip) == Family::of(self.base)
            && (key(self.base)..=key(self.last())).contains(&key(ip))
    }
}

/// What a CNI GC did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GcReport {
    /// Allocations released because their attachment was not in the valid set.
    pub released: Vec<Allocation>,
    /// Blocks released because they stayed empty past the grace period.
    #[serde(default)]
    pub released_blocks: Vec<Block>,
    /// One message per stale attachment that could not be released (GC keeps going).
    pub errors: Vec<String>,
}

/// Seconds since the Unix epoch, for `created_at` (0 if the clock is before 1970).
pub fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allocation_round_trips_through_json() {
        let a = Allocation {
            network: "n".into(),
            container_id: "c".into(),
            ifname: "eth0".into(),
            ip: IpAddr::from([10, 0, 0, 1]),
            range_set: "10.0.0.0/24".into(),
            owner: Owner {
                pod_namespace: Some("ns".into()),
                pod_name: None,
                pod_uid: Some("u".into()),
                details: Some(serde_json::json!({"mac": "02:00:00:00:00:01"})),
            },
            created_at: 1_700_000_000,
            node: Some("worker-1".into()),
        };
        let json = serde_json::to_value(&a).unwrap();
        assert_eq!(json["ip"], "10.0.0.1");
        assert_eq!(json["owner"]["pod_namespace"], "ns");
        assert_eq!(json["owner"]["details"]["mac"], "02:00:00:00:00:01");
        let back: Allocation = serde_json::from_value(json).unwrap();
        assert_eq!(back, a);
        assert!(a.is_held_by(&AttachmentKey::new("n", "c", "eth0")));
        assert!(!a.is_held_by(&AttachmentKey::new("n", "c", "eth1")));
        assert_eq!(a.key(), AttachmentKey::new("n", "c", "eth0"));
    }
}
