//! Accepting connections: HTTP/1.1 and HTTP/2 on one listener, at most `max_connections` open
//! at once, request heads that must arrive within `header_read_timeout`, and a graceful stop.
//!
//! A client that trickles its request head (one byte a second, say) is closed once the
//! timeout passes, and so is a keep-alive connection idle for that long; at the connection cap
//! the listener stops accepting until one closes, so the kernel's backlog absorbs bursts
//! instead of the node running out of file descriptors.

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
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tower::ServiceExt;

use super::head_errors::JsonHeadErrors;

/// How connections are accepted and bounded.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ConnectionLimits {
    /// Most connections open at once.
    pub max_connections: usize,
    /// Deadline for a whole request head, and for an idle keep-alive connection.
    pub header_read_timeout: Duration,
}

/// Serves `router` on `listener` until `shutdown` resolves, then stops accepting, lets the
/// requests in flight finish, and returns.
pub(crate) async fn serve(
    listener: TcpListener,
    router: Router,
    limits: ConnectionLimits,
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
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            permit = Arc::clone(&permits).acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break,
            },
            () = &mut shutdown => break,
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    accept_failed(&e).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        if let Err(e) = stream.set_nodelay(true) {
            tracing::debug!(%peer, error = %e, "cannot set TCP_NODELAY");
        }
        let service = TowerToHyperService::new(
            router
                .clone()
                .map_request(|request: hyper::Request<Incoming>| request.map(Body::new)),
        );
        let connection = builder
            .serve_connection(TokioIo::new(JsonHeadErrors::new(stream)), service)
            .into_owned();
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::trace!(%peer, error = %e, "connection ended with an error");
            }
            drop(permit);
        });
    }
    drop(listener);
    graceful.shutdown().await;
    Ok(())
}

/// Accept errors are about one connection (reset before accept) or about the process (out
/// of file descriptors); neither ends the server. The latter gets a pause so the loop does
/// not spin while nothing can be accepted.
async fn accept_failed(error: &std::io::Error) {
    use std::io::ErrorKind;
    match error.kind() {
        ErrorKind::ConnectionAborted | ErrorKind::ConnectionReset | ErrorKind::Interrupted => {
            tracing::debug!(error = %error, "a connection failed before it was accepted");
        }
        _ => {
            tracing::warn!(error = %error, "cannot accept connections; retrying in 100ms");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}
