//! Domains: add, remove, list (pantheon-api.md §5.6). Direct requests, no workflow.

use reqwest::Method;
use serde_json::json;

use super::api::Repeat;
use super::{OpError, OpOutput, Ops, Target, env_of};

/// `domain:add SITE.ENV DOMAIN`; a domain already there ends unchanged, one on another
/// environment of the site is refused.
pub(super) async fn add(ops: &Ops, target: &Target, domain: &str) -> Result<OpOutput, OpError> {
    let env = env_of(target)?;
    let domain = domain.to_ascii_lowercase();
    let envs = ops.client.environments(&target.site_id).await?;
    for other in envs.keys().filter(|e| e.as_str() != env) {
        if ops.client.domains(&target.site_id, other).await?.iter().any(|d| d.id.eq_ignore_ascii_case(&domain)) {
            return Err(OpError::permanent(format!("{domain} is already on {}.{other}", target.site)));
        }
    }
    if ops.client.domains(&target.site_id, env).await?.iter().any(|d| d.id.eq_ignore_ascii_case(&domain)) {
        return Ok(OpOutput { changed: false, message: format!("{domain} is already on {env}"), data: None });
    }
    ops.client
        .send(
            Method::PUT,
            &["sites", &target.site_id, "environments", env, "domains", &domain],
            &[],
            None,
            Repeat::OnlyIfRefused,
        )
        .await
        .map_err(|e| OpError {
            message: format!("Error trying to add {domain} to {}.{env}: {e}", target.site),
            transient: e.is_transient(),
        })?;
    Ok(OpOutput { changed: true, message: format!("added {domain}"), data: None })
}

/// `domain:remove SITE.ENV DOMAIN`; a domain not there ends unchanged.
pub(super) async fn remove(ops: &Ops, target: &Target, domain: &str) -> Result<OpOutput, OpError> {
    let env = env_of(target)?;
    let domain = domain.to_ascii_lowercase();
    let present = ops.client.domains(&target.site_id, env).await?;
    let Some(found) = present.iter().find(|d| d.id.eq_ignore_ascii_case(&domain)) else {
        return Ok(OpOutput { changed: false, message: format!("{domain} is not on {env}"), data: None });
    };
    if found.deletable == Some(false) {
        return Err(OpError::permanent(format!("{domain} is a platform domain and cannot be removed")));
    }
    ops.client
        .send(
            Method::DELETE,
            &["sites", &target.site_id, "environments", env, "domains", &found.id],
            &[],
            None,
            Repeat::OnlyIfRefused,
        )
        .await
        .map_err(|e| OpError {
            message: format!("Domain remove failed. {}.{env} => {domain}: {e}", target.site),
            transient: e.is_transient(),
        })?;
    Ok(OpOutput { changed: true, message: format!("removed {domain}"), data: None })
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
