//! `distcache`: the one binary of distcache. It starts nodes, administers keyspaces, reads and
//! writes keys, and opens the dashboard.
//!
//! This file only parses the command line, installs logging (to stderr), runs the command and
//! maps its outcome to an exit code; each command lives in `cmd/<name>.rs`.
//!
//! Exit codes: 0 ok, 1 error, 2 usage, 3 not found, 4 unavailable, overloaded or timed out,
//! 5 denied (no token, a wrong one, or one without the role or keyspace).

use std::process::ExitCode;

use clap::Parser;

mod cmd;
mod exit;
mod output;
mod spec_flags;

use cmd::Cli;

/// mimalloc (without transparent huge pages) instead of the system allocator: a node frees and
/// allocates cached values all the time, and glibc's per-thread arenas keep what was freed.
/// Writing 3× a keyspace's max_bytes of 64 KiB values grew RSS by 1.36× the bytes held with
/// glibc, 1.10× with mimalloc; idle RSS 17 MB against 20 MB (`ONLY=memory scripts/bench.sh`).
///
/// mimalloc's v2 line (the `v2` feature), not v3: v3 hands freed pages back to the system a
/// second after they empty (its `purge_delay` default is 1000 ms; v2's is 10 ms), so while
/// 64 KiB values churn the pages freed by evictions pile up beside the new ones. SET of 64 KiB
/// values over RESP (-P16) grew RSS by 1.46× the bytes held with v3 and 1.22× with v2 in the
/// same `scripts/bench.sh` run; GET throughput was the same with both.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

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
