//! Every operation end to end against the simulator, through `run` and through a plan.

use serde_json::Value;

use crate::support::{Test, simulated};

/// (operation, targets, options): one case per operation of the catalogue, on the built-in
/// world, chosen so the cases do not step on each other inside one plan.
const CASES: &[(&str, &str, &[&str])] = &[
    ("env:deploy", "acme-web.test", &["note=Release"]),
    ("env:clear-cache", "acme-web.live", &[]),
    ("env:wake", "acme-web.dev", &[]),
    ("http:check", "acme-blog.live", &["contains=Welcome", "status=[200, 301]"]),
    ("env:clone-content", "acme-blog.test", &["from-env=live"]),
    ("env:commit", "acme-shop.dev", &["message=Nightly"]),
    ("backup:create", "acme-web.dev", &["element=db", "keep-for=7"]),
    ("backup:get", "acme-docs.live", &["to=downloads"]),
    ("backup:restore", "acme-blog.live", &["element=db"]),
    ("multidev:create", "acme-web.ci-999", &["no-files=true"]),
    ("multidev:delete", "acme-blog.feature-x", &[]),
    ("multidev:merge-to-dev", "acme-web.ci-101", &[]),
    ("multidev:merge-from-dev", "acme-blog.ci-202", &[]),
    ("domain:add", "acme-web.test", &["domain=test.acme-web.example"]),
    ("domain:remove", "acme-blog.live", &["domain=www.acme-blog.example"]),
    ("connection:set", "acme-blog.dev", &["mode=sftp"]),
    ("upstream:updates:apply", "acme-web.dev", &["updatedb=true"]),
    ("lock:enable", "acme-blog.test", &["username=ops", "password=${{ env.LOCK_PW }}"]),
    ("lock:disable", "acme-web.test", &[]),
    ("redis:enable", "acme-web", &[]),
    ("solr:enable", "acme-web", &[]),
    ("tag:add", "acme-web", &["org=acme-agency", "tag=q4"]),
    ("tag:remove", "acme-blog", &["org=acme-agency", "tag=weekly"]),
    ("site:info", "acme-web", &[]),
    ("site:team:list", "acme-web", &[]),
    ("env:info", "acme-web.live", &[]),
    ("env:code-log", "acme-web.live", &[]),
    ("domain:list", "acme-web.live", &[]),
    ("backup:list", "acme-web.live", &[]),
    ("backup:automatic:enable", "acme-shop.live", &["day=friday", "keep-for=14"]),
    ("backup:automatic:disable", "acme-news.live", &[]),
    // Waits for the cache clear above (`acme-web.live`): in one plan it runs after it (see
    // `WAITS_FOR`); alone, with nothing to wait for, it fails within its `max`.
    ("remote:drush", "acme-docs.live", &["command=[updb, -y]"]),
    ("remote:wp", "acme-blog.live", &["command=[cache, flush]"]),
    ("workflow:wait", "acme-web.live", &["type=clear_cache", "max=1"]),
    ("redis:disable", "acme-blog", &[]),
    ("solr:disable", "acme-docs", &[]),
    ("new-relic:enable", "acme-shop", &[]),
    ("site:team:add", "acme-kids", &["member=new@example.com"]),
    ("site:team:remove", "acme-news", &["member=gone@example.com"]),
    // The owner is the owner already: nothing to do, through the same path.
    ("site:team:role", "acme-careers", &["member=ops@acme.example", "role=owner"]),
    ("new-relic:disable", "acme-docs", &[]),
    ("site:org:add", "acme-careers", &["organization=globex-digital"]),
    ("site:org:remove", "acme-docs", &["organization=globex-digital"]),
    ("plan:set", "acme-learn", &["plan=plan-performance_small-monthly"]),
    ("env:code-rebuild", "acme-status.dev", &[]),
    ("env:diffstat", "acme-web.dev", &[]),
    ("connection:info", "acme-web.live", &[]),
    ("lock:info", "acme-blog.test", &[]),
    ("backup:automatic:info", "acme-shop.live", &[]),
    ("upstream:updates:list", "acme-web.dev", &[]),
    ("env:metrics", "acme-web.live", &["period=month", "datapoints=auto"]),
    ("site:upstream:clear-cache", "acme-docs", &[]),
    ("site:upstream:set", "acme-kids", &["upstream=empty"]),
    ("env:rotate-random-seed", "acme-docs.dev", &[]),
    ("env:wipe", "acme-news.dev", &[]),
    ("https:remove", "acme-docs.test", &[]),
    ("domain:primary:add", "acme-web.live", &["domain=www.acme-web.example"]),
    ("domain:primary:remove", "acme-shop.test", &[]),
    ("upstream:updates:status", "acme-web.dev", &[]),
    ("site:list", "", &["framework=wordpress"]),
    ("org:list", "", &[]),
    ("org:site:list", "", &["org=acme-agency", "tag=weekly"]),
];

/// In one plan, `workflow:wait` needs the job whose workflow it waits for.
const WAITS_FOR: (&str, &str) = ("workflow:wait", "env:clear-cache");

fn all_ok(report: &Value) -> bool {
    report["tasks"]
        .as_array()
        .is_some_and(|t| t.iter().all(|t| t["status"] == "succeeded" || t["status"] == "unchanged"))
}

#[test]
fn the_cases_cover_the_catalogue() {
    for kind in tb_plan::plan::ops::OperationKind::ALL {
        assert!(CASES.iter().any(|(op, _, _)| *op == kind.name()), "no case runs {}", kind.name());
    }
}

