//! The validated plan: typed settings, jobs with their operation, targets, typed option
//! templates, matrix, needs and policies. Every job and need keeps its span so later stages
//! (resolution, expansion) can still point into the file.

use std::time::Duration;

use miette::SourceSpan;
use serde::{Deserialize, Serialize};

use super::ops::{ArgValue, OperationKind, OptType, Scalar};
use super::template::Template;
use tb_core::ids::JobId;

/// A validated plan.
#[derive(Clone, Debug)]
pub struct Plan {
    pub name: Option<String>,
    pub settings: PlanSettings,
    /// Jobs in plan order.
    pub jobs: Vec<Job>,
}

impl Plan {
    #[must_use]
    pub fn job(&self, id: &JobId) -> Option<&Job> {
        self.jobs.iter().find(|j| &j.id == id)
    }
}

/// The plan's `settings:` layer; unset values fall through to other layers (DESIGN.md §9).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct PlanSettings {
    pub concurrency: Option<u32>,
    pub per_site: Option<u32>,
    pub max_requests: Option<u32>,
    pub requests_per_second: Option<f64>,
    pub burst: Option<u32>,
    pub on_failure: Option<OnFailure>,
    pub max_failures: Option<Limit>,
    #[serde(with = "opt_duration", default)]
    pub timeout: Option<Duration>,
    /// Where runs keep their state (a directory or an object-store URL).
    #[serde(default)]
    pub state: Option<String>,
    /// Webhooks told of the run.
    #[serde(default)]
    pub notify: Vec<Webhook>,
}

/// A webhook told of a run's start or end. Its URL is a secret: it is never shown.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Webhook {
    /// Literal text and process environment references; shown (in `plan`'s JSON, a saved
    /// plan) only as its variable references: a literal URL is a secret.
    #[serde(serialize_with = "secret_url")]
    pub url: super::template::Text,
    pub events: Vec<NotifyEvent>,
    /// `None`: by the URL's host when it is known ([`NotifyFormat::for_host`]).
    pub format: Option<NotifyFormat>,
}

fn secret_url<S: serde::Serializer>(url: &super::template::Text, s: S) -> Result<S::Ok, S::Error> {
    use super::template::TextPart;
    if url.0.iter().all(|part| matches!(part, TextPart::Env(_))) {
        s.serialize_str(&url.to_string())
    } else {
        s.serialize_str("<secret>")
    }
}

/// What a webhook is told of.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum NotifyEvent {
    /// The run started.
    Start,
    /// Every task succeeded or had nothing to do.
    Success,
    /// The run went to its end with tasks failed.
    Failure,
    /// The run stopped starting work: interrupted, a failure budget, fail-fast, a rollout
    /// halted, the API unreachable, its record or its lock lost.
    Halt,
}

impl NotifyEvent {
    pub const ALL: [Self; 4] = [Self::Start, Self::Success, Self::Failure, Self::Halt];

    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Self::Start => "start",
            Self::Success => "success",
            Self::Failure => "failure",
            Self::Halt => "halt",
        }
    }
}

/// How a webhook's message is written.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum NotifyFormat {
    /// A Slack incoming webhook's `{"text": ...}`.
    Slack,
    /// The run's summary as the JSON report has it.
    Json,
}

impl NotifyFormat {
    /// Slack's format for a Slack webhook's host, JSON for any other.
    #[must_use]
    pub fn for_host(host: &str) -> Self {
        if host.eq_ignore_ascii_case("hooks.slack.com") { Self::Slack } else { Self::Json }
    }
}

/// What a failure does to the rest of the run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum OnFailure {
    /// Everything that does not depend on the failure still runs.
    Continue,
    /// Start nothing new; wait for what is in flight.
    FailFast,
}

/// A count, or a percent of a total.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Limit {
    Count(u64),
    Percent(f64),
}

impl Limit {
    /// The count for `total` items, percents rounded down (failure budgets).
    #[must_use]
    pub fn floor_of(self, total: usize) -> u64 {
        match self {
            Self::Count(n) => n,
            Self::Percent(p) => percent_of(p, total, false),
        }
    }

    /// The count for `total` items, percents rounded up and at least 1 (wave sizes).
    #[must_use]
    pub fn ceil_of(self, total: usize) -> u64 {
        match self {
            Self::Count(n) => n.max(1),
            Self::Percent(p) => percent_of(p, total, true).max(1),
        }
    }
}

fn percent_of(p: f64, total: usize, up: bool) -> u64 {
    // Exact integer arithmetic on hundredths of a percent avoids float rounding surprises
    // (10% of 30 must be 3, not 2.9999).
    #[expect(clippy::cast_possible_truncation, clippy::cast_sign_loss, reason = "p is validated to 0..=100")]
    let hundredths = (p * 100.0).round() as u64;
    let total = total as u64;
    let scaled = hundredths * total;
    if up { scaled.div_ceil(10_000) } else { scaled / 10_000 }
}

