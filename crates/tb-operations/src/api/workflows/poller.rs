//! The one shared poller: [`Poller`] is the handle tasks wait through, [`PollerDriver::drive`]
//! the loop that polls every site with workflows in flight, by id or by list, at the pace
//! `pace` sets.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Duration;

use futures::future::BoxFuture;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tracing::{debug, warn};

use super::pace::{Expectations, Pace};
use crate::api::wire::Workflow;
use crate::api::{ApiClient, ApiError, ApiErrorKind};

/// Asks the driver to wait for a workflow.
#[derive(Clone, Debug)]
pub struct Poller {
    pub(super) tx: mpsc::UnboundedSender<Watch>,
    /// Under a fixed interval (terminus's way), the sleep after the final fetch.
    pub(super) linger: Option<Duration>,
}

#[derive(Debug)]
pub(super) struct Watch {
    pub(super) site_id: String,
    pub(super) workflow_id: String,
    pub(super) kind: String,
    pub(super) started: Instant,
    /// Whether a poll has found it running.
    pub(super) polled: bool,
    /// Polls so far that found it running past the longest known run time of its type.
    pub(super) late: u32,
    /// Waiting for a site list being read to tell its type's run times, not yet polled.
    pub(super) lesson: bool,
    pub(super) reply: oneshot::Sender<Result<Workflow, ApiError>>,
}

/// The loop that polls for every waiter; run it beside the work that waits.
pub struct PollerDriver {
    pub(super) client: ApiClient,
    pub(super) rx: mpsc::UnboundedReceiver<Watch>,
    /// One site's poll: [`poll_site`], or a test's stand-in.
    pub(super) poll: PollSite,
}

/// One poll of a site: the client, the site, the workflows awaited, whether to read the list
/// to learn run times.
pub(super) type PollSite =
    fn(ApiClient, String, Vec<String>, bool) -> BoxFuture<'static, Result<Vec<Workflow>, ApiError>>;

pub(super) fn poll_site_owned(
    client: ApiClient,
    site_id: String,
    ids: Vec<String>,
    learn: bool,
) -> BoxFuture<'static, Result<Vec<Workflow>, ApiError>> {
    Box::pin(async move { poll_site(&client, &site_id, &ids, learn).await })
}

/// After this many failed polls in a row, a site's waiters get the error.
pub(super) const MAX_POLL_FAILURES: u32 = 5;

/// The longest gap between two polls of a running workflow.
pub(super) const MAX_POLL_GAP: Duration = Duration::from_secs(30);

/// Recent durations kept per workflow type.
pub(super) const HISTORY: usize = 20;

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

#[derive(Default)]
pub(super) struct SiteWatch {
    pub(super) waiting: Vec<(Watch, Instant)>,
    pub(super) last_poll: Option<Instant>,
    pub(super) failures: u32,
    pub(super) polling: bool,
    /// Types to learn from this site's list at its next poll.
    pub(super) learn: Vec<String>,
}

impl SiteWatch {
    pub(super) fn next_due(&self, floor: Duration) -> Option<Instant> {
        if self.polling {
            return None;
        }
        let due = self.waiting.iter().map(|(_, due)| *due).min()?;
        Some(self.last_poll.map_or(due, |last| due.max(last + floor)))
    }
}

/// A finished site poll: the site, the workflows asked about, the types it was to learn, and
/// what the platform said.
pub(super) type PollResult = (String, Vec<String>, Vec<String>, Result<Vec<Workflow>, ApiError>);

impl PollerDriver {
    /// Polls until every [`Poller`] handle is dropped and no waiter is left.
    pub async fn drive(mut self) {
        let config = self.client.config();
        let floor = config.poll_floor;
        let mut run = Driving {
            client: self.client.clone(),
            poll: self.poll,
            pace: Pace { floor, every: config.poll_interval.map(|every| every.max(floor)) },
            sites: BTreeMap::new(),
            known: Expectations::default(),
            polls: JoinSet::new(),
            polling: HashMap::new(),
        };
        let mut open = true;
        loop {
            run.prune();
            if !open && run.sites.is_empty() && run.polls.is_empty() {
                return;
            }
            let next = run.sites.values().filter_map(|s| s.next_due(floor)).min();
            tokio::select! {
                watch = self.rx.recv(), if open => match watch {
                    Some(watch) => run.enqueue(watch),
                    None => open = false,
                },
                () = sleep_until(next), if next.is_some() => run.poll_due(),
                Some(joined) = run.polls.join_next_with_id(), if !run.polls.is_empty() => run.polled(joined),
                // Nothing can wake the loop: only a bug gets here. The waiters left are told,
                // rather than wait for ever.
                else => {
                    run.fail_all();
                    return;
                }
            }
        }
    }
}

/// The poller loop's state: the sites with waiters, what is known of run times, and the
/// polls in flight (with which site each is for, so a poll that panicked still frees it).
struct Driving {
    client: ApiClient,
    poll: PollSite,
    pace: Pace,
    sites: BTreeMap<String, SiteWatch>,
    known: Expectations,
    polls: JoinSet<PollResult>,
    polling: HashMap<tokio::task::Id, (String, Vec<String>, Vec<String>)>,
}

