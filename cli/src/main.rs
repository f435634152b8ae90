//! The `spoke` command line. Parsing here; each command is a call into the
//! `spoke` library (`cli.rs`), the demo drives the vendor sandbox
//! (`demo.rs`), `spoke new` writes a connector project (`new.rs`).
//! Nothing in this crate is part of the embeddable engine.
mod check;
mod cli;
mod demo;
mod flows;
mod new;
mod state;

use clap::Parser;

fn main() -> std::process::ExitCode {
    restore_sigpipe();
    cli::run(cli::Cli::parse())
}

/// Rust ignores SIGPIPE, so `spoke describe wics | head` would panic on a
/// closed stdout; a command-line tool should just stop, like `cat` does.
#[cfg(unix)]
fn restore_sigpipe() {
    extern "C" {
        fn signal(signum: i32, handler: usize) -> usize;
    }
    const SIGPIPE: i32 = 13;
    const SIG_DFL: usize = 0;
    // SAFETY: setting the default disposition of one signal, before any
    // thread is started.
    unsafe { signal(SIGPIPE, SIG_DFL) };
}

#[cfg(not(unix))]
fn restore_sigpipe() {}
