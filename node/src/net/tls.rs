//! TLS of distcache's HTTP clients: which CAs to trust and which certificate to present
//! ([`ClientTls`]), the rustls configuration built from that, and [`TlsFailure`], which names
//! why a handshake failed (unknown CA, name mismatch, expiry, …) instead of a bare "connect
//! failed".
//!
//! The crypto provider is always rustls' `ring`, chosen explicitly, so nothing depends on a
//! process-wide default. Without a CA file, the Mozilla roots shipped with `webpki-roots` are
//! trusted: what a client of a public `https://` endpoint expects.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{AlertDescription, CertificateError, DigitallySignedStruct, SignatureScheme};
use rustls_pki_types::pem::PemObject;
use serde::{Deserialize, Serialize};

/// TLS settings of an HTTP client: which CAs to trust, an optional client certificate.
///
/// The default trusts the bundled Mozilla roots and presents no certificate.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ClientTls {
    /// PEM file of the CA certificates to trust instead of the bundled Mozilla roots.
    pub ca: Option<PathBuf>,
    /// PEM file of the client certificate (chain) to present; needs `key`.
    pub cert: Option<PathBuf>,
    /// PEM file of the client certificate's private key (PKCS#8, PKCS#1 or SEC1).
    pub key: Option<PathBuf>,
    /// Accept any server certificate. Anyone on the path can then read and change the
    /// traffic: for a first test only. Every client built with it logs a warning.
    pub insecure_skip_verify: bool,
}

/// Why TLS settings cannot be used: the file and the problem.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    /// A file could not be read.
    #[error("cannot read {}: {reason}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// What the system said.
        reason: String,
    },
    /// A file is not PEM, or a PEM block in it is broken.
    #[error("{} is not a valid PEM file: {reason}", path.display())]
    BadPem {
        /// The file.
        path: PathBuf,
        /// What was wrong.
        reason: String,
    },
    /// A certificate file has no `CERTIFICATE` block.
    #[error("{} holds no PEM certificate", path.display())]
    NoCertificate {
        /// The file.
        path: PathBuf,
    },
    /// A key file has no private key block.
    #[error("{} holds no PEM private key", path.display())]
    NoKey {
        /// The file.
        path: PathBuf,
    },
    /// A CA certificate was refused as a trust anchor.
    #[error("{} holds a certificate that cannot be a CA: {reason}", path.display())]
    BadCa {
        /// The file.
        path: PathBuf,
        /// What rustls said.
        reason: String,
    },
    /// The private key is not the certificate's.
    #[error("the key in {} does not match the certificate in {}", key.display(), cert.display())]
    KeyMismatch {
        /// The certificate file.
        cert: PathBuf,
        /// The key file.
        key: PathBuf,
    },
    /// The certificate and key cannot be used together for another reason.
    #[error("the client certificate {} (key {}) is not usable: {reason}", cert.display(), key.display())]
    BadClientCert {
        /// The certificate file.
        cert: PathBuf,
        /// The key file.
        key: PathBuf,
        /// What rustls said.
        reason: String,
    },
    /// Only one of certificate and key was given.
    #[error("a client certificate needs both a certificate and a key; the {missing} is missing")]
    Incomplete {
        /// `certificate` or `key`.
        missing: &'static str,
    },
    /// rustls refused the configuration.
    #[error("cannot set up TLS: {0}")]
    Setup(String),
}

impl ClientTls {
    /// True when any setting differs from the default: a bare `host:port` endpoint then means
    /// `https://`.
    pub fn is_configured(&self) -> bool {
        *self != ClientTls::default()
    }

