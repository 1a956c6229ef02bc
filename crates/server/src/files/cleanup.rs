//! The orphan sweep. Uploads are stored before their record commits and replaced files are
//! removed after, so a crash (or a failed removal) can leave files no record names. They are
//! harmless but take space; this job removes them once they are older than a grace period,
//! which keeps it from touching uploads whose transaction is still running.
//!
//! The storage may be shared (an S3 bucket other programs write to, a data directory someone
//! keeps other things in), so the sweep deletes only what Plinth provably wrote: keys under
//! the id of a collection Plinth has kept files for (a durable list in the `_params` table,
//! see [`remember_collections`]), shaped exactly like Plinth's own layout —
//! `<collectionId>/<recordId>/<stored name>` and its thumbnails — and named by no record.
//! Everything else is never listed, let alone deleted.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use domain::FieldKind;
use serde_json::Value;

use super::naming::is_stored_name;
use super::thumbs::ThumbSize;
use crate::state::SharedState;
use crate::state::storage::StorageError;

/// Files younger than this are never swept (a write in flight may still commit them).
pub const GRACE: Duration = Duration::from_secs(3600);
/// The `_params` key holding the ids of every collection Plinth has kept files for.
pub const OWNED_COLLECTIONS_PARAM: &str = "plinthFileCollections";

/// Adds the ids of the current schema's collections with file fields to the durable list of
/// collections Plinth keeps files for, and returns the list. Every upload asks for its
/// storage through [`super::storage_for`], which calls this first, so a collection's id is
/// on the list before its first file is written; the list only grows, so files of deleted
/// collections stay recognizable as Plinth's.
pub async fn remember_collections(state: &SharedState) -> Result<BTreeSet<String>, StorageError> {
    let schema = state.schema();
    let mut owned = state.files.owned.lock().await;
    if let (Some(ids), Some(merged)) = (&owned.ids, &owned.merged)
        && Arc::ptr_eq(merged, &schema)
    {
        return Ok(ids.clone());
    }
    let store_error = |e: domain::StoreError| StorageError::Setup(e.to_string());
    let (mut ids, stored) = match &owned.ids {
        Some(ids) => (ids.clone(), true),
        None => match state
            .store
            .get_param(OWNED_COLLECTIONS_PARAM)
            .await
            .map_err(store_error)?
        {
            Some(Value::Array(items)) => (
                items
                    .iter()
                    .filter_map(|v| v.as_str().map(str::to_owned))
                    .collect(),
                true,
            ),
            _ => (BTreeSet::new(), false),
        },
    };
    let before = ids.len();
    ids.extend(
        schema
            .all()
            .iter()
            .filter(|c| {
                c.fields
                    .iter()
                    .any(|f| matches!(f.kind, FieldKind::File(_)))
            })
            .map(|c| c.id.clone()),
    );
    if ids.len() != before || !stored {
        state
            .store
            .set_param(
                OWNED_COLLECTIONS_PARAM,
                Value::from_iter(ids.iter().cloned()),
            )
            .await
            .map_err(store_error)?;
    }
    owned.ids = Some(ids.clone());
    owned.merged = Some(schema);
    Ok(ids)
}

/// The name of the record file a key of Plinth's layout belongs to (a file is its own
/// owner; a thumbnail and PocketBase's `.attrs` sidecars belong to the file they were made
/// for), or `None` when the part of the key under the record is not Plinth's.
pub fn owner_of(rest: &str) -> Option<&str> {
    match rest.split_once('/') {
        None => {
            let name = rest.strip_suffix(".attrs").unwrap_or(rest);
            is_stored_name(name).then_some(name)
        }
        Some((dir, file)) => {
            let name = dir.strip_prefix("thumbs_")?;
            let file = file.strip_suffix(".attrs").unwrap_or(file);
            let (size, of) = file.split_once('_')?;
            (is_stored_name(name) && of == name && ThumbSize::parse(size).is_some()).then_some(name)
        }
    }
}

