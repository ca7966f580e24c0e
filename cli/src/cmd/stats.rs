//! `distcache stats`: per-keyspace counters of every member, one row per node and keyspace;
//! with `--cluster`, one row per keyspace summed over the members (`KeySpaceTotal::sum`) plus
//! per-second rates between two polls `--interval` apart (`KeySpaceTotal::rates`).

use std::time::{Duration, Instant};

use clap::Args;
use distcache::client::{Answer, Answers};
use distcache::wire::ErrorBody;
use distcache::{BreakerState, Error, KeySpaceSnapshot, KeySpaceTotal, Rates, Stats};
use serde::Serialize;

use super::admin::fleet;
use super::{Global, parse_duration};
use crate::output::{self, Format, Table};

#[derive(Debug, Args)]
#[command(after_help = "Examples:
  distcache stats                          # every node's counters, one row per node and keyspace
  distcache stats users -o json
  distcache stats --cluster                # summed over the members, rates over 1s
  distcache stats --cluster --interval 10s --keyspace users
  distcache stats --cluster --interval 0 -o json   # totals only, one poll

With --cluster, a member that does not answer is named on stderr and left out of the sums; the
command fails (exit code 4) only when no member answers.")]
pub struct StatsArgs {
    /// Only this keyspace.
    #[arg(value_name = "KEYSPACE")]
    pub keyspace: Option<String>,
    /// Only this keyspace (the same as the KEYSPACE argument).
    #[arg(
        long = "keyspace",
        id = "keyspace_flag",
        value_name = "NAME",
        conflicts_with = "keyspace"
    )]
    pub keyspace_flag: Option<String>,
    /// One row per keyspace summed over every member, with rates (gets/s, hits/s, loads/s,
    /// fetches/s, errors/s, hit ratio) between two polls --interval apart.
    #[arg(long)]
    pub cluster: bool,
    /// With --cluster: the time between the two polls the rates come from; `0` polls once
    /// and shows no rates.
    #[arg(long, value_parser = parse_duration, default_value = "1s", requires = "cluster")]
    pub interval: Duration,
}

impl StatsArgs {
    /// The keyspace asked for, by argument or flag.
    fn only(&self) -> Option<&str> {
        self.keyspace.as_deref().or(self.keyspace_flag.as_deref())
    }
}

pub async fn run(args: StatsArgs, global: &Global) -> anyhow::Result<()> {
    if args.cluster {
        cluster(&args, global).await
    } else {
        per_node(&args, global).await
    }
}

/// One node's answer to `stats`.
#[derive(Serialize)]
struct NodeStats {
    node: String,
    addr: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<ErrorBody>,
    keyspaces: Vec<KeySpaceSnapshot>,
}

impl From<Answer<Vec<KeySpaceSnapshot>>> for NodeStats {
    fn from(answer: Answer<Vec<KeySpaceSnapshot>>) -> Self {
        let (keyspaces, error) = match answer.result {
            Ok(k) => (k, None),
            Err(e) => (Vec::new(), Some(ErrorBody::from(&e))),
        };
        NodeStats {
            node: answer.member.name().to_owned(),
            addr: answer.member.addr,
            error,
            keyspaces,
        }
    }
}

/// `hits` of `gets` in percent with one decimal, or `-` without gets.
fn percent(hits: u64, gets: u64) -> String {
    if gets == 0 {
        "-".to_owned()
    } else {
        format!("{:.1}", 100.0 * hits as f64 / gets as f64)
    }
}

/// A breaker state as the tables show it (`-` without a breaker).
fn breaker(state: Option<BreakerState>) -> String {
    state.map_or("-".to_owned(), |b| format!("{b:?}").to_lowercase())
}

