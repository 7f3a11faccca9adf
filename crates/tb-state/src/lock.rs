//! One `apply` of a plan at a time per store: `locks/<plan>.lock`, made by an exclusive create
//! (`If-None-Match: *` on an object store), holds the holder's run, plan, host, process and
//! CI job, and when it was last renewed. A lock whose process is gone (on this host), or
//! that was not renewed for [`STALE_AFTER`] (a holder elsewhere), is taken over by a
//! conditional replace; a live one refuses with a message naming the holder. Released when
//! dropped.

use std::fs;
use std::path::Path;
use std::sync::{Mutex, PoisonError};

use serde::{Deserialize, Serialize};

use super::fence::{Clock, Confirmed, Fence, Lost};
use super::store::{Store, StoreError, Version};

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
    /// How long its records may go unrenewed before another run takes them for abandoned,
    /// in seconds: the holder's promise, read by the others (absent: [`STALE_AFTER`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stale_after_secs: Option<u64>,
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
            stale_after_secs: None,
        }
    }

    /// The same holder, promising to renew its records within `stale_after`.
    #[must_use]
    pub fn renewing_within(self, stale_after: std::time::Duration) -> Self {
        Self { stale_after_secs: Some(stale_after.as_secs().max(MIN_STALE_AFTER.as_secs())), ..self }
    }

    /// How long its records may go unrenewed before they are stale.
    #[must_use]
    pub fn stale_after(&self) -> std::time::Duration {
        self.stale_after_secs.map_or(STALE_AFTER, |s| std::time::Duration::from_secs(s.max(MIN_STALE_AFTER.as_secs())))
    }

    /// How often it renews them: four times in the stale period.
    #[must_use]
    pub fn renew_every(&self) -> std::time::Duration {
        self.stale_after() / 4
    }

    /// How long a confirmed write proves a record held: half the stale period.
    #[must_use]
    pub fn proven_for(&self) -> std::time::Duration {
        self.stale_after() / 2
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
    #[error("cannot take the lock; a run that cannot be journalled does not start (see --state-dir)")]
    Store { source: StoreError },
}

/// The lock's content: its holder, and when the holder last said it is alive.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockRecord {
    #[serde(flatten)]
    pub holder: Holder,
    /// Unix seconds of the last renewal (0: a lock written before renewals, judged by its
    /// process alone).
    #[serde(default)]
    pub renewed_at: u64,
    /// How many times the holder renewed it: each write's bytes are its own, so a write
    /// whose answer was lost is known by reading it back.
    #[serde(default)]
    pub renewals: u64,
}

/// What a holder knows of its record: the version it last wrote (a renewal or a release that
/// finds another means the record was taken over), when that write was confirmed, and how
/// many renewals it made.
#[derive(Debug)]
pub(crate) struct Held {
    pub(crate) version: Version,
    pub(crate) confirmed: Confirmed,
    pub(crate) renewals: u64,
}

/// A held lock, released on drop.
#[derive(Debug)]
pub struct Lock {
    store: Store,
    key: String,
    holder: Holder,
    held: Mutex<Held>,
    clock: Clock,
    fence: Fence,
}

