//! The SQL console behind `POST /api/sql` ([`domain::Store::run_sql`]): statements a superuser
//! typed, run as they are, with bounds and one safety rule.
//!
//! The rule: nothing the console runs may leave the store believing a stale schema or hold the
//! connection in a changed state. SQLite's authorizer sees every action of a statement while it
//! is prepared (trigger bodies included), so each statement is judged before it runs: DDL on a
//! collection's table, view, indexes or triggers, any write to the store's bookkeeping tables
//! (`_collections`, `_params`, `_changes`, `_migrations`, `_plinth_versions`; only the version
//! triggers of the collections' own tables may write the last), temporary objects (they would live on
//! in a pooled connection and could shadow a collection's table), `ATTACH`/`DETACH`,
//! transaction statements and pragmas that set something are refused with a message saying
//! why. Everything else — reads, writes to records, DDL on tables of one's own, `ANALYZE`,
//! `PRAGMA optimize`, `VACUUM` — runs. As a second line, when the statements changed the
//! database schema at all, the definitions of the collections' objects are compared with what
//! they were before (an `ALTER TABLE … RENAME` of one's own table rewrites the views that read
//! it) and every view collection must still compile; otherwise everything rolls back.
//!
//! Writes to records made here are not record writes: no validation, hooks or change-log
//! entries, so realtime subscribers hear nothing of them — as raw SQL in PocketBase. Read-only
//! statements run on a query-lane reader (the writer stays free for writes); anything else runs
//! on the writer thread in one IMMEDIATE transaction, all or nothing, except `VACUUM` and
//! `PRAGMA wal_checkpoint`, which cannot run inside a transaction. All are bounded by the query
//! timeout.

use std::collections::HashSet;
use std::sync::{Arc, Mutex, PoisonError};

use domain::StoreError;
use domain::collection::Schema;
use domain::store::{SqlColumn, SqlLimits, SqlOutcome, SqlOutput};
use rusqlite::fallible_iterator::FallibleIterator as _;
use rusqlite::hooks::{AuthAction, AuthContext, Authorization};
use rusqlite::types::ValueRef;
use rusqlite::{Batch, Connection, Statement};

use crate::system::SYSTEM_TABLES;

/// Pragmas that may be given an argument from the console: they inspect or maintain the
/// database and change no setting of the connection.
const PRAGMAS_WITH_ARGUMENT: [&str; 13] = [
    "table_info",
    "table_xinfo",
    "table_list",
    "index_list",
    "index_info",
    "index_xinfo",
    "foreign_key_list",
    "foreign_key_check",
    "integrity_check",
    "quick_check",
    "wal_checkpoint",
    "optimize",
    "incremental_vacuum",
];

/// The names the console must not change, lowercased (SQLite compares names case-insensitively).
#[derive(Debug, Clone, Default)]
pub(crate) struct Protected {
    /// Tables and views of collections.
    collections: HashSet<String>,
    /// The store's own tables.
    bookkeeping: HashSet<String>,
    /// View collections, which must still compile after a schema change.
    views: Vec<String>,
    /// The version triggers of the collection tables (`counts`), the only writers of
    /// `_plinth_versions` a console statement may set off.
    version_triggers: HashSet<String>,
}

impl Protected {
    pub(crate) fn new(schema: &Schema) -> Protected {
        Protected {
            collections: schema
                .all()
                .iter()
                .map(|c| c.name.to_ascii_lowercase())
                .collect(),
            bookkeeping: SYSTEM_TABLES
                .iter()
                .map(|t| t.to_ascii_lowercase())
                .collect(),
            views: schema
                .all()
                .iter()
                .filter(|c| c.is_view())
                .map(|c| c.name.clone())
                .collect(),
            version_triggers: schema
                .all()
                .iter()
                .filter(|c| !c.is_view())
                .flat_map(|c| crate::counts::trigger_names(&c.id))
                .collect(),
        }
    }

    fn is_collection(&self, name: &str) -> bool {
        self.collections.contains(&name.to_ascii_lowercase())
    }

    fn is_bookkeeping(&self, name: &str) -> bool {
        self.bookkeeping.contains(&name.to_ascii_lowercase())
    }

    fn is_protected(&self, name: &str) -> bool {
        self.is_collection(name) || self.is_bookkeeping(name)
    }

