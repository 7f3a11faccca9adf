//! Read-only audits across a fleet: each reads what terminus's command reads and puts it in
//! the report's `data`, with a one-line summary as the message. Secrets terminus would print
//! (a lock's password, database credentials) are left out: reports are files.

use serde_json::{Value, json};
use tb_core::words::counted;

use super::{OpError, OpOutput, Ops, Target, env_of};

fn read(message: String, data: Value) -> OpOutput {
    OpOutput { changed: true, message, data: Some(data) }
}

/// `env:diffstat`: the files changed on the environment in SFTP mode and not committed
/// (`GET …/on-server-development/diffstat`), by path.
pub(super) async fn diffstat(ops: &Ops, target: &Target) -> Result<OpOutput, OpError> {
    let env = env_of(target)?;
    let files = ops.client.diffstat(&target.site_id, env).await?;
    let count = files.as_object().map_or(0, serde_json::Map::len);
    Ok(read(counted(count, "uncommitted file"), files))
}

/// `connection:info`: how to reach the environment, as terminus builds it from the site and
/// environment ids (SFTP, git, the app server's ssh for drush and wp). The database and
/// cache credentials terminus also prints are secrets, and left out.
pub(super) async fn connection_info(ops: &Ops, target: &Target) -> Result<OpOutput, OpError> {
    let env = env_of(target)?;
    // The environment must exist: its settings are read as terminus's command reads them.
    ops.client.env_settings(&target.site_id, env).await?;
    let id = &target.site_id;
    let app = format!("appserver.{env}.{id}.drush.in");
    let code = format!("codeserver.dev.{id}.drush.in");
    let data = json!({
        "sftp_username": format!("{env}.{id}"),
        "sftp_host": app,
        "sftp_port": 2222,
        "sftp_command": format!("sftp -o Port=2222 {env}.{id}@{app}"),
        "git_username": format!("codeserver.dev.{id}"),
        "git_host": code,
        "git_port": 2222,
        "git_url": format!("ssh://codeserver.dev.{id}@{code}:2222/~/repository.git"),
        "git_command": format!("git clone ssh://codeserver.dev.{id}@{code}:2222/~/repository.git {}", target.site),
    });
    Ok(read(format!("sftp {env}.{id}@{app}, git {code}"), data))
}

/// `lock:info`: whether the environment is locked and for which user (its `lock`); the
/// password is a secret and left out.
pub(super) async fn lock_info(ops: &Ops, target: &Target) -> Result<OpOutput, OpError> {
    let env = env_of(target)?;
    let envs = ops.client.environments(&target.site_id).await?;
    let Some(found) = envs.get(env) else {
        return Err(OpError::failed("the environment does not exist", format!("{}.{env} does not exist", target.site)));
    };
    let locked = found.lock.as_ref().is_some_and(|l| l.locked);
    let username = found.lock.as_ref().and_then(|l| l.username.clone());
    let message = match (&username, locked) {
        (Some(user), true) => format!("locked for {user}"),
        _ => "not locked".to_owned(),
    };
    Ok(read(message, json!({ "locked": locked, "username": if locked { username } else { None } })))
}

/// `backup:automatic:info`: the automatic backup schedule (`GET …/backups/schedule`): the
/// weekly day, and each day's retention.
pub(super) async fn backup_schedule(ops: &Ops, target: &Target) -> Result<OpOutput, OpError> {
    let env = env_of(target)?;
    let schedule = ops.client.backup_schedule(&target.site_id, env).await?;
    let days = ["Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday"];
    let ttl = |day: usize| schedule.get(day.to_string()).and_then(|d| d.get("ttl")).and_then(Value::as_u64);
    let scheduled: Vec<usize> = (0..7).filter(|d| ttl(*d).is_some()).collect();
    // The weekly backup is the day kept longest (terminus's `weekly_backup_day`).
    let weekly = scheduled.iter().copied().max_by_key(|d| ttl(*d).unwrap_or(0)).filter(|_| !scheduled.is_empty());
    let message = match weekly {
        Some(day) => format!("daily backups; weekly on {}", days[day]),
        None => "no automatic backups".to_owned(),
    };
    let data = json!({
        "daily_backup_hour": schedule.get("0").and_then(|d| d.get("hour")).cloned().unwrap_or(Value::Null),
        "weekly_backup_day": weekly.map(|d| days[d]),
        "expiry": (0..7).map(ttl).collect::<Vec<_>>(),
    });
    Ok(read(message, data))
}

