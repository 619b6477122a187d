//! The allocation store of plexus: one [`Store`] trait and its backends.
//!
//! A store keeps which address each CNI attachment (network, container id, interface)
//! holds, and guarantees in the store itself that no address of a network is held twice.
//! All backends share the claim logic (idempotency, static conflicts, next-fit search via
//! `plexus_ipam_core::search`, per-node blocks) in the engine, on top of a small
//! per-backend transaction trait, so they hand out the same addresses for the same history.
//!
//! Backends:
//! - [`SqliteStore`]: the embedded default, one SQLite file per node.
//! - [`EtcdStore`]: etcd v3, one optimistic transaction per claim.
//! - [`MemoryStore`]: an in-memory fake with the same semantics, for tests.
//!
//! [`remote`] is the node agent (`plexusd node`) and the plugin's [`RemoteStore`], which
//! reaches it over a Unix socket.
//!
//! [`StoreError::cni_code`] and [`StoreError::to_cni_error`] are how every plexus binary
//! reports a store error to its runtime.
//!
//! [`StoreConfig::from_json`] parses the `"store"` object of the IPAM configuration,
//! [`whereabouts::store_of_section`] picks the store of a whole `ipam` section (its
//! `store`, else whereabouts' etcd keys) and [`open`] opens the store it names. The
//! `conformance` feature exposes the [`conformance`] suite every backend must pass.

pub mod backoff;
mod cni;
mod common;
mod config;
mod engine;
mod error;
mod etcd;
mod gc_scope;
mod io_thread;
mod memory;
mod postgres;
mod records;
pub mod remote;
mod sqlite;
mod store;
mod types;
pub mod whereabouts;

#[cfg(any(test, feature = "conformance"))]
pub mod conformance;

// Lets in-crate tests share the integration tests' helpers, which name the crate.
#[cfg(test)]
extern crate self as plexus_store;

pub use common::Secret;
pub use config::{
    DEFAULT_BUSY_TIMEOUT, DEFAULT_SQLITE_PATH, OpenMode, SqliteConfig, StoreConfig, Synchronous,
};
pub use error::StoreError;
pub use etcd::{
    DEFAULT_ETCD_PREFIX, DEFAULT_ETCD_TIMEOUT, EtcdConfig, EtcdStore, ForeignEtcd, ForeignValue,
    LATEST_LAYOUT as ETCD_LAYOUT_VERSION,
};
pub use gc_scope::{GcScope, NodeScope, local_node_name};
pub use memory::MemoryStore;
pub use plexus_ipam_core::BlockPolicy;
pub use postgres::{
    DEFAULT_PG_PORT, DEFAULT_PG_TIMEOUT, LATEST_VERSION as POSTGRES_SCHEMA_VERSION, Layout,
    PasswordSource, PostgresConfig, PostgresStore, SslMode,
};
pub use records::{
    DEFAULT_HISTORY_LIMIT, HistoryEvent, HistoryKind, HistoryQuery, MAX_HISTORY_LIMIT,
    NetworkDeletion, NetworkRecord, PutMode,
};
pub use remote::{AgentSetting, RemoteStore, open_with_agent, open_with_agent_as};
pub use sqlite::{LATEST_VERSION as SQLITE_SCHEMA_VERSION, SqliteStore};
pub use store::Store;
pub use types::{
    Allocation, AttachmentKey, Block, Claim, ClaimContext, ClaimRequest, GcReport, Owner, unix_now,
};

/// Opens the store `cfg` names, creating it when missing (async: network backends connect
/// here).
pub async fn open(cfg: &StoreConfig) -> Result<Box<dyn Store>, StoreError> {
    open_as(cfg, OpenMode::CreateIfMissing).await
}

/// Opens the store `cfg` names; with [`OpenMode::MustExist`] a store that does not exist is
/// refused (naming where it was looked for) and nothing is created.
pub async fn open_as(cfg: &StoreConfig, mode: OpenMode) -> Result<Box<dyn Store>, StoreError> {
    match cfg {
        StoreConfig::Sqlite(sqlite) => Ok(Box::new(SqliteStore::open_as(sqlite, mode)?)),
        StoreConfig::Postgres(pg) => Ok(Box::new(PostgresStore::open(pg)?)),
        StoreConfig::Etcd(etcd) => Ok(Box::new(EtcdStore::open(etcd)?)),
    }
}
