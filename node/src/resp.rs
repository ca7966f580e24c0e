//! The Redis-protocol front: RESP2 and RESP3 on a listener of its own
//! (`server.resp_listen`), so that every Redis client, `redis-cli` and `redis-benchmark` can
//! read and write the cache.
//!
//! ```text
//! GET users:42                 keyspace `users`, key `42` (split at the first `:`); a key
//!                              without `:` is in `server.resp_default_keyspace`, if set
//! SET k v [EX s | PX ms]       MGET k…  MSET k v …  DEL k…  EXISTS k…
//! PING ECHO HELLO 2|3 [AUTH u t] [SETNAME n]  AUTH [user] token  QUIT  SELECT 0
//! CLIENT SETNAME|GETNAME|ID|SETINFO  COMMAND [COUNT|DOCS|INFO]  INFO  CONFIG GET
//! ```
//!
//! The same semantics as the HTTP API: a read loads a missing key through its owner and the
//! data source, a write goes to the owner and drops the other nodes' copies, a key that
//! neither the cache nor the source has is nil (`$-1`, or `_` in RESP3), and every other
//! error is `-<CODE> message` with the stable code of the HTTP API (`-KEYSPACE_NOT_FOUND …`).
//! With tokens configured, a connection must `AUTH` (or `HELLO … AUTH`) before anything but
//! `HELLO`, `AUTH`, `PING` and `QUIT`, and the token's role and keyspaces apply as on HTTP.
//! Every command runs under the request deadline (`server.request_timeout`).
//!
//! A connection reads as much as the socket has, answers every complete command in it in
//! order, and writes the replies with one write (`resp/codec.rs` bounds what a command may
//! be; malformed input is answered `-ERR Protocol error: …` and the connection closed).
//! At most `server.max_connections` connections are open at once; a command left half-sent
//! for `server.header_read_timeout` closes its connection. At shutdown the listener closes,
//! idle connections close, and commands already read are answered (within the request
//! deadline) before their connection closes. With TLS (`[tls]`), RESP speaks TLS too.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::net::loops::{self, EventLoops};
use crate::server::auth::Tokens;
use crate::tls::NodeTls;

mod codec;
mod command;
mod commands;
mod reply;
mod session;

use codec::{CodecLimits, ProtocolError};
use command::Command;
use reply::Reply;
use session::{Flow, Session};

/// Replies buffered past this are written before the next command runs, so that a long
/// pipeline of large values does not pile up in memory.
const FLUSH_AT: usize = 64 << 10;

/// What a read asks the socket for at least.
const READ_CHUNK: usize = 16 << 10;

/// What every connection of the front shares.
pub(crate) struct Front {
    pub engine: Engine,
    /// `None`: the node is open.
    pub tokens: Option<Arc<Tokens>>,
    /// The keyspace of keys without a `:`.
    pub default_keyspace: Option<String>,
    /// The deadline of each command.
    pub request_timeout: Duration,
    /// How long a half-sent command may wait for the rest.
    pub partial_timeout: Duration,
    /// What a command may be.
    pub limits: CodecLimits,
    /// The node's name, as `INFO` says.
    pub node_id: String,
    /// How many of the node's event loops (the first ones) connections spread over.
    pub io_threads: usize,
    pub(crate) stats: FrontStats,
}

/// Counts `INFO` shows.
#[derive(Debug)]
pub(crate) struct FrontStats {
    started: Instant,
    connections: AtomicU64,
    connected: AtomicUsize,
    commands: AtomicU64,
    next_id: AtomicU64,
}

impl Default for FrontStats {
    fn default() -> Self {
        FrontStats {
            started: Instant::now(),
            connections: AtomicU64::new(0),
            connected: AtomicUsize::new(0),
            commands: AtomicU64::new(0),
            next_id: AtomicU64::new(1),
        }
    }
}

impl Front {
    /// The front of `engine` under the node's server settings.
    pub fn new(
        engine: Engine,
        tokens: Option<Arc<Tokens>>,
        config: &crate::server::ServerConfig,
        node_id: &str,
    ) -> Self {
        let limits = engine.config().limits.clone();
        Front {
            limits: CodecLimits::new(
                limits.max_value_bytes,
                limits.max_batch_keys,
                config.max_request_bytes,
            ),
            engine,
            tokens,
            default_keyspace: config.resp_default_keyspace.clone(),
            request_timeout: config.request_timeout,
            partial_timeout: config.header_read_timeout,
            node_id: node_id.to_owned(),
            io_threads: config.resp_io_threads_in_use(),
            stats: FrontStats::default(),
        }
    }

