//! Engine benchmarks against raw moka, measured in the same run.
//!
//! `cargo bench -p distcache --bench engine` runs three pairs: a local-hit `get` against moka's
//! `get` on the same data, a `get_many` of 100 hits against 100 moka gets, and the miss path
//! (single-flight load from an in-memory source, then store) against moka's `get_with`. At the
//! end it prints each pair's ratio of medians: the machine is shared and noisy, so only ratios
//! measured side by side mean anything. `get_hit` also measures moka with a per-entry expiry
//! policy, as the engine's caches have one, to show what the engine adds beyond that.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use std::hint::black_box;

use criterion::Criterion;
use distcache::{
    Bytes, DataSource, Engine, EngineConfig, FetchResult, Fetched, KeySpaceSpec, SourceSpec,
    async_trait,
};
use moka::future::Cache;
use tokio::runtime::Runtime;

mod common;
use common::{median_ns, output_directory};

const KEYS: usize = 10_000;
const VALUE: [u8; 128] = [b'x'; 128];

fn keys() -> Vec<String> {
    (0..KEYS).map(|i| format!("user:{i:08}")).collect()
}

/// A data source answering every key from memory.
struct InMemory;

#[async_trait]
impl DataSource for InMemory {
    async fn fetch(&self, _key: &str) -> FetchResult {
        Ok(Some(Fetched::new(Bytes::from_static(&VALUE))))
    }
}

fn runtime() -> Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

fn engine(rt: &Runtime) -> Engine {
    let engine = Engine::builder(EngineConfig::default())
        .register_source("mem", InMemory)
        .keyspace_spec(KeySpaceSpec {
            max_bytes: Some(1 << 30),
            ..KeySpaceSpec::new("users", SourceSpec::Registered { name: "mem".into() })
        })
        .build()
        .expect("engine");
    rt.block_on(engine.start()).expect("start");
    engine
}

fn moka_cache() -> Cache<String, Bytes> {
    Cache::builder()
        .max_capacity(1 << 30)
        .weigher(|k: &String, v: &Bytes| (k.len() + v.len()) as u32)
        .build()
}

/// Per-entry expiry, as the engine's caches have it (a TTL a value may carry).
struct NoExpiry;

impl moka::Expiry<String, Bytes> for NoExpiry {
    fn expire_after_create(
        &self,
        _: &String,
        _: &Bytes,
        _: std::time::Instant,
    ) -> Option<Duration> {
        None
    }
}

fn moka_expiring_cache() -> Cache<String, Bytes> {
    Cache::builder()
        .max_capacity(1 << 30)
        .weigher(|k: &String, v: &Bytes| (k.len() + v.len()) as u32)
        .expire_after(NoExpiry)
        .build()
}

fn get_hit(c: &mut Criterion) {
    let rt = runtime();
    let keys = keys();
    let moka = moka_cache();
    let expiring = moka_expiring_cache();
    let engine = engine(&rt);
    rt.block_on(async {
        for k in &keys {
            moka.insert(k.clone(), Bytes::from_static(&VALUE)).await;
            expiring.insert(k.clone(), Bytes::from_static(&VALUE)).await;
            engine.get("users", k).await.expect("load");
        }
        moka.run_pending_tasks().await;
        expiring.run_pending_tasks().await;
    });
    let mut group = c.benchmark_group("get_hit");
    let next = AtomicU64::new(0);
    group.bench_function("moka", |b| {
        b.to_async(&rt).iter(|| async {
            let i = next.fetch_add(1, Ordering::Relaxed) as usize % KEYS;
            black_box(moka.get(keys[i].as_str()).await)
        })
    });
    group.bench_function("moka_expiring", |b| {
        b.to_async(&rt).iter(|| async {
            let i = next.fetch_add(1, Ordering::Relaxed) as usize % KEYS;
            black_box(expiring.get(keys[i].as_str()).await)
        })
    });
    group.bench_function("engine", |b| {
        b.to_async(&rt).iter(|| async {
            let i = next.fetch_add(1, Ordering::Relaxed) as usize % KEYS;
            black_box(engine.get("users", &keys[i]).await.ok())
        })
    });
    group.finish();
}

