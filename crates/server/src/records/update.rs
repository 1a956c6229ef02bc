//! `PATCH /api/collections/{collection}/records/{id}`: changes the sent fields. The changes
//! (modifiers included) are applied to the record as it is inside the write transaction, so
//! concurrent `views+` requests never lose an increment. The checks, the upload plan and the write
//! are the write pipeline's (`pipeline`), shared with batch items.

use axum::Json;
use axum::extract::{Path, RawQuery, Request, State};
use serde_json::Value;

use super::common::{RequestMeta, refuse_view, target_for_write};
use super::pipeline::{self, Meta};
use super::query::QueryParams;
use crate::error::{ApiError, ApiResult};
use crate::extract::Auth;
use crate::state::SharedState;

pub async fn update(
    State(state): State<SharedState>,
    Path((collection, id)): Path<(String, String)>,
    Auth(auth): Auth,
    RawQuery(raw_query): RawQuery,
    request: Request,
) -> ApiResult<Json<Value>> {
    let target = target_for_write(&state, &collection)?;
    refuse_view(&target.collection)?;
    let meta = RequestMeta::of(&request);
    let limit = pipeline::body_limit(&state, &target.collection);
    let (body, files) = pipeline::read_body_with_files(request, &state, limit).await?;
    let params = QueryParams::parse(raw_query.as_deref());
    let prepared = pipeline::prepare_update(
        &state,
        target,
        id,
        &auth,
        Meta {
            method: &meta.method,
            headers: &meta.headers,
            context: rules::contexts::DEFAULT,
        },
        params,
        body,
        files,
        &[],
    )
    .await?;
    match pipeline::execute_one(&state, prepared).await? {
        Some(record) => Ok(Json(record)),
        None => Err(ApiError::internal(
            "the store did not report the updated record",
        )),
    }
}
