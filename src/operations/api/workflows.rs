//! Workflows: starting one without ever starting it twice, and waiting for many with one
//! shared poller (DESIGN.md §5).
//!
//! **Starting.** The POST is repeated only after a 429 or a connection refused before
//! anything was sent (the transport's [`Repeat::OnlyIfRefused`]). After any other failure
//! (timeout, reset, 5xx) the request may have reached the platform, so the client lists the
//! site's workflows and adopts the newest one of the same type and environment, started by
//! this session's user no earlier than 120 s before the POST, not claimed by another task,
//! and, where the type takes an annotation, carrying our marker.
//!
//! **Waiting.** [`Poller`] is a handle; [`PollerDriver::run`] is the one loop that polls for
//! the whole run (the command drives it beside the executor, so nothing is detached). A site
//! with one workflow in flight is polled by id; a site with several gets one list request per
//! tick. The first poll is scheduled near the expected finish, learned from the `total_time`
//! of workflows of the same type seen finishing; never more often than the poll floor per
//! site.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use reqwest::Method;
use serde_json::Value;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tracing::{debug, warn};

use super::wire::Workflow;
use super::{ApiClient, ApiError, ApiErrorKind, Repeat};

/// Where a workflow is started.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WorkflowScope {
    /// `POST sites/{site}/environments/{env}/workflows`.
    Env { site_id: String, env: String },
    /// `POST sites/{site}/workflows`; `env` is the `environment_id` param when the type has
    /// one (multidev create and delete), used to tell workflows apart when reconciling.
    Site { site_id: String, env: Option<String> },
}

impl WorkflowScope {
    #[must_use]
    pub fn site_id(&self) -> &str {
        match self {
            Self::Env { site_id, .. } | Self::Site { site_id, .. } => site_id,
        }
    }
}

/// A workflow to start.
#[derive(Clone, Debug)]
pub struct StartWorkflow {
    pub scope: WorkflowScope,
    /// The workflow type, e.g. `deploy`.
    pub kind: String,
    /// `params`; `{}` when there are none.
    pub params: Value,
    /// Text our annotation carries (` [tb:<run>:<task>]`), matched when reconciling.
    pub marker: Option<String>,
}

/// How far back a reconciled workflow's `created_at` may be before the POST (clock skew).
const ADOPT_WINDOW_SECS: f64 = 120.0;

impl ApiClient {
    /// Starts a workflow, never twice (see the module docs). `posted_at` is when the caller
    /// recorded the attempt (unix seconds), the lower bound for adopting.
    ///
    /// # Errors
    /// The platform refusing the workflow (4xx), or a failure after which no matching
    /// workflow exists.
    pub async fn start_workflow(&self, start: &StartWorkflow, posted_at: f64) -> Result<Workflow, ApiError> {
        let site = start.scope.site_id();
        let segments: Vec<&str> = match &start.scope {
            WorkflowScope::Env { env, .. } => vec!["sites", site, "environments", env, "workflows"],
            WorkflowScope::Site { .. } => vec!["sites", site, "workflows"],
        };
        let body = serde_json::json!({ "type": start.kind, "params": start.params });
        let error = match self.send(Method::POST, &segments, &[], Some(&body), Repeat::OnlyIfRefused).await {
            Ok(reply) => {
                let label = format!("POST /api/{}", segments.join("/"));
                let workflow: Workflow = reply.json(&label)?;
                self.claim(&workflow.id);
                debug!(workflow = %workflow.id, kind = %start.kind, site, "workflow started");
                return Ok(workflow);
            }
            Err(e) => e,
        };
        if !may_have_started(&error) {
            return Err(error);
        }
        warn!(kind = %start.kind, site, "the workflow POST may have reached the platform ({error}); looking for it");
        match self.find_started(start, posted_at).await {
            Ok(Some(workflow)) => Ok(workflow),
            Ok(None) => Err(error),
            Err(list_error) => {
                warn!("cannot list the site's workflows to reconcile: {list_error}");
                Err(error)
            }
        }
    }

