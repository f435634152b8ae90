//! One thread per ledger runs its transactions, fed by a channel.
//!
//! Before, every ledger transaction was a `spawn_blocking`: a handoff to the
//! blocking pool and back, twice per vendor request, and the profile of the
//! plugin HTTP row was thread wakeups (docs/performance.md). Here one thread
//! owns the ledger's work; whatever is queued when it wakes runs in **one**
//! transaction (so concurrent requests share a `BEGIN IMMEDIATE … COMMIT`),
//! and jobs nobody waits for (stamping an accepted response) cost the
//! request path only a channel send.
//!
//! Jobs run in the order they were queued, so a stamp queued before a take
//! is in the ledger before that take reads it. Budgets stay exact across
//! processes: each batch is still one `LedgerStore::ledger_tx`, which no
//! other process can interleave with.
use super::ledger::{LedgerRows, LedgerStore};
use anyhow::Result;
use std::sync::mpsc;
use std::sync::Arc;

/// Jobs folded into one transaction at most: bounds how long one batch
/// holds the store's write lock.
const MAX_BATCH: usize = 64;

/// A queued piece of ledger work. `run` may be called again (in a
/// transaction of its own) when the batch it was in failed, so it must
/// compute its result afresh each time.
trait Job: Send {
    fn run(&mut self, rows: &mut dyn LedgerRows) -> Result<()>;
    fn complete(self: Box<Self>, result: Result<()>);
}

struct Typed<T, F> {
    f: F,
    out: Option<T>,
    reply: Option<tokio::sync::oneshot::Sender<Result<T>>>,
    /// What a job nobody waits for says in the log when it fails.
    what: &'static str,
}

impl<T: Send, F: FnMut(&mut dyn LedgerRows) -> Result<T> + Send> Job for Typed<T, F> {
    fn run(&mut self, rows: &mut dyn LedgerRows) -> Result<()> {
        self.out = Some((self.f)(rows)?);
        Ok(())
    }
    fn complete(self: Box<Self>, result: Result<()>) {
        let Typed { out, reply, what, .. } = *self;
        let result = result.and_then(|()| out.ok_or_else(|| anyhow::anyhow!("ledger transaction produced nothing")));
        match reply {
            Some(tx) => {
                let _ = tx.send(result);
            }
            None => {
                if let Err(e) = result {
                    tracing::warn!("rate ledger: {what} failed: {e:#}");
                }
            }
        }
    }
}

/// Ledger work that falls due with time rather than with a request (slot
/// leases that end): asked for its due work whenever the thread wakes, and
/// woken at the time it names.
pub trait Housekeeping: Send + Sync {
    /// Work due at `now_ms` (all of it when `closing`), and when more falls due.
    fn due(&self, now_ms: i64, closing: bool) -> (Vec<RowsFn>, Option<i64>);
}

/// Ledger work nobody waits for.
pub type RowsFn = Box<dyn FnMut(&mut dyn LedgerRows) -> Result<()> + Send>;

enum Msg {
    Job(Box<dyn Job>),
    /// Something new may fall due: ask the housekeeping again.
    Wake,
}

/// The ledger thread of one [`super::Limiter`]. Dropping it lets the thread
/// finish what is queued (stamps nobody waited for) and what the
/// housekeeping still holds, and waits for it.
pub struct Worker {
    tx: Option<mpsc::Sender<Msg>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Worker {
    pub fn start(ledger: Arc<dyn LedgerStore>, housekeeping: Arc<dyn Housekeeping>) -> Worker {
        let (tx, rx) = mpsc::channel::<Msg>();
        let thread = std::thread::Builder::new().name("spoke-ledger".into()).spawn(move || run(&*ledger, &*housekeeping, rx)).expect("spawning the rate ledger thread");
        Worker { tx: Some(tx), thread: Some(thread) }
    }

    fn send(&self, job: Box<dyn Job>) {
        // The thread only ends when the sender drops, i.e. with this Worker.
        if let Some(tx) = &self.tx {
            let _ = tx.send(Msg::Job(job));
        }
    }

    /// Tell the thread that housekeeping work may fall due earlier.
    pub fn wake(&self) {
        if let Some(tx) = &self.tx {
            let _ = tx.send(Msg::Wake);
        }
    }

    /// Queue `f` now; its result arrives on the receiver.
    fn submit<T: Send + 'static>(&self, f: impl FnMut(&mut dyn LedgerRows) -> Result<T> + Send + 'static) -> tokio::sync::oneshot::Receiver<Result<T>> {
        let (reply, rx) = tokio::sync::oneshot::channel();
        self.send(Box::new(Typed { f, out: None, reply: Some(reply), what: "" }));
        rx
    }

