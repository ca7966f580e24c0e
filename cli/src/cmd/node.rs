//! `distcache node start`: runs a node until SIGINT or SIGTERM.
//!
//! Settings come from, in order of precedence: flags, `DISTCACHE_*` variables, the `--config`
//! TOML file, defaults. OpenTelemetry export (`[otel]`) also follows the standard `OTEL_*`
//! variables (`OTEL_EXPORTER_OTLP_ENDPOINT`, …), which win over the file; `--otel-endpoint`
//! wins over both.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Subcommand};
use distcache::{Node, NodeConfig};
use tokio::net::TcpListener;

#[derive(Debug, Subcommand)]
pub enum NodeCommand {
    /// Start a node and serve until interrupted.
    ///
    /// Examples:
    ///   distcache node start --id n1 --listen 127.0.0.1:3320 --peers 127.0.0.1:3320,127.0.0.1:3321
    ///   distcache node start --config node.toml --keyspace-file keyspaces.toml
    #[command(verbatim_doc_comment)]
    Start(Box<StartArgs>),
}

#[derive(Debug, Args)]
pub struct StartArgs {
    /// TOML file with every node setting (flags and variables override it).
    #[arg(long, env = "DISTCACHE_CONFIG")]
    pub config: Option<PathBuf>,
    /// The node's name, unique in the cluster and stable across restarts.
    #[arg(long, env = "DISTCACHE_ID")]
    pub id: Option<String>,
    /// Address to listen on [default: 127.0.0.1:3320].
    #[arg(long, env = "DISTCACHE_LISTEN")]
    pub listen: Option<String>,
    /// Address peers and clients reach this node at [default: --listen].
    #[arg(long, env = "DISTCACHE_ADVERTISE")]
    pub advertise: Option<String>,
    /// Directory for durable state [default: ./distcache-data].
    #[arg(long, env = "DISTCACHE_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Comma-separated addresses of the cluster's nodes (this node's may be included).
    #[arg(long, env = "DISTCACHE_PEERS", value_delimiter = ',')]
    pub peers: Option<Vec<String>>,
    /// How peers are found: `static` (--peers), `dns` (--dns-name), `kubernetes` (pods by
    /// --k8s-selector) or `nats` (announcements through --nats-url) [default: static].
    #[arg(long, env = "DISTCACHE_DISCOVERY", value_parser = ["static", "dns", "kubernetes", "nats"])]
    pub discovery: Option<String>,
    /// DNS discovery: the name whose A/AAAA records (or, starting with `_`, SRV records) list
    /// the nodes, e.g. distcache.default.svc.cluster.local.
    #[arg(long, env = "DISTCACHE_DNS_NAME")]
    pub dns_name: Option<String>,
    /// DNS discovery: the port of A/AAAA addresses [default: this node's port].
    #[arg(long, env = "DISTCACHE_DNS_PORT")]
    pub dns_port: Option<u16>,
    /// DNS discovery: how often the name is resolved again, e.g. 5s [default: 5s].
    #[arg(long, env = "DISTCACHE_DNS_INTERVAL", value_parser = distcache::units::parse_duration)]
    pub dns_interval: Option<std::time::Duration>,
    /// DNS discovery: a server (ip:port) to ask instead of the system's resolvers.
    #[arg(long, env = "DISTCACHE_DNS_SERVER")]
    pub dns_server: Option<String>,
    /// Kubernetes discovery: the namespace of the pods [default: the pod's own].
    #[arg(long, env = "DISTCACHE_K8S_NAMESPACE")]
    pub k8s_namespace: Option<String>,
    /// Kubernetes discovery: the label selector of the cluster's pods [default: app=distcache].
    #[arg(long, env = "DISTCACHE_K8S_SELECTOR")]
    pub k8s_selector: Option<String>,
    /// Kubernetes discovery: the name of the container port peers use [default: http].
    #[arg(long, env = "DISTCACHE_K8S_PORT_NAME")]
    pub k8s_port_name: Option<String>,
    /// Kubernetes discovery: also count Running pods that are not Ready yet (nodes started
    /// together that must find each other to form the cluster).
    #[arg(long, env = "DISTCACHE_K8S_INCLUDE_NOT_READY")]
    pub k8s_include_not_ready: bool,
    /// NATS discovery: the NATS servers, comma-separated or repeated (nats://host:4222).
    #[arg(long, env = "DISTCACHE_NATS_URL", value_delimiter = ',')]
    pub nats_url: Option<Vec<String>>,
    /// NATS discovery: the subject the cluster's nodes announce themselves on (one per
    /// cluster) [default: distcache.discovery].
    #[arg(long, env = "DISTCACHE_NATS_SUBJECT")]
    pub nats_subject: Option<String>,
    /// NATS discovery: a credentials file (JWT and NKey seed).
    #[arg(long, env = "DISTCACHE_NATS_CREDS")]
    pub nats_creds: Option<PathBuf>,
    /// NATS discovery: a user name (with DISTCACHE_NATS_PASSWORD).
    #[arg(long, env = "DISTCACHE_NATS_USER")]
    pub nats_user: Option<String>,
    /// NATS discovery: the password of --nats-user (prefer the variable to the flag).
    #[arg(long, env = "DISTCACHE_NATS_PASSWORD", hide_env_values = true)]
    pub nats_password: Option<String>,
    /// NATS discovery: an authentication token (prefer the variable to the flag).
    #[arg(long, env = "DISTCACHE_NATS_TOKEN", hide_env_values = true)]
    pub nats_token: Option<String>,
    /// NATS discovery: the CA (PEM) that signs the NATS servers' certificates.
    #[arg(long, env = "DISTCACHE_NATS_TLS_CA")]
    pub nats_tls_ca: Option<PathBuf>,
    /// NATS discovery: a client certificate (PEM) for servers that verify clients.
    #[arg(long, env = "DISTCACHE_NATS_TLS_CERT", requires = "nats_tls_key")]
    pub nats_tls_cert: Option<PathBuf>,
    /// NATS discovery: the private key of --nats-tls-cert (PEM).
    #[arg(long, env = "DISTCACHE_NATS_TLS_KEY", requires = "nats_tls_cert")]
    pub nats_tls_key: Option<PathBuf>,
    /// TOML or JSON file of keyspace specs.
    #[arg(long, env = "DISTCACHE_KEYSPACE_FILE")]
    pub keyspace_file: Option<PathBuf>,
    /// TOML file of named tokens with roles and keyspaces (`[[token]]` entries); needs
    /// --token too, which nodes send each other.
    #[arg(long, env = "DISTCACHE_TOKENS_FILE")]
    pub tokens_file: Option<PathBuf>,
    /// Members (this node included) that must answer before the node serves [default: 1].
    #[arg(long, env = "DISTCACHE_MINIMUM_PEERS_QUORUM")]
    pub minimum_peers_quorum: Option<usize>,
    /// Serve `GET /metrics` without a token, for Prometheus scrapers.
    #[arg(long, env = "DISTCACHE_METRICS_OPEN")]
    pub metrics_open: bool,
    /// Keep no metrics: no request timing, no `GET /metrics`, no hit timing (the counters
    /// that `stats` shows stay).
    #[arg(long, env = "DISTCACHE_NO_METRICS", conflicts_with = "metrics_open")]
    pub no_metrics: bool,
    /// The node's TLS certificate chain (PEM): the listener then speaks only TLS, and peers
    /// are dialled over https.
    #[arg(long, env = "DISTCACHE_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// The private key of --tls-cert (PEM).
    #[arg(long, env = "DISTCACHE_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// The cluster CA (PEM): verifies peers both ways (mutual TLS) and clients' certificates.
    #[arg(long, env = "DISTCACHE_TLS_CA")]
    pub tls_ca: Option<PathBuf>,
    /// `required`: every connection must present a client certificate signed by --tls-ca;
    /// `optional` (default): only node-to-node routes need one.
    #[arg(long, env = "DISTCACHE_TLS_CLIENT_AUTH", value_parser = ["optional", "required"])]
    pub tls_client_auth: Option<String>,
    /// Also serve the Redis protocol (RESP2/RESP3) on this address, e.g. 127.0.0.1:6380:
    /// `GET users:42` reads key 42 of keyspace users.
    #[arg(long, env = "DISTCACHE_RESP_LISTEN")]
    pub resp_listen: Option<String>,
    /// The keyspace of Redis-protocol keys without a `:` (default: such keys are refused).
    #[arg(long, env = "DISTCACHE_RESP_DEFAULT_KEYSPACE")]
    pub resp_default_keyspace: Option<String>,
    /// Threads serving HTTP and Redis-protocol connections, each an event loop of its own
    /// (default: one per core plus one, Redis-protocol connections on one per core of them).
    #[arg(long, env = "DISTCACHE_IO_THREADS")]
    pub io_threads: Option<usize>,
    /// Export traces and metrics over OTLP to this collector, e.g. http://127.0.0.1:4318
    /// (overrides OTEL_EXPORTER_OTLP_ENDPOINT and `[otel] endpoint`; the protocol is
    /// OTEL_EXPORTER_OTLP_PROTOCOL's, default http/protobuf).
    #[arg(long)]
    pub otel_endpoint: Option<String>,
}

