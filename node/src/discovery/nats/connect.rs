//! Reaching NATS: the client's options from the configuration (authentication, TLS,
//! timeouts), bounded connect attempts at start-up, and the backoff between reconnects.

use std::time::Duration;

use async_nats::{Client, ConnectErrorKind, ConnectOptions, Event, ServerAddr};
use tokio::sync::mpsc;

use super::NatsConfig;
use crate::error::{Error, Problems, Result};

/// Pauses between reconnect attempts grow up to this many times `reconnect_wait`.
const MAX_BACKOFF_FACTOR: u32 = 8;

/// Connects to one of the configured servers, trying `connect_attempts` times
/// `reconnect_wait` apart; the error names the URLs and the last failure.
pub(super) async fn connect(
    config: &NatsConfig,
    id: &str,
    events: mpsc::UnboundedSender<Event>,
) -> Result<Client> {
    let addrs = config
        .urls
        .iter()
        .map(|u| u.trim().parse::<ServerAddr>())
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| invalid("urls", e.to_string()))?;
    let urls = config.urls.join(", ");
    let mut last = String::new();
    let mut attempts = 0;
    while attempts < config.connect_attempts {
        attempts += 1;
        let options = options(config, id, events.clone()).await?;
        match options.connect(addrs.clone()).await {
            Ok(client) => {
                tracing::info!(urls = %urls, attempts, "nats discovery: connected");
                return Ok(client);
            }
            Err(e) => {
                last = with_causes(&e);
                let hopeless = matches!(
                    e.kind(),
                    ConnectErrorKind::Authentication
                        | ConnectErrorKind::AuthorizationViolation
                        | ConnectErrorKind::Tls
                );
                tracing::warn!(urls = %urls, attempt = attempts, of = config.connect_attempts, error = %last, "nats discovery: cannot connect");
                if hopeless {
                    break;
                }
                if attempts < config.connect_attempts {
                    tokio::time::sleep(config.reconnect_wait).await;
                }
            }
        }
    }
    Err(Error::Unavailable(format!(
        "nats discovery: cannot connect to {urls} after {attempts} attempt{}: {last}",
        if attempts == 1 { "" } else { "s" }
    )))
}

/// The client's options: authentication, TLS, timeouts, reconnect backoff, and `events`
/// told of connection changes.
async fn options(
    config: &NatsConfig,
    id: &str,
    events: mpsc::UnboundedSender<Event>,
) -> Result<ConnectOptions> {
    let wait = config.reconnect_wait;
    let mut options = ConnectOptions::new()
        .name(format!("distcache {id}"))
        .no_echo()
        .connection_timeout(config.request_timeout)
        .request_timeout(Some(config.request_timeout))
        .ping_interval(config.announce_interval.max(Duration::from_secs(1)))
        .max_reconnects(None)
        .reconnect_delay_callback(move |attempt| backoff(wait, attempt))
        .event_callback(move |event| {
            let events = events.clone();
            async move {
                let _ = events.send(event);
            }
        });
    if let Some(path) = &config.credentials_file {
        options = options.credentials_file(path).await.map_err(|e| {
            invalid(
                "credentials_file",
                format!("cannot read {}: {e}", path.display()),
            )
        })?;
    }
    if let (Some(user), Some(password)) = (&config.user, &config.password) {
        options = options.user_and_password(user.clone(), password.clone());
    }
    if let Some(token) = &config.token {
        options = options.token(token.clone());
    }
    for (field, path) in [
        ("tls_ca_file", &config.tls_ca_file),
        ("tls_cert_file", &config.tls_cert_file),
        ("tls_key_file", &config.tls_key_file),
    ] {
        if let Some(path) = path
            && let Err(e) = std::fs::metadata(path)
        {
            return Err(invalid(
                field,
                format!("cannot read {}: {e}", path.display()),
            ));
        }
    }
    if let Some(ca) = &config.tls_ca_file {
        options = options.add_root_certificates(ca.clone());
    }
    if let (Some(cert), Some(key)) = (&config.tls_cert_file, &config.tls_key_file) {
        options = options.add_client_certificate(cert.clone(), key.clone());
    }
    if config.requires_tls() {
        options = options.require_tls(true);
    }
    Ok(options)
}

/// The pause before reconnect attempt `attempt` (1 first): none, then `wait`, doubling up to
/// [`MAX_BACKOFF_FACTOR`] times it.
fn backoff(wait: Duration, attempt: usize) -> Duration {
    if attempt <= 1 {
        return Duration::ZERO;
    }
    let doublings = u32::try_from(attempt - 2).unwrap_or(u32::MAX).min(3);
    wait.saturating_mul((1u32 << doublings).min(MAX_BACKOFF_FACTOR))
}

/// `e` and its causes (`a: b: c`), each cause once: async-nats errors repeat their source in
/// their own message.
pub(super) fn with_causes(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text = format!("{text}: {cause_text}");
        }
        source = cause.source();
    }
    text
}

/// A configuration error about `field`.
fn invalid(field: &str, message: String) -> Error {
    let mut problems = Problems::new();
    problems.push(field, message);
    Error::InvalidConfig(problems)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reconnects wait nothing first, then `reconnect_wait`, doubling to 8 times it.
    #[test]
    fn backoff_doubles_up_to_a_bound() {
        let w = Duration::from_secs(2);
        let pauses: Vec<u64> = (1..=7).map(|a| backoff(w, a).as_secs()).collect();
        assert_eq!(pauses, [0, 2, 4, 8, 16, 16, 16]);
        assert_eq!(backoff(w, usize::MAX), Duration::from_secs(16));
    }
}
