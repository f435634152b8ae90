//! Refused webhook requests are recorded off the request path: the handler
//! hands the record to a bounded queue and answers at once; one thread
//! writes the queue in batches and keeps only the newest refusals. A
//! refusal costs at most `refusal_body_bytes` of body and [`MAX_HEADERS`]
//! of headers, and nothing of the body for an unknown connector. When the
//! queue is full (a flood faster than the disk), the excess is counted and
//! reported, not written.
use crate::store::{DeliveryRecord, RefusedDelivery, Store};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, SyncSender, TrySendError};
use std::sync::Arc;

/// Refusals waiting to be written.
const QUEUE: usize = 1024;
/// Most refusals written in one transaction.
const BATCH: usize = 256;
/// Bytes of header names and values kept per refusal.
pub const MAX_HEADERS: usize = 8 * 1024;

pub struct RefusalLog {
    tx: SyncSender<RefusedDelivery>,
    body_bytes: usize,
    dropped: Arc<AtomicU64>,
}

impl RefusalLog {
    /// Start the writer thread; it ends when the log is dropped.
    pub fn start(store: Arc<dyn Store>, retention: &crate::config::Retention) -> RefusalLog {
        let (tx, rx) = sync_channel::<RefusedDelivery>(QUEUE);
        let dropped = Arc::new(AtomicU64::new(0));
        let (keep, seen) = (retention.max_refusals, dropped.clone());
        std::thread::Builder::new()
            .name("spoke-refusals".into())
            .spawn(move || {
                let mut reported = 0;
                while let Ok(first) = rx.recv() {
                    let mut batch = vec![first];
                    while batch.len() < BATCH {
                        match rx.try_recv() {
                            Ok(r) => batch.push(r),
                            Err(_) => break,
                        }
                    }
                    if let Err(e) = store.record_refusals(&batch, keep) {
                        tracing::error!("could not record {} refused webhook(s): {e:#}", batch.len());
                    }
                    let now = seen.load(Ordering::Relaxed);
                    if now > reported {
                        tracing::warn!(dropped_total = now, "{} refused webhook(s) not recorded: refusals arrive faster than the store writes them", now - reported);
                        reported = now;
                    }
                }
            })
            .expect("starting the refusal writer");
        RefusalLog { tx, body_bytes: retention.refusal_body_bytes, dropped }
    }

    /// Queue a refusal; never waits. `known` is whether the connector is
    /// configured: an unknown one keeps no body.
    pub fn record(&self, mut delivery: DeliveryRecord, http_status: u16, reason: &str, known: bool) {
        delivery.body.truncate(if known { self.body_bytes } else { 0 });
        // The name comes from the URL: an unknown one can be anything.
        delivery.connector = cut(&delivery.connector, 128);
        delivery.headers = cap_headers(delivery.headers);
        let reason = cut(reason, 2048);
        match self.tx.try_send(RefusedDelivery { delivery, http_status, reason }) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
                self.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Refusals not recorded since start because the queue was full.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

fn cut(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_string();
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

/// Headers up to [`MAX_HEADERS`] bytes; the rest are counted.
fn cap_headers(headers: Vec<(String, String)>) -> Vec<(String, String)> {
    let mut used = 0;
    let mut kept = Vec::new();
    let mut left_out = 0;
    for (k, v) in headers {
        let v = cut(&v, 1024);
        if used + k.len() + v.len() > MAX_HEADERS {
            left_out += 1;
            continue;
        }
        used += k.len() + v.len();
        kept.push((k, v));
    }
    if left_out > 0 {
        kept.push(("x-spoke-not-kept".into(), format!("{left_out} more header(s)")));
    }
    kept
}
