//! `cargo xtask`: the project's own build steps, so a fresh machine and CI
//! run exactly what a developer runs.
//!
//!   cargo xtask plugins   install the wasm32-wasip2 target, build every plugin
//!                         (and the standalone template, examples/plugin-template)
//!   cargo xtask test      plugins, then every test (cargo nextest, or cargo test)
//!   cargo xtask demo      plugins, the host, then the demo against the sandbox
//!   cargo xtask bench     plugins, the host, then every performance figure
use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use std::process::Command;

/// Plugins shipped to users.
const VENDOR_PLUGINS: &[&str] = &["cyclesoftware", "lagerkoll", "wics"];
/// Plugins only the tests load.
const TEST_PLUGINS: &[&str] = &["probe"];
/// Plugins a host must refuse (the tests of `spoke check`): built into
/// target/broken-plugins, never into a folder a test host loads whole.
const BROKEN_PLUGINS: &[&str] = &["badmanifest"];
/// The plugin template (crate `acme`): a workspace of its own, built as a
/// third party builds it, with its own release profile; tests load it.
const TEMPLATE: &str = "examples/plugin-template";
const WASM_TARGET: &str = "wasm32-wasip2";

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let root = workspace_root();
    std::env::set_current_dir(&root)?;
    match args.first().map(String::as_str) {
        Some("plugins") => plugins(&root).map(|_| ()),
        Some("test") => test(&root, &args[1..]),
        Some("demo") => demo(&root, &args[1..]),
        Some("bench") => bench(&root),
        _ => {
            eprintln!("usage: cargo xtask <plugins|test|demo> [args]\n\n  plugins  install the {WASM_TARGET} target and build every plugin into target/spoke-plugins (vendor) and target/test-plugins (all)\n  test     build the plugins, then run every test\n  demo     build everything, then run the demo against the vendor sandbox\n  bench    build everything, then measure every performance figure (table + target/bench/results.json)");
            std::process::exit(2);
        }
    }
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("xtask lives in the workspace").to_path_buf()
}

fn run(cmd: &mut Command) -> Result<()> {
    eprintln!("+ {}", format!("{cmd:?}").replace('"', ""));
    let status = cmd.status().with_context(|| format!("starting {cmd:?}"))?;
    if !status.success() {
        bail!("{cmd:?} failed with {status}");
    }
    Ok(())
}

fn ensure_wasm_target() -> Result<()> {
    let installed = Command::new("rustup").args(["target", "list", "--installed"]).output().context("running rustup: is it installed?")?;
    if !String::from_utf8_lossy(&installed.stdout).lines().any(|l| l.trim() == WASM_TARGET) {
        run(Command::new("rustup").args(["target", "add", WASM_TARGET]))?;
    }
    Ok(())
}

/// Build every plugin that exists and copy the components into place.
fn plugins(root: &Path) -> Result<Vec<PathBuf>> {
    ensure_wasm_target()?;
    let all: Vec<&str> = VENDOR_PLUGINS.iter().chain(TEST_PLUGINS).chain(BROKEN_PLUGINS).copied().filter(|p| crate_exists(root, p)).collect();
    let mut cmd = Command::new("cargo");
    // A target dir of their own: guest builds never wait on the host's lock.
    cmd.args(["build", "--target", WASM_TARGET, "--profile", "plugin", "--target-dir", "target/guest"]);
    for p in &all {
        cmd.args(["-p", p]);
    }
    run(&mut cmd)?;
    let built = root.join("target/guest").join(WASM_TARGET).join("plugin");
    let shipped = root.join("target/spoke-plugins");
    let testing = root.join("target/test-plugins");
    let broken = root.join("target/broken-plugins");
    for dir in [&shipped, &testing, &broken] {
        std::fs::create_dir_all(dir)?;
    }
    let mut out = Vec::new();
    for p in &all {
        let file = built.join(format!("{p}.wasm"));
        let size = std::fs::metadata(&file).with_context(|| format!("{} was not built", file.display()))?.len();
        if BROKEN_PLUGINS.contains(p) {
            std::fs::copy(&file, broken.join(format!("{p}.wasm")))?;
            eprintln!("  plugin {p} (broken on purpose): {} KiB", size / 1024);
            continue;
        }
        std::fs::copy(&file, testing.join(format!("{p}.wasm")))?;
        if VENDOR_PLUGINS.contains(p) {
            std::fs::copy(&file, shipped.join(format!("{p}.wasm")))?;
            out.push(shipped.join(format!("{p}.wasm")));
        }
        eprintln!("  plugin {p}: {} KiB", size / 1024);
    }
    let template = build_template(root)?;
    std::fs::copy(&template, testing.join("acme.wasm"))?;
    eprintln!("  plugin acme (the template): {} KiB", std::fs::metadata(&template)?.len() / 1024);
    Ok(out)
}

