//! [`PlanRaw`] → [`Plan`]: checks every value offline and collects every error with its span.
//! No I/O, no network: site names and selectors are checked for form here and resolved later.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use miette::SourceSpan;
use petgraph::algo::tarjan_scc;
use petgraph::graph::{DiGraph, NodeIndex};
use serde_saphyr::Spanned;

use super::error::{ErrorCode, PlanError, did_you_mean};
use super::model::{
    Arg, ArgTemplate, Axis, EnvPattern, Job, Limit, Need, NeedScope, NotifyEvent, NotifyFormat, OnFailure, Plan,
    PlanSettings, Retries, Rollout, Selector, SitePattern, SiteSet, SiteSetKind, Webhook,
};
use super::ops::{
    ArgValue, EnvRule, OperationKind, OptType, Scalar, Scope, check_env_glob, check_env_id, convert_scalar,
};
use super::parse::span_of;
use super::raw::{
    CountOrPercent, EnvsRaw, JobRaw, NeedRaw, NotifyRaw, OnRaw, PlanRaw, SelectorRaw, SettingsRaw, SitesRaw,
    SpannedMap, Value,
};
use super::template::{Template, Text, TextPart, Var};
use tb_core::glob::is_glob;
use tb_core::graph::shortest_loop;
use tb_core::ids::JobId;

/// Most values a matrix axis may list; the task cap applies to the product later.
pub const MAX_AXIS_VALUES: usize = 1_000;
/// Most jobs in one plan.
pub const MAX_JOBS: usize = 1_000;

/// Validates a parsed plan, returning every error found, in file order.
///
/// # Errors
/// Every problem found, each with a stable code and the location of the offending value.
pub fn validate(raw: &PlanRaw) -> Result<Plan, Vec<PlanError>> {
    let mut v = Validator { errors: Vec::new() };
    let plan = v.plan(raw);
    if v.errors.is_empty() {
        Ok(plan)
    } else {
        v.errors.sort_by_key(PlanError::offset);
        Err(v.errors)
    }
}

struct Validator {
    errors: Vec<PlanError>,
}

impl Validator {
    fn push(&mut self, error: PlanError) {
        self.errors.push(error);
    }

    fn plan(&mut self, raw: &PlanRaw) -> Plan {
        if raw.version.value != 1 {
            self.push(
                PlanError::new(ErrorCode::BadVersion, format!("unsupported plan version {}", raw.version.value))
                    .at(span_of(&raw.version), "this version")
                    .help("this terminus-batch reads `version: 1`"),
            );
        }
        let settings = raw.settings.as_ref().map(|s| self.settings(s)).unwrap_or_default();

        let mut targets: BTreeMap<&str, (SiteSetKind, SourceSpan)> = BTreeMap::new();
        for entry in raw.targets.iter() {
            let span = span_of(&entry.value);
            match &entry.value.value {
                SitesRaw::Name(other) => self.push(
                    PlanError::new(
                        ErrorCode::BadValue,
                        format!("target `{}` names another target (`{other}`)", entry.key.value),
                    )
                    .at(span, "a target is a list of sites or a selector")
                    .help("write the site list or the selector here"),
                ),
                sites => {
                    if let Some(kind) = self.site_set_kind(sites) {
                        targets.insert(&entry.key.value, (kind, span));
                    }
                }
            }
        }
        let target_names: Vec<&str> = raw.targets.iter().map(|e| e.key.value.as_str()).collect();

        if raw.jobs.0.len() > MAX_JOBS {
            self.push(PlanError::new(
                ErrorCode::TooLarge,
                format!("the plan has {} jobs, over the limit of {MAX_JOBS}", raw.jobs.0.len()),
            ));
        }
        if raw.jobs.is_empty() {
            self.push(
                PlanError::new(ErrorCode::MissingKey, "the plan has no jobs")
                    .help("declare at least one job under `jobs:`"),
            );
        }
        let job_names: BTreeSet<&str> = raw.jobs.iter().map(|e| e.key.value.as_str()).collect();
        let mut jobs = Vec::new();
        for entry in raw.jobs.iter() {
            let name = &entry.key.value;
            if !valid_job_name(name) {
                self.push(
                    PlanError::new(ErrorCode::BadValue, format!("job name `{name}` is not valid"))
                        .at(span_of(&entry.key), "job name")
                        .help("job names use letters, digits, `-` and `_`"),
                );
            }
            let ctx = JobCtx { name, targets: &targets, target_names: &target_names, job_names: &job_names };
            if let Some(job) = self.job(&ctx, &entry.value, span_of(&entry.key)) {
                jobs.push(job);
            }
        }
        self.check_limits(&settings, &jobs);
        self.check_rollout_checks(&jobs);
        // From every job as written, valid or not, so that a cycle is said together with a
        // job's other errors (every error at once).
        let needs: Vec<(&str, Vec<(&str, SourceSpan)>)> = raw
            .jobs
            .iter()
            .map(|entry| {
                let needs = entry.value.value.needs.iter().map(|need| {
                    let name = match &need.value {
                        NeedRaw::Job(name) => name.as_str(),
                        NeedRaw::Full(full) => full.job.value.as_str(),
                    };
                    (name, span_of(need))
                });
                (entry.key.value.as_str(), needs.collect())
            })
            .collect();
        self.check_cycles(&needs);
        Plan { name: raw.name.as_ref().map(|n| n.value.clone()), settings, jobs }
    }

