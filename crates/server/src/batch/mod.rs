//! `POST /api/batch`: several record writes (create, update, upsert, delete) in one
//! transaction, as PocketBase's batch API runs them. Off unless the `batch` settings enable
//! it; JSON or multipart (`@jsonPayload` with files under `requests.N.<field>` or
//! `requests[N].<field>`). Each item is prepared as the records endpoints prepare it (rules,
//! modifiers, files), then every write goes to the store at once; any failure rolls back all
//! of them and answers PocketBase's nested error.

#[cfg(test)]
mod tests;

use crate::routing::Routes;
use std::time::{Duration, Instant};

use axum::Json;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use domain::{FieldError, ValidationErrors};
use serde_json::{Map, Value, json};

use crate::error::{ApiError, ApiResult};
use crate::extract::{Auth, BodyError, parse_body_with_files};
use crate::files::upload::UploadedFile;
use crate::records::pipeline::{self, Action};
use crate::state::SharedState;

/// PocketBase's batch body limit when `maxBodySize` is 0: 128 MiB.
const DEFAULT_MAX_BODY: u64 = 128 << 20;

pub fn router() -> Routes {
    Routes::new().route(
        "/api/batch",
        crate::routing::post(batch)
            // The batch has its own limit, from the settings, applied in the handler.
            .body_limit(DefaultBodyLimit::disable()),
    )
}

/// One item of the batch, as sent.
struct Item {
    method: Method,
    url: String,
    headers: Map<String, Value>,
    body: Map<String, Value>,
    files: Vec<UploadedFile>,
}

async fn batch(
    State(state): State<SharedState>,
    Auth(auth): Auth,
    request: Request,
) -> ApiResult<Response> {
    let settings = crate::settings::current(&state).await?;
    if !settings.batch.enabled {
        return Err(ApiError::forbidden("Batch requests are not allowed."));
    }
    let limit = match settings.batch.max_body_size {
        0 => DEFAULT_MAX_BODY,
        n => n,
    };
    let (request, exceeded) =
        crate::extract::limit_request(request, limit).map_err(|_| ApiError::too_large())?;
    let outer_headers = request.headers().clone();
    let (body, files) =
        parse_body_with_files(request, &state)
            .await
            .map_err(|error| match error {
                _ if exceeded.load(std::sync::atomic::Ordering::Relaxed) => ApiError::too_large(),
                BodyError::TooLarge => ApiError::too_large(),
                _ => ApiError::bad_request_msg("Failed to read the submitted batch data."),
            })?;
    let items = read_items(&body, files, settings.batch.max_requests)?;
    let timeout = Duration::from_secs(settings.batch.timeout.max(1));
    run(&state, &auth, &outer_headers, items, timeout).await
}

/// Whether one item of `requests` reads as PocketBase's typed request: an object (or `null`)
/// whose `method` and `url` are texts, `body` an object and `headers` an object of texts,
/// each of them possibly `null` or missing.
fn item_reads(item: &Value) -> bool {
    let Value::Object(item) = item else {
        return item.is_null();
    };
    let text = |key: &str| matches!(item.get(key), None | Some(Value::Null | Value::String(_)));
    let body = matches!(
        item.get("body"),
        None | Some(Value::Null | Value::Object(_))
    );
    let headers = match item.get("headers") {
        None | Some(Value::Null) => true,
        Some(Value::Object(headers)) => headers
            .values()
            .all(|value| matches!(value, Value::Null | Value::String(_))),
        Some(_) => false,
    };
    text("method") && text("url") && body && headers
}

