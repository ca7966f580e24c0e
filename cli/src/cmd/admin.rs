//! `distcache peers | metrics | cluster status | wait`: looking at a running cluster
//! (`stats` is in `stats.rs`).

use std::time::{Duration, Instant};

use clap::{Args, Subcommand};
use distcache::Error;
use distcache::client::{Answer, Client, Fleet, Member};
use distcache::wire::{ClusterInfo, ErrorBody};
use serde::Serialize;

use super::{Global, parse_duration};
use crate::output::{self, Format, Table};

#[derive(Debug, Subcommand)]
pub enum ClusterCommand {
    /// Leader, term, applied revision and members, as every reachable member sees them.
    ///
    /// Example: distcache cluster status -o json
    Status,
}

#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  distcache wait --nodes 3 --healthy --timeout 60s\n  distcache wait && distcache keyspace apply -f keyspaces.toml\n\nExit code 4 when the cluster is not ready in time."
)]
pub struct WaitArgs {
    /// Wait until at least this many members are in the cluster.
    #[arg(long)]
    pub nodes: Option<usize>,
    /// Also wait until every member is healthy and a leader is known.
    #[arg(long)]
    pub healthy: bool,
    /// Give up after this long.
    #[arg(long, value_parser = parse_duration, default_value = "60s")]
    pub timeout: Duration,
}

/// `distcache metrics`: the answering node's Prometheus text, as it is.
pub async fn metrics(global: &Global) -> anyhow::Result<()> {
    let text = global.client()?.metrics().await?;
    print!("{text}");
    Ok(())
}

pub async fn peers(global: &Global) -> anyhow::Result<()> {
    let members = global.client()?.peers().await?;
    if global.output == Format::Json {
        return output::json(&members);
    }
    let mut table = Table::new(["ID", "ADDRESS", "STATE", "FAILURES", "LAST SEEN", "SOURCE"]);
    for m in &members {
        let state = match (m.is_self, m.healthy, m.reachable) {
            (true, _, _) => "self",
            (false, true, _) => "healthy",
            (false, false, true) => "reachable, not serving",
            (false, false, false) => "unreachable",
        };
        table.row([
            m.id.clone().unwrap_or_else(|| "?".into()),
            m.addr.clone(),
            state.into(),
            m.consecutive_failures.to_string(),
            m.last_seen_ms
                .map_or("never".into(), |ms| format!("{ms} ms ago")),
            m.source.clone().unwrap_or_else(|| "-".into()),
        ]);
    }
    table.print()
}

/// A fleet whose members are each asked with a short deadline: one member that hangs must not
/// hold the whole answer up for the full request timeout.
pub(super) fn fleet(global: &Global) -> anyhow::Result<Fleet> {
    let fleet = Fleet::new(
        global.token.clone(),
        global.request_timeout.min(Duration::from_secs(5)),
    );
    Ok(fleet.with_tls(&global.tls())?)
}

/// One member's view for `cluster status`.
#[derive(Serialize)]
struct MemberView {
    node: String,
    addr: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    view: Option<ClusterInfo>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<ErrorBody>,
}

impl From<Answer<ClusterInfo>> for MemberView {
    fn from(answer: Answer<ClusterInfo>) -> Self {
        let (view, error) = match answer.result {
            Ok(view) => (Some(view), None),
            Err(e) => (None, Some(ErrorBody::from(&e))),
        };
        MemberView {
            node: answer.member.name().to_owned(),
            addr: answer.member.addr,
            view,
            error,
        }
    }
}

