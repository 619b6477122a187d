//! The record of one call made to the fake, with every argument, so tests can assert the
//! exact order of dataplane operations (e.g. rollback undoing in reverse).

use std::net::{IpAddr, Ipv4Addr};

use ipnet::IpNet;

use crate::error::{ErrorKind, Op};
use crate::routing::{Dad, Route, Rule};
use crate::sysctl::Sysctl;
use crate::types::{LinkSpec, MacAddr, Netns};

/// One call to [`crate::FakeDataplane`], as made.
#[derive(Debug, Clone, PartialEq, Eq)]
#[allow(missing_docs)] // the fields are the trait method's arguments, documented there
pub enum Call {
    CreateLink {
        netns: Netns,
        spec: LinkSpec,
    },
    MoveLink {
        netns: Netns,
        link: String,
        target: Netns,
    },
    RenameLink {
        netns: Netns,
        link: String,
        new_name: String,
    },
    SetMtu {
        netns: Netns,
        link: String,
        mtu: u32,
    },
    SetMac {
        netns: Netns,
        link: String,
        mac: MacAddr,
    },
    SetUp {
        netns: Netns,
        link: String,
    },
    SetDown {
        netns: Netns,
        link: String,
    },
    DeleteLink {
        netns: Netns,
        link: String,
    },
    GetLink {
        netns: Netns,
        link: String,
    },
    ListLinks {
        netns: Netns,
    },
    AddAddress {
        netns: Netns,
        link: String,
        address: IpNet,
        dad: Dad,
    },
    DelAddress {
        netns: Netns,
        link: String,
        address: IpNet,
    },
    ListAddresses {
        netns: Netns,
        link: String,
    },
    AddRoute {
        netns: Netns,
        route: Route,
    },
    DelRoute {
        netns: Netns,
        route: Route,
    },
    ListRoutes {
        netns: Netns,
    },
    AddRule {
        netns: Netns,
        rule: Rule,
    },
    DelRule {
        netns: Netns,
        rule: Rule,
    },
    ListRules {
        netns: Netns,
    },
    SetSysctls {
        netns: Netns,
        link: String,
        sysctls: Vec<Sysctl>,
    },
    Announce {
        netns: Netns,
        link: String,
        addresses: Vec<IpAddr>,
    },
    ArpProbe {
        netns: Netns,
        link: String,
        ip: Ipv4Addr,
    },
}

impl Call {
    /// Which operation this was.
    pub fn op(&self) -> Op {
        match self {
            Call::CreateLink { .. } => Op::CreateLink,
            Call::MoveLink { .. } => Op::MoveLink,
            Call::RenameLink { .. } => Op::RenameLink,
            Call::SetMtu { .. } => Op::SetMtu,
            Call::SetMac { .. } => Op::SetMac,
            Call::SetUp { .. } => Op::SetUp,
            Call::SetDown { .. } => Op::SetDown,
            Call::DeleteLink { .. } => Op::DeleteLink,
            Call::GetLink { .. } => Op::GetLink,
            Call::ListLinks { .. } => Op::ListLinks,
            Call::AddAddress { .. } => Op::AddAddress,
            Call::DelAddress { .. } => Op::DelAddress,
            Call::ListAddresses { .. } => Op::ListAddresses,
            Call::AddRoute { .. } => Op::AddRoute,
            Call::DelRoute { .. } => Op::DelRoute,
            Call::ListRoutes { .. } => Op::ListRoutes,
            Call::AddRule { .. } => Op::AddRule,
            Call::DelRule { .. } => Op::DelRule,
            Call::ListRules { .. } => Op::ListRules,
            Call::SetSysctls { .. } => Op::SetSysctls,
            Call::Announce { .. } => Op::Announce,
            Call::ArpProbe { .. } => Op::ArpProbe,
        }
    }

    /// The netns the call ran in.
    pub fn netns(&self) -> &Netns {
        match self {
            Call::CreateLink { netns, .. }
            | Call::MoveLink { netns, .. }
            | Call::RenameLink { netns, .. }
            | Call::SetMtu { netns, .. }
            | Call::SetMac { netns, .. }
            | Call::SetUp { netns, .. }
            | Call::SetDown { netns, .. }
            | Call::DeleteLink { netns, .. }
            | Call::GetLink { netns, .. }
            | Call::ListLinks { netns }
            | Call::AddAddress { netns, .. }
            | Call::DelAddress { netns, .. }
            | Call::ListAddresses { netns, .. }
            | Call::AddRoute { netns, .. }
            | Call::DelRoute { netns, .. }
            | Call::ListRoutes { netns }
            | Call::AddRule { netns, .. }
            | Call::DelRule { netns, .. }
            | Call::ListRules { netns }
            | Call::SetSysctls { netns, .. }
            | Call::Announce { netns, .. }
            | Call::ArpProbe { netns, .. } => netns,
        }
    }

    /// The link the call was about (a created link's name; a route's output link).
    pub fn link(&self) -> Option<&str> {
        match self {
            Call::CreateLink { spec, .. } => Some(&spec.name),
            Call::MoveLink { link, .. }
            | Call::RenameLink { link, .. }
            | Call::SetMtu { link, .. }
            | Call::SetMac { link, .. }
            | Call::SetUp { link, .. }
            | Call::SetDown { link, .. }
            | Call::DeleteLink { link, .. }
            | Call::GetLink { link, .. }
            | Call::AddAddress { link, .. }
            | Call::DelAddress { link, .. }
            | Call::ListAddresses { link, .. }
            | Call::SetSysctls { link, .. }
            | Call::Announce { link, .. }
            | Call::ArpProbe { link, .. } => Some(link),
            Call::AddRoute { route, .. } | Call::DelRoute { route, .. } => route.link.as_deref(),
            Call::ListLinks { .. }
            | Call::ListRoutes { .. }
            | Call::AddRule { .. }
            | Call::DelRule { .. }
            | Call::ListRules { .. } => None,
        }
    }
}

/// When a programmed failure fires.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Trigger {
    /// The n-th call made to the fake since it was built (1-based).
    Nth(usize),
    /// Every call of this operation.
    Op(Op),
    /// Every call of this operation about this link.
    OpOnLink(Op, String),
}

impl Trigger {
    /// True when a call numbered `number` (1-based) matches.
    pub fn matches(&self, number: usize, call: &Call) -> bool {
        match self {
            Trigger::Nth(n) => *n == number,
            Trigger::Op(op) => call.op() == *op,
            Trigger::OpOnLink(op, link) => call.op() == *op && call.link() == Some(link.as_str()),
        }
    }
}

/// A programmed failure: when it fires, with what, and how many more times.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// When it fires.
    pub trigger: Trigger,
    /// The kind of error returned.
    pub kind: ErrorKind,
    /// Remaining firings; `None` = unlimited.
    pub remaining: Option<usize>,
}
