//! The SQL console behind `POST /api/sql` on PostgreSQL: statements a superuser typed, in
//! PostgreSQL's SQL, run in one transaction, all or nothing, within the query timeout.
//!
//! The rule is the same as on SQLite — nothing the console runs may leave the store believing
//! a stale schema, hold its connection in a changed state, or touch the store's bookkeeping —
//! but PostgreSQL has no authorizer to judge each action, so the console admits less: each
//! statement must be a read or a record write (`SELECT`, `WITH`, `VALUES`, `TABLE`, `INSERT`,
//! `UPDATE`, `DELETE`, `MERGE`, `EXPLAIN`, `SHOW`, `ANALYZE`); schema changes go through the
//! collections API or migrations. A write that reaches a bookkeeping table anyway (through a
//! data-modifying `WITH`, say) is refused by a statement trigger on each of them, which the
//! console arms for its transaction (`plinth.console`). The connection is closed afterwards, so whatever a function call changed in the
//! session (`set_config`, advisory locks) ends with it.

use std::time::Instant;

use domain::StoreError;
use domain::store::{SqlColumn, SqlLimits, SqlOutcome, SqlOutput};
use futures_util::StreamExt;
use tokio_postgres::SimpleQueryMessage;

use crate::Conn;
use crate::sql::{describe, internal};

/// First words of the statements the console runs.
const ALLOWED: [&str; 11] = [
    "SELECT", "WITH", "VALUES", "TABLE", "INSERT", "UPDATE", "DELETE", "MERGE", "EXPLAIN", "SHOW",
    "ANALYZE",
];

/// Why the console stopped.
enum Stop {
    Failed(String),
    Store(StoreError),
}

/// Runs `sql` on `conn` (which is closed afterwards) until `deadline`.
pub(crate) async fn run(
    conn: Conn,
    sql: &str,
    limits: SqlLimits,
    deadline: Option<Instant>,
) -> Result<SqlOutcome, StoreError> {
    let statements = match split(sql) {
        Ok(statements) => statements,
        Err(reason) => return Ok(SqlOutcome::Failed(reason)),
    };
    if statements.is_empty() {
        return Ok(SqlOutcome::Failed("there is no statement to run".into()));
    }
    for statement in &statements {
        if let Some(reason) = refusal(statement) {
            return Ok(SqlOutcome::Failed(reason));
        }
    }
    let work = run_all(&conn, &statements, limits, deadline);
    let outcome = match deadline {
        Some(deadline) => tokio::time::timeout_at(deadline.into(), work)
            .await
            .unwrap_or(Err(Stop::Store(StoreError::TimedOut))),
        None => work.await,
    };
    // The session may carry whatever the statements changed in it: it ends here.
    conn.discard();
    match outcome {
        Ok(output) => Ok(SqlOutcome::Done(output)),
        Err(Stop::Failed(reason)) => Ok(SqlOutcome::Failed(reason)),
        Err(Stop::Store(error)) => Err(error),
    }
}

async fn run_all(
    conn: &Conn,
    statements: &[String],
    limits: SqlLimits,
    deadline: Option<Instant>,
) -> Result<SqlOutput, Stop> {
    let timeout_ms = deadline.map_or(0, |d| {
        d.saturating_duration_since(Instant::now())
            .as_millis()
            .max(1)
    });
    conn.begin(&format!(
        "BEGIN; SET LOCAL statement_timeout = {timeout_ms}; SET LOCAL plinth.console = 'on'"
    ))
    .await
    .map_err(|e| Stop::Store(internal(e)))?;
    let mut output = SqlOutput::default();
    for (i, statement) in statements.iter().enumerate() {
        let last = i + 1 == statements.len();
        let stream = conn.simple_query_raw(statement).await.map_err(failed)?;
        futures_util::pin_mut!(stream);
        let mut columns: Vec<SqlColumn> = Vec::new();
        let mut rows: Vec<Vec<Option<String>>> = Vec::new();
        let mut bytes = 0usize;
        let mut affected = None;
        while let Some(message) = stream.next().await {
            match message.map_err(failed)? {
                SimpleQueryMessage::RowDescription(described) => {
                    columns = described
                        .iter()
                        .map(|column| SqlColumn {
                            name: column.name().to_owned(),
                            declared_type: String::new(),
                        })
                        .collect();
                }
                SimpleQueryMessage::Row(row) => {
                    if !last || rows.len() >= limits.max_rows {
                        continue;
                    }
                    let mut values = Vec::with_capacity(row.len());
                    for index in 0..row.len() {
                        let value = row.try_get(index).map_err(failed)?;
                        bytes = bytes.saturating_add(value.map_or(4, str::len));
                        if bytes > limits.max_bytes {
                            return Err(Stop::Failed(format!(
                                "the result holds more than {} MiB of values; select fewer rows or columns",
                                limits.max_bytes >> 20
                            )));
                        }
                        values.push(value.map(str::to_owned));
                    }
                    rows.push(values);
                }
                SimpleQueryMessage::CommandComplete(n) => affected = Some(n),
                _ => {}
            }
        }
        if is_write(statement) {
            output.affected_rows = affected.unwrap_or(0);
        }
        if last {
            output.columns = columns;
            output.rows = rows;
        }
    }
    conn.batch_execute("COMMIT").await.map_err(failed)?;
    Ok(output)
}

fn failed(error: tokio_postgres::Error) -> Stop {
    if crate::sql::is_cancel(&error) {
        Stop::Store(StoreError::TimedOut)
    } else {
        Stop::Failed(describe(&error))
    }
}

