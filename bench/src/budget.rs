//! The shared rate budget: what one request pays for the ledger in the
//! store, beside the in-process ledger in the same run, and how much of a
//! vendor budget four processes on one store use together.
use crate::fixture::Fixture;
use crate::stats::sample;
use crate::Row;
use serde_json::json;
use spoke::manifest::Window;
use spoke::rate_limit::{Limiter, MemoryLedger, Outcome, Policy};
use std::sync::Arc;
use std::time::Duration;

/// Environment variable that turns this binary into one budget worker.
pub const WORKER: &str = "SPOKE_BENCH_RATE_WORKER";

/// Acquire + finish of one slot, the whole per-request cost of the limiter
/// when nothing has to wait.
async fn per_request(ledger: Arc<dyn spoke::rate_limit::LedgerStore>) -> crate::stats::Summary {
    let limiter = Arc::new(Limiter::new(ledger, Duration::from_secs(30), Default::default()));
    let policy = Policy { name: "general".into(), windows: vec![Window { limit: 100_000_000, seconds: 60 }], headers: vec![], penalty_ms: vec![] };
    let bucket = limiter.bucket("bench-credential", &policy);
    sample(200, 3_000, || {
        let (limiter, bucket) = (limiter.clone(), bucket.clone());
        async move {
            let permit = limiter.acquire("bench", "bench-credential", &[bucket], 1, Duration::ZERO, false).await.expect("budget");
            limiter.finish(permit, Outcome::Accepted).await.expect("ledger");
        }
    })
    .await
}

pub async fn ledger_cost(_fx: &Fixture) -> anyhow::Result<Vec<Row>> {
    let dir = tempfile::tempdir()?;
    let memory = per_request(Arc::new(MemoryLedger::default())).await;
    let store = per_request(Arc::new(spoke::store::SqliteStore::open(&dir.path().join("spoke.db"))?)).await;
    Ok(vec![Row {
        figure: "rate budget per request (acquire + finish, no wait)".into(),
        value: format!("SQLite ledger: median {:.1} µs, p99 {:.1} µs", store.median_us, store.p99_us),
        baseline: format!("in-process ledger: median {:.1} µs, p99 {:.1} µs", memory.median_us, memory.p99_us),
        target: "measure (shared across processes and restarts)".into(),
        met: None,
        detail: json!({"sqlite": store, "memory": memory}),
    }])
}

/// Four processes, each a host of its own on one store file, saturate one
/// WICS credential (scaled to 20 requests per 2 s) for the same seconds.
pub async fn four_processes(fx: &Fixture) -> anyhow::Result<Vec<Row>> {
    let (limit, window_s, secs, workers) = (20u32, 2u32, 9.0f64, 4);
    let sandbox = spoke_sandbox::Sandbox::start(spoke_sandbox::Ports::default(), None).await?;
    sandbox.wics.set_limits(spoke_sandbox::wics::Limits { per_minute: limit, minute_ms: window_s as i64 * 1000, ..Default::default() });
    let dir = tempfile::tempdir()?;
    let text = format!(
        "plugins_dir = {:?}\ncache_dir = {:?}\ncache_prune = false\nstore = {:?}\n{}\n[connectors.wics.rate_limits.api-user]\nwindows = [{{ limit = {limit}, seconds = {window_s} }}]\n",
        fx.root.join("target/spoke-plugins").display().to_string(),
        fx.cache().display().to_string(),
        dir.path().join("spoke.db").display().to_string(),
        sandbox.connectors_toml()
    );
    let config = dir.path().join("spoke.toml");
    std::fs::write(&config, text)?;
    // Every worker starts saturating at the same wall-clock moment, after
    // its host has started.
    let start_at = spoke::store::now_ms() + 4_000;
    let before = sandbox.wics.violations();
    let mut children = Vec::new();
    for _ in 0..workers {
        children.push(
            tokio::process::Command::new(std::env::current_exe()?)
                .env(WORKER, format!("{}|{start_at}|{secs}", config.display()))
                .stdout(std::process::Stdio::piped())
                .spawn()?,
        );
    }
    let mut done = 0u64;
    let mut failed = 0u64;
    for c in children {
        let out = c.wait_with_output().await?;
        anyhow::ensure!(out.status.success(), "a budget worker failed: {}", out.status);
        let v: serde_json::Value = serde_json::from_slice(&out.stdout)?;
        done += v["done"].as_u64().unwrap_or(0);
        failed += v["failed"].as_u64().unwrap_or(0);
    }
    let v = sandbox.wics.violations() - before;
    let allowed = (limit as f64) * (secs / window_s as f64).ceil();
    let used = done as f64 / allowed * 100.0;
    Ok(vec![Row {
        figure: format!("rate-budget use across {workers} processes on one store: wics ({limit}/{window_s}s, scaled)"),
        value: format!("{used:.1} % used ({done} of {allowed:.0} in {secs:.1} s), {v} × 429/blocks, {failed} failed calls"),
        baseline: format!("policy allows {allowed:.0}"),
        target: "≥ 98 % used, 0 × 429, 0 blocks".into(),
        met: Some(used >= 98.0 && v == 0),
        detail: json!({"done": done, "allowed": allowed, "violations": v, "failed": failed, "workers": workers}),
    }])
}

/// The worker side of [`four_processes`]: start a host from the config,
/// wait for the common start, saturate, print what was done.
pub async fn worker(spec: &str) -> anyhow::Result<()> {
    let mut parts = spec.split('|');
    let (config, start_at, secs) = (parts.next().unwrap_or_default(), parts.next().unwrap_or_default().parse::<i64>()?, parts.next().unwrap_or_default().parse::<f64>()?);
    let config_path = std::path::Path::new(config);
    let text = std::fs::read_to_string(config_path)?;
    let host = Arc::new(spoke::Host::start(spoke::Config::parse(&text, config, config_path.parent().unwrap())?).await?);
    let wait = start_at - spoke::store::now_ms();
    anyhow::ensure!(wait > 0, "the host took longer to start than the common start allowed");
    tokio::time::sleep(Duration::from_millis(wait as u64)).await;
    let (done, _, failed) = crate::e2e::saturate(&host, "wics", "list_items", json!({"pageSize": 1}), secs).await;
    println!("{}", json!({"done": done, "failed": failed}));
    Ok(())
}
