//! Expansion: a validated [`Plan`] and its [`Resolved`] targets → tasks. Jobs fan out over
//! sites × environments × matrix values, in a deterministic order (plan order; sites as
//! resolved; environments as written; matrix axes in order, first outermost); `needs` are
//! rewritten onto tasks per site (DESIGN.md §3.3); rollout waves are fixed here as executor
//! metadata, never graph edges. Pure: no I/O, no clock.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use serde::Serialize;

use crate::plan::error::{ErrorCode, PlanError};
use crate::plan::model::{ArgTemplate, Job, Limit, NeedScope, OnFailure, Plan, Retries, Rollout};
use crate::plan::ops::{
    ArgValue, Args, OperationKind, OperationSpec, OptType, Scalar, Scope, check_domain, convert_scalar,
};
use crate::plan::validate::render;
use crate::resolve::Resolved;
use tb_core::glob::matches;
use tb_core::ids::{JobId, TaskId};

/// Most tasks one plan may expand to. The engine handles far more; the cap keeps a typo in a
/// matrix from producing millions of tasks.
pub const MAX_TASKS: usize = 100_000;

/// One task: a job instance on one target with one set of matrix values.
#[derive(Clone, Debug, Serialize)]
pub struct Task<P> {
    pub id: TaskId,
    pub job: JobId,
    /// Index of the job in plan order.
    pub job_index: usize,
    pub site: Option<String>,
    pub site_id: Option<String>,
    pub env: Option<String>,
    pub matrix: Vec<(String, Scalar)>,
    pub payload: P,
    /// The options the plan gave (`with`), by name, rendered as a plan writes them
    /// (references to the process environment and the run id stay symbolic).
    pub with: Vec<(&'static str, String)>,
    /// Indices of the tasks this one waits for, ascending.
    pub needs: Vec<usize>,
    /// Rollout wave within its job (0 without a rollout), or within the rollout it checks.
    pub wave: u32,
    /// The job (by index) whose rollout waves this task belongs to, when its job checks
    /// that rollout (`rollout.checks`); `None`: its own job's.
    pub waves_of: Option<usize>,
}

impl Task<OperationSpec> {
    /// The task as events, the journal and reports name it.
    #[must_use]
    pub fn header(&self) -> tb_core::events::TaskHeader {
        tb_core::events::TaskHeader {
            id: self.id.clone(),
            job: self.job.to_string(),
            site: self.site.clone(),
            site_id: self.site_id.clone().filter(|id| !id.is_empty()),
            env: self.env.clone(),
            operation: self.payload.kind().name().to_owned(),
            wave: self.wave,
            estimate_secs: self.payload.kind().estimate_secs(),
            digest: self.digest(),
        }
    }

