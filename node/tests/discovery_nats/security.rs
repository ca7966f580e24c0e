//! Authentication and TLS against NATS servers that require them, and settings refused by
//! field name.

use std::time::{Duration, Instant};

use distcache::{Discovery, NatsConfig, NatsDiscovery};
use distcache_testkit::{CONVERGE, NatsServer};

use crate::{addrs, provider, wait_lists};

/// A server that wants a user and password: the right ones connect; a wrong password fails
/// at once (no retries) naming the URL; bad settings are refused naming the field.
#[tokio::test]
#[ignore = "needs nats-server: ./scripts/test.sh installs it and runs these"]
async fn credentials_are_used_and_bad_settings_named() {
    let server = NatsServer::start_with(&["--user", "disc", "--pass", "s3cret"]).await;
    let good = provider(&server, 0, |c| {
        c.user = Some("disc".into());
        c.password = Some("s3cret".into());
    });
    good.start().await.expect("right credentials connect");
    let wrong = provider(&server, 1, |c| {
        c.user = Some("disc".into());
        c.password = Some("wrong".into());
        c.connect_attempts = 5;
        c.reconnect_wait = Duration::from_secs(5);
    });
    let started = Instant::now();
    let err = wrong
        .start()
        .await
        .expect_err("wrong password refused")
        .to_string();
    assert!(
        err.contains(&server.url()) && err.contains("1 attempt"),
        "{err}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "no retry on an authorization error"
    );
    let bad = NatsConfig {
        subject: "distcache.>".into(),
        token: Some("t".into()),
        user: Some("u".into()),
        ..NatsConfig::for_test([server.url()])
    };
    let err = NatsDiscovery::new(bad, "n", "h:1")
        .expect_err("refused")
        .to_string();
    for field in ["subject", "password", "credentials_file"] {
        assert!(err.contains(field), "{err}");
    }
    good.stop().await.expect("stop");
}

/// A server that wants a token: the token connects; no token is refused, naming the URL.
#[tokio::test]
#[ignore = "needs nats-server: ./scripts/test.sh installs it and runs these"]
async fn a_token_is_used() {
    let server = NatsServer::start_with(&["--auth", "t0ken"]).await;
    let good = provider(&server, 0, |c| c.token = Some("t0ken".into()));
    good.start().await.expect("the token connects");
    let none = provider(&server, 1, |_| {});
    let err = none
        .start()
        .await
        .expect_err("no token refused")
        .to_string();
    assert!(
        err.contains(&server.url()) && err.contains("authorization violation"),
        "{err}"
    );
    good.stop().await.expect("stop");
}

/// A NATS server that requires TLS and client certificates: a provider with the CA and a
/// client certificate connects and is found; one without the certificate is refused, the
/// error naming the URL.
#[tokio::test]
#[ignore = "needs nats-server: ./scripts/test.sh installs it and runs these"]
async fn tls_with_client_certificates() {
    let pki = distcache_testkit::tls::TestPki::new();
    let server_cert = pki.server("nats");
    let client_cert = pki.client("node");
    let path = |p: &std::path::Path| p.to_str().expect("utf-8 path").to_owned();
    let (cert, key, ca) = (
        path(&server_cert.cert),
        path(&server_cert.key),
        path(pki.ca()),
    );
    let server = NatsServer::start_with(&[
        "--tls",
        "--tlscert",
        &cert,
        "--tlskey",
        &key,
        "--tlsverify",
        "--tlscacert",
        &ca,
    ])
    .await;
    let with_cert = |c: &mut NatsConfig| {
        c.tls_ca_file = Some(pki.ca().to_path_buf());
        c.tls_cert_file = Some(client_cert.cert.clone());
        c.tls_key_file = Some(client_cert.key.clone());
    };
    let p: Vec<NatsDiscovery> = (0..2).map(|i| provider(&server, i, with_cert)).collect();
    for d in &p {
        d.start()
            .await
            .expect("TLS with a client certificate connects");
    }
    wait_lists(
        &[&p[0], &p[1]],
        &addrs(&[0, 1]),
        CONVERGE,
        "both list both over TLS",
    )
    .await;
    let without = provider(&server, 2, |c| c.tls_ca_file = Some(pki.ca().to_path_buf()));
    let err = without
        .start()
        .await
        .expect_err("no client certificate")
        .to_string();
    assert!(err.contains(&server.url()), "{err}");
    for d in &p {
        d.stop().await.expect("stop");
    }
}
