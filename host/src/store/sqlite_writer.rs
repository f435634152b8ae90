//! The one SQLite writer, with group commit.
//!
//! SQLite has one write lock per file, and every transaction pays a fixed
//! price: `BEGIN IMMEDIATE`, a WAL frame for every page it touched, the
//! commit. Dispatch bookkeeping (run start and end, delivered marks, lane
//! claims, step results) used to be one such transaction each, several per
//! event, each waiting for the last. Here a write is queued, and whoever
//! holds the connection next runs **everything queued** in one transaction
//! — the webhook committer's batch, the rate ledger's batch and the
//! dispatch marks of every lane that finished meanwhile share one commit.
//!
//! Each queued write runs in a savepoint of its own, so one that fails is
//! undone alone and answered its own error; the others still commit. A
//! write is answered only after the commit, so "Ok" still means durable.
//!
//! How a caller waits: it queues its write and takes the connection if it
//! is free; whoever holds it runs everything queued (the "leader"). A
//! caller that finds it taken sleeps on its own answer, not on the lock,
//! so a write committed in someone else's batch returns as soon as that
//! batch commits. Whoever lets the connection go wakes the oldest write
//! still queued, to lead next: nothing queued is left behind.
use anyhow::{anyhow, Result};
use parking_lot::{Condvar, Mutex, MutexGuard};
use rusqlite::Connection;
use std::sync::Arc;

/// Most queued writes folded into one transaction: bounds how long one
/// batch holds the write lock (and so the latency of the write behind it).
const MAX_BATCH: usize = 512;

/// A queued write. `run` may be called again in a transaction of its own
/// when the batch it was in could not commit, so it computes its answer
/// afresh each time.
trait Queued: Send {
    fn run(&mut self, conn: &Connection) -> Result<()>;
    fn complete(self: Box<Self>, result: Result<()>);
    /// Wake its caller to lead: the connection came free.
    fn nudge(&self);
}

/// Where a waiting caller finds its answer, or is told to lead.
struct Slot<T> {
    state: Mutex<SlotState<T>>,
    wake: Condvar,
}

struct SlotState<T> {
    answer: Option<Result<T>>,
    /// The connection came free while this write was the oldest queued.
    lead: bool,
}

struct Op<T, F> {
    f: F,
    out: Option<T>,
    slot: Arc<Slot<T>>,
    what: &'static str,
}

impl<T: Send, F: FnMut(&Connection) -> Result<T> + Send> Queued for Op<T, F> {
    fn run(&mut self, conn: &Connection) -> Result<()> {
        self.out = Some((self.f)(conn)?);
        Ok(())
    }
    fn complete(self: Box<Self>, result: Result<()>) {
        let Op { out, slot, what, .. } = *self;
        let result = result.and_then(|()| out.ok_or_else(|| anyhow!("{what}: the write produced nothing")));
        slot.state.lock().answer = Some(result);
        slot.wake.notify_one();
    }
    fn nudge(&self) {
        self.slot.state.lock().lead = true;
        self.slot.wake.notify_one();
    }
}

pub(super) struct Writer {
    conn: Mutex<Connection>,
    queue: Mutex<Vec<Box<dyn Queued>>>,
    /// Transactions committed (batches, not writes).
    commits: std::sync::atomic::AtomicU64,
}

/// The writer's connection, held. Letting it go wakes the oldest queued
/// write to lead.
pub(super) struct Locked<'a> {
    guard: Option<MutexGuard<'a, Connection>>,
    writer: &'a Writer,
}

impl std::ops::Deref for Locked<'_> {
    type Target = Connection;
    fn deref(&self) -> &Connection {
        self.guard.as_ref().expect("held until dropped")
    }
}

impl std::ops::DerefMut for Locked<'_> {
    fn deref_mut(&mut self) -> &mut Connection {
        self.guard.as_mut().expect("held until dropped")
    }
}

