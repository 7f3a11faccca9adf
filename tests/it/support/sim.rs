//! Starting the simulator in-process on 127.0.0.1:0 and pointing a real client at it.

use std::time::Duration;

use tb_core::secret::Secret;
use tb_operations::api::{ApiClient, ApiConfig, SessionStore};
use tb_plan::plan::PlanSource;
use tb_simulator::{Knobs, Simulator, World};

use super::Test;

/// Parses a world, panicking with its errors.
pub(crate) fn world(text: &str) -> World {
    World::parse(&PlanSource::new("world.yml", text)).unwrap_or_else(|e| panic!("bad test world: {e:?}"))
}

/// The built-in world.
pub(crate) fn builtin() -> World {
    World::builtin().unwrap()
}

/// A world with `orgs` organizations of `per_org` sites each, and a few team sites.
pub(crate) fn big_world(orgs: usize, per_org: usize) -> World {
    let mut text = String::from("user: { email: big@example.com, machine_token: big-token }\norgs:\n");
    for o in 0..orgs {
        text.push_str(&format!("  - {{ name: org-{o}, label: Org {o}, role: admin }}\n"));
    }
    text.push_str("sites:\n");
    for o in 0..orgs {
        for s in 0..per_org {
            text.push_str(&format!("  - {{ name: o{o}-site-{s:04}, org: org-{o}, tags: [t{}] }}\n", s % 3));
        }
    }
    for s in 0..3 {
        text.push_str(&format!("  - {{ name: team-site-{s} }}\n"));
    }
    world(&text)
}

/// A client for `sim`: its token, memory-only sessions, no retry delay (tests set delays
/// through configuration, as users would), the simulator's poll floor.
pub(crate) fn config(sim: &Simulator) -> ApiConfig {
    ApiConfig {
        base: sim.api_base(),
        connect_timeout: Duration::from_secs(5),
        read_timeout: Duration::from_secs(10),
        verify_tls: true,
        max_requests: 16,
        requests_per_second: 10_000.0,
        burst: 10_000,
        attempts: 6,
        budget: Duration::from_secs(60),
        backoff: Duration::ZERO,
        parallel_pagination: true,
        poll_floor: sim.poll_floor(),
        poll_interval: None,
        machine_token: Some(Secret::new(sim.machine_token())),
        user: None,
        store: SessionStore::Memory,
    }
}

/// Starts `world` with `knobs` and returns the simulator with a client for it.
pub(crate) async fn start(world: &World, knobs: Knobs) -> (Simulator, ApiClient) {
    let sim = Simulator::start(world, knobs, 0).await.expect("start the simulator");
    let client = ApiClient::new(config(&sim)).expect("client");
    (sim, client)
}

/// Knobs whose every workflow takes `duration` seconds (no jitter) at `scale`: long enough to
/// be caught in flight.
pub(crate) fn steady(scale: f64, duration: f64) -> Knobs {
    Knobs {
        time_scale: scale,
        default_duration: duration,
        workflow_durations: std::collections::BTreeMap::new(),
        duration_jitter: 0.0,
        ..Knobs::default()
    }
}

/// A world of `sites` sites `site-000`… with a test environment one commit behind dev.
pub(crate) fn deployable_sites(sites: usize) -> World {
    let mut text = String::from("user: { email: ops@example.com }\norgs: [{ name: o }]\nsites:\n");
    for i in 0..sites {
        text.push_str(&format!("  - {{ name: site-{i:03}, org: o, envs: {{ test: {{ deployable: 1 }} }} }}\n"));
    }
    world(&text)
}

/// Knobs with a time scale and no jitter, for tests that count polls.
pub(crate) fn fast(scale: f64) -> Knobs {
    Knobs { time_scale: scale, duration_jitter: 0.0, ..Knobs::default() }
}

/// A simulator kept running on its own runtime while the binary runs.
pub(crate) struct Served {
    runtime: tokio::runtime::Runtime,
    sim: Option<Simulator>,
}

impl Served {
    pub(crate) fn new(knobs: Knobs) -> Self {
        Self::with_world(&builtin(), knobs)
    }

    pub(crate) fn with_world(world: &World, knobs: Knobs) -> Self {
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        let sim = runtime.block_on(Simulator::start(world, knobs, 0)).unwrap();
        Self { runtime, sim: Some(sim) }
    }

    pub(crate) fn port(&self) -> String {
        self.sim.as_ref().unwrap().addr().port().to_string()
    }

    /// Every request answered so far.
    pub(crate) fn requests(&self) -> Vec<tb_simulator::RecordedRequest> {
        self.sim.as_ref().unwrap().requests()
    }

    /// A test whose environment points terminus-batch at this simulator.
    pub(crate) fn test(&self) -> Test {
        Test::new()
            .env("TERMINUS_HOST", "127.0.0.1")
            .env("TERMINUS_PORT", &self.port())
            .env("TERMINUS_PROTOCOL", "http")
    }

    /// A test in `dir` pointed at this simulator.
    pub(crate) fn test_in(&self, dir: &std::path::Path) -> Test {
        self.test().in_dir(dir)
    }

    /// Starts a deploy to `site-000.test` with this annotation, as a crashed run's POST would
    /// have; returns its id.
    pub(crate) fn start_deploy_like_a_lost_post(&self, annotation: &str) -> String {
        let params = serde_json::json!({ "updatedb": 0, "clear_cache": 0, "annotation": annotation });
        self.start_like_a_lost_post(tb_operations::api::workflows::WorkflowType::Deploy, params)
    }

