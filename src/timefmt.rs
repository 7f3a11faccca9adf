//! Formatting Unix times as UTC dates, for ids, reports and the simulator's JSON. Imports
//! nothing internal; no time zone database: everything is UTC.

/// The civil UTC date and time of a Unix time: (year, month, day, hour, minute, second).
#[must_use]
pub fn civil(unix_secs: i64) -> (i64, u32, u32, u32, u32, u32) {
    // Howard Hinnant's days-from-civil algorithm, inverted.
    let days = unix_secs.div_euclid(86_400);
    let rem = unix_secs.rem_euclid(86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    let part = |v: i64| u32::try_from(v).unwrap_or(0);
    (y, part(m), part(d), part(rem / 3600), part(rem % 3600 / 60), part(rem % 60))
}

/// `YYYY-MM-DDTHH:MM:SS` (UTC, no zone suffix), as the API writes commit dates.
#[must_use]
pub fn iso(unix_secs: i64) -> String {
    let (y, m, d, hh, mm, ss) = civil(unix_secs);
    format!("{y:04}-{m:02}-{d:02}T{hh:02}:{mm:02}:{ss:02}")
}

/// `YYYY-MM-DD HH:MM:SS UTC`, for people.
#[must_use]
pub fn human(unix_secs: i64) -> String {
    let (y, m, d, hh, mm, ss) = civil(unix_secs);
    format!("{y:04}-{m:02}-{d:02} {hh:02}:{mm:02}:{ss:02} UTC")
}

/// `YYYYMMDDTHHMMSSZ`, sortable, for run ids.
#[must_use]
pub fn compact(unix_secs: i64) -> String {
    let (y, m, d, hh, mm, ss) = civil(unix_secs);
    format!("{y:04}{m:02}{d:02}T{hh:02}{mm:02}{ss:02}Z")
}

/// The Unix time of a [`compact`] time (`YYYYMMDDTHHMMSSZ`), at the start of `text`.
#[must_use]
pub fn parse_compact(text: &str) -> Option<i64> {
    let digits = |range: std::ops::Range<usize>| text.get(range)?.parse::<i64>().ok();
    if text.get(8..9) != Some("T") || text.get(15..16) != Some("Z") {
        return None;
    }
    let (y, m, d) = (digits(0..4)?, digits(4..6)?, digits(6..8)?);
    let (hh, mm, ss) = (digits(9..11)?, digits(11..13)?, digits(13..15)?);
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) || hh > 23 || mm > 59 || ss > 60 {
        return None;
    }
    // Howard Hinnant's days-from-civil.
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(days * 86_400 + hh * 3600 + mm * 60 + ss)
}

/// `YYYY-MM-DDTHH:MM:SS.mmmZ` from Unix milliseconds.
#[must_use]
pub fn rfc3339_ms(unix_ms: u64) -> String {
    let secs = i64::try_from(unix_ms / 1000).unwrap_or(i64::MAX);
    format!("{}.{:03}Z", iso(secs), unix_ms % 1000)
}

/// `HH:MM:SS` of a Unix time in milliseconds (UTC), for progress lines.
#[must_use]
pub fn clock(unix_ms: u64) -> String {
    let (_, _, _, hh, mm, ss) = civil(i64::try_from(unix_ms / 1000).unwrap_or(i64::MAX));
    format!("{hh:02}:{mm:02}:{ss:02}")
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
