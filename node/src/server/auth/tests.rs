use axum::http::{HeaderValue, Method};

use super::*;

const FILE: &str = r#"
[[token]]
name = "reader"
token = "read-secret"
role = "read"

[[token]]
name = "billing-app"
token_sha256 = "5e884898da28047151d0e56f8dc6292773603d0d6aabbdd62a11ef721d1542d8" # "password"
role = "write"
keyspaces = ["billing", "invoices*"]

[[token]]
name = "ops"
token = "ops-secret"
role = "admin"
"#;

fn tokens() -> Tokens {
    let mut tokens = Tokens::parse(FILE).expect("valid file");
    assert!(tokens.add_cluster_token("cluster").is_empty());
    tokens
}

fn bearer(token: &str) -> HeaderValue {
    HeaderValue::from_str(&format!("Bearer {token}")).expect("header")
}

fn fields(text: &str) -> Vec<String> {
    Tokens::parse(text)
        .expect_err("invalid file")
        .iter()
        .map(|p| p.field.clone())
        .collect()
}

/// A file's entries become grants; hashed and plain tokens are both found, wrong ones not.
#[test]
fn file_entries_become_grants() {
    let tokens = tokens();
    let names: Vec<&str> = tokens.grants().map(Grant::name).collect();
    assert_eq!(names, ["reader", "billing-app", "ops", CLUSTER_TOKEN_NAME]);
    assert_eq!(tokens.find("password").map(|g| g.role()), Some(Role::Write));
    assert_eq!(tokens.find("read-secret").map(|g| g.name()), Some("reader"));
    assert_eq!(tokens.find("cluster").map(|g| g.role()), Some(Role::Admin));
    assert!(tokens.find("passwor").is_none());
    assert!(tokens.find("").is_none());
}

/// Every problem of a file is named, each at its field; none panics.
#[test]
fn bad_entries_are_each_named() {
    let text = r#"
[[token]]
name = "a"
role = "writer"
token = "x"

[[token]]
name = "b"
role = "read"

[[token]]
name = "c"
role = "read"
token = "y"
token_sha256 = "00"

[[token]]
name = "d"
role = "read"
token_sha256 = "zz"

[[token]]
name = "a"
role = "read"
token = "   "

[[token]]
name = ""
role = "admin"
token = "z"
keyspaces = ["bad name", "a*b", "*", "ok*"]
"#;
    assert_eq!(
        fields(text),
        [
            "token[0].role",
            "token[1]",
            "token[2]",
            "token[3].token_sha256",
            "token[4].token",
            "token[5].name",
            "token[5].keyspaces[0]",
            "token[5].keyspaces[1]",
            "token[5].keyspaces[2]",
        ]
    );
}

/// Two entries with one name, or with one token, are refused.
#[test]
fn duplicates_are_refused() {
    let text = r#"
[[token]]
name = "a"
role = "read"
token = "same"

[[token]]
name = "a"
role = "admin"
token = "other"

[[token]]
name = "b"
role = "admin"
token = "same"
"#;
    assert_eq!(fields(text), ["token[1].name", "token[2]"]);
    let mut tokens =
        Tokens::parse("[[token]]\nname = \"x\"\nrole = \"read\"\ntoken = \"c\"\n").expect("valid");
    let problems = tokens.add_cluster_token("c");
    assert_eq!(problems.iter().count(), 1, "{problems}");
}

/// TOML errors name the line but never quote it (the line may hold a token).
#[test]
fn syntax_errors_do_not_quote_the_file() {
    let problems = Tokens::parse("[[token]]\ntoken = \"s3cret-token\nrole = 1\n").expect_err("bad");
    let text = problems.to_string();
    assert!(text.contains("line"), "{text}");
    assert!(!text.contains("s3cret"), "{text}");
    let unknown = Tokens::parse("[[token]]\nname = \"a\"\nrole = \"read\"\ntoken = \"t\"\nx = 1\n");
    assert!(unknown.is_err());
}

/// Debug of a grant shows no token and no hash.
#[test]
fn debug_redacts_the_token() {
    let tokens = tokens();
    let text = format!("{tokens:?}");
    assert!(text.contains("<redacted>"));
    assert!(!text.contains("read-secret"));
    assert!(!text.contains("5e8848"));
    assert!(!text.contains("94, 136"), "hash bytes leak: {text}");
}

/// Names match exactly, prefixes by prefix; `*` may only end a pattern.
#[test]
fn patterns_match_names_and_prefixes() {
    let name = KeyspacePattern::parse("billing").expect("name");
    assert!(name.matches("billing"));
    assert!(!name.matches("billing2"));
    let prefix = KeyspacePattern::parse("invoices*").expect("prefix");
    assert!(prefix.matches("invoices"));
    assert!(prefix.matches("invoices-2024"));
    assert!(!prefix.matches("invoice"));
    assert_eq!(prefix.to_string(), "invoices*");
    for bad in ["", "*", "a*b", "**", "-x", "a b*"] {
        assert!(KeyspacePattern::parse(bad).is_err(), "{bad}");
    }
}

