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
    /// `{key}` stands as a whole path segment (`…/users/{key}` or `…/{key}/profile`), where
    /// the keys `.` and `..` would be resolved away by URL parsing.
    key_is_segment: bool,
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
            key_is_segment: key_is_segment(template),
        })
    }

    fn url(&self, key: &str) -> String {
        self.template
            .replace("{key}", &utf8_percent_encode(key, KEY).to_string())
    }
}

/// Whether some `{key}` of `template` is a whole segment of its path.
fn key_is_segment(template: &str) -> bool {
    let scheme_end = template.find("://").map_or(0, |i| i + 3);
    let path_end = template[scheme_end..]
        .find(['?', '#'])
        .map_or(template.len(), |i| i + scheme_end);
    let path = &template[..path_end];
    path.match_indices("{key}").any(|(at, _)| {
        let before = path[..at].ends_with('/');
        let after = &path[at + "{key}".len()..];
        before && (after.is_empty() || after.starts_with('/'))
    })
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
        if self.key_is_segment && net::is_dot_segment(key) {
            // Sent as is, `…/users/..` would ask for `…/` and cache its answer under `..`.
            return Err(SourceError::refused(format!(
                "the key `{key}` cannot be sent to {}: a URL path resolves a `.` or `..` \
                 segment away; put {{key}} in the query string (…?id={{key}}) to serve such keys",
                self.template
            )));
        }
        let url = self.url(key);
        let response = crate::otel::traced_request(self.client.get(&url))
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

    /// Where `{key}` is a whole path segment, dot keys are refused; elsewhere they are sent.
    #[test]
    fn dot_keys_are_placed_or_refused() {
        assert!(key_is_segment("http://h/users/{key}"));
        assert!(key_is_segment("http://h/{key}/profile?v=1"));
        assert!(!key_is_segment("http://h/users/u-{key}"));
        assert!(!key_is_segment("http://h/users?id={key}"));
        assert!(!key_is_segment("http://h/users#{key}"));
        let s = HttpSource::open("http://127.0.0.1:1/users?id={key}").expect("open");
        assert_eq!(s.url(".."), "http://127.0.0.1:1/users?id=..");
        assert_eq!(s.url("a&b=c"), "http://127.0.0.1:1/users?id=a%26b%3Dc");
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
