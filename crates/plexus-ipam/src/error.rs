//! The plugin's errors and their CNI codes.
//!
//! Library errors (configuration, store, static requests) are wrapped here and mapped to a
//! CNI code in one `From` impl; store errors take the code every plexus binary gives them
//! (`StoreError::to_cni_error`), and `plexus_cni::render_error` is the only place that
//! turns the result into JSON. The codes are `plexus_cni::codes`, documented in
//! `docs/errors.md`.

use std::net::IpAddr;

use plexus_cni::Error as CniError;
use plexus_cni::codes::{
    self,
    plexus::{CHECK_FAILED, STATIC_NOT_ALLOWED},
};
use plexus_ipam_core::{ConfigError, StaticError};
use plexus_store::StoreError;

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
    /// The store was still busy at its deadline (it retries transient errors until then).
    #[error("store still busy after {waited_ms} ms: {last}")]
    DeadlineExceeded {
        /// How long the store call took.
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
            IpamError::Store(store) => store.to_cni_error(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A store error is reported exactly as the meta-plugin reports it: one mapping.
    #[test]
    fn store_errors_take_the_shared_mapping() {
        let errors = [
            StoreError::Conflict {
                reason: "network blue is at revision 3, not 2".into(),
            },
            StoreError::Unavailable { reason: "x".into() },
            StoreError::Exhausted {
                network: "n".into(),
                range_set: "r".into(),
            },
            StoreError::Internal { reason: "x".into() },
        ];
        for store in errors {
            let shared = store.to_cni_error();
            assert_eq!(CniError::from(IpamError::Store(store)), shared);
        }
        let conflict = CniError::from(IpamError::Store(StoreError::Conflict {
            reason: "r".into(),
        }));
        assert_eq!(conflict.code, codes::TRY_AGAIN_LATER, "was 999 before");
    }

    #[test]
    fn own_errors_keep_their_codes() {
        let check = CniError::from(IpamError::CheckFailed("x".into()));
        assert_eq!(check.code, CHECK_FAILED);
        let deadline = CniError::from(IpamError::DeadlineExceeded {
            waited_ms: 10_000,
            last: StoreError::Busy { reason: "b".into() },
        });
        assert_eq!(deadline.code, codes::TRY_AGAIN_LATER);
        assert_eq!(deadline.details, "retry the operation later");
    }
}
