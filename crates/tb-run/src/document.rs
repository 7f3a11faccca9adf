//! The dry run as data: [`PlanDocument`], what `plan --format json` prints and what `plan -o`
//! saves (with the resolved targets, what the run talks to, and with `--refresh` each
//! task's preview). Text and Markdown renderings of it live with the `plan` command.

use serde::Serialize;

use super::Prepared;
use super::refresh::Refresh;
use tb_core::endpoint::Endpoint;
use tb_plan::expand::Task;
use tb_plan::plan::model::PlanSettings;
use tb_plan::plan::ops::{Effect, OperationSpec, Scalar};
use tb_plan::resolve::Resolved;

/// The `kind` of a saved plan file.
pub const SAVED_PLAN_KIND: &str = "terminus-batch/saved-plan";
/// The `kind` of `plan --format json`.
pub const PLAN_KIND: &str = "terminus-batch/plan";

#[derive(Serialize)]
pub struct PlanDocument<'a> {
    pub kind: &'static str,
    pub format_version: u32,
    pub source: SourceInfo<'a>,
    pub name: Option<&'a str>,
    pub resolved_by: &'a str,
    pub settings: &'a PlanSettings,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resolved: Option<&'a Resolved>,
    /// A saved plan: what it was resolved against, and as whom.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ran_against: Option<Endpoint>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    pub summary: Summary,
    pub jobs: Vec<JobSummary>,
    pub tasks: Vec<TaskSummary<'a>>,
}

#[derive(Serialize)]
pub struct SourceInfo<'a> {
    pub path: &'a str,
    pub sha256: String,
}

#[derive(Serialize)]
pub struct Summary {
    pub jobs: usize,
    pub tasks: usize,
    pub workflows: usize,
    pub destructive: usize,
    pub read_only: usize,
    pub concurrency: u32,
    pub critical_path_secs: u64,
    /// The lower bound of the platform's typical figures (see [`Estimate`]).
    pub estimate_secs: u64,
    /// The forecast on the run's clock, a range and what it is based on (`None` until one is
    /// made: it reads the team's history).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub forecast: Option<ForecastSummary>,
}

/// A forecast as a document shows it.
#[derive(Serialize)]
pub struct ForecastSummary {
    pub p10_secs: f64,
    pub p50_secs: f64,
    pub p90_secs: f64,
    /// `simulator` (its faster clock) or `platform`.
    pub clock: &'static str,
    pub basis: String,
    /// Tasks whose durations came from history.
    pub from_history: usize,
}

impl From<&super::forecast::Forecast> for ForecastSummary {
    fn from(f: &super::forecast::Forecast) -> Self {
        Self {
            p10_secs: f.p10_secs,
            p50_secs: f.p50_secs,
            p90_secs: f.p90_secs,
            clock: if f.simulated { "simulator" } else { "platform" },
            basis: f.basis(),
            from_history: f.from_history,
        }
    }
}

#[derive(Serialize)]
pub struct JobSummary {
    pub id: String,
    pub operation: &'static str,
    pub tasks: usize,
    pub waves: u32,
    pub needs: Vec<String>,
    pub workflows: usize,
    pub destructive: usize,
}

#[derive(Serialize)]
pub struct TaskSummary<'a> {
    pub id: &'a str,
    pub job: &'a str,
    pub site: Option<&'a str>,
    pub site_id: Option<&'a str>,
    pub env: Option<&'a str>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub matrix: Vec<(&'a str, &'a Scalar)>,
    /// The operation by its terminus name, e.g. `env:deploy`.
    pub operation: &'static str,
    /// The options the plan gave, by their plan names, rendered.
    pub with: std::collections::BTreeMap<&'static str, &'a str>,
    pub needs: Vec<&'a str>,
    /// 1-based rollout wave.
    pub wave: u32,
    pub destructive: bool,
    pub starts_workflow: bool,
    /// With `--refresh`: what the task would do.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refresh: Option<Refresh>,
}

/// How long a run of `p` should take, in seconds.
pub struct Estimate {
    /// The longest chain of dependent tasks.
    pub critical: u64,
    /// The largest of three lower bounds: the critical path, all the work spread over the
    /// concurrency, and the busiest site's workflows one `per_site` at a time.
    pub estimate: u64,
}

