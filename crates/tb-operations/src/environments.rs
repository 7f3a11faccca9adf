//! Environment operations: `env:deploy` (with terminus's nothing-to-deploy check and the first
//! deploy of an uninitialized environment) and `env:clear-cache` (pantheon-api.md §5.2-5.3).

use serde_json::json;
use tb_core::words::counted;

use super::api::workflows::{StartWorkflow, WorkflowScope, WorkflowType};
use super::decide::{Decision, settle};
use super::{OpContext, OpError, OpOutput, Ops, Target, commits_missing, env_of};

/// What a deploy would do.
pub(crate) enum DeployStep {
    /// The first deploy: create the environment from its parent's content.
    Initialize { parent: &'static str },
    /// Deploy these many commits from the parent.
    Deploy { parent: &'static str, pending: usize },
}

/// Whether an environment is initialized, as terminus tells: dev and multidevs always are
/// (no request); test and live until their first deploy are not (`settings.is_initialized`).
pub(crate) async fn is_initialized(ops: &Ops, site_id: &str, env: &str) -> Result<bool, OpError> {
    if !matches!(env, "test" | "live") {
        return Ok(true);
    }
    Ok(ops.client.env_settings(site_id, env).await?.is_initialized)
}

/// What a deploy carries, for a reviewer: the first of its `pending` commits (newest first,
/// as the code log lists them), each its short hash and subject, then "+N more".
fn carried_commits(pending: &[&super::api::wire::Commit]) -> String {
    const SHOWN: usize = 3;
    const SUBJECT: usize = 60;
    let mut shown: Vec<String> = pending
        .iter()
        .take(SHOWN)
        .map(|c| {
            let short: String = c.hash.chars().take(7).collect();
            let subject = c.message.as_deref().and_then(|m| m.lines().next()).unwrap_or("").trim();
            let subject: String = if subject.chars().count() > SUBJECT {
                subject.chars().take(SUBJECT - 1).chain(std::iter::once('…')).collect()
            } else {
                subject.to_owned()
            };
            format!("{short} {subject}").trim_end().to_owned()
        })
        .collect();
    if pending.len() > SHOWN {
        shown.push(format!("+{} more", pending.len() - SHOWN));
    }
    shown.join(" · ")
}

/// `env:deploy`'s check, as terminus makes it: commits on the parent not yet on the
/// environment (code-log labels); an environment never initialized is initialized from its
/// parent, which must be initialized itself.
pub(crate) async fn decide_deploy(ops: &Ops, target: &Target) -> Result<Decision<DeployStep>, OpError> {
    let env = env_of(target)?;
    let parent = match env {
        "test" => "dev",
        "live" => "test",
        other => return Ok(Decision::refuse(format!("code is deployed to test or live, not {other}"))),
    };
    // The parent's code log first: a commit it labels with the environment is on it, so the
    // environment was initialized (its first deploy put one there), and its settings need
    // not be read. Only an environment with none asks its settings: one request per deploy
    // where there were two, which matters when the request rate binds (issue 26).
    let log = ops.client.code_log(&target.site_id, parent).await?;
    let on_env = log.iter().any(|c| c.labels.iter().any(|l| l == env));
    if !on_env && !ops.client.env_settings(&target.site_id, env).await?.is_initialized {
        if !is_initialized(ops, &target.site_id, parent).await? {
            return Ok(Decision::refuse(format!("{parent} is not initialized")));
        }
        return Ok(Decision::act(DeployStep::Initialize { parent }, format!("would initialize {env} from {parent}")));
    }
    let missing = commits_missing(&log, parent, env);
    if missing.is_empty() {
        return Ok(Decision::nothing("There is nothing to deploy."));
    }
    let (pending, carried) = (missing.len(), carried_commits(&missing));
    Ok(Decision::act(
        DeployStep::Deploy { parent, pending },
        format!("{} to deploy from {parent}: {carried}", counted(pending, "commit")),
    ))
}

/// `env:deploy SITE.ENV`: code from the parent (dev → test, test → live).
#[expect(clippy::too_many_arguments, reason = "terminus's options, one by one")]
pub(super) async fn deploy(
    ops: &Ops,
    target: &Target,
    note: &str,
    updatedb: bool,
    cc: bool,
    sync_content: bool,
    task: &str,
    ctx: &impl OpContext,
) -> Result<OpOutput, OpError> {
    let step = settle!(decide_deploy(ops, target).await?);
    let env = env_of(target)?;
    let annotation = format!("{note} {}", ops.marker(task));
    let scope = WorkflowScope::Env { site_id: target.site_id.clone(), env: env.to_owned() };
    let (parent, pending) = match step {
        DeployStep::Initialize { parent } => {
            // The first deploy creates the environment from its parent's content.
            let start = StartWorkflow {
                scope,
                kind: WorkflowType::CreateEnvironment,
                params: json!({
                    "annotation": annotation,
                    "clone_database": { "from_environment": parent },
                    "clone_files": { "from_environment": parent },
                }),
                marker: Some(ops.marker(task)),
            };
            ops.run_workflow(&start, ctx).await?;
            return Ok(OpOutput { changed: true, message: format!("initialized {env} from {parent}"), data: None });
        }
        DeployStep::Deploy { parent, pending } => (parent, pending),
    };
    let mut params = json!({
        "updatedb": i32::from(updatedb),
        "clear_cache": i32::from(cc),
        "annotation": annotation,
    });
    if sync_content && env == "test" {
        let live = ops.client.env_settings(&target.site_id, "live").await?;
        if !live.is_initialized {
            return Err(OpError::permanent("cannot sync content from live: live is not initialized"));
        }
        params["clone_database"] = json!({ "from_environment": "live" });
        params["clone_files"] = json!({ "from_environment": "live" });
    }
    let start = StartWorkflow { scope, kind: WorkflowType::Deploy, params, marker: Some(ops.marker(task)) };
    ops.run_workflow(&start, ctx).await?;
    Ok(OpOutput {
        changed: true,
        message: format!("deployed {} from {parent}", counted(pending, "commit")),
        data: None,
    })
}

/// `env:clear-cache SITE.ENV`.
pub(super) async fn clear_cache(ops: &Ops, target: &Target, ctx: &impl OpContext) -> Result<OpOutput, OpError> {
    let env = env_of(target)?;
    let start = StartWorkflow {
        scope: WorkflowScope::Env { site_id: target.site_id.clone(), env: env.to_owned() },
        kind: WorkflowType::ClearCache,
        params: json!({ "framework_cache": true }),
        marker: None,
    };
    ops.run_workflow(&start, ctx).await?;
    Ok(OpOutput { changed: true, message: "caches cleared".to_owned(), data: None })
}

/// `env:wake SITE.ENV`: the platform domain's health check, as terminus does it: the last
/// `platform` domain of the environment, then `GET https://<domain>/pantheon_healthcheck`.
pub(super) async fn wake(ops: &Ops, target: &Target) -> Result<OpOutput, OpError> {
    wake_with(ops, target, 3, ops.wake_pause()).await
}

/// Wakes the environment: up to `attempts` health checks, `pause` apart.
pub(super) async fn wake_with(
    ops: &Ops,
    target: &Target,
    attempts: u32,
    pause: std::time::Duration,
) -> Result<OpOutput, OpError> {
    let env = env_of(target)?;
    let domains = ops.client.domains(&target.site_id, env).await?;
    let Some(domain) = domains.iter().rev().find(|d| d.kind.as_deref() == Some("platform")) else {
        let message = format!("{}.{env} has no platform domain to wake", target.site);
        return Err(OpError::failed("the environment has no platform domain to wake", message));
    };
    let url = url::Url::parse(&format!("https://{}/pantheon_healthcheck", domain.id))
        .map_err(|e| OpError::permanent(format!("`{}` is not a host name: {e}", domain.id)))?;
    let web = ops.web()?;
    let mut last = String::new();
    for attempt in 1..=attempts {
        // Real time: a simulator's clock does not make a request faster.
        match web.get(&url, std::time::Duration::from_secs(30)).await {
            Ok(reply) if reply.status == 200 => {
                let styx = reply
                    .headers
                    .get("x-pantheon-styx-hostname")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .to_owned();
                return Ok(OpOutput {
                    changed: true,
                    message: format!("{} is awake", domain.id),
                    data: Some(json!({ "domain": domain.id, "styx_hostname": styx })),
                });
            }
            Ok(reply) => last = format!("HTTP {}", reply.status),
            Err(crate::web::NoPage::TimedOut) => "no answer in time".clone_into(&mut last),
            Err(crate::web::NoPage::Unreachable(words)) => last = words,
        }
        if attempt < attempts {
            tokio::time::sleep(pause).await;
        }
    }
    Err(OpError::transient(format!("Failed to wake the site after {attempts} attempts. Last error: {last}")))
}

/// `env:clone-content`'s check: both environments initialized, and not the same one.
pub(crate) async fn decide_clone_content(ops: &Ops, target: &Target, from: &str) -> Result<Decision<()>, OpError> {
    let env = env_of(target)?;
    if from == env {
        return Ok(Decision::refuse(format!("cannot clone {env} onto itself")));
    }
    let (source, destination) =
        tokio::try_join!(is_initialized(ops, &target.site_id, from), is_initialized(ops, &target.site_id, env))?;
    for (e, initialized) in [(from, source), (env, destination)] {
        if !initialized {
            return Ok(Decision::refuse(format!("{}.{e} is not initialized", target.site)));
        }
    }
    Ok(Decision::act((), format!("would overwrite {env}'s content with {from}'s")))
}

/// `env:clone-content SITE.ENV --from-env FROM`: files, then the database (terminus's
/// order), each its own workflow on the target.
#[expect(clippy::fn_params_excessive_bools, clippy::too_many_arguments, reason = "terminus's flags, one by one")]
pub(super) async fn clone_content(
    ops: &Ops,
    target: &Target,
    from: &str,
    db_only: bool,
    files_only: bool,
    updatedb: bool,
    cc: bool,
    ctx: &impl OpContext,
) -> Result<OpOutput, OpError> {
    settle!(decide_clone_content(ops, target, from).await?);
    let env = env_of(target)?;
    let scope = WorkflowScope::Env { site_id: target.site_id.clone(), env: env.to_owned() };
    let mut done = Vec::new();
    if !db_only {
        let start = StartWorkflow {
            scope: scope.clone(),
            kind: WorkflowType::CloneFiles,
            params: json!({ "from_environment": from }),
            marker: None,
        };
        ops.run_workflow(&start, ctx).await?;
        done.push("files");
    }
    if !files_only {
        let start = StartWorkflow {
            scope,
            kind: WorkflowType::CloneDatabase,
            params: json!({ "from_environment": from, "updatedb": i32::from(updatedb), "clear_cache": cc }),
            marker: None,
        };
        ops.run_workflow(&start, ctx).await?;
        done.push("database");
    }
    Ok(OpOutput { changed: true, message: format!("cloned {} from {from}", done.join(" and ")), data: None })
}

/// `env:commit`'s check: SFTP mode, and changed files to commit (how many).
pub(crate) async fn decide_commit(ops: &Ops, target: &Target) -> Result<Decision<usize>, OpError> {
    let env = env_of(target)?;
    let envs = ops.client.environments(&target.site_id).await?;
    let sftp = envs.get(env).and_then(|e| e.on_server_development).unwrap_or(false);
    if !sftp {
        return Ok(Decision::refuse(format!(
            "{}.{env} is in git mode: there is nothing to commit over SFTP",
            target.site
        )));
    }
    let diff = ops.client.diffstat(&target.site_id, env).await?;
    let changed = diff.as_object().map_or(0, serde_json::Map::len);
    if changed == 0 {
        return Ok(Decision::nothing("There is no code to commit."));
    }
    Ok(Decision::act(changed, format!("{} to commit", counted(changed, "changed file"))))
}

/// `env:commit SITE.ENV`: commits SFTP-mode changes; nothing to commit ends unchanged.
pub(super) async fn commit(
    ops: &Ops,
    target: &Target,
    message: &str,
    ctx: &impl OpContext,
) -> Result<OpOutput, OpError> {
    let changed = settle!(decide_commit(ops, target).await?);
    let env = env_of(target)?;
    let me = ops.client.me().await?;
    let name = me.profile.as_ref().and_then(|p| p.full_name.clone()).unwrap_or_else(|| me.email.clone());
    let start = StartWorkflow {
        scope: WorkflowScope::Env { site_id: target.site_id.clone(), env: env.to_owned() },
        kind: WorkflowType::CommitAndPushOnServerChanges,
        params: json!({ "message": message, "committer_name": name, "committer_email": me.email }),
        marker: None,
    };
    ops.run_workflow(&start, ctx).await?;
    Ok(OpOutput { changed: true, message: format!("committed {}", counted(changed, "changed file")), data: None })
}

/// `connection:set`'s check: the mode already set is nothing to do. Switching to git throws
/// away uncommitted SFTP changes (terminus warns and asks): a finding, unless the plan says
/// `discard-changes: true`.
pub(crate) async fn decide_connection(
    ops: &Ops,
    target: &Target,
    sftp: bool,
    discard_changes: bool,
) -> Result<Decision<()>, OpError> {
    let env = env_of(target)?;
    let envs = ops.client.environments(&target.site_id).await?;
    let Some(current) = envs.get(env) else {
        return Ok(Decision::refuse(format!("Could not find an environment identified by {env}.")));
    };
    let mode = if sftp { "sftp" } else { "git" };
    let in_sftp = current.on_server_development.unwrap_or(false);
    if in_sftp == sftp {
        return Ok(Decision::nothing(format!("The connection mode is already set to {mode}.")));
    }
    if in_sftp {
        let changed = ops.client.diffstat(&target.site_id, env).await?.as_object().map_or(0, serde_json::Map::len);
        if changed > 0 && !discard_changes {
            return Ok(Decision::refuse(format!(
                "{}.{env} has {} that switching to git would throw away: commit them (env:commit) or set \
                 `discard-changes: true`",
                target.site,
                counted(changed, "uncommitted change")
            )));
        }
        if changed > 0 {
            return Ok(Decision::act(
                (),
                format!("would switch to git, discarding {}", counted(changed, "uncommitted change")),
            ));
        }
    }
    Ok(Decision::act((), format!("would switch the connection mode to {mode}")))
}

/// `connection:set SITE.ENV git|sftp`; the mode already set ends unchanged.
pub(super) async fn connection_set(
    ops: &Ops,
    target: &Target,
    sftp: bool,
    discard_changes: bool,
    ctx: &impl OpContext,
) -> Result<OpOutput, OpError> {
    settle!(decide_connection(ops, target, sftp, discard_changes).await?);
    let env = env_of(target)?;
    let mode = if sftp { "sftp" } else { "git" };
    let kind = if sftp { WorkflowType::EnableOnServerDevelopment } else { WorkflowType::EnableGitMode };
    let start = StartWorkflow {
        scope: WorkflowScope::Env { site_id: target.site_id.clone(), env: env.to_owned() },
        kind,
        params: json!({}),
        marker: None,
    };
    ops.run_workflow(&start, ctx).await?;
    Ok(OpOutput { changed: true, message: format!("connection mode set to {mode}"), data: None })
}

/// `lock:enable`'s and `lock:disable`'s check: the lock already in the wanted state is
/// nothing to do. `wanted` is the username and, when known, the password (`plan --refresh`
/// does not read secrets, so it cannot tell whether the credentials are the same).
pub(crate) async fn decide_lock(
    ops: &Ops,
    target: &Target,
    wanted: Option<(&str, Option<&tb_core::secret::Secret>)>,
) -> Result<Decision<()>, OpError> {
    let env = env_of(target)?;
    let envs = ops.client.environments(&target.site_id).await?;
    let lock = envs.get(env).and_then(|e| e.lock.as_ref());
    let locked = lock.is_some_and(|l| l.locked);
    match wanted {
        Some((username, password)) => {
            let same_user = lock.is_some_and(|l| l.locked && l.username.as_deref() == Some(username));
            let same_password = |p: &tb_core::secret::Secret| {
                lock.and_then(|l| l.password.as_ref()).map(tb_core::secret::Secret::expose) == Some(p.expose())
            };
            match password {
                Some(p) if same_user && same_password(p) => {
                    Ok(Decision::nothing("already locked with these credentials"))
                }
                None if locked => Ok(Decision::act((), "locked; would set these credentials unless they are the same")),
                _ => Ok(Decision::act((), if locked { "would change the credentials" } else { "would lock" })),
            }
        }
        None if !locked => Ok(Decision::nothing("not locked")),
        None => Ok(Decision::act((), "would unlock")),
    }
}

/// `lock:enable` / `lock:disable`; the lock already in the wanted state ends unchanged.
pub(super) async fn lock(
    ops: &Ops,
    target: &Target,
    wanted: Option<(&str, &tb_core::secret::Secret)>,
    ctx: &impl OpContext,
) -> Result<OpOutput, OpError> {
    settle!(decide_lock(ops, target, wanted.map(|(u, p)| (u, Some(p)))).await?);
    let env = env_of(target)?;
    let scope = WorkflowScope::Env { site_id: target.site_id.clone(), env: env.to_owned() };
    if let Some((username, password)) = wanted {
        let start = StartWorkflow {
            scope,
            kind: WorkflowType::LockEnvironment,
            params: json!({ "username": username, "password": password.expose() }),
            marker: None,
        };
        ops.run_workflow(&start, ctx).await?;
        return Ok(OpOutput { changed: true, message: format!("locked for {username}"), data: None });
    }
    let start = StartWorkflow { scope, kind: WorkflowType::UnlockEnvironment, params: json!({}), marker: None };
    ops.run_workflow(&start, ctx).await?;
    Ok(OpOutput { changed: true, message: "unlocked".to_owned(), data: None })
}

/// `env:info SITE.ENV`: what terminus shows (the lock's password is never included).
pub(super) async fn info(ops: &Ops, target: &Target) -> Result<OpOutput, OpError> {
    let env = env_of(target)?;
    let envs = ops.client.environments(&target.site_id).await?;
    let Some(e) = envs.get(env) else {
        return Err(OpError::permanent(format!("Could not find an environment identified by {env}.")));
    };
    let initialized = is_initialized(ops, &target.site_id, env).await?;
    let sftp = e.on_server_development.unwrap_or(false);
    let data = json!({
        "id": env,
        "created": e.environment_created,
        "domain": format!("{env}-{}.{}", target.site, e.dns_zone.as_deref().unwrap_or("pantheonsite.io")),
        "onserverdev": sftp,
        "connection_mode": if sftp { "sftp" } else { "git" },
        "locked": e.lock.as_ref().is_some_and(|l| l.locked),
        "lock_username": e.lock.as_ref().and_then(|l| l.username.clone()),
        "initialized": initialized,
        "php_version": e.php_version,
        "target_ref": e.target_ref,
        "target_commit": e.target_commit,
    });
    Ok(OpOutput {
        changed: true,
        message: format!("{env}: {}", if initialized { "initialized" } else { "not initialized" }),
        data: Some(data),
    })
}

/// `env:code-log SITE.ENV`: the commits, newest first.
pub(super) async fn code_log(ops: &Ops, target: &Target) -> Result<OpOutput, OpError> {
    let env = env_of(target)?;
    let log = ops.client.code_log(&target.site_id, env).await?;
    let data: Vec<serde_json::Value> = log
        .iter()
        .map(|c| json!({ "hash": c.hash, "datetime": c.datetime, "author": c.author, "labels": c.labels, "message": c.message }))
        .collect();
    Ok(OpOutput {
        changed: true,
        message: format!("{} commits", data.len()),
        data: Some(serde_json::Value::Array(data)),
    })
}

/// What `workflow:wait` waits for.
pub(crate) struct WaitFor<'a> {
    /// A workflow type (`sync_code`, `deploy`), or else…
    pub kind: Option<&'a str>,
    /// …its description, as terminus matches it (double quotes aside); terminus's default is
    /// `Sync code on <env>`.
    pub description: Option<&'a str>,
    pub max: std::time::Duration,
}

/// `workflow:wait SITE.ENV`: waits for a workflow the platform started on the environment (a
/// git push's `sync_code`, a teammate's deploy) no earlier than a minute before the task, as
/// terminus looks for it: the site's workflow list every 5 s (the platform's pause in the
/// simulator) until one matches, then that workflow until it ends. Unlike terminus, a failed
/// workflow fails the task and none within `max` fails it too (terminus only warns and exits
/// 0): a plan never reports success for what did not happen.
pub(super) async fn workflow_wait(
    ops: &Ops,
    target: &Target,
    wait: &WaitFor<'_>,
    ctx: &impl OpContext,
) -> Result<OpOutput, OpError> {
    let env = env_of(target)?;
    let default = format!("Sync code on {env}");
    let description = wait.description.unwrap_or(&default).replace('"', "");
    let since = super::api::unix_now() + ops.client.platform_clock_offset() - 60.0;
    // `max` is the platform's time: the simulator's clock may run faster.
    let deadline = tokio::time::Instant::now() + ops.platform_time(wait.max);
    let wanted = |w: &super::api::wire::Workflow| {
        let on_env = w.environment_id.as_deref().is_none_or(|e| e == env);
        let recent = w.created_at.is_some_and(|at| at >= since);
        let matches = match wait.kind {
            Some(kind) => w.kind == kind,
            None => w.description.as_deref().is_some_and(|d| d.replace('"', "") == description),
        };
        on_env && recent && matches
    };
    let what = wait.kind.map_or_else(|| format!("\"{description}\""), |k| format!("of type {k}"));
    // Looking for a workflow that is not there yet is a wait, as a poll is: at the poller's
    // lower priority, so the run's work goes first. Once found, the poller waits for it.
    let searching = ops.client.clone().background();
    loop {
        let list = searching.workflows(&target.site_id).await?;
        // The newest match, as terminus takes it: a failed earlier one followed by a newer one
        // that succeeded is the newer one's success.
        if let Some(found) = list
            .iter()
            .filter(|w| wanted(w))
            .max_by(|a, b| a.created_at.unwrap_or(0.0).total_cmp(&b.created_at.unwrap_or(0.0)))
        {
            ctx.workflow_started(&found.id);
            let done = if found.is_finished() {
                ctx.workflow_ended(&found.id, found.succeeded());
                if !found.succeeded() {
                    return Err(OpError::workflow_failed(found));
                }
                found.clone()
            } else {
                ops.watch(&target.site_id, found, ctx).await?
            };
            let data =
                json!({ "id": done.id, "type": done.kind, "description": done.description, "result": done.result });
            return Ok(OpOutput {
                changed: false,
                message: format!(
                    "workflow {} ({}) succeeded",
                    done.id,
                    done.description.as_deref().unwrap_or(&done.kind)
                ),
                data: Some(data),
            });
        }
        if tokio::time::Instant::now() + ops.wake_pause() > deadline {
            let within = humantime::format_duration(wait.max);
            return Err(OpError::failed(
                &format!("no workflow {what} finished within {within}"),
                format!("no workflow {what} on {}.{env} finished within {within}", target.site),
            ));
        }
        ctx.progress(&format!("waiting for a workflow {what}"));
        tokio::time::sleep(ops.wake_pause()).await;
    }
}

/// `https:remove`'s check, as terminus reads the environment's settings first: without HTTPS
/// on (`ssl_enabled`), there is nothing to remove (terminus refuses; a fleet run ends the
/// task `unchanged`, so running a plan twice is not an error).
pub(crate) async fn decide_https_remove(ops: &Ops, target: &Target) -> Result<Decision<()>, OpError> {
    let env = env_of(target)?;
    Ok(if ops.client.env_settings(&target.site_id, env).await?.ssl_enabled {
        Decision::act((), format!("would remove the HTTPS certificate of {}.{env}", target.site))
    } else {
        Decision::nothing(format!("HTTPS is not enabled on {}.{env}: nothing to remove", target.site))
    })
}
