//! `PATCH /api/collections/{collection}/records/{id}`: changes the sent fields. The changes
//! (modifiers included) are applied to the record as it is inside the write transaction, so
//! concurrent `views+` requests never lose an increment.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, RawQuery, Request, State};
use domain::values::{self, ApplyContext, RecordInput};
use domain::{AuthContext, Collection, Record, StoreError, UpdateFn, WriteOp, WriteResult};
use rules::RuleOutcome;
use serde_json::Value;

use super::common::{
    collection_for_write, read_body, refuse_view, respond_with_record, rule_guard,
};
use super::query::QueryParams;
use super::write;
use crate::error::{ApiError, ApiResult};
use crate::extract::Auth;
use crate::state::SharedState;

const FAILED: &str = "Failed to update record.";

pub async fn update(
    State(state): State<SharedState>,
    Path((collection, id)): Path<(String, String)>,
    Auth(auth): Auth,
    RawQuery(raw_query): RawQuery,
    request: Request,
) -> ApiResult<Json<Value>> {
    let collection = collection_for_write(&state, &collection)?;
    refuse_view(&collection)?;
    let body = read_body(request, &state).await?;
    let guard = rule_guard(collection.update_rule.as_deref(), &auth)?;
    let params = QueryParams::parse(raw_query.as_deref());
    let current = state
        .store
        .get_record(collection.clone(), &id, guard.iter().cloned().collect())
        .await?
        .ok_or_else(ApiError::not_found)?;

    let mut input = write::parse_input(&collection, &body, &auth);
    if collection.is_auth() {
        let manager = is_manager(&state, &auth, &collection, &id).await?;
        let errors = write::auth_form_errors(&body, &input, Some(&current), manager).await;
        if !errors.is_empty() {
            return Err(ApiError::validation(FAILED, errors));
        }
    }
    let now = domain::time::now();
    // Validate against the record as read, so that errors come back before any hashing; the
    // write validates again against the row it actually changes.
    let ctx = ApplyContext {
        creating: false,
        now: &now,
    };
    values::build(&collection, &current.data, &input, &ctx)
        .map_err(|errors| ApiError::validation(FAILED, errors))?;
    write::hash_passwords(&state, &mut input).await?;

    let results = state
        .store
        .write(vec![WriteOp::Update {
            collection: collection.clone(),
            id,
            guard,
            apply: update_fn(collection.clone(), input, now),
        }])
        .await
        .map_err(|error| ApiError::from_store(error.error, FAILED))?;
    let Some(WriteResult::Updated(record)) = results.into_iter().next() else {
        return Err(ApiError::internal(
            "the store did not report the updated record",
        ));
    };
    respond_with_record(&state, &auth, &collection, record, &params).await
}

/// The change as a function of the current row. An auth record gets a new token key when
/// its password is set or its email changes, which revokes every token issued before.
fn update_fn(collection: Arc<Collection>, input: RecordInput, now: String) -> UpdateFn {
    Box::new(move |record: &Record| {
        let ctx = ApplyContext {
            creating: false,
            now: &now,
        };
        let mut data = values::build(&collection, &record.data, &input, &ctx)
            .map_err(StoreError::Validation)?;
        if collection.is_auth() && !input.touches("tokenKey") {
            let password_set = input.password("password").is_some_and(|p| !p.is_empty());
            let email_changed = data.get("email") != record.data.get("email");
            if password_set || email_changed {
                data.insert(
                    "tokenKey".into(),
                    Value::String(domain::ids::random_alnum(50)),
                );
            }
        }
        Ok(data)
    })
}

/// Whether `auth` may manage the auth record `id` (change its email, verified flag or
/// password without the old one): superusers, and callers passing the manage rule.
async fn is_manager(
    state: &SharedState,
    auth: &AuthContext,
    collection: &Arc<Collection>,
    id: &str,
) -> ApiResult<bool> {
    let rule = collection
        .auth
        .as_ref()
        .and_then(|options| options.manage_rule.as_deref());
    Ok(match rules::rule_outcome(rule, auth) {
        RuleOutcome::SuperusersOnly => false,
        RuleOutcome::Allow => true,
        RuleOutcome::Filter(predicate) => state
            .store
            .get_record(collection.clone(), id, vec![predicate])
            .await?
            .is_some(),
    })
}
