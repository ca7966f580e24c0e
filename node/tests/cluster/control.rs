//! The control plane: keyspace changes through any node, committed by raft and applied on
//! every node; leader loss, minority and majority loss, restarts, late joiners, concurrency.

use std::time::{Duration, Instant};

use distcache::{Error, KeySpaceSpec, Role};

use distcache_testkit::{CONVERGE, TestCluster};
use distcache_testkit::{spec, wait_until};

fn with_ttl(name: &str, secs: u64) -> KeySpaceSpec {
    let mut s = spec(name);
    s.default_ttl = Some(Duration::from_secs(secs));
    s
}

/// An update sent to a follower is committed and visible on every node; the admin cluster
/// view names leader, term, revision and members.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn update_through_a_follower_is_visible_everywhere() {
    let cluster = TestCluster::start(3).await;
    let leader = cluster.wait_leader().await;
    let follower = (leader + 1) % 3;
    let revision = cluster
        .node(follower)
        .engine()
        .update_keyspace(with_ttl("users", 60))
        .await
        .unwrap();
    assert_eq!(
        cluster.node(follower).engine().revision(),
        revision,
        "applied when it returns"
    );
    cluster.wait_revision(revision).await;
    for i in 0..3 {
        assert_eq!(
            cluster.node(i).engine().keyspace("users"),
            Some(with_ttl("users", 60)),
            "node {i}"
        );
    }
    // Through HTTP on another follower, with compare-and-set.
    let other = (leader + 2) % 3;
    let client = cluster.client(other);
    let answer = client
        .put_keyspace(&with_ttl("users", 120), Some(revision))
        .await
        .unwrap();
    assert_eq!(answer.revision, revision + 1);
    let err = client
        .put_keyspace(&with_ttl("users", 5), Some(revision))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::RevisionMismatch { .. }), "{err:?}");
    cluster.wait_revision(revision + 1).await;

    let info = cluster.client(follower).cluster().await.unwrap();
    assert_eq!(info.node_id, cluster.ids[follower]);
    assert_eq!(info.role, Role::Follower);
    assert_eq!(info.leader.as_deref(), Some(cluster.ids[leader].as_str()));
    assert!(info.term >= 1);
    assert_eq!(info.applied_revision, revision + 1);
    let mut names: Vec<String> = info.members.iter().map(|m| m.id.clone()).collect();
    names.sort();
    assert_eq!(names, cluster.ids);
    assert!(
        info.members.iter().all(|m| m.voter && m.healthy),
        "{info:?}"
    );
    cluster.shutdown().await;
}

/// An invalid spec is refused before it reaches the log: no node's revision moves.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_specs_never_reach_the_log() {
    let cluster = TestCluster::start(3).await;
    let before = cluster.node(0).engine().revision();
    let mut bad = spec("bad");
    bad.max_bytes = Some(0);
    let err = cluster
        .node(1)
        .engine()
        .update_keyspace(bad)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::InvalidSpec(_)), "{err:?}");
    let marker = cluster
        .node(2)
        .engine()
        .create_keyspace(spec("marker"))
        .await
        .unwrap();
    assert_eq!(marker, before + 1, "the refused spec took no revision");
    cluster.shutdown().await;
}

/// With the leader gone, a new one is elected and changes succeed again within seconds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leader_loss_elects_a_new_leader() {
    let mut cluster = TestCluster::start(3).await;
    let leader = cluster.wait_leader().await;
    cluster.stop_node(leader).await;
    let survivor = (leader + 1) % 3;
    let started = Instant::now();
    let revision = cluster
        .node(survivor)
        .engine()
        .update_keyspace(spec("after-failover"))
        .await
        .unwrap();
    let took = started.elapsed();
    assert!(took < Duration::from_secs(10), "failover took {took:?}");
    cluster.wait_revision(revision).await;
    let new_leader = cluster.wait_leader().await;
    assert_ne!(new_leader, leader);
    cluster.shutdown().await;
}