/// Each route family needs its role, and the keyspace in its path.
#[test]
fn routes_need_their_role_and_keyspace() {
    let ks = |s: &str| Scope::Keyspace(s.into());
    let cases = [
        (Method::GET, "/healthz", Role::Read, Scope::Open),
        (Method::GET, "/openapi.json", Role::Read, Scope::Open),
        (Method::GET, "/v1/keyspaces", Role::Read, Scope::Handler),
        (Method::POST, "/v1/keyspaces", Role::Admin, Scope::Handler),
        (Method::DELETE, "/v1/keyspaces", Role::Admin, Scope::Handler),
        (Method::GET, "/v1/keyspaces/a", Role::Read, ks("a")),
        (Method::PUT, "/v1/keyspaces/a", Role::Admin, ks("a")),
        (Method::GET, "/v1/keyspaces/a/keys/k/x", Role::Read, ks("a")),
        (Method::HEAD, "/v1/keyspaces/a/keys", Role::Read, ks("a")),
        (Method::PUT, "/v1/keyspaces/a/keys/k", Role::Write, ks("a")),
        (Method::DELETE, "/v1/keyspaces/a/keys", Role::Write, ks("a")),
        (
            Method::POST,
            "/v1/keyspaces/a/get-many",
            Role::Read,
            ks("a"),
        ),
        (
            Method::POST,
            "/v1/keyspaces/a/put-many",
            Role::Write,
            ks("a"),
        ),
        (
            Method::POST,
            "/v1/keyspaces/a/delete-many",
            Role::Write,
            ks("a"),
        ),
        (
            Method::GET,
            "/v1/keyspaces/%61b/keys/k",
            Role::Read,
            ks("ab"),
        ),
        (
            Method::GET,
            "/_distcache/admin/peers",
            Role::Admin,
            Scope::Handler,
        ),
        (
            Method::GET,
            "/_distcache/admin/owner/a/k",
            Role::Admin,
            ks("a"),
        ),
        (
            Method::POST,
            "/_distcache/admin/keyspaces/a/warmup",
            Role::Admin,
            ks("a"),
        ),
        (
            Method::GET,
            "/_distcache/peer/keyspaces/a/keys/k",
            Role::Admin,
            Scope::Node,
        ),
        (
            Method::POST,
            "/_distcache/raft/append",
            Role::Admin,
            Scope::Node,
        ),
        (Method::GET, "/nowhere", Role::Read, Scope::Handler),
    ];
    for (method, path, role, scope) in cases {
        let need = need(&method, path);
        assert_eq!((need.role, &need.scope), (role, &scope), "{method} {path}");
    }
}

/// 401 without a known token, 403 naming the missing role or keyspace, else the grant.
#[test]
fn decisions_name_what_is_lacking() {
    let tokens = tokens();
    let put = need(&Method::PUT, "/v1/keyspaces/billing/keys/k");
    let err = decide(&tokens, None, &put).expect_err("no token");
    assert!(matches!(err, Error::Unauthorized(_)));
    let err = decide(&tokens, Some(&bearer("nope")), &put).expect_err("wrong");
    assert!(matches!(err, Error::Unauthorized(_)));
    let basic = HeaderValue::from_static("Basic cGFzc3dvcmQ=");
    assert!(matches!(
        decide(&tokens, Some(&basic), &put),
        Err(Error::Unauthorized(_))
    ));

    let err = decide(&tokens, Some(&bearer("read-secret")), &put).expect_err("read");
    assert_eq!(
        err.to_string(),
        "forbidden: token `reader` has role read; put needs write"
    );
    let access = decide(&tokens, Some(&bearer("password")), &put).expect("write");
    assert!(access.allows("invoices-7"));
    assert!(!access.allows("users"));
    assert!(access.check("users").is_err());

    let users = need(&Method::GET, "/v1/keyspaces/users/keys/k");
    let err = decide(&tokens, Some(&bearer("password")), &users).expect_err("keyspace");
    assert_eq!(
        err.to_string(),
        "forbidden: token `billing-app` may not use keyspace `users`"
    );
    let health = need(&Method::GET, "/healthz");
    assert!(decide(&tokens, None, &health).is_ok());

    let peer = need(&Method::GET, "/_distcache/peer/hot");
    assert!(decide(&tokens, Some(&bearer("ops-secret")), &peer).is_ok());
    assert!(decide(&tokens, Some(&bearer("cluster")), &peer).is_ok());
    assert!(matches!(
        decide(&tokens, Some(&bearer("password")), &peer),
        Err(Error::Forbidden(_))
    ));
}

/// The file needs the cluster token beside it, and an unreadable file is named.
#[test]
fn config_loads_file_and_cluster_token() {
    assert!(matches!(Tokens::from_config(None, None), Ok(None)));
    let problems = Tokens::from_config(Some(std::path::Path::new("/no/such/tokens.toml")), None)
        .expect_err("missing file");
    assert_eq!(
        problems.iter().next().map(|p| p.field.as_str()),
        Some("tokens_file")
    );
    let problems = Tokens::from_config(None, Some(" ")).expect_err("empty token");
    assert_eq!(
        problems.iter().next().map(|p| p.field.as_str()),
        Some("token")
    );
}
