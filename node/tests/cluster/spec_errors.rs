//! Keyspace specs that are refused name the field and the problem (issue 12): numbers that
//! are no byte size, text that is no duration, values over the documented maxima.

use reqwest::StatusCode;
use serde_json::Value;

use distcache_testkit::TestCluster;

/// Each bad spec is a 400 INVALID_SPEC naming its field, and creates nothing.
#[tokio::test]
async fn issue_12_refused_specs_name_field_and_limit() {
    let cluster = TestCluster::start(1).await;
    let http = reqwest::Client::new();
    let url = format!("http://{}/v1/keyspaces/bad", cluster.addrs[0]);
    for (body, field, mentions) in [
        (r#"{"max_bytes":-1}"#, "max_bytes", "negative"),
        (r#"{"max_bytes":1e30}"#, "max_bytes", "whole number"),
        (r#"{"max_bytes":"1000000TiB"}"#, "max_bytes", "maximum"),
        (
            r#"{"max_bytes":18446744073709551615}"#,
            "max_bytes",
            "maximum",
        ),
        (r#"{"default_ttl":"soon"}"#, "default_ttl", "soon"),
        (
            r#"{"circuit_breaker":{"failure_threshold":1,"reset_timeout":"300000000000y"}}"#,
            "circuit_breaker.reset_timeout",
            "maximum",
        ),
        (
            r#"{"rate_limit":{"requests_per_second":1,"burst":1,"wait_timeout":"300000000000y"}}"#,
            "rate_limit.wait_timeout",
            "maximum",
        ),
    ] {
        let response = http.put(&url).body(body).send().await.unwrap();
        let status = response.status();
        let v: Value = response.json().await.unwrap();
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}: {v}");
        assert_eq!(v["code"], "INVALID_SPEC", "{body}: {v}");
        let problems = v["problems"].as_array().expect("problems");
        assert!(
            problems
                .iter()
                .any(|p| p["field"] == field && p["message"].as_str().unwrap().contains(mentions)),
            "{body}: expected `{field}` … `{mentions}` in {v}"
        );
    }
    let missing = http.get(&url).send().await.unwrap().status();
    assert_eq!(missing, StatusCode::NOT_FOUND, "nothing was created");
    cluster.shutdown().await;
}
