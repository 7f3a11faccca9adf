//! Target resolution: turns each job's `on.sites` and `on.env` into concrete sites and
//! environments, through a [`SiteSource`] (the Pantheon API listings, or a simulator world).
//!
//! Matching selectors and globs is pure logic here, shared by every source, so the world
//! file and the API resolve the same plan the same way. Must not import the executor,
//! operations or reporters.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;

use serde::{Deserialize, Serialize};

use crate::plan::error::{ErrorCode, PlanError, did_you_mean};
use crate::plan::model::{Job, Plan, Selector, SiteSet, SiteSetKind};
use crate::plan::ops::{EnvRule, Scope};
use tb_core::glob::{is_glob, matches};

/// A site as listings describe it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SiteRecord {
    pub id: String,
    pub name: String,
    #[serde(default)]
    pub label: String,
    #[serde(default)]
    pub framework: String,
    /// Upstream id and label, either of which a selector may name.
    #[serde(default)]
    pub upstream_id: String,
    #[serde(default)]
    pub upstream_label: String,
    #[serde(default)]
    pub plan: String,
    #[serde(default)]
    pub frozen: bool,
    #[serde(default)]
    pub memberships: Vec<OrgMembership>,
}

/// A site's membership in an organization, with the tags that organization gave it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrgMembership {
    pub org_id: String,
    pub org_name: String,
    pub org_label: String,
    pub tags: Vec<String>,
}

/// An organization the user belongs to.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrgRecord {
    pub id: String,
    pub name: String,
    pub label: String,
}

impl OrgRecord {
    /// Selectors may name an organization by id, machine name or label.
    #[must_use]
    pub fn is_named(&self, text: &str) -> bool {
        self.id == text || self.name == text || self.label == text
    }
}

/// A failure of the source itself (network, authentication), as opposed to a plan mistake.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub struct SourceError(pub String);

/// Where sites and environments come from.
pub trait SiteSource {
    /// The user's organizations.
    fn orgs(&self) -> impl Future<Output = Result<Vec<OrgRecord>, SourceError>>;
    /// Every site the user reaches (team sites and organizations' sites), with memberships.
    fn sites(&self) -> impl Future<Output = Result<Vec<SiteRecord>, SourceError>>;
    /// Looks up one site by name; `None` when it does not exist or is not reachable.
    fn site_by_name(&self, name: &str) -> impl Future<Output = Result<Option<SiteRecord>, SourceError>>;
    /// Environment ids of a site.
    fn environments(&self, site: &SiteRecord) -> impl Future<Output = Result<Vec<String>, SourceError>>;
    /// Whether [`SiteSource::sites`] can list (an offline source cannot).
    fn lists(&self) -> bool {
        true
    }
}

/// Above this many named sites, the membership listings (a few paged requests for every
/// site the user reaches) are cheaper than one look-up per name (two requests each).
pub const NAMED_LOOKUP_LIMIT: usize = 8;

/// Look-ups (and environment lists) in flight at once during resolution.
const LOOKUPS_AT_ONCE: usize = 10;

/// One site a job runs on, with its environments (empty for site operations).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SiteTargets {
    pub site: String,
    pub site_id: String,
    pub envs: Vec<String>,
    /// The site is frozen: terminus refuses most operations on it before any request.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub frozen: bool,
}

/// Where each job runs, in plan order.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Resolved {
    /// Keyed by job name; account jobs map to an empty list.
    pub jobs: BTreeMap<String, Vec<SiteTargets>>,
}

/// Why resolution failed.
#[derive(Debug)]
pub enum ResolveFailure {
    /// The plan names sites, organizations or environments that do not resolve.
    Plan(Vec<PlanError>),
    /// The source could not answer.
    Source(SourceError),
}

impl From<SourceError> for ResolveFailure {
    fn from(e: SourceError) -> Self {
        Self::Source(e)
    }
}

