//! The simulator's HTTP server (hyper, HTTP/1.1, 127.0.0.1 only): reads a request,
//! classifies it, applies latency, the rate limit and faults, answers it from the state, and
//! counts everything for `GET /__sim/stats`.
#![allow(
    clippy::cast_possible_truncation,
    clippy::cast_precision_loss,
    clippy::cast_sign_loss,
    reason = "unix times, sizes and counters become JSON numbers; all far from the limits"
)]

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, Limited, StreamBody};
use hyper::body::Frame;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use serde::Serialize;
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::task::{JoinHandle, JoinSet};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::knobs::{FaultRule, Knobs, roll};
use super::routes::{Answer, Ctx, Route, answer, session_user};
use super::state::SimState;
use super::world::World;

/// What the simulator counted, from the server's side.
#[derive(Clone, Debug, Default, Serialize, serde::Deserialize, PartialEq)]
pub struct Stats {
    /// `METHOD route` → status → count.
    pub requests: BTreeMap<String, BTreeMap<u16, u64>>,
    pub requests_total: u64,
    /// `site.env.type` (env empty for site-wide workflows) → workflows started.
    pub workflows_started: BTreeMap<String, u64>,
    pub workflows_total: u64,
    pub peak_concurrent_requests: u64,
    pub peak_in_flight_workflows: u64,
    /// 429 answers.
    pub rate_limited: u64,
    /// Injected faults by kind (`500`, `drop`, `workflow_failed`, …).
    pub faults: BTreeMap<String, u64>,
    pub logins: u64,
    /// Seconds from the first API request's arrival to the last one's answer, as the
    /// platform saw them (real seconds divided by the time scale).
    pub elapsed: f64,
    /// The sum of the run times of the workflows started (platform seconds).
    pub workflow_seconds: f64,
    /// The largest sum of run times on one site (platform seconds): the shortest a run can
    /// take when a site runs one workflow at a time.
    pub longest_site_seconds: f64,
    /// The shortest run time of a workflow started (platform seconds; 0 with none): no
    /// workflow is seen finished sooner after its start.
    pub shortest_workflow_seconds: f64,
    /// The sum over finished workflows of the time from their finish to the first read that
    /// showed it (platform seconds): what waiting on them cost past their run time.
    #[serde(default)]
    pub unseen_seconds: f64,
    /// Remote commands (drush, wp) the app servers ran.
    #[serde(default)]
    pub remote_commands: u64,
    /// Page requests the environments' sites answered (health checks included).
    #[serde(default)]
    pub site_requests: u64,
}

impl Stats {
    /// Requests answered for one `METHOD route`, any status.
    #[must_use]
    pub fn count(&self, method_route: &str) -> u64 {
        self.requests.get(method_route).map_or(0, |by| by.values().sum())
    }
}

/// One request as received, for tests that check what the client sent.
#[derive(Clone, Debug, Serialize)]
pub struct RecordedRequest {
    pub method: String,
    pub path: String,
    pub query: Vec<(String, String)>,
    /// The JSON body (the machine token of a login is replaced by `<redacted>`).
    pub body: Option<Value>,
    pub status: u16,
}

struct Shared {
    state: Mutex<SimState>,
    knobs: Knobs,
    stats: Mutex<Stats>,
    /// The newest requests, when recording (`None`: not recorded, for `--simulate` runs).
    log: Option<Mutex<VecDeque<RecordedRequest>>>,
    started: Instant,
    unix_at_start: f64,
    active: AtomicU64,
    rule_hits: Mutex<Vec<u32>>,
    per_path: Mutex<HashMap<String, u64>>,
    bucket: Mutex<(f64, Instant)>,
    origin: String,
    /// When the first API request arrived and the last one ended.
    busy: Mutex<Option<(Instant, Instant)>>,
}