    /// Why `action` may not run from the console, if it may not.
    fn judge(&self, action: &AuthAction<'_>, accessor: Option<&str>) -> Option<String> {
        let structure = |name: &str| {
            if self.is_bookkeeping(name) {
                Some(format!(
                    "\"{name}\" is one of Plinth's bookkeeping tables and cannot be changed from the SQL console"
                ))
            } else if self.is_collection(name) {
                Some(format!(
                    "\"{name}\" belongs to a collection: change its fields, indexes or query through the collections API, not the SQL console"
                ))
            } else {
                None
            }
        };
        match *action {
            // A collection's version trigger, set off by a write to its records.
            AuthAction::Insert { table_name } | AuthAction::Update { table_name, .. }
                if table_name.eq_ignore_ascii_case(crate::counts::VERSIONS)
                    && accessor.is_some_and(|name| self.version_triggers.contains(name)) =>
            {
                None
            }
            AuthAction::Insert { table_name }
            | AuthAction::Delete { table_name }
            | AuthAction::Update { table_name, .. } => {
                if self.is_bookkeeping(table_name) {
                    structure(table_name)
                } else {
                    None
                }
            }
            AuthAction::CreateIndex { table_name, .. }
            | AuthAction::DropIndex { table_name, .. }
            | AuthAction::CreateTrigger { table_name, .. }
            | AuthAction::DropTrigger { table_name, .. }
            | AuthAction::DropTable { table_name }
            | AuthAction::AlterTable { table_name, .. }
            | AuthAction::CreateVtable { table_name, .. }
            | AuthAction::DropVtable { table_name, .. } => structure(table_name),
            AuthAction::CreateView { view_name } | AuthAction::DropView { view_name } => {
                structure(view_name)
            }
            AuthAction::CreateTempIndex { .. }
            | AuthAction::CreateTempTable { .. }
            | AuthAction::CreateTempTrigger { .. }
            | AuthAction::CreateTempView { .. } => Some(
                "temporary tables, views, indexes and triggers are not supported in the SQL console"
                    .into(),
            ),
            AuthAction::Transaction { .. } | AuthAction::Savepoint { .. } => Some(
                "transaction statements are not supported: the SQL console runs all its statements in one transaction"
                    .into(),
            ),
            AuthAction::Attach { .. } | AuthAction::Detach { .. } => {
                Some("ATTACH and DETACH are not supported in the SQL console".into())
            }
            AuthAction::Pragma {
                pragma_name,
                pragma_value: Some(_),
            } if !PRAGMAS_WITH_ARGUMENT
                .iter()
                .any(|p| p.eq_ignore_ascii_case(pragma_name)) =>
            {
                Some(format!(
                    "PRAGMA {pragma_name} with a value changes a setting of the connection and is not supported in the SQL console"
                ))
            }
            _ => None,
        }
    }
}

/// Rows of values as the console returns them.
type Rows = Vec<Vec<Option<String>>>;

/// The first refusal of the running statements, shared with the authorizer callback.
type Refusal = Arc<Mutex<Option<String>>>;

/// Keeps the authorizer installed while alive; removes it however the job ends.
struct Authorizer<'c> {
    conn: &'c mut Connection,
}

impl<'c> Authorizer<'c> {
    fn install(conn: &'c mut Connection, protected: Protected, refusal: Refusal) -> Self {
        let hook = move |ctx: AuthContext<'_>| match protected.judge(&ctx.action, ctx.accessor) {
            None => Authorization::Allow,
            Some(reason) => {
                let mut slot = refusal.lock().unwrap_or_else(PoisonError::into_inner);
                slot.get_or_insert(reason);
                Authorization::Deny
            }
        };
        if let Err(error) = conn.authorizer(Some(hook)) {
            tracing::error!(%error, "cannot install the SQL console's authorizer");
        }
        Authorizer { conn }
    }
}

impl Drop for Authorizer<'_> {
    fn drop(&mut self) {
        let none: Option<fn(AuthContext<'_>) -> Authorization> = None;
        if let Err(error) = self.conn.authorizer(none) {
            tracing::error!(%error, "cannot remove the SQL console's authorizer");
        }
    }
}

/// Why a console run stopped.
pub(crate) enum Stop {
    /// Shown to the superuser (SQL errors, refusals, bounds).
    Failed(String),
    /// The query timeout interrupted a statement.
    TimedOut,
}

impl From<Stop> for Result<SqlOutcome, StoreError> {
    fn from(stop: Stop) -> Self {
        match stop {
            Stop::Failed(message) => Ok(SqlOutcome::Failed(message)),
            Stop::TimedOut => Err(StoreError::TimedOut),
        }
    }
}

/// The answer of a reader's attempt.
pub(crate) enum ReadAttempt {
    Done(Result<SqlOutcome, StoreError>),
    /// Some statement may write: run the whole text on the writer.
    NeedsWriter,
}

