//! Routing: each key is loaded by its owner only; copies elsewhere are kept hot and dropped
//! on every write; batches go to each owner once.

use distcache::Entry;

use distcache_testkit::TestCluster;

/// A get on any node loads the key from its owner's source only, once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_key_is_loaded_by_its_owner_only() {
    let cluster = TestCluster::start(3).await;
    for i in 0..3 {
        let key = cluster.key_owned_by("ks", i, "user:");
        for asker in 0..3 {
            let value = cluster.node(asker).engine().get("ks", &key).await.unwrap();
            assert_eq!(value.as_deref(), Some(format!("v:{key}").as_bytes()));
        }
        for n in 0..3 {
            let expected = usize::from(n == i);
            assert_eq!(
                cluster.sources[n].fetches_of(&key),
                expected,
                "node {n}, key of {i}"
            );
        }
    }
    // The non-owners answered through the owner: counted as peer loads.
    let stats = cluster
        .node(0)
        .engine()
        .keyspace_stats("ks")
        .await
        .unwrap()
        .stats;
    assert_eq!(stats.peer_loads, 2);
    assert_eq!(stats.peer_errors, 0);
    cluster.shutdown().await;
}

/// A non-owner keeps a hot copy: the second read there asks nobody.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn non_owner_keeps_a_hot_copy() {
    let cluster = TestCluster::start(3).await;
    let key = cluster.key_owned_by("ks", 1, "hot:");
    let engine = cluster.node(0).engine();
    engine.get("ks", &key).await.unwrap();
    engine.get("ks", &key).await.unwrap();
    let owner_stats = cluster.node(1).engine().keyspace_stats("ks").await.unwrap();
    assert_eq!(
        owner_stats.stats.peer_requests, 1,
        "the owner was asked once"
    );
    let mine = engine.keyspace_stats("ks").await.unwrap();
    assert_eq!(mine.hot_cache_entries, 1);
    assert_eq!(mine.main_cache_entries, 0);
    assert_eq!(mine.stats.cache_hits, 1);
    cluster.shutdown().await;
}

/// A read forwarded to the owner is counted once, on the node that answered the client (a
/// get, a hit or a load, a hot read, a peer load); the owner counts a peer request and its
/// own fetch, not a get (`engine/read.rs`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forwarded_read_is_counted_once() {
    let cluster = TestCluster::start(2).await;
    let key = cluster.key_owned_by("ks", 1, "counted:");
    let other = cluster.key_owned_by("ks", 1, "counted-batch:");
    let engine = cluster.node(0).engine();
    engine.get("ks", &key).await.unwrap();
    engine.get("ks", &key).await.unwrap();
    let batch = engine
        .get_many("ks", &[&other, &other, &key])
        .await
        .unwrap();
    assert!(batch.iter().all(|r| r.result.is_ok()), "{batch:?}");

    let asker = engine.keyspace_stats("ks").await.unwrap().stats;
    assert_eq!(asker.gets, 5, "every key the client asked for: {asker:?}");
    assert_eq!(asker.cache_hits, 2, "{asker:?}");
    assert_eq!(asker.loads, 3, "{asker:?}");
    assert_eq!(
        asker.peer_loads, 2,
        "one per key loaded through the owner: {asker:?}"
    );
    assert_eq!(asker.peer_requests, 0, "{asker:?}");
    assert_eq!(asker.local_loads, 0, "{asker:?}");

    let owner = cluster
        .node(1)
        .engine()
        .keyspace_stats("ks")
        .await
        .unwrap()
        .stats;
    assert_eq!(
        owner.gets, 0,
        "the owner's clients asked nothing: {owner:?}"
    );
    assert_eq!(owner.cache_hits + owner.loads, 0, "{owner:?}");
    assert_eq!(owner.peer_requests, 2, "{owner:?}");
    assert_eq!(
        owner.local_loads, 2,
        "the owner fetched both keys: {owner:?}"
    );

    let hot = |i: usize| -> Vec<String> {
        let keys = cluster.node(i).engine().hot_keys("ks").unwrap();
        keys.into_iter().map(|(k, _)| k).collect()
    };
    assert!(hot(0).contains(&key), "read here: {:?}", hot(0));
    assert!(
        hot(1).is_empty(),
        "no client read on the owner: {:?}",
        hot(1)
    );
    cluster.shutdown().await;
}

/// After a put through any node, no node serves the old value, hot copies included.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn put_invalidates_every_copy() {
    let cluster = TestCluster::start(3).await;
    let key = cluster.key_owned_by("ks", 2, "p:");
    for i in 0..3 {
        cluster.node(i).engine().get("ks", &key).await.unwrap();
    }
    cluster
        .node(0)
        .engine()
        .put("ks", &key, "new")
        .await
        .unwrap();
    for i in 0..3 {
        let v = cluster.node(i).engine().get("ks", &key).await.unwrap();
        assert_eq!(v.as_deref(), Some(&b"new"[..]), "node {i}");
    }
    // The owner stored it: the non-owner's put did not create a main-cache copy of its own.
    let s0 = cluster.node(0).engine().keyspace_stats("ks").await.unwrap();
    assert_eq!(s0.main_cache_entries, 0);
    let s2 = cluster.node(2).engine().keyspace_stats("ks").await.unwrap();
    assert_eq!(s2.main_cache_entries, 1);
    cluster.shutdown().await;
}

