//! Calendar dates as days since 1970-01-01: enough for Tripletex's `YYYY-MM-DD` fields, date
//! ranges and due dates, without a date-time dependency.

use std::time::{SystemTime, UNIX_EPOCH};

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's `days_from_civil`).
fn from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// (year, month, day) of a day number.
pub fn to_civil(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

fn days_in_month(y: i64, m: i64) -> i64 {
    let (ny, nm) = if m == 12 { (y + 1, 1) } else { (y, m + 1) };
    from_civil(ny, nm, 1) - from_civil(y, m, 1)
}

/// A strict `YYYY-MM-DD`, as Tripletex accepts it.
pub fn parse(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let part = s.get(r)?;
        part.bytes()
            .all(|c| c.is_ascii_digit())
            .then(|| part.parse().ok())
            .flatten()
    };
    let (y, m, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    if !(1..=12).contains(&m) || d < 1 || d > days_in_month(y, m) {
        return None;
    }
    Some(from_civil(y, m, d))
}

/// A date-time filter such as `changedSince`: a date, optionally followed by `Thh:mm[:ss]`, as
/// seconds since the epoch (UTC).
pub fn parse_date_time(s: &str) -> Option<i64> {
    let (date, time) = match s.split_once(['T', ' ']) {
        Some((d, t)) => (d, Some(t)),
        None => (s, None),
    };
    let mut secs = parse(date)? * 86_400;
    if let Some(t) = time {
        let mut parts = t.split(':');
        let mut unit = 3600;
        for _ in 0..3 {
            let Some(p) = parts.next() else { break };
            let whole = p.split('.').next().unwrap_or(p);
            secs += whole.parse::<i64>().ok()? * unit;
            unit /= 60;
        }
    }
    Some(secs)
}

pub fn format(days: i64) -> String {
    let (y, m, d) = to_civil(days);
    format!("{y:04}-{m:02}-{d:02}")
}

/// Seconds since the epoch, now.
pub fn now_seconds() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// Today's date (UTC).
pub fn today() -> i64 {
    now_seconds().div_euclid(86_400)
}

/// The same day `n` months later, clamped to the last day of a shorter month.
pub fn add_months(days: i64, n: i64) -> i64 {
    let (y, m, d) = to_civil(days);
    let total = y * 12 + (m - 1) + n;
    let (ny, nm) = (total.div_euclid(12), total.rem_euclid(12) + 1);
    from_civil(ny, nm, d.min(days_in_month(ny, nm)))
}

/// The next date after `days` that falls on day `dom` of a month (31 or more: the month's last day).
pub fn next_day_of_month(days: i64, dom: i64) -> i64 {
    let (y, m, d) = to_civil(days);
    let this_month = from_civil(y, m, dom.clamp(1, days_in_month(y, m)));
    if dom.clamp(1, days_in_month(y, m)) > d {
        return this_month;
    }
    let next = add_months(from_civil(y, m, 1), 1);
    let (ny, nm, _) = to_civil(next);
    from_civil(ny, nm, dom.clamp(1, days_in_month(ny, nm)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_round_trip_and_reject_impossible_days() {
        for s in ["1970-01-01", "2024-02-29", "2025-12-31", "2000-03-01"] {
            assert_eq!(parse(s).map(format).as_deref(), Some(s));
        }
        assert_eq!(parse("2025-02-29"), None);
        assert_eq!(parse("2025-1-01"), None);
        assert_eq!(parse("2025-13-01"), None);
    }

    #[test]
    fn months_and_days_of_month() {
        let d = |s| parse(s).unwrap_or_default();
        assert_eq!(format(add_months(d("2025-01-31"), 1)), "2025-02-28");
        assert_eq!(format(add_months(d("2025-11-15"), 3)), "2026-02-15");
        assert_eq!(format(next_day_of_month(d("2025-01-10"), 20)), "2025-01-20");
        assert_eq!(format(next_day_of_month(d("2025-01-20"), 20)), "2025-02-20");
        assert_eq!(format(next_day_of_month(d("2025-01-31"), 31)), "2025-02-28");
        assert_eq!(
            parse_date_time("2025-01-02T03:04:05"),
            Some(d("2025-01-02") * 86_400 + 3 * 3600 + 4 * 60 + 5)
        );
    }
}
