//! Plinth's shared vocabulary: collections and fields, records, the caller's identity, the
//! small SQL types predicates are built from, and the [`Store`] port the engines implement.
//!
//! Nothing here does I/O or knows about HTTP or a database driver; the compiler enforces that
//! by this crate's dependency list.

pub mod auth;
pub mod collection;
pub mod collection_validate;
pub mod error;
pub mod field;
pub mod ids;
pub mod index;
pub mod json_out;
pub mod like;
pub mod logs;
pub mod record;
pub mod sql;
pub mod storage;
pub mod store;
pub mod time;
pub mod values;
pub mod view_query;

pub use auth::AuthContext;
pub use collection::{Collection, CollectionType, Schema};
pub use error::{FieldError, ValidationErrors};
pub use field::{Field, FieldKind};
pub use logs::{LogEntry, LogPage, LogQuery, LogStat, LogStore};
pub use record::{Record, RecordData};
pub use sql::{Dialect, SqlFragment, SqlValue};
pub use store::{
    Change, ChangeAction, ChangeRetention, GuardFn, KnownRow, ReadMark, RecordPage, RecordQuery,
    Relay, SortTerm, Store, StoreError, UpdateFn, WriteError, WriteOp, WriteResult,
    resolve_update_guard,
};
