//! Ownership changes without stale reads (issue 12): a node that joins or restarts takes its
//! keys over only once every peer routes them to it, and only with the entries their previous
//! owners held; `/readyz` answers 200 only when the members agree on the ring.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use distcache::client::Client;

use distcache_testkit::{CONVERGE, TestCluster};

/// `n` keys of `ks` that node 2 owns once all three nodes are up.
fn owned_by_node_2(prefix: &str, n: usize) -> Vec<String> {
    let all = distcache::Ring::new(["node-0", "node-1", "node-2"].map(distcache::NodeId::from));
    (0..10_000)
        .map(|i| format!("{prefix}{i}"))
        .filter(|k| all.owner("ks", k).map(|id| id.as_str()) == Some("node-2"))
        .take(n)
        .collect()
}

/// Writes new versions of `keys` through the nodes in turn and, after each acknowledged
/// write, reads the key through every node: any answer but the version just written (or no
/// answer at all, from a node that is down or starting) is a stale read. Runs until `done`,
/// then `extra` rounds more; returns the stale reads it saw and how many reads answered.
async fn write_then_read_everywhere(
    clients: &[Client],
    keys: &[String],
    done: &AtomicBool,
    extra: usize,
) -> (Vec<String>, usize) {
    let mut stale = Vec::new();
    let mut answered = 0;
    let mut after_done = 0;
    let mut round = 0usize;
    while after_done < extra {
        if done.load(Ordering::SeqCst) {
            after_done += 1;
        }
        round += 1;
        for key in keys {
            let writer = &clients[round % clients.len()];
            let version = format!("{key}@{round}");
            if writer.put("ks", key, version.clone(), None).await.is_err() {
                continue;
            }
            for (i, reader) in clients.iter().enumerate() {
                if let Ok(Some(value)) = reader.get("ks", key).await {
                    answered += 1;
                    if value != version.as_bytes() {
                        stale.push(format!(
                            "round {round}: {key} through node {i} answered {:?}, wrote {version}",
                            String::from_utf8_lossy(&value)
                        ));
                    }
                }
            }
        }
        tokio::task::yield_now().await;
    }
    (stale, answered)
}

/// A node that stops and comes back on the same address, while writes and reads go on
/// through every node: no read returns anything but the last acknowledged write, before,
/// during and after its return; once back, it serves its keys from the entries it took over.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue_12_no_stale_read_across_a_restart() {
    let mut cluster = TestCluster::start(3).await;
    let keys = owned_by_node_2("r", 12);
    let clients: Vec<Client> = (0..3).map(|i| cluster.client(i)).collect();
    for key in &keys {
        clients[0].put("ks", key, "old", None).await.unwrap();
    }
    cluster.stop_node(2).await;
    cluster.wait_converged().await;
    let done = AtomicBool::new(false);
    let restart = async {
        cluster.start_node(2).await;
        done.store(true, Ordering::SeqCst);
    };
    let ((), (stale, answered)) = tokio::join!(
        restart,
        write_then_read_everywhere(&clients, &keys, &done, 5)
    );
    assert!(stale.is_empty(), "{} stale reads: {stale:#?}", stale.len());
    assert!(answered > keys.len() * 10, "only {answered} reads answered");
    cluster.wait_converged().await;
    // Node 2 owns its keys again and never asked its source for them: the values came from
    // the puts, through the takeover.
    for key in &keys {
        assert_eq!(cluster.sources[2].fetches_of(key), 0, "{key}");
    }
    cluster.shutdown().await;
}

/// A node that joins a running cluster takes over the entries of the keys it now owns,
/// puts included, so its first reads return the values written before it came.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue_12_a_joining_node_takes_written_values_over() {
    let mut cluster = TestCluster::builder(3).started(2).build().await;
    let keys = owned_by_node_2("j", 20);
    let clients: Vec<Client> = (0..3).map(|i| cluster.client(i)).collect();
    for key in &keys {
        clients[1]
            .put("ks", key, format!("put-{key}"), None)
            .await
            .unwrap();
    }
    let done = AtomicBool::new(false);
    let join = async {
        cluster.start_node(2).await;
        done.store(true, Ordering::SeqCst);
    };
    let ((), (stale, _)) = tokio::join!(
        join,
        write_then_read_everywhere(&clients[..2], &keys, &done, 3)
    );
    assert!(stale.is_empty(), "{} stale reads: {stale:#?}", stale.len());
    cluster.wait_converged().await;
    for key in &keys {
        let got = clients[2].get("ks", key).await.unwrap();
        assert!(
            got.as_deref()
                .is_some_and(|v| v.starts_with(key.as_bytes())),
            "{key} through the new node: {got:?}"
        );
        assert_eq!(cluster.sources[2].fetches_of(key), 0, "{key} fetched");
    }
    cluster.shutdown().await;
}

/// Nodes that start together answer `/readyz` 200 only once they agree on the ring: as soon
/// as all three do, they name the same owner for every key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue_12_readyz_means_the_ring_is_agreed() {
    let builder = TestCluster::builder(3);
    // A distcache client first: it installs the TLS crypto provider reqwest needs.
    Client::new(["127.0.0.1:1"]).unwrap();
    let http = reqwest::Client::new();
    let addrs: Arc<std::sync::Mutex<Vec<String>>> = Arc::default();
    let watched = Arc::clone(&addrs);
    let watcher = tokio::spawn(async move {
        let deadline = tokio::time::Instant::now() + CONVERGE;
        loop {
            let addrs = watched.lock().unwrap().clone();
            if addrs.len() == 3 {
                let mut ready = 0;
                for addr in &addrs {
                    let status = http
                        .get(format!("http://{addr}/readyz"))
                        .timeout(Duration::from_secs(1))
                        .send()
                        .await
                        .map(|r| r.status().as_u16());
                    if matches!(status, Ok(200)) {
                        ready += 1;
                    }
                }
                if ready == 3 {
                    let mut owners = Vec::new();
                    for addr in &addrs {
                        let client = Client::new([addr.clone()]).unwrap();
                        let mut mine = Vec::new();
                        for n in 0..30 {
                            mine.push(client.owner("ks", &format!("k{n}")).await.unwrap().owner);
                        }
                        owners.push(mine);
                    }
                    return owners;
                }
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "the nodes never all answered /readyz"
            );
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    });
    let cluster = builder.build_with(|addrs_of| {
        *addrs.lock().unwrap() = addrs_of.to_vec();
    });
    let cluster = cluster.await;
    let owners = watcher.await.unwrap();
    assert_eq!(owners[0], owners[1], "nodes 0 and 1 disagree");
    assert_eq!(owners[0], owners[2], "nodes 0 and 2 disagree");
    cluster.shutdown().await;
}
