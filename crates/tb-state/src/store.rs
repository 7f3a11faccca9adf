//! Where state lives: a directory, or a prefix in an object store (S3, Google Cloud Storage,
//! Azure Blob Storage). Both offer the same few operations on `/`-separated keys, with the
//! two conditional writes the lock and the leases need: create-if-absent and
//! replace-if-unchanged (an `ETag` match on object stores).
//!
//! The object store is asynchronous; the lock, the leases and the history are small
//! synchronous steps. The store runs its requests on a runtime of its own, so a blocking
//! call never waits on the caller's runtime (which may be the one blocked), and the
//! journal's segment writer (see `journal`) uses the same runtime for its writes.

use std::fmt;
use std::future::Future;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use futures::TryStreamExt as _;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt as _, PutMode, PutOptions, PutPayload, UpdateVersion};

use tb_core::location::Location;

/// A version of a key's content: an object's `ETag`, or a digest of a file's bytes.
pub type Version = String;

/// Why the store could not do what was asked.
#[derive(Debug, thiserror::Error)]
#[error("{what} {location}: {message}")]
pub struct StoreError {
    /// What was being done ("cannot write", "cannot read").
    pub what: &'static str,
    /// The key's location (a path, or a URL without credentials).
    pub location: String,
    pub message: String,
    /// The kind, for callers that tell a missing directory from a full disk.
    pub kind: io::ErrorKind,
}

impl StoreError {
    /// The same, as an I/O error of its kind.
    #[must_use]
    pub fn into_io(self) -> io::Error {
        io::Error::new(self.kind, self.to_string())
    }
}

/// A key's content and its version.
#[derive(Clone, Debug)]
pub struct Entry {
    pub bytes: Vec<u8>,
    pub version: Version,
    /// When the store last wrote it, by the store's own clock (an object's `Last-Modified`, a
    /// file's modification time), where known.
    pub modified: Option<std::time::SystemTime>,
}

/// The store's clock, read by a probe: what it said, and the boot clock then.
type ClockReading = Arc<std::sync::Mutex<Option<(std::time::Duration, std::time::SystemTime)>>>;

/// How long a probe of the store's clock is trusted: the boot clock carries it forward.
const CLOCK_READ_FOR: std::time::Duration = std::time::Duration::from_secs(600);

/// A state store.
#[derive(Clone, Debug)]
pub enum Store {
    Dir(DirStore),
    Object(Objects),
}

impl Store {
    /// An object store in memory under `prefix` (`memory://prefix`), for tests.
    #[cfg(test)]
    pub(crate) fn in_memory(prefix: &str) -> Self {
        let memory = Arc::new(object_store::memory::InMemory::new());
        let objects = Objects::with(memory, ObjectPath::from(prefix), format!("memory://{prefix}"));
        Self::Object(objects.expect("a runtime for the in-memory store"))
    }

    /// The same store, trying an object store's writes again for `budget` after errors (a
    /// directory's writes are not tried again: their answer is never lost).
    #[must_use]
    pub fn with_budget(self, budget: std::time::Duration) -> Self {
        match self {
            Self::Object(o) => Self::Object(o.with_budget(budget)),
            dir @ Self::Dir(_) => dir,
        }
    }

    /// A directory store.
    #[must_use]
    pub fn dir(root: impl Into<PathBuf>) -> Self {
        Self::Dir(DirStore { root: root.into(), clock: ClockReading::default() })
    }

    /// Checks that the store can be used before anything else is done: for an object store,
    /// one listing of its prefix, so that a missing bucket, refused credentials or an
    /// unreachable endpoint are said as such. A directory is made when first written.
    pub fn check(&self) -> Result<(), StoreError> {
        match self {
            Self::Dir(_) => Ok(()),
            Self::Object(o) => o.check(),
        }
    }

    /// How long ago `entry` was last written, by the store's own clock: its modification time
    /// against the store's time now (read by writing a probe key), never against this
    /// machine's wall clock, which may disagree with the writer's. `None` when the store
    /// cannot say.
    #[must_use]
    pub fn age(&self, entry: &Entry) -> Option<std::time::Duration> {
        let modified = entry.modified?;
        let now = self.now()?;
        Some(now.duration_since(modified).unwrap_or_default())
    }

    /// What this store's clock was last read to say.
    fn clock_reading(&self) -> &ClockReading {
        match self {
            Self::Dir(d) => &d.clock,
            Self::Object(o) => &o.clock,
        }
    }

    /// Sets the store's clock `ahead` of this machine's (tests: records then look that old).
    #[cfg(test)]
    pub(crate) fn skew_clock(&self, ahead: std::time::Duration) {
        let reading = self.clock_reading();
        let now = std::time::SystemTime::now() + ahead;
        *reading.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some((super::fence::boot_time(), now));
    }

    /// The store's time now: a probe read at most [`CLOCK_READ_FOR`] ago, carried forward on
    /// the boot clock.
    fn now(&self) -> Option<std::time::SystemTime> {
        let reading = self.clock_reading();
        let boot = super::fence::boot_time();
        let kept = *reading.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some((then, said)) = kept
            && boot.saturating_sub(then) < CLOCK_READ_FOR
        {
            return Some(said + boot.saturating_sub(then));
        }
        let key = format!("clock/{}-{}", std::process::id(), boot.as_nanos());
        let said = match self {
            Self::Dir(d) => d.probe(&key),
            Self::Object(o) => o.probe(&key),
        };
        match said {
            Ok(said) => {
                *reading.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some((boot, said));
                Some(said)
            }
            Err(e) => {
                tracing::warn!("cannot read the state store's clock: {e}");
                None
            }
        }
    }

