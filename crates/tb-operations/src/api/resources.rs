//! Typed reads of the API's resources (pantheon-api.md §5): users, site names, sites,
//! environments, code logs, domains, backups, workflows, and the paged membership listings.

use futures::future::{try_join, try_join_all};
use tracing::debug;

use super::wire::{
    BackupCatalog, Commit, Domain, EnvSettings, Environments, OrgSiteMembership, Site, SiteName, SiteUserMembership,
    UpstreamUpdates, User, UserOrgMembership, UserSiteMembership, Workflow,
};
use super::{ApiClient, ApiError, KnownName};

/// Everything `site:list` reads: the user's organizations, team sites, and each
/// organization's sites with their tags.
#[derive(Clone, Debug, Default)]
pub struct SiteListing {
    pub orgs: Vec<UserOrgMembership>,
    pub team_sites: Vec<UserSiteMembership>,
    /// Per organization the user may list (role other than `unprivileged`), in `orgs` order.
    pub org_sites: Vec<(String, Vec<OrgSiteMembership>)>,
}

/// Splits `site.env` as terminus does: on `.`, part 0 the site, part 1 the env, the rest
/// ignored.
#[must_use]
pub fn parse_site_env(arg: &str) -> (&str, Option<&str>) {
    let mut parts = arg.split('.');
    let site = parts.next().unwrap_or_default();
    (site, parts.next().filter(|e| !e.is_empty()))
}

/// The UUID inside a site argument, if any (terminus's unanchored, lower-cased match).
#[must_use]
pub fn find_uuid(arg: &str) -> Option<String> {
    let lower = arg.to_ascii_lowercase();
    let bytes = lower.as_bytes();
    let groups = [8, 4, 4, 4, 12];
    (0..bytes.len()).find_map(|start| {
        let mut at = start;
        for (i, len) in groups.iter().enumerate() {
            if i > 0 {
                if bytes.get(at) != Some(&b'-') {
                    return None;
                }
                at += 1;
            }
            let part = bytes.get(at..at + len)?;
            if !part.iter().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(b)) {
                return None;
            }
            at += len;
        }
        Some(lower[start..at].to_owned())
    })
}

impl ApiClient {
    /// `GET users/{uid}`: the logged-in user.
    pub async fn me(&self) -> Result<User, ApiError> {
        let uid = self.user_id().await?;
        self.get(&["users", &uid], &[]).await
    }

    /// A site's id from its name (`GET site-names/{name}`, cached for the run), or the UUID
    /// the argument contains. `None` when the platform knows no such site.
    pub async fn site_id(&self, name: &str) -> Result<Option<String>, ApiError> {
        if let Some(uuid) = find_uuid(name) {
            return Ok(Some(uuid));
        }
        match self.cached_name(name) {
            Some(KnownName::Id(id)) => return Ok(Some(id)),
            Some(KnownName::Missing) => return Ok(None),
            None => {}
        }
        let id = match self.get::<SiteName>(&["site-names", name], &[]).await {
            Ok(found) => Some(found.id),
            Err(e) if e.is_not_found() => {
                debug!(site = name, "no such site: {e}");
                None
            }
            Err(e) => return Err(e),
        };
        self.cache_name(name, id.clone());
        Ok(id)
    }

    /// `GET sites/{id}?site_state=true`.
    pub async fn site(&self, site_id: &str) -> Result<Site, ApiError> {
        if let Some(known) = self.known_site(site_id) {
            return Ok(known);
        }
        let site: Site = self.get(&["sites", site_id], &[("site_state", "true")]).await?;
        self.remember_sites([(site_id.to_owned(), site.clone())]);
        Ok(site)
    }

    /// `GET sites/{id}/environments`, keyed by env id.
    pub async fn environments(&self, site_id: &str) -> Result<Environments, ApiError> {
        self.get(&["sites", site_id, "environments"], &[]).await
    }

    /// `GET sites/{id}/environments/{env}/settings`.
    pub async fn env_settings(&self, site_id: &str, env: &str) -> Result<EnvSettings, ApiError> {
        self.get(&["sites", site_id, "environments", env, "settings"], &[]).await
    }

