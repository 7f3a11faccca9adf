//! The simulator's routes: every endpoint the operations use (pantheon-api.md), classified
//! into a typed [`Route`] first (faults and counters match on it), then answered from
//! [`SimState`] under its lock, without awaiting.
#![allow(
    clippy::cast_possible_truncation,
    clippy::cast_precision_loss,
    clippy::cast_sign_loss,
    reason = "unix times, sizes and counters become JSON numbers; all far from the limits"
)]

use serde_json::{Value, json};

use super::knobs::{Knobs, roll};
use super::state::{Ending, SimState, SiteRec, WorkflowRec, describe, file_bytes, moves_code};
use tb_plan::plan::ops::check_env_id;

/// A request, classified.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Route {
    Login,
    User(String),
    UserSites(String),
    UserOrgs(String),
    UserUpstreams(String),
    OrgSites(String),
    OrgUsers(String),
    SiteUsers(String),
    SiteOrgs(String),
    /// `sites/{site}/plan` and `accounts/site-account-forwarding/{site}/plans`.
    Plan(String),
    Plans(String),
    /// `…/environments/{env}/traffic?duration=`.
    Traffic(String, String),
    SiteName(String),
    Site(String),
    Envs(String),
    Env(String, String),
    EnvSettings(String, String),
    EnvVariables(String, String),
    BuildUpdates(String, String),
    Diffstat(String, String),
    CodeLog(String, String),
    Domains(String, String),
    DomainPut(String, String, String),
    DomainDelete(String, String, String),
    Catalog(String, String),
    Schedule(String, String),
    ScheduleDelete(String, String, String),
    S3Token(String, String, String, String),
    Upstream(String),
    TagsPut(String),
    TagDelete(String, String),
    EnvWorkflowPost(String, String),
    SiteWorkflowPost(String),
    Workflows(String),
    Workflow(String, String),
    Download(Vec<String>),
    Stats,
    Requests,
    Unknown,
}

impl Route {
    /// Classifies a method and path (already split on `/`, percent-decoded).
    pub(crate) fn classify(method: &str, segs: &[String]) -> Self {
        let s: Vec<&str> = segs.iter().map(String::as_str).collect();
        let o = |x: &str| x.to_owned();
        match (method, s.as_slice()) {
            ("GET", ["__sim", "stats"]) => Self::Stats,
            ("GET", ["__sim", "requests"]) => Self::Requests,
            ("GET", ["__s3", rest @ ..]) if rest.len() == 4 => Self::Download(rest.iter().map(|x| o(x)).collect()),
            (_, ["api", rest @ ..]) => match (method, rest) {
                ("POST", ["authorize", "machine-token"]) => Self::Login,
                ("GET", ["users", uid]) => Self::User(o(uid)),
                ("GET", ["users", uid, "memberships", "sites"]) => Self::UserSites(o(uid)),
                ("GET", ["users", uid, "memberships", "organizations"]) => Self::UserOrgs(o(uid)),
                ("GET", ["users", uid, "upstreams"]) => Self::UserUpstreams(o(uid)),
                ("GET", ["organizations", org, "memberships", "sites"]) => Self::OrgSites(o(org)),
                ("GET", ["organizations", org, "memberships", "users"]) => Self::OrgUsers(o(org)),
                ("PUT", ["organizations", org, "tags"]) => Self::TagsPut(o(org)),
                ("DELETE", ["organizations", org, "tags", tag, "sites"]) => Self::TagDelete(o(org), o(tag)),
                ("GET", ["site-names", name]) => Self::SiteName(o(name)),
                ("GET", ["sites", site]) => Self::Site(o(site)),
                ("GET", ["sites", site, "memberships", "users"]) => Self::SiteUsers(o(site)),
                ("GET", ["sites", site, "memberships", "organizations"]) => Self::SiteOrgs(o(site)),
                ("GET", ["sites", site, "plan"]) => Self::Plan(o(site)),
                ("GET", ["accounts", "site-account-forwarding", site, "plans"]) => Self::Plans(o(site)),
                ("GET", ["sites", site, "environments", env, "traffic"]) => Self::Traffic(o(site), o(env)),
                ("GET", ["sites", site, "code-upstream-updates"]) => Self::Upstream(o(site)),
                ("GET", ["sites", site, "environments"]) => Self::Envs(o(site)),
                ("GET", ["sites", site, "environments", env]) => Self::Env(o(site), o(env)),
                ("GET", ["sites", site, "environments", env, "settings"]) => Self::EnvSettings(o(site), o(env)),
                ("GET", ["sites", site, "environments", env, "variables"]) => Self::EnvVariables(o(site), o(env)),
                ("GET", ["sites", site, "environments", env, "build", "updates"]) => {
                    Self::BuildUpdates(o(site), o(env))
                }
                ("GET", ["sites", site, "environments", env, "code-log"]) => Self::CodeLog(o(site), o(env)),
                ("GET", ["sites", site, "environments", env, "on-server-development", "diffstat"]) => {
                    Self::Diffstat(o(site), o(env))
                }
                ("GET", ["sites", site, "environments", env, "domains"]) => Self::Domains(o(site), o(env)),
                ("PUT", ["sites", site, "environments", env, "domains", d]) => Self::DomainPut(o(site), o(env), o(d)),
                ("DELETE", ["sites", site, "environments", env, "domains", d]) => {
                    Self::DomainDelete(o(site), o(env), o(d))
                }
                ("GET", ["sites", site, "environments", env, "backups", "catalog"]) => Self::Catalog(o(site), o(env)),
                ("GET", ["sites", site, "environments", env, "backups", "schedule"]) => Self::Schedule(o(site), o(env)),
                ("DELETE", ["sites", site, "environments", env, "backups", "schedule", day]) => {
                    Self::ScheduleDelete(o(site), o(env), o(day))
                }
                ("POST", ["sites", site, "environments", env, "backups", "catalog", folder, element, "s3token"]) => {
                    Self::S3Token(o(site), o(env), o(folder), o(element))
                }
                ("POST", ["sites", site, "environments", env, "workflows"]) => Self::EnvWorkflowPost(o(site), o(env)),
                ("GET", ["sites", site, "environments", _env, "workflows", wf]) => Self::Workflow(o(site), o(wf)),
                ("POST", ["sites", site, "workflows"]) => Self::SiteWorkflowPost(o(site)),
                ("GET", ["sites", site, "workflows"]) => Self::Workflows(o(site)),
                ("GET", ["sites", site, "workflows", wf]) => Self::Workflow(o(site), o(wf)),
                _ => Self::Unknown,
            },
            _ => Self::Unknown,
        }
    }