    /// Opens `location`; an object store takes its credentials and endpoint from the
    /// cloud's standard variables in `vars` (`AWS_*`, `GOOGLE_*`, `AZURE_*`).
    pub fn open(location: &Location, vars: &[(String, String)]) -> Result<Self, String> {
        match location {
            Location::Dir(dir) => Ok(Self::dir(dir.clone())),
            Location::Url(url) => Objects::open(url, vars).map(Self::Object),
        }
    }

    /// Where it is, for messages.
    #[must_use]
    pub fn describe(&self) -> String {
        match self {
            Self::Dir(d) => d.root.display().to_string(),
            Self::Object(o) => o.url.clone(),
        }
    }

    /// Where one key is, for messages.
    #[must_use]
    pub fn locate(&self, key: &str) -> String {
        match self {
            Self::Dir(d) => d.path(key).display().to_string(),
            Self::Object(o) => format!("{}/{key}", o.url.trim_end_matches('/')),
        }
    }

    /// The directory, for a directory store.
    #[must_use]
    pub fn local_dir(&self) -> Option<&Path> {
        match self {
            Self::Dir(d) => Some(&d.root),
            Self::Object(_) => None,
        }
    }

    /// A key's content, `None` when there is no such key.
    pub fn get(&self, key: &str) -> Result<Option<Entry>, StoreError> {
        match self {
            Self::Dir(d) => d.get(key),
            Self::Object(o) => o.get(key),
        }
    }

    /// Creates `key` unless it exists: its version, or `None` when it existed.
    pub fn create(&self, key: &str, bytes: &[u8]) -> Result<Option<Version>, StoreError> {
        match self {
            Self::Dir(d) => d.create(key, bytes),
            Self::Object(o) => o.put(key, bytes, PutMode::Create),
        }
    }

    /// Takes `key` for a holder (the plan lock, an environment lease): writes `record` if
    /// the key is free; else hands the record there and its age (by the store's clock, see
    /// [`Self::age`]) to `claim`, which refuses (`Err`) while
    /// its holder still holds it, and otherwise replaces it, unless another run changed it
    /// meanwhile (of two runs taking over the same record, one wins). Three tries; then a
    /// store error saying the `what` changed hands.
    pub fn take<E>(
        &self,
        key: &str,
        record: &[u8],
        what: &str,
        fail: impl Fn(StoreError) -> E,
        claim: impl Fn(&[u8], Option<std::time::Duration>) -> Result<(), E>,
    ) -> Result<Version, E> {
        for _ in 0..3 {
            if let Some(version) = self.create(key, record).map_err(&fail)? {
                return Ok(version);
            }
            let Some(current) = self.get(key).map_err(&fail)? else { continue };
            claim(&current.bytes, self.age(&current))?;
            if let Some(version) = self.replace(key, record, &current.version).map_err(&fail)? {
                return Ok(version);
            }
        }
        Err(fail(StoreError {
            what: "cannot take",
            location: self.locate(key),
            message: format!("the {what} changed hands while taking it"),
            kind: io::ErrorKind::Other,
        }))
    }

    /// Replaces `key` if it is still at `current`: its new version, or `None` when it
    /// changed (or went) since.
    pub fn replace(&self, key: &str, bytes: &[u8], current: &str) -> Result<Option<Version>, StoreError> {
        match self {
            Self::Dir(d) => d.replace(key, bytes, current),
            Self::Object(o) => {
                let mode = PutMode::Update(UpdateVersion { e_tag: Some(current.to_owned()), version: None });
                o.put(key, bytes, mode)
            }
        }
    }

    /// Writes `key` whole, whatever was there: readers see the old or the new content.
    pub fn put(&self, key: &str, bytes: &[u8]) -> Result<(), StoreError> {
        match self {
            Self::Dir(d) => d.put(key, bytes),
            Self::Object(o) => o.put(key, bytes, PutMode::Overwrite).map(drop),
        }
    }

    /// Removes `key` if it is still at `version` (a holder gives back only its own lease).
    /// On object stores the read and the delete are two requests; what is removed this way
    /// is a lease its holder is giving back, which no one else may take meanwhile.
    pub fn delete_if(&self, key: &str, version: &str) -> Result<(), StoreError> {
        match self {
            Self::Dir(d) => match d.get(key)? {
                Some(entry) if entry.version == version => d.delete(key),
                _ => Ok(()),
            },
            Self::Object(o) => o.finish(key, o.block(o.delete_if_async(key, version))),
        }
    }

    /// [`Self::delete_if`] without waiting for it, on an object store: the request goes on
    /// the store's runtime, and the handle says when it is done. A directory removes at once.
    #[must_use]
    pub fn delete_if_later(&self, key: &str, version: &str) -> Option<tokio::task::JoinHandle<()>> {
        match self {
            Self::Dir(_) => {
                if let Err(e) = self.delete_if(key, version) {
                    tracing::warn!("{e}");
                }
                None
            }
            Self::Object(o) => {
                let removal = o.delete_if_async(key, version);
                o.spawn(async move {
                    if let Err(e) = removal.await {
                        tracing::warn!("{e}");
                    }
                })
            }
        }
    }

    /// Removes `key`; a missing key is not an error.
    pub fn delete(&self, key: &str) -> Result<(), StoreError> {
        match self {
            Self::Dir(d) => d.delete(key),
            Self::Object(o) => o.delete(key),
        }
    }

