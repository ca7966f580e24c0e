//! Network namespaces for partition scenarios: one namespace per node, each linked by a veth
//! pair to a hub namespace that routes between them, and partitions cut as routing rules in
//! the hub.
//!
//! Node `i` lives in its own namespace on `10.x.y.(10+i)`; the hub holds `10.x.y.1` on every
//! veth and forwards between the nodes. The checker's clients and the data source run in the
//! hub (a runtime whose threads entered it: [`NetLab::runtime`]), so they reach every node
//! directly, partition or not. A partition adds `blackhole` rules in the hub for traffic
//! between the two sides, both ways: node-to-node packets are dropped silently, as by a cut
//! cable, while client-to-node traffic is untouched. Healing removes the rules.
//!
//! Nothing touches the machine's own network: every interface and rule lives in namespaces
//! this module created, named `dcpart-<pid>-<n>-…` (unique per test), and all of them are
//! deleted when the [`NetLab`] is dropped (also when a test panics). Namespaces left behind
//! by a process that died (kill -9 of the test runner) are swept by the next one.
//!
//! Needs root (`ip netns add`, `setns`); [`NetLab::create`] says why when it cannot.

use std::fs::File;
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

use nix::sched::{CloneFlags, setns};

/// Where namespaces are mounted by `ip netns`.
const NETNS_DIR: &str = "/run/netns";
/// The prefix of every namespace this module creates.
const PREFIX: &str = "dcpart-";
/// The port every node listens on (each node has its own namespace and address).
pub const NODE_PORT: u16 = 7000;

/// Why namespaces could not be set up or changed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NetnsError {
    /// `ip` could not be run at all.
    #[error("cannot run `ip`: {0}")]
    Spawn(#[source] std::io::Error),
    /// A command failed.
    #[error("`{command}` failed: {stderr}")]
    Command {
        /// The command line.
        command: String,
        /// What it printed on stderr.
        stderr: String,
    },
    /// The hub namespace could not be opened or entered.
    #[error("cannot enter network namespace {name}: {reason}")]
    Enter {
        /// The namespace.
        name: String,
        /// Why.
        reason: String,
    },
}

/// A hub namespace and one namespace per node, deleted when dropped.
pub struct NetLab {
    name: String,
    net: (u8, u8),
    /// The hub, opened: what the runtime's threads enter.
    hub: Arc<File>,
    /// The `(from, to)` address pairs blackholed now.
    cut: Mutex<Vec<(String, String)>>,
    /// Last, so that it is dropped last.
    _spaces: Namespaces,
}

/// Namespaces created so far, deleted in reverse when dropped (also after a failed setup).
struct Namespaces(Vec<String>);

impl Namespaces {
    fn add(&mut self, name: &str) -> Result<(), NetnsError> {
        ip(&["netns", "add", name])?;
        self.0.push(name.to_owned());
        ip(&["-n", name, "link", "set", "lo", "up"])
    }
}

impl Drop for Namespaces {
    fn drop(&mut self) {
        for ns in self.0.iter().rev() {
            let _ = ip(&["netns", "del", ns]);
        }
    }
}

impl NetLab {
    /// Creates the namespaces, links and routes of `nodes` nodes, or says why it cannot.
    pub fn create(nodes: usize) -> Result<NetLab, NetnsError> {
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        sweep_orphans();
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let pid = std::process::id();
        // Each lab is its own network, so clashes are harmless; distinct subnets keep logs
        // of parallel tests apart all the same.
        let net = (64 + (pid % 128) as u8, (n % 256) as u8);
        let name = format!("{PREFIX}{pid}-{n}");
        let addr = |last: usize| format!("10.{}.{}.{last}", net.0, net.1);
        let mut spaces = Namespaces(Vec::new());
        let hub = format!("{name}-hub");
        spaces.add(&hub)?;
        run(Command::new("ip").args([
            "netns",
            "exec",
            &hub,
            "sysctl",
            "-qw",
            "net.ipv4.ip_forward=1",
        ]))?;
        let hub_ip = addr(1);
        for i in 0..nodes {
            let ns = format!("{name}-n{i}");
            spaces.add(&ns)?;
            let (veth, node_ip) = (format!("v{i}"), addr(10 + i));
            #[rustfmt::skip]
            let steps: [&[&str]; 6] = [
                &["-n", &hub, "link", "add", &veth, "type", "veth", "peer", "name", "eth0", "netns", &ns],
                &["-n", &hub, "addr", "add", &hub_ip, "peer", &node_ip, "dev", &veth],
                &["-n", &hub, "link", "set", &veth, "up"],
                &["-n", &ns, "addr", "add", &node_ip, "peer", &hub_ip, "dev", "eth0"],
                &["-n", &ns, "link", "set", "eth0", "up"],
                &["-n", &ns, "route", "add", "default", "via", &hub_ip],
            ];
            for step in steps {
                ip(step)?;
            }
        }
        let enter = |reason: String| NetnsError::Enter {
            name: hub.clone(),
            reason,
        };
        let file = File::open(Path::new(NETNS_DIR).join(&hub)).map_err(|e| enter(e.to_string()))?;
        let hub_file = Arc::new(file);
        // Entering is what the runtime's threads will do: try it once on a thread of its own.
        let probe = Arc::clone(&hub_file);
        std::thread::spawn(move || setns(&*probe, CloneFlags::CLONE_NEWNET))
            .join()
            .map_err(|_| enter("the probe thread panicked".into()))?
            .map_err(|e| enter(e.to_string()))?;
        Ok(NetLab {
            name,
            net,
            hub: hub_file,
            cut: Mutex::new(Vec::new()),
            _spaces: spaces,
        })
    }

