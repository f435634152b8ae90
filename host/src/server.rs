//! The host's HTTP server (`spoke run`): health now; webhook ingress and
//! script triggers mount here as they are built.
use crate::Host;
use axum::{extract::State, routing::get, Json, Router};
use std::sync::Arc;

/// Every route of the host: health and webhook ingress.
pub fn router(host: Arc<Host>) -> Router {
    let ingress = Arc::new(crate::webhook::Ingress {
        committer: crate::webhook::Committer::start(host.store().clone()),
        dispatcher: host.dispatcher().clone(),
        max_body: host.config().limits.max_webhook_bytes,
        host: host.clone(),
    });
    Router::new().route("/health", get(health)).with_state(host).merge(crate::webhook::router(ingress))
}

async fn health(State(host): State<Arc<Host>>) -> Json<serde_json::Value> {
    let connectors: Vec<_> = host.connectors().iter().map(|b| serde_json::json!({"name": b.name(), "plugin": b.manifest().name, "version": b.manifest().version})).collect();
    Json(serde_json::json!({ "status": "ok", "connectors": connectors }))
}

/// Serve until Ctrl-C or SIGTERM.
pub async fn serve(host: Arc<Host>) -> anyhow::Result<()> {
    let listen = host.config().listen.clone();
    let listener = tokio::net::TcpListener::bind(&listen).await.map_err(|e| anyhow::anyhow!("cannot listen on {listen}: {e}"))?;
    // Install the handlers before saying we listen: a supervisor may signal
    // the moment it reads that line.
    let stop = shutdown_signal()?;
    let (stopped, stopping) = tokio::sync::watch::channel(false);
    let dispatch = tokio::spawn(host.dispatcher().clone().run(wait_true(stopping)));
    tracing::info!("spoke listening on http://{}", listener.local_addr()?);
    axum::serve(listener, router(host)).with_graceful_shutdown(stop).await?;
    let _ = stopped.send(true);
    let _ = dispatch.await;
    tracing::info!("spoke stopped");
    Ok(())
}

async fn wait_true(mut rx: tokio::sync::watch::Receiver<bool>) {
    let _ = rx.wait_for(|v| *v).await;
}

/// Resolves on Ctrl-C or SIGTERM; the handlers are installed on the call.
pub fn shutdown_signal() -> anyhow::Result<impl std::future::Future<Output = ()>> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    Ok(async move {
        tokio::select! { _ = int.recv() => {}, _ = term.recv() => {} }
    })
}
