//! `DELETE /api/collections/{collection}/records/{id}`: deletes a record (204) the delete
//! rule lets the caller reach (else 404). The store applies relation cascades and refuses
//! when a required reference would break.

use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, Method, StatusCode};
use domain::WriteOp;

use super::common::{refuse_view, target_for_read};
use super::query::QueryParams;
use crate::access;
use crate::error::{ApiError, ApiResult};
use crate::extract::Auth;
use crate::state::SharedState;

pub async fn delete(
    State(state): State<SharedState>,
    Path((collection, id)): Path<(String, String)>,
    Auth(auth): Auth,
    method: Method,
    headers: HeaderMap,
    RawQuery(raw_query): RawQuery,
) -> ApiResult<StatusCode> {
    let target = target_for_read(&state, &collection)?;
    refuse_view(&target.collection)?;
    let params = QueryParams::parse(raw_query.as_deref());
    let ctx = access::request_context(&auth, &method, &headers, params.pairs(), None);
    let guard = access::sql_guard(&target.rules.delete, state.store.dialect(), &ctx)?;
    state
        .store
        .write(vec![WriteOp::Delete {
            collection: target.collection,
            id,
            guard,
        }])
        .await
        .map_err(|error| ApiError::from_store(error.error, "Failed to delete record."))?;
    Ok(StatusCode::NO_CONTENT)
}
