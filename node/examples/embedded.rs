//! Embedding the engine with a data source written in Rust: the counterpart of the seed's
//! Quick Start. Run it with `cargo run -p distcache --example embedded`.
//!
//! A "users" keyspace reads profiles from a slow backend (simulated here by a map and a
//! sleep). The first read of a key misses and loads it; the next reads are served from memory;
//! ten concurrent reads of a cold key reach the backend once.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime};

use distcache::{
    CircuitBreakerConfig, DataSource, Engine, EngineConfig, FetchResult, Fetched, KeySpace,
    KeySpaceOverrides, RateLimitConfig, SourceError, async_trait,
};

/// The backend: a table of user profiles behind a 20 ms round trip.
struct UserDatabase {
    rows: HashMap<String, String>,
    queries: AtomicUsize,
}

#[async_trait]
impl DataSource for UserDatabase {
    async fn fetch(&self, key: &str) -> FetchResult {
        self.queries.fetch_add(1, Ordering::Relaxed);
        tokio::time::sleep(Duration::from_millis(20)).await;
        if key == "user:broken" {
            return Err(SourceError::new("row is corrupt"));
        }
        Ok(self.rows.get(key).map(|row| Fetched::new(row.clone())))
    }
}

/// The keyspace, defined in code: name, size, source, and a per-key expiry policy
/// (sessions of guests expire sooner than those of members).
struct Users {
    db: Arc<UserDatabase>,
}

impl KeySpace for Users {
    fn name(&self) -> &str {
        "users"
    }

    fn max_bytes(&self) -> u64 {
        64 << 20
    }

    fn data_source(&self) -> Arc<dyn DataSource> {
        self.db.clone()
    }

    fn expires_at(&self, key: &str) -> Option<SystemTime> {
        key.starts_with("guest:")
            .then(|| SystemTime::now() + Duration::from_secs(30))
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let rows = (1..=1000)
        .map(|i| {
            (
                format!("user:{i}"),
                format!(r#"{{"id":{i},"name":"user {i}"}}"#),
            )
        })
        .collect();
    let db = Arc::new(UserDatabase {
        rows,
        queries: AtomicUsize::new(0),
    });

    let engine = Engine::builder(EngineConfig::default())
        .keyspace(Users { db: db.clone() })
        .override_keyspace(
            "users",
            KeySpaceOverrides::new()
                .default_ttl(Duration::from_secs(300))
                .read_timeout(Duration::from_millis(250))
                .warm_keys(["user:1", "user:2"])
                .rate_limit(RateLimitConfig {
                    requests_per_second: 500.0,
                    burst: 100,
                    wait_timeout: Duration::from_millis(50),
                })
                .circuit_breaker(CircuitBreakerConfig {
                    failure_threshold: 5,
                    reset_timeout: Duration::from_secs(10),
                }),
        )
        .build()?;
    engine.start().await?;

    let started = Instant::now();
    let value = engine.get("users", "user:42").await?;
    println!(
        "miss: user:42 = {} in {:?}",
        show(&value),
        started.elapsed()
    );
    let started = Instant::now();
    let value = engine.get("users", "user:42").await?;
    println!(
        "hit:  user:42 = {} in {:?}",
        show(&value),
        started.elapsed()
    );

    let before = db.queries.load(Ordering::Relaxed);
    let reads = (0..10).map(|_| engine.get("users", "user:7"));
    let answers = futures::future::join_all(reads).await;
    println!(
        "10 concurrent reads of a cold key: {} answered, {} backend query",
        answers.iter().filter(|a| a.is_ok()).count(),
        db.queries.load(Ordering::Relaxed) - before
    );

    let keys = ["user:1", "user:2", "user:4040", "user:broken"];
    for result in engine.get_many("users", &keys).await? {
        match result.result {
            Ok(Some(v)) => println!("get_many {}: {}", result.key, String::from_utf8_lossy(&v)),
            Ok(None) => println!("get_many {}: not found", result.key),
            Err(e) => println!("get_many {}: error: {e}", result.key),
        }
    }

    engine
        .put("users", "user:42", r#"{"id":42,"name":"renamed"}"#)
        .await?;
    println!(
        "after put: user:42 = {}",
        show(&engine.get("users", "user:42").await?)
    );
    engine.delete("users", "user:42").await?;
    println!(
        "after delete: user:42 = {}",
        show(&engine.get("users", "user:42").await?)
    );

    let stats = engine.keyspace_stats("users").await?;
    println!("stats: {}", serde_json::to_string(&stats.stats)?);
    engine.stop().await?;
    Ok(())
}

fn show(value: &Option<distcache::Bytes>) -> String {
    match value {
        Some(v) => String::from_utf8_lossy(v).into_owned(),
        None => "(not found)".to_owned(),
    }
}
