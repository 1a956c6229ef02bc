//! Bridging the shared SQL vocabulary (`domain::sql`) to the driver: `?` placeholders become
//! `$n`, bound values adapt to the type PostgreSQL inferred for their placeholder, and driver
//! errors become [`StoreError`]s.

use std::error::Error as StdError;

use bytes::BytesMut;
use domain::StoreError;
use domain::sql::{SqlFragment, SqlValue};
use tokio_postgres::error::SqlState;
use tokio_postgres::types::{IsNull, ToSql, Type, to_sql_checked};

/// A statement in the making: text with `$n` placeholders and the values they bind.
#[derive(Debug, Default, Clone)]
pub(crate) struct Statement {
    pub(crate) sql: String,
    pub(crate) params: Vec<Param>,
}

impl Statement {
    pub(crate) fn new(sql: impl Into<String>) -> Self {
        Statement {
            sql: sql.into(),
            params: Vec::new(),
        }
    }

    /// Appends text that holds no placeholder.
    pub(crate) fn push(&mut self, sql: &str) -> &mut Self {
        self.sql.push_str(sql);
        self
    }

    /// Appends a placeholder for `value`.
    pub(crate) fn bind(&mut self, value: impl Into<Param>) -> &mut Self {
        self.params.push(value.into());
        self.sql.push('$');
        self.sql.push_str(&self.params.len().to_string());
        self
    }

    /// Appends a fragment written with `?` placeholders, renumbering them after the ones
    /// already bound. A `?` inside a quoted literal or identifier is text, not a placeholder.
    pub(crate) fn push_fragment(&mut self, fragment: &SqlFragment) -> &mut Self {
        let mut values = fragment.params.iter();
        let mut quote: Option<char> = None;
        for ch in fragment.sql.chars() {
            match quote {
                Some(q) => {
                    // A doubled quote closes and reopens: the state comes out right either way.
                    if ch == q {
                        quote = None;
                    }
                    self.sql.push(ch);
                }
                None => match ch {
                    '\'' | '"' => {
                        quote = Some(ch);
                        self.sql.push(ch);
                    }
                    '?' => match values.next() {
                        Some(value) => {
                            self.bind(Param::from(value.clone()));
                        }
                        // More placeholders than values: leave the text for the server to
                        // refuse rather than bind something wrong.
                        None => self.sql.push('?'),
                    },
                    _ => self.sql.push(ch),
                },
            }
        }
        self
    }

    /// The parameters as the driver takes them.
    pub(crate) fn refs(&self) -> Vec<&(dyn ToSql + Sync)> {
        self.params
            .iter()
            .map(|p| p as &(dyn ToSql + Sync))
            .collect()
    }
}

/// A bound value that adapts to the type of its placeholder, as SQLite's dynamic typing
/// would: an integer binds into a `bigint`, `double precision`, `boolean` or text column; text
/// into text, `jsonb` (it must then be JSON) or a number column when it parses.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Param {
    Null,
    Int(i64),
    Real(f64),
    Text(String),
    Bool(bool),
}

impl From<SqlValue> for Param {
    fn from(value: SqlValue) -> Self {
        match value {
            SqlValue::Null => Param::Null,
            SqlValue::Int(i) => Param::Int(i),
            SqlValue::Real(r) => Param::Real(r),
            SqlValue::Text(t) => Param::Text(t),
        }
    }
}

impl From<&str> for Param {
    fn from(value: &str) -> Self {
        Param::Text(value.to_owned())
    }
}

impl From<String> for Param {
    fn from(value: String) -> Self {
        Param::Text(value)
    }
}

impl From<i64> for Param {
    fn from(value: i64) -> Self {
        Param::Int(value)
    }
}

impl From<bool> for Param {
    fn from(value: bool) -> Self {
        Param::Bool(value)
    }
}

type BoxError = Box<dyn StdError + Sync + Send>;

fn mismatch(value: &Param, ty: &Type) -> BoxError {
    format!("cannot bind {value:?} to a parameter of type {ty}").into()
}