    /// Every key under `prefix` (a "directory", without its trailing `/`), at any depth.
    pub fn list(&self, prefix: &str) -> Result<Vec<String>, StoreError> {
        match self {
            Self::Dir(d) => d.list(prefix),
            Self::Object(o) => o.list(prefix),
        }
    }

    /// The names one level under `prefix` that hold keys ("subdirectories").
    pub fn children(&self, prefix: &str) -> Result<Vec<String>, StoreError> {
        match self {
            Self::Dir(d) => d.children(prefix),
            Self::Object(o) => o.children(prefix),
        }
    }
}

fn digest(bytes: &[u8]) -> Version {
    use sha2::{Digest, Sha256};
    tb_core::hex::hex(&Sha256::digest(bytes)[..16])
}

/// State in a directory: keys are relative paths.
#[derive(Clone, Debug)]
pub struct DirStore {
    root: PathBuf,
    clock: ClockReading,
}

impl DirStore {
    fn path(&self, key: &str) -> PathBuf {
        key.split('/').filter(|p| !p.is_empty()).fold(self.root.clone(), |p, part| p.join(part))
    }

    fn error(&self, what: &'static str, key: &str, e: &io::Error) -> StoreError {
        StoreError { what, location: self.path(key).display().to_string(), message: e.to_string(), kind: e.kind() }
    }

    /// The file system's time now: the modification time of a file written for it.
    fn probe(&self, key: &str) -> Result<std::time::SystemTime, StoreError> {
        let path = self.path(key);
        let fail = |e: &io::Error| self.error("cannot write", key, e);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|e| fail(&e))?;
        }
        std::fs::write(&path, b"").map_err(|e| fail(&e))?;
        let modified = std::fs::metadata(&path).and_then(|m| m.modified()).map_err(|e| fail(&e));
        let _removed = std::fs::remove_file(&path);
        modified
    }

    fn get(&self, key: &str) -> Result<Option<Entry>, StoreError> {
        let path = self.path(key);
        match std::fs::read(&path) {
            Ok(bytes) => {
                let modified = std::fs::metadata(&path).and_then(|m| m.modified()).ok();
                Ok(Some(Entry { version: digest(&bytes), bytes, modified }))
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(self.error("cannot read", key, &e)),
        }
    }

    fn create(&self, key: &str, bytes: &[u8]) -> Result<Option<Version>, StoreError> {
        use std::io::Write as _;
        let path = self.path(key);
        let fail = |e: &io::Error| self.error("cannot write", key, e);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|e| fail(&e))?;
        }
        match std::fs::OpenOptions::new().write(true).create_new(true).open(&path) {
            Ok(mut file) => {
                let written = file.write_all(bytes).and_then(|()| file.flush());
                if let Err(e) = written {
                    // Half a record is no record: it goes, so it is not taken for one.
                    let _gone = std::fs::remove_file(&path);
                    return Err(fail(&e));
                }
                Ok(Some(digest(bytes)))
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(None),
            Err(e) => Err(fail(&e)),
        }
    }

    /// A directory has no compare-and-swap: the content is compared, then replaced by a
    /// rename (atomic for readers). Two writers within that window both win; the lock and
    /// the leases only replace what is stale or their own, where that race is harmless.
    fn replace(&self, key: &str, bytes: &[u8], current: &str) -> Result<Option<Version>, StoreError> {
        match self.get(key)? {
            Some(entry) if entry.version == current => self.put(key, bytes).map(|()| Some(digest(bytes))),
            _ => Ok(None),
        }
    }

    fn put(&self, key: &str, bytes: &[u8]) -> Result<(), StoreError> {
        let path = self.path(key);
        let fail = |e: &io::Error| self.error("cannot write", key, e);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|e| fail(&e))?;
        }
        let mut tmp = path.clone().into_os_string();
        tmp.push(format!(".tmp-{}", std::process::id()));
        let tmp = PathBuf::from(tmp);
        let written = std::fs::write(&tmp, bytes).and_then(|()| std::fs::rename(&tmp, &path));
        if let Err(e) = written {
            let _gone = std::fs::remove_file(&tmp);
            return Err(fail(&e));
        }
        Ok(())
    }

    fn delete(&self, key: &str) -> Result<(), StoreError> {
        match std::fs::remove_file(self.path(key)) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(self.error("cannot remove", key, &e)),
        }
    }

    fn list(&self, prefix: &str) -> Result<Vec<String>, StoreError> {
        let mut keys = Vec::new();
        let mut pending = vec![(self.path(prefix), prefix.trim_end_matches('/').to_owned())];
        while let Some((dir, key)) = pending.pop() {
            let entries = match std::fs::read_dir(&dir) {
                Ok(entries) => entries,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(self.error("cannot list", &key, &e)),
            };
            for entry in entries.filter_map(Result::ok) {
                let name = entry.file_name().to_string_lossy().into_owned();
                let child = if key.is_empty() { name } else { format!("{key}/{name}") };
                if entry.file_type().is_ok_and(|t| t.is_dir()) {
                    pending.push((entry.path(), child));
                } else {
                    keys.push(child);
                }
            }
        }
        keys.sort();
        Ok(keys)
    }

    fn children(&self, prefix: &str) -> Result<Vec<String>, StoreError> {
        match std::fs::read_dir(self.path(prefix)) {
            Ok(entries) => Ok(entries
                .filter_map(Result::ok)
                .filter(|e| e.path().is_dir())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Vec::new()),
            Err(e) => Err(self.error("cannot list", prefix, &e)),
        }
    }
}

/// An object's time as the system's.
fn system_time(at: chrono::DateTime<chrono::Utc>) -> std::time::SystemTime {
    let millis = u64::try_from(at.timestamp_millis()).unwrap_or(0);
    std::time::UNIX_EPOCH + std::time::Duration::from_millis(millis)
}

