//! `http:check SITE.ENV`: asks the environment's own site (not the API) until it answers as
//! the plan expects (a status, a text, a latency bound) or its window passes. Sites warm up
//! after a deploy or a cache clear, so a wrong answer is asked again, with backoff, within the
//! window; the last wrong answer is the cause. Redirects are followed only to the site's own
//! hosts: its platform host and the environment's domains.

use std::collections::BTreeSet;
use std::time::Duration;

use serde_json::json;
use tokio::time::Instant;
use url::Url;

use crate::web::{NoPage, Page, platform_host};
use crate::{OpError, OpOutput, Ops, Target, env_of};
use tb_core::cause::Cause;

/// Redirects followed at most in one request (as browsers stop near 20; a site needs 2).
const MAX_REDIRECTS: usize = 10;
/// The longest one try may take (real time), redirects included...
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// ...and the least, however little of the window is left.
const LEAST_TRY: Duration = Duration::from_secs(5);
/// The first pause between tries, and the longest, in the platform's time.
const FIRST_PAUSE: Duration = Duration::from_secs(2);
const LONGEST_PAUSE: Duration = Duration::from_secs(15);

/// What a check expects, its options rendered.
pub(crate) struct Expect {
    pub path: String,
    pub statuses: Vec<u16>,
    pub contains: Option<String>,
    /// In real time.
    pub max_latency: Option<Duration>,
    pub within: Duration,
    pub primary: bool,
}

/// Why one try did not pass.
#[derive(Debug)]
enum Miss {
    Status { got: u16 },
    Text,
    Slow { took: Duration, max: Duration },
    NoAnswer(NoPage),
    OffSite { host: String },
    TooManyRedirects,
}

impl Miss {
    /// Words that name no site, so a thousand sites failing alike are one cause.
    fn reason(&self, expect: &Expect) -> String {
        match self {
            Self::Status { got } => format!("the site answered HTTP {got}, expected {}", statuses(&expect.statuses)),
            Self::Text => "the page lacks the expected text".to_owned(),
            Self::Slow { max, .. } => format!("the site answered slower than {}", millis(*max)),
            Self::NoAnswer(NoPage::TimedOut) => "the site did not answer in time".to_owned(),
            Self::NoAnswer(NoPage::Unreachable(_)) => "the site could not be reached".to_owned(),
            Self::OffSite { .. } => "the site redirected off its own hosts".to_owned(),
            Self::TooManyRedirects => format!("the site redirected more than {MAX_REDIRECTS} times"),
        }
    }

    /// The reason with what this site did.
    fn detail(&self, expect: &Expect) -> String {
        match self {
            Self::Text => format!("the page does not contain {:?}", expect.contains.as_deref().unwrap_or_default()),
            Self::Slow { took, max } => {
                format!("the site answered in {}, over the {} bound", millis(*took), millis(*max))
            }
            Self::NoAnswer(NoPage::Unreachable(words)) => format!("the site could not be reached: {words}"),
            Self::OffSite { host } => {
                format!(
                    "the site redirected to {host}, which is not one of the environment's hosts; nothing followed it"
                )
            }
            other => other.reason(expect),
        }
    }

    /// A redirect off the site will not mend by asking again.
    fn is_final(&self) -> bool {
        matches!(self, Self::OffSite { .. } | Self::TooManyRedirects)
    }
}

fn statuses(codes: &[u16]) -> String {
    let words: Vec<String> = codes.iter().map(u16::to_string).collect();
    match words.as_slice() {
        [one] => one.clone(),
        [init @ .., last] => format!("{} or {last}", init.join(", ")),
        [] => String::new(),
    }
}

