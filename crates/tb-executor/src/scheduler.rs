//! The scheduler: a pure, synchronous state machine over task indices. It decides which
//! ready task starts next within the limits (tasks in flight, per-site slots, exclusive
//! keys such as "one code change per environment"), gates rollout waves, and applies the
//! failure rules (dependents skipped with their cause, fail-fast and failure budgets drain
//! the run). No tokio, no clock: the executor loop drives it.

use std::collections::{BTreeSet, HashMap};

use tb_core::cause::{Cause, Ended, Scope};
use tb_core::events::Status;

/// What the scheduler needs to know of one task.
#[derive(Clone, Debug, Default)]
pub struct Slot {
    /// Tasks this one waits for.
    pub needs: Vec<usize>,
    /// The policy group (the job).
    pub group: usize,
    /// Rollout wave within its group, or within `waves_of`'s.
    pub wave: u32,
    /// The group whose rollout waves gate this task (a check of another job's rollout);
    /// `None`: its own group's.
    pub waves_of: Option<usize>,
    /// Counted against `per_site` when set.
    pub site_key: Option<String>,
    /// Held exclusively while the task runs (e.g. `code:site.env`).
    pub exclusive: Vec<String>,
    /// Longest remaining path to the end of the graph; higher starts first.
    pub priority: u64,
}

/// A group's (job's) failure rules.
#[derive(Clone, Debug, Default)]
pub struct GroupPolicy {
    /// A failure drains the run.
    pub fail_fast: bool,
    /// Past this many failures of the group, the run drains.
    pub max_failures: Option<u64>,
    /// Failed or skipped tasks a wave may have before later waves are halted.
    pub wave_max_failures: u64,
}

/// Run-wide limits.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    pub concurrency: usize,
    pub per_site: usize,
    pub fail_fast: bool,
    /// Past this many failures, the run drains.
    pub max_failures: Option<u64>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum State {
    Waiting,
    Running,
    Done(Status),
}

struct Group {
    policy: GroupPolicy,
    /// Tasks per wave not yet terminal.
    open: Vec<usize>,
    /// Failed or skipped per wave.
    bad: Vec<u64>,
    /// The highest wave allowed to start.
    current: u32,
    failures: u64,
    halted: bool,
}

/// A task that ended without running, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Skip {
    pub task: usize,
    pub cause: Cause,
}

/// The state machine.
pub struct Scheduler {
    slots: Vec<Slot>,
    names: Vec<String>,
    dependents: Vec<Vec<usize>>,
    waiting_on: Vec<usize>,
    state: Vec<State>,
    groups: Vec<Group>,
    /// Tasks whose needs are met and whose wave is open, by dispatch order.
    ready: BTreeSet<(u32, std::cmp::Reverse<u64>, usize)>,
    running: usize,
    site_running: HashMap<String, usize>,
    held: BTreeSet<String>,
    limits: Limits,
    failures: u64,
    draining: Option<String>,
}

impl Scheduler {
    /// A scheduler over `slots` (names are used in skip reasons); `groups` indexed by
    /// [`Slot::group`].
    #[must_use]
    pub fn new(slots: Vec<Slot>, names: Vec<String>, groups: Vec<GroupPolicy>, limits: Limits) -> Self {
        let n = slots.len();
        let mut dependents = vec![Vec::new(); n];
        let mut waiting_on = vec![0; n];
        for (i, slot) in slots.iter().enumerate() {
            for &need in &slot.needs {
                dependents[need].push(i);
                waiting_on[i] += 1;
            }
        }
        let mut groups: Vec<Group> = groups
            .into_iter()
            .map(|policy| Group { policy, open: Vec::new(), bad: Vec::new(), current: 0, failures: 0, halted: false })
            .collect();
        for slot in &slots {
            let wave_group = slot.waves_of.unwrap_or(slot.group);
            if groups.len() <= slot.group.max(wave_group) {
                groups.resize_with(slot.group.max(wave_group) + 1, || Group {
                    policy: GroupPolicy::default(),
                    open: Vec::new(),
                    bad: Vec::new(),
                    current: 0,
                    failures: 0,
                    halted: false,
                });
            }
            let g = &mut groups[wave_group];
            let w = slot.wave as usize;
            if g.open.len() <= w {
                g.open.resize(w + 1, 0);
                g.bad.resize(w + 1, 0);
            }
            g.open[w] += 1;
        }
        let mut s = Self {
            slots,
            names,
            dependents,
            waiting_on,
            state: vec![State::Waiting; n],
            groups,
            ready: BTreeSet::new(),
            running: 0,
            site_running: HashMap::new(),
            held: BTreeSet::new(),
            limits: Limits { concurrency: limits.concurrency.max(1), per_site: limits.per_site.max(1), ..limits },
            failures: 0,
            draining: None,
        };
        // Waves with no tasks open at once (a group may start at wave 0 only).
        for g in 0..s.groups.len() {
            s.advance_waves(g);
        }
        for i in 0..n {
            s.consider(i);
        }
        s
    }