impl ToSql for Param {
    fn to_sql(&self, ty: &Type, out: &mut BytesMut) -> Result<IsNull, BoxError> {
        match self {
            Param::Null => Ok(IsNull::Yes),
            Param::Int(i) => match *ty {
                Type::INT8 => i.to_sql(ty, out),
                Type::INT4 => i32::try_from(*i)?.to_sql(ty, out),
                Type::INT2 => i16::try_from(*i)?.to_sql(ty, out),
                Type::FLOAT8 => (*i as f64).to_sql(ty, out),
                Type::FLOAT4 => (*i as f32).to_sql(ty, out),
                Type::BOOL => (*i != 0).to_sql(ty, out),
                Type::TEXT | Type::VARCHAR | Type::BPCHAR | Type::NAME | Type::UNKNOWN => {
                    i.to_string().as_str().to_sql(&Type::TEXT, out)
                }
                Type::JSONB => jsonb(&i.to_string(), out),
                Type::JSON => json(&i.to_string(), out),
                _ => Err(mismatch(self, ty)),
            },
            Param::Real(r) => match *ty {
                Type::TEXT | Type::VARCHAR | Type::BPCHAR | Type::NAME | Type::UNKNOWN => {
                    domain::record::number_to_json(*r)
                        .to_string()
                        .as_str()
                        .to_sql(&Type::TEXT, out)
                }
                Type::JSONB => jsonb(&domain::record::number_to_json(*r).to_string(), out),
                _ => number(self, *r, ty, out),
            },
            Param::Bool(b) => match *ty {
                Type::BOOL => b.to_sql(ty, out),
                Type::INT8 => i64::from(*b).to_sql(ty, out),
                Type::INT4 => i32::from(*b).to_sql(ty, out),
                Type::FLOAT8 => f64::from(u8::from(*b)).to_sql(ty, out),
                Type::TEXT | Type::VARCHAR | Type::UNKNOWN => {
                    (if *b { "true" } else { "false" }).to_sql(&Type::TEXT, out)
                }
                _ => Err(mismatch(self, ty)),
            },
            Param::Text(t) => match *ty {
                // PostgreSQL's text cannot hold NUL, and sending one fails the statement.
                // Input with NUL is refused before it is stored, so no stored text holds one;
                // a NUL that reaches a query (a record id in a path, a request value a rule
                // compares) becomes U+FFFD, which matches what SQLite's comparison would:
                // nothing stored (short of text holding U+FFFD there).
                Type::TEXT | Type::VARCHAR | Type::BPCHAR | Type::NAME | Type::UNKNOWN
                    if t.contains('\0') =>
                {
                    t.replace('\0', "\u{FFFD}")
                        .as_str()
                        .to_sql(&Type::TEXT, out)
                }
                Type::TEXT | Type::VARCHAR | Type::BPCHAR | Type::NAME | Type::UNKNOWN => {
                    t.as_str().to_sql(&Type::TEXT, out)
                }
                Type::JSONB => jsonb(t, out),
                Type::JSON => json(t, out),
                Type::BOOL => matches!(t.as_str(), "true" | "1").to_sql(ty, out),
                _ => match t.trim().parse::<f64>() {
                    Ok(f) if f.is_finite() => number(self, f, ty, out),
                    _ => Err(mismatch(self, ty)),
                },
            },
        }
    }

    fn accepts(_: &Type) -> bool {
        true
    }

    to_sql_checked!();
}

/// A number bound into a numeric (or boolean) placeholder; a fraction never truncates.
fn number(value: &Param, f: f64, ty: &Type, out: &mut BytesMut) -> Result<IsNull, BoxError> {
    match *ty {
        Type::FLOAT8 => f.to_sql(ty, out),
        Type::FLOAT4 => (f as f32).to_sql(ty, out),
        Type::INT8 if f.fract() == 0.0 => (f as i64).to_sql(ty, out),
        Type::INT4 if f.fract() == 0.0 => i32::try_from(f as i64)?.to_sql(ty, out),
        Type::INT2 if f.fract() == 0.0 => i16::try_from(f as i64)?.to_sql(ty, out),
        Type::BOOL => (f != 0.0).to_sql(ty, out),
        _ => Err(mismatch(value, ty)),
    }
}

/// JSON text in `jsonb`'s binary form (a version byte, then the text).
fn jsonb(text: &str, out: &mut BytesMut) -> Result<IsNull, BoxError> {
    out.extend_from_slice(&[1]);
    out.extend_from_slice(text.as_bytes());
    Ok(IsNull::No)
}

