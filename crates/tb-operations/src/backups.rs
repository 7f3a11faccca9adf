//! Backup operations: create, restore, list and download (pantheon-api.md §5.4, DESIGN.md §3.5).

use serde_json::json;

use super::api::Repeat;
use super::api::wire::{BackupCatalog, BackupEntry, S3Token};
use super::api::workflows::{StartWorkflow, WorkflowScope, WorkflowType};
use super::decide::{Decision, settle};
use super::{OpContext, OpError, OpOutput, Ops, Target, env_of};
use tb_core::cause::Cause;
use tb_plan::plan::ops::BackupElement;

/// terminus's retention of daily automatic backups, and the default of the weekly one.
const DAILY_TTL_DAYS: u64 = 8;
const SECONDS_A_DAY: u64 = 86_400;

/// Each day's backup retention in seconds (`None`: no backup that day), from a schedule as
/// `GET …/backups/schedule` gives it.
fn schedule_ttls(schedule: &serde_json::Value) -> [Option<u64>; 7] {
    let mut ttls = [None; 7];
    for (day, ttl) in ttls.iter_mut().enumerate() {
        *ttl = schedule
            .get(day.to_string())
            .and_then(|d| d.get("ttl"))
            .and_then(|t| t.as_u64().or_else(|| t.as_str()?.parse().ok()))
            .filter(|t| *t > 0);
    }
    ttls
}

/// `backup:automatic:enable`'s check: the schedule terminus would set (daily backups kept 8
/// days, a weekly one kept `keep_for` days on `day`, any day when none is given) already in
/// place is nothing to do. Without a `day`, the run picks one at random as terminus does;
/// the preview says so rather than show a day the run would not pick.
pub(crate) async fn decide_schedule(
    ops: &Ops,
    target: &Target,
    day: Option<u8>,
    keep_for: u32,
) -> Result<Decision<Option<u8>>, OpError> {
    let env = env_of(target)?;
    let ttls = schedule_ttls(&ops.client.backup_schedule(&target.site_id, env).await?);
    let (daily, weekly) = (DAILY_TTL_DAYS * SECONDS_A_DAY, u64::from(keep_for) * SECONDS_A_DAY);
    let fits = |weekly_day: usize| {
        ttls.iter().enumerate().all(|(d, ttl)| *ttl == Some(if d == weekly_day { weekly } else { daily }))
    };
    let in_place = match day {
        Some(d) => fits(usize::from(d)),
        None => (0..7).any(fits),
    };
    if in_place {
        return Ok(Decision::nothing(format!("automatic backups are already scheduled on {env} as asked")));
    }
    let on = day.map_or("a random day", weekday);
    Ok(Decision::act(
        day,
        format!(
            "would schedule daily backups kept {DAILY_TTL_DAYS} days and a weekly one on {on} kept {keep_for} days"
        ),
    ))
}

/// A day's name (0 is Sunday).
fn weekday(day: u8) -> &'static str {
    tb_plan::plan::ops::WEEKDAYS.get(usize::from(day)).copied().unwrap_or("sunday")
}

/// `backup:automatic:enable SITE.ENV [--day] [--keep-for]`: env workflow
/// `change_backup_schedule` with each day's `{hour: null, ttl}` (terminus's shape).
pub(super) async fn enable_schedule(
    ops: &Ops,
    target: &Target,
    day: Option<u8>,
    keep_for: u32,
    ctx: &impl OpContext,
) -> Result<OpOutput, OpError> {
    let asked = settle!(decide_schedule(ops, target, day, keep_for).await?);
    let weekly_day = asked.unwrap_or_else(|| u8::try_from(fastrand::usize(0..7)).unwrap_or(0));
    let env = env_of(target)?;
    let (daily, weekly) = (DAILY_TTL_DAYS * SECONDS_A_DAY, u64::from(keep_for) * SECONDS_A_DAY);
    let schedule: serde_json::Map<String, serde_json::Value> = (0..7u8)
        .map(|d| (d.to_string(), json!({ "hour": null, "ttl": if d == weekly_day { weekly } else { daily } })))
        .collect();
    let start = StartWorkflow {
        scope: WorkflowScope::Env { site_id: target.site_id.clone(), env: env.to_owned() },
        kind: WorkflowType::ChangeBackupSchedule,
        params: json!({ "backup_schedule": schedule }),
        marker: None,
    };
    ops.run_workflow(&start, ctx).await?;
    let on = weekday(weekly_day);
    Ok(OpOutput { changed: true, message: format!("Backup schedule successfully set (weekly on {on})."), data: None })
}

