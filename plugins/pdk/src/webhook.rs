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
