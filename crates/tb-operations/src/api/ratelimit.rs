//! The request rate limit: one token bucket shared by every API request of a run, polls
//! included (DESIGN.md §5). It adapts: a 429 or 503 halves the rate and holds every request
//! until the server's `Retry-After`; the rate then recovers linearly, a tenth of the
//! configured rate per second, up to the configured rate (additive increase, multiplicative
//! decrease). Written here rather than taken from a crate because the adaptive part and the
//! two classes below are the point, and they are a few lines over `tokio::time`.
//!
//! Requests come in two classes. [`Priority::Work`] (everything a task sends: the POST that
//! starts a workflow, the reads before it) reserves the next token in order. A
//! [`Priority::Background`] request (the shared poller's) takes a token only when no work
//! request is waiting for one: when both the rate and the task slots bind, a task waiting
//! for a token to start its workflow holds its slot idle, while a poll can be sent early by
//! the queue it expects (DESIGN.md §5, "Workflow waiting").

use std::collections::BTreeSet;
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

/// Which requests go first when tokens are short (see the module docs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Priority {
    /// A task's own request: served in order of asking.
    Work,
    /// Polling: served in order of asking, after every waiting work request.
    Background,
}

/// An adaptive token bucket. Acquiring reserves a token, possibly in the future, so work
/// requests are served in order and never spin; background requests wait their turn by
/// ticket and look again when the next token is due.
#[derive(Debug)]
pub struct RateLimiter {
    state: Mutex<State>,
    max_rate: f64,
    burst: f64,
}

#[derive(Debug)]
struct State {
    rate: f64,
    /// May go negative: reservations not yet due.
    tokens: f64,
    last: Instant,
    /// No request before this instant (a server's `Retry-After`).
    hold_until: Option<Instant>,
    /// Requests taken recently, decaying with the time constant [`RateLimiter::window`]:
    /// `recent / window` is the rate at which requests have been coming.
    recent: f64,
    recent_at: Instant,
    /// Tickets of the background requests waiting, served lowest first.
    background: BTreeSet<u64>,
    next_ticket: u64,
}

/// The recent request rate is averaged over the time this many requests take at the full
/// rate (10 s at 10 requests/s; the same in a simulator's faster clock).
const RECENT_REQUESTS: f64 = 100.0;
/// The rate binds when requests come at this fraction of it or more.
const BINDING: f64 = 0.7;

/// The slowest the bucket goes after repeated slow-downs: a fraction of the configured rate,
/// but never below one request per ten seconds.
const MIN_RATE_FRACTION: f64 = 1.0 / 1024.0;
const MIN_RATE: f64 = 0.1;
/// Per second, the rate grows back by this fraction of the configured rate.
const RECOVERY_PER_SEC: f64 = 0.1;

/// How long the tokens already reserved take to come due (zero while one is left).
fn queued(s: &State) -> Duration {
    if s.tokens >= 0.0 { Duration::ZERO } else { Duration::from_secs_f64(-s.tokens / s.rate) }
}

/// Ages the recent request count to `now`, with time constant `window` seconds.
fn decay(s: &mut State, now: Instant, window: f64) {
    let elapsed = now.saturating_duration_since(s.recent_at).as_secs_f64();
    s.recent *= (-elapsed / window).exp();
    s.recent_at = now;
}

impl RateLimiter {
    #[must_use]
    pub fn new(requests_per_second: f64, burst: u32) -> Self {
        let burst = f64::from(burst.max(1));
        Self {
            state: Mutex::new(State {
                rate: requests_per_second,
                tokens: burst,
                last: Instant::now(),
                hold_until: None,
                recent: 0.0,
                recent_at: Instant::now(),
                background: BTreeSet::new(),
                next_ticket: 0,
            }),
            max_rate: requests_per_second,
            burst,
        }
    }

    /// Waits for a token.
    pub async fn acquire(&self, priority: Priority) {
        if priority == Priority::Background {
            return self.acquire_background().await;
        }
        let wait = self.reserve(Instant::now());
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
    }

    /// Waits for a token no work request is waiting for: the lowest ticket takes the next
    /// whole token once the work queue is empty; the others look again when their turn
    /// could come.
    async fn acquire_background(&self) {
        let ticket = {
            let mut s = self.lock();
            s.next_ticket += 1;
            let ticket = s.next_ticket;
            s.background.insert(ticket);
            ticket
        };
        // Dropped while waiting (the poll was abandoned): give up the place in line. (Once
        // served, the ticket is already gone and the guard's drop does nothing.)
        let _guard = Ticket { limiter: self, ticket };
        loop {
            let wait = self.try_background(ticket, Instant::now());
            if wait.is_zero() {
                return;
            }
            tokio::time::sleep(wait).await;
        }
    }

