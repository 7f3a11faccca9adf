//! Notifications (`settings.notify`, `--notify`): a run's start and end posted to webhooks,
//! in Slack's format or as the run's JSON summary. A webhook's URL is a secret: it is held as
//! one, never logged, and a failed delivery names the webhook by its place and host. Delivery
//! never touches the run's work or its exit code: the start is posted beside the run, the end
//! after its last task, each tried a few times within a short budget, and what became of each
//! message goes into the report.

use std::time::Duration;

use crate::outcome::{RunOutcome, Verdict};
use tb_core::secret::Secret;
use tb_plan::plan::model::{NotifyEvent, NotifyFormat, Webhook};
use tb_plan::plan::template::TextPart;
use tb_report::RunReport;
use tb_report::summary::Notification;

/// Tries per message, each at most [`TRY_TIMEOUT`], all within [`BUDGET`].
const TRIES: u32 = 3;
const TRY_TIMEOUT: Duration = Duration::from_secs(5);
const BUDGET: Duration = Duration::from_secs(15);
const FIRST_PAUSE: Duration = Duration::from_millis(500);

/// A webhook in force, its URL rendered.
#[derive(Clone)]
pub struct Hook {
    /// 1-based place among the webhooks in force.
    pub index: usize,
    url: Secret,
    pub host: String,
    pub events: Vec<NotifyEvent>,
    pub format: NotifyFormat,
}

impl std::fmt::Debug for Hook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "webhook #{} ({})", self.index, self.host)
    }
}

/// Why a webhook cannot be used (names no part of its URL but its place).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadHook {
    pub index: usize,
    pub why: String,
}

/// Renders each webhook's URL from the process environment and checks it.
///
/// # Errors
/// A variable it reads is not set, or the URL is not a webhook URL.
pub fn hooks(webhooks: &[Webhook], var: impl Fn(&str) -> Option<String>) -> Result<Vec<Hook>, BadHook> {
    webhooks
        .iter()
        .enumerate()
        .map(|(i, webhook)| {
            let index = i + 1;
            let mut url = String::new();
            for part in &webhook.url.0 {
                match part {
                    TextPart::Lit(lit) => url.push_str(lit),
                    TextPart::Env(name) => match var(name) {
                        Some(value) => url.push_str(&value),
                        None => return Err(BadHook { index, why: format!("environment variable {name} is not set") }),
                    },
                    TextPart::RunId => {
                        return Err(BadHook { index, why: "a webhook URL cannot hold the run id".to_owned() });
                    }
                }
            }
            let host = tb_plan::plan::validate::webhook_host(url.trim())
                .map_err(|why| BadHook { index, why: format!("its URL: {why}") })?;
            let format = webhook.format.unwrap_or_else(|| NotifyFormat::for_host(&host));
            Ok(Hook { index, url: Secret::new(url.trim().to_owned()), host, events: webhook.events.clone(), format })
        })
        .collect()
}

/// The webhooks of `--notify URL` (or `FORMAT=URL`): every end of a run.
#[must_use]
pub fn from_flags(flags: &[String]) -> Vec<Webhook> {
    flags
        .iter()
        .map(|flag| {
            let (format, url) = match flag.split_once('=') {
                Some(("slack", url)) => (Some(NotifyFormat::Slack), url),
                Some(("json", url)) => (Some(NotifyFormat::Json), url),
                _ => (None, flag.as_str()),
            };
            Webhook {
                url: tb_plan::plan::template::Text::literal(url),
                events: vec![NotifyEvent::Success, NotifyEvent::Failure, NotifyEvent::Halt],
                format,
            }
        })
        .collect()
}

/// Posts one message to each hook that wants `event`; `body` writes it in a format. Returns
/// what became of each, in the hooks' order.
pub async fn post(
    hooks: &[Hook],
    event: NotifyEvent,
    body: impl Fn(NotifyFormat) -> serde_json::Value,
) -> Vec<Notification> {
    let _already = rustls::crypto::ring::default_provider().install_default();
    let client = match reqwest::Client::builder()
        .user_agent(concat!("terminus-batch/", env!("CARGO_PKG_VERSION")))
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(TRY_TIMEOUT)
        .build()
    {
        Ok(client) => client,
        Err(e) => {
            let why = format!("cannot set up HTTPS: {}", tb_core::chain::one_line(&e.without_url()));
            return hooks
                .iter()
                .filter(|h| h.events.contains(&event))
                .map(|h| note(h, event, 0, Some(why.clone())))
                .collect();
        }
    };
    let sends =
        hooks.iter().filter(|h| h.events.contains(&event)).map(|hook| deliver(&client, hook, event, body(hook.format)));
    futures::future::join_all(sends).await
}

