//! What a date submitted as text means, as PocketBase reads it.
//!
//! Observed on PocketBase 0.40.6: the text is tried as is (never trimmed) against PocketBase's
//! own layout, then against a fixed list of Go `time` layouts in order; the first that matches
//! wins. Matching follows Go's `time.Parse` (a layout space matches one or more spaces, month
//! and weekday names ignore case, a weekday is read but never checked, a fraction of a second
//! may follow the seconds though the layout has none, `.` or `,` before it). A named zone
//! carries no offset, except `UTC` and `GMT±h`; for the layouts with only a named zone the
//! clock is read as UTC and a `GMT±h` zone *adds* its hours (Go keeps the instant and labels it
//! with the zone, and the wall clock in that label is what ends up stored).

use chrono::{DateTime, Duration, NaiveDate, Utc};

/// One element of a Go layout.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Tok {
    /// Literal text (a space matches one or more spaces).
    Lit(&'static str),
    /// `2006`: exactly four characters, the first a digit.
    LongYear,
    /// `06`: two characters, 69-99 in the 1900s, else the 2000s.
    Year,
    /// `Jan`, any case.
    MonthName,
    /// `01`: two digits.
    ZeroMonth,
    /// `Mon`, any case, not checked against the date.
    WeekDay,
    /// `Monday`, any case, not checked against the date.
    LongWeekDay,
    /// `02`: two digits.
    ZeroDay,
    /// `_2`: an optional space, then one or two digits.
    UnderDay,
    /// `15`: one or two digits, below 24.
    Hour,
    /// `3`: one or two digits, at most 12.
    Hour12,
    /// `04`: two digits, below 60.
    ZeroMinute,
    /// `05`: two digits, below 60, then maybe a fraction.
    ZeroSecond,
    /// `.000…`: a separator and exactly this many digits.
    FracExact(usize),
    /// `.999…`: an optional separator and any number of digits.
    FracOptional,
    /// `PM`: `AM` or `PM`, upper case.
    Pm,
    /// `MST`: a zone name.
    ZoneName,
    /// `-0700`.
    NumTz,
    /// `-07:00`.
    NumColonTz,
    /// `Z0700`: `Z` or `-0700`.
    IsoTz,
    /// `Z07:00`: `Z` or `-07:00`.
    IsoColonTz,
}

use Tok::*;

/// How a layout's result is kept: as Go parsed it, or (named zone only) its wall clock as UTC.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Keep {
    Instant,
    WallClock,
}

/// `2006-01-02 15:04:05.000Z07:00`, PocketBase's own.
const OWN: &[Tok] = &[
    LongYear,
    Lit("-"),
    ZeroMonth,
    Lit("-"),
    ZeroDay,
    Lit(" "),
    Hour,
    Lit(":"),
    ZeroMinute,
    Lit(":"),
    ZeroSecond,
    FracExact(3),
    IsoColonTz,
];

const DATE: &[Tok] = &[LongYear, Lit("-"), ZeroMonth, Lit("-"), ZeroDay];
const CLOCK: &[Tok] = &[Hour, Lit(":"), ZeroMinute, Lit(":"), ZeroSecond];

