//! The NATS discovery provider against a real `nats-server` on a free port per test:
//! providers finding each other, leaving, expiring, surviving a server restart, ignoring
//! garbage; then whole nodes forming, growing and shrinking a cluster through NATS.
//!
//! Ignored by a plain `cargo test` (they need `nats-server`); `./scripts/test.sh` installs it
//! and runs them.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use distcache::client::Client;
use distcache::{Discovery, NatsConfig, NatsDiscovery, Node, NodeConfig};
use distcache_testkit::{CONVERGE, NatsServer, TestSource, loopback_listener, spec, wait_until};

/// The address node `i` announces (the providers alone never dial it).
fn addr(i: usize) -> String {
    format!("node-{i}.test:3320")
}

/// Provider `i` on `server`, with `edit` applied to the test timings.
fn provider(server: &NatsServer, i: usize, edit: impl FnOnce(&mut NatsConfig)) -> NatsDiscovery {
    let mut config = NatsConfig::for_test([server.url()]);
    edit(&mut config);
    NatsDiscovery::new(config, format!("node-{i}"), addr(i)).expect("valid config")
}

/// The addresses of nodes `ids`, as a provider lists them (sorted).
fn addrs(ids: &[usize]) -> Vec<String> {
    let mut v: Vec<String> = ids.iter().map(|i| addr(*i)).collect();
    v.sort();
    v
}

/// Waits until every provider in `providers` lists exactly `want`.
async fn wait_lists(providers: &[&NatsDiscovery], want: &[String], limit: Duration, what: &str) {
    let receivers: Vec<_> = providers.iter().map(|p| p.changes()).collect();
    wait_until(limit, what, || {
        let all = receivers.iter().all(|r| *r.borrow() == want);
        async move { all }
    })
    .await;
}

/// Three providers started one after the other: each learns the earlier ones at start (its
/// request is answered), the earlier ones learn it; another subject stays apart.
#[tokio::test]
#[ignore = "needs nats-server: ./scripts/test.sh installs it and runs these"]
async fn three_providers_find_each_other() {
    let server = NatsServer::start().await;
    let p: Vec<NatsDiscovery> = (0..3).map(|i| provider(&server, i, |_| {})).collect();
    for (i, d) in p.iter().enumerate() {
        d.start().await.expect("start");
        let known: Vec<usize> = (0..=i).collect();
        assert_eq!(
            d.peers().await.unwrap(),
            addrs(&known),
            "provider {i} knows the earlier ones when start returns"
        );
    }
    wait_lists(
        &[&p[0], &p[1], &p[2]],
        &addrs(&[0, 1, 2]),
        CONVERGE,
        "all three list all three",
    )
    .await;
    let apart = provider(&server, 9, |c| c.subject = "other.cluster".into());
    apart.start().await.expect("start");
    assert_eq!(apart.peers().await.unwrap(), addrs(&[9]));
    let seen: Vec<String> = p[0].peers_seen().into_iter().map(|s| s.id).collect();
    assert_eq!(seen, ["node-1", "node-2"]);
    for d in p.iter().chain([&apart]) {
        d.stop().await.expect("stop");
    }
}

/// A provider that stops cleanly is dropped by the others at once, long before its
/// `peer_timeout` (30 s here) would expire it.
#[tokio::test]
#[ignore = "needs nats-server: ./scripts/test.sh installs it and runs these"]
async fn a_clean_stop_is_dropped_at_once() {
    let server = NatsServer::start().await;
    let long = |c: &mut NatsConfig| c.peer_timeout = Duration::from_secs(30);
    let p: Vec<NatsDiscovery> = (0..3).map(|i| provider(&server, i, long)).collect();
    for d in &p {
        d.start().await.expect("start");
    }
    wait_lists(
        &[&p[0], &p[1], &p[2]],
        &addrs(&[0, 1, 2]),
        CONVERGE,
        "all three list all three",
    )
    .await;
    p[2].stop().await.expect("stop");
    wait_lists(
        &[&p[0], &p[1]],
        &addrs(&[0, 1]),
        Duration::from_secs(5),
        "the stopped one is dropped",
    )
    .await;
    p[0].stop().await.expect("stop");
    p[1].stop().await.expect("stop");
}

