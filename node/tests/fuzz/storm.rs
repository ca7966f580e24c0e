//! A bounded storm of malformed requests against a live node, from a seeded generator:
//! random methods, paths with odd bytes and bad percent-encoding, wrong or absent or huge
//! content lengths, bad JSON bodies, bad headers (tokens, deadlines, revisions, hops, trace
//! context) and bodies cut short, across every route family. The node must answer no 5xx
//! but the documented 503 and 504, answer every request that is valid HTTP, keep serving,
//! and never panic. `DISTCACHE_FUZZ_SEED` replays another storm.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use proptest::prelude::RngExt;
use proptest::test_runner::{RngAlgorithm, TestRng};

use distcache_testkit::wait_until;

use crate::live::{TOKEN, assert_no_panic, live, request, send};
use crate::routes::encode;

/// Requests each worker sends, and workers at once.
const PER_WORKER: usize = 400;
const WORKERS: usize = 8;

/// The storm's seed unless `DISTCACHE_FUZZ_SEED` names another.
const SEED: u64 = 0x5eed_d15c_ac4e;

/// Request targets of every route family; `{ks}`, `{key}`, `{id}` and `{ttl}` are filled in.
const TARGETS: &[&str] = &[
    "/v1/keyspaces",
    "/v1/keyspaces?names={key}",
    "/v1/keyspaces/{ks}",
    "/v1/keyspaces/{ks}?expected_revision={id}",
    "/v1/keyspaces/{ks}/keys/{key}",
    "/v1/keyspaces/{ks}/keys/{key}?ttl={ttl}",
    "/v1/keyspaces/{ks}/keys?key={key}",
    "/v1/keyspaces/{ks}/keys?key={key}&ttl={ttl}",
    "/v1/keyspaces/{ks}/keys/",
    "/v1/keyspaces/{ks}/get-many",
    "/v1/keyspaces/{ks}/put-many",
    "/v1/keyspaces/{ks}/delete-many",
    "/_distcache/admin/peers",
    "/_distcache/admin/keyspaces",
    "/_distcache/admin/cluster",
    "/_distcache/admin/owner/{ks}/{key}",
    "/_distcache/admin/owner/{ks}?key={key}",
    "/_distcache/admin/keyspaces/{ks}/warmup",
    "/_distcache/admin/warmups",
    "/_distcache/admin/warmups/{id}",
    "/_distcache/peer/keyspaces/{ks}/keys?key={key}",
    "/_distcache/peer/keyspaces/{ks}/keys/{key}",
    "/_distcache/peer/keyspaces/{ks}/get-many",
    "/_distcache/peer/keyspaces/{ks}/put-many",
    "/_distcache/peer/keyspaces/{ks}/delete-many",
    "/_distcache/peer/keyspaces/{ks}/invalidate",
    "/_distcache/peer/keyspaces/{ks}/warm",
    "/_distcache/peer/hot",
    "/_distcache/peer/flush",
    "/_distcache/peer/leaving",
    "/_distcache/peer/handoff?to={key}",
    "/_distcache/raft/append",
    "/_distcache/raft/vote",
    "/_distcache/raft/snapshot",
    "/_distcache/raft/write",
    "/_distcache/raft/join",
    "/_distcache/raft/leave",
    "/_distcache/raft/status",
    "/metrics",
    "/healthz",
    "/readyz",
    "/openapi.json",
    "/{key}",
];

