//! Statement text for tables and indexes: how each field type becomes a column (the same
//! declarations PocketBase makes, so data files stay alike) and how parsed index definitions
//! become `CREATE INDEX` statements. Identifiers only ever enter SQL through `quote_ident`.

use domain::StoreError;
use domain::collection::Collection;
use domain::field::{Field, FieldKind};
use domain::index::IndexDef;
use domain::sql::{Dialect, quote_ident};
use rusqlite::Connection;

/// The declaration of a field's column (everything after the column name).
pub(crate) fn column_type(field: &Field) -> &'static str {
    if field.is_primary_key() {
        return "TEXT PRIMARY KEY DEFAULT ('r'||lower(hex(randomblob(7)))) NOT NULL";
    }
    match &field.kind {
        FieldKind::Number(_) => "NUMERIC DEFAULT 0 NOT NULL",
        FieldKind::Bool(_) => "BOOLEAN DEFAULT FALSE NOT NULL",
        FieldKind::Json(_) => "JSON DEFAULT NULL",
        FieldKind::GeoPoint(_) => "JSON DEFAULT '{\"lon\":0,\"lat\":0}' NOT NULL",
        _ if field.is_multiple() => "JSON DEFAULT '[]' NOT NULL",
        _ => "TEXT DEFAULT '' NOT NULL",
    }
}

/// `CREATE TABLE "table" ("f1" …, "f2" …)`, columns in field order.
pub(crate) fn create_table_sql(table: &str, fields: &[Field]) -> String {
    let columns: Vec<String> = fields
        .iter()
        .map(|f| format!("{} {}", quote_ident(&f.name), column_type(f)))
        .collect();
    format!(
        "CREATE TABLE {} ({})",
        quote_ident(table),
        columns.join(", ")
    )
}

/// Checks what a base or auth collection's table needs: a text primary key named `id` and
/// field names that are unique ignoring case (SQLite column names are case-insensitive).
pub(crate) fn check_table_fields(collection: &Collection) -> Result<(), StoreError> {
    match collection.field("id") {
        Some(field) if field.is_primary_key() => {}
        _ => {
            return Err(StoreError::Schema(
                "the collection needs a primary key text field named \"id\"".into(),
            ));
        }
    }
    if let Some(extra) = collection
        .fields
        .iter()
        .find(|f| f.is_primary_key() && f.name != "id")
    {
        return Err(StoreError::Schema(format!(
            "only the \"id\" field may be the primary key (found {:?})",
            extra.name
        )));
    }
    for (i, field) in collection.fields.iter().enumerate() {
        if field.name.is_empty() {
            return Err(StoreError::Schema("a field has an empty name".into()));
        }
        if collection.fields[..i]
            .iter()
            .any(|f| f.name.eq_ignore_ascii_case(&field.name))
        {
            return Err(StoreError::Schema(format!(
                "duplicated field name {:?}",
                field.name
            )));
        }
    }
    Ok(())
}

/// Parses and checks every index of `collection`: grammar, columns, and names that are
/// unique within the collection.
pub(crate) fn parse_indexes(collection: &Collection) -> Result<Vec<IndexDef>, StoreError> {
    if collection.is_view() && !collection.indexes.is_empty() {
        return Err(StoreError::Schema(
            "view collections cannot have indexes".into(),
        ));
    }
    let mut defs: Vec<IndexDef> = Vec::with_capacity(collection.indexes.len());
    for text in &collection.indexes {
        let def = IndexDef::parse(text).map_err(|e| StoreError::Schema(e.to_string()))?;
        def.check_columns(collection)
            .map_err(|e| StoreError::Schema(e.to_string()))?;
        if defs.iter().any(|d| d.name.eq_ignore_ascii_case(&def.name)) {
            return Err(StoreError::Schema(format!(
                "invalid index: the name {:?} is used twice",
                def.name
            )));
        }
        defs.push(def);
    }
    Ok(defs)
}

/// Creates the collection's indexes on its table.
pub(crate) fn create_indexes(conn: &Connection, collection: &Collection) -> Result<(), StoreError> {
    for def in parse_indexes(collection)? {
        conn.execute_batch(&def.render(Dialect::Sqlite, &collection.name))
            .map_err(|e| index_error(e, &def.name))?;
    }
    Ok(())
}

/// Drops the indexes a collection definition declares, ignoring ones that are gone.
pub(crate) fn drop_indexes(conn: &Connection, collection: &Collection) -> Result<(), StoreError> {
    for text in &collection.indexes {
        // An index that no longer parses was never created by this store.
        if let Ok(def) = IndexDef::parse(text) {
            conn.execute_batch(&format!("DROP INDEX IF EXISTS {}", quote_ident(&def.name)))
                .map_err(crate::internal)?;
        }
    }
    Ok(())
}

/// Creating an index can also fail on the rows already stored (a unique index over
/// duplicates): that is the definition refused, not a store fault.
/// The detail is worded as PocketBase's driver words it (`SQL logic error: … (1)`,
/// `constraint failed: UNIQUE constraint failed: … (2067)`), after an `index "name": `
/// prefix that tells the caller which index failed.
fn index_error(error: rusqlite::Error, name: &str) -> StoreError {
    let what = format!("index {name:?}");
    match &error {
        rusqlite::Error::SqliteFailure(code, _)
            if matches!(
                code.code,
                rusqlite::ErrorCode::ConstraintViolation | rusqlite::ErrorCode::Unknown
            ) =>
        {
            StoreError::Schema(format!("{what}: {}", crate::view::sqlite_error_text(error)))
        }
        _ => schema_error(error, &what),
    }
}

/// Maps an error of DDL built from a collection definition: SQLite's plain "SQL error" means
/// the definition was refused (name clash, bad view SQL); anything else is internal.
pub(crate) fn schema_error(error: rusqlite::Error, what: &str) -> StoreError {
    match &error {
        rusqlite::Error::SqliteFailure(code, message)
            if code.code == rusqlite::ErrorCode::Unknown =>
        {
            let detail = message.clone().unwrap_or_else(|| error.to_string());
            StoreError::Schema(format!("{what}: {detail}"))
        }
        _ => crate::internal(error),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use domain::field::{SelectOptions, TextOptions};

    #[test]
    fn column_types_match_pocketbase() {
        let single = Field::new(
            "s",
            FieldKind::Select(SelectOptions {
                max_select: 1,
                ..Default::default()
            }),
        );
        let multi = Field::new(
            "m",
            FieldKind::Select(SelectOptions {
                max_select: 2,
                ..Default::default()
            }),
        );
        let text = Field::new("t", FieldKind::Text(TextOptions::default()));
        let sql = create_table_sql("po\"sts", &[single, multi, text]);
        assert_eq!(
            sql,
            "CREATE TABLE \"po\"\"sts\" (\"s\" TEXT DEFAULT '' NOT NULL, \"m\" JSON DEFAULT '[]' NOT NULL, \"t\" TEXT DEFAULT '' NOT NULL)"
        );
    }
}