    /// The group whose waves gate task `i`.
    fn wave_group(&self, i: usize) -> usize {
        self.slots[i].waves_of.unwrap_or(self.slots[i].group)
    }

    fn name(&self, i: usize) -> &str {
        self.names.get(i).map_or("?", String::as_str)
    }

    /// Puts `i` in the ready set if its needs are met and its wave is open.
    fn consider(&mut self, i: usize) {
        let slot = &self.slots[i];
        let waves = &self.groups[slot.waves_of.unwrap_or(slot.group)];
        if self.state[i] == State::Waiting && self.waiting_on[i] == 0 && slot.wave <= waves.current && !waves.halted {
            self.ready.insert((slot.wave, std::cmp::Reverse(slot.priority), i));
        }
    }

    /// Whether anything is left to run or running.
    #[must_use]
    pub fn is_done(&self) -> bool {
        self.running == 0 && self.state.iter().all(|s| matches!(s, State::Done(_)))
    }

    #[must_use]
    pub fn running(&self) -> usize {
        self.running
    }

    /// Why the run is draining, if it is.
    #[must_use]
    pub fn draining(&self) -> Option<&str> {
        self.draining.as_deref()
    }

    /// The next task to start within the limits, marked running; `None` when nothing may
    /// start now.
    pub fn start_next(&mut self) -> Option<usize> {
        if self.draining.is_some() || self.running >= self.limits.concurrency {
            return None;
        }
        let pick = self.ready.iter().find(|(_, _, i)| self.fits(*i)).copied()?;
        self.ready.remove(&pick);
        let i = pick.2;
        self.state[i] = State::Running;
        self.running += 1;
        let slot = &self.slots[i];
        if let Some(site) = &slot.site_key {
            *self.site_running.entry(site.clone()).or_default() += 1;
        }
        for key in &slot.exclusive {
            self.held.insert(key.clone());
        }
        Some(i)
    }

    fn fits(&self, i: usize) -> bool {
        let slot = &self.slots[i];
        let site_ok = slot
            .site_key
            .as_ref()
            .is_none_or(|site| self.site_running.get(site).copied().unwrap_or(0) < self.limits.per_site);
        site_ok && slot.exclusive.iter().all(|k| !self.held.contains(k))
    }

    /// Records the end of a running task; returns the tasks that therefore end skipped.
    pub fn finish(&mut self, i: usize, status: Status) -> Vec<Skip> {
        if self.state[i] != State::Running {
            return Vec::new();
        }
        self.running -= 1;
        let slot = self.slots[i].clone();
        if let Some(site) = &slot.site_key
            && let Some(n) = self.site_running.get_mut(site)
        {
            *n = n.saturating_sub(1);
        }
        for key in &slot.exclusive {
            self.held.remove(key);
        }
        let mut skipped = Vec::new();
        self.settle(i, status, &mut skipped);
        if status == Status::Failed {
            self.failures += 1;
            let name = self.name(i).to_owned();
            let group = &mut self.groups[slot.group];
            group.failures += 1;
            let cause = if self.limits.fail_fast || group.policy.fail_fast {
                Some(Cause::FailFast { task: name })
            } else if let Some(max) = self.limits.max_failures.filter(|&m| self.failures > m) {
                Some(Cause::Budget { failed: self.failures, max, scope: Scope::Run })
            } else if let Some(max) = group.policy.max_failures.filter(|&m| group.failures > m) {
                Some(Cause::Budget { failed: group.failures, max, scope: Scope::Job })
            } else {
                None
            };
            if let Some(cause) = cause {
                skipped.extend(self.drain(&cause));
            }
        }
        skipped
    }

