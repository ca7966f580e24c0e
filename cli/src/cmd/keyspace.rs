//! `distcache keyspace …`: the catalog of keyspaces.

use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use distcache::{Error, KeySpaceSpec, SourceSpec, read_keyspace_file};
use serde::Serialize;

use super::Global;
use crate::output::{self, Format, Table};
use crate::spec_flags::SpecFlags;

#[derive(Debug, Subcommand)]
pub enum KeyspaceCommand {
    /// List every keyspace.
    ///
    /// Example: distcache keyspace list -o json
    List,
    /// Show one keyspace (as a TOML keyspace file, or JSON).
    ///
    /// Example: distcache keyspace get users > users.toml
    Get {
        /// The keyspace.
        name: String,
    },
    /// Create a keyspace (fails if it exists).
    ///
    /// Examples:
    ///   distcache keyspace create users --max-bytes 64MiB --ttl 5m --source 'http://api:8080/users/{key}'
    ///   distcache keyspace create products --source sqlite:/data/shop.db --query 'SELECT body FROM products WHERE id = ?'
    #[command(verbatim_doc_comment)]
    Create {
        /// The keyspace.
        name: String,
        #[command(flatten)]
        flags: SpecFlags,
    },
    /// Change a keyspace's settings: given flags replace, the rest stays (`none` clears one).
    ///
    /// Examples:
    ///   distcache keyspace update users --ttl 10m --rate-limit 100/s,burst=200,wait=50ms
    ///   distcache keyspace update users --circuit-breaker none
    #[command(verbatim_doc_comment)]
    Update {
        /// The keyspace.
        name: String,
        #[command(flatten)]
        flags: SpecFlags,
    },
    /// Delete keyspaces (all or none) and every entry in them.
    ///
    /// Example: distcache keyspace delete sessions scratch
    Delete {
        /// The keyspaces.
        #[arg(required = true)]
        names: Vec<String>,
    },
    /// Make the catalog match a TOML or JSON file of keyspaces, and print what changed.
    ///
    /// Keyspaces of the file are created or updated; others are left alone unless --prune.
    /// Every spec is checked before anything changes.
    ///
    /// Examples:
    ///   distcache keyspace apply -f keyspaces.toml --dry-run
    ///   distcache keyspace apply -f keyspaces.json --prune -o json
    #[command(verbatim_doc_comment)]
    Apply(ApplyArgs),
}

#[derive(Debug, Args)]
pub struct ApplyArgs {
    /// The file (`[[keyspace]]` tables in TOML, or a JSON array).
    #[arg(short = 'f', long = "file")]
    pub file: PathBuf,
    /// Show what would change without changing anything.
    #[arg(long)]
    pub dry_run: bool,
    /// Also delete keyspaces the file does not list.
    #[arg(long)]
    pub prune: bool,
}

/// What `apply` did (or would do) to one keyspace.
#[derive(Debug, Serialize)]
struct Change {
    keyspace: String,
    action: &'static str,
    /// Fields that differ, for updates.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    fields: Vec<String>,
}

#[derive(Debug, Serialize)]
struct ApplyReport {
    dry_run: bool,
    revision: u64,
    changes: Vec<Change>,
}

#[derive(Serialize)]
struct TomlFile<'a> {
    keyspace: [&'a KeySpaceSpec; 1],
}

pub async fn run(cmd: KeyspaceCommand, global: &Global) -> anyhow::Result<()> {
    let client = global.client()?;
    match cmd {
        KeyspaceCommand::List => {
            let list = client.keyspaces().await?;
            if global.output == Format::Json {
                return output::json(&list);
            }
            let mut table = Table::new([
                "NAME",
                "SOURCE",
                "MAX BYTES",
                "TTL",
                "READ TIMEOUT",
                "WARM KEYS",
            ]);
            for spec in &list.keyspaces {
                table.row([
                    spec.name.clone(),
                    source_text(&spec.source),
                    spec.max_bytes.map_or("default".into(), output::bytes),
                    spec.default_ttl
                        .map_or("-".into(), distcache::units::format_duration),
                    spec.read_timeout
                        .map_or("default".into(), distcache::units::format_duration),
                    spec.warm_keys.len().to_string(),
                ]);
            }
            table.print()?;
            if list.keyspaces.is_empty() {
                eprintln!("no keyspaces (revision {})", list.revision);
            }
            Ok(())
        }
        KeyspaceCommand::Get { name } => {
            let spec = client.keyspace(&name).await?;
            match global.output {
                Format::Json => output::json(&spec),
                Format::Table => {
                    print!("{}", toml::to_string(&TomlFile { keyspace: [&spec] })?);
                    Ok(())
                }
            }
        }
        KeyspaceCommand::Create { name, flags } => {
            let mut spec = KeySpaceSpec::new(name, SourceSpec::None);
            flags.apply_to(&mut spec)?;
            check(&spec)?;
            let answer = client.create_keyspace(&spec).await?;
            report(global, &answer, &format!("keyspace {} created", spec.name))
        }
        KeyspaceCommand::Update { name, flags } => {
            // Read, patch, write back at the revision read: a concurrent change is not lost.
            for _ in 0..5 {
                let list = client.keyspaces().await?;
                let Some(mut spec) = list.keyspaces.into_iter().find(|k| k.name == name) else {
                    return Err(Error::KeySpaceNotFound(name).into());
                };
                flags.clone().apply_to(&mut spec)?;
                check(&spec)?;
                match client.put_keyspace(&spec, Some(list.revision)).await {
                    Ok(answer) => {
                        return report(global, &answer, &format!("keyspace {name} updated"));
                    }
                    Err(Error::RevisionMismatch { .. }) => continue,
                    Err(e) => return Err(e.into()),
                }
            }
            bail!("the catalog kept changing while updating `{name}`; try again")
        }
        KeyspaceCommand::Delete { names } => {
            let answer = client.delete_keyspaces(&names).await?;
            #[derive(Serialize)]
            struct Deleted<'a> {
                revision: u64,
                deleted: &'a [String],
            }
            match global.output {
                Format::Json => output::json(&Deleted {
                    revision: answer.revision,
                    deleted: &names,
                }),
                Format::Table => {
                    println!(
                        "deleted {} (revision {})",
                        names.join(", "),
                        answer.revision
                    );
                    Ok(())
                }
            }
        }
        KeyspaceCommand::Apply(args) => apply(args, global).await,
    }
}

