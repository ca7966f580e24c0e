//! Keys travel verbatim: through the public API, between nodes and to an HTTP source, every
//! key the limits allow (`.`, `..`, `/`, `?`, `#`, `%`, spaces, unicode …) is the key that
//! arrives (issue 12: `..` was resolved to the parent path and its answer cached).

use std::sync::{Arc, Mutex};

use axum::extract::Query;
use distcache::{KeySpaceSpec, SourceSpec};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use distcache_testkit::TestCluster;

/// Keys that URL handling likes to rewrite.
const AWKWARD: &[&str] = &[
    ".",
    "..",
    "...",
    "./a",
    "../a",
    "a/../b",
    "/",
    "//",
    "a/b",
    "?",
    "#",
    "%",
    "%2E%2E",
    "%2e",
    "a b",
    " lead",
    "+",
    "a+b=c&d",
    "k?x=1#frag",
    "ünï/cødé ✓",
    "\\",
];

/// An HTTP source answering `value-of-<id>` for `GET /byid?id=…`, remembering every id asked.
async fn echo_source() -> (String, Arc<Mutex<Vec<String>>>) {
    #[derive(serde::Deserialize)]
    struct Id {
        id: String,
    }
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = Arc::clone(&seen);
    let app = axum::Router::new().route(
        "/byid",
        axum::routing::get(move |Query(Id { id }): Query<Id>| {
            let log = Arc::clone(&log);
            async move {
                log.lock().unwrap().push(id.clone());
                format!("value-of-{id}")
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}/byid?id={{key}}"), seen)
}

/// Sends one raw HTTP/1.1 GET with `path` exactly as written (no client normalisation, like
/// `curl --path-as-is`); returns the status and the body.
async fn raw_get(addr: &str, path: &str) -> (u16, String) {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await.unwrap();
    let text = String::from_utf8_lossy(&response).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b.to_owned());
    (status, body.unwrap_or_default())
}

/// Every awkward key reads through both nodes (its owner and a non-owner) and reaches the
/// source as sent; puts through either node are read back verbatim through the other.
#[tokio::test]
async fn issue_12_every_key_reaches_owner_and_source_verbatim() {
    let (url, seen) = echo_source().await;
    let cluster = TestCluster::builder(2)
        .specs(vec![
            KeySpaceSpec::new("ks", SourceSpec::Http { url }),
            KeySpaceSpec::new("kv", SourceSpec::None),
        ])
        .build()
        .await;
    for key in AWKWARD {
        let owner = cluster.owner_of("ks", key);
        for i in [1 - owner, owner] {
            let got = cluster.client(i).get("ks", key).await.unwrap();
            assert_eq!(
                got.as_deref(),
                Some(format!("value-of-{key}").as_bytes()),
                "key {key:?} read through node {i} (owner {owner})"
            );
        }
    }
    let asked: Vec<String> = seen.lock().unwrap().clone();
    let mut expected: Vec<String> = AWKWARD.iter().map(|k| (*k).to_owned()).collect();
    let mut sorted = asked.clone();
    sorted.sort();
    expected.sort();
    assert_eq!(sorted, expected, "each key fetched once, exactly as sent");

    for (n, key) in AWKWARD.iter().enumerate() {
        let writer = n % 2;
        let value = format!("put-{n}");
        cluster
            .client(writer)
            .put("kv", key, value.clone(), None)
            .await
            .unwrap();
        for i in 0..2 {
            let got = cluster.client(i).get("kv", key).await.unwrap();
            assert_eq!(got.as_deref(), Some(value.as_bytes()), "kv {key:?} via {i}");
            let owner = cluster.client(i).owner("kv", key).await.unwrap();
            assert_eq!(owner.key, *key);
        }
    }
    cluster.shutdown().await;
}

/// Raw request paths with dot segments, plain or percent-encoded, are keys too: `..` is the
/// key `..` on the owner and on a non-owner, never the parent path.
#[tokio::test]
async fn issue_12_dot_segments_in_request_paths_are_keys() {
    let (url, _seen) = echo_source().await;
    let cluster = TestCluster::builder(2)
        .specs(vec![KeySpaceSpec::new("ks", SourceSpec::Http { url })])
        .build()
        .await;
    for (path, key) in [
        ("/v1/keyspaces/ks/keys/..", ".."),
        ("/v1/keyspaces/ks/keys/.", "."),
        ("/v1/keyspaces/ks/keys/%2E%2E", ".."),
        ("/v1/keyspaces/ks/keys/%2e", "."),
        ("/v1/keyspaces/ks/keys?key=..", ".."),
        ("/v1/keyspaces/ks/keys?key=a%2Fb", "a/b"),
    ] {
        for addr in &cluster.addrs {
            let (status, body) = raw_get(addr, path).await;
            assert_eq!(status, 200, "{path} via {addr}: {body}");
            assert_eq!(body, format!("value-of-{key}"), "{path} via {addr}");
        }
    }
    cluster.shutdown().await;
}

/// A source whose URL has `{key}` as a whole path segment cannot be asked for `.` or `..`:
/// the read fails with an error that says so (never another key's value), and the circuit
/// breaker does not count it.
#[tokio::test]
async fn issue_12_dot_keys_in_path_templates_are_refused_clearly() {
    let app = axum::Router::new().route(
        "/users/{id}",
        axum::routing::get(
            |axum::extract::Path(id): axum::extract::Path<String>| async move {
                format!("value-of-{id}")
            },
        ),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    let mut spec = KeySpaceSpec::new(
        "ks",
        SourceSpec::Http {
            url: format!("http://{addr}/users/{{key}}"),
        },
    );
    spec.circuit_breaker = Some(distcache::CircuitBreakerConfig {
        failure_threshold: 1,
        reset_timeout: std::time::Duration::from_secs(60),
    });
    let cluster = TestCluster::builder(1).specs(vec![spec]).build().await;
    let client = cluster.client(0);
    for key in [".", ".."] {
        let err = client.get("ks", key).await.expect_err("dot key must fail");
        assert!(
            err.to_string().contains("query string"),
            "{key:?}: unclear error: {err}"
        );
    }
    // The breaker stayed closed: other keys still load.
    assert_eq!(
        client.get("ks", "a.b").await.unwrap().as_deref(),
        Some(&b"value-of-a.b"[..])
    );
    cluster.shutdown().await;
}
