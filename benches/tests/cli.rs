//! The `distcache-bench` command line: help, and bad input answered with a usage error
//! naming the problem (exit code 2), never a panic or a backtrace.

use std::process::{Command, Output};

fn bench(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_distcache-bench"))
        .args(args)
        .env_remove("RUST_BACKTRACE")
        .output()
        .expect("distcache-bench runs")
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn help_lists_each_servers_options() {
    let reference = bench(&["reference", "--help"]);
    assert!(reference.status.success(), "{}", stderr(&reference));
    let text = String::from_utf8_lossy(&reference.stdout);
    for option in [
        "--listen",
        "--keyspace",
        "--node-id",
        "--max-bytes",
        "--source",
    ] {
        assert!(text.contains(option), "{option} missing from:\n{text}");
    }
    let delay = bench(&["delay-source", "--help"]);
    assert!(delay.status.success(), "{}", stderr(&delay));
    let text = String::from_utf8_lossy(&delay.stdout);
    for option in ["--listen", "--value-bytes", "--delay-ms"] {
        assert!(text.contains(option), "{option} missing from:\n{text}");
    }
}

#[test]
fn bad_input_is_a_usage_error_naming_the_problem() {
    let cases: [(&[&str], &str); 5] = [
        (&[], "Usage"),
        (&["serve"], "unrecognized subcommand 'serve'"),
        (&["reference"], "--listen"),
        (
            &[
                "reference",
                "--listen",
                "127.0.0.1:0",
                "--max-bytes",
                "lots",
            ],
            "`lots` is not a byte size",
        ),
        (
            &[
                "delay-source",
                "--listen",
                "127.0.0.1:0",
                "--delay-ms",
                "soon",
            ],
            "--delay-ms",
        ),
    ];
    for (args, names) in cases {
        let output = bench(args);
        let text = stderr(&output);
        assert_eq!(output.status.code(), Some(2), "{args:?}: {text}");
        assert!(
            text.contains(names),
            "{args:?} should name {names:?}: {text}"
        );
        assert!(
            !text.contains("panicked") && !text.contains("backtrace"),
            "{args:?}: {text}"
        );
    }
}
