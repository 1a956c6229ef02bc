//! Request bodies as a JSON object, from `application/json`,
//! `application/x-www-form-urlencoded` or `multipart/form-data` (text parts, `@jsonPayload`
//! and file parts, which are named for storage as they are read). An empty body means "no
//! fields".
//!
//! Bounds (see docs/limits.md): the body size is the router's (or the records endpoints'
//! own); JSON (a body or an `@jsonPayload` part) nests at most
//! [`domain::values::MAX_JSON_DEPTH`] deep and holds at most
//! [`domain::values::MAX_JSON_VALUES`] values, checked before it is parsed; a form-encoded
//! body is at most [`MAX_URLENCODED_BYTES`] and a multipart body at most
//! [`MAX_MULTIPART_PARTS`] parts, as in PocketBase (Go's own limits). Parsing a large body is
//! CPU work, done on a blocking thread so the async workers keep serving.

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::header::CONTENT_TYPE;
use serde_json::{Map, Value};

use crate::error::ApiError;
use crate::files::upload::UploadedFile;

/// Largest `application/x-www-form-urlencoded` body (Go's `ParseForm` limit, which
/// PocketBase inherits: a larger one is the generic 400).
pub const MAX_URLENCODED_BYTES: usize = 10 << 20;

/// Most parts of a `multipart/form-data` body, files included (Go's `multipart` default,
/// which PocketBase inherits: one more part is the generic 400).
pub const MAX_MULTIPART_PARTS: usize = 1000;

/// Bodies at least this large are parsed on a blocking thread.
const OFFLOAD_BYTES: usize = 64 << 10;

/// Why a body could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyError {
    UnsupportedContentType,
    Malformed,
    TooLarge,
}

impl BodyError {
    /// The cause the request log (and the `--dev` console) records for a malformed body.
    pub const MALFORMED_DETAIL: &str =
        "the request body is not valid JSON or form data (or is too deeply nested)";
}

/// A record-style body; malformed input answers the generic 400.
pub struct RecordBody(pub Map<String, Value>);

/// A helper-form body (auth forms and the like); malformed input answers
/// "An error occurred while loading the submitted data.".
pub struct FormBody(pub Map<String, Value>);

impl<S: Send + Sync> FromRequest<S> for RecordBody {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        match parse_body(request, state).await {
            Ok(map) => Ok(RecordBody(map)),
            Err(error) => Err(body_error(
                error,
                "Something went wrong while processing your request.",
            )),
        }
    }
}

impl<S: Send + Sync> FromRequest<S> for FormBody {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        match parse_body(request, state).await {
            Ok(map) => Ok(FormBody(map)),
            Err(error) => Err(body_error(
                error,
                "An error occurred while loading the submitted data.",
            )),
        }
    }
}

/// The body of a form whose fields are text (the auth forms): as [`FormBody`], except that
/// values of a form-encoded or multipart body stay the text they were sent as (no number or
/// boolean inference), so that only JSON can carry a value of the wrong type.
pub struct TextForm(pub Map<String, Value>);

impl<S: Send + Sync> FromRequest<S> for TextForm {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        let is_json = body_kind(&request) == BodyKind::Json;
        let FormBody(mut map) = FormBody::from_request(request, state).await?;
        if !is_json {
            for value in map.values_mut() {
                uninfer(value);
            }
        }
        Ok(TextForm(map))
    }
}

/// Undoes [`infer_form_value`], which round-trips exactly: back to the text sent.
fn uninfer(value: &mut Value) {
    match value {
        Value::Number(n) => *value = Value::String(n.to_string()),
        Value::Bool(b) => *value = Value::String(b.to_string()),
        Value::Array(items) => items.iter_mut().for_each(uninfer),
        _ => {}
    }
}

fn body_error(error: BodyError, malformed_message: &str) -> ApiError {
    match error {
        BodyError::UnsupportedContentType => ApiError::bad_request_msg("Unsupported Content-Type."),
        BodyError::Malformed => {
            ApiError::bad_request_msg(malformed_message).with_detail(BodyError::MALFORMED_DETAIL)
        }
        BodyError::TooLarge => ApiError::too_large(),
    }
}

/// Reads the body as an object; file parts of a multipart body are dropped.
pub async fn parse_body<S: Send + Sync>(
    request: Request,
    state: &S,
) -> Result<Map<String, Value>, BodyError> {
    parse_body_with_files(request, state)
        .await
        .map(|(map, _)| map)
}

/// Reads the body as an object plus the file parts of a multipart body, in body order.
pub async fn parse_body_with_files<S: Send + Sync>(
    request: Request,
    state: &S,
) -> Result<(Map<String, Value>, Vec<UploadedFile>), BodyError> {
    let kind = body_kind(&request);
    if kind == BodyKind::Multipart {
        return parse_multipart(request, state).await;
    }
    parse_plain(request, state, kind)
        .await
        .map(|map| (map, Vec::new()))
}

