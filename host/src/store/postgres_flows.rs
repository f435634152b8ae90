//! Flows in PostgreSQL. A claim locks the due flows `FOR UPDATE SKIP
//! LOCKED` and leases them in the same statement: a flow another host is
//! claiming right now is skipped, not waited for, and one it has claimed
//! fails the re-check, so two hosts never lease the same flow.
use super::postgres::PgStore;
use crate::flow::store::*;
use anyhow::{bail, Result};
use serde_json::Value;
use tokio_postgres::Row;

const FLOW_COLUMNS: &str = "id, script, function, key, input, status, wake_at, waiting_for, waiting_since, current_step, result, last_error, attempts, wakes, version, lease_owner, lease_until, created_at, updated_at";

const STEP_COLUMNS: &str = "ordinal, kind, name, status, result, detail, started_at, ended_at";

fn json(text: Option<String>) -> Option<Value> {
    text.map(super::json_text)
}

fn flow_row(r: &Row) -> FlowRecord {
    FlowRecord {
        id: r.get(0),
        script: r.get(1),
        function: r.get(2),
        key: r.get(3),
        input: json(r.get(4)).unwrap_or(Value::Null),
        status: r.get(5),
        wake_at: r.get(6),
        waiting_for: json(r.get(7)),
        waiting_since: r.get(8),
        current_step: r.get(9),
        result: json(r.get(10)),
        last_error: r.get(11),
        attempts: r.get::<_, i64>(12) as u32,
        wakes: r.get::<_, i64>(13) as u32,
        version: r.get(14),
        lease_owner: r.get(15),
        lease_until: r.get(16),
        created_at: r.get(17),
        updated_at: r.get(18),
    }
}

fn step_row(r: &Row) -> FlowStep {
    FlowStep {
        ordinal: r.get::<_, i64>(0) as u32,
        kind: r.get(1),
        name: r.get(2),
        status: r.get(3),
        result: json(r.get(4)),
        detail: json(r.get(5)),
        started_at: r.get(6),
        ended_at: r.get(7),
    }
}

impl FlowStore for PgStore {
    fn flow_start(&self, script: &str, function: &str, key: &str, input: &Value, version: i64, now: i64) -> Result<(i64, bool)> {
        let mut db = self.db()?;
        let inserted = db.exec(
            "INSERT INTO flows (script, function, key, input, status, version, created_at, updated_at) VALUES ($1, $2, $3, $4, 'ready', $5, $6, $6)
             ON CONFLICT (script, function, key) DO NOTHING",
            &[&script, &function, &key, &input.to_string(), &version, &now],
        )?;
        let id: i64 = db.one("SELECT id FROM flows WHERE script = $1 AND function = $2 AND key = $3", &[&script, &function, &key])?.get(0);
        Ok((id, inserted == 1))
    }

