//! The little calendar arithmetic the connector needs (no date crate).

use civil::civil_from_days;

pub fn now_unix_s() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// RFC 3339 UTC text of a Unix time in (fractional) seconds, to milliseconds,
/// e.g. the webhook `event_timestamp` 1657012068.444.
pub fn rfc3339_from_unix(seconds: f64) -> String {
    let total_ms = (seconds * 1000.0).round() as i64;
    let (secs, ms) = (total_ms.div_euclid(1000), total_ms.rem_euclid(1000));
    let (days, sod) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (y, m, d) = civil_from_days(days);
    format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{ms:03}Z", sod / 3600, sod % 3600 / 60, sod % 60)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn webhook_timestamps_become_rfc3339() {
        assert_eq!(rfc3339_from_unix(1657012068.444), "2022-07-05T09:07:48.444Z");
        assert_eq!(rfc3339_from_unix(1640787926.323), "2021-12-29T14:25:26.323Z");
        assert_eq!(rfc3339_from_unix(0.0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339_from_unix(951_782_400.0), "2000-02-29T00:00:00.000Z");
    }
}
