//! Environment leases (the site, for site operations): whatever the plan, two runs sharing a
//! state directory never act on one target at once. A task takes its target's lease before
//! its first request (its "nothing to do" check included, so the check sees what the other
//! run did) and gives it back when it ends.
//!
//! A lease is `<state-dir>/leases/<digest of the target>.lease`, made by an exclusive create
//! and holding its holder (run, plan, host, process) and when it was last renewed. A run's
//! tasks share its leases (a count per target), so a run never waits on itself. A lease is
//! stale when its holder's process is gone (on this host) or when it was not renewed for
//! [`STALE_AFTER`] (a holder on another machine sharing the directory); a stale lease is
//! taken over. Each task holds at most one lease, so leases cannot deadlock.

use std::collections::HashMap;
use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::lock::{Holder, alive};

/// How often a run renews the leases it holds.
pub const RENEW_EVERY: Duration = Duration::from_secs(30);
/// A lease not renewed for this long is stale: its holder stopped without giving it back.
pub const STALE_AFTER: Duration = Duration::from_secs(120);

/// A lease file's content.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaseRecord {
    /// `site.env`, or `site` for site operations.
    pub target: String,
    pub holder: Holder,
    /// Unix seconds of the last renewal.
    pub renewed_at: u64,
}

/// Why a lease was not taken.
#[derive(Debug, thiserror::Error)]
pub enum LeaseError {
    /// Another run holds it.
    #[error("{target} is being acted on by {holder}", holder = .holder.describe())]
    Held { target: String, holder: Box<Holder> },
    #[error("cannot take the lease {path}: {source}")]
    Io { path: String, source: io::Error },
}

/// The leases of one run in one state directory.
#[derive(Clone, Debug)]
pub struct Leases {
    dir: PathBuf,
    holder: Holder,
    /// What the targets are on (the API's address): two runs against different platforms,
    /// such as two in-process simulators, never share a lease.
    scope: String,
    /// Targets this run holds, with how many of its tasks hold each.
    held: Arc<Mutex<HashMap<String, usize>>>,
}

/// One task's hold on a target; given back when dropped.
#[derive(Debug)]
pub struct LeaseGuard {
    leases: Leases,
    target: String,
}

impl Drop for LeaseGuard {
    fn drop(&mut self) {
        self.leases.release(&self.target);
    }
}

fn now_secs() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

fn file_name(target: &str) -> String {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(target.as_bytes());
    format!("{}.lease", crate::plan::source::hex(&digest[..12]))
}

