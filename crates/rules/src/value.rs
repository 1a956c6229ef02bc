//! SQLite's value semantics, reimplemented so the in-memory evaluator answers exactly like the
//! SQL the emitter writes: storage classes, column affinity, comparison across types,
//! `LIKE … ESCAPE '\'`, `LOWER()` and number-to-text rendering. Also the PocketBase rules that
//! both the emitter and the evaluator share: which operands count as "empty" for the null-safe
//! `=`/`!=`, and how `~` wraps its pattern.

use std::cmp::Ordering;

use domain::SqlValue;

/// A value as SQLite holds it.
#[derive(Debug, Clone, PartialEq)]
pub enum SqlVal {
    Null,
    Int(i64),
    Real(f64),
    Text(String),
}

/// The affinity an operand brings to a comparison: column references have their column's
/// affinity, every other expression has none.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Affinity {
    None,
    /// A column declared without a type (`json_each`'s `value`): like no affinity, except that
    /// a TEXT column compared with it does not turn it into text (SQLite applies TEXT affinity
    /// only to an operand with no affinity at all).
    Blob,
    Text,
    Numeric,
}

impl SqlVal {
    pub fn to_sql_value(&self) -> SqlValue {
        match self {
            SqlVal::Null => SqlValue::Null,
            SqlVal::Int(i) => SqlValue::Int(*i),
            SqlVal::Real(r) => SqlValue::Real(*r),
            SqlVal::Text(t) => SqlValue::Text(t.clone()),
        }
    }

    /// The value as text, as SQLite converts it (`NULL` stays `None`).
    pub fn to_text(&self) -> Result<Option<String>, Inexact> {
        Ok(match self {
            SqlVal::Null => None,
            SqlVal::Int(i) => Some(i.to_string()),
            SqlVal::Real(r) => Some(real_to_text(*r)?),
            SqlVal::Text(t) => Some(t.clone()),
        })
    }
}

/// The `~` pattern of a bound right operand: PocketBase turns the value into text (Go's
/// shortest number form) and wraps it in `%` unless it already holds a wildcard. NULL stays.
pub fn bound_like_pattern(value: &SqlVal) -> SqlVal {
    match value {
        SqlVal::Null => SqlVal::Null,
        SqlVal::Int(i) => SqlVal::Text(like_pattern(&i.to_string())),
        SqlVal::Real(r) => SqlVal::Text(like_pattern(&format!("{r}"))),
        SqlVal::Text(t) => SqlVal::Text(like_pattern(t)),
    }
}

/// A number stored in a NUMERIC column: whole values become integers.
pub fn number_value(n: f64) -> SqlVal {
    if n.fract() == 0.0 && n.abs() < 9.2e18 {
        SqlVal::Int(n as i64)
    } else {
        SqlVal::Real(n)
    }
}

/// What NUMERIC affinity makes of a text: a number when the whole text (ignoring surrounding
/// spaces) is a decimal literal, else the text unchanged.
pub fn apply_numeric(value: SqlVal) -> SqlVal {
    match value {
        SqlVal::Text(text) => match parse_decimal(&text) {
            Some(n) => {
                let integral = text
                    .trim_matches(is_sqlite_space)
                    .bytes()
                    .all(|b| b.is_ascii_digit() || b == b'-' || b == b'+');
                if integral && let Ok(i) = text.trim_matches(is_sqlite_space).parse::<i64>() {
                    return SqlVal::Int(i);
                }
                number_value(n)
            }
            None => SqlVal::Text(text),
        },
        other => other,
    }
}

/// What TEXT affinity makes of a number: its text.
fn apply_text(value: SqlVal) -> Result<SqlVal, Inexact> {
    Ok(match value {
        SqlVal::Int(_) | SqlVal::Real(_) => SqlVal::Text(value.to_text()?.unwrap_or_default()),
        other => other,
    })
}

fn is_sqlite_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\n' | '\u{b}' | '\u{c}' | '\r')
}

