//! Engine configuration, input limits, and how a keyspace's effective settings are resolved.
//!
//! Precedence, field by field (the seed's rules):
//! - a keyspace override given to the builder replaces the spec's (or `KeySpace`'s) value;
//! - the spec's value replaces the engine default in [`EngineConfig`];
//! - `default_ttl` applies only when neither the data source nor `KeySpace::expires_at` gives an
//!   expiry for the entry;
//! - a keyspace rate limiter or circuit breaker replaces the engine-level one entirely, and
//!   every keyspace gets its own limiter and breaker instances.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Problems, Result};
use crate::limits::Limits;
use crate::spec::validate;
use crate::spec::{CircuitBreakerConfig, Eviction, KeySpaceSpec, RateLimitConfig};
use crate::units::{MAX_TIMEOUT, MAX_TTL};

/// Engine-wide defaults and limits. Every field has a documented production default.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EngineConfig {
    /// Bytes a keyspace may hold on one node when its spec says nothing. Default 64 MiB.
    #[serde(with = "crate::units::bytes")]
    pub max_bytes: u64,
    /// Time to live of entries without an expiry of their own. Default: none.
    #[serde(with = "humantime_serde", skip_serializing_if = "Option::is_none")]
    pub default_ttl: Option<Duration>,
    /// How long a not-found answer is remembered. Default: none (never cached).
    #[serde(with = "humantime_serde", skip_serializing_if = "Option::is_none")]
    pub negative_ttl: Option<Duration>,
    /// Deadline of a data-source fetch or a peer read. Default 5 s.
    #[serde(with = "humantime_serde")]
    pub read_timeout: Duration,
    /// Deadline of a put or delete, on peers too. Default 5 s.
    #[serde(with = "humantime_serde")]
    pub write_timeout: Duration,
    /// Rate limit for keyspaces that have none of their own. Default: none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rate_limit: Option<RateLimitConfig>,
    /// Circuit breaker for keyspaces that have none of their own. Default: none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub circuit_breaker: Option<CircuitBreakerConfig>,
    /// Eviction policy for keyspaces that name none. Default TinyLFU.
    pub eviction: Eviction,
    /// Share of a keyspace's `max_bytes` given to its hot cache (copies of keys owned by other
    /// nodes); the main cache gets the rest. Default 0.125, as in groupcache.
    pub hot_cache_ratio: f64,
    /// Limits on keys, values and batches.
    pub limits: Limits,
    /// Hot-key tracking and warmup.
    pub warmup: crate::warmup::WarmupConfig,
    /// How long `stop` waits for in-flight loads before abandoning them. Default 30 s.
    #[serde(with = "humantime_serde")]
    pub shutdown_timeout: Duration,
    /// Cache hits timed for the duration histograms: 1 in this many, recorded with that
    /// weight (a hit costs about two clock reads; misses and writes are always timed).
    /// 1 times every hit, 0 none (their durations are then left out of the histograms; the
    /// counters stay). Default 64.
    pub hit_timing_every: u32,
    /// Data-source calls one keyspace may run at once on this node, for keyspaces that name
    /// none. Default 64.
    pub max_concurrent_loads: u32,
    /// Keys one keyspace may have waiting for a data-source call on this node, for keyspaces
    /// that name none; past it a load is refused with `OVERLOADED`. Default 1024.
    pub max_queued_loads: u32,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            max_bytes: 64 << 20,
            default_ttl: None,
            negative_ttl: None,
            read_timeout: Duration::from_secs(5),
            write_timeout: Duration::from_secs(5),
            rate_limit: None,
            circuit_breaker: None,
            eviction: Eviction::TinyLfu,
            hot_cache_ratio: 0.125,
            limits: Limits::default(),
            warmup: crate::warmup::WarmupConfig::default(),
            shutdown_timeout: Duration::from_secs(30),
            hit_timing_every: 64,
            max_concurrent_loads: 64,
            max_queued_loads: 1024,
        }
    }
}