/// A provider dropped without `stop` (a crash) sends no leave: the others expire it once
/// `peer_timeout` passes without an announcement, and not before.
#[tokio::test]
#[ignore = "needs nats-server: ./scripts/test.sh installs it and runs these"]
async fn a_silent_provider_expires_after_the_timeout() {
    let server = NatsServer::start().await;
    let p: Vec<NatsDiscovery> = (0..2).map(|i| provider(&server, i, |_| {})).collect();
    let crashing = provider(&server, 2, |_| {});
    let timeout = crashing.config().peer_timeout;
    for d in p.iter().chain([&crashing]) {
        d.start().await.expect("start");
    }
    wait_lists(
        &[&p[0], &p[1], &crashing],
        &addrs(&[0, 1, 2]),
        CONVERGE,
        "all three list all three",
    )
    .await;
    let dropped = Instant::now();
    drop(crashing);
    wait_lists(
        &[&p[0], &p[1]],
        &addrs(&[0, 1]),
        CONVERGE,
        "the silent one expires",
    )
    .await;
    let took = dropped.elapsed();
    // Its last announcement may be up to one announce interval old when it goes silent.
    let earliest = timeout - p[0].config().announce_interval;
    assert!(
        took >= earliest,
        "expired after {took:?}, before the {timeout:?} timeout"
    );
    p[0].stop().await.expect("stop");
    p[1].stop().await.expect("stop");
}

/// The NATS server restarts: while it is down the lists stay as they were (silence does not
/// count); once it is back every provider reconnects, announces itself and is heard by the
/// others again, and a newcomer learns them all.
#[tokio::test]
#[ignore = "needs nats-server: ./scripts/test.sh installs it and runs these"]
async fn lists_recover_after_a_nats_server_restart() {
    let mut server = NatsServer::start().await;
    let p: Vec<NatsDiscovery> = (0..3).map(|i| provider(&server, i, |_| {})).collect();
    for d in &p {
        d.start().await.expect("start");
    }
    let all = [&p[0], &p[1], &p[2]];
    wait_lists(
        &all,
        &addrs(&[0, 1, 2]),
        CONVERGE,
        "all three list all three",
    )
    .await;

    server.stop();
    wait_until(CONVERGE, "every provider sees NATS gone", || {
        let down = p.iter().all(|d| !d.is_connected());
        async move { down }
    })
    .await;
    // Twice the expiry timeout without NATS: no list may change.
    let window = p[0].config().peer_timeout * 2;
    let unchanged = futures::future::join_all(p.iter().map(|d| {
        let mut rx = d.changes();
        async move { tokio::time::timeout(window, rx.changed()).await.is_err() }
    }))
    .await;
    assert_eq!(
        unchanged,
        [true, true, true],
        "lists kept while NATS was down"
    );

    server.restart().await;
    let restarted = Instant::now();
    wait_until(
        CONVERGE,
        "every provider heard every other since the restart",
        || {
            let heard = p.iter().all(|d| {
                d.is_connected()
                    && d.peers_seen().len() == 2
                    && d.peers_seen()
                        .iter()
                        .all(|s| s.silent_for < restarted.elapsed())
            });
            async move { heard }
        },
    )
    .await;
    let newcomer = provider(&server, 3, |_| {});
    newcomer.start().await.expect("start");
    assert_eq!(newcomer.peers().await.unwrap(), addrs(&[0, 1, 2, 3]));
    wait_lists(
        &all,
        &addrs(&[0, 1, 2, 3]),
        CONVERGE,
        "all learn the newcomer",
    )
    .await;
    for d in p.iter().chain([&newcomer]) {
        d.stop().await.expect("stop");
    }
}