/// The layouts tried after PocketBase's own, in order (those of `spf13/cast`).
const LAYOUTS: &[(&[&[Tok]], Keep)] = &[
    (&[DATE], Keep::WallClock),
    // RFC 3339
    (&[DATE, &[Lit("T")], CLOCK, &[IsoColonTz]], Keep::Instant),
    (&[DATE, &[Lit("T")], CLOCK], Keep::WallClock),
    // RFC 1123Z, RFC 1123
    (&[RFC1123_HEAD, CLOCK, &[Lit(" "), NumTz]], Keep::Instant),
    (
        &[RFC1123_HEAD, CLOCK, &[Lit(" "), ZoneName]],
        Keep::WallClock,
    ),
    // RFC 822Z, RFC 822
    (&[RFC822_HEAD, &[Lit(" "), NumTz]], Keep::Instant),
    (&[RFC822_HEAD, &[Lit(" "), ZoneName]], Keep::WallClock),
    // RFC 850
    (
        &[
            &[
                LongWeekDay,
                Lit(", "),
                ZeroDay,
                Lit("-"),
                MonthName,
                Lit("-"),
                Year,
                Lit(" "),
            ],
            CLOCK,
            &[Lit(" "), ZoneName],
        ],
        Keep::WallClock,
    ),
    // Go's Time.String
    (
        &[
            DATE,
            &[Lit(" ")],
            CLOCK,
            &[FracOptional, Lit(" "), NumTz, Lit(" "), ZoneName],
        ],
        Keep::Instant,
    ),
    (&[DATE, &[Lit("T")], CLOCK, &[NumTz]], Keep::Instant),
    (&[DATE, &[Lit(" ")], CLOCK, &[IsoTz]], Keep::Instant),
    (&[DATE, &[Lit(" ")], CLOCK], Keep::WallClock),
    // ANSIC
    (
        &[
            &[WeekDay, Lit(" "), MonthName, Lit(" "), UnderDay, Lit(" ")],
            CLOCK,
            &[Lit(" "), LongYear],
        ],
        Keep::WallClock,
    ),
    // Ruby date, then Unix date
    (
        &[
            &[WeekDay, Lit(" "), MonthName, Lit(" "), ZeroDay, Lit(" ")],
            CLOCK,
            &[Lit(" "), NumTz, Lit(" "), LongYear],
        ],
        Keep::Instant,
    ),
    (
        &[
            &[WeekDay, Lit(" "), MonthName, Lit(" "), UnderDay, Lit(" ")],
            CLOCK,
            &[Lit(" "), ZoneName, Lit(" "), LongYear],
        ],
        Keep::WallClock,
    ),
    (&[DATE, &[Lit(" ")], CLOCK, &[IsoColonTz]], Keep::Instant),
    (
        &[&[ZeroDay, Lit(" "), MonthName, Lit(" "), LongYear]],
        Keep::WallClock,
    ),
    (
        &[DATE, &[Lit(" ")], CLOCK, &[Lit(" "), NumColonTz]],
        Keep::Instant,
    ),
    (
        &[DATE, &[Lit(" ")], CLOCK, &[Lit(" "), NumTz]],
        Keep::Instant,
    ),
    // Kitchen
    (&[&[Hour12, Lit(":"), ZeroMinute, Pm]], Keep::Instant),
    // Stamp, StampMilli, StampMicro, StampNano
    (&[STAMP], Keep::Instant),
    (&[STAMP, &[FracExact(3)]], Keep::Instant),
    (&[STAMP, &[FracExact(6)]], Keep::Instant),
    (&[STAMP, &[FracExact(9)]], Keep::Instant),
];

const RFC1123_HEAD: &[Tok] = &[
    WeekDay,
    Lit(", "),
    ZeroDay,
    Lit(" "),
    MonthName,
    Lit(" "),
    LongYear,
    Lit(" "),
];
const RFC822_HEAD: &[Tok] = &[
    ZeroDay,
    Lit(" "),
    MonthName,
    Lit(" "),
    Year,
    Lit(" "),
    Hour,
    Lit(":"),
    ZeroMinute,
];
const STAMP: &[Tok] = &[
    MonthName,
    Lit(" "),
    UnderDay,
    Lit(" "),
    Hour,
    Lit(":"),
    ZeroMinute,
    Lit(":"),
    ZeroSecond,
];

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];
const DAYS: [&str; 7] = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
const LONG_DAYS: [&str; 7] = [
    "Sunday",
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
];

