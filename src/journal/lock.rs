//! One `apply` of a plan at a time per state directory: `<state-dir>/locks/<plan>.lock` holds
//! the holder's pid and start time. A lock whose process is gone is taken over; a live one
//! refuses with a message naming the holder. Released when dropped.

use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// The lock file's content.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Holder {
    pub pid: u32,
    /// Unix seconds.
    pub started_at: u64,
    pub run_id: String,
    pub plan_path: String,
    /// When the holder process started, in clock ticks since boot (`/proc/<pid>/stat`):
    /// a pid reused by another process since is told apart by it.
    #[serde(default)]
    pub proc_start: Option<u64>,
    /// The machine it runs on: its pid means something only there.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// The CI job it runs in, when it runs in one (its URL).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ci_job: Option<String>,
}

impl Holder {
    /// A holder for this process.
    #[must_use]
    pub fn this_process(run_id: String, plan_path: String) -> Self {
        let pid = std::process::id();
        Self {
            pid,
            started_at: std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs()),
            run_id,
            plan_path,
            proc_start: proc_start(pid),
            host: this_host(),
            ci_job: None,
        }
    }

    /// The same holder, naming the CI job it runs in.
    #[must_use]
    pub fn in_ci_job(self, ci_job: Option<String>) -> Self {
        Self { ci_job, ..self }
    }

    /// "run R of PLAN (process N on HOST)", for messages.
    #[must_use]
    pub fn describe(&self) -> String {
        format!("run {} of {} (process {}{})", self.run_id, self.plan_path, self.pid, self.whence())
    }

    /// Where it runs, after its process id: " on HOST, CI job URL", as far as known.
    fn whence(&self) -> String {
        let host = self.host.as_deref().map(|h| format!(" on {h}")).unwrap_or_default();
        let job = self.ci_job.as_deref().map(|j| format!(", CI job {j}")).unwrap_or_default();
        format!("{host}{job}")
    }
}

/// This machine's name (Linux's `/proc/sys/kernel/hostname`), when it can be read.
#[must_use]
pub fn this_host() -> Option<String> {
    let name = fs::read_to_string("/proc/sys/kernel/hostname").ok()?;
    let name = name.trim();
    (!name.is_empty()).then(|| name.to_owned())
}

/// Why the lock was not taken.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error(
        "{plan} is already being applied by process {pid}{whence} (run {run}, started {started}); wait for it (--lock-timeout), or remove {path} if that process is gone"
    )]
    Held { plan: String, pid: u32, whence: String, run: String, started: String, path: String },
    #[error("cannot take the lock {path}: {source}; a run that cannot be journalled does not start (see --state-dir)")]
    Io { path: String, source: io::Error },
}

/// A held lock, released on drop.
#[derive(Debug)]
pub struct Lock {
    path: PathBuf,
}

fn lock_name(plan_path: &str) -> String {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(plan_path.as_bytes());
    format!("{}.lock", crate::plan::source::hex(&digest[..8]))
}

/// A process's start time in clock ticks since boot: field 22 of `/proc/<pid>/stat`, read
/// after the command name (which may hold spaces and parentheses).
fn proc_start(pid: u32) -> Option<u64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after_name = &stat[stat.rfind(')')? + 1..];
    // Fields after the name start at field 3 (state); the start time is field 22.
    after_name.split_whitespace().nth(22 - 3)?.parse().ok()
}

/// Whether the lock's holder is still running: its pid exists and, when the holder recorded
/// its start time, the process with that pid started then (not a later one that reused the
/// pid). Where there is no `/proc`, a holder is assumed alive, the safe side.
pub(crate) fn alive(holder: &Holder) -> bool {
    // Another machine's process cannot be looked at from here: alive, the safe side.
    if holder.host.is_some() && holder.host != this_host() {
        return true;
    }
    let proc_root = Path::new("/proc");
    if !proc_root.is_dir() {
        return true;
    }
    if !proc_root.join(holder.pid.to_string()).exists() {
        return false;
    }
    match (holder.proc_start, proc_start(holder.pid)) {
        (Some(then), Some(now)) => then == now,
        _ => true,
    }
}

impl Lock {
    /// Takes the lock for `holder.plan_path` in `state_dir`.
    pub fn acquire(state_dir: &Path, holder: &Holder) -> Result<Self, LockError> {
        Self::acquire_at(&state_dir.join("locks"), &lock_name(&holder.plan_path), holder)
    }

