//! The simulated platform's state: the world, made mutable. Workflows finish lazily: every
//! request first applies the effects of workflows whose finish time has passed, in finish
//! order ([`SimState::advance`]), so state moves exactly as if a clock drove it.
//!
//! JSON is built here from pantheon-api.md and the recordings, never from the client's types.
#![allow(
    clippy::cast_possible_truncation,
    clippy::cast_precision_loss,
    clippy::cast_sign_loss,
    reason = "unix times, sizes and counters become JSON numbers; all far from the limits"
)]

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use serde_json::{Value, json};

use super::knobs::{Knobs, roll};
use super::world::{Site, SiteHttp, World, derived_id};

pub(crate) const STANDARD_ENVS: [&str; 3] = ["dev", "test", "live"];

/// 2025-01-01T00:00:00Z: the day a world's sites were created.
const WORLD_EPOCH: f64 = 1_735_689_600.0;

/// A platform session.
#[derive(Clone, Debug)]
pub(crate) struct SessionRec {
    pub user_id: String,
    /// When the API stops accepting it (unix seconds); `None`: never during the run.
    pub valid_until: Option<f64>,
}

#[derive(Clone, Debug)]
pub(crate) struct OrgRec {
    pub id: String,
    pub name: String,
    pub label: String,
    pub role: String,
}

#[derive(Clone, Debug)]
pub(crate) struct CommitRec {
    pub hash: String,
    pub message: String,
    pub datetime: String,
    pub labels: BTreeSet<String>,
}

#[derive(Clone, Debug)]
pub(crate) struct BackupRec {
    pub folder: String,
    pub element: String,
    pub filename: String,
    pub size: u64,
    pub time: f64,
}

#[derive(Clone, Debug)]
pub(crate) struct EnvRec {
    pub created: f64,
    pub initialized: bool,
    pub sftp: bool,
    /// Custom domains, with the primary one flagged.
    pub domains: Vec<(String, bool)>,
    pub backups: Vec<BackupRec>,
    pub lock: Option<(String, String)>,
    /// Files changed in SFTP mode, not committed.
    pub uncommitted: u32,
    /// Code-moving workflows queue behind this (unix seconds).
    pub code_busy_until: f64,
    /// The automatic backup schedule: day (0 is Sunday) → (hour, ttl seconds).
    pub backup_schedule: BTreeMap<u8, (Option<u64>, u64)>,
    /// HTTPS on (`ssl_enabled`).
    pub https: bool,
    /// Its site, as it answers pages.
    pub site: SitePages,
}

/// How an environment's site answers pages: as the world says, unless a deploy broke it or
/// it is still warming up.
#[derive(Clone, Debug, Default)]
pub(crate) struct SitePages {
    pub http: SiteHttp,
    /// A deploy broke the site: it answers 500 until a later deploy.
    pub broken: bool,
    /// The site warms up (answers 503) until then, after a deploy or a cache clear.
    pub warm_at: f64,
    /// Deploys finished here.
    pub deploys: u32,
}

/// What the knobs say of the sites, for the workflows that change them.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct SiteKnobs {
    pub seed: u64,
    pub break_rate: f64,
    /// Real seconds.
    pub warmup: f64,
}

#[derive(Clone, Debug)]
pub(crate) struct SiteRec {
    pub id: String,
    pub name: String,
    pub label: String,
    pub org_id: Option<String>,
    pub tags: BTreeMap<String, BTreeSet<String>>,
    pub framework: String,
    pub upstream: String,
    pub plan: String,
    pub frozen: bool,
    pub quota: u32,
    pub upstream_updates: u32,
    pub composer_updates: u32,
    pub remote_fails: bool,
    pub created: f64,
    pub envs: BTreeMap<String, EnvRec>,
    /// Newest last.
    pub commits: Vec<CommitRec>,
    pub addons: BTreeSet<String>,
    /// Team members workflows added (the owner, the world's user, is not among them).
    pub team: Vec<TeamMember>,
    /// Supporting organizations workflows added (ids; the owning organization is `org_id`).
    pub supporting_orgs: Vec<String>,
}

/// A member of a site's team.
#[derive(Clone, Debug)]
pub(crate) struct TeamMember {
    pub id: String,
    pub email: String,
    pub role: String,
}

/// How a workflow ends.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Ending {
    Succeeded,
    Failed(String),
}

#[derive(Clone, Debug)]
pub(crate) struct WorkflowRec {
    pub id: String,
    pub kind: String,
    pub site_id: String,
    pub env: Option<String>,
    pub params: Value,
    pub user_id: String,
    pub created_at: f64,
    pub started_at: f64,
    pub finish_at: f64,
    pub ending: Ending,
    pub applied: bool,
    pub description: String,
    /// When a read first showed it finished (unix seconds): from then on the client could
    /// know; the time before, from `finish_at`, is what waiting cost (`Stats::unseen_seconds`).
    pub seen_finished: Option<f64>,
}

impl WorkflowRec {
    /// Notes a read at `now` that showed the workflow; the first one to show it finished counts.
    pub(crate) fn seen(&mut self, now: f64) {
        if self.finish_at <= now && self.seen_finished.is_none() {
            self.seen_finished = Some(now);
        }
    }
}

/// The whole simulated platform.
#[derive(Debug)]
pub(crate) struct SimState {
    pub user_id: String,
    pub email: String,
    pub first_name: String,
    pub last_name: String,
    pub machine_token: String,
    pub sessions: HashMap<String, SessionRec>,
    pub orgs: Vec<OrgRec>,
    pub sites: BTreeMap<String, SiteRec>,
    pub names: HashMap<String, String>,
    pub workflows: Vec<WorkflowRec>,
    /// Page boundaries served, per collection: the only cursors the API honours.
    pub boundaries: HashMap<String, HashSet<String>>,
    /// Workflows started per `site.env.type` (`site..type` when site-scoped).
    pub started: BTreeMap<String, u64>,
    pub counter: u64,
    pub site_knobs: SiteKnobs,
}

