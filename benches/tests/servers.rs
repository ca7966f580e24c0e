//! The bench servers over real sockets: the reference answers a hit the way a node does, is
//! filled and read with the node's batch bodies, and reads a miss through the delay source
//! once per key.

use std::net::SocketAddr;
use std::time::Duration;

use distcache_bench::{delay_source, reference};
use tokio::net::TcpListener;

/// Starts the reference on a free port; it stops when the test's runtime does.
async fn start_reference(config: reference::Config) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(reference::serve(listener, config, std::future::pending()));
    addr
}

/// Starts the delay source on a free port.
async fn start_delay_source(delay: Duration) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let config = delay_source::Config {
        value_bytes: 64,
        delay,
    };
    tokio::spawn(delay_source::serve(
        listener,
        config,
        std::future::pending(),
    ));
    addr
}

fn client() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("client")
}

/// A stored value comes back with the node's status, content type, node header and bytes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hit_is_answered_like_a_node() {
    let addr = start_reference(reference::Config::new("scratch")).await;
    let http = client();
    let url = format!("http://{addr}/v1/keyspaces/scratch/keys/user%3A1");
    let put = http
        .put(&url)
        .body(vec![7u8; 64])
        .send()
        .await
        .expect("put");
    assert_eq!(put.status(), 204);
    let got = http.get(&url).send().await.expect("get");
    assert_eq!(got.status(), 200);
    assert_eq!(got.headers()["content-type"], "application/octet-stream");
    assert_eq!(got.headers()["x-distcache-node"], "node-1");
    assert_eq!(got.bytes().await.expect("body").as_ref(), [7u8; 64]);
    let other = format!("http://{addr}/v1/keyspaces/other/keys/user%3A1");
    assert_eq!(http.get(other).send().await.expect("get").status(), 404);
    let missing = format!("http://{addr}/v1/keyspaces/scratch/keys/nope");
    assert_eq!(http.get(missing).send().await.expect("get").status(), 404);
}

/// Values stored with a node's put-many body are read back by a node's get-many body.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn put_many_then_get_many_round_trip() {
    let addr = start_reference(reference::Config::new("scratch")).await;
    let http = client();
    let body = serde_json::json!({ "entries": [
        { "key": "a", "value": "eHg=" },
        { "key": "b", "value": "eXk=" },
    ]});
    let put: serde_json::Value = http
        .post(format!("http://{addr}/v1/keyspaces/scratch/put-many"))
        .json(&body)
        .send()
        .await
        .expect("put-many")
        .json()
        .await
        .expect("json");
    assert_eq!(put["results"][1]["status"], "ok");
    let got: serde_json::Value = http
        .post(format!("http://{addr}/v1/keyspaces/scratch/get-many"))
        .json(&serde_json::json!({ "keys": ["b", "zz", "a"] }))
        .send()
        .await
        .expect("get-many")
        .json()
        .await
        .expect("json");
    assert_eq!(got["results"][0]["value"], "eXk=");
    assert_eq!(got["results"][1]["status"], "not_found");
    assert_eq!(got["results"][2]["value"], "eHg=");
}

/// Twenty concurrent misses of one key through the reference cost the delay source one fetch,
/// and a URL's `delay_ms` is waited out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_misses_of_one_key_fetch_once() {
    let source = start_delay_source(Duration::from_millis(1)).await;
    let mut config = reference::Config::new("miss");
    config.source = Some(format!("http://{source}/v/{{key}}?delay_ms=300"));
    let addr = start_reference(config).await;
    let http = client();
    let url = format!("http://{addr}/v1/keyspaces/miss/keys/one-key");
    let started = std::time::Instant::now();
    let answers = futures_join_all((0..20).map(|_| http.get(&url).send())).await;
    assert!(started.elapsed() >= Duration::from_millis(300));
    for answer in answers {
        let answer = answer.expect("get");
        assert_eq!(answer.status(), 200);
        assert_eq!(answer.bytes().await.expect("body").len(), 64);
    }
    let counts: serde_json::Value = http
        .get(format!("http://{source}/fetches/one-key"))
        .send()
        .await
        .expect("count")
        .json()
        .await
        .expect("json");
    assert_eq!(counts["fetches"], 1);
}

/// Runs the futures at once on the test's runtime and collects their outputs in order.
async fn futures_join_all<F: std::future::Future + Send + 'static>(
    futures: impl Iterator<Item = F>,
) -> Vec<F::Output>
where
    F::Output: Send + 'static,
{
    let handles: Vec<_> = futures.map(tokio::spawn).collect();
    let mut out = Vec::new();
    for handle in handles {
        out.push(handle.await.expect("task"));
    }
    out
}