    /// `rollout.checks`: each a job that needs the rolled-out job, has no rollout of its
    /// own, and checks one rollout only.
    fn check_rollout_checks(&mut self, jobs: &[Job]) {
        let mut seen: BTreeMap<&str, &str> = BTreeMap::new();
        for job in jobs {
            for (check, span) in &job.rollout_checks {
                let Some(checker) = jobs.iter().find(|j| j.id == *check) else {
                    self.push(
                        PlanError::new(
                            ErrorCode::UnknownNeed,
                            format!("rollout of `{}` checks with `{check}`, which is not defined", job.id),
                        )
                        .at(*span, "not a job")
                        .help_opt(did_you_mean(check.as_str(), jobs.iter().map(|j| j.id.as_str()))),
                    );
                    continue;
                };
                let why = if checker.id == job.id {
                    Some("a job cannot check its own rollout".to_owned())
                } else if !checker.needs.iter().any(|n| n.job == job.id && n.scope == NeedScope::Site) {
                    Some(format!("`{check}` must need `{}` (per site) to check its waves", job.id))
                } else if checker.rollout.is_some() {
                    Some(format!("`{check}` has a rollout of its own; its tasks follow `{}`'s waves", job.id))
                } else {
                    seen.insert(check.as_str(), job.id.as_str())
                        .map(|other| format!("`{check}` already checks the rollout of `{other}`"))
                };
                if let Some(why) = why {
                    self.push(
                        PlanError::new(ErrorCode::BadValue, format!("rollout of `{}`: {why}", job.id))
                            .at(*span, "checks here")
                            .help(format!("write `needs: [{}]` in `{check}`, and no `rollout:` there", job.id)),
                    );
                }
            }
        }
    }

    fn settings(&mut self, raw: &SettingsRaw) -> PlanSettings {
        PlanSettings {
            concurrency: raw.concurrency.as_ref().and_then(|c| self.positive(c, "concurrency")),
            per_site: raw.per_site.as_ref().and_then(|c| self.positive(c, "per_site")),
            max_requests: raw.max_requests.as_ref().and_then(|c| self.positive(c, "max_requests")),
            burst: raw.burst.as_ref().and_then(|c| self.positive(c, "burst")),
            requests_per_second: raw.requests_per_second.as_ref().and_then(|r| {
                if r.value.is_finite() && r.value > 0.0 && r.value <= 10_000.0 {
                    Some(r.value)
                } else {
                    self.push(
                        PlanError::new(
                            ErrorCode::BadValue,
                            format!("requests_per_second must be above 0 and at most 10000, found {}", r.value),
                        )
                        .at(span_of(r), "out of range"),
                    );
                    None
                }
            }),
            on_failure: raw.on_failure.as_ref().and_then(|s| self.on_failure(s)),
            max_failures: raw.max_failures.as_ref().map(Self::limit),
            timeout: raw.timeout.as_ref().and_then(|t| self.duration(t, "timeout")),
            notify: raw.notify.iter().filter_map(|w| self.webhook(w)).collect(),
            state: raw.state.as_ref().and_then(|s| match tb_core::location::Location::parse(&s.value) {
                Ok(_) if !s.value.trim().is_empty() => Some(s.value.clone()),
                Ok(_) => {
                    self.push(
                        PlanError::new(ErrorCode::BadValue, "state must name a directory or an object store")
                            .at(span_of(s), "empty"),
                    );
                    None
                }
                Err(e) => {
                    self.push(PlanError::new(ErrorCode::BadValue, e).at(span_of(s), "not a state location"));
                    None
                }
            }),
        }
    }

    /// One webhook of `settings.notify`: its URL (literal, or process environment
    /// references), the events it wants and its format.
    fn webhook(&mut self, raw: &Spanned<NotifyRaw>) -> Option<Webhook> {
        let raw = &raw.value;
        let span = span_of(&raw.url);
        let bad = |message: String| PlanError::new(ErrorCode::BadValue, format!("settings.notify: {message}"));
        let template = match Template::parse(&raw.url.value) {
            Ok(t) => t,
            Err(e) => {
                let code = if e.unknown_name { ErrorCode::UnknownVariable } else { ErrorCode::BadTemplate };
                self.push(PlanError::new(code, e.message).at(span, "in this URL").help_opt(e.help));
                return None;
            }
        };
        if let Some((var, _, _)) = template.vars().find(|(var, _, _)| !matches!(var, Var::ProcessEnv(_))) {
            self.push(
                bad(format!("a webhook URL may read only the process environment, not `{var}`"))
                    .at(span, "here")
                    .help("write `url: ${{ env.SLACK_WEBHOOK }}` and set the variable"),
            );
            return None;
        }
        let url = render(&template, None, None, &[]);
        let mut format = None;
        if let Some(literal) = url.as_literal() {
            match webhook_host(&literal) {
                Ok(host) => format = Some(NotifyFormat::for_host(&host)),
                Err(why) => {
                    self.push(bad(why).at(span, "not a webhook URL"));
                    return None;
                }
            }
        }
        if let Some(f) = &raw.format {
            format = match f.value.as_str() {
                "slack" => Some(NotifyFormat::Slack),
                "json" => Some(NotifyFormat::Json),
                other => {
                    self.push(
                        bad(format!("unknown format `{other}`"))
                            .at(span_of(f), "expected `slack` or `json`")
                            .help_opt(did_you_mean(other, ["slack", "json"])),
                    );
                    return None;
                }
            };
        }
        let events = match &raw.events {
            None => vec![NotifyEvent::Failure, NotifyEvent::Halt],
            Some(list) if list.is_empty() => {
                self.push(bad("a webhook wants at least one event".to_owned()).at(span, "this webhook"));
                return None;
            }
            Some(list) => {
                let mut events = Vec::new();
                for e in list {
                    match NotifyEvent::ALL.into_iter().find(|k| k.name() == e.value) {
                        Some(event) if !events.contains(&event) => events.push(event),
                        Some(_) => {}
                        None => {
                            self.push(
                                bad(format!("unknown event `{}`", e.value))
                                    .at(span_of(e), "expected start, success, failure or halt")
                                    .help_opt(did_you_mean(&e.value, NotifyEvent::ALL.map(NotifyEvent::name))),
                            );
                            return None;
                        }
                    }
                }
                events
            }
        };
        Some(Webhook { url, events, format })
    }

    fn positive(&mut self, value: &Spanned<u32>, what: &str) -> Option<u32> {
        if value.value == 0 {
            self.push(
                PlanError::new(ErrorCode::BadValue, format!("{what} must be at least 1")).at(span_of(value), "zero"),
            );
            None
        } else {
            Some(value.value)
        }
    }

