//! What the record request hooks (`onRecord{Update,Delete,View}Request`,
//! `onRecordsListRequest`) and `onRecordEnrich` share on the records side: finding whether a
//! handler applies (a registry lookup, so a request without hooks pays nothing more), running
//! a chain around a core, answering with what the chain left, and shaping a record's JSON
//! with what an enrich handler did (values, hidden keys, custom data).

use std::sync::{Arc, Mutex};

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use domain::{Collection, Record};
use rules::RequestContext;
use serde_json::{Map, Value, json};

use crate::error::{ApiError, ApiResult};
use crate::scripts;
use crate::state::SharedState;
use crate::state::scripts::Scripts;

const ENRICH: &str = "onRecordEnrich";

/// The scripts, when `hook` has a handler for `collection`.
pub(super) fn hooked(
    state: &SharedState,
    hook: &str,
    collection: &Collection,
) -> Option<Arc<Scripts>> {
    scripts::of(state)
        .filter(|s| s.registry().applies(hook, &collection.name, &collection.id))
        .cloned()
}

/// The `fields` query parameter of the request, which also filters what a script writes.
pub(super) fn fields_param(parts: &axum::http::request::Parts) -> Option<String> {
    parts.uri.query().and_then(|q| {
        serde_urlencoded::from_str::<Vec<(String, String)>>(q)
            .ok()?
            .into_iter()
            .find(|(k, _)| k == "fields")
            .map(|(_, v)| v)
    })
}

/// A slot the core fills with its JSON answer, read once the chain is over.
pub(super) type Answer = Arc<Mutex<Option<Value>>>;

/// How a core's failure travels back through `e.next()` (an ApiError keeps its status).
pub(super) fn host_error(error: ApiError) -> hooks::HostError {
    hooks::HostError::Api {
        status: error.status.as_u16(),
        message: error.message,
        data: error.data,
    }
}

/// What a request hook chain is answered with: what a script wrote, else the core's answer
/// (`reached` with no JSON is the core's own status, e.g. a delete's 204), else PocketBase's
/// empty 200 for a chain that ended without `e.next()`.
pub(super) fn finish(
    outcome: &scripts::records::RequestOutcome,
    answer: &Answer,
    parts: &axum::http::request::Parts,
    reached_status: Option<StatusCode>,
) -> Response {
    if let Some(written) = &outcome.written {
        let fields = fields_param(parts);
        return scripts::render(written, fields.as_deref(), false);
    }
    if let Some(json) = scripts::lock(answer).take() {
        return Json(json).into_response();
    }
    let reached = outcome.answer.get("reached").and_then(Value::as_bool) == Some(true);
    match reached_status {
        Some(status) if reached => status.into_response(),
        _ => scripts::render(&Value::Null, None, false),
    }
}

/// The wire form of a stored record as the request hooks see it.
pub(super) fn wire(collection: &Collection, record: &Record) -> Value {
    json!({
        "collectionId": collection.id,
        "data": Value::Object(record.data.clone()),
        "isNew": false,
    })
}

/// The record a hook left on the event (its exported `data`), over `fallback`'s values.
pub(super) fn record_from_export(fallback: &Record, exported: &Value) -> Record {
    match exported.get("data").and_then(Value::as_object) {
        Some(data) => {
            let mut merged = fallback.data.clone();
            for (k, v) in data {
                if merged.contains_key(k) {
                    merged.insert(k.clone(), v.clone());
                }
            }
            Record::new(merged)
        }
        None => fallback.clone(),
    }
}

/// Shapes `output` (a record's public JSON) with what a handler did on the exported record:
/// a visible value it changed (compared with `before`) shows changed, a hidden key goes, and
/// with custom data on, the custom keys are added.
pub(super) fn apply_export(output: &mut Value, before: &Map<String, Value>, exported: &Value) {
    let Some(object) = output.as_object_mut() else {
        return;
    };
    if let Some(data) = exported.get("data").and_then(Value::as_object) {
        for (k, v) in data {
            if before.get(k) != Some(v) && object.contains_key(k) {
                object.insert(k.clone(), v.clone());
            }
        }
    }
    let hidden: Vec<&str> = exported
        .get("hidden")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    for key in &hidden {
        object.remove(*key);
    }
    if let Some(custom) = exported.get("custom").and_then(Value::as_object) {
        for (k, v) in custom {
            if !hidden.contains(&k.as_str()) {
                object.insert(k.clone(), v.clone());
            }
        }
    }
}

/// Whether an `onRecordEnrich` handler applies to `collection`'s records.
pub(super) fn enriched(state: &SharedState, collection: &Collection) -> bool {
    hooked(state, ENRICH, collection).is_some()
}

/// `onRecordEnrich` for the records of one answer (`outputs[i]` is `records[i]`'s JSON):
/// one engine call for them all, only when a handler applies to the collection.
pub(super) async fn enrich(
    state: &SharedState,
    ctx: &RequestContext,
    collection: &Collection,
    records: &[Record],
    outputs: &mut [Value],
) -> ApiResult<()> {
    if records.is_empty() {
        return Ok(());
    }
    let Some(scripts) = hooked(state, ENRICH, collection) else {
        return Ok(());
    };
    let links: Vec<Value> = scripts
        .registry()
        .handlers_for(ENRICH, &collection.name, &collection.id)
        .into_iter()
        .map(|h| json!({ "h": h }))
        .collect();
    let auth = match (ctx.auth.collection(), ctx.auth.record()) {
        (Some(c), Some(r)) => scripts::host::wire(c, r),
        _ => Value::Null,
    };
    let request_info = json!({
        "context": ctx.context,
        "method": ctx.method,
        "headers": ctx.headers.map(),
        "query": ctx.query,
        "body": ctx.body.clone().map(Value::Object).unwrap_or_else(|| json!({})),
        "auth": auth,
    });
    let wires: Vec<Value> = records.iter().map(|r| wire(collection, r)).collect();
    let host = Arc::new(scripts::AppHost::new(state.clone(), scripts.clone()));
    let answer = scripts
        .engine
        .call(
            "enrich",
            json!({ "links": links, "records": wires, "requestInfo": request_info }),
            host,
        )
        .await
        .map_err(|e| scripts::api_error(e, ApiError::bad_request()))?;
    if let Some(exports) = answer.as_array() {
        for ((record, output), exported) in records.iter().zip(outputs.iter_mut()).zip(exports) {
            apply_export(output, &record.data, exported);
        }
    }
    Ok(())
}