/// With a majority gone, a change fails with a clear Unavailable error within the write
/// timeout, while reads of cached and loadable keys keep working.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn majority_loss_refuses_changes_but_serves_reads() {
    let mut cluster = TestCluster::builder(3)
        .edit(|_, c| c.control.write_timeout = Duration::from_millis(800))
        .build()
        .await;
    cluster.wait_leader().await;
    let survivor = 0;
    let cached = cluster.key_owned_by("ks", survivor, "c:");
    cluster
        .node(survivor)
        .engine()
        .get("ks", &cached)
        .await
        .unwrap();
    // Minority loss first: changes still commit.
    cluster.stop_node(1).await;
    cluster
        .node(survivor)
        .engine()
        .update_keyspace(spec("with-two"))
        .await
        .unwrap();
    // Majority loss.
    cluster.stop_node(2).await;
    let started = Instant::now();
    let err = cluster
        .node(survivor)
        .engine()
        .update_keyspace(spec("with-one"))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Unavailable(_)), "{err:?}");
    assert!(err.to_string().contains("majority"), "{err}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "took {:?}",
        started.elapsed()
    );
    // Reads keep working: the cached key, and a key loaded now (every key is local once the
    // others left the ring).
    let engine = cluster.node(survivor).engine();
    assert!(engine.get("ks", &cached).await.unwrap().is_some());
    cluster.wait_converged().await;
    assert!(engine.get("ks", "loadable-now").await.unwrap().is_some());
    assert!(engine.keyspace("with-two").is_some());
    cluster.shutdown().await;
}

/// After all nodes restart, the catalog is back from disk before they serve.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_restart_keeps_the_catalog() {
    let mut cluster = TestCluster::start(3).await;
    cluster.wait_leader().await;
    cluster
        .node(0)
        .engine()
        .update_keyspace(with_ttl("kept", 30))
        .await
        .unwrap();
    let revision = cluster
        .node(1)
        .engine()
        .delete_keyspace("ks")
        .await
        .unwrap();
    cluster.wait_revision(revision).await;
    for i in 0..3 {
        cluster.stop_node(i).await;
    }
    // Restart one at a time: each must serve its catalog before the others are back.
    cluster.start_node(2).await;
    let engine = cluster.node(2).engine();
    assert_eq!(engine.revision(), revision);
    assert_eq!(engine.keyspace("kept"), Some(with_ttl("kept", 30)));
    assert!(
        engine.keyspace("ks").is_none(),
        "the deletion survived, the file did not re-seed it"
    );
    cluster.start_node(0).await;
    cluster.start_node(1).await;
    cluster.wait_leader().await;
    let after = cluster
        .node(0)
        .engine()
        .update_keyspace(spec("after-restart"))
        .await
        .unwrap();
    assert_eq!(after, revision + 1);
    cluster.wait_revision(after).await;
    cluster.shutdown().await;
}

/// A node joining late receives the catalog, through a snapshot once the log was purged, and
/// joins as a learner beyond the voter target.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn late_joiner_receives_the_catalog_by_snapshot() {
    let mut cluster = TestCluster::builder(4)
        .started(3)
        .edit(|_, c| {
            c.control.snapshot_every = 10;
            c.control.keep_after_snapshot = 2;
        })
        .build()
        .await;
    let leader = cluster.wait_leader().await;
    let mut revision = 0;
    for i in 0..40 {
        revision = cluster
            .node(i % 3)
            .engine()
            .update_keyspace(with_ttl(&format!("ks-{i}"), 10 + i as u64))
            .await
            .unwrap();
    }
    wait_until(CONVERGE, "the leader purged its log", || {
        let purged = cluster
            .node(leader)
            .control()
            .unwrap()
            .raft()
            .metrics()
            .borrow()
            .purged;
        async move { purged.is_some_and(|p| p.index > 5) }
    })
    .await;
    cluster.start_node(3).await;
    let late = cluster.node(3).engine();
    assert!(late.revision() >= revision, "caught up before serving");
    assert_eq!(late.keyspace("ks-0"), Some(with_ttl("ks-0", 10)));
    assert_eq!(late.keyspace("ks-39"), Some(with_ttl("ks-39", 49)));
    let snapshot = cluster
        .node(3)
        .control()
        .unwrap()
        .raft()
        .metrics()
        .borrow()
        .snapshot;
    assert!(snapshot.is_some(), "the catalog arrived as a snapshot");
    wait_until(CONVERGE, "the late node is a member", || {
        let info = cluster.node(leader).control().unwrap().status();
        async move { info.members.len() == 4 && info.members.iter().filter(|m| m.voter).count() == 3 }
    })
    .await;
    cluster.shutdown().await;
}

