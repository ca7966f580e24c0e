//! `distcache`: the one binary of distcache. It starts nodes, administers keyspaces, reads and
//! writes keys, and opens the dashboard.
//!
//! This file only parses the command line, installs logging (to stderr), runs the command and
//! maps its outcome to an exit code; each command lives in `cmd/<name>.rs`.
//!
//! Exit codes: 0 ok, 1 error, 2 usage, 3 not found, 4 unavailable or timed out.

use std::process::ExitCode;

use clap::Parser;

mod cmd;
mod exit;
mod output;
mod spec_flags;

use cmd::Cli;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(exit::ERROR);
        }
    };
    match runtime.block_on(cmd::run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::from(exit::code_of(&err))
        }
    }
}
