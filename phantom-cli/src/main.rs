//! `phantom`: the launcher. `phantom run [options] -- COMMAND [ARGS...]` starts the simulator and runs a
//! program's ranks on it (docs/launcher.md); `phantom table from-torch-profile TRACE -o OUT` makes a
//! kernel-time table from a PyTorch profiler trace (docs/kernel-table.md); `phantom calibrate` measures this
//! machine's GPU and writes a GPU profile (docs/calibration.md).

mod args;
mod calibrate;
mod env;
mod profile;
mod progress;
mod report;
mod run;
mod signals;
mod spawn;
mod stats;
mod summary;
mod supervise;
mod table;
mod trace;

use clap::Parser;

fn main() {
    let cli = args::Cli::parse();
    let code = match cli.command {
        args::Command::Run(a) => run::run(*a),
        args::Command::Table(args::TableCommand::FromTorchProfile(a)) => table::from_torch_profile(&a),
        args::Command::Calibrate(a) => calibrate::calibrate(&a),
    };
    std::process::exit(code);
}
