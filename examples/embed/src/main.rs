//! Embedding Spoke in your own service, with no config file and no vendor:
//! a config built in code, a native Rust function and module scripts call,
//! events of the service's own published through the store (deduped,
//! dispatched once), a Rust subscriber, run outcomes as a feed, the webhook
//! listener on a port of your choosing, and a clean shutdown.
//!
//!   cargo run -p embed-example            # prints what happens; exit 0 = all held
//!
//! Add connectors with `.connector("wics", "wics", |c| c.base_url(..).credential(..))`
//! on the builder and a plugins folder that holds them; `engine.host().call(..)`
//! then calls them.
use spoke::dispatch::{Failure, Subscriber};
use spoke::{Config, Engine, Event};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// The script the operations team would drop into the scripts folder.
const SCRIPT: &str = r#"
on("shop", "order.created", "price");

// `vat` and `shop::currency` are native Rust, registered by the service.
fn price(event) {
    let gross = vat(event.payload.net);
    state::set("order:" + event.subject, gross);
    #{ order: event.subject, gross: gross, currency: shop::currency() }
}
"#;

/// Your own code as a subscriber: every `shop` event at least once, in order.
struct Audit(AtomicUsize);

impl Subscriber for Audit {
    fn name(&self) -> &str {
        "audit"
    }
    fn wants(&self, connector: &str, _topic: &str) -> bool {
        connector == "shop"
    }
    fn deliver<'a>(&'a self, _connector: &'a str, event: &'a Event) -> futures::future::BoxFuture<'a, Result<(), Failure>> {
        Box::pin(async move {
            self.0.fetch_add(1, Ordering::SeqCst);
            println!("audit: {} {}", event.topic, event.id);
            Ok(())
        })
    }
}

fn order(id: &str, net: f64) -> Event {
    Event { id: id.into(), topic: "order.created".into(), occurred_at: None, subject: Some(id.into()), payload: serde_json::json!({ "net": net }) }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    std::fs::create_dir_all(dir.path().join("plugins"))?;
    std::fs::create_dir_all(dir.path().join("scripts"))?;
    std::fs::write(dir.path().join("scripts/orders.rhai"), SCRIPT)?;

    // The config in code: the same keys and checks as a spoke.toml.
    let config = Config::builder(dir.path()).plugins_dir("plugins").scripts_dir("scripts").store("spoke.db").cache_dir("cache").set("dispatch.max_attempts", 3).build()?;

    let mut shop = rhai::Module::new();
    shop.set_native_fn("currency", || Ok("EUR".to_string()));
    let audit = Arc::new(Audit(AtomicUsize::new(0)));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let engine = Engine::builder(config)
        .script_fn(|e| {
            e.register_fn("vat", |net: f64| (net * 1.21 * 100.0).round() / 100.0);
        })
        .script_module("shop", shop)
        .event_source("shop", &["order.created"])
        .subscriber(audit.clone())
        .serve_on(listener)
        .start()
        .await?;
    let addr = engine.local_addr().expect("listening");
    println!("serving webhooks on http://{addr}/hooks/<connector>");

    let mut outcomes = engine.outcomes();
    let first = engine.publish("shop", vec![order("SO-1", 100.0)]).await?;
    // The same event again (a retry on the service's side): stored once.
    let again = engine.publish("shop", vec![order("SO-1", 100.0)]).await?;
    println!("published SO-1: {} new; again: {} new, {} duplicate", first.new_events, again.new_events, again.duplicates);
    anyhow::ensure!(first.new_events == 1 && again.duplicates == 1, "the duplicate was not recognised");

    let ran = tokio::time::timeout(Duration::from_secs(20), outcomes.recv()).await??;
    println!("script {}::{} ({}) -> {:?}", ran.script, ran.function, ran.trigger, ran.result);
    let value = ran.result.map_err(|e| anyhow::anyhow!("the script failed: {e}"))?;
    anyhow::ensure!(value["gross"] == 121.0 && value["currency"] == "EUR", "unexpected result {value}");

    // Nothing else arrives: the duplicate was not dispatched.
    let extra = tokio::time::timeout(Duration::from_millis(500), outcomes.recv()).await;
    anyhow::ensure!(extra.is_err(), "a second run happened: {extra:?}");
    let stored = engine.host().store().state_get("orders", "order:SO-1")?;
    println!("state order:SO-1 = {stored:?}; audit saw {} event(s)", audit.0.load(Ordering::SeqCst));
    anyhow::ensure!(stored.as_deref() == Some("121.0"), "state not written: {stored:?}");
    anyhow::ensure!(audit.0.load(Ordering::SeqCst) == 1, "the Rust subscriber did not get the event exactly once");

    engine.shutdown().await?;
    // The listener is closed once shutdown returns.
    anyhow::ensure!(tokio::net::TcpStream::connect(addr).await.is_err(), "still listening after shutdown");
    println!("shut down cleanly");
    Ok(())
}