    /// The rustls client configuration: roots (the CA file, or the bundled Mozilla roots),
    /// the client certificate when given, ALPN `http/1.1` (like the plaintext clients), the
    /// `ring` provider. Files are read now; a problem names the file.
    pub fn client_config(&self) -> Result<rustls::ClientConfig, TlsError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ClientConfig::builder_with_provider(Arc::clone(&provider))
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsError::Setup(e.to_string()))?;
        let builder = if self.insecure_skip_verify {
            tracing::warn!(
                "TLS certificate verification is OFF (insecure_skip_verify): any server is \
                 accepted, and anyone on the path can read and change the traffic"
            );
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(AcceptAnyServer { provider }))
        } else {
            builder.with_root_certificates(self.roots()?)
        };
        let mut config = match (&self.cert, &self.key) {
            (None, None) => builder.with_no_client_auth(),
            (Some(_), None) => return Err(TlsError::Incomplete { missing: "key" }),
            (None, Some(_)) => {
                return Err(TlsError::Incomplete {
                    missing: "certificate",
                });
            }
            (Some(cert), Some(key)) => {
                let chain = read_certificates(cert)?;
                let private = read_key(key)?;
                builder
                    .with_client_auth_cert(chain, private)
                    .map_err(|e| match e {
                        rustls::Error::InconsistentKeys(rustls::InconsistentKeys::KeyMismatch) => {
                            TlsError::KeyMismatch {
                                cert: cert.clone(),
                                key: key.clone(),
                            }
                        }
                        other => TlsError::BadClientCert {
                            cert: cert.clone(),
                            key: key.clone(),
                            reason: other.to_string(),
                        },
                    })?
            }
        };
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(config)
    }

    fn roots(&self) -> Result<rustls::RootCertStore, TlsError> {
        let Some(path) = &self.ca else {
            return Ok(rustls::RootCertStore {
                roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
            });
        };
        let mut roots = rustls::RootCertStore::empty();
        for cert in read_certificates(path)? {
            roots.add(cert).map_err(|e| TlsError::BadCa {
                path: path.clone(),
                reason: e.to_string(),
            })?;
        }
        Ok(roots)
    }
}

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|e| TlsError::Read {
        path: path.to_owned(),
        reason: e.to_string(),
    })
}

/// Every certificate of the PEM file at `path`; at least one.
pub(crate) fn read_certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let pem = read(path)?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::BadPem {
            path: path.to_owned(),
            reason: e.to_string(),
        })?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificate {
            path: path.to_owned(),
        });
    }
    Ok(certs)
}

/// The first private key of the PEM file at `path`.
pub(crate) fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    let pem = read(path)?;
    PrivateKeyDer::from_pem_slice(&pem).map_err(|e| match e {
        rustls_pki_types::pem::Error::NoItemsFound => TlsError::NoKey {
            path: path.to_owned(),
        },
        other => TlsError::BadPem {
            path: path.to_owned(),
            reason: other.to_string(),
        },
    })
}

