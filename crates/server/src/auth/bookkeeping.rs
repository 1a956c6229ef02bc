//! Rows of the auth bookkeeping system collections (`_otps`, `_mfas`, `_externalAuths`,
//! `_authOrigins`), written and read through the `Store` port like any record, so each
//! engine keeps them in its own table and owners can list them through the records API.

use std::sync::Arc;

use domain::{Collection, Record, RecordData, SqlFragment, SqlValue};
use serde_json::Value;

use crate::error::{ApiError, ApiResult};
use crate::state::SharedState;

/// The bookkeeping collection with this id (created by the store at bootstrap).
pub fn collection(state: &SharedState, id: &str) -> ApiResult<Arc<Collection>> {
    state
        .schema()
        .get_by_id(id)
        .cloned()
        .ok_or_else(|| ApiError::internal(format!("system collection {id} is missing")))
}

/// Inserts a row: `values` over the fields' zero values, timestamps set to now.
pub async fn insert(
    state: &SharedState,
    collection_id: &str,
    id: Option<String>,
    values: Vec<(&str, Value)>,
) -> ApiResult<Record> {
    let collection = collection(state, collection_id)?;
    let mut data = RecordData::new();
    for field in &collection.fields {
        data.insert(field.name.clone(), field.zero_value());
    }
    let now = domain::time::now();
    for name in ["created", "updated"] {
        if collection.field(name).is_some() {
            data.insert(name.into(), Value::String(now.clone()));
        }
    }
    data.insert(
        "id".into(),
        Value::String(id.unwrap_or_else(domain::ids::new_record_id)),
    );
    for (name, value) in values {
        data.insert(name.to_owned(), value);
    }
    let results = state
        .store
        .write(vec![domain::WriteOp::Create {
            collection,
            data,
            guard: None,
        }])
        .await
        // A unique index (one link per provider and record) reports as a 400.
        .map_err(|e| ApiError::from_store(e.error, "Failed to save the auth data."))?;
    results
        .into_iter()
        .next()
        .map(|r| r.record().clone())
        .ok_or_else(|| ApiError::internal("insert returned no record"))
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
    match state
        .store
        .write(vec![domain::WriteOp::Delete {
            collection,
            id: id.to_owned(),
            guard: None,
        }])
        .await
    {
        Ok(_) => Ok(()),
        Err(error) if matches!(error.error, domain::StoreError::NotFound) => Ok(()),
        Err(error) => Err(ApiError::internal(error.error)),
    }
}

/// Whether a row made at `created` is older than `duration` seconds.
pub fn expired(row: &Record, duration: u64) -> bool {
    match domain::time::parse(row.text("created")) {
        Some(created) => chrono::Utc::now() - created > chrono::Duration::seconds(duration as i64),
        None => true,
    }
}

/// Removes what the auth bookkeeping collections hold for a deleted auth record (its OAuth2
/// links, sign-in origins, pending OTPs and MFA sessions), as PocketBase does. Runs after the
/// record's delete committed; a failure is logged and leaves rows that reference nothing.
pub async fn forget_record(state: &SharedState, collection_id: &str, record_id: &str) {
    use domain::collection::{AUTH_ORIGINS_ID, EXTERNAL_AUTHS_ID, MFAS_ID, OTPS_ID};
    let mut ops = Vec::new();
    for system in [EXTERNAL_AUTHS_ID, AUTH_ORIGINS_ID, OTPS_ID, MFAS_ID] {
        let rows = match find(
            state,
            system,
            &[("collectionRef", collection_id), ("recordRef", record_id)],
            10_000,
        )
        .await
        {
            Ok(rows) => rows,
            Err(error) => {
                tracing::warn!(
                    ?error,
                    record_id,
                    "listing the auth data of a deleted record"
                );
                continue;
            }
        };
        let Ok(collection) = collection(state, system) else {
            continue;
        };
        ops.extend(rows.into_iter().map(|row| domain::WriteOp::Delete {
            collection: collection.clone(),
            id: row.id().to_owned(),
            guard: None,
        }));
    }
    if ops.is_empty() {
        return;
    }
    if let Err(error) = state.store.write(ops).await {
        tracing::warn!(error = %error.error, record_id, "removing the auth data of a deleted record");
    }
}