#[test]
fn every_operation_runs_through_run() {
    crate::support::tools::needs!(Ssh);
    for (op, on, with) in CASES {
        let mut args = vec!["run", op, "--simulate", "--allow-destructive", "--report", "json=-", "-q"];
        if !on.is_empty() {
            args.extend(["--on", on]);
        }
        for w in *with {
            args.extend(["--with", w]);
        }
        let out = Test::new().env("LOCK_PW", "s3cret").args(&args).run();
        let report: Value = serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("{op}: {e}: {}", out.stdout));
        if *op == WAITS_FOR.0 {
            // Alone, nothing started the workflow it waits for: it says so and fails.
            assert_eq!(out.code, 1, "{op}: {}", out.stderr);
            let message = report["tasks"][0]["message"].as_str().unwrap_or_default();
            assert!(
                message.starts_with("no workflow of type clear_cache on acme-web.live finished within"),
                "{message}"
            );
            continue;
        }
        assert_eq!(out.code, 0, "{op}: {}", out.stderr);
        assert!(all_ok(&report), "{op}: {}", report["tasks"]);
        assert!(!out.stdout.contains("s3cret") && !out.stderr.contains("s3cret"), "{op}: the lock password leaked");
    }
}

#[test]
fn every_operation_runs_in_one_plan() {
    crate::support::tools::needs!(Ssh);
    let mut plan = String::from("version: 1\nname: everything\njobs:\n");
    for (i, (op, on, with)) in CASES.iter().enumerate() {
        plan.push_str(&format!("  job-{i}:\n    run: {op}\n"));
        if *op == WAITS_FOR.0 {
            let needed = CASES.iter().position(|(o, _, _)| *o == WAITS_FOR.1).unwrap();
            plan.push_str(&format!("    needs: [job-{needed}]\n"));
        }
        if let Some((site, env)) = on.split_once('.') {
            plan.push_str(&format!("    on: {{ sites: [{site}], env: {env} }}\n"));
        } else if !on.is_empty() {
            plan.push_str(&format!("    on: {{ sites: [{on}] }}\n"));
        }
        if !with.is_empty() {
            let pairs: Vec<String> = with
                .iter()
                .map(|w| {
                    let (k, v) = w.split_once('=').unwrap();
                    if v.starts_with('[') || !v.contains(['{', ':', ' ']) {
                        format!("{k}: {v}")
                    } else {
                        format!("{k}: \"{v}\"")
                    }
                })
                .collect();
            plan.push_str(&format!("    with: {{ {} }}\n", pairs.join(", ")));
        }
    }
    let t = Test::new().env("LOCK_PW", "s3cret").file("everything.yml", &plan).args(&[
        "apply",
        "everything.yml",
        "--simulate",
        "--allow-destructive",
        "--report",
        "json=out.json",
    ]);
    let out = t.run();
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    let report: Value = crate::support::report(&t, "out.json");
    assert_eq!(report["totals"]["tasks"], CASES.len(), "one task per operation");
    assert!(all_ok(&report), "{}", report["tasks"]);
    let downloaded = t.path().join("downloads/acme-docs/live");
    assert_eq!(std::fs::read_dir(downloaded).unwrap().count(), 1);
}

#[test]
fn ten_downloads_survive_dropped_connections_and_leave_no_partial_file() {
    use sha2::{Digest, Sha256};
    let mut world = String::from(
        "simulator:\n  time_scale: 0.001\n  faults:\n    - { route: \"__s3/{file}\", drop: true, times: 3 }\n\
         user: { email: t@example.com }\norgs: [{ name: o }]\nsites:\n",
    );
    for i in 0..10 {
        world.push_str(&format!("  - {{ name: s{i}, org: o, envs: {{ live: {{ backups: 1 }} }} }}\n"));
    }
    let plan = "version: 1\njobs:\n  get:\n    run: backup:get\n    on: { sites: { org: o }, env: live }\n    with: { to: dl }\n";
    let t = simulated(&world, plan, &["--report", "json=out.json", "--downloads", "3"]);
    let out = t.run();
    assert_eq!(out.code, 0, "{}", out.stderr);
    let report: Value = crate::support::report(&t, "out.json");
    let tasks = report["tasks"].as_array().unwrap();
    assert_eq!(tasks.len(), 10);
    for task in tasks {
        let data = &task["data"];
        let path = std::path::PathBuf::from(data["path"].as_str().unwrap());
        let path = if path.is_absolute() { path } else { t.path().join(path) };
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!(bytes.len() as u64, data["size"].as_u64().unwrap(), "{}", task["id"]);
        let digest = crate::support::hex(&Sha256::digest(&bytes));
        assert_eq!(data["sha256"], digest.as_str(), "{}", task["id"]);
        let dir = path.parent().unwrap();
        let names: Vec<String> =
            std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
        assert!(!names.iter().any(|n| std::path::Path::new(n).extension().is_some_and(|e| e == "part")), "{names:?}");
    }
    let drops = report["simulator"]["faults"]["drop"].as_u64().unwrap_or(0);
    assert_eq!(drops, 3, "three downloads were cut mid-file and resumed");
    let resumed = report["simulator"]["requests"]["GET __s3/{file}"]["206"].as_u64().unwrap_or(0);
    assert_eq!(resumed, 3);
}
