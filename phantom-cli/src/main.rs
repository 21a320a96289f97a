//! `phantom`: the launcher. `phantom run [options] -- COMMAND [ARGS...]` starts the simulator and runs a
//! program's ranks on it (docs/launcher.md).

mod args;
mod env;
mod progress;
mod report;
mod run;
mod signals;
mod spawn;
mod stats;
mod summary;
mod supervise;
mod trace;

use clap::Parser;

fn main() {
    let cli = args::Cli::parse();
    let code = match cli.command {
        args::Command::Run(a) => run::run(a),
    };
    std::process::exit(code);
}
