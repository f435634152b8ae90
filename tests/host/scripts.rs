//! Scripts: the API, triggers, limits, and hot reload under load.
use serde_json::json;
use spoke_tests::{eventually, TestHost};
use std::path::Path;
use std::time::Duration;

fn config(scripts: &Path, extra: &str) -> String {
    format!(
        "scripts_dir = {:?}\n{extra}\n[connectors.probe]\nplugin = \"probe\"\nbase_url = \"http://127.0.0.1:9\"\ncredentials = {{ webhook_secret = \"value:hook-secret\" }}\n",
        scripts.display().to_string()
    )
}

async fn ping(client: &reqwest::Client, url: &str, id: i64) {
    let body = json!({ "id": id }).to_string().into_bytes();
    let status = client.post(format!("{url}/hooks/probe")).header("x-signature", spoke_tests::sign("hook-secret", &body)).body(body).send().await.unwrap().status();
    assert_eq!(status, 200);
}

/// Save the way editors do: write a temp file, rename over the target.
fn save(path: &Path, text: &str) {
    let tmp = path.with_extension("rhai.tmp~");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

const HANDLER: &str = r#"
on("probe", "PING", "handle");

fn tag() { "VERSION" }

fn handle(event) {
    let id = event.payload.id.to_string();
    // Both tags come from the same version, or the swap was not atomic.
    let echoed = probe::echo(#{ tag: tag() });
    let n = state::get("count:" + id) ?? 0;
    state::set("count:" + id, n + 1);
    state::set("tags:" + id, [tag(), echoed.tag]);
}
"#;

fn handler(version: &str) -> String {
    HANDLER.replace("VERSION", version)
}

fn state(h: &TestHost, key: &str) -> Option<serde_json::Value> {
    h.host.store().state_get("ping", key).unwrap().map(|t| serde_json::from_str(&t).unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_save_keeps_the_old_version_and_a_fix_takes_over() {
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("ping.rhai");
    std::fs::write(&script, handler("v1")).unwrap();
    let h = TestHost::start(&config(dir.path(), "")).await.unwrap();
    let (served, scripts, _w) = h.serve_with_scripts().await;
    let client = reqwest::Client::new();
    ping(&client, &served.url, 1).await;
    assert!(eventually(10, || state(&h, "tags:1").is_some()).await);

    save(&script, "on(\"probe\", \"PING\", \"handle\");\n\nfn handle(event) {\n    let x = ;\n}\n");
    assert!(eventually(10, || scripts.error("ping").is_some()).await, "the syntax error was not reported");
    let error = scripts.error("ping").unwrap();
    assert!(error.contains("ping.rhai:4"), "names file:line: {error}");
    ping(&client, &served.url, 2).await;
    assert!(eventually(10, || state(&h, "tags:2").is_some()).await, "the old version stopped handling events");
    assert_eq!(state(&h, "tags:2").unwrap(), json!(["v1", "v1"]));
    assert_eq!(scripts.current("ping").unwrap().version, 1);
    let listed = h.host.store().scripts().unwrap();
    assert!(listed[0].error.as_deref().unwrap().contains(":4"));

    save(&script, &handler("v2"));
    assert!(eventually(10, || scripts.current("ping").unwrap().version == 2).await);
    assert!(scripts.error("ping").is_none());
    ping(&client, &served.url, 3).await;
    assert!(eventually(10, || state(&h, "tags:3").is_some()).await);
    assert_eq!(state(&h, "tags:3").unwrap(), json!(["v2", "v2"]));

    // A new file starts, a deleted one stops.
    std::fs::remove_file(&script).unwrap();
    assert!(eventually(10, || scripts.current("ping").is_none()).await);
}

/// Append a custom section to a component: a different file (new hash, new
/// compile) with the same behaviour.
fn variant(wasm: &[u8], n: u32) -> Vec<u8> {
    let name = b"spoke-test-variant";
    let payload = n.to_le_bytes();
    let mut section = vec![name.len() as u8];
    section.extend_from_slice(name);
    section.extend_from_slice(&payload);
    let mut out = wasm.to_vec();
    out.push(0);
    out.push(section.len() as u8);
    out.extend(section);
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_stream_through_fifty_script_and_plugin_reloads() {
    let dir = tempfile::tempdir().unwrap();
    let scripts_dir = dir.path().join("scripts");
    let plugins_dir = dir.path().join("plugins");
    std::fs::create_dir_all(&scripts_dir).unwrap();
    std::fs::create_dir_all(&plugins_dir).unwrap();
    let probe = std::fs::read(spoke_tests::plugins_dir().join("probe.wasm")).unwrap();
    std::fs::write(plugins_dir.join("probe.wasm"), &probe).unwrap();
    std::fs::write(scripts_dir.join("ping.rhai"), handler("v0")).unwrap();
    let extra = format!("plugins_dir = {:?}\n", plugins_dir.display().to_string());
    // The harness sets plugins_dir first; this config replaces it.
    let text = config(&scripts_dir, "").replace("scripts_dir", &format!("{extra}scripts_dir"));
    let text = spoke_tests::config_text(dir.path(), "").replace(&format!("plugins_dir = {:?}\n", spoke_tests::plugins_dir().display().to_string()), "") + text.as_str();
    let config = spoke::Config::parse(&text, "test", dir.path()).unwrap();
    let h = TestHost { host: std::sync::Arc::new(spoke::Host::start(config).await.unwrap()), dir, config_text: text };
    let (served, scripts, _w) = h.serve_with_scripts().await;

    let total = 400;
    let sender = {
        let url = served.url.clone();
        tokio::spawn(async move {
            let client = reqwest::Client::new();
            for id in 0..total {
                ping(&client, &url, id).await;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
    };
    for i in 1..=50 {
        save(&scripts_dir.join("ping.rhai"), &handler(&format!("v{i}")));
        std::fs::write(plugins_dir.join("probe.wasm.tmp"), variant(&probe, i)).unwrap();
        std::fs::rename(plugins_dir.join("probe.wasm.tmp"), plugins_dir.join("probe.wasm")).unwrap();
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    sender.await.unwrap();
    assert!(eventually(60, || (0..total).all(|id| state(&h, &format!("count:{id}")).is_some())).await, "events were lost");
    tokio::time::sleep(Duration::from_millis(300)).await;
    for id in 0..total {
        assert_eq!(state(&h, &format!("count:{id}")), Some(json!(1)), "event {id} not handled exactly once");
        let tags = state(&h, &format!("tags:{id}")).unwrap();
        assert_eq!(tags[0], tags[1], "event {id} saw two versions: {tags}");
    }
    // Saves that land while a reload runs are folded into the next one, so
    // how many versions load depends on how busy the machine is (a count
    // here was a flake) — but events met more than one of them, and the
    // last save always wins.
    let seen: std::collections::HashSet<String> = (0..total).filter_map(|id| state(&h, &format!("tags:{id}"))).map(|t| t[0].to_string()).collect();
    assert!(seen.len() >= 2, "every event saw the same version: {seen:?}");
    let version = scripts.current("ping").unwrap().version;
    assert!(version >= 2, "no reload was loaded");
    // The watcher swaps plugins in the order they were saved, and a busy
    // machine may still be catching up: the last save wins once it has.
    use sha2::Digest;
    let last_plugin = hex::encode(sha2::Sha256::digest(variant(&probe, 50)));
    assert!(eventually(60, || h.host.plugins().iter().any(|p| p.hash == last_plugin)).await, "the last plugin file is not the one serving");
    let client = reqwest::Client::new();
    let mut last = json!(null);
    for id in total..total + 100 {
        ping(&client, &served.url, id).await;
        assert!(eventually(10, || state(&h, &format!("tags:{id}")).is_some()).await);
        last = state(&h, &format!("tags:{id}")).unwrap();
        if last == json!(["v50", "v50"]) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(last, json!(["v50", "v50"]), "the last save never took over");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runaway_script_is_stopped_and_others_keep_running() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("spin.rhai"), "fn forever() { let n = 0; loop { n += 1; } }\nfn count() { let n = 0; for i in 0..1000000000 { n += i; } n }\n").unwrap();
    std::fs::write(dir.path().join("ok.rhai"), "expose(\"hello\");\nfn hello(input) { #{ hi: input.name, from: helper() } }\nfn helper() { \"h\" }\n").unwrap();
    let h = TestHost::start(&config(dir.path(), "[scripts]\nmax_run_secs = 0.5\nmax_operations = 0\n")).await.unwrap();
    let (served, scripts, _w) = h.serve_with_scripts().await;
    let (spin, ok) = tokio::join!(scripts.run("spin", "forever", None, "manual"), async {
        tokio::time::sleep(Duration::from_millis(100)).await;
        scripts.run("ok", "hello", Some(json!({"name": "ops"})), "manual").await
    });
    let e = spin.unwrap_err();
    assert!(e.message.contains("wall-clock"), "{e}");
    assert_eq!(ok.unwrap(), json!({"hi": "ops", "from": "h"}));
    let run = h.host.store().run(e.run_id).unwrap().unwrap();
    assert_eq!(run.outcome.as_deref(), Some("error"));

    // The HTTP trigger on the admin surface, for forms and other systems.
    let r = served.trigger("ok", "hello", &json!({"name": "form"})).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<serde_json::Value>().await.unwrap()["result"]["hi"], "form");
    let r = served.trigger("ok", "nope", &serde_json::Value::Null).await;
    assert_eq!(r.status(), 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn script_api_errors_steps_state_and_schedules() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("api.rhai"),
        r#"
every("200ms", "tick");

fn tick() {
    state::set("ticks", (state::get("ticks") ?? 0) + 1);
}

fn kinds() {
    let out = #{};
    try { probe::typed(#{ count: 1 }); } catch (e) { out.missing = e.kind; out.field = e.field; }
    try { probe::nope(); } catch (e) { out.unknown = "caught"; }
    out
}

fn steps() {
    let a = step("one", || probe::echo(#{ n: (state::get("calls") ?? 0) + 1 }));
    state::set("calls", a.n);
    a.n
}

fn dates() {
    #{ later: date::add_days("2024-02-28T00:00:00Z", 2), days: date::days_between("2024-01-01", "2024-03-01"), now_is_text: type_of(now()) }
}

fn bad_line() {
    let x = 1;
    x.no_such_method();
}
"#,
    )
    .unwrap();
    let h = TestHost::start(&config(dir.path(), "")).await.unwrap();
    let (_served, scripts, _w) = h.serve_with_scripts().await;
    let k = scripts.run("api", "kinds", None, "manual").await.unwrap();
    assert_eq!(k["missing"], "invalid-input");
    assert_eq!(k["field"], "name");
    assert_eq!(k["unknown"], "caught");

    assert_eq!(scripts.run("api", "steps", None, "manual").await.unwrap(), 1);
    // The step's result is stored: a second run does not call the plugin again.
    assert_eq!(scripts.run("api", "steps", None, "manual").await.unwrap(), 1);
    let runs = h.host.store().runs(&spoke::store::RunFilter { script: Some("api".into()), limit: 10, ..Default::default() }).unwrap();
    assert!(runs[0].steps.to_string().contains("one (stored)"), "{:?}", runs[0].steps);

    let d = scripts.run("api", "dates", None, "manual").await.unwrap();
    assert_eq!(d["later"], "2024-03-01T00:00:00.000Z");
    assert_eq!(d["days"], 60);
    assert_eq!(d["now_is_text"], "string");

    let e = scripts.run("api", "bad_line", None, "manual").await.unwrap_err();
    assert!(e.location.as_deref().unwrap().ends_with("api.rhai:27"), "{e:?}");
    assert!(e.message.contains("no_such_method"), "{e:?}");

    assert!(eventually(5, || h.host.store().state_get("api", "ticks").unwrap().is_some_and(|t| t.parse::<i64>().unwrap() >= 2)).await, "every() did not fire");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_runs_take_a_step_once_and_agree_on_its_result() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("race.rhai"),
        "fn take(x) {\n    step(\"shared\", || { let n = (state::get(\"calls\") ?? 0) + 1; state::set(\"calls\", n); probe::echo(#{ x: x }); x })\n}\n",
    )
    .unwrap();
    let h = TestHost::start(&config(dir.path(), "")).await.unwrap();
    let (_served, scripts, _w) = h.serve_with_scripts().await;
    let runs = (0..8).map(|i| scripts.run("race", "take", Some(json!(i)), "manual"));
    let results: Vec<_> = futures::future::join_all(runs).await.into_iter().map(|r| r.unwrap()).collect();
    assert!(results.windows(2).all(|w| w[0] == w[1]), "runs disagree on the step's result: {results:?}");
    assert_eq!(h.host.store().state_get("race", "calls").unwrap().as_deref(), Some("1"), "the step's closure ran more than once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn state_update_incr_list_and_entries_need_no_locking() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("tally.rhai"),
        r#"
fn add(lead) {
    // A read-modify-write that would lose entries without the swap.
    state::update("open", |open| { let o = open ?? []; o.push(lead); o });
    state::set("lead:" + lead, #{ n: lead });
    state::incr("count", 1)
}

fn first_sight() {
    state::update("fresh", |old| "was " + (old ?? "absent"))
}

fn listing() {
    #{ keys: state::list("lead:"), entries: state::entries("lead:1"), none: state::list("nope:") }
}

fn incr_text() {
    state::set("word", "ten");
    state::incr("word", 1)
}
"#,
    )
    .unwrap();
    let h = TestHost::start(&config(dir.path(), "")).await.unwrap();
    let (_served, scripts, _w) = h.serve_with_scripts().await;
    let runs = (0..12).map(|i| scripts.run("tally", "add", Some(json!(i)), "manual"));
    let mut counts: Vec<i64> = futures::future::join_all(runs).await.into_iter().map(|r| r.unwrap().as_i64().unwrap()).collect();
    counts.sort();
    assert_eq!(counts, (1..=12).collect::<Vec<_>>(), "every incr returns its own new value");
    let mut open: Vec<i64> = serde_json::from_str(&h.host.store().state_get("tally", "open").unwrap().unwrap()).unwrap();
    open.sort();
    assert_eq!(open, (0..12).collect::<Vec<_>>(), "an update was lost");

    assert_eq!(scripts.run("tally", "first_sight", None, "manual").await.unwrap(), "was absent");
    assert_eq!(scripts.run("tally", "first_sight", None, "manual").await.unwrap(), "was was absent");

    let l = scripts.run("tally", "listing", None, "manual").await.unwrap();
    let sorted: Vec<String> = {
        let mut k: Vec<String> = (0..12).map(|i| format!("lead:{i}")).collect();
        k.sort();
        k
    };
    assert_eq!(l["keys"], json!(sorted), "sorted as text");
    assert_eq!(l["entries"], json!({"lead:1": {"n": 1}, "lead:10": {"n": 10}, "lead:11": {"n": 11}}));
    assert_eq!(l["none"], json!([]));

    let e = scripts.run("tally", "incr_text", None, "manual").await.unwrap_err();
    assert!(e.message.contains("not an integer"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_version_changes_only_when_the_content_does() {
    let dir = tempfile::tempdir().unwrap();
    let scripts_dir = dir.path().join("scripts");
    std::fs::create_dir_all(&scripts_dir).unwrap();
    let file = scripts_dir.join("same.rhai");
    std::fs::write(&file, "fn f() { 1 }\n").unwrap();
    let fragment = config(&scripts_dir, "");
    let mut dir = Some(dir);
    // A host started on the same store, as `spoke run` after a restart.
    let mut version_at_start = async || {
        let h = TestHost::start_in(dir.take().unwrap(), &fragment).await.unwrap();
        let scripts = spoke::script::Scripts::start(h.host.clone()).await;
        let version = scripts.current("same").unwrap().version;
        let stored = h.host.store().scripts().unwrap().into_iter().find(|s| s.name == "same").unwrap().version;
        assert_eq!(version, stored);
        drop(scripts);
        dir = Some(h.dir);
        version
    };
    let mut versions = Vec::new();
    for _ in 0..4 {
        versions.push(version_at_start().await);
    }
    assert_eq!(versions, [1, 1, 1, 1], "restarts are not changes");
    std::fs::write(&file, "fn f() { 2 }\n").unwrap();
    assert_eq!(version_at_start().await, 2, "one byte changed");
    assert_eq!(version_at_start().await, 2);
    std::fs::write(&file, "fn f() { 1 }\n").unwrap();
    assert_eq!(version_at_start().await, 3, "back to old content is still a change");
}