/// Resolves every job's targets through `source`, in the fewest requests.
///
/// The listings (the user's sites and each organization's, fetched concurrently by the
/// source) are read when a job uses a selector or a glob, or when the plan names more than
/// [`NAMED_LOOKUP_LIMIT`] sites: they give every site object at once. Fewer names are looked
/// up concurrently, as is a name the listings lack (a site reached by another route). Each
/// site is resolved once; environment lists are fetched concurrently, only for sites whose
/// job uses an environment glob.
///
/// # Errors
/// Plan errors (unknown site or organization, a job with no sites) with their spans, or the
/// source's failure.
pub async fn resolve<S: SiteSource>(plan: &Plan, source: &S) -> Result<Resolved, ResolveFailure> {
    let known = Known::read(plan, source).await?;
    let chosen = choose_sites(plan, &known)?;
    let env_lists = env_lists(plan, &chosen, source).await?;
    let mut resolved = Resolved::default();
    for (index, sites) in chosen {
        let job = &plan.jobs[index];
        let targets = sites
            .into_iter()
            .map(|site| {
                let envs =
                    if job.op.scope() == Scope::Env { job_envs(job, env_lists.get(&site.name)) } else { Vec::new() };
                SiteTargets { site: site.name, site_id: site.id, envs, frozen: site.frozen }
            })
            .collect();
        resolved.jobs.insert(job.id.as_str().to_owned(), targets);
    }
    Ok(resolved)
}

/// What the source told of the sites the plan names: the listings when read, each named
/// site (`None`: it does not exist), and the names to suggest for one that does not.
struct Known {
    all_sites: Option<Vec<SiteRecord>>,
    orgs: Option<Vec<OrgRecord>>,
    by_name: BTreeMap<String, Option<SiteRecord>>,
    suggestions: BTreeSet<String>,
}

impl Known {
    /// Reads the listings when a job needs them, and looks up each other name once, several
    /// at a time.
    async fn read<S: SiteSource>(plan: &Plan, source: &S) -> Result<Self, ResolveFailure> {
        use futures::StreamExt as _;
        let kinds = || plan.jobs.iter().filter_map(|j| j.sites.as_ref().map(|set| &set.kind));
        let needs_selectors = kinds().any(|kind| matches!(kind, SiteSetKind::Selector(_)));
        let needs_globs = kinds().any(|kind| match kind {
            SiteSetKind::List(items) => items.iter().any(|p| is_glob(&p.text)),
            SiteSetKind::Selector(_) => false,
        });
        let names: BTreeSet<&str> = kinds()
            .filter_map(|kind| match kind {
                SiteSetKind::List(items) => Some(items.iter().filter(|p| !is_glob(&p.text)).map(|p| p.text.as_str())),
                SiteSetKind::Selector(_) => None,
            })
            .flatten()
            .collect();
        let needs_listing = needs_selectors || needs_globs || (names.len() > NAMED_LOOKUP_LIMIT && source.lists());
        let (all_sites, orgs) = match (needs_listing, needs_selectors) {
            (false, _) => (None, None),
            (true, false) => (Some(source.sites().await?), None),
            (true, true) => {
                let (sites, orgs) = futures::try_join!(source.sites(), source.orgs())?;
                (Some(sites), Some(orgs))
            }
        };
        let mut by_name: BTreeMap<String, Option<SiteRecord>> = BTreeMap::new();
        for s in all_sites.iter().flatten() {
            by_name.insert(s.name.clone(), Some(s.clone()));
        }
        // Every name the listings did not give, looked up once, several at a time.
        let missing: Vec<&str> = names.iter().copied().filter(|n| !by_name.contains_key(*n)).collect();
        let looked_up: Vec<(String, Result<Option<SiteRecord>, SourceError>)> = futures::stream::iter(missing)
            .map(|name| async move { (name.to_owned(), source.site_by_name(name).await) })
            .buffer_unordered(LOOKUPS_AT_ONCE)
            .collect()
            .await;
        for (name, found) in looked_up {
            by_name.insert(name, found?);
        }
        // A name that does not exist: the listings give the did-you-mean (only on this error path).
        let mut suggestions: BTreeSet<String> =
            by_name.iter().filter(|(_, s)| s.is_some()).map(|(n, _)| n.clone()).collect();
        if all_sites.is_none()
            && source.lists()
            && by_name.values().any(Option::is_none)
            && let Ok(listed) = source.sites().await
        {
            suggestions.extend(listed.into_iter().map(|s| s.name));
        }
        Ok(Self { all_sites, orgs, by_name, suggestions })
    }
}

