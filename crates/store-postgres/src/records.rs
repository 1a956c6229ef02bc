//! Records in and out of collection tables on PostgreSQL: canonical JSON values ↔ column
//! values per field type, paged reads, and the write path (create, update, delete with
//! relation cascades and the auth bookkeeping rows of deleted auth records, relation existence
//! checks, unique violations mapped to field errors). Every function runs on a connection the
//! caller has put inside a transaction when it writes.

use std::collections::HashSet;
use std::sync::Arc;

use domain::collection::{AUTH_RECORD_DEPENDENTS, Collection, Schema};
use domain::error::{FieldError, ValidationErrors};
use domain::field::{Field, FieldKind};
use domain::index::IndexDef;
use domain::record::{Record, RecordData, number_to_json};
use domain::sql::{SqlFragment, quote_ident};
use domain::storage::stored_field_value;
use domain::{ChangeAction, RecordPage, RecordQuery, StoreError, WriteError, WriteOp, WriteResult};
use serde_json::Value;
use tokio_postgres::Row;
use tokio_postgres::error::SqlState;

use crate::Conn;
use crate::changelog;
use crate::ddl::ROWID;
use crate::sql::{Param, Statement, internal};

/// Runs `statement`, through the connection's statement cache when `cached` (only for SQL
/// whose shape is bounded by the schema, never by a client's filter).
pub(crate) async fn query(
    conn: &Conn,
    statement: &Statement,
    cached: bool,
) -> Result<Vec<Row>, tokio_postgres::Error> {
    let params = statement.refs();
    if cached {
        let prepared = conn.prepare_cached(&statement.sql).await?;
        conn.query(&prepared, &params).await
    } else {
        conn.query(statement.sql.as_str(), &params).await
    }
}

async fn execute(
    conn: &Conn,
    statement: &Statement,
    cached: bool,
) -> Result<u64, tokio_postgres::Error> {
    let params = statement.refs();
    if cached {
        let prepared = conn.prepare_cached(&statement.sql).await?;
        conn.execute(&prepared, &params).await
    } else {
        conn.execute(statement.sql.as_str(), &params).await
    }
}

