//! View collections: a superuser-written SELECT becomes `CREATE VIEW`. The query is SQL by
//! design, so it is checked to be exactly one read-only SELECT (or WITH … SELECT), and its
//! result columns become the collection's fields: a column read straight from a collection
//! copies that field's definition (SQLite's column origin metadata says where it comes from),
//! and computed columns get a type from their expression the way PocketBase guesses it
//! (`count(…)` is an integer, `cast(… as real)` a number, anything else JSON).

use domain::StoreError;
use domain::collection::Collection;
use domain::field::{Field, FieldKind};
use domain::sql::quote_ident;
use domain::view_query::{
    SelectItem, Token, check_column_parts, id_field, invalid, json_kind, select_items, tokenize,
};
use rusqlite::Connection;

/// A checked view query and what its columns are.
pub(crate) struct ViewPlan {
    pub(crate) fields: Vec<Field>,
    /// Whether the `id` column is computed (not a stored text column) and must be cast to
    /// text, so lookups by id compare text with text.
    cast_id: bool,
}

/// The error SQLite gives for `query` compiled as a subquery (it is never run), in the
/// `<description>: <message> (<code>)` form PocketBase reports.
fn wrapped_query_error(conn: &Connection, query: &str) -> String {
    match conn.prepare(&format!("SELECT * FROM ({query}) LIMIT 0")) {
        Err(error) => sqlite_error_text(error),
        Ok(_) => "the query must be a single SELECT statement".to_owned(),
    }
}

/// SQLite's own description of an error code ("SQL logic error"), without the
/// "Error code N: " prefix the driver's `Display` adds.
fn error_description(error: &rusqlite::ffi::Error) -> String {
    let text = error.to_string();
    match text.split_once(": ") {
        Some((prefix, rest)) if prefix.starts_with("Error code ") => rest.to_owned(),
        _ => text,
    }
}

/// `<description>: <message> (<code>)`, the way PocketBase's driver words SQLite errors.
pub(crate) fn sqlite_error_text(error: rusqlite::Error) -> String {
    match error {
        rusqlite::Error::SqliteFailure(failure, message) => format!(
            "{}: {} ({})",
            error_description(&failure),
            message.unwrap_or_default(),
            failure.extended_code
        ),
        rusqlite::Error::SqlInputError { error, msg, .. } => {
            format!(
                "{}: {} ({})",
                error_description(&error),
                msg,
                error.extended_code
            )
        }
        other => other.to_string(),
    }
}

impl ViewPlan {
    /// Checks `query` against the database `conn` sees and works out the view's fields.
    /// `collections` resolves column origins (table name → collection).
    pub(crate) fn new(
        conn: &Connection,
        collections: &[Collection],
        query: &str,
    ) -> Result<ViewPlan, StoreError> {
        check_column_parts(query)?;
        let tokens = tokenize(query)?;
        match tokens.first() {
            Some(Token::Word(w))
                if w.eq_ignore_ascii_case("SELECT") || w.eq_ignore_ascii_case("WITH") => {}
            // Report what SQLite says of the query inside a SELECT, as PocketBase does.
            _ => return Err(invalid(&wrapped_query_error(conn, query))),
        }
        let items = select_items(&tokens);
        if items.iter().any(|item| item.is_wildcard()) {
            return Err(invalid(
                "wildcard columns (*) are not supported - manually type the collection field names you want the view query to have",
            ));
        }
        let stmt = conn.prepare(query).map_err(|e| match e {
            rusqlite::Error::MultipleStatement => invalid("multiple statements are not supported"),
            other => invalid(&sqlite_error_text(other)),
        })?;
        if !stmt.readonly() {
            return Err(invalid("the query must be a single SELECT statement"));
        }
        let positional = items.len() == stmt.column_count();
        let mut fields: Vec<Field> = Vec::with_capacity(stmt.column_count());
        let mut cast_id = false;
        let mut has_id = false;
        for (i, column) in stmt.columns_with_metadata().enumerate() {
            let name = column.name().to_owned();
            if fields.iter().any(|f| f.name.eq_ignore_ascii_case(&name)) {
                return Err(invalid(&format!("duplicated column name {name:?}")));
            }
            let origin = match (column.table_name(), column.origin_name()) {
                (Some(table), Some(origin)) => collections
                    .iter()
                    .find(|c| c.name.eq_ignore_ascii_case(table))
                    .and_then(|c| {
                        c.fields
                            .iter()
                            .find(|f| f.name.eq_ignore_ascii_case(origin))
                    }),
                _ => None,
            };
            if name == "id" {
                has_id = true;
                cast_id = !matches!(origin, Some(f) if matches!(f.kind, FieldKind::Text(_)));
                fields.push(id_field());
                continue;
            }
            let field = match origin {
                Some(source) => {
                    let mut field = source.clone();
                    field.name = name.clone();
                    // Copied fields get a `_clone_` id with a random suffix, as in PocketBase.
                    field.id = format!("_clone_{}", domain::ids::random_alnum(4));
                    field
                }
                None => {
                    let item = if positional { items.get(i) } else { None };
                    Field::new(&name, item.map_or_else(json_kind, SelectItem::guess_kind))
                }
            };
            fields.push(field);
        }
        if !has_id {
            return Err(invalid(
                "missing required id column (you can use `(ROW_NUMBER() OVER()) as id` if you don't have one)",
            ));
        }
        Ok(ViewPlan { fields, cast_id })
    }

    /// `CREATE VIEW "name" AS SELECT … FROM (query)`.
    pub(crate) fn create_sql(&self, name: &str, query: &str) -> String {
        let columns = if self.cast_id {
            let list: Vec<String> = self
                .fields
                .iter()
                .map(|f| {
                    let column = quote_ident(&f.name);
                    if f.name == "id" {
                        format!("CAST({column} AS TEXT) AS {column}")
                    } else {
                        column
                    }
                })
                .collect();
            list.join(", ")
        } else {
            "*".to_owned()
        };
        // The parentheses also keep the query a single SELECT: a smuggled second statement
        // cannot close them. The newline ends a trailing `--` comment before the `)`.
        format!(
            "CREATE VIEW {} AS SELECT {columns} FROM ({query}\n)",
            quote_ident(name)
        )
    }
}
