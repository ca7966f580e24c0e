//! How `[otel]` and the `OTEL_*` variables resolve: variables win over the file, the
//! service name falls back as the specification says, and every bad value is named.

use std::time::Duration;

use distcache::otel::{Exporter, OtelConfig, OtelError, OtlpProtocol, TracesSampler};

use super::env;

/// Variables win over the `[otel]` table; the table's values stay where no variable is set.
#[test]
fn variables_win_over_the_file() {
    let file: OtelConfig = toml::from_str(
        r#"
        endpoint = "http://collector.file:4318"
        protocol = "http/json"
        service_name = "from-file"
        traces_sampler = "always_off"
        metrics_export_interval = "30s"
        export_timeout = "3s"
        resource_attributes = { region = "eu", team = "cache" }
        headers = { x-tenant = "file" }
        [metrics]
        exporter = "none"
        "#,
    )
    .unwrap();
    let resolved = file
        .clone()
        .resolve(env(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector.env:4317"),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
            ("OTEL_SERVICE_NAME", "from-env"),
            (
                "OTEL_RESOURCE_ATTRIBUTES",
                "region=us%20east,k8s.pod.name=p-1",
            ),
            ("OTEL_TRACES_SAMPLER", "parentbased_traceidratio"),
            ("OTEL_TRACES_SAMPLER_ARG", "0.25"),
            ("OTEL_METRIC_EXPORT_INTERVAL", "1500"),
            ("OTEL_EXPORTER_OTLP_HEADERS", "authorization=Bearer%20abc"),
            ("OTEL_EXPORTER_OTLP_TRACES_HEADERS", "x-tenant=env"),
            ("OTEL_METRICS_EXPORTER", "otlp"),
            ("OTEL_SDK_DISABLED", ""), // empty: unset
        ]))
        .unwrap();
    assert_eq!(
        resolved.endpoint.as_deref(),
        Some("http://collector.env:4317")
    );
    assert_eq!(resolved.protocol, OtlpProtocol::Grpc);
    assert_eq!(resolved.service_name.as_deref(), Some("from-env"));
    assert_eq!(resolved.resource_attributes["region"], "us east");
    assert_eq!(resolved.resource_attributes["team"], "cache");
    assert_eq!(resolved.resource_attributes["k8s.pod.name"], "p-1");
    assert_eq!(
        resolved.traces_sampler,
        TracesSampler::ParentBasedTraceIdRatio
    );
    assert_eq!(resolved.traces_sampler_arg, Some(0.25));
    assert_eq!(
        resolved.metrics_export_interval,
        Duration::from_millis(1500)
    );
    assert_eq!(resolved.export_timeout, Duration::from_secs(3));
    assert_eq!(resolved.headers["authorization"], "Bearer abc");
    assert_eq!(resolved.headers["x-tenant"], "file");
    assert_eq!(resolved.traces.headers["x-tenant"], "env");
    assert_eq!(resolved.metrics.exporter, Exporter::Otlp);
    assert!(!resolved.disabled);
    // Without variables the file stands.
    let alone = file.clone().resolve(env(&[])).unwrap();
    assert_eq!(alone, file);
    assert_eq!(alone.effective_service_name(), "from-file");
}

/// `service.name` comes from `OTEL_SERVICE_NAME`, else `OTEL_RESOURCE_ATTRIBUTES`, else
/// `distcache`.
#[test]
fn the_service_name_falls_back_as_the_specification_says() {
    let from_attrs = OtelConfig::default()
        .resolve(env(&[(
            "OTEL_RESOURCE_ATTRIBUTES",
            "service.name=cache-eu",
        )]))
        .unwrap();
    assert_eq!(from_attrs.effective_service_name(), "cache-eu");
    assert_eq!(OtelConfig::default().effective_service_name(), "distcache");
}

