//! The PostgreSQL engine of [`Store`]: several hosts on one database.
//!
//! The trait is synchronous and is called from tokio tasks, from
//! `spawn_blocking` threads and from plain threads. The store owns a small
//! tokio runtime of its own that drives each connection; a method takes a
//! free client and waits for its answers with `futures::executor::block_on`
//! on the calling thread (a client's futures only talk to its connection
//! task over channels, so any executor can poll them). The sync `postgres`
//! crate is not used: it blocks on a runtime of its own and panics inside
//! tokio.
//!
//! Where SQLite serialises every write with `BEGIN IMMEDIATE`, PostgreSQL
//! runs transactions side by side, so what must hold across hosts is made
//! atomic per statement: claims are `UPDATE ... WHERE <still free>`, dedupe
//! keys and schedule ticks are `INSERT ... ON CONFLICT DO NOTHING`, the
//! ledger takes an advisory lock, flows are claimed `FOR UPDATE SKIP
//! LOCKED`.
use super::*;
use anyhow::{anyhow, Context};
use parking_lot::{Mutex, MutexGuard};
use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use tokio_postgres::error::SqlState;
use tokio_postgres::types::ToSql;
use tokio_postgres::{Client, NoTls, Row, Statement};

/// The migrations, in order. A new file is appended here, never edited.
const MIGRATIONS: &[(&str, &str)] = &[
    ("0001_initial", include_str!("../../migrations/postgres/0001_initial.sql")),
    ("0002_due_index", include_str!("../../migrations/postgres/0002_due_index.sql")),
];

/// Advisory lock keys (arbitrary, "SPOK" and a number): one for applying
/// migrations, one for the rate ledger.
const MIGRATION_LOCK: i64 = 0x5350_4f4b_0001;
pub(super) const LEDGER_LOCK: i64 = 0x5350_4f4b_0002;

/// How often a transaction that lost a deadlock or serialization conflict
/// is run again before the error is returned.
const TX_TRIES: u32 = 5;

pub(super) type Params<'a> = [&'a (dyn ToSql + Sync)];

pub struct PgStore {
    slots: Vec<Mutex<Slot>>,
    next: AtomicUsize,
    config: tokio_postgres::Config,
    /// Without a password: safe to name in errors.
    url: String,
    statement_timeout_ms: u64,
    /// Drives the connections; `None` only while dropping.
    runtime: Option<tokio::runtime::Runtime>,
}

/// One connection and its prepared statements.
#[derive(Default)]
struct Slot {
    client: Option<Client>,
    statements: HashMap<String, Statement>,
    /// Set while a transaction is open: a client left so (a panic midway)
    /// is replaced instead of reused inside someone else's transaction.
    in_tx: bool,
}

/// A PostgreSQL error and the statement it came from (never its
/// parameters, which may hold plugin data).
#[derive(Debug)]
pub struct PgError {
    statement: String,
    source: tokio_postgres::Error,
}

impl PgError {
    pub fn code(&self) -> Option<&SqlState> {
        self.source.code()
    }
}

impl std::fmt::Display for PgError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PostgreSQL: {} (in `{}`)", chain(&self.source), self.statement)
    }
}

impl std::error::Error for PgError {}

/// An error with its causes, on one line: tokio_postgres says only "db
/// error" at the top and keeps the server's message in the source.
fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

fn pg(source: tokio_postgres::Error, sql: &str) -> anyhow::Error {
    let statement: String = sql.split_whitespace().collect::<Vec<_>>().join(" ").chars().take(100).collect();
    PgError { statement, source }.into()
}

/// Whether running the transaction again may succeed.
fn retryable(e: &anyhow::Error) -> bool {
    e.downcast_ref::<PgError>().and_then(PgError::code).is_some_and(|c| *c == SqlState::T_R_DEADLOCK_DETECTED || *c == SqlState::T_R_SERIALIZATION_FAILURE)
}

fn block<F: Future>(f: F) -> F::Output {
    futures::executor::block_on(f)
}

/// A checked-out connection.
pub(super) struct Db<'a> {
    slot: MutexGuard<'a, Slot>,
}

impl Db<'_> {
    fn client(&self) -> &Client {
        self.slot.client.as_ref().expect("a checked-out slot is connected")
    }

    fn prepare(&mut self, sql: &str) -> Result<Statement> {
        if let Some(st) = self.slot.statements.get(sql) {
            return Ok(st.clone());
        }
        let st = block(self.client().prepare(sql)).map_err(|e| pg(e, sql))?;
        self.slot.statements.insert(sql.to_string(), st.clone());
        Ok(st)
    }

    pub(super) fn query(&mut self, sql: &str, params: &Params) -> Result<Vec<Row>> {
        let st = self.prepare(sql)?;
        block(self.client().query(&st, params)).map_err(|e| pg(e, sql))
    }

    pub(super) fn opt(&mut self, sql: &str, params: &Params) -> Result<Option<Row>> {
        let st = self.prepare(sql)?;
        block(self.client().query_opt(&st, params)).map_err(|e| pg(e, sql))
    }

    pub(super) fn one(&mut self, sql: &str, params: &Params) -> Result<Row> {
        let st = self.prepare(sql)?;
        block(self.client().query_one(&st, params)).map_err(|e| pg(e, sql))
    }

    pub(super) fn exec(&mut self, sql: &str, params: &Params) -> Result<usize> {
        let st = self.prepare(sql)?;
        Ok(block(self.client().execute(&st, params)).map_err(|e| pg(e, sql))? as usize)
    }

    /// Statements without parameters, not prepared.
    fn batch(&mut self, sql: &str) -> Result<()> {
        block(self.client().batch_execute(sql)).map_err(|e| pg(e, sql))
    }
}

