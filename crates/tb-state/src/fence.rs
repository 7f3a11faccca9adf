//! Self-fencing: a run acts on a target only while it can prove it holds the plan lock and
//! the target's lease. A holder's last *confirmed* write of its record (the create, or a
//! renewal whose new version the store gave back) is timed on a clock that keeps counting
//! while the process is stopped and while the machine sleeps; before each act the holder
//! checks that this confirmation is younger than half the holder's stale period, well inside the
//! [`STALE_AFTER`](super::lock::STALE_AFTER) after which another run may take the record over,
//! and renews first when it is not. A renewal that finds the record changed hands tells the
//! run's [`Fence`], and the run starts nothing more.
//!
//! The default stale period is two minutes, so a confirmation proves for one
//! (`Holder::proven_for`, half the holder's stale period).

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

/// Time since the machine booted, the time it was suspended included (Linux's
/// `CLOCK_BOOTTIME`): a laptop closed mid-run, or a CI runner's VM paused by its host, wakes
/// to a clock that says how long it slept. (`Instant` counts a stopped process's time but
/// not a suspended machine's.)
#[must_use]
pub fn boot_time() -> Duration {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    {
        let now = rustix::time::clock_gettime(rustix::time::ClockId::Boottime);
        Duration::new(u64::try_from(now.tv_sec).unwrap_or(0), u32::try_from(now.tv_nsec).unwrap_or(0))
    }
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    {
        // Elsewhere the monotonic clock, the closest there is.
        static START: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
        START.get_or_init(std::time::Instant::now).elapsed()
    }
}

/// Where a holder reads the time of its confirmations and checks: [`boot_time`], or a test's.
#[derive(Clone)]
pub struct Clock(Arc<dyn Fn() -> Duration + Send + Sync>);

impl Clock {
    /// The machine's boot clock.
    #[must_use]
    pub fn boot() -> Self {
        Self(Arc::new(boot_time))
    }

    /// A clock that reads `now` (tests move it by hand).
    #[must_use]
    pub fn manual(now: Arc<Mutex<Duration>>) -> Self {
        Self(Arc::new(move || *now.lock().unwrap_or_else(PoisonError::into_inner)))
    }

    #[must_use]
    pub fn now(&self) -> Duration {
        (self.0)()
    }
}

impl std::fmt::Debug for Clock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Clock")
    }
}

/// Why a run may no longer act under a record.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Lost {
    /// Another run took the record over (it took this one for gone: stopped or suspended
    /// past the stale period).
    #[error("{what} was taken over by {by}")]
    TakenOver {
        /// "the plan lock", "the lease on SITE.ENV".
        what: String,
        /// The run that holds it now, as its holder describes itself.
        by: String,
    },
    /// The record's renewal could not be confirmed, so holding it cannot be proven.
    #[error("{what} cannot be proven held: {why}")]
    Unproven { what: String, why: String },
}

/// What the run lost, once one of its records is found lost; shared by its lock and leases
/// and watched by the run, which then starts nothing more.
#[derive(Clone, Debug, Default)]
pub struct Fence {
    lost: Arc<Mutex<Option<Lost>>>,
    told: Arc<tokio::sync::Notify>,
}

impl Fence {
    /// Says the run lost `lost` (the first loss is kept).
    pub fn lose(&self, lost: Lost) {
        let mut kept = self.lost.lock().unwrap_or_else(PoisonError::into_inner);
        if kept.is_none() {
            tracing::error!("{lost}: this run starts nothing more");
            *kept = Some(lost);
        }
        drop(kept);
        // A `Notified` made before this call is woken even if not yet polled: `wait` makes
        // its own before it looks.
        self.told.notify_waiters();
    }

    /// Proves a record held before an act, for the lock and the leases alike: nothing is
    /// proven once the run is fenced; a `fresh` confirmation proves it; otherwise `renew`
    /// (which tells this fence when the record was taken over) must confirm it now, and a
    /// renewal that fails leaves it unproven, which fences the run too.
    pub(crate) fn prove<E: std::fmt::Display>(
        &self,
        what: impl FnOnce() -> String,
        fresh: bool,
        renew: impl FnOnce() -> Result<(), E>,
    ) -> Result<(), Lost> {
        if let Some(lost) = self.lost() {
            return Err(lost);
        }
        if fresh {
            return Ok(());
        }
        if let Err(e) = renew() {
            let lost = Lost::Unproven { what: what(), why: e.to_string() };
            self.lose(lost.clone());
            return Err(lost);
        }
        self.lost().map_or(Ok(()), Err)
    }

    /// What was lost, if anything.
    #[must_use]
    pub fn lost(&self) -> Option<Lost> {
        self.lost.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// Waits until something is lost.
    pub async fn wait(&self) -> Lost {
        loop {
            let told = self.told.notified();
            if let Some(lost) = self.lost() {
                return lost;
            }
            told.await;
        }
    }
}

/// A holder's last confirmed write and what a renewal counts: the part of a lock or a lease
/// that proves it held.
#[derive(Debug)]
pub(crate) struct Confirmed {
    /// When the last confirmed write was sent, on the holder's clock.
    pub(crate) at: Duration,
}

impl Confirmed {
    /// Whether a confirmation at `self.at` still proves the record held at `now`, for a
    /// holder whose confirmations prove for `proven_for`.
    pub(crate) fn fresh(&self, now: Duration, proven_for: Duration) -> bool {
        now.saturating_sub(self.at) < proven_for
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_boot_clock_moves_forward() {
        let (a, b) = (boot_time(), boot_time());
        assert!(b >= a && a > Duration::ZERO);
    }

    #[tokio::test]
    async fn a_fence_keeps_the_first_loss_and_wakes_its_watcher() {
        let fence = Fence::default();
        let watcher = tokio::spawn({
            let fence = fence.clone();
            async move { fence.wait().await }
        });
        tokio::task::yield_now().await;
        let first = Lost::TakenOver { what: "the plan lock".into(), by: "run B".into() };
        fence.lose(first.clone());
        fence.lose(Lost::Unproven { what: "x".into(), why: "y".into() });
        assert_eq!(watcher.await.unwrap(), first);
        assert_eq!(fence.lost(), Some(first));
    }

    #[test]
    fn a_confirmation_proves_for_a_while() {
        let c = Confirmed { at: Duration::from_secs(100) };
        let proven_for = Duration::from_secs(60);
        assert!(c.fresh(Duration::from_secs(159), proven_for));
        assert!(!c.fresh(Duration::from_secs(160), proven_for));
    }
}