/// `backup:automatic:disable`'s check: no day with a backup is nothing to do.
pub(crate) async fn decide_unschedule(ops: &Ops, target: &Target) -> Result<Decision<()>, OpError> {
    let env = env_of(target)?;
    let ttls = schedule_ttls(&ops.client.backup_schedule(&target.site_id, env).await?);
    if ttls.iter().all(Option::is_none) {
        return Ok(Decision::nothing(format!("no automatic backups are scheduled on {env}")));
    }
    Ok(Decision::act((), "would cancel the automatic backups"))
}

/// `backup:automatic:disable SITE.ENV`: `DELETE …/backups/schedule/{day}` for each day,
/// Sunday to Saturday, as terminus sends them.
pub(super) async fn disable_schedule(ops: &Ops, target: &Target) -> Result<OpOutput, OpError> {
    settle!(decide_unschedule(ops, target).await?);
    let env = env_of(target)?;
    for day in 0..7u8 {
        let day = day.to_string();
        ops.client
            .send(
                reqwest::Method::DELETE,
                &["sites", &target.site_id, "environments", env, "backups", "schedule", &day],
                &[],
                None,
                // Deleting a day's schedule twice leaves it as once: safe to repeat.
                Repeat::Safe,
            )
            .await
            .map_err(|e| OpError::about(format!("cannot cancel the backup schedule: {e}"), &e))?;
    }
    Ok(OpOutput { changed: true, message: "Backup schedule successfully canceled.".to_owned(), data: None })
}

/// `backup:create SITE.ENV [--element] [--keep-for]`: env workflow `do_export`.
pub(super) async fn create(
    ops: &Ops,
    target: &Target,
    element: BackupElement,
    keep_for_days: u32,
    ctx: &impl OpContext,
) -> Result<OpOutput, OpError> {
    let env = env_of(target)?;
    let all = element == BackupElement::All;
    let params = json!({
        "code": all || element == BackupElement::Code,
        "database": all || element == BackupElement::Database,
        "files": all || element == BackupElement::Files,
        "entry_type": "backup",
        "ttl": u64::from(keep_for_days) * 86_400,
    });
    let start = StartWorkflow {
        scope: WorkflowScope::Env { site_id: target.site_id.clone(), env: env.to_owned() },
        kind: WorkflowType::DoExport,
        params,
        marker: None,
    };
    ops.run_workflow(&start, ctx).await?;
    Ok(OpOutput { changed: true, message: "backup created".to_owned(), data: None })
}

/// Finished backups of `element`, newest first (pantheon-api.md §5.4: by key, descending).
fn finished(catalog: &BackupCatalog, element: &str) -> Vec<(String, BackupEntry)> {
    let mut list: Vec<(String, BackupEntry)> = catalog
        .0
        .iter()
        .filter(|(key, e)| key.ends_with(&format!("_{element}")) && e.filename.is_some() && e.is_finished())
        .map(|(k, e)| (k.clone(), e.clone()))
        .collect();
    list.sort_by(|a, b| b.0.cmp(&a.0));
    list
}

fn element_names(element: BackupElement) -> Vec<&'static str> {
    match element {
        BackupElement::All => vec!["code", "files", "database"],
        BackupElement::Code => vec!["code"],
        BackupElement::Files => vec!["files"],
        BackupElement::Database => vec!["database"],
    }
}

