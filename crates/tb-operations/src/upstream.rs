//! Upstream updates: status and apply (pantheon-api.md §5.9).

use serde_json::json;
use tb_core::words::counted;

use super::api::workflows::{StartWorkflow, WorkflowScope, WorkflowType};
use super::decide::{Decision, settle};
use super::{OpContext, OpError, OpOutput, Ops, Target, env_of};

/// The branch whose upstream status an environment reads: `master` for dev, test and live,
/// the environment's own for a multidev.
pub(super) fn branch(env: &str) -> &str {
    if matches!(env, "dev" | "test" | "live") { "master" } else { env }
}

/// Integrated Composer's updates when the environment builds with it (terminus's
/// `getComposerUpdatesLog`), else none.
async fn composer(ops: &Ops, target: &Target, env: &str) -> Result<(bool, usize), OpError> {
    if !ops.client.build_step(&target.site_id, env).await? {
        return Ok((false, 0));
    }
    Ok((true, ops.client.composer_updates(&target.site_id, env).await?))
}

/// `upstream:updates:status SITE.ENV`, with Integrated Composer's updates counted. On such a
/// site terminus first starts a `check_upstream_updates` workflow; this read-only operation
/// does not, and says its composer figures are the platform's last check.
pub(super) async fn status(ops: &Ops, target: &Target) -> Result<OpOutput, OpError> {
    let env = env_of(target)?;
    let (updates, (ic, composer_updates)) = tokio::try_join!(
        async { ops.client.upstream_updates(&target.site_id, branch(env)).await.map_err(OpError::from) },
        composer(ops, target, env)
    )?;
    let behind = updates.behind.unwrap_or(0);
    let outdated = match env {
        "test" | "live" => {
            let parent = if env == "test" { &updates.dev } else { &updates.test };
            let own = if env == "test" { &updates.test } else { &updates.live };
            !(own.as_ref().is_some_and(|e| e.is_up_to_date_with_upstream)
                && parent.as_ref().is_some_and(|e| e.is_up_to_date_with_upstream))
        }
        _ => behind > 0,
    } || composer_updates > 0;
    let mut message = if !updates.has_code {
        "no code".to_owned()
    } else if outdated {
        format!(
            "outdated ({} behind, {})",
            counted(behind, "upstream commit"),
            counted(composer_updates, "composer update")
        )
    } else {
        "current".to_owned()
    };
    if ic {
        message.push_str("; composer updates as of the platform's last check (a new check starts a workflow)");
    }
    Ok(OpOutput {
        changed: true,
        message,
        data: Some(
            json!({ "has_code": updates.has_code, "behind": behind, "ahead": updates.ahead, "outdated": outdated,
                           "integrated_composer": ic, "composer_updates": composer_updates }),
        ),
    })
}

/// The upstream's commits not yet on the site, counted as terminus counts them: the entries of
/// `update_log`, or `behind` where the platform gives no log.
fn upstream_commits(updates: &super::api::wire::UpstreamUpdates) -> u64 {
    match updates.update_log.as_ref() {
        Some(serde_json::Value::Object(log)) => log.len() as u64,
        Some(serde_json::Value::Array(log)) => log.len() as u64,
        _ => updates.behind.unwrap_or(0),
    }
}

/// `upstream:updates:apply`'s check: the environment in git mode, and upstream commits it
/// is behind (how many); none is nothing to do.
pub(crate) async fn decide_apply(ops: &Ops, target: &Target) -> Result<Decision<u64>, OpError> {
    let env = env_of(target)?;
    let (envs, updates) = tokio::try_join!(
        ops.client.environments(&target.site_id),
        ops.client.upstream_updates(&target.site_id, branch(env))
    )?;
    if envs.get(env).and_then(|e| e.on_server_development).unwrap_or(false) {
        return Ok(Decision::refuse(format!("{}.{env} is in SFTP mode; git mode is needed", target.site)));
    }
    let behind = if updates.has_code { upstream_commits(&updates) } else { 0 };
    // terminus applies when either the upstream or Integrated Composer has updates.
    let (_, composer_updates) = composer(ops, target, env).await?;
    if behind == 0 && composer_updates == 0 {
        return Ok(Decision::nothing("There are no available updates for this site."));
    }
    let reason = if composer_updates > 0 {
        format!("{} and {} to apply", counted(behind, "upstream commit"), counted(composer_updates, "composer update"))
    } else {
        format!("{} to apply", counted(behind, "upstream commit"))
    };
    Ok(Decision::act(behind, reason))
}

/// `upstream:updates:apply SITE.ENV [--updatedb] [--accept-upstream]`; nothing behind ends
/// unchanged.
pub(super) async fn apply(
    ops: &Ops,
    target: &Target,
    updatedb: bool,
    accept_upstream: bool,
    ctx: &impl OpContext,
) -> Result<OpOutput, OpError> {
    let behind = settle!(decide_apply(ops, target).await?);
    let env = env_of(target)?;
    let start = StartWorkflow {
        scope: WorkflowScope::Env { site_id: target.site_id.clone(), env: env.to_owned() },
        kind: WorkflowType::ApplyUpstreamUpdates,
        params: json!({ "updatedb": updatedb, "xoption": accept_upstream }),
        marker: None,
    };
    ops.run_workflow(&start, ctx).await?;
    Ok(OpOutput { changed: true, message: format!("applied {}", counted(behind, "upstream commit")), data: None })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn updates_are_counted_from_the_log_as_terminus_counts_them() {
        let updates = |json: &str| serde_json::from_str::<crate::api::wire::UpstreamUpdates>(json).unwrap();
        let logged = updates(r#"{"has_code":true,"behind":5,"update_log":{"a":{},"b":{},"c":{}}}"#);
        assert_eq!(upstream_commits(&logged), 3, "the log's entries, not `behind`");
        assert_eq!(upstream_commits(&updates(r#"{"has_code":true,"behind":2}"#)), 2, "no log: behind");
        assert_eq!(upstream_commits(&updates(r#"{"has_code":true,"behind":2,"update_log":{}}"#)), 0);
    }
}
