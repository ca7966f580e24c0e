//! A cluster with a bearer token: nodes talk to each other with it (routing, invalidation,
//! raft), clients without it are refused, probes stay open.

use distcache::Error;
use distcache::client::Client;

use distcache_testkit::TestCluster;

/// Only requests with the cluster's token are served; health probes need none.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_guards_every_route_but_health() {
    let cluster = TestCluster::builder(2)
        .edit(|_, c| c.server.token = Some("s3cret".into()))
        .build()
        .await;
    cluster.wait_leader().await;
    let with = Client::new([cluster.addrs[0].clone()])
        .unwrap()
        .with_token(Some("s3cret".into()));
    let without = cluster.client(0);
    let wrong = Client::new([cluster.addrs[0].clone()])
        .unwrap()
        .with_token(Some("guess".into()));

    // Data through the peer transport and catalog changes through raft both work.
    let key = cluster.key_owned_by("ks", 1, "auth:");
    assert!(with.get("ks", &key).await.unwrap().is_some());
    with.put("ks", &key, "v", None).await.unwrap();
    let mut spec = distcache_testkit::spec("guarded");
    spec.max_bytes = Some(1 << 20);
    let changed = with.put_keyspace(&spec, None).await.unwrap();
    cluster.wait_revision(changed.revision).await;

    for client in [&without, &wrong] {
        let err = client.get("ks", &key).await.unwrap_err();
        assert!(matches!(err, Error::Unauthorized(_)), "{err:?}");
        let err = client.keyspaces().await.unwrap_err();
        assert!(matches!(err, Error::Unauthorized(_)), "{err:?}");
    }
    assert!(
        without.health().await.unwrap().ready,
        "probes need no token"
    );
    let raw = reqwest::get(format!(
        "http://{}/_distcache/peer/keyspaces/ks/keys/k",
        cluster.addrs[1]
    ))
    .await
    .unwrap();
    assert_eq!(
        raw.status(),
        reqwest::StatusCode::UNAUTHORIZED,
        "peer routes are guarded too"
    );
    cluster.shutdown().await;
}
