//! Providers finding each other, leaving, expiring, surviving a NATS server restart and the
//! loss of one server of a NATS cluster, and ignoring garbage on the subject.

use std::time::{Duration, Instant};

use distcache::{Discovery, NatsConfig, NatsDiscovery};
use distcache_testkit::{CONVERGE, NatsServer, wait_until};

use crate::{addr, addrs, provider, wait_lists};

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
