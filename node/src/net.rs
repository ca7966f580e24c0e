//! Shared network plumbing: one crypto provider for rustls, reqwest clients with pooled
//! keep-alive connections and the TLS settings of `net/tls.rs`, URLs built from path
//! segments, and the event loops both fronts serve their connections on (`net/loops.rs`).

use std::sync::Once;
use std::time::Duration;

pub(crate) mod loops;
pub(crate) mod tls;

use tls::{ClientTls, TlsError};

/// Installs rustls' ring crypto provider as the process default (once; a provider installed
/// by the embedding program first is kept).
pub(crate) fn install_crypto_provider() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

/// A reqwest client builder with the settings every distcache client shares: keep-alive pool,
/// no Nagle delay, a connect timeout. TLS is reqwest's default (the system's trust store);
/// data sources use this one.
pub(crate) fn client_builder() -> reqwest::ClientBuilder {
    install_crypto_provider();
    reqwest::Client::builder()
        .tcp_nodelay(true)
        // Below the servers' default header_read_timeout (10 s), which also closes idle
        // keep-alive connections: the pool drops a connection before the server can.
        .pool_idle_timeout(Duration::from_secs(5))
        .pool_max_idle_per_host(256)
        .connect_timeout(Duration::from_secs(2))
        .no_proxy()
}

/// [`client_builder`] with TLS set up by `tls` ([`ClientTls::client_config`]): its CAs (or
/// the bundled Mozilla roots), its client certificate. Clients of nodes use this one.
pub(crate) fn client_builder_with(tls: &ClientTls) -> Result<reqwest::ClientBuilder, TlsError> {
    Ok(client_builder().use_preconfigured_tls(tls.client_config()?))
}

/// Adds `Authorization: Bearer <token>` to every request of the client being built.
pub(crate) fn with_token(
    builder: reqwest::ClientBuilder,
    token: Option<&str>,
) -> Result<reqwest::ClientBuilder, String> {
    let Some(token) = token else {
        return Ok(builder);
    };
    let mut value = reqwest::header::HeaderValue::from_str(&format!("Bearer {token}"))
        .map_err(|_| "the token must be printable ASCII".to_owned())?;
    value.set_sensitive(true);
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(reqwest::header::AUTHORIZATION, value);
    Ok(builder.default_headers(headers))
}

/// True for `.` and `..`: path segments that every URL parser resolves away (as "this" and
/// "parent" directory), so no URL can carry them as a segment. Keys like these travel in a
/// query string instead.
pub(crate) fn is_dot_segment(segment: &str) -> bool {
    segment == "." || segment == ".."
}

/// `{scheme}://{addr}` with `segments` appended, each percent-encoded as one path segment. A
/// `.` or `..` segment is refused rather than silently dropped.
pub(crate) fn url(scheme: &str, addr: &str, segments: &[&str]) -> Result<reqwest::Url, String> {
    if let Some(dot) = segments.iter().find(|s| is_dot_segment(s)) {
        return Err(format!(
            "`{dot}` cannot be a path segment of a URL (send it in the query string)"
        ));
    }
    let mut url = reqwest::Url::parse(&format!("{scheme}://{addr}/"))
        .map_err(|e| format!("`{addr}` is not a host:port address ({e})"))?;
    url.path_segments_mut()
        .map_err(|_| format!("`{addr}` cannot be a base address"))?
        .pop_if_empty()
        .extend(segments);
    Ok(url)
}

/// Resolves once `stop` says true (or its sender is gone).
pub(crate) async fn stopped(stop: &mut tokio::sync::watch::Receiver<bool>) {
    while !*stop.borrow_and_update() {
        if stop.changed().await.is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Keys with slashes, spaces and non-ASCII become single encoded segments.
    #[test]
    fn url_encodes_each_segment() {
        let u = url(
            "http",
            "127.0.0.1:3320",
            &["v1", "keyspaces", "ks", "keys", "a/b c?é"],
        )
        .expect("url");
        assert_eq!(
            u.as_str(),
            "http://127.0.0.1:3320/v1/keyspaces/ks/keys/a%2Fb%20c%3F%C3%A9"
        );
        assert!(url("http", "not an address", &[]).is_err());
        assert!(url("http", "127.0.0.1:1", &["keys", ".."]).is_err());
        assert!(url("http", "127.0.0.1:1", &["keys", "."]).is_err());
    }
}
