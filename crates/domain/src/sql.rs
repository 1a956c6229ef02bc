//! The small SQL vocabulary shared by `rules` and the stores: a predicate or expression as
//! text with positional `?` placeholders plus its bound values. Identifiers enter SQL only
//! through [`quote_ident`], and only after they were checked against the schema.
//!
//! Also the two predicates every engine needs over id lists ([`column_in`], [`list_holds_any`]),
//! each with both dialects side by side; the engines choose which one fits a column through
//! `Store::field_holds_any`, so nothing above the store writes them.

/// Which SQL dialect a fragment is written for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Sqlite,
    Postgres,
}

/// A bound value.
#[derive(Debug, Clone, PartialEq)]
pub enum SqlValue {
    Null,
    Int(i64),
    Real(f64),
    Text(String),
}

/// SQL text with `?` placeholders (in order) and their values. Stores renumber placeholders
/// for their dialect when they splice a fragment into a statement.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SqlFragment {
    pub sql: String,
    pub params: Vec<SqlValue>,
}

impl SqlFragment {
    /// A fragment with no parameters. `sql` must not contain user text.
    pub fn raw(sql: impl Into<String>) -> Self {
        SqlFragment {
            sql: sql.into(),
            params: Vec::new(),
        }
    }

    /// `"table"."column"` for a column the caller checked against the schema.
    pub fn column(table: &str, column: &str) -> Self {
        SqlFragment::raw(format!("{}.{}", quote_ident(table), quote_ident(column)))
    }

    pub fn push_sql(&mut self, sql: &str) -> &mut Self {
        self.sql.push_str(sql);
        self
    }

    pub fn push_param(&mut self, value: SqlValue) -> &mut Self {
        self.sql.push('?');
        self.params.push(value);
        self
    }

    pub fn push_fragment(&mut self, other: SqlFragment) -> &mut Self {
        self.sql.push_str(&other.sql);
        self.params.extend(other.params);
        self
    }

    /// `(a) AND (b) AND …`; `None` when `parts` is empty.
    pub fn and_all(parts: Vec<SqlFragment>) -> Option<SqlFragment> {
        let mut iter = parts.into_iter();
        let mut out = SqlFragment::default();
        let first = iter.next()?;
        out.push_sql("(").push_fragment(first).push_sql(")");
        for part in iter {
            out.push_sql(" AND (").push_fragment(part).push_sql(")");
        }
        Some(out)
    }
}

/// Double-quotes an identifier (valid in SQLite and PostgreSQL), doubling inner quotes.
pub fn quote_ident(name: &str) -> String {
    let mut out = String::with_capacity(name.len() + 2);
    push_quoted_ident(&mut out, name);
    out
}

/// Appends `name` quoted as [`quote_ident`] does, without an allocation of its own.
pub fn push_quoted_ident(out: &mut String, name: &str) {
    out.reserve(name.len() + 2);
    out.push('"');
    // Names rarely hold a quote: one scan, one copy.
    if !name.contains('"') {
        out.push_str(name);
        out.push('"');
        return;
    }
    let mut pieces = name.split('"');
    if let Some(first) = pieces.next() {
        out.push_str(first);
    }
    for piece in pieces {
        out.push_str("\"\"");
        out.push_str(piece);
    }
    out.push('"');
}

/// `"table"."column" IN (…values…)`, the values bound as one JSON array parameter, so any
/// number of them takes one statement (and one cached plan).
pub fn column_in(dialect: Dialect, table: &str, column: &str, values: &[String]) -> SqlFragment {
    in_json_list(dialect, SqlFragment::column(table, column), values)
}

/// Whether `"table"."column"`, a list kept as a JSON array of strings (a multiple relation,
/// select or file field), holds any of `values`; a value that is not a JSON array holds none.
/// The values are bound as one JSON array parameter.
pub fn list_holds_any(
    dialect: Dialect,
    table: &str,
    column: &str,
    values: &[String],
) -> SqlFragment {
    let column = SqlFragment::column(table, column).sql;
    let mut fragment = match dialect {
        Dialect::Sqlite => SqlFragment::raw(format!(
            "EXISTS (SELECT 1 FROM json_each(CASE WHEN json_valid({column}) THEN {column} ELSE '[]' END) AS rel WHERE "
        )),
        Dialect::Postgres => SqlFragment::raw(format!(
            "EXISTS (SELECT 1 FROM jsonb_array_elements_text(CASE WHEN jsonb_typeof({column}) = 'array' THEN {column} ELSE '[]'::jsonb END) AS rel(value) WHERE "
        )),
    };
    fragment.push_fragment(in_json_list(dialect, SqlFragment::raw("rel.value"), values));
    fragment.push_sql(")");
    fragment
}

