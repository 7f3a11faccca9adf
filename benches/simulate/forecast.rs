//! (i) The forecast against what happened: a release over 90 sites (deploy test → deploy
//! live → clear cache: 270 tasks, deploys of 90 s and clears of 25 s, concurrency 10) planned
//! and applied twice against one state directory. The first run is cold (no history); the
//! second is forecast from the first. For each: `plan`'s estimate (p50 and its p10-p90 range)
//! against the run's wall time, and the live ETA at 25 %, 50 % and 75 % of the run against
//! the time that actually remained. The ETA is the display's own model
//! (`tb_run::forecast::Model::left`), asked where the run stood at those moments, as read
//! from the run's report.

use std::fmt::Write as _;
use std::path::Path;

use serde::Serialize;

use tb_core::events::Status;
use tb_report::RunReport;

/// Sites in the workload (default).
const SITES: usize = 90;
/// The workload's clock (default): a hundred times faster than the platform's.
const SCALE: f64 = 0.01;

/// One planned and applied run.
#[derive(Debug, Serialize)]
pub(crate) struct Forecasted {
    pub(crate) label: &'static str,
    /// The forecast's basis, as `plan` says it.
    pub(crate) basis: String,
    pub(crate) p10_secs: f64,
    pub(crate) p50_secs: f64,
    pub(crate) p90_secs: f64,
    /// The run's wall time (real seconds, on the simulator's clock).
    pub(crate) actual_secs: f64,
    /// (share of the run elapsed, ETA, time that remained), seconds.
    pub(crate) etas: Vec<(f64, f64, f64)>,
}

impl Forecasted {
    fn plan_error(&self) -> f64 {
        self.p50_secs / self.actual_secs - 1.0
    }

    fn held(&self) -> bool {
        (self.p10_secs..=self.p90_secs).contains(&self.actual_secs)
    }
}

/// The cold and the warm run.
#[derive(Debug, Serialize)]
pub(crate) struct ForecastFigures {
    pub(crate) sites: usize,
    pub(crate) time_scale: f64,
    pub(crate) tasks: usize,
    pub(crate) runs: Vec<Forecasted>,
}

impl ForecastFigures {
    pub(crate) fn render(&self) -> String {
        let mut out = format!(
            "(i) forecast: {} tasks over {} sites (deploy test → deploy live → clear cache; deploys 90 s, clears 25 s), concurrency 10, time scale {}\n",
            self.tasks, self.sites, self.time_scale
        );
        for run in &self.runs {
            let _ = writeln!(
                out,
                "  {:<5} plan {:.2}s ({:.2}s–{:.2}s) vs actual {:.2}s: {:+.1} %, range {} ({})",
                run.label,
                run.p50_secs,
                run.p10_secs,
                run.p90_secs,
                run.actual_secs,
                run.plan_error() * 100.0,
                if run.held() { "holds it" } else { "misses it" },
                run.basis
            );
            for (share, eta, left) in &run.etas {
                let _ = writeln!(
                    out,
                    "        ETA at {:>3.0} %: {eta:.2}s vs {left:.2}s left: {:+.1} %",
                    share * 100.0,
                    (eta / left - 1.0) * 100.0
                );
            }
        }
        let warm = self.runs.iter().find(|r| r.label == "warm");
        if let Some(warm) = warm {
            let within = warm.plan_error().abs() <= 0.10;
            let etas = warm.etas.iter().all(|(_, eta, left)| (eta / left - 1.0).abs() <= 0.20);
            let _ = writeln!(
                out,
                "  goal: warm plan within ±10 %: {}; warm ETA within ±20 %: {}; cold range holds the actual: {}",
                if within { "met" } else { "NOT met" },
                if etas { "met" } else { "NOT met" },
                if self.runs.iter().find(|r| r.label == "cold").is_some_and(Forecasted::held) {
                    "met"
                } else {
                    "NOT met"
                }
            );
        }
        out
    }
}

fn world(sites: usize, scale: f64) -> String {
    super::workloads::release_world(sites, scale, "deploy: 90, clear_cache: 25")
}

