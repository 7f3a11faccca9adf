//! Site and account operations: add-ons, tags, site information, team and account listings
//! (pantheon-api.md §5.8, §5.10, §5.11).

use reqwest::Method;
use serde_json::{Value, json};

use super::api::Repeat;
use super::api::wire::{Site, UserOrgMembership};
use super::api::workflows::{StartWorkflow, WorkflowScope, WorkflowType};
use super::decide::{Decision, settle};
use super::{OpContext, OpError, OpOutput, Ops, Target};

/// A workflow of `kind` on the site itself (no environment), with `params`.
fn on_site(target: &Target, kind: WorkflowType, params: Value) -> StartWorkflow {
    StartWorkflow {
        scope: WorkflowScope::Site { site_id: target.site_id.clone(), env: None },
        kind,
        params,
        marker: None,
    }
}

/// `redis:enable` / `solr:enable` (site workflow `enable_addon`) and `redis:disable` /
/// `solr:disable` (`disable_addon`), with the add-on's platform name.
pub(super) async fn addon(
    ops: &Ops,
    target: &Target,
    kind: WorkflowType,
    addon: &str,
    ctx: &impl OpContext,
) -> Result<OpOutput, OpError> {
    let start = on_site(target, kind, json!({ "addon": addon }));
    ops.run_workflow(&start, ctx).await?;
    let done = if kind == WorkflowType::DisableAddon { "disabled" } else { "enabled" };
    Ok(OpOutput { changed: true, message: format!("{addon} {done}"), data: None })
}

/// `new-relic:enable` / `new-relic:disable`: site workflow `enable_new_relic_for_site` /
/// `disable_new_relic_for_site` with `{"converge": true}`, as terminus sends it. terminus
/// makes no check first, and neither does this: the platform's state of New Relic is not in
/// anything it reads.
pub(super) async fn new_relic(
    ops: &Ops,
    target: &Target,
    enable: bool,
    ctx: &impl OpContext,
) -> Result<OpOutput, OpError> {
    let kind = if enable { WorkflowType::EnableNewRelicForSite } else { WorkflowType::DisableNewRelicForSite };
    let start = on_site(target, kind, json!({ "converge": true }));
    ops.run_workflow(&start, ctx).await?;
    let done = if enable { "enabled" } else { "disabled" };
    Ok(OpOutput { changed: true, message: format!("New Relic {done}"), data: None })
}

/// A change to a site's team (`site:team:add`, `remove`, `role`).
pub(crate) enum TeamChange {
    Add { role: String },
    Remove,
    Role { role: String },
}

/// The check of a team change, from the site's team (`sites/{site}/memberships/users`): the
/// member by email (any case). Adding a member already so, removing one not there, or giving
/// a role already held is nothing to do; adding one there with another role, or changing the
/// role of one not there, is refused. Acts with the workflow type and its parameters.
pub(crate) async fn decide_team(
    ops: &Ops,
    target: &Target,
    member: &str,
    change: &TeamChange,
) -> Result<Decision<(WorkflowType, Value)>, OpError> {
    let team = ops.client.site_users(&target.site_id).await?;
    let found = team.iter().find(|m| m.user.email.eq_ignore_ascii_case(member));
    let site = &target.site;
    Ok(match (change, found) {
        (TeamChange::Add { role }, None) => Decision::act(
            (WorkflowType::AddSiteUserMembership, json!({ "user_email": member, "role": role })),
            format!("would add {member} to {site}'s team as {role}"),
        ),
        (TeamChange::Add { role }, Some(m)) if m.role.as_deref() == Some(role.as_str()) => {
            Decision::nothing(format!("{member} is on {site}'s team as {role} already"))
        }
        (TeamChange::Add { .. }, Some(m)) => Decision::refuse(format!(
            "{member} is on {site}'s team as {} already (site:team:role changes a role)",
            m.role.as_deref().unwrap_or("a member")
        )),
        (TeamChange::Remove, None) => Decision::nothing(format!("{member} is not on {site}'s team")),
        (TeamChange::Remove, Some(m)) => Decision::act(
            (WorkflowType::RemoveSiteUserMembership, json!({ "user_id": m.id })),
            format!("would remove {member} from {site}'s team"),
        ),
        (TeamChange::Role { .. }, None) => Decision::refuse(format!("{member} is not on {site}'s team")),
        (TeamChange::Role { role }, Some(m)) if m.role.as_deref() == Some(role.as_str()) => {
            Decision::nothing(format!("{member} is {role} on {site}'s team already"))
        }
        (TeamChange::Role { role }, Some(m)) => Decision::act(
            (WorkflowType::UpdateSiteUserMembership, json!({ "user_id": m.id, "role": role })),
            format!("would make {member} {role} on {site}'s team"),
        ),
    })
}