pub async fn cluster(cmd: ClusterCommand, global: &Global) -> anyhow::Result<()> {
    let ClusterCommand::Status = cmd;
    let client = global.client()?;
    let info = client.cluster().await?;
    let mut fleet = fleet(global)?;
    if info.members.is_empty() {
        // No control plane: the answering node alone.
        fleet.set_members([Member {
            id: Some(info.node_id.clone()),
            addr: client
                .current_endpoint()
                .trim_start_matches("http://")
                .to_owned(),
        }]);
    } else {
        fleet.set_members(info.members.iter().map(Member::from));
    }
    let views: Vec<MemberView> = fleet
        .cluster()
        .await
        .into_iter()
        .map(MemberView::from)
        .collect();
    if global.output == Format::Json {
        #[derive(Serialize)]
        struct Out<'a> {
            #[serde(flatten)]
            answering: &'a ClusterInfo,
            views: Vec<MemberView>,
        }
        return output::json(&Out {
            answering: &info,
            views,
        });
    }
    println!(
        "leader {}   term {}   answered by {}",
        info.leader
            .as_deref()
            .unwrap_or("(none: election or no control plane)"),
        info.term,
        info.node_id
    );
    let mut table = Table::new([
        "MEMBER",
        "ADDRESS",
        "ROLE",
        "VOTER",
        "HEALTHY",
        "APPLIED REVISION",
    ]);
    for m in &info.members {
        let view = views
            .iter()
            .find(|v| v.addr == m.addr)
            .and_then(|v| v.view.as_ref());
        let (role, revision) = match view {
            Some(view) => (
                format!("{:?}", view.role).to_lowercase(),
                view.applied_revision.to_string(),
            ),
            None => ("unreachable".into(), "-".into()),
        };
        table.row([
            m.id.clone(),
            m.addr.clone(),
            role,
            if m.voter { "yes" } else { "no" }.into(),
            if m.healthy { "yes" } else { "no" }.into(),
            revision,
        ]);
    }
    table.print()
}

pub async fn wait(args: WaitArgs, global: &Global) -> anyhow::Result<()> {
    let client = global.client()?.with_timeout(Duration::from_secs(2));
    let started = Instant::now();
    let deadline = started + args.timeout;
    let show = output::interactive() && std::io::IsTerminal::is_terminal(&std::io::stderr());
    let mut last = String::new();
    loop {
        let (ready, why, info) = readiness(&client, &args).await;
        if ready {
            if show {
                eprintln!();
            }
            let info = info.unwrap_or_else(unreachable_info);
            #[derive(Serialize)]
            struct Ready {
                ready: bool,
                nodes: usize,
                leader: Option<String>,
                waited_ms: u128,
            }
            let summary = Ready {
                ready: true,
                nodes: info.members.len().max(1),
                leader: info.leader.clone(),
                waited_ms: started.elapsed().as_millis(),
            };
            return match global.output {
                Format::Json => output::json(&summary),
                Format::Table => {
                    println!(
                        "ready: {} node(s), leader {} (waited {:.1}s)",
                        summary.nodes,
                        summary.leader.as_deref().unwrap_or("-"),
                        started.elapsed().as_secs_f64()
                    );
                    Ok(())
                }
            };
        }
        if Instant::now() >= deadline {
            return Err(Error::Timeout {
                operation: format!("waiting for the cluster ({why})"),
                after: args.timeout,
            }
            .into());
        }
        if show && why != last {
            eprint!("\rwaiting: {why}\x1b[K");
            last = why;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn unreachable_info() -> ClusterInfo {
    ClusterInfo {
        node_id: String::new(),
        role: distcache::Role::Shutdown,
        leader: None,
        term: 0,
        applied_revision: 0,
        members: Vec::new(),
    }
}

/// Whether the cluster is ready by the wait's terms, and if not, why.
async fn readiness(client: &Client, args: &WaitArgs) -> (bool, String, Option<ClusterInfo>) {
    match client.health().await {
        Ok(h) if h.ready && h.owning && h.agreed => {}
        Ok(h) if !h.ready => return (false, format!("{} is starting", h.node_id), None),
        Ok(h) if !h.owning => {
            return (
                false,
                format!("{} is taking its keys over", h.node_id),
                None,
            );
        }
        Ok(h) => {
            return (
                false,
                format!("{}: the members do not agree on the ring yet", h.node_id),
                None,
            );
        }
        Err(e) => return (false, format!("no answer ({e})"), None),
    }
    if args.nodes.is_none() && !args.healthy {
        return (true, String::new(), client.cluster().await.ok());
    }
    let info = match client.cluster().await {
        Ok(info) => info,
        Err(e) => return (false, format!("no cluster view ({e})"), None),
    };
    if let Some(n) = args.nodes
        && info.members.len() < n
    {
        let why = format!("{} of {n} members", info.members.len());
        return (false, why, Some(info));
    }
    if args.healthy {
        if info.leader.is_none() {
            return (false, "no leader yet".into(), Some(info));
        }
        let unhealthy: Vec<&str> = info
            .members
            .iter()
            .filter(|m| !m.healthy)
            .map(|m| m.id.as_str())
            .collect();
        if !unhealthy.is_empty() {
            return (
                false,
                format!("not healthy: {}", unhealthy.join(", ")),
                Some(info),
            );
        }
    }
    (true, String::new(), Some(info))
}