    /// For a plan file with other hard links (`plan`, its canonical path): a lock on the
    /// file itself (its device and inode), in a directory every run on this machine shares,
    /// since each link may have a state directory of its own. `None` for a file with one
    /// link (its canonical path is its identity, and the state directory's lock holds it)
    /// or where file identities are not known.
    pub fn acquire_file(plan: &Path, holder: &Holder) -> Result<Option<Self>, LockError> {
        #[cfg(unix)]
        {
            use std::os::unix::fs::MetadataExt as _;
            let Ok(meta) = fs::metadata(plan) else { return Ok(None) };
            if meta.nlink() < 2 {
                return Ok(None);
            }
            let dir = std::env::temp_dir().join("terminus-batch-plan-locks");
            let name = format!("{:x}-{:x}.lock", meta.dev(), meta.ino());
            Self::acquire_at(&dir, &name, holder).map(Some)
        }
        #[cfg(not(unix))]
        {
            let _ = (plan, holder);
            Ok(None)
        }
    }

    fn acquire_at(dir: &Path, name: &str, holder: &Holder) -> Result<Self, LockError> {
        let path = dir.join(name);
        let io_err = |source| LockError::Io { path: path.display().to_string(), source };
        fs::create_dir_all(dir).map_err(io_err)?;
        for _ in 0..2 {
            match OpenOptions::new().write(true).create_new(true).open(&path) {
                Ok(mut file) => {
                    let json = serde_json::to_string(holder).map_err(|e| io_err(io::Error::other(e)))?;
                    file.write_all(json.as_bytes()).and_then(|()| file.flush()).map_err(io_err)?;
                    return Ok(Self { path });
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                    let current: Option<Holder> = fs::read(&path).ok().and_then(|b| serde_json::from_slice(&b).ok());
                    match current {
                        Some(h) if alive(&h) && h.pid != std::process::id() => {
                            return Err(LockError::Held {
                                whence: h.whence(),
                                plan: h.plan_path,
                                pid: h.pid,
                                run: h.run_id,
                                started: crate::timefmt::human(i64::try_from(h.started_at).unwrap_or(0)),
                                path: path.display().to_string(),
                            });
                        }
                        // A dead holder (or an unreadable file): take the lock over.
                        _ => {
                            tracing::warn!("taking over the lock {} from a process that is gone", path.display());
                            fs::remove_file(&path).map_err(io_err)?;
                        }
                    }
                }
                Err(e) => return Err(io_err(e)),
            }
        }
        Err(io_err(io::Error::other("the lock changed hands while taking it")))
    }
}

impl Drop for Lock {
    fn drop(&mut self) {
        // Best effort: a lock left behind is taken over by the next run (its pid is gone).
        let _removed = fs::remove_file(&self.path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn holder(pid: u32) -> Holder {
        Holder {
            pid,
            started_at: 0,
            run_id: "r1".into(),
            plan_path: "p.yml".into(),
            proc_start: None,
            host: None,
            ci_job: None,
        }
    }

    #[test]
    #[cfg(target_os = "linux")]
    fn a_pid_reused_by_another_process_does_not_hold_the_lock() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("locks").join(lock_name("p.yml"));
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        // pid 1 is alive, but it is not the process that wrote this lock: it started at
        // another time.
        let start = proc_start(1).unwrap();
        let stale = Holder { proc_start: Some(start + 1), ..holder(1) };
        fs::write(&path, serde_json::to_string(&stale).unwrap()).unwrap();
        drop(Lock::acquire(dir.path(), &holder(4)).unwrap());
        // The same pid with its own start time still holds it.
        let live = Holder { proc_start: Some(start), ..holder(1) };
        fs::write(&path, serde_json::to_string(&live).unwrap()).unwrap();
        assert!(Lock::acquire(dir.path(), &holder(5)).is_err());
        assert_eq!(proc_start(std::process::id()), Holder::this_process("r".into(), "p".into()).proc_start);
    }

    #[test]
    fn held_refused_dead_taken_over_released_on_drop() {
        let dir = tempfile::tempdir().unwrap();
        // A live holder: this test's parent process (pid 1 exists wherever /proc does).
        let live = Lock::acquire(dir.path(), &holder(1)).unwrap();
        let err = Lock::acquire(dir.path(), &holder(2)).unwrap_err();
        assert!(err.to_string().contains("process 1"), "{err}");
        drop(live);
        let again = Lock::acquire(dir.path(), &holder(3)).unwrap();
        std::mem::forget(again);
        // pid 3's lock file is left behind; a pid that cannot exist is dead.
        let path = dir.path().join("locks").join(lock_name("p.yml"));
        fs::write(&path, serde_json::to_string(&holder(u32::MAX)).unwrap()).unwrap();
        let taken = Lock::acquire(dir.path(), &holder(4)).unwrap();
        drop(taken);
        assert!(!path.exists());
    }
}