/// A decimal literal SQLite accepts as a number: optional sign, digits with an optional
/// fraction (`5`, `.5`, `5.`), optional exponent, surrounding spaces allowed.
fn parse_decimal(text: &str) -> Option<f64> {
    let t = text.trim_matches(is_sqlite_space);
    let bytes = t.as_bytes();
    let mut i = 0;
    if matches!(bytes.first(), Some(b'+' | b'-')) {
        i += 1;
    }
    let mut mantissa_digits = 0;
    while bytes.get(i).is_some_and(u8::is_ascii_digit) {
        i += 1;
        mantissa_digits += 1;
    }
    if bytes.get(i) == Some(&b'.') {
        i += 1;
        while bytes.get(i).is_some_and(u8::is_ascii_digit) {
            i += 1;
            mantissa_digits += 1;
        }
    }
    if mantissa_digits == 0 {
        return None;
    }
    if matches!(bytes.get(i), Some(b'e' | b'E')) {
        let mut j = i + 1;
        if matches!(bytes.get(j), Some(b'+' | b'-')) {
            j += 1;
        }
        let start = j;
        while bytes.get(j).is_some_and(u8::is_ascii_digit) {
            j += 1;
        }
        if j == start {
            return None;
        }
        i = j;
    }
    if i != bytes.len() {
        return None;
    }
    let normalized = t.strip_prefix('+').unwrap_or(t);
    let normalized = if normalized.ends_with('.') {
        format!("{normalized}0")
    } else {
        normalized.to_owned()
    };
    normalized.parse().ok()
}

/// SQLite's text for this REAL cannot be predicted exactly (see [`real_to_text`]); the
/// evaluator answers "needs SQL" instead of guessing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Inexact;

/// Renders a REAL as SQLite 3.54 does (`%!.17g`), when that is certain.
///
/// SQLite scales the value to an integer of 18 significant digits (19 when its estimate of
/// the decimal exponent is one low) with a 64-bit approximation of the power of ten, shortens
/// a tail of `…000x` or `…99x` when the shorter text reads back as the same number, else
/// rounds to 17 digits; trailing zeros go, one fractional digit stays, and the exponent form
/// (`1.0e+17`, `1.0e-05`) is used outside `1e-4 ..< 1e17`. The approximation can move the
/// last digit, so the rendering is computed for the exact value and for values a hair either
/// side of it; when those disagree, or far from 1, the answer is [`Inexact`].
pub fn real_to_text(r: f64) -> Result<String, Inexact> {
    if r.is_nan() {
        return Err(Inexact);
    }
    if r.is_infinite() {
        return Ok(if r > 0.0 { "Inf".into() } else { "-Inf".into() });
    }
    if r == 0.0 {
        return Ok("0.0".into());
    }
    let magnitude = r.abs();
    if !(1e-10..1e20).contains(&magnitude) {
        return Err(Inexact);
    }
    let binary_exponent = ((magnitude.to_bits() >> 52) & 0x7ff) as i32 - 1023;
    let estimate = (binary_exponent * 78913) >> 18;
    // 36 exact significant digits (Rust formats floats exactly) and the decimal exponent.
    let sci = format!("{magnitude:.35e}");
    let (mantissa, exp) = sci.split_once('e').ok_or(Inexact)?;
    let exp: i32 = exp.parse().map_err(|_| Inexact)?;
    let exact: u128 = mantissa
        .chars()
        .filter(char::is_ascii_digit)
        .collect::<String>()
        .parse()
        .map_err(|_| Inexact)?;
    let significant: u32 = if estimate == exp { 18 } else { 19 };
    // The approximation error is below one unit of the 20th significant digit.
    let hair = 10u128.pow(36 - 20);
    let render = |value: u128| sqlite_digits(value, significant, exp, magnitude);
    let text = render(exact)?;
    if render(exact - hair)? != text || render(exact + hair)? != text {
        return Err(Inexact);
    }
    Ok(if r < 0.0 { format!("-{text}") } else { text })
}