    /// Takes a token for background `ticket` when it is its turn and one is there (zero),
    /// else returns how long until it could be.
    fn try_background(&self, ticket: u64, now: Instant) -> Duration {
        let mut s = self.lock();
        self.refill(&mut s, now);
        let held = s.hold_until.filter(|until| *until > now).map(|until| until - now);
        let ahead = s.background.range(..ticket).count();
        if ahead == 0 && s.tokens >= 1.0 && held.is_none() {
            self.spend(&mut s, now);
            s.background.remove(&ticket);
            return Duration::ZERO;
        }
        // One token for each ticket ahead and one for this one, after the work queue.
        #[expect(clippy::cast_precision_loss, reason = "a count of waiting requests")]
        let missing = ahead as f64 + 1.0 - s.tokens;
        let due = Duration::from_secs_f64((missing / s.rate).max(0.0));
        // Never a zero wait while the answer was no: a token is never less than a tick away.
        due.max(held.unwrap_or_default()).max(Duration::from_millis(1))
    }

    /// The time constant of the recent request rate, in seconds.
    fn window(&self) -> f64 {
        RECENT_REQUESTS / self.max_rate.max(f64::MIN_POSITIVE)
    }

    /// Takes a token and returns how long to wait before using it.
    fn reserve(&self, now: Instant) -> Duration {
        let mut s = self.lock();
        self.refill(&mut s, now);
        self.spend(&mut s, now);
        let mut wait = queued(&s);
        if let Some(until) = s.hold_until {
            if until > now {
                wait = wait.max(until - now);
            } else {
                s.hold_until = None;
            }
        }
        wait
    }

    /// Counts a request sent at `now` and takes its token (perhaps one not yet there).
    fn spend(&self, s: &mut State, now: Instant) {
        decay(s, now, self.window());
        s.recent += 1.0;
        s.tokens -= 1.0;
    }

    fn refill(&self, s: &mut State, now: Instant) {
        let elapsed = now.saturating_duration_since(s.last).as_secs_f64();
        s.last = now;
        s.tokens = (s.tokens + elapsed * s.rate).min(self.burst);
        s.rate = (s.rate + elapsed * self.max_rate * RECOVERY_PER_SEC).min(self.max_rate);
    }

    /// The server said "too many requests": halve the rate and hold every request for
    /// `retry_after` (when given).
    pub fn slow_down(&self, retry_after: Option<Duration>) {
        let now = Instant::now();
        let mut s = self.lock();
        self.refill(&mut s, now);
        s.rate = (s.rate / 2.0).max((self.max_rate * MIN_RATE_FRACTION).max(MIN_RATE).min(self.max_rate));
        // Tokens saved up before the refusal are not a licence to burst into it again.
        s.tokens = s.tokens.min(0.0);
        if let Some(after) = retry_after {
            let until = now + after;
            s.hold_until = Some(s.hold_until.map_or(until, |h| h.max(until)));
        }
    }

    /// The server failed without saying when to come back (a bare 503): ease off by a
    /// sixth, never below half the configured rate, without the hold and the lost tokens of
    /// a refusal. A flaky endpoint is not a reason to crawl for the rest of the run.
    pub fn ease_off(&self) {
        let mut s = self.lock();
        self.refill(&mut s, Instant::now());
        // Failures alone never take the rate below half: only the server's refusals do.
        if s.rate > self.max_rate / 2.0 {
            s.rate = (s.rate * 5.0 / 6.0).max(self.max_rate / 2.0);
        }
    }

    /// Whether the rate binds, and how long a request asking now would wait for its token:
    /// `None` while requests have been coming at under `BINDING` of the rate (every
    /// request is not yet time), else the wait of a background request asking now: behind
    /// the work reserved and the background requests already waiting (zero while a token is
    /// left and no one waits).
    #[must_use]
    pub fn pressure(&self) -> Option<Duration> {
        let now = Instant::now();
        let mut s = self.lock();
        self.refill(&mut s, now);
        decay(&mut s, now, self.window());
        #[expect(clippy::cast_precision_loss, reason = "a count of waiting requests")]
        let background = Duration::from_secs_f64(s.background.len() as f64 / s.rate);
        (s.recent / self.window() >= BINDING * s.rate).then(|| queued(&s) + background)
    }

    fn drop_ticket(&self, ticket: u64) {
        self.lock().background.remove(&ticket);
    }

