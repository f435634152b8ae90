//! Rate budgets as deployments use them: many `spoke` processes and
//! restarts on one store, against the simulators, which count every
//! request and every 429 themselves. WICS' clock is scaled (a "minute" of a
//! few seconds) and the host is told the same windows and penalties through
//! `rate_limits` in spoke.toml, as an operator would for a contract that
//! differs from the published one.
use serde_json::json;
use spoke_sandbox::wics::{Limits, Options, Simulator};
use spoke_tests::TestHost;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use spoke_tests::spoke_bin;

fn wics_connector(url: &str, limit: u32, window_s: u32, penalties: &str) -> String {
    format!(
        r#"
[connectors.wics]
plugin = "wics"
base_url = "{url}"
rate_limits.api-user = {{ windows = [{{ limit = {limit}, seconds = {window_s} }}], penalty_seconds = {penalties} }}
[connectors.wics.credentials]
apikey = "value:demo-apikey"
apisecret = "value:demo-apisecret"
"#
    )
}

/// A folder with a spoke.toml over one store, as a deployment has.
fn deployment(fragment: &str, scripts: Option<&str>) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let mut text = spoke_tests::config_text(dir.path(), fragment);
    if let Some(script) = scripts {
        let folder = dir.path().join("scripts");
        std::fs::create_dir_all(&folder).unwrap();
        std::fs::write(folder.join("burn.rhai"), script).unwrap();
        text = format!("scripts_dir = {:?}\n{text}", folder.display().to_string());
    }
    let path = dir.path().join("spoke.toml");
    std::fs::write(&path, text).unwrap();
    (dir, path)
}

/// `spoke call` as a shell or cron runs it; panics with its stderr on failure.
fn spoke_call(config: &Path, op: &str, input: &str) {
    let out = Command::new(spoke_bin()).arg("--config").arg(config).args(["call", "wics", op, input]).env_remove("RUST_LOG").output().unwrap();
    assert!(out.status.success(), "spoke call wics {op} failed: {}", String::from_utf8_lossy(&out.stderr));
}

/// `spoke run` in the background; SIGKILLed when dropped.
struct Run(std::process::Child);

impl Run {
    fn start(config: &Path) -> Run {
        let child = Command::new(spoke_bin())
            .arg("--config")
            .arg(config)
            .arg("run")
            .env_remove("RUST_LOG")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        Run(child)
    }
}

impl Drop for Run {
    fn drop(&mut self) {
        let _ = self.0.kill(); // SIGKILL
        let _ = self.0.wait();
    }
}

async fn until(secs: u64, what: &str, mut cond: impl FnMut() -> bool) {
    assert!(spoke_tests::eventually(secs, &mut cond).await, "waited {secs} s for {what}");
}

