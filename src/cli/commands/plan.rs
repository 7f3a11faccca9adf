//! `plan PLAN`: the dry run. Shows the expanded tasks grouped by job, their dependencies,
//! rollout waves, destructive marks, the workflows the run would start and a time estimate,
//! as text, Markdown (for pull requests) or JSON; `-o` saves the plan for `apply`.

use std::fmt::Write as _;
use std::io;
use std::time::Duration;

use serde::Serialize;

use super::{PlanInput, Prepared};
use crate::cli::exit::ExitStatus;
use crate::cli::{Io, PlanArgs, PlanFormat};
use crate::expand::Task;
use crate::operations::preview::Preview;
use crate::plan::model::PlanSettings;
use crate::plan::ops::{Effect, OperationSpec, Scalar};
use crate::resolve::Resolved;

/// The `kind` of a saved plan file.
pub(super) const SAVED_PLAN_KIND: &str = "terminus-batch/saved-plan";
/// The `kind` of `plan --format json`.
pub(super) const PLAN_KIND: &str = "terminus-batch/plan";

#[derive(Serialize)]
struct PlanDocument<'a> {
    kind: &'static str,
    format_version: u32,
    source: SourceInfo<'a>,
    name: Option<&'a str>,
    resolved_by: &'a str,
    settings: &'a PlanSettings,
    #[serde(skip_serializing_if = "Option::is_none")]
    resolved: Option<&'a Resolved>,
    summary: Summary,
    jobs: Vec<JobSummary>,
    tasks: Vec<TaskSummary<'a>>,
}

#[derive(Serialize)]
struct SourceInfo<'a> {
    path: &'a str,
    sha256: String,
}

#[derive(Serialize)]
struct Summary {
    jobs: usize,
    tasks: usize,
    workflows: usize,
    destructive: usize,
    read_only: usize,
    concurrency: u32,
    critical_path_secs: u64,
    estimate_secs: u64,
}

#[derive(Serialize)]
struct JobSummary {
    id: String,
    operation: &'static str,
    tasks: usize,
    waves: u32,
    needs: Vec<String>,
    workflows: usize,
    destructive: usize,
}

#[derive(Serialize)]
struct TaskSummary<'a> {
    id: &'a str,
    job: &'a str,
    site: Option<&'a str>,
    site_id: Option<&'a str>,
    env: Option<&'a str>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    matrix: Vec<(&'a str, &'a Scalar)>,
    spec: &'a OperationSpec,
    needs: Vec<&'a str>,
    /// 1-based rollout wave.
    wave: u32,
    destructive: bool,
    starts_workflow: bool,
    /// With `--refresh`: what the task would do.
    #[serde(skip_serializing_if = "Option::is_none")]
    refresh: Option<Refresh>,
}

fn document(p: &Prepared, saved: bool) -> PlanDocument<'_> {
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
        summary: Summary {
            jobs: p.expansion.jobs.iter().filter(|j| !j.tasks.is_empty()).count(),
            tasks: tasks.len(),
            workflows: tasks.iter().filter(|t| t.payload.kind().starts_workflow()).count(),
            destructive: tasks.iter().filter(|t| t.payload.is_destructive()).count(),
            read_only: tasks.iter().filter(|t| t.payload.kind().is_read_only()).count(),
            concurrency,
            critical_path_secs: critical,
            estimate_secs: estimate,
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
                spec: &t.payload,
                needs: t.needs.iter().map(|&n| tasks[n].id.as_str()).collect(),
                wave: t.wave + 1,
                destructive: t.payload.is_destructive(),
                starts_workflow: t.payload.kind().starts_workflow(),
                refresh: None,
            })
            .collect(),
    }
}

pub(super) fn run(args: &PlanArgs, io: &mut Io<'_>) -> io::Result<ExitStatus> {
    show(PlanInput::File(&args.plan), args, io)
}

