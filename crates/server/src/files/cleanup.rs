//! The orphan sweep. Uploads are stored before their record commits and replaced files are
//! removed after, so a crash (or a failed removal) can leave files no record names. They are
//! harmless but take space; this job removes them once they are older than a grace period,
//! which keeps it from touching uploads whose transaction is still running.

use std::collections::HashMap;
use std::time::Duration;

use domain::FieldKind;
use serde_json::Value;

use super::storage::StorageError;
use crate::state::SharedState;

/// Files younger than this are never swept (a write in flight may still commit them).
pub const GRACE: Duration = Duration::from_secs(3600);
/// How often the background sweep runs.
const INTERVAL: Duration = Duration::from_secs(6 * 3600);

/// Starts the periodic sweep of the current storage.
pub fn spawn(state: &SharedState) {
    let state = state.clone();
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(INTERVAL).await;
            match remove_orphans(&state, GRACE).await {
                Ok(0) => {}
                Ok(removed) => tracing::info!(removed, "removed orphaned files"),
                Err(error) => tracing::warn!(%error, "orphaned file sweep failed"),
            }
        }
    });
}

/// Removes files (and thumbnails) older than `grace` that no record's file fields name,
/// including everything under collections that no longer exist. Returns how many objects
/// were removed.
pub async fn remove_orphans(state: &SharedState, grace: Duration) -> Result<usize, StorageError> {
    let storage = super::storage_for(state)
        .await
        .map_err(|e| StorageError::Setup(e.message))?;
    let cutoff = chrono::Utc::now()
        - chrono::Duration::from_std(grace).unwrap_or_else(|_| chrono::Duration::zero());
    let schema = state.schema();
    // Stored names per record, `None` when the record is gone; loaded once per record.
    let mut names_by_record: HashMap<(String, String), Option<Vec<String>>> = HashMap::new();
    let mut removed = 0;
    for (key, meta) in storage.list_with_meta("").await? {
        if meta.last_modified > cutoff {
            continue;
        }
        let mut parts = key.splitn(3, '/');
        let (Some(collection_id), Some(record_id), Some(rest)) =
            (parts.next(), parts.next(), parts.next())
        else {
            continue;
        };
        let referenced = match schema.get_by_id(collection_id) {
            None => false,
            Some(collection) => {
                let slot = (collection_id.to_owned(), record_id.to_owned());
                if !names_by_record.contains_key(&slot) {
                    let record = state
                        .store
                        .get_record(collection.clone(), record_id, Vec::new())
                        .await
                        .map_err(|e| StorageError::Setup(e.to_string()))?;
                    let names = record.map(|r| {
                        collection
                            .fields
                            .iter()
                            .filter(|f| matches!(f.kind, FieldKind::File(_)))
                            .flat_map(|f| match r.get(&f.name) {
                                Some(Value::String(s)) => vec![s.clone()],
                                Some(Value::Array(items)) => items
                                    .iter()
                                    .filter_map(|v| v.as_str().map(str::to_owned))
                                    .collect(),
                                _ => Vec::new(),
                            })
                            .collect()
                    });
                    names_by_record.insert(slot.clone(), names);
                }
                // A thumbnail belongs to the file its directory is named after.
                let owner = match rest.split_once('/') {
                    Some((dir, _)) => dir.strip_prefix("thumbs_").unwrap_or(dir),
                    None => rest,
                };
                names_by_record
                    .get(&slot)
                    .and_then(Option::as_ref)
                    .is_some_and(|names| names.iter().any(|n| n == owner))
            }
        };
        if !referenced {
            storage.delete(&key).await?;
            removed += 1;
        }
    }
    Ok(removed)
}
