//! `cargo xtask`: the project's own build steps, so a fresh machine and CI
//! run exactly what a developer runs.
//!
//!   cargo xtask plugins   install the wasm32-wasip2 target, build every plugin
//!   cargo xtask test      plugins, then every test (cargo nextest, or cargo test)
//!   cargo xtask demo      plugins, the host, then the demo against the sandbox
//!   cargo xtask bench     plugins, the host, then every performance figure
use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use std::process::Command;

/// Plugins shipped to users.
const VENDOR_PLUGINS: &[&str] = &["cyclesoftware", "lagerkoll", "wics"];
/// Plugins only the tests load.
const TEST_PLUGINS: &[&str] = &["probe", "acme"];
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

/// Debian's Chromium and its WebDriver, for the status page's browser test
/// (tests/browser).
fn ensure_browser() -> Result<()> {
    const NEEDED: [(&str, &str); 2] = [("/usr/bin/chromium", "chromium"), ("/usr/bin/chromedriver", "chromium-driver")];
    let missing: Vec<&str> = NEEDED.iter().filter(|(path, _)| !Path::new(path).exists()).map(|(_, package)| *package).collect();
    if missing.is_empty() {
        return Ok(());
    }
    let root = Command::new("id").arg("-u").output().is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0");
    let apt = |args: &[&str]| {
        let mut cmd = if root { Command::new("apt-get") } else { let mut c = Command::new("sudo"); c.arg("apt-get"); c };
        cmd.args(args).env("DEBIAN_FRONTEND", "noninteractive");
        cmd
    };
    // The package lists may be stale on a fresh machine: update, then install.
    run(&mut apt(&["update", "-q"]))?;
    let mut install = apt(&["install", "-y", "-q", "--no-install-recommends"]);
    install.args(&missing);
    run(&mut install).with_context(|| format!("installing {} for the browser test", missing.join(", ")))
}

/// Build every plugin that exists and copy the components into place.
fn plugins(root: &Path) -> Result<Vec<PathBuf>> {
    ensure_wasm_target()?;
    let all: Vec<&str> = VENDOR_PLUGINS.iter().chain(TEST_PLUGINS).copied().filter(|p| crate_exists(root, p)).collect();
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
    for dir in [&shipped, &testing] {
        std::fs::create_dir_all(dir)?;
    }
    let mut out = Vec::new();
    for p in &all {
        let file = built.join(format!("{p}.wasm"));
        let size = std::fs::metadata(&file).with_context(|| format!("{} was not built", file.display()))?.len();
        std::fs::copy(&file, testing.join(format!("{p}.wasm")))?;
        if VENDOR_PLUGINS.contains(p) {
            std::fs::copy(&file, shipped.join(format!("{p}.wasm")))?;
            out.push(shipped.join(format!("{p}.wasm")));
        }
        eprintln!("  plugin {p}: {} KiB", size / 1024);
    }
    Ok(out)
}

/// Where a plugin crate lives: vendors in plugins/, the probe in
/// tests/plugins/, the template (crate `acme`) in examples/.
fn crate_dir(root: &Path, name: &str) -> Option<PathBuf> {
    [root.join("plugins").join(name), root.join("tests/plugins").join(name), root.join("examples/plugin-template")]
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
    ensure_browser()?;
    let mut cmd = Command::new("cargo");
    if has_nextest() {
        cmd.args(["nextest", "run", "--workspace", "--exclude", "spoke-pdk", "--no-fail-fast"]);
        for p in VENDOR_PLUGINS.iter().chain(TEST_PLUGINS) {
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
        cmd.args(["test", "--workspace", "--exclude", "spoke-pdk", "--exclude", "probe", "--exclude", "acme"]);
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
    // Figures are of the release build; the memory figure and the open-loop
    // pipeline run the real `spoke` binary.
    run(Command::new("cargo").args(["build", "--release", "-p", "spoke-cli", "-p", "spoke-bench"]))?;
    run(&mut Command::new(root.join("target/release/spoke-bench")))
}
