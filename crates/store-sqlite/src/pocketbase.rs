//! Reading a data directory written by PocketBase 0.23+ (`pb_data/data.db`), for the importer.
//!
//! PocketBase keeps each collection as a row of `_collections` with its `fields`, `indexes`
//! and `options` in separate JSON columns, where Plinth keeps one `definition`; record tables
//! use the same column encoding as Plinth's, so rows are decoded with the store's own
//! `records::sql_to_json`. Reading a PocketBase file is inherently SQLite work, so it lives here;
//! writing the result goes through the `Store` port (the server's `import` module), which keeps
//! the importer independent of the target engine. The file is opened read-only: the original
//! stays exactly as it was.

use std::path::{Path, PathBuf};

use domain::collection::Collection;
use domain::record::RecordData;
use domain::sql::quote_ident;
use rusqlite::types::ValueRef;
use rusqlite::{Connection, OpenFlags, OptionalExtension, params};
use serde_json::{Map, Value};

/// Why a PocketBase data directory cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum PocketBaseError {
    #[error("{0} has no data.db")]
    Missing(PathBuf),
    #[error("{path} is not a PocketBase 0.23+ database (no _collections table with fields)")]
    NotPocketBase { path: PathBuf },
    #[error(
        "{path} is PocketBase's database, not one Plinth wrote: use `plinth import-pocketbase`"
    )]
    NotPlinth { path: PathBuf },
    #[error("reading {path}: {source}")]
    Sqlite {
        path: PathBuf,
        source: rusqlite::Error,
    },
    #[error("{path} failed SQLite's integrity check: {detail}")]
    Corrupt { path: PathBuf, detail: String },
    #[error("collection {id} in {path} cannot be read: {detail}")]
    Collection {
        path: PathBuf,
        id: String,
        detail: String,
    },
}

/// A value of PocketBase's `_params` table: JSON (stored as a BLOB or text), or the base64
/// ciphertext PocketBase writes when started with `--encryptionEnv`.
#[derive(Debug, Clone, PartialEq)]
pub enum PocketBaseParam {
    Json(Value),
    Encrypted(String),
    Null,
}

/// What [`detect`] found in a data directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DataDirKind {
    /// No `data.db` yet.
    Empty,
    /// A database Plinth wrote (or any other SQLite file: opening it decides).
    Plinth,
    /// PocketBase's layout: `_collections` with a `fields` column and no Plinth `definition`.
    PocketBase,
}

/// Tells whether `dir/data.db` was written by PocketBase 0.23+. Opens the file read-only and
/// changes nothing.
pub fn detect(dir: &Path) -> Result<DataDirKind, PocketBaseError> {
    let path = dir.join("data.db");
    if !path.exists() {
        return Ok(DataDirKind::Empty);
    }
    let conn = open_read_only(&path)?;
    let columns = table_columns(&conn, "_collections").map_err(|source| sqlite(&path, source))?;
    let pocketbase = columns.iter().any(|c| c == "fields")
        && columns.iter().any(|c| c == "options")
        && !columns.iter().any(|c| c == "definition");
    Ok(if pocketbase {
        DataDirKind::PocketBase
    } else {
        DataDirKind::Plinth
    })
}

fn sqlite(path: &Path, source: rusqlite::Error) -> PocketBaseError {
    PocketBaseError::Sqlite {
        path: path.to_owned(),
        source,
    }
}

fn open_read_only(path: &Path) -> Result<Connection, PocketBaseError> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|source| sqlite(path, source))?;
    conn.busy_timeout(std::time::Duration::from_secs(10))
        .map_err(|source| sqlite(path, source))?;
    Ok(conn)
}

fn table_columns(conn: &Connection, table: &str) -> rusqlite::Result<Vec<String>> {
    let mut stmt = conn.prepare("SELECT name FROM pragma_table_info(?)")?;
    let rows = stmt.query_map([table], |r| r.get::<_, String>(0))?;
    rows.collect()
}

/// An open PocketBase `data.db`, read-only; or (through [`PocketBaseData::open_plinth`]) a
/// `data.db` Plinth wrote, whose record tables have the same layout.
pub struct PocketBaseData {
    conn: Connection,
    path: PathBuf,
    /// Plinth's layout: collections as `definition` JSON, the store's own schema steps in
    /// `_migrations`.
    plinth: bool,
}