impl PgStore {
    /// Connect, and apply the migrations this database lacks.
    pub fn open(location: &crate::config::PostgresLocation) -> Result<PgStore> {
        let url = location.url.clone();
        let mut config: tokio_postgres::Config = url.parse().map_err(|e| anyhow!("store {url} is not a PostgreSQL URL: {e}"))?;
        if let Some(password) = &location.password {
            config.password(password.expose());
        }
        config.connect_timeout(std::time::Duration::from_secs(10));
        config.application_name("spoke");
        // One worker is plenty: it only moves bytes between sockets and
        // channels; the queries' callers wait on their own threads.
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("spoke-postgres")
            .enable_all()
            .build()
            .context("starting the PostgreSQL store's runtime")?;
        let store = PgStore {
            slots: (0..location.connections.max(1)).map(|_| Mutex::new(Slot::default())).collect(),
            next: AtomicUsize::new(0),
            config,
            statement_timeout_ms: (location.statement_timeout_secs * 1000.0).ceil() as u64,
            runtime: Some(runtime),
            url,
        };
        store.migrate().with_context(|| format!("preparing PostgreSQL store {}", store.url))?;
        Ok(store)
    }

    /// The URL this store connects to (no password in it).
    pub fn url(&self) -> &str {
        &self.url
    }

    fn connect(&self) -> Result<Client> {
        let config = self.config.clone();
        let timeout = self.statement_timeout_ms;
        let url = self.url.clone();
        let runtime = self.runtime.as_ref().expect("the runtime lives as long as the store");
        // Plain TCP: the database is on loopback or the hosts' own LAN. TLS
        // to a remote server would be a connector of its own here.
        let connecting = runtime.spawn(async move {
            let (client, connection) = config.connect(NoTls).await?;
            tokio::spawn(async move {
                if let Err(e) = connection.await {
                    tracing::warn!("the connection to PostgreSQL store {url} ended: {}", chain(&e));
                }
            });
            client.batch_execute(&format!("SET statement_timeout = {timeout}")).await?;
            Ok::<_, tokio_postgres::Error>(client)
        });
        match block(connecting) {
            Ok(Ok(client)) => Ok(client),
            Ok(Err(e)) => Err(anyhow!("connecting to PostgreSQL store {}: {}", self.url, chain(&e))),
            Err(e) => Err(anyhow!("connecting to PostgreSQL store {}: {e}", self.url)),
        }
    }

    /// A free connection (else wait for one in turn), connected anew if
    /// its connection died.
    pub(super) fn db(&self) -> Result<Db<'_>> {
        let mut slot = match self.slots.iter().find_map(|s| s.try_lock()) {
            Some(slot) => slot,
            None => self.slots[self.next.fetch_add(1, Ordering::Relaxed) % self.slots.len()].lock(),
        };
        if slot.in_tx || slot.client.as_ref().is_none_or(Client::is_closed) {
            slot.client = None;
            slot.statements.clear();
            slot.in_tx = false;
            slot.client = Some(self.connect()?);
        }
        Ok(Db { slot })
    }

    /// Run `f` in one transaction (READ COMMITTED), again if it lost a
    /// deadlock to another host's transaction.
    pub(super) fn tx<T>(&self, mut f: impl FnMut(&mut Db) -> Result<T>) -> Result<T> {
        let mut db = self.db()?;
        let mut tries = 1;
        loop {
            db.slot.in_tx = true;
            db.batch("BEGIN")?;
            let result = match f(&mut db) {
                Ok(v) => db.batch("COMMIT").map(|()| v),
                // A client that cannot roll back keeps `in_tx` and is
                // replaced at its next use.
                Err(e) => match db.batch("ROLLBACK") {
                    Ok(()) => Err(e),
                    Err(_) => return Err(e),
                },
            };
            db.slot.in_tx = false;
            match result {
                Err(e) if retryable(&e) && tries < TX_TRIES => tries += 1,
                other => return other,
            }
        }
    }

    /// Apply missing migrations under a session advisory lock, so hosts
    /// starting on a new database at once apply each one once.
    fn migrate(&self) -> Result<()> {
        let mut db = self.db()?;
        db.query("SELECT pg_advisory_lock($1)", &[&MIGRATION_LOCK])?;
        let applied = (|| -> Result<()> {
            db.batch("CREATE TABLE IF NOT EXISTS schema_migrations (name TEXT PRIMARY KEY, applied BIGINT NOT NULL)")?;
            for (name, sql) in MIGRATIONS {
                if db.opt("SELECT name FROM schema_migrations WHERE name = $1", &[name])?.is_some() {
                    continue;
                }
                db.batch("BEGIN")?;
                let done = db.batch(sql).and_then(|()| db.exec("INSERT INTO schema_migrations (name, applied) VALUES ($1, $2)", &[name, &now_ms()]));
                match done {
                    Ok(_) => db.batch("COMMIT")?,
                    Err(e) => {
                        db.batch("ROLLBACK")?;
                        return Err(e.context(format!("migration {name}")));
                    }
                }
            }
            Ok(())
        })();
        db.query("SELECT pg_advisory_unlock($1)", &[&MIGRATION_LOCK])?;
        applied
    }
}