fn json(text: &str, out: &mut BytesMut) -> Result<IsNull, BoxError> {
    out.extend_from_slice(text.as_bytes());
    Ok(IsNull::No)
}

/// What a driver error means for the store.
pub(crate) fn classify(error: &tokio_postgres::Error) -> Option<&SqlState> {
    error.code()
}

/// Whether `error` is a statement cancelled by `statement_timeout` or a cancel request.
pub(crate) fn is_cancel(error: &tokio_postgres::Error) -> bool {
    matches!(
        classify(error),
        Some(code) if *code == SqlState::QUERY_CANCELED || *code == SqlState::LOCK_NOT_AVAILABLE
    )
}

/// A driver error nobody can act on: logged by the server, shown as a 500. A cancelled
/// statement (the query timeout) is [`StoreError::TimedOut`].
pub(crate) fn internal(error: tokio_postgres::Error) -> StoreError {
    if is_cancel(&error) {
        return StoreError::TimedOut;
    }
    StoreError::Internal(describe(&error))
}

/// The server's message of a database error (with its detail), or the driver's text.
pub(crate) fn describe(error: &tokio_postgres::Error) -> String {
    match error.as_db_error() {
        Some(db) => match db.detail() {
            Some(detail) => format!("{}: {detail}", db.message()),
            None => db.message().to_owned(),
        },
        None => error.to_string(),
    }
}

/// Whether a failure of DDL built from a definition means the definition was refused (bad
/// SQL in a view or an index, a name clash, rows in the way) rather than a store fault.
pub(crate) fn is_definition_error(error: &tokio_postgres::Error) -> bool {
    let Some(code) = error.code() else {
        return false;
    };
    let class = &code.code()[..2];
    // 42: syntax error or access rule violation; 23: integrity constraint violation;
    // 22: data exception; 0A: feature not supported; 2B: dependent objects still exist.
    matches!(class, "42" | "23" | "22" | "0A" | "2B")
}

/// A failed schema change's error: the definition refused (with the server's reason), a
/// timeout, or internal.
pub(crate) fn schema_error(error: tokio_postgres::Error, what: &str) -> StoreError {
    if is_definition_error(&error) {
        StoreError::Schema(format!("{what}: {}", describe(&error)))
    } else {
        internal(error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_renumbered_outside_quotes() {
        let mut fragment = SqlFragment::raw("\"a?\" = ");
        fragment.push_param(SqlValue::Int(1));
        fragment.push_sql(" AND b = '?' AND c = ");
        fragment.push_param(SqlValue::Text("x".into()));
        let mut statement = Statement::new("SELECT 1 WHERE id = ");
        statement.bind("r1").push(" AND ").push_fragment(&fragment);
        assert_eq!(
            statement.sql,
            "SELECT 1 WHERE id = $1 AND \"a?\" = $2 AND b = '?' AND c = $3"
        );
        assert_eq!(
            statement.params,
            vec![
                Param::Text("r1".into()),
                Param::Int(1),
                Param::Text("x".into())
            ]
        );
    }

    #[test]
    fn text_with_nul_binds_as_text_postgresql_can_hold() {
        let mut out = BytesMut::new();
        let bound = Param::Text("ab\0c".into()).to_sql(&Type::TEXT, &mut out);
        assert!(matches!(bound, Ok(IsNull::No)));
        assert_eq!(&out[..], "ab\u{FFFD}c".as_bytes());
    }

    #[test]
    fn params_adapt_to_their_placeholder_type() {
        let mut out = BytesMut::new();
        assert!(Param::Int(1).to_sql(&Type::BOOL, &mut out).is_ok());
        assert_eq!(&out[..], &[1]);
        out.clear();
        assert!(
            Param::Text("{}".into())
                .to_sql(&Type::JSONB, &mut out)
                .is_ok()
        );
        assert_eq!(&out[..], b"\x01{}");
        out.clear();
        assert!(Param::Real(2.5).to_sql(&Type::INT8, &mut out).is_err());
        assert!(
            Param::Text("abc".into())
                .to_sql(&Type::FLOAT8, &mut out)
                .is_err()
        );
    }
}
