//! The tokio runtime the reference server and the delay source run on: built exactly as the
//! `distcache` binary builds a node's (`cli/src/main.rs`), multi-thread with one worker per
//! core and every driver enabled, so a throughput ratio compares the servers, not their
//! runtimes. (The node has more threads besides — its blocking pool, moka's housekeeping —
//! which is part of what is measured.)

/// A multi-thread runtime, worker count = cores (tokio's default), I/O and time enabled.
pub fn node_shaped() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
}
