//! Records in and out of collection tables: canonical JSON values ↔ SQL values per field
//! type, paged reads, and the write path (create, update, delete with relation cascades and
//! the auth bookkeeping rows of deleted auth records, relation existence checks, unique
//! violations mapped to field errors).

use std::collections::HashSet;
use std::sync::Arc;

use domain::collection::{AUTH_RECORD_DEPENDENTS, Collection, Schema};
use domain::error::{FieldError, ValidationErrors};
use domain::field::{Field, FieldKind};
use domain::index::IndexDef;
use domain::record::{Record, RecordData, number_to_json};
use domain::sql::{SqlFragment, SqlValue, push_quoted_ident, quote_ident};
use domain::storage::{ColumnType, stored_field_value};
use domain::{ChangeAction, RecordPage, RecordQuery, StoreError, WriteError, WriteOp, WriteResult};
use rusqlite::types::{Value as SqlOut, ValueRef};
use rusqlite::{Connection, OptionalExtension, Row, TransactionBehavior, params_from_iter};
use serde_json::Value;

use crate::auth_cache::AuthCache;
use crate::counts::Counts;
use crate::{changelog, internal};

/// One page of a collection, read in one snapshot (a deferred read transaction), so the
/// total and the items agree. Only on reader connections: the total may come from the
/// reader's count cache (`count_cache`).
pub(crate) fn list(
    conn: &mut Connection,
    query: &RecordQuery,
    counts: &Counts,
) -> Result<RecordPage, StoreError> {
    if !query.with_total {
        // Without a count the page is one statement, which reads one snapshot on its own.
        return list_in(conn, query, Some(counts));
    }
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Deferred)
        .map_err(internal)?;
    let page = list_in(&tx, query, Some(counts))?;
    tx.commit().map_err(internal)?;
    Ok(page)
}

/// The page query of [`list_in`] and its bound values.
pub(crate) fn page_sql(query: &RecordQuery, filter: Option<&SqlFragment>) -> (String, Vec<SqlOut>) {
    let collection = &query.collection;
    let mut sql = select_from(collection);
    let mut params: Vec<SqlOut> = Vec::new();
    if let Some(filter) = filter {
        sql.push_str(" WHERE ");
        sql.push_str(&filter.sql);
        params.extend(filter.params.iter().map(bind));
    }
    if !query.sort.is_empty() {
        let terms: Vec<String> = query
            .sort
            .iter()
            .map(|term| {
                params.extend(term.expr.params.iter().map(bind));
                let direction = if term.descending { "DESC" } else { "ASC" };
                format!("{} {direction}", term.expr.sql)
            })
            .collect();
        sql.push_str(" ORDER BY ");
        sql.push_str(&terms.join(", "));
        // No tie-break: ties come in the order SQLite's plan gives them, as on PocketBase,
        // which sorts by the requested terms alone (observed on 0.40.6: with an index on
        // `score`, `sort=-score` gives equal scores newest first, the index walked backwards;
        // without one, oldest first, the sorter keeping scan order). A `rowid` term after
        // them made SQLite sort every group of equal keys in a temporary B-tree even when an
        // index gives the order. Pages still never overlap: the plan of one statement (the
        // page size is in its text, the offset bound) is fixed, and SQLite's sorter breaks
        // ties by scan order.
    }
    // Without a sort, no order either: rows come in the plan's order, as on PocketBase, which
    // adds none (observed on 0.40.6: a table scan gives insertion order, a filter SQLite
    // answers through an index that index's order). Pages do not overlap: one statement has
    // one plan (the page size is in its text, the offset bound).
    let limit = if query.per_page == 0 {
        -1
    } else {
        i64::try_from(query.per_page).unwrap_or(i64::MAX)
    };
    let offset = query
        .page
        .saturating_sub(1)
        .saturating_mul(query.per_page)
        .min(i64::MAX as u64) as i64;
    sql.push_str(&limit_clause(limit));
    sql.push_str(" OFFSET ?");
    params.push(SqlOut::Integer(offset));
    (sql, params)
}

/// ` LIMIT n` with the number written into the SQL, so the planner knows the page size (an
/// `ORDER BY … LIMIT 20` can walk an index and stop). With the query planner stability
/// guarantee every connection runs under (`configure`), a bound `LIMIT ?` would be planned as
/// unknown. The number is an integer this code computed, never client text, and the few page
/// sizes clients use make few distinct statements.
pub(crate) fn limit_clause(limit: i64) -> String {
    format!(" LIMIT {limit}")
}

/// One page of a collection, read on a connection already inside a transaction (the snapshot
/// `list` opens, or an interactive transaction, which sees its own uncommitted rows).
/// `counts`: the total may be answered by the store's kept counts (`counts`) or the reader's
/// count cache (`count_cache`); never on the writer's connection, whose own uncommitted writes
/// neither would see.
pub(crate) fn list_in(
    conn: &Connection,
    query: &RecordQuery,
    counts: Option<&Counts>,
) -> Result<RecordPage, StoreError> {
    let collection = &query.collection;
    let table = quote_ident(&collection.name);
    let filter = SqlFragment::and_all(query.filters.clone());
    let (sql, params) = page_sql(query, filter.as_ref());
    let items = {
        let mut stmt = conn.prepare_cached(&sql).map_err(internal)?;
        let rows = stmt
            .query_map(params_from_iter(params), |row| read_record(row, collection))
            .map_err(internal)?;
        rows.collect::<Result<Vec<_>, _>>().map_err(internal)?
    };
    let total = if query.with_total {
        let mut count_sql = format!("SELECT COUNT(*) FROM {table}");
        let mut count_params = Vec::new();
        if let Some(filter) = &filter {
            count_sql.push_str(" WHERE ");
            count_sql.push_str(&filter.sql);
            count_params.extend(filter.params.iter().map(bind));
        }
        let local = !collection.is_view()
            && crate::counts::row_local(filter.as_ref().map(|f| f.sql.as_str()));
        let n: i64 = if let Some(counts) = counts.filter(|_| local) {
            counts.count(
                conn,
                collection,
                &count_sql,
                filter.as_ref().map(|f| f.sql.as_str()),
                count_params,
            )
        } else if counts.is_some() {
            crate::count_cache::count(conn, &count_sql, count_params)
        } else {
            conn.prepare_cached(&count_sql)
                .and_then(|mut stmt| stmt.query_row(params_from_iter(count_params), |r| r.get(0)))
        }
        .map_err(internal)?;
        Some(n.max(0) as u64)
    } else {
        None
    };
    Ok(RecordPage { items, total })
}