impl EngineConfig {
    /// Every problem of this configuration, fields named as in the TOML file.
    pub fn problems(&self) -> Problems {
        let mut problems = Problems::new();
        validate::cache_bytes("max_bytes", self.max_bytes, &mut problems);
        for (field, value, max) in [
            ("default_ttl", self.default_ttl, MAX_TTL),
            ("negative_ttl", self.negative_ttl, MAX_TTL),
            ("read_timeout", Some(self.read_timeout), MAX_TIMEOUT),
            ("write_timeout", Some(self.write_timeout), MAX_TIMEOUT),
            ("shutdown_timeout", Some(self.shutdown_timeout), MAX_TIMEOUT),
        ] {
            if let Some(value) = value {
                problems.duration_within(field, value, max);
            }
        }
        if let Some(rl) = &self.rate_limit {
            problems.extend_prefixed("rate_limit", validate::rate_limit(rl));
        }
        if let Some(cb) = &self.circuit_breaker {
            problems.extend_prefixed("circuit_breaker", validate::circuit_breaker(cb));
        }
        if !(self.hot_cache_ratio.is_finite()
            && self.hot_cache_ratio > 0.0
            && self.hot_cache_ratio <= 0.5)
        {
            problems.push(
                "hot_cache_ratio",
                format!(
                    "must be greater than 0 and at most 0.5, got {}",
                    self.hot_cache_ratio
                ),
            );
        }
        if self.hit_timing_every > 1_000_000 {
            problems.push(
                "hit_timing_every",
                format!(
                    "must be between 0 (no hit timed) and 1000000, got {}",
                    self.hit_timing_every
                ),
            );
        }
        validate::load_bounds(
            Some(self.max_concurrent_loads),
            Some(self.max_queued_loads),
            &mut problems,
        );
        problems.extend_prefixed("limits", self.limits.problems());
        problems.extend_prefixed("warmup", self.warmup.problems());
        problems
    }

    /// `Ok` when [`problems`](Self::problems) finds nothing.
    pub fn validate(&self) -> Result<()> {
        self.problems().into_result(Error::InvalidConfig)
    }

    /// A configuration with short timeouts for tests.
    pub fn for_test() -> Self {
        EngineConfig {
            read_timeout: Duration::from_secs(2),
            write_timeout: Duration::from_secs(2),
            shutdown_timeout: Duration::from_secs(2),
            hit_timing_every: 1,
            ..EngineConfig::default()
        }
    }
}

/// Field-by-field overrides of a keyspace's definition, given to the engine builder (the seed's
/// `WithKeySpace*` options). A set field replaces the spec's value.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct KeySpaceOverrides {
    /// Replaces `max_bytes`.
    #[serde(
        with = "crate::units::opt_bytes",
        skip_serializing_if = "Option::is_none"
    )]
    pub max_bytes: Option<u64>,
    /// Replaces `default_ttl`.
    #[serde(with = "humantime_serde", skip_serializing_if = "Option::is_none")]
    pub default_ttl: Option<Duration>,
    /// Replaces `negative_ttl`.
    #[serde(with = "humantime_serde", skip_serializing_if = "Option::is_none")]
    pub negative_ttl: Option<Duration>,
    /// Replaces `read_timeout`.
    #[serde(with = "humantime_serde", skip_serializing_if = "Option::is_none")]
    pub read_timeout: Option<Duration>,
    /// Replaces `write_timeout`.
    #[serde(with = "humantime_serde", skip_serializing_if = "Option::is_none")]
    pub write_timeout: Option<Duration>,
    /// Replaces `warm_keys`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub warm_keys: Option<Vec<String>>,
    /// Replaces `rate_limit`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rate_limit: Option<RateLimitConfig>,
    /// Replaces `circuit_breaker`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub circuit_breaker: Option<CircuitBreakerConfig>,
    /// Replaces `eviction`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub eviction: Option<Eviction>,
    /// Replaces `max_concurrent_loads`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_concurrent_loads: Option<u32>,
    /// Replaces `max_queued_loads`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_queued_loads: Option<u32>,
}

impl KeySpaceOverrides {
    /// No overrides.
    pub fn new() -> Self {
        Self::default()
    }

    /// Overrides `max_bytes`.
    pub fn max_bytes(mut self, bytes: u64) -> Self {
        self.max_bytes = Some(bytes);
        self
    }

    /// Overrides `default_ttl`.
    pub fn default_ttl(mut self, ttl: Duration) -> Self {
        self.default_ttl = Some(ttl);
        self
    }

    /// Overrides `negative_ttl`.
    pub fn negative_ttl(mut self, ttl: Duration) -> Self {
        self.negative_ttl = Some(ttl);
        self
    }

    /// Overrides `read_timeout`.
    pub fn read_timeout(mut self, timeout: Duration) -> Self {
        self.read_timeout = Some(timeout);
        self
    }

    /// Overrides `write_timeout`.
    pub fn write_timeout(mut self, timeout: Duration) -> Self {
        self.write_timeout = Some(timeout);
        self
    }