/// One job.
#[derive(Clone, Debug)]
pub struct Job {
    pub id: JobId,
    /// The job's body, for labels.
    pub span: SourceSpan,
    pub op: OperationKind,
    pub sites: Option<SiteSet>,
    pub envs: Vec<EnvPattern>,
    /// The `on.env` value, for labels.
    pub envs_span: Option<SourceSpan>,
    pub args: Vec<Arg>,
    pub matrix: Vec<Axis>,
    pub needs: Vec<Need>,
    pub on_failure: Option<OnFailure>,
    pub max_failures: Option<Limit>,
    /// The job's `max_failures` value, for labels.
    pub max_failures_span: Option<SourceSpan>,
    pub rollout: Option<Rollout>,
    /// Jobs whose tasks on a wave's sites are part of the wave (`rollout.checks`).
    pub rollout_checks: Vec<(JobId, SourceSpan)>,
    pub timeout: Option<Duration>,
    pub retries: Retries,
}

/// The sites of a job.
#[derive(Clone, Debug)]
pub struct SiteSet {
    /// The target name, when `on.sites` named one.
    pub target: Option<String>,
    pub kind: SiteSetKind,
    pub span: SourceSpan,
}

#[derive(Clone, Debug)]
pub enum SiteSetKind {
    /// Names and globs, in plan order.
    List(Vec<SitePattern>),
    Selector(Selector),
}

/// A site name or glob.
#[derive(Clone, Debug)]
pub struct SitePattern {
    pub text: String,
    pub span: SourceSpan,
}

/// A selector resolved through the API listings.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Selector {
    pub org: Option<String>,
    pub tag: Option<String>,
    pub upstream: Option<String>,
    pub framework: Option<String>,
    pub plan: Option<String>,
    pub exclude: Vec<String>,
}

/// An environment id or glob.
#[derive(Clone, Debug)]
pub struct EnvPattern {
    pub text: String,
    pub span: SourceSpan,
}

/// One `with` option, validated against its type.
#[derive(Clone, Debug)]
pub struct Arg {
    pub name: &'static str,
    pub ty: OptType,
    pub value: ArgTemplate,
    pub span: SourceSpan,
}

/// How an option's value is obtained for each task.
#[derive(Clone, Debug)]
pub enum ArgTemplate {
    /// Already typed.
    Fixed(ArgValue),
    /// Text with `${{ ... }}` references (text-like types only).
    Template(Template),
    /// A whole `${{ matrix.NAME }}` for a typed option; every value of the axis was checked.
    Matrix(String),
}

/// One matrix axis.
#[derive(Clone, Debug)]
pub struct Axis {
    pub name: String,
    pub span: SourceSpan,
    pub values: Vec<Scalar>,
}

/// One `needs` entry.
#[derive(Clone, Debug)]
pub struct Need {
    pub job: JobId,
    pub scope: NeedScope,
    pub optional: bool,
    pub span: SourceSpan,
}

/// Which tasks of the needed job a task waits for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NeedScope {
    /// Tasks on the same site.
    Site,
    /// Every task (a barrier).
    All,
}

/// Rollout waves.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Rollout {
    pub first: Limit,
    pub then: Option<Limit>,
    pub max_failures: Limit,
}

/// Retries of transient failures.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Retries {
    /// Total tries, the first included.
    pub attempts: u32,
    #[serde(with = "humantime_serde_compat")]
    pub backoff: Duration,
}

impl Default for Retries {
    fn default() -> Self {
        Self { attempts: 1, backoff: Duration::from_secs(10) }
    }
}

/// Durations serialize as humantime strings (`"45m"`) in saved plans and JSON output.
pub(crate) mod humantime_serde_compat {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub(crate) fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&humantime::format_duration(*d).to_string())
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let text = String::deserialize(d)?;
        humantime::parse_duration(&text).map_err(serde::de::Error::custom)
    }
}

pub(crate) mod opt_duration {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    #[expect(clippy::ref_option, reason = "serde's `with` passes a reference to the field")]
    pub(crate) fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => super::humantime_serde_compat::serialize(d, s),
            None => s.serialize_none(),
        }
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        Option::<String>::deserialize(d)?
            .map(|t| humantime::parse_duration(&t).map_err(serde::de::Error::custom))
            .transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percents_round_as_documented() {
        assert_eq!(Limit::Percent(10.0).floor_of(30), 3);
        assert_eq!(Limit::Percent(10.0).floor_of(9), 0);
        assert_eq!(Limit::Percent(25.0).ceil_of(10), 3);
        assert_eq!(Limit::Percent(1.0).ceil_of(3), 1);
        assert_eq!(Limit::Count(0).ceil_of(3), 1);
        assert_eq!(Limit::Percent(100.0).ceil_of(7), 7);
    }
}