impl Drop for Locked<'_> {
    fn drop(&mut self) {
        drop(self.guard.take());
        self.writer.let_go();
    }
}

impl Writer {
    pub fn new(conn: Connection) -> Writer {
        Writer { conn: Mutex::new(conn), queue: Mutex::new(Vec::new()), commits: Default::default() }
    }

    /// The connection itself, for work that is not batched (migrations,
    /// maintenance).
    pub fn lock(&self) -> Locked<'_> {
        Locked { guard: Some(self.conn.lock()), writer: self }
    }

    fn try_lock(&self) -> Option<Locked<'_>> {
        self.conn.try_lock().map(|g| Locked { guard: Some(g), writer: self })
    }

    /// The connection was let go: the oldest queued write leads next.
    fn let_go(&self) {
        if let Some(head) = self.queue.lock().first() {
            head.nudge();
        }
    }

    /// Run `f` in a write transaction shared with whatever else is queued,
    /// and answer once it is committed. `what` names it in errors.
    pub fn write<T, F>(&self, what: &'static str, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnMut(&Connection) -> Result<T> + Send + 'static,
    {
        let slot = Arc::new(Slot { state: Mutex::new(SlotState { answer: None, lead: false }), wake: Condvar::new() });
        self.queue.lock().push(Box::new(Op { f, out: None, slot: slot.clone(), what }));
        loop {
            if let Some(conn) = self.try_lock() {
                let _ = self.lead(conn, None);
            }
            let mut state = slot.state.lock();
            while state.answer.is_none() && !state.lead {
                slot.wake.wait(&mut state);
            }
            if let Some(done) = state.answer.take() {
                return done;
            }
            state.lead = false;
        }
    }

    /// Run `f` in a write transaction now, on this thread, together with
    /// everything queued before it (which commits first, in the same
    /// transaction). For writes that borrow what they write (a webhook
    /// batch, the rate ledger's jobs) and are batches already. Like a
    /// queued write, `f` may run twice (alone, after a batch that failed).
    pub fn write_now<T>(&self, mut f: impl FnMut(&Connection) -> Result<T>) -> Result<T> {
        let conn = self.lock();
        let mut out = None;
        // Run again alone if the batch it was in could not commit, so `f`
        // computes its answer afresh each time.
        let mut own = |c: &Connection| -> Result<()> {
            out = Some(f(c)?);
            Ok(())
        };
        let result = self.lead(conn, Some(&mut own));
        result.and_then(|()| out.ok_or_else(|| anyhow!("the write produced nothing")))
    }

    /// Run what is queued (and `own`, last) in one transaction and answer
    /// each queued write. Returns how `own` fared.
    fn lead(&self, conn: Locked<'_>, mut own: Option<&mut dyn FnMut(&Connection) -> Result<()>>) -> Result<()> {
        let mut ops: Vec<Box<dyn Queued>> = {
            let mut q = self.queue.lock();
            let n = q.len().min(MAX_BATCH);
            q.drain(..n).collect()
        };
        if ops.is_empty() {
            return match own {
                Some(f) => in_transaction(&conn, &self.commits, |c| f(c)),
                None => Ok(()),
            };
        }
        let single = ops.len() == 1 && own.is_none();
        let mut results: Vec<Result<()>> = Vec::with_capacity(ops.len());
        let mut own_result = Ok(());
        let batch = in_transaction(&conn, &self.commits, |c| {
            for op in ops.iter_mut() {
                results.push(if single { op.run(c) } else { savepoint(c, |c| op.run(c)) });
                lost_transaction(c)?;
            }
            if let Some(f) = own.as_mut() {
                own_result = savepoint(c, |c| f(c));
                lost_transaction(c)?;
            }
            Ok(())
        });
        match batch {
            Ok(()) => {
                for (op, r) in ops.into_iter().zip(results) {
                    op.complete(r);
                }
                own_result
            }
            // The batch could not commit (or SQLite undid it): each write
            // tries again alone, so one write's fault is only its own.
            Err(e) if ops.len() + own.is_some() as usize > 1 => {
                tracing::warn!("store: a batch of {} write(s) failed, each is tried alone: {e:#}", ops.len() + own.is_some() as usize);
                for mut op in ops {
                    let r = in_transaction(&conn, &self.commits, |c| op.run(c));
                    op.complete(r);
                }
                match own {
                    Some(f) => in_transaction(&conn, &self.commits, |c| f(c)),
                    None => Ok(()),
                }
            }
            // One queued write alone: its error is its answer.
            Err(e) => {
                for op in ops {
                    op.complete(Err(anyhow!("{e:#}")));
                }
                Ok(())
            }
        }
    }
}