    fn on_failure(&mut self, value: &Spanned<String>) -> Option<OnFailure> {
        match value.value.as_str() {
            "continue" => Some(OnFailure::Continue),
            "fail-fast" => Some(OnFailure::FailFast),
            other => {
                self.push(
                    PlanError::new(ErrorCode::BadValue, format!("unknown on_failure `{other}`"))
                        .at(span_of(value), "expected `continue` or `fail-fast`")
                        .help_opt(did_you_mean(other, ["continue", "fail-fast"])),
                );
                None
            }
        }
    }

    fn limit(value: &Spanned<CountOrPercent>) -> Limit {
        match value.value {
            CountOrPercent::Count(n) => Limit::Count(n),
            CountOrPercent::Percent(p) => Limit::Percent(p),
        }
    }

    fn duration(&mut self, value: &Spanned<String>, what: &str) -> Option<Duration> {
        match humantime::parse_duration(value.value.trim()) {
            Ok(d) if d.is_zero() => {
                self.push(
                    PlanError::new(ErrorCode::BadValue, format!("{what} must be longer than zero"))
                        .at(span_of(value), "zero"),
                );
                None
            }
            Ok(d) if d > Duration::from_secs(30 * 24 * 3600) => {
                self.push(
                    PlanError::new(ErrorCode::BadValue, format!("{what} of `{}` is longer than 30 days", value.value))
                        .at(span_of(value), "too long"),
                );
                None
            }
            Ok(d) => Some(d),
            Err(e) => {
                self.push(
                    PlanError::new(ErrorCode::BadValue, format!("{what} `{}` is not a duration: {e}", value.value))
                        .at(span_of(value), "not a duration")
                        .help("write durations like `90s`, `45m` or `2h 30m`"),
                );
                None
            }
        }
    }

    fn site_set_kind(&mut self, raw: &SitesRaw) -> Option<SiteSetKind> {
        match raw {
            SitesRaw::Name(_) => None,
            SitesRaw::List(items) => {
                let mut out = Vec::new();
                for item in items {
                    match check_site_pattern(&item.value) {
                        Ok(()) => out.push(SitePattern { text: item.value.clone(), span: span_of(item) }),
                        Err(why) => self.push(
                            PlanError::new(ErrorCode::BadValue, format!("`{}` is not a site name or glob", item.value))
                                .at(span_of(item), why),
                        ),
                    }
                }
                Some(SiteSetKind::List(out))
            }
            SitesRaw::Selector(sel) => Some(SiteSetKind::Selector(self.selector(sel))),
        }
    }

    fn selector(&mut self, raw: &SelectorRaw) -> Selector {
        let text = |s: &Option<Spanned<String>>| s.as_ref().map(|s| s.value.clone());
        for item in &raw.exclude {
            if let Err(why) = check_site_pattern(&item.value) {
                self.push(
                    PlanError::new(ErrorCode::BadValue, format!("`{}` is not a site name or glob", item.value))
                        .at(span_of(item), why),
                );
            }
        }
        Selector {
            org: text(&raw.org),
            tag: text(&raw.tag),
            upstream: text(&raw.upstream),
            framework: text(&raw.framework),
            plan: text(&raw.plan),
            exclude: raw.exclude.iter().map(|e| e.value.clone()).collect(),
        }
    }

    fn job(&mut self, ctx: &JobCtx<'_>, raw: &Spanned<JobRaw>, key_span: SourceSpan) -> Option<Job> {
        let body = &raw.value;
        let op = if let Some(op) = OperationKind::from_name(&body.run.value) {
            Some(op)
        } else {
            self.push(
                PlanError::new(ErrorCode::UnknownOperation, format!("unknown operation `{}`", body.run.value))
                    .at(span_of(&body.run), "not an operation")
                    .help_opt(did_you_mean(&body.run.value, OperationKind::ALL.iter().map(|k| k.name())).or_else(
                        || Some("see the operations table in the README, or `terminus-batch schema`".to_owned()),
                    )),
            );
            None
        };

        let (sites, envs, envs_span) = self.on(ctx, body, op, key_span);
        let matrix = self.matrix(&body.matrix);
        let args = op.map(|op| self.args(op, body, &matrix, key_span)).unwrap_or_default();
        let needs = self.needs(ctx, body);
        let on_failure = body.on_failure.as_ref().and_then(|s| self.on_failure(s));
        let max_failures = body.max_failures.as_ref().map(Self::limit);
        let rollout = body.rollout.as_ref().map(|r| Rollout {
            first: Self::limit(&r.value.first),
            then: r.value.then.as_ref().map(Self::limit),
            max_failures: r.value.max_failures.as_ref().map_or(Limit::Count(0), Self::limit),
        });
        if let Some(r) = &body.rollout {
            for (value, what) in [(Some(&r.value.first), "first"), (r.value.then.as_ref(), "then")] {
                if let Some(v) = value
                    && (matches!(v.value, CountOrPercent::Count(0))
                        || matches!(v.value, CountOrPercent::Percent(p) if p <= 0.0))
                {
                    self.push(
                        PlanError::new(ErrorCode::BadValue, format!("rollout `{what}` must be at least 1 task"))
                            .at(span_of(v), "empty wave"),
                    );
                }
            }
        }
        let timeout = body.timeout.as_ref().and_then(|t| self.duration(t, "timeout"));
        let retries = match &body.retries {
            None => Retries::default(),
            Some(r) => {
                let attempts = r.value.attempts.value;
                if attempts == 0 || attempts > 100 {
                    self.push(
                        PlanError::new(
                            ErrorCode::BadValue,
                            format!("retries `attempts` must be from 1 to 100, found {attempts}"),
                        )
                        .at(span_of(&r.value.attempts), "out of range")
                        .help("`attempts` counts every try, the first included"),
                    );
                }
                let backoff = r
                    .value
                    .backoff
                    .as_ref()
                    .and_then(|b| self.duration(b, "backoff"))
                    .unwrap_or(Retries::default().backoff);
                Retries { attempts: attempts.clamp(1, 100), backoff }
            }
        };
        Some(Job {
            id: JobId::new(ctx.name),
            span: key_span,
            op: op?,
            sites,
            envs,
            envs_span,
            args,
            matrix,
            needs,
            on_failure,
            max_failures,
            max_failures_span: body.max_failures.as_ref().map(span_of),
            rollout,
            rollout_checks: body
                .rollout
                .as_ref()
                .map(|r| r.value.checks.iter().map(|c| (JobId::new(&c.value), span_of(c))).collect())
                .unwrap_or_default(),
            timeout,
            retries,
        })
    }

