//! `GET /api/files/{collection}/{recordId}/{filename}`: serves a file that currently belongs
//! to one of the record's file fields, streamed from storage, with PocketBase's headers,
//! `download=1`, single-range requests and thumbnails made on first request.
//!
//! Non-protected files ignore the view rule, as PocketBase does. Protected files read the
//! caller only from `?token=` (a file token) and answer 404 when the view rule refuses.

use std::ops::Range;

use axum::body::Body;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use domain::{AuthContext, FieldKind, Record};

use super::naming::is_safe_name;
use super::storage::{FileMeta, Storage, StorageError, file_key, thumb_key};
use super::thumbs::{self, ThumbSize};
use super::{FILE_RESPONSE_MARKER, mime};
use crate::access;
use crate::auth::token::{TokenType, verify};
use crate::error::{ApiError, ApiResult};
use crate::state::SharedState;

/// How long clients may cache a file (PocketBase's values).
const CACHE_CONTROL: &str = "max-age=2592000, stale-while-revalidate=86400";
const CSP: &str = "default-src 'none'; media-src 'self'; style-src 'unsafe-inline'; sandbox";

pub async fn download(
    State(state): State<SharedState>,
    Path((collection, record_id, filename)): Path<(String, String, String)>,
    RawQuery(raw_query): RawQuery,
    method: Method,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let query: Vec<(String, String)> =
        serde_urlencoded::from_str(raw_query.as_deref().unwrap_or("")).unwrap_or_default();
    let param = |name: &str| {
        query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .unwrap_or("")
    };
    if !is_safe_name(&filename) {
        return Err(ApiError::not_found());
    }
    let schema = state.schema();
    let collection = schema
        .get(&collection)
        .cloned()
        .ok_or_else(|| ApiError::not_found_msg("Missing or invalid collection context."))?;
    let record = state
        .store
        .get_record(collection.clone(), &record_id, Vec::new())
        .await?
        .ok_or_else(ApiError::not_found)?;
    let field = collection
        .fields
        .iter()
        .find(|f| matches!(f.kind, FieldKind::File(_)) && holds(&record, &f.name, &filename))
        .ok_or_else(ApiError::not_found)?;
    let FieldKind::File(options) = &field.kind else {
        return Err(ApiError::not_found());
    };
    if options.protected {
        check_protected(
            &state,
            &collection,
            &record_id,
            param("token"),
            &method,
            &headers,
        )
        .await?;
    }
    let storage = super::storage_for(&state).await?;
    let original_key = file_key(&collection.id, record.id(), &filename);
    let mut key = original_key.clone();
    let mut served_name = filename.clone();
    let thumb = param("thumb");
    if !thumb.is_empty()
        && let Some(format) = thumbs::format_for(&filename)
        && (thumb == "100x100" || options.thumbs.iter().any(|t| t == thumb))
        && let Some(size) = ThumbSize::parse(thumb)
    {
        let wanted = thumb_key(&collection.id, record.id(), &filename, thumb);
        if ensure_thumb(&storage, &original_key, &wanted, format, size).await {
            key = wanted;
            served_name = format!("{thumb}_{filename}");
        }
    }
    let attachment = matches!(param("download"), "1" | "true" | "t" | "TRUE" | "True");
    serve(&storage, &key, &served_name, attachment, &method, &headers).await
}

/// Whether the record's `field` currently lists `filename`.
fn holds(record: &Record, field: &str, filename: &str) -> bool {
    match record.get(field) {
        Some(serde_json::Value::String(name)) => name == filename,
        Some(serde_json::Value::Array(names)) => names.iter().any(|n| n.as_str() == Some(filename)),
        _ => false,
    }
}