/// Checks the request list and hands each item its files.
fn read_items(
    body: &Map<String, Value>,
    files: Vec<UploadedFile>,
    max_requests: u64,
) -> ApiResult<Vec<Item>> {
    let invalid = |data: Value| {
        let mut error = ApiError::bad_request_msg("Invalid batch request data.");
        error.data = data;
        error
    };
    let list = match body.get("requests") {
        Some(Value::Array(list)) if !list.is_empty() => list,
        Some(Value::Array(_)) | None | Some(Value::Null) => {
            let mut errors = ValidationErrors::new();
            errors.add("requests", FieldError::required());
            return Err(invalid(errors.into_json()));
        }
        Some(_) => {
            return Err(ApiError::bad_request_msg(
                "Failed to read the submitted batch data.",
            ));
        }
    };
    // PocketBase reads the whole list into typed requests before it checks anything: an item
    // that is not an object (or null), or a field of the wrong type, fails the read itself,
    // whatever the list's length (observed on 0.40.6).
    if !list.iter().all(item_reads) {
        return Err(ApiError::bad_request_msg(
            "Failed to read the submitted batch data.",
        ));
    }
    if list.len() as u64 > max_requests {
        return Err(invalid(json!({"requests": {
            "code": "validation_length_too_long",
            "message": format!("The length must be no more than {max_requests}."),
            "params": {"max": max_requests, "min": 0}
        }})));
    }
    let mut items = Vec::with_capacity(list.len());
    let mut item_errors = Map::new();
    for (index, raw) in list.iter().enumerate() {
        let object = raw.as_object().cloned().unwrap_or_default();
        let text = |key: &str| {
            object
                .get(key)
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_owned()
        };
        let (method_text, url) = (text("method"), text("url"));
        let mut errors = ValidationErrors::new();
        let method = match method_text.to_ascii_uppercase().as_str() {
            "" => {
                errors.add("method", FieldError::required());
                None
            }
            "GET" => Some(Method::GET),
            "POST" => Some(Method::POST),
            "PUT" => Some(Method::PUT),
            "PATCH" => Some(Method::PATCH),
            "DELETE" => Some(Method::DELETE),
            _ => {
                errors.add(
                    "method",
                    FieldError::new("validation_in_invalid", "Must be a valid value."),
                );
                None
            }
        };
        if url.is_empty() {
            errors.add("url", FieldError::required());
        }
        if !errors.is_empty() {
            item_errors.insert(index.to_string(), errors.into_json());
            continue;
        }
        let headers = match object.get("headers") {
            Some(Value::Object(h)) => h.clone(),
            _ => Map::new(),
        };
        let body = match object.get("body") {
            Some(Value::Object(b)) => b.clone(),
            _ => Map::new(),
        };
        items.push(Item {
            method: method.unwrap_or(Method::GET),
            url,
            headers,
            body,
            files: Vec::new(),
        });
    }
    if !item_errors.is_empty() {
        return Err(invalid(json!({ "requests": item_errors })));
    }
    for mut file in files {
        let Some((index, key)) = item_file_key(&file.key) else {
            continue;
        };
        if let Some(item) = items.get_mut(index) {
            file.key = key;
            // PocketBase renames a batch upload twice (once on extraction, once on the inner
            // request), so stored names carry two random parts; SDK users see that shape.
            file.stored_name = crate::files::naming::stored_name(&file.stored_name, file.mime);
            item.files.push(file);
        }
    }
    Ok(items)
}

/// `requests.N.field` or `requests[N].field` → `(N, field)`.
fn item_file_key(key: &str) -> Option<(usize, String)> {
    let rest = key.strip_prefix("requests")?;
    let (index, field) = if let Some(rest) = rest.strip_prefix('.') {
        rest.split_once('.')?
    } else {
        let rest = rest.strip_prefix('[')?;
        let (index, field) = rest.split_once(']')?;
        (index, field.strip_prefix('.')?)
    };
    Some((index.parse().ok()?, field.to_owned()))
}

/// What one item asks for, from its method and URL; `None` for anything but the four
/// record writes on this server.
fn route(
    method: &Method,
    url: &str,
    body: &Map<String, Value>,
) -> Option<(Action, String, Option<String>)> {
    if !url.starts_with('/') || url.starts_with("//") {
        return None;
    }
    let (path, query) = match url.split_once('?') {
        Some((path, query)) => (path, Some(query.to_owned())),
        None => (url, None),
    };
    let segments: Vec<&str> = path.trim_end_matches('/').split('/').collect();
    let decode = |s: &str| {
        url::form_urlencoded::parse(format!("x={s}").as_bytes())
            .next()
            .map(|(_, v)| v.into_owned())
            .unwrap_or_default()
    };
    match (method.as_str(), segments.as_slice()) {
        ("POST", ["", "api", "collections", collection, "records"]) => {
            Some((Action::Create, decode(collection), query))
        }
        ("PUT", ["", "api", "collections", collection, "records"]) => {
            let id = body
                .get("id")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_owned();
            Some((Action::Upsert(id), decode(collection), query))
        }
        ("PATCH", ["", "api", "collections", collection, "records", id]) => {
            Some((Action::Update(decode(id)), decode(collection), query))
        }
        ("DELETE", ["", "api", "collections", collection, "records", id]) => {
            Some((Action::Delete(decode(id)), decode(collection), query))
        }
        _ => None,
    }
}

