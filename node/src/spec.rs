//! `KeySpaceSpec`: the serialisable definition of a keyspace that the catalog replicates.
//!
//! A spec names the keyspace, its limits and timeouts, its protections and where its values
//! come from. Every field but `name` is optional; omitted fields take the engine's defaults
//! (see [`EngineConfig`](crate::EngineConfig) and [`Settings`](crate::Settings) for the
//! precedence). [`KeySpaceSpec::validate`] checks a spec in one pass and names every bad field.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Problems, Result};
use crate::limits::Limits;

mod file;
pub(crate) mod validate;

pub use file::{parse_keyspaces, read_keyspace_file};

/// The definition of one keyspace, as JSON over HTTP or a `[[keyspace]]` table in TOML.
///
/// ```
/// let spec: distcache::KeySpaceSpec = serde_json::from_str(r#"{
///     "name": "users",
///     "max_bytes": "64MiB",
///     "default_ttl": "5m",
///     "source": { "kind": "registered", "name": "users-db" }
/// }"#).unwrap();
/// assert_eq!(spec.max_bytes, Some(64 << 20));
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct KeySpaceSpec {
    /// Name of the keyspace: 1–128 bytes of ASCII letters, digits, `-`, `_` and `.`, starting
    /// with a letter or digit.
    pub name: String,
    /// Most bytes the keyspace may hold on one node (keys plus values). Default: the engine's
    /// `max_bytes`.
    #[schema(schema_with = crate::units::size_schema)]
    #[serde(
        default,
        with = "crate::units::opt_bytes",
        skip_serializing_if = "Option::is_none"
    )]
    pub max_bytes: Option<u64>,
    /// Time to live of an entry when neither the data source nor `KeySpace::expires_at` gives
    /// one. Default: the engine's `default_ttl` (none: entries live until evicted).
    #[schema(value_type = Option<String>, example = "5m")]
    #[serde(
        default,
        with = "humantime_serde",
        skip_serializing_if = "Option::is_none"
    )]
    pub default_ttl: Option<Duration>,
    /// How long a not-found answer of the data source is remembered. Default: the engine's
    /// `negative_ttl` (none: not-found is never cached).
    #[schema(value_type = Option<String>, example = "5m")]
    #[serde(
        default,
        with = "humantime_serde",
        skip_serializing_if = "Option::is_none"
    )]
    pub negative_ttl: Option<Duration>,
    /// Deadline of one fetch from the data source (and of reads from peers). Default: the
    /// engine's `read_timeout`.
    #[schema(value_type = Option<String>, example = "5m")]
    #[serde(
        default,
        with = "humantime_serde",
        skip_serializing_if = "Option::is_none"
    )]
    pub read_timeout: Option<Duration>,
    /// Deadline of one write (put or delete, on peers too). Default: the engine's
    /// `write_timeout`.
    #[schema(value_type = Option<String>, example = "5m")]
    #[serde(
        default,
        with = "humantime_serde",
        skip_serializing_if = "Option::is_none"
    )]
    pub write_timeout: Option<Duration>,
    /// Keys to load ahead of the first request (at start, on topology changes, after updates).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warm_keys: Vec<String>,
    /// Rate limit on data-source fetches. Default: the engine's `rate_limit`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limit: Option<RateLimitConfig>,
    /// Circuit breaker around data-source fetches. Default: the engine's `circuit_breaker`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub circuit_breaker: Option<CircuitBreakerConfig>,
    /// Which entries to evict when the keyspace is full. Default: the engine's `eviction`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eviction: Option<Eviction>,
    /// Most data-source calls (`fetch` or `fetch_many`) of this keyspace running at once on
    /// one node, 1–65536; further loads wait for a slot. Default: the engine's
    /// `max_concurrent_loads` (64).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_concurrent_loads: Option<u32>,
    /// Most keys of this keyspace waiting on one node for one of those slots, 0–1000000. A
    /// load past it, or one that waited longer than `read_timeout`, fails at once with
    /// `OVERLOADED` (HTTP 503 with `Retry-After`). Readers of a key already being loaded join
    /// that load and are not counted. Default: the engine's `max_queued_loads` (1024).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_queued_loads: Option<u32>,
    /// How many nodes hold each value a put stores: 1 (its owner) or 2 (its owner and its
    /// replica, the node that owns the key once the owner is gone). With 2, a put is
    /// acknowledged once both hold it, and no acknowledged put is lost with one node lost:
    /// a read whose owner cannot serve it answers from the replica, an owner that lacks a
    /// key asks the replica before the source, the replica owns the key once the owner
    /// leaves the ring, and a node that returns takes its keys and its replica copies back.
    /// Default 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replicas: Option<u8>,
    /// Where values come from on a miss. Default: `none` (a put-only keyspace).
    #[serde(default)]
    pub source: SourceSpec,
}