/// The view rule, evaluated for the file token's owner (or a guest); refusals are 404.
async fn check_protected(
    state: &SharedState,
    collection: &std::sync::Arc<domain::Collection>,
    record_id: &str,
    token: &str,
    method: &Method,
    headers: &HeaderMap,
) -> ApiResult<()> {
    let auth = if token.is_empty() {
        AuthContext::Guest
    } else {
        match verify(state, token, TokenType::File).await {
            Some((auth_collection, auth_record, _)) => AuthContext::Record {
                collection: auth_collection,
                record: Box::new(auth_record),
                refreshable: false,
            },
            None => AuthContext::Guest,
        }
    };
    if auth.is_superuser() {
        return Ok(());
    }
    let rules = state.collection_rules(collection);
    let ctx = access::request_context(&auth, method, headers, &[], None)
        .with_context(rules::contexts::PROTECTED_FILE);
    let guard = access::sql_guard(&rules.view, state.store.dialect(), &ctx)
        .map_err(|_| ApiError::not_found())?;
    state
        .store
        .get_record(collection.clone(), record_id, guard.into_iter().collect())
        .await?
        .map(|_| ())
        .ok_or_else(ApiError::not_found)
}

/// Makes the thumbnail at `key` unless it exists; `false` when the original cannot be
/// thumbnailed (it is then served as is, as PocketBase does).
async fn ensure_thumb(
    storage: &Storage,
    original: &str,
    key: &str,
    format: image::ImageFormat,
    size: ThumbSize,
) -> bool {
    match storage.exists(key).await {
        Ok(true) => return true,
        Ok(false) => {}
        Err(error) => {
            tracing::warn!(%error, "checking a thumbnail failed");
            return false;
        }
    }
    let Ok(source) = storage.read_all(original).await else {
        return false;
    };
    let made = tokio::task::spawn_blocking(move || thumbs::make(&source, format, size)).await;
    match made {
        Ok(Ok(bytes)) => match storage.put(key, bytes.into()).await {
            Ok(()) => true,
            Err(error) => {
                tracing::warn!(%error, "storing a thumbnail failed");
                false
            }
        },
        Ok(Err(error)) => {
            tracing::debug!(%error, "thumbnail not made; serving the original");
            false
        }
        Err(error) => {
            tracing::warn!(%error, "thumbnail task failed");
            false
        }
    }
}

/// A requested byte range, resolved against the file size.
enum RangeRequest {
    Full,
    Part(Range<u64>),
    /// Several ranges: a `multipart/byteranges` answer.
    Parts(Vec<Range<u64>>),
    Unsatisfiable,
}

/// The `Range` header (`bytes=a-b`, `a-`, `-n`, comma-separated) as Go's file server reads
/// it: a syntax error or no range inside the file is unsatisfiable, ranges past the end are
/// dropped, and asking for more bytes than the file has serves the whole file.
fn parse_range(value: Option<&HeaderValue>, size: u64) -> RangeRequest {
    let Some(text) = value.and_then(|v| v.to_str().ok()) else {
        return RangeRequest::Full;
    };
    let Some(spec) = text.trim().strip_prefix("bytes=") else {
        return RangeRequest::Unsatisfiable;
    };
    let mut ranges = Vec::new();
    for one in spec.split(',') {
        let one = one.trim();
        if one.is_empty() {
            continue;
        }
        match one_range(one, size) {
            Err(()) => return RangeRequest::Unsatisfiable,
            Ok(Some(range)) => ranges.push(range),
            Ok(None) => {}
        }
    }
    let total: u64 = ranges.iter().map(|r| r.end - r.start).sum();
    match ranges.len() {
        0 => RangeRequest::Unsatisfiable,
        _ if total > size => RangeRequest::Full,
        1 if ranges[0].start == 0 && ranges[0].end == size => RangeRequest::Full,
        1 => RangeRequest::Part(ranges.remove(0)),
        _ => RangeRequest::Parts(ranges),
    }
}

/// One range spec: `Err` on bad syntax, `Ok(None)` when it starts past the end.
fn one_range(spec: &str, size: u64) -> Result<Option<Range<u64>>, ()> {
    let (start, end) = spec.split_once('-').ok_or(())?;
    let (start, end) = (start.trim(), end.trim());
    if start.is_empty() {
        let suffix: u64 = end.parse().map_err(|_| ())?;
        if suffix == 0 {
            return Ok(None);
        }
        return Ok(Some(size.saturating_sub(suffix)..size));
    }
    let first: u64 = start.parse().map_err(|_| ())?;
    let last = if end.is_empty() {
        size.saturating_sub(1)
    } else {
        let last: u64 = end.parse().map_err(|_| ())?;
        if last < first {
            return Err(());
        }
        last.min(size.saturating_sub(1))
    };
    if first >= size {
        return Ok(None);
    }
    Ok(Some(first..last + 1))
}