/// Bodies near what the routes read, each broken somewhere, and a few valid ones.
const BODIES: &[&str] = &[
    r#"{"keys":["a","b"]}"#,
    r#"{"keys":"a"}"#,
    r#"{"keys":[1,null]}"#,
    r#"{"keys":["a"],"more":1}"#,
    r#"{"entries":[{"key":"a","value":"dmFsdWU="}]}"#,
    r#"{"entries":[{"key":"a","value":"@@"}]}"#,
    r#"{"entries":[{"key":"a","value":"","ttl":"-5m"}]}"#,
    r#"{"entries":[{"key":"a","value":"","ttl":"99999999999999999999999h"}]}"#,
    r#"{"name":"fuzzed","max_bytes":"lots"}"#,
    r#"{"name":"","source":{"kind":"sqlite"}}"#,
    r#"{"name":"x/y","max_bytes":-1,"default_ttl":"0s"}"#,
    r#"{"name":"fuzzed","rate_limit":{"requests_per_second":1e-300,"burst":0}}"#,
    r#"{"status":"ok","node_id":"nobody","addr":"127.0.0.1:1","ready":true}"#,
    r#"{"status":"ok","node_id":7}"#,
    r#"{"change":{"op":"put","name":"poison","spec":{"name":"poison","max_bytes":0}},"expected_revision":null}"#,
    r#"{"change":{"op":"put","name":"poison2","spec":{"name":"poison2","rate_limit":{"requests_per_second":1e-300,"burst":0,"wait_timeout":"0s"}}}}"#,
    r#"{"change":{"op":"put","name":"poison3","spec":42}}"#,
    r#"{"change":{"op":"put","name":"","spec":{"name":"","max_bytes":18446744073709551615,"default_ttl":"50000y"}}}"#,
    r#"{"change":{"op":"delete","names":[]}}"#,
    r#"{"change":{"op":"seed","entries":[["s",{"name":"s","circuit_breaker":{"failure_threshold":0,"reset_timeout":"0s"}}]]}}"#,
    r#"{"change":{"op":"drop_table"}}"#,
    r#"{"vote":{"leader_id":{"term":"x"}}}"#,
    r#"{"name":"x"}"#,
    r#"{"keys":null}"#,
    r#"[]"#,
    r#"null"#,
    r#"{"#,
    "\u{feff}{}",
];

/// Request headers that must be ignored or refused cleanly.
const HEADERS: &[&str] = &[
    "x-distcache-deadline: soon",
    "x-distcache-deadline: -1",
    "x-distcache-deadline: 99999999999999999999",
    "x-distcache-revision: 18446744073709551615",
    "x-distcache-revision: 2",
    "x-distcache-revision: -3",
    "x-distcache-hops: 0",
    "x-distcache-hops: 255",
    "x-distcache-hops: 99999",
    "x-distcache-hop: \u{7f}",
    "traceparent: 00-zzzz-yyyy-01",
    "traceparent: 00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
    "tracestate: ,,,=",
    "content-type: application/json",
    "content-type: text/plain; charset=ebcdic",
    "expect: 100-continue",
    "accept-encoding: gzip, br",
    "x-forwarded-for: 10.0.0.1",
];

/// Authorization headers: mostly the token, else wrong ones.
fn authorization(rng: &mut TestRng) -> String {
    match rng.random_range(0..30) {
        0 => String::new(),
        1 => "authorization: Bearer wrong\r\n".into(),
        2 => "authorization: Bearer\r\n".into(),
        3 => format!("authorization: Basic {TOKEN}\r\n"),
        4 => format!("authorization: bearer  {TOKEN} \r\n"),
        5 => format!("authorization: Bearer {}\r\n", "x".repeat(5000)),
        _ => format!("authorization: Bearer {TOKEN}\r\n"),
    }
}

/// A value for a placeholder: valid, encoded random bytes, badly encoded, raw odd bytes, long.
fn filler(rng: &mut TestRng, valid: &[&str]) -> (Vec<u8>, bool) {
    let random: Vec<u8> = (0..rng.random_range(0..24)).map(|_| rng.random()).collect();
    match rng.random_range(0..10) {
        0..=3 => (
            valid[rng.random_range(0..valid.len())].as_bytes().to_vec(),
            true,
        ),
        4 | 5 => (encode(&random).into_bytes(), true),
        6 => {
            let bad = ["%", "%G", "%zz", "%C3%28", "%FF", "%00", "%2F..%2F", "%%%"];
            (
                bad[rng.random_range(0..bad.len())].as_bytes().to_vec(),
                true,
            )
        }
        7 => ("k".repeat(rng.random_range(200..20_000)).into_bytes(), true),
        // Raw bytes: HTTP framing only if none of them breaks the request line.
        _ => {
            let framed = random.iter().all(|b| b.is_ascii_graphic() && *b != b'#');
            (random, framed)
        }
    }
}