    /// Run `f` in a ledger transaction and wait for its result.
    pub async fn tx<T: Send + 'static>(&self, f: impl FnMut(&mut dyn LedgerRows) -> Result<T> + Send + 'static) -> Result<T> {
        self.submit(f).await.map_err(|_| anyhow::anyhow!("the rate ledger thread is gone"))?
    }

    /// Queue `f` without waiting; a failure is logged as `what`.
    pub fn queue<T: Send + 'static>(&self, what: &'static str, f: impl FnMut(&mut dyn LedgerRows) -> Result<T> + Send + 'static) {
        self.send(Box::new(Typed { f, out: None, reply: None, what }));
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        drop(self.tx.take());
        if let Some(t) = self.thread.take() {
            // Not from the ledger thread itself (a job never owns a Worker).
            let _ = t.join();
        }
    }
}

impl Job for RowsFn {
    fn run(&mut self, rows: &mut dyn LedgerRows) -> Result<()> {
        self(rows)
    }
    fn complete(self: Box<Self>, result: Result<()>) {
        if let Err(e) = result {
            tracing::warn!("rate ledger: settling leased slots failed: {e:#}");
        }
    }
}

fn run(ledger: &dyn LedgerStore, housekeeping: &dyn Housekeeping, rx: mpsc::Receiver<Msg>) {
    let mut next_due: Option<i64> = None;
    let mut open = true;
    while open {
        let first = match next_due {
            Some(at) => match rx.recv_timeout(std::time::Duration::from_millis((at - crate::store::now_ms()).max(0) as u64)) {
                Ok(m) => Some(m),
                Err(mpsc::RecvTimeoutError::Timeout) => None,
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    open = false;
                    None
                }
            },
            None => match rx.recv() {
                Ok(m) => Some(m),
                Err(_) => {
                    open = false;
                    None
                }
            },
        };
        let mut batch: Vec<Box<dyn Job>> = Vec::new();
        if let Some(Msg::Job(j)) = first {
            batch.push(j);
        }
        while open && batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(Msg::Job(j)) => batch.push(j),
                Ok(Msg::Wake) => {}
                Err(mpsc::TryRecvError::Empty) => break,
                Err(mpsc::TryRecvError::Disconnected) => open = false,
            }
        }
        // Due housekeeping goes after the requests' jobs, in the same
        // transaction; when closing, everything it still holds.
        let (due, next) = housekeeping.due(crate::store::now_ms(), !open);
        next_due = next;
        batch.extend(due.into_iter().map(|f| Box::new(f) as Box<dyn Job>));
        if !batch.is_empty() {
            run_batch(ledger, batch);
        }
    }
}

fn run_batch(ledger: &dyn LedgerStore, mut batch: Vec<Box<dyn Job>>) {
    let result = ledger.ledger_tx(&mut |rows| {
        for job in batch.iter_mut() {
            job.run(rows)?;
        }
        Ok(())
    });
    match result {
        Ok(()) => batch.into_iter().for_each(|j| j.complete(Ok(()))),
        Err(e) if batch.len() == 1 => batch.pop().unwrap().complete(Err(e)),
        // The batch rolled back (`ledger_tx` commits all or nothing):
        // give each job a transaction of its own, so one failing job
        // fails alone.
        Err(_) => {
            for mut job in batch {
                let r = ledger.ledger_tx(&mut |rows| job.run(rows));
                job.complete(r);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rate_limit::ledger::MemoryLedger;

    struct Nothing;
    impl Housekeeping for Nothing {
        fn due(&self, _: i64, _: bool) -> (Vec<RowsFn>, Option<i64>) {
            (Vec::new(), None)
        }
    }

    #[tokio::test]
    async fn queued_work_is_in_the_ledger_before_a_later_job_reads_it() {
        let w = Worker::start(Arc::new(MemoryLedger::default()), Arc::new(Nothing));
        w.queue("add", |rows| rows.add_spent("b", 60, 1, 2));
        w.queue("add", |rows| rows.add_spent("b", 60, 2, 1));
        assert_eq!(w.tx(|rows| rows.spent("b", 60, 0)).await.unwrap(), 3);
    }

    #[tokio::test]
    async fn a_failing_job_in_a_batch_fails_alone_and_the_others_count_once() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(crate::store::SqliteStore::open(&dir.path().join("s.db")).unwrap());
        let w = Worker::start(store, Arc::new(Nothing));
        // Hold the thread busy so the next three are queued as one batch.
        let (hold, held) = std::sync::mpsc::channel::<()>();
        w.queue("hold", move |_rows| Ok(held.recv().ok()));
        let (a, b, c) = (
            w.submit(|rows| rows.add_spent("b", 60, 1, 1)),
            w.submit(|_rows| -> Result<()> { anyhow::bail!("no") }),
            w.submit(|rows| rows.add_spent("b", 60, 1, 1)),
        );
        hold.send(()).unwrap();
        drop(hold); // a rerun of the hold job (if it shared the batch) returns at once
        a.await.unwrap().unwrap();
        assert!(b.await.unwrap().is_err());
        c.await.unwrap().unwrap();
        assert_eq!(w.tx(|rows| rows.spent("b", 60, 0)).await.unwrap(), 2);
    }
}