    /// The route's name in stats and fault rules, e.g. `sites/{site}/workflows/{workflow}`.
    pub(crate) fn template(&self) -> &'static str {
        match self {
            Self::Login => "authorize/machine-token",
            Self::User(_) => "users/{user}",
            Self::UserSites(_) => "users/{user}/memberships/sites",
            Self::UserOrgs(_) => "users/{user}/memberships/organizations",
            Self::UserUpstreams(_) => "users/{user}/upstreams",
            Self::OrgSites(_) => "organizations/{org}/memberships/sites",
            Self::OrgUsers(_) => "organizations/{org}/memberships/users",
            Self::SiteUsers(_) => "sites/{site}/memberships/users",
            Self::SiteOrgs(_) => "sites/{site}/memberships/organizations",
            Self::Plan(_) => "sites/{site}/plan",
            Self::Plans(_) => "accounts/site-account-forwarding/{site}/plans",
            Self::Traffic(..) => "sites/{site}/environments/{env}/traffic",
            Self::SiteName(_) => "site-names/{name}",
            Self::Site(_) => "sites/{site}",
            Self::Envs(_) => "sites/{site}/environments",
            Self::Env(..) => "sites/{site}/environments/{env}",
            Self::EnvSettings(..) => "sites/{site}/environments/{env}/settings",
            Self::EnvVariables(..) => "sites/{site}/environments/{env}/variables",
            Self::BuildUpdates(..) => "sites/{site}/environments/{env}/build/updates",
            Self::Diffstat(..) => "sites/{site}/environments/{env}/on-server-development/diffstat",
            Self::CodeLog(..) => "sites/{site}/environments/{env}/code-log",
            Self::Domains(..) => "sites/{site}/environments/{env}/domains",
            Self::DomainPut(..) | Self::DomainDelete(..) => "sites/{site}/environments/{env}/domains/{domain}",
            Self::Catalog(..) => "sites/{site}/environments/{env}/backups/catalog",
            Self::Schedule(..) => "sites/{site}/environments/{env}/backups/schedule",
            Self::ScheduleDelete(..) => "sites/{site}/environments/{env}/backups/schedule/{day}",
            Self::S3Token(..) => "sites/{site}/environments/{env}/backups/catalog/{folder}/{element}/s3token",
            Self::Upstream(_) => "sites/{site}/code-upstream-updates",
            Self::TagsPut(_) => "organizations/{org}/tags",
            Self::TagDelete(..) => "organizations/{org}/tags/{tag}/sites",
            Self::EnvWorkflowPost(..) => "sites/{site}/environments/{env}/workflows",
            Self::SiteWorkflowPost(_) | Self::Workflows(_) => "sites/{site}/workflows",
            Self::Workflow(..) => "sites/{site}/workflows/{workflow}",
            Self::Download(_) => "__s3/{file}",
            Self::Stats => "__sim/stats",
            Self::Requests => "__sim/requests",
            Self::Unknown => "(unknown)",
        }
    }

    /// The site id and environment a request is about, for fault rules.
    pub(crate) fn target(&self) -> (Option<&str>, Option<&str>) {
        match self {
            Self::SiteUsers(s)
            | Self::SiteOrgs(s)
            | Self::Site(s)
            | Self::Envs(s)
            | Self::Upstream(s)
            | Self::SiteWorkflowPost(s)
            | Self::Workflows(s)
            | Self::Workflow(s, _) => (Some(s), None),
            Self::Env(s, e)
            | Self::EnvSettings(s, e)
            | Self::EnvVariables(s, e)
            | Self::BuildUpdates(s, e)
            | Self::Diffstat(s, e)
            | Self::CodeLog(s, e)
            | Self::Domains(s, e)
            | Self::DomainPut(s, e, _)
            | Self::DomainDelete(s, e, _)
            | Self::Catalog(s, e)
            | Self::Schedule(s, e)
            | Self::ScheduleDelete(s, e, _)
            | Self::S3Token(s, e, _, _)
            | Self::EnvWorkflowPost(s, e) => (Some(s), Some(e)),
            _ => (None, None),
        }
    }

    /// Needs a session.
    pub(crate) fn needs_auth(&self) -> bool {
        !matches!(self, Self::Login | Self::Download(_) | Self::Stats | Self::Requests | Self::Unknown)
    }
}

/// An answer.
#[derive(Clone, Debug)]
pub(crate) struct Answer {
    pub status: u16,
    pub body: Vec<u8>,
    pub content_type: &'static str,
    pub headers: Vec<(&'static str, String)>,
}

impl Answer {
    pub(crate) fn json(status: u16, value: &Value) -> Self {
        Self {
            status,
            body: serde_json::to_vec(value).unwrap_or_default(),
            content_type: "application/json",
            headers: Vec::new(),
        }
    }

