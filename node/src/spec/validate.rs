//! The one place that decides whether a keyspace spec is acceptable.

use std::collections::HashSet;
use std::time::Duration;

use super::{CircuitBreakerConfig, KeySpaceSpec, RateLimitConfig, SourceSpec};
use crate::error::Problems;
use crate::limits::Limits;
use crate::units::{MAX_CACHE_BYTES, MAX_INTERVAL, MAX_TIMEOUT, MAX_TTL};

/// Longest keyspace name, in bytes.
pub const MAX_NAME_BYTES: usize = 128;

/// Slowest accepted rate limit, in requests per second: the limiter's arithmetic (governor)
/// overflows for periods of centuries.
pub(crate) const MIN_REQUESTS_PER_SECOND: f64 = 0.001;

/// Largest accepted rate-limit burst, for the same reason.
pub(crate) const MAX_BURST: u32 = 1_000_000;

/// Most `warm_keys` one keyspace may list.
pub const MAX_WARM_KEYS: usize = 10_000;

/// Most data-source calls of one keyspace that may run at once on a node.
pub const MAX_CONCURRENT_LOADS: u32 = 65_536;

/// Most keys of one keyspace that may wait for a data-source call on a node.
pub const MAX_QUEUED_LOADS: u32 = 1_000_000;

/// Every problem of `spec`, in field order.
pub(crate) fn spec(spec: &KeySpaceSpec, limits: &Limits) -> Problems {
    let mut problems = Problems::new();
    if let Err(message) = name(&spec.name) {
        problems.push("name", message);
    }
    if let Some(max_bytes) = spec.max_bytes {
        cache_bytes("max_bytes", max_bytes, &mut problems);
    }
    optional_duration("default_ttl", spec.default_ttl, MAX_TTL, &mut problems);
    optional_duration("negative_ttl", spec.negative_ttl, MAX_TTL, &mut problems);
    optional_duration(
        "read_timeout",
        spec.read_timeout,
        MAX_TIMEOUT,
        &mut problems,
    );
    optional_duration(
        "write_timeout",
        spec.write_timeout,
        MAX_TIMEOUT,
        &mut problems,
    );
    warm_keys(&spec.warm_keys, limits, &mut problems);
    if let Some(rl) = &spec.rate_limit {
        problems.extend_prefixed("rate_limit", rate_limit(rl));
    }
    if let Some(cb) = &spec.circuit_breaker {
        problems.extend_prefixed("circuit_breaker", circuit_breaker(cb));
    }
    load_bounds(
        spec.max_concurrent_loads,
        spec.max_queued_loads,
        &mut problems,
    );
    if let Some(n) = spec.replicas
        && !(1..=2).contains(&n)
    {
        problems.push("replicas", format!("must be 1 or 2, got {n}"));
    }
    problems.extend_prefixed("source", source(&spec.source));
    problems
}

/// Checks the load bounds: `max_concurrent_loads` 1–[`MAX_CONCURRENT_LOADS`],
/// `max_queued_loads` at most [`MAX_QUEUED_LOADS`].
pub(crate) fn load_bounds(concurrent: Option<u32>, queued: Option<u32>, problems: &mut Problems) {
    if let Some(n) = concurrent
        && !(1..=MAX_CONCURRENT_LOADS).contains(&n)
    {
        problems.push(
            "max_concurrent_loads",
            format!("must be between 1 and {MAX_CONCURRENT_LOADS}, got {n}"),
        );
    }
    if let Some(n) = queued
        && n > MAX_QUEUED_LOADS
    {
        problems.push(
            "max_queued_loads",
            format!("must be at most {MAX_QUEUED_LOADS}, got {n}"),
        );
    }
}

/// Checks a keyspace name; the message says what is wrong.
pub fn name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("must not be empty".into());
    }
    if name.len() > MAX_NAME_BYTES {
        return Err(format!(
            "is {} bytes, over the limit of {MAX_NAME_BYTES}",
            name.len()
        ));
    }
    let first_ok = name
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphanumeric());
    let rest_ok = name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if !first_ok || !rest_ok {
        return Err(format!(
            "`{name}` may use only ASCII letters, digits, `-`, `_` and `.`, and must start with a letter or digit"
        ));
    }
    Ok(())
}

/// Checks a cache size: more than zero, at most [`MAX_CACHE_BYTES`].
pub(crate) fn cache_bytes(field: &str, value: u64, problems: &mut Problems) {
    if value == 0 {
        problems.push(field, "must be greater than zero");
    } else if value > MAX_CACHE_BYTES {
        problems.push(
            field,
            format!("is {value} bytes, over the maximum of {MAX_CACHE_BYTES} (1 TiB)"),
        );
    }
}

fn optional_duration(field: &str, value: Option<Duration>, max: Duration, problems: &mut Problems) {
    match value {
        Some(d) if d.is_zero() => {
            problems.push(field, "must be greater than zero (omit it for the default)")
        }
        Some(d) => problems.duration_within(field, d, max),
        None => {}
    }
}

