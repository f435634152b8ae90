//! `cargo xtask`: the project's own build steps, so a fresh machine and CI
//! run exactly what a developer runs.
//!
//!   cargo xtask plugins   install the wasm32-wasip2 target, build every plugin
//!                         (and the standalone template, examples/plugin-template)
//!   cargo xtask examples  install componentize-py / componentize-js (pinned) into
//!                         target/tools, build the Python and JS example plugins
//!   cargo xtask test      plugins, examples, then every test (cargo nextest, or cargo test)
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

/// componentize-py from PyPI. 0.25.1 emits components whose WASI imports
/// (wasi:*@0.2.9) wasmtime 48's linker satisfies; change it only together
/// with `tests/host/languages.rs` passing.
const COMPONENTIZE_PY: &str = "0.25.1";
/// componentize-js from npm, pinned with its whole tree by
/// xtask/tools/js/package-lock.json (`npm ci`).
const COMPONENTIZE_JS: &str = "0.23.0";
/// Where the example components go: not target/test-plugins, which every
/// test host loads whole (a Python or JS component costs 7-10 s to compile).
const LANG_PLUGINS: &str = "target/lang-plugins";

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let root = workspace_root();
    std::env::set_current_dir(&root)?;
    match args.first().map(String::as_str) {
        Some("plugins") => plugins(&root).map(|_| ()),
        Some("examples") => examples(&root),
        Some("test") => test(&root, &args[1..]),
        Some("demo") => demo(&root, &args[1..]),
        Some("bench") => bench(&root),
        _ => {
            eprintln!("usage: cargo xtask <plugins|examples|test|demo|bench> [args]\n\n  plugins  install the {WASM_TARGET} target and build every plugin into target/spoke-plugins (vendor) and target/test-plugins (all)\n  examples install componentize-py {COMPONENTIZE_PY} (target/tools/python) and componentize-js {COMPONENTIZE_JS} (target/tools/js), build examples/python-plugin and examples/js-plugin into {LANG_PLUGINS}\n  test     build the plugins and the examples, then run every test\n  demo     build everything, then run the demo against the vendor sandbox\n  bench    build everything, then measure every performance figure (table + target/bench/results.json)");
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
    apt_install(&missing, "the browser test")
}

/// The PostgreSQL server the store tests start privately
/// (tests/harness/postgres.rs): any version's initdb will do.
fn ensure_postgres() -> Result<()> {
    let installed = std::fs::read_dir("/usr/lib/postgresql").into_iter().flatten().flatten().any(|v| v.path().join("bin/initdb").exists());
    apt_install(if installed { &[] } else { &["postgresql"] }, "the PostgreSQL store tests")
}

/// Install Debian packages (as root, else through sudo), if any are missing.
fn apt_install(missing: &[&str], why: &str) -> Result<()> {
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
    install.args(missing);
    run(&mut install).with_context(|| format!("installing {} for {why}", missing.join(", ")))
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
    ensure_browser()?;
    ensure_postgres()?;
    examples(root)?;
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
    // Figures are of the release build; the memory figure and the open-loop
    // pipeline run the real `spoke` binary.
    run(Command::new("cargo").args(["build", "--release", "-p", "spoke-cli", "-p", "spoke-bench"]))?;
    run(&mut Command::new(root.join("target/release/spoke-bench")))
}

/// The Python and JavaScript component tools, installed by the project
/// itself (a fresh machine has python3 and node/npm, nothing else).
struct Tools {
    componentize_py: PathBuf,
    componentize_js: PathBuf,
}

fn tools(root: &Path) -> Result<Tools> {
    let py = root.join("target/tools/python");
    let componentize_py = py.join("bin/componentize-py");
    let have_py = Command::new(&componentize_py).arg("--version").output().is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains(COMPONENTIZE_PY));
    if !have_py {
        if !py.join("bin/pip").exists() {
            run(Command::new("python3").args(["-m", "venv"]).arg(&py)).context("creating the Python venv for componentize-py: python3 with the venv module is needed")?;
        }
        run(Command::new(py.join("bin/pip")).args(["install", "--quiet", "--disable-pip-version-check", &format!("componentize-py=={COMPONENTIZE_PY}")]))?;
    }
    let js = root.join("target/tools/js");
    let componentize_js = js.join("node_modules/.bin/componentize-js");
    let installed = std::fs::read_to_string(js.join("node_modules/@bytecodealliance/componentize-js/package.json")).unwrap_or_default();
    let lock = root.join("xtask/tools/js/package-lock.json");
    // Reinstall when the pinned lock changed, not only the top version.
    let lock_same = std::fs::read(&lock).ok() == std::fs::read(js.join("package-lock.json")).ok();
    if !(installed.contains(&format!("\"version\": \"{COMPONENTIZE_JS}\"")) && lock_same && componentize_js.exists()) {
        std::fs::create_dir_all(&js)?;
        std::fs::copy(root.join("xtask/tools/js/package.json"), js.join("package.json"))?;
        std::fs::copy(&lock, js.join("package-lock.json"))?;
        run(Command::new("npm").args(["ci", "--no-audit", "--no-fund", "--prefix"]).arg(&js)).context("installing componentize-js with npm: node and npm are needed")?;
        let installed = std::fs::read_to_string(js.join("node_modules/@bytecodealliance/componentize-js/package.json")).unwrap_or_default();
        if !installed.contains(&format!("\"version\": \"{COMPONENTIZE_JS}\"")) {
            bail!("xtask/tools/js/package-lock.json does not install componentize-js {COMPONENTIZE_JS} (COMPONENTIZE_JS in xtask/src/main.rs): pin the same version in both");
        }
    }
    Ok(Tools { componentize_py, componentize_js })
}

