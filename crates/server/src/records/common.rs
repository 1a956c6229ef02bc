//! What every records handler shares: finding the collection (with PocketBase's two 404
//! wordings), refusing writes to views, turning a rule into a guard, reading the body, and
//! answering with one record.

use std::sync::Arc;

use axum::Json;
use axum::extract::Request;
use axum::http::{HeaderMap, Method};
use domain::values::RecordInput;
use domain::{AuthContext, Collection, Record, RecordData, Schema};
use rules::{CollectionRules, RequestContext, Rule};
use serde_json::{Map, Value};

use super::expand::expand_records_for;
use super::query;
use crate::access;
use crate::error::{ApiError, ApiResult};
use crate::response::{apply_fields, record_json};
use crate::state::SharedState;

/// Whether records of `collection` are answered as they are, with nothing to add or change:
/// no `expand` or `fields`, no enrich hook, no auth collection (whose managers may see
/// emails). Such answers are serialized straight from the records
/// ([`crate::response::RecordOut`]).
pub(super) fn plain(
    state: &SharedState,
    collection: &Collection,
    params: &query::QueryParams,
) -> bool {
    !collection.is_auth()
        && params.first("expand").is_none_or(str::is_empty)
        && params.text("fields").is_empty()
        && crate::response::RecordOut::fits(collection)
        && !super::hooks::enriched(state, collection)
}

/// Serialized JSON as a 200 answer.
pub(super) fn json_answer(body: Vec<u8>) -> axum::response::Response {
    use axum::response::IntoResponse;
    (
        [(
            axum::http::header::CONTENT_TYPE,
            axum::http::HeaderValue::from_static("application/json"),
        )],
        body,
    )
        .into_response()
}

/// The JSON answer for one record: its public shape for `auth`, expanded, enriched by
/// `onRecordEnrich` handlers and filtered as the query asks.
pub(super) async fn respond_with_record(
    state: &SharedState,
    ctx: &RequestContext,
    collection: &Arc<Collection>,
    record: Record,
    params: &query::QueryParams,
) -> ApiResult<Json<Value>> {
    respond_with_record_as(state, ctx, collection, record, params, None).await
}

/// [`respond_with_record`] for a record a request hook had on its event: `exported` (the
/// record as the script left it) also hides keys and adds custom data, before `fields`.
pub(super) async fn respond_with_record_as(
    state: &SharedState,
    ctx: &RequestContext,
    collection: &Arc<Collection>,
    record: Record,
    params: &query::QueryParams,
    exported: Option<&Value>,
) -> ApiResult<Json<Value>> {
    let records = [record];
    let mut outputs = [record_json(collection, &records[0], &ctx.auth)];
    reveal_managed_emails(state, ctx, collection, &records, &mut outputs).await?;
    expand_records_for(
        state,
        ctx,
        collection,
        &records,
        &mut outputs,
        params.first("expand"),
    )
    .await?;
    if let Some(exported) = exported {
        super::hooks::apply_export(&mut outputs[0], &records[0].data, exported);
    }
    super::hooks::enrich(state, ctx, collection, &records, &mut outputs).await?;
    let [mut output] = outputs;
    apply_fields(&mut output, params.text("fields"))?;
    Ok(Json(output))
}

/// Managers (callers passing an auth collection's manageRule for a record) see its email even
/// when `emailVisibility` is off, as PocketBase shows it to them. One query for the records
/// whose answer needs SQL.
pub(super) async fn reveal_managed_emails(
    state: &SharedState,
    ctx: &RequestContext,
    collection: &Arc<Collection>,
    records: &[Record],
    outputs: &mut [Value],
) -> ApiResult<()> {
    if !collection.is_auth() || ctx.auth.is_superuser() || records.is_empty() {
        return Ok(());
    }
    let rules = state.collection_rules(collection);
    let Some(manage) = rules.manage.as_ref() else {
        return Ok(());
    };
    let managed =
        access::decide_stored_many(state.store.as_ref(), manage, collection, records, ctx).await?;
    for ((record, output), managed) in records.iter().zip(outputs.iter_mut()).zip(managed) {
        if managed
            && let (Some(email), Some(object)) = (record.get("email"), output.as_object_mut())
        {
            object.insert("email".into(), email.clone());
        }
    }
    Ok(())
}

/// View collections are read-only.
pub(super) fn refuse_view(collection: &Collection) -> ApiResult<()> {
    if collection.is_view() {
        Err(ApiError::bad_request_msg("Unsupported collection type."))
    } else {
        Ok(())
    }
}

/// A collection of the current schema snapshot with its compiled rules.
pub(super) struct Target {
    pub schema: Arc<Schema>,
    pub collection: Arc<Collection>,
    pub rules: Arc<CollectionRules>,
}

/// The collection named in a read or delete path, with the schema it came from and its
/// compiled rules, or PocketBase's 404.
pub(super) async fn target_for_read(state: &SharedState, id_or_name: &str) -> ApiResult<Target> {
    target(state, id_or_name, "Missing collection context.").await
}

/// The collection named in a create or update path (PocketBase words this 404 differently).
pub(super) async fn target_for_write(state: &SharedState, id_or_name: &str) -> ApiResult<Target> {
    target(state, id_or_name, "Missing or invalid collection context.").await
}

async fn target(state: &SharedState, id_or_name: &str, missing: &str) -> ApiResult<Target> {
    let mut schema = state.schema();
    if schema.get(id_or_name).is_none() && state.store.shared() {
        // Another node may have created it a moment ago; its notification may still be on
        // the way. Look in the database before saying it does not exist.
        state
            .store
            .catch_up()
            .await
            .map_err(|error| ApiError::from_store(error, missing))?;
        schema = state.schema();
    }
    let collection = schema
        .get(id_or_name)
        .cloned()
        .ok_or_else(|| ApiError::not_found_msg(missing))?;
    let rules = access::collection_rules(state, &schema, &collection);
    Ok(Target {
        schema,
        collection,
        rules,
    })
}

/// 403 when `rule` is superusers-only and the caller is not one (PocketBase answers this
/// before looking at the record or the body).
pub(super) fn refuse_superusers_only(rule: &Rule, auth: &AuthContext) -> ApiResult<()> {
    if matches!(rule, Rule::SuperusersOnly) && !auth.is_superuser() {
        return Err(ApiError::forbidden(
            "Only superusers can perform this action.",
        ));
    }
    Ok(())
}

/// `@request.body` for a create or update: the submitted keys, with every field the body
/// touched replaced by its value in the would-be record (modifiers applied, values cast);
/// passwords stay as sent.
pub(super) fn body_values(
    collection: &Collection,
    body: &Map<String, Value>,
    input: &RecordInput,
    would_be: &RecordData,
) -> Map<String, Value> {
    let mut out = body.clone();
    for field in &collection.fields {
        if !input.touches(&field.name) {
            continue;
        }
        let value = match input.password(&field.name) {
            Some(plain) => Value::String(plain.to_owned()),
            None => would_be.get(&field.name).cloned().unwrap_or(Value::Null),
        };
        out.insert(field.name.clone(), value);
    }
    out
}

/// The method, headers and query of a request, kept for [`access::request_context`] after
/// the body has been consumed.
pub(super) struct RequestMeta {
    pub method: Method,
    pub headers: HeaderMap,
}

impl RequestMeta {
    pub fn of(request: &Request) -> Self {
        RequestMeta {
            method: request.method().clone(),
            headers: request.headers().clone(),
        }
    }
}
