//! Where a client connects: endpoints as base URLs (`host:port` or a URL with its scheme),
//! and the HTTP client of the TLS settings.

use crate::error::{Error, Result};
use crate::net;
use crate::net::tls::ClientTls;

/// The reqwest client of the TLS settings `tls`.
pub(crate) fn http_client(tls: &ClientTls) -> Result<reqwest::Client> {
    net::client_builder_with(tls)
        .map_err(|e| {
            let mut problems = crate::error::Problems::new();
            problems.push("tls", e.to_string());
            Error::InvalidConfig(problems)
        })?
        .build()
        .map_err(|e| Error::Internal(format!("cannot build the HTTP client: {e}")))
}

/// The scheme of bare `host:port` endpoints: https when `tls` sets anything.
pub(crate) fn default_scheme(tls: &ClientTls) -> &'static str {
    if tls.is_configured() { "https" } else { "http" }
}

/// `endpoint` as a base URL: its own scheme (http or https), or `scheme` when it has none.
/// `None` for an empty endpoint.
pub(super) fn endpoint_url(endpoint: &str, scheme: &str) -> Result<Option<String>> {
    if endpoint.is_empty() {
        return Ok(None);
    }
    let url = if endpoint.contains("://") {
        endpoint.to_owned()
    } else {
        format!("{scheme}://{endpoint}")
    };
    let parsed = reqwest::Url::parse(&url)
        .map_err(|e| Error::InvalidRequest(format!("endpoint `{endpoint}` is not a URL: {e}")))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(Error::InvalidRequest(format!(
            "endpoint `{endpoint}`: the scheme must be http or https"
        )));
    }
    Ok(Some(url))
}

/// The scheme of a base URL made by [`endpoint_url`].
pub(crate) fn scheme_of(endpoint: &str) -> &str {
    endpoint
        .split_once("://")
        .map_or("http", |(scheme, _)| scheme)
}
