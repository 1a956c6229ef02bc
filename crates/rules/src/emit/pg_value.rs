//! PostgreSQL: operands as the SQLite values they stand for. The evaluator and the SQLite SQL
//! follow SQLite's value rules (storage classes, column affinity, numbers before text, `LIKE`
//! folding ASCII only); PostgreSQL has none of them, so each operand here knows what SQLite
//! would hold for it (a number, a text, or either, decided per row) and every comparison is
//! written from that: affinity conversions first (`value::with_affinity`), then a plain
//! comparison when both classes are known, a constant when they are known to differ, and a
//! `(class, number, text)` key compared row-wise when a class is only known per row (JSON
//! values, text that NUMERIC affinity may turn into a number).
//!
//! Text comparisons are bytewise (`COLLATE "C"`, as the store declares text columns), `LOWER`
//! runs under `"C"` (ASCII only, like SQLite's), and numbers become text the way SQLite writes
//! them (`5`, `5.0`, `0.1`), which `real_text` rebuilds from PostgreSQL's own digits.

use domain::{SqlFragment, SqlValue};

use crate::value::{Affinity, SqlVal, apply_numeric, lower};

/// How SQLite writes a number-valued expression as text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum NumText {
    /// An INTEGER (lengths, booleans as 0 and 1): `5`.
    Int,
    /// A REAL (`geoDistance`): `5.0`.
    Real,
    /// A NUMERIC column's value: whole values are stored as INTEGER, the rest as REAL.
    Stored,
}

/// What SQLite would hold for an operand.
#[derive(Debug, Clone)]
pub(super) enum PgVal {
    /// A value known when the SQL is written.
    Bound(SqlVal),
    /// NULL or a number (`double precision`, or `integer` for booleans).
    Num(SqlFragment, NumText),
    /// NULL or text.
    Text(SqlFragment),
    /// A `jsonb` value read as `json_extract` returns it: JSON null is NULL, booleans are 1
    /// and 0, strings are text, arrays and objects are their JSON text.
    Json(SqlFragment),
    /// Class decided per row.
    Key(Key),
}

/// A value whose class is decided per row, as the parts of its ordering key. The parts read
/// the value as `"_v"` when it has a `source` (computed once, see [`bind`]).
#[derive(Debug, Clone)]
pub(super) struct Key {
    source: Option<SqlFragment>,
    /// True when the value is NULL.
    null: SqlFragment,
    /// 1 for a number, 2 for text.
    kind: SqlFragment,
    /// The number (`double precision`), 0 for text.
    num: SqlFragment,
    /// The text, `''` for a number.
    text: SqlFragment,
}

#[derive(Debug, Clone)]
pub(super) struct PgOperand {
    pub(super) val: PgVal,
    pub(super) aff: Affinity,
}

/// The comparisons SQLite's SQL uses: `=` and the orderings (NULL when a side is NULL),
/// `IS` and `IS NOT`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum PgOp {
    Eq,
    Same,
    Distinct,
    Lt,
    Le,
    Gt,
    Ge,
}

/// SQLite's test for text that NUMERIC affinity turns into a number (`value::parse_decimal`).
/// Exponents of more than three digits are left out: PostgreSQL's `numeric` rejects them.
/// (No `?` in SQL text: the stores number placeholders by it.)
const NUMERIC_TEXT: &str = r"'^[ \t\n\v\f\r]*[+-]{0,1}([0-9]+\.{0,1}[0-9]*|\.[0-9]+)([eE][+-]{0,1}[0-9]{1,3}){0,1}[ \t\n\v\f\r]*$'";

trait Piece {
    fn push_to(self, out: &mut SqlFragment);
}

impl Piece for &str {
    fn push_to(self, out: &mut SqlFragment) {
        out.push_sql(self);
    }
}

impl Piece for &SqlFragment {
    fn push_to(self, out: &mut SqlFragment) {
        out.push_fragment(self.clone());
    }
}