/// Concurrent updates from every node all commit, and every node ends in the same state at
/// the same revision.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_updates_apply_in_one_order() {
    let cluster = TestCluster::start(3).await;
    cluster.wait_leader().await;
    let base = cluster.node(0).engine().revision();
    let mut writers = Vec::new();
    for i in 0..3 {
        let engine = cluster.node(i).engine().clone();
        writers.push(tokio::spawn(async move {
            for n in 0..10 {
                let mut s = spec("contended");
                s.warm_keys = vec![format!("writer-{i}-{n}")];
                engine.update_keyspace(s).await.unwrap();
                engine
                    .update_keyspace(spec(&format!("own-{i}-{n}")))
                    .await
                    .unwrap();
            }
        }));
    }
    for w in writers {
        w.await.unwrap();
    }
    let last = base + 60;
    cluster.wait_revision(last).await;
    let states: Vec<_> = (0..3)
        .map(|i| {
            (
                cluster.node(i).engine().revision(),
                cluster.node(i).engine().keyspaces(),
            )
        })
        .collect();
    assert_eq!(states[0].0, last);
    assert!(
        states.iter().all(|s| *s == states[0]),
        "every node holds the same catalog"
    );
    assert_eq!(states[0].1.len(), 1 + 1 + 30);
    cluster.shutdown().await;
}

/// With more nodes than the voter target, the extra node is a learner; when a voter goes, the
/// learner takes its seat (handed over at once on this clean stop; a crashed voter is replaced
/// after the grace period, which `cli/tests/discovery.rs` proves with SIGKILL).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leader_keeps_three_voters_and_replaces_a_dead_one() {
    let mut cluster = TestCluster::start(4).await;
    let leader = cluster.wait_leader().await;
    let voters = |c: &TestCluster, at: usize| {
        let info = c.node(at).control().unwrap().status();
        let mut v: Vec<String> = info
            .members
            .iter()
            .filter(|m| m.voter)
            .map(|m| m.name.clone())
            .collect();
        v.sort();
        (v, info.members.len())
    };
    wait_until(CONVERGE, "four members, three voters", || {
        let (v, n) = voters(&cluster, leader);
        async move { v.len() == 3 && n == 4 }
    })
    .await;
    let (before, _) = voters(&cluster, leader);
    let victim = cluster
        .ids
        .iter()
        .position(|id| before.contains(id) && *id != cluster.ids[leader])
        .unwrap();
    cluster.stop_node(victim).await;
    wait_until(
        Duration::from_secs(30),
        "the dead voter is replaced",
        || {
            let (v, _) = voters(&cluster, leader);
            let gone = cluster.ids[victim].clone();
            async move { v.len() == 3 && !v.contains(&gone) }
        },
    )
    .await;
    cluster
        .node(leader)
        .engine()
        .update_keyspace(spec("with-new-voter"))
        .await
        .unwrap();
    cluster.shutdown().await;
}

/// Read-your-writes on the node that created a keyspace: a key of the new keyspace owned by
/// another node reads at once through the creating node, which forwards its catalog revision
/// so the owner catches up first (issue 12: 31 of 120 reads answered KEYSPACE_NOT_FOUND).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue_12_a_created_keyspace_is_readable_at_once_through_its_creator() {
    let cluster = TestCluster::start(3).await;
    for round in 0..30 {
        let creator = round % 3;
        let name = format!("new-{round}");
        let client = cluster.client(creator);
        client.create_keyspace(&spec(&name)).await.unwrap();
        for owner in (0..3).filter(|o| *o != creator) {
            let key = cluster.key_owned_by(&name, owner, "k");
            let got = client.get(&name, &key).await;
            assert!(
                matches!(got, Ok(Some(_))),
                "round {round}: {key} of {name} through creator {creator} (owner {owner}): {got:?}"
            );
        }
    }
    cluster.shutdown().await;
}

