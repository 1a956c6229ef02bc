//! PocketBase's datetime text: UTC `YYYY-MM-DD HH:MM:SS.mmmZ`, parsed leniently.

use chrono::{DateTime, NaiveDate, NaiveDateTime, SecondsFormat, Utc};

mod input;

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
        // Go writes a year past 9999 without chrono's `+`.
        let text = at.format(LAYOUT).to_string();
        return match text.strip_prefix('+') {
            Some(unsigned) => unsigned.to_owned(),
            None => text,
        };
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

/// What PocketBase stores for a date submitted as text (a date field's value, its `min` and
/// `max`): the instant in its format, or `""` when no layout it tries matches the text as
/// given (no trimming) or the instant is Go's zero time (year 1). See [`input`].
pub fn normalize_input(text: &str) -> String {
    match input::parse(text) {
        Some(at) if !input::is_go_zero(at) => format(at),
        _ => String::new(),
    }
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
        // Outside four-digit years and on a leap second, chrono writes it (a year past 9999
        // without its `+`, as Go writes it).
        let far = Utc
            .timestamp_opt(253_402_300_800, 0)
            .single()
            .expect("valid");
        assert_eq!(
            format(far),
            far.format(LAYOUT).to_string().trim_start_matches('+')
        );
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

    #[test]
    fn input_text_is_read_as_pocketbase_reads_it() {
        // Each pair observed on PocketBase 0.40.6 (a date field's stored value for the text).
        let observed: &[(&str, &str)] = &[
            ("2024-01-01 10:00", ""),
            ("2024-01-01T10:00", ""),
            (" 2024-01-01", ""),
            ("2024-1-1", ""),
            ("2024-01-01 10:00:00.000z", ""),
            ("2024-01-01 10:00:00 +0200", "2024-01-01 08:00:00.000Z"),
            ("2024-01-01T10:00:00-0700", "2024-01-01 17:00:00.000Z"),
            (
                "Mon, 01 Jan 2024 10:00:00 +0100",
                "2024-01-01 09:00:00.000Z",
            ),
            ("Mon Jan  1 10:00:00 2024", "2024-01-01 10:00:00.000Z"),
            ("01 Jan 2024", "2024-01-01 00:00:00.000Z"),
            ("3:04PM", "0000-01-01 15:04:00.000Z"),
            ("2024-01-01t10:00:00Z", ""),
            ("2024-01-01T10:00:00z", ""),
            ("2024-01-01", "2024-01-01 00:00:00.000Z"),
            ("2024-01-02 03:04:05Z", "2024-01-02 03:04:05.000Z"),
            ("2024-05-06T07:08:09.123+02:00", "2024-05-06 05:08:09.123Z"),
            ("2024-01-02 03:04:05.5Z", "2024-01-02 03:04:05.500Z"),
            ("0001-01-01T01:00:00+01:00", ""),
            ("0001-01-01 00:00:00.001Z", "0001-01-01 00:00:00.001Z"),
            ("Jan  1 10:00:00", "0000-01-01 10:00:00.000Z"),
            (
                "2024-01-01 10:00:00.000 +0000 UTC",
                "2024-01-01 10:00:00.000Z",
            ),
            ("01 Jan 24 10:00 UTC", "2024-01-01 10:00:00.000Z"),
            ("Mon, 01 Jan 2024 10:00:00 UTC", "2024-01-01 10:00:00.000Z"),
            ("2024-01-01T10:00:00", "2024-01-01 10:00:00.000Z"),
            (
                "2024-01-01T10:00:00.999999999999",
                "2024-01-01 10:00:00.999Z",
            ),
            ("2024-01-01 10:00:00.000Z", "2024-01-01 10:00:00.000Z"),
            ("2024-01-01 10:00:00.000", "2024-01-01 10:00:00.000Z"),
            ("2024-01-01 10:00:00.000+24:60", "2023-12-31 09:00:00.000Z"),
            ("2024-01-01 10:00:00+24:61", ""),
            ("2024-01-01 10:00:00 +0000 utc", ""),
            ("2024-01-01 10:00:00 +0000 UTCX", ""),
            ("Mon, 01 Jan 2024 10:00:00 GMT+3x", ""),
            ("Mon, 01 Jan 2024 10:00:00 GMT+", ""),
            ("2024-01-01 10:00:00 +0000 GMT+99", ""),
            ("2024-01-01 10:00:00\t", ""),
            ("\u{00a0}2024-01-01", ""),
            ("2024-01-01T10:00:00+02:00 ", ""),
            (
                "Mon, 01 Jan 2024 10:00:00 GMT+3",
                "2024-01-01 13:00:00.000Z",
            ),
            ("Mon, 01 Jan 2024 10:00:00 EST", "2024-01-01 10:00:00.000Z"),
            ("Mon, 01 Jan 2024 10:00:00 CET", "2024-01-01 10:00:00.000Z"),
            ("Mon, 01 Jan 2024 10:00:00 +03", "2024-01-01 10:00:00.000Z"),
            (
                "2024-01-01 10:00:00.5 +0200 CET",
                "2024-01-01 08:00:00.500Z",
            ),
            ("2024-01-01 10:00:00 +0200 UTC", "2024-01-01 10:00:00.000Z"),
            (
                "2024-01-01 10:00:00 +0200 GMT+3",
                "2024-01-01 08:00:00.000Z",
            ),
            (
                "2024-01-01 10:00:00.123456789123 +0200 CET",
                "2024-01-01 08:00:00.123Z",
            ),
            ("Mon, 01 Jan 2024 10:00:00 Mst", ""),
            ("Mon, 01 Jan 2024 10:00:00 ABCDE", ""),
            (
                "Mon, 01 Jan 2024 10:00:00 ABCDT",
                "2024-01-01 10:00:00.000Z",
            ),
            ("Mon, 01 Jan 2024 10:00:00 WITA", "2024-01-01 10:00:00.000Z"),
            ("Mon, 01 Jan 2024 10:00:00 ChST", "2024-01-01 10:00:00.000Z"),
            ("mon, 01 jan 2024 10:00:00 UTC", "2024-01-01 10:00:00.000Z"),
            ("Fri, 01 Jan 2024 10:00:00 UTC", "2024-01-01 10:00:00.000Z"),
            ("Mon, 1 Jan 2024 10:00:00 UTC", ""),
            ("Mon Jan 1 10:00:00 2024", "2024-01-01 10:00:00.000Z"),
            ("Mon Jan 01 10:00:00 2024", "2024-01-01 10:00:00.000Z"),
            ("2024-01-01 10:00:00.123", "2024-01-01 10:00:00.123Z"),
            ("2024-01-01 10:00:00,123", "2024-01-01 10:00:00.123Z"),
            ("2024-01-01T10:00:00,5Z", "2024-01-01 10:00:00.500Z"),
            ("2024-01-01 1:00:00", "2024-01-01 01:00:00.000Z"),
            ("2024-01-01  10:00:00", "2024-01-01 10:00:00.000Z"),
            ("2024-01-01 ", ""),
            ("0001-01-01", ""),
            ("0001-01-01 00:00:00.000Z", ""),
            ("0000-01-01T00:00:00+01:00", "-0001-12-31 23:00:00.000Z"),
            ("9999-12-31T23:59:59-24:60", "10000-01-02 00:59:59.000Z"),
            ("2024-01-01T10:00:00+25:00", ""),
            ("2024-02-30", ""),
            ("2024-01-01 24:00:00", ""),
            ("2024-01-01 10:00:60", ""),
            ("12:00AM", "0000-01-01 00:00:00.000Z"),
            ("0:04PM", "0000-01-01 12:04:00.000Z"),
            ("3:04pm", ""),
            ("Jan  1 10:00:00.123", "0000-01-01 10:00:00.123Z"),
            ("Jan 1 10:00:00.123456", "0000-01-01 10:00:00.123Z"),
            ("1700000000", ""),
            ("", ""),
            ("Monday, 01-Jan-24 10:00:00 UTC", "2024-01-01 10:00:00.000Z"),
            ("Monday, 01-Jan-69 10:00:00 PST", "1969-01-01 10:00:00.000Z"),
            ("Mon Jan 01 10:00:00 -0700 2024", "2024-01-01 17:00:00.000Z"),
            ("Mon Jan  1 10:00:00 PST 2024", "2024-01-01 10:00:00.000Z"),
            ("2024-01-01 10:00:00.+12Z", "2024-01-01 10:00:00.012Z"),
            ("2024-01-01 10:00:00.000+02:00", "2024-01-01 08:00:00.000Z"),
            ("2024-01-01 10:00:00.1234Z", "2024-01-01 10:00:00.123Z"),
            ("01 jan 24 10:00 +0100", "2024-01-01 09:00:00.000Z"),
            (
                "Mon, 01 Jan 2024 10:00:00 GMT-3",
                "2024-01-01 07:00:00.000Z",
            ),
            ("Mon, 01 Jan 2024 10:00:00 GMT+24", ""),
            (
                "Mon, 01 Jan 2024 10:00:00 GMT+03",
                "2024-01-01 13:00:00.000Z",
            ),
            ("Mon, 01 Jan 2024 10:00:00 GMT", "2024-01-01 10:00:00.000Z"),
            ("Mon, 01 Jan 2024 10:00:00 UTC+3", ""),
            ("Mon, 01 Jan 2024 10:00:00 utc", ""),
            ("Mon, 01 Jan 2024 10:00:00 ABCT", "2024-01-01 10:00:00.000Z"),
            ("Mon, 01 Jan 2024 10:00:00 ABC", "2024-01-01 10:00:00.000Z"),
            ("Mon, 01 Jan 2024 10:00:00 MeST", "2024-01-01 10:00:00.000Z"),
            ("Mon, 01 Jan 2024 10:00:00 -03", "2024-01-01 10:00:00.000Z"),
            ("Mon, 01 Jan 2024 10:00:00 +01:00", ""),
            ("Monday, 01-Jan-68 10:00:00 UTC", "2068-01-01 10:00:00.000Z"),
            (
                "Tuesday, 01-Jan-24 10:00:00 GMT+2",
                "2024-01-01 12:00:00.000Z",
            ),
            (
                "2024-01-01 10:00:00.123456 +0000 GMT+2",
                "2024-01-01 10:00:00.123Z",
            ),
            ("2024-01-01 10:00:00 +0000 +03", "2024-01-01 10:00:00.000Z"),
            ("2024-01-01 10:00:00 +0000", "2024-01-01 10:00:00.000Z"),
            ("2024-01-01 10:00:00 -07:00", "2024-01-01 17:00:00.000Z"),
            ("2024-01-01 10:00:00Z", "2024-01-01 10:00:00.000Z"),
            ("2024-01-01 10:00:00+0530", "2024-01-01 04:30:00.000Z"),
            ("2024-01-01T10:00:00-07", ""),
            ("2024-01-01T10:00:00Z ", ""),
            ("Feb 29 10:00:00", "0000-02-29 10:00:00.000Z"),
            ("Feb 30 10:00:00", ""),
            ("Jan 1 10:00:00.12", "0000-01-01 10:00:00.120Z"),
            ("Jan 1 10:00:00.1234567891", "0000-01-01 10:00:00.123Z"),
            ("1 Jan 2024", ""),
            ("01 JANUARY 2024", ""),
            (
                "2024-01-01T10:00:00.123456789+02:00",
                "2024-01-01 08:00:00.123Z",
            ),
            ("2024-01-01T10:00:00+02:00", "2024-01-01 08:00:00.000Z"),
            ("2024-01-01T10:00Z", ""),
            ("2024-01-01T1:00:00Z", "2024-01-01 01:00:00.000Z"),
            ("2024-01-01T10:00:00.Z", ""),
            ("2024-01-01 10:00:00.Z", ""),
            ("2024-01-01 10:00:00.00Z", "2024-01-01 10:00:00.000Z"),
            ("2024-01-01 10:00:00.-12Z", ""),
            ("2024-01-01 10:00:00.1e2Z", ""),
            ("02 Jan 06 15:04 MST", "2006-01-02 15:04:00.000Z"),
            ("Mon Jan 02 15:04:05 +0100 2006", "2006-01-02 14:04:05.000Z"),
            ("Sat Jan 02 15:04:05 MST 2006", "2006-01-02 15:04:05.000Z"),
            ("Jan 02 15:04:05.000000000", "0000-01-02 15:04:05.000Z"),
            ("3:04AM", "0000-01-01 03:04:00.000Z"),
            ("13:04PM", ""),
            ("2024-01-01T10:00:00+0100", "2024-01-01 09:00:00.000Z"),
            ("2024-01-01T10:00:00Z0100", ""),
            ("2024-01-01 10:00:00 +01", ""),
        ];
        let wrong: Vec<String> = observed
            .iter()
            .filter(|(text, want)| normalize_input(text) != *want)
            .map(|(text, want)| format!("{text:?}: want {want:?}, got {:?}", normalize_input(text)))
            .collect();
        assert!(wrong.is_empty(), "{wrong:#?}");
    }

    #[test]
    fn years_past_9999_have_no_sign() {
        use chrono::TimeZone as _;
        let at = Utc
            .with_ymd_and_hms(10000, 1, 2, 0, 59, 59)
            .single()
            .expect("valid");
        assert_eq!(format(at), "10000-01-02 00:59:59.000Z");
        let before = Utc
            .with_ymd_and_hms(-1, 12, 31, 23, 0, 0)
            .single()
            .expect("valid");
        assert_eq!(format(before), "-0001-12-31 23:00:00.000Z");
    }
}
