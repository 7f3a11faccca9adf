//! Environment leases (the site, for site operations): whatever the plan, two runs sharing a
//! state directory never act on one target at once. A task takes its target's lease before
//! its first request (its "nothing to do" check included, so the check sees what the other
//! run did) and gives it back when it ends.
//!
//! A lease is `leases/<digest of the target>.lease` in the store, made by an exclusive create
//! (`If-None-Match: *` on an object store) and holding its holder (run, plan, host, process)
//! and when it was last renewed. A run's
//! tasks share its leases (a count per target), so a run never waits on itself. A lease is
//! stale when its holder's process is gone (on this host) or when it was not renewed for
//! [`STALE_AFTER`] (a holder on another machine sharing the directory); a stale lease is
//! taken over. Each task holds at most one lease, so leases cannot deadlock.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use serde::{Deserialize, Serialize};

use super::fence::{Clock, Confirmed, Fence, Lost};
use super::lock::{Held, Holder, gone, holder_of, now_secs};
use super::store::{Store, StoreError};

pub use super::lock::STALE_AFTER;

/// A lease's content.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaseRecord {
    /// `site.env`, or `site` for site operations.
    pub target: String,
    pub holder: Holder,
    /// Unix seconds of the last renewal.
    pub renewed_at: u64,
    /// This run's count of lease writes when this one was made: each write's bytes are its
    /// own, so a write whose answer was lost is known by reading it back.
    #[serde(default)]
    pub renewals: u64,
}

/// Why a lease was not taken.
#[derive(Debug, thiserror::Error)]
pub enum LeaseError {
    /// Another run holds it.
    #[error("{target} is being acted on by {holder}", holder = .holder.describe())]
    Held { target: String, holder: Box<Holder> },
    #[error("cannot take the lease on {target}")]
    Store { target: String, source: StoreError },
}

/// The leases of one run in one store.
#[derive(Clone, Debug)]
pub struct Leases {
    store: Store,
    holder: Holder,
    /// What the targets are on (the API's address): two runs against different platforms,
    /// such as two in-process simulators, never share a lease.
    scope: String,
    /// Targets this run holds: how many of its tasks hold each, and what it wrote. Never
    /// held across a store request.
    held: Arc<Mutex<HashMap<String, (usize, Held)>>>,
    /// One write of a target's lease at a time: a taking (two tasks of this run on one target
    /// write it once) or a renewal; different targets' go side by side.
    taking: Arc<Mutex<HashMap<String, Arc<Mutex<()>>>>>,
    /// Lease writes so far (see [`LeaseRecord::renewals`]).
    writes: Arc<std::sync::atomic::AtomicU64>,
    clock: Clock,
    fence: Fence,
    /// Leases being given back in the background (an object store's requests), by target:
    /// a task of this run taking one again first waits for it to be gone.
    releasing: Arc<Mutex<HashMap<String, tokio::task::JoinHandle<()>>>>,
}

/// One task's hold on a target; given back when dropped.
#[derive(Debug)]
pub struct LeaseGuard {
    leases: Leases,
    target: String,
    /// The other run this task took the lease over from (it was stale): what that run may
    /// have left in flight on the target is this task's to settle before it acts.
    took_over: Option<Box<Holder>>,
}

impl LeaseGuard {
    /// The run whose stale lease this task took over, if it did.
    #[must_use]
    pub fn took_over(&self) -> Option<&Holder> {
        self.took_over.as_deref()
    }
}

impl Drop for LeaseGuard {
    fn drop(&mut self) {
        self.leases.release(&self.target);
    }
}

/// Threads a renewal pass uses at most.
const RENEWERS: usize = 8;

fn key(target: &str) -> String {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(target.as_bytes());
    format!("leases/{}.lease", tb_core::hex::hex(&digest[..12]))
}

impl Leases {
    /// The leases `holder`'s run takes in `store` on targets of `scope` (the API's address).
    #[must_use]
    pub fn new(store: &Store, holder: Holder, scope: &str) -> Self {
        Self {
            store: store.clone(),
            holder,
            scope: scope.to_owned(),
            held: Arc::new(Mutex::new(HashMap::new())),
            taking: Arc::new(Mutex::new(HashMap::new())),
            releasing: Arc::new(Mutex::new(HashMap::new())),
            writes: Arc::new(std::sync::atomic::AtomicU64::new(0)),
            clock: Clock::boot(),
            fence: Fence::default(),
        }
    }

    /// The same leases, telling `fence` when one is found lost (the run's, which its lock
    /// shares), with their confirmations timed on `clock`.
    #[must_use]
    pub fn watched_by(self, fence: Fence, clock: Clock) -> Self {
        Self { clock, fence, ..self }
    }