    /// Overrides `warm_keys`.
    pub fn warm_keys<I, S>(mut self, keys: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.warm_keys = Some(keys.into_iter().map(Into::into).collect());
        self
    }

    /// Overrides `rate_limit`.
    pub fn rate_limit(mut self, limit: RateLimitConfig) -> Self {
        self.rate_limit = Some(limit);
        self
    }

    /// Overrides `circuit_breaker`.
    pub fn circuit_breaker(mut self, breaker: CircuitBreakerConfig) -> Self {
        self.circuit_breaker = Some(breaker);
        self
    }

    /// Overrides `eviction`.
    pub fn eviction(mut self, eviction: Eviction) -> Self {
        self.eviction = Some(eviction);
        self
    }

    /// Overrides `max_concurrent_loads`.
    pub fn max_concurrent_loads(mut self, loads: u32) -> Self {
        self.max_concurrent_loads = Some(loads);
        self
    }

    /// Overrides `max_queued_loads`.
    pub fn max_queued_loads(mut self, loads: u32) -> Self {
        self.max_queued_loads = Some(loads);
        self
    }

    /// Writes every set field into `spec`.
    pub fn apply_to(&self, spec: &mut KeySpaceSpec) {
        let o = self.clone();
        spec.max_bytes = o.max_bytes.or(spec.max_bytes);
        spec.default_ttl = o.default_ttl.or(spec.default_ttl);
        spec.negative_ttl = o.negative_ttl.or(spec.negative_ttl);
        spec.read_timeout = o.read_timeout.or(spec.read_timeout);
        spec.write_timeout = o.write_timeout.or(spec.write_timeout);
        if let Some(keys) = o.warm_keys {
            spec.warm_keys = keys;
        }
        spec.rate_limit = o.rate_limit.or(spec.rate_limit.take());
        spec.circuit_breaker = o.circuit_breaker.or(spec.circuit_breaker.take());
        spec.eviction = o.eviction.or(spec.eviction);
        spec.max_concurrent_loads = o.max_concurrent_loads.or(spec.max_concurrent_loads);
        spec.max_queued_loads = o.max_queued_loads.or(spec.max_queued_loads);
    }
}

/// The effective settings of one keyspace: its spec with the engine's defaults filled in.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    /// Bytes the keyspace may hold on this node (main plus hot cache).
    pub max_bytes: u64,
    /// Time to live of entries without an expiry of their own.
    pub default_ttl: Option<Duration>,
    /// How long a not-found answer is remembered.
    pub negative_ttl: Option<Duration>,
    /// Deadline of a fetch or peer read.
    pub read_timeout: Duration,
    /// Deadline of a put or delete.
    pub write_timeout: Duration,
    /// Keys to load ahead of requests.
    pub warm_keys: Vec<String>,
    /// Rate limit on fetches, if any.
    pub rate_limit: Option<RateLimitConfig>,
    /// Circuit breaker on fetches, if any.
    pub circuit_breaker: Option<CircuitBreakerConfig>,
    /// Eviction policy.
    pub eviction: Eviction,
    /// Data-source calls that may run at once.
    pub max_concurrent_loads: usize,
    /// Keys that may wait for a data-source call.
    pub max_queued_loads: usize,
    /// Nodes that hold each put value (1 or 2).
    pub replicas: usize,
}

