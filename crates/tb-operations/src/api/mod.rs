//! The Pantheon API client: one [`ApiClient`] per run, cheap to clone, shared by every task.
//!
//! It owns the transport (reqwest with rustls; connect and read timeouts on every request;
//! plain http only to loopback), authentication ([`auth`]: machine token → session, shared
//! with terminus's cache files, one re-login on a 401), the request rate ([`ratelimit`]: one
//! adaptive token bucket, at most `max_requests` open), safe request-level retries (GETs;
//! 429; a connection refused before anything was sent; capped exponential backoff with
//! jitter; `Retry-After` honoured; a budget of attempts and time per request), identical GETs
//! in flight at the same moment made once, paged listings ([`paging`]) and workflows
//! ([`workflows`]). Errors carry the request that failed, never a secret.
//!
//! Knows nothing of operations, plans or the executor.

pub mod auth;
pub mod error;
pub mod paging;
pub mod ratelimit;
pub mod resources;
pub mod wire;
pub mod workflows;

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use reqwest::header::{ACCEPT, CONTENT_TYPE, DATE, HeaderMap, RETRY_AFTER};
use reqwest::{Method, StatusCode, Url};
use serde::de::DeserializeOwned;
use tokio::sync::{OnceCell, Semaphore};
use tokio::time::Instant;
use tracing::{debug, trace, warn};

pub use self::auth::SessionStore;
pub use self::error::{ApiError, ApiErrorKind};
use self::ratelimit::{Priority, RateLimiter};
use self::wire::{Session, error_message};
use tb_core::secret::Secret;

/// How the client connects and how hard it pushes.
#[derive(Clone, Debug)]
pub struct ApiConfig {
    /// The API root, ending in `/api/`.
    pub base: String,
    pub connect_timeout: Duration,
    pub read_timeout: Duration,
    pub verify_tls: bool,
    pub max_requests: usize,
    pub requests_per_second: f64,
    pub burst: u32,
    /// Tries per request (1 = no retry).
    pub attempts: u32,
    /// Total time one request may take, retries and waits included.
    pub budget: Duration,
    /// First retry delay; doubles per retry, capped, with jitter.
    pub backoff: Duration,
    /// Fetch independent listings concurrently.
    pub parallel_pagination: bool,
    /// Never poll one site's workflows more often than this.
    pub poll_floor: Duration,
    /// Poll every interval from the start, as terminus does, instead of near the expected
    /// finish (for comparisons).
    pub poll_interval: Option<Duration>,
    /// An explicit machine token (`TERMINUS_MACHINE_TOKEN`); else the saved ones.
    pub machine_token: Option<Secret>,
    /// Which saved token to use (`TERMINUS_USER`).
    pub user: Option<String>,
    pub store: SessionStore,
}

/// How long the API may answer no request at all before the run takes it for gone (see
/// [`ApiClient::silence_limit`]).
pub const SILENCE_LIMIT: Duration = Duration::from_secs(30);

/// The longest single retry delay.
const BACKOFF_CAP: Duration = Duration::from_secs(30);

/// When a failed request may be sent again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Repeat {
    /// Reading: any transient failure (5xx, 408, 429, timeouts, resets).
    Safe,
    /// Acting (a workflow POST): only when the server refused it before acting (429) or the
    /// connection was refused before anything was sent.
    OnlyIfRefused,
    /// Logging in: as `OnlyIfRefused`, plus gateway errors (502-504); a 4xx or a 500 is the
    /// platform's answer about the token.
    Login,
}

/// A response: status, body, and the server's `Retry-After`.
#[derive(Clone, Debug)]
pub struct Reply {
    pub status: u16,
    pub body: Bytes,
    pub retry_after: Option<Duration>,
    pub headers: HeaderMap,
}

impl Reply {
    fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// An HTML page (a proxy's or a maintenance page) where the API answers JSON.
    fn is_html(&self) -> bool {
        let typed = self
            .headers
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|t| t.trim_start().to_ascii_lowercase().starts_with("text/html"));
        typed || self.body.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'<')
    }

    /// The body decoded as `T`.
    pub fn json<T: DeserializeOwned>(&self, label: &str) -> Result<T, ApiError> {
        let body: &[u8] = if self.body.iter().all(u8::is_ascii_whitespace) { b"null" } else { &self.body };
        serde_json::from_slice(body).map_err(|e| ApiError::new(label, ApiErrorKind::Decode { message: e.to_string() }))
    }

    /// An error status as an [`ApiError`] with the platform's message.
    fn into_result(self, label: &str) -> Result<Self, ApiError> {
        if self.status < 400 {
            return Ok(self);
        }
        Err(ApiError::new(label, status_kind(&self)))
    }
}

