//! The standard `OTEL_*` environment variables laid over an [`OtelConfig`]: environment wins
//! over the file (operators set variables in containers). The library never reads the process
//! environment: the caller passes a lookup (the binary passes `std::env::var`, tests a map).
//!
//! Read: `OTEL_SDK_DISABLED`, `OTEL_SERVICE_NAME`, `OTEL_RESOURCE_ATTRIBUTES`,
//! `OTEL_TRACES_SAMPLER`, `OTEL_TRACES_SAMPLER_ARG`, `OTEL_METRIC_EXPORT_INTERVAL` (ms),
//! `OTEL_EXPORTER_OTLP_{ENDPOINT,PROTOCOL,HEADERS,TIMEOUT}`,
//! `OTEL_EXPORTER_OTLP_{CERTIFICATE,CLIENT_CERTIFICATE,CLIENT_KEY}`, the signal-specific forms
//! `OTEL_EXPORTER_OTLP_{TRACES,METRICS}_{ENDPOINT,PROTOCOL,HEADERS,TIMEOUT}`, and
//! `OTEL_{TRACES,METRICS}_EXPORTER` (`otlp` or `none`). An empty variable counts as unset, as
//! the specification says. A bad value is an error naming the variable (and the value,
//! except for headers, which may hold secrets).

use std::collections::BTreeMap;
use std::time::Duration;

use percent_encoding::percent_decode_str;

use super::OtelError;
use super::config::{
    Exporter, OtelConfig, OtlpProtocol, SignalConfig, TracesSampler, check_endpoint, check_header,
    check_ratio,
};
use crate::error::Problems;

impl OtelConfig {
    /// This configuration with the `OTEL_*` variables that `env` returns laid over it, after
    /// checking both: every bad value at once, each named by its key (`otel.endpoint`) or
    /// variable (`OTEL_EXPORTER_OTLP_ENDPOINT`).
    ///
    /// ```
    /// use distcache::otel::OtelConfig;
    /// let env = |name: &str| (name == "OTEL_EXPORTER_OTLP_ENDPOINT").then(|| "http://127.0.0.1:4318".to_owned());
    /// let config = OtelConfig::default().resolve(env).unwrap();
    /// assert_eq!(config.endpoint.as_deref(), Some("http://127.0.0.1:4318"));
    /// ```
    pub fn resolve(
        mut self,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<OtelConfig, OtelError> {
        let mut problems = Problems::new();
        problems.extend_prefixed("otel", self.problems());
        let get = |name: &str| env(name).filter(|v| !v.trim().is_empty());
        let mut vars = Vars {
            get: &get,
            problems: &mut problems,
        };
        if let Some(disabled) = vars.parse("OTEL_SDK_DISABLED", parse_bool) {
            self.disabled = disabled;
        }
        if let Some(name) = vars.raw("OTEL_SERVICE_NAME") {
            self.service_name = Some(name.trim().to_owned());
        }
        if let Some(attrs) = vars.parse("OTEL_RESOURCE_ATTRIBUTES", |v| parse_pairs(v, false)) {
            self.resource_attributes.extend(attrs);
        }
        if let Some(sampler) = vars.parse("OTEL_TRACES_SAMPLER", parse_sampler) {
            self.traces_sampler = sampler;
        }
        if let Some(arg) = vars.parse("OTEL_TRACES_SAMPLER_ARG", parse_ratio) {
            self.traces_sampler_arg = Some(arg);
        }
        if let Some(interval) = vars.parse("OTEL_METRIC_EXPORT_INTERVAL", parse_millis) {
            self.metrics_export_interval = interval;
        }
        if let Some(protocol) = vars.parse("OTEL_EXPORTER_OTLP_PROTOCOL", parse_protocol) {
            self.protocol = protocol;
        }
        if let Some(url) = vars.parse("OTEL_EXPORTER_OTLP_ENDPOINT", |v| Ok(v.trim().to_owned())) {
            self.endpoint = Some(url);
        }
        if let Some(headers) = vars.secret("OTEL_EXPORTER_OTLP_HEADERS", |v| parse_pairs(v, true)) {
            self.headers.extend(headers);
        }
        if let Some(timeout) = vars.parse("OTEL_EXPORTER_OTLP_TIMEOUT", parse_millis) {
            self.export_timeout = timeout;
        }
        for (name, file) in [
            ("OTEL_EXPORTER_OTLP_CERTIFICATE", &mut self.tls.ca),
            ("OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE", &mut self.tls.cert),
            ("OTEL_EXPORTER_OTLP_CLIENT_KEY", &mut self.tls.key),
        ] {
            if let Some(path) = vars.raw(name) {
                *file = Some(path.trim().into());
            }
        }
        if self.tls.cert.is_some() != self.tls.key.is_some() {
            problems_of_pair(vars.problems);
        }
        vars.signal("TRACES", &mut self.traces);
        vars.signal("METRICS", &mut self.metrics);
        // Endpoints are checked against the protocol they end up with.
        let general = self.protocol;
        vars.endpoint(
            "OTEL_EXPORTER_OTLP_ENDPOINT",
            self.endpoint.as_deref(),
            general,
        );
        for (name, own) in [("TRACES", &self.traces), ("METRICS", &self.metrics)] {
            let protocol = own.protocol.unwrap_or(general);
            let var = format!("OTEL_EXPORTER_OTLP_{name}_ENDPOINT");
            vars.endpoint(&var, own.endpoint.as_deref(), protocol);
        }
        if problems.is_empty() {
            Ok(self)
        } else {
            Err(OtelError::Invalid(problems))
        }
    }
}

/// A client certificate without its key, or a key without its certificate.
fn problems_of_pair(problems: &mut Problems) {
    problems.push(
        "OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE",
        "needs OTEL_EXPORTER_OTLP_CLIENT_KEY, and the key needs the certificate",
    );
}

/// The variables of one `resolve`, and the problems found in them.
struct Vars<'a> {
    get: &'a dyn Fn(&str) -> Option<String>,
    problems: &'a mut Problems,
}

