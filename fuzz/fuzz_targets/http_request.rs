//! Raw bytes as an HTTP request to a live node (one per process, over loopback, with its
//! raft control plane): the node answers no 5xx but 503 and 504, or closes the connection,
//! and never panics (libFuzzer reports a panic on any thread).

#![no_main]

use std::sync::OnceLock;
use std::time::Duration;

use distcache_testkit::TestCluster;
use libfuzzer_sys::fuzz_target;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::runtime::Runtime;

struct Live {
    runtime: Runtime,
    addr: String,
    _cluster: TestCluster,
}

fn live() -> &'static Live {
    static LIVE: OnceLock<Live> = OnceLock::new();
    LIVE.get_or_init(|| {
        let runtime = Runtime::new().expect("runtime");
        let cluster = runtime.block_on(
            TestCluster::builder(1)
                .edit(|_, config| {
                    config.server.request_timeout = Duration::from_millis(500);
                    config.server.header_read_timeout = Duration::from_millis(500);
                })
                .build(),
        );
        let addr = cluster.addrs[0].clone();
        Live {
            runtime,
            addr,
            _cluster: cluster,
        }
    })
}

fuzz_target!(|data: &[u8]| {
    let live = live();
    let answer = live.runtime.block_on(async {
        let mut stream = tokio::net::TcpStream::connect(&live.addr).await.ok()?;
        let _ = stream.write_all(data).await;
        // Until a whole response head came, or the node closed (it ends idle or incomplete
        // requests after its header timeout).
        let mut answer = Vec::new();
        let read = async {
            let mut buf = [0u8; 4096];
            while !answer.windows(4).any(|w| w == b"\r\n\r\n") {
                match stream.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => answer.extend_from_slice(&buf[..n]),
                }
            }
        };
        tokio::time::timeout(Duration::from_secs(5), read)
            .await
            .ok()?;
        Some(answer)
    });
    let Some(answer) = answer else { return };
    let status = answer
        .strip_prefix(b"HTTP/1.1 ")
        .and_then(|rest| rest.get(..3))
        .and_then(|code| std::str::from_utf8(code).ok())
        .and_then(|code| code.parse::<u16>().ok());
    if let Some(status) = status {
        assert!(
            status < 500 || status == 503 || status == 504,
            "{status} for {:?}: {}",
            String::from_utf8_lossy(data),
            String::from_utf8_lossy(&answer)
        );
    }
});