/// The run's [`Estimate`] from each operation's typical duration.
#[must_use]
pub fn estimate(p: &Prepared) -> Estimate {
    let tasks = &p.expansion.tasks;
    let concurrency = u32::try_from(p.settings.concurrency).unwrap_or(u32::MAX);
    let weight = |t: &Task<OperationSpec>| t.payload.kind().estimate_secs();
    let critical = p.graph.critical_path(weight);
    let total: u64 = tasks.iter().map(weight).sum();
    // A site runs `per_site` workflows at a time: its workflows' sum is a bound too.
    let mut per_site_sum: std::collections::HashMap<&str, u64> = std::collections::HashMap::new();
    for task in tasks {
        let starts = matches!(task.payload.kind().effect(), Effect::Workflow | Effect::CodeMoving);
        if let (true, Some(site)) = (starts, task.site.as_deref()) {
            *per_site_sum.entry(site).or_default() += weight(task);
        }
    }
    let busiest_site = per_site_sum.values().max().copied().unwrap_or(0);
    let per_site = u64::try_from(p.settings.per_site.max(1)).unwrap_or(u64::MAX);
    let estimate = critical.max(total.div_ceil(u64::from(concurrency.max(1)))).max(busiest_site.div_ceil(per_site));
    Estimate { critical, estimate }
}

/// The dry run of `p` as a document; `saved` makes it a saved plan (with resolved targets).
#[must_use]
pub fn document(p: &Prepared, saved: bool) -> PlanDocument<'_> {
    let tasks = &p.expansion.tasks;
    let concurrency = u32::try_from(p.settings.concurrency).unwrap_or(u32::MAX);
    let Estimate { critical, estimate } = estimate(p);
    let jobs = p
        .expansion
        .jobs
        .iter()
        .enumerate()
        .filter(|(_, j)| !j.tasks.is_empty())
        .map(|(i, j)| JobSummary {
            id: j.id.to_string(),
            operation: j.operation.name(),
            tasks: j.tasks.len(),
            waves: j.waves,
            needs: p.plan.jobs[i].needs.iter().map(|n| n.job.to_string()).collect(),
            workflows: j.tasks.iter().filter(|&&t| tasks[t].payload.kind().starts_workflow()).count(),
            destructive: j.tasks.iter().filter(|&&t| tasks[t].payload.is_destructive()).count(),
        })
        .collect();
    PlanDocument {
        kind: if saved { SAVED_PLAN_KIND } else { PLAN_KIND },
        format_version: 1,
        source: SourceInfo { path: &p.source.path, sha256: p.source.sha256() },
        name: p.plan.name.as_deref(),
        resolved_by: &p.resolved_by,
        settings: &p.plan.settings,
        resolved: saved.then_some(&p.resolved),
        ran_against: None,
        user_id: None,
        summary: Summary {
            jobs: p.expansion.jobs.iter().filter(|j| !j.tasks.is_empty()).count(),
            tasks: tasks.len(),
            workflows: tasks.iter().filter(|t| t.payload.kind().starts_workflow()).count(),
            destructive: tasks.iter().filter(|t| t.payload.is_destructive()).count(),
            read_only: tasks.iter().filter(|t| t.payload.kind().is_read_only()).count(),
            concurrency,
            critical_path_secs: critical,
            estimate_secs: estimate,
            forecast: None,
        },
        jobs,
        tasks: tasks
            .iter()
            .map(|t| TaskSummary {
                id: t.id.as_str(),
                job: t.job.as_str(),
                site: t.site.as_deref(),
                site_id: t.site_id.as_deref().filter(|s| !s.is_empty()),
                env: t.env.as_deref(),
                matrix: t.matrix.iter().map(|(n, v)| (n.as_str(), v)).collect(),
                operation: t.payload.kind().name(),
                with: t.with.iter().map(|(name, value)| (*name, value.as_str())).collect(),
                needs: t.needs.iter().map(|&n| tasks[n].id.as_str()).collect(),
                wave: t.wave + 1,
                destructive: t.payload.is_destructive(),
                starts_workflow: t.payload.kind().starts_workflow(),
                refresh: None,
            })
            .collect(),
    }
}
