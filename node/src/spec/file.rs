//! Keyspace files: several specs in one TOML (`[[keyspace]]` tables) or JSON (an array, or an
//! object with a `keyspace` array) file.

use std::path::Path;

use serde::Deserialize;
use serde::de::DeserializeOwned;

use super::KeySpaceSpec;
use crate::error::{Error, Problems, Result};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    keyspace: Vec<KeySpaceSpec>,
}

/// Reads the specs of a keyspace file: JSON when it ends in `.json`, TOML when it ends in
/// `.toml`, otherwise whichever parses (TOML first). Errors name the file and, for syntax
/// errors, the line.
pub fn read_keyspace_file(path: &Path) -> Result<Vec<KeySpaceSpec>> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        Error::InvalidConfig(one(
            "keyspace_file",
            format!("cannot read {}: {e}", path.display()),
        ))
    })?;
    let ext = path
        .extension()
        .map(|e| e.to_string_lossy().to_ascii_lowercase());
    let parsed = match ext.as_deref() {
        Some("json") => parse_keyspaces(&text, true),
        Some("toml") => parse_keyspaces(&text, false),
        _ => parse_keyspaces(&text, false)
            .or_else(|toml_err| parse_keyspaces(&text, true).map_err(|_| toml_err)),
    };
    parsed.map_err(|message| {
        Error::InvalidConfig(one(
            "keyspace_file",
            format!("{}: {message}", path.display()),
        ))
    })
}

/// Parses keyspace specs from TOML or JSON text. A mistake is named by where it is: TOML
/// errors show the line and the key, JSON errors the path of the field
/// (`` `keyspace[0].max_bytes`: … ``) and the line and column.
pub fn parse_keyspaces(text: &str, json: bool) -> std::result::Result<Vec<KeySpaceSpec>, String> {
    let specs = if json {
        match serde_json::from_str::<serde_json::Value>(text).map_err(|e| e.to_string())? {
            serde_json::Value::Array(_) => from_json::<Vec<KeySpaceSpec>>(text)?,
            _ => from_json::<File>(text)?.keyspace,
        }
    } else {
        toml::from_str::<File>(text)
            .map_err(|e| e.to_string().trim_end().to_owned())?
            .keyspace
    };
    let mut seen = std::collections::HashSet::new();
    for spec in &specs {
        if !seen.insert(spec.name.as_str()) {
            return Err(format!("keyspace `{}` is defined twice", spec.name));
        }
    }
    Ok(specs)
}

/// Reads JSON, naming the path of the field a mistake is in.
fn from_json<T: DeserializeOwned>(text: &str) -> std::result::Result<T, String> {
    let mut json = serde_json::Deserializer::from_str(text);
    serde_path_to_error::deserialize(&mut json).map_err(|e| {
        let path = e.path().to_string();
        if path == "." {
            e.inner().to_string()
        } else {
            format!("`{path}`: {}", e.inner())
        }
    })
}

fn one(field: &str, message: String) -> Problems {
    let mut p = Problems::new();
    p.push(field, message);
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    /// TOML and both JSON shapes read the same specs; syntax errors say where.
    #[test]
    fn reads_toml_and_json() {
        let toml = "[[keyspace]]\nname = \"a\"\n[[keyspace]]\nname = \"b\"\nmax_bytes = \"1MiB\"\n";
        let from_toml = parse_keyspaces(toml, false).expect("toml");
        let from_array =
            parse_keyspaces(r#"[{"name":"a"},{"name":"b","max_bytes":1048576}]"#, true)
                .expect("json");
        let from_object = parse_keyspaces(
            r#"{"keyspace":[{"name":"a"},{"name":"b","max_bytes":"1MiB"}]}"#,
            true,
        )
        .expect("json object");
        assert_eq!(from_toml, from_array);
        assert_eq!(from_toml, from_object);
        let err = parse_keyspaces("[[keyspace]]\nname = ", false).expect_err("syntax");
        assert!(err.contains("line 2"), "{err}");
        let err = parse_keyspaces("[[keyspace]]\nname=\"a\"\n[[keyspace]]\nname=\"a\"", false)
            .expect_err("duplicate");
        assert!(err.contains("twice"), "{err}");
    }

    /// A missing file is named in the error.
    #[test]
    fn missing_file_is_named() {
        let err = read_keyspace_file(Path::new("/nonexistent/ks.toml")).expect_err("missing");
        assert!(err.to_string().contains("/nonexistent/ks.toml"), "{err}");
    }
}