    /// The current rate, for logs and tests.
    #[must_use]
    pub fn rate(&self) -> f64 {
        let mut s = self.lock();
        self.refill(&mut s, Instant::now());
        s.rate
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A poisoned lock only means another request panicked mid-update; the numbers are
        // still usable, so carry on rather than fail every later request.
        self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// A background request's place in line, given up if it stops waiting.
struct Ticket<'a> {
    limiter: &'a RateLimiter,
    ticket: u64,
}

impl Drop for Ticket<'_> {
    fn drop(&mut self) {
        self.limiter.drop_ticket(self.ticket);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn bursts_then_holds_the_rate() {
        let limiter = RateLimiter::new(10.0, 5);
        let start = Instant::now();
        for _ in 0..25 {
            limiter.acquire(Priority::Work).await;
        }
        // 5 from the burst, then 20 at 10 per second.
        let elapsed = start.elapsed().as_secs_f64();
        assert!((elapsed - 2.0).abs() < 0.01, "{elapsed}");
    }

    #[tokio::test(start_paused = true)]
    async fn slows_down_holds_and_recovers() {
        let limiter = RateLimiter::new(10.0, 1);
        limiter.acquire(Priority::Work).await;
        limiter.slow_down(Some(Duration::from_secs(3)));
        assert!((limiter.rate() - 5.0).abs() < 0.01);
        let start = Instant::now();
        limiter.acquire(Priority::Work).await;
        assert!(start.elapsed() >= Duration::from_secs(3));
        tokio::time::sleep(Duration::from_secs(10)).await;
        assert!((limiter.rate() - 10.0).abs() < 1e-9, "recovered to the configured rate");
        for _ in 0..20 {
            limiter.slow_down(None);
        }
        assert!((limiter.rate() - 0.1).abs() < 1e-9, "floored");
    }

    #[tokio::test(start_paused = true)]
    async fn a_bare_503_eases_off_less_than_a_refusal() {
        let refused = RateLimiter::new(12.0, 1);
        refused.slow_down(None);
        let failed = RateLimiter::new(12.0, 1);
        failed.ease_off();
        assert!((refused.rate() - 6.0).abs() < 1e-9);
        assert!((failed.rate() - 10.0).abs() < 1e-9, "{}", failed.rate());
        for _ in 0..20 {
            failed.ease_off();
        }
        assert!((failed.rate() - 6.0).abs() < 1e-9, "never below half: {}", failed.rate());
        // No hold: the next request goes at once.
        let start = Instant::now();
        failed.acquire(Priority::Work).await;
        assert_eq!(start.elapsed(), Duration::ZERO);
    }

    #[tokio::test(start_paused = true)]
    async fn the_rate_binds_when_requests_come_near_it_and_not_after_a_lull() {
        let limiter = RateLimiter::new(10.0, 20);
        assert_eq!(limiter.pressure(), None, "nothing asked yet");
        // 20 s of requests at the full rate (two time constants): it binds.
        for _ in 0..200 {
            limiter.acquire(Priority::Work).await;
        }
        assert!(limiter.pressure().is_some(), "at the full rate");
        for _ in 0..5 {
            let _queued = limiter.reserve(Instant::now());
        }
        assert!(limiter.pressure().is_some_and(|wait| wait > Duration::ZERO), "a queue ahead");
        // A minute of quiet: requests are free again.
        tokio::time::sleep(Duration::from_secs(60)).await;
        assert_eq!(limiter.pressure(), None, "after a lull");
        // Half the rate does not bind.
        for _ in 0..50 {
            limiter.acquire(Priority::Work).await;
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        assert_eq!(limiter.pressure(), None, "at half the rate");
    }

    #[tokio::test(start_paused = true)]
    async fn work_goes_before_background_waiting_longer() {
        use std::sync::Arc;
        let limiter = Arc::new(RateLimiter::new(10.0, 1));
        limiter.acquire(Priority::Work).await;
        // Bucket empty: two polls wait, then a task asks.
        let order = Arc::new(Mutex::new(Vec::new()));
        let mut joins = Vec::new();
        for (name, priority, after_ms) in
            [("poll-1", Priority::Background, 0), ("poll-2", Priority::Background, 1), ("task", Priority::Work, 20)]
        {
            let (limiter, order) = (Arc::clone(&limiter), Arc::clone(&order));
            joins.push(tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(after_ms)).await;
                limiter.acquire(priority).await;
                order.lock().unwrap().push((name, Instant::now()));
            }));
        }
        for join in joins {
            join.await.unwrap();
        }
        let order = order.lock().unwrap().clone();
        let names: Vec<&str> = order.iter().map(|(name, _)| *name).collect();
        assert_eq!(names, ["task", "poll-1", "poll-2"], "the task first, then the polls in order");
        // Still one token per 100 ms, whatever the class.
        let gaps: Vec<Duration> = order.windows(2).map(|w| w[1].1 - w[0].1).collect();
        assert!(gaps.iter().all(|gap| *gap >= Duration::from_millis(99)), "{gaps:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn an_abandoned_background_wait_gives_up_its_place() {
        let limiter = RateLimiter::new(10.0, 1);
        limiter.acquire(Priority::Work).await;
        // A poll that stops waiting (its run was interrupted) must not hold the line.
        let abandoned = tokio::time::timeout(Duration::from_millis(10), limiter.acquire(Priority::Background)).await;
        assert!(abandoned.is_err(), "no token yet");
        let start = Instant::now();
        let served = tokio::time::timeout(Duration::from_secs(1), limiter.acquire(Priority::Background)).await;
        assert!(served.is_ok(), "the next poll is served");
        assert!(start.elapsed() <= Duration::from_millis(91), "{:?}", start.elapsed());
        assert!(limiter.lock().background.is_empty(), "nobody left waiting");
    }
}
