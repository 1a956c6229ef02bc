//! The backups API (`/api/backups`, superusers only) and scheduled backups, as PocketBase has
//! them: create, list, upload, download (with a superuser file token), delete and restore.
//!
//! A backup is a zip (layout in [`archive`]) made from a consistent snapshot of the store's
//! databases ([`domain::Store::snapshot`], taken while writes go on) and the files of the data
//! directory. It is written to a scratch file under `<dataDir>/.pb_temp_to_delete/` and only
//! moved into place (renamed into `<dataDir>/backups/`, or uploaded to the `backups.s3`
//! bucket) once complete, so a backup that fails midway (a full disk) leaves nothing behind.
//!
//! One backup or restore runs at a time ([`Backups`]); health's `canBackup` is false while one
//! does. A restore unpacks and verifies the zip in a staging directory first (entry names, the
//! database's integrity check through [`domain::Store::verify_snapshot`]); only then does it
//! answer 204 and ask `serve` to restart. `serve` stops serving, closes the store, swaps the
//! staged data in by renames ([`restore::swap_in`], the old data kept aside until the new
//! process boots) and re-executes itself. An upload is checked the same way before it is
//! stored: a zip that is not a Plinth backup is refused with a 400 and changes nothing.
//! (PocketBase stores any zip and fails the restore later, silently.)

pub mod archive;
pub mod restore;
mod schedule;

#[cfg(test)]
mod tests;

use std::path::{Path, PathBuf};

