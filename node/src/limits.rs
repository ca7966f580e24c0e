//! Limits on what callers may send — key and value sizes, batch lengths — and the checks that
//! turn a request over a limit into its own error. Used by specs, the engine and the server
//! alike, so it imports nothing of ours above it but the error type.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Problems, Result};

/// Limits on what callers may send. Requests over a limit fail with their own error.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// Longest key, in bytes. Default 1024.
    pub max_key_bytes: usize,
    /// Largest value accepted by put, in bytes. Default 8 MiB.
    #[serde(with = "crate::units::usize_bytes")]
    pub max_value_bytes: usize,
    /// Most keys in one `get_many`, `put_many` or `delete_many`. Default 10 000.
    pub max_batch_keys: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_key_bytes: 1024,
            max_value_bytes: 8 << 20,
            max_batch_keys: 10_000,
        }
    }
}

impl Limits {
    /// Rejects empty keys and keys over `max_key_bytes`.
    #[inline]
    pub fn check_key(&self, key: &str) -> Result<()> {
        if key.is_empty() {
            Err(Error::EmptyKey)
        } else if key.len() > self.max_key_bytes {
            Err(Error::KeyTooLarge {
                len: key.len(),
                max: self.max_key_bytes,
            })
        } else {
            Ok(())
        }
    }

    /// Rejects values over `max_value_bytes`.
    pub fn check_value(&self, value: &[u8]) -> Result<()> {
        if value.len() > self.max_value_bytes {
            Err(Error::ValueTooLarge {
                len: value.len(),
                max: self.max_value_bytes,
            })
        } else {
            Ok(())
        }
    }

    /// Rejects batches over `max_batch_keys`.
    pub fn check_batch(&self, len: usize) -> Result<()> {
        if len > self.max_batch_keys {
            Err(Error::BatchTooLarge {
                len,
                max: self.max_batch_keys,
            })
        } else {
            Ok(())
        }
    }

    /// Every problem, fields named as in the TOML file.
    pub(crate) fn problems(&self) -> Problems {
        let mut problems = Problems::new();
        for (field, value) in [
            ("max_key_bytes", self.max_key_bytes),
            ("max_value_bytes", self.max_value_bytes),
            ("max_batch_keys", self.max_batch_keys),
        ] {
            if value == 0 {
                problems.push(field, "must be greater than zero");
            }
        }
        // Weights are u32 in the cache: an entry must be representable.
        if self.max_key_bytes.saturating_add(self.max_value_bytes) > u32::MAX as usize {
            problems.push(
                "max_value_bytes",
                "key and value together must stay under 4 GiB",
            );
        }
        problems
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Keys and values are checked against their limits with their own errors.
    #[test]
    fn limits_give_distinct_errors() {
        let l = Limits {
            max_key_bytes: 3,
            max_value_bytes: 2,
            max_batch_keys: 1,
        };
        assert!(matches!(l.check_key(""), Err(Error::EmptyKey)));
        assert!(matches!(
            l.check_key("abcd"),
            Err(Error::KeyTooLarge { len: 4, max: 3 })
        ));
        assert!(l.check_key("abc").is_ok());
        assert!(matches!(
            l.check_value(b"abc"),
            Err(Error::ValueTooLarge { len: 3, max: 2 })
        ));
        assert!(matches!(
            l.check_batch(2),
            Err(Error::BatchTooLarge { len: 2, max: 1 })
        ));
    }
}