/// On a reader: runs `sql` when every statement of it is read-only.
pub(crate) fn try_read(
    conn: &mut Connection,
    sql: &str,
    limits: SqlLimits,
    protected: Protected,
) -> ReadAttempt {
    let refusal = Refusal::default();
    let guard = Authorizer::install(conn, protected, Arc::clone(&refusal));
    let conn: &Connection = guard.conn;
    let mut batch = Batch::new(conn, sql);
    // Every statement is prepared before any runs: they all must be read-only. One that does
    // not prepare here (say, because an earlier one would create its table) sends the whole
    // text to the writer, unless it is the first (then nothing before it could explain it).
    let mut statements = Vec::new();
    loop {
        match batch.next() {
            Ok(Some(statement)) if statement.readonly() => statements.push(statement),
            Ok(Some(_)) => return ReadAttempt::NeedsWriter,
            Ok(None) => break,
            Err(error) => {
                let refused = refusal
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .is_some();
                if statements.is_empty() || refused {
                    return ReadAttempt::Done(stop(error.into(), &refusal).into());
                }
                return ReadAttempt::NeedsWriter;
            }
        }
    }
    let mut output = SqlOutput::default();
    for statement in &mut statements {
        match collect(statement, limits) {
            Ok((columns, rows)) => {
                output.columns = columns;
                output.rows = rows;
            }
            Err(failure) => return ReadAttempt::Done(stop(failure, &refusal).into()),
        }
    }
    ReadAttempt::Done(Ok(SqlOutcome::Done(output)))
}

/// On the writer: runs every statement of `sql` in one transaction, all or nothing.
pub(crate) fn run_on_writer(
    conn: &mut Connection,
    sql: &str,
    limits: SqlLimits,
    protected: Protected,
) -> Result<SqlOutcome, StoreError> {
    if let Some(maintenance) = outside_transaction(sql) {
        // These cannot run inside a transaction; they change no schema.
        let ran = conn
            .prepare(&maintenance)
            .map_err(Failure::from)
            .and_then(|mut statement| collect(&mut statement, limits));
        return match ran {
            Ok((columns, rows)) => Ok(SqlOutcome::Done(SqlOutput {
                columns,
                rows,
                affected_rows: 0,
            })),
            Err(failure) => stop(failure, &Refusal::default()).into(),
        };
    }
    let schema_before = schema_version(conn)?;
    let fingerprint_before = fingerprint(conn, &protected)?;
    let views = protected.views.clone();
    // The transaction is opened and ended outside the authorizer, which refuses transaction
    // statements.
    conn.execute_batch("BEGIN IMMEDIATE")
        .map_err(crate::internal)?;
    let changes_before = conn.total_changes();
    let ran = run_statements(conn, sql, limits, protected.clone());
    let outcome = match ran {
        Ok(mut output) => {
            if conn.total_changes() != changes_before {
                output.affected_rows = conn.changes();
            }
            check_schema(conn, schema_before, &fingerprint_before, &protected, &views).map(
                |refusal| match refusal {
                    None => SqlOutcome::Done(output),
                    Some(message) => SqlOutcome::Failed(message),
                },
            )
        }
        Err(stop) => stop.into(),
    };
    if matches!(outcome, Ok(SqlOutcome::Done(_))) {
        if let Err(error) = conn.execute_batch("COMMIT") {
            rollback(conn);
            return Err(crate::internal(error));
        }
        if schema_version(conn)? != schema_before {
            conn.flush_prepared_statement_cache();
        }
    } else {
        rollback(conn);
    }
    outcome
}

/// Ends the console's transaction without keeping anything (an interrupted statement may
/// have ended it already).
fn rollback(conn: &Connection) {
    crate::engine::disarm_deadline();
    if !conn.is_autocommit()
        && let Err(error) = conn.execute_batch("ROLLBACK")
    {
        tracing::error!(%error, "cannot roll the SQL console's transaction back");
    }
}

/// Runs every statement under the authorizer; the last one's columns and rows answer.
fn run_statements(
    conn: &mut Connection,
    sql: &str,
    limits: SqlLimits,
    protected: Protected,
) -> Result<SqlOutput, Stop> {
    let refusal = Refusal::default();
    let guard = Authorizer::install(conn, protected, Arc::clone(&refusal));
    let conn: &Connection = guard.conn;
    let mut output = SqlOutput::default();
    let mut batch = Batch::new(conn, sql);
    loop {
        let mut statement = match batch.next() {
            Ok(Some(statement)) => statement,
            Ok(None) => return Ok(output),
            Err(error) => return Err(stop(error.into(), &refusal)),
        };
        let (columns, rows) = collect(&mut statement, limits).map_err(|f| stop(f, &refusal))?;
        output.columns = columns;
        output.rows = rows;
    }
}

/// When the statements changed the database schema: why the change must not stay, if it must
/// not (a collection's object changed, or a view collection no longer compiles).
fn check_schema(
    conn: &Connection,
    schema_before: i64,
    fingerprint_before: &[[String; 4]],
    protected: &Protected,
    views: &[String],
) -> Result<Option<String>, StoreError> {
    if schema_version(conn)? == schema_before {
        return Ok(None);
    }
    if fingerprint(conn, protected)? != fingerprint_before {
        return Ok(Some(
            "the statements would change a collection's table or view (a renamed table a view collection reads, say); nothing was changed".into(),
        ));
    }
    for view in views {
        let probe = format!("SELECT * FROM {} LIMIT 0", domain::sql::quote_ident(view));
        if let Err(error) = conn.prepare(&probe) {
            return Ok(Some(format!(
                "the statements would break the view collection \"{view}\" ({}); nothing was changed",
                describe(&error)
            )));
        }
    }
    Ok(None)
}