use crate::routing::{Routes, get, post};
use axum::Json;
use axum::extract::multipart::MultipartRejection;
use axum::extract::{DefaultBodyLimit, Multipart, RawQuery, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use domain::{FieldError, ValidationErrors};
use serde_json::{Value, json};
use tokio::io::AsyncWriteExt as _;

use crate::error::{ApiError, ApiResult};
use crate::extract::{FormBody, Path as UrlPath, Superuser};
use crate::files::naming;
use crate::state::SharedState;
use crate::state::backups::Backups;
use crate::state::storage::Storage;

pub use schedule::{AUTO_BACKUP_JOB, AUTO_PREFIX, apply_settings, spawn};

/// The scratch directory inside the data directory (PocketBase's name), emptied at boot.
pub const TEMP_DIR: &str = ".pb_temp_to_delete";

/// The directory of local backups inside the data directory.
pub const BACKUPS_DIR: &str = "backups";

/// Longest backup name a create accepts (PocketBase's bound).
pub const MAX_NAME_LEN: usize = 150;

/// Largest zip an upload accepts: 16 GiB.
pub const MAX_UPLOAD_BYTES: u64 = 16 << 30;

const BUSY: &str = "Try again later - another backup/restore process has already been started.";
const VALIDATION: &str = "An error occurred while validating the submitted data.";
const FORBIDDEN: &str = "Insufficient permissions to access the resource.";
const MISSING: &str = "Missing or invalid backup file.";

/// A stored-file removal a record write asked for after its commit.
pub enum Removal {
    /// Replaced or removed files of one record (and their thumbnails).
    Files {
        collection_id: String,
        record_id: String,
        names: Vec<String>,
    },
    /// Every file of a deleted record.
    Record {
        collection_id: String,
        record_id: String,
    },
}

/// Runs `removal` on `storage`.
async fn remove(storage: Storage, removal: Removal) {
    use crate::files::upload;
    match removal {
        Removal::Files {
            collection_id,
            record_id,
            names,
        } => {
            upload::delete_after_commit(&storage, &collection_id, &record_id, &names).await;
        }
        Removal::Record {
            collection_id,
            record_id,
        } => upload::delete_record_files(&storage, &collection_id, &record_id).await,
    }
}

impl Backups {
    /// Removes stored files after a record write committed — unless a backup or restore is
    /// running: the database copy may still name them and the archive has not read them yet,
    /// so the removal waits until the busy flag is released (see [`Backups::when_idle`]).
    pub async fn remove_files(&self, storage: &Storage, removal: Removal) {
        self.when_idle(Box::pin(remove(storage.clone(), removal)))
            .await;
    }
}

pub fn router() -> Routes {
    Routes::new()
        .route("/api/backups", get(list).post(create))
        .route(
            "/api/backups/upload",
            post(upload).body_limit(DefaultBodyLimit::disable()),
        )
        .route("/api/backups/{key}", get(download).delete(delete))
        .route("/api/backups/{key}/restore", post(restore))
}

/// Where backups live right now: the local `backups` dir, or the `backups.s3` bucket.
#[derive(Clone)]
pub enum Place {
    Local(PathBuf),
    S3(Storage),
}

/// The data directory, or a 400 when the server runs without one (in-memory tests).
fn data_dir(state: &SharedState) -> ApiResult<PathBuf> {
    state
        .config
        .data_dir
        .clone()
        .ok_or_else(|| ApiError::bad_request_msg("Failed to load backups filesystem."))
}

/// The backups place the settings choose.
pub async fn place(state: &SharedState) -> ApiResult<Place> {
    let settings = crate::settings::current(state).await?;
    if settings.backups.s3.enabled {
        let storage = Storage::s3(&settings.backups.s3).map_err(|error| {
            tracing::warn!(%error, "cannot build the backups S3 client");
            ApiError::bad_request_msg("Failed to load backups filesystem.")
        })?;
        return Ok(Place::S3(storage));
    }
    let dir = data_dir(state)?.join(BACKUPS_DIR);
    tokio::fs::create_dir_all(&dir)
        .await
        .map_err(ApiError::internal)?;
    Ok(Place::Local(dir))
}

/// One listed backup.
#[derive(Debug, Clone, serde::Serialize)]
pub struct BackupInfo {
    pub modified: String,
    pub key: String,
    pub size: u64,
}

/// Every backup in `place`, sorted by key, `.attrs` sidecars hidden.
pub async fn list_place(place: &Place) -> ApiResult<Vec<BackupInfo>> {
    let mut out = Vec::new();
    match place {
        Place::Local(dir) => {
            let mut entries = tokio::fs::read_dir(dir).await.map_err(ApiError::internal)?;
            while let Some(entry) = entries.next_entry().await.map_err(ApiError::internal)? {
                let Ok(key) = entry.file_name().into_string() else {
                    continue;
                };
                let Ok(meta) = entry.metadata().await else {
                    continue;
                };
                if !meta.is_file() || !is_listed(&key) {
                    continue;
                }
                let modified: chrono::DateTime<chrono::Utc> = meta
                    .modified()
                    .map(Into::into)
                    .unwrap_or_else(|_| chrono::Utc::now());
                out.push(BackupInfo {
                    modified: format_time(modified),
                    key,
                    size: meta.len(),
                });
            }
        }
        Place::S3(storage) => {
            for (key, meta) in storage
                .list_with_meta("")
                .await
                .map_err(ApiError::internal)?
            {
                if key.contains('/') || !is_listed(&key) {
                    continue;
                }
                out.push(BackupInfo {
                    modified: format_time(meta.last_modified),
                    key,
                    size: meta.size,
                });
            }
        }
    }
    out.sort_by(|a, b| a.key.cmp(&b.key));
    Ok(out)
}

fn is_listed(key: &str) -> bool {
    !key.ends_with(".attrs") && !key.starts_with('.') && naming::is_safe_name(key)
}

fn format_time(time: chrono::DateTime<chrono::Utc>) -> String {
    time.format("%Y-%m-%d %H:%M:%S%.3fZ").to_string()
}

/// `GET /api/backups`.
async fn list(State(state): State<SharedState>, _: Superuser) -> ApiResult<Json<Vec<BackupInfo>>> {
    let place = place(&state).await?;
    Ok(Json(list_place(&place).await?))
}

/// Whether `key` names a backup in `place`.
async fn exists(place: &Place, key: &str) -> ApiResult<bool> {
    if !naming::is_safe_name(key) || key.starts_with('.') {
        return Ok(false);
    }
    match place {
        Place::Local(dir) => Ok(tokio::fs::metadata(dir.join(key))
            .await
            .is_ok_and(|meta| meta.is_file())),
        Place::S3(storage) => storage.exists(key).await.map_err(ApiError::internal),
    }
}

/// The default name of a backup: `pb_backup_<app>_<UTC yyyyMMddHHmmss>.zip`, the app name in
/// snake case cut to 50 characters, with `prefix` before it (`@auto_` for scheduled ones).
pub fn default_name(app_name: &str, prefix: &str, now: chrono::DateTime<chrono::Utc>) -> String {
    let app: String = naming::snake_case(app_name).chars().take(50).collect();
    let stamp = now.format("%Y%m%d%H%M%S");
    if app.is_empty() {
        format!("{prefix}pb_backup_{stamp}.zip")
    } else {
        format!("{prefix}pb_backup_{app}_{stamp}.zip")
    }
}

/// The checks of a name given to create: PocketBase's length and pattern.
fn name_error(name: &str) -> Option<FieldError> {
    let length = name.chars().count();
    if length == 0 || length > MAX_NAME_LEN {
        return Some(
            FieldError::new(
                "validation_length_out_of_range",
                format!("The length must be between 1 and {MAX_NAME_LEN}."),
            )
            .with_param("max", MAX_NAME_LEN)
            .with_param("min", 1),
        );
    }
    let stem = name.strip_suffix(".zip").unwrap_or("");
    let valid = !stem.is_empty()
        && stem
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
    (!valid).then(|| FieldError::new("validation_match_invalid", "Must be in a valid format."))
}

/// `POST /api/backups` `{name?}`: makes a backup now and answers 204 when it is stored.
async fn create(
    State(state): State<SharedState>,
    _: Superuser,
    FormBody(body): FormBody,
) -> ApiResult<StatusCode> {
    let Some(_busy) = state.backups.try_begin() else {
        return Err(ApiError::bad_request_msg(BUSY));
    };
    let name = match body.get("name") {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(name)) => name.clone(),
        Some(_) => {
            return Err(ApiError::validation(
                VALIDATION,
                ValidationErrors::single(
                    "name",
                    FieldError::new("validation_match_invalid", "Must be in a valid format."),
                ),
            ));
        }
    };
    let place = place(&state).await?;
    let name = if name.is_empty() {
        let settings = crate::settings::current(&state).await?;
        default_name(&settings.meta.app_name, "", chrono::Utc::now())
    } else {
        if let Some(error) = name_error(&name) {
            return Err(ApiError::validation(
                VALIDATION,
                ValidationErrors::single("name", error),
            ));
        }
        name
    };
    if exists(&place, &name).await? {
        return Err(ApiError::validation(
            VALIDATION,
            ValidationErrors::single(
                "name",
                FieldError::new(
                    "validation_backup_name_exists",
                    "The backup file name is invalid or already exists.",
                ),
            ),
        ));
    }
    make_backup(&state, &place, &name).await.map_err(|error| {
        ApiError::bad_request_msg(&format!("Failed to create backup. Raw error: \n{error}"))
    })?;
    Ok(StatusCode::NO_CONTENT)
}