/// Workflow types that move code: one at a time per environment.
pub(crate) fn moves_code(kind: &str) -> bool {
    matches!(
        kind,
        "deploy"
            | "create_environment"
            | "apply_upstream_updates"
            | "merge_dev_into_cloud_development_environment"
            | "merge_cloud_development_environment_into_dev"
            | "clone_database"
            | "clone_files"
    )
}

fn hex40(seed: &str) -> String {
    let a = derived_id("commit", seed).replace('-', "");
    let b = derived_id("commit2", seed).replace('-', "");
    format!("{a}{}", &b[..8])
}

/// A site's commits: a base on every initialized environment; then `live.deployable` on
/// test and dev only; then `test.deployable` on dev only; multidevs carry the base.
fn initial_commits(site: &Site, created: f64) -> Vec<CommitRec> {
    let env_ids: Vec<String> = site.envs.keys().cloned().collect();
    let mut commits = Vec::new();
    let mut push = |n: usize, labels: &[&str], what: &str| {
        let t = created + 86_400.0 * (commits.len() as f64 + 1.0);
        commits.push(CommitRec {
            hash: hex40(&format!("{}:{n}:{what}", site.name)),
            message: format!("{what} {n}"),
            datetime: iso(t),
            labels: labels.iter().map(|s| (*s).to_owned()).collect(),
        });
    };
    // A label is an environment's deploy tag on the commit: an environment not yet
    // initialized has none, so no commit carries its name (the platform's code log
    // says so; a deploy reads it to know the environment was initialized).
    let initialized = |env: &str| site.envs.get(env).is_none_or(|e| e.initialized);
    let mut base_labels: Vec<&str> = vec!["dev"];
    base_labels.extend(["test", "live"].into_iter().filter(|env| initialized(env)));
    base_labels.extend(env_ids.iter().filter(|e| !STANDARD_ENVS.contains(&e.as_str())).map(String::as_str));
    push(0, &base_labels, "Initial commit");
    let live_pending = site.envs.get("live").map_or(0, |e| e.deployable);
    let test_pending = site.envs.get("test").map_or(0, |e| e.deployable);
    for n in 0..live_pending {
        push(n as usize + 1, &["dev", "test"], "Release change");
    }
    for n in 0..test_pending {
        push(n as usize + 1, &["dev"], "Development change");
    }
    commits
}

/// A site's environments as the world describes them, with their backups.
fn initial_envs(site: &Site, created: f64) -> BTreeMap<String, EnvRec> {
    site.envs
        .iter()
        .map(|(env_id, e)| {
            let backups = (0..e.backups)
                .flat_map(|n| {
                    let t = WORLD_EPOCH + 300.0 * 86_400.0 + 86_400.0 * f64::from(n);
                    backup_set(&site.name, env_id, t, &["code", "files", "database"])
                })
                .collect();
            let rec = EnvRec {
                created,
                initialized: e.initialized,
                sftp: e.connection == "sftp",
                domains: e.domains.iter().map(|d| (d.clone(), false)).collect(),
                backups,
                lock: e.locked.then(|| ("ops".to_owned(), "locked-password".to_owned())),
                uncommitted: if e.connection == "sftp" { e.uncommitted } else { 0 },
                code_busy_until: 0.0,
                backup_schedule: BTreeMap::new(),
                https: e.https,
                site: SitePages { http: e.http.clone().unwrap_or_else(|| site.http.clone()), ..SitePages::default() },
            };
            (env_id.clone(), rec)
        })
        .collect()
}

fn iso(unix: f64) -> String {
    tb_core::timefmt::iso(unix.max(0.0) as i64)
}

impl SimState {
    pub(crate) fn new(world: &World) -> Self {
        let orgs: Vec<OrgRec> = world
            .orgs
            .iter()
            .map(|o| OrgRec {
                id: World::org_id(o),
                name: o.name.clone(),
                label: o.label.clone().unwrap_or_else(|| o.name.clone()),
                role: o.role.clone(),
            })
            .collect();
        let mut sites = BTreeMap::new();
        let mut names = HashMap::new();
        // The world's history is dated from a fixed day, not from now, so every run of the
        // same world has the same commits and backup file names.
        let created = WORLD_EPOCH;
        for site in &world.sites {
            let id = World::site_id(site);
            let org_id = site.org.as_ref().and_then(|n| orgs.iter().find(|o| &o.name == n)).map(|o| o.id.clone());
            let mut tags = BTreeMap::new();
            if let Some(org) = &org_id {
                tags.insert(org.clone(), site.tags.iter().cloned().collect());
            }
            let commits = initial_commits(site, created);
            let envs = initial_envs(site, created);
            names.insert(site.name.clone(), id.clone());
            sites.insert(
                id.clone(),
                SiteRec {
                    id,
                    name: site.name.clone(),
                    label: site.label.clone().unwrap_or_else(|| site.name.clone()),
                    org_id,
                    tags,
                    framework: site.framework.clone(),
                    upstream: site.upstream.clone(),
                    plan: site.plan.clone(),
                    frozen: site.frozen,
                    quota: site.multidev_quota,
                    upstream_updates: site.upstream_updates,
                    composer_updates: site.composer_updates,
                    remote_fails: site.remote_fails,
                    created,
                    envs,
                    commits,
                    addons: BTreeSet::new(),
                    team: Vec::new(),
                    supporting_orgs: Vec::new(),
                },
            );
        }
        Self {
            user_id: world.user_id(),
            email: world.user.email.clone(),
            first_name: world.user.first_name.clone(),
            last_name: world.user.last_name.clone(),
            machine_token: world.user.machine_token.clone(),
            sessions: HashMap::new(),
            orgs,
            sites,
            names,
            workflows: Vec::new(),
            boundaries: HashMap::new(),
            started: BTreeMap::new(),
            counter: 0,
            site_knobs: SiteKnobs::default(),
        }
    }

