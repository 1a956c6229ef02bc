//! The SQL console, `POST /api/sql` (PocketBase 0.39+), superusers only: runs the statements of
//! `query` through [`domain::Store::run_sql`] and answers
//! `{execTime, affectedRows, columns: [{name, type, nullable}], rows: [[text|null…]…]}`.
//!
//! As PocketBase: `query` is required and at most 5,000 bytes; several statements may be sent
//! and the last one answers; at most 1,000 rows come back; every value is text. A text whose
//! first word is a write keyword (`insert`, `update`, `delete`, `replace`, `create`, `drop`,
//! `alter`) is answered as an execution — no columns or rows, `affectedRows` set — and
//! anything else as a query, whose rows come back and `affectedRows` is 0 (so `update … returning`
//! answers no rows, while a leading comment makes it a query). Failures answer 400
//! `Failed to execute query. Raw error:\n<error>.`.
//!
//! Plinth's bounds beyond PocketBase's: the query timeout (`--queryTimeout`) applies, the
//! values returned are capped at [`MAX_RESULT_BYTES`], and statements that would change a
//! collection's table or the store's own tables are refused by the store (see
//! `store-sqlite/src/console.rs`), so the server never runs on a stale schema.

use std::time::Instant;

use crate::routing::{Routes, post};
use axum::Json;
use axum::extract::{RawQuery, State};
use domain::store::{SqlLimits, SqlOutcome, SqlOutput};
use domain::{FieldError, StoreError, ValidationErrors};
use serde_json::{Value, json};

use crate::error::{ApiError, ApiResult};
use crate::extract::{Superuser, TextForm};
use crate::response::apply_fields;
use crate::state::SharedState;

/// Longest accepted `query`, in bytes (PocketBase's bound).
pub const MAX_QUERY_BYTES: usize = 5000;
/// Rows of the last statement returned (PocketBase's bound).
pub const MAX_ROWS: usize = 1000;
/// Bytes of values the returned rows may hold (Plinth's bound: 1,000 rows of large values
/// would otherwise be held in memory whole).
pub const MAX_RESULT_BYTES: usize = 32 << 20;

/// First words that make the text an execution rather than a query.
const WRITE_KEYWORDS: [&str; 7] = [
    "insert", "update", "delete", "replace", "create", "drop", "alter",
];

pub fn router() -> Routes {
    Routes::new().route("/api/sql", post(run))
}

async fn run(
    State(state): State<SharedState>,
    _: Superuser,
    RawQuery(query_string): RawQuery,
    TextForm(body): TextForm,
) -> ApiResult<Json<Value>> {
    // Keys match case-insensitively, as Go decodes JSON into a struct.
    let query = match body.iter().find(|(k, _)| k.eq_ignore_ascii_case("query")) {
        None | Some((_, Value::Null)) => String::new(),
        Some((_, Value::String(text))) => text.clone(),
        Some(_) => {
            return Err(ApiError::bad_request_msg(
                "An error occurred while loading the submitted data.",
            ));
        }
    };
    validate(&query)?;
    if query.trim().is_empty() {
        return Err(failed("empty query"));
    }
    let limits = SqlLimits {
        max_rows: MAX_ROWS,
        max_bytes: MAX_RESULT_BYTES,
    };
    let started = Instant::now();
    let output = match state.store.run_sql(&query, limits).await {
        Ok(SqlOutcome::Done(output)) => output,
        Ok(SqlOutcome::Failed(message)) => return Err(failed(&message)),
        Err(StoreError::TimedOut) => {
            return Err(failed(
                "interrupted: the query ran past the query timeout (--queryTimeout)",
            ));
        }
        Err(error) => return Err(ApiError::from(error)),
    };
    let exec_time = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    let mut body = render(&query, output, exec_time);
    if let Some(fields) = fields_param(query_string.as_deref()) {
        apply_fields(&mut body, &fields)?;
    }
    Ok(Json(body))
}

/// PocketBase's validation of `query`: required, at most [`MAX_QUERY_BYTES`] bytes.
fn validate(query: &str) -> ApiResult<()> {
    let error = if query.is_empty() {
        FieldError::required()
    } else if query.len() > MAX_QUERY_BYTES {
        FieldError::new(
            "validation_length_too_long",
            format!("The length must be no more than {MAX_QUERY_BYTES}."),
        )
        .with_param("max", MAX_QUERY_BYTES)
        .with_param("min", 0)
    } else {
        return Ok(());
    };
    Err(ApiError::validation(
        "An error occurred while validating the submitted data.",
        ValidationErrors::single("query", error),
    ))
}

fn failed(message: &str) -> ApiError {
    ApiError::bad_request_msg(&format!("Failed to execute query. Raw error:\n{message}."))
}

/// Whether PocketBase answers `query` as an execution (see the module comment).
fn is_execution(query: &str) -> bool {
    let text = query.trim_start();
    let word_end = text
        .find(|c: char| !c.is_ascii_alphabetic())
        .unwrap_or(text.len());
    let word = &text[..word_end];
    WRITE_KEYWORDS.iter().any(|k| k.eq_ignore_ascii_case(word))
}

fn render(query: &str, output: SqlOutput, exec_time: u64) -> Value {
    if is_execution(query) {
        return json!({
            "execTime": exec_time,
            "affectedRows": output.affected_rows,
            "columns": [],
            "rows": [],
        });
    }
    let columns: Vec<Value> = output
        .columns
        .iter()
        .map(|c| json!({"name": c.name, "type": c.declared_type, "nullable": true}))
        .collect();
    json!({
        "execTime": exec_time,
        "affectedRows": 0,
        "columns": columns,
        "rows": output.rows,
    })
}

/// The first `fields` query parameter, if any.
fn fields_param(query: Option<&str>) -> Option<String> {
    serde_urlencoded::from_str::<Vec<(String, String)>>(query.unwrap_or(""))
        .ok()?
        .into_iter()
        .find(|(k, _)| k == "fields")
        .map(|(_, v)| v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_word_decides_the_shape() {
        for query in [
            "insert into t values (1)",
            "UPDATE t SET x = 1 RETURNING *",
            "\n\tDelete from t",
            "replace into t values (1)",
            "create table t (x)",
            "drop table t",
            "alter table t add column y",
        ] {
            assert!(is_execution(query), "{query}");
        }
        for query in [
            "select 1",
            "/* c */ update t set x = 1 returning *",
            "-- x\nupdate t set x = 1",
            "with q as (select 1) update t set x = 1 returning *",
            "pragma user_version",
            "vacuum",
            "analyze",
            "updatex",
            "",
        ] {
            assert!(!is_execution(query), "{query}");
        }
    }
}