    /// Errors are JSON strings (pantheon-api.md §6).
    pub(crate) fn error(status: u16, message: impl Into<String>) -> Self {
        Self::json(status, &Value::String(message.into()))
    }

    /// An HTML page, as a proxy or a maintenance page answers instead of the API.
    pub(crate) fn html(status: u16) -> Self {
        let page = "<!DOCTYPE html><html><head><title>Pantheon</title></head><body><h1>Temporarily unavailable</h1></body></html>";
        Self { status, body: page.as_bytes().to_vec(), content_type: "text/html; charset=utf-8", headers: Vec::new() }
    }

    pub(crate) fn text(status: u16, text: &str) -> Self {
        Self { status, body: text.as_bytes().to_vec(), content_type: "text/plain", headers: Vec::new() }
    }

    fn empty() -> Self {
        Self { status: 200, body: Vec::new(), content_type: "application/json", headers: Vec::new() }
    }
}

/// What a handler needs besides the state.
pub(crate) struct Ctx<'a> {
    pub knobs: &'a Knobs,
    pub now: f64,
    pub query: &'a [(String, String)],
    pub body: &'a [u8],
    pub range: Option<&'a str>,
    /// `http://127.0.0.1:PORT`, for signed download URLs.
    pub origin: &'a str,
    pub session_user: Option<String>,
    /// A fault rule asked the workflow this request starts to fail, with this reason.
    pub forced_failure: Option<String>,
}

impl Ctx<'_> {
    fn query(&self, key: &str) -> Option<&str> {
        self.query.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }
}

fn site_missing() -> Answer {
    Answer::error(404, "Not found. The site does not exist or you do not have access to it.")
}

fn env_missing(env: &str) -> Answer {
    Answer::error(404, format!("Environment {env} not found."))
}

