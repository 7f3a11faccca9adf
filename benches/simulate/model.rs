//! What the best client could do on a workload, for judging the cold figures (issue 26): the
//! same chains of workflows with the same spread of run times, run by a client that knows the
//! run-time distribution from the start, never waits for a token of the request rate, and sees
//! each workflow end with the poll schedule that loses least for its polls per workflow. It
//! keeps to what any client of the platform keeps to: at most `slots` tasks in flight from
//! start to end (DESIGN.md §5: a task waiting for its workflow holds its slot), tasks
//! dispatched as slots free up without knowing their run times ahead, and a workflow's end
//! known only by a read that shows it.
//!
//! Run times are uniform on `[a, b]`, as the simulator draws them (`duration_jitter`). With
//! `k` polls at `a + g1`, `a + g1 + g2`, … (the last at `b`), a workflow ending in the `j`-th
//! gap waits on average half of it, so the expected wait is `Σ gj² / 2W` and the expected
//! polls `1 + Σ (j - 1) gj / W`. The least wait for a number of polls is where the gaps
//! shrink evenly (`gj = μ - ν (j - 1)`, from the Lagrange conditions), found by trying every
//! `k`.

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

/// The best client's wall time over the plain bound (longest site chain, workflow time per
/// slot), when it spends `polls` reads per workflow on average (`None`: it sees every end at
/// once, as with endless polls).
pub(crate) fn best_client(shape: &Shape, polls: Option<f64>) -> Outcome {
    let gaps = polls.map(gaps_for);
    let ratios: Vec<f64> = (0..DRAWS).map(|draw| one_draw(shape, gaps.as_deref(), draw)).collect();
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

/// How long past its end a workflow of run time `d` on `[a, a + spread]` waits for the poll
/// that sees it, under `gaps`.
fn wait(d: f64, a: f64, spread: f64, gaps: &[f64]) -> f64 {
    let mut at = a;
    for g in gaps {
        at += g * spread;
        if d <= at + 1e-12 {
            return at - d;
        }
    }
    0.0
}

fn one_draw(shape: &Shape, gaps: Option<&[f64]>, draw: u64) -> f64 {
    let jobs = shape.reads_before_post.len();
    let mut rng = SplitMix(draw.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ 0x5eed);
    let (a, spread) = (shape.duration * (1.0 - shape.jitter), 2.0 * shape.jitter * shape.duration);
    let run: Vec<Vec<f64>> = (0..shape.sites).map(|_| (0..jobs).map(|_| a + spread * rng.unit()).collect()).collect();
    let total: f64 = run.iter().flatten().sum();
    let chain = run.iter().map(|site| site.iter().sum::<f64>()).fold(0.0, f64::max);
    #[expect(clippy::cast_precision_loss, reason = "small counts")]
    let bound = (total / shape.slots as f64).max(chain);
    // Ready tasks in dispatch order: earlier job first (the longest remaining path), then site.
    let mut ready: std::collections::BTreeSet<(usize, usize)> = (0..shape.sites).map(|s| (0, s)).collect();
    let mut running: Vec<(f64, usize, usize)> = Vec::new();
    let mut now = 0.0_f64;
    while !ready.is_empty() || !running.is_empty() {
        while running.len() < shape.slots {
            let Some((job, site)) = ready.pop_first() else { break };
            let d = run[site][job];
            // In the slot: the reads before the POST, the POST, and the poll that sees the end.
            let requests = f64::from(shape.reads_before_post[job] + 2);
            let seen = gaps.map_or(0.0, |gaps| wait(d, a, spread, gaps));
            running.push((now + requests * shape.latency + d + seen, job, site));
        }
        let next = (0..running.len()).min_by(|i, j| running[*i].0.total_cmp(&running[*j].0)).unwrap_or(0);
        let (end, job, site) = running.swap_remove(next);
        now = end;
        if job + 1 < jobs {
            ready.insert((job + 1, site));
        }
    }
    now / bound
}

/// A small deterministic generator (SplitMix64), so the model's figures repeat.
struct SplitMix(u64);

impl SplitMix {
    fn unit(&mut self) -> f64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^= z >> 31;
        #[expect(clippy::cast_precision_loss, reason = "53 bits of a uniform draw")]
        let unit = (z >> 11) as f64 / (1_u64 << 53) as f64;
        unit
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_least_wait_for_one_and_a_half_polls_is_three_shrinking_gaps() {
        // One and a half polls: three gaps of 7/12, 4/12 and 1/12 of the spread, for an
        // expected wait of 66/288 of it.
        let gaps = gaps_for(1.5);
        assert_eq!(gaps.len(), 3);
        assert!((gaps[0] - 7.0 / 12.0).abs() < 1e-9 && (gaps[2] - 1.0 / 12.0).abs() < 1e-9, "{gaps:?}");
        // One poll: at the end of the spread.
        assert_eq!(gaps_for(1.0), vec![1.0]);
    }
}