/// One record by id that satisfies every filter. Filters not decided before the query
/// timeout interrupted them do not hold, as a rule lookup that fails in PocketBase hides the
/// record (its view, update and delete answer 404).
pub(crate) fn get(
    conn: &Connection,
    collection: &Collection,
    id: &str,
    filters: Vec<SqlFragment>,
) -> Result<Option<Record>, StoreError> {
    let filter = SqlFragment::and_all(filters);
    match load(conn, collection, id, filter.as_ref()) {
        Err(error) if filter.is_some() && crate::is_interrupt(&error) => Ok(None),
        loaded => loaded.map_err(internal),
    }
}

/// Whether record `id` exists and satisfies every filter; an interrupted check is
/// `TimedOut`, never an answer, so callers that must fail closed can.
pub(crate) fn satisfies(
    conn: &Connection,
    collection: &Collection,
    id: &str,
    filters: Vec<SqlFragment>,
) -> Result<bool, StoreError> {
    let filter = SqlFragment::and_all(filters);
    match load(conn, collection, id, filter.as_ref()) {
        Ok(found) => Ok(found.is_some()),
        Err(error) if crate::is_interrupt(&error) => Err(StoreError::TimedOut),
        Err(error) => Err(internal(error)),
    }
}

/// The row an update or delete works on: `NotFound` when it is missing or `guard` does not
/// hold for it, including when the guard could not be decided before the deadline.
fn guarded_load(
    conn: &Connection,
    collection: &Collection,
    id: &str,
    guard: Option<&SqlFragment>,
) -> Result<Record, StoreError> {
    match load(conn, collection, id, guard) {
        Ok(Some(record)) => Ok(record),
        Ok(None) => Err(StoreError::NotFound),
        Err(error) if guard.is_some() && crate::is_interrupt(&error) => Err(StoreError::NotFound),
        Err(error) => Err(internal(error)),
    }
}

/// Runs every operation in order on a connection already inside a transaction, stopping at
/// the first failure; undoing what ran before it is the caller's (a rollback or a savepoint).
///
/// `marks`, when given, lets an update whose caller read its row under a mark
/// ([`domain::KnownRow`]) skip reading it again while the mark shows it unchanged
/// (`row_marks.rs`); without it every update reads its row.
pub(crate) fn run_ops(
    conn: &Connection,
    schema: &Schema,
    ops: &mut [WriteOp],
    marks: Option<&AuthCache>,
) -> Result<Vec<WriteResult>, WriteError> {
    let mut results = Vec::with_capacity(ops.len());
    for (index, op) in ops.iter_mut().enumerate() {
        match run_op(conn, schema, op, marks) {
            Ok(result) => results.push(result),
            Err(error) => return Err(WriteError { index, error }),
        }
    }
    Ok(results)
}

/// Deletes every record of a collection, one by one so relation cascades apply.
pub(crate) fn truncate(
    conn: &Connection,
    schema: &Schema,
    collection: &Collection,
) -> Result<(), StoreError> {
    if collection.is_view() {
        return Err(StoreError::Schema(
            "view collections have no records to delete".into(),
        ));
    }
    let ids: Vec<String> = {
        let mut stmt = conn
            .prepare(&format!(
                "SELECT {} FROM {}",
                quote_ident("id"),
                quote_ident(&collection.name)
            ))
            .map_err(internal)?;
        let rows = stmt.query_map([], |r| r.get(0)).map_err(internal)?;
        rows.collect::<Result<_, _>>().map_err(internal)?
    };
    let mut deleted = HashSet::new();
    for id in ids {
        // A cascade from an earlier record may already have removed this one.
        if !deleted.contains(&(collection.id.clone(), id.clone())) {
            deleted.extend(delete_with_cascade(conn, schema, collection, &id)?);
        }
    }
    Ok(())
}

/// Runs one operation; it stays as it was, so that it can run again (a group of writes that
/// runs again after one of them failed, see `group.rs`).
fn run_op(
    conn: &Connection,
    schema: &Schema,
    op: &mut WriteOp,
    marks: Option<&AuthCache>,
) -> Result<WriteResult, StoreError> {
    match op {
        WriteOp::Create {
            collection,
            data,
            guard,
        } => create(conn, schema, collection, data, guard.as_ref()).map(WriteResult::Created),
        WriteOp::Update {
            collection,
            id,
            guard,
            apply,
            known,
        } => {
            refuse_view(collection)?;
            if let (Some(known), Some(marks)) = (known.as_mut(), marks)
                && Arc::ptr_eq(&known.mark.collection, collection)
                && is_current(schema, collection)
                && marks.row_unchanged(&known.mark, &collection.name)
                && let Some(updated) =
                    update_known(conn, schema, collection, id, guard.as_ref(), apply, known)?
            {
                return Ok(WriteResult::Updated(updated));
            }
            // The long way checks the rule on the row as stored.
            domain::resolve_update_guard(guard, known.as_mut());
            let collection = &**collection;
            let current = guarded_load(conn, collection, id, guard.as_ref())?;
            let update = apply(&current)?;
            let id = current.id().to_owned();
            let kept = kept_relations(collection, &current.data, &update);
            let data = merged(collection, current.data, update);
            check_relations(conn, schema, collection, &data, |name| kept.contains(&name))?;
            let written = update_row(conn, collection, &id, None, None, &data)?.1;
            let updated = match written {
                Some(record) => record,
                None => load(conn, collection, &id, None)
                    .map_err(internal)?
                    .ok_or_else(|| StoreError::Internal("updated record vanished".into()))?,
            };
            changelog::append(conn, collection, &updated, ChangeAction::Update)?;
            Ok(WriteResult::Updated(updated))
        }
        WriteOp::Delete {
            collection,
            id,
            guard,
        } => {
            let collection = &**collection;
            refuse_view(collection)?;
            let record = guarded_load(conn, collection, id, guard.as_ref())?;
            let cascaded = delete_with_cascade(conn, schema, collection, record.id())?
                .into_iter()
                .filter(|(collection_id, id)| {
                    !(collection_id == &collection.id && id == record.id())
                })
                .collect();
            Ok(WriteResult::Deleted { record, cascaded })
        }
    }
}

/// Whether `collection` is the writer's current one (no schema change since it was taken).
fn is_current(schema: &Schema, collection: &Arc<Collection>) -> bool {
    schema
        .get_by_id(&collection.id)
        .is_some_and(|current| Arc::ptr_eq(current, collection))
}

