//! Moving a PocketBase 0.23+ data directory into Plinth: collections (ids, fields, rules,
//! indexes, auth options with their token secrets and OAuth2 client secrets), records (ids,
//! timestamps, password hashes and token keys verbatim), the auth side tables, settings
//! (decrypted when PocketBase encrypted them) and the migration list.
//!
//! Reading PocketBase's file is the engine crate's business; this module sees it through
//! [`Source`] and writes only through the [`Store`] port, so any engine can be the target.
//! Keeping each auth collection's secrets and each record's `tokenKey` is what keeps the tokens
//! PocketBase issued valid; keeping the bcrypt hashes lets users sign in with their passwords
//! (they are rehashed on the first successful sign-in, see `auth::password`).

use std::collections::BTreeMap;
use std::sync::Arc;

use domain::collection::Collection;
use domain::field::FieldKind;
use domain::record::RecordData;
use domain::{RecordQuery, Store, StoreError, WriteOp};
use serde_json::Value;

/// Records written per store transaction: large enough to amortize a commit, small enough
/// that one batch's memory stays modest.
pub const BATCH_RECORDS: usize = 200;

/// Why an import failed.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("{0}")]
    Source(String),
    #[error("the PocketBase settings are encrypted: give the key with --encryptionEnv NAME")]
    MissingKey,
    #[error("the PocketBase settings cannot be decrypted with the given key: {0}")]
    BadKey(String),
    #[error("writing {what}: {source}")]
    Store {
        what: String,
        source: Box<StoreError>,
    },
    #[error("verification failed: {0}")]
    Verify(String),
}

/// A PocketBase `_params` value as the source read it.
#[derive(Debug, Clone)]
pub enum Param {
    Json(Value),
    /// base64(nonce ‖ ciphertext ‖ tag), AES-256-GCM, written with `--encryptionEnv`.
    Encrypted(String),
    Null,
}

/// What the importer reads. Calls are synchronous: sources are local files.
pub trait Source: Send {
    fn collections(&mut self) -> Result<Vec<Collection>, ImportError>;
    fn count(&mut self, collection: &Collection) -> Result<u64, ImportError>;
    /// Up to `limit` records after the position `after` (0 to start), and the next position.
    fn records(
        &mut self,
        collection: &Collection,
        after: i64,
        limit: usize,
    ) -> Result<(Vec<RecordData>, i64), ImportError>;
    fn params(&mut self) -> Result<Vec<(String, Param)>, ImportError>;
    fn migrations(&mut self) -> Result<Vec<(String, i64)>, ImportError>;
}

/// Where progress goes (a terminal progress bar, or nothing).
pub trait Progress: Send + Sync {
    /// A new phase with `total` steps.
    fn phase(&self, label: &str, total: u64);
    fn advance(&self, steps: u64);
    /// Something the operator should know that does not stop the import.
    fn warn(&self, message: &str);
    fn finish(&self);
}

/// Progress nobody watches.
pub struct Silent;

impl Progress for Silent {
    fn phase(&self, _: &str, _: u64) {}
    fn advance(&self, _: u64) {}
    fn warn(&self, message: &str) {
        tracing::warn!("{message}");
    }
    fn finish(&self) {}
}

/// What an import carried.
#[derive(Debug, Default, Clone)]
pub struct Report {
    pub collections: usize,
    /// Rows per table collection, by name.
    pub records: BTreeMap<String, u64>,
    pub settings: bool,
    pub migrations: usize,
    pub warnings: Vec<String>,
}

/// Import options.
#[derive(Debug, Default, Clone)]
pub struct Options {
    /// The value of PocketBase's `--encryptionEnv` variable, when its settings are encrypted.
    pub encryption_key: Option<String>,
}

