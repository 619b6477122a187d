//! The GC backstop for blocks left empty without an emptied mark.
//!
//! Two releases emptying one block side by side can each still count the other's address
//! and leave the block unmarked (backends whose releases of one network run side by side:
//! PostgreSQL, etcd). Nothing would then release the block until its node used and emptied
//! it again; GC marks it, and releases it a grace period later. The check is in two parts
//! because producing the unmarked state is backend-specific: each backend's test runs
//! [`unmarked_block_setup`], removes the returned attachments' addresses without a
//! release's bookkeeping (or races their two releases for real), then runs
//! [`unmarked_block_check`].

use super::support::{key, ok, owner, range_set};
use crate::types::unix_now;
use crate::{AttachmentKey, Block, BlockPolicy, Claim, ClaimContext, GcScope, Store};

/// The network of the check.
pub const UNMARKED_NET: &str = "conf-blocks-unmarked";

/// Blocks of /28, released after 600 s.
fn policy() -> BlockPolicy {
    BlockPolicy {
        v4_prefix: 28,
        v6_prefix: 124,
        release_after_secs: 600,
        enabled: true,
    }
}

/// node-a claims `a0` and `a1` (one block); node-b claims `b0`, which it keeps. Returns
/// the keys of `a0` and `a1`: the backend's test removes both addresses without marking
/// their block.
pub async fn unmarked_block_setup(store: &dyn Store) -> [AttachmentKey; 2] {
    let set = range_set("10.24.0.0/26");
    for (container, node) in [("a0", "node-a"), ("a1", "node-a"), ("b0", "node-b")] {
        let ctx = ClaimContext::new(node, policy());
        ok(
            store
                .claim(
                    &key(UNMARKED_NET, container, "eth0"),
                    &owner(container),
                    &[Claim::Dynamic(&set)],
                    &ctx,
                )
                .await,
            "claim",
        );
    }
    [
        key(UNMARKED_NET, "a0", "eth0"),
        key(UNMARKED_NET, "a1", "eth0"),
    ]
}

fn block_of(blocks: &[Block], node: &str) -> Block {
    blocks
        .iter()
        .find(|b| b.node == node)
        .unwrap_or_else(|| panic!("{node} holds no block: {blocks:?}"))
        .clone()
}

/// After the backend removed the `forgotten` addresses without marking their block: GC
/// marks that block at its `now` (not node-b's, which holds `b0`), and releases it only
/// once the grace period has passed.
pub async fn unmarked_block_check(store: &dyn Store, forgotten: &[AttachmentKey]) {
    for key in forgotten {
        assert!(
            ok(store.attachment(key).await, "attachment").is_empty(),
            "the backend's test removed {key:?}"
        );
    }
    let blocks = ok(store.blocks(UNMARKED_NET).await, "blocks");
    let a = block_of(&blocks, "node-a");
    assert_eq!(a.emptied_at, None, "the test left node-a's block unmarked");

    let keep = [("b0".to_string(), "eth0".to_string())];
    let now = unix_now();
    let report = ok(
        store
            .gc(UNMARKED_NET, &keep, &GcScope::all_nodes(), &policy(), now)
            .await,
        "gc",
    );
    assert!(report.released.is_empty(), "{report:?}");
    assert!(
        report.released_blocks.is_empty(),
        "marked now, not yet released"
    );
    let blocks = ok(store.blocks(UNMARKED_NET).await, "blocks");
    assert_eq!(block_of(&blocks, "node-a").emptied_at, Some(now));
    assert_eq!(
        block_of(&blocks, "node-b").emptied_at,
        None,
        "a block holding an address is never marked"
    );

    let report = ok(
        store
            .gc(
                UNMARKED_NET,
                &keep,
                &GcScope::all_nodes(),
                &policy(),
                now + 600,
            )
            .await,
        "gc",
    );
    assert_eq!(report.released_blocks.len(), 1, "{report:?}");
    assert_eq!(report.released_blocks[0].base, a.base);
    let blocks = ok(store.blocks(UNMARKED_NET).await, "blocks");
    assert_eq!(blocks.len(), 1, "{blocks:?}");
    assert_eq!(blocks[0].node, "node-b");
}