/// A finished backup named `file`, whatever its element (terminus's `getBackupByFileName`),
/// with its element.
fn by_file_name(catalog: &BackupCatalog, file: &str) -> Option<(&'static str, BackupEntry)> {
    ["code", "files", "database"].into_iter().find_map(|el| {
        finished(catalog, el).into_iter().map(|(_, e)| e).find(|e| e.filename.as_deref() == Some(file)).map(|e| (el, e))
    })
}

/// The newest finished backup of `element`.
fn newest(catalog: &BackupCatalog, element: &'static str) -> Option<(&'static str, BackupEntry)> {
    finished(catalog, element).into_iter().next().map(|(_, e)| (element, e))
}

/// `backup:restore`'s check: a finished backup (the named file, or the newest) of every
/// element to restore. Acts with each element and its backup.
pub(crate) async fn decide_restore(
    ops: &Ops,
    target: &Target,
    element: BackupElement,
    file: Option<&str>,
) -> Result<Decision<Vec<(&'static str, BackupEntry)>>, OpError> {
    let env = env_of(target)?;
    let catalog = ops.client.backup_catalog(&target.site_id, env).await?;
    let plan: Vec<(&'static str, BackupEntry)> = match file {
        // A file names its backup, whatever the element.
        Some(file) => match by_file_name(&catalog, file) {
            Some(found) => vec![found],
            None => {
                return Ok(Decision::refuse(format!("no finished backup named {file} of {}.{env}", target.site)));
            }
        },
        // Every element that has a finished backup; terminus skips the ones that have none.
        None => element_names(element).into_iter().filter_map(|el| newest(&catalog, el)).collect(),
    };
    if plan.is_empty() {
        return Ok(Decision::refuse(format!(
            "No backups available. Create one with `terminus backup:create {}.{env}`",
            target.site
        )));
    }
    let names: Vec<&str> = plan.iter().map(|(el, _)| *el).collect();
    Ok(Decision::act(plan, format!("would restore {} from the newest backup", names.join(", "))))
}

/// `backup:restore SITE.ENV [--element] [--file]`: one restore workflow per element, one
/// after another, each from the newest finished backup of that element.
pub(super) async fn restore(
    ops: &Ops,
    target: &Target,
    element: BackupElement,
    file: Option<&str>,
    ctx: &impl OpContext,
) -> Result<OpOutput, OpError> {
    let plan = settle!(decide_restore(ops, target, element, file).await?);
    let env = env_of(target)?;
    for (el, entry) in &plan {
        // The platform addresses backups by the site's id, as terminus sends it.
        let key = format!(
            "{}/{env}/{}/{}",
            target.site_id,
            entry.folder.as_deref().unwrap_or_default(),
            entry.filename.as_deref().unwrap_or_default()
        );
        let start = StartWorkflow {
            scope: WorkflowScope::Env { site_id: target.site_id.clone(), env: env.to_owned() },
            kind: match *el {
                "code" => WorkflowType::RestoreCode,
                "files" => WorkflowType::RestoreFiles,
                _ => WorkflowType::RestoreDatabase,
            },
            params: json!({ "key": key, "bucket": "pantheon-backups" }),
            marker: None,
        };
        ops.run_workflow(&start, ctx).await?;
    }
    let names: Vec<&str> = plan.iter().map(|(el, _)| *el).collect();
    Ok(OpOutput { changed: true, message: format!("restored {}", names.join(", ")), data: None })
}

