//! The SQLite engine of [`Store`]: one file, WAL, `synchronous = NORMAL`
//! (a commit survives a process crash; WAL makes it cheap).
use super::*;
use anyhow::Context;
use rusqlite::{params, Connection, OptionalExtension};
use std::path::Path;
use std::sync::Mutex;

/// The migrations, in order. A new file is appended here, never edited.
const MIGRATIONS: &[(&str, &str)] = &[
    ("0001_kv", include_str!("../../migrations/sqlite/0001_kv.sql")),
    ("0002_events", include_str!("../../migrations/sqlite/0002_events.sql")),
    ("0003_scripts", include_str!("../../migrations/sqlite/0003_scripts.sql")),
    ("0004_dispatch_lanes", include_str!("../../migrations/sqlite/0004_dispatch_lanes.sql")),
    ("0005_rate_ledger", include_str!("../../migrations/sqlite/0005_rate_ledger.sql")),
];

pub struct SqliteStore {
    conn: Mutex<Connection>,
    /// The rate ledger's own connection (`None` in memory, where a second
    /// connection would be another database): a call waiting for budget
    /// never queues behind a webhook commit in this process.
    ledger: Option<Mutex<Connection>>,
}

impl SqliteStore {
    pub fn open(path: &Path) -> Result<SqliteStore> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        let conn = Connection::open(path).with_context(|| format!("opening store {}", path.display()))?;
        let mut store = SqliteStore::init(conn).with_context(|| format!("preparing store {}", path.display()))?;
        let ledger = Connection::open(path).with_context(|| format!("opening store {}", path.display()))?;
        ledger.pragma_update(None, "synchronous", "NORMAL")?;
        ledger.busy_timeout(std::time::Duration::from_secs(10))?;
        store.ledger = Some(Mutex::new(ledger));
        Ok(store)
    }

    pub fn open_in_memory() -> Result<SqliteStore> {
        SqliteStore::init(Connection::open_in_memory()?)
    }

    fn init(mut conn: Connection) -> Result<SqliteStore> {
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        conn.execute_batch("CREATE TABLE IF NOT EXISTS schema_migrations (name TEXT PRIMARY KEY, applied INTEGER NOT NULL)")?;
        for (name, sql) in MIGRATIONS {
            let done: Option<String> = conn.query_row("SELECT name FROM schema_migrations WHERE name = ?1", [name], |r| r.get(0)).optional()?;
            if done.is_none() {
                let tx = conn.transaction()?;
                tx.execute_batch(sql).with_context(|| format!("migration {name}"))?;
                tx.execute("INSERT INTO schema_migrations (name, applied) VALUES (?1, ?2)", params![name, now_ms()])?;
                tx.commit()?;
            }
        }
        Ok(SqliteStore { conn: Mutex::new(conn), ledger: None })
    }

    fn conn(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(super) fn ledger_conn(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.ledger.as_ref().unwrap_or(&self.conn).lock().unwrap_or_else(|p| p.into_inner())
    }
}

fn headers_json(headers: &[(String, String)]) -> String {
    serde_json::to_string(&headers.iter().map(|(k, v)| serde_json::json!([k, v])).collect::<Vec<_>>()).unwrap_or_default()
}

const STATUS_SQL: &str = "CASE
    WHEN EXISTS (SELECT 1 FROM dispatches d WHERE d.event_seq = e.seq AND d.status = 'dead') THEN 'dead'
    WHEN EXISTS (SELECT 1 FROM dispatches d WHERE d.event_seq = e.seq AND d.status = 'pending') THEN 'pending'
    WHEN EXISTS (SELECT 1 FROM dispatches d WHERE d.event_seq = e.seq) THEN 'delivered'
    ELSE 'unrouted' END";

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

const RUN_COLUMNS: &str = "id, script, version, function, trigger, started_at, ended_at, outcome, error, location, steps";

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
    })
}