/// The dry run of a plan from a file or built in memory (`run --dry-run`).
pub(super) fn show(input: PlanInput<'_>, args: &PlanArgs, io: &mut Io<'_>) -> io::Result<ExitStatus> {
    let mut prepared = match super::prepare_with(input, &args.targets, crate::settings::Layer::default(), io)? {
        Ok(p) => p,
        Err(status) => return Ok(status),
    };
    let refresh = args.refresh || args.detailed_exitcode;
    let mut previews = None;
    if let Some(connection) = prepared.connection.take() {
        if refresh {
            previews = Some(refresh_previews(&prepared, &connection));
        }
        connection.close();
    } else if refresh {
        super::write_error(
            io.stderr,
            "--refresh reads the Pantheon API: log in (TERMINUS_MACHINE_TOKEN or `terminus-batch auth login`) or pass --simulate",
        )?;
        return Ok(ExitStatus::Unreachable);
    } else if args.out.is_some() {
        // DESIGN.md §8: a saved plan records resolved targets; names taken as written are not.
        super::write_error(
            io.stderr,
            "-o needs resolved targets: log in (TERMINUS_MACHINE_TOKEN or `terminus-batch auth login`) or pass --simulate",
        )?;
        return Ok(ExitStatus::Invalid);
    }
    if let Some(out) = &args.out {
        // With --refresh, each task's preview is recorded: apply re-checks it (drift).
        let mut saved = document(&prepared, true);
        if let Some(previews) = &previews {
            for (task, preview) in saved.tasks.iter_mut().zip(previews) {
                task.refresh = Some(preview.clone());
            }
        }
        let mut text = serde_json::to_string_pretty(&saved).map_err(io::Error::other)?;
        text.push('\n');
        if let Err(e) = std::fs::write(out, text) {
            super::write_error(io.stderr, &format!("cannot write saved plan {}: {e}", out.display()))?;
            return Ok(ExitStatus::Invalid);
        }
        if !io.quiet {
            writeln!(io.stderr, "saved plan to {}", out.display())?;
        }
    }
    let mut doc = document(&prepared, false);
    if let Some(previews) = &previews {
        for (task, preview) in doc.tasks.iter_mut().zip(previews) {
            task.refresh = Some(preview.clone());
        }
    }
    let text = match args.format {
        PlanFormat::Json => {
            let mut t = serde_json::to_string_pretty(&doc).map_err(io::Error::other)?;
            t.push('\n');
            t
        }
        PlanFormat::Text => text(&doc),
        PlanFormat::Markdown => markdown(&doc),
        PlanFormat::GithubMatrix => github_matrix(&prepared, args.shards),
    };
    io.stdout.write_all(text.as_bytes())?;
    if args.detailed_exitcode {
        let tasks = &prepared.expansion.tasks;
        let changes = |i: usize| {
            previews
                .as_ref()
                .is_some_and(|p| matches!(p[i], Refresh::Change(_) | Refresh::ChangeAfter(_) | Refresh::Finding(_)))
        };
        let any = (0..tasks.len()).any(changes);
        let destructive = (0..tasks.len()).any(|i| changes(i) && tasks[i].payload.is_destructive());
        return Ok(if destructive {
            ExitStatus::WouldDestroy
        } else if any {
            ExitStatus::WouldChange
        } else {
            ExitStatus::Success
        });
    }
    Ok(ExitStatus::Success)
}

/// `{"shard": ["1/N", …]}`: the shards that hold tasks, for `strategy.matrix` in GitHub Actions
/// (`fromJSON(needs.plan.outputs.matrix)`).
fn github_matrix(prepared: &Prepared, shards: usize) -> String {
    let shards = shards.max(1);
    let owner = crate::shard::assign(&prepared.expansion.tasks, shards, |t| t.payload.kind().estimate_secs());
    let used: std::collections::BTreeSet<usize> = owner.into_iter().collect();
    let list: Vec<String> = used.into_iter().map(|i| format!("{}/{shards}", i + 1)).collect();
    let mut text = serde_json::json!({ "shard": list }).to_string();
    text.push('\n');
    text
}

/// A task's refreshed state, as `plan --refresh` shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(tag = "status", content = "reason", rename_all = "snake_case")]
pub(crate) enum Refresh {
    Change(String),
    /// Something it needs may change the site first.
    ChangeAfter(String),
    Unchanged(String),
    ReadOnly(String),
    Finding(String),
    /// The read-only calls themselves failed.
    Unknown(String),
}

impl Refresh {
    pub(crate) fn label(&self) -> String {
        match self {
            Self::Change(r) => format!("will change: {r}"),
            Self::ChangeAfter(t) => format!("will change after {t}"),
            Self::Unchanged(r) => format!("unchanged: {r}"),
            Self::ReadOnly(r) => format!("read-only: {r}"),
            Self::Finding(r) => format!("would fail: {r}"),
            Self::Unknown(r) => format!("unknown: {r}"),
        }
    }
}

/// Previews every task with read-only calls, concurrently within the request limits; then a
/// task after one that will change the same site first is "will change after" it.
pub(super) fn refresh_previews(prepared: &Prepared, connection: &super::Connection) -> Vec<Refresh> {
    use futures::StreamExt as _;
    let (poller, _driver) = crate::operations::api::workflows::Poller::new(connection.client.clone());
    let ops = crate::operations::Ops::new(
        connection.client.clone(),
        poller,
        "refresh".into(),
        std::collections::BTreeMap::new(),
    );
    let tasks = &prepared.expansion.tasks;
    let width = prepared.settings.max_requests.max(1);
    let mut previews: Vec<Refresh> = connection.runtime.block_on(
        futures::stream::iter(tasks.iter())
            .map(|t| {
                let ops = ops.clone();
                async move {
                    let target = crate::operations::Target {
                        site: t.site.clone().unwrap_or_default(),
                        site_id: t.site_id.clone().unwrap_or_default(),
                        env: t.env.clone(),
                    };
                    match ops.preview(&t.payload, &target).await {
                        Ok(Preview::Change(r)) => Refresh::Change(r),
                        Ok(Preview::Unchanged(r)) => Refresh::Unchanged(r),
                        Ok(Preview::ReadOnly(r)) => Refresh::ReadOnly(r),
                        Ok(Preview::Finding(r)) => Refresh::Finding(r),
                        Err(e) => Refresh::Unknown(e.message),
                    }
                }
            })
            .buffered(width)
            .collect(),
    );
    for &i in prepared.graph.topological_order() {
        if matches!(previews[i], Refresh::Finding(_) | Refresh::ReadOnly(_)) {
            continue;
        }
        let first =
            tasks[i].needs.iter().find(|&&n| matches!(previews[n], Refresh::Change(_) | Refresh::ChangeAfter(_)));
        if let Some(&n) = first {
            previews[i] = Refresh::ChangeAfter(tasks[n].id.to_string());
        }
    }
    previews
}