/// Garbage on the subject (not JSON, another version, bad fields, oversized) changes no
/// list; a valid message sent after it does, so the garbage was read first.
#[tokio::test]
#[ignore = "needs nats-server: ./scripts/test.sh installs it and runs these"]
async fn malformed_messages_change_nothing() {
    let server = NatsServer::start().await;
    let p: Vec<NatsDiscovery> = (0..2).map(|i| provider(&server, i, |_| {})).collect();
    for d in &p {
        d.start().await.expect("start");
    }
    wait_lists(&[&p[0], &p[1]], &addrs(&[0, 1]), CONVERGE, "both list both").await;
    let raw = async_nats::connect(server.url()).await.expect("raw client");
    let subject = p[0].config().subject.clone();
    let big = vec![b'x'; 64 * 1024];
    let garbage: Vec<&[u8]> = vec![
        b"not json",
        b"",
        b"{}",
        b"null",
        br#"{"v":2,"op":"announce","id":"evil","addr":"evil:1"}"#,
        br#"{"v":1,"op":"shout","id":"evil","addr":"evil:1"}"#,
        br#"{"v":1,"op":"announce","id":"evil","addr":"no-port"}"#,
        br#"{"v":1,"op":"announce","id":"","addr":"evil:1"}"#,
        br#"{"v":1,"op":"leave","id":"node-1","addr":"node-1.test:99999"}"#,
        br#"{"v":1,"op":"request","id":"evil","addr":"evil:1:2:x"}"#,
        &big,
    ];
    for payload in garbage {
        raw.publish(subject.clone(), payload.to_vec().into())
            .await
            .expect("publish");
    }
    let marker = br#"{"v":1,"op":"announce","id":"marker","addr":"marker.test:1"}"#;
    raw.publish(subject.clone(), marker.to_vec().into())
        .await
        .expect("publish");
    raw.flush().await.expect("flush");
    let mut want = addrs(&[0, 1]);
    want.push("marker.test:1".into());
    want.sort();
    wait_lists(
        &[&p[0], &p[1]],
        &want,
        CONVERGE,
        "the marker after the garbage is listed",
    )
    .await;
    let leave = br#"{"v":1,"op":"leave","id":"marker","addr":"marker.test:1"}"#;
    raw.publish(subject, leave.to_vec().into())
        .await
        .expect("publish");
    wait_lists(
        &[&p[0], &p[1]],
        &addrs(&[0, 1]),
        CONVERGE,
        "the marker leaves",
    )
    .await;
    assert!(p.iter().all(NatsDiscovery::is_connected));
    for d in &p {
        d.stop().await.expect("stop");
    }
}

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

/// A node of the end-to-end test: its own source and data dir, found through NATS.
struct NatsNode {
    node: Node,
    source: Arc<TestSource>,
    _dir: tempfile::TempDir,
}

/// Starts node `i` with no peers list: it finds the others through NATS at `url`.
async fn start_node(i: usize, url: &str) -> NatsNode {
    start_node_waiting_for(i, url, 1).await
}

/// Like [`start_node`], the node waiting for `quorum` members before it serves.
async fn start_node_waiting_for(i: usize, url: &str, quorum: usize) -> NatsNode {
    let (listener, addr) = loopback_listener().await;
    let id = format!("node-{i}");
    let dir = tempfile::tempdir().expect("temp dir");
    let mut config = NodeConfig::for_test(&id);
    config.data_dir = dir.path().to_path_buf();
    assert!(config.peers.is_empty());
    config.cluster.minimum_peers_quorum = quorum;
    let discovery = NatsDiscovery::new(NatsConfig::for_test([url]), &id, &addr).expect("valid");
    let source = TestSource::batching();
    let node = Node::builder(config)
        .register_source("test", source.clone())
        .keyspace_spec(spec("ks"))
        .discovery(Arc::new(discovery))
        .start(listener)
        .await
        .expect("node starts");
    NatsNode {
        node,
        source,
        _dir: dir,
    }
}

/// Waits until every node's ring holds exactly `nodes` and they agree.
async fn wait_ring(nodes: &[&NatsNode]) {
    let mut want: Vec<String> = nodes.iter().map(|n| n.node.id().to_string()).collect();
    want.sort();
    wait_until(
        CONVERGE,
        "every ring holds exactly the running nodes",
        || {
            let ok = nodes.iter().all(|n| {
                let c = n.node.cluster();
                let mut have: Vec<String> =
                    c.ring_members().iter().map(|id| id.to_string()).collect();
                have.sort();
                have == want && c.agreed()
            });
            async move { ok }
        },
    )
    .await;
}

