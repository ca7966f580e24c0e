//! The NATS provider's settings (`[discovery.nats]`), with the seed's defaults and the check
//! that names every bad field.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::Problems;
use crate::units::{MAX_INTERVAL, MAX_TIMEOUT};

/// The subject nodes announce themselves on unless told otherwise.
pub(crate) const DEFAULT_SUBJECT: &str = "distcache.discovery";

/// Where the NATS servers are, how to reach them, and how nodes announce themselves there.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NatsConfig {
    /// The NATS servers, several for a NATS cluster (`nats://host:4222`, `tls://host:4222`, or
    /// a bare `host:port`). Required: no default.
    pub urls: Vec<String>,
    /// The subject every node of one cluster announces itself on; clusters sharing a NATS
    /// server use different subjects. Default `distcache.discovery`.
    pub subject: String,
    /// How long one exchange with NATS may take: a connect handshake, a flush, and the wait
    /// for the answers to a discovery request at start-up. Default 1 s.
    #[serde(with = "humantime_serde")]
    pub request_timeout: Duration,
    /// Tries to reach a NATS server at start-up before the node gives up. Default 5.
    pub connect_attempts: u32,
    /// Pause between connect attempts, and the first pause before reconnecting after a lost
    /// connection (then doubling, up to 8 times this). Default 2 s.
    #[serde(with = "humantime_serde")]
    pub reconnect_wait: Duration,
    /// How often a node announces itself again. Default 5 s.
    #[serde(with = "humantime_serde")]
    pub announce_interval: Duration,
    /// A node not heard from for this long is dropped from the list (time spent disconnected
    /// from NATS does not count). At least twice `announce_interval`. Default 15 s.
    #[serde(with = "humantime_serde")]
    pub peer_timeout: Duration,
    /// A NATS credentials file (JWT and NKey seed), as `nsc` writes them.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub credentials_file: Option<PathBuf>,
    /// User name, with `password`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// Password of `user`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
    /// An authentication token.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    /// PEM file of the CA certificates that sign the NATS servers' certificates; setting it
    /// requires TLS.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_ca_file: Option<PathBuf>,
    /// PEM client certificate, for servers that verify clients (with `tls_key_file`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_cert_file: Option<PathBuf>,
    /// PEM private key of `tls_cert_file`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_key_file: Option<PathBuf>,
}

impl Default for NatsConfig {
    fn default() -> Self {
        NatsConfig {
            urls: Vec::new(),
            subject: DEFAULT_SUBJECT.to_owned(),
            request_timeout: Duration::from_secs(1),
            connect_attempts: 5,
            reconnect_wait: Duration::from_secs(2),
            announce_interval: Duration::from_secs(5),
            peer_timeout: Duration::from_secs(15),
            credentials_file: None,
            user: None,
            password: None,
            token: None,
            tls_ca_file: None,
            tls_cert_file: None,
            tls_key_file: None,
        }
    }
}

/// Secrets are not printed.
impl fmt::Debug for NatsConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let hidden = |s: &Option<String>| s.as_ref().map(|_| "<hidden>");
        f.debug_struct("NatsConfig")
            .field("urls", &self.urls)
            .field("subject", &self.subject)
            .field("request_timeout", &self.request_timeout)
            .field("connect_attempts", &self.connect_attempts)
            .field("reconnect_wait", &self.reconnect_wait)
            .field("announce_interval", &self.announce_interval)
            .field("peer_timeout", &self.peer_timeout)
            .field("credentials_file", &self.credentials_file)
            .field("user", &self.user)
            .field("password", &hidden(&self.password))
            .field("token", &hidden(&self.token))
            .field("tls_ca_file", &self.tls_ca_file)
            .field("tls_cert_file", &self.tls_cert_file)
            .field("tls_key_file", &self.tls_key_file)
            .finish()
    }
}