/// Answers a classified request.
#[expect(clippy::too_many_lines, reason = "the route table: one arm per endpoint of pantheon-api.md")]
pub(crate) fn answer(state: &mut SimState, route: &Route, ctx: &Ctx<'_>) -> Answer {
    if let Some(hold) = &ctx.knobs.hold {
        state.hold(hold, ctx.now);
    }
    state.advance(ctx.now);
    match route {
        Route::Login => login(state, ctx),
        Route::User(uid) if *uid == state.user_id => Answer::json(200, &state.user_json()),
        Route::UserSites(uid) if *uid == state.user_id => {
            let ids = state.sites.values().filter(|s| s.org_id.is_none()).map(|s| s.id.clone()).collect();
            let ids = page_ids(state, "user-sites", ids, ctx);
            let items = ids
                .iter()
                .filter_map(|id| state.sites.get(id))
                .map(|s| {
                    json!({ "id": s.id, "site_id": s.id, "user_id": state.user_id, "role": "owner", "archived": false,
                            "invited_by_id": state.user_id, "key": s.id, "site": state.site_json(s) })
                })
                .collect();
            Answer::json(200, &Value::Array(items))
        }
        Route::UserOrgs(uid) if *uid == state.user_id => {
            let items = state
                .orgs
                .iter()
                .map(|o| {
                    json!({ "id": o.id, "organization_id": o.id, "user_id": state.user_id, "role": o.role,
                            "admin": o.role == "admin", "archived": false, "invited_by_id": null, "key": o.id,
                            "organization": org_json(&o.id, &o.name, &o.label) })
                })
                .collect();
            page(state, "user-orgs", items, ctx)
        }
        Route::UserUpstreams(uid) if *uid == state.user_id => Answer::json(200, &state.user_upstreams_json()),
        Route::User(_) | Route::UserSites(_) | Route::UserOrgs(_) | Route::UserUpstreams(_) => {
            Answer::error(403, "You do not have access to this user.")
        }
        Route::OrgSites(org) => {
            if !state.orgs.iter().any(|o| &o.id == org) {
                return Answer::error(404, "Organization not found.");
            }
            let ids = state.sites.values().filter(|s| s.org_id.as_deref() == Some(org)).map(|s| s.id.clone()).collect();
            let ids = page_ids(state, &format!("org-sites:{org}"), ids, ctx);
            let items = ids
                .iter()
                .filter_map(|id| state.sites.get(id))
                .map(|s| {
                    let tags: Vec<&String> = s.tags.get(org).map(|t| t.iter().collect()).unwrap_or_default();
                    json!({ "id": s.id, "site_id": s.id, "organization_id": org, "role": "team_member",
                            "archived": false, "invited_by_id": state.user_id, "key": s.id, "tags": tags,
                            "site": state.site_json(s) })
                })
                .collect();
            Answer::json(200, &Value::Array(items))
        }
        Route::OrgUsers(org) => {
            let Some(o) = state.orgs.iter().find(|o| &o.id == org) else {
                return Answer::error(404, "Organization not found.");
            };
            let item = json!({ "id": state.user_id, "user_id": state.user_id, "organization_id": org, "role": o.role,
                               "archived": false, "key": state.user_id, "user": state.user_json() });
            page(state, &format!("org-users:{org}"), vec![item], ctx)
        }
        Route::SiteUsers(site) => {
            if !state.sites.contains_key(site) {
                return site_missing();
            }
            let item = json!({ "id": state.user_id, "user_id": state.user_id, "site_id": site, "role": "owner",
                               "archived": false, "invited_by_id": state.user_id, "key": state.user_id,
                               "user": state.user_json() });
            // The members workflows added, after the owner.
            let members = state.sites[site].team.iter().map(|m| {
                json!({ "id": m.id, "user_id": m.id, "site_id": site, "role": m.role, "archived": false,
                        "invited_by_id": state.user_id, "key": m.id,
                        "user": { "id": m.id, "email": m.email, "profile": { "firstname": null, "lastname": null } } })
            });
            let items = std::iter::once(item).chain(members).collect();
            page(state, &format!("site-users:{site}"), items, ctx)
        }
        Route::SiteOrgs(site) => {
            let Some(s) = state.sites.get(site) else { return site_missing() };
            let items = s
                .org_id
                .iter()
                .chain(&s.supporting_orgs)
                .filter_map(|id| state.orgs.iter().find(|o| &o.id == id))
                .map(|o| {
                    json!({ "id": o.id, "organization_id": o.id, "site_id": site, "role": "team_member",
                            "archived": false, "invited_by_id": state.user_id, "key": o.id,
                            "organization": org_json(&o.id, &o.name, &o.label) })
                })
                .collect();
            page(state, &format!("site-orgs:{site}"), items, ctx)
        }
        Route::Plan(site) => match state.sites.get(site) {
            Some(s) => Answer::json(200, &super::state::plan_json(&s.plan)),
            None => site_missing(),
        },
        Route::Plans(site) => match state.sites.get(site) {
            Some(_) => {
                let plans: Vec<Value> =
                    super::state::PLANS.iter().map(|(_, level, _)| super::state::plan_json(level)).collect();
                Answer::json(200, &Value::Array(plans))
            }
            None => site_missing(),
        },
        Route::Traffic(site, env) => {
            let duration = ctx.query.iter().find(|(k, _)| k == "duration").map(|(_, v)| v.clone()).unwrap_or_default();
            let now = ctx.now;
            with_env(state, site, env, |_, s, _| traffic(&s.id, env, &duration, now))
        }
        Route::SiteName(name) => match state.names.get(name) {
            Some(id) => Answer::json(200, &json!({ "id": id, "name": name })),
            None => Answer::error(404, format!("A site named {name} was not found.")),
        },
        Route::Site(site) => match state.sites.get(site) {
            Some(s) => Answer::json(200, &state.site_json(s)),
            None => site_missing(),
        },
        Route::Envs(site) => match state.sites.get(site) {
            Some(s) => {
                let map: serde_json::Map<String, Value> =
                    s.envs.iter().map(|(id, e)| (id.clone(), SimState::env_json(s, id, e))).collect();
                Answer::json(200, &Value::Object(map))
            }
            None => site_missing(),
        },
        Route::Env(site, env) => {
            with_env(state, site, env, |_, s, e| Answer::json(200, &SimState::env_json(s, env, e)))
        }
        Route::EnvSettings(site, env) => {
            with_env(state, site, env, |state, s, e| Answer::json(200, &state.env_settings_json(s, env, e)))
        }
        Route::EnvVariables(site, env) => with_env(state, site, env, |_, s, _| {
            let build = s.framework.contains("composer") || s.upstream.contains("composer");
            Answer::json(
                200,
                &json!({ "PANTHEON_ENVIRONMENT": env, "PANTHEON_SITE_NAME": s.name, "BUILD_STEP": build }),
            )
        }),
        Route::BuildUpdates(site, env) => with_env(state, site, env, |_, s, _| {
            let updated: Vec<Value> = (0..s.composer_updates)
                .map(|n| json!({ "name": format!("vendor/package-{n}"), "from": "1.0.0", "to": "1.0.1" }))
                .collect();
            Answer::json(
                200,
                &json!({ "added_dependencies": [], "updated_dependencies": updated, "removed_dependencies": [] }),
            )
        }),
        Route::Diffstat(site, env) => with_env(state, site, env, |_, _, e| {
            let files: serde_json::Map<String, Value> = (0..e.uncommitted)
                .map(|n| {
                    (format!("wp-content/changed-{n}.php"), json!({ "status": "M", "deletions": 1, "additions": 2 }))
                })
                .collect();
            Answer::json(200, &Value::Object(files))
        }),
        Route::CodeLog(site, env) => with_env(state, site, env, |_, s, _| {
            let mine: Vec<usize> =
                (0..s.commits.len()).filter(|&i| s.commits[i].labels.contains(env.as_str())).collect();
            let list: Vec<Value> = mine
                .iter()
                .rev()
                .enumerate()
                .map(|(k, &i)| {
                    let parent = mine.iter().rev().nth(k + 1).map(|&p| &s.commits[p]);
                    SimState::commit_json(&s.commits[i], parent)
                })
                .collect();
            Answer::json(200, &Value::Array(list))
        }),
        Route::Domains(site, env) => {
            with_env(state, site, env, |_, s, e| Answer::json(200, &SimState::domains_json(s, env, e)))
        }
        Route::DomainPut(site, env, domain) => domain_put(state, site, env, domain),
        Route::DomainDelete(site, env, domain) => {
            let Some(s) = state.sites.get_mut(site) else { return site_missing() };
            let Some(e) = s.envs.get_mut(env) else { return env_missing(env) };
            let before = e.domains.len();
            e.domains.retain(|(d, _)| !d.eq_ignore_ascii_case(domain));
            if e.domains.len() == before {
                return Answer::error(404, format!("The domain {domain} was not found on {env}."));
            }
            Answer::json(200, &json!("Ok"))
        }
        Route::Catalog(site, env) => {
            with_env(state, site, env, |_, s, e| Answer::json(200, &SimState::catalog_json(s, env, e)))
        }
        Route::Schedule(site, env) => {
            with_env(state, site, env, |_, _, e| Answer::json(200, &SimState::schedule_json(e)))
        }
        Route::ScheduleDelete(site, env, day) => {
            let Some(day) = day.parse::<u8>().ok().filter(|d| *d < 7) else {
                return Answer::error(404, format!("There is no day {day} in a backup schedule."));
            };
            let Some(s) = state.sites.get_mut(site) else { return site_missing() };
            let Some(e) = s.envs.get_mut(env) else { return env_missing(env) };
            e.backup_schedule.remove(&day);
            Answer::json(200, &json!({}))
        }
        Route::S3Token(site, env, folder, element) => s3token(state, site, env, folder, element, ctx),
        Route::Upstream(site) => match state.sites.get(site) {
            Some(s) => Answer::json(200, &SimState::upstream_json(s)),
            None => site_missing(),
        },
        Route::TagsPut(org) => tags_put(state, org, ctx),
        Route::TagDelete(org, tag) => {
            let Some(entity) = ctx.query("entity").map(str::to_owned) else {
                return Answer::error(400, "The entity parameter is required.");
            };
            let Some(s) = state.sites.get_mut(&entity) else { return site_missing() };
            if s.tags.get_mut(org).is_some_and(|tags| tags.remove(tag)) {
                Answer::empty()
            } else {
                Answer::error(404, format!("The tag {tag} was not found on this site."))
            }
        }
        Route::EnvWorkflowPost(site, env) => start_workflow(state, site, Some(env), ctx),
        Route::SiteWorkflowPost(site) => start_workflow(state, site, None, ctx),
        Route::Workflows(site) => {
            if !state.sites.contains_key(site) {
                return site_missing();
            }
            let list: Vec<Value> = state
                .workflows
                .iter()
                .rev()
                .filter(|w| &w.site_id == site)
                .take(100)
                .map(|w| state.workflow_json(w, ctx.now, false))
                .collect();
            for w in state.workflows.iter_mut().rev().filter(|w| &w.site_id == site).take(100) {
                w.seen(ctx.now);
            }
            Answer::json(200, &Value::Array(list))
        }
        Route::Workflow(site, id) => match state.workflows.iter().position(|w| &w.id == id && &w.site_id == site) {
            Some(at) => {
                let out = state.workflow_json(&state.workflows[at], ctx.now, true);
                state.workflows[at].seen(ctx.now);
                Answer::json(200, &out)
            }
            None => Answer::text(404, "Not found.\n"),
        },
        Route::Download(parts) => download(state, parts, ctx),
        Route::Stats | Route::Requests => Answer::error(500, "handled by the server"),
        Route::Unknown => Answer::text(404, "Not found.\n"),
    }
}

