//! The one backoff of plexus: the pause between two attempts of a store call that failed
//! transiently (a conflicting writer, contention, an unanswered request).
//!
//! - **Bounded**: pauses grow exponentially from [`FIRST_PAUSE`] and never exceed
//!   [`MAX_PAUSE`] (or the bounds given to [`Backoff::with_pauses`]).
//! - **Jittered**: each pause is drawn uniformly from the upper half of the current step,
//!   `[step / 2, step]`, so writers that collided do not collide again in lockstep.
//! - **Deadline-aware**: no pause is granted that would end at or after the call's deadline;
//!   the caller then gives up with the error the call ends with.
//!
//! Only the stores retry, each under its own configured deadline (see "Retries" in
//! docs/architecture.md); the plugins above them never loop around a store call.

use std::time::{Duration, Instant};

use rand::RngExt;

/// First pause after a failed attempt.
pub const FIRST_PAUSE: Duration = Duration::from_millis(4);

/// Longest pause between two attempts.
pub const MAX_PAUSE: Duration = Duration::from_millis(128);

/// The pauses of one store call, between its start and its deadline.
#[derive(Debug, Clone)]
pub struct Backoff {
    deadline: Instant,
    step: Duration,
    max: Duration,
    failures: u32,
}

impl Backoff {
    /// Pauses from [`FIRST_PAUSE`] up to [`MAX_PAUSE`] for a call that must end by `deadline`.
    pub fn until(deadline: Instant) -> Backoff {
        Backoff::with_pauses(FIRST_PAUSE, MAX_PAUSE, deadline)
    }

    /// Pauses from `first` doubling up to `max` (`max` at least `first`) until `deadline`.
    pub fn with_pauses(first: Duration, max: Duration, deadline: Instant) -> Backoff {
        Backoff {
            deadline,
            step: first.min(max),
            max: max.max(first),
            failures: 0,
        }
    }

    /// The deadline of the call.
    pub fn deadline(&self) -> Instant {
        self.deadline
    }

    /// How many attempts have failed so far (how many pauses were asked for).
    pub fn failures(&self) -> u32 {
        self.failures
    }

    /// The pause before the next attempt, or `None` when it would not end before the
    /// deadline: the call then gives up. Counts one failed attempt either way.
    pub fn next_pause(&mut self) -> Option<Duration> {
        let unit = rand::rng().random_range(0.0..=1.0);
        self.next_pause_at(Instant::now(), unit)
    }

    /// [`Backoff::next_pause`] at `now` with the jitter drawn as `unit` in `[0, 1]`
    /// (0 the shortest pause of the step, 1 the longest).
    pub fn next_pause_at(&mut self, now: Instant, unit: f64) -> Option<Duration> {
        self.failures = self.failures.saturating_add(1);
        let unit = if unit.is_finite() {
            unit.clamp(0.0, 1.0)
        } else {
            1.0
        };
        let half = self.step / 2;
        let pause = half + (self.step - half).mul_f64(unit);
        self.step = self.step.saturating_mul(2).min(self.max);
        match now.checked_add(pause) {
            Some(end) if end < self.deadline => Some(pause),
            _ => None,
        }
    }

    /// Sleeps (without blocking the thread) for the next pause and returns `true`, or
    /// returns `false` at once when no further attempt fits before the deadline.
    pub async fn wait(&mut self) -> bool {
        match self.next_pause() {
            Some(pause) => {
                tokio::time::sleep(pause).await;
                true
            }
            None => false,
        }
    }

    /// Blocks the calling thread for the next pause and returns `true`, or returns `false`
    /// when no further attempt fits before the deadline. For synchronous code only (opening
    /// a SQLite file); async code uses [`Backoff::wait`].
    pub fn wait_blocking(&mut self) -> bool {
        match self.next_pause() {
            Some(pause) => {
                std::thread::sleep(pause);
                true
            }
            None => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn steps_double_up_to_the_cap() {
        let start = Instant::now();
        let mut backoff = Backoff::until(start + Duration::from_secs(60));
        let longest: Vec<_> = (0..8)
            .map(|_| backoff.next_pause_at(start, 1.0).unwrap())
            .collect();
        assert_eq!(longest, [4, 8, 16, 32, 64, 128, 128, 128].map(ms).to_vec());
        assert_eq!(backoff.failures(), 8);
    }

    #[test]
    fn no_pause_reaches_the_deadline() {
        let start = Instant::now();
        let mut backoff = Backoff::until(start + ms(10));
        assert_eq!(backoff.next_pause_at(start, 1.0), Some(ms(4)));
        // The next step is 8 ms: 4 + 8 ends past the 10 ms deadline.
        assert_eq!(backoff.next_pause_at(start + ms(4), 1.0), None);
        assert_eq!(backoff.failures(), 2);
    }

    #[tokio::test(flavor = "current_thread")]
    async fn wait_sleeps_on_the_runtime_until_the_deadline() {
        let start = Instant::now();
        let mut backoff = Backoff::until(start + Duration::from_secs(3600));
        assert!(backoff.wait().await);
        let mut spent = Backoff::until(start);
        assert!(!spent.wait().await);
    }

    proptest! {
        /// Every pause lies in `[step / 2, step]` of its step, never above the cap, and
        /// none is granted that would end at or after the deadline.
        #[test]
        fn pauses_are_bounded_jittered_and_deadline_aware(
            first_ms in 1u64..50,
            max_ms in 1u64..2000,
            deadline_ms in 0u64..5000,
            draws in proptest::collection::vec((0.0f64..=1.0, 0u64..400), 1..40),
        ) {
            let start = Instant::now();
            let deadline = start + ms(deadline_ms);
            let mut backoff = Backoff::with_pauses(ms(first_ms), ms(max_ms), deadline);
            let (first, max) = (ms(first_ms.min(max_ms)), ms(max_ms.max(first_ms)));
            let mut step = first;
            let mut now = start;
            for (unit, elapsed) in draws {
                now += ms(elapsed);
                let got = backoff.next_pause_at(now, unit);
                match got {
                    Some(pause) => {
                        prop_assert!(pause >= step / 2, "{pause:?} below half of {step:?}");
                        prop_assert!(pause <= step, "{pause:?} above {step:?}");
                        prop_assert!(pause <= max);
                        prop_assert!(now + pause < deadline, "pause ends past the deadline");
                    }
                    None => {
                        // Refused only when this step's pause could end past the deadline.
                        prop_assert!(now + step >= deadline, "refused a pause that fits");
                    }
                }
                step = (step * 2).min(max);
            }
        }

        /// The jitter is the whole upper half of the step: the shortest draw gives half
        /// the step, the longest the step itself, and pauses grow with the draw.
        #[test]
        fn jitter_spans_the_upper_half(first_ms in 2u64..200, a in 0.0f64..=1.0, b in 0.0f64..=1.0) {
            let start = Instant::now();
            let far = start + Duration::from_secs(3600);
            let pause = |unit: f64| {
                Backoff::with_pauses(ms(first_ms), MAX_PAUSE.max(ms(first_ms)), far)
                    .next_pause_at(start, unit)
                    .unwrap()
            };
            let step = ms(first_ms);
            prop_assert_eq!(pause(0.0), step / 2 + (step - step / 2).mul_f64(0.0));
            prop_assert_eq!(pause(1.0), step);
            let (lo, hi) = (a.min(b), a.max(b));
            prop_assert!(pause(lo) <= pause(hi));
        }
    }
}
