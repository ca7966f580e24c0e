//! Keyspace options as flags with human units, shared by `keyspace create` and `update`.
//!
//! ```text
//! --max-bytes 64MiB  --ttl 5m  --negative-ttl 30s  --read-timeout 250ms  --write-timeout 1s
//! --warm-keys user:1,user:2  --eviction lru
//! --rate-limit 100/s,burst=200,wait=50ms   (or `none`)
//! --circuit-breaker 5,10s                  (threshold, reset timeout; or `none`)
//! --source http://api/users/{key} | sqlite:/path/db.sqlite | postgres://u@h/db
//!          | registered:NAME | none       (sqlite and postgres need --query)
//! ```
//! On `update`, a flag replaces that field and the rest stays; `none` clears an optional one.

use std::time::Duration;

use anyhow::{Context, bail};
use clap::Args;
use distcache::{CircuitBreakerConfig, Eviction, KeySpaceSpec, RateLimitConfig, SourceSpec};

/// A setting that may be cleared with `none`.
#[derive(Debug, Clone, PartialEq)]
pub enum Setting<T> {
    /// Set it to this.
    Set(T),
    /// Clear it (the engine's default applies).
    Clear,
}

fn clearable<T>(
    text: &str,
    parse: impl Fn(&str) -> Result<T, String>,
) -> Result<Setting<T>, String> {
    if text.trim().eq_ignore_ascii_case("none") {
        Ok(Setting::Clear)
    } else {
        parse(text).map(Setting::Set)
    }
}

fn size(text: &str) -> Result<Setting<u64>, String> {
    clearable(text, distcache::units::parse_bytes)
}

fn duration(text: &str) -> Result<Setting<Duration>, String> {
    clearable(text, distcache::units::parse_duration)
}

/// Parses `100/s,burst=200,wait=50ms` (`/m` for per minute; burst defaults to the rate
/// rounded up, wait to 0).
pub fn parse_rate_limit(text: &str) -> Result<Setting<RateLimitConfig>, String> {
    clearable(text, |text| {
        let mut parts = text.split(',').map(str::trim);
        let rate = parts.next().unwrap_or_default();
        let (number, per) = match rate.split_once('/') {
            Some((n, unit)) => (n, unit.trim()),
            None => (rate, "s"),
        };
        let number: f64 = number
            .trim()
            .parse()
            .map_err(|_| format!("`{rate}` is not a rate; try 100/s or 30/m"))?;
        let requests_per_second = match per {
            "s" | "sec" | "second" => number,
            "m" | "min" | "minute" => number / 60.0,
            other => return Err(format!("`/{other}`: use /s or /m")),
        };
        let mut burst = requests_per_second.ceil().max(1.0) as u32;
        let mut wait_timeout = Duration::ZERO;
        for part in parts {
            match part.split_once('=') {
                Some(("burst", v)) => {
                    burst = v
                        .parse()
                        .map_err(|_| format!("burst `{v}` is not a whole number"))?
                }
                Some(("wait", v)) => wait_timeout = distcache::units::parse_duration(v)?,
                _ => return Err(format!("`{part}`: expected burst=N or wait=DURATION")),
            }
        }
        Ok(RateLimitConfig {
            requests_per_second,
            burst,
            wait_timeout,
        })
    })
}

/// Parses `5,10s`: failures in a row that open the breaker, and how long it stays open.
pub fn parse_circuit_breaker(text: &str) -> Result<Setting<CircuitBreakerConfig>, String> {
    clearable(text, |text| {
        let (threshold, reset) = text
            .split_once(',')
            .ok_or_else(|| format!("`{text}`: expected THRESHOLD,RESET, e.g. 5,10s"))?;
        Ok(CircuitBreakerConfig {
            failure_threshold: threshold
                .trim()
                .parse()
                .map_err(|_| format!("`{threshold}` is not a whole number of failures"))?,
            reset_timeout: distcache::units::parse_duration(reset)?,
        })
    })
}

fn eviction(text: &str) -> Result<Eviction, String> {
    match text.trim().to_ascii_lowercase().replace('_', "-").as_str() {
        "tiny-lfu" | "tinylfu" => Ok(Eviction::TinyLfu),
        "lru" => Ok(Eviction::Lru),
        other => Err(format!("`{other}`: use tiny-lfu or lru")),
    }
}

