//! `GET /api/files/{collection}/{recordId}/{filename}`: serves a file that currently belongs
//! to one of the record's file fields, streamed from storage, with PocketBase's headers,
//! `download=1`, single-range requests and thumbnails made on first request.
//!
//! Non-protected files ignore the view rule, as PocketBase does. Protected files read the
//! caller only from `?token=` (a file token) and answer 404 when the view rule refuses.

use std::ops::Range;

use axum::body::Body;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use domain::{AuthContext, FieldKind, Record};

use super::naming::is_safe_name;
use super::storage::{file_key, thumb_key};
use super::thumbs::{self, ThumbSize};
use super::{FileResponse, mime};
use crate::access;
use crate::auth::token::{TokenType, verify};
use crate::error::{ApiError, ApiResult};
use crate::extract::Path;
use crate::state::SharedState;
use crate::state::storage::{FileMeta, Storage, StorageError};

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
        if state
            .files
            .thumbs
            .ensure(&storage, &original_key, &wanted, format, size)
            .await
        {
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
                record: auth_record,
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

/// The most ranges one `Range` header may list. A header listing more (counted as its
/// comma-separated elements, before any is parsed) is answered with the whole file, as
/// PocketBase 0.40.6 answers it (observed: 200 ranges get a multipart answer, 201 the file).
pub const MAX_RANGES: usize = 200;

/// A requested byte range, resolved against the file size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RangeRequest {
    Full,
    Part(Range<u64>),
    /// Several ranges (at most [`MAX_RANGES`], together no longer than the file): a
    /// `multipart/byteranges` answer.
    Parts(Vec<Range<u64>>),
    Unsatisfiable,
}

