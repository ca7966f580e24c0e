//! A lingering close for HTTP connections: the node's side is shut down (FIN), then what the
//! client still sends is read and dropped until it closes too, for at most [`LINGER`].
//!
//! hyper answers some requests before reading their bodies (a value over the size limit, a
//! bad query, a refused token) and then closes the connection. Closing a socket with unread
//! bytes in its receive buffer makes the kernel send a reset instead of a FIN, and a client
//! still writing its body gets "broken pipe" and never reads the answer that was sent. Reading
//! on after the FIN lets the client finish its write and read the JSON error. nginx does the
//! same (`lingering_close`).

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Longest a closing connection reads on, waiting for the client to close its side.
pub(crate) const LINGER: Duration = Duration::from_secs(2);

/// Where the close of a [`LingeringClose`] stands.
enum Closing {
    /// Not closing.
    Open,
    /// Our side is shut down; reading until the client's EOF or the deadline.
    Draining(Pin<Box<tokio::time::Sleep>>),
    /// Closed, or given up.
    Done,
}

/// Most reads of a closing connection in one poll, so that a client that keeps sending
/// cannot keep its event loop from the other connections on it.
const DRAIN_READS_PER_POLL: usize = 16;

/// A connection whose close lingers (see the module docs).
pub(crate) struct LingeringClose<IO> {
    io: IO,
    closing: Closing,
    linger: Duration,
}

impl<IO> LingeringClose<IO> {
    /// `io`, lingering [`LINGER`] at its close.
    pub(crate) fn new(io: IO) -> Self {
        Self::with_linger(io, LINGER)
    }

    /// `io`, lingering `linger` at its close.
    pub(crate) fn with_linger(io: IO, linger: Duration) -> Self {
        LingeringClose {
            io,
            closing: Closing::Open,
            linger,
        }
    }
}

impl<IO: AsyncRead + Unpin> AsyncRead for LingeringClose<IO> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl<IO: AsyncRead + AsyncWrite + Unpin> AsyncWrite for LingeringClose<IO> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        loop {
            match &mut this.closing {
                Closing::Open => {
                    ready!(Pin::new(&mut this.io).poll_shutdown(cx))?;
                    this.closing = Closing::Draining(Box::pin(tokio::time::sleep(this.linger)));
                }
                Closing::Draining(deadline) => {
                    // Polled first, so that its timer wakes this task even while the client
                    // keeps sending.
                    if deadline.as_mut().poll(cx).is_ready() {
                        this.closing = Closing::Done;
                        continue;
                    }
                    let mut scratch = [0u8; 4096];
                    for _ in 0..DRAIN_READS_PER_POLL {
                        let mut buf = ReadBuf::new(&mut scratch);
                        match Pin::new(&mut this.io).poll_read(cx, &mut buf) {
                            // More of what the client sends: dropped; read on.
                            Poll::Ready(Ok(())) if !buf.filled().is_empty() => {}
                            // The client's EOF, or its reset: nothing more to wait for.
                            Poll::Ready(_) => {
                                this.closing = Closing::Done;
                                return Poll::Ready(Ok(()));
                            }
                            Poll::Pending => return Poll::Pending,
                        }
                    }
                    // Still sending: the other connections of this loop go first.
                    cx.waker().wake_by_ref();
                    return Poll::Pending;
                }
                Closing::Done => return Poll::Ready(Ok(())),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A client still writing when the node closes gets to finish, reads the answer, and the
    /// close completes at its EOF.
    #[tokio::test]
    async fn a_client_still_writing_finishes_and_reads_the_answer() {
        let (client, server) = tokio::io::duplex(64);
        let mut server = LingeringClose::new(server);
        let (mut client_read, mut client_write) = tokio::io::split(client);
        let writer = tokio::spawn(async move {
            client_write.write_all(&[7u8; 100_000]).await?;
            client_write.shutdown().await
        });
        server.write_all(b"answer").await.expect("answer written");
        let closed = tokio::time::timeout(LINGER, server.shutdown()).await;
        assert!(
            closed.is_ok(),
            "the close ends at the client's EOF, before the deadline"
        );
        drop(server);
        let written = writer.await.expect("writer task");
        assert!(
            written.is_ok(),
            "the client finished its write: {written:?}"
        );
        let mut answer = Vec::new();
        client_read
            .read_to_end(&mut answer)
            .await
            .expect("answer read");
        assert_eq!(answer, b"answer");
    }

    /// A client that never stops sending holds the close only until the deadline, and the
    /// loop serving the connection keeps serving its other tasks meanwhile.
    #[tokio::test(flavor = "current_thread")]
    async fn a_client_that_keeps_sending_is_cut_off_at_the_deadline() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("address");
        let writer = std::thread::spawn(move || {
            use std::io::Write;
            let mut client = std::net::TcpStream::connect(addr).expect("connect");
            let chunk = [7u8; 65536];
            // Ends with an error once the node's side is gone.
            while client.write_all(&chunk).is_ok() {}
        });
        let (server, _) = listener.accept().expect("accept");
        server.set_nonblocking(true).expect("nonblocking");
        let server = tokio::net::TcpStream::from_std(server).expect("a tokio stream");
        let mut server = LingeringClose::with_linger(server, Duration::from_millis(300));
        let ticks = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let ticker = {
            let ticks = std::sync::Arc::clone(&ticks);
            tokio::spawn(async move {
                loop {
                    ticks.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    tokio::task::yield_now().await;
                }
            })
        };
        let closed = tokio::time::timeout(Duration::from_secs(30), server.shutdown()).await;
        assert!(
            closed.is_ok(),
            "the close ends at the deadline though the client sends on"
        );
        assert!(
            ticks.load(std::sync::atomic::Ordering::Relaxed) > 0,
            "another task of the loop ran while the connection drained"
        );
        ticker.abort();
        drop(server);
        writer.join().expect("writer thread");
    }

    /// A client that neither sends nor closes holds the close for at most [`LINGER`].
    #[tokio::test(start_paused = true)]
    async fn a_silent_client_holds_the_close_until_the_deadline() {
        let (_client, server) = tokio::io::duplex(64);
        let mut server = LingeringClose::new(server);
        let started = tokio::time::Instant::now();
        server.shutdown().await.expect("closed");
        assert_eq!(started.elapsed(), LINGER);
    }
}