/// `site:team:add` / `remove` / `role`: the site workflow terminus starts, after
/// [`decide_team`].
pub(super) async fn team_change(
    ops: &Ops,
    target: &Target,
    member: &str,
    change: TeamChange,
    ctx: &impl OpContext,
) -> Result<OpOutput, OpError> {
    let (kind, params) = settle!(decide_team(ops, target, member, &change).await?);
    let start = on_site(target, kind, params);
    ops.run_workflow(&start, ctx).await?;
    let site = &target.site;
    let message = match change {
        TeamChange::Add { role } => format!("added {member} to {site}'s team as {role}"),
        TeamChange::Remove => format!("removed {member} from {site}'s team"),
        TeamChange::Role { role } => format!("made {member} {role} on {site}'s team"),
    };
    Ok(OpOutput { changed: true, message, data: None })
}

fn org_name(m: &UserOrgMembership) -> (String, String) {
    let profile = m.organization.profile.as_ref();
    (
        profile.and_then(|p| p.machine_name.clone()).unwrap_or_default(),
        profile.and_then(|p| p.name.clone()).unwrap_or_default(),
    )
}

/// An organization of the user by id, machine name or label.
async fn find_org(ops: &Ops, org: &str) -> Result<Option<String>, OpError> {
    let orgs = ops.client.user_orgs().await?;
    Ok(orgs
        .iter()
        .find(|m| {
            let (name, label) = org_name(m);
            m.organization.id == org || name == org || label == org
        })
        .map(|m| m.organization.id.clone()))
}

fn not_a_member(org: &str) -> String {
    format!("you are not a member of an organization named {org}")
}

/// `tag:add`'s and `tag:remove`'s check: the user must be in the organization (by id,
/// machine name or label) and the site in it; the tag already in the wanted state is nothing
/// to do. Acts with the organization's id.
pub(crate) async fn decide_tag(
    ops: &Ops,
    target: &Target,
    org: &str,
    tag: &str,
    add: bool,
) -> Result<Decision<String>, OpError> {
    let Some(org_id) = find_org(ops, org).await? else {
        return Ok(Decision::refuse(not_a_member(org)));
    };
    let members = ops.client.org_sites(&org_id).await?;
    let Some(member) = members.into_iter().find(|m| m.id == target.site_id) else {
        return Ok(Decision::refuse(format!("{} is not in the organization {org}", target.site)));
    };
    let has = member.tags.iter().any(|t| t == tag);
    if has == add {
        let state = if add { "already has" } else { "does not have" };
        return Ok(Decision::nothing(format!("{} {state} the tag {tag} in {org}", target.site)));
    }
    let would = if add { "would add" } else { "would remove" };
    Ok(Decision::act(org_id, format!("{would} the tag {tag}")))
}

/// `tag:add SITE ORG TAG` / `tag:remove SITE ORG TAG`; the tag already in the wanted state
/// ends unchanged.
pub(super) async fn tag(ops: &Ops, target: &Target, org: &str, tag: &str, add: bool) -> Result<OpOutput, OpError> {
    let org_id = settle!(decide_tag(ops, target, org, tag, add).await?);
    if add {
        let body = json!({ tag: { "sites": [target.site_id] } });
        ops.client
            .send(Method::PUT, &["organizations", &org_id, "tags"], &[], Some(&body), Repeat::OnlyIfRefused)
            .await?;
    } else {
        ops.client
            .send(
                Method::DELETE,
                &["organizations", &org_id, "tags", tag, "sites"],
                &[("entity", &target.site_id)],
                None,
                Repeat::OnlyIfRefused,
            )
            .await?;
    }
    let done = if add { "tagged" } else { "untagged" };
    Ok(OpOutput { changed: true, message: format!("{done} {tag} in {org}"), data: None })
}

