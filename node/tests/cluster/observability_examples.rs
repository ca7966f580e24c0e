//! `examples/observability/` kept honest: every metric the Grafana dashboard and the alert
//! rules name is a family on a live node's `/metrics`, the dashboard is JSON with the
//! variables Grafana needs to import it, each alert rule has what the README promises, and the
//! scrape config points at the cluster `scripts/cluster.sh` starts.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use distcache_testkit::{TestCluster, spec};
use prom_text_format_parser::Scrape;
use serde_json::Value;

/// The repository root (this crate lives in `node/`).
fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

fn read(path: &str) -> String {
    let path = repo().join(path);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn dashboard() -> Value {
    serde_json::from_str(&read("examples/observability/grafana-dashboard.json"))
        .unwrap_or_else(|e| panic!("grafana-dashboard.json is not JSON: {e}"))
}

/// The metric names in `text`: identifiers that start with `distcache_` or `http_server_`
/// (label names such as `http_route` do not), histogram series suffixes stripped. Recording
/// rules (`distcache:…`) are not metrics of the node and are left out.
fn metric_names(text: &str) -> BTreeSet<String> {
    text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
        .map(|t| t.trim_end_matches(':')) // "distcache_x: how long …" in a description
        .filter(|t| t.starts_with("distcache_") || t.starts_with("http_server_"))
        .map(|t| {
            ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|suffix| t.strip_suffix(suffix))
                .unwrap_or(t)
                .to_owned()
        })
        .collect()
}

/// Every string in a JSON document: queries, variable definitions, descriptions.
fn strings(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::String(s) => out.push(s.clone()),
        Value::Array(items) => items.iter().for_each(|v| strings(v, out)),
        Value::Object(map) => map.values().for_each(|v| strings(v, out)),
        _ => {}
    }
}

/// One rule of a rules file, read line by line (no YAML crate in the workspace): its kind
/// (`alert` or `record`), its name, and the keys it sets, nested ones as `labels.severity`.
#[derive(Debug)]
struct Rule {
    line: usize,
    kind: String,
    name: String,
    keys: BTreeMap<String, String>,
}

/// The rules of a Prometheus rules file: each starts at a `- alert:` or `- record:` item and
/// holds the lines indented under it. Block scalars (`expr: |`) are skipped over.
fn rules(yaml: &str) -> Vec<Rule> {
    let mut rules: Vec<Rule> = Vec::new();
    let mut item_indent = usize::MAX;
    let mut parent = String::new();
    for (n, line) in yaml.lines().enumerate() {
        let text = line.trim_start();
        if text.is_empty() || text.starts_with('#') {
            continue;
        }
        let indent = line.len() - text.len();
        let start = ["alert", "record"]
            .into_iter()
            .find(|kind| text.starts_with(&format!("- {kind}:")));
        if let Some(kind) = start {
            let name = text[kind.len() + 3..].trim().to_owned();
            rules.push(Rule {
                line: n + 1,
                kind: kind.to_owned(),
                name,
                keys: BTreeMap::new(),
            });
            item_indent = indent;
            parent.clear();
            continue;
        }
        let Some(rule) = rules.last_mut() else {
            continue;
        };
        if indent <= item_indent {
            item_indent = usize::MAX; // out of the rule (a new group, the end of the list)
            continue;
        }
        let Some((key, value)) = text.split_once(':') else {
            continue;
        };
        let is_key = !key.is_empty() && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !is_key {
            continue;
        }
        if indent == item_indent + 2 {
            parent = key.to_owned();
            rule.keys.insert(key.to_owned(), value.trim().to_owned());
        } else if indent == item_indent + 4 && (parent == "labels" || parent == "annotations") {
            rule.keys
                .insert(format!("{parent}.{key}"), value.trim().to_owned());
        }
    }
    rules
}

