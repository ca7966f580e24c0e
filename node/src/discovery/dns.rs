//! The DNS provider: the A/AAAA records of a name (each address with the configured port),
//! or for a `_`-prefixed name its SRV records (each target's addresses with the record's
//! port), resolved at start and again every `interval`.
//!
//! A failed lookup keeps the last known list, and so does an answer with no records: a name
//! that vanishes for a moment (a DNS server restarting, a Service recreated) must not empty
//! every node's ring at once. Members that are really gone leave through probing.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use hickory_resolver::TokioResolver;
use hickory_resolver::config::{ConnectionConfig, NameServerConfig, ResolverConfig};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::proto::rr::RData;
use tokio::sync::watch;

use super::config::DnsConfig;
use super::{Discovery, publish};
use crate::error::{Error, Problems, Result};

/// Peers from DNS records, re-resolved on an interval.
pub struct DnsDiscovery {
    lookup: Arc<Lookup>,
    interval: Duration,
    addrs: watch::Sender<Vec<String>>,
    task: super::Background,
}

/// One resolution of the configured name.
struct Lookup {
    resolver: TokioResolver,
    name: String,
    srv: bool,
    /// The port of A/AAAA addresses.
    port: u16,
    describe: String,
}

impl DnsDiscovery {
    /// A provider for `config`; `own_port` (the port this node is reached at) is the port of
    /// A/AAAA addresses unless `config.port` names one. Nothing is resolved before `start`.
    pub fn new(config: &DnsConfig, own_port: u16) -> Result<Self> {
        let problems = config.problems();
        if !problems.is_empty() {
            let mut prefixed = Problems::new();
            prefixed.extend_prefixed("discovery.dns", problems);
            return Err(Error::InvalidConfig(prefixed));
        }
        let name = config.name.trim().to_owned();
        let (builder, describe) = match &config.server {
            Some(server) => {
                let server: SocketAddr = server.parse().map_err(|_| {
                    let mut p = Problems::new();
                    p.push("discovery.dns.server", format!("`{server}` is not ip:port"));
                    Error::InvalidConfig(p)
                })?;
                let mut udp = ConnectionConfig::udp();
                udp.port = server.port();
                let mut tcp = ConnectionConfig::tcp();
                tcp.port = server.port();
                let ns = NameServerConfig::new(server.ip(), true, vec![udp, tcp]);
                let config = ResolverConfig::from_parts(None, vec![], vec![ns]);
                (
                    TokioResolver::builder_with_config(config, TokioRuntimeProvider::default()),
                    format!("dns {name} (server {server})"),
                )
            }
            None => (
                TokioResolver::builder_tokio().map_err(|e| {
                    Error::Unavailable(format!("cannot read the system's DNS configuration: {e}"))
                })?,
                format!("dns {name}"),
            ),
        };
        let mut builder = builder;
        let opts = builder.options_mut();
        // Every round asks the server (the answer is cached in the list, not in the resolver),
        // and a round ends well within the interval.
        opts.cache_size = 0;
        opts.timeout = config
            .interval
            .clamp(Duration::from_millis(200), Duration::from_secs(2));
        opts.attempts = 2;
        opts.ip_strategy = hickory_resolver::config::LookupIpStrategy::Ipv4AndIpv6;
        let resolver = builder
            .build()
            .map_err(|e| Error::Unavailable(format!("cannot build the DNS resolver: {e}")))?;
        Ok(DnsDiscovery {
            lookup: Arc::new(Lookup {
                resolver,
                srv: config.is_srv(),
                name,
                port: config.port.unwrap_or(own_port),
                describe,
            }),
            interval: config.interval,
            addrs: watch::Sender::new(Vec::new()),
            task: super::Background::default(),
        })
    }

    /// Resolves the name now and publishes the answer (or keeps the last known list);
    /// the addresses found, or why there are none.
    pub async fn refresh(&self) -> Result<Vec<String>> {
        refresh(&self.lookup, &self.addrs).await
    }
}

