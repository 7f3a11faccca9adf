//! `plan PLAN`: the dry run. Shows the expanded tasks grouped by job, their dependencies,
//! rollout waves, destructive marks, the workflows the run would start and a time estimate,
//! as text, Markdown (for pull requests) or JSON; `-o` saves the plan for `apply`.

use std::fmt::Write as _;
use std::time::Duration;

use crate::cli::error::CommandResult;
use crate::cli::exit::ExitStatus;
use crate::cli::{Io, PlanArgs, PlanFormat};
use tb_core::words::counted;
use tb_run::document::{PlanDocument, document};
use tb_run::refresh::{Refresh, previews};
use tb_run::{PlanInput, Prepared, prepare};
use tb_settings::Layer;

pub(super) fn handle(args: &PlanArgs, io: &mut Io<'_>) -> CommandResult {
    show(PlanInput::File(args.plan.clone()), args, io)
}

/// The dry run of a plan from a file or built in memory (`run --dry-run`).
pub(super) fn show(input: PlanInput, args: &PlanArgs, io: &mut Io<'_>) -> CommandResult {
    let targeting = super::targeting(&args.targeting, io.vars);
    // Where the plan's runs keep their history is looked for from its directory, as `apply`
    // looks for it.
    let input_dir = match &input {
        PlanInput::File(path) => std::fs::canonicalize(path)
            .ok()
            .and_then(|p| p.parent().map(std::path::Path::to_path_buf))
            .unwrap_or_else(|| std::path::PathBuf::from(".")),
        _ => std::path::PathBuf::from("."),
    };
    let prepared = prepare(input, &targeting, Layer::default(), io.vars)?;
    let refresh = args.refresh || args.detailed_exitcode;
    let previews = match (&prepared.connection, refresh) {
        (Some(connection), true) => Some(previews(&prepared, connection)),
        (None, true) => {
            return Err(tb_run::RunError::from(tb_run::Unreachable::RefreshNeedsLogin).into());
        }
        (_, false) => None,
    };
    if let Some(out) = &args.out {
        tb_run::saved::write(&prepared, previews.as_deref(), out)?;
        if !io.quiet {
            writeln!(io.stderr, "saved plan to {}", out.display())?;
        }
    }
    let mut doc = document(&prepared, false);
    let forecast = tb_run::forecast::for_plan(&prepared, &input_dir, io.vars).forecast();
    doc.summary.forecast = Some((&forecast).into());
    if let Some(previews) = &previews {
        for (task, preview) in doc.tasks.iter_mut().zip(previews) {
            task.refresh = Some(preview.clone());
        }
    }
    let text = match args.format {
        PlanFormat::Json => {
            let mut t = serde_json::to_string_pretty(&doc).map_err(std::io::Error::other)?;
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
    let owner = tb_plan::shard::assign(&prepared.expansion.tasks, shards, |t| t.payload.kind().estimate_secs());
    let used: std::collections::BTreeSet<usize> = owner.into_iter().collect();
    let list: Vec<String> = used.into_iter().map(|i| format!("{}/{shards}", i + 1)).collect();
    let mut text = serde_json::json!({ "shard": list }).to_string();
    text.push('\n');
    text
}

fn duration(secs: u64) -> String {
    humantime::format_duration(Duration::from_secs(secs)).to_string()
}

/// A forecast's seconds as milliseconds, to show (`plan`'s line, the run's first).
pub(super) fn forecast_ms(secs: f64) -> u64 {
    #[expect(clippy::cast_possible_truncation, clippy::cast_sign_loss, reason = "seconds to show")]
    let ms = (secs.max(0.0) * 1000.0).round() as u64;
    ms
}

pub(super) fn headline(doc: &PlanDocument<'_>) -> String {
    let s = &doc.summary;
    // With previews, a task that will not change starts no workflow.
    let workflows = if doc.tasks.iter().any(|t| t.refresh.is_some()) {
        doc.tasks.iter().filter(|t| t.starts_workflow && t.refresh.as_ref().is_none_or(Refresh::changes)).count()
    } else {
        s.workflows
    };
    let counts = format!(
        "{} in {}; {} would start; {} destructive; {} read-only.",
        counted(s.tasks, "task"),
        counted(s.jobs, "job"),
        counted(workflows, "workflow"),
        s.destructive,
        s.read_only,
    );
    match &s.forecast {
        Some(f) => {
            // To the tenth of a second (a rehearsal's run takes seconds), as the run says it.
            let secs = |x: f64| tb_core::timefmt::duration_ms(forecast_ms(x));
            let clock = if f.clock == "simulator" { " on the simulator's clock" } else { "" };
            format!(
                "{counts} Estimated {} ({}–{}){clock} at concurrency {}, {}.",
                secs(f.p50_secs),
                secs(f.p10_secs),
                secs(f.p90_secs),
                s.concurrency,
                f.basis
            )
        }
        None => format!(
            "{counts} Estimated {} at concurrency {} (critical path {}).",
            duration(s.estimate_secs),
            s.concurrency,
            duration(s.critical_path_secs)
        ),
    }
}

/// With `--refresh`, as Terraform counts: `Plan: 83 to change, 5 unchanged, 2 destructive.`
/// (destructive among those that change), then what would fail or could not be read.
fn counts(doc: &PlanDocument<'_>) -> Option<String> {
    if doc.tasks.iter().all(|t| t.refresh.is_none()) {
        return None;
    }
    let count = |f: &dyn Fn(&Refresh) -> bool| doc.tasks.iter().filter(|t| t.refresh.as_ref().is_some_and(f)).count();
    let change = count(&Refresh::changes);
    let unchanged = count(&|r| matches!(r, Refresh::Unchanged(_)));
    let destructive =
        doc.tasks.iter().filter(|t| t.destructive && t.refresh.as_ref().is_some_and(Refresh::changes)).count();
    let mut text = format!("Plan: {change} to change, {unchanged} unchanged, {destructive} destructive");
    for (n, what) in [
        (count(&|r| matches!(r, Refresh::Finding(_))), "would fail"),
        (count(&|r| matches!(r, Refresh::ReadOnly(_))), "read-only"),
        (count(&|r| matches!(r, Refresh::Unknown(_))), "unknown"),
    ] {
        if n > 0 {
            text.push_str(&format!(", {n} {what}"));
        }
    }
    text.push('.');
    Some(text)
}

/// A task's mark: `+` will change (`!` destructive), `=` unchanged, `x` would fail, `r`
/// read-only, `?` unknown.
fn mark(task: &tb_run::document::TaskSummary<'_>) -> &'static str {
    match &task.refresh {
        Some(Refresh::Unchanged(_)) => "=",
        Some(Refresh::Finding(_)) => "x",
        Some(Refresh::ReadOnly(_)) => "r",
        Some(Refresh::Unknown(_)) => "?",
        Some(Refresh::Change(_) | Refresh::ChangeAfter(_)) | None if task.destructive => "!",
        Some(Refresh::Change(_) | Refresh::ChangeAfter(_)) | None => "+",
    }
}

/// `{ note: "Weekly release ${{ run.id }}", updatedb: true }`: options as a plan writes them.
fn with(options: &std::collections::BTreeMap<&str, &str>) -> String {
    let shown: Vec<String> = options
        .iter()
        .map(|(name, value)| {
            let plain = !value.is_empty()
                && value.chars().all(|c| c.is_ascii_alphanumeric() || "-_./@".contains(c))
                && !matches!(*value, "null" | "~" | "yes" | "no" | "on" | "off");
            if plain { format!("{name}: {value}") } else { format!("{name}: {}", serde_json::Value::from(*value)) }
        })
        .collect();
    format!("{{ {} }}", shown.join(", "))
}

/// What a job's line says after its tasks: the jobs it needs and its destructive tasks.
fn needs_and_destructive(job: &tb_run::document::JobSummary) -> String {
    let mut text = String::new();
    if !job.needs.is_empty() {
        let _ = write!(text, " · needs {}", job.needs.join(", "));
    }
    if job.destructive > 0 {
        let _ = write!(text, " · DESTRUCTIVE ({})", job.destructive);
    }
    text
}

/// The options every task of a job has alike (shown once, under the job), if they all do.
fn shared_options<'t, 'd>(
    tasks: &'t [&'t tb_run::document::TaskSummary<'d>],
) -> Option<&'t std::collections::BTreeMap<&'d str, &'d str>> {
    tasks.windows(2).all(|w| w[0].with == w[1].with).then(|| tasks.first().map(|t| &t.with)).flatten()
}

/// Sites shown per job before "+N more" at the prompt.
const PROMPT_SITES: usize = 5;

/// What `apply` shows before it asks, as `plan` shows it but short enough for 300 sites: per
/// job its operation, environments, needs and destructive tasks, the first sites and how
/// many more, its options; who the run acts as; the plan's summary line.
pub(super) fn prompt(doc: &PlanDocument<'_>, acting_as: &str) -> String {
    let mut out = String::new();
    let name = doc.name.map(|n| format!("{n} ")).unwrap_or_default();
    let _ = writeln!(out, "Plan {name}({})", doc.source.path);
    let _ = writeln!(out, "Targets: {}, acting as {acting_as}", doc.resolved_by);
    for job in &doc.jobs {
        let tasks: Vec<_> = doc.tasks.iter().filter(|t| t.job == job.id).collect();
        let mut envs: Vec<&str> = Vec::new();
        let mut sites: Vec<&str> = Vec::new();
        for task in &tasks {
            if let Some(env) = task.env.filter(|e| !envs.contains(e)) {
                envs.push(env);
            }
            if let Some(site) = task.site.filter(|s| !sites.contains(s)) {
                sites.push(site);
            }
        }
        let mut head = format!("  {} · {} · {}", job.id, job.operation, counted(job.tasks, "task"));
        if !envs.is_empty() {
            let _ = write!(head, " on {}", envs.join(", "));
        }
        let _ = writeln!(out, "{head}{}", needs_and_destructive(job));
        if !sites.is_empty() {
            let more = sites.len().saturating_sub(PROMPT_SITES);
            let more = if more > 0 { format!(" +{more} more") } else { String::new() };
            let shown: Vec<&str> = sites.iter().take(PROMPT_SITES).copied().collect();
            let _ = writeln!(out, "    sites {}{more}", shown.join(", "));
        }
        if let Some(options) = shared_options(&tasks).filter(|o| !o.is_empty()) {
            let _ = writeln!(out, "    with {}", with(options));
        }
    }
    let _ = writeln!(out, "{}", headline(doc));
    out
}

fn text(doc: &PlanDocument<'_>) -> String {
    let mut out = String::new();
    let name = doc.name.map(|n| format!("{n} ")).unwrap_or_default();
    let _ = writeln!(out, "Plan {name}({}, sha256 {})", doc.source.path, &doc.source.sha256[..12]);
    let _ = writeln!(out, "Targets: {}", doc.resolved_by);
    for job in &doc.jobs {
        let mut head = format!("\n{} · {} · {}", job.id, job.operation, counted(job.tasks, "task"));
        if job.waves > 1 {
            let _ = write!(head, " in {} waves", job.waves);
        }
        let _ = writeln!(out, "{head}{}", needs_and_destructive(job));
        let tasks: Vec<_> = doc.tasks.iter().filter(|t| t.job == job.id).collect();
        // Options shared by every task are shown once, under the job; others per task.
        let shared_with = shared_options(&tasks);
        let shared = shared_with.is_some();
        if let Some(options) = shared_with.filter(|o| !o.is_empty()) {
            let _ = writeln!(out, "  with {}", with(options));
        }
        for task in tasks {
            let mut line = format!("  {} {}", mark(task), task.id);
            if !shared && !task.with.is_empty() {
                let _ = write!(line, "  with {}", with(&task.with));
            }
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
    if let Some(counts) = counts(doc) {
        let _ = writeln!(out, "{counts}");
        let _ = writeln!(out, "+ will change · ! destructive · = unchanged · x would fail · r read-only · ? unknown");
    }
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
        let _ =
            writeln!(out, "\n<details><summary><code>{}</code>: {}</summary>\n", job.id, counted(job.tasks, "task"));
        let tasks: Vec<_> = doc.tasks.iter().filter(|t| t.job == job.id).collect();
        if let Some(first) = tasks.first().filter(|t| !t.with.is_empty())
            && tasks.iter().all(|t| t.with == first.with)
        {
            let _ = writeln!(out, "`with {}`\n", with(&first.with));
        }
        // With --refresh, what each task would do: what a reviewer reads first.
        let refreshed = tasks.iter().any(|t| t.refresh.is_some());
        if refreshed {
            let _ = writeln!(out, "| task | wave | after | would |");
            let _ = writeln!(out, "|---|---:|---|---|");
        } else {
            let _ = writeln!(out, "| task | wave | after |");
            let _ = writeln!(out, "|---|---:|---|");
        }
        let (mut left_out, mut destructive_left_out) = (0, 0);
        for task in tasks {
            let mark = if task.destructive { " ⚠️" } else { "" };
            let after = if task.needs.is_empty() {
                "–".to_owned()
            } else {
                task.needs.iter().map(|n| format!("`{n}`")).collect::<Vec<_>>().join(", ")
            };
            let would = match &task.refresh {
                Some(refresh) if refreshed => format!(" {} |", refresh.label().replace('|', "\\|")),
                _ if refreshed => " – |".to_owned(),
                _ => String::new(),
            };
            let row = format!("| `{}`{mark} | {} | {after} |{would}\n", task.id, task.wave);
            if left_out > 0 || out.len() + row.len() > MARKDOWN_TASK_ROWS_UNTIL {
                left_out += 1;
                destructive_left_out += usize::from(task.destructive);
                continue;
            }
            out.push_str(&row);
        }
        if left_out > 0 {
            let destructive = if destructive_left_out > 0 {
                format!(", {destructive_left_out} of them destructive")
            } else {
                String::new()
            };
            let _ = writeln!(
                out,
                "| … and {left_out} more {}{destructive} (every task: `terminus-batch plan --format json`) | | |{}",
                if left_out == 1 { "task" } else { "tasks" },
                if refreshed { " |" } else { "" }
            );
        }
        let _ = writeln!(out, "\n</details>");
    }
    out
}

/// The Markdown plan goes into pull-request comments, which GitHub takes up to 65,536
/// characters: task rows stop once the text reaches this many bytes, and each job then says
/// how many of its tasks it left out (the summary table above still counts them all).
const MARKDOWN_TASK_ROWS_UNTIL: usize = 50_000;