    /// A job's `on`: its sites, its environment patterns, and the span of `on.env`, each
    /// checked against what its operation's scope takes.
    fn on(
        &mut self,
        ctx: &JobCtx<'_>,
        body: &JobRaw,
        op: Option<OperationKind>,
        key_span: SourceSpan,
    ) -> (Option<SiteSet>, Vec<EnvPattern>, Option<SourceSpan>) {
        let on = body.on.as_ref();
        let sites_raw = on.and_then(|o| o.value.sites.as_ref());
        let env_raw = on.and_then(|o| o.value.env.as_ref());
        let sites = sites_raw.and_then(|s| self.on_sites(ctx, s));
        let envs = env_raw.map(|e| self.on_envs(op, e)).unwrap_or_default();
        if let Some(op) = op {
            self.on_scope(op, on, sites_raw.is_some(), env_raw, key_span);
        }
        (sites, envs, env_raw.map(span_of))
    }

    /// `on.sites`: a target's name, a list, or a selector.
    fn on_sites(&mut self, ctx: &JobCtx<'_>, s: &Spanned<SitesRaw>) -> Option<SiteSet> {
        let span = span_of(s);
        match &s.value {
            SitesRaw::Name(name) => {
                if let Some((kind, _)) = ctx.targets.get(name.as_str()) {
                    Some(SiteSet { target: Some(name.clone()), kind: kind.clone(), span })
                } else {
                    // A target that failed its own validation is already reported.
                    if !ctx.target_names.contains(&name.as_str()) {
                        self.push(
                            PlanError::new(ErrorCode::UnknownTarget, format!("unknown target `{name}`"))
                                .at(span, "not a target name")
                                .help_opt(did_you_mean(name, ctx.target_names.iter().copied()).or_else(|| {
                                    // A glob written alone reads as a target's name.
                                    Some(if name.contains(['*', '?', '[']) {
                                        format!("a glob goes in a list: `sites: [\"{name}\"]`")
                                    } else {
                                        "declare it under `targets:`, or write a list: `[site-a, site-b]`".to_owned()
                                    })
                                })),
                        );
                    }
                    None
                }
            }
            other => self.site_set_kind(other).map(|kind| SiteSet { target: None, kind, span }),
        }
    }

    /// `on.env`: environment ids and globs, each valid and one its operation runs on.
    fn on_envs(&mut self, op: Option<OperationKind>, e: &Spanned<EnvsRaw>) -> Vec<EnvPattern> {
        let mut envs = Vec::new();
        let items: Vec<(String, SourceSpan)> = match &e.value {
            EnvsRaw::One(s) => vec![(s.0.clone(), span_of(e))],
            EnvsRaw::Many(list) => list.iter().map(|s| (s.value.0.clone(), span_of(s))).collect(),
        };
        if items.is_empty() {
            self.push(
                PlanError::new(ErrorCode::BadValue, "`on.env` is an empty list").at(span_of(e), "no environment"),
            );
        }
        for (text, span) in items {
            let glob = is_glob(&text);
            let form = if glob { check_env_glob(&text) } else { check_env_id(&text) };
            if let Err(why) = form {
                let lower = text.to_ascii_lowercase();
                let hint = if lower != text && check_env_id(&lower).is_ok() {
                    format!("did you mean `{lower}`? environment ids are lowercase")
                } else {
                    did_you_mean(&lower, ["dev", "test", "live"]).unwrap_or_else(|| {
                        "environments are dev, test, live, or a multidev: lowercase letters, digits and `-`, at most 11 characters".to_owned()
                    })
                };
                self.push(
                    PlanError::new(ErrorCode::BadEnvId, format!("`{text}` is not a valid environment id"))
                        .at(span, why)
                        .help(hint),
                );
                continue;
            }
            if let Some(op) = op {
                let rule = op.env_rule();
                if op.scope() == Scope::Env
                    && ((!glob && !rule.allows(&text)) || (glob && rule == EnvRule::NewMultidev))
                {
                    self.push(
                        PlanError::new(ErrorCode::EnvNotAllowed, format!("`{}` does not run on `{text}`", op.name()))
                            .at(span, format!("{} needs {}", op.name(), rule.describe()))
                            .help_opt(env_help(op, rule)),
                    );
                    continue;
                }
            }
            envs.push(EnvPattern { text, span });
        }
        envs
    }

    /// What the operation's scope takes: nothing (account), `on.sites` alone (site), or both
    /// `on.sites` and `on.env` (environment).
    fn on_scope(
        &mut self,
        op: OperationKind,
        on: Option<&Spanned<OnRaw>>,
        has_sites: bool,
        env_raw: Option<&Spanned<EnvsRaw>>,
        key_span: SourceSpan,
    ) {
        match op.scope() {
            Scope::Account => {
                if let Some(on) = on {
                    self.push(
                        PlanError::new(
                            ErrorCode::ScopeMismatch,
                            format!("`{}` is an account operation and takes no `on`", op.name()),
                        )
                        .at(span_of(on), "remove this")
                        .help("account operations run once for the whole account"),
                    );
                }
            }
            Scope::Site => {
                if !has_sites {
                    self.push(
                        PlanError::new(ErrorCode::ScopeMismatch, format!("`{}` needs `on.sites`", op.name()))
                            .at(on.map_or(key_span, span_of), "no sites given")
                            .help("add `on: { sites: <target or list> }`"),
                    );
                }
                if let Some(e) = env_raw {
                    self.push(
                        PlanError::new(
                            ErrorCode::EnvNotAllowed,
                            format!("`{}` is a site operation and takes no `on.env`", op.name()),
                        )
                        .at(span_of(e), "remove this")
                        .help("site operations run once per site"),
                    );
                }
            }
            Scope::Env => {
                if !has_sites || env_raw.is_none() {
                    let missing = match (!has_sites, env_raw.is_none()) {
                        (true, true) => "`on.sites` and `on.env`",
                        (true, false) => "`on.sites`",
                        _ => "`on.env`",
                    };
                    self.push(
                        PlanError::new(ErrorCode::ScopeMismatch, format!("`{}` needs {missing}", op.name()))
                            .at(on.map_or(key_span, span_of), format!("{missing} missing"))
                            .help("environment operations need `on: { sites: ..., env: ... }`"),
                    );
                }
            }
        }
    }

