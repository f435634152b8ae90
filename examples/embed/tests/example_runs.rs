//! The embedding example is run, not only built: it checks what it shows
//! (a native function called from a script, a published event handled once
//! and deduped, a Rust subscriber, a clean shutdown) and exits non-zero if
//! anything did not hold.
#[test]
fn the_embedding_example_runs_and_everything_it_shows_holds() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_embed-example")).env_remove("RUST_LOG").output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "the example failed:\n{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("again: 0 new, 1 duplicate"), "{stdout}");
    assert!(stdout.contains("shut down cleanly"), "{stdout}");
}

/// The engine an embedder links carries no command line, simulators or
/// demo: those live in spoke-cli and spoke-sandbox.
#[test]
fn the_engine_crate_depends_on_no_cli_and_no_sandbox() {
    let out = std::process::Command::new(env!("CARGO"))
        .args(["tree", "-p", "spoke", "-e", "normal", "--prefix", "none", "--offline"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    let tree = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "cargo tree failed: {}", String::from_utf8_lossy(&out.stderr));
    assert!(tree.lines().any(|l| l.starts_with("wasmtime ")), "not the engine's tree: {tree}");
    for banned in ["clap ", "spoke-sandbox ", "spoke-cli ", "tracing-subscriber "] {
        assert!(!tree.lines().any(|l| l.starts_with(banned)), "the engine depends on {banned}");
    }
}
