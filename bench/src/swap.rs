//! Webhook latency while a plugin is swapped with a fresh compile, against
//! the same load without a swap (issue 15: the compile used to run on the
//! async runtime and froze webhook answers for its whole duration).
use crate::fixture::{sign, Fixture};
use crate::stats::summarize;
use crate::Row;
use serde_json::json;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Each phase lasts this long.
const PHASE: Duration = Duration::from_secs(6);
/// Webhook senders in flight at once.
const SENDERS: usize = 2;

/// Send signed pings until `stop`; the latency of each.
async fn send_until(url: String, stop: Arc<AtomicBool>, next: Arc<AtomicU64>) -> Vec<Duration> {
    let client = reqwest::Client::new();
    let mut times = Vec::new();
    while !stop.load(Ordering::Relaxed) {
        let id = next.fetch_add(1, Ordering::Relaxed);
        let body = json!({ "id": id }).to_string().into_bytes();
        let t = Instant::now();
        if let Ok(r) = client.post(&url).header("x-signature", sign(&body)).body(body).send().await {
            if r.status() == 200 {
                times.push(t.elapsed());
            }
        }
    }
    times
}

async fn phase(url: &str, next: &Arc<AtomicU64>, during: impl std::future::Future<Output = anyhow::Result<usize>>) -> anyhow::Result<(Vec<Duration>, usize)> {
    let stop = Arc::new(AtomicBool::new(false));
    let senders: Vec<_> = (0..SENDERS).map(|_| tokio::spawn(send_until(url.to_string(), stop.clone(), next.clone()))).collect();
    let swaps = during.await?;
    stop.store(true, Ordering::Relaxed);
    let mut all = Vec::new();
    for s in senders {
        all.extend(s.await?);
    }
    Ok((all, swaps))
}

pub async fn webhook_during_swap(fx: &Fixture) -> anyhow::Result<Vec<Row>> {
    let dir = tempfile::tempdir()?;
    let plugins_dir = dir.path().join("plugins");
    std::fs::create_dir_all(&plugins_dir)?;
    std::fs::create_dir_all(dir.path().join("scripts"))?;
    let probe = std::fs::read(fx.plugins.join("probe.wasm"))?;
    std::fs::write(plugins_dir.join("probe.wasm"), &probe)?;
    // A cache of its own, emptied before each swap: every swap compiles.
    let cache = dir.path().join("cache");
    let mut config = fx.config(dir.path(), &cache, "");
    config.plugins_dir = plugins_dir.clone();
    let host = Arc::new(spoke::Host::start(config).await?);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}/hooks/probe", listener.local_addr()?);
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(spoke::server::serve_on(listener, host.clone(), async move {
        let _ = stop_rx.await;
    }));
    let next = Arc::new(AtomicU64::new(0));
    // Warm up connections and the store.
    phase(&url, &next, async {
        tokio::time::sleep(Duration::from_secs(1)).await;
        Ok(0)
    })
    .await?;

    let (quiet, _) = phase(&url, &next, async {
        tokio::time::sleep(PHASE).await;
        Ok(0)
    })
    .await?;

    let compile_ms = Arc::new(Mutex::new(Vec::new()));
    let (swapping, swaps) = phase(&url, &next, {
        let (host, plugins_dir, cache, compile_ms) = (host.clone(), plugins_dir.clone(), cache.clone(), compile_ms.clone());
        async move {
            let start = Instant::now();
            let mut n = 0u32;
            while start.elapsed() < PHASE {
                n += 1;
                let _ = std::fs::remove_dir_all(&cache);
                let bytes = crate::e2e::variant(&probe, 10_000 + n);
                use sha2::Digest;
                let hash = hex::encode(sha2::Sha256::digest(&bytes));
                std::fs::write(plugins_dir.join("probe.wasm.tmp"), &bytes)?;
                let t = Instant::now();
                std::fs::rename(plugins_dir.join("probe.wasm.tmp"), plugins_dir.join("probe.wasm"))?;
                while !host.connector("probe").is_ok_and(|b| b.plugin.hash == hash) {
                    anyhow::ensure!(t.elapsed() < Duration::from_secs(60), "the swap did not happen");
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                compile_ms.lock().unwrap().push(t.elapsed().as_secs_f64() * 1000.0);
            }
            Ok(n as usize)
        }
    })
    .await?;
    let _ = stop_tx.send(());
    let _ = server.await;

    let (q, s) = (summarize(quiet), summarize(swapping));
    let ratio = s.p99_us / q.p99_us;
    let compiles = compile_ms.lock().unwrap().clone();
    Ok(vec![Row {
        figure: "webhook p99 during plugin swaps with a fresh compile".into(),
        value: format!("p99 {:.2} ms ({} swaps, {} webhooks)", s.p99_us / 1000.0, swaps, s.samples),
        baseline: format!("p99 {:.2} ms without a swap ({} webhooks)", q.p99_us / 1000.0, q.samples),
        target: "≤ 2× the baseline".into(),
        met: Some(ratio <= 2.0),
        detail: json!({ "during_swaps": s, "without": q, "ratio": ratio, "swap_ms": compiles, "senders": SENDERS, "phase_secs": PHASE.as_secs() }),
    }])
}
