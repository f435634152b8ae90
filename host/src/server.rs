//! The host's HTTP server (`spoke run`): health now; webhook ingress and
//! script triggers mount here as they are built.
use crate::Host;
use axum::{extract::State, routing::get, Json, Router};
use std::sync::Arc;

pub fn router(host: Arc<Host>) -> Router {
    Router::new().route("/health", get(health)).with_state(host)
}

async fn health(State(host): State<Arc<Host>>) -> Json<serde_json::Value> {
    let connectors: Vec<_> = host.connectors().iter().map(|b| serde_json::json!({"name": b.name(), "plugin": b.manifest().name, "version": b.manifest().version})).collect();
    Json(serde_json::json!({ "status": "ok", "connectors": connectors }))
}

/// Serve until Ctrl-C or SIGTERM.
pub async fn serve(host: Arc<Host>) -> anyhow::Result<()> {
    let listen = host.config().listen.clone();
    let listener = tokio::net::TcpListener::bind(&listen).await.map_err(|e| anyhow::anyhow!("cannot listen on {listen}: {e}"))?;
    tracing::info!("spoke listening on http://{}", listener.local_addr()?);
    axum::serve(listener, router(host)).with_graceful_shutdown(shutdown_signal()).await?;
    tracing::info!("spoke stopped");
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).expect("SIGTERM handler");
        tokio::select! { _ = ctrl_c => {}, _ = term.recv() => {} }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}
