//! The public directory (`--publicDir`, default `pb_public` beside the data dir) served at
//! `/` for every GET or HEAD no API route answers, as PocketBase serves it: a directory answers
//! its `index.html`, `…/index.html` and `file/` redirect to their canonical URL, and with
//! `--indexFallback` (on by default) a missing file answers the root `index.html` so a
//! single-page app's own URLs load it. PocketBase's router has no exception for `/api/…`
//! there (observed on 0.40.6: `GET /api/missing` answers `index.html`); only `/_/…`, the admin
//! UI's prefix, never reaches the public files.
//!
//! Paths are decoded and cleaned before they touch the file system, and a path that would leave
//! the directory (`..`, encoded or not) is treated as missing; a request whose raw path is not
//! clean (`//x`, `/a/../b`, `/./x`) is first redirected to the clean one (307), as Go's router
//! does before PocketBase sees it.

use std::path::{Path, PathBuf};

use axum::body::Body;
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::error::ApiError;
use crate::files::download::{RangeRequest, parse_range};

/// The page a directory answers, and the single-page-app fallback.
const INDEX_PAGE: &str = "index.html";

/// How the public directory is served.
#[derive(Debug, Clone)]
pub struct PublicDir {
    /// The folder; it may not exist (then every lookup misses).
    pub root: PathBuf,
    /// Answer the root `index.html` for a missing path (PocketBase's `--indexFallback`).
    pub index_fallback: bool,
}

/// What a request becomes before any file is read: pure, so it can be tested without a disk.
#[derive(Debug, PartialEq, Eq)]
enum Plan {
    /// Go's router redirects a raw path that is not clean (307, query kept).
    CleanRedirect(String),
    /// `/_` is the admin UI's prefix without its slash.
    AdminRedirect,
    /// `/_/…`: the dashboard's prefix (its own routes answer GETs there first).
    NotFound,
    /// A cleaned path relative to the public directory (`.` for the root), or `None` when the
    /// path cannot name a file there (`..`, NUL, bad encoding).
    Lookup(Option<String>),
}

fn plan(raw_path: &str) -> Plan {
    let clean = clean_path(raw_path);
    if clean != raw_path {
        return Plan::CleanRedirect(clean);
    }
    if raw_path == "/_" {
        return Plan::AdminRedirect;
    }
    if raw_path.starts_with("/_/") {
        return Plan::NotFound;
    }
    Plan::Lookup(relative_name(raw_path))
}

/// Go's router answers a request whose raw path is not clean (an empty, `.` or `..` segment)
/// with a 307 to the clean path, query kept, before anything of PocketBase's runs: for every
/// method but `CONNECT` (observed on 0.40.6: a `POST /api//batch`, an `OPTIONS` preflight
/// alike), with no CORS or security headers, and never logged. `None` for a clean path, the
/// usual case, found without allocating.
///
/// The same goes for `GET /_` (and `HEAD`): Go's router sends a request for a subtree's root
/// without its slash to the subtree (`/_/`, the dashboard's), query kept.
pub fn unclean_redirect<B>(request: &axum::http::Request<B>) -> Option<Response> {
    let path = request.uri().path();
    let method = request.method();
    if path == "/_" && (method == Method::GET || method == Method::HEAD) {
        return Some(temporary_redirect("/_/", request.uri().query(), method));
    }
    if method == Method::CONNECT || !path.starts_with('/') || is_clean(path) {
        return None;
    }
    let clean = clean_path(path);
    Some(temporary_redirect(&clean, request.uri().query(), method))
}

/// Whether [`clean_path`] would leave `path` (which starts with `/`) as it is: no segment
/// after a slash is empty (but a trailing one), `.` or `..`. A byte scan: this runs for every
/// request.
fn is_clean(path: &str) -> bool {
    let bytes = path.as_bytes();
    for (at, &byte) in bytes.iter().enumerate() {
        if byte != b'/' {
            continue;
        }
        match &bytes[at + 1..] {
            [b'/', ..] | [b'.'] | [b'.', b'/', ..] | [b'.', b'.'] | [b'.', b'.', b'/', ..] => {
                return false;
            }
            _ => {}
        }
    }
    true
}