/// One page of a collection. With a total, both queries read one snapshot, so they agree;
/// `in_transaction` says the caller already holds one (an interactive transaction).
pub(crate) async fn list(
    conn: &Conn,
    query: &RecordQuery,
    in_transaction: bool,
) -> Result<RecordPage, StoreError> {
    let snapshot = query.with_total && !in_transaction;
    if snapshot {
        conn.begin("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
            .await
            .map_err(internal)?;
    }
    let page = list_in(conn, query).await;
    if snapshot {
        let end = if page.is_ok() { "COMMIT" } else { "ROLLBACK" };
        conn.end(end).await.map_err(internal)?;
    }
    page
}

async fn list_in(conn: &Conn, query: &RecordQuery) -> Result<RecordPage, StoreError> {
    let collection = &query.collection;
    let table = quote_ident(&collection.name);
    let mut statement = Statement::new(format!("SELECT {} FROM {table}", select_list(collection)));
    let filter = SqlFragment::and_all(query.filters.clone());
    if let Some(filter) = &filter {
        statement.push(" WHERE ").push_fragment(filter);
    }
    let mut order: Vec<String> = Vec::new();
    for term in &query.sort {
        let mut piece = Statement {
            params: std::mem::take(&mut statement.params),
            ..Statement::default()
        };
        piece.push_fragment(&term.expr);
        statement.params = piece.params;
        // NULL first going up, last going down, as SQLite sorts it.
        let direction = if term.descending {
            "DESC NULLS LAST"
        } else {
            "ASC NULLS FIRST"
        };
        order.push(format!("{} {direction}", piece.sql));
    }
    // Ties keep insertion order, so pages never overlap.
    if !collection.is_view() {
        order.push(format!("{table}.{}", quote_ident(ROWID)));
    }
    if !order.is_empty() {
        statement.push(" ORDER BY ").push(&order.join(", "));
    }
    if query.per_page > 0 {
        statement
            .push(" LIMIT ")
            .bind(i64::try_from(query.per_page).unwrap_or(i64::MAX));
    }
    let offset = query
        .page
        .saturating_sub(1)
        .saturating_mul(query.per_page)
        .min(i64::MAX as u64) as i64;
    statement.push(" OFFSET ").bind(offset);
    let rows = query_rows(conn, &statement, collection).await?;
    let total = if query.with_total {
        let mut count = Statement::new(format!("SELECT COUNT(*) FROM {table}"));
        if let Some(filter) = &filter {
            count.push(" WHERE ").push_fragment(filter);
        }
        let rows = self::query(conn, &count, false).await.map_err(internal)?;
        let n: i64 = rows
            .first()
            .map(|row| row.try_get(0))
            .transpose()
            .map_err(internal)?
            .unwrap_or(0);
        Some(n.max(0) as u64)
    } else {
        None
    };
    Ok(RecordPage { items: rows, total })
}

async fn query_rows(
    conn: &Conn,
    statement: &Statement,
    collection: &Collection,
) -> Result<Vec<Record>, StoreError> {
    let rows = query(conn, statement, false).await.map_err(internal)?;
    rows.iter()
        .map(|row| read_record(row, collection))
        .collect::<Result<Vec<_>, _>>()
        .map_err(internal)
}

/// One record by id that satisfies every filter. A filter that runs out of time does not
/// hold.
pub(crate) async fn get(
    conn: &Conn,
    collection: &Collection,
    id: &str,
    filters: Vec<SqlFragment>,
) -> Result<Option<Record>, StoreError> {
    let filter = SqlFragment::and_all(filters);
    match load(conn, collection, id, filter.as_ref()).await {
        Err(StoreError::TimedOut) if filter.is_some() => Ok(None),
        loaded => loaded,
    }
}

/// Whether record `id` exists and satisfies every filter; an interrupted check is `TimedOut`.
pub(crate) async fn satisfies(
    conn: &Conn,
    collection: &Collection,
    id: &str,
    filters: Vec<SqlFragment>,
) -> Result<bool, StoreError> {
    let filter = SqlFragment::and_all(filters);
    Ok(load(conn, collection, id, filter.as_ref()).await?.is_some())
}

/// The row an update or delete works on: `NotFound` when it is missing or `guard` does not
/// hold for it, including when the guard could not be decided before the deadline.
async fn guarded_load(
    conn: &Conn,
    collection: &Collection,
    id: &str,
    guard: Option<&SqlFragment>,
) -> Result<Record, StoreError> {
    match load(conn, collection, id, guard).await {
        Ok(Some(record)) => Ok(record),
        Ok(None) => Err(StoreError::NotFound),
        Err(StoreError::TimedOut) if guard.is_some() => Err(StoreError::NotFound),
        Err(error) => Err(error),
    }
}

/// Runs every operation in order on a connection inside a transaction, stopping at the first
/// failure; undoing what ran before it is the caller's (a rollback or a savepoint).
pub(crate) async fn run_ops(
    conn: &Conn,
    schema: &Schema,
    ops: Vec<WriteOp>,
) -> Result<Vec<WriteResult>, WriteError> {
    let mut results = Vec::with_capacity(ops.len());
    for (index, op) in ops.into_iter().enumerate() {
        match run_op(conn, schema, op).await {
            Ok(result) => results.push(result),
            Err(error) => return Err(WriteError { index, error }),
        }
    }
    Ok(results)
}

/// Deletes every record of a collection, one by one so relation cascades apply.
pub(crate) async fn truncate(
    conn: &Conn,
    schema: &Schema,
    collection: &Collection,
) -> Result<(), StoreError> {
    if collection.is_view() {
        return Err(StoreError::Schema(
            "view collections have no records to delete".into(),
        ));
    }
    let statement = Statement::new(format!(
        "SELECT {} FROM {} ORDER BY {}",
        quote_ident("id"),
        quote_ident(&collection.name),
        quote_ident(ROWID)
    ));
    let ids: Vec<String> = query(conn, &statement, false)
        .await
        .map_err(internal)?
        .iter()
        .map(|row| row.try_get(0))
        .collect::<Result<_, _>>()
        .map_err(internal)?;
    let mut deleted = HashSet::new();
    for id in ids {
        // A cascade from an earlier record may already have removed this one.
        if !deleted.contains(&(collection.id.clone(), id.clone())) {
            deleted.extend(delete_with_cascade(conn, schema, collection, &id).await?);
        }
    }
    Ok(())
}

async fn run_op(conn: &Conn, schema: &Schema, op: WriteOp) -> Result<WriteResult, StoreError> {
    match op {
        WriteOp::Create {
            collection,
            data,
            guard,
        } => create(conn, schema, &collection, data, guard.as_ref())
            .await
            .map(WriteResult::Created),
        WriteOp::Update {
            collection,
            id,
            mut guard,
            mut apply,
            mut known,
        } => {
            refuse_view(&collection)?;
            // No marks here: the row is always read, under the rule's guard.
            domain::resolve_update_guard(&mut guard, known.as_mut());
            let current = guarded_load(conn, &collection, &id, guard.as_ref()).await?;
            let mut new_data = apply(&current)?;
            // Values the update did not mention stay as they are; the key never changes.
            let mut data = current.data.clone();
            for field in &collection.fields {
                if field.is_primary_key() {
                    continue;
                }
                if let Some(value) = new_data.remove(&field.name) {
                    data.insert(field.name.clone(), value);
                }
            }
            check_text(&collection, &data)?;
            check_relations(conn, schema, &collection, &data).await?;
            update_row(conn, &collection, current.id(), &data).await?;
            let updated = load(conn, &collection, current.id(), None)
                .await?
                .ok_or_else(|| StoreError::Internal("updated record vanished".into()))?;
            changelog::append(conn, &collection, &updated, ChangeAction::Update).await?;
            Ok(WriteResult::Updated(updated))
        }
        WriteOp::Delete {
            collection,
            id,
            guard,
        } => {
            refuse_view(&collection)?;
            let record = guarded_load(conn, &collection, &id, guard.as_ref()).await?;
            let cascaded = delete_with_cascade(conn, schema, &collection, record.id())
                .await?
                .into_iter()
                .filter(|(collection_id, id)| {
                    !(collection_id == &collection.id && id == record.id())
                })
                .collect();
            Ok(WriteResult::Deleted { record, cascaded })
        }
    }
}

async fn create(
    conn: &Conn,
    schema: &Schema,
    collection: &Collection,
    mut data: RecordData,
    guard: Option<&SqlFragment>,
) -> Result<Record, StoreError> {
    refuse_view(collection)?;
    let id = match data.get("id").and_then(Value::as_str) {
        Some(id) if !id.is_empty() => id.to_owned(),
        _ => {
            let id = domain::ids::new_record_id();
            data.insert("id".into(), Value::String(id.clone()));
            id
        }
    };
    check_text(collection, &data)?;
    check_relations(conn, schema, collection, &data).await?;
    let columns: Vec<String> = collection
        .fields
        .iter()
        .map(|f| quote_ident(&f.name))
        .collect();
    let mut statement = Statement::new(format!(
        "INSERT INTO {} ({}) VALUES (",
        quote_ident(&collection.name),
        columns.join(", ")
    ));
    for (i, field) in collection.fields.iter().enumerate() {
        if i > 0 {
            statement.push(", ");
        }
        statement.bind(stored(field, data.get(&field.name)));
    }
    statement.push(")");
    execute(conn, &statement, true)
        .await
        .map_err(|e| write_error(e, collection))?;
    if let Some(guard) = guard {
        let table = quote_ident(&collection.name);
        let mut check = Statement::new(format!(
            "SELECT 1 FROM {table} WHERE {table}.{} = ",
            quote_ident("id")
        ));
        check
            .bind(id.as_str())
            .push(" AND (")
            .push_fragment(guard)
            .push(")");
        let found = query(conn, &check, false).await.map_err(internal)?;
        if found.is_empty() {
            return Err(StoreError::GuardRejected);
        }
    }
    let created = load(conn, collection, &id, None)
        .await?
        .ok_or_else(|| StoreError::Internal("created record vanished".into()))?;
    changelog::append(conn, collection, &created, ChangeAction::Create).await?;
    Ok(created)
}

fn refuse_view(collection: &Collection) -> Result<(), StoreError> {
    if collection.is_view() {
        Err(StoreError::Schema(format!(
            "view collection {:?} is read-only",
            collection.name
        )))
    } else {
        Ok(())
    }
}

/// PostgreSQL text cannot hold the NUL character (SQLite's can): refused as a field error
/// rather than failing in the driver.
fn check_text(collection: &Collection, data: &RecordData) -> Result<(), StoreError> {
    let mut errors = ValidationErrors::new();
    for field in &collection.fields {
        if let Some(value) = data.get(&field.name)
            && holds_nul(value)
        {
            errors.add(
                &field.name,
                FieldError::new(
                    "validation_invalid_character",
                    "The value must not contain the NUL character.",
                ),
            );
        }
    }
    errors.into_result().map_err(StoreError::Validation)
}

fn holds_nul(value: &Value) -> bool {
    match value {
        Value::String(s) => s.contains('\0'),
        Value::Array(items) => items.iter().any(holds_nul),
        Value::Object(map) => map.iter().any(|(k, v)| k.contains('\0') || holds_nul(v)),
        _ => false,
    }
}

async fn update_row(
    conn: &Conn,
    collection: &Collection,
    id: &str,
    data: &RecordData,
) -> Result<(), StoreError> {
    let fields: Vec<&Field> = collection
        .fields
        .iter()
        .filter(|f| !f.is_primary_key())
        .collect();
    if fields.is_empty() {
        return Ok(());
    }
    let mut statement = Statement::new(format!("UPDATE {} SET ", quote_ident(&collection.name)));
    for (i, field) in fields.iter().enumerate() {
        if i > 0 {
            statement.push(", ");
        }
        statement
            .push(&format!("{} = ", quote_ident(&field.name)))
            .bind(stored(field, data.get(&field.name)));
    }
    statement
        .push(&format!(" WHERE {} = ", quote_ident("id")))
        .bind(id);
    execute(conn, &statement, true)
        .await
        .map_err(|e| write_error(e, collection))?;
    Ok(())
}

/// Deletes a record and applies relation cascades: records reaching it through a
/// `cascadeDelete` relation are deleted too (transitively); other references are cleared,
/// unless the field is required and would become empty, which blocks the whole delete.
/// Returns every deleted `(collection id, record id)`.
async fn delete_with_cascade(
    conn: &Conn,
    schema: &Schema,
    collection: &Collection,
    id: &str,
) -> Result<HashSet<(String, String)>, StoreError> {
    // First the full set of records to delete, so a reference from a record that is itself
    // being deleted never blocks or gets rewritten.
    let mut doomed: Vec<(Arc<Collection>, String)> = Vec::new();
    let mut seen: HashSet<(String, String)> = HashSet::new();
    let start = schema
        .get_by_id(&collection.id)
        .cloned()
        .unwrap_or_else(|| Arc::new(collection.clone()));
    seen.insert((start.id.clone(), id.to_owned()));
    doomed.push((start, id.to_owned()));
    let mut next = 0;
    while next < doomed.len() {
        let (target, target_id) = doomed[next].clone();
        next += 1;
        if target.is_auth() {
            for (dependent, dependent_id) in
                auth_dependents(conn, schema, &target.id, &target_id).await?
            {
                if seen.insert((dependent.id.clone(), dependent_id.clone())) {
                    doomed.push((dependent, dependent_id));
                }
            }
        }
        for (referrer, field) in schema.referencing(&target.id) {
            if referrer.is_view() || !is_cascading(field) {
                continue;
            }
            for (referrer_id, _) in referencing_rows(conn, referrer, field, &target_id).await? {
                if seen.insert((referrer.id.clone(), referrer_id.clone())) {
                    doomed.push((Arc::clone(referrer), referrer_id));
                }
            }
        }
    }
    for (target, target_id) in &doomed {
        for (referrer, field) in schema.referencing(&target.id) {
            if referrer.is_view() || is_cascading(field) {
                continue;
            }
            for (referrer_id, value) in referencing_rows(conn, referrer, field, target_id).await? {
                if seen.contains(&(referrer.id.clone(), referrer_id.clone())) {
                    continue;
                }
                let remaining = without_id(field, &value, target_id);
                let empty = match &remaining {
                    Value::Array(items) => items.is_empty(),
                    Value::String(s) => s.is_empty(),
                    _ => true,
                };
                if field.is_required() && empty {
                    return Err(StoreError::RequiredReference);
                }
                unlink(conn, referrer, field, &referrer_id, &remaining).await?;
                // A cleared reference is an update of the referring record like any other.
                if let Some(unlinked) = load(conn, referrer, &referrer_id, None).await? {
                    changelog::append(conn, referrer, &unlinked, ChangeAction::Update).await?;
                }
            }
        }
    }
    for (target, target_id) in &doomed {
        let Some(last_state) = load(conn, target, target_id, None).await? else {
            continue;
        };
        let mut statement = Statement::new(format!(
            "DELETE FROM {} WHERE {} = ",
            quote_ident(&target.name),
            quote_ident("id")
        ));
        statement.bind(target_id.as_str());
        execute(conn, &statement, true).await.map_err(internal)?;
        changelog::append(conn, target, &last_state, ChangeAction::Delete).await?;
    }
    Ok(seen)
}

/// The rows of the system collections that belong to the auth record `record_id` of
/// `collection_id`: they go with it, in the same transaction.
async fn auth_dependents(
    conn: &Conn,
    schema: &Schema,
    collection_id: &str,
    record_id: &str,
) -> Result<Vec<(Arc<Collection>, String)>, StoreError> {
    let mut found = Vec::new();
    for dependent in AUTH_RECORD_DEPENDENTS {
        let Some(dependent) = schema.get_by_id(dependent) else {
            continue;
        };
        let mut statement = Statement::new(format!(
            "SELECT {} FROM {} WHERE {} = ",
            quote_ident("id"),
            quote_ident(&dependent.name),
            quote_ident("collectionRef"),
        ));
        statement
            .bind(collection_id)
            .push(&format!(" AND {} = ", quote_ident("recordRef")))
            .bind(record_id);
        for row in query(conn, &statement, true).await.map_err(internal)? {
            found.push((Arc::clone(dependent), row.try_get(0).map_err(internal)?));
        }
    }
    Ok(found)
}

fn is_cascading(field: &Field) -> bool {
    matches!(&field.kind, FieldKind::Relation(o) if o.cascade_delete)
}

/// `(id, raw field value)` of every record of `referrer` whose `field` holds `target_id`.
async fn referencing_rows(
    conn: &Conn,
    referrer: &Collection,
    field: &Field,
    target_id: &str,
) -> Result<Vec<(String, Value)>, StoreError> {
    let table = quote_ident(&referrer.name);
    let column = format!("{table}.{}", quote_ident(&field.name));
    let mut statement = Statement::new(format!(
        "SELECT {table}.{}, {column} FROM {table} WHERE ",
        quote_ident("id")
    ));
    if field.is_multiple() {
        statement
            .push(&format!("{column} @> jsonb_build_array(CAST("))
            .bind(target_id)
            .push(" AS text))");
    } else {
        statement.push(&format!("{column} = ")).bind(target_id);
    }
    let rows = query(conn, &statement, true).await.map_err(internal)?;
    rows.iter()
        .map(|row| Ok((row.try_get(0)?, column_json(field, row, 1)?)))
        .collect::<Result<_, tokio_postgres::Error>>()
        .map_err(internal)
}

fn without_id(field: &Field, value: &Value, id: &str) -> Value {
    if field.is_multiple() {
        match value {
            Value::Array(items) => Value::Array(
                items
                    .iter()
                    .filter(|v| v.as_str() != Some(id))
                    .cloned()
                    .collect(),
            ),
            _ => Value::Array(Vec::new()),
        }
    } else {
        Value::String(String::new())
    }
}

/// Stores a referencing record's reduced relation value, touching its `updated`-style
/// autodate fields as any other update would.
async fn unlink(
    conn: &Conn,
    referrer: &Collection,
    field: &Field,
    referrer_id: &str,
    remaining: &Value,
) -> Result<(), StoreError> {
    let mut statement = Statement::new(format!(
        "UPDATE {} SET {} = ",
        quote_ident(&referrer.name),
        quote_ident(&field.name)
    ));
    statement.bind(stored(field, Some(remaining)));
    let now = domain::time::now();
    for autodate in referrer
        .fields
        .iter()
        .filter(|f| matches!(&f.kind, FieldKind::Autodate(o) if o.on_update))
    {
        statement
            .push(&format!(", {} = ", quote_ident(&autodate.name)))
            .bind(now.as_str());
    }
    statement
        .push(&format!(" WHERE {} = ", quote_ident("id")))
        .bind(referrer_id);
    execute(conn, &statement, true)
        .await
        .map_err(|e| write_error(e, referrer))?;
    Ok(())
}

/// Every id in a relation field must name an existing record of the target collection.
async fn check_relations(
    conn: &Conn,
    schema: &Schema,
    collection: &Collection,
    data: &RecordData,
) -> Result<(), StoreError> {
    let mut errors = ValidationErrors::new();
    for field in &collection.fields {
        let FieldKind::Relation(options) = &field.kind else {
            continue;
        };
        let mut ids: Vec<&str> = match data.get(&field.name) {
            Some(Value::String(id)) => vec![id.as_str()],
            Some(Value::Array(items)) => items.iter().filter_map(Value::as_str).collect(),
            _ => Vec::new(),
        };
        ids.retain(|id| !id.is_empty());
        ids.sort_unstable();
        ids.dedup();
        if ids.is_empty() {
            continue;
        }
        let found = match schema.get_by_id(&options.collection_id) {
            Some(target) => {
                let mut statement = Statement::new(format!(
                    "SELECT COUNT(*) FROM {table} WHERE {table}.{id} IN (SELECT jsonb_array_elements_text(",
                    table = quote_ident(&target.name),
                    id = quote_ident("id")
                ));
                let list = serde_json::to_string(&ids).unwrap_or_else(|_| "[]".into());
                statement.bind(list).push("::jsonb))");
                let rows = query(conn, &statement, true).await.map_err(internal)?;
                rows.first()
                    .map(|row| row.try_get::<_, i64>(0))
                    .transpose()
                    .map_err(internal)?
                    .unwrap_or(0)
            }
            None => 0,
        };
        if found != ids.len() as i64 {
            errors.add(
                &field.name,
                FieldError::new(
                    "validation_missing_rel_records",
                    "Failed to find all relation records with the provided ids.",
                ),
            );
        }
    }
    errors.into_result().map_err(StoreError::Validation)
}

/// Maps a driver error of a record write: unique violations become field errors on the
/// columns of the violated index (the primary key's is `id`); anything else is internal.
fn write_error(error: tokio_postgres::Error, collection: &Collection) -> StoreError {
    if let Some(db) = error.as_db_error()
        && *db.code() == SqlState::UNIQUE_VIOLATION
    {
        let columns: Option<Vec<String>> = match db.constraint() {
            Some(name) if name.ends_with("_pkey") => Some(vec!["id".to_owned()]),
            Some(name) => collection
                .indexes
                .iter()
                .filter_map(|text| IndexDef::parse(text).ok())
                .find(|def| def.name == name)
                .and_then(|def| {
                    def.unique_columns()
                        .map(|columns| columns.into_iter().map(str::to_owned).collect())
                }),
            None => None,
        };
        if let Some(columns) = columns.filter(|c| !c.is_empty()) {
            let mut errors = ValidationErrors::new();
            for column in columns {
                let name = collection
                    .fields
                    .iter()
                    .find(|f| f.name.eq_ignore_ascii_case(&column))
                    .map_or(column, |f| f.name.clone());
                errors.add(&name, FieldError::not_unique());
            }
            return StoreError::Validation(errors);
        }
    }
    internal(error)
}

/// Loads one record by id, if it satisfies `filter`.
pub(crate) async fn load(
    conn: &Conn,
    collection: &Collection,
    id: &str,
    filter: Option<&SqlFragment>,
) -> Result<Option<Record>, StoreError> {
    let table = quote_ident(&collection.name);
    let mut statement = Statement::new(format!(
        "SELECT {} FROM {table} WHERE {table}.{} = ",
        select_list(collection),
        quote_ident("id")
    ));
    statement.bind(id);
    if let Some(filter) = filter {
        statement.push(" AND (").push_fragment(filter).push(")");
    }
    let rows = query(conn, &statement, filter.is_none())
        .await
        .map_err(internal)?;
    rows.first()
        .map(|row| read_record(row, collection))
        .transpose()
        .map_err(internal)
}

/// `"t"."f1", "t"."f2", …` in field order. A view's columns are cast to the form its fields
/// are read in (its query may compute them in any type).
pub(crate) fn select_list(collection: &Collection) -> String {
    let table = quote_ident(&collection.name);
    let columns: Vec<String> = collection
        .fields
        .iter()
        .map(|f| {
            let column = format!("{table}.{}", quote_ident(&f.name));
            if collection.is_view() {
                read_cast(f, &column)
            } else {
                column
            }
        })
        .collect();
    if columns.is_empty() {
        "NULL".to_owned()
    } else {
        columns.join(", ")
    }
}

/// `column` converted to the type a field of `field`'s kind is read as.
pub(crate) fn read_cast(field: &Field, column: &str) -> String {
    match &field.kind {
        FieldKind::Number(_) => format!("CAST({column} AS double precision)"),
        FieldKind::Bool(_) => format!("CAST({column} AS boolean)"),
        FieldKind::Json(_) | FieldKind::GeoPoint(_) => format!("to_jsonb({column})"),
        _ if field.is_multiple() => format!("to_jsonb({column})"),
        _ => format!("CAST({column} AS text)"),
    }
}

pub(crate) fn read_record(
    row: &Row,
    collection: &Collection,
) -> Result<Record, tokio_postgres::Error> {
    domain::record::try_record_of(&collection.fields, |i, field| column_json(field, row, i))
        .map(Record::new)
}

/// The canonical JSON value of column `i` of `row`, read as `field`'s kind.
fn column_json(field: &Field, row: &Row, i: usize) -> Result<Value, tokio_postgres::Error> {
    Ok(match &field.kind {
        FieldKind::Number(_) => row
            .try_get::<_, Option<f64>>(i)?
            .map_or(Value::from(0), number_to_json),
        FieldKind::Bool(_) => Value::Bool(row.try_get::<_, Option<bool>>(i)?.unwrap_or(false)),
        FieldKind::Json(_) => row.try_get::<_, Option<Value>>(i)?.unwrap_or(Value::Null),
        FieldKind::GeoPoint(_) => match row.try_get::<_, Option<Value>>(i)? {
            // jsonb keeps keys in its own order; a point reads as `{lon, lat}`.
            Some(Value::Object(point)) => {
                let mut ordered = serde_json::Map::new();
                for key in ["lon", "lat"] {
                    if let Some(v) = point.get(key) {
                        ordered.insert(key.to_owned(), v.clone());
                    }
                }
                for (key, v) in point {
                    if !ordered.contains_key(&key) {
                        ordered.insert(key, v);
                    }
                }
                Value::Object(ordered)
            }
            _ => field.zero_value(),
        },
        _ if field.is_multiple() => match row.try_get::<_, Option<Value>>(i)? {
            Some(items @ Value::Array(_)) => items,
            Some(Value::String(s)) if !s.is_empty() => Value::Array(vec![Value::String(s)]),
            _ => Value::Array(Vec::new()),
        },
        _ => Value::String(row.try_get::<_, Option<String>>(i)?.unwrap_or_default()),
    })
}

/// The value bound for a field's value (its zero value when absent), in the one format
/// `domain::storage` defines; [`Param`] adapts it to the column's type.
pub(crate) fn stored(field: &Field, value: Option<&Value>) -> Param {
    Param::from(stored_field_value(field, value))
}
