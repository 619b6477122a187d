//! A private tokio runtime that runs every PostgreSQL operation of one store.
//!
//! The store must not depend on how its caller built its runtime: a plugin process drives
//! the store from a current-thread runtime without I/O or timers, where tokio-postgres
//! could not even open a socket. So the socket, the deadline timer and the pool live on one
//! worker thread owned by the store, and callers await a join handle (which works from any
//! executor).

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
    pub fn start() -> Result<Executor, StoreError> {
        let runtime = Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("plexus-postgres")
            .enable_all()
            .build()
            .map_err(|e| StoreError::Internal {
                reason: format!("cannot start the PostgreSQL I/O thread: {e}"),
            })?;
        Ok(Executor {
            runtime: Some(runtime),
        })
    }

    /// Runs `op` on the store's runtime and waits for it from whatever runtime calls.
    pub async fn run<T: Send + 'static>(
        &self,
        op: impl Future<Output = Result<T, StoreError>> + Send + 'static,
    ) -> Result<T, StoreError> {
        let Some(runtime) = &self.runtime else {
            return Err(StoreError::Internal {
                reason: "the PostgreSQL I/O thread is shut down".into(),
            });
        };
        runtime.spawn(op).await.map_err(|e| StoreError::Internal {
            reason: format!("PostgreSQL operation aborted: {e}"),
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
    fn runs_io_from_a_runtime_without_io_and_drops_inside_async() {
        // The plugin's runtime: current-thread, no I/O driver, no timers.
        let bare = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let got = bare.block_on(async {
            let executor = Executor::start().unwrap();
            let got = executor
                .run(async {
                    tokio::time::sleep(std::time::Duration::from_millis(1)).await;
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

    #[test]
    fn a_panicking_operation_is_an_internal_error() {
        let bare = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let executor = Executor::start().unwrap();
        let result: Result<(), StoreError> =
            bare.block_on(executor.run(async { panic!("boom in a test") }));
        assert!(
            matches!(result, Err(StoreError::Internal { .. })),
            "{result:?}"
        );
    }
}
