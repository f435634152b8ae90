//! Three `spoke run` hosts on one PostgreSQL database, behind a load
//! balancer, SIGKILLed and restarted at random moments while the 100-lead
//! chain runs and 5,000 webhooks arrive: nothing is lost, no order is made
//! twice, no vendor answers 429, and each schedule tick fires once.
use super::*;
use spoke_tests::postgres::Cluster;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

const HOSTS: usize = 3;
const LEADS: usize = 100;
const WEBHOOKS: i64 = 5000;
const KILLS: usize = 9;
const WEBHOOK_SECRET: &str = "scale-secret";

/// Counts each probe event it is given, and a schedule that records its
/// ticks (as the runs table shows them).
const COUNT_SCRIPT: &str = r#"
on("probe", "PING", "seen");
every("1s", "tick");
fn seen(e) { state::incr("seen:" + e.payload.id.to_string(), 1); }
fn tick() { state::incr("ticks", 1); }
"#;

/// A round-robin HTTP balancer over the hosts' ports, as a deployment puts
/// in front of them: a host that does not answer is skipped, and with none
/// up the caller gets a 503 (vendors retry those).
struct Balancer {
    url: String,
    _task: tokio::task::JoinHandle<()>,
}

impl Balancer {
    async fn start(ports: Vec<u16>) -> Balancer {
        use axum::body::Bytes;
        use axum::extract::State;
        use axum::http::{HeaderMap, Method, StatusCode, Uri};
        type Shared = (Arc<Vec<u16>>, Arc<AtomicUsize>, reqwest::Client);
        async fn forward(State((ports, next, client)): State<Shared>, method: Method, uri: Uri, headers: HeaderMap, body: Bytes) -> (StatusCode, HeaderMap, Bytes) {
            let first = next.fetch_add(1, Ordering::Relaxed);
            for i in 0..ports.len() {
                let port = ports[(first + i) % ports.len()];
                let mut request = client.request(reqwest::Method::from_bytes(method.as_str().as_bytes()).unwrap(), format!("http://127.0.0.1:{port}{uri}")).body(body.clone());
                for (name, value) in &headers {
                    if name != "host" && name != "content-length" {
                        request = request.header(name.as_str(), value.as_bytes());
                    }
                }
                // Only a host that is not there is skipped: once a request
                // reached a host, its answer (or its death) is the caller's.
                let answer = match request.send().await {
                    Ok(a) => a,
                    Err(e) if e.is_connect() => continue,
                    Err(_) => return (StatusCode::BAD_GATEWAY, HeaderMap::new(), Bytes::new()),
                };
                let status = StatusCode::from_u16(answer.status().as_u16()).unwrap();
                let mut out = HeaderMap::new();
                for name in ["content-type", "retry-after"] {
                    if let Some(v) = answer.headers().get(name) {
                        out.insert(name, v.clone());
                    }
                }
                return match answer.bytes().await {
                    Ok(bytes) => (status, out, bytes),
                    Err(_) => (StatusCode::BAD_GATEWAY, HeaderMap::new(), Bytes::new()),
                };
            }
            (StatusCode::SERVICE_UNAVAILABLE, HeaderMap::new(), Bytes::new())
        }
        spoke::install_tls();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let client = reqwest::Client::builder().timeout(Duration::from_secs(30)).build().unwrap();
        let app = axum::Router::new().fallback(forward).with_state((Arc::new(ports), Arc::new(AtomicUsize::new(0)), client));
        let _task = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Balancer { url, _task }
    }
}

