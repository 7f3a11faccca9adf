//! The API client against the simulator, over real HTTP on 127.0.0.1: login and sessions,
//! listings and their cursor, rate limits, retries, never-duplicate workflow starts, and the
//! cost of polling, each proven by the simulator's own counters.

use serde_json::json;
use tb_operations::api::workflows::{Poller, StartWorkflow, WorkflowScope};
use tb_operations::api::{ApiClient, ApiConfig, SessionStore, unix_now};
use tb_simulator::{FaultRule, Knobs, Simulator};

use crate::support::sim::{big_world, builtin, config, fast, start};

fn rule(route: &str) -> FaultRule {
    FaultRule { route: Some(route.to_owned()), ..FaultRule::default() }
}

async fn site_id(client: &ApiClient, name: &str) -> String {
    client.site_id(name).await.unwrap().unwrap()
}

fn clear_cache(site: &str, env: &str) -> StartWorkflow {
    StartWorkflow {
        scope: WorkflowScope::Env { site_id: site.to_owned(), env: env.to_owned() },
        kind: tb_operations::api::workflows::WorkflowType::ClearCache,
        params: json!({ "framework_cache": true }),
        marker: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_in_once_and_reuses_the_session() {
    let (sim, client) = start(&builtin(), Knobs::default()).await;
    let me = client.me().await.unwrap();
    assert_eq!(me.email, "ops@acme.example");
    for name in ["acme-web", "acme-blog", "acme-shop"] {
        client.site_id(name).await.unwrap().unwrap();
    }
    // Names are cached for the run: asking again sends nothing.
    client.site_id("acme-web").await.unwrap();
    assert_eq!(client.site_id("no-such-site").await.unwrap(), None);
    let stats = sim.stop().await;
    assert_eq!(stats.logins, 1);
    assert_eq!(stats.count("POST authorize/machine-token"), 1);
    assert_eq!(stats.count("GET site-names/{name}"), 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_session_logs_in_again_once() {
    let knobs =
        Knobs { faults: vec![FaultRule { status: Some(401), after: 1, ..rule("users/{user}") }], ..Knobs::default() };
    let (sim, client) = start(&builtin(), knobs).await;
    client.me().await.unwrap();
    client.me().await.unwrap();
    let stats = sim.stop().await;
    assert_eq!(stats.logins, 2, "one re-login after the 401");
    assert_eq!(stats.requests["GET users/{user}"].get(&401), Some(&1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_issued_expired_is_used_for_the_run() {
    let knobs = Knobs { session_expires_in: -3600.0, ..Knobs::default() };
    let (sim, client) = start(&builtin(), knobs).await;
    for name in ["acme-web", "acme-blog"] {
        let id = site_id(&client, name).await;
        client.environments(&id).await.unwrap();
    }
    assert_eq!(sim.stop().await.logins, 1, "no login loop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_and_tokens_are_shared_with_terminus_files() {
    let dir = tempfile::tempdir().unwrap();
    let store =
        SessionStore::Files { cache_dir: dir.path().join("cache"), tokens_dir: dir.path().join("cache/tokens") };
    let sim = Simulator::start(&builtin(), Knobs::default(), 0).await.unwrap();
    // A token saved by terminus (its exact format), and no token in the environment.
    std::fs::create_dir_all(dir.path().join("cache/tokens")).unwrap();
    std::fs::write(
        dir.path().join("cache/tokens/ops@acme.example"),
        format!(r#"{{"token":"{}","email":"ops@acme.example","date":1700000000}}"#, sim.machine_token()),
    )
    .unwrap();
    let first = ApiClient::new(ApiConfig { machine_token: None, store: store.clone(), ..config(&sim) }).unwrap();
    assert_eq!(first.me().await.unwrap().email, "ops@acme.example");
    let saved: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("cache/session")).unwrap()).unwrap();
    assert!(saved["session"].is_string() && saved["expires_at"].is_i64() && saved["user_id"].is_string());
    // A second process finds the saved session and does not log in again.
    let second = ApiClient::new(ApiConfig { machine_token: None, store, ..config(&sim) }).unwrap();
    second.me().await.unwrap();
    assert_eq!(sim.stop().await.logins, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listings_follow_the_cursor_across_pages() {
    let world = big_world(1, 250);
    let (sim, client) = start(&world, Knobs::default()).await;
    let orgs = client.user_orgs().await.unwrap();
    let sites = client.org_sites(&orgs[0].organization.id).await.unwrap();
    assert_eq!(sites.len(), 250);
    let mut ids: Vec<&str> = sites.iter().map(|s| s.id.as_str()).collect();
    ids.dedup();
    assert_eq!(ids.len(), 250, "no duplicates");
    // A made-up cursor gets page 1 again (the platform's quirk), which is why the client
    // only ever sends the last id of the page before.
    let page: Vec<serde_json::Value> = client
        .get(
            &["organizations", &orgs[0].organization.id, "memberships", "sites"],
            &[("limit", "100"), ("start", &sites[150].id)],
        )
        .await
        .unwrap();
    assert_eq!(page[0]["id"], sites[0].id.as_str());
    let stats = sim.stop().await;
    assert_eq!(stats.count("GET organizations/{org}/memberships/sites"), 3 + 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn independent_listings_are_fetched_concurrently() {
    let world = big_world(5, 120);
    let knobs = Knobs { latency: tb_simulator::knobs::Latency { min: 0.02, max: 0.02 }, ..Knobs::default() };
    let (sim, client) = start(&world, knobs.clone()).await;
    let listing = client.site_listing().await.unwrap();
    assert_eq!(listing.org_sites.iter().map(|(_, s)| s.len()).sum::<usize>(), 600);
    assert_eq!(listing.team_sites.len(), 3);
    let parallel = sim.stop().await;
    assert!(parallel.peak_concurrent_requests >= 5, "{parallel:?}");

    let sim = Simulator::start(&world, knobs, 0).await.unwrap();
    let client = ApiClient::new(ApiConfig { parallel_pagination: false, ..config(&sim) }).unwrap();
    client.site_listing().await.unwrap();
    let sequential = sim.stop().await;
    assert_eq!(sequential.peak_concurrent_requests, 1);
    assert_eq!(sequential.count("GET organizations/{org}/memberships/sites"), 5 * 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_429_storm_slows_the_client_down() {
    // The API takes 100 requests per second; the client starts at 10,000.
    let knobs = Knobs { rate_limit: Some(100.0), retry_after: 0.05, ..Knobs::default() };
    let world = big_world(1, 50);
    let (sim, client) = start(&world, knobs).await;
    let org = client.user_orgs().await.unwrap()[0].organization.id.clone();
    let sites = client.org_sites(&org).await.unwrap();
    let before = client.current_rate();
    let mut calls = Vec::new();
    // 150 different reads (identical ones in flight would be sent once).
    for site in &sites {
        for env in ["dev", "test", "live"] {
            let client = client.clone();
            let id = site.id.clone();
            calls.push(tokio::spawn(async move {
                client.get::<serde_json::Value>(&["sites", &id, "environments", env, "settings"], &[]).await
            }));
        }
    }
    for call in calls {
        call.await.unwrap().unwrap();
    }
    let stats = sim.stop().await;
    let ok = stats.requests["GET sites/{site}/environments/{env}/settings"][&200];
    eprintln!("429 storm: 150 reads, {} refusals, rate now {:.0}/s", stats.rate_limited, client.current_rate());
    assert_eq!(ok, 150, "every request got through in the end");
    assert!(stats.rate_limited > 0, "the storm happened");
    // Without slowing down, nearly every request beyond the server's burst would be refused
    // again and again; with the bucket halved and held for Retry-After, refusals stay a
    // fraction of the work.
    assert!(stats.rate_limited < 150, "{} refusals for 150 requests", stats.rate_limited);
    assert!(client.current_rate() < before, "the rate came down");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_are_retried_through_5xx_and_dropped_connections() {
    let knobs = Knobs {
        faults: vec![
            FaultRule { method: Some("GET".into()), status: Some(503), times: 2, ..rule("sites/{site}") },
            FaultRule { method: Some("GET".into()), drop: true, after: 2, ..rule("sites/{site}") },
        ],
        ..Knobs::default()
    };
    let (sim, client) = start(&builtin(), knobs).await;
    let id = site_id(&client, "acme-web").await;
    let site = client.site(&id).await.unwrap();
    assert_eq!(site.name, "acme-web");
    let stats = sim.stop().await;
    assert_eq!(stats.count("GET sites/{site}"), 4, "{stats:?}");
    assert_eq!(stats.faults.get("drop"), Some(&1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_workflow_answer_is_reconciled_not_repeated() {
    for fault in [
        FaultRule { method: Some("POST".into()), drop: true, ..rule("sites/{site}/environments/{env}/workflows") },
        FaultRule {
            method: Some("POST".into()),
            status: Some(502),
            processed: Some(true),
            ..rule("sites/{site}/environments/{env}/workflows")
        },
    ] {
        let (sim, client) = start(&builtin(), Knobs { faults: vec![fault.clone()], ..Knobs::default() }).await;
        let id = site_id(&client, "acme-web").await;
        let workflow = client.start_workflow(&clear_cache(&id, "live"), unix_now()).await.unwrap();
        assert_eq!(workflow.kind, "clear_cache");
        let stats = sim.stop().await;
        assert_eq!(stats.workflows_started.get("acme-web.live.clear_cache"), Some(&1), "{fault:?}: {stats:?}");
        assert_eq!(stats.count("GET sites/{site}/workflows"), 1, "reconciled by listing the site's workflows");
        assert_eq!(stats.count("POST sites/{site}/environments/{env}/workflows"), 1, "never sent twice");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_or_failed_workflow_post_is_repeated_and_one_that_acted_is_not() {
    // 429: refused before acting, so the POST is sent again.
    let knobs = Knobs {
        faults: vec![FaultRule {
            method: Some("POST".into()),
            status: Some(429),
            ..rule("sites/{site}/environments/{env}/workflows")
        }],
        ..Knobs::default()
    };
    let (sim, client) = start(&builtin(), knobs).await;
    let id = site_id(&client, "acme-web").await;
    client.start_workflow(&clear_cache(&id, "live"), unix_now()).await.unwrap();
    let stats = sim.stop().await;
    assert_eq!(stats.count("POST sites/{site}/environments/{env}/workflows"), 2);
    assert_eq!(stats.workflows_total, 1);

    // A 500 that did not start anything: reconciling finds nothing, so the POST goes again
    // (issue 23), and the workflow is started once.
    let failing = |times: u32, processed: bool| Knobs {
        faults: vec![FaultRule {
            method: Some("POST".into()),
            status: Some(500),
            processed: Some(processed),
            times,
            ..rule("sites/{site}/environments/{env}/workflows")
        }],
        ..Knobs::default()
    };
    let (sim, client) = start(&builtin(), failing(1, false)).await;
    let id = site_id(&client, "acme-web").await;
    client.start_workflow(&clear_cache(&id, "live"), unix_now()).await.unwrap();
    let stats = sim.stop().await;
    assert_eq!(stats.workflows_total, 1);
    assert_eq!(stats.count("POST sites/{site}/environments/{env}/workflows"), 2);
    // A 500 after acting: the workflow is found and adopted, not posted again.
    let (sim, client) = start(&builtin(), failing(1, true)).await;
    let id = site_id(&client, "acme-web").await;
    client.start_workflow(&clear_cache(&id, "live"), unix_now()).await.unwrap();
    let stats = sim.stop().await;
    assert_eq!(stats.workflows_total, 1);
    assert_eq!(stats.count("POST sites/{site}/environments/{env}/workflows"), 1);
    // 500s that never stop: the request's budget of attempts (6 here) bounds the POSTs, and
    // nothing was started.
    let (sim, client) = start(&builtin(), failing(100, false)).await;
    let id = site_id(&client, "acme-web").await;
    let err = client.start_workflow(&clear_cache(&id, "live"), unix_now()).await.unwrap_err();
    assert_eq!(err.status(), Some(500), "{err}");
    assert!(err.to_string().contains("POST /api/sites/") && err.to_string().contains("6 attempts"), "{err}");
    let stats = sim.stop().await;
    assert_eq!(stats.workflows_total, 0);
    assert_eq!(stats.count("POST sites/{site}/environments/{env}/workflows"), 6);

    // A platform refusal (4xx) is shown with its message.
    let (sim, client) = start(&builtin(), Knobs::default()).await;
    let id = site_id(&client, "acme-web").await;
    let deploy_dev = StartWorkflow {
        scope: WorkflowScope::Env { site_id: id, env: "dev".into() },
        kind: tb_operations::api::workflows::WorkflowType::Deploy,
        params: json!({ "updatedb": 0, "clear_cache": 0, "annotation": "x" }),
        marker: None,
    };
    let err = client.start_workflow(&deploy_dev, unix_now()).await.unwrap_err();
    assert!(err.to_string().contains("Code can only be deployed to test or live"), "{err}");
    sim.stop().await;
}

/// Starts `n` clear-cache workflows, one per site, waits for all with one poller, and
/// returns the poll requests made.
async fn wait_for_sites(
    client: &ApiClient,
    poller: &Poller,
    sites: &[String],
) -> Vec<tb_operations::api::wire::Workflow> {
    let mut waits = Vec::new();
    for id in sites {
        let wf = client.start_workflow(&clear_cache(id, "live"), unix_now()).await.unwrap();
        let poller = poller.clone();
        let id = id.clone();
        waits.push(tokio::spawn(async move { poller.wait(&id, &wf).await }));
    }
    let mut done = Vec::new();
    for w in waits {
        done.push(w.await.unwrap().unwrap());
    }
    done
}

/// Polls made while waiting for one workflow on each of `sites`, then for one more on each
/// of the rest: (by-id polls, list reads) for the first part, then for the second.
async fn poll_costs(knobs: Knobs, first: usize, rest: usize) -> ((u64, u64), (u64, u64)) {
    let world = big_world(1, first + rest);
    let (sim, client) = start(&world, knobs).await;
    let listing = client.org_sites(&client.user_orgs().await.unwrap()[0].organization.id).await.unwrap();
    let ids: Vec<String> = listing.iter().map(|m| m.id.clone()).collect();
    let (poller, driver) = Poller::new(client.clone());
    let counts = |stats: &tb_simulator::Stats| {
        (stats.count("GET sites/{site}/workflows/{workflow}"), stats.count("GET sites/{site}/workflows"))
    };
    let work = async {
        let done = wait_for_sites(&client, &poller, &ids[..first]).await;
        assert!(done.iter().all(tb_operations::api::wire::Workflow::succeeded));
        let before = counts(&sim.stats());
        let done = wait_for_sites(&client, &poller, &ids[first..]).await;
        assert!(done.iter().all(tb_operations::api::wire::Workflow::succeeded));
        drop(poller);
        before
    };
    let (before, ()) = tokio::join!(work, driver.drive());
    let after = counts(&sim.stop().await);
    (before, (after.0 - before.0, after.1 - before.1))
}

fn per(count: u64, workflows: usize) -> f64 {
    f64::from(u32::try_from(count).unwrap()) / f64::from(u32::try_from(workflows).unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_times_are_learned_from_the_site_list_before_the_first_poll() {
    // 15 s clear-cache workflows at a time scale of 1/100 (150 ms each, a 10 ms poll floor),
    // on sites whose lists show recent clear-cache runs.
    let ((by_id, lists), (more_by_id, more_lists)) = poll_costs(fast(0.01), 20, 20).await;
    eprintln!(
        "learning from history: {lists} list + {by_id} by id for the first 20 workflows, \
         {more_lists} + {more_by_id} for the next 20"
    );
    // Site lists are read while fewer than five run times are known, three at most.
    assert!((1..=3).contains(&lists), "{lists} site lists");
    assert_eq!(more_lists, 0, "one workflow per site is polled by id");
    // Polled at the 65th percentile of known run times, then at the longest: never more than
    // 1.5 polls per workflow on average (late polls only lower the count).
    assert!(per(by_id + lists, 20) <= 1.5, "{by_id} + {lists} polls for 20 workflows");
    assert!(per(more_by_id, 20) <= 1.5, "{more_by_id} polls for 20 workflows");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_history_run_times_are_learned_from_the_first_finish() {
    let knobs = Knobs { history: 0, ..fast(0.01) };
    let ((by_id, lists), (more_by_id, more_lists)) = poll_costs(knobs, 1, 20).await;
    eprintln!("no history: {lists} list + {by_id} by id for the first workflow, {more_by_id} for the next 20");
    assert_eq!(lists, 1, "one site list read in vain");
    assert!(by_id >= 2, "polled until it finished");
    assert!(more_lists <= 2, "two more lists while fewer than five run times are known");
    assert!(per(more_by_id + more_lists, 20) <= 1.5, "{more_by_id} + {more_lists} polls for 20 workflows");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thirty_workflows_on_one_site_share_one_list_request_per_tick() {
    let (sim, client) = start(&builtin(), fast(0.01)).await;
    let id = site_id(&client, "acme-web").await;
    let (poller, driver) = Poller::new(client.clone());
    let work = async {
        let ids = vec![id.clone(); 30];
        let done = wait_for_sites(&client, &poller, &ids).await;
        assert_eq!(done.len(), 30);
        drop(poller);
    };
    tokio::join!(work, driver.drive());
    let stats = sim.stop().await;
    let lists = stats.count("GET sites/{site}/workflows");
    let by_id = stats.count("GET sites/{site}/workflows/{workflow}");
    eprintln!("thirty on one site: {lists} list requests, {by_id} by id");
    assert!(lists >= 1);
    assert!(lists + by_id < 30, "{lists} lists + {by_id} by id for 30 workflows");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_workflows_carry_the_platform_reason() {
    let knobs = Knobs {
        faults: vec![FaultRule {
            fail_workflow: Some("Simulated: the database is locked".into()),
            ..rule("sites/{site}/environments/{env}/workflows")
        }],
        ..fast(0.01)
    };
    let (sim, client) = start(&builtin(), knobs).await;
    let id = site_id(&client, "acme-web").await;
    let (poller, driver) = Poller::new(client.clone());
    let work = async {
        let wf = client.start_workflow(&clear_cache(&id, "live"), unix_now()).await.unwrap();
        let done = poller.wait(&id, &wf).await.unwrap();
        drop(poller);
        done
    };
    let (done, ()) = tokio::join!(work, driver.drive());
    assert!(done.is_finished() && !done.succeeded());
    assert_eq!(done.failure_reason(), "Simulated: the database is locked");
    sim.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_seed_gives_the_same_outcomes_and_counters() {
    async fn scenario() -> (Vec<String>, tb_simulator::Stats) {
        let knobs = Knobs { seed: 42, fail_workflow_rate: 0.5, error_rate: 0.2, ..fast(0.001) };
        let (sim, client) = start(&builtin(), knobs).await;
        let (poller, driver) = Poller::new(client.clone());
        let work = async {
            let mut outcomes = Vec::new();
            for name in ["acme-web", "acme-blog", "acme-shop", "acme-docs"] {
                let id = site_id(&client, name).await;
                for env in ["dev", "test", "live"] {
                    let outcome = match client.start_workflow(&clear_cache(&id, env), unix_now()).await {
                        Ok(wf) => poller.wait(&id, &wf).await.unwrap().result.unwrap_or_default(),
                        Err(e) => format!("not started: {:?}", e.status()),
                    };
                    outcomes.push(outcome);
                }
            }
            drop(poller);
            outcomes
        };
        let (outcomes, ()) = tokio::join!(work, driver.drive());
        let stats = sim.stop().await;
        (outcomes, stats)
    }
    let (a, sa) = scenario().await;
    let (b, sb) = scenario().await;
    assert_eq!(a, b);
    // (A POST answered 5xx goes again when nothing started, so every one starts here.)
    for kind in ["succeeded", "failed"] {
        assert!(a.iter().any(|o| o.starts_with(kind)), "no {kind} in {a:?}");
    }
    assert_eq!(sa.workflows_started, sb.workflows_started);
    // Poll counts depend on timing, so faults on polls may differ; faults on the requests
    // both runs make alike (workflow POSTs, name lookups) must not.
    for route in ["POST sites/{site}/environments/{env}/workflows", "GET site-names/{name}"] {
        assert_eq!(sa.requests.get(route), sb.requests.get(route), "{route}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn state_moves_when_workflows_finish() {
    let (sim, client) = start(&builtin(), fast(0.001)).await;
    let id = site_id(&client, "acme-web").await;
    let pending = |log: &[tb_operations::api::wire::Commit], env: &str, parent: &str| {
        log.iter().filter(|c| c.labels.iter().any(|l| l == parent) && !c.labels.iter().any(|l| l == env)).count()
    };
    let before = client.code_log(&id, "dev").await.unwrap();
    assert_eq!(pending(&before, "test", "dev"), 1);
    let deploy = StartWorkflow {
        scope: WorkflowScope::Env { site_id: id.clone(), env: "test".into() },
        kind: tb_operations::api::workflows::WorkflowType::Deploy,
        params: json!({ "updatedb": 0, "clear_cache": 1, "annotation": "Release [tb:r1:t]" }),
        marker: Some("[tb:r1:t]".into()),
    };
    let (poller, driver) = Poller::new(client.clone());
    let work = async {
        let wf = client.start_workflow(&deploy, unix_now()).await.unwrap();
        assert!(wf.result.is_none(), "202 with result null");
        let done = poller.wait(&id, &wf).await.unwrap();
        drop(poller);
        done
    };
    let (done, ()) = tokio::join!(work, driver.drive());
    assert!(done.succeeded(), "{}", done.failure_reason());
    let after = client.code_log(&id, "dev").await.unwrap();
    assert_eq!(pending(&after, "test", "dev"), 0, "the deployed commit now carries the test label");
    sim.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn code_moving_workflows_queue_per_environment() {
    let (sim, client) = start(&builtin(), fast(0.01)).await;
    let id = site_id(&client, "acme-web").await;
    let deploy = |note: &str| StartWorkflow {
        scope: WorkflowScope::Env { site_id: id.clone(), env: "test".into() },
        kind: tb_operations::api::workflows::WorkflowType::Deploy,
        params: json!({ "updatedb": 0, "clear_cache": 0, "annotation": note }),
        marker: None,
    };
    let first = client.start_workflow(&deploy("one"), unix_now()).await.unwrap();
    let second = client.start_workflow(&deploy("two"), unix_now()).await.unwrap();
    assert_eq!(first.phase.as_deref(), Some("started"));
    assert_eq!(second.phase.as_deref(), Some("queued"), "the second deploy to test waits for the first");
    assert!(second.started_at.unwrap() >= first.created_at.unwrap() + 0.4);
    sim.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_host_is_a_clear_error() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    let sim = Simulator::start(&builtin(), Knobs::default(), 0).await.unwrap();
    let cfg = ApiConfig { base: format!("http://127.0.0.1:{port}/api/"), attempts: 2, ..config(&sim) };
    let err = ApiClient::new(cfg).unwrap().me().await.unwrap_err();
    assert!(err.is_unreachable(), "{err}");
    assert!(err.to_string().contains("cannot connect"), "{err}");
    sim.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_simulator_counts_the_wait_from_a_workflows_end_to_the_first_read_that_shows_it() {
    // A clear cache that ends as it starts: every read after the POST shows it finished.
    let knobs = Knobs { workflow_durations: [("clear_cache".to_owned(), 0.0)].into(), ..Knobs::default() };
    let (sim, client) = start(&builtin(), knobs).await;
    let id = site_id(&client, "acme-web").await;
    let workflow = client.start_workflow(&clear_cache(&id, "live"), unix_now()).await.unwrap();
    assert_eq!(sim.stats().unseen_seconds.to_bits(), 0.0_f64.to_bits(), "no read has shown it yet");
    assert!(client.workflow(&id, &workflow.id).await.unwrap().is_finished());
    let waited = sim.stats().unseen_seconds;
    assert!(waited > 0.0, "the read came after its end");
    assert!(client.workflow(&id, &workflow.id).await.unwrap().is_finished());
    client.workflows(&id).await.unwrap();
    assert_eq!(sim.stats().unseen_seconds.to_bits(), waited.to_bits(), "only the first read that showed it counts");
    sim.stop().await;
}
