//! The rate ledger's rows in PostgreSQL. A ledger transaction first takes
//! one transaction-scoped advisory lock, so ledger transactions of every
//! host run one at a time, as `BEGIN IMMEDIATE` makes them in SQLite: two
//! hosts can never both see the last free slot (READ COMMITTED alone would
//! let both read the same count and both take it).
use super::postgres::{Db, PgStore, LEDGER_LOCK};
use crate::rate_limit::ledger::{LedgerRows, LedgerStore, Pause};
use anyhow::Result;

impl LedgerStore for PgStore {
    fn ledger_tx(&self, f: &mut dyn FnMut(&mut dyn LedgerRows) -> Result<()>) -> Result<()> {
        self.tx(|db| {
            db.query("SELECT pg_advisory_xact_lock($1)", &[&LEDGER_LOCK])?;
            f(&mut Rows(db))
        })
    }
}

struct Rows<'a, 'b>(&'a mut Db<'b>);

impl LedgerRows for Rows<'_, '_> {
    fn spent(&mut self, bucket: &str, window_s: u32, from: i64) -> Result<u64> {
        let row = self.0.one("SELECT COALESCE(SUM(n), 0)::BIGINT FROM rate_spent WHERE bucket = $1 AND window_s = $2 AND granule >= $3", &[&bucket, &i64::from(window_s), &from])?;
        Ok(row.get::<_, i64>(0) as u64)
    }
    fn spent_granules(&mut self, bucket: &str, window_s: u32, from: i64) -> Result<Vec<(i64, u64)>> {
        let rows = self.0.query("SELECT granule, n FROM rate_spent WHERE bucket = $1 AND window_s = $2 AND granule >= $3 ORDER BY granule", &[&bucket, &i64::from(window_s), &from])?;
        Ok(rows.iter().map(|r| (r.get(0), r.get::<_, i64>(1) as u64)).collect())
    }
    fn add_spent(&mut self, bucket: &str, window_s: u32, granule: i64, n: u64) -> Result<()> {
        self.0.exec(
            "INSERT INTO rate_spent (bucket, window_s, granule, n) VALUES ($1, $2, $3, $4)
             ON CONFLICT (bucket, window_s, granule) DO UPDATE SET n = rate_spent.n + excluded.n",
            &[&bucket, &i64::from(window_s), &granule, &(n as i64)],
        )?;
        Ok(())
    }
    fn prune_spent(&mut self, bucket: &str, window_s: u32, before: i64) -> Result<()> {
        self.0.exec("DELETE FROM rate_spent WHERE bucket = $1 AND window_s = $2 AND granule < $3", &[&bucket, &i64::from(window_s), &before])?;
        Ok(())
    }
    fn in_flight(&mut self, bucket: &str) -> Result<u64> {
        Ok(self.0.one("SELECT COALESCE(SUM(n), 0)::BIGINT FROM rate_in_flight WHERE bucket = $1", &[&bucket])?.get::<_, i64>(0) as u64)
    }
    fn expired_in_flight(&mut self, bucket: &str, now: i64) -> Result<Vec<(i64, u64, i64)>> {
        let rows = self.0.query("SELECT ticket, n, lease_until FROM rate_in_flight WHERE bucket = $1 AND lease_until <= $2", &[&bucket, &now])?;
        Ok(rows.iter().map(|r| (r.get(0), r.get::<_, i64>(1) as u64, r.get(2))).collect())
    }
    fn add_in_flight(&mut self, ticket: i64, bucket: &str, n: u64, lease_until: i64) -> Result<()> {
        self.0.exec("INSERT INTO rate_in_flight (ticket, bucket, n, lease_until) VALUES ($1, $2, $3, $4)", &[&ticket, &bucket, &(n as i64), &lease_until])?;
        Ok(())
    }
    fn remove_in_flight(&mut self, ticket: i64, bucket: &str) -> Result<u64> {
        Ok(self.0.opt("DELETE FROM rate_in_flight WHERE bucket = $1 AND ticket = $2 RETURNING n", &[&bucket, &ticket])?.map_or(0, |r| r.get::<_, i64>(0)) as u64)
    }
    fn next_ticket(&mut self) -> Result<i64> {
        Ok(self.0.one("UPDATE rate_tickets SET next = next + 1 WHERE id = 1 RETURNING next - 1", &[])?.get(0))
    }
    fn pause(&mut self, scope: &str) -> Result<Option<Pause>> {
        Ok(self.0.opt("SELECT until_ms, level, cleared, reason, probe FROM rate_pauses WHERE scope = $1", &[&scope])?.map(|r| Pause {
            until_ms: r.get(0),
            level: r.get::<_, i64>(1) as u32,
            cleared: r.get::<_, i64>(2) != 0,
            reason: r.get(3),
            probe: r.get(4),
        }))
    }
    fn put_pause(&mut self, scope: &str, p: &Pause) -> Result<()> {
        self.0.exec(
            "INSERT INTO rate_pauses (scope, until_ms, level, cleared, reason, probe) VALUES ($1, $2, $3, $4, $5, $6)
             ON CONFLICT (scope) DO UPDATE SET until_ms = excluded.until_ms, level = excluded.level, cleared = excluded.cleared,
                 reason = excluded.reason, probe = excluded.probe",
            &[&scope, &p.until_ms, &i64::from(p.level), &i64::from(p.cleared), &p.reason, &p.probe],
        )?;
        Ok(())
    }
}
