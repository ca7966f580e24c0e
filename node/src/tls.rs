//! A node's TLS material: its certificate and key, and the cluster CA, which verifies both
//! the client certificates peers present and the servers this node dials. Read from PEM files
//! and reloaded when they change or on SIGHUP: connections accepted or dialled afterwards use
//! the new material, connections already open keep theirs.
//!
//! The listener speaks TLS 1.2 and 1.3 only, with rustls' safe defaults (ring). With a CA, a
//! client certificate is verified when presented (`client_auth = "optional"`, the default;
//! the peer and raft routes then require one) or on every connection (`"required"`). The
//! client side (peer transport, raft) is built once with a resolver and a verifier that read
//! the current material, so rotation needs no new HTTP clients.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwap;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::{ResolvesClientCert, WebPkiServerVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::server::WebPkiClientVerifier;
use rustls::sign::CertifiedKey;
use rustls::{DigitallySignedStruct, RootCertStore, SignatureScheme};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use crate::error::{Error, Problems};

/// The `[tls]` table of a node's configuration (`--tls-cert`, `--tls-key`, `--tls-ca`,
/// `--tls-client-auth`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// The node's certificate chain (PEM), leaf first. Its names must cover the address
    /// peers and clients dial (`advertise`).
    pub cert: PathBuf,
    /// The certificate's private key (PEM: PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
    /// The cluster CA (PEM, one or more certificates): verifies peers' client certificates
    /// and the nodes this node dials. Without it, peers are verified against the public web
    /// roots and the peer routes rely on the token alone.
    #[serde(default)]
    pub ca: Option<PathBuf>,
    /// Whether every connection must present a client certificate (`required`) or only the
    /// peer and raft routes need one (`optional`, the default).
    #[serde(default)]
    pub client_auth: ClientAuth,
    /// How often the files are checked for changes (default 2s; SIGHUP reloads at once).
    #[serde(default = "default_reload_interval", with = "humantime_serde")]
    pub reload_interval: Duration,
}

fn default_reload_interval() -> Duration {
    Duration::from_secs(2)
}

impl TlsConfig {
    /// TLS with `cert` and `key`, no CA, default settings.
    pub fn new(cert: impl Into<PathBuf>, key: impl Into<PathBuf>) -> Self {
        TlsConfig {
            cert: cert.into(),
            key: key.into(),
            ca: None,
            client_auth: ClientAuth::default(),
            reload_interval: default_reload_interval(),
        }
    }

    /// Every problem of these settings that shows without reading the files.
    pub fn problems(&self) -> Problems {
        let mut problems = Problems::new();
        if self.client_auth == ClientAuth::Required && self.ca.is_none() {
            problems.push(
                "tls.client_auth",
                "`required` needs a CA to verify client certificates against (tls.ca)",
            );
        }
        if self.reload_interval < Duration::from_millis(100) {
            problems.push("tls.reload_interval", "must be at least 100ms");
        }
        problems
    }
}

/// When a client certificate is needed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClientAuth {
    /// Verified when presented; the peer and raft routes require one.
    #[default]
    Optional,
    /// Every connection must present one that chains to the CA.
    Required,
}

/// One loaded set of files.
struct Material {
    server: Arc<rustls::ServerConfig>,
    identity: Arc<CertifiedKey>,
    peer_verifier: Arc<dyn ServerCertVerifier>,
    /// Whether client certificates are verified against a cluster CA.
    verifies_clients: bool,
}

/// When each file last changed, to tell whether to reload.
type Stamps = Vec<Option<SystemTime>>;

/// A node's TLS material, reloaded in place.
pub struct NodeTls {
    config: TlsConfig,
    provider: Arc<CryptoProvider>,
    current: ArcSwap<Material>,
    stamps: Mutex<Stamps>,
}

