//! The simulator answers with the shapes of the real API: for every route the client reads,
//! the simulator's JSON has the keys and value types of the recorded response
//! (`tests/fixtures`, copied from the shared recordings), compared recursively.
//!
//! A few recorded subtrees are platform internals the client never reads (marketing fields
//! of user profiles, billing holders, the internal task of a running workflow); they are
//! listed in [`IGNORED`] with the reason, so the comparison stays strict everywhere else.

use std::collections::BTreeMap;

use serde_json::{Value, json};
use tb_operations::api::Reply;
use tb_operations::api::workflows::{Poller, StartWorkflow, WorkflowScope};
use tb_operations::api::{ApiClient, Repeat, unix_now};
use tb_simulator::Knobs;

use crate::support::cassettes::Interaction;
use crate::support::repo;
use crate::support::sim::{builtin, fast, start};

/// (key path suffix, why it is not compared).
const IGNORED: &[(&str, &str)] = &[
    ("profile", "a user's marketing and onboarding fields; the client reads names only"),
    ("holder", "the billing holder's profile; the client reads holder_type and holder_id"),
    ("user_in_charge", "the billing contact; never read"),
    ("upstream_updates_by_environment", "an old membership field; upstream status has its own route"),
    ("feature_flags", "account feature flags; never read"),
    ("waiting_for_task", "the platform's internal task; the client reads the workflow's own fields"),
    ("final_task", "compared through failure_reason on failed workflows (tests/it/client.rs)"),
    ("settings.redis", "container sizing of an environment; never read"),
    ("settings.mysql", "container sizing of an environment; never read"),
    ("settings.nginx", "container sizing of an environment; never read"),
    ("settings.php", "container sizing of an environment; never read"),
    ("user.password", "a scrubbed field of the user embedded in a workflow"),
    ("[].params", "a listed workflow's params depend on its type; each type's params are checked where it is started"),
];

fn generic(path: &str) -> String {
    path.split('/')
        .map(|seg| {
            if seg.len() == 36 && seg.chars().filter(|c| *c == '-').count() == 4 {
                "{id}"
            } else if ["dev", "test", "live", "multidev"].contains(&seg) {
                "{env}"
            } else {
                seg
            }
        })
        .collect::<Vec<_>>()
        .join("/")
}

/// Every recorded 2xx JSON body per route.
fn recorded() -> BTreeMap<String, Vec<(String, Value)>> {
    let mut out = BTreeMap::new();
    let dir = repo().join("tests/fixtures");
    let mut files: Vec<_> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().path()).collect();
    files.sort();
    for file in files.iter().filter(|p| p.extension().is_some_and(|e| e == "yml")) {
        let name = file.file_name().unwrap().to_string_lossy().into_owned();
        let interactions: Vec<Interaction> = serde_saphyr::from_str(&std::fs::read_to_string(file).unwrap()).unwrap();
        for it in interactions {
            let code: u16 = it.response.status.code.parse().unwrap();
            let Some(path) = it.request.url.split("/api/").nth(1) else { continue };
            let path = path.split('?').next().unwrap_or("");
            let Ok(body) = serde_json::from_str::<Value>(it.response.body.as_deref().unwrap_or("")) else { continue };
            if !(200..300).contains(&code) || body.is_null() {
                continue;
            }
            let mut route = format!("{} {}", it.request.method, generic(path));
            if route.starts_with("GET site-names/") {
                "GET site-names/{name}".clone_into(&mut route);
            }
            if route.contains("/s3token") {
                "POST sites/{id}/environments/{env}/backups/catalog/{folder}/{element}/s3token".clone_into(&mut route);
            }
            if route.starts_with("GET sites/{id}/workflows/{id}") && body["result"].is_null() {
                route.push_str(" (running)");
            }
            out.entry(route).or_insert_with(Vec::new).push((name.clone(), body));
        }
    }
    out
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn ignored(path: &str) -> bool {
    IGNORED.iter().any(|(suffix, _)| path == *suffix || path.ends_with(&format!(".{suffix}")))
}

