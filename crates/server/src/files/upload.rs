//! Uploaded files on their way into a record: the multipart file parts (already named the
//! PocketBase way), merged into the body under their field's key and modifier, validated
//! against the field's `maxSize` and `mimeTypes`, stored before the record's transaction and
//! removed again if it fails. Files a write replaces or removes are deleted only after the
//! commit, so a crash leaves at worst an orphan file, never a record naming a missing one.

use axum::body::Bytes;
use domain::values::RecordInput;
use domain::{Collection, FieldError, FieldKind, RecordData, ValidationErrors};
use serde_json::{Map, Value};

use super::mime;
use super::storage::{file_key, record_prefix};
use crate::state::storage::{Storage, StorageError};

/// PocketBase's default `maxSize` of a file field: 5 MiB.
pub const DEFAULT_MAX_SIZE: u64 = 5 << 20;

/// One file part of a multipart body.
#[derive(Debug, Clone)]
pub struct UploadedFile {
    /// The part name: a field name with an optional modifier (`docs+`, `+docs`), or, in a
    /// batch body, `requests.N.<that>`.
    pub key: String,
    /// The name the client sent.
    pub original_name: String,
    /// The name it will be stored under.
    pub stored_name: String,
    /// The sniffed content type.
    pub mime: &'static str,
    pub bytes: Bytes,
}

impl UploadedFile {
    /// Names, sniffs and wraps a file part.
    pub fn new(key: String, original_name: String, bytes: Bytes) -> Self {
        let mime = mime::sniff(&bytes, &original_name);
        let stored_name = super::naming::stored_name(&original_name, mime);
        UploadedFile {
            key,
            original_name,
            stored_name,
            mime,
            bytes,
        }
    }
}

/// The files one record write adds: which names each field gains and the bytes to store.
#[derive(Debug, Default)]
pub struct UploadPlan {
    names: Vec<(String, Vec<String>)>,
    files: Vec<(String, Bytes)>,
}

enum Placement {
    Set,
    Append,
    Prepend,
}