/// SQLite's `%!.17g` digits for a 36-digit significand `value` (first digit at 10^`exp`).
fn sqlite_digits(
    value: u128,
    significant: u32,
    exp: i32,
    magnitude: f64,
) -> Result<String, Inexact> {
    // Scale to `significant` digits, rounding half up on the dropped part.
    let divisor = 10u128.pow(36 - significant);
    let mut scaled = value / divisor;
    if value % divisor >= divisor / 2 {
        scaled += 1;
    }
    let mut decimal_point = exp + 1;
    let mut z: Vec<u8> = scaled.to_string().into_bytes();
    if z.len() > significant as usize {
        // Rounding carried into a new digit (…999 → 1000…).
        decimal_point += 1;
    }
    let n = z.len();
    let reads_back = |digits: &str, point_shift: i32| {
        format!("{digits}e{point_shift}").parse::<f64>().ok() == Some(magnitude)
    };
    let mut keep = 17;
    if z[15] == b'9' && z[14] == b'9' {
        let mut jj = 14;
        while jj > 0 && z[jj - 1] == b'9' {
            jj -= 1;
        }
        let shorter = if jj == 0 {
            "1".to_owned()
        } else {
            let prefix: u64 = std::str::from_utf8(&z[..jj])
                .ok()
                .and_then(|t| t.parse().ok())
                .ok_or(Inexact)?;
            (prefix + 1).to_string()
        };
        if reads_back(&shorter, decimal_point - jj as i32) {
            keep = jj + 1;
        }
    } else if decimal_point >= n as i32 || (z[15] == b'0' && z[14] == b'0' && z[13] == b'0') {
        let mut jj = 13;
        while jj > 1 && z[jj - 1] == b'0' {
            jj -= 1;
        }
        let shorter = std::str::from_utf8(&z[..jj]).map_err(|_| Inexact)?;
        if reads_back(shorter, decimal_point - jj as i32) {
            keep = jj + 1;
        }
    }
    let round_up = z[keep] >= b'5';
    z.truncate(keep);
    if round_up {
        let mut j = keep;
        loop {
            if j == 0 {
                z.insert(0, b'1');
                decimal_point += 1;
                break;
            }
            j -= 1;
            if z[j] == b'9' {
                z[j] = b'0';
            } else {
                z[j] += 1;
                break;
            }
        }
    }
    while z.len() > 1 && z.last() == Some(&b'0') {
        z.pop();
    }
    let digits = String::from_utf8(z).map_err(|_| Inexact)?;
    let exp = decimal_point - 1;
    if !(-4..=16).contains(&exp) {
        let (first, rest) = digits.split_at(1);
        let rest = if rest.is_empty() { "0" } else { rest };
        let exp_sign = if exp < 0 { '-' } else { '+' };
        return Ok(format!("{first}.{rest}e{exp_sign}{:02}", exp.abs()));
    }
    if exp >= 0 {
        let int_len = exp as usize + 1;
        let (int_part, frac) = if digits.len() > int_len {
            (digits[..int_len].to_owned(), digits[int_len..].to_owned())
        } else {
            (
                format!("{digits}{}", "0".repeat(int_len - digits.len())),
                String::new(),
            )
        };
        let frac = if frac.is_empty() { "0".into() } else { frac };
        Ok(format!("{int_part}.{frac}"))
    } else {
        let zeros = "0".repeat((-exp - 1) as usize);
        Ok(format!("0.{zeros}{digits}"))
    }
}

/// Compares two operands the way SQLite's `<`, `=`, … do after applying affinity. `None` when
/// either side is NULL.
pub fn compare(
    left: &SqlVal,
    left_aff: Affinity,
    right: &SqlVal,
    right_aff: Affinity,
) -> Result<Option<Ordering>, Inexact> {
    let (l, r) = with_affinity(left, left_aff, right, right_aff)?;
    Ok(order(&l, &r))
}

/// `IS` (null-safe equality) with affinity.
pub fn is_same(
    left: &SqlVal,
    left_aff: Affinity,
    right: &SqlVal,
    right_aff: Affinity,
) -> Result<bool, Inexact> {
    Ok(match (left, right) {
        (SqlVal::Null, SqlVal::Null) => true,
        (SqlVal::Null, _) | (_, SqlVal::Null) => false,
        _ => compare(left, left_aff, right, right_aff)? == Some(Ordering::Equal),
    })
}

