//! `cargo bench --bench simulate`: the workloads run end to end (the real binary applying a generated plan
//! in a child process) and report what they measured. Only counts are checked here; the
//! timings are the benchmark's to print (README, "Performance").

use serde_json::Value;

#[path = "../../benches/simulate/forecast.rs"]
mod forecast;
#[allow(dead_code, reason = "the store-latency workload is the benchmark's alone: it takes minutes")]
#[path = "../../benches/simulate/latency.rs"]
mod latency;
#[path = "../../benches/simulate/model.rs"]
mod model;
#[allow(dead_code, reason = "the benchmark's argument parsing is not exercised here")]
#[path = "../../benches/simulate/workloads.rs"]
mod workloads;

use workloads::{Args, Workload};

/// Runs one workload as `cargo bench --bench simulate` would, and its figures as JSON.
fn bench(workload: Workload, sites: usize, time_scale: f64, no_sequential: bool) -> Value {
    let args = Args { workloads: vec![workload], sites: Some(sites), time_scale: Some(time_scale), no_sequential };
    let figures = workloads::run(&args, |_| {}).unwrap_or_else(|e| panic!("{e}"));
    serde_json::to_value(&figures).unwrap()
}

#[test]
fn the_release_workload_runs_in_parallel_and_like_terminus() {
    let figures = bench(Workload::Release, 4, 0.002, false);
    let f = &figures[0];
    assert_eq!(f["workload"], "release");
    let run = &f["run"];
    assert_eq!(run["tasks"], 16);
    assert_eq!(run["tasks_ok"], 16, "{f}");
    assert_eq!(run["workflows"], 16);
    // At most one workflow per site at once. How many overlap, and how many polls each
    // waits with, are the machine's timing: the benchmark prints them, no test asserts them.
    let peak = run["peak_in_flight_workflows"].as_u64().unwrap();
    assert!((1..=4).contains(&peak), "{run}");
    // No run beats its lower bound: each site's workflows run one after another.
    let bound = f["bound"]["value"].as_f64().unwrap();
    assert!(bound > 0.0 && f["ratio"].as_f64().unwrap() >= 1.0, "{f}");
    assert_eq!(f["requests_per_task"]["POST sites/{site}/environments/{env}/workflows"], 1.0);
    let seq = &f["sequential"]["run"];
    assert_eq!(seq["tasks_ok"], 16);
    assert_eq!(seq["peak_in_flight_workflows"], 1, "terminus-like: one at a time");
    if cfg!(target_os = "linux") {
        assert!(run["peak_rss_bytes"].as_u64().unwrap() > 1 << 20, "{run}");
    }
}

#[test]
fn the_listing_workload_lists_every_collection_both_ways() {
    let figures = bench(Workload::Listing, 120, 0.01, false);
    let f = &figures[0];
    assert_eq!(f["largest_collection"]["sites"], 120);
    assert_eq!(f["concurrent"]["sites"], 600);
    assert_eq!(f["sequential"]["sites"], 600);
    assert_eq!(f["concurrent"]["requests"], f["sequential"]["requests"]);
    // The organizations, then a full page and a short one.
    assert_eq!(f["largest_collection"]["requests"], 1 + 2);
}

#[test]
fn text_output_names_the_targets() {
    let args =
        Args { workloads: vec![Workload::CacheClear], sites: Some(3), time_scale: Some(0.01), no_sequential: true };
    let figures = workloads::run(&args, |_| {}).unwrap();
    let text = figures[0].render();
    for needle in [
        "cache-clear workload: 3 sites x clear cache",
        "wall / lower bound",
        "wall / plain bound",
        "rate's dead ends",
        "workflow requests",
        "peak RSS",
    ] {
        assert!(text.contains(needle), "no {needle:?} in\n{text}");
    }
}