impl Vars<'_> {
    /// The value of `name`, if set.
    fn raw(&self, name: &str) -> Option<String> {
        (self.get)(name)
    }

    /// `name` parsed by `parse`; a problem naming the variable and its value when it fails.
    fn parse<T>(&mut self, name: &str, parse: impl Fn(&str) -> Result<T, String>) -> Option<T> {
        let value = self.raw(name)?;
        match parse(&value) {
            Ok(v) => Some(v),
            Err(m) => {
                self.problems.push(name, format!("`{value}`: {m}"));
                None
            }
        }
    }

    /// [`parse`](Self::parse) for a value that must not appear in messages.
    fn secret<T>(&mut self, name: &str, parse: impl Fn(&str) -> Result<T, String>) -> Option<T> {
        let value = self.raw(name)?;
        match parse(&value) {
            Ok(v) => Some(v),
            Err(m) => {
                self.problems.push(name, m);
                None
            }
        }
    }

    /// `OTEL_EXPORTER_OTLP_<SIGNAL>_*` and `OTEL_<SIGNAL>_EXPORTER` over `own`.
    fn signal(&mut self, signal: &str, own: &mut SignalConfig) {
        let var = |what: &str| format!("OTEL_EXPORTER_OTLP_{signal}_{what}");
        if let Some(exporter) = self.parse(&format!("OTEL_{signal}_EXPORTER"), parse_exporter) {
            own.exporter = exporter;
        }
        if let Some(protocol) = self.parse(&var("PROTOCOL"), parse_protocol) {
            own.protocol = Some(protocol);
        }
        if let Some(url) = self.parse(&var("ENDPOINT"), |v| Ok(v.trim().to_owned())) {
            own.endpoint = Some(url);
        }
        if let Some(headers) = self.secret(&var("HEADERS"), |v| parse_pairs(v, true)) {
            own.headers.extend(headers);
        }
        if let Some(timeout) = self.parse(&var("TIMEOUT"), parse_millis) {
            own.timeout = Some(timeout);
        }
    }

    /// Checks the endpoint `var` set, if it did.
    fn endpoint(&mut self, var: &str, url: Option<&str>, protocol: OtlpProtocol) {
        if let (Some(set), Some(url)) = (self.raw(var), url)
            && set.trim() == url
            && let Err(m) = check_endpoint(url, protocol)
        {
            self.problems.push(var, m);
        }
    }
}