/// The dashboard parses, has the datasource and keyspace variables, and every panel queries
/// the chosen Prometheus data source.
#[test]
fn dashboard_is_importable() {
    let dashboard = dashboard();
    let schema = dashboard["schemaVersion"].as_u64().unwrap_or(0);
    assert!((36..=41).contains(&schema), "schemaVersion {schema}");
    assert!(dashboard["uid"].is_string() && dashboard["title"].is_string());
    let variables = dashboard["templating"]["list"].as_array().unwrap();
    let variable = |name: &str| {
        variables
            .iter()
            .find(|v| v["name"] == name)
            .unwrap_or_else(|| panic!("no `{name}` variable"))
    };
    assert_eq!(variable("datasource")["type"], "datasource");
    assert_eq!(variable("datasource")["query"], "prometheus");
    assert_eq!(
        variable("keyspace")["definition"],
        "label_values(distcache_cache_hits_total, keyspace)"
    );

    let panels = dashboard["panels"].as_array().unwrap();
    let mut ids = BTreeSet::new();
    let mut queries = 0;
    for panel in panels {
        let title = panel["title"].as_str().unwrap_or("?");
        assert!(
            ids.insert(panel["id"].as_u64()),
            "panel id of `{title}` used twice"
        );
        if panel["type"] == "row" {
            continue;
        }
        assert_eq!(
            panel["datasource"]["uid"], "${datasource}",
            "panel `{title}`"
        );
        let targets = panel["targets"].as_array().unwrap();
        assert!(!targets.is_empty(), "panel `{title}` has no query");
        for target in targets {
            let expr = target["expr"].as_str().unwrap_or("");
            assert!(
                !expr.trim().is_empty(),
                "panel `{title}` has an empty query"
            );
            assert_eq!(
                target["datasource"]["uid"], "${datasource}",
                "panel `{title}`"
            );
            queries += 1;
        }
    }
    assert!(queries >= 20, "only {queries} queries");
}

/// Every alert has an expression, a `for`, a severity and a summary; the alerts the README
/// describes are there; recording rules have an expression.
#[test]
fn alert_rules_are_complete() {
    let rules = rules(&read("examples/observability/alerts.yml"));
    let alerts: Vec<&Rule> = rules.iter().filter(|r| r.kind == "alert").collect();
    for rule in &rules {
        let needed: &[&str] = if rule.kind == "alert" {
            &["expr", "for", "labels.severity", "annotations.summary"]
        } else {
            &["expr"]
        };
        for key in needed {
            let value = rule.keys.get(*key).map(String::as_str);
            assert!(
                value.is_some_and(|v| !v.is_empty()),
                "rule `{}` (alerts.yml line {}) has no {key}: {:?}",
                rule.name,
                rule.line,
                rule.keys
            );
        }
        if rule.kind == "alert" {
            let severity = &rule.keys["labels.severity"];
            assert!(
                severity == "critical" || severity == "warning",
                "rule `{}`: severity {severity}",
                rule.name
            );
            let wait = rule.keys["for"].trim_end_matches(['s', 'm', 'h']);
            assert!(
                wait.parse::<u32>().is_ok(),
                "rule `{}`: for {wait}",
                rule.name
            );
        }
    }
    let names: BTreeSet<&str> = alerts.iter().map(|r| r.name.as_str()).collect();
    for wanted in [
        "DistcacheBreakerOpen",
        "DistcacheNoRaftLeader",
        "DistcacheHitRatioDrop",
        "DistcacheNodeDown",
        "DistcacheSourceErrors",
        "DistcacheGetLatencyHigh",
    ] {
        assert!(names.contains(wanted), "no alert {wanted} in {names:?}");
    }
    assert_eq!(names.len(), alerts.len(), "an alert name is used twice");
}