use crate::view::first_word;

fn is_write(statement: &str) -> bool {
    matches!(
        first_word(statement).as_str(),
        "INSERT" | "UPDATE" | "DELETE" | "MERGE"
    )
}

/// Why `statement` may not run from the console, if it may not.
fn refusal(statement: &str) -> Option<String> {
    let word = first_word(statement);
    if !ALLOWED.contains(&word.as_str()) {
        return Some(format!(
            "{word} is not supported in the SQL console on PostgreSQL: it runs reads and record writes (SELECT, WITH, VALUES, TABLE, INSERT, UPDATE, DELETE, MERGE, EXPLAIN, SHOW, ANALYZE); change collections through the collections API or migrations"
        ));
    }
    if word == "EXPLAIN" {
        let upper = statement.to_ascii_uppercase();
        if ["CREATE", "EXECUTE", "DECLARE"].iter().any(|w| {
            upper
                .split(|c: char| !c.is_ascii_alphanumeric() && c != '_')
                .any(|t| t == *w)
        }) {
            return Some("EXPLAIN is supported for reads and record writes only".into());
        }
    }
    None
}

/// Splits `sql` into statements at semicolons outside quotes, dollar quotes and comments;
/// comments are kept, empty statements dropped.
fn split(sql: &str) -> Result<Vec<String>, String> {
    let mut statements = Vec::new();
    let mut current = String::new();
    let chars: Vec<char> = sql.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        match c {
            '\'' | '"' => {
                let start = i;
                i += 1;
                loop {
                    if i >= chars.len() {
                        return Err("a quote is not closed".into());
                    }
                    if chars[i] == c {
                        if chars.get(i + 1) == Some(&c) {
                            i += 2;
                            continue;
                        }
                        break;
                    }
                    i += 1;
                }
                current.extend(&chars[start..=i]);
            }
            '-' if chars.get(i + 1) == Some(&'-') => {
                let start = i;
                while i < chars.len() && chars[i] != '\n' {
                    i += 1;
                }
                current.extend(&chars[start..i.min(chars.len())]);
                continue;
            }
            '/' if chars.get(i + 1) == Some(&'*') => {
                let start = i;
                let mut depth = 0usize;
                loop {
                    if i + 1 >= chars.len() {
                        return Err("a comment is not closed".into());
                    }
                    if chars[i] == '/' && chars[i + 1] == '*' {
                        depth += 1;
                        i += 2;
                    } else if chars[i] == '*' && chars[i + 1] == '/' {
                        depth -= 1;
                        i += 2;
                        if depth == 0 {
                            break;
                        }
                    } else {
                        i += 1;
                    }
                }
                current.extend(&chars[start..i]);
                continue;
            }
            '$' => {
                // A dollar quote: $tag$ … $tag$ (a tag is letters, digits, underscores).
                let mut j = i + 1;
                while j < chars.len() && (chars[j].is_alphanumeric() || chars[j] == '_') {
                    j += 1;
                }
                let tagged = chars.get(j) == Some(&'$')
                    && !chars.get(i + 1).is_some_and(|c| c.is_ascii_digit());
                if tagged {
                    let tag: String = chars[i..=j].iter().collect();
                    let rest: String = chars[j + 1..].iter().collect();
                    let Some(end) = rest.find(&tag) else {
                        return Err("a dollar quote is not closed".into());
                    };
                    let quoted_len = rest[..end].chars().count() + tag.chars().count();
                    let stop = j + 1 + quoted_len;
                    current.extend(&chars[i..stop]);
                    i = stop;
                    continue;
                }
                current.push(c);
            }
            ';' => {
                if !current.trim().is_empty() && !only_comments(&current) {
                    statements.push(std::mem::take(&mut current));
                } else {
                    current.clear();
                }
            }
            _ => current.push(c),
        }
        i += 1;
    }
    if !current.trim().is_empty() && !only_comments(&current) {
        statements.push(current);
    }
    Ok(statements)
}

fn only_comments(text: &str) -> bool {
    let mut rest = text.trim_start();
    loop {
        if let Some(after) = rest.strip_prefix("--") {
            rest = after.split_once('\n').map_or("", |(_, r)| r).trim_start();
        } else if let Some(after) = rest.strip_prefix("/*") {
            rest = after.split_once("*/").map_or("", |(_, r)| r).trim_start();
        } else {
            return rest.is_empty();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statements_split_outside_quotes_and_comments() {
        let parts = split(
            "select ';' as a; -- one; two\nselect $x$ ; $x$; /* a; b */ update t set a = \"b;\"; ;",
        )
        .expect("splits");
        assert_eq!(
            parts,
            [
                "select ';' as a",
                " -- one; two\nselect $x$ ; $x$",
                " /* a; b */ update t set a = \"b;\""
            ]
        );
        assert!(split("select 'open").is_err());
        assert!(split("select $a$ open").is_err());
    }

    #[test]
    fn only_reads_and_record_writes_run() {
        assert!(refusal("select 1").is_none());
        assert!(refusal("  (select 1)").is_none());
        assert!(refusal("with x as (select 1) select * from x").is_none());
        assert!(refusal("explain select 1").is_none());
        for refused in [
            "drop table items",
            "alter table items add column x text",
            "create table t (a int)",
            "set statement_timeout = 0",
            "commit",
            "do $$ begin end $$",
            "explain analyze create table t as select 1",
            "copy items to stdout",
        ] {
            assert!(refusal(refused).is_some(), "{refused}");
        }
    }
}
