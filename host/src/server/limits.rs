//! Serving a router with bounded resources. axum's own `serve` has no
//! timeouts and no connection cap, so connections are driven here with
//! hyper directly:
//! - headers must arrive within `header_read_timeout` of their first byte
//!   (watched here: hyper's own timer also runs on idle keep-alive
//!   connections, which then race with a client reusing them);
//! - a body must arrive within `body_read_timeout` (the request body is
//!   wrapped; a late body ends in an error the handler sees);
//! - a connection with no request in flight and no traffic for
//!   `idle_timeout` is closed;
//! - at most `max_connections` are open, lowered to fit the process's file
//!   limit. At the cap the longest-idle connection is closed to make room
//!   (idle sockets cannot lock out a vendor; "idle" means no request in
//!   flight and quiet for a second); if none is idle, the new
//!   connection is answered 503 and closed, before `accept` can fail with
//!   EMFILE;
//! - on stop, requests in flight get `shutdown_grace`, then are dropped.
use crate::config::ServerLimits;
use axum::body::Body;
use axum::Router;
use futures::StreamExt;
use std::collections::HashMap;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Notify};

/// File descriptors kept free for everything else the process opens (the
/// store, plugin files, outbound HTTP, the other listener).
const FD_RESERVE: usize = 160;

/// At the cap, a connection quiet at least this long may be closed to make room.
const EVICTABLE_AFTER: Duration = Duration::from_secs(1);

/// Connections being answered 503 at once; past it they are just closed.
const MAX_SHEDDING: usize = 32;

/// The open-files soft limit of this process, from /proc (Linux).
fn file_limit() -> Option<usize> {
    let text = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = text.lines().find(|l| l.starts_with("Max open files"))?;
    line.split_whitespace().nth(3)?.parse().ok()
}

/// `max_connections`, lowered so that a full listener leaves room below the
/// file limit. Two listeners each get half of what is left.
pub fn effective_cap(configured: usize) -> usize {
    match file_limit() {
        Some(limit) => configured.min(limit.saturating_sub(FD_RESERVE) / 2).max(1),
        None => configured,
    }
}

/// One open connection, as the accept loop sees it.
struct Conn {
    /// Milliseconds since `epoch` of the last byte read or written.
    last_active: Arc<AtomicU64>,
    /// 1 + milliseconds since `epoch` of the first byte of a request whose
    /// headers are not complete yet; 0 when none is arriving.
    head_started: Arc<AtomicU64>,
    in_flight: Arc<AtomicUsize>,
    close: Arc<Notify>,
}

struct Registry {
    epoch: Instant,
    next_id: AtomicU64,
    open: Mutex<HashMap<u64, Conn>>,
    drained: Notify,
    shedding: AtomicUsize,
}

