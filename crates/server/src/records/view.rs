//! `GET /api/collections/{collection}/records/{id}`: one record, if the view rule lets the
//! caller see it (else 404, as if it did not exist).

use axum::Json;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, Method};
use serde_json::Value;

use super::common::{respond_with_record, target_for_read};
use super::query::QueryParams;
use crate::access;
use crate::error::{ApiError, ApiResult};
use crate::extract::Auth;
use crate::state::SharedState;

pub async fn view(
    State(state): State<SharedState>,
    Path((collection, id)): Path<(String, String)>,
    Auth(auth): Auth,
    method: Method,
    headers: HeaderMap,
    RawQuery(raw_query): RawQuery,
) -> ApiResult<Json<Value>> {
    let target = target_for_read(&state, &collection)?;
    let params = QueryParams::parse(raw_query.as_deref());
    let ctx = access::request_context(&auth, &method, &headers, params.pairs(), None);
    let guard = access::sql_guard(&target.rules.view, state.store.dialect(), &ctx)?;
    let record = state
        .store
        .get_record(target.collection.clone(), &id, guard.into_iter().collect())
        .await?
        .ok_or_else(ApiError::not_found)?;
    respond_with_record(&state, &ctx, &target.collection, record, &params).await
}
