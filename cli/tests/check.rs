//! `spoke check`, `spoke plugins` with plugins that fail, and `spoke call`
//! refused by the host's own input check — the binary as an author runs it.
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn target() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../target")
}

/// The badmanifest test plugin with its variant marker patched (see
/// tests/plugins/badmanifest and `spoke_tests::badmanifest`).
fn badmanifest(variant: &str) -> Vec<u8> {
    let path = target().join("broken-plugins/badmanifest.wasm");
    let mut wasm = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}; run `cargo xtask plugins`", path.display()));
    let marker = b"spoke-badmanifest:all###########";
    let at = wasm.windows(marker.len()).position(|w| w == marker).expect("the variant marker is in the component");
    let mut patched = format!("spoke-badmanifest:{variant}").into_bytes();
    patched.resize(marker.len(), b'#');
    wasm[at..at + marker.len()].copy_from_slice(&patched);
    wasm
}

fn spoke(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_spoke")).current_dir(dir).arg("--config").arg(dir.join("spoke.toml")).args(args).env_remove("RUST_LOG").output().unwrap()
}

fn text(out: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

#[test]
fn check_lists_every_problem_of_each_broken_manifest() {
    let dir = tempfile::tempdir().unwrap();
    for (variant, names) in [
        ("name", r#"name "Tiny Bad!" is not a plugin name"#),
        ("dupop", "operation `list_items` is declared 2 times"),
        ("dupauth", "auth scheme `basic` is declared 2 times"),
        ("path", r#"path "items" must start with `/`"#),
        ("schema", "input schema is not JSON"),
        ("badschema", "input schema is not a valid JSON Schema"),
        ("url", r#"base URL `default` = "not a url" is not an http(s) URL"#),
        ("rate", "window {limit = 0, seconds = 60} allows nothing"),
    ] {
        let file = dir.path().join(format!("{variant}.wasm"));
        std::fs::write(&file, badmanifest(variant)).unwrap();
        let out = spoke(dir.path(), &["check", file.to_str().unwrap()]);
        assert_eq!(out.status.code(), Some(1), "{variant}: {}", text(&out));
        assert!(text(&out).contains(names), "{variant}: {}", text(&out));
    }
    let all = dir.path().join("all.wasm");
    std::fs::write(&all, badmanifest("all")).unwrap();
    let out = spoke(dir.path(), &["check", all.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out).contains("8 problem(s)"), "{}", text(&out));

    let ok = dir.path().join("ok.wasm");
    std::fs::write(&ok, badmanifest("ok")).unwrap();
    let out = spoke(dir.path(), &["check", ok.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("ok — plugin badmanifest 0.1.0"), "{}", text(&out));

    // The memory floor: a Rust guest needs ~1.1 MiB before it does anything.
    let probe = target().join("test-plugins/probe.wasm");
    let out = spoke(dir.path(), &["check", probe.to_str().unwrap(), "--memory-mib", "1"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("above the cap of 1 MiB (limits.memory_mib)"), "{}", text(&out));
}

/// A folder of plugins and a spoke.toml loading it.
fn host_dir(plugins: &[(&str, Vec<u8>)], connectors: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("plugins")).unwrap();
    for (name, wasm) in plugins {
        std::fs::write(dir.path().join("plugins").join(name), wasm).unwrap();
    }
    std::fs::write(dir.path().join("spoke.toml"), format!("plugins_dir = \"plugins\"\ncache_dir = \"cache\"\nstore = \"spoke.db\"\n{connectors}")).unwrap();
    dir
}

#[test]
fn plugins_lists_failed_plugins_with_their_error_and_exits_non_zero() {
    let probe = std::fs::read(target().join("test-plugins/probe.wasm")).unwrap();
    let dir = host_dir(&[("probe.wasm", probe.clone()), ("tiny.wasm", badmanifest("name"))], "");
    let out = spoke(dir.path(), &["plugins"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("probe"), "{stdout}");
    assert!(stdout.contains("NOT LOADED") && stdout.contains("tiny.wasm") && stdout.contains("Tiny Bad!"), "{stdout}");

    let dir = host_dir(&[("probe.wasm", probe.clone())], "");
    assert!(spoke(dir.path(), &["plugins"]).status.success());

    // Two files, one plugin name: both files are named.
    let dir = host_dir(&[("probe.wasm", probe.clone()), ("probe-copy.wasm", probe)], "");
    let out = spoke(dir.path(), &["plugins"]);
    assert!(!out.status.success());
    let err = text(&out);
    assert!(err.contains("two plugins are named probe") && err.contains("probe.wasm") && err.contains("probe-copy.wasm"), "{err}");
}

#[test]
fn call_is_refused_by_the_host_when_input_breaks_the_schema() {
    // The badmanifest guest echoes any input; only the host checks it.
    let dir = host_dir(&[("badmanifest.wasm", badmanifest("ok"))], "[connectors.lenient]\nplugin = \"badmanifest\"\n");
    let out = spoke(dir.path(), &["call", "lenient", "list_items", r#"{"x":1}"#]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("invalid-input") && text(&out).contains("'x' was unexpected"), "{}", text(&out));
    let out = spoke(dir.path(), &["call", "lenient", "list_items", r#"{"limit":3}"#]);
    assert!(out.status.success(), "{}", text(&out));
}
