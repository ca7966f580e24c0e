//! `distcache get | put | delete`: keys.

use std::io::{Read, Write};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use base64::Engine as _;
use clap::Args;
use distcache::wire::ErrorBody;
use distcache::{Bytes, Error};
use serde::Serialize;

use super::{Global, parse_duration};
use crate::exit::NotFound;
use crate::output::{self, Format, Table};

#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  distcache get users user:1            # the value, raw, on stdout\n  distcache get users user:1 user:2 -o json\n\nExit code 3 when a key is not found."
)]
pub struct GetArgs {
    /// The keyspace.
    pub keyspace: String,
    /// The keys (several are read in one batch).
    #[arg(required = true)]
    pub keys: Vec<String>,
}

#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  distcache put users user:1 '{\"name\":\"Ada\"}' --ttl 10m\n  distcache put images logo --file logo.png\n  echo hello | distcache put scratch greeting -"
)]
pub struct PutArgs {
    /// The keyspace.
    pub keyspace: String,
    /// The key.
    pub key: String,
    /// The value; `-` reads standard input.
    #[arg(conflicts_with = "file")]
    pub value: Option<String>,
    /// Read the value from a file.
    #[arg(long)]
    pub file: Option<PathBuf>,
    /// How long the value lives, e.g. 10m (default: the keyspace's rules).
    #[arg(long, value_parser = parse_duration)]
    pub ttl: Option<Duration>,
}

#[derive(Debug, Args)]
#[command(after_help = "Example:\n  distcache delete users user:1 user:2")]
pub struct DeleteArgs {
    /// The keyspace.
    pub keyspace: String,
    /// The keys.
    #[arg(required = true)]
    pub keys: Vec<String>,
}

#[derive(Debug, Args)]
#[command(after_help = "Example:\n  distcache owner users user:1")]
pub struct OwnerArgs {
    /// The keyspace.
    pub keyspace: String,
    /// The key.
    pub key: String,
}

pub async fn owner(args: OwnerArgs, global: &Global) -> anyhow::Result<()> {
    let owner = global.client()?.owner(&args.keyspace, &args.key).await?;
    match global.output {
        Format::Json => output::json(&owner),
        Format::Table => {
            println!("{} at {}", owner.owner, owner.addr);
            Ok(())
        }
    }
}

/// One key of `get -o json`.
#[derive(Serialize)]
struct GetResult {
    key: String,
    found: bool,
    /// The value as text, when it is UTF-8.
    #[serde(skip_serializing_if = "Option::is_none")]
    value: Option<String>,
    /// The value, base64 (always present when found).
    #[serde(skip_serializing_if = "Option::is_none")]
    value_base64: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<ErrorBody>,
}

#[derive(Serialize)]
struct KeysOutput<T> {
    keyspace: String,
    results: Vec<T>,
}

pub async fn get(args: GetArgs, global: &Global) -> anyhow::Result<()> {
    let client = global.client()?;
    let answers: Vec<(String, Result<Option<Bytes>, Error>)> = if args.keys.len() == 1 {
        let key = args.keys[0].clone();
        let answer = client.get(&args.keyspace, &key).await;
        if let Err(
            e @ (Error::KeySpaceNotFound(_)
            | Error::Unavailable(_)
            | Error::Unauthorized(_)
            | Error::Forbidden(_)),
        ) = &answer
        {
            return Err(e.clone().into());
        }
        vec![(key, answer)]
    } else {
        client
            .get_many(&args.keyspace, &args.keys)
            .await?
            .into_iter()
            .map(|r| (r.key, r.result))
            .collect()
    };

    match global.output {
        Format::Json => {
            let results = answers
                .iter()
                .map(|(key, answer)| match answer {
                    Ok(Some(v)) => GetResult {
                        key: key.clone(),
                        found: true,
                        value: std::str::from_utf8(v).ok().map(str::to_owned),
                        value_base64: Some(base64::engine::general_purpose::STANDARD.encode(v)),
                        error: None,
                    },
                    Ok(None) => GetResult {
                        key: key.clone(),
                        found: false,
                        value: None,
                        value_base64: None,
                        error: None,
                    },
                    Err(e) => GetResult {
                        key: key.clone(),
                        found: false,
                        value: None,
                        value_base64: None,
                        error: Some(ErrorBody::from(e)),
                    },
                })
                .collect();
            output::json(&KeysOutput {
                keyspace: args.keyspace.clone(),
                results,
            })?;
        }
        Format::Table if answers.len() == 1 => {
            if let (_, Ok(Some(value))) = &answers[0] {
                let mut out = std::io::stdout().lock();
                out.write_all(value)?;
                if output::interactive() && !value.ends_with(b"\n") {
                    out.write_all(b"\n")?;
                }
            }
        }
        Format::Table => {
            let mut table = Table::new(["KEY", "STATUS", "VALUE"]);
            for (key, answer) in &answers {
                match answer {
                    Ok(Some(v)) => table.row([key.clone(), "found".into(), output::preview(v, 60)]),
                    Ok(None) => table.row([key.clone(), "not found".into(), String::new()]),
                    Err(e) => table.row([key.clone(), "error".into(), e.to_string()]),
                }
            }
            table.print()?;
        }
    }
    outcome(&args.keyspace, &answers)
}