/// Each job's sites, by its index, in order and once each; every unknown name, organization
/// and empty selection is an error, all of them at once.
fn choose_sites(plan: &Plan, known: &Known) -> Result<Vec<(usize, Vec<SiteRecord>)>, ResolveFailure> {
    let mut errors = Vec::new();
    let mut chosen: Vec<(usize, Vec<SiteRecord>)> = Vec::new();
    for (index, job) in plan.jobs.iter().enumerate() {
        let Some(set) = &job.sites else {
            chosen.push((index, Vec::new()));
            continue;
        };
        let errors_before = errors.len();
        let Some(mut sites) = job_sites(set, known, &mut errors) else {
            chosen.push((index, Vec::new()));
            continue;
        };
        let mut seen = BTreeSet::new();
        sites.retain(|s| seen.insert(s.name.clone()));
        // A job whose named sites were all unknown already has an error for each name.
        let named_unknown = errors.len() > errors_before;
        if sites.is_empty() && !named_unknown && errors.iter().all(|e| e.offset() != set.span.offset()) {
            let what = set.target.as_ref().map_or_else(|| "this selection".to_owned(), |t| format!("target `{t}`"));
            errors.push(
                PlanError::new(ErrorCode::NoTargets, format!("job `{}` matches no site", job.id))
                    .at(set.span, format!("{what} matched nothing"))
                    .help("check the organization, tag and globs, or remove the job"),
            );
        }
        chosen.push((index, sites));
    }
    if !errors.is_empty() {
        errors.sort_by_key(PlanError::offset);
        errors.dedup();
        return Err(ResolveFailure::Plan(errors));
    }
    Ok(chosen)
}

/// The sites one job's set names or selects; `None` when its organization is unknown (the
/// error is pushed).
fn job_sites(set: &SiteSet, known: &Known, errors: &mut Vec<PlanError>) -> Option<Vec<SiteRecord>> {
    let all_sites = known.all_sites.iter().flatten();
    match &set.kind {
        SiteSetKind::List(items) => {
            let mut sites = Vec::new();
            for item in items {
                if is_glob(&item.text) {
                    let mut found: Vec<&SiteRecord> =
                        all_sites.clone().filter(|s| matches(&item.text, &s.name)).collect();
                    found.sort_by(|a, b| a.name.cmp(&b.name));
                    sites.extend(found.into_iter().cloned());
                    continue;
                }
                match known.by_name.get(&item.text).cloned().flatten() {
                    Some(site) => sites.push(site),
                    None => errors.push(
                        PlanError::new(ErrorCode::UnknownSite, format!("site `{}` was not found", item.text))
                            .at(item.span, "no such site, or not reachable with this account")
                            .help_opt(did_you_mean(&item.text, known.suggestions.iter().map(String::as_str))),
                    ),
                }
            }
            Some(sites)
        }
        SiteSetKind::Selector(selector) => {
            let orgs = known.orgs.as_deref().unwrap_or_default();
            if let Some(org) = &selector.org
                && !orgs.iter().any(|o| o.is_named(org))
            {
                errors.push(
                    PlanError::new(ErrorCode::UnknownTarget, format!("organization `{org}` was not found"))
                        .at(set.span, "in this selector")
                        .help_opt(did_you_mean(org, orgs.iter().map(|o| o.name.as_str())).or_else(|| {
                            Some(format!(
                                "your organizations: {}",
                                orgs.iter().map(|o| o.name.as_str()).collect::<Vec<_>>().join(", ")
                            ))
                        })),
                );
                return None;
            }
            let mut found: Vec<SiteRecord> =
                all_sites.filter(|s| selector_matches(selector, orgs, s)).cloned().collect();
            found.sort_by(|a, b| a.name.cmp(&b.name));
            Some(found)
        }
    }
}

