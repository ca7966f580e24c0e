//! `distcache completions <shell>`: a completion script on stdout.

use clap::{Args, CommandFactory};
use clap_complete::Shell;

use super::Cli;

#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  distcache completions bash > /etc/bash_completion.d/distcache\n  distcache completions zsh > ~/.zfunc/_distcache"
)]
pub struct CompletionsArgs {
    /// The shell: bash, zsh, fish, elvish or powershell.
    pub shell: Shell,
}

pub fn run(args: CompletionsArgs) -> anyhow::Result<()> {
    let mut command = Cli::command();
    clap_complete::generate(
        args.shell,
        &mut command,
        "distcache",
        &mut std::io::stdout(),
    );
    Ok(())
}
