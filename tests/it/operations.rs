//! Every operation against the simulator: the requests it sends (checked against
//! pantheon-api.md through the simulator's record of what it received), its nothing-to-do
//! case, and its failure case with the platform's reason.

use std::collections::BTreeMap;

use serde_json::{Value, json};
use tb_operations::api::workflows::Poller;
use tb_operations::{OpError, OpOutput, Ops, Target};
use tb_plan::plan::ops::{BackupElement, ConnectionMode, OperationSpec};
use tb_plan::plan::template::Text;
use tb_simulator::{FaultRule, Knobs, RecordedRequest};

use crate::support::sim::{start, world};

use crate::support::Quiet;

const WORLD: &str = "
user: { email: ops@example.com, first_name: Ada, last_name: Ops }
orgs: [{ name: org, label: The Org }]
sites:
  - name: s1
    org: org
    tags: [weekly]
    upstream_updates: 2
    envs:
      dev: { connection: sftp, uncommitted: 3 }
      test: { deployable: 1 }
      live: { deployable: 1, domains: [www.s1.example], backups: 2 }
      md-1: {}
  - name: s2
    org: org
    multidev_quota: 1
    envs:
      dev: {}
      test: { initialized: false }
      live: { locked: true }
      md-9: {}
  - name: s3
    org: org
    upstream_updates: 2
  - name: ic
    org: org
    framework: drupal8
    upstream: drupal-composer-managed
    composer_updates: 2
";

struct Outcome {
    result: Result<OpOutput, OpError>,
    /// Requests that change something (not GETs, not the login).
    writes: Vec<RecordedRequest>,
    all: Vec<RecordedRequest>,
    /// Page requests the environments' sites answered.
    site_requests: u64,
}

fn fault(kind: &str) -> FaultRule {
    FaultRule {
        workflow_type: Some(kind.to_owned()),
        fail_workflow: Some(format!("Simulated: {kind} refused")),
        times: 9,
        ..FaultRule::default()
    }
}

async fn exec_with(
    op: OperationSpec,
    site: &str,
    env: Option<&str>,
    faults: Vec<FaultRule>,
    vars: &[(&str, &str)],
) -> Outcome {
    let knobs = Knobs { time_scale: 0.001, duration_jitter: 0.0, faults, ..Knobs::default() };
    let (sim, client) = start(&world(WORLD), knobs).await;
    let (poller, driver) = Poller::new(client.clone());
    let vars: BTreeMap<String, String> = vars.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
    let sites = tb_operations::web::SiteRoute { addr: sim.sites().addr, ca_pem: sim.sites().ca_pem.clone() };
    let ops = Ops::new(client, poller, "r1".into(), vars).with_platform_scale(0.0).with_site_route(Some(&sites));
    let target = Target { site: site.to_owned(), site_id: String::new(), env: env.map(str::to_owned) };
    let work = async move { ops.perform(&op, &target, "job[x]", &Quiet).await };
    let (result, ()) = tokio::join!(work, driver.drive());
    let all = sim.requests();
    let site_requests = sim.stop().await.site_requests;
    let writes = all.iter().filter(|r| r.method != "GET" && !r.path.ends_with("machine-token")).cloned().collect();
    Outcome { result, writes, all, site_requests }
}

async fn exec(op: OperationSpec, site: &str, env: Option<&str>) -> Outcome {
    exec_with(op, site, env, Vec::new(), &[]).await
}

fn text(s: &str) -> Text {
    Text::literal(s)
}

/// The one write of an outcome: (method, path after the site id, body).
fn only_write(o: &Outcome) -> (String, String, Value) {
    assert_eq!(o.writes.len(), 1, "{:#?}", o.writes);
    let w = &o.writes[0];
    let tail = w.path.splitn(5, '/').nth(4).unwrap_or_default().to_owned();
    (w.method.clone(), tail, w.body.clone().unwrap_or(Value::Null))
}

fn ok(o: &Outcome) -> &OpOutput {
    o.result.as_ref().unwrap_or_else(|e| panic!("{e}"))
}

fn changed(o: &Outcome) {
    assert!(ok(o).changed, "{}", ok(o).message);
}

fn unchanged(o: &Outcome) {
    assert!(!ok(o).changed, "expected nothing to do, got {}", ok(o).message);
    assert!(o.writes.is_empty(), "nothing to do sends nothing: {:#?}", o.writes);
}

