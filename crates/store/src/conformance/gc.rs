//! GC on a shared store: a node's GC collects what was claimed on that node and nothing
//! else. The valid attachments a runtime sends are its own node's only; applied to the
//! whole network they would release every other node's live addresses.

use std::collections::BTreeSet;

use super::blocks::{blocks_of, claim_on, small_blocks};
use super::support::{key, ok, owner, range_set};
use crate::types::unix_now;
use crate::{BlockPolicy, Claim, ClaimContext, GcScope, Store};

/// The attachments (container ids) `network` holds, in order.
async fn holders(store: &dyn Store, network: &str) -> BTreeSet<String> {
    ok(store.list(network).await, "list")
        .into_iter()
        .map(|a| a.container_id)
        .collect()
}

fn valid(containers: &[&str]) -> Vec<(String, String)> {
    containers
        .iter()
        .map(|c| (c.to_string(), "eth0".to_string()))
        .collect()
}

/// Claims one dynamic address for `container` on `node` (blocks off; an empty node
/// records no node, as imports of allocations without one do).
async fn claim_from(store: &dyn Store, net: &str, container: &str, node: &str) {
    let set = range_set("10.31.0.0/24");
    let ctx = ClaimContext::new(node, BlockPolicy::disabled());
    ok(
        store
            .claim(
                &key(net, container, "eth0"),
                &owner(container),
                &[Claim::Dynamic(&set)],
                &ctx,
            )
            .await,
        "claim",
    );
}

/// Two nodes on one store: GC from node A with A's valid list releases A's stale
/// attachment and nothing of node B's, nor anything whose node is unknown; those go only
/// by an explicit scope.
pub async fn gc_of_a_node_spares_other_nodes(store: &dyn Store) {
    let net = "conf-gc-nodes";
    for (container, node) in [
        ("a-live", "node-a"),
        ("a-stale", "node-a"),
        ("b-live", "node-b"),
        ("b-stale", "node-b"),
        ("unknown", ""),
    ] {
        claim_from(store, net, container, node).await;
    }
    let recorded = ok(store.attachment(&key(net, "unknown", "eth0")).await, "get");
    assert_eq!(
        recorded[0].node, None,
        "an empty node is recorded as unknown"
    );

    // Node A's runtime knows only a-live.
    let report = ok(
        store
            .gc(
                net,
                &valid(&["a-live"]),
                &GcScope::node("node-a"),
                &BlockPolicy::disabled(),
                unix_now(),
            )
            .await,
        "gc from node-a",
    );
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    let released: Vec<&str> = report
        .released
        .iter()
        .map(|a| a.container_id.as_str())
        .collect();
    assert_eq!(
        released,
        ["a-stale"],
        "node-a's GC releases its own stale attachment only"
    );
    assert_eq!(
        holders(store, net).await,
        ["a-live", "b-live", "b-stale", "unknown"]
            .map(String::from)
            .into(),
    );

    // Node B's GC with B's list: the same for B.
    let report = ok(
        store
            .gc(
                net,
                &valid(&["b-live"]),
                &GcScope::node("node-b"),
                &BlockPolicy::disabled(),
                unix_now(),
            )
            .await,
        "gc from node-b",
    );
    assert_eq!(report.released.len(), 1);
    assert_eq!(report.released[0].container_id, "b-stale");

    // A node unknown to the store collects nothing, whatever its list says.
    let report = ok(
        store
            .gc(
                net,
                &[],
                &GcScope::node("node-c"),
                &BlockPolicy::disabled(),
                unix_now(),
            )
            .await,
        "gc from a node holding nothing",
    );
    assert!(report.released.is_empty(), "{report:?}");

    // Allocations with no recorded node: only an explicit scope collects them.
    let report = ok(
        store
            .gc(
                net,
                &valid(&["a-live", "b-live"]),
                &GcScope::unknown_node(),
                &BlockPolicy::disabled(),
                unix_now(),
            )
            .await,
        "gc of unknown-node allocations",
    );
    assert_eq!(report.released.len(), 1);
    assert_eq!(report.released[0].container_id, "unknown");
    assert_eq!(
        holders(store, net).await,
        ["a-live", "b-live"].map(String::from).into(),
    );

    // Every node, explicitly: a cluster-wide valid set.
    let report = ok(
        store
            .gc(
                net,
                &valid(&["b-live"]),
                &GcScope::all_nodes(),
                &BlockPolicy::disabled(),
                unix_now(),
            )
            .await,
        "gc of every node",
    );
    assert_eq!(report.released.len(), 1);
    assert_eq!(report.released[0].container_id, "a-live");
    assert_eq!(
        holders(store, net).await,
        ["b-live"].map(String::from).into()
    );
}

/// A range-set scope leaves the allocations of other range sets of the network alone
/// (network configurations sharing one network each collect their own).
pub async fn gc_scoped_to_range_sets(store: &dyn Store) {
    let net = "conf-gc-sets";
    let (x, y) = (range_set("10.32.0.0/24"), range_set("10.32.1.0/24"));
    let ctx = ClaimContext::new("node-a", BlockPolicy::disabled());
    for (container, set) in [("in-x", &x), ("in-y", &y)] {
        ok(
            store
                .claim(
                    &key(net, container, "eth0"),
                    &owner(container),
                    &[Claim::Dynamic(set)],
                    &ctx,
                )
                .await,
            "claim",
        );
    }
    let scope = GcScope::node("node-a").with_range_sets([x.id()]);
    let report = ok(
        store
            .gc(net, &[], &scope, &BlockPolicy::disabled(), unix_now())
            .await,
        "gc of range set x",
    );
    let released: Vec<&str> = report
        .released
        .iter()
        .map(|a| a.container_id.as_str())
        .collect();
    assert_eq!(released, ["in-x"]);
    assert_eq!(holders(store, net).await, ["in-y"].map(String::from).into());
}

/// A node's GC releases only that node's empty blocks; another node's stay its own
/// until that node's GC (or a claim needing a new block) releases them.
pub async fn gc_of_a_node_releases_only_its_blocks(store: &dyn Store) {
    let net = "conf-gc-node-blocks";
    let set = range_set("10.33.0.0/26");
    let now = unix_now();
    for (container, node) in [("a0", "node-a"), ("b0", "node-b")] {
        ok(
            claim_on(store, net, container, &set, node, now).await,
            "claim",
        );
        ok(store.release(&key(net, container, "eth0")).await, "release");
    }
    assert_eq!(blocks_of(store, net, "node-a").await.len(), 1);
    assert_eq!(blocks_of(store, net, "node-b").await.len(), 1);
    let late = now + 100_000;
    let report = ok(
        store
            .gc(net, &[], &GcScope::node("node-a"), &small_blocks(), late)
            .await,
        "gc from node-a",
    );
    assert_eq!(report.released_blocks.len(), 1, "{report:?}");
    assert_eq!(report.released_blocks[0].node, "node-a");
    assert!(blocks_of(store, net, "node-a").await.is_empty());
    assert_eq!(
        blocks_of(store, net, "node-b").await.len(),
        1,
        "node-b's block stays"
    );
    let report = ok(
        store
            .gc(net, &[], &GcScope::node("node-b"), &small_blocks(), late)
            .await,
        "gc from node-b",
    );
    assert_eq!(report.released_blocks.len(), 1, "{report:?}");
    assert!(ok(store.blocks(net).await, "blocks").is_empty());
}