#[test]
fn a_bad_time_scale_is_refused() {
    let args = Args { workloads: vec![], sites: None, time_scale: Some(0.0), no_sequential: true };
    let error = workloads::run(&args, |_| {}).err().unwrap();
    assert!(error.contains("--time-scale"), "{error}");
    assert_eq!(Workload::parse("b"), Ok(Workload::CacheClear));
    assert!(Workload::parse("zz").is_err());
}

#[test]
fn the_fleet_workloads_count_what_resolution_and_the_work_need() {
    // 250 named sites: a login, the two membership lists, three pages of the organization.
    let plan = bench(Workload::FleetPlan, 250, 1.0, true);
    assert_eq!(plan[0]["requests"], 1 + 2 + 3, "{}", plan[0]);
    // 30 named sites cleared: the bound counts 2 requests per workflow plus resolution.
    let fleet = bench(Workload::Fleet, 30, 0.002, true);
    let f = &fleet[0];
    assert_eq!(f["run"]["tasks_ok"], 30, "{f}");
    assert_eq!(f["bound"]["fewest_requests"], f["run"]["resolution_requests"].as_u64().unwrap() + 60, "{f}");
    assert!(f["sequential"].is_null(), "a fleet has no terminus-like run");
}

#[test]
fn the_cold_workload_learns_from_nothing_and_is_judged_beside_the_model_client() {
    let args = Args { workloads: vec![Workload::Cold], sites: Some(3), time_scale: Some(0.01), no_sequential: true };
    let figures = workloads::run(&args, |_| {}).unwrap_or_else(|e| panic!("{e}"));
    let text: String = figures.iter().map(workloads::Figures::render).collect();
    let json = serde_json::to_value(&figures).unwrap();
    let shapes = json[0].as_array().unwrap_or_else(|| panic!("three shapes: {json}"));
    assert_eq!(shapes.len(), 3, "{json}");
    assert_eq!(shapes[2]["concurrency"], 30, "issue 40's second shape at its own concurrency");
    for f in shapes {
        let run = &f["run"];
        assert_eq!(run["tasks_ok"], 9, "{f}");
        assert_eq!(run["workflows"], 9);
        let best = &f["model"];
        // Each deploy reads its parent's code log before its POST: six reads on three sites.
        let fewest = f["bound"]["fewest_requests"].as_u64().unwrap();
        assert_eq!(best["fewest_with_reads"].as_u64().unwrap(), fewest + 6, "{best}");
        // The model runs no faster than the bound, and no faster when it must poll than when
        // it sees every end at once.
        let mean = |key: &str, column: usize| best[key][column][0].as_f64().unwrap();
        for column in [0, 1] {
            assert!(mean("instant", column) >= 1.0, "{best}");
            assert!(mean("at_target_polls", column) >= mean("instant", column), "{best}");
        }
        assert!(run["unseen_seconds"].as_f64().unwrap() >= 0.0);
    }
    for needle in ["no history", "the model client", "sees every end at once", "the fastest is"] {
        assert!(text.contains(needle), "no {needle:?} in\n{text}");
    }
}

#[test]
fn the_forecast_workload_learns_from_its_first_run() {
    let figures = bench(Workload::Forecast, 4, 0.002, true);
    let f = &figures[0];
    assert_eq!(f["tasks"], 12, "{f}");
    let runs = f["runs"].as_array().unwrap();
    assert_eq!(runs[0]["label"], "cold");
    assert!(runs[0]["basis"].as_str().unwrap().starts_with("no history"), "{f}");
    assert_eq!(runs[1]["label"], "warm");
    assert_eq!(runs[1]["basis"], "from 8 env:deploy and 4 env:clear-cache in 1 run of the last 30 days", "{f}");
    for run in runs {
        assert!(
            run["p10_secs"].as_f64() <= run["p50_secs"].as_f64()
                && run["p50_secs"].as_f64() <= run["p90_secs"].as_f64()
        );
        assert_eq!(run["etas"].as_array().unwrap().len(), 3);
        assert!(
            run["etas"].as_array().unwrap().iter().all(|e| e[1].as_f64().unwrap() > 0.0),
            "an ETA while tasks run: {f}"
        );
    }
}
