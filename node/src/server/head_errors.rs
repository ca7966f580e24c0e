//! JSON bodies for the answers hyper gives by itself.
//!
//! A request whose head cannot be parsed (a NUL or 0xFF byte in the request line, a head over
//! the size limit) never reaches the router: hyper answers it on its own, with an empty body,
//! and closes the connection. This wrapper around the connection recognises those answers —
//! a 400, 414 or 431 with `content-length: 0`, which the router never sends, since every
//! error it sends has a JSON body — and writes instead the same status with the JSON error
//! every other refusal carries.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::wire::{ErrorBody, WireCode};

/// Most bytes of a request head hyper reads before it answers 431 (its default buffer).
pub(crate) const MAX_HEAD_BYTES: usize = 8192 + 4096 * 100;

/// Most headers in one request before hyper answers 431.
pub(crate) const MAX_HEADERS: usize = 100;

/// A connection whose automatic error answers get JSON bodies.
pub(crate) struct JsonHeadErrors<IO> {
    io: IO,
    /// A replacement answer not yet fully written, and how much of it was.
    pending: Option<(Vec<u8>, usize)>,
}

impl<IO> JsonHeadErrors<IO> {
    pub(crate) fn new(io: IO) -> Self {
        JsonHeadErrors { io, pending: None }
    }
}

/// The JSON answer that replaces `head`, if `head` is one of hyper's automatic error answers.
fn replacement(head: &[u8]) -> Option<Vec<u8>> {
    let (status, code, message) = if head.starts_with(b"HTTP/1.1 400 ") {
        (
            "400 Bad Request",
            WireCode::MalformedRequest,
            "the request line or a header is malformed (control or non-ASCII bytes, a bad \
             method, URI or version); nothing was done"
                .to_owned(),
        )
    } else if head.starts_with(b"HTTP/1.1 431 ") {
        (
            "431 Request Header Fields Too Large",
            WireCode::HeadersTooLarge,
            format!(
                "the request head is over this node's limit of {} KiB or {MAX_HEADERS} headers",
                MAX_HEAD_BYTES / 1024
            ),
        )
    } else if head.starts_with(b"HTTP/1.1 414 ") {
        (
            "414 URI Too Long",
            WireCode::UriTooLong,
            format!(
                "the request URI is over this node's limit of {} KiB",
                MAX_HEAD_BYTES / 1024
            ),
        )
    } else {
        return None;
    };
    let end = head.windows(4).position(|w| w == b"\r\n\r\n")?;
    let empty = head[..end + 2]
        .split(|b| *b == b'\n')
        .any(|line| line.eq_ignore_ascii_case(b"content-length: 0\r"));
    if !empty {
        return None;
    }
    let mut body = ErrorBody::invalid_request(message);
    body.code = code.as_str().to_owned();
    let json = serde_json::to_vec(&body).ok()?;
    let mut out = format!(
        "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        json.len()
    )
    .into_bytes();
    out.extend_from_slice(&json);
    Some(out)
}

impl<IO: AsyncWrite + Unpin> JsonHeadErrors<IO> {
    /// Writes what is left of a replacement answer.
    fn drive(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while let Some((bytes, written)) = &mut self.pending {
            if *written == bytes.len() {
                self.pending = None;
                break;
            }
            let n = ready!(Pin::new(&mut self.io).poll_write(cx, &bytes[*written..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            *written += n;
        }
        Poll::Ready(Ok(()))
    }
}

impl<IO: AsyncRead + Unpin> AsyncRead for JsonHeadErrors<IO> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for JsonHeadErrors<IO> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        ready!(self.drive(cx))?;
        if let Some(answer) = replacement(buf) {
            self.pending = Some((answer, 0));
            // The caller's bytes count as written: the replacement stands for them.
            let _ = self.drive(cx)?;
            return Poll::Ready(Ok(buf.len()));
        }
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        ready!(self.drive(cx))?;
        if let Some(first) = bufs.iter().find(|b| !b.is_empty())
            && replacement(first).is_some()
        {
            return self.poll_write(cx, first);
        }
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.drive(cx))?;
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.drive(cx))?;
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// hyper's empty automatic answers are replaced; anything with a body is left alone.
    #[test]
    fn only_empty_automatic_answers_are_replaced() {
        let hyper_400 = b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\ndate: x\r\n\r\n";
        let out = replacement(hyper_400).expect("replaced");
        let text = String::from_utf8(out).expect("utf8");
        assert!(text.starts_with("HTTP/1.1 400 Bad Request\r\n"), "{text}");
        assert!(text.contains("\"code\":\"MALFORMED_REQUEST\""), "{text}");
        let hyper_431 =
            b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-length: 0\r\n\r\n";
        assert!(replacement(hyper_431).is_some());
        let ours = b"HTTP/1.1 400 Bad Request\r\ncontent-type: application/json\r\ncontent-length: 52\r\n\r\n{";
        assert!(replacement(ours).is_none());
        assert!(replacement(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n").is_none());
    }
}
