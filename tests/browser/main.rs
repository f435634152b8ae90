//! The status page in a real browser (issue 19): headless Chromium, driven
//! over WebDriver by chromedriver (Debian's `chromium` and
//! `chromium-driver`, installed by `cargo xtask test`), against a host with
//! a connector budget, a dead event and a flow in doubt. The page must show
//! the budget, replay the dead event and resolve the flow; screenshots go
//! to `target/screenshots/`.
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{json, Value};
use spoke_tests::{eventually, sign, TestHost, ADMIN_TOKEN};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

const SCRIPT: &str = r#"
on("probe", "PING", "ping");
flow("lead_flow");

fn ping(event) { throw "no subscriber can take " + event.payload.id }

fn lead_flow() {
    let lead = step("create_lead", || probe::write(#{ method: "POST", path: "/leads/" + flow_key() }));
    step("notify", || probe::write(#{ method: "POST", path: "/notify/" + flow_key() }));
    lead
}
"#;

fn probe_connector(url: &str, scripts: &std::path::Path) -> String {
    format!("scripts_dir = {:?}\n[dispatch]\nmax_attempts = 1\n{}", scripts.display().to_string(), spoke_tests::probe_connector(url, "hook-secret"))
}

/// chromedriver on a free port, killed on drop.
struct Driver {
    child: Child,
    url: String,
}

impl Driver {
    async fn start() -> Driver {
        for tool in [CHROMIUM, CHROMEDRIVER] {
            assert!(std::path::Path::new(tool).exists(), "{tool} is missing: `cargo xtask test` installs Debian's chromium and chromium-driver (apt-get install chromium chromium-driver)");
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let child = Command::new(CHROMEDRIVER).arg(format!("--port={port}")).stdout(Stdio::null()).stderr(Stdio::null()).spawn().expect("starting chromedriver");
        let url = format!("http://127.0.0.1:{port}");
        let up = eventually(20, || std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()).await;
        assert!(up, "chromedriver did not listen on {port}");
        Driver { child, url }
    }

    async fn browser(&self, profile: &std::path::Path) -> Client {
        // The flags the machine notes give: no sandbox as root, and nothing
        // that reaches for the network beyond loopback.
        let args = [
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--window-size=1280,1000",
        ];
        let mut args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        args.push(format!("--user-data-dir={}", profile.display()));
        let mut caps = serde_json::Map::new();
        caps.insert("goog:chromeOptions".into(), json!({ "binary": CHROMIUM, "args": args }));
        ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new()).capabilities(caps).connect(&self.url).await.expect("a browser session")
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn screenshots() -> PathBuf {
    let dir = spoke_tests::workspace().join("target/screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

async fn shot(b: &Client, name: &str) {
    let png = b.screenshot().await.unwrap();
    std::fs::write(screenshots().join(name), png).unwrap();
}

async fn wait_for(b: &Client, css: &str) -> fantoccini::elements::Element {
    b.wait().at_most(Duration::from_secs(15)).for_element(Locator::Css(css)).await.unwrap_or_else(|e| panic!("{css} did not appear: {e}"))
}

/// Wait until the element's text contains `want`.
async fn wait_text(b: &Client, css: &str, want: &str) -> String {
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    loop {
        let text = match b.find(Locator::Css(css)).await {
            Ok(e) => e.text().await.unwrap_or_default(),
            Err(_) => String::new(),
        };
        if text.contains(want) {
            return text;
        }
        assert!(std::time::Instant::now() < deadline, "{css} never said {want:?}; it says {text:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_status_page_shows_a_budget_replays_a_dead_event_and_resolves_a_flow() {
    spoke::install_tls();
    let vendor = spoke_sandbox::serve::serve(axum::Router::new().fallback(|| async { "ok" }), 0).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let scripts = dir.path().join("scripts");
    std::fs::create_dir(&scripts).unwrap();
    std::fs::write(scripts.join("leads.rhai"), SCRIPT).unwrap();
    let h = TestHost::start(&probe_connector(&vendor.url(), &scripts)).await.unwrap();
    let store = h.host.store().clone();
    // A host killed right after sending the lead left this behind.
    let now = spoke::store::now_ms();
    let (flow, _) = store.flow_start("leads", "lead_flow", "LEAD-42", &Value::Null, 1, now).unwrap();
    store.flow_step_begin(flow, 0, "step", "create_lead", "started", Some(&json!({"write_sent": true})), now).unwrap();
    let (served, _scripts, _w) = h.serve_with_scripts().await;
    // A ping no subscriber can take: dead after its one attempt.
    let body = serde_json::to_vec(&json!({ "id": "P-7" })).unwrap();
    let r = reqwest::Client::new().post(format!("{}/hooks/probe", served.url)).header("x-signature", sign("hook-secret", &body)).body(body).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(eventually(15, || store.list_events(&Default::default()).unwrap().iter().any(|e| e.status == "dead")).await);
    assert!(eventually(15, || store.flow(flow).unwrap().unwrap().status == "in_doubt").await);
    let seq = store.list_events(&Default::default()).unwrap()[0].seq;
    // Some budget spent, so the page shows a live figure below the limit.
    h.call("probe", "http", json!({ "method": "GET", "path": "/x" })).await.unwrap();

    let driver = Driver::start().await;
    let profile = tempfile::tempdir().unwrap();
    let b = driver.browser(profile.path()).await;
    let result = futures::FutureExt::catch_unwind(std::panic::AssertUnwindSafe(async {
        b.goto(&format!("{}/ui", served.admin_url)).await.unwrap();
        // Nothing without the token.
        wait_for(&b, "#login:not([hidden])").await;
        assert!(b.find(Locator::Css("#connectors")).await.is_err(), "no data before the token");
        wait_for(&b, "#token").await.send_keys(ADMIN_TOKEN).await.unwrap();
        b.find(Locator::Css("#signin")).await.unwrap().click().await.unwrap();

        // The connector's budget, live from the ledger.
        let row = wait_text(&b, "#connector-probe tr[data-bucket='general']", "general").await;
        let general = h.host.connectors()[0].policies.iter().find(|(p, _)| p.name == "general").map(|(p, _)| p.windows[0].limit).unwrap();
        let left: u32 = row.split_whitespace().nth(1).and_then(|n| n.parse().ok()).unwrap_or_else(|| panic!("no figure in {row:?}"));
        assert!(left < general, "one request spent: {left} of {general} left ({row})");
        let script = wait_text(&b, "#script-leads", "leads").await;
        assert!(script.contains("v1") && script.contains("probe/PING"), "the script's version and triggers: {script:?}");
        shot(&b, "status-overview.png").await;

        // Replay the dead event.
        b.goto(&format!("{}/ui#events?status=dead", served.admin_url)).await.unwrap();
        wait_for(&b, &format!("tr[data-event='{seq}'] button[data-action='replay']")).await.click().await.unwrap();
        wait_text(&b, "#message", "pending again").await;
        shot(&b, "status-events.png").await;

        // Resolve the flow in doubt: the lead was created, with this id.
        b.goto(&format!("{}/ui#flows?status=in_doubt", served.admin_url)).await.unwrap();
        wait_for(&b, &format!("tr[data-flow='{flow}']")).await.click().await.unwrap();
        wait_for(&b, "#resolve-value").await.send_keys("{\"status\": 200, \"uuid\": \"from-the-dealer\"}").await.unwrap();
        b.find(Locator::Css("button[data-action='resolve-value']")).await.unwrap().click().await.unwrap();
        wait_text(&b, "#message", "takes the given value").await;
        shot(&b, "status-flow-resolved.png").await;

        // A phone-sized screen still shows the connectors.
        b.set_window_size(390, 844).await.unwrap();
        b.goto(&format!("{}/ui#overview", served.admin_url)).await.unwrap();
        wait_text(&b, "#connector-probe", "general").await;
        shot(&b, "status-phone.png").await;
    }))
    .await;
    // Close the browser whatever happened, then report.
    let _ = b.close().await;
    if let Err(panic) = result {
        std::panic::resume_unwind(panic);
    }

    assert!(eventually(15, || store.event(seq).unwrap().unwrap().attempts.len() == 2).await, "the replay from the page was attempted again");
    assert!(eventually(15, || store.flow(flow).unwrap().unwrap().status == "done").await, "{:?}", store.flow(flow));
    assert_eq!(store.flow(flow).unwrap().unwrap().result.unwrap()["uuid"], "from-the-dealer");
    for name in ["status-overview.png", "status-events.png", "status-flow-resolved.png", "status-phone.png"] {
        let png = std::fs::read(screenshots().join(name)).unwrap();
        assert!(png.starts_with(b"\x89PNG") && png.len() > 5_000, "{name} is a real screenshot");
    }
}
