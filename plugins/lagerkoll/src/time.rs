//! Lagerkoll sends dates as milliseconds since 1970 (UTC). These convert
//! between that and RFC 3339 without a date library.

use civil::{civil_from_days, days_from_civil};

/// `2024-04-19T22:26:11.411Z` for 1713565571411: UTC, millisecond precision,
/// so converting back gives the same number.
pub fn ms_to_rfc3339(ms: i64) -> String {
    let days = ms.div_euclid(86_400_000);
    let rest = ms.rem_euclid(86_400_000);
    let (y, m, d) = civil_from_days(days);
    let (h, min, s, milli) = (rest / 3_600_000, rest / 60_000 % 60, rest / 1000 % 60, rest % 1000);
    format!("{y:04}-{m:02}-{d:02}T{h:02}:{min:02}:{s:02}.{milli:03}Z")
}

/// Milliseconds since 1970 of an RFC 3339 date-time (any offset, optional
/// fraction; digits beyond milliseconds are truncated). None when malformed.
pub fn rfc3339_to_ms(text: &str) -> Option<i64> {
    let b = text.as_bytes();
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't' | b' ') || b[13] != b':' || b[16] != b':' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let s = text.get(r)?;
        s.bytes().all(|c| c.is_ascii_digit()).then(|| s.parse().ok())?
    };
    let (y, mo, d, h, mi, s) = (num(0..4)?, num(5..7)?, num(8..10)?, num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || s > 60 {
        return None;
    }
    let mut rest = &text[19..];
    let mut millis = 0i64;
    if let Some(frac) = rest.strip_prefix('.') {
        let digits = frac.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return None;
        }
        let padded = format!("{:0<3}", &frac[..digits.min(3)]);
        millis = padded.parse().ok()?;
        rest = &frac[digits..];
    }
    let offset_min = match rest {
        "Z" | "z" => 0,
        _ if rest.len() == 6 && rest.as_bytes()[3] == b':' => {
            let sign = match rest.as_bytes()[0] {
                b'+' => 1,
                b'-' => -1,
                _ => return None,
            };
            let oh: i64 = rest[1..3].parse().ok()?;
            let om: i64 = rest[4..6].parse().ok()?;
            sign * (oh * 60 + om)
        }
        _ => return None,
    };
    let days = days_from_civil(y, mo as u32, d as u32);
    Some(((days * 86_400 + h * 3600 + mi * 60 + s) - offset_min * 60) * 1000 + millis)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_the_documented_example() {
        assert_eq!(ms_to_rfc3339(1713565571411), "2024-04-19T22:26:11.411Z");
        assert_eq!(rfc3339_to_ms("2024-04-19T22:26:11.411Z"), Some(1713565571411));
        assert_eq!(rfc3339_to_ms("2024-04-20T00:26:11.411+02:00"), Some(1713565571411));
        assert_eq!(rfc3339_to_ms("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(ms_to_rfc3339(-1), "1969-12-31T23:59:59.999Z");
        for ms in [0, 951782400000, 4102444800123, -86400000] {
            assert_eq!(rfc3339_to_ms(&ms_to_rfc3339(ms)), Some(ms));
        }
    }

    #[test]
    fn refuses_malformed_text() {
        for bad in ["2024-04-19", "2024-13-01T00:00:00Z", "2024-04-19T22:26:11", "2024-04-19T22:26:11.Z", "x024-04-19T22:26:11Z"] {
            assert_eq!(rfc3339_to_ms(bad), None, "{bad}");
        }
    }
}
