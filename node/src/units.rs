//! Human units in configuration: byte sizes ("64MiB" or 67108864) and durations ("250ms").
//!
//! Byte sizes are written as plain integers and read from either an integer or a string with a
//! unit (`B`, `KB`, `KiB`, `MB`, `MiB`, `GB`, `GiB`, …). Durations use humantime strings both
//! ways through `humantime_serde`.

use std::time::Duration;

use serde::{Deserialize, Deserializer, Serializer};

/// Longest accepted time to live (`default_ttl`, `negative_ttl`, a put's `ttl`): 365 days.
pub const MAX_TTL: Duration = Duration::from_secs(365 * 24 * 3600);

/// Longest accepted timeout or wait (read and write timeouts, rate-limit waits, request and
/// probe deadlines, warmup timeouts): 1 hour.
pub const MAX_TIMEOUT: Duration = Duration::from_secs(3600);

/// Longest accepted interval (circuit-breaker reset, probe, refresh and sharing intervals,
/// start-up waits): 24 hours.
pub const MAX_INTERVAL: Duration = Duration::from_secs(24 * 3600);

/// Largest accepted `max_bytes` of a keyspace or an engine: 1 TiB.
pub const MAX_CACHE_BYTES: u64 = 1 << 40;

/// Parses a byte size such as `64MiB`, `1.5 GB` or `4096`.
pub fn parse_bytes(text: &str) -> Result<u64, String> {
    let trimmed = text.trim();
    if trimmed.is_empty() {
        return Err("empty byte size".to_owned());
    }
    trimmed
        .parse::<bytesize::ByteSize>()
        .map(|b| b.as_u64())
        .map_err(|e| format!("`{trimmed}` is not a byte size ({e}); try 67108864 or 64MiB"))
}

/// Parses a duration such as `250ms`, `5m` or `1h 30m`.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    humantime::parse_duration(text.trim()).map_err(|e| {
        format!(
            "`{}` is not a duration ({e}); try 250ms, 5s or 1h 30m",
            text.trim()
        )
    })
}

/// `now + after`, or a point so far ahead that it never comes (about 30 years) when the sum
/// does not fit the clock. Every deadline is computed this way: a huge configured duration
/// means "practically never", never a panic.
pub fn deadline_after<I: CheckedAdd + Copy>(now: I, after: Duration) -> I {
    now.checked_add_duration(after)
        .or_else(|| now.checked_add_duration(FAR_FUTURE))
        .unwrap_or(now)
}

/// About thirty years: "never" for deadlines whose exact value does not fit the clock.
const FAR_FUTURE: Duration = Duration::from_secs(30 * 365 * 24 * 3600);

/// Instants that can add a duration without panicking.
pub trait CheckedAdd: Sized {
    /// `self + d`, or `None` when it does not fit.
    fn checked_add_duration(self, d: Duration) -> Option<Self>;
}

impl CheckedAdd for std::time::Instant {
    fn checked_add_duration(self, d: Duration) -> Option<Self> {
        self.checked_add(d)
    }
}

impl CheckedAdd for tokio::time::Instant {
    fn checked_add_duration(self, d: Duration) -> Option<Self> {
        self.checked_add(d)
    }
}

/// Formats a duration the way configuration and admin JSON write it (`5m`, `250ms`).
pub fn format_duration(d: Duration) -> String {
    humantime::format_duration(d).to_string()
}

/// The OpenAPI schema of a byte size that [`opt_bytes`] or [`bytes`] reads: an integer, or a
/// string with a unit (`"64MiB"`); written back as an integer.
pub(crate) fn size_schema() -> utoipa::openapi::schema::Schema {
    use utoipa::openapi::schema::{ObjectBuilder, OneOfBuilder, Schema, Type};
    let one_of = OneOfBuilder::new()
        .item(
            ObjectBuilder::new()
                .schema_type(Type::Integer)
                .format(Some(utoipa::openapi::SchemaFormat::KnownFormat(
                    utoipa::openapi::KnownFormat::Int64,
                )))
                .minimum(Some(0)),
        )
        .item(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .examples(["64MiB"]),
        )
        .description(Some(
            "Bytes: an integer, or a string with a unit (`64MiB`, `1GB`); answers write an integer.",
        ))
        .build();
    Schema::OneOf(one_of)
}

/// Serde helpers for `Option<u64>` byte sizes: written as integers, read from integers or
/// strings with units.
pub mod opt_bytes {
    use super::*;

