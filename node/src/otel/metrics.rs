//! The node's metrics through an OpenTelemetry meter: every family of `stats/families.rs`
//! becomes an instrument of its OpenTelemetry name and unit, read from the same atomics as
//! `GET /metrics` when the meter's reader collects — so recording costs nothing more, with
//! or without a meter.
//!
//! Counters and gauges are observable instruments: their callbacks read one [`Scrape`],
//! shared by every callback of a collection (a callback that finds its family already
//! served from the current scrape starts the next collection's). OpenTelemetry has no observable histogram, so
//! the duration histograms are replayed: when a collection reads a new scrape, each series'
//! observations since the previous collection are recorded into a histogram instrument
//! with the same bucket bounds, each bucket's count at values inside that bucket chosen so
//! that the sum is the series' own. Bucket counts, counts and sums are exact; min and max
//! are those values, not the observed ones. A replay costs one `record` per observation,
//! in the collecting thread, never on the request path.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use opentelemetry::KeyValue;
use opentelemetry::metrics::{Histogram, Meter};

use crate::stats::{Labels, Rows, Scrape};
use crate::telemetry::{BUCKETS, HistogramSnapshot};

/// Reads the metrics; `None` once their source is gone (the engine dropped).
pub(crate) type Gather = Box<dyn Fn() -> Option<Scrape> + Send + Sync>;

