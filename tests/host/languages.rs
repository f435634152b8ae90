//! Connectors written in Python (componentize-py) and JavaScript
//! (componentize-js): examples/python-plugin and examples/js-plugin, built
//! by `cargo xtask examples` with the tools it installs into target/tools,
//! called through the real `spoke call` binary against a loopback vendor and
//! fed signed webhooks; and `spoke new` projects built outside the repo with
//! the one command their README documents, then loaded by the host.
//!
//! Nothing here skips: a missing tool or component fails with what to run.
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Value};
use spoke_tests::{eventually, sign, workspace, Probe, TestHost};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};

const API_KEY: &str = "acme-key-never-in-guest";
const SECRET: &str = "acme-hook-secret";

/// The folder `cargo xtask examples` builds the example components into.
fn lang_plugins() -> PathBuf {
    let dir = workspace().join("target/lang-plugins");
    for f in ["pyexample.wasm", "jsexample.wasm"] {
        assert!(dir.join(f).exists(), "{} is missing: run `cargo xtask examples` (or `cargo xtask test`), which installs componentize-py and componentize-js into target/tools and builds examples/python-plugin and examples/js-plugin", dir.join(f).display());
    }
    dir
}

fn spoke_bin() -> PathBuf {
    let bin = workspace().join("target/debug/spoke");
    assert!(bin.exists(), "{} is missing: build it with `cargo build -p spoke-cli` before this test", bin.display());
    bin
}

/// A tool `cargo xtask examples` installs, by its path under target/tools.
fn tool(rel: &str) -> PathBuf {
    let path = workspace().join("target/tools").join(rel);
    assert!(path.exists(), "{} is missing: run `cargo xtask examples` (or `cargo xtask test`) to install the Python and JavaScript component tools", path.display());
    path
}

/// PATH with the installed tools first, as a plugin author's shell has them.
fn tools_path() -> String {
    let py = tool("python/bin/componentize-py");
    let js = tool("js/node_modules/.bin/componentize-js");
    format!("{}:{}:{}", py.parent().unwrap().display(), js.parent().unwrap().display(), std::env::var("PATH").unwrap_or_default())
}

/// The fictional vendor "Acme Items" on loopback: items, an API key, a
/// conflict on a duplicate name.
#[derive(Default)]
struct Vendor {
    items: Mutex<Vec<Value>>,
    /// (method, path + query, x-api-key) of every request.
    seen: Mutex<Vec<(String, String, String)>>,
}

async fn start_vendor() -> (Arc<Vendor>, spoke_sandbox::serve::Server) {
    let vendor = Arc::new(Vendor::default());
    vendor.items.lock().unwrap().extend([json!({"id": 1, "name": "bolt", "status": "open"}), json!({"id": 2, "name": "nut", "status": "done"})]);
    async fn list(State(v): State<Arc<Vendor>>, headers: HeaderMap, Query(q): Query<Vec<(String, String)>>) -> axum::response::Response {
        let key = headers.get("x-api-key").and_then(|k| k.to_str().ok()).unwrap_or_default().to_string();
        let query = q.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("&");
        v.seen.lock().unwrap().push(("GET".into(), format!("/items?{query}"), key.clone()));
        if key != API_KEY {
            return (StatusCode::UNAUTHORIZED, Json(json!({"error": "bad api key"}))).into_response();
        }
        let status = q.iter().find(|(k, _)| k == "status").map(|(_, v)| v.clone());
        let items: Vec<Value> = v.items.lock().unwrap().iter().filter(|i| status.as_deref().is_none_or(|s| i["status"] == s)).cloned().collect();
        Json(json!({"items": items})).into_response()
    }
    async fn create(State(v): State<Arc<Vendor>>, headers: HeaderMap, Json(body): Json<Value>) -> axum::response::Response {
        let key = headers.get("x-api-key").and_then(|k| k.to_str().ok()).unwrap_or_default().to_string();
        v.seen.lock().unwrap().push(("POST".into(), "/items".into(), key));
        let mut items = v.items.lock().unwrap();
        if items.iter().any(|i| i["name"] == body["name"]) {
            return (StatusCode::CONFLICT, Json(json!({"error": format!("an item named {} exists", body["name"])}))).into_response();
        }
        let item = json!({"id": items.len() + 1, "name": body["name"], "quantity": body["quantity"], "status": "open"});
        items.push(item.clone());
        (StatusCode::CREATED, Json(item)).into_response()
    }
    // The Rust template's one operation, get_order.
    async fn order(State(v): State<Arc<Vendor>>, headers: HeaderMap, axum::extract::Path(id): axum::extract::Path<String>) -> axum::response::Response {
        let key = headers.get("x-api-key").and_then(|k| k.to_str().ok()).unwrap_or_default().to_string();
        v.seen.lock().unwrap().push(("GET".into(), format!("/orders/{id}"), key));
        Json(json!({"id": id, "status": "open"})).into_response()
    }
    let router = Router::new().route("/items", get(list).post(create)).route("/orders/{id}", get(order)).with_state(vendor.clone());
    let server = spoke_sandbox::serve::serve(router, 0).await.unwrap();
    (vendor, server)
}