/// Steps `statement` to the end, keeping its columns and at most `limits.max_rows` rows (a
/// statement with RETURNING has made all its changes by its first row).
fn collect(
    statement: &mut Statement<'_>,
    limits: SqlLimits,
) -> Result<(Vec<SqlColumn>, Rows), Failure> {
    let columns: Vec<SqlColumn> = statement
        .columns()
        .map(|column| SqlColumn {
            name: column.name().to_owned(),
            declared_type: column.decl_type().unwrap_or("").to_owned(),
        })
        .collect();
    let width = columns.len();
    let mut rows = Vec::new();
    let mut bytes = 0usize;
    let mut cursor = statement.raw_query();
    while let Some(row) = cursor.next().map_err(Failure::Sql)? {
        if rows.len() >= limits.max_rows {
            break;
        }
        let mut values = Vec::with_capacity(width);
        for index in 0..width {
            let value = row.get_ref(index).map_err(Failure::Sql)?;
            // Counted before the value is copied, so a huge one is never copied at all.
            let size = match value {
                ValueRef::Text(raw) | ValueRef::Blob(raw) => raw.len(),
                _ => 24,
            };
            bytes = bytes.saturating_add(size);
            if bytes > limits.max_bytes {
                return Err(Failure::TooLarge(limits.max_bytes));
            }
            values.push(as_text(value));
        }
        rows.push(values);
    }
    Ok((columns, rows))
}

enum Failure {
    Sql(rusqlite::Error),
    TooLarge(usize),
}

impl From<rusqlite::Error> for Failure {
    fn from(error: rusqlite::Error) -> Self {
        Failure::Sql(error)
    }
}

/// Maps a failure to what the superuser sees: the authorizer's reason when it refused, the
/// driver's error otherwise.
fn stop(failure: Failure, refusal: &Refusal) -> Stop {
    if let Some(reason) = refusal
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .take()
    {
        return Stop::Failed(reason);
    }
    match failure {
        Failure::Sql(error) if crate::is_interrupt(&error) => Stop::TimedOut,
        Failure::Sql(error) => Stop::Failed(describe(&error)),
        Failure::TooLarge(max) => Stop::Failed(format!(
            "the result holds more than {} MiB of values; select fewer rows or columns",
            max >> 20
        )),
    }
}

/// An SQLite error as PocketBase's driver prints it: `<error class>: <message> (<code>)`.
fn describe(error: &rusqlite::Error) -> String {
    match error {
        rusqlite::Error::SqliteFailure(failure, message) => {
            let class = error_class(failure.extended_code);
            let message = message.clone().unwrap_or_else(|| class.to_owned());
            format!("{class}: {message} ({})", failure.extended_code)
        }
        rusqlite::Error::SqlInputError { error, msg, .. } => {
            format!(
                "{}: {msg} ({})",
                error_class(error.extended_code),
                error.extended_code
            )
        }
        other => other.to_string(),
    }
}

/// SQLite's description of a result code (`sqlite3_errstr`).
fn error_class(code: std::ffi::c_int) -> &'static str {
    match code & 0xff {
        1 => "SQL logic error",
        3 => "access permission denied",
        4 => "query aborted",
        5 => "database is locked",
        6 => "database table is locked",
        7 => "out of memory",
        8 => "attempt to write a readonly database",
        9 => "interrupted",
        10 => "disk I/O error",
        11 => "database disk image is malformed",
        12 => "unknown operation",
        13 => "database or disk is full",
        14 => "unable to open database file",
        15 => "locking protocol",
        17 => "database schema has changed",
        18 => "string or blob too big",
        19 => "constraint failed",
        20 => "datatype mismatch",
        21 => "bad parameter or other API misuse",
        23 => "authorization denied",
        25 => "column index out of range",
        26 => "file is not a database",
        _ => "unknown error",
    }
}

/// A value as the console shows it: text, numbers in Go's shortest form, blobs as (lossy)
/// text, as PocketBase shows them.
fn as_text(value: ValueRef<'_>) -> Option<String> {
    match value {
        ValueRef::Null => None,
        ValueRef::Integer(i) => Some(i.to_string()),
        ValueRef::Real(f) => Some(go_float(f)),
        ValueRef::Text(bytes) | ValueRef::Blob(bytes) => {
            Some(String::from_utf8_lossy(bytes).into_owned())
        }
    }
}