/// `BEGIN IMMEDIATE`, `f`, `COMMIT` — or `ROLLBACK` when `f` fails. Taking
/// the write lock first means a batch never fails half-way because another
/// process wrote in between (see [`super::sqlite::SqliteStore`]).
fn in_transaction(conn: &Connection, commits: &std::sync::atomic::AtomicU64, f: impl FnOnce(&Connection) -> Result<()>) -> Result<()> {
    conn.prepare_cached("BEGIN IMMEDIATE")?.execute([])?;
    match f(conn).and_then(|()| Ok(conn.prepare_cached("COMMIT")?.execute([]).map(|_| ())?)) {
        Ok(()) => {
            commits.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            Ok(())
        }
        Err(e) => {
            if !conn.is_autocommit() {
                let _ = conn.execute_batch("ROLLBACK");
            }
            Err(e)
        }
    }
}

/// `f` inside a savepoint: undone alone when it fails.
fn savepoint(conn: &Connection, f: impl FnOnce(&Connection) -> Result<()>) -> Result<()> {
    conn.prepare_cached("SAVEPOINT write")?.execute([])?;
    let r = f(conn);
    if conn.is_autocommit() {
        // SQLite rolled the whole transaction back (out of disk, I/O error).
        return r;
    }
    if r.is_err() {
        conn.prepare_cached("ROLLBACK TO write")?.execute([])?;
    }
    conn.prepare_cached("RELEASE write")?.execute([])?;
    r
}