/// The keyspace options of `create` and `update`.
#[derive(Debug, Clone, Default, Args)]
pub struct SpecFlags {
    /// Most bytes the keyspace holds per node, e.g. 64MiB (`none`: the engine's default).
    #[arg(long, value_name = "SIZE", value_parser = size)]
    pub max_bytes: Option<Setting<u64>>,
    /// Time to live of entries without their own, e.g. 5m (`none`: live until evicted).
    #[arg(long, value_name = "DURATION", value_parser = duration)]
    pub ttl: Option<Setting<Duration>>,
    /// How long a not-found answer is remembered, e.g. 30s (`none`: never).
    #[arg(long, value_name = "DURATION", value_parser = duration)]
    pub negative_ttl: Option<Setting<Duration>>,
    /// Deadline of a fetch from the data source, e.g. 250ms.
    #[arg(long, value_name = "DURATION", value_parser = duration)]
    pub read_timeout: Option<Setting<Duration>>,
    /// Deadline of a put or delete, e.g. 1s.
    #[arg(long, value_name = "DURATION", value_parser = duration)]
    pub write_timeout: Option<Setting<Duration>>,
    /// Keys to load ahead of requests, comma-separated (`none`: no warm keys).
    #[arg(long, value_name = "KEYS")]
    pub warm_keys: Option<String>,
    /// Rate limit on fetches, e.g. 100/s,burst=200,wait=50ms (`none`: the engine's).
    #[arg(long, value_name = "RATE", value_parser = parse_rate_limit)]
    pub rate_limit: Option<Setting<RateLimitConfig>>,
    /// Circuit breaker on fetches, e.g. 5,10s (`none`: the engine's).
    #[arg(long, value_name = "THRESHOLD,RESET", value_parser = parse_circuit_breaker)]
    pub circuit_breaker: Option<Setting<CircuitBreakerConfig>>,
    /// Eviction policy: tiny-lfu or lru.
    #[arg(long, value_parser = eviction)]
    pub eviction: Option<Eviction>,
    /// Data source: http(s)://…/{key}, sqlite:PATH, postgres://…, registered:NAME or none.
    #[arg(long, value_name = "SOURCE")]
    pub source: Option<String>,
    /// Query for sqlite (`?` is the key) and postgres (`$1` is the key) sources.
    #[arg(long, value_name = "SQL")]
    pub query: Option<String>,
}

fn apply<T>(field: &mut Option<T>, setting: Option<Setting<T>>) {
    match setting {
        Some(Setting::Set(v)) => *field = Some(v),
        Some(Setting::Clear) => *field = None,
        None => {}
    }
}

impl SpecFlags {
    /// Writes every given flag into `spec`.
    pub fn apply_to(self, spec: &mut KeySpaceSpec) -> anyhow::Result<()> {
        apply(&mut spec.max_bytes, self.max_bytes);
        apply(&mut spec.default_ttl, self.ttl);
        apply(&mut spec.negative_ttl, self.negative_ttl);
        apply(&mut spec.read_timeout, self.read_timeout);
        apply(&mut spec.write_timeout, self.write_timeout);
        apply(&mut spec.rate_limit, self.rate_limit);
        apply(&mut spec.circuit_breaker, self.circuit_breaker);
        if let Some(e) = self.eviction {
            spec.eviction = Some(e);
        }
        if let Some(keys) = self.warm_keys {
            spec.warm_keys = if keys.trim().eq_ignore_ascii_case("none") {
                Vec::new()
            } else {
                keys.split(',')
                    .map(str::trim)
                    .filter(|k| !k.is_empty())
                    .map(str::to_owned)
                    .collect()
            };
        }
        match (self.source, self.query) {
            (Some(source), query) => spec.source = source_spec(&source, query)?,
            (None, Some(query)) => match &mut spec.source {
                SourceSpec::Sqlite { query: q, .. } | SourceSpec::Postgres { query: q, .. } => {
                    *q = query
                }
                other => bail!(
                    "--query applies to sqlite and postgres sources; this keyspace's source is `{}`",
                    other.kind()
                ),
            },
            (None, None) => {}
        }
        Ok(())
    }
}

