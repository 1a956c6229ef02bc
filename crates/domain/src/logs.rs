//! The request and app log port: PocketBase keeps its logs (`_logs`) in a database of their
//! own (`auxiliary.db`), written in batches off the request path. The server speaks to it only
//! through [`LogStore`]; engines implement it beside their [`crate::Store`].
//!
//! Filters and sorts arrive as predicates compiled by the `rules` crate against
//! [`logs_collection`] (a synthetic collection named like the table), so no client text
//! becomes SQL text here either.

use async_trait::async_trait;
use serde::Serialize;
use serde_json::Value;

use crate::collection::{Collection, CollectionType};
use crate::field::{DateOptions, Field, FieldKind, JsonOptions, NumberOptions, TextOptions};
use crate::sql::{Dialect, SqlFragment};
use crate::store::{SortTerm, StoreError};

/// The table (and synthetic collection) name of the logs, as in PocketBase.
pub const LOGS_TABLE: &str = "_logs";

/// One log row, serialized in PocketBase's key order.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LogEntry {
    pub id: String,
    /// `YYYY-MM-DD HH:MM:SS.mmmZ`, UTC.
    pub created: String,
    pub data: Value,
    pub message: String,
    /// slog's levels: -4 debug, 0 info, 4 warn, 8 error.
    pub level: i64,
}

/// A page of logs.
#[derive(Debug, Clone, Default)]
pub struct LogQuery {
    /// Predicates (on the table `"_logs"`) AND-ed together.
    pub filters: Vec<SqlFragment>,
    /// ORDER BY terms; the engine adds its insertion order as the last tie-break.
    pub sort: Vec<SortTerm>,
    /// 1-based page.
    pub page: u64,
    pub per_page: u64,
    /// Whether to count every matching row as well.
    pub with_total: bool,
}

#[derive(Debug, Clone)]
pub struct LogPage {
    pub items: Vec<LogEntry>,
    /// `Some` when the query asked for a total.
    pub total: Option<u64>,
}

/// One hourly bucket of [`LogStore::stats`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LogStat {
    /// The hour, `YYYY-MM-DD HH:00:00.000Z`.
    pub date: String,
    pub total: u64,
}

/// Where logs are kept.
#[async_trait]
pub trait LogStore: Send + Sync + 'static {
    /// The dialect filters must be written in.
    fn dialect(&self) -> Dialect;

    /// Inserts `entries` in one transaction.
    async fn append(&self, entries: Vec<LogEntry>) -> Result<(), StoreError>;

    async fn list(&self, query: LogQuery) -> Result<LogPage, StoreError>;

    /// `Err(NotFound)` for an unknown id.
    async fn get(&self, id: &str) -> Result<LogEntry, StoreError>;

    /// Matching rows counted per hour of `created`, oldest hour first.
    async fn stats(&self, filters: Vec<SqlFragment>) -> Result<Vec<LogStat>, StoreError>;

    /// Removes every log; returns how many were removed.
    async fn delete_all(&self) -> Result<u64, StoreError>;

    /// Removes the logs created before `cutoff` (same format as `created`); returns how many.
    async fn delete_before(&self, cutoff: &str) -> Result<u64, StoreError>;
}

/// The columns of `_logs` as a collection, for compiling client filters and sorts on `id,
/// created, level, message, data, data.<path>` with the `rules` crate.
pub fn logs_collection() -> Collection {
    let mut collection = Collection::scaffold(CollectionType::Base, LOGS_TABLE);
    collection.id = LOGS_TABLE.to_owned();
    collection.system = true;
    collection.fields = vec![
        Field::new("id", FieldKind::Text(TextOptions::default())),
        Field::new("created", FieldKind::Date(DateOptions::default())),
        Field::new("level", FieldKind::Number(NumberOptions::default())),
        Field::new("message", FieldKind::Text(TextOptions::default())),
        Field::new("data", FieldKind::Json(JsonOptions::default())),
    ];
    collection
}