    /// Gives every site `knobs.history` finished workflows, newest first three hours apart
    /// before `now`, started by a teammate: the recent history a real site's list shows,
    /// from which clients learn how long each type takes. The types are common ones (code
    /// deploys, cache clears, backups) and every type the knobs give a duration to.
    pub(crate) fn seed_history(&mut self, knobs: &Knobs, now: f64) {
        let mut kinds: Vec<(String, &str)> =
            [("deploy", "test"), ("clear_cache", "live"), ("do_export", "live"), ("deploy", "live")]
                .into_iter()
                .map(|(k, e)| (k.to_owned(), e))
                .collect();
        for kind in knobs.workflow_durations.keys() {
            if !kinds.iter().any(|(k, _)| k == kind) {
                kinds.push((kind.clone(), "dev"));
            }
        }
        let teammate = derived_id("user", "teammate");
        let sites: Vec<(usize, String, String)> =
            self.sites.values().enumerate().map(|(i, s)| (i, s.id.clone(), s.name.clone())).collect();
        let mut history = Vec::new();
        for (index, site_id, name) in sites {
            for k in (0..knobs.history).rev() {
                let (kind, env) = &kinds[(index + k as usize) % kinds.len()];
                let run = knobs.scaled(knobs.duration_of(kind, roll(knobs.seed, &format!("history:{name}:{k}"))));
                let created_at = now - 3.0 * 3600.0 * f64::from(k + 1);
                history.push(WorkflowRec {
                    id: String::new(),
                    kind: kind.clone(),
                    site_id: site_id.clone(),
                    env: Some((*env).to_owned()),
                    params: json!({}),
                    user_id: teammate.clone(),
                    created_at,
                    started_at: created_at,
                    finish_at: created_at + run.as_secs_f64(),
                    ending: Ending::Succeeded,
                    applied: true,
                    description: String::new(),
                    seen_finished: None,
                });
            }
        }
        history.sort_by(|a, b| a.created_at.total_cmp(&b.created_at));
        for mut rec in history {
            rec.id = self.next_id("workflow");
            rec.description = describe(&rec.kind, rec.env.as_deref());
            self.workflows.push(rec);
        }
    }

    /// A fresh UUID-shaped id, unique in this simulator (sortable by creation).
    pub(crate) fn next_id(&mut self, kind: &str) -> String {
        self.counter += 1;
        let tail = derived_id(kind, &self.counter.to_string());
        format!("{:08x}{}", self.counter, &tail[8..])
    }

    /// Keeps the workflows `hold` holds running past `now`: each finishes no sooner than a
    /// moment after the gate was last seen shut.
    pub(crate) fn hold(&mut self, hold: &super::knobs::Hold, now: f64) {
        // One look at the gate per request, not one per workflow.
        if !hold.shut() {
            return;
        }
        for wf in self.workflows.iter_mut().filter(|w| !w.applied && w.finish_at <= now + 0.001) {
            if hold.covers(&wf.kind) {
                wf.finish_at = now + 0.001;
            }
        }
    }

    /// Applies the effects of every workflow finished by `now`, in finish order.
    pub(crate) fn advance(&mut self, now: f64) {
        let mut due: Vec<usize> = (0..self.workflows.len())
            .filter(|&i| !self.workflows[i].applied && self.workflows[i].finish_at <= now)
            .collect();
        due.sort_by(|&a, &b| self.workflows[a].finish_at.total_cmp(&self.workflows[b].finish_at));
        for i in due {
            self.workflows[i].applied = true;
            let wf = self.workflows[i].clone();
            if wf.ending == Ending::Succeeded {
                self.apply(&wf);
            }
        }
    }

    /// Workflows started and not finished at `now`.
    pub(crate) fn in_flight(&self, now: f64) -> usize {
        self.workflows.iter().filter(|w| w.finish_at > now).count()
    }

