//! The simulator's sites: every environment's site answers HTTPS on 127.0.0.1 under its own
//! names (`<env>-<site>.pantheonsite.io`, its domains), as the platform's edge does. A client
//! under `--simulate` sends the same requests to the same URLs; only where a name resolves
//! differs (here), and the certificate it checks is signed by this simulator's authority,
//! made at start, instead of a public one. A certificate is made for each name a client asks
//! for (TLS's SNI), so a domain added by a run is served like the others.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair, KeyUsagePurpose};
use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// What a site answers to one request.
pub(crate) struct Page {
    pub status: u16,
    pub body: String,
    pub headers: Vec<(&'static str, String)>,
    /// Held this long (real time) before answering.
    pub delay: Duration,
}

/// The world's sites, by host name.
pub(crate) trait Sites: Send + Sync + 'static {
    /// The answer of the site at `host` (lowercase, no port) to `GET path`.
    fn page(&self, host: &str, path: &str) -> Page;
}

/// Where the sites answer and the authority a client must trust for them.
#[derive(Clone, Debug)]
pub struct SiteAccess {
    pub addr: SocketAddr,
    /// PEM.
    pub ca_pem: String,
}

/// Makes a certificate for each server name asked, signed by the simulator's authority.
struct Certificates {
    issuer: CertifiedIssuer<'static, KeyPair>,
    made: Mutex<HashMap<String, Arc<CertifiedKey>>>,
}

impl std::fmt::Debug for Certificates {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Certificates")
    }
}

impl Certificates {
    fn make(&self, name: &str) -> Option<Arc<CertifiedKey>> {
        let mut made = self.made.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(key) = made.get(name) {
            return Some(Arc::clone(key));
        }
        let key = KeyPair::generate().ok()?;
        let params = CertificateParams::new(vec![name.to_owned()]).ok()?;
        let cert = params.signed_by(&key, &self.issuer).ok()?;
        let der = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
        let signer = rustls::crypto::ring::sign::any_supported_type(&der).ok()?;
        let certified = Arc::new(CertifiedKey::new(vec![cert.der().clone()], signer));
        made.insert(name.to_owned(), Arc::clone(&certified));
        Some(certified)
    }
}

impl ResolvesServerCert for Certificates {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        // A client that sends no name (an IP address) gets no certificate: the handshake fails,
        // as it would at the platform's edge.
        let name = hello.server_name()?.to_ascii_lowercase();
        self.make(&name)
    }
}

fn authority() -> Result<CertifiedIssuer<'static, KeyPair>, rcgen::Error> {
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, "terminus-batch simulator sites");
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::DigitalSignature];
    CertifiedIssuer::self_signed(params, KeyPair::generate()?)
}

/// Starts serving `sites` on 127.0.0.1 (a free port) until `cancel`.
pub(crate) async fn start(sites: Arc<dyn Sites>, cancel: CancellationToken) -> std::io::Result<SiteAccess> {
    let issuer = authority().map_err(std::io::Error::other)?;
    let ca_pem = issuer.pem();
    let certificates = Arc::new(Certificates { issuer, made: Mutex::new(HashMap::new()) });
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(std::io::Error::other)?
        .with_no_client_auth()
        .with_cert_resolver(certificates);
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        let mut connections = tokio::task::JoinSet::new();
        loop {
            tokio::select! {
                () = cancel.cancelled() => break,
                accepted = listener.accept() => {
                    let Ok((stream, _)) = accepted else { continue };
                    let (acceptor, sites) = (acceptor.clone(), Arc::clone(&sites));
                    connections.spawn(async move {
                        // A failed handshake is the client's to report (an untrusted certificate).
                        let Ok(tls) = acceptor.accept(stream).await else { return };
                        let service = service_fn(move |req| serve(Arc::clone(&sites), req));
                        let _ended = http1::Builder::new().serve_connection(TokioIo::new(tls), service).await;
                    });
                }
                Some(_) = connections.join_next(), if !connections.is_empty() => {}
            }
        }
        connections.abort_all();
    });
    Ok(SiteAccess { addr, ca_pem })
}

async fn serve(
    sites: Arc<dyn Sites>,
    req: Request<hyper::body::Incoming>,
) -> Result<Response<http_body_util::combinators::BoxBody<Bytes, std::io::Error>>, std::convert::Infallible> {
    let host = req
        .headers()
        .get(hyper::header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(|h| h.split(':').next().unwrap_or_default().to_ascii_lowercase())
        .unwrap_or_default();
    let path = req.uri().path().to_owned();
    let page = if req.method() == hyper::Method::GET || req.method() == hyper::Method::HEAD {
        sites.page(&host, &path)
    } else {
        Page { status: 405, body: "Method Not Allowed".to_owned(), headers: Vec::new(), delay: Duration::ZERO }
    };
    if !page.delay.is_zero() {
        tokio::time::sleep(page.delay).await;
    }
    let mut builder = Response::builder().status(page.status).header("content-type", "text/html; charset=utf-8");
    for (name, value) in &page.headers {
        builder = builder.header(*name, value.as_str());
    }
    let body = Full::new(Bytes::from(page.body)).map_err(|never| match never {}).boxed();
    Ok(builder
        .body(body)
        .unwrap_or_else(|_| Response::new(Full::new(Bytes::new()).map_err(|never| match never {}).boxed())))
}