/// Checks a spec locally before sending it, naming every bad field.
fn check(spec: &KeySpaceSpec) -> anyhow::Result<()> {
    spec.validate(&distcache::Limits::default())?;
    Ok(())
}

fn report(
    global: &Global,
    answer: &distcache::wire::ChangeResponse,
    text: &str,
) -> anyhow::Result<()> {
    match global.output {
        Format::Json => output::json(answer),
        Format::Table => {
            println!("{text} (revision {})", answer.revision);
            Ok(())
        }
    }
}

fn source_text(source: &SourceSpec) -> String {
    match source {
        SourceSpec::Http { url } => url.clone(),
        SourceSpec::Sqlite { path, .. } => format!("sqlite:{path}"),
        // Never print a password.
        SourceSpec::Postgres { url, .. } => distcache::redacted_url(url),
        SourceSpec::Registered { name } => format!("registered:{name}"),
        other => other.kind().to_owned(),
    }
}

/// Names of the fields in which two specs differ.
fn differing(a: &KeySpaceSpec, b: &KeySpaceSpec) -> Vec<String> {
    let (Ok(serde_json::Value::Object(a)), Ok(serde_json::Value::Object(b))) =
        (serde_json::to_value(a), serde_json::to_value(b))
    else {
        return vec!["spec".into()];
    };
    let mut fields: Vec<String> = a
        .keys()
        .chain(b.keys())
        .filter(|k| a.get(*k) != b.get(*k))
        .cloned()
        .collect();
    fields.sort();
    fields.dedup();
    fields
}

async fn apply(args: ApplyArgs, global: &Global) -> anyhow::Result<()> {
    let specs = read_keyspace_file(&args.file)?;
    let mut problems = distcache::Problems::new();
    for spec in &specs {
        problems.extend_prefixed(
            &format!("keyspaces[{}]", spec.name),
            spec.problems(&distcache::Limits::default()),
        );
    }
    problems
        .into_result(distcache::Error::InvalidSpec)
        .with_context(|| format!("{} was not applied", args.file.display()))?;

    let client = global.client()?;
    let current = client.keyspaces().await?;
    let mut revision = current.revision;
    let mut changes = Vec::new();
    for spec in &specs {
        let existing = current.keyspaces.iter().find(|k| k.name == spec.name);
        let (action, fields) = match existing {
            None => ("create", Vec::new()),
            Some(old) if old == spec => ("unchanged", Vec::new()),
            Some(old) => ("update", differing(old, spec)),
        };
        if !args.dry_run && action != "unchanged" {
            let answer = client
                .put_keyspace(spec, Some(revision))
                .await
                .with_context(|| {
                    format!(
                        "applying `{}` failed (earlier keyspaces of the file were applied)",
                        spec.name
                    )
                })?;
            revision = answer.revision;
        }
        changes.push(Change {
            keyspace: spec.name.clone(),
            action,
            fields,
        });
    }
    if args.prune {
        let extra: Vec<String> = current
            .keyspaces
            .iter()
            .filter(|k| !specs.iter().any(|s| s.name == k.name))
            .map(|k| k.name.clone())
            .collect();
        if !extra.is_empty() && !args.dry_run {
            revision = client.delete_keyspaces(&extra).await?.revision;
        }
        changes.extend(extra.into_iter().map(|keyspace| Change {
            keyspace,
            action: "delete",
            fields: Vec::new(),
        }));
    }
    let report = ApplyReport {
        dry_run: args.dry_run,
        revision,
        changes,
    };
    match global.output {
        Format::Json => output::json(&report),
        Format::Table => {
            let verb = |action: &str| match (action, args.dry_run) {
                ("create", false) => "created",
                ("create", true) => "would create",
                ("update", false) => "updated",
                ("update", true) => "would update",
                ("delete", false) => "deleted",
                ("delete", true) => "would delete",
                _ => "unchanged",
            };
            for c in &report.changes {
                if c.fields.is_empty() {
                    println!("{} {}", verb(c.action), c.keyspace);
                } else {
                    println!(
                        "{} {} ({})",
                        verb(c.action),
                        c.keyspace,
                        c.fields.join(", ")
                    );
                }
            }
            if !args.dry_run {
                println!("catalog at revision {}", report.revision);
            }
            Ok(())
        }
    }
}