fn lock_name(plan_path: &str) -> String {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(plan_path.as_bytes());
    format!("{}.lock", tb_core::hex::hex(&digest[..8]))
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

pub(crate) fn now_secs() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// Whether a record's holder is gone: its process on this host is not running, or the
/// record has not changed for the holder's stale period, by the store's own clock (`age`:
/// its modification time against the store's time now). The holder's wall-clock
/// `renewed_at` is never compared with this machine's: two machines' clocks may disagree
/// by more than the period. `age` unknown (a store that cannot say): not gone, the safe side.
pub(crate) fn gone(holder: &Holder, age: Option<std::time::Duration>) -> bool {
    !alive(holder) || age.is_some_and(|age| age > holder.stale_after() + CLOCK_SLACK)
}

/// What the store's clock readings may be off by: modification times in whole seconds.
const CLOCK_SLACK: std::time::Duration = std::time::Duration::from_secs(2);

/// A lock or lease not renewed for this long is stale: its holder stopped without giving it
/// back (four renewals missed). A holder may promise another (`TERMINUS_BATCH_STALE_AFTER`),
/// recorded in its records.
pub const STALE_AFTER: std::time::Duration = std::time::Duration::from_secs(120);
/// The shortest stale period a holder may promise.
pub const MIN_STALE_AFTER: std::time::Duration = std::time::Duration::from_secs(4);

impl Lock {
    /// Takes the lock for `holder.plan_path` in `store`.
    pub fn acquire(store: &Store, holder: &Holder) -> Result<Self, LockError> {
        Self::acquire_at(store, &format!("locks/{}", lock_name(&holder.plan_path)), holder)
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
            let store = Store::dir(std::env::temp_dir().join("terminus-batch-plan-locks"));
            let name = format!("{:x}-{:x}.lock", meta.dev(), meta.ino());
            Self::acquire_at(&store, &name, holder).map(Some)
        }
        #[cfg(not(unix))]
        {
            let _ = (plan, holder);
            Ok(None)
        }
    }

    fn acquire_at(store: &Store, key: &str, holder: &Holder) -> Result<Self, LockError> {
        Self::acquire_on(store, key, holder, Clock::boot())
    }

    /// [`Self::acquire`] with the confirmations timed on `clock` (a test's).
    pub fn acquire_with(store: &Store, holder: &Holder, clock: Clock) -> Result<Self, LockError> {
        Self::acquire_on(store, &format!("locks/{}", lock_name(&holder.plan_path)), holder, clock)
    }

    #[expect(clippy::needless_pass_by_value, reason = "the lock keeps a clone of its clock, as callers expect")]
    fn acquire_on(store: &Store, key: &str, holder: &Holder, clock: Clock) -> Result<Self, LockError> {
        let fail = |source| LockError::Store { source };
        let record = |holder: &Holder| {
            serde_json::to_vec(&LockRecord { holder: holder.clone(), renewed_at: now_secs(), renewals: 0 })
                .unwrap_or_default()
        };
        let sent = clock.now();
        let taken = |version| Self {
            store: store.clone(),
            key: key.to_owned(),
            holder: holder.clone(),
            held: Mutex::new(Held { version, confirmed: Confirmed { at: sent }, renewals: 0 }),
            clock: clock.clone(),
            fence: Fence::default(),
        };
        let claim = |bytes: &[u8], age| match serde_json::from_slice::<LockRecord>(bytes).ok() {
            Some(l) if !gone(&l.holder, age) && !ours(&l.holder) => {
                let h = l.holder;
                Err(LockError::Held {
                    whence: h.whence(),
                    plan: h.plan_path,
                    pid: h.pid,
                    run: h.run_id,
                    started: tb_core::timefmt::human(i64::try_from(h.started_at).unwrap_or(0)),
                    path: store.locate(key),
                })
            }
            // A holder that is gone (or a record cut short): taken over, if no one else
            // took it meanwhile.
            _ => {
                tracing::warn!("taking over the lock {} from a run that is gone", store.locate(key));
                Ok(())
            }
        };
        store.take(key, &record(holder), "lock", fail, claim).map(taken)
    }

    /// The same lock, telling `fence` when it is found lost (the run's fence, which its
    /// leases share).
    #[must_use]
    pub fn watched_by(mut self, fence: Fence) -> Self {
        self.fence = fence;
        self
    }

    /// The run that holds it.
    #[must_use]
    pub fn holder(&self) -> &Holder {
        &self.holder
    }

    /// The fence this lock tells when it is lost.
    #[must_use]
    pub fn fence(&self) -> &Fence {
        &self.fence
    }

    /// Says again that the holder is alive, so that a run on another machine sharing the
    /// store does not take the lock for abandoned. A lock taken over meanwhile is left to
    /// its new holder, and the fence is told.
    pub fn renew(&self) {
        let mut held = self.held.lock().unwrap_or_else(PoisonError::into_inner);
        if let Err(e) = self.renew_held(&mut held) {
            tracing::warn!("cannot renew the lock: {e}");
        }
    }

    fn renew_held(&self, held: &mut Held) -> Result<(), StoreError> {
        if self.fence.lost().is_some() {
            return Ok(());
        }
        let renewals = held.renewals + 1;
        let record = LockRecord { holder: self.holder.clone(), renewed_at: now_secs(), renewals };
        let json = serde_json::to_vec(&record).unwrap_or_default();
        let sent = self.clock.now();
        if let Some(new) = self.store.replace(&self.key, &json, &held.version)? {
            *held = Held { version: new, confirmed: Confirmed { at: sent }, renewals };
        } else {
            let by = holder_of::<LockRecord>(&self.store, &self.key, |r| r.holder);
            self.fence.lose(Lost::TakenOver { what: "the plan lock".to_owned(), by });
        }
        Ok(())
    }

    /// Proves the lock still held before the run acts: its last confirmed write is recent
    /// on the boot clock, or a renewal now confirms it. Otherwise the fence is told why.
    pub fn prove(&self) -> Result<(), Lost> {
        let mut held = self.held.lock().unwrap_or_else(PoisonError::into_inner);
        let fresh = held.confirmed.fresh(self.clock.now(), self.holder.proven_for());
        self.fence.prove(|| "the plan lock".to_owned(), fresh, || self.renew_held(&mut held))
    }
}