    fn matrix(&mut self, raw: &SpannedMap<Value>) -> Vec<Axis> {
        let mut axes = Vec::new();
        for entry in raw.iter() {
            let name = &entry.key.value;
            if !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-') || name.is_empty() {
                self.push(
                    PlanError::new(ErrorCode::BadMatrix, format!("matrix axis `{name}` is not a valid name"))
                        .at(span_of(&entry.key), "axis name")
                        .help("axis names use letters, digits, `-` and `_`"),
                );
                continue;
            }
            let Value::List(items) = &entry.value.value else {
                self.push(
                    PlanError::new(
                        ErrorCode::BadMatrix,
                        format!("matrix axis `{name}` must be a list, found {}", entry.value.value.kind()),
                    )
                    .at(span_of(&entry.value), "not a list")
                    .help(format!("write `{name}: [a, b]`")),
                );
                continue;
            };
            if items.is_empty() || items.len() > MAX_AXIS_VALUES {
                self.push(
                    PlanError::new(
                        ErrorCode::BadMatrix,
                        format!("matrix axis `{name}` has {} values; it needs 1 to {MAX_AXIS_VALUES}", items.len()),
                    )
                    .at(span_of(&entry.value), "here"),
                );
                continue;
            }
            let mut values = Vec::new();
            for item in items {
                match scalar(&item.value) {
                    Some(s) => {
                        if values.contains(&s) {
                            self.push(
                                PlanError::new(ErrorCode::BadMatrix, format!("matrix axis `{name}` lists `{s}` twice"))
                                    .at(span_of(item), "repeated value"),
                            );
                        } else {
                            values.push(s);
                        }
                    }
                    None => self.push(
                        PlanError::new(
                            ErrorCode::BadMatrix,
                            format!("matrix values must be scalars, found {}", item.value.kind()),
                        )
                        .at(span_of(item), "not a scalar"),
                    ),
                }
            }
            axes.push(Axis { name: name.clone(), span: span_of(&entry.key), values });
        }
        axes
    }

    fn args(&mut self, op: OperationKind, body: &JobRaw, matrix: &[Axis], key_span: SourceSpan) -> Vec<Arg> {
        let mut args = Vec::new();
        for entry in body.with.iter() {
            let key = &entry.key.value;
            let Some(spec) = op.option(key) else {
                let names: Vec<&str> = op.options().iter().map(|o| o.name).collect();
                let help = if names.is_empty() {
                    Some(format!("`{}` takes no options", op.name()))
                } else {
                    did_you_mean(key, names.iter().copied())
                        .or_else(|| Some(format!("`{}` takes: {}", op.name(), names.join(", "))))
                };
                let snake_hint = (key.contains('_') && op.option(&key.replace('_', "-")).is_some())
                    .then(|| format!("options use terminus's flag names in kebab-case: `{}`", key.replace('_', "-")));
                self.push(
                    PlanError::new(ErrorCode::BadOption, format!("`{}` has no option `{key}`", op.name()))
                        .at(span_of(&entry.key), "unknown option")
                        .help_opt(snake_hint.or(help)),
                );
                continue;
            };
            let span = span_of(&entry.value);
            let bad = |message: String| {
                PlanError::new(ErrorCode::BadOption, format!("option `{key}` of `{}`: {message}", op.name()))
                    .at(span, format!("expected {}", spec.ty.describe()))
            };
            let value =
                match &entry.value.value {
                    Value::Null => Err(Some(bad("has no value".to_owned()))),
                    Value::List(items) if spec.ty == OptType::Words => {
                        let words: Option<Vec<String>> =
                            items.iter().map(|item| scalar(&item.value).map(|sc| sc.to_string())).collect();
                        match words {
                            None => Err(Some(bad("each word must be a plain value".to_owned()))),
                            Some(words) if words.iter().any(|w| w.contains("${{")) => Err(Some(bad(
                                "command words are sent as written: `${{ ... }}` is not expanded in them".to_owned(),
                            ))),
                            Some(words) => crate::plan::ops::check_words(&words)
                                .map(|()| ArgTemplate::Fixed(ArgValue::Words(words)))
                                .map_err(|m| Some(bad(m))),
                        }
                    }
                    Value::List(items) if spec.ty == OptType::Statuses => {
                        let codes: Option<Vec<u16>> = items
                            .iter()
                            .map(|item| match item.value {
                                Value::Int(i) => crate::plan::ops::http_status(i),
                                _ => None,
                            })
                            .collect();
                        match codes {
                            Some(codes) if !codes.is_empty() => Ok(ArgTemplate::Fixed(ArgValue::Statuses(codes))),
                            _ => Err(Some(bad("each status is a number from 100 to 599".to_owned()))),
                        }
                    }
                    Value::Str(_) if spec.ty == OptType::Words => Err(Some(
                        bad("expected a list of words, found a string".to_owned())
                            .help("write each word apart, never a shell string: `command: [updb, -y]`"),
                    )),
                    Value::List(_) => Err(Some(bad(format!("expected {}, found a list", spec.ty.describe())).help(
                        "to run once per value, put the list under `matrix:` and write `${{ matrix.NAME }}` here",
                    ))),
                    Value::Str(s) if s.contains("${{") => self.template_arg(op, spec.ty, s, span, matrix, &bad),
                    other => match scalar(other) {
                        Some(sc) => match spec.ty {
                            OptType::Text | OptType::Name | OptType::Dir => {
                                Ok(ArgTemplate::Fixed(ArgValue::Text(Text::literal(sc.to_string()))))
                            }
                            ty => convert_scalar(ty, &sc)
                                .map(ArgTemplate::Fixed)
                                .map_err(|m| Some(bad(m).help_opt(secret_help(ty).or_else(|| value_hint(ty, &sc))))),
                        },
                        None => Err(Some(bad(format!("expected {}", spec.ty.describe())))),
                    },
                };
            match value {
                Ok(value) => args.push(Arg { name: spec.name, ty: spec.ty, value, span }),
                Err(Some(e)) => self.push(e),
                Err(None) => {}
            }
        }
        self.conflicts(op, &args);
        for spec in op.options().iter().filter(|o| o.required) {
            if body.with.get(spec.name).is_none() {
                self.push(
                    PlanError::new(
                        ErrorCode::MissingOption,
                        format!("`{}` needs the option `{}`", op.name(), spec.name),
                    )
                    .at(key_span, format!("`with: {{ {}: ... }}` missing", spec.name))
                    .help(format!("`{}` is {}", spec.name, spec.ty.describe())),
                );
            }
        }
        args
    }

    /// Options that make no sense together, as terminus refuses them (or would do nothing).
    fn conflicts(&mut self, op: OperationKind, args: &[Arg]) {
        let arg = |name: &str| args.iter().find(|a| a.name == name);
        let set = |name: &str| arg(name).filter(|a| matches!(a.value, ArgTemplate::Fixed(ArgValue::Bool(true))));
        if op == OperationKind::HttpCheck
            && let Some(path) = arg("path")
            && let ArgTemplate::Fixed(ArgValue::Text(text)) = &path.value
            && let Some(path_text) = text.as_literal()
            && !path_text.starts_with('/')
        {
            self.push(
                PlanError::new(ErrorCode::BadOption, format!("option `path` of `http:check`: `{path_text}` is not a path"))
                    .at(path.span, "a path on the site starts with `/`")
                    .help("the host is the environment's own (`domain: platform` or `primary`); write only the path, e.g. `/user/login`"),
            );
        }
        if op == OperationKind::EnvCloneContent
            && let (Some(db), Some(files)) = (set("db-only"), set("files-only"))
        {
            self.push(
                PlanError::new(ErrorCode::BadOption, "`db-only` and `files-only` together would clone nothing")
                    .at(db.span, "only the database")
                    .at(files.span, "only the files")
                    .help("keep one of them, or neither to clone both"),
            );
        }
        if op == OperationKind::BackupRestore {
            let element = arg("element")
                .filter(|a| !matches!(a.value, ArgTemplate::Fixed(ArgValue::Element(super::ops::BackupElement::All))));
            if let (Some(file), Some(element)) = (arg("file"), element) {
                self.push(
                    PlanError::new(
                        ErrorCode::BadOption,
                        "`file` and `element` cannot be given together (terminus refuses them too)",
                    )
                    .at(file.span, "this file")
                    .at(element.span, "and this element")
                    .help("a file names its element: drop `element`"),
                );
            }
        }
    }

    /// Validates a string with `${{ ... }}`. `Err(None)` means the error was already pushed.
    fn template_arg(
        &mut self,
        op: OperationKind,
        ty: OptType,
        text: &str,
        span: SourceSpan,
        matrix: &[Axis],
        bad: &dyn Fn(String) -> PlanError,
    ) -> Result<ArgTemplate, Option<PlanError>> {
        let template = match Template::parse(text) {
            Ok(t) => t,
            Err(e) => {
                let code = if e.unknown_name { ErrorCode::UnknownVariable } else { ErrorCode::BadTemplate };
                return Err(Some(PlanError::new(code, e.message).at(span, "in this value").help_opt(e.help)));
            }
        };
        let mut ok = true;
        for (var, _, _) in template.vars() {
            let problem = match var {
                Var::Site if op.scope() == Scope::Account => {
                    Some("`site` is not defined for account operations".to_owned())
                }
                Var::Env if op.scope() != Scope::Env => {
                    Some(format!("`env` is not defined for {} operations", scope_name(op.scope())))
                }
                Var::Matrix(name) if !matrix.iter().any(|a| &a.name == name) => {
                    Some(format!("the job has no matrix axis `{name}`"))
                }
                _ => None,
            };
            // A secret in a text goes to the platform in clear (a deploy note is shown to the
            // whole site team): only the options meant for secrets may read one.
            if let Var::ProcessEnv(name) = var
                && ty != OptType::Secret
                && looks_secret(name)
            {
                ok = false;
                self.push(
                        PlanError::new(
                            ErrorCode::BadOption,
                            format!("`env.{name}` looks like a secret, and this value is sent to the platform in clear"),
                        )
                        .at(span, "the secret would be sent here")
                        .help("only options meant for secrets (the lock password) may read a variable named like a token, password, key, credential, session or cookie (README, \"Secrets in plans\")"),
                    );
                continue;
            }
            if let Some(problem) = problem {
                ok = false;
                let help = match var {
                    Var::Matrix(name) => did_you_mean(name, matrix.iter().map(|a| a.name.as_str()))
                        .map(|h| h.replace("`?", "` (matrix axis)?"))
                        .or_else(|| Some("declare the axis under `matrix:`".to_owned())),
                    Var::Env => Some("for a process environment variable write `${{ env.NAME }}`".to_owned()),
                    _ => None,
                };
                self.push(
                    PlanError::new(ErrorCode::UnknownVariable, format!("unknown name `{var}`: {problem}"))
                        .at(span, "referenced here")
                        .help_opt(help),
                );
            }
        }
        if !ok {
            return Err(None);
        }
        match ty {
            OptType::Secret => match template.single_var() {
                Some(Var::ProcessEnv(name)) => Ok(ArgTemplate::Fixed(ArgValue::Secret(name.clone()))),
                _ => Err(Some(bad("a secret must be exactly `${{ env.NAME }}`".to_owned()))),
            },
            t if t.takes_text() => {
                if ty == OptType::Domain {
                    // Check the literal parts now; the rendered name is checked at expansion.
                    for seg in &template.segments {
                        if let super::template::Segment::Lit(lit) = seg
                            && lit.chars().any(|c| !(c.is_ascii_alphanumeric() || c == '-' || c == '.'))
                        {
                            return Err(Some(bad(format!("`{text}` cannot become a domain name"))));
                        }
                    }
                }
                Ok(ArgTemplate::Template(template))
            }
            ty => match template.single_var() {
                Some(Var::Matrix(axis_name)) => {
                    let axis = matrix.iter().find(|a| &a.name == axis_name);
                    let mut all_ok = true;
                    for value in axis.map(|a| a.values.as_slice()).unwrap_or_default() {
                        if let Err(why) = convert_scalar(ty, value) {
                            all_ok = false;
                            self.push(
                                bad(format!("matrix value `{value}` of `{axis_name}` does not fit: {why}"))
                                    .at(axis.map_or(span, |a| a.span), "axis declared here"),
                            );
                        }
                    }
                    if all_ok { Ok(ArgTemplate::Matrix(axis_name.clone())) } else { Err(None) }
                }
                _ => Err(Some(bad(format!(
                    "{} takes a literal or a whole `${{{{ matrix.NAME }}}}`, not text with references",
                    ty.describe()
                )))),
            },
        }
    }

    fn needs(&mut self, ctx: &JobCtx<'_>, body: &JobRaw) -> Vec<Need> {
        let mut out: Vec<Need> = Vec::new();
        for raw in &body.needs {
            let span = span_of(raw);
            let (name, scope, optional) = match &raw.value {
                NeedRaw::Job(name) => (name.clone(), NeedScope::Site, false),
                NeedRaw::Full(full) => {
                    let scope = match full.scope.as_ref().map(|s| s.value.as_str()) {
                        None | Some("site") => NeedScope::Site,
                        Some("all") => NeedScope::All,
                        Some(other) => {
                            self.push(
                                PlanError::new(ErrorCode::BadValue, format!("unknown need scope `{other}`"))
                                    .at(full.scope.as_ref().map_or(span, span_of), "expected `site` or `all`")
                                    .help_opt(did_you_mean(other, ["site", "all"])),
                            );
                            NeedScope::Site
                        }
                    };
                    (full.job.value.clone(), scope, full.optional)
                }
            };
            if !ctx.job_names.contains(name.as_str()) {
                self.push(
                    PlanError::new(
                        ErrorCode::UnknownNeed,
                        format!("job `{}` needs `{name}`, which is not defined", ctx.name),
                    )
                    .at(span, "needed here")
                    .help_opt(
                        did_you_mean(&name, ctx.job_names.iter().copied().filter(|j| *j != ctx.name))
                            .or_else(|| Some("check the spelling, or declare the job".to_owned())),
                    ),
                );
                continue;
            }
            if out.iter().any(|n| n.job.as_str() == name) {
                self.push(
                    PlanError::new(ErrorCode::BadValue, format!("job `{}` needs `{name}` twice", ctx.name))
                        .at(span, "repeated"),
                );
                continue;
            }
            out.push(Need { job: JobId::new(name), scope, optional, span });
        }
        out
    }

    fn check_limits(&mut self, settings: &PlanSettings, jobs: &[Job]) {
        let Some(run) = settings.max_failures else { return };
        for job in jobs {
            let Some(limit) = job.max_failures else { continue };
            let looser = match (run, limit) {
                (Limit::Count(r), Limit::Count(j)) => j > r,
                (Limit::Percent(r), Limit::Percent(j)) => j > r,
                // Mixed kinds compare only once task counts are known; the executor takes the
                // tighter of the two.
                _ => false,
            };
            if looser {
                self.push(
                    PlanError::new(
                        ErrorCode::LoosenedLimit,
                        format!("job `{}` loosens the run's max_failures", job.id),
                    )
                    .at(job.max_failures_span.unwrap_or(job.span), "above the run's limit")
                    .help("a job's limit may only tighten the run's; lower it or raise `settings.max_failures`"),
                );
            }
        }
    }

    /// `jobs`: each job's name and the jobs it needs, with where.
    fn check_cycles(&mut self, jobs: &[(&str, Vec<(&str, SourceSpan)>)]) {
        let mut graph: DiGraph<usize, SourceSpan> = DiGraph::new();
        let nodes: Vec<NodeIndex> = (0..jobs.len()).map(|i| graph.add_node(i)).collect();
        let index: BTreeMap<&str, usize> = jobs.iter().enumerate().map(|(i, (name, _))| (*name, i)).collect();
        for (i, (_, needs)) in jobs.iter().enumerate() {
            for (need, span) in needs {
                if let Some(&target) = index.get(need) {
                    graph.add_edge(nodes[i], nodes[target], *span);
                }
            }
        }
        let mut cycles: Vec<Vec<usize>> = Vec::new();
        for scc in tarjan_scc(&graph) {
            let self_loop = scc.len() == 1 && graph.contains_edge(scc[0], scc[0]);
            if scc.len() < 2 && !self_loop {
                continue;
            }
            let members: BTreeSet<NodeIndex> = scc.iter().copied().collect();
            let start = *members.iter().min().unwrap_or(&scc[0]);
            cycles.push(shortest_loop(&graph, start, &members).into_iter().map(|n| graph[n]).collect());
        }
        cycles.sort();
        for cycle in cycles {
            let names: Vec<&str> = cycle.iter().map(|&i| jobs[i].0).collect();
            let mut path = names.join(" → ");
            path.push_str(" → ");
            path.push_str(names[0]);
            let mut error = PlanError::new(ErrorCode::Cycle, format!("jobs form a cycle: {path}"));
            for (k, &i) in cycle.iter().enumerate() {
                let next = cycle[(k + 1) % cycle.len()];
                if let Some((_, span)) = jobs[i].1.iter().find(|(need, _)| *need == jobs[next].0) {
                    error = error.at(*span, format!("`{}` needs `{}`", jobs[i].0, jobs[next].0));
                }
            }
            self.push(error.help("remove one of these needs to break the loop"));
        }
    }
}