    /// Stops starting tasks: every task not started ends skipped for `cause`.
    pub fn drain(&mut self, cause: &Cause) -> Vec<Skip> {
        if self.draining.is_none() {
            self.draining = Some(cause.to_string());
        }
        self.ready.clear();
        let mut skipped = Vec::new();
        for i in 0..self.state.len() {
            if self.state[i] == State::Waiting {
                // Nothing starts any more, so wave and group counters no longer matter.
                self.state[i] = State::Done(Status::Skipped);
                skipped.push(Skip { task: i, cause: cause.clone() });
            }
        }
        skipped
    }

    /// Marks `i` terminal, then skips its waiting dependents (transitively) and opens or halts
    /// waves. A task is marked the moment it is decided, so none is reported twice.
    fn settle(&mut self, i: usize, status: Status, skipped: &mut Vec<Skip>) {
        if matches!(self.state[i], State::Done(_)) {
            return;
        }
        self.state[i] = State::Done(status);
        let mut stack = vec![(i, status)];
        while let Some((t, st)) = stack.pop() {
            let slot = self.slots[t].clone();
            self.ready.remove(&(slot.wave, std::cmp::Reverse(slot.priority), t));
            let wave_group = slot.waves_of.unwrap_or(slot.group);
            let group = &mut self.groups[wave_group];
            let w = slot.wave as usize;
            group.open[w] -= 1;
            if matches!(st, Status::Failed | Status::Skipped | Status::Cancelled) {
                group.bad[w] += 1;
            }
            let mut newly = Vec::new();
            for &d in &self.dependents[t] {
                if st.is_ok() {
                    self.waiting_on[d] -= 1;
                } else if self.state[d] == State::Waiting {
                    let ended = match st {
                        Status::Skipped => Ended::Skipped,
                        Status::Cancelled => Ended::Cancelled,
                        _ => Ended::Failed,
                    };
                    newly.push(Skip { task: d, cause: Cause::Need { task: self.name(t).to_owned(), ended } });
                }
            }
            if st.is_ok() {
                for d in self.dependents[t].clone() {
                    self.consider(d);
                }
            }
            newly.extend(self.advance_waves(wave_group));
            for skip in newly {
                if self.state[skip.task] == State::Waiting {
                    self.state[skip.task] = State::Done(Status::Skipped);
                    stack.push((skip.task, Status::Skipped));
                    skipped.push(skip);
                }
            }
        }
    }

    /// Opens the group's next waves while the current one is over and within its budget;
    /// halts the group (returning its waiting later-wave tasks) when a wave failed.
    fn advance_waves(&mut self, g: usize) -> Vec<Skip> {
        let mut halted = Vec::new();
        loop {
            let group = &self.groups[g];
            let cur = group.current as usize;
            if group.halted || cur + 1 >= group.open.len() || group.open[cur] > 0 {
                break;
            }
            if group.bad[cur] > group.policy.wave_max_failures {
                let cause = Cause::WaveHalted {
                    wave: u32::try_from(cur + 1).unwrap_or(u32::MAX),
                    bad: group.bad[cur],
                    max: group.policy.wave_max_failures,
                };
                self.groups[g].halted = true;
                for i in 0..self.slots.len() {
                    if self.wave_group(i) == g && self.slots[i].wave as usize > cur && self.state[i] == State::Waiting {
                        halted.push(Skip { task: i, cause: cause.clone() });
                    }
                }
                break;
            }
            self.groups[g].current += 1;
            let next = self.groups[g].current;
            for i in 0..self.slots.len() {
                if self.wave_group(i) == g && self.slots[i].wave == next {
                    self.consider(i);
                }
            }
        }
        halted
    }

