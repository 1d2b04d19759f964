//! Calendar dates as days since 1970-01-01 (see `rbtx_dates`): enough for Tripletex's
//! `YYYY-MM-DD` fields, date ranges and due dates.

pub use rbtx_dates::{add_months, format, now_seconds, parse_strict as parse, today};
use rbtx_dates::{from_date, to_date};

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

/// The next date after `days` that falls on day `dom` of a month (31 or more: the month's last day).
pub fn next_day_of_month(days: i64, dom: i64) -> i64 {
    let date = to_date(days);
    let day_in = |month: jiff::civil::Date| {
        let dom = dom.clamp(1, i64::from(month.days_in_month()));
        month
            .first_of_month()
            .saturating_add(jiff::Span::new().days(dom - 1))
    };
    let this = day_in(date);
    if this > date {
        return from_date(this);
    }
    from_date(day_in(
        date.first_of_month()
            .saturating_add(jiff::Span::new().months(1)),
    ))
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