/// An error that trying again does not mend: refused credentials, a missing bucket, a
/// request the store does not implement.
fn lasting(e: &object_store::Error) -> bool {
    matches!(
        e,
        object_store::Error::NotFound { .. }
            | object_store::Error::PermissionDenied { .. }
            | object_store::Error::Unauthenticated { .. }
            | object_store::Error::NotImplemented { .. }
            | object_store::Error::NotSupported { .. }
            | object_store::Error::InvalidPath { .. }
            | object_store::Error::UnknownConfigurationKey { .. }
    )
}

/// What `path` holds now and its version; `None` when it is not there.
async fn read_back(
    inner: &Arc<dyn ObjectStore>,
    path: &ObjectPath,
) -> Result<Option<(Vec<u8>, Version)>, object_store::Error> {
    match inner.get(path).await {
        Ok(got) => {
            let version = got.meta.e_tag.clone().unwrap_or_default();
            Ok(Some((got.bytes().await?.to_vec(), version)))
        }
        Err(object_store::Error::NotFound { .. }) => Ok(None),
        Err(e) => Err(e),
    }
}

/// State in an object store, under a prefix.
#[derive(Clone)]
pub struct Objects {
    inner: Arc<dyn ObjectStore>,
    prefix: ObjectPath,
    /// The location as named (no credentials are ever in it: they come from variables).
    url: String,
    runtime: Arc<IoRuntime>,
    /// Said after an error when no credentials were given (the store then looked for them
    /// in the machine's metadata service).
    hint: Option<&'static str>,
    /// How long a write is tried again after errors before it is given up.
    budget: std::time::Duration,
    clock: ClockReading,
}

/// How long a write to an object store is tried again, by default, before the run gives up on
/// the store (`TERMINUS_BATCH_STORE_BUDGET`): a blip of the store must not end a release.
pub const WRITE_BUDGET: std::time::Duration = std::time::Duration::from_secs(60);

impl fmt::Debug for Objects {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Objects").field("url", &self.url).finish_non_exhaustive()
    }
}

/// The store's own runtime. Dropped without waiting, so that the last handle may go from
/// inside another runtime.
struct IoRuntime(Option<tokio::runtime::Runtime>);

impl Drop for IoRuntime {
    fn drop(&mut self) {
        if let Some(rt) = self.0.take() {
            rt.shutdown_background();
        }
    }
}

impl IoRuntime {
    fn handle(&self) -> Option<&tokio::runtime::Handle> {
        self.0.as_ref().map(tokio::runtime::Runtime::handle)
    }
}