fn warm_keys(keys: &[String], limits: &Limits, problems: &mut Problems) {
    if keys.len() > MAX_WARM_KEYS {
        problems.push(
            "warm_keys",
            format!(
                "lists {} keys, over the maximum of {MAX_WARM_KEYS}",
                keys.len()
            ),
        );
        return;
    }
    let mut seen = HashSet::new();
    for (i, key) in keys.iter().enumerate() {
        let field = format!("warm_keys[{i}]");
        if let Err(e) = limits.check_key(key) {
            problems.push(field, e.to_string());
        } else if !seen.insert(key.as_str()) {
            problems.push(field, format!("`{key}` is listed twice"));
        }
    }
}

/// Problems of a rate limit, fields relative to it.
pub(crate) fn rate_limit(rl: &RateLimitConfig) -> Problems {
    let mut problems = Problems::new();
    if !(rl.requests_per_second.is_finite() && rl.requests_per_second > 0.0) {
        problems.push(
            "requests_per_second",
            format!(
                "must be a number greater than zero, got {}",
                rl.requests_per_second
            ),
        );
    } else if rl.requests_per_second < MIN_REQUESTS_PER_SECOND {
        problems.push(
            "requests_per_second",
            format!(
                "must be at least {MIN_REQUESTS_PER_SECOND}, got {}",
                rl.requests_per_second
            ),
        );
    }
    if rl.burst == 0 {
        problems.push(
            "burst",
            "must be at least 1 (a burst of 0 would deny every fetch)",
        );
    } else if rl.burst > MAX_BURST {
        problems.push(
            "burst",
            format!("must be at most {MAX_BURST}, got {}", rl.burst),
        );
    }
    if rl.wait_timeout > MAX_TIMEOUT {
        problems.duration_within("wait_timeout", rl.wait_timeout, MAX_TIMEOUT);
    }
    problems
}

/// Problems of a circuit breaker, fields relative to it.
pub(crate) fn circuit_breaker(cb: &CircuitBreakerConfig) -> Problems {
    let mut problems = Problems::new();
    if cb.failure_threshold == 0 {
        problems.push("failure_threshold", "must be at least 1");
    }
    problems.duration_within("reset_timeout", cb.reset_timeout, MAX_INTERVAL);
    problems
}

