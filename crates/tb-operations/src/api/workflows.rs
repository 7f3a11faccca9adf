//! Workflows: starting one without ever starting it twice, and waiting for many with one
//! shared poller (DESIGN.md §5).
//!
//! **Starting.** The transport repeats the POST only after a 429 or a connection refused
//! before anything was sent ([`Repeat::OnlyIfRefused`]). After any other failure (timeout,
//! reset, 5xx, an answer that is not a workflow) the request may have reached the platform,
//! so the client lists the site's workflows and adopts the newest one of the same type and
//! environment, started by this session's user no earlier than 120 s before the POST, not
//! claimed by another task, and, where the type takes an annotation, carrying our marker.
//! When none is there after a 5xx (the platform answered, so it is done with the request;
//! a gateway's 502 or 504 gets a second look after the backoff), the POST is sent again
//! within the request's budget of attempts and time; after a timeout or a reset, never.
//!
//! **Waiting.** [`Poller`] is a handle; [`PollerDriver::drive`] is the one loop that polls for
//! the whole run (the command drives it beside the executor, so nothing is detached). A site
//! with one workflow in flight is polled by id; a site with several gets one list request per
//! tick. The first poll is scheduled near the expected finish, learned from the `total_time`
//! of workflows of the same type seen finishing; never more often than the poll floor per
//! site. A type with no run time known is first looked up in a few site lists; when they
//! teach nothing (a cold platform), one waiter of the type scouts, polling as its workflow
//! runs, and the others are held for what its end teaches.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::time::Duration;

use futures::future::BoxFuture;
use reqwest::Method;
use serde_json::Value;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tracing::{debug, info, warn};

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
    /// The workflow type.
    pub kind: WorkflowType,
    /// `params`; `{}` when there are none.
    pub params: Value,
    /// Text our annotation carries (` [tb:<run>:<task>]`), matched when reconciling.
    pub marker: Option<String>,
}

/// The workflow types the operations start, by the names the platform gives them
/// (pantheon-api.md §4). The simulator keeps its own names, so the two stay independent
/// checks of each other and meet only on the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum WorkflowType {
    CreateEnvironment,
    Deploy,
    ClearCache,
    CloneFiles,
    CloneDatabase,
    CommitAndPushOnServerChanges,
    EnableOnServerDevelopment,
    EnableGitMode,
    LockEnvironment,
    UnlockEnvironment,
    EnableAddon,
    DoExport,
    RestoreCode,
    RestoreDatabase,
    RestoreFiles,
    CreateCloudDevelopmentEnvironment,
    DeleteCloudDevelopmentEnvironment,
    MergeCloudDevelopmentEnvironmentIntoDev,
    MergeDevIntoCloudDevelopmentEnvironment,
    ApplyUpstreamUpdates,
    DisableAddon,
    ClearCodeCache,
    RotateEnvironmentRandseed,
    Wipe,
    DisableSsl,
    SetPrimaryDomain,
    ChangeBackupSchedule,
    SwitchUpstream,
    EnableNewRelicForSite,
    DisableNewRelicForSite,
    AddSiteUserMembership,
    RemoveSiteUserMembership,
    UpdateSiteUserMembership,
    AddSiteOrganizationMembership,
    RemoveSiteOrganizationMembership,
    ChangeSiteServiceLevel,
    SyncCodeWithBuild,
}

impl WorkflowType {
    /// The platform's name of the type (`type` in workflow JSON).
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::CreateEnvironment => "create_environment",
            Self::Deploy => "deploy",
            Self::ClearCache => "clear_cache",
            Self::CloneFiles => "clone_files",
            Self::CloneDatabase => "clone_database",
            Self::CommitAndPushOnServerChanges => "commit_and_push_on_server_changes",
            Self::EnableOnServerDevelopment => "enable_on_server_development",
            Self::EnableGitMode => "enable_git_mode",
            Self::LockEnvironment => "lock_environment",
            Self::UnlockEnvironment => "unlock_environment",
            Self::EnableAddon => "enable_addon",
            Self::DoExport => "do_export",
            Self::RestoreCode => "restore_code",
            Self::RestoreDatabase => "restore_database",
            Self::RestoreFiles => "restore_files",
            Self::CreateCloudDevelopmentEnvironment => "create_cloud_development_environment",
            Self::DeleteCloudDevelopmentEnvironment => "delete_cloud_development_environment",
            Self::MergeCloudDevelopmentEnvironmentIntoDev => "merge_cloud_development_environment_into_dev",
            Self::MergeDevIntoCloudDevelopmentEnvironment => "merge_dev_into_cloud_development_environment",
            Self::ApplyUpstreamUpdates => "apply_upstream_updates",
            Self::DisableAddon => "disable_addon",
            Self::ClearCodeCache => "clear_code_cache",
            Self::RotateEnvironmentRandseed => "rotate_environment_randseed",
            Self::Wipe => "wipe",
            Self::DisableSsl => "disable_ssl",
            Self::SetPrimaryDomain => "set_primary_domain",
            Self::ChangeBackupSchedule => "change_backup_schedule",
            Self::SwitchUpstream => "switch_upstream",
            Self::EnableNewRelicForSite => "enable_new_relic_for_site",
            Self::DisableNewRelicForSite => "disable_new_relic_for_site",
            Self::AddSiteUserMembership => "add_site_user_membership",
            Self::RemoveSiteUserMembership => "remove_site_user_membership",
            Self::UpdateSiteUserMembership => "update_site_user_membership",
            Self::AddSiteOrganizationMembership => "add_site_organization_membership",
            Self::RemoveSiteOrganizationMembership => "remove_site_organization_membership",
            Self::ChangeSiteServiceLevel => "change_site_service_level",
            Self::SyncCodeWithBuild => "sync_code_with_build",
        }
    }
}

