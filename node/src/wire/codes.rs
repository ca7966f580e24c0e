//! Every error code the HTTP API can answer with, in one enumerable place.
//!
//! Most codes are [`ErrorCode`]s: typed engine errors that the receiver rebuilds. The rest
//! exist only on the wire, as [`WireCode`]s: answers about the request itself (no such route,
//! a method the route does not take, a head hyper could not parse) and answers that are not
//! engine errors (a key the source does not have, a warmup run this node does not remember).
//! [`all_codes`] lists both; the OpenAPI document enumerates exactly that list, and a test
//! checks that each list names every variant of its enum.

use serde::{Deserialize, Serialize};

use crate::error::ErrorCode;

/// Codes that only travel on the wire: no [`Error`](crate::Error) variant stands behind them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
#[non_exhaustive]
pub enum WireCode {
    /// The data source has no such key (a read answering "not found").
    KeyNotFound,
    /// This node keeps no warmup run with that id.
    WarmupNotFound,
    /// No route serves the request's path.
    NotFound,
    /// The route exists but does not take the request's method.
    MethodNotAllowed,
    /// hyper could not parse the request line or a header.
    MalformedRequest,
    /// The request head is over the node's limit.
    HeadersTooLarge,
    /// The request URI is over the node's limit.
    UriTooLong,
    /// A node-to-node route was called on a connection without a client certificate that
    /// chains to the cluster CA.
    PeerCertificateRequired,
}

impl WireCode {
    /// Every wire-only code.
    pub const ALL: &'static [WireCode] = &[
        WireCode::KeyNotFound,
        WireCode::WarmupNotFound,
        WireCode::NotFound,
        WireCode::MethodNotAllowed,
        WireCode::MalformedRequest,
        WireCode::HeadersTooLarge,
        WireCode::UriTooLong,
        WireCode::PeerCertificateRequired,
    ];

    /// The code as it is written on the wire.
    pub const fn as_str(self) -> &'static str {
        match self {
            WireCode::KeyNotFound => "KEY_NOT_FOUND",
            WireCode::WarmupNotFound => "WARMUP_NOT_FOUND",
            WireCode::NotFound => "NOT_FOUND",
            WireCode::MethodNotAllowed => "METHOD_NOT_ALLOWED",
            WireCode::MalformedRequest => "MALFORMED_REQUEST",
            WireCode::HeadersTooLarge => "HEADERS_TOO_LARGE",
            WireCode::UriTooLong => "URI_TOO_LONG",
            WireCode::PeerCertificateRequired => "PEER_CERTIFICATE_REQUIRED",
        }
    }
}

impl std::fmt::Display for WireCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Every code an error body can carry: the engine's [`ErrorCode`]s, then the [`WireCode`]s.
pub fn all_codes() -> impl Iterator<Item = &'static str> {
    ErrorCode::ALL
        .iter()
        .map(|c| c.as_str())
        .chain(WireCode::ALL.iter().map(|c| c.as_str()))
}

/// The schema of an error body's `code`: a string, one of [`all_codes`].
pub(crate) fn code_schema() -> utoipa::openapi::Object {
    use utoipa::openapi::{ObjectBuilder, Type};
    ObjectBuilder::new()
        .schema_type(Type::String)
        .enum_values(Some(all_codes()))
        .description(Some(
            "Stable machine code, e.g. `KEYSPACE_NOT_FOUND`. A client should treat a code it \
             does not know (from a newer node) as an internal error.",
        ))
        .build()
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use serde::de::{self, Deserializer, Visitor};

    use super::*;

    /// The wire names of every variant of a unit-only enum, as its serde derive knows them:
    /// a deserializer that stops at `deserialize_enum` and keeps the list it is handed. The
    /// derive names every variant, so a new one shows up here whatever else forgot it.
    fn variant_names<T: for<'de> Deserialize<'de>>() -> &'static [&'static str] {
        struct Catch(Option<&'static [&'static str]>);

        impl<'de> Deserializer<'de> for &mut Catch {
            type Error = de::value::Error;

            fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Self::Error> {
                Err(de::Error::custom("only enums are caught"))
            }

            fn deserialize_enum<V: Visitor<'de>>(
                self,
                _name: &'static str,
                variants: &'static [&'static str],
                _visitor: V,
            ) -> Result<V::Value, Self::Error> {
                self.0 = Some(variants);
                Err(de::Error::custom("caught"))
            }

            serde::forward_to_deserialize_any! {
                bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes
                byte_buf option unit unit_struct newtype_struct seq tuple tuple_struct map
                struct identifier ignored_any
            }
        }

        let mut catch = Catch(None);
        let _ = T::deserialize(&mut catch);
        catch.0.expect("a derived enum asks for deserialize_enum")
    }

    /// `ErrorCode::ALL` names every variant, each once, by its wire name.
    #[test]
    fn error_code_list_is_complete() {
        let derived: BTreeSet<&str> = variant_names::<ErrorCode>().iter().copied().collect();
        let listed: BTreeSet<&str> = ErrorCode::ALL.iter().map(|c| c.as_str()).collect();
        assert_eq!(listed.len(), ErrorCode::ALL.len(), "a code is listed twice");
        assert_eq!(listed, derived, "ErrorCode::ALL is not every variant");
    }

    /// `WireCode::ALL` names every variant, each once, by its wire name.
    #[test]
    fn wire_code_list_is_complete() {
        let derived: BTreeSet<&str> = variant_names::<WireCode>().iter().copied().collect();
        let listed: BTreeSet<&str> = WireCode::ALL.iter().map(|c| c.as_str()).collect();
        assert_eq!(listed.len(), WireCode::ALL.len(), "a code is listed twice");
        assert_eq!(listed, derived, "WireCode::ALL is not every variant");
        for code in WireCode::ALL {
            let json = serde_json::to_string(code).expect("serialize");
            assert_eq!(json, format!("\"{}\"", code.as_str()));
        }
    }

    /// No wire-only code shadows an engine code.
    #[test]
    fn codes_are_unique() {
        let all: Vec<&str> = all_codes().collect();
        let unique: BTreeSet<&str> = all.iter().copied().collect();
        assert_eq!(unique.len(), all.len(), "{all:?}");
    }
}
