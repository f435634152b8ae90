//! The `spoke` process killed with SIGKILL around a webhook's commit: a 200
//! means the event survives and is dispatched; no 200 means the vendor
//! retries and the event arrives exactly once.
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

fn plugins_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/test-plugins");
    assert!(dir.join("probe.wasm").exists(), "run `cargo xtask plugins` first");
    dir
}

struct Spoke {
    child: Child,
    url: String,
}

impl Spoke {
    fn start(cfg: &Path) -> Spoke {
        let mut child = Command::new(env!("CARGO_BIN_EXE_spoke"))
            .arg("--config")
            .arg(cfg)
            .arg("run")
            .env_remove("RUST_LOG")
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut reader = BufReader::new(child.stderr.take().unwrap());
        let mut line = String::new();
        let url = loop {
            line.clear();
            assert!(reader.read_line(&mut line).unwrap() > 0, "spoke exited before listening");
            if let Some(rest) = line.split("listening on ").nth(1) {
                break rest.split_whitespace().next().unwrap().to_string();
            }
        };
        // Keep draining the log so the child never blocks on a full pipe.
        std::thread::spawn(move || for _ in reader.lines() {});
        Spoke { child, url }
    }

    fn kill9(mut self) {
        unsafe { kill(self.child.id() as i32, 9) };
        let _ = self.child.wait();
    }
}

