//! [`GcScope`]: which allocations and blocks one GC may touch.
//!
//! A shared store (PostgreSQL, etcd, soon the Kubernetes API) is shared by every node, but
//! the `cni.dev/valid-attachments` a runtime sends with CNI GC list only the attachments
//! *that node's* runtime knows. Applied to the whole network they would release every
//! other node's live addresses, and the next ADDs would hand them out again. So a GC is
//! always scoped: a node's GC considers the allocations made on that node and the blocks
//! that node holds, nothing else. Allocations whose node was never recorded (imported, or
//! written before nodes were recorded) are collected only by an explicit operator choice.

use serde::{Deserialize, Serialize};

/// Which nodes' allocations and blocks a GC considers.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "kind", content = "node", rename_all = "snake_case")]
pub enum NodeScope {
    /// Only what was claimed on this node: the scope of CNI GC from a node's runtime.
    Node(String),
    /// Only allocations with no recorded node (imported, or written by older versions);
    /// no block (every block records its node).
    UnknownNode,
    /// Every node's allocations and blocks: an operator's explicit choice, for a network
    /// whose valid set is known cluster-wide.
    AllNodes,
}

/// What one GC may touch: the nodes, and optionally only some range sets of the network
/// (when several network configurations share one network, each collects its own).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct GcScope {
    /// The nodes whose allocations and blocks are considered.
    pub nodes: NodeScope,
    /// When set, only allocations recorded under one of these range set ids (and blocks
    /// claimed in them) are considered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub range_sets: Option<Vec<String>>,
}

impl GcScope {
    /// The scope of a GC sent by the runtime of node `node`.
    pub fn node(node: impl Into<String>) -> Self {
        GcScope {
            nodes: NodeScope::Node(node.into()),
            range_sets: None,
        }
    }

    /// Every node's allocations and blocks.
    pub fn all_nodes() -> Self {
        GcScope {
            nodes: NodeScope::AllNodes,
            range_sets: None,
        }
    }

    /// Only allocations whose node is unknown.
    pub fn unknown_node() -> Self {
        GcScope {
            nodes: NodeScope::UnknownNode,
            range_sets: None,
        }
    }

    /// The same scope restricted to the range sets `ids`.
    #[must_use]
    pub fn with_range_sets(mut self, ids: impl IntoIterator<Item = String>) -> Self {
        self.range_sets = Some(ids.into_iter().collect());
        self
    }

    /// Whether an allocation claimed on `node` (`None`: not recorded) under `range_set`
    /// is in scope.
    pub fn covers_allocation(&self, node: Option<&str>, range_set: &str) -> bool {
        // An empty recorded node is as unknown as none.
        let node = node.filter(|n| !n.is_empty());
        let node_ok = match (&self.nodes, node) {
            (NodeScope::AllNodes, _) => true,
            (NodeScope::UnknownNode, None) => true,
            (NodeScope::Node(mine), Some(theirs)) => mine == theirs,
            _ => false,
        };
        node_ok && self.covers_range_set(range_set)
    }

    /// Whether a block held by `node` in `range_set` is in scope.
    pub fn covers_block(&self, node: &str, range_set: &str) -> bool {
        let node_ok = match &self.nodes {
            NodeScope::AllNodes => true,
            NodeScope::Node(mine) => mine == node,
            NodeScope::UnknownNode => false,
        };
        node_ok && self.covers_range_set(range_set)
    }

    fn covers_range_set(&self, range_set: &str) -> bool {
        self.range_sets
            .as_ref()
            .is_none_or(|ids| ids.iter().any(|id| id == range_set))
    }

    /// A short description for messages and logs (`node "a"`, `every node`, …).
    pub fn describe(&self) -> String {
        let nodes = match &self.nodes {
            NodeScope::Node(node) => format!("node {node:?}"),
            NodeScope::UnknownNode => "allocations with no recorded node".to_string(),
            NodeScope::AllNodes => "every node".to_string(),
        };
        match &self.range_sets {
            None => nodes,
            Some(ids) => format!("{nodes}, range sets {}", ids.join(" ")),
        }
    }
}

/// Where the kernel keeps this host's name (the UTS namespace of the process).
const HOSTNAME_FILE: &str = "/proc/sys/kernel/hostname";

/// The name of the node this process runs on, as plexus records it on allocations and
/// blocks and scopes GC by: `NODE_NAME` (Kubernetes' downward API convention), else the
/// kernel's host name; `None` when neither gives a non-empty name. Configuration that names
/// the node explicitly (`ipam.node_name`, `nodeName`) takes precedence in the callers.
pub fn local_node_name() -> Option<String> {
    std::env::var("NODE_NAME")
        .ok()
        .map(|n| n.trim().to_string())
        .filter(|n| !n.is_empty())
        .or_else(|| {
            std::fs::read_to_string(HOSTNAME_FILE)
                .ok()
                .map(|n| n.trim().to_string())
                .filter(|n| !n.is_empty())
        })
}

/// One allocation row as GC sees it: enough to decide whether its attachment is stale
/// and in scope, without loading the allocation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct AttachedRow {
    /// `CNI_CONTAINERID` of the holder.
    pub container_id: String,
    /// `CNI_IFNAME` of the holder.
    pub ifname: String,
    /// The node that claimed it, when recorded.
    pub node: Option<String>,
    /// The range set it was claimed under.
    pub range_set: String,
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn a_node_scope_covers_its_own_allocations_only() {
        let scope = GcScope::node("a");
        assert!(scope.covers_allocation(Some("a"), "s"));
        assert!(!scope.covers_allocation(Some("b"), "s"));
        assert!(!scope.covers_allocation(None, "s"));
        assert!(!GcScope::node("").covers_allocation(Some(""), "s"));
        assert!(scope.covers_block("a", "s"));
        assert!(!scope.covers_block("b", "s"));
    }

    #[test]
    fn unknown_node_scope_covers_unrecorded_allocations_and_no_block() {
        let scope = GcScope::unknown_node();
        assert!(scope.covers_allocation(None, "s"));
        assert!(scope.covers_allocation(Some(""), "s"));
        assert!(!scope.covers_allocation(Some("a"), "s"));
        assert!(!scope.covers_block("a", "s"));
    }

    #[test]
    fn range_sets_narrow_any_scope() {
        let scope = GcScope::all_nodes().with_range_sets(["x".to_string()]);
        assert!(scope.covers_allocation(Some("a"), "x"));
        assert!(scope.covers_allocation(None, "x"));
        assert!(!scope.covers_allocation(Some("a"), "y"));
        assert!(scope.covers_block("b", "x"));
        assert!(!scope.covers_block("b", "y"));
    }

    #[test]
    fn scopes_travel_as_json() {
        for scope in [
            GcScope::node("n1"),
            GcScope::unknown_node(),
            GcScope::all_nodes().with_range_sets(["s".to_string()]),
        ] {
            let text = serde_json::to_string(&scope).unwrap();
            assert_eq!(serde_json::from_str::<GcScope>(&text).unwrap(), scope);
        }
        // A scope is never defaulted: a request without one is refused, not widened.
        assert!(serde_json::from_str::<GcScope>("{}").is_err());
    }

    proptest! {
        /// A node's scope never covers another node's or an unrecorded allocation.
        #[test]
        fn node_scope_is_exact(mine in "[a-c]{1,2}", theirs in proptest::option::of("[a-c]{1,2}")) {
            let covered = GcScope::node(mine.clone()).covers_allocation(theirs.as_deref(), "s");
            prop_assert_eq!(covered, theirs.as_deref() == Some(mine.as_str()));
        }
    }
}
