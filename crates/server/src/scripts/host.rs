//! The app as scripts see it: every `$app.*`, `$http.send`, `e.next()` core step and the like
//! arrives here as an operation name and JSON, on an engine thread (never an async worker),
//! and is answered by blocking on the server's async code.
//!
//! Reads and writes take the transaction the script is in (`tx`, a handle into the table of
//! [`Scripts`]), so code inside `runInTransaction` or a model hook sees uncommitted rows.

use std::sync::Arc;

use domain::{AuthContext, Collection, Record, RecordQuery, Schema, StoreError};
use hooks::{Host, HostError, HostResult};
use serde_json::{Map, Value, json};

use super::{Scripts, SharedTx, lock};
use crate::state::SharedState;

/// The core step behind `e.next()` at the end of a chain, given by the caller.
pub type Core = Box<dyn Fn(Value) -> HostResult + Send + Sync>;

/// One invocation's host.
pub struct AppHost {
    pub(crate) state: SharedState,
    pub(crate) scripts: Arc<Scripts>,
    core: Option<Core>,
    /// Transactions this invocation opened (`runInTransaction`) and has not ended; an
    /// invocation stopped midway (interrupted, out of memory) leaves them here, and they are
    /// rolled back when it ends, so the writer is not held until their deadline.
    opened: std::sync::Mutex<Vec<u64>>,
}

impl Drop for AppHost {
    fn drop(&mut self) {
        let left: Vec<u64> = std::mem::take(&mut *lock(&self.opened));
        for id in left {
            let Some(shared) = self.scripts.take_tx(id) else {
                continue;
            };
            tracing::warn!(
                tx = id,
                "a hook ended inside a transaction; rolling it back"
            );
            let state = self.state.clone();
            let scripts = self.scripts.clone();
            self.scripts.handle().spawn(async move {
                if let Some(open) = shared.lock().await.take() {
                    let _ = open.rollback().await;
                }
                super::records::after_rollback(&state, &scripts, id).await;
            });
        }
    }
}

impl AppHost {
    pub fn new(state: SharedState, scripts: Arc<Scripts>) -> AppHost {
        AppHost {
            state,
            scripts,
            core: None,
            opened: std::sync::Mutex::new(Vec::new()),
        }
    }

    pub fn with_core(mut self, core: Core) -> AppHost {
        self.core = Some(core);
        self
    }

    pub(super) fn block<F: std::future::Future>(&self, future: F) -> F::Output {
        self.scripts.handle().block_on(future)
    }

    fn tx_of(&self, args: &Value) -> Result<Option<SharedTx>, HostError> {
        match args.get("tx").and_then(Value::as_u64) {
            None => Ok(None),
            Some(id) => self.scripts.tx(id).map(Some).ok_or_else(|| {
                HostError::go("sql: transaction has already been committed or rolled back")
            }),
        }
    }

    pub(super) fn schema(&self, tx: &Option<SharedTx>) -> Arc<Schema> {
        if let Some(tx) = tx
            && let Ok(guard) = tx.try_lock()
            && let Some(open) = guard.as_ref()
        {
            return open.schema();
        }
        self.state.store.schema()
    }

    fn collection(&self, tx: &Option<SharedTx>, name: &str) -> Result<Arc<Collection>, HostError> {
        self.schema(tx)
            .get(name)
            .cloned()
            .ok_or_else(HostError::no_rows)
    }

    fn list(
        &self,
        tx: &Option<SharedTx>,
        query: RecordQuery,
    ) -> Result<domain::RecordPage, HostError> {
        self.block(async {
            match tx {
                Some(tx) => {
                    let mut guard = tx.lock().await;
                    let open = guard.as_mut().ok_or_else(closed)?;
                    open.list_records(query).await.map_err(store_error)
                }
                None => self
                    .state
                    .store
                    .list_records(query)
                    .await
                    .map_err(store_error),
            }
        })
    }

