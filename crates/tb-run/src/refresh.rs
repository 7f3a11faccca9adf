//! `plan --refresh`: what each task would do, from read-only calls ([`previews`]), as a
//! [`Refresh`]. A saved plan records them; `apply` of it checks them again (drift).

use serde::Serialize;

use super::Prepared;
use super::connect::Connection;
use tb_operations::preview::Preview;

/// A task's refreshed state, as `plan --refresh` shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(tag = "status", content = "reason", rename_all = "snake_case")]
pub enum Refresh {
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
    /// The task would change something (now, or after a task before it).
    #[must_use]
    pub fn changes(&self) -> bool {
        matches!(self, Self::Change(_) | Self::ChangeAfter(_))
    }

    #[must_use]
    pub fn label(&self) -> String {
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
/// task after one that will change what it reads is "will change after" it (see
/// `changed_by`).
#[must_use]
pub fn previews(prepared: &Prepared, connection: &Connection) -> Vec<Refresh> {
    use futures::StreamExt as _;
    let (poller, _driver) = tb_operations::api::workflows::Poller::new(connection.client.clone());
    let ops =
        tb_operations::Ops::new(connection.client.clone(), poller, "refresh".into(), std::collections::BTreeMap::new());
    let tasks = &prepared.expansion.tasks;
    let width = prepared.settings.max_requests.max(1);
    let mut previews: Vec<Refresh> = connection.runtime.block_on(
        futures::stream::iter(tasks.iter())
            .map(|t| {
                let ops = ops.clone();
                async move {
                    let target = tb_operations::Target {
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
        if let Some(n) = changed_by(&tasks[i], tasks, &previews) {
            previews[i] = Refresh::ChangeAfter(tasks[n].id.to_string());
        }
    }
    previews
}

/// Which of `task`'s needs, when it changes, changes what `task` would do. A task that moves
/// code (a deploy, a merge, an update) reads the code where it comes from: only a need that
/// moves code changes it (a backup before a deploy does not). Another task may read anything
/// on its site: a need on the same site first, then any. `None` when no such need changes
/// anything: the task's own preview stands.
fn changed_by(
    task: &tb_plan::expand::Task<tb_plan::plan::ops::OperationSpec>,
    tasks: &[tb_plan::expand::Task<tb_plan::plan::ops::OperationSpec>],
    previews: &[Refresh],
) -> Option<usize> {
    use tb_plan::plan::ops::Effect;
    let changing: Vec<usize> = task.needs.iter().copied().filter(|&n| previews[n].changes()).collect();
    let same_site = |n: &usize| tasks[*n].site == task.site;
    let moves_code = |n: &usize| tasks[*n].payload.kind().effect() == Effect::CodeMoving;
    if task.payload.kind().effect() == Effect::CodeMoving {
        return changing.iter().copied().find(moves_code);
    }
    changing.iter().find(|n| same_site(n)).or_else(|| changing.first()).copied()
}
