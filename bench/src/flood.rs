//! Ingest under a refusal flood: genuine webhook answer times while other
//! clients send 1 MB bodies to unknown connectors and with forged
//! signatures, beside the same figure without the flood, and how much the
//! store grew.
use crate::fixture::{sign, Fixture};
use crate::stats::{summarize, Summary};
use crate::Row;
use serde_json::json;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const GENUINE: usize = 400;

async fn genuine(url: &str, from: i64) -> Summary {
    let client = reqwest::Client::new();
    let mut d = Vec::with_capacity(GENUINE);
    for id in from..from + GENUINE as i64 {
        let body = json!({ "id": id }).to_string().into_bytes();
        let t = Instant::now();
        let ok = client.post(url).header("x-signature", sign(&body)).body(body).send().await.map(|r| r.status().is_success()).unwrap_or(false);
        if ok {
            d.push(t.elapsed());
        }
    }
    summarize(d)
}

fn store_bytes(dir: &std::path::Path) -> u64 {
    ["spoke.db", "spoke.db-wal"].iter().map(|f| std::fs::metadata(dir.join(f)).map(|m| m.len()).unwrap_or(0)).sum()
}

pub async fn refusal_flood(fx: &Fixture) -> anyhow::Result<Vec<Row>> {
    let dir = tempfile::tempdir_in(fx.root.join("target"))?;
    std::fs::create_dir_all(dir.path().join("scripts"))?;
    let config = fx.config(dir.path(), &fx.cache(), "");
    let retention = config.retention.clone();
    let host = Arc::new(spoke::Host::start(config).await?);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(spoke::server::serve_on(listener, host.clone(), async move {
        let _ = stop_rx.await;
    }));
    tokio::time::sleep(Duration::from_millis(300)).await;
    let url = format!("{base}/hooks/probe");
    let quiet = genuine(&url, 0).await;

    let mut rows = Vec::new();
    for (kind, unknown) in [("unknown connectors", true), ("a real connector with forged signatures", false)] {
        let before = store_bytes(dir.path());
        let flooding = Arc::new(AtomicBool::new(true));
        let (sent, bytes) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
        let mut flooders = Vec::new();
        for _ in 0..4 {
            let (base, flooding, sent, bytes) = (base.clone(), flooding.clone(), sent.clone(), bytes.clone());
            flooders.push(tokio::spawn(async move {
                let client = reqwest::Client::new();
                let body = vec![b'x'; 1 << 20];
                let mut i = 0u64;
                while flooding.load(Ordering::Relaxed) {
                    let url = if unknown { format!("{base}/hooks/nobody{i}") } else { format!("{base}/hooks/probe") };
                    let _ = client.post(url).header("x-signature", "forged").body(body.clone()).send().await;
                    sent.fetch_add(1, Ordering::Relaxed);
                    bytes.fetch_add(1 << 20, Ordering::Relaxed);
                    i += 1;
                }
            }));
        }
        let flood = genuine(&url, if unknown { 1_000_000 } else { 2_000_000 }).await;
        flooding.store(false, Ordering::Relaxed);
        for f in flooders {
            let _ = f.await;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        let grown = store_bytes(dir.path()).saturating_sub(before);
        let bound = retention.max_refusals * (if unknown { 0 } else { retention.refusal_body_bytes as u64 } + spoke::webhook::refusals_header_cap() as u64 + 4096);
        let (sent, bytes) = (sent.load(Ordering::Relaxed), bytes.load(Ordering::Relaxed));
        rows.push(Row {
            figure: format!("genuine webhook answer under a refusal flood: 4 clients sending 1 MB bodies to {kind}"),
            value: format!(
                "p50 {:.1} ms, p99 {:.1} ms; {sent} refused requests ({:.0} MB) meanwhile; store grew {:.1} MB",
                flood.median_us / 1000.0,
                flood.p99_us / 1000.0,
                bytes as f64 / 1e6,
                grown as f64 / 1e6
            ),
            baseline: format!("no flood: p50 {:.1} ms, p99 {:.1} ms", quiet.median_us / 1000.0, quiet.p99_us / 1000.0),
            target: format!("store growth ≤ the refusal bound ({:.1} MB) plus the WAL (16 MiB)", bound as f64 / 1e6),
            met: Some(grown <= bound + (16 << 20)),
            detail: json!({"quiet": quiet, "flood": flood, "refused_requests": sent, "refused_bytes": bytes, "store_growth_bytes": grown, "refusal_bound_bytes": bound}),
        });
    }
    let _ = stop_tx.send(());
    let _ = server.await;
    Ok(rows)
}