fn duration(secs: u64) -> String {
    humantime::format_duration(Duration::from_secs(secs)).to_string()
}

fn plural(n: usize, word: &str) -> String {
    format!("{n} {word}{}", if n == 1 { "" } else { "s" })
}

fn headline(doc: &PlanDocument<'_>) -> String {
    let s = &doc.summary;
    format!(
        "{} in {}; {} would start; {} destructive; {} read-only. Estimated {} at concurrency {} (critical path {}).",
        plural(s.tasks, "task"),
        plural(s.jobs, "job"),
        plural(s.workflows, "workflow"),
        s.destructive,
        s.read_only,
        duration(s.estimate_secs),
        s.concurrency,
        duration(s.critical_path_secs)
    )
}

fn text(doc: &PlanDocument<'_>) -> String {
    let mut out = String::new();
    let name = doc.name.map(|n| format!("{n} ")).unwrap_or_default();
    let _ = writeln!(out, "Plan {name}({}, sha256 {})", doc.source.path, &doc.source.sha256[..12]);
    let _ = writeln!(out, "Targets: {}", doc.resolved_by);
    for job in &doc.jobs {
        let mut head = format!("\n{} · {} · {}", job.id, job.operation, plural(job.tasks, "task"));
        if job.waves > 1 {
            let _ = write!(head, " in {} waves", job.waves);
        }
        if !job.needs.is_empty() {
            let _ = write!(head, " · needs {}", job.needs.join(", "));
        }
        if job.destructive > 0 {
            let _ = write!(head, " · DESTRUCTIVE ({})", job.destructive);
        }
        let _ = writeln!(out, "{head}");
        for task in doc.tasks.iter().filter(|t| t.job == job.id) {
            let mut line = format!("  {} {}", if task.destructive { "!" } else { "+" }, task.id);
            if job.waves > 1 {
                let _ = write!(line, "  wave {}", task.wave);
            }
            if !task.needs.is_empty() {
                let _ = write!(line, "  after {}", task.needs.join(", "));
            }
            if let Some(refresh) = &task.refresh {
                let _ = write!(line, "  — {}", refresh.label());
            }
            let _ = writeln!(out, "{line}");
        }
    }
    let _ = writeln!(out, "\n{}", headline(doc));
    if doc.summary.destructive > 0 {
        let _ = writeln!(out, "Tasks marked ! are destructive and need --allow-destructive to apply.");
    }
    out
}

fn markdown(doc: &PlanDocument<'_>) -> String {
    let mut out = String::new();
    let name = doc.name.unwrap_or(doc.source.path);
    let _ = writeln!(out, "## terminus-batch plan: {name}\n");
    let _ = writeln!(out, "{}\n", headline(doc));
    let _ = writeln!(
        out,
        "Source `{}` (sha256 `{}`); targets: {}.\n",
        doc.source.path,
        &doc.source.sha256[..12],
        doc.resolved_by
    );
    let _ = writeln!(out, "| job | operation | tasks | waves | needs | workflows | destructive |");
    let _ = writeln!(out, "|---|---|---:|---:|---|---:|---:|");
    for job in &doc.jobs {
        let needs = if job.needs.is_empty() { "–".to_owned() } else { job.needs.join(", ") };
        let destructive = if job.destructive > 0 { format!("**{}**", job.destructive) } else { "0".to_owned() };
        let _ = writeln!(
            out,
            "| `{}` | `{}` | {} | {} | {} | {} | {} |",
            job.id, job.operation, job.tasks, job.waves, needs, job.workflows, destructive
        );
    }
    for job in &doc.jobs {
        let _ = writeln!(out, "\n<details><summary><code>{}</code>: {}</summary>\n", job.id, plural(job.tasks, "task"));
        let _ = writeln!(out, "| task | wave | after |");
        let _ = writeln!(out, "|---|---:|---|");
        for task in doc.tasks.iter().filter(|t| t.job == job.id) {
            let mark = if task.destructive { " ⚠️" } else { "" };
            let after = if task.needs.is_empty() {
                "–".to_owned()
            } else {
                task.needs.iter().map(|n| format!("`{n}`")).collect::<Vec<_>>().join(", ")
            };
            let _ = writeln!(out, "| `{}`{mark} | {} | {after} |", task.id, task.wave);
        }
        let _ = writeln!(out, "\n</details>");
    }
    out
}
