//! `POST /api/collections/{collection}/records`: creates a record (200, not 201).
//!
//! PocketBase's order: a superusers-only create rule is a 403; then the create rule is checked
//! against the would-be record (values cast, modifiers applied, `verified` unset) and
//! `@request.body`, answering 400 when it fails, before any field is validated. The checks, the
//! upload plan and the write itself are the write pipeline's (`pipeline`), shared with batch items.

use axum::Json;
use axum::extract::{RawQuery, Request, State};
use serde_json::Value;

use super::common::{RequestMeta, refuse_view, target_for_write};
use super::pipeline::{self, Meta};
use super::query::QueryParams;
use crate::error::{ApiError, ApiResult};
use crate::extract::{Auth, Path};
use crate::state::SharedState;

pub async fn create(
    State(state): State<SharedState>,
    Path(collection): Path<String>,
    Auth(auth): Auth,
    RawQuery(raw_query): RawQuery,
    request: Request,
) -> ApiResult<axum::response::Response> {
    let target = target_for_write(&state, &collection).await?;
    refuse_view(&target.collection)?;
    let meta = RequestMeta::of(&request);
    let hooked = crate::scripts::of(&state)
        .filter(|s| {
            s.registry()
                .applies(HOOK, &target.collection.name, &target.collection.id)
        })
        .cloned();
    let parts = hooked.as_ref().map(|_| request_parts(&request));
    let limit = pipeline::body_limit(&state, &target.collection);
    let (body, files) = pipeline::read_body_with_files(request, &state, limit).await?;
    let params = QueryParams::parse(raw_query.as_deref());
    let parsed_body = hooked.as_ref().map(|_| Value::Object(body.clone()));
    let prepared = pipeline::prepare_create(
        &state,
        target,
        &auth,
        Meta {
            method: &meta.method,
            headers: &meta.headers,
            context: rules::contexts::DEFAULT,
        },
        params,
        body,
        files,
    )
    .await?;
    if let (Some(scripts), Some(parts)) = (hooked, parts) {
        return with_request_hook(&state, &scripts, &parts, parsed_body, prepared).await;
    }
    pipeline::execute_one_answer(
        &state,
        prepared,
        "the store did not report the created record",
    )
    .await
}

const HOOK: &str = "onRecordCreateRequest";

/// The request's head, kept for hooks (the body is read by the handler).
pub(super) fn request_parts(request: &Request) -> axum::http::request::Parts {
    let mut builder = axum::http::Request::builder()
        .method(request.method().clone())
        .uri(request.uri().clone())
        .version(request.version());
    if let Some(headers) = builder.headers_mut() {
        *headers = request.headers().clone();
    }
    let (mut parts, ()) = builder
        .body(())
        .unwrap_or_else(|_| axum::http::Request::new(()))
        .into_parts();
    if let Some(peer) = crate::peer::of(request.extensions()) {
        parts.extensions.insert(axum::extract::ConnectInfo(peer));
    }
    parts
}

/// The create behind `onRecordCreateRequest`: the hooks see the would-be record; what they
/// change on it before `e.next()` is written.
async fn with_request_hook(
    state: &SharedState,
    scripts: &std::sync::Arc<crate::state::scripts::Scripts>,
    parts: &axum::http::request::Parts,
    parsed_body: Option<Value>,
    prepared: pipeline::Prepared,
) -> ApiResult<axum::response::Response> {
    use axum::response::IntoResponse;
    let Some((collection, data)) = prepared.create_data() else {
        return Err(ApiError::internal("a create without values"));
    };
    let collection = collection.clone();
    let data = data.clone();
    let record = serde_json::json!({
        "collectionId": collection.id,
        "data": Value::Object(data.clone()),
        "isNew": true,
    });
    let slot = std::sync::Arc::new(std::sync::Mutex::new(Some(prepared)));
    let answer: std::sync::Arc<std::sync::Mutex<Option<Value>>> = Default::default();
    let core = {
        let state = state.clone();
        let slot = slot.clone();
        let answer = answer.clone();
        let handle = tokio::runtime::Handle::current();
        Box::new(move |args: Value| -> hooks::HostResult {
            let taken = crate::scripts::lock(&slot).take();
            let Some(mut prepared) = taken else {
                return Ok(Value::Null);
            };
            let exported = args.get("record").cloned().unwrap_or(Value::Null);
            let mut changed = crate::scripts::records::changed_fields(&data, &exported);
            // A hook's `setPassword` is not taken from here (the hash field would be blanked).
            changed.remove("password");
            prepared.override_fields(changed);
            match handle.block_on(pipeline::execute_one(&state, prepared)) {
                Ok(Some(json)) => {
                    *crate::scripts::lock(&answer) = Some(json.clone());
                    Ok(serde_json::json!({ "record": { "data": json, "stored": true } }))
                }
                Ok(None) => Ok(Value::Null),
                Err(error) => Err(hooks::HostError::Api {
                    status: error.status.as_u16(),
                    message: error.message,
                    data: error.data,
                }),
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
        serde_json::json!({ "record": record }),
        core,
    )
    .await?;
    let fields = parts.uri.query().and_then(|q| {
        serde_urlencoded::from_str::<Vec<(String, String)>>(q)
            .ok()?
            .into_iter()
            .find(|(k, _)| k == "fields")
            .map(|(_, v)| v)
    });
    if let Some(written) = outcome.written {
        return Ok(crate::scripts::render(&written, fields.as_deref(), false));
    }
    match crate::scripts::lock(&answer).take() {
        Some(json) => Ok(Json(json).into_response()),
        None => Ok(crate::scripts::render(&Value::Null, None, false)),
    }
}