/// The runs holding a plan lock in `store` now: their holder is not gone (its process runs,
/// or the store saw it renewed within its stale period). What `runs list` tells a run still
/// going by from one that died.
#[must_use]
pub fn live_runs(store: &Store) -> Vec<String> {
    let Ok(keys) = store.list("locks") else { return Vec::new() };
    keys.iter()
        .filter_map(|key| {
            let entry = store.get(key).ok()??;
            let record = serde_json::from_slice::<LockRecord>(&entry.bytes).ok()?;
            (!gone(&record.holder, store.age(&entry))).then_some(record.holder.run_id)
        })
        .collect()
}

/// Who holds `key` now, as its record describes them, for a holder that lost it.
pub(crate) fn holder_of<R: serde::de::DeserializeOwned>(
    store: &Store,
    key: &str,
    holder: impl Fn(R) -> Holder,
) -> String {
    match store.get(key) {
        Ok(Some(entry)) => serde_json::from_slice::<R>(&entry.bytes)
            .map_or_else(|_| "another run".to_owned(), |r| holder(r).describe()),
        Ok(None) => "another run, which has given it back since".to_owned(),
        Err(_) => "another run".to_owned(),
    }
}

/// A record this very process wrote (an earlier run in the same process, as tests make).
fn ours(holder: &Holder) -> bool {
    holder.pid == std::process::id() && (holder.host.is_none() || holder.host == this_host())
}

impl Drop for Lock {
    fn drop(&mut self) {
        // Only our own; best effort: a lock left behind is taken over by the next run.
        let version = self.held.lock().unwrap_or_else(PoisonError::into_inner).version.clone();
        let _removed = self.store.delete_if(&self.key, &version);
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
            stale_after_secs: None,
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
        drop(Lock::acquire(&Store::dir(dir.path()), &holder(4)).unwrap());
        // The same pid with its own start time still holds it.
        let live = Holder { proc_start: Some(start), ..holder(1) };
        fs::write(&path, serde_json::to_string(&live).unwrap()).unwrap();
        assert!(Lock::acquire(&Store::dir(dir.path()), &holder(5)).is_err());
        assert_eq!(proc_start(std::process::id()), Holder::this_process("r".into(), "p".into()).proc_start);
    }