impl Piece for SqlFragment {
    fn push_to(self, out: &mut SqlFragment) {
        out.push_fragment(self);
    }
}

/// Concatenates SQL text and fragments.
macro_rules! sql {
    ($($piece:expr),* $(,)?) => {{
        let mut out = SqlFragment::default();
        $( Piece::push_to($piece, &mut out); )*
        out
    }};
}

fn param(value: SqlValue, ty: &str) -> SqlFragment {
    let mut out = SqlFragment::raw("CAST(");
    out.push_param(value).push_sql(&format!(" AS {ty})"));
    out
}

/// `left op right` as SQLite decides it.
pub(super) fn compare(left: PgOperand, op: PgOp, right: PgOperand) -> SqlFragment {
    let numeric = |a: Affinity| a == Affinity::Numeric;
    let (left, right) = if numeric(left.aff) && !numeric(right.aff) {
        (left.val, to_numeric(right.val))
    } else if numeric(right.aff) && !numeric(left.aff) {
        (to_numeric(left.val), right.val)
    } else if left.aff == Affinity::Text && right.aff == Affinity::None {
        (left.val, sqlite_text(right.val))
    } else if right.aff == Affinity::Text && left.aff == Affinity::None {
        (sqlite_text(left.val), right.val)
    } else {
        (left.val, right.val)
    };
    let operator = match op {
        PgOp::Eq => " = ",
        PgOp::Same => " IS NOT DISTINCT FROM ",
        PgOp::Distinct => " IS DISTINCT FROM ",
        PgOp::Lt => " < ",
        PgOp::Le => " <= ",
        PgOp::Gt => " > ",
        PgOp::Ge => " >= ",
    };
    match (static_class(&left), static_class(&right)) {
        (Some(Class::Null), _) | (_, Some(Class::Null)) => {
            let both_null = sql!("(", is_null(&left), " AND ", is_null(&right), ")");
            match op {
                PgOp::Same => both_null,
                PgOp::Distinct => sql!("(NOT ", both_null, ")"),
                _ => SqlFragment::raw("CAST(NULL AS boolean)"),
            }
        }
        (Some(l), Some(r)) if l == r => {
            let (l_sql, r_sql) = if l == Class::Num {
                (num_sql(&left), num_sql(&right))
            } else {
                (
                    text_sql(&left),
                    sql!("(", text_sql(&right), ") COLLATE \"C\""),
                )
            };
            sql!("(", l_sql, operator, r_sql, ")")
        }
        (Some(l), Some(r)) => {
            // A number and a text: never equal, and the number is the smaller.
            let holds = match op {
                PgOp::Eq | PgOp::Same => false,
                PgOp::Distinct => true,
                PgOp::Lt | PgOp::Le => l == Class::Num,
                PgOp::Gt | PgOp::Ge => r == Class::Num,
            };
            let either_null = sql!("(", is_null(&left), " OR ", is_null(&right), ")");
            let both_null = sql!("(", is_null(&left), " AND ", is_null(&right), ")");
            match op {
                PgOp::Same => both_null,
                PgOp::Distinct => sql!("(NOT ", both_null, ")"),
                _ => sql!(
                    "(CASE WHEN ",
                    either_null,
                    if holds {
                        " THEN NULL ELSE TRUE END)"
                    } else {
                        " THEN NULL ELSE FALSE END)"
                    }
                ),
            }
        }
        _ => sql!("(", key_sql(key(left)), operator, key_sql(key(right)), ")"),
    }
}

