//! Memory a full keyspace really takes, counted by the allocator (issue 12, goal P6).
//!
//! Every allocation of this test binary goes through a counting allocator, so the heap bytes
//! a keyspace holds can be compared with the bytes it reports. Values arrive as slices of
//! larger buffers, the way an HTTP body arrives as a slice of a connection's read buffer: a
//! cache that kept the slice would keep the whole buffer alive (the defect this guards).
//! Each test is alone in its binary's process under nextest; under `cargo test` the tests of
//! this file run one after another (a lock), so no other test's allocations are counted.

use std::alloc::System;

use bytes::Bytes;
use distcache::{Engine, EngineConfig, KeySpaceSpec, SourceSpec};
use stats_alloc::{INSTRUMENTED_SYSTEM, StatsAlloc};

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

/// One measurement at a time: the counter is process-wide.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Bytes allocated and not yet freed, process-wide.
fn live_bytes() -> i128 {
    let s = GLOBAL.stats();
    s.bytes_allocated as i128 - s.bytes_deallocated as i128 + s.bytes_reallocated as i128
}

const MAX_BYTES: u64 = 8 << 20;

/// Heap growth of a keyspace written `rounds` times its `max_bytes` with `value_len`-byte
/// values, each sliced out of a buffer eight times larger; returns (growth, bytes held).
async fn fill(value_len: usize, rounds: u64) -> (i128, u64) {
    let mut spec = KeySpaceSpec::new("m", SourceSpec::None);
    spec.max_bytes = Some(MAX_BYTES);
    let engine = Engine::builder(EngineConfig::for_test())
        .keyspace_spec(spec)
        .build()
        .expect("engine");
    engine.start().await.expect("start");
    engine.stats().await;
    let before = live_bytes();
    let entry_weight = value_len as u64 + 300;
    let puts = rounds * MAX_BYTES / entry_weight;
    for i in 0..puts {
        // A fresh buffer per value, as every request has its own read buffer.
        let buffer = Bytes::from(vec![(i % 251) as u8; value_len * 8]);
        let value = buffer.slice(value_len..value_len * 2);
        drop(buffer);
        engine
            .put("m", &format!("key-{i:08}"), value)
            .await
            .expect("put");
    }
    let stats = engine.stats().await;
    let held = stats[0].main_cache_bytes + stats[0].hot_cache_bytes;
    let growth = live_bytes() - before;
    engine.stop().await.expect("stop");
    (growth, held)
}

async fn assert_bounded(value_len: usize) {
    let _serial = SERIAL.lock().await;
    let (growth, held) = fill(value_len, 3).await;
    let ratio = growth as f64 / held as f64;
    eprintln!("{value_len} B values: heap grew {growth} B for {held} B held, ratio {ratio:.3}");
    assert!(
        held <= MAX_BYTES,
        "holds {held} B, over max_bytes {MAX_BYTES}"
    );
    assert!(
        held >= MAX_BYTES / 2,
        "holds only {held} B of {MAX_BYTES}: the keyspace did not fill"
    );
    assert!(
        ratio <= 1.3,
        "{value_len} B values: the heap grew {growth} B for {held} B held ({ratio:.2}×, over 1.3×)"
    );
}

/// 16-byte values: the bookkeeping, not the value, is most of an entry, and it is counted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue_12_small_values_stay_within_max_bytes() {
    assert_bounded(16).await;
}

/// 1 KiB values written three times over: memory stays at what the keyspace holds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue_12_kib_values_stay_within_max_bytes() {
    assert_bounded(1024).await;
}

/// 64 KiB values written three times over.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue_12_large_values_stay_within_max_bytes() {
    assert_bounded(64 << 10).await;
}