fn with_affinity(
    left: &SqlVal,
    la: Affinity,
    right: &SqlVal,
    ra: Affinity,
) -> Result<(SqlVal, SqlVal), Inexact> {
    let numeric = |a: Affinity| a == Affinity::Numeric;
    if (numeric(la) && !numeric(ra) && long_exponent(right))
        || (numeric(ra) && !numeric(la) && long_exponent(left))
    {
        return Err(Inexact);
    }
    Ok(if numeric(la) && !numeric(ra) {
        (left.clone(), apply_numeric(right.clone()))
    } else if numeric(ra) && !numeric(la) {
        (apply_numeric(left.clone()), right.clone())
    } else if la == Affinity::Text && ra == Affinity::None {
        (left.clone(), apply_text(right.clone())?)
    } else if ra == Affinity::Text && la == Affinity::None {
        (apply_text(left.clone())?, right.clone())
    } else {
        (left.clone(), right.clone())
    })
}

/// Text NUMERIC affinity would read as a number written with an exponent of four or more
/// digits (`'1e1000'`): SQLite reads it (as infinity or zero), PostgreSQL's `numeric` refuses
/// such exponents and keeps the text, so the in-memory answer leaves it to the database.
fn long_exponent(value: &SqlVal) -> bool {
    let SqlVal::Text(text) = value else {
        return false;
    };
    if parse_decimal(text).is_none() {
        return false;
    }
    text.trim_matches(is_sqlite_space)
        .split(['e', 'E'])
        .nth(1)
        .is_some_and(|exponent| {
            exponent
                .trim_start_matches(['+', '-'])
                .bytes()
                .filter(u8::is_ascii_digit)
                .count()
                >= 4
        })
}

/// SQLite's ordering of storage classes: numbers before text; numbers by value, text bytewise.
fn order(l: &SqlVal, r: &SqlVal) -> Option<Ordering> {
    match (l, r) {
        (SqlVal::Null, _) | (_, SqlVal::Null) => None,
        (SqlVal::Int(a), SqlVal::Int(b)) => Some(a.cmp(b)),
        (SqlVal::Int(a), SqlVal::Real(b)) => Some(int_real(*a, *b)),
        (SqlVal::Real(a), SqlVal::Int(b)) => Some(int_real(*b, *a).reverse()),
        (SqlVal::Real(a), SqlVal::Real(b)) => Some(a.partial_cmp(b).unwrap_or(Ordering::Equal)),
        (SqlVal::Int(_) | SqlVal::Real(_), SqlVal::Text(_)) => Some(Ordering::Less),
        (SqlVal::Text(_), SqlVal::Int(_) | SqlVal::Real(_)) => Some(Ordering::Greater),
        (SqlVal::Text(a), SqlVal::Text(b)) => Some(a.as_bytes().cmp(b.as_bytes())),
    }
}

fn int_real(i: i64, r: f64) -> Ordering {
    if r.is_nan() {
        return Ordering::Greater;
    }
    if r < -9.223_372_036_854_776e18 {
        return Ordering::Greater;
    }
    if r >= 9.223_372_036_854_776e18 {
        return Ordering::Less;
    }
    let truncated = r.trunc() as i64;
    match i.cmp(&truncated) {
        Ordering::Equal => {
            let frac = r - r.trunc();
            if frac > 0.0 {
                Ordering::Less
            } else if frac < 0.0 {
                Ordering::Greater
            } else {
                Ordering::Equal
            }
        }
        other => other,
    }
}

/// `value LIKE pattern ESCAPE '\'`: `%` any run, `_` one character, `\x` a literal `x`;
/// ASCII letters match case-insensitively. `None` when either side is NULL. A match that
/// would take more than about a million steps (a long pattern against a long text) is
/// [`Inexact`]: the database decides it, under the query's deadline, instead of the caller's
/// thread without one.
pub fn like(value: &SqlVal, pattern: &SqlVal) -> Result<Option<bool>, Inexact> {
    let (Some(value), Some(pattern)) = (value.to_text()?, pattern.to_text()?) else {
        return Ok(None);
    };
    let mut checks = 0u32;
    domain::like::like(
        value.as_bytes(),
        pattern.as_bytes(),
        Some(u32::from(b'\\')),
        &mut || {
            checks += 1;
            checks < IN_MEMORY_LIKE_CHECKS
        },
    )
    .map(Some)
    .map_err(|_| Inexact)
}

/// How many budget checks (65,536 steps each) an in-memory `LIKE` may pass.
const IN_MEMORY_LIKE_CHECKS: u32 = 16;

