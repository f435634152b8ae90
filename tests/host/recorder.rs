//! A loopback HTTP server that records what reached it, with routes that
//! behave like awkward vendors.
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::IntoResponse;
use axum::routing::any;
use axum::Router;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[derive(Debug, Clone)]
pub struct Seen {
    pub path: String,
    pub query: Option<String>,
    pub headers: Vec<(String, String)>,
    pub at: Instant,
}

#[derive(Default)]
pub struct Log {
    pub seen: Mutex<Vec<Seen>>,
    limited_calls: AtomicUsize,
}

pub struct Recorder {
    pub url: String,
    pub log: Arc<Log>,
    _server: spoke_sandbox::serve::Server,
}

impl Recorder {
    pub async fn start() -> Recorder {
        let log = Arc::new(Log::default());
        let router = Router::new().fallback(any(handle)).with_state(log.clone());
        let server = spoke_sandbox::serve::serve(router, 0).await.unwrap();
        Recorder { url: server.url(), log, _server: server }
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.log.seen.lock().unwrap().clone()
    }
}

async fn handle(State(log): State<Arc<Log>>, uri: Uri, headers: HeaderMap) -> axum::response::Response {
    let path = uri.path().to_string();
    log.seen.lock().unwrap().push(Seen {
        path: path.clone(),
        query: uri.query().map(str::to_string),
        headers: headers.iter().map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_string())).collect(),
        at: Instant::now(),
    });
    // The probe connector's base URL ends in /api.
    match path.trim_start_matches("/api") {
        "/slow" => {
            tokio::time::sleep(Duration::from_secs(5)).await;
            "late".into_response()
        }
        "/big" => vec![b'x'; 2 << 20].into_response(),
        "/limited" => {
            if log.limited_calls.fetch_add(1, Ordering::SeqCst) == 0 {
                (StatusCode::TOO_MANY_REQUESTS, [("retry-after", "1")], "slow down").into_response()
            } else {
                "ok after waiting".into_response()
            }
        }
        "/exhausted" => ([("x-remaining", "0")], "that was the last one").into_response(),
        _ => "ok".into_response(),
    }
}