struct JobCtx<'a> {
    name: &'a str,
    targets: &'a BTreeMap<&'a str, (SiteSetKind, SourceSpan)>,
    target_names: &'a [&'a str],
    job_names: &'a BTreeSet<&'a str>,
}

fn scope_name(scope: Scope) -> &'static str {
    match scope {
        Scope::Env => "environment",
        Scope::Site => "site",
        Scope::Account => "account",
    }
}

fn env_help(op: OperationKind, rule: EnvRule) -> Option<String> {
    Some(match rule {
        EnvRule::TestOrLive => format!("`{}` deploys code to test or live; dev receives code by git push", op.name()),
        EnvRule::DevOrMultidev => format!("`{}` runs on dev or a multidev only", op.name()),
        EnvRule::Multidev => format!("`{}` runs on a multidev only", op.name()),
        EnvRule::NewMultidev => "give the literal name of the multidev to create".to_owned(),
        EnvRule::Any => return None,
    })
}

/// A did-you-mean for an enumerated option's value: case-only differences first, then the
/// closest value.
fn value_hint(ty: OptType, value: &Scalar) -> Option<String> {
    let choices: &[&str] = match ty {
        OptType::Element { all: true } => &["code", "database", "files", "all"],
        OptType::Element { all: false } => &["code", "database", "files"],
        OptType::Mode => &["git", "sftp"],
        OptType::Output => &["digest", "report"],
        OptType::Weekday => &crate::plan::ops::WEEKDAYS,
        OptType::Period => &["day", "week", "month"],
        OptType::SiteHost => &["platform", "primary"],
        _ => return None,
    };
    let text = value.to_string().to_ascii_lowercase();
    if choices.contains(&text.as_str()) {
        return Some(format!("did you mean `{text}`? values are lowercase"));
    }
    did_you_mean(&text, choices.iter().copied())
}

