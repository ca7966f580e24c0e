//! What the criterion benches share: where results go, and reading a median back from them
//! so each bench can print ratios measured in the same run.

use std::path::{Path, PathBuf};

/// Where criterion writes its results (set explicitly so the ratios can read them back).
pub fn output_directory() -> PathBuf {
    if let Some(home) = std::env::var_os("CRITERION_HOME") {
        return PathBuf::from(home);
    }
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(target) => PathBuf::from(target).join("criterion"),
        None => PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../target/criterion")),
    }
}

/// The median time, in nanoseconds, criterion measured for `group/bench` in this run.
pub fn median_ns(dir: &Path, group: &str, bench: &str) -> Option<f64> {
    let path = dir.join(group).join(bench).join("new/estimates.json");
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).ok()?).ok()?;
    json["median"]["point_estimate"].as_f64()
}