/// Runs a `node` subcommand.
pub async fn run(cmd: NodeCommand, global: &super::Global) -> anyhow::Result<()> {
    match cmd {
        NodeCommand::Start(args) => start(*args, global).await,
    }
}

/// The node configuration the flags, variables and config file describe; `token` is the
/// global `--token` (`DISTCACHE_TOKEN`), which the node then requires.
pub fn config(args: StartArgs, token: Option<String>) -> anyhow::Result<NodeConfig> {
    let mut config = match &args.config {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read --config {}", path.display()))?;
            NodeConfig::from_toml(&text).with_context(|| {
                format!(
                    "--config {} is not a valid node configuration",
                    path.display()
                )
            })?
        }
        None => NodeConfig::default(),
    };
    apply_discovery_flags(&mut config, &args)?;
    if let Some(id) = args.id {
        config.id = id;
    }
    if let Some(listen) = args.listen {
        config.listen = listen;
    }
    if let Some(advertise) = args.advertise {
        config.advertise = Some(advertise);
    }
    if let Some(dir) = args.data_dir {
        config.data_dir = dir;
    }
    if let Some(peers) = args.peers {
        config.peers = peers.into_iter().filter(|p| !p.trim().is_empty()).collect();
    }
    if let Some(file) = args.keyspace_file.clone() {
        config.keyspace_file = Some(file);
    }
    if let Some(file) = args.tokens_file {
        config.server.tokens_file = Some(file);
    }
    if let Some(q) = args.minimum_peers_quorum {
        config.cluster.minimum_peers_quorum = q;
    }
    if token.is_some() {
        config.server.token = token;
    }
    if let Some(addr) = args.resp_listen {
        config.server.resp_listen = Some(addr);
    }
    if let Some(keyspace) = args.resp_default_keyspace {
        config.server.resp_default_keyspace = Some(keyspace);
    }
    if let Some(threads) = args.io_threads {
        config.server.io_threads = threads;
    }
    if args.metrics_open {
        config.server.metrics_open = true;
    }
    if args.no_metrics {
        config.server.metrics = false;
        config.engine.hit_timing_every = 0;
    }
    apply_tls_flags(
        &mut config,
        args.tls_cert,
        args.tls_key,
        args.tls_ca,
        args.tls_client_auth,
    )?;
    // The process environment is read here, at the edge; the library takes a lookup.
    config.otel = config
        .otel
        .resolve(|name| std::env::var(name).ok())
        .context("OpenTelemetry settings")?;
    if let Some(endpoint) = args.otel_endpoint {
        config.otel.endpoint = Some(endpoint);
    }
    if config.id.is_empty() {
        anyhow::bail!("a node needs a name: pass --id, set DISTCACHE_ID, or put `id` in --config");
    }
    config
        .problems()
        .into_result(distcache::Error::InvalidConfig)?;
    Ok(config)
}