impl std::fmt::Display for WorkflowType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How far back a reconciled workflow's `created_at` (platform time) may be before the POST
/// (our time, moved to the platform's by its `Date` headers): the `Date` header's whole
/// seconds and request latency, with room to spare.
pub(crate) const ADOPT_WINDOW_SECS: f64 = 120.0;

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
        let label = format!("POST /api/{}", segments.join("/"));
        let body = serde_json::json!({ "type": start.kind.as_str(), "params": start.params });
        let config = self.config();
        let began = Instant::now();
        let mut tries = 0;
        loop {
            tries += 1;
            let sent = super::unix_now();
            let error = match self.send(Method::POST, &segments, &[], Some(&body), Repeat::OnlyIfRefused).await {
                // Any answer that is not a workflow (an HTML page from a proxy, a cut body)
                // says nothing of whether the platform acted: look for the workflow.
                Ok(reply) => match reply.json::<Workflow>(&label) {
                    Ok(workflow) => {
                        if let Some(created_at) = workflow.created_at {
                            self.observe_workflow_clock(created_at, sent, super::unix_now());
                        }
                        self.claim(&workflow.id);
                        debug!(workflow = %workflow.id, kind = %start.kind, site, "workflow started");
                        return Ok(workflow);
                    }
                    Err(e) => e,
                },
                Err(e) => e,
            };
            if !may_have_started(&error) {
                return Err(error);
            }
            info!(kind = %start.kind, site, "the workflow POST may have reached the platform ({error}); looking for it");
            let wait = super::backoff(config.backoff, tries);
            match self.find_started(start, posted_at).await {
                Ok(Some(workflow)) => return Ok(workflow),
                Ok(None) if resend_when_absent(&error) => {}
                // Not found after a lost answer (the platform may still be acting), or the
                // list could not be read: never sent again blindly.
                Ok(None) => return Err(error),
                Err(list_error) => {
                    warn!("cannot list the site's workflows to reconcile: {list_error}");
                    return Err(error);
                }
            }
            // An error status the platform answered: it has finished with the request, and the
            // list shows it did not act, so the POST is sent again within the request's budget.
            if tries >= config.attempts || began.elapsed() + wait > config.budget {
                let last = Box::new(error.cause().clone());
                return Err(ApiError::new(&label, ApiErrorKind::Exhausted { attempts: tries, last }));
            }
            tokio::time::sleep(wait).await;
            // A gateway's error may come before the platform behind it has finished: look
            // once more before sending again.
            if gateway(&error)
                && let Ok(Some(workflow)) = self.find_started(start, posted_at).await
            {
                return Ok(workflow);
            }
            debug!(kind = %start.kind, site, attempt = tries + 1, "no workflow was started: sending the POST again");
        }
    }

    /// Looks for a workflow a POST of `start` at `posted_at` created, and claims it.
    pub async fn find_started(&self, start: &StartWorkflow, posted_at: f64) -> Result<Option<Workflow>, ApiError> {
        let user_id = self.user_id().await?;
        let list = self.workflows(start.scope.site_id()).await?;
        // `posted_at` is our clock; the workflows' `created_at` is the platform's. The list
        // just read told its clock (`Date`), so the window is compared in the platform's time.
        let posted_at = posted_at + self.platform_clock_offset();
        let found = list.into_iter().find(|w| matches_start(w, start, &user_id, posted_at) && !self.is_claimed(&w.id));
        Ok(found.filter(|w| self.claim(&w.id)).inspect(|w| debug!(workflow = %w.id, "adopted a started workflow")))
    }
}

/// An answer after which a POST is sent again when the site's list shows no workflow of it:
/// an error status (the platform answered, so it is done with the request). Never after a
/// timeout, a dropped connection or an answer that is not the API's, which leave the request
/// perhaps still being acted on.
fn resend_when_absent(error: &ApiError) -> bool {
    matches!(error.cause(), ApiErrorKind::Status { code, .. } if *code >= 500)
}

/// A gateway's 5xx (502, 504): the platform behind it may answer later than the gateway did.
fn gateway(error: &ApiError) -> bool {
    matches!(error.status(), Some(502 | 504))
}

/// A failure after which the platform may have created the workflow anyway.
fn may_have_started(error: &ApiError) -> bool {
    match error.cause() {
        ApiErrorKind::Timeout { .. } | ApiErrorKind::Dropped { .. } | ApiErrorKind::Decode { .. } => true,
        ApiErrorKind::Status { code, .. } => *code >= 500,
        _ => false,
    }
}

fn matches_start(w: &Workflow, start: &StartWorkflow, user_id: &str, posted_at: f64) -> bool {
    if w.kind != start.kind.as_str() || w.user_id.as_deref() != Some(user_id) {
        return false;
    }
    let param = |key: &str| w.params.as_ref().and_then(|p| p.get(key)).and_then(Value::as_str);
    let env_ok = match &start.scope {
        WorkflowScope::Env { env, .. } => w.environment_id.as_deref() == Some(env.as_str()),
        WorkflowScope::Site { env: Some(env), .. } => param("environment_id") == Some(env.as_str()),
        WorkflowScope::Site { env: None, .. } => true,
    };
    let annotation = param("annotation").or_else(|| {
        w.params.as_ref().and_then(|p| p.get("deploy")).and_then(|d| d.get("annotation")).and_then(Value::as_str)
    });
    // The marker names the first run and the task: a workflow carrying it is this task's, and
    // the ones earlier attempts started are known (claimed), so no clock is needed, which
    // matters when the platform's clock cannot be known (a proxy's `Date`). Without a
    // marker, the time bound keeps out older workflows of the same type.
    let marked = start.marker.as_deref().map(|marker| annotation.is_some_and(|a| a.contains(marker)));
    let recent = || w.created_at.is_some_and(|t| t >= posted_at - ADOPT_WINDOW_SECS);
    env_ok
        && match marked {
            Some(carries) => carries,
            None => recent(),
        }
}

// ---- the shared poller ------------------------------------------------------------------

/// Asks the driver to wait for a workflow.
#[derive(Clone, Debug)]
pub struct Poller {
    tx: mpsc::UnboundedSender<Watch>,
    /// Under a fixed interval (terminus's way), the sleep after the final fetch.
    linger: Option<Duration>,
}