/// The command's result: the worst error, else not found, else ok.
fn outcome(
    keyspace: &str,
    answers: &[(String, Result<Option<Bytes>, Error>)],
) -> anyhow::Result<()> {
    if let Some((key, Err(e))) = answers.iter().find(|(_, a)| a.is_err()) {
        return Err(anyhow::Error::new(e.clone()).context(format!("reading `{key}` failed")));
    }
    let missing: Vec<&str> = answers
        .iter()
        .filter(|(_, a)| matches!(a, Ok(None)))
        .map(|(k, _)| k.as_str())
        .collect();
    if missing.is_empty() {
        Ok(())
    } else {
        Err(NotFound(format!(
            "not found in keyspace `{keyspace}`: {}",
            missing.join(", ")
        ))
        .into())
    }
}

pub async fn put(args: PutArgs, global: &Global) -> anyhow::Result<()> {
    let value: Vec<u8> = match (&args.value, &args.file) {
        (Some(v), None) if v == "-" => {
            let mut buf = Vec::new();
            std::io::stdin()
                .read_to_end(&mut buf)
                .context("cannot read the value from standard input")?;
            buf
        }
        (Some(v), None) => v.as_bytes().to_vec(),
        (None, Some(path)) => {
            std::fs::read(path).with_context(|| format!("cannot read --file {}", path.display()))?
        }
        (None, None) => anyhow::bail!("give the value, `-` to read standard input, or --file PATH"),
        (Some(_), Some(_)) => anyhow::bail!("give the value or --file, not both"),
    };
    let len = value.len();
    let client = global.client()?;
    client
        .put(&args.keyspace, &args.key, value, args.ttl)
        .await?;
    #[derive(Serialize)]
    struct Stored<'a> {
        keyspace: &'a str,
        key: &'a str,
        stored: bool,
        bytes: usize,
        #[serde(skip_serializing_if = "Option::is_none")]
        ttl: Option<String>,
    }
    match global.output {
        Format::Json => output::json(&Stored {
            keyspace: &args.keyspace,
            key: &args.key,
            stored: true,
            bytes: len,
            ttl: args.ttl.map(distcache::units::format_duration),
        }),
        Format::Table => {
            println!("stored {} ({} bytes)", args.key, len);
            Ok(())
        }
    }
}

pub async fn delete(args: DeleteArgs, global: &Global) -> anyhow::Result<()> {
    let client = global.client()?;
    let results: Vec<(String, Result<(), Error>)> = if args.keys.len() == 1 {
        let key = args.keys[0].clone();
        client.delete(&args.keyspace, &key).await?;
        vec![(key, Ok(()))]
    } else {
        client
            .delete_many(&args.keyspace, &args.keys)
            .await?
            .into_iter()
            .map(|r| (r.key, r.result))
            .collect()
    };
    #[derive(Serialize)]
    struct Deleted {
        key: String,
        deleted: bool,
        #[serde(skip_serializing_if = "Option::is_none")]
        error: Option<ErrorBody>,
    }
    match global.output {
        Format::Json => output::json(&KeysOutput {
            keyspace: args.keyspace.clone(),
            results: results
                .iter()
                .map(|(key, r)| Deleted {
                    key: key.clone(),
                    deleted: r.is_ok(),
                    error: r.as_ref().err().map(ErrorBody::from),
                })
                .collect(),
        })?,
        Format::Table => {
            for (key, r) in &results {
                match r {
                    Ok(()) => println!("deleted {key}"),
                    Err(e) => println!("failed {key}: {e}"),
                }
            }
        }
    }
    match results
        .into_iter()
        .find_map(|(k, r)| r.err().map(|e| (k, e)))
    {
        Some((key, e)) => Err(anyhow::Error::new(e).context(format!("deleting `{key}` failed"))),
        None => Ok(()),
    }
}
