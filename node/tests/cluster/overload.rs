//! Overload (issue 17, item 7): with a data source far slower than the arrival rate, loads
//! running and waiting, and requests in progress, stay within their bounds; what does not fit
//! is refused at once with 503 `OVERLOADED` and `Retry-After`; and the node serves normally
//! again by itself once the source answers.
//!
//! The source is the testkit's: `slow…` keys wait behind a gate that the test opens, so "far
//! slower than the arrival rate" is exact and nothing is timed.

use std::time::{Duration, Instant};

use futures::future::join_all;
use reqwest::StatusCode;
use serde_json::Value;
use tokio::task::JoinHandle;

use distcache::KeySpaceSnapshot;
use distcache_testkit::{TestCluster, spec, wait_for, wait_until};

/// Long enough for anything here to happen, far under any deadline that could end a wait.
const LIMIT: Duration = Duration::from_secs(10);

/// What one HTTP read answered.
#[derive(Debug)]
struct Answer {
    status: StatusCode,
    retry_after: Option<String>,
    body: String,
}

impl Answer {
    fn code(&self) -> Option<String> {
        let json: Value = serde_json::from_str(&self.body).ok()?;
        json["code"].as_str().map(str::to_owned)
    }

    /// 503 `OVERLOADED` with a `Retry-After`.
    fn is_overloaded(&self) -> bool {
        self.status == StatusCode::SERVICE_UNAVAILABLE
            && self.code().as_deref() == Some("OVERLOADED")
            && self.retry_after.as_deref() == Some("1")
    }
}

/// Starts `GET /v1/keyspaces/ks/keys/{key}` on `addr` in its own task.
fn read(http: &reqwest::Client, addr: &str, key: &str) -> JoinHandle<Answer> {
    let request = http.get(format!("http://{addr}/v1/keyspaces/ks/keys/{key}"));
    tokio::spawn(async move {
        let response = request.timeout(Duration::from_secs(20)).send().await;
        let response = response.unwrap_or_else(|e| panic!("no answer: {e}"));
        let status = response.status();
        let retry_after = response
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let body = response.text().await.unwrap_or_default();
        Answer {
            status,
            retry_after,
            body,
        }
    })
}

/// The keyspace `ks` as node `i` shows it.
async fn ks(cluster: &TestCluster, i: usize) -> KeySpaceSnapshot {
    let stats = cluster.client(i).stats().await.unwrap();
    stats.into_iter().find(|k| k.name == "ks").unwrap()
}