/// The instant a submitted date text names, or `None` when PocketBase would store `""` for it
/// (no layout matches). Go's zero instant (year 1) is returned as is: see [`is_go_zero`].
pub fn parse(text: &str) -> Option<DateTime<Utc>> {
    let value = text.as_bytes();
    if value.is_empty() {
        return None;
    }
    if let Some(at) = parse_layout(&[OWN], Keep::Instant, value) {
        return Some(at);
    }
    LAYOUTS
        .iter()
        .find_map(|(parts, keep)| parse_layout(parts, *keep, value))
}

/// Go's zero time, `0001-01-01 00:00:00Z`, which PocketBase writes as `""`.
pub fn is_go_zero(at: DateTime<Utc>) -> bool {
    at.timestamp() == -62_135_596_800 && at.timestamp_subsec_nanos() == 0
}

/// What Go's parse collected.
#[derive(Default)]
struct Parts {
    year: i64,
    month: Option<i64>,
    day: Option<i64>,
    hour: i64,
    minute: i64,
    second: i64,
    nanos: i64,
    pm: Option<bool>,
    utc: bool,
    offset: Option<i64>,
    gmt_hours: Option<i64>,
}

fn parse_layout(parts: &[&[Tok]], keep: Keep, value: &[u8]) -> Option<DateTime<Utc>> {
    let toks: Vec<Tok> = parts.iter().flat_map(|p| p.iter().copied()).collect();
    let mut got = Parts::default();
    let mut rest = value;
    for (i, tok) in toks.iter().enumerate() {
        rest = step(*tok, rest, &mut got, next_std(&toks[i + 1..]))?;
    }
    if !rest.is_empty() {
        return None;
    }
    if let Some(pm) = got.pm {
        if pm && got.hour < 12 {
            got.hour += 12;
        } else if !pm && got.hour == 12 {
            got.hour = 0;
        }
    }
    let month = u32::try_from(got.month.unwrap_or(1)).ok()?;
    let day = u32::try_from(got.day.unwrap_or(1)).ok()?;
    let year = i32::try_from(got.year).ok()?;
    let wall = NaiveDate::from_ymd_opt(year, month, day)?
        .and_hms_opt(0, 0, 0)?
        .and_utc()
        + Duration::hours(got.hour)
        + Duration::minutes(got.minute)
        + Duration::seconds(got.second)
        + Duration::nanoseconds(got.nanos);
    // Go's instant, and the offset of the zone it labels it with.
    let (instant, shown) = if got.utc {
        (wall, 0)
    } else if let Some(offset) = got.offset {
        (wall - Duration::seconds(offset), offset)
    } else {
        (wall, got.gmt_hours.unwrap_or(0) * 3600)
    };
    Some(match keep {
        Keep::Instant => instant,
        Keep::WallClock => instant + Duration::seconds(shown),
    })
}

/// The first non-literal element of what remains of a layout.
fn next_std(toks: &[Tok]) -> Option<Tok> {
    toks.iter().copied().find(|t| !matches!(t, Lit(_)))
}