/// Build the template the way its README tells an author to, plus a
/// target dir under ours. Its lockfile starts as a copy of the workspace's,
/// so it resolves to the versions the workspace already uses.
fn build_template(root: &Path) -> Result<PathBuf> {
    let dir = root.join(TEMPLATE);
    if !dir.join("Cargo.lock").exists() {
        std::fs::copy(root.join("Cargo.lock"), dir.join("Cargo.lock"))?;
    }
    let target = root.join("target/guest-template");
    run(Command::new("cargo").current_dir(&dir).args(["build", "--release", "--target", WASM_TARGET, "--target-dir"]).arg(&target))?;
    Ok(target.join(WASM_TARGET).join("release/acme.wasm"))
}

/// Where a workspace plugin crate lives: vendors in plugins/, test plugins
/// in tests/plugins/.
fn crate_dir(root: &Path, name: &str) -> Option<PathBuf> {
    [root.join("plugins").join(name), root.join("tests/plugins").join(name)]
        .into_iter()
        .find(|d| std::fs::read_to_string(d.join("Cargo.toml")).is_ok_and(|t| t.contains(&format!("name = \"{name}\""))))
}

fn crate_exists(root: &Path, name: &str) -> bool {
    crate_dir(root, name).is_some()
}

fn has_nextest() -> bool {
    Command::new("cargo").args(["nextest", "--version"]).output().map(|o| o.status.success()).unwrap_or(false)
}

fn test(root: &Path, extra: &[String]) -> Result<()> {
    plugins(root)?;
    let mut cmd = Command::new("cargo");
    if has_nextest() {
        cmd.args(["nextest", "run", "--workspace", "--exclude", "spoke-pdk", "--no-fail-fast"]);
        for p in VENDOR_PLUGINS.iter().chain(TEST_PLUGINS).chain(BROKEN_PLUGINS) {
            // Guest crates are built for wasm above; their native unit tests
            // run here only if they have any (rlib crate type).
            if !crate_exists(root, p) {
                continue;
            }
            if !has_rlib(root, p) {
                cmd.args(["--exclude", p]);
            }
        }
    } else {
        cmd.args(["test", "--workspace", "--exclude", "spoke-pdk", "--exclude", "probe", "--exclude", "badmanifest"]);
    }
    cmd.args(extra);
    run(&mut cmd)
}

fn has_rlib(root: &Path, name: &str) -> bool {
    crate_dir(root, name).is_some_and(|d| std::fs::read_to_string(d.join("Cargo.toml")).is_ok_and(|t| t.contains("\"rlib\"")))
}

fn demo(root: &Path, extra: &[String]) -> Result<()> {
    plugins(root)?;
    run(Command::new("cargo").args(["build", "-p", "spoke-cli"]))?;
    let spoke = root.join("target/debug/spoke");
    let mut cmd = Command::new(spoke);
    cmd.arg("demo").args(extra);
    run(&mut cmd)
}

fn bench(root: &Path) -> Result<()> {
    plugins(root)?;
    // The memory figure runs the real binary.
    run(Command::new("cargo").args(["build", "-p", "spoke-cli", "-p", "spoke-bench"]))?;
    run(&mut Command::new(root.join("target/debug/spoke-bench")))
}