impl Drop for PgStore {
    fn drop(&mut self) {
        for slot in &self.slots {
            slot.lock().client = None;
        }
        // Not `drop`: that blocks, which tokio forbids inside its tasks.
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

fn summary(r: &Row) -> EventSummary {
    EventSummary { seq: r.get(0), connector: r.get(1), topic: r.get(2), dedupe_id: r.get(3), subject: r.get(4), received_at: r.get(5), status: r.get(6) }
}

/// Columns for [`due_row`], from `dispatches d JOIN events e`.
const DUE_COLUMNS: &str = "d.event_seq, d.subscriber, d.attempts, e.connector, e.topic, e.dedupe_id, e.subject, e.occurred_at, e.payload";

fn due_row(r: &Row) -> Due {
    Due {
        seq: r.get(0),
        subscriber: r.get(1),
        attempts: r.get::<_, i64>(2) as u32,
        connector: r.get(3),
        event: Event { topic: r.get(4), id: r.get(5), subject: r.get(6), occurred_at: r.get(7), payload: json_text(r.get(8)) },
    }
}

fn run_record(r: &Row) -> RunRecord {
    RunRecord {
        id: r.get(0),
        script: r.get(1),
        version: r.get(2),
        function: r.get(3),
        trigger: r.get(4),
        started_at: r.get(5),
        ended_at: r.get(6),
        outcome: r.get(7),
        error: r.get(8),
        location: r.get(9),
        steps: serde_json::from_str(r.get(10)).unwrap_or_default(),
        logs: serde_json::from_str(r.get(11)).unwrap_or_default(),
        flow_key: r.get(12),
    }
}

impl Store for PgStore {
    fn kv_get(&self, connector: &str, key: &str) -> Result<Option<Vec<u8>>> {
        Ok(self.db()?.opt("SELECT value FROM kv WHERE connector = $1 AND key = $2", &[&connector, &key])?.map(|r| r.get(0)))
    }

    fn kv_set(&self, connector: &str, key: &str, value: &[u8], quota: KvQuota) -> Result<()> {
        self.tx(|db| {
            // The connector's usage row is locked first (made if missing):
            // writes of one connector, from any host, queue here, so two
            // cannot both take the last free key.
            db.exec("INSERT INTO kv_usage (connector, keys, bytes) VALUES ($1, 0, 0) ON CONFLICT (connector) DO NOTHING", &[&connector])?;
            let usage = db.one("SELECT keys, bytes FROM kv_usage WHERE connector = $1 FOR UPDATE", &[&connector])?;
            let old: Option<i64> = db.opt("SELECT octet_length(value)::BIGINT FROM kv WHERE connector = $1 AND key = $2", &[&connector, &key])?.map(|r| r.get(0));
            let (keys, bytes) = kv_usage_after(connector, key, value, old, (usage.get(0), usage.get(1)), quota)?;
            db.exec(
                "INSERT INTO kv (connector, key, value, updated) VALUES ($1, $2, $3, $4)
                 ON CONFLICT (connector, key) DO UPDATE SET value = excluded.value, updated = excluded.updated",
                &[&connector, &key, &value, &now_ms()],
            )?;
            db.exec("UPDATE kv_usage SET keys = $2, bytes = $3 WHERE connector = $1", &[&connector, &keys, &bytes])?;
            Ok(())
        })
    }

    fn kv_delete(&self, connector: &str, key: &str) -> Result<()> {
        self.tx(|db| {
            // The usage row first, in the order kv_set takes them.
            db.query("SELECT 1 FROM kv_usage WHERE connector = $1 FOR UPDATE", &[&connector])?;
            if let Some(row) = db.opt("DELETE FROM kv WHERE connector = $1 AND key = $2 RETURNING octet_length(value)::BIGINT", &[&connector, &key])? {
                let entry = key.len() as i64 + row.get::<_, i64>(0);
                db.exec("UPDATE kv_usage SET keys = keys - 1, bytes = bytes - $2 WHERE connector = $1", &[&connector, &entry])?;
            }
            Ok(())
        })
    }

    fn commit(&self, batch: &[Incoming]) -> Result<Vec<Committed>> {
        self.tx(|db| {
            let mut out = Vec::with_capacity(batch.len());
            for incoming in batch {
                let d = &incoming.delivery;
                let mut c = Committed::default();
                let mut seqs: Vec<i64> = Vec::new();
                for event in &incoming.events {
                    // The dedupe key first, with the event's seq drawn for
                    // it: a host committing the same id at the same moment
                    // waits on this key, then finds it taken (a duplicate).
                    let seq: Option<i64> = db
                        .opt(
                            "INSERT INTO dedupe (connector, dedupe_id, seen_at, event_seq) VALUES ($1, $2, $3, nextval('events_seq_seq'))
                             ON CONFLICT (connector, dedupe_id) DO NOTHING RETURNING event_seq",
                            &[&d.connector, &event.id, &d.received_at],
                        )?
                        .map(|r| r.get(0));
                    let Some(seq) = seq else {
                        c.duplicates += 1;
                        continue;
                    };
                    db.exec(
                        "INSERT INTO events (seq, connector, topic, dedupe_id, subject, occurred_at, payload, received_at, delivery_id, routed)
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, NULL, 0)",
                        &[&seq, &d.connector, &event.topic, &event.id, &event.subject, &event.occurred_at, &event.payload.to_string(), &d.received_at],
                    )?;
                    seqs.push(seq);
                    c.new_events += 1;
                }
                let outcome = if c.new_events == 0 && c.duplicates > 0 { "duplicate" } else { "accepted" };
                c.delivery_id = db
                    .one(
                        "INSERT INTO deliveries (connector, received_at, http_status, outcome, headers, body, events) VALUES ($1, $2, 200, $3, $4, $5, $6) RETURNING id",
                        &[&d.connector, &d.received_at, &outcome, &headers_json(&d.headers), &d.body, &(c.new_events as i64)],
                    )?
                    .get(0);
                if !seqs.is_empty() {
                    db.exec("UPDATE events SET delivery_id = $1 WHERE seq = ANY($2)", &[&c.delivery_id, &seqs])?;
                }
                out.push(c);
            }
            Ok(out)
        })
    }

    fn record_refusals(&self, batch: &[RefusedDelivery], keep: u64) -> Result<()> {
        self.tx(|db| {
            for r in batch {
                let d = &r.delivery;
                db.exec(
                    "INSERT INTO deliveries (connector, received_at, http_status, outcome, reason, headers, body) VALUES ($1, $2, $3, 'refused', $4, $5, $6)",
                    &[&d.connector, &d.received_at, &i64::from(r.http_status), &r.reason, &headers_json(&d.headers), &d.body],
                )?;
            }
            // The newest `keep` stay: a flood replaces old refusals instead
            // of filling the disk.
            db.exec(
                "DELETE FROM deliveries WHERE outcome = 'refused' AND id <= (SELECT id FROM deliveries WHERE outcome = 'refused' ORDER BY id DESC LIMIT 1 OFFSET $1)",
                &[&(keep as i64)],
            )?;
            Ok(())
        })
    }

    fn unrouted(&self, after_seq: i64, limit: usize) -> Result<Vec<Unrouted>> {
        let rows = self.db()?.query("SELECT seq, connector, topic, received_at, subject FROM events WHERE routed = 0 AND seq > $1 ORDER BY seq LIMIT $2", &[&after_seq, &(limit as i64)])?;
        Ok(rows.iter().map(|r| Unrouted { seq: r.get(0), connector: r.get(1), topic: r.get(2), received_at: r.get(3), subject: r.get(4) }).collect())
    }

    fn route(&self, routes: &[(Unrouted, Vec<String>)], now: i64) -> Result<()> {
        if routes.is_empty() {
            return Ok(());
        }
        self.tx(|db| {
            for (e, subscribers) in routes {
                let subject = e.subject.as_deref().unwrap_or("");
                for s in subscribers {
                    // Another host routing the same event adds nothing.
                    db.exec(
                        "INSERT INTO dispatches (event_seq, subscriber, status, attempts, next_at, updated_at, connector, topic, subject) VALUES ($1, $2, 'pending', 0, $3, $3, $4, $5, $6)
                         ON CONFLICT (event_seq, subscriber) DO NOTHING",
                        &[&e.seq, s, &now, &e.connector, &e.topic, &subject],
                    )?;
                }
                db.exec("UPDATE events SET routed = 1 WHERE seq = $1", &[&e.seq])?;
            }
            Ok(())
        })
    }

    fn due(&self, claim: &Claim, now: i64, limit: usize, busy: &std::collections::HashSet<Lane>) -> Result<Vec<Due>> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        // The head of each lane (the lowest pending seq), grouped: one pass
        // over the pending rows. (SQLite walks pending rows probing each
        // one's lane instead; PostgreSQL plans that walk as a hash anti-join
        // that compares every pair in a lane — 2.5 s for one lane of 5,000
        // against 3 ms grouped.) The candidates are locked SKIP LOCKED (a
        // head another host is claiming right now is left to it) and the
        // claim re-checks that the row is still pending and free: two hosts
        // never both claim one head.
        let sql = format!(
            "UPDATE dispatches d SET claimed_by = $3, claimed_until = $4
             FROM (SELECT c.event_seq, c.subscriber
                   FROM (SELECT subscriber, connector, topic, subject, MIN(event_seq) AS head FROM dispatches
                         WHERE status = 'pending' GROUP BY subscriber, connector, topic, subject) h
                   JOIN dispatches c ON c.event_seq = h.head AND c.subscriber = h.subscriber
                   WHERE c.status = 'pending' AND c.next_at <= $1 AND (c.claimed_until <= $1 OR c.claimed_by = $3)
                   ORDER BY c.event_seq LIMIT $2 FOR UPDATE OF c SKIP LOCKED) heads, events e
             WHERE d.event_seq = heads.event_seq AND d.subscriber = heads.subscriber AND e.seq = d.event_seq
               AND d.status = 'pending' AND d.next_at <= $1 AND (d.claimed_until <= $1 OR d.claimed_by = $3)
             RETURNING {DUE_COLUMNS}"
        );
        // Busy lanes' heads are this host's claims already (re-claiming
        // them only renews the lease); they are read past, not returned.
        let mut due: Vec<Due> = self.tx(|db| Ok(db.query(&sql, &[&now, &((limit + busy.len()) as i64), &claim.owner, &claim.until])?.iter().map(due_row).collect()))?;
        due.retain(|d| !busy.contains(&d.lane()));
        due.sort_by_key(|d| d.seq);
        due.truncate(limit);
        Ok(due)
    }