/// Recorded requests kept at most (the oldest are dropped).
const LOG_LIMIT: usize = 100_000;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // State updates complete between statements; a panic elsewhere leaves nothing half-done.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Shared {
    fn now(&self) -> f64 {
        self.unix_at_start + self.started.elapsed().as_secs_f64()
    }

    /// The counters, with the times derived from the workflows started so far.
    fn stats(&self) -> Stats {
        let mut stats = lock(&self.stats).clone();
        let scale = self.knobs.time_scale;
        let mut by_site: HashMap<&str, f64> = HashMap::new();
        let mut shortest: Option<f64> = None;
        let state = lock(&self.state);
        for wf in state.workflows.iter().filter(|w| w.created_at >= self.unix_at_start) {
            let run_time = (wf.finish_at - wf.started_at) / scale;
            *by_site.entry(&wf.site_id).or_default() += run_time;
            shortest = Some(shortest.map_or(run_time, |s| s.min(run_time)));
            stats.unseen_seconds += wf.seen_finished.map_or(0.0, |seen| (seen - wf.finish_at) / scale);
        }
        stats.shortest_workflow_seconds = shortest.unwrap_or(0.0);
        stats.workflow_seconds = by_site.values().sum();
        stats.longest_site_seconds = by_site.values().copied().fold(0.0, f64::max);
        stats.elapsed = lock(&self.busy).map_or(0.0, |(first, last)| (last - first).as_secs_f64() / scale);
        stats
    }
}

/// A running simulator.
pub struct Simulator {
    addr: SocketAddr,
    shared: Arc<Shared>,
    cancel: CancellationToken,
    accept: Option<JoinHandle<()>>,
    ssh: super::ssh::SshEndpoint,
    sites: super::sites::SiteAccess,
}

/// Whether `url` is on `host`: a site does not redirect its own target to itself.
fn redirects_to(url: &str, host: &str) -> bool {
    url::Url::parse(url).ok().and_then(|u| u.host_str().map(|h| h.eq_ignore_ascii_case(host))).unwrap_or(false)
}

/// The world's environments as sites, by host name.
struct Sites(Arc<Shared>);

impl super::sites::Sites for Sites {
    fn page(&self, host: &str, path: &str) -> super::sites::Page {
        let shared = &self.0;
        let now = shared.now();
        let mut state = lock(&shared.state);
        state.advance(now);
        lock(&shared.stats).site_requests += 1;
        let page = |status: u16, body: &str| super::sites::Page {
            status,
            body: body.to_owned(),
            headers: Vec::new(),
            delay: Duration::ZERO,
        };
        let found = state.sites.values().find_map(|s| {
            s.envs
                .iter()
                .find(|(env, e)| {
                    format!("{env}-{}.pantheonsite.io", s.name) == host || e.domains.iter().any(|(d, _)| d == host)
                })
                .map(|(env, e)| (s, env, e))
        });
        let Some((site, env, e)) = found else { return page(404, "Unknown site!") };
        if !e.initialized {
            return page(404, "The environment has not been initialized.");
        }
        if path == "/pantheon_healthcheck" {
            let mut ok = page(200, "OK");
            ok.headers.push(("X-Pantheon-Styx-Hostname", format!("styx-{}-{env}.simulated", site.name)));
            return ok;
        }
        // Real seconds, not scaled: the time scale compresses the platform's work (workflows,
        // warm-ups), while a page's latency is what a check measures and bounds in real time.
        let delay = Duration::try_from_secs_f64(e.site.http.latency).unwrap_or_default();
        let mut answer = if e.site.warm_at > now {
            page(503, "The site is warming up.")
        } else if e.site.broken {
            page(
                500,
                "<html><body><h1>Internal Server Error</h1><p>The website encountered an unexpected error.</p></body></html>",
            )
        } else if let Some(to) = e.site.http.redirect.as_ref().filter(|to| path == "/" && !redirects_to(to, host)) {
            let mut moved = page(301, "Moved Permanently");
            moved.headers.push(("Location", to.clone()));
            moved
        } else {
            let body = e.site.http.body.clone().unwrap_or_else(|| {
                format!(
                    "<html><head><title>{}</title></head><body><h1>Welcome to {}</h1><p>{env}</p></body></html>",
                    site.label, site.label
                )
            });
            page(e.site.http.status, &body)
        };
        answer.delay = delay;
        answer
    }
}

/// The world's environments as SSH accounts (`<env>.<site id>`).
struct Accounts(Arc<Shared>);

impl super::ssh::Accounts for Accounts {
    fn exists(&self, user: &str) -> bool {
        let Some((env, site)) = user.split_once('.') else { return false };
        lock(&self.0.state).sites.get(site).is_some_and(|s| s.envs.contains_key(env))
    }

