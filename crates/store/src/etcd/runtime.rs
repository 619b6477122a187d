//! The private tokio runtime every etcd operation of one store runs on.
//!
//! A CNI plugin drives the store from a bare current-thread runtime (no I/O driver, no
//! timers), where the gRPC channel could not open a socket nor the deadline tick. So the
//! channel, its background tasks and the timers live on one worker thread owned by the
//! store, and callers await a join handle, which works from any executor.

use std::future::Future;

use tokio::runtime::{Builder, Runtime};

use crate::error::StoreError;

/// Owns the runtime; dropping it shuts the runtime down without blocking.
#[derive(Debug)]
pub(crate) struct Executor {
    runtime: Option<Runtime>,
}

impl Executor {
    /// Starts the worker thread.
    pub(crate) fn start() -> Result<Executor, StoreError> {
        let runtime = Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("plexus-etcd")
            .enable_all()
            .build()
            .map_err(|e| StoreError::Internal {
                reason: format!("cannot start the etcd I/O thread: {e}"),
            })?;
        Ok(Executor {
            runtime: Some(runtime),
        })
    }

    /// Runs `op` on the store's runtime and waits for it from whatever runtime calls.
    pub(crate) async fn run<T: Send + 'static>(
        &self,
        op: impl Future<Output = Result<T, StoreError>> + Send + 'static,
    ) -> Result<T, StoreError> {
        let Some(runtime) = &self.runtime else {
            return Err(StoreError::Internal {
                reason: "the etcd I/O thread is shut down".into(),
            });
        };
        runtime.spawn(op).await.map_err(|e| StoreError::Internal {
            reason: format!("etcd operation aborted: {e}"),
        })?
    }
}

impl Drop for Executor {
    fn drop(&mut self) {
        // Dropping a runtime blocks until its tasks end, which panics inside async code
        // (a store dropped in an async fn): let the worker finish in the background.
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_timers_from_a_bare_runtime() {
        let executor = Executor::start().unwrap();
        // Like the plugin: a current-thread runtime without the time driver.
        let bare = Builder::new_current_thread().build().unwrap();
        let got = bare.block_on(executor.run(async {
            tokio::time::sleep(std::time::Duration::from_millis(1)).await;
            Ok(7)
        }));
        assert_eq!(got, Ok(7));
    }

    #[test]
    fn a_panicking_operation_is_an_internal_error() {
        let executor = Executor::start().unwrap();
        let bare = Builder::new_current_thread().build().unwrap();
        let got: Result<(), StoreError> =
            bare.block_on(executor.run(async { panic!("boom in a test") }));
        assert!(matches!(got, Err(StoreError::Internal { .. })), "{got:?}");
    }
}