/// Go's `path.Clean` as its router applies it: a leading slash, no empty, `.` or `..`
/// segments, and the trailing slash kept.
fn clean_path(path: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for segment in path.split('/') {
        match segment {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            other => parts.push(other),
        }
    }
    let mut clean = format!("/{}", parts.join("/"));
    if path.ends_with('/') && clean != "/" {
        clean.push('/');
    }
    clean
}

/// The decoded path relative to the public directory, cleaned again after decoding; `None`
/// when it climbs out (`%2e%2e`), holds a NUL, or does not decode to UTF-8.
fn relative_name(raw_path: &str) -> Option<String> {
    let decoded = percent_decode(raw_path)?;
    if decoded.contains('\0') || decoded.contains('\\') {
        return None;
    }
    let mut parts: Vec<&str> = Vec::new();
    for segment in decoded.split('/') {
        match segment {
            "" | "." => {}
            ".." => {
                // Above the root: the file is treated as missing, never looked up.
                parts.pop()?;
            }
            other => parts.push(other),
        }
    }
    if parts.is_empty() {
        Some(".".to_owned())
    } else {
        Some(parts.join("/"))
    }
}

/// `%XX` decoding; a `%` not followed by two hex digits stays as it is. `None` when the
/// result is not UTF-8.
fn percent_decode(text: &str) -> Option<String> {
    String::from_utf8(crate::extract::path::percent_decode(text)).ok()
}

/// A redirect to a path on this server: a leading `//` (or `\`) collapses to one slash, so a
/// crafted path never redirects to another host.
fn safe_location(path: &str) -> String {
    let trimmed = path.trim_start_matches(['/', '\\']);
    if path.len() - trimmed.len() > 1 {
        format!("/{trimmed}")
    } else {
        path.to_owned()
    }
}

/// A decoded path made fit for a `Location` header again: bytes outside the path characters
/// of RFC 3986 (spaces, `%`, non-ASCII, controls) are percent-encoded.
fn encode_location(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    for byte in path.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~/!$&'()*+,;=:@".contains(&byte) {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

fn moved(status: StatusCode, location: &str) -> Response {
    let location = encode_location(&safe_location(location));
    let mut response = status.into_response();
    match HeaderValue::from_str(&location) {
        Ok(value) => {
            response.headers_mut().insert(header::LOCATION, value);
        }
        Err(_) => return not_found(),
    }
    response
}

/// Go's router's own redirect (a path it cleaned, a subtree's root without its slash): 307 to
/// `location` with the query kept, an HTML content type for GET and HEAD, and a tiny HTML body
/// for GET only.
pub(crate) fn temporary_redirect(location: &str, query: Option<&str>, method: &Method) -> Response {
    let target = match query {
        Some(query) => format!("{location}?{query}"),
        None => location.to_owned(),
    };
    let Ok(value) = HeaderValue::from_str(&target) else {
        return not_found();
    };
    let mut response = StatusCode::TEMPORARY_REDIRECT.into_response();
    response.headers_mut().insert(header::LOCATION, value);
    // Go gives GET and HEAD an HTML content type, and writes its small body for GET only (a
    // HEAD's answer has no body and, observed on 0.40.6, no `Content-Length`).
    if *method == Method::GET || *method == Method::HEAD {
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/html; charset=utf-8"),
        );
    }
    if *method == Method::GET {
        let body = format!(
            "<a href=\"{}\">Temporary Redirect</a>.\n\n",
            html_escape(&target)
        );
        *response.body_mut() = Body::from(body);
    }
    response
}

fn html_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&#34;")
        .replace('\'', "&#39;")
}

fn not_found() -> Response {
    ApiError::not_found_msg("File not found.").into_response()
}

impl PublicDir {
    /// Answers a GET or HEAD that no route took.
    pub async fn serve(&self, request: &Parts) -> Response {
        let mut response = self.answer(request).await;
        response.extensions_mut().insert(crate::logs::StaticAnswer);
        response
    }

