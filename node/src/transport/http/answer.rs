//! Reading a peer's answer without trusting it: bodies read under a cap, transport
//! failures sorted into timeouts, protocol errors and unreachable peers, error bodies
//! turned back into the peer's error, and the TTL header.

use std::time::Duration;

use bytes::Bytes;

use crate::transport::PeerError;
use crate::wire::{ErrorBody, TTL_HEADER};

/// Largest error body read from a peer.
pub(super) const ERROR_BODY_CAP: usize = 64 << 10;

/// A peer answered something no valid node sends: logged, and a protocol error (the caller
/// treats the peer as failed).
pub(super) fn nonsense(peer: &str, reason: String) -> PeerError {
    tracing::warn!(peer, %reason, "peer answered nonsense; treating it as failed");
    PeerError::Protocol {
        peer: peer.to_owned(),
        reason,
    }
}

/// The body of `response`, read chunk by chunk and refused past `cap` bytes (a declared
/// length over it is refused before reading).
pub(super) async fn read_capped(
    peer: &str,
    mut response: reqwest::Response,
    cap: usize,
    timeout: Duration,
) -> Result<Bytes, PeerError> {
    let too_large = |len: u64| {
        nonsense(
            peer,
            format!("answer of {len}+ bytes, over the cap of {cap}"),
        )
    };
    if let Some(len) = response.content_length()
        && len > cap as u64
    {
        return Err(too_large(len));
    }
    let mut body = bytes::BytesMut::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| classify(peer, timeout, e))?
    {
        if body.len().saturating_add(chunk.len()) > cap {
            return Err(too_large((body.len() + chunk.len()) as u64));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body.freeze())
}

pub(super) fn classify(peer: &str, timeout: Duration, e: reqwest::Error) -> PeerError {
    if e.is_timeout() {
        PeerError::Timeout {
            peer: peer.to_owned(),
            after: timeout,
        }
    } else if e.is_decode() || e.is_builder() {
        PeerError::Protocol {
            peer: peer.to_owned(),
            reason: e.to_string(),
        }
    } else {
        // Connect failures and connections that died before an answer.
        PeerError::Unreachable {
            peer: peer.to_owned(),
            reason: crate::error::with_causes(&e),
        }
    }
}

pub(super) async fn remote_error(
    peer: &str,
    response: reqwest::Response,
    timeout: Duration,
) -> PeerError {
    let status = response.status();
    match read_capped(peer, response, ERROR_BODY_CAP, timeout).await {
        Ok(body) => match serde_json::from_slice::<ErrorBody>(&body) {
            Ok(err) => PeerError::Remote(err.into_error()),
            Err(_) => nonsense(
                peer,
                format!(
                    "status {status} without an error body: {}",
                    String::from_utf8_lossy(&body[..body.len().min(200)])
                ),
            ),
        },
        Err(e) => e,
    }
}

pub(super) fn ttl_of(response: &reqwest::Response) -> Option<Duration> {
    response
        .headers()
        .get(TTL_HEADER)?
        .to_str()
        .ok()?
        .parse::<u64>()
        .ok()
        .map(Duration::from_millis)
}

pub(super) fn encode(peer: &str, value: &impl serde::Serialize) -> Result<Vec<u8>, PeerError> {
    serde_json::to_vec(value).map_err(|e| PeerError::Protocol {
        peer: peer.to_owned(),
        reason: format!("cannot encode the request: {e}"),
    })
}