/// Waits (at most [`LIMIT`]) until `n` of `tasks` have answered; returns those answers and
/// keeps the tasks still running in `tasks`.
async fn first_answers(tasks: &mut Vec<JoinHandle<Answer>>, n: usize) -> Vec<Answer> {
    let deadline = Instant::now() + LIMIT;
    let mut answers = Vec::new();
    loop {
        let (done, running): (Vec<_>, Vec<_>) = std::mem::take(tasks)
            .into_iter()
            .partition(JoinHandle::is_finished);
        *tasks = running;
        for task in done {
            answers.push(task.await.unwrap());
        }
        if answers.len() >= n {
            return answers;
        }
        assert!(
            Instant::now() < deadline,
            "only {} of {n} reads answered within {LIMIT:?}: {answers:?}",
            answers.len()
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// The value of the sample of `family` whose labels include every one of `labels`.
fn sample(metrics: &str, family: &str, labels: &[&str]) -> Option<f64> {
    metrics
        .lines()
        .filter(|l| l.starts_with(&format!("{family}{{")))
        .find(|l| labels.iter().all(|label| l.contains(label)))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

/// A burst of distinct cold keys, far more than the bounds, against a source that does not
/// answer: source calls never exceed `max_concurrent_loads`, at most `max_queued_loads` keys
/// wait, the rest are refused at once with 503 `OVERLOADED` (while the source still has not
/// answered anything); 20 readers of one key still cause one fetch; and when the source
/// answers, every admitted read succeeds and the node serves new keys with no restart.
#[tokio::test]
async fn issue_17_overload_bounds_loads_refuses_the_rest_and_recovers() {
    let mut bounded = spec("ks");
    bounded.max_concurrent_loads = Some(4);
    bounded.max_queued_loads = Some(8);
    bounded.read_timeout = Some(Duration::from_secs(20));
    let cluster = TestCluster::builder(1).specs(vec![bounded]).build().await;
    let source = cluster.sources[0].clone();
    let addr = cluster.addrs[0].clone();
    let http = reqwest::Client::new();

    // 20 readers of one key: one load, holding one call slot.
    let mut shared: Vec<_> = (0..20).map(|_| read(&http, &addr, "slow-shared")).collect();
    wait_until(LIMIT, "the 20 readers of one key missed", || async {
        ks(&cluster, 0).await.stats.loads == 20
    })
    .await;
    assert_eq!(source.fetches_of("slow-shared"), 1);

    // 60 distinct keys: 3 more calls run, 8 keys wait, 49 are refused.
    let mut burst: Vec<_> = (0..60)
        .map(|i| read(&http, &addr, &format!("slow-{i}")))
        .collect();
    let refused = first_answers(&mut burst, 49).await;
    assert_eq!(refused.len(), 49, "{refused:?}");
    for answer in &refused {
        assert!(answer.is_overloaded(), "{answer:?}");
    }
    // Refused while the source had answered nothing: at once, not after a wait.
    assert_eq!(source.running(), 4);
    assert!(source.most_running() <= 4, "{}", source.most_running());
    let now = ks(&cluster, 0).await;
    assert_eq!((now.max_concurrent_loads, now.max_queued_loads), (4, 8));
    assert_eq!((now.loads_running, now.loads_queued), (4, 8));
    assert_eq!(now.keys_loading, 12, "one flight per admitted key, no more");
    assert_eq!(now.stats.overloaded, 49);
    assert_eq!(burst.len(), 11);
    assert_eq!(shared.len(), 20);

    // The source answers: every admitted read gets its value, the shared key fetched once.
    source.open_gate();
    for answer in join_all(shared.drain(..).chain(burst.drain(..))).await {
        let answer = answer.unwrap();
        assert_eq!(answer.status, StatusCode::OK, "{answer:?}");
        assert!(answer.body.starts_with("v:slow-"), "{answer:?}");
    }
    assert_eq!(source.fetches_of("slow-shared"), 1);
    assert!(source.most_running() <= 4, "{}", source.most_running());
    wait_until(LIMIT, "no load is left running or waiting", || async {
        let now = ks(&cluster, 0).await;
        (now.loads_running, now.loads_queued, now.keys_loading) == (0, 0, 0)
    })
    .await;

    // Recovered by itself: a second burst, within the bounds, is served in full, and the
    // refused keys load now.
    let again: Vec<_> = (40..52)
        .map(|i| read(&http, &addr, &format!("slow-{i}")))
        .collect();
    for answer in join_all(again).await {
        let answer = answer.unwrap();
        assert_eq!(answer.status, StatusCode::OK, "{answer:?}");
    }
    let metrics = cluster.client(0).metrics().await.unwrap();
    let refusals = [r#"keyspace="ks""#, r#"reason="overloaded""#];
    assert_eq!(
        sample(&metrics, "distcache_source_refused_total", &refusals),
        Some(49.0),
        "{metrics}"
    );
    let errors = [
        r#"keyspace="ks""#,
        r#"operation="get""#,
        r#"code="OVERLOADED""#,
    ];
    assert_eq!(
        sample(&metrics, "distcache_engine_errors_total", &errors),
        Some(49.0),
        "{metrics}"
    );
    cluster.shutdown().await;
}

/// Reads of keys another node owns obey the owner's bound: the owner refuses past it, the
/// asking node answers its client `OVERLOADED` too, and does not fall back to its own source
/// (which would double the calls the bound is for).
#[tokio::test]
async fn issue_17_peer_forwarded_loads_obey_the_owners_bound() {
    let mut bounded = spec("ks");
    bounded.max_concurrent_loads = Some(2);
    bounded.max_queued_loads = Some(3);
    bounded.read_timeout = Some(Duration::from_secs(20));
    let cluster = TestCluster::builder(2).specs(vec![bounded]).build().await;
    let keys: Vec<String> = (0..)
        .map(|n| format!("slow-{n}"))
        .filter(|k| cluster.owner_of("ks", k) == 1)
        .take(20)
        .collect();
    let http = reqwest::Client::new();
    let mut reads: Vec<_> = keys
        .iter()
        .map(|k| read(&http, &cluster.addrs[0], k))
        .collect();
    let refused = first_answers(&mut reads, 15).await;
    assert_eq!(refused.len(), 15, "{refused:?}");
    for answer in &refused {
        assert!(answer.is_overloaded(), "{answer:?}");
    }
    let owner = &cluster.sources[1];
    assert_eq!(owner.running(), 2);
    assert!(owner.most_running() <= 2, "{}", owner.most_running());
    assert_eq!(
        cluster.sources[0].fetches(),
        0,
        "no fallback to the asking node's source"
    );
    assert_eq!(ks(&cluster, 1).await.stats.overloaded, 15);

    owner.open_gate();
    for answer in join_all(reads).await {
        let answer = answer.unwrap();
        assert_eq!(answer.status, StatusCode::OK, "{answer:?}");
    }
    assert!(owner.most_running() <= 2, "{}", owner.most_running());
    cluster.shutdown().await;
}

/// Past `server.max_in_flight` requests of the client API, a request is answered at once with
/// 503 `OVERLOADED`, hits too; health, metrics and admin routes still answer; and once the
/// requests in progress end, the node serves again.
#[tokio::test]
async fn issue_17_requests_in_progress_are_bounded() {
    let cluster = TestCluster::builder(1)
        .edit(|_, c| c.server.max_in_flight = 5)
        .build()
        .await;
    let source = cluster.sources[0].clone();
    let addr = cluster.addrs[0].clone();
    let client = cluster.client(0);
    client.put("ks", "cached", "v", None).await.unwrap();
    let http = reqwest::Client::new();

    let stuck: Vec<_> = (0..5)
        .map(|i| read(&http, &addr, &format!("slow-{i}")))
        .collect();
    wait_for(LIMIT, "5 reads wait on the source", || {
        source.running() == 5
    })
    .await;

    let answer = read(&http, &addr, "cached").await.unwrap();
    assert!(answer.is_overloaded(), "{answer:?}");
    let catalog = http
        .get(format!("http://{addr}/v1/keyspaces"))
        .send()
        .await
        .unwrap();
    assert_eq!(catalog.status(), StatusCode::SERVICE_UNAVAILABLE);
    for path in ["/healthz", "/metrics", "/_distcache/admin/keyspaces"] {
        let response = http
            .get(format!("http://{addr}{path}"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{path}");
    }
    assert_eq!(source.fetches(), 5, "the refused read reached nothing");

    source.open_gate();
    for answer in join_all(stuck).await {
        assert_eq!(answer.unwrap().status, StatusCode::OK);
    }
    let answer = read(&http, &addr, "cached").await.unwrap();
    assert_eq!(answer.status, StatusCode::OK, "{answer:?}");
    assert_eq!(answer.body, "v");
    cluster.shutdown().await;
}
