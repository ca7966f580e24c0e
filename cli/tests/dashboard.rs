//! `distcache dashboard` end to end: the real binary in tmux against a real 3-node cluster,
//! read back with capture-pane.

#![allow(clippy::unwrap_used)]

mod common;

use std::process::Command;
use std::time::Duration;

use common::Cluster;
use distcache_testkit::holds_within;

/// A tmux server of its own (its own socket), killed when dropped.
struct Tmux {
    socket: String,
}

impl Tmux {
    fn new(name: &str) -> Tmux {
        Tmux {
            socket: format!("distcache-{name}-{}", std::process::id()),
        }
    }

    fn cmd(&self, args: &[&str]) -> String {
        let out = Command::new("tmux")
            .arg("-L")
            .arg(&self.socket)
            .args(args)
            .output()
            .expect("tmux is installed (./scripts/test.sh installs it)");
        assert!(
            out.status.success(),
            "tmux {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn screen(&self) -> String {
        self.cmd(&["capture-pane", "-p", "-t", "dash"])
    }

    async fn wait_for(&self, what: &str, ok: impl Fn(&str) -> bool) -> String {
        let mut screen = String::new();
        let every = Duration::from_millis(100);
        let shown = holds_within(Duration::from_secs(60), every, || {
            screen = self.screen();
            std::future::ready(ok(&screen))
        })
        .await;
        assert!(shown, "timed out waiting for {what}; the screen:\n{screen}");
        screen
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = Command::new("tmux")
            .arg("-L")
            .arg(&self.socket)
            .arg("kill-server")
            .output();
    }
}

/// Node names and a keyspace show up, a key lookup answers with the value and its owner, and
/// `q` exits (status 0) and leaves the alternate screen.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboard_in_tmux() {
    let c = Cluster::start(3).await;
    c.run(&["put", "scratch", "greeting", "hello dashboard"])
        .await
        .ok();
    let tmux = Tmux::new("dash");
    let command = format!(
        "{} dashboard --endpoint {} --interval 300ms; echo EXITED $?; sleep 30",
        env!("CARGO_BIN_EXE_distcache"),
        c.addrs[0]
    );
    tmux.cmd(&[
        "new-session",
        "-d",
        "-s",
        "dash",
        "-x",
        "80",
        "-y",
        "24",
        &command,
    ]);

    let screen = tmux
        .wait_for("the cluster view", |s| {
            s.contains("node-0")
                && s.contains("node-1")
                && s.contains("node-2")
                && s.contains("leader")
        })
        .await;
    assert!(screen.contains("3/3 up"), "{screen}");
    assert_eq!(
        tmux.cmd(&["display", "-p", "-t", "dash", "#{alternate_on}"])
            .trim(),
        "1"
    );

    tmux.cmd(&["send-keys", "-t", "dash", "2"]);
    tmux.wait_for("the keyspaces view", |s| {
        s.contains("KEYSPACE") && s.contains("scratch")
    })
    .await;

    tmux.cmd(&["send-keys", "-t", "dash", "l"]);
    tmux.wait_for("the lookup view", |s| s.contains("keyspace scratch"))
        .await;
    tmux.cmd(&["send-keys", "-t", "dash", "-l", "greeting"]);
    tmux.cmd(&["send-keys", "-t", "dash", "Enter"]);
    let screen = tmux
        .wait_for("the lookup answer", |s| {
            s.contains("greeting found") && s.contains("hello dashboard")
        })
        .await;
    assert!(screen.contains("15 bytes · owner node-"), "{screen}");

    // Back on the keyspaces view, `w` asks first; `y` starts the warmup and the footer follows it.
    // Esc and `w` sent together would reach the dashboard as one Alt+w, so wait between them.
    tmux.cmd(&["send-keys", "-t", "dash", "Escape"]);
    tmux.wait_for("the keyspaces view again", |s| s.contains("KEYSPACE"))
        .await;
    tmux.cmd(&["send-keys", "-t", "dash", "w"]);
    tmux.wait_for("the warmup confirmation", |s| {
        s.contains("Warm up `scratch` across the cluster?")
    })
    .await;
    tmux.cmd(&["send-keys", "-t", "dash", "y"]);
    let screen = tmux
        .wait_for("the warmup to finish", |s| {
            s.contains("warmup of scratch:") && s.contains("done")
        })
        .await;
    assert!(screen.contains("0 failed"), "{screen}");
    assert!(!screen.contains("across the cluster?"), "{screen}");

    tmux.cmd(&["send-keys", "-t", "dash", "q"]);
    let screen = tmux
        .wait_for("the dashboard to exit", |s| s.contains("EXITED"))
        .await;
    assert!(screen.contains("EXITED 0"), "{screen}");
    assert_eq!(
        tmux.cmd(&["display", "-p", "-t", "dash", "#{alternate_on}"])
            .trim(),
        "0",
        "terminal restored"
    );
    c.shutdown().await;
}

/// Without a terminal the dashboard refuses clearly instead of drawing garbage.
#[tokio::test]
async fn dashboard_needs_a_terminal() {
    let mut cmd = common::distcache();
    cmd.args(["dashboard", "--endpoint", "127.0.0.1:1"]);
    common::run_command(cmd, None)
        .await
        .fails(1, "needs a terminal");
}