/// Lays the discovery flags over the `[discovery]` table of the configuration file.
fn apply_discovery_flags(config: &mut NodeConfig, args: &StartArgs) -> anyhow::Result<()> {
    if let Some(provider) = &args.discovery {
        config.discovery.provider = provider
            .parse()
            .map_err(|e: String| anyhow::anyhow!("--discovery: {e}"))?;
    }
    let dns = &mut config.discovery.dns;
    if let Some(name) = &args.dns_name {
        dns.name = name.clone();
    }
    if let Some(port) = args.dns_port {
        dns.port = Some(port);
    }
    if let Some(interval) = args.dns_interval {
        dns.interval = interval;
    }
    if let Some(server) = &args.dns_server {
        dns.server = Some(server.clone());
    }
    let k8s = &mut config.discovery.kubernetes;
    if let Some(namespace) = &args.k8s_namespace {
        k8s.namespace = Some(namespace.clone());
    }
    if let Some(selector) = &args.k8s_selector {
        k8s.selector = selector.clone();
    }
    if let Some(port_name) = &args.k8s_port_name {
        k8s.port_name = port_name.clone();
    }
    if args.k8s_include_not_ready {
        k8s.include_not_ready = true;
    }
    let nats = &mut config.discovery.nats;
    if let Some(urls) = &args.nats_url {
        nats.urls = urls.iter().map(|u| u.trim().to_owned()).collect();
    }
    for (flag, field) in [(&args.nats_subject, &mut nats.subject)] {
        if let Some(value) = flag {
            *field = value.clone();
        }
    }
    for (flag, field) in [
        (&args.nats_user, &mut nats.user),
        (&args.nats_password, &mut nats.password),
        (&args.nats_token, &mut nats.token),
    ] {
        if flag.is_some() {
            field.clone_from(flag);
        }
    }
    for (flag, field) in [
        (&args.nats_creds, &mut nats.credentials_file),
        (&args.nats_tls_ca, &mut nats.tls_ca_file),
        (&args.nats_tls_cert, &mut nats.tls_cert_file),
        (&args.nats_tls_key, &mut nats.tls_key_file),
    ] {
        if flag.is_some() {
            field.clone_from(flag);
        }
    }
    Ok(())
}