/// True when `out` exists and is newer than every input.
fn fresh(out: &Path, inputs: &[PathBuf]) -> bool {
    let Ok(built) = std::fs::metadata(out).and_then(|m| m.modified()) else { return false };
    inputs.iter().all(|i| std::fs::metadata(i).and_then(|m| m.modified()).is_ok_and(|t| t <= built))
}

/// Install the tools, then build examples/python-plugin and
/// examples/js-plugin into target/lang-plugins (skipped when up to date).
fn examples(root: &Path) -> Result<()> {
    let tools = tools(root)?;
    let wit = root.join("wit/v0.1.0");
    let mut wit_files: Vec<PathBuf> = std::fs::read_dir(&wit)?.filter_map(|e| e.ok().map(|e| e.path())).collect();
    wit_files.sort();
    let out = root.join(LANG_PLUGINS);
    std::fs::create_dir_all(&out)?;

    let py_dir = root.join("examples/python-plugin");
    let py_out = out.join("pyexample.wasm");
    // The tools are inputs too: a reinstalled (re-pinned) tool rebuilds.
    if !fresh(&py_out, &[&wit_files[..], &[py_dir.join("app.py"), tools.componentize_py.clone()]].concat()) {
        // The exact command examples/python-plugin/README.md documents.
        run(Command::new(&tools.componentize_py).arg("-d").arg(&wit).args(["-w", "connector", "componentize", "app", "-o"]).arg(&py_out).current_dir(&py_dir))?;
    }
    let js_dir = root.join("examples/js-plugin");
    let js_out = out.join("jsexample.wasm");
    if !fresh(&js_out, &[&wit_files[..], &[js_dir.join("app.js"), root.join("target/tools/js/package-lock.json")]].concat()) {
        // `-d http fetch-event`: without it the component imports wasi:http,
        // which Spoke does not provide (a plugin reaches the network only
        // through the host's `http` import).
        run(Command::new(&tools.componentize_js).arg("app.js").arg("-w").arg(&wit).args(["-n", "connector", "-d", "http", "fetch-event", "-o"]).arg(&js_out).current_dir(&js_dir))?;
    }
    for f in [&py_out, &js_out] {
        eprintln!("  example {}: {} KiB", f.display(), std::fs::metadata(f)?.len() / 1024);
    }
    Ok(())
}
