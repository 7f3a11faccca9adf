//! A proxy on 127.0.0.1 in front of the tests' S3 server that fails requests on a schedule, as
//! a network blip or a struggling store would: some answered 503 without being forwarded, and
//! some conditional writes forwarded, applied by the server, and then answered 500 (the answer
//! lost). Counters, not chance, pick which, so a test's faults are the same every run. It can
//! also hold every request a fixed time before forwarding it, as a store in another region
//! answers (the `state` benchmark's latency).

use std::convert::Infallible;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper::{Request, Response, StatusCode};

/// Which requests fail.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Faults {
    /// Every Nth request (of all) is answered 503 and not forwarded (0: none).
    pub(crate) refuse_every: usize,
    /// Every Nth conditional write (`If-Match`, `If-None-Match`) is applied, then answered
    /// 500 (0: none).
    pub(crate) lose_every: usize,
    /// Each request is held this long before it is forwarded: a round trip to a far store.
    pub(crate) latency: std::time::Duration,
}

/// What the proxy did.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct ProxyStats {
    pub(crate) requests: usize,
    pub(crate) refused: usize,
    pub(crate) conditional: usize,
    pub(crate) lost: usize,
    /// Requests by kind: writes, reads, existence checks, removals (a `DELETE`, or a
    /// `POST ?delete` as `object_store` sends them), listings.
    pub(crate) puts: usize,
    pub(crate) gets: usize,
    pub(crate) heads: usize,
    pub(crate) deletes: usize,
    pub(crate) lists: usize,
}

pub(crate) struct FaultProxy {
    port: u16,
    stats: Arc<Mutex<ProxyStats>>,
    _runtime: tokio::runtime::Runtime,
}

impl FaultProxy {
    /// Starts a proxy to `upstream` (`http://127.0.0.1:PORT`).
    pub(crate) fn start(upstream: &str, faults: Faults) -> Self {
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
        let listener = runtime.block_on(tokio::net::TcpListener::bind("127.0.0.1:0")).unwrap();
        let port = listener.local_addr().unwrap().port();
        let stats = Arc::new(Mutex::new(ProxyStats::default()));
        let client = super::http_client();
        let upstream = upstream.trim_end_matches('/').to_owned();
        let counted = Arc::clone(&stats);
        runtime.spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else { continue };
                let (client, upstream, stats) = (client.clone(), upstream.clone(), Arc::clone(&counted));
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |request| {
                        forward(request, client.clone(), upstream.clone(), Arc::clone(&stats), faults)
                    });
                    let _served = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Self { port, stats, _runtime: runtime }
    }

    /// The endpoint, as `AWS_ENDPOINT_URL` names it.
    pub(crate) fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub(crate) fn stats(&self) -> ProxyStats {
        *self.stats.lock().unwrap()
    }
}

fn answer(status: StatusCode, body: Bytes) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(body));
    *response.status_mut() = status;
    response
}

async fn forward(
    request: Request<hyper::body::Incoming>,
    client: reqwest::Client,
    upstream: String,
    stats: Arc<Mutex<ProxyStats>>,
    faults: Faults,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let conditional = request.method() == hyper::Method::PUT
        && (request.headers().contains_key("if-match") || request.headers().contains_key("if-none-match"));
    let (refuse, lose) = {
        let mut stats = stats.lock().unwrap();
        stats.requests += 1;
        let query = request.uri().query().unwrap_or_default();
        match *request.method() {
            hyper::Method::PUT => stats.puts += 1,
            hyper::Method::DELETE => stats.deletes += 1,
            hyper::Method::POST if query.contains("delete") => stats.deletes += 1,
            hyper::Method::HEAD => stats.heads += 1,
            hyper::Method::GET if query.contains("list-type") => stats.lists += 1,
            _ => stats.gets += 1,
        }
        let refuse = faults.refuse_every > 0 && stats.requests.is_multiple_of(faults.refuse_every);
        stats.refused += usize::from(refuse);
        let mut lose = false;
        if conditional && !refuse {
            stats.conditional += 1;
            lose = faults.lose_every > 0 && stats.conditional.is_multiple_of(faults.lose_every);
            stats.lost += usize::from(lose);
        }
        (refuse, lose)
    };
    if !faults.latency.is_zero() {
        tokio::time::sleep(faults.latency).await;
    }
    if refuse {
        return Ok(answer(StatusCode::SERVICE_UNAVAILABLE, Bytes::from_static(b"slow down")));
    }
    let (parts, body) = request.into_parts();
    let body = body.collect().await.map(http_body_util::Collected::to_bytes).unwrap_or_default();
    let target =
        format!("{upstream}{}", parts.uri.path_and_query().map_or("/", hyper::http::uri::PathAndQuery::as_str));
    let method = reqwest::Method::from_bytes(parts.method.as_str().as_bytes()).unwrap();
    let mut outgoing = client.request(method, target).body(body);
    for (name, value) in &parts.headers {
        if name != "host" && name != "content-length" {
            outgoing = outgoing.header(name.as_str(), value.as_bytes());
        }
    }
    let Ok(upstream) = outgoing.send().await else {
        return Ok(answer(StatusCode::BAD_GATEWAY, Bytes::new()));
    };
    if lose {
        // Applied by the server; its answer never reaches the client.
        return Ok(answer(StatusCode::INTERNAL_SERVER_ERROR, Bytes::from_static(b"answer lost")));
    }
    let status = StatusCode::from_u16(upstream.status().as_u16()).unwrap();
    let headers = upstream.headers().clone();
    let bytes = upstream.bytes().await.unwrap_or_default();
    let mut response = answer(status, bytes);
    for (name, value) in &headers {
        if !["content-length", "transfer-encoding", "connection"].contains(&name.as_str())
            && let Ok(value) = hyper::header::HeaderValue::from_bytes(value.as_bytes())
            && let Ok(name) = hyper::header::HeaderName::from_bytes(name.as_str().as_bytes())
        {
            response.headers_mut().insert(name, value);
        }
    }
    Ok(response)
}
