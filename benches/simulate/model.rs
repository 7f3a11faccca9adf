//! What a model client does on a workload, for judging the cold figures (issue 26): the same
//! chains of workflows with the same spread of run times, run by a client that knows the
//! run-time distribution from the start and sees each workflow end with the poll schedule
//! that loses least for its polls per workflow when requests are free. It keeps to what any
//! client of the platform keeps to: at most `slots` tasks in flight from start to end
//! (DESIGN.md §5: a task waiting for its workflow holds its slot), tasks dispatched as slots
//! free up without knowing their run times ahead, and a workflow's end known only by a read
//! that shows it. It is a yardstick, not a lower bound: where the rate binds, a client that
//! sends polls early by the queue it expects and lets a task's own requests go first (ours)
//! can do a little better at the same polls.
//!
//! The request rate is the run's token bucket, shared by every request in the order they are
//! wanted; each request takes the latency from its token to its answer. The figures come both
//! at the run's rate and with none, so that what the rate costs shows apart.
//!
//! Run times are uniform on `[a, b]`, as the simulator draws them (`duration_jitter`). With
//! `k` polls at `a + g1`, `a + g1 + g2`, … (the last at `b`), a workflow ending in the `j`-th
//! gap waits on average half of it, so the expected wait is `Σ gj² / 2W` and the expected
//! polls `1 + Σ (j - 1) gj / W`. The least wait for a number of polls is where the gaps
//! shrink evenly (`gj = μ - ν (j - 1)`, from the Lagrange conditions), found by trying every
//! `k`.

use tb_simulator::knobs::roll;

/// A chain of jobs on every site, each job one workflow.
pub(crate) struct Shape {
    pub sites: usize,
    /// Per job of the chain, requests the task makes before its POST (a deploy's code log).
    pub reads_before_post: Vec<u32>,
    /// The typical run time and the jitter's fraction (`duration_jitter`).
    pub duration: f64,
    pub jitter: f64,
    /// One request's latency (s).
    pub latency: f64,
    pub slots: usize,
}

/// The model's wall time over the workload's plain bound, over many draws of run times.
pub(crate) struct Outcome {
    pub mean: f64,
    pub low: f64,
    pub high: f64,
}

/// The draws averaged.
const DRAWS: u64 = 300;

/// The model client's wall time over the plain bound (longest site chain, workflow time per
/// slot), when it spends `polls` reads per workflow on average (`None`: it sees every end at
/// once, as with endless polls).
pub(crate) fn model_client(shape: &Shape, polls: Option<f64>, rate: Option<Rate>) -> Outcome {
    let gaps = polls.map(gaps_for);
    let ratios: Vec<f64> = (0..DRAWS).map(|draw| one_draw(shape, gaps.as_deref(), rate, draw)).collect();
    #[expect(clippy::cast_precision_loss, reason = "a few hundred draws")]
    let mean = ratios.iter().sum::<f64>() / ratios.len() as f64;
    let low = ratios.iter().copied().fold(f64::INFINITY, f64::min);
    let high = ratios.iter().copied().fold(0.0, f64::max);
    Outcome { mean, low, high }
}

/// The gaps between polls (fractions of the spread, summing to 1) with the least expected
/// wait for `polls` polls per workflow on average (at least 1).
pub(crate) fn gaps_for(polls: f64) -> Vec<f64> {
    let extra = (polls - 1.0).max(0.0);
    let mut best = vec![1.0];
    let mut best_wait = 0.5;
    for k in 2..=64_u32 {
        let (n, s1, s2) = (f64::from(k), f64::from(k * (k - 1) / 2), f64::from((k - 1) * k * (2 * k - 1) / 6));
        let det = s1 * s1 - n * s2;
        let mu = (s1 * extra - s2) / det;
        let nu = (n * extra - s1) / det;
        let gaps: Vec<f64> = (0..k).map(|j| mu - nu * f64::from(j)).collect();
        if gaps.iter().any(|g| *g < 0.0) {
            continue;
        }
        let wait = gaps.iter().map(|g| g * g).sum::<f64>() / 2.0;
        if wait < best_wait {
            best_wait = wait;
            best = gaps;
        }
    }
    best
}

