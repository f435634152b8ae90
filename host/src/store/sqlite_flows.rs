//! Flows in SQLite. Claims are one `UPDATE ... RETURNING` inside `BEGIN
//! IMMEDIATE`, so two hosts on one file never lease the same flow.
use super::sqlite::SqliteStore;
use crate::flow::store::*;
use anyhow::{bail, Result};
use rusqlite::{params, OptionalExtension, Row, TransactionBehavior};
use serde_json::Value;

const FLOW_COLUMNS: &str = "id, script, function, key, input, status, wake_at, waiting_for, waiting_since, current_step, result, last_error, attempts, wakes, version, lease_owner, lease_until, created_at, updated_at";

fn json(text: Option<String>) -> Option<Value> {
    text.map(|t| serde_json::from_str(&t).unwrap_or(Value::String(t)))
}

fn flow_row(r: &Row) -> rusqlite::Result<FlowRecord> {
    Ok(FlowRecord {
        id: r.get(0)?,
        script: r.get(1)?,
        function: r.get(2)?,
        key: r.get(3)?,
        input: json(r.get(4)?).unwrap_or(Value::Null),
        status: r.get(5)?,
        wake_at: r.get(6)?,
        waiting_for: json(r.get(7)?),
        waiting_since: r.get(8)?,
        current_step: r.get(9)?,
        result: json(r.get(10)?),
        last_error: r.get(11)?,
        attempts: r.get(12)?,
        wakes: r.get(13)?,
        version: r.get(14)?,
        lease_owner: r.get(15)?,
        lease_until: r.get(16)?,
        created_at: r.get(17)?,
        updated_at: r.get(18)?,
    })
}

fn step_row(r: &Row) -> rusqlite::Result<FlowStep> {
    Ok(FlowStep {
        ordinal: r.get(0)?,
        kind: r.get(1)?,
        name: r.get(2)?,
        status: r.get(3)?,
        result: json(r.get(4)?),
        detail: json(r.get(5)?),
        started_at: r.get(6)?,
        ended_at: r.get(7)?,
    })
}

const STEP_COLUMNS: &str = "ordinal, kind, name, status, result, detail, started_at, ended_at";

impl FlowStore for SqliteStore {
    fn flow_start(&self, script: &str, function: &str, key: &str, input: &Value, version: i64, now: i64) -> Result<(i64, bool)> {
        let conn = self.conn();
        let inserted = conn.execute(
            "INSERT INTO flows (script, function, key, input, status, version, created_at, updated_at) VALUES (?1, ?2, ?3, ?4, 'ready', ?5, ?6, ?6)
             ON CONFLICT (script, function, key) DO NOTHING",
            params![script, function, key, input.to_string(), version, now],
        )?;
        let id: i64 = conn.query_row("SELECT id FROM flows WHERE script = ?1 AND function = ?2 AND key = ?3", params![script, function, key], |r| r.get(0))?;
        Ok((id, inserted == 1))
    }

