//! Calendar arithmetic without a date crate: enough to print UTC times and
//! to give scripts date helpers.

pub use civil::{civil_from_days, days_from_civil};

/// RFC 3339 UTC text of milliseconds since 1970.
pub fn rfc3339(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let (y, m, d) = civil_from_days(secs.div_euclid(86_400));
    let rem = secs.rem_euclid(86_400);
    format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z", rem / 3600, rem / 60 % 60, rem % 60, ms.rem_euclid(1000))
}

/// Milliseconds since 1970 of an RFC 3339 / ISO date or date-time
/// (`2024-05-01`, `2024-05-01T12:00:00Z`, `2024-05-01 12:00:00`, offsets).
pub fn parse(text: &str) -> Option<i64> {
    let t = text.trim();
    let num = |s: &str| s.parse::<i64>().ok();
    let (y, m, d) = (num(t.get(0..4)?)?, num(t.get(5..7)?)?, num(t.get(8..10)?)?);
    if t.get(4..5)? != "-" || t.get(7..8)? != "-" || !(1..=12).contains(&m) || !(1..=31).contains(&d) {
        return None;
    }
    let mut ms = days_from_civil(y, m as u32, d as u32) * 86_400_000;
    if t.len() == 10 {
        return Some(ms);
    }
    if !matches!(t.get(10..11)?, "T" | "t" | " ") {
        return None;
    }
    let (h, mi, s) = (num(t.get(11..13)?)?, num(t.get(14..16)?)?, num(t.get(17..19)?)?);
    ms += (h * 3600 + mi * 60 + s) * 1000;
    let mut rest = &t[19..];
    if let Some(frac) = rest.strip_prefix('.') {
        let digits: String = frac.chars().take_while(|c| c.is_ascii_digit()).collect();
        let scaled = format!("{:0<3}", &digits[..digits.len().min(3)]);
        ms += num(&scaled)?;
        rest = &frac[digits.len()..];
    }
    match rest {
        "" | "Z" | "z" => Some(ms),
        off if off.len() == 6 && (off.starts_with('+') || off.starts_with('-')) => {
            let sign = if off.starts_with('-') { -1 } else { 1 };
            let minutes = num(&off[1..3])? * 60 + num(&off[4..6])?;
            Some(ms - sign * minutes * 60_000)
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(parse("2024-02-29T12:30:15.250Z"), Some(1_709_209_815_250));
        assert_eq!(rfc3339(1_709_209_815_250), "2024-02-29T12:30:15.250Z");
        assert_eq!(parse("2024-02-29T14:30:15.250+02:00"), Some(1_709_209_815_250));
        assert_eq!(parse("2024-02-29 12:30:15"), Some(1_709_209_815_000));
        assert_eq!(parse("2024-02-29"), Some(1_709_164_800_000));
        assert_eq!(parse("2024-13-01"), None);
        assert_eq!(parse("yesterday"), None);
    }
}
