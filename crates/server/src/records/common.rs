//! What every records handler shares: finding the collection (with PocketBase's two 404
//! wordings), refusing writes to views, turning a rule into a guard, reading the body, and
//! answering with one record.

use std::sync::Arc;

use axum::Json;
use axum::extract::Request;
use domain::{AuthContext, Collection, Record, SqlFragment};
use rules::RuleOutcome;
use serde_json::Value;

use super::expand::expand_records;
use super::query;
use crate::error::{ApiError, ApiResult};
use crate::extract::{BodyError, parse_body};
use crate::response::{apply_fields, record_json};
use crate::state::SharedState;

/// The JSON answer for one record: its public shape for `auth`, expanded and filtered as the
/// query asks.
pub(super) async fn respond_with_record(
    state: &SharedState,
    auth: &AuthContext,
    collection: &Arc<Collection>,
    record: Record,
    params: &query::QueryParams,
) -> ApiResult<Json<Value>> {
    let records = [record];
    let mut outputs = [record_json(collection, &records[0], auth)];
    expand_records(
        state,
        auth,
        collection,
        &records,
        &mut outputs,
        params.first("expand"),
    )
    .await?;
    let [mut output] = outputs;
    apply_fields(&mut output, params.text("fields"))?;
    Ok(Json(output))
}

/// The collection named in a read or delete path, or PocketBase's 404.
pub(super) fn collection_for_read(
    state: &SharedState,
    id_or_name: &str,
) -> ApiResult<Arc<Collection>> {
    state
        .schema()
        .get(id_or_name)
        .cloned()
        .ok_or_else(|| ApiError::not_found_msg("Missing collection context."))
}

/// The collection named in a create or update path (PocketBase words this 404 differently).
pub(super) fn collection_for_write(
    state: &SharedState,
    id_or_name: &str,
) -> ApiResult<Arc<Collection>> {
    state
        .schema()
        .get(id_or_name)
        .cloned()
        .ok_or_else(|| ApiError::not_found_msg("Missing or invalid collection context."))
}

/// View collections are read-only.
pub(super) fn refuse_view(collection: &Collection) -> ApiResult<()> {
    if collection.is_view() {
        Err(ApiError::bad_request_msg("Unsupported collection type."))
    } else {
        Ok(())
    }
}

/// What a collection rule means for this caller: 403 when only superusers may act, else the
/// predicate rows must satisfy (`None` when unrestricted).
pub(super) fn rule_guard(rule: Option<&str>, auth: &AuthContext) -> ApiResult<Option<SqlFragment>> {
    match rules::rule_outcome(rule, auth) {
        RuleOutcome::SuperusersOnly => Err(ApiError::forbidden(
            "Only superusers can perform this action.",
        )),
        RuleOutcome::Allow => Ok(None),
        RuleOutcome::Filter(predicate) => Ok(Some(predicate)),
    }
}

/// Reads a record body after the collection checks (PocketBase answers an unknown collection
/// before it looks at the body), with the same errors as [`crate::extract::RecordBody`].
pub(super) async fn read_body(
    request: Request,
    state: &SharedState,
) -> ApiResult<serde_json::Map<String, serde_json::Value>> {
    parse_body(request, state)
        .await
        .map_err(|error| match error {
            BodyError::UnsupportedContentType => {
                ApiError::bad_request_msg("Unsupported Content-Type.")
            }
            BodyError::Malformed => ApiError::bad_request(),
            BodyError::TooLarge => ApiError::too_large(),
        })
}