impl NatsConfig {
    /// The defaults with the servers at `urls`.
    pub fn new<I, S>(urls: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        NatsConfig {
            urls: urls.into_iter().map(Into::into).collect(),
            ..NatsConfig::default()
        }
    }

    /// Millisecond timings for tests, with the servers at `urls`.
    pub fn for_test<I, S>(urls: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        NatsConfig {
            request_timeout: Duration::from_millis(300),
            connect_attempts: 3,
            reconnect_wait: Duration::from_millis(50),
            announce_interval: Duration::from_millis(100),
            peer_timeout: Duration::from_millis(1000),
            ..NatsConfig::new(urls)
        }
    }

    /// Every problem, fields named as in the TOML file.
    pub fn problems(&self) -> Problems {
        let mut problems = Problems::new();
        if self.urls.is_empty() {
            problems.push("urls", "name at least one NATS server (nats://host:4222)");
        }
        for (i, url) in self.urls.iter().enumerate() {
            if let Err(message) = check_url(url) {
                problems.push(format!("urls[{i}]"), format!("`{url}` {message}"));
            }
        }
        if let Err(message) = check_subject(&self.subject) {
            problems.push("subject", message);
        }
        problems.duration_within("request_timeout", self.request_timeout, MAX_TIMEOUT);
        problems.duration_within("reconnect_wait", self.reconnect_wait, MAX_TIMEOUT);
        problems.duration_within("announce_interval", self.announce_interval, MAX_INTERVAL);
        problems.duration_within("peer_timeout", self.peer_timeout, MAX_INTERVAL);
        if self.connect_attempts == 0 {
            problems.push("connect_attempts", "must be at least 1");
        }
        if !self.announce_interval.is_zero()
            && self.peer_timeout < self.announce_interval.saturating_mul(2)
        {
            problems.push(
                "peer_timeout",
                format!(
                    "is {}, under twice announce_interval ({}): live nodes would be dropped between their announcements",
                    crate::units::format_duration(self.peer_timeout),
                    crate::units::format_duration(self.announce_interval)
                ),
            );
        }
        self.auth_problems(&mut problems);
        problems
    }

    /// At most one way to authenticate, each complete; a client key goes with its certificate.
    fn auth_problems(&self, problems: &mut Problems) {
        let blank = |s: &Option<String>| s.as_deref().is_some_and(|s| s.trim().is_empty());
        for (field, value) in [
            ("user", &self.user),
            ("password", &self.password),
            ("token", &self.token),
        ] {
            if blank(value) {
                problems.push(field, "must not be empty when set");
            }
        }
        match (&self.user, &self.password) {
            (Some(_), None) => problems.push("password", "is needed with `user`"),
            (None, Some(_)) => problems.push("user", "is needed with `password`"),
            _ => {}
        }
        let ways = [
            self.credentials_file.is_some(),
            self.user.is_some() || self.password.is_some(),
            self.token.is_some(),
        ];
        if ways.iter().filter(|w| **w).count() > 1 {
            problems.push(
                "credentials_file",
                "set one of credentials_file, user and password, or token",
            );
        }
        match (&self.tls_cert_file, &self.tls_key_file) {
            (Some(_), None) => problems.push("tls_key_file", "is needed with `tls_cert_file`"),
            (None, Some(_)) => problems.push("tls_cert_file", "is needed with `tls_key_file`"),
            _ => {}
        }
    }

    /// Whether TLS is required of every server (a CA or a client certificate is set, or a
    /// URL says `tls://`).
    pub(crate) fn requires_tls(&self) -> bool {
        self.tls_ca_file.is_some()
            || self.tls_cert_file.is_some()
            || self.urls.iter().any(|u| u.trim().starts_with("tls://"))
    }
}