    /// Writes the size as an integer (or nothing).
    pub fn serialize<S: Serializer>(value: &Option<u64>, s: S) -> Result<S::Ok, S::Error> {
        match value {
            Some(v) => s.serialize_some(v),
            None => s.serialize_none(),
        }
    }

    /// Reads an integer or a string with a unit.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
        Option::<Raw>::deserialize(d)?
            .map(|raw| raw.into_bytes().map_err(serde::de::Error::custom))
            .transpose()
    }
}

/// Serde helpers for `u64` byte sizes, like [`opt_bytes`] but required.
pub mod bytes {
    use super::*;

    /// Writes the size as an integer.
    pub fn serialize<S: Serializer>(value: &u64, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(*value)
    }

    /// Reads an integer or a string with a unit.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
        Raw::deserialize(d)?
            .into_bytes()
            .map_err(serde::de::Error::custom)
    }
}

/// Serde helpers for `usize` byte sizes (limits that index memory), like [`bytes`].
pub mod usize_bytes {
    use super::*;

    /// Writes the size as an integer.
    pub fn serialize<S: Serializer>(value: &usize, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(*value as u64)
    }

    /// Reads an integer or a string with a unit; refuses sizes this machine cannot address.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<usize, D::Error> {
        let v = bytes::deserialize(d)?;
        usize::try_from(v).map_err(serde::de::Error::custom)
    }
}

/// A byte size as written: an integer or a string with a unit. Anything else (a negative or
/// fractional number, a boolean, …) is refused with a message that names what was given.
struct Raw(u64);

impl<'de> Deserialize<'de> for Raw {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(RawVisitor)
    }
}

struct RawVisitor;

impl serde::de::Visitor<'_> for RawVisitor {
    type Value = Raw;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a byte size: a whole number of bytes or a string such as \"64MiB\"")
    }

    fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Raw, E> {
        Ok(Raw(v))
    }

    fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Raw, E> {
        u64::try_from(v)
            .map(Raw)
            .map_err(|_| E::custom(format!("{v} is not a byte size: it must not be negative")))
    }

    fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Raw, E> {
        Err(E::custom(format!(
            "{v} is not a byte size: write a whole number of bytes or a string such as \"64MiB\""
        )))
    }

    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Raw, E> {
        parse_bytes(v).map(Raw).map_err(E::custom)
    }
}

impl Raw {
    fn into_bytes(self) -> Result<u64, String> {
        Ok(self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Binary and decimal units both parse, and plain integers are bytes.
    #[test]
    fn parses_byte_units() {
        assert_eq!(parse_bytes("64MiB"), Ok(64 << 20));
        assert_eq!(parse_bytes("64MB"), Ok(64_000_000));
        assert_eq!(parse_bytes(" 4096 "), Ok(4096));
        assert_eq!(parse_bytes("1KiB"), Ok(1024));
        assert!(parse_bytes("lots").is_err());
        assert!(parse_bytes("").is_err());
        assert!(parse_bytes("12 parsecs").is_err());
    }

    /// Negative, fractional and huge numbers are refused with messages naming them.
    #[test]
    fn bad_sizes_are_named() {
        #[derive(Debug, Deserialize)]
        struct S {
            #[serde(with = "super::bytes")]
            #[allow(dead_code)]
            size: u64,
        }
        let err = |json: &str| serde_json::from_str::<S>(json).expect_err(json).to_string();
        assert!(err(r#"{"size": -1}"#).contains("must not be negative"));
        assert!(err(r#"{"size": 1e30}"#).contains("whole number of bytes"));
        assert!(err(r#"{"size": 1.5}"#).contains("1.5"));
        assert!(err(r#"{"size": true}"#).contains("byte size"));
        assert!(err(r#"{"size": "lots"}"#).contains("lots"));
        let ok: S = serde_json::from_str(r#"{"size": "1KiB"}"#).expect("1KiB");
        assert_eq!(ok.size, 1024);
    }

    /// A deadline that does not fit the clock saturates instead of panicking.
    #[test]
    fn deadlines_saturate() {
        let now = std::time::Instant::now();
        let far = deadline_after(now, Duration::MAX);
        assert!(far > now + Duration::from_secs(3600 * 24 * 365));
        assert_eq!(
            deadline_after(now, Duration::from_secs(5)),
            now + Duration::from_secs(5)
        );
    }

    /// Durations use humantime in both directions.
    #[test]
    fn durations_round_trip() {
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("1h 30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(format_duration(Duration::from_secs(300)), "5m");
        assert!(parse_duration("soon").is_err());
    }
}