#[derive(Debug)]
struct Watch {
    site_id: String,
    workflow_id: String,
    kind: String,
    started: Instant,
    /// Whether a poll has found it running.
    polled: bool,
    /// Polls so far that found it running past the longest known run time of its type.
    late: u32,
    /// Waiting for a site list being read to tell its type's run times, not yet polled.
    lesson: bool,
    reply: oneshot::Sender<Result<Workflow, ApiError>>,
}

/// The loop that polls for every waiter; run it beside the work that waits.
pub struct PollerDriver {
    client: ApiClient,
    rx: mpsc::UnboundedReceiver<Watch>,
    /// One site's poll: [`poll_site`], or a test's stand-in.
    poll: PollSite,
}

/// One poll of a site: the client, the site, the workflows awaited, whether to read the list
/// to learn run times.
type PollSite = fn(ApiClient, String, Vec<String>, bool) -> BoxFuture<'static, Result<Vec<Workflow>, ApiError>>;

fn poll_site_owned(
    client: ApiClient,
    site_id: String,
    ids: Vec<String>,
    learn: bool,
) -> BoxFuture<'static, Result<Vec<Workflow>, ApiError>> {
    Box::pin(async move { poll_site(&client, &site_id, &ids, learn).await })
}

/// After this many failed polls in a row, a site's waiters get the error.
const MAX_POLL_FAILURES: u32 = 5;
/// The longest gap between two polls of a running workflow.
const MAX_POLL_GAP: Duration = Duration::from_secs(30);
/// Recent durations kept per workflow type.
const HISTORY: usize = 20;
/// The first poll of a workflow of a known type comes when this fraction of the recent
/// ones of its type had finished; the second by when all should have (see [`Window`]).
/// With run times spread evenly that is about 1.35 polls per workflow, for a wait past the
/// finish of about a quarter of the spread.
const FIRST_POLL_QUANTILE: f64 = 0.65;
/// While the request rate binds, the first poll comes when this fraction of the recent ones
/// had finished: later than while requests are free, so that few polls are spent on a
/// workflow still running, but not at the very end of the window, which would hold every
/// slot for the whole spread (see [`Window::aim`]).
const BUSY_POLL_QUANTILE: f64 = 0.8;
/// With no run time known, the next poll comes after this fraction of the time the
/// workflow has run so far.
const GROWTH: u32 = 4;
/// The spread of run times assumed at least, as a fraction of the typical one.
const MIN_SPREAD: f64 = 0.2;
/// While fewer run times than this are known of a type, its waiters read site lists (the
/// newest 100 workflows of a site, with their run times) rather than poll by id...
const MIN_SAMPLES: usize = 5;
/// ...this many times per type at most, one at a time.
const LEARN_ATTEMPTS: u32 = 3;

impl Poller {
    /// A poller for `client`, and the driver to run.
    #[must_use]
    pub fn new(client: ApiClient) -> (Self, PollerDriver) {
        let (tx, rx) = mpsc::unbounded_channel();
        let linger = client.config().poll_interval;
        // Polls yield the rate to the tasks' own requests (see `ratelimit`).
        (Self { tx, linger }, PollerDriver { client: client.background(), rx, poll: poll_site_owned })
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
        // The driver runs as long as a handle lives: it stopped only through a bug.
        let stopped =
            || ApiError::new(&label, ApiErrorKind::Internal { message: "the workflow poller stopped".to_owned() });
        let (reply, rx) = oneshot::channel();
        let watch = Watch {
            site_id: site_id.to_owned(),
            workflow_id: workflow.id.clone(),
            kind: workflow.kind.clone(),
            started: Instant::now(),
            polled: false,
            late: 0,
            lesson: false,
            reply,
        };
        self.tx.send(watch).map_err(|_| stopped())?;
        let finished = rx.await.map_err(|_| stopped())?;
        if let Some(linger) = self.linger {
            tokio::time::sleep(linger).await;
        }
        finished
    }
}

/// What the poller knows of how long each workflow type takes: the `total_time` of recent
/// finished workflows, from its own polls and from the site lists it reads.
#[derive(Default)]
struct Expectations {
    by_kind: HashMap<String, VecDeque<f64>>,
    /// Workflows already counted.
    seen: HashSet<String>,
    /// Site lists read (or being read) to learn a type.
    asked: HashMap<String, u32>,
    /// Types a site list is being read for right now.
    learning: HashSet<String>,
    /// Of a type with no run time known and nothing left to learn from site lists, the one
    /// waiter that polls (the scout, by workflow id); the others of its type wait for what
    /// its end teaches rather than each poll a workflow that has likely only begun.
    scouts: HashMap<String, String>,
}

impl Expectations {
    /// Counts a finished workflow's run time once; true when it was new.
    fn record(&mut self, workflow: &Workflow) -> bool {
        // Some finished workflows come without total_time (recorded: result set, times
        // not yet); their own timestamps tell it then.
        let elapsed = workflow.finished_at.zip(workflow.created_at).map(|(end, start)| end - start);
        let Some(time) = workflow.total_time.or(elapsed).filter(|t| t.is_finite() && *t >= 0.0) else { return false };
        if !workflow.is_finished() || !self.seen.insert(workflow.id.clone()) {
            return false;
        }
        let history = self.by_kind.entry(workflow.kind.clone()).or_default();
        if history.len() == HISTORY {
            history.pop_front();
        }
        history.push_back(time);
        true
    }

    /// Whether `watch` scouts its type, polling as its workflow runs (it becomes the scout
    /// when the type has none); if not, it is held for what the scout's end teaches.
    fn scout(&mut self, watch: &mut Watch) -> bool {
        let scout = self.scouts.entry(watch.kind.clone()).or_insert_with(|| watch.workflow_id.clone());
        let scouts = *scout == watch.workflow_id;
        watch.lesson = !scouts;
        scouts
    }

    fn samples(&self, kind: &str) -> usize {
        self.by_kind.get(kind).map_or(0, VecDeque::len)
    }

