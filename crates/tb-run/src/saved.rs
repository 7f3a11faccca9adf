//! Saved plans (`plan -o FILE`, DESIGN.md §8): written from a [`Prepared`] plan, recognised by
//! content when `apply` is given one, checked against the source plan's hash, against what
//! it was resolved with (the same simulator world or API, the same user), and, when saved
//! with `--refresh`, against what each task would do now (drift).

use std::path::Path;

use super::document::{SAVED_PLAN_KIND, document};
use super::refresh::Refresh;
use super::{Prepared, Refusal, RunError};
use tb_core::endpoint::Endpoint;
use tb_plan::plan::PlanSource;
use tb_plan::resolve::Resolved;

#[derive(serde::Deserialize)]
struct SavedSource {
    path: String,
    sha256: String,
}

#[derive(serde::Deserialize)]
struct SavedTask {
    id: String,
    #[serde(default)]
    refresh: Option<Refresh>,
}

/// The parts of a saved plan `apply` reads.
#[derive(serde::Deserialize)]
pub struct SavedPlan {
    kind: String,
    source: SavedSource,
    resolved: Resolved,
    #[serde(default)]
    ran_against: Option<Endpoint>,
    #[serde(default)]
    user_id: Option<String>,
    #[serde(default)]
    tasks: Vec<SavedTask>,
}

/// A saved plan, read and checked against its source.
#[derive(Clone, Debug)]
pub struct Loaded {
    /// The saved plan file, for messages.
    pub file: String,
    pub source: PlanSource,
    pub resolved: Resolved,
    pub ran_against: Option<Endpoint>,
    pub user_id: Option<String>,
    /// What `--refresh` saw each task would do, by task id.
    pub preconditions: Vec<(String, Refresh)>,
}

/// Parses a saved plan's text; `Ok(None)` when it is not one (a YAML plan).
pub fn parse(text: &str) -> Result<Option<SavedPlan>, String> {
    if !text.trim_start().starts_with('{') || !text.contains(SAVED_PLAN_KIND) {
        return Ok(None);
    }
    let saved: SavedPlan = serde_json::from_str(text).map_err(|e| e.to_string())?;
    Ok((saved.kind == SAVED_PLAN_KIND).then_some(saved))
}

/// Reads `path` as a saved plan: `Ok(None)` when it is a plan, not a saved one. The source
/// plan must still hash as it did when saved.
pub fn read(path: &Path) -> Result<Option<Loaded>, RunError> {
    // A saved plan holds every resolved target: allow the world budget, not the plan's.
    let Ok(text) = super::prepare::read_text(path, tb_plan::plan::parse::Budgets::WORLD.bytes) else { return Ok(None) };
    let shown = path.display().to_string();
    let Some(saved) = parse(&text).map_err(|reason| Refusal::SavedUnreadable { path: shown.clone(), reason })? else {
        return Ok(None);
    };
    let plan_text =
        super::prepare::read_text(Path::new(&saved.source.path), tb_plan::plan::parse::Budgets::PLAN.bytes).map_err(
            |e| Refusal::SavedSourceGone { path: shown.clone(), plan: saved.source.path.clone(), source: Box::new(e) },
        )?;
    let source = PlanSource::new(saved.source.path.clone(), plan_text);
    let now = source.sha256();
    if now != saved.source.sha256 {
        return Err(Refusal::SavedPlanChanged {
            path: shown,
            plan: saved.source.path,
            then: saved.source.sha256.get(..12).unwrap_or_default().to_owned(),
            now: now.get(..12).unwrap_or_default().to_owned(),
        }
        .into());
    }
    let preconditions = saved.tasks.into_iter().filter_map(|t| t.refresh.map(|r| (t.id, r))).collect();
    Ok(Some(Loaded {
        file: shown,
        source,
        resolved: saved.resolved,
        ran_against: saved.ran_against,
        user_id: saved.user_id,
        preconditions,
    }))
}

/// Writes `prepared` as a saved plan to `out`, with each task's preview when refreshed. A
/// saved plan records resolved targets: names taken as written (no login) are refused.
pub fn write(prepared: &Prepared, previews: Option<&[Refresh]>, out: &Path) -> Result<(), RunError> {
    let Some(connection) = &prepared.connection else {
        return Err(Refusal::SaveNeedsLogin.into());
    };
    let mut saved = document(prepared, true);
    saved.ran_against = Some(connection.endpoint.clone());
    saved.user_id = Some(connection.user_id()?);
    if let Some(previews) = previews {
        for (task, preview) in saved.tasks.iter_mut().zip(previews) {
            task.refresh = Some(preview.clone());
        }
    }
    let mut text = serde_json::to_string_pretty(&saved)
        .map_err(|e| RunError::internal("cannot write the saved plan as JSON", e))?;
    text.push('\n');
    std::fs::write(out, text).map_err(|source| Refusal::SaveFailed { path: out.display().to_string(), source }.into())
}

/// A saved plan runs only against what it was resolved with, as the same user; and, when
/// saved with `--refresh`, only while each task would still do what was reviewed.
pub fn check(prepared: &Prepared, loaded: &Loaded, user_id: &str) -> Result<(), RunError> {
    let Some(connection) = &prepared.connection else { return Ok(()) };
    match &loaded.ran_against {
        Some(then) if then.same_as(&connection.endpoint) => {}
        Some(then) => {
            let (then, now) = (then.to_string(), connection.endpoint.to_string());
            return Err(Refusal::SavedOtherTarget { path: loaded.file.clone(), then, now }.into());
        }
        None => {
            return Err(Refusal::SavedTargetUnknown { path: loaded.file.clone() }.into());
        }
    }
    if let Some(then) = &loaded.user_id
        && then != user_id
    {
        let (then, now) = (then.clone(), user_id.to_owned());
        return Err(Refusal::SavedOtherUser { path: loaded.file.clone(), then, now }.into());
    }
    drifted(prepared, connection, &loaded.preconditions)
}

/// A saved plan made with `--refresh` recorded what each task would do; if that changed
/// since, the review no longer holds: refuse, naming each change.
fn drifted(
    prepared: &Prepared,
    connection: &super::Connection,
    preconditions: &[(String, Refresh)],
) -> Result<(), RunError> {
    if preconditions.is_empty() {
        return Ok(());
    }
    let now = super::refresh::previews(prepared, connection);
    let mut changes = Vec::new();
    for (id, then) in preconditions {
        let index = prepared.expansion.tasks.iter().position(|t| t.id.as_str() == id);
        match index.map(|i| &now[i]) {
            Some(current) if current == then => {}
            Some(current) => changes.push(format!("{id}: was \"{}\", now \"{}\"", then.label(), current.label())),
            None => changes.push(format!("{id}: no longer in the plan")),
        }
    }
    if changes.is_empty() {
        return Ok(());
    }
    Err(Refusal::Drifted(changes).into())
}