/// Send webhook `id` until a host accepts it, as a vendor retries.
async fn push(client: &reqwest::Client, url: &str, id: i64) -> u32 {
    let body = json!({ "id": id }).to_string().into_bytes();
    let signature = spoke_tests::sign(WEBHOOK_SECRET, &body);
    let mut tries = 0;
    loop {
        tries += 1;
        let sent = client.post(url).header("x-signature", &signature).header("content-type", "application/json").body(body.clone()).send().await;
        if sent.is_ok_and(|r| r.status().is_success()) {
            return tries;
        }
        assert!(tries < 1000, "webhook {id} was never accepted");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_hosts_on_postgres_survive_sigkill_with_the_chain_and_5000_webhooks() {
    let bin = spoke_tests::spoke_bin();
    let seed = std::env::var("CHAIN_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(17);
    eprintln!("kill schedule seed {seed} (set CHAIN_SEED to replay)");
    let mut rng = Rng(seed);
    let cluster = Cluster::start();
    let store_url = cluster.database("spoke");

    let (sandbox, connectors) = prepare().await;
    let leads = plan(LEADS, &sandbox);
    let cs_leads_before = sandbox.cyclesoftware.state.lock().data.leads.len();
    let (dir, scripts) = script_dir();
    std::fs::write(scripts.join("count.rhai"), COUNT_SCRIPT).unwrap();
    // Short leases' worth of run time: a host killed mid-delivery on
    // another machine would hold its work this long.
    let connectors = format!("[scripts]\nmax_run_secs = 120.0\n\n{connectors}\n{}", spoke_tests::probe_connector("http://127.0.0.1:9", WEBHOOK_SECRET));

    let ports: Vec<(u16, u16)> = (0..HOSTS).map(|_| (free_port(), free_port())).collect();
    let configs: Vec<PathBuf> = ports
        .iter()
        .enumerate()
        .map(|(i, (port, admin))| {
            let host_dir = dir.path().join(format!("host{i}"));
            std::fs::create_dir_all(&host_dir).unwrap();
            spoke_config(&host_dir, &scripts, &store_url, *port, *admin, &connectors)
        })
        .collect();
    let public = Balancer::start(ports.iter().map(|p| p.0).collect()).await;
    let admin = Balancer::start(ports.iter().map(|p| p.1).collect()).await;

    let start = |bin: PathBuf, config: PathBuf| async move { tokio::task::spawn_blocking(move || Spoke::start(&bin, &config)).await.unwrap() };
    let mut hosts = Vec::new();
    for config in &configs {
        hosts.push(start(bin.clone(), config.clone()).await);
    }
    let client = client();
    setup(&client, &admin.url, &public.url).await.unwrap();

    // The killer: SIGKILL a random host at random moments, then start it
    // again (same ports, same database) and run setup.
    let killing = Arc::new(AtomicBool::new(true));
    let killer = {
        let (client, admin_url, public_url, configs, killing) = (client.clone(), admin.url.clone(), public.url.clone(), configs.clone(), killing.clone());
        tokio::spawn(async move {
            for kill in 1..=KILLS {
                tokio::time::sleep(rng.ms(500, 3000)).await;
                let i = (rng.next() % HOSTS as u64) as usize;
                hosts[i].kill9();
                eprintln!("kill {kill}: host {i}");
                tokio::time::sleep(rng.ms(0, 500)).await;
                hosts[i] = start(bin.clone(), configs[i].clone()).await;
                let mut tries = 0;
                while let Err(e) = setup(&client, &admin_url, &public_url).await {
                    tries += 1;
                    assert!(tries < 100, "setup keeps failing: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
            killing.store(false, Ordering::SeqCst);
            hosts
        })
    };

    // 5,000 webhooks at ~250/s, each sent until accepted, while hosts die.
    let retried = Arc::new(AtomicU64::new(0));
    let pusher = {
        let (client, url, retried) = (client.clone(), format!("{}/hooks/probe", public.url), retried.clone());
        tokio::spawn(async move {
            let mut sends = Vec::new();
            for id in 0..WEBHOOKS {
                let (client, url, retried) = (client.clone(), url.clone(), retried.clone());
                sends.push(tokio::spawn(async move {
                    let tries = push(&client, &url, id).await;
                    retried.fetch_add(u64::from(tries - 1), Ordering::Relaxed);
                }));
                tokio::time::sleep(Duration::from_millis(4)).await;
            }
            for s in sends {
                s.await.unwrap();
            }
        })
    };

    // The script's state, read from the shared database as an operator would.
    let reader: Arc<dyn Store> = spoke::store::open(&spoke::config::StoreLocation::Postgres(spoke::config::PostgresLocation {
        url: store_url.clone(),
        password: None,
        connections: 2,
        statement_timeout_secs: 30.0,
    }))
    .unwrap();
    let state = |key: &str| reader.state_get(SCRIPT, key).ok().flatten().map(|t| serde_json::from_str::<Value>(&t).unwrap());

    let mut keys: Vec<Option<String>> = vec![None; leads.len()];
    let mut uuids: Vec<Option<String>> = vec![None; leads.len()];
    let mut in_doubt_resolved = 0;
    let mut decided = vec![0u8; leads.len()];
    let ours = |uuids: &Vec<Option<String>>| uuids.iter().flatten().cloned().collect::<HashSet<String>>();
    let shipped = Mutex::new(HashSet::new());
    let mut lost_answers = 0;
    let deadline = Instant::now() + Duration::from_secs(240);
    loop {
        if Instant::now() >= deadline {
            let now = spoke::store::now_ms();
            let stuck: Vec<String> = reader
                .flows(&spoke::flow::FlowFilter { script: Some(SCRIPT.into()), limit: 1000, ..Default::default() })
                .unwrap()
                .into_iter()
                .filter(|f| !matches!(f.status.as_str(), "done" | "failed"))
                .map(|f| format!("{} {} step {:?} wake in {:?} ms lease {:?} until {:?} ms error {:?}", f.key, f.status, f.current_step, f.wake_at.map(|w| w - now), f.lease_owner, f.lease_until.map(|l| l - now), f.last_error))
                .collect();
            let deliveries: Vec<String> = sandbox.wics.deliveries().iter().filter(|d| !d.delivered).map(|d| format!("{} attempts {} given up {} in flight {}", d.topic, d.attempts, d.given_up, d.in_flight)).collect();
            let events = reader.list_events(&spoke::store::EventFilter { status: Some("pending".into()), limit: 50, ..Default::default() }).unwrap();
            // The temp dir goes with the panic: keep the host logs.
            let logs = std::env::temp_dir().join(format!("spoke-scale-failure-{}", std::process::id()));
            std::fs::create_dir_all(&logs).unwrap();
            for i in 0..HOSTS {
                let _ = std::fs::copy(dir.path().join(format!("host{i}/spoke.log")), logs.join(format!("host{i}.log")));
            }
            panic!(
                "the chain did not finish: {}\nflows not settled:\n{}\nWICS deliveries not delivered: {deliveries:?}\npending events: {events:?}\nhost logs in {}",
                describe_progress(&uuids.iter().flatten().cloned().collect::<Vec<_>>(), &state),
                stuck.join("\n"),
                logs.display()
            );
        }
        // Ten forms per round; a form whose answer was lost is posted again.
        let pending: Vec<usize> = (0..leads.len()).filter(|i| keys[*i].is_none()).take(10).collect();
        let posts = pending.iter().map(|i| post_form(&client, &admin.url, &leads[*i].form));
        for (i, result) in pending.iter().zip(futures::future::join_all(posts).await) {
            match result {
                Ok(key) => keys[*i] = Some(key),
                Err(_) => lost_answers += 1,
            }
        }
        for (i, key) in keys.iter().enumerate() {
            if let (Some(key), None) = (key, &uuids[i]) {
                uuids[i] = state(&format!("form:{key}")).and_then(|u| u.as_str().map(str::to_string));
            }
        }
        in_doubt_resolved += resolve_leads_in_doubt(reader.as_ref(), &sandbox);
        answer_leads(&sandbox, &leads, &uuids, &mut decided, &state);
        ship_ready(&sandbox, &ours(&uuids), &mut shipped.lock().unwrap());
        if sandbox.wics.deliveries().iter().any(|d| !d.delivered && !d.given_up && !d.in_flight && d.next_due_ms.is_some()) {
            sandbox.wics.advance_ms(100_000);
        }
        let all: Vec<String> = uuids.iter().flatten().cloned().collect();
        if !killing.load(Ordering::SeqCst) && pusher.is_finished() && all.len() == leads.len() && decided.iter().all(|d| *d == 2) && all_final(&leads, &all, &state) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    pusher.await.unwrap();
    let uuids: Vec<String> = uuids.into_iter().map(Option::unwrap).collect();

    // Every accepted webhook reached the script (at least once).
    let seen = |id: i64| reader.state_get("count", &format!("seen:{id}")).ok().flatten().and_then(|v| v.parse::<i64>().ok()).unwrap_or(0);
    assert!(
        eventually(60, || (0..WEBHOOKS).all(|id| seen(id) >= 1)).await,
        "webhooks accepted but never delivered: {:?}",
        (0..WEBHOOKS).filter(|id| seen(*id) == 0).take(20).collect::<Vec<_>>()
    );
    let twice: i64 = (0..WEBHOOKS).map(|id| seen(id) - 1).sum();
    let hosts = killer.await.unwrap();
    eprintln!(
        "{KILLS} kills over {HOSTS} hosts; {lost_answers} form posts lost their answer and were posted again; {in_doubt_resolved} flow(s) in doubt resolved; {} webhook sends retried; {twice} webhook deliveries repeated after a kill",
        retried.load(Ordering::Relaxed)
    );
    check_end_state(&sandbox, &leads, &uuids, cs_leads_before, &state);
    assert_eq!(sandbox.lagerkoll.violations() + sandbox.wics.violations() + sandbox.cyclesoftware.violations(), 0, "a vendor answered 429");
    assert!(sandbox.wics.deliveries().iter().all(|d| d.delivered), "a SHIPMENT delivery never reached a host");

    // Each tick of the 1-second schedule ran on one host at most (a run's
    // trigger names its tick: `schedule:1s@<ms>`).
    let ticks = reader.runs(&spoke::store::RunFilter { script: Some("count".into()), function: Some("tick".into()), limit: 100_000, ..Default::default() }).unwrap();
    let mut per_tick: BTreeMap<String, usize> = BTreeMap::new();
    for r in &ticks {
        *per_tick.entry(r.trigger.clone()).or_default() += 1;
    }
    assert!(ticks.len() > 10, "the schedule hardly ran: {} runs", ticks.len());
    let doubled: Vec<_> = per_tick.iter().filter(|(_, n)| **n > 1).collect();
    assert!(doubled.is_empty(), "schedule ticks fired on two hosts: {doubled:?}");
    drop(hosts);
}
