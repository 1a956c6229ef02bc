//! Cron expressions as PocketBase reads them: five space-separated fields (minute, hour,
//! day of month, month, day of week) or one of seven macros, matched against UTC minutes.
//!
//! The grammar was taken from the real PocketBase (0.40.6) by registering expressions and
//! reading them back, so that a `cronAdd` that loads there loads here and one that fails
//! there fails here:
//! - fields are separated by exactly one ASCII space (two spaces, a tab, a leading or
//!   trailing space are errors), and there are exactly five of them;
//! - a field is a comma list of `*`, `N`, `A-B`, `*/S` or `A-B/S`; numbers are decimal with an
//!   optional `+` sign and any leading zeros (`+1`, `01`); no names (`mon`, `jan`), no `?`,
//!   `L`, `#`, no `N/S` but for `N/1` (taken as `N`);
//! - values are within the field's range: minute 0-59, hour 0-23, day 1-31, month 1-12, day of
//!   week 0-6 (Sunday is 0; 7 is an error); a range must not run backwards; a step is
//!   1..=the field's maximum (`*/59` minutes is fine, `*/60` is not; `1-5/10` is fine);
//! - macros are matched exactly (lower case, no spaces) and stored expanded; any other text is
//!   stored as written.
//!
//! A minute is due when **every** field matches it. Unlike Vixie cron, a restricted day of
//! month and a restricted day of week are not or-ed: `0 0 13 * 5` is Friday the 13th only, as
//! in PocketBase.

use chrono::{DateTime, Datelike, Duration, NaiveDate, TimeZone, Timelike, Utc};