/// Every way `sim` differs from `rec` in keys and value types.
fn compare(rec: &Value, sim: &Value, path: &str, out: &mut Vec<String>) {
    if ignored(path) {
        return;
    }
    match (rec, sim) {
        (Value::Null, _) => {}
        (Value::Object(r), Value::Object(s)) => {
            for (key, value) in r {
                // Keys of keyed objects (env ids, backup keys, commit hashes) are data.
                let is_data_key =
                    path.ends_with("update_log") || path.ends_with("messages") || path == "catalog" || path == "envs";
                if is_data_key {
                    if let Some(first) = s.values().next() {
                        compare(value, first, &format!("{path}.*"), out);
                    }
                    break;
                }
                let child = if path.is_empty() { key.clone() } else { format!("{path}.{key}") };
                match s.get(key) {
                    Some(sv) => compare(value, sv, &child, out),
                    None if !ignored(&child) => out.push(format!("missing {child} ({})", kind(value))),
                    None => {}
                }
            }
        }
        (Value::Array(r), Value::Array(s)) => {
            if let (Some(r0), Some(s0)) = (r.first(), s.first()) {
                compare(r0, s0, &format!("{path}[]"), out);
            }
        }
        (r, s) if kind(r) == kind(s) => {}
        (r, s) => out.push(format!("{path}: recorded {} but simulated {}", kind(r), kind(s))),
    }
}