/// A duration as the run's messages write one (`48ms`, `1.5s`, `1m05s`).
fn millis(d: Duration) -> String {
    tb_core::timefmt::duration_ms(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// The hosts a check may follow a redirect to: the platform host, then (read once, when a
/// redirect leaves it) the environment's domains.
struct Hosts {
    known: BTreeSet<String>,
    domains_read: bool,
}

impl Hosts {
    /// Reads the environment's domains (once) and knows them as its hosts.
    async fn learn(&mut self, ops: &Ops, target: &Target, env: &str) -> Result<Vec<crate::api::wire::Domain>, OpError> {
        self.domains_read = true;
        let site_id = ops.site_id_of(target).await?;
        let domains = ops.client.domains(&site_id, env).await?;
        self.known.extend(domains.iter().map(|d| d.id.to_ascii_lowercase()));
        Ok(domains)
    }
}

pub(crate) async fn check(ops: &Ops, target: &Target, expect: &Expect) -> Result<OpOutput, OpError> {
    let env = env_of(target)?;
    let web = ops.web()?;
    let mut hosts = Hosts { known: BTreeSet::from([platform_host(&target.site, env)]), domains_read: false };
    let host = if expect.primary {
        let domains = hosts.learn(ops, target, env).await?;
        let Some(primary) = domains.iter().find(|d| d.primary == Some(true)) else {
            return Err(OpError::failed(
                "the environment has no primary domain",
                format!("{}.{env} has no primary domain to check (`domain: primary`)", target.site),
            ));
        };
        primary.id.to_ascii_lowercase()
    } else {
        platform_host(&target.site, env)
    };
    let url = Url::parse(&format!("https://{host}{}", expect.path))
        .map_err(|e| OpError::permanent(format!("`https://{host}{}` is not a URL: {e}", expect.path)))?;
    let window = ops.platform_time(expect.within);
    let deadline = Instant::now() + window;
    let mut tries = 0u32;
    loop {
        tries += 1;
        let left = deadline.saturating_duration_since(Instant::now());
        // Real time, as latency is: a simulator's clock does not make a TLS handshake faster.
        // A try near the window's end still gets a few seconds.
        let timeout = REQUEST_TIMEOUT.min(left.max(LEAST_TRY));
        let (seen, miss) = match follow(ops, target, env, (web, expect), &url, timeout, &mut hosts).await {
            Ok((page, hops)) => {
                // Latency is real time, as the sites' visitors see it, under a simulator too:
                // its faster clock compresses the platform's work, not the network.
                let took = page.took;
                let miss = judge(&page, took, expect);
                (Some((page.status, took, hops)), miss)
            }
            Err(miss) => (None, Some(miss)),
        };
        let Some(miss) = miss else {
            let (status, took, hops) = seen.unwrap_or_default();
            let again = if tries > 1 { format!(" (try {tries})") } else { String::new() };
            let mut data = json!({
                "url": url.as_str(),
                "status": status,
                "latency_ms": u64::try_from(took.as_millis()).unwrap_or(u64::MAX),
                "tries": tries,
            });
            if !hops.is_empty() {
                data["redirected_through"] = json!(hops);
            }
            // `changed` as every read says it: the operation did what it was asked.
            return Ok(OpOutput {
                changed: true,
                message: format!("HTTP {status} in {}{again}", millis(took)),
                data: Some(data),
            });
        };
        let pause = ops.platform_time(tb_core::backoff::delay(FIRST_PAUSE, tries, LONGEST_PAUSE));
        if miss.is_final() || Instant::now() + pause >= deadline {
            // What the site answered, where the words do not say it already.
            let seen = match (&miss, seen) {
                (Miss::Text, Some((status, took, _))) => format!(" (HTTP {status} in {})", millis(took)),
                (Miss::Status { .. }, Some((_, took, _))) => format!(" in {}", millis(took)),
                _ => String::new(),
            };
            let message = format!(
                "{}{seen}; asked {url} {} within {}",
                miss.detail(expect),
                if tries == 1 { "once".to_owned() } else { format!("{tries} times") },
                humantime::format_duration(expect.within),
            );
            return Err(OpError::because(Cause::Failed { reason: miss.reason(expect) }, message));
        }
        tracing::debug!(%url, tries, reason = %miss.reason(expect), "the site is not ready; asking again");
        tokio::time::sleep(pause).await;
    }
}

/// Whether an answer passes.
fn judge(page: &Page, took: Duration, expect: &Expect) -> Option<Miss> {
    if !expect.statuses.contains(&page.status) {
        return Some(Miss::Status { got: page.status });
    }
    if let Some(text) = &expect.contains
        && !page.body.contains(text.as_str())
    {
        return Some(Miss::Text);
    }
    match expect.max_latency {
        Some(max) if took > max => Some(Miss::Slow { took, max }),
        _ => None,
    }
}

/// GETs `url`, following redirects within the site's hosts; the final page and the hosts
/// redirected through. A 3xx the plan expects is the final page itself.
async fn follow(
    ops: &Ops,
    target: &Target,
    env: &str,
    (web, expect): (&crate::web::Web, &Expect),
    url: &Url,
    timeout: Duration,
    hosts: &mut Hosts,
) -> Result<(Page, Vec<String>), Miss> {
    let started = Instant::now();
    let mut at = url.clone();
    let mut hops = Vec::new();
    loop {
        let left = timeout.saturating_sub(started.elapsed());
        let mut page = web.get(&at, left).await.map_err(Miss::NoAnswer)?;
        let redirect =
            (300..400).contains(&page.status) && page.location.is_some() && !expect.statuses.contains(&page.status);
        let Some(next) = page.location.take().filter(|_| redirect) else {
            page.took = started.elapsed();
            return Ok((page, hops));
        };
        if hops.len() >= MAX_REDIRECTS {
            return Err(Miss::TooManyRedirects);
        }
        let host = next.host_str().unwrap_or_default().to_ascii_lowercase();
        if !hosts.known.contains(&host) && !hosts.domains_read {
            hosts.learn(ops, target, env).await.map_err(|e| {
                Miss::NoAnswer(NoPage::Unreachable(format!("reading the environment's domains: {}", e.message)))
            })?;
        }
        if !hosts.known.contains(&host) || !matches!(next.scheme(), "https" | "http") {
            return Err(Miss::OffSite { host });
        }
        hops.push(host);
        at = next;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page(status: u16, body: &str) -> Page {
        Page {
            status,
            location: None,
            headers: reqwest::header::HeaderMap::new(),
            body: body.to_owned(),
            took: Duration::from_millis(5),
        }
    }

    fn expect() -> Expect {
        Expect {
            path: "/".to_owned(),
            statuses: vec![200, 204],
            contains: Some("Welcome".to_owned()),
            max_latency: Some(Duration::from_millis(500)),
            within: Duration::from_secs(120),
            primary: false,
        }
    }

    #[test]
    fn an_answer_passes_only_with_the_status_the_text_and_in_time() {
        let e = expect();
        assert!(judge(&page(200, "<h1>Welcome</h1>"), Duration::from_millis(80), &e).is_none());
        let miss = judge(&page(500, "<h1>Welcome</h1>"), Duration::from_millis(80), &e).unwrap();
        assert_eq!(miss.reason(&e), "the site answered HTTP 500, expected 200 or 204");
        let miss = judge(&page(204, "Oops"), Duration::from_millis(80), &e).unwrap();
        assert_eq!(miss.detail(&e), "the page does not contain \"Welcome\"");
        let miss = judge(&page(200, "Welcome"), Duration::from_millis(1500), &e).unwrap();
        assert_eq!(miss.reason(&e), "the site answered slower than 500ms");
        assert_eq!(miss.detail(&e), "the site answered in 1.5s, over the 500ms bound");
    }

    #[test]
    fn a_redirect_off_the_site_is_final_and_a_wrong_status_is_not() {
        assert!(Miss::OffSite { host: "evil.example".into() }.is_final());
        assert!(!Miss::Status { got: 503 }.is_final());
        assert!(!Miss::NoAnswer(NoPage::TimedOut).is_final());
    }
}
