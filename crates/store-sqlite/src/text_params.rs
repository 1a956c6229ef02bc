//! Params stored as bare text rather than JSON: PocketBase keeps an encrypted `settings`
//! value as the base64 string itself, and a data dir must read the same in both servers.

use rusqlite::{Connection, params};

use domain::StoreError;

/// Inserts or replaces the param `key` with `text` as it is.
pub(crate) fn set_param_text(conn: &Connection, key: &str, text: &str) -> Result<(), StoreError> {
    let now = domain::time::now();
    conn.prepare_cached(
        "INSERT INTO _params (id, value, created, updated) VALUES (?, ?, ?, ?)
         ON CONFLICT(id) DO UPDATE SET value = excluded.value, updated = excluded.updated",
    )
    .and_then(|mut stmt| stmt.execute(params![key, text, now, now]))
    .map_err(crate::internal)?;
    Ok(())
}