    #[expect(clippy::too_many_lines, reason = "one arm per workflow type: what finishing it changes in the world")]
    fn apply(&mut self, wf: &WorkflowRec) {
        // Organizations by machine name, as `add_site_organization_membership` names them.
        let org_by_name: HashMap<String, String> = self.orgs.iter().map(|o| (o.name.clone(), o.id.clone())).collect();
        let knobs = self.site_knobs;
        let Some(site) = self.sites.get_mut(&wf.site_id) else { return };
        let env = wf.env.clone().unwrap_or_default();
        let param_str = |key: &str| wf.params.get(key).and_then(Value::as_str).map(str::to_owned);
        match wf.kind.as_str() {
            "deploy" | "create_environment" => {
                let parent = if env == "live" { "test" } else { "dev" };
                for c in &mut site.commits {
                    if c.labels.contains(parent) {
                        c.labels.insert(env.clone());
                    }
                }
                let name = site.name.clone();
                if let Some(e) = site.envs.get_mut(&env) {
                    e.initialized = true;
                    let pages = &mut e.site;
                    pages.deploys += 1;
                    pages.warm_at = wf.finish_at + knobs.warmup;
                    // A broken site is mended by the next deploy; a working one may break.
                    pages.broken = !pages.broken
                        && (pages.http.breaks_on_deploy
                            || roll(knobs.seed, &format!("break:{name}.{env}#{}", pages.deploys)) < knobs.break_rate);
                }
            }
            "clear_cache" => {
                if let Some(e) = site.envs.get_mut(&env) {
                    e.site.warm_at = wf.finish_at + knobs.warmup;
                }
            }
            "do_export" => {
                let elements: Vec<&str> = ["code", "files", "database"]
                    .into_iter()
                    .filter(|el| wf.params.get(*el).and_then(Value::as_bool).unwrap_or(false))
                    .collect();
                let name = site.name.clone();
                if let Some(e) = site.envs.get_mut(&env) {
                    e.backups.extend(backup_set(&name, &env, wf.finish_at, &elements));
                }
            }
            "create_cloud_development_environment" => {
                let Some(new_env) = param_str("environment_id") else { return };
                let from = wf
                    .params
                    .pointer("/deploy/clone_database/from_environment")
                    .and_then(Value::as_str)
                    .unwrap_or("dev")
                    .to_owned();
                for c in &mut site.commits {
                    if c.labels.contains(&from) {
                        c.labels.insert(new_env.clone());
                    }
                }
                site.envs.insert(
                    new_env,
                    EnvRec {
                        created: wf.finish_at,
                        initialized: true,
                        sftp: false,
                        domains: Vec::new(),
                        backups: Vec::new(),
                        lock: None,
                        uncommitted: 0,
                        code_busy_until: 0.0,
                        backup_schedule: BTreeMap::new(),
                        https: true,
                        site: SitePages {
                            http: site.envs.get(&from).map(|e| e.site.http.clone()).unwrap_or_default(),
                            warm_at: wf.finish_at + knobs.warmup,
                            ..SitePages::default()
                        },
                    },
                );
            }
            "delete_cloud_development_environment" => {
                if let Some(gone) = param_str("environment_id") {
                    site.envs.remove(&gone);
                    for c in &mut site.commits {
                        c.labels.remove(&gone);
                    }
                }
            }
            "enable_git_mode" | "enable_on_server_development" => {
                if let Some(e) = site.envs.get_mut(&env) {
                    e.sftp = wf.kind == "enable_on_server_development";
                }
            }
            "lock_environment" => {
                if let Some(e) = site.envs.get_mut(&env) {
                    e.lock =
                        Some((param_str("username").unwrap_or_default(), param_str("password").unwrap_or_default()));
                }
            }
            "unlock_environment" => {
                if let Some(e) = site.envs.get_mut(&env) {
                    e.lock = None;
                }
            }
            "disable_ssl" => {
                if let Some(e) = site.envs.get_mut(&env) {
                    e.https = false;
                }
            }
            "add_site_user_membership" => {
                let email = param_str("user_email").unwrap_or_default();
                let role = param_str("role").unwrap_or_else(|| "team_member".to_owned());
                if !site.team.iter().any(|m| m.email.eq_ignore_ascii_case(&email)) {
                    let id = derived_id("user", &email.to_ascii_lowercase());
                    site.team.push(TeamMember { id, email, role });
                }
            }
            "add_site_organization_membership" => {
                let name = param_str("organization_name").unwrap_or_default();
                if let Some(id) = org_by_name.get(&name)
                    && site.org_id.as_ref() != Some(id)
                    && !site.supporting_orgs.contains(id)
                {
                    site.supporting_orgs.push(id.clone());
                }
            }
            "remove_site_organization_membership" => {
                let id = param_str("organization_id").unwrap_or_default();
                site.supporting_orgs.retain(|o| *o != id);
            }
            "change_site_service_level" => {
                if let Some((_, level, _)) = PLANS.iter().find(|(sku, _, _)| Some(*sku) == param_str("sku").as_deref())
                {
                    (*level).clone_into(&mut site.plan);
                }
            }
            "remove_site_user_membership" => {
                let id = param_str("user_id").unwrap_or_default();
                site.team.retain(|m| m.id != id);
            }
            "update_site_user_membership" => {
                let id = param_str("user_id").unwrap_or_default();
                if let Some(m) = site.team.iter_mut().find(|m| m.id == id) {
                    m.role = param_str("role").unwrap_or_else(|| m.role.clone());
                }
            }
            "switch_upstream" => {
                let wanted = param_str("upstream_id");
                let names: Vec<String> = self.upstream_names().into_iter().collect();
                let Some(site) = self.sites.get_mut(&wf.site_id) else { return };
                if let Some(name) = names.into_iter().find(|n| Some(derived_id("upstream", n)) == wanted) {
                    site.upstream = name;
                }
            }
            "change_backup_schedule" => {
                let days = wf.params.get("backup_schedule").and_then(Value::as_object).cloned().unwrap_or_default();
                if let Some(e) = site.envs.get_mut(&env) {
                    e.backup_schedule = days
                        .iter()
                        .filter_map(|(day, v)| {
                            let day = day.parse::<u8>().ok().filter(|d| *d < 7)?;
                            let ttl = v.get("ttl").and_then(Value::as_u64).filter(|t| *t > 0)?;
                            Some((day, (v.get("hour").and_then(Value::as_u64), ttl)))
                        })
                        .collect();
                }
            }
            "set_primary_domain" => {
                let primary = param_str("primary_domain");
                if let Some(e) = site.envs.get_mut(&env) {
                    for (d, p) in &mut e.domains {
                        *p = primary.as_deref() == Some(d.as_str());
                    }
                }
            }
            "apply_upstream_updates" => {
                let n = site.upstream_updates;
                site.upstream_updates = 0;
                site.composer_updates = 0;
                for k in 0..n {
                    let t = wf.finish_at;
                    let name = site.name.clone();
                    site.commits.push(CommitRec {
                        hash: hex40(&format!("{name}:upstream:{}:{k}", wf.id)),
                        message: format!("Update from upstream {k}"),
                        datetime: iso(t),
                        labels: [env.clone()].into_iter().collect(),
                    });
                }
            }
            "merge_dev_into_cloud_development_environment" => {
                for c in &mut site.commits {
                    if c.labels.contains("dev") {
                        c.labels.insert(env.clone());
                    }
                }
            }
            "merge_cloud_development_environment_into_dev" => {
                let from = param_str("from_environment").unwrap_or_default();
                for c in &mut site.commits {
                    if c.labels.contains(&from) {
                        c.labels.insert("dev".to_owned());
                    }
                }
            }
            "commit_and_push_on_server_changes" => {
                if let Some(e) = site.envs.get_mut(&env) {
                    e.uncommitted = 0;
                }
                let name = site.name.clone();
                site.commits.push(CommitRec {
                    hash: hex40(&format!("{name}:sftp:{}", wf.id)),
                    message: param_str("message").unwrap_or_else(|| "Commit from SFTP".to_owned()),
                    datetime: iso(wf.finish_at),
                    labels: [env.clone()].into_iter().collect(),
                });
            }
            "enable_addon" | "disable_addon" => {
                if let Some(addon) = param_str("addon") {
                    if wf.kind == "enable_addon" {
                        site.addons.insert(addon);
                    } else {
                        site.addons.remove(&addon);
                    }
                }
            }
            _ => {}
        }
    }