/// One round: resolve, publish a non-empty answer, else keep (and log) the last list.
async fn refresh(lookup: &Lookup, addrs: &watch::Sender<Vec<String>>) -> Result<Vec<String>> {
    let outcome = match lookup.resolve().await {
        Ok(found) if found.is_empty() => Err(format!("{} has no records", lookup.name)),
        Ok(found) => Ok(found),
        Err(e) => Err(e),
    };
    match outcome {
        Ok(found) => {
            if publish(addrs, found.clone()) {
                tracing::info!(source = %lookup.describe, peers = ?addrs.borrow(), "discovered peers changed");
            }
            Ok(found)
        }
        Err(message) => {
            let known = addrs.borrow().len();
            tracing::warn!(source = %lookup.describe, error = %message, known, "DNS lookup failed; keeping the last known peers");
            Err(Error::Unavailable(format!(
                "{}: {message}",
                lookup.describe
            )))
        }
    }
}

impl Lookup {
    /// The addresses the name resolves to now, sorted (empty: the name has no records).
    async fn resolve(&self) -> std::result::Result<Vec<String>, String> {
        self.resolver.clear_cache();
        let mut found = if self.srv {
            self.resolve_srv().await?
        } else {
            self.ips(&self.name)
                .await?
                .into_iter()
                .map(|ip| SocketAddr::new(ip, self.port).to_string())
                .collect()
        };
        found.sort();
        found.dedup();
        Ok(found)
    }

    /// The addresses of `host` (none: it has no A or AAAA record).
    async fn ips(&self, host: &str) -> std::result::Result<Vec<IpAddr>, String> {
        match self.resolver.lookup_ip(host).await {
            Ok(ips) => Ok(ips.iter().collect()),
            Err(e) if e.is_no_records_found() => Ok(Vec::new()),
            Err(e) => Err(format!("looking up {host}: {e}")),
        }
    }

    /// Each SRV target's addresses with the record's port. A target's addresses come from
    /// the answer's additional records when the server sent them, else from a lookup; a
    /// target that cannot be resolved fails the round (its node would wrongly drop out).
    async fn resolve_srv(&self) -> std::result::Result<Vec<String>, String> {
        let answer = match self.resolver.srv_lookup(self.name.as_str()).await {
            Ok(answer) => answer,
            Err(e) if e.is_no_records_found() => return Ok(Vec::new()),
            Err(e) => return Err(format!("looking up SRV {}: {e}", self.name)),
        };
        let mut found = Vec::new();
        for record in answer.answers() {
            let RData::SRV(srv) = &record.data else {
                continue;
            };
            let mut ips: Vec<IpAddr> = answer
                .additionals()
                .iter()
                .filter(|r| r.name == srv.target)
                .filter_map(|r| match &r.data {
                    RData::A(a) => Some(IpAddr::V4(a.0)),
                    RData::AAAA(aaaa) => Some(IpAddr::V6(aaaa.0)),
                    _ => None,
                })
                .collect();
            if ips.is_empty() {
                let target = srv.target.to_string();
                ips = self.ips(&target).await?;
                if ips.is_empty() {
                    return Err(format!("SRV target {target} has no address"));
                }
            }
            found.extend(
                ips.into_iter()
                    .map(|ip| SocketAddr::new(ip, srv.port).to_string()),
            );
        }
        Ok(found)
    }
}

#[async_trait]
impl Discovery for DnsDiscovery {
    /// Resolves once (a failure is logged, not fatal: the node then waits for its quorum as
    /// usual), then again every interval in the background.
    async fn start(&self) -> Result<()> {
        let _ = self.refresh().await;
        let lookup = Arc::clone(&self.lookup);
        let addrs = self.addrs.clone();
        let interval = self.interval;
        let task = tokio::spawn(async move {
            let mut ticker = tokio::time::interval(interval);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            ticker.tick().await;
            loop {
                ticker.tick().await;
                let _ = refresh(&lookup, &addrs).await;
            }
        });
        self.task.set(task);
        Ok(())
    }

    async fn stop(&self) -> Result<()> {
        self.task.stop();
        Ok(())
    }

    async fn peers(&self) -> Result<Vec<String>> {
        Ok(self.addrs.borrow().clone())
    }

    fn changes(&self) -> watch::Receiver<Vec<String>> {
        self.addrs.subscribe()
    }

    fn describe(&self) -> String {
        self.lookup.describe.clone()
    }
}
