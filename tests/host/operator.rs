//! What an operator sees (issue 19): `/metrics` families that move with
//! the work, the JSON API behind the status page, and runs that keep their
//! own log lines and rate waits.
use crate::recorder::Recorder;
use serde_json::{json, Value};
use spoke_tests::{eventually, sign, spoke_bin, TestHost, ADMIN_TOKEN};

const SCRIPT: &str = r#"
on("probe", "PING", "ping");
expose("hello");

fn ping(event) {
    if event.payload.id == "bad" { throw "told to fail on " + event.payload.id }
    log::info("got ping " + event.payload.id);
}

fn hello() {
    log::info("hello from the run");
    probe::log(#{ message: "the plugin speaks" });
    // Answered 429 once, then 200: a vendor refusal and a rate wait.
    probe::http(#{ method: "GET", path: "/limited" });
    probe::nope();
}
"#;

fn config(recorder: &str, scripts: &std::path::Path) -> String {
    crate::probe(recorder, &format!("scripts_dir = {:?}\n[dispatch]\nmax_attempts = 1\n", scripts.display().to_string()))
}

/// The value of one sample, e.g. `spoke_webhooks_total{connector="probe",result="accepted"}`.
fn sample(text: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| l.split(['{', ' ']).next() == Some(name))
        .filter(|l| labels.iter().all(|(k, v)| l.contains(&format!("{k}=\"{v}\""))))
        .map(|l| l.rsplit(' ').next().unwrap().parse::<f64>().unwrap())
        .sum()
}

async fn scrape(admin: &str) -> String {
    let r = reqwest::Client::new().get(format!("{admin}/metrics")).bearer_auth(ADMIN_TOKEN).send().await.unwrap();
    assert_eq!(r.status(), 200);
    r.text().await.unwrap()
}

async fn post_ping(url: &str, id: &str) -> u16 {
    let body = serde_json::to_vec(&json!({ "id": id })).unwrap();
    let r = reqwest::Client::new().post(format!("{url}/hooks/probe")).header("x-signature", sign("hook-secret", &body)).body(body).send().await.unwrap();
    r.status().as_u16()
}

async fn get(admin: &str, path: &str) -> Value {
    let r = reqwest::Client::new().get(format!("{admin}{path}")).bearer_auth(ADMIN_TOKEN).send().await.unwrap();
    assert!(r.status().is_success(), "{path}: {}", r.status());
    r.json().await.unwrap()
}

/// What the running host must outlive: its vendor, scripts and watcher.
struct Keep(#[allow(dead_code)] Recorder, tempfile::TempDir, #[allow(dead_code)] notify::RecommendedWatcher);

/// A served host running `SCRIPT` against a fresh recording vendor.
async fn ops_host() -> (TestHost, spoke_tests::Served, Keep) {
    spoke::install_tls();
    let rec = Recorder::start().await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("ops.rhai"), SCRIPT).unwrap();
    let h = TestHost::start(&config(&rec.url, dir.path())).await.unwrap();
    let (served, _scripts, watcher) = h.serve_with_scripts().await;
    (h, served, Keep(rec, dir, watcher))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_show_every_family_and_move_with_the_work() {
    let (h, served, keep) = ops_host().await;

    let unauthorized = reqwest::Client::new().get(format!("{}/metrics", served.admin_url)).send().await.unwrap();
    assert_eq!(unauthorized.status(), 401, "metrics are behind the admin token");
    let before = scrape(&served.admin_url).await;

    assert_eq!(post_ping(&served.url, "p-1").await, 200);
    assert_eq!(post_ping(&served.url, "p-1").await, 200, "a duplicate");
    assert_eq!(post_ping(&served.url, "bad").await, 200);
    let unsigned = reqwest::Client::new().post(format!("{}/hooks/probe", served.url)).body("{}").send().await.unwrap();
    assert_eq!(unsigned.status(), 401);
    let r = served.trigger("ops", "hello", &Value::Null).await;
    assert_eq!(r.status(), 422, "hello ends calling an operation that does not exist");
    assert!(eventually(10, || h.host.store().list_events(&Default::default()).unwrap().iter().any(|e| e.status == "dead")).await, "the bad ping is dead-lettered");
    assert!(eventually(10, || h.host.store().list_events(&Default::default()).unwrap().iter().any(|e| e.status == "delivered")).await);

    let after = scrape(&served.admin_url).await;
    let moved = |name: &str, labels: &[(&str, &str)]| sample(&after, name, labels) - sample(&before, name, labels);
    assert_eq!(moved("spoke_webhooks_total", &[("connector", "probe"), ("result", "accepted")]), 3.0, "{after}");
    assert_eq!(moved("spoke_webhooks_total", &[("connector", "probe"), ("result", "refused")]), 1.0);
    assert_eq!(moved("spoke_webhook_events_total", &[("result", "duplicate")]), 1.0);
    assert_eq!(moved("spoke_webhook_events_total", &[("result", "new")]), 2.0);
    assert_eq!(moved("spoke_dispatches_total", &[("outcome", "delivered")]), 1.0);
    assert_eq!(moved("spoke_dispatches_total", &[("outcome", "dead")]), 1.0);
    assert_eq!(sample(&after, "spoke_events", &[("status", "dead")]), 1.0);
    assert_eq!(moved("spoke_runs_total", &[("script", "ops"), ("outcome", "ok")]), 1.0);
    assert_eq!(moved("spoke_runs_total", &[("script", "ops"), ("outcome", "failed")]), 2.0, "the bad ping and hello");
    assert!(moved("spoke_plugin_calls_total", &[("connector", "probe"), ("operation", "http"), ("outcome", "ok")]) >= 1.0);
    assert!(moved("spoke_plugin_call_duration_seconds_count", &[("operation", "http")]) >= 1.0);
    assert_eq!(moved("spoke_vendor_429_total", &[("connector", "probe"), ("bucket", "general")]), 1.0, "{after}");
    assert_eq!(moved("spoke_rate_waits_total", &[("connector", "probe"), ("bucket", "(paused)")]), 1.0, "the call waited out the 429's pause: {after}");
    assert!(moved("spoke_rate_wait_seconds_total", &[("connector", "probe")]) > 0.5);
    assert_eq!(sample(&after, "spoke_rate_waiting_calls", &[("connector", "probe")]), 0.0);
    assert!(sample(&after, "spoke_rate_budget_remaining", &[("connector", "probe"), ("bucket", "general")]) > 0.0);
    assert!(after.contains("spoke_rate_pause_seconds{"), "{after}");
    assert!(sample(&after, "spoke_reloads_total", &[("kind", "script"), ("result", "ok")]) >= 1.0);
    assert!(sample(&after, "spoke_instance_pool_slots", &[]) >= 1.0);
    assert!(after.contains("spoke_instance_pool_in_use{connector=\"probe\"}"), "{after}");
    assert!(after.contains("spoke_events_backlog_age_seconds"), "{after}");
    assert_eq!(sample(&after, "spoke_flows", &[("status", "in_doubt")]), 0.0, "every flow state is shown, zero too: {after}");
    assert!(after.contains("spoke_flows{status=\"in_doubt\"}"), "{after}");

    // A broken save counts as a failed reload; the old version keeps running.
    std::fs::write(keep.1.path().join("ops.rhai"), "fn broken( {").unwrap();
    assert!(
        eventually(10, || {
            let m = h.host.metrics().encode();
            sample(&m, "spoke_reloads_total", &[("kind", "script"), ("result", "error")]) >= 1.0
        })
        .await
    );

    // The status page's API sees the same host.
    let overview = get(&served.admin_url, "/api/overview").await;
    let probe = &overview["connectors"][0];
    assert_eq!(probe["name"], "probe");
    assert!(probe["budgets"].as_array().unwrap().iter().any(|b| b["bucket"] == "general"), "{probe}");
    assert!(probe["recent_errors"].as_array().unwrap().is_empty() || probe["recent_errors"][0]["kind"].is_string());
    let ops = overview["scripts"].as_array().unwrap().iter().find(|s| s["name"] == "ops").unwrap().clone();
    assert!(ops["error"].as_str().unwrap_or_default().contains("ops.rhai"), "the load error names the file: {ops}");
    assert_eq!(overview["backlog"]["counts"]["dead"], 1);
    let dead = get(&served.admin_url, "/api/events?status=dead").await;
    let seq = dead["events"][0]["seq"].as_i64().unwrap();
    let r = reqwest::Client::new().post(format!("{}/api/events/{seq}/replay", served.admin_url)).bearer_auth(ADMIN_TOKEN).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(eventually(10, || h.host.store().event(seq).unwrap().unwrap().attempts.len() == 2).await, "the replayed event was attempted again");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_keeps_its_own_log_lines_and_rate_waits() {
    let (h, served, _keep) = ops_host().await;
    let r = served.trigger("ops", "hello", &Value::Null).await;
    let body: Value = r.json().await.unwrap();
    let id = body["run"].as_i64().expect("a failed run names its id");

    let run = get(&served.admin_url, &format!("/api/runs/{id}")).await;
    let lines: Vec<String> = run["logs"].as_array().unwrap().iter().map(|l| format!("{} {}", l["level"].as_str().unwrap(), l["message"].as_str().unwrap())).collect();
    assert!(lines.contains(&"INFO hello from the run".to_string()), "{lines:?}");
    assert!(lines.iter().any(|l| l == "INFO probe.log: the plugin speaks"), "a plugin's line during the run is the run's too: {lines:?}");
    let steps: Vec<&str> = run["steps"].as_array().unwrap().iter().filter_map(Value::as_str).collect();
    assert!(steps.iter().any(|s| s.starts_with("probe: waited")), "the rate wait is in the run: {steps:?}");
    assert!(run["error"].as_str().unwrap().contains("nope"), "{run}");

    // The same story from the command line, beside the running host.
    let config = h.write_config().unwrap();
    let out = std::process::Command::new(spoke_bin()).arg("--config").arg(&config).args(["runs", "show", &id.to_string()]).output().unwrap();
    let shown = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{shown} {}", String::from_utf8_lossy(&out.stderr));
    assert!(shown.contains("hello from the run") && shown.contains("probe: waited") && shown.contains("ops.rhai:"), "{shown}");
}

/// `--log-format json`: one JSON object per line, and a run's lines carry
/// the run id (and its flow key, for a flow's wake).
#[test]
fn json_logs_carry_the_run() {
    let dir = tempfile::tempdir().unwrap();
    let scripts = dir.path().join("scripts");
    std::fs::create_dir(&scripts).unwrap();
    std::fs::write(scripts.join("say.rhai"), "fn hi() { log::info(\"hi there\"); 1 }\n").unwrap();
    let config = dir.path().join("spoke.toml");
    std::fs::write(&config, spoke_tests::config_text(dir.path(), &format!("scripts_dir = {:?}\n", scripts.display().to_string()))).unwrap();
    let out = std::process::Command::new(spoke_bin())
        .arg("--config")
        .arg(&config)
        .args(["--log-format", "json", "--log", "info", "script", "run"])
        .arg(scripts.join("say.rhai"))
        .arg("hi")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let lines: Vec<Value> = stderr.lines().map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not a JSON line ({e}): {l}"))).collect();
    let hi = lines.iter().find(|l| l["message"] == "hi there").unwrap_or_else(|| panic!("{stderr}"));
    assert!(hi["span"]["run"].as_i64().is_some_and(|r| r > 0), "the line names its run: {hi}");
    assert_eq!(hi["span"]["function"], "hi");
}