fn org_json(id: &str, name: &str, label: &str) -> Value {
    json!({ "id": id, "profile": { "name": label, "machine_name": name, "change_service_url": null,
            "email_domain": null, "org_logo": null, "org_logo_height": 0, "org_logo_width": 0,
            "base_domain": null, "billing_url": null, "terms_of_service": null } })
}

fn with_env(
    state: &SimState,
    site: &str,
    env: &str,
    f: impl FnOnce(&SimState, &SiteRec, &super::state::EnvRec) -> Answer,
) -> Answer {
    let Some(s) = state.sites.get(site) else { return site_missing() };
    let Some(e) = s.envs.get(env) else { return env_missing(env) };
    f(state, s, e)
}

/// One page of a paged collection of small items (see [`page_ids`]).
fn page(state: &mut SimState, collection: &str, items: Vec<Value>, ctx: &Ctx<'_>) -> Answer {
    let id_of = |v: &Value| v.get("id").and_then(Value::as_str).unwrap_or_default().to_owned();
    let mut by_id: std::collections::HashMap<String, Value> = items.into_iter().map(|v| (id_of(&v), v)).collect();
    let ids = by_id.keys().cloned().collect();
    let page = page_ids(state, collection, ids, ctx).into_iter().filter_map(|id| by_id.remove(&id)).collect();
    Answer::json(200, &Value::Array(page))
}

/// The ids on the page asked for, of a collection sorted by id; `start` honoured only when
/// it is a page boundary this collection already served, otherwise page 1 again (the
/// platform's quirk). Large collections render only these.
fn page_ids(state: &mut SimState, collection: &str, mut ids: Vec<String>, ctx: &Ctx<'_>) -> Vec<String> {
    ids.sort();
    let limit = ctx.query("limit").and_then(|l| l.parse::<usize>().ok()).unwrap_or(100).clamp(1, 1000);
    let boundaries = state.boundaries.entry(collection.to_owned()).or_default();
    let start = ctx.query("start").filter(|s| boundaries.contains(*s));
    let page: Vec<String> = ids.into_iter().filter(|id| start.is_none_or(|s| id.as_str() > s)).take(limit).collect();
    if let Some(last) = page.last() {
        boundaries.insert(last.clone());
    }
    page
}

fn login(state: &mut SimState, ctx: &Ctx<'_>) -> Answer {
    let body: Value = serde_json::from_slice(ctx.body).unwrap_or(Value::Null);
    let token = body.get("machine_token").and_then(Value::as_str);
    if token != Some(state.machine_token.as_str()) || token.is_none_or(str::is_empty) {
        return Answer::error(500, "Authorization failed. Please check that your machine token is valid.");
    }
    let middle = state.next_id("session");
    let secret = state.next_id("secret").replace('-', "");
    let session = format!("{}:{middle}:{secret}", state.user_id);
    let valid_until = ctx.knobs.session_lifetime.map(|l| ctx.now + ctx.knobs.scaled(l).as_secs_f64());
    state.sessions.insert(session.clone(), super::state::SessionRec { user_id: state.user_id.clone(), valid_until });
    #[expect(clippy::cast_possible_truncation, reason = "unix seconds")]
    let expires_at = (ctx.now + ctx.knobs.session_expires_in) as i64;
    Answer::json(200, &json!({ "session": session, "expires_at": expires_at, "user_id": state.user_id }))
}