    /// Takes `target`'s lease for one task of this run, or says who holds it.
    pub fn try_take(&self, target: &str) -> Result<LeaseGuard, LeaseError> {
        let gate = self.gate(target);
        let _one = gate.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some((count, _)) = self.held.lock().unwrap_or_else(PoisonError::into_inner).get_mut(target) {
            *count += 1;
            return Ok(LeaseGuard { leases: self.clone(), target: target.to_owned(), took_over: None });
        }
        // Being given back by an earlier task of this run: gone first, then taken afresh.
        let pending = self.releasing.lock().unwrap_or_else(PoisonError::into_inner).remove(target);
        if let Some(pending) = pending {
            let _gone = futures::executor::block_on(pending);
        }
        let sent = self.clock.now();
        // The store's round trips with no lock of the run's held: other targets' takings go on.
        let (version, renewals, took_over) = self.create(target)?;
        self.held
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(target.to_owned(), (1, Held { version, confirmed: Confirmed { at: sent }, renewals }));
        Ok(LeaseGuard { leases: self.clone(), target: target.to_owned(), took_over: took_over.map(Box::new) })
    }

    fn key(&self, target: &str) -> String {
        key(&format!("{} {target}", self.scope))
    }

    /// `target`'s gate: one write of its lease at a time (a taking, a renewal).
    fn gate(&self, target: &str) -> Arc<Mutex<()>> {
        Arc::clone(self.taking.lock().unwrap_or_else(PoisonError::into_inner).entry(target.to_owned()).or_default())
    }

    /// A new record of `target`'s lease, and its write count.
    fn record(&self, target: &str) -> (Vec<u8>, u64) {
        let renewals = self.writes.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
        let record =
            LeaseRecord { target: target.to_owned(), holder: self.holder.clone(), renewed_at: now_secs(), renewals };
        (serde_json::to_vec(&record).unwrap_or_default(), renewals)
    }

    /// Creates the lease, taking over a stale one (by a conditional replace: of two runs
    /// taking over the same stale lease, one wins): its version, write count, and the other
    /// run it was taken over from.
    fn create(&self, target: &str) -> Result<(String, u64, Option<Holder>), LeaseError> {
        let previous: Mutex<Option<Holder>> = Mutex::new(None);
        let key = self.key(target);
        let fail = |source| LeaseError::Store { target: target.to_owned(), source };
        let claim = |bytes: &[u8], age| match serde_json::from_slice::<LeaseRecord>(bytes) {
            // This run's own, which none of its tasks holds (one that could not be given
            // back): taken again.
            Ok(lease) if lease.holder.run_id == self.holder.run_id => Ok(()),
            Ok(lease) if !gone(&lease.holder, age) => {
                Err(LeaseError::Held { target: target.to_owned(), holder: Box::new(lease.holder) })
            }
            // Stale, or cut short by a crash while it was written: taken over.
            stale => {
                tracing::warn!(target, "taking over a lease whose holder is gone");
                *previous.lock().unwrap_or_else(PoisonError::into_inner) = stale.ok().map(|lease| lease.holder);
                Ok(())
            }
        };
        let (record, renewals) = self.record(target);
        let version = self.store.take(&key, &record, "lease", fail, claim)?;
        Ok((version, renewals, previous.into_inner().unwrap_or_else(PoisonError::into_inner)))
    }

    fn release(&self, target: &str) {
        let mut held = self.held.lock().unwrap_or_else(PoisonError::into_inner);
        let Some((count, _)) = held.get_mut(target) else { return };
        *count -= 1;
        if *count == 0
            && let Some((_, Held { version, .. })) = held.remove(target)
        {
            // Only our own: a lease taken over meanwhile (we were thought gone) stays. Given
            // back without holding up the task that ends (an object store's round trips).
            if let Some(pending) = self.store.delete_if_later(&self.key(target), &version) {
                let mut releasing = self.releasing.lock().unwrap_or_else(PoisonError::into_inner);
                releasing.retain(|_, h| !h.is_finished());
                releasing.insert(target.to_owned(), pending);
            }
        }
    }

    /// Waits until every lease given back is gone from the store (the run's end).
    pub async fn settle(&self) {
        let pending: HashMap<_, _> =
            std::mem::take(&mut *self.releasing.lock().unwrap_or_else(PoisonError::into_inner));
        for handle in pending.into_values() {
            let _done = handle.await;
        }
    }