    fn lane_next(&self, lane: &Lane, after_seq: i64, claim: &Claim, now: i64) -> Result<Option<Due>> {
        // The lane's next pending dispatch, locked (waiting for a host that
        // is claiming it right now); it is claimed only if due and free: one
        // waiting on a backoff or claimed by another host holds the lane.
        let sql = format!(
            "UPDATE dispatches d SET claimed_by = $6, claimed_until = $7
             FROM (SELECT event_seq, subscriber FROM dispatches
                   WHERE status = 'pending' AND subscriber = $1 AND connector = $2 AND topic = $3 AND subject = $4 AND event_seq > $5
                   ORDER BY event_seq LIMIT 1 FOR UPDATE) n, events e
             WHERE d.event_seq = n.event_seq AND d.subscriber = n.subscriber AND e.seq = d.event_seq
               AND d.status = 'pending' AND d.next_at <= $8 AND (d.claimed_until <= $8 OR d.claimed_by = $6)
             RETURNING {DUE_COLUMNS}"
        );
        self.tx(|db| {
            Ok(db
                .opt(&sql, &[&lane.subscriber, &lane.connector, &lane.topic, &lane.subject, &after_seq, &claim.owner, &claim.until, &now])?
                .map(|r| due_row(&r)))
        })
    }

    fn next_due_at(&self) -> Result<Option<i64>> {
        Ok(self.db()?.one("SELECT MIN(next_at) FROM dispatches WHERE status = 'pending'", &[])?.get(0))
    }

    fn release_orphan_claims(&self, machine: &str, alive: &dyn Fn(i64) -> bool) -> Result<usize> {
        let mut db = self.db()?;
        let owners: Vec<String> =
            db.query("SELECT DISTINCT claimed_by FROM dispatches WHERE status = 'pending' AND claimed_by IS NOT NULL", &[])?.iter().map(|r| r.get(0)).collect();
        let mut n = 0;
        for owner in owners.iter().filter(|o| super::owner_gone(o, machine, alive)) {
            n += db.exec("UPDATE dispatches SET claimed_by = NULL, claimed_until = 0 WHERE claimed_by = $1 AND status = 'pending'", &[owner])?;
        }
        Ok(n)
    }

