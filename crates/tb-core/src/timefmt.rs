//! Formatting Unix times as UTC dates, for ids, reports and the simulator's JSON, with
//! chrono. Imports nothing internal; no time zone database: everything is UTC.

use chrono::{DateTime, NaiveDateTime, Utc};

/// A Unix time as a UTC date and time; times past chrono's range (some 262,000 years either
/// way) are held at its ends.
fn utc(unix_secs: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(unix_secs, 0).unwrap_or(if unix_secs < 0 {
        DateTime::<Utc>::MIN_UTC
    } else {
        DateTime::<Utc>::MAX_UTC
    })
}

fn utc_ms(unix_ms: u64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(i64::try_from(unix_ms).unwrap_or(i64::MAX)).unwrap_or(DateTime::<Utc>::MAX_UTC)
}

/// `YYYY-MM-DDTHH:MM:SS` (UTC, no zone suffix), as the API writes commit dates.
#[must_use]
pub fn iso(unix_secs: i64) -> String {
    utc(unix_secs).format("%Y-%m-%dT%H:%M:%S").to_string()
}

/// `YYYY-MM-DD HH:MM:SS UTC`, for people.
#[must_use]
pub fn human(unix_secs: i64) -> String {
    utc(unix_secs).format("%Y-%m-%d %H:%M:%S UTC").to_string()
}

/// `YYYYMMDDTHHMMSSZ`, sortable, for run ids.
#[must_use]
pub fn compact(unix_secs: i64) -> String {
    utc(unix_secs).format("%Y%m%dT%H%M%SZ").to_string()
}

/// The Unix time of a [`compact`] time (`YYYYMMDDTHHMMSSZ`), at the start of `text`.
#[must_use]
pub fn parse_compact(text: &str) -> Option<i64> {
    let stamp = text.get(..16)?;
    NaiveDateTime::parse_from_str(stamp, "%Y%m%dT%H%M%SZ").ok().map(|t| t.and_utc().timestamp())
}

/// `YYYY-MM-DDTHH:MM:SS.mmmZ` from Unix milliseconds.
#[must_use]
pub fn rfc3339_ms(unix_ms: u64) -> String {
    utc_ms(unix_ms).format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
}

/// `HH:MM:SS` of a Unix time in milliseconds (UTC), for progress lines.
#[must_use]
pub fn clock(unix_ms: u64) -> String {
    utc_ms(unix_ms).format("%H:%M:%S").to_string()
}

/// A duration in milliseconds for people: `850ms`, `12.3s`, `4m05s`, `1h02m`.
#[must_use]
pub fn duration_ms(ms: u64) -> String {
    match ms {
        0..1000 => format!("{ms}ms"),
        1000..60_000 => format!("{}.{}s", ms / 1000, ms % 1000 / 100),
        60_000..3_600_000 => format!("{}m{:02}s", ms / 60_000, ms % 60_000 / 1000),
        _ => format!("{}h{:02}m", ms / 3_600_000, ms % 3_600_000 / 60_000),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compact_times_read_back() {
        for t in [0_i64, 951_782_400, 1_767_225_600, 1_796_245_607, 4_102_444_799] {
            assert_eq!(parse_compact(&compact(t)), Some(t), "{}", compact(t));
        }
        assert_eq!(parse_compact("20260101T000000Z-000a"), Some(1_767_225_600));
        assert_eq!(parse_compact("2026-01-01"), None);
        assert_eq!(parse_compact("20261301T000000Z"), None);
    }

    #[test]
    fn known_dates() {
        assert_eq!(iso(0), "1970-01-01T00:00:00");
        assert_eq!(iso(1_471_562_180), "2016-08-18T23:16:20");
        assert_eq!(compact(1_798_212_700), "20261225T153140Z");
        assert_eq!(human(951_782_400), "2000-02-29 00:00:00 UTC");
        assert_eq!(rfc3339_ms(1_471_562_180_042), "2016-08-18T23:16:20.042Z");
        assert_eq!(duration_ms(999), "999ms");
        assert_eq!(duration_ms(12_345), "12.3s");
        assert_eq!(duration_ms(245_000), "4m05s");
        assert_eq!(duration_ms(3_720_000), "1h02m");
    }
}