/// An update on the row its caller read (`known`), which the mark shows unchanged since: the
/// guard is checked on the stored row (none is given when the caller decided the rule on this
/// row in memory: `KnownRow::guard`), the relations it sets are looked up, and the row is
/// written by its rowid and id together. `None` when that changed nothing (the row was deleted or moved by a
/// change the update hook does not see, see `row_marks.rs`): nothing was written, and the
/// caller reads the row as usual.
fn update_known(
    conn: &Connection,
    schema: &Schema,
    collection: &Collection,
    id: &str,
    guard: Option<&SqlFragment>,
    apply: &mut domain::UpdateFn,
    known: &mut domain::KnownRow,
) -> Result<Option<Record>, StoreError> {
    let Some(rowid_name) = rowid_name(collection) else {
        return Ok(None);
    };
    if known.record.id() != id {
        return Ok(None);
    }
    // A guard without a subquery is cheap to decide on one row: it joins the UPDATE's
    // condition. Any other is decided first on its own (its time bounded as a read's).
    let (in_update, first) = match guard {
        Some(guard) if !has_subquery(&guard.sql) => (Some(guard), None),
        other => (None, other),
    };
    if let Some(guard) = first {
        let sql = format!(
            "SELECT 1 FROM {table} WHERE {table}.{rowid_name} = ? AND {table}.\"id\" = ? AND ({})",
            guard.sql,
            table = quote_ident(&collection.name),
        );
        let mut params = vec![SqlOut::Integer(known.mark.row), SqlOut::Text(id.to_owned())];
        params.extend(guard.params.iter().map(bind));
        let found = conn
            .prepare_cached(&sql)
            .and_then(|mut stmt| {
                stmt.query_row(params_from_iter(params), |r| r.get::<_, i64>(0))
                    .optional()
            })
            .map_err(|error| {
                if crate::is_interrupt(&error) {
                    StoreError::NotFound
                } else {
                    internal(error)
                }
            })?;
        if found.is_none() {
            // Not at its rowid any more, or the guard does not hold: the usual way decides.
            return Ok(None);
        }
    }
    // Taken: a run again (see `group.rs`) applies the update to the row instead, which gives
    // the same values.
    let update = match known.data.take() {
        Some(data) => data,
        None => apply(&known.record)?,
    };
    let data = if is_whole_row(collection, &update, id) {
        update
    } else {
        merged(collection, known.record.data.clone(), update)
    };
    check_relations(conn, schema, collection, &data, |name| {
        data.get(name) == known.record.data.get(name)
    })?;
    let (moved, written) = update_row(
        conn,
        collection,
        id,
        Some((rowid_name, known.mark.row)),
        in_update,
        &data,
    )?;
    if moved == 0 {
        // Gone or moved, or the guard does not hold: the usual way decides.
        return Ok(None);
    }
    let updated = match written {
        Some(record) => record,
        None => load(conn, collection, id, None)
            .map_err(internal)?
            .ok_or_else(|| StoreError::Internal("updated record vanished".into()))?,
    };
    changelog::append(conn, collection, &updated, ChangeAction::Update)?;
    Ok(Some(updated))
}

/// Whether predicate SQL (the rules compiler's: identifiers quoted, values bound) may hold a
/// subquery. Erring towards yes only costs a separate check.
fn has_subquery(sql: &str) -> bool {
    sql.as_bytes()
        .windows(6)
        .any(|w| w.eq_ignore_ascii_case(b"select"))
}

/// Whether `update` is a whole row of `collection` as [`merged`] would make it of any row
/// `id`: every field, in order, nothing else, the key `id`.
fn is_whole_row(collection: &Collection, update: &RecordData, id: &str) -> bool {
    update.len() == collection.fields.len()
        && collection
            .fields
            .iter()
            .zip(update)
            .all(|(field, (name, value))| {
                *name == field.name && (!field.is_primary_key() || value.as_str() == Some(id))
            })
}

/// The name that reads a collection's rowid: the first of SQLite's three that no field
/// shadows (a field may be called `rowid`). `None` if all three are fields.
fn rowid_name(collection: &Collection) -> Option<&'static str> {
    ["rowid", "_rowid_", "oid"].into_iter().find(|name| {
        !collection
            .fields
            .iter()
            .any(|f| f.name.eq_ignore_ascii_case(name))
    })
}

/// `current` with the values `update` gives its fields: values the update did not mention
/// stay as they are, the key never changes, and entries of `update` that are not fields are
/// left out. Both normally hold the fields in the collection's order, so each is walked along
/// the fields and a key is hashed only for an entry out of place.
fn merged(collection: &Collection, mut current: RecordData, update: RecordData) -> RecordData {
    let mut fresh = update.into_iter().peekable();
    // What is left of `update` once an entry was out of place.
    let mut rest: Option<RecordData> = None;
    let mut slots = current.iter_mut().peekable();
    let mut appended: Vec<(&Field, Value)> = Vec::new();
    for field in &collection.fields {
        let value = match fresh.peek() {
            Some((name, _)) if *name == field.name => fresh.next().map(|(_, value)| value),
            _ => rest
                .get_or_insert_with(|| fresh.by_ref().collect())
                .remove(&field.name),
        };
        let slot = match slots.peek() {
            Some((name, _)) if **name == field.name => slots.next().map(|(_, slot)| slot),
            _ => None,
        };
        match (value, slot) {
            _ if field.is_primary_key() => {}
            (Some(value), Some(slot)) => *slot = value,
            (Some(value), None) => appended.push((field, value)),
            (None, _) => {}
        }
    }
    drop(slots);
    // Out of place in `current` (replaced where it is) or missing (added at the end).
    for (field, value) in appended {
        current.insert(field.name.clone(), value);
    }
    current
}

fn create(
    conn: &Connection,
    schema: &Schema,
    collection: &Collection,
    data: &RecordData,
    guard: Option<&SqlFragment>,
) -> Result<Record, StoreError> {
    refuse_view(collection)?;
    let id = match data.get("id").and_then(Value::as_str) {
        Some(id) if !id.is_empty() => id.to_owned(),
        _ => domain::ids::new_record_id(),
    };
    check_relations(conn, schema, collection, data, |_| false)?;
    let sql = crate::sql_cache::sql(crate::sql_cache::Kind::Insert, collection, || {
        insert_sql(collection)
    });
    let values: Vec<SqlOut> = domain::record::by_field(&collection.fields, data)
        .map(|(f, value)| {
            if f.is_primary_key() {
                SqlOut::Text(id.clone())
            } else {
                stored(f, value)
            }
        })
        .collect();
    let changes = conn.total_changes();
    conn.prepare_cached(&sql)
        .and_then(|mut stmt| stmt.execute(params_from_iter(values.iter())))
        .map_err(|e| write_error(e, collection))?;
    let written = as_written(conn, changes, collection, values);
    if let Some(guard) = guard {
        let mut sql = format!(
            "SELECT 1 FROM {table} WHERE {table}.{id} = ? AND (",
            table = quote_ident(&collection.name),
            id = quote_ident("id")
        );
        sql.push_str(&guard.sql);
        sql.push(')');
        let mut params = vec![SqlOut::Text(id.clone())];
        params.extend(guard.params.iter().map(bind));
        let found: Option<i64> = conn
            .prepare_cached(&sql)
            .and_then(|mut stmt| {
                stmt.query_row(params_from_iter(params), |r| r.get(0))
                    .optional()
            })
            .map_err(internal)?;
        if found.is_none() {
            return Err(StoreError::GuardRejected);
        }
    }
    let created = match written {
        Some(record) => record,
        None => load(conn, collection, &id, None)
            .map_err(internal)?
            .ok_or_else(|| StoreError::Internal("created record vanished".into()))?,
    };
    changelog::append(conn, collection, &created, ChangeAction::Create)?;
    Ok(created)
}

