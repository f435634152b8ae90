//! Per-connector admission: each connector may run a bounded number of
//! plugin calls at once, so one connector's slow calls (waiting on a vendor,
//! on rate budget, or sleeping) can never take the instances another needs.
//! A call that finds its connector full waits in line a bounded time and
//! then fails as a transient `rate-limited` error, which callers retry.
use crate::error::{CallError, ErrorKind};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

pub struct Guards {
    per_connector: usize,
    queue: Duration,
    semaphores: Mutex<HashMap<String, Arc<Semaphore>>>,
}

impl Guards {
    pub fn new(per_connector: usize, queue: Duration) -> Guards {
        Guards { per_connector, queue, semaphores: Mutex::default() }
    }

    /// Slots a connector may hold at once.
    pub fn per_connector(&self) -> usize {
        self.per_connector
    }

    /// Slots in use per connector that has made a call.
    pub fn in_use(&self) -> Vec<(String, usize)> {
        let semaphores = self.semaphores.lock().unwrap();
        let mut used: Vec<_> = semaphores.iter().map(|(c, s)| (c.clone(), self.per_connector - s.available_permits())).collect();
        used.sort();
        used
    }

    /// Wait for one of `connector`'s call slots; the slot is freed when the
    /// permit drops. Keyed by connector name, so a plugin swap keeps the count.
    pub async fn enter(&self, connector: &str) -> Result<OwnedSemaphorePermit, CallError> {
        let semaphore = self.semaphores.lock().unwrap().entry(connector.to_string()).or_insert_with(|| Arc::new(Semaphore::new(self.per_connector))).clone();
        if let Ok(permit) = semaphore.clone().try_acquire_owned() {
            return Ok(permit);
        }
        match tokio::time::timeout(self.queue, semaphore.acquire_owned()).await {
            Ok(Ok(permit)) => Ok(permit),
            _ => Err(busy(format!(
                "connector {connector} already runs {} plugin calls (limits.max_concurrent_calls) and none finished within {:.1} s; try again",
                self.per_connector,
                self.queue.as_secs_f64()
            ))),
        }
    }
}

/// A transient "too busy" error: retried by dispatch, 503 over HTTP.
pub fn busy(message: String) -> CallError {
    let mut e = CallError::new(ErrorKind::RateLimited, message);
    e.retry_after_ms = Some(1000);
    e
}
