//! The SQLite engine of [`Store`]: one file, WAL, `synchronous = NORMAL`
//! (a commit survives a process crash; WAL makes it cheap).
use super::sqlite_writer::{Locked, Writer};
use super::*;
use parking_lot::{Mutex, MutexGuard};
use anyhow::Context;
use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};
use std::collections::HashSet;
use std::path::Path;

/// The migrations, in order. A new file is appended here, never edited.
const MIGRATIONS: &[(&str, &str)] = &[
    ("0001_kv", include_str!("../../migrations/sqlite/0001_kv.sql")),
    ("0002_events", include_str!("../../migrations/sqlite/0002_events.sql")),
    ("0003_scripts", include_str!("../../migrations/sqlite/0003_scripts.sql")),
    ("0004_dispatch_lanes", include_str!("../../migrations/sqlite/0004_dispatch_lanes.sql")),
    ("0005_rate_ledger", include_str!("../../migrations/sqlite/0005_rate_ledger.sql")),
    ("0006_retention_routing_quotas", include_str!("../../migrations/sqlite/0006_retention_routing_quotas.sql")),
    ("0007_script_hash", include_str!("../../migrations/sqlite/0007_script_hash.sql")),
    ("0008_flows", include_str!("../../migrations/sqlite/0008_flows.sql")),
    ("0009_run_logs", include_str!("../../migrations/sqlite/0009_run_logs.sql")),
    ("0010_subject_lanes", include_str!("../../migrations/sqlite/0010_subject_lanes.sql")),
    ("0011_claims", include_str!("../../migrations/sqlite/0011_claims.sql")),
    ("0012_due_index", include_str!("../../migrations/sqlite/0012_due_index.sql")),
];

/// Every write transaction here is `BEGIN IMMEDIATE`: it takes the write
/// lock first and waits for it (busy timeout). A deferred one that reads
/// and then writes fails at once with "database is locked" when another
/// connection (another process) wrote in between (WAL cannot upgrade a
/// stale snapshot), which answered webhooks 503.
pub struct SqliteStore {
    /// The writer, with group commit (`sqlite_writer.rs`). Its lock is
    /// parking_lot's, which is eventually fair (a waiter is handed
    /// the lock within about half a millisecond), so a flood of webhook
    /// commits cannot starve dispatch marks and run records; a strictly fair
    /// lock was tried and made every contended write a thread handover,
    /// which widened `state::update`'s compare-and-swap window until 32
    /// flows on one key gave up.
    writer: Writer,
    /// Read-only connections for what only reads (due work, lists, state
    /// lookups): under WAL a reader never waits for a writer, so dispatch
    /// and the CLI are not queued behind a webhook group commit. Empty in
    /// memory, where reads use the one connection.
    readers: Vec<Mutex<Connection>>,
    next_reader: std::sync::atomic::AtomicUsize,
}

/// Read connections per store: dispatch, the flow runner and a few API or
/// plugin reads at once; more would only add memory.
const READERS: usize = 3;

/// Prepared statements kept per connection: more than the hot path uses,
/// so none is parsed and planned again per event (rusqlite keeps 16).
const STATEMENT_CACHE: usize = 128;

impl SqliteStore {
    pub fn open(path: &Path) -> Result<SqliteStore> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        let conn = Connection::open(path).with_context(|| format!("opening store {}", path.display()))?;
        let mut store = SqliteStore::init(conn).with_context(|| format!("preparing store {}", path.display()))?;
        for _ in 0..READERS {
            let reader = Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX)
                .with_context(|| format!("opening store {} for reading", path.display()))?;
            reader.busy_timeout(std::time::Duration::from_secs(5))?;
            reader.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
            store.readers.push(Mutex::new(reader));
        }
        Ok(store)
    }

    pub fn open_in_memory() -> Result<SqliteStore> {
        SqliteStore::init(Connection::open_in_memory()?)
    }

    fn init(mut conn: Connection) -> Result<SqliteStore> {
        // First, so even switching a new file to WAL waits for another
        // process doing the same instead of failing "database is locked".
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        // Switching a new file to WAL needs it alone; another process doing
        // the same at that moment is answered "locked" without the busy
        // handler being asked, so wait a little and try again.
        let mut tries = 0;
        while let Err(e) = conn.pragma_update(None, "journal_mode", "WAL") {
            tries += 1;
            let busy = matches!(e.sqlite_error_code(), Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked));
            if tries > 100 || !busy {
                return Err(e).context("switching the store to WAL");
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        // The WAL is reset at each checkpoint; this caps the file it leaves
        // behind after a burst of writes.
        conn.pragma_update(None, "journal_size_limit", 16i64 << 20)?;
        conn.execute_batch("CREATE TABLE IF NOT EXISTS schema_migrations (name TEXT PRIMARY KEY, applied INTEGER NOT NULL)").context("creating schema_migrations")?;
        for (name, sql) in MIGRATIONS {
            let done: Option<String> = conn.query_row("SELECT name FROM schema_migrations WHERE name = ?1", [name], |r| r.get(0)).optional().context("reading schema_migrations")?;
            if done.is_none() {
                let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
                // Asked again under the write lock: processes starting on a
                // new store at once each saw it missing, and the second to
                // apply it failed ("duplicate column").
                let applied: Option<String> = tx.query_row("SELECT name FROM schema_migrations WHERE name = ?1", [name], |r| r.get(0)).optional()?;
                if applied.is_some() {
                    continue;
                }
                tx.execute_batch(sql).with_context(|| format!("migration {name}"))?;
                tx.execute("INSERT INTO schema_migrations (name, applied) VALUES (?1, ?2)", params![name, now_ms()])?;
                tx.commit()?;
            }
        }
        conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
        Ok(SqliteStore { writer: Writer::new(conn), readers: Vec::new(), next_reader: Default::default() })
    }

    /// The writer's connection, for writes that are not batched.
    pub(super) fn conn(&self) -> Locked<'_> {
        self.writer.lock()
    }

    pub(super) fn writer(&self) -> &Writer {
        &self.writer
    }

    /// A read-only connection: a free one if any, else the next in turn.
    pub(super) fn reader(&self) -> Reader<'_> {
        if self.readers.is_empty() {
            return Reader::Writer(self.conn());
        }
        for r in &self.readers {
            if let Some(guard) = r.try_lock() {
                return Reader::Own(guard);
            }
        }
        let i = self.next_reader.fetch_add(1, std::sync::atomic::Ordering::Relaxed) % self.readers.len();
        Reader::Own(self.readers[i].lock())
    }
}

