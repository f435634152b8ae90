//! Durable state in SQLite (WAL): plugin key-value state now; events, runs
//! and steps join it as the migrations in `host/migrations/sqlite` grow.
//! Migrations are versioned files applied in order, each once, recorded in
//! `schema_migrations`.
use anyhow::{Context, Result};
use rusqlite::{params, Connection, OptionalExtension};
use std::path::Path;
use std::sync::Mutex;

/// The migrations, in order. A new file is appended here, never edited.
const MIGRATIONS: &[(&str, &str)] = &[("0001_kv", include_str!("../../migrations/sqlite/0001_kv.sql"))];

pub struct Store {
    conn: Mutex<Connection>,
}

impl Store {
    pub fn open(path: &Path) -> Result<Store> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        let conn = Connection::open(path).with_context(|| format!("opening store {}", path.display()))?;
        Store::init(conn).with_context(|| format!("preparing store {}", path.display()))
    }

    pub fn open_in_memory() -> Result<Store> {
        Store::init(Connection::open_in_memory()?)
    }

    fn init(mut conn: Connection) -> Result<Store> {
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
        Ok(Store { conn: Mutex::new(conn) })
    }

    pub fn kv_get(&self, connector: &str, key: &str) -> Result<Option<Vec<u8>>> {
        let conn = self.conn.lock().unwrap();
        Ok(conn.query_row("SELECT value FROM kv WHERE connector = ?1 AND key = ?2", params![connector, key], |r| r.get(0)).optional()?)
    }

    pub fn kv_set(&self, connector: &str, key: &str, value: &[u8]) -> Result<()> {
        let conn = self.conn.lock().unwrap();
        conn.execute(
            "INSERT INTO kv (connector, key, value, updated) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (connector, key) DO UPDATE SET value = excluded.value, updated = excluded.updated",
            params![connector, key, value, now_ms()],
        )?;
        Ok(())
    }

    pub fn kv_delete(&self, connector: &str, key: &str) -> Result<()> {
        let conn = self.conn.lock().unwrap();
        conn.execute("DELETE FROM kv WHERE connector = ?1 AND key = ?2", params![connector, key])?;
        Ok(())
    }
}

pub fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kv_is_per_connector_and_survives_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.db");
        {
            let s = Store::open(&path).unwrap();
            s.kv_set("a", "k", b"1").unwrap();
            s.kv_set("a", "k", b"2").unwrap();
            s.kv_set("b", "k", b"3").unwrap();
        }
        let s = Store::open(&path).unwrap();
        assert_eq!(s.kv_get("a", "k").unwrap().as_deref(), Some(&b"2"[..]));
        assert_eq!(s.kv_get("b", "k").unwrap().as_deref(), Some(&b"3"[..]));
        s.kv_delete("a", "k").unwrap();
        assert_eq!(s.kv_get("a", "k").unwrap(), None);
    }
}
