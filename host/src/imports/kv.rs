//! `kv`: small persistent values, private to each connector.
use super::CallState;
use crate::error::{CallError, ErrorKind};
use crate::plugin::v0_1_0::{kv, types};

/// Bounds that keep `kv` small, as the WIT promises.
const MAX_KEY: usize = 256;
const MAX_VALUE: usize = 64 * 1024;

fn store_error(e: impl std::fmt::Display) -> types::Error {
    CallError::new(ErrorKind::Internal, format!("kv store: {e}")).into()
}

fn check_key(key: &str) -> Result<(), types::Error> {
    if key.is_empty() || key.len() > MAX_KEY {
        return Err(CallError::new(ErrorKind::InvalidInput, format!("kv keys are 1..={MAX_KEY} bytes")).into());
    }
    Ok(())
}

impl kv::Host for CallState {
    async fn get(&mut self, key: String) -> Result<Option<Vec<u8>>, types::Error> {
        check_key(&key)?;
        let b = self.binding()?;
        b.shared.store.kv_get(b.name(), &key).map_err(store_error)
    }

    async fn set(&mut self, key: String, value: Vec<u8>) -> Result<(), types::Error> {
        check_key(&key)?;
        if value.len() > MAX_VALUE {
            return Err(CallError::new(ErrorKind::InvalidInput, format!("kv values are at most {MAX_VALUE} bytes, got {}", value.len())).into());
        }
        let b = self.binding()?;
        let (c, q) = (&b.config, &b.shared.quotas);
        let quota = crate::store::KvQuota { max_keys: c.kv_max_keys.unwrap_or(q.kv_max_keys), max_bytes: c.kv_max_bytes.unwrap_or(q.kv_max_bytes) };
        b.shared.store.kv_set(b.name(), &key, &value, quota).map_err(|e| match e.downcast_ref::<crate::store::KvQuotaExceeded>() {
            Some(q) => CallError::new(ErrorKind::Refused, q.0.clone()).into(),
            None => store_error(format!("{e:#}")),
        })
    }

    async fn delete(&mut self, key: String) -> Result<(), types::Error> {
        check_key(&key)?;
        let b = self.binding()?;
        b.shared.store.kv_delete(b.name(), &key).map_err(store_error)
    }
}
