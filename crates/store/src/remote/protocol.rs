//! The messages of the node-agent protocol, as JSON inside frames ([`super::frame`]).
//!
//! A connection starts with [`ClientMessage::Hello`] naming [`PROTOCOL_VERSION`]; an agent
//! speaking another version answers [`ServerMessage::ProtocolError`] and closes, and the
//! plugin falls back to direct store access. Then each [`ClientMessage::Call`] names the
//! store (its `"store"` JSON, see [`crate::StoreConfig::to_json`]) and one [`Op`]; the
//! answer is [`ServerMessage::Result`] or [`ServerMessage::Error`] carrying the very
//! [`StoreError`] the store returned, so CNI error codes survive the hop.

use std::collections::BTreeMap;
use std::net::IpAddr;

use ipnet::IpNet;
use plexus_ipam_core::BlockPolicy;
use plexus_ipam_core::range::{Range, RangeSet};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::StoreError;
use crate::records::{HistoryEvent, HistoryQuery, PutMode};
use crate::types::{AttachmentKey, Claim, ClaimContext, Owner};

/// The protocol version this build speaks.
///
/// 2: GC carries its [`crate::GcScope`] (a version-1 agent would collect every node's
/// allocations, so the versions must not talk to each other).
pub const PROTOCOL_VERSION: u32 = 2;

/// What the plugin sends.
// One message lives at a time per connection: boxing the call would buy nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ClientMessage {
    /// First message of a connection.
    Hello {
        /// The client's [`PROTOCOL_VERSION`].
        version: u32,
    },
    /// One store operation.
    Call {
        /// The `"store"` object naming the store (may hold a password: never log it).
        store: Value,
        /// The operation and its arguments.
        op: Op,
    },
    /// The agent's counters ([`AgentStats`]).
    Stats,
}

/// What the agent answers.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerMessage {
    /// Answer to a matching hello.
    Hello {
        /// The agent's [`PROTOCOL_VERSION`].
        version: u32,
        /// The agent's build, for logs.
        agent: String,
    },
    /// The operation's result, as JSON of the method's return type.
    Result {
        /// The value.
        value: Value,
    },
    /// The store's error.
    Error {
        /// The error, variant for variant.
        error: StoreError,
    },
    /// The request could not be understood (bad frame, bad JSON, other version); the agent
    /// closes the connection after sending it.
    ProtocolError {
        /// What was wrong.
        reason: String,
    },
    /// The agent's counters.
    Stats {
        /// The counters.
        stats: AgentStats,
    },
}

/// Counters of a running agent, for tests and operators.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentStats {
    /// Connections accepted.
    pub connections: u64,
    /// Operations served, by [`Op::name`] (successful or not).
    pub calls: BTreeMap<String, u64>,
    /// Operations that returned a store error.
    pub errors: u64,
    /// Requests refused as malformed.
    pub protocol_errors: u64,
    /// Stores currently open (warm connections, pools).
    pub stores_open: u64,
    /// Claim batches run (see the agent's claim queue); `calls["claim"]` claims went in
    /// them, so their ratio is the mean batch size.
    #[serde(default)]
    pub claim_batches: u64,
}

/// One [`crate::Store`] method with its arguments.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
#[allow(missing_docs)] // Each variant is the Store method of the same name.
pub enum Op {
    Claim {
        key: AttachmentKey,
        owner: Owner,
        claims: Vec<WireClaim>,
        ctx: WireClaimContext,
    },
    Release {
        key: AttachmentKey,
    },
    Attachment {
        key: AttachmentKey,
    },
    Holder {
        network: String,
        ip: IpAddr,
    },
    List {
        network: String,
    },
    CountBetween {
        network: String,
        lo: IpAddr,
        hi: IpAddr,
    },
    ListBetween {
        network: String,
        lo: IpAddr,
        hi: IpAddr,
        limit: usize,
    },
    PutNetwork {
        name: String,
        definition: Value,
        mode: WirePutMode,
    },
    Network {
        name: String,
    },
    Networks,
    AllocatedNetworks,
    DeleteNetwork {
        name: String,
        force: bool,
    },
    History {
        query: WireHistoryQuery,
    },
    RecordHistory {
        events: Vec<HistoryEvent>,
    },
    Blocks {
        network: String,
    },
    Gc {
        network: String,
        valid: Vec<(String, String)>,
        scope: crate::GcScope,
        blocks: WireBlockPolicy,
        now: i64,
    },
    Probe,
}

