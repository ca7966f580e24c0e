//! `distcache cert`: a small certificate authority for a cluster, so that TLS needs no other
//! tool. `cert ca` creates the cluster CA; `cert node` issues a node's certificate (server
//! and client use: nodes dial each other with it); `cert client` issues a client's.
//!
//! Files are PEM, written whole (a temporary file renamed over the old one, so a node
//! reloading them never reads half a file), keys readable by the owner only. The CA key
//! stays in the directory: keep it somewhere safe, or delete it once the certificates
//! are issued.

use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::{Args, Subcommand};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};

#[derive(Debug, Subcommand)]
pub enum CertCommand {
    /// Create the cluster CA: DIR/ca.pem (share it) and DIR/ca.key (keep it private).
    ///
    /// Example:
    ///   distcache cert ca --dir certs
    #[command(verbatim_doc_comment)]
    Ca(CaArgs),
    /// Issue a node certificate signed by the CA: DIR/NAME.pem and DIR/NAME.key.
    ///
    /// Example:
    ///   distcache cert node --dir certs --name node-1 --host 127.0.0.1 --host node-1.internal
    #[command(verbatim_doc_comment)]
    Node(IssueArgs),
    /// Issue a client certificate signed by the CA: DIR/NAME.pem and DIR/NAME.key.
    ///
    /// Example:
    ///   distcache cert client --dir certs --name ops
    #[command(verbatim_doc_comment)]
    Client(IssueArgs),
}

#[derive(Debug, Args)]
pub struct CaArgs {
    /// Directory for the files (created if missing).
    #[arg(long)]
    pub dir: PathBuf,
    /// The CA's common name.
    #[arg(long, default_value = "distcache cluster CA")]
    pub name: String,
    /// Replace an existing CA (every certificate it issued stops being trusted).
    #[arg(long)]
    pub force: bool,
}

#[derive(Debug, Args)]
pub struct IssueArgs {
    /// Directory holding ca.pem and ca.key; the new files go there too.
    #[arg(long)]
    pub dir: PathBuf,
    /// The certificate's name (its common name and file names).
    #[arg(long)]
    pub name: String,
    /// Host names and IP addresses the certificate is valid for (repeatable). Nodes need
    /// every address peers and clients dial; default: 127.0.0.1 and localhost.
    #[arg(long = "host")]
    pub hosts: Vec<String>,
}

/// Runs a `cert` subcommand.
pub fn run(cmd: CertCommand) -> anyhow::Result<()> {
    match cmd {
        CertCommand::Ca(args) => create_ca(&args),
        CertCommand::Node(args) => issue(&args, Usage::Node),
        CertCommand::Client(args) => issue(&args, Usage::Client),
    }
}

/// What a certificate is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Usage {
    /// Serves TLS and dials peers with it.
    Node,
    /// Dials nodes with it.
    Client,
}

fn create_ca(args: &CaArgs) -> anyhow::Result<()> {
    let (cert_path, key_path) = (args.dir.join("ca.pem"), args.dir.join("ca.key"));
    if !args.force && (cert_path.exists() || key_path.exists()) {
        anyhow::bail!(
            "{} already holds a CA; pass --force to replace it (certificates it issued stop being trusted)",
            args.dir.display()
        );
    }
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params
        .distinguished_name
        .push(DnType::CommonName, &args.name);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let key = KeyPair::generate().context("cannot generate a key")?;
    let cert = params.self_signed(&key).context("cannot sign the CA")?;
    std::fs::create_dir_all(&args.dir)
        .with_context(|| format!("cannot create {}", args.dir.display()))?;
    write(&cert_path, cert.pem().as_bytes(), false)?;
    write(&key_path, key.serialize_pem().as_bytes(), true)?;
    println!("{}\n{}", cert_path.display(), key_path.display());
    Ok(())
}

fn issue(args: &IssueArgs, usage: Usage) -> anyhow::Result<()> {
    if args.name.is_empty()
        || !args
            .name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        || args.name.starts_with('.')
    {
        anyhow::bail!(
            "--name `{}` must be letters, digits, '-', '_' or '.', not starting with '.'",
            args.name
        );
    }
    if args.name == "ca" {
        anyhow::bail!("--name ca would overwrite the CA's files");
    }
    let ca_key_path = args.dir.join("ca.key");
    let ca_pem = read(&args.dir.join("ca.pem"))?;
    let ca_key = KeyPair::from_pem(&read(&ca_key_path)?)
        .with_context(|| format!("{} is not a private key", ca_key_path.display()))?;
    let issuer = Issuer::from_ca_cert_pem(&ca_pem, ca_key)
        .with_context(|| format!("{}/ca.pem is not a CA certificate", args.dir.display()))?;

    let hosts = if args.hosts.is_empty() {
        vec!["127.0.0.1".to_owned(), "localhost".to_owned()]
    } else {
        args.hosts.clone()
    };
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    for host in &hosts {
        params.subject_alt_names.push(match host.parse() {
            Ok(ip) => SanType::IpAddress(ip),
            Err(_) => SanType::DnsName(
                host.clone()
                    .try_into()
                    .with_context(|| format!("--host `{host}` is neither an IP nor a DNS name"))?,
            ),
        });
    }
    params
        .distinguished_name
        .push(DnType::CommonName, &args.name);
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = match usage {
        Usage::Node => vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ],
        Usage::Client => vec![ExtendedKeyUsagePurpose::ClientAuth],
    };
    let key = KeyPair::generate().context("cannot generate a key")?;
    let cert = params
        .signed_by(&key, &issuer)
        .context("cannot sign the certificate")?;
    let cert_path = args.dir.join(format!("{}.pem", args.name));
    let key_path = args.dir.join(format!("{}.key", args.name));
    write(&cert_path, cert.pem().as_bytes(), false)?;
    write(&key_path, key.serialize_pem().as_bytes(), true)?;
    println!("{}\n{}", cert_path.display(), key_path.display());
    Ok(())
}

fn read(path: &Path) -> anyhow::Result<String> {
    std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))
}

/// Writes `bytes` to `path` whole: into a temporary file beside it, then renamed over it.
fn write(path: &Path, bytes: &[u8], private: bool) -> anyhow::Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, bytes).with_context(|| format!("cannot write {}", tmp.display()))?;
    #[cfg(unix)]
    if private {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o600))
            .with_context(|| format!("cannot restrict {}", tmp.display()))?;
    }
    #[cfg(not(unix))]
    let _ = private;
    std::fs::rename(&tmp, path).with_context(|| format!("cannot write {}", path.display()))
}