    #[allow(clippy::too_many_arguments)]
    /// Records of `collection` matching a filter (PocketBase's filter language, `{:name}`
    /// placeholders bound from `params`), read as a superuser would.
    fn find(
        &self,
        tx: &Option<SharedTx>,
        collection: &Arc<Collection>,
        filter: &str,
        params: &Value,
        sort: &str,
        limit: u64,
        offset: u64,
        with_total: bool,
    ) -> Result<domain::RecordPage, HostError> {
        let schema = self.schema(tx);
        let auth = superuser(&schema);
        let filter = bind_params(filter, params);
        let dialect = self.state.store.dialect();
        let ctx = rules::RequestContext::new(auth.clone());
        let mut filters = Vec::new();
        if !filter.trim().is_empty() {
            let compiled = rules::compile_filter(&schema, collection, &filter, &auth)
                // PocketBase's words, without the position the API's own errors carry.
                .map_err(|e| HostError::go(format!("invalid filter expression: {}", e.message)))?;
            if let Some(compiled) = compiled {
                filters.push(compiled.to_sql(dialect, &ctx));
            }
        }
        let sort = rules::compile_sort(&schema, collection, sort, &auth)
            .map_err(|e| HostError::go(format!("invalid sort expression: {e}")))?
            .to_sql(dialect, &ctx);
        filters.extend(sort.filters);
        // The store reads pages of `per_page` rows. An offset inside a page reads that page
        // and, when it was full, the next one (in the same transaction, when there is one),
        // and keeps the `limit` rows from the offset on.
        let per_page = if limit == 0 { 1_000_000 } else { limit };
        let page = offset / per_page + 1;
        let skip = usize::try_from(offset % per_page).unwrap_or(usize::MAX);
        let query = RecordQuery {
            collection: collection.clone(),
            filters,
            sort: sort.terms,
            page,
            per_page,
            with_total,
        };
        let next = (skip > 0).then(|| RecordQuery {
            page: page + 1,
            with_total: false,
            ..query.clone()
        });
        let mut result = self.list(tx, query)?;
        if let Some(next) = next {
            let full = u64::try_from(result.items.len()).is_ok_and(|n| n == per_page);
            result.items.drain(..skip.min(result.items.len()));
            if full {
                let next = self.list(tx, next)?;
                result.items.extend(next.items.into_iter().take(skip));
            }
        }
        Ok(result)
    }

    /// The first record matching `filter`, as scripts receive it, or PocketBase's "no rows".
    fn first(
        &self,
        tx: &Option<SharedTx>,
        collection: &Arc<Collection>,
        filter: &str,
        params: &Value,
    ) -> HostResult {
        let page = self.find(tx, collection, filter, params, "", 1, 0, false)?;
        page.items
            .first()
            .map(|r| wire(collection, r))
            .ok_or_else(HostError::no_rows)
    }

    /// One record by id, through the transaction when there is one.
    fn by_id(&self, tx: &Option<SharedTx>, collection: &Arc<Collection>, id: &str) -> HostResult {
        let found = self.block(async {
            match tx {
                Some(tx) => {
                    let mut guard = tx.lock().await;
                    let open = guard.as_mut().ok_or_else(closed)?;
                    open.get_record(collection.clone(), id, Vec::new())
                        .await
                        .map_err(store_error)
                }
                None => self
                    .state
                    .store
                    .get_record(collection.clone(), id, Vec::new())
                    .await
                    .map_err(store_error),
            }
        })?;
        found
            .map(|r| wire(collection, &r))
            .ok_or_else(HostError::no_rows)
    }

    fn arg_collection(
        &self,
        tx: &Option<SharedTx>,
        args: &Value,
    ) -> Result<Arc<Collection>, HostError> {
        self.collection(tx, text(args, "collection"))
    }
}

fn closed() -> HostError {
    HostError::go("sql: transaction has already been committed or rolled back")
}