    fn exec(&self, user: &str, command: &str) -> (String, String, u32) {
        let site_id = user.split_once('.').map_or("", |(_, site)| site);
        let (name, fails) =
            lock(&self.0.state).sites.get(site_id).map_or((String::new(), false), |s| (s.name.clone(), s.remote_fails));
        // `TRACE_ID=… drush …`: variables set before the command, as terminus sends them.
        let words: Vec<String> = super::ssh::unquote(command)
            .into_iter()
            .skip_while(|w| {
                w.split_once('=').is_some_and(|(name, _)| {
                    !name.is_empty() && name.chars().all(|c| c.is_ascii_uppercase() || c == '_')
                })
            })
            .collect();
        lock(&self.0.stats).remote_commands += 1;
        super::ssh::answer(&words, &name, fails)
    }
}

/// An answer that closes the connection instead (a dropped-connection fault).
#[derive(Debug)]
struct Dropped;

impl std::fmt::Display for Dropped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("connection dropped by a simulated fault")
    }
}

impl std::error::Error for Dropped {}

impl Simulator {
    /// Starts serving `world` on 127.0.0.1:`port` (0 picks a free port).
    ///
    /// # Errors
    /// Knobs out of range, or the port cannot be bound.
    pub async fn start(world: &World, knobs: Knobs, port: u16) -> std::io::Result<Self> {
        Self::start_recording(world, knobs, port, true).await
    }

    /// [`Simulator::start`], choosing whether the requests are recorded (for
    /// [`Simulator::requests`] and `GET /__sim/requests`). A run under `--simulate` reads only
    /// the counters, and a fleet-sized run would hold a hundred thousand records.
    ///
    /// # Errors
    /// As [`Simulator::start`].
    pub async fn start_recording(world: &World, knobs: Knobs, port: u16, record: bool) -> std::io::Result<Self> {
        knobs.check().map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
        let listener = TcpListener::bind(("127.0.0.1", port)).await?;
        let addr = listener.local_addr()?;
        let unix_at_start =
            SystemTime::now().duration_since(UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64()) + knobs.clock_offset;
        let rules = knobs.faults.len();
        let shared = Arc::new(Shared {
            state: Mutex::new({
                let mut state = SimState::new(world);
                state.seed_history(&knobs, unix_at_start);
                state.site_knobs = super::state::SiteKnobs {
                    seed: knobs.seed,
                    break_rate: knobs.site_break_rate,
                    warmup: knobs.site_warmup * knobs.time_scale,
                };
                state
            }),
            stats: Mutex::new(Stats::default()),
            log: record.then(|| Mutex::new(VecDeque::new())),
            started: Instant::now(),
            unix_at_start,
            active: AtomicU64::new(0),
            rule_hits: Mutex::new(vec![0; rules]),
            per_path: Mutex::new(HashMap::new()),
            bucket: Mutex::new((0.0, Instant::now())),
            origin: format!("http://{addr}"),
            busy: Mutex::new(None),
            knobs,
        });
        {
            let mut bucket = lock(&shared.bucket);
            bucket.0 = shared.bucket_size();
        }
        let cancel = CancellationToken::new();
        let faults = super::ssh::Faults {
            drops: shared.knobs.ssh_drops,
            cut_after_output: shared.knobs.ssh_cut_after_output,
            refuse_keys_until: shared.knobs.ssh_refuse_keys_until.clone(),
        };
        let ssh = super::ssh::start(Arc::new(Accounts(Arc::clone(&shared))), faults, cancel.clone()).await?;
        let sites = super::sites::start(Arc::new(Sites(Arc::clone(&shared))), cancel.clone()).await?;
        let accept = tokio::spawn(accept_loop(listener, Arc::clone(&shared), cancel.clone()));
        Ok(Self { addr, shared, cancel, accept: Some(accept), ssh, sites })
    }

    #[must_use]
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The API root to point a client at: `http://127.0.0.1:PORT/api/`.
    #[must_use]
    pub fn api_base(&self) -> String {
        format!("http://{}/api/", self.addr)
    }

