//! The small SQL vocabulary shared by `rules` and the stores: a predicate or expression as
//! text with positional `?` placeholders plus its bound values. Identifiers enter SQL only
//! through [`quote_ident`], and only after they were checked against the schema.

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
    format!("\"{}\"", name.replace('"', "\"\""))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fragments_compose_in_order() {
        let mut a = SqlFragment::column("posts", "title");
        a.push_sql(" = ").push_param(SqlValue::Text("x".into()));
        let b = SqlFragment::raw("1");
        let both = SqlFragment::and_all(vec![a, b]).expect("two parts");
        assert_eq!(both.sql, "(\"posts\".\"title\" = ?) AND (1)");
        assert_eq!(both.params, vec![SqlValue::Text("x".into())]);
        assert_eq!(quote_ident("we\"ird"), "\"we\"\"ird\"");
    }
}