/// `distcache stats`: one row per node and keyspace.
async fn per_node(args: &StatsArgs, global: &Global) -> anyhow::Result<()> {
    let mut fleet = fleet(global)?;
    fleet.refresh(&global.client()?).await?;
    let mut answers = fleet.stats().await;
    if let Some(only) = args.only() {
        answers = answers.only_keyspace(only)?;
    }
    let nodes: Vec<NodeStats> = answers.into_iter().map(NodeStats::from).collect();
    if global.output == Format::Json {
        #[derive(Serialize)]
        struct Out {
            nodes: Vec<NodeStats>,
        }
        return output::json(&Out { nodes });
    }
    let mut table = Table::new([
        "NODE",
        "KEYSPACE",
        "GETS",
        "HIT %",
        "LOADS",
        "PEER LOADS",
        "ERRORS",
        "ENTRIES",
        "BYTES",
        "BREAKER",
    ]);
    for n in &nodes {
        if let Some(e) = &n.error {
            table.row([
                n.node.clone(),
                "-".into(),
                format!("unreachable: {}", e.message),
            ]);
            continue;
        }
        for k in &n.keyspaces {
            let s = &k.stats;
            table.row([
                n.node.clone(),
                k.name.clone(),
                s.gets.to_string(),
                percent(s.cache_hits, s.gets),
                s.loads.to_string(),
                s.peer_loads.to_string(),
                s.errors().to_string(),
                (k.main_cache_entries + k.hot_cache_entries).to_string(),
                format!(
                    "{} / {}",
                    output::bytes(k.main_cache_bytes + k.hot_cache_bytes),
                    output::bytes(k.max_bytes)
                ),
                breaker(k.circuit_breaker),
            ]);
        }
    }
    table.print()
}

/// `stats --cluster -o json`: the shape documented in docs/cli.md.
#[derive(Serialize)]
struct ClusterStats {
    /// Members asked (in the last poll).
    nodes_asked: usize,
    /// Members that answered the last poll: the totals are theirs.
    nodes_answered: usize,
    /// Seconds between the starts of the two polls; `null` with `--interval 0`.
    interval_seconds: Option<f64>,
    /// Members that did not answer the last poll.
    unreachable: Vec<Unreachable>,
    keyspaces: Vec<KeyspaceStats>,
}

#[derive(Serialize)]
struct Unreachable {
    node: String,
    addr: String,
    error: ErrorBody,
}

/// One keyspace over the cluster.
#[derive(Serialize)]
struct KeyspaceStats {
    name: String,
    totals: Totals,
    /// `null` with `--interval 0`.
    rates: Option<Rates>,
}

/// One keyspace's counters summed over the members that answered the last poll.
#[derive(Serialize)]
struct Totals {
    nodes: usize,
    gets: u64,
    cache_hits: u64,
    hit_ratio: Option<f64>,
    loads: u64,
    fetches: u64,
    errors: u64,
    entries: u64,
    bytes: u64,
    max_bytes: u64,
    circuit_breaker: Option<BreakerState>,
    /// Every counter, summed.
    stats: Stats,
}

impl From<&KeySpaceTotal> for Totals {
    fn from(t: &KeySpaceTotal) -> Self {
        let s = &t.stats;
        Totals {
            nodes: t.nodes,
            gets: s.gets,
            cache_hits: s.cache_hits,
            hit_ratio: (s.gets > 0).then(|| s.cache_hits as f64 / s.gets as f64),
            loads: s.loads,
            fetches: s.fetches(),
            errors: s.errors(),
            entries: t.entries,
            bytes: t.bytes,
            max_bytes: t.max_bytes,
            circuit_breaker: t.circuit_breaker,
            stats: s.clone(),
        }
    }
}

/// The members that answered `poll`, by address, with their keyspaces.
fn answered(
    poll: &Answers<Vec<KeySpaceSnapshot>>,
) -> impl Iterator<Item = (&str, &[KeySpaceSnapshot])> {
    poll.answered()
        .map(|(member, keyspaces)| (member.addr.as_str(), &keyspaces[..]))
}