    /// The machine token the world accepts.
    #[must_use]
    pub fn machine_token(&self) -> String {
        lock(&self.shared.state).machine_token.clone()
    }

    /// Where its app servers answer SSH (drush and wp), and the key they accept.
    #[must_use]
    pub fn ssh(&self) -> &super::ssh::SshAccess {
        &self.ssh.access
    }

    /// Where its environments' sites answer HTTPS, and the authority that signs them.
    #[must_use]
    pub fn sites(&self) -> &super::sites::SiteAccess {
        &self.sites
    }

    /// The poll floor in real time (1 s, scaled).
    #[must_use]
    pub fn poll_floor(&self) -> Duration {
        self.shared.knobs.scaled(1.0)
    }

    #[must_use]
    pub fn knobs(&self) -> &Knobs {
        &self.shared.knobs
    }

    /// The counters so far.
    #[must_use]
    pub fn stats(&self) -> Stats {
        self.shared.stats()
    }

    /// Every request received so far, oldest first.
    #[must_use]
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.shared.log.as_ref().map(|log| lock(log).iter().cloned().collect()).unwrap_or_default()
    }

    /// Stops serving (open connections are closed) and returns the final counters.
    pub async fn stop(mut self) -> Stats {
        self.cancel.cancel();
        if let Some(accept) = self.accept.take() {
            let _join_result = accept.await;
        }
        self.stats()
    }
}

impl Drop for Simulator {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

async fn accept_loop(listener: TcpListener, shared: Arc<Shared>, cancel: CancellationToken) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            () = cancel.cancelled() => break,
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else { continue };
                let shared = Arc::clone(&shared);
                connections.spawn(async move {
                    let service = service_fn(move |req| handle(Arc::clone(&shared), req));
                    // A connection ending in error is normal here (faults, clients hanging up).
                    let _ended = http1::Builder::new().serve_connection(TokioIo::new(stream), service).await;
                });
            }
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    connections.abort_all();
    while connections.join_next().await.is_some() {}
}

/// Decrements the active-request gauge however the handler ends.
/// Counts a request in flight, and marks when the last one ended.
struct ActiveGuard<'a>(&'a Shared);

impl Drop for ActiveGuard<'_> {
    fn drop(&mut self) {
        self.0.active.fetch_sub(1, Ordering::SeqCst);
        if let Some((_, last)) = lock(&self.0.busy).as_mut() {
            *last = Instant::now();
        }
    }
}

/// A fault chosen for one request.
#[derive(Clone, Debug)]
enum Fault {
    Status {
        code: u16,
        processed: bool,
    },
    Html {
        code: u16,
        processed: bool,
    },
    Drop {
        processed: bool,
    },
    /// Hold the answer `secs` (scaled): before acting, or after (`processed`: a proxy that
    /// forwards the request at once and holds the platform's answer).
    Delay {
        secs: f64,
        processed: bool,
    },
}

/// Answers one request, with the platform's `Date` (its own clock, skewed by the knob), or
/// the clock of what stamps it in front (`date_offset`).
async fn handle(shared: Arc<Shared>, req: Request<Incoming>) -> Result<Response<Body>, Dropped> {
    let mut response = answer_request(Arc::clone(&shared), req).await?;
    let stamped = match shared.knobs.date_offset {
        Some(offset) => shared.now() - shared.knobs.clock_offset + offset,
        None => shared.now(),
    };
    let now = SystemTime::UNIX_EPOCH + Duration::from_secs_f64(stamped.max(0.0));
    if let Ok(date) = hyper::header::HeaderValue::from_str(&httpdate::fmt_http_date(now)) {
        response.headers_mut().insert(hyper::header::DATE, date);
    }
    Ok(response)
}