    /// Runs `operation` under the deadline of a command `received` then. The deadline's
    /// timer is armed only when the operation does not finish at its first poll (a hit
    /// does), and the clock is read once per read of the socket, not per command.
    pub async fn bounded<T>(
        &self,
        received: tokio::time::Instant,
        operation: impl Future<Output = Result<T>>,
    ) -> Result<T> {
        let mut operation = std::pin::pin!(operation);
        let first = std::future::poll_fn(|cx| {
            std::task::Poll::Ready(match operation.as_mut().poll(cx) {
                std::task::Poll::Ready(done) => Some(done),
                std::task::Poll::Pending => None,
            })
        })
        .await;
        if let Some(done) = first {
            return done;
        }
        let limit = self.request_timeout;
        tokio::time::timeout_at(received + limit, operation)
            .await
            .unwrap_or_else(|_| Err(Error::timeout("command", limit)))
    }
}

/// Serves RESP on `listener` (over TLS with `tls`) until `shutdown` resolves, each
/// connection on one of the first `front.io_threads` of `loops` (`net/loops.rs`); then
/// stops accepting, closes idle connections, lets the others answer what they have read
/// (for at most the request deadline and a second), closes what is left, and returns.
pub(crate) async fn serve(
    listener: TcpListener,
    front: Arc<Front>,
    max_connections: usize,
    tls: Option<Arc<NodeTls>>,
    loops: Arc<EventLoops>,
    mut shutdown: watch::Receiver<bool>,
) {
    let permits = Arc::new(Semaphore::new(max_connections.max(1)));
    let connections = TaskTracker::new();
    let overdue = CancellationToken::new();
    loop {
        let permit = tokio::select! {
            permit = Arc::clone(&permits).acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break,
            },
            () = crate::net::stopped(&mut shutdown) => break,
        };
        let accepted = tokio::select! {
            accepted = loops::accept(&listener, "RESP") => accepted,
            () = crate::net::stopped(&mut shutdown) => break,
        };
        let Some((stream, peer)) = accepted else {
            continue;
        };
        front.stats.connections.fetch_add(1, Ordering::Relaxed);
        let width = front.io_threads;
        let front = Arc::clone(&front);
        let acceptor = tls.as_ref().map(|tls| tls.acceptor());
        let stop = shutdown.clone();
        let overdue = overdue.clone();
        let task = connections.track_future(async move {
            tokio::select! {
                () = connection(stream, peer, &front, acceptor, stop) => {}
                () = overdue.cancelled() => {}
            }
            drop(permit);
        });
        loops.spawn_within(width, task);
    }
    drop(listener);
    // Connections see the same signal: idle ones close, busy ones finish what they read.
    connections.close();
    let limit = front.request_timeout + Duration::from_secs(1);
    if tokio::time::timeout(limit, connections.wait())
        .await
        .is_err()
    {
        tracing::warn!(
            connections = connections.len(),
            "RESP connections still busy after the request deadline; closing them"
        );
        overdue.cancel();
        connections.wait().await;
    }
}

/// Serves one accepted connection on the loop it was handed to: the TLS handshake, if
/// any, then its commands until it ends.
async fn connection(
    stream: std::net::TcpStream,
    peer: SocketAddr,
    front: &Front,
    acceptor: Option<tokio_rustls::TlsAcceptor>,
    stop: watch::Receiver<bool>,
) {
    let stream = match TcpStream::from_std(stream) {
        Ok(stream) => stream,
        Err(e) => {
            tracing::debug!(%peer, error = %e, "cannot serve a RESP connection on its loop");
            return;
        }
    };
    front.stats.connected.fetch_add(1, Ordering::Relaxed);
    let ended = match acceptor {
        None => serve_connection(stream, front, stop).await,
        Some(acceptor) => {
            let handshake = acceptor.accept(stream);
            match tokio::time::timeout(front.partial_timeout, handshake).await {
                Ok(Ok(stream)) => serve_connection(stream, front, stop).await,
                Ok(Err(e)) => Err(e),
                Err(_) => Err(std::io::ErrorKind::TimedOut.into()),
            }
        }
    };
    if let Err(e) = ended {
        tracing::trace!(%peer, error = %e, "RESP connection ended with an error");
    }
    front.stats.connected.fetch_sub(1, Ordering::Relaxed);
}

