//! Serving a simulator on loopback.
use crate::faults::Faults;
use std::net::SocketAddr;

/// A running simulator server; dropping it stops the server.
pub struct Server {
    pub addr: SocketAddr,
    faults: Faults,
    task: tokio::task::JoinHandle<()>,
}

impl Server {
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
    /// The processes this server kills after chosen answers (`/_control/faults`).
    pub fn faults(&self) -> &Faults {
        &self.faults
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Serve `router` on 127.0.0.1:`port` (0 picks a free port). Only loopback:
/// a simulator is never reachable from another machine. Every route gets
/// fault injection ([`crate::faults`]), disarmed until a test arms it.
pub async fn serve(router: axum::Router, port: u16) -> anyhow::Result<Server> {
    let faults = Faults::new();
    let router = faults.wrap(router);
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    let addr = listener.local_addr()?;
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    Ok(Server { addr, faults, task })
}

/// Refuse to deliver webhooks anywhere but loopback.
pub fn is_loopback_url(url: &str) -> bool {
    let Some(rest) = url.strip_prefix("http://") else { return false };
    let host = rest.split(['/', '?']).next().unwrap_or("");
    let host = host.rsplit_once(':').map(|(h, _)| h).unwrap_or(host);
    host == "localhost" || host == "[::1]" || host.starts_with("127.")
}
