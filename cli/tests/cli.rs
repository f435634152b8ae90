//! The `spoke` binary as a user runs it, against the probe plugin.
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

fn plugins_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/test-plugins");
    assert!(dir.join("probe.wasm").exists(), "run `cargo xtask plugins` first");
    dir
}

fn config(dir: &Path) -> PathBuf {
    let path = dir.join("spoke.toml");
    std::fs::write(
        &path,
        format!(
            "plugins_dir = {:?}\ncache_dir = \"cache\"\nstore = \"spoke.db\"\nlisten = \"127.0.0.1:0\"\n\n[connectors.probe]\nplugin = \"probe\"\nbase_url = \"http://127.0.0.1:9\"\ncredentials = {{ password = \"env:SPOKE_CLI_TEST_PASSWORD\" }}\n",
            plugins_dir().display().to_string()
        ),
    )
    .unwrap();
    path
}

fn spoke(cfg: &Path, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_spoke"))
        .arg("--config")
        .arg(cfg)
        .args(args)
        .env("SPOKE_CLI_TEST_PASSWORD", "cli-secret-value")
        .env_remove("RUST_LOG")
        .output()
        .unwrap()
}

#[test]
fn describe_call_and_errors() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path());

    let out = spoke(&cfg, &["describe", "probe"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(text.contains("typed") && text.contains("requires: name"), "{text}");

    let out = spoke(&cfg, &["describe", "probe", "--json"]);
    let m: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(m["name"], "probe");
    assert!(m["operations"].as_array().unwrap().len() >= 10);

    let out = spoke(&cfg, &["call", "probe", "echo", r#"{"hello":"world"}"#]);
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["hello"], "world");

    let out = spoke(&cfg, &["call", "probe", "typed", r#"{"count":1}"#]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("invalid-input") && err.contains("name"), "{err}");

    let out = spoke(&cfg, &["call", "probe", "echo", "{not json"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("not JSON"));

    let out = spoke(&cfg, &["plugins"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("probe"));
    for o in [&out] {
        let all = format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
        assert!(!all.contains("cli-secret-value"));
    }
}

#[test]
fn bad_config_names_file_and_key() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("spoke.toml");
    std::fs::write(&cfg, "[connectors.probe]\nplugin = \"probe\"\ncredentials = { password = \"hunter2\" }\n").unwrap();
    let out = spoke(&cfg, &["plugins"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("spoke.toml") && err.contains("connectors.probe.credentials.password"), "{err}");
    assert!(!err.contains("hunter2"), "the secret was printed: {err}");
}

/// Start `spoke run`, wait until it listens, stop it with SIGTERM; return its log.
fn run_once(cfg: &Path) -> String {
    let mut child = Command::new(env!("CARGO_BIN_EXE_spoke"))
        .arg("--config")
        .arg(cfg)
        .arg("run")
        .env("SPOKE_CLI_TEST_PASSWORD", "cli-secret-value")
        .env_remove("RUST_LOG")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut log = String::new();
    let mut reader = BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    while reader.read_line(&mut line).unwrap() > 0 {
        log.push_str(&line);
        if line.contains("listening on") {
            break;
        }
        line.clear();
    }
    unsafe { libc_kill(child.id() as i32, 15) };
    let status = child.wait().unwrap();
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut reader, &mut rest).unwrap();
    log.push_str(&rest);
    assert!(status.success(), "spoke run did not stop cleanly on SIGTERM: {status}\n{log}");
    log
}

extern "C" {
    #[link_name = "kill"]
    fn libc_kill(pid: i32, sig: i32) -> i32;
}

#[test]
fn second_run_loads_from_the_compile_cache() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path());
    let first = run_once(&cfg);
    assert!(first.contains("loaded plugin") && first.contains("fresh compile"), "{first}");
    let second = run_once(&cfg);
    assert!(second.contains("compile cache") && !second.contains("fresh compile"), "{second}");
    assert!(!second.contains("cli-secret-value"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhooks_sync_subscribes_every_wics_topic_once() {
    let sim = spoke_sandbox::wics::Simulator::start(Default::default()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("spoke.toml");
    std::fs::write(
        &cfg,
        format!(
            "plugins_dir = {:?}\ncache_dir = {:?}\nstore = \"spoke.db\"\n[connectors.wics]\nplugin = \"wics\"\nbase_url = \"{}\"\ncredentials = {{ apikey = \"value:demo-apikey\", apisecret = \"value:demo-apisecret\" }}\n",
            plugins_dir().display().to_string(),
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/test-cache").display().to_string(),
            sim.url()
        ),
    )
    .unwrap();
    let sync = || {
        let cfg = cfg.clone();
        async move { tokio::task::spawn_blocking(move || spoke(&cfg, &["webhooks", "sync", "--public-url", "https://spoke.example.com/"])).await.unwrap() }
    };
    let first = sync().await;
    assert!(first.status.success(), "{}", String::from_utf8_lossy(&first.stderr));
    assert!(String::from_utf8_lossy(&first.stdout).contains("9 subscription(s) created"));
    let second = sync().await;
    assert!(String::from_utf8_lossy(&second.stdout).contains("0 subscription(s) created, 9 already in place"), "{}", String::from_utf8_lossy(&second.stdout));
    let out = spoke(&cfg, &["call", "wics", "list_webhooks", r#"{"all_pages": true}"#]);
    let list: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let items = list["items"].as_array().unwrap();
    assert_eq!(items.len(), 9);
    assert!(items.iter().any(|i| i["url"] == "https://spoke.example.com/hooks/wics/shipment" && i["topic"] == "SHIPMENT"));
}

#[test]
fn the_demo_tells_the_chain_and_stops_by_itself() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    assert!(root.join("target/spoke-plugins/wics.wasm").exists(), "run `cargo xtask plugins` first");
    let work = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_spoke"))
        .current_dir(root)
        .args(["demo", "--timeout", "60", "--work"])
        .arg(work.path().join("demo"))
        .env_remove("RUST_LOG")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}\n{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(text.matches(": shipped, track and trace").count(), 3, "{text}");
    assert!(text.contains("lead declined") && text.contains("FAILED") && text.contains("twaalf"), "{text}");
    assert!(text.contains("rate-limit violations: 0"), "{text}");
}

#[test]
fn events_cli_lists_shows_and_replays_dead_letters() {
    use spoke::store::{DeliveryRecord, Incoming, SqliteStore, Store};
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path());
    {
        let store = SqliteStore::open(&dir.path().join("spoke.db")).unwrap();
        let event = spoke::Event { id: "d-1".into(), topic: "PING".into(), occurred_at: None, subject: Some("order-9".into()), payload: serde_json::json!({"id": 9}) };
        store
            .commit(&[Incoming {
                delivery: DeliveryRecord { connector: "probe".into(), received_at: 1_700_000_000_000, headers: vec![], body: b"{}".to_vec() },
                events: vec![event],
            }])
            .unwrap();
        let waiting = store.unrouted(0, 10).unwrap();
        store.route(&waiting.into_iter().map(|u| (u, vec!["sink".to_string()])).collect::<Vec<_>>(), 1_700_000_000_000).unwrap();
        store.mark_failed(1, "sink", 1_700_000_000_500, "sink was down", None).unwrap();
    }
    let list = spoke(&cfg, &["events", "list", "--status", "dead"]);
    let text = String::from_utf8_lossy(&list.stdout);
    assert!(text.contains("PING") && text.contains("order-9") && text.contains("dead"), "{text}");
    let show = spoke(&cfg, &["events", "show", "1"]);
    assert!(String::from_utf8_lossy(&show.stdout).contains("sink was down"));
    let replay = spoke(&cfg, &["events", "replay", "--dead"]);
    assert!(replay.status.success());
    assert!(String::from_utf8_lossy(&replay.stdout).starts_with("1 dispatch(es) queued"));
    let again = spoke(&cfg, &["events", "replay", "--dead"]);
    assert!(!again.status.success(), "nothing left to replay is not a success");
    let pending = spoke(&cfg, &["events", "list", "--status", "pending"]);
    assert!(String::from_utf8_lossy(&pending.stdout).contains("order-9"));
}

#[test]
fn scripts_cli_reports_trigger_changes_and_removals() {
    use spoke::store::{SqliteStore, Store};
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path());
    {
        let store = SqliteStore::open(&dir.path().join("spoke.db")).unwrap();
        let change = serde_json::json!({"version": 3, "at": 1_700_000_000_000i64, "added": ["on wics/* -> h"], "removed": ["on probe/PING -> h"]});
        store.script_loaded("chain", 3, "hash-3", &serde_json::json!(["on wics/* -> h"]), Some(&change), 1_700_000_000_000).unwrap();
        store.script_loaded("gone", 7, "hash-7", &serde_json::json!([]), None, 1_700_000_000_000).unwrap();
        store.script_removed("gone", 1_700_000_000_500).unwrap();
    }
    let out = spoke(&cfg, &["scripts"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("triggers changed in version 3") && text.contains("added [on wics/* -> h], removed [on probe/PING -> h]"), "{text}");
    assert!(text.contains("gone (removed") && text.contains("was version 7"), "{text}");
}

#[test]
fn state_cli_gets_and_lists_a_scripts_keys() {
    use spoke::store::{SqliteStore, Store};
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path());
    {
        let store = SqliteStore::open(&dir.path().join("spoke.db")).unwrap();
        for (key, value) in [("lead:b", r#"{"status":"open"}"#), ("lead:a", r#"{"status":"accepted"}"#), ("count", "7")] {
            store.state_set("chain", key, value, 1).unwrap();
        }
        store.state_set("other", "lead:z", "1", 1).unwrap();
    }
    let get = spoke(&cfg, &["state", "get", "chain", "lead:a"]);
    assert!(get.status.success());
    assert_eq!(serde_json::from_slice::<serde_json::Value>(&get.stdout).unwrap(), serde_json::json!({"status": "accepted"}));
    let missing = spoke(&cfg, &["state", "get", "chain", "lead:nope"]);
    assert_eq!(missing.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("no state key \"lead:nope\""));

    let list = spoke(&cfg, &["state", "list", "chain", "lead:"]);
    let text = String::from_utf8_lossy(&list.stdout);
    let keys: Vec<&str> = text.lines().map(|l| l.split_whitespace().next().unwrap()).collect();
    assert_eq!(keys, ["lead:a", "lead:b"], "{text}");
    assert!(text.contains(r#"{"status":"open"}"#), "{text}");
    let all = spoke(&cfg, &["state", "list", "chain", "--json"]);
    let all: serde_json::Value = serde_json::from_slice(&all.stdout).unwrap();
    assert_eq!(all, serde_json::json!({"count": 7, "lead:a": {"status": "accepted"}, "lead:b": {"status": "open"}}));
    let cut = spoke(&cfg, &["state", "list", "chain", "--limit", "1"]);
    assert_eq!(String::from_utf8_lossy(&cut.stdout).lines().count(), 1);
    assert!(String::from_utf8_lossy(&cut.stderr).contains("more keys than --limit 1"));
}

#[test]
fn runs_cli_filters_by_function_and_outcome() {
    use spoke::store::{SqliteStore, Store};
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path());
    {
        let store = SqliteStore::open(&dir.path().join("spoke.db")).unwrap();
        let ok = store.run_start("chain", 1, "new_lead", "http", 1).unwrap();
        store.run_finish(ok, 2, None, &[], &Default::default()).unwrap();
        let failed = store.run_start("chain", 1, "shipped", "event:wics/SHIPMENT:1", 1).unwrap();
        store.run_finish(failed, 2, Some(("vendor: no such order", Some("chain.rhai:9"))), &[], &Default::default()).unwrap();
        store.run_start("chain", 1, "poll", "schedule:2s", 1).unwrap();
    }
    let functions = |args: &[&str]| -> Vec<String> {
        let out = spoke(&cfg, &[&["runs", "list"], args].concat());
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).lines().skip(1).map(|l| l.split_whitespace().nth(5).unwrap().to_string()).collect()
    };
    assert_eq!(functions(&[]), ["poll", "shipped", "new_lead"]);
    assert_eq!(functions(&["--outcome", "failed"]), ["shipped"]);
    assert_eq!(functions(&["--outcome", "running"]), ["poll"]);
    assert_eq!(functions(&["--function", "new_lead", "--outcome", "ok"]), ["new_lead"]);
    assert!(functions(&["--function", "new_lead", "--outcome", "failed"]).is_empty());
    let bad = spoke(&cfg, &["runs", "list", "--outcome", "error"]);
    assert!(!bad.status.success() && String::from_utf8_lossy(&bad.stderr).contains("ok, failed, interrupted or running"));
}