/// Accepts every server certificate, still checking that the server holds its key (the
/// handshake signature), so the connection is at least to whoever owns that certificate.
#[derive(Debug)]
struct AcceptAnyServer {
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for AcceptAnyServer {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// Why a TLS connection failed, in words a person can act on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TlsFailure {
    /// The server's certificate is not signed by a trusted CA.
    #[error("TLS: unknown CA: the server's certificate is not signed by a trusted CA")]
    UnknownIssuer,
    /// The server's certificate is for other names.
    #[error("TLS: certificate name mismatch: the server's certificate is not valid for {0}")]
    NameMismatch(String),
    /// The server's certificate has expired.
    #[error("TLS: the server's certificate has expired")]
    Expired,
    /// The server's certificate is not valid yet.
    #[error("TLS: the server's certificate is not valid yet")]
    NotYetValid,
    /// The server's certificate was revoked.
    #[error("TLS: the server's certificate was revoked")]
    Revoked,
    /// The server's certificate was refused for another reason.
    #[error("TLS: the server's certificate was refused: {0}")]
    BadCertificate(String),
    /// The server asks for a client certificate and none was presented.
    #[error("TLS: the server requires a client certificate and none was given")]
    ClientCertificateRequired,
    /// The server refused the client certificate presented.
    #[error("TLS: the server refused the client certificate ({0})")]
    ClientCertificateRefused(String),
    /// The server answered something that is not TLS: likely a plain `http://` server.
    #[error("TLS: the server does not speak TLS (is it an http:// endpoint?)")]
    NotTls,
    /// Another handshake failure.
    #[error("TLS: handshake failed: {0}")]
    Other(String),
}

impl TlsFailure {
    /// The TLS failure behind `error`, if one is: walks `source()` (and into `io::Error`s,
    /// whose `source()` skips the error they wrap) to a `rustls::Error`.
    pub fn find(error: &(dyn std::error::Error + 'static)) -> Option<TlsFailure> {
        let mut next = Some(error);
        while let Some(e) = next {
            if let Some(tls) = e.downcast_ref::<rustls::Error>() {
                return Some(TlsFailure::of(tls));
            }
            if let Some(io) = e.downcast_ref::<std::io::Error>()
                && let Some(inner) = io.get_ref()
            {
                if let Some(tls) = inner.downcast_ref::<rustls::Error>() {
                    return Some(TlsFailure::of(tls));
                }
                if let Some(found) = TlsFailure::find(inner) {
                    return Some(found);
                }
            }
            next = e.source();
        }
        None
    }

    /// The failure a rustls error stands for.
    pub fn of(error: &rustls::Error) -> TlsFailure {
        match error {
            rustls::Error::InvalidCertificate(cert) => match cert {
                CertificateError::UnknownIssuer => TlsFailure::UnknownIssuer,
                CertificateError::NotValidForName => TlsFailure::NameMismatch("this host".into()),
                CertificateError::NotValidForNameContext { expected, .. } => {
                    TlsFailure::NameMismatch(format!("{expected:?}"))
                }
                CertificateError::Expired | CertificateError::ExpiredContext { .. } => {
                    TlsFailure::Expired
                }
                CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
                    TlsFailure::NotYetValid
                }
                CertificateError::Revoked => TlsFailure::Revoked,
                other => TlsFailure::BadCertificate(format!("{other:?}")),
            },
            rustls::Error::AlertReceived(AlertDescription::CertificateRequired) => {
                TlsFailure::ClientCertificateRequired
            }
            rustls::Error::AlertReceived(
                alert @ (AlertDescription::UnknownCA
                | AlertDescription::BadCertificate
                | AlertDescription::CertificateExpired
                | AlertDescription::CertificateRevoked
                | AlertDescription::CertificateUnknown
                | AlertDescription::UnsupportedCertificate
                | AlertDescription::AccessDenied),
            ) => TlsFailure::ClientCertificateRefused(format!("alert {alert:?}")),
            rustls::Error::InvalidMessage(_) => TlsFailure::NotTls,
            other => TlsFailure::Other(other.to_string()),
        }
    }
}

/// `error` with its causes, the TLS failure named first when there is one.
pub(crate) fn describe(error: &(dyn std::error::Error + 'static)) -> String {
    match TlsFailure::find(error) {
        Some(tls) => tls.to_string(),
        None => crate::error::with_causes(error),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A missing file, a file without a certificate and half a client certificate each name
    /// their problem.
    #[test]
    fn bad_settings_name_the_file_and_problem() {
        let dir = tempfile::tempdir().expect("tempdir");
        let missing = dir.path().join("nope.pem");
        let tls = ClientTls {
            ca: Some(missing.clone()),
            ..ClientTls::default()
        };
        let err = tls.client_config().expect_err("missing file");
        assert!(matches!(&err, TlsError::Read { path, .. } if *path == missing));
        assert!(err.to_string().contains("nope.pem"), "{err}");

        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "no pem here\n").expect("write");
        let tls = ClientTls {
            ca: Some(empty.clone()),
            ..ClientTls::default()
        };
        let err = tls.client_config().expect_err("empty file");
        assert!(matches!(err, TlsError::NoCertificate { .. }), "{err}");

        let tls = ClientTls {
            cert: Some(empty.clone()),
            ..ClientTls::default()
        };
        let err = tls.client_config().expect_err("no key");
        assert!(
            matches!(err, TlsError::Incomplete { missing: "key" }),
            "{err}"
        );

        let tls = ClientTls {
            cert: Some(empty.clone()),
            key: Some(empty),
            ..ClientTls::default()
        };
        let err = tls.client_config().expect_err("not a certificate");
        assert!(matches!(err, TlsError::NoCertificate { .. }), "{err}");
    }

    /// The default trusts the bundled roots; any setting makes bare endpoints https.
    #[test]
    fn default_uses_bundled_roots() {
        let tls = ClientTls::default();
        assert!(!tls.is_configured());
        tls.client_config().expect("default config");
        let insecure = ClientTls {
            insecure_skip_verify: true,
            ..ClientTls::default()
        };
        assert!(insecure.is_configured());
        insecure.client_config().expect("insecure config");
    }

    /// rustls errors map to named failures; an io::Error wrapping one is looked through.
    #[test]
    fn failures_are_named() {
        let unknown = rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer);
        let wrapped = std::io::Error::new(std::io::ErrorKind::InvalidData, unknown);
        assert_eq!(TlsFailure::find(&wrapped), Some(TlsFailure::UnknownIssuer));
        assert!(describe(&wrapped).contains("unknown CA"));
        let expired = rustls::Error::InvalidCertificate(CertificateError::Expired);
        assert_eq!(TlsFailure::of(&expired), TlsFailure::Expired);
        let required = rustls::Error::AlertReceived(AlertDescription::CertificateRequired);
        assert_eq!(
            TlsFailure::of(&required),
            TlsFailure::ClientCertificateRequired
        );
        let plain = std::io::Error::other("connection refused");
        assert_eq!(TlsFailure::find(&plain), None);
    }
}
