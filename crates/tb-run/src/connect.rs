//! Connections for runs that talk to Pantheon, from resolved [`Settings`]: starts the
//! in-process simulator under `--simulate`, builds the [`ApiClient`] into a
//! [`Connection`] (closed when dropped), records what it talks to as an [`Endpoint`], and
//! adapts the client to the resolver's [`SiteSource`].

use std::collections::BTreeMap;

use tb_core::secret::Secret;
use tb_operations::api::resources::SiteListing;
use tb_operations::api::wire::{Site, UserOrgMembership};
use tb_operations::api::{ApiClient, ApiConfig, ApiError, SessionStore};
use tb_plan::resolve::{OrgMembership, OrgRecord, SiteRecord, SiteSource, SourceError};
use tb_settings::Settings;
use tb_simulator::{Simulator, World};

use super::{Refusal, RunError};
use tb_core::endpoint::Endpoint;

/// A live connection: the client, the simulator it talks to (under `--simulate`), and the
/// runtime both run on. Dropping it stops the simulator; [`Connection::close`] also returns
/// its counters.
pub struct Connection {
    pub runtime: tokio::runtime::Runtime,
    pub client: ApiClient,
    pub simulator: Option<Simulator>,
    pub endpoint: Endpoint,
}

impl Connection {
    /// Stops the in-process simulator, if any, and returns its counters.
    pub fn close(mut self) -> Option<tb_simulator::Stats> {
        let simulator = self.simulator.take();
        simulator.map(|sim| self.runtime.block_on(sim.stop()))
    }

    /// The logged-in user's email, as `auth whoami` says it: who a run acts as.
    pub fn user_email(&self) -> Result<String, RunError> {
        self.runtime
            .block_on(self.client.me())
            .map(|user| user.email)
            .map_err(|e| RunError::unreachable("cannot log in", e))
    }

    /// The logged-in user's id (logging in if needed): a failure is exit 3.
    pub fn user_id(&self) -> Result<String, RunError> {
        self.runtime.block_on(self.client.user_id()).map_err(|e| RunError::unreachable("cannot log in", e))
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        if let Some(sim) = self.simulator.take() {
            self.runtime.block_on(sim.stop());
        }
    }
}

/// A multi-threaded tokio runtime for the work that resolves targets or calls the API.
pub fn runtime() -> Result<tokio::runtime::Runtime, RunError> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| RunError::internal("cannot start the async runtime", e))
}

/// Starts the in-process simulator for `--simulate` on `runtime`, and a client pointed at it.
pub fn simulate(
    runtime: tokio::runtime::Runtime,
    world: Option<&std::path::Path>,
    settings: &Settings,
) -> Result<(Connection, String), RunError> {
    let (world, name, sha256) = load_world(world)?;
    let knobs = world.knobs.clone();
    let simulator = runtime
        .block_on(Simulator::start_recording(&world, knobs, 0, false))
        .map_err(|e| RunError::internal("cannot start the simulator", e))?;
    let client = ApiClient::new(simulator_config(settings, &simulator))
        .map_err(|e| RunError::internal("cannot make a client for the simulator", e))?;
    let endpoint = Endpoint::Simulator { world: name.clone(), world_sha256: sha256 };
    Ok((Connection { runtime, client, simulator: Some(simulator), endpoint }, format!("simulator world {name}")))
}

/// A client for the real API, on `runtime`.
pub fn connect_api(runtime: tokio::runtime::Runtime, settings: &Settings) -> Result<Connection, RunError> {
    let client = ApiClient::new(api_config(settings)).map_err(Refusal::Client)?;
    Ok(Connection { runtime, client, simulator: None, endpoint: Endpoint::Api { base: settings.api_base() } })
}

/// The client configuration for the real API.
#[must_use]
pub fn api_config(settings: &Settings) -> ApiConfig {
    ApiConfig {
        base: settings.api_base(),
        connect_timeout: settings.connect_timeout,
        read_timeout: settings.read_timeout,
        verify_tls: settings.verify_tls,
        max_requests: settings.max_requests,
        requests_per_second: settings.requests_per_second,
        burst: settings.burst,
        attempts: settings.request_attempts,
        budget: settings.request_budget,
        backoff: settings.retry_backoff,
        parallel_pagination: settings.parallel_pagination,
        poll_floor: std::time::Duration::from_secs(1),
        poll_interval: settings.poll_interval,
        machine_token: settings.machine_token.clone(),
        user: settings.user.clone(),
        store: SessionStore::Files { cache_dir: settings.cache_dir.clone(), tokens_dir: settings.tokens_dir.clone() },
    }
}

/// The same, pointed at an in-process simulator: its address, its world's token, its time
/// scale, and memory-only sessions.
#[must_use]
pub fn simulator_config(settings: &Settings, sim: &Simulator) -> ApiConfig {
    let scale = sim.knobs().time_scale;
    ApiConfig {
        base: sim.api_base(),
        machine_token: Some(Secret::new(sim.machine_token())),
        user: None,
        store: SessionStore::Memory,
        poll_floor: sim.poll_floor(),
        backoff: settings.retry_backoff.mul_f64(scale.min(1.0)),
        poll_interval: settings.poll_interval.map(|every| every.mul_f64(scale)),
        // The simulator's clock runs `1/scale` times faster, so the request rate does too:
        // a simulated run then takes the time a real one would, scaled.
        requests_per_second: settings.requests_per_second / scale,
        ..api_config(settings)
    }
}

