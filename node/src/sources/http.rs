//! The `http` source: `GET` a URL template in which `{key}` becomes the percent-encoded key.
//! 200 → the body is the value (a `Cache-Control: max-age=N` sets its TTL), 404 → not found,
//! anything else → a fetch error that names the status.

use std::time::Duration;

use async_trait::async_trait;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use reqwest::StatusCode;

use crate::error::{Error, Problems, SourceError};
use crate::net;
use crate::source::{DataSource, FetchResult, Fetched};

/// Everything but the unreserved characters of RFC 3986 is encoded, `/` included, so a key is
/// always one path segment (or one query value).
const KEY: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// Fetches keys over HTTP.
pub(crate) struct HttpSource {
    client: reqwest::Client,
    template: String,
}

impl HttpSource {
    /// A source for `template`, checked by building the URL of a sample key.
    pub fn open(template: &str) -> Result<Self, Error> {
        let sample = template.replace("{key}", "sample");
        reqwest::Url::parse(&sample).map_err(|e| {
            let mut p = Problems::new();
            p.push(
                "source.url",
                format!("`{template}` is not a valid URL: {e}"),
            );
            Error::InvalidSpec(p)
        })?;
        let client = net::client_builder()
            .build()
            .map_err(|e| Error::Internal(format!("cannot build the HTTP client: {e}")))?;
        Ok(HttpSource {
            client,
            template: template.to_owned(),
        })
    }

    fn url(&self, key: &str) -> String {
        self.template
            .replace("{key}", &utf8_percent_encode(key, KEY).to_string())
    }
}

fn max_age(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let value = headers.get(reqwest::header::CACHE_CONTROL)?.to_str().ok()?;
    value.split(',').find_map(|directive| {
        let (name, secs) = directive.trim().split_once('=')?;
        name.eq_ignore_ascii_case("max-age")
            .then(|| secs.trim().parse::<u64>().ok())
            .flatten()
            .map(Duration::from_secs)
    })
}

#[async_trait]
impl DataSource for HttpSource {
    async fn fetch(&self, key: &str) -> FetchResult {
        let url = self.url(key);
        let response = self
            .client
            .get(&url)
            .send()
            .await
            .map_err(|e| SourceError::with_cause(format!("GET {url} failed"), e))?;
        match response.status() {
            StatusCode::OK => {
                let ttl = max_age(response.headers());
                let body = response
                    .bytes()
                    .await
                    .map_err(|e| SourceError::with_cause(format!("reading {url} failed"), e))?;
                Ok(Some(match ttl {
                    Some(ttl) => Fetched::with_ttl(body, ttl),
                    None => Fetched::new(body),
                }))
            }
            StatusCode::NOT_FOUND => Ok(None),
            status => {
                let body = response.text().await.unwrap_or_default();
                let snippet: String = body.chars().take(200).collect();
                Err(SourceError::new(format!(
                    "GET {url} answered {status}: {snippet}"
                )))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Keys become one encoded segment; bad templates are refused with the field named.
    #[test]
    fn url_and_template_checks() {
        let s = HttpSource::open("http://127.0.0.1:1/users/{key}?v=1").expect("open");
        assert_eq!(s.url("a/b c"), "http://127.0.0.1:1/users/a%2Fb%20c?v=1");
        assert_eq!(s.url("user:1"), "http://127.0.0.1:1/users/user%3A1?v=1");
        let err = HttpSource::open("http://[::1/{key}")
            .err()
            .expect("bad url");
        assert!(err.to_string().contains("source.url"), "{err}");
    }

    /// Cache-Control max-age becomes the value's TTL.
    #[test]
    fn max_age_is_read() {
        let mut h = reqwest::header::HeaderMap::new();
        h.insert(
            reqwest::header::CACHE_CONTROL,
            "public, max-age=60".parse().expect("h"),
        );
        assert_eq!(max_age(&h), Some(Duration::from_secs(60)));
        h.insert(
            reqwest::header::CACHE_CONTROL,
            "no-store".parse().expect("h"),
        );
        assert_eq!(max_age(&h), None);
    }
}