/// Copies everything from `source` into `store`, which should be a fresh database, and checks
/// the per-collection row counts afterwards.
pub async fn import(
    source: &mut dyn Source,
    store: &dyn Store,
    options: &Options,
    progress: &dyn Progress,
) -> Result<Report, ImportError> {
    let mut report = Report::default();
    let warn = |report: &mut Report, message: String| {
        progress.warn(&message);
        report.warnings.push(message);
    };

    // Settings first: a wrong or missing key should stop the import before anything is written.
    let mut params = Vec::new();
    for (id, value) in source.params()? {
        let value = match value {
            Param::Json(value) => value,
            Param::Null => Value::Null,
            Param::Encrypted(cipher) => {
                let key = options
                    .encryption_key
                    .as_deref()
                    .filter(|k| !k.is_empty())
                    .ok_or(ImportError::MissingKey)?;
                let plain = decrypt(&cipher, key).map_err(ImportError::BadKey)?;
                serde_json::from_str(&plain).map_err(|e| {
                    ImportError::BadKey(format!("the decrypted settings are not JSON: {e}"))
                })?
            }
        };
        params.push((id, value));
    }

    let collections = source.collections()?;
    progress.phase("collections", 1);
    let schema = store
        .import_collections(collections.clone(), true)
        .await
        .map_err(|source| ImportError::Store {
            what: "the collections".into(),
            source: Box::new(source),
        })?;
    progress.advance(1);
    report.collections = collections.len();

    // Records are written against the collections as the store now holds them.
    let tables: Vec<Arc<Collection>> = collections
        .iter()
        .filter(|c| !c.is_view())
        .map(|c| {
            schema
                .get_by_id(&c.id)
                .cloned()
                .unwrap_or_else(|| Arc::new(c.clone()))
        })
        .collect();
    let mut counts = Vec::with_capacity(tables.len());
    for collection in &tables {
        counts.push(source.count(collection)?);
    }
    let total: u64 = counts.iter().sum();

    // Relations may point forwards, backwards or at their own collection (cycles are legal),
    // and the store checks every target exists: records go in first with their relations
    // empty, then the relations are set.
    progress.phase("records", total);
    for collection in &tables {
        let relations = relation_fields(collection);
        let mut after = 0;
        loop {
            let (batch, next) = source.records(collection, after, BATCH_RECORDS)?;
            if batch.is_empty() {
                break;
            }
            after = next;
            let n = batch.len() as u64;
            let ops = batch
                .into_iter()
                .map(|mut data| {
                    for field in &relations {
                        if let Some(value) = data.get_mut(field) {
                            *value = empty_like(value);
                        }
                    }
                    WriteOp::Create {
                        collection: Arc::clone(collection),
                        data,
                        guard: None,
                    }
                })
                .collect();
            store.write(ops).await.map_err(|e| ImportError::Store {
                what: format!("the records of {}", collection.name),
                source: Box::new(e.error),
            })?;
            progress.advance(n);
        }
    }

    let with_relations: Vec<&Arc<Collection>> = tables
        .iter()
        .filter(|c| !relation_fields(c).is_empty())
        .collect();
    if !with_relations.is_empty() {
        let total: u64 = tables
            .iter()
            .zip(&counts)
            .filter(|(c, _)| !relation_fields(c).is_empty())
            .map(|(_, n)| n)
            .sum();
        progress.phase("relations", total);
    }
    for collection in with_relations {
        let relations = relation_fields(collection);
        let mut after = 0;
        loop {
            let (batch, next) = source.records(collection, after, BATCH_RECORDS)?;
            if batch.is_empty() {
                break;
            }
            after = next;
            let n = batch.len() as u64;
            let updates: Vec<(String, RecordData)> = batch
                .into_iter()
                .filter_map(|data| {
                    let id = data.get("id")?.as_str()?.to_owned();
                    let values: RecordData = relations
                        .iter()
                        .filter_map(|f| Some((f.clone(), data.get(f)?.clone())))
                        .filter(|(_, v)| !is_empty(v))
                        .collect();
                    (!values.is_empty()).then_some((id, values))
                })
                .collect();
            if store.write(update_ops(collection, &updates)).await.is_err() {
                // One dangling id fails the whole batch; retry one by one so only the records
                // pointing at missing records lose those relations.
                for (id, values) in &updates {
                    if let Err(error) = store
                        .write(update_ops(
                            collection,
                            std::slice::from_ref(&(id.clone(), values.clone())),
                        ))
                        .await
                    {
                        warn(
                            &mut report,
                            format!(
                                "{}/{id}: relations not carried ({}); PocketBase held ids of missing records",
                                collection.name, error.error
                            ),
                        );
                    }
                }
            }
            progress.advance(n);
        }
    }

    progress.phase("settings", params.len() as u64 + 1);
    for (id, value) in params {
        report.settings |= id == "settings";
        store
            .set_param(&id, value)
            .await
            .map_err(|source| ImportError::Store {
                what: format!("the parameter {id}"),
                source: Box::new(source),
            })?;
        progress.advance(1);
    }
    let migrations = source.migrations()?;
    for (file, applied) in &migrations {
        match store.record_migration(file, *applied).await {
            Ok(()) => report.migrations += 1,
            Err(error) => warn(
                &mut report,
                format!("migration {file} not recorded: {error}"),
            ),
        }
    }
    progress.advance(1);

    // Verify: every table holds as many rows as PocketBase's.
    for (collection, expected) in tables.iter().zip(counts) {
        let page = store
            .list_records(RecordQuery {
                collection: Arc::clone(collection),
                filters: Vec::new(),
                sort: Vec::new(),
                page: 1,
                per_page: 1,
                with_total: true,
            })
            .await
            .map_err(|source| ImportError::Store {
                what: format!("counting {}", collection.name),
                source: Box::new(source),
            })?;
        let got = page.total.unwrap_or(0);
        if got != expected {
            return Err(ImportError::Verify(format!(
                "{} holds {got} records, PocketBase had {expected}",
                collection.name
            )));
        }
        report.records.insert(collection.name.clone(), got);
    }
    progress.finish();
    Ok(report)
}

