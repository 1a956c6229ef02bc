//! `POST /api/collections/{collection}/records`: creates a record (200, not 201).

use axum::Json;
use axum::extract::{Path, RawQuery, Request, State};
use domain::values::{self, ApplyContext};
use domain::{WriteOp, WriteResult};
use serde_json::Value;

use super::common::{
    collection_for_write, read_body, refuse_view, respond_with_record, rule_guard,
};
use super::query::QueryParams;
use super::write;
use crate::error::{ApiError, ApiResult};
use crate::extract::Auth;
use crate::state::SharedState;

const FAILED: &str = "Failed to create record.";

pub async fn create(
    State(state): State<SharedState>,
    Path(collection): Path<String>,
    Auth(auth): Auth,
    RawQuery(raw_query): RawQuery,
    request: Request,
) -> ApiResult<Json<Value>> {
    let collection = collection_for_write(&state, &collection)?;
    refuse_view(&collection)?;
    let body = read_body(request, &state).await?;
    let guard = rule_guard(collection.create_rule.as_deref(), &auth)?;
    let params = QueryParams::parse(raw_query.as_deref());

    let mut input = write::parse_input(&collection, &body, &auth);
    if collection.is_auth() {
        // FIXME: a non-superuser passing the collection's manageRule may also set `verified`;
        // that needs the rule evaluated against the new row, which only the store can do.
        let errors = write::auth_form_errors(&body, &input, None, auth.is_superuser()).await;
        if !errors.is_empty() {
            return Err(ApiError::validation(FAILED, errors));
        }
    }
    // FIXME(#4): PocketBase checks the create rule before validating, so a request the rule
    // rejects never learns about invalid values; the guard runs in the store after validation
    // here, until the rules crate can evaluate a rule on a row in memory.
    let now = domain::time::now();
    let ctx = ApplyContext {
        creating: true,
        now: &now,
    };
    let mut data = values::build(
        &collection,
        &values::blank_record(&collection),
        &input,
        &ctx,
    )
    .map_err(|errors| ApiError::validation(FAILED, errors))?;
    write::hash_passwords(&state, &mut input).await?;
    write::store_hashes(&input, &mut data);

    let results = state
        .store
        .write(vec![WriteOp::Create {
            collection: collection.clone(),
            data,
            guard,
        }])
        .await
        .map_err(|error| ApiError::from_store(error.error, FAILED))?;
    let Some(WriteResult::Created(record)) = results.into_iter().next() else {
        return Err(ApiError::internal(
            "the store did not report the created record",
        ));
    };
    respond_with_record(&state, &auth, &collection, record, &params).await
}