    fn mark_delivered(&self, seq: i64, subscriber: &str, now: i64) -> Result<()> {
        self.tx(|db| {
            db.exec(
                "UPDATE dispatches SET status = 'delivered', attempts = attempts + 1, last_error = NULL, updated_at = $3, claimed_by = NULL, claimed_until = 0
                 WHERE event_seq = $1 AND subscriber = $2",
                &[&seq, &subscriber, &now],
            )?;
            db.exec("INSERT INTO attempts (event_seq, subscriber, at, ok) VALUES ($1, $2, $3, 1)", &[&seq, &subscriber, &now])?;
            Ok(())
        })
    }

    fn mark_failed(&self, seq: i64, subscriber: &str, now: i64, error: &str, retry_at: Option<i64>) -> Result<()> {
        let (status, next) = match retry_at {
            Some(at) => ("pending", at),
            None => ("dead", now),
        };
        self.tx(|db| {
            db.exec(
                "UPDATE dispatches SET status = $3, attempts = attempts + 1, next_at = $4, last_error = $5, updated_at = $6, claimed_by = NULL, claimed_until = 0
                 WHERE event_seq = $1 AND subscriber = $2",
                &[&seq, &subscriber, &status, &next, &error, &now],
            )?;
            db.exec("INSERT INTO attempts (event_seq, subscriber, at, ok, error) VALUES ($1, $2, $3, 0, $4)", &[&seq, &subscriber, &now, &error])?;
            Ok(())
        })
    }

    fn replay(&self, seq: i64, now: i64) -> Result<usize> {
        self.tx(|db| {
            // An event no subscriber wanted is routed again: a subscriber
            // added since gets it.
            let rerouted = db.exec("UPDATE events SET routed = 0 WHERE seq = $1 AND NOT EXISTS (SELECT 1 FROM dispatches d WHERE d.event_seq = $1)", &[&seq])?;
            Ok(rerouted
                + db.exec(
                    "UPDATE dispatches SET status = 'pending', attempts = 0, next_at = $2, updated_at = $2 WHERE event_seq = $1 AND status IN ('dead', 'delivered')",
                    &[&seq, &now],
                )?)
        })
    }

    fn replay_dead(&self, now: i64) -> Result<usize> {
        self.db()?.exec("UPDATE dispatches SET status = 'pending', attempts = 0, next_at = $1, updated_at = $1 WHERE status = 'dead'", &[&now])
    }

