//! Human units in configuration: byte sizes ("64MiB" or 67108864) and durations ("250ms").
//!
//! Byte sizes are written as plain integers and read from either an integer or a string with a
//! unit (`B`, `KB`, `KiB`, `MB`, `MiB`, `GB`, `GiB`, …). Durations use humantime strings both
//! ways through `humantime_serde`.

use std::time::Duration;

use serde::{Deserialize, Deserializer, Serializer};

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

/// Formats a duration the way configuration and admin JSON write it (`5m`, `250ms`).
pub fn format_duration(d: Duration) -> String {
    humantime::format_duration(d).to_string()
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

#[derive(Deserialize)]
#[serde(untagged)]
enum Raw {
    Int(u64),
    Text(String),
}

impl Raw {
    fn into_bytes(self) -> Result<u64, String> {
        match self {
            Raw::Int(v) => Ok(v),
            Raw::Text(t) => parse_bytes(&t),
        }
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

    /// Durations use humantime in both directions.
    #[test]
    fn durations_round_trip() {
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("1h 30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(format_duration(Duration::from_secs(300)), "5m");
        assert!(parse_duration("soon").is_err());
    }
}