/// Environment lists, fetched once per site that some job's environment glob needs, several
/// at a time; each in dev, test, live, multidev order.
async fn env_lists<S: SiteSource>(
    plan: &Plan,
    chosen: &[(usize, Vec<SiteRecord>)],
    source: &S,
) -> Result<BTreeMap<String, Vec<String>>, SourceError> {
    use futures::StreamExt as _;
    let mut wanted: BTreeMap<&str, &SiteRecord> = BTreeMap::new();
    for (index, sites) in chosen {
        if plan.jobs[*index].envs.iter().any(|e| is_glob(&e.text)) {
            for site in sites {
                wanted.entry(site.name.as_str()).or_insert(site);
            }
        }
    }
    let fetched: Vec<(String, Result<Vec<String>, SourceError>)> = futures::stream::iter(wanted.into_values())
        .map(|site| async move { (site.name.clone(), source.environments(site).await) })
        .buffer_unordered(LOOKUPS_AT_ONCE)
        .collect()
        .await;
    let mut env_lists: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (name, envs) in fetched {
        let mut envs = envs?;
        envs.sort_by_key(|e| env_order(e));
        env_lists.insert(name, envs);
    }
    Ok(env_lists)
}

/// dev, test, live first, then multidevs by name.
fn env_order(env: &str) -> (u8, String) {
    match env {
        "dev" => (0, String::new()),
        "test" => (1, String::new()),
        "live" => (2, String::new()),
        other => (3, other.to_owned()),
    }
}

fn job_envs(job: &Job, listed: Option<&Vec<String>>) -> Vec<String> {
    let rule: EnvRule = job.op.env_rule();
    let mut out: Vec<String> = Vec::new();
    for pattern in &job.envs {
        if is_glob(&pattern.text) {
            for env in listed.into_iter().flatten() {
                if matches(&pattern.text, env) && rule.allows(env) && !out.contains(env) {
                    out.push(env.clone());
                }
            }
        } else if !out.contains(&pattern.text) {
            out.push(pattern.text.clone());
        }
    }
    out
}

/// Whether a site satisfies every key of a selector.
#[must_use]
pub fn selector_matches(selector: &Selector, orgs: &[OrgRecord], site: &SiteRecord) -> bool {
    let org = selector.org.as_ref().and_then(|name| orgs.iter().find(|o| o.is_named(name)));
    let memberships: Vec<&OrgMembership> = match (&selector.org, org) {
        (Some(_), Some(org)) => site.memberships.iter().filter(|m| m.org_id == org.id).collect(),
        (Some(_), None) => return false,
        (None, _) => site.memberships.iter().collect(),
    };
    if selector.org.is_some() && memberships.is_empty() {
        return false;
    }
    if let Some(tag) = &selector.tag
        && !memberships.iter().any(|m| m.tags.iter().any(|t| t == tag))
    {
        return false;
    }
    if let Some(up) = &selector.upstream
        && &site.upstream_id != up
        && &site.upstream_label != up
    {
        return false;
    }
    if let Some(framework) = &selector.framework
        && &site.framework != framework
    {
        return false;
    }
    if let Some(plan) = &selector.plan
        && &site.plan != plan
    {
        return false;
    }
    !selector.exclude.iter().any(|pattern| matches(pattern, &site.name))
}