/// SQLite's `LOWER()`: ASCII letters only.
pub fn lower(value: &SqlVal) -> Result<SqlVal, Inexact> {
    Ok(match value.to_text()? {
        Some(text) => SqlVal::Text(text.to_ascii_lowercase()),
        None => SqlVal::Null,
    })
}

/// Whether `text` contains `ch` not preceded by a backslash (a `\\` pair escapes nothing).
pub fn contains_unescaped(text: &str, ch: char) -> bool {
    let mut prev: Option<char> = None;
    for c in text.chars() {
        if c == ch && prev != Some('\\') {
            return true;
        }
        prev = if c == '\\' && prev == Some('\\') {
            None
        } else {
            Some(c)
        };
    }
    false
}

/// Escapes `\`, `%` and `_` for a LIKE pattern unless already escaped. Walking from the end,
/// a special character is escaped unless the character before it is a backslash, which is then
/// taken as its escape.
pub fn escape_like(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out: Vec<char> = Vec::with_capacity(chars.len() + 4);
    let mut pending = false;
    for (i, &c) in chars.iter().enumerate().rev() {
        if pending {
            if c != '\\' {
                out.push('\\');
            }
            pending = false;
        } else if matches!(c, '\\' | '%' | '_') {
            pending = true;
        }
        out.push(c);
        if i == 0 && pending {
            out.push('\\');
        }
    }
    out.reverse();
    out.into_iter().collect()
}

/// The pattern `~` uses for a text operand: as written when it has an unescaped `%`, else
/// escaped and wrapped as `%…%` (contains).
pub fn like_pattern(text: &str) -> String {
    if contains_unescaped(text, '%') {
        text.to_owned()
    } else {
        format!("%{}%", escape_like(text))
    }
}

/// How an operand behaves in PocketBase's null-safe equality.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// `''`, `null`, or a bound value that is NULL or empty text.
    Empty,
    /// A bound non-empty value, a number, `true`/`false`.
    NonEmpty,
    /// A column or expression whose value is only known to the database.
    Column,
}

/// The shape of `l = r` / `l != r` PocketBase emits, decided from the operands' classes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EqShape {
    /// `l IS r` (a JSON operand takes part: no coalescing at all).
    Is,
    /// Both sides empty: a constant.
    BothEmpty,
    /// `l = r`, with an empty side written as `''`.
    Direct,
    /// `('' = r OR r IS NULL)`.
    LeftEmpty,
    /// `(l = '' OR l IS NULL)`.
    RightEmpty,
    /// `COALESCE(l, '') = COALESCE(r, '')`.
    Coalesce,
}

pub fn eq_shape(left: Class, left_json: bool, right: Class, right_json: bool) -> EqShape {
    if left_json || right_json {
        return EqShape::Is;
    }
    match (left, right) {
        (Class::Empty, Class::Empty) => EqShape::BothEmpty,
        (Class::NonEmpty, _) | (_, Class::NonEmpty) => EqShape::Direct,
        (Class::Empty, _) => EqShape::LeftEmpty,
        (_, Class::Empty) => EqShape::RightEmpty,
        _ => EqShape::Coalesce,
    }
}