fn step<'v>(tok: Tok, value: &'v [u8], got: &mut Parts, next: Option<Tok>) -> Option<&'v [u8]> {
    match tok {
        Lit(text) => skip(value, text.as_bytes()),
        LongYear => {
            if value.len() < 4 || !digit_at(value, 0) {
                return None;
            }
            got.year = atoi(&value[..4])?;
            Some(&value[4..])
        }
        Year => {
            let two = value.get(..2)?;
            let year = atoi(two)?;
            got.year = if year >= 69 { year + 1900 } else { year + 2000 };
            Some(&value[2..])
        }
        MonthName => {
            let (index, rest) = lookup(&MONTHS, value)?;
            got.month = Some(index as i64 + 1);
            Some(rest)
        }
        ZeroMonth => {
            let (month, rest) = getnum(value, true)?;
            if !(1..=12).contains(&month) {
                return None;
            }
            got.month = Some(month);
            Some(rest)
        }
        WeekDay => lookup(&DAYS, value).map(|(_, rest)| rest),
        LongWeekDay => lookup(&LONG_DAYS, value).map(|(_, rest)| rest),
        ZeroDay | UnderDay => {
            let value = match value {
                [b' ', rest @ ..] if tok == UnderDay => rest,
                _ => value,
            };
            let (day, rest) = getnum(value, tok == ZeroDay)?;
            got.day = Some(day);
            Some(rest)
        }
        Hour | Hour12 => {
            let (hour, rest) = getnum(value, false)?;
            let limit = if tok == Hour { 23 } else { 12 };
            if hour > limit {
                return None;
            }
            got.hour = hour;
            Some(rest)
        }
        ZeroMinute => {
            let (minute, rest) = getnum(value, true)?;
            if minute >= 60 {
                return None;
            }
            got.minute = minute;
            Some(rest)
        }
        ZeroSecond => {
            let (second, mut rest) = getnum(value, true)?;
            if second >= 60 {
                return None;
            }
            got.second = second;
            // A fraction the layout does not name, unless the layout names one next.
            if rest.len() >= 2
                && matches!(rest[0], b'.' | b',')
                && digit_at(rest, 1)
                && !matches!(next, Some(FracExact(_) | FracOptional))
            {
                let n = 1 + rest[1..].iter().take_while(|b| b.is_ascii_digit()).count();
                got.nanos = nanoseconds(&rest[..n])?;
                rest = &rest[n..];
            }
            Some(rest)
        }
        FracExact(digits) => {
            let fraction = value.get(..1 + digits)?;
            got.nanos = nanoseconds(fraction)?;
            Some(&value[1 + digits..])
        }
        FracOptional => {
            if value.len() < 2 || !matches!(value[0], b'.' | b',') || !digit_at(value, 1) {
                return Some(value);
            }
            let n = 1 + value[1..].iter().take_while(|b| b.is_ascii_digit()).count();
            got.nanos = nanoseconds(&value[..n])?;
            Some(&value[n..])
        }
        Pm => {
            let (pm, rest) = match value {
                [b'P', b'M', rest @ ..] => (true, rest),
                [b'A', b'M', rest @ ..] => (false, rest),
                _ => return None,
            };
            got.pm = Some(pm);
            Some(rest)
        }
        ZoneName => {
            if let Some(rest) = value.strip_prefix(b"UTC") {
                got.utc = true;
                return Some(rest);
            }
            let n = zone_name_len(value)?;
            let name = &value[..n];
            if let Some(hours) = name.strip_prefix(b"GMT")
                && !hours.is_empty()
            {
                got.gmt_hours = Some(atoi(hours)?);
            }
            Some(&value[n..])
        }
        IsoTz | IsoColonTz if value.first() == Some(&b'Z') => {
            got.utc = true;
            Some(&value[1..])
        }
        NumTz | NumColonTz | IsoTz | IsoColonTz => {
            let colon = matches!(tok, NumColonTz | IsoColonTz);
            let (sign, hour, minute, rest) = if colon {
                if value.len() < 6 || value[3] != b':' {
                    return None;
                }
                (value[0], &value[1..3], &value[4..6], &value[6..])
            } else {
                if value.len() < 5 {
                    return None;
                }
                (value[0], &value[1..3], &value[3..5], &value[5..])
            };
            let (hour, _) = getnum(hour, true)?;
            let (minute, _) = getnum(minute, true)?;
            if hour > 24 || minute > 60 {
                return None;
            }
            let offset = (hour * 60 + minute) * 60;
            got.offset = Some(match sign {
                b'+' => offset,
                b'-' => -offset,
                _ => return None,
            });
            Some(rest)
        }
    }
}

/// Go's literal match: a space in the layout matches one or more spaces (or the end).
fn skip<'v>(mut value: &'v [u8], mut prefix: &[u8]) -> Option<&'v [u8]> {
    while let Some((&first, tail)) = prefix.split_first() {
        if first == b' ' {
            if value.first().is_some_and(|b| *b != b' ') {
                return None;
            }
            prefix = trim_spaces(prefix);
            value = trim_spaces(value);
            continue;
        }
        let (&got, rest) = value.split_first()?;
        if got != first {
            return None;
        }
        prefix = tail;
        value = rest;
    }
    Some(value)
}