    /// The final status of each task (`None` while not ended).
    #[must_use]
    pub fn status(&self, i: usize) -> Option<Status> {
        match self.state[i] {
            State::Done(s) => Some(s),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(concurrency: usize) -> Limits {
        Limits { concurrency, per_site: 1, fail_fast: false, max_failures: None }
    }

    fn names(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("t{i}")).collect()
    }

    #[test]
    fn dispatch_follows_wave_then_priority_then_order() {
        let slots = vec![
            Slot { priority: 1, ..Slot::default() },
            Slot { priority: 5, ..Slot::default() },
            Slot { priority: 5, ..Slot::default() },
        ];
        let mut s = Scheduler::new(slots, names(3), vec![GroupPolicy::default()], limits(10));
        assert_eq!([s.start_next(), s.start_next(), s.start_next(), s.start_next()], [Some(1), Some(2), Some(0), None]);
    }

    #[test]
    fn a_budget_drain_says_its_numbers() {
        let slots = vec![Slot::default(), Slot::default(), Slot::default()];
        let run = Limits { max_failures: Some(0), ..limits(1) };
        let mut s = Scheduler::new(slots, names(3), vec![GroupPolicy::default()], run);
        assert_eq!(s.start_next(), Some(0));
        let skipped = s.finish(0, Status::Failed);
        assert_eq!(skipped.len(), 2);
        assert!(
            skipped.iter().all(|k| k.cause.to_string() == "failure budget exceeded: 1 failed of max 0 in the run"),
            "{skipped:?}"
        );
    }

    #[test]
    fn a_failure_skips_its_descendants_naming_the_cause() {
        let slots = vec![
            Slot::default(),
            Slot { needs: vec![0], ..Slot::default() },
            Slot { needs: vec![1], ..Slot::default() },
            Slot::default(),
        ];
        let mut s = Scheduler::new(slots, names(4), vec![GroupPolicy::default()], limits(10));
        assert_eq!(s.start_next(), Some(0));
        assert_eq!(s.start_next(), Some(3));
        let skipped = s.finish(0, Status::Failed);
        assert_eq!(
            skipped,
            [
                Skip { task: 1, cause: Cause::Need { task: "t0".into(), ended: Ended::Failed } },
                Skip { task: 2, cause: Cause::Need { task: "t1".into(), ended: Ended::Skipped } }
            ]
        );
        s.finish(3, Status::Succeeded);
        assert!(s.is_done());
    }

    #[test]
    fn per_site_and_exclusive_keys_hold_tasks_back_without_a_slot() {
        let site = |s: &str| Slot { site_key: Some(s.into()), ..Slot::default() };
        let slots = vec![
            site("a"),
            site("a"),
            Slot { exclusive: vec!["code:b.dev".into()], ..Slot::default() },
            Slot { exclusive: vec!["code:b.dev".into()], ..Slot::default() },
            site("c"),
        ];
        let mut s = Scheduler::new(slots, names(5), vec![GroupPolicy::default()], limits(10));
        let first: Vec<usize> = std::iter::from_fn(|| s.start_next()).collect();
        assert_eq!(first, [0, 2, 4]);
        s.finish(0, Status::Succeeded);
        s.finish(2, Status::Succeeded);
        let second: Vec<usize> = std::iter::from_fn(|| s.start_next()).collect();
        assert_eq!(second, [1, 3]);
    }

    #[test]
    fn fail_fast_drains_and_a_failing_wave_halts_the_rollout() {
        let slots = vec![Slot::default(), Slot::default(), Slot::default()];
        let mut s =
            Scheduler::new(slots, names(3), vec![GroupPolicy::default()], Limits { fail_fast: true, ..limits(1) });
        assert_eq!(s.start_next(), Some(0));
        let skipped = s.finish(0, Status::Failed);
        assert_eq!(skipped.len(), 2);
        assert!(skipped.iter().all(|k| k.cause.to_string() == "fail-fast: `t0` failed"));
        assert!(s.is_done());

        let wave = |w: u32| Slot { wave: w, ..Slot::default() };
        let slots = vec![wave(0), wave(1), wave(1), wave(2)];
        let mut s = Scheduler::new(slots, names(4), vec![GroupPolicy::default()], limits(10));
        assert_eq!(s.start_next(), Some(0));
        assert_eq!(s.start_next(), None, "wave 2 waits for wave 1");
        let skipped = s.finish(0, Status::Failed);
        assert_eq!(skipped.iter().map(|k| k.task).collect::<Vec<_>>(), [1, 2, 3]);
        assert!(
            skipped.iter().all(|k| k.cause.to_string() == "rollout halted at wave 1: 1 failed or skipped of max 0"),
            "{skipped:?}"
        );
    }

    #[test]
    fn a_wave_waits_for_its_checks_and_a_failed_check_halts_the_rollout() {
        // Group 0 deploys in two waves (tasks 0, 1); group 1 checks each site after its
        // deploy (tasks 2, 3), in the deploy's waves.
        let slots = vec![
            Slot { wave: 0, ..Slot::default() },
            Slot { wave: 1, ..Slot::default() },
            Slot { group: 1, wave: 0, waves_of: Some(0), needs: vec![0], ..Slot::default() },
            Slot { group: 1, wave: 1, waves_of: Some(0), needs: vec![1], ..Slot::default() },
        ];
        let policies = vec![GroupPolicy::default(), GroupPolicy::default()];
        let mut s = Scheduler::new(slots.clone(), names(4), policies.clone(), limits(10));
        assert_eq!(s.start_next(), Some(0));
        assert_eq!(s.start_next(), None);
        assert!(s.finish(0, Status::Succeeded).is_empty());
        assert_eq!(s.start_next(), Some(2));
        assert_eq!(s.start_next(), None, "wave 2 waits for the first wave's check");
        assert!(s.finish(2, Status::Succeeded).is_empty());
        assert_eq!(s.start_next(), Some(1));

        let mut s = Scheduler::new(slots, names(4), policies, limits(10));
        assert_eq!(s.start_next(), Some(0));
        s.finish(0, Status::Succeeded);
        assert_eq!(s.start_next(), Some(2));
        let skipped = s.finish(2, Status::Failed);
        assert_eq!(skipped.iter().map(|k| k.task).collect::<Vec<_>>(), [1, 3]);
        assert!(
            skipped.iter().any(|k| k.cause.to_string() == "rollout halted at wave 1: 1 failed or skipped of max 0")
        );
        assert!(s.is_done());
    }

    mod properties {
        use std::collections::BTreeSet;

        use proptest::prelude::*;

        use super::*;

        #[derive(Clone, Debug)]
        struct Case {
            slots: Vec<Slot>,
            outcomes: Vec<Status>,
            limits: Limits,
            groups: Vec<GroupPolicy>,
            /// Which running task ends next, as an index into the running list.
            picks: Vec<usize>,
        }

        fn case() -> impl Strategy<Value = Case> {
            (1usize..28).prop_flat_map(|n| {
                let edges = proptest::collection::vec(proptest::collection::vec(any::<bool>(), n), n);
                let meta = proptest::collection::vec((0usize..3, 0u32..3, 0usize..4, 0usize..3, 0u64..20), n);
                let outcomes = proptest::collection::vec(
                    prop_oneof![Just(Status::Succeeded), Just(Status::Unchanged), Just(Status::Failed)],
                    n,
                );
                let limits = (1usize..6, 1usize..3, any::<bool>(), proptest::option::of(0u64..4));
                let groups = proptest::collection::vec((any::<bool>(), proptest::option::of(0u64..3), 0u64..2), 3);
                let picks = proptest::collection::vec(0usize..8, 64);
                (Just(n), edges, meta, outcomes, limits, groups, picks).prop_map(
                    |(n, edges, meta, outcomes, (concurrency, per_site, fail_fast, max_failures), groups, picks)| {
                        // Groups are jobs: in plan order, and a job's tasks need only tasks of
                        // earlier jobs (expansion guarantees both), so edges go from lower to
                        // higher index and never within a group: always a DAG.
                        let group_of = |j: usize| j * 3 / n;
                        let slots = (0..n)
                            .map(|j| {
                                let (_, wave, site, key, priority) = meta[j];
                                let group = group_of(j);
                                Slot {
                                    needs: (0..j).filter(|&i| edges[i][j] && group_of(i) < group).collect(),
                                    group,
                                    wave,
                                    site_key: (site < 3).then(|| format!("site{site}")),
                                    exclusive: if key < 2 { vec![format!("key{key}")] } else { Vec::new() },
                                    priority,
                                    waves_of: None,
                                }
                            })
                            .collect();
                        let groups = groups
                            .into_iter()
                            .map(|(fail_fast, max_failures, wave_max_failures)| GroupPolicy {
                                fail_fast,
                                max_failures,
                                wave_max_failures,
                            })
                            .collect();
                        Case {
                            slots,
                            outcomes,
                            limits: Limits { concurrency, per_site, fail_fast, max_failures },
                            groups,
                            picks,
                        }
                    },
                )
            })
        }

        /// Runs a case to the end, checking the bounds at every start; returns the start
        /// order and every task's terminal status.
        fn simulate(c: &Case) -> (Vec<usize>, Vec<Status>) {
            let n = c.slots.len();
            let names = (0..n).map(|i| format!("t{i}")).collect();
            let mut s = Scheduler::new(c.slots.clone(), names, c.groups.clone(), c.limits);
            let mut running: Vec<usize> = Vec::new();
            let mut ended: Vec<Option<Status>> = vec![None; n];
            let mut order = Vec::new();
            let mut step = 0;
            let mut drained = false;
            loop {
                while let Some(i) = s.start_next() {
                    assert!(!drained, "nothing starts after the run drained");
                    assert!(ended[i].is_none() && !running.contains(&i), "t{i} started twice");
                    for &need in &c.slots[i].needs {
                        assert!(ended[need].is_some_and(Status::is_ok), "t{i} started before t{need} succeeded");
                    }
                    running.push(i);
                    order.push(i);
                    assert!(running.len() <= c.limits.concurrency, "concurrency exceeded");
                    for r in &running {
                        if let Some(site) = &c.slots[*r].site_key {
                            let on_site =
                                running.iter().filter(|x| c.slots[**x].site_key.as_ref() == Some(site)).count();
                            assert!(on_site <= c.limits.per_site, "per-site limit exceeded");
                        }
                    }
                    let keys: Vec<&String> = running.iter().flat_map(|r| &c.slots[*r].exclusive).collect();
                    let unique: BTreeSet<&String> = keys.iter().copied().collect();
                    assert_eq!(keys.len(), unique.len(), "an exclusive key held twice");
                }
                if running.is_empty() {
                    break;
                }
                let pick = c.picks[step % c.picks.len()] % running.len();
                step += 1;
                let task = running.remove(pick);
                let status = c.outcomes[task];
                ended[task] = Some(status);
                for skip in s.finish(task, status) {
                    assert!(ended[skip.task].is_none(), "t{} ended twice", skip.task);
                    ended[skip.task] = Some(Status::Skipped);
                }
                drained |= s.draining().is_some();
            }
            assert!(s.is_done());
            (order, ended.into_iter().map(|e| e.expect("every task ends")).collect())
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(400))]

            #[test]
            fn bounds_hold_and_every_task_ends_once(c in case()) {
                let (order, statuses) = simulate(&c);
                prop_assert_eq!(statuses.len(), c.slots.len());
                // Same input, same dispatch order.
                let (again, _) = simulate(&c);
                prop_assert_eq!(order, again);
            }

            #[test]
            fn without_policies_a_failure_skips_exactly_its_descendants(mut c in case()) {
                c.limits.fail_fast = false;
                c.limits.max_failures = None;
                for g in &mut c.groups {
                    *g = GroupPolicy::default();
                }
                for slot in &mut c.slots {
                    slot.wave = 0;
                }
                let (_, statuses) = simulate(&c);
                let n = c.slots.len();
                let mut doomed = vec![false; n];
                for j in 0..n {
                    doomed[j] = c.slots[j].needs.iter().any(|&i| doomed[i] || c.outcomes[i] == Status::Failed);
                }
                for j in 0..n {
                    let expected = if doomed[j] { Status::Skipped } else { c.outcomes[j] };
                    prop_assert_eq!(statuses[j], expected, "t{}", j);
                }
            }

            #[test]
            fn fail_fast_starts_nothing_after_the_first_failure(mut c in case()) {
                c.limits.fail_fast = true;
                let (_, statuses) = simulate(&c);
                // simulate() asserts no start after draining; here: at most `concurrency`
                // failures can happen (those already in flight).
                let failed = statuses.iter().filter(|s| **s == Status::Failed).count();
                prop_assert!(failed <= c.limits.concurrency);
            }

            #[test]
            fn a_budget_stops_starting_once_exceeded(mut c in case(), budget in 0u64..3) {
                c.limits.fail_fast = false;
                c.limits.max_failures = Some(budget);
                let (_, statuses) = simulate(&c);
                let failed = statuses.iter().filter(|s| **s == Status::Failed).count() as u64;
                prop_assert!(failed <= budget + c.limits.concurrency as u64);
            }

            #[test]
            fn waves_gate(c in case()) {
                let (order, _) = simulate(&c);
                // A task of wave w+1 starts only after every task of wave w of its group ended;
                // with one task in flight at a time this is visible in the start order.
                let mut serial = c.clone();
                serial.limits.concurrency = 1;
                let (order1, _) = simulate(&serial);
                for (pos, &t) in order1.iter().enumerate() {
                    let slot = &c.slots[t];
                    for &later in &order1[pos + 1..] {
                        let other = &c.slots[later];
                        prop_assert!(!(other.group == slot.group && other.wave < slot.wave), "wave {} of group {} ran after wave {}", other.wave, slot.group, slot.wave);
                    }
                }
                prop_assert!(order.len() <= c.slots.len());
            }
        }
    }
}
