//! 1,000 leads open at once against CycleSoftware's budget, on a clock
//! scaled 60×: the simulator's minute is 1 s and its day 1,440 s, and the
//! host is told the same windows. The flows ask about every open lead
//! within the poll share, the vendor never answers 429, and once the
//! dealer decides, every flow picks its decision up.
use super::{client, post_form, script_dir, SCRIPT};
use serde_json::{json, Value};
use spoke::flow::FlowFilter;
use spoke_sandbox::{Ports, Sandbox};
use spoke_tests::{eventually, TestHost};
use std::time::{Duration, Instant};

const LEADS: usize = 1000;
/// Scaled: 10 minutes open.
const OPEN: Duration = Duration::from_secs(10);

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_thousand_open_leads_stay_within_cyclesoftwares_budget_and_every_decision_is_picked_up() {
    let sandbox = Sandbox::start(Ports::default(), None).await.unwrap();
    sandbox.cyclesoftware.set_limits(360, 15, 15_000, 1_000, 1_440_000);
    let connectors = sandbox.connectors_toml()
        + "\n[connectors.cyclesoftware.rate_limits.general]\nwindows = [{ limit = 360, seconds = 1 }, { limit = 15000, seconds = 1440 }]\n";
    let (_dir, scripts) = script_dir();
    // The default poll intervals (30 s, up to 15 min), scaled.
    let h = TestHost::start(&format!("scripts_dir = {:?}\n[flows]\npoll_every_secs = 0.5\npoll_max_every_secs = 15.0\nmax_concurrent = 32\n\n{connectors}", scripts.display().to_string())).await.unwrap();
    let (served, _loaded, _watcher) = h.serve_with_scripts().await;
    let client = client();
    let started = Instant::now();
    let mut keys = Vec::new();
    for chunk in (0..LEADS).collect::<Vec<_>>().chunks(50) {
        let posts = chunk.iter().map(|i| {
            let form = json!({
                "form_id": format!("T-{i:04}"), "name": format!("Klant {i}"), "email": format!("t{i}@example.nl"),
                "address": { "street": "Dorpsstraat", "house_number": "1", "zipcode": "1234 AB", "city": "Utrecht", "country": "NL" },
                "article": "A-100", "quantity": 1,
            });
            let (client, admin) = (client.clone(), served.admin_url.clone());
            async move { post_form(&client, &admin, &form).await.unwrap() }
        });
        keys.extend(futures::future::join_all(posts).await);
    }
    let state = |key: &str| h.host.store().state_get(SCRIPT, key).unwrap().map(|t| serde_json::from_str::<Value>(&t).unwrap());
    assert!(eventually(120, || keys.iter().all(|k| state(&format!("form:{k}")).is_some())).await, "not every lead was created");
    let uuids: Vec<String> = keys.iter().map(|k| state(&format!("form:{k}")).unwrap().as_str().unwrap().to_string()).collect();
    let created_at = Instant::now();
    eprintln!("{LEADS} leads created in {:.1} s", (created_at - started).as_secs_f64());

    // Open for 10 (scaled) minutes: the flows poll within the budget.
    tokio::time::sleep(OPEN).await;
    let polls = sandbox.cyclesoftware.request_count() - LEADS as u64;
    let elapsed = started.elapsed().as_secs_f64();
    eprintln!("{polls} polls in the {elapsed:.1} s (scaled minutes) since the first lead; {:.1} s of them with all {LEADS} open", OPEN.as_secs_f64());
    // The poll share of the day (0.5 × 15,000 a scaled day of 1,440 s) plus
    // its burst (0.5 × 360) bounds the polls of any stretch, and the first
    // wave (max_concurrent flows) asks before the pacer has learned which
    // operation the poll calls.
    let bound = 180.0 + 7_500.0 / 1_440.0 * elapsed + 32.0;
    assert!((polls as f64) <= bound, "{polls} polls in {elapsed:.1} s; the poll share allows {bound:.0}");
    assert_eq!(sandbox.cyclesoftware.violations(), 0, "CycleSoftware answered 429");

    // The dealer decides every lead; every flow picks it up.
    for uuid in &uuids {
        sandbox.cyclesoftware.set_lead_status(uuid, "declined").unwrap();
    }
    let decided_at = Instant::now();
    let all_done = || h.host.store().flows(&FlowFilter { script: Some(SCRIPT.into()), status: Some("done".into()), limit: 2 * LEADS, ..Default::default() }).unwrap().len() == LEADS;
    assert!(eventually(600, all_done).await, "not every decision was picked up: {:?}", h.host.store().flow_counts().unwrap());
    let took = decided_at.elapsed();
    let requests = sandbox.cyclesoftware.request_count();
    eprintln!("every decision picked up {:.1} s after the dealer decided (scaled {:.0} min); CycleSoftware requests in all: {requests}", took.as_secs_f64(), took.as_secs_f64());
    assert!(uuids.iter().all(|u| state(&format!("lead:{u}")).is_some_and(|l| l["status"] == "declined")));
    assert_eq!(sandbox.cyclesoftware.violations(), 0, "CycleSoftware answered 429");
    // Within the day's limit, with the rest of the day's budget left for others.
    assert!(requests < 15_000, "{requests} requests");
}