    /// The hub's address: where the clients and the data source are.
    pub fn hub_ip(&self) -> String {
        format!("10.{}.{}.1", self.net.0, self.net.1)
    }

    /// Node `i`'s address.
    pub fn node_ip(&self, i: usize) -> String {
        format!("10.{}.{}.{}", self.net.0, self.net.1, 10 + i)
    }

    /// Node `i`'s `host:port`.
    pub fn node_addr(&self, i: usize) -> String {
        format!("{}:{NODE_PORT}", self.node_ip(i))
    }

    /// The hub namespace's name.
    pub fn hub_namespace(&self) -> String {
        format!("{}-hub", self.name)
    }

    /// Node `i`'s namespace.
    pub fn node_namespace(&self, i: usize) -> String {
        format!("{}-n{i}", self.name)
    }

    /// A command that runs `program` in node `i`'s namespace (`ip netns exec` execs it, so
    /// the child's pid is the program's).
    pub fn command(&self, i: usize, program: &Path) -> Command {
        let mut command = Command::new("ip");
        command
            .args(["netns", "exec", &self.node_namespace(i)])
            .arg(program);
        command
    }

    /// A multi-thread tokio runtime whose every thread (workers and blocking pool) runs in
    /// the hub namespace: sockets it opens reach the nodes.
    pub fn runtime(&self) -> std::io::Result<tokio::runtime::Runtime> {
        let hub = Arc::clone(&self.hub);
        let name = self.hub_namespace();
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .on_thread_start(move || {
                // `create` entered it once already; failing now leaves nothing to test.
                if let Err(e) = setns(&*hub, CloneFlags::CLONE_NEWNET) {
                    panic!("cannot enter network namespace {name}: {e}");
                }
            })
            .build()
    }

    /// Drops every packet between a node of `a` and a node of `b`, both ways.
    pub fn partition(&self, a: &[usize], b: &[usize]) -> Result<(), NetnsError> {
        let hub = self.hub_namespace();
        let mut cut = self.cut.lock().unwrap_or_else(|e| e.into_inner());
        for &i in a {
            for &j in b {
                for (from, to) in [
                    (self.node_ip(i), self.node_ip(j)),
                    (self.node_ip(j), self.node_ip(i)),
                ] {
                    ip(&[
                        "-n",
                        &hub,
                        "rule",
                        "add",
                        "from",
                        &from,
                        "to",
                        &to,
                        "blackhole",
                    ])?;
                    cut.push((from, to));
                }
            }
        }
        Ok(())
    }

    /// Removes every cut.
    pub fn heal(&self) -> Result<(), NetnsError> {
        let hub = self.hub_namespace();
        let mut cut = self.cut.lock().unwrap_or_else(|e| e.into_inner());
        while let Some((from, to)) = cut.pop() {
            ip(&[
                "-n",
                &hub,
                "rule",
                "del",
                "from",
                &from,
                "to",
                &to,
                "blackhole",
            ])?;
        }
        Ok(())
    }
}

/// Runs `ip args…`.
fn ip(args: &[&str]) -> Result<(), NetnsError> {
    run(Command::new("ip").args(args))
}

fn run(command: &mut Command) -> Result<(), NetnsError> {
    let output = command.output().map_err(NetnsError::Spawn)?;
    if output.status.success() {
        return Ok(());
    }
    let line = std::iter::once(command.get_program())
        .chain(command.get_args())
        .map(|a| a.to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join(" ");
    Err(NetnsError::Command {
        command: line,
        stderr: String::from_utf8_lossy(&output.stderr).trim().to_owned(),
    })
}

/// Deletes namespaces of ours whose process is gone.
fn sweep_orphans() {
    let Ok(entries) = std::fs::read_dir(NETNS_DIR) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(pid) = name
            .strip_prefix(PREFIX)
            .and_then(|rest| rest.split('-').next())
            .and_then(|pid| pid.parse::<u32>().ok())
        else {
            continue;
        };
        if !Path::new("/proc").join(pid.to_string()).exists() {
            let _ = ip(&["netns", "del", &name]);
        }
    }
}
