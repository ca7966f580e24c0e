//! Writing replies: each RESP type appended to a connection's one output buffer, in the
//! protocol version the connection chose (`HELLO 2` or `HELLO 3`).
//!
//! Replies of pipelined commands accumulate in the buffer and go out in one write. A value
//! is appended with one `extend_from_slice` after its length line; numbers are written
//! without formatting machinery.

use bytes::{BufMut, BytesMut};

use crate::error::Error;

/// The RESP version a connection speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Protocol {
    /// RESP2 (the default): nil is `$-1`, maps are flat arrays.
    Resp2,
    /// RESP3: nil is `_`, maps are maps.
    Resp3,
}

impl Protocol {
    /// The number `HELLO` names it by.
    pub fn version(self) -> i64 {
        match self {
            Protocol::Resp2 => 2,
            Protocol::Resp3 => 3,
        }
    }
}

/// A connection's output buffer and protocol.
pub(crate) struct Reply {
    buf: BytesMut,
    pub protocol: Protocol,
}

impl Reply {
    /// An empty buffer of `capacity` bytes speaking RESP2.
    pub fn new(capacity: usize) -> Self {
        Reply {
            buf: BytesMut::with_capacity(capacity),
            protocol: Protocol::Resp2,
        }
    }

    /// What is waiting to be written.
    pub fn buffer(&mut self) -> &mut BytesMut {
        &mut self.buf
    }

    /// Bytes waiting to be written.
    pub fn len(&self) -> usize {
        self.buf.len()
    }

    /// `+text` (no CR or LF in `text`).
    pub fn simple(&mut self, text: &str) {
        self.buf.put_u8(b'+');
        self.buf.extend_from_slice(text.as_bytes());
        self.crlf();
    }

    /// `+OK`.
    pub fn ok(&mut self) {
        self.buf.extend_from_slice(b"+OK\r\n");
    }

    /// `-CODE message`: CR and LF in `message` become spaces (a reply is one line).
    pub fn error(&mut self, code: &str, message: &str) {
        self.buf.put_u8(b'-');
        self.buf.extend_from_slice(code.as_bytes());
        self.buf.put_u8(b' ');
        for &b in message.as_bytes() {
            self.buf
                .put_u8(if b == b'\r' || b == b'\n' { b' ' } else { b });
        }
        self.crlf();
    }

    /// An engine error as `-<CODE> message`, with the error's stable code.
    pub fn engine_error(&mut self, error: &Error) {
        self.error(error.code().as_str(), &error.to_string());
    }

    /// `:n`.
    pub fn integer(&mut self, n: i64) {
        self.line(b':', n);
    }

    /// `$len` and the bytes.
    pub fn bulk(&mut self, value: &[u8]) {
        self.length(b'$', value.len());
        self.buf.extend_from_slice(value);
        self.crlf();
    }

    /// The nil of the connection's protocol: `$-1` or `_`.
    pub fn nil(&mut self) {
        match self.protocol {
            Protocol::Resp2 => self.buf.extend_from_slice(b"$-1\r\n"),
            Protocol::Resp3 => self.buf.extend_from_slice(b"_\r\n"),
        }
    }

    /// A bulk string, or nil for `None`.
    pub fn optional(&mut self, value: Option<&[u8]>) {
        match value {
            Some(value) => self.bulk(value),
            None => self.nil(),
        }
    }

    /// `*len`: an array of `len` replies follows.
    pub fn array(&mut self, len: usize) {
        self.length(b'*', len);
    }

    /// A map of `len` pairs follows: `%len` in RESP3, an array of `2 × len` in RESP2.
    pub fn map(&mut self, len: usize) {
        match self.protocol {
            Protocol::Resp2 => self.length(b'*', len.saturating_mul(2)),
            Protocol::Resp3 => self.length(b'%', len),
        }
    }

    /// A set of `len` members follows: `~len` in RESP3, an array in RESP2.
    pub fn set(&mut self, len: usize) {
        match self.protocol {
            Protocol::Resp2 => self.length(b'*', len),
            Protocol::Resp3 => self.length(b'~', len),
        }
    }

    fn length(&mut self, kind: u8, len: usize) {
        self.buf.put_u8(kind);
        write_decimal(&mut self.buf, len as u64);
        self.crlf();
    }

    fn line(&mut self, kind: u8, n: i64) {
        self.buf.put_u8(kind);
        if n < 0 {
            self.buf.put_u8(b'-');
        }
        write_decimal(&mut self.buf, n.unsigned_abs());
        self.crlf();
    }

    fn crlf(&mut self) {
        self.buf.extend_from_slice(b"\r\n");
    }
}

/// Appends `n` in decimal.
fn write_decimal(buf: &mut BytesMut, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    loop {
        at -= 1;
        digits[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    buf.extend_from_slice(&digits[at..]);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn written(f: impl FnOnce(&mut Reply)) -> String {
        let mut reply = Reply::new(64);
        f(&mut reply);
        String::from_utf8_lossy(reply.buffer()).into_owned()
    }

    /// Each type is written as RESP says, numbers included at their extremes.
    #[test]
    fn writes_each_type() {
        assert_eq!(written(|r| r.ok()), "+OK\r\n");
        assert_eq!(written(|r| r.integer(0)), ":0\r\n");
        assert_eq!(written(|r| r.integer(-42)), ":-42\r\n");
        assert_eq!(
            written(|r| r.integer(i64::MIN)),
            ":-9223372036854775808\r\n"
        );
        assert_eq!(written(|r| r.bulk(b"hey")), "$3\r\nhey\r\n");
        assert_eq!(written(|r| r.bulk(b"")), "$0\r\n\r\n");
        assert_eq!(written(|r| r.nil()), "$-1\r\n");
        assert_eq!(written(|r| r.map(2)), "*4\r\n");
        assert_eq!(
            written(|r| {
                r.protocol = Protocol::Resp3;
                r.nil();
                r.map(2);
                r.set(1);
            }),
            "_\r\n%2\r\n~1\r\n"
        );
    }

    /// An error is one line whatever its message holds.
    #[test]
    fn error_messages_stay_on_one_line() {
        assert_eq!(
            written(|r| r.error("ERR", "a\r\nb")),
            "-ERR a  b\r\n".to_owned()
        );
        let e = Error::KeySpaceNotFound("users".into());
        assert_eq!(
            written(|r| r.engine_error(&e)),
            "-KEYSPACE_NOT_FOUND keyspace `users` not found\r\n"
        );
    }
}