/// Every bad variable is an error naming it, all at once.
#[test]
fn every_bad_variable_is_named() {
    let bad = [
        ("OTEL_SDK_DISABLED", "yes please"),
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "collector:4318"),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/xml"),
        ("OTEL_RESOURCE_ATTRIBUTES", "region"),
        ("OTEL_TRACES_SAMPLER", "sometimes"),
        ("OTEL_TRACES_SAMPLER_ARG", "2"),
        ("OTEL_METRIC_EXPORT_INTERVAL", "60s"),
        ("OTEL_EXPORTER_OTLP_HEADERS", "bad header=secret-value"),
        ("OTEL_EXPORTER_OTLP_TIMEOUT", "0"),
        ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "ftp://x"),
        ("OTEL_EXPORTER_OTLP_METRICS_PROTOCOL", "udp"),
        ("OTEL_TRACES_EXPORTER", "jaeger"),
    ];
    for (var, value) in bad {
        let err = OtelConfig::default()
            .resolve(env(&[(var, value)]))
            .unwrap_err();
        let text = err.to_string();
        assert!(matches!(err, OtelError::Invalid(_)), "{var}: {text}");
        assert!(text.contains(var), "{var} not named: {text}");
        if var.ends_with("HEADERS") {
            assert!(
                !text.contains("secret-value"),
                "a header value leaked: {text}"
            );
        } else {
            assert!(text.contains(value), "{value} not shown: {text}");
        }
    }
    let Err(OtelError::Invalid(all)) = OtelConfig::default().resolve(env(&bad)) else {
        panic!("bad variables accepted");
    };
    assert_eq!(all.0.len(), bad.len(), "{all}");
}

/// Bad values in the `[otel]` table are named by their key; unknown keys are refused.
#[test]
fn bad_file_values_are_named_by_key() {
    let file: OtelConfig = toml::from_str(
        r#"
        endpoint = "not a url"
        traces_sampler_arg = -1.0
        export_timeout = "0s"
        [traces]
        endpoint = "ftp://collector:4317"
        protocol = "grpc"
        [tls]
        cert = "/etc/node.pem"
        "#,
    )
    .unwrap();
    let text = file.resolve(env(&[])).unwrap_err().to_string();
    for key in [
        "otel.endpoint",
        "otel.traces_sampler_arg",
        "otel.export_timeout",
        "otel.traces.endpoint",
        "otel.tls.key",
    ] {
        assert!(text.contains(key), "{key} not named: {text}");
    }
    let unknown = toml::from_str::<OtelConfig>("endpoint_url = \"http://x\"").unwrap_err();
    assert!(unknown.to_string().contains("endpoint_url"), "{unknown}");
    let sampler = toml::from_str::<OtelConfig>("traces_sampler = \"sometimes\"").unwrap_err();
    assert!(sampler.to_string().contains("sometimes"), "{sampler}");
}

/// The example node files carry an `[otel]` table that parses, with the defaults.
#[test]
fn the_example_node_files_have_a_valid_otel_table() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/cluster");
    for n in 1..=3 {
        let text = std::fs::read_to_string(dir.join(format!("node-{n}.toml"))).unwrap();
        let config: distcache::NodeConfig = toml::from_str(&text).unwrap();
        assert_eq!(config.otel, OtelConfig::default(), "node-{n}.toml");
        assert!(config.problems().is_empty(), "{}", config.problems());
    }
}

/// `OTEL_EXPORTER_OTLP_CERTIFICATE` and the client pair are read; half a pair is named.
#[test]
fn tls_variables_are_read_and_half_a_pair_is_named() {
    let config = OtelConfig::default()
        .resolve(env(&[
            ("OTEL_EXPORTER_OTLP_CERTIFICATE", "/etc/ca.pem"),
            ("OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE", "/etc/node.pem"),
            ("OTEL_EXPORTER_OTLP_CLIENT_KEY", "/etc/node-key.pem"),
        ]))
        .unwrap();
    assert_eq!(
        config.tls.ca.as_deref(),
        Some(std::path::Path::new("/etc/ca.pem"))
    );
    assert_eq!(
        config.tls.key.as_deref(),
        Some(std::path::Path::new("/etc/node-key.pem"))
    );
    let err = OtelConfig::default()
        .resolve(env(&[(
            "OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE",
            "/etc/node.pem",
        )]))
        .unwrap_err();
    assert!(
        err.to_string().contains("OTEL_EXPORTER_OTLP_CLIENT_KEY"),
        "{err}"
    );
}