    /// Looks for a workflow a POST of `start` at `posted_at` created, and claims it.
    pub async fn find_started(&self, start: &StartWorkflow, posted_at: f64) -> Result<Option<Workflow>, ApiError> {
        let user_id = self.user_id().await?;
        let list = self.workflows(start.scope.site_id()).await?;
        let found = list.into_iter().find(|w| matches_start(w, start, &user_id, posted_at) && !self.is_claimed(&w.id));
        Ok(found.filter(|w| self.claim(&w.id)).inspect(|w| debug!(workflow = %w.id, "adopted a started workflow")))
    }
}

/// A failure after which the platform may have created the workflow anyway.
fn may_have_started(error: &ApiError) -> bool {
    match error.cause() {
        ApiErrorKind::Timeout { .. } | ApiErrorKind::Dropped { .. } => true,
        ApiErrorKind::Status { code, .. } => *code >= 500,
        _ => false,
    }
}

fn matches_start(w: &Workflow, start: &StartWorkflow, user_id: &str, posted_at: f64) -> bool {
    if w.kind != start.kind || w.user_id.as_deref() != Some(user_id) {
        return false;
    }
    if w.created_at.is_none_or(|t| t < posted_at - ADOPT_WINDOW_SECS) {
        return false;
    }
    let param = |key: &str| w.params.as_ref().and_then(|p| p.get(key)).and_then(Value::as_str);
    let env_ok = match &start.scope {
        WorkflowScope::Env { env, .. } => w.environment_id.as_deref() == Some(env.as_str()),
        WorkflowScope::Site { env: Some(env), .. } => param("environment_id") == Some(env.as_str()),
        WorkflowScope::Site { env: None, .. } => true,
    };
    let marker_ok = start.marker.as_deref().is_none_or(|marker| {
        let annotation = param("annotation").or_else(|| {
            w.params.as_ref().and_then(|p| p.get("deploy")).and_then(|d| d.get("annotation")).and_then(Value::as_str)
        });
        annotation.is_some_and(|a| a.contains(marker))
    });
    env_ok && marker_ok
}

// ---- the shared poller ------------------------------------------------------------------

/// Asks the driver to wait for a workflow.
#[derive(Clone, Debug)]
pub struct Poller {
    tx: mpsc::UnboundedSender<Watch>,
}

#[derive(Debug)]
struct Watch {
    site_id: String,
    workflow_id: String,
    kind: String,
    started: Instant,
    reply: oneshot::Sender<Result<Workflow, ApiError>>,
}

/// The loop that polls for every waiter; run it beside the work that waits.
pub struct PollerDriver {
    client: ApiClient,
    rx: mpsc::UnboundedReceiver<Watch>,
}

/// After this many failed polls in a row, a site's waiters get the error.
const MAX_POLL_FAILURES: u32 = 5;
/// The longest gap between two polls of a running workflow.
const MAX_POLL_GAP: Duration = Duration::from_secs(30);
/// Recent durations kept per workflow type.
const HISTORY: usize = 20;

impl Poller {
    /// A poller for `client`, and the driver to run.
    #[must_use]
    pub fn new(client: ApiClient) -> (Self, PollerDriver) {
        let (tx, rx) = mpsc::unbounded_channel();
        (Self { tx }, PollerDriver { client, rx })
    }

    /// Waits until the workflow has finished (`result` non-null) and returns it, succeeded
    /// or failed.
    ///
    /// # Errors
    /// Polling failed repeatedly, or the workflow vanished (404).
    pub async fn wait(&self, site_id: &str, workflow: &Workflow) -> Result<Workflow, ApiError> {
        if workflow.is_finished() {
            return Ok(workflow.clone());
        }
        let label = format!("GET /api/sites/{site_id}/workflows/{}", workflow.id);
        let stopped =
            || ApiError::new(&label, ApiErrorKind::Config { message: "the workflow poller stopped".to_owned() });
        let (reply, rx) = oneshot::channel();
        let watch = Watch {
            site_id: site_id.to_owned(),
            workflow_id: workflow.id.clone(),
            kind: workflow.kind.clone(),
            started: Instant::now(),
            reply,
        };
        self.tx.send(watch).map_err(|_| stopped())?;
        rx.await.map_err(|_| stopped())?
    }
}