impl Drop for Spoke {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

extern "C" {
    fn kill(pid: i32, sig: i32) -> i32;
}

fn sign(body: &[u8]) -> String {
    use hmac::{Hmac, Mac};
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(b"hook-secret").unwrap();
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

/// The subscriber endpoint, started only when the test wants it up.
async fn sink(listener: std::net::TcpListener) -> Arc<Mutex<Vec<serde_json::Value>>> {
    let got: Arc<Mutex<Vec<serde_json::Value>>> = Default::default();
    let g = got.clone();
    let app = axum::Router::new().route(
        "/",
        axum::routing::post(move |axum::Json(v): axum::Json<serde_json::Value>| {
            let g = g.clone();
            async move {
                g.lock().unwrap().push(v);
                "ok"
            }
        }),
    );
    listener.set_nonblocking(true).unwrap();
    let listener = tokio::net::TcpListener::from_std(listener).unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    got
}

async fn wait_for(secs: u64, mut cond: impl FnMut() -> bool) -> bool {
    for _ in 0..secs * 50 {
        if cond() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    cond()
}

fn setup(dir: &Path, sink_port: u16) -> PathBuf {
    let cfg = dir.join("spoke.toml");
    std::fs::write(
        &cfg,
        format!(
            r#"plugins_dir = {:?}
cache_dir = {:?}
store = "spoke.db"
listen = "127.0.0.1:0"

[dispatch]
max_attempts = 1000
first_backoff_secs = 0.1
max_backoff_secs = 0.3

[connectors.probe]
plugin = "probe"
base_url = "http://127.0.0.1:9"
credentials = {{ webhook_secret = "value:hook-secret" }}

[subscribers.sink]
url = "http://127.0.0.1:{sink_port}/"
topics = ["probe/*"]
"#,
            plugins_dir().display().to_string(),
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/test-cache").display().to_string(),
        ),
    )
    .unwrap();
    cfg
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_after_200_the_event_is_still_dispatched() {
    spoke::install_tls();
    let dir = tempfile::tempdir().unwrap();
    // Reserve the sink's port but do not serve yet: dispatch cannot finish
    // before the kill.
    let reserved = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = reserved.local_addr().unwrap().port();
    drop(reserved);
    let cfg = setup(dir.path(), port);

    let spoke = Spoke::start(&cfg);
    let body = br#"{"id":"after-200"}"#.to_vec();
    let resp = reqwest::Client::new().post(format!("{}/hooks/probe", spoke.url)).header("x-signature", sign(&body)).body(body).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    spoke.kill9();

    let got = sink(std::net::TcpListener::bind(("127.0.0.1", port)).unwrap()).await;
    let _spoke = Spoke::start(&cfg);
    assert!(wait_for(20, || !got.lock().unwrap().is_empty()).await, "the event acknowledged before the kill was never dispatched");
    tokio::time::sleep(Duration::from_millis(500)).await;
    let got = got.lock().unwrap().clone();
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0]["payload"]["id"], "after-200");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_before_commit_the_vendor_retries_and_it_arrives_once() {
    spoke::install_tls();
    let dir = tempfile::tempdir().unwrap();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let got = sink(listener).await;
    let cfg = setup(dir.path(), port);

    let spoke = Spoke::start(&cfg);
    // The probe holds this delivery for 3 s inside handle-webhook, before
    // anything is committed.
    let body = br#"{"id":"before-commit","spin_ms":3000}"#.to_vec();
    let url = format!("{}/hooks/probe", spoke.url);
    let first = {
        let (url, body) = (url.clone(), body.clone());
        tokio::spawn(async move { reqwest::Client::new().post(url).header("x-signature", sign(&body)).body(body).send().await })
    };
    tokio::time::sleep(Duration::from_millis(700)).await;
    spoke.kill9();
    let first = first.await.unwrap();
    assert!(first.is_err(), "the vendor must not have seen a 200: {first:?}");

    // The vendor retries against the restarted host.
    let spoke = Spoke::start(&cfg);
    let url = format!("{}/hooks/probe", spoke.url);
    let resp = reqwest::Client::new().post(&url).header("x-signature", sign(&body)).body(body.clone()).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert!(wait_for(20, || !got.lock().unwrap().is_empty()).await);
    // A second retry (the vendor did not trust the first 200) is a duplicate.
    let resp = reqwest::Client::new().post(&url).header("x-signature", sign(&body)).body(body).send().await.unwrap();
    let answer: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(answer["duplicates"], 1);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(got.lock().unwrap().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_between_two_steps_the_first_vendor_call_is_not_repeated() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    spoke::install_tls();
    let dir = tempfile::tempdir().unwrap();
    // The vendor: /first answers at once, /second hangs the first time.
    let first = Arc::new(AtomicUsize::new(0));
    let second = Arc::new(AtomicUsize::new(0));
    let (f, s) = (first.clone(), second.clone());
    let vendor = axum::Router::new()
        .route("/first", axum::routing::any(move || {
            f.fetch_add(1, Ordering::SeqCst);
            async { "ok" }
        }))
        .route("/second", axum::routing::any(move || {
            let n = s.fetch_add(1, Ordering::SeqCst);
            async move {
                if n == 0 {
                    tokio::time::sleep(Duration::from_secs(30)).await;
                }
                "ok"
            }
        }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let vendor_url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, vendor).await });

    let scripts = dir.path().join("scripts");
    std::fs::create_dir_all(&scripts).unwrap();
    std::fs::write(
        scripts.join("two_steps.rhai"),
        r#"
on("probe", "PING", "handle");

fn handle(event) {
    let id = event.payload.id;
    step("first:" + id, || probe::http(#{ path: "/first" }));
    step("second:" + id, || probe::http(#{ path: "/second" }));
}
"#,
    )
    .unwrap();
    let cfg = dir.path().join("spoke.toml");
    std::fs::write(
        &cfg,
        format!(
            "plugins_dir = {:?}\ncache_dir = {:?}\nstore = \"spoke.db\"\nscripts_dir = \"scripts\"\nlisten = \"127.0.0.1:0\"\n[dispatch]\nfirst_backoff_secs = 0.1\n[connectors.probe]\nplugin = \"probe\"\nbase_url = \"{vendor_url}\"\ncredentials = {{ webhook_secret = \"value:hook-secret\" }}\n",
            plugins_dir().display().to_string(),
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/test-cache").display().to_string(),
        ),
    )
    .unwrap();

    let spoke = Spoke::start(&cfg);
    let body = br#"{"id":"order-1"}"#.to_vec();
    let resp = reqwest::Client::new().post(format!("{}/hooks/probe", spoke.url)).header("x-signature", sign(&body)).body(body).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert!(wait_for(20, || second.load(Ordering::SeqCst) == 1).await, "the run never reached the second step");
    spoke.kill9();
    assert_eq!(first.load(Ordering::SeqCst), 1);

    let _spoke = Spoke::start(&cfg);
    assert!(wait_for(20, || second.load(Ordering::SeqCst) == 2).await, "the run did not resume after the restart");
    let store = spoke::store::SqliteStore::open(&dir.path().join("spoke.db")).unwrap();
    use spoke::store::Store;
    assert!(wait_for(10, || store.runs(&spoke::store::RunFilter { script: Some("two_steps".into()), limit: 10, ..Default::default() }).unwrap().iter().any(|r| r.outcome.as_deref() == Some("ok"))).await);
    assert_eq!(first.load(Ordering::SeqCst), 1, "the first step's vendor call was repeated");
    let ok = store.runs(&spoke::store::RunFilter { script: Some("two_steps".into()), limit: 10, ..Default::default() }).unwrap().into_iter().find(|r| r.outcome.as_deref() == Some("ok")).unwrap();
    assert!(ok.steps.to_string().contains("first:order-1 (stored)"), "{:?}", ok.steps);
}

/// A run in flight when `spoke run` is SIGKILLed stays "running" until the
/// next start marks it interrupted; `spoke runs list --outcome` finds it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_killed_mid_way_is_listed_as_interrupted_after_the_restart() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    spoke::install_tls();
    let dir = tempfile::tempdir().unwrap();
    // The vendor hangs on the first call only: the first run is in flight
    // at the kill, the retried one after the restart finishes.
    let calls = Arc::new(AtomicUsize::new(0));
    let c = calls.clone();
    let vendor = axum::Router::new().route(
        "/slow",
        axum::routing::any(move || {
            let n = c.fetch_add(1, Ordering::SeqCst);
            async move {
                if n == 0 {
                    tokio::time::sleep(Duration::from_secs(30)).await;
                }
                "ok"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let vendor_url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, vendor).await });
    let scripts = dir.path().join("scripts");
    std::fs::create_dir_all(&scripts).unwrap();
    std::fs::write(scripts.join("slow.rhai"), "on(\"probe\", \"PING\", \"handle\");\n\nfn handle(event) {\n    probe::http(#{ path: \"/slow\" });\n}\n").unwrap();
    let cfg = dir.path().join("spoke.toml");
    std::fs::write(
        &cfg,
        format!(
            "plugins_dir = {:?}\ncache_dir = {:?}\nstore = \"spoke.db\"\nscripts_dir = \"scripts\"\nlisten = \"127.0.0.1:0\"\n[dispatch]\nfirst_backoff_secs = 0.1\n[connectors.probe]\nplugin = \"probe\"\nbase_url = \"{vendor_url}\"\ncredentials = {{ webhook_secret = \"value:hook-secret\" }}\n",
            plugins_dir().display().to_string(),
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/test-cache").display().to_string(),
        ),
    )
    .unwrap();
    let runs_list = |args: &[&str]| -> Vec<String> {
        let out = Command::new(env!("CARGO_BIN_EXE_spoke")).arg("--config").arg(&cfg).args(["runs", "list"]).args(args).env_remove("RUST_LOG").output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).lines().skip(1).map(str::to_string).collect()
    };

    let spoke = Spoke::start(&cfg);
    let body = br#"{"id":"slow-1"}"#.to_vec();
    let resp = reqwest::Client::new().post(format!("{}/hooks/probe", spoke.url)).header("x-signature", sign(&body)).body(body).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert!(wait_for(20, || calls.load(Ordering::SeqCst) == 1).await, "the run never reached the vendor");
    spoke.kill9();
    let before = runs_list(&["--outcome", "running"]);
    assert_eq!(before.len(), 1, "until a restart the killed run looks running: {before:?}");
    assert!(runs_list(&["--outcome", "interrupted"]).is_empty());

    let _spoke = Spoke::start(&cfg);
    let interrupted = runs_list(&["--outcome", "interrupted", "--function", "handle"]);
    assert_eq!(interrupted.len(), 1, "{interrupted:?}");
    assert!(interrupted[0].contains("slow v1") && interrupted[0].contains("the host stopped during this run"), "{}", interrupted[0]);
    assert_eq!(interrupted[0].split_whitespace().next(), before[0].split_whitespace().next(), "the same run");
    assert!(runs_list(&["--outcome", "interrupted", "--function", "other"]).is_empty());
    // The event is delivered again and this time the vendor answers.
    use spoke::store::{RunFilter, RunOutcome, Store};
    let store = spoke::store::SqliteStore::open(&dir.path().join("spoke.db")).unwrap();
    let finished = RunFilter { outcome: Some(RunOutcome::Ok), ..Default::default() };
    assert!(wait_for(20, || store.runs(&finished).unwrap().len() == 1).await, "the retried run did not finish: {:?}", runs_list(&[]));
    assert_eq!(runs_list(&["--outcome", "ok", "--function", "handle"]).len(), 1);
    assert!(runs_list(&["--outcome", "running"]).is_empty());
}