impl PocketBaseData {
    /// Opens `dir/data.db` read-only, checks it is PocketBase's and passes SQLite's integrity
    /// check.
    pub fn open(dir: &Path) -> Result<Self, PocketBaseError> {
        let path = dir.join("data.db");
        if !path.exists() {
            return Err(PocketBaseError::Missing(dir.to_owned()));
        }
        if detect(dir)? != DataDirKind::PocketBase {
            return Err(PocketBaseError::NotPocketBase { path });
        }
        let conn = open_read_only(&path)?;
        let check: String = conn
            .query_row("PRAGMA quick_check", [], |r| r.get(0))
            .map_err(|source| sqlite(&path, source))?;
        if check != "ok" {
            return Err(PocketBaseError::Corrupt {
                path,
                detail: check,
            });
        }
        Ok(PocketBaseData {
            conn,
            path,
            plinth: false,
        })
    }

    /// Opens a `dir/data.db` Plinth wrote, read-only, after SQLite's integrity check: the
    /// source of a move to another engine (`plinth migrate-to-postgres`). The server should
    /// be stopped, so the copy is of one moment.
    pub fn open_plinth(dir: &Path) -> Result<Self, PocketBaseError> {
        let path = dir.join("data.db");
        if !path.exists() {
            return Err(PocketBaseError::Missing(dir.to_owned()));
        }
        if detect(dir)? != DataDirKind::Plinth {
            return Err(PocketBaseError::NotPlinth { path });
        }
        let conn = open_read_only(&path)?;
        let check: String = conn
            .query_row("PRAGMA quick_check", [], |r| r.get(0))
            .map_err(|source| sqlite(&path, source))?;
        if check != "ok" {
            return Err(PocketBaseError::Corrupt {
                path,
                detail: check,
            });
        }
        Ok(PocketBaseData {
            conn,
            path,
            plinth: true,
        })
    }

