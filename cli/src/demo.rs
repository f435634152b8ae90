//! `spoke demo`: the first thing a newcomer runs. Starts the vendor sandbox
//! and a host with the shipped scripts on a fresh SQLite store, pushes a few
//! leads through the sales chain, plays the dealer and the warehouse, and
//! tells the story as it happens.
use spoke::{Config, Host};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The leads the demo sends, and what the dealer will answer.
fn leads() -> Vec<(Value, &'static str)> {
    let lead = |id: &str, name: &str, email: &str, street: &str, number: &str, postfix: &str, zip: &str, city: &str, country: &str, article: &str, qty: i64| {
        json!({
            "form_id": id, "name": name, "email": email, "phone": "+31 20 123 4567",
            "address": { "street": street, "house_number": number, "house_number_postfix": postfix, "zipcode": zip, "city": city, "country": country },
            "article": article, "quantity": qty,
        })
    };
    vec![
        (lead("F-1", "Anna de Vries", "anna@example.nl", "Keizersgracht", "12", "A", "1015 CX", "Amsterdam", "NL", "BIKE/26", 1), "accepted"),
        (lead("F-2", "Jan Peeters", "jan@example.be", "Meir", "45", "", "2000", "Antwerpen", "BE", "T-700", 2), "accepted"),
        (lead("F-3", "Pieter Bakker", "pieter@example.nl", "Dorpsstraat", "3", "", "1234 AB", "Utrecht", "NL", "A-100", 1), "declined"),
        (lead("F-4", "Sophie Martin", "sophie@example.fr", "Rue de Rivoli", "8", "bis", "75001", "Paris", "FR", "A-200", 1), "accepted"),
        (lead("F-5", "Eva Jansen", "eva@example.nl", "Achterom", "twaalf", "", "4811 AA", "Breda", "NL", "A-100", 1), "accepted"),
    ]
}

/// The demo plays a dealer who answers in a second: the chain asks often.
/// (A deployment keeps the defaults, which share CycleSoftware's daily budget.)
const FLOWS: &str = "[flows]\npoll_every_secs = 0.3\npoll_max_every_secs = 1.0\n";

/// The lead a form's flow made (`form:<key>` in the chain's state), once it has.
async fn lead_of_form(host: &Host, key: &str) -> anyhow::Result<Option<String>> {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if let Some(uuid) = host.store().state_get("sales_chain", &format!("form:{key}"))?.and_then(|t| serde_json::from_str::<Value>(&t).ok()).and_then(|v| v.as_str().map(str::to_string)) {
            return Ok(Some(uuid));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(None)
}

/// What the chain script records about a lead (`lead:<uuid>` in its state).
fn lead_state(host: &Host, uuid: &str) -> anyhow::Result<Value> {
    Ok(host.store().state_get("sales_chain", &format!("lead:{uuid}"))?.and_then(|t| serde_json::from_str(&t).ok()).unwrap_or_default())
}

/// An admin token for one demo run: not guessable, never shown.
fn demo_token() -> String {
    use sha2::Digest;
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or_default();
    let stack = &nanos as *const u128 as usize;
    hex::encode(sha2::Sha256::digest(format!("{nanos}:{}:{stack}", std::process::id())))
}

fn say(start: Instant, text: impl AsRef<str>) {
    println!("[{:>5.1}s] {}", start.elapsed().as_secs_f64(), text.as_ref());
}

fn field<'a>(v: &'a Value, k: &str) -> Option<String> {
    match v.get(k)? {
        Value::Null => None,
        Value::String(s) => Some(s.clone()),
        other => Some(other.to_string()),
    }
}