impl Leases {
    /// The leases `holder`'s run takes in `state_dir` on targets of `scope` (the API's
    /// address).
    #[must_use]
    pub fn new(state_dir: &Path, holder: Holder, scope: &str) -> Self {
        Self {
            dir: state_dir.join("leases"),
            holder,
            scope: scope.to_owned(),
            held: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    /// Takes `target`'s lease for one task of this run, or says who holds it.
    pub fn try_take(&self, target: &str) -> Result<LeaseGuard, LeaseError> {
        let mut held = self.held.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(count) = held.get_mut(target) {
            *count += 1;
            return Ok(LeaseGuard { leases: self.clone(), target: target.to_owned() });
        }
        self.create(target)?;
        held.insert(target.to_owned(), 1);
        Ok(LeaseGuard { leases: self.clone(), target: target.to_owned() })
    }

    fn path(&self, target: &str) -> PathBuf {
        self.dir.join(file_name(&format!("{} {target}", self.scope)))
    }

    fn record(&self, target: &str) -> LeaseRecord {
        LeaseRecord { target: target.to_owned(), holder: self.holder.clone(), renewed_at: now_secs() }
    }

    /// Creates the lease file, taking over a stale one.
    fn create(&self, target: &str) -> Result<(), LeaseError> {
        let path = self.path(target);
        let io_err = |source| LeaseError::Io { path: path.display().to_string(), source };
        fs::create_dir_all(&self.dir).map_err(io_err)?;
        for _ in 0..3 {
            match OpenOptions::new().write(true).create_new(true).open(&path) {
                Ok(mut file) => {
                    let json = serde_json::to_vec(&self.record(target)).map_err(|e| io_err(io::Error::other(e)))?;
                    file.write_all(&json).and_then(|()| file.flush()).map_err(io_err)?;
                    return Ok(());
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                    let current: Option<LeaseRecord> =
                        fs::read(&path).ok().and_then(|b| serde_json::from_slice(&b).ok());
                    match current {
                        Some(lease) if !stale(&lease) => {
                            return Err(LeaseError::Held { target: target.to_owned(), holder: Box::new(lease.holder) });
                        }
                        // Stale, or cut short by a crash while it was written: taken over.
                        _ => {
                            tracing::warn!(target, "taking over a lease whose holder is gone");
                            match fs::remove_file(&path) {
                                Ok(()) => {}
                                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                                Err(e) => return Err(io_err(e)),
                            }
                        }
                    }
                }
                Err(e) => return Err(io_err(e)),
            }
        }
        Err(io_err(io::Error::other("the lease changed hands while taking it")))
    }

    fn release(&self, target: &str) {
        let mut held = self.held.lock().unwrap_or_else(PoisonError::into_inner);
        let Some(count) = held.get_mut(target) else { return };
        *count -= 1;
        if *count == 0 {
            held.remove(target);
            // Only our own: a lease taken over meanwhile (we were thought gone) stays.
            let path = self.path(target);
            let ours = fs::read(&path)
                .ok()
                .and_then(|b| serde_json::from_slice::<LeaseRecord>(&b).ok())
                .is_some_and(|l| l.holder.run_id == self.holder.run_id);
            if ours {
                let _gone = fs::remove_file(path);
            }
        }
    }

    /// Rewrites every lease this run holds with the time now, so that a holder on another
    /// machine is not taken for gone.
    pub fn renew(&self) {
        let targets: Vec<String> = self.held.lock().unwrap_or_else(PoisonError::into_inner).keys().cloned().collect();
        for target in targets {
            let path = self.path(&target);
            let tmp = path.with_extension(format!("renew-{}", self.holder.pid));
            let written = serde_json::to_vec(&self.record(&target))
                .map_err(io::Error::other)
                .and_then(|json| fs::write(&tmp, json))
                .and_then(|()| fs::rename(&tmp, &path));
            if let Err(e) = written {
                tracing::warn!(target, "cannot renew the lease: {e}");
            }
        }
    }
}

/// A lease whose holder is gone: its process on this host is not running, or it was not
/// renewed for [`STALE_AFTER`].
fn stale(lease: &LeaseRecord) -> bool {
    !alive(&lease.holder) || now_secs().saturating_sub(lease.renewed_at) > STALE_AFTER.as_secs()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn holder(run: &str, pid: u32) -> Holder {
        Holder { pid, host: super::super::lock::this_host(), ..Holder::this_process(run.into(), "p.yml".into()) }
    }

    #[test]
    fn one_run_at_a_time_per_target_shared_within_a_run_and_stale_ones_taken_over() {
        let dir = tempfile::tempdir().unwrap();
        let api = "https://api/";
        let mine = Leases::new(dir.path(), holder("r1", std::process::id()), api);
        // Another run, alive (pid 1 on this host).
        let theirs = Leases::new(dir.path(), Holder { proc_start: None, ..holder("r2", 1) }, api);
        let elsewhere = Leases::new(dir.path(), Holder { proc_start: None, ..holder("r2", 1) }, "http://127.0.0.1:9/");
        let a = mine.try_take("s.live").unwrap();
        let b = mine.try_take("s.live").unwrap();
        let Err(LeaseError::Held { holder: by, .. }) = theirs.try_take("s.live") else { panic!("taken twice") };
        assert_eq!(by.run_id, "r1");
        assert!(elsewhere.try_take("s.live").is_ok(), "the same name on another platform");
        drop(a);
        assert!(theirs.try_take("s.live").is_err(), "still held by the run's other task");
        drop(b);
        let c = theirs.try_take("s.live").unwrap();
        assert!(mine.try_take("s.live").is_err());
        assert!(mine.try_take("s.test").is_ok(), "another target is free");
        std::mem::forget(c);
        // A holder whose process is gone: taken over.
        let gone = Leases::new(dir.path(), Holder { proc_start: None, ..holder("r3", u32::MAX) }, api);
        std::mem::forget(gone.try_take("s.dev").unwrap());
        assert!(mine.try_take("s.dev").is_ok());
        // A holder elsewhere that stopped renewing: taken over.
        let far = Holder { host: Some("elsewhere".into()), ..holder("r4", 1) };
        let record = LeaseRecord { target: "s.x".into(), holder: far, renewed_at: now_secs() - 3600 };
        fs::write(mine.path("s.x"), serde_json::to_vec(&record).unwrap()).unwrap();
        assert!(mine.try_take("s.x").is_ok());
        let fresh = Holder { host: Some("elsewhere".into()), ..holder("r5", 1) };
        let record = LeaseRecord { target: "s.y".into(), holder: fresh, renewed_at: now_secs() };
        fs::write(mine.path("s.y"), serde_json::to_vec(&record).unwrap()).unwrap();
        assert!(mine.try_take("s.y").is_err(), "renewed on another machine: held");
    }
}