impl Registry {
    fn now(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    fn count(&self) -> usize {
        self.open.lock().unwrap().len()
    }

    /// Close the connection idle the longest; false if every one is busy.
    /// It leaves the count at once, so a burst of accepts evicts a
    /// different connection each time.
    fn evict_idle(&self) -> bool {
        let mut open = self.open.lock().unwrap();
        // A connection made a moment ago is a client about to speak.
        let quiet_since = self.now().saturating_sub(EVICTABLE_AFTER.as_millis() as u64);
        let idle = open.iter().filter(|(_, c)| c.in_flight.load(Ordering::SeqCst) == 0 && c.last_active.load(Ordering::Relaxed) <= quiet_since).min_by_key(|(_, c)| c.last_active.load(Ordering::Relaxed)).map(|(id, _)| *id);
        match idle.and_then(|id| open.remove(&id)) {
            Some(c) => {
                c.close.notify_one();
                true
            }
            None => false,
        }
    }
}

/// Removes a connection from the registry when its task ends.
struct Registered(Arc<Registry>, u64);

impl Drop for Registered {
    fn drop(&mut self) {
        let mut open = self.0.open.lock().unwrap();
        open.remove(&self.1);
        if open.is_empty() {
            self.0.drained.notify_waiters();
        }
    }
}

/// Serve `router` on `listener` until `stop` turns true, then drain.
pub async fn serve(listener: TcpListener, router: Router, limits: ServerLimits, mut stop: watch::Receiver<bool>) {
    let cap = effective_cap(limits.max_connections);
    let registry = Arc::new(Registry { epoch: Instant::now(), next_id: AtomicU64::new(0), open: Mutex::default(), drained: Notify::new(), shedding: AtomicUsize::new(0) });
    let (force_tx, force) = watch::channel(false);
    let mut last_accept_error = None::<Instant>;
    loop {
        let accepted = tokio::select! {
            r = listener.accept() => r,
            _ = stop.wait_for(|v| *v) => break,
        };
        let stream = match accepted {
            Ok((stream, _)) => stream,
            Err(e) => {
                // EMFILE and friends: say so once a second, wait, go on.
                if last_accept_error.is_none_or(|t| t.elapsed() > Duration::from_secs(1)) {
                    tracing::error!("accept failed: {e}; retrying");
                    last_accept_error = Some(Instant::now());
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        if registry.count() >= cap && !registry.evict_idle() {
            shed(stream, &registry);
            continue;
        }
        let id = registry.next_id.fetch_add(1, Ordering::Relaxed);
        let conn = Conn { last_active: Arc::new(AtomicU64::new(registry.now())), head_started: Arc::default(), in_flight: Arc::default(), close: Arc::new(Notify::new()) };
        let watch = Watch { last_active: conn.last_active.clone(), head_started: conn.head_started.clone(), in_flight: conn.in_flight.clone(), close: conn.close.clone() };
        registry.open.lock().unwrap().insert(id, conn);
        let registered = Registered(registry.clone(), id);
        let (router, limits, stop, force, registry) = (router.clone(), limits.clone(), stop.clone(), force.clone(), registry.clone());
        tokio::spawn(async move {
            let _registered = registered;
            connection(stream, router, &limits, stop, force, &registry, watch).await;
        });
    }
    drop(listener);
    // Bounded drain: requests in flight get the grace period, then go.
    let grace = limits.shutdown_grace();
    let drained = async {
        loop {
            let waiting = registry.drained.notified();
            if registry.count() == 0 {
                return;
            }
            waiting.await;
        }
    };
    if tokio::time::timeout(grace, drained).await.is_err() {
        tracing::warn!(open = registry.count(), "connections still open after {:.1} s of shutdown grace; closing them", grace.as_secs_f64());
        let _ = force_tx.send(true);
    }
}

/// Answer 503 and close, without reading the request.
fn shed(mut stream: TcpStream, registry: &Arc<Registry>) {
    if registry.shedding.fetch_add(1, Ordering::SeqCst) >= MAX_SHEDDING {
        registry.shedding.fetch_sub(1, Ordering::SeqCst);
        return; // dropped: closed at once
    }
    let registry = registry.clone();
    tokio::spawn(async move {
        const BODY: &str = "{\"error\":\"too many connections; retry shortly\"}";
        let answer = format!("HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\nretry-after: 1\r\nconnection: close\r\ncontent-length: {}\r\n\r\n{BODY}", BODY.len());
        let _ = tokio::time::timeout(Duration::from_secs(1), async {
            let _ = stream.write_all(answer.as_bytes()).await;
            let _ = stream.shutdown().await;
        })
        .await;
        registry.shedding.fetch_sub(1, Ordering::SeqCst);
    });
}

/// A connection's shared counters, as its task and its socket see them.
#[derive(Clone)]
struct Watch {
    last_active: Arc<AtomicU64>,
    head_started: Arc<AtomicU64>,
    in_flight: Arc<AtomicUsize>,
    close: Arc<Notify>,
}

async fn connection(stream: TcpStream, router: Router, limits: &ServerLimits, mut stop: watch::Receiver<bool>, mut force: watch::Receiver<bool>, registry: &Arc<Registry>, watch: Watch) {
    let _ = stream.set_nodelay(true);
    let io = hyper_util::rt::TokioIo::new(Watched { inner: stream, watch: watch.clone(), registry: registry.clone() });
    let body_timeout = limits.body_read_timeout();
    let counters = watch.clone();
    let service = hyper::service::service_fn(move |request: hyper::Request<hyper::body::Incoming>| {
        let router = router.clone();
        // The headers are complete: no longer arriving.
        counters.head_started.store(0, Ordering::Relaxed);
        let guard = InFlight::enter(counters.in_flight.clone());
        async move {
            let _guard = guard;
            let request = request.map(|body| with_deadline(Body::new(body), body_timeout));
            let response = tower_call(router, request).await;
            Ok::<_, std::convert::Infallible>(response)
        }
    });
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(None::<Duration>)
        .keep_alive(true)
        .serve_connection(io, service);
    tokio::pin!(conn);
    let (idle, header) = (limits.idle_timeout(), limits.header_read_timeout());
    let mut tick = tokio::time::interval((idle.min(header) / 4).clamp(Duration::from_millis(50), Duration::from_secs(1)));
    let Watch { last_active, head_started, in_flight, close } = watch;
    let mut stopping = false;
    loop {
        tokio::select! {
            _ = conn.as_mut() => return,
            _ = close.notified() => return,
            _ = force.wait_for(|v| *v) => return,
            _ = stop.wait_for(|v| *v), if !stopping => {
                stopping = true;
                conn.as_mut().graceful_shutdown();
            }
            _ = tick.tick() => {
                if in_flight.load(Ordering::SeqCst) > 0 {
                    continue;
                }
                let now = registry.now();
                let since = |ms: u64| Duration::from_millis(now.saturating_sub(ms));
                match head_started.load(Ordering::Relaxed) {
                    0 if since(last_active.load(Ordering::Relaxed)) >= idle => return,
                    0 => {}
                    started if since(started - 1) >= header => return,
                    _ => {}
                }
            }
        }
    }
}

/// The router as a one-shot call (axum's `Router` is a tower service).
async fn tower_call(router: Router, request: hyper::Request<Body>) -> axum::response::Response {
    use hyper::service::Service as _;
    let service = hyper_util::service::TowerToHyperService::new(router);
    match service.call(request).await {
        Ok(response) => response,
        Err(never) => match never {},
    }
}

/// Counts a request in flight on its connection while alive.
struct InFlight(Arc<AtomicUsize>);

impl InFlight {
    fn enter(counter: Arc<AtomicUsize>) -> InFlight {
        counter.fetch_add(1, Ordering::SeqCst);
        InFlight(counter)
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// The body, ending in an error if it has not fully arrived by `timeout`
/// after the request started.
fn with_deadline(body: Body, timeout: Duration) -> Body {
    let deadline = tokio::time::Instant::now() + timeout;
    let stream = body.into_data_stream();
    let timed = futures::stream::unfold((stream, false), move |(mut stream, done)| async move {
        if done {
            return None;
        }
        match tokio::time::timeout_at(deadline, stream.next()).await {
            Ok(Some(item)) => Some((item, (stream, false))),
            Ok(None) => None,
            Err(_) => Some((Err(axum::Error::new(io::Error::new(io::ErrorKind::TimedOut, format!("the request body did not arrive within {:.1} s (server.body_read_timeout_secs)", timeout.as_secs_f64())))), (stream, true))),
        }
    });
    Body::from_stream(timed)
}

/// A socket that notes when bytes last moved (the idle timeout) and when
/// a request's first byte came (the header timeout).
struct Watched {
    inner: TcpStream,
    watch: Watch,
    registry: Arc<Registry>,
}

impl Watched {
    fn touch(&self) {
        self.watch.last_active.store(self.registry.now(), Ordering::Relaxed);
    }
}

impl AsyncRead for Watched {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(r, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.touch();
            if self.watch.in_flight.load(Ordering::SeqCst) == 0 && self.watch.head_started.load(Ordering::Relaxed) == 0 {
                self.watch.head_started.store(self.registry.now() + 1, Ordering::Relaxed);
            }
        }
        r
    }
}

impl AsyncWrite for Watched {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, data: &[u8]) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write(cx, data);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            self.touch();
        }
        r
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
