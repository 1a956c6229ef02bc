//! View collections on PostgreSQL: a superuser-written SELECT, in PostgreSQL's SQL, becomes
//! `CREATE VIEW`. The query must be one SELECT (or WITH … SELECT); it is only ever prepared
//! here, never run. Its result columns become the
//! collection's fields: a column PostgreSQL reports as read straight from a collection's table
//! copies that field's definition, and a computed column gets the kind PocketBase guesses
//! from its expression (`domain::view_query`), so a view's fields are the same on both
//! engines.

use domain::StoreError;
use domain::collection::Collection;
use domain::field::Field;
use domain::sql::quote_ident;
use domain::view_query::{
    SelectItem, Token, check_column_parts, id_field, invalid, json_kind, select_items, tokenize,
};
use tokio_postgres::types::Type;

use crate::Conn;
use crate::ddl::ROWID;
use crate::sql::describe;

/// A checked view query and what its columns are.
pub(crate) struct ViewPlan {
    pub(crate) fields: Vec<Field>,
    /// The query, trimmed of trailing semicolons.
    query: String,
    /// Whether the `id` column is not text and must be cast, so lookups compare text.
    cast_id: bool,
}

/// The first word of the query past comments, whitespace and opening parentheses.
pub(crate) fn first_word(query: &str) -> String {
    let mut rest = query.trim_start();
    loop {
        if let Some(after) = rest.strip_prefix("--") {
            rest = after.split_once('\n').map_or("", |(_, r)| r).trim_start();
        } else if let Some(after) = rest.strip_prefix("/*") {
            rest = after.split_once("*/").map_or("", |(_, r)| r).trim_start();
        } else if let Some(after) = rest.strip_prefix('(') {
            rest = after.trim_start();
        } else {
            break;
        }
    }
    rest.chars()
        .take_while(|c| c.is_ascii_alphabetic())
        .collect::<String>()
        .to_ascii_uppercase()
}

impl ViewPlan {
    /// Checks `query` against the database and works out the view's fields. `collections`
    /// resolves column origins (table name → collection).
    pub(crate) async fn new(
        conn: &Conn,
        collections: &[Collection],
        query: &str,
    ) -> Result<ViewPlan, StoreError> {
        let query = query.trim().trim_end_matches(';').trim_end().to_owned();
        if query.is_empty() {
            return Err(invalid("the query is empty"));
        }
        check_column_parts(&query)?;
        let tokens = tokenize(&query)?;
        match tokens.first() {
            Some(Token::Word(w))
                if w.eq_ignore_ascii_case("SELECT") || w.eq_ignore_ascii_case("WITH") => {}
            // Worded as PocketBase reports a statement that is not a SELECT (SQLite's
            // complaint about it inside a subquery), so clients see the same answer.
            Some(Token::Word(w)) => {
                return Err(invalid(&format!(
                    "SQL logic error: near \"{w}\": syntax error (1)"
                )));
            }
            _ => return Err(invalid("the query must be a single SELECT statement")),
        }
        let items = select_items(&tokens);
        if items.iter().any(SelectItem::is_wildcard) {
            return Err(invalid(
                "wildcard columns (*) are not supported - manually type the collection field names you want the view query to have",
            ));
        }
        // Only prepared: nothing of the query runs (a data-modifying WITH is refused when the
        // view is created, and samples run read-only).
        let statement = conn
            .prepare(&query)
            .await
            .map_err(|error| invalid(&describe(&error)))?;
        if !statement.params().is_empty() {
            return Err(invalid("the query must not have parameters"));
        }
        // Where each column comes from, when it is a table's column.
        let mut origins: Vec<Option<(String, String)>> = Vec::new();
        for column in statement.columns() {
            let origin = match (column.table_oid(), column.column_id()) {
                (Some(oid), Some(attnum)) if oid != 0 && attnum > 0 => conn
                    .query_opt(
                        "SELECT c.relname::text, a.attname::text FROM pg_class c
                         JOIN pg_attribute a ON a.attrelid = c.oid
                         WHERE c.oid = $1 AND a.attnum = $2",
                        &[&oid, &attnum],
                    )
                    .await
                    .map_err(crate::sql::internal)?
                    .map(|row| (row.get::<_, String>(0), row.get::<_, String>(1))),
                _ => None,
            };
            origins.push(origin);
        }
        let positional = items.len() == statement.columns().len();
        let mut fields: Vec<Field> = Vec::with_capacity(statement.columns().len());
        let mut cast_id = false;
        let mut has_id = false;
        for (i, (column, origin)) in statement.columns().iter().zip(origins).enumerate() {
            let name = column.name().to_owned();
            if name == ROWID {
                return Err(invalid(
                    "wildcard columns (*) are not supported - manually type the collection field names you want the view query to have",
                ));
            }
            if fields.iter().any(|f| f.name.eq_ignore_ascii_case(&name)) {
                return Err(invalid(&format!("duplicated column name {name:?}")));
            }
            let source = origin.and_then(|(table, column)| {
                collections
                    .iter()
                    .find(|c| c.name == table)
                    .and_then(|c| c.fields.iter().find(|f| f.name == column))
            });
            if name == "id" {
                has_id = true;
                cast_id = column.type_() != &Type::TEXT;
                fields.push(id_field());
                continue;
            }
            let field = match source {
                Some(source) => {
                    let mut field = source.clone();
                    field.name = name.clone();
                    field.id = format!("_clone_{}", domain::ids::random_alnum(4));
                    field
                }
                // A computed column gets the kind PocketBase guesses from its expression.
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
        Ok(ViewPlan {
            fields,
            query,
            cast_id,
        })
    }

    /// `CREATE VIEW "name" AS SELECT … FROM (query) AS "_plinth_view"`, the id cast to text
    /// when it is not.
    pub(crate) fn create_sql(&self, name: &str) -> String {
        let columns: Vec<String> = self
            .fields
            .iter()
            .map(|f| {
                let column = format!("\"_plinth_view\".{}", quote_ident(&f.name));
                if f.name == "id" && self.cast_id {
                    format!("CAST({column} AS text) AS {}", quote_ident("id"))
                } else {
                    column
                }
            })
            .collect();
        // The newline keeps a trailing `-- comment` from swallowing the parenthesis.
        format!(
            "CREATE VIEW {} AS SELECT {} FROM ({}\n) AS \"_plinth_view\"",
            quote_ident(name),
            columns.join(", "),
            self.query
        )
    }

    /// The query, ready to be a subquery.
    pub(crate) fn query(&self) -> &str {
        &self.query
    }
}

#[cfg(test)]
mod tests {
    use super::first_word;

    #[test]
    fn the_first_word_skips_comments_and_parentheses() {
        assert_eq!(first_word("  -- hi\n /* x */ (select 1)"), "SELECT");
        assert_eq!(first_word("with a as (select 1) select * from a"), "WITH");
        assert_eq!(first_word("delete from t"), "DELETE");
    }
}
