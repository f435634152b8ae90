//! Fault injection against each simulator: a real child process named by a
//! fault dies by SIGKILL after a 2xx write is committed and before the answer
//! arrives; refused writes and spent faults kill nothing.
use serde_json::{json, Value};
use spoke_sandbox::faults::{Firing, Outcome};
use spoke_sandbox::{cyclesoftware, lagerkoll, wics, Fault};
use std::os::unix::process::ExitStatusExt;
use std::process::{Child, Command};

/// A process for a fault to kill; killed and reaped on drop if it survived.
struct Victim(Child);

impl Victim {
    fn spawn() -> Victim {
        Victim(Command::new("sleep").arg("60").spawn().expect("spawn sleep"))
    }
    fn pid(&self) -> u32 {
        self.0.id()
    }
    /// Reap without waiting: the fault has already waited for the death
    /// before it answered, so a killed victim is a zombie by now.
    fn killed_by_sigkill(&mut self) -> bool {
        match self.0.try_wait().expect("waitpid") {
            Some(status) => status.signal() == Some(9),
            None => false,
        }
    }
    fn alive(&mut self) -> bool {
        self.0.try_wait().expect("waitpid").is_none()
    }
}

impl Drop for Victim {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A plain-HTTP client; reqwest still wants a TLS crypto provider installed.
fn client() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::new()
}

/// One vendor write: method, path, auth and body.
struct Write {
    url: String,
    path: &'static str,
    headers: Vec<(&'static str, String)>,
}

impl Write {
    async fn send(&self, body: &Value) -> u16 {
        let mut request = client().post(format!("{}{}", self.url, self.path)).header("content-type", "application/json");
        for (name, value) in &self.headers {
            request = request.header(*name, value);
        }
        request.body(body.to_string()).send().await.expect("the write is answered").status().as_u16()
    }
}

fn basic(user: &str, password: &str) -> String {
    use base64::Engine;
    format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}")))
}

