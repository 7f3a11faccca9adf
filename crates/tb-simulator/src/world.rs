//! The **world** file: the account, organizations and sites the simulator pretends to host
//! (DESIGN.md §7). `examples/world.yml` is the default world, compiled into the binary.
//!
//! A world describes state, not behaviour: per site its organization and tags, framework,
//! upstream, plan, frozen flag, multidev quota and upstream updates waiting; per environment
//! whether it is initialized, its connection mode, the commits waiting to be deployed into
//! it, its domains, backups and lock. Also the resolution source for `--simulate`.
//! Imports nothing from operations.

use std::collections::{BTreeMap, BTreeSet};

use serde::Deserialize;
use sha2::{Digest, Sha256};

use super::knobs::Knobs;
use tb_plan::plan::error::{ErrorCode, PlanError};
use tb_plan::plan::ops::check_env_id;
use tb_plan::plan::parse::{Budgets, parse_yaml, span_of};
use tb_plan::plan::source::PlanSource;
use tb_plan::resolve::{OrgMembership, OrgRecord, SiteRecord, SiteSource, SourceError};

/// The default world's text, compiled in so `--simulate` works from any directory.
pub const BUILTIN_WORLD: &str = include_str!("../../../examples/world.yml");
/// The name the built-in world is shown under.
pub const BUILTIN_WORLD_NAME: &str = "<built-in world>";

