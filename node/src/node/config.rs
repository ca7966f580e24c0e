//! A node's configuration: every key of the `--config` TOML file, its defaults, and the
//! check that names every problem at once.

use std::net::SocketAddr;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use distcache_control::ControlConfig;

use crate::cluster::ClusterConfig;
use crate::config::EngineConfig;
use crate::discovery::{DiscoveryConfig, Provider, check_addr};
use crate::error::{Error, Problems, Result};
use crate::otel::OtelConfig;
use crate::server::ServerConfig;
use crate::tls::TlsConfig;

/// Everything a node needs to start; the TOML file of `--config` has these keys.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NodeConfig {
    /// The node's name, unique in the cluster and stable across restarts.
    pub id: String,
    /// Address to listen on. Default `127.0.0.1:3320`.
    pub listen: String,
    /// Address peers and clients reach this node at. Default: `listen` (required when
    /// `listen` is a wildcard such as `0.0.0.0`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub advertise: Option<String>,
    /// Directory for the node's durable state. Default `./distcache-data`.
    pub data_dir: PathBuf,
    /// Addresses of the cluster's nodes (static discovery); this node's own may be listed.
    pub peers: Vec<String>,
    /// How the node finds its peers (`[discovery]`): the `peers` list (default), DNS
    /// records, or pods through the Kubernetes API.
    pub discovery: DiscoveryConfig,
    /// A TOML or JSON file of keyspace specs to serve.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub keyspace_file: Option<PathBuf>,
    /// Engine defaults and limits.
    pub engine: EngineConfig,
    /// Probing, quorum and topology settings.
    pub cluster: ClusterConfig,
    /// HTTP limits and deadlines.
    pub server: ServerConfig,
    /// Raft timings and membership targets of the control plane.
    pub control: ControlConfig,
    /// TLS on the listener and between nodes (`[tls]`); absent: plain HTTP.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls: Option<TlsConfig>,
    /// OpenTelemetry export of traces and metrics over OTLP (`[otel]`); nothing is exported
    /// without an endpoint. The binary lays the `OTEL_*` variables over it
    /// ([`OtelConfig::resolve`]); the library reads no environment.
    pub otel: OtelConfig,
}

impl Default for NodeConfig {
    fn default() -> Self {
        NodeConfig {
            id: String::new(),
            listen: "127.0.0.1:3320".into(),
            advertise: None,
            data_dir: PathBuf::from("./distcache-data"),
            peers: Vec::new(),
            discovery: DiscoveryConfig::default(),
            keyspace_file: None,
            engine: EngineConfig::default(),
            cluster: ClusterConfig::default(),
            server: ServerConfig::default(),
            control: ControlConfig::default(),
            tls: None,
            otel: OtelConfig::default(),
        }
    }
}

impl NodeConfig {
    /// A node named `id` with millisecond timings, for tests.
    pub fn for_test(id: &str) -> Self {
        NodeConfig {
            id: id.into(),
            listen: "127.0.0.1:0".into(),
            engine: EngineConfig::for_test(),
            cluster: ClusterConfig::for_test(),
            control: ControlConfig::for_test(),
            discovery: DiscoveryConfig::for_test(),
            ..NodeConfig::default()
        }
    }

    /// Reads the text of a `--config` TOML file. Only its syntax and types are checked here:
    /// the error names the line, the column and the key of a mistake. Flags may still change
    /// the result, so check its values afterwards with [`problems`](Self::problems).
    pub fn from_toml(text: &str) -> Result<NodeConfig> {
        toml::from_str(text).map_err(|e| {
            let mut p = Problems::new();
            p.push("config", e.to_string().trim_end().to_owned());
            Error::InvalidConfig(p)
        })
    }

    /// Every problem of this configuration, fields named as in the TOML file.
    pub fn problems(&self) -> Problems {
        let mut problems = Problems::new();
        if let Err(message) = crate::spec::validate::name(&self.id) {
            problems.push("id", message);
        }
        if check_addr(&self.listen).is_err() {
            problems.push(
                "listen",
                format!("`{}` is not a host:port address", self.listen),
            );
        }
        if let Some(adv) = &self.advertise
            && check_addr(adv).is_err()
        {
            problems.push("advertise", format!("`{adv}` is not a host:port address"));
        }
        for (i, peer) in self.peers.iter().enumerate() {
            if check_addr(peer.trim()).is_err() {
                problems.push(
                    format!("peers[{i}]"),
                    format!("`{peer}` is not a host:port address"),
                );
            }
        }
        if self.discovery.provider != Provider::Static && !self.peers.is_empty() {
            problems.push(
                "peers",
                format!(
                    "is only read by the static provider, but discovery.provider is {}: drop one",
                    self.discovery.provider
                ),
            );
        }
        problems.extend_prefixed("discovery", self.discovery.problems());
        problems.extend_prefixed("engine", self.engine.problems());
        problems.extend_prefixed("cluster", self.cluster.problems());
        problems.extend_prefixed("server", self.server.problems());
        for (field, message) in self.control.problems() {
            problems.push(format!("control.{field}"), message);
        }
        if let Some(tls) = &self.tls {
            problems.0.extend(tls.problems().0);
        }
        problems.extend_prefixed("otel", self.otel.problems());
        problems
    }

    /// The address this node announces, given the address it is bound to.
    pub fn advertised(&self, bound: SocketAddr) -> Result<String> {
        match &self.advertise {
            Some(adv) => Ok(adv.clone()),
            None if bound.ip().is_unspecified() => Err(Error::InvalidConfig({
                let mut p = Problems::new();
                p.push(
                    "advertise",
                    format!("is required when listening on the wildcard address {bound}"),
                );
                p
            })),
            None => Ok(bound.to_string()),
        }
    }
}
