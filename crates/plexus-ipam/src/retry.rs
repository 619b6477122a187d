//! Bounded retries with jittered exponential backoff for transient store errors.
//!
//! A store signals contention or a short outage with a transient error; the plugin keeps
//! trying until its deadline and then answers CNI code 11 ("try again later"), never hangs.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::time::{Duration, Instant};

use plexus_store::StoreError;

use crate::IpamError;

/// How long one CNI call may keep retrying transient store errors by default.
pub const DEFAULT_DEADLINE: Duration = Duration::from_secs(10);

/// Runs `op` until it succeeds, fails permanently, or `deadline` has passed.
pub async fn with_deadline<T, F, Fut>(deadline: Duration, mut op: F) -> Result<T, IpamError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, StoreError>>,
{
    let started = Instant::now();
    let mut backoff = Duration::from_millis(5);
    loop {
        match op().await {
            Ok(value) => return Ok(value),
            Err(err) if err.is_transient() => {
                let waited = started.elapsed();
                if waited >= deadline {
                    return Err(IpamError::DeadlineExceeded {
                        waited_ms: waited.as_millis(),
                        last: err,
                    });
                }
                tracing::debug!(error = %err, "transient store error, retrying");
                let pause = jittered(backoff).min(deadline - waited);
                std::thread::sleep(pause);
                backoff = (backoff * 2).min(Duration::from_millis(500));
            }
            Err(err) => return Err(err.into()),
        }
    }
}

/// `base` scaled by a factor in [0.5, 1.5) so that racing processes spread out.
fn jittered(base: Duration) -> Duration {
    // std's per-process random hasher keys are entropy enough for spreading retries.
    let noise = RandomState::new().build_hasher().finish();
    let factor = 0.5 + (noise % 1000) as f64 / 1000.0;
    base.mul_f64(factor)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;

    fn block_on<F: std::future::Future>(fut: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .map(|rt| rt.block_on(fut))
            .unwrap_or_else(|e| panic!("runtime: {e}"))
    }

    #[test]
    fn transient_errors_are_retried_until_success() {
        let calls = Cell::new(0);
        let out = block_on(with_deadline(Duration::from_secs(5), || {
            calls.set(calls.get() + 1);
            let n = calls.get();
            async move {
                if n < 3 {
                    Err(StoreError::Busy {
                        reason: "locked".into(),
                    })
                } else {
                    Ok(n)
                }
            }
        }));
        assert_eq!(out.ok(), Some(3));
        assert_eq!(calls.get(), 3);
    }

    #[test]
    fn persistent_transient_error_ends_at_the_deadline_with_code_11() {
        let started = Instant::now();
        let out: Result<(), _> = block_on(with_deadline(Duration::from_millis(200), || async {
            Err(StoreError::Busy {
                reason: "locked".into(),
            })
        }));
        let elapsed = started.elapsed();
        let err = plexus_cni::Error::from(out.expect_err("must fail"));
        assert_eq!(err.code, plexus_cni::codes::TRY_AGAIN_LATER);
        assert!(
            elapsed >= Duration::from_millis(200),
            "gave up early: {elapsed:?}"
        );
        assert!(
            elapsed < Duration::from_secs(2),
            "overran the deadline: {elapsed:?}"
        );
    }

    #[test]
    fn permanent_errors_are_not_retried() {
        let calls = Cell::new(0);
        let out: Result<(), _> = block_on(with_deadline(Duration::from_secs(5), || {
            calls.set(calls.get() + 1);
            async {
                Err(StoreError::Exhausted {
                    network: "n".into(),
                    range_set: "r".into(),
                })
            }
        }));
        assert!(out.is_err());
        assert_eq!(calls.get(), 1);
    }
}
