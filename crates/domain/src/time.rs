//! PocketBase's datetime text: UTC `YYYY-MM-DD HH:MM:SS.mmmZ`, parsed leniently.

use chrono::{DateTime, NaiveDate, NaiveDateTime, SecondsFormat, Utc};

const LAYOUT: &str = "%Y-%m-%d %H:%M:%S%.3fZ";

/// Now, in PocketBase's format.
pub fn now() -> String {
    format(Utc::now())
}

/// Formats a UTC instant as `2026-11-28 01:54:20.773Z`.
pub fn format(at: DateTime<Utc>) -> String {
    at.format(LAYOUT).to_string()
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