/// Err when SQLite ended the transaction on its own (some errors roll it
/// back whole): the rest of the batch must not run in autocommit.
fn lost_transaction(conn: &Connection) -> Result<()> {
    if conn.is_autocommit() {
        return Err(anyhow!("the store rolled the transaction back"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use rusqlite::params;

    fn writer() -> Arc<Writer> {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch("CREATE TABLE t (k INTEGER PRIMARY KEY, v TEXT NOT NULL)").unwrap();
        Arc::new(Writer::new(conn))
    }

    fn count(w: &Writer) -> i64 {
        w.lock().query_row("SELECT COUNT(*) FROM t", [], |r| r.get(0)).unwrap()
    }

    fn insert(w: &Arc<Writer>, k: i64, v: &'static str) -> std::thread::JoinHandle<Result<usize>> {
        let w = w.clone();
        std::thread::spawn(move || w.write("insert", move |c| Ok(c.execute("INSERT INTO t (k, v) VALUES (?1, ?2)", params![k, v])?)))
    }

    /// Holds the writer until `n` writes are queued behind it.
    fn wait_queued(w: &Writer, n: usize) {
        while w.queue.lock().len() < n {
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
    }

    fn commits(w: &Writer) -> u64 {
        w.commits.load(std::sync::atomic::Ordering::Relaxed)
    }

    #[test]
    fn writes_queued_while_the_writer_is_busy_commit_together() {
        let w = writer();
        let guard = w.lock();
        let writers: Vec<_> = (0..8).map(|k| insert(&w, k, "x")).collect();
        wait_queued(&w, 8);
        drop(guard);
        for t in writers {
            assert_eq!(t.join().unwrap().unwrap(), 1);
        }
        assert_eq!(count(&w), 8);
        assert_eq!(commits(&w), 1, "eight queued writes, one transaction");
    }

    #[test]
    fn a_failing_write_is_undone_alone_and_answered_its_own_error() {
        let w = writer();
        let guard = w.lock();
        let (a, b) = (insert(&w, 1, "x"), insert(&w, 2, "x"));
        wait_queued(&w, 2);
        let dup = {
            let w = w.clone();
            std::thread::spawn(move || {
                w.write("duplicate", |c| {
                    c.execute("INSERT INTO t (k, v) VALUES (3, 'y')", [])?;
                    Ok(c.execute("INSERT INTO t (k, v) VALUES (1, 'dup')", [])?)
                })
            })
        };
        wait_queued(&w, 3);
        drop(guard);
        assert_eq!(a.join().unwrap().unwrap(), 1);
        assert_eq!(b.join().unwrap().unwrap(), 1);
        let err = dup.join().unwrap().unwrap_err();
        assert!(format!("{err:#}").contains("UNIQUE"), "{err:#}");
        // Its first insert (k = 3) was undone with it; the others stand.
        assert_eq!(count(&w), 2);
        let v: String = w.lock().query_row("SELECT v FROM t WHERE k = 1", [], |r| r.get(0)).unwrap();
        assert_eq!(v, "x");
    }

    #[test]
    fn when_a_write_ends_the_transaction_the_others_are_tried_alone() {
        let w = writer();
        // The bare lock: letting it go wakes nobody, so write_now leads both.
        let raw = w.conn.lock();
        let good = insert(&w, 1, "queued");
        wait_queued(&w, 1);
        let rogue = {
            let w = w.clone();
            // Ends the batch's transaction from inside: SQLite's own rollback on I/O errors looks the same.
            std::thread::spawn(move || w.write("rogue", |c| Ok(c.execute_batch("ROLLBACK")?)))
        };
        wait_queued(&w, 2);
        drop(raw);
        let mine = w.write_now(|c| Ok(c.execute("INSERT INTO t (k, v) VALUES (2, 'now')", [])?));
        assert_eq!(mine.unwrap(), 1, "write_now's own write is retried alone");
        assert_eq!(good.join().unwrap().unwrap(), 1, "the queued write is retried alone");
        assert!(rogue.join().unwrap().is_err(), "the write that broke the batch fails");
        assert_eq!(count(&w), 2);
    }

    #[test]
    fn many_threads_writing_at_once_lose_nothing() {
        let w = writer();
        let threads: Vec<_> = (0..8)
            .map(|t| {
                let w = w.clone();
                std::thread::spawn(move || {
                    for i in 0..200 {
                        let k = t * 1000 + i;
                        assert_eq!(w.write("insert", move |c| Ok(c.execute("INSERT INTO t (k, v) VALUES (?1, 'x')", params![k])?)).unwrap(), 1);
                    }
                })
            })
            .collect();
        threads.into_iter().for_each(|t| t.join().unwrap());
        assert_eq!(count(&w), 1600);
        println!("1600 writes from 8 threads: {} commits", commits(&w));
    }

    #[test]
    fn write_now_runs_what_was_queued_first_in_its_transaction() {
        let w = writer();
        let guard = w.lock();
        let queued = insert(&w, 5, "queued");
        wait_queued(&w, 1);
        // Nobody has led it yet: write_now finds it queued and runs it first.
        drop(guard);
        let now = w.write_now(|c| Ok(c.execute("INSERT INTO t (k, v) VALUES (5, 'now')", [])?));
        assert_eq!(queued.join().unwrap().unwrap(), 1);
        let v: String = w.lock().query_row("SELECT v FROM t WHERE k = 5", [], |r| r.get(0)).unwrap();
        assert_eq!(v, "queued", "the write queued first ran first");
        let err = now.unwrap_err();
        assert!(format!("{err:#}").contains("UNIQUE"), "{err:#}");
        let n = commits(&w);
        assert!(n == 1 || n == 2, "{n}");
    }
}
