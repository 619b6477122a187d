//! Property: any sequence of claims (from several nodes, with per-node blocks), releases
//! and GCs (of one node or of every node) gives the same answers, the same held sets and the same blocks from
//! [`MemoryStore`] and [`SqliteStore`], and never holds an address twice.

mod common;

use std::collections::BTreeSet;
use std::net::IpAddr;

use common::{ip, range_set, runtime};
use plexus_ipam_core::range::RangeSet;
use plexus_store::{
    Allocation, AttachmentKey, Block, BlockPolicy, Claim, ClaimContext, GcScope, MemoryStore,
    Owner, SqliteConfig, SqliteStore, Store, StoreError,
};
use proptest::prelude::*;

const NETWORKS: [&str; 2] = ["net-a", "net-b"];
const CONTAINERS: u8 = 5;
const NODES: [&str; 3] = ["node-a", "node-b", "node-c"];
/// Seconds a GC may jump ahead, well past the grace period.
const LATE: i64 = 10_000;

#[derive(Debug, Clone)]
enum Op {
    /// `sets`: bit 0 = IPv4 pool, bit 1 = IPv6 pool (0 means a static IPv4 claim).
    Claim {
        net: usize,
        container: u8,
        sets: u8,
        static_host: u8,
        node: usize,
        blocks: bool,
    },
    Release {
        net: usize,
        container: u8,
    },
    /// `node`: the GC of one node's runtime, or (`None`) an operator's GC of every node.
    Gc {
        net: usize,
        valid_mask: u8,
        late: bool,
        node: Option<usize>,
    },
}

fn op() -> impl Strategy<Value = Op> {
    let net = 0..NETWORKS.len();
    prop_oneof![
        4 => (net.clone(), 0..CONTAINERS, 0u8..4, 1u8..7, 0..NODES.len(), prop::bool::weighted(0.8))
            .prop_map(|(net, container, sets, static_host, node, blocks)| Op::Claim {
                net, container, sets, static_host, node, blocks
            }),
        2 => (net.clone(), 0..CONTAINERS).prop_map(|(net, container)| Op::Release { net, container }),
        1 => (net, any::<u8>(), any::<bool>(), proptest::option::of(0..NODES.len()))
            .prop_map(|(net, valid_mask, late, node)| Op::Gc { net, valid_mask, late, node }),
    ]
}

fn key(net: usize, container: u8) -> AttachmentKey {
    AttachmentKey::new(NETWORKS[net], format!("c{container}"), "eth0")
}

/// Blocks of /30 (IPv4: the /29 pool has two) and /126 (IPv6: the pool is one block).
fn policy(enabled: bool) -> BlockPolicy {
    BlockPolicy {
        v4_prefix: 30,
        v6_prefix: 126,
        release_after_secs: 600,
        enabled,
    }
}

/// Blocks without the wall-clock emptied time (releases stamp it), only whether it is set.
fn timeless_blocks(mut blocks: Vec<Block>) -> Vec<Block> {
    for b in &mut blocks {
        b.emptied_at = b.emptied_at.map(|_| 0);
    }
    blocks
}

/// Allocations without the wall-clock timestamp, which may differ by a second.
fn timeless(mut allocations: Vec<Allocation>) -> Vec<Allocation> {
    for a in &mut allocations {
        a.created_at = 0;
    }
    allocations
}

struct Pools {
    v4: RangeSet,
    v6: RangeSet,
}

