//! Domains: add, remove, list (pantheon-api.md §5.6). Direct requests, no workflow.

use reqwest::Method;
use serde_json::json;

use super::api::Repeat;
use super::api::workflows::{StartWorkflow, WorkflowScope, WorkflowType};
use super::decide::{Decision, settle};
use super::{OpContext, OpError, OpOutput, Ops, Target, env_of};

/// `domain:add`'s check: a domain already on the environment is nothing to do; one on
/// another environment of the site is a finding.
pub(crate) async fn decide_add(ops: &Ops, target: &Target, domain: &str) -> Result<Decision<()>, OpError> {
    let env = env_of(target)?;
    let domain = domain.to_ascii_lowercase();
    let envs = ops.client.environments(&target.site_id).await?;
    // Every environment's domains at once (the request rate still paces them), not one
    // environment after another.
    let names: Vec<&String> = envs.keys().collect();
    let lists = futures::future::try_join_all(names.iter().map(|e| ops.client.domains(&target.site_id, e))).await?;
    let has = |e: &str| {
        names
            .iter()
            .zip(&lists)
            .any(|(n, list)| n.as_str() == e && list.iter().any(|d| d.id.eq_ignore_ascii_case(&domain)))
    };
    if let Some(other) = names.iter().find(|e| e.as_str() != env && has(e)) {
        return Ok(Decision::refuse(format!("{domain} is already on {}.{other}", target.site)));
    }
    if has(env)
        || (!envs.contains_key(env)
            && ops.client.domains(&target.site_id, env).await?.iter().any(|d| d.id.eq_ignore_ascii_case(&domain)))
    {
        return Ok(Decision::nothing(format!("{domain} is already on {env}")));
    }
    Ok(Decision::act((), format!("would add {domain}")))
}

/// `domain:add SITE.ENV DOMAIN`; a domain already there ends unchanged, one on another
/// environment of the site is refused.
pub(super) async fn add(ops: &Ops, target: &Target, domain: &str) -> Result<OpOutput, OpError> {
    settle!(decide_add(ops, target, domain).await?);
    let env = env_of(target)?;
    let domain = domain.to_ascii_lowercase();
    ops.client
        .send(
            Method::PUT,
            &["sites", &target.site_id, "environments", env, "domains", &domain],
            &[],
            None,
            Repeat::OnlyIfRefused,
        )
        .await
        .map_err(|e| OpError::about(format!("Error trying to add {domain} to {}.{env}: {e}", target.site), &e))?;
    Ok(OpOutput { changed: true, message: format!("added {domain}"), data: None })
}

/// `domain:remove`'s check: a domain not on the environment is nothing to do; a platform
/// domain cannot be removed. Acts with the domain's id as the platform spells it.
pub(crate) async fn decide_remove(ops: &Ops, target: &Target, domain: &str) -> Result<Decision<String>, OpError> {
    let env = env_of(target)?;
    let domain = domain.to_ascii_lowercase();
    let present = ops.client.domains(&target.site_id, env).await?;
    let Some(found) = present.iter().find(|d| d.id.eq_ignore_ascii_case(&domain)) else {
        return Ok(Decision::nothing(format!("{domain} is not on {env}")));
    };
    if found.deletable == Some(false) {
        return Ok(Decision::refuse(format!("{domain} is a platform domain and cannot be removed")));
    }
    Ok(Decision::act(found.id.clone(), format!("would remove {domain}")))
}

/// `domain:remove SITE.ENV DOMAIN`; a domain not there ends unchanged.
pub(super) async fn remove(ops: &Ops, target: &Target, domain: &str) -> Result<OpOutput, OpError> {
    let found = settle!(decide_remove(ops, target, domain).await?);
    let env = env_of(target)?;
    let domain = domain.to_ascii_lowercase();
    ops.client
        .send(
            Method::DELETE,
            &["sites", &target.site_id, "environments", env, "domains", &found],
            &[],
            None,
            Repeat::OnlyIfRefused,
        )
        .await
        .map_err(|e| OpError::about(format!("Domain remove failed. {}.{env} => {domain}: {e}", target.site), &e))?;
    Ok(OpOutput { changed: true, message: format!("removed {domain}"), data: None })
}

/// `domain:primary:add` / `domain:primary:remove`'s check: the domain must be on the
/// environment; already primary (or no primary to remove) is nothing to do.
pub(crate) async fn decide_primary(ops: &Ops, target: &Target, domain: Option<&str>) -> Result<Decision<()>, OpError> {
    let env = env_of(target)?;
    let present = ops.client.domains(&target.site_id, env).await?;
    let primary = present.iter().find(|d| d.primary == Some(true)).map(|d| d.id.to_ascii_lowercase());
    match domain.map(str::to_ascii_lowercase) {
        Some(domain) if !present.iter().any(|d| d.id.eq_ignore_ascii_case(&domain)) => {
            Ok(Decision::refuse(format!("{domain} is not a domain of {}.{env}: add it first", target.site)))
        }
        Some(domain) if primary.as_deref() == Some(domain.as_str()) => {
            Ok(Decision::nothing(format!("{domain} is already the primary domain")))
        }
        Some(domain) => Ok(Decision::act((), format!("would make {domain} the primary domain"))),
        None if primary.is_none() => Ok(Decision::nothing(format!("{env} has no primary domain"))),
        None => Ok(Decision::act((), "would remove the primary domain")),
    }
}

/// `domain:primary:add SITE.ENV DOMAIN` / `domain:primary:remove SITE.ENV`: env workflow
/// `set_primary_domain` with the domain, or `null` to remove it.
pub(super) async fn primary(
    ops: &Ops,
    target: &Target,
    domain: Option<&str>,
    ctx: &impl OpContext,
) -> Result<OpOutput, OpError> {
    settle!(decide_primary(ops, target, domain).await?);
    let env = env_of(target)?;
    let domain = domain.map(str::to_ascii_lowercase);
    let start = StartWorkflow {
        scope: WorkflowScope::Env { site_id: target.site_id.clone(), env: env.to_owned() },
        kind: WorkflowType::SetPrimaryDomain,
        params: json!({ "primary_domain": domain }),
        marker: None,
    };
    ops.run_workflow(&start, ctx).await?;
    let message = domain.map_or_else(|| "primary domain removed".to_owned(), |d| format!("{d} is the primary domain"));
    Ok(OpOutput { changed: true, message, data: None })
}

/// `domain:list SITE.ENV`.
pub(super) async fn list(ops: &Ops, target: &Target) -> Result<OpOutput, OpError> {
    let env = env_of(target)?;
    let domains = ops.client.domains(&target.site_id, env).await?;
    let rows: Vec<serde_json::Value> = domains
        .iter()
        .map(|d| json!({ "domain": d.id, "type": d.kind, "primary": d.primary.unwrap_or(false), "deletable": d.deletable }))
        .collect();
    Ok(OpOutput {
        changed: true,
        message: format!("{} domains", rows.len()),
        data: Some(serde_json::Value::Array(rows)),
    })
}