/// `upstream:updates:list`: the upstream's commits not yet on the site
/// (`GET sites/{site}/code-upstream-updates`, its `update_log`), oldest first.
pub(super) async fn upstream_list(ops: &Ops, target: &Target) -> Result<OpOutput, OpError> {
    let env = env_of(target)?;
    let updates = ops.client.upstream_updates(&target.site_id, super::upstream::branch(env)).await?;
    let entries: Vec<&Value> = match updates.update_log.as_ref() {
        Some(Value::Object(log)) => log.values().collect(),
        Some(Value::Array(log)) => log.iter().collect(),
        _ => Vec::new(),
    };
    let mut log: Vec<Value> = entries
        .into_iter()
        .map(|c| json!({ "hash": c.get("hash"), "datetime": c.get("datetime"), "message": c.get("message"), "author": c.get("author") }))
        .collect();
    log.sort_by(|a, b| a["datetime"].as_str().cmp(&b["datetime"].as_str()));
    Ok(read(counted(log.len(), "upstream update"), Value::Array(log)))
}

/// The most data points of each period (terminus's `datapointsMaximum`).
fn most(period: &str) -> u32 {
    if period == "day" { 28 } else { 12 }
}

/// `env:metrics`: the environment's traffic (`GET …/traffic?duration=`), one point per
/// period: visits, pages served, cache hits and misses, and the hit ratio.
pub(super) async fn metrics(ops: &Ops, target: &Target, period: &str, datapoints: &str) -> Result<OpOutput, OpError> {
    let env = env_of(target)?;
    let short = match period {
        "day" => "d",
        "week" => "w",
        "month" => "m",
        other => {
            return Err(OpError::permanent(format!(
                "'{other}' is an invalid value for period: must be one of day, week, month"
            )));
        }
    };
    let count = match datapoints {
        "auto" => most(period),
        n => match n.parse::<u32>() {
            Ok(n) if (1..=most(period)).contains(&n) => n,
            _ => {
                return Err(OpError::permanent(format!(
                    "'{n}' is an invalid value for datapoints: must be 1 to {} for {period}, or auto",
                    most(period)
                )));
            }
        },
    };
    let duration = format!("{count}{short}");
    let raw = ops.client.traffic(&target.site_id, env, &duration).await?;
    let points: Vec<Value> = raw
        .get("timeseries")
        .and_then(Value::as_array)
        .map(|series| {
            series
                .iter()
                .map(|p| {
                    let pages = p.get("pages_served").and_then(Value::as_u64).unwrap_or(0);
                    let hits = p.get("cache_hits").and_then(Value::as_u64).unwrap_or(0);
                    let datetime = p
                        .get("timestamp")
                        .and_then(Value::as_i64)
                        .and_then(|t| chrono::DateTime::from_timestamp(t, 0))
                        .map(|t| t.format("%Y-%m-%dT%H:%M:%S").to_string());
                    #[expect(clippy::cast_precision_loss, reason = "a ratio")]
                    let ratio = (pages > 0).then(|| format!("{:.2}%", hits as f64 * 100.0 / pages as f64));
                    json!({ "datetime": datetime, "visits": p.get("visits"), "pages_served": pages,
                            "cache_hits": hits, "cache_misses": p.get("cache_misses"), "cache_hit_ratio": ratio.unwrap_or_else(|| "--".to_owned()) })
                })
                .collect()
        })
        .unwrap_or_default();
    let visits: u64 = points.iter().filter_map(|p| p["visits"].as_u64()).sum();
    Ok(read(format!("{visits} visits over {}", counted(points.len(), period)), Value::Array(points)))
}
