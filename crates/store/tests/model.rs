//! Property: any sequence of claims, releases and GCs gives the same answers and the same
//! held sets from [`MemoryStore`] and [`SqliteStore`], and never holds an address twice.

mod common;

use std::collections::BTreeSet;
use std::net::IpAddr;

use common::{ip, range_set, runtime};
use plexus_ipam_core::range::RangeSet;
use plexus_store::{
    Allocation, AttachmentKey, Claim, MemoryStore, Owner, SqliteConfig, SqliteStore, Store,
    StoreError,
};
use proptest::prelude::*;

const NETWORKS: [&str; 2] = ["net-a", "net-b"];
const CONTAINERS: u8 = 5;

#[derive(Debug, Clone)]
enum Op {
    /// `sets`: bit 0 = IPv4 pool, bit 1 = IPv6 pool (0 means a static IPv4 claim).
    Claim {
        net: usize,
        container: u8,
        sets: u8,
        static_host: u8,
    },
    Release {
        net: usize,
        container: u8,
    },
    Gc {
        net: usize,
        valid_mask: u8,
    },
}

fn op() -> impl Strategy<Value = Op> {
    let net = 0..NETWORKS.len();
    prop_oneof![
        4 => (net.clone(), 0..CONTAINERS, 0u8..4, 1u8..7).prop_map(
            |(net, container, sets, static_host)| Op::Claim { net, container, sets, static_host }
        ),
        2 => (net.clone(), 0..CONTAINERS).prop_map(|(net, container)| Op::Release { net, container }),
        1 => (net, any::<u8>()).prop_map(|(net, valid_mask)| Op::Gc { net, valid_mask }),
    ]
}

fn key(net: usize, container: u8) -> AttachmentKey {
    AttachmentKey::new(NETWORKS[net], format!("c{container}"), "eth0")
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

async fn apply(store: &dyn Store, pools: &Pools, op: &Op) -> Result<Vec<Allocation>, StoreError> {
    match *op {
        Op::Claim {
            net,
            container,
            sets,
            static_host,
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
            store.claim(&key(net, container), &owner, &claims).await
        }
        Op::Release { net, container } => store.release(&key(net, container)).await,
        Op::Gc { net, valid_mask } => {
            let valid: Vec<(String, String)> = (0..CONTAINERS)
                .filter(|c| valid_mask & (1 << c) != 0)
                .map(|c| (format!("c{c}"), "eth0".to_string()))
                .collect();
            let report = store.gc(NETWORKS[net], &valid).await?;
            assert!(report.errors.is_empty(), "{:?}", report.errors);
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
            let from_memory = rt.block_on(apply(&memory, &pools, op)).map(timeless);
            let from_sqlite = rt.block_on(apply(&sqlite, &pools, op)).map(timeless);
            prop_assert_eq!(&from_memory, &from_sqlite, "after {:?}", op);
            for net in NETWORKS {
                let in_memory = timeless(rt.block_on(memory.list(net)).unwrap());
                let in_sqlite = timeless(rt.block_on(sqlite.list(net)).unwrap());
                check_invariants(&in_memory);
                prop_assert_eq!(&in_memory, &in_sqlite, "{} after {:?}", net, op);
            }
        }
    }
}