/// Checks one server URL: `nats://` or `tls://` (or no scheme), a host, a valid port.
fn check_url(url: &str) -> Result<(), String> {
    let url = url.trim();
    if let Some((scheme, _)) = url.split_once("://")
        && scheme != "nats"
        && scheme != "tls"
    {
        return Err(format!(
            "has scheme `{scheme}`: use nats:// or tls:// (websockets are not supported)"
        ));
    }
    url.parse::<async_nats::ServerAddr>()
        .map(|_| ())
        .map_err(|e| format!("is not a NATS server URL: {e}"))
}

/// Checks a subject to publish on: dot-separated tokens, no wildcards, no whitespace.
fn check_subject(subject: &str) -> Result<(), String> {
    if subject.is_empty() {
        return Err("must not be empty".to_owned());
    }
    if subject.chars().any(char::is_whitespace) {
        return Err(format!("`{subject}` must not contain whitespace"));
    }
    if subject.split('.').any(str::is_empty) {
        return Err(format!(
            "`{subject}` has an empty token (a leading, trailing or double dot)"
        ));
    }
    if subject.split('.').any(|t| t == "*" || t == ">") {
        return Err(format!(
            "`{subject}` has a wildcard: nodes publish on it, name one subject"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The seed's defaults; a config with a URL is valid as it is.
    #[test]
    fn defaults_are_the_seeds() {
        let c = NatsConfig::new(["nats://127.0.0.1:4222"]);
        assert_eq!(c.subject, "distcache.discovery");
        assert_eq!(c.request_timeout, Duration::from_secs(1));
        assert_eq!(c.connect_attempts, 5);
        assert_eq!(c.reconnect_wait, Duration::from_secs(2));
        assert!(c.problems().is_empty(), "{}", c.problems());
        assert!(
            NatsConfig::for_test(["127.0.0.1:4222"])
                .problems()
                .is_empty()
        );
        assert!(!c.requires_tls());
    }

    /// Every bad field is reported, by its TOML name.
    #[test]
    fn bad_fields_are_named() {
        let bad = NatsConfig {
            urls: vec![
                "nats://ok:4222".into(),
                "ws://h:80".into(),
                "nats://h:notaport".into(),
            ],
            subject: "distcache.*".into(),
            request_timeout: Duration::ZERO,
            connect_attempts: 0,
            announce_interval: Duration::from_secs(10),
            peer_timeout: Duration::from_secs(15),
            user: Some("u".into()),
            token: Some("t".into()),
            tls_cert_file: Some("c.pem".into()),
            ..NatsConfig::default()
        };
        let problems = bad.problems();
        let fields: Vec<&str> = problems.iter().map(|p| p.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "urls[1]",
                "urls[2]",
                "subject",
                "request_timeout",
                "connect_attempts",
                "peer_timeout",
                "password",
                "credentials_file",
                "tls_key_file"
            ],
            "{problems}"
        );
        assert!(problems.to_string().contains("ws://h:80"), "{problems}");
        let none = NatsConfig::default().problems();
        assert_eq!(none.iter().next().map(|p| p.field.as_str()), Some("urls"));
    }

    /// Subjects: plain dotted names only.
    #[test]
    fn subjects_are_checked() {
        for good in ["distcache.discovery", "a", "team-a.cache_1.disc"] {
            assert!(check_subject(good).is_ok(), "{good}");
        }
        for bad in ["", "a..b", ".a", "a.", "a b", "a.>", "*"] {
            assert!(check_subject(bad).is_err(), "{bad}");
        }
    }

    /// A TOML section with unknown keys is refused; durations read as humantime.
    #[test]
    fn reads_toml() {
        let c: NatsConfig = toml::from_str(
            "urls = [\"nats://a:4222\", \"nats://b:4222\"]\npeer_timeout = \"30s\"\ntoken = \"s3cret\"\n",
        )
        .expect("parses");
        assert_eq!(c.urls.len(), 2);
        assert_eq!(c.peer_timeout, Duration::from_secs(30));
        assert!(!format!("{c:?}").contains("s3cret"));
        assert!(toml::from_str::<NatsConfig>("url = \"nats://a\"").is_err());
    }
}