    /// Starts a workflow of `kind` on `site-000.test`, as a crashed run's POST would have.
    pub(crate) fn start_like_a_lost_post(
        &self,
        kind: tb_operations::api::workflows::WorkflowType,
        params: serde_json::Value,
    ) -> String {
        let sim = self.sim.as_ref().unwrap();
        let client = ApiClient::new(config(sim)).unwrap();
        self.runtime.block_on(async {
            let site = client.site_id("site-000").await.unwrap().unwrap();
            let start = tb_operations::api::workflows::StartWorkflow {
                scope: tb_operations::api::workflows::WorkflowScope::Env { site_id: site, env: "test".into() },
                kind,
                params,
                marker: None,
            };
            client.start_workflow(&start, tb_operations::api::unix_now()).await.unwrap().id
        })
    }

    /// What a journal header records of a run against this simulator served as the API:
    /// the target and the world user's id.
    pub(crate) fn identity(&self) -> (serde_json::Value, String) {
        let sim = self.sim.as_ref().unwrap();
        let client = ApiClient::new(config(sim)).unwrap();
        let user = self.runtime.block_on(client.user_id()).unwrap();
        (serde_json::json!({ "api": { "base": sim.api_base() } }), user)
    }

    /// Starts `apply` against this simulator in `dir`, returning once `workflows` workflows
    /// have started (as its progress lines tell).
    pub(crate) fn start_apply(&self, dir: &std::path::Path, args: &[&str], workflows: usize) -> std::process::Child {
        self.start_apply_with(dir, args, &[], workflows)
    }

    /// [`Self::start_apply`] with more environment variables (a shared state store's).
    pub(crate) fn start_apply_with(
        &self,
        dir: &std::path::Path,
        args: &[&str],
        vars: &[(String, String)],
        workflows: usize,
    ) -> std::process::Child {
        self.start_apply_until(dir, args, vars, " workflow ", workflows)
    }

    /// Starts `apply` as [`Self::start_apply_with`] does, and returns once `count` lines of
    /// its stderr hold `needle`.
    pub(crate) fn start_apply_until(
        &self,
        dir: &std::path::Path,
        args: &[&str],
        vars: &[(String, String)],
        needle: &str,
        count: usize,
    ) -> std::process::Child {
        use std::io::BufRead as _;
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_terminus-batch"))
            .args(args)
            // Every workflow as a line, to know when they are in flight.
            .args(["--status-level", "all"])
            .current_dir(dir)
            .env_clear()
            .env("HOME", dir)
            .env("NO_COLOR", "1")
            .env("TERMINUS_HOST", "127.0.0.1")
            .env("TERMINUS_PORT", self.port())
            .env("TERMINUS_PROTOCOL", "http")
            .env("TERMINUS_MACHINE_TOKEN", "simulated-machine-token")
            .envs(vars.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut stderr = std::io::BufReader::new(child.stderr.take().unwrap());
        let mut seen = 0;
        let mut line = String::new();
        while stderr.read_line(&mut line).unwrap() > 0 {
            if line.contains(needle) {
                seen += 1;
                if seen >= count {
                    return child;
                }
            }
            line.clear();
        }
        let status = child.wait();
        panic!("the run ended before {count} lines said `{needle}` ({status:?})");
    }

    /// The journal of run `run`, killed while its one task (`job`, an `operation`) was sending
    /// its workflow's POST: the first run of its chain, as the world's user.
    pub(crate) fn write_killed_run(&self, dir: &std::path::Path, run: &str, job: &str, operation: &str) {
        self.write_journal(dir, run, (run, None), None, &crate::support::killed_during_the_post(run, job, operation));
    }

    /// Writes the journal an earlier run of `dir`'s `plan.yml` against this simulator left:
    /// a header recording this target and `user` (default: the world's user), then `events`.
    pub(crate) fn write_journal(
        &self,
        dir: &std::path::Path,
        run: &str,
        chain: (&str, Option<&str>),
        user: Option<&str>,
        events: &[serde_json::Value],
    ) {
        let (target, world_user) = self.identity();
        let (first_run, resumed_from) = chain;
        let plan_path = std::fs::canonicalize(dir.join("plan.yml")).unwrap().display().to_string();
        let header = serde_json::json!({ "journal": 1, "run_id": run, "resumed_from": resumed_from,
            "first_run": first_run, "plan_path": plan_path, "plan_sha256": "x", "endpoint": target,
            "user_id": user.unwrap_or(&world_user), "settings": null });
        let lines: Vec<String> = std::iter::once(&header).chain(events).map(ToString::to_string).collect();
        let runs = dir.join(".terminus-batch/runs").join(run);
        std::fs::create_dir_all(&runs).unwrap();
        std::fs::write(runs.join("events.jsonl"), format!("{}\n", lines.join("\n"))).unwrap();
    }

    /// `apply plan.yml --yes --resume --report json=out.json -q` in `dir`, against this
    /// simulator: it must succeed; returns the report.
    pub(crate) fn resume_in(&self, dir: &std::path::Path) -> serde_json::Value {
        let out = self
            .test_in(dir)
            .env("TERMINUS_MACHINE_TOKEN", "simulated-machine-token")
            .args(&["apply", "plan.yml", "--yes", "--resume", "--report", "json=out.json", "-q"])
            .run();
        assert_eq!(out.code, 0, "{}", out.stderr);
        let text = std::fs::read_to_string(dir.join("out.json")).unwrap();
        serde_json::from_str(&text).unwrap()
    }

    pub(crate) fn stop(mut self) -> tb_simulator::Stats {
        let sim = self.sim.take().unwrap();
        self.runtime.block_on(sim.stop())
    }
}
