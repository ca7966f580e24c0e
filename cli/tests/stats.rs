//! `distcache stats --cluster` against real nodes: totals summed exactly over the members, rates
//! while reads run, and a member that is down.

#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use common::Cluster;
use distcache::{KeySpaceSpec, SourceSpec};
use serde_json::Value;

/// Keyspace `ks` over each node's counting test source, and the put-only `scratch`.
fn specs() -> Vec<KeySpaceSpec> {
    vec![
        distcache_testkit::spec("ks"),
        KeySpaceSpec::new("scratch", SourceSpec::None),
    ]
}

/// The `--cluster` JSON entry of keyspace `name`.
fn keyspace<'a>(json: &'a Value, name: &str) -> &'a Value {
    json["keyspaces"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["name"] == name)
        .unwrap_or_else(|| panic!("no {name} in {json}"))
}

fn u64_of(v: &Value) -> u64 {
    v.as_u64().unwrap_or_else(|| panic!("not a count: {v}"))
}

fn f64_of(v: &Value) -> f64 {
    v.as_f64().unwrap_or_else(|| panic!("not a number: {v}"))
}

/// Reads through different nodes sum exactly in `stats --cluster --interval 0`: gets, hits and
/// loads, fetches against the sources' own count, and the same numbers as the per-node
/// `stats` adds up to; one poll, no rates; `--keyspace` filters and a missing one exits 3.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_totals_sum_exactly() {
    let c = Cluster::start_serving(3, specs()).await;
    // 5 reads through node 0, 4 through node 1 (one key missing), 2 through node 2.
    let reads: [&[&str]; 3] = [
        &["k0", "k1", "k2", "k3", "k4"],
        &["k0", "k1", "k2", "missing-1"],
        &["k0", "k0"],
    ];
    for (i, keys) in reads.iter().enumerate() {
        for key in *keys {
            c.engine(i).get("ks", key).await.unwrap();
        }
    }

    let json = c
        .run(&["stats", "--cluster", "-o", "json", "--interval", "0"])
        .await
        .json();
    assert_eq!(
        (&json["nodes_asked"], &json["nodes_answered"]),
        (&Value::from(3), &Value::from(3)),
        "{json}"
    );
    assert_eq!(json["interval_seconds"], Value::Null, "{json}");
    assert_eq!(json["unreachable"], serde_json::json!([]), "{json}");
    let ks = keyspace(&json, "ks");
    assert_eq!(ks["rates"], Value::Null, "{ks}");
    let t = &ks["totals"];
    assert_eq!(u64_of(&t["nodes"]), 3, "{t}");
    assert_eq!(u64_of(&t["gets"]), 11, "{t}");
    assert_eq!(
        u64_of(&t["cache_hits"]) + u64_of(&t["loads"]),
        11,
        "every get is a hit or a load: {t}"
    );
    // Six distinct keys, each fetched once by its owner.
    assert_eq!(u64_of(&t["fetches"]), c.total_fetches() as u64, "{t}");
    assert_eq!(u64_of(&t["fetches"]), 6, "{t}");
    assert_eq!(u64_of(&t["errors"]), 0, "{t}");
    let ratio = f64_of(&t["hit_ratio"]);
    assert!(
        (ratio - u64_of(&t["cache_hits"]) as f64 / 11.0).abs() < 1e-9,
        "hit ratio is hits over gets: {t}"
    );

    // The per-node view adds up to the same totals.
    let per_node = c.run(&["stats", "ks", "-o", "json"]).await.json();
    let sum = |field: &str| -> u64 {
        per_node["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| u64_of(&n["keyspaces"][0]["stats"][field]))
            .sum()
    };
    for field in ["gets", "cache_hits", "loads", "local_loads", "peer_loads"] {
        assert_eq!(sum(field), u64_of(&t["stats"][field]), "{field}: {t}");
    }

    let only = c
        .run(&[
            "stats",
            "--cluster",
            "--keyspace",
            "scratch",
            "--interval",
            "0",
            "-o",
            "json",
        ])
        .await
        .json();
    assert_eq!(only["keyspaces"].as_array().unwrap().len(), 1, "{only}");
    assert_eq!(only["keyspaces"][0]["name"], "scratch", "{only}");
    c.run(&[
        "stats",
        "--cluster",
        "--keyspace",
        "nope",
        "--interval",
        "0",
    ])
    .await
    .fails(3, "nope");

    let table = c.run(&["stats", "--cluster", "--interval", "0"]).await;
    let text = table.ok();
    assert!(text.starts_with("3 of 3 members answered\n"), "{text}");
    assert!(
        !text.contains("GET/S"),
        "no rates with --interval 0: {text}"
    );
    let row: Vec<&str> = text
        .lines()
        .find(|l| l.starts_with("ks "))
        .unwrap()
        .split_whitespace()
        .collect();
    assert_eq!(row[..3], ["ks", "3", "11"], "{text}");
    c.shutdown().await;
}