/// A connection to read with: a reader of its own, or (in memory) the writer.
pub(super) enum Reader<'a> {
    Own(MutexGuard<'a, Connection>),
    Writer(Locked<'a>),
}

impl std::ops::Deref for Reader<'_> {
    type Target = Connection;
    fn deref(&self) -> &Connection {
        match self {
            Reader::Own(c) => c,
            Reader::Writer(c) => c,
        }
    }
}

fn summary(r: &rusqlite::Row) -> rusqlite::Result<EventSummary> {
    Ok(EventSummary {
        seq: r.get(0)?,
        connector: r.get(1)?,
        topic: r.get(2)?,
        dedupe_id: r.get(3)?,
        subject: r.get(4)?,
        received_at: r.get(5)?,
        status: r.get(6)?,
    })
}

/// The columns [`due_row`] reads (and the lane's `next_at`, tenth).
const DUE_SELECT: &str = "SELECT d.event_seq, d.subscriber, d.attempts, e.connector, e.topic, e.dedupe_id, e.subject, e.occurred_at, e.payload, d.next_at
     FROM dispatches d JOIN events e ON e.seq = d.event_seq";

/// A `Due` from columns seq, subscriber, attempts, connector, topic,
/// dedupe_id, subject, occurred_at, payload.
fn due_row(r: &rusqlite::Row) -> rusqlite::Result<Due> {
    let payload: String = r.get(8)?;
    Ok(Due {
        seq: r.get(0)?,
        subscriber: r.get(1)?,
        attempts: r.get::<_, i64>(2)? as u32,
        connector: r.get(3)?,
        event: Event {
            topic: r.get(4)?,
            id: r.get(5)?,
            subject: r.get(6)?,
            occurred_at: r.get(7)?,
            payload: serde_json::from_str(&payload).unwrap_or(serde_json::Value::String(payload)),
        },
    })
}

/// Claim one dispatch read as due, if it still is: pending, and not claimed
/// by another owner whose lease runs. A read that went stale (delivered
/// meanwhile, or taken by another host) claims nothing.
fn claim_row(conn: &Connection, seq: i64, subscriber: &str, claim: &Claim, now: i64) -> Result<bool> {
    let mut st = conn.prepare_cached(
        "UPDATE dispatches SET claimed_by = ?3, claimed_until = ?4
         WHERE event_seq = ?1 AND subscriber = ?2 AND status = 'pending' AND (claimed_until <= ?5 OR claimed_by = ?3)",
    )?;
    Ok(st.execute(params![seq, subscriber, claim.owner, claim.until, now])? == 1)
}

fn run_record(r: &rusqlite::Row) -> rusqlite::Result<RunRecord> {
    let steps: String = r.get(10)?;
    Ok(RunRecord {
        id: r.get(0)?,
        script: r.get(1)?,
        version: r.get(2)?,
        function: r.get(3)?,
        trigger: r.get(4)?,
        started_at: r.get(5)?,
        ended_at: r.get(6)?,
        outcome: r.get(7)?,
        error: r.get(8)?,
        location: r.get(9)?,
        steps: serde_json::from_str(&steps).unwrap_or_default(),
        logs: serde_json::from_str(&r.get::<_, String>(11)?).unwrap_or_default(),
        flow_key: r.get(12)?,
    })
}

impl Store for SqliteStore {
    fn kv_get(&self, connector: &str, key: &str) -> Result<Option<Vec<u8>>> {
        Ok(self.reader().query_row("SELECT value FROM kv WHERE connector = ?1 AND key = ?2", params![connector, key], |r| r.get(0)).optional()?)
    }

    fn kv_set(&self, connector: &str, key: &str, value: &[u8], quota: KvQuota) -> Result<()> {
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let old: Option<i64> = tx.query_row("SELECT length(value) FROM kv WHERE connector = ?1 AND key = ?2", params![connector, key], |r| r.get(0)).optional()?;
        let (keys, bytes): (i64, i64) =
            tx.query_row("SELECT keys, bytes FROM kv_usage WHERE connector = ?1", [connector], |r| Ok((r.get(0)?, r.get(1)?))).optional()?.unwrap_or((0, 0));
        let (new_keys, new_bytes) = kv_usage_after(connector, key, value, old, (keys, bytes), quota)?;
        tx.execute(
            "INSERT INTO kv (connector, key, value, updated) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (connector, key) DO UPDATE SET value = excluded.value, updated = excluded.updated",
            params![connector, key, value, now_ms()],
        )?;
        tx.execute(
            "INSERT INTO kv_usage (connector, keys, bytes) VALUES (?1, ?2, ?3) ON CONFLICT (connector) DO UPDATE SET keys = excluded.keys, bytes = excluded.bytes",
            params![connector, new_keys, new_bytes],
        )?;
        tx.commit()?;
        Ok(())
    }

    fn kv_delete(&self, connector: &str, key: &str) -> Result<()> {
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let old: Option<i64> = tx.query_row("SELECT length(value) FROM kv WHERE connector = ?1 AND key = ?2", params![connector, key], |r| r.get(0)).optional()?;
        if let Some(old_len) = old {
            tx.execute("DELETE FROM kv WHERE connector = ?1 AND key = ?2", params![connector, key])?;
            tx.execute("UPDATE kv_usage SET keys = keys - 1, bytes = bytes - ?2 WHERE connector = ?1", params![connector, key.len() as i64 + old_len])?;
        }
        tx.commit()?;
        Ok(())
    }

