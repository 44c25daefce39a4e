//! The `ieschain` command. See `ieschain --help`, and README.md for the commands' contract.

use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<_> = std::env::args_os().collect();
    let filter = ieschain::cli::log_filter(&args);
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or(filter)).init();
    ieschain::cli::main(args)
}