    /// Decides how a new workflow ends: a preflight refusal, an injected failure, or success.
    pub(crate) fn ending_for(
        knobs: &Knobs,
        site: &SiteRec,
        env: Option<&str>,
        kind: &str,
        forced: Option<&str>,
        ordinal: u64,
    ) -> Ending {
        if let Some(reason) = forced {
            return Ending::Failed(reason.to_owned());
        }
        if site.frozen {
            return Ending::Failed(format!(
                "This site is frozen. Please unfreeze {} before making changes.",
                site.name
            ));
        }
        if let Some(e) = env.and_then(|e| site.envs.get(e)) {
            if kind == "deploy" && !e.initialized {
                return Ending::Failed(
                    "The environment is not initialized: deploy with create_environment first".into(),
                );
            }
            if matches!(kind, "deploy" | "apply_upstream_updates" | "merge_cloud_development_environment_into_dev")
                && e.sftp
            {
                return Ending::Failed("The environment is in SFTP mode: switch it to git mode first".into());
            }
        }
        let key = format!("wf:{}:{}:{kind}:{ordinal}", site.name, env.unwrap_or(""));
        if knobs.fail_workflow_rate > 0.0 && roll(knobs.seed, &key) < knobs.fail_workflow_rate {
            return Ending::Failed(format!("Simulated failure of {kind}"));
        }
        Ending::Succeeded
    }

    // ---- JSON ------------------------------------------------------------------------

    pub(crate) fn user_json(&self) -> Value {
        let full = format!("{} {}", self.first_name, self.last_name).trim().to_owned();
        json!({
            "id": self.user_id,
            "user_id": self.user_id,
            "email": self.email,
            "created_at": 1_400_000_000,
            "dev_sites_count": 0,
            "destination_organization_id": null,
            "created_organization_id": null,
            "is_registered": true,
            "verified": true,
            "password": "SCRUBBED",
            "feature_flags": [],
            "profile": {
                "firstname": self.first_name,
                "lastname": self.last_name,
                "full_name": full,
                "modified": 1_400_000_000,
                "maxdevsites": 10,
                "organization": "",
                "job_function": "",
                "experiments": {},
            },
        })
    }

    fn holder_json(&self, site: &SiteRec) -> Value {
        match &site.org_id {
            Some(org) => json!({ "id": org, "profile": { "name": self.org_label(org) } }),
            None => {
                json!({ "id": self.user_id, "email": self.email, "profile": { "firstname": self.first_name, "lastname": self.last_name, "full_name": format!("{} {}", self.first_name, self.last_name) } })
            }
        }
    }

    fn org_label(&self, org_id: &str) -> String {
        self.orgs.iter().find(|o| o.id == org_id).map(|o| o.label.clone()).unwrap_or_default()
    }

    pub(crate) fn site_json(&self, site: &SiteRec) -> Value {
        let upstream_id = derived_id("upstream", &site.upstream);
        let upstream = json!({
            "url": format!("https://github.com/pantheon-upstreams/{}.git", site.upstream),
            "product_id": upstream_id,
            "branch": "master",
        });
        let (holder_type, holder_id) = match &site.org_id {
            Some(org) => ("organization", org.clone()),
            None => ("user", self.user_id.clone()),
        };
        let php = if site.framework.starts_with("drupal") { "83" } else { "82" };
        let created = site.created.floor();
        json!({
            "id": site.id,
            "name": site.name,
            "label": site.label,
            "created": created as i64,
            "created_by_user_id": self.user_id,
            "framework": site.framework,
            "frozen": site.frozen,
            "holder_id": holder_id,
            "holder_type": holder_type,
            "holder": self.holder_json(site),
            "organization": site.org_id.clone().unwrap_or_default(),
            "owner": self.user_id,
            "last_code_push": { "timestamp": iso(site.created), "user_uuid": self.user_id },
            "migration_completed_at": null,
            "migration_started_at": null,
            "php_version": php,
            "preferred_zone": "us-central1",
            "preferred_zone_label": "United States",
            "service_level": site.plan,
            "plan_name": plan_label(&site.plan),
            "upstream": upstream,
            "product": { "id": upstream_id, "longname": site.upstream },
            "attributes": { "label": site.label },
            "base_domain": null,
            "settings": self.site_settings_json(site),
            "add_ons": site.addons.iter().collect::<Vec<_>>(),
        })
    }

    /// `GET sites/{site}/environments` value for one environment (no `id`: it is the key).
    pub(crate) fn env_json(site: &SiteRec, env_id: &str, env: &EnvRec) -> Value {
        let head = site.commits.iter().rev().find(|c| c.labels.contains(env_id));
        let target_ref = match env_id {
            "dev" => "refs/heads/master".to_owned(),
            "test" | "live" => format!(
                "refs/tags/pantheon_{env_id}_{}",
                site.commits.iter().filter(|c| c.labels.contains(env_id)).count()
            ),
            other => format!("refs/heads/{other}"),
        };
        let (username, password) = env.lock.clone().map_or((Value::Null, Value::Null), |(u, p)| (json!(u), json!(p)));
        json!({
            "environment_created": env.created as i64,
            "dns_zone": "pantheonsite.io",
            "on_server_development": env.sftp,
            "lock": { "locked": env.lock.is_some(), "username": username, "password": password },
            "target_ref": target_ref,
            "target_commit": head.map(|c| c.hash.clone()).unwrap_or_default(),
            "randseed": derived_id("randseed", &format!("{}.{env_id}", site.name)).replace('-', "")[..16].to_owned(),
            "styx_cluster": "styx-01.pantheon.io",
            "watchers": 0,
            "diffstat": {},
            "maintenance": { "enabled": false },
            "ssl_enabled": true,
            "dedicated_ip": false,
            "number_allow_domains": 25,
            "php_version": if site.framework.starts_with("drupal") { "83" } else { "82" },
        })
    }