/// The row a write just stored, made from the values it bound instead of read back (a
/// primary-key read of the row and its decoding were 6 % of a create's instructions); `None`
/// when a read could answer otherwise, and the caller reads the row.
///
/// A read answers what the columns hold, decoded by [`sql_to_json`]. The columns hold the
/// bound values as they are when
/// - the statement changed exactly two rows (`changes` is the connection's count before it):
///   the record's and its collection's version (the version trigger's upsert), so no trigger
///   of anyone else's changed the row, or anything else, behind the write;
/// - and no column's affinity converts its value. Plinth and PocketBase declare text fields
///   `TEXT` (text stays text), numbers and bools `NUMERIC`/`BOOLEAN` (numbers are bound, and
///   a whole real that SQLite keeps as an integer decodes to the same JSON number), json,
///   geoPoint and multiple fields `JSON` (NUMERIC affinity: a text that reads as a number
///   would become one, so any json text that does not start like an object, an array, a
///   string, `true`, `false` or `null` is read back instead).
///
/// `values` are the bound values of `collection`'s fields in order (the key's, its text).
fn as_written(
    conn: &Connection,
    changes: u64,
    collection: &Collection,
    values: Vec<SqlOut>,
) -> Option<Record> {
    if conn.total_changes().wrapping_sub(changes) != 2
        || values.len() != collection.fields.len()
        || !collection
            .fields
            .iter()
            .zip(&values)
            .all(|(field, value)| kept_as_bound(field, value))
    {
        return None;
    }
    let values = collection.fields.iter().zip(values).map(|(field, value)| {
        match (ColumnType::of(field), value) {
            // What `sql_to_json` makes of a text field's text, without copying it.
            (ColumnType::Text, SqlOut::Text(text)) => Value::String(text),
            (_, value) => sql_to_json(field, ValueRef::from(&value)),
        }
    });
    Some(Record::new(domain::record::record_of(
        &collection.fields,
        values,
    )))
}

/// Whether `field`'s column keeps `value` as bound (see [`as_written`]).
fn kept_as_bound(field: &Field, value: &SqlOut) -> bool {
    match ColumnType::of(field) {
        ColumnType::Text => matches!(value, SqlOut::Text(_)),
        ColumnType::Number | ColumnType::Bool => {
            matches!(value, SqlOut::Integer(_) | SqlOut::Real(_))
        }
        ColumnType::Json | ColumnType::Geo | ColumnType::Multi => match value {
            SqlOut::Null => true,
            SqlOut::Text(text) => starts_as_json_not_number(text),
            _ => false,
        },
    }
}

/// Whether a JSON text begins as something NUMERIC affinity leaves as text: an object, an
/// array, a string, or exactly `true`, `false` or `null`. (SQLite converts a text whose whole
/// content, spaces aside, is a decimal literal; none of these can be one.)
fn starts_as_json_not_number(text: &str) -> bool {
    matches!(text.as_bytes().first(), Some(b'{' | b'[' | b'"'))
        || matches!(text, "true" | "false" | "null")
}

/// `INSERT OR FAIL INTO "t" ("a", "b") VALUES (?, ?)` over every field, written into one
/// string (the statement cache finds the prepared statement by this text).
///
/// `OR FAIL`, here and in [`update_sql`]: inside a transaction, SQLite gives every statement
/// that may abort (a unique index, a `NOT NULL`) a statement journal, copying each page it
/// changes so that the statement alone can be undone. Nothing needs that here: a failed
/// statement fails its whole write, which its savepoint or its transaction then undoes, and
/// no statement of the write runs after it. (These statements change one row, whose
/// constraints SQLite checks before changing anything, so there is not even a partial row.)
/// Without the journal a create costs some 6,000 fewer instructions (about 3 %).
pub(crate) fn insert_sql(collection: &Collection) -> String {
    let mut sql = String::with_capacity(64 + collection.fields.len() * 16);
    sql.push_str("INSERT OR FAIL INTO ");
    push_quoted_ident(&mut sql, &collection.name);
    sql.push_str(" (");
    for (n, field) in collection.fields.iter().enumerate() {
        if n > 0 {
            sql.push_str(", ");
        }
        push_quoted_ident(&mut sql, &field.name);
    }
    sql.push_str(") VALUES (");
    for n in 0..collection.fields.len() {
        sql.push_str(if n == 0 { "?" } else { ", ?" });
    }
    sql.push(')');
    sql
}