    fn flow_claim(&self, owner: &str, now: i64, lease_until: i64, limit: usize) -> Result<Vec<FlowRecord>> {
        let sql = format!(
            "UPDATE flows SET lease_owner = $1, lease_until = $2, nudged = 0, wakes = wakes + 1 WHERE id IN (
                SELECT id FROM flows
                WHERE (status = 'ready' OR (status = 'waiting' AND wake_at <= $3))
                  AND (lease_until IS NULL OR lease_until < $3)
                ORDER BY COALESCE(wake_at, created_at) LIMIT $4
                FOR UPDATE SKIP LOCKED)
             RETURNING {FLOW_COLUMNS}"
        );
        Ok(self.db()?.query(&sql, &[&owner, &lease_until, &now, &(limit as i64)])?.iter().map(flow_row).collect())
    }

    fn flow_next_wake(&self) -> Result<Option<i64>> {
        Ok(self
            .db()?
            .one(
                "SELECT MIN(CASE WHEN lease_until IS NOT NULL THEN lease_until WHEN status = 'ready' THEN 0 ELSE wake_at END) FROM flows WHERE status IN ('waiting', 'ready')",
                &[],
            )?
            .get(0))
    }

    fn flow_release_orphans(&self, machine: &str, alive: &dyn Fn(i64) -> bool) -> Result<usize> {
        let mut db = self.db()?;
        let owners: Vec<String> = db.query("SELECT DISTINCT lease_owner FROM flows WHERE lease_owner IS NOT NULL", &[])?.iter().map(|r| r.get(0)).collect();
        let mut n = 0;
        for owner in owners.iter().filter(|o| super::owner_gone(o, machine, alive)) {
            n += db.exec("UPDATE flows SET lease_owner = NULL, lease_until = NULL WHERE lease_owner = $1", &[owner])?;
        }
        Ok(n)
    }

    fn flow_settle(&self, id: i64, owner: &str, settle: &Settle, now: i64) -> Result<()> {
        let mut db = self.db()?;
        let mine = "id = $1 AND lease_owner = $2";
        match settle {
            Settle::Done(v) => db.exec(
                &format!("UPDATE flows SET status = 'done', result = $3, wake_at = NULL, waiting_for = NULL, waiting_since = NULL, current_step = NULL, last_error = NULL, attempts = 0, lease_owner = NULL, lease_until = NULL, updated_at = $4 WHERE {mine}"),
                &[&id, &owner, &v.to_string(), &now],
            )?,
            Settle::Failed(e) => db.exec(
                &format!("UPDATE flows SET status = 'failed', last_error = $3, wake_at = NULL, lease_owner = NULL, lease_until = NULL, updated_at = $4 WHERE {mine}"),
                &[&id, &owner, e, &now],
            )?,
            Settle::Retry { at, error } => db.exec(
                &format!("UPDATE flows SET status = 'waiting', wake_at = $3, last_error = $4, attempts = attempts + 1, lease_owner = NULL, lease_until = NULL, updated_at = $5 WHERE {mine}"),
                &[&id, &owner, at, error, &now],
            )?,
            Settle::Later { at, why } => db.exec(
                &format!("UPDATE flows SET wake_at = $3, last_error = $4, status = CASE WHEN status = 'ready' THEN 'waiting' ELSE status END, lease_owner = NULL, lease_until = NULL, updated_at = $5 WHERE {mine}"),
                &[&id, &owner, at, why, &now],
            )?,
            Settle::Wait { at, step, waiting_for } => db.exec(
                // The same wait as before keeps its "since".
                &format!(
                    "UPDATE flows SET status = CASE WHEN nudged = 1 THEN 'ready' ELSE 'waiting' END, wake_at = $3, current_step = $4,
                        waiting_since = CASE WHEN waiting_for IS NOT DISTINCT FROM $5::TEXT AND waiting_since IS NOT NULL THEN waiting_since ELSE $6 END,
                        waiting_for = $5, last_error = NULL, attempts = 0, lease_owner = NULL, lease_until = NULL, updated_at = $6 WHERE {mine}"
                ),
                &[&id, &owner, at, step, &waiting_for.to_string(), &now],
            )?,
            Settle::InDoubt { step, waiting_for } => db.exec(
                &format!(
                    "UPDATE flows SET status = 'in_doubt', wake_at = NULL, current_step = $3, waiting_for = $4,
                        waiting_since = CASE WHEN status = 'in_doubt' THEN waiting_since ELSE $5 END,
                        lease_owner = NULL, lease_until = NULL, updated_at = $5 WHERE {mine}"
                ),
                &[&id, &owner, step, &waiting_for.to_string(), &now],
            )?,
        };
        Ok(())
    }

    fn flow(&self, id: i64) -> Result<Option<FlowRecord>> {
        Ok(self.db()?.opt(&format!("SELECT {FLOW_COLUMNS} FROM flows WHERE id = $1"), &[&id])?.map(|r| flow_row(&r)))
    }

    fn flows(&self, filter: &FlowFilter) -> Result<Vec<FlowRecord>> {
        let sql = format!(
            "SELECT {FLOW_COLUMNS} FROM flows WHERE ($1::TEXT IS NULL OR script = $1) AND ($2::TEXT IS NULL OR status = $2) AND ($3::TEXT IS NULL OR key = $3)
             ORDER BY id DESC LIMIT $4"
        );
        let limit = if filter.limit == 0 { 100 } else { filter.limit } as i64;
        Ok(self.db()?.query(&sql, &[&filter.script, &filter.status, &filter.key, &limit])?.iter().map(flow_row).collect())
    }

    fn flow_counts(&self) -> Result<Vec<(String, i64)>> {
        // COLLATE "C": statuses in byte order, as SQLite sorts them.
        let rows = self.db()?.query("SELECT status, COUNT(*) FROM flows GROUP BY status ORDER BY status COLLATE \"C\"", &[])?;
        Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
    }

    fn flow_step(&self, flow_id: i64, ordinal: u32) -> Result<Option<FlowStep>> {
        let sql = format!("SELECT {STEP_COLUMNS} FROM flow_steps WHERE flow_id = $1 AND ordinal = $2");
        Ok(self.db()?.opt(&sql, &[&flow_id, &i64::from(ordinal)])?.map(|r| step_row(&r)))
    }

    fn flow_steps(&self, flow_id: i64) -> Result<Vec<FlowStep>> {
        let sql = format!("SELECT {STEP_COLUMNS} FROM flow_steps WHERE flow_id = $1 ORDER BY ordinal");
        Ok(self.db()?.query(&sql, &[&flow_id])?.iter().map(step_row).collect())
    }

    fn flow_step_begin(&self, flow_id: i64, ordinal: u32, kind: &str, name: &str, status: &str, detail: Option<&Value>, now: i64) -> Result<()> {
        self.db()?.exec(
            "INSERT INTO flow_steps (flow_id, ordinal, kind, name, status, detail, started_at) VALUES ($1, $2, $3, $4, $5, $6, $7)
             ON CONFLICT (flow_id, ordinal) DO UPDATE SET kind = excluded.kind, name = excluded.name, status = excluded.status,
                detail = excluded.detail, result = NULL, started_at = excluded.started_at, ended_at = NULL",
            &[&flow_id, &i64::from(ordinal), &kind, &name, &status, &detail.map(Value::to_string), &now],
        )?;
        Ok(())
    }

    fn flow_step_update(&self, flow_id: i64, ordinal: u32, status: &str, result: Option<&Value>, detail: Option<&Value>, now: i64) -> Result<()> {
        let ended = (status == "done").then_some(now);
        self.db()?.exec(
            "UPDATE flow_steps SET status = $3, result = COALESCE($4, result), detail = COALESCE($5, detail), ended_at = $6 WHERE flow_id = $1 AND ordinal = $2",
            &[&flow_id, &i64::from(ordinal), &status, &result.map(Value::to_string), &detail.map(Value::to_string), &ended],
        )?;
        Ok(())
    }

    fn flow_step_forget(&self, flow_id: i64, ordinal: u32) -> Result<()> {
        self.db()?.exec("DELETE FROM flow_steps WHERE flow_id = $1 AND ordinal = $2 AND status IN ('started', 'rerun')", &[&flow_id, &i64::from(ordinal)])?;
        Ok(())
    }

    fn flow_resolve(&self, id: i64, resolution: &Resolution, now: i64) -> Result<String> {
        self.tx(|db| {
            // Locked: an operator resolving twice at once resolves once.
            let status: Option<String> = db.opt("SELECT status FROM flows WHERE id = $1 FOR UPDATE", &[&id])?.map(|r| r.get(0));
            match status.as_deref() {
                None => bail!("no flow {id}"),
                Some("in_doubt") => {}
                Some(other) => bail!("flow {id} is {other}, not in doubt: only an in-doubt step can be resolved"),
            }
            let step = db.opt("SELECT ordinal, name FROM flow_steps WHERE flow_id = $1 AND kind = 'step' AND status = 'started' ORDER BY ordinal DESC LIMIT 1", &[&id])?;
            let Some(step) = step else { bail!("flow {id} has no step in doubt") };
            let (ordinal, name): (i64, String) = (step.get(0), step.get(1));
            match resolution {
                Resolution::Value(v) => db.exec(
                    "UPDATE flow_steps SET status = 'done', result = $3, ended_at = $4, detail = '{\"resolved_by\":\"operator\"}' WHERE flow_id = $1 AND ordinal = $2",
                    &[&id, &ordinal, &v.to_string(), &now],
                )?,
                Resolution::Rerun => db.exec("UPDATE flow_steps SET status = 'rerun' WHERE flow_id = $1 AND ordinal = $2", &[&id, &ordinal])?,
            };
            db.exec("UPDATE flows SET status = 'ready', wake_at = NULL, last_error = NULL, updated_at = $2 WHERE id = $1", &[&id, &now])?;
            Ok(name)
        })
    }

    fn flow_retry(&self, id: i64, now: i64) -> Result<()> {
        let mut db = self.db()?;
        let status: Option<String> = db.opt("SELECT status FROM flows WHERE id = $1", &[&id])?.map(|r| r.get(0));
        match status.as_deref() {
            None => bail!("no flow {id}"),
            Some("failed") => {}
            Some(other) => bail!("flow {id} is {other}: only a failed flow can be retried (an in-doubt one is resolved)"),
        }
        db.exec("UPDATE flows SET status = 'ready', wake_at = NULL, attempts = 0, updated_at = $2 WHERE id = $1 AND status = 'failed'", &[&id, &now])?;
        Ok(())
    }

    fn flow_inbox_put(&self, script: &str, connector: &str, topic: &str, event_id: &str, event: &Value, now: i64) -> Result<Option<i64>> {
        let mut db = self.db()?;
        db.exec(
            "INSERT INTO flow_inbox (script, connector, topic, event_id, event, received_at) VALUES ($1, $2, $3, $4, $5, $6)
             ON CONFLICT (script, connector, topic, event_id) DO NOTHING",
            &[&script, &connector, &topic, &event_id, &event.to_string(), &now],
        )?;
        let row = db.one("SELECT id, flow_id FROM flow_inbox WHERE script = $1 AND connector = $2 AND topic = $3 AND event_id = $4", &[&script, &connector, &topic, &event_id])?;
        let (id, claimed): (i64, Option<i64>) = (row.get(0), row.get(1));
        Ok(claimed.is_none().then_some(id))
    }

    fn flow_event_waits(&self, script: &str, connector: &str, topic: &str) -> Result<Vec<EventWait>> {
        let rows = self.db()?.query(
            "SELECT s.flow_id, s.ordinal, s.detail FROM flow_steps s JOIN flows f ON f.id = s.flow_id
             WHERE f.script = $1 AND f.status IN ('waiting', 'ready') AND s.kind = 'wait' AND s.status = 'waiting'
               AND (s.detail::jsonb ->> 'connector') = $2 AND (s.detail::jsonb ->> 'topic') = $3
             ORDER BY s.started_at, s.flow_id",
            &[&script, &connector, &topic],
        )?;
        Ok(rows
            .iter()
            .map(|r| EventWait {
                flow_id: r.get(0),
                ordinal: r.get::<_, i64>(1) as u32,
                pattern: json(r.get(2)).and_then(|d| d.get("match").cloned()).unwrap_or(Value::Null),
            })
            .collect())
    }

    fn flow_inbox_open(&self, script: &str, connector: &str, topic: &str, limit: usize) -> Result<Vec<(i64, Value)>> {
        let rows = self.db()?.query(
            "SELECT id, event FROM flow_inbox WHERE script = $1 AND connector = $2 AND topic = $3 AND flow_id IS NULL ORDER BY id LIMIT $4",
            &[&script, &connector, &topic, &(limit as i64)],
        )?;
        Ok(rows.iter().map(|r| (r.get(0), json(r.get(1)).unwrap_or(Value::Null))).collect())
    }

    fn flow_inbox_claim(&self, inbox_id: i64, flow_id: i64, ordinal: u32, now: i64) -> Result<bool> {
        self.tx(|db| {
            // `flow_id IS NULL` is tested again on the row as it is after a
            // concurrent claim: one claim wins.
            let n = db.exec("UPDATE flow_inbox SET flow_id = $2, ordinal = $3 WHERE id = $1 AND flow_id IS NULL", &[&inbox_id, &flow_id, &i64::from(ordinal)])?;
            if n == 1 {
                // A flow that is running now settles as ready (`nudged`), so
                // the event is never left waiting for the wait's deadline.
                db.exec(
                    "UPDATE flows SET nudged = 1, status = CASE WHEN status = 'waiting' THEN 'ready' ELSE status END, updated_at = $2 WHERE id = $1",
                    &[&flow_id, &now],
                )?;
            }
            Ok(n == 1)
        })
    }

    fn flow_inbox_claimed(&self, flow_id: i64, ordinal: u32) -> Result<Option<Value>> {
        let row = self.db()?.opt("SELECT event FROM flow_inbox WHERE flow_id = $1 AND ordinal = $2 ORDER BY id LIMIT 1", &[&flow_id, &i64::from(ordinal)])?;
        Ok(row.and_then(|r| serde_json::from_str(r.get(0)).ok()))
    }
}