/// Streams `key` with PocketBase's file headers.
async fn serve(
    storage: &Storage,
    key: &str,
    name: &str,
    attachment: bool,
    method: &Method,
    headers: &HeaderMap,
) -> ApiResult<Response> {
    let meta = match storage.head(key).await {
        Ok(meta) => meta,
        Err(StorageError::NotFound) => return Err(ApiError::not_found()),
        Err(error) => return Err(ApiError::internal(error)),
    };
    // The type comes from the content, like at upload time: the first bytes are enough.
    let head_len = meta.size.min(1024);
    let head_bytes = if head_len == 0 {
        Vec::new()
    } else {
        let read = storage
            .open(key, Some(0..head_len))
            .await
            .map_err(ApiError::internal)?;
        collect(read.stream).await?
    };
    let content_type = mime::sniff(&head_bytes, name);
    let disposition = if attachment || !mime::is_inline(content_type) {
        "attachment"
    } else {
        "inline"
    };
    let mut builder = Response::builder()
        .header(
            header::CONTENT_DISPOSITION,
            format!("{disposition}; filename=\"{}\"", name.replace('"', "")),
        )
        .header(header::CONTENT_SECURITY_POLICY, CSP)
        .header(header::CACHE_CONTROL, CACHE_CONTROL)
        .header(header::ACCEPT_RANGES, "bytes")
        .header(header::LAST_MODIFIED, http_date(&meta))
        .header(FILE_RESPONSE_MARKER, "1");
    if not_modified(headers, &meta) {
        return builder
            .status(StatusCode::NOT_MODIFIED)
            .body(Body::empty())
            .map_err(ApiError::internal);
    }
    let head = *method == Method::HEAD;
    let range = match parse_range(headers.get(header::RANGE), meta.size) {
        RangeRequest::Full => None,
        RangeRequest::Part(range) => Some(range),
        RangeRequest::Parts(ranges) => {
            return serve_parts(storage, key, content_type, meta.size, ranges, builder, head).await;
        }
        RangeRequest::Unsatisfiable => {
            return builder
                .status(StatusCode::RANGE_NOT_SATISFIABLE)
                .header(header::CONTENT_TYPE, content_type)
                .header(header::CONTENT_RANGE, format!("bytes */{}", meta.size))
                .body(Body::empty())
                .map_err(ApiError::internal);
        }
    };
    builder = builder.header(header::CONTENT_TYPE, content_type);
    let status = match &range {
        Some(range) => {
            builder = builder.header(
                header::CONTENT_RANGE,
                format!("bytes {}-{}/{}", range.start, range.end - 1, meta.size),
            );
            StatusCode::PARTIAL_CONTENT
        }
        None => StatusCode::OK,
    };
    let length = range.as_ref().map_or(meta.size, |r| r.end - r.start);
    builder = builder
        .status(status)
        .header(header::CONTENT_LENGTH, length);
    if head || length == 0 {
        return builder.body(Body::empty()).map_err(ApiError::internal);
    }
    let read = storage.open(key, range).await.map_err(open_error)?;
    builder
        .body(Body::from_stream(read.stream))
        .map_err(ApiError::internal)
}

fn open_error(error: StorageError) -> ApiError {
    match error {
        StorageError::NotFound => ApiError::not_found(),
        other => ApiError::internal(other),
    }
}

