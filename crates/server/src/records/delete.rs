//! `DELETE /api/collections/{collection}/records/{id}`: deletes a record (204) the delete rule lets
//! the caller reach (else 404). The store applies relation cascades and refuses when a required
//! reference would break; the record's files are removed after the commit. The checks and the write
//! are the write pipeline's (`pipeline`), as for batch items.

use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, Method, StatusCode};
use serde_json::Map;

use super::pipeline::{self, Action};
use crate::error::ApiResult;
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
    let prepared = pipeline::prepare(
        &state,
        Action::Delete(id),
        &collection,
        &auth,
        pipeline::Meta {
            method: &method,
            headers: &headers,
            context: rules::contexts::DEFAULT,
        },
        raw_query.as_deref(),
        Map::new(),
        Vec::new(),
        &[],
    )
    .await?;
    pipeline::execute(&state, vec![prepared], None)
        .await
        .map_err(|(_, error)| error)?;
    Ok(StatusCode::NO_CONTENT)
}