/// A parsed, checked world.
#[derive(Clone, Debug)]
pub struct World {
    pub user: User,
    /// How the simulator behaves (latency, durations, faults); defaults when absent.
    pub knobs: Knobs,
    pub orgs: Vec<Org>,
    /// Sorted by name.
    pub sites: Vec<Site>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct User {
    #[serde(default)]
    pub id: Option<String>,
    pub email: String,
    #[serde(default)]
    pub first_name: String,
    #[serde(default)]
    pub last_name: String,
    /// The machine token the simulator accepts for this user.
    #[serde(default = "default_token")]
    pub machine_token: String,
}

fn default_token() -> String {
    "simulated-machine-token".to_owned()
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Org {
    #[serde(default)]
    pub id: Option<String>,
    /// Machine name.
    pub name: String,
    #[serde(default)]
    pub label: Option<String>,
    /// The user's role: admin, developer, `team_member` or unprivileged.
    #[serde(default = "default_role")]
    pub role: String,
}

fn default_role() -> String {
    "admin".to_owned()
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Site {
    #[serde(default)]
    pub id: Option<String>,
    pub name: String,
    #[serde(default)]
    pub label: Option<String>,
    /// Organization machine name; absent for a team site owned by the user.
    #[serde(default)]
    pub org: Option<String>,
    /// Tags given by the site's organization.
    #[serde(default)]
    pub tags: Vec<String>,
    #[serde(default = "default_framework")]
    pub framework: String,
    /// Upstream label, such as `wordpress` or `drupal10`.
    #[serde(default = "default_upstream")]
    pub upstream: String,
    #[serde(default = "default_plan")]
    pub plan: String,
    #[serde(default)]
    pub frozen: bool,
    #[serde(default = "default_quota")]
    pub multidev_quota: u32,
    /// Upstream commits waiting to be applied to dev.
    #[serde(default)]
    pub upstream_updates: u32,
    /// Integrated Composer dependency updates waiting (the site builds with Composer when
    /// its framework or upstream says so).
    #[serde(default)]
    pub composer_updates: u32,
    /// Every drush and wp command on the site fails (exit 1), for runs that must see a
    /// remote command fail.
    #[serde(default)]
    pub remote_fails: bool,
    /// How its environments' sites answer over HTTPS (each environment may say otherwise).
    #[serde(default)]
    pub http: SiteHttp,
    /// Environments by id; dev, test and live exist even when not listed.
    #[serde(default)]
    pub envs: BTreeMap<String, Env>,
}

fn default_framework() -> String {
    "wordpress".to_owned()
}
fn default_upstream() -> String {
    "wordpress".to_owned()
}
fn default_plan() -> String {
    "basic".to_owned()
}
fn default_quota() -> u32 {
    10
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Env {
    #[serde(default = "yes")]
    pub initialized: bool,
    /// `git` or `sftp`.
    #[serde(default = "default_mode")]
    pub connection: String,
    /// Commits in the parent environment waiting to be deployed here (test: from dev;
    /// live: from test).
    #[serde(default)]
    pub deployable: u32,
    /// Custom domains.
    #[serde(default)]
    pub domains: Vec<String>,
    /// Finished backup sets in the catalog.
    #[serde(default)]
    pub backups: u32,
    #[serde(default)]
    pub locked: bool,
    /// HTTPS on (the settings' `ssl_enabled`); `https:remove` turns it off.
    #[serde(default = "yes")]
    pub https: bool,
    /// Files changed in SFTP mode and not yet committed.
    #[serde(default)]
    pub uncommitted: u32,
    /// How this environment's site answers, when not as its site's `http` says.
    #[serde(default)]
    pub http: Option<SiteHttp>,
}

/// How a site answers a page request (DESIGN.md §7, the sites).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SiteHttp {
    /// The status of every page.
    pub status: u16,
    /// The page's text; by default a page naming the site and environment.
    pub body: Option<String>,
    /// Seconds before the answer, in real time (the time scale does not shrink it: a
    /// check bounds latency in real time).
    pub latency: f64,
    /// Answers `/` with a 301 to this URL (on every host of the environment but its own).
    pub redirect: Option<String>,
    /// Its next deploy breaks it: it answers 500 until a later deploy.
    pub breaks_on_deploy: bool,
}

impl SiteHttp {
    /// Checks ranges: a status HTTP has, a latency of at most a minute.
    fn check(&self) -> Result<(), String> {
        if !(100..=599).contains(&self.status) {
            return Err(format!("status must be an HTTP status (100 to 599), not {}", self.status));
        }
        if !(self.latency.is_finite() && (0.0..=60.0).contains(&self.latency)) {
            return Err(format!("latency must be 0 to 60 seconds, not {}", self.latency));
        }
        Ok(())
    }
}

impl Default for SiteHttp {
    fn default() -> Self {
        Self { status: 200, body: None, latency: 0.0, redirect: None, breaks_on_deploy: false }
    }
}

fn yes() -> bool {
    true
}
fn default_mode() -> String {
    "git".to_owned()
}

impl Default for Env {
    fn default() -> Self {
        Self {
            initialized: true,
            connection: default_mode(),
            deployable: 0,
            domains: Vec::new(),
            backups: 0,
            locked: false,
            https: true,
            uncommitted: 0,
            http: None,
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WorldRaw {
    user: User,
    #[serde(default)]
    orgs: Vec<Org>,
    sites: Vec<serde_saphyr::Spanned<Site>>,
    #[serde(default)]
    simulator: Option<Knobs>,
}

/// A stable UUID-shaped id derived from a kind and a name, so worlds need not spell ids out
/// and every run of the same world sees the same ids.
#[must_use]
pub fn derived_id(kind: &str, name: &str) -> String {
    let digest = Sha256::digest(format!("{kind}:{name}").as_bytes());
    let hex = tb_core::hex::hex(&digest[..16]);
    format!("{}-{}-{}-{}-{}", &hex[0..8], &hex[8..12], &hex[12..16], &hex[16..20], &hex[20..32])
}

impl World {
    /// The built-in default world.
    ///
    /// # Errors
    /// Never in a released build: a test parses the built-in world.
    pub fn builtin() -> Result<Self, Vec<PlanError>> {
        Self::parse(&PlanSource::new(BUILTIN_WORLD_NAME, BUILTIN_WORLD))
    }

    /// Parses and checks a world file.
    ///
    /// # Errors
    /// YAML errors, unknown keys, duplicate or malformed site names, unknown organizations,
    /// invalid environment ids; every semantic error at once.
    pub fn parse(source: &PlanSource) -> Result<Self, Vec<PlanError>> {
        let raw: WorldRaw = parse_yaml(source, Budgets::WORLD).map_err(|e| vec![e])?;
        let mut errors = Vec::new();
        let org_names: BTreeSet<&str> = raw.orgs.iter().map(|o| o.name.as_str()).collect();
        if org_names.len() != raw.orgs.len() {
            errors.push(PlanError::new(ErrorCode::DuplicateKey, "the world lists an organization twice"));
        }
        let mut seen = BTreeSet::new();
        for spanned in &raw.sites {
            let site = &spanned.value;
            let span = span_of(spanned);
            if !seen.insert(site.name.clone()) {
                errors.push(
                    PlanError::new(ErrorCode::DuplicateKey, format!("site `{}` is listed twice", site.name))
                        .at(span, "again here"),
                );
            }
            if site.name.is_empty()
                || !site.name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
            {
                errors.push(
                    PlanError::new(ErrorCode::BadValue, format!("site name `{}` is not valid", site.name))
                        .at(span, "site names use lowercase letters, digits and `-`"),
                );
            }
            if let Some(org) = &site.org
                && !org_names.contains(org.as_str())
            {
                errors.push(
                    PlanError::new(
                        ErrorCode::UnknownTarget,
                        format!("site `{}` belongs to unknown organization `{org}`", site.name),
                    )
                    .at(span, "declare the organization under `orgs:`"),
                );
            }
            for env in site.envs.keys() {
                if let Err(why) = check_env_id(env) {
                    errors.push(
                        PlanError::new(ErrorCode::BadEnvId, format!("site `{}`: {why}", site.name))
                            .at(span, "in this site"),
                    );
                }
            }
            for http in std::iter::once(&site.http).chain(site.envs.values().filter_map(|e| e.http.as_ref())) {
                if let Err(why) = http.check() {
                    errors.push(
                        PlanError::new(ErrorCode::BadValue, format!("site `{}`: http: {why}", site.name))
                            .at(span, "in this site"),
                    );
                }
            }
            if site.envs.values().map(|e| e.connection.as_str()).find(|c| *c != "git" && *c != "sftp").is_some() {
                errors.push(
                    PlanError::new(
                        ErrorCode::BadValue,
                        format!("site `{}`: connection must be git or sftp", site.name),
                    )
                    .at(span, "in this site"),
                );
            }
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        let mut sites: Vec<Site> = raw.sites.into_iter().map(|s| s.value).collect();
        for site in &mut sites {
            for std_env in ["dev", "test", "live"] {
                site.envs.entry(std_env.to_owned()).or_default();
            }
        }
        sites.sort_by(|a, b| a.name.cmp(&b.name));
        let knobs = raw.simulator.unwrap_or_default();
        if let Err(why) = knobs.check() {
            return Err(vec![PlanError::new(ErrorCode::BadValue, format!("simulator: {why}"))]);
        }
        Ok(Self { user: raw.user, knobs, orgs: raw.orgs, sites })
    }

    #[must_use]
    pub fn user_id(&self) -> String {
        self.user.id.clone().unwrap_or_else(|| derived_id("user", &self.user.email))
    }

    #[must_use]
    pub fn org_id(org: &Org) -> String {
        org.id.clone().unwrap_or_else(|| derived_id("org", &org.name))
    }

    #[must_use]
    pub fn site_id(site: &Site) -> String {
        site.id.clone().unwrap_or_else(|| derived_id("site", &site.name))
    }

    fn org_record(org: &Org) -> OrgRecord {
        OrgRecord {
            id: Self::org_id(org),
            name: org.name.clone(),
            label: org.label.clone().unwrap_or_else(|| org.name.clone()),
        }
    }

    /// A site as the listings would show it.
    #[must_use]
    pub fn site_record(&self, site: &Site) -> SiteRecord {
        let memberships = site
            .org
            .as_ref()
            .and_then(|name| self.orgs.iter().find(|o| &o.name == name))
            .map(|org| {
                let rec = Self::org_record(org);
                vec![OrgMembership {
                    org_id: rec.id,
                    org_name: rec.name,
                    org_label: rec.label,
                    tags: site.tags.clone(),
                }]
            })
            .unwrap_or_default();
        SiteRecord {
            id: Self::site_id(site),
            name: site.name.clone(),
            label: site.label.clone().unwrap_or_else(|| site.name.clone()),
            framework: site.framework.clone(),
            upstream_id: derived_id("upstream", &site.upstream),
            upstream_label: site.upstream.clone(),
            plan: site.plan.clone(),
            frozen: site.frozen,
            memberships,
        }
    }

    #[must_use]
    pub fn site(&self, name: &str) -> Option<&Site> {
        self.sites.iter().find(|s| s.name == name)
    }
}

impl SiteSource for World {
    async fn orgs(&self) -> Result<Vec<OrgRecord>, SourceError> {
        Ok(self.orgs.iter().filter(|o| o.role != "unprivileged").map(Self::org_record).collect())
    }

    async fn sites(&self) -> Result<Vec<SiteRecord>, SourceError> {
        Ok(self.sites.iter().map(|s| self.site_record(s)).collect())
    }

    async fn site_by_name(&self, name: &str) -> Result<Option<SiteRecord>, SourceError> {
        Ok(self.site(name).map(|s| self.site_record(s)))
    }

    async fn environments(&self, site: &SiteRecord) -> Result<Vec<String>, SourceError> {
        Ok(self.site(&site.name).map(|s| s.envs.keys().cloned().collect()).unwrap_or_default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_world_parses_and_is_sizeable() {
        let world = World::builtin().unwrap();
        assert!(world.sites.len() >= 40, "{} sites", world.sites.len());
        assert_eq!(world.orgs.len(), 2);
        assert!(world.sites.windows(2).all(|w| w[0].name < w[1].name));
    }

    #[test]
    fn derived_ids_are_stable_and_uuid_shaped() {
        let id = derived_id("site", "acme-web");
        assert_eq!(id, derived_id("site", "acme-web"));
        assert_eq!(id.len(), 36);
        assert_ne!(id, derived_id("site", "acme-blog"));
    }

    #[test]
    fn bad_worlds_report_every_problem() {
        let text = "user: {email: a@b.example}\norgs: [{name: o}]\nsites:\n  - {name: Bad_Name}\n  - {name: x, org: nope}\n  - {name: x}\n";
        let errors = World::parse(&PlanSource::new("w.yml", text)).unwrap_err();
        let codes: Vec<ErrorCode> = errors.iter().map(|e| e.code).collect();
        assert_eq!(codes, [ErrorCode::BadValue, ErrorCode::UnknownTarget, ErrorCode::DuplicateKey]);
    }
}
