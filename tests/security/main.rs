//! The doors around the sandbox (issue 14): the admin surface, per-call and
//! per-connector limits, load-time limits, Rhai hardening, plugin swaps
//! that would move credentials, and secrets kept out of errors.
mod limits;
mod scripts;

use serde_json::json;
use spoke::ErrorKind;
use spoke_tests::{eventually, TestHost};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// A probe connector `name` whose vendor is `url`.
fn probe(name: &str, url: &str) -> String {
    format!("[connectors.{name}]\nplugin = \"probe\"\nbase_url = \"{url}/api\"\ncredentials = {{ webhook_secret = \"value:hook-secret\" }}\n")
}

/// A vendor that holds every request until released, counting them.
struct Holding {
    url: String,
    held: Arc<AtomicUsize>,
    release: tokio::sync::watch::Sender<bool>,
    _server: spoke_sandbox::serve::Server,
}

impl Holding {
    async fn start() -> Holding {
        let held = Arc::new(AtomicUsize::new(0));
        let (release, released) = tokio::sync::watch::channel(false);
        let (h, r) = (held.clone(), released.clone());
        let router = axum::Router::new().fallback(axum::routing::any(move || {
            let (held, mut released) = (h.clone(), r.clone());
            async move {
                held.fetch_add(1, Ordering::SeqCst);
                let _ = released.wait_for(|v| *v).await;
                "released"
            }
        }));
        let server = spoke_sandbox::serve::serve(router, 0).await.unwrap();
        Holding { url: server.url(), held, release, _server: server }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_hundred_slow_calls_on_one_connector_leave_another_serving() {
    let vendor = Holding::start().await;
    let fragment = format!("[limits]\nmax_concurrent_calls = 8\ncall_queue_secs = 0.5\n\n{}\n{}", probe("slow", &vendor.url), probe("other", &vendor.url));
    let h = Arc::new(TestHost::start(&fragment).await.unwrap());
    let slow: Vec<_> = (0..300)
        .map(|_| {
            let h = h.clone();
            tokio::spawn(async move { h.call("slow", "http", json!({"path": "/hold"})).await })
        })
        .collect();
    assert!(eventually(20, || vendor.held.load(Ordering::SeqCst) == 8).await, "the slow connector's calls did not reach the vendor");

    // While the slow connector's share is full, the other connector serves.
    for i in 0..20 {
        assert_eq!(h.call("other", "echo", json!({"i": i})).await.unwrap()["i"], i);
    }
    assert_eq!(vendor.held.load(Ordering::SeqCst), 8, "the slow connector ran more than its share at once");

    // The rest found no slot: each gave up 0.5 s after it queued, as a
    // transient error, while the 8 were still held.
    assert!(eventually(30, || slow.iter().filter(|t| t.is_finished()).count() == 292).await, "calls beyond the 8 slots did not give up");
    let (done, held): (Vec<_>, Vec<_>) = slow.into_iter().partition(|t| t.is_finished());
    assert_eq!(held.len(), 8);
    for task in done {
        let e = task.await.unwrap().unwrap_err();
        assert_eq!(e.kind, ErrorKind::RateLimited, "{e}");
        assert!(e.is_transient() && e.message.contains("max_concurrent_calls"), "{e}");
    }
    let _ = vendor.release.send(true);
    for task in held {
        assert_eq!(task.await.unwrap().unwrap()["status"], 200);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plugin_looping_on_send_or_sleeping_is_stopped_at_the_deadline() {
    let vendor = Holding::start().await;
    let _ = vendor.release.send(true); // answers at once: the loop never waits long
    let fragment = format!("[limits]\ncall_deadline_secs = 1\n\n{}", probe("probe", &vendor.url));
    let h = TestHost::start(&fragment).await.unwrap();
    let e = h.call("probe", "http_loop", json!({"path": "/again"})).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::Timeout, "{e}");
    assert!(e.message.contains("wall-clock deadline of 1.0 s"), "{e}");
    assert!(vendor.held.load(Ordering::SeqCst) > 1, "the loop did send");

    let e = h.call("probe", "sleep", json!({"ms": 600_000})).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::Timeout, "{e}");
    assert!(e.message.contains("wall-clock deadline"), "{e}");
    // Nothing else is affected.
    assert_eq!(h.call("probe", "sleep", json!({"ms": 10})).await.unwrap()["slept_ms"], 10);
}

#[tokio::test]
async fn a_plugin_cannot_guess_at_its_credentials_quickly() {
    let fragment = format!("[limits]\ncall_deadline_secs = 1\nmax_verify_per_sec = 20\n\n{}", probe("probe", "http://127.0.0.1:9"));
    let h = TestHost::start(&fragment).await.unwrap();
    // A handful of checks, as any webhook makes, run at full speed.
    assert_eq!(h.call("probe", "verify_many", json!({"n": 4})).await.unwrap()["tried"], 4);
    // A thousand guesses would take microseconds each unpaced; paced at
    // 20/s they cannot finish within the call's deadline.
    let e = h.call("probe", "verify_many", json!({"n": 1000})).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::Timeout, "{e}");
}

/// The probe with `from` replaced by `to` (same length) in its bytes: a
/// plugin that declares a different origin or auth header.
fn patched_probe(from: &str, to: &str) -> Vec<u8> {
    assert_eq!(from.len(), to.len());
    let mut wasm = std::fs::read(spoke_tests::plugins_dir().join("probe.wasm")).unwrap();
    let at = wasm.windows(from.len()).position(|w| w == from.as_bytes()).unwrap_or_else(|| panic!("{from} not in probe.wasm"));
    wasm[at..at + from.len()].copy_from_slice(to.as_bytes());
    wasm
}

/// A host whose plugin folder is a copy of the test plugins, so a swap
/// there touches no other test.
async fn host_with_own_plugins(connector: &str) -> (TestHost, std::path::PathBuf) {
    let plugins = tempfile::tempdir().unwrap().keep();
    std::fs::copy(spoke_tests::plugins_dir().join("probe.wasm"), plugins.join("probe.wasm")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let shared = format!("plugins_dir = {:?}", spoke_tests::plugins_dir().display().to_string());
    let text = spoke_tests::config_text(dir.path(), connector).replace(&shared, &format!("plugins_dir = {:?}", plugins.display().to_string()));
    let config = spoke::Config::parse(&text, "test spoke.toml", dir.path()).unwrap();
    let host = spoke::Host::start(config).await.unwrap();
    (TestHost { host: Arc::new(host), dir, config_text: text }, plugins)
}

#[tokio::test]
async fn a_swap_that_moves_credentials_elsewhere_is_refused() {
    // No base_url: the plugin's own default origin is where credentials go.
    let unpinned = "[connectors.probe]\nplugin = \"probe\"\ncredentials = { webhook_secret = \"value:hook-secret\", api_key = \"value:k\", store = \"value:s\" }\n";
    let (h, plugins) = host_with_own_plugins(unpinned).await;
    let moved = plugins.join("moved.wasm");
    std::fs::write(&moved, patched_probe("http://127.0.0.1:9", "http://127.0.0.2:9")).unwrap();
    let e = h.host.reload_plugin(&moved).await.unwrap_err().to_string();
    assert!(e.contains("http://127.0.0.2:9") && e.contains("base_url"), "{e}");
    assert_eq!(h.host.connector("probe").unwrap().base_url.as_str(), "http://127.0.0.1:9/", "the old plugin keeps serving");

    // A plugin that sends the key in another header: refused too.
    let rekeyed = plugins.join("rekeyed.wasm");
    std::fs::write(&rekeyed, patched_probe("x-api-key", "x-api-kez")).unwrap();
    let e = h.host.reload_plugin(&rekeyed).await.unwrap_err().to_string();
    assert!(e.contains("auth_schemes") && e.contains("key"), "{e}");

    // Pinned in the config, the same swaps go through.
    let pinned = "[connectors.probe]\nplugin = \"probe\"\nbase_url = \"http://127.0.0.1:9\"\nauth_schemes = [\"basic\", \"key\"]\ncredentials = { webhook_secret = \"value:hook-secret\", api_key = \"value:k\", store = \"value:s\" }\n";
    let (h, plugins) = host_with_own_plugins(pinned).await;
    let moved = plugins.join("moved.wasm");
    std::fs::write(&moved, patched_probe("http://127.0.0.1:9", "http://127.0.0.2:9")).unwrap();
    assert_eq!(h.host.reload_plugin(&moved).await.unwrap(), vec!["probe".to_string()]);
    let rekeyed = plugins.join("rekeyed.wasm");
    std::fs::write(&rekeyed, patched_probe("x-api-key", "x-api-kez")).unwrap();
    assert_eq!(h.host.reload_plugin(&rekeyed).await.unwrap(), vec!["probe".to_string()]);
}

#[tokio::test]
async fn a_broken_credentials_line_never_shows_the_secret() {
    let dir = tempfile::tempdir().unwrap();
    for line in ["credentials = { apikey = \"value:Hunter2-live-key\" ", "credentials = { apikey = value:Hunter2-live-key }", "credentials = { apikey = 12, secret = \"value:Hunter2-live-key\" }"] {
        let path = dir.path().join("spoke.toml");
        std::fs::write(&path, format!("[connectors.wics]\nplugin = \"wics\"\n{line}\n")).unwrap();
        let e = spoke::Config::load(&path).unwrap_err();
        let shown = format!("{e}");
        assert!(!shown.contains("Hunter2"), "the secret is shown: {shown}");
        assert!(shown.contains(&path.display().to_string()) && shown.contains("connectors.wics"), "names the file and key: {shown}");
    }
}