impl std::fmt::Debug for NodeTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeTls")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl NodeTls {
    /// Reads the files of `config`; every problem is named with its file.
    pub fn load(config: TlsConfig) -> Result<Arc<Self>, Error> {
        config.problems().into_result(Error::InvalidConfig)?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let stamps = stamps(&config);
        let material = build(&config, &provider).map_err(invalid)?;
        Ok(Arc::new(NodeTls {
            config,
            provider,
            current: ArcSwap::from_pointee(material),
            stamps: Mutex::new(stamps),
        }))
    }

    /// The settings the material was read with.
    pub fn config(&self) -> &TlsConfig {
        &self.config
    }

    /// Accepts TLS connections with the current material.
    pub(crate) fn acceptor(&self) -> tokio_rustls::TlsAcceptor {
        tokio_rustls::TlsAcceptor::from(Arc::clone(&self.current.load().server))
    }

    /// Whether client certificates are verified against a cluster CA.
    pub(crate) fn verifies_clients(&self) -> bool {
        self.current.load().verifies_clients
    }

    /// A client configuration for dialling peers: presents this node's certificate and
    /// verifies theirs, both as they are at the time of each handshake.
    pub fn client_config(self: &Arc<Self>) -> Result<rustls::ClientConfig, Error> {
        let config = rustls::ClientConfig::builder_with_provider(Arc::clone(&self.provider))
            .with_safe_default_protocol_versions()
            .map_err(|e| Error::Internal(format!("TLS versions: {e}")))?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(CurrentVerifier(Arc::clone(self))))
            .with_client_cert_resolver(Arc::new(CurrentIdentity(Arc::clone(self))));
        Ok(config)
    }

    /// Reads the files again when they changed since the last read (or always, with
    /// `force`). Answers whether new material is in use; on an error the old stays.
    pub fn reload(&self, force: bool) -> Result<bool, Error> {
        let now = stamps(&self.config);
        let mut last = self.stamps.lock().unwrap_or_else(|e| e.into_inner());
        if !force && *last == now {
            return Ok(false);
        }
        // Remembered even when loading fails: a half-written file is tried again once it
        // changes again, not on every tick.
        *last = now;
        let material = build(&self.config, &self.provider).map_err(invalid)?;
        self.current.store(Arc::new(material));
        Ok(true)
    }

    /// Reloads on every `reload_interval` tick when the files changed, and at once on
    /// SIGHUP, until `stop` says true.
    pub(crate) fn spawn_watcher(
        self: &Arc<Self>,
        mut stop: watch::Receiver<bool>,
    ) -> tokio::task::JoinHandle<()> {
        let tls = Arc::clone(self);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(tls.config.reload_interval);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut hangup = hangups();
            loop {
                let force = tokio::select! {
                    _ = tick.tick() => false,
                    Some(()) = next_hangup(&mut hangup) => true,
                    _ = crate::net::stopped(&mut stop) => return,
                };
                match tls.reload(force) {
                    Ok(true) => {
                        tracing::info!(cert = %tls.config.cert.display(), "TLS material reloaded")
                    }
                    Ok(false) => {}
                    Err(e) => {
                        tracing::error!(error = %e, "TLS files changed but cannot be used; keeping the previous material")
                    }
                }
            }
        })
    }
}

#[cfg(unix)]
type Hangups = Option<tokio::signal::unix::Signal>;
#[cfg(not(unix))]
type Hangups = Option<()>;

#[cfg(unix)]
fn hangups() -> Hangups {
    tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok()
}

#[cfg(not(unix))]
fn hangups() -> Hangups {
    None
}

/// The next SIGHUP; pending for ever where there are none.
async fn next_hangup(hangups: &mut Hangups) -> Option<()> {
    #[cfg(unix)]
    if let Some(signal) = hangups {
        return signal.recv().await;
    }
    let _ = hangups;
    std::future::pending().await
}

fn invalid(problems: Problems) -> Error {
    Error::InvalidConfig(problems)
}

fn stamps(config: &TlsConfig) -> Stamps {
    let modified = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    let mut out = vec![modified(&config.cert), modified(&config.key)];
    if let Some(ca) = &config.ca {
        out.push(modified(ca));
    }
    out
}

