//! TLS for tests: a throwaway PKI ([`TestPki`]: a CA, server and client certificates written
//! as PEM files into a temp dir) and a small HTTPS server ([`TlsServer`]) that serves any axum
//! router — [`node_like`] answers like a node's `/healthz` and key reads.
//!
//! ```no_run
//! # async fn demo() {
//! use distcache_testkit::tls::{TestPki, TlsServer, node_like, server_config};
//! let pki = TestPki::new();
//! let cert = pki.server("node");
//! let server = TlsServer::start(server_config(&cert, None), node_like("n1")).await;
//! let tls = distcache::ClientTls { ca: Some(pki.ca().to_owned()), ..Default::default() };
//! let client = distcache::client::Client::with_tls([server.endpoint()], &tls).unwrap();
//! assert_eq!(client.health().await.unwrap().node_id, "n1");
//! # }
//! ```

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::extract::Path as UrlPath;
use axum::routing::get;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject};
use tempfile::TempDir;
use tokio::task::JoinHandle;

/// What a leaf certificate is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Usage {
    /// A server's certificate (TLS server auth).
    Server,
    /// A client's certificate (TLS client auth).
    Client,
    /// A node's certificate: it serves, and it dials its peers with it (both).
    Node,
}

/// When a leaf certificate is valid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Validity {
    /// From 1975 to 4096.
    Current,
    /// In the year 2000 only: expired.
    Expired,
}

/// A certificate and its key, as PEM files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertFiles {
    /// The certificate (`<stem>.pem`).
    pub cert: PathBuf,
    /// Its private key (`<stem>-key.pem`).
    pub key: PathBuf,
}

/// A test CA in a temp dir, issuing certificates as PEM files beside its own (`ca.pem`).
/// The directory goes when the value is dropped.
pub struct TestPki {
    dir: TempDir,
    ca: PathBuf,
    issuer: Issuer<'static, KeyPair>,
}

impl Default for TestPki {
    fn default() -> Self {
        TestPki::new()
    }
}

impl TestPki {
    /// A new CA, `distcache test CA <n>` (a name of its own, so that two test CAs are told
    /// apart by name, as real CAs are), written to `ca.pem`.
    pub fn new() -> TestPki {
        static CAS: AtomicU64 = AtomicU64::new(0);
        let dir = tempfile::tempdir().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        let n = CAS.fetch_add(1, Ordering::Relaxed);
        params.distinguished_name.push(
            DnType::CommonName,
            format!("distcache test CA {}-{n}", std::process::id()),
        );
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let key = KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        let ca = dir.path().join("ca.pem");
        std::fs::write(&ca, cert.pem()).unwrap();
        TestPki {
            dir,
            ca,
            issuer: Issuer::new(params, key),
        }
    }

    /// The CA certificate's PEM file.
    pub fn ca(&self) -> &Path {
        &self.ca
    }

    /// The directory the files are in.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// A current server certificate for `localhost`, `127.0.0.1` and `::1`, as
    /// `<stem>.pem` and `<stem>-key.pem`.
    pub fn server(&self, stem: &str) -> CertFiles {
        self.issue(
            stem,
            &["localhost", "127.0.0.1", "::1"],
            Usage::Server,
            Validity::Current,
        )
    }

    /// A current client certificate named `stem`.
    pub fn client(&self, stem: &str) -> CertFiles {
        self.issue(stem, &[stem], Usage::Client, Validity::Current)
    }