async fn sim_get(client: &ApiClient, path: &[&str]) -> Value {
    client.get::<Value>(path, &[]).await.unwrap_or_else(|e| panic!("{path:?}: {e}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[expect(
    clippy::too_many_lines,
    reason = "a table: one request per endpoint the recordings hold, each compared with its recorded shape"
)]
async fn simulated_responses_have_the_recorded_shapes() {
    let recordings = recorded();
    let (sim, client) = start(&builtin(), Knobs { ..fast(0.001) }).await;
    let uid = client.user_id().await.unwrap();
    let site = client.site_id("acme-web").await.unwrap().unwrap();
    let org = client
        .user_orgs()
        .await
        .unwrap()
        .into_iter()
        .find(|m| m.organization.profile.as_ref().and_then(|p| p.machine_name.as_deref()) == Some("acme-agency"))
        .unwrap()
        .organization
        .id;
    let deploy = StartWorkflow {
        scope: WorkflowScope::Env { site_id: site.clone(), env: "test".into() },
        kind: tb_operations::api::workflows::WorkflowType::Deploy,
        params: json!({ "updatedb": 0, "clear_cache": 0, "annotation": "Deploy test" }),
        marker: None,
    };
    let running = client.start_workflow(&deploy, unix_now()).await.unwrap();
    let post_env: Value = serde_json::to_value(sim.requests().last().map(|r| r.status)).unwrap();
    assert_eq!(post_env, json!(202));
    let multidev = client
        .send(
            reqwest::Method::POST,
            &["sites", &site, "workflows"],
            &[],
            Some(&json!({ "type": "create_cloud_development_environment", "params": { "environment_id": "shape-1",
                "deploy": { "clone_database": { "from_environment": "dev" }, "clone_files": { "from_environment": "dev" }, "annotation": "Create" } } })),
            Repeat::OnlyIfRefused,
        )
        .await
        .unwrap();
    let site_post: Value = multidev.json("site workflow").unwrap();
    let running_get = sim_get(&client, &["sites", &site, "workflows", &running.id]).await;
    // A backup, finished, so the catalog and s3token have entries.
    let export = StartWorkflow {
        scope: WorkflowScope::Env { site_id: site.clone(), env: "live".into() },
        kind: tb_operations::api::workflows::WorkflowType::DoExport,
        params: json!({ "code": true, "database": true, "files": true, "entry_type": "backup", "ttl": 31_536_000 }),
        marker: None,
    };
    let backup = client.start_workflow(&export, unix_now()).await.unwrap();
    let (poller, driver) = Poller::new(client.clone());
    let wait = async {
        poller.wait(&site, &running).await.unwrap();
        poller.wait(&site, &backup).await.unwrap();
        drop(poller);
    };
    tokio::join!(wait, driver.drive());
    let finished = sim_get(&client, &["sites", &site, "workflows", &running.id]).await;
    assert_eq!(finished["result"], "succeeded");
    let catalog = sim_get(&client, &["sites", &site, "environments", "live", "backups", "catalog"]).await;
    let folder = catalog
        .as_object()
        .unwrap()
        .values()
        .find_map(|e| e.get("filename").and(e.get("folder")).and_then(Value::as_str))
        .unwrap()
        .to_owned();
    let s3: Reply = client
        .send(
            reqwest::Method::POST,
            &["sites", &site, "environments", "live", "backups", "catalog", &folder, "code", "s3token"],
            &[],
            Some(&json!({"method": "get"})),
            Repeat::Safe,
        )
        .await
        .unwrap();
    let mut simulated: BTreeMap<&str, Value> = BTreeMap::new();
    simulated.insert("GET users/{id}", sim_get(&client, &["users", &uid]).await);
    simulated.insert("GET site-names/{name}", sim_get(&client, &["site-names", "acme-web"]).await);
    simulated.insert("GET sites/{id}", sim_get(&client, &["sites", &site]).await);
    let envs = sim_get(&client, &["sites", &site, "environments"]).await;
    simulated
        .insert("GET sites/{id}/environments/{env}", sim_get(&client, &["sites", &site, "environments", "dev"]).await);
    simulated.insert(
        "GET sites/{id}/environments/{env}/settings",
        sim_get(&client, &["sites", &site, "environments", "dev", "settings"]).await,
    );
    simulated.insert(
        "GET sites/{id}/environments/{env}/code-log",
        sim_get(&client, &["sites", &site, "environments", "dev", "code-log"]).await,
    );
    simulated.insert(
        "GET sites/{id}/environments/{env}/domains",
        sim_get(&client, &["sites", &site, "environments", "live", "domains"]).await,
    );
    simulated.insert(
        "GET sites/{id}/code-upstream-updates",
        sim_get(&client, &["sites", &site, "code-upstream-updates"]).await,
    );
    simulated.insert("GET sites/{id}/workflows", sim_get(&client, &["sites", &site, "workflows"]).await);
    simulated.insert("GET sites/{id}/workflows/{id}", finished);
    simulated.insert("GET sites/{id}/workflows/{id} (running)", running_get);
    simulated
        .insert("GET sites/{id}/memberships/users", sim_get(&client, &["sites", &site, "memberships", "users"]).await);
    simulated.insert(
        "GET users/{id}/memberships/organizations",
        sim_get(&client, &["users", &uid, "memberships", "organizations"]).await,
    );
    simulated.insert(
        "GET organizations/{id}/memberships/sites",
        sim_get(&client, &["organizations", &org, "memberships", "sites"]).await,
    );
    simulated.insert("GET users/{id}/upstreams", sim_get(&client, &["users", &uid, "upstreams"]).await);
    simulated.insert("POST sites/{id}/workflows", site_post);
    simulated.insert(
        "POST sites/{id}/environments/{env}/backups/catalog/{folder}/{element}/s3token",
        s3.json("s3token").unwrap(),
    );
    let session = sim.requests().iter().find(|r| r.path.ends_with("machine-token")).map(|r| r.status);
    assert_eq!(session, Some(200));

    // A difference counts when it holds against every recording of the route: the real API
    // itself varies (a key present in one recording and absent in another is optional; a
    // value recorded both as a string and as a number may be either).
    let mut problems = Vec::new();
    let mut compared = 0;
    for (route, bodies) in &recordings {
        let mut common: Option<std::collections::BTreeSet<String>> = None;
        for (_file, rec) in bodies {
            let mut found = Vec::new();
            let sim_value = match route.as_str() {
                "GET sites/{id}/environments" => {
                    if let Some(first) = rec.as_object().and_then(|m| m.values().next()) {
                        compare(first, &envs["dev"], "env", &mut found);
                    }
                    Some(())
                }
                "GET sites/{id}/environments/{env}/backups/catalog" => {
                    let rec_entry = rec.as_object().and_then(|m| m.values().find(|v| v.get("filename").is_some()));
                    let sim_entry =
                        catalog.as_object().unwrap().values().find(|v| v.get("filename").is_some()).unwrap();
                    if let Some(rec_entry) = rec_entry {
                        compare(rec_entry, sim_entry, "catalog entry", &mut found);
                    }
                    Some(())
                }
                // The 202 answer: the client decodes it like a running workflow.
                "POST sites/{id}/environments/{env}/workflows" => {
                    simulated.get("GET sites/{id}/workflows/{id} (running)").map(|v| compare(rec, v, "", &mut found))
                }
                other => simulated.get(other).map(|v| compare(rec, v, "", &mut found)),
            };
            if sim_value.is_none() {
                continue;
            }
            let found: std::collections::BTreeSet<String> = found.into_iter().collect();
            common = Some(match common {
                Some(c) => c.intersection(&found).cloned().collect(),
                None => found,
            });
        }
        if let Some(common) = common {
            compared += 1;
            problems.extend(common.into_iter().map(|p| format!("{route}: {p}")));
        }
    }
    sim.stop().await;
    assert!(compared >= 18, "compared only {compared} routes");
    assert!(problems.is_empty(), "{} differences:\n{}", problems.len(), problems.join("\n"));
}