fn status_kind(reply: &Reply) -> ApiErrorKind {
    ApiErrorKind::Status {
        code: reply.status,
        message: truncate(&error_message(&String::from_utf8_lossy(&reply.body))),
    }
}

fn truncate(message: &str) -> String {
    const MAX: usize = 500;
    if message.len() <= MAX {
        return message.to_owned();
    }
    let mut end = MAX;
    while !message.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &message[..end])
}

/// The Pantheon API client.
#[derive(Clone)]
pub struct ApiClient {
    inner: Arc<Inner>,
    /// The class of this handle's requests at the rate limit.
    priority: Priority,
}

struct Inner {
    config: ApiConfig,
    base: Url,
    http: reqwest::Client,
    limiter: RateLimiter,
    open: Semaphore,
    auth: tokio::sync::Mutex<AuthState>,
    /// Identical GETs in flight, keyed by URL.
    inflight: Mutex<HashMap<String, SharedReply>>,
    /// Site name → id, for the run (`None`: no such site).
    names: Mutex<HashMap<String, KnownName>>,
    /// Site objects read during the run (resolution's listings and look-ups), by id: a site is
    /// read once per run.
    sites: Mutex<HashMap<String, wire::Site>>,
    /// Workflow ids started or adopted by this run, so no two tasks claim the same one.
    claimed: Mutex<HashSet<String>>,
    /// Requests sent (attempts), for reports and tests.
    sent: AtomicU64,
    /// The platform's clock minus ours, in milliseconds, from the newest `Date` header
    /// (`i64::MIN` until one is seen): adoption compares times in the platform's clock.
    clock_offset_ms: AtomicI64,
    /// The same, measured from a workflow this run started: its `created_at` (the platform's
    /// own clock) against when the POST went out. Preferred to the `Date` header, which
    /// whatever sits in front of the platform (a proxy, a CDN's edge) may stamp with its own
    /// clock (`i64::MIN` until measured).
    workflow_clock_ms: AtomicI64,
    trace_id: String,
    /// Since when no request has had any answer (the API down or cut off).
    health: Health,
}

/// Whether the API answers: the time since which every request failed without any answer
/// (refused, timed out, cut), cleared by any answer at all, whatever its status.
#[derive(Default)]
struct Health {
    silent_since: Mutex<Option<Instant>>,
}

impl Health {
    fn observe(&self, outcome: &Result<Reply, ApiErrorKind>) {
        let mut since = lock(&self.silent_since);
        match outcome {
            Ok(_) => *since = None,
            Err(ApiErrorKind::Connect { .. } | ApiErrorKind::Timeout { .. } | ApiErrorKind::Dropped { .. }) => {
                since.get_or_insert_with(Instant::now);
            }
            Err(_) => {}
        }
    }
}

/// One GET's outcome, awaited by every caller that asked for the same URL meanwhile.
type SharedReply = Arc<OnceCell<Result<Reply, ApiError>>>;

/// A site name looked up during this run.
#[derive(Clone, Debug)]
pub(crate) enum KnownName {
    Id(String),
    Missing,
}

#[derive(Default)]
struct AuthState {
    session: Option<Session>,
    /// Bumped on every login, so concurrent 401s cause one re-login.
    generation: u64,
    disk_checked: bool,
}

impl std::fmt::Debug for ApiClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiClient").field("base", &self.inner.config.base).finish_non_exhaustive()
    }
}

/// Seconds since the Unix epoch, as the API writes times.
#[must_use]
pub fn unix_now() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64())
}