/// Issue 17: a catalog change retried with its `Idempotency-Key` after a leader change
/// commits once and answers what the first attempt did (a retried create no longer answers
/// "already exists"; a retried compare-and-set no longer answers "revision mismatch"); the
/// key reused for another change is refused by name. The remembered answers are replicated:
/// the retry goes to a different node under a different leader.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue_17_a_retried_change_commits_once_across_a_leader_change() {
    use reqwest::{Method, StatusCode};
    use serde_json::{Value, json};

    let mut cluster = TestCluster::start(3).await;
    let leader = cluster.wait_leader().await;
    let (first, second) = ((leader + 1) % 3, (leader + 2) % 3);
    let http = reqwest::Client::new();
    let addrs = cluster.addrs.clone();
    let send = |node: usize, method: Method, path: &str, key: &str, body: Option<Value>| {
        let mut request = http
            .request(method, format!("http://{}{path}", addrs[node]))
            .header("Idempotency-Key", key);
        if let Some(body) = body {
            request = request.json(&body);
        }
        async move {
            let response = request.send().await.expect("send");
            let status = response.status();
            (status, response.json::<Value>().await.expect("json answer"))
        }
    };
    let create = json!({"name": "once", "source": {"kind": "none"}});
    let (status, created) = send(
        first,
        Method::POST,
        "/v1/keyspaces",
        "create-1",
        Some(create.clone()),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let created_at = created["revision"].as_u64().expect("revision");
    let cas_path = format!("/v1/keyspaces/once?expected_revision={created_at}");
    let update = json!({"source": {"kind": "none"}, "default_ttl": "5m"});
    let (status, updated) = send(
        first,
        Method::PUT,
        &cas_path,
        "update-1",
        Some(update.clone()),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{updated}");
    let updated_at = updated["revision"].as_u64().expect("revision");

    cluster.stop_node(leader).await;
    cluster.wait_leader().await;

    let (status, again) = send(
        second,
        Method::POST,
        "/v1/keyspaces",
        "create-1",
        Some(create),
    )
    .await;
    assert_eq!(
        status,
        StatusCode::CREATED,
        "the retried create succeeds: {again}"
    );
    assert_eq!(again["revision"].as_u64(), Some(created_at));
    let (status, again) = send(second, Method::PUT, &cas_path, "update-1", Some(update)).await;
    assert_eq!(
        status,
        StatusCode::OK,
        "the retried compare-and-set succeeds: {again}"
    );
    assert_eq!(again["revision"].as_u64(), Some(updated_at));
    assert_eq!(
        cluster.node(second).engine().revision(),
        updated_at,
        "the retries committed nothing"
    );

    let other = json!({"name": "other", "source": {"kind": "none"}});
    let (status, refused) = send(
        second,
        Method::POST,
        "/v1/keyspaces",
        "create-1",
        Some(other),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{refused}");
    assert!(
        refused["message"]
            .as_str()
            .unwrap_or_default()
            .contains("create-1"),
        "{refused}"
    );
    assert!(cluster.node(second).engine().keyspace("other").is_none());

    let (status, bad) = send(second, Method::DELETE, "/v1/keyspaces/once", "", None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}");
    assert!(
        bad["message"]
            .as_str()
            .unwrap_or_default()
            .contains("Idempotency-Key"),
        "{bad}"
    );
    cluster.shutdown().await;
}

/// Issue 17: a peer request for a keyspace the node serves does not wait for a catalog
/// revision the node has not applied yet (while the control plane lags, its leader killed,
/// every peer call would stall behind it); one for a keyspace the node does not know yet
/// still waits, bounded, for the revision that may create it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue_17_peer_calls_for_a_served_keyspace_do_not_wait_for_the_catalog() {
    let cluster = TestCluster::start(1).await;
    let http = reqwest::Client::new();
    let ahead = (cluster.node(0).engine().revision() + 1_000).to_string();
    let copies = |keyspace: &str| {
        http.post(format!(
            "http://{}/_distcache/peer/keyspaces/{keyspace}/copies",
            cluster.addrs[0]
        ))
        .header(distcache::wire::REVISION_HEADER, &ahead)
        .json(&serde_json::json!({ "keys": ["k"] }))
        .send()
    };
    let wait = cluster.node(0).engine().config().read_timeout / 2;

    let started = std::time::Instant::now();
    let served = copies("ks").await.unwrap();
    assert_eq!(served.status(), reqwest::StatusCode::OK);
    assert!(
        started.elapsed() < wait / 2,
        "waited {:?}",
        started.elapsed()
    );

    let started = std::time::Instant::now();
    let unknown = copies("not-yet").await.unwrap();
    assert_eq!(unknown.status(), reqwest::StatusCode::NOT_FOUND);
    assert!(
        started.elapsed() >= wait,
        "waited only {:?}",
        started.elapsed()
    );
    cluster.shutdown().await;
}
