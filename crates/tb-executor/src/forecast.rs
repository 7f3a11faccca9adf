//! What a run will take: the executor's own [`Scheduler`] driven on a virtual clock, with a
//! duration for each task, so a forecast follows the schedule the run will follow (its
//! concurrency, per-site slots, one code change per environment, rollout waves and their
//! checks, the order it picks ready tasks in). `plan`'s estimate samples it many times; the
//! live ETA runs it again on what is left as tasks end. No tokio, no clock.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use tb_core::events::Status;
use tb_core::graph::TaskGraph;

use crate::TaskMeta;
use crate::scheduler::{GroupPolicy, Limits, Scheduler, Slot};

/// Where a task stands when the schedule is played from now.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Now {
    /// Not started: it takes its whole duration.
    Waiting,
    /// Started: it takes this many more seconds.
    Running { left: f64 },
    /// Ended, with this status.
    Ended(Status),
}

/// A run's schedule, ready to be played with durations.
#[derive(Clone, Debug)]
pub struct Schedule {
    slots: Vec<Slot>,
    groups: Vec<GroupPolicy>,
    limits: Limits,
}

/// A duration in seconds as a heap key (total order; durations are finite and non-negative).
#[derive(Clone, Copy, Debug, PartialEq)]
struct At(f64);

impl Eq for At {}

impl PartialOrd for At {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for At {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.0.total_cmp(&other.0)
    }
}

impl Schedule {
    /// The schedule of `graph`'s tasks, described by `metas`, under `groups` and `limits`:
    /// the slots the executor makes of them.
    #[must_use]
    pub fn new<P>(graph: &TaskGraph<P>, metas: &[TaskMeta], groups: Vec<GroupPolicy>, limits: Limits) -> Self {
        Self { slots: crate::slots(graph, metas), groups, limits }
    }

    /// Tasks in the schedule.
    #[must_use]
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// Seconds from now until every task has ended, when each waiting task takes
    /// `durations[i]` seconds and succeeds, each running one takes what it has left, and the
    /// ended ones ended as they did. Running and ended tasks are placed first, as they were.
    #[must_use]
    pub fn play(&self, durations: &[f64], now: &[Now]) -> f64 {
        let mut slots = self.slots.clone();
        for (slot, state) in slots.iter_mut().zip(now) {
            if !matches!(state, Now::Waiting) {
                // What already started goes first among the ready, as it did.
                slot.priority = u64::MAX;
            }
        }
        let mut sched = Scheduler::new(slots, Vec::new(), self.groups.clone(), self.limits);
        let mut ends: BinaryHeap<Reverse<(At, usize)>> = BinaryHeap::new();
        let mut clock = 0.0_f64;
        loop {
            while let Some(i) = sched.start_next() {
                match now.get(i).copied().unwrap_or(Now::Waiting) {
                    Now::Ended(status) => {
                        let _skipped = sched.finish(i, status);
                    }
                    Now::Running { left } => ends.push(Reverse((At(clock + left.max(0.0)), i))),
                    Now::Waiting => {
                        let d = durations.get(i).copied().unwrap_or(0.0);
                        ends.push(Reverse((At(clock + if d.is_finite() { d.max(0.0) } else { 0.0 }), i)));
                    }
                }
            }
            let Some(Reverse((At(at), i))) = ends.pop() else { break };
            clock = at;
            let _skipped = sched.finish(i, Status::Succeeded);
        }
        clock
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(concurrency: usize, per_site: usize) -> Limits {
        Limits { concurrency, per_site, fail_fast: false, max_failures: None }
    }

    fn schedule(slots: Vec<Slot>, concurrency: usize) -> Schedule {
        Schedule { slots, groups: vec![GroupPolicy::default()], limits: limits(concurrency, 1) }
    }

    #[test]
    fn tasks_run_as_the_limits_let_them() {
        // Four independent tasks of 10 s, two at a time: 20 s.
        let s = schedule(vec![Slot::default(); 4], 2);
        assert!((s.play(&[10.0; 4], &[Now::Waiting; 4]) - 20.0).abs() < 1e-9);
        // A chain: 0 → 1 → 2, whatever the concurrency.
        let chain = vec![
            Slot::default(),
            Slot { needs: vec![0], ..Slot::default() },
            Slot { needs: vec![1], ..Slot::default() },
        ];
        assert!((schedule(chain, 10).play(&[1.0, 2.0, 3.0], &[Now::Waiting; 3]) - 6.0).abs() < 1e-9);
        // One site, one workflow at a time.
        let site = |k: &str| Slot { site_key: Some(k.to_owned()), ..Slot::default() };
        let s = schedule(vec![site("a"), site("a"), site("b")], 10);
        assert!((s.play(&[5.0; 3], &[Now::Waiting; 3]) - 10.0).abs() < 1e-9);
        // Waves: the second starts when the first ended.
        let wave = |w: u32| Slot { wave: w, ..Slot::default() };
        let s = schedule(vec![wave(0), wave(1), wave(1)], 10);
        assert!((s.play(&[4.0, 1.0, 3.0], &[Now::Waiting; 3]) - 7.0).abs() < 1e-9);
    }

    #[test]
    fn what_is_left_is_played_from_now() {
        let chain = vec![
            Slot::default(),
            Slot { needs: vec![0], ..Slot::default() },
            Slot { needs: vec![1], ..Slot::default() },
        ];
        let s = schedule(chain, 10);
        let now = [Now::Ended(Status::Succeeded), Now::Running { left: 0.5 }, Now::Waiting];
        assert!((s.play(&[1.0, 2.0, 3.0], &now) - 3.5).abs() < 1e-9);
        // A failed task's dependents are skipped: nothing is left after it.
        let now = [Now::Ended(Status::Failed), Now::Waiting, Now::Waiting];
        assert!(s.play(&[1.0, 2.0, 3.0], &now).abs() < 1e-9);
        // Running tasks keep their slots: two running of two, a third waits for the first.
        let s = schedule(vec![Slot::default(); 3], 2);
        let now = [Now::Waiting, Now::Running { left: 1.0 }, Now::Running { left: 4.0 }];
        assert!((s.play(&[2.0; 3], &now) - 4.0).abs() < 1e-9);
    }
}