    async fn answer(&self, request: &Parts) -> Response {
        let head = request.method == Method::HEAD;
        let raw_path = request.uri.path();
        let name = match plan(raw_path) {
            Plan::CleanRedirect(clean) => {
                return temporary_redirect(&clean, request.uri.query(), &request.method);
            }
            Plan::AdminRedirect => {
                return temporary_redirect("/_/", request.uri.query(), &request.method);
            }
            Plan::NotFound => return not_found(),
            Plan::Lookup(name) => name,
        };
        let Some(name) = name else {
            return self.fallback(&request.headers, head).await;
        };
        let path = self.root.join(&name);
        let Ok(meta) = tokio::fs::metadata(&path).await else {
            return self.fallback(&request.headers, head).await;
        };
        let decoded = percent_decode(raw_path).unwrap_or_else(|| raw_path.to_owned());
        if meta.is_dir() {
            if !decoded.ends_with('/') {
                return moved(StatusCode::MOVED_PERMANENTLY, &format!("{decoded}/"));
            }
        } else if decoded.ends_with('/') {
            let trimmed = decoded.trim_end_matches('/');
            if !trimmed.is_empty() {
                return moved(StatusCode::MOVED_PERMANENTLY, trimmed);
            }
        } else if let Some(stripped) = decoded.strip_suffix(INDEX_PAGE) {
            return moved(StatusCode::MOVED_PERMANENTLY, stripped);
        }
        match serve_file(&path, &request.headers, head).await {
            Some(response) => response,
            None => self.fallback(&request.headers, head).await,
        }
    }

    /// The root `index.html` when the fallback is on, else PocketBase's 404.
    async fn fallback(&self, headers: &HeaderMap, head: bool) -> Response {
        if !self.index_fallback {
            return not_found();
        }
        serve_file(&self.root.join(INDEX_PAGE), headers, head)
            .await
            .unwrap_or_else(not_found)
    }
}

/// Serves one file (a directory: its `index.html`) as Go's `ServeContent` does: type from the
/// extension or the content, `Last-Modified`, `If-Modified-Since`, byte ranges. `None` when
/// there is no such file.
async fn serve_file(path: &Path, headers: &HeaderMap, head: bool) -> Option<Response> {
    let mut path = path.to_path_buf();
    let mut meta = tokio::fs::metadata(&path).await.ok()?;
    if meta.is_dir() {
        path.push(INDEX_PAGE);
        meta = tokio::fs::metadata(&path).await.ok()?;
        if meta.is_dir() {
            return None;
        }
    }
    let mut file = tokio::fs::File::open(&path).await.ok()?;
    let size = meta.len();
    let modified = meta
        .modified()
        .ok()
        .map(chrono::DateTime::<chrono::Utc>::from);
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default()
        .to_owned();
    let content_type = match content_type_for(&name) {
        Some(known) => known,
        None => {
            use tokio::io::AsyncReadExt as _;
            let mut head_bytes = vec![0u8; 512.min(usize::try_from(size).unwrap_or(512))];
            file.read_exact(&mut head_bytes).await.ok()?;
            crate::files::mime::sniff(&head_bytes, "").to_owned()
        }
    };
    let mut builder = Response::builder().header(header::ACCEPT_RANGES, "bytes");
    if let Some(modified) = modified {
        builder = builder.header(
            header::LAST_MODIFIED,
            modified.format("%a, %d %b %Y %H:%M:%S GMT").to_string(),
        );
        if not_modified_since(headers, modified.timestamp()) {
            return builder
                .status(StatusCode::NOT_MODIFIED)
                .body(Body::empty())
                .ok();
        }
    }
    let range_header = headers.get(header::RANGE).and_then(|v| v.to_str().ok());
    let range = match parse_range(range_header, size) {
        // Several ranges get the whole file here (Go answers them as multipart).
        RangeRequest::Full | RangeRequest::Parts(_) => None,
        RangeRequest::Part(range) => Some(range),
        RangeRequest::Unsatisfiable => {
            return builder
                .status(StatusCode::RANGE_NOT_SATISFIABLE)
                .header(header::CONTENT_RANGE, format!("bytes */{size}"))
                .header(header::CONTENT_TYPE, "text/plain; charset=utf-8")
                .body(Body::from("invalid range: failed to overlap\n"))
                .ok();
        }
    };
    builder = builder.header(header::CONTENT_TYPE, content_type);
    let (start, length, status) = match range {
        Some(range) => {
            builder = builder.header(
                header::CONTENT_RANGE,
                format!("bytes {}-{}/{size}", range.start, range.end - 1),
            );
            (
                range.start,
                range.end - range.start,
                StatusCode::PARTIAL_CONTENT,
            )
        }
        None => (0, size, StatusCode::OK),
    };
    builder = builder
        .status(status)
        .header(header::CONTENT_LENGTH, length);
    if head || length == 0 {
        return builder.body(Body::empty()).ok();
    }
    {
        use tokio::io::AsyncSeekExt as _;
        file.seek(std::io::SeekFrom::Start(start)).await.ok()?;
    }
    builder
        .body(Body::from_stream(file_stream(file, length)))
        .ok()
}

