//! The `spoke` command line. Parsing only: every command is a call into the
//! library (`spoke::cli`).
use clap::Parser;

fn main() -> std::process::ExitCode {
    spoke::cli::run(spoke::cli::Cli::parse())
}