    /// A digest of what the task does: its operation and every option, as expanded.
    #[must_use]
    pub fn digest(&self) -> String {
        use sha2::{Digest, Sha256};
        let spec = serde_json::to_string(&self.payload).unwrap_or_default();
        let hash = Sha256::digest(spec.as_bytes());
        hash.iter().take(8).fold(String::with_capacity(16), |mut out, b| {
            use std::fmt::Write as _;
            let _infallible = write!(out, "{b:02x}");
            out
        })
    }
}

/// Per-job data the executor and reports need.
#[derive(Clone, Debug, Serialize)]
pub struct JobInfo {
    pub id: JobId,
    pub operation: OperationKind,
    pub on_failure: Option<OnFailure>,
    pub max_failures: Option<Limit>,
    #[serde(skip)]
    pub rollout: Option<Rollout>,
    /// Number of waves (1 without a rollout).
    pub waves: u32,
    pub timeout: Option<Duration>,
    pub retries: Retries,
    /// Indices of the job's tasks.
    pub tasks: Vec<usize>,
}

/// The expanded plan.
#[derive(Clone, Debug, Serialize)]
pub struct Expansion<P> {
    pub tasks: Vec<Task<P>>,
    pub jobs: Vec<JobInfo>,
}

/// Which part of the plan to keep (`--only`, `--sites`).
#[derive(Clone, Debug, Default)]
pub struct Filter {
    /// Named jobs; their needs (transitively) are kept too. Empty keeps every job.
    pub only: Vec<String>,
    /// A site glob; tasks on other sites, and account tasks, are dropped.
    pub sites: Option<String>,
}

/// Expands a plan over its resolved targets.
///
/// # Errors
/// `plan::unmatched_need` (a needed job has no task on a site), `plan::bad_option` (an
/// interpolated value that is not valid for its option), `plan::too_many_tasks`, and
/// `plan::unknown_need` for an `--only` name that is not a job.
pub fn expand(plan: &Plan, resolved: &Resolved, filter: &Filter) -> Result<Expansion<OperationSpec>, Vec<PlanError>> {
    let mut errors = Vec::new();
    let kept_jobs = kept_jobs(plan, filter, &mut errors);
    if !errors.is_empty() {
        return Err(errors);
    }

    let mut tasks: Vec<Task<OperationSpec>> = Vec::new();
    let mut jobs: Vec<JobInfo> = Vec::new();
    let mut reported_args = BTreeSet::new();
    for (job_index, job) in plan.jobs.iter().enumerate() {
        let mut info = JobInfo {
            id: job.id.clone(),
            operation: job.op,
            on_failure: job.on_failure,
            max_failures: job.max_failures,
            rollout: job.rollout,
            waves: 1,
            timeout: job.timeout,
            retries: job.retries,
            tasks: Vec::new(),
        };
        if !kept_jobs.contains(&job_index) {
            jobs.push(info);
            continue;
        }
        let targets: Vec<(Option<&str>, Option<&str>, Option<&str>)> = match job.op.scope() {
            Scope::Account => vec![(None, None, None)],
            scope => resolved
                .jobs
                .get(job.id.as_str())
                .into_iter()
                .flatten()
                .filter(|t| filter.sites.as_ref().is_none_or(|g| matches(g, &t.site)))
                .flat_map(|t| {
                    let site = Some(t.site.as_str());
                    let id = Some(t.site_id.as_str());
                    if scope == Scope::Site {
                        vec![(site, id, None)]
                    } else {
                        t.envs.iter().map(|e| (site, id, Some(e.as_str()))).collect()
                    }
                })
                .collect(),
        };
        if filter.sites.is_some() && job.op.scope() == Scope::Account {
            jobs.push(info);
            continue;
        }
        let count = job.matrix.iter().fold(targets.len(), |n, axis| n.saturating_mul(axis.values.len()));
        if tasks.len().saturating_add(count) > MAX_TASKS {
            return Err(vec![
                PlanError::new(
                    ErrorCode::TooManyTasks,
                    format!("the plan expands to more than {MAX_TASKS} tasks (job `{}` alone adds {count})", job.id),
                )
                .at(job.span, "this job")
                .help("narrow the targets or the matrix, or split the plan"),
            ]);
        }
        let combos = matrix_combinations(job);
        for (site, site_id, env) in &targets {
            for coords in &combos {
                let target = match (site, env) {
                    (Some(s), Some(e)) => format!("{s}.{e}"),
                    (Some(s), None) => (*s).to_owned(),
                    _ => String::new(),
                };
                let shown: Vec<(String, String)> = coords.iter().map(|(n, v)| (n.clone(), v.to_string())).collect();
                let args = task_args(job, *site, *env, coords, &mut reported_args, &mut errors);
                info.tasks.push(tasks.len());
                tasks.push(Task {
                    id: TaskId::new(&job.id, &target, &shown),
                    job: job.id.clone(),
                    job_index,
                    site: site.map(str::to_owned),
                    site_id: site_id.map(str::to_owned),
                    env: env.map(str::to_owned),
                    matrix: coords.clone(),
                    payload: OperationSpec::build(job.op, &args),
                    with: args.iter().map(|(name, value)| (*name, value.to_string())).collect(),
                    needs: Vec::new(),
                    wave: 0,
                    waves_of: None,
                });
            }
        }
        if let Some(rollout) = job.rollout {
            info.waves = assign_waves(&mut tasks, &info.tasks, rollout);
        }
        jobs.push(info);
    }

    join_checked_waves(plan, &mut jobs, &mut tasks);
    link_needs(plan, &jobs, &mut tasks, filter, &mut errors);
    if errors.is_empty() {
        Ok(Expansion { tasks, jobs })
    } else {
        errors.sort_by_key(PlanError::offset);
        Err(errors)
    }
}

fn kept_jobs(plan: &Plan, filter: &Filter, errors: &mut Vec<PlanError>) -> BTreeSet<usize> {
    if filter.only.is_empty() {
        return (0..plan.jobs.len()).collect();
    }
    let index: BTreeMap<&str, usize> = plan.jobs.iter().enumerate().map(|(i, j)| (j.id.as_str(), i)).collect();
    let mut kept = BTreeSet::new();
    let mut stack: Vec<usize> = Vec::new();
    for name in &filter.only {
        match index.get(name.as_str()) {
            Some(&i) => stack.push(i),
            None => errors.push(
                PlanError::new(
                    ErrorCode::UnknownNeed,
                    format!("--only names `{name}`, which is not a job of this plan"),
                )
                .help_opt(crate::plan::error::did_you_mean(name, index.keys().copied())),
            ),
        }
    }
    while let Some(i) = stack.pop() {
        if kept.insert(i) {
            for need in &plan.jobs[i].needs {
                if let Some(&n) = index.get(need.job.as_str()) {
                    stack.push(n);
                }
            }
        }
    }
    kept
}

fn matrix_combinations(job: &Job) -> Vec<Vec<(String, Scalar)>> {
    let mut combos: Vec<Vec<(String, Scalar)>> = vec![Vec::new()];
    for axis in &job.matrix {
        let mut next = Vec::with_capacity(combos.len().saturating_mul(axis.values.len()).min(MAX_TASKS + 1));
        for combo in &combos {
            for value in &axis.values {
                let mut c = combo.clone();
                c.push((axis.name.clone(), value.clone()));
                next.push(c);
                if next.len() > MAX_TASKS {
                    return next;
                }
            }
        }
        combos = next;
    }
    combos
}

fn task_args(
    job: &Job,
    site: Option<&str>,
    env: Option<&str>,
    coords: &[(String, Scalar)],
    reported: &mut BTreeSet<(usize, usize)>,
    errors: &mut Vec<PlanError>,
) -> Args {
    let mut args = Args::new();
    for arg in &job.args {
        let value = match &arg.value {
            ArgTemplate::Fixed(v) => v.clone(),
            ArgTemplate::Template(t) => ArgValue::Text(render(t, site, env, coords)),
            ArgTemplate::Matrix(axis) => {
                let scalar = coords.iter().find(|(n, _)| n == axis).map(|(_, v)| v.clone());
                // Validation checked every value of the axis against the option's type.
                match scalar.map(|s| convert_scalar(arg.ty, &s)) {
                    Some(Ok(v)) => v,
                    _ => continue,
                }
            }
        };
        if arg.ty == OptType::Domain
            && let ArgValue::Text(text) = &value
            && let Some(domain) = text.as_literal()
            && let Err(why) = check_domain(&domain)
            && reported.insert((arg.span.offset(), arg.span.len()))
        {
            errors.push(
                PlanError::new(ErrorCode::BadOption, format!("option `{}` of `{}`: {why}", arg.name, job.op))
                    .at(arg.span, "after interpolation"),
            );
        }
        args.insert(arg.name, value);
    }
    args
}

/// `rollout.checks`: a checking job's task on a site joins the wave of the rolled-out job's
/// task on the same site, so that the wave is over only when its checks are.
fn join_checked_waves<P>(plan: &Plan, jobs: &mut [JobInfo], tasks: &mut [Task<P>]) {
    for (index, job) in plan.jobs.iter().enumerate() {
        let Some(info) = jobs.get(index).filter(|info| info.id == job.id) else { continue };
        let waves: BTreeMap<String, u32> =
            info.tasks.iter().filter_map(|&t| Some((tasks[t].site.clone()?, tasks[t].wave))).collect();
        let count = info.waves;
        for (check, _) in &job.rollout_checks {
            let Some(checker) = jobs.iter_mut().find(|j| j.id == *check) else { continue };
            checker.waves = count;
            for &t in &checker.tasks {
                if let Some(wave) = tasks[t].site.as_ref().and_then(|site| waves.get(site)) {
                    tasks[t].wave = *wave;
                    tasks[t].waves_of = Some(index);
                }
            }
        }
    }
}

fn assign_waves<P>(tasks: &mut [Task<P>], job_tasks: &[usize], rollout: Rollout) -> u32 {
    let n = job_tasks.len();
    let first = usize::try_from(rollout.first.ceil_of(n)).unwrap_or(usize::MAX);
    let then = rollout.then.map_or(usize::MAX, |t| usize::try_from(t.ceil_of(n)).unwrap_or(usize::MAX));
    let mut wave = 0u32;
    let mut in_wave = 0usize;
    let mut limit = first;
    for &t in job_tasks {
        if in_wave == limit {
            wave += 1;
            in_wave = 0;
            limit = then;
        }
        tasks[t].wave = wave;
        in_wave += 1;
    }
    if n == 0 { 1 } else { wave + 1 }
}

fn link_needs<P>(plan: &Plan, jobs: &[JobInfo], tasks: &mut [Task<P>], filter: &Filter, errors: &mut Vec<PlanError>) {
    let index: BTreeMap<&str, usize> = plan.jobs.iter().enumerate().map(|(i, j)| (j.id.as_str(), i)).collect();
    // Tasks of each job grouped by site, for per-site needs.
    let by_site: Vec<BTreeMap<Option<String>, Vec<usize>>> = jobs
        .iter()
        .map(|info| {
            let mut m: BTreeMap<Option<String>, Vec<usize>> = BTreeMap::new();
            for &t in &info.tasks {
                m.entry(tasks[t].site.clone()).or_default().push(t);
            }
            m
        })
        .collect();
    for (job_index, job) in plan.jobs.iter().enumerate() {
        for need in &job.needs {
            let Some(&needed) = index.get(need.job.as_str()) else { continue };
            let needed_info = &jobs[needed];
            let barrier = need.scope == NeedScope::All
                || job.op.scope() == Scope::Account
                || plan.jobs[needed].op.scope() == Scope::Account;
            let mut missing: Vec<String> = Vec::new();
            for &t in &jobs[job_index].tasks {
                let deps: Vec<usize> = if barrier {
                    needed_info.tasks.clone()
                } else if let Some(list) = by_site[needed].get(&tasks[t].site) {
                    list.clone()
                } else {
                    if !need.optional
                        && let Some(site) = &tasks[t].site
                        && !missing.contains(site)
                    {
                        missing.push(site.clone());
                    }
                    Vec::new()
                };
                let list = &mut tasks[t].needs;
                list.extend(deps);
                list.sort_unstable();
                list.dedup();
            }
            // With --sites or --only, a subset run may not contain the needed tasks; only a
            // full expansion reports unmatched needs.
            if !missing.is_empty() && filter.sites.is_none() {
                let shown: Vec<&str> = missing.iter().take(3).map(String::as_str).collect();
                let more = if missing.len() > 3 { format!(" and {} more", missing.len() - 3) } else { String::new() };
                errors.push(
                    PlanError::new(
                        ErrorCode::UnmatchedNeed,
                        format!(
                            "job `{}` needs `{}`, which has no task on {}{more}",
                            job.id,
                            need.job,
                            shown.iter().map(|s| format!("`{s}`")).collect::<Vec<_>>().join(", ")
                        ),
                    )
                    .at(need.span, "needed per site here")
                    .help("make both jobs target the same sites, use `{ job: ..., optional: true }`, or `scope: all` for a barrier"),
                );
            }
        }
    }
}

impl tb_core::graph::render::NodeView for Task<OperationSpec> {
    fn node_id(&self) -> String {
        self.id.to_string()
    }