impl Store for SqliteStore {
    fn kv_get(&self, connector: &str, key: &str) -> Result<Option<Vec<u8>>> {
        Ok(self.conn().query_row("SELECT value FROM kv WHERE connector = ?1 AND key = ?2", params![connector, key], |r| r.get(0)).optional()?)
    }

    fn kv_set(&self, connector: &str, key: &str, value: &[u8]) -> Result<()> {
        self.conn().execute(
            "INSERT INTO kv (connector, key, value, updated) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (connector, key) DO UPDATE SET value = excluded.value, updated = excluded.updated",
            params![connector, key, value, now_ms()],
        )?;
        Ok(())
    }

    fn kv_delete(&self, connector: &str, key: &str) -> Result<()> {
        self.conn().execute("DELETE FROM kv WHERE connector = ?1 AND key = ?2", params![connector, key])?;
        Ok(())
    }

    fn commit(&self, batch: &[Incoming]) -> Result<Vec<Committed>> {
        let mut conn = self.conn();
        // IMMEDIATE: take the write lock (waiting under the busy timeout)
        // before the dedupe reads. A deferred transaction that reads, then
        // writes fails at once with SQLITE_BUSY when the rate ledger's
        // connection wrote in between: the webhook got a 503, and WICS
        // retries only 90 s later.
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let mut out = Vec::with_capacity(batch.len());
        {
            let mut ins_delivery = tx.prepare_cached(
                "INSERT INTO deliveries (connector, received_at, http_status, outcome, headers, body, events) VALUES (?1, ?2, 200, ?3, ?4, ?5, ?6)",
            )?;
            let mut seen = tx.prepare_cached("SELECT 1 FROM dedupe WHERE connector = ?1 AND dedupe_id = ?2")?;
            let mut ins_event = tx.prepare_cached(
                "INSERT INTO events (connector, topic, dedupe_id, subject, occurred_at, payload, received_at, delivery_id) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, NULL)",
            )?;
            let mut ins_dedupe = tx.prepare_cached("INSERT INTO dedupe (connector, dedupe_id, seen_at, event_seq) VALUES (?1, ?2, ?3, ?4)")?;
            let mut ins_dispatch = tx.prepare_cached(
                "INSERT INTO dispatches (event_seq, subscriber, status, attempts, next_at, updated_at, connector, topic) VALUES (?1, ?2, 'pending', 0, ?3, ?3, ?4, ?5)",
            )?;
            let mut link = tx.prepare_cached("UPDATE events SET delivery_id = ?1 WHERE seq = ?2")?;
            for incoming in batch {
                let d = &incoming.delivery;
                let mut c = Committed::default();
                let mut seqs = Vec::new();
                for (event, subscribers) in &incoming.events {
                    if seen.exists(params![d.connector, event.id])? {
                        c.duplicates += 1;
                        continue;
                    }
                    ins_event.execute(params![d.connector, event.topic, event.id, event.subject, event.occurred_at, event.payload.to_string(), d.received_at])?;
                    let seq = tx.last_insert_rowid();
                    ins_dedupe.execute(params![d.connector, event.id, d.received_at, seq])?;
                    for s in subscribers {
                        ins_dispatch.execute(params![seq, s, d.received_at, d.connector, event.topic])?;
                    }
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
        tx.commit()?;
        Ok(out)
    }

    fn record_refusal(&self, d: &DeliveryRecord, http_status: u16, reason: &str) -> Result<i64> {
        let conn = self.conn();
        conn.execute(
            "INSERT INTO deliveries (connector, received_at, http_status, outcome, reason, headers, body) VALUES (?1, ?2, ?3, 'refused', ?4, ?5, ?6)",
            params![d.connector, d.received_at, http_status, reason, headers_json(&d.headers), d.body],
        )?;
        Ok(conn.last_insert_rowid())
    }

    fn due(&self, now: i64, limit: usize) -> Result<Vec<Due>> {
        let conn = self.conn();
        // The head of each lane (subscriber, connector, topic): the lowest
        // pending seq. Only a due head is returned, so a lane waiting on a
        // retry holds back the events behind it — that is what in-order means.
        let mut stmt = conn.prepare_cached(
            "SELECT d.event_seq, d.subscriber, d.attempts, e.connector, e.topic, e.dedupe_id, e.subject, e.occurred_at, e.payload
             FROM (SELECT subscriber, connector, topic, MIN(event_seq) AS head FROM dispatches
                   WHERE status = 'pending' GROUP BY subscriber, connector, topic) h
             JOIN dispatches d ON d.event_seq = h.head AND d.subscriber = h.subscriber
             JOIN events e ON e.seq = d.event_seq
             WHERE d.next_at <= ?1
             ORDER BY d.event_seq LIMIT ?2",
        )?;
        let rows = stmt.query_map(params![now, limit as i64], due_row)?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    fn lane_next(&self, subscriber: &str, connector: &str, topic: &str, after_seq: i64, now: i64) -> Result<Option<Due>> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(
            "SELECT d.event_seq, d.subscriber, d.attempts, e.connector, e.topic, e.dedupe_id, e.subject, e.occurred_at, e.payload, d.next_at
             FROM dispatches d JOIN events e ON e.seq = d.event_seq
             WHERE d.status = 'pending' AND d.subscriber = ?1 AND d.connector = ?2 AND d.topic = ?3 AND d.event_seq > ?4
             ORDER BY d.event_seq LIMIT 1",
        )?;
        let row = stmt.query_row(params![subscriber, connector, topic, after_seq], |r| Ok((due_row(r)?, r.get::<_, i64>(9)?))).optional()?;
        // The lane's next event waiting on a backoff holds the lane.
        Ok(row.filter(|(_, next_at)| *next_at <= now).map(|(d, _)| d))
    }

    fn next_due_at(&self) -> Result<Option<i64>> {
        Ok(self.conn().query_row("SELECT MIN(next_at) FROM dispatches WHERE status = 'pending'", [], |r| r.get(0))?)
    }

    fn mark_delivered(&self, seq: i64, subscriber: &str, now: i64) -> Result<()> {
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        tx.execute("UPDATE dispatches SET status = 'delivered', attempts = attempts + 1, last_error = NULL, updated_at = ?3 WHERE event_seq = ?1 AND subscriber = ?2", params![seq, subscriber, now])?;
        tx.execute("INSERT INTO attempts (event_seq, subscriber, at, ok) VALUES (?1, ?2, ?3, 1)", params![seq, subscriber, now])?;
        tx.commit()?;
        Ok(())
    }

    fn mark_failed(&self, seq: i64, subscriber: &str, now: i64, error: &str, retry_at: Option<i64>) -> Result<()> {
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let (status, next) = match retry_at {
            Some(at) => ("pending", at),
            None => ("dead", now),
        };
        tx.execute(
            "UPDATE dispatches SET status = ?3, attempts = attempts + 1, next_at = ?4, last_error = ?5, updated_at = ?6 WHERE event_seq = ?1 AND subscriber = ?2",
            params![seq, subscriber, status, next, error, now],
        )?;
        tx.execute("INSERT INTO attempts (event_seq, subscriber, at, ok, error) VALUES (?1, ?2, ?3, 0, ?4)", params![seq, subscriber, now, error])?;
        tx.commit()?;
        Ok(())
    }

    fn replay(&self, seq: i64, now: i64) -> Result<usize> {
        Ok(self.conn().execute(
            "UPDATE dispatches SET status = 'pending', attempts = 0, next_at = ?2, updated_at = ?2 WHERE event_seq = ?1 AND status IN ('dead', 'delivered')",
            params![seq, now],
        )?)
    }

    fn replay_dead(&self, now: i64) -> Result<usize> {
        Ok(self.conn().execute("UPDATE dispatches SET status = 'pending', attempts = 0, next_at = ?1, updated_at = ?1 WHERE status = 'dead'", params![now])?)
    }

    fn list_events(&self, f: &EventFilter) -> Result<Vec<EventSummary>> {
        let conn = self.conn();
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
        let conn = self.conn();
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
        let conn = self.conn();
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

    fn run_start(&self, script: &str, version: i64, function: &str, trigger: &str, now: i64) -> Result<i64> {
        let conn = self.conn();
        conn.execute("INSERT INTO runs (script, version, function, trigger, started_at) VALUES (?1, ?2, ?3, ?4, ?5)", params![script, version, function, trigger, now])?;
        Ok(conn.last_insert_rowid())
    }

    fn run_finish(&self, id: i64, now: i64, error: Option<(&str, Option<&str>)>, steps: &[String]) -> Result<()> {
        let (outcome, message, location) = match error {
            None => ("ok", None, None),
            Some((m, l)) => ("error", Some(m), l),
        };
        self.conn().execute(
            "UPDATE runs SET ended_at = ?2, outcome = ?3, error = ?4, location = ?5, steps = ?6 WHERE id = ?1",
            params![id, now, outcome, message, location, serde_json::to_string(steps)?],
        )?;
        Ok(())
    }

    fn runs(&self, script: Option<&str>, limit: usize) -> Result<Vec<RunRecord>> {
        let conn = self.conn();
        let mut stmt = conn.prepare(&format!("SELECT {RUN_COLUMNS} FROM runs WHERE (?1 IS NULL OR script = ?1) ORDER BY id DESC LIMIT ?2"))?;
        let rows = stmt.query_map(params![script, if limit == 0 { 50 } else { limit } as i64], run_record)?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    fn run(&self, id: i64) -> Result<Option<RunRecord>> {
        Ok(self.conn().query_row(&format!("SELECT {RUN_COLUMNS} FROM runs WHERE id = ?1"), [id], run_record).optional()?)
    }

    fn step_get(&self, script: &str, key: &str) -> Result<Option<String>> {
        Ok(self.conn().query_row("SELECT result FROM steps WHERE script = ?1 AND key = ?2", params![script, key], |r| r.get(0)).optional()?)
    }

    fn step_put(&self, script: &str, key: &str, result: &str, run_id: i64, now: i64) -> Result<()> {
        self.conn().execute("INSERT OR IGNORE INTO steps (script, key, result, run_id, at) VALUES (?1, ?2, ?3, ?4, ?5)", params![script, key, result, run_id, now])?;
        Ok(())
    }

    fn state_get(&self, script: &str, key: &str) -> Result<Option<String>> {
        Ok(self.conn().query_row("SELECT value FROM script_state WHERE script = ?1 AND key = ?2", params![script, key], |r| r.get(0)).optional()?)
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

    fn script_loaded(&self, name: &str, version: i64, triggers: &serde_json::Value, now: i64) -> Result<()> {
        self.conn().execute(
            "INSERT INTO scripts (name, version, loaded_at, triggers) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (name) DO UPDATE SET version = excluded.version, loaded_at = excluded.loaded_at, triggers = excluded.triggers, error = NULL, error_at = NULL",
            params![name, version, now, triggers.to_string()],
        )?;
        Ok(())
    }

    fn script_error(&self, name: &str, error: &str, now: i64) -> Result<()> {
        self.conn().execute(
            "INSERT INTO scripts (name, version, loaded_at, triggers, error, error_at) VALUES (?1, 0, ?3, '[]', ?2, ?3)
             ON CONFLICT (name) DO UPDATE SET error = excluded.error, error_at = excluded.error_at",
            params![name, error, now],
        )?;
        Ok(())
    }

    fn script_removed(&self, name: &str) -> Result<()> {
        self.conn().execute("DELETE FROM scripts WHERE name = ?1", [name])?;
        Ok(())
    }

    fn scripts(&self) -> Result<Vec<ScriptStatus>> {
        let conn = self.conn();
        let mut stmt = conn.prepare("SELECT name, version, loaded_at, triggers, error, error_at FROM scripts ORDER BY name")?;
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
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(id: &str, topic: &str) -> Event {
        Event { id: id.into(), topic: topic.into(), occurred_at: None, subject: None, payload: serde_json::json!({"id": id}) }
    }

    fn incoming(events: Vec<Event>) -> Incoming {
        Incoming {
            delivery: DeliveryRecord { connector: "wics".into(), received_at: 1000, headers: vec![], body: b"{}".to_vec() },
            events: events.into_iter().map(|e| (e, vec!["sub".to_string()])).collect(),
        }
    }

    #[test]
    fn kv_is_per_connector_and_survives_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.db");
        {
            let s = SqliteStore::open(&path).unwrap();
            s.kv_set("a", "k", b"1").unwrap();
            s.kv_set("a", "k", b"2").unwrap();
            s.kv_set("b", "k", b"3").unwrap();
        }
        let s = SqliteStore::open(&path).unwrap();
        assert_eq!(s.kv_get("a", "k").unwrap().as_deref(), Some(&b"2"[..]));
        assert_eq!(s.kv_get("b", "k").unwrap().as_deref(), Some(&b"3"[..]));
        s.kv_delete("a", "k").unwrap();
        assert_eq!(s.kv_get("a", "k").unwrap(), None);
    }

    #[test]
    fn duplicates_are_recorded_but_not_dispatched() {
        let s = SqliteStore::open_in_memory().unwrap();
        let c = s.commit(&[incoming(vec![ev("a", "T"), ev("b", "T")]), incoming(vec![ev("a", "T")])]).unwrap();
        assert_eq!((c[0].new_events, c[0].duplicates), (2, 0));
        assert_eq!((c[1].new_events, c[1].duplicates), (0, 1));
        assert_eq!(s.list_events(&EventFilter::default()).unwrap().len(), 2);
        assert_eq!(s.due(2000, 10).unwrap().len(), 1, "one lane, so only its head is due");
    }

    #[test]
    fn dedupe_keys_outlive_three_days_then_go() {
        let s = SqliteStore::open_in_memory().unwrap();
        s.commit(&[incoming(vec![ev("a", "T")])]).unwrap(); // received_at = 1000
        assert_eq!(s.prune_dedupe(1000 + DEDUPE_RETENTION_MS - 1).unwrap(), 0, "kept for the whole retention");
        let again = s.commit(&[incoming(vec![ev("a", "T")])]).unwrap();
        assert_eq!(again[0].duplicates, 1);
        assert_eq!(s.prune_dedupe(1000 + DEDUPE_RETENTION_MS + 1).unwrap(), 1);
    }

    #[test]
    fn lanes_go_in_order_and_failures_hold_the_lane() {
        let s = SqliteStore::open_in_memory().unwrap();
        s.commit(&[incoming(vec![ev("a", "T"), ev("b", "T"), ev("c", "U")])]).unwrap();
        let due = s.due(2000, 10).unwrap();
        let ids: Vec<_> = due.iter().map(|d| d.event.id.as_str()).collect();
        assert_eq!(ids, ["a", "c"], "the heads of lanes T and U");
        s.mark_failed(due[0].seq, "sub", 2000, "boom", Some(5000)).unwrap();
        let ids: Vec<_> = s.due(3000, 10).unwrap().iter().map(|d| d.event.id.clone()).collect();
        assert_eq!(ids, ["c"], "b waits behind a's retry");
        assert_eq!(s.next_due_at().unwrap(), Some(1000));
        s.mark_failed(due[0].seq, "sub", 5000, "boom again", None).unwrap();
        let ids: Vec<_> = s.due(5000, 10).unwrap().iter().map(|d| d.event.id.clone()).collect();
        assert_eq!(ids, ["b", "c"], "a is dead-lettered, b moves up");
        assert_eq!(s.list_events(&EventFilter { status: Some("dead".into()), ..Default::default() }).unwrap().len(), 1);
        assert_eq!(s.replay_dead(6000).unwrap(), 1);
        let detail = s.event(due[0].seq).unwrap().unwrap();
        assert_eq!(detail.attempts.len(), 2);
        assert_eq!(detail.dispatches[0].status, "pending");
    }
}