async fn answer_request(shared: Arc<Shared>, req: Request<Incoming>) -> Result<Response<Body>, Dropped> {
    let asked = match Asked::read(req).await {
        Ok(asked) => asked,
        Err(too_large) => return Ok(respond(&too_large)),
    };
    let route = Route::classify(&asked.method, &asked.segments);
    match route {
        Route::Stats => {
            return Ok(respond(&Answer::json(200, &serde_json::to_value(shared.stats()).unwrap_or_default())));
        }
        Route::Requests => {
            return Ok(respond(&Answer::json(
                200,
                &serde_json::to_value(shared.log.as_ref().map(|log| lock(log).clone())).unwrap_or_default(),
            )));
        }
        _ => {}
    }
    let active = shared.active.fetch_add(1, Ordering::SeqCst) + 1;
    lock(&shared.busy).get_or_insert_with(|| (Instant::now(), Instant::now()));
    let _guard = ActiveGuard(&shared);
    {
        let mut stats = lock(&shared.stats);
        stats.peak_concurrent_requests = stats.peak_concurrent_requests.max(active);
    }
    let knobs = &shared.knobs;
    let ordinal = {
        let mut per_path = lock(&shared.per_path);
        let n = per_path.entry(format!("{} {}", asked.method, asked.path)).or_default();
        *n += 1;
        *n
    };
    let key = format!("{} {}#{ordinal}", asked.method, asked.path);
    if knobs.latency.max > 0.0 {
        let secs =
            knobs.latency.min + (knobs.latency.max - knobs.latency.min) * roll(knobs.seed, &format!("lat:{key}"));
        tokio::time::sleep(knobs.scaled(secs)).await;
    }
    let template = format!("{} {}", asked.method, route.template());
    if shared.rate_limited() {
        let retry = format!("{}", (knobs.scaled(knobs.retry_after).as_secs_f64() * 1000.0).ceil() / 1000.0);
        let mut answer = Answer::error(429, "Too many requests. Slow down.");
        answer.headers.push(("Retry-After", retry));
        asked.note(&shared, &template, 429, |s| s.rate_limited += 1);
        return Ok(respond(&answer));
    }
    let (fault, forced_failure) = shared.choose_fault(&route, &asked.method, &key, asked.body_json.as_ref());
    if let Some(Fault::Delay { secs, processed: false }) = fault {
        tokio::time::sleep(knobs.scaled(secs)).await;
    }
    if let Some(refused) = refuse_unprocessed(&shared, fault.as_ref(), &asked, &template) {
        return refused;
    }
    let answer = answer_from_state(&shared, &route, &asked, forced_failure.as_deref());
    deliver(&shared, fault, &route, answer, asked, &template).await
}

/// A request as the simulator reads it: its method, path (and decoded segments), query,
/// session, range and body (at most 1 MiB).
struct Asked {
    method: String,
    path: String,
    segments: Vec<String>,
    query: Vec<(String, String)>,
    bearer: Option<String>,
    range: Option<String>,
    body: Bytes,
    body_json: Option<Value>,
}

impl Asked {
    /// Reads `req`; a body over 1 MiB is answered 413.
    async fn read(req: Request<Incoming>) -> Result<Self, Answer> {
        let method = req.method().as_str().to_owned();
        let path = req.uri().path().to_owned();
        let query: Vec<(String, String)> = req
            .uri()
            .query()
            .map(|q| url::form_urlencoded::parse(q.as_bytes()).into_owned().collect())
            .unwrap_or_default();
        let bearer = req
            .headers()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::to_owned);
        let range = req.headers().get("range").and_then(|v| v.to_str().ok()).map(str::to_owned);
        let body = match Limited::new(req.into_body(), 1 << 20).collect().await {
            Ok(collected) => collected.to_bytes(),
            Err(_) => return Err(Answer::error(413, "The request body is too large.")),
        };
        let segments: Vec<String> = path.trim_start_matches('/').split('/').map(percent_decode).collect();
        let body_json: Option<Value> = serde_json::from_slice(&body).ok();
        Ok(Self { method, path, segments, query, bearer, range, body, body_json })
    }

    /// Counts the request in the stats (and the request log) under its route's template.
    fn note(self, shared: &Shared, template: &str, status: u16, extra: impl FnOnce(&mut Stats)) {
        shared.record(template, &self.method, &self.path, &self.query, self.body_json, status, extra);
    }
}

