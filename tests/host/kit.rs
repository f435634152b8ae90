//! The plugin kit as a third party meets it: the pdk and template outside
//! this repository, the checks every load runs (`spoke check` runs the same
//! ones), the host's own input validation, crash reports with the guest's
//! stderr, and the compile cache pruned of versions no longer loaded.
use serde_json::json;
use spoke::plugin::{EngineLimits, Runtime};
use spoke::ErrorKind;
use spoke_tests::{badmanifest, workspace, TestHost};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

fn runtime(cache: &Path, memory_mib: u32) -> Runtime {
    let limits = EngineLimits {
        memory_bytes: (memory_mib as usize) << 20,
        call_timeout: Duration::from_secs(5),
        call_deadline: Duration::from_secs(10),
        max_instances: 64,
        per_connector_calls: 8,
        call_queue: Duration::from_secs(1),
    };
    Runtime::new(cache, limits).unwrap()
}

/// Every problem `load` names for the component `wasm`.
async fn refusal(wasm: &[u8]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("plugin.wasm");
    std::fs::write(&file, wasm).unwrap();
    let rt = runtime(&spoke_tests::cache_dir(), 64);
    let e = rt.load(&file).await.err().expect("the plugin must be refused");
    format!("{e:#}")
}

#[test]
fn the_pdk_bundles_wit_v0_1_0_byte_for_byte() {
    let root = workspace();
    let (frozen, bundled) = (root.join("wit/v0.1.0"), root.join("plugins/pdk/wit"));
    let names = |d: &Path| {
        let mut v: Vec<String> = std::fs::read_dir(d).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
        v.sort();
        v
    };
    assert_eq!(names(&frozen), names(&bundled), "plugins/pdk/wit must hold exactly the files of wit/v0.1.0");
    for name in names(&frozen) {
        assert!(std::fs::read(frozen.join(&name)).unwrap() == std::fs::read(bundled.join(&name)).unwrap(), "plugins/pdk/wit/{name} differs from wit/v0.1.0/{name}: copy it again");
    }
}