fn site_row(site: &Site, id: &str) -> Value {
    let upstream = site.upstream.as_ref().and_then(|u| u.get("url")).cloned().unwrap_or(Value::Null);
    json!({
        "id": id, "name": site.name, "label": site.label, "framework": site.framework,
        "organization": site.organization, "plan_name": site.plan_name, "service_level": site.service_level,
        "owner": site.owner, "frozen": site.frozen, "upstream": upstream,
    })
}

/// `site:info SITE`.
pub(super) async fn info(ops: &Ops, target: &Target) -> Result<OpOutput, OpError> {
    let site = ops.client.site(&target.site_id).await?;
    Ok(OpOutput { changed: true, message: site.name.clone(), data: Some(site_row(&site, &target.site_id)) })
}

/// `site:team:list SITE`.
pub(super) async fn team(ops: &Ops, target: &Target) -> Result<OpOutput, OpError> {
    let members = ops.client.site_users(&target.site_id).await?;
    let rows: Vec<Value> = members
        .iter()
        .map(|m| {
            let profile = m.user.profile.as_ref();
            json!({ "id": m.id, "email": m.user.email, "role": m.role,
                    "first_name": profile.and_then(|p| p.firstname.clone()),
                    "last_name": profile.and_then(|p| p.lastname.clone()) })
        })
        .collect();
    Ok(OpOutput { changed: true, message: format!("{} members", rows.len()), data: Some(Value::Array(rows)) })
}

/// `org:list`.
pub(super) async fn org_list(ops: &Ops) -> Result<OpOutput, OpError> {
    let orgs = ops.client.user_orgs().await?;
    let rows: Vec<Value> = orgs
        .iter()
        .map(|m| {
            let (name, label) = org_name(m);
            json!({ "id": m.organization.id, "name": name, "label": label, "role": m.role })
        })
        .collect();
    Ok(OpOutput { changed: true, message: format!("{} organizations", rows.len()), data: Some(Value::Array(rows)) })
}

/// `org:site:list ORG [--tag]`.
pub(super) async fn org_site_list(ops: &Ops, org: &str, tag: Option<&str>) -> Result<OpOutput, OpError> {
    let org_id = find_org(ops, org).await?.ok_or_else(|| OpError::permanent(not_a_member(org)))?;
    let members = ops.client.org_sites(&org_id).await?;
    let rows: Vec<Value> = members
        .iter()
        .filter(|m| tag.is_none_or(|t| m.tags.iter().any(|x| x == t)))
        .map(|m| {
            let mut row = site_row(&m.site, &m.id);
            row["tags"] = json!(m.tags);
            row
        })
        .collect();
    Ok(OpOutput { changed: true, message: format!("{} sites", rows.len()), data: Some(Value::Array(rows)) })
}

/// `site:list [--org] [--tag] [--upstream] [--framework]`: team sites and every listable
/// organization's sites, fetched concurrently, filtered here.
pub(super) async fn site_list(
    ops: &Ops,
    org: Option<&str>,
    tag: Option<&str>,
    upstream: Option<&str>,
    framework: Option<&str>,
) -> Result<OpOutput, OpError> {
    let listing = ops.client.site_listing().await?;
    let org_id = match org {
        Some(o) => Some(find_org(ops, o).await?.ok_or_else(|| OpError::permanent(not_a_member(o)))?),
        None => None,
    };
    let mut rows: std::collections::BTreeMap<String, Value> = std::collections::BTreeMap::new();
    if org_id.is_none() && tag.is_none() {
        for m in &listing.team_sites {
            rows.entry(m.site.name.clone()).or_insert_with(|| site_row(&m.site, &m.id));
        }
    }
    for (id, members) in &listing.org_sites {
        if org_id.as_ref().is_some_and(|o| o != id) {
            continue;
        }
        for m in members {
            if tag.is_some_and(|t| !m.tags.iter().any(|x| x == t)) {
                continue;
            }
            let row = rows.entry(m.site.name.clone()).or_insert_with(|| site_row(&m.site, &m.id));
            let tags = row.get("tags").and_then(Value::as_array).cloned().unwrap_or_default();
            let mut merged: Vec<Value> = tags;
            merged.extend(m.tags.iter().map(|t| json!(t)));
            row["tags"] = Value::Array(merged);
        }
    }
    let kept: Vec<Value> = rows
        .into_values()
        .filter(|r| framework.is_none_or(|f| r["framework"].as_str() == Some(f)))
        .filter(|r| upstream.is_none_or(|u| r["upstream"].as_str().is_some_and(|url| url.contains(u))))
        .collect();
    Ok(OpOutput { changed: true, message: format!("{} sites", kept.len()), data: Some(Value::Array(kept)) })
}

