//! The tokens file (`server.tokens_file`) and its keyspace patterns: valid files grant what
//! they say, a broken entry is refused naming its field, and any text is tokens or problems.

use distcache::auth::{KeyspacePattern, Role, Tokens};
use proptest::prelude::*;

use crate::{any_text, cases};

/// One `[[token]]` entry, its fields written as given (already TOML-quoted where needed).
fn entry(name: &str, role: &str, secret: &str, keyspaces: Option<&str>) -> String {
    let mut out = format!("[[token]]\nname = {name}\nrole = {role}\n{secret}\n");
    if let Some(list) = keyspaces {
        out.push_str(&format!("keyspaces = {list}\n"));
    }
    out
}

fn quoted(text: &str) -> String {
    toml::Value::String(text.to_owned()).to_string()
}

/// A field's text: valid, or broken in one of the usual ways.
fn field_text(valid: &'static str) -> impl Strategy<Value = String> {
    prop_oneof![
        4 => Just(quoted(valid)),
        1 => Just(String::from("\"\"")),
        1 => Just(String::from("1")),
        1 => Just(String::from("[]")),
        1 => any_text().prop_map(|t| quoted(&t)),
    ]
}

fn secret() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => "[a-zA-Z0-9]{8,40}".prop_map(|t| format!("token = {}", quoted(&t))),
        1 => "[0-9a-f]{64}".prop_map(|h| format!("token_sha256 = \"{h}\"")),
        1 => "[0-9a-fé]{60,64}".prop_map(|h| format!("token_sha256 = {}", quoted(&h))),
        1 => Just("token = \" \"".to_owned()),
        1 => Just("token = \"a\"\ntoken_sha256 = \"00\"".to_owned()),
        1 => Just(String::new()),
    ]
}

fn keyspaces() -> impl Strategy<Value = Option<String>> {
    proptest::option::of(prop_oneof![
        proptest::collection::vec("[a-z][a-z0-9]{0,8}\\*?", 0..3)
            .prop_map(|list| toml::Value::try_from(list).unwrap().to_string()),
        any_text().prop_map(|t| format!("[{}]", quoted(&t))),
        Just("[\"*\"]".to_owned()),
        Just("[\"a*b\"]".to_owned()),
    ])
}

proptest! {
    #![proptest_config(cases(256))]

    /// A tokens file of valid and broken entries is read, or refused with every problem named
    /// by its entry and field (`token[1].role`); each valid token finds its grant.
    #[test]
    fn entries_are_read_or_named(
        entries in proptest::collection::vec(
            ("[a-z]{1,8}", field_text("read"), secret(), keyspaces()),
            1..4,
        ),
    ) {
        let text: String = entries
            .iter()
            .enumerate()
            .map(|(i, (name, role, secret, ks))| {
                entry(&quoted(&format!("{name}{i}")), role, secret, ks.as_deref())
            })
            .collect();
        match Tokens::parse(&text) {
            Ok(tokens) => {
                for (_, _, secret, _) in &entries {
                    if let Some(token) = secret.strip_prefix("token = ") {
                        let token: String = toml::from_str::<toml::Value>(&format!("t = {token}"))
                            .ok()
                            .and_then(|v| v.get("t").and_then(|t| t.as_str().map(str::to_owned)))
                            .unwrap_or_default();
                        let grant = tokens.find(&token);
                        prop_assert!(grant.is_some(), "token {token:?} has no grant");
                        prop_assert_eq!(grant.unwrap().role(), Role::Read);
                    }
                }
            }
            Err(problems) => {
                prop_assert!(!problems.is_empty());
                for problem in &problems.0 {
                    prop_assert!(
                        problem.field == "toml" || problem.field.starts_with("token["),
                        "{problem}"
                    );
                    prop_assert!(!problem.message.is_empty());
                }
            }
        }
    }

    /// Any text read as a tokens file is tokens or problems; never a panic.
    #[test]
    fn any_text_is_tokens_or_problems(text in prop_oneof![
        any_text(),
        "(\\[\\[token\\]\\]\n)?([a-z_]{1,12} = [-0-9a-z\"\\[\\]{}., *]{0,20}\n){0,4}",
    ]) {
        prop_assert_eq!(distcache::fuzzing::tokens(&text), Ok(()));
    }

    /// Any text read as a keyspace pattern is one or an error quoting it; a pattern matches
    /// the keyspaces it names.
    #[test]
    fn any_pattern_is_read_or_named(text in prop_oneof![any_text(), "[a-z0-9*]{0,10}"]) {
        match KeyspacePattern::parse(&text) {
            Ok(pattern) => {
                let stem = text.trim_end_matches('*');
                prop_assert!(pattern.matches(stem));
                prop_assert_eq!(pattern.to_string(), text);
            }
            Err(message) => prop_assert!(!message.is_empty()),
        }
    }
}