/// Nodes with no peers list form a cluster through NATS; a 4th joins and takes about a
/// quarter of the keys; one stops and leaves while reads go on, none failing.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs nats-server: ./scripts/test.sh installs it and runs these"]
async fn a_cluster_forms_grows_and_shrinks_through_nats() {
    let server = NatsServer::start().await;
    let url = server.url();
    let mut nodes = Vec::new();
    for i in 0..3 {
        nodes.push(start_node(i, &url).await);
    }
    wait_ring(&nodes.iter().collect::<Vec<_>>()).await;

    nodes.push(start_node(3, &url).await);
    wait_ring(&nodes.iter().collect::<Vec<_>>()).await;
    let client = Client::new([nodes[0].node.addr().to_owned()]).expect("client");
    let keys: Vec<String> = (0..400).map(|k| format!("fresh-{k}")).collect();
    for key in &keys {
        let value = client.get("ks", key).await.expect("read");
        assert_eq!(value.as_deref(), Some(format!("v:{key}").as_bytes()));
    }
    let by_newcomer = nodes[3].source.fetches();
    assert!(
        (60..=140).contains(&by_newcomer),
        "the 4th node loaded {by_newcomer} of 400 keys, not about a quarter"
    );

    let reads = Arc::new(AtomicUsize::new(0));
    let failures = Arc::new(AtomicUsize::new(0));
    let (stop_reading, mut reading) = tokio::sync::watch::channel(false);
    let reader = {
        let (reads, failures) = (Arc::clone(&reads), Arc::clone(&failures));
        let client = Client::new([nodes[2].node.addr().to_owned()]).expect("client");
        let keys = keys.clone();
        tokio::spawn(async move {
            for key in keys.iter().cycle() {
                if *reading.borrow_and_update() {
                    return;
                }
                match client.get("ks", key).await {
                    Ok(Some(_)) => reads.fetch_add(1, Ordering::SeqCst),
                    _ => failures.fetch_add(1, Ordering::SeqCst),
                };
            }
        })
    };
    let leaving = nodes.remove(1);
    leaving.node.shutdown().await.expect("shutdown");
    wait_ring(&nodes.iter().collect::<Vec<_>>()).await;
    let before = reads.load(Ordering::SeqCst);
    wait_until(CONVERGE, "reads go on after the node left", || {
        let more = reads.load(Ordering::SeqCst) > before + 50;
        async move { more }
    })
    .await;
    stop_reading.send_replace(true);
    reader.await.expect("reader");
    assert_eq!(failures.load(Ordering::SeqCst), 0, "no read failed");
    for n in &nodes {
        n.node.shutdown().await.expect("shutdown");
    }
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

/// Three nodes started at once, each waiting for a start-up quorum of three (as the pods of a
/// Deployment do): they find each other through NATS while they wait, and form one cluster.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs nats-server: ./scripts/test.sh installs it and runs these"]
async fn nodes_started_together_reach_their_quorum_through_nats() {
    let server = NatsServer::start().await;
    let url = server.url();
    let starts = (0..3).map(|i| {
        let url = url.clone();
        tokio::spawn(async move {
            // Started apart, so that the first ones cannot hear of the later ones at start.
            tokio::time::sleep(Duration::from_millis(400 * i as u64)).await;
            start_node_waiting_for(i, &url, 3).await
        })
    });
    let mut nodes = Vec::new();
    for start in futures::future::join_all(starts).await {
        nodes.push(start.expect("start task"));
    }
    wait_ring(&nodes.iter().collect::<Vec<_>>()).await;
    wait_until(
        CONVERGE,
        "the control plane has the three nodes as voters",
        || {
            let voters = nodes[0]
                .node
                .control()
                .map(|c| c.status().members.iter().filter(|m| m.voter).count());
            async move { voters == Some(3) }
        },
    )
    .await;
    for n in &nodes {
        n.node.shutdown().await.expect("shutdown");
    }
}

/// Providers on a NATS cluster of two servers: those on different servers find each other
/// over the route; when one server dies, the providers that list both fail over to the other,
/// keep their lists, and are heard again there.
#[tokio::test]
#[ignore = "needs nats-server: ./scripts/test.sh installs it and runs these"]
async fn a_nats_cluster_carries_discovery_and_survives_a_server() {
    let mut servers = NatsServer::cluster(2).await;
    let (a, b) = (servers[0].url(), servers[1].url());
    let on = |i: usize, urls: &[&String]| {
        let config = NatsConfig::for_test(urls.iter().map(|u| u.as_str()));
        NatsDiscovery::new(config, format!("node-{i}"), addr(i)).expect("valid")
    };
    let p = [on(0, &[&b]), on(1, &[&a, &b]), on(2, &[&a, &b])];
    for d in &p {
        d.start().await.expect("start");
    }
    let all = [&p[0], &p[1], &p[2]];
    wait_lists(
        &all,
        &addrs(&[0, 1, 2]),
        CONVERGE,
        "all three list all three",
    )
    .await;

    servers[0].stop();
    let killed = Instant::now();
    wait_until(
        CONVERGE,
        "every provider heard every other since the server died",
        || {
            let heard = p.iter().all(|d| {
                d.is_connected()
                    && d.peers_seen().len() == 2
                    && d.peers_seen()
                        .iter()
                        .all(|s| s.silent_for < killed.elapsed())
            });
            async move { heard }
        },
    )
    .await;
    let newcomer = on(3, &[&b]);
    newcomer.start().await.expect("start");
    assert_eq!(newcomer.peers().await.unwrap(), addrs(&[0, 1, 2, 3]));
    wait_lists(
        &all,
        &addrs(&[0, 1, 2, 3]),
        CONVERGE,
        "all learn the newcomer",
    )
    .await;
    for d in p.iter().chain([&newcomer]) {
        d.stop().await.expect("stop");
    }
}