/// A fault that refuses the request before the world sees it: a dropped connection, an
/// HTML error page, an error status.
fn refuse_unprocessed(
    shared: &Shared,
    fault: Option<&Fault>,
    asked: &Asked,
    template: &str,
) -> Option<Result<Response<Body>, Dropped>> {
    let record = |status: u16, extra: &dyn Fn(&mut Stats)| {
        shared.record(template, &asked.method, &asked.path, &asked.query, asked.body_json.clone(), status, extra);
    };
    match *fault? {
        Fault::Drop { processed: false } => {
            record(0, &|s| *s.faults.entry("drop".to_owned()).or_default() += 1);
            Some(Err(Dropped))
        }
        Fault::Html { code, processed: false } => {
            record(code, &|s| *s.faults.entry("html".to_owned()).or_default() += 1);
            Some(Ok(respond(&Answer::html(code))))
        }
        Fault::Status { code, processed: false } => {
            record(code, &|s| {
                *s.faults.entry(code.to_string()).or_default() += 1;
                if code == 429 {
                    s.rate_limited += 1;
                }
            });
            let mut answer = Answer::error(code, "Simulated server error.");
            if code == 429 {
                let knobs = &shared.knobs;
                let retry = (knobs.scaled(knobs.retry_after).as_secs_f64() * 1000.0).ceil() / 1000.0;
                answer.headers.push(("Retry-After", format!("{retry}")));
            }
            Some(Ok(respond(&answer)))
        }
        _ => None,
    }
}

/// The world's answer to a request with a session (or to one that needs none), counted in
/// the stats: workflows started, logins.
fn answer_from_state(shared: &Shared, route: &Route, asked: &Asked, forced_failure: Option<&str>) -> Answer {
    let now = shared.now();
    let mut state = lock(&shared.state);
    let user = session_user(&state, asked.bearer.as_deref(), now);
    if route.needs_auth() && user.is_none() {
        return Answer::error(401, "Invalid or expired session header: X-Pantheon-Session\n");
    }
    let ctx = Ctx {
        knobs: &shared.knobs,
        now,
        query: &asked.query,
        body: &asked.body,
        range: asked.range.as_deref(),
        origin: &shared.origin,
        session_user: user,
        forced_failure: forced_failure.map(str::to_owned),
    };
    let answer = answer(&mut state, route, &ctx);
    if answer.status == 202 {
        let in_flight = state.in_flight(now) as u64;
        let started_key = workflow_key(&state, &answer);
        let mut stats = lock(&shared.stats);
        stats.peak_in_flight_workflows = stats.peak_in_flight_workflows.max(in_flight);
        stats.workflows_total += 1;
        if let Some(k) = started_key {
            *stats.workflows_started.entry(k).or_default() += 1;
        }
        if forced_failure.is_some() {
            *stats.faults.entry("workflow_failed".to_owned()).or_default() += 1;
        }
    }
    if matches!(route, Route::Login) && answer.status == 200 {
        lock(&shared.stats).logins += 1;
    }
    answer
}

/// Sends the world's answer, or what a fault after processing makes of it: a connection
/// dropped (a download half sent), an error in place of the answer, a late answer.
async fn deliver(
    shared: &Shared,
    fault: Option<Fault>,
    route: &Route,
    answer: Answer,
    asked: Asked,
    template: &str,
) -> Result<Response<Body>, Dropped> {
    match fault {
        // A download dropped mid-file: the headers promise the whole body, half of it comes,
        // then the connection closes.
        Some(Fault::Drop { .. }) if matches!(route, Route::Download(_)) && answer.body.len() > 1 => {
            asked.note(shared, template, answer.status, |s| *s.faults.entry("drop".to_owned()).or_default() += 1);
            Ok(truncated(&answer))
        }
        Some(Fault::Drop { .. }) => {
            asked.note(shared, template, 0, |s| *s.faults.entry("drop".to_owned()).or_default() += 1);
            Err(Dropped)
        }
        Some(Fault::Html { code, processed: true }) => {
            asked.note(shared, template, code, |s| *s.faults.entry("html".to_owned()).or_default() += 1);
            Ok(respond(&Answer::html(code)))
        }
        Some(Fault::Status { code, processed: true }) => {
            asked.note(shared, template, code, |s| *s.faults.entry(code.to_string()).or_default() += 1);
            Ok(respond(&Answer::error(code, "Simulated server error.")))
        }
        Some(Fault::Delay { secs, processed: true }) => {
            asked.note(shared, template, answer.status, |_| {});
            tokio::time::sleep(shared.knobs.scaled(secs)).await;
            Ok(respond(&answer))
        }
        _ => {
            asked.note(shared, template, answer.status, |_| {});
            Ok(respond(&answer))
        }
    }
}