    /// Plinth's collections: the stored definitions, in creation order.
    fn plinth_collections(&self) -> Result<Vec<Collection>, PocketBaseError> {
        let mut stmt = self
            .conn
            .prepare("SELECT id, definition FROM _collections ORDER BY rowid")
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))
            .map_err(|e| self.err(e))?;
        let mut collections = Vec::new();
        for row in rows {
            let (id, definition) = row.map_err(|e| self.err(e))?;
            let collection: Collection =
                serde_json::from_str(&definition).map_err(|e| PocketBaseError::Collection {
                    path: self.path.clone(),
                    id,
                    detail: format!("unsupported definition: {e}"),
                })?;
            collections.push(collection);
        }
        Ok(collections)
    }

    fn err(&self, source: rusqlite::Error) -> PocketBaseError {
        sqlite(&self.path, source)
    }

    /// Every collection, system ones included, with ids, fields, rules, indexes and options
    /// (token secrets and OAuth2 client secrets included), in PocketBase's creation order.
    pub fn collections(&self) -> Result<Vec<Collection>, PocketBaseError> {
        if self.plinth {
            return self.plinth_collections();
        }
        let mut stmt = self
            .conn
            .prepare(
                "SELECT id, system, type, name, CAST(fields AS TEXT), CAST(indexes AS TEXT),
                        listRule, viewRule, createRule, updateRule, deleteRule,
                        CAST(options AS TEXT), created, updated
                 FROM _collections ORDER BY rowid",
            )
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map([], |r| {
                let mut object = Map::new();
                object.insert("id".into(), Value::String(r.get(0)?));
                object.insert("system".into(), Value::Bool(r.get::<_, bool>(1)?));
                object.insert("type".into(), Value::String(r.get(2)?));
                object.insert("name".into(), Value::String(r.get(3)?));
                let raw: [Option<String>; 3] = [r.get(4)?, r.get(5)?, r.get(11)?];
                for (i, key) in [
                    "listRule",
                    "viewRule",
                    "createRule",
                    "updateRule",
                    "deleteRule",
                ]
                .into_iter()
                .enumerate()
                {
                    let rule: Option<String> = r.get(6 + i)?;
                    object.insert(key.into(), rule.map_or(Value::Null, Value::String));
                }
                object.insert("created".into(), Value::String(r.get(12)?));
                object.insert("updated".into(), Value::String(r.get(13)?));
                Ok((object, raw))
            })
            .map_err(|e| self.err(e))?;
        let mut collections = Vec::new();
        for row in rows {
            let (mut object, [fields, indexes, options]) = row.map_err(|e| self.err(e))?;
            let id = object
                .get("id")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned();
            let bad = |detail: String| PocketBaseError::Collection {
                path: self.path.clone(),
                id: id.clone(),
                detail,
            };
            let parse = |text: Option<String>, fallback: Value| -> Result<Value, PocketBaseError> {
                match text {
                    Some(text) if !text.trim().is_empty() => {
                        serde_json::from_str(&text).map_err(|e| bad(format!("invalid JSON: {e}")))
                    }
                    _ => Ok(fallback),
                }
            };
            object.insert("fields".into(), parse(fields, Value::Array(Vec::new()))?);
            object.insert("indexes".into(), parse(indexes, Value::Array(Vec::new()))?);
            if let Value::Object(options) = parse(options, Value::Object(Map::new()))? {
                for (key, value) in options {
                    object.entry(key).or_insert(value);
                }
            }
            let collection: Collection = serde_json::from_value(Value::Object(object))
                .map_err(|e| bad(format!("unsupported definition: {e}")))?;
            collections.push(collection);
        }
        Ok(collections)
    }

    /// How many rows a collection's table holds (0 for views, which have no rows of their own).
    pub fn count(&self, collection: &Collection) -> Result<u64, PocketBaseError> {
        if collection.is_view() {
            return Ok(0);
        }
        let sql = format!("SELECT COUNT(*) FROM {}", quote_ident(&collection.name));
        let count: i64 = self
            .conn
            .query_row(&sql, [], |r| r.get(0))
            .map_err(|e| self.err(e))?;
        Ok(u64::try_from(count).unwrap_or(0))
    }

    /// Up to `limit` records of a table collection after the row `after_rowid` (0 to start),
    /// in storage order, decoded as canonical JSON; and the rowid to continue after. A field
    /// without a column (it cannot happen in a consistent file) gets its zero value.
    pub fn records(
        &self,
        collection: &Collection,
        after_rowid: i64,
        limit: usize,
    ) -> Result<(Vec<RecordData>, i64), PocketBaseError> {
        if collection.is_view() {
            return Ok((Vec::new(), after_rowid));
        }
        let columns = table_columns(&self.conn, &collection.name).map_err(|e| self.err(e))?;
        let present: Vec<bool> = collection
            .fields
            .iter()
            .map(|f| columns.iter().any(|c| c.eq_ignore_ascii_case(&f.name)))
            .collect();
        let table = quote_ident(&collection.name);
        let mut select = vec!["rowid".to_owned()];
        for (field, present) in collection.fields.iter().zip(&present) {
            select.push(if *present {
                format!("{table}.{}", quote_ident(&field.name))
            } else {
                "NULL".to_owned()
            });
        }
        let sql = format!(
            "SELECT {} FROM {table} WHERE rowid > ? ORDER BY rowid LIMIT ?",
            select.join(", ")
        );
        let mut stmt = self.conn.prepare(&sql).map_err(|e| self.err(e))?;
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let mut rows = stmt
            .query(params![after_rowid, limit])
            .map_err(|e| self.err(e))?;
        let mut out = Vec::new();
        let mut last = after_rowid;
        while let Some(row) = rows.next().map_err(|e| self.err(e))? {
            last = row.get(0).map_err(|e| self.err(e))?;
            let mut data = RecordData::new();
            for (i, (field, present)) in collection.fields.iter().zip(&present).enumerate() {
                let value = if *present {
                    crate::records::sql_to_json(field, row.get_ref(i + 1).map_err(|e| self.err(e))?)
                } else {
                    field.zero_value()
                };
                data.insert(field.name.clone(), value);
            }
            out.push(data);
        }
        Ok((out, last))
    }

    /// Every `_params` row (`settings` among them), decoded: JSON is stored as a BLOB or text;
    /// text that is not JSON is the encrypted form.
    pub fn params(&self) -> Result<Vec<(String, PocketBaseParam)>, PocketBaseError> {
        let mut stmt = self
            .conn
            .prepare("SELECT id, value FROM _params ORDER BY rowid")
            .map_err(|e| self.err(e))?;
        let mut rows = stmt.query([]).map_err(|e| self.err(e))?;
        let mut out = Vec::new();
        while let Some(row) = rows.next().map_err(|e| self.err(e))? {
            let id: String = row.get(0).map_err(|e| self.err(e))?;
            let value = match row.get_ref(1).map_err(|e| self.err(e))? {
                ValueRef::Null => PocketBaseParam::Null,
                ValueRef::Text(bytes) | ValueRef::Blob(bytes) => {
                    match serde_json::from_slice::<Value>(bytes) {
                        Ok(value) => PocketBaseParam::Json(value),
                        Err(_) => PocketBaseParam::Encrypted(
                            String::from_utf8_lossy(bytes).trim().to_owned(),
                        ),
                    }
                }
                ValueRef::Integer(i) => PocketBaseParam::Json(Value::from(i)),
                ValueRef::Real(r) => PocketBaseParam::Json(
                    serde_json::Number::from_f64(r).map_or(Value::Null, Value::Number),
                ),
            };
            out.push((id, value));
        }
        Ok(out)
    }

    /// PocketBase's `_migrations` list (`file`, applied Unix microseconds), kept as provenance:
    /// the JavaScript migrations named there are already reflected in `_collections`.
    pub fn migrations(&self) -> Result<Vec<(String, i64)>, PocketBaseError> {
        let exists: Option<i64> = self
            .conn
            .query_row(
                "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = '_migrations'",
                [],
                |r| r.get(0),
            )
            .optional()
            .map_err(|e| self.err(e))?;
        if exists.is_none() {
            return Ok(Vec::new());
        }
        let mut stmt = self
            .conn
            .prepare("SELECT file, applied FROM _migrations ORDER BY applied, file")
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))
            .map_err(|e| self.err(e))?;
        let applied: Vec<(String, i64)> =
            rows.collect::<Result<_, _>>().map_err(|e| self.err(e))?;
        // Plinth's own schema steps belong to the engine that wrote them, not to the app.
        Ok(applied
            .into_iter()
            .filter(|(file, _)| !(self.plinth && crate::system::is_store_step(file)))
            .collect())
    }
}

