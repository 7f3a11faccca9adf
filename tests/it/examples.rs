//! Every example validates, plans and graphs against the default world; the committed schema
//! is current; the README documents every operation.

use tb_plan::plan::ops::OperationKind;

use crate::support::{Test, example_plans, repo};

#[test]
fn every_example_validates_plans_and_graphs() {
    let plans = example_plans();
    assert!(plans.len() >= 5, "expected the five documented examples, found {plans:?}");
    for plan in plans {
        let path = plan.to_str().expect("utf-8 path");
        let out = Test::new().args(&["validate", path]).run();
        assert_eq!(out.code, 0, "validate {path}: {}", out.stderr);
        assert!(out.stdout.contains("valid"), "{}", out.stdout);

        let out = Test::new().args(&["plan", path, "--simulate", "--format", "json"]).run();
        assert_eq!(out.code, 0, "plan {path}: {}", out.stderr);
        let doc: serde_json::Value = serde_json::from_str(&out.stdout).expect("plan json");
        let tasks = doc["tasks"].as_array().expect("tasks");
        assert!(!tasks.is_empty(), "{path} expands to no task");
        assert_eq!(doc["summary"]["tasks"].as_u64(), Some(tasks.len() as u64));

        let out = Test::new().args(&["plan", path, "--simulate"]).run();
        assert_eq!(out.code, 0, "{}", out.stderr);
        let first = tasks[0]["id"].as_str().expect("id");
        assert!(out.stdout.contains(first), "text plan lacks {first}");

        let out = Test::new().args(&["plan", path, "--simulate", "--format", "markdown"]).run();
        assert_eq!(out.code, 0, "{}", out.stderr);
        assert!(out.stdout.starts_with("## terminus-batch plan"), "{}", out.stdout);

        for format in ["dot", "mermaid", "json"] {
            let out = Test::new().args(&["graph", path, "--simulate", "--format", format]).run();
            assert_eq!(out.code, 0, "graph {format} {path}: {}", out.stderr);
            assert!(
                out.stdout.contains(first) || out.stdout.contains(&first.replace('[', "#91;").replace(']', "#93;"))
            );
        }
    }
}

#[test]
fn weekly_release_expands_per_site_pipelines_and_waves() {
    let path = repo().join("examples/weekly-release.yml");
    let out = Test::new().args(&["plan", path.to_str().unwrap(), "--simulate", "--format", "json"]).run();
    assert_eq!(out.code, 0, "{}", out.stderr);
    let doc: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    let tasks = doc["tasks"].as_array().unwrap();
    let live = tasks.iter().find(|t| t["id"] == "deploy-live[acme-web.live]").expect("deploy-live on acme-web");
    let needs: Vec<&str> = live["needs"].as_array().unwrap().iter().map(|n| n.as_str().unwrap()).collect();
    assert_eq!(needs, ["backup[acme-web.live]", "deploy-test[acme-web.test]"]);
    // legacy-* sites are excluded by the selector.
    assert!(tasks.iter().all(|t| !t["id"].as_str().unwrap().contains("legacy-")));
    // A canary, then waves of a quarter of the job's tasks.
    let waves: Vec<u64> =
        tasks.iter().filter(|t| t["job"] == "deploy-live").map(|t| t["wave"].as_u64().unwrap()).collect();
    assert_eq!(waves[0], 1);
    assert_eq!(waves.iter().filter(|&&w| w == 1).count(), 1);
    assert_eq!(*waves.iter().max().unwrap(), 5);
    // The plan's own names and rendered texts, not internal identifiers.
    assert_eq!(live["operation"], "env:deploy");
    assert_eq!(live["with"]["note"], "Weekly release ${{ run.id }}");
    assert_eq!(live["with"].as_object().unwrap().len(), 1, "only the options the plan gave: {}", live["with"]);
}

#[test]
fn saved_plan_records_source_hash_and_resolved_targets() {
    let path = repo().join("examples/domains.yml");
    let t = Test::new().args(&["plan", path.to_str().unwrap(), "--simulate", "-o", "saved.json", "-q"]);
    let out = t.run();
    assert_eq!(out.code, 0, "{}", out.stderr);
    let saved: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(t.path().join("saved.json")).unwrap()).unwrap();
    assert_eq!(saved["kind"], "terminus-batch/saved-plan");
    assert_eq!(saved["source"]["sha256"].as_str().unwrap().len(), 64);
    assert!(saved["resolved"]["jobs"]["add-domains"].as_array().is_some_and(|a| !a.is_empty()));
    assert!(
        saved["tasks"].as_array().unwrap().iter().any(|t| t["id"].as_str().unwrap().ends_with(".live,prefix=summer]"))
    );
}

