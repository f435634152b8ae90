//! Helpers for `handle-webhook`: headers, stable dedupe ids.
use crate::Received;

/// A header of the received webhook (names arrive lower-case).
pub fn header<'a>(received: &'a Received, name: &str) -> Option<&'a str> {
    received
        .headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

/// A stable id from parts, for vendors that send no delivery id: the same
/// parts always give the same id. FNV-1a 128-bit, hex; not a security
/// measure, only identity.
pub fn stable_id(parts: &[&[u8]]) -> String {
    let mut hash: u128 = 0x6c62272e07bb014262b821756295c58d;
    const PRIME: u128 = 0x0000000001000000000000000000013B;
    for part in parts {
        for b in (part.len() as u64).to_le_bytes().iter().chain(part.iter()) {
            hash ^= *b as u128;
            hash = hash.wrapping_mul(PRIME);
        }
    }
    format!("{hash:032x}")
}

/// An id no other delivery gets, for vendors that send no delivery id and
/// whose payloads carry state rather than identity (a stock level, a
/// status): two deliveries with the same content are two events, because
/// stock 5 → 4 → 5 is a genuine change each time. The parts are mixed with
/// the wall clock and the random seed the host hands out (`RandomState`
/// draws it from WASI `random`).
pub fn unique_id(parts: &[&[u8]]) -> String {
    use std::hash::{BuildHasher, Hasher};
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or_default();
    let mut random = std::collections::hash_map::RandomState::new().build_hasher();
    random.write_u128(nanos);
    let seed = random.finish();
    let mut all: Vec<&[u8]> = parts.to_vec();
    let nanos = nanos.to_le_bytes();
    let seed = seed.to_le_bytes();
    all.push(&nanos);
    all.push(&seed);
    stable_id(&all)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unique_ids_differ_for_the_same_content() {
        let a = unique_id(&[b"STOCK", b"{\"nettoSalable\":5}"]);
        let b = unique_id(&[b"STOCK", b"{\"nettoSalable\":5}"]);
        assert_ne!(a, b);
        assert_eq!(stable_id(&[b"x"]), stable_id(&[b"x"]));
    }
}