/// `f` as Go's `strconv.FormatFloat(f, 'g', -1, 64)` writes it (PocketBase's rendering): the
/// shortest digits that read back as `f`, in exponent form when the decimal exponent is below
/// -4 or at least 6, with a signed exponent of at least two digits (`1.5e-07`, `1e+21`).
pub(crate) fn go_float(f: f64) -> String {
    if f.is_nan() {
        return "NaN".into();
    }
    if f.is_infinite() {
        return if f > 0.0 { "+Inf" } else { "-Inf" }.into();
    }
    if f == 0.0 {
        return if f.is_sign_negative() { "-0" } else { "0" }.into();
    }
    let scientific = format!("{f:e}");
    let Some((mantissa, exponent)) = scientific.split_once('e') else {
        return scientific;
    };
    let exponent: i32 = exponent.parse().unwrap_or(0);
    if (-4..6).contains(&exponent) {
        return format!("{f}");
    }
    let sign = if exponent < 0 { '-' } else { '+' };
    format!("{mantissa}e{sign}{:02}", exponent.unsigned_abs())
}

/// The maintenance statement `sql` is, when it is one that must run outside a transaction:
/// `VACUUM` (of the main database) or `PRAGMA wal_checkpoint` with an optional mode, rebuilt
/// from its recognized words (so nothing else rides along).
fn outside_transaction(sql: &str) -> Option<String> {
    let compact: String = sql
        .trim()
        .trim_end_matches(';')
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect::<String>()
        .to_ascii_lowercase();
    if compact == "vacuum" || compact == "vacuummain" {
        return Some("VACUUM".into());
    }
    let rest = compact.strip_prefix("pragma")?;
    let rest = rest.strip_prefix("main.").unwrap_or(rest);
    let mode = rest.strip_prefix("wal_checkpoint")?;
    let mode = match mode {
        "" => "",
        _ => mode
            .strip_prefix('(')
            .and_then(|m| m.strip_suffix(')'))
            .or_else(|| mode.strip_prefix('='))?,
    };
    match mode {
        "" => Some("PRAGMA wal_checkpoint".into()),
        "passive" | "full" | "restart" | "truncate" => Some(format!(
            "PRAGMA wal_checkpoint({})",
            mode.to_ascii_uppercase()
        )),
        _ => None,
    }
}

fn schema_version(conn: &Connection) -> Result<i64, StoreError> {
    conn.query_row("PRAGMA schema_version", [], |row| row.get(0))
        .map_err(crate::internal)
}

/// The stored definitions of every protected table and what hangs on it (indexes, triggers),
/// and of every protected view, sorted.
fn fingerprint(conn: &Connection, protected: &Protected) -> Result<Vec<[String; 4]>, StoreError> {
    let mut statement = conn
        .prepare("SELECT type, name, tbl_name, coalesce(sql, '') FROM sqlite_schema")
        .map_err(crate::internal)?;
    let rows = statement
        .query_map([], |row| {
            Ok([row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?])
        })
        .map_err(crate::internal)?;
    let mut out = Vec::new();
    for row in rows {
        let row: [String; 4] = row.map_err(crate::internal)?;
        if protected.is_protected(&row[1]) || protected.is_protected(&row[2]) {
            out.push(row);
        }
    }
    out.sort();
    Ok(out)
}

impl crate::SqliteStore {
    /// [`domain::Store::run_sql`]: read-only statements on a query-lane reader, anything else
    /// on the writer; both within the query timeout.
    pub(crate) async fn console(
        &self,
        sql: &str,
        limits: SqlLimits,
    ) -> Result<SqlOutcome, StoreError> {
        let deadline = self.query_deadline();
        let cell = Arc::clone(&self.schema);
        let text = sql.to_owned();
        let read = self
            .engine
            .read(crate::engine::Lane::Query, deadline, move |conn| {
                let protected = Protected::new(&cell.load());
                try_read(conn, &text, limits, protected)
            })
            .await;
        match read {
            Ok((ReadAttempt::Done(result), _)) => return result,
            Ok((ReadAttempt::NeedsWriter, _)) => {}
            Err(refused) => return Err(refused_error(refused)),
        }
        let cell = Arc::clone(&self.schema);
        let text = sql.to_owned();
        let written = self
            .engine
            .write_until(deadline, move |conn| {
                // Loaded on the writer, where schema changes happen: no collection can appear
                // between this and the statements.
                let protected = Protected::new(&cell.load());
                run_on_writer(conn, &text, limits, protected)
            })
            .await;
        match written {
            Ok((result, _)) => result,
            Err(refused) => Err(refused_error(refused)),
        }
    }

    /// [`domain::Store::optimize`]: `PRAGMA optimize` (statistics of the tables whose use
    /// suggests it, within SQLite's own analysis limit), then a WAL checkpoint that truncates
    /// the log.
    pub(crate) async fn optimize_now(&self) -> Result<(), StoreError> {
        self.engine
            .write(|conn| {
                conn.execute_batch("PRAGMA optimize")
                    .map_err(crate::internal)?;
                conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
                    .map_err(crate::internal)
            })
            .await
            .map_err(refused_error)?
    }
}

