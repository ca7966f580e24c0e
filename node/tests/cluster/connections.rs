//! Connections: request heads that trickle in are cut off, open connections are capped, and
//! heads hyper refuses by itself get JSON errors (issue 12).

use reqwest::StatusCode;
use serde_json::Value;

use distcache_testkit::TestCluster;

/// A client that trickles its request head is cut off after `header_read_timeout`, and at
/// `max_connections` the node stops accepting until a connection closes (issue 12: 200
/// one-byte-a-second connections stayed open for good).
#[tokio::test]
async fn issue_12_slow_heads_are_closed_and_connections_capped() {
    use std::time::Duration;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let cluster = TestCluster::builder(1)
        .edit(|_, c| {
            c.server.header_read_timeout = Duration::from_secs(3);
            c.server.max_connections = 2;
        })
        .build()
        .await;
    let addr = cluster.addrs[0].clone();
    let mut slow = Vec::new();
    for _ in 0..2 {
        let mut s = tokio::net::TcpStream::connect(&addr).await.unwrap();
        s.write_all(b"GET /healthz HTTP/1.1\r\nHo").await.unwrap();
        slow.push(s);
    }
    // Both slots are taken by the trickling clients: a third request is not served.
    let http = reqwest::Client::new();
    let url = format!("http://{addr}/healthz");
    let blocked = http
        .get(&url)
        .timeout(Duration::from_millis(500))
        .send()
        .await;
    assert!(
        blocked.is_err(),
        "served although both connection slots were taken"
    );
    // The trickling clients are closed, a byte at a time notwithstanding.
    for mut s in slow {
        let closed = tokio::time::timeout(Duration::from_secs(10), async {
            let mut buf = [0u8; 256];
            loop {
                match s.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {}
                }
            }
        })
        .await;
        assert!(closed.is_ok(), "a slow client was not closed");
    }
    // Then the slots are free again.
    let response = http.get(&url).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    cluster.shutdown().await;
}

/// Request heads hyper refuses by itself — a NUL or 0xFF byte in the request line, a head
/// over the size limit — get the same JSON error as every other refusal, not an empty body
/// (issue 12).
#[tokio::test]
async fn issue_12_malformed_request_heads_get_json_errors() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let cluster = TestCluster::start(1).await;
    let addr = cluster.addrs[0].clone();
    let send = |request: Vec<u8>| {
        let addr = addr.clone();
        async move {
            let mut s = tokio::net::TcpStream::connect(&addr).await.unwrap();
            // The node may answer and close before it read everything: a failed write is fine.
            let _ = s.write_all(&request).await;
            let mut response = Vec::new();
            let _ = s.read_to_end(&mut response).await;
            String::from_utf8_lossy(&response).into_owned()
        }
    };
    let huge_header = format!(
        "GET /healthz HTTP/1.1\r\nhost: x\r\nx-big: {}\r\n\r\n",
        "a".repeat(600 << 10)
    );
    let many_headers = format!(
        "GET /healthz HTTP/1.1\r\nhost: x\r\n{}\r\n",
        (0..150)
            .map(|i| format!("x-h{i}: v\r\n"))
            .collect::<String>()
    );
    for (request, status, code) in [
        (
            b"GET /v1/\x00 HTTP/1.1\r\nhost: x\r\n\r\n".to_vec(),
            "400",
            "MALFORMED_REQUEST",
        ),
        (
            b"GET /v1/\xff HTTP/1.1\r\nhost: x\r\n\r\n".to_vec(),
            "400",
            "MALFORMED_REQUEST",
        ),
        (huge_header.into_bytes(), "431", "HEADERS_TOO_LARGE"),
        (many_headers.into_bytes(), "431", "HEADERS_TOO_LARGE"),
    ] {
        let response = send(request).await;
        assert!(
            response.starts_with(&format!("HTTP/1.1 {status} ")),
            "{response}"
        );
        let body = response
            .split_once("\r\n\r\n")
            .map(|(_, b)| b)
            .unwrap_or("");
        let json: Value = serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {response}"));
        assert_eq!(json["code"], code, "{response}");
        assert!(json["message"].as_str().is_some_and(|m| !m.is_empty()));
    }
    // The node is unharmed.
    let status = reqwest::get(format!("http://{}/healthz", cluster.addrs[0]))
        .await
        .unwrap()
        .status();
    assert_eq!(status, StatusCode::OK);
    cluster.shutdown().await;
}