impl Op {
    /// The method name, for counters and logs.
    pub fn name(&self) -> &'static str {
        match self {
            Op::Claim { .. } => "claim",
            Op::Release { .. } => "release",
            Op::Attachment { .. } => "attachment",
            Op::Holder { .. } => "holder",
            Op::List { .. } => "list",
            Op::CountBetween { .. } => "count_between",
            Op::ListBetween { .. } => "list_between",
            Op::PutNetwork { .. } => "put_network",
            Op::Network { .. } => "network",
            Op::Networks => "networks",
            Op::AllocatedNetworks => "allocated_networks",
            Op::DeleteNetwork { .. } => "delete_network",
            Op::History { .. } => "history",
            Op::RecordHistory { .. } => "record_history",
            Op::Blocks { .. } => "blocks",
            Op::Gc { .. } => "gc",
            Op::Probe => "probe",
        }
    }

    /// Whether running the operation a second time after an unknown outcome (the agent
    /// died mid-request) gives the same result as running it once.
    ///
    /// Claims are idempotent by (network, container id, ifname): a retried claim returns
    /// the allocation the first one made, so retrying directly never double-allocates.
    /// Releases, reads and GC are idempotent too. Creating or updating a network by
    /// revision would report a false conflict, and recording history would duplicate it.
    pub fn is_idempotent(&self) -> bool {
        match self {
            Op::PutNetwork { mode, .. } => matches!(mode, WirePutMode::Upsert),
            Op::RecordHistory { .. } => false,
            _ => true,
        }
    }
}

/// A [`Range`] on the wire.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[allow(missing_docs)] // The fields of Range.
pub struct WireRange {
    pub subnet: IpNet,
    pub start: IpAddr,
    pub end: IpAddr,
    pub gateway: Option<IpAddr>,
    pub exclude: Vec<IpNet>,
}

/// A [`Claim`] on the wire (owning its range set).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WireClaim {
    /// The ranges of the set, in search order.
    pub ranges: Vec<WireRange>,
    /// The configuration sharing its network that owns the set (`RangeSet::shared_by`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shared_by: Option<String>,
    /// The static address, `None` for a dynamic claim.
    pub ip: Option<IpAddr>,
}

impl WireClaim {
    /// The wire form of `claim`.
    pub fn from_claim(claim: &Claim<'_>) -> Self {
        let ranges = claim
            .range_set()
            .ranges
            .iter()
            .map(|r| WireRange {
                subnet: r.subnet,
                start: r.start,
                end: r.end,
                gateway: r.gateway,
                exclude: r.exclude.clone(),
            })
            .collect();
        let ip = match claim {
            Claim::Dynamic(_) => None,
            Claim::Static { ip, .. } => Some(*ip),
        };
        WireClaim {
            ranges,
            shared_by: claim.range_set().shared_by.clone(),
            ip,
        }
    }

    /// The range set of the claim (the client validated it; the fields are taken as sent).
    pub fn range_set(&self) -> RangeSet {
        RangeSet {
            ranges: self
                .ranges
                .iter()
                .map(|r| Range {
                    subnet: r.subnet,
                    start: r.start,
                    end: r.end,
                    gateway: r.gateway,
                    exclude: r.exclude.clone(),
                })
                .collect(),
            shared_by: self.shared_by.clone(),
        }
    }
}

/// A [`BlockPolicy`] on the wire.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
#[allow(missing_docs)] // The fields of BlockPolicy.
pub struct WireBlockPolicy {
    pub v4_prefix: u8,
    pub v6_prefix: u8,
    pub release_after_secs: u64,
    pub enabled: bool,
}

impl From<&BlockPolicy> for WireBlockPolicy {
    fn from(p: &BlockPolicy) -> Self {
        WireBlockPolicy {
            v4_prefix: p.v4_prefix,
            v6_prefix: p.v6_prefix,
            release_after_secs: p.release_after_secs,
            enabled: p.enabled,
        }
    }
}

impl From<WireBlockPolicy> for BlockPolicy {
    fn from(p: WireBlockPolicy) -> Self {
        BlockPolicy {
            v4_prefix: p.v4_prefix,
            v6_prefix: p.v6_prefix,
            release_after_secs: p.release_after_secs,
            enabled: p.enabled,
        }
    }
}

/// A [`ClaimContext`] on the wire.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[allow(missing_docs)] // The fields of ClaimContext.
pub struct WireClaimContext {
    pub node: String,
    pub blocks: WireBlockPolicy,
    pub now: i64,
    pub record_history: bool,
}

impl From<&ClaimContext> for WireClaimContext {
    fn from(c: &ClaimContext) -> Self {
        WireClaimContext {
            node: c.node.clone(),
            blocks: (&c.blocks).into(),
            now: c.now,
            record_history: c.record_history,
        }
    }
}

