//! The host's HTTP surfaces (`spoke run`), kept apart because they face
//! different people:
//! - **public** (`listen`): `POST /hooks/...` for vendors and a bare
//!   `GET /health` liveness answer, nothing else;
//! - **admin** (`[admin] listen`, default loopback): script triggers and
//!   every route that runs, reads or changes anything, behind a bearer
//!   token with Host and Origin checks (`admin.rs`).
//!
//! Both are served with the connection limits of `limits.rs`.
pub mod admin;
pub mod api;
pub mod limits;
pub mod status;

use crate::Host;
use axum::{routing::get, Json, Router};
use std::sync::Arc;
use tokio::net::TcpListener;

/// The public routes: webhook ingress and liveness. Nothing here reveals or
/// runs anything beyond what a vendor's delivery does.
pub fn router(host: Arc<Host>) -> Router {
    let ingress = Arc::new(crate::webhook::Ingress {
        committer: crate::webhook::Committer::start(host.store().clone()),
        dispatcher: host.dispatcher().clone(),
        max_body: host.config().limits.max_webhook_bytes,
        host,
    });
    Router::new().route("/health", get(liveness)).merge(crate::webhook::router(ingress))
}

async fn liveness() -> Json<serde_json::Value> {
    Json(serde_json::json!({ "status": "ok" }))
}

/// Serve until Ctrl-C or SIGTERM: the public listener, and the admin one
/// if a token is configured.
pub async fn serve(host: Arc<Host>) -> anyhow::Result<()> {
    let listen = host.config().listen.clone();
    let listener = TcpListener::bind(&listen).await.map_err(|e| anyhow::anyhow!("cannot listen on {listen}: {e}"))?;
    // Install the handlers before saying we listen: a supervisor may signal
    // the moment it reads that line.
    let stop = shutdown_signal()?;
    serve_on(listener, host, stop).await
}

/// Everything `spoke run` does, on a bound public listener, until `stop`
/// resolves. The admin listener is bound from the config (`[admin]`) when a
/// token is configured; without one the admin surface is off.
pub async fn serve_on(listener: TcpListener, host: Arc<Host>, stop: impl std::future::Future<Output = ()> + Send + 'static) -> anyhow::Result<()> {
    let admin = match &host.config().admin.token {
        Some(_) => {
            let at = host.config().admin.listen.clone();
            Some(TcpListener::bind(&at).await.map_err(|e| anyhow::anyhow!("cannot listen on {at} (admin.listen): {e}"))?)
        }
        None => {
            tracing::warn!("no [admin] token configured: the admin surface (script triggers) is off");
            None
        }
    };
    serve_surfaces(listener, admin, host, stop).await
}

/// [`serve_on`] with both listeners given: the engine (scripts with hot
/// reload, dispatch, webhook ingress, the admin surface on `admin`) until
/// `stop` resolves, then its bounded shutdown.
pub async fn serve_surfaces(listener: TcpListener, admin: Option<TcpListener>, host: Arc<Host>, stop: impl std::future::Future<Output = ()> + Send + 'static) -> anyhow::Result<()> {
    tokio::pin!(stop);
    let mut builder = crate::Engine::around(host).serve_on(listener);
    if let Some(admin) = admin {
        builder = builder.admin_on(admin);
    }
    // Loading scripts is bounded per script, but a stop must not wait for it.
    let engine = tokio::select! {
        e = builder.start() => e?,
        _ = &mut stop => {
            tracing::info!("stopped while loading scripts");
            return Ok(());
        }
    };
    stop.await;
    engine.shutdown().await
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