    fn group(&self) -> String {
        self.job.to_string()
    }

    fn detail(&self) -> String {
        let mut detail = self.payload.kind().name().to_owned();
        if self.wave > 0 {
            detail.push_str(&format!(" · wave {}", self.wave + 1));
        }
        if self.payload.is_destructive() {
            detail.push_str(" · destructive");
        }
        detail
    }

    fn fields(&self) -> serde_json::Value {
        serde_json::json!({
            "id": self.id,
            "job": self.job,
            "site": self.site,
            "env": self.env,
            "operation": self.payload.kind().name(),
            "wave": self.wave + 1,
            "destructive": self.payload.is_destructive(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::source::PlanSource;
    use crate::resolve::SiteTargets;

    fn plan(text: &str) -> Plan {
        crate::plan::load(&PlanSource::new("t.yml", text)).unwrap()
    }

    fn targets(pairs: &[(&str, &[&str], &[&str])]) -> Resolved {
        let mut r = Resolved::default();
        for (job, sites, envs) in pairs {
            r.jobs.insert(
                (*job).to_owned(),
                sites
                    .iter()
                    .map(|s| SiteTargets {
                        site: (*s).to_owned(),
                        site_id: format!("id-{s}"),
                        envs: envs.iter().map(|e| (*e).to_owned()).collect(),
                        frozen: false,
                    })
                    .collect(),
            );
        }
        r
    }

    #[test]
    fn fans_out_and_links_needs_per_site() {
        let p = plan(
            "version: 1\njobs:\n  backup:\n    run: backup:create\n    on: {sites: [a, b], env: live}\n  deploy:\n    run: env:deploy\n    needs: [backup]\n    on: {sites: [a, b], env: [test, live]}\n",
        );
        let r = targets(&[("backup", &["a", "b"], &["live"]), ("deploy", &["a", "b"], &["test", "live"])]);
        let e = expand(&p, &r, &Filter::default()).unwrap();
        let ids: Vec<&str> = e.tasks.iter().map(|t| t.id.as_str()).collect();
        assert_eq!(
            ids,
            [
                "backup[a.live]",
                "backup[b.live]",
                "deploy[a.test]",
                "deploy[a.live]",
                "deploy[b.test]",
                "deploy[b.live]"
            ]
        );
        assert_eq!(e.tasks[2].needs, [0]);
        assert_eq!(e.tasks[5].needs, [1]);
    }

    #[test]
    fn matrix_ids_and_interpolation() {
        let p = plan(
            "version: 1\njobs:\n  add:\n    run: domain:add\n    on: {sites: [a], env: live}\n    matrix: {domain: [x.example, y.example]}\n    with: {domain: \"${{ matrix.domain }}\"}\n",
        );
        let e = expand(&p, &targets(&[("add", &["a"], &["live"])]), &Filter::default()).unwrap();
        assert_eq!(e.tasks[1].id.as_str(), "add[a.live,domain=y.example]");
        assert!(
            matches!(&e.tasks[1].payload, OperationSpec::DomainAdd { domain } if domain.as_literal().as_deref() == Some("y.example"))
        );
    }

    #[test]
    fn rollout_waves() {
        let p = plan(
            "version: 1\njobs:\n  d:\n    run: env:clear-cache\n    on: {sites: [a], env: live}\n    rollout: {first: 1, then: 25%}\n",
        );
        let sites = ["s1", "s2", "s3", "s4", "s5", "s6", "s7", "s8", "s9"];
        let e = expand(&p, &targets(&[("d", &sites, &["live"])]), &Filter::default()).unwrap();
        let waves: Vec<u32> = e.tasks.iter().map(|t| t.wave).collect();
        assert_eq!(waves, [0, 1, 1, 1, 2, 2, 2, 3, 3]);
        assert_eq!(e.jobs[0].waves, 4);
    }

    #[test]
    fn unmatched_and_optional_needs() {
        let text = |opt: &str| {
            format!(
                "version: 1\njobs:\n  a:\n    run: env:clear-cache\n    on: {{sites: [x], env: live}}\n  b:\n    run: env:clear-cache\n    needs: [{opt}]\n    on: {{sites: [x, y], env: live}}\n"
            )
        };
        let r = targets(&[("a", &["x"], &["live"]), ("b", &["x", "y"], &["live"])]);
        let errors = expand(&plan(&text("a")), &r, &Filter::default()).unwrap_err();
        assert_eq!(errors[0].code, ErrorCode::UnmatchedNeed);
        assert!(errors[0].message.contains("`y`"), "{}", errors[0].message);
        let e = expand(&plan(&text("{job: a, optional: true}")), &r, &Filter::default()).unwrap();
        assert_eq!(e.tasks[1].needs, [0]);
        assert!(e.tasks[2].needs.is_empty());
        let e = expand(&plan(&text("{job: a, scope: all}")), &r, &Filter::default()).unwrap();
        assert_eq!(e.tasks[2].needs, [0]);
    }

    #[test]
    fn only_keeps_needed_jobs() {
        let p = plan(
            "version: 1\njobs:\n  a:\n    run: env:clear-cache\n    on: {sites: [x], env: live}\n  b:\n    run: env:clear-cache\n    needs: [a]\n    on: {sites: [x], env: live}\n  c:\n    run: env:clear-cache\n    on: {sites: [x], env: live}\n",
        );
        let r = targets(&[("a", &["x"], &["live"]), ("b", &["x"], &["live"]), ("c", &["x"], &["live"])]);
        let e = expand(&p, &r, &Filter { only: vec!["b".into()], sites: None }).unwrap();
        let ids: Vec<&str> = e.tasks.iter().map(|t| t.id.as_str()).collect();
        assert_eq!(ids, ["a[x.live]", "b[x.live]"]);
        assert!(expand(&p, &r, &Filter { only: vec!["zz".into()], sites: None }).is_err());
    }
}