impl Settings {
    /// Fills the gaps of `spec` with the defaults of `engine`.
    pub fn resolve(spec: &KeySpaceSpec, engine: &EngineConfig) -> Settings {
        Settings {
            max_bytes: spec.max_bytes.unwrap_or(engine.max_bytes),
            default_ttl: spec.default_ttl.or(engine.default_ttl),
            negative_ttl: spec.negative_ttl.or(engine.negative_ttl),
            read_timeout: spec.read_timeout.unwrap_or(engine.read_timeout),
            write_timeout: spec.write_timeout.unwrap_or(engine.write_timeout),
            warm_keys: spec.warm_keys.clone(),
            rate_limit: spec
                .rate_limit
                .clone()
                .or_else(|| engine.rate_limit.clone()),
            circuit_breaker: spec
                .circuit_breaker
                .clone()
                .or_else(|| engine.circuit_breaker.clone()),
            eviction: spec.eviction.unwrap_or(engine.eviction),
            max_concurrent_loads: spec
                .max_concurrent_loads
                .unwrap_or(engine.max_concurrent_loads) as usize,
            max_queued_loads: spec.max_queued_loads.unwrap_or(engine.max_queued_loads) as usize,
            replicas: usize::from(spec.replicas.unwrap_or(1)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::SourceSpec;

    /// Defaults are the documented production values and pass validation.
    #[test]
    fn defaults_are_valid() {
        let c = EngineConfig::default();
        assert_eq!(c.read_timeout, Duration::from_secs(5));
        assert_eq!(c.write_timeout, Duration::from_secs(5));
        assert_eq!(c.max_bytes, 64 << 20);
        assert_eq!((c.max_concurrent_loads, c.max_queued_loads), (64, 1024));
        assert!(c.validate().is_ok());
        assert!(EngineConfig::for_test().validate().is_ok());
    }

    /// Every bad engine field is listed at once.
    #[test]
    fn engine_problems_are_all_listed() {
        let c = EngineConfig {
            max_bytes: 0,
            read_timeout: Duration::ZERO,
            hot_cache_ratio: 0.9,
            rate_limit: Some(RateLimitConfig {
                requests_per_second: -1.0,
                burst: 0,
                wait_timeout: Duration::ZERO,
            }),
            limits: Limits {
                max_batch_keys: 0,
                ..Limits::default()
            },
            ..EngineConfig::default()
        };
        let fields: Vec<String> = c.problems().iter().map(|p| p.field.clone()).collect();
        assert_eq!(
            fields,
            [
                "max_bytes",
                "read_timeout",
                "rate_limit.requests_per_second",
                "rate_limit.burst",
                "hot_cache_ratio",
                "limits.max_batch_keys"
            ]
        );
    }

    /// The engine configuration reads from TOML with human units and rejects typos.
    #[test]
    fn engine_config_from_toml() {
        let c: EngineConfig = toml::from_str(
            r#"
            max_bytes = "128MiB"
            read_timeout = "250ms"
            [rate_limit]
            requests_per_second = 50
            burst = 10
            wait_timeout = "20ms"
            [limits]
            max_value_bytes = "1MiB"
            "#,
        )
        .expect("parse");
        assert_eq!(c.max_bytes, 128 << 20);
        assert_eq!(c.read_timeout, Duration::from_millis(250));
        assert_eq!(c.write_timeout, Duration::from_secs(5));
        assert_eq!(c.limits.max_value_bytes, 1 << 20);
        assert_eq!(c.rate_limit.expect("rl").burst, 10);
        assert!(toml::from_str::<EngineConfig>("read_timout = \"1s\"").is_err());
    }

    /// Spec values beat engine defaults; missing ones fall back.
    #[test]
    fn spec_overrides_engine_defaults() {
        let engine = EngineConfig {
            default_ttl: Some(Duration::from_secs(60)),
            circuit_breaker: Some(CircuitBreakerConfig {
                failure_threshold: 3,
                reset_timeout: Duration::from_secs(1),
            }),
            ..EngineConfig::default()
        };
        let mut spec = KeySpaceSpec::new("a", SourceSpec::None);
        spec.read_timeout = Some(Duration::from_millis(100));
        let s = Settings::resolve(&spec, &engine);
        assert_eq!(s.read_timeout, Duration::from_millis(100));
        assert_eq!(s.write_timeout, Duration::from_secs(5));
        assert_eq!(s.default_ttl, Some(Duration::from_secs(60)));
        assert_eq!(s.max_bytes, 64 << 20);
        assert_eq!(s.circuit_breaker.map(|c| c.failure_threshold), Some(3));
        assert_eq!((s.max_concurrent_loads, s.max_queued_loads), (64, 1024));
        spec.max_queued_loads = Some(0);
        let s = Settings::resolve(&spec, &engine);
        assert_eq!((s.max_concurrent_loads, s.max_queued_loads), (64, 0));
    }

    /// Builder overrides replace spec values field by field, leaving the rest.
    #[test]
    fn overrides_replace_field_by_field() {
        let mut spec = KeySpaceSpec::new("a", SourceSpec::None);
        spec.max_bytes = Some(1000);
        spec.default_ttl = Some(Duration::from_secs(1));
        spec.warm_keys = vec!["x".into()];
        KeySpaceOverrides::new()
            .max_bytes(2000)
            .warm_keys(["y", "z"])
            .apply_to(&mut spec);
        assert_eq!(spec.max_bytes, Some(2000));
        assert_eq!(spec.default_ttl, Some(Duration::from_secs(1)));
        assert_eq!(spec.warm_keys, vec!["y", "z"]);
    }
}