    /// The `settings` object of a site: its configuration as the platform keeps it.
    pub(crate) fn site_settings_json(&self, site: &SiteRec) -> Value {
        let (holder_type, holder_id) = match &site.org_id {
            Some(org) => ("organization", org.clone()),
            None => ("user", self.user_id.clone()),
        };
        json!({
            "id": site.id, "key": site.id, "name": site.name, "label": site.label,
            "created": site.created as i64, "created_by_user_id": self.user_id, "owner": self.user_id,
            "holder_id": holder_id, "holder_type": holder_type,
            "organization": site.org_id.clone().unwrap_or_default(),
            "framework": site.framework, "service_level": site.plan, "plan_name": plan_label(&site.plan),
            "support_plan": "regular_support", "instrument": derived_id("instrument", &site.name),
            "purchased_at": site.created as i64,
            "upstream": {
                "url": format!("https://github.com/pantheon-upstreams/{}.git", site.upstream),
                "product_id": derived_id("upstream", &site.upstream), "branch": "master",
            },
            "php_version": if site.framework.starts_with("drupal") { "83" } else { "82" }, "php_channel": "stable",
            "max_num_cdes": site.quota, "max_backups": 7, "min_backups": 0, "number_allow_domains": 200,
            "allow_domains": true, "allow_cacheserver": true, "allow_indexserver": true, "allow_read_slaves": false,
            "cacheserver": i32::from(site.addons.contains("cacheserver")),
            "indexserver": i32::from(site.addons.contains("indexserver")),
            "appserver": 1, "dbserver": 1, "failover_appserver": 0,
            "on_server_development": false, "drush_version": 10, "ssl_enabled": null, "dedicated_ip": null,
            "stunnel": false, "secure_runtime_access": false, "guilty_of_abuse": null,
            "pingdom": 0, "pingdom_chance": 0, "pingdom_manually_enabled": false,
            "preferred_zone": "us-central1", "replica_verification_strategy": "pt-heartbeat",
            "last_code_push": { "timestamp": iso(site.created), "user_uuid": self.user_id },
        })
    }

    /// `GET …/environments/{env}/settings`: the site's settings plus the environment's.
    pub(crate) fn env_settings_json(&self, site: &SiteRec, env_id: &str, env: &EnvRec) -> Value {
        let mut out = self.site_settings_json(site);
        let head = site.commits.iter().rev().find(|c| c.labels.contains(env_id));
        let extra = json!({
            "is_initialized": env.initialized,
            "site": site.id, "site_id": site.id, "environment": env_id,
            "environment_created": env.created as i64,
            "on_server_development": env.sftp, "ssl_enabled": env.https, "drush_version": 10,
            "dns_zone": "pantheonsite.io", "styx_cluster": "styx-01.pantheon.io",
            "randseed": derived_id("randseed", &format!("{}.{env_id}", site.name)).replace('-', "").to_uppercase(),
            "target_commit": head.map(|c| c.hash.clone()).unwrap_or_default(),
            "target_ref": if env_id == "dev" { "refs/heads/master".to_owned() } else { format!("refs/heads/{env_id}") },
            "current_num_domains": env.domains.len(), "max_total_domains": 0, "domain_lookup_rax": site.created as i64,
            "environment_variables": { "enforce_https": "transitional", "php_version": if site.framework.starts_with("drupal") { 8.3 } else { 8.2 } },
            "quicksilver_configuration": {},
            "preferred_availability_zone": "us-central1-f", "preferred_pool": null, "fileserver": 1,
            "migration_started_at": null, "migration_completed_at": null, "migration_method": null, "migration_origin_url": null,
            "redis": { "MemoryLimit": 64, "maxmemory": 52_428_800, "CPUShares": 8, "BlockIOWeight": 50 },
            "mysql": { "query_cache_size": 32, "innodb_buffer_pool_size": 128, "innodb_log_file_size": 50_331_648, "BlockIOWeight": 400, "MemoryLimit": 256, "CPUShares": 250 },
            "php-fpm": { "fpm_max_children": 4, "opcache_revalidate_freq": 0, "BlockIOWeight": 100, "MemoryLimit": 512, "apc_shm_size": 128, "php_memory_limit": 256, "CPUShares": 250 },
            "nginx": { "sendfile": "off", "aio": "off", "worker_processes": 2, "directio": "off" },
        });
        if let (Some(o), Value::Object(e)) = (out.as_object_mut(), extra) {
            o.extend(e);
        }
        out
    }

    pub(crate) fn commit_json(c: &CommitRec, parent: Option<&CommitRec>) -> Value {
        json!({
            "hash": c.hash,
            "author": "Ada Ops",
            "email": "ops@acme.example",
            "datetime": c.datetime,
            "labels": c.labels.iter().collect::<Vec<_>>(),
            "parents": parent.map(|p| vec![p.hash.clone()]).unwrap_or_default(),
            "message": c.message,
            "gravitar_url": "https://secure.gravatar.com/avatar/00000000000000000000000000000000?s=40&d=mm",
        })
    }

    pub(crate) fn domains_json(site: &SiteRec, env_id: &str, env: &EnvRec) -> Value {
        let platform = format!("{env_id}-{}.pantheonsite.io", site.name);
        let mut list = vec![json!({
            "id": platform, "key": platform, "type": "platform", "deletable": false,
            "dns_zone_name": "pantheonsite.io", "environment": env_id, "site_id": site.id,
            "status": "ok", "status_message": "Launched",
        })];
        for (domain, primary) in &env.domains {
            list.push(json!({
                "id": domain, "key": domain, "type": "custom", "deletable": true, "primary": primary,
                "dns_zone_name": null, "environment": env_id, "site_id": site.id,
                "status": "ok", "status_message": "Launched",
            }));
        }
        Value::Array(list)
    }

    /// `GET …/backups/schedule`: each scheduled day, `"0"` (Sunday) to `"6"`, as `{hour, ttl}`.
    pub(crate) fn schedule_json(env: &EnvRec) -> Value {
        Value::Object(
            env.backup_schedule
                .iter()
                .map(|(day, (hour, ttl))| (day.to_string(), json!({ "hour": hour, "ttl": ttl })))
                .collect(),
        )
    }

