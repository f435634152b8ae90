//! The PostgreSQL engine: several hosts on one database. (Being written.)
use super::*;

pub struct PgStore {}

impl PgStore {
    pub fn open(location: &crate::config::PostgresLocation) -> Result<PgStore> {
        anyhow::bail!("PostgreSQL store {} is not built yet", location.url)
    }
}