impl Driving {
    /// Forgets the waiters whose task stopped waiting; a scout no longer waited for (its task
    /// ended otherwise, or its poll failed) makes one of the waiters held for it scout now,
    /// rather than at the end of its hold.
    fn prune(&mut self) {
        self.sites.retain(|_, s| {
            s.waiting.retain(|(w, _)| !w.reply.is_closed());
            !s.waiting.is_empty() || s.polling
        });
        let mut orphaned = HashSet::new();
        let sites = &self.sites;
        self.known.scouts.retain(|kind, id| {
            let waited = sites.values().any(|s| s.waiting.iter().any(|(w, _)| &w.workflow_id == id));
            if !waited {
                orphaned.insert(kind.clone());
            }
            waited
        });
        if !orphaned.is_empty() {
            self.retime(|watch| watch.lesson && orphaned.contains(&watch.kind));
        }
    }

    /// A new waiter, due at its first poll.
    fn enqueue(&mut self, mut watch: Watch) {
        let site = self.sites.entry(watch.site_id.clone()).or_default();
        let due = self.pace.first(&mut watch, site, &mut self.known, self.client.request_pressure());
        site.waiting.push((watch, due));
    }

    /// Polls every site whose next poll is due.
    fn poll_due(&mut self) {
        let now = Instant::now();
        for (site_id, site) in &mut self.sites {
            if site.next_due(self.pace.floor).is_some_and(|due| due <= now) {
                site.polling = true;
                site.last_poll = Some(now);
                let ids: Vec<String> = site.waiting.iter().map(|(w, _)| w.workflow_id.clone()).collect();
                let learn = std::mem::take(&mut site.learn);
                let poll = (self.poll)(self.client.clone(), site_id.clone(), ids.clone(), !learn.is_empty());
                let (site, asked, taught) = (site_id.clone(), ids.clone(), learn.clone());
                let handle = self.polls.spawn(async move { (site, asked, taught, poll.await) });
                self.polling.insert(handle.id(), (site_id.clone(), ids, learn));
            }
        }
    }

    /// A site's poll ended: its waiters are answered or rescheduled, and what it taught
    /// moves the next polls of every waiter of the types it taught.
    fn polled(&mut self, joined: Result<(tokio::task::Id, PollResult), tokio::task::JoinError>) {
        let (site_id, ids, learned, result) = match joined {
            Ok((id, done)) => {
                self.polling.remove(&id);
                done
            }
            // A bug in a poll: its waiters fail with an internal error, as a task whose own
            // code panicked does, and the site is free again.
            Err(e) => {
                let Some((site_id, ids, learned)) = self.polling.remove(&e.id()) else { return };
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
            self.known.learning.remove(kind);
        }
        let Some(site) = self.sites.get_mut(&site_id) else { return };
        site.polling = false;
        let mut updated = settle(site, &ids, result, &mut self.known, self.pace, self.client.gone_silent());
        // What is now known of these types (or that a lesson taught nothing) moves their
        // waiters' next polls.
        updated.extend(learned);
        self.retime(|watch| updated.contains(&watch.kind));
    }

    /// Moves the next poll of each waiter `which` picks, on sites not being polled.
    fn retime(&mut self, which: impl Fn(&Watch) -> bool) {
        let (now, pressure) = (Instant::now(), self.client.request_pressure());
        for site in self.sites.values_mut().filter(|s| !s.polling && s.learn.is_empty()) {
            for (watch, due) in &mut site.waiting {
                if which(watch) {
                    *due = self.pace.retime(watch, *due, now, &mut self.known, pressure);
                }
            }
        }
    }

    /// Tells every waiter left that nothing will answer it.
    fn fail_all(&mut self) {
        for (site_id, site) in std::mem::take(&mut self.sites) {
            let label = format!("GET /api/sites/{site_id}/workflows");
            let message = "the workflow poller had nothing left to wait on".to_owned();
            for (watch, _) in site.waiting {
                let error = ApiError::new(&label, ApiErrorKind::Internal { message: message.clone() });
                let _receiver_gone = watch.reply.send(Err(error));
            }
        }
    }
}

pub(super) async fn sleep_until(at: Option<Instant>) {
    if let Some(at) = at {
        tokio::time::sleep_until(at).await;
    }
}

/// One tick for one site: by id when one workflow is awaited and nothing is to be learned,
/// else the site's list (newest 100, all of them counted for run times), with by-id
/// fallbacks for ours that are not in it.
pub(super) async fn poll_site(
    client: &ApiClient,
    site_id: &str,
    ids: &[String],
    learn: bool,
) -> Result<Vec<Workflow>, ApiError> {
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
pub(super) fn settle(
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
    use super::super::pace::{LEARN_ATTEMPTS, quantile};
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
        let client = ApiClient::new(crate::api::tests::config("http://127.0.0.1:9/api/")).unwrap();
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
        let client = ApiClient::new(crate::api::tests::config("http://127.0.0.1:9/api/")).unwrap();
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
