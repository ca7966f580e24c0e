//! Accepting connections: HTTP/1.1 and HTTP/2 on one listener, at most `max_connections` open
//! at once, request heads that must arrive within `header_read_timeout`, and a graceful stop.
//!
//! A client that trickles its request head (one byte a second, say) is closed once the
//! timeout passes, and so is a keep-alive connection idle for that long; at the connection cap
//! the listener stops accepting until one closes, so the kernel's backlog absorbs bursts
//! instead of the node running out of file descriptors.
//!
//! A connection closes with a lingering close (`linger.rs`), so that a client still sending a
//! body the node answered without reading gets that answer instead of a reset.
//!
//! Each accepted connection is served on one of the node's event loops (`net/loops.rs`)
//! from its first byte to its close.
//!
//! With TLS, every connection first completes a handshake with the material current at that
//! moment (within the same timeout); one that does not, plaintext HTTP included, is closed
//! without an answer. Whether the client presented a certificate that chains to the cluster
//! CA travels with each of its requests as a [`ClientCertificate`] extension.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tower::ServiceExt;

use super::head_errors::JsonHeadErrors;
use super::linger::LingeringClose;
use crate::net::loops::{self, EventLoops};
use crate::tls::NodeTls;

/// On every request of a TLS connection whose client presented a certificate that chains to
/// the cluster CA.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ClientCertificate;

/// How connections are accepted and bounded.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ConnectionLimits {
    /// Most connections open at once.
    pub max_connections: usize,
    /// Deadline for a whole request head, and for an idle keep-alive connection.
    pub header_read_timeout: Duration,
}

/// Serves `router` on `listener` (over TLS with `tls`) until `shutdown` resolves, each
/// connection on one of `loops` (`net/loops.rs`), then stops accepting, lets the requests
/// in flight finish, and returns.
pub(crate) async fn serve(
    listener: TcpListener,
    router: Router,
    limits: ConnectionLimits,
    tls: Option<Arc<NodeTls>>,
    loops: Arc<EventLoops>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let permits = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let graceful = GracefulShutdown::new();
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout);
    builder.http2().timer(TokioTimer::new());
    let builder = Arc::new(builder);
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            permit = Arc::clone(&permits).acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break,
            },
            () = &mut shutdown => break,
        };
        let accepted = tokio::select! {
            accepted = loops::accept(&listener, "HTTP") => accepted,
            () = &mut shutdown => break,
        };
        let Some((stream, peer)) = accepted else {
            continue;
        };
        let router = router.clone();
        let builder = Arc::clone(&builder);
        let watcher = graceful.watcher();
        let acceptor = tls.as_ref().map(|tls| tls.acceptor());
        loops.spawn(async move {
            let stream = match TcpStream::from_std(stream) {
                Ok(stream) => stream,
                Err(e) => {
                    tracing::debug!(%peer, error = %e, "cannot serve a connection on its loop");
                    return;
                }
            };
            let ended = match acceptor {
                None => {
                    let service = service(router, false);
                    let io = TokioIo::new(JsonHeadErrors::new(LingeringClose::new(stream)));
                    let connection = builder.serve_connection(io, service).into_owned();
                    watcher.watch(connection).await
                }
                Some(acceptor) => {
                    let handshake = acceptor.accept(stream);
                    let stream = match tokio::time::timeout(limits.header_read_timeout, handshake)
                        .await
                    {
                        Ok(Ok(stream)) => stream,
                        Ok(Err(e)) => {
                            tracing::debug!(%peer, error = %e, "TLS handshake failed; connection closed");
                            return;
                        }
                        Err(_) => {
                            tracing::debug!(%peer, "TLS handshake too slow; connection closed");
                            return;
                        }
                    };
                    let verified = stream
                        .get_ref()
                        .1
                        .peer_certificates()
                        .is_some_and(|certs| !certs.is_empty());
                    let service = service(router, verified);
                    let io = TokioIo::new(JsonHeadErrors::new(LingeringClose::new(stream)));
                    let connection = builder.serve_connection(io, service).into_owned();
                    watcher.watch(connection).await
                }
            };
            if let Err(e) = ended {
                tracing::trace!(%peer, error = %e, "connection ended with an error");
            }
            drop(permit);
        });
    }
    drop(listener);
    graceful.shutdown().await;
    Ok(())
}

/// The router as a hyper service; requests of a connection with a verified client
/// certificate carry [`ClientCertificate`].
fn service(
    router: Router,
    verified: bool,
) -> TowerToHyperService<
    impl tower::Service<
        hyper::Request<Incoming>,
        Response = axum::response::Response,
        Error = std::convert::Infallible,
        Future = impl Send,
    > + Clone,
> {
    TowerToHyperService::new(
        router.map_request(move |request: hyper::Request<Incoming>| {
            let mut request = request.map(Body::new);
            if verified {
                request.extensions_mut().insert(ClientCertificate);
            }
            request
        }),
    )
}