async fn control(method: reqwest::Method, url: &str, body: Option<Value>) -> (u16, Value) {
    let mut request = client().request(method, format!("{url}/_control/faults"));
    if let Some(body) = body {
        request = request.header("content-type", "application/json").body(body.to_string());
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    (status, serde_json::from_slice(&response.bytes().await.unwrap()).unwrap())
}

fn outcomes(firings: &[Firing]) -> Vec<Outcome> {
    firings.iter().map(|f| f.outcome).collect()
}

#[tokio::test]
async fn wics_order_create_kills_the_armed_process_after_committing_over_http() {
    let sim = wics::Simulator::start(wics::Options::default()).await.unwrap();
    let write = Write { url: sim.url(), path: "/api/order", headers: vec![("authorization", basic("demo-apikey", "demo-apisecret"))] };
    let order = |reference: &str| json!({"reference": reference, "deliveryDate": "2026-12-03", "lines": [{"itemCode": "16082", "quantity": 1}]});
    let orders_with = |reference: &str| sim.state.state.lock().unwrap().orders.iter().filter(|o| o["reference"] == reference).count();
    let mut victim = Victim::spawn();

    let (status, armed) = control(reqwest::Method::POST, &sim.url(), Some(json!({"method": "POST", "path": "/api/order*", "pid": victim.pid()}))).await;
    assert_eq!(status, 200, "{armed}");
    assert_eq!(armed["times"], 1, "times defaults to 1: {armed}");

    // A refused write (no deliveryDate) commits nothing and kills nothing.
    assert_eq!(write.send(&json!({"reference": "REFUSED"})).await, 400);
    assert!(victim.alive(), "a 4xx answer must not fire");

    assert_eq!(write.send(&order("FAULT-1")).await, 201);
    assert!(victim.killed_by_sigkill(), "the armed process died by SIGKILL before the answer came");
    assert_eq!(orders_with("FAULT-1"), 1, "the order was committed before the kill");

    let (_, listed) = control(reqwest::Method::GET, &sim.url(), None).await;
    assert_eq!(listed["faults"][0]["fired"], 1, "{listed}");
    assert_eq!(listed["firings"], json!([{"fault": armed["id"], "pid": victim.pid(), "method": "POST", "path": "/api/order", "status": 201, "outcome": "killed"}]));

    // Spent: the next matching write is answered and fires nothing.
    assert_eq!(write.send(&order("FAULT-2")).await, 201);
    assert_eq!(control(reqwest::Method::GET, &sim.url(), None).await.1["firings"].as_array().unwrap().len(), 1);

    let (status, cleared) = control(reqwest::Method::DELETE, &sim.url(), None).await;
    assert_eq!((status, cleared), (200, json!({"cleared": 1})));
    assert_eq!(control(reqwest::Method::GET, &sim.url(), None).await.1, json!({"faults": [], "firings": []}));
}

#[tokio::test]
async fn cyclesoftware_lead_create_honours_times_per_fault() {
    let sim = cyclesoftware::Simulator::start(cyclesoftware::Options::default()).await.unwrap();
    let write = Write { url: sim.url(), path: "/api/v1/leads/create.json", headers: vec![("authorization", basic("demo", "demo-password"))] };
    let lead = |title: &str| json!({"store_id": "1-1", "type": "test_ride", "title": title, "customer": {"name": "NaamKlant"}});
    let leads_titled = |title: &str| sim.state.lock().data.leads.values().filter(|l| l["title"] == title).count();
    let (mut first, mut second) = (Victim::spawn(), Victim::spawn());
    sim.faults().arm(Fault::new("POST", "/api/v1/leads/create.json", first.pid())).unwrap();
    sim.faults().arm(Fault::new("POST", "/api/v1/leads/*", second.pid())).unwrap();

    // Unknown store: a 400, no lead, nobody killed.
    assert_eq!(write.send(&json!({"store_id": "nope", "type": "test_ride", "title": "x", "customer": {"name": "N"}})).await, 400);
    assert!(first.alive() && second.alive());

    // Each fault fires once, in the order armed.
    assert_eq!(write.send(&lead("lead-1")).await, 200);
    assert!(first.killed_by_sigkill());
    assert!(second.alive(), "one matching answer fires one fault");
    assert_eq!(leads_titled("lead-1"), 1);

    assert_eq!(write.send(&lead("lead-2")).await, 200);
    assert!(second.killed_by_sigkill(), "the first fault is spent, so the second fires");
    assert_eq!(leads_titled("lead-2"), 1);

    assert_eq!(write.send(&lead("lead-3")).await, 200, "both spent: answered as usual");
    assert_eq!(outcomes(&sim.faults().firings()), [Outcome::Killed, Outcome::Killed]);
    assert_eq!(sim.faults().list().iter().map(|a| a.fired).collect::<Vec<_>>(), [1, 1]);
}

#[tokio::test]
async fn lagerkoll_order_create_fires_only_on_matching_method_and_path() {
    let sim = lagerkoll::Simulator::start(lagerkoll::Options::default()).await.unwrap();
    let write = Write { url: sim.url(), path: "/v1/customer_orders", headers: vec![("store", "4711".into()), ("api_key", "lk-demo-key".into())] };
    let mut victim = Victim::spawn();
    let armed = sim.faults().arm(Fault::new("POST", "/v1/customer_orders", victim.pid()).times(2)).unwrap();

    // A GET of the same path and a 401 write do not fire.
    let listed = client().get(format!("{}/v1/customer_orders", sim.url())).header("store", "4711").header("api_key", "lk-demo-key").send().await.unwrap();
    assert_eq!(listed.status(), 200);
    let unauthorized = Write { headers: vec![("store", "4711".into()), ("api_key", "wrong".into())], ..write };
    assert_eq!(unauthorized.send(&json!({"customerId": 1})).await, 401);
    assert!(victim.alive());
    let write = Write { headers: vec![("store", "4711".into()), ("api_key", "lk-demo-key".into())], ..unauthorized };

    assert_eq!(write.send(&json!({"customerId": 1, "externalOrderId": "FAULT-1"})).await, 200);
    assert!(victim.killed_by_sigkill());
    let committed = sim.inspect(|s| s.orders.values().filter(|o| o.doc.get("externalOrderId") == Some(&json!("FAULT-1"))).count());
    assert_eq!(committed, 1);

    // times = 2: the second answer fires too, finds its process gone, and sends nothing.
    assert_eq!(write.send(&json!({"customerId": 1})).await, 200);
    assert_eq!(write.send(&json!({"customerId": 1})).await, 200);
    assert_eq!(outcomes(&sim.faults().firings()), [Outcome::Killed, Outcome::AlreadyGone]);
    assert_eq!(sim.faults().list()[0].id, armed.id);
    assert_eq!(sim.faults().list()[0].fired, 2);
}

#[tokio::test]
async fn control_api_refuses_bad_faults_by_field_and_never_fires_on_control_requests() {
    let sim = wics::Simulator::start(wics::Options::default()).await.unwrap();
    let mut victim = Victim::spawn();
    let pid = victim.pid();
    for (body, field) in [
        (json!({"method": "YANK", "path": "/api/order", "pid": pid}), "method"),
        (json!({"method": "POST", "path": "", "pid": pid}), "path"),
        (json!({"method": "POST", "path": "/api/order", "pid": 1}), "pid"),
        (json!({"method": "POST", "path": "/api/order", "pid": -1}), "pid"),
        (json!({"method": "POST", "path": "/api/order", "pid": std::process::id()}), "pid"),
        (json!({"method": "POST", "path": "/api/order"}), "pid"),
        (json!({"method": "POST", "path": "/api/order", "pid": pid, "times": 0}), "times"),
    ] {
        let (status, answer) = control(reqwest::Method::POST, &sim.url(), Some(body.clone())).await;
        assert_eq!((status, answer["field"].as_str()), (400, Some(field)), "{body} -> {answer}");
        assert!(answer["error"].as_str().is_some_and(|e| e.contains(field)), "the message names {field}: {answer}");
    }
    assert!(sim.faults().list().is_empty(), "nothing refused was armed");

    // A pattern that matches everything still spares the harness's own control calls.
    sim.faults().arm(Fault::new("POST", "*", pid)).unwrap();
    let advanced = client().post(format!("{}/_control/advance", sim.url())).header("content-type", "application/json").body(r#"{"ms": 1}"#).send().await.unwrap();
    assert_eq!(advanced.status(), 200);
    assert!(victim.alive());
}
