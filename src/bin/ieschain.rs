//! The `ieschain` command. See `ieschain --help`, and README.md for the commands' contract.

use std::process::ExitCode;

fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn")).init();
    ieschain::cli::main(std::env::args_os())
}