fn refused_error(refused: crate::engine::Refused) -> StoreError {
    match refused {
        crate::engine::Refused::Expired => StoreError::TimedOut,
        crate::engine::Refused::Closed => {
            StoreError::Internal("the database store is closed".into())
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use domain::Store as _;
    use domain::collection::{Collection, CollectionType};
    use domain::field::{Field, FieldKind, TextOptions};

    use super::*;
    use crate::{SqliteOptions, SqliteStore};

    const LIMITS: SqlLimits = SqlLimits {
        max_rows: 1000,
        max_bytes: 1 << 20,
    };

    async fn open(timeout: Option<Duration>) -> (tempfile::TempDir, Arc<SqliteStore>) {
        let dir = tempfile::tempdir().expect("temp dir");
        let options = SqliteOptions {
            query_timeout: timeout,
            ..SqliteOptions::default()
        };
        let store = SqliteStore::open(dir.path(), options).expect("opens");
        let mut posts = Collection::scaffold(CollectionType::Base, "posts");
        posts
            .fields
            .push(Field::new("title", FieldKind::Text(TextOptions::default())));
        store.create_collection(posts).await.expect("posts");
        (dir, store)
    }

    async fn run(store: &SqliteStore, sql: &str) -> SqlOutcome {
        store.run_sql(sql, LIMITS).await.expect("runs")
    }

    async fn done(store: &SqliteStore, sql: &str) -> SqlOutput {
        match run(store, sql).await {
            SqlOutcome::Done(output) => output,
            SqlOutcome::Failed(message) => panic!("{sql}: {message}"),
        }
    }

    async fn failed(store: &SqliteStore, sql: &str) -> String {
        match run(store, sql).await {
            SqlOutcome::Failed(message) => message,
            SqlOutcome::Done(output) => panic!("{sql} ran: {output:?}"),
        }
    }

    fn texts(values: &[&str]) -> Vec<Option<String>> {
        values.iter().map(|v| Some((*v).to_owned())).collect()
    }

    #[test]
    fn maintenance_outside_a_transaction_is_recognized_exactly() {
        assert_eq!(outside_transaction(" VACUUM ; ").as_deref(), Some("VACUUM"));
        assert_eq!(
            outside_transaction("vacuum main").as_deref(),
            Some("VACUUM")
        );
        assert_eq!(
            outside_transaction("PRAGMA main.wal_checkpoint( truncate );").as_deref(),
            Some("PRAGMA wal_checkpoint(TRUNCATE)")
        );
        assert_eq!(
            outside_transaction("pragma wal_checkpoint").as_deref(),
            Some("PRAGMA wal_checkpoint")
        );
        for other in [
            "vacuum into 'x'",
            "vacuum; drop table t",
            "pragma wal_checkpoint(truncate); delete from t",
            "pragma wal_checkpoint(nope)",
            "pragma optimize",
        ] {
            assert_eq!(outside_transaction(other), None, "{other}");
        }
    }

    #[test]
    fn floats_are_written_as_go_writes_them() {
        let cases = [
            (2.5, "2.5"),
            (1.0, "1"),
            (100.0, "100"),
            (123456.0, "123456"),
            (1234567.0, "1.234567e+06"),
            (1e20, "1e+20"),
            (1e21, "1e+21"),
            (0.0001, "0.0001"),
            (0.00001, "1e-05"),
            (1.5e-7, "1.5e-07"),
            (-2.25, "-2.25"),
            (1.0 / 3.0, "0.3333333333333333"),
            (0.1 + 0.2, "0.30000000000000004"),
            (1e301, "1e+301"),
            (-0.0, "-0"),
            (f64::INFINITY, "+Inf"),
            (f64::NEG_INFINITY, "-Inf"),
            (9007199254740993.0, "9.007199254740992e+15"),
            (123456789012345678.0, "1.2345678901234568e+17"),
        ];
        for (value, expected) in cases {
            assert_eq!(go_float(value), expected, "{value}");
        }
    }

    #[tokio::test]
    async fn values_come_back_as_text_with_declared_types() {
        let (_dir, store) = open(None).await;
        let out = done(
            &store,
            "select 1 as a, 2.5 as b, null as c, 'x' as d, x'c3a9' as e, x'00ff' as f",
        )
        .await;
        let names: Vec<&str> = out.columns.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["a", "b", "c", "d", "e", "f"]);
        assert!(out.columns.iter().all(|c| c.declared_type.is_empty()));
        assert_eq!(
            out.rows,
            vec![vec![
                Some("1".into()),
                Some("2.5".into()),
                None,
                Some("x".into()),
                Some("é".into()),
                Some("\u{0}\u{fffd}".into()),
            ]]
        );
        let out = done(&store, "select id, title from posts").await;
        let types: Vec<&str> = out
            .columns
            .iter()
            .map(|c| c.declared_type.as_str())
            .collect();
        assert_eq!(types, ["TEXT", "TEXT"]);
        assert!(out.rows.is_empty());
    }

    #[tokio::test]
    async fn rows_and_bytes_are_bounded() {
        let (_dir, store) = open(None).await;
        let out = done(
            &store,
            "with recursive c(x) as (select 1 union all select x+1 from c where x<1500) select x from c",
        )
        .await;
        assert_eq!(out.rows.len(), 1000);
        assert_eq!(out.rows[999], texts(&["1000"]));
        let small = SqlLimits {
            max_rows: 1000,
            max_bytes: 1 << 20,
        };
        let outcome = store
            .run_sql(
                "select randomblob(600000) union all select randomblob(600000)",
                small,
            )
            .await
            .expect("runs");
        assert!(
            matches!(&outcome, SqlOutcome::Failed(m) if m.contains("more than 1 MiB")),
            "{outcome:?}"
        );
    }

    #[tokio::test]
    async fn statements_run_in_one_transaction_and_the_last_answers() {
        let (dir, store) = open(None).await;
        let out = done(
            &store,
            "create table t1 (id text primary key, n int); insert into t1 values ('a', 1), ('b', 2); select * from t1",
        )
        .await;
        assert_eq!(out.rows, vec![texts(&["a", "1"]), texts(&["b", "2"])]);
        assert_eq!(out.columns[1].declared_type, "INT");
        let out = done(
            &store,
            "update t1 set n = n + 1; update t1 set n = 9 where id = 'a'",
        )
        .await;
        assert_eq!(out.affected_rows, 1, "the last write's count");
        let out = done(&store, "update t1 set n = n + 1").await;
        assert_eq!(out.affected_rows, 2);
        assert_eq!(done(&store, "select 1").await.affected_rows, 0);
        let message = failed(
            &store,
            "insert into t1 values ('c', 3); insert into t1 values ('a', 1)",
        )
        .await;
        assert_eq!(
            message,
            "constraint failed: UNIQUE constraint failed: t1.id (1555)"
        );
        let out = done(&store, "select count(*) from t1").await;
        assert_eq!(
            out.rows,
            vec![texts(&["2"])],
            "nothing of a failed run stays"
        );
        assert_eq!(
            failed(&store, "selec 1").await,
            "SQL logic error: near \"selec\": syntax error (1)"
        );
        assert_eq!(done(&store, "-- nothing").await, SqlOutput::default());
        assert_eq!(done(&store, "vacuum").await, SqlOutput::default());
        // `VACUUM INTO` (a file anywhere the server may write) cannot run inside the call's
        // transaction, so it fails and writes nothing.
        let target = dir.path().join("copy.db");
        let message = failed(&store, &format!("vacuum into '{}'", target.display())).await;
        assert!(
            message.contains("cannot VACUUM from within a transaction"),
            "{message}"
        );
        assert!(!target.exists());
    }

    #[tokio::test]
    async fn record_writes_run_without_change_log_entries() {
        let (_dir, store) = open(None).await;
        let before = store.last_change_seq().await.expect("seq");
        let out = done(
            &store,
            "insert into posts (id, title) values ('abcdefghijklmno', 'raw')",
        )
        .await;
        assert_eq!(out.affected_rows, 1);
        let out = done(&store, "update posts set title = 'changed' returning title").await;
        assert_eq!(out.rows, vec![texts(&["changed"])]);
        assert_eq!(store.last_change_seq().await.expect("seq"), before);
        let changes = store.changes_after(before, 10).await.expect("changes");
        assert!(changes.is_empty());
    }

    #[tokio::test]
    async fn statements_that_would_stale_the_schema_are_refused() {
        let (_dir, store) = open(None).await;
        let schema = store.schema();
        let refused = [
            ("drop table posts", "belongs to a collection"),
            (
                "alter table posts add column x text",
                "belongs to a collection",
            ),
            ("alter table POSTS rename to p2", "belongs to a collection"),
            (
                "create index idx_x on posts (title)",
                "belongs to a collection",
            ),
            (
                "create trigger tr after insert on posts begin select 1; end",
                "belongs to a collection",
            ),
            ("drop index if exists idx_nope", ""),
            ("update _collections set name = 'x'", "bookkeeping"),
            ("delete from _params", "bookkeeping"),
            ("insert into _changes (seq) values (999)", "bookkeeping"),
            ("update _plinth_versions set v = 0", "bookkeeping"),
            (
                "create table t3 (x); create trigger \"_plinth_v_insert_t3\" after insert on t3 begin update _plinth_versions set v = 0; end; insert into t3 values (1)",
                "bookkeeping",
            ),
            ("begin", "transaction statements"),
            ("savepoint a", "transaction statements"),
            ("attach database ':memory:' as x", "ATTACH"),
            ("pragma foreign_keys = off", "PRAGMA foreign_keys"),
            ("pragma query_only = 0", "PRAGMA query_only"),
            ("pragma writable_schema = 1", "PRAGMA writable_schema"),
            ("create temp table users (id text)", "temporary"),
            (
                "create table t2 (x); create trigger tr2 after insert on t2 begin delete from _params; end; insert into t2 values (1)",
                "bookkeeping",
            ),
        ];
        for (sql, expected) in refused {
            let outcome = run(&store, sql).await;
            if expected.is_empty() {
                // A statement that names no protected object runs (here: a no-op).
                assert!(matches!(outcome, SqlOutcome::Done(_)), "{sql}: {outcome:?}");
                continue;
            }
            assert!(
                matches!(&outcome, SqlOutcome::Failed(m) if m.contains(expected)),
                "{sql}: {outcome:?}"
            );
        }
        assert!(Arc::ptr_eq(&schema, &store.schema()), "schema untouched");
        let out = done(&store, "select name from sqlite_schema where name = 't2'").await;
        assert!(out.rows.is_empty(), "the refused run rolled back whole");
        let out = done(&store, "pragma table_info(posts)").await;
        assert_eq!(out.rows.len(), 2, "posts keeps id and title");
        // Reads of the bookkeeping tables and pragmas that only read are fine.
        done(&store, "select count(*) from _collections").await;
        done(&store, "pragma foreign_keys").await;
        done(&store, "pragma integrity_check").await;
        // Maintenance PocketBase's docs suggest for the console runs.
        done(&store, "analyze").await;
        done(&store, "pragma optimize").await;
        done(&store, "pragma optimize(0x10002)").await;
        let out = done(&store, "pragma wal_checkpoint(truncate)").await;
        assert_eq!(out.rows.len(), 1, "{out:?}");
        // The writer is not left with the authorizer: an ordinary schema change still works.
        let mut notes = Collection::scaffold(CollectionType::Base, "notes");
        notes
            .fields
            .push(Field::new("body", FieldKind::Text(TextOptions::default())));
        store
            .create_collection(notes)
            .await
            .expect("notes created after the console ran");
    }

    #[tokio::test]
    async fn own_tables_may_change_unless_a_view_collection_reads_them() {
        let (_dir, store) = open(None).await;
        done(&store, "create table scratch (id text primary key, label text); insert into scratch values ('r1', 'one')").await;
        let mut view = Collection::scaffold(CollectionType::View, "scratch_view");
        view.view_query = Some("select id, label from scratch".into());
        store.create_collection(view).await.expect("view");
        let message = failed(&store, "drop table scratch").await;
        assert!(message.contains("scratch_view"), "{message}");
        let message = failed(&store, "alter table scratch rename to scratch2").await;
        assert!(message.contains("collection's table or view"), "{message}");
        done(&store, "alter table scratch add column extra int").await;
        let out = done(&store, "select label from scratch_view").await;
        assert_eq!(out.rows, vec![texts(&["one"])]);
        done(&store, "create table other (x); drop table other").await;
    }

    #[tokio::test]
    async fn the_query_timeout_interrupts_a_runaway_statement() {
        let (_dir, store) = open(Some(Duration::from_millis(300))).await;
        let runaway =
            "with recursive c(x) as (select 1 union all select x+1 from c) select count(*) from c";
        let error = store.run_sql(runaway, LIMITS).await.expect_err("times out");
        assert!(matches!(error, StoreError::TimedOut), "{error:?}");
        let write = "create table t (x); with recursive c(x) as (select 1 union all select x+1 from c) insert into t select x from c";
        let error = store.run_sql(write, LIMITS).await.expect_err("times out");
        assert!(matches!(error, StoreError::TimedOut), "{error:?}");
        let out = done(
            &store,
            "select count(*) from sqlite_schema where name = 't'",
        )
        .await;
        assert_eq!(out.rows, vec![texts(&["0"])]);
    }

    #[tokio::test]
    async fn reads_do_not_wait_for_the_writer() {
        let (_dir, store) = open(Some(Duration::from_secs(5))).await;
        // An open interactive transaction holds the writer thread.
        let tx = store.begin(None).await.expect("holds the writer");
        let out = done(&store, "select 1; select 2 as two").await;
        assert_eq!(out.rows, vec![texts(&["2"])]);
        assert_eq!(out.columns[0].name, "two");
        let pending = store.run_sql("create table held (x)", LIMITS);
        let waited = tokio::time::timeout(Duration::from_millis(200), pending).await;
        assert!(waited.is_err(), "a write waits for the writer");
        tx.rollback().await.expect("released");
        done(&store, "create table held_after (x)").await;
    }

    #[tokio::test]
    async fn optimize_runs() {
        let (_dir, store) = open(None).await;
        store.optimize().await.expect("optimized");
        let stats = store.stats();
        let names: Vec<&str> = stats.queues.iter().map(|q| q.name).collect();
        assert_eq!(names, ["writer", "query", "point"]);
        assert_eq!(stats.queues[0].threads, 1);
    }
}
