//! Rows of the auth bookkeeping system collections (`_otps`, `_mfas`, `_externalAuths`,
//! `_authOrigins`), written through the record write pipeline's system path and read through
//! the `Store` port like any record, so each engine keeps them in its own table and owners can
//! list them through the records API. They go with their auth record: the store deletes them
//! in the record's delete transaction.

use std::sync::Arc;

use domain::{Collection, Record, SqlFragment, SqlValue};
use serde_json::Value;

use crate::error::{ApiError, ApiResult};
use crate::records::pipeline::{self, System, SystemChange};
use crate::state::SharedState;

/// The bookkeeping collection with this id (created by the store at bootstrap).
pub fn collection(state: &SharedState, id: &str) -> ApiResult<Arc<Collection>> {
    state
        .schema()
        .get_by_id(id)
        .cloned()
        .ok_or_else(|| ApiError::internal(format!("system collection {id} is missing")))
}

/// Inserts a row: `values` (a `password` in plain text, hashed on the way) over the fields'
/// zero values, validated as any record; timestamps set to now.
pub async fn insert(
    state: &SharedState,
    collection_id: &str,
    id: Option<String>,
    values: Vec<(&str, Value)>,
) -> ApiResult<Record> {
    let collection = collection(state, collection_id)?;
    let mut change = SystemChange::new();
    if let Some(id) = id {
        change = change.set("id", id);
    }
    for (name, value) in values {
        change = change.set(name, value);
    }
    pipeline::system_create(System::of(state), &collection, change)
        .await
        // A unique index (one link per provider and record) reports as a 400.
        .map_err(|error| ApiError::from_store(error, "Failed to save the auth data."))
}

/// The row with this id, if any.
pub async fn get(state: &SharedState, collection_id: &str, id: &str) -> ApiResult<Option<Record>> {
    let collection = collection(state, collection_id)?;
    Ok(state.store.get_record(collection, id, Vec::new()).await?)
}

/// Rows whose text fields equal the given values, oldest first.
pub async fn find(
    state: &SharedState,
    collection_id: &str,
    equals: &[(&str, &str)],
    limit: u64,
) -> ApiResult<Vec<Record>> {
    let collection = collection(state, collection_id)?;
    let filters = equals
        .iter()
        .map(|(field, value)| {
            let mut filter = SqlFragment::column(&collection.name, field);
            filter
                .push_sql(" = ")
                .push_param(SqlValue::Text((*value).to_owned()));
            filter
        })
        .collect();
    let sort = vec![domain::SortTerm {
        expr: SqlFragment::column(&collection.name, "created"),
        descending: false,
    }];
    let page = state
        .store
        .list_records(domain::RecordQuery {
            collection,
            filters,
            sort,
            page: 1,
            per_page: limit,
            with_total: false,
        })
        .await?;
    Ok(page.items)
}

/// Deletes a row; a row already gone is not an error.
pub async fn delete(state: &SharedState, collection_id: &str, id: &str) -> ApiResult<()> {
    let collection = collection(state, collection_id)?;
    match pipeline::system_delete(System::of(state), &collection, id).await {
        Ok(_) | Err(domain::StoreError::NotFound) => Ok(()),
        Err(error) => Err(ApiError::internal(error)),
    }
}

/// Deletes the row `id` of `collection_id` and says whether this call did: `false` when it
/// was already gone, so a code or session used on two nodes at once is used by one of them.
pub async fn take(state: &SharedState, collection_id: &str, id: &str) -> ApiResult<bool> {
    let collection = collection(state, collection_id)?;
    match pipeline::system_delete(System::of(state), &collection, id).await {
        Ok(_) => Ok(true),
        Err(domain::StoreError::NotFound) => Ok(false),
        Err(error) => Err(ApiError::internal(error)),
    }
}

/// Whether a row made at `created` is older than `duration` seconds.
pub fn expired(row: &Record, duration: u64) -> bool {
    match domain::time::parse(row.text("created")) {
        Some(created) => chrono::Utc::now() - created > chrono::Duration::seconds(duration as i64),
        None => true,
    }
}