fn secret_help(ty: OptType) -> Option<String> {
    (ty == OptType::Secret)
        .then(|| "never write secrets in a plan: set an environment variable and write `${{ env.NAME }}`".to_owned())
}

fn scalar(value: &Value) -> Option<Scalar> {
    match value {
        Value::Bool(b) => Some(Scalar::Bool(*b)),
        Value::Int(i) => Some(Scalar::Int(*i)),
        Value::Float(f) => Some(Scalar::Float(*f)),
        Value::Str(s) => Some(Scalar::Str(s.clone())),
        Value::Null | Value::List(_) => None,
    }
}

/// The host of a webhook URL: https, or plain http to this machine only (a receiver on
/// loopback); never credentials in the URL's authority.
///
/// # Errors
/// Why the text is not a webhook URL (it names no part of the URL: it is a secret).
pub fn webhook_host(url: &str) -> Result<String, String> {
    let (scheme, rest) = url.split_once("://").ok_or_else(|| "a webhook URL starts with https://".to_owned())?;
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    if authority.contains('@') {
        return Err("a webhook URL holds no user or password before its host".to_owned());
    }
    let host = if authority.starts_with('[') {
        authority.split(']').next().unwrap_or_default().trim_start_matches('[').to_owned()
    } else {
        authority.split(':').next().unwrap_or_default().to_owned()
    };
    if host.is_empty() {
        return Err("a webhook URL names a host".to_owned());
    }
    let loopback = host == "localhost" || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback());
    match scheme {
        "https" => Ok(host),
        "http" if loopback => Ok(host),
        "http" => Err("a webhook URL is https (plain http only to this machine): the URL is a secret".to_owned()),
        _ => Err("a webhook URL starts with https://".to_owned()),
    }
}