/// How a body is read, by its `Content-Type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyKind {
    Json,
    Form,
    Multipart,
    /// Any other type, or none: an empty body still means "no fields", any other is refused.
    Other,
}

impl BodyKind {
    /// The kind a `Content-Type` value names. As PocketBase (observed on 0.40.6), the value is
    /// matched by a case-sensitive prefix: `application/json; charset=utf-8` and even
    /// `application/jsonx` are JSON, `APPLICATION/JSON` and a missing header are not.
    pub fn of(content_type: &str) -> BodyKind {
        if content_type.starts_with("application/json") {
            BodyKind::Json
        } else if content_type.starts_with("multipart/form-data") {
            BodyKind::Multipart
        } else if content_type.starts_with("application/x-www-form-urlencoded") {
            BodyKind::Form
        } else {
            BodyKind::Other
        }
    }
}

fn body_kind(request: &Request) -> BodyKind {
    request
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .map_or(BodyKind::Other, BodyKind::of)
}

async fn parse_plain<S: Send + Sync>(
    request: Request,
    state: &S,
    kind: BodyKind,
) -> Result<Map<String, Value>, BodyError> {
    let bytes = Bytes::from_request(request, state)
        .await
        .map_err(|rejection| {
            if rejection.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
                BodyError::TooLarge
            } else {
                BodyError::Malformed
            }
        })?;
    offload(bytes.len(), move || parse_plain_bytes(kind, &bytes)).await
}

/// Runs `parse` inline for a small input, on a blocking thread for a large one.
async fn offload<T: Send + 'static>(
    size: usize,
    parse: impl FnOnce() -> Result<T, BodyError> + Send + 'static,
) -> Result<T, BodyError> {
    if size < OFFLOAD_BYTES {
        return parse();
    }
    tokio::task::spawn_blocking(parse)
        .await
        .unwrap_or(Err(BodyError::Malformed))
}

/// A non-multipart body of `kind` as an object. Pure, for the extractors and the fuzzer.
/// An empty body is no fields, whatever its type (PocketBase reads no body of length 0); a
/// JSON body of only whitespace holds no value and is malformed, as there.
pub fn parse_plain_bytes(kind: BodyKind, bytes: &[u8]) -> Result<Map<String, Value>, BodyError> {
    if bytes.is_empty() {
        return Ok(Map::new());
    }
    match kind {
        BodyKind::Json => match parse_json(bytes)? {
            Value::Object(map) => Ok(map),
            // A JSON `null` body means "no fields", as in PocketBase.
            Value::Null => Ok(Map::new()),
            _ => Err(BodyError::Malformed),
        },
        BodyKind::Form => parse_urlencoded(bytes),
        BodyKind::Multipart | BodyKind::Other => Err(BodyError::UnsupportedContentType),
    }
}

/// A JSON request body, read as PocketBase reads one: its first value, within the depth and
/// value bounds, no object naming a key twice ([`domain::values::parse_request_json`]).
pub fn parse_json(bytes: &[u8]) -> Result<Value, BodyError> {
    domain::values::parse_request_json(bytes).map_err(|_| BodyError::Malformed)
}

/// Whether every `%` of form-encoded text starts an escape of two hex digits.
fn percent_escapes_are_whole(bytes: &[u8]) -> bool {
    let mut at = 0;
    while let Some(offset) = bytes
        .get(at..)
        .and_then(|rest| rest.iter().position(|b| *b == b'%'))
    {
        let escape = at + offset;
        match bytes.get(escape + 1..escape + 3) {
            Some([high, low]) if high.is_ascii_hexdigit() && low.is_ascii_hexdigit() => {
                at = escape + 3;
            }
            _ => return false,
        }
    }
    true
}

/// A form-encoded body: repeated keys collect into an array, values are inferred as
/// PocketBase does ([`infer_form_value`]).
pub fn parse_urlencoded(bytes: &[u8]) -> Result<Map<String, Value>, BodyError> {
    // A `%` not followed by two hex digits is malformed, as Go's form parser (and so
    // PocketBase) finds it; the decoder used here would keep it as text.
    if bytes.len() > MAX_URLENCODED_BYTES || !percent_escapes_are_whole(bytes) {
        return Err(BodyError::Malformed);
    }
    let pairs: Vec<(String, String)> =
        serde_urlencoded::from_bytes(bytes).map_err(|_| BodyError::Malformed)?;
    let mut map = Map::new();
    for (key, value) in pairs {
        push_form_value(&mut map, key, infer_form_value(&value));
    }
    Ok(map)
}