/// The `Range` header (`bytes=a-b`, `a-`, `-n`, comma-separated) as Go's file server reads
/// it: more than [`MAX_RANGES`] elements serve the whole file, a syntax error or no range
/// inside the file is unsatisfiable, ranges past the end are dropped, and asking for more
/// bytes than the file has serves the whole file. Overlapping ranges are served as asked.
/// Every range returned is non-empty and inside the file. Pure, so it can be fuzzed.
pub fn parse_range(header: Option<&str>, size: u64) -> RangeRequest {
    let Some(text) = header else {
        return RangeRequest::Full;
    };
    if text.bytes().filter(|b| *b == b',').count() >= MAX_RANGES {
        return RangeRequest::Full;
    }
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
    // An empty file has nothing to cut: it is served whole (as PocketBase answers `0-`).
    if size == 0 {
        return RangeRequest::Full;
    }
    let total = ranges
        .iter()
        .fold(0u64, |sum, r| sum.saturating_add(r.end - r.start));
    match ranges.len() {
        0 => RangeRequest::Unsatisfiable,
        _ if total > size => RangeRequest::Full,
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
pub(crate) async fn serve(
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
    let head = *method == Method::HEAD;
    let range_header = headers.get(header::RANGE).and_then(|v| v.to_str().ok());
    let request = parse_range(range_header, meta.size);
    // The type comes from the content, like at upload time: the first bytes are enough. A
    // whole-file answer takes them from its own read, so one download is one read.
    let whole = matches!(request, RangeRequest::Full)
        && !head
        && meta.size > 0
        && !not_modified(headers, &meta);
    let (head_bytes, opened) = if whole {
        let read = storage.open(key, None).await.map_err(open_error)?;
        let (head_bytes, stream) = peek(read.stream, SNIFF_LEN).await?;
        (head_bytes, Some(stream))
    } else {
        let head_len = meta.size.min(SNIFF_LEN as u64);
        let head_bytes = if head_len == 0 {
            Vec::new()
        } else {
            let read = storage
                .open(key, Some(0..head_len))
                .await
                .map_err(open_error)?;
            collect(read.stream).await?
        };
        (head_bytes, None)
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
        .extension(FileResponse);
    if not_modified(headers, &meta) {
        return builder
            .status(StatusCode::NOT_MODIFIED)
            .body(Body::empty())
            .map_err(ApiError::internal);
    }
    let range = match request {
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
    let stream = match opened {
        Some(stream) => stream,
        None => storage.open(key, range).await.map_err(open_error)?.stream,
    };
    builder
        .body(Body::from_stream(stream))
        .map_err(ApiError::internal)
}

/// How many leading bytes the content type is sniffed from.
const SNIFF_LEN: usize = 1024;

type ByteStream = futures_util::stream::BoxStream<'static, Result<axum::body::Bytes, StorageError>>;

/// Reads the first `len` bytes (or fewer, at the end) of `stream` and gives them back with
/// the whole stream, the bytes read put back in front.
async fn peek(mut stream: ByteStream, len: usize) -> ApiResult<(Vec<u8>, ByteStream)> {
    use futures_util::StreamExt;
    let mut chunks = Vec::new();
    let mut head = Vec::new();
    while head.len() < len {
        match stream.next().await {
            Some(chunk) => {
                let chunk = chunk.map_err(open_error)?;
                let wanted = (len - head.len()).min(chunk.len());
                head.extend_from_slice(&chunk[..wanted]);
                chunks.push(Ok(chunk));
            }
            None => break,
        }
    }
    let whole = futures_util::stream::iter(chunks).chain(stream).boxed();
    Ok((head, whole))
}

fn open_error(error: StorageError) -> ApiError {
    match error {
        StorageError::NotFound => ApiError::not_found(),
        other => ApiError::internal(other),
    }
}

/// Several ranges as one `multipart/byteranges` body, each part streamed in turn (near
/// ranges from one read, see [`read_plan`]).
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
    // Each read streams a span of the file and is cut into the parts it covers; the reads
    // run in turn, one file open at a time.
    let mut steps = Vec::new();
    for (span, members) in read_plan(&ranges) {
        let mut pieces = Vec::with_capacity(members.len() * 2);
        for i in members {
            pieces.push(Piece::Text(axum::body::Bytes::from(part_head(
                &ranges[i],
                i == 0,
            ))));
            pieces.push(Piece::Data(ranges[i].clone()));
        }
        steps.push((Some(span), pieces));
    }
    steps.push((None, vec![Piece::Text(axum::body::Bytes::from(closing))]));
    let storage = storage.clone();
    let key = key.to_owned();
    let body = futures_util::stream::iter(steps)
        .then(move |(span, pieces)| {
            let storage = storage.clone();
            let key = key.clone();
            async move {
                let Some(span) = span else {
                    return cut(futures_util::stream::empty().boxed(), 0, pieces);
                };
                match storage.open(&key, Some(span.clone())).await {
                    Ok(read) => cut(read.stream, span.start, pieces),
                    Err(error) => {
                        futures_util::stream::once(std::future::ready(Err(error))).boxed()
                    }
                }
            }
        })
        .flatten()
        .boxed();
    builder
        .body(Body::from_stream(body))
        .map_err(ApiError::internal)
}

/// Ranges of a multipart answer that lie closer than this are read as one span (the gap
/// read and dropped): farther ones are read apart, so two bytes at either end of a large file
/// do not read the whole file.
pub const MERGE_GAP: u64 = 64 << 10;

/// How a multipart answer reads the file: consecutive ranges that ascend without overlapping,
/// each starting less than [`MERGE_GAP`] after the previous one ends, share one read of the
/// span they cover; every other range starts a read of its own. Gives each read's span and
/// the indices of the ranges cut from it, in order. Pure, so the bound can be tested.
fn read_plan(ranges: &[Range<u64>]) -> Vec<(Range<u64>, Range<usize>)> {
    let mut plan: Vec<(Range<u64>, Range<usize>)> = Vec::new();
    for (i, range) in ranges.iter().enumerate() {
        match plan.last_mut() {
            Some((span, members))
                if range.start >= span.end && range.start - span.end < MERGE_GAP =>
            {
                span.end = range.end;
                members.end = i + 1;
            }
            _ => plan.push((range.clone(), i..i + 1)),
        }
    }
    plan
}

/// One piece of a multipart answer: literal text, or a byte range of the file.
enum Piece {
    Text(axum::body::Bytes),
    Data(Range<u64>),
}

/// Cuts `pieces` out of `stream`, which holds the file's bytes from offset `start` on; the
/// data pieces are ascending and do not overlap, so the stream is read once, front to back.
fn cut(
    stream: futures_util::stream::BoxStream<'static, Result<axum::body::Bytes, StorageError>>,
    start: u64,
    pieces: Vec<Piece>,
) -> futures_util::stream::BoxStream<'static, Result<axum::body::Bytes, StorageError>> {
    use futures_util::StreamExt;
    struct State {
        stream: futures_util::stream::BoxStream<'static, Result<axum::body::Bytes, StorageError>>,
        /// Bytes read but not yet used, starting at file offset `at`.
        buffer: axum::body::Bytes,
        at: u64,
        pieces: std::collections::VecDeque<Piece>,
        failed: bool,
    }
    let state = State {
        stream,
        buffer: axum::body::Bytes::new(),
        at: start,
        pieces: pieces.into(),
        failed: false,
    };
    futures_util::stream::unfold(state, |mut state| async move {
        if state.failed {
            return None;
        }
        loop {
            let range = match state.pieces.front_mut()? {
                Piece::Text(_) => {
                    let Some(Piece::Text(bytes)) = state.pieces.pop_front() else {
                        return None;
                    };
                    return Some((Ok(bytes), state));
                }
                Piece::Data(range) if range.is_empty() => {
                    state.pieces.pop_front();
                    continue;
                }
                Piece::Data(range) => range,
            };
            let buffered_end = state.at + state.buffer.len() as u64;
            if buffered_end <= range.start {
                // Nothing of this range is buffered: drop the buffer, read on.
                state.at = buffered_end;
                state.buffer = axum::body::Bytes::new();
                match state.stream.next().await {
                    Some(Ok(chunk)) => state.buffer = chunk,
                    Some(Err(error)) => {
                        state.failed = true;
                        return Some((Err(error), state));
                    }
                    None => {
                        state.failed = true;
                        let error = StorageError::Setup("the file ended before its range".into());
                        return Some((Err(error), state));
                    }
                }
                continue;
            }
            if state.at < range.start {
                let skip = (range.start - state.at) as usize;
                state.buffer = state.buffer.slice(skip..);
                state.at = range.start;
            }
            let take = (range.end - range.start).min(state.buffer.len() as u64) as usize;
            let bytes = state.buffer.split_to(take);
            state.at += take as u64;
            range.start += take as u64;
            return Some((Ok(bytes), state));
        }
    })
    .boxed()
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
        match parse_range(Some(text), size) {
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
        // The whole file as one range is still a 206, as PocketBase answers it.
        assert_eq!(range("bytes=0-9", 10), Some(0..10));
        assert_eq!(
            range("bytes=0-", 0),
            Some(0..u64::MAX),
            "empty files are served whole"
        );
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
        assert_eq!(
            range("bytes=0-1,1-2", 10),
            Some(u64::MAX - 2..u64::MAX),
            "overlaps"
        );
    }

    /// Issue #11 item 8: 60,000 ranges once meant 60,000 open files. Past [`MAX_RANGES`]
    /// elements the whole file is served, as PocketBase does, whatever the elements are.
    #[test]
    fn more_than_max_ranges_serve_the_whole_file() {
        let ranges = |n: usize, one: &str| format!("bytes={}", vec![one; n].join(","));
        assert_eq!(range(&ranges(60_000, "0-0"), 100_000), Some(0..u64::MAX));
        assert_eq!(
            range(&ranges(MAX_RANGES + 1, "0-0"), 100_000),
            Some(0..u64::MAX)
        );
        assert_eq!(
            range(&ranges(MAX_RANGES + 1, "x-y"), 100_000),
            Some(0..u64::MAX)
        );
        assert_eq!(
            range(&ranges(MAX_RANGES, "0-0"), 100_000),
            Some(u64::MAX - MAX_RANGES as u64..u64::MAX)
        );
        assert_eq!(range(&ranges(MAX_RANGES, "x-y"), 100_000), None);
    }

    /// Issue #11 fix-up: ascending ranges were read as one span from the first to the last,
    /// so `bytes=0-0,N-N` read the whole file (or downloaded it from S3) for two bytes.
    /// Ranges now share a read only when the gap between them is under [`MERGE_GAP`]; what is
    /// read is bounded by the ranges plus that allowance per merged gap.
    #[test]
    fn distant_ranges_are_read_apart_and_near_ones_together() {
        const SIZE: u64 = 1 << 30;
        let plan = |header: &str| {
            let RangeRequest::Parts(ranges) = parse_range(Some(header), SIZE) else {
                panic!("{header} is not a multipart request");
            };
            (read_plan(&ranges), ranges)
        };
        let spans = |header: &str| -> Vec<Range<u64>> {
            plan(header).0.into_iter().map(|(span, _)| span).collect()
        };
        assert_eq!(
            spans("bytes=0-0,1000000-1000000"),
            vec![0..1, 1_000_000..1_000_001]
        );
        assert_eq!(spans("bytes=0-0,1073741823-1073741823").len(), 2);
        assert_eq!(spans("bytes=0-2,10-11,98-99"), vec![0..100]);
        let gap = MERGE_GAP;
        assert_eq!(
            spans(&format!("bytes=0-0,{}-{}", gap, gap)),
            vec![0..gap + 1],
            "a gap under the allowance is read through"
        );
        assert_eq!(
            spans(&format!("bytes=0-0,{}-{}", gap + 1, gap + 1)),
            vec![0..1, gap + 1..gap + 2],
            "a gap of the allowance is not"
        );
        assert_eq!(
            spans("bytes=5-8,0-1,5-5"),
            vec![5..9, 0..6],
            "a range before the previous one starts a new read"
        );
        assert_eq!(
            spans("bytes=0-5,3-8"),
            vec![0..6, 3..9],
            "overlapping ranges are read apart"
        );
        for header in [
            "bytes=0-0,1000000-1000000",
            "bytes=0-0,500000000-500000000,1073741823-1073741823",
            "bytes=0-2,10-11,98-99,70000-70010,900000-900099",
            "bytes=100-199,0-9,65000-65100,1000000000-",
        ] {
            let (plan, ranges) = plan(header);
            let asked: u64 = ranges.iter().map(|r| r.end - r.start).sum();
            let read: u64 = plan.iter().map(|(span, _)| span.end - span.start).sum();
            let merged = (ranges.len() - plan.len()) as u64;
            assert!(
                read <= asked + merged * MERGE_GAP,
                "{header}: {read} bytes read for {asked}"
            );
            // Every range is cut, in order, from a span that holds it.
            let mut next = 0;
            for (span, members) in &plan {
                assert_eq!(members.start, next, "{header}");
                next = members.end;
                for range in &ranges[members.clone()] {
                    assert!(
                        span.start <= range.start && range.end <= span.end,
                        "{header}"
                    );
                }
            }
            assert_eq!(next, ranges.len(), "{header}");
        }
    }

    async fn body_of(response: Response) -> String {
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        String::from_utf8(bytes.to_vec()).unwrap()
    }

    /// Near ascending ranges are cut from one read; distant, overlapping or out-of-order ones
    /// are read one at a time.
    #[tokio::test]
    async fn multipart_answers_carry_each_range() {
        let storage = Storage::memory();
        const SIZE: u64 = 200_000;
        let content: String = (0..SIZE)
            .map(|i| char::from(b'a' + (i % 26) as u8))
            .collect();
        storage
            .put("c/r/f.txt", axum::body::Bytes::from(content.clone()))
            .await
            .unwrap();
        for ranges in [
            vec![0..3, 10..12, 98..100],
            vec![5..9, 0..2, 5..6],
            vec![0..1, 0..1],
            vec![
                0..3,
                10..12,
                150_000..150_005,
                150_010..150_020,
                199_998..200_000,
            ],
        ] {
            let response = serve_parts(
                &storage,
                "c/r/f.txt",
                "text/plain",
                SIZE,
                ranges.clone(),
                Response::builder(),
                false,
            )
            .await
            .unwrap();
            let length: usize = response.headers()[header::CONTENT_LENGTH]
                .to_str()
                .unwrap()
                .parse()
                .unwrap();
            let body = body_of(response).await;
            assert_eq!(body.len(), length, "{ranges:?}");
            for range in &ranges {
                let head = format!(
                    "Content-Range: bytes {}-{}/{SIZE}\r\nContent-Type: text/plain\r\n\r\n{}\r\n",
                    range.start,
                    range.end - 1,
                    &content[range.start as usize..range.end as usize]
                );
                assert!(body.contains(&head), "{ranges:?}: {body}");
            }
        }
    }
}