/// One draw of run times, played out event by event: each request waits for a token of the
/// bucket (in the order they are wanted, as one shared bucket serves them) and takes the
/// latency from its token to its answer. A task's reads, then its POST (the workflow runs
/// from the answer), then its polls, each seeing the platform when it gets its token, the
/// one that sees the end freeing the slot when it is answered.
fn one_draw(shape: &Shape, gaps: Option<&[f64]>, rate: Option<Rate>, draw: u64) -> f64 {
    let jobs = shape.reads_before_post.len();
    let (a, spread) = (shape.duration * (1.0 - shape.jitter), 2.0 * shape.jitter * shape.duration);
    // The simulator's own deterministic rolls, so the figures repeat.
    let run: Vec<Vec<f64>> = (0..shape.sites)
        .map(|site| (0..jobs).map(|job| a + spread * roll(draw, &format!("model:{site}:{job}"))).collect())
        .collect();
    let total: f64 = run.iter().flatten().sum();
    let chain = run.iter().map(|site| site.iter().sum::<f64>()).fold(0.0, f64::max);
    #[expect(clippy::cast_precision_loss, reason = "small counts")]
    let bound = (total / shape.slots as f64).max(chain);
    // Poll points after a workflow's start: the gaps' ends, or at once (every end seen).
    let points: Vec<f64> = gaps.map_or_else(Vec::new, |gaps| {
        gaps.iter()
            .scan(a, |at, g| {
                *at += g * spread;
                Some(*at)
            })
            .collect()
    });
    let mut bucket = rate.map(|r| Bucket { rate: r.per_second, burst: r.burst, tokens: r.burst - r.first, at: 0.0 });
    // Ready tasks in dispatch order: earlier job first (the longest remaining path), then site.
    let mut ready: std::collections::BTreeSet<(usize, usize)> = (0..shape.sites).map(|s| (0, s)).collect();
    let mut events = std::collections::BinaryHeap::new();
    let mut seq = 0_u64;
    let mut push = |events: &mut std::collections::BinaryHeap<Event>, at: f64, what: Step| {
        seq += 1;
        events.push(Event { at, seq, what });
    };
    let mut free = shape.slots;
    let mut now = 0.0_f64;
    loop {
        while free > 0 {
            let Some((job, site)) = ready.pop_first() else { break };
            free -= 1;
            let task = Task { job, site, created: 0.0, polls: 0 };
            let first = if shape.reads_before_post[job] > 0 { Request::Read(1) } else { Request::Post };
            push(&mut events, now, Step::Want(task, first));
        }
        let Some(Event { at, what, .. }) = events.pop() else { break };
        now = at;
        match what {
            Step::Want(task, request) => {
                let granted = bucket.as_mut().map_or(now, |b| b.take(now));
                push(&mut events, granted + shape.latency, Step::Answered(task, request, granted));
            }
            Step::Answered(mut task, request, granted) => {
                let d = run[task.site][task.job];
                match request {
                    Request::Read(n) if n < shape.reads_before_post[task.job] => {
                        push(&mut events, now, Step::Want(task, Request::Read(n + 1)));
                    }
                    Request::Read(_) => push(&mut events, now, Step::Want(task, Request::Post)),
                    Request::Post => {
                        task.created = now;
                        let first = points.first().map_or(d, |p| *p);
                        push(&mut events, now + first, Step::Want(task, Request::Poll));
                    }
                    Request::Poll if granted >= task.created + d - 1e-12 => {
                        free += 1;
                        if task.job + 1 < jobs {
                            ready.insert((task.job + 1, task.site));
                        }
                    }
                    Request::Poll => {
                        task.polls += 1;
                        let next = points.get(task.polls).map_or(task.created + d, |p| task.created + p);
                        push(&mut events, next.max(now), Step::Want(task, Request::Poll));
                    }
                }
            }
        }
    }
    now / bound
}