impl From<WireClaimContext> for ClaimContext {
    fn from(c: WireClaimContext) -> Self {
        ClaimContext {
            node: c.node,
            blocks: c.blocks.into(),
            now: c.now,
            record_history: c.record_history,
        }
    }
}

/// A [`PutMode`] on the wire.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[allow(missing_docs)] // The variants of PutMode.
pub enum WirePutMode {
    Create,
    Update(u64),
    Upsert,
}

impl From<PutMode> for WirePutMode {
    fn from(m: PutMode) -> Self {
        match m {
            PutMode::Create => WirePutMode::Create,
            PutMode::Update(rev) => WirePutMode::Update(rev),
            PutMode::Upsert => WirePutMode::Upsert,
        }
    }
}

impl From<WirePutMode> for PutMode {
    fn from(m: WirePutMode) -> Self {
        match m {
            WirePutMode::Create => PutMode::Create,
            WirePutMode::Update(rev) => PutMode::Update(rev),
            WirePutMode::Upsert => PutMode::Upsert,
        }
    }
}

/// A [`HistoryQuery`] on the wire.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "by", rename_all = "snake_case")]
#[allow(missing_docs)] // The variants of HistoryQuery.
pub enum WireHistoryQuery {
    Network { network: String },
    Address { network: String, ip: IpAddr },
    Pod { namespace: String, name: String },
    PodUid { uid: String },
}

impl From<&HistoryQuery> for WireHistoryQuery {
    fn from(q: &HistoryQuery) -> Self {
        match q.clone() {
            HistoryQuery::Network { network } => WireHistoryQuery::Network { network },
            HistoryQuery::Address { network, ip } => WireHistoryQuery::Address { network, ip },
            HistoryQuery::Pod { namespace, name } => WireHistoryQuery::Pod { namespace, name },
            HistoryQuery::PodUid { uid } => WireHistoryQuery::PodUid { uid },
        }
    }
}

impl From<WireHistoryQuery> for HistoryQuery {
    fn from(q: WireHistoryQuery) -> Self {
        match q {
            WireHistoryQuery::Network { network } => HistoryQuery::Network { network },
            WireHistoryQuery::Address { network, ip } => HistoryQuery::Address { network, ip },
            WireHistoryQuery::Pod { namespace, name } => HistoryQuery::Pod { namespace, name },
            WireHistoryQuery::PodUid { uid } => HistoryQuery::PodUid { uid },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_store_error_survives_the_wire() {
        let errors = [
            StoreError::Unavailable { reason: "a".into() },
            StoreError::Busy { reason: "b".into() },
            StoreError::Exhausted {
                network: "n".into(),
                range_set: "10.0.0.0/24".into(),
            },
            StoreError::AddressTaken {
                network: "n".into(),
                ip: IpAddr::from([10, 0, 0, 5]),
                container_id: "c".into(),
                ifname: "eth0".into(),
            },
            StoreError::AttachmentHoldsOther {
                network: "n".into(),
                held: IpAddr::from([10, 0, 0, 5]),
                requested: "fd00::1".parse().unwrap(),
            },
            StoreError::Config {
                field: "ipam.store.x".into(),
                reason: "r".into(),
            },
            StoreError::Corrupt { reason: "c".into() },
            StoreError::Conflict { reason: "c".into() },
            StoreError::Internal { reason: "i".into() },
        ];
        for error in errors {
            let json = serde_json::to_vec(&ServerMessage::Error {
                error: error.clone(),
            })
            .unwrap();
            let ServerMessage::Error { error: back } = serde_json::from_slice(&json).unwrap()
            else {
                panic!("not an error message")
            };
            assert_eq!(back, error);
        }
    }

    #[test]
    fn claims_keep_their_range_set_and_address() {
        let set = RangeSet::new(vec![
            Range::new(
                "10.1.0.0/24".parse().unwrap(),
                Some("10.1.0.10".parse().unwrap()),
                None,
                Some("10.1.0.1".parse().unwrap()),
                vec!["10.1.0.64/30".parse().unwrap()],
            )
            .unwrap(),
        ])
        .unwrap();
        let claims = [
            Claim::Dynamic(&set),
            Claim::Static {
                set: &set,
                ip: "10.1.0.20".parse().unwrap(),
            },
        ];
        for claim in claims {
            let wire = WireClaim::from_claim(&claim);
            let json = serde_json::to_string(&wire).unwrap();
            let back: WireClaim = serde_json::from_str(&json).unwrap();
            assert_eq!(back.range_set(), set);
            let expected = match claim {
                Claim::Dynamic(_) => None,
                Claim::Static { ip, .. } => Some(ip),
            };
            assert_eq!(back.ip, expected);
        }
    }
}