/// The class of a bound value.
pub fn value_class(value: &SqlVal) -> Class {
    match value {
        SqlVal::Null => Class::Empty,
        SqlVal::Text(t) if t.is_empty() => Class::Empty,
        _ => Class::NonEmpty,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reals_render_like_sqlite() {
        for (value, text) in [
            (5.0, "5.0"),
            (0.1, "0.1"),
            (1e19, "1.0e+19"),
            (1e17, "1.0e+17"),
            (1e16, "10000000000000000.0"),
            (1e15, "1000000000000000.0"),
            (1.5e-5, "1.5e-05"),
            (0.0001, "0.0001"),
            (0.00012345, "0.00012345"),
            (-2.5, "-2.5"),
            (100.0, "100.0"),
            (-0.0, "0.0"),
        ] {
            assert_eq!(real_to_text(value), Ok(text.to_owned()), "{value}");
        }
        // 17 digits, rounded from 18 (hence …32, not the shortest …3333).
        for (value, text) in [
            (1.0 / 3.0, "0.33333333333333332"),
            (0.1 * 3.0, "0.30000000000000004"),
            (4192.654321098766, "4192.6543210987657"),
            (4735.1943719657, "4735.1943719657002"),
            (123456789012345678.0, "1.2345678901234568e+17"),
            (-111919.03958332851, "-111919.03958332851"),
            (1.0 / 7.0 * 1e16, "1428571428571428.5"),
        ] {
            assert_eq!(real_to_text(value), Ok(text.to_owned()), "{value}");
        }
        assert_eq!(real_to_text(f64::NAN), Err(Inexact));
    }

    #[test]
    fn affinity_decides_cross_type_comparisons() {
        let text = |s: &str| SqlVal::Text(s.into());
        // NUMERIC column against a text literal: the text becomes a number.
        assert_eq!(
            compare(
                &SqlVal::Int(10),
                Affinity::Numeric,
                &text("5"),
                Affinity::None
            ),
            Ok(Some(Ordering::Greater))
        );
        // TEXT column against a REAL literal: the number becomes text "5.0".
        assert_eq!(
            is_same(
                &text("5"),
                Affinity::Text,
                &SqlVal::Real(5.0),
                Affinity::None
            ),
            Ok(false)
        );
        assert_eq!(
            is_same(
                &text("5.0"),
                Affinity::Text,
                &SqlVal::Real(5.0),
                Affinity::None
            ),
            Ok(true)
        );
        // Two bound values: no conversion, numbers sort before text.
        assert_eq!(
            compare(
                &text("500"),
                Affinity::None,
                &SqlVal::Real(500.0),
                Affinity::None
            ),
            Ok(Some(Ordering::Greater))
        );
        assert_eq!(apply_numeric(text(" 5 ")), SqlVal::Int(5));
        assert_eq!(apply_numeric(text("3.0e+5")), SqlVal::Int(300000));
        assert_eq!(apply_numeric(text(".5")), SqlVal::Real(0.5));
        assert_eq!(apply_numeric(text("0x10")), text("0x10"));
    }

    #[test]
    fn like_matches_sqlite() {
        let t = |s: &str| SqlVal::Text(s.into());
        assert_eq!(like(&t("First Post"), &t("%post%")), Ok(Some(true)));
        assert_eq!(like(&t("a_b"), &t(r"%a\_b%")), Ok(Some(true)));
        assert_eq!(like(&t("axb"), &t(r"%a\_b%")), Ok(Some(false)));
        assert_eq!(like(&t("É"), &t("é")), Ok(Some(false)));
        assert_eq!(like(&t("a"), &t("a\\")), Ok(Some(false)));
        assert_eq!(like(&SqlVal::Real(5.0), &t("5.0")), Ok(Some(true)));
        assert_eq!(like(&SqlVal::Null, &t("%")), Ok(None));
        assert_eq!(like(&t("abcabd"), &t("%ab_")), Ok(Some(true)));
        // Too costly to decide here: the database decides, under a deadline.
        let long = t(&"a".repeat(1 << 20));
        let pattern = t(&format!("%{}b%", "a".repeat(3000)));
        assert_eq!(like(&long, &pattern), Err(Inexact));
        assert_eq!(like(&long, &t("%a%")), Ok(Some(true)));
    }

    #[test]
    fn like_patterns_follow_pocketbase() {
        assert_eq!(like_pattern("sec"), "%sec%");
        assert_eq!(like_pattern("50%"), "50%");
        assert_eq!(like_pattern(r"50\%"), r"%50\%%");
        assert_eq!(like_pattern("a_b"), r"%a\_b%");
        assert_eq!(like_pattern(r"\ back"), r"%\\ back%");
        assert_eq!(like_pattern(r"a\\b"), r"%a\\b%");
        assert!(contains_unescaped(r"a\\%", '%'));
        assert!(!contains_unescaped(r"a\%", '%'));
    }

    #[test]
    fn equality_shapes() {
        use Class::*;
        assert_eq!(eq_shape(Column, false, Empty, false), EqShape::RightEmpty);
        assert_eq!(eq_shape(Empty, false, Empty, false), EqShape::BothEmpty);
        assert_eq!(eq_shape(Empty, false, NonEmpty, false), EqShape::Direct);
        assert_eq!(eq_shape(Column, false, Column, false), EqShape::Coalesce);
        assert_eq!(eq_shape(Column, true, Empty, false), EqShape::Is);
    }
}