async fn apply(
    store: &dyn Store,
    pools: &Pools,
    op: &Op,
    now: i64,
) -> Result<Vec<Allocation>, StoreError> {
    match *op {
        Op::Claim {
            net,
            container,
            sets,
            static_host,
            node,
            blocks,
        } => {
            let static_ip = ip(&format!("10.3.0.{static_host}"));
            let claims: Vec<Claim<'_>> = match sets {
                0 => vec![Claim::Static {
                    set: &pools.v4,
                    ip: static_ip,
                }],
                1 => vec![Claim::Dynamic(&pools.v4)],
                2 => vec![Claim::Dynamic(&pools.v6)],
                _ => vec![Claim::Dynamic(&pools.v4), Claim::Dynamic(&pools.v6)],
            };
            let owner = Owner {
                pod_name: Some(format!("pod{container}")),
                ..Owner::default()
            };
            let ctx = ClaimContext::new(NODES[node], policy(blocks)).at(now);
            store
                .claim(&key(net, container), &owner, &claims, &ctx)
                .await
        }
        Op::Release { net, container } => store.release(&key(net, container)).await,
        Op::Gc {
            net,
            valid_mask,
            late,
            node,
        } => {
            let valid: Vec<(String, String)> = (0..CONTAINERS)
                .filter(|c| valid_mask & (1 << c) != 0)
                .map(|c| (format!("c{c}"), "eth0".to_string()))
                .collect();
            let at = if late { now + LATE } else { now };
            let scope = node.map_or_else(GcScope::all_nodes, |n| GcScope::node(NODES[n]));
            let report = store
                .gc(NETWORKS[net], &valid, &scope, &policy(true), at)
                .await?;
            assert!(report.errors.is_empty(), "{:?}", report.errors);
            if let Some(n) = node {
                // A node's GC releases its own allocations and blocks only.
                for a in &report.released {
                    assert_eq!(a.node.as_deref(), Some(NODES[n]), "{report:?}");
                }
                for b in &report.released_blocks {
                    assert_eq!(b.node, NODES[n], "{report:?}");
                }
            }
            Ok(report.released)
        }
    }
}

fn check_invariants(listing: &[Allocation]) {
    let ips: BTreeSet<IpAddr> = listing.iter().map(|a| a.ip).collect();
    assert_eq!(
        ips.len(),
        listing.len(),
        "an address held twice: {listing:?}"
    );
    let per_set: BTreeSet<(String, String, String)> = listing
        .iter()
        .map(|a| {
            (
                a.container_id.clone(),
                a.ifname.clone(),
                a.range_set.clone(),
            )
        })
        .collect();
    assert_eq!(
        per_set.len(),
        listing.len(),
        "two addresses for one key and range set"
    );
}

/// Blocks never overlap, and a block marked emptied holds no address.
fn check_blocks(blocks: &[Block], listing: &[Allocation]) {
    for pair in blocks.windows(2) {
        assert!(
            !pair[0].contains(pair[1].base),
            "overlapping blocks: {pair:?}"
        );
    }
    for b in blocks.iter().filter(|b| b.emptied_at.is_some()) {
        let inside: Vec<_> = listing.iter().filter(|a| b.contains(a.ip)).collect();
        assert!(inside.is_empty(), "emptied block {b:?} holds {inside:?}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn memory_and_sqlite_agree(ops in proptest::collection::vec(op(), 1..40)) {
        let pools = Pools { v4: range_set("10.3.0.0/29"), v6: range_set("fd00:3::/126") };
        let dir = tempfile::tempdir().unwrap();
        let sqlite = SqliteStore::open(&SqliteConfig::new(dir.path().join("model.db"))).unwrap();
        let memory = MemoryStore::new();
        let rt = runtime();
        for op in &ops {
            let now = plexus_store::unix_now();
            let from_memory = rt.block_on(apply(&memory, &pools, op, now)).map(timeless);
            let from_sqlite = rt.block_on(apply(&sqlite, &pools, op, now)).map(timeless);
            prop_assert_eq!(&from_memory, &from_sqlite, "after {:?}", op);
            for net in NETWORKS {
                let in_memory = timeless(rt.block_on(memory.list(net)).unwrap());
                let in_sqlite = timeless(rt.block_on(sqlite.list(net)).unwrap());
                check_invariants(&in_memory);
                prop_assert_eq!(&in_memory, &in_sqlite, "{} after {:?}", net, op);
                let blocks_memory = timeless_blocks(rt.block_on(memory.blocks(net)).unwrap());
                let blocks_sqlite = timeless_blocks(rt.block_on(sqlite.blocks(net)).unwrap());
                prop_assert_eq!(&blocks_memory, &blocks_sqlite, "blocks of {} after {:?}", net, op);
                check_blocks(&blocks_memory, &in_memory);
            }
        }
    }
}
