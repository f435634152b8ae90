//! End-to-end figures: reloads, rate-budget use, the sustained webhook
//! pipeline. Each stops by itself; all traffic stays on loopback.
use crate::fixture::{sign, Fixture};
use crate::stats::summarize;
use crate::Row;
use serde_json::json;
use std::sync::Arc;
use std::time::{Duration, Instant};

pub fn variant(wasm: &[u8], n: u32) -> Vec<u8> {
    // A custom section at the end: a different file, the same component.
    let name = b"spoke-bench-variant";
    let mut section = vec![name.len() as u8];
    section.extend_from_slice(name);
    section.extend_from_slice(&n.to_le_bytes());
    let mut out = wasm.to_vec();
    out.push(0);
    out.push(section.len() as u8);
    out.extend(section);
    out
}

async fn poll_until(limit: Duration, mut cond: impl FnMut() -> bool) -> Option<Duration> {
    let t = Instant::now();
    while t.elapsed() < limit {
        if cond() {
            return Some(t.elapsed());
        }
        tokio::time::sleep(Duration::from_micros(500)).await;
    }
    None
}

pub async fn reloads(fx: &Fixture) -> anyhow::Result<Vec<Row>> {
    let dir = tempfile::tempdir()?;
    let scripts_dir = dir.path().join("scripts");
    let plugins_dir = dir.path().join("plugins");
    std::fs::create_dir_all(&scripts_dir)?;
    std::fs::create_dir_all(&plugins_dir)?;
    let probe = std::fs::read(fx.plugins.join("probe.wasm"))?;
    std::fs::write(plugins_dir.join("probe.wasm"), &probe)?;
    let script = |v: u32| format!("on(\"probe\", \"PING\", \"handle\");\nfn handle(e) {{ state::set(\"v\", {v}); }}\n");
    std::fs::write(scripts_dir.join("ping.rhai"), script(0))?;
    let mut config = fx.config(dir.path(), &fx.cache(), "");
    config.plugins_dir = plugins_dir.clone();
    let host = Arc::new(spoke::Host::start(config).await?);
    let scripts = spoke::script::Scripts::start(host.clone()).await;
    let _watcher = scripts.watch()?;

    let mut script_times = Vec::new();
    for v in 1..=20u32 {
        let tmp = scripts_dir.join("ping.rhai.tmp");
        std::fs::write(&tmp, script(v))?;
        let before = scripts.current("ping").map(|s| s.version).unwrap_or(0);
        let t = Instant::now();
        std::fs::rename(&tmp, scripts_dir.join("ping.rhai"))?;
        poll_until(Duration::from_secs(5), || scripts.current("ping").is_some_and(|s| s.version > before)).await.ok_or_else(|| anyhow::anyhow!("script reload timed out"))?;
        script_times.push(t.elapsed());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut plugin_times = Vec::new();
    for n in 1..=8u32 {
        let bytes = variant(&probe, n);
        use sha2::Digest;
        let hash = hex::encode(sha2::Sha256::digest(&bytes));
        std::fs::write(plugins_dir.join("probe.wasm.tmp"), &bytes)?;
        let t = Instant::now();
        std::fs::rename(plugins_dir.join("probe.wasm.tmp"), plugins_dir.join("probe.wasm"))?;
        poll_until(Duration::from_secs(20), || host.connector("probe").is_ok_and(|b| b.plugin.hash == hash)).await.ok_or_else(|| anyhow::anyhow!("plugin reload timed out"))?;
        plugin_times.push(t.elapsed());
    }
    let (s, p) = (summarize(script_times), summarize(plugin_times));
    Ok(vec![
        Row {
            figure: "script file saved → new version handling events".into(),
            value: format!("median {:.1} ms, p99 {:.1} ms ({} saves)", s.median_us / 1000.0, s.p99_us / 1000.0, s.samples),
            baseline: "—".into(),
            target: "≤ 100 ms".into(),
            met: Some(s.p99_us <= 100_000.0),
            detail: json!({"script": s, "note": "rename of the saved file until the new version is installed; every event dispatched after that runs on it"}),
        },
        Row {
            figure: "plugin file replaced → new version serving".into(),
            value: format!("median {:.1} ms, p99 {:.1} ms ({} swaps, compile included)", p.median_us / 1000.0, p.p99_us / 1000.0, p.samples),
            baseline: "—".into(),
            target: "≤ 500 ms".into(),
            met: Some(p.p99_us <= 500_000.0),
            detail: json!({"plugin": p}),
        },
    ])
}

/// Drive `call` as fast as possible (4 in flight) for `secs`; return how
/// many completed within it. A call still waiting for budget at the end is
/// abandoned before it is sent, so nothing after `secs` counts.
pub(crate) async fn saturate(host: &Arc<spoke::Host>, connector: &str, op: &str, input: serde_json::Value, secs: f64) -> (u64, f64, u64) {
    let start = Instant::now();
    let done = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let failed = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let mut tasks = Vec::new();
    for _ in 0..4 {
        let (h, c, o, i, d, f) = (host.clone(), connector.to_string(), op.to_string(), input.clone(), done.clone(), failed.clone());
        tasks.push(tokio::spawn(async move {
            let end = tokio::time::Instant::from_std(start) + Duration::from_secs_f64(secs);
            loop {
                match tokio::time::timeout_at(end, h.call(&c, &o, i.clone())).await {
                    Err(_) => break,
                    Ok(Ok(_)) => d.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
                    Ok(Err(_)) => f.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
                };
            }
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
    (done.load(std::sync::atomic::Ordering::Relaxed), start.elapsed().as_secs_f64(), failed.load(std::sync::atomic::Ordering::Relaxed))
}

pub async fn rate_budget(fx: &Fixture) -> anyhow::Result<Vec<Row>> {
    // Five windows begun: stop mid-window so the count is not at the mercy
    // of where the last boundary falls.
    let (limit, window_s, secs) = (20u32, 2u32, 9.0);
    let sandbox = spoke_sandbox::Sandbox::start(spoke_sandbox::Ports::default(), None).await?;
    sandbox.wics.set_limits(spoke_sandbox::wics::Limits { per_minute: limit, minute_ms: window_s as i64 * 1000, ..Default::default() });
    sandbox.cyclesoftware.set_limits(limit, 5, 100_000, window_s as i64 * 1000, 86_400_000);
    sandbox.lagerkoll.set_limit(limit, window_s as i64 * 1000);
    let dir = tempfile::tempdir()?;
    let w = format!("windows = [{{ limit = {limit}, seconds = {window_s} }}]");
    let text = format!(
        "plugins_dir = {:?}\ncache_dir = {:?}\ncache_prune = false\nstore = {:?}\n{}\n[connectors.wics.rate_limits.api-user]\n{w}\n[connectors.cyclesoftware.rate_limits.general]\n{w}\n[connectors.cyclesoftware.rate_limits.create-invoices]\nwindows = [{{ limit = 5, seconds = {window_s} }}]\n[connectors.lagerkoll.rate_limits.general]\n{w}\n",
        fx.root.join("target/spoke-plugins").display().to_string(),
        fx.cache().display().to_string(),
        dir.path().join("spoke.db").display().to_string(),
        sandbox.connectors_toml()
    );
    let host = Arc::new(spoke::Host::start(spoke::Config::parse(&text, "bench", dir.path())?).await?);
    let mut rows = Vec::new();
    let cases: [(&str, &str, serde_json::Value, u32, Box<dyn Fn() -> u64 + Send + Sync>); 3] = [
        ("wics", "list_items", json!({"pageSize": 1}), limit, Box::new(|| sandbox.wics.violations())),
        ("cyclesoftware", "list_open_outbound_order_items", json!({}), limit, Box::new(|| sandbox.cyclesoftware.violations())),
        ("lagerkoll", "list_orders", json!({}), limit, Box::new(|| sandbox.lagerkoll.violations())),
    ];
    for (connector, op, input, l, violations) in cases.iter() {
        let before = violations();
        let (done, elapsed, failed) = saturate(&host, connector, op, input.clone(), secs).await;
        // The most a rolling window lets through in `elapsed`: `limit` for
        // every window begun.
        let allowed = (*l as f64) * (secs / window_s as f64).ceil();
        let used = done as f64 / allowed * 100.0;
        let v = violations() - before;
        rows.push(Row {
            figure: format!("rate-budget use under saturation: {connector} ({l}/{window_s}s, scaled)"),
            value: format!("{used:.1} % used ({done} of {allowed:.0} in {elapsed:.1} s), {v} × 429/blocks, {failed} failed calls"),
            baseline: format!("policy allows {allowed:.0}"),
            target: "≥ 98 % used, 0 × 429, 0 blocks".into(),
            met: Some(used >= 98.0 && v == 0),
            detail: json!({"done": done, "allowed": allowed, "elapsed_s": elapsed, "violations": v, "failed": failed}),
        });
    }
    Ok(rows)
}

pub async fn pipeline(fx: &Fixture) -> anyhow::Result<Vec<Row>> {
    // Closed loop: 16 senders as fast as the host answers. It measures how
    // fast ingest commits while dispatch competes for the same writer; the
    // pipeline's capacity is the open-loop figure (open_loop.rs).
    let secs: f64 = std::env::var("BENCH_E2E_SECS").ok().and_then(|s| s.parse().ok()).unwrap_or(20.0);
    // Baseline: raw single-row SQLite transactions on the same disk.
    let base_dir = tempfile::tempdir_in(fx.root.join("target"))?;
    let conn = rusqlite::Connection::open(base_dir.path().join("raw.db"))?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    conn.execute_batch("CREATE TABLE t (id INTEGER PRIMARY KEY, body TEXT)")?;
    let t = Instant::now();
    let mut raw = 0u64;
    while t.elapsed() < Duration::from_secs(3) {
        conn.execute("INSERT INTO t (body) VALUES (?1)", ["{\"id\":1}"])?;
        raw += 1;
    }
    let raw_rate = raw as f64 / t.elapsed().as_secs_f64();

    let dir = crate::fixture::pipeline_dir(fx)?;
    let host = Arc::new(spoke::Host::start(fx.config(dir.path(), &fx.cache(), "")).await?);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}/hooks/probe", listener.local_addr()?);
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(spoke::server::serve_on(listener, host.clone(), async move {
        let _ = stop_rx.await;
    }));
    tokio::time::sleep(Duration::from_millis(300)).await;
    fx.arrivals.lock().unwrap().clear();

    let sent: Arc<std::sync::Mutex<Vec<(i64, Instant)>>> = Default::default();
    let next = Arc::new(std::sync::atomic::AtomicI64::new(0));
    let start = Instant::now();
    let mut senders = Vec::new();
    for _ in 0..16 {
        let (url, sent, next) = (url.clone(), sent.clone(), next.clone());
        senders.push(tokio::spawn(async move {
            let client = reqwest::Client::new();
            while start.elapsed().as_secs_f64() < secs {
                let id = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let body = json!({ "id": id }).to_string().into_bytes();
                let t = Instant::now();
                if let Ok(r) = client.post(&url).header("x-signature", sign(&body)).body(body).send().await {
                    if r.status().is_success() {
                        sent.lock().unwrap().push((id, t));
                    }
                }
            }
        }));
    }
    for s in senders {
        let _ = s.await;
    }
    let accepted = sent.lock().unwrap().len();
    let window = start.elapsed().as_secs_f64();
    // How many were fully processed within the window, and after a drain.
    let within = fx.arrivals.lock().unwrap().len();
    let drain_start = Instant::now();
    while fx.arrivals.lock().unwrap().len() < accepted && drain_start.elapsed() < Duration::from_secs(120) {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let arrivals = fx.arrivals.lock().unwrap().clone();
    let mut latencies = Vec::new();
    for (id, t) in sent.lock().unwrap().iter() {
        if let Some(a) = arrivals.get(id) {
            latencies.push(a.duration_since(*t));
        }
    }
    let _ = stop_tx.send(());
    let _ = server.await;
    anyhow::ensure!(!latencies.is_empty(), "no event completed");
    let lat = summarize(latencies);
    let ingest = accepted as f64 / window;
    let processed = within as f64 / window;
    Ok(vec![Row {
        figure: format!("webhook ingest, 16 closed-loop senders for {secs:.0} s (same workload)"),
        value: format!(
            "ingest {ingest:.0} events/s committed; end to end {processed:.0} events/s; latency p50 {:.1} ms, p99 {:.1} ms ({} of {accepted} done after drain)",
            lat.median_us / 1000.0,
            lat.p99_us / 1000.0,
            arrivals.len()
        ),
        baseline: format!("raw SQLite single-row inserts: {raw_rate:.0}/s"),
        target: "— (capacity: the open-loop rows)".into(),
        met: None,
        detail: json!({"accepted": accepted, "processed_in_window": within, "processed_total": arrivals.len(), "window_s": window, "latency": lat, "raw_sqlite_per_s": raw_rate}),
    }])
}