/// Loads every file of `config` into a server configuration and a client identity.
fn build(config: &TlsConfig, provider: &Arc<CryptoProvider>) -> Result<Material, Problems> {
    let mut problems = Problems::new();
    let certs = read_certs("tls.cert", &config.cert, &mut problems);
    let key = read_key(&config.key, &mut problems);
    let roots = config.ca.as_ref().map(|ca| read_roots(ca, &mut problems));
    let (Some(certs), Some(key)) = (certs, key) else {
        return Err(problems);
    };
    if !problems.is_empty() {
        return Err(problems);
    }
    let identity = match CertifiedKey::from_der(certs.clone(), key.clone_key(), provider) {
        Ok(identity) => Arc::new(identity),
        Err(e) => {
            problems.push(
                "tls.key",
                format!("{} does not fit the certificate: {e}", config.key.display()),
            );
            return Err(problems);
        }
    };
    let tls_error = |field: &str, e: &dyn std::fmt::Display, problems: &mut Problems| {
        problems.push(field, format!("cannot be used: {e}"));
    };
    let builder = match rustls::ServerConfig::builder_with_provider(Arc::clone(provider))
        .with_safe_default_protocol_versions()
    {
        Ok(builder) => builder,
        Err(e) => {
            tls_error("tls", &e, &mut problems);
            return Err(problems);
        }
    };
    let (builder, peer_verifier, verifies_clients) = match &roots {
        Some(Some(roots)) => {
            let roots = Arc::new(roots.clone());
            let clients = WebPkiClientVerifier::builder_with_provider(
                Arc::clone(&roots),
                Arc::clone(provider),
            );
            let clients = match config.client_auth {
                ClientAuth::Optional => clients.allow_unauthenticated().build(),
                ClientAuth::Required => clients.build(),
            };
            let servers =
                WebPkiServerVerifier::builder_with_provider(roots, Arc::clone(provider)).build();
            match (clients, servers) {
                (Ok(clients), Ok(servers)) => (
                    builder.with_client_cert_verifier(clients),
                    servers as Arc<dyn ServerCertVerifier>,
                    true,
                ),
                (Err(e), _) => {
                    tls_error("tls.ca", &e, &mut problems);
                    return Err(problems);
                }
                (_, Err(e)) => {
                    tls_error("tls.ca", &e, &mut problems);
                    return Err(problems);
                }
            }
        }
        Some(None) => return Err(problems),
        None => {
            let roots = Arc::new(RootCertStore {
                roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
            });
            match WebPkiServerVerifier::builder_with_provider(roots, Arc::clone(provider)).build() {
                Ok(servers) => (
                    builder.with_no_client_auth(),
                    servers as Arc<dyn ServerCertVerifier>,
                    false,
                ),
                Err(e) => {
                    tls_error("tls", &e, &mut problems);
                    return Err(problems);
                }
            }
        }
    };
    let mut server = match builder.with_single_cert(certs, key) {
        Ok(server) => server,
        Err(e) => {
            tls_error("tls.cert", &e, &mut problems);
            return Err(problems);
        }
    };
    server.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Material {
        server: Arc::new(server),
        identity,
        peer_verifier,
        verifies_clients,
    })
}

/// The certificates of `path` (for `field`), or the problem recorded.
fn read_certs(
    field: &str,
    path: &Path,
    problems: &mut Problems,
) -> Option<Vec<CertificateDer<'static>>> {
    crate::net::tls::read_certificates(path)
        .map_err(|e| problems.push(field, e.to_string()))
        .ok()
}

fn read_key(path: &Path, problems: &mut Problems) -> Option<PrivateKeyDer<'static>> {
    crate::net::tls::read_key(path)
        .map_err(|e| problems.push("tls.key", e.to_string()))
        .ok()
}

fn read_roots(path: &Path, problems: &mut Problems) -> Option<RootCertStore> {
    let certs = read_certs("tls.ca", path, problems)?;
    let mut roots = RootCertStore::empty();
    for cert in certs {
        if let Err(e) = roots.add(cert) {
            problems.push(
                "tls.ca",
                format!(
                    "{} holds a certificate that cannot be a CA: {e}",
                    path.display()
                ),
            );
            return None;
        }
    }
    Some(roots)
}

/// Presents the node's current certificate when a peer asks for one.
#[derive(Debug)]
struct CurrentIdentity(Arc<NodeTls>);

impl ResolvesClientCert for CurrentIdentity {
    fn resolve(
        &self,
        _root_hint_subjects: &[&[u8]],
        _sigschemes: &[SignatureScheme],
    ) -> Option<Arc<CertifiedKey>> {
        Some(Arc::clone(&self.0.current.load().identity))
    }

    fn has_certs(&self) -> bool {
        true
    }
}

/// Verifies a peer's server certificate against the current CA.
#[derive(Debug)]
struct CurrentVerifier(Arc<NodeTls>);

impl ServerCertVerifier for CurrentVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        self.0.current.load().peer_verifier.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        )
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0
            .current
            .load()
            .peer_verifier
            .verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0
            .current
            .load()
            .peer_verifier
            .verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0
            .current
            .load()
            .peer_verifier
            .supported_verify_schemes()
    }
}
