//! Embedding Spoke: start a host from a config, call a connector, receive
//! its events in your own code, and serve webhooks on your own listener.
//!
//!   cargo run -p embed-example -- spoke.toml
use spoke::dispatch::{Failure, Subscriber};
use std::sync::Arc;

/// Your code, as a subscriber: gets every WICS event at least once, in order.
struct MyService;

impl Subscriber for MyService {
    fn name(&self) -> &str {
        "my-service"
    }
    fn wants(&self, connector: &str, _topic: &str) -> bool {
        connector == "wics"
    }
    fn deliver<'a>(&'a self, _connector: &'a str, event: &'a spoke::Event) -> futures::future::BoxFuture<'a, Result<(), Failure>> {
        Box::pin(async move {
            println!("got {} {}", event.topic, event.payload);
            Ok(())
        })
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let path = std::env::args().nth(1).unwrap_or_else(|| "spoke.toml".into());
    let config = spoke::Config::load(std::path::Path::new(&path))?;
    let host = Arc::new(spoke::Host::start(config).await?);

    match host.call("wics", "list_items", serde_json::json!({ "pageSize": 5 })).await {
        Ok(items) => println!("{items}"),
        Err(e) if e.kind == spoke::ErrorKind::RateLimited => println!("try again in {:?} ms", e.retry_after_ms),
        Err(e) => println!("failed: {e}"),
    }

    host.dispatcher().subscribe(Arc::new(MyService));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    println!("webhooks: http://{}/hooks/wics/<topic> (Ctrl-C stops)", listener.local_addr()?);
    spoke::server::serve_on(listener, host, async {
        let _ = tokio::signal::ctrl_c().await;
    })
    .await
}