fn note(hook: &Hook, event: NotifyEvent, tries: u32, error: Option<String>) -> Notification {
    Notification {
        webhook: hook.index,
        host: hook.host.clone(),
        event: event.name().to_owned(),
        format: match hook.format {
            NotifyFormat::Slack => "slack",
            NotifyFormat::Json => "json",
        }
        .to_owned(),
        delivered: error.is_none(),
        tries,
        error,
    }
}

/// Up to [`TRIES`] tries within [`BUDGET`]: an answer 2xx delivers; 429, 5xx and no answer
/// are tried again; any other answer is final.
async fn deliver(client: &reqwest::Client, hook: &Hook, event: NotifyEvent, body: serde_json::Value) -> Notification {
    let deadline = tokio::time::Instant::now() + BUDGET;
    let mut last = String::new();
    let mut tried = 0;
    for tries in 1..=TRIES {
        tried = tries;
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        if left.is_zero() {
            return note(
                hook,
                event,
                tries - 1,
                Some(format!("{last} (no time left in its {}s budget)", BUDGET.as_secs())),
            );
        }
        let sent = client.post(hook.url.expose()).json(&body).timeout(TRY_TIMEOUT.min(left)).send().await;
        let again = match sent {
            Ok(answer) if answer.status().is_success() => return note(hook, event, tries, None),
            Ok(answer) => {
                let status = answer.status().as_u16();
                last = format!("HTTP {status}");
                status == 429 || status >= 500
            }
            Err(e) => {
                // reqwest's error names the URL: it is dropped, the URL is a secret.
                last = if e.is_timeout() {
                    "no answer in time".to_owned()
                } else {
                    tb_core::chain::one_line(&e.without_url())
                };
                true
            }
        };
        if !again || tries == TRIES {
            break;
        }
        tokio::time::sleep(tb_core::backoff::delay(FIRST_PAUSE, tries, BUDGET).min(left)).await;
    }
    tracing::warn!(webhook = hook.index, host = %hook.host, event = event.name(), error = %last, "a notification was not delivered");
    note(hook, event, tried, Some(last))
}

/// The start of a run, posted on `runtime` beside it (`None` without webhooks).
#[must_use]
pub fn start(
    runtime: &tokio::runtime::Runtime,
    hooks: &[Hook],
    report: &RunReport,
    tasks: usize,
) -> Option<tokio::task::JoinHandle<Vec<Notification>>> {
    (!hooks.is_empty()).then(|| {
        let (hooks, report) = (hooks.to_vec(), report.clone());
        runtime.spawn(async move {
            post(&hooks, NotifyEvent::Start, |format| match format {
                NotifyFormat::Slack => tb_report::notify::start_slack(&report, tasks),
                NotifyFormat::Json => tb_report::notify::start_json(&report, tasks),
            })
            .await
        })
    })
}

/// How a run ended, for its webhooks, from its verdict: success; failure when it went to its
/// end with tasks failed; a halt when it stopped starting work (every other verdict, its
/// timeout, or a task skipped because the run stopped: fail-fast, a budget, a rollout).
#[must_use]
pub fn end_event(outcome: &RunOutcome) -> NotifyEvent {
    let stopped =
        outcome.report.tasks.iter().any(|t| t.cause.as_ref().is_some_and(tb_core::cause::Cause::stopped_the_run));
    match outcome.verdict() {
        Verdict::Succeeded if !outcome.timed_out => NotifyEvent::Success,
        Verdict::TasksFailed if !outcome.timed_out && !stopped => NotifyEvent::Failure,
        _ => NotifyEvent::Halt,
    }
}

/// The end of a run, once its last task ended: waits for the start's delivery, then posts
/// the end (with `resume`, the command that resumes it, unless it succeeded). What became of
/// both, in order.
pub fn end(
    runtime: &tokio::runtime::Runtime,
    hooks: &[Hook],
    started: Option<tokio::task::JoinHandle<Vec<Notification>>>,
    report: &RunReport,
    event: NotifyEvent,
    resume: Option<String>,
) -> Vec<Notification> {
    let resume = resume.filter(|_| event != NotifyEvent::Success);
    runtime.block_on(async {
        let mut told = match started {
            Some(start) => start.await.unwrap_or_default(),
            None => Vec::new(),
        };
        told.extend(
            post(hooks, event, |format| match format {
                NotifyFormat::Slack => tb_report::notify::end_slack(report, event.name(), resume.as_deref()),
                NotifyFormat::Json => tb_report::notify::end_json(report, event.name(), resume.as_deref()),
            })
            .await,
        );
        told
    })
}