/// After delete and delete_many through any node, no node serves the old value.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deletes_reach_every_node() {
    let cluster = TestCluster::start(3).await;
    let keys: Vec<String> = (0..3)
        .map(|i| cluster.key_owned_by("ks", i, "d:"))
        .collect();
    for key in &keys {
        cluster
            .node(1)
            .engine()
            .put("ks", key, "old")
            .await
            .unwrap();
        for i in 0..3 {
            let v = cluster.node(i).engine().get("ks", key).await.unwrap();
            assert_eq!(v.as_deref(), Some(&b"old"[..]));
        }
    }
    cluster
        .node(2)
        .engine()
        .delete("ks", &keys[0])
        .await
        .unwrap();
    let results = cluster
        .node(0)
        .engine()
        .delete_many("ks", &keys[1..])
        .await
        .unwrap();
    assert!(results.iter().all(|r| r.result.is_ok()));
    for key in &keys {
        for i in 0..3 {
            let v = cluster.node(i).engine().get("ks", key).await.unwrap();
            assert_eq!(
                v.as_deref(),
                Some(format!("v:{key}").as_bytes()),
                "node {i} {key}"
            );
        }
    }
    cluster.shutdown().await;
}

/// get_many sends one batch per owner, which loads its misses with one fetch_many.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_many_sends_one_batch_per_owner() {
    let cluster = TestCluster::start(3).await;
    let keys: Vec<String> = (0..300).map(|i| format!("b:{i}")).collect();
    let results = cluster
        .node(0)
        .engine()
        .get_many("ks", &keys)
        .await
        .unwrap();
    for (key, r) in keys.iter().zip(&results) {
        assert_eq!(&r.key, key);
        assert_eq!(
            r.result.as_ref().unwrap().as_deref(),
            Some(format!("v:{key}").as_bytes())
        );
    }
    for n in 0..3 {
        let owned = keys
            .iter()
            .filter(|k| cluster.owner_of("ks", k) == n)
            .count();
        assert!(owned > 50, "node {n} owns {owned} keys");
        assert_eq!(
            cluster.sources[n].fetches(),
            owned,
            "node {n} fetched only its keys"
        );
        assert_eq!(cluster.sources[n].batches(), 1, "node {n} got one batch");
    }
    cluster.shutdown().await;
}

/// put_many stores each entry on its owner; every node then reads the new values.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn put_many_reaches_each_owner() {
    let cluster = TestCluster::start(3).await;
    let entries: Vec<Entry> = (0..30)
        .map(|i| Entry::new(format!("pm:{i}"), format!("value {i}")))
        .collect();
    let results = cluster
        .node(1)
        .engine()
        .put_many("ks", entries.clone())
        .await
        .unwrap();
    assert!(results.iter().all(|r| r.result.is_ok()), "{results:?}");
    for e in &entries {
        let owner = cluster.owner_of("ks", &e.key);
        for i in 0..3 {
            let v = cluster.node(i).engine().get("ks", &e.key).await.unwrap();
            assert_eq!(v.as_ref(), Some(&e.value), "node {i}");
        }
        assert_eq!(
            cluster.sources[owner].fetches_of(&e.key),
            0,
            "served from the put"
        );
    }
    cluster.shutdown().await;
}

/// A peer's request for a key the node does not own goes on to the owner, so a write from a
/// node whose view is behind cannot land beside the owner; it is served where it arrived when
/// the sender is the owner itself (the two views differ: it never goes back), or when it has
/// gone through `MAX_HOPS` nodes, so nodes that disagree cannot bounce a key for ever.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peer_requests_go_to_the_owner_but_never_back() {
    let cluster = TestCluster::start(2).await;
    let http = reqwest::Client::new();
    let ask = |key: String, from: &'static str, hops: u8| {
        let http = http.clone();
        let addr = cluster.addrs[0].clone();
        async move {
            let response = http
                .get(format!(
                    "http://{addr}/_distcache/peer/keyspaces/ks/keys?key={key}"
                ))
                .header("x-distcache-hop", from)
                .header("x-distcache-hops", hops.to_string())
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), reqwest::StatusCode::OK);
            assert_eq!(
                response.bytes().await.unwrap(),
                format!("v:{key}").as_bytes()
            );
        }
    };
    // From a third node whose view is behind: passed on to the owner, node 1.
    let on = cluster.key_owned_by("ks", 1, "on:");
    ask(on.clone(), "node-9", 1).await;
    assert_eq!(cluster.sources[1].fetches_of(&on), 1, "loaded by the owner");
    assert_eq!(cluster.sources[0].fetches_of(&on), 0);
    // From the owner itself: served here, not sent back.
    let back = cluster.key_owned_by("ks", 1, "back:");
    ask(back.clone(), "node-1", 1).await;
    assert_eq!(
        cluster.sources[0].fetches_of(&back),
        1,
        "served where it arrived"
    );
    assert_eq!(cluster.sources[1].fetches_of(&back), 0);
    // Through three nodes already: served here.
    let far = cluster.key_owned_by("ks", 1, "far:");
    ask(far.clone(), "node-9", 3).await;
    assert_eq!(
        cluster.sources[0].fetches_of(&far),
        1,
        "served where it arrived"
    );
    assert_eq!(cluster.sources[1].fetches_of(&far), 0);
    cluster.shutdown().await;
}