/// Lays the TLS flags over the `[tls]` table of the configuration file.
fn apply_tls_flags(
    config: &mut NodeConfig,
    cert: Option<PathBuf>,
    key: Option<PathBuf>,
    ca: Option<PathBuf>,
    client_auth: Option<String>,
) -> anyhow::Result<()> {
    if let (Some(cert), Some(key)) = (cert, key) {
        let mut tls = config
            .tls
            .take()
            .unwrap_or_else(|| distcache::TlsConfig::new(&cert, &key));
        tls.cert = cert;
        tls.key = key;
        config.tls = Some(tls);
    }
    let Some(tls) = config.tls.as_mut() else {
        if ca.is_some() || client_auth.is_some() {
            anyhow::bail!("--tls-ca and --tls-client-auth need --tls-cert and --tls-key");
        }
        return Ok(());
    };
    if let Some(ca) = ca {
        tls.ca = Some(ca);
    }
    match client_auth.as_deref() {
        Some("required") => tls.client_auth = distcache::ClientAuth::Required,
        Some("optional") => tls.client_auth = distcache::ClientAuth::Optional,
        Some(other) => anyhow::bail!("--tls-client-auth must be optional or required, not {other}"),
        None => {}
    }
    Ok(())
}

async fn start(args: StartArgs, global: &super::Global) -> anyhow::Result<()> {
    super::init_logging(global.log.as_deref().unwrap_or("info"))?;
    let config = config(args, global.token.clone())?;
    let listener = TcpListener::bind(&config.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.listen))?;
    // In place before the start: the node answers /healthz (and may say it is ready) before
    // `start` returns, and SIGTERM must never kill it by the default action.
    let mut stop = StopSignals::install()?;
    let node = tokio::select! {
        node = Node::builder(config).start(listener) => node?,
        _ = stop.recv() => {
            tracing::info!("stopped while starting");
            return Ok(());
        }
    };
    tracing::info!(id = %node.id(), addr = %node.addr(), "serving; stop with Ctrl-C or SIGTERM");
    stop.recv().await;
    tracing::info!("stopping");
    node.shutdown().await?;
    Ok(())
}

/// SIGINT and SIGTERM, caught from the moment they are installed.
struct StopSignals {
    #[cfg(unix)]
    term: tokio::signal::unix::Signal,
    #[cfg(unix)]
    int: tokio::signal::unix::Signal,
}

