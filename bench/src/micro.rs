//! Per-call costs: warm and fresh plugin calls, plugin HTTP, Rhai bridging,
//! host start, memory.
use crate::fixture::{rss_mib, Fixture};
use crate::stats::{sample, sample_sync, Summary};
use crate::Row;
use serde_json::json;
use std::sync::Arc;
use std::time::{Duration, Instant};

fn us(s: &Summary) -> String {
    format!("median {:.2} µs, p99 {:.2} µs", s.median_us, s.p99_us)
}

async fn probe_host(fx: &Fixture, dir: &std::path::Path, extra: &str) -> anyhow::Result<Arc<spoke::Host>> {
    Ok(Arc::new(spoke::Host::start(fx.config(dir, &fx.cache(), extra)).await?))
}

pub async fn plugin_calls(fx: &Fixture) -> anyhow::Result<Vec<Row>> {
    let dir = tempfile::tempdir()?;
    let host = probe_host(fx, dir.path(), "").await?;
    let binding = host.connector("probe").map_err(|e| anyhow::anyhow!("{e}"))?;
    let input = json!({"order": "SO-1", "lines": [{"item": "16080", "qty": 2}], "note": "bench"}).to_string();

    // The same work natively: parse the input, serialize the output.
    let native = sample_sync(2_000, 20_000, || {
        let v: serde_json::Value = serde_json::from_str(std::hint::black_box(&input)).unwrap();
        std::hint::black_box(v.to_string());
    });
    let mut instance = binding.plugin.instantiate(binding.clone()).await.map_err(|e| anyhow::anyhow!("{e}"))?;
    let warm = {
        let mut d = Vec::new();
        for i in 0..22_000 {
            let t = Instant::now();
            std::hint::black_box(instance.invoke("echo", &input).await.unwrap());
            if i >= 2_000 {
                d.push(t.elapsed());
            }
        }
        crate::stats::summarize(d)
    };
    let value = json!({"order": "SO-1", "lines": [{"item": "16080", "qty": 2}], "note": "bench"});
    let fresh = sample(500, 5_000, || {
        let (h, v) = (host.clone(), value.clone());
        async move {
            std::hint::black_box(h.call("probe", "echo", v).await.unwrap());
        }
    })
    .await;
    let overhead = warm.median_us - native.median_us;
    Ok(vec![
        Row {
            figure: "warm plugin operation call (no I/O)".into(),
            value: format!("{} (overhead {overhead:.2} µs)", us(&warm)),
            baseline: format!("native: {}", us(&native)),
            target: "≤ 2 µs overhead".into(),
            met: Some(overhead <= 2.0),
            detail: json!({"warm": warm, "native": native}),
        },
        Row {
            figure: "Host::call (instance kept per connector; was fresh instance + call)".into(),
            value: us(&fresh),
            baseline: "—".into(),
            target: "≤ 20 µs".into(),
            met: Some(fresh.median_us <= 20.0),
            detail: json!({"fresh": fresh}),
        },
    ])
}

pub async fn http_calls(fx: &Fixture) -> anyhow::Result<Vec<Row>> {
    let dir = tempfile::tempdir()?;
    let host = probe_host(fx, dir.path(), "").await?;
    let client = reqwest::Client::new();
    let url = format!("{}/a", fx.vendor_url);
    let direct = sample(200, 3_000, || {
        let (c, u) = (client.clone(), url.clone());
        async move {
            std::hint::black_box(c.get(u).send().await.unwrap().bytes().await.unwrap());
        }
    })
    .await;
    let plugin = sample(200, 3_000, || {
        let h = host.clone();
        async move {
            std::hint::black_box(h.call("probe", "http", json!({"path": "/a"})).await.unwrap());
        }
    })
    .await;
    let slower = (plugin.median_us / direct.median_us - 1.0) * 100.0;
    Ok(vec![Row {
        figure: "plugin HTTP call to a loopback server".into(),
        value: format!("{} ({slower:+.1} %)", us(&plugin)),
        baseline: format!("reqwest: {}", us(&direct)),
        target: "≤ 5 % slower".into(),
        met: Some(slower <= 5.0),
        detail: json!({"plugin": plugin, "reqwest": direct}),
    }])
}

