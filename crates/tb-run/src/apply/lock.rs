//! The plan lock: claimed before any request to the platform (`claim`), kept renewed by a
//! thread until the run begins, then by the run itself (`renew_state`, with the leases).

use std::sync::Arc;

use tb_core::ids::RunId;
use tb_settings::EnvVars;
use tb_state::fence::Fence;
use tb_state::lease::Leases;
use tb_state::lock::{Holder, Lock, LockError};

use crate::apply::{ApplyOptions, new_run_id};
use crate::{Refusal, RunError};

/// The plan's lock, taken before any request to the platform (a run that could not keep
/// its state, or that another run of the plan holds off, asks the platform nothing), with
/// the run's id and the fence its lock and leases share. Renewed in the background until the
/// run starts, so a long confirmation prompt does not let it go stale.
pub struct Claim {
    pub(super) run_id: RunId,
    pub(super) holder: Holder,
    pub(super) lock: Arc<Lock>,
    pub(super) file_lock: Option<Lock>,
    pub(super) fence: Fence,
    pub(super) keeper: Option<Keeper>,
}

/// Takes the plan's lock for a new run of `input` (and, for a plan file with hard links, the
/// lock on the file itself); waits for it up to `--lock-timeout`.
pub fn claim(input: &crate::PlanInput, options: &ApplyOptions, vars: &EnvVars) -> Result<Claim, RunError> {
    let run_id = new_run_id();
    // Each shard of a plan is locked on its own: a CI matrix runs them side by side.
    let locked = match &options.shard {
        Some(shard) => format!("{} (shard {shard})", input.key()),
        None => input.key(),
    };
    let mut holder = Holder::this_process(run_id.to_string(), locked).in_ci_job(ci_job(vars));
    if let Some(stale_after) = stale_after(vars)? {
        holder = holder.renewing_within(stale_after);
    }
    let fence = Fence::default();
    let lock = Arc::new(take_lock(options, &holder)?.watched_by(fence.clone()));
    // A plan with hard links elsewhere: the same file under another path, perhaps with a
    // state directory of its own, is the same plan.
    let real = input.path().and_then(|path| std::fs::canonicalize(path).ok());
    let file_lock = match real {
        Some(real) => Lock::acquire_file(&real, &holder)?,
        None => None,
    };
    let keeper = Some(Keeper::start(Arc::clone(&lock)));
    Ok(Claim { run_id, holder, lock, file_lock, fence, keeper })
}

/// Renews a lock on a thread of its own until dropped (the run's own renewal then takes over).
pub(super) struct Keeper {
    pub(super) stop: Arc<std::sync::atomic::AtomicBool>,
    pub(super) thread: Option<std::thread::JoinHandle<()>>,
}

impl Keeper {
    fn start(lock: Arc<Lock>) -> Self {
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let stopping = Arc::clone(&stop);
        let thread = std::thread::Builder::new()
            .name("lock-keeper".to_owned())
            .spawn(move || {
                let every = lock.holder().renew_every();
                loop {
                    std::thread::park_timeout(every);
                    if stopping.load(std::sync::atomic::Ordering::Acquire) {
                        return;
                    }
                    lock.renew();
                }
            })
            .ok();
        Self { stop, thread }
    }
}

impl Drop for Keeper {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Release);
        if let Some(thread) = self.thread.take() {
            thread.thread().unpark();
            let _joined = thread.join();
        }
    }
}

/// The CI job this process runs in, from its CI's variables: GitHub Actions' run URL, or
/// GitLab's job URL.
pub(super) fn ci_job(vars: &EnvVars) -> Option<String> {
    use tb_core::env;
    let github = (vars.get(env::GITHUB_SERVER_URL), vars.get(env::GITHUB_REPOSITORY), vars.get(env::GITHUB_RUN_ID));
    match github {
        (Some(server), Some(repo), Some(run)) => Some(format!("{server}/{repo}/actions/runs/{run}")),
        _ => vars.get(env::CI_JOB_URL).map(str::to_owned),
    }
}