/// `backup:list SITE.ENV`: the finished backups.
pub(super) async fn list(ops: &Ops, target: &Target) -> Result<OpOutput, OpError> {
    let env = env_of(target)?;
    let catalog = ops.client.backup_catalog(&target.site_id, env).await?;
    let mut rows: Vec<serde_json::Value> = catalog
        .0
        .iter()
        .filter(|(_, e)| e.filename.is_some())
        .map(|(key, e)| {
            let element = key.rsplit('_').next().unwrap_or_default();
            let folder = e.folder.clone().unwrap_or_default();
            let initiator = if folder.ends_with("_automated") { "automated" } else { "manual" };
            json!({ "file": e.filename, "element": element, "size": e.size, "finished": e.is_finished(),
                    "date": e.finish_time.or(e.timestamp), "initiator": initiator, "folder": folder })
        })
        .collect();
    rows.sort_by(|a, b| b["folder"].as_str().cmp(&a["folder"].as_str()));
    Ok(OpOutput {
        changed: true,
        message: format!("{} backups", rows.len()),
        data: Some(serde_json::Value::Array(rows)),
    })
}

/// `backup:get SITE.ENV --to DIR [--element] [--file]`: downloads into
/// `DIR/<site>/<env>/<filename>` through a temporary name, resuming with Range (and a fresh
/// signed URL when the old one expired), checking the size against the catalog, and
/// recording sha256 and size.
pub(super) async fn get(
    ops: &Ops,
    target: &Target,
    element: BackupElement,
    file: Option<&str>,
    to: &str,
    ctx: &impl OpContext,
) -> Result<OpOutput, OpError> {
    let env = env_of(target)?;
    let catalog = ops.client.backup_catalog(&target.site_id, env).await?;
    let element = element_names(element).first().copied().unwrap_or("files");
    let chosen = match file {
        Some(file) => by_file_name(&catalog, file),
        None => newest(&catalog, element),
    };
    let Some((el, entry)) = chosen else {
        let what = file.map_or_else(|| format!("{element} backup"), |f| format!("backup named {f}"));
        let message = format!("no finished {what} of {}.{env} to download", target.site);
        return Err(OpError::failed(&format!("no finished {what} to download"), message));
    };
    let filename = entry.filename.clone().unwrap_or_default();
    if filename.contains('/') || filename.contains("..") || filename.is_empty() {
        return Err(OpError::permanent(format!("refusing the backup file name {filename:?}")));
    }
    let folder = entry.folder.clone().unwrap_or_default();
    let expected = entry.size.unwrap_or(0);
    let dir = std::path::Path::new(to).join(&target.site).join(env);
    let path = dir.join(&filename);
    let part = dir.join(format!(".{filename}.part"));
    let io_error = |what: &str, e: &std::io::Error| OpError::permanent(format!("{what}: {e}"));
    tokio::fs::create_dir_all(&dir).await.map_err(|e| io_error(&format!("cannot create {}", dir.display()), &e))?;
    if tokio::fs::metadata(&path).await.is_ok_and(|m| m.len() == expected) {
        let sha256 = sha256_of(&path).await.map_err(|e| io_error("cannot read the file", &e))?;
        return Ok(OpOutput {
            changed: false,
            message: format!("{filename} is already downloaded"),
            data: Some(
                json!({ "file": filename, "path": path.display().to_string(), "size": expected, "sha256": sha256 }),
            ),
        });
    }
    let _permit = ops.downloads.acquire().await.map_err(|_| OpError::permanent("downloads are shutting down"))?;
    let mut url = None;
    let mut attempts = 0;
    loop {
        attempts += 1;
        if attempts > 8 {
            return Err(OpError::transient(format!("could not download {filename} after 8 attempts")));
        }
        if url.is_none() {
            let token: S3Token = ops
                .client
                .send(
                    reqwest::Method::POST,
                    &["sites", &target.site_id, "environments", env, "backups", "catalog", &folder, el, "s3token"],
                    &[],
                    Some(&json!({ "method": "get" })),
                    Repeat::Safe,
                )
                .await?
                .json("s3token")?;
            url = Some(token.url);
        }
        let Some(signed) = &url else { continue };
        let offset = tokio::fs::metadata(&part).await.map_or(0, |m| m.len());
        let response = match ops.client.download(signed, offset).await {
            Ok(r) => r,
            Err(e) if e.is_transient() => continue,
            Err(e) => return Err(e.into()),
        };
        let status = response.status().as_u16();
        if status == 403 {
            // The signed URL expired: ask for a fresh one and resume.
            url = None;
            continue;
        }
        if status == 416 && offset >= expected {
            break;
        }
        if status != 200 && status != 206 {
            let cause = Cause::Http { status, request: "GET {signed backup URL}".to_owned() };
            return Err(OpError::because(cause, format!("downloading {filename}: HTTP {status}")));
        }
        let append = status == 206;
        match write_body(response, &part, append, expected, &filename, ctx).await {
            Ok(()) => break,
            // A dropped connection mid-file: resume from what arrived.
            Err(WriteError::Network) => {}
            Err(WriteError::Io(e)) => return Err(io_error(&format!("cannot write {}", part.display()), &e)),
        }
    }
    let size = tokio::fs::metadata(&part).await.map_err(|e| io_error("cannot read the download", &e))?.len();
    if size != expected {
        let _removed = tokio::fs::remove_file(&part).await;
        let message = format!("{filename}: downloaded {size} bytes, the catalog says {expected}");
        return Err(OpError::failed("the download's size is not the catalog's", message));
    }
    let sha256 = sha256_of(&part).await.map_err(|e| io_error("cannot read the download", &e))?;
    tokio::fs::rename(&part, &path).await.map_err(|e| io_error(&format!("cannot rename to {}", path.display()), &e))?;
    Ok(OpOutput {
        changed: true,
        message: format!("downloaded {filename} ({size} bytes)"),
        data: Some(json!({ "file": filename, "path": path.display().to_string(), "size": size, "sha256": sha256 })),
    })
}

