//! Record files: the storage they live in (a local directory, or an S3-compatible bucket when
//! the `s3` settings enable it), the download endpoint with thumbnails and protected-file
//! checks, file tokens, and the upload plan that record writes use to store new files before
//! their transaction and remove replaced ones after it.

pub mod cleanup;
pub mod download;
pub mod mime;
pub mod naming;
pub mod storage;
pub mod thumb_jobs;
pub mod thumbs;
pub mod upload;

#[cfg(test)]
pub(crate) mod tests;

use crate::routing::{Routes, get, post};
use axum::Json;
use axum::response::Response;
use domain::AuthContext;
use serde_json::{Value, json};

use crate::auth::token::{Claims, TokenType, sign};
use crate::error::{ApiError, ApiResult};
use crate::extract::{Auth, FormBody};
use crate::state::SharedState;
use crate::state::storage::Storage;

/// Marks a file response (a response extension), so that the outer layer drops the
/// `X-Frame-Options` default PocketBase leaves off files. An extension, not a header: finding
/// (and removing) a header by its name cost every request ~200 instructions, where an answer
/// without extensions is told apart by a null check.
#[derive(Debug, Clone, Copy)]
pub struct FileResponse;

pub fn router() -> Routes {
    Routes::new()
        .route(
            "/api/files/{collection}/{record}/{filename}",
            get(download::download),
        )
        .route("/api/files/token", post(file_token))
        .route("/api/settings/test/s3", post(test_s3))
}

/// For the finished router's responses: file responses lose `X-Frame-Options` (and their
/// marker).
pub fn strip_frame_options(mut response: Response) -> Response {
    if response.extensions_mut().remove::<FileResponse>().is_some() {
        response.headers_mut().remove("x-frame-options");
    }
    response
}

/// The storage record files use right now, as the settings choose. Every upload gets its
/// storage here, so this is where the collections that keep files are recorded (before any
/// file is written; see [`cleanup::remember_collections`]).
pub async fn storage_for(state: &SharedState) -> ApiResult<Storage> {
    if let Err(error) = cleanup::remember_collections(state).await {
        // Unrecorded, a deleted collection's orphans are only left in place, never lost.
        tracing::warn!(%error, "recording the collections that keep files failed");
    }
    let settings = crate::settings::current(state).await?;
    if settings.s3.enabled {
        state.files.s3(&settings.s3).map_err(ApiError::internal)
    } else {
        Ok(state.files.local().clone())
    }
}

/// `POST /api/files/token`: a short-lived token for protected files, for any auth record.
async fn file_token(Auth(auth): Auth) -> ApiResult<Json<Value>> {
    let AuthContext::Record {
        collection, record, ..
    } = &auth
    else {
        return Err(ApiError::unauthorized(
            "The request requires valid record authorization token.",
        ));
    };
    let token = sign(collection, record, TokenType::File, Claims::default(), None)
        .map_err(ApiError::internal)?;
    Ok(Json(json!({ "token": token })))
}

/// `POST /api/settings/test/s3` (superusers): writes and removes a small object in the bucket
/// of the `storage` (files) or `backups` S3 settings, answering 204 when both work.
async fn test_s3(
    axum::extract::State(state): axum::extract::State<SharedState>,
    _: crate::extract::Superuser,
    FormBody(body): FormBody,
) -> ApiResult<axum::http::StatusCode> {
    const FAILED: &str = "Failed to test the S3 filesystem.";
    let filesystem = crate::extract::form_text(&body, "filesystem")?;
    let mut errors = domain::ValidationErrors::new();
    match filesystem.as_str() {
        "" => errors.add("filesystem", domain::FieldError::required()),
        "storage" | "backups" => {}
        _ => errors.add(
            "filesystem",
            domain::FieldError::new("validation_in_invalid", "Must be a valid value."),
        ),
    }
    if !errors.is_empty() {
        return Err(ApiError::validation(FAILED, errors));
    }
    let settings = crate::settings::current(&state).await?;
    let config = if filesystem == "storage" {
        &settings.s3
    } else {
        &settings.backups.s3
    };
    let raw = |detail: &str| ApiError::bad_request_msg(&format!("{FAILED} Raw error: \n{detail}"));
    if !config.enabled {
        // PocketBase names the storage filesystem in this message whichever was tested.
        return Err(raw("S3 storage filesystem is not enabled."));
    }
    let storage = Storage::s3(config).map_err(|e| raw(&e.to_string()))?;
    let key = format!("pb_settings_test_{}", naming::random_suffix(12));
    storage
        .put(&key, axum::body::Bytes::from_static(b"test"))
        .await
        .map_err(|e| raw(&e.to_string()))?;
    storage
        .delete(&key)
        .await
        .map_err(|e| raw(&e.to_string()))?;
    Ok(axum::http::StatusCode::NO_CONTENT)
}
