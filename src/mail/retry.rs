//! When a temporary failure is tried again, and when it is given up: one policy for the
//! transactional outbox and the digest queue alike (`[mail] max_attempts`,
//! `[mail] retry_base_seconds`). Uses nothing else in Herald.

use std::time::Duration;

const MAX_BACKOFF_SECONDS: f64 = 3600.0;

/// Retries with exponential backoff and jitter, up to a number of attempts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts before a message is given up.
    pub max_attempts: u32,
    /// First retry delay; each next one doubles, up to an hour.
    pub base: Duration,
}

impl RetryPolicy {
    pub fn new(max_attempts: u32, base: Duration) -> Self {
        Self { max_attempts, base }
    }

    /// After a temporary failure of attempt number `attempts` (1 for the first): how long
    /// to wait before the next, or `None` when that was the last allowed.
    pub fn retry_after(&self, attempts: u32) -> Option<Duration> {
        (attempts < self.max_attempts).then(|| backoff(self.base, attempts))
    }
}

/// Delay before attempt `attempts + 1`: base × 2^(attempts − 1), capped, ±20 % jitter so
/// messages failed together do not all retry together.
fn backoff(base: Duration, attempts: u32) -> Duration {
    let exp = base.as_secs_f64() * 2f64.powi(attempts.saturating_sub(1).min(30) as i32);
    let jitter = 0.8 + rand::random::<f64>() * 0.4;
    Duration::from_secs_f64((exp.min(MAX_BACKOFF_SECONDS) * jitter).max(0.05))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_with_jitter_and_is_capped() {
        let base = Duration::from_secs(30);
        for (attempts, expected) in [(1, 30.0), (2, 60.0), (3, 120.0), (6, 960.0)] {
            let d = backoff(base, attempts).as_secs_f64();
            assert!(d >= expected * 0.8 && d <= expected * 1.2, "attempt {attempts}: {d}");
        }
        assert!(backoff(base, 40).as_secs_f64() <= 3600.0 * 1.2);
    }

    #[test]
    fn the_last_attempt_is_not_retried() {
        let policy = RetryPolicy::new(3, Duration::from_secs(1));
        assert!(policy.retry_after(1).is_some());
        assert!(policy.retry_after(2).is_some());
        assert_eq!(policy.retry_after(3), None);
    }
}