/// The request rate: a token bucket, `first` tokens spent before the work (the resolution).
#[derive(Clone, Copy)]
pub(crate) struct Rate {
    pub per_second: f64,
    pub burst: f64,
    pub first: f64,
}

struct Bucket {
    rate: f64,
    burst: f64,
    tokens: f64,
    at: f64,
}

impl Bucket {
    /// The time a request wanted at `at` gets its token (wanted in order of `at`).
    fn take(&mut self, at: f64) -> f64 {
        let at = at.max(self.at);
        self.tokens = (self.tokens + (at - self.at) * self.rate).min(self.burst);
        self.at = at;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            return at;
        }
        let granted = at + (1.0 - self.tokens) / self.rate;
        self.tokens = 0.0;
        self.at = granted;
        granted
    }
}

#[derive(Clone, Copy)]
struct Task {
    job: usize,
    site: usize,
    /// When its workflow started.
    created: f64,
    /// Polls that found it running.
    polls: usize,
}

#[derive(Clone, Copy)]
enum Request {
    /// The `n`-th read before the POST, from 1.
    Read(u32),
    Post,
    Poll,
}

#[derive(Clone, Copy)]
enum Step {
    Want(Task, Request),
    /// Answered; with the time its token was granted (when a poll saw the platform).
    Answered(Task, Request, f64),
}

/// The earliest event first, ties in the order pushed.
struct Event {
    at: f64,
    seq: u64,
    what: Step,
}

impl PartialEq for Event {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == std::cmp::Ordering::Equal
    }
}

impl Eq for Event {}

impl PartialOrd for Event {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Event {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        other.at.total_cmp(&self.at).then(other.seq.cmp(&self.seq))
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_least_wait_for_one_and_a_half_polls_is_three_shrinking_gaps() {
        use super::gaps_for;
        // One and a half polls: three gaps of 7/12, 4/12 and 1/12 of the spread, for an
        // expected wait of 66/288 of it.
        let gaps = gaps_for(1.5);
        assert_eq!(gaps.len(), 3);
        assert!((gaps[0] - 7.0 / 12.0).abs() < 1e-9 && (gaps[2] - 1.0 / 12.0).abs() < 1e-9, "{gaps:?}");
        // One poll: at the end of the spread.
        assert_eq!(gaps_for(1.0), vec![1.0]);
    }

    #[test]
    fn the_bucket_serves_its_burst_then_one_token_per_interval() {
        let mut bucket = super::Bucket { rate: 10.0, burst: 2.0, tokens: 2.0, at: 0.0 };
        let granted: Vec<f64> = (0..4).map(|_| bucket.take(0.0)).collect();
        assert_eq!(granted[..2], [0.0, 0.0]);
        assert!((granted[2] - 0.1).abs() < 1e-9 && (granted[3] - 0.2).abs() < 1e-9, "{granted:?}");
        assert!((bucket.take(5.0) - 5.0).abs() < 1e-9, "refilled by then");
    }

    #[test]
    fn with_nothing_in_the_way_the_model_runs_at_the_bound() {
        use super::{Shape, model_client};
        // Ten one-job sites on ten slots, no latency, no rate, every end seen at once: the
        // longest run time is the wall time and the bound.
        let shape =
            Shape { sites: 10, reads_before_post: vec![0], duration: 6.0, jitter: 0.2, latency: 0.0, slots: 10 };
        let o = model_client(&shape, None, None);
        assert!((o.mean - 1.0).abs() < 1e-9 && (o.high - 1.0).abs() < 1e-9, "{}", o.mean);
        // With a poll schedule the ends are seen later, and with a latency later still.
        let polled = model_client(&shape, Some(1.5), None);
        assert!(polled.low > 1.0, "{}", polled.low);
        let slow = model_client(&Shape { latency: 0.5, ..shape }, Some(1.5), None);
        assert!(slow.low > polled.low, "{} {}", slow.low, polled.low);
    }
}