enum WriteError {
    Network,
    Io(std::io::Error),
}

async fn write_body(
    mut response: reqwest::Response,
    part: &std::path::Path,
    append: bool,
    expected: u64,
    filename: &str,
    ctx: &impl OpContext,
) -> Result<(), WriteError> {
    use tokio::io::AsyncWriteExt;
    let mut out = tokio::fs::OpenOptions::new()
        .create(true)
        .write(true)
        .append(append)
        .truncate(!append)
        .open(part)
        .await
        .map_err(WriteError::Io)?;
    let mut written = out.metadata().await.map_err(WriteError::Io)?.len();
    let mut shown = 0;
    let mut shown_percent = 0;
    loop {
        // A chunk that does not come within a minute counts as a dropped connection.
        let next = match tokio::time::timeout(std::time::Duration::from_secs(60), response.chunk()).await {
            Ok(Ok(chunk)) => Ok(chunk),
            Ok(Err(_)) | Err(_) => Err(()),
        };
        match next {
            Ok(Some(chunk)) => {
                out.write_all(&chunk).await.map_err(WriteError::Io)?;
                written += chunk.len() as u64;
                // The bar moves by the percent; the journal hears of each quarter.
                let percent = (written * 100).checked_div(expected).unwrap_or(100);
                if percent > shown_percent {
                    shown_percent = percent;
                    ctx.transfer(filename, written, expected);
                }
                let quarter = (written * 4).checked_div(expected).unwrap_or(4);
                if quarter > shown {
                    shown = quarter;
                    ctx.progress(&format!("{filename}: {written} of {expected} bytes"));
                }
            }
            Ok(None) => break,
            Err(()) => {
                out.flush().await.map_err(WriteError::Io)?;
                return Err(WriteError::Network);
            }
        }
    }
    out.flush().await.map_err(WriteError::Io)
}

async fn sha256_of(path: &std::path::Path) -> std::io::Result<String> {
    use sha2::{Digest, Sha256};
    use tokio::io::AsyncReadExt;
    let mut file = tokio::fs::File::open(path).await?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = file.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(tb_core::hex::hex(&hasher.finalize()))
}