    fn commit(&self, batch: &[Incoming]) -> Result<Vec<Committed>> {
        // The writer's transactions are IMMEDIATE: the write lock is taken
        // (waiting under the busy timeout) before the dedupe reads. A
        // deferred transaction that reads, then writes fails at once with
        // SQLITE_BUSY when another process wrote in between: the webhook
        // got a 503, and WICS retries only 90 s later.
        self.writer.write_now(|tx| {
        let mut out = Vec::with_capacity(batch.len());
        {
            let mut ins_delivery = tx.prepare_cached(
                "INSERT INTO deliveries (connector, received_at, http_status, outcome, headers, body, events) VALUES (?1, ?2, 200, ?3, ?4, ?5, ?6)",
            )?;
            let mut seen = tx.prepare_cached("SELECT 1 FROM dedupe WHERE connector = ?1 AND dedupe_id = ?2")?;
            let mut ins_event = tx.prepare_cached(
                "INSERT INTO events (connector, topic, dedupe_id, subject, occurred_at, payload, received_at, delivery_id, routed) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, NULL, 0)",
            )?;
            let mut ins_dedupe = tx.prepare_cached("INSERT INTO dedupe (connector, dedupe_id, seen_at, event_seq) VALUES (?1, ?2, ?3, ?4)")?;
            let mut link = tx.prepare_cached("UPDATE events SET delivery_id = ?1 WHERE seq = ?2")?;
            for incoming in batch {
                let d = &incoming.delivery;
                let mut c = Committed::default();
                let mut seqs = Vec::new();
                for event in &incoming.events {
                    if seen.exists(params![d.connector, event.id])? {
                        c.duplicates += 1;
                        continue;
                    }
                    ins_event.execute(params![d.connector, event.topic, event.id, event.subject, event.occurred_at, event.payload.to_string(), d.received_at])?;
                    let seq = tx.last_insert_rowid();
                    ins_dedupe.execute(params![d.connector, event.id, d.received_at, seq])?;
                    seqs.push(seq);
                    c.new_events += 1;
                }
                let outcome = if c.new_events == 0 && c.duplicates > 0 { "duplicate" } else { "accepted" };
                ins_delivery.execute(params![d.connector, d.received_at, outcome, headers_json(&d.headers), d.body, c.new_events as i64])?;
                c.delivery_id = tx.last_insert_rowid();
                for seq in seqs {
                    link.execute(params![c.delivery_id, seq])?;
                }
                out.push(c);
            }
        }
        Ok(out)
        })
    }

    fn record_refusals(&self, batch: &[RefusedDelivery], keep: u64) -> Result<()> {
        self.writer.write_now(|tx| {
        {
            let mut ins = tx.prepare_cached(
                "INSERT INTO deliveries (connector, received_at, http_status, outcome, reason, headers, body) VALUES (?1, ?2, ?3, 'refused', ?4, ?5, ?6)",
            )?;
            for r in batch {
                let d = &r.delivery;
                ins.execute(params![d.connector, d.received_at, r.http_status, r.reason, headers_json(&d.headers), d.body])?;
            }
        }
        // The newest `keep` stay: a flood replaces old refusals instead of
        // filling the disk.
        tx.execute(
            "DELETE FROM deliveries WHERE outcome = 'refused' AND id <= (SELECT id FROM deliveries WHERE outcome = 'refused' ORDER BY id DESC LIMIT 1 OFFSET ?1)",
            [keep as i64],
        )?;
        Ok(())
        })
    }