/// `site.env.type` of the workflow a 202 answer describes.
fn workflow_key(state: &SimState, answer: &Answer) -> Option<String> {
    let wf: Value = serde_json::from_slice(&answer.body).ok()?;
    let site_id = wf.get("site_id")?.as_str()?;
    let name = state.sites.get(site_id).map(|s| s.name.clone())?;
    let env = wf.get("environment_id").and_then(Value::as_str).unwrap_or("");
    Some(format!("{name}.{env}.{}", wf.get("type")?.as_str()?))
}

impl Shared {
    fn bucket_size(&self) -> f64 {
        self.knobs.rate_limit.map_or(0.0, |r| (r / self.knobs.time_scale).max(1.0))
    }

    /// Takes a token from the server's rate limit; true when there is none (answer 429).
    fn rate_limited(&self) -> bool {
        let Some(limit) = self.knobs.rate_limit else { return false };
        let rate = limit / self.knobs.time_scale;
        let mut bucket = lock(&self.bucket);
        let now = Instant::now();
        let elapsed = now.saturating_duration_since(bucket.1).as_secs_f64();
        bucket.0 = (bucket.0 + elapsed * rate).min(self.bucket_size());
        bucket.1 = now;
        if bucket.0 >= 1.0 {
            bucket.0 -= 1.0;
            false
        } else {
            true
        }
    }

    /// The fault for this request, from the exact rules first, then the rates; and a
    /// workflow failure a rule forces.
    fn choose_fault(
        &self,
        route: &Route,
        method: &str,
        key: &str,
        body: Option<&Value>,
    ) -> (Option<Fault>, Option<String>) {
        let (site_id, env) = route.target();
        let site_name = site_id.and_then(|id| lock(&self.state).sites.get(id).map(|s| s.name.clone()));
        let kind = body.and_then(|b| b.get("type")).and_then(Value::as_str);
        // Every matching rule counts the request, whichever rule fires, so `after` means
        // "after this many matching requests".
        let hits: Vec<(usize, u32)> = {
            let mut hits = lock(&self.rule_hits);
            self.knobs
                .faults
                .iter()
                .enumerate()
                .filter(|(_, rule)| rule_matches(rule, route, method, site_name.as_deref(), env, kind))
                .map(|(i, _)| {
                    hits[i] += 1;
                    (i, hits[i])
                })
                .collect()
        };
        for (i, hit) in hits {
            let rule = &self.knobs.faults[i];
            if hit <= rule.after || hit > rule.after + rule.times {
                continue;
            }
            if let Some(secs) = rule.delay {
                return (Some(Fault::Delay { secs, processed: rule.processed.unwrap_or(false) }), None);
            }
            if let Some(reason) = &rule.fail_workflow {
                return (None, Some(reason.clone()));
            }
            if rule.drop {
                return (Some(Fault::Drop { processed: rule.processed.unwrap_or(true) }), None);
            }
            if rule.html {
                let code = rule.status.unwrap_or(200);
                return (Some(Fault::Html { code, processed: rule.processed.unwrap_or(true) }), None);
            }
            if let Some(code) = rule.status {
                return (Some(Fault::Status { code, processed: rule.processed.unwrap_or(false) }), None);
            }
        }
        if matches!(route, Route::Login | Route::Download(_) | Route::Unknown) {
            return (None, None);
        }
        let k = &self.knobs;
        if k.error_rate > 0.0 && roll(k.seed, &format!("err:{key}")) < k.error_rate {
            let code = [500, 502, 503][(roll(k.seed, &format!("code:{key}")) * 3.0) as usize % 3];
            return (Some(Fault::Status { code, processed: false }), None);
        }
        if k.throttle_rate > 0.0 && roll(k.seed, &format!("throttle:{key}")) < k.throttle_rate {
            return (Some(Fault::Status { code: 429, processed: false }), None);
        }
        if k.drop_rate > 0.0 && roll(k.seed, &format!("drop:{key}")) < k.drop_rate {
            return (Some(Fault::Drop { processed: true }), None);
        }
        (None, None)
    }