const PLAN: &str = "version: 1\nname: forecast\nsettings:\n  concurrency: 10\njobs:\n  deploy-test:\n    run: env:deploy\n    on: { sites: [\"site-*\"], env: test }\n  deploy-live:\n    run: env:deploy\n    needs: [deploy-test]\n    on: { sites: [\"site-*\"], env: live }\n  clear:\n    run: env:clear-cache\n    needs: [deploy-live]\n    on: { sites: [\"site-*\"], env: live }\n";

pub(crate) fn run(sites: Option<usize>, scale: Option<f64>) -> Result<ForecastFigures, String> {
    let (sites, scale) = (sites.unwrap_or(SITES), scale.unwrap_or(SCALE));
    let dir = tempfile::tempdir().map_err(|e| format!("a scratch directory: {e}"))?;
    super::workloads::write(&dir.path().join("world.yml"), &world(sites, scale))?;
    super::workloads::write(&dir.path().join("plan.yml"), PLAN)?;
    let state = dir.path().join("state");
    let mut runs = Vec::new();
    let mut tasks = 0;
    for label in ["cold", "warm"] {
        let (model, forecast) = forecast(dir.path(), &state)?;
        tasks = forecast.tasks;
        let state_arg = state.display().to_string();
        super::workloads::apply_once(dir.path(), label, Some(&state_arg), &[], &[])?;
        let text = std::fs::read_to_string(dir.path().join(format!("{label}.json")))
            .map_err(|e| format!("the {label} report: {e}"))?;
        let report: RunReport = serde_json::from_str(&text).map_err(|e| format!("the {label} report: {e}"))?;
        #[expect(clippy::cast_precision_loss, reason = "milliseconds")]
        let actual_secs = report.duration_ms.unwrap_or(0) as f64 / 1000.0;
        let etas = [0.25, 0.5, 0.75].iter().map(|&share| eta_at(&model, &report, share)).collect();
        runs.push(Forecasted {
            label,
            basis: forecast.basis(),
            p10_secs: forecast.p10_secs,
            p50_secs: forecast.p50_secs,
            p90_secs: forecast.p90_secs,
            actual_secs,
            etas,
        });
    }
    Ok(ForecastFigures { sites, time_scale: scale, tasks, runs })
}

/// The forecast `plan` makes of the workload, with the history in `state`.
fn forecast(dir: &Path, state: &Path) -> Result<(tb_run::forecast::Model, tb_run::forecast::Forecast), String> {
    let vars = tb_settings::EnvVars::from_pairs([(tb_core::env::STATE_DIR, state.display().to_string())]);
    let targeting = tb_run::Targeting {
        platform: tb_run::Platform::Simulator,
        world: Some(dir.join("world.yml")),
        filter: tb_plan::expand::Filter::default(),
        shard: None,
    };
    let prepared = tb_run::prepare(
        tb_run::PlanInput::File(dir.join("plan.yml")),
        &targeting,
        tb_settings::Layer::default(),
        &vars,
    )
    .map_err(|e| format!("preparing the plan: {e}"))?;
    let model = tb_run::forecast::for_plan(&prepared, dir, &vars);
    let forecast = model.forecast();
    Ok((model, forecast))
}

/// The ETA the run's display showed when `share` of the run had passed, and the time that
/// then remained.
fn eta_at(model: &tb_run::forecast::Model, report: &RunReport, share: f64) -> (f64, f64, f64) {
    let start = report.started_at;
    let end = report.finished_at.unwrap_or(start);
    #[expect(clippy::cast_precision_loss, clippy::cast_possible_truncation, clippy::cast_sign_loss, reason = "ms")]
    let at = start + ((end - start) as f64 * share) as u64;
    let states: Vec<(Option<Status>, Option<f64>)> = report
        .tasks
        .iter()
        .map(|t| match (t.started_at, t.finished_at) {
            #[expect(clippy::cast_precision_loss, reason = "ms")]
            (_, Some(f)) if f <= at => {
                (t.status, t.duration_ms.filter(|_| t.run_id == report.run_id).map(|ms| ms as f64 / 1000.0))
            }
            #[expect(clippy::cast_precision_loss, reason = "ms")]
            (Some(s), _) if s <= at => (None, Some((at - s) as f64 / 1000.0)),
            _ => (None, None),
        })
        .collect();
    let left = tb_report::live::Remaining::left_secs(model, &states);
    #[expect(clippy::cast_precision_loss, reason = "ms")]
    let actual = (end - at) as f64 / 1000.0;
    (share, left, actual)
}
