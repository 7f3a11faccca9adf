//! `http:check` against the simulator's sites, over HTTPS under their own names: status,
//! text, latency, a warm-up inside and outside the window, redirects within the site's hosts
//! and off them; and a canary whose first wave's checks fail halts the later waves.

use serde_json::Value;

use crate::support::{Test, report, simulated};

/// The task of `report` named `id`.
fn task<'a>(report: &'a Value, id: &str) -> &'a Value {
    report["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["id"] == id)
        .unwrap_or_else(|| panic!("no task {id} in {report:#}"))
}

/// The report of `plan` applied against the sites' world.
fn run_check(plan: &str) -> Value {
    let t = simulated(SITES_WORLD, plan, &["--yes", "--report", "json=report.json", "-q"]);
    let out = t.run();
    assert!(out.code <= 1, "{}", out.stderr);
    report(&t, "report.json")
}

const SITES_WORLD: &str = r#"simulator:
  time_scale: 0.01
  site_warmup: 120
user: { email: ops@example.com }
orgs: [{ name: o }]
sites:
  - { name: fine, org: o }
  - { name: down, org: o, http: { status: 500 } }
  - { name: slow, org: o, http: { latency: 0.3 } }
  - { name: maintenance, org: o, http: { body: "<h1>Down for maintenance</h1>" } }
  - { name: moved, org: o, http: { redirect: "https://elsewhere.example.com/" } }
  - { name: www, org: o, http: { redirect: "https://www.example.org/" }, envs: { live: { domains: [www.example.org] } } }
  - { name: warm, org: o }
  - { name: cold, org: o }
"#;

#[test]
fn a_check_asks_the_site_for_its_status_text_and_latency_and_follows_only_its_own_hosts() {
    let plan = r"version: 1
jobs:
  check:
    run: http:check
    on: { sites: [fine, down, slow, maintenance, moved, www], env: live }
    with: { contains: Welcome, max-latency: 200ms, within: 5s }
";
    let t = simulated(SITES_WORLD, plan, &["--yes", "--report", "json=report.json", "-q"]);
    let out = t.run();
    assert_eq!(out.code, 1, "failures are exit 1: {}", out.stderr);
    let report = report(&t, "report.json");
    let fine = task(&report, "check[fine.live]");
    assert_eq!(fine["status"], "succeeded", "{fine:#}");
    assert_eq!(fine["data"]["status"], 200);
    assert_eq!(fine["data"]["url"], "https://live-fine.pantheonsite.io/");
    assert!(fine["data"]["latency_ms"].as_u64().unwrap() < 200, "{fine:#}");
    let expect = [
        ("down", "the site answered HTTP 500, expected 200"),
        ("slow", "the site answered slower than 200ms"),
        ("maintenance", "the page lacks the expected text"),
        ("moved", "the site redirected off its own hosts"),
    ];
    for (site, reason) in expect {
        let t = task(&report, &format!("check[{site}.live]"));
        assert_eq!(t["status"], "failed", "{t:#}");
        assert_eq!(t["cause"]["reason"], reason, "{t:#}");
    }
    let moved = task(&report, "check[moved.live]");
    let message = moved["message"].as_str().unwrap();
    assert!(message.contains("elsewhere.example.com") && message.contains("nothing followed it"), "{message}");
    assert!(
        message.contains("asked https://live-moved.pantheonsite.io/ once"),
        "a redirect off the site is not asked again: {message}"
    );
    let slow = task(&report, "check[slow.live]")["message"].as_str().unwrap().to_owned();
    assert!(slow.contains("over the 200ms bound"), "{slow}");
    // A redirect the plan expects is the answer: not followed, even off the site.
    let expected = run_check(
        r"version: 1
jobs:
  check:
    run: http:check
    on: { sites: [moved], env: live }
    with: { status: [301] }
",
    );
    let moved = task(&expected, "check[moved.live]");
    assert_eq!(moved["status"], "succeeded", "{moved:#}");
    assert_eq!(moved["data"]["status"], 301);
    // A redirect to one of the environment's own domains is followed, to the domain's site.
    let www = task(&report, "check[www.live]");
    assert_eq!(www["status"], "succeeded", "{www:#}");
    assert_eq!(www["data"]["redirected_through"], serde_json::json!(["www.example.org"]));
}

