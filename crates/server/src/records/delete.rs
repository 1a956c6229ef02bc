//! `DELETE /api/collections/{collection}/records/{id}`: deletes a record (204). The store
//! applies relation cascades and refuses when a required reference would break.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use domain::WriteOp;

use super::common::{collection_for_read, refuse_view, rule_guard};
use crate::error::{ApiError, ApiResult};
use crate::extract::Auth;
use crate::state::SharedState;

pub async fn delete(
    State(state): State<SharedState>,
    Path((collection, id)): Path<(String, String)>,
    Auth(auth): Auth,
) -> ApiResult<StatusCode> {
    let collection = collection_for_read(&state, &collection)?;
    refuse_view(&collection)?;
    let guard = rule_guard(collection.delete_rule.as_deref(), &auth)?;
    state
        .store
        .write(vec![WriteOp::Delete {
            collection,
            id,
            guard,
        }])
        .await
        .map_err(|error| ApiError::from_store(error.error, "Failed to delete record."))?;
    Ok(StatusCode::NO_CONTENT)
}