/// Spends WICS budget as fast as it is granted.
const BURNER: &str = r#"
every("100ms", "burn");
fn burn() { for i in 0..5 { wics::login(); } }
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_hundred_spoke_call_processes_share_one_budget() {
    // 150 per scaled minute: more than one minute's worth of processes.
    const LIMIT: u32 = 150;
    const WINDOW_S: u32 = 20;
    let limits = Limits { per_minute: LIMIT, minute_ms: i64::from(WINDOW_S) * 1000, penalties_ms: [2_000, 10_000, 30_000], ..Limits::default() };
    let sim = Simulator::start(Options { limits, ..Options::default() }).await.unwrap();
    let (_dir, config) = deployment(&wics_connector(&sim.url(), LIMIT, WINDOW_S, "[2, 10, 30]"), None);

    let started = Instant::now();
    let cfg = config.clone();
    tokio::task::spawn_blocking(move || {
        for _ in 0..300 {
            spoke_call(&cfg, "login", "{}");
        }
    })
    .await
    .unwrap();
    let sequential = started.elapsed();
    assert_eq!(sim.violations(), 0, "300 processes in sequence: WICS refused some");
    assert_eq!(sim.request_count(), 300);
    // 300 requests cannot fit in one window: the processes waited for each
    // other's budget (a lower bound, so a slow machine only makes it truer).
    assert!(sequential >= Duration::from_secs(u64::from(WINDOW_S)), "300 calls in {sequential:?}: the budget was not shared");

    let started = Instant::now();
    let workers: Vec<_> = (0..8)
        .map(|_| {
            let cfg = config.clone();
            tokio::task::spawn_blocking(move || {
                for _ in 0..300 / 8 + 1 {
                    spoke_call(&cfg, "login", "{}");
                }
            })
        })
        .collect();
    for w in workers {
        w.await.unwrap();
    }
    eprintln!("300 sequential spoke calls took {sequential:?}; 304 more, 8 at a time, {:?}", started.elapsed());
    assert_eq!(sim.violations(), 0, "8 processes at a time: WICS refused some");
    assert_eq!(sim.request_count(), 604);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn spoke_run_killed_after_spending_its_minute_restarts_without_a_429_and_shares_with_spoke_call() {
    const LIMIT: u32 = 40;
    const WINDOW_S: u32 = 10;
    let limits = Limits { per_minute: LIMIT, minute_ms: i64::from(WINDOW_S) * 1000, penalties_ms: [2_000, 10_000, 30_000], ..Limits::default() };
    let sim = Simulator::start(Options { limits, ..Options::default() }).await.unwrap();
    let (_dir, config) = deployment(&wics_connector(&sim.url(), LIMIT, WINDOW_S, "[2, 10, 30]"), Some(BURNER));

    let run = Run::start(&config);
    until(60, "spoke run to spend its WICS minute", || sim.request_count() >= u64::from(LIMIT)).await;
    drop(run); // SIGKILL, right after the budget is spent
    let spent = sim.request_count();
    let _run = Run::start(&config);
    // The restarted host keeps burning; it must wait out the minute it
    // spent before the kill, not send into it.
    until(60, "the restarted host to send again", || sim.request_count() >= spent + u64::from(LIMIT)).await;
    assert_eq!(sim.violations(), 0, "the restarted host spent a minute it had already spent");

    // `spoke call` processes beside the busy host: one budget for all.
    let cfg = config.clone();
    tokio::task::spawn_blocking(move || {
        for _ in 0..20 {
            spoke_call(&cfg, "login", "{}");
        }
    })
    .await
    .unwrap();
    assert_eq!(sim.violations(), 0, "spoke call and spoke run together went over the limit");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_forced_wics_block_gets_no_request_and_callers_hear_the_real_remaining_time() {
    // WICS allows 3 a second here; the host believes the documented 150 a
    // minute, so its fourth request is refused and WICS blocks for 3 s.
    let limits = Limits { per_minute: 3, minute_ms: 1_000, penalties_ms: [3_000, 10_000, 30_000], ..Limits::default() };
    let sim = Simulator::start(Options { limits, ..Options::default() }).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let text = |max_wait: f64| spoke_tests::config_text(dir.path(), &format!("[limits]\nmax_rate_wait_secs = {max_wait}\n{}", wics_connector(&sim.url(), 150, 60, "[3, 10, 30]")));
    let start = |text: String| {
        let dir = dir.path().to_path_buf();
        async move { spoke::Host::start(spoke::Config::parse(&text, "spoke.toml", &dir).unwrap()).await.unwrap() }
    };
    // Two hosts on one store, as two processes would be.
    let impatient = start(text(0.5)).await;
    let patient = std::sync::Arc::new(start(text(10.0)).await);
    for _ in 0..3 {
        impatient.call("wics", "login", json!({})).await.unwrap();
    }
    let blocked_at = Instant::now();
    let e = impatient.call("wics", "login", json!({})).await.unwrap_err();
    assert_eq!(e.kind.as_str(), "rate-limited", "{e:?}");
    assert_eq!(sim.violations(), 1);
    let requests = sim.request_count();

    // During the block: refused without a request, and told what is left.
    let e = impatient.call("wics", "get_stock", json!({"itemCode": "16080"})).await.unwrap_err();
    let (left, true_left) = (e.retry_after_ms.unwrap(), Duration::from_secs(3).saturating_sub(blocked_at.elapsed()).as_millis() as u64);
    assert!(left <= 3_000 && left + 300 >= true_left, "told {left} ms while {true_left} ms remained");
    // So is a `spoke call` process on the same store.
    let cli = dir.path().join("spoke.toml");
    std::fs::write(&cli, text(0.5)).unwrap();
    let out = Command::new(spoke_bin()).arg("--config").arg(&cli).args(["call", "wics", "login", "{}"]).env_remove("RUST_LOG").output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("rate-limited") && err.contains("refusing this credential"), "{err}");

    // Callers that may wait go once the block is over, and succeed.
    let calls: Vec<_> = (0..3)
        .map(|_| {
            let h = patient.clone();
            tokio::spawn(async move { h.call("wics", "login", json!({})).await })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(2_500).saturating_sub(blocked_at.elapsed())).await;
    assert_eq!(sim.request_count(), requests, "a request was sent during the block");
    for c in calls {
        c.await.unwrap().unwrap();
    }
    assert_eq!(sim.violations(), 1, "the block escalated");
    assert_eq!(sim.request_count(), requests + 3);
}

/// A vendor that refuses everything with a bare 429 (no Retry-After, no
/// rate headers), recording when each request arrived.
async fn refusing_vendor() -> (String, std::sync::Arc<std::sync::Mutex<Vec<Instant>>>, spoke_sandbox::serve::Server) {
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let log = seen.clone();
    let router = axum::Router::new().fallback(axum::routing::any(move || {
        let log = log.clone();
        async move {
            log.lock().unwrap().push(Instant::now());
            (axum::http::StatusCode::TOO_MANY_REQUESTS, "slow down")
        }
    }));
    let server = spoke_sandbox::serve::serve(router, 0).await.unwrap();
    (server.url(), seen, server)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_bare_429_pauses_the_credential_and_each_pause_ends_with_one_request() {
    let (url, seen, _server) = refusing_vendor().await;
    let fragment = format!("[limits]\nmax_rate_wait_secs = 6\n{}", spoke_tests::probe_connector(&url, "w"));
    let host = std::sync::Arc::new(TestHost::start(&fragment).await.unwrap());
    let call = |h: std::sync::Arc<TestHost>| tokio::spawn(async move { h.call("probe", "http", json!({"path": "/anything"})).await });
    let first = call(host.clone());
    // Nine more callers arrive while the credential is paused.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let rest: Vec<_> = (0..9).map(|_| call(host.clone())).collect();
    for c in std::iter::once(first).chain(rest) {
        match c.await.unwrap() {
            // A caller that sent: the probe hands back the vendor's refusal
            // as it got it, and the host has set Retry-After to what is left
            // of the pause.
            Ok(answer) => {
                assert_eq!(answer["status"], 429, "{answer}");
                let retry_after = answer["headers"].as_array().unwrap().iter().find(|h| h[0] == "retry-after").map(|h| h[1].as_str().unwrap().parse::<u64>().unwrap());
                assert!(retry_after.is_some_and(|s| s > 0), "{answer}");
            }
            // A caller whose wait would pass the bound is told so at once,
            // with the real remaining time, and sends nothing.
            Err(e) => {
                assert_eq!(e.kind, spoke::ErrorKind::RateLimited, "{e:?}");
                assert!(e.retry_after_ms.is_some_and(|ms| ms > 0), "{e:?}");
            }
        }
    }
    let seen = seen.lock().unwrap().clone();
    let gaps: Vec<_> = seen.windows(2).map(|w| w[1] - w[0]).collect();
    eprintln!("{} requests reached the vendor; gaps {gaps:?}", seen.len());
    // Pauses of 1, 2, 4 s (the default ladder) fit the 6-s bound: one
    // request, then one probe after each pause that ended in time.
    assert!((2..=4).contains(&seen.len()), "{} requests in 6 s from 10 callers", seen.len());
    assert!(gaps.iter().all(|g| *g >= Duration::from_millis(950)), "two requests within one pause: {gaps:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wait_is_logged_once_and_shows_in_the_script_run() {
    let sim = Simulator::start(Options::default()).await.unwrap();
    // Two requests per 3 s: the third login of the run waits about 3 s.
    let (dir, config) = deployment(&wics_connector(&sim.url(), 2, 3, "[60, 300, 900]"), Some("fn thrice() { for i in 0..3 { wics::login(); } 3 }\n"));
    let script = dir.path().join("scripts/burn.rhai");
    let out = Command::new(spoke_bin()).arg("--config").arg(&config).args(["script", "run"]).arg(&script).arg("thrice").env("RUST_LOG", "info").output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "spoke script run failed: {stderr}");
    assert_eq!(stderr.matches("waiting for rate budget").count(), 1, "one log line for the one wait: {stderr}");
    let line = stderr.lines().find(|l| l.contains("waiting for rate budget")).unwrap();
    assert!(line.contains("wics") && line.contains("api-user"), "the line names connector and bucket: {line}");

    let out = Command::new(spoke_bin()).arg("--config").arg(&config).args(["runs", "list"]).output().unwrap();
    let list = String::from_utf8_lossy(&out.stdout);
    let id = list.lines().find(|l| l.contains("thrice")).and_then(|l| l.split_whitespace().next()).unwrap_or_else(|| panic!("no run listed: {list}"));
    let out = Command::new(spoke_bin()).arg("--config").arg(&config).args(["runs", "show", id, "--json"]).output().unwrap();
    let run: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)));
    let steps = run["steps"].as_array().unwrap_or_else(|| panic!("no steps: {run}"));
    let waits: Vec<_> = steps.iter().filter_map(|s| s.as_str()).filter(|s| s.contains("waited")).collect();
    assert_eq!(waits.len(), 1, "one recorded wait: {run}");
    assert!(waits[0].starts_with("wics: waited") && waits[0].contains("api-user"), "{}", waits[0]);
    assert_eq!(sim.violations(), 0);
}