fn text<'a>(args: &'a Value, key: &str) -> &'a str {
    args.get(key).and_then(Value::as_str).unwrap_or("")
}

/// A store failure as scripts see it.
pub(crate) fn store_error(error: StoreError) -> HostError {
    match error {
        StoreError::NotFound => HostError::no_rows(),
        StoreError::Validation(errors) => HostError::Go {
            message: "validation failed".into(),
            status: Some(400),
            data: errors.into_json(),
        },
        other => HostError::go(other.to_string()),
    }
}

/// A superuser caller for reads scripts make (they see everything).
pub(crate) fn superuser(schema: &Schema) -> AuthContext {
    match schema.get("_superusers") {
        Some(collection) => AuthContext::Record {
            collection: collection.clone(),
            record: Arc::new(Record::new(Map::new())),
            refreshable: false,
        },
        None => AuthContext::Guest,
    }
}

/// Replaces `{:name}` placeholders with literals of the filter language (strings quoted and
/// escaped, numbers and booleans as they are), so values never change the filter's shape.
pub(crate) fn bind_params(filter: &str, params: &Value) -> String {
    let Some(params) = params.as_object() else {
        return filter.to_owned();
    };
    let mut out = String::with_capacity(filter.len());
    let mut rest = filter;
    while let Some(start) = rest.find("{:") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        match after.find('}') {
            Some(end) if params.contains_key(&after[..end]) => {
                out.push_str(&literal(&params[&after[..end]]));
                rest = &after[end + 1..];
            }
            _ => {
                out.push_str("{:");
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

fn literal(value: &Value) -> String {
    match value {
        Value::Null => "null".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => quote(s),
        other => quote(&other.to_string()),
    }
}

fn quote(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('\'');
    for c in text.chars() {
        if c == '\'' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('\'');
    out
}

/// A record as scripts receive it.
pub(crate) fn wire(collection: &Collection, record: &Record) -> Value {
    json!({
        "collectionId": collection.id,
        "collectionName": collection.name,
        "data": Value::Object(record.data.clone()),
    })
}

impl Host for AppHost {
    fn call(&self, op: &str, args: Value) -> HostResult {
        let tx = self.tx_of(&args)?;
        match op {
            "next" => match &self.core {
                Some(core) => core(args),
                None => Ok(Value::Null),
            },
            "collection" => {
                let c = self.collection(&tx, text(&args, "nameOrId"))?;
                Ok(c.to_api_json())
            }
            "collections" => {
                let types: Vec<String> = args
                    .get("types")
                    .and_then(Value::as_array)
                    .map(|a| {
                        a.iter()
                            .filter_map(|t| t.as_str().map(str::to_owned))
                            .collect()
                    })
                    .unwrap_or_default();
                let schema = self.schema(&tx);
                Ok(Value::Array(
                    schema
                        .all()
                        .iter()
                        .filter(|c| types.is_empty() || types.iter().any(|t| t == c.kind.as_str()))
                        .map(|c| c.to_api_json())
                        .collect(),
                ))
            }
            "findRecordById" => {
                let c = self.arg_collection(&tx, &args)?;
                self.by_id(&tx, &c, text(&args, "id"))
            }
            "findRecordsByIds" => {
                let c = self.arg_collection(&tx, &args)?;
                let ids: Vec<Value> = args
                    .get("ids")
                    .and_then(Value::as_array)
                    .cloned()
                    .unwrap_or_default();
                let filter = ids
                    .iter()
                    .enumerate()
                    .map(|(i, _)| format!("id = {{:i{i}}}"))
                    .collect::<Vec<_>>()
                    .join(" || ");
                if filter.is_empty() {
                    return Ok(json!([]));
                }
                let params: Map<String, Value> = ids
                    .into_iter()
                    .enumerate()
                    .map(|(i, v)| (format!("i{i}"), v))
                    .collect();
                let page = self.find(&tx, &c, &filter, &Value::Object(params), "", 0, 0, false)?;
                Ok(Value::Array(
                    page.items.iter().map(|r| wire(&c, r)).collect(),
                ))
            }
            "findFirstRecordByData" => {
                let c = self.arg_collection(&tx, &args)?;
                let key = text(&args, "key");
                if c.field(key).is_none() {
                    return Err(HostError::go(format!("unknown field {key:?}")));
                }
                let value = args.get("value").cloned().unwrap_or(Value::Null);
                self.first(&tx, &c, &format!("{key} = {{:v}}"), &json!({ "v": value }))
            }
            "findFirstRecordByFilter" => {
                let c = self.arg_collection(&tx, &args)?;
                self.first(&tx, &c, text(&args, "filter"), &args["params"])
            }
            "findRecordsByFilter" => {
                let c = self.arg_collection(&tx, &args)?;
                let limit = args.get("limit").and_then(Value::as_u64).unwrap_or(0);
                let offset = args.get("offset").and_then(Value::as_u64).unwrap_or(0);
                let page = self.find(
                    &tx,
                    &c,
                    text(&args, "filter"),
                    &args["params"],
                    text(&args, "sort"),
                    limit,
                    offset,
                    false,
                )?;
                Ok(Value::Array(
                    page.items.iter().map(|r| wire(&c, r)).collect(),
                ))
            }
            "countRecords" => {
                let c = self.arg_collection(&tx, &args)?;
                let page = self.find(
                    &tx,
                    &c,
                    text(&args, "filter"),
                    &args["params"],
                    "",
                    1,
                    0,
                    true,
                )?;
                Ok(json!(page.total.unwrap_or(0)))
            }
            "findAuthRecordByEmail" => {
                let c = self.arg_collection(&tx, &args)?;
                if !c.is_auth() {
                    return Err(HostError::go(format!(
                        "{:?} is not an auth collection",
                        c.name
                    )));
                }
                self.first(
                    &tx,
                    &c,
                    "email = {:email}",
                    &json!({ "email": text(&args, "email") }),
                )
            }
            "findAuthRecordByToken" => {
                let token = text(&args, "token").to_owned();
                let auth = self.block(crate::auth::token::resolve_auth_token(&self.state, &token));
                match auth {
                    AuthContext::Record {
                        collection, record, ..
                    } => Ok(wire(&collection, &record)),
                    AuthContext::Guest => Err(HostError::go("invalid or expired token")),
                }
            }
            "validatePassword" => {
                let hash = text(&args, "hash").to_owned();
                let password = text(&args, "password").to_owned();
                Ok(json!(
                    self.block(crate::auth::password::verify(password, hash))
                ))
            }
            "begin" => {
                let tx = self
                    .block(self.state.store.begin(None))
                    .map_err(store_error)?;
                let id = self.scripts.open_tx(tx);
                lock(&self.opened).push(id);
                Ok(json!(id))
            }
            "commit" | "rollback" => {
                let id = args.get("tx").and_then(Value::as_u64).unwrap_or(0);
                lock(&self.opened).retain(|o| *o != id);
                let shared = self.scripts.take_tx(id).ok_or_else(closed)?;
                let open = self
                    .block(async { shared.lock().await.take() })
                    .ok_or_else(closed)?;
                if op == "commit" {
                    self.block(open.commit()).map_err(store_error)?;
                    self.block(super::records::after_commit(&self.state, &self.scripts, id));
                } else {
                    self.block(open.rollback()).map_err(store_error)?;
                    self.block(super::records::after_rollback(
                        &self.state,
                        &self.scripts,
                        id,
                    ));
                }
                Ok(Value::Null)
            }
            "savepoint" | "releaseSavepoint" | "rollbackToSavepoint" => {
                let tx = tx.ok_or_else(closed)?;
                self.block(async {
                    let mut guard = tx.lock().await;
                    let open = guard.as_mut().ok_or_else(closed)?;
                    match op {
                        "savepoint" => open.savepoint().await,
                        "releaseSavepoint" => open.release_savepoint().await,
                        _ => open.rollback_to_savepoint().await,
                    }
                    .map_err(store_error)
                })?;
                Ok(Value::Null)
            }
            "store" => {
                let mut kv = lock(&self.scripts.kv);
                let key = text(&args, "key").to_owned();
                Ok(match text(&args, "op") {
                    "get" => kv.get(&key).cloned().unwrap_or(Value::Null),
                    "has" => json!(kv.contains_key(&key)),
                    "set" => {
                        kv.insert(key, args.get("value").cloned().unwrap_or(Value::Null));
                        Value::Null
                    }
                    "remove" => {
                        kv.remove(&key);
                        Value::Null
                    }
                    "removeAll" => {
                        kv.clear();
                        Value::Null
                    }
                    // Set (or overwrite) unless that would take the store past `limit`
                    // entries, in one step under the lock.
                    "setIfLessThanLimit" => {
                        let limit = args.get("limit").and_then(Value::as_u64).unwrap_or(0);
                        if kv.contains_key(&key) || (kv.len() as u64) < limit {
                            kv.insert(key, args.get("value").cloned().unwrap_or(Value::Null));
                            json!(true)
                        } else {
                            json!(false)
                        }
                    }
                    "keys" => Value::Array(kv.keys().cloned().map(Value::String).collect()),
                    "all" => Value::Object(kv.clone()),
                    _ => Value::Null,
                })
            }
            "log" => {
                let level = args.get("level").and_then(Value::as_i64).unwrap_or(0);
                let message = text(&args, "message");
                let attrs = args.get("attrs").cloned().unwrap_or(Value::Null);
                match level {
                    l if l >= 8 => tracing::error!(target: "hooks", attrs = %attrs, "{message}"),
                    l if l >= 4 => tracing::warn!(target: "hooks", attrs = %attrs, "{message}"),
                    l if l >= 0 => tracing::info!(target: "hooks", attrs = %attrs, "{message}"),
                    _ => tracing::debug!(target: "hooks", attrs = %attrs, "{message}"),
                }
                // Also into the log store, as PocketBase's logger writes there: the
                // key-value attributes become `data`.
                let data = crate::logs::attrs_data(&attrs);
                self.state.logs.log(level, message.to_owned(), data);
                Ok(Value::Null)
            }
            "settings" => {
                let settings = self
                    .block(crate::settings::current(&self.state))
                    .map_err(|e| HostError::go(e.message))?;
                Ok(settings.to_api_json())
            }
            "dataDir" => Ok(json!(
                self.state
                    .config
                    .storage_dir
                    .as_ref()
                    .and_then(|d| d.parent())
                    .map(|d| d.to_string_lossy().into_owned())
                    .unwrap_or_default()
            )),
            "httpSend" => self.block(super::records::http_send(args)),
            "cronAdd" => super::records::cron_add(&self.state, &self.scripts, &args),
            "cronRemove" => {
                self.state.crons.remove(text(&args, "id"));
                Ok(Value::Null)
            }
            "crons" => Ok(serde_json::to_value(self.state.crons.list()).unwrap_or(Value::Null)),
            _ if super::app_ops::OPS.contains(&op) => super::app_ops::call(self, op, args, tx),
            _ => self.block(super::records::call(self, op, args, tx)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn params_become_escaped_literals() {
        assert_eq!(
            bind_params(
                "n >= {:min} && title != {:t}",
                &json!({"min": 2, "t": "it's"})
            ),
            "n >= 2 && title != 'it\\'s'"
        );
        assert_eq!(bind_params("a = {:missing}", &json!({})), "a = {:missing}");
        assert_eq!(
            bind_params("a = {:x}", &json!({"x": "' || 1=1 || '"})),
            "a = '\\' || 1=1 || \\''"
        );
    }
}