    pub(crate) fn catalog_json(site: &SiteRec, env_id: &str, env: &EnvRec) -> Value {
        if env.backups.is_empty() {
            return json!([]);
        }
        let mut map = serde_json::Map::new();
        let mut folders = BTreeMap::new();
        for b in &env.backups {
            folders.insert(b.folder.clone(), b.time);
            map.insert(
                format!("{}_{}", b.folder, b.element),
                json!({
                    "filename": b.filename, "folder": b.folder, "size": b.size,
                    "timestamp": b.time as i64, "start_time": b.time - 10.0, "finish_time": b.time,
                    "ttl": 31_536_000, "task_id": derived_id("task", &format!("{}.{env_id}:{}", site.name, b.folder)),
                    "endpoint_uuid": derived_id("endpoint", &site.name),
                    "BUILD_URL": "https://jenkins.example/job/backup/1/", "BUILD_TAG": "jenkins-backup-1",
                }),
            );
        }
        for (folder, time) in folders {
            map.insert(
                format!("{folder}_manifest"),
                json!({ "folder": folder, "size": 0, "timestamp": time as i64, "ttl": 31_536_000,
                        "total_dirs": 0, "total_files": 0, "total_size": 0, "total_entries": 0 }),
            );
        }
        Value::Object(map)
    }

    /// The upstreams the user may use (`GET users/{uid}/upstreams`): the ones its sites run
    /// and the platform's usual starting points, by machine name.
    pub(crate) fn upstream_names(&self) -> BTreeSet<String> {
        let mut names: BTreeSet<String> = self.sites.values().map(|s| s.upstream.clone()).collect();
        names.extend(["wordpress", "drupal-10-composer-managed", "empty"].map(str::to_owned));
        names.extend(self.orgs.iter().map(|o| format!("{}-starter", o.name)));
        names
    }

    /// `GET users/{uid}/upstreams`, with the recorded fields: each organization's custom
    /// upstream first (as recorded), then the others.
    pub(crate) fn user_upstreams_json(&self) -> Value {
        let entry = |name: &str, org: Option<&str>| {
            let framework = if name.contains("drupal") { "drupal8" } else { "wordpress" };
            json!({ "id": derived_id("upstream", name), "machine_name": name, "label": upstream_label(name),
                    "description": null, "connection_mode_default": "git", "icon_url": null,
                    "organization_id": org, "framework": framework, "is_public_spinup_allowed": true,
                    "type": if org.is_some() { "custom" } else { "core" }, "is_organization_association_forced": false })
        };
        let starters: Vec<(String, &str)> =
            self.orgs.iter().map(|o| (format!("{}-starter", o.name), o.id.as_str())).collect();
        let custom = starters.iter().map(|(name, org)| entry(name, Some(org)));
        let others = self
            .upstream_names()
            .into_iter()
            .filter(|name| !starters.iter().any(|(starter, _)| starter == name))
            .map(|name| entry(&name, None))
            .collect::<Vec<_>>();
        Value::Array(custom.chain(others).collect())
    }

    pub(crate) fn upstream_json(site: &SiteRec) -> Value {
        let behind = site.upstream_updates;
        let mut log = serde_json::Map::new();
        for k in 0..behind {
            let hash = hex40(&format!("{}:pending-upstream:{k}", site.name));
            log.insert(
                hash.clone(),
                json!({ "hash": hash, "author": "Upstream", "email": "upstream@example.com", "datetime": iso(site.created),
                        "labels": [], "parents": [], "message": format!("Upstream change {k}"),
                        "gravitar_url": "https://secure.gravatar.com/avatar/0?s=40&d=mm" }),
            );
        }
        let up_to_date = |env: &str| {
            let has = site.envs.contains_key(env);
            json!({ "has_code": has, "is_up_to_date_with_upstream": behind == 0 })
        };
        json!({
            "has_code": true, "behind": behind, "ahead": 0, "update_log": log,
            "remote_head": hex40(&format!("{}:upstream-head", site.upstream)),
            "remote_url": format!("https://github.com/pantheon-upstreams/{}.git", site.upstream),
            "remote_branch": "master", "has_remote_head": true,
            "dev": up_to_date("dev"), "test": up_to_date("test"), "live": up_to_date("live"),
        })
    }

    pub(crate) fn workflow_json(&self, wf: &WorkflowRec, now: f64, with_task: bool) -> Value {
        let finished = wf.finish_at <= now;
        let queued = !finished && now < wf.started_at;
        let phase = if finished {
            "finished"
        } else if queued {
            "queued"
        } else {
            "started"
        };
        let (result, active) = match (&wf.ending, finished) {
            (_, false) => (Value::Null, format!("{} (in progress)", wf.description)),
            (Ending::Succeeded, true) => (json!("succeeded"), active_description(wf)),
            (Ending::Failed(reason), true) => (json!("failed"), reason.clone()),
        };
        let run_time = if finished { json!(wf.finish_at - wf.started_at) } else { Value::Null };
        let queued_time = json!((wf.started_at - wf.created_at).max(0.0));
        let total_time = if finished { json!(wf.finish_at - wf.created_at) } else { Value::Null };
        let final_task_id = derived_id("task", &format!("{}:final", wf.id));
        let mut out = json!({
            "id": wf.id,
            "type": wf.kind,
            "description": wf.description,
            "active_description": active,
            "result": result,
            "phase": phase,
            "created_at": wf.created_at,
            "started_at": wf.started_at,
            "total_time": total_time,
            "run_time": run_time,
            "queued_time": queued_time,
            "step": if finished { 3 } else { 1 },
            "number_of_tasks": 3,
            "environment": wf.env,
            "environment_id": wf.env,
            "site_id": wf.site_id,
            "user_id": wf.user_id,
            "user_email": self.email,
            "user": { "user_id": wf.user_id, "email": self.email, "created_at": 1_400_000_000, "is_registered": true,
                      "password": "SCRUBBED", "destination_organization_id": null, "created_organization_id": null },
            "role": "owner",
            "key": wf.site_id,
            "trace_id": derived_id("trace", &wf.id),
            "trace_log_url": "https://logs.example/trace",
            "params": wf.params,
            "reason": "",
            "keep_forever": false,
            "has_operation_log_output": false,
            "task_ids": [derived_id("task", &format!("{}:first", wf.id)), final_task_id],
            "waiting_for_task_id": if finished { Value::Null } else { json!(derived_id("task", &format!("{}:first", wf.id))) },
            "final_task_id": if finished { json!(final_task_id) } else { Value::Null },
        });
        if finished {
            out["finished_at"] = json!(wf.finish_at);
            let reason = match &wf.ending {
                Ending::Succeeded => String::new(),
                Ending::Failed(r) => r.clone(),
            };
            out["final_task"] = json!({
                "id": final_task_id, "type": wf.kind, "reason": reason, "has_error": !reason.is_empty(),
                "result": result, "phase": "finished",
                "messages": if reason.is_empty() { json!({}) } else { json!({ iso(wf.finish_at): { "message": reason, "level": "ERROR" } }) },
                "responses": [],
            });
        } else if with_task {
            out["waiting_for_task"] = json!({
                "id": derived_id("task", &format!("{}:first", wf.id)), "type": wf.kind, "phase": phase,
                "result": null, "allow_concurrent": !moves_code(&wf.kind), "site_id": wf.site_id,
                "environment": wf.env, "workflow_id": wf.id, "messages": {}, "responses": [],
                "created_at": wf.created_at, "queued_time": null, "run_time": null, "total_time": null,
                "reason": "", "fn_name": wf.kind, "params": {},
            });
        }
        out
    }
}

