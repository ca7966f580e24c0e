//! `[discovery]`: which provider finds the peers, and each provider's settings, with their
//! defaults and the check that names every problem.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::nats::NatsConfig;
use crate::error::Problems;
use crate::units::MAX_INTERVAL;

/// Which provider a node finds its peers with.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum Provider {
    /// The node's `peers` list, fixed for its lifetime.
    #[default]
    Static,
    /// The A/AAAA (or, for a `_`-prefixed name, SRV) records of `[discovery.dns] name`,
    /// re-resolved every `interval`.
    Dns,
    /// The Running and Ready pods of a namespace matching a label selector, followed through
    /// the Kubernetes API (list, then watch).
    Kubernetes,
    /// The nodes announcing themselves on a NATS subject (`[discovery.nats]`).
    Nats,
}

impl Provider {
    /// The provider's name as written in node.toml and on the command line.
    pub fn as_str(&self) -> &'static str {
        match self {
            Provider::Static => "static",
            Provider::Dns => "dns",
            Provider::Kubernetes => "kubernetes",
            Provider::Nats => "nats",
        }
    }
}

impl std::fmt::Display for Provider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Provider {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "static" => Ok(Provider::Static),
            "dns" => Ok(Provider::Dns),
            "kubernetes" | "k8s" => Ok(Provider::Kubernetes),
            "nats" => Ok(Provider::Nats),
            other => Err(format!(
                "`{other}` is not a discovery provider (static, dns, kubernetes or nats)"
            )),
        }
    }
}

/// How a node finds its peers (`[discovery]` in node.toml). The static provider reads the
/// node's top-level `peers`; the others their own table.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DiscoveryConfig {
    /// `static`, `dns`, `kubernetes` or `nats`. Default `static`.
    pub provider: Provider,
    /// Settings of the `dns` provider (`[discovery.dns]`).
    pub dns: DnsConfig,
    /// Settings of the `kubernetes` provider (`[discovery.kubernetes]`).
    pub kubernetes: KubernetesConfig,
    /// Settings of the `nats` provider (`[discovery.nats]`).
    pub nats: NatsConfig,
}

/// The `dns` provider's settings (`[discovery.dns]`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DnsConfig {
    /// The name to resolve: its A and AAAA records, each address with `port`; or, for a name
    /// whose first label starts with `_` (`_http._tcp.distcache.default.svc.cluster.local`),
    /// its SRV records, each target's addresses with the record's port. Required.
    pub name: String,
    /// The port of the addresses of A/AAAA records. Default: the port this node is reached
    /// at (its advertised address).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    /// How often the name is resolved again. Default 5 s.
    #[serde(with = "humantime_serde")]
    pub interval: Duration,
    /// A DNS server (`ip:port`, UDP and TCP) to ask instead of the system's resolvers (tests,
    /// split DNS). Default: the system configuration (`/etc/resolv.conf`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server: Option<String>,
}

impl Default for DnsConfig {
    fn default() -> Self {
        DnsConfig {
            name: String::new(),
            port: None,
            interval: Duration::from_secs(5),
            server: None,
        }
    }
}

/// The `kubernetes` provider's settings (`[discovery.kubernetes]`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct KubernetesConfig {
    /// The namespace whose pods are listed. Default: the pod's own (the service account's
    /// namespace file in a cluster, else the kubeconfig context's namespace).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// A label selector the pods must match. Default `app=distcache`.
    pub selector: String,
    /// The name of the container port peers are reached at. Default `http`.
    pub port_name: String,
    /// Also count pods that run but are not Ready yet. Off by default (only Running and Ready
    /// pods); turn it on when nodes started together must find each other to form the cluster
    /// (`minimum_peers_quorum` > 1), since a node is only Ready once it formed or joined one —
    /// the reason a headless Service sets `publishNotReadyAddresses`.
    pub include_not_ready: bool,
    /// A kubeconfig file to use. Default: the in-cluster service account, else `KUBECONFIG`,
    /// else `~/.kube/config`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kubeconfig: Option<PathBuf>,
}

impl Default for KubernetesConfig {
    fn default() -> Self {
        KubernetesConfig {
            namespace: None,
            selector: "app=distcache".into(),
            port_name: "http".into(),
            include_not_ready: false,
            kubeconfig: None,
        }
    }
}

impl DiscoveryConfig {
    /// Every problem, fields named as in the `[discovery]` table. Only the chosen provider's
    /// table is checked.
    pub fn problems(&self) -> Problems {
        let mut problems = Problems::new();
        match self.provider {
            Provider::Static => {}
            Provider::Dns => problems.extend_prefixed("dns", self.dns.problems()),
            Provider::Kubernetes => {
                problems.extend_prefixed("kubernetes", self.kubernetes.problems())
            }
            Provider::Nats => problems.extend_prefixed("nats", self.nats.problems()),
        }
        problems
    }

    /// Millisecond timings for tests.
    pub fn for_test() -> Self {
        DiscoveryConfig {
            dns: DnsConfig {
                interval: Duration::from_millis(100),
                ..DnsConfig::default()
            },
            ..DiscoveryConfig::default()
        }
    }
}