/// `UPDATE OR FAIL "t" SET "a" = ?, "b" = ? WHERE "id" = ?` over `fields`, written into one
/// string (one row: see [`insert_sql`] on `OR FAIL`); with `rowid_name`, `AND <it> = ?`
/// follows (the row at that rowid only).
pub(crate) fn update_sql(
    collection: &Collection,
    fields: &[&Field],
    rowid_name: Option<&str>,
) -> String {
    let mut sql = String::with_capacity(64 + fields.len() * 16);
    sql.push_str("UPDATE OR FAIL ");
    push_quoted_ident(&mut sql, &collection.name);
    sql.push_str(" SET ");
    for (n, field) in fields.iter().enumerate() {
        if n > 0 {
            sql.push_str(", ");
        }
        push_quoted_ident(&mut sql, &field.name);
        sql.push_str(" = ?");
    }
    sql.push_str(" WHERE \"id\" = ?");
    if let Some(name) = rowid_name {
        sql.push_str(" AND ");
        sql.push_str(name);
        sql.push_str(" = ?");
    }
    sql
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

/// Writes `data` to row `id` (only at the rowid `at` gives, with the name that reads it, when
/// given): the rows the statement changed (triggers included) and the record as written when
/// [`as_written`] can tell it.
///
/// `guard` (with `at` only) is added to the statement's condition: the row is written only if
/// it holds for it (no row changed otherwise).
fn update_row(
    conn: &Connection,
    collection: &Collection,
    id: &str,
    at: Option<(&str, i64)>,
    guard: Option<&SqlFragment>,
    data: &RecordData,
) -> Result<(u64, Option<Record>), StoreError> {
    let fields: Vec<&Field> = collection
        .fields
        .iter()
        .filter(|f| !f.is_primary_key())
        .collect();
    if fields.is_empty() {
        return Ok((0, None));
    }
    let kind = match at {
        Some(_) => crate::sql_cache::Kind::UpdateAt,
        None => crate::sql_cache::Kind::Update,
    };
    let mut sql = crate::sql_cache::sql(kind, collection, || {
        update_sql(collection, &fields, at.map(|(name, _)| name))
    });
    let guard = guard.filter(|_| at.is_some());
    if let Some(guard) = guard {
        let mut guarded = String::with_capacity(sql.len() + guard.sql.len() + 8);
        guarded.push_str(&sql);
        guarded.push_str(" AND (");
        guarded.push_str(&guard.sql);
        guarded.push(')');
        sql = guarded.into();
    }
    // In the fields' order for [`as_written`] (the key's place holds its text); bound in the
    // statement's, the key last.
    let values: Vec<SqlOut> = domain::record::by_field(&collection.fields, data)
        .map(|(f, value)| {
            if f.is_primary_key() {
                SqlOut::Text(id.to_owned())
            } else {
                stored(f, value)
            }
        })
        .collect();
    let key = SqlOut::Text(id.to_owned());
    let row = at.map(|(_, rowid)| SqlOut::Integer(rowid));
    let bound = collection
        .fields
        .iter()
        .zip(&values)
        .filter(|(f, _)| !f.is_primary_key())
        .map(|(_, value)| value)
        .chain(std::iter::once(&key))
        .chain(row.as_ref());
    let guard_params: Vec<SqlOut> = guard
        .map(|guard| guard.params.iter().map(bind).collect())
        .unwrap_or_default();
    let bound = bound.chain(&guard_params);
    let changes = conn.total_changes();
    conn.prepare_cached(&sql)
        .and_then(|mut stmt| stmt.execute(params_from_iter(bound)))
        .map_err(|e| write_error(e, collection))?;
    let moved = conn.total_changes().wrapping_sub(changes);
    Ok((moved, as_written(conn, changes, collection, values)))
}

/// Deletes a record and applies relation cascades: records reaching it through a
/// `cascadeDelete` relation are deleted too (transitively); other references are cleared,
/// unless the field is required and would become empty, which blocks the whole delete.
/// Returns every deleted `(collection id, record id)`.
fn delete_with_cascade(
    conn: &Connection,
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
            for (dependent, dependent_id) in auth_dependents(conn, schema, &target.id, &target_id)?
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
            for (referrer_id, _) in referencing_rows(conn, referrer, field, &target_id)? {
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
            for (referrer_id, value) in referencing_rows(conn, referrer, field, target_id)? {
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
                unlink(conn, referrer, field, &referrer_id, &remaining)?;
                // A cleared reference is an update of the referring record like any other.
                if let Some(unlinked) =
                    load(conn, referrer, &referrer_id, None).map_err(internal)?
                {
                    changelog::append(conn, referrer, &unlinked, ChangeAction::Update)?;
                }
            }
        }
    }

    for (target, target_id) in &doomed {
        // The change log keeps the last state before deletion.
        let Some(last_state) = load(conn, target, target_id, None).map_err(internal)? else {
            continue;
        };
        let sql = format!(
            "DELETE FROM {} WHERE {} = ?",
            quote_ident(&target.name),
            quote_ident("id")
        );
        conn.prepare_cached(&sql)
            .and_then(|mut stmt| stmt.execute([target_id]))
            .map_err(internal)?;
        changelog::append(conn, target, &last_state, ChangeAction::Delete)?;
    }
    Ok(seen)
}

/// The rows of the system collections that belong to the auth record `record_id` of
/// `collection_id` (`domain::collection::AUTH_RECORD_DEPENDENTS`): they go with it, in the
/// same transaction.
fn auth_dependents(
    conn: &Connection,
    schema: &Schema,
    collection_id: &str,
    record_id: &str,
) -> Result<Vec<(Arc<Collection>, String)>, StoreError> {
    let mut found = Vec::new();
    for dependent in AUTH_RECORD_DEPENDENTS {
        let Some(dependent) = schema.get_by_id(dependent) else {
            continue;
        };
        let table = quote_ident(&dependent.name);
        let sql = format!(
            "SELECT {} FROM {table} WHERE {} = ? AND {} = ?",
            quote_ident("id"),
            quote_ident("collectionRef"),
            quote_ident("recordRef"),
        );
        let mut stmt = conn.prepare_cached(&sql).map_err(internal)?;
        let ids = stmt
            .query_map([collection_id, record_id], |r| r.get::<_, String>(0))
            .map_err(internal)?;
        for id in ids {
            found.push((Arc::clone(dependent), id.map_err(internal)?));
        }
    }
    Ok(found)
}

fn is_cascading(field: &Field) -> bool {
    matches!(&field.kind, FieldKind::Relation(o) if o.cascade_delete)
}

/// `(id, raw field value)` of every record of `referrer` whose `field` holds `target_id`.
fn referencing_rows(
    conn: &Connection,
    referrer: &Collection,
    field: &Field,
    target_id: &str,
) -> Result<Vec<(String, Value)>, StoreError> {
    let table = quote_ident(&referrer.name);
    let column = format!("{table}.{}", quote_ident(&field.name));
    let condition = if field.is_multiple() {
        format!(
            "EXISTS (SELECT 1 FROM json_each(CASE WHEN json_valid({column}) THEN {column} ELSE '[]' END) AS rel WHERE rel.value = ?)"
        )
    } else {
        format!("{column} = ?")
    };
    let sql = format!(
        "SELECT {table}.{}, {column} FROM {table} WHERE {condition}",
        quote_ident("id")
    );
    let mut stmt = conn.prepare_cached(&sql).map_err(internal)?;
    let rows = stmt
        .query_map([target_id], |r| {
            Ok((r.get::<_, String>(0)?, sql_to_json(field, r.get_ref(1)?)))
        })
        .map_err(internal)?;
    rows.collect::<Result<_, _>>().map_err(internal)
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
fn unlink(
    conn: &Connection,
    referrer: &Collection,
    field: &Field,
    referrer_id: &str,
    remaining: &Value,
) -> Result<(), StoreError> {
    let mut assignments = vec![format!("{} = ?", quote_ident(&field.name))];
    let mut values = vec![stored(field, Some(remaining))];
    let now = domain::time::now();
    for autodate in referrer
        .fields
        .iter()
        .filter(|f| matches!(&f.kind, FieldKind::Autodate(o) if o.on_update))
    {
        assignments.push(format!("{} = ?", quote_ident(&autodate.name)));
        values.push(SqlOut::Text(now.clone()));
    }
    values.push(SqlOut::Text(referrer_id.to_owned()));
    let sql = format!(
        "UPDATE {} SET {} WHERE {} = ?",
        quote_ident(&referrer.name),
        assignments.join(", "),
        quote_ident("id")
    );
    conn.prepare_cached(&sql)
        .and_then(|mut stmt| stmt.execute(params_from_iter(values)))
        .map_err(|e| write_error(e, referrer))?;
    Ok(())
}

/// The relation fields an update leaves as they are stored: absent from `update`, or given
/// the stored value again.
fn kept_relations<'c>(
    collection: &'c Collection,
    stored: &RecordData,
    update: &RecordData,
) -> Vec<&'c str> {
    collection
        .fields
        .iter()
        .filter(|field| matches!(field.kind, FieldKind::Relation(_)))
        .filter(|field| {
            update
                .get(&field.name)
                .is_none_or(|value| stored.get(&field.name) == Some(value))
        })
        .map(|field| field.name.as_str())
        .collect()
}