/// What the callbacks share.
struct Bridge {
    gather: Gather,
    /// The scrape of the current collection and the families it has served.
    latest: Mutex<Option<(Arc<Scrape>, HashSet<&'static str>)>>,
    /// Histogram instruments by family name.
    histograms: HashMap<&'static str, Histogram<f64>>,
    /// Each histogram series as last replayed, by family name and labels.
    replayed: Mutex<HashMap<(&'static str, Labels), HistogramSnapshot>>,
}

/// Registers an instrument on `meter` for every metric family, all read through `gather`.
pub(crate) fn observe(meter: &Meter, gather: Gather) {
    let template = Scrape::default();
    let families = template.families();
    let histograms = families
        .iter()
        .filter(|f| matches!(f.rows, Rows::Histograms(_)))
        .map(|f| {
            let instrument = meter
                .f64_histogram(f.otel_name)
                .with_unit(f.unit)
                .with_description(f.help)
                .with_boundaries(BUCKETS.to_vec())
                .build();
            (f.name, instrument)
        })
        .collect();
    let bridge = Arc::new(Bridge {
        gather,
        latest: Mutex::new(None),
        histograms,
        replayed: Mutex::new(HashMap::new()),
    });
    for family in &families {
        let name = family.name;
        let reader = Arc::clone(&bridge);
        match family.rows {
            Rows::Counters(_) => {
                meter
                    .u64_observable_counter(family.otel_name)
                    .with_unit(family.unit)
                    .with_description(family.help)
                    .with_callback(move |observer| {
                        reader.rows(name, |labels, n| observer.observe(n, &attributes(labels)));
                    })
                    .build();
            }
            Rows::Gauges(_) => {
                meter
                    .u64_observable_gauge(family.otel_name)
                    .with_unit(family.unit)
                    .with_description(family.help)
                    .with_callback(move |observer| {
                        reader.rows(name, |labels, n| observer.observe(n, &attributes(labels)));
                    })
                    .build();
            }
            Rows::Histograms(_) => {}
        }
    }
}

fn attributes(labels: &Labels) -> Vec<KeyValue> {
    labels
        .iter()
        .map(|(key, value)| KeyValue::new(*key, value.clone()))
        .collect()
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

impl Bridge {
    /// Calls `each` with the rows of the counter or gauge family `name`.
    fn rows(&self, name: &'static str, mut each: impl FnMut(&Labels, u64)) {
        let Some(scrape) = self.scrape_for(name) else {
            return;
        };
        for family in scrape.families() {
            if family.name != name {
                continue;
            }
            if let Rows::Counters(rows) | Rows::Gauges(rows) = &family.rows {
                for (labels, n) in rows {
                    each(labels, *n);
                }
            }
        }
    }

    /// The scrape of this collection for family `name`: the current one, unless it already
    /// served `name` (a new collection began) — then a new one, its histograms replayed.
    fn scrape_for(&self, name: &'static str) -> Option<Arc<Scrape>> {
        let mut latest = lock(&self.latest);
        if let Some((scrape, served)) = latest.as_mut()
            && served.insert(name)
        {
            return Some(Arc::clone(scrape));
        }
        let scrape = Arc::new((self.gather)()?);
        self.replay(&scrape);
        *latest = Some((Arc::clone(&scrape), HashSet::from([name])));
        Some(scrape)
    }

    /// Records every histogram series' observations since the last replay.
    fn replay(&self, scrape: &Scrape) {
        let mut replayed = lock(&self.replayed);
        for family in scrape.families() {
            let (Rows::Histograms(rows), Some(instrument)) =
                (&family.rows, self.histograms.get(family.name))
            else {
                continue;
            };
            for (labels, now) in rows {
                let key = (family.name, labels.clone());
                let before = replayed.get(&key);
                let attrs = attributes(labels);
                for (value, count) in delta_values(before, now) {
                    for _ in 0..count {
                        instrument.record(value, &attrs);
                    }
                }
                replayed.insert(key, (*now).clone());
            }
        }
    }
}

/// The observations of `now` that are not in `before`, as `(value, count)` per bucket: the
/// values lie inside their buckets and add up to the difference of the sums. A series that
/// went backwards (its keyspace was recreated) is taken whole.
fn delta_values(before: Option<&HistogramSnapshot>, now: &HistogramSnapshot) -> Vec<(f64, u64)> {
    let before = before.filter(|b| b.count <= now.count && b.buckets.len() == now.buckets.len());
    let counts: Vec<u64> = now
        .buckets
        .iter()
        .enumerate()
        .map(|(i, (_, n))| n.saturating_sub(before.map_or(0, |b| b.buckets[i].1)))
        .collect();
    let mut left = now.sum_seconds - before.map_or(0.0, |b| b.sum_seconds);
    let mut lower = 0.0;
    let mut out = Vec::new();
    for (i, (upper, _)) in now.buckets.iter().enumerate() {
        let count = counts[i];
        let floor = lower;
        lower = *upper;
        if count == 0 {
            continue;
        }
        // Each bucket starts at its lower bound (a hair above it: bounds belong to the
        // bucket below) and takes as much of what is left of the sum as it can hold.
        let base = if floor == 0.0 {
            0.0
        } else {
            floor * (1.0 + 1e-9)
        };
        let n = count as f64;
        left -= base * n;
        let room = if upper.is_finite() {
            (upper - base) * n
        } else {
            f64::MAX
        };
        let extra = left.clamp(0.0, room);
        left -= extra;
        let value = (base + extra / n).min(*upper);
        out.push((value, count));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    use crate::telemetry::Histogram as Recorder;

    fn bucket_of(value: f64) -> usize {
        BUCKETS
            .iter()
            .position(|b| value <= *b)
            .unwrap_or(BUCKETS.len())
    }

    /// Replayed values fall in the buckets the observations fell in, and add up to their sum.
    #[test]
    fn replayed_values_keep_buckets_and_sum() {
        let h = Recorder::default();
        for micros in [3, 9, 12, 40, 700, 700, 2_000, 30_000_000] {
            h.record(Duration::from_micros(micros));
        }
        let first = h.snapshot();
        let values = delta_values(None, &first);
        let mut per_bucket = vec![0; BUCKETS.len() + 1];
        let mut sum = 0.0;
        for (value, count) in &values {
            per_bucket[bucket_of(*value)] += count;
            sum += value * *count as f64;
        }
        let expected: Vec<u64> = first.buckets.iter().map(|(_, n)| *n).collect();
        assert_eq!(per_bucket, expected);
        assert!(
            (sum - first.sum_seconds).abs() < 1e-9,
            "{sum} vs {}",
            first.sum_seconds
        );

        // Only what came after is replayed the next time.
        h.record(Duration::from_millis(3));
        let second = h.snapshot();
        let values = delta_values(Some(&first), &second);
        assert_eq!(values.len(), 1);
        assert_eq!(values[0].1, 1);
        assert!((values[0].0 - 0.003).abs() < 1e-9, "{values:?}");
        // A series that went backwards is replayed whole.
        assert_eq!(
            delta_values(Some(&second), &first)
                .iter()
                .map(|(_, n)| n)
                .sum::<u64>(),
            first.count
        );
    }
}