impl StopSignals {
    fn install() -> anyhow::Result<Self> {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            Ok(StopSignals {
                term: signal(SignalKind::terminate()).context("cannot catch SIGTERM")?,
                int: signal(SignalKind::interrupt()).context("cannot catch SIGINT")?,
            })
        }
        #[cfg(not(unix))]
        {
            Ok(StopSignals {})
        }
    }

    /// Resolves when either signal arrived (now or since `install`).
    async fn recv(&mut self) {
        #[cfg(unix)]
        {
            tokio::select! {
                _ = self.term.recv() => {}
                _ = self.int.recv() => {}
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: StartArgs,
    }

    fn parse(flags: &[&str]) -> anyhow::Result<NodeConfig> {
        let cli = Cli::try_parse_from(std::iter::once("start").chain(flags.iter().copied()))?;
        config(cli.args, None)
    }

    /// The NATS flags fill `[discovery.nats]`; NATS without a URL is refused naming it.
    #[test]
    fn nats_flags_configure_the_provider() {
        let c = parse(&[
            "--id",
            "n1",
            "--discovery",
            "nats",
            "--nats-url",
            "nats://a:4222,nats://b:4222",
            "--nats-subject",
            "cache.prod",
            "--nats-user",
            "cache",
            "--nats-password",
            "s3cret",
            "--nats-tls-ca",
            "/etc/nats/ca.pem",
        ])
        .expect("valid");
        let nats = &c.discovery.nats;
        assert_eq!(c.discovery.provider, distcache::DiscoveryProvider::Nats);
        assert_eq!(nats.urls, ["nats://a:4222", "nats://b:4222"]);
        assert_eq!(nats.subject, "cache.prod");
        assert_eq!(
            (nats.user.as_deref(), nats.password.as_deref()),
            (Some("cache"), Some("s3cret"))
        );
        assert_eq!(
            nats.tls_ca_file.as_deref(),
            Some(std::path::Path::new("/etc/nats/ca.pem"))
        );
        let err = parse(&["--id", "n1", "--discovery", "nats"]).expect_err("no URL");
        assert!(err.to_string().contains("discovery.nats.urls"), "{err:#}");
    }

    /// The discovery flags fill `[discovery]`; a provider without its required setting, or
    /// a peers list beside a dynamic provider, is refused naming the field.
    #[test]
    fn discovery_flags_configure_the_provider() {
        let c = parse(&[
            "--id",
            "n1",
            "--discovery",
            "dns",
            "--dns-name",
            "_http._tcp.distcache.local",
            "--dns-interval",
            "2s",
            "--dns-server",
            "127.0.0.1:5353",
            "--dns-port",
            "4000",
        ])
        .expect("valid");
        assert_eq!(c.discovery.provider, distcache::DiscoveryProvider::Dns);
        assert_eq!(c.discovery.dns.name, "_http._tcp.distcache.local");
        assert_eq!(c.discovery.dns.interval, std::time::Duration::from_secs(2));
        assert_eq!(c.discovery.dns.server.as_deref(), Some("127.0.0.1:5353"));
        assert_eq!(c.discovery.dns.port, Some(4000));

        let c = parse(&[
            "--id",
            "n1",
            "--discovery",
            "kubernetes",
            "--k8s-namespace",
            "cache",
            "--k8s-selector",
            "app=cache,tier=hot",
            "--k8s-port-name",
            "peer",
            "--k8s-include-not-ready",
        ])
        .expect("valid");
        let k8s = &c.discovery.kubernetes;
        assert_eq!(
            c.discovery.provider,
            distcache::DiscoveryProvider::Kubernetes
        );
        assert_eq!(k8s.namespace.as_deref(), Some("cache"));
        assert_eq!(k8s.selector, "app=cache,tier=hot");
        assert_eq!(k8s.port_name, "peer");
        assert!(k8s.include_not_ready);

        let err = parse(&["--id", "n1", "--discovery", "dns"]).expect_err("no name");
        assert!(format!("{err:#}").contains("discovery.dns.name"), "{err:#}");
        let err = parse(&[
            "--id",
            "n1",
            "--discovery",
            "dns",
            "--dns-name",
            "d.local",
            "--peers",
            "h:1",
        ])
        .expect_err("peers and dns");
        assert!(format!("{err:#}").contains("peers"), "{err:#}");
        assert!(parse(&["--id", "n1", "--discovery", "nats"]).is_err());
    }
}
