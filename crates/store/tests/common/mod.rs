//! Helpers shared by the integration tests.

#![allow(dead_code)]

use std::net::IpAddr;
use std::path::Path;

use plexus_ipam_core::range::{Range, RangeSet};
use plexus_store::{SqliteConfig, SqliteStore};

/// The address `s`.
pub fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// A range set of the single subnet `cidr` with default start and end.
pub fn range_set(cidr: &str) -> RangeSet {
    let range = Range::new(cidr.parse().unwrap(), None, None, None, Vec::new()).unwrap();
    RangeSet::new(vec![range]).unwrap()
}

/// Opens (creating) the store at `path` with default settings.
pub fn open(path: &Path) -> SqliteStore {
    SqliteStore::open(&SqliteConfig::new(path)).unwrap()
}

/// A current-thread runtime to drive the async store from plain tests and threads.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
}

/// SplitMix64: a tiny deterministic generator, so failures replay from the seed.
pub struct SplitMix(pub u64);

impl SplitMix {
    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number below `n` (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }
}

/// A claim context for node `node-a` now, with per-node blocks off (whole-set next-fit).
pub fn ctx() -> plexus_store::ClaimContext {
    plexus_store::ClaimContext::new("node-a", plexus_store::BlockPolicy::disabled())
}
