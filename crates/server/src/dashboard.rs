//! The dashboard at `/_/`: files come from whatever [`crate::state::DashboardFiles`] the
//! binary plugs in (the `admin-ui` crate's embedded bundle), so this crate names no UI. The page is never
//! cached and carries a strict Content-Security-Policy; content-hashed assets are cached
//! forever. Text files are gzipped once, on first request, when the client accepts it.
//!
//! Also here: the first-run installer, `POST /api/installer`, which creates the first
//! superuser with the one-time token `serve` prints while none exists.

use std::io::Write;

use crate::routing::{Routes, get, post};
use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use domain::{FieldError, ValidationErrors};
use serde_json::Value;

use crate::error::{ApiError, ApiResult};
use crate::extract::{BodyError, Path, parse_body};
use crate::state::SharedState;
use crate::superusers::{self, SuperuserError};

/// The page's policy: its own scripts and styles only (no inline code, no eval), requests to
/// this origin only, images also from `data:`/`blob:` URLs (upload previews), never framed.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; \
     style-src 'self'; img-src 'self' data: blob:; media-src 'self' blob:; font-src 'self'; \
     connect-src 'self'; object-src 'none'; base-uri 'self'; form-action 'self'; \
     frame-ancestors 'none'";

pub fn router() -> Routes {
    Routes::new()
        // `/_` itself is Go's redirect to `/_/`, before the stack (`static_files::unclean_redirect`).
        .route("/_/", get(page))
        .route("/_/{*path}", get(file))
        .route("/api/installer", post(install))
}

async fn page(State(state): State<SharedState>, headers: HeaderMap) -> Response {
    serve(&state, "", &headers)
}

async fn file(
    State(state): State<SharedState>,
    Path(path): Path<String>,
    headers: HeaderMap,
) -> Response {
    serve(&state, &path, &headers)
}

fn serve(state: &SharedState, path: &str, headers: &HeaderMap) -> Response {
    let mut response = answer(state, path, headers);
    response.extensions_mut().insert(crate::logs::StaticAnswer);
    response
}

fn answer(state: &SharedState, path: &str, headers: &HeaderMap) -> Response {
    let Some(dashboard) = &state.config.dashboard else {
        return ApiError::not_found_msg("File not found.").into_response();
    };
    // Only the bundle's own names: no `..`, no hidden files, no backslashes.
    let safe = path
        .split('/')
        .all(|part| !part.is_empty() && !part.starts_with('.') && !part.contains('\\'));
    let file = if path.is_empty() || path == "index.html" {
        dashboard.0.get("")
    } else if safe {
        dashboard.0.get(path)
    } else {
        None
    };
    let Some(file) = file else {
        return ApiError::not_found_msg("File not found.").into_response();
    };
    // Only content-hashed files are kept gzipped: the page is tiny, and a dashboard served
    // from disk (`PLINTH_DASHBOARD_DIR`) changes it under the same name.
    let zipped = if !(accepts_gzip(headers) && compressible(file.content_type)) {
        None
    } else if file.immutable {
        state
            .dashboard_gzip
            .get_or_make(path, || gzip_bytes(&file.bytes))
    } else {
        gzip_bytes(&file.bytes).map(Bytes::from)
    };
    let gzip = zipped.is_some();
    let body = match zipped {
        Some(zipped) => zipped,
        None => Bytes::from(file.bytes.into_owned()),
    };
    let mut response = (StatusCode::OK, body).into_response();
    let out = response.headers_mut();
    out.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(file.content_type),
    );
    out.insert(header::VARY, HeaderValue::from_static("Accept-Encoding"));
    if gzip {
        out.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
    }
    if file.immutable {
        out.insert(
            header::CACHE_CONTROL,
            HeaderValue::from_static("public, max-age=31536000, immutable"),
        );
    } else {
        out.insert(
            header::CACHE_CONTROL,
            HeaderValue::from_static("no-cache, no-store"),
        );
        out.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CONTENT_SECURITY_POLICY),
        );
        out.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
        out.insert(
            header::REFERRER_POLICY,
            HeaderValue::from_static("same-origin"),
        );
    }
    response
}