/// Copies PocketBase's request logs (`src/auxiliary.db`, table `_logs`) into `dest/auxiliary.db`
/// as one consistent snapshot (`VACUUM INTO`, read-only on the source). Plinth's log store uses
/// the same table, columns and indexes, so the copy opens as is. Returns how many entries were
/// copied; a source without `auxiliary.db`, or one without a `_logs` table, copies nothing.
pub fn copy_logs(src: &Path, dest: &Path) -> Result<u64, PocketBaseError> {
    let path = src.join("auxiliary.db");
    if !path.exists() {
        return Ok(0);
    }
    let conn = open_read_only(&path)?;
    let columns = table_columns(&conn, "_logs").map_err(|source| sqlite(&path, source))?;
    if !["id", "level", "message", "data", "created"]
        .iter()
        .all(|c| columns.iter().any(|have| have == c))
    {
        return Ok(0);
    }
    let target = dest.join("auxiliary.db");
    let target_text = target.to_str().ok_or_else(|| PocketBaseError::Sqlite {
        path: target.clone(),
        source: rusqlite::Error::InvalidPath(target.clone()),
    })?;
    conn.execute("VACUUM INTO ?1", params![target_text])
        .map_err(|source| sqlite(&path, source))?;
    let copied: i64 = conn
        .query_row("SELECT count(*) FROM _logs", [], |row| row.get(0))
        .map_err(|source| sqlite(&path, source))?;
    Ok(u64::try_from(copied).unwrap_or(0))
}

/// Folds `dir/data.db`'s WAL into the main file and leaves it in rollback-journal mode, so the
/// file alone is the whole database and can be moved. Used on a PocketBase file after it was
/// backed up (PocketBase deletes its WAL on a clean stop; one left behind means it stopped
/// abruptly), and on the converted database before it replaces the original, so no commit is
/// lost and no stale WAL is left next to a file it does not belong to.
pub fn checkpoint(dir: &Path) -> Result<(), PocketBaseError> {
    let path = dir.join("data.db");
    let conn = Connection::open(&path).map_err(|source| sqlite(&path, source))?;
    conn.busy_timeout(std::time::Duration::from_secs(10))
        .map_err(|source| sqlite(&path, source))?;
    conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
        .map_err(|source| sqlite(&path, source))?;
    conn.pragma_update(None, "journal_mode", "DELETE")
        .map_err(|source| sqlite(&path, source))?;
    Ok(())
}
