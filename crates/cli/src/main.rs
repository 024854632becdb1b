//! The `borderlens` command: one subcommand per job. Glue only: parse arguments, call
//! `borderlens-app`, print tables (people) or JSON (`--json`, machines), draw progress bars.
//!
//! Exit status: 0 when all went well, 1 when the job ran but some input was rejected or in
//! conflict (reported), 2 on an error that stopped the job.

mod args;
mod demo;
mod detector_cmds;
mod dispatch;
mod federation_cmds;
mod hs_cmds;
mod loop_cmds;
mod nii_cmds;
mod output;
mod progress;
mod service_cmds;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = args::Cli::parse();
    // The server handles Ctrl-C itself (graceful shutdown); every other job polls this flag.
    if !matches!(
        cli.command,
        args::Command::Serve(_)
            | args::Command::Node(crate::federation_cmds::NodeCommand::Serve(_))
    ) {
        progress::install_interrupt_handler();
    }
    match dispatch::run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("borderlens: {e:#}");
            ExitCode::from(2)
        }
    }
}