/// One connection: read, answer every complete command read, write, until the client
/// leaves, says `QUIT`, breaks the protocol, or the node stops.
async fn serve_connection<S>(
    mut stream: S,
    front: &Front,
    mut shutdown: watch::Receiver<bool>,
) -> std::io::Result<()>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut input = BytesMut::with_capacity(READ_CHUNK);
    let mut reply = Reply::new(READ_CHUNK);
    let mut args = Vec::with_capacity(8);
    let mut session = Session::new(front);
    let mut received = tokio::time::Instant::now();
    let mut commands = 0;
    // One wait for the shutdown signal for the connection's life, not one per read: a new
    // one would register with the signal's waiters (a lock) on every read.
    let mut stopped = std::pin::pin!(crate::net::stopped(&mut shutdown));
    loop {
        loop {
            let parsed = codec::parse(&input, &front.limits, &mut args);
            let len = match parsed {
                Ok(Some(len)) => len,
                Ok(None) => break,
                Err(e) => return refuse(&mut stream, &mut reply, &e).await,
            };
            let Some(name) = args.first() else {
                input.advance(len);
                continue;
            };
            commands += 1;
            let flow = if input.get(name.clone()).is_some_and(command::keeps_values) {
                let frame = input.split_to(len).freeze();
                let command = Command::shared(&frame, &args, received);
                session.execute(front, command, &mut reply).await
            } else {
                let command = Command::borrowed(&input[..len], &args, received);
                let flow = session.execute(front, command, &mut reply).await;
                input.advance(len);
                flow
            };
            if flow == Flow::Close {
                front.stats.commands.fetch_add(commands, Ordering::Relaxed);
                stream.write_all(reply.buffer()).await?;
                return stream.shutdown().await;
            }
            if reply.len() >= FLUSH_AT {
                write_out(&mut stream, &mut reply).await?;
            }
        }
        // Counted once per read: a shared counter touched per command costs a cache line
        // moving between cores.
        front.stats.commands.fetch_add(commands, Ordering::Relaxed);
        commands = 0;
        if reply.len() > 0 {
            write_out(&mut stream, &mut reply).await?;
        }
        if input.len() >= front.limits.max_command {
            let e = ProtocolError::CommandTooLong {
                max: front.limits.max_command,
            };
            return refuse(&mut stream, &mut reply, &e).await;
        }
        input.reserve(READ_CHUNK);
        let read = if input.is_empty() {
            tokio::select! {
                biased;
                () = &mut stopped => return Ok(()),
                read = stream.read_buf(&mut input) => read?,
            }
        } else {
            let rest = tokio::time::timeout(front.partial_timeout, stream.read_buf(&mut input));
            tokio::select! {
                biased;
                () = &mut stopped => return Ok(()),
                read = rest => match read {
                    Ok(read) => read?,
                    Err(_) => {
                        tracing::debug!("half-sent RESP command timed out; connection closed");
                        return Ok(());
                    }
                },
            }
        };
        if read == 0 {
            return Ok(());
        }
        received = tokio::time::Instant::now();
    }
}

async fn write_out<S: AsyncWrite + Unpin>(
    stream: &mut S,
    reply: &mut Reply,
) -> std::io::Result<()> {
    stream.write_all(reply.buffer()).await?;
    reply.buffer().clear();
    Ok(())
}

/// Answers `-ERR Protocol error: …` after the replies already due, and closes.
async fn refuse<S: AsyncWrite + Unpin>(
    stream: &mut S,
    reply: &mut Reply,
    error: &ProtocolError,
) -> std::io::Result<()> {
    tracing::debug!(%error, "RESP protocol error; connection closed");
    reply.error("ERR", &format!("Protocol error: {error}"));
    stream.write_all(reply.buffer()).await?;
    stream.shutdown().await
}