/// `length` bytes of `file` from its current position, in chunks.
fn file_stream(
    file: tokio::fs::File,
    length: u64,
) -> impl futures_util::Stream<Item = std::io::Result<axum::body::Bytes>> + Send + 'static {
    const CHUNK: u64 = 64 << 10;
    futures_util::stream::try_unfold((file, length), |(mut file, left)| async move {
        use tokio::io::AsyncReadExt as _;
        if left == 0 {
            return Ok(None);
        }
        let want = usize::try_from(left.min(CHUNK)).unwrap_or(64 << 10);
        let mut buffer = vec![0u8; want];
        let read = file.read(&mut buffer).await?;
        if read == 0 {
            // The file shrank while being served: end the body early rather than loop.
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "the file shrank while being served",
            ));
        }
        buffer.truncate(read);
        Ok(Some((
            axum::body::Bytes::from(buffer),
            (file, left - read as u64),
        )))
    })
}

/// `If-Modified-Since` at or after the modification time (to the second).
fn not_modified_since(headers: &HeaderMap, modified: i64) -> bool {
    headers
        .get(header::IF_MODIFIED_SINCE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| chrono::DateTime::parse_from_rfc2822(v).ok())
        .is_some_and(|since| modified <= since.timestamp())
}

/// The type Go's `mime.TypeByExtension` gives the common web formats (its built-in table and
/// Debian's `/etc/mime.types`); `None` leaves it to the content.
fn content_type_for(name: &str) -> Option<String> {
    let extension = name.rsplit_once('.')?.1.to_ascii_lowercase();
    let known = match extension.as_str() {
        "html" | "htm" => "text/html; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "json" => "application/json",
        "map" => "application/json",
        "webmanifest" => "application/manifest+json",
        "xml" => "text/xml; charset=utf-8",
        "txt" => "text/plain; charset=utf-8",
        "md" => "text/markdown; charset=utf-8",
        "csv" => "text/csv; charset=utf-8",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "webp" => "image/webp",
        "avif" => "image/avif",
        "ico" => "image/vnd.microsoft.icon",
        "bmp" => "image/bmp",
        "pdf" => "application/pdf",
        "wasm" => "application/wasm",
        "woff" => "font/woff",
        "woff2" => "font/woff2",
        "ttf" => "font/ttf",
        "otf" => "font/otf",
        "mp4" => "video/mp4",
        "webm" => "video/webm",
        "mp3" => "audio/mpeg",
        "ogg" => "audio/ogg",
        "wav" => "audio/wav",
        "zip" => "application/zip",
        "gz" => "application/gzip",
        _ => return None,
    };
    Some(known.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unclean_raw_paths_redirect_to_the_clean_one() {
        assert_eq!(
            plan("//api/health"),
            Plan::CleanRedirect("/api/health".into())
        );
        assert_eq!(
            plan("/../etc/passwd"),
            Plan::CleanRedirect("/etc/passwd".into())
        );
        assert_eq!(plan("/a/../b/"), Plan::CleanRedirect("/b/".into()));
        assert_eq!(
            plan("/sub/./index.html"),
            Plan::CleanRedirect("/sub/index.html".into())
        );
        assert_eq!(plan("/sub/"), Plan::Lookup(Some("sub".into())));
        assert_eq!(plan("/"), Plan::Lookup(Some(".".into())));
    }

    #[test]
    fn encoded_climbs_never_name_a_file() {
        assert_eq!(plan("/%2e%2e/etc/passwd"), Plan::Lookup(None));
        assert_eq!(plan("/..%2fetc%2fpasswd"), Plan::Lookup(None));
        assert_eq!(plan("/a%2f..%2f..%2fx"), Plan::Lookup(None));
        assert_eq!(plan("/hello.txt%00"), Plan::Lookup(None));
        assert_eq!(plan("/%ff"), Plan::Lookup(None));
        assert_eq!(plan("/a%2f..%2fb"), Plan::Lookup(Some("b".into())));
        assert_eq!(plan("/hello%2etxt"), Plan::Lookup(Some("hello.txt".into())));
        assert_eq!(plan("/100%"), Plan::Lookup(Some("100%".into())));
    }

    #[test]
    fn the_admin_prefix_is_never_public() {
        assert_eq!(plan("/_"), Plan::AdminRedirect);
        assert_eq!(plan("/_/"), Plan::NotFound);
        assert_eq!(plan("/_/index.html"), Plan::NotFound);
        assert_eq!(plan("/_x"), Plan::Lookup(Some("_x".into())));
    }

    #[test]
    fn redirect_locations_are_re_encoded() {
        assert_eq!(encode_location("/my dir/é%"), "/my%20dir/%C3%A9%25");
        assert_eq!(encode_location("/a-b_c.d~/"), "/a-b_c.d~/");
    }

    #[test]
    fn a_path_is_clean_exactly_when_cleaning_leaves_it_as_it_is() {
        for path in [
            "/",
            "/a",
            "/a/",
            "/a/b",
            "/a/b/",
            "/.a",
            "/a..",
            "/a/.b/",
            "/...",
            "//",
            "/a//b",
            "/a/./b",
            "/a/../b",
            "/.",
            "/..",
            "/a/.",
            "/a/..",
            "/a/b//",
            "///",
            "/./",
            "/../",
            "/api/collections//records",
            "/api//health",
            "/_/",
        ] {
            assert_eq!(is_clean(path), clean_path(path) == path, "{path}");
        }
    }

    #[test]
    fn unclean_paths_are_redirected_for_every_method_but_connect() {
        let request = |method: Method, uri: &str| {
            axum::http::Request::builder()
                .method(method)
                .uri(uri)
                .body(())
                .expect("a request")
        };
        assert!(unclean_redirect(&request(Method::GET, "/api/health")).is_none());
        assert!(unclean_redirect(&request(Method::POST, "/api/batch?x=1")).is_none());
        let post = unclean_redirect(&request(Method::POST, "/api//batch?x=1")).expect("307");
        assert_eq!(post.status(), StatusCode::TEMPORARY_REDIRECT);
        assert_eq!(post.headers()[header::LOCATION], "/api/batch?x=1");
        assert!(post.headers().get(header::CONTENT_TYPE).is_none());
        let get = unclean_redirect(&request(Method::GET, "/a/./b/../c")).expect("307");
        assert_eq!(get.headers()[header::LOCATION], "/a/c");
        assert_eq!(
            get.headers()[header::CONTENT_TYPE],
            "text/html; charset=utf-8"
        );
        let options = unclean_redirect(&request(Method::OPTIONS, "//x")).expect("307");
        assert_eq!(options.headers()[header::LOCATION], "/x");
        assert!(unclean_redirect(&request(Method::CONNECT, "//x")).is_none());
    }

    #[test]
    fn redirects_stay_on_this_host() {
        assert_eq!(safe_location("//evil.example/"), "/evil.example/");
        assert_eq!(safe_location("/\\evil.example"), "/evil.example");
        assert_eq!(safe_location("/sub/"), "/sub/");
    }
}