    /// Rewrites every lease this run holds, so that a holder on another machine is not
    /// taken for gone. A lease taken over meanwhile tells the fence.
    pub fn renew(&self) {
        let targets: Vec<String> = self.held.lock().unwrap_or_else(PoisonError::into_inner).keys().cloned().collect();
        // Side by side, a few threads each renewing its share: against a far store a pass
        // takes a few round trips, not one per lease.
        let share = targets.len().div_ceil(RENEWERS).max(1);
        std::thread::scope(|scope| {
            for chunk in targets.chunks(share) {
                scope.spawn(move || {
                    for target in chunk {
                        if let Err(e) = self.renew_one(target) {
                            tracing::warn!(target, "cannot renew the lease: {e}");
                        }
                    }
                });
            }
        });
    }

    /// Renews `target`'s lease if this run still holds it.
    fn renew_one(&self, target: &str) -> Result<(), StoreError> {
        // One write of a lease at a time (two renewals never race); another lease's renewal,
        // or a task proving its own, does not wait for this one.
        let gate = self.gate(target);
        let _one_at_a_time = gate.lock().unwrap_or_else(PoisonError::into_inner);
        if self.fence.lost().is_some() {
            return Ok(());
        }
        let Some(version) =
            self.held.lock().unwrap_or_else(PoisonError::into_inner).get(target).map(|(_, h)| h.version.clone())
        else {
            return Ok(());
        };
        let (record, renewals) = self.record(target);
        let sent = self.clock.now();
        let key = self.key(target);
        if let Some(new) = self.store.replace(&key, &record, &version)? {
            if let Some((_, held)) = self.held.lock().unwrap_or_else(PoisonError::into_inner).get_mut(target) {
                *held = Held { version: new, confirmed: Confirmed { at: sent }, renewals };
            }
        } else {
            let by = holder_of::<LeaseRecord>(&self.store, &key, |r| r.holder);
            self.fence.lose(Lost::TakenOver { what: format!("the lease on {target}"), by });
        }
        Ok(())
    }