impl KeySpaceSpec {
    /// A spec with only a name and a source; every other field takes the engine's default.
    pub fn new(name: impl Into<String>, source: SourceSpec) -> Self {
        KeySpaceSpec {
            name: name.into(),
            max_bytes: None,
            default_ttl: None,
            negative_ttl: None,
            read_timeout: None,
            write_timeout: None,
            warm_keys: Vec::new(),
            rate_limit: None,
            circuit_breaker: None,
            eviction: None,
            max_concurrent_loads: None,
            max_queued_loads: None,
            replicas: None,
            source,
        }
    }

    /// Checks every field against the rules above and `limits`; the error names every bad
    /// field at once.
    pub fn validate(&self, limits: &Limits) -> Result<()> {
        validate::spec(self, limits).into_result(Error::InvalidSpec)
    }

    /// Like [`validate`](Self::validate), returning the problems instead of an error.
    pub fn problems(&self, limits: &Limits) -> Problems {
        validate::spec(self, limits)
    }
}

/// Where a keyspace's values come from.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
#[non_exhaustive]
pub enum SourceSpec {
    /// `GET` of a URL template in which `{key}` is replaced by the percent-encoded key:
    /// 200 → the body is the value, 404 → not found, anything else → a fetch error.
    Http {
        /// URL template with `{key}`, e.g. `http://127.0.0.1:8080/users/{key}`.
        url: String,
    },
    /// A SQLite database file and a query with one `?` parameter; the first column of the first
    /// row is the value, no row means not found.
    Sqlite {
        /// Path of the database file.
        path: String,
        /// Query with exactly one `?` placeholder.
        query: String,
    },
    /// A PostgreSQL database and a query with a `$1` parameter; the first column of the first
    /// row is the value, no row means not found.
    Postgres {
        /// Connection URL, `postgres://user:pass@host:port/db`.
        url: String,
        /// Query using `$1` for the key.
        query: String,
    },
    /// A [`DataSource`](crate::DataSource) that the embedding program registered in code under
    /// `name`.
    Registered {
        /// The name it was registered under.
        name: String,
    },
    /// No data source: the keyspace holds only what is put into it, and a miss is not found.
    #[default]
    None,
}

/// `url` with the password of its user info replaced by `***` (the user kept), for messages
/// and listings: a source's credentials are never printed.
pub fn redacted_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let userinfo = &url[scheme + 3..at];
            let user = userinfo.split(':').next().unwrap_or_default();
            format!("{}{user}:***{}", &url[..scheme + 3], &url[at..])
        }
        _ => url.to_owned(),
    }
}

impl SourceSpec {
    /// The `kind` tag as written in specs.
    pub fn kind(&self) -> &'static str {
        match self {
            SourceSpec::Http { .. } => "http",
            SourceSpec::Sqlite { .. } => "sqlite",
            SourceSpec::Postgres { .. } => "postgres",
            SourceSpec::Registered { .. } => "registered",
            SourceSpec::None => "none",
        }
    }
}

/// Token-bucket rate limit on data-source fetches.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RateLimitConfig {
    /// Tokens added per second (may be fractional, e.g. 0.5). Must be greater than zero.
    pub requests_per_second: f64,
    /// Bucket size: how many fetches may run back to back. Must be at least 1.
    pub burst: u32,
    /// How long a fetch may wait for a token. Zero (the default) denies at once with
    /// `DataSourceRateLimited`; longer waits end in a `Timeout` error.
    #[schema(value_type = String, example = "50ms")]
    #[serde(default, with = "humantime_serde")]
    pub wait_timeout: Duration,
}

/// Circuit breaker around data-source fetches.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CircuitBreakerConfig {
    /// Consecutive failed fetches that open the breaker. Must be at least 1.
    pub failure_threshold: u32,
    /// How long the breaker stays open before one probe fetch is let through. Must be greater
    /// than zero.
    #[schema(value_type = String, example = "10s")]
    #[serde(with = "humantime_serde")]
    pub reset_timeout: Duration,
}