fn active_description(wf: &WorkflowRec) -> String {
    match wf.kind.as_str() {
        "deploy" => format!("Deployed code to \"{}\"", wf.env.as_deref().unwrap_or("")),
        "clear_cache" => format!("Cleared caches for \"{}\"", wf.env.as_deref().unwrap_or("")),
        "do_export" => format!("Created a backup of \"{}\"", wf.env.as_deref().unwrap_or("")),
        _ => format!("{} completed", wf.description),
    }
}

/// The plans a site may be set to: SKU, service level, name.
pub(crate) const PLANS: &[(&str, &str, &str)] = &[
    ("plan-basic-monthly", "basic", "Basic"),
    ("plan-performance_small-monthly", "performance_small", "Performance Small"),
    ("plan-performance_medium-monthly", "performance_medium", "Performance Medium"),
    ("plan-elite-annual", "elite", "Elite"),
];

/// A plan's JSON (`sites/{site}/plan`, `…/plans`), by service level.
pub(crate) fn plan_json(level: &str) -> serde_json::Value {
    let (sku, name) = PLANS.iter().find(|(_, l, _)| *l == level).map_or_else(
        || (format!("plan-{level}-monthly"), plan_label(level)),
        |(sku, _, name)| ((*sku).to_owned(), (*name).to_owned()),
    );
    serde_json::json!({ "id": derived_id("plan", &sku), "sku": sku, "name": name, "billing_cycle": if sku.ends_with("annual") { "annual" } else { "monthly" } })
}

fn plan_label(plan: &str) -> String {
    let mut chars = plan.chars();
    chars.next().map(|c| c.to_uppercase().collect::<String>() + chars.as_str()).unwrap_or_default()
}

/// A backup set taken at `time`: one entry per element.
fn backup_set(site: &str, env: &str, time: f64, elements: &[&str]) -> Vec<BackupRec> {
    #[expect(clippy::cast_possible_truncation, reason = "unix seconds")]
    let ts = time as i64;
    let folder = format!("{ts}_backup");
    let stamp = iso(time).replace(':', "-");
    elements
        .iter()
        .map(|el| {
            let ext = if *el == "database" { "sql.gz" } else { "tar.gz" };
            let size = match *el {
                "code" => 48 * 1024,
                "files" => 160 * 1024,
                _ => 96 * 1024,
            } + (roll(0, &format!("{site}.{env}:{ts}:{el}")) * 4096.0) as u64;
            BackupRec {
                folder: folder.clone(),
                element: (*el).to_owned(),
                filename: format!("{site}_{env}_{stamp}_UTC_{el}.{ext}"),
                size,
                time,
            }
        })
        .collect()
}

/// The bytes of a simulated backup file: deterministic, so a resumed download can be
/// verified byte for byte.
pub(crate) fn file_bytes(name: &str, size: u64) -> Vec<u8> {
    let seed = roll(0, name).to_bits();
    let mut state = seed | 1;
    (0..size)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state & 0xff) as u8
        })
        .collect()
}

/// The `description` the platform gives a workflow of this type on this environment.
pub(super) fn describe(kind: &str, env: Option<&str>) -> String {
    let env = env.unwrap_or("");
    match kind {
        "deploy" => format!("Deploy code to \"{env}\""),
        "clear_cache" => format!("Clear cache for \"{env}\""),
        "do_export" => format!("Backup \"{env}\""),
        "create_cloud_development_environment" => format!("Create a Multidev environment \"{env}\""),
        "delete_cloud_development_environment" => format!("Delete a Multidev environment \"{env}\""),
        other => format!("{} on \"{env}\"", other.replace('_', " ")),
    }
}

/// An upstream's label from its machine name: `drupal-10-composer-managed` → `Drupal 10
/// Composer Managed`.
fn upstream_label(name: &str) -> String {
    name.split('-')
        .map(|w| {
            let mut c = w.chars();
            c.next().map(|f| f.to_ascii_uppercase().to_string() + c.as_str()).unwrap_or_default()
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_world_becomes_state_with_deployable_commits() {
        let world = World::builtin().unwrap();
        let state = SimState::new(&world);
        let id = &state.names["acme-web"];
        let site = &state.sites[id];
        let on = |env: &str| site.commits.iter().filter(|c| c.labels.contains(env)).count();
        // acme-web: test has 1 waiting from dev, live 1 waiting from test.
        assert_eq!((on("dev"), on("test"), on("live")), (3, 2, 1));
        assert!(site.envs.contains_key("ci-101"));
    }
}
