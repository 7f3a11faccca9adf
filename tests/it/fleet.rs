//! Issue 15: fleet scale. Named sites resolve through the listings, in a few requests,
//! whatever their number; a name the listings lack falls back to a look-up.

use tb_simulator::Knobs;

use crate::support::sim::{Served, world};

const TOKEN: &str = "big-token";

fn fleet_world(sites: usize) -> tb_simulator::World {
    let mut text = String::from(
        "user: { email: big@example.com, machine_token: big-token }\norgs:\n  - { name: agency, role: admin }\n  - { name: partner, role: unprivileged }\nsites:\n",
    );
    for s in 0..sites {
        text.push_str(&format!("  - {{ name: site-{s:04}, org: agency }}\n"));
    }
    // Reachable by name, but not in the listings the user's memberships give.
    text.push_str("  - { name: hidden, org: partner }\n");
    world(&text)
}

fn named_plan(sites: usize, extra: &[&str]) -> String {
    let mut names: Vec<String> = (0..sites).map(|s| format!("site-{s:04}")).collect();
    names.extend(extra.iter().map(|s| (*s).to_owned()));
    format!(
        "version: 1\njobs:\n  c:\n    run: env:clear-cache\n    on: {{ sites: [{}], env: live }}\n",
        names.join(", ")
    )
}

/// `args` (a command on `plan.yml`) where the plan names `sites` sites (and `extra`), against
/// a simulator serving them: what it printed, and the simulator's counters.
fn on_named_sites(sites: usize, extra: &[&str], args: &[&str]) -> (crate::support::Output, tb_simulator::Stats) {
    let served = Served::with_world(&fleet_world(sites), Knobs { time_scale: 0.001, ..Knobs::default() });
    let out =
        served.test().env("TERMINUS_MACHINE_TOKEN", TOKEN).file("plan.yml", &named_plan(sites, extra)).args(args).run();
    assert_eq!(out.code, 0, "{}", out.stderr);
    (out, served.stop())
}

#[test]
fn five_hundred_named_sites_resolve_in_a_few_requests() {
    let (out, stats) = on_named_sites(500, &["hidden"], &["plan", "plan.yml", "--format", "json"]);
    let doc: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(doc["summary"]["tasks"], 501);
    // The listings (paged by 100 per collection) and one look-up for the site they lack.
    assert_eq!(stats.count("GET site-names/{name}"), 1, "{:?}", stats.requests);
    assert!(stats.requests_total <= 20, "{} requests: {:?}", stats.requests_total, stats.requests);
}

#[test]
fn a_few_named_sites_are_looked_up_and_a_missing_one_says_so() {
    let served = Served::with_world(&fleet_world(20), Knobs { time_scale: 0.001, ..Knobs::default() });
    let out = served
        .test()
        .env("TERMINUS_MACHINE_TOKEN", TOKEN)
        .file("plan.yml", &named_plan(3, &["site-0099"]))
        .args(&["plan", "plan.yml"])
        .run();
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(out.stderr.contains("site `site-0099` was not found"), "{}", out.stderr);
    assert!(out.stderr.contains("did you mean `site-00"), "the listings suggest a name: {}", out.stderr);
    assert!(!out.stderr.contains("matches no site"), "one error per unknown name is enough: {}", out.stderr);
    let stats = served.stop();
    assert_eq!(stats.count("GET site-names/{name}"), 4, "one look-up per name: {:?}", stats.requests);
}

#[test]
fn a_site_resolved_from_the_listings_is_not_read_again() {
    let served = Served::with_world(&fleet_world(12), Knobs { time_scale: 0.001, ..Knobs::default() });
    let plan = "version: 1\njobs:\n  i:\n    run: site:info\n    on: { sites: { org: agency } }\n";
    let out = served
        .test()
        .env("TERMINUS_MACHINE_TOKEN", TOKEN)
        .file("plan.yml", plan)
        .args(&["apply", "plan.yml", "--yes", "-q"])
        .run();
    assert_eq!(out.code, 0, "{}", out.stderr);
    let stats = served.stop();
    assert_eq!(stats.count("GET sites/{site}"), 0, "site:info reads what resolution read: {:?}", stats.requests);
    assert_eq!(stats.count("GET site-names/{name}"), 0, "{:?}", stats.requests);
}

#[test]
fn a_fleet_plan_in_markdown_fits_a_pull_request_comment() {
    let (out, _) = on_named_sites(2000, &[], &["plan", "plan.yml", "--format", "markdown"]);
    // GitHub takes comments up to 65,536 characters; 2,000 task rows would be about 90,000.
    assert!(out.stdout.chars().count() < 65_536, "{} characters", out.stdout.chars().count());
    assert!(out.stdout.contains("| `c` | `env:clear-cache` | 2000 |"), "the summary counts every task");
    assert!(out.stdout.contains("| `c[site-0000.live]` | 1 | – |"), "the first tasks are listed");
    let listed = out.stdout.lines().filter(|l| l.starts_with("| `c[")).count();
    let more = format!("| … and {} more tasks (every task: `terminus-batch plan --format json`) | | |", 2000 - listed);
    assert!(listed > 500 && out.stdout.contains(&more), "{listed} listed\n{}", out.stdout.lines().last().unwrap_or(""));
}

#[test]
fn a_mermaid_graph_too_big_to_draw_says_so() {
    let (tasks, _) = on_named_sites(1200, &[], &["graph", "plan.yml", "--format", "mermaid"]);
    assert!(tasks.stdout.len() > 50_000, "{} characters", tasks.stdout.len());
    assert!(tasks.stderr.contains("GitHub and Mermaid's defaults render at most 50000"), "{}", tasks.stderr);
    assert!(tasks.stderr.contains("`--level jobs`"), "{}", tasks.stderr);
    let (jobs, _) = on_named_sites(1200, &[], &["graph", "plan.yml", "--format", "mermaid", "--level", "jobs"]);
    assert!(jobs.stderr.is_empty(), "{}", jobs.stderr);
}