fn update_ops(collection: &Arc<Collection>, updates: &[(String, RecordData)]) -> Vec<WriteOp> {
    updates
        .iter()
        .map(|(id, values)| {
            let values = values.clone();
            WriteOp::Update {
                collection: Arc::clone(collection),
                id: id.clone(),
                guard: None,
                apply: Box::new(move |_| Ok(values.clone())),
                known: None,
            }
        })
        .collect()
}

fn relation_fields(collection: &Collection) -> Vec<String> {
    collection
        .fields
        .iter()
        .filter(|f| matches!(f.kind, FieldKind::Relation(_)))
        .map(|f| f.name.clone())
        .collect()
}

fn empty_like(value: &Value) -> Value {
    match value {
        Value::Array(_) => Value::Array(Vec::new()),
        _ => Value::String(String::new()),
    }
}

fn is_empty(value: &Value) -> bool {
    match value {
        Value::Array(items) => items.is_empty(),
        Value::String(s) => s.is_empty(),
        Value::Null => true,
        _ => false,
    }
}

/// Opens PocketBase's encrypted settings (AES-256-GCM, base64(nonce ‖ ciphertext ‖ tag), the
/// key being the variable's raw bytes).
fn decrypt(cipher: &str, key: &str) -> Result<String, String> {
    use crate::settings::encryption;
    let key = crate::state::EncryptionKey::from_text(key).map_err(|e| e.to_string())?;
    let plain = encryption::decrypt(&key, cipher).map_err(|e| e.to_string())?;
    String::from_utf8(plain).map_err(|_| "the decrypted settings are not UTF-8 text".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decrypts_pocketbase_settings_and_refuses_a_wrong_key() {
        let key = "0123456789abcdef0123456789abcdef";
        let sealed = crate::settings::encryption::encrypt(
            &crate::state::EncryptionKey::from_text(key).expect("a 32-byte key"),
            br#"{"meta":{"appName":"x"}}"#,
        )
        .expect("seals");
        assert_eq!(
            decrypt(&sealed, key).expect("opens"),
            r#"{"meta":{"appName":"x"}}"#
        );
        assert!(decrypt(&sealed, "ffffffffffffffffffffffffffffffff").is_err());
    }

    #[test]
    fn relations_are_emptied_in_their_own_shape() {
        assert_eq!(empty_like(&serde_json::json!(["a"])), serde_json::json!([]));
        assert_eq!(empty_like(&serde_json::json!("a")), serde_json::json!(""));
        assert!(is_empty(&serde_json::json!([])));
        assert!(!is_empty(&serde_json::json!(["a"])));
    }
}