fn trim_spaces(text: &[u8]) -> &[u8] {
    let n = text.iter().take_while(|b| **b == b' ').count();
    &text[n..]
}

fn digit_at(value: &[u8], i: usize) -> bool {
    value.get(i).is_some_and(u8::is_ascii_digit)
}

/// One or two digits (exactly two when `fixed`).
fn getnum(value: &[u8], fixed: bool) -> Option<(i64, &[u8])> {
    if !digit_at(value, 0) {
        return None;
    }
    let first = i64::from(value[0] - b'0');
    if !digit_at(value, 1) {
        return (!fixed).then_some((first, &value[1..]));
    }
    Some((first * 10 + i64::from(value[1] - b'0'), &value[2..]))
}

/// Go's `atoi`: an optional sign, then only digits (none at all reads as 0).
fn atoi(text: &[u8]) -> Option<i64> {
    let (negative, digits) = match text {
        [b'-', rest @ ..] => (true, rest),
        [b'+', rest @ ..] => (false, rest),
        _ => (false, text),
    };
    let mut x: i64 = 0;
    for b in digits {
        if !b.is_ascii_digit() {
            return None;
        }
        x = x.checked_mul(10)?.checked_add(i64::from(b - b'0'))?;
    }
    Some(if negative { -x } else { x })
}

/// A separator and digits (read with Go's `atoi`, so a sign passes) as nanoseconds; digits
/// past the ninth are ignored.
fn nanoseconds(fraction: &[u8]) -> Option<i64> {
    if !matches!(fraction.first(), Some(b'.' | b',')) {
        return None;
    }
    let fraction = &fraction[..fraction.len().min(10)];
    let mut nanos = atoi(&fraction[1..])?;
    if nanos < 0 {
        return None;
    }
    for _ in fraction.len()..10 {
        nanos *= 10;
    }
    Some(nanos)
}

/// A name from `table` at the start of `value`, any case.
fn lookup<'v>(table: &[&str], value: &'v [u8]) -> Option<(usize, &'v [u8])> {
    table.iter().enumerate().find_map(|(i, name)| {
        let head = value.get(..name.len())?;
        head.eq_ignore_ascii_case(name.as_bytes())
            .then(|| (i, &value[name.len()..]))
    })
}

/// The length of a zone name at the start of `value`: `ChST`, `MeST`, `GMT` with an optional
/// signed hour below 24, a signed number below 24 (`+03`), or three upper-case letters, four
/// ending in `T` (or `WITA`), five ending in `T`.
fn zone_name_len(value: &[u8]) -> Option<usize> {
    if value.len() < 3 {
        return None;
    }
    if value.starts_with(b"ChST") || value.starts_with(b"MeST") {
        return Some(4);
    }
    if let Some(rest) = value.strip_prefix(b"GMT") {
        return Some(3 + signed_offset_len(rest).unwrap_or(0));
    }
    if matches!(value[0], b'+' | b'-') {
        return signed_offset_len(value);
    }
    let upper = value
        .iter()
        .take(6)
        .take_while(|b| b.is_ascii_uppercase())
        .count();
    match upper {
        3 => Some(3),
        4 if value[3] == b'T' || value.starts_with(b"WITA") => Some(4),
        5 if value[4] == b'T' => Some(5),
        _ => None,
    }
}

/// `+h`/`-hh…` with a value below 24: its length.
fn signed_offset_len(value: &[u8]) -> Option<usize> {
    if !matches!(value.first(), Some(b'+' | b'-')) {
        return None;
    }
    let digits = value[1..].iter().take_while(|b| b.is_ascii_digit()).count();
    if digits == 0 {
        return None;
    }
    let hours = atoi(&value[1..1 + digits])?;
    (hours <= 23).then_some(1 + digits)
}
