//! The real binary against an HTTPS server (testkit's `TlsServer`): `--cacert`, `--cert` /
//! `--key` (and their environment variables), `--insecure-skip-verify` with its warning, and
//! errors that name the TLS cause.

#![allow(clippy::unwrap_used)]

mod common;

use common::{distcache, run_command};
use distcache_testkit::tls::{TestPki, TlsServer, node_like, server_config};

/// `distcache get` over https with the server's CA; without it, the unknown CA is named and the
/// exit code says unavailable.
#[tokio::test]
async fn get_over_https_with_cacert() {
    let pki = TestPki::new();
    let server = TlsServer::start(server_config(&pki.server("node"), None), node_like("n1")).await;
    let ca = pki.ca().to_str().unwrap();

    let mut cmd = distcache();
    cmd.args([
        "--endpoint",
        &server.endpoint(),
        "--cacert",
        ca,
        "get",
        "ks",
        "hello",
    ]);
    let run = run_command(cmd, None).await;
    assert!(run.ok().contains("hello"), "{}", run.stdout);

    // The CA from the environment, and a bare host:port taken as https.
    let mut cmd = distcache();
    cmd.env("DISTCACHE_CACERT", ca).args([
        "--endpoint",
        &server.addr.to_string(),
        "get",
        "ks",
        "hello",
    ]);
    assert!(run_command(cmd, None).await.ok().contains("hello"));

    let mut cmd = distcache();
    cmd.args(["--endpoint", &server.endpoint(), "get", "ks", "hello"]);
    run_command(cmd, None).await.fails(4, "unknown CA");

    let mut cmd = distcache();
    cmd.args([
        "--endpoint",
        &server.endpoint(),
        "--cacert",
        "/nonexistent/ca.pem",
    ])
    .args(["get", "ks", "hello"]);
    let run = run_command(cmd, None).await;
    assert_ne!(run.code, 0);
    assert!(run.stderr.contains("/nonexistent/ca.pem"), "{}", run.stderr);
}

/// A server that requires a client certificate: `--cert`/`--key` (or DISTCACHE_CERT and
/// DISTCACHE_KEY) get through; without them the error says a certificate is required.
#[tokio::test]
async fn client_certificate_flags() {
    let pki = TestPki::new();
    let config = server_config(&pki.server("node"), Some(pki.ca()));
    let server = TlsServer::start(config, node_like("n1")).await;
    let ca = pki.ca().to_str().unwrap();
    let me = pki.client("cli");

    let mut cmd = distcache();
    cmd.args(["--endpoint", &server.endpoint(), "--cacert", ca])
        .args([
            "--cert",
            me.cert.to_str().unwrap(),
            "--key",
            me.key.to_str().unwrap(),
        ])
        .args(["get", "ks", "hello"]);
    assert!(run_command(cmd, None).await.ok().contains("hello"));

    let mut cmd = distcache();
    cmd.env("DISTCACHE_CERT", &me.cert)
        .env("DISTCACHE_KEY", &me.key)
        .args([
            "--endpoint",
            &server.endpoint(),
            "--cacert",
            ca,
            "get",
            "ks",
            "hello",
        ]);
    assert!(run_command(cmd, None).await.ok().contains("hello"));

    let mut cmd = distcache();
    cmd.args([
        "--endpoint",
        &server.endpoint(),
        "--cacert",
        ca,
        "get",
        "ks",
        "hello",
    ]);
    let run = run_command(cmd, None).await;
    // Under TLS 1.3 the client finishes its handshake before the server checks for a
    // certificate; when the server's alert loses the race with the client's first request,
    // hyper reports only a cancelled connection. Both must be exit 4 (unavailable); the
    // clear message is what the alert gives.
    if run.stderr.contains("connection was not ready") {
        assert_eq!(run.code, 4, "{}", run.stderr);
    } else {
        run.fails(4, "requires a client certificate");
    }
}

/// `--insecure-skip-verify` reaches a server no trusted CA vouches for, and warns on stderr.
#[tokio::test]
async fn insecure_skip_verify_warns() {
    let pki = TestPki::new();
    let server = TlsServer::start(server_config(&pki.server("node"), None), node_like("n1")).await;
    let mut cmd = distcache();
    cmd.args(["--endpoint", &server.endpoint(), "--insecure-skip-verify"])
        .args(["get", "ks", "hello"]);
    let run = run_command(cmd, None).await;
    assert!(run.ok().contains("hello"));
    assert!(
        run.stderr.contains("WARNING: --insecure-skip-verify"),
        "{}",
        run.stderr
    );
}