fn failed(o: &Outcome, needle: &str) {
    match &o.result {
        Err(e) => assert!(e.message.contains(needle), "{}", e.message),
        Ok(out) => panic!("expected a failure with {needle}, got {}", out.message),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn env_deploy() {
    let op = OperationSpec::EnvDeploy { note: text("Release"), updatedb: true, cc: false, sync_content: false };
    let o = exec(op.clone(), "s1", Some("test")).await;
    changed(&o);
    let (method, path, body) = only_write(&o);
    assert_eq!((method.as_str(), path.as_str()), ("POST", "environments/test/workflows"));
    assert_eq!(body["type"], "deploy");
    assert_eq!(body["params"]["updatedb"], 1, "integers, as terminus sends");
    assert_eq!(body["params"]["clear_cache"], 0);
    assert_eq!(body["params"]["annotation"], "Release [tb:r1:job[x]]");
    assert!(o.all.iter().any(|r| r.path.ends_with("environments/dev/code-log")), "the nothing-to-deploy check");
    unchanged(&exec(op.clone(), "s2", Some("live")).await);
    failed(&exec_with(op.clone(), "s1", Some("test"), vec![fault("deploy")], &[]).await, "Simulated: deploy refused");
    // An uninitialized environment is created from its parent, as terminus does.
    let o = exec(op, "s2", Some("test")).await;
    let (_, _, body) = only_write(&o);
    assert_eq!(body["type"], "create_environment");
    assert_eq!(body["params"]["clone_database"]["from_environment"], "dev");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn env_clear_cache() {
    let o = exec(OperationSpec::EnvClearCache, "s1", Some("live")).await;
    changed(&o);
    let (_, path, body) = only_write(&o);
    assert_eq!(path, "environments/live/workflows");
    assert_eq!(body, json!({ "type": "clear_cache", "params": { "framework_cache": true } }));
    failed(
        &exec_with(OperationSpec::EnvClearCache, "s1", Some("live"), vec![fault("clear_cache")], &[]).await,
        "refused",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn env_wake() {
    let o = exec(OperationSpec::EnvWake, "s1", Some("dev")).await;
    assert_eq!(ok(&o).data.as_ref().unwrap()["domain"], "dev-s1.pantheonsite.io");
    assert_eq!(o.site_requests, 1, "one health check, to the site itself");
    assert!(o.all.iter().all(|r| !r.path.contains("pantheon_healthcheck")), "none to the API");
    // An environment not initialized has no site to answer.
    failed(
        &exec(OperationSpec::EnvWake, "s2", Some("test")).await,
        "Failed to wake the site after 3 attempts. Last error: HTTP 404",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn env_clone_content() {
    let op = OperationSpec::EnvCloneContent {
        from_env: "live".into(),
        db_only: false,
        files_only: false,
        updatedb: true,
        cc: true,
    };
    let o = exec(op.clone(), "s1", Some("test")).await;
    changed(&o);
    let types: Vec<&Value> = o.writes.iter().map(|w| &w.body.as_ref().unwrap()["type"]).collect();
    assert_eq!(types, [&json!("clone_files"), &json!("clone_database")]);
    assert_eq!(
        o.writes[1].body.as_ref().unwrap()["params"],
        json!({ "from_environment": "live", "updatedb": 1, "clear_cache": true })
    );
    failed(&exec(op, "s2", Some("test")).await, "not initialized");
    // As terminus: dev and multidevs are always initialized; only test and live have their
    // settings read.
    let down = OperationSpec::EnvCloneContent {
        from_env: "test".into(),
        db_only: false,
        files_only: false,
        updatedb: false,
        cc: false,
    };
    let o = exec(down, "s1", Some("dev")).await;
    changed(&o);
    let settings: Vec<&str> = o.all.iter().filter(|r| r.path.ends_with("/settings")).map(|r| r.path.as_str()).collect();
    assert_eq!(settings.len(), 1, "{settings:?}");
    assert!(settings[0].ends_with("/environments/test/settings"), "{settings:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn env_commit() {
    let op = OperationSpec::EnvCommit { message: text("Fix") };
    let o = exec(op.clone(), "s1", Some("dev")).await;
    changed(&o);
    let (_, _, body) = only_write(&o);
    assert_eq!(body["type"], "commit_and_push_on_server_changes");
    assert_eq!(
        body["params"],
        json!({ "message": "Fix", "committer_name": "Ada Ops", "committer_email": "ops@example.com" })
    );
    unchanged(&exec(op.clone(), "s1", Some("md-1")).await.with_sftp_check());
    failed(&exec(op, "s2", Some("dev")).await, "git mode");
}

impl Outcome {
    /// md-1 is in git mode: committing there is refused, not unchanged.
    fn with_sftp_check(self) -> Self {
        match &self.result {
            Err(e) if e.message.contains("git mode") => {
                Self { result: Ok(OpOutput { changed: false, message: e.message.clone(), data: None }), ..self }
            }
            _ => self,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backup_create_restore_list() {
    let op = OperationSpec::BackupCreate { element: BackupElement::Database, keep_for_days: 30 };
    let o = exec(op.clone(), "s1", Some("live")).await;
    let (_, _, body) = only_write(&o);
    assert_eq!(
        body,
        json!({ "type": "do_export", "params": { "code": false, "database": true, "files": false, "entry_type": "backup", "ttl": 2_592_000 } })
    );
    failed(&exec_with(op, "s1", Some("live"), vec![fault("do_export")], &[]).await, "refused");

    let o = exec(OperationSpec::BackupRestore { element: BackupElement::All, file: None }, "s1", Some("live")).await;
    changed(&o);
    let kinds: Vec<String> =
        o.writes.iter().map(|w| w.body.as_ref().unwrap()["type"].as_str().unwrap().to_owned()).collect();
    assert_eq!(kinds, ["restore_code", "restore_files", "restore_database"]);
    // The platform addresses backups by the site's id (terminus's Backup::restore, and the
    // recorded restore): `<site_id>/<env>/<folder>/<file>`.
    let key = o.writes[0].body.as_ref().unwrap()["params"]["key"].as_str().unwrap().to_owned();
    let parts: Vec<&str> = key.split('/').collect();
    assert_eq!(parts.len(), 4, "{key}");
    assert!(parts[0].len() == 36 && parts[0] != "s1" && o.writes[0].path.contains(parts[0]), "the site id: {key}");
    assert!(parts[1] == "live" && parts[2].ends_with("_backup") && parts[3].ends_with("_code.tar.gz"), "{key}");
    failed(
        &exec(OperationSpec::BackupRestore { element: BackupElement::All, file: None }, "s2", Some("live")).await,
        "No backups available",
    );

    let o = exec(OperationSpec::BackupList, "s1", Some("live")).await;
    assert_eq!(ok(&o).data.as_ref().unwrap().as_array().unwrap().len(), 6, "two sets of three");
    assert!(o.writes.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backup_get_downloads_verifies_and_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let to = dir.path().to_str().unwrap().to_owned();
    let op = OperationSpec::BackupGet { element: BackupElement::Files, file: None, to: text(&to) };
    // The connection drops mid-file once: the download resumes with Range.
    let drop = FaultRule {
        workflow_type: None,
        fail_workflow: None,
        drop: true,
        route: Some("__s3/{file}".into()),
        times: 1,
        ..fault("")
    };
    let o = exec_with(op.clone(), "s1", Some("live"), vec![drop], &[]).await;
    let data = ok(&o).data.clone().unwrap();
    let path = std::path::PathBuf::from(data["path"].as_str().unwrap());
    assert!(path.starts_with(dir.path().join("s1/live")));
    let bytes = std::fs::read(&path).unwrap();
    assert_eq!(bytes.len() as u64, data["size"].as_u64().unwrap());
    let leftovers: Vec<_> =
        std::fs::read_dir(dir.path().join("s1/live")).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(leftovers.len(), 1, "no partial file left behind: {leftovers:?}");
    let s3: Vec<u16> = o.all.iter().filter(|r| r.path.starts_with("/__s3/")).map(|r| r.status).collect();
    assert_eq!(s3, [200, 206], "half the file, then the rest with Range");
    assert!(o.all.iter().any(|r| r.path.ends_with("/files/s3token")), "the signed URL is asked for the element");
    unchanged(&exec(op, "s1", Some("live")).await);
    let none = OperationSpec::BackupGet { element: BackupElement::Files, file: None, to: text(&to) };
    failed(&exec(none, "s2", Some("live")).await, "no finished files backup");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn multidev_create_delete_merge() {
    let create = OperationSpec::MultidevCreate { from_env: "dev".into(), no_db: false, no_files: true };
    let o = exec(create.clone(), "s1", Some("md-2")).await;
    changed(&o);
    let (_, path, body) = only_write(&o);
    assert_eq!(path, "workflows", "a site workflow");
    assert_eq!(body["type"], "create_cloud_development_environment");
    assert_eq!(body["params"]["environment_id"], "md-2");
    assert_eq!(body["params"]["deploy"]["clone_database"]["from_environment"], "dev");
    assert!(body["params"]["deploy"].get("clone_files").is_none(), "--no-files");
    // Then, as terminus does, the environments again and the new one's health check.
    let after: Vec<&str> = o
        .all
        .iter()
        .skip_while(|r| r.method != "POST" || !r.path.ends_with("/workflows"))
        .map(|r| r.path.as_str())
        .collect();
    assert!(after.iter().any(|p| p.ends_with("/environments")), "{after:?}");
    assert!(o.site_requests >= 1, "the new environment's health check");
    assert!(ok(&o).message.ends_with("it is up"), "{}", ok(&o).message);
    unchanged(&exec(create.clone(), "s1", Some("md-1")).await);
    failed(&exec(create, "s2", Some("md-3")).await, "quota");

    let delete = OperationSpec::MultidevDelete { delete_branch: true };
    let (_, _, body) = only_write(&exec(delete.clone(), "s1", Some("md-1")).await);
    assert_eq!(
        body,
        json!({ "type": "delete_cloud_development_environment", "params": { "environment_id": "md-1", "delete_branch": true } })
    );
    unchanged(&exec(delete, "s1", Some("md-7")).await);

    let o = exec(OperationSpec::MultidevMergeFromDev { updatedb: false }, "s1", Some("md-1")).await;
    let (_, path, body) = only_write(&o);
    assert_eq!(path, "environments/md-1/workflows");
    assert_eq!(
        body,
        json!({ "type": "merge_dev_into_cloud_development_environment", "params": { "updatedb": false } })
    );
    // terminus merges whenever asked: no guess from code-log labels (no recording shows how
    // the platform labels a multidev's commits), so merging md-1 into dev runs too.
    let o = exec(OperationSpec::MultidevMergeToDev { updatedb: true }, "s1", Some("md-1")).await;
    let (_, path, body) = only_write(&o);
    assert_eq!(path, "environments/dev/workflows");
    assert_eq!(
        body,
        json!({ "type": "merge_cloud_development_environment_into_dev", "params": { "updatedb": true, "from_environment": "md-1" } })
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn domains() {
    let add = OperationSpec::DomainAdd { domain: text("Shop.S1.example") };
    let (method, path, body) = only_write(&exec(add, "s1", Some("live")).await);
    assert_eq!(
        (method.as_str(), path.as_str(), body),
        ("PUT", "environments/live/domains/shop.s1.example", Value::Null)
    );
    unchanged(&exec(OperationSpec::DomainAdd { domain: text("www.s1.example") }, "s1", Some("live")).await);
    failed(
        &exec(OperationSpec::DomainAdd { domain: text("www.s1.example") }, "s1", Some("test")).await,
        "already on s1.live",
    );
    let (method, path, _) =
        only_write(&exec(OperationSpec::DomainRemove { domain: text("www.s1.example") }, "s1", Some("live")).await);
    assert_eq!((method.as_str(), path.as_str()), ("DELETE", "environments/live/domains/www.s1.example"));
    unchanged(&exec(OperationSpec::DomainRemove { domain: text("gone.example") }, "s1", Some("live")).await);
    let list = exec(OperationSpec::DomainList, "s1", Some("live")).await;
    assert_eq!(ok(&list).data.as_ref().unwrap().as_array().unwrap().len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_set() {
    // s1.dev is in SFTP mode with 3 uncommitted changes: switching to git would lose them.
    let git = OperationSpec::ConnectionSet { mode: ConnectionMode::Git, discard_changes: false };
    let refused = exec(git.clone(), "s1", Some("dev")).await;
    failed(&refused, "3 uncommitted changes that switching to git would throw away");
    assert!(refused.writes.is_empty());
    let discard = OperationSpec::ConnectionSet { mode: ConnectionMode::Git, discard_changes: true };
    assert!(discard.is_destructive(), "throwing work away needs --allow-destructive");
    let (_, path, body) = only_write(&exec(discard, "s1", Some("dev")).await);
    assert_eq!(path, "environments/dev/workflows");
    assert_eq!(body, json!({ "type": "enable_git_mode", "params": {} }));
    unchanged(&exec(git, "s2", Some("dev")).await);
    let sftp = OperationSpec::ConnectionSet { mode: ConnectionMode::Sftp, discard_changes: false };
    failed(&exec_with(sftp, "s2", Some("dev"), vec![fault("enable_on_server_development")], &[]).await, "refused");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_updates() {
    let apply = OperationSpec::UpstreamUpdatesApply { updatedb: true, accept_upstream: false };
    let o = exec(apply.clone(), "s3", Some("dev")).await;
    let (_, _, body) = only_write(&o);
    assert_eq!(body, json!({ "type": "apply_upstream_updates", "params": { "updatedb": true, "xoption": false } }));
    assert!(o.all.iter().any(|r| r.path.ends_with("code-upstream-updates")
        && r.query.contains(&("base_branch".to_owned(), "refs/heads/master".to_owned()))));
    unchanged(&exec(apply.clone(), "s2", Some("dev")).await);
    // The same check as `plan --refresh`: SFTP mode is a finding, and nothing is sent.
    let sftp = exec(apply.clone(), "s1", Some("dev")).await;
    failed(&sftp, "s1.dev is in SFTP mode");
    assert!(sftp.writes.is_empty(), "{:#?}", sftp.writes);
    failed(&exec_with(apply, "s3", Some("dev"), vec![fault("apply_upstream_updates")], &[]).await, "refused");
    let status = exec(OperationSpec::UpstreamUpdatesStatus, "s1", Some("dev")).await;
    assert_eq!(ok(&status).data.as_ref().unwrap()["behind"], 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn locks() {
    let enable = OperationSpec::LockEnable { username: text("ops"), password_env: "LOCK_PW".into() };
    let o = exec_with(enable.clone(), "s1", Some("test"), Vec::new(), &[("LOCK_PW", "hunter2")]).await;
    let (_, _, body) = only_write(&o);
    assert_eq!(body, json!({ "type": "lock_environment", "params": { "username": "ops", "password": "hunter2" } }));
    assert!(!format!("{:?}", o.result).contains("hunter2"));
    // s2.live is locked by ops with the world's password.
    unchanged(&exec_with(enable.clone(), "s2", Some("live"), Vec::new(), &[("LOCK_PW", "locked-password")]).await);
    failed(&exec(enable, "s1", Some("test")).await, "LOCK_PW is not set");
    let (_, _, body) = only_write(&exec(OperationSpec::LockDisable, "s2", Some("live")).await);
    assert_eq!(body, json!({ "type": "unlock_environment", "params": {} }));
    unchanged(&exec(OperationSpec::LockDisable, "s1", Some("live")).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn addons_and_tags() {
    let (_, path, body) = only_write(&exec(OperationSpec::RedisEnable, "s1", None).await);
    assert_eq!(
        (path.as_str(), body),
        ("workflows", json!({ "type": "enable_addon", "params": { "addon": "cacheserver" } }))
    );
    let (_, _, body) = only_write(&exec(OperationSpec::SolrEnable, "s1", None).await);
    assert_eq!(body["params"]["addon"], "indexserver");
    failed(&exec_with(OperationSpec::RedisEnable, "s1", None, vec![fault("enable_addon")], &[]).await, "refused");
    // New Relic: the site workflows terminus starts, with `converge` (pantheon-api.md §5.8).
    let (_, path, body) = only_write(&exec(OperationSpec::NewRelicEnable, "s1", None).await);
    assert_eq!(
        (path.as_str(), body),
        ("workflows", json!({ "type": "enable_new_relic_for_site", "params": { "converge": true } }))
    );
    let (_, _, body) = only_write(&exec(OperationSpec::NewRelicDisable, "s1", None).await);
    assert_eq!(body["type"], "disable_new_relic_for_site");
    failed(
        &exec_with(OperationSpec::NewRelicEnable, "s1", None, vec![fault("enable_new_relic_for_site")], &[]).await,
        "refused",
    );

    let add = OperationSpec::TagAdd { org: text("The Org"), tag: text("q4") };
    let o = exec(add, "s1", None).await;
    let w = &o.writes[0];
    assert_eq!(w.method, "PUT");
    assert!(w.path.ends_with("/tags"), "{}", w.path);
    let site_id = o.all.iter().find(|r| r.path.starts_with("/api/site-names/")).map(|_| ()).is_some();
    assert!(site_id);
    assert!(w.body.as_ref().unwrap()["q4"]["sites"].is_array());
    unchanged(&exec(OperationSpec::TagAdd { org: text("org"), tag: text("weekly") }, "s1", None).await);
    let o = exec(OperationSpec::TagRemove { org: text("org"), tag: text("weekly") }, "s1", None).await;
    assert_eq!(o.writes[0].method, "DELETE");
    assert!(o.writes[0].path.ends_with("/tags/weekly/sites") && o.writes[0].query[0].0 == "entity");
    unchanged(&exec(OperationSpec::TagRemove { org: text("org"), tag: text("nope") }, "s1", None).await);
    failed(&exec(OperationSpec::TagAdd { org: text("elsewhere"), tag: text("x") }, "s1", None).await, "not a member");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_only_operations_read_and_write_nothing() {
    let cases: Vec<(OperationSpec, &str, Option<&str>, &str)> = vec![
        (OperationSpec::SiteInfo, "s1", None, "name"),
        (OperationSpec::SiteTeamList, "s1", None, "0"),
        (OperationSpec::EnvInfo, "s2", Some("live"), "locked"),
        (OperationSpec::EnvCodeLog, "s1", Some("dev"), "0"),
        (OperationSpec::OrgList, "", None, "0"),
        (OperationSpec::OrgSiteList { org: text("org"), tag: Some(text("weekly")) }, "", None, "0"),
        (
            OperationSpec::SiteList { org: None, tag: None, upstream: None, framework: Some(text("wordpress")) },
            "",
            None,
            "1",
        ),
    ];
    for (op, site, env, key) in cases {
        let name = op.kind().name();
        let o = exec(op, site, env).await;
        let data = ok(&o).data.clone().unwrap_or_else(|| panic!("{name}: no data"));
        let found = match key.parse::<usize>() {
            Ok(i) => data.get(i).is_some(),
            Err(_) => data.get(key).is_some(),
        };
        assert!(found, "{name}: {data}");
        assert!(o.writes.is_empty(), "{name} wrote: {:#?}", o.writes);
        assert!(!data.to_string().contains("locked-password"), "{name}: a lock password in the data");
    }
}

/// `plan --refresh` and the run share one check per operation: on the same platform state,
/// a preview of "change" runs and changes, "unchanged" runs and changes nothing, and a
/// finding fails without sending anything.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_preview_and_the_run_make_the_same_decision() {
    use tb_operations::preview::Preview;
    let deploy = OperationSpec::EnvDeploy { note: text("R"), updatedb: false, cc: false, sync_content: false };
    let lock = OperationSpec::LockEnable { username: text("ops"), password_env: "LOCK_PW".into() };
    let cases: Vec<(OperationSpec, &str, &str)> = vec![
        (deploy.clone(), "s1", "test"),
        (deploy, "s2", "live"),
        (OperationSpec::EnvCommit { message: text("m") }, "s1", "dev"),
        (OperationSpec::EnvCommit { message: text("m") }, "s1", "test"),
        (OperationSpec::ConnectionSet { mode: ConnectionMode::Sftp, discard_changes: false }, "s1", "dev"),
        (OperationSpec::ConnectionSet { mode: ConnectionMode::Git, discard_changes: false }, "s1", "dev"),
        (OperationSpec::ConnectionSet { mode: ConnectionMode::Git, discard_changes: true }, "s1", "dev"),
        (OperationSpec::DomainAdd { domain: text("www.s1.example") }, "s1", "live"),
        (OperationSpec::DomainAdd { domain: text("new.s1.example") }, "s1", "live"),
        (OperationSpec::DomainAdd { domain: text("www.s1.example") }, "s1", "test"),
        (OperationSpec::DomainRemove { domain: text("gone.example") }, "s1", "live"),
        (OperationSpec::UpstreamUpdatesApply { updatedb: false, accept_upstream: false }, "s1", "dev"),
        (OperationSpec::UpstreamUpdatesApply { updatedb: false, accept_upstream: false }, "s3", "dev"),
        (OperationSpec::UpstreamUpdatesApply { updatedb: false, accept_upstream: false }, "s2", "dev"),
        (OperationSpec::MultidevDelete { delete_branch: false }, "s1", "md-7"),
        (OperationSpec::MultidevMergeFromDev { updatedb: false }, "s1", "md-1"),
        (OperationSpec::LockDisable, "s1", "live"),
        (OperationSpec::LockDisable, "s2", "live"),
        (lock, "s1", "test"),
        (OperationSpec::TagAdd { org: text("org"), tag: text("weekly") }, "s1", ""),
        (OperationSpec::TagAdd { org: text("org"), tag: text("new") }, "s1", ""),
        (OperationSpec::TagAdd { org: text("nope"), tag: text("new") }, "s1", ""),
        (OperationSpec::BackupRestore { element: BackupElement::Database, file: None }, "s1", "test"),
        (OperationSpec::BackupRestore { element: BackupElement::Database, file: None }, "s1", "live"),
    ];
    for (op, site, env) in cases {
        let env = (!env.is_empty()).then_some(env);
        let (sim, client) = start(&world(WORLD), Knobs { time_scale: 0.001, ..Knobs::default() }).await;
        let (poller, _driver) = Poller::new(client.clone());
        let ops = Ops::new(client, poller, "r1".into(), BTreeMap::new());
        let target = Target { site: site.to_owned(), site_id: String::new(), env: env.map(str::to_owned) };
        let preview = ops.preview(&op, &target).await.unwrap();
        sim.stop().await;
        let o = exec_with(op.clone(), site, env, Vec::new(), &[("LOCK_PW", "pw")]).await;
        let what = format!("{} on {site}.{}: previewed {preview:?}", op.kind().name(), env.unwrap_or("-"));
        match preview {
            Preview::Change(_) => assert!(o.result.as_ref().is_ok_and(|out| out.changed), "{what}, ran {:?}", o.result),
            Preview::Unchanged(_) => {
                assert!(o.result.as_ref().is_ok_and(|out| !out.changed), "{what}, ran {:?}", o.result);
                assert!(o.writes.is_empty(), "{what}");
            }
            Preview::Finding(reason) => {
                assert_eq!(o.result.as_ref().err().map(|e| e.message.as_str()), Some(reason.as_str()), "{what}");
                assert!(o.writes.is_empty(), "{what}");
            }
            Preview::ReadOnly(_) => panic!("{what}"),
        }
    }
}

/// terminus restores every element that has a backup (skipping the others) and finds a
/// backup by file name whatever its element.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restore_skips_missing_elements_and_finds_a_file_in_any_element() {
    let (sim, client) = start(&world(WORLD), Knobs { time_scale: 0.001, ..Knobs::default() }).await;
    let (poller, driver) = Poller::new(client.clone());
    let ops = Ops::new(client, poller, "r1".into(), BTreeMap::new());
    let target = Target { site: "s2".into(), site_id: String::new(), env: Some("live".into()) };
    let work = async move {
        let backup = OperationSpec::BackupCreate { element: BackupElement::Database, keep_for_days: 1 };
        ops.perform(&backup, &target, "b[s2.live]", &Quiet).await.unwrap();
        let all = OperationSpec::BackupRestore { element: BackupElement::All, file: None };
        let restored = ops.perform(&all, &target, "r[s2.live]", &Quiet).await.unwrap();
        let listed = ops.perform(&OperationSpec::BackupList, &target, "l[s2.live]", &Quiet).await.unwrap();
        let rows = listed.data.unwrap();
        let file = rows[0]["file"].as_str().or_else(|| rows[0]["filename"].as_str()).unwrap().to_owned();
        // The database file, asked for by name with the default element (`all`).
        let by_name = OperationSpec::BackupRestore { element: BackupElement::All, file: Some(Text::literal(&file)) };
        let again = ops.perform(&by_name, &target, "r2[s2.live]", &Quiet).await.unwrap();
        let missing = OperationSpec::BackupRestore { element: BackupElement::All, file: Some(text("nope.tar.gz")) };
        let refused = ops.perform(&missing, &target, "r3[s2.live]", &Quiet).await.unwrap_err();
        (restored, file, again, refused)
    };
    let ((restored, file, again, refused), ()) = tokio::join!(work, driver.drive());
    let writes: Vec<String> = sim
        .requests()
        .iter()
        .filter(|r| r.method == "POST" && !r.path.ends_with("machine-token"))
        .map(|r| r.body.as_ref().unwrap()["type"].as_str().unwrap().to_owned())
        .collect();
    sim.stop().await;
    assert_eq!(restored.message, "restored database", "only the element that has a backup");
    assert!(file.ends_with("_database.sql.gz"), "{file}");
    assert_eq!(again.message, "restored database", "found by name in the database element");
    assert!(refused.message.contains("no finished backup named nope.tar.gz"), "{}", refused.message);
    assert_eq!(writes, ["do_export", "restore_database", "restore_database"]);
}

/// terminus counts Integrated Composer's dependency updates (`build/updates`, read when the
/// environment's `BUILD_STEP` is on) with the upstream's, and applies when either has some.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn integrated_composer_updates_count_like_upstream_ones() {
    let status = exec(OperationSpec::UpstreamUpdatesStatus, "ic", Some("dev")).await;
    let data = ok(&status).data.clone().unwrap();
    assert_eq!((data["integrated_composer"].as_bool(), data["composer_updates"].as_u64()), (Some(true), Some(2)));
    assert_eq!(data["outdated"], true, "composer updates alone make it outdated: {data}");
    assert!(status.all.iter().any(|r| r.path.ends_with("/environments/dev/build/updates")));
    let apply = OperationSpec::UpstreamUpdatesApply { updatedb: false, accept_upstream: false };
    let o = exec(apply.clone(), "ic", Some("dev")).await;
    let (_, _, body) = only_write(&o);
    assert_eq!(body["type"], "apply_upstream_updates", "no upstream commits, but composer updates");
    // A site without Integrated Composer is not asked for composer updates.
    let plain = exec(apply, "s2", Some("dev")).await;
    unchanged(&plain);
    assert!(!plain.all.iter().any(|r| r.path.ends_with("/build/updates")));
}

/// The fleet operations added for issue 16, as terminus sends them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fleet_operations_send_terminus_s_workflows() {
    let cases: Vec<(OperationSpec, &str, Option<&str>, Value)> = vec![
        (
            OperationSpec::RedisDisable,
            "s1",
            None,
            json!({ "type": "disable_addon", "params": { "addon": "cacheserver" } }),
        ),
        (
            OperationSpec::SolrDisable,
            "s1",
            None,
            json!({ "type": "disable_addon", "params": { "addon": "indexserver" } }),
        ),
        (OperationSpec::SiteUpstreamClearCache, "s1", None, json!({ "type": "clear_code_cache", "params": {} })),
        (
            OperationSpec::EnvRotateRandomSeed,
            "s1",
            Some("test"),
            json!({ "type": "rotate_environment_randseed", "params": {} }),
        ),
        (OperationSpec::EnvWipe, "s1", Some("dev"), json!({ "type": "wipe", "params": {} })),
        (OperationSpec::HttpsRemove, "s1", Some("live"), json!({ "type": "disable_ssl", "params": {} })),
    ];
    for (op, site, env, expected) in cases {
        let o = exec(op.clone(), site, env).await;
        let (_, _, body) = only_write(&o);
        assert_eq!(body, expected, "{}", op.kind().name());
        assert_eq!(op.is_destructive(), matches!(op, OperationSpec::EnvWipe | OperationSpec::HttpsRemove));
    }
    let add = OperationSpec::DomainPrimaryAdd { domain: text("WWW.s1.example") };
    let (_, path, body) = only_write(&exec(add, "s1", Some("live")).await);
    assert_eq!(path, "environments/live/workflows");
    assert_eq!(body, json!({ "type": "set_primary_domain", "params": { "primary_domain": "www.s1.example" } }));
    failed(
        &exec(OperationSpec::DomainPrimaryAdd { domain: text("shop.example") }, "s1", Some("live")).await,
        "add it first",
    );
    unchanged(&exec(OperationSpec::DomainPrimaryRemove, "s1", Some("live")).await);
}

/// Applies `plan` (as `plan.yml` in `t`'s directory) under --simulate: its exit code and
/// JSON report.
fn apply_simulated(t: &crate::support::Test, plan: &str) -> (i32, Value) {
    std::fs::write(t.path().join("plan.yml"), plan).unwrap();
    let out = crate::support::Test::new()
        .in_dir(t.path())
        .args(&["apply", "plan.yml", "--simulate", "--yes", "--report", "json=-", "-q"])
        .run();
    let report: Value = serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", out.stderr));
    (out.code, report)
}

/// `site:team:add`, `site:team:role` and `site:team:remove`: the site workflows terminus
/// starts, each checked first against the site's team, so a change already made is nothing
/// to do and one that cannot be made fails before any workflow.
#[test]
fn site_team_changes_are_checked_against_the_team_first() {
    let plan = "version: 1
jobs:
  add:
    run: site:team:add
    on: { sites: [acme-web] }
    with: { member: Dev@Example.com }
  add-again:
    run: site:team:add
    needs: [add]
    on: { sites: [acme-web] }
    with: { member: dev@example.com }
  promote:
    run: site:team:role
    needs: [add-again]
    on: { sites: [acme-web] }
    with: { member: dev@example.com, role: developer }
  add-other-role:
    run: site:team:add
    needs: [promote]
    on: { sites: [acme-web] }
    with: { member: dev@example.com }
  role-of-nobody:
    run: site:team:role
    on: { sites: [acme-blog] }
    with: { member: nobody@example.com, role: developer }
";
    let t = crate::support::Test::new();
    let apply = |plan: &str| apply_simulated(&t, plan);
    let (_, report) = apply(plan);
    let status = |job: &str| {
        let task = report["tasks"].as_array().unwrap().iter().find(|t| t["job"] == job).unwrap().clone();
        (task["status"].as_str().unwrap().to_owned(), task["message"].as_str().unwrap().to_owned())
    };
    assert_eq!(status("add").0, "succeeded", "{:?}", status("add"));
    assert_eq!(status("add-again").0, "unchanged", "the member is there, any case: {:?}", status("add-again"));
    assert_eq!(status("promote").0, "succeeded", "{:?}", status("promote"));
    let other = status("add-other-role");
    assert_eq!(other.0, "failed", "{other:?}");
    assert!(other.1.contains("as developer already"), "{other:?}");
    let nobody = status("role-of-nobody");
    assert_eq!(nobody.0, "failed");
    assert!(nobody.1.contains("is not on acme-blog's team"), "{nobody:?}");
    assert_eq!(report["simulator"]["workflows_total"], 2, "add and promote only: {}", report["simulator"]);
    // Removing: once, then nothing to do.
    let plan = "version: 1
jobs:
  add:
    run: site:team:add
    on: { sites: [acme-web] }
    with: { member: ops2@example.com, role: developer }
  remove:
    run: site:team:remove
    needs: [add]
    on: { sites: [acme-web] }
    with: { member: OPS2@example.com }
  remove-again:
    run: site:team:remove
    needs: [remove]
    on: { sites: [acme-web] }
    with: { member: ops2@example.com }
";
    let (code, report) = apply(plan);
    assert_eq!(code, 0, "{report}");
    let statuses: Vec<&str> =
        report["tasks"].as_array().unwrap().iter().map(|t| t["status"].as_str().unwrap()).collect();
    assert_eq!(statuses, ["succeeded", "succeeded", "unchanged"], "{report}");
    assert_eq!(report["simulator"]["workflows_total"], 2);
}

/// The fleet operations terminus has and the catalogue lacked: `site:org:add`/`remove` and
/// `plan:set` check first (a change already made is nothing to do), `env:code-rebuild` sends
/// terminus's parameters, and the read-only audits put what they read into `data`, secrets
/// left out.
#[test]
fn organizations_plans_code_rebuild_and_audits() {
    let plan = "version: 1
jobs:
  org-add:
    run: site:org:add
    on: { sites: [acme-web] }
    with: { organization: globex-digital }
  org-add-again:
    run: site:org:add
    needs: [org-add]
    on: { sites: [acme-web] }
    with: { organization: Globex Digital }
  org-owner:
    run: site:org:add
    on: { sites: [acme-blog] }
    with: { organization: acme-agency }
  org-remove:
    run: site:org:remove
    needs: [org-add-again]
    on: { sites: [acme-web] }
    with: { organization: globex-digital }
  org-remove-again:
    run: site:org:remove
    needs: [org-remove]
    on: { sites: [acme-web] }
    with: { organization: globex-digital }
  plan:
    run: plan:set
    on: { sites: [acme-docs] }
    with: { plan: plan-elite-annual }
  plan-again:
    run: plan:set
    needs: [plan]
    on: { sites: [acme-docs] }
    with: { plan: plan-elite-annual }
  plan-unknown:
    run: plan:set
    on: { sites: [acme-news] }
    with: { plan: plan-platinum }
  rebuild:
    run: env:code-rebuild
    on: { sites: [acme-shop], env: dev }
  diffstat:
    run: env:diffstat
    on: { sites: [acme-shop], env: dev }
  connection:
    run: connection:info
    on: { sites: [acme-shop], env: dev }
  lock:
    run: lock:info
    on: { sites: [acme-shop], env: live }
  schedule:
    run: backup:automatic:info
    on: { sites: [acme-shop], env: live }
  updates:
    run: upstream:updates:list
    on: { sites: [acme-web], env: dev }
  metrics:
    run: env:metrics
    on: { sites: [acme-shop], env: live }
    with: { period: week, datapoints: 4 }
";
    let (_, report) = apply_simulated(&crate::support::Test::new(), plan);
    let task = |job: &str| report["tasks"].as_array().unwrap().iter().find(|t| t["job"] == job).unwrap().clone();
    let status = |job: &str| task(job)["status"].as_str().unwrap().to_owned();
    assert_eq!(status("org-add"), "succeeded", "{}", task("org-add"));
    assert_eq!(status("org-add-again"), "unchanged", "by its label too: {}", task("org-add-again"));
    assert_eq!(status("org-owner"), "unchanged", "the owner supports its site: {}", task("org-owner"));
    assert_eq!(status("org-remove"), "succeeded", "{}", task("org-remove"));
    assert_eq!(status("org-remove-again"), "unchanged", "{}", task("org-remove-again"));
    assert_eq!(status("plan"), "succeeded", "{}", task("plan"));
    assert_eq!(status("plan-again"), "unchanged", "{}", task("plan-again"));
    assert_eq!(status("plan-unknown"), "failed");
    assert!(task("plan-unknown")["message"].as_str().unwrap().contains("plan-elite-annual"), "names the plans");
    assert_eq!(status("rebuild"), "succeeded", "{}", task("rebuild"));
    // Four workflows: add, remove, plan, rebuild; every check read first.
    assert_eq!(report["simulator"]["workflows_total"], 4, "{}", report["simulator"]);
    for job in ["diffstat", "connection", "lock", "schedule", "updates", "metrics"] {
        assert_eq!(status(job), "succeeded", "{}", task(job));
        assert!(!task(job)["data"].is_null(), "{job} reports what it read: {}", task(job));
    }
    let connection = task("connection")["data"].clone();
    assert_eq!(connection["sftp_port"], 2222);
    assert!(connection["git_url"].as_str().unwrap().starts_with("ssh://codeserver.dev."), "{connection}");
    assert!(!report.to_string().contains("password"), "no secret in the report");
    assert_eq!(task("metrics")["data"].as_array().unwrap().len(), 4);
    assert_eq!(task("updates")["data"].as_array().unwrap().len(), 2, "{}", task("updates"));
}

/// What terminus sends for each new workflow, against a served simulator.
#[test]
fn the_new_workflows_carry_terminus_s_parameters() {
    let served = crate::support::sim::Served::new(crate::support::sim::fast(0.001));
    let t = crate::support::Test::new();
    for (op, on, with) in [
        ("env:code-rebuild", "acme-shop.dev", None),
        ("site:org:add", "acme-web", Some("organization=globex-digital")),
        ("plan:set", "acme-docs", Some("plan=plan-basic-monthly")),
    ] {
        let mut args = vec!["run", op, "--on", on, "--yes", "-q"];
        if let Some(with) = with {
            args.extend(["--with", with]);
        }
        let out = served.test_in(t.path()).env("TERMINUS_MACHINE_TOKEN", "simulated-machine-token").args(&args).run();
        assert_eq!(out.code, 0, "{op}: {}", out.stderr);
    }
    let posts: Vec<Value> = served
        .requests()
        .into_iter()
        .filter(|r| r.method == "POST" && r.path.ends_with("/workflows"))
        .filter_map(|r| r.body)
        .collect();
    let body =
        |kind: &str| posts.iter().find(|b| b["type"] == kind).cloned().unwrap_or_else(|| panic!("{kind}: {posts:?}"));
    assert_eq!(
        body("sync_code_with_build")["params"],
        serde_json::json!({ "converge": true, "build_steps": { "artifact_install": true } })
    );
    assert_eq!(
        body("add_site_organization_membership")["params"],
        serde_json::json!({ "organization_name": "globex-digital", "role": "team_member" })
    );
    assert!(body("change_site_service_level")["params"]["sku"].is_string());
    served.stop();
}

/// A deploy reads its environment's settings only when the parent's code log shows no commit
/// on the environment (an environment not yet initialized): one read per deploy, where
/// terminus makes two, so a fleet run spends its request rate on work (issue 26).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deploy_reads_the_settings_only_for_an_environment_never_initialized() {
    let op = OperationSpec::EnvDeploy { note: text("Release"), updatedb: false, cc: false, sync_content: false };
    let settings = |o: &Outcome| o.all.iter().filter(|r| r.path.ends_with("/settings")).count();
    let initialized = exec(op.clone(), "s1", Some("test")).await;
    changed(&initialized);
    assert_eq!(settings(&initialized), 0, "the code log shows commits on test: {:#?}", initialized.all);
    let fresh = exec(op, "s2", Some("test")).await;
    let (_, _, body) = only_write(&fresh);
    assert_eq!(body["type"], "create_environment", "an environment never initialized is created");
    assert_eq!(settings(&fresh), 1, "asked once, for the environment with nothing on it");
}