fn source(source: &SourceSpec) -> Problems {
    let mut problems = Problems::new();
    match source {
        SourceSpec::Http { url } => {
            let scheme_ok = url.starts_with("http://") || url.starts_with("https://");
            if !scheme_ok {
                problems.push(
                    "url",
                    format!("`{url}` must start with http:// or https://"),
                );
            }
            if !url.contains("{key}") {
                problems.push(
                    "url",
                    format!("`{url}` must contain {{key}} where the key goes"),
                );
            }
            if url.chars().any(char::is_whitespace) {
                problems.push("url", "must not contain white space");
            }
        }
        SourceSpec::Sqlite { path, query } => {
            if path.trim().is_empty() {
                problems.push("path", "must name a database file");
            }
            let placeholders = query.matches('?').count();
            if placeholders != 1 {
                problems.push(
                    "query",
                    format!("must have exactly one `?` for the key, found {placeholders}"),
                );
            }
        }
        SourceSpec::Postgres { url, query } => {
            if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
                problems.push(
                    "url",
                    "must start with postgres:// or postgresql:// (credentials are not echoed)",
                );
            }
            if !query.contains("$1") {
                problems.push("query", "must use $1 for the key");
            } else if query.contains("$2") {
                problems.push("query", "may use only one parameter, $1");
            }
        }
        SourceSpec::Registered { name } => {
            if name.trim().is_empty() {
                problems.push("name", "must name a registered data source");
            }
        }
        SourceSpec::None => {}
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::KeySpaceSpec;

    fn fields(problems: &Problems) -> Vec<&str> {
        problems.iter().map(|p| p.field.as_str()).collect()
    }

    /// One validation reports every bad field, not just the first.
    #[test]
    fn reports_every_bad_field_at_once() {
        let mut spec = KeySpaceSpec::new(
            "",
            SourceSpec::Sqlite {
                path: " ".into(),
                query: "SELECT v FROM t".into(),
            },
        );
        spec.max_bytes = Some(0);
        spec.default_ttl = Some(Duration::ZERO);
        spec.read_timeout = Some(Duration::ZERO);
        spec.warm_keys = vec!["a".into(), "".into(), "a".into()];
        spec.rate_limit = Some(RateLimitConfig {
            requests_per_second: f64::NAN,
            burst: 0,
            wait_timeout: Duration::ZERO,
        });
        spec.circuit_breaker = Some(CircuitBreakerConfig {
            failure_threshold: 0,
            reset_timeout: Duration::ZERO,
        });
        let problems = super::spec(&spec, &Limits::default());
        assert_eq!(
            fields(&problems),
            [
                "name",
                "max_bytes",
                "default_ttl",
                "read_timeout",
                "warm_keys[1]",
                "warm_keys[2]",
                "rate_limit.requests_per_second",
                "rate_limit.burst",
                "circuit_breaker.failure_threshold",
                "circuit_breaker.reset_timeout",
                "source.path",
                "source.query",
            ]
        );
    }

    /// Names are URL-safe identifiers.
    #[test]
    fn names_are_checked() {
        assert!(name("users").is_ok());
        assert!(name("users.v2_eu-west").is_ok());
        assert!(name("").is_err());
        assert!(name("-users").is_err());
        assert!(name("us ers").is_err());
        assert!(name("users/1").is_err());
        assert!(name(&"a".repeat(MAX_NAME_BYTES + 1)).is_err());
    }

    /// Each source kind checks its own fields.
    #[test]
    fn sources_are_checked() {
        let http = |url: &str| {
            source(&SourceSpec::Http {
                url: url.to_owned(),
            })
        };
        assert!(http("http://h/{key}").is_empty());
        assert_eq!(fields(&http("ftp://h/x")), ["url", "url"]);
        let pg = |q: &str| {
            source(&SourceSpec::Postgres {
                url: "postgres://u@h/db".into(),
                query: q.into(),
            })
        };
        assert!(pg("SELECT v FROM t WHERE k = $1").is_empty());
        assert_eq!(fields(&pg("SELECT v FROM t WHERE k = ?")), ["query"]);
        assert_eq!(fields(&pg("SELECT $1, $2")), ["query"]);
        let reg = source(&SourceSpec::Registered { name: "".into() });
        assert_eq!(fields(&reg), ["name"]);
        assert!(source(&SourceSpec::None).is_empty());
    }

    /// Durations and sizes over their documented maxima are refused, naming field and limit
    /// (issue 12: a reset_timeout of 300000000000y was accepted, then every failing fetch
    /// panicked adding it to the clock).
    #[test]
    fn issue_12_huge_durations_and_sizes_are_refused() {
        let mut spec = KeySpaceSpec::new("a", SourceSpec::None);
        let huge = humantime::parse_duration("300000000000y").expect("parses");
        spec.max_bytes = Some(u64::MAX);
        spec.default_ttl = Some(huge);
        spec.read_timeout = Some(Duration::from_secs(7200));
        spec.warm_keys = (0..=MAX_WARM_KEYS).map(|i| format!("k{i}")).collect();
        spec.rate_limit = Some(RateLimitConfig {
            requests_per_second: 10.0,
            burst: 10,
            wait_timeout: huge,
        });
        spec.circuit_breaker = Some(CircuitBreakerConfig {
            failure_threshold: 1,
            reset_timeout: huge,
        });
        let problems = super::spec(&spec, &Limits::default());
        assert_eq!(
            fields(&problems),
            [
                "max_bytes",
                "default_ttl",
                "read_timeout",
                "warm_keys",
                "rate_limit.wait_timeout",
                "circuit_breaker.reset_timeout",
            ]
        );
        for p in problems.iter() {
            assert!(p.message.contains("maximum"), "{}: {}", p.field, p.message);
        }
        spec = KeySpaceSpec::new("a", SourceSpec::None);
        spec.max_bytes = Some(MAX_CACHE_BYTES);
        spec.default_ttl = Some(MAX_TTL);
        assert!(super::spec(&spec, &Limits::default()).is_empty());
    }

    /// A key over the engine's limit is refused as a warm key.
    #[test]
    fn warm_keys_respect_limits() {
        let limits = Limits {
            max_key_bytes: 4,
            ..Limits::default()
        };
        let mut spec = KeySpaceSpec::new("a", SourceSpec::None);
        spec.warm_keys = vec!["abcd".into(), "abcde".into()];
        let problems = super::spec(&spec, &limits);
        assert_eq!(fields(&problems), ["warm_keys[1]"]);
    }

    /// Zero concurrent loads (nothing could ever load) and bounds past the maxima are named;
    /// a zero queue (refuse whatever cannot start at once) and the maxima themselves pass.
    #[test]
    fn load_bounds_are_checked() {
        let mut spec = KeySpaceSpec::new("a", SourceSpec::None);
        spec.max_concurrent_loads = Some(0);
        spec.max_queued_loads = Some(MAX_QUEUED_LOADS + 1);
        let problems = super::spec(&spec, &Limits::default());
        assert_eq!(
            fields(&problems),
            ["max_concurrent_loads", "max_queued_loads"]
        );
        spec.max_concurrent_loads = Some(MAX_CONCURRENT_LOADS + 1);
        assert_eq!(
            fields(&super::spec(&spec, &Limits::default()))[0],
            "max_concurrent_loads"
        );
        spec.max_concurrent_loads = Some(MAX_CONCURRENT_LOADS);
        spec.max_queued_loads = Some(0);
        assert!(super::spec(&spec, &Limits::default()).is_empty());
        spec.max_queued_loads = Some(MAX_QUEUED_LOADS);
        assert!(super::spec(&spec, &Limits::default()).is_empty());
    }
}