impl DnsConfig {
    /// Every problem, fields named as in the `[discovery.dns]` table.
    pub fn problems(&self) -> Problems {
        let mut problems = Problems::new();
        if let Err(m) = check_dns_name(&self.name) {
            problems.push("name", m);
        }
        if self.port == Some(0) {
            problems.push("port", "must be a port number from 1 to 65535");
        }
        problems.duration_within("interval", self.interval, MAX_INTERVAL);
        if let Some(server) = &self.server
            && server.parse::<SocketAddr>().is_err()
        {
            problems.push(
                "server",
                format!("`{server}` is not an ip:port address (e.g. 10.0.0.10:53)"),
            );
        }
        problems
    }

    /// Whether the name asks for SRV records (its first label starts with `_`).
    pub fn is_srv(&self) -> bool {
        self.name.trim().starts_with('_')
    }
}

fn check_dns_name(name: &str) -> Result<(), String> {
    let name = name.trim();
    if name.is_empty() {
        return Err(
            "is required with provider = \"dns\" (e.g. distcache.default.svc.cluster.local)".into(),
        );
    }
    let bare = name.strip_suffix('.').unwrap_or(name);
    let bad_label = bare.split('.').any(|label| {
        label.is_empty()
            || label.len() > 63
            || !label
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    });
    if bad_label || bare.len() > 253 {
        return Err(format!("`{name}` is not a DNS name"));
    }
    Ok(())
}

impl KubernetesConfig {
    /// Every problem, fields named as in the `[discovery.kubernetes]` table.
    pub fn problems(&self) -> Problems {
        let mut problems = Problems::new();
        if let Some(ns) = &self.namespace
            && (ns.is_empty()
                || ns.len() > 63
                || !ns
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'))
        {
            problems.push(
                "namespace",
                format!("`{ns}` is not a namespace name (lowercase letters, digits and `-`)"),
            );
        }
        if self.selector.trim().is_empty() {
            problems.push(
                "selector",
                "must not be empty: it decides which pods are this cluster's (e.g. app=distcache)",
            );
        }
        if self.port_name.trim().is_empty() {
            problems.push("port_name", "must name a container port (e.g. http)");
        }
        if let Some(path) = &self.kubeconfig
            && path.as_os_str().is_empty()
        {
            problems.push("kubeconfig", "must not be empty");
        }
        problems
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The documented defaults, the TOML table, and every bad field named.
    #[test]
    fn defaults_toml_and_problems() {
        let c = DiscoveryConfig::default();
        assert_eq!(c.provider, Provider::Static);
        assert_eq!(c.dns.interval, Duration::from_secs(5));
        assert_eq!(c.kubernetes.selector, "app=distcache");
        assert_eq!(c.kubernetes.port_name, "http");
        assert!(!c.kubernetes.include_not_ready);
        assert!(c.problems().is_empty());

        let parsed: DiscoveryConfig = toml::from_str(
            "provider = \"dns\"\n[dns]\nname = \"_http._tcp.distcache.local\"\ninterval = \"2s\"\nserver = \"127.0.0.1:5353\"\n",
        )
        .expect("parses");
        assert_eq!(parsed.provider, Provider::Dns);
        assert!(parsed.dns.is_srv());
        assert_eq!(parsed.dns.interval, Duration::from_secs(2));
        assert!(parsed.problems().is_empty(), "{:?}", parsed.problems());

        let bad = DiscoveryConfig {
            provider: Provider::Dns,
            dns: DnsConfig {
                name: String::new(),
                port: Some(0),
                interval: Duration::ZERO,
                server: Some("dns.local:53".into()),
            },
            ..DiscoveryConfig::default()
        };
        let fields: Vec<String> = bad.problems().iter().map(|p| p.field.clone()).collect();
        assert_eq!(
            fields,
            ["dns.name", "dns.port", "dns.interval", "dns.server"]
        );

        let bad = DiscoveryConfig {
            provider: Provider::Kubernetes,
            kubernetes: KubernetesConfig {
                namespace: Some("Not_A_Namespace".into()),
                selector: " ".into(),
                port_name: String::new(),
                ..KubernetesConfig::default()
            },
            ..DiscoveryConfig::default()
        };
        let fields: Vec<String> = bad.problems().iter().map(|p| p.field.clone()).collect();
        assert_eq!(
            fields,
            [
                "kubernetes.namespace",
                "kubernetes.selector",
                "kubernetes.port_name"
            ]
        );
        assert!(toml::from_str::<DiscoveryConfig>("provider = \"carrier-pigeon\"").is_err());
    }

    /// Provider names parse as the CLI spells them, case aside.
    #[test]
    fn provider_names() {
        for (text, p) in [
            ("static", Provider::Static),
            ("DNS", Provider::Dns),
            ("kubernetes", Provider::Kubernetes),
        ] {
            assert_eq!(text.parse::<Provider>(), Ok(p));
            assert_eq!(p.as_str().parse::<Provider>(), Ok(p));
        }
        assert_eq!("NATS".parse::<Provider>(), Ok(Provider::Nats));
        assert!("zookeeper".parse::<Provider>().is_err());
    }
}