    fn list_events(&self, f: &EventFilter) -> Result<Vec<EventSummary>> {
        let sql = format!(
            "SELECT * FROM (SELECT e.seq, e.connector, e.topic, e.dedupe_id, e.subject, e.received_at, {STATUS_SQL} AS status FROM events e
              WHERE ($1::TEXT IS NULL OR e.connector = $1) AND ($2::TEXT IS NULL OR e.topic = $2)) listed
             WHERE ($3::TEXT IS NULL OR status = $3) ORDER BY seq DESC LIMIT $4"
        );
        let limit = if f.limit == 0 { 100 } else { f.limit } as i64;
        Ok(self.db()?.query(&sql, &[&f.connector, &f.topic, &f.status, &limit])?.iter().map(summary).collect())
    }

    fn event(&self, seq: i64) -> Result<Option<EventDetail>> {
        let mut db = self.db()?;
        let sql = format!("SELECT e.seq, e.connector, e.topic, e.dedupe_id, e.subject, e.received_at, {STATUS_SQL}, e.occurred_at, e.payload, e.delivery_id FROM events e WHERE e.seq = $1");
        let Some(row) = db.opt(&sql, &[&seq])? else { return Ok(None) };
        let dispatches = db
            .query("SELECT subscriber, status, attempts, next_at, last_error FROM dispatches WHERE event_seq = $1 ORDER BY subscriber", &[&seq])?
            .iter()
            .map(|r| DispatchState { subscriber: r.get(0), status: r.get(1), attempts: r.get::<_, i64>(2) as u32, next_at: r.get(3), last_error: r.get(4) })
            .collect();
        let attempts = db
            .query("SELECT subscriber, at, ok, error FROM attempts WHERE event_seq = $1 ORDER BY id", &[&seq])?
            .iter()
            .map(|r| Attempt { subscriber: r.get(0), at: r.get(1), ok: r.get::<_, i64>(2) != 0, error: r.get(3) })
            .collect();
        Ok(Some(EventDetail { summary: summary(&row), occurred_at: row.get(7), payload: json_text(row.get(8)), delivery_id: row.get(9), dispatches, attempts }))
    }

    fn refusals(&self, limit: usize) -> Result<Vec<Refusal>> {
        let limit = if limit == 0 { 100 } else { limit } as i64;
        let rows = self.db()?.query("SELECT id, connector, received_at, http_status, reason, headers, body FROM deliveries WHERE outcome = 'refused' ORDER BY id DESC LIMIT $1", &[&limit])?;
        Ok(rows
            .iter()
            .map(|r| Refusal {
                id: r.get(0),
                connector: r.get(1),
                received_at: r.get(2),
                http_status: r.get::<_, i64>(3) as u16,
                reason: r.get::<_, Option<String>>(4).unwrap_or_default(),
                headers: serde_json::from_str(r.get(5)).unwrap_or_default(),
                body: String::from_utf8_lossy(r.get(6)).into_owned(),
            })
            .collect())
    }

    fn prune_dedupe(&self, now: i64) -> Result<usize> {
        self.batches("DELETE FROM dedupe WHERE (connector, dedupe_id) IN (SELECT connector, dedupe_id FROM dedupe WHERE seen_at < $1 LIMIT $2)", &[now - DEDUPE_RETENTION_MS])
    }

    fn prune(&self, now: i64, r: &crate::config::Retention) -> Result<Pruned> {
        use crate::config::Retention;
        let mut p = Pruned { dedupe: self.prune_dedupe(now)?, ..Default::default() };
        // Deliveries: by age, then by count. Events keep their rows and
        // lose the link to the request that brought them.
        for (outcomes, days, max, count) in [
            ("'accepted', 'duplicate'", r.deliveries_days, r.max_deliveries, &mut p.deliveries),
            ("'refused'", r.refusals_days, r.max_refusals, &mut p.refusals),
        ] {
            let mut db = self.db()?;
            let by_age: Option<i64> =
                db.one(&format!("SELECT MAX(id) FROM deliveries WHERE received_at < $1 AND outcome IN ({outcomes})"), &[&(now - Retention::ms(days))])?.get(0);
            let by_count: Option<i64> =
                db.opt(&format!("SELECT id FROM deliveries WHERE outcome IN ({outcomes}) ORDER BY id DESC LIMIT 1 OFFSET $1"), &[&(max as i64)])?.map(|r| r.get(0));
            let Some(cutoff) = by_age.max(by_count) else { continue };
            db.exec(&format!("UPDATE events SET delivery_id = NULL WHERE delivery_id IN (SELECT id FROM deliveries WHERE id <= $1 AND outcome IN ({outcomes}))"), &[&cutoff])?;
            drop(db);
            *count = self.batches(&format!("DELETE FROM deliveries WHERE id IN (SELECT id FROM deliveries WHERE id <= $1 AND outcome IN ({outcomes}) LIMIT $2)"), &[cutoff])?;
        }
        // Events whose every dispatch is settled (or that had none), past
        // their age; dead letters are kept longer. Pending work is never
        // dropped.
        for (dead, days) in [(false, r.events_days), (true, r.dead_days)] {
            let cutoff = now - Retention::ms(days);
            let settled = format!(
                "SELECT e.seq FROM events e WHERE e.received_at < $1 AND e.routed = 1
                   AND NOT EXISTS (SELECT 1 FROM dispatches d WHERE d.event_seq = e.seq AND d.status = 'pending')
                   AND {} EXISTS (SELECT 1 FROM dispatches d WHERE d.event_seq = e.seq AND d.status = 'dead')
                 LIMIT $2",
                if dead { "" } else { "NOT" }
            );
            loop {
                let n = self.tx(|db| {
                    let seqs: Vec<i64> = db.query(&settled, &[&cutoff, &PRUNE_BATCH])?.iter().map(|r| r.get(0)).collect();
                    db.exec("DELETE FROM attempts WHERE event_seq = ANY($1)", &[&seqs])?;
                    db.exec("DELETE FROM dispatches WHERE event_seq = ANY($1)", &[&seqs])?;
                    db.exec("DELETE FROM events WHERE seq = ANY($1)", &[&seqs])?;
                    Ok(seqs.len())
                })?;
                p.events += n;
                if (n as i64) < PRUNE_BATCH {
                    break;
                }
            }
        }
        // Steps whose run has ended (or is gone), past their age.
        p.steps = self.batches(
            "DELETE FROM steps WHERE (script, key) IN (SELECT s.script, s.key FROM steps s WHERE s.at < $1
               AND NOT EXISTS (SELECT 1 FROM runs r WHERE r.id = s.run_id AND r.outcome IS NULL) LIMIT $2)",
            &[now - Retention::ms(r.steps_days)],
        )?;
        // Ended runs: by age, then by count.
        let by_count: Option<i64> = self.db()?.opt("SELECT id FROM runs ORDER BY id DESC LIMIT 1 OFFSET $1", &[&(r.max_runs as i64)])?.map(|r| r.get(0));
        p.runs = self.batches(
            "DELETE FROM runs WHERE id IN (SELECT id FROM runs WHERE outcome IS NOT NULL AND (started_at < $1 OR id <= $2) LIMIT $3)",
            &[now - Retention::ms(r.runs_days), by_count.unwrap_or(0)],
        )?;
        // Finished flows, like ended runs (their calls go with them, and the
        // events they took); failed and in-doubt ones wait for an operator.
        // Events no flow took, like settled events.
        let flows_cutoff = now - Retention::ms(r.runs_days);
        self.batches(
            "DELETE FROM flow_inbox WHERE id IN (SELECT i.id FROM flow_inbox i JOIN flows f ON f.id = i.flow_id WHERE f.status = 'done' AND f.updated_at < $1 LIMIT $2)",
            &[flows_cutoff],
        )?;
        p.flows = self.batches("DELETE FROM flows WHERE id IN (SELECT id FROM flows WHERE status = 'done' AND updated_at < $1 LIMIT $2)", &[flows_cutoff])?;
        p.flow_events = self.batches(
            "DELETE FROM flow_inbox WHERE id IN (SELECT id FROM flow_inbox WHERE flow_id IS NULL AND received_at < $1 LIMIT $2)",
            &[now - Retention::ms(r.events_days)],
        )?;
        Ok(p)
    }

    fn run_start(&self, script: &str, version: i64, function: &str, trigger: &str, now: i64) -> Result<i64> {
        Ok(self
            .db()?
            .one(
                "INSERT INTO runs (script, version, function, trigger, started_at, pid, machine) VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id",
                &[&script, &version, &function, &trigger, &now, &i64::from(std::process::id()), &super::machine()],
            )?
            .get(0))
    }

    fn interrupt_orphan_runs(&self, now: i64, alive: &dyn Fn(i64) -> bool) -> Result<usize> {
        let mut db = self.db()?;
        // Only this machine's runs: another host's pid means nothing here.
        let running: Vec<(i64, Option<i64>)> =
            db.query("SELECT id, pid FROM runs WHERE outcome IS NULL AND (machine IS NULL OR machine = $1)", &[&super::machine()])?.iter().map(|r| (r.get(0), r.get(1))).collect();
        let mut n = 0;
        for (id, pid) in running {
            if pid.is_some_and(alive) {
                continue;
            }
            n += db.exec("UPDATE runs SET outcome = 'interrupted', ended_at = $2, error = $3 WHERE id = $1 AND outcome IS NULL", &[&id, &now, &INTERRUPTED])?;
        }
        Ok(n)
    }

    fn run_finish(&self, id: i64, now: i64, error: Option<(&str, Option<&str>)>, steps: &[String], logs: &RunLogs) -> Result<()> {
        let (outcome, message, location) = match error {
            None => ("ok", None, None),
            Some((m, l)) => ("error", Some(m), l),
        };
        self.db()?.exec(
            "UPDATE runs SET ended_at = $2, outcome = $3, error = $4, location = $5, steps = $6, logs = $7, flow_key = $8 WHERE id = $1",
            &[&id, &now, &outcome, &message, &location, &serde_json::to_string(steps)?, &serde_json::to_string(&logs.lines)?, &logs.flow_key],
        )?;
        Ok(())
    }

    fn backlog(&self) -> Result<Backlog> {
        let mut db = self.db()?;
        let mut counts: Vec<(String, i64)> = ["pending", "delivered", "dead"].iter().map(|s| (s.to_string(), 0)).collect();
        for row in db.query("SELECT status, COUNT(*) FROM dispatches GROUP BY status", &[])? {
            let (status, n): (String, i64) = (row.get(0), row.get(1));
            match counts.iter_mut().find(|(s, _)| *s == status) {
                Some(c) => c.1 = n,
                None => counts.push((status, n)),
            }
        }
        let row = db.one("SELECT COUNT(*), MIN(received_at) FROM events WHERE routed = 0", &[])?;
        counts.push(("unrouted".into(), row.get(0)));
        let oldest_unrouted: Option<i64> = row.get(1);
        let oldest_pending: Option<i64> = db.one("SELECT MIN(e.received_at) FROM dispatches d JOIN events e ON e.seq = d.event_seq WHERE d.status = 'pending'", &[])?.get(0);
        Ok(Backlog { counts, oldest_ms: [oldest_unrouted, oldest_pending].into_iter().flatten().min() })
    }

    fn runs(&self, f: &RunFilter) -> Result<Vec<RunRecord>> {
        let sql = format!(
            "SELECT {RUN_COLUMNS} FROM runs WHERE ($1::TEXT IS NULL OR script = $1) AND ($2::TEXT IS NULL OR function = $2)
               AND (NOT $3::BOOLEAN OR outcome IS NOT DISTINCT FROM $4::TEXT) ORDER BY id DESC LIMIT $5"
        );
        let limit = if f.limit == 0 { 50 } else { f.limit } as i64;
        let rows = self.db()?.query(&sql, &[&f.script, &f.function, &f.outcome.is_some(), &f.outcome.and_then(RunOutcome::stored), &limit])?;
        Ok(rows.iter().map(run_record).collect())
    }

    fn run(&self, id: i64) -> Result<Option<RunRecord>> {
        Ok(self.db()?.opt(&format!("SELECT {RUN_COLUMNS} FROM runs WHERE id = $1"), &[&id])?.map(|r| run_record(&r)))
    }

    fn step_get(&self, script: &str, key: &str) -> Result<Option<String>> {
        Ok(self.db()?.opt("SELECT result FROM steps WHERE script = $1 AND key = $2", &[&script, &key])?.map(|r| r.get(0)))
    }

    fn step_put(&self, script: &str, key: &str, result: &str, run_id: i64, now: i64) -> Result<()> {
        self.db()?.exec(
            "INSERT INTO steps (script, key, result, run_id, at) VALUES ($1, $2, $3, $4, $5) ON CONFLICT (script, key) DO NOTHING",
            &[&script, &key, &result, &run_id, &now],
        )?;
        Ok(())
    }

    fn state_get(&self, script: &str, key: &str) -> Result<Option<String>> {
        Ok(self.db()?.opt("SELECT value FROM script_state WHERE script = $1 AND key = $2", &[&script, &key])?.map(|r| r.get(0)))
    }

    fn state_set(&self, script: &str, key: &str, value: &str, now: i64) -> Result<()> {
        self.db()?.exec(
            "INSERT INTO script_state (script, key, value, updated) VALUES ($1, $2, $3, $4)
             ON CONFLICT (script, key) DO UPDATE SET value = excluded.value, updated = excluded.updated",
            &[&script, &key, &value, &now],
        )?;
        Ok(())
    }

    fn state_delete(&self, script: &str, key: &str) -> Result<()> {
        self.db()?.exec("DELETE FROM script_state WHERE script = $1 AND key = $2", &[&script, &key])?;
        Ok(())
    }

    fn state_swap(&self, script: &str, key: &str, expected: Option<&str>, value: &str, now: i64) -> Result<bool> {
        // One statement each. A concurrent insert of the key makes this one
        // wait and then do nothing; a concurrent update makes the UPDATE
        // wait and then test `value = expected` on the row as it is now.
        let written = match expected {
            None => self.db()?.exec(
                "INSERT INTO script_state (script, key, value, updated) VALUES ($1, $2, $3, $4) ON CONFLICT (script, key) DO NOTHING",
                &[&script, &key, &value, &now],
            )?,
            Some(old) => self.db()?.exec("UPDATE script_state SET value = $3, updated = $4 WHERE script = $1 AND key = $2 AND value = $5", &[&script, &key, &value, &now, &old])?,
        };
        Ok(written == 1)
    }

    fn state_incr(&self, script: &str, key: &str, by: i64, now: i64) -> Result<i64> {
        // One upsert. The WHERE (tested before SET is computed) leaves alone
        // a value that is not an integer's canonical text and a sum outside
        // 64 bits, as SQLite's does; then nothing is returned. CASE keeps
        // the casts from seeing text that is not a number.
        let new: Option<String> = self
            .db()?
            .opt(
                "INSERT INTO script_state AS s (script, key, value, updated) VALUES ($1, $2, $3::BIGINT::TEXT, $4)
                 ON CONFLICT (script, key) DO UPDATE SET value = (s.value::NUMERIC + $3::BIGINT)::BIGINT::TEXT, updated = excluded.updated
                     WHERE CASE WHEN s.value ~ '^-?[0-9]{1,19}$' AND s.value::NUMERIC::TEXT = s.value
                                THEN s.value::NUMERIC + $3::BIGINT BETWEEN -9223372036854775808 AND 9223372036854775807
                                ELSE false END
                 RETURNING s.value",
                &[&script, &key, &by, &now],
            )?
            .map(|r| r.get(0));
        let Some(new) = new else { return Err(incr_refused(key, self.state_get(script, key)?, by)) };
        Ok(new.parse()?)
    }

    fn state_list(&self, script: &str, prefix: &str, limit: usize) -> Result<Vec<(String, String)>> {
        // A key range (the key column is COLLATE "C": byte order, as in
        // SQLite), so the primary key index finds them.
        let rows = self.db()?.query(
            "SELECT key, value FROM script_state WHERE script = $1 AND key >= $2 AND ($3::TEXT IS NULL OR key < $3) ORDER BY key LIMIT $4",
            &[&script, &prefix, &prefix_end(prefix), &(limit as i64)],
        )?;
        Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
    }

    fn script_loaded(&self, name: &str, version: i64, hash: &str, triggers: &serde_json::Value, change: Option<&serde_json::Value>, now: i64) -> Result<()> {
        // An upsert: hosts loading the same file at once each succeed.
        self.db()?.exec(
            "INSERT INTO scripts (name, version, loaded_at, triggers, trigger_change, hash) VALUES ($1, $2, $3, $4, $5, $6)
             ON CONFLICT (name) DO UPDATE SET version = excluded.version, loaded_at = excluded.loaded_at, triggers = excluded.triggers,
                 error = NULL, error_at = NULL, removed_at = NULL, trigger_change = COALESCE(excluded.trigger_change, scripts.trigger_change),
                 hash = excluded.hash",
            &[&name, &version, &now, &triggers.to_string(), &change.map(|c| c.to_string()), &hash],
        )?;
        Ok(())
    }

    fn script_version(&self, name: &str) -> Result<i64> {
        Ok(self.db()?.opt("SELECT version FROM scripts WHERE name = $1", &[&name])?.map_or(0, |r| r.get(0)))
    }

    fn script_hash(&self, name: &str) -> Result<Option<String>> {
        Ok(self.db()?.opt("SELECT hash FROM scripts WHERE name = $1", &[&name])?.and_then(|r| r.get(0)))
    }

    fn script_error(&self, name: &str, error: &str, now: i64) -> Result<()> {
        self.db()?.exec(
            "INSERT INTO scripts (name, version, loaded_at, triggers, error, error_at) VALUES ($1, 0, $3, '[]', $2, $3)
             ON CONFLICT (name) DO UPDATE SET error = excluded.error, error_at = excluded.error_at",
            &[&name, &error, &now],
        )?;
        Ok(())
    }

    fn script_removed(&self, name: &str, now: i64) -> Result<()> {
        self.db()?.exec("UPDATE scripts SET removed_at = $2 WHERE name = $1", &[&name, &now])?;
        Ok(())
    }

    fn scripts(&self) -> Result<Vec<ScriptStatus>> {
        let mut db = self.db()?;
        let rows = db.query("SELECT name, version, loaded_at, triggers, error, error_at, removed_at, trigger_change FROM scripts ORDER BY name", &[])?;
        let last = format!("SELECT {RUN_COLUMNS} FROM runs WHERE script = $1 ORDER BY id DESC LIMIT 1");
        rows.iter()
            .map(|r| {
                let name: String = r.get(0);
                let last_run = db.opt(&last, &[&name])?.map(|r| run_record(&r));
                Ok(ScriptStatus {
                    version: r.get(1),
                    loaded_at: r.get(2),
                    triggers: serde_json::from_str(r.get(3)).unwrap_or_default(),
                    error: r.get(4),
                    error_at: r.get(5),
                    removed_at: r.get(6),
                    trigger_change: r.get::<_, Option<String>>(7).and_then(|t| serde_json::from_str(&t).ok()),
                    last_run,
                    name,
                })
            })
            .collect()
    }

    fn schedule_claim(&self, script: &str, function: &str, tick: i64, owner: &str) -> Result<bool> {
        let mut db = self.db()?;
        // The tick's primary key decides: a second host's insert waits for
        // the first and then does nothing.
        let won = db.exec(
            "INSERT INTO schedule_ticks (script, function, tick, fired_by) VALUES ($1, $2, $3, $4) ON CONFLICT (script, function, tick) DO NOTHING",
            &[&script, &function, &tick, &owner],
        )? == 1;
        db.exec("DELETE FROM schedule_ticks WHERE script = $1 AND function = $2 AND tick < $3", &[&script, &function, &(tick - SCHEDULE_TICKS_KEPT_MS)])?;
        Ok(won)
    }
}

impl PgStore {
    /// Run a `DELETE ... LIMIT $last` over and over until it deletes fewer
    /// than [`PRUNE_BATCH`] rows: each batch is its own transaction, so
    /// ingress and dispatch interleave with a long prune. `args` are the
    /// parameters before the batch size.
    fn batches(&self, sql: &str, args: &[i64]) -> Result<usize> {
        let mut params: Vec<&(dyn ToSql + Sync)> = args.iter().map(|a| a as &(dyn ToSql + Sync)).collect();
        params.push(&PRUNE_BATCH);
        let mut total = 0;
        loop {
            let n = self.db()?.exec(sql, &params)?;
            total += n;
            if (n as i64) < PRUNE_BATCH {
                return Ok(total);
            }
        }
    }
}