/// `expr IN (…values…)` over one bound JSON array text.
fn in_json_list(dialect: Dialect, expr: SqlFragment, values: &[String]) -> SqlFragment {
    let mut fragment = expr;
    // A list of strings always serializes; the fallback only keeps this total.
    let list = SqlValue::Text(serde_json::to_string(values).unwrap_or_else(|_| "[]".into()));
    match dialect {
        Dialect::Sqlite => fragment
            .push_sql(" IN (SELECT value FROM json_each(")
            .push_param(list)
            .push_sql("))"),
        Dialect::Postgres => fragment
            .push_sql(" IN (SELECT jsonb_array_elements_text(CAST(")
            .push_param(list)
            .push_sql(" AS jsonb)))"),
    };
    fragment
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn id_lists_bind_one_json_parameter_in_both_dialects() {
        let ids = vec!["a".to_owned(), "b\"".to_owned()];
        let bound = vec![SqlValue::Text("[\"a\",\"b\\\"\"]".into())];
        let sqlite = column_in(Dialect::Sqlite, "t", "id", &ids);
        assert_eq!(
            sqlite.sql,
            "\"t\".\"id\" IN (SELECT value FROM json_each(?))"
        );
        assert_eq!(sqlite.params, bound);
        let postgres = column_in(Dialect::Postgres, "t", "id", &ids);
        assert_eq!(
            postgres.sql,
            "\"t\".\"id\" IN (SELECT jsonb_array_elements_text(CAST(? AS jsonb)))"
        );
        assert_eq!(postgres.params, bound);
    }

    #[test]
    fn list_overlaps_read_only_json_arrays_in_both_dialects() {
        let ids = vec!["a".to_owned()];
        let sqlite = list_holds_any(Dialect::Sqlite, "t", "likers", &ids);
        assert_eq!(
            sqlite.sql,
            "EXISTS (SELECT 1 FROM json_each(CASE WHEN json_valid(\"t\".\"likers\") THEN \"t\".\"likers\" ELSE '[]' END) AS rel WHERE rel.value IN (SELECT value FROM json_each(?)))"
        );
        assert_eq!(sqlite.params, vec![SqlValue::Text("[\"a\"]".into())]);
        let postgres = list_holds_any(Dialect::Postgres, "t", "likers", &ids);
        assert_eq!(
            postgres.sql,
            "EXISTS (SELECT 1 FROM jsonb_array_elements_text(CASE WHEN jsonb_typeof(\"t\".\"likers\") = 'array' THEN \"t\".\"likers\" ELSE '[]'::jsonb END) AS rel(value) WHERE rel.value IN (SELECT jsonb_array_elements_text(CAST(? AS jsonb))))"
        );
        assert_eq!(postgres.params.len(), 1);
    }

    #[test]
    fn fragments_compose_in_order() {
        let mut a = SqlFragment::column("posts", "title");
        a.push_sql(" = ").push_param(SqlValue::Text("x".into()));
        let b = SqlFragment::raw("1");
        let both = SqlFragment::and_all(vec![a, b]).expect("two parts");
        assert_eq!(both.sql, "(\"posts\".\"title\" = ?) AND (1)");
        assert_eq!(both.params, vec![SqlValue::Text("x".into())]);
        assert_eq!(quote_ident("we\"ird"), "\"we\"\"ird\"");
        for (name, quoted) in [
            ("", "\"\""),
            ("plain", "\"plain\""),
            ("\"", "\"\"\"\""),
            ("\"a\"\"b\"", "\"\"\"a\"\"\"\"b\"\"\""),
        ] {
            assert_eq!(quote_ident(name), quoted, "{name}");
            assert_eq!(
                quote_ident(name),
                format!("\"{}\"", name.replace('"', "\"\""))
            );
        }
    }
}