/// The upstream a site would switch to: its id and label.
pub(crate) struct Upstream {
    id: String,
    label: String,
}

/// `site:upstream:set`'s check: the upstream, found among the user's as terminus finds it
/// (by id, product id, label or machine name); the site already on it is nothing to do.
pub(crate) async fn decide_upstream(ops: &Ops, target: &Target, wanted: &str) -> Result<Decision<Upstream>, OpError> {
    let upstreams = ops.client.user_upstreams().await?;
    let text = |u: &serde_json::Value, key: &str| u.get(key).and_then(serde_json::Value::as_str).map(str::to_owned);
    let found = upstreams.iter().find(|u| {
        ["id", "product_id", "label", "machine_name"].iter().any(|key| text(u, key).as_deref() == Some(wanted))
    });
    let Some(found) = found else {
        return Ok(Decision::refuse(format!("Could not find an upstream identified by {wanted}.")));
    };
    let id = text(found, "id").unwrap_or_default();
    let label = text(found, "label").or_else(|| text(found, "machine_name")).unwrap_or_else(|| id.clone());
    let site = ops.client.site(&target.site_id).await?;
    let current = site.upstream.as_ref().and_then(|u| u.get("product_id")).and_then(serde_json::Value::as_str);
    if current == Some(id.as_str()) {
        return Ok(Decision::nothing(format!("{} already uses the upstream {label}", target.site)));
    }
    let reason = format!("would switch {}'s upstream to {label}", target.site);
    Ok(Decision::act(Upstream { id, label }, reason))
}

/// `site:upstream:set SITE UPSTREAM`: site workflow `switch_upstream` with the upstream's id.
/// terminus first reads the site's authorizations for `switch_upstream`; here the platform's
/// answer to the workflow says the same (README, "Where it differs from terminus").
pub(super) async fn set_upstream(
    ops: &Ops,
    target: &Target,
    wanted: &str,
    ctx: &impl OpContext,
) -> Result<OpOutput, OpError> {
    let upstream = settle!(decide_upstream(ops, target, wanted).await?);
    let start = on_site(target, WorkflowType::SwitchUpstream, serde_json::json!({ "upstream_id": upstream.id }));
    ops.run_workflow(&start, ctx).await?;
    Ok(OpOutput {
        changed: true,
        message: format!("Set upstream for {} to {}", target.site, upstream.label),
        data: None,
    })
}

