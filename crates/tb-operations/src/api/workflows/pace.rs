//! When to poll: the run times of each workflow type, learned from the workflows seen finishing
//! (`Expectations`, a window of samples per type and its quantiles), and each site's pace.

use std::collections::{HashMap, HashSet, VecDeque};
use std::time::Duration;

use tokio::time::Instant;

use super::poller::{HISTORY, MAX_POLL_GAP, SiteWatch, Watch};
use crate::api::wire::Workflow;

/// The first poll of a workflow of a known type comes when this fraction of the recent
/// ones of its type had finished; the second by when all should have (see [`Window`]).
/// With run times spread evenly that is about 1.35 polls per workflow, for a wait past the
/// finish of about a quarter of the spread.
pub(super) const FIRST_POLL_QUANTILE: f64 = 0.65;

/// While the request rate binds, the first poll comes when this fraction of the recent ones
/// had finished: later than while requests are free, so that few polls are spent on a
/// workflow still running, but not at the very end of the window, which would hold every
/// slot for the whole spread (see [`Window::aim`]).
pub(super) const BUSY_POLL_QUANTILE: f64 = 0.8;

/// With no run time known, the next poll comes after this fraction of the time the
/// workflow has run so far.
pub(super) const GROWTH: u32 = 4;

/// The spread of run times assumed at least, as a fraction of the typical one.
pub(super) const MIN_SPREAD: f64 = 0.2;

/// While fewer run times than this are known of a type, its waiters read site lists (the
/// newest 100 workflows of a site, with their run times) rather than poll by id...
pub(super) const MIN_SAMPLES: usize = 5;

/// ...this many times per type at most, one at a time.
pub(super) const LEARN_ATTEMPTS: u32 = 3;

/// What the poller knows of how long each workflow type takes: the `total_time` of recent
/// finished workflows, from its own polls and from the site lists it reads.
#[derive(Default)]
pub(super) struct Expectations {
    pub(super) by_kind: HashMap<String, VecDeque<f64>>,
    /// Workflows already counted.
    pub(super) seen: HashSet<String>,
    /// Site lists read (or being read) to learn a type.
    pub(super) asked: HashMap<String, u32>,
    /// Types a site list is being read for right now.
    pub(super) learning: HashSet<String>,
    /// Of a type with no run time known and nothing left to learn from site lists, the one
    /// waiter that polls (the scout, by workflow id); the others of its type wait for what
    /// its end teaches rather than each poll a workflow that has likely only begun.
    pub(super) scouts: HashMap<String, String>,
}

impl Expectations {
    /// Counts a finished workflow's run time once; true when it was new.
    pub(super) fn record(&mut self, workflow: &Workflow) -> bool {
        // Some finished workflows come without total_time (recorded: result set, times
        // not yet); their own timestamps tell it then.
        let elapsed = workflow.finished_at.zip(workflow.created_at).map(|(end, start)| end - start);
        let Some(time) = workflow.total_time.or(elapsed).filter(|t| t.is_finite() && *t >= 0.0) else { return false };
        if !workflow.is_finished() || !self.seen.insert(workflow.id.clone()) {
            return false;
        }
        let history = self.by_kind.entry(workflow.kind.clone()).or_default();
        if history.len() == HISTORY {
            history.pop_front();
        }
        history.push_back(time);
        true
    }

    /// Whether `watch` scouts its type, polling as its workflow runs (it becomes the scout
    /// when the type has none); if not, it is held for what the scout's end teaches.
    pub(super) fn scout(&mut self, watch: &mut Watch) -> bool {
        let scout = self.scouts.entry(watch.kind.clone()).or_insert_with(|| watch.workflow_id.clone());
        let scouts = *scout == watch.workflow_id;
        watch.lesson = !scouts;
        scouts
    }

    pub(super) fn samples(&self, kind: &str) -> usize {
        self.by_kind.get(kind).map_or(0, VecDeque::len)
    }