/// The stale period this run promises (`TERMINUS_BATCH_STALE_AFTER`), when one is set.
pub(super) fn stale_after(vars: &EnvVars) -> Result<Option<std::time::Duration>, RunError> {
    let var = tb_core::env::STALE_AFTER;
    let Some(text) = vars.get(var) else { return Ok(None) };
    let least = tb_state::lock::MIN_STALE_AFTER;
    match humantime::parse_duration(text) {
        Ok(period) if period >= least => Ok(Some(period)),
        Ok(_) => Err(Refusal::StaleTooShort {
            var,
            value: text.to_owned(),
            least: humantime::format_duration(least).to_string(),
        }
        .into()),
        Err(source) => Err(Refusal::NotADuration { var, value: text.to_owned(), example: "2m", source }.into()),
    }
}

/// Takes the plan's lock; while another live run holds it, refuses at once, or waits up to
/// `--lock-timeout` for it.
pub(super) fn take_lock(options: &ApplyOptions, holder: &Holder) -> Result<Lock, RunError> {
    let deadline = options.lock_timeout.map(|t| std::time::Instant::now() + t);
    let mut told = false;
    loop {
        match Lock::acquire(&options.state, holder) {
            Ok(lock) => return Ok(lock),
            Err(held @ LockError::Held { .. }) => {
                let left = deadline.map(|d| d.saturating_duration_since(std::time::Instant::now()));
                match left {
                    Some(left) if !left.is_zero() => {
                        if !told {
                            tracing::warn!("waiting for the lock: {held}");
                            told = true;
                        }
                        // This process has nothing else to do yet: a plain wait, outside any runtime.
                        std::thread::sleep(left.min(LOCK_POLL));
                    }
                    Some(_) => {
                        let waited = options.lock_timeout.map(humantime::format_duration).map(|t| t.to_string());
                        return Err(Refusal::LockWaited { held, waited: waited.unwrap_or_default() }.into());
                    }
                    None => return Err(held.into()),
                }
            }
            Err(io @ LockError::Store { .. }) => return Err(io.into()),
        }
    }
}

/// How often a run waiting for the lock looks again.
pub(super) const LOCK_POLL: std::time::Duration = std::time::Duration::from_millis(500);

/// Renews the run's lock and leases while it lives, so that a run on another machine
/// sharing the store does not take them for abandoned.
pub(super) async fn renew_state(lock: &Arc<Lock>, leases: &Leases) -> std::convert::Infallible {
    loop {
        tokio::time::sleep(lock.holder().renew_every()).await;
        // Store requests block: on a thread of their own, and awaited there. This runs beside
        // the executor in one task, which a pass blocking in place would stall for all its
        // round trips (fifty leases at 100 ms: five seconds, every renewal period).
        let (lock, leases) = (Arc::clone(lock), leases.clone());
        let _renewed = tokio::task::spawn_blocking(move || {
            lock.renew();
            leases.renew();
        })
        .await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_holder_names_its_ci_job() {
        let github = EnvVars::from_pairs([
            ("GITHUB_SERVER_URL", "https://github.com"),
            ("GITHUB_REPOSITORY", "acme/ops"),
            ("GITHUB_RUN_ID", "42"),
        ]);
        assert_eq!(ci_job(&github).as_deref(), Some("https://github.com/acme/ops/actions/runs/42"));
        let gitlab = EnvVars::from_pairs([("CI_JOB_URL", "https://gitlab.example/acme/ops/-/jobs/7")]);
        assert_eq!(ci_job(&gitlab).as_deref(), Some("https://gitlab.example/acme/ops/-/jobs/7"));
        assert_eq!(ci_job(&EnvVars::from_pairs(Vec::<(String, String)>::new())), None);
        let holder = Holder::this_process("r".into(), "ops/plan.yml".into()).in_ci_job(ci_job(&gitlab));
        assert!(holder.describe().contains("CI job https://gitlab.example/acme/ops/-/jobs/7"), "{}", holder.describe());
    }
}
