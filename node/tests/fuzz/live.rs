//! A live node for the tests that talk HTTP: one node of a `TestCluster` over a real loopback
//! socket (with its raft control plane and a cluster token), a raw HTTP/1.1 client that sends
//! bytes exactly as given, and a record of every panic and every log line of the process.

use std::io::Write;
use std::sync::{Mutex, Once, OnceLock};
use std::time::Duration;

use distcache::{KeySpaceSpec, SourceSpec};
use distcache_testkit::{TestCluster, spec};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::runtime::Runtime;

/// The cluster token every well-formed request carries.
pub const TOKEN: &str = "fuzz-token";

/// How long the node lets a request run: short, so that requests whose body never comes end
/// quickly (with a 504).
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(2);

/// How long a raw request waits for its whole answer.
const ANSWER_WITHIN: Duration = Duration::from_secs(10);

/// One node serving `ks` (read-through over the test source) and `kv` (no source), and the
/// runtime that drives it.
pub struct Live {
    pub runtime: Runtime,
    pub cluster: TestCluster,
}

impl Live {
    /// The node's `host:port`.
    pub fn addr(&self) -> &str {
        &self.cluster.addrs[0]
    }

    /// Sends `request` as it is and reads the answer.
    pub fn send(&self, request: &[u8]) -> Answer {
        self.runtime.block_on(send(self.addr(), request))
    }
}

/// The process's live node, started on first use.
pub fn live() -> &'static Live {
    static LIVE: OnceLock<Live> = OnceLock::new();
    LIVE.get_or_init(|| {
        watch_process();
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let cluster = runtime.block_on(
            TestCluster::builder(1)
                .specs(vec![spec("ks"), KeySpaceSpec::new("kv", SourceSpec::None)])
                .edit(|_, config| {
                    config.server.token = Some(TOKEN.into());
                    config.server.request_timeout = REQUEST_TIMEOUT;
                    config.server.header_read_timeout = REQUEST_TIMEOUT;
                    config.server.max_request_bytes = 1 << 20;
                })
                .build(),
        );
        Live { runtime, cluster }
    })
}

/// What came back for a raw request.
#[derive(Debug, Default)]
pub struct Answer {
    /// The status, when a status line came back.
    pub status: Option<u16>,
    /// The body as received (chunked bodies keep their framing).
    pub body: Vec<u8>,
}

impl Answer {
    /// The body as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The `code` and `message` of a JSON error body.
    pub fn error(&self) -> Option<(String, String)> {
        let json: serde_json::Value = serde_json::from_slice(&self.body).ok()?;
        Some((
            json.get("code")?.as_str()?.to_owned(),
            json.get("message")?.as_str()?.to_owned(),
        ))
    }
}

/// A request with `method`, `target` exactly as given, the token, `Connection: close` and
/// `body` with its length.
pub fn request(method: &str, target: &[u8], body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(method.as_bytes());
    out.push(b' ');
    out.extend_from_slice(target);
    out.extend_from_slice(b" HTTP/1.1\r\nhost: fuzz\r\nconnection: close\r\n");
    out.extend_from_slice(format!("authorization: Bearer {TOKEN}\r\n").as_bytes());
    out.extend_from_slice(format!("content-length: {}\r\n\r\n", body.len()).as_bytes());
    out.extend_from_slice(body);
    out
}

/// Sends `request` on a new connection and reads until the answer is complete, the server
/// closes, or [`ANSWER_WITHIN`] passes.
pub async fn send(addr: &str, request: &[u8]) -> Answer {
    let exchange = async {
        let mut stream = tokio::net::TcpStream::connect(addr).await.ok()?;
        // A server may answer and close before it read everything (a refused head).
        let _ = stream.write_all(request).await;
        let mut received = Vec::new();
        let mut buf = [0u8; 8192];
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => received.extend_from_slice(&buf[..n]),
            }
            if complete(&received) {
                break;
            }
        }
        Some(received)
    };
    let received = tokio::time::timeout(ANSWER_WITHIN, exchange)
        .await
        .ok()
        .flatten()
        .unwrap_or_default();
    parse(&received)
}

fn split_head(received: &[u8]) -> Option<(&[u8], &[u8])> {
    let at = received.windows(4).position(|w| w == b"\r\n\r\n")?;
    Some((&received[..at], &received[at + 4..]))
}

fn complete(mut received: &[u8]) -> bool {
    while received.starts_with(b"HTTP/1.1 1") {
        match split_head(received) {
            Some((_, rest)) => received = rest,
            None => return false,
        }
    }
    let Some((head, body)) = split_head(received) else {
        return false;
    };
    let head = String::from_utf8_lossy(head).to_ascii_lowercase();
    if let Some(length) = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse::<usize>().ok())
    {
        return body.len() >= length;
    }
    head.contains("transfer-encoding: chunked") && body.ends_with(b"0\r\n\r\n")
}

fn parse(mut received: &[u8]) -> Answer {
    // Interim answers (`100 Continue`) come before the real one.
    while received.starts_with(b"HTTP/1.1 1") {
        match split_head(received) {
            Some((_, rest)) => received = rest,
            None => break,
        }
    }
    let (head, body) = split_head(received).unwrap_or((received, &[]));
    let head = String::from_utf8_lossy(head).to_ascii_lowercase();
    let status = head
        .strip_prefix("http/1.1 ")
        .and_then(|rest| rest.get(..3))
        .and_then(|s| s.parse().ok());
    Answer {
        status,
        body: body.to_vec(),
    }
}

/// Every panic of this process, as its hook saw it.
static PANICS: Mutex<Vec<String>> = Mutex::new(Vec::new());

/// Every log line of this process.
static LOG: Mutex<Vec<u8>> = Mutex::new(Vec::new());

/// Records panics and log lines from now on (once per process).
pub fn watch_process() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let thread = std::thread::current().name().unwrap_or("?").to_owned();
            PANICS
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(format!("thread '{thread}' panicked: {info}"));
            previous(info);
        }));
        let _ = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::INFO)
            .with_ansi(false)
            .with_writer(|| LogWriter)
            .try_init();
    });
}

/// The panics recorded so far.
pub fn panics() -> Vec<String> {
    PANICS.lock().unwrap_or_else(|e| e.into_inner()).clone()
}

/// The log so far.
pub fn log() -> String {
    String::from_utf8_lossy(&LOG.lock().unwrap_or_else(|e| e.into_inner())).into_owned()
}

struct LogWriter;

impl Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        LOG.lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Fails when the process panicked or logged a panic.
pub fn assert_no_panic() {
    let panics = panics();
    assert!(panics.is_empty(), "panics: {panics:#?}");
    let log = log();
    let lines: Vec<&str> = log.lines().filter(|l| l.contains("panicked")).collect();
    assert!(lines.is_empty(), "panics in the log: {lines:#?}");
}
