//! The admin surface and the script sandbox.
use serde_json::{json, Value};
use spoke_tests::{eventually, TestHost, ADMIN_TOKEN};
use std::path::Path;

fn config(scripts: &Path, extra: &str) -> String {
    format!(
        "scripts_dir = {:?}\n{extra}\n[connectors.probe]\nplugin = \"probe\"\nbase_url = \"http://127.0.0.1:9\"\ncredentials = {{ webhook_secret = \"value:hook-secret\" }}\n",
        scripts.display().to_string()
    )
}

const FORM: &str = r#"
expose("new_lead");

fn new_lead(form) {
    remember(form.email);
    #{ ok: true }
}

// A helper: it writes state, and must never be reachable over HTTP.
fn remember(email) {
    state::set("lead", email);
}
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn script_triggers_need_the_token_the_host_and_the_origin() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("form.rhai"), FORM).unwrap();
    let h = TestHost::start(&config(dir.path(), "")).await.unwrap();
    let (served, scripts, _w) = h.serve_with_scripts().await;
    assert!(scripts.current("form").is_some(), "{:?}", scripts.error("form"));
    let admin = &served.admin_url;
    let url = format!("{admin}/scripts/form/new_lead");
    let client = reqwest::Client::new();
    let body = json!({"email": "attacker@example.com"});

    // No token, a wrong token: 401.
    assert_eq!(client.post(&url).json(&body).send().await.unwrap().status(), 401);
    assert_eq!(client.post(&url).bearer_auth("test-admin-token-0123456789abcdeX").json(&body).send().await.unwrap().status(), 401);
    // A browser page elsewhere (text/plain, foreign Origin), even with the token: 403.
    let r = client.post(&url).bearer_auth(ADMIN_TOKEN).header("origin", "http://evil.example").header("content-type", "text/plain").body(body.to_string()).send().await.unwrap();
    assert_eq!(r.status(), 403);
    // DNS rebinding: the right port under another name.
    let r = client.post(&url).bearer_auth(ADMIN_TOKEN).header("host", "evil.example").json(&body).send().await.unwrap();
    assert_eq!(r.status(), 403);
    assert_eq!(h.host.store().state_get("form", "lead").unwrap(), None, "nothing ran");

    // A helper is never reachable, whatever the credentials.
    let r = served.trigger("form", "remember", &json!("x@example.com")).await;
    assert_eq!(r.status(), 404);
    assert!(r.text().await.unwrap().contains("expose"), "says how to expose a function");
    assert_eq!(h.host.store().state_get("form", "lead").unwrap(), None);

    // The public surface has no script routes and a bare liveness answer.
    let r = client.post(format!("{}/scripts/form/new_lead", served.url)).bearer_auth(ADMIN_TOKEN).json(&body).send().await.unwrap();
    assert_eq!(r.status(), 404);
    let health: Value = client.get(format!("{}/health", served.url)).send().await.unwrap().json().await.unwrap();
    assert_eq!(health, json!({"status": "ok"}), "the public health reveals nothing");

    // The owner, same origin, with the token: it runs.
    let r = client.post(&url).bearer_auth(ADMIN_TOKEN).header("origin", admin.as_str()).json(&json!({"email": "anna@example.nl"})).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(h.host.store().state_get("form", "lead").unwrap().as_deref(), Some("\"anna@example.nl\""));
    let health: Value = client.get(format!("{admin}/health")).bearer_auth(ADMIN_TOKEN).send().await.unwrap().json().await.unwrap();
    assert_eq!(health["connectors"][0]["plugin"], "probe");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_top_level_does_not_delay_another_scripts_reload() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("ok.rhai"), "fn v() { 1 }\n").unwrap();
    let h = TestHost::start(&config(dir.path(), "[scripts]\nmax_load_secs = 30\n")).await.unwrap();
    let (_served, scripts, _w) = h.serve_with_scripts().await;
    // A top level that never ends, saved while the host runs...
    std::fs::write(dir.path().join("slow.rhai"), "let n = 0; loop { n += 1; }\nfn f() { 1 }\n").unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    // ...does not hold up the next save of another script.
    std::fs::write(dir.path().join("ok.rhai"), "fn v() { 2 }\n").unwrap();
    assert!(eventually(20, || scripts.current("ok").is_some_and(|s| s.version == 2)).await, "ok.rhai was not reloaded while slow.rhai loads");
    assert_eq!(scripts.run("ok", "v", None, "manual").await.unwrap(), json!(2));
    assert!(scripts.current("slow").is_none() && scripts.error("slow").is_none(), "slow.rhai is still loading (its bound is 30 s)");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_top_level_is_stopped_at_its_load_bound() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("slow.rhai"), "let n = 0; loop { n += 1; }\n").unwrap();
    std::fs::write(dir.path().join("ok.rhai"), "fn v() { 1 }\n").unwrap();
    let h = TestHost::start(&config(dir.path(), "[scripts]\nmax_load_secs = 0.5\n")).await.unwrap();
    let (_served, scripts, _w) = h.serve_with_scripts().await;
    assert!(scripts.current("ok").is_some());
    let e = scripts.error("slow").expect("slow.rhai is refused");
    assert!(e.contains("max_load_secs") && e.contains("slow.rhai:1"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_map_bomb_eval_and_imports_from_elsewhere_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let scripts_dir = dir.path().join("scripts");
    std::fs::create_dir_all(scripts_dir.join("lib")).unwrap();
    std::fs::write(scripts_dir.join("lib/util.rhai"), "fn twice(x) { x * 2 }\n").unwrap();
    std::fs::write(dir.path().join("outside.rhai"), "fn secret() { 42 }\n").unwrap();
    std::fs::write(
        scripts_dir.join("bomb.rhai"),
        r#"
fn bomb() {
    let m = #{};
    for i in 0..3000 {
        let s = "";
        s.pad(1000000, 'x');
        m["k" + i] = s;
    }
    m.len()
}
fn nested() {
    let a = [];
    for i in 0..3000 { let s = ""; s.pad(1000000, 'y'); a.push([s]); }
    a.len()
}
fn small() { let m = #{}; m["a"] = "b"; m.len() }
fn local() { import "lib/util" as u; u::twice(21) }
fn escape() { import "../outside" as o; o::secret() }
"#,
    )
    .unwrap();
    std::fs::write(scripts_dir.join("evil.rhai"), "fn run(code) { eval(code) }\n").unwrap();
    let h = TestHost::start(&config(&scripts_dir, "[scripts]\nmax_memory_mib = 64\n")).await.unwrap();
    let (_served, scripts, _w) = h.serve_with_scripts().await;

    // Index assignment into a map escapes Rhai's per-value checks: the
    // memory bound stops it.
    let e = scripts.run("bomb", "bomb", None, "manual").await.unwrap_err();
    assert!(e.message.contains("max_memory_mib"), "{e}");
    // Arrays are stopped by one bound or the other.
    let e = scripts.run("bomb", "nested", None, "manual").await.unwrap_err();
    assert!(e.message.contains("max_memory_mib") || e.message.contains("too large"), "{e}");
    assert_eq!(scripts.run("bomb", "small", None, "manual").await.unwrap(), json!(1));
    assert_eq!(scripts.run("bomb", "local", None, "manual").await.unwrap(), json!(42));
    let e = scripts.run("bomb", "escape", None, "manual").await.unwrap_err();
    assert!(e.message.contains("no `..`"), "{e}");
    assert!(scripts.current("evil").is_none(), "a script using eval does not load");
    assert!(scripts.error("evil").is_some_and(|e| e.contains("eval")), "{:?}", scripts.error("evil"));
}