/// `value LIKE pattern ESCAPE '\'` with SQLite's ASCII-only case folding; both sides are
/// turned into text as SQLite does. A bound pattern ending in a lone escape matches nothing
/// on SQLite and is an error on PostgreSQL, so it is answered here.
pub(super) fn like(value: PgVal, pattern: PgVal, negate: bool) -> SqlFragment {
    let value = sqlite_text(value);
    let pattern = sqlite_text(pattern);
    if let PgVal::Bound(SqlVal::Text(p)) = &pattern
        && ends_in_lone_escape(p)
    {
        let answer = if negate { "TRUE" } else { "FALSE" };
        return sql!(
            "(CASE WHEN ",
            is_null(&value),
            format!(" THEN NULL ELSE {answer} END)").as_str()
        );
    }
    let pattern = match pattern {
        PgVal::Bound(SqlVal::Text(p)) => PgVal::Bound(SqlVal::Text(p.to_ascii_lowercase())),
        other => PgVal::Text(sql!("LOWER((", text_sql(&other), ") COLLATE \"C\")")),
    };
    sql!(
        "LOWER((",
        text_sql(&value),
        ") COLLATE \"C\")",
        if negate { " NOT LIKE " } else { " LIKE " },
        text_sql(&pattern),
        " ESCAPE '\\'"
    )
}

/// The `~` pattern of an operand that is not a bound value: its text wrapped in `%`.
pub(super) fn contains_pattern(value: PgVal) -> PgVal {
    let text = sqlite_text(value);
    PgVal::Text(sql!("('%' || ", text_sql(&text), " || '%')"))
}

/// SQLite's `LOWER()` of a value: its text with ASCII letters lowered.
pub(super) fn lower_of(value: PgVal) -> Lowered {
    let text = sqlite_text(value);
    if let PgVal::Bound(v) = &text
        && let Ok(lowered) = lower(v)
    {
        return Lowered::Bound(lowered);
    }
    Lowered::Sql(sql!("LOWER((", text_sql(&text), ") COLLATE \"C\")"))
}

/// What [`lower_of`] gives: a value known now, or a text expression.
pub(super) enum Lowered {
    Bound(SqlVal),
    Sql(SqlFragment),
}

/// The argument of a math function: a number, text NUMERIC affinity would make a number, or
/// NULL for anything else.
pub(super) fn math_arg(value: PgVal) -> SqlFragment {
    match to_numeric(value) {
        PgVal::Bound(v) => match v {
            SqlVal::Int(i) => param(SqlValue::Real(i as f64), "double precision"),
            SqlVal::Real(r) => param(SqlValue::Real(r), "double precision"),
            _ => SqlFragment::raw("CAST(NULL AS double precision)"),
        },
        PgVal::Num(sql, _) => sql!("CAST(", sql, " AS double precision)"),
        other => {
            let k = key(other);
            let body = sql!(
                "(CASE WHEN ",
                k.null,
                " THEN NULL WHEN ",
                k.kind,
                " = 1 THEN ",
                k.num,
                " END)"
            );
            bind_opt(k.source, body)
        }
    }
}

/// `COALESCE(value, '')` as SQLite computes it: NULL becomes the empty text.
pub(super) fn coalesce_blank(value: PgVal) -> PgVal {
    match value {
        PgVal::Bound(SqlVal::Null) => PgVal::Bound(SqlVal::Text(String::new())),
        PgVal::Bound(v) => PgVal::Bound(v),
        PgVal::Text(t) => PgVal::Text(sql!("COALESCE(", t, ", '')")),
        other => {
            let k = key(other);
            PgVal::Key(Key {
                source: k.source,
                kind: sql!("(CASE WHEN ", &k.null, " THEN 2 ELSE ", k.kind, " END)"),
                num: sql!("(CASE WHEN ", &k.null, " THEN 0 ELSE ", k.num, " END)"),
                text: sql!("(CASE WHEN ", &k.null, " THEN '' ELSE ", k.text, " END)"),
                null: SqlFragment::raw("FALSE"),
            })
        }
    }
}