/// The user a bearer session belongs to, if the API still accepts it.
pub(crate) fn session_user(state: &SimState, bearer: Option<&str>, now: f64) -> Option<String> {
    let rec = state.sessions.get(bearer?)?;
    rec.valid_until.is_none_or(|t| now < t).then(|| rec.user_id.clone())
}

fn domain_put(state: &mut SimState, site: &str, env: &str, domain: &str) -> Answer {
    let Some(s) = state.sites.get_mut(site) else { return site_missing() };
    if !s.envs.contains_key(env) {
        return env_missing(env);
    }
    let domain = domain.to_ascii_lowercase();
    if domain.is_empty() || !domain.contains('.') || domain.ends_with(".pantheonsite.io") {
        return Answer::error(400, format!("{domain} is not a valid domain name."));
    }
    if let Some((other, _)) =
        s.envs.iter().find(|(id, e)| id.as_str() != env && e.domains.iter().any(|(d, _)| *d == domain))
    {
        return Answer::error(409, format!("The domain {domain} is already in use on the {other} environment."));
    }
    let Some(e) = s.envs.get_mut(env) else { return env_missing(env) };
    if !e.domains.iter().any(|(d, _)| *d == domain) {
        e.domains.push((domain, false));
    }
    Answer::json(200, &json!("Ok"))
}

fn tags_put(state: &mut SimState, org: &str, ctx: &Ctx<'_>) -> Answer {
    if !state.orgs.iter().any(|o| o.id == org) {
        return Answer::error(404, "Organization not found.");
    }
    let Ok(Value::Object(body)) = serde_json::from_slice::<Value>(ctx.body) else {
        return Answer::error(400, "The request body must be an object of tags.");
    };
    for (tag, spec) in &body {
        let Some(sites) = spec.get("sites").and_then(Value::as_array) else {
            return Answer::error(400, format!("Tag {tag} needs a list of sites."));
        };
        for site in sites.iter().filter_map(Value::as_str) {
            let Some(s) = state.sites.get_mut(site) else { return site_missing() };
            if s.org_id.as_deref() != Some(org) {
                return Answer::error(403, "The site is not a member of this organization.");
            }
            s.tags.entry(org.to_owned()).or_default().insert(tag.clone());
        }
    }
    Answer::empty()
}

/// Signs a download path: a hash of the seed, path and expiry.
pub(crate) fn signature(seed: u64, path: &str, expires: i64) -> String {
    let a = roll(seed, &format!("sig:{path}:{expires}")).to_bits();
    format!("{a:016x}")
}

fn s3token(state: &SimState, site: &str, env: &str, folder: &str, element: &str, ctx: &Ctx<'_>) -> Answer {
    let Some(s) = state.sites.get(site) else { return site_missing() };
    let Some(e) = s.envs.get(env) else { return env_missing(env) };
    let body: Value = serde_json::from_slice(ctx.body).unwrap_or(Value::Null);
    if body.get("method").and_then(Value::as_str) != Some("get") {
        return Answer::error(400, "The method parameter must be \"get\".");
    }
    let Some(b) = e.backups.iter().find(|b| b.folder == folder && b.element == element) else {
        return Answer::error(404, format!("No {element} backup in {folder}."));
    };
    let path = format!("/__s3/{site}/{env}/{folder}/{}", b.filename);
    #[expect(clippy::cast_possible_truncation, reason = "unix seconds")]
    let expires = (ctx.now + ctx.knobs.scaled(900.0).as_secs_f64()).ceil() as i64;
    let sig = signature(ctx.knobs.seed, &path, expires);
    let url = format!("{}{path}?Expires={expires}&Signature={sig}&AWSAccessKeyId=SIMULATED", ctx.origin);
    Answer::json(
        200,
        &json!({ "url": url, "bucket": "pantheon-backups", "access_key": "SIMULATED", "signature": sig,
                 "policy": "simulated", "encryption_passphrase": null }),
    )
}

fn download(state: &SimState, parts: &[String], ctx: &Ctx<'_>) -> Answer {
    let [site, env, folder, filename] = parts else { return Answer::text(404, "NoSuchKey") };
    let path = format!("/__s3/{site}/{env}/{folder}/{filename}");
    let expires = ctx.query("Expires").and_then(|e| e.parse::<i64>().ok());
    let Some(expires) =
        expires.filter(|e| ctx.query("Signature") == Some(signature(ctx.knobs.seed, &path, *e).as_str()))
    else {
        return Answer::text(403, "SignatureDoesNotMatch");
    };
    #[expect(clippy::cast_precision_loss, reason = "unix seconds")]
    if ctx.now > expires as f64 {
        return Answer::text(403, "Request has expired");
    }
    let backup = state
        .sites
        .get(site)
        .and_then(|s| s.envs.get(env))
        .and_then(|e| e.backups.iter().find(|b| &b.folder == folder && &b.filename == filename));
    let Some(b) = backup else { return Answer::text(404, "NoSuchKey") };
    let bytes = file_bytes(&b.filename, b.size);
    let from = ctx
        .range
        .and_then(|r| r.strip_prefix("bytes="))
        .and_then(|r| r.strip_suffix('-'))
        .and_then(|n| n.parse::<usize>().ok());
    match from {
        Some(n) if n < bytes.len() => Answer {
            status: 206,
            body: bytes[n..].to_vec(),
            content_type: "application/octet-stream",
            headers: vec![("Content-Range", format!("bytes {n}-{}/{}", bytes.len() - 1, bytes.len()))],
        },
        Some(_) => Answer::text(416, "InvalidRange"),
        None => Answer { status: 200, body: bytes, content_type: "application/octet-stream", headers: Vec::new() },
    }
}

