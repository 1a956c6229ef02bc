//! Checks a predicate against a row that is not stored (yet or any more): the would-be row
//! of a create, whose rule PocketBase decides before any field is validated, or the last
//! state of a deleted record, which realtime must still match against rules.
//!
//! The row is offered as a one-row subquery aliased with the collection's own name, so the
//! predicate, written against the table, reads it unchanged. An alias (unlike a CTE of that
//! name) does not hide the stored table from the predicate's own joins, so relations to other
//! tables and to the collection itself (a self-relation, a back-relation) see stored rows.
//! Its values are bound parameters, so they carry no column affinity: a NUMERIC column
//! compared with the text `'5'` does not convert it, which is also how PocketBase's own
//! would-be-row query behaves (its create rule `n = '5'` refuses `n: 5`).

use domain::StoreError;
use domain::collection::Collection;
use domain::record::RecordData;
use domain::sql::{SqlFragment, quote_ident};
use rusqlite::types::Value as SqlOut;
use rusqlite::{Connection, OptionalExtension, params_from_iter};

use crate::records::{bind, stored};

/// Whether `data`, as a row of `collection`, satisfies `predicate`.
pub(crate) fn matches(
    conn: &Connection,
    collection: &Collection,
    data: &RecordData,
    predicate: &SqlFragment,
) -> Result<bool, StoreError> {
    if collection.fields.is_empty() {
        return Err(StoreError::Schema(format!(
            "collection {:?} has no fields",
            collection.name
        )));
    }
    let table = quote_ident(&collection.name);
    let columns: Vec<String> = collection
        .fields
        .iter()
        .map(|f| quote_ident(&f.name))
        .collect();
    let row: Vec<String> = columns.iter().map(|c| format!("? AS {c}")).collect();
    let sql = format!(
        "SELECT 1 FROM (SELECT {row}) AS {table} WHERE ({pred}) LIMIT 1",
        row = row.join(", "),
        pred = predicate.sql,
    );
    let mut params: Vec<SqlOut> = collection
        .fields
        .iter()
        .map(|f| stored(f, data.get(&f.name)))
        .collect();
    params.extend(predicate.params.iter().map(bind));
    let found: rusqlite::Result<Option<i64>> = conn.prepare_cached(&sql).and_then(|mut stmt| {
        stmt.query_row(params_from_iter(params), |r| r.get(0))
            .optional()
    });
    match found {
        Ok(found) => Ok(found.is_some()),
        // Not decided before the query timeout: it does not hold, as a rule check that fails
        // in PocketBase refuses (a create answers "Failed to create record.").
        Err(error) if crate::is_interrupt(&error) => Ok(false),
        Err(error) => Err(crate::internal(error)),
    }
}
