//! The I/O thread of a networked store (etcd, PostgreSQL): one private tokio runtime per
//! open store, on which every operation of that store runs.
//!
//! A store must not depend on how its caller built its runtime: tests, benchmarks and
//! embedders drive stores from current-thread runtimes without an I/O driver or timers,
//! where a client could neither open a socket nor let its deadline tick. So the
//! connection, its background tasks and the timers live on one worker thread owned by the
//! store, and callers await a join handle, which works from any executor (see "Execution
//! model" in docs/architecture.md).

use std::future::Future;

use tokio::runtime::{Builder, Runtime};

use crate::error::StoreError;

/// Owns the runtime; dropping it shuts the runtime down without blocking.
#[derive(Debug)]
pub(crate) struct Executor {
    runtime: Option<Runtime>,
    /// The backend, as error messages name it ("etcd", "PostgreSQL").
    backend: &'static str,
}

impl Executor {
    /// Starts the worker thread of a `backend` store (named so in errors and the thread).
    pub(crate) fn start(backend: &'static str) -> Result<Executor, StoreError> {
        let runtime = Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name(format!("plexus-{}", backend.to_ascii_lowercase()))
            .enable_all()
            .build()
            .map_err(|e| StoreError::Internal {
                reason: format!("cannot start the {backend} I/O thread: {e}"),
            })?;
        Ok(Executor {
            runtime: Some(runtime),
            backend,
        })
    }

    /// Runs `op` on the store's runtime and waits for it from whatever runtime calls.
    pub(crate) async fn run<T: Send + 'static>(
        &self,
        op: impl Future<Output = Result<T, StoreError>> + Send + 'static,
    ) -> Result<T, StoreError> {
        let Some(runtime) = &self.runtime else {
            return Err(StoreError::Internal {
                reason: format!("the {} I/O thread is shut down", self.backend),
            });
        };
        runtime.spawn(op).await.map_err(|e| StoreError::Internal {
            reason: format!("{} operation aborted: {e}", self.backend),
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
        let executor = Executor::start("etcd").unwrap();
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
        let executor = Executor::start("etcd").unwrap();
        let bare = Builder::new_current_thread().build().unwrap();
        let got: Result<(), StoreError> =
            bare.block_on(executor.run(async { panic!("boom in a test") }));
        assert!(matches!(got, Err(StoreError::Internal { .. })), "{got:?}");
    }

    #[test]
    fn runs_io_from_a_runtime_without_io_and_drops_inside_async() {
        let bare = Builder::new_current_thread().build().unwrap();
        let got = bare.block_on(async {
            let executor = Executor::start("PostgreSQL").unwrap();
            let got = executor
                .run(async {
                    let listener =
                        tokio::net::TcpListener::bind("127.0.0.1:0")
                            .await
                            .map_err(|e| StoreError::Internal {
                                reason: e.to_string(),
                            })?;
                    Ok(listener.local_addr().map(|a| a.port()).unwrap_or(0))
                })
                .await;
            drop(executor);
            got
        });
        assert!(got.unwrap() > 0);
    }
}