#[test]
fn only_and_sites_filters() {
    let path = repo().join("examples/weekly-release.yml");
    let p = path.to_str().unwrap();
    let out = Test::new().args(&["plan", p, "--simulate", "--format", "json", "--only", "deploy-live"]).run();
    assert_eq!(out.code, 0, "{}", out.stderr);
    let doc: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    let jobs: Vec<&str> = doc["jobs"].as_array().unwrap().iter().map(|j| j["id"].as_str().unwrap()).collect();
    assert_eq!(jobs, ["backup", "deploy-test", "deploy-live"]);

    let out = Test::new().args(&["plan", p, "--simulate", "--format", "json", "--sites", "acme-web"]).run();
    let doc: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(doc["summary"]["tasks"], 4);
}

#[test]
fn committed_schema_is_current() {
    let committed = std::fs::read_to_string(repo().join("schemas/plan.schema.json")).expect("schemas/plan.schema.json");
    let out = Test::new().args(&["schema"]).run();
    assert_eq!(out.code, 0);
    assert!(
        committed == out.stdout,
        "schemas/plan.schema.json is stale: run `cargo run -- schema > schemas/plan.schema.json` and commit it"
    );
    assert_eq!(committed, terminus_batch::cli::commands::plan_schema());
}

#[test]
fn readme_documents_every_operation() {
    let readme = std::fs::read_to_string(repo().join("README.md")).unwrap();
    for kind in OperationKind::ALL {
        assert!(readme.contains(&format!("`{}`", kind.name())), "README lacks {}", kind.name());
        for option in kind.options() {
            assert!(
                readme.contains(&format!("`{}`", option.name)),
                "README lacks option {} of {}",
                option.name,
                kind.name()
            );
        }
    }
    for code in tb_plan::plan::ErrorCode::ALL {
        assert!(readme.contains(&format!("`{code}`")), "README lacks {code}");
    }
}

#[test]
fn completions_and_help() {
    let out = Test::new().args(&["completions", "bash"]).run();
    assert_eq!(out.code, 0);
    assert!(out.stdout.contains("terminus-batch"));
    let out = Test::new().args(&["--help"]).run();
    assert_eq!(out.code, 0);
    for command in ["validate", "plan", "graph", "schema", "completions"] {
        assert!(out.stdout.contains(command), "help lacks {command}");
    }
    let out = Test::new().args(&["frobnicate"]).run();
    assert_eq!(out.code, 2);
}

