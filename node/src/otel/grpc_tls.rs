//! gRPC exports over `https://`: a tonic channel whose connections rustls makes with the
//! `[otel.tls]` settings — the CA to trust (or the bundled Mozilla roots), a client
//! certificate for collectors that ask for one — the same TLS set-up, and the same named
//! handshake failures, as every other distcache client. tonic's own TLS stack is not built.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;
use tonic::transport::{Channel, Endpoint};

use super::OtelError;
use super::config::Target;
use crate::net::tls::ClientTls;

/// A lazily connecting channel to the `https://` gRPC collector of `target`.
pub(crate) fn channel(target: &Target, tls: &ClientTls) -> Result<Channel, OtelError> {
    let bad = |message: String| OtelError::Exporter {
        signal: "grpc",
        message,
    };
    let mut config = tls.client_config().map_err(|e| bad(e.to_string()))?;
    config.alpn_protocols = vec![b"h2".to_vec()];
    let endpoint = Endpoint::from_shared(target.url.clone())
        .map_err(|e| bad(format!("`{}`: {e}", target.url)))?
        .timeout(target.timeout)
        .connect_timeout(target.timeout);
    Ok(endpoint.connect_with_connector_lazy(Connector {
        tls: TlsConnector::from(Arc::new(config)),
    }))
}

/// Opens TCP then TLS to the host and port of a URI (443 without a port).
#[derive(Clone)]
struct Connector {
    tls: TlsConnector,
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

impl tower::Service<http::Uri> for Connector {
    type Response = TokioIo<TlsStream<TcpStream>>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, BoxError>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: http::Uri) -> Self::Future {
        let tls = self.tls.clone();
        Box::pin(async move {
            let host = uri
                .host()
                .ok_or_else(|| format!("`{uri}` has no host"))?
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_owned();
            let port = uri.port_u16().unwrap_or(443);
            let tcp = TcpStream::connect((host.as_str(), port)).await?;
            tcp.set_nodelay(true)?;
            let name = ServerName::try_from(host)?;
            let stream = tls.connect(name, tcp).await?;
            Ok(TokioIo::new(stream))
        })
    }
}
