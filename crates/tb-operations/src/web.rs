//! The client for environments' own sites (`https://<env>-<site>.pantheonsite.io`, their
//! domains): what `http:check` and `env:wake` ask. It is not the API client: it sends no
//! session and no machine token, follows no redirect by itself (the caller decides which
//! hosts are the site's own), and has its own request rate, so checking a thousand sites
//! never takes the API's tokens.
//!
//! Under `--simulate` the same requests, to the same URLs, go to the simulator's site server
//! on 127.0.0.1: a resolver answers every host name with its address, and its certificate
//! authority is the only one trusted (a rehearsal must not reach a real site). That is the one
//! difference, as the SSH endpoint is reached ([`crate::remote::SshRoute`]).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;
use url::Url;

use crate::api::ratelimit::{Priority, RateLimiter};

/// Requests per second to sites, all sites together, and the burst: far below what a CDN
/// notices, far above what a release's checks need.
pub const SITE_REQUESTS_PER_SECOND: f64 = 20.0;
const SITE_BURST: u32 = 20;
/// The most of a page read (a check looks for text in it; a page is rarely larger).
const BODY_LIMIT: usize = 2 << 20;

/// Where the simulator's sites answer, and the authority that signed their certificates.
#[derive(Clone, Debug)]
pub struct SiteRoute {
    pub addr: SocketAddr,
    /// The simulator's certificate authority, PEM.
    pub ca_pem: String,
}

/// Every host name resolves to the simulator's site server.
struct ToSimulator(SocketAddr);

impl reqwest::dns::Resolve for ToSimulator {
    fn resolve(&self, _name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let addr = self.0;
        Box::pin(async move { Ok(Box::new(std::iter::once(addr)) as reqwest::dns::Addrs) })
    }
}

/// One answer of a site.
#[derive(Debug)]
pub struct Page {
    pub status: u16,
    /// Where a redirect points, resolved against the request's URL.
    pub location: Option<Url>,
    pub headers: reqwest::header::HeaderMap,
    /// The body, as text (lossy), at most 2 MiB.
    pub body: String,
    /// From sending the request to the end of the body, in real time.
    pub took: Duration,
}

/// Why a site gave no answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NoPage {
    /// No answer within the time allowed.
    TimedOut,
    /// No connection, a TLS failure, a dropped connection: the words say which.
    Unreachable(String),
}

/// The sites' client (cheap to clone).
#[derive(Clone)]
pub struct Web {
    http: reqwest::Client,
    limiter: Arc<RateLimiter>,
}

impl Web {
    /// The client for the real platform's sites, or (with `route`) the simulator's.
    ///
    /// # Errors
    /// TLS could not be set up (the simulator's authority did not parse).
    pub fn new(route: Option<&SiteRoute>) -> Result<Self, String> {
        let _already = rustls::crypto::ring::default_provider().install_default();
        let mut builder = reqwest::Client::builder()
            .user_agent(concat!("terminus-batch/", env!("CARGO_PKG_VERSION"), " (http:check)"))
            .connect_timeout(Duration::from_secs(10))
            .redirect(reqwest::redirect::Policy::none());
        if let Some(route) = route {
            let ca = reqwest::Certificate::from_pem(route.ca_pem.as_bytes())
                .map_err(|e| format!("the simulator's certificate authority: {e}"))?;
            builder = builder.dns_resolver(Arc::new(ToSimulator(route.addr))).tls_certs_only([ca]);
        }
        let http =
            builder.build().map_err(|e| format!("cannot set up HTTPS for sites: {}", tb_core::chain::one_line(&e)))?;
        Ok(Self { http, limiter: Arc::new(RateLimiter::new(SITE_REQUESTS_PER_SECOND, SITE_BURST)) })
    }

    /// GETs `url`, waiting at most `timeout` for the whole answer.
    ///
    /// # Errors
    /// No answer (see [`NoPage`]).
    pub async fn get(&self, url: &Url, timeout: Duration) -> Result<Page, NoPage> {
        self.limiter.acquire(Priority::Work).await;
        let sent = Instant::now();
        let read = async {
            let response = self.http.get(url.clone()).send().await.map_err(|e| NoPage::Unreachable(words(&e)))?;
            let status = response.status().as_u16();
            let headers = response.headers().clone();
            let location =
                headers.get(reqwest::header::LOCATION).and_then(|v| v.to_str().ok()).and_then(|l| url.join(l).ok());
            let mut response = response;
            let mut body = Vec::new();
            while let Some(chunk) = response.chunk().await.map_err(|e| NoPage::Unreachable(words(&e)))? {
                let room = BODY_LIMIT.saturating_sub(body.len());
                body.extend_from_slice(&chunk[..chunk.len().min(room)]);
                if room <= chunk.len() {
                    break;
                }
            }
            Ok(Page {
                status,
                location,
                headers,
                body: String::from_utf8_lossy(&body).into_owned(),
                took: sent.elapsed(),
            })
        };
        tokio::time::timeout(timeout, read).await.unwrap_or(Err(NoPage::TimedOut))
    }
}

/// What went wrong on the way to a site, in a few words: the innermost cause, which names
/// the host but never a query string.
fn words(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        return "no answer in time".to_owned();
    }
    let mut source: &dyn std::error::Error = e;
    while let Some(next) = source.source() {
        source = next;
    }
    let inner = source.to_string();
    if e.is_connect() { format!("no connection: {inner}") } else { inner }
}

/// The platform host of an environment: `https://<env>-<site>.pantheonsite.io`.
#[must_use]
pub fn platform_host(site: &str, env: &str) -> String {
    format!("{env}-{site}.pantheonsite.io")
}