/// Issue 39, item 4: completion as a user meets it, in an interactive bash on a pty, where
/// `COMP_WORDBREAKS` splits `env:dep` at its colon and `--resume=R` at its equals sign.
#[test]
fn completion_in_a_real_bash_keeps_colons_and_offers_this_plans_runs() {
    let script = crate::support::tools::needs!(Script);
    let bash = crate::support::tools::needs!(Bash);
    let t = Test::new()
        .file("a.yml", "version: 1\njobs:\n  c:\n    run: env:clear-cache\n    on: { sites: [acme-web], env: dev }\n")
        .file("b.yml", "version: 1\njobs:\n  c:\n    run: env:clear-cache\n    on: { sites: [acme-blog], env: dev }\n");
    let run_of = |plan: &str| {
        let out =
            Test::new().in_dir(t.path()).args(&["apply", plan, "--simulate", "-q", "--report", "json=r.json"]).run();
        assert_eq!(out.code, 0, "{}", out.stderr);
        crate::support::report(&t, "r.json")["run_id"].as_str().unwrap().to_owned()
    };
    let (a, b) = (run_of("a.yml"), run_of("b.yml"));
    // The binary on PATH by its name, as an installed one is.
    let bin = t.path().join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_terminus-batch"), bin.join("terminus-batch")).unwrap();
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap_or_default());
    // Each line is completed with Tab, then Ctrl-A puts `echo NAME:` before it, so the shell
    // prints the line as completion left it.
    let typed = "PS1='$ '\nsource <(terminus-batch completions bash)\n\
                 terminus-batch run env:dep\t\x01echo FIRST: \n\
                 terminus-batch run backup:cr\t\x01echo SECOND: \n\
                 terminus-batch run env\t\x01echo THIRD: \n\
                 terminus-batch apply a.yml --resume=\t\t\x01echo FOURTH: \nexit\n";
    let mut shell = std::process::Command::new(script)
        .args(["-qec", &format!("{} --norc --noprofile -i", bash.display()), "/dev/null"])
        .current_dir(t.path())
        .env_clear()
        .env("PATH", &path)
        .env("HOME", t.path())
        .env("TERM", "dumb")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(shell.stdin.as_mut().unwrap(), typed.as_bytes()).unwrap();
    let out = shell.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let said =
        |name: &str| text.lines().find_map(|l| l.strip_prefix(&format!("{name}: "))).unwrap_or_default().trim_end();
    assert_eq!(said("FIRST"), "terminus-batch run env:deploy", "{text}");
    assert_eq!(said("SECOND"), "terminus-batch run backup:create", "{text}");
    assert_eq!(said("THIRD"), "terminus-batch run env:", "{text}");
    // `--resume=` offers `auto` and this plan's run, not another plan's.
    let listed = text.lines().find(|l| l.contains("auto") && !l.contains("echo")).unwrap_or_default();
    assert!(listed.contains(&a), "this plan's run {a}: {text}");
    assert!(!text.contains(&b), "another plan's run {b}: {text}");
}

#[test]
fn offline_resolution_takes_names_and_refuses_selectors() {
    let plan = "version: 1\njobs:\n  c:\n    run: env:clear-cache\n    on: { sites: [one, two], env: live }\n";
    let out = Test::new().file("p.yml", plan).args(&["plan", "p.yml", "--format", "json"]).run();
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stdout.contains("c[two.live]"));
    // A saved plan must hold resolved targets (DESIGN.md §8).
    let out = Test::new().file("p.yml", plan).args(&["plan", "p.yml", "-o", "saved.json"]).run();
    assert_eq!(out.code, 2);
    assert!(out.stderr.contains("--simulate"), "{}", out.stderr);
    let selector = "version: 1\njobs:\n  c:\n    run: env:clear-cache\n    on: { sites: { tag: x }, env: live }\n";
    let out = Test::new().file("p.yml", selector).args(&["plan", "p.yml"]).run();
    assert_eq!(out.code, 3);
    assert!(out.stderr.contains("--simulate"), "{}", out.stderr);
}

#[test]
fn unreadable_and_non_utf8_plans_are_named() {
    let out = Test::new().args(&["validate", "missing.yml"]).run();
    assert_eq!(out.code, 2);
    assert!(out.stderr.contains("missing.yml"), "{}", out.stderr);
    let t = Test::new().args(&["validate", "bin.yml"]);
    std::fs::write(t.path().join("bin.yml"), [0xff, 0xfe, 0x00]).unwrap();
    let out = t.run();
    assert_eq!(out.code, 2);
    assert!(out.stderr.contains("bin.yml is not UTF-8"), "{}", out.stderr);
}

#[test]
fn the_estimate_counts_a_site_running_one_workflow_at_a_time() {
    // A backup (300 s) and a cache clear (30 s) on one site, independent of each other: the
    // critical path is 300 s, but one workflow per site makes it 330 s; two per site, 300 s.
    let plan = |per_site: u32| {
        format!(
            "version: 1\nsettings: {{ per_site: {per_site} }}\njobs:\n  backup:\n    run: backup:create\n    on: {{ sites: [acme-web], env: live }}\n  clear:\n    run: env:clear-cache\n    on: {{ sites: [acme-web], env: live }}\n"
        )
    };
    for (per_site, expected) in [(1, 330), (2, 300)] {
        let out =
            Test::new().file("p.yml", &plan(per_site)).args(&["plan", "p.yml", "--simulate", "--format", "json"]).run();
        assert_eq!(out.code, 0, "{}", out.stderr);
        let doc: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
        assert_eq!(doc["summary"]["critical_path_secs"], 300);
        assert_eq!(doc["summary"]["estimate_secs"], expected, "per_site {per_site}");
    }
}