/// One storm request and whether it is valid HTTP/1.1 framing (so it must be answered).
fn storm_request(rng: &mut TestRng) -> (Vec<u8>, bool) {
    let mut framed = true;
    let methods = [
        "GET", "POST", "GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "TRACE", "G@T",
    ];
    let method = methods[rng.random_range(0..methods.len())];
    let template = TARGETS[rng.random_range(0..TARGETS.len())];
    let mut target = Vec::new();
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        target.extend_from_slice(&rest.as_bytes()[..open]);
        let close = open + rest[open..].find('}').unwrap_or(0);
        let (value, ok) = match &rest[open + 1..close] {
            "ks" => filler(rng, &["ks", "kv", "nope", ""]),
            "key" => filler(rng, &["a", "k1", "user:1", "missing-1", "%2F", ".", ".."]),
            "id" => filler(rng, &["0", "1", "18446744073709551615", "-1", "1e3"]),
            _ => filler(
                rng,
                &["5m", "0s", "-1s", "1y", "100000000000000000000h", ""],
            ),
        };
        framed &= ok;
        target.extend_from_slice(&value);
        rest = &rest[close + 1..];
    }
    target.extend_from_slice(rest.as_bytes());
    let body: Vec<u8> = match rng.random_range(0..6) {
        0 => Vec::new(),
        1 => (0..rng.random_range(0..256))
            .map(|_| rng.random())
            .collect(),
        _ => BODIES[rng.random_range(0..BODIES.len())]
            .as_bytes()
            .to_vec(),
    };
    let mut head = Vec::new();
    head.extend_from_slice(method.as_bytes());
    head.push(b' ');
    head.extend_from_slice(&target);
    head.extend_from_slice(b" HTTP/1.1\r\nhost: storm\r\nconnection: close\r\n");
    head.extend_from_slice(authorization(rng).as_bytes());
    for _ in 0..rng.random_range(0..3) {
        head.extend_from_slice(HEADERS[rng.random_range(0..HEADERS.len())].as_bytes());
        head.extend_from_slice(b"\r\n");
    }
    let sent = match rng.random_range(0..40) {
        // No length at all: the body is not part of the request.
        0 => {
            head.extend_from_slice(b"\r\n");
            return (head, framed && method != "G@T");
        }
        // A length that is no number, negative, or given twice differently.
        1 => {
            head.extend_from_slice(b"content-length: abc\r\n");
            framed = false;
            body.len()
        }
        2 => {
            head.extend_from_slice(b"content-length: -1\r\n");
            framed = false;
            body.len()
        }
        3 => {
            head.extend_from_slice(format!("content-length: {}\r\n", body.len()).as_bytes());
            head.extend_from_slice(format!("content-length: {}\r\n", body.len() + 1).as_bytes());
            framed = false;
            body.len()
        }
        // A huge length, with the small body.
        4 => {
            head.extend_from_slice(b"content-length: 1000000000000\r\n");
            body.len()
        }
        // A body cut short: the length promises more than comes.
        5 => {
            head.extend_from_slice(format!("content-length: {}\r\n", body.len() + 10).as_bytes());
            body.len()
        }
        // Chunked, with a broken chunk size.
        6 => {
            head.extend_from_slice(b"transfer-encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n");
            return (head, false);
        }
        _ => {
            head.extend_from_slice(format!("content-length: {}\r\n", body.len()).as_bytes());
            body.len()
        }
    };
    head.extend_from_slice(b"\r\n");
    head.extend_from_slice(&body[..sent.min(body.len())]);
    (head, framed && method != "G@T")
}

