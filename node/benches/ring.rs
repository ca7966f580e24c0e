//! Ownership ring: balance, movement on join, and lookup time.
//!
//! `cargo bench -p distcache --bench ring` prints, for 3 to 16 nodes at 1M keys, the load skew
//! (max/mean keys per node) and the share of keys that move when one more node joins (against
//! the ideal 1/(N+1)); then criterion times an owner lookup for 3, 16 and 64 nodes next to the
//! bare key hash it starts from, and prints lookup/hash ratios.

use std::collections::HashMap;
use std::hint::black_box;
use std::time::Duration;

use criterion::Criterion;
use distcache::{NodeId, Ring, key_hash};

mod common;
use common::{median_ns, output_directory};

const KEYS: usize = 1_000_000;

fn ring(n: usize) -> Ring {
    Ring::new((0..n).map(|i| NodeId::new(format!("node-{i}"))))
}

fn balance_and_movement() {
    let hashes: Vec<u64> = (0..KEYS)
        .map(|i| key_hash("users", &format!("user:{i}")))
        .collect();
    println!("nodes  skew(max/mean)  moved on join  ideal 1/(N+1)  limit (+2%)");
    for n in 3..=16 {
        let before = ring(n);
        let after = ring(n + 1);
        let mut counts: HashMap<&NodeId, usize> = HashMap::new();
        let mut moved = 0usize;
        for h in &hashes {
            let owner = before.owner_of_hash(*h).expect("owner");
            *counts.entry(owner).or_default() += 1;
            if after.owner_of_hash(*h) != Some(owner) {
                moved += 1;
            }
        }
        let max = *counts.values().max().expect("counts") as f64;
        let skew = max / (KEYS as f64 / n as f64);
        let share = moved as f64 / KEYS as f64;
        let ideal = 1.0 / (n as f64 + 1.0);
        println!(
            "{n:>5}  {skew:>14.4}  {:>12.2}%  {:>12.2}%  {:>10.2}%{}",
            share * 100.0,
            ideal * 100.0,
            (ideal + 0.02) * 100.0,
            if skew <= 1.05 && share <= ideal + 0.02 {
                ""
            } else {
                "  MISSED"
            }
        );
    }
}

fn lookups(c: &mut Criterion) {
    let keys: Vec<String> = (0..4096).map(|i| format!("user:{i}")).collect();
    let mut group = c.benchmark_group("ring");
    let mut i = 0usize;
    group.bench_function("key_hash", |b| {
        b.iter(|| {
            i = (i + 1) & 4095;
            black_box(key_hash("users", &keys[i]))
        })
    });
    for n in [3usize, 16, 64] {
        let r = ring(n);
        group.bench_function(format!("owner_{n}"), |b| {
            b.iter(|| {
                i = (i + 1) & 4095;
                black_box(r.owner("users", &keys[i]).map(|id| id.as_str().len()))
            })
        });
    }
    group.finish();
}

fn main() {
    let measuring = std::env::args().any(|a| a == "--bench");
    if measuring {
        balance_and_movement();
    }
    let dir = output_directory();
    let mut criterion = Criterion::default()
        .output_directory(&dir)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .configure_from_args();
    lookups(&mut criterion);
    criterion.final_summary();
    if !measuring {
        return;
    }
    let hash = median_ns(&dir, "ring", "key_hash");
    println!("\nowner lookup (median of this run):");
    for n in [3, 16, 64] {
        if let (Some(h), Some(o)) = (hash, median_ns(&dir, "ring", &format!("owner_{n}"))) {
            println!(
                "  {n:>2} nodes: {o:>6.1} ns  ({:.1}× the bare key hash of {h:.1} ns)",
                o / h
            );
        }
    }
}
