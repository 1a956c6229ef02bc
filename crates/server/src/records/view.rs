//! `GET /api/collections/{collection}/records/{id}`: one record, if the view rule lets the
//! caller see it (else 404, as if it did not exist).

use axum::Json;
use axum::extract::{Path, RawQuery, State};
use serde_json::Value;

use super::common::{collection_for_read, respond_with_record, rule_guard};
use super::query::QueryParams;
use crate::error::{ApiError, ApiResult};
use crate::extract::Auth;
use crate::state::SharedState;

pub async fn view(
    State(state): State<SharedState>,
    Path((collection, id)): Path<(String, String)>,
    Auth(auth): Auth,
    RawQuery(raw_query): RawQuery,
) -> ApiResult<Json<Value>> {
    let collection = collection_for_read(&state, &collection)?;
    let guard = rule_guard(collection.view_rule.as_deref(), &auth)?;
    let params = QueryParams::parse(raw_query.as_deref());
    let record = state
        .store
        .get_record(collection.clone(), &id, guard.into_iter().collect())
        .await?
        .ok_or_else(ApiError::not_found)?;
    respond_with_record(&state, &auth, &collection, record, &params).await
}
