//! Calendar dates as day counts since 1970-01-01, the form rbtx and its sandboxes store, compare
//! and add to; the calendar itself (month lengths, leap years, time zones) is jiff's.
//!
//! A day count names a date in jiff's years -9999..=9999; one further out (only an absurd
//! offset reaches it) stands for the nearest of those, further than any date a service takes.

use jiff::civil::{Date, date};
use jiff::{Span, Timestamp};

const EPOCH: Date = date(1970, 1, 1);

/// The date of a day count.
pub fn to_date(days: i64) -> Date {
    Span::new()
        .try_days(days)
        .and_then(|span| EPOCH.checked_add(span))
        .unwrap_or(if days < 0 { Date::MIN } else { Date::MAX })
}

/// The day count of a date.
pub fn from_date(d: Date) -> i64 {
    // Any two dates jiff holds are fewer days apart than a span holds, so this cannot fail.
    d.since(EPOCH).map_or(0, |span| i64::from(span.get_days()))
}

/// Year, month and day of a day count.
pub fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let d = to_date(days);
    (
        i64::from(d.year()),
        d.month().unsigned_abs().into(),
        d.day().unsigned_abs().into(),
    )
}

/// Seconds since 1970-01-01 00:00 UTC, now.
pub fn now_seconds() -> i64 {
    Timestamp::now().as_second()
}

/// Milliseconds since 1970-01-01 00:00 UTC, now.
pub fn now_millis() -> i64 {
    Timestamp::now().as_millisecond()
}

/// Today's date (UTC) as days since 1970-01-01.
pub fn today() -> i64 {
    now_seconds().div_euclid(86_400)
}

static DENMARK: jiff::tz::TimeZone = jiff::tz::get!("Europe/Copenhagen");

/// Today's date in Denmark (Europe/Copenhagen), where Rackbeat dates its documents, as days
/// since 1970-01-01.
pub fn today_in_denmark() -> i64 {
    from_date(Timestamp::now().to_zoned(DENMARK.clone()).date())
}

/// A moment (unix milliseconds) as Danish local time, `2026-12-04 07:01:02`, for people.
pub fn format_millis_in_denmark(ms: i64) -> String {
    match Timestamp::from_millisecond(ms) {
        Ok(t) => t
            .to_zoned(DENMARK.clone())
            .strftime("%Y-%m-%d %H:%M:%S")
            .to_string(),
        Err(_) => ms.to_string(),
    }
}

/// The same day `n` months later, clamped to the last day of a shorter month.
pub fn add_months(days: i64, n: i64) -> i64 {
    let d = to_date(days);
    let moved = Span::new()
        .try_months(n)
        .and_then(|span| d.checked_add(span));
    from_date(moved.unwrap_or(if n < 0 { Date::MIN } else { Date::MAX }))
}

/// The last day of the month a day count falls in.
pub fn last_of_month(days: i64) -> i64 {
    from_date(to_date(days).last_of_month())
}

/// Exactly `YYYY-MM-DD` naming a real day (what Tripletex accepts).
pub fn parse_strict(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<i16> {
        let part = s.get(r)?;
        part.bytes()
            .all(|c| c.is_ascii_digit())
            .then(|| part.parse().ok())
            .flatten()
    };
    let (y, m, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let d = Date::new(y, i8::try_from(m).ok()?, i8::try_from(d).ok()?).ok()?;
    Some(from_date(d))
}

/// Days since 1970-01-01 as `YYYY-MM-DD`.
pub fn format(days: i64) -> String {
    to_date(days).to_string()
}

/// `YYYY-MM-DD`, alone or as the date part of a timestamp, as days since 1970-01-01.
pub fn parse(s: &str) -> Option<i64> {
    parse_strict(s.get(..10)?)
}

/// A length of time written with a unit, `500ms`, `30s`, `90m`, `6h`, `1d`, or as plain seconds
/// (`300`); more than zero. The error says what to write instead.
pub fn parse_interval(s: &str) -> Result<std::time::Duration, String> {
    let t = s.trim();
    let (number, unit) = t.split_at(t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len()));
    let n: u64 = number
        .parse()
        .map_err(|_| format!("`{s}` is not a duration; write e.g. 30s, 90m, 6h or 1d"))?;
    let millis = match unit.trim() {
        "ms" => 1,
        "" | "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        _ => return Err(format!("`{s}`: the unit is ms, s, m, h or d")),
    };
    match n.saturating_mul(millis) {
        0 => Err("the interval must be more than 0".into()),
        ms => Ok(std::time::Duration::from_millis(ms)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intervals_have_units() {
        let secs = |s| parse_interval(s).map(|d| d.as_millis());
        assert_eq!(secs("90m"), Ok(5_400_000));
        assert_eq!(secs("300"), Ok(300_000));
        assert_eq!(secs(" 30s "), Ok(30_000));
        assert_eq!(secs("500ms"), Ok(500));
        assert_eq!(secs("1d"), Ok(86_400_000));
        for bad in ["", "0", "0m", "5 minutes", "m", "-1s", "1.5h"] {
            assert!(parse_interval(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn round_trips() {
        assert_eq!(format(parse("2024-02-29").unwrap_or(0)), "2024-02-29");
        assert_eq!(parse("1970-01-01"), Some(0));
        assert_eq!(parse("2025-02-27T14:03:55+01:00"), parse("2025-02-27"));
        assert_eq!(format(-1), "1969-12-31");
        assert_eq!(civil_from_days(19_782), (2024, 2, 29));
    }

    #[test]
    fn impossible_days_are_not_dates() {
        for s in [
            "2025-02-29",
            "2025-02-31",
            "2025-04-31",
            "2025-13-01",
            "2025-00-10",
        ] {
            assert_eq!(parse(s), None, "{s}");
        }
    }

    #[test]
    fn months_clamp_and_far_offsets_stay_within_the_calendar() {
        let d = |s| parse(s).unwrap_or_default();
        assert_eq!(format(add_months(d("2024-01-31"), 1)), "2024-02-29");
        assert_eq!(format(add_months(d("2024-03-31"), -1)), "2024-02-29");
        assert_eq!(format(last_of_month(d("2025-02-10"))), "2025-02-28");
        assert_eq!(format(d("2025-01-01") + 1_000_000_000), "9999-12-31");
        assert_eq!(format(add_months(0, i64::MAX)), "9999-12-31");
    }
}

#[cfg(test)]
mod local_time_tests {
    #[test]
    fn moments_are_shown_in_danish_time_with_summer_time() {
        assert_eq!(super::format_millis_in_denmark(0), "1970-01-01 01:00:00");
        // 2026-07-01 12:00 UTC is 14:00 in Copenhagen (CEST).
        assert_eq!(
            super::format_millis_in_denmark(1_782_907_200_000),
            "2026-07-01 14:00:00"
        );
    }
}