/// Env-scoped and site-scoped workflow types the simulator runs.
const ENV_TYPES: &[&str] = &[
    "deploy",
    "sync_code_with_build",
    "create_environment",
    "clear_cache",
    "clone_database",
    "clone_files",
    "do_export",
    "restore_code",
    "restore_files",
    "restore_database",
    "enable_git_mode",
    "enable_on_server_development",
    "commit_and_push_on_server_changes",
    "lock_environment",
    "unlock_environment",
    "set_primary_domain",
    "apply_upstream_updates",
    "merge_dev_into_cloud_development_environment",
    "merge_cloud_development_environment_into_dev",
    "clear_redis_cache",
    "change_backup_schedule",
    "check_upstream_updates",
    "wipe",
    "rotate_environment_randseed",
    "disable_ssl",
];
const SITE_TYPES: &[&str] = &[
    "create_cloud_development_environment",
    "delete_cloud_development_environment",
    "enable_addon",
    "disable_addon",
    "clear_code_cache",
    "switch_upstream",
    "delete_environment_branch",
    "enable_new_relic_for_site",
    "disable_new_relic_for_site",
    "add_site_user_membership",
    "remove_site_user_membership",
    "update_site_user_membership",
    "add_site_organization_membership",
    "remove_site_organization_membership",
    "change_site_service_level",
];

fn start_workflow(state: &mut SimState, site_id: &str, env: Option<&String>, ctx: &Ctx<'_>) -> Answer {
    let Ok(body) = serde_json::from_slice::<Value>(ctx.body) else {
        return Answer::error(400, "The request body must be JSON.");
    };
    let Some(kind) = body.get("type").and_then(Value::as_str).map(str::to_owned) else {
        return Answer::error(400, "A workflow type is required.");
    };
    let Some(mut params) = body.get("params").filter(|p| p.is_object()).cloned() else {
        return Answer::error(400, "params must be an object.");
    };
    let allowed = if env.is_some() { ENV_TYPES } else { SITE_TYPES };
    if !allowed.contains(&kind.as_str()) {
        return Answer::error(400, format!("Invalid workflow type: {kind}"));
    }
    let Some(site) = state.sites.get(site_id) else { return site_missing() };
    if let Some(env) = env
        && !site.envs.contains_key(env.as_str())
    {
        return env_missing(env);
    }
    if let Err(why) = check_params(site, env.map(String::as_str), &kind, &params) {
        return Answer::error(422, why);
    }
    // The environment a site-scoped workflow is about (multidev create and delete).
    let target_env = env.cloned().or_else(|| params.get("environment_id").and_then(Value::as_str).map(str::to_owned));
    let key = format!("{}.{}.{kind}", site.name, target_env.as_deref().unwrap_or(""));
    let ordinal = state.started.get(&key).copied().unwrap_or(0);
    let mut ending =
        SimState::ending_for(ctx.knobs, site, target_env.as_deref(), &kind, ctx.forced_failure.as_deref(), ordinal);
    if kind == "create_cloud_development_environment" {
        let multidevs = site.envs.keys().filter(|e| !super::state::STANDARD_ENVS.contains(&e.as_str())).count();
        if u32::try_from(multidevs).unwrap_or(u32::MAX) >= site.quota {
            ending = Ending::Failed(format!("The multidev quota of {} environments is reached.", site.quota));
        }
    }
    if kind == "deploy" {
        let head = env.and_then(|e| {
            let parent = if e == "live" { "test" } else { "dev" };
            site.commits.iter().rev().find(|c| c.labels.contains(parent))
        });
        if let (Some(p), Some(head)) = (params.as_object_mut(), head) {
            p.insert("target_commit".into(), json!(head.hash));
            p.insert(
                "target_ref".into(),
                json!(format!("refs/tags/pantheon_{}_{}", env.map_or("", String::as_str), ordinal + 1)),
            );
        }
    }
    let description = describe(&kind, target_env.as_deref());
    let roll_key = format!("dur:{key}:{ordinal}");
    let run = ctx.knobs.scaled(ctx.knobs.duration_of(&kind, roll(ctx.knobs.seed, &roll_key))).as_secs_f64();
    let mut started_at = ctx.now;
    if let (true, Some(code_env)) = (moves_code(&kind), code_env(&kind, env.map(String::as_str)))
        && let Some(e) = state.sites.get_mut(site_id).and_then(|s| s.envs.get_mut(&code_env))
    {
        started_at = started_at.max(e.code_busy_until);
        e.code_busy_until = started_at + run;
    }
    let id = state.next_id("workflow");
    let rec = WorkflowRec {
        id,
        kind,
        site_id: site_id.to_owned(),
        env: target_env,
        params,
        user_id: ctx.session_user.clone().unwrap_or_default(),
        created_at: ctx.now,
        started_at,
        finish_at: started_at + run,
        ending,
        applied: false,
        description,
        seen_finished: None,
    };
    let out = state.workflow_json(&rec, ctx.now, true);
    *state.started.entry(key).or_default() += 1;
    state.workflows.push(rec);
    Answer::json(202, &out)
}

/// The environment whose code a code-moving workflow changes (dev for merge-to-dev).
fn code_env(kind: &str, env: Option<&str>) -> Option<String> {
    if kind == "merge_cloud_development_environment_into_dev" {
        return Some("dev".to_owned());
    }
    env.map(str::to_owned)
}