#[tokio::test]
async fn each_broken_manifest_is_refused_at_load_naming_the_problem() {
    for (variant, names) in [
        ("name", r#"name "Tiny Bad!" is not a plugin name"#),
        ("dupop", "operation `list_items` is declared 2 times"),
        ("dupauth", "auth scheme `basic` is declared 2 times"),
        ("path", r#"operation `list_items`: path "items" must start with `/`"#),
        ("schema", "operation `list_items`: input schema is not JSON"),
        ("badschema", "operation `get_item`: input schema is not a valid JSON Schema"),
        ("url", r#"base URL `default` = "not a url" is not an http(s) URL"#),
        ("rate", "rate policy `general`: window {limit = 0, seconds = 60} allows nothing"),
    ] {
        let text = refusal(&badmanifest(variant)).await;
        assert!(text.contains("plugin.wasm is refused") && text.contains(names), "{variant}: {text}");
    }
    // Every problem at once, not the first only.
    let text = refusal(&badmanifest("all")).await;
    assert_eq!(text.matches("\n  - ").count(), 8, "{text}");
}

#[tokio::test]
async fn every_unsatisfiable_import_is_named() {
    let wasm = wat::parse_str(
        r#"(component
            (import "acme:missing/thing@1.0.0" (instance (export "go" (func))))
            (import "wasi:http/outgoing-handler@0.2.0" (instance (export "handle" (func (param "x" u32)))))
            (import "spoke:connector/log@0.1.0" (instance (export "nope" (func))))
        )"#,
    )
    .unwrap();
    let text = refusal(&wasm).await;
    for name in ["acme:missing/thing@1.0.0", "wasi:http/outgoing-handler@0.2.0", "spoke:connector/log@0.1.0"] {
        assert!(text.contains(&format!("imports `{name}`, which Spoke does not provide")), "{name}: {text}");
    }
}

#[tokio::test]
async fn a_memory_floor_above_the_cap_is_named() {
    // 2,000 pages = 125 MiB of memory before the plugin does anything.
    let wasm = wat::parse_str(r#"(component (core module (memory 2000)))"#).unwrap();
    let text = refusal(&wasm).await;
    assert!(text.contains("needs at least 125.0 MiB of linear memory (2000 pages), above the cap of 64 MiB"), "{text}");
    // A real plugin against a cap below its floor (a Rust guest starts at ~1.1 MiB).
    let rt = runtime(&spoke_tests::cache_dir(), 1);
    let checked = rt.check(&spoke_tests::plugins_dir().join("probe.wasm")).await.unwrap();
    assert!(checked.problems.iter().any(|p| p.contains("above the cap of 1 MiB")), "{:?}", checked.problems);
}

/// The config text of a host loading only the plugins in `plugins`, with
/// a `lenient` connector on the badmanifest plugin.
fn config_text(dir: &Path, plugins: &Path, cache: &Path, prune: bool) -> String {
    format!(
        "plugins_dir = {:?}\ncache_dir = {:?}\ncache_prune = {prune}\nstore = {:?}\n\n[connectors.lenient]\nplugin = \"badmanifest\"\n",
        plugins.display().to_string(),
        cache.display().to_string(),
        dir.join("spoke.db").display().to_string()
    )
}

/// Start a host whose plugin folder (under `dir`) holds `wasm` as
/// badmanifest.wasm.
async fn lenient_host(dir: &Path, wasm: &[u8], cache: &Path, prune: bool) -> spoke::Host {
    let plugins = dir.join("plugins");
    std::fs::create_dir_all(&plugins).unwrap();
    std::fs::write(plugins.join("badmanifest.wasm"), wasm).unwrap();
    let text = config_text(dir, &plugins, cache, prune);
    spoke::Host::start(spoke::Config::parse(&text, "test spoke.toml", dir).unwrap()).await.unwrap()
}

#[tokio::test]
async fn the_host_validates_input_before_a_guest_that_does_not() {
    // The badmanifest guest echoes whatever it gets; its schema allows only
    // an integer `limit` of at least 1.
    let dir = tempfile::tempdir().unwrap();
    let h = lenient_host(dir.path(), &badmanifest("ok"), &spoke_tests::cache_dir(), false).await;
    assert_eq!(h.call("lenient", "list_items", json!({"limit": 2})).await.unwrap(), json!({"limit": 2}));
    let e = h.call("lenient", "list_items", json!({"x": 1})).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::InvalidInput, "{e}");
    assert!(e.message.contains("`additionalProperties`") && e.message.contains("'x'"), "{e}");
    let e = h.call("lenient", "list_items", json!({"limit": 0})).await.unwrap_err();
    assert_eq!((e.kind, e.field.as_deref()), (ErrorKind::InvalidInput, Some("limit")), "{e}");
    assert!(e.message.contains("`minimum`"), "{e}");
}

#[tokio::test]
async fn a_crash_report_carries_the_guest_stderr() {
    let h = TestHost::start("[connectors.probe]\nplugin = \"probe\"\nbase_url = \"http://127.0.0.1:9\"\n").await.unwrap();
    // 10 KiB of noise first: the panic message is at the end of stderr.
    let e = h.call("probe", "noisy_panic", json!({"kib": 10})).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::Internal);
    assert!(e.message.contains("the probe panicked after 10 KiB of noise"), "{e}");
    let stderr = e.details.as_ref().and_then(|d| d["stderr"].as_str()).unwrap_or_default().to_string();
    assert!(stderr.contains("panicked at") && stderr.contains("the probe panicked after 10 KiB of noise"), "{stderr}");
    assert!(stderr.starts_with("[") && stderr.contains("earlier bytes of stderr not kept"), "{stderr}");
    assert!(stderr.len() <= 4 * 1024 + 64, "stderr kept is bounded: {} bytes", stderr.len());
}

fn cwasm(cache: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(cache).unwrap().map(|e| e.unwrap().path()).filter(|p| p.extension().is_some_and(|x| x == "cwasm")).collect();
    v.sort();
    v
}

#[tokio::test]
async fn the_compile_cache_keeps_only_versions_loaded() {
    for prune in [true, false] {
        let dir = tempfile::tempdir().unwrap();
        let cache = dir.path().join("cache");
        let start = |wasm: Vec<u8>| {
            let (dir, cache) = (dir.path().to_path_buf(), cache.clone());
            async move { lenient_host(&dir, &wasm, &cache, prune).await }
        };
        let first = start(badmanifest("ok")).await;
        let v1 = cwasm(&cache);
        assert_eq!(v1.len(), 1, "{v1:?}");
        drop(first);
        // A new version of the same plugin replaces the file.
        let second = start(badmanifest("okay")).await;
        let v2 = cwasm(&cache);
        if prune {
            assert_eq!(v2.len(), 1, "the old version is pruned: {v2:?}");
            assert_ne!(v1, v2);
            // A hot swap prunes too.
            let file = dir.path().join("plugins/badmanifest.wasm");
            std::fs::write(&file, badmanifest("okay3")).unwrap();
            assert_eq!(second.reload_plugin(&file).await.unwrap(), vec!["lenient".to_string()]);
            let v3 = cwasm(&cache);
            assert!(v3.len() == 1 && v3 != v2, "after the swap only the new version is kept: {v3:?}");
        } else {
            assert_eq!(v2.len(), 2, "cache_prune = false keeps both: {v2:?}");
        }
    }
}

/// The template and the pdk copied out of the repository, the pdk
/// dependency pointed at the copy, built with the documented command, and
/// the component loaded and called through a host.
#[tokio::test(flavor = "multi_thread")]
async fn the_template_builds_outside_the_repo_and_loads() {
    let root = workspace();
    let outside = tempfile::tempdir().unwrap();
    copy_dir(&root.join("plugins/pdk"), &outside.path().join("spoke-pdk"));
    let project = outside.path().join("my-connector");
    copy_dir(&root.join("examples/plugin-template"), &project);
    let manifest = project.join("Cargo.toml");
    let text = std::fs::read_to_string(&manifest).unwrap();
    assert!(text.contains(r#"spoke-pdk = { path = "../../plugins/pdk" }"#), "the template's pdk dependency moved; update this test");
    std::fs::write(&manifest, text.replace(r#"path = "../../plugins/pdk""#, r#"path = "../spoke-pdk""#)).unwrap();
    // A target dir under ours, so a second run is incremental.
    let target = root.join("target/outside-template");
    let out = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .current_dir(&project)
        .args(["build", "--release", "--target", "wasm32-wasip2"])
        .env("CARGO_TARGET_DIR", &target)
        .env_remove("RUSTFLAGS")
        .output()
        .unwrap();
    assert!(out.status.success(), "building the copied template failed:\n{}", String::from_utf8_lossy(&out.stderr));
    let wasm = target.join("wasm32-wasip2/release/acme.wasm");

    let server = crate::recorder::Recorder::start().await;
    let plugins = outside.path().join("plugins");
    std::fs::create_dir_all(&plugins).unwrap();
    std::fs::copy(&wasm, plugins.join("acme.wasm")).unwrap();
    let text = format!(
        "plugins_dir = {:?}\ncache_dir = {:?}\ncache_prune = false\nstore = {:?}\n\n[connectors.acme]\nplugin = \"acme\"\nbase_url = \"{}\"\ncredentials = {{ api_key = \"value:acme-key\" }}\n",
        plugins.display().to_string(),
        spoke_tests::cache_dir().display().to_string(),
        outside.path().join("spoke.db").display().to_string(),
        server.url
    );
    let host = spoke::Host::start(spoke::Config::parse(&text, "t", outside.path()).unwrap()).await.unwrap();
    assert!(host.failed_plugins().is_empty(), "{:?}", host.failed_plugins());
    let e = host.call("acme", "get_order", json!({})).await.unwrap_err();
    assert_eq!((e.kind, e.field.as_deref()), (ErrorKind::InvalidInput, Some("id")), "{e}");
    // The recorder answers "ok", not the JSON the template expects: the call reached the vendor.
    let _ = host.call("acme", "get_order", json!({"id": "A/7"})).await;
    assert_eq!(server.seen()[0].path, "/orders/A%2F7");
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name();
        if name == "target" {
            continue;
        }
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &to.join(&name));
        } else {
            std::fs::copy(entry.path(), to.join(&name)).unwrap();
        }
    }
}