/// The variables starting with `prefix` that name one of a builder's settings (`K`), as the
/// builders' own `from_env` reads them (the lowercased name).
fn settings<'a, K: std::str::FromStr>(
    vars: &'a [(String, String)],
    prefix: &'static str,
) -> impl Iterator<Item = (K, &'a str)> + 'a {
    vars.iter()
        .filter(move |(k, _)| k.starts_with(prefix))
        .filter_map(|(k, v)| Some((k.to_ascii_lowercase().parse().ok()?, v.as_str())))
}

/// Whether `host` is this machine (plain http is allowed there only, as for the API).
fn loopback(host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host == "localhost" || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

impl Objects {
    /// An object store for `url`, configured from the cloud's variables in `vars`.
    pub fn open(url: &url::Url, vars: &[(String, String)]) -> Result<Self, String> {
        use object_store::aws::AmazonS3Builder;
        use object_store::azure::MicrosoftAzureBuilder;
        use object_store::gcp::GoogleCloudStorageBuilder;
        // object_store's HTTPS client finds rustls's process-wide provider: ring, the one
        // the API client uses. Installed once; a second install is refused harmlessly.
        let _already = rustls::crypto::ring::default_provider().install_default();
        let shown = url.to_string();
        // An endpoint over plain http is allowed to this machine only (a test server).
        let endpoint = vars
            .iter()
            .find(|(k, _)| tb_core::env::STATE_STORE_ENDPOINTS.contains(&k.as_str()))
            .map(|(_, v)| v.clone());
        let allow_http = match endpoint.as_deref().map(url::Url::parse) {
            Some(Ok(e)) if e.scheme() == "http" => {
                if !e.host_str().is_some_and(loopback) {
                    return Err(format!(
                        "the state store's endpoint {e} is plain http to another machine; use https (plain http is allowed to 127.0.0.1 only)"
                    ));
                }
                true
            }
            Some(Err(e)) => return Err(format!("the state store's endpoint is not a URL: {e}")),
            _ => false,
        };
        // A store that stops answering stops the run from starting work (its attempts
        // cannot be recorded): a few quick retries ride out a blip, not minutes of them.
        let retry = object_store::RetryConfig {
            backoff: object_store::BackoffConfig::default(),
            max_retries: 4,
            retry_timeout: std::time::Duration::from_secs(20),
        };
        let built: Result<Arc<dyn ObjectStore>, object_store::Error> = match url.scheme() {
            "s3" => settings(vars, tb_core::env::AWS_PREFIX)
                .fold(AmazonS3Builder::new(), |b, (key, value)| b.with_config(key, value))
                .with_url(shown.clone())
                .with_allow_http(allow_http)
                .with_retry(retry)
                .build()
                .map(|s| Arc::new(s) as _),
            "gs" => settings(vars, tb_core::env::GOOGLE_PREFIX)
                .fold(GoogleCloudStorageBuilder::new(), |b, (key, value)| b.with_config(key, value))
                .with_url(shown.clone())
                .with_retry(retry)
                .build()
                .map(|s| Arc::new(s) as _),
            "az" => settings(vars, tb_core::env::AZURE_PREFIX)
                .fold(MicrosoftAzureBuilder::new(), |b, (key, value)| b.with_config(key, value))
                .with_url(shown.clone())
                .with_allow_http(allow_http)
                .with_retry(retry)
                .build()
                .map(|s| Arc::new(s) as _),
            other => return Err(format!("the state location {shown} has the unknown scheme `{other}`")),
        };
        let inner = built.map_err(|e| format!("cannot use the state store {shown}: {e}"))?;
        let prefix = ObjectPath::from(url.path().trim_matches('/'));
        let has = |names: &[&str]| vars.iter().any(|(k, _)| names.contains(&k.as_str()));
        let hint = match url.scheme() {
            "s3" if !has(&tb_core::env::AWS_CREDENTIAL_SOURCES) => Some(
                "no AWS_ACCESS_KEY_ID (or web identity) is set, so credentials were looked for in the machine's metadata service",
            ),
            _ => None,
        };
        Self::with(inner, prefix, shown).map(|o| Self { hint, ..o })
    }

    /// A store over `inner` (the in-memory store in tests), under `prefix`.
    pub fn with(inner: Arc<dyn ObjectStore>, prefix: ObjectPath, url: String) -> Result<Self, String> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("state-store")
            .enable_all()
            .build()
            .map_err(|e| format!("cannot start the state store's runtime: {e}"))?;
        Ok(Self {
            inner,
            prefix,
            url,
            runtime: Arc::new(IoRuntime(Some(runtime))),
            hint: None,
            budget: WRITE_BUDGET,
            clock: ClockReading::default(),
        })
    }

    fn path(&self, key: &str) -> ObjectPath {
        key.split('/').filter(|p| !p.is_empty()).fold(self.prefix.clone(), |p, part| p.clone().join(part))
    }

    fn error(&self, what: &'static str, key: &str, e: &object_store::Error) -> StoreError {
        let kind = match e {
            object_store::Error::NotFound { .. } => io::ErrorKind::NotFound,
            object_store::Error::PermissionDenied { .. } | object_store::Error::Unauthenticated { .. } => {
                io::ErrorKind::PermissionDenied
            }
            _ => io::ErrorKind::Other,
        };
        let message = match self.hint {
            Some(hint) if kind != io::ErrorKind::NotFound => format!("{e} ({hint})"),
            _ => e.to_string(),
        };
        StoreError { what, location: self.locate(key), message, kind }
    }

    fn locate(&self, key: &str) -> String {
        format!("{}/{key}", self.url.trim_end_matches('/'))
    }

    /// Runs `fut` on the store's runtime and waits for it, from any thread.
    fn block<T: Send + 'static>(&self, fut: impl Future<Output = T> + Send + 'static) -> Option<T> {
        let handle = self.runtime.handle()?.spawn(fut);
        futures::executor::block_on(handle).ok()
    }

    /// Runs `fut` on the store's runtime; `None` when that runtime is gone.
    pub fn spawn(&self, fut: impl Future<Output = ()> + Send + 'static) -> Option<tokio::task::JoinHandle<()>> {
        self.runtime.handle().map(|h| h.spawn(fut))
    }

    /// Starts writing `bytes` to a new `key` on the store's runtime; the future ends with the
    /// write (a key that exists already is an error). Used by the journal's segment writer,
    /// which must not block its caller.
    pub fn spawn_create(
        &self,
        key: &str,
        bytes: Vec<u8>,
    ) -> impl Future<Output = Result<(), StoreError>> + Send + 'static + use<> {
        let (this, key) = (self.clone(), key.to_owned());
        let task = self.runtime.handle().map(|h| h.spawn(self.put_async(&key, bytes, PutMode::Create)));
        async move {
            let Some(task) = task else { return Err(this.stopped(&key)) };
            match task.await {
                Ok(Ok(Some(_))) => Ok(()),
                Ok(Ok(None)) => Err(StoreError {
                    what: "cannot write",
                    location: this.locate(&key),
                    message: "it exists already".to_owned(),
                    kind: io::ErrorKind::AlreadyExists,
                }),
                Ok(Err(e)) => Err(e),
                Err(_) => Err(this.stopped(&key)),
            }
        }
    }

    /// What a request run by [`Self::block`] came to: `None` when the runtime is gone.
    fn finish<T>(&self, key: &str, done: Option<Result<T, StoreError>>) -> Result<T, StoreError> {
        done.unwrap_or_else(|| Err(self.stopped(key)))
    }

    /// Writes `bytes` to `key` in `mode`: its version, or `None` when the condition failed
    /// (created already, changed since, or, for a conditional replace, gone since).
    ///
    /// A write's answer can be lost after the store applied it (a 5xx or a reset after the
    /// write; `object_store` then sends it again, and the condition fails on our own write).
    /// So a failed condition, and an error, are settled by reading the key back: our own bytes
    /// there mean the write was applied, and its version is adopted. The bytes of every
    /// conditional write are unique to their writer (a run id, a renewal counter, the
    /// run's own events), so they cannot be another's. Errors are tried again for
    /// [`Self::budget`]; what lasts (refused credentials, a missing bucket) is not.
    fn put_async(
        &self,
        key: &str,
        bytes: Vec<u8>,
        mode: PutMode,
    ) -> impl Future<Output = Result<Option<Version>, StoreError>> + Send + 'static + use<> {
        let (inner, path, this, key) = (Arc::clone(&self.inner), self.path(key), self.clone(), key.to_owned());
        let budget = self.budget;
        async move {
            let started = tokio::time::Instant::now();
            let expected = match &mode {
                PutMode::Update(version) => version.e_tag.clone(),
                _ => None,
            };
            let mut tries = 0_u32;
            loop {
                tries += 1;
                let opts = PutOptions { mode: mode.clone(), ..PutOptions::default() };
                let error = match inner.put_opts(&path, PutPayload::from(bytes.clone()), opts).await {
                    Ok(result) => return Ok(Some(result.e_tag.unwrap_or_default())),
                    Err(object_store::Error::AlreadyExists { .. } | object_store::Error::Precondition { .. }) => None,
                    // A conditional replace of a key that is gone; a create cannot miss its
                    // key, only its bucket, which lasts.
                    Err(object_store::Error::NotFound { .. }) if expected.is_some() => None,
                    Err(e) if lasting(&e) => return Err(this.error("cannot write", &key, &e)),
                    Err(e) => Some(e),
                };
                let back = read_back(&inner, &path).await;
                match (error, back) {
                    (_, Ok(Some((there, version)))) if there == bytes => return Ok(Some(version)),
                    // The condition failed on another's write (or on none: gone).
                    (None, Ok(_)) => return Ok(None),
                    (Some(_), Ok(None)) if expected.is_some() => return Ok(None),
                    (Some(_), Ok(Some((_, version)))) if expected.as_deref() != Some(version.as_str()) => {
                        return Ok(None);
                    }
                    // Not applied (the key is as it was), or not known: tried again.
                    (Some(e), _) | (None, Err(e)) => {
                        let spent = started.elapsed();
                        if spent >= budget {
                            let mut error = this.error("cannot write", &key, &e);
                            let spent = humantime::format_duration(std::time::Duration::from_secs(spent.as_secs()));
                            error.message = format!("{} (tried {tries} times over {spent})", error.message);
                            return Err(error);
                        }
                        let pause =
                            std::time::Duration::from_millis(250 << tries.min(5)).min(budget.saturating_sub(spent));
                        tokio::time::sleep(pause).await;
                    }
                }
            }
        }
    }

    /// The same store, trying a write again for `budget` before giving up.
    #[must_use]
    pub fn with_budget(self, budget: std::time::Duration) -> Self {
        Self { budget, ..self }
    }

    /// Removes `key` if its `ETag` is still `version`: a read of its head, then the delete.
    fn delete_if_async(
        &self,
        key: &str,
        version: &str,
    ) -> impl Future<Output = Result<(), StoreError>> + Send + 'static + use<> {
        let (inner, path, this, key, version) =
            (Arc::clone(&self.inner), self.path(key), self.clone(), key.to_owned(), version.to_owned());
        async move {
            let ours = match inner.head(&path).await {
                Ok(meta) => meta.e_tag.as_deref() == Some(version.as_str()),
                Err(object_store::Error::NotFound { .. }) => false,
                Err(e) => return Err(this.error("cannot read", &key, &e)),
            };
            if !ours {
                return Ok(());
            }
            match inner.delete(&path).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
                Err(e) => Err(this.error("cannot remove", &key, &e)),
            }
        }
    }

    fn stopped(&self, key: &str) -> StoreError {
        StoreError {
            what: "cannot reach",
            location: self.locate(key),
            message: "the state store's runtime stopped".to_owned(),
            kind: io::ErrorKind::Other,
        }
    }

    /// One listing of the prefix: the bucket exists, the credentials are taken, the endpoint
    /// answers.
    fn check(&self) -> Result<(), StoreError> {
        let (inner, prefix) = (Arc::clone(&self.inner), self.prefix.clone());
        let listed = self.block(async move { inner.list_with_delimiter(Some(&prefix)).await.map(drop) });
        let bucket = url::Url::parse(&self.url).ok().and_then(|u| u.host_str().map(str::to_owned)).unwrap_or_default();
        // A list of a missing bucket is a 404 with the store's error code in its body (S3's
        // `NoSuchBucket`, Azure's `ContainerNotFound`); `object_store` keeps it as text.
        let missing = |e: &object_store::Error| {
            matches!(e, object_store::Error::NotFound { .. }) || {
                let text = e.to_string();
                ["NoSuchBucket", "ContainerNotFound", "404 Not Found"].iter().any(|code| text.contains(code))
            }
        };
        match listed {
            Some(Ok(())) => Ok(()),
            Some(Err(e)) if missing(&e) => Err(StoreError {
                what: "cannot use",
                location: self.url.clone(),
                message: format!("the bucket `{bucket}` does not exist (or is not visible to these credentials)"),
                kind: io::ErrorKind::NotFound,
            }),
            Some(Err(e)) => {
                let mut error = self.error("cannot use", "", &e);
                error.location.clone_from(&self.url);
                Err(error)
            }
            None => Err(self.stopped("")),
        }
    }

    /// The store's time now: the `Last-Modified` of an object written for it.
    fn probe(&self, key: &str) -> Result<std::time::SystemTime, StoreError> {
        let (inner, path) = (Arc::clone(&self.inner), self.path(key));
        let read = self.block(async move {
            inner.put(&path, PutPayload::from_static(b"")).await?;
            let meta = inner.head(&path).await;
            let _removed = inner.delete(&path).await;
            meta.map(|m| system_time(m.last_modified))
        });
        match read {
            Some(Ok(time)) => Ok(time),
            Some(Err(e)) => Err(self.error("cannot write", key, &e)),
            None => Err(self.stopped(key)),
        }
    }

    fn get(&self, key: &str) -> Result<Option<Entry>, StoreError> {
        let (inner, path) = (Arc::clone(&self.inner), self.path(key));
        let got = self.block(async move {
            let got = inner.get(&path).await?;
            let version = got.meta.e_tag.clone().unwrap_or_default();
            let modified = system_time(got.meta.last_modified);
            let bytes = got.bytes().await?;
            Ok::<_, object_store::Error>((bytes, version, modified))
        });
        match got {
            Some(Ok((bytes, version, modified))) => {
                Ok(Some(Entry { bytes: bytes.to_vec(), version, modified: Some(modified) }))
            }
            Some(Err(object_store::Error::NotFound { .. })) => Ok(None),
            Some(Err(e)) => Err(self.error("cannot read", key, &e)),
            None => Err(self.stopped(key)),
        }
    }

    fn put(&self, key: &str, bytes: &[u8], mode: PutMode) -> Result<Option<Version>, StoreError> {
        self.finish(key, self.block(self.put_async(key, bytes.to_vec(), mode)))
    }

    fn delete(&self, key: &str) -> Result<(), StoreError> {
        let (inner, path) = (Arc::clone(&self.inner), self.path(key));
        match self.block(async move { inner.delete(&path).await }) {
            Some(Ok(()) | Err(object_store::Error::NotFound { .. })) => Ok(()),
            Some(Err(e)) => Err(self.error("cannot remove", key, &e)),
            None => Err(self.stopped(key)),
        }
    }

    /// `prefix`'s depth below the store's prefix, to turn object paths back into keys.
    fn key_of(&self, path: &ObjectPath) -> String {
        let skip = self.prefix.parts().count();
        path.parts().skip(skip).map(|p| p.as_ref().to_owned()).collect::<Vec<_>>().join("/")
    }

    fn list(&self, prefix: &str) -> Result<Vec<String>, StoreError> {
        let (inner, path) = (Arc::clone(&self.inner), self.path(prefix));
        let listed =
            self.block(async move { inner.list(Some(&path)).map_ok(|m| m.location).try_collect::<Vec<_>>().await });
        match listed {
            Some(Ok(paths)) => {
                let mut keys: Vec<String> = paths.iter().map(|p| self.key_of(p)).collect();
                keys.sort();
                Ok(keys)
            }
            Some(Err(e)) => Err(self.error("cannot list", prefix, &e)),
            None => Err(self.stopped(prefix)),
        }
    }

    fn children(&self, prefix: &str) -> Result<Vec<String>, StoreError> {
        let (inner, path) = (Arc::clone(&self.inner), self.path(prefix));
        match self.block(async move { inner.list_with_delimiter(Some(&path)).await }) {
            Some(Ok(listed)) => {
                Ok(listed.common_prefixes.iter().filter_map(|p| p.filename().map(str::to_owned)).collect())
            }
            Some(Err(e)) => Err(self.error("cannot list", prefix, &e)),
            None => Err(self.stopped(prefix)),
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    fn stores() -> (tempfile::TempDir, Vec<Store>) {
        let dir = tempfile::tempdir().unwrap();
        let stores = vec![Store::dir(dir.path()), Store::in_memory("team/state")];
        (dir, stores)
    }

    #[test]
    fn both_stores_create_once_replace_if_unchanged_and_list() {
        let (_dir, stores) = stores();
        for store in stores {
            let v1 = store.create("locks/a.lock", b"one").unwrap().expect("created");
            assert_eq!(store.create("locks/a.lock", b"two").unwrap(), None, "{store:?}: created twice");
            let got = store.get("locks/a.lock").unwrap().unwrap();
            assert_eq!((got.bytes.as_slice(), got.version.as_str()), (&b"one"[..], v1.as_str()));
            let v2 = store.replace("locks/a.lock", b"three", &v1).unwrap().expect("replaced");
            assert_eq!(store.replace("locks/a.lock", b"four", &v1).unwrap(), None, "{store:?}: stale version won");
            store.delete_if("locks/a.lock", &v1).unwrap();
            assert!(store.get("locks/a.lock").unwrap().is_some(), "removed by a stale version");
            store.delete_if("locks/a.lock", &v2).unwrap();
            assert!(store.get("locks/a.lock").unwrap().is_none());
            store.put("runs/r1/events/00000000.jsonl", b"h").unwrap();
            store.put("runs/r1/events/00000001.jsonl", b"e").unwrap();
            store.put("runs/r2/result.json", b"{}").unwrap();
            assert_eq!(
                store.list("runs/r1").unwrap(),
                ["runs/r1/events/00000000.jsonl", "runs/r1/events/00000001.jsonl"]
            );
            let mut runs = store.children("runs").unwrap();
            runs.sort();
            assert_eq!(runs, ["r1", "r2"]);
            assert!(store.children("nothing").unwrap().is_empty());
            store.delete("runs/r2/result.json").unwrap();
            store.delete("runs/r2/result.json").unwrap();
        }
    }

    /// An in-memory object store whose next writes fail as the test says: refused before
    /// they are applied, or applied and then answered with an error (the answer lost).
    #[derive(Debug, Default)]
    struct Faulty {
        inner: object_store::memory::InMemory,
        faults: std::sync::Mutex<std::collections::VecDeque<Fault>>,
    }

    #[derive(Clone, Copy, Debug)]
    enum Fault {
        Refused,
        AppliedThenLost,
    }

    impl std::fmt::Display for Faulty {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("Faulty")
        }
    }

    fn unavailable() -> object_store::Error {
        object_store::Error::Generic { store: "Faulty", source: "503 Service Unavailable".into() }
    }

    #[async_trait::async_trait]
    impl ObjectStore for Faulty {
        async fn put_opts(
            &self,
            location: &ObjectPath,
            payload: PutPayload,
            opts: PutOptions,
        ) -> object_store::Result<object_store::PutResult> {
            let fault = self.faults.lock().unwrap().pop_front();
            match fault {
                Some(Fault::Refused) => Err(unavailable()),
                Some(Fault::AppliedThenLost) => {
                    self.inner.put_opts(location, payload, opts).await?;
                    Err(unavailable())
                }
                None => self.inner.put_opts(location, payload, opts).await,
            }
        }
        async fn put_multipart_opts(
            &self,
            location: &ObjectPath,
            opts: object_store::PutMultipartOptions,
        ) -> object_store::Result<Box<dyn object_store::MultipartUpload>> {
            self.inner.put_multipart_opts(location, opts).await
        }
        async fn get_opts(
            &self,
            location: &ObjectPath,
            options: object_store::GetOptions,
        ) -> object_store::Result<object_store::GetResult> {
            self.inner.get_opts(location, options).await
        }
        fn delete_stream(
            &self,
            locations: futures::stream::BoxStream<'static, object_store::Result<ObjectPath>>,
        ) -> futures::stream::BoxStream<'static, object_store::Result<ObjectPath>> {
            self.inner.delete_stream(locations)
        }
        fn list(
            &self,
            prefix: Option<&ObjectPath>,
        ) -> futures::stream::BoxStream<'static, object_store::Result<object_store::ObjectMeta>> {
            self.inner.list(prefix)
        }
        async fn list_with_delimiter(
            &self,
            prefix: Option<&ObjectPath>,
        ) -> object_store::Result<object_store::ListResult> {
            self.inner.list_with_delimiter(prefix).await
        }
        async fn copy_opts(
            &self,
            from: &ObjectPath,
            to: &ObjectPath,
            options: object_store::CopyOptions,
        ) -> object_store::Result<()> {
            self.inner.copy_opts(from, to, options).await
        }
    }

    /// A store over [`Faulty`], and a handle to queue its faults.
    pub(crate) fn faulty(budget: std::time::Duration) -> (Store, impl Fn(&[(bool, usize)])) {
        let faulty = Arc::new(Faulty::default());
        let objects =
            Objects::with(Arc::clone(&faulty) as Arc<dyn ObjectStore>, ObjectPath::from("t"), "memory://t".into())
                .unwrap()
                .with_budget(budget);
        let queue = move |faults: &[(bool, usize)]| {
            let mut queued = faulty.faults.lock().unwrap();
            for &(applied, times) in faults {
                for _ in 0..times {
                    queued.push_back(if applied { Fault::AppliedThenLost } else { Fault::Refused });
                }
            }
        };
        (Store::Object(objects), queue)
    }

    #[test]
    fn a_conditional_write_whose_answer_was_lost_is_known_by_reading_it_back() {
        let (store, faults) = faulty(std::time::Duration::from_secs(30));
        // A create applied and answered with an error: its own bytes are there, so it was
        // made; the same for a replace.
        faults(&[(true, 1)]);
        let v1 = store.create("locks/a", b"mine-1").unwrap().expect("created, though its answer was lost");
        assert_eq!(store.get("locks/a").unwrap().unwrap().version, v1);
        faults(&[(true, 1)]);
        let v2 = store.replace("locks/a", b"mine-2", &v1).unwrap().expect("replaced, though its answer was lost");
        assert_eq!(store.get("locks/a").unwrap().unwrap().version, v2, "the version adopted is the one there");
        // Refused twice, then applied: tried again within the budget.
        faults(&[(false, 2)]);
        let v3 = store.replace("locks/a", b"mine-3", &v2).unwrap().expect("tried again");
        // Another's bytes there: the condition failed, whatever the errors before.
        faults(&[(false, 1)]);
        assert_eq!(store.create("locks/a", b"mine-4").unwrap(), None, "it exists, and is not this write");
        faults(&[(true, 1)]);
        store.replace("locks/a", b"theirs", &v3).unwrap().unwrap();
        assert_eq!(store.replace("locks/a", b"mine-5", &v3).unwrap(), None, "changed hands: not ours");
    }

    #[test]
    fn a_store_that_stays_unavailable_past_the_budget_says_how_long_it_was_tried() {
        let (store, faults) = faulty(std::time::Duration::from_millis(300));
        faults(&[(false, 100)]);
        let err = store.create("runs/r/events/00000001.jsonl", b"x").unwrap_err();
        assert!(err.message.contains("503 Service Unavailable"), "{err}");
        assert!(err.message.contains("times over"), "{err}");
    }

    #[test]
    fn locations_are_directories_or_known_object_store_urls() {
        assert_eq!(Location::parse("state").unwrap(), Location::Dir("state".into()));
        assert!(matches!(Location::parse("s3://bucket/team/x").unwrap(), Location::Url(_)));
        assert!(matches!(Location::parse("gs://b").unwrap(), Location::Url(_)));
        assert!(Location::parse("ftp://b/x").unwrap_err().contains("scheme `ftp`"));
        assert!(Location::parse("s3:///x").is_err());
        let remote = [("AWS_ENDPOINT_URL".to_owned(), "http://s3.example.com:9000".to_owned())];
        let err = Objects::open(&url::Url::parse("s3://b/x").unwrap(), &remote).unwrap_err();
        assert!(err.contains("plain http"), "{err}");
    }
}