/// A geoPoint column as the text SQLite stores (`{"lon":…,"lat":…}`, keys in that order,
/// which `jsonb` does not keep).
pub(super) fn geo_text(column: &str) -> SqlFragment {
    SqlFragment::raw(format!(
        "('{{\"lon\":' || CAST({column} -> 'lon' AS text) || ',\"lat\":' || CAST({column} -> 'lat' AS text) || '}}')"
    ))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Class {
    Null,
    Num,
    Text,
}

fn static_class(value: &PgVal) -> Option<Class> {
    match value {
        PgVal::Bound(SqlVal::Null) => Some(Class::Null),
        PgVal::Bound(SqlVal::Int(_) | SqlVal::Real(_)) | PgVal::Num(..) => Some(Class::Num),
        PgVal::Bound(SqlVal::Text(_)) | PgVal::Text(_) => Some(Class::Text),
        PgVal::Json(_) | PgVal::Key(_) => None,
    }
}

/// What NUMERIC affinity makes of a value: text that reads as a number becomes that number.
pub(super) fn to_numeric(value: PgVal) -> PgVal {
    match value {
        PgVal::Bound(v) => PgVal::Bound(apply_numeric(v)),
        PgVal::Num(..) | PgVal::Key(_) => value,
        PgVal::Text(_) | PgVal::Json(_) => {
            let k = key(value);
            let numeric = sql!(
                "(",
                &k.kind,
                " = 2 AND ",
                &k.text,
                format!(" ~ {NUMERIC_TEXT})").as_str()
            );
            PgVal::Key(Key {
                source: k.source,
                kind: sql!("(CASE WHEN ", &numeric, " THEN 1 ELSE ", k.kind, " END)"),
                num: sql!(
                    "(CASE WHEN ",
                    &numeric,
                    " THEN ",
                    text_to_number(&k.text),
                    " ELSE ",
                    k.num,
                    " END)"
                ),
                text: sql!("(CASE WHEN ", &numeric, " THEN '' ELSE ", k.text, " END)"),
                null: k.null,
            })
        }
    }
}

/// Numeric text as a double, saturating where `double precision` would fail.
fn text_to_number(text: &SqlFragment) -> SqlFragment {
    let number = sql!("CAST(", text, " AS numeric)");
    sql!(
        "(CASE WHEN abs(",
        &number,
        ") > 1.7976931348623157e308 THEN (CASE WHEN ",
        &number,
        " > 0 THEN CAST('Infinity' AS double precision) ELSE CAST('-Infinity' AS double precision) END) WHEN abs(",
        &number,
        ") < 2.4703282292062328e-324 THEN CAST(0 AS double precision) ELSE CAST(",
        &number,
        " AS double precision) END)"
    )
}

/// The value as SQLite turns it into text (for TEXT affinity, `LIKE`, `LOWER`); NULL stays.
fn sqlite_text(value: PgVal) -> PgVal {
    match value {
        PgVal::Bound(v) => match v.to_text() {
            Ok(Some(t)) => PgVal::Bound(SqlVal::Text(t)),
            Ok(None) => PgVal::Bound(SqlVal::Null),
            Err(_) => PgVal::Text(real_text(&num_sql(&PgVal::Bound(v)))),
        },
        PgVal::Num(sql, how) => PgVal::Text(number_text(&sql, how)),
        PgVal::Text(_) => value,
        PgVal::Json(j) => {
            let v = SqlFragment::raw("\"_v\"");
            PgVal::Text(bind(
                j,
                sql!(
                    "(CASE jsonb_typeof(\"_v\") WHEN 'string' THEN (\"_v\" #>> '{}') WHEN 'number' THEN ",
                    json_number_text(&v),
                    " WHEN 'boolean' THEN (CASE WHEN \"_v\" = 'true'::jsonb THEN '1' ELSE '0' END) \
                     WHEN 'object' THEN ",
                    minified(&v),
                    " WHEN 'array' THEN ",
                    minified(&v),
                    " END)"
                ),
            ))
        }
        PgVal::Key(k) => PgVal::Text(bind_opt(
            k.source,
            sql!(
                "(CASE WHEN ",
                k.null,
                " THEN NULL WHEN ",
                k.kind,
                " = 1 THEN ",
                real_text(&k.num),
                " ELSE ",
                k.text,
                " END)"
            ),
        )),
    }
}

/// `jsonb` text without the space PostgreSQL writes after `,` and `:` (SQLite's JSON text
/// has none); strings are matched whole so that their contents stay as they are.
pub(super) fn minified(json: &SqlFragment) -> SqlFragment {
    sql!(
        "regexp_replace(CAST(",
        json,
        r#" AS text), '("([^"\\]|\\.)*")|([,:]) ', '\1\3', 'g')"#
    )
}

/// A JSON number as SQLite's `json_extract` gives it, written as text: integers that fit 64
/// bits as they are, anything else as the REAL it becomes.
fn json_number_text(json: &SqlFragment) -> SqlFragment {
    let text = sql!("(", json, " #>> '{}')");
    sql!(
        "(CASE WHEN ",
        &text,
        " ~ '^-?[0-9]{1,19}$' AND CAST(",
        &text,
        " AS numeric) BETWEEN -9223372036854775808 AND 9223372036854775807 THEN ",
        &text,
        " ELSE ",
        real_text(&sql!("CAST(", &text, " AS double precision)")),
        " END)"
    )
}

/// A number-valued expression as SQLite writes it.
fn number_text(number: &SqlFragment, how: NumText) -> SqlFragment {
    match how {
        NumText::Int => sql!("CAST(CAST(", number, " AS bigint) AS text)"),
        NumText::Real => real_text(number),
        NumText::Stored => bind(
            sql!("CAST(", number, " AS double precision)"),
            sql!(
                "(CASE WHEN \"_v\" = trunc(\"_v\") AND abs(\"_v\") < 9.2e18 \
                 THEN CAST(CAST(\"_v\" AS bigint) AS text) ELSE ",
                real_text(&SqlFragment::raw("\"_v\"")),
                " END)"
            ),
        ),
    }
}

/// A REAL as SQLite writes it (`%!.17g`, as `value::real_to_text` describes): 18 digits
/// (19 when SQLite's estimate of the decimal exponent is one low), shortened when a tail of
/// zeros or nines can go and the shorter text reads back as the same number, else rounded to
/// 17; then trailing zeros dropped, one fractional digit kept, exponent form outside
/// `1e-4 ..< 1e17`. PostgreSQL's `to_char(…, 'EEEE')` gives the correctly rounded digits.
fn real_text(number: &SqlFragment) -> SqlFragment {
    // Outside this range the exponent arithmetic below could overflow; SQLite's text there
    // is not predicted by the evaluator either, and PostgreSQL's own is used.
    // Each step adds columns to the row of the one before; `OFFSET 0` keeps the planner from
    // merging the steps (which would copy each expression into every use of it).
    const STEPS: &[&str] = &[
        "floor(ln(a) / ln(2)) AS g",
        "(CASE WHEN power(CAST(2 AS double precision), g + 1) <= a THEN g + 1 \
         WHEN power(CAST(2 AS double precision), g) > a THEN g - 1 ELSE g END) AS e2, \
         btrim(to_char(a, '9.99999999999999999EEEE')) AS t18",
        "(CASE WHEN floor(e2 * 78913 / 262144.0) = CAST(split_part(t18, 'e', 2) AS integer) \
         THEN t18 ELSE btrim(to_char(a, '9.999999999999999999EEEE')) END) AS t",
        "replace(split_part(t, 'e', 1), '.', '') AS z, CAST(split_part(t, 'e', 2) AS integer) + 1 AS dp",
        "length(rtrim(substr(z, 1, 15), '9')) AS j9, \
         GREATEST(length(rtrim(substr(z, 1, 13), '0')), 1) AS j0",
        "(CASE WHEN substr(z, 15, 2) = '99' THEN (CASE WHEN CAST((CASE WHEN j9 = 0 THEN '1' \
         ELSE CAST(CAST(substr(z, 1, j9) AS numeric) + 1 AS text) END) || 'e' || CAST(dp - j9 AS text) \
         AS double precision) = a THEN j9 + 1 ELSE 17 END) \
         WHEN dp >= length(z) OR substr(z, 14, 3) = '000' THEN (CASE WHEN CAST(substr(z, 1, j0) || 'e' \
         || CAST(dp - j0 AS text) AS double precision) = a THEN j0 + 1 ELSE 17 END) ELSE 17 END) AS keep",
        "(CASE WHEN substr(z, keep + 1, 1) >= '5' \
         THEN CAST(CAST(substr(z, 1, keep) AS numeric) + 1 AS text) ELSE substr(z, 1, keep) END) AS r",
        "rtrim(r, '0') AS d, dp - 1 + (length(r) - keep) AS e",
    ];
    let mut steps = String::from("(SELECT abs(\"_v\") AS a OFFSET 0) AS s0");
    for (i, step) in STEPS.iter().enumerate() {
        steps = format!("(SELECT *, {step} FROM {steps} OFFSET 0) AS s{}", i + 1);
    }
    const FORMAT: &str = concat!(
        "(CASE WHEN e < -4 OR e > 16 THEN substr(d, 1, 1) || '.' || COALESCE(NULLIF(substr(d, 2), ''), '0') ",
        "|| 'e' || (CASE WHEN e < 0 THEN '-' ELSE '+' END) || lpad(CAST(abs(e) AS text), 2, '0') ",
        "WHEN e >= 0 THEN (CASE WHEN length(d) > e + 1 THEN substr(d, 1, e + 1) || '.' || substr(d, e + 2) ",
        "ELSE rpad(d, e + 1, '0') || '.0' END) ",
        "ELSE '0.' || repeat('0', -e - 1) || d END)"
    );
    let v = "\"_v\"";
    bind(
        sql!("CAST(", number, " AS double precision)"),
        SqlFragment::raw(format!(
            "(CASE WHEN {v} IS NULL OR {v} = CAST('NaN' AS double precision) THEN NULL \
             WHEN {v} = 0 THEN '0.0' \
             WHEN {v} = CAST('Infinity' AS double precision) THEN 'Inf' \
             WHEN {v} = CAST('-Infinity' AS double precision) THEN '-Inf' \
             WHEN abs({v}) < 1e-300 OR abs({v}) > 1e300 THEN CAST({v} AS text) \
             ELSE (CASE WHEN {v} < 0 THEN '-' ELSE '' END) || (SELECT {FORMAT} FROM {steps}) END)"
        )),
    )
}

/// `body` over `value` computed once: `(SELECT body FROM (SELECT value AS "_v") AS "_b")`,
/// where `body` reads the value as `"_v"`. A name bound inside `value` is out of sight of
/// `body`, and `value` sees no `"_v"` of its own, so bindings nest safely.
fn bind(value: SqlFragment, body: SqlFragment) -> SqlFragment {
    sql!(
        "(SELECT ",
        body,
        " FROM (SELECT ",
        value,
        " AS \"_v\") AS \"_b\")"
    )
}

/// [`bind`] when there is a value to bind.
fn bind_opt(source: Option<SqlFragment>, body: SqlFragment) -> SqlFragment {
    match source {
        Some(source) => bind(source, body),
        None => body,
    }
}

pub(super) fn is_null(value: &PgVal) -> SqlFragment {
    match value {
        PgVal::Bound(SqlVal::Null) => SqlFragment::raw("TRUE"),
        PgVal::Bound(_) => SqlFragment::raw("FALSE"),
        PgVal::Num(sql, _) | PgVal::Text(sql) => sql!("(", sql, " IS NULL)"),
        PgVal::Json(j) => sql!("(COALESCE(jsonb_typeof(", j, "), 'null') = 'null')"),
        PgVal::Key(k) => k.null.clone(),
    }
}

/// A number-class value as SQL.
fn num_sql(value: &PgVal) -> SqlFragment {
    match value {
        PgVal::Bound(SqlVal::Int(i)) => param(SqlValue::Int(*i), "bigint"),
        PgVal::Bound(SqlVal::Real(r)) => param(SqlValue::Real(*r), "double precision"),
        PgVal::Num(sql, _) => sql.clone(),
        _ => SqlFragment::raw("CAST(NULL AS double precision)"),
    }
}

/// A text-class value as SQL.
fn text_sql(value: &PgVal) -> SqlFragment {
    match value {
        PgVal::Bound(SqlVal::Text(t)) => param(SqlValue::Text(t.clone()), "text"),
        PgVal::Text(sql) => sql.clone(),
        _ => SqlFragment::raw("CAST(NULL AS text)"),
    }
}

fn key(value: PgVal) -> Key {
    let v = || SqlFragment::raw("\"_v\"");
    let number = |source: Option<SqlFragment>, num: SqlFragment, null: SqlFragment| Key {
        source,
        null,
        kind: SqlFragment::raw("1"),
        num,
        text: SqlFragment::raw("''"),
    };
    let text = |source: Option<SqlFragment>, text: SqlFragment, null: SqlFragment| Key {
        source,
        null,
        kind: SqlFragment::raw("2"),
        num: SqlFragment::raw("0"),
        text,
    };
    match value {
        PgVal::Bound(SqlVal::Null) => text(None, SqlFragment::raw("''"), SqlFragment::raw("TRUE")),
        PgVal::Bound(SqlVal::Int(i)) => number(
            None,
            param(SqlValue::Real(i as f64), "double precision"),
            SqlFragment::raw("FALSE"),
        ),
        PgVal::Bound(SqlVal::Real(r)) => number(
            None,
            param(SqlValue::Real(r), "double precision"),
            SqlFragment::raw("FALSE"),
        ),
        PgVal::Bound(SqlVal::Text(t)) => text(
            None,
            param(SqlValue::Text(t), "text"),
            SqlFragment::raw("FALSE"),
        ),
        PgVal::Num(sql, _) => number(
            Some(sql!("CAST(", sql, " AS double precision)")),
            v(),
            SqlFragment::raw("(\"_v\" IS NULL)"),
        ),
        PgVal::Text(sql) => text(
            Some(sql!("CAST(", sql, " AS text)")),
            v(),
            SqlFragment::raw("(\"_v\" IS NULL)"),
        ),
        PgVal::Json(j) => Key {
            source: Some(j),
            null: SqlFragment::raw("(COALESCE(jsonb_typeof(\"_v\"), 'null') = 'null')"),
            kind: SqlFragment::raw(
                "(CASE WHEN jsonb_typeof(\"_v\") IN ('number', 'boolean') THEN 1 ELSE 2 END)",
            ),
            num: SqlFragment::raw(
                "(CASE jsonb_typeof(\"_v\") WHEN 'number' THEN CAST((\"_v\" #>> '{}') AS double precision) \
                 WHEN 'boolean' THEN (CASE WHEN \"_v\" = 'true'::jsonb THEN 1 ELSE 0 END) ELSE 0 END)",
            ),
            text: sql!(
                "(CASE jsonb_typeof(\"_v\") WHEN 'string' THEN (\"_v\" #>> '{}') \
                 WHEN 'object' THEN ",
                minified(&v()),
                " WHEN 'array' THEN ",
                minified(&v()),
                " ELSE '' END)"
            ),
        },
        PgVal::Key(k) => k,
    }
}

/// `ROW(kind, number, text)`, or NULL for a NULL value: rows compare the way SQLite compares
/// values (numbers before text, numbers by value, text bytewise).
fn key_sql(key: Key) -> SqlFragment {
    let body = sql!(
        "(CASE WHEN ",
        key.null,
        " THEN NULL ELSE ROW(",
        key.kind,
        ", CAST(",
        key.num,
        " AS double precision), (CAST(",
        key.text,
        " AS text)) COLLATE \"C\") END)"
    );
    bind_opt(key.source, body)
}

/// Whether a `LIKE` pattern ends in an escape with nothing after it.
fn ends_in_lone_escape(pattern: &str) -> bool {
    let mut chars = pattern.chars();
    while let Some(c) = chars.next() {
        if c == '\\' && chars.next().is_none() {
            return true;
        }
    }
    false
}