/// Whether any login is at hand: a token in the environment, or terminus's saved session or
/// tokens.
#[must_use]
pub fn has_credentials(settings: &Settings) -> bool {
    if settings.machine_token.is_some() || settings.cache_dir.join("session").is_file() {
        return true;
    }
    std::fs::read_dir(&settings.tokens_dir)
        .is_ok_and(|mut entries| entries.any(|e| e.is_ok_and(|e| e.file_name().to_string_lossy().contains('@'))))
}

/// A world file's text into a [`World`], or the built-in one; with its name and text hash.
pub fn load_world(path: Option<&std::path::Path>) -> Result<(World, String, String), RunError> {
    if let Some(file) = path {
        let shown = file.display().to_string();
        let text = super::prepare::read_text(file, tb_plan::plan::parse::Budgets::WORLD.bytes)?;
        let source = tb_plan::plan::PlanSource::new(shown.clone(), text);
        let sha256 = source.sha256();
        World::parse(&source).map(|w| (w, shown, sha256)).map_err(|errors| RunError::Plan { file: source, errors })
    } else {
        let source =
            tb_plan::plan::PlanSource::new(tb_simulator::world::BUILTIN_WORLD_NAME, tb_simulator::world::BUILTIN_WORLD);
        World::builtin().map(|w| (w, tb_simulator::world::BUILTIN_WORLD_NAME.to_owned(), source.sha256())).map_err(
            |errors| RunError::bug(format!("the built-in world is invalid ({} errors): this is a bug", errors.len())),
        )
    }
}

/// Target resolution through the API listings.
pub struct ApiSource {
    pub client: ApiClient,
}

fn source_error(e: &ApiError) -> SourceError {
    SourceError(e.to_string())
}

impl ApiSource {
    fn record(site: &Site, id: &str, memberships: Vec<OrgMembership>) -> SiteRecord {
        let text = |v: Option<&serde_json::Value>, key: &str| {
            v.and_then(|v| v.get(key)).and_then(serde_json::Value::as_str).unwrap_or_default().to_owned()
        };
        let upstream_id = {
            let from_upstream = text(site.upstream.as_ref(), "product_id");
            if from_upstream.is_empty() { text(site.product.as_ref(), "id") } else { from_upstream }
        };
        SiteRecord {
            id: id.to_owned(),
            name: site.name.clone(),
            label: site.label.clone().unwrap_or_else(|| site.name.clone()),
            framework: site.framework.clone().unwrap_or_default(),
            upstream_id,
            upstream_label: text(site.product.as_ref(), "longname"),
            plan: site.service_level.clone().unwrap_or_default(),
            frozen: site.frozen,
            memberships,
        }
    }

    fn org_record(m: &UserOrgMembership) -> OrgRecord {
        let profile = m.organization.profile.as_ref();
        let name = profile.and_then(|p| p.machine_name.clone()).unwrap_or_else(|| m.organization.id.clone());
        let label = profile.and_then(|p| p.name.clone()).unwrap_or_else(|| name.clone());
        OrgRecord { id: m.organization.id.clone(), name, label }
    }

    fn merge(listing: &SiteListing) -> Vec<SiteRecord> {
        let orgs: BTreeMap<&str, OrgRecord> =
            listing.orgs.iter().map(|m| (m.organization.id.as_str(), Self::org_record(m))).collect();
        let mut sites: BTreeMap<String, SiteRecord> = BTreeMap::new();
        for m in &listing.team_sites {
            sites.entry(m.id.clone()).or_insert_with(|| Self::record(&m.site, &m.id, Vec::new()));
        }
        for (org_id, members) in &listing.org_sites {
            let Some(org) = orgs.get(org_id.as_str()) else { continue };
            for m in members {
                let membership = OrgMembership {
                    org_id: org.id.clone(),
                    org_name: org.name.clone(),
                    org_label: org.label.clone(),
                    tags: m.tags.clone(),
                };
                sites
                    .entry(m.id.clone())
                    .or_insert_with(|| Self::record(&m.site, &m.id, Vec::new()))
                    .memberships
                    .push(membership);
            }
        }
        let mut list: Vec<SiteRecord> = sites.into_values().collect();
        list.sort_by(|a, b| a.name.cmp(&b.name));
        list
    }
}

impl SiteSource for ApiSource {
    async fn orgs(&self) -> Result<Vec<OrgRecord>, SourceError> {
        let orgs = self.client.user_orgs().await.map_err(|e| source_error(&e))?;
        Ok(orgs.iter().filter(|m| m.role.as_deref() != Some("unprivileged")).map(Self::org_record).collect())
    }

    async fn sites(&self) -> Result<Vec<SiteRecord>, SourceError> {
        let listing = self.client.site_listing().await.map_err(|e| source_error(&e))?;
        // Every site object the listings gave is kept: the run reads none of them again.
        let listed = listing.team_sites.iter().map(|m| (m.id.clone(), m.site.clone()));
        let in_orgs =
            listing.org_sites.iter().flat_map(|(_, members)| members.iter().map(|m| (m.id.clone(), m.site.clone())));
        self.client.remember_sites(listed.chain(in_orgs));
        Ok(Self::merge(&listing))
    }

    async fn site_by_name(&self, name: &str) -> Result<Option<SiteRecord>, SourceError> {
        let Some(id) = self.client.site_id(name).await.map_err(|e| source_error(&e))? else { return Ok(None) };
        match self.client.site(&id).await {
            Ok(site) => Ok(Some(Self::record(&site, &id, Vec::new()))),
            Err(e) if e.is_not_found() || e.status() == Some(403) => Ok(None),
            Err(e) => Err(source_error(&e)),
        }
    }

    async fn environments(&self, site: &SiteRecord) -> Result<Vec<String>, SourceError> {
        let envs = self.client.environments(&site.id).await.map_err(|e| source_error(&e))?;
        Ok(envs.into_keys().collect())
    }
}