/// Checks the params the operations send, with the types terminus sends them.
#[expect(clippy::too_many_lines, reason = "one arm per workflow type: the params terminus sends for it")]
fn check_params(site: &SiteRec, env: Option<&str>, kind: &str, params: &Value) -> Result<(), String> {
    let int_flag = |key: &str| match params.get(key) {
        None => Ok(()),
        Some(v) if v.as_i64().is_some_and(|n| n == 0 || n == 1) => Ok(()),
        Some(v) => Err(format!("{key} must be 0 or 1, not {v}")),
    };
    let bool_flag = |key: &str| match params.get(key) {
        None | Some(Value::Bool(_)) => Ok(()),
        Some(v) => Err(format!("{key} must be a boolean, not {v}")),
    };
    let string = |key: &str| match params.get(key) {
        Some(Value::String(s)) if !s.is_empty() => Ok(s.clone()),
        _ => Err(format!("{key} is required")),
    };
    match kind {
        "sync_code_with_build" => {
            if matches!(env, Some("test" | "live")) {
                return Err("Test and live are not valid environments for this command.".to_owned());
            }
            bool_flag("converge")?;
        }
        "add_site_organization_membership" => {
            string("organization_name")?;
            string("role")?;
        }
        "remove_site_organization_membership" => {
            string("organization_id")?;
        }
        "change_site_service_level" => {
            let sku = string("sku")?;
            if !super::state::PLANS.iter().any(|(known, _, _)| *known == sku) {
                return Err(format!("{sku} is not a plan this site can be set to."));
            }
        }
        "deploy" => {
            if !matches!(env, Some("test" | "live")) {
                return Err("Code can only be deployed to test or live.".to_owned());
            }
            int_flag("updatedb")?;
            int_flag("clear_cache")?;
        }
        "clear_cache" => bool_flag("framework_cache")?,
        "do_export" => {
            for key in ["code", "database", "files"] {
                bool_flag(key)?;
            }
            if params.get("entry_type").and_then(Value::as_str) != Some("backup") {
                return Err("entry_type must be \"backup\"".to_owned());
            }
            if params.get("ttl").is_some_and(|t| t.as_i64().is_none_or(|t| t <= 0)) {
                return Err("ttl must be a positive number of seconds".to_owned());
            }
        }
        "create_cloud_development_environment" => {
            let name = string("environment_id")?;
            check_env_id(&name).map_err(|why| format!("Invalid environment name: {why}"))?;
            if ["dev", "test", "live"].contains(&name.as_str()) || site.envs.contains_key(&name) {
                return Err(format!("An environment named {name} already exists."));
            }
        }
        "delete_cloud_development_environment" => {
            let name = string("environment_id")?;
            if !site.envs.contains_key(&name) || ["dev", "test", "live"].contains(&name.as_str()) {
                return Err(format!("There is no multidev environment named {name}."));
            }
            bool_flag("delete_branch")?;
        }
        "lock_environment" => {
            string("username")?;
            string("password")?;
        }
        "enable_addon" | "disable_addon" => {
            let addon = string("addon")?;
            if !["cacheserver", "indexserver"].contains(&addon.as_str()) {
                return Err(format!("Unknown add-on {addon}"));
            }
        }
        "set_primary_domain" => {
            if let Some(d) = params.get("primary_domain").and_then(Value::as_str) {
                let known = env.and_then(|e| site.envs.get(e)).is_some_and(|e| e.domains.iter().any(|(x, _)| x == d));
                if !known {
                    return Err(format!("{d} is not a domain of this environment."));
                }
            }
        }
        "merge_dev_into_cloud_development_environment" | "merge_cloud_development_environment_into_dev" => {
            bool_flag("updatedb")?;
        }
        "apply_upstream_updates" => {
            bool_flag("updatedb")?;
            bool_flag("xoption")?;
        }
        "restore_code" | "restore_files" | "restore_database" => {
            // terminus addresses the backup by the site's id: `<site_id>/<env>/<folder>/<file>`.
            let key = string("key")?;
            let prefix = format!("{}/{}/", site.id, env.unwrap_or_default());
            if !key.starts_with(&prefix) || key[prefix.len()..].split('/').count() != 2 {
                return Err(format!("No backup found at key {key}."));
            }
            string("bucket")?;
        }
        _ => {}
    }
    Ok(())
}

/// `…/traffic?duration=Nd|Nw|Nm`: a series of `N` points (of the environment's own,
/// repeatable numbers), newest last, as the platform gives it.
fn traffic(site_id: &str, env: &str, duration: &str, now: f64) -> Answer {
    let (count, unit) = duration.split_at(duration.len().saturating_sub(1));
    let step = match unit {
        "d" => 86_400.0,
        "w" => 7.0 * 86_400.0,
        "m" => 30.0 * 86_400.0,
        _ => return Answer::error(400, format!("Invalid duration: {duration}")),
    };
    let Some(count) = count.parse::<u32>().ok().filter(|n| (1..=28).contains(n)) else {
        return Answer::error(400, format!("Invalid duration: {duration}"));
    };
    let seed = site_id.bytes().chain(env.bytes()).fold(7_u64, |h, b| h.wrapping_mul(31).wrapping_add(u64::from(b)));
    let today = (now / 86_400.0).floor() * 86_400.0;
    let points: Vec<Value> = (0..count)
        .map(|i| {
            let visits = (seed >> (i % 16)) % 900 + 100;
            let pages = visits * 3;
            let hits = pages * 4 / 5;
            #[expect(clippy::cast_possible_truncation, reason = "unix seconds")]
            let timestamp = (today - f64::from(count - 1 - i) * step) as i64;
            json!({ "timestamp": timestamp, "visits": visits, "pages_served": pages, "cache_hits": hits, "cache_misses": pages - hits })
        })
        .collect();
    Answer::json(200, &json!({ "timeseries": points, "duration": duration }))
}