    fn unrouted(&self, after_seq: i64, limit: usize) -> Result<Vec<Unrouted>> {
        let conn = self.reader();
        let mut stmt = conn.prepare_cached("SELECT seq, connector, topic, received_at, subject FROM events WHERE routed = 0 AND seq > ?1 ORDER BY seq LIMIT ?2")?;
        let rows = stmt.query_map(params![after_seq, limit as i64], |r| {
            Ok(Unrouted { seq: r.get(0)?, connector: r.get(1)?, topic: r.get(2)?, received_at: r.get(3)?, subject: r.get(4)? })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    fn route(&self, routes: &[(Unrouted, Vec<String>)], now: i64) -> Result<()> {
        if routes.is_empty() {
            return Ok(());
        }
        self.writer.write_now(|tx| {
            let mut ins = tx.prepare_cached(
                "INSERT OR IGNORE INTO dispatches (event_seq, subscriber, status, attempts, next_at, updated_at, connector, topic, subject) VALUES (?1, ?2, 'pending', 0, ?3, ?3, ?4, ?5, ?6)",
            )?;
            let mut done = tx.prepare_cached("UPDATE events SET routed = 1 WHERE seq = ?1")?;
            for (e, subscribers) in routes {
                for s in subscribers {
                    ins.execute(params![e.seq, s, now, e.connector, e.topic, e.subject.as_deref().unwrap_or("")])?;
                }
                done.execute([e.seq])?;
            }
            Ok(())
        })
    }

    fn due(&self, claim: &Claim, now: i64, limit: usize, busy: &HashSet<Lane>) -> Result<Vec<Due>> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        // The head of each lane (subscriber, connector, topic, subject): the
        // lowest pending seq. Only a due head is returned, so a lane waiting
        // on a retry or claimed by another host holds back the events behind
        // it — that is what in-order means. Pending dispatches are walked in
        // event order, each kept only if no earlier one of its lane is
        // pending: index probes, not a pass over the whole backlog. Only the
        // lane columns are read here; the events (payloads) only for the
        // heads claimed, so lanes this host is busy with cost one row each.
        let heads: Vec<(i64, Lane)> = {
            let conn = self.reader();
            let mut stmt = conn.prepare_cached(
                "SELECT d.event_seq, d.subscriber, d.connector, d.topic, d.subject FROM dispatches d
                 WHERE d.status = 'pending' AND d.next_at <= ?1 AND (d.claimed_until <= ?1 OR d.claimed_by = ?3)
                   AND NOT EXISTS (SELECT 1 FROM dispatches p WHERE p.status = 'pending' AND p.subscriber = d.subscriber AND p.connector = d.connector
                                   AND p.topic = d.topic AND p.subject = d.subject AND p.event_seq < d.event_seq)
                 ORDER BY d.event_seq LIMIT ?2",
            )?;
            let rows = stmt.query_map(params![now, (limit + busy.len()) as i64, claim.owner], |r| {
                Ok((r.get(0)?, Lane { subscriber: r.get(1)?, connector: r.get(2)?, topic: r.get(3)?, subject: r.get(4)? }))
            })?;
            let mut heads = Vec::new();
            for row in rows {
                let (seq, lane) = row?;
                if !busy.contains(&lane) {
                    heads.push((seq, lane));
                    if heads.len() == limit {
                        break;
                    }
                }
            }
            heads
        };
        if heads.is_empty() {
            return Ok(Vec::new());
        }
        self.writer.write_now(|tx| {
            let mut claimed = Vec::with_capacity(heads.len());
            let mut event = tx.prepare_cached(&format!("{DUE_SELECT} WHERE d.event_seq = ?1 AND d.subscriber = ?2"))?;
            for (seq, lane) in &heads {
                if claim_row(tx, *seq, &lane.subscriber, claim, now)? {
                    claimed.push(event.query_row(params![seq, lane.subscriber], due_row)?);
                }
            }
            Ok(claimed)
        })
    }

    fn lane_next(&self, lane: &Lane, after_seq: i64, claim: &Claim, now: i64) -> Result<Option<Due>> {
        let row = self
            .reader()
            .prepare_cached(&format!(
                "{DUE_SELECT}
                 WHERE d.status = 'pending' AND d.subscriber = ?1 AND d.connector = ?2 AND d.topic = ?3 AND d.subject = ?4 AND d.event_seq > ?5
                 ORDER BY d.event_seq LIMIT 1"
            ))?
            .query_row(params![lane.subscriber, lane.connector, lane.topic, lane.subject, after_seq], |r| Ok((due_row(r)?, r.get::<_, i64>(9)?)))
            .optional()?;
        // The lane's next event waiting on a backoff holds the lane.
        let Some((due, _)) = row.filter(|(_, next_at)| *next_at <= now) else {
            return Ok(None);
        };
        // Claimed by another host meanwhile: it holds the lane.
        let (seq, subscriber, claim, what) = (due.seq, due.subscriber.clone(), claim.clone(), "claiming a lane's next event");
        Ok(self.writer.write(what, move |c| claim_row(c, seq, &subscriber, &claim, now))?.then_some(due))
    }

    fn release_orphan_claims(&self, machine: &str, alive: &dyn Fn(i64) -> bool) -> Result<usize> {
        let conn = self.conn();
        let owners: Vec<String> = conn
            .prepare("SELECT DISTINCT claimed_by FROM dispatches WHERE status = 'pending' AND claimed_by IS NOT NULL")?
            .query_map([], |r| r.get(0))?
            .collect::<rusqlite::Result<_>>()?;
        let mut n = 0;
        for owner in owners.iter().filter(|o| super::owner_gone(o, machine, alive)) {
            n += conn.execute("UPDATE dispatches SET claimed_by = NULL, claimed_until = 0 WHERE claimed_by = ?1 AND status = 'pending'", [owner])?;
        }
        Ok(n)
    }

    fn next_due_at(&self) -> Result<Option<i64>> {
        Ok(self.reader().query_row("SELECT MIN(next_at) FROM dispatches WHERE status = 'pending'", [], |r| r.get(0))?)
    }

    fn mark_delivered(&self, seq: i64, subscriber: &str, now: i64) -> Result<()> {
        let subscriber = subscriber.to_string();
        self.writer.write("marking a dispatch delivered", move |tx| {
            tx.prepare_cached("UPDATE dispatches SET status = 'delivered', attempts = attempts + 1, last_error = NULL, updated_at = ?3, claimed_by = NULL, claimed_until = 0 WHERE event_seq = ?1 AND subscriber = ?2")?
                .execute(params![seq, subscriber, now])?;
            tx.prepare_cached("INSERT INTO attempts (event_seq, subscriber, at, ok) VALUES (?1, ?2, ?3, 1)")?.execute(params![seq, subscriber, now])?;
            Ok(())
        })
    }

    fn mark_failed(&self, seq: i64, subscriber: &str, now: i64, error: &str, retry_at: Option<i64>) -> Result<()> {
        let (subscriber, error) = (subscriber.to_string(), error.to_string());
        let (status, next) = match retry_at {
            Some(at) => ("pending", at),
            None => ("dead", now),
        };
        self.writer.write("marking a dispatch failed", move |tx| {
            tx.prepare_cached(
                "UPDATE dispatches SET status = ?3, attempts = attempts + 1, next_at = ?4, last_error = ?5, updated_at = ?6, claimed_by = NULL, claimed_until = 0 WHERE event_seq = ?1 AND subscriber = ?2",
            )?
            .execute(params![seq, subscriber, status, next, error, now])?;
            tx.prepare_cached("INSERT INTO attempts (event_seq, subscriber, at, ok, error) VALUES (?1, ?2, ?3, 0, ?4)")?.execute(params![seq, subscriber, now, error])?;
            Ok(())
        })
    }

    fn replay(&self, seq: i64, now: i64) -> Result<usize> {
        let conn = self.conn();
        // An event no subscriber wanted is routed again: a subscriber added
        // since gets it.
        let rerouted = conn.execute("UPDATE events SET routed = 0 WHERE seq = ?1 AND NOT EXISTS (SELECT 1 FROM dispatches d WHERE d.event_seq = ?1)", [seq])?;
        Ok(rerouted
            + conn.execute(
                "UPDATE dispatches SET status = 'pending', attempts = 0, next_at = ?2, updated_at = ?2 WHERE event_seq = ?1 AND status IN ('dead', 'delivered')",
                params![seq, now],
            )?)
    }

    fn replay_dead(&self, now: i64) -> Result<usize> {
        Ok(self.conn().execute("UPDATE dispatches SET status = 'pending', attempts = 0, next_at = ?1, updated_at = ?1 WHERE status = 'dead'", params![now])?)
    }

    fn list_events(&self, f: &EventFilter) -> Result<Vec<EventSummary>> {
        let conn = self.reader();
        let sql = format!(
            "SELECT * FROM (SELECT e.seq, e.connector, e.topic, e.dedupe_id, e.subject, e.received_at, {STATUS_SQL} AS status FROM events e
              WHERE (?1 IS NULL OR e.connector = ?1) AND (?2 IS NULL OR e.topic = ?2))
             WHERE (?3 IS NULL OR status = ?3) ORDER BY seq DESC LIMIT ?4"
        );
        let mut stmt = conn.prepare(&sql)?;
        let limit = if f.limit == 0 { 100 } else { f.limit } as i64;
        let rows = stmt.query_map(params![f.connector, f.topic, f.status, limit], summary)?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    fn event(&self, seq: i64) -> Result<Option<EventDetail>> {
        let conn = self.reader();
        let sql = format!("SELECT e.seq, e.connector, e.topic, e.dedupe_id, e.subject, e.received_at, {STATUS_SQL}, e.occurred_at, e.payload, e.delivery_id FROM events e WHERE e.seq = ?1");
        let found = conn
            .query_row(&sql, [seq], |r| {
                let payload: String = r.get(8)?;
                Ok((summary(r)?, r.get::<_, Option<String>>(7)?, payload, r.get::<_, Option<i64>>(9)?))
            })
            .optional()?;
        let Some((summary, occurred_at, payload, delivery_id)) = found else { return Ok(None) };
        let mut stmt = conn.prepare("SELECT subscriber, status, attempts, next_at, last_error FROM dispatches WHERE event_seq = ?1 ORDER BY subscriber")?;
        let dispatches = stmt
            .query_map([seq], |r| Ok(DispatchState { subscriber: r.get(0)?, status: r.get(1)?, attempts: r.get::<_, i64>(2)? as u32, next_at: r.get(3)?, last_error: r.get(4)? }))?
            .collect::<rusqlite::Result<_>>()?;
        let mut stmt = conn.prepare("SELECT subscriber, at, ok, error FROM attempts WHERE event_seq = ?1 ORDER BY id")?;
        let attempts = stmt
            .query_map([seq], |r| Ok(Attempt { subscriber: r.get(0)?, at: r.get(1)?, ok: r.get::<_, i64>(2)? != 0, error: r.get(3)? }))?
            .collect::<rusqlite::Result<_>>()?;
        Ok(Some(EventDetail {
            summary,
            occurred_at,
            payload: serde_json::from_str(&payload).unwrap_or(serde_json::Value::String(payload)),
            delivery_id,
            dispatches,
            attempts,
        }))
    }

    fn refusals(&self, limit: usize) -> Result<Vec<Refusal>> {
        let conn = self.reader();
        let mut stmt = conn.prepare("SELECT id, connector, received_at, http_status, reason, headers, body FROM deliveries WHERE outcome = 'refused' ORDER BY id DESC LIMIT ?1")?;
        let rows = stmt.query_map([if limit == 0 { 100 } else { limit } as i64], |r| {
            let headers: String = r.get(5)?;
            let body: Vec<u8> = r.get(6)?;
            Ok(Refusal {
                id: r.get(0)?,
                connector: r.get(1)?,
                received_at: r.get(2)?,
                http_status: r.get::<_, i64>(3)? as u16,
                reason: r.get::<_, Option<String>>(4)?.unwrap_or_default(),
                headers: serde_json::from_str(&headers).unwrap_or_default(),
                body: String::from_utf8_lossy(&body).into_owned(),
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    fn prune_dedupe(&self, now: i64) -> Result<usize> {
        Ok(self.conn().execute("DELETE FROM dedupe WHERE seen_at < ?1", [now - DEDUPE_RETENTION_MS])?)
    }

    fn prune(&self, now: i64, r: &crate::config::Retention) -> Result<Pruned> {
        use crate::config::Retention;
        let mut p = Pruned { dedupe: self.prune_dedupe(now)?, ..Default::default() };
        // Each statement deletes at most PRUNE_BATCH rows and takes the lock
        // anew, so ingress and dispatch interleave with a long prune.
        let batches = |sql: &str, args: &[i64]| -> Result<usize> {
            let mut total = 0;
            loop {
                let mut conn = self.conn();
                let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
                let n = tx.execute(sql, rusqlite::params_from_iter(args.iter().chain([&PRUNE_BATCH])))?;
                tx.commit()?;
                total += n;
                if (n as i64) < PRUNE_BATCH {
                    return Ok(total);
                }
            }
        };
        // Deliveries: by age, then by count. Events keep their rows and
        // lose the link to the request that brought them.
        let unlink = |outcomes: &str, cutoff_id: i64| -> Result<()> {
            self.conn().execute(
                &format!("UPDATE events SET delivery_id = NULL WHERE delivery_id IN (SELECT id FROM deliveries WHERE id <= ?1 AND outcome IN ({outcomes}))"),
                [cutoff_id],
            )?;
            Ok(())
        };
        for (outcomes, days, max, count) in [
            ("'accepted', 'duplicate'", r.deliveries_days, r.max_deliveries, &mut p.deliveries),
            ("'refused'", r.refusals_days, r.max_refusals, &mut p.refusals),
        ] {
            let by_age: Option<i64> = self.conn().query_row(
                &format!("SELECT MAX(id) FROM deliveries WHERE received_at < ?1 AND outcome IN ({outcomes})"),
                [now - Retention::ms(days)],
                |row| row.get(0),
            )?;
            let by_count: Option<i64> = self
                .conn()
                .query_row(&format!("SELECT id FROM deliveries WHERE outcome IN ({outcomes}) ORDER BY id DESC LIMIT 1 OFFSET ?1"), [max as i64], |row| row.get(0))
                .optional()?;
            let Some(cutoff) = by_age.max(by_count) else { continue };
            unlink(outcomes, cutoff)?;
            *count = batches(&format!("DELETE FROM deliveries WHERE id IN (SELECT id FROM deliveries WHERE id <= ?1 AND outcome IN ({outcomes}) LIMIT ?2)"), &[cutoff])?;
        }
        // Events whose every dispatch is settled (or that had none), past
        // their age; dead letters are kept longer. Pending work is never
        // dropped.
        let settled = |dead: bool| {
            format!(
                "SELECT e.seq FROM events e WHERE e.received_at < ?1 AND e.routed = 1
                   AND NOT EXISTS (SELECT 1 FROM dispatches d WHERE d.event_seq = e.seq AND d.status = 'pending')
                   AND {} EXISTS (SELECT 1 FROM dispatches d WHERE d.event_seq = e.seq AND d.status = 'dead')
                 LIMIT ?2",
                if dead { "" } else { "NOT" }
            )
        };
        for (dead, days) in [(false, r.events_days), (true, r.dead_days)] {
            let cutoff = now - Retention::ms(days);
            loop {
                let mut conn = self.conn();
                let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
                let seqs: Vec<i64> = tx.prepare(&settled(dead))?.query_map(params![cutoff, PRUNE_BATCH], |row| row.get(0))?.collect::<rusqlite::Result<_>>()?;
                for seq in &seqs {
                    tx.execute("DELETE FROM attempts WHERE event_seq = ?1", [seq])?;
                    tx.execute("DELETE FROM dispatches WHERE event_seq = ?1", [seq])?;
                    tx.execute("DELETE FROM events WHERE seq = ?1", [seq])?;
                }
                tx.commit()?;
                p.events += seqs.len();
                if (seqs.len() as i64) < PRUNE_BATCH {
                    break;
                }
            }
        }
        // Steps whose run has ended (or is gone), past their age.
        p.steps = batches(
            "DELETE FROM steps WHERE rowid IN (SELECT s.rowid FROM steps s WHERE s.at < ?1
               AND NOT EXISTS (SELECT 1 FROM runs r WHERE r.id = s.run_id AND r.outcome IS NULL) LIMIT ?2)",
            &[now - Retention::ms(r.steps_days)],
        )?;
        // Ended runs: by age, then by count.
        let by_count: Option<i64> = self.conn().query_row("SELECT id FROM runs ORDER BY id DESC LIMIT 1 OFFSET ?1", [r.max_runs as i64], |row| row.get(0)).optional()?;
        p.runs = batches(
            "DELETE FROM runs WHERE id IN (SELECT id FROM runs WHERE outcome IS NOT NULL AND (started_at < ?1 OR id <= ?2) LIMIT ?3)",
            &[now - Retention::ms(r.runs_days), by_count.unwrap_or(0)],
        )?;
        // Finished flows, like ended runs (their calls go with them, and the
        // events they took); failed and in-doubt ones wait for an operator.
        // Events no flow took, like settled events.
        let flows_cutoff = now - Retention::ms(r.runs_days);
        batches(
            "DELETE FROM flow_inbox WHERE id IN (SELECT i.id FROM flow_inbox i JOIN flows f ON f.id = i.flow_id WHERE f.status = 'done' AND f.updated_at < ?1 LIMIT ?2)",
            &[flows_cutoff],
        )?;
        p.flows = batches("DELETE FROM flows WHERE id IN (SELECT id FROM flows WHERE status = 'done' AND updated_at < ?1 LIMIT ?2)", &[flows_cutoff])?;
        p.flow_events = batches(
            "DELETE FROM flow_inbox WHERE id IN (SELECT id FROM flow_inbox WHERE flow_id IS NULL AND received_at < ?1 LIMIT ?2)",
            &[now - Retention::ms(r.events_days)],
        )?;
        Ok(p)
    }

    fn run_start(&self, script: &str, version: i64, function: &str, trigger: &str, now: i64) -> Result<i64> {
        let (script, function, trigger) = (script.to_string(), function.to_string(), trigger.to_string());
        self.writer.write("recording a run's start", move |c| {
            c.prepare_cached("INSERT INTO runs (script, version, function, trigger, started_at, pid, machine) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)")?
                .execute(params![script, version, function, trigger, now, std::process::id(), super::machine()])?;
            Ok(c.last_insert_rowid())
        })
    }

    fn interrupt_orphan_runs(&self, now: i64, alive: &dyn Fn(i64) -> bool) -> Result<usize> {
        let conn = self.conn();
        let running: Vec<(i64, Option<i64>)> =
            conn.prepare("SELECT id, pid FROM runs WHERE outcome IS NULL AND (machine IS NULL OR machine = ?1)")?.query_map([super::machine()], |r| Ok((r.get(0)?, r.get(1)?)))?.collect::<rusqlite::Result<_>>()?;
        let mut n = 0;
        for (id, pid) in running {
            if pid.is_some_and(alive) {
                continue;
            }
            n += conn.execute(
                "UPDATE runs SET outcome = 'interrupted', ended_at = ?2, error = ?3 WHERE id = ?1 AND outcome IS NULL",
                params![id, now, INTERRUPTED],
            )?;
        }
        Ok(n)
    }

    fn run_finish(&self, id: i64, now: i64, error: Option<(&str, Option<&str>)>, steps: &[String], logs: &RunLogs) -> Result<()> {
        let (outcome, message, location) = match error {
            None => ("ok", None, None),
            Some((m, l)) => ("error", Some(m), l),
        };
        let (message, location) = (message.map(str::to_string), location.map(str::to_string));
        let (steps, lines, flow_key) = (serde_json::to_string(steps)?, serde_json::to_string(&logs.lines)?, logs.flow_key.clone());
        self.writer.write("recording a run's end", move |c| {
            c.prepare_cached("UPDATE runs SET ended_at = ?2, outcome = ?3, error = ?4, location = ?5, steps = ?6, logs = ?7, flow_key = ?8 WHERE id = ?1")?
                .execute(params![id, now, outcome, message, location, steps, lines, flow_key])?;
            Ok(())
        })
    }

    fn backlog(&self) -> Result<Backlog> {
        let conn = self.reader();
        let mut counts: Vec<(String, i64)> = ["pending", "delivered", "dead"].iter().map(|s| (s.to_string(), 0)).collect();
        let mut stmt = conn.prepare("SELECT status, COUNT(*) FROM dispatches GROUP BY status")?;
        for row in stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))? {
            let (status, n) = row?;
            match counts.iter_mut().find(|(s, _)| *s == status) {
                Some(c) => c.1 = n,
                None => counts.push((status, n)),
            }
        }
        let (unrouted, oldest_unrouted): (i64, Option<i64>) = conn.query_row("SELECT COUNT(*), MIN(received_at) FROM events WHERE routed = 0", [], |r| Ok((r.get(0)?, r.get(1)?)))?;
        counts.push(("unrouted".into(), unrouted));
        let oldest_pending: Option<i64> = conn.query_row(
            "SELECT MIN(e.received_at) FROM dispatches d JOIN events e ON e.seq = d.event_seq WHERE d.status = 'pending'",
            [],
            |r| r.get(0),
        )?;
        let oldest_ms = [oldest_unrouted, oldest_pending].into_iter().flatten().min();
        Ok(Backlog { counts, oldest_ms })
    }

    fn runs(&self, f: &RunFilter) -> Result<Vec<RunRecord>> {
        let conn = self.reader();
        // `IS` matches NULL too: the outcome of a run still running.
        let mut stmt = conn.prepare(&format!(
            "SELECT {RUN_COLUMNS} FROM runs WHERE (?1 IS NULL OR script = ?1) AND (?2 IS NULL OR function = ?2)
               AND (NOT ?3 OR outcome IS ?4) ORDER BY id DESC LIMIT ?5"
        ))?;
        let limit = if f.limit == 0 { 50 } else { f.limit } as i64;
        let rows = stmt.query_map(params![f.script, f.function, f.outcome.is_some(), f.outcome.and_then(RunOutcome::stored), limit], run_record)?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    fn run(&self, id: i64) -> Result<Option<RunRecord>> {
        Ok(self.reader().query_row(&format!("SELECT {RUN_COLUMNS} FROM runs WHERE id = ?1"), [id], run_record).optional()?)
    }

    fn step_get(&self, script: &str, key: &str) -> Result<Option<String>> {
        Ok(self.reader().query_row("SELECT result FROM steps WHERE script = ?1 AND key = ?2", params![script, key], |r| r.get(0)).optional()?)
    }

    fn step_put(&self, script: &str, key: &str, result: &str, run_id: i64, now: i64) -> Result<()> {
        let (script, key, result) = (script.to_string(), key.to_string(), result.to_string());
        self.writer.write("recording a step's result", move |c| {
            c.prepare_cached("INSERT OR IGNORE INTO steps (script, key, result, run_id, at) VALUES (?1, ?2, ?3, ?4, ?5)")?.execute(params![script, key, result, run_id, now])?;
            Ok(())
        })
    }

    fn state_get(&self, script: &str, key: &str) -> Result<Option<String>> {
        Ok(self.reader().query_row("SELECT value FROM script_state WHERE script = ?1 AND key = ?2", params![script, key], |r| r.get(0)).optional()?)
    }

    fn state_set(&self, script: &str, key: &str, value: &str, now: i64) -> Result<()> {
        self.conn().execute(
            "INSERT INTO script_state (script, key, value, updated) VALUES (?1, ?2, ?3, ?4) ON CONFLICT (script, key) DO UPDATE SET value = excluded.value, updated = excluded.updated",
            params![script, key, value, now],
        )?;
        Ok(())
    }

    fn state_delete(&self, script: &str, key: &str) -> Result<()> {
        self.conn().execute("DELETE FROM script_state WHERE script = ?1 AND key = ?2", params![script, key])?;
        Ok(())
    }

    fn state_swap(&self, script: &str, key: &str, expected: Option<&str>, value: &str, now: i64) -> Result<bool> {
        // One statement each: SQLite makes it atomic for every connection
        // to the file, so no transaction is needed.
        let written = match expected {
            None => self.conn().execute(
                "INSERT INTO script_state (script, key, value, updated) VALUES (?1, ?2, ?3, ?4) ON CONFLICT (script, key) DO NOTHING",
                params![script, key, value, now],
            )?,
            Some(old) => self.conn().execute(
                "UPDATE script_state SET value = ?3, updated = ?4 WHERE script = ?1 AND key = ?2 AND value = ?5",
                params![script, key, value, now, old],
            )?,
        };
        Ok(written == 1)
    }

    fn state_incr(&self, script: &str, key: &str, by: i64, now: i64) -> Result<i64> {
        // The WHERE leaves a value that is not an integer's JSON text alone
        // (CAST would read "abc" as 0), and a sum that overflows (SQLite
        // would make it a float); then nothing is returned.
        let new: Option<String> = self
            .conn()
            .query_row(
                "INSERT INTO script_state (script, key, value, updated) VALUES (?1, ?2, CAST(?3 AS TEXT), ?4)
                 ON CONFLICT (script, key) DO UPDATE SET value = CAST(CAST(value AS INTEGER) + ?3 AS TEXT), updated = excluded.updated
                     WHERE value = CAST(CAST(value AS INTEGER) AS TEXT) AND typeof(CAST(value AS INTEGER) + ?3) = 'integer'
                 RETURNING value",
                params![script, key, by, now],
                |r| r.get(0),
            )
            .optional()?;
        let Some(new) = new else { return Err(incr_refused(key, self.state_get(script, key)?, by)) };
        Ok(new.parse()?)
    }

    fn state_list(&self, script: &str, prefix: &str, limit: usize) -> Result<Vec<(String, String)>> {
        // A key range, so the primary key index finds them; `prefix_end` is
        // the first text after every key with the prefix.
        let conn = self.reader();
        let mut stmt = conn.prepare_cached("SELECT key, value FROM script_state WHERE script = ?1 AND key >= ?2 AND (?3 IS NULL OR key < ?3) ORDER BY key LIMIT ?4")?;
        let rows = stmt.query_map(params![script, prefix, prefix_end(prefix), limit as i64], |r| Ok((r.get(0)?, r.get(1)?)))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    fn script_loaded(&self, name: &str, version: i64, hash: &str, triggers: &serde_json::Value, change: Option<&serde_json::Value>, now: i64) -> Result<()> {
        self.conn().execute(
            "INSERT INTO scripts (name, version, loaded_at, triggers, trigger_change, hash) VALUES (?1, ?2, ?3, ?4, ?5, ?6)
             ON CONFLICT (name) DO UPDATE SET version = excluded.version, loaded_at = excluded.loaded_at, triggers = excluded.triggers,
                 error = NULL, error_at = NULL, removed_at = NULL, trigger_change = COALESCE(excluded.trigger_change, scripts.trigger_change),
                 hash = excluded.hash",
            params![name, version, now, triggers.to_string(), change.map(|c| c.to_string()), hash],
        )?;
        Ok(())
    }

    fn script_version(&self, name: &str) -> Result<i64> {
        Ok(self.reader().query_row("SELECT version FROM scripts WHERE name = ?1", [name], |r| r.get(0)).optional()?.unwrap_or(0))
    }

    fn script_hash(&self, name: &str) -> Result<Option<String>> {
        Ok(self.reader().query_row("SELECT hash FROM scripts WHERE name = ?1", [name], |r| r.get(0)).optional()?.flatten())
    }

    fn script_error(&self, name: &str, error: &str, now: i64) -> Result<()> {
        self.conn().execute(
            "INSERT INTO scripts (name, version, loaded_at, triggers, error, error_at) VALUES (?1, 0, ?3, '[]', ?2, ?3)
             ON CONFLICT (name) DO UPDATE SET error = excluded.error, error_at = excluded.error_at",
            params![name, error, now],
        )?;
        Ok(())
    }

    fn script_removed(&self, name: &str, now: i64) -> Result<()> {
        self.conn().execute("UPDATE scripts SET removed_at = ?2 WHERE name = ?1", params![name, now])?;
        Ok(())
    }

    fn scripts(&self) -> Result<Vec<ScriptStatus>> {
        let conn = self.reader();
        let mut stmt = conn.prepare("SELECT name, version, loaded_at, triggers, error, error_at, removed_at, trigger_change FROM scripts ORDER BY name")?;
        let rows: Vec<ScriptStatus> = stmt
            .query_map([], |r| {
                let triggers: String = r.get(3)?;
                Ok(ScriptStatus {
                    name: r.get(0)?,
                    version: r.get(1)?,
                    loaded_at: r.get(2)?,
                    triggers: serde_json::from_str(&triggers).unwrap_or_default(),
                    error: r.get(4)?,
                    error_at: r.get(5)?,
                    removed_at: r.get(6)?,
                    trigger_change: r.get::<_, Option<String>>(7)?.and_then(|t| serde_json::from_str(&t).ok()),
                    last_run: None,
                })
            })?
            .collect::<rusqlite::Result<_>>()?;
        let mut last = conn.prepare(&format!("SELECT {RUN_COLUMNS} FROM runs WHERE script = ?1 ORDER BY id DESC LIMIT 1"))?;
        rows.into_iter()
            .map(|mut s| {
                s.last_run = last.query_row([&s.name], run_record).optional()?;
                Ok(s)
            })
            .collect()
    }

    fn schedule_claim(&self, script: &str, function: &str, tick: i64, owner: &str) -> Result<bool> {
        let conn = self.conn();
        let won = conn.execute("INSERT OR IGNORE INTO schedule_ticks (script, function, tick, fired_by) VALUES (?1, ?2, ?3, ?4)", params![script, function, tick, owner])? == 1;
        conn.execute("DELETE FROM schedule_ticks WHERE script = ?1 AND function = ?2 AND tick < ?3", params![script, function, tick - SCHEDULE_TICKS_KEPT_MS])?;
        Ok(won)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Hosts starting on a new store at the same moment each apply the
    /// migrations once, and none fails on another's work.
    #[test]
    fn processes_opening_a_new_store_at_once_all_start() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("spoke.db");
        let barrier = std::sync::Arc::new(std::sync::Barrier::new(6));
        let openers: Vec<_> = (0..6)
            .map(|_| {
                let (path, barrier) = (path.clone(), barrier.clone());
                std::thread::spawn(move || {
                    barrier.wait();
                    SqliteStore::open(&path).map(|_| ()).map_err(|e| format!("{e:#}"))
                })
            })
            .collect();
        for o in openers {
            o.join().unwrap().unwrap();
        }
    }
    // The behaviour every engine shares is tested against both in
    // tests/store (the store contract).
}