/// Every id in a relation field must name an existing record of the target collection.
///
/// A field for which `kept` is true holds the value already stored in this transaction (an
/// update that leaves it as it is) and is not looked up again when its target is a table:
/// every id a stored relation holds names a record, since a delete of that record through the
/// store clears the id, deletes the referrer or is refused, in the same transaction. (Raw SQL
/// can leave an id dangling: the SQL console, another process. PocketBase refuses any update
/// of such a record until the relation is fixed; here an update that leaves the relation as
/// it is goes through, and one that changes it is checked.) A view's rows come and go with
/// its query, so a relation to a view is always looked up.
fn check_relations(
    conn: &Connection,
    schema: &Schema,
    collection: &Collection,
    data: &RecordData,
    kept: impl Fn(&str) -> bool,
) -> Result<(), StoreError> {
    let mut errors = ValidationErrors::new();
    for field in &collection.fields {
        let FieldKind::Relation(options) = &field.kind else {
            continue;
        };
        if kept(&field.name)
            && schema
                .get_by_id(&options.collection_id)
                .is_some_and(|target| !target.is_view())
        {
            continue;
        }
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
            // One id (every single relation): a lookup by primary key.
            Some(target) if ids.len() == 1 => {
                let sql = crate::sql_cache::sql(crate::sql_cache::Kind::CountById, target, || {
                    format!(
                        "SELECT COUNT(*) FROM {table} WHERE {id} = ?",
                        table = quote_ident(&target.name),
                        id = quote_ident("id")
                    )
                });
                conn.prepare_cached(&sql)
                    .and_then(|mut stmt| stmt.query_row([ids[0]], |r| r.get::<_, i64>(0)))
                    .map_err(internal)?
            }
            // Several: one primary-key probe per id of the list (the ids are distinct), with
            // no temporary table as `IN (SELECT …)` would build.
            Some(target) => {
                let sql = crate::sql_cache::sql(crate::sql_cache::Kind::CountByIds, target, || {
                    format!(
                        "SELECT COUNT(*) FROM json_each(?) AS wanted WHERE EXISTS \
                         (SELECT 1 FROM {table} WHERE {table}.{id} = wanted.value)",
                        table = quote_ident(&target.name),
                        id = quote_ident("id")
                    )
                });
                let list = serde_json::to_string(&ids).unwrap_or_else(|_| "[]".into());
                conn.prepare_cached(&sql)
                    .and_then(|mut stmt| stmt.query_row([list], |r| r.get::<_, i64>(0)))
                    .map_err(internal)?
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
/// columns of the violated index; anything else is internal.
fn write_error(error: rusqlite::Error, collection: &Collection) -> StoreError {
    if let rusqlite::Error::SqliteFailure(code, Some(message)) = &error
        && matches!(
            code.extended_code,
            rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE | rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY
        )
        && let Some(columns) = unique_violation_columns(message, collection)
    {
        let mut errors = ValidationErrors::new();
        for column in columns {
            errors.add(&column, FieldError::not_unique());
        }
        return StoreError::Validation(errors);
    }
    internal(error)
}

/// The field names named by `UNIQUE constraint failed: t.a, t.b` or, for an index SQLite
/// cannot describe by columns, `… failed: index 'name'`.
fn unique_violation_columns(message: &str, collection: &Collection) -> Option<Vec<String>> {
    let detail = message.strip_prefix("UNIQUE constraint failed: ")?;
    let columns: Vec<String> = if let Some(name) = detail
        .strip_prefix("index '")
        .and_then(|rest| rest.strip_suffix('\''))
    {
        let def = collection
            .indexes
            .iter()
            .filter_map(|text| IndexDef::parse(text).ok())
            .find(|def| def.name.eq_ignore_ascii_case(name))?;
        def.unique_columns()?
            .into_iter()
            .map(str::to_owned)
            .collect()
    } else {
        let prefix = format!("{}.", collection.name);
        detail
            .split(", ")
            .map(|part| {
                part.strip_prefix(&prefix)
                    .or_else(|| part.rsplit_once('.').map(|(_, column)| column))
                    .unwrap_or(part)
                    .to_owned()
            })
            .collect()
    };
    // Report the field's own spelling (SQLite echoes the index's).
    let names: Vec<String> = columns
        .iter()
        .map(|column| {
            collection
                .fields
                .iter()
                .find(|f| f.name.eq_ignore_ascii_case(column))
                .map(|f| f.name.clone())
                .unwrap_or_else(|| column.clone())
        })
        .collect();
    (!names.is_empty()).then_some(names)
}

/// Loads one record by id, if it satisfies `filter`.
pub(crate) fn load(
    conn: &Connection,
    collection: &Collection,
    id: &str,
    filter: Option<&SqlFragment>,
) -> rusqlite::Result<Option<Record>> {
    let by_id = crate::sql_cache::sql(crate::sql_cache::Kind::LoadById, collection, || {
        let mut sql = select_from(collection);
        sql.push_str(" WHERE ");
        domain::sql::push_quoted_ident(&mut sql, &collection.name);
        sql.push_str(".\"id\" = ?");
        sql
    });
    let mut params = vec![SqlOut::Text(id.to_owned())];
    let filtered;
    let sql: &str = match filter {
        Some(filter) => {
            filtered = format!("{by_id} AND ({})", filter.sql);
            params.extend(filter.params.iter().map(bind));
            &filtered
        }
        None => &by_id,
    };
    let mut stmt = conn.prepare_cached(sql)?;
    stmt.query_row(params_from_iter(params), |row| read_record(row, collection))
        .optional()
}

/// Record `id` with its rowid (see [`rowid_name`]; none when no name reads it).
pub(crate) fn load_marked(
    conn: &Connection,
    collection: &Collection,
    id: &str,
) -> rusqlite::Result<Option<(Record, Option<i64>)>> {
    let Some(rowid_name) = rowid_name(collection) else {
        return Ok(load(conn, collection, id, None)?.map(|record| (record, None)));
    };
    let sql = crate::sql_cache::sql(crate::sql_cache::Kind::LoadMarked, collection, || {
        let table = quote_ident(&collection.name);
        let mut sql = String::with_capacity(256);
        sql.push_str("SELECT ");
        push_select_list(&mut sql, &table, collection);
        sql.push_str(", ");
        sql.push_str(&table);
        sql.push('.');
        sql.push_str(rowid_name);
        sql.push_str(" FROM ");
        sql.push_str(&table);
        sql.push_str(" WHERE ");
        domain::sql::push_quoted_ident(&mut sql, &collection.name);
        sql.push_str(".\"id\" = ?");
        sql
    });
    let at = collection.fields.len().max(1);
    let mut stmt = conn.prepare_cached(&sql)?;
    stmt.query_row([id], |row| {
        Ok((read_record(row, collection)?, row.get(at)?))
    })
    .optional()
}

/// The first `limit` rows of an unsaved view's SELECT (a superuser's SQL, as a saved view's
/// is), read as records of its inferred fields. The connection is a read-only reader.
pub(crate) fn sample(
    conn: &Connection,
    fields: &[Field],
    query: &str,
    limit: usize,
) -> Result<Vec<Record>, StoreError> {
    let view = Collection {
        id: String::new(),
        list_rule: None,
        view_rule: None,
        create_rule: None,
        update_rule: None,
        delete_rule: None,
        name: "_sample".to_owned(),
        kind: domain::CollectionType::View,
        fields: fields.to_vec(),
        indexes: Vec::new(),
        created: String::new(),
        updated: String::new(),
        system: false,
        view_query: None,
        auth: None,
    };
    // The newline keeps a trailing `-- comment` in the query from swallowing the parenthesis.
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let sql = format!(
        "SELECT {} FROM ({}\n) AS {}{}",
        select_list(&view),
        query.trim().trim_end_matches(';'),
        quote_ident(&view.name),
        limit_clause(limit)
    );
    // A query that plans but fails while running (or runs out of time) is the view's problem,
    // reported like its planning errors.
    let failed = |error: rusqlite::Error| {
        if crate::is_interrupt(&error) {
            StoreError::TimedOut
        } else {
            StoreError::Schema(format!("invalid view query: {error}"))
        }
    };
    let mut stmt = conn.prepare(&sql).map_err(failed)?;
    let rows = stmt
        .query_map([], |row| read_record(row, &view))
        .map_err(failed)?;
    rows.collect::<Result<Vec<_>, _>>().map_err(failed)
}

/// `"t"."f1", "t"."f2", …` in field order.
fn select_list(collection: &Collection) -> String {
    let mut out = String::new();
    push_select_list(&mut out, &quote_ident(&collection.name), collection);
    out
}

/// `SELECT "t"."a", "t"."b", … FROM "t"`: every field of `collection`, in order.
fn select_from(collection: &Collection) -> String {
    let table = quote_ident(&collection.name);
    let mut sql = String::with_capacity(256);
    sql.push_str("SELECT ");
    push_select_list(&mut sql, &table, collection);
    sql.push_str(" FROM ");
    sql.push_str(&table);
    sql
}

/// Appends [`select_list`] to `out`, `table` being the collection's quoted name: one string
/// grown in place.
fn push_select_list(out: &mut String, table: &str, collection: &Collection) {
    if collection.fields.is_empty() {
        out.push_str("NULL");
        return;
    }
    out.reserve(collection.fields.len() * (table.len() + 16));
    for (i, field) in collection.fields.iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        out.push_str(table);
        out.push('.');
        domain::sql::push_quoted_ident(out, &field.name);
    }
}

fn read_record(row: &Row<'_>, collection: &Collection) -> rusqlite::Result<Record> {
    domain::record::try_record_of(&collection.fields, |i, field| {
        Ok(sql_to_json(field, row.get_ref(i)?))
    })
    .map(Record::new)
}

/// A bound parameter of a predicate.
pub(crate) fn bind(value: &SqlValue) -> SqlOut {
    match value {
        SqlValue::Null => SqlOut::Null,
        SqlValue::Int(i) => SqlOut::Integer(*i),
        SqlValue::Real(r) => SqlOut::Real(*r),
        SqlValue::Text(t) => SqlOut::Text(t.clone()),
    }
}

/// The SQL value stored for a field's value (its zero value when absent), in the one format
/// `domain::storage` defines.
pub(crate) fn stored(field: &Field, value: Option<&Value>) -> SqlOut {
    match stored_field_value(field, value) {
        SqlValue::Null => SqlOut::Null,
        SqlValue::Int(i) => SqlOut::Integer(i),
        SqlValue::Real(r) => SqlOut::Real(r),
        SqlValue::Text(t) => SqlOut::Text(t),
    }
}

/// The canonical JSON value of a stored column value.
pub(crate) fn sql_to_json(field: &Field, value: ValueRef<'_>) -> Value {
    match &field.kind {
        FieldKind::Number(_) => match value {
            ValueRef::Integer(i) => Value::from(i),
            ValueRef::Real(r) => number_to_json(r),
            ValueRef::Text(t) => std::str::from_utf8(t)
                .ok()
                .and_then(|s| s.trim().parse::<f64>().ok())
                .map_or(Value::from(0), number_to_json),
            _ => Value::from(0),
        },
        FieldKind::Bool(_) => Value::Bool(match value {
            ValueRef::Integer(i) => i != 0,
            ValueRef::Real(r) => r != 0.0,
            ValueRef::Text(t) => matches!(t, b"true" | b"TRUE" | b"1"),
            _ => false,
        }),
        FieldKind::Json(_) => json_from_ref(value),
        FieldKind::GeoPoint(_) => match json_from_ref(value) {
            point @ Value::Object(_) => point,
            _ => field.zero_value(),
        },
        _ if field.is_multiple() => match json_from_ref(value) {
            items @ Value::Array(_) => items,
            Value::String(s) if !s.is_empty() => Value::Array(vec![Value::String(s)]),
            _ => Value::Array(Vec::new()),
        },
        _ => Value::String(match value {
            // Stored text is UTF-8; the strict check is the faster one, the lossy copy only
            // a fallback for bytes written by something else.
            ValueRef::Text(t) => match std::str::from_utf8(t) {
                Ok(text) => text.to_owned(),
                Err(_) => String::from_utf8_lossy(t).into_owned(),
            },
            ValueRef::Integer(i) => i.to_string(),
            ValueRef::Real(r) => number_to_json(r).to_string(),
            ValueRef::Blob(b) => String::from_utf8_lossy(b).into_owned(),
            ValueRef::Null => String::new(),
        }),
    }
}

/// A JSON column's value: text is parsed as JSON (kept as a string when it is not JSON);
/// numbers come back as numbers, since JSON columns have numeric affinity.
fn json_from_ref(value: ValueRef<'_>) -> Value {
    match value {
        ValueRef::Null => Value::Null,
        ValueRef::Integer(i) => Value::from(i),
        ValueRef::Real(r) => number_to_json(r),
        ValueRef::Text(t) | ValueRef::Blob(t) => match serde_json::from_slice(t) {
            Ok(parsed) => parsed,
            Err(_) => Value::String(String::from_utf8_lossy(t).into_owned()),
        },
    }
}

/// Same as [`json_from_ref`] for an owned value.
pub(crate) fn json_from_sql(value: SqlOut) -> Value {
    match &value {
        SqlOut::Null => Value::Null,
        SqlOut::Integer(i) => Value::from(*i),
        SqlOut::Real(r) => number_to_json(*r),
        SqlOut::Text(t) => json_from_ref(ValueRef::Text(t.as_bytes())),
        SqlOut::Blob(b) => json_from_ref(ValueRef::Blob(b)),
    }
}

#[cfg(test)]
mod tests {
    use domain::collection::CollectionType;
    use domain::field::{BasicOptions, JsonOptions, NumberOptions, TextOptions};
    use serde_json::json;

    use super::*;

    fn collection() -> Collection {
        let mut collection = Collection::scaffold(CollectionType::Base, "t");
        collection.fields.extend([
            Field::new("title", FieldKind::Text(TextOptions::default())),
            Field::new("n", FieldKind::Number(NumberOptions::default())),
            Field::new("ok", FieldKind::Bool(BasicOptions::default())),
            Field::new("meta", FieldKind::Json(JsonOptions::default())),
        ]);
        collection
    }

    #[test]
    fn an_update_merges_as_a_lookup_by_name_would_whatever_the_order() {
        // The merge as it was written before the positional walk: clone, then by name.
        fn reference(
            collection: &Collection,
            current: &RecordData,
            update: &RecordData,
        ) -> RecordData {
            let mut update = update.clone();
            let mut data = current.clone();
            for field in &collection.fields {
                if field.is_primary_key() {
                    continue;
                }
                if let Some(value) = update.remove(&field.name) {
                    data.insert(field.name.clone(), value);
                }
            }
            data
        }
        let c = collection();
        let full = |tag: &str| -> RecordData {
            c.fields
                .iter()
                .map(|f| (f.name.clone(), json!(format!("{tag}-{}", f.name))))
                .collect()
        };
        let (current, update) = (full("old"), full("new"));
        let mut cases: Vec<(RecordData, RecordData)> = vec![(current.clone(), update.clone())];
        // Reordered, shortened and padded variants of both sides.
        let reordered = |data: &RecordData, rotate: usize| -> RecordData {
            let mut entries: Vec<(String, Value)> = data.clone().into_iter().collect();
            let len = entries.len().max(1);
            entries.rotate_left(rotate % len);
            entries.into_iter().collect()
        };
        for rotate in 0..c.fields.len() {
            let mut short = update.clone();
            short.shift_remove(&c.fields[rotate].name);
            let mut padded = update.clone();
            padded.insert("notAField".into(), json!(1));
            let mut missing = current.clone();
            missing.shift_remove(&c.fields[(rotate + 2) % c.fields.len()].name);
            cases.push((reordered(&current, rotate), update.clone()));
            cases.push((current.clone(), reordered(&update, rotate)));
            cases.push((reordered(&current, rotate + 1), reordered(&short, rotate)));
            cases.push((missing.clone(), padded.clone()));
            cases.push((reordered(&missing, rotate), short));
            cases.push((current.clone(), RecordData::new()));
        }
        for (current, update) in cases {
            let expected = reference(&c, &current, &update);
            let got = merged(&c, current.clone(), update.clone());
            assert_eq!(
                got.iter().collect::<Vec<_>>(),
                expected.iter().collect::<Vec<_>>(),
                "current {current:?} update {update:?}"
            );
        }
    }

    /// A table declared as Plinth declares one, with a version trigger like Plinth's.
    fn table(conn: &Connection, collection: &Collection) {
        let columns: Vec<String> = collection
            .fields
            .iter()
            .map(|f| {
                let ty = if f.is_primary_key() {
                    "TEXT PRIMARY KEY NOT NULL"
                } else {
                    crate::ddl::column_type(f)
                };
                format!("{} {ty}", quote_ident(&f.name))
            })
            .collect();
        conn.execute_batch(&format!(
            "CREATE TABLE t ({});
             CREATE TABLE v (collection TEXT PRIMARY KEY, n INTEGER) WITHOUT ROWID;
             CREATE TRIGGER tv AFTER INSERT ON t BEGIN
               INSERT INTO v VALUES ('t', 1) ON CONFLICT (collection) DO UPDATE SET n = n + 1;
             END;",
            columns.join(", ")
        ))
        .expect("table");
    }

    fn insert(conn: &Connection, collection: &Collection, values: Value) -> Option<Record> {
        let mut data = RecordData::new();
        for field in &collection.fields {
            data.insert(field.name.clone(), field.zero_value());
        }
        let id = domain::ids::new_record_id();
        data.insert("id".into(), Value::String(id.clone()));
        if let Value::Object(values) = values {
            data.extend(values);
        }
        let bound: Vec<SqlOut> = collection
            .fields
            .iter()
            .map(|f| stored(f, data.get(&f.name)))
            .collect();
        let changes = conn.total_changes();
        conn.execute(&insert_sql(collection), params_from_iter(bound.iter()))
            .expect("inserted");
        let written = as_written(conn, changes, collection, bound);
        let read = load(conn, collection, &id, None)
            .expect("reads")
            .expect("row");
        if let Some(written) = &written {
            assert_eq!(
                serde_json::to_string(&written.data).expect("json"),
                serde_json::to_string(&read.data).expect("json")
            );
        }
        written
    }

    #[test]
    fn a_written_row_is_built_unless_a_column_or_a_trigger_may_change_it() {
        let conn = Connection::open_in_memory().expect("opens");
        let collection = collection();
        table(&conn, &collection);
        let plain = json!({"title": " 5 ", "n": 2.5, "ok": true, "meta": {"k": [1, 2.5]}});
        assert!(insert(&conn, &collection, plain.clone()).is_some());
        for meta in [json!("5"), json!([]), json!(null), json!(true), json!("x")] {
            assert!(
                insert(&conn, &collection, json!({"meta": meta})).is_some(),
                "{meta}"
            );
        }
        // JSON text a NUMERIC column would turn into a number: read back.
        for meta in [json!(5), json!(5.0), json!(-0.0), json!(1e20)] {
            assert!(
                insert(&conn, &collection, json!({"meta": meta})).is_none(),
                "{meta}"
            );
        }
        // A second trigger that touches anything: read back.
        conn.execute_batch(
            "CREATE TABLE audit (x); CREATE TRIGGER ta AFTER INSERT ON t BEGIN INSERT INTO audit VALUES (1); END;",
        )
        .expect("trigger");
        assert!(insert(&conn, &collection, plain).is_none());
    }

    #[test]
    fn json_texts_that_stay_text_in_a_numeric_column() {
        for text in ["{}", "[1]", "\"5\"", "true", "false", "null"] {
            assert!(starts_as_json_not_number(text), "{text}");
        }
        for text in ["5", "-0.0", "1e20", ".5", " 5", "+1", "nul", "truex", ""] {
            assert!(!starts_as_json_not_number(text), "{text}");
        }
    }
}
