//! Nothing unbounded, nothing dropped: the store's retention under a
//! refusal flood, quotas on kv and logs, routing at dispatch time through a
//! script's absence, and outcomes that say what happened.
use serde_json::json;
use spoke_tests::{eventually, sign, TestHost};
use std::path::Path;
use std::time::Duration;

fn config(scripts: &Path, extra: &str) -> String {
    format!(
        "scripts_dir = {:?}\n{extra}\n[connectors.probe]\nplugin = \"probe\"\nbase_url = \"http://127.0.0.1:9\"\ncredentials = {{ webhook_secret = \"value:hook-secret\" }}\n[connectors.probe2]\nplugin = \"probe\"\nbase_url = \"http://127.0.0.1:9\"\ncredentials = {{ webhook_secret = \"value:hook-secret\" }}\n",
        scripts.display().to_string()
    )
}

async fn ping(client: &reqwest::Client, url: &str, connector: &str, id: i64) {
    let body = json!({ "id": id }).to_string().into_bytes();
    let status = client.post(format!("{url}/hooks/{connector}")).header("x-signature", sign("hook-secret", &body)).body(body).send().await.unwrap().status();
    assert_eq!(status, 200);
}

fn store_bytes(dir: &Path) -> u64 {
    ["spoke.db", "spoke.db-wal"].iter().map(|f| std::fs::metadata(dir.join(f)).map(|m| m.len()).unwrap_or(0)).sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refusal_flood_grows_the_store_by_at_most_the_bound() {
    let (max_refusals, body_bytes) = (40u64, 1024u64);
    let scripts = tempfile::tempdir().unwrap();
    let h = TestHost::start(&config(scripts.path(), &format!("[retention]\nmax_refusals = {max_refusals}\nrefusal_body_bytes = {body_bytes}\n"))).await.unwrap();
    let served = h.serve().await;
    let client = reqwest::Client::new();
    ping(&client, &served.url, "probe", 1).await;
    let before = store_bytes(h.dir.path());

    // 100 MB of refused bodies: half to connectors that do not exist, half
    // to a real one with a forged signature.
    let big = vec![b'x'; 1 << 20];
    let sends = (0..100).map(|i| {
        let (client, big) = (client.clone(), big.clone());
        let url = if i % 2 == 0 { format!("{}/hooks/nobody{i}", served.url) } else { format!("{}/hooks/probe", served.url) };
        async move { client.post(url).header("x-signature", "forged").body(big).send().await.map(|r| r.status().as_u16()) }
    });
    let results: Vec<_> = futures::stream::iter(sends).buffer_unordered(8).collect().await;
    for (i, r) in results.iter().enumerate() {
        // An unknown connector is answered before its body is read, so the
        // sender may see the connection close mid-upload instead.
        assert!(matches!(r, Ok(404) | Ok(401) | Err(_)), "request {i}: {r:?}");
    }
    let store = h.host.store().clone();
    assert!(eventually(20, || store.refusals(1000).unwrap().len() as u64 == max_refusals).await, "refusals kept: {}", store.refusals(1000).unwrap().len());
    let refusals = store.refusals(1000).unwrap();
    assert!(refusals.iter().all(|r| r.body.len() as u64 <= body_bytes), "bodies are cut to the prefix");
    assert!(refusals.iter().filter(|r| r.connector.starts_with("nobody")).all(|r| r.body.is_empty()), "nothing kept for unknown connectors");
    assert!(refusals.iter().any(|r| r.connector == "probe" && r.body.len() as u64 == body_bytes));

    // Each refusal: the body prefix, headers (capped), reason, row overhead;
    // plus the WAL, which is reset at each checkpoint (1000 pages).
    let bound = max_refusals * (body_bytes + spoke::webhook::refusals_header_cap() as u64 + 4096) + (1000 * 4096) + (1 << 20);
    let grown = store_bytes(h.dir.path()).saturating_sub(before);
    assert!(grown <= bound, "the store grew {grown} bytes, above the bound {bound}");
    assert_eq!(store.list_events(&Default::default()).unwrap().len(), 1, "the genuine event is still there");
}

use futures::StreamExt;

const COUNTER: &str = r#"
on("probe", "PING", "count");

fn count(event) {
    let key = "seen:" + event.payload.id.to_string();
    state::set(key, (state::get(key) ?? 0) + 1);
}
"#;

fn seen(h: &TestHost, script: &str, id: i64) -> i64 {
    h.host.store().state_get(script, &format!("seen:{id}")).unwrap().map(|t| t.parse().unwrap()).unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_script_deleted_and_recreated_100ms_later_loses_no_events() {
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("counter.rhai");
    std::fs::write(&script, COUNTER).unwrap();
    let h = TestHost::start(&config(dir.path(), "[dispatch]\nfirst_backoff_secs = 0.05\nmax_backoff_secs = 0.2\n")).await.unwrap();
    let (served, scripts, _w) = h.serve_with_scripts().await;
    let client = reqwest::Client::new();
    let first_version = scripts.current("counter").unwrap().version;

    let sender = {
        let (client, url) = (client.clone(), served.url.clone());
        tokio::spawn(async move {
            for id in 0..200 {
                ping(&client, &url, "probe", id).await;
                tokio::time::sleep(Duration::from_millis(3)).await;
            }
        })
    };
    tokio::time::sleep(Duration::from_millis(150)).await;
    std::fs::remove_file(&script).unwrap();
    assert!(eventually(5, || scripts.current("counter").is_none()).await, "the removal was not seen");
    tokio::time::sleep(Duration::from_millis(100)).await;
    std::fs::write(&script, COUNTER).unwrap();
    sender.await.unwrap();

    assert!(eventually(20, || (0..200).all(|id| seen(&h, "counter", id) >= 1)).await, "missing: {:?}", (0..200).filter(|&id| seen(&h, "counter", id) == 0).collect::<Vec<_>>());
    let twice: Vec<i64> = (0..200).filter(|&id| seen(&h, "counter", id) > 1).collect();
    assert!(twice.is_empty(), "delivered more than once: {twice:?}");
    let unrouted = h.host.store().list_events(&spoke::store::EventFilter { status: Some("unrouted".into()), limit: 1000, ..Default::default() }).unwrap();
    assert!(unrouted.is_empty(), "{} events unrouted", unrouted.len());
    assert_eq!(scripts.current("counter").unwrap().version, first_version, "the same content re-created keeps its version");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_triggers_to_one_function_both_deliver_and_changes_are_reported() {
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("both.rhai");
    let text = r#"
on("probe", "PING", "h");
on("probe2", "*", "h");

fn h(event) {
    state::set(event.connector + ":" + event.payload.id.to_string(), true);
}
"#;
    std::fs::write(&script, text).unwrap();
    let h = TestHost::start(&config(dir.path(), "[dispatch]\nabsent_hold_secs = 0.5\n")).await.unwrap();
    let (served, scripts, _w) = h.serve_with_scripts().await;
    let client = reqwest::Client::new();
    ping(&client, &served.url, "probe", 1).await;
    ping(&client, &served.url, "probe2", 1).await;
    let store = h.host.store().clone();
    let got = |key: &str| store.state_get("both", key).unwrap().is_some();
    assert!(eventually(10, || got("probe:1") && got("probe2:1")).await, "probe: {}, probe2: {}", got("probe:1"), got("probe2:1"));

    // Dropping a trigger is reported by `spoke scripts`.
    let tmp = script.with_extension("tmp~");
    std::fs::write(&tmp, text.replace("on(\"probe2\", \"*\", \"h\");\n", "")).unwrap();
    std::fs::rename(&tmp, &script).unwrap();
    assert!(eventually(10, || scripts.current("both").unwrap().triggers.len() == 1).await);
    let listed = store.scripts().unwrap();
    let change = listed[0].trigger_change.clone().expect("a trigger change");
    assert_eq!(change["removed"], json!(["on probe2/* -> h"]), "{change}");
}

#[tokio::test]
async fn kv_and_log_quotas_refuse_or_count_the_excess() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("chatty.rhai"), "fn chat() { for i in 0..50 { log::info(\"line \" + i); } }\n").unwrap();
    let text = config(dir.path(), "[quotas]\nkv_max_keys = 3\nkv_max_bytes = 1000\nlog_burst = 5\nlog_lines_per_sec = 0.01\nlog_line_bytes = 100\n").replace("[connectors.probe2]\n", "[connectors.probe2]\nkv_max_keys = 10\n");
    let h = TestHost::start(&text).await.unwrap();
    for k in ["a", "b", "c"] {
        h.call("probe", "kv_set", json!({"key": k, "value": "v"})).await.unwrap();
    }
    let e = h.call("probe", "kv_set", json!({"key": "d", "value": "v"})).await.unwrap_err();
    assert_eq!(e.kind, spoke::ErrorKind::Refused, "{e}");
    assert!(e.message.contains("kv_max_keys"), "{e}");
    h.call("probe2", "kv_set", json!({"key": "d", "value": "v"})).await.expect("quotas are per connector");
    for k in ["e", "f", "g", "h"] {
        h.call("probe2", "kv_set", json!({"key": k, "value": "v"})).await.expect("probe2 overrides the key count");
    }
    let e = h.call("probe", "kv_set", json!({"key": "a", "value": "x".repeat(2000)})).await.unwrap_err();
    assert!(e.message.contains("kv_max_bytes"), "{e}");

    for i in 0..12 {
        h.call("probe", "log", json!({"message": format!("hello {i} {}", "y".repeat(300))})).await.unwrap();
    }
    let scripts = spoke::script::Scripts::start(h.host.clone()).await;
    scripts.run("chatty", "chat", None, "manual").await.unwrap();
    let dropped: std::collections::BTreeMap<_, _> = h.host.log_budget().dropped().into_iter().collect();
    assert_eq!(dropped["plugin:probe"].lines, 7, "{dropped:?}");
    assert!(dropped["plugin:probe"].bytes > 5 * 200, "the cut bytes are counted: {dropped:?}");
    assert_eq!(dropped["script:chatty"].lines, 45, "{dropped:?}");
}

#[tokio::test]
async fn an_aborted_upload_is_an_incomplete_body_not_413() {
    use tokio::io::AsyncWriteExt;
    let dir = tempfile::tempdir().unwrap();
    let h = TestHost::start(&config(dir.path(), "")).await.unwrap();
    let served = h.serve().await;
    let addr = served.url.trim_start_matches("http://").to_string();
    let mut sock = tokio::net::TcpStream::connect(&addr).await.unwrap();
    sock.write_all(format!("POST /hooks/probe HTTP/1.1\r\nhost: {addr}\r\ncontent-length: 1000\r\nx-signature: s\r\n\r\n{}", "z".repeat(100)).as_bytes()).await.unwrap();
    sock.shutdown().await.unwrap();
    drop(sock);
    let store = h.host.store().clone();
    assert!(eventually(10, || !store.refusals(10).unwrap().is_empty()).await, "the aborted upload was not recorded");
    let r = &store.refusals(10).unwrap()[0];
    assert_ne!(r.http_status, 413);
    assert!(r.reason.starts_with("incomplete body") && r.reason.contains("100 of 1000"), "{}", r.reason);
}

#[tokio::test]
async fn runs_cut_short_by_a_crash_are_interrupted_at_the_next_start_and_syntax_errors_name_the_open_brace() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("open.rhai"), "fn a() {\n    if true {\n        1\n    \n}\n\nlet x = 2;\n").unwrap();
    let h = TestHost::start(&config(dir.path(), "")).await.unwrap();
    // A run a crashed process left behind (this test process plays the
    // previous incarnation: the next start is the first).
    let left = h.host.store().run_start("open", 1, "a", "manual", 1).unwrap();
    let scripts = spoke::script::Scripts::start(h.host.clone()).await;
    let run = h.host.store().run(left).unwrap().unwrap();
    assert_eq!(run.outcome.as_deref(), Some("interrupted"));
    assert!(run.ended_at.is_some());

    let error = scripts.error("open").expect("a syntax error");
    assert!(error.contains("open.rhai:1: syntax error: `{`"), "points at the unclosed brace of fn a: {error}");
}