/// Merges `files` into `body` as PocketBase does: a plain `field` upload replaces the value
/// (keeping existing names sent as `field` text parts in front), `field+` appends and
/// `+field` prepends. Parts naming no file field are ignored. Size and type are checked
/// here; the count (`maxSelect`) is checked with the other field rules.
pub fn plan(
    collection: &Collection,
    body: &mut Map<String, Value>,
    files: Vec<UploadedFile>,
) -> Result<UploadPlan, ValidationErrors> {
    let mut errors = ValidationErrors::new();
    let mut plan = UploadPlan::default();
    let mut grouped: Vec<(String, String, Vec<String>)> = Vec::new();
    for file in files {
        let (name, placement) = if let Some(name) = file.key.strip_suffix('+') {
            (name, Placement::Append)
        } else if let Some(name) = file.key.strip_prefix('+') {
            (name, Placement::Prepend)
        } else {
            (file.key.as_str(), Placement::Set)
        };
        let Some(field) = collection.field(name) else {
            continue;
        };
        let FieldKind::File(options) = &field.kind else {
            continue;
        };
        let max_size = if options.max_size == 0 {
            DEFAULT_MAX_SIZE
        } else {
            options.max_size
        };
        if file.bytes.len() as u64 > max_size {
            errors.add(
                &field.name,
                FieldError::new(
                    "validation_file_size_limit",
                    format!(
                        "Failed to upload {} - the maximum allowed file size is {max_size} bytes.",
                        file.original_name
                    ),
                )
                .with_param("file", file.original_name.clone())
                .with_param("maxSize", max_size),
            );
            continue;
        }
        if !mime::allowed(file.mime, &options.mime_types) {
            errors.add(
                &field.name,
                FieldError::new(
                    "validation_invalid_mime_type",
                    format!(
                        "{:?} mime type must be one of: {}.",
                        file.stored_name,
                        options.mime_types.join(", ")
                    ),
                ),
            );
            continue;
        }
        let body_key = match placement {
            Placement::Set => field.name.clone(),
            Placement::Append => format!("{}+", field.name),
            Placement::Prepend => format!("+{}", field.name),
        };
        match grouped.iter_mut().find(|(k, _, _)| *k == body_key) {
            Some((_, _, names)) => names.push(file.stored_name.clone()),
            None => grouped.push((body_key, field.name.clone(), vec![file.stored_name.clone()])),
        }
        plan.files.push((file.stored_name, file.bytes));
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    for (body_key, field_name, names) in grouped {
        let multiple = collection
            .field(&field_name)
            .is_some_and(|f| f.is_multiple());
        let sent = texts(body.get(&body_key));
        let value = if body_key.starts_with('+') {
            Value::from([names.clone(), sent].concat())
        } else if body_key.ends_with('+') || multiple {
            Value::from([sent, names.clone()].concat())
        } else if names.len() == 1 {
            // A single-file field: the upload replaces whatever the body said.
            Value::from(names[0].clone())
        } else {
            Value::from(names.clone())
        };
        body.insert(body_key, value);
        match plan.names.iter_mut().find(|(f, _)| *f == field_name) {
            Some((_, all)) => all.extend(names),
            None => plan.names.push((field_name, names)),
        }
    }
    Ok(plan)
}

/// The text values the body already holds under a key (existing file names to keep).
fn texts(value: Option<&Value>) -> Vec<String> {
    match value {
        Some(Value::String(s)) if !s.is_empty() => vec![s.clone()],
        Some(Value::Array(items)) => items
            .iter()
            .filter_map(|v| v.as_str())
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect(),
        _ => Vec::new(),
    }
}

impl UploadPlan {
    pub fn is_empty(&self) -> bool {
        self.files.is_empty()
    }

    /// Tells the record input which new names it may accept.
    pub fn declare(&self, input: &mut RecordInput) {
        for (field, names) in &self.names {
            input.add_new_files(field, names.clone());
        }
    }

    /// Stores every new file under the record; on failure removes what was written.
    pub async fn store(
        &self,
        storage: &Storage,
        collection_id: &str,
        record_id: &str,
    ) -> Result<(), StorageError> {
        for (i, (name, bytes)) in self.files.iter().enumerate() {
            let key = file_key(collection_id, record_id, name);
            if let Err(error) = storage.put(&key, bytes.clone()).await {
                for (name, _) in &self.files[..i] {
                    let _ = storage
                        .delete(&file_key(collection_id, record_id, name))
                        .await;
                }
                return Err(error);
            }
        }
        Ok(())
    }

    /// Removes the files [`UploadPlan::store`] wrote (the record write failed).
    pub async fn discard(&self, storage: &Storage, collection_id: &str, record_id: &str) {
        for (name, _) in &self.files {
            let key = file_key(collection_id, record_id, name);
            if let Err(error) = storage.delete(&key).await {
                tracing::warn!(%error, %key, "removing an uploaded file after a failed write");
            }
        }
    }
}

/// The names of `collection`'s file fields in `before` that `after` no longer lists.
pub fn removed_files(
    collection: &Collection,
    before: &RecordData,
    after: &RecordData,
) -> Vec<String> {
    let mut removed = Vec::new();
    for field in &collection.fields {
        if !matches!(field.kind, FieldKind::File(_)) {
            continue;
        }
        let kept = texts(after.get(&field.name));
        removed.extend(
            texts(before.get(&field.name))
                .into_iter()
                .filter(|name| !kept.contains(name)),
        );
    }
    removed
}

/// Deletes replaced or removed files (and their thumbnails) after a commit. Failures only
/// leave orphans, so they are logged, not reported.
pub async fn delete_after_commit(
    storage: &Storage,
    collection_id: &str,
    record_id: &str,
    names: &[String],
) {
    for name in names {
        let key = file_key(collection_id, record_id, name);
        if let Err(error) = storage.delete(&key).await {
            tracing::warn!(%error, %key, "removing a replaced file");
        }
        let thumbs = format!("{}/thumbs_{name}", record_prefix(collection_id, record_id));
        if let Err(error) = storage.delete_prefix(&thumbs).await {
            tracing::warn!(%error, key = %thumbs, "removing thumbnails of a replaced file");
        }
    }
}

/// Deletes every file of a deleted record, after the commit.
pub async fn delete_record_files(storage: &Storage, collection_id: &str, record_id: &str) {
    let prefix = record_prefix(collection_id, record_id);
    if let Err(error) = storage.delete_prefix(&prefix).await {
        tracing::warn!(%error, %prefix, "removing the files of a deleted record");
    }
}