pub async fn run(plugins_dir: &Path, scripts_dir: &Path, work_dir: &Path, timeout: Duration) -> anyhow::Result<bool> {
    spoke::install_tls();
    let start = Instant::now();
    if !plugins_dir.join("wics.wasm").exists() {
        anyhow::bail!("no plugins in {}: run `cargo xtask demo` (it builds them) or `cargo xtask plugins`", plugins_dir.display());
    }
    let _ = std::fs::remove_dir_all(work_dir);
    std::fs::create_dir_all(work_dir)?;
    // The config lives in work_dir; give it absolute paths.
    let abs = |p: &Path| std::fs::canonicalize(p).map_err(|e| anyhow::anyhow!("{}: {e}", p.display()));
    let (plugins_dir, scripts_dir, work_dir) = (abs(plugins_dir)?, abs(scripts_dir)?, abs(work_dir)?);
    let (plugins_dir, scripts_dir, work_dir) = (plugins_dir.as_path(), scripts_dir.as_path(), work_dir.as_path());

    // The host's port first: the sandbox must know where to send webhooks.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let host_url = format!("http://{}", listener.local_addr()?);
    let sandbox = spoke_sandbox::Sandbox::start(spoke_sandbox::Ports::default(), Some(&format!("{host_url}/hooks"))).await?;
    say(start, format!("vendor sandbox up: CycleSoftware {}, WICS {}, Lagerkoll {}", sandbox.cyclesoftware.url(), sandbox.wics.url(), sandbox.lagerkoll.url()));

    // The admin surface (script triggers) on its own loopback port, behind
    // a token made for this run.
    let admin_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let admin_url = format!("http://{}", admin_listener.local_addr()?);
    let token = demo_token();
    let text = format!(
        "plugins_dir = {:?}\nscripts_dir = {:?}\nstore = {:?}\ncache_dir = {:?}\n\n[admin]\nlisten = {:?}\ntoken = \"value:{token}\"\n\n{FLOWS}\n{}",
        plugins_dir.display().to_string(),
        scripts_dir.display().to_string(),
        work_dir.join("spoke.db").display().to_string(),
        work_dir.join("../cache").display().to_string(),
        admin_listener.local_addr()?.to_string(),
        sandbox.connectors_toml()
    );
    std::fs::write(work_dir.join("spoke.toml"), &text)?;
    let config = Config::parse(&text, &work_dir.join("spoke.toml").display().to_string(), work_dir)?;
    let host = Arc::new(Host::start(config).await?);
    let plugins: Vec<String> = host.plugins().iter().map(|p| format!("{} {} ({} operations)", p.manifest.name, p.manifest.version, p.manifest.operations.len())).collect();
    say(start, format!("host up at {host_url} with {}", plugins.join(", ")));

    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(spoke::server::serve_surfaces(listener, Some(admin_listener), host.clone(), async move {
        let _ = stop_rx.await;
    }));
    let http = reqwest::Client::builder()
        .default_headers([(reqwest::header::AUTHORIZATION, reqwest::header::HeaderValue::from_str(&format!("Bearer {token}"))?)].into_iter().collect())
        .build()?;
    let script = |f: &str| format!("{admin_url}/scripts/sales_chain/{f}");
    let resp = http.post(script("setup")).json(&json!({ "hooks_url": format!("{host_url}/hooks") })).send().await?;
    if !resp.status().is_success() {
        anyhow::bail!("the chain's setup failed: {}", resp.text().await.unwrap_or_default());
    }
    say(start, "subscribed the host to WICS shipments (scripts/sales_chain.rhai, fn setup)");

    // Leads arrive as a form post would send them.
    // In the order the leads came in.
    let mut plan: Vec<(String, (String, &'static str))> = Vec::new();
    for (form, answer) in leads() {
        let who = form["name"].as_str().unwrap_or("").to_string();
        let resp = http.post(script("new_lead")).json(&form).send().await?;
        let body: Value = resp.json().await.unwrap_or_default();
        let Some(key) = body["result"]["key"].as_str().map(str::to_string) else {
            say(start, format!("lead from {who} was not accepted by the script: {body}"));
            continue;
        };
        let Some(uuid) = lead_of_form(&host, &key).await? else {
            say(start, format!("lead from {who}: its flow made no CycleSoftware lead (see `spoke flows list`)"));
            continue;
        };
        say(start, format!("lead from {who} ({} × {}) → CycleSoftware lead {}", form["quantity"], form["article"].as_str().unwrap_or(""), &uuid[..8.min(uuid.len())]));
        plan.push((uuid, (who, answer)));
    }

    // Play the dealer and the warehouse; narrate every change of state.
    let mut seen: BTreeMap<String, String> = BTreeMap::new();
    let mut answered: Vec<String> = Vec::new();
    let mut shipped: Vec<String> = Vec::new();
    let terminal = ["shipped", "declined", "cancelled", "failed"];
    let deadline = Instant::now() + timeout;
    let mut interrupted = false;
    let ctrl_c = spoke::server::shutdown_signal()?;
    tokio::pin!(ctrl_c);
    loop {
        for (uuid, (who, answer)) in &plan {
            let state: Value = lead_state(&host, uuid)?;
            let status = field(&state, "status").unwrap_or_else(|| "open".into());
            if !answered.contains(uuid) {
                sandbox.cyclesoftware.set_lead_status(uuid, answer).map_err(|e| anyhow::anyhow!("{e}"))?;
                say(start, format!("the dealer {answer} {who}'s lead"));
                answered.push(uuid.clone());
            }
            if seen.get(uuid) == Some(&status) {
                continue;
            }
            let order = field(&state, "lagerkoll_order").unwrap_or_default();
            let wics = field(&state, "wics_order").unwrap_or_default();
            match status.as_str() {
                "open" => {}
                "accepted" => say(start, format!("{who}: lead accepted")),
                "ordered" => {
                    say(start, format!("{who}: sales order #{order} in Lagerkoll → WICS warehouse order {wics}"));
                    if !shipped.contains(uuid) {
                        let reference = if wics.is_empty() { order.clone() } else { wics.clone() };
                        match sandbox.wics.ship_order(json!({ "reference": reference })) {
                            Ok(_) => say(start, format!("the warehouse shipped WICS order {reference}")),
                            Err(e) => say(start, format!("the warehouse could not ship {reference}: {e}")),
                        }
                        shipped.push(uuid.clone());
                    }
                }
                "shipped" => say(start, format!("{who}: shipped, track and trace {} — Lagerkoll order #{order} marked sent", field(&state, "track_and_trace").unwrap_or_default())),
                "declined" | "cancelled" => say(start, format!("{who}: lead {status}; the chain ends here, nothing was ordered")),
                "failed" => say(start, format!("{who}: FAILED — {}", field(&state, "error").unwrap_or_default())),
                other => say(start, format!("{who}: {other}")),
            }
            seen.insert(uuid.clone(), status);
        }
        let done = plan.iter().all(|(u, _)| seen.get(u).is_some_and(|s| terminal.contains(&s.as_str())));
        if done || Instant::now() > deadline {
            break;
        }
        tokio::select! {
            _ = &mut ctrl_c => { interrupted = true; break; }
            _ = tokio::time::sleep(Duration::from_millis(200)) => {}
        }
    }

    println!("\nSummary");
    println!("{:<18} {:<10} {:<16} {:<14} {}", "CUSTOMER", "STATUS", "LAGERKOLL ORDER", "WICS ORDER", "TRACK AND TRACE / REASON");
    let mut all_terminal = true;
    for (uuid, (who, _)) in &plan {
        let state: Value = lead_state(&host, uuid)?;
        let status = field(&state, "status").unwrap_or_else(|| "open".into());
        all_terminal &= terminal.contains(&status.as_str());
        let detail = field(&state, "track_and_trace").or_else(|| field(&state, "error")).unwrap_or_default();
        println!("{:<18} {:<10} {:<16} {:<14} {}", who, status, field(&state, "lagerkoll_order").unwrap_or("-".into()), field(&state, "wics_order").unwrap_or("-".into()), detail);
    }
    let runs = host.store().runs(&spoke::store::RunFilter { script: Some("sales_chain".into()), limit: 10_000, ..Default::default() })?;
    let failed = runs.iter().filter(|r| r.outcome.as_deref() == Some("error")).count();
    println!("\n{} script runs ({} failed, see `spoke runs list`); vendor requests: CycleSoftware {}, Lagerkoll {}, WICS {}; rate-limit violations: {}",
        runs.len(), failed, sandbox.cyclesoftware.request_count(), sandbox.lagerkoll.request_count(), sandbox.wics.request_count(),
        sandbox.cyclesoftware.violations() + sandbox.lagerkoll.violations() + sandbox.wics.violations());
    println!("The store is at {} — try: spoke --config {} events list", work_dir.join("spoke.db").display(), work_dir.join("spoke.toml").display());
    if interrupted {
        println!("(stopped by Ctrl-C)");
    } else if !all_terminal {
        println!("(stopped after {} s with leads still in progress)", timeout.as_secs());
    }
    let _ = stop_tx.send(());
    let _ = server.await;
    Ok(all_terminal)
}