    /// When a workflow of `kind` is expected to finish, from the recent run times.
    pub(super) fn window(&self, kind: &str) -> Option<Window> {
        let history = self.by_kind.get(kind).filter(|h| !h.is_empty())?;
        let mut sorted: Vec<f64> = history.iter().copied().collect();
        sorted.sort_by(f64::total_cmp);
        let n = sorted.len();
        let (low, high) = (sorted[0], sorted[n - 1]);
        let mid = f64::midpoint(low, high);
        // A few run times understate how far they spread: n values spread evenly cover
        // (n - 1) / (n + 1) of the range on average, so widen by the inverse.
        #[expect(clippy::cast_precision_loss, reason = "at most HISTORY values")]
        let widened = if n > 1 { (high - low) * (n + 1) as f64 / (n - 1) as f64 } else { 0.0 };
        let spread = widened.max(mid * MIN_SPREAD);
        let secs = Duration::from_secs_f64;
        let first = quantile(&sorted, FIRST_POLL_QUANTILE);
        let busy = quantile(&sorted, BUSY_POLL_QUANTILE);
        Some(Window {
            first: secs(first),
            busy: secs(busy),
            last: secs(high.max(mid + spread / 2.0)),
            spread: secs(spread),
        })
    }
}

/// Run times of a type, counted from a workflow's start.
#[derive(Clone, Copy, Debug)]
pub(super) struct Window {
    /// When to poll first while requests are free.
    pub(super) first: Duration,
    /// When to poll first while the rate binds.
    pub(super) busy: Duration,
    /// By when nearly all should have finished: the longest recent run time, or more when
    /// few are known.
    pub(super) last: Duration,
    /// How far run times spread (estimated).
    pub(super) spread: Duration,
}

impl Window {
    /// When to poll first, from the start: the expected finish while requests are free;
    /// while the rate binds (`pressure` is the wait for a token), when four in five of the
    /// recent ones had finished, less that wait: about one poll in five finds the workflow
    /// still running. The end of the window would keep each slot busy for the whole
    /// spread: a wasted poll costs a tenth of a second of the rate, a second of waiting
    /// costs a second of a slot.
    pub(super) fn aim(self, pressure: Option<Duration>) -> Duration {
        match pressure {
            None => self.first,
            Some(wait) => self.busy.saturating_sub(wait).max(self.first),
        }
    }

    /// For a workflow started at `started`: its first poll (see [`Self::aim`]), or else the
    /// longest expected, whichever is still after `now`.
    pub(super) fn ahead(self, started: Instant, now: Instant, pressure: Option<Duration>) -> Option<Instant> {
        [started + self.aim(pressure), started + self.last].into_iter().find(|at| *at > now)
    }

    /// The gap before the `late`-th poll past `last`: a quarter of the spread, doubling.
    pub(super) fn late_gap(self, late: u32) -> Duration {
        (self.spread / 4).saturating_mul(1 << late.min(10))
    }
}

/// The `q` quantile of sorted values, interpolated.
pub(super) fn quantile(sorted: &[f64], q: f64) -> f64 {
    #[expect(clippy::cast_precision_loss, reason = "at most HISTORY values")]
    let at = q.clamp(0.0, 1.0) * (sorted.len() - 1) as f64;
    #[expect(clippy::cast_possible_truncation, clippy::cast_sign_loss, reason = "0 <= at < len")]
    let low = at.floor() as usize;
    let high = (low + 1).min(sorted.len() - 1);
    #[expect(clippy::cast_precision_loss, reason = "an index")]
    let weight = at - low as f64;
    sorted[low] + (sorted[high] - sorted[low]) * weight
}

/// How polls are paced: near the expected finish (ours), or, with `every`, every interval
/// from the start like terminus (for comparison, `TERMINUS_BATCH_POLL_INTERVAL`). Never more
/// often than `floor` per site.
#[derive(Clone, Copy)]
pub(super) struct Pace {
    pub(super) floor: Duration,
    pub(super) every: Option<Duration>,
}

