//! `plan PLAN`: the dry run. Shows the expanded tasks grouped by job, their dependencies,
//! rollout waves, destructive marks, the workflows the run would start and a time estimate,
//! as text, Markdown (for pull requests) or JSON; `-o` saves the plan for `apply`.

use std::fmt::Write as _;
use std::time::Duration;

use crate::cli::error::CommandResult;
use crate::cli::exit::ExitStatus;
use crate::cli::{Io, PlanArgs, PlanFormat};
use crate::run::document::{PlanDocument, document};
use crate::run::refresh::{Refresh, previews};
use crate::run::{PlanInput, Prepared, prepare};
use crate::settings::Layer;

pub(super) fn run(args: &PlanArgs, io: &mut Io<'_>) -> CommandResult {
    show(PlanInput::File(args.plan.clone()), args, io)
}

/// The dry run of a plan from a file or built in memory (`run --dry-run`).
pub(super) fn show(input: PlanInput, args: &PlanArgs, io: &mut Io<'_>) -> CommandResult {
    let targets = super::target_options(&args.targets);
    let prepared = prepare(input, &targets, Layer::default(), io.vars)?;
    let refresh = args.refresh || args.detailed_exitcode;
    let previews = match (&prepared.connection, refresh) {
        (Some(connection), true) => Some(previews(&prepared, connection)),
        (None, true) => {
            return Err(crate::cli::error::CommandError::unreachable(
                "--refresh reads the Pantheon API: log in (TERMINUS_MACHINE_TOKEN or `terminus-batch auth login`) or pass --simulate",
            ));
        }
        (_, false) => None,
    };
    if let Some(out) = &args.out {
        crate::run::saved::write(&prepared, previews.as_deref(), out)?;
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
    let owner = crate::shard::assign(&prepared.expansion.tasks, shards, |t| t.payload.kind().estimate_secs());
    let used: std::collections::BTreeSet<usize> = owner.into_iter().collect();
    let list: Vec<String> = used.into_iter().map(|i| format!("{}/{shards}", i + 1)).collect();
    let mut text = serde_json::json!({ "shard": list }).to_string();
    text.push('\n');
    text
}

fn duration(secs: u64) -> String {
    humantime::format_duration(Duration::from_secs(secs)).to_string()
}

fn plural(n: usize, word: &str) -> String {
    format!("{n} {word}{}", if n == 1 { "" } else { "s" })
}

pub(super) fn headline(doc: &PlanDocument<'_>) -> String {
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