/// `distcache stats --cluster`: one row per keyspace summed over the members, with rates.
async fn cluster(args: &StatsArgs, global: &Global) -> anyhow::Result<()> {
    let mut fleet = fleet(global)?;
    fleet.refresh(&global.client()?).await?;
    let started = Instant::now();
    let mut last = fleet.stats().await;
    let mut previous = None;
    if !args.interval.is_zero() {
        tokio::time::sleep_until((started + args.interval).into()).await;
        let second = Instant::now();
        previous = Some((
            std::mem::replace(&mut last, fleet.stats().await),
            second - started,
        ));
    }
    if last.answered().next().is_none() {
        let why = last
            .failed()
            .next()
            .map_or("no member to ask".to_owned(), |(m, e)| {
                format!("{} ({}): {e}", m.name(), m.addr)
            });
        return Err(Error::Unavailable(format!("no member answered: {why}")).into());
    }
    if let Some(only) = args.only() {
        last = last.only_keyspace(only)?;
    }
    let rates = previous
        .as_ref()
        .map(|(poll, elapsed)| KeySpaceTotal::rates(answered(poll), answered(&last), *elapsed));
    let out = ClusterStats {
        nodes_asked: last.len(),
        nodes_answered: last.answered().count(),
        interval_seconds: previous.as_ref().map(|(_, elapsed)| elapsed.as_secs_f64()),
        unreachable: last
            .failed()
            .map(|(member, e)| Unreachable {
                node: member.name().to_owned(),
                addr: member.addr.clone(),
                error: ErrorBody::from(e),
            })
            .collect(),
        keyspaces: last
            .totals()
            .iter()
            .map(|(name, total)| KeyspaceStats {
                name: name.clone(),
                totals: Totals::from(total),
                rates: rates
                    .as_ref()
                    .map(|r| r.get(name).copied().unwrap_or_default()),
            })
            .collect(),
    };
    for u in &out.unreachable {
        eprintln!(
            "{} ({}) did not answer: {}",
            u.node, u.addr, u.error.message
        );
    }
    if global.output == Format::Json {
        return output::json(&out);
    }
    print_cluster(&out)
}

/// The `--cluster` table: a summary line, then one row per keyspace.
fn print_cluster(out: &ClusterStats) -> anyhow::Result<()> {
    let over = out
        .interval_seconds
        .map_or(String::new(), |s| format!(" · rates over {s:.1}s"));
    println!(
        "{} of {} members answered{over}",
        out.nodes_answered, out.nodes_asked
    );
    let mut header = vec![
        "KEYSPACE", "NODES", "GETS", "HIT %", "LOADS", "FETCHES", "ERRORS", "ENTRIES", "BYTES",
        "BREAKER",
    ];
    if out.interval_seconds.is_some() {
        header.extend(["GET/S", "HIT/S", "LOAD/S", "FETCH/S", "ERR/S", "HIT % NOW"]);
    }
    let mut table = Table::new(header);
    for k in &out.keyspaces {
        let t = &k.totals;
        let mut row = vec![
            k.name.clone(),
            t.nodes.to_string(),
            t.gets.to_string(),
            percent(t.cache_hits, t.gets),
            t.loads.to_string(),
            t.fetches.to_string(),
            t.errors.to_string(),
            t.entries.to_string(),
            format!(
                "{} / {}",
                output::bytes(t.bytes),
                output::bytes(t.max_bytes)
            ),
            breaker(t.circuit_breaker),
        ];
        if let Some(r) = &k.rates {
            row.extend(
                [
                    r.gets_per_s,
                    r.hits_per_s,
                    r.loads_per_s,
                    r.fetches_per_s,
                    r.errors_per_s,
                ]
                .map(|v| format!("{v:.1}")),
            );
            row.push(
                r.hit_ratio
                    .map_or("-".into(), |h| format!("{:.1}", h * 100.0)),
            );
        }
        table.row(row);
    }
    table.print()
}