    /// A certificate for `names` (DNS names or IP addresses), signed by this CA.
    pub fn issue(&self, stem: &str, names: &[&str], usage: Usage, validity: Validity) -> CertFiles {
        let names: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
        let mut params = CertificateParams::new(names).unwrap();
        params.distinguished_name.push(DnType::CommonName, stem);
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = match usage {
            Usage::Server => vec![ExtendedKeyUsagePurpose::ServerAuth],
            Usage::Client => vec![ExtendedKeyUsagePurpose::ClientAuth],
            Usage::Node => vec![
                ExtendedKeyUsagePurpose::ServerAuth,
                ExtendedKeyUsagePurpose::ClientAuth,
            ],
        };
        if validity == Validity::Expired {
            params.not_before = rcgen::date_time_ymd(2000, 1, 1);
            params.not_after = rcgen::date_time_ymd(2000, 12, 31);
        }
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        let files = CertFiles {
            cert: self.dir.path().join(format!("{stem}.pem")),
            key: self.dir.path().join(format!("{stem}-key.pem")),
        };
        // Each written whole, then renamed over the old: a node reloading them (rotation)
        // never reads half a file.
        write_whole(&files.cert, cert.pem().as_bytes());
        write_whole(&files.key, key.serialize_pem().as_bytes());
        files
    }
}

fn write_whole(path: &Path, bytes: &[u8]) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, bytes).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

/// A rustls server configuration presenting `cert` (ring provider, ALPN h2 and http/1.1).
/// With `client_ca`, a client certificate signed by that CA is required.
pub fn server_config(cert: &CertFiles, client_ca: Option<&Path>) -> Arc<rustls::ServerConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&cert.cert)
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let key = PrivateKeyDer::from_pem_file(&cert.key).unwrap();
    let builder = rustls::ServerConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .unwrap();
    let builder = match client_ca {
        None => builder.with_no_client_auth(),
        Some(ca) => {
            let mut roots = rustls::RootCertStore::empty();
            for c in CertificateDer::pem_file_iter(ca).unwrap() {
                roots.add(c.unwrap()).unwrap();
            }
            let verifier =
                rustls::server::WebPkiClientVerifier::builder_with_provider(roots.into(), provider)
                    .build()
                    .unwrap();
            builder.with_client_cert_verifier(verifier)
        }
    };
    let mut config = builder.with_single_cert(chain, key).unwrap();
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Arc::new(config)
}

/// A router answering like a node named `id`: `GET /healthz` (a ready
/// [`distcache::wire::Health`]) and `GET /v1/keyspaces/{ks}/keys/{key}` (the key itself as
/// the value).
pub fn node_like(id: &str) -> axum::Router {
    let health = serde_json::json!({
        "status": "ok",
        "node_id": id,
        "addr": "127.0.0.1:0",
        "ready": true,
    });
    axum::Router::new()
        .route(
            "/healthz",
            get(move || {
                let health = health.clone();
                async move { axum::Json(health) }
            }),
        )
        .route(
            "/v1/keyspaces/{ks}/keys/{key}",
            get(|UrlPath((_, key)): UrlPath<(String, String)>| async move { key }),
        )
}

/// An HTTPS server on a loopback port picked by the OS, serving a router over TLS (HTTP/1.1
/// and h2). Stops when dropped.
pub struct TlsServer {
    /// Where it listens.
    pub addr: SocketAddr,
    task: JoinHandle<()>,
}

impl TlsServer {
    /// Serves `router` with `config` on `127.0.0.1:0`. Failed handshakes are dropped quietly
    /// (the client reports them).
    pub async fn start(config: Arc<rustls::ServerConfig>, router: axum::Router) -> TlsServer {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(config);
        let task = tokio::spawn(async move {
            let mut connections = tokio::task::JoinSet::new();
            while let Ok((tcp, _)) = listener.accept().await {
                let acceptor = acceptor.clone();
                let service = hyper_util::service::TowerToHyperService::new(router.clone());
                connections.spawn(async move {
                    let Ok(tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(tls), service)
                        .await;
                });
            }
        });
        TlsServer { addr, task }
    }

    /// `https://127.0.0.1:<port>`.
    pub fn endpoint(&self) -> String {
        format!("https://{}", self.addr)
    }

    /// `https://<host>:<port>`: the same server under another name (e.g. `localhost`).
    pub fn endpoint_as(&self, host: &str) -> String {
        format!("https://{host}:{}", self.addr.port())
    }
}

impl Drop for TlsServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}