/// Why an expression was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScheduleError {
    #[error("a cron expression has 5 space-separated fields, found {0}")]
    FieldCount(usize),
    #[error("the {field} field is empty or has an empty list item")]
    Empty { field: &'static str },
    #[error("the {field} field has an invalid number {text:?}")]
    Number { field: &'static str, text: String },
    #[error("the {field} field value {value} is outside {min}-{max}")]
    OutOfRange {
        field: &'static str,
        value: i64,
        min: u8,
        max: u8,
    },
    #[error("the {field} field range {text:?} runs backwards")]
    Backwards { field: &'static str, text: String },
    #[error("the {field} field step {text:?} must be between 1 and {max}")]
    Step {
        field: &'static str,
        text: String,
        max: u8,
    },
    #[error("the {field} field item {text:?} is not *, N, A-B, */S or A-B/S")]
    Syntax { field: &'static str, text: String },
}

/// The macros PocketBase accepts, with the expression each is stored as.
pub const MACROS: [(&str, &str); 7] = [
    ("@yearly", "0 0 1 1 *"),
    ("@annually", "0 0 1 1 *"),
    ("@monthly", "0 0 1 * *"),
    ("@weekly", "0 0 * * 0"),
    ("@daily", "0 0 * * *"),
    ("@midnight", "0 0 * * *"),
    ("@hourly", "0 * * * *"),
];

/// One field's name and inclusive value range.
struct FieldSpec {
    name: &'static str,
    min: u8,
    max: u8,
}

const FIELDS: [FieldSpec; 5] = [
    FieldSpec {
        name: "minute",
        min: 0,
        max: 59,
    },
    FieldSpec {
        name: "hour",
        min: 0,
        max: 23,
    },
    FieldSpec {
        name: "day of month",
        min: 1,
        max: 31,
    },
    FieldSpec {
        name: "month",
        min: 1,
        max: 12,
    },
    FieldSpec {
        name: "day of week",
        min: 0,
        max: 6,
    },
];

/// A parsed expression: one bit set per field (bit `n` set when value `n` matches), and the
/// text PocketBase would list for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Schedule {
    expression: String,
    minutes: u64,
    hours: u64,
    days: u64,
    months: u64,
    weekdays: u64,
}

impl std::str::FromStr for Schedule {
    type Err = ScheduleError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Schedule::parse(text)
    }
}

impl Schedule {
    /// Parses `text` (see the module comment for the grammar).
    pub fn parse(text: &str) -> Result<Schedule, ScheduleError> {
        let expression = MACROS
            .iter()
            .find(|(name, _)| *name == text)
            .map_or(text, |(_, expanded)| expanded);
        let parts: Vec<&str> = expression.split(' ').collect();
        if parts.len() != FIELDS.len() {
            return Err(ScheduleError::FieldCount(parts.len()));
        }
        let mut sets = [0u64; 5];
        for ((set, part), spec) in sets.iter_mut().zip(&parts).zip(&FIELDS) {
            *set = parse_field(part, spec)?;
        }
        let [minutes, hours, days, months, weekdays] = sets;
        Ok(Schedule {
            expression: expression.to_owned(),
            minutes,
            hours,
            days,
            months,
            weekdays,
        })
    }

    /// The expression as listed by `GET /api/crons`: macros expanded, anything else verbatim.
    pub fn expression(&self) -> &str {
        &self.expression
    }

    /// Whether the minute holding `time` is due (seconds are ignored).
    pub fn is_due(&self, time: DateTime<Utc>) -> bool {
        self.date_matches(time.date_naive()) && self.time_matches(time.hour(), time.minute())
    }

    /// The first due minute strictly after `time`'s minute, or `None` when the expression can
    /// never be due (`0 0 30 2 *`). Weekdays repeat every 400 Gregorian years, so a schedule
    /// with no match in that span has none at all.
    pub fn next_after(&self, time: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let start = truncate_to_minute(time).checked_add_signed(Duration::minutes(1))?;
        let first_day = start.date_naive();
        let mut day = first_day;
        // 146,097 days are exactly 400 Gregorian years.
        let last_day = first_day.checked_add_signed(Duration::days(146_097))?;
        while day <= last_day {
            if !bit(self.months, day.month()) {
                // Skip the rest of a month that cannot match.
                day = first_of_next_month(day)?;
                continue;
            }
            if self.date_matches(day) {
                let (from_hour, from_minute) = if day == first_day {
                    (start.hour(), start.minute())
                } else {
                    (0, 0)
                };
                if let Some((hour, minute)) = self.first_time_from(from_hour, from_minute) {
                    let naive = day.and_hms_opt(hour, minute, 0)?;
                    return Some(Utc.from_utc_datetime(&naive));
                }
            }
            day = day.succ_opt()?;
        }
        None
    }

    fn date_matches(&self, day: NaiveDate) -> bool {
        bit(self.months, day.month())
            && bit(self.days, day.day())
            && bit(self.weekdays, day.weekday().num_days_from_sunday())
    }

    fn time_matches(&self, hour: u32, minute: u32) -> bool {
        bit(self.hours, hour) && bit(self.minutes, minute)
    }

    /// The first matching (hour, minute) of a day at or after `hour:minute`.
    fn first_time_from(&self, hour: u32, minute: u32) -> Option<(u32, u32)> {
        for h in hour..24 {
            if !bit(self.hours, h) {
                continue;
            }
            let from = if h == hour { minute } else { 0 };
            if let Some(m) = (from..60).find(|&m| bit(self.minutes, m)) {
                return Some((h, m));
            }
        }
        None
    }
}

/// `time` with its seconds and sub-seconds dropped.
pub fn truncate_to_minute(time: DateTime<Utc>) -> DateTime<Utc> {
    let seconds = time.timestamp().div_euclid(60) * 60;
    DateTime::from_timestamp(seconds, 0).unwrap_or(time)
}

fn bit(set: u64, value: u32) -> bool {
    value < 64 && set & (1u64 << value) != 0
}

fn first_of_next_month(day: NaiveDate) -> Option<NaiveDate> {
    let (year, month) = if day.month() == 12 {
        (day.year().checked_add(1)?, 1)
    } else {
        (day.year(), day.month() + 1)
    };
    NaiveDate::from_ymd_opt(year, month, 1)
}

fn parse_field(text: &str, spec: &FieldSpec) -> Result<u64, ScheduleError> {
    let mut set = 0u64;
    for item in text.split(',') {
        set |= parse_item(item, spec)?;
    }
    Ok(set)
}

/// One list item: `*`, `N`, `A-B`, `*/S` or `A-B/S`.
fn parse_item(item: &str, spec: &FieldSpec) -> Result<u64, ScheduleError> {
    if item.is_empty() {
        return Err(ScheduleError::Empty { field: spec.name });
    }
    let syntax = || ScheduleError::Syntax {
        field: spec.name,
        text: item.to_owned(),
    };
    let (base, step) = match item.split_once('/') {
        None => (item, None),
        Some((base, step)) => {
            if step.contains('/') {
                return Err(syntax());
            }
            (base, Some(parse_step(step, spec)?))
        }
    };
    let (low, high) = if base == "*" {
        (spec.min, spec.max)
    } else if let Some((low, high)) = base.split_once('-') {
        if high.contains('-') {
            return Err(syntax());
        }
        let (low, high) = (parse_value(low, spec)?, parse_value(high, spec)?);
        if low > high {
            return Err(ScheduleError::Backwards {
                field: spec.name,
                text: base.to_owned(),
            });
        }
        (low, high)
    } else if step.is_some_and(|step| step != 1) {
        // PocketBase refuses `N/S` for a step above 1 (a step needs `*` or a range) and
        // accepts `N/1`, which can only mean `N`.
        return Err(syntax());
    } else {
        let value = parse_value(base, spec)?;
        (value, value)
    };
    let step = step.unwrap_or(1);
    let mut set = 0u64;
    let mut value = low;
    while value <= high {
        set |= 1u64 << value;
        value = match value.checked_add(step) {
            Some(next) => next,
            None => break,
        };
    }
    Ok(set)
}

fn parse_step(text: &str, spec: &FieldSpec) -> Result<u8, ScheduleError> {
    let error = || ScheduleError::Step {
        field: spec.name,
        text: text.to_owned(),
        max: spec.max,
    };
    let step = parse_int(text).ok_or_else(error)?;
    if step < 1 || step > i64::from(spec.max) {
        return Err(error());
    }
    u8::try_from(step).map_err(|_| error())
}

fn parse_value(text: &str, spec: &FieldSpec) -> Result<u8, ScheduleError> {
    let value = parse_int(text).ok_or_else(|| ScheduleError::Number {
        field: spec.name,
        text: text.to_owned(),
    })?;
    if value < i64::from(spec.min) || value > i64::from(spec.max) {
        return Err(ScheduleError::OutOfRange {
            field: spec.name,
            value,
            min: spec.min,
            max: spec.max,
        });
    }
    u8::try_from(value).map_err(|_| ScheduleError::Number {
        field: spec.name,
        text: text.to_owned(),
    })
}

/// A decimal integer as Go's `strconv.Atoi` reads it: an optional sign, then one or more ASCII
/// digits; `None` on anything else or on overflow.
fn parse_int(text: &str) -> Option<i64> {
    let (negative, digits) = match text.as_bytes().first() {
        Some(b'+') => (false, &text[1..]),
        Some(b'-') => (true, &text[1..]),
        _ => (false, text),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let mut value: i64 = 0;
    for byte in digits.bytes() {
        value = value.checked_mul(10)?.checked_add(i64::from(byte - b'0'))?;
    }
    Some(if negative { -value } else { value })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use proptest::prelude::*;

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text)
            .unwrap()
            .with_timezone(&Utc)
    }

    /// Every expression PocketBase 0.40.6 accepted, with what it listed.
    #[test]
    fn accepts_what_pocketbase_accepts_and_lists_it_the_same() {
        let cases = [
            ("* * * * *", "* * * * *"),
            ("*/10 1-5 * * 1,3", "*/10 1-5 * * 1,3"),
            ("1-30/5 * * * *", "1-30/5 * * * *"),
            ("01 * * * *", "01 * * * *"),
            ("+1 * * * *", "+1 * * * *"),
            ("+0 * * * *", "+0 * * * *"),
            ("+1-+5 * * * *", "+1-+5 * * * *"),
            ("*/+5 * * * *", "*/+5 * * * *"),
            ("*/05 * * * *", "*/05 * * * *"),
            (
                "00000000000000000001 * * * *",
                "00000000000000000001 * * * *",
            ),
            ("0 0 * * */2", "0 0 * * */2"),
            ("*/59 * * * *", "*/59 * * * *"),
            ("*/1 * * * *", "*/1 * * * *"),
            ("0-59/59 * * * *", "0-59/59 * * * *"),
            ("* */23 * * *", "* */23 * * *"),
            ("* * */31 * *", "* * */31 * *"),
            ("* * * */12 *", "* * * */12 *"),
            ("* * * * */6", "* * * * */6"),
            ("1-5/10 * * * *", "1-5/10 * * * *"),
            ("1-1 * * * *", "1-1 * * * *"),
            ("5-5/2 * * * *", "5-5/2 * * * *"),
            ("*,5 * * * *", "*,5 * * * *"),
            ("*/5,7 * * * *", "*/5,7 * * * *"),
            ("1-5,10-20/2 * * * *", "1-5,10-20/2 * * * *"),
            ("* * 1-31 1-12 0-6", "* * 1-31 1-12 0-6"),
            ("0 0 31 2 *", "0 0 31 2 *"),
            ("5/1 * * * *", "5/1 * * * *"),
            ("5/+1 * * * *", "5/+1 * * * *"),
            ("*/1,5/01 * * * *", "*/1,5/01 * * * *"),
            ("@yearly", "0 0 1 1 *"),
            ("@annually", "0 0 1 1 *"),
            ("@monthly", "0 0 1 * *"),
            ("@weekly", "0 0 * * 0"),
            ("@daily", "0 0 * * *"),
            ("@midnight", "0 0 * * *"),
            ("@hourly", "0 * * * *"),
        ];
        for (text, listed) in cases {
            let schedule = Schedule::parse(text).unwrap_or_else(|e| panic!("{text:?}: {e}"));
            assert_eq!(schedule.expression(), listed, "{text:?}");
        }
    }

    /// Every expression PocketBase 0.40.6 refused (a failed `cronAdd`).
    #[test]
    fn refuses_what_pocketbase_refuses() {
        let cases = [
            "0 0 * * 7",
            "0 0 * * 8",
            "0 0 * * 0-7",
            "0 0 * * 7-7",
            "mon * * * *",
            "0 0 * * mon",
            "0 0 * jan *",
            "0 0 * JAN MON",
            "0 0 * * mon-fri",
            "60 * * * *",
            "0 24 * * *",
            "0 0 0 * *",
            "0 0 32 * *",
            "0 0 * 0 *",
            "0 0 * 13 *",
            "* * 0-5 * *",
            "0-60 * * * *",
            " * * * * *",
            "* * * * * ",
            "*  * * * *",
            "0\t0 * * *",
            "* * * *",
            "* * * * * *",
            "",
            "*/0 * * * *",
            "*/60 * * * *",
            "*/61 * * * *",
            "0-59/60 * * * *",
            "* */24 * * *",
            "* * */32 * *",
            "* * * */13 *",
            "* * * * */7",
            "1-5/0 * * * *",
            "5/10 * * * *",
            "5/0 * * * *",
            "60/1 * * * *",
            "5/x * * * *",
            "*/5/2 * * * *",
            "1-2-3 * * * *",
            "5-1 * * * *",
            "-1 * * * *",
            "-0 * * * *",
            "0x1 * * * *",
            "*-5 * * * *",
            "1,,2 * * * *",
            "1,2,3, * * * *",
            ",1 * * * *",
            "*/ * * * *",
            "1- * * * *",
            "/5 * * * *",
            "** * * * *",
            "a * * * *",
            "? * * * *",
            "* * ? * *",
            "L * * * *",
            "\u{ff11} * * * *",
            "99999999999999999999 * * * *",
            "1 - 5 * * * *",
            "@HOURLY",
            "@every 5m",
            "@reboot",
            "@",
            "@yearly ",
            " @yearly",
            "@yearly @monthly",
            "* * * * *\n",
        ];
        for text in cases {
            assert!(Schedule::parse(text).is_err(), "{text:?} should be refused");
        }
    }

    #[test]
    fn errors_say_what_is_wrong() {
        assert_eq!(
            Schedule::parse("* * * *"),
            Err(ScheduleError::FieldCount(4))
        );
        assert_eq!(
            Schedule::parse("0 0 * * 7"),
            Err(ScheduleError::OutOfRange {
                field: "day of week",
                value: 7,
                min: 0,
                max: 6
            })
        );
        assert!(matches!(
            Schedule::parse("*/60 * * * *"),
            Err(ScheduleError::Step { max: 59, .. })
        ));
        assert!(matches!(
            Schedule::parse("5-1 * * * *"),
            Err(ScheduleError::Backwards { .. })
        ));
        assert!(matches!(
            Schedule::parse("mon * * * *"),
            Err(ScheduleError::Number { .. })
        ));
        assert!(matches!(
            Schedule::parse("5/10 * * * *"),
            Err(ScheduleError::Syntax { .. })
        ));
    }

    #[test]
    fn fields_match_the_minutes_they_name() {
        let s = Schedule::parse("*/15 9-17 * * 1-5").unwrap();
        // 2026-12-03 is a Thursday.
        assert!(s.is_due(at("2026-12-03T09:45:59Z")));
        assert!(!s.is_due(at("2026-12-03T09:46:00Z")));
        assert!(!s.is_due(at("2026-12-03T18:00:00Z")));
        assert!(!s.is_due(at("2026-12-05T10:00:00Z")), "a Saturday");
        let steps = Schedule::parse("1-30/5 * * * *").unwrap();
        let due: Vec<u32> = (0..60)
            .filter(|&m| steps.is_due(at(&format!("2026-01-01T00:{m:02}:00Z"))))
            .collect();
        assert_eq!(due, [1, 6, 11, 16, 21, 26]);
        let single = Schedule::parse("5/1 * * * *").unwrap();
        assert!(single.is_due(at("2026-01-01T00:05:00Z")));
        assert!(!single.is_due(at("2026-01-01T00:06:00Z")));
        let days = Schedule::parse("0 0 */10 * *").unwrap();
        assert!(days.is_due(at("2026-01-01T00:00:00Z")));
        assert!(days.is_due(at("2026-01-11T00:00:00Z")));
        assert!(!days.is_due(at("2026-01-10T00:00:00Z")));
    }

    #[test]
    fn day_of_month_and_day_of_week_must_both_match() {
        let friday_13th = Schedule::parse("0 0 13 * 5").unwrap();
        assert!(!friday_13th.is_due(at("2026-12-13T00:00:00Z")), "a Sunday");
        assert!(
            !friday_13th.is_due(at("2026-12-04T00:00:00Z")),
            "a Friday, the 4th"
        );
        assert_eq!(
            friday_13th.next_after(at("2026-12-03T14:00:00Z")),
            Some(at("2027-08-13T00:00:00Z"))
        );
    }

    #[test]
    fn next_after_handles_edges() {
        let hourly = Schedule::parse("@hourly").unwrap();
        assert_eq!(
            hourly.next_after(at("2026-12-31T23:00:00Z")),
            Some(at("2027-01-01T00:00:00Z")),
            "strictly after, across a year"
        );
        let leap = Schedule::parse("0 12 29 2 *").unwrap();
        assert_eq!(
            leap.next_after(at("2026-03-01T00:00:00Z")),
            Some(at("2028-02-29T12:00:00Z"))
        );
        assert_eq!(
            leap.next_after(at("2096-03-01T00:00:00Z")),
            Some(at("2104-02-29T12:00:00Z")),
            "2100 is not a leap year"
        );
        assert_eq!(
            Schedule::parse("0 0 30 2 *")
                .unwrap()
                .next_after(at("2026-01-01T00:00:00Z")),
            None
        );
    }

    /// A small expression drawn from the grammar, valid by construction.
    fn field(min: u8, max: u8) -> impl Strategy<Value = String> {
        let value = min..=max;
        let item = prop_oneof![
            Just("*".to_owned()),
            value.clone().prop_map(|v| v.to_string()),
            (value.clone(), value.clone()).prop_map(|(a, b)| format!("{}-{}", a.min(b), a.max(b))),
            (1..=max).prop_map(|s| format!("*/{s}")),
            (value.clone(), value, 1..=max).prop_map(|(a, b, s)| format!(
                "{}-{}/{s}",
                a.min(b),
                a.max(b)
            )),
        ];
        prop::collection::vec(item, 1..3).prop_map(|items| items.join(","))
    }

    fn expression() -> impl Strategy<Value = String> {
        (
            field(0, 59),
            field(0, 23),
            field(1, 31),
            field(1, 12),
            field(0, 6),
        )
            .prop_map(|(a, b, c, d, e)| format!("{a} {b} {c} {d} {e}"))
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(300))]

        /// `next_after` agrees with stepping minute by minute (up to two years ahead).
        #[test]
        fn next_after_is_the_first_due_minute(
            text in expression(),
            offset in 0i64..(60 * 24 * 365 * 30),
        ) {
            let schedule = Schedule::parse(&text).unwrap();
            let from = at("2020-01-01T00:00:00Z") + Duration::minutes(offset)
                + Duration::seconds(offset % 60);
            let next = schedule.next_after(from);
            let mut minute = truncate_to_minute(from) + Duration::minutes(1);
            let limit = minute + Duration::days(731);
            let brute = loop {
                if minute > limit {
                    break None;
                }
                if schedule.is_due(minute) {
                    break Some(minute);
                }
                minute += Duration::minutes(1);
            };
            match brute {
                Some(expected) => prop_assert_eq!(next, Some(expected), "{}", text),
                None => prop_assert!(next.is_none_or(|n| n > limit), "{}", text),
            }
        }

        /// Parsing never panics, and what parses lists as itself (no macros in the input).
        #[test]
        fn arbitrary_text_never_panics(text in "[0-9*/,+ a-z@-]{0,24}") {
            if let Ok(schedule) = Schedule::parse(&text)
                && !text.starts_with('@')
            {
                prop_assert_eq!(schedule.expression(), text.as_str());
            }
        }
    }
}