/// Eviction policy of a keyspace's caches.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Eviction {
    /// Admission by frequency (TinyLFU) with LRU eviction: resists scans. The default.
    #[default]
    TinyLfu,
    /// Plain least-recently-used.
    Lru,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The JSON shape of DESIGN.md parses field for field.
    #[test]
    fn design_json_parses() {
        let json = r#"{
          "name": "users",
          "max_bytes": 67108864,
          "default_ttl": "5m",
          "read_timeout": "250ms",
          "write_timeout": "500ms",
          "warm_keys": ["user:1", "user:2"],
          "rate_limit": { "requests_per_second": 100, "burst": 200, "wait_timeout": "50ms" },
          "circuit_breaker": { "failure_threshold": 5, "reset_timeout": "10s" },
          "source": { "kind": "http", "url": "http://127.0.0.1:8080/users/{key}" }
        }"#;
        let spec: KeySpaceSpec = serde_json::from_str(json).expect("parse");
        assert_eq!(spec.name, "users");
        assert_eq!(spec.max_bytes, Some(67108864));
        assert_eq!(spec.default_ttl, Some(Duration::from_secs(300)));
        assert_eq!(spec.read_timeout, Some(Duration::from_millis(250)));
        assert_eq!(spec.write_timeout, Some(Duration::from_millis(500)));
        assert_eq!(spec.warm_keys, vec!["user:1", "user:2"]);
        let rl = spec.rate_limit.clone().expect("rate limit");
        assert_eq!(rl.burst, 200);
        assert_eq!(rl.wait_timeout, Duration::from_millis(50));
        assert_eq!(
            spec.circuit_breaker,
            Some(CircuitBreakerConfig {
                failure_threshold: 5,
                reset_timeout: Duration::from_secs(10)
            })
        );
        assert_eq!(
            spec.source,
            SourceSpec::Http {
                url: "http://127.0.0.1:8080/users/{key}".into()
            }
        );
        assert!(spec.validate(&Limits::default()).is_ok());

        // And it writes back to the same shape, durations as humantime strings.
        let back = serde_json::to_value(&spec).expect("serialize");
        assert_eq!(back["default_ttl"], "5m");
        assert_eq!(back["max_bytes"], 67108864);
        assert_eq!(back["source"]["kind"], "http");
        let again: KeySpaceSpec = serde_json::from_value(back).expect("reparse");
        assert_eq!(again, spec);
    }

    /// The TOML keyspace file form of DESIGN.md parses, with every source kind.
    #[test]
    fn toml_keyspace_file_parses() {
        #[derive(Deserialize)]
        struct File {
            keyspace: Vec<KeySpaceSpec>,
        }
        let text = r#"
            [[keyspace]]
            name = "users"
            max_bytes = "64MiB"
            default_ttl = "5m"
            source = { kind = "http", url = "http://127.0.0.1:8080/users/{key}" }

            [[keyspace]]
            name = "products"
            eviction = "lru"
            source = { kind = "sqlite", path = "/tmp/p.db", query = "SELECT body FROM products WHERE id = ?" }

            [[keyspace]]
            name = "orders"
            source = { kind = "postgres", url = "postgres://u@127.0.0.1/db", query = "SELECT body FROM orders WHERE id = $1" }

            [[keyspace]]
            name = "sessions"
            source = { kind = "registered", name = "sessions" }

            [[keyspace]]
            name = "scratch"
        "#;
        let file: File = toml::from_str(text).expect("parse");
        let kinds: Vec<_> = file.keyspace.iter().map(|k| k.source.kind()).collect();
        assert_eq!(kinds, ["http", "sqlite", "postgres", "registered", "none"]);
        assert_eq!(file.keyspace[0].max_bytes, Some(64 << 20));
        assert_eq!(file.keyspace[1].eviction, Some(Eviction::Lru));
        for spec in &file.keyspace {
            assert!(spec.validate(&Limits::default()).is_ok(), "{}", spec.name);
        }
    }

    /// A misspelt field is an error that names it, not a silently ignored setting.
    #[test]
    fn unknown_fields_are_rejected() {
        let err = serde_json::from_str::<KeySpaceSpec>(r#"{"name":"a","max_byte":5}"#)
            .expect_err("typo must fail");
        assert!(err.to_string().contains("max_byte"), "{err}");
        let err = serde_json::from_str::<KeySpaceSpec>(
            r#"{"name":"a","source":{"kind":"http","uri":"x"}}"#,
        )
        .expect_err("typo in source must fail");
        assert!(err.to_string().contains("uri"), "{err}");
        let err = serde_json::from_str::<KeySpaceSpec>(r#"{"name":"a","source":{"kind":"redis"}}"#)
            .expect_err("unknown kind must fail");
        assert!(err.to_string().contains("redis"), "{err}");
    }

    /// A source URL's password never shows; the user and the rest of the URL do.
    #[test]
    fn urls_are_redacted() {
        assert_eq!(
            redacted_url("postgres://app:s3cret@db:5432/x"),
            "postgres://app:***@db:5432/x"
        );
        assert_eq!(redacted_url("postgres://db/x"), "postgres://db/x");
    }

    /// Bad units are reported with the offending text.
    #[test]
    fn bad_units_are_named() {
        let err = serde_json::from_str::<KeySpaceSpec>(r#"{"name":"a","max_bytes":"lots"}"#)
            .expect_err("bad size");
        assert!(err.to_string().contains("lots"), "{err}");
        let err = serde_json::from_str::<KeySpaceSpec>(r#"{"name":"a","default_ttl":"soon"}"#)
            .expect_err("bad duration");
        assert!(err.to_string().contains("default_ttl") || err.to_string().contains("soon"));
    }
}
