//! The client over TLS against a small HTTPS server (testkit's `TlsServer`): the right CA
//! works, and each way a handshake fails is named in the error, not reported as a bare
//! connect failure.

#![allow(clippy::unwrap_used)]

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use distcache::client::{Client, Fleet};
use distcache::{ClientTls, Error};
use distcache_testkit::tls::{
    CertFiles, TestPki, TlsServer, Usage, Validity, node_like, server_config,
};

fn trusting(pki: &TestPki) -> ClientTls {
    ClientTls {
        ca: Some(pki.ca().to_owned()),
        ..ClientTls::default()
    }
}

/// The error of asking `endpoint`'s health with `tls`, as text.
async fn health_error(endpoint: &str, tls: &ClientTls) -> String {
    let client = Client::with_tls([endpoint], tls)
        .unwrap()
        .with_timeout(Duration::from_secs(5));
    let err = client.health().await.expect_err("the handshake must fail");
    assert!(matches!(err, Error::Unavailable(_)), "{err:?}");
    err.to_string()
}

async fn serve(cert: &CertFiles, client_ca: Option<&std::path::Path>) -> TlsServer {
    TlsServer::start(server_config(cert, client_ca), node_like("n1")).await
}

/// With the server's CA trusted, https works by IP address and by name, and a bare
/// `host:port` means https once TLS settings are given.
#[tokio::test]
async fn https_with_the_right_ca_works() {
    let pki = TestPki::new();
    let server = serve(&pki.server("node"), None).await;
    for endpoint in [
        server.endpoint(),
        server.endpoint_as("localhost"),
        server.addr.to_string(),
    ] {
        let client = Client::with_tls([endpoint.as_str()], &trusting(&pki)).unwrap();
        assert_eq!(client.health().await.unwrap().node_id, "n1", "{endpoint}");
    }
    let client = Client::with_tls([server.endpoint()], &trusting(&pki)).unwrap();
    let value = client.get("ks", "hello").await.unwrap().unwrap();
    assert_eq!(&value[..], b"hello");
}

/// A server whose CA is not trusted: the error names the unknown CA.
#[tokio::test]
async fn unknown_ca_is_named() {
    let pki = TestPki::new();
    let other = TestPki::new();
    let server = serve(&pki.server("node"), None).await;
    let err = health_error(&server.endpoint(), &trusting(&other)).await;
    assert!(err.contains("unknown CA"), "{err}");
    // The bundled public roots do not know a test CA either.
    let err = health_error(&server.endpoint(), &ClientTls::default()).await;
    assert!(err.contains("unknown CA"), "{err}");
}

/// A certificate for another name: the error names the mismatch.
#[tokio::test]
async fn name_mismatch_is_named() {
    let pki = TestPki::new();
    let cert = pki.issue(
        "wrong",
        &["other.example"],
        Usage::Server,
        Validity::Current,
    );
    let server = serve(&cert, None).await;
    let err = health_error(&server.endpoint(), &trusting(&pki)).await;
    assert!(err.contains("name mismatch"), "{err}");
}

/// An expired certificate: the error says so.
#[tokio::test]
async fn expired_certificate_is_named() {
    let pki = TestPki::new();
    let cert = pki.issue(
        "old",
        &["localhost", "127.0.0.1"],
        Usage::Server,
        Validity::Expired,
    );
    let server = serve(&cert, None).await;
    let err = health_error(&server.endpoint(), &trusting(&pki)).await;
    assert!(err.contains("expired"), "{err}");
}

/// A server that requires a client certificate: it works with one, and without one the error
/// says the server requires it.
#[tokio::test]
async fn client_certificate_when_required() {
    let pki = TestPki::new();
    let server = serve(&pki.server("node"), Some(pki.ca())).await;
    let me = pki.client("cli");
    let with_cert = ClientTls {
        cert: Some(me.cert.clone()),
        key: Some(me.key.clone()),
        ..trusting(&pki)
    };
    let client = Client::with_tls([server.endpoint()], &with_cert).unwrap();
    assert_eq!(client.health().await.unwrap().node_id, "n1");

    let err = health_error(&server.endpoint(), &trusting(&pki)).await;
    assert!(err.contains("requires a client certificate"), "{err}");

    // A certificate from a CA the server does not trust is refused, and said so.
    let strangers = TestPki::new();
    let stranger = strangers.client("stranger");
    let refused = ClientTls {
        cert: Some(stranger.cert),
        key: Some(stranger.key),
        ..trusting(&pki)
    };
    let err = health_error(&server.endpoint(), &refused).await;
    assert!(err.contains("refused the client certificate"), "{err}");

    // A key that is not the certificate's is caught before any connection.
    let other = pki.client("other");
    let mismatched = ClientTls {
        cert: Some(me.cert),
        key: Some(other.key),
        ..trusting(&pki)
    };
    let err = Client::with_tls([server.endpoint()], &mismatched)
        .err()
        .unwrap();
    assert!(err.to_string().contains("does not match"), "{err}");
}

/// `insecure_skip_verify` accepts a server no CA vouches for.
#[tokio::test]
async fn insecure_skip_verify_accepts_an_unknown_ca() {
    let pki = TestPki::new();
    let server = serve(&pki.server("node"), None).await;
    let insecure = ClientTls {
        insecure_skip_verify: true,
        ..ClientTls::default()
    };
    let client = Client::with_tls([server.endpoint()], &insecure).unwrap();
    assert_eq!(client.health().await.unwrap().node_id, "n1");
}

/// An https endpoint that is a plain HTTP server: the error says it does not speak TLS.
#[tokio::test]
async fn plain_http_server_is_named() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, node_like("plain")).await;
    });
    let err = health_error(&format!("https://{addr}"), &ClientTls::default()).await;
    assert!(err.contains("does not speak TLS"), "{err}");
    task.abort();
}

/// Members listed as bare `host:port` by an https seed are asked over https.
#[tokio::test]
async fn fleet_members_inherit_the_seed_scheme() {
    let pki = TestPki::new();
    let addr: Arc<OnceLock<String>> = Arc::new(OnceLock::new());
    let listed = Arc::clone(&addr);
    let router = node_like("n1").route(
        "/_distcache/admin/peers",
        axum::routing::get(move || {
            let addr = listed.get().cloned().unwrap_or_default();
            async move {
                axum::Json(serde_json::json!([{
                    "id": "n1", "addr": addr, "is_self": true, "reachable": true,
                    "healthy": true, "consecutive_failures": 0, "last_seen_ms": null
                }]))
            }
        }),
    );
    let server = TlsServer::start(server_config(&pki.server("node"), None), router).await;
    addr.set(format!("localhost:{}", server.addr.port()))
        .unwrap();

    let tls = trusting(&pki);
    let seeds = Client::with_tls([server.endpoint()], &tls).unwrap();
    let mut fleet = Fleet::new(None, Duration::from_secs(5))
        .with_tls(&tls)
        .unwrap();
    fleet.refresh(&seeds).await.unwrap();
    let answers = fleet.health().await;
    let (member, health) = answers.answered().next().expect("the member answered");
    assert_eq!(member.addr, format!("localhost:{}", server.addr.port()));
    assert_eq!(health.node_id, "n1");
}