/// Why a backup could not be made.
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error("the server has no data directory")]
    NoDataDir,
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("snapshot: {0}")]
    Store(#[from] domain::StoreError),
    #[error("storing the zip: {0}")]
    Storage(#[from] crate::state::storage::StorageError),
    #[error("the backup thread stopped: {0}")]
    Join(#[from] tokio::task::JoinError),
}

/// Makes the backup `name` in `place` (the caller holds the busy flag and checked the name):
/// snapshot, zip, then move into place. On any failure the scratch files are removed and
/// nothing appears under `name`.
pub async fn make_backup(
    state: &SharedState,
    place: &Place,
    name: &str,
) -> Result<(), BackupError> {
    let result = make_backup_inner(state, place, name).await;
    crate::metrics::backup_finished(result.is_ok());
    match &result {
        Ok(()) => tracing::info!(backup = name, "backup created"),
        Err(error) => tracing::error!(backup = name, %error, "backup failed"),
    }
    result
}

async fn make_backup_inner(
    state: &SharedState,
    place: &Place,
    name: &str,
) -> Result<(), BackupError> {
    let data_dir = state
        .config
        .data_dir
        .clone()
        .ok_or(BackupError::NoDataDir)?;
    let scratch = Scratch::new(&data_dir, "pb_backup_").await?;
    let snapshot_dir = scratch.path.join("db");
    tokio::fs::create_dir(&snapshot_dir).await?;
    let databases = state.store.snapshot(&snapshot_dir).await?;
    let zip_path = scratch.path.join("backup.zip");
    {
        let zip_path = zip_path.clone();
        let data_dir = data_dir.clone();
        tokio::task::spawn_blocking(move || {
            let out = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&zip_path)?;
            archive::pack(&data_dir, &snapshot_dir, &databases, out)
        })
        .await??;
    }
    publish(place, &zip_path, name).await?;
    Ok(())
}

/// Moves a finished zip into `place` under `key`: a rename on the local disk (atomic, the
/// scratch dir being on the same file system), a streamed upload to S3.
pub async fn publish(place: &Place, zip_path: &Path, key: &str) -> Result<(), BackupError> {
    match place {
        Place::Local(dir) => {
            tokio::fs::rename(zip_path, dir.join(key)).await?;
            Ok(())
        }
        Place::S3(storage) => {
            storage.put_file(key, zip_path).await?;
            Ok(())
        }
    }
}

/// A scratch directory under `<dataDir>/.pb_temp_to_delete/`, removed on drop unless kept.
pub struct Scratch {
    pub path: PathBuf,
    keep: bool,
}

impl Scratch {
    pub async fn new(data_dir: &Path, prefix: &str) -> std::io::Result<Scratch> {
        let path = data_dir
            .join(TEMP_DIR)
            .join(format!("{prefix}{}", naming::random_suffix(12)));
        tokio::fs::create_dir_all(&path).await?;
        Ok(Scratch { path, keep: false })
    }

    /// Leaves the directory in place (a staged restore waiting for the restart).
    pub fn keep(mut self) -> PathBuf {
        self.keep = true;
        self.path.clone()
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if !self.keep {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}

/// `GET /api/backups/{key}?token=`: the zip, for a superuser's file token only.
async fn download(
    State(state): State<SharedState>,
    UrlPath(key): UrlPath<String>,
    RawQuery(query): RawQuery,
    method: Method,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let token = serde_urlencoded::from_str::<Vec<(String, String)>>(query.as_deref().unwrap_or(""))
        .ok()
        .and_then(|pairs| pairs.into_iter().find(|(k, _)| k == "token"))
        .map(|(_, v)| v)
        .unwrap_or_default();
    let allowed = !token.is_empty()
        && crate::auth::token::verify(&state, &token, crate::auth::token::TokenType::File)
            .await
            .is_some_and(|(collection, _, _)| collection.is_superusers());
    if !allowed {
        return Err(ApiError::forbidden(FORBIDDEN));
    }
    let place = place(&state).await?;
    if !exists(&place, &key).await? {
        return Err(ApiError::not_found());
    }
    let storage = match &place {
        Place::Local(dir) => Storage::local(dir).map_err(ApiError::internal)?,
        Place::S3(storage) => storage.clone(),
    };
    let mut response =
        crate::files::download::serve(&storage, &key, &key, true, &method, &headers).await?;
    // Unlike record files, PocketBase keeps `X-Frame-Options` on backup downloads.
    response
        .extensions_mut()
        .remove::<crate::files::FileResponse>();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/zip"),
    );
    Ok(response)
}

/// `DELETE /api/backups/{key}`.
async fn delete(
    State(state): State<SharedState>,
    _: Superuser,
    UrlPath(key): UrlPath<String>,
) -> ApiResult<StatusCode> {
    let place = place(&state).await?;
    let failed = |detail: &str| {
        ApiError::bad_request_msg(&format!(
            "Invalid or already deleted backup file. Raw error: \n[key: {key}] {detail}"
        ))
    };
    if !exists(&place, &key).await? {
        return Err(failed("not found"));
    }
    match &place {
        Place::Local(dir) => {
            tokio::fs::remove_file(dir.join(&key))
                .await
                .map_err(|e| failed(&e.to_string()))?;
            let _ = tokio::fs::remove_file(dir.join(format!("{key}.attrs"))).await;
        }
        Place::S3(storage) => {
            storage
                .delete(&key)
                .await
                .map_err(|e| failed(&e.to_string()))?;
            let _ = storage.delete(&format!("{key}.attrs")).await;
        }
    }
    Ok(StatusCode::NO_CONTENT)
}

/// A field error on `file` in PocketBase's validation shape.
fn file_error(error: FieldError) -> ApiError {
    ApiError::validation(VALIDATION, ValidationErrors::single("file", error))
}

/// The refusal of a zip that is not a backup this server can restore.
fn invalid_backup(reason: &str) -> FieldError {
    FieldError::new(
        "validation_invalid_backup",
        format!("The file is not a valid backup: {reason}."),
    )
}

/// `POST /api/backups/upload` (multipart `file`): stores an uploaded backup after checking
/// it as a restore would (zip directory, entry names, the database's integrity).
async fn upload(
    State(state): State<SharedState>,
    _: Superuser,
    multipart: Result<Multipart, MultipartRejection>,
) -> ApiResult<StatusCode> {
    let Ok(mut multipart) = multipart else {
        return Err(file_error(FieldError::required()));
    };
    let data_dir = data_dir(&state)?;
    let scratch = Scratch::new(&data_dir, "pb_upload_")
        .await
        .map_err(ApiError::internal)?;
    let zip_path = scratch.path.join("upload.zip");
    let mut original = None;
    loop {
        let field = match multipart.next_field().await {
            Ok(Some(field)) => field,
            Ok(None) => break,
            Err(error) => {
                return Err(ApiError::bad_request_msg(&format!(
                    "Failed to read the uploaded file: {}",
                    error.body_text()
                )));
            }
        };
        if field.name() != Some("file") || field.file_name().is_none() {
            continue;
        }
        let name = field.file_name().unwrap_or_default().to_owned();
        receive(field, &zip_path, MAX_UPLOAD_BYTES).await?;
        original = Some(name);
        break;
    }
    let Some(original) = original else {
        return Err(file_error(FieldError::required()));
    };
    let key = original
        .rsplit(['/', '\\'])
        .next()
        .unwrap_or_default()
        .to_owned();
    let head = read_head(&zip_path).await.map_err(ApiError::internal)?;
    if !archive::looks_like_zip(&head) {
        let shown = naming::stored_name(&original, "application/zip");
        return Err(file_error(FieldError::new(
            "validation_invalid_mime_type",
            format!("\"{shown}\" mime type must be one of: application/zip."),
        )));
    }
    if !naming::is_safe_name(&key) || key.starts_with('.') || key.ends_with(".attrs") {
        return Err(file_error(FieldError::new(
            "validation_invalid_backup_name",
            "The backup file name is invalid.",
        )));
    }
    let place = place(&state).await?;
    if exists(&place, &key).await? {
        return Err(file_error(FieldError::new(
            "validation_backup_name_exists",
            "Backup file with the specified name already exists.",
        )));
    }
    verify_zip(&state, &zip_path, &scratch.path, false)
        .await
        .map_err(|reason| file_error(invalid_backup(&reason)))?;
    publish(&place, &zip_path, &key)
        .await
        .map_err(ApiError::internal)?;
    Ok(StatusCode::NO_CONTENT)
}

/// Writes an upload part (a stream of chunks, such as a multipart field) to `path`, refusing
/// more than `max` bytes.
pub async fn receive<S, E>(mut chunks: S, path: &Path, max: u64) -> ApiResult<()>
where
    S: futures_util::Stream<Item = Result<axum::body::Bytes, E>> + Unpin,
    E: std::fmt::Display,
{
    use futures_util::StreamExt as _;
    let mut out = tokio::fs::File::create(path)
        .await
        .map_err(ApiError::internal)?;
    let mut total = 0u64;
    while let Some(chunk) = chunks.next().await {
        let chunk = chunk.map_err(|error| {
            ApiError::bad_request_msg(&format!("Failed to read the uploaded file: {error}"))
        })?;
        total += chunk.len() as u64;
        if total > max {
            return Err(file_error(too_large(max)));
        }
        out.write_all(&chunk).await.map_err(ApiError::internal)?;
    }
    out.flush().await.map_err(ApiError::internal)?;
    Ok(())
}

/// The refusal of an upload over `max` bytes.
pub fn too_large(max: u64) -> FieldError {
    FieldError::new(
        "validation_file_size_limit",
        format!("The maximum allowed file size is {max} bytes."),
    )
    .with_param("maxSize", max)
}

async fn read_head(path: &Path) -> std::io::Result<Vec<u8>> {
    use tokio::io::AsyncReadExt as _;
    let mut file = tokio::fs::File::open(path).await?;
    let mut head = vec![0u8; 8];
    let mut read = 0;
    while read < head.len() {
        let n = file.read(&mut head[read..]).await?;
        if n == 0 {
            break;
        }
        read += n;
    }
    head.truncate(read);
    Ok(head)
}

/// Checks the zip at `zip_path` and unpacks it into `<work>/unpacked`: everything when
/// `full` (a restore), else only the database files (an upload). The unpacked databases must
/// pass the store's check. Returns the unpacked directory; the reason on refusal.
async fn verify_zip(
    state: &SharedState,
    zip_path: &Path,
    work: &Path,
    full: bool,
) -> Result<PathBuf, String> {
    let unpacked = work.join("unpacked");
    {
        let zip_path = zip_path.to_owned();
        let unpacked = unpacked.clone();
        tokio::task::spawn_blocking(move || -> Result<(), archive::ArchiveError> {
            let checked = archive::check(&zip_path, archive::DEFAULT_LIMITS)?;
            let names: Vec<String> = checked
                .files
                .into_iter()
                .filter(|name| full || archive::DATABASE_FILES.contains(&name.as_str()))
                .collect();
            std::fs::create_dir_all(&unpacked)?;
            archive::unpack(
                &zip_path,
                &names,
                &unpacked,
                archive::DEFAULT_LIMITS.max_unpacked,
            )
        })
        .await
        .map_err(|e| e.to_string())?
        .map_err(|error| match error {
            archive::ArchiveError::Io(error) => {
                tracing::error!(%error, "unpacking a backup failed");
                format!("it could not be unpacked ({error})")
            }
            other => other.to_string(),
        })?;
    }
    state
        .store
        .verify_snapshot(&unpacked)
        .await
        .map_err(|error| match error {
            domain::StoreError::Schema(reason) => reason,
            other => {
                tracing::error!(error = %other, "checking a backup's database failed");
                "its database could not be checked".to_owned()
            }
        })?;
    Ok(unpacked)
}

/// `POST /api/backups/{key}/restore`: verifies the backup in a staging directory, answers
/// 204 and has `serve` swap it in and restart.
async fn restore(
    State(state): State<SharedState>,
    _: Superuser,
    UrlPath(key): UrlPath<String>,
) -> ApiResult<Response> {
    let Some(busy) = state.backups.try_begin() else {
        return Err(ApiError::bad_request_msg(BUSY));
    };
    let place = place(&state).await?;
    if !exists(&place, &key).await? {
        return Err(ApiError::bad_request_msg(MISSING));
    }
    let data_dir = data_dir(&state)?;
    let scratch = Scratch::new(&data_dir, "pb_restore_")
        .await
        .map_err(ApiError::internal)?;
    let zip_path = match &place {
        Place::Local(dir) => dir.join(&key),
        Place::S3(storage) => {
            let local = scratch.path.join("download.zip");
            storage
                .get_file(&key, &local)
                .await
                .map_err(ApiError::internal)?;
            local
        }
    };
    let unpacked = verify_zip(&state, &zip_path, &scratch.path, true)
        .await
        .map_err(|reason| {
            let mut error = ApiError::bad_request_msg(MISSING);
            error.data = json!({"key": {
                "code": "validation_invalid_backup",
                "message": format!("The file is not a valid backup: {reason}."),
            }});
            error
        })?;
    let staged = scratch.path.join("staged");
    tokio::fs::rename(&unpacked, &staged)
        .await
        .map_err(ApiError::internal)?;
    scratch.keep();
    tracing::info!(backup = %key, "backup verified; restarting to restore it");
    // The flag stays taken until the process restarts: no backup may start meanwhile.
    std::mem::forget(busy);
    state.backups.request_restart(staged);
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// The `backups` settings checks PocketBase makes: a valid cron expression (or none) and, with
/// one, `cronMaxKeep` of at least 1. Errors keyed like the settings object.
pub fn settings_errors(backups: &crate::state::settings::Backups) -> ValidationErrors {
    let mut errors = ValidationErrors::new();
    if !backups.cron.is_empty() {
        if crate::cron::Schedule::parse(&backups.cron).is_err() {
            errors.add(
                "cron",
                FieldError::new(
                    "validation_invalid_cron",
                    "Invalid cron expression - must be a valid macro or to have exactly 5 space separated segments.",
                ),
            );
        }
        if backups.cron_max_keep == 0 {
            errors.add("cronMaxKeep", FieldError::required());
        }
    }
    errors
}
