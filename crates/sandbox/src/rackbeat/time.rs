//! Wall-clock time as Rackbeat shows it: Danish local time (CET/CEST, the same rules as Norway).
//! Kept in-house because the crate has no date library and the sandbox needs only these few
//! conversions.

/// Seconds since 1970-01-01 00:00 UTC.
pub type Unix = i64;

const DAY: i64 = 86_400;

pub fn now() -> Unix {
    rbtx_dates::now_seconds()
}

pub use rbtx_dates::{civil_from_days, days_from_civil};

/// 01:00 UTC on the last Sunday of March or October, when EU summer time starts or ends.
fn last_sunday_0100_utc(y: i64, m: u32) -> Unix {
    let last = days_from_civil(y, m, 31);
    // 1970-01-01 was a Thursday: with Sunday as 0, day 0 is weekday 4.
    let weekday = (last + 4).rem_euclid(7);
    (last - weekday) * DAY + 3600
}

/// Offset of Danish local time from UTC at an instant, in seconds.
fn offset(t: Unix) -> i64 {
    let (y, _, _) = civil_from_days(t.div_euclid(DAY));
    if t >= last_sunday_0100_utc(y, 3) && t < last_sunday_0100_utc(y, 10) {
        7200
    } else {
        3600
    }
}

struct Local {
    y: i64,
    m: u32,
    d: u32,
    secs: i64,
    offset: i64,
}

fn local(t: Unix) -> Local {
    let offset = offset(t);
    let l = t + offset;
    let (y, m, d) = civil_from_days(l.div_euclid(DAY));
    Local {
        y,
        m,
        d,
        secs: l.rem_euclid(DAY),
        offset,
    }
}

/// `2025-02-27T14:03:55+01:00`, the format of records' timestamps.
pub fn iso(t: Unix) -> String {
    let l = local(t);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}+{:02}:00",
        l.y,
        l.m,
        l.d,
        l.secs / 3600,
        l.secs / 60 % 60,
        l.secs % 60,
        l.offset / 3600
    )
}

/// `2025-03-01 09:15:00`, the format of webhook timestamps and of the time filters.
pub fn sql(t: Unix) -> String {
    let l = local(t);
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02}",
        l.y,
        l.m,
        l.d,
        l.secs / 3600,
        l.secs / 60 % 60,
        l.secs % 60
    )
}

/// The local date of an instant as a day count.
pub fn local_day(t: Unix) -> i64 {
    (t + offset(t)).div_euclid(DAY)
}

/// A day count as `YYYY-MM-DD`.
pub fn day_string(day: i64) -> String {
    let (y, m, d) = civil_from_days(day);
    format!("{y:04}-{m:02}-{d:02}")
}

/// The instant of a local wall-clock time.
pub fn from_local(y: i64, m: u32, d: u32, secs_of_day: i64) -> Unix {
    let l = days_from_civil(y, m, d) * DAY + secs_of_day;
    // The offset an hour earlier in UTC is right everywhere except inside the yearly DST gap.
    l - offset(l - 3600)
}

fn parse_date(s: &str) -> Option<(i64, u32, u32)> {
    let b = s.as_bytes();
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let y: i64 = s.get(0..4)?.parse().ok()?;
    let m: u32 = s.get(5..7)?.parse().ok()?;
    let d: u32 = s.get(8..10)?.parse().ok()?;
    let valid =
        (1..=12).contains(&m) && d >= 1 && civil_from_days(days_from_civil(y, m, d)) == (y, m, d);
    valid.then_some((y, m, d))
}

/// A date as written in request bodies (`YYYY-MM-DD`), as a day count.
pub fn parse_day(s: &str) -> Option<i64> {
    parse_date(s).map(|(y, m, d)| days_from_civil(y, m, d))
}

/// A filter value: `YYYY-MM-DD HH:MM:SS` (or a bare date, meaning midnight) in local time.
pub fn parse_filter(s: &str) -> Option<Unix> {
    let (date, clock) = match s.split_once([' ', 'T']) {
        Some((d, c)) => (d, Some(c)),
        None => (s, None),
    };
    let (y, m, d) = parse_date(date)?;
    let secs = match clock {
        None => 0,
        Some(c) => {
            let mut parts = c.split(':');
            let h: i64 = parts.next()?.parse().ok()?;
            let mi: i64 = parts.next()?.parse().ok()?;
            let se: i64 = parts.next()?.parse().ok()?;
            if parts.next().is_some() || h > 23 || mi > 59 || se > 59 || h < 0 || mi < 0 || se < 0 {
                return None;
            }
            h * 3600 + mi * 60 + se
        }
    };
    Some(from_local(y, m, d, secs))
}