fn accepts_gzip(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT_ENCODING)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|coding| {
            let mut parts = coding.split(';');
            let name = parts.next().unwrap_or("").trim();
            let refused = parts.any(|p| matches!(p.trim(), "q=0" | "q=0.0" | "q=0.00" | "q=0.000"));
            name.eq_ignore_ascii_case("gzip") && !refused
        })
}

fn compressible(content_type: &str) -> bool {
    content_type.starts_with("text/")
        || content_type.starts_with("application/json")
        || content_type.starts_with("image/svg")
}

/// Gzip at the best level (bundle files are small and compressed once); `None` if the encoder
/// fails, and the file is then sent as it is.
fn gzip_bytes(bytes: &[u8]) -> Option<Vec<u8>> {
    let mut encoder = flate2::write::GzEncoder::new(
        Vec::with_capacity(bytes.len() / 3),
        flate2::Compression::best(),
    );
    encoder.write_all(bytes).ok()?;
    encoder.finish().ok()
}

const INSTALLER_INVALID: &str = "The installer link is invalid or was already used.";

async fn install(State(state): State<SharedState>, request: Request) -> ApiResult<StatusCode> {
    let body = parse_body(request, &state)
        .await
        .map_err(|error| match error {
            BodyError::TooLarge => ApiError::too_large(),
            _ => ApiError::bad_request_msg("An error occurred while loading the submitted data."),
        })?;
    let text = |key: &str| {
        body.get(key)
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned()
    };
    let (token, email, password, confirm) = (
        text("token"),
        text("email"),
        text("password"),
        text("passwordConfirm"),
    );
    let _one_at_a_time = state.installer.one_at_a_time().await;
    if !state.installer.matches(&token) {
        return Err(ApiError::forbidden(INSTALLER_INVALID));
    }
    let existing = superusers::count(state.store.as_ref())
        .await
        .map_err(|e| ApiError::internal(e.to_string()))?;
    if existing > 0 {
        state.installer.spend();
        return Err(ApiError::forbidden(INSTALLER_INVALID));
    }
    let mut errors = ValidationErrors::new();
    if email.is_empty() {
        errors.add("email", FieldError::required());
    } else if !superusers::valid_email(&email) {
        errors.add(
            "email",
            FieldError::new("validation_is_email", "Must be a valid email address."),
        );
    }
    if password.is_empty() {
        errors.add("password", FieldError::required());
    } else if password.chars().count() < 8 {
        errors.add(
            "password",
            FieldError::new(
                "validation_length_out_of_range",
                "The length must be between 8 and 71.",
            ),
        );
    }
    if confirm != password {
        errors.add(
            "passwordConfirm",
            FieldError::new("validation_values_mismatch", "Values don't match."),
        );
    }
    if !errors.is_empty() {
        return Err(ApiError::validation(
            "An error occurred while validating the submitted data.",
            errors,
        ));
    }
    match superusers::create(
        state.store.as_ref(),
        &email,
        &password,
        state.config.bcrypt_cost,
    )
    .await
    {
        Ok(_) => {
            state.installer.spend();
            Ok(StatusCode::NO_CONTENT)
        }
        Err(SuperuserError::PasswordTooLong) => Err(ApiError::validation(
            "An error occurred while validating the submitted data.",
            ValidationErrors::single(
                "password",
                FieldError::new(
                    "validation_length_out_of_range",
                    "The length must be between 8 and 71.",
                ),
            ),
        )),
        Err(SuperuserError::InvalidEmail) => Err(ApiError::validation(
            "An error occurred while validating the submitted data.",
            ValidationErrors::single(
                "email",
                FieldError::new("validation_is_email", "Must be a valid email address."),
            ),
        )),
        Err(other) => Err(ApiError::internal(other.to_string())),
    }
}