impl ApiClient {
    /// Builds a client.
    ///
    /// # Errors
    /// A base URL that does not parse, or plain http to a host that is not loopback.
    pub fn new(config: ApiConfig) -> Result<Self, ApiError> {
        let label = config.base.clone();
        let bad = |message: String| ApiError::new(label.clone(), ApiErrorKind::Config { message });
        let base = Url::parse(&config.base).map_err(|e| bad(format!("not a URL: {e}")))?;
        match base.scheme() {
            "https" => {}
            "http" if is_loopback(&base) => {}
            "http" => {
                return Err(bad(
                    "refusing plain http to a host that is not loopback: the session would travel in clear; use https"
                        .to_owned(),
                ));
            }
            other => return Err(bad(format!("unsupported protocol `{other}`; use https"))),
        }
        // reqwest's rustls finds the process-wide provider: ring, as the state store's.
        let _already = rustls::crypto::ring::default_provider().install_default();
        let http = reqwest::Client::builder()
            .user_agent(concat!("terminus-batch/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(config.connect_timeout)
            .danger_accept_invalid_certs(!config.verify_tls)
            .https_only(base.scheme() == "https")
            .redirect(reqwest::redirect::Policy::limited(5))
            .build()
            .map_err(|e| bad(format!("cannot set up HTTPS: {}", chain(&e))))?;
        let trace_id = format!("{:016x}{:016x}", fastrand::u64(..), fastrand::u64(..));
        Ok(Self {
            inner: Arc::new(Inner {
                limiter: RateLimiter::new(config.requests_per_second, config.burst),
                open: Semaphore::new(config.max_requests.max(1)),
                config,
                base,
                http,
                auth: tokio::sync::Mutex::new(AuthState::default()),
                inflight: Mutex::new(HashMap::new()),
                names: Mutex::new(HashMap::new()),
                sites: Mutex::new(HashMap::new()),
                claimed: Mutex::new(HashSet::new()),
                sent: AtomicU64::new(0),
                clock_offset_ms: AtomicI64::new(i64::MIN),
                workflow_clock_ms: AtomicI64::new(i64::MIN),
                trace_id,
                health: Health::default(),
            }),
            priority: Priority::Work,
        })
    }

    /// The same client, whose requests yield the rate limit to every waiting work request
    /// (the shared poller's; see [`ratelimit`]).
    #[must_use]
    pub fn background(self) -> Self {
        Self { priority: Priority::Background, ..self }
    }

    #[must_use]
    pub fn config(&self) -> &ApiConfig {
        &self.inner.config
    }

    /// Requests sent so far, retries included.
    #[must_use]
    pub fn requests_sent(&self) -> u64 {
        self.inner.sent.load(Ordering::Relaxed)
    }

    /// The id this run's requests carry (`X-Pantheon-Trace-Id`), and its remote commands
    /// (`TRACE_ID`), so the platform's logs tie them to the run.
    #[must_use]
    pub fn trace_id(&self) -> &str {
        &self.inner.trace_id
    }

    /// How long every request has failed without any answer from the API (refused, timed
    /// out, cut off), or `None` while it answers.
    #[must_use]
    pub fn silent_for(&self) -> Option<Duration> {
        lock(&self.inner.health.silent_since).map(|since| since.elapsed())
    }

    /// How long the API may answer nothing before it is taken for gone: [`SILENCE_LIMIT`],
    /// or the request budget if shorter (no request could succeed within it by then).
    #[must_use]
    pub fn silence_limit(&self) -> Duration {
        SILENCE_LIMIT.min(self.inner.config.budget)
    }

    /// How long the API has answered nothing, once that is past [`Self::silence_limit`].
    #[must_use]
    pub fn gone_silent(&self) -> Option<Duration> {
        self.silent_for().filter(|silent| *silent >= self.silence_limit())
    }

    /// Whether the request rate binds now, and how long a request would wait for it (see
    /// [`ratelimit::RateLimiter::pressure`]).
    #[must_use]
    pub fn request_pressure(&self) -> Option<Duration> {
        self.inner.limiter.pressure()
    }

    /// The request rate now (it drops after 429s and recovers).
    #[must_use]
    pub fn current_rate(&self) -> f64 {
        self.inner.limiter.rate()
    }

    /// `{base}/api/` + segments (each percent-encoded) + query.
    fn url(&self, segments: &[&str], query: &[(&str, &str)]) -> Url {
        let mut url = self.inner.base.clone();
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty().extend(segments);
        }
        if !query.is_empty() {
            url.query_pairs_mut().extend_pairs(query);
        }
        url
    }

    // ---- transport -------------------------------------------------------------------

    /// Sends one request with the retry policy of `repeat`, the rate limit and the open
    /// request bound. Any status comes back as a [`Reply`]; transport failures and spent
    /// budgets as errors.
    async fn transmit(
        &self,
        method: &Method,
        url: &Url,
        body: Option<&[u8]>,
        bearer: Option<&Secret>,
        repeat: Repeat,
    ) -> Result<Reply, ApiError> {
        let label = request_label(method, url);
        let config = &self.inner.config;
        // The budget runs from the first send: a wait for the rate before it is the run's
        // pace, not this request's trouble.
        let mut first_sent: Option<Instant> = None;
        // Attempts that count against the budget: a 429 (or a 503 with Retry-After) is the
        // server pacing us, bounded by time only (DESIGN.md §5).
        let mut attempt = 0;
        let mut tries = 0;
        loop {
            attempt += 1;
            tries += 1;
            self.inner.limiter.acquire(self.priority).await;
            let outcome = {
                let _permit = self.inner.open.acquire().await.map_err(|_| {
                    ApiError::new(&label, ApiErrorKind::Config { message: "the client is shutting down".to_owned() })
                })?;
                self.inner.sent.fetch_add(1, Ordering::Relaxed);
                trace!(request = %label, attempt, "sending");
                let began = *first_sent.get_or_insert_with(Instant::now);
                // No attempt outlives the request's budget, whatever the read timeout.
                let left = config.budget.saturating_sub(began.elapsed()).max(Duration::from_millis(1));
                let sent = tokio::time::timeout(left, self.send_once(method, url, body, bearer)).await;
                let outcome = sent.unwrap_or(Err(ApiErrorKind::Timeout { after: left }));
                self.inner.health.observe(&outcome);
                outcome
            };
            let (retry, wait) = match &outcome {
                Ok(reply) => {
                    let status = reply.status;
                    // A 429 (or a 503 that says when to come back) is the server pacing us:
                    // halve the rate. A bare 503 is a failure more than a verdict on our
                    // pace: ease off a little.
                    if status == 429 || (status == 503 && reply.retry_after.is_some()) {
                        self.inner.limiter.slow_down(reply.retry_after);
                    } else if status == 503 {
                        self.inner.limiter.ease_off();
                    }
                    let retry = match status {
                        429 => true,
                        502..=504 => repeat != Repeat::OnlyIfRefused,
                        408 | 500..=599 => repeat == Repeat::Safe,
                        // A page from a proxy instead of the API's answer: for a read, as a 5xx.
                        200..=299 => repeat == Repeat::Safe && reply.is_html(),
                        _ => false,
                    };
                    (retry, reply.retry_after.unwrap_or_else(|| backoff(config.backoff, attempt)))
                }
                Err(ApiErrorKind::Connect { .. }) => (true, backoff(config.backoff, attempt)),
                Err(ApiErrorKind::Timeout { .. } | ApiErrorKind::Dropped { .. }) => {
                    (repeat == Repeat::Safe, backoff(config.backoff, attempt))
                }
                Err(_) => (false, Duration::ZERO),
            };
            if !retry {
                return outcome.map_err(|kind| ApiError::new(&label, kind));
            }
            let paced = matches!(&outcome, Ok(r) if r.status == 429 || (r.status == 503 && r.retry_after.is_some()));
            if paced {
                attempt -= 1;
            }
            let last = match outcome {
                Ok(reply) => status_kind(&reply),
                Err(kind) => kind,
            };
            let spent = first_sent.map_or(Duration::ZERO, |t| t.elapsed());
            if attempt >= config.attempts || spent + wait > config.budget {
                debug!(request = %label, attempts = tries, "giving up: {last}");
                return Err(ApiError::new(&label, ApiErrorKind::Exhausted { attempts: tries, last: Box::new(last) }));
            }
            debug!(request = %label, attempt = tries, wait = ?wait, "retrying after: {last}");
            tokio::time::sleep(wait).await;
        }
    }

    async fn send_once(
        &self,
        method: &Method,
        url: &Url,
        body: Option<&[u8]>,
        bearer: Option<&Secret>,
    ) -> Result<Reply, ApiErrorKind> {
        let read_timeout = self.inner.config.read_timeout;
        let mut request = self
            .inner
            .http
            .request(method.clone(), url.clone())
            .header(ACCEPT, "application/json")
            .header("X-Pantheon-Trace-Id", &self.inner.trace_id)
            .timeout(read_timeout);
        if let Some(token) = bearer {
            // reqwest marks the header sensitive, so it is never printed either.
            request = request.bearer_auth(token.expose());
        }
        if let Some(bytes) = body {
            request = request.header(CONTENT_TYPE, "application/json").body(bytes.to_vec());
        }
        let response = request.send().await.map_err(|e| transport_kind(&e, read_timeout))?;
        let status = response.status().as_u16();
        let retry_after = retry_after(response.headers());
        let headers = response.headers().clone();
        self.observe_date(&headers);
        let body = response.bytes().await.map_err(|e| transport_kind(&e, read_timeout))?;
        trace!(status, bytes = body.len(), "answered");
        Ok(Reply { status, body, retry_after, headers })
    }

    /// Learns the platform's clock from a `Date` header (whole seconds).
    fn observe_date(&self, headers: &HeaderMap) {
        let Some(date) = headers.get(DATE).and_then(|v| v.to_str().ok()) else { return };
        let Ok(platform) = httpdate::parse_http_date(date) else { return };
        let Ok(platform) = platform.duration_since(UNIX_EPOCH) else { return };
        let offset = (platform.as_secs_f64() - unix_now()) * 1000.0;
        if offset.is_finite() {
            #[expect(clippy::cast_possible_truncation, reason = "a clock offset in milliseconds")]
            self.inner.clock_offset_ms.store(offset as i64, Ordering::Relaxed);
        }
    }

    /// Learns the platform's clock from a workflow started by a POST sent at `sent` and
    /// answered at `answered` (our clock, unix seconds): it was created in between.
    pub(crate) fn observe_workflow_clock(&self, created_at: f64, sent: f64, answered: f64) {
        let offset = (created_at - f64::midpoint(sent, answered)) * 1000.0;
        if offset.is_finite() {
            #[expect(clippy::cast_possible_truncation, reason = "a clock offset in milliseconds")]
            self.inner.workflow_clock_ms.store(offset as i64, Ordering::Relaxed);
        }
    }

    /// The platform's clock minus ours, in seconds (0 before any answer): as a workflow this
    /// run started measured it, else as the `Date` headers tell (whole seconds, so up to a
    /// second low, and only as right as whatever stamps them).
    #[must_use]
    pub fn platform_clock_offset(&self) -> f64 {
        let measured = self.inner.workflow_clock_ms.load(Ordering::Relaxed);
        let ms = if measured == i64::MIN { self.inner.clock_offset_ms.load(Ordering::Relaxed) } else { measured };
        match ms {
            i64::MIN => 0.0,
            #[expect(clippy::cast_precision_loss, reason = "milliseconds of clock skew")]
            ms => ms as f64 / 1000.0,
        }
    }

    // ---- authentication ----------------------------------------------------------------

    /// The session to send: the one in use, else the saved one if still valid, else a new
    /// login. Returns it with its generation.
    async fn session(&self) -> Result<(Secret, u64), ApiError> {
        let mut state = self.inner.auth.lock().await;
        if let Some(session) = &state.session {
            return Ok((session.session.clone(), state.generation));
        }
        // A token the user named (TERMINUS_MACHINE_TOKEN, --machine-token) is who this run
        // acts as: a saved session, perhaps another user's, is never used in its place.
        if !state.disk_checked && self.inner.config.machine_token.is_none() {
            state.disk_checked = true;
            if let Some(saved) = self.inner.config.store.read_session().await {
                // An expired saved session means logging in again (terminus does the same).
                #[expect(clippy::cast_possible_truncation, reason = "unix seconds fit in i64 for centuries")]
                if saved.expires_at >= unix_now() as i64 {
                    debug!(user = %saved.user_id, "using the saved session");
                    let token = saved.session.clone();
                    state.session = Some(saved);
                    return Ok((token, state.generation));
                }
            }
        }
        let session = self.login_locked().await?;
        state.generation += 1;
        let token = session.session.clone();
        state.session = Some(session);
        Ok((token, state.generation))
    }

    /// Logs in again after a 401, unless another request already did since `seen`.
    async fn relogin(&self, seen: u64) -> Result<(Secret, u64), ApiError> {
        let mut state = self.inner.auth.lock().await;
        if state.generation == seen {
            debug!("session refused (401): logging in again");
            let session = self.login_locked().await?;
            state.generation += 1;
            state.session = Some(session);
        }
        let session = state.session.as_ref().map(|s| s.session.clone()).unwrap_or_default();
        Ok((session, state.generation))
    }

    /// `POST authorize/machine-token` with the configured or saved token; saves the session.
    /// A session already expired when issued is still used for this run: no login loop.
    async fn login_locked(&self) -> Result<Session, ApiError> {
        let config = &self.inner.config;
        let token = match &config.machine_token {
            // Only `auth login` writes terminus's files: a session from a token named for
            // this run stays in memory, and terminus's saved login is left as it was.
            Some(token) => return self.login_with(token).await,
            None => match config.store.read_token(config.user.as_deref()).await {
                Ok(Some(saved)) => saved.token,
                Ok(None) => {
                    return Err(ApiError::new(
                        "login",
                        ApiErrorKind::Auth {
                            message: "not logged in: set TERMINUS_MACHINE_TOKEN, or run `terminus-batch auth login` \
                                      (terminus's saved login works too)"
                                .to_owned(),
                        },
                    ));
                }
                Err(e) => return Err(ApiError::new("login", ApiErrorKind::Auth { message: e.to_string() })),
            },
        };
        let session = self.login_with(&token).await?;
        if let Err(e) = config.store.write_session(&session).await {
            warn!("cannot save the session ({e}); continuing with it in memory");
        }
        Ok(session)
    }

    /// Exchanges a machine token for a session, without saving anything.
    ///
    /// # Errors
    /// The platform refusing the token (any 4xx or a 500) is an authentication failure.
    pub async fn login_with(&self, token: &Secret) -> Result<Session, ApiError> {
        let url = self.url(&["authorize", "machine-token"], &[]);
        let body = serde_json::json!({ "machine_token": token.expose(), "client": "terminus" });
        let bytes = serde_json::to_vec(&body).map_err(|e| {
            ApiError::new("POST /api/authorize/machine-token", ApiErrorKind::Decode { message: e.to_string() })
        })?;
        let label = request_label(&Method::POST, &url);
        let reply = self.transmit(&Method::POST, &url, Some(&bytes), None, Repeat::Login).await?;
        if !reply.is_success() {
            let message = error_message(&String::from_utf8_lossy(&reply.body));
            let message = if message.is_empty() { format!("HTTP {}", reply.status) } else { truncate(&message) };
            return Err(ApiError::new(
                label,
                ApiErrorKind::Auth { message: format!("{message} (HTTP {})", reply.status) },
            ));
        }
        let session: Session = reply.json(&label)?;
        debug!(user = %session.user_id, expires_at = session.expires_at, "logged in");
        Ok(session)
    }

    /// The logged-in user's id (logging in if needed).
    pub async fn user_id(&self) -> Result<String, ApiError> {
        self.session().await?;
        let state = self.inner.auth.lock().await;
        Ok(state.session.as_ref().map(|s| s.user_id.clone()).unwrap_or_default())
    }

    /// Forgets the session in memory (the next request logs in).
    pub async fn forget_session(&self) {
        let mut state = self.inner.auth.lock().await;
        state.session = None;
        state.disk_checked = true;
    }

    /// A request with the session, re-logging in once on a 401.
    async fn authed(&self, method: &Method, url: &Url, body: Option<&[u8]>, repeat: Repeat) -> Result<Reply, ApiError> {
        let (session, generation) = self.session().await?;
        let reply = self.transmit(method, url, body, Some(&session), repeat).await?;
        if reply.status != 401 {
            return Ok(reply);
        }
        let (session, _) = self.relogin(generation).await?;
        self.transmit(method, url, body, Some(&session), repeat).await
    }

    // ---- JSON helpers ------------------------------------------------------------------

    /// `GET` a path; identical GETs in flight at the same moment are sent once and shared.
    pub async fn get_reply(&self, segments: &[&str], query: &[(&str, &str)]) -> Result<Reply, ApiError> {
        let url = self.url(segments, query);
        let key = url.to_string();
        let cell = {
            let mut inflight = lock(&self.inner.inflight);
            Arc::clone(inflight.entry(key.clone()).or_default())
        };
        let result = cell.get_or_init(|| self.authed(&Method::GET, &url, None, Repeat::Safe)).await.clone();
        {
            let mut inflight = lock(&self.inner.inflight);
            if inflight.get(&key).is_some_and(|c| Arc::ptr_eq(c, &cell)) {
                inflight.remove(&key);
            }
        }
        result?.into_result(&request_label(&Method::GET, &url))
    }

    /// `GET` a path and decode it.
    pub async fn get<T: DeserializeOwned>(&self, segments: &[&str], query: &[(&str, &str)]) -> Result<T, ApiError> {
        let url = self.url(segments, query);
        self.get_reply(segments, query).await?.json(&request_label(&Method::GET, &url))
    }

    /// Sends a request with a JSON body (or none); error statuses become errors.
    pub async fn send(
        &self,
        method: Method,
        segments: &[&str],
        query: &[(&str, &str)],
        body: Option<&serde_json::Value>,
        repeat: Repeat,
    ) -> Result<Reply, ApiError> {
        let url = self.url(segments, query);
        let label = request_label(&method, &url);
        let bytes = body
            .map(serde_json::to_vec)
            .transpose()
            .map_err(|e| ApiError::new(&label, ApiErrorKind::Decode { message: e.to_string() }))?;
        self.authed(&method, &url, bytes.as_deref(), repeat).await?.into_result(&label)
    }

    /// Starts downloading a signed URL from `offset` (a Range request when past 0): no
    /// session header, outside the API's request rate (DESIGN.md §3.5). The URL is never
    /// shown: errors name its path only.
    pub async fn download(&self, url: &Secret, offset: u64) -> Result<reqwest::Response, ApiError> {
        let parsed = Url::parse(url.expose())
            .map_err(|_| ApiError::new("GET <signed URL>", ApiErrorKind::Config { message: "not a URL".to_owned() }))?;
        let label = request_label(&Method::GET, &parsed);
        // No whole-request timeout: a large file takes as long as it takes; the reader times
        // out a stalled chunk instead.
        let mut request = self.inner.http.get(parsed);
        if offset > 0 {
            request = request.header(reqwest::header::RANGE, format!("bytes={offset}-"));
        }
        request.send().await.map_err(|e| ApiError::new(label, transport_kind(&e, self.inner.config.read_timeout)))
    }

    /// A paged collection (pantheon-api.md §2), every item decoded as `T`.
    pub async fn paged<T: DeserializeOwned>(&self, segments: &[&str]) -> Result<Vec<T>, ApiError> {
        let url = self.url(segments, &[]);
        let label = request_label(&Method::GET, &url);
        let limit = paging::PAGE_LIMIT.to_string();
        paging::collect_as(
            &label,
            |cursor| {
                let limit = limit.clone();
                async move {
                    let mut query = vec![("limit", limit.as_str())];
                    if let Some(start) = cursor.as_deref() {
                        query.push(("start", start));
                    }
                    self.get::<serde_json::Value>(segments, &query).await
                }
            },
            |item| serde_json::from_value(item).map_err(|e| e.to_string()),
        )
        .await
    }

    /// Claims a workflow id for one task; false when another task already has it.
    fn claim(&self, workflow_id: &str) -> bool {
        lock(&self.inner.claimed).insert(workflow_id.to_owned())
    }

    fn is_claimed(&self, workflow_id: &str) -> bool {
        lock(&self.inner.claimed).contains(workflow_id)
    }

    /// Marks workflows an earlier run of the resume chain recorded as taken: a search for
    /// what a lost POST started never adopts one of them.
    pub fn claim_known(&self, workflow_ids: impl IntoIterator<Item = String>) {
        lock(&self.inner.claimed).extend(workflow_ids);
    }

    /// Keeps site objects read elsewhere (listings) for [`ApiClient::site`], and their names
    /// for the name look-up.
    pub fn remember_sites(&self, sites: impl IntoIterator<Item = (String, wire::Site)>) {
        let mut known = lock(&self.inner.sites);
        let mut names = lock(&self.inner.names);
        for (id, site) in sites {
            names.entry(site.name.clone()).or_insert_with(|| KnownName::Id(id.clone()));
            known.insert(id, site);
        }
    }

    fn known_site(&self, site_id: &str) -> Option<wire::Site> {
        lock(&self.inner.sites).get(site_id).cloned()
    }

    fn cached_name(&self, name: &str) -> Option<KnownName> {
        lock(&self.inner.names).get(name).cloned()
    }

    fn cache_name(&self, name: &str, id: Option<String>) {
        lock(&self.inner.names).insert(name.to_owned(), id.map_or(KnownName::Missing, KnownName::Id));
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // The guarded maps stay consistent between statements, so a panic elsewhere leaves
    // nothing half-written.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// `METHOD /path?query`, as shown in errors and logs. Absolute URLs outside the API (signed
/// downloads) show no query, which holds the signature.
fn request_label(method: &Method, url: &Url) -> String {
    let query = url.query().filter(|q| !q.contains("Signature") && !q.contains("signature"));
    match query {
        Some(q) => format!("{method} {}?{q}", url.path()),
        None => format!("{method} {}", url.path()),
    }
}

fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => IpAddr::V4(ip).is_loopback(),
        Some(url::Host::Ipv6(ip)) => IpAddr::V6(ip).is_loopback(),
        None => false,
    }
}

/// Retry delay number `attempt` (1-based), capped for requests.
pub(super) fn backoff(base: Duration, attempt: u32) -> Duration {
    tb_core::backoff::delay(base, attempt, BACKOFF_CAP)
}

/// `Retry-After` in seconds. Fractions are accepted (the simulator's scaled time sends
/// them); HTTP dates are not used by the platform and are ignored.
fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let value = headers.get(RETRY_AFTER)?.to_str().ok()?.trim().parse::<f64>().ok()?;
    (value.is_finite() && value >= 0.0).then(|| Duration::from_secs_f64(value.min(3600.0)))
}