fn get_many_100(c: &mut Criterion) {
    let rt = runtime();
    let keys = keys();
    let moka = moka_cache();
    let engine = engine(&rt);
    rt.block_on(async {
        for k in &keys {
            moka.insert(k.clone(), Bytes::from_static(&VALUE)).await;
        }
        engine.get_many("users", &keys).await.expect("load");
    });
    let mut group = c.benchmark_group("get_many_100");
    let next = AtomicU64::new(0);
    group.bench_function("moka", |b| {
        b.to_async(&rt).iter(|| async {
            let start = (next.fetch_add(100, Ordering::Relaxed) as usize) % (KEYS - 100);
            let mut found = 0;
            for k in &keys[start..start + 100] {
                found += usize::from(moka.get(k.as_str()).await.is_some());
            }
            black_box(found)
        })
    });
    group.bench_function("engine", |b| {
        b.to_async(&rt).iter(|| async {
            let start = (next.fetch_add(100, Ordering::Relaxed) as usize) % (KEYS - 100);
            black_box(
                engine
                    .get_many("users", &keys[start..start + 100])
                    .await
                    .ok(),
            )
        })
    });
    group.finish();
}

fn miss(c: &mut Criterion) {
    let rt = runtime();
    let moka = moka_cache();
    let engine = engine(&rt);
    let mut group = c.benchmark_group("miss");
    let next = AtomicU64::new(0);
    group.bench_function("moka", |b| {
        b.to_async(&rt).iter(|| async {
            let key = format!("new:{}", next.fetch_add(1, Ordering::Relaxed));
            black_box(
                moka.get_with(key, async { Bytes::from_static(&VALUE) })
                    .await,
            )
        })
    });
    group.bench_function("engine", |b| {
        b.to_async(&rt).iter(|| async {
            let key = format!("new:{}", next.fetch_add(1, Ordering::Relaxed));
            black_box(engine.get("users", &key).await.ok())
        })
    });
    group.finish();
}

fn main() {
    let dir = output_directory();
    let mut criterion = Criterion::default()
        .output_directory(&dir)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .configure_from_args();
    get_hit(&mut criterion);
    get_many_100(&mut criterion);
    miss(&mut criterion);
    criterion.final_summary();
    // Listing (`--list`) and test mode (`cargo test --benches`) measure nothing worth a ratio.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }

    println!("\nratios (engine / moka, medians of this run):");
    for (group, target) in [
        ("get_hit", Some(1.3)),
        ("get_many_100", None),
        ("miss", None),
    ] {
        match (
            median_ns(&dir, group, "moka"),
            median_ns(&dir, group, "engine"),
        ) {
            (Some(moka), Some(engine)) => {
                let ratio = engine / moka;
                let verdict = match target {
                    Some(t) if ratio <= t => format!(" (target ≤ {t}: met)"),
                    Some(t) => format!(" (target ≤ {t}: MISSED)"),
                    None => String::new(),
                };
                println!(
                    "  {group:<13} engine {engine:>10.1} ns  moka {moka:>10.1} ns  ratio {ratio:.2}{verdict}"
                );
            }
            _ => println!("  {group:<13} (not measured in this run)"),
        }
    }
    // The engine's caches carry per-entry expiry, which costs moka itself something on each get;
    // this line separates that from what the engine adds on top.
    if let (Some(expiring), Some(engine)) = (
        median_ns(&dir, "get_hit", "moka_expiring"),
        median_ns(&dir, "get_hit", "engine"),
    ) {
        println!(
            "  get_hit vs moka with per-entry expiry ({expiring:.1} ns): ratio {:.2}",
            engine / expiring
        );
    }
}