async fn parse_multipart<S: Send + Sync>(
    request: Request,
    state: &S,
) -> Result<(Map<String, Value>, Vec<UploadedFile>), BodyError> {
    let mut multipart = axum::extract::Multipart::from_request(request, state)
        .await
        .map_err(|_| BodyError::Malformed)?;
    let mut map = Map::new();
    let mut payloads = Vec::new();
    let mut files = Vec::new();
    let mut parts = 0usize;
    loop {
        let field = match multipart.next_field().await {
            Ok(Some(field)) => field,
            Ok(None) => break,
            Err(error) => {
                return Err(
                    if error.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
                        BodyError::TooLarge
                    } else {
                        BodyError::Malformed
                    },
                );
            }
        };
        parts += 1;
        if parts > MAX_MULTIPART_PARTS {
            return Err(BodyError::Malformed);
        }
        let name = field.name().unwrap_or("").to_owned();
        if let Some(file_name) = field.file_name().map(str::to_owned) {
            let bytes = field.bytes().await.map_err(|error| {
                if error.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
                    BodyError::TooLarge
                } else {
                    BodyError::Malformed
                }
            })?;
            // An empty file input of an HTML form sends a nameless, empty part: no file.
            if file_name.is_empty() && bytes.is_empty() {
                continue;
            }
            files.push(UploadedFile::new(name, file_name, bytes));
            continue;
        }
        let text = field.text().await.map_err(|_| BodyError::Malformed)?;
        if name == "@jsonPayload" {
            let size = text.len();
            let payload = move || {
                domain::values::parse_json_payload(text.as_bytes())
                    .map_err(|_| BodyError::Malformed)
            };
            match offload(size, payload).await? {
                Value::Object(object) => payloads.push(object),
                _ => return Err(BodyError::Malformed),
            }
        } else {
            push_form_value(&mut map, name, infer_form_value(&text));
        }
    }
    for payload in payloads {
        for (key, value) in payload {
            map.insert(key, value);
        }
    }
    Ok((map, files))
}

/// Cuts a request body off after `limit` bytes. The returned flag tells, after a failed
/// read, whether the limit was the reason (413 rather than 400). A declared
/// `Content-Length` above the limit is refused up front with `Err`.
pub fn limit_request(
    request: Request,
    limit: u64,
) -> Result<(Request, std::sync::Arc<std::sync::atomic::AtomicBool>), BodyError> {
    use futures_util::StreamExt;
    use std::sync::atomic::{AtomicBool, Ordering};

    let declared = request
        .headers()
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit) {
        return Err(BodyError::TooLarge);
    }
    let exceeded = std::sync::Arc::new(AtomicBool::new(false));
    let flag = exceeded.clone();
    let (parts, body) = request.into_parts();
    let mut seen: u64 = 0;
    let stream = body.into_data_stream().map(move |chunk| {
        let chunk = chunk?;
        seen = seen.saturating_add(chunk.len() as u64);
        if seen > limit {
            flag.store(true, Ordering::Relaxed);
            return Err(axum::Error::new("request body too large"));
        }
        Ok(chunk)
    });
    Ok((
        Request::from_parts(parts, axum::body::Body::from_stream(stream)),
        exceeded,
    ))
}

/// Repeated keys collect into an array.
fn push_form_value(map: &mut Map<String, Value>, key: String, value: Value) {
    match map.get_mut(&key) {
        Some(Value::Array(items)) => items.push(value),
        Some(existing) => {
            let first = existing.take();
            *existing = Value::Array(vec![first, value]);
        }
        None => {
            map.insert(key, value);
        }
    }
}

/// PocketBase's inference for form values: `true`/`false` become booleans, text that
/// round-trips exactly as a number becomes a number, everything else stays text.
pub fn infer_form_value(text: &str) -> Value {
    match text {
        "true" => return Value::Bool(true),
        "false" => return Value::Bool(false),
        _ => {}
    }
    if let Ok(n) = text.parse::<f64>()
        && n.is_finite()
    {
        let printed = domain::record::number_to_json(n).to_string();
        if printed == text {
            return domain::record::number_to_json(n);
        }
    }
    Value::String(text.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_values_are_inferred_like_pocketbase() {
        assert_eq!(infer_form_value("true"), Value::Bool(true));
        assert_eq!(infer_form_value("10"), Value::from(10));
        assert_eq!(infer_form_value("-2.5"), serde_json::json!(-2.5));
        assert_eq!(infer_form_value("007"), Value::from("007"));
        assert_eq!(infer_form_value(""), Value::from(""));
        assert_eq!(infer_form_value("1e3"), Value::from("1e3"));
    }
}
