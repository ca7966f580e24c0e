//! The postgres source against a real PostgreSQL server (started by ./scripts/test.sh, which
//! runs these ignored tests and sets DISTCACHE_TEST_POSTGRES_URL).

use std::time::{SystemTime, UNIX_EPOCH};

use distcache::{Engine, EngineConfig, Error, KeySpaceSpec, SourceSpec};

fn url() -> String {
    std::env::var("DISTCACHE_TEST_POSTGRES_URL")
        .expect("DISTCACHE_TEST_POSTGRES_URL: run ./scripts/test.sh, which starts PostgreSQL")
}

/// A fresh table name, so parallel runs never meet.
fn table(prefix: &str) -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!("{prefix}_{}_{nanos}", std::process::id())
}

async fn sql(statements: &str) {
    let (client, connection) = tokio_postgres::connect(&url(), tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    client.batch_execute(statements).await.unwrap();
}

async fn engine() -> Engine {
    let engine = Engine::builder(EngineConfig::for_test()).build().unwrap();
    engine.start().await.unwrap();
    engine
}

/// Text, bytea and integer-keyed tables read through; missing rows and NULL are not found.
#[tokio::test]
#[ignore = "needs PostgreSQL: ./scripts/test.sh starts one and runs this"]
async fn postgres_source_reads_through() {
    let products = table("products");
    let counters = table("counters");
    sql(&format!(
        "CREATE TABLE {products} (id text PRIMARY KEY, body text, img bytea);
         INSERT INTO {products} VALUES ('p1', 'espresso', '\\x00ff'), ('p2', NULL, NULL);
         CREATE TABLE {counters} (id integer PRIMARY KEY, n bigint);
         INSERT INTO {counters} VALUES (7, 42);"
    ))
    .await;
    let engine = engine().await;
    let pg = |name: &str, query: String| {
        KeySpaceSpec::new(name, SourceSpec::Postgres { url: url(), query })
    };
    engine
        .create_keyspace(pg(
            "bodies",
            format!("SELECT body FROM {products} WHERE id = $1"),
        ))
        .await
        .unwrap();
    engine
        .create_keyspace(pg(
            "images",
            format!("SELECT img FROM {products} WHERE id = $1"),
        ))
        .await
        .unwrap();
    engine
        .create_keyspace(pg(
            "counts",
            format!("SELECT n FROM {counters} WHERE id = $1"),
        ))
        .await
        .unwrap();

    assert_eq!(
        engine.get("bodies", "p1").await.unwrap().as_deref(),
        Some(&b"espresso"[..])
    );
    assert_eq!(
        engine.get("bodies", "p2").await.unwrap(),
        None,
        "NULL is not found"
    );
    assert_eq!(engine.get("bodies", "p3").await.unwrap(), None);
    assert_eq!(
        engine.get("images", "p1").await.unwrap().as_deref(),
        Some(&[0u8, 255][..])
    );
    assert_eq!(
        engine.get("counts", "7").await.unwrap().as_deref(),
        Some(&b"42"[..])
    );
    assert_eq!(engine.get("counts", "not-a-number").await.unwrap(), None);
    // Many concurrent reads share the small pool.
    let reads = (0..50).map(|_| engine.get("bodies", "p1"));
    for r in futures::future::join_all(reads).await {
        assert_eq!(r.unwrap().as_deref(), Some(&b"espresso"[..]));
    }
}

/// A wrong query or unreachable server is refused when the keyspace is created, naming the
/// field and never the password.
#[tokio::test]
#[ignore = "needs PostgreSQL: ./scripts/test.sh starts one and runs this"]
async fn postgres_problems_are_reported_at_create() {
    let engine = engine().await;
    let bad_query = KeySpaceSpec::new(
        "a",
        SourceSpec::Postgres {
            url: url(),
            query: "SELECT body FROM no_such_table WHERE id = $1".into(),
        },
    );
    let err = engine.create_keyspace(bad_query).await.unwrap_err();
    assert!(matches!(err, Error::InvalidSpec(_)), "{err:?}");
    assert!(
        err.to_string().contains("source.query") && err.to_string().contains("no_such_table"),
        "{err}"
    );

    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let unreachable = KeySpaceSpec::new(
        "b",
        SourceSpec::Postgres {
            url: format!("postgres://app:hunter2@127.0.0.1:{dead}/db"),
            query: "SELECT 1 WHERE $1 = 'x'".into(),
        },
    );
    let err = engine.create_keyspace(unreachable).await.unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("source.url") && !text.contains("hunter2"),
        "{text}"
    );
    assert!(engine.keyspaces().is_empty(), "nothing was created");
}
