//! PocketBase's datetime text: UTC `YYYY-MM-DD HH:MM:SS.mmmZ`, parsed leniently.

use chrono::{DateTime, NaiveDate, NaiveDateTime, SecondsFormat, Utc};

const LAYOUT: &str = "%Y-%m-%d %H:%M:%S%.3fZ";

/// Now, in PocketBase's format.
pub fn now() -> String {
    format(Utc::now())
}

/// Formats a UTC instant as `2026-11-28 01:54:20.773Z`.
pub fn format(at: DateTime<Utc>) -> String {
    use chrono::{Datelike as _, Timelike as _};
    let (year, nanos) = (at.year(), at.nanosecond());
    // Four-digit years and no leap second: written by hand, as this runs for every record
    // written (twice) and chrono's formatter interprets `LAYOUT` each time. Others: chrono.
    if !(0..=9999).contains(&year) || nanos >= 1_000_000_000 {
        return at.format(LAYOUT).to_string();
    }
    let mut out = [0u8; 24];
    let mut put = |at: usize, value: u32, width: usize| {
        let mut value = value;
        for i in (0..width).rev() {
            out[at + i] = b'0' + (value % 10) as u8;
            value /= 10;
        }
    };
    put(0, year as u32, 4);
    put(5, at.month(), 2);
    put(8, at.day(), 2);
    put(11, at.hour(), 2);
    put(14, at.minute(), 2);
    put(17, at.second(), 2);
    put(20, nanos / 1_000_000, 3);
    for (i, b) in [
        (4, b'-'),
        (7, b'-'),
        (10, b' '),
        (13, b':'),
        (16, b':'),
        (19, b'.'),
        (23, b'Z'),
    ] {
        out[i] = b;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Parses what PocketBase accepts as a date: RFC 3339 with `T` or space, with or without
/// fraction and offset, or a bare date. Returns `None` for anything else (callers store `""`).
pub fn parse(text: &str) -> Option<DateTime<Utc>> {
    let text = text.trim();
    if text.is_empty() {
        return None;
    }
    if let Ok(at) = DateTime::parse_from_rfc3339(text) {
        return Some(at.with_timezone(&Utc));
    }
    let with_t = text.replacen(' ', "T", 1);
    if let Ok(at) = DateTime::parse_from_rfc3339(&with_t) {
        return Some(at.with_timezone(&Utc));
    }
    for layout in [
        "%Y-%m-%dT%H:%M:%S%.fZ",
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%dT%H:%M:%SZ",
        "%Y-%m-%dT%H:%M",
    ] {
        if let Ok(naive) = NaiveDateTime::parse_from_str(&with_t, layout) {
            return Some(naive.and_utc());
        }
    }
    if let Ok(date) = NaiveDate::parse_from_str(text, "%Y-%m-%d") {
        return date.and_hms_opt(0, 0, 0).map(|naive| naive.and_utc());
    }
    None
}

/// Normalizes input date text to PocketBase's format, or `""` when it does not parse.
pub fn normalize(text: &str) -> String {
    parse(text).map(format).unwrap_or_default()
}

/// RFC 3339 rendering, for logs and headers.
pub fn rfc3339(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Millis, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn format_writes_what_chrono_writes() {
        use chrono::TimeZone as _;
        use rand::RngExt as _;
        let mut rng = rand::rng();
        // Year 0 to 9999, the edges of a day and a second, and random instants between.
        let mut instants: Vec<(i64, u32)> = vec![
            (-62_167_219_200, 0),
            (253_402_300_799, 999_999_999),
            (0, 0),
            (86_399, 999_000_000),
            (1_700_000_000, 1_000_000),
        ];
        for _ in 0..20_000 {
            instants.push((
                rng.random_range(-62_167_219_200..253_402_300_800),
                rng.random_range(0..1_000_000_000),
            ));
        }
        for (secs, nanos) in instants {
            let at = Utc
                .timestamp_opt(secs, nanos)
                .single()
                .expect("valid instant");
            assert_eq!(format(at), at.format(LAYOUT).to_string(), "{secs} {nanos}");
        }
        // Outside four-digit years and on a leap second, chrono writes it.
        let far = Utc
            .timestamp_opt(253_402_300_800, 0)
            .single()
            .expect("valid");
        assert_eq!(format(far), far.format(LAYOUT).to_string());
        let leap = Utc
            .timestamp_opt(1_483_228_799, 1_500_000_000)
            .single()
            .expect("valid");
        assert_eq!(format(leap), leap.format(LAYOUT).to_string());
    }

    #[test]
    fn accepts_what_pocketbase_accepts() {
        assert_eq!(
            normalize("2024-01-02 03:04:05Z"),
            "2024-01-02 03:04:05.000Z"
        );
        assert_eq!(
            normalize("2024-05-06T07:08:09.123+02:00"),
            "2024-05-06 05:08:09.123Z"
        );
        assert_eq!(normalize("2024-01-01"), "2024-01-01 00:00:00.000Z");
        assert_eq!(
            normalize("2024-01-02 03:04:05.5Z"),
            "2024-01-02 03:04:05.500Z"
        );
        assert_eq!(normalize("garbage"), "");
        assert_eq!(normalize("1700000000"), "");
    }
}
