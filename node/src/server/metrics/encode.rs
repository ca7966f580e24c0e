//! The metric families (`stats/families.rs`) in the Prometheus text format: counters get
//! their `_total` from the encoder, histograms their cumulative buckets, and label keys
//! their `_` for the `.` of OpenTelemetry attribute names. A family without rows is left
//! out (it says nothing, and some parsers refuse it).

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;

use crate::stats::{Labels, Rows, Scrape};
use crate::telemetry::HistogramSnapshot;

/// One scrape, for the encoder.
#[derive(Debug)]
pub(super) struct Exposition(pub Scrape);

/// A histogram read at scrape time.
#[derive(Debug)]
struct ConstHistogram<'a>(&'a HistogramSnapshot);

impl EncodeMetric for ConstHistogram<'_> {
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        let h = self.0;
        encoder.encode_histogram::<NoLabelSet>(h.sum_seconds, h.count, &h.buckets, None)
    }

    fn metric_type(&self) -> MetricType {
        MetricType::Histogram
    }
}

/// Label keys as Prometheus spells them.
fn prometheus_labels(labels: &Labels) -> Vec<(String, &str)> {
    labels
        .iter()
        .map(|(key, value)| (key.replace('.', "_"), value.as_str()))
        .collect()
}

/// Writes one family's rows under its name.
fn write<'a, M: EncodeMetric>(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    kind: MetricType,
    rows: impl ExactSizeIterator<Item = (Vec<(String, &'a str)>, M)>,
) -> Result<(), std::fmt::Error> {
    if rows.len() == 0 {
        return Ok(());
    }
    let mut family = encoder.encode_descriptor(name, help, None, kind)?;
    for (labels, metric) in rows {
        metric.encode(family.encode_family(&labels)?)?;
    }
    Ok(())
}

impl Collector for Exposition {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        for family in self.0.families() {
            let (name, help) = (family.name, family.help);
            match &family.rows {
                Rows::Counters(rows) => write(
                    &mut encoder,
                    name,
                    help,
                    MetricType::Counter,
                    rows.iter()
                        .map(|(l, n)| (prometheus_labels(l), ConstCounter::new(*n))),
                )?,
                Rows::Gauges(rows) => write(
                    &mut encoder,
                    name,
                    help,
                    MetricType::Gauge,
                    rows.iter().map(|(l, n)| {
                        let value = i64::try_from(*n).unwrap_or(i64::MAX);
                        (prometheus_labels(l), ConstGauge::new(value))
                    }),
                )?,
                Rows::Histograms(rows) => write(
                    &mut encoder,
                    name,
                    help,
                    MetricType::Histogram,
                    rows.iter()
                        .map(|(l, h)| (prometheus_labels(l), ConstHistogram(h))),
                )?,
            }
        }
        Ok(())
    }
}