    /// Proves `target`'s lease still held before a task acts on it: its last confirmed write
    /// is recent on the boot clock, or a renewal now confirms it. Otherwise the fence is told
    /// why.
    pub fn prove(&self, target: &str) -> Result<(), Lost> {
        if let Some(lost) = self.fence.lost() {
            return Err(lost);
        }
        let what = || format!("the lease on {target}");
        let fresh = self
            .held
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(target)
            .map(|(_, h)| h.confirmed.fresh(self.clock.now(), self.holder.proven_for()));
        let Some(fresh) = fresh else {
            // Once fenced, the loss is what is said, as for a lease still held.
            return Err(self
                .fence
                .lost()
                .unwrap_or_else(|| Lost::Unproven { what: what(), why: "this run does not hold it".into() }));
        };
        self.fence.prove(what, fresh, || self.renew_one(target))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    fn holder(run: &str, pid: u32) -> Holder {
        Holder { pid, host: super::super::lock::this_host(), ..Holder::this_process(run.into(), "p.yml".into()) }
    }

    /// A run that slept past the stale period (its process stopped, its machine suspended)
    /// while another run took its lease and lock over: the boot clock says its confirmations
    /// are old, so before acting it renews, finds both taken, and is fenced.
    #[test]
    fn a_holder_that_slept_proves_nothing_and_is_fenced_when_its_records_were_taken_over() {
        use crate::fence::{Clock, Fence, Lost};
        use crate::lock::Lock;
        let (store, _faults) = crate::store::tests::faulty(std::time::Duration::from_secs(5));
        let now = Arc::new(Mutex::new(std::time::Duration::from_secs(1000)));
        let clock = Clock::manual(Arc::clone(&now));
        let fence = Fence::default();
        let far = |run: &str| Holder { host: Some("elsewhere".into()), ..holder(run, 1) };
        let lock = Lock::acquire_with(&store, &far("r1"), clock.clone()).unwrap().watched_by(fence.clone());
        let leases = Leases::new(&store, far("r1"), "https://api/").watched_by(fence.clone(), clock.clone());
        let _guard = leases.try_take("s.live").unwrap();
        // Awake: both proven at once, from what it confirmed.
        assert_eq!((lock.prove(), leases.prove("s.live")), (Ok(()), Ok(())));
        // It sleeps; another run takes the lease over (as a stale one).
        let key = leases.key("s.live");
        let current = store.get(&key).unwrap().unwrap().version;
        let theirs = LeaseRecord { target: "s.live".into(), holder: far("r2"), renewed_at: now_secs(), renewals: 1 };
        store.replace(&key, &serde_json::to_vec(&theirs).unwrap(), &current).unwrap().unwrap();
        *now.lock().unwrap() += far("r1").proven_for() + std::time::Duration::from_secs(76);
        // It wakes: the lock is still its own, renewed now; the lease is not.
        assert_eq!(lock.prove(), Ok(()));
        let Err(Lost::TakenOver { what, by }) = leases.prove("s.live") else { panic!("acted under a lost lease") };
        assert_eq!(what, "the lease on s.live");
        assert!(by.contains("run r2"), "{by}");
        assert!(fence.lost().is_some(), "the run is told");
        assert!(lock.prove().is_err(), "nothing more is proven once fenced");
        // The new holder's lease stays.
        let there: LeaseRecord = serde_json::from_slice(&store.get(&key).unwrap().unwrap().bytes).unwrap();
        assert_eq!(there.holder.run_id, "r2");
    }

    /// A renewal the store applied but whose answer was lost is still this run's: read back,
    /// its version adopted, the lease proven, and given back at the end.
    #[test]
    fn a_renewal_whose_answer_was_lost_keeps_the_lease() {
        use crate::fence::{Clock, Fence};
        let (store, faults) = crate::store::tests::faulty(std::time::Duration::from_secs(5));
        let now = Arc::new(Mutex::new(std::time::Duration::from_secs(1000)));
        let fence = Fence::default();
        let leases = Leases::new(&store, holder("r1", std::process::id()), "https://api/")
            .watched_by(fence.clone(), Clock::manual(Arc::clone(&now)));
        let guard = leases.try_take("s.live").unwrap();
        faults(&[(true, 1)]);
        leases.renew();
        assert!(fence.lost().is_none(), "its own renewal, not a take-over");
        *now.lock().unwrap() += holder("r1", std::process::id()).proven_for() / 2;
        assert_eq!(leases.prove("s.live"), Ok(()));
        drop(guard);
        futures::executor::block_on(leases.settle());
        assert!(store.get(&leases.key("s.live")).unwrap().is_none(), "given back with the adopted version");
    }

    #[test]
    fn a_renewed_lease_is_still_given_back_in_an_object_store() {
        let store = Store::in_memory("s");
        let leases = Leases::new(&store, holder("r1", std::process::id()), "https://api/");
        let guard = leases.try_take("s.live").unwrap();
        let key = leases.key("s.live");
        let before = store.get(&key).unwrap().unwrap().version;
        leases.renew();
        let after = store.get(&key).unwrap().unwrap().version;
        assert_ne!(before, after, "renewed: a new version");
        drop(guard);
        futures::executor::block_on(leases.settle());
        assert!(store.get(&key).unwrap().is_none(), "given back with the version the renewal wrote");
    }

    #[test]
    fn one_run_at_a_time_per_target_shared_within_a_run_and_stale_ones_taken_over() {
        let dir = tempfile::tempdir().unwrap();
        let api = "https://api/";
        let mine = Leases::new(&Store::dir(dir.path()), holder("r1", std::process::id()), api);
        // Another run, alive (pid 1 on this host).
        let theirs = Leases::new(&Store::dir(dir.path()), Holder { proc_start: None, ..holder("r2", 1) }, api);
        let elsewhere =
            Leases::new(&Store::dir(dir.path()), Holder { proc_start: None, ..holder("r2", 1) }, "http://127.0.0.1:9/");
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
        let gone = Leases::new(&Store::dir(dir.path()), Holder { proc_start: None, ..holder("r3", u32::MAX) }, api);
        std::mem::forget(gone.try_take("s.dev").unwrap());
        assert!(mine.try_take("s.dev").is_ok());
        // A holder elsewhere, its clock an hour behind: the store saw its lease written just
        // now, so it is held.
        let far = Holder { host: Some("elsewhere".into()), ..holder("r4", 1) };
        let record = LeaseRecord { target: "s.x".into(), holder: far, renewed_at: now_secs() - 3600, renewals: 0 };
        let path = dir.path().join(mine.key("s.x"));
        fs::write(&path, serde_json::to_vec(&record).unwrap()).unwrap();
        assert!(mine.try_take("s.x").is_err(), "renewed on another machine, whatever its clock: held");
        // The file unchanged for the stale period, by the file system's clock: taken over.
        let long_ago = std::time::SystemTime::now() - STALE_AFTER - std::time::Duration::from_secs(10);
        fs::File::options().write(true).open(&path).unwrap().set_modified(long_ago).unwrap();
        assert!(mine.try_take("s.x").is_ok(), "not renewed for the stale period: taken over");
    }
}
