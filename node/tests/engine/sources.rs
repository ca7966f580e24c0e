//! Built-in data sources against real servers.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::extract::Path;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use distcache::{Engine, EngineConfig, Error, KeySpaceSpec, SourceSpec};

/// A small HTTP API: `/users/{id}` answers 200 for `u*`, 404 for `missing*`, 500 otherwise.
async fn api() -> (String, Arc<AtomicUsize>) {
    let hits = Arc::new(AtomicUsize::new(0));
    let counter = hits.clone();
    let app = axum::Router::new().route(
        "/users/{id}",
        axum::routing::get(move |Path(id): Path<String>| {
            let counter = counter.clone();
            async move {
                counter.fetch_add(1, Ordering::SeqCst);
                if id.starts_with('u') {
                    (
                        [(header::CACHE_CONTROL, "max-age=60")],
                        format!("profile {id}"),
                    )
                        .into_response()
                } else if id.starts_with("missing") {
                    StatusCode::NOT_FOUND.into_response()
                } else {
                    (StatusCode::INTERNAL_SERVER_ERROR, "database down").into_response()
                }
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}/users/{{key}}"), hits)
}

/// The http source maps 200 to a value, 404 to not found, anything else to a fetch error that
/// names the status; keys are percent-encoded into the URL.
#[tokio::test]
async fn http_source_follows_the_status() {
    let (url, hits) = api().await;
    let engine = Engine::builder(EngineConfig::for_test())
        .keyspace_spec(KeySpaceSpec::new("users", SourceSpec::Http { url }))
        .build()
        .unwrap();
    engine.start().await.unwrap();
    assert_eq!(
        engine.get("users", "u1/x").await.unwrap().as_deref(),
        Some(&b"profile u1/x"[..])
    );
    assert_eq!(
        engine.get("users", "u1/x").await.unwrap().as_deref(),
        Some(&b"profile u1/x"[..])
    );
    assert_eq!(
        hits.load(Ordering::SeqCst),
        1,
        "cached after the first fetch"
    );
    assert_eq!(engine.get("users", "missing-1").await.unwrap(), None);
    let err = engine.get("users", "x").await.unwrap_err();
    assert!(matches!(err, Error::DataSource(_)), "{err:?}");
    assert!(err.to_string().contains("500"), "{err}");
}

/// A malformed URL template is refused when the keyspace is created, naming the field.
#[tokio::test]
async fn bad_http_template_is_refused_at_create() {
    let engine = Engine::builder(EngineConfig::for_test()).build().unwrap();
    engine.start().await.unwrap();
    let err = engine
        .create_keyspace(KeySpaceSpec::new(
            "bad",
            SourceSpec::Http {
                url: "http://[::1/{key}".into(),
            },
        ))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::InvalidSpec(_)), "{err:?}");
    assert!(err.to_string().contains("source"), "{err}");
}
