//! The transport against a fake peer (a small axum server on loopback) that answers too much
//! or nonsense: each is a protocol error, read no further than its cap.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::routing::{get, post};
use bytes::Bytes;

use super::*;

const T: Duration = Duration::from_secs(5);

/// Serves `router` on a loopback port; returns `host:port`.
async fn fake_peer(router: Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    addr
}

fn transport() -> HttpTransport {
    HttpTransport::new("me", None, None)
        .unwrap()
        .with_limits(Limits {
            max_key_bytes: 16,
            max_value_bytes: 1024,
            max_batch_keys: 100,
        })
}

fn is_protocol(result: Result<impl std::fmt::Debug, PeerError>, what: &str) {
    match result {
        Err(PeerError::Protocol { reason, .. }) => assert!(reason.contains(what), "{reason}"),
        other => panic!("expected a protocol error about `{what}`, got {other:?}"),
    }
}

/// A body that never ends: reading it all would never return.
fn endless() -> Body {
    Body::from_stream(futures::stream::repeat_with(|| {
        Ok::<_, std::io::Error>(Bytes::from_static(&[b' '; 8192]))
    }))
}

/// Hot keys: more keys than any valid node lists, or a key over the size limit, are refused.
#[tokio::test]
async fn hot_keys_are_checked() {
    let too_many: Vec<(String, u32)> = (0..=MAX_HOT_KEYS).map(|i| (format!("k{i}"), 1)).collect();
    let peer = fake_peer(Router::new().route(
        "/_distcache/peer/hot",
        get(move || {
            let body = serde_json::json!({ "users": too_many });
            async move { axum::Json(body) }
        }),
    ))
    .await;
    is_protocol(transport().hot(&peer, T).await, "hot keys for `users`");

    let peer = fake_peer(Router::new().route(
        "/_distcache/peer/hot",
        get(|| async { axum::Json(serde_json::json!({ "users": [["x".repeat(17), 3]] })) }),
    ))
    .await;
    is_protocol(transport().hot(&peer, T).await, "hot key of 17 bytes");

    // A count past u32 is not a count.
    let peer = fake_peer(Router::new().route(
        "/_distcache/peer/hot",
        get(|| async { axum::Json(serde_json::json!({ "users": [["a", 5_000_000_000u64]] })) }),
    ))
    .await;
    is_protocol(transport().hot(&peer, T).await, "bad JSON");
}

/// An answer that never ends, or that declares a length over the cap, is cut off at the cap.
#[tokio::test]
async fn oversized_answers_are_cut_off() {
    let peer = fake_peer(
        Router::new()
            .route("/healthz", get(|| async { endless() }))
            .route("/_distcache/peer/hot", get(|| async { endless() }))
            .route(
                "/_distcache/peer/keyspaces/{ks}/keys",
                get(|| async { vec![b'v'; 2048] }),
            ),
    )
    .await;
    let t = transport();
    is_protocol(t.probe(&peer, T).await, "over the cap");
    is_protocol(t.hot(&peer, T).await, "over the cap");
    is_protocol(t.get(&peer, "ks", "k", T).await, "over the cap of 1024");
}

/// Malformed JSON, an error status without an error body, and a batch with more results than
/// keys are protocol errors.
#[tokio::test]
async fn malformed_answers_are_protocol_errors() {
    let peer = fake_peer(
        Router::new()
            .route("/healthz", get(|| async { "{ not json" }))
            .route(
                "/_distcache/peer/flush",
                post(|| async { (axum::http::StatusCode::BAD_GATEWAY, "oops") }),
            )
            .route(
                "/_distcache/peer/keyspaces/{ks}/get-many",
                post(|| async {
                    axum::Json(serde_json::json!({ "results": [
                        { "key": "a", "status": "not_found" },
                        { "key": "b", "status": "not_found" }
                    ]}))
                }),
            )
            .route(
                "/_distcache/peer/keyspaces/{ks}/warm",
                post(|| async {
                    axum::Json(serde_json::json!({ "warmed": 5, "failed": 0, "skipped": 0 }))
                }),
            ),
    )
    .await;
    let t = transport();
    is_protocol(t.probe(&peer, T).await, "bad JSON");
    is_protocol(t.flush(&peer, T).await, "without an error body");
    let one = vec!["a".to_owned()];
    is_protocol(
        t.get_many(&peer, "ks", &one, T).await,
        "2 results for 1 keys",
    );
    is_protocol(t.warm(&peer, "ks", &one, T).await, "counting 5 keys of 1");
}