#[derive(Default)]
struct SiteWatch {
    waiting: Vec<(Watch, Instant)>,
    last_poll: Option<Instant>,
    failures: u32,
    polling: bool,
}

impl SiteWatch {
    fn next_due(&self, floor: Duration) -> Option<Instant> {
        if self.polling {
            return None;
        }
        let due = self.waiting.iter().map(|(_, due)| *due).min()?;
        Some(self.last_poll.map_or(due, |last| due.max(last + floor)))
    }
}

type PollResult = (String, Vec<String>, Result<Vec<Workflow>, ApiError>);

impl PollerDriver {
    /// Polls until every [`Poller`] handle is dropped and no waiter is left.
    pub async fn run(mut self) {
        let floor = self.client.config().poll_floor;
        let mut sites: BTreeMap<String, SiteWatch> = BTreeMap::new();
        let mut durations: HashMap<String, Vec<f64>> = HashMap::new();
        let mut polls: JoinSet<PollResult> = JoinSet::new();
        let mut open = true;
        loop {
            sites.retain(|_, s| {
                s.waiting.retain(|(w, _)| !w.reply.is_closed());
                !s.waiting.is_empty() || s.polling
            });
            if !open && sites.is_empty() && polls.is_empty() {
                return;
            }
            let next = sites.values().filter_map(|s| s.next_due(floor)).min();
            tokio::select! {
                watch = self.rx.recv(), if open => match watch {
                    Some(watch) => {
                        let due = first_poll(&watch, &durations, floor);
                        sites.entry(watch.site_id.clone()).or_default().waiting.push((watch, due));
                    }
                    None => open = false,
                },
                () = sleep_until(next), if next.is_some() => {
                    let now = Instant::now();
                    for (site_id, site) in &mut sites {
                        if site.next_due(floor).is_some_and(|due| due <= now) {
                            site.polling = true;
                            site.last_poll = Some(now);
                            let ids: Vec<String> = site.waiting.iter().map(|(w, _)| w.workflow_id.clone()).collect();
                            let client = self.client.clone();
                            let site_id = site_id.clone();
                            polls.spawn(async move {
                                let result = poll_site(&client, &site_id, &ids).await;
                                (site_id, ids, result)
                            });
                        }
                    }
                },
                Some(joined) = polls.join_next(), if !polls.is_empty() => {
                    let Ok((site_id, ids, result)) = joined else {
                        warn!("a workflow poll panicked");
                        continue;
                    };
                    let Some(site) = sites.get_mut(&site_id) else { continue };
                    site.polling = false;
                    settle(site, &ids, result, &mut durations, floor);
                }
            }
        }
    }
}

async fn sleep_until(at: Option<Instant>) {
    if let Some(at) = at {
        tokio::time::sleep_until(at).await;
    }
}

/// When to poll a new workflow first: at its expected finish (the median of recent
/// durations of its type), else soon after the floor.
fn first_poll(watch: &Watch, durations: &HashMap<String, Vec<f64>>, floor: Duration) -> Instant {
    let expected = durations.get(&watch.kind).and_then(|d| median(d)).map(Duration::from_secs_f64);
    watch.started + expected.unwrap_or(floor).max(floor)
}

fn median(values: &[f64]) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    Some(sorted[sorted.len() / 2])
}

/// One tick for one site: by id when one workflow is awaited, else the site's list, with
/// by-id fallbacks for ours that are not in its newest 100.
async fn poll_site(client: &ApiClient, site_id: &str, ids: &[String]) -> Result<Vec<Workflow>, ApiError> {
    if let [only] = ids {
        return Ok(vec![client.workflow(site_id, only).await?]);
    }
    let mut list = client.workflows(site_id).await?;
    list.retain(|w| ids.contains(&w.id));
    for id in ids {
        if !list.iter().any(|w| &w.id == id) {
            list.push(client.workflow(site_id, id).await?);
        }
    }
    Ok(list)
}