fn connector_toml(name: &str, url: &str) -> String {
    format!("[connectors.{name}]\nplugin = \"{name}\"\nbase_url = \"{url}\"\ncredentials = {{ api_key = \"value:{API_KEY}\", webhook_secret = \"value:{SECRET}\" }}\n")
}

/// Python and JS components need at least 16 MiB per instance; 64 leaves
/// room for the interpreter's heap, explicitly rather than by default.
const LIMITS: &str = "[limits]\nmemory_mib = 64\ncall_timeout_secs = 30\n";

/// `spoke --config CONFIG ARGS...`: (exit code, stdout, stderr).
fn spoke(config: &Path, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(spoke_bin()).arg("--config").arg(config).args(args).output().unwrap();
    (out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
}

/// A spoke.toml loading only `wasm` (copied into its own plugin folder).
fn cli_config(dir: &Path, wasm: &Path, name: &str, url: &str) -> PathBuf {
    let plugins = dir.join("plugins");
    std::fs::create_dir_all(&plugins).unwrap();
    std::fs::copy(wasm, plugins.join(wasm.file_name().unwrap())).unwrap();
    let text = format!(
        "plugins_dir = {:?}\nstore = {:?}\ncache_dir = {:?}\n\n{LIMITS}\n{}",
        plugins.display().to_string(),
        dir.join("spoke.db").display().to_string(),
        spoke_tests::cache_dir().display().to_string(),
        connector_toml(name, url)
    );
    let path = dir.join("spoke.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// Every path of the connector, through the `spoke` binary.
async fn through_spoke_call(name: &str) {
    let wasm = lang_plugins().join(format!("{name}.wasm"));
    let (vendor, server) = start_vendor().await;
    let dir = tempfile::tempdir().unwrap();
    let config = cli_config(dir.path(), &wasm, name, &server.url());
    let run = |args: Vec<String>| {
        let config = config.clone();
        async move { tokio::task::spawn_blocking(move || spoke(&config, &args.iter().map(String::as_str).collect::<Vec<_>>())).await.unwrap() }
    };
    let call = |op: &str, input: &str| run(vec!["call".into(), name.into(), op.into(), input.into()]);

    let (code, out, err) = run(vec!["describe".into(), name.into()]).await;
    assert_eq!(code, 0, "describe {name}: {err}");
    assert!(out.contains("list_items") && out.contains("create_item") && out.contains("ITEM_CHANGED"), "{out}");

    let (code, out, err) = call("list_items", r#"{"status": "open"}"#).await;
    assert_eq!(code, 0, "{name} list_items: {err}");
    let items: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{name}: not JSON ({e}): {out}"));
    assert_eq!(items, json!({"items": [{"id": 1, "name": "bolt", "status": "open"}]}));
    assert_eq!(vendor.seen.lock().unwrap().last().unwrap(), &("GET".into(), "/items?status=open".into(), API_KEY.into()), "the host added the API key");

    let (code, out, err) = call("create_item", r#"{"name": "washer", "quantity": 3}"#).await;
    assert_eq!(code, 0, "{name} create_item: {err}");
    assert_eq!(serde_json::from_str::<Value>(&out).unwrap()["quantity"], 3);

    // Refused by the host against the published schema before the guest
    // runs, whatever the language: exit 2, the field named.
    let before = vendor.seen.lock().unwrap().len();
    let (code, _, err) = call("create_item", "{}").await;
    assert_eq!(code, 2, "{name}: missing name is invalid input: {err}");
    assert!(err.contains("\"name\" is a required property") && err.contains("field: name") && err.contains("the host checked"), "{name}: {err}");
    let (code, _, err) = call("list_items", r#"{"status": "lost"}"#).await;
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("\"open\", \"done\""), "names the allowed values: {err}");
    assert_eq!(vendor.seen.lock().unwrap().len(), before, "nothing was sent for invalid input");

    // The vendor's 409 becomes `conflict` with its own message and status.
    let (code, _, err) = call("create_item", r#"{"name": "bolt"}"#).await;
    assert_eq!(code, 3, "{name}: a duplicate is a conflict: {err}");
    assert!(err.contains("an item named \"bolt\" exists") && err.contains("vendor status: 409"), "{name}: {err}");

    let (code, _, err) = call("delete_everything", "{}").await;
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("list_items"), "an unknown operation lists the known ones: {err}");
}

/// A webhook signed with the connector's secret becomes one stored,
/// dispatched event; a forged one is refused with the guest's reason.
async fn through_a_webhook(name: &str) {
    let h = TestHost::start_with_plugins(&lang_plugins(), &format!("{LIMITS}\n{}", connector_toml(name, "http://127.0.0.1:9"))).await.unwrap();
    let sub = Probe::new("test", &[&format!("{name}/ITEM_CHANGED")], 0);
    h.host.dispatcher().subscribe(sub.clone());
    let served = h.serve().await;
    let url = format!("{}/hooks/{name}", served.url);
    let client = reqwest::Client::new();
    let post = |body: Vec<u8>, signature: String| {
        let (client, url) = (client.clone(), url.clone());
        async move { client.post(url).header("x-signature", signature).body(body).send().await.unwrap().status().as_u16() }
    };

    let body = br#"{"id": "evt-17", "at": "2026-12-01T10:00:00Z", "item": {"id": 7, "name": "bolt", "status": "done"}}"#.to_vec();
    assert_eq!(post(body.clone(), sign(SECRET, &body)).await, 200, "{name}: a genuine webhook");
    assert_eq!(post(body.clone(), sign(SECRET, &body)).await, 200, "{name}: a redelivery is answered 200");
    assert_eq!(post(body.clone(), sign("not-the-secret", &body)).await, 401, "{name}: a forged signature");
    let junk = b"not json".to_vec();
    assert_eq!(post(junk.clone(), sign(SECRET, &junk)).await, 400, "{name}: a body that is not JSON");

    assert!(eventually(20, || sub.delivered().len() == 1).await, "{name}: delivered {:?}", sub.delivered());
    let event = &sub.delivered()[0];
    assert_eq!((event.id.as_str(), event.topic.as_str(), event.subject.as_deref()), ("evt-17", "ITEM_CHANGED", Some("7")));
    assert_eq!(event.payload, json!({"id": 7, "name": "bolt", "status": "done"}));
    assert_eq!(event.occurred_at.as_deref(), Some("2026-12-01T10:00:00Z"));
    let store = h.host.store().clone();
    let stored = store.list_events(&Default::default()).unwrap();
    assert_eq!(stored.len(), 1, "{name}: the redelivery was deduplicated: {stored:?}");
    assert_eq!((stored[0].connector.as_str(), stored[0].dedupe_id.as_str()), (name, "evt-17"));
    assert!(eventually(10, || store.refusals(10).unwrap().len() == 2).await);
    let reasons: Vec<String> = store.refusals(10).unwrap().into_iter().map(|r| format!("{} {}", r.http_status, r.reason)).collect();
    assert!(reasons.iter().any(|r| r.starts_with("401") && r.contains("x-signature does not match")), "{name}: the guest's reason is kept: {reasons:?}");
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    assert_eq!(sub.delivered().len(), 1, "{name}: delivered once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_connector_through_spoke_call() {
    through_spoke_call("pyexample").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn js_connector_through_spoke_call() {
    through_spoke_call("jsexample").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_connector_through_a_webhook() {
    through_a_webhook("pyexample").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn js_connector_through_a_webhook() {
    through_a_webhook("jsexample").await;
}

/// Run `cmd` (a shell line, exactly as the project's README writes it) in
/// `dir` with the installed tools on PATH.
fn sh(dir: &Path, cmd: &str) {
    let out = Command::new("sh").arg("-c").arg(cmd).current_dir(dir).env("PATH", tools_path()).output().unwrap();
    assert!(out.status.success(), "`{cmd}` in {} failed ({}):\n{}\n{}", dir.display(), out.status, String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
}

/// The README's build command: the line after "the one command:" in its
/// first ```sh block after that.
fn readme_build_command(project: &Path) -> String {
    let readme = std::fs::read_to_string(project.join("README.md")).unwrap();
    let after = readme.split("the one command:").nth(1).unwrap_or_else(|| panic!("{}: no build command in README.md", project.display()));
    let line = after.split("```sh\n").nth(1).and_then(|b| b.lines().next()).unwrap();
    // Drop a trailing comment.
    line.split("  #").next().unwrap().trim().to_string()
}

/// `spoke new` into a folder outside the repo, the README's one build
/// command, the project's own tests, then the generated spoke.toml loading
/// the component and calling `op` through `spoke call`.
async fn spoke_new_builds_and_loads(lang: &str, name: &str, test_cmd: Option<&str>, op: &str, input: &str, want: Value) {
    let tmp = tempfile::tempdir().unwrap();
    assert!(!tmp.path().starts_with(workspace()), "the project must be outside the repo");
    let project = tmp.path().join(name);
    let out = Command::new(spoke_bin()).args(["new", name, "--lang", lang, "--dir"]).arg(&project).output().unwrap();
    assert!(out.status.success(), "spoke new: {}", String::from_utf8_lossy(&out.stderr));
    let again = Command::new(spoke_bin()).args(["new", name, "--lang", lang, "--dir"]).arg(&project).output().unwrap();
    assert!(!again.status.success() && String::from_utf8_lossy(&again.stderr).contains("not empty"), "a used folder is refused");

    let build = readme_build_command(&project);
    let started = std::time::Instant::now();
    let dir = project.clone();
    let cmd = build.clone();
    tokio::task::spawn_blocking(move || sh(&dir, &cmd)).await.unwrap();
    eprintln!("{lang}: `{build}` took {:.1} s", started.elapsed().as_secs_f64());
    let wasm = project.join(format!("{name}.wasm"));
    assert!(wasm.exists(), "`{build}` did not write {}", wasm.display());
    if let Some(test_cmd) = test_cmd {
        sh(&project, test_cmd);
    }

    // The generated spoke.toml, pointed at the loopback vendor, with the
    // credentials from the environment as it names them.
    let (vendor, server) = start_vendor().await;
    let config = project.join("spoke.toml");
    let text = std::fs::read_to_string(&config).unwrap().replace("https://api.acme.example", &server.url());
    std::fs::write(&config, text).unwrap();
    let env = name.to_ascii_uppercase();
    let mut cmd = Command::new(spoke_bin());
    cmd.current_dir(&project).args(["call", name, op, input]).env(format!("{env}_API_KEY"), API_KEY).env(format!("{env}_WEBHOOK_SECRET"), SECRET).env_remove("SPOKE_CONFIG");
    let out = tokio::task::spawn_blocking(move || cmd.output().unwrap()).await.unwrap();
    assert!(out.status.success(), "spoke call in the new {lang} project: {}", String::from_utf8_lossy(&out.stderr));
    let got: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(got, want);
    assert_eq!(vendor.seen.lock().unwrap()[0].2, API_KEY);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spoke_new_python_project_builds_outside_the_repo_and_loads() {
    spoke_new_builds_and_loads("python", "acme_py", Some("python3 -m unittest -q"), "list_items", r#"{"status": "done"}"#, json!({"items": [{"id": 2, "name": "nut", "status": "done"}]})).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spoke_new_js_project_builds_outside_the_repo_and_loads() {
    spoke_new_builds_and_loads("js", "acme_js", Some("npm test --silent"), "list_items", r#"{"status": "done"}"#, json!({"items": [{"id": 2, "name": "nut", "status": "done"}]})).await;
}

/// Rust: built with the README's command against the pdk of this checkout
/// (the default of `--pdk`), in the project's own target folder, as an
/// author would. Its native `cargo test` is left out here: it compiles
/// every dependency again for the host target (~50 s).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spoke_new_rust_project_builds_outside_the_repo_and_loads() {
    spoke_new_builds_and_loads("rust", "acme_rb", None, "get_order", r#"{"id": "A7"}"#, json!({"id": "A7", "status": "open"})).await;
}

/// Rust: the files, named for the connector, with the pdk the binary was
/// built beside. (Building it outside the repo needs the standalone pdk;
/// that build is tested with the template.)
#[test]
fn spoke_new_rust_project_is_written() {
    let tmp = tempfile::tempdir().unwrap();
    let project = tmp.path().join("acme_rs");
    let out = Command::new(spoke_bin()).args(["new", "acme_rs", "--lang", "rust", "--dir"]).arg(&project).output().unwrap();
    assert!(out.status.success(), "spoke new: {}", String::from_utf8_lossy(&out.stderr));
    let lib = std::fs::read_to_string(project.join("src/lib.rs")).unwrap();
    assert!(lib.contains("name: \"acme_rs\"") && lib.contains("struct AcmeRs;") && lib.contains("connector!(AcmeRs);") && lib.contains("fn handle_webhook"), "{lib}");
    let cargo = std::fs::read_to_string(project.join("Cargo.toml")).unwrap();
    let pdk = workspace().join("plugins/pdk").canonicalize().unwrap();
    assert!(cargo.contains(&format!("spoke-pdk = {{ path = {:?} }}", pdk.display().to_string())), "{cargo}");
    assert!(cargo.contains("name = \"acme_rs\"") && cargo.contains("[workspace]") && cargo.contains("[profile.plugin]"), "{cargo}");
    assert!(readme_build_command(&project).starts_with("cargo build --target wasm32-wasip2 --profile plugin"));
    let toml = std::fs::read_to_string(project.join("spoke.toml")).unwrap();
    assert!(toml.contains("[connectors.acme_rs]") && toml.contains("env:ACME_RS_API_KEY"), "{toml}");

    for bad in ["Acme!", "acme-rs"] {
        let out = Command::new(spoke_bin()).args(["new", bad, "--lang", "rust", "--dir"]).arg(tmp.path().join("bad")).output().unwrap();
        assert!(!out.status.success() && String::from_utf8_lossy(&out.stderr).contains(&format!("invalid connector name {bad:?}")), "{bad}");
        assert!(!tmp.path().join("bad").exists(), "nothing is written for a bad name");
    }
}

/// The examples' own unit tests, in place (the `spoke new` tests run the
/// same files in a generated project).
#[test]
fn the_examples_own_unit_tests_pass() {
    sh(&workspace().join("examples/python-plugin"), "python3 -m unittest -q");
    sh(&workspace().join("examples/js-plugin"), "npm test --silent");
}