    fn flow_claim(&self, owner: &str, now: i64, lease_until: i64, limit: usize) -> Result<Vec<FlowRecord>> {
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let claimed = {
            let mut st = tx.prepare_cached(&format!(
                "UPDATE flows SET lease_owner = ?1, lease_until = ?2, nudged = 0, wakes = wakes + 1 WHERE id IN (
                    SELECT id FROM flows
                    WHERE (status = 'ready' OR (status = 'waiting' AND wake_at <= ?3))
                      AND (lease_until IS NULL OR lease_until < ?3)
                    ORDER BY COALESCE(wake_at, created_at) LIMIT ?4)
                 RETURNING {FLOW_COLUMNS}"
            ))?;
            let rows = st.query_map(params![owner, lease_until, now, limit as i64], flow_row)?;
            rows.collect::<rusqlite::Result<Vec<_>>>()?
        };
        tx.commit()?;
        Ok(claimed)
    }

    fn flow_next_wake(&self) -> Result<Option<i64>> {
        let conn = self.reader();
        Ok(conn.query_row(
            "SELECT MIN(CASE WHEN lease_until IS NOT NULL THEN lease_until WHEN status = 'ready' THEN 0 ELSE wake_at END) FROM flows WHERE status IN ('waiting', 'ready')",
            [],
            |r| r.get(0),
        )?)
    }

    fn flow_release_orphans(&self, machine: &str, alive: &dyn Fn(i64) -> bool) -> Result<usize> {
        let conn = self.conn();
        let owners: Vec<String> = conn.prepare("SELECT DISTINCT lease_owner FROM flows WHERE lease_owner IS NOT NULL")?.query_map([], |r| r.get(0))?.collect::<rusqlite::Result<_>>()?;
        let mut n = 0;
        for owner in owners.iter().filter(|o| super::owner_gone(o, machine, alive)) {
            n += conn.execute("UPDATE flows SET lease_owner = NULL, lease_until = NULL WHERE lease_owner = ?1", [owner])?;
        }
        Ok(n)
    }

    fn flow_settle(&self, id: i64, owner: &str, settle: &Settle, now: i64) -> Result<()> {
        let conn = self.conn();
        let mine = "id = ?1 AND lease_owner = ?2";
        match settle {
            Settle::Done(v) => conn.execute(
                &format!("UPDATE flows SET status = 'done', result = ?3, wake_at = NULL, waiting_for = NULL, waiting_since = NULL, current_step = NULL, last_error = NULL, attempts = 0, lease_owner = NULL, lease_until = NULL, updated_at = ?4 WHERE {mine}"),
                params![id, owner, v.to_string(), now],
            )?,
            Settle::Failed(e) => conn.execute(
                &format!("UPDATE flows SET status = 'failed', last_error = ?3, wake_at = NULL, lease_owner = NULL, lease_until = NULL, updated_at = ?4 WHERE {mine}"),
                params![id, owner, e, now],
            )?,
            Settle::Retry { at, error } => conn.execute(
                &format!("UPDATE flows SET status = 'waiting', wake_at = ?3, last_error = ?4, attempts = attempts + 1, lease_owner = NULL, lease_until = NULL, updated_at = ?5 WHERE {mine}"),
                params![id, owner, at, error, now],
            )?,
            Settle::Later { at, why } => conn.execute(
                &format!("UPDATE flows SET wake_at = ?3, last_error = ?4, status = CASE WHEN status = 'ready' THEN 'waiting' ELSE status END, lease_owner = NULL, lease_until = NULL, updated_at = ?5 WHERE {mine}"),
                params![id, owner, at, why, now],
            )?,
            Settle::Wait { at, step, waiting_for } => conn.execute(
                // The same wait as before keeps its "since".
                &format!(
                    "UPDATE flows SET status = CASE WHEN nudged = 1 THEN 'ready' ELSE 'waiting' END, wake_at = ?3, current_step = ?4,
                        waiting_since = CASE WHEN waiting_for IS ?5 AND waiting_since IS NOT NULL THEN waiting_since ELSE ?6 END,
                        waiting_for = ?5, last_error = NULL, attempts = 0, lease_owner = NULL, lease_until = NULL, updated_at = ?6 WHERE {mine}"
                ),
                params![id, owner, at, step, waiting_for.to_string(), now],
            )?,
            Settle::InDoubt { step, waiting_for } => conn.execute(
                &format!(
                    "UPDATE flows SET status = 'in_doubt', wake_at = NULL, current_step = ?3, waiting_for = ?4,
                        waiting_since = CASE WHEN status = 'in_doubt' THEN waiting_since ELSE ?5 END,
                        lease_owner = NULL, lease_until = NULL, updated_at = ?5 WHERE {mine}"
                ),
                params![id, owner, step, waiting_for.to_string(), now],
            )?,
        };
        Ok(())
    }

    fn flow(&self, id: i64) -> Result<Option<FlowRecord>> {
        let conn = self.reader();
        Ok(conn.query_row(&format!("SELECT {FLOW_COLUMNS} FROM flows WHERE id = ?1"), [id], flow_row).optional()?)
    }

    fn flows(&self, filter: &FlowFilter) -> Result<Vec<FlowRecord>> {
        let conn = self.reader();
        let mut st = conn.prepare(&format!(
            "SELECT {FLOW_COLUMNS} FROM flows WHERE (?1 IS NULL OR script = ?1) AND (?2 IS NULL OR status = ?2) AND (?3 IS NULL OR key = ?3)
             ORDER BY id DESC LIMIT ?4"
        ))?;
        let limit = if filter.limit == 0 { 100 } else { filter.limit } as i64;
        let rows = st.query_map(params![filter.script, filter.status, filter.key, limit], flow_row)?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    fn flow_counts(&self) -> Result<Vec<(String, i64)>> {
        let conn = self.reader();
        let mut st = conn.prepare("SELECT status, COUNT(*) FROM flows GROUP BY status ORDER BY status")?;
        let rows = st.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    fn flow_step(&self, flow_id: i64, ordinal: u32) -> Result<Option<FlowStep>> {
        let conn = self.reader();
        let mut st = conn.prepare_cached(&format!("SELECT {STEP_COLUMNS} FROM flow_steps WHERE flow_id = ?1 AND ordinal = ?2"))?;
        Ok(st.query_row(params![flow_id, ordinal], step_row).optional()?)
    }

    fn flow_steps(&self, flow_id: i64) -> Result<Vec<FlowStep>> {
        let conn = self.reader();
        let mut st = conn.prepare(&format!("SELECT {STEP_COLUMNS} FROM flow_steps WHERE flow_id = ?1 ORDER BY ordinal"))?;
        let rows = st.query_map([flow_id], step_row)?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    fn flow_step_begin(&self, flow_id: i64, ordinal: u32, kind: &str, name: &str, status: &str, detail: Option<&Value>, now: i64) -> Result<()> {
        let conn = self.conn();
        conn.execute(
            "INSERT INTO flow_steps (flow_id, ordinal, kind, name, status, detail, started_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
             ON CONFLICT (flow_id, ordinal) DO UPDATE SET kind = excluded.kind, name = excluded.name, status = excluded.status,
                detail = excluded.detail, result = NULL, started_at = excluded.started_at, ended_at = NULL",
            params![flow_id, ordinal, kind, name, status, detail.map(Value::to_string), now],
        )?;
        Ok(())
    }

    fn flow_step_update(&self, flow_id: i64, ordinal: u32, status: &str, result: Option<&Value>, detail: Option<&Value>, now: i64) -> Result<()> {
        let conn = self.conn();
        let ended = (status == "done").then_some(now);
        conn.execute(
            "UPDATE flow_steps SET status = ?3, result = COALESCE(?4, result), detail = COALESCE(?5, detail), ended_at = ?6 WHERE flow_id = ?1 AND ordinal = ?2",
            params![flow_id, ordinal, status, result.map(Value::to_string), detail.map(Value::to_string), ended],
        )?;
        Ok(())
    }

    fn flow_step_forget(&self, flow_id: i64, ordinal: u32) -> Result<()> {
        self.conn().execute("DELETE FROM flow_steps WHERE flow_id = ?1 AND ordinal = ?2 AND status IN ('started', 'rerun')", params![flow_id, ordinal])?;
        Ok(())
    }

    fn flow_resolve(&self, id: i64, resolution: &Resolution, now: i64) -> Result<String> {
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let status: Option<String> = tx.query_row("SELECT status FROM flows WHERE id = ?1", [id], |r| r.get(0)).optional()?;
        match status.as_deref() {
            None => bail!("no flow {id}"),
            Some("in_doubt") => {}
            Some(other) => bail!("flow {id} is {other}, not in doubt: only an in-doubt step can be resolved"),
        }
        let step: Option<(u32, String)> = tx
            .query_row("SELECT ordinal, name FROM flow_steps WHERE flow_id = ?1 AND kind = 'step' AND status = 'started' ORDER BY ordinal DESC LIMIT 1", [id], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()?;
        let Some((ordinal, name)) = step else { bail!("flow {id} has no step in doubt") };
        match resolution {
            Resolution::Value(v) => tx.execute(
                "UPDATE flow_steps SET status = 'done', result = ?3, ended_at = ?4, detail = json_object('resolved_by', 'operator') WHERE flow_id = ?1 AND ordinal = ?2",
                params![id, ordinal, v.to_string(), now],
            )?,
            Resolution::Rerun => tx.execute("UPDATE flow_steps SET status = 'rerun' WHERE flow_id = ?1 AND ordinal = ?2", params![id, ordinal])?,
        };
        tx.execute("UPDATE flows SET status = 'ready', wake_at = NULL, last_error = NULL, updated_at = ?2 WHERE id = ?1", params![id, now])?;
        tx.commit()?;
        Ok(name)
    }

    fn flow_retry(&self, id: i64, now: i64) -> Result<()> {
        let conn = self.conn();
        let status: Option<String> = conn.query_row("SELECT status FROM flows WHERE id = ?1", [id], |r| r.get(0)).optional()?;
        match status.as_deref() {
            None => bail!("no flow {id}"),
            Some("failed") => {}
            Some(other) => bail!("flow {id} is {other}: only a failed flow can be retried (an in-doubt one is resolved)"),
        }
        conn.execute("UPDATE flows SET status = 'ready', wake_at = NULL, attempts = 0, updated_at = ?2 WHERE id = ?1", params![id, now])?;
        Ok(())
    }

    fn flow_inbox_put(&self, script: &str, connector: &str, topic: &str, event_id: &str, event: &Value, now: i64) -> Result<Option<i64>> {
        let conn = self.conn();
        conn.execute(
            "INSERT INTO flow_inbox (script, connector, topic, event_id, event, received_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)
             ON CONFLICT (script, connector, topic, event_id) DO NOTHING",
            params![script, connector, topic, event_id, event.to_string(), now],
        )?;
        let (id, claimed): (i64, Option<i64>) = conn.query_row(
            "SELECT id, flow_id FROM flow_inbox WHERE script = ?1 AND connector = ?2 AND topic = ?3 AND event_id = ?4",
            params![script, connector, topic, event_id],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?;
        Ok(claimed.is_none().then_some(id))
    }

    fn flow_event_waits(&self, script: &str, connector: &str, topic: &str) -> Result<Vec<EventWait>> {
        let conn = self.reader();
        let mut st = conn.prepare_cached(
            "SELECT s.flow_id, s.ordinal, s.detail FROM flow_steps s JOIN flows f ON f.id = s.flow_id
             WHERE f.script = ?1 AND f.status IN ('waiting', 'ready') AND s.kind = 'wait' AND s.status = 'waiting'
               AND json_extract(s.detail, '$.connector') = ?2 AND json_extract(s.detail, '$.topic') = ?3
             ORDER BY s.started_at, s.flow_id",
        )?;
        let rows = st.query_map(params![script, connector, topic], |r| {
            let detail: Option<String> = r.get(2)?;
            let pattern = json(detail).and_then(|d| d.get("match").cloned()).unwrap_or(Value::Null);
            Ok(EventWait { flow_id: r.get(0)?, ordinal: r.get(1)?, pattern })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    fn flow_inbox_open(&self, script: &str, connector: &str, topic: &str, limit: usize) -> Result<Vec<(i64, Value)>> {
        let conn = self.reader();
        let mut st = conn.prepare_cached("SELECT id, event FROM flow_inbox WHERE script = ?1 AND connector = ?2 AND topic = ?3 AND flow_id IS NULL ORDER BY id LIMIT ?4")?;
        let rows = st.query_map(params![script, connector, topic, limit as i64], |r| Ok((r.get(0)?, json(r.get(1)?).unwrap_or(Value::Null))))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    fn flow_inbox_claim(&self, inbox_id: i64, flow_id: i64, ordinal: u32, now: i64) -> Result<bool> {
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let n = tx.execute("UPDATE flow_inbox SET flow_id = ?2, ordinal = ?3 WHERE id = ?1 AND flow_id IS NULL", params![inbox_id, flow_id, ordinal])?;
        if n == 1 {
            // A flow that is running now settles as ready (`nudged`), so the
            // event is never left waiting for the wait's deadline.
            tx.execute(
                "UPDATE flows SET nudged = 1, status = CASE WHEN status = 'waiting' THEN 'ready' ELSE status END, updated_at = ?2 WHERE id = ?1",
                params![flow_id, now],
            )?;
        }
        tx.commit()?;
        Ok(n == 1)
    }

    fn flow_inbox_claimed(&self, flow_id: i64, ordinal: u32) -> Result<Option<Value>> {
        let conn = self.reader();
        let mut st = conn.prepare_cached("SELECT event FROM flow_inbox WHERE flow_id = ?1 AND ordinal = ?2 ORDER BY id LIMIT 1")?;
        Ok(st.query_row(params![flow_id, ordinal], |r| r.get::<_, String>(0)).optional()?.and_then(|t| serde_json::from_str(&t).ok()))
    }
}