fn valid_job_name(name: &str) -> bool {
    !name.is_empty() && name.len() <= 100 && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

/// Checks a site name or glob: Pantheon site names are lowercase letters, digits and `-`.
fn check_site_pattern(text: &str) -> Result<(), String> {
    if text.is_empty() {
        return Err("empty site name".to_owned());
    }
    if text.len() > 100 {
        return Err("site names are at most 100 characters".to_owned());
    }
    match text.chars().find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '-' | '*' | '?'))) {
        Some(c) => Err(format!("site names use lowercase letters, digits and `-`, not `{c}`")),
        None => Ok(()),
    }
}

/// Renders a template for one task: site, env and matrix substituted; run id and process
/// environment references kept symbolic.
#[must_use]
pub fn render(template: &Template, site: Option<&str>, env: Option<&str>, coords: &[(String, Scalar)]) -> Text {
    let mut parts: Vec<TextPart> = Vec::new();
    let push_lit = |parts: &mut Vec<TextPart>, s: &str| {
        if let Some(TextPart::Lit(last)) = parts.last_mut() {
            last.push_str(s);
        } else {
            parts.push(TextPart::Lit(s.to_owned()));
        }
    };
    for seg in &template.segments {
        match seg {
            super::template::Segment::Lit(s) => push_lit(&mut parts, s),
            super::template::Segment::Var { var, .. } => match var {
                Var::Site => push_lit(&mut parts, site.unwrap_or_default()),
                Var::Env => push_lit(&mut parts, env.unwrap_or_default()),
                Var::Matrix(name) => {
                    let value = coords.iter().find(|(n, _)| n == name).map(|(_, v)| v.to_string()).unwrap_or_default();
                    push_lit(&mut parts, &value);
                }
                Var::RunId => parts.push(TextPart::RunId),
                Var::ProcessEnv(name) => parts.push(TextPart::Env(name.clone())),
            },
        }
    }
    Text(parts)
}

/// Whether a process environment variable's name says it holds a secret (README, "Secrets
/// in plans").
fn looks_secret(name: &str) -> bool {
    tb_core::secret::looks_like_secret_name(name)
}

#[cfg(test)]
mod tests {
    #[test]
    fn secret_names_by_part_and_by_word() {
        for name in [
            "TERMINUS_MACHINE_TOKEN",
            "DEPLOY_API_KEY",
            "GITHUB_PAT",
            "DB_PASS",
            "AUTH_HEADER",
            "SSH_PRIVATE",
            "BEARER",
            "SESSION_ID",
            "COOKIE_JAR",
            "URL_SIGNATURE",
            "MYSQL_PWD",
            "DATABASE_DSN",
            "apikey",
        ] {
            assert!(super::looks_secret(name), "{name}");
        }
        for name in ["BUILD_NUMBER", "PATH", "PATCH_LEVEL", "AUTHOR", "PASSAGE", "KEYBOARD_LAYOUT", "RELEASE"] {
            assert!(!super::looks_secret(name), "{name}");
        }
    }
}
