//! `distcache`: the one binary of distcache — starts nodes, administers keyspaces, reads and
//! writes keys, and opens the dashboard.

fn main() {
    println!("distcache {}", env!("CARGO_PKG_VERSION"));
}
