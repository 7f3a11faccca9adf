//! [`delay`]: the one backoff both retry layers use (the API client's per-request retries
//! and the executor's task retries), each with its own base and cap. Imports nothing
//! internal.

use std::time::Duration;

/// Delay before retry number `attempt + 1` (attempt is 1-based): `base × 2^(attempt-1)`,
/// capped at `cap`, with "equal jitter" (between half and all of it), so a crowd of clients
/// does not retry in step.
#[must_use]
pub fn delay(base: Duration, attempt: u32, cap: Duration) -> Duration {
    let full = base.saturating_mul(1 << attempt.saturating_sub(1).min(16)).min(cap);
    let half = full / 2;
    half + half.mul_f64(fastrand::f64())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_with_jitter_and_a_cap() {
        let cap = Duration::from_secs(30);
        for attempt in 1..=10 {
            let d = delay(Duration::from_secs(1), attempt, cap);
            let full = Duration::from_secs(1 << (attempt - 1)).min(cap);
            assert!(d >= full / 2 && d <= full, "attempt {attempt}: {d:?}");
        }
        assert_eq!(delay(Duration::ZERO, 3, cap), Duration::ZERO);
        assert!(delay(Duration::from_secs(1), u32::MAX, Duration::MAX) <= Duration::from_secs(1 << 16));
    }
}
