//! Runs every conformance check against [`MemoryStore`] and [`SqliteStore`].

use std::sync::atomic::{AtomicUsize, Ordering};

use super::*;
use crate::{MemoryStore, SqliteConfig, SqliteStore};

/// A directory of SQLite files, one fresh database per call of `make`.
struct SqliteFactory {
    dir: tempfile::TempDir,
    next: AtomicUsize,
}

impl SqliteFactory {
    fn new() -> Self {
        SqliteFactory {
            dir: tempfile::tempdir().unwrap(),
            next: AtomicUsize::new(0),
        }
    }

    fn make(&self) -> Box<dyn Store> {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        let path = self.dir.path().join(format!("conformance-{n}.db"));
        Box::new(SqliteStore::open(&SqliteConfig::new(path)).unwrap())
    }
}

/// One test per check and backend, so a failure names both.
macro_rules! conformance_tests {
    ($($check:ident),* $(,)?) => {
        mod memory {
            $(
                #[tokio::test]
                async fn $check() {
                    super::super::$check(&crate::MemoryStore::new()).await;
                }
            )*
        }
        mod sqlite {
            $(
                #[tokio::test]
                async fn $check() {
                    let factory = super::SqliteFactory::new();
                    super::super::$check(&*factory.make()).await;
                }
            )*
        }
    };
}

conformance_tests!(
    claim_then_release,
    reclaim_is_idempotent,
    static_claim,
    static_conflict_names_holder,
    dynamic_skips_held_addresses,
    multi_claim_is_atomic,
    exhaustion_at_exact_capacity,
    next_fit_does_not_reuse_at_once,
    networks_are_independent,
    gc_releases_only_stale_of_one_network,
    count_between_counts_a_window,
    probe_succeeds,
    blocks_two_nodes_get_different_blocks,
    blocks_fill_then_claim_another,
    blocks_borrow_when_all_claimed,
    blocks_released_only_after_grace,
    blocks_never_released_while_holding,
    owner_details_are_kept,
    list_between_pages_in_order,
    networks_are_stored_with_revisions,
    allocated_networks_outlive_their_definitions,
    history_records_claims_and_releases,
    history_is_atomic_with_claims,
    recorded_history_is_kept,
);

#[tokio::test]
async fn history_is_bounded_in_memory() {
    history_is_bounded(&MemoryStore::with_history_limit(5), 5).await;
}

#[tokio::test]
async fn history_is_bounded_in_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = SqliteConfig::new(dir.path().join("bounded.db"));
    cfg.history_limit = 5;
    history_is_bounded(&SqliteStore::open(&cfg).unwrap(), 5).await;
}

#[tokio::test]
async fn run_all_passes_for_memory() {
    run_all(|| Box::new(MemoryStore::new())).await;
}

#[tokio::test]
async fn run_all_passes_for_sqlite() {
    let factory = SqliteFactory::new();
    run_all(|| factory.make()).await;
}