/// The scrape config targets the nodes `scripts/cluster.sh up 3` starts and loads the rules.
#[test]
fn scrape_config_matches_the_local_cluster() {
    let script = read("scripts/cluster.sh");
    let base: u16 = script
        .split("BASE_PORT:-")
        .nth(1)
        .and_then(|rest| rest.split('}').next())
        .and_then(|port| port.parse().ok())
        .expect("cluster.sh has a default BASE_PORT");
    let config = read("examples/observability/prometheus.yml");
    for i in 0..3u16 {
        let target = format!("\"127.0.0.1:{}\"", base + i);
        assert!(config.contains(&target), "prometheus.yml lacks {target}");
        let node = format!("node: node-{}", i + 1);
        assert!(config.contains(&node), "prometheus.yml lacks {node}");
    }
    assert!(
        config.contains("- alerts.yml"),
        "prometheus.yml does not load alerts.yml"
    );
    assert!(config.contains("job_name: distcache"));
}

/// The metric families of one node's `/metrics`, as a parser reads them: each family's name,
/// and for histograms the names of their `_bucket`, `_sum` and `_count` samples.
async fn families(addr: &str) -> BTreeSet<String> {
    let text = reqwest::get(format!("http://{addr}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let scrape = Scrape::parse(&text).unwrap();
    let mut names = BTreeSet::new();
    for metric in scrape.metrics {
        if metric.kind == prom_text_format_parser::Type::Histogram {
            for suffix in ["_bucket", "_sum", "_count"] {
                names.insert(format!("{}{suffix}", metric.name));
            }
        }
        names.insert(metric.name);
    }
    names
}

/// Every metric the dashboard and the alerts name is exported by a live cluster after a put,
/// a hit, a miss, a not-found, a failed fetch, a read through a non-owner and a catalog
/// change. Fails listing every missing name and which example uses it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_metric_the_examples_name_is_exported() {
    let mut texts = Vec::new();
    strings(&dashboard(), &mut texts);
    let mut wanted: BTreeMap<String, BTreeSet<&str>> = BTreeMap::new();
    for name in metric_names(&texts.join("\n")) {
        wanted
            .entry(name)
            .or_default()
            .insert("grafana-dashboard.json");
    }
    for name in metric_names(&read("examples/observability/alerts.yml")) {
        wanted.entry(name).or_default().insert("alerts.yml");
    }
    assert!(wanted.len() >= 20, "too few names found: {wanted:?}");

    let cluster = TestCluster::start(2).await;
    cluster.wait_converged().await;
    let engine = cluster.node(0).engine();
    engine.put("ks", "put-a", "v").await.unwrap();
    engine.get("ks", "put-a").await.unwrap(); // a hit
    engine.get("ks", "a").await.unwrap(); // a miss, loaded
    engine.get("ks", "missing-a").await.unwrap(); // not found
    engine.get("ks", "fail-a").await.unwrap_err(); // a failed fetch
    let remote = cluster.key_owned_by("ks", 1, "remote-");
    engine.get("ks", &remote).await.unwrap(); // through the owner, node 1
    engine.get("ks", &remote).await.unwrap(); // a hot-cache hit
    cluster.client(0).get("ks", "a").await.unwrap(); // over HTTP
    engine.create_keyspace(spec("obs")).await.unwrap(); // a raft commit

    let mut exported = BTreeSet::new();
    for addr in &cluster.addrs {
        exported.extend(families(addr).await);
        exported.extend(families(addr).await); // the first scrape is an HTTP request too
    }
    cluster.shutdown().await;

    // Counters are `name_total` in the 0.0.4 text format and `name` in OpenMetrics' `# HELP`.
    let is_exported = |name: &str| {
        exported.contains(name)
            || name
                .strip_suffix("_total")
                .is_some_and(|family| exported.contains(family))
    };
    let missing: Vec<String> = wanted
        .iter()
        .filter(|(name, _)| !is_exported(name))
        .map(|(name, used)| format!("{name} (in {})", Vec::from_iter(used.clone()).join(", ")))
        .collect();
    assert!(
        missing.is_empty(),
        "{} metric(s) named in examples/observability are not on /metrics:\n  {}\nexported: {exported:?}",
        missing.len(),
        missing.join("\n  ")
    );
}
