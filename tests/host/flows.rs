//! Durable flows: replay, durable waits, events routed to the flow that
//! waits for them, steps in doubt, and script changes under running flows.
use crate::recorder::Recorder;
use serde_json::json;
use spoke::flow::{FlowFilter, Resolution};
use spoke_tests::{eventually, TestHost};
use std::path::Path;

fn config(recorder: &str, scripts: &Path) -> String {
    crate::probe(recorder, &format!("scripts_dir = {:?}\n", scripts.display().to_string()))
}

/// Save the way editors do: write a temp file, rename over the target.
fn save(path: &Path, text: &str) {
    let tmp = path.with_extension("rhai.tmp~");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

fn hits(r: &Recorder, path: &str) -> usize {
    r.seen().iter().filter(|s| s.path == format!("/api{path}")).count()
}

fn flow(h: &TestHost, id: i64) -> spoke::flow::FlowRecord {
    h.host.store().flow(id).unwrap().expect("the flow exists")
}

async fn start(scripts: &spoke::script::Scripts, script: &str, key: &str) -> i64 {
    let id = scripts.run(script, "begin", Some(json!({ "key": key })), "test").await.unwrap();
    id.as_i64().expect("start_flow returns the flow id")
}

const ORDER: &str = r#"
flow("order_flow");

fn begin(arg) { start_flow("order_flow", arg.key, arg) }

fn order_flow(input) {
    let created = step("create", || probe::write(#{ method: "POST", path: "/create/" + flow_key() }));
    sleep("300ms");
    let confirmed = step("confirm", || probe::write(#{ method: "POST", path: "/confirm/" + flow_key() }));
    #{ created: created.status, confirmed: confirmed.status, key: input.key }
}
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flow_runs_each_step_once_across_its_wakes() {
    let r = Recorder::start().await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("orders.rhai"), ORDER).unwrap();
    let h = TestHost::start(&config(&r.url, dir.path())).await.unwrap();
    let (_served, scripts, _w) = h.serve_with_scripts().await;

    let id = start(&scripts, "orders", "SO-1").await;
    assert_eq!(start(&scripts, "orders", "SO-1").await, id, "one flow per key: starting it again names the same flow");
    assert!(eventually(20, || flow(&h, id).status == "done").await, "{:?}", flow(&h, id));
    let f = flow(&h, id);
    assert_eq!(f.result, Some(json!({"created": 200, "confirmed": 200, "key": "SO-1"})));
    assert!(f.wakes >= 2, "the sleep ended a wake and the flow resumed: {} wakes", f.wakes);
    assert_eq!(hits(&r, "/create/SO-1"), 1, "a replayed step is not sent again");
    assert_eq!(hits(&r, "/confirm/SO-1"), 1);
    let calls = h.host.store().flow_steps(id).unwrap();
    let kinds: Vec<_> = calls.iter().map(|c| (c.kind.as_str(), c.name.as_str(), c.status.as_str())).collect();
    assert_eq!(kinds, vec![("step", "create", "done"), ("sleep", "sleep", "done"), ("step", "confirm", "done")]);
    let listed = h.host.store().flows(&FlowFilter { script: Some("orders".into()), ..Default::default() }).unwrap();
    assert_eq!(listed.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sleeping_flow_resumes_in_the_next_host_on_the_same_store() {
    let r = Recorder::start().await;
    let dir = tempfile::tempdir().unwrap();
    let scripts_dir = tempfile::tempdir().unwrap();
    std::fs::write(scripts_dir.path().join("orders.rhai"), ORDER.replace("300ms", "1500ms")).unwrap();
    let text = config(&r.url, scripts_dir.path());
    let h = TestHost::start_in(dir, &text).await.unwrap();
    let (served, scripts, w) = h.serve_with_scripts().await;
    let id = start(&scripts, "orders", "SO-2").await;
    assert!(eventually(10, || flow(&h, id).current_step.as_deref() == Some("sleep #1")).await, "{:?}", flow(&h, id));
    assert_eq!(flow(&h, id).status, "waiting");
    // Stop this host while the flow sleeps.
    drop((served, scripts, w));
    let TestHost { host, dir, .. } = h;
    drop(host);

    let h = TestHost::start_in(dir, &text).await.unwrap();
    let (_served, _scripts, _w) = h.serve_with_scripts().await;
    assert!(eventually(20, || flow(&h, id).status == "done").await, "{:?}", flow(&h, id));
    assert_eq!(hits(&r, "/create/SO-2"), 1, "the step done before the restart was replayed, not repeated");
    assert_eq!(hits(&r, "/confirm/SO-2"), 1);
}

const SHIPPING: &str = r#"
flow("ship_flow", ["probe/PING"]);
on("probe", "PING", "ignore");

fn ignore(event) {}

fn begin(arg) { start_flow("ship_flow", arg.key) }

fn ship_flow() {
    let first = wait_event("probe", "PING", #{ "order.ref": flow_key() }, "30s");
    let second = wait_event("probe", "PING", #{ "order.ref": flow_key() }, "200ms");
    #{ got: first.payload.n, id: first.id, timed_out: second == () }
}
"#;

async fn ping(client: &reqwest::Client, url: &str, n: i64, reference: &str) {
    let body = json!({ "id": n, "n": n, "order": { "ref": reference } }).to_string().into_bytes();
    let status = client.post(format!("{url}/hooks/probe")).header("x-signature", spoke_tests::sign("hook-secret", &body)).body(body).send().await.unwrap().status();
    assert_eq!(status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wait_event_takes_the_event_that_matches_even_one_that_came_first() {
    let r = Recorder::start().await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("ship.rhai"), SHIPPING).unwrap();
    let h = TestHost::start(&config(&r.url, dir.path())).await.unwrap();
    let (served, scripts, _w) = h.serve_with_scripts().await;
    let client = reqwest::Client::new();

    // B's event arrives before B's flow waits: it is kept for it.
    ping(&client, &served.url, 1, "B").await;
    let a = start(&scripts, "ship", "A").await;
    assert!(eventually(10, || flow(&h, a).current_step.as_deref() == Some("probe/PING")).await, "{:?}", flow(&h, a));
    let b = start(&scripts, "ship", "B").await;
    ping(&client, &served.url, 2, "C").await;
    ping(&client, &served.url, 3, "A").await;
    assert!(eventually(20, || flow(&h, a).status == "done" && flow(&h, b).status == "done").await, "{:?} {:?}", flow(&h, a), flow(&h, b));
    assert_eq!(flow(&h, a).result.unwrap()["got"], json!(3), "A took the event for A only");
    assert_eq!(flow(&h, b).result.unwrap()["got"], json!(1), "B took the event that came before it waited");
    assert_eq!(flow(&h, a).result.unwrap()["timed_out"], json!(true), "a wait with nothing to take ends at its timeout with ()");
}

const DOUBT: &str = r#"
flow("lead_flow");
flow("checked_flow");

fn begin(arg) { start_flow(arg.flow, arg.key) }

fn lead_flow() {
    let lead = step("create_lead", || probe::write(#{ method: "POST", path: "/leads/" + flow_key() }));
    step("notify", || probe::write(#{ method: "POST", path: "/notify/" + flow_key() }));
    lead
}

fn checked_flow() {
    let order = step("create_order", || probe::write(#{ method: "POST", path: "/orders/" + flow_key() }),
                     || { let found = probe::http(#{ method: "GET", path: "/lookup/" + flow_key() }); #{ found: found.body } });
    order
}
"#;

/// A step whose intent was stored but not its result (the host died
/// between the two): without a check the flow waits for an operator; with
/// one it looks the result up. Either way nothing is sent twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interrupted_step_is_checked_or_parked_in_doubt_never_repeated() {
    let r = Recorder::start().await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("leads.rhai"), DOUBT).unwrap();
    let h = TestHost::start(&config(&r.url, dir.path())).await.unwrap();
    let store = h.host.store().clone();
    // What a host killed right after sending leaves behind: the intent, and
    // the mark that its write left.
    let sent = json!({"write_sent": true});
    let now = spoke::store::now_ms();
    let (lead, _) = store.flow_start("leads", "lead_flow", "L-1", &json!(null), 1, now).unwrap();
    store.flow_step_begin(lead, 0, "step", "create_lead", "started", Some(&sent), now).unwrap();
    let (order, _) = store.flow_start("leads", "checked_flow", "SO-9", &json!(null), 1, now).unwrap();
    store.flow_step_begin(order, 0, "step", "create_order", "started", Some(&sent), now).unwrap();
    let (_served, _scripts, _w) = h.serve_with_scripts().await;

    assert!(eventually(10, || flow(&h, lead).status == "in_doubt").await, "{:?}", flow(&h, lead));
    let f = flow(&h, lead);
    assert_eq!(f.current_step.as_deref(), Some("create_lead"));
    assert!(f.waiting_for.as_ref().unwrap()["resolve"].as_str().unwrap().contains("spoke flows resolve"), "{:?}", f.waiting_for);
    assert!(eventually(10, || flow(&h, order).status == "done").await, "{:?}", flow(&h, order));
    assert_eq!(flow(&h, order).result, Some(json!({"found": "ok"})), "the check's answer is the step's result");
    assert_eq!(hits(&r, "/orders/SO-9"), 0, "a step its check found is not sent again");

    // Still in doubt a while later, and nothing was sent.
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    assert_eq!(flow(&h, lead).status, "in_doubt");
    assert_eq!(hits(&r, "/leads/L-1"), 0);
    assert!(store.flow_retry(lead, now).is_err(), "an in-doubt flow is resolved, not retried");

    store.flow_resolve(lead, &Resolution::Value(json!({"status": 200, "uuid": "from-the-dealer"})), spoke::store::now_ms()).unwrap();
    assert!(eventually(10, || flow(&h, lead).status == "done").await, "{:?}", flow(&h, lead));
    assert_eq!(flow(&h, lead).result.unwrap()["uuid"], json!("from-the-dealer"));
    assert_eq!(hits(&r, "/leads/L-1"), 0, "the operator said it happened");
    assert_eq!(hits(&r, "/notify/L-1"), 1, "the flow went on after the resolved step");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_can_say_run_it_again() {
    let r = Recorder::start().await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("leads.rhai"), DOUBT).unwrap();
    let h = TestHost::start(&config(&r.url, dir.path())).await.unwrap();
    let store = h.host.store().clone();
    let now = spoke::store::now_ms();
    let sent = json!({"write_sent": true});
    let (lead, _) = store.flow_start("leads", "lead_flow", "L-2", &json!(null), 1, now).unwrap();
    store.flow_step_begin(lead, 0, "step", "create_lead", "started", Some(&sent), now).unwrap();
    // Killed after the intent but before the write left: simply run again.
    let (early, _) = store.flow_start("leads", "lead_flow", "L-3", &json!(null), 1, now).unwrap();
    store.flow_step_begin(early, 0, "step", "create_lead", "started", None, now).unwrap();
    let (_served, _scripts, _w) = h.serve_with_scripts().await;
    assert!(eventually(10, || flow(&h, lead).status == "in_doubt").await);
    assert!(eventually(10, || flow(&h, early).status == "done").await, "{:?}", flow(&h, early));
    assert_eq!(hits(&r, "/leads/L-3"), 1, "a step interrupted before its write left runs again, without an operator");
    store.flow_resolve(lead, &Resolution::Rerun, spoke::store::now_ms()).unwrap();
    assert!(eventually(10, || flow(&h, lead).status == "done").await, "{:?}", flow(&h, lead));
    assert_eq!(hits(&r, "/leads/L-2"), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_script_change_that_breaks_replay_fails_the_flow_with_both_names() {
    let r = Recorder::start().await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("orders.rhai");
    std::fs::write(&path, ORDER.replace("300ms", "2s")).unwrap();
    let h = TestHost::start(&config(&r.url, dir.path())).await.unwrap();
    let (_served, scripts, _w) = h.serve_with_scripts().await;
    let id = start(&scripts, "orders", "SO-3").await;
    assert!(eventually(10, || flow(&h, id).current_step.as_deref() == Some("sleep #1")).await);
    // Renaming a step the flow has passed breaks replay.
    save(&path, &ORDER.replace("300ms", "2s").replace("step(\"create\"", "step(\"create_order\""));
    assert!(eventually(10, || scripts.current("orders").unwrap().version == 2).await);
    assert!(eventually(20, || flow(&h, id).status == "failed").await, "{:?}", flow(&h, id));
    let error = flow(&h, id).last_error.unwrap();
    assert!(error.contains("the script changed under this flow") && error.contains("\"create\"") && error.contains("\"create_order\""), "{error}");
    assert_eq!(hits(&r, "/create/SO-3"), 1);

    // Put it back and retry: the flow finishes without repeating the step.
    save(&path, &ORDER.replace("300ms", "2s"));
    assert!(eventually(10, || scripts.current("orders").unwrap().version == 3).await);
    h.host.store().flow_retry(id, spoke::store::now_ms()).unwrap();
    assert!(eventually(20, || flow(&h, id).status == "done").await, "{:?}", flow(&h, id));
    assert_eq!(hits(&r, "/create/SO-3"), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_outside_a_step_is_refused_inside_a_flow() {
    let r = Recorder::start().await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("bad.rhai"),
        "flow(\"bad_flow\");\nfn begin(arg) { start_flow(\"bad_flow\", arg.key) }\nfn bad_flow() { probe::http(#{ method: \"GET\", path: \"/read\" }); probe::write(#{ method: \"POST\", path: \"/write\" }) }\nfn other() { start_flow(\"nope\", \"k\") }\n",
    )
    .unwrap();
    let h = TestHost::start(&config(&r.url, dir.path())).await.unwrap();
    let (_served, scripts, _w) = h.serve_with_scripts().await;
    let id = start(&scripts, "bad", "K").await;
    assert!(eventually(10, || flow(&h, id).status == "failed").await, "{:?}", flow(&h, id));
    let error = flow(&h, id).last_error.unwrap();
    assert!(error.contains("probe::write changes data at the vendor") && error.contains("step("), "{error}");
    assert_eq!(hits(&r, "/write"), 0);
    assert_eq!(hits(&r, "/read"), 1, "reads are fine outside steps");
    // Starting an undeclared flow names what is declared.
    let e = scripts.run("bad", "other", None, "test").await.unwrap_err();
    assert!(e.message.contains("declares no flow(\"nope\")") && e.message.contains("bad_flow"), "{e}");
}

const POLLING: &str = r#"
flow("decision_flow");

fn begin(arg) { start_flow("decision_flow", arg.key) }

fn decision_flow() {
    let answer = poll("decision", || probe::http(#{ method: "GET", path: "/status/" + flow_key() }),
                      |reply| state::get("decided") == true, #{ every: "100ms", max_every: "400ms", timeout: "1h" });
    answer.status
}
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn poll_asks_until_the_condition_holds_backing_off() {
    let r = Recorder::start().await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("decide.rhai"), POLLING).unwrap();
    let h = TestHost::start(&config(&r.url, dir.path())).await.unwrap();
    let (_served, scripts, _w) = h.serve_with_scripts().await;
    let id = start(&scripts, "decide", "L-5").await;
    assert!(eventually(10, || hits(&r, "/status/L-5") >= 3).await);
    assert_eq!(flow(&h, id).status, "waiting");
    assert_eq!(flow(&h, id).waiting_for.unwrap()["poll"], json!("decision"));
    h.host.store().state_set("decide", "decided", "true", spoke::store::now_ms()).unwrap();
    assert!(eventually(10, || flow(&h, id).status == "done").await, "{:?}", flow(&h, id));
    assert_eq!(flow(&h, id).result, Some(json!(200)));
    let asked = r.seen().into_iter().filter(|s| s.path == "/api/status/L-5").map(|s| s.at).collect::<Vec<_>>();
    // Backing off: the gaps grow (100, 200, 400, 400 ms ...), never shorter than the first.
    let gaps: Vec<_> = asked.windows(2).map(|w| w[1] - w[0]).collect();
    assert!(gaps.iter().all(|g| *g >= std::time::Duration::from_millis(90)), "{gaps:?}");
}