/// With reads running through two nodes during the interval, the rates are positive, hits
/// never exceed gets, and what the rates count over the interval fits in the totals.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_rates_while_reading() {
    let c = Cluster::start_serving(2, specs()).await;
    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicU64::new(0));
    let reader = {
        let engines = [c.engine(0), c.engine(1)];
        let (stop, done) = (stop.clone(), done.clone());
        tokio::spawn(async move {
            let mut n = 0u64;
            while !stop.load(Ordering::SeqCst) {
                // A known key (mostly hits) and a new one (a fetch), through alternating nodes.
                let engine = &engines[(n % 2) as usize];
                engine.get("ks", "hot").await.unwrap();
                engine.get("ks", &format!("new-{n}")).await.unwrap();
                n += 1;
                done.store(n, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        })
    };
    common::wait_for("the reader is reading", || done.load(Ordering::SeqCst) > 0).await;

    let run = c
        .run(&["stats", "--cluster", "-o", "json", "--interval", "1s"])
        .await;
    let table = c
        .run(&["stats", "--cluster", "--interval", "300ms", "ks"])
        .await;
    stop.store(true, Ordering::SeqCst);
    reader.await.unwrap();

    let json = run.json();
    let interval = f64_of(&json["interval_seconds"]);
    assert!((1.0..30.0).contains(&interval), "{json}");
    let ks = keyspace(&json, "ks");
    let (t, r) = (&ks["totals"], &ks["rates"]);
    assert_eq!(u64_of(&r["nodes"]), 2, "{r}");
    let gets_per_s = f64_of(&r["gets_per_s"]);
    let hits_per_s = f64_of(&r["hits_per_s"]);
    let fetches_per_s = f64_of(&r["fetches_per_s"]);
    assert!(gets_per_s > 0.0, "{r}");
    assert!(fetches_per_s > 0.0, "{r}");
    assert!(hits_per_s <= gets_per_s, "{r}");
    assert!(f64_of(&r["loads_per_s"]) <= gets_per_s, "{r}");
    assert_eq!(f64_of(&r["errors_per_s"]), 0.0, "{r}");
    let ratio = f64_of(&r["hit_ratio"]);
    assert!((0.0..=1.0).contains(&ratio), "{r}");
    // Counted over the interval = rate × interval, a whole number within the totals.
    let counted = |rate: f64| (rate * interval).round();
    assert!(counted(gets_per_s) <= u64_of(&t["gets"]) as f64, "{ks}");
    assert!(
        counted(hits_per_s) <= u64_of(&t["cache_hits"]) as f64,
        "{ks}"
    );
    assert!(
        counted(fetches_per_s) <= u64_of(&t["fetches"]) as f64,
        "{ks}"
    );
    assert!(
        (ratio - hits_per_s / gets_per_s).abs() < 1e-9,
        "the interval's hit ratio is hits/s over gets/s: {r}"
    );
    // Nothing for scratch: a row with zero rates, not a missing one.
    let scratch = &keyspace(&json, "scratch")["rates"];
    assert_eq!(f64_of(&scratch["gets_per_s"]), 0.0, "{scratch}");

    let text = table.ok();
    assert!(
        text.lines()
            .next()
            .unwrap()
            .starts_with("2 of 2 members answered · rates over"),
        "{text}"
    );
    assert!(
        text.contains("GET/S") && text.contains("HIT % NOW"),
        "{text}"
    );
    assert_eq!(
        text.lines().filter(|l| l.starts_with("ks ")).count(),
        1,
        "{text}"
    );
    assert!(!text.contains("scratch"), "{text}");
    c.shutdown().await;
}

/// A member that is down is reported (JSON and stderr) and left out of the sums, and the
/// command still answers; with every member down it fails with exit code 4.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_stats_with_a_member_down() {
    let mut c = Cluster::start_serving(3, specs()).await;
    c.engine(0).get("ks", "a").await.unwrap();
    c.engine(1).get("ks", "b").await.unwrap();
    c.stop_node(2).await;
    let stopped = c.addrs[2].clone();

    let run = c
        .run(&["stats", "--cluster", "-o", "json", "--interval", "200ms"])
        .await;
    assert!(run.stderr.contains("node-2"), "{}", run.stderr);
    let json = run.json();
    assert_eq!(
        (&json["nodes_asked"], &json["nodes_answered"]),
        (&Value::from(3), &Value::from(2)),
        "{json}"
    );
    let down = json["unreachable"].as_array().unwrap();
    assert_eq!(down.len(), 1, "{json}");
    assert_eq!(
        (
            &down[0]["node"],
            &down[0]["addr"],
            &down[0]["error"]["code"]
        ),
        (
            &Value::from("node-2"),
            &Value::from(stopped),
            &Value::from("UNAVAILABLE")
        ),
        "{json}"
    );
    let ks = keyspace(&json, "ks");
    assert_eq!(u64_of(&ks["totals"]["nodes"]), 2, "{ks}");
    assert_eq!(u64_of(&ks["totals"]["gets"]), 2, "{ks}");
    assert_eq!(u64_of(&ks["rates"]["nodes"]), 2, "{ks}");

    let table = c.run(&["stats", "--cluster", "--interval", "0"]).await;
    assert!(
        table.ok().starts_with("2 of 3 members answered"),
        "{}",
        table.stdout
    );
    assert!(table.stderr.contains("did not answer"), "{}", table.stderr);

    c.stop_node(0).await;
    c.stop_node(1).await;
    c.run(&["stats", "--cluster", "--interval", "0"])
        .await
        .fails(4, "");
    c.shutdown().await;
}