    /// When a workflow of `kind` is expected to finish, from the recent run times.
    fn window(&self, kind: &str) -> Option<Window> {
        let history = self.by_kind.get(kind).filter(|h| !h.is_empty())?;
        let mut sorted: Vec<f64> = history.iter().copied().collect();
        sorted.sort_by(f64::total_cmp);
        let n = sorted.len();
        let (low, high) = (sorted[0], sorted[n - 1]);
        let mid = f64::midpoint(low, high);
        // A few run times understate how far they spread: n values spread evenly cover
        // (n - 1) / (n + 1) of the range on average, so widen by the inverse.
        #[expect(clippy::cast_precision_loss, reason = "at most HISTORY values")]
        let widened = if n > 1 { (high - low) * (n + 1) as f64 / (n - 1) as f64 } else { 0.0 };
        let spread = widened.max(mid * MIN_SPREAD);
        let secs = Duration::from_secs_f64;
        let first = quantile(&sorted, FIRST_POLL_QUANTILE);
        let busy = quantile(&sorted, BUSY_POLL_QUANTILE);
        Some(Window {
            first: secs(first),
            busy: secs(busy),
            last: secs(high.max(mid + spread / 2.0)),
            spread: secs(spread),
        })
    }
}

/// Run times of a type, counted from a workflow's start.
#[derive(Clone, Copy, Debug)]
struct Window {
    /// When to poll first while requests are free.
    first: Duration,
    /// When to poll first while the rate binds.
    busy: Duration,
    /// By when nearly all should have finished: the longest recent run time, or more when
    /// few are known.
    last: Duration,
    /// How far run times spread (estimated).
    spread: Duration,
}

impl Window {
    /// When to poll first, from the start: the expected finish while requests are free;
    /// while the rate binds (`pressure` is the wait for a token), when four in five of the
    /// recent ones had finished, less that wait: about one poll in five finds the workflow
    /// still running. The end of the window would keep each slot busy for the whole
    /// spread: a wasted poll costs a tenth of a second of the rate, a second of waiting
    /// costs a second of a slot.
    fn aim(self, pressure: Option<Duration>) -> Duration {
        match pressure {
            None => self.first,
            Some(wait) => self.busy.saturating_sub(wait).max(self.first),
        }
    }

    /// For a workflow started at `started`: its first poll (see [`Self::aim`]), or else the
    /// longest expected, whichever is still after `now`.
    fn ahead(self, started: Instant, now: Instant, pressure: Option<Duration>) -> Option<Instant> {
        [started + self.aim(pressure), started + self.last].into_iter().find(|at| *at > now)
    }

    /// The gap before the `late`-th poll past `last`: a quarter of the spread, doubling.
    fn late_gap(self, late: u32) -> Duration {
        (self.spread / 4).saturating_mul(1 << late.min(10))
    }
}

/// The `q` quantile of sorted values, interpolated.
fn quantile(sorted: &[f64], q: f64) -> f64 {
    #[expect(clippy::cast_precision_loss, reason = "at most HISTORY values")]
    let at = q.clamp(0.0, 1.0) * (sorted.len() - 1) as f64;
    #[expect(clippy::cast_possible_truncation, clippy::cast_sign_loss, reason = "0 <= at < len")]
    let low = at.floor() as usize;
    let high = (low + 1).min(sorted.len() - 1);
    #[expect(clippy::cast_precision_loss, reason = "an index")]
    let weight = at - low as f64;
    sorted[low] + (sorted[high] - sorted[low]) * weight
}

/// How polls are paced: near the expected finish (ours), or, with `every`, every interval
/// from the start like terminus (for comparison, `TERMINUS_BATCH_POLL_INTERVAL`). Never more
/// often than `floor` per site.
#[derive(Clone, Copy)]
struct Pace {
    floor: Duration,
    every: Option<Duration>,
}

impl Pace {
    /// A new waiter's first poll; may ask its site to read the list to learn its type.
    /// `pressure` is how long a poll waits for the rate limit now, when the rate binds:
    /// then every request is time, so the first poll aims late in the window (see
    /// [`Window::aim`]) and is sent early by that wait so that it goes out then. While
    /// another site's list is being read for its type, the waiter waits for that lesson
    /// ([`Self::retime`]) rather than poll a workflow that has likely only begun.
    fn first(
        self,
        watch: &mut Watch,
        site: &mut SiteWatch,
        known: &mut Expectations,
        pressure: Option<Duration>,
    ) -> Instant {
        if self.every.is_some() {
            return Instant::now();
        }
        let few = known.samples(&watch.kind) < MIN_SAMPLES && !known.learning.contains(&watch.kind);
        let asked = known.asked.entry(watch.kind.clone()).or_default();
        if few && *asked < LEARN_ATTEMPTS {
            *asked += 1;
            known.learning.insert(watch.kind.clone());
            site.learn.push(watch.kind.clone());
            return Instant::now();
        }
        let hold = watch.started + MAX_POLL_GAP.max(self.floor);
        match known.window(&watch.kind) {
            Some(window) => watch.started + window.aim(pressure).max(self.floor),
            None if known.learning.contains(&watch.kind) => {
                watch.lesson = true;
                hold
            }
            // A cold platform (no history of the type anywhere): the first waiter scouts,
            // polling as its workflow runs, and the run time it finds times the others.
            None if known.scout(watch) => watch.started + self.floor,
            None => hold,
        }
    }

    /// A waiter's next poll once more is known of its type: the new expected finish or
    /// the new longest, whichever is ahead (past both, as it was). Of the waiters held for a
    /// lesson that taught nothing (a cold platform), one scouts, polling as its workflow
    /// runs, and the others stay held for what its end teaches, as [`Self::first`] does:
    /// each polling on its own would spend a poll after poll on every workflow of the first
    /// wave.
    fn retime(
        self,
        watch: &mut Watch,
        due: Instant,
        now: Instant,
        known: &mut Expectations,
        pressure: Option<Duration>,
    ) -> Instant {
        if self.every.is_some() || watch.late > 0 {
            return due;
        }
        let held = std::mem::take(&mut watch.lesson);
        match known.window(&watch.kind) {
            // A waiter held for a lesson, or not polled yet, whose expected finish is now
            // past (the new run times are shorter) polls now: waiting for the end of the
            // window would keep its slot for the spread. One polled already is on its way to
            // the window's end, which new run times moving about early in a lesson would
            // otherwise each turn into another poll.
            Some(window) if (held || !watch.polled) && watch.started + window.aim(pressure) <= now => now,
            Some(window) => window.ahead(watch.started, now, pressure).unwrap_or(if held { now } else { due }),
            None if held && known.scout(watch) => now.max(watch.started + self.floor),
            None if held => due.max(watch.started + MAX_POLL_GAP.max(self.floor)),
            None => due,
        }
    }