fn transport_kind(e: &reqwest::Error, read_timeout: Duration) -> ApiErrorKind {
    let message = chain(e);
    if e.is_timeout() {
        ApiErrorKind::Timeout { after: read_timeout }
    } else if e.is_connect() {
        let tls = ["certificate", "InvalidContentType", "handshake", "corrupt message", "tls", "TLS"]
            .iter()
            .any(|needle| message.contains(needle));
        let message = message
            .replace("error sending request: ", "")
            .replace("client error (Connect): ", "")
            .replace("tcp connect error: ", "");
        let message = if tls {
            format!("TLS handshake failed ({message}); check TERMINUS_PROTOCOL and the server's certificate")
        } else {
            message
        };
        ApiErrorKind::Connect { message }
    } else if e.is_builder() || e.is_redirect() {
        ApiErrorKind::Config { message }
    } else {
        ApiErrorKind::Dropped { message }
    }
}

/// An error and its causes, without the URL reqwest puts in its own message.
fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut current: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = current {
        let text = err.to_string();
        let text = match text.split_once(" for url (") {
            Some((head, _)) => head.to_owned(),
            None => text,
        };
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        current = err.source();
    }
    parts.join(": ")
}

/// Is this status a success?
#[must_use]
pub fn is_success(status: u16) -> bool {
    StatusCode::from_u16(status).is_ok_and(|s| s.is_success())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_hide_signatures() {
        let url = Url::parse("https://s3.example/b/f.tgz?Signature=abc&Expires=1").unwrap();
        assert_eq!(request_label(&Method::GET, &url), "GET /b/f.tgz");
        let url = Url::parse("https://h/api/x?limit=100").unwrap();
        assert_eq!(request_label(&Method::GET, &url), "GET /api/x?limit=100");
    }

    /// A configuration for unit tests: one request at a time, no retries, no saved login.
    pub(crate) fn config(base: &str) -> ApiConfig {
        ApiConfig {
            base: base.to_owned(),
            connect_timeout: Duration::from_secs(1),
            read_timeout: Duration::from_secs(1),
            verify_tls: true,
            max_requests: 1,
            requests_per_second: 1.0,
            burst: 1,
            attempts: 1,
            budget: Duration::from_secs(1),
            backoff: Duration::ZERO,
            parallel_pagination: true,
            poll_floor: Duration::from_secs(1),
            poll_interval: None,
            machine_token: None,
            user: None,
            store: SessionStore::Memory,
        }
    }

    #[test]
    fn plain_http_only_to_loopback() {
        assert!(ApiClient::new(config("http://127.0.0.1:9/api/")).is_ok());
        assert!(ApiClient::new(config("http://localhost:9/api/")).is_ok());
        let err = ApiClient::new(config("http://example.com/api/")).unwrap_err();
        assert!(err.to_string().contains("refusing plain http"), "{err}");
        assert!(ApiClient::new(config("ftp://example.com/api/")).is_err());
    }
}
