//! The rate ledger's rows in SQLite. A ledger transaction is `BEGIN
//! IMMEDIATE`: it takes the database's write lock first, so two processes
//! can never both see the last free slot.
use super::sqlite::SqliteStore;
use crate::rate_limit::ledger::{LedgerRows, LedgerStore, Pause};
use anyhow::Result;
use rusqlite::{params, Connection, OptionalExtension};

impl LedgerStore for SqliteStore {
    fn ledger_tx(&self, f: &mut dyn FnMut(&mut dyn LedgerRows) -> Result<()>) -> Result<()> {
        // On the writer, with group commit: the ledger's batch shares its
        // transaction with whatever dispatch bookkeeping is queued. A
        // second connection would not let it pass a webhook commit (SQLite
        // has one write lock per file); it would wait in SQLite's busy
        // handler, which sleeps 1, 2, 5, 10… ms per retry instead of
        // queueing, and under load every budget take slept.
        self.writer().write_now(|c| f(&mut Rows(c)))
    }
}

struct Rows<'a>(&'a Connection);

impl LedgerRows for Rows<'_> {
    fn spent(&mut self, bucket: &str, window_s: u32, from: i64) -> Result<u64> {
        let mut st = self.0.prepare_cached("SELECT COALESCE(SUM(n), 0) FROM rate_spent WHERE bucket = ?1 AND window_s = ?2 AND granule >= ?3")?;
        Ok(st.query_row(params![bucket, window_s, from], |r| r.get::<_, i64>(0))? as u64)
    }
    fn spent_granules(&mut self, bucket: &str, window_s: u32, from: i64) -> Result<Vec<(i64, u64)>> {
        let mut st = self.0.prepare_cached("SELECT granule, n FROM rate_spent WHERE bucket = ?1 AND window_s = ?2 AND granule >= ?3 ORDER BY granule")?;
        let rows = st.query_map(params![bucket, window_s, from], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)? as u64)))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }
    fn add_spent(&mut self, bucket: &str, window_s: u32, granule: i64, n: u64) -> Result<()> {
        let mut st = self.0.prepare_cached(
            "INSERT INTO rate_spent (bucket, window_s, granule, n) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (bucket, window_s, granule) DO UPDATE SET n = n + excluded.n",
        )?;
        st.execute(params![bucket, window_s, granule, n as i64])?;
        Ok(())
    }
    fn prune_spent(&mut self, bucket: &str, window_s: u32, before: i64) -> Result<()> {
        let mut st = self.0.prepare_cached("DELETE FROM rate_spent WHERE bucket = ?1 AND window_s = ?2 AND granule < ?3")?;
        st.execute(params![bucket, window_s, before])?;
        Ok(())
    }
    fn in_flight(&mut self, bucket: &str) -> Result<u64> {
        let mut st = self.0.prepare_cached("SELECT COALESCE(SUM(n), 0) FROM rate_in_flight WHERE bucket = ?1")?;
        Ok(st.query_row(params![bucket], |r| r.get::<_, i64>(0))? as u64)
    }
    fn expired_in_flight(&mut self, bucket: &str, now: i64) -> Result<Vec<(i64, u64, i64)>> {
        let mut st = self.0.prepare_cached("SELECT ticket, n, lease_until FROM rate_in_flight WHERE bucket = ?1 AND lease_until <= ?2")?;
        let rows = st.query_map(params![bucket, now], |r| Ok((r.get(0)?, r.get::<_, i64>(1)? as u64, r.get(2)?)))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }
    fn add_in_flight(&mut self, ticket: i64, bucket: &str, n: u64, lease_until: i64) -> Result<()> {
        let mut st = self.0.prepare_cached("INSERT INTO rate_in_flight (ticket, bucket, n, lease_until) VALUES (?1, ?2, ?3, ?4)")?;
        st.execute(params![ticket, bucket, n as i64, lease_until])?;
        Ok(())
    }
    fn remove_in_flight(&mut self, ticket: i64, bucket: &str) -> Result<u64> {
        let mut st = self.0.prepare_cached("DELETE FROM rate_in_flight WHERE bucket = ?1 AND ticket = ?2 RETURNING n")?;
        Ok(st.query_row(params![bucket, ticket], |r| r.get::<_, i64>(0)).optional()?.unwrap_or(0) as u64)
    }
    fn next_ticket(&mut self) -> Result<i64> {
        let mut st = self.0.prepare_cached("UPDATE rate_tickets SET next = next + 1 WHERE id = 1 RETURNING next - 1")?;
        Ok(st.query_row([], |r| r.get(0))?)
    }
    fn pause(&mut self, scope: &str) -> Result<Option<Pause>> {
        let mut st = self.0.prepare_cached("SELECT until_ms, level, cleared, reason, probe FROM rate_pauses WHERE scope = ?1")?;
        Ok(st
            .query_row(params![scope], |r| Ok(Pause { until_ms: r.get(0)?, level: r.get(1)?, cleared: r.get::<_, i64>(2)? != 0, reason: r.get(3)?, probe: r.get(4)? }))
            .optional()?)
    }
    fn put_pause(&mut self, scope: &str, p: &Pause) -> Result<()> {
        let mut st = self.0.prepare_cached(
            "INSERT INTO rate_pauses (scope, until_ms, level, cleared, reason, probe) VALUES (?1, ?2, ?3, ?4, ?5, ?6)
             ON CONFLICT (scope) DO UPDATE SET until_ms = excluded.until_ms, level = excluded.level, cleared = excluded.cleared,
                 reason = excluded.reason, probe = excluded.probe",
        )?;
        st.execute(params![scope, p.until_ms, p.level, p.cleared as i64, p.reason, p.probe])?;
        Ok(())
    }
}
