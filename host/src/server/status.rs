//! The status page: one HTML file compiled into the host (no build step,
//! no CDN), served at `/ui` on the admin surface. The page holds no data:
//! it asks for the admin token, keeps it in the tab's sessionStorage and
//! sends it as a bearer token to the JSON API (`api.rs`). Everything it
//! shows comes from there, escaped as text (event payloads are vendor, or
//! attacker, input).
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;

const PAGE: &str = include_str!("status.html");

/// Paths that serve the page's shell (no token needed: no data in it).
const SHELL: [&str; 3] = ["/", "/ui", "/ui/"];

pub fn is_shell(path: &str) -> bool {
    SHELL.contains(&path)
}

pub fn router() -> Router {
    SHELL.iter().fold(Router::new(), |r, path| r.route(path, get(page)))
}

async fn page() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            // Only this page's own script and styles; no framing.
            (header::CONTENT_SECURITY_POLICY, "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'; img-src 'self' data:; frame-ancestors 'none'"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (header::REFERRER_POLICY, "no-referrer"),
        ],
        PAGE,
    )
}