    /// `GET users/{uid}/upstreams`: the upstreams the user may use (unpaged), each with
    /// `id`, `machine_name`, `label` and sometimes `product_id`.
    pub async fn user_upstreams(&self) -> Result<Vec<serde_json::Value>, ApiError> {
        let uid = self.user_id().await?;
        self.get(&["users", &uid, "upstreams"], &[]).await
    }

    /// `GET …/backups/schedule`: the automatic backup schedule, by day (`"0"` is Sunday) →
    /// `{hour, ttl}`; a day without a `ttl` has no backup.
    pub async fn backup_schedule(&self, site_id: &str, env: &str) -> Result<serde_json::Value, ApiError> {
        self.get(&["sites", site_id, "environments", env, "backups", "schedule"], &[]).await
    }

    /// `GET …/code-log`, newest first.
    pub async fn code_log(&self, site_id: &str, env: &str) -> Result<Vec<Commit>, ApiError> {
        self.get(&["sites", site_id, "environments", env, "code-log"], &[]).await
    }

    /// `GET …/domains`.
    pub async fn domains(&self, site_id: &str, env: &str) -> Result<Vec<Domain>, ApiError> {
        self.get(&["sites", site_id, "environments", env, "domains"], &[]).await
    }

    /// `GET …/backups/catalog`.
    pub async fn backup_catalog(&self, site_id: &str, env: &str) -> Result<BackupCatalog, ApiError> {
        self.get(&["sites", site_id, "environments", env, "backups", "catalog"], &[]).await
    }

    /// `GET sites/{id}/workflows`: the newest 100, newest first.
    pub async fn workflows(&self, site_id: &str) -> Result<Vec<Workflow>, ApiError> {
        self.get(&["sites", site_id, "workflows"], &[]).await
    }

    /// `GET sites/{id}/workflows/{wf}`: the polling URL for site and env workflows alike.
    pub async fn workflow(&self, site_id: &str, workflow_id: &str) -> Result<Workflow, ApiError> {
        self.get(&["sites", site_id, "workflows", workflow_id], &[]).await
    }

    /// `GET …/environments/{env}/variables`: a flat object of environment variables.
    pub async fn env_variables(&self, site_id: &str, env: &str) -> Result<serde_json::Value, ApiError> {
        self.get(&["sites", site_id, "environments", env, "variables"], &[]).await
    }

    /// `GET …/environments/{env}/build/updates`: Integrated Composer's dependency updates, as
    /// terminus counts them (added, updated and removed dependencies together).
    pub async fn composer_updates(&self, site_id: &str, env: &str) -> Result<usize, ApiError> {
        let updates: serde_json::Value =
            self.get(&["sites", site_id, "environments", env, "build", "updates"], &[]).await?;
        let count = |key: &str| updates.get(key).and_then(serde_json::Value::as_array).map_or(0, Vec::len);
        Ok(count("added_dependencies") + count("updated_dependencies") + count("removed_dependencies"))
    }

    /// Whether Integrated Composer builds the environment: a truthy `BUILD_STEP` among its
    /// variables (terminus's `isBuildStepEnabled`).
    pub async fn build_step(&self, site_id: &str, env: &str) -> Result<bool, ApiError> {
        let platform_variables = self.env_variables(site_id, env).await?;
        Ok(platform_variables.get("BUILD_STEP").is_some_and(|v| {
            v.as_bool().unwrap_or(false) || v.as_str().is_some_and(|s| !s.is_empty() && s != "0" && s != "false")
        }))
    }

    /// `GET …/on-server-development/diffstat`: files changed in SFTP mode, not committed.
    pub async fn diffstat(&self, site_id: &str, env: &str) -> Result<serde_json::Value, ApiError> {
        self.get(&["sites", site_id, "environments", env, "on-server-development", "diffstat"], &[]).await
    }

    /// `GET sites/{id}/code-upstream-updates?base_branch=refs/heads/{branch}`.
    pub async fn upstream_updates(&self, site_id: &str, branch: &str) -> Result<UpstreamUpdates, ApiError> {
        let base = format!("refs/heads/{branch}");
        self.get(&["sites", site_id, "code-upstream-updates"], &[("base_branch", &base)]).await
    }