    /// The next poll of a waiter still running at `now`. Of a type with no run time known,
    /// one waiter scouts, polling as its workflow runs, and the others (a waiter whose site
    /// list taught nothing, say) are held for what its end teaches, as in [`Self::first`].
    fn next(self, watch: &mut Watch, now: Instant, known: &mut Expectations) -> Instant {
        if let Some(every) = self.every {
            return now + every;
        }
        let Some(window) = known.window(&watch.kind) else {
            let gap = MAX_POLL_GAP.max(self.floor);
            if !known.scout(watch) {
                return now + gap;
            }
            let ran = now.saturating_duration_since(watch.started);
            return now + (ran / GROWTH).clamp(self.floor, gap);
        };
        let at = window.ahead(watch.started, now, None).unwrap_or_else(|| {
            watch.late += 1;
            now + window.late_gap(watch.late - 1).min(MAX_POLL_GAP)
        });
        at.max(now + self.floor)
    }
}

#[derive(Default)]
struct SiteWatch {
    waiting: Vec<(Watch, Instant)>,
    last_poll: Option<Instant>,
    failures: u32,
    polling: bool,
    /// Types to learn from this site's list at its next poll.
    learn: Vec<String>,
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

/// A finished site poll: the site, the workflows asked about, the types it was to learn, and
/// what the platform said.
type PollResult = (String, Vec<String>, Vec<String>, Result<Vec<Workflow>, ApiError>);

impl PollerDriver {
    /// Polls until every [`Poller`] handle is dropped and no waiter is left.
    pub async fn drive(mut self) {
        let config = self.client.config();
        let floor = config.poll_floor;
        let pace = Pace { floor, every: config.poll_interval.map(|every| every.max(floor)) };
        let mut sites: BTreeMap<String, SiteWatch> = BTreeMap::new();
        let mut known = Expectations::default();
        let mut polls: JoinSet<PollResult> = JoinSet::new();
        // Which site each poll in flight is for, so a poll that panicked still frees its site.
        let mut polling: HashMap<tokio::task::Id, (String, Vec<String>, Vec<String>)> = HashMap::new();
        let mut open = true;
        loop {
            sites.retain(|_, s| {
                s.waiting.retain(|(w, _)| !w.reply.is_closed());
                !s.waiting.is_empty() || s.polling
            });
            // A scout no longer waited for (its task ended otherwise, or its poll failed):
            // one of the waiters held for it scouts now, rather than at the end of its hold.
            let mut orphaned = HashSet::new();
            known.scouts.retain(|kind, id| {
                let waited = sites.values().any(|s| s.waiting.iter().any(|(w, _)| &w.workflow_id == id));
                if !waited {
                    orphaned.insert(kind.clone());
                }
                waited
            });
            if !orphaned.is_empty() {
                let (now, pressure) = (Instant::now(), self.client.request_pressure());
                for site in sites.values_mut().filter(|s| !s.polling && s.learn.is_empty()) {
                    for (watch, due) in &mut site.waiting {
                        if watch.lesson && orphaned.contains(&watch.kind) {
                            *due = pace.retime(watch, *due, now, &mut known, pressure);
                        }
                    }
                }
            }
            if !open && sites.is_empty() && polls.is_empty() {
                return;
            }
            let next = sites.values().filter_map(|s| s.next_due(floor)).min();
            tokio::select! {
                watch = self.rx.recv(), if open => match watch {
                    Some(mut watch) => {
                        let site = sites.entry(watch.site_id.clone()).or_default();
                        let due = pace.first(&mut watch, site, &mut known, self.client.request_pressure());
                        site.waiting.push((watch, due));
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
                            let learn = std::mem::take(&mut site.learn);
                            let poll = (self.poll)(self.client.clone(), site_id.clone(), ids.clone(), !learn.is_empty());
                            let (site, asked, taught) = (site_id.clone(), ids.clone(), learn.clone());
                            let handle = polls.spawn(async move { (site, asked, taught, poll.await) });
                            polling.insert(handle.id(), (site_id.clone(), ids, learn));
                        }
                    }
                },
                Some(joined) = polls.join_next_with_id(), if !polls.is_empty() => {
                    let (site_id, ids, learned, result) = match joined {
                        Ok((id, done)) => {
                            polling.remove(&id);
                            done
                        }
                        // A bug in a poll: its waiters fail with an internal error, as a task
                        // whose own code panicked does, and the site is free again.
                        Err(e) => {
                            let Some((site_id, ids, learned)) = polling.remove(&e.id()) else { continue };
                            let why = if e.is_panic() {
                                format!("a workflow poll panicked: {}", tb_core::panics::message(e.into_panic().as_ref()))
                            } else {
                                "a workflow poll was cancelled".to_owned()
                            };
                            warn!(site = %site_id, "{why}");
                            let label = format!("GET /api/sites/{site_id}/workflows");
                            (site_id, ids, learned, Err(ApiError::new(label, ApiErrorKind::Internal { message: why })))
                        }
                    };
                    for kind in &learned {
                        known.learning.remove(kind);
                    }
                    let Some(site) = sites.get_mut(&site_id) else { continue };
                    site.polling = false;
                    let mut updated = settle(site, &ids, result, &mut known, pace, self.client.gone_silent());
                    // What is now known of these types (or that a lesson taught nothing)
                    // moves their waiters' next polls.
                    updated.extend(learned);
                    let now = Instant::now();
                    let pressure = self.client.request_pressure();
                    for site in sites.values_mut().filter(|s| !s.polling && s.learn.is_empty()) {
                        for (watch, due) in &mut site.waiting {
                            if updated.contains(&watch.kind) {
                                *due = pace.retime(watch, *due, now, &mut known, pressure);
                            }
                        }
                    }
                }
                // Nothing can wake the loop: only a bug gets here. The waiters left are told,
                // rather than wait for ever.
                else => {
                    for (site_id, site) in std::mem::take(&mut sites) {
                        let label = format!("GET /api/sites/{site_id}/workflows");
                        let message = "the workflow poller had nothing left to wait on".to_owned();
                        for (watch, _) in site.waiting {
                            let error = ApiError::new(&label, ApiErrorKind::Internal { message: message.clone() });
                            let _receiver_gone = watch.reply.send(Err(error));
                        }
                    }
                    return;
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

/// One tick for one site: by id when one workflow is awaited and nothing is to be learned,
/// else the site's list (newest 100, all of them counted for run times), with by-id
/// fallbacks for ours that are not in it.
async fn poll_site(client: &ApiClient, site_id: &str, ids: &[String], learn: bool) -> Result<Vec<Workflow>, ApiError> {
    if let ([only], false) = (ids, learn) {
        return Ok(vec![client.workflow(site_id, only).await?]);
    }
    let mut list = client.workflows(site_id).await?;
    for id in ids {
        if !list.iter().any(|w| &w.id == id) {
            list.push(client.workflow(site_id, id).await?);
        }
    }
    Ok(list)
}

/// Takes in one site's poll: answers the waiters whose workflow finished, schedules the
/// others, and returns the types it taught new run times of.
fn settle(
    site: &mut SiteWatch,
    ids: &[String],
    result: Result<Vec<Workflow>, ApiError>,
    known: &mut Expectations,
    pace: Pace,
    silent: Option<Duration>,
) -> HashSet<String> {
    let now = Instant::now();
    let floor = pace.floor;
    let workflows = match result {
        Ok(list) => list,
        Err(error) => {
            site.failures += 1;
            // An API that has answered nothing for a while is not waited on poll by poll: the
            // run is stopping (its workflows keep running, and a resume re-attaches).
            let fatal =
                error.is_not_found() || !error.is_transient() || site.failures >= MAX_POLL_FAILURES || silent.is_some();
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
            return HashSet::new();
        }
    };
    site.failures = 0;
    let mut updated = HashSet::new();
    for workflow in &workflows {
        if known.record(workflow) {
            updated.insert(workflow.kind.clone());
        }
    }
    let finished: Vec<&Workflow> = workflows.iter().filter(|w| w.is_finished() && ids.contains(&w.id)).collect();
    // A scout that ended hands over: its waiting fellows are timed by what it taught (or, if
    // it taught nothing, poll as waiters of an unknown type do).
    known.scouts.retain(|kind, scout| {
        let ended = finished.iter().any(|f| &f.id == scout);
        if ended {
            updated.insert(kind.clone());
        }
        !ended
    });
    let (done, kept): (Vec<_>, Vec<_>) = std::mem::take(&mut site.waiting)
        .into_iter()
        .partition(|(w, _)| finished.iter().any(|f| f.id == w.workflow_id));
    site.waiting = kept;
    for (watch, _) in done {
        if let Some(workflow) = finished.iter().find(|f| f.id == watch.workflow_id) {
            let _receiver_gone = watch.reply.send(Ok((*workflow).clone()));
        }
    }
    for (watch, due) in &mut site.waiting {
        if ids.contains(&watch.workflow_id) {
            watch.lesson = false;
            watch.polled = true;
            *due = pace.next(watch, now, known);
            debug!(
                workflow = %watch.workflow_id,
                ran = ?now.saturating_duration_since(watch.started),
                next = ?due.saturating_duration_since(watch.started),
                window = ?known.window(&watch.kind),
                "polled before the end"
            );
        }
    }
    updated
}

#[cfg(test)]
mod tests {
    use super::*;

    fn workflow(json: &str) -> Workflow {
        serde_json::from_str(json).unwrap()
    }

    /// A waiter for workflow `id` of `kind` on site `id`, started at `started`, never polled.
    fn waiter(id: &str, kind: &str, started: Instant) -> Watch {
        let (reply, _rx) = oneshot::channel();
        Watch {
            site_id: id.into(),
            workflow_id: id.into(),
            kind: kind.into(),
            started,
            polled: false,
            late: 0,
            lesson: false,
            reply,
        }
    }

    #[test]
    fn adoption_matches_type_env_user_window_and_marker() {
        let start = StartWorkflow {
            scope: WorkflowScope::Env { site_id: "s".into(), env: "live".into() },
            kind: WorkflowType::Deploy,
            params: Value::Null,
            marker: Some("[tb:r1:deploy[a.live]]".into()),
        };
        let ok = r#"{"id":"w","type":"deploy","user_id":"u","created_at":1000.0,"environment_id":"live",
            "params":{"annotation":"Weekly [tb:r1:deploy[a.live]]"}}"#;
        assert!(matches_start(&workflow(ok), &start, "u", 1050.0));
        assert!(!matches_start(&workflow(ok), &start, "other", 1050.0), "another user");
        assert!(matches_start(&workflow(ok), &start, "u", 1200.0), "its marker says it is ours, whatever the clocks");
        assert!(!matches_start(&workflow(&ok.replace("\"live\"", "\"test\"")), &start, "u", 1050.0));
        assert!(!matches_start(&workflow(&ok.replace("r1", "r2")), &start, "u", 1050.0), "another run's marker");
        let site = StartWorkflow {
            scope: WorkflowScope::Site { site_id: "s".into(), env: Some("ci-1".into()) },
            kind: WorkflowType::CreateCloudDevelopmentEnvironment,
            params: Value::Null,
            marker: None,
        };
        let md = r#"{"id":"w","type":"create_cloud_development_environment","user_id":"u","created_at":1000.0,
            "params":{"environment_id":"ci-1"}}"#;
        assert!(matches_start(&workflow(md), &site, "u", 1000.0));
        assert!(!matches_start(&workflow(md), &site, "u", 1200.0), "without a marker, too old");
        assert!(!matches_start(&workflow(&md.replace("ci-1", "ci-2")), &site, "u", 1000.0));
    }

    #[test]
    fn polls_come_at_the_expected_finish_then_the_longest_then_further_apart() {
        let mut known = Expectations::default();
        for (i, t) in [10.0, 12.0, 14.0, 16.0, 18.0, 20.0].iter().enumerate() {
            let w = workflow(&format!(r#"{{"id":"h{i}","type":"deploy","result":"succeeded","total_time":{t}}}"#));
            assert!(known.record(&w));
            assert!(!known.record(&w), "counted once");
        }
        let pace = Pace { floor: Duration::from_secs(1), every: None };
        let start = Instant::now();
        let mut watch = waiter("w", "deploy", start);
        let mut site = SiteWatch::default();
        let first = pace.first(&mut watch, &mut site, &mut known, None);
        assert_eq!(first - start, Duration::from_secs_f64(16.5), "the 65th percentile");
        assert!(site.learn.is_empty(), "nothing to learn");
        let second = pace.next(&mut watch, first, &mut known);
        // Six values 2 s apart from 10 to 20 s: a range widened by 7/5 to 14 s around 15 s.
        assert_eq!(second - start, Duration::from_secs(22), "the longest expected");
        let third = pace.next(&mut watch, second, &mut known);
        assert_eq!(third - second, Duration::from_secs_f64(3.5), "a quarter of the spread past it");
        let fourth = pace.next(&mut watch, third, &mut known);
        assert_eq!(fourth - third, Duration::from_secs(7), "then doubling");
        let terminus = Pace { every: Some(Duration::from_secs(5)), ..pace };
        assert!(
            terminus.first(&mut watch, &mut site, &mut known, None) <= Instant::now(),
            "terminus fetches right away"
        );
        assert_eq!(terminus.next(&mut watch, second, &mut known) - second, Duration::from_secs(5));
    }

    #[test]
    fn an_unknown_type_is_learned_from_one_site_list_at_a_time() {
        let mut known = Expectations::default();
        let pace = Pace { floor: Duration::from_secs(1), every: None };
        let watch = |id: &str| waiter(id, "clear_cache", Instant::now());
        let (mut a, mut b) = (SiteWatch::default(), SiteWatch::default());
        let (mut wa, mut wb) = (watch("a"), watch("b"));
        assert!(pace.first(&mut wa, &mut a, &mut known, None) <= Instant::now(), "read the list right away");
        assert_eq!(a.learn, ["clear_cache"]);
        let held = pace.first(&mut wb, &mut b, &mut known, None);
        assert_eq!(held, wb.started + MAX_POLL_GAP, "one list at a time; the others wait for its lesson");
        assert!(b.learn.is_empty() && wb.lesson);
        // The lesson taught nothing: poll as for an unknown type.
        known.learning.clear();
        let now = Instant::now();
        assert_eq!(pace.retime(&mut wb, held, now, &mut known, None), now.max(wb.started + Duration::from_secs(1)));
        assert!(!wb.lesson, "the first held waiter scouts");
        assert_eq!(known.scouts.get("clear_cache").map(String::as_str), Some("b"));
        // Another held waiter of the type stays held for what the scout's end teaches.
        let mut wx = watch("x");
        wx.lesson = true;
        let due = pace.retime(&mut wx, held, now, &mut known, None);
        assert!(wx.lesson && due >= wx.started + MAX_POLL_GAP, "held: {:?}", due - wx.started);
        known.scouts.clear();
        // It taught run times: the first poll comes near the expected finish.
        let (mut wc, mut c) = (watch("c"), SiteWatch::default());
        assert!(pace.first(&mut wc, &mut c, &mut known, None) <= Instant::now(), "another site's list, then");
        assert_eq!(c.learn, ["clear_cache"]);
        let mut wd = watch("d");
        let held = pace.first(&mut wd, &mut SiteWatch::default(), &mut known, None);
        known.learning.clear();
        for (i, t) in [18.0, 19.0, 20.0, 21.0, 22.0].iter().enumerate() {
            let w = workflow(&format!(r#"{{"id":"h{i}","type":"clear_cache","result":"succeeded","total_time":{t}}}"#));
            known.record(&w);
        }
        let due = pace.retime(&mut wd, held, Instant::now(), &mut known, None);
        assert_eq!(due, wd.started + Duration::from_secs_f64(20.6), "the 65th percentile");
    }

    #[test]
    fn on_a_cold_platform_one_waiter_scouts_and_its_end_times_the_others() {
        let pace = Pace { floor: Duration::from_secs(1), every: None };
        // Site lists taught nothing of the type: no lesson is left to ask for.
        let mut known = Expectations::default();
        known.asked.insert("deploy".into(), LEARN_ATTEMPTS);
        let watch = |id: &str| waiter(id, "deploy", Instant::now());
        let (mut scout, mut other) = (watch("a"), watch("b"));
        let first = pace.first(&mut scout, &mut SiteWatch::default(), &mut known, None);
        assert_eq!(first, scout.started + Duration::from_secs(1), "the scout polls as its workflow runs");
        assert_eq!(known.scouts.get("deploy").map(String::as_str), Some("a"));
        let held = pace.first(&mut other, &mut SiteWatch::default(), &mut known, None);
        assert_eq!(held, other.started + MAX_POLL_GAP, "the others wait for what the scout finds");
        assert!(other.lesson);
        // The scout's workflow ends after 6 s: the others are timed by it.
        let mut site = SiteWatch::default();
        site.waiting.push((scout, first));
        let ended = workflow(r#"{"id":"a","type":"deploy","result":"succeeded","total_time":6.0}"#);
        let updated = settle(&mut site, &["a".into()], Ok(vec![ended]), &mut known, pace, None);
        assert!(updated.contains("deploy") && known.scouts.is_empty(), "{updated:?}");
        let due = pace.retime(&mut other, held, Instant::now(), &mut known, None);
        assert!(due < other.started + Duration::from_secs(7), "near the scout's run time: {:?}", due - other.started);
    }

    #[test]
    fn a_waiter_whose_expected_finish_moved_into_the_past_polls_now_if_held_or_not_polled() {
        let pace = Pace { floor: Duration::from_secs(1), every: None };
        let mut known = Expectations::default();
        for (i, t) in [10.0, 12.0, 14.0, 16.0, 18.0, 20.0].iter().enumerate() {
            known.record(&workflow(&format!(
                r#"{{"id":"h{i}","type":"deploy","result":"succeeded","total_time":{t}}}"#
            )));
        }
        let now = Instant::now();
        // Started 17 s ago: past the expected finish (16.5 s), before the longest (22 s).
        let started = now.checked_sub(Duration::from_secs(17)).unwrap();
        let watch = |polled: bool| Watch { polled, ..waiter("w", "deploy", started) };
        let due = started + Duration::from_secs(30);
        let mut fresh = watch(false);
        assert_eq!(pace.retime(&mut fresh, due, now, &mut known, None), now, "not polled yet: now");
        let mut held = watch(true);
        held.lesson = true;
        assert_eq!(pace.retime(&mut held, due, now, &mut known, None), now, "held for a lesson: now");
        let mut seen = watch(true);
        let last = pace.retime(&mut seen, due, now, &mut known, None);
        assert_eq!(last - started, Duration::from_secs(22), "polled already: the longest expected");
    }

    #[test]
    fn on_a_cold_platform_a_waiter_whose_list_taught_nothing_waits_for_the_scout() {
        let pace = Pace { floor: Duration::from_secs(1), every: None };
        let mut known = Expectations::default();
        known.scouts.insert("clear_cache".into(), "scout".into());
        let mut learner = waiter("w", "clear_cache", Instant::now());
        let now = Instant::now();
        assert_eq!(pace.next(&mut learner, now, &mut known), now + MAX_POLL_GAP, "held for the scout");
        assert!(learner.lesson);
        // With no scout left, it scouts itself, polling as its workflow runs.
        known.scouts.clear();
        learner.lesson = false;
        assert_eq!(pace.next(&mut learner, now, &mut known), now + Duration::from_secs(1));
        assert_eq!(known.scouts.get("clear_cache").map(String::as_str), Some("w"));
    }

    #[test]
    fn a_run_time_comes_from_the_timestamps_when_total_time_is_missing() {
        let mut known = Expectations::default();
        let w = workflow(
            r#"{"id":"a","type":"deploy","result":"succeeded","total_time":null,"created_at":100.0,"finished_at":130.0}"#,
        );
        assert!(known.record(&w));
        let bare = workflow(r#"{"id":"b","type":"deploy","result":"succeeded","total_time":null}"#);
        assert!(!known.record(&bare), "nothing to learn");
        assert_eq!(known.samples("deploy"), 1);
        assert_eq!(known.window("deploy").map(|w| w.first), Some(Duration::from_secs(30)));
    }

    #[tokio::test(start_paused = true)]
    async fn a_poll_that_panics_fails_its_waiters_with_an_internal_error_and_frees_the_site() {
        let client = ApiClient::new(super::super::tests::config("http://127.0.0.1:9/api/")).unwrap();
        let (poller, mut driver) = Poller::new(client);
        driver.poll = |_, _, _, _| Box::pin(async { panic!("a bug in a poll") });
        let driving = tokio::spawn(driver.drive());
        let running = |id: &str| workflow(&format!(r#"{{"id":"{id}","type":"deploy"}}"#));
        let error = poller.wait("s", &running("w1")).await.unwrap_err();
        assert!(error.is_internal(), "{error}");
        assert!(error.to_string().contains("a workflow poll panicked: a bug in a poll"), "{error}");
        // The site is free again: the next waiter is polled, not left waiting for ever.
        let error = poller.wait("s", &running("w2")).await.unwrap_err();
        assert!(error.is_internal(), "{error}");
        drop(poller);
        driving.await.unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn when_a_scout_is_no_longer_waited_for_a_held_waiter_scouts_at_once() {
        let client = ApiClient::new(super::super::tests::config("http://127.0.0.1:9/api/")).unwrap();
        let (poller, mut driver) = Poller::new(client);
        // A cold platform: site lists teach nothing (a lesson takes 100 ms); on site `a` the
        // workflow runs on, on site `b` it has ended.
        driver.poll = |_, site, ids, learn| {
            Box::pin(async move {
                if learn {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                let state = if site == "b" { r#","result":"succeeded","total_time":5.0"# } else { "" };
                Ok(ids.iter().map(|id| workflow(&format!(r#"{{"id":"{id}","type":"deploy"{state}}}"#))).collect())
            })
        };
        let driving = tokio::spawn(driver.drive());
        let running = |id: &str| workflow(&format!(r#"{{"id":"{id}","type":"deploy"}}"#));
        let start = Instant::now();
        // `wa` reads its site's list to learn the type; `wb`, come meanwhile, is held for
        // that lesson, then for the scout `wa` becomes when the list taught nothing.
        let scout = tokio::spawn({
            let poller = poller.clone();
            let wa = running("wa");
            async move { poller.wait("a", &wa).await }
        });
        tokio::time::sleep(Duration::from_millis(10)).await;
        let held = tokio::spawn({
            let poller = poller.clone();
            let wb = running("wb");
            async move { poller.wait("b", &wb).await }
        });
        tokio::time::sleep(Duration::from_millis(500)).await;
        // The scout's task ends otherwise (cancelled, say).
        scout.abort();
        let finished = held.await.unwrap().unwrap();
        assert!(finished.is_finished());
        assert!(start.elapsed() < MAX_POLL_GAP, "seen after {:?}, not at the end of its hold", start.elapsed());
        drop(poller);
        driving.await.unwrap();
    }

    #[test]
    fn quantiles_interpolate() {
        assert!((quantile(&[1.0, 2.0, 3.0], 0.5) - 2.0).abs() < 1e-9);
        assert!((quantile(&[1.0, 2.0, 3.0], 0.75) - 2.5).abs() < 1e-9);
        assert!((quantile(&[4.0], 0.65) - 4.0).abs() < 1e-9);
    }
}
