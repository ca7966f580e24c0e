//! `distcache dashboard`: the live terminal dashboard (crate `distcache-tui`).

use std::time::Duration;

use clap::Args;

use super::{Global, parse_duration};

#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  distcache dashboard\n  distcache dashboard --endpoint 10.0.0.5:3320 --interval 2s\n\nKeys: 1-4 views, ↑↓ select, Enter detail, / look a key up, ? help, q quit."
)]
pub struct DashboardArgs {
    /// Time between refreshes.
    #[arg(long, value_parser = parse_duration, default_value = "1s")]
    pub interval: Duration,
}

pub async fn run(args: DashboardArgs, global: &Global) -> anyhow::Result<()> {
    if args.interval < Duration::from_millis(100) {
        anyhow::bail!("--interval must be at least 100ms");
    }
    distcache_tui::run(distcache_tui::PollConfig {
        endpoints: global.endpoint.clone(),
        token: global.token.clone(),
        tls: global.tls(),
        interval: args.interval,
    })
    .await?;
    Ok(())
}
