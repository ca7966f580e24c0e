//! Commands that load from a real data source: a SQLite keyspace read through, and `warmup`.

#![allow(clippy::unwrap_used)]

mod common;

use common::Cluster;

/// Creates keyspace `products` over a new SQLite database holding `rows` (id, body); the
/// database lives as long as the returned directory.
async fn products_keyspace(c: &Cluster, rows: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("shop.db");
    let conn = rusqlite::Connection::open(&db).unwrap();
    conn.execute_batch("CREATE TABLE products (id TEXT PRIMARY KEY, body TEXT);")
        .unwrap();
    for row in rows {
        conn.execute("INSERT INTO products VALUES (?1, ?2)", *row)
            .unwrap();
    }
    let source = format!("sqlite:{}", db.display());
    c.run(&[
        "keyspace",
        "create",
        "products",
        "--source",
        &source,
        "--query",
        "SELECT body FROM products WHERE id = ?",
    ])
    .await
    .ok();
    dir
}

/// A sqlite-backed keyspace created from the CLI reads through to the database.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_keyspace_from_the_cli() {
    let c = Cluster::start(3).await;
    let _db = products_keyspace(&c, &[("p1", "espresso")]).await;
    assert_eq!(c.run(&["get", "products", "p1"]).await.ok(), "espresso");
    c.run(&["get", "products", "p2"]).await.fails(3, "p2");
    c.run(&[
        "keyspace",
        "update",
        "products",
        "--query",
        "SELECT nope FROM products WHERE id = ?",
    ])
    .await
    .fails(1, "source.query");
    c.shutdown().await;
}

/// `warmup` loads the keys given across the cluster, prints the run as JSON, exits 1 when keys
/// failed, and leaves the keys cached: the gets after it are hits, not loads.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn warmup_from_the_cli() {
    let c = Cluster::start(3).await;
    let rows: Vec<(String, String)> = (0..20)
        .map(|i| (format!("p{i}"), format!("product {i}")))
        .collect();
    let rows: Vec<(&str, &str)> = rows.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let _db = products_keyspace(&c, &rows).await;

    let keys: Vec<String> = (0..20).map(|i| format!("p{i}")).collect();
    let run = c
        .run(&[
            "warmup",
            "products",
            "--keys",
            &keys.join(","),
            "-o",
            "json",
        ])
        .await
        .json();
    assert_eq!(run["keyspace"], "products");
    assert_eq!(run["trigger"], "demand");
    assert_eq!(run["done"], true);
    assert_eq!(
        (
            run["planned"].as_u64(),
            run["warmed"].as_u64(),
            run["failed"].as_u64()
        ),
        (Some(20), Some(20), Some(0)),
        "{run}"
    );

    let stats_sum = |json: &serde_json::Value, field: &str| -> u64 {
        json["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| n["keyspaces"][0]["stats"][field].as_u64().unwrap())
            .sum()
    };
    let before = c.run(&["stats", "products", "-o", "json"]).await.json();
    assert_eq!(
        (
            stats_sum(&before, "local_loads"),
            stats_sum(&before, "warmed_keys")
        ),
        (20, 20),
        "each key fetched once, by its owner: {before}"
    );
    for key in &keys {
        c.run(&["get", "products", key]).await.ok();
    }
    let after = c.run(&["stats", "products", "-o", "json"]).await.json();
    assert_eq!(
        stats_sum(&after, "local_loads"),
        20,
        "gets after the warmup fetch nothing: {after}"
    );
    // The node that took the gets counts them: its ten hottest keys are shown, hottest first.
    let first = &after["nodes"][0]["keyspaces"][0];
    let hot = first["hot_keys"].as_array().unwrap();
    assert_eq!(hot.len(), 10, "{first}");
    assert!(
        hot.iter()
            .all(|h| keys.contains(&h["key"].as_str().unwrap().to_owned())
                && h["count"].as_u64().unwrap() >= 1)
    );
    assert_eq!(first["last_warmup"]["trigger"], "demand", "{first}");

    // A key the node refuses fails the run: exit 1, the failure named in the message.
    let too_long = "k".repeat(2000);
    c.run(&["warmup", "products", "--keys", &format!("p1,{too_long}")])
        .await
        .fails(1, "1 of 2 keys failed");
    c.run(&["warmup", "nope"]).await.fails(3, "nope");
    c.shutdown().await;
}