/// `true` or `false`, any case.
fn parse_bool(v: &str) -> Result<bool, String> {
    match v.trim().to_ascii_lowercase().as_str() {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err("expected true or false".into()),
    }
}

fn parse_protocol(v: &str) -> Result<OtlpProtocol, String> {
    OtlpProtocol::parse(v.trim())
        .ok_or_else(|| "expected grpc, http/protobuf or http/json".to_owned())
}

fn parse_exporter(v: &str) -> Result<Exporter, String> {
    match v.trim() {
        "otlp" => Ok(Exporter::Otlp),
        "none" => Ok(Exporter::None),
        _ => Err("expected otlp or none (other exporters are not built in)".into()),
    }
}

fn parse_sampler(v: &str) -> Result<TracesSampler, String> {
    TracesSampler::parse(v.trim())
        .ok_or_else(|| format!("expected one of {}", TracesSampler::names()))
}

fn parse_ratio(v: &str) -> Result<f64, String> {
    let ratio: f64 = v
        .trim()
        .parse()
        .map_err(|_| "expected a number from 0 to 1".to_owned())?;
    check_ratio(ratio)?;
    Ok(ratio)
}

/// Whole milliseconds, more than zero.
fn parse_millis(v: &str) -> Result<Duration, String> {
    match v.trim().parse::<u64>() {
        Ok(0) => Err("must be more than 0 milliseconds".into()),
        Ok(ms) => Ok(Duration::from_millis(ms)),
        Err(_) => Err("expected whole milliseconds".into()),
    }
}

/// `k=v,k=v` with percent-encoded values (the format of `OTEL_RESOURCE_ATTRIBUTES` and
/// `OTEL_EXPORTER_OTLP_HEADERS`); `headers` also checks each as an HTTP header, without
/// repeating values in a message.
fn parse_pairs(v: &str, headers: bool) -> Result<BTreeMap<String, String>, String> {
    let mut out = BTreeMap::new();
    for (i, item) in v.split(',').enumerate() {
        if item.trim().is_empty() {
            continue;
        }
        let Some((key, value)) = item.split_once('=') else {
            let shown = if headers { "" } else { item.trim() };
            return Err(format!(
                "entry {} `{shown}` is not key=value (entries are separated by commas)",
                i + 1
            ));
        };
        let key = decode(key.trim())?;
        let value = decode(value.trim())?;
        if key.is_empty() {
            return Err(format!("entry {} has an empty key", i + 1));
        }
        if headers {
            check_header(&key, &value)?;
        }
        out.insert(key, value);
    }
    Ok(out)
}

/// A percent-decoded UTF-8 string.
fn decode(s: &str) -> Result<String, String> {
    percent_decode_str(s)
        .decode_utf8()
        .map(|c| c.into_owned())
        .map_err(|_| "a percent-encoded part is not UTF-8".to_owned())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn pairs_are_split_trimmed_and_percent_decoded() {
        let pairs = parse_pairs(" a = b%20c , d=e%2Cf,", false).unwrap();
        assert_eq!(pairs["a"], "b c");
        assert_eq!(pairs["d"], "e,f");
        assert_eq!(pairs.len(), 2);
        assert!(parse_pairs("a=b,oops", false).unwrap_err().contains("oops"));
        let secret = parse_pairs("api-key=s3cr%FF", true).unwrap_err();
        assert!(!secret.contains("s3cr"), "{secret}");
    }

    #[test]
    fn millis_and_ratios_are_checked() {
        assert_eq!(parse_millis("1500"), Ok(Duration::from_millis(1500)));
        assert!(parse_millis("0").is_err());
        assert!(parse_millis("1s").is_err());
        assert_eq!(parse_ratio("0.25"), Ok(0.25));
        assert!(parse_ratio("1.5").is_err());
        assert!(parse_ratio("half").is_err());
    }
}