#[test]
fn a_check_waits_for_a_site_warming_up_within_its_window_and_not_past_it() {
    // After a cache clear the sites answer 503 for 120 s of platform time; `warm` is given
    // ten minutes, `cold` five seconds.
    let plan = r"version: 1
jobs:
  clear:
    run: env:clear-cache
    on: { sites: [warm, cold], env: live }
  check-warm:
    run: http:check
    needs: [clear]
    on: { sites: [warm], env: live }
    with: { within: 10m }
  check-cold:
    run: http:check
    needs: [clear]
    on: { sites: [cold], env: live }
    with: { within: 5s }
";
    let t = simulated(SITES_WORLD, plan, &["--yes", "--report", "json=report.json", "-q"]);
    let out = t.run();
    assert_eq!(out.code, 1, "{}", out.stderr);
    let report = report(&t, "report.json");
    let warm = task(&report, "check-warm[warm.live]");
    assert_eq!(warm["status"], "succeeded", "{warm:#}");
    assert!(warm["data"]["tries"].as_u64().unwrap() > 1, "it asked again while the site warmed up: {warm:#}");
    let cold = task(&report, "check-cold[cold.live]");
    assert_eq!(cold["cause"]["reason"], "the site answered HTTP 503, expected 200", "{cold:#}");
}

/// The README's canary command and the table it shows.
fn readme_canary() -> (Vec<String>, Vec<String>) {
    let readme = std::fs::read_to_string(crate::support::repo().join("README.md")).unwrap();
    let section = &readme[readme.find("#### A canary release").expect("the README's canary section")..];
    let command = section.lines().find_map(|l| l.strip_prefix("$ terminus-batch ")).expect("its command");
    let shown = section.split("```text\n").nth(1).and_then(|b| b.split("```").next()).expect("its output");
    (command.split(' ').map(str::to_owned).collect(), shown.lines().map(str::to_owned).collect())
}

#[test]
fn a_canary_whose_first_wave_breaks_halts_the_later_waves_as_the_readme_shows() {
    // The canary's live breaks at its deploy: its check fails, and the rollout stops before
    // any other site's live is deployed.
    let (command, shown) = readme_canary();
    let state = tempfile::tempdir().unwrap();
    let report_file = state.path().join("report.json");
    let mut args: Vec<&str> = command.iter().map(String::as_str).collect();
    let json = format!("json={}", report_file.display());
    args.extend(["--report", &json]);
    let out = Test::new()
        .in_dir(&crate::support::repo())
        .env("TERMINUS_BATCH_STATE_DIR", state.path().to_str().unwrap())
        .args(&args)
        .run();
    assert_eq!(out.code, 1, "{}\n{}", out.stdout, out.stderr);
    // The table as shown, and the failure and halt lines (the tries and latency vary).
    for line in shown.iter().take(6).chain(shown.iter().filter(|l| l.starts_with("skipped"))) {
        assert!(out.stdout.lines().any(|l| l == line), "README shows `{line}`; the run printed:\n{}", out.stdout);
    }
    assert!(out.stdout.contains("the site answered HTTP 500, expected 200 or 301 in "), "{}", out.stdout);
    let report: Value = serde_json::from_str(&std::fs::read_to_string(&report_file).unwrap()).unwrap();
    assert_eq!(task(&report, "deploy-live[alpha-shop.live]")["status"], "succeeded");
    let check = task(&report, "check-live[alpha-shop.live]");
    assert_eq!(check["cause"]["reason"], "the site answered HTTP 500, expected 200 or 301", "{check:#}");
    for site in ["bravo-shop", "charlie-shop", "hotel-shop"] {
        assert_eq!(task(&report, &format!("check-test[{site}.test]"))["status"], "succeeded");
        let deploy = task(&report, &format!("deploy-live[{site}.live]"));
        assert_eq!(deploy["status"], "skipped", "{deploy:#}");
        assert_eq!(deploy["cause"]["kind"], "wave_halted", "{deploy:#}");
        assert_eq!(task(&report, &format!("check-live[{site}.live]"))["status"], "skipped");
    }
}

#[test]
fn a_check_that_is_not_a_path_or_a_rollout_that_checks_a_job_not_after_it_is_refused() {
    let plan = r"version: 1
jobs:
  deploy:
    run: env:deploy
    on: { sites: [fine], env: live }
    rollout: { first: 1, checks: [check] }
  check:
    run: http:check
    on: { sites: [fine], env: live }
    with: { path: live-fine.pantheonsite.io/, max_latency: 1s }
";
    let out = Test::new().file("plan.yml", plan).args(&["validate", "plan.yml"]).run();
    assert_eq!(out.code, 2, "{}", out.stderr);
    for said in [
        "`check` must need `deploy` (per site) to check its waves",
        "`live-fine.pantheonsite.io/` is not a path",
        "options use terminus's flag names in kebab-case: `max-latency`",
    ] {
        assert!(out.stderr.contains(said), "{said}\n{}", out.stderr);
    }
}
