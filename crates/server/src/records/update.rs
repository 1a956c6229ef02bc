//! `PATCH /api/collections/{collection}/records/{id}`: changes the sent fields. The changes
//! (modifiers included) are applied to the record as it is inside the write transaction, so
//! concurrent `views+` requests never lose an increment. The checks, the upload plan and the write
//! are the write pipeline's (`pipeline`), shared with batch items.
//!
//! `onRecordUpdateRequest` handlers run after the rules (a miss is the 404 before any hook):
//! `e.record` holds the stored record with the submitted values applied, `e.record.original()`
//! the stored one, and what they change before `e.next()` is written too.

use std::sync::{Arc, Mutex};

use axum::extract::{RawQuery, Request, State};
use axum::response::Response;
use serde_json::{Map, Value, json};

use super::common::{RequestMeta, refuse_view, target_for_write};
use super::create::request_parts;
use super::hooks;
use super::pipeline::{self, Meta};
use super::query::QueryParams;
use crate::error::{ApiError, ApiResult};
use crate::extract::{Auth, Path};
use crate::state::SharedState;

const HOOK: &str = "onRecordUpdateRequest";

pub async fn update(
    State(state): State<SharedState>,
    Path((collection, id)): Path<(String, String)>,
    Auth(auth): Auth,
    RawQuery(raw_query): RawQuery,
    request: Request,
) -> ApiResult<Response> {
    let target = target_for_write(&state, &collection).await?;
    refuse_view(&target.collection)?;
    let meta = RequestMeta::of(&request);
    let hooked = hooks::hooked(&state, HOOK, &target.collection);
    let parts = hooked.as_ref().map(|_| request_parts(&request));
    let limit = pipeline::body_limit(&state, &target.collection);
    let (body, files) = pipeline::read_body_with_files(request, &state, limit).await?;
    let params = QueryParams::parse(raw_query.as_deref());
    let parsed_body = hooked.as_ref().map(|_| Value::Object(body.clone()));
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
    if let (Some(scripts), Some(parts)) = (hooked, parts) {
        return with_request_hook(&state, &scripts, &parts, parsed_body, prepared).await;
    }
    pipeline::execute_one_answer(
        &state,
        prepared,
        "the store did not report the updated record",
    )
    .await
}

/// The update behind `onRecordUpdateRequest`.
async fn with_request_hook(
    state: &SharedState,
    scripts: &Arc<crate::state::scripts::Scripts>,
    parts: &axum::http::request::Parts,
    parsed_body: Option<Value>,
    prepared: pipeline::Prepared,
) -> ApiResult<Response> {
    let Some((collection, before, after)) = prepared.update_data() else {
        return Err(ApiError::internal("an update without values"));
    };
    let (collection, before, after) = (collection.clone(), before.clone(), after.clone());
    let record = json!({
        "collectionId": collection.id,
        "data": Value::Object(after.clone()),
        "isNew": false,
        "original": Value::Object(before),
    });
    // Password fields hold hashes the event shows blank: a hook cannot write them this way.
    let secret: Vec<String> = collection
        .fields
        .iter()
        .filter(|f| matches!(f.kind, domain::FieldKind::Password(_)) || f.name == "id")
        .map(|f| f.name.clone())
        .collect();
    let slot = Arc::new(Mutex::new(Some(prepared)));
    let answer: hooks::Answer = Default::default();
    let core = {
        let (state, answer) = (state.clone(), answer.clone());
        let handle = tokio::runtime::Handle::current();
        Box::new(move |args: Value| -> ::hooks::HostResult {
            let Some(mut prepared) = crate::scripts::lock(&slot).take() else {
                return Ok(Value::Null);
            };
            let exported = args.get("record").cloned().unwrap_or(Value::Null);
            let mut changed: Map<String, Value> =
                crate::scripts::records::changed_fields(&after, &exported);
            changed.retain(|k, _| !secret.contains(k));
            prepared.override_fields(changed);
            match handle.block_on(pipeline::execute_one(&state, prepared)) {
                Ok(Some(json)) => {
                    *crate::scripts::lock(&answer) = Some(json.clone());
                    Ok(json!({ "record": { "data": json, "stored": true } }))
                }
                Ok(None) => Ok(Value::Null),
                Err(error) => Err(hooks::host_error(error)),
            }
        }) as crate::scripts::host::Core
    };
    let outcome = crate::scripts::records::request_chain(
        state,
        scripts,
        HOOK,
        &collection,
        parts,
        parsed_body,
        json!({ "record": record }),
        core,
    )
    .await?;
    Ok(hooks::finish(&outcome, &answer, parts, None))
}