/// Whether a record id segment could be one Plinth wrote.
fn is_record_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 255
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

/// Removes Plinth's own files (and thumbnails) older than `grace` that no record's file
/// fields name, including those of collections that no longer exist. Keys not of Plinth's
/// layout, or under ids Plinth never kept files for, are left alone. Returns how many
/// objects were removed.
pub async fn remove_orphans(state: &SharedState, grace: Duration) -> Result<usize, StorageError> {
    let storage = super::storage_for(state)
        .await
        .map_err(|e| StorageError::Setup(e.message))?;
    let owned = remember_collections(state).await?;
    let cutoff = chrono::Utc::now()
        - chrono::Duration::from_std(grace).unwrap_or_else(|_| chrono::Duration::zero());
    let schema = state.schema();
    // Stored names per record, `None` when the record is gone; loaded once per record.
    let mut names_by_record: HashMap<String, Option<Vec<String>>> = HashMap::new();
    let mut removed = 0;
    for collection_id in &owned {
        if !is_record_id(collection_id) {
            continue;
        }
        names_by_record.clear();
        for (key, meta) in storage.list_with_meta(collection_id).await? {
            if meta.last_modified > cutoff {
                continue;
            }
            let mut parts = key.splitn(3, '/');
            let (Some(key_collection), Some(record_id), Some(rest)) =
                (parts.next(), parts.next(), parts.next())
            else {
                continue;
            };
            if key_collection != collection_id || !is_record_id(record_id) {
                continue;
            }
            let Some(owner) = owner_of(rest) else {
                continue;
            };
            let referenced = match schema.get_by_id(collection_id) {
                None => false,
                Some(collection) => {
                    if !names_by_record.contains_key(record_id) {
                        let record = state
                            .store
                            .get_record(collection.clone(), record_id, Vec::new())
                            .await
                            .map_err(|e| StorageError::Setup(e.to_string()))?;
                        let names = record.map(|r| file_names(collection, &r));
                        names_by_record.insert(record_id.to_owned(), names);
                    }
                    names_by_record
                        .get(record_id)
                        .and_then(Option::as_ref)
                        .is_some_and(|names| names.iter().any(|n| n == owner))
                }
            };
            if !referenced {
                // A backup started meanwhile may name the file in its database copy (a record
                // that dropped it committed after the copy): stop, the next run goes on.
                if !state.backups.can_backup() {
                    return Ok(removed);
                }
                storage.delete(&key).await?;
                removed += 1;
            }
        }
    }
    Ok(removed)
}

/// Every name the record's file fields list.
fn file_names(collection: &domain::Collection, record: &domain::Record) -> Vec<String> {
    collection
        .fields
        .iter()
        .filter(|f| matches!(f.kind, FieldKind::File(_)))
        .flat_map(|f| match record.get(&f.name) {
            Some(Value::String(s)) => vec![s.clone()],
            Some(Value::Array(items)) => items
                .iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect(),
            _ => Vec::new(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plinth_shaped_keys_have_an_owner() {
        let name = "photo_abcdefghij.png";
        assert_eq!(owner_of(name), Some(name));
        assert_eq!(owner_of("photo_abcdefghij.png.attrs"), Some(name));
        assert_eq!(
            owner_of("thumbs_photo_abcdefghij.png/100x100_photo_abcdefghij.png"),
            Some(name)
        );
        assert_eq!(
            owner_of("thumbs_photo_abcdefghij.png/0x50f_photo_abcdefghij.png.attrs"),
            Some(name)
        );
        for foreign in [
            "photo.png",
            "notes.txt",
            "thumbs_photo_abcdefghij.png/big_photo_abcdefghij.png",
            "thumbs_photo_abcdefghij.png/100x100_other_abcdefghij.png",
            "other/photo_abcdefghij.png",
            "thumbs_photo_abcdefghij.png/a/b",
        ] {
            assert_eq!(owner_of(foreign), None, "{foreign}");
        }
    }
}