pub async fn rhai_calls(fx: &Fixture) -> anyhow::Result<Vec<Row>> {
    let dir = tempfile::tempdir()?;
    std::fs::create_dir_all(dir.path().join("scripts"))?;
    std::fs::write(
        dir.path().join("scripts/bridge.rhai"),
        "fn plugin(n) { for i in 0..n { probe::echo(#{ i: i }); } }\nfn native(n) { for i in 0..n { to_json(#{ i: i }); } }\n",
    )?;
    let host = probe_host(fx, dir.path(), "").await?;
    let scripts = spoke::script::Scripts::start(host.clone()).await;
    let n = 2_000;
    let per_call = |total: Duration| total.as_secs_f64() * 1e6 / n as f64;
    let mut plugin = Vec::new();
    let mut native = Vec::new();
    for _ in 0..7 {
        let t = Instant::now();
        scripts.run("bridge", "plugin", Some(json!(n)), "bench").await.map_err(|e| anyhow::anyhow!("{e}"))?;
        plugin.push(per_call(t.elapsed()));
        let t = Instant::now();
        scripts.run("bridge", "native", Some(json!(n)), "bench").await.map_err(|e| anyhow::anyhow!("{e}"))?;
        native.push(per_call(t.elapsed()));
    }
    plugin.sort_by(f64::total_cmp);
    native.sort_by(f64::total_cmp);
    let (p, nat) = (plugin[plugin.len() / 2], native[native.len() / 2]);
    // The plugin call itself, measured the same way from Rust.
    let direct = sample(200, 2_000, || {
        let h = host.clone();
        async move {
            std::hint::black_box(h.call("probe", "echo", json!({"i": 1})).await.unwrap());
        }
    })
    .await;
    let overhead = p - nat - direct.median_us;
    Ok(vec![Row {
        figure: "Rhai script → plugin call".into(),
        value: format!("{p:.2} µs per call; bridging overhead {overhead:.2} µs (= script→plugin − script→native − Host::call)"),
        baseline: format!("Rhai → native fn: {nat:.2} µs per call; Host::call from Rust {:.2} µs", direct.median_us),
        target: "≤ 5 µs overhead".into(),
        met: Some(overhead <= 5.0),
        detail: json!({"plugin_per_call_us": plugin, "native_per_call_us": native, "host_call": direct, "calls_per_run": n}),
    }])
}

pub async fn host_start(fx: &Fixture) -> anyhow::Result<Vec<Row>> {
    let dir = tempfile::tempdir()?;
    let text = |cache: &std::path::Path| {
        format!(
            "plugins_dir = {:?}\ncache_dir = {:?}\nstore = {:?}\n",
            fx.root.join("target/spoke-plugins").display().to_string(),
            cache.display().to_string(),
            dir.path().join("spoke.db").display().to_string()
        )
    };
    let mut cold = Vec::new();
    for _ in 0..3 {
        let cache = tempfile::tempdir()?;
        let config = spoke::Config::parse(&text(cache.path()), "bench", dir.path())?;
        let t = Instant::now();
        let h = spoke::Host::start(config).await?;
        cold.push(t.elapsed());
        anyhow::ensure!(h.plugins().len() == 3, "expected the three vendor plugins");
    }
    let cache = fx.root.join("target/bench/start-cache");
    let _ = spoke::Host::start(spoke::Config::parse(&text(&cache), "bench", dir.path())?).await?;
    let mut warm = Vec::new();
    for _ in 0..15 {
        let config = spoke::Config::parse(&text(&cache), "bench", dir.path())?;
        let t = Instant::now();
        let _h = spoke::Host::start(config).await?;
        warm.push(t.elapsed());
    }
    let (warm, cold) = (crate::stats::summarize(warm), crate::stats::summarize(cold));
    Ok(vec![Row {
        figure: "host start with the three plugins".into(),
        value: format!("warm cache: median {:.1} ms", warm.median_us / 1000.0),
        baseline: format!("cold cache: median {:.1} ms", cold.median_us / 1000.0),
        target: "≤ 300 ms warm".into(),
        met: Some(warm.median_us <= 300_000.0),
        detail: json!({"warm": warm, "cold": cold}),
    }])
}

pub async fn memory(fx: &Fixture) -> anyhow::Result<Vec<Row>> {
    use std::io::BufRead;
    let dir = tempfile::tempdir()?;
    let cfg = dir.path().join("spoke.toml");
    std::fs::write(
        &cfg,
        format!(
            "plugins_dir = {:?}\ncache_dir = {:?}\nstore = \"spoke.db\"\nscripts_dir = \"scripts\"\nlisten = \"127.0.0.1:0\"\n",
            fx.root.join("target/spoke-plugins").display().to_string(),
            fx.root.join("target/bench/start-cache").display().to_string()
        ),
    )?;
    let bin = fx.bin("spoke");
    let mut child = std::process::Command::new(&bin).arg("--config").arg(&cfg).arg("run").stderr(std::process::Stdio::piped()).spawn()?;
    let mut reader = std::io::BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    while reader.read_line(&mut line)? > 0 && !line.contains("listening on") {
        line.clear();
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let idle = rss_mib(child.id());
    let _ = child.kill();
    let _ = child.wait();

    let host = probe_host(fx, dir.path(), "").await?;
    let binding = host.connector("probe").map_err(|e| anyhow::anyhow!("{e}"))?;
    let before = rss_mib(std::process::id()).unwrap_or(0.0);
    let mut held = Vec::new();
    for _ in 0..100 {
        let mut i = binding.plugin.instantiate(binding.clone()).await.map_err(|e| anyhow::anyhow!("{e}"))?;
        i.invoke("echo", "{}").await.map_err(|e| anyhow::anyhow!("{e}"))?;
        held.push(i);
    }
    let after = rss_mib(std::process::id()).unwrap_or(0.0);
    drop(held);
    let idle = idle.unwrap_or(f64::NAN);
    Ok(vec![Row {
        figure: "resident memory".into(),
        value: format!("idle host with three plugins: {idle:.1} MiB; 100 live instances (probe, each called once): +{:.1} MiB", after - before),
        baseline: "—".into(),
        target: "≤ 100 MB idle".into(),
        met: Some(idle * 1.048_576 <= 100.0),
        detail: json!({"idle_mib": idle, "per_100_instances_mib": after - before}),
    }])
}