    /// `users/{uid}/memberships/sites` (paged): team sites.
    pub async fn user_sites(&self) -> Result<Vec<UserSiteMembership>, ApiError> {
        let uid = self.user_id().await?;
        self.paged(&["users", &uid, "memberships", "sites"]).await
    }

    /// `users/{uid}/memberships/organizations` (paged).
    pub async fn user_orgs(&self) -> Result<Vec<UserOrgMembership>, ApiError> {
        let uid = self.user_id().await?;
        self.paged(&["users", &uid, "memberships", "organizations"]).await
    }

    /// `organizations/{org}/memberships/sites` (paged), with the organization's tags.
    pub async fn org_sites(&self, org_id: &str) -> Result<Vec<OrgSiteMembership>, ApiError> {
        self.paged(&["organizations", org_id, "memberships", "sites"]).await
    }

    /// `sites/{id}/memberships/organizations` (paged): the organizations supporting a site.
    pub async fn site_orgs(&self, site_id: &str) -> Result<Vec<UserOrgMembership>, ApiError> {
        self.paged(&["sites", site_id, "memberships", "organizations"]).await
    }

    /// `sites/{id}/plan`: the site's plan.
    pub async fn site_plan(&self, site_id: &str) -> Result<serde_json::Value, ApiError> {
        self.get(&["sites", site_id, "plan"], &[]).await
    }

    /// `accounts/site-account-forwarding/{id}/plans`: the plans the site may be set to.
    pub async fn site_plans(&self, site_id: &str) -> Result<Vec<serde_json::Value>, ApiError> {
        self.get(&["accounts", "site-account-forwarding", site_id, "plans"], &[]).await
    }

    /// `…/environments/{env}/traffic?duration=` (`28d`, `12w`, `12m`).
    pub async fn traffic(&self, site_id: &str, env: &str, duration: &str) -> Result<serde_json::Value, ApiError> {
        self.get(&["sites", site_id, "environments", env, "traffic"], &[("duration", duration)]).await
    }

    /// `sites/{id}/memberships/users` (paged).
    pub async fn site_users(&self, site_id: &str) -> Result<Vec<SiteUserMembership>, ApiError> {
        self.paged(&["sites", site_id, "memberships", "users"]).await
    }

    /// Every site the user reaches, as `site:list` gathers it (pantheon-api.md §5.10).
    /// Independent collections are fetched concurrently unless `parallel_pagination` is off;
    /// pages within one collection always follow each other (the cursor needs the page
    /// before).
    pub async fn site_listing(&self) -> Result<SiteListing, ApiError> {
        let listable = |orgs: &[UserOrgMembership]| -> Vec<String> {
            orgs.iter()
                .filter(|m| m.role.as_deref() != Some("unprivileged"))
                .map(|m| m.organization.id.clone())
                .collect()
        };
        if !self.config().parallel_pagination {
            let team_sites = self.user_sites().await?;
            let orgs = self.user_orgs().await?;
            let mut org_sites = Vec::new();
            for org in listable(&orgs) {
                let sites = self.org_sites(&org).await?;
                org_sites.push((org, sites));
            }
            return Ok(SiteListing { orgs, team_sites, org_sites });
        }
        let orgs_and_sites = async {
            let orgs = self.user_orgs().await?;
            let ids = listable(&orgs);
            let lists = try_join_all(ids.iter().map(|id| self.org_sites(id))).await?;
            Ok::<_, ApiError>((orgs, ids.into_iter().zip(lists).collect()))
        };
        let (team_sites, (orgs, org_sites)) = try_join(self.user_sites(), orgs_and_sites).await?;
        Ok(SiteListing { orgs, team_sites, org_sites })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn site_arguments_split_like_terminus() {
        assert_eq!(parse_site_env("acme-web.live"), ("acme-web", Some("live")));
        assert_eq!(parse_site_env("acme-web"), ("acme-web", None));
        assert_eq!(parse_site_env("a.b.c"), ("a", Some("b")));
    }

    #[test]
    fn uuids_are_found_anywhere() {
        let id = "11111111-2222-3333-4444-555555555555";
        assert_eq!(find_uuid(id).as_deref(), Some(id));
        assert_eq!(find_uuid(&format!("x{}", id.to_uppercase())).as_deref(), Some(id));
        assert_eq!(find_uuid("acme-web"), None);
    }
}
