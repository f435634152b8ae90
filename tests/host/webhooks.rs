//! Webhook ingress, the event store and dispatch, over real HTTP.
use serde_json::json;
use spoke_tests::{eventually, sign, Probe, TestHost};
use std::sync::atomic::Ordering;
use std::sync::Arc;

fn config(extra: &str) -> String {
    format!(
        "{extra}\n[connectors.probe]\nplugin = \"probe\"\nbase_url = \"http://127.0.0.1:9\"\ncredentials = {{ webhook_secret = \"value:hook-secret\" }}\n"
    )
}

async fn post(client: &reqwest::Client, url: &str, body: &[u8], signature: &str) -> u16 {
    client.post(url).header("x-signature", signature).body(body.to_vec()).send().await.unwrap().status().as_u16()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thousand_deliveries_with_duplicates_and_forgeries() {
    let h = TestHost::start(&config("")).await.unwrap();
    let sub = Probe::new("test", &["probe/PING"], 0);
    h.host.dispatcher().subscribe(sub.clone());
    let served = h.serve().await;
    let url = format!("{}/hooks/probe", served.url);
    let client = reqwest::Client::new();

    // 850 genuine, 100 redeliveries of genuine ones, 50 forged.
    let mut sends = Vec::new();
    for i in 0..850 {
        let body = json!({"id": i}).to_string().into_bytes();
        sends.push((body.clone(), sign("hook-secret", &body), 200));
        if i % 17 == 0 && sends.len() < 1000 {
            sends.push((body.clone(), sign("hook-secret", &body), 200));
        }
    }
    while sends.len() < 950 {
        let body = json!({"id": sends.len() % 850}).to_string().into_bytes();
        sends.push((body.clone(), sign("hook-secret", &body), 200));
    }
    for i in 0..50 {
        let body = json!({"id": 10_000 + i}).to_string().into_bytes();
        sends.push((body.clone(), sign("wrong-secret", &body), 401));
    }
    assert_eq!(sends.len(), 1000);
    let results = futures::future::join_all(sends.iter().map(|(body, sig, _)| post(&client, &url, body, sig))).await;
    for ((_, _, want), got) in sends.iter().zip(&results) {
        assert_eq!(got, want);
    }

    assert!(eventually(20, || sub.delivered().len() >= 850).await, "delivered {}", sub.delivered().len());
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let mut ids: Vec<i64> = sub.delivered().iter().map(|e| e.payload["id"].as_i64().unwrap()).collect();
    ids.sort();
    assert_eq!(ids, (0..850).collect::<Vec<_>>(), "every genuine event exactly once");
    let store = h.host.store();
    let stored = store.list_events(&spoke::store::EventFilter { limit: 5000, ..Default::default() }).unwrap();
    assert_eq!(stored.len(), 850);
    assert!(stored.iter().all(|e| e.status == "delivered"));
    // Refusals are written off the request path: soon, not before the answer.
    assert!(eventually(10, || store.refusals(5000).unwrap().len() == 50).await, "refusals recorded: {}", store.refusals(5000).unwrap().len());
    let refused = store.refusals(5000).unwrap();
    assert!(refused.iter().all(|r| r.http_status == 401 && r.reason.contains("x-signature") && r.body.contains("\"id\":100")));
    assert!(refused.iter().all(|r| r.headers.to_string().contains("[redacted]")), "the signature header is not stored");
}

#[tokio::test]
async fn answers_say_what_was_wrong_and_are_recorded() {
    let h = TestHost::start(&config("[limits]\nmax_webhook_bytes = 1000\n")).await.unwrap();
    let served = h.serve().await;
    let client = reqwest::Client::new();
    let url = format!("{}/hooks/probe", served.url);
    let not_json = b"not json".to_vec();
    assert_eq!(post(&client, &url, &not_json, &sign("hook-secret", &not_json)).await, 400);
    let big = vec![b' '; 5000];
    assert_eq!(post(&client, &url, &big, &sign("hook-secret", &big)).await, 413);
    assert_eq!(post(&client, &format!("{}/hooks/nobody", served.url), b"{}", "x").await, 404);
    let ok = br#"{"id":1}"#.to_vec();
    assert_eq!(post(&client, &url, &ok, &sign("hook-secret", &ok)).await, 200);
    assert_eq!(post(&client, &url, &ok, &sign("hook-secret", &ok)).await, 200, "a duplicate is answered 200");
    let store = h.host.store().clone();
    assert!(eventually(10, || store.refusals(10).unwrap().len() == 3).await);
    let refused = store.refusals(10).unwrap();
    let statuses: Vec<u16> = refused.iter().map(|r| r.http_status).collect();
    assert_eq!(statuses, [404, 413, 400]);
    assert!(refused[2].reason.contains("not JSON") && refused[2].body == "not json");
    assert!(refused[1].reason.contains("1000 bytes"));
    assert_eq!(h.host.store().list_events(&Default::default()).unwrap().len(), 1);
}

#[tokio::test]
async fn store_failure_answers_503() {
    let h = TestHost::start(&config("")).await.unwrap();
    let ingress = Arc::new(spoke::webhook::Ingress {
        host: h.host.clone(),
        committer: spoke::webhook::Committer::start_with(|_| anyhow::bail!("disk gone")),
        dispatcher: h.host.dispatcher().clone(),
        max_body: 1 << 20,
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hooks/probe", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, spoke::webhook::router(ingress)).await });
    let body = br#"{"id":1}"#.to_vec();
    assert_eq!(post(&reqwest::Client::new(), &url, &body, &sign("hook-secret", &body)).await, 503);
}

#[tokio::test]
async fn failing_subscriber_is_retried_then_dead_lettered_then_replayed() {
    let h = TestHost::start(&config("[dispatch]\nmax_attempts = 3\nfirst_backoff_secs = 0.05\nmax_backoff_secs = 0.1\n")).await.unwrap();
    let flaky = Probe::new("flaky", &["probe/*"], 2);
    let broken = Probe::new("broken", &["probe/PING"], u32::MAX);
    h.host.dispatcher().subscribe(flaky.clone());
    h.host.dispatcher().subscribe(broken.clone());
    let served = h.serve().await;
    let body = br#"{"id":42}"#.to_vec();
    assert_eq!(post(&reqwest::Client::new(), &format!("{}/hooks/probe", served.url), &body, &sign("hook-secret", &body)).await, 200);

    assert!(eventually(10, || flaky.delivered().len() == 1).await);
    assert_eq!(flaky.attempts.load(Ordering::SeqCst), 3, "failed twice, then succeeded");
    let store = h.host.store().clone();
    assert!(eventually(10, || store.list_events(&spoke::store::EventFilter { status: Some("dead".into()), ..Default::default() }).unwrap().len() == 1).await);
    assert_eq!(broken.attempts.load(Ordering::SeqCst), 3);
    let seq = store.list_events(&Default::default()).unwrap()[0].seq;
    let detail = store.event(seq).unwrap().unwrap();
    let dead = detail.dispatches.iter().find(|d| d.subscriber == "broken").unwrap();
    assert_eq!(dead.status, "dead");
    assert!(dead.last_error.as_deref().unwrap().contains("failing attempt 3"));

    // Fixed: replay delivers it once to the broken one only.
    broken.fail_first.store(0, Ordering::SeqCst);
    assert_eq!(store.replay_dead(spoke::store::now_ms()).unwrap(), 1);
    h.host.dispatcher().notify();
    assert!(eventually(10, || broken.delivered().len() == 1).await);
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    assert_eq!(broken.delivered().len(), 1);
    assert_eq!(flaky.delivered().len(), 1, "replaying dead letters does not redeliver to the healthy subscriber");
}

/// Holds deliveries of subject `held` until released; records the order
/// per subject and the most deliveries in progress at once.
struct Lanes {
    held: String,
    release: tokio::sync::Semaphore,
    running: std::sync::atomic::AtomicUsize,
    most: std::sync::atomic::AtomicUsize,
    got: std::sync::Mutex<Vec<(String, i64)>>,
}

impl spoke::dispatch::Subscriber for Lanes {
    fn name(&self) -> &str {
        "lanes"
    }
    fn wants(&self, _: &str, topic: &str) -> bool {
        topic == "PING"
    }
    fn deliver<'a>(&'a self, _: &'a str, event: &'a spoke::Event) -> futures::future::BoxFuture<'a, Result<(), spoke::dispatch::Failure>> {
        Box::pin(async move {
            let now = self.running.fetch_add(1, Ordering::SeqCst) + 1;
            self.most.fetch_max(now, Ordering::SeqCst);
            let subject = event.subject.clone().unwrap_or_default();
            if subject == self.held {
                self.release.acquire().await.unwrap().forget();
            } else {
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
            self.got.lock().unwrap().push((subject, event.payload["n"].as_i64().unwrap()));
            self.running.fetch_sub(1, Ordering::SeqCst);
            Ok(())
        })
    }
}

/// Events about different subjects do not wait for each other; events about
/// one subject keep their order; at most `dispatch.concurrency` at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subjects_are_delivered_in_parallel_and_each_in_order() {
    let h = TestHost::start(&config("[dispatch]\nconcurrency = 4\n")).await.unwrap();
    let lanes = Arc::new(Lanes { held: "A".into(), release: tokio::sync::Semaphore::new(0), running: 0.into(), most: 0.into(), got: Default::default() });
    h.host.dispatcher().subscribe(lanes.clone());
    let served = h.serve().await;
    let client = reqwest::Client::new();
    let url = format!("{}/hooks/probe", served.url);
    // A1 first: it is held, and everything not about A must go past it.
    for n in 1..=3 {
        for subject in ["A", "B", "C", "D", "E", "F", "G", "H"] {
            let body = serde_json::to_vec(&json!({ "id": subject, "n": n })).unwrap();
            assert_eq!(post(&client, &url, &body, &sign("hook-secret", &body)).await, 200);
        }
    }
    let got = |l: &Lanes| l.got.lock().unwrap().clone();
    assert!(eventually(20, || got(&lanes).len() == 21).await, "every event not about A is delivered while A1 is held: {:?}", got(&lanes));
    assert!(got(&lanes).iter().all(|(s, _)| s != "A"), "A2 and A3 wait behind A1");
    lanes.release.add_permits(3);
    assert!(eventually(20, || got(&lanes).len() == 24).await, "{:?}", got(&lanes));
    for subject in ["A", "B", "C", "D", "E", "F", "G", "H"] {
        let order: Vec<i64> = got(&lanes).iter().filter(|(s, _)| s == subject).map(|(_, n)| *n).collect();
        assert_eq!(order, vec![1, 2, 3], "subject {subject} in order");
    }
    let most = lanes.most.load(Ordering::SeqCst);
    assert!((2..=4).contains(&most), "parallel, within dispatch.concurrency = 4: {most} at once");
}