    /// Staleness is the record's age by the store's clock, never the holder's wall clock
    /// against this machine's: a record renewed by a holder whose clock is hours behind (or
    /// read by a machine hours ahead) is held while the store sees it change; a record the
    /// store has not seen change for the stale period is taken over, whatever it says.
    #[test]
    fn a_lock_is_stale_when_the_store_saw_no_change_for_the_period_whatever_the_clocks_say() {
        let dir = tempfile::tempdir().unwrap();
        for store in [Store::dir(dir.path()), Store::in_memory("s")] {
            // A holder on another machine: only its renewals say it is alive.
            let far = Holder { host: Some("elsewhere".into()), ..holder(1) };
            let lock = Lock::acquire(&store, &far).unwrap();
            let key = format!("locks/{}", lock_name("p.yml"));
            let read = || serde_json::from_slice::<LockRecord>(&store.get(&key).unwrap().unwrap().bytes).unwrap();
            // Its clock ten hours behind: the record says it was renewed long ago.
            let behind = LockRecord { holder: far.clone(), renewed_at: now_secs() - 36_000, renewals: 7 };
            let version = store.get(&key).unwrap().unwrap().version;
            let version = store.replace(&key, &serde_json::to_vec(&behind).unwrap(), &version).unwrap().unwrap();
            lock.held.lock().unwrap().version = version;
            assert!(Lock::acquire(&store, &holder(2)).is_err(), "written just now, by the store's clock: held");
            // The store's clock past the stale period since the last write: taken over.
            lock.renew();
            assert_eq!(read().renewals, 1, "renewed: {:?}", read());
            store.skew_clock(STALE_AFTER + std::time::Duration::from_secs(10));
            let taken = Lock::acquire(&store, &holder(3)).unwrap();
            assert_eq!(read().holder.pid, 3, "a lock the store saw unchanged for the period is taken over");
            // The first holder's renewal finds it taken and tells its fence; its release
            // leaves the new holder's lock alone.
            lock.renew();
            assert!(matches!(lock.fence().lost(), Some(Lost::TakenOver { by, .. }) if by.contains("process 3")));
            drop(lock);
            assert_eq!(read().holder.pid, 3);
            drop(taken);
            assert!(store.get(&key).unwrap().is_none());
        }
    }

    /// A holder may promise a shorter stale period; the record carries it to the others.
    #[test]
    fn a_holders_own_stale_period_is_read_from_its_record() {
        let store = Store::in_memory("s");
        let quick =
            Holder { host: Some("elsewhere".into()), ..holder(1) }.renewing_within(std::time::Duration::from_secs(5));
        let _lock = Lock::acquire(&store, &quick).unwrap();
        store.skew_clock(std::time::Duration::from_secs(4));
        assert!(Lock::acquire(&store, &holder(2)).is_err(), "within its period (and the clocks' slack)");
        store.skew_clock(std::time::Duration::from_secs(8));
        assert!(Lock::acquire(&store, &holder(2)).is_ok(), "past its own period, though far inside the default");
        assert_eq!(quick.renew_every(), std::time::Duration::from_millis(1250));
    }

    #[test]
    fn held_refused_dead_taken_over_released_on_drop() {
        let dir = tempfile::tempdir().unwrap();
        // A live holder: this test's parent process (pid 1 exists wherever /proc does).
        let live = Lock::acquire(&Store::dir(dir.path()), &holder(1)).unwrap();
        let err = Lock::acquire(&Store::dir(dir.path()), &holder(2)).unwrap_err();
        assert!(err.to_string().contains("process 1"), "{err}");
        drop(live);
        let again = Lock::acquire(&Store::dir(dir.path()), &holder(3)).unwrap();
        std::mem::forget(again);
        // pid 3's lock file is left behind; a pid that cannot exist is dead.
        let path = dir.path().join("locks").join(lock_name("p.yml"));
        fs::write(&path, serde_json::to_string(&holder(u32::MAX)).unwrap()).unwrap();
        let taken = Lock::acquire(&Store::dir(dir.path()), &holder(4)).unwrap();
        drop(taken);
        assert!(!path.exists());
    }
}
