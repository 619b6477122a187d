//! A store call as the plugin makes it: once, with no retry loop of its own.
//!
//! The store retries what is transient (a conflicting writer, contention, a lock held by
//! another process) itself, with the shared `plexus_store::backoff::Backoff`, until its
//! configured deadline (`timeout_ms`, `busy_timeout_ms`). A transient error that still
//! comes out of the store therefore means that deadline is spent: the plugin answers CNI
//! code 11 ("try again later") at once and never hangs. See "Retries" in
//! docs/architecture.md.

use std::future::Future;
use std::time::Instant;

use plexus_store::StoreError;

use crate::IpamError;

/// Awaits `op`; a transient store error becomes [`IpamError::DeadlineExceeded`] (code 11).
pub async fn store_call<T>(
    op: impl Future<Output = Result<T, StoreError>>,
) -> Result<T, IpamError> {
    let started = Instant::now();
    match op.await {
        Ok(value) => Ok(value),
        Err(err) if err.is_transient() => Err(IpamError::DeadlineExceeded {
            waited_ms: started.elapsed().as_millis(),
            last: err,
        }),
        Err(err) => Err(err.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;
    use std::time::Duration;

    use plexus_store::{MemoryStore, Store};

    fn block_on<F: Future>(fut: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map(|rt| rt.block_on(fut))
            .unwrap_or_else(|e| panic!("runtime: {e}"))
    }

    #[test]
    fn a_busy_store_is_code_11_without_a_second_attempt() {
        let store = MemoryStore::new();
        store.set_failure(Some(StoreError::Busy {
            reason: "locked".into(),
        }));
        let calls = Cell::new(0);
        let started = Instant::now();
        let out = block_on(store_call(async {
            calls.set(calls.get() + 1);
            store.probe().await
        }));
        let err = plexus_cni::Error::from(out.expect_err("must fail"));
        assert_eq!(err.code, plexus_cni::codes::TRY_AGAIN_LATER);
        assert_eq!(
            calls.get(),
            1,
            "the store retried already: the plugin does not"
        );
        assert!(started.elapsed() < Duration::from_secs(2));
    }

    #[test]
    fn permanent_errors_keep_their_own_code() {
        let out: Result<(), _> = block_on(store_call(async {
            Err(StoreError::Exhausted {
                network: "n".into(),
                range_set: "r".into(),
            })
        }));
        let err = plexus_cni::Error::from(out.expect_err("must fail"));
        assert_ne!(err.code, plexus_cni::codes::TRY_AGAIN_LATER);
    }

    #[test]
    fn success_passes_through() {
        let store = MemoryStore::new();
        assert_eq!(block_on(store_call(store.list("n"))).ok(), Some(Vec::new()));
    }
}