/// The nested error PocketBase answers when item `index` fails.
fn item_failed(index: usize, error: ApiError) -> ApiError {
    let mut outer = ApiError::bad_request_msg("Batch transaction failed.");
    outer.data = json!({"requests": {index.to_string(): {
        "code": "batch_request_failed",
        "message": "Batch request failed.",
        "response": {"data": error.data, "message": error.message, "status": error.status.as_u16()},
    }}});
    outer
}

async fn run(
    state: &SharedState,
    auth: &domain::AuthContext,
    outer_headers: &HeaderMap,
    items: Vec<Item>,
    timeout: Duration,
) -> ApiResult<Response> {
    // The timeout covers everything: preparing (rules, lookups, hashing) and the store
    // transaction, which the store interrupts and rolls back when the deadline passes.
    let deadline = Instant::now() + timeout;
    let timed_out = || ApiError::bad_request_msg("Batch transaction timed out.");
    let prepared = tokio::time::timeout_at(
        deadline.into(),
        prepare_all(state, auth, outer_headers, items),
    )
    .await
    .map_err(|_| timed_out())??;
    finish(state, prepared, deadline).await
}

async fn prepare_all(
    state: &SharedState,
    auth: &domain::AuthContext,
    outer_headers: &HeaderMap,
    items: Vec<Item>,
) -> ApiResult<Vec<pipeline::Prepared>> {
    let mut prepared: Vec<pipeline::Prepared> = Vec::with_capacity(items.len());
    let mut created = Vec::new();
    for (index, item) in items.into_iter().enumerate() {
        let Some((action, collection, query)) = route(&item.method, &item.url, &item.body) else {
            return Err(item_failed(index, ApiError::bad_request()));
        };
        // Item headers apply over the outer ones, except the caller's identity.
        let mut headers = outer_headers.clone();
        for (name, value) in &item.headers {
            let (Ok(name), Some(Ok(value))) = (
                HeaderName::try_from(name.as_str()),
                value.as_str().map(HeaderValue::from_str),
            ) else {
                continue;
            };
            if name != header::AUTHORIZATION {
                headers.insert(name, value);
            }
        }
        let method = item.method.clone();
        match pipeline::prepare(
            state,
            action,
            &collection,
            auth,
            pipeline::Meta {
                method: &method,
                headers: &headers,
                context: rules::contexts::BATCH,
            },
            query.as_deref(),
            item.body,
            item.files,
            &created,
        )
        .await
        {
            Ok(one) => {
                created.extend(one.created());
                prepared.push(one);
            }
            Err(error) => return Err(item_failed(index, error)),
        }
    }
    Ok(prepared)
}

async fn finish(
    state: &SharedState,
    prepared: Vec<pipeline::Prepared>,
    deadline: Instant,
) -> ApiResult<Response> {
    let results = match pipeline::execute(state, prepared, Some(deadline)).await {
        Ok(results) => results,
        Err(_) if Instant::now() >= deadline => {
            return Err(ApiError::bad_request_msg("Batch transaction timed out."));
        }
        Err((index, error)) => return Err(item_failed(index, error)),
    };
    let mut out = Vec::with_capacity(results.len());
    for (done, result) in results {
        match pipeline::respond(state, &done, result).await {
            Ok(Some(body)) => out.push(json!({"body": body, "status": 200})),
            Ok(None) => out.push(json!({"body": null, "status": 204})),
            Err(error) => return Err(error),
        }
    }
    Ok((StatusCode::OK, Json(Value::Array(out))).into_response())
}
