//! The host's HTTP server (`spoke run`): health now; webhook ingress and
//! script triggers mount here as they are built.
use crate::Host;
use axum::{extract::State, routing::get, Json, Router};
use std::sync::Arc;

/// Every route of the host: health, webhook ingress and, with scripts,
/// `POST /scripts/{name}/{fn}`.
pub fn router_with_scripts(host: Arc<Host>, scripts: Arc<crate::script::Scripts>) -> Router {
    router(host).merge(Router::new().route("/scripts/{name}/{function}", axum::routing::post(run_script)).with_state(scripts))
}

async fn run_script(
    State(scripts): State<Arc<crate::script::Scripts>>,
    axum::extract::Path((name, function)): axum::extract::Path<(String, String)>,
    body: axum::body::Bytes,
) -> axum::response::Response {
    use axum::http::StatusCode;
    use axum::response::IntoResponse;
    let arg = if body.iter().all(u8::is_ascii_whitespace) {
        None
    } else {
        match serde_json::from_slice::<serde_json::Value>(&body) {
            Ok(v) => Some(v),
            Err(e) => return (StatusCode::BAD_REQUEST, Json(serde_json::json!({"error": format!("the body is not JSON: {e}")}))).into_response(),
        }
    };
    match scripts.current(&name) {
        None => return (StatusCode::NOT_FOUND, Json(serde_json::json!({"error": format!("no script named {name:?}")}))).into_response(),
        Some(s) if !s.ast.iter_functions().any(|f| f.name == function && !f.name.starts_with('_')) => {
            return (StatusCode::NOT_FOUND, Json(serde_json::json!({"error": format!("script {name} has no function {function:?}")}))).into_response()
        }
        Some(_) => {}
    }
    match scripts.run(&name, &function, arg, "http").await {
        Ok(result) => Json(serde_json::json!({ "result": result })).into_response(),
        Err(e) => {
            let status = if e.transient { StatusCode::SERVICE_UNAVAILABLE } else { StatusCode::UNPROCESSABLE_ENTITY };
            (status, Json(serde_json::json!({ "error": e.message, "location": e.location, "run": e.run_id }))).into_response()
        }
    }
}

/// Health and webhook ingress.
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
    serve_on(listener, host, stop).await
}

/// Everything `spoke run` does, on a bound listener, until `stop` resolves:
/// scripts with hot reload, dispatch, webhook ingress, script triggers.
pub async fn serve_on(listener: tokio::net::TcpListener, host: Arc<Host>, stop: impl std::future::Future<Output = ()> + Send + 'static) -> anyhow::Result<()> {
    let (stopped, stopping) = tokio::sync::watch::channel(false);
    let scripts = crate::script::Scripts::start(host.clone()).await;
    let _watcher = scripts.watch()?;
    tracing::info!("watching {} for scripts and {} for plugins", scripts.dir().display(), host.config().plugins_dir.display());
    let dispatch = tokio::spawn(host.dispatcher().clone().run(wait_true(stopping)));
    tracing::info!("spoke listening on http://{}", listener.local_addr()?);
    axum::serve(listener, router_with_scripts(host.clone(), scripts)).with_graceful_shutdown(stop).await?;
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