/// The source a `--source` (and `--query`) describe.
pub fn source_spec(source: &str, query: Option<String>) -> anyhow::Result<SourceSpec> {
    let source = source.trim();
    let need_query = |kind: &str| {
        query
            .clone()
            .with_context(|| format!("a {kind} source needs --query"))
    };
    let spec = if source.starts_with("http://") || source.starts_with("https://") {
        SourceSpec::Http {
            url: source.to_owned(),
        }
    } else if let Some(path) = source.strip_prefix("sqlite:") {
        SourceSpec::Sqlite {
            path: path.trim_start_matches("//").to_owned(),
            query: need_query("sqlite")?,
        }
    } else if source.starts_with("postgres://") || source.starts_with("postgresql://") {
        SourceSpec::Postgres {
            url: source.to_owned(),
            query: need_query("postgres")?,
        }
    } else if let Some(name) = source.strip_prefix("registered:") {
        SourceSpec::Registered {
            name: name.to_owned(),
        }
    } else if source.eq_ignore_ascii_case("none") {
        SourceSpec::None
    } else {
        bail!(
            "--source `{source}`: expected http(s)://…/{{key}}, sqlite:PATH, postgres://…, registered:NAME or none"
        );
    };
    let takes_query = matches!(
        spec,
        SourceSpec::Sqlite { .. } | SourceSpec::Postgres { .. }
    );
    if query.is_some() && !takes_query {
        bail!("--query applies to sqlite and postgres sources only");
    }
    Ok(spec)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The documented rate-limit syntax parses, with its defaults.
    #[test]
    fn rate_limits() {
        let Ok(Setting::Set(r)) = parse_rate_limit("100/s,burst=200,wait=50ms") else {
            panic!("parse")
        };
        assert_eq!(
            (r.requests_per_second, r.burst, r.wait_timeout),
            (100.0, 200, Duration::from_millis(50))
        );
        let Ok(Setting::Set(r)) = parse_rate_limit("30/m") else {
            panic!("parse")
        };
        assert_eq!(
            (r.requests_per_second, r.burst, r.wait_timeout),
            (0.5, 1, Duration::ZERO)
        );
        assert_eq!(parse_rate_limit("none"), Ok(Setting::Clear));
        assert!(parse_rate_limit("fast").is_err());
        assert!(parse_rate_limit("10/h").is_err());
        assert!(parse_rate_limit("10/s,burst=x").is_err());
        assert!(parse_rate_limit("10/s,jitter=1").is_err());
    }

    /// Breakers are THRESHOLD,RESET.
    #[test]
    fn circuit_breakers() {
        let Ok(Setting::Set(c)) = parse_circuit_breaker("5,10s") else {
            panic!("parse")
        };
        assert_eq!(
            (c.failure_threshold, c.reset_timeout),
            (5, Duration::from_secs(10))
        );
        assert!(parse_circuit_breaker("5").is_err());
        assert!(parse_circuit_breaker("x,1s").is_err());
    }

    /// Every source form, and --query only where it belongs.
    #[test]
    fn sources() {
        assert_eq!(
            source_spec("http://h/{key}", None).unwrap_or(SourceSpec::None),
            SourceSpec::Http {
                url: "http://h/{key}".into()
            }
        );
        assert_eq!(
            source_spec(
                "sqlite:/tmp/x.db",
                Some("SELECT v FROM t WHERE k = ?".into())
            )
            .unwrap_or(SourceSpec::None),
            SourceSpec::Sqlite {
                path: "/tmp/x.db".into(),
                query: "SELECT v FROM t WHERE k = ?".into()
            }
        );
        assert!(source_spec("sqlite:/tmp/x.db", None).is_err());
        assert!(source_spec("http://h/{key}", Some("q".into())).is_err());
        assert!(source_spec("ftp://x", None).is_err());
        assert_eq!(
            source_spec("none", None).unwrap_or(SourceSpec::Registered { name: "x".into() }),
            SourceSpec::None
        );
    }

    /// Update semantics: given flags replace, `none` clears, the rest stays.
    #[test]
    fn flags_patch_a_spec() {
        let mut spec = KeySpaceSpec::new("a", SourceSpec::None);
        spec.default_ttl = Some(Duration::from_secs(60));
        spec.max_bytes = Some(1024);
        let flags = SpecFlags {
            ttl: Some(Setting::Clear),
            warm_keys: Some("x, y".into()),
            ..SpecFlags::default()
        };
        flags.apply_to(&mut spec).unwrap_or_default();
        assert_eq!(spec.default_ttl, None);
        assert_eq!(spec.max_bytes, Some(1024));
        assert_eq!(spec.warm_keys, ["x", "y"]);
    }
}
