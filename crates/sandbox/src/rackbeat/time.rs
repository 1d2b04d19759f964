//! Wall-clock time as Rackbeat shows it: Danish local time (Europe/Copenhagen, CET/CEST), by
//! jiff from the time zone rules compiled into the binary, so it reads the same on a machine
//! without a system time zone database.

use jiff::civil::DateTime;
use jiff::tz::{AmbiguousOffset, TimeZone};
use jiff::{Timestamp, Zoned};

/// Seconds since 1970-01-01 00:00 UTC.
pub type Unix = i64;

static DENMARK: TimeZone = jiff::tz::get!("Europe/Copenhagen");

pub fn now() -> Unix {
    rbtx_dates::now_seconds()
}

/// An instant in Danish local time; one beyond jiff's years -9999..=9999 is the nearest it holds.
fn local(t: Unix) -> Zoned {
    Timestamp::from_second(t)
        .unwrap_or(if t < 0 {
            Timestamp::MIN
        } else {
            Timestamp::MAX
        })
        .to_zoned(DENMARK.clone())
}

/// `2025-02-27T14:03:55+01:00`, the format of records' timestamps.
pub fn iso(t: Unix) -> String {
    local(t).strftime("%Y-%m-%dT%H:%M:%S%:z").to_string()
}

/// `2025-03-01 09:15:00`, the format of webhook timestamps and of the time filters.
pub fn sql(t: Unix) -> String {
    local(t).strftime("%Y-%m-%d %H:%M:%S").to_string()
}

/// The local date of an instant as a day count.
pub fn local_day(t: Unix) -> i64 {
    rbtx_dates::from_date(local(t).date())
}

/// A day count as `YYYY-MM-DD`.
pub fn day_string(day: i64) -> String {
    rbtx_dates::format(day)
}

/// The instant of a local wall-clock time. Inside a change of offset (the hour skipped in March,
/// the hour repeated in October) it is read with the offset in force after the change.
pub fn from_local(dt: DateTime) -> Unix {
    let offset = match DENMARK.to_ambiguous_timestamp(dt).offset() {
        AmbiguousOffset::Unambiguous { offset } => offset,
        AmbiguousOffset::Gap { after, .. } | AmbiguousOffset::Fold { after, .. } => after,
    };
    offset.to_timestamp(dt).map_or_else(
        |_| {
            if dt.year() < 0 {
                Timestamp::MIN
            } else {
                Timestamp::MAX
            }
            .as_second()
        },
        Timestamp::as_second,
    )
}

/// A date as written in request bodies (`YYYY-MM-DD`), as a day count.
pub fn parse_day(s: &str) -> Option<i64> {
    rbtx_dates::parse_strict(s)
}

/// A filter value: `YYYY-MM-DD HH:MM:SS` (or a bare date, meaning midnight) in local time.
pub fn parse_filter(s: &str) -> Option<Unix> {
    let (date, clock) = match s.split_once([' ', 'T']) {
        Some((d, c)) => (d, Some(c)),
        None => (s, None),
    };
    let date = rbtx_dates::to_date(parse_day(date)?);
    let (h, mi, se) = match clock {
        None => (0, 0, 0),
        Some(c) => {
            let mut parts = c.split(':');
            let h: i8 = parts.next()?.parse().ok()?;
            let mi: i8 = parts.next()?.parse().ok()?;
            let se: i8 = parts.next()?.parse().ok()?;
            if parts.next().is_some() {
                return None;
            }
            (h, mi, se)
        }
    };
    Some(from_local(
        date.to_datetime(jiff::civil::Time::new(h, mi, se, 0).ok()?),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use jiff::civil::datetime;

    #[test]
    fn summer_time_starts_and_ends_on_the_last_sundays_of_march_and_october() {
        // 2025-03-30 and 2025-10-26 are the last Sundays; the change is at 01:00 UTC.
        let utc = |s: &str| s.parse::<Timestamp>().map_or(0, Timestamp::as_second);
        assert_eq!(
            iso(utc("2025-03-30T00:59:59Z")),
            "2025-03-30T01:59:59+01:00"
        );
        assert_eq!(
            iso(utc("2025-03-30T01:00:00Z")),
            "2025-03-30T03:00:00+02:00"
        );
        assert_eq!(
            iso(utc("2025-10-26T00:59:59Z")),
            "2025-10-26T02:59:59+02:00"
        );
        assert_eq!(
            iso(utc("2025-10-26T01:00:00Z")),
            "2025-10-26T02:00:00+01:00"
        );
        assert_eq!(sql(utc("2025-03-23T01:00:00Z")), "2025-03-23 02:00:00");
        assert_eq!(
            local_day(utc("2025-06-30T22:30:00Z")),
            rbtx_dates::parse("2025-07-01").unwrap_or(0)
        );

        // Wall-clock times inside a change take the offset after it, as before jiff.
        let at = |h, mi| from_local(datetime(2025, 3, 30, h, mi, 0, 0));
        assert_eq!(at(1, 59), utc("2025-03-30T00:59:00Z"));
        assert_eq!(at(2, 30), utc("2025-03-30T00:30:00Z"));
        assert_eq!(at(3, 0), utc("2025-03-30T01:00:00Z"));
        let at = |h, mi| from_local(datetime(2025, 10, 26, h, mi, 0, 0));
        assert_eq!(at(1, 59), utc("2025-10-25T23:59:00Z"));
        assert_eq!(at(2, 30), utc("2025-10-26T01:30:00Z"));
        assert_eq!(at(3, 0), utc("2025-10-26T02:00:00Z"));
    }

    #[test]
    fn filters_are_local_times_and_bad_ones_are_refused() {
        assert_eq!(
            parse_filter("2025-03-01 09:15:00").map(sql).as_deref(),
            Some("2025-03-01 09:15:00")
        );
        assert_eq!(
            parse_filter("2025-07-01").map(iso).as_deref(),
            Some("2025-07-01T00:00:00+02:00")
        );
        for bad in [
            "2025-02-29",
            "2025-03-01 24:00:00",
            "2025-03-01 09:15",
            "2025-03-01 9:60:00",
        ] {
            assert_eq!(parse_filter(bad), None, "{bad}");
        }
    }
}
