//! The `herald` command: parses the arguments and hands them to the library.

use std::process::ExitCode;

use clap::Parser;

#[tokio::main]
async fn main() -> ExitCode {
    herald::cli::main(herald::cli::Cli::parse()).await
}