impl Pace {
    /// A new waiter's first poll; may ask its site to read the list to learn its type.
    /// `pressure` is how long a poll waits for the rate limit now, when the rate binds:
    /// then every request is time, so the first poll aims late in the window (see
    /// [`Window::aim`]) and is sent early by that wait so that it goes out then. While
    /// another site's list is being read for its type, the waiter waits for that lesson
    /// ([`Self::retime`]) rather than poll a workflow that has likely only begun.
    pub(super) fn first(
        self,
        watch: &mut Watch,
        site: &mut SiteWatch,
        known: &mut Expectations,
        pressure: Option<Duration>,
    ) -> Instant {
        if self.every.is_some() {
            return Instant::now();
        }
        let few = known.samples(&watch.kind) < MIN_SAMPLES && !known.learning.contains(&watch.kind);
        let asked = known.asked.entry(watch.kind.clone()).or_default();
        if few && *asked < LEARN_ATTEMPTS {
            *asked += 1;
            known.learning.insert(watch.kind.clone());
            site.learn.push(watch.kind.clone());
            return Instant::now();
        }
        let hold = watch.started + MAX_POLL_GAP.max(self.floor);
        match known.window(&watch.kind) {
            Some(window) => watch.started + window.aim(pressure).max(self.floor),
            None if known.learning.contains(&watch.kind) => {
                watch.lesson = true;
                hold
            }
            // A cold platform (no history of the type anywhere): the first waiter scouts,
            // polling as its workflow runs, and the run time it finds times the others.
            None if known.scout(watch) => watch.started + self.floor,
            None => hold,
        }
    }

    /// A waiter's next poll once more is known of its type: the new expected finish or
    /// the new longest, whichever is ahead (past both, as it was). Of the waiters held for a
    /// lesson that taught nothing (a cold platform), one scouts, polling as its workflow
    /// runs, and the others stay held for what its end teaches, as [`Self::first`] does:
    /// each polling on its own would spend a poll after poll on every workflow of the first
    /// wave.
    pub(super) fn retime(
        self,
        watch: &mut Watch,
        due: Instant,
        now: Instant,
        known: &mut Expectations,
        pressure: Option<Duration>,
    ) -> Instant {
        if self.every.is_some() || watch.late > 0 {
            return due;
        }
        let held = std::mem::take(&mut watch.lesson);
        match known.window(&watch.kind) {
            // A waiter held for a lesson, or not polled yet, whose expected finish is now
            // past (the new run times are shorter) polls now: waiting for the end of the
            // window would keep its slot for the spread. One polled already is on its way to
            // the window's end, which new run times moving about early in a lesson would
            // otherwise each turn into another poll.
            Some(window) if (held || !watch.polled) && watch.started + window.aim(pressure) <= now => now,
            Some(window) => window.ahead(watch.started, now, pressure).unwrap_or(if held { now } else { due }),
            None if held && known.scout(watch) => now.max(watch.started + self.floor),
            None if held => due.max(watch.started + MAX_POLL_GAP.max(self.floor)),
            None => due,
        }
    }

    /// The next poll of a waiter still running at `now`. Of a type with no run time known,
    /// one waiter scouts, polling as its workflow runs, and the others (a waiter whose site
    /// list taught nothing, say) are held for what its end teaches, as in [`Self::first`].
    pub(super) fn next(self, watch: &mut Watch, now: Instant, known: &mut Expectations) -> Instant {
        if let Some(every) = self.every {
            return now + every;
        }
        let Some(window) = known.window(&watch.kind) else {
            let gap = MAX_POLL_GAP.max(self.floor);
            if !known.scout(watch) {
                return now + gap;
            }
            let ran = now.saturating_duration_since(watch.started);
            return now + (ran / GROWTH).clamp(self.floor, gap);
        };
        let at = window.ahead(watch.started, now, None).unwrap_or_else(|| {
            watch.late += 1;
            now + window.late_gap(watch.late - 1).min(MAX_POLL_GAP)
        });
        at.max(now + self.floor)
    }
}
