//! The plugin's errors and their CNI codes.
//!
//! Library errors (configuration, store, static requests) are wrapped here and mapped to a
//! CNI code in one `From` impl; `plexus_cni::render_error` is the only place that turns the
//! result into JSON. Codes are documented in `docs/errors.md`.

use std::net::IpAddr;

use plexus_cni::{Error as CniError, codes};
use plexus_ipam_core::{ConfigError, StaticError};
use plexus_store::StoreError;

/// Plugin-specific CNI error codes (≥ 100).
pub mod plugin_codes {
    /// No free address left in a range set of the network.
    pub const POOL_EXHAUSTED: u32 = 100;
    /// A statically requested address is held by another attachment.
    pub const ADDRESS_TAKEN: u32 = 101;
    /// A statically requested address is outside every range, reserved or excluded.
    pub const STATIC_NOT_ALLOWED: u32 = 102;
    /// CHECK found that the reservation in `prevResult` is not held by this attachment.
    pub const CHECK_FAILED: u32 = 103;
    /// The attachment already holds a different address than the one now requested.
    pub const ATTACHMENT_HOLDS_OTHER: u32 = 104;
    /// The store holds data this version cannot use (e.g. a newer schema).
    pub const STORE_CORRUPT: u32 = 105;
}

/// Everything that can make a `plexus-ipam` invocation fail.
#[derive(Debug, thiserror::Error)]
pub enum IpamError {
    /// An error the CNI layer already classified (environment, netconf, arguments).
    #[error("{}", .0.msg)]
    Cni(CniError),
    /// The `ipam` section is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A statically requested address cannot be used.
    #[error(transparent)]
    Static(#[from] StaticError),
    /// The store failed or refused the operation.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Two static addresses were requested for the same range set.
    #[error("two static addresses requested for range set {range_set}: {first} and {second}")]
    StaticTwice {
        /// The range set both addresses fall into.
        range_set: String,
        /// The first address requested.
        first: IpAddr,
        /// The second address requested.
        second: IpAddr,
    },
    /// CHECK found a mismatch between `prevResult` and the store.
    #[error("{0}")]
    CheckFailed(String),
    /// The transient error persisted until the deadline.
    #[error("store still busy after {waited_ms} ms: {last}")]
    DeadlineExceeded {
        /// How long the plugin kept retrying.
        waited_ms: u128,
        /// The last transient error seen.
        last: StoreError,
    },
    /// GC could not release every stale allocation.
    #[error("GC of network {network} released {released} allocation(s) but failed {failed}")]
    GcIncomplete {
        /// The network collected.
        network: String,
        /// How many allocations were released.
        released: usize,
        /// How many could not be released.
        failed: usize,
        /// One line per failure.
        details: Vec<String>,
    },
    /// STATUS: the plugin cannot serve ADD right now.
    #[error("{0}")]
    NotAvailable(String),
}

impl From<CniError> for IpamError {
    fn from(err: CniError) -> Self {
        IpamError::Cni(err)
    }
}

impl From<IpamError> for CniError {
    fn from(err: IpamError) -> Self {
        use plugin_codes::*;
        let msg = err.to_string();
        match err {
            IpamError::Cni(inner) => inner,
            IpamError::Config(_) => CniError::new(codes::INVALID_CONFIG, msg, String::new()),
            IpamError::Static(_) => CniError::new(STATIC_NOT_ALLOWED, msg, String::new()),
            IpamError::StaticTwice { .. } => {
                CniError::new(codes::INVALID_CONFIG, msg, String::new())
            }
            IpamError::CheckFailed(_) => CniError::new(CHECK_FAILED, msg, String::new()),
            IpamError::DeadlineExceeded { .. } => {
                CniError::new(codes::TRY_AGAIN_LATER, msg, "retry the operation later")
            }
            IpamError::GcIncomplete { details, .. } => {
                CniError::new(codes::TRY_AGAIN_LATER, msg, details.join("; "))
            }
            IpamError::NotAvailable(_) => CniError::new(codes::NOT_AVAILABLE, msg, String::new()),
            IpamError::Store(store) => {
                let code = match &store {
                    StoreError::Exhausted { .. } => POOL_EXHAUSTED,
                    StoreError::AddressTaken { .. } => ADDRESS_TAKEN,
                    StoreError::AttachmentHoldsOther { .. } => ATTACHMENT_HOLDS_OTHER,
                    StoreError::Config { .. } => codes::INVALID_CONFIG,
                    StoreError::Corrupt { .. } => STORE_CORRUPT,
                    StoreError::Unavailable { .. } | StoreError::Busy { .. } => {
                        codes::TRY_AGAIN_LATER
                    }
                    // The plugin writes no network definitions: a conflict is unexpected.
                    StoreError::Internal { .. } | StoreError::Conflict { .. } => codes::INTERNAL,
                };
                CniError::new(code, msg, String::new())
            }
        }
    }
}
