//! `cargo xtask bench`: every performance figure of the issue beside the
//! baseline measured in the same run; prints a table and writes
//! target/bench/results.json. Nothing here is a test: it measures.
//!
//! `BENCH_RATE_SECS` sets how long each open-loop rate is offered (default
//! 10); `BENCH_E2E_SECS` shortens the closed-loop ingest run (default 60); `BENCH_ONLY`
//! (a word of a step's name, e.g. `pipeline`) runs one step, for profiling.
mod budget;
mod e2e;
mod fixture;
mod flood;
mod micro;
mod open_loop;
mod stats;
mod swap;

use serde::Serialize;

#[derive(Debug, Clone, Serialize)]
pub struct Row {
    pub figure: String,
    pub value: String,
    pub baseline: String,
    pub target: String,
    /// None where the figure has no pass/fail target.
    pub met: Option<bool>,
    pub detail: serde_json::Value,
}

fn print(rows: &[Row]) {
    println!("\n| figure | value | baseline (same run) | target | met |");
    println!("|---|---|---|---|---|");
    for r in rows {
        let met = match r.met {
            Some(true) => "yes",
            Some(false) => "**no**",
            None => "—",
        };
        println!("| {} | {} | {} | {} | {} |", r.figure, r.value, r.baseline, r.target, met);
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    spoke::install_tls();
    if let Ok(spec) = std::env::var(budget::WORKER) {
        return budget::worker(&spec).await;
    }
    let started = std::time::Instant::now();
    let fx = fixture::Fixture::new().await?;
    let mut rows = Vec::new();
    let only = std::env::var("BENCH_ONLY").ok();
    macro_rules! step {
        ($name:expr, $e:expr) => {{
            if only.as_deref().is_some_and(|o| !$name.contains(o)) {
                eprintln!("bench: {} skipped (BENCH_ONLY)", $name);
            } else {
            eprintln!("bench: {} ...", $name);
            match $e.await {
                Ok(mut r) => rows.append(&mut r),
                Err(e) => eprintln!("bench: {} failed: {e:#}", $name),
            }
            }
        }};
    }

    step!("warm and fresh plugin calls", micro::plugin_calls(&fx));
    step!("plugin HTTP vs reqwest", micro::http_calls(&fx));
    step!("Rhai -> plugin vs Rhai -> native", micro::rhai_calls(&fx));
    step!("host start", micro::host_start(&fx));
    step!("memory", micro::memory(&fx));
    step!("script and plugin reload", e2e::reloads(&fx));
    step!("rate budget under saturation", e2e::rate_budget(&fx));
    step!("rate budget per request", budget::ledger_cost(&fx));
    step!("rate budget across processes", budget::four_processes(&fx));
    step!("webhook pipeline, open loop", open_loop::pipeline(&fx));
    step!("webhook pipeline on 1, 2 and 3 hosts, PostgreSQL", open_loop::scale_out(&fx));
    step!("webhook ingest, closed loop", e2e::pipeline(&fx));
    step!("webhook latency during plugin swap", swap::webhook_during_swap(&fx));
    step!("ingest under a refusal flood", flood::refusal_flood(&fx));
    print(&rows);
    let out = fx.root.join("target/bench");
    std::fs::create_dir_all(&out)?;
    let json = serde_json::json!({
        "machine": fixture::machine(),
        "profile": if cfg!(debug_assertions) { "dev (dependencies at opt-level 2, Spoke's crates at opt-level 0)" } else { "release" },
        "seconds": started.elapsed().as_secs_f64(),
        "rows": rows,
    });
    std::fs::write(out.join("results.json"), serde_json::to_string_pretty(&json)?)?;
    println!("\nwritten to {} ({:.0} s in all)", out.join("results.json").display(), started.elapsed().as_secs_f64());
    Ok(())
}