    #[expect(clippy::too_many_arguments, reason = "one record of one request")]
    fn record(
        &self,
        template: &str,
        method: &str,
        path: &str,
        query: &[(String, String)],
        body: Option<Value>,
        status: u16,
        extra: impl FnOnce(&mut Stats),
    ) {
        {
            let mut stats = lock(&self.stats);
            *stats.requests.entry(template.to_owned()).or_default().entry(status).or_default() += 1;
            stats.requests_total += 1;
            extra(&mut stats);
        }
        let body = body.map(|mut b| {
            if let Some(token) = b.get_mut("machine_token") {
                *token = Value::String("<redacted>".to_owned());
            }
            b
        });
        let Some(log) = &self.log else { return };
        let mut log = lock(log);
        if log.len() >= LOG_LIMIT {
            log.pop_front();
        }
        log.push_back(RecordedRequest {
            method: method.to_owned(),
            path: path.to_owned(),
            query: query.to_vec(),
            body,
            status,
        });
    }
}

fn rule_matches(
    rule: &FaultRule,
    route: &Route,
    method: &str,
    site: Option<&str>,
    env: Option<&str>,
    kind: Option<&str>,
) -> bool {
    rule.method.as_deref().is_none_or(|m| m.eq_ignore_ascii_case(method))
        && rule.route.as_deref().is_none_or(|r| r.trim_start_matches('/') == route.template())
        && rule.site.as_deref().is_none_or(|s| Some(s) == site)
        && rule.env.as_deref().is_none_or(|e| Some(e) == env)
        && rule.workflow_type.as_deref().is_none_or(|t| Some(t) == kind)
}

/// A response body: whole, or cut short by a fault.
type Body = BoxBody<Bytes, std::io::Error>;

fn whole(bytes: Bytes) -> Body {
    Full::new(bytes).map_err(|never| match never {}).boxed()
}

fn respond(answer: &Answer) -> Response<Body> {
    let mut builder = Response::builder().status(answer.status).header("content-type", answer.content_type);
    for (name, value) in &answer.headers {
        builder = builder.header(*name, value.as_str());
    }
    builder
        .body(whole(Bytes::from(answer.body.clone())))
        .unwrap_or_else(|_| Response::new(whole(Bytes::from_static(b"\"internal simulator error\""))))
}

/// The answer's headers and the first half of its body, announced as whole; then the
/// connection breaks.
fn truncated(answer: &Answer) -> Response<Body> {
    let full = answer.body.len();
    let half = Bytes::from(answer.body[..full / 2].to_vec());
    // The pause lets the first half leave the server before the connection breaks.
    let frames = futures::stream::unfold((Some(half), false), |(data, failed)| async move {
        match (data, failed) {
            (Some(half), _) => Some((Ok(Frame::data(half)), (None, false))),
            (None, false) => {
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                let error = std::io::Error::new(std::io::ErrorKind::ConnectionReset, "simulated drop mid-body");
                Some((Err(error), (None, true)))
            }
            (None, true) => None,
        }
    });
    let mut builder = Response::builder()
        .status(answer.status)
        .header("content-type", answer.content_type)
        .header("content-length", full.to_string());
    for (name, value) in &answer.headers {
        builder = builder.header(*name, value.as_str());
    }
    builder.body(StreamBody::new(frames).boxed()).unwrap_or_else(|_| Response::new(whole(Bytes::new())))
}

/// A path segment, percent-decoded; bytes that are not UTF-8 become U+FFFD. Any input is
/// accepted: a request never panics a worker.
fn percent_decode(segment: &str) -> String {
    percent_encoding::percent_decode_str(segment).decode_utf8_lossy().into_owned()
}

#[cfg(test)]
mod tests {
    use super::percent_decode;

    #[test]
    fn any_path_segment_decodes_without_panicking() {
        assert_eq!(percent_decode("acme%2Dweb"), "acme-web");
        assert_eq!(percent_decode("%a\u{e9}"), "%a\u{e9}", "a cut escape before a multi-byte character");
        assert_eq!(percent_decode("%C3%A9"), "\u{e9}");
        assert_eq!(percent_decode("%ff"), "\u{fffd}");
        assert_eq!(percent_decode("%"), "%");
    }
}