/// Several ranges as one `multipart/byteranges` body, each part streamed in turn.
async fn serve_parts(
    storage: &Storage,
    key: &str,
    content_type: &str,
    size: u64,
    ranges: Vec<Range<u64>>,
    builder: axum::http::response::Builder,
    head: bool,
) -> ApiResult<Response> {
    use futures_util::StreamExt;
    let boundary = super::naming::random_suffix(30);
    let part_head = |range: &Range<u64>, first: bool| {
        format!(
            "{}--{boundary}\r\nContent-Range: bytes {}-{}/{size}\r\nContent-Type: {content_type}\r\n\r\n",
            if first { "" } else { "\r\n" },
            range.start,
            range.end - 1,
        )
    };
    let closing = format!("\r\n--{boundary}--\r\n");
    let length: u64 = ranges
        .iter()
        .enumerate()
        .map(|(i, r)| part_head(r, i == 0).len() as u64 + (r.end - r.start))
        .sum::<u64>()
        + closing.len() as u64;
    let builder = builder
        .status(StatusCode::PARTIAL_CONTENT)
        .header(
            header::CONTENT_TYPE,
            format!("multipart/byteranges; boundary={boundary}"),
        )
        .header(header::CONTENT_LENGTH, length);
    if head {
        return builder.body(Body::empty()).map_err(ApiError::internal);
    }
    let mut pieces = Vec::new();
    for (i, range) in ranges.iter().enumerate() {
        let read = storage
            .open(key, Some(range.clone()))
            .await
            .map_err(open_error)?;
        pieces.push(
            futures_util::stream::once(std::future::ready(Ok(axum::body::Bytes::from(part_head(
                range,
                i == 0,
            )))))
            .boxed(),
        );
        pieces.push(read.stream);
    }
    pieces.push(
        futures_util::stream::once(std::future::ready(Ok(axum::body::Bytes::from(closing))))
            .boxed(),
    );
    builder
        .body(Body::from_stream(
            futures_util::stream::iter(pieces).flatten(),
        ))
        .map_err(ApiError::internal)
}

async fn collect(
    mut stream: futures_util::stream::BoxStream<'static, Result<axum::body::Bytes, StorageError>>,
) -> ApiResult<Vec<u8>> {
    use futures_util::StreamExt;
    let mut out = Vec::new();
    while let Some(chunk) = stream.next().await {
        out.extend_from_slice(&chunk.map_err(ApiError::internal)?);
    }
    Ok(out)
}

fn http_date(meta: &FileMeta) -> String {
    meta.last_modified
        .format("%a, %d %b %Y %H:%M:%S GMT")
        .to_string()
}

/// `If-Modified-Since` at or after the file's modification (to the second).
fn not_modified(headers: &HeaderMap, meta: &FileMeta) -> bool {
    let Some(since) = headers
        .get(header::IF_MODIFIED_SINCE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| chrono::DateTime::parse_from_rfc2822(v).ok())
    else {
        return false;
    };
    meta.last_modified.timestamp() <= since.timestamp()
}

impl IntoResponse for StorageError {
    fn into_response(self) -> Response {
        match self {
            StorageError::NotFound => ApiError::not_found().into_response(),
            other => ApiError::internal(other).into_response(),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn range(text: &str, size: u64) -> Option<Range<u64>> {
        match parse_range(Some(&HeaderValue::from_str(text).unwrap()), size) {
            RangeRequest::Part(r) => Some(r),
            RangeRequest::Full => Some(0..u64::MAX),
            RangeRequest::Parts(parts) => Some(u64::MAX - parts.len() as u64..u64::MAX),
            RangeRequest::Unsatisfiable => None,
        }
    }

    #[test]
    fn ranges_resolve_like_go_file_servers() {
        assert_eq!(range("bytes=0-4", 10), Some(0..5));
        assert_eq!(range("bytes=5-", 10), Some(5..10));
        assert_eq!(range("bytes=-3", 10), Some(7..10));
        assert_eq!(range("bytes=8-100", 10), Some(8..10));
        assert_eq!(range("bytes=0-9", 10), Some(0..u64::MAX));
        assert_eq!(range("bytes=10-", 10), None);
        assert_eq!(range("bytes=5-2", 10), None);
        assert_eq!(range("bytes=x-2", 10), None);
        assert_eq!(
            range("bytes=0-1,3-4", 10),
            Some(u64::MAX - 2..u64::MAX),
            "two parts"
        );
        assert_eq!(range("bytes=0-1,30-40", 10), Some(0..2));
        assert_eq!(range("bytes=0-8,1-8", 10), Some(0..u64::MAX));
    }
}