fn settle(
    site: &mut SiteWatch,
    ids: &[String],
    result: Result<Vec<Workflow>, ApiError>,
    durations: &mut HashMap<String, Vec<f64>>,
    floor: Duration,
) {
    let now = Instant::now();
    let workflows = match result {
        Ok(list) => list,
        Err(error) => {
            site.failures += 1;
            let fatal = error.is_not_found() || !error.is_transient() || site.failures >= MAX_POLL_FAILURES;
            if fatal {
                let (failed, kept): (Vec<_>, Vec<_>) =
                    std::mem::take(&mut site.waiting).into_iter().partition(|(w, _)| ids.contains(&w.workflow_id));
                site.waiting = kept;
                for (watch, _) in failed {
                    let _receiver_gone = watch.reply.send(Err(error.clone()));
                }
            } else {
                let gap = floor.saturating_mul(1 << site.failures.min(5)).min(MAX_POLL_GAP);
                for (_, due) in &mut site.waiting {
                    *due = (*due).max(now + gap);
                }
            }
            return;
        }
    };
    site.failures = 0;
    let mut finished = Vec::new();
    for workflow in workflows {
        if workflow.is_finished() {
            if let Some(t) = workflow.total_time.filter(|t| t.is_finite() && *t >= 0.0) {
                let history = durations.entry(workflow.kind.clone()).or_default();
                if history.len() == HISTORY {
                    history.remove(0);
                }
                history.push(t);
            }
            finished.push(workflow);
        }
    }
    let (done, kept): (Vec<_>, Vec<_>) = std::mem::take(&mut site.waiting)
        .into_iter()
        .partition(|(w, _)| finished.iter().any(|f| f.id == w.workflow_id));
    site.waiting = kept;
    for (watch, _) in done {
        if let Some(workflow) = finished.iter().find(|f| f.id == watch.workflow_id) {
            let _receiver_gone = watch.reply.send(Ok(workflow.clone()));
        }
    }
    // Still running: poll again after a fifth of the time it has run so far (bounded), or
    // at its type's expected finish if that is later and newly learned.
    for (watch, due) in &mut site.waiting {
        if !ids.contains(&watch.workflow_id) {
            continue;
        }
        let ran = now.saturating_duration_since(watch.started);
        let gap = (ran / 5).clamp(floor, MAX_POLL_GAP.max(floor));
        let expected = durations.get(&watch.kind).and_then(|d| median(d)).map(Duration::from_secs_f64);
        let at_expected = expected.map(|e| watch.started + e).filter(|at| *at > now);
        *due = at_expected.unwrap_or(now + gap).max(now + floor);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn workflow(json: &str) -> Workflow {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn adoption_matches_type_env_user_window_and_marker() {
        let start = StartWorkflow {
            scope: WorkflowScope::Env { site_id: "s".into(), env: "live".into() },
            kind: "deploy".into(),
            params: Value::Null,
            marker: Some("[tb:r1:deploy[a.live]]".into()),
        };
        let ok = r#"{"id":"w","type":"deploy","user_id":"u","created_at":1000.0,"environment_id":"live",
            "params":{"annotation":"Weekly [tb:r1:deploy[a.live]]"}}"#;
        assert!(matches_start(&workflow(ok), &start, "u", 1050.0));
        assert!(!matches_start(&workflow(ok), &start, "other", 1050.0), "another user");
        assert!(!matches_start(&workflow(ok), &start, "u", 1200.0), "too old");
        assert!(!matches_start(&workflow(&ok.replace("\"live\"", "\"test\"")), &start, "u", 1050.0));
        assert!(!matches_start(&workflow(&ok.replace("r1", "r2")), &start, "u", 1050.0), "another run's marker");
        let site = StartWorkflow {
            scope: WorkflowScope::Site { site_id: "s".into(), env: Some("ci-1".into()) },
            kind: "create_cloud_development_environment".into(),
            params: Value::Null,
            marker: None,
        };
        let md = r#"{"id":"w","type":"create_cloud_development_environment","user_id":"u","created_at":1000.0,
            "params":{"environment_id":"ci-1"}}"#;
        assert!(matches_start(&workflow(md), &site, "u", 1000.0));
        assert!(!matches_start(&workflow(&md.replace("ci-1", "ci-2")), &site, "u", 1000.0));
    }

    #[test]
    fn medians() {
        assert_eq!(median(&[]), None);
        assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
    }
}