/// `site:org:add`'s and `site:org:remove`'s check, from the site's organizations
/// (`sites/{site}/memberships/organizations`), the organization by id, machine name or
/// label. Adding one already supporting the site, or removing one not on it, is nothing to
/// do. Adding names the organization by its machine name, as terminus sends it (an id is
/// looked up among the user's organizations, as terminus does). Acts with the workflow type
/// and its parameters.
pub(crate) async fn decide_org(
    ops: &Ops,
    target: &Target,
    org: &str,
    add: bool,
) -> Result<Decision<(WorkflowType, Value)>, OpError> {
    let on_site = ops.client.site_orgs(&target.site_id).await?;
    let matches = |m: &UserOrgMembership| {
        let (name, label) = org_name(m);
        m.organization.id == org || name == org || label == org
    };
    let found = on_site.iter().find(|m| matches(m));
    let site = &target.site;
    Ok(match (add, found) {
        (true, Some(_)) => Decision::nothing(format!("{org} supports {site} already")),
        (true, None) => {
            let mine = ops.client.user_orgs().await?;
            let name = match mine.iter().find(|m| matches(m)) {
                Some(m) => org_name(m).0,
                // terminus passes a name it does not know as given: the platform judges it.
                None if !looks_like_uuid(org) => org.to_owned(),
                None => return Ok(Decision::refuse(not_a_member(org))),
            };
            Decision::act(
                (
                    WorkflowType::AddSiteOrganizationMembership,
                    json!({ "organization_name": name, "role": "team_member" }),
                ),
                format!("would add {org} as a supporting organization of {site}"),
            )
        }
        (false, None) => Decision::nothing(format!("{org} is not an organization of {site}")),
        (false, Some(m)) => Decision::act(
            (WorkflowType::RemoveSiteOrganizationMembership, json!({ "organization_id": m.organization.id })),
            format!("would remove {org} from {site}'s organizations"),
        ),
    })
}

/// terminus's test for an organization id (`isValidUuid`).
fn looks_like_uuid(text: &str) -> bool {
    let parts: Vec<&str> = text.split('-').collect();
    parts.iter().map(|p| p.len()).eq([8, 4, 4, 4, 12]) && parts.iter().all(|p| p.chars().all(|c| c.is_ascii_hexdigit()))
}

/// `site:org:add` / `site:org:remove`: the site workflow terminus starts, after
/// [`decide_org`].
pub(super) async fn org_change(
    ops: &Ops,
    target: &Target,
    org: &str,
    add: bool,
    ctx: &impl OpContext,
) -> Result<OpOutput, OpError> {
    let (kind, params) = settle!(decide_org(ops, target, org, add).await?);
    ops.run_workflow(&on_site(target, kind, params), ctx).await?;
    let site = &target.site;
    let message = if add {
        format!("added {org} as a supporting organization of {site}")
    } else {
        format!("removed {org} from {site}'s organizations")
    };
    Ok(OpOutput { changed: true, message, data: None })
}

/// `plan:set`'s check: the plan by SKU or id among the site's plans
/// (`accounts/site-account-forwarding/{site}/plans`, as terminus looks it up); the site's
/// plan (`sites/{site}/plan`) already that SKU is nothing to do. Acts with the SKU.
pub(crate) async fn decide_plan(ops: &Ops, target: &Target, wanted: &str) -> Result<Decision<String>, OpError> {
    let (plans, current) =
        tokio::try_join!(ops.client.site_plans(&target.site_id), ops.client.site_plan(&target.site_id))?;
    let sku_of = |p: &Value| p.get("sku").or_else(|| p.get("plan_sku")).and_then(Value::as_str).map(str::to_owned);
    let Some(plan) = plans
        .iter()
        .find(|p| p.get("id").and_then(Value::as_str) == Some(wanted) || sku_of(p).as_deref() == Some(wanted))
    else {
        let known: Vec<String> = plans.iter().filter_map(sku_of).collect();
        return Ok(Decision::refuse(format!(
            "{wanted} is not a plan {site} can be set to (its plans: {})",
            known.join(", "),
            site = target.site
        )));
    };
    let sku = sku_of(plan).unwrap_or_default();
    Ok(if sku_of(&current).as_deref() == Some(sku.as_str()) {
        Decision::nothing(format!("{} is on {sku} already", target.site))
    } else {
        Decision::act(sku.clone(), format!("would set {}'s plan to {sku}", target.site))
    })
}

/// `plan:set`: `change_site_service_level` with the plan's SKU, after [`decide_plan`].
pub(super) async fn plan_set(
    ops: &Ops,
    target: &Target,
    wanted: &str,
    ctx: &impl OpContext,
) -> Result<OpOutput, OpError> {
    let sku = settle!(decide_plan(ops, target, wanted).await?);
    ops.run_workflow(&on_site(target, WorkflowType::ChangeSiteServiceLevel, json!({ "sku": sku })), ctx).await?;
    Ok(OpOutput { changed: true, message: format!("{}'s plan set to {sku}", target.site), data: None })
}