fn seed() -> u64 {
    std::env::var("DISTCACHE_FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(SEED)
}

/// What one worker saw: statuses by count, and every unacceptable answer.
#[derive(Default)]
struct Tally {
    statuses: BTreeMap<Option<u16>, usize>,
    failures: Vec<String>,
    /// The first few answers of each status, shown with `DISTCACHE_FUZZ_VERBOSE`.
    samples: BTreeMap<Option<u16>, Vec<String>>,
}

/// Thousands of malformed requests of every route family: no 5xx but 503 and 504, every
/// valid-HTTP request answered, no panic; afterwards the node still creates a keyspace and
/// stores and reads a value.
#[test]
fn storm_of_malformed_requests_leaves_the_node_serving() {
    let live = live();
    let addr = live.addr().to_owned();
    let seed = seed();
    let started = Instant::now();
    let tallies: Vec<Tally> = live.runtime.block_on(async {
        let workers = (0..WORKERS).map(|w| {
            let addr = addr.clone();
            tokio::spawn(async move {
                let mut seed_bytes = [0u8; 32];
                seed_bytes[..8].copy_from_slice(&seed.to_le_bytes());
                seed_bytes[8..16].copy_from_slice(&(w as u64).to_le_bytes());
                let mut rng = TestRng::from_seed(RngAlgorithm::ChaCha, &seed_bytes);
                let mut tally = Tally::default();
                for n in 0..PER_WORKER {
                    let (bytes, framed) = storm_request(&mut rng);
                    let answer = send(&addr, &bytes).await;
                    *tally.statuses.entry(answer.status).or_default() += 1;
                    let shown = || {
                        let text = String::from_utf8_lossy(&bytes);
                        let cut: String = text.chars().take(300).collect();
                        format!("worker {w} request {n}: {cut:?}")
                    };
                    let samples = tally.samples.entry(answer.status).or_default();
                    if samples.len() < 3 {
                        samples.push(format!("{} <- {}", answer.text(), shown()));
                    }
                    match answer.status {
                        Some(s) if s >= 500 && s != 503 && s != 504 => tally
                            .failures
                            .push(format!("{s} {} for {}", answer.text(), shown())),
                        None if framed => tally.failures.push(format!("no answer for {}", shown())),
                        _ => {}
                    }
                }
                tally
            })
        });
        futures::future::join_all(workers)
            .await
            .into_iter()
            .map(|t| t.unwrap())
            .collect()
    });
    let mut statuses: BTreeMap<Option<u16>, usize> = BTreeMap::new();
    let mut failures = Vec::new();
    for tally in tallies {
        for (status, n) in tally.statuses {
            *statuses.entry(status).or_default() += n;
        }
        failures.extend(tally.failures);
        if std::env::var_os("DISTCACHE_FUZZ_VERBOSE").is_some() {
            for (status, samples) in tally.samples {
                for sample in samples {
                    eprintln!("{status:?}: {sample}");
                }
            }
        }
    }
    eprintln!(
        "storm of {} requests (seed {seed}) in {:?}: {statuses:?}",
        WORKERS * PER_WORKER,
        started.elapsed()
    );
    assert!(
        failures.is_empty(),
        "{} bad answers (seed {seed}), first ones: {:#?}",
        failures.len(),
        &failures[..failures.len().min(10)]
    );
    assert!(
        started.elapsed() < Duration::from_secs(50),
        "the storm took too long"
    );

    // The node still serves: a new keyspace over the test source, a put, a get, a load.
    let create = live.send(&request(
        "POST",
        b"/v1/keyspaces",
        br#"{"name":"after-storm","source":{"kind":"registered","name":"test"}}"#,
    ));
    assert!(
        matches!(create.status, Some(200 | 201)),
        "create after the storm: {:?} {}",
        create.status,
        create.text()
    );
    let put = live.send(&request(
        "PUT",
        b"/v1/keyspaces/after-storm/keys/k",
        b"still here",
    ));
    assert_eq!(put.status, Some(204), "put after the storm: {}", put.text());
    let got = live.send(&request("GET", b"/v1/keyspaces/after-storm/keys/k", b""));
    assert_eq!(got.status, Some(200), "get after the storm: {}", got.text());
    assert_eq!(got.body, b"still here");
    let loaded = live.send(&request("GET", b"/v1/keyspaces/after-storm/keys/k2", b""));
    assert_eq!(
        loaded.status,
        Some(200),
        "load after the storm: {}",
        loaded.text()
    );
    assert_eq!(loaded.body, b"v:k2");
    assert_no_panic();
}

/// Issue 17: specs written straight to the raft routes, past the checks of the public API,
/// are served only when they pass those checks: an empty name, a zero or unbounded
/// `max_bytes`, a 50 000-year TTL, a zero burst or threshold, or a spec stored under another
/// name are skipped (and logged), while a valid one written the same way is served.
#[test]
fn issue_17_raft_writes_of_broken_specs_are_not_served() {
    let live = live();
    let broken = [
        ("zero-bytes", r#"{"name":"zero-bytes","max_bytes":0}"#),
        (
            "unbounded",
            r#"{"name":"unbounded","max_bytes":18446744073709551615}"#,
        ),
        ("ancient", r#"{"name":"ancient","default_ttl":"50000y"}"#),
        (
            "no-burst",
            r#"{"name":"no-burst","rate_limit":{"requests_per_second":1e-300,"burst":0}}"#,
        ),
        (
            "no-threshold",
            r#"{"name":"no-threshold","circuit_breaker":{"failure_threshold":0,"reset_timeout":"0s"}}"#,
        ),
        ("elsewhere", r#"{"name":"ks"}"#),
        ("", r#"{"name":""}"#),
    ];
    let write = |name: &str, spec: &str| {
        let body = format!(r#"{{"change":{{"op":"put","name":"{name}","spec":{spec}}}}}"#);
        let answer = live.send(&request("POST", b"/_distcache/raft/write", body.as_bytes()));
        assert_eq!(answer.status, Some(200), "{body}: {}", answer.text());
        let reply: serde_json::Value = serde_json::from_slice(&answer.body).unwrap();
        reply["outcome"]["Ok"]
            .as_u64()
            .unwrap_or_else(|| panic!("{body}: {reply}"))
    };
    for (name, spec) in broken {
        write(name, spec);
    }
    let last = write("fine", r#"{"name":"fine"}"#);
    live.runtime.block_on(wait_until(
        Duration::from_secs(10),
        "the node applies the raft writes",
        || async {
            let list = send(live.addr(), &request("GET", b"/v1/keyspaces", b"")).await;
            serde_json::from_slice::<serde_json::Value>(&list.body)
                .ok()
                .and_then(|v| v["revision"].as_u64())
                .is_some_and(|r| r >= last)
        },
    ));
    for (name, _) in broken {
        let target = format!("/v1/keyspaces/{name}/keys/k");
        let answer = live.send(&request("PUT", target.as_bytes(), b"v"));
        let code = answer.error().map(|(code, _)| code);
        assert_eq!(
            code.as_deref(),
            Some("KEYSPACE_NOT_FOUND"),
            "{name} is served: {:?} {}",
            answer.status,
            answer.text()
        );
        assert!(
            crate::live::log().contains(&format!("keyspace={name} ")),
            "{name:?} is not logged"
        );
    }
    let fine = live.send(&request("PUT", b"/v1/keyspaces/fine/keys/k", b"v"));
    assert_eq!(fine.status, Some(204), "{}", fine.text());
    let ks = live.send(&request("GET", b"/v1/keyspaces/ks", b""));
    assert!(
        ks.text().contains("registered"),
        "ks was replaced: {}",
        ks.text()
    );
    assert_no_panic();
}
