//! The allocation store of plexus: one [`Store`] trait and its backends.
//!
//! A store keeps which address each CNI attachment (network, container id, interface)
//! holds, and guarantees in the store itself that no address of a network is held twice.
//! All backends share the claim logic (idempotency, static conflicts, next-fit search via
//! `plexus_ipam_core::search`), so they hand out the same addresses for the same history.
//!
//! Backends:
//! - [`SqliteStore`]: the embedded default, one SQLite file per node.
//! - [`MemoryStore`]: an in-memory fake with the same semantics, for tests.
//!
//! [`StoreConfig::from_json`] parses the `"store"` object of the IPAM configuration and
//! [`open`] opens the store it names. The `conformance` feature exposes the
//! [`conformance`] suite every backend must pass.

mod config;
mod engine;
mod error;
mod memory;
mod sqlite;
mod store;
mod types;

#[cfg(any(test, feature = "conformance"))]
pub mod conformance;

pub use config::{
    DEFAULT_BUSY_TIMEOUT, DEFAULT_SQLITE_PATH, SqliteConfig, StoreConfig, Synchronous,
};
pub use error::StoreError;
pub use memory::MemoryStore;
pub use sqlite::{LATEST_VERSION as SQLITE_SCHEMA_VERSION, SqliteStore};
pub use store::Store;
pub use types::{Allocation, AttachmentKey, Claim, GcReport, Owner};

/// Opens the store `cfg` names.
pub fn open(cfg: &StoreConfig) -> Result<Box<dyn Store>, StoreError> {
    match cfg {
        StoreConfig::Sqlite(sqlite) => Ok(Box::new(SqliteStore::open(sqlite)?)),
    }
}
