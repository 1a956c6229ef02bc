//! What scripts write, and the record hooks around the app's own writes.
//!
//! `$app.save(record)` and `$app.delete(record)` go through the record pipeline's system path
//! (`records::pipeline`), inside the script's transaction when it has one. Collections go
//! through the collections API's own validation. After-commit hooks of writes made inside a
//! script transaction wait for its commit (`after_commit`).

use std::sync::Arc;
use std::time::Duration;

use domain::{Collection, Record};
use hooks::{HostError, HostResult};
use serde_json::{Map, Value, json};

use super::host::{AppHost, store_error};
use super::{Scripts, SharedTx, lock};
use crate::records::pipeline::{System, SystemChange, system_create, system_delete, system_update};
use crate::state::SharedState;

/// Largest answer body `$http.send` reads.
pub const HTTP_SEND_MAX_BYTES: usize = 32 * 1024 * 1024;

fn text<'a>(args: &'a Value, key: &str) -> &'a str {
    args.get(key).and_then(Value::as_str).unwrap_or("")
}

/// The ops `host.rs` does not answer itself (all of them write).
pub(crate) async fn call(host: &AppHost, op: &str, args: Value, tx: Option<SharedTx>) -> HostResult {
    let state = &host.state;
    match op {
        "saveRecord" | "validateRecord" => {
            let wire = args.get("record").cloned().unwrap_or(Value::Null);
            let collection = collection_of(state, tx.as_ref(), text(&wire, "collectionId")).await?;
            let saved = save_record(state, tx.as_ref(), &collection, &wire).await?;
            Ok(json!({ "data": Value::Object(saved.data), "stored": true }))
        }
        "deleteRecord" => {
            let wire = args.get("record").cloned().unwrap_or(Value::Null);
            let collection = collection_of(state, tx.as_ref(), text(&wire, "collectionId")).await?;
            let id = wire
                .get("data")
                .and_then(|d| d.get("id"))
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_owned();
            system_delete(System::of(state).in_tx(tx.as_ref()), &collection, &id)
                .await
                .map_err(store_error)?;
            Ok(Value::Null)
        }
        "saveCollection" => {
            let body = args
                .get("collection")
                .and_then(Value::as_object)
                .cloned()
                .unwrap_or_default();
            crate::collections::save_from_script(state, tx.as_ref(), body)
                .await
                .map_err(api_to_host)
        }
        "deleteCollection" => {
            let id = text(&args, "id").to_owned();
            let result = match &tx {
                Some(tx) => {
                    let mut guard = tx.lock().await;
                    match guard.as_mut() {
                        Some(open) => {
                            let found = open.schema().get(&id).map(|c| c.id.clone());
                            match found {
                                Some(cid) => open.delete_collection(&cid).await.map(|_| ()),
                                None => Err(domain::StoreError::NotFound),
                            }
                        }
                        None => Err(domain::StoreError::Internal("the transaction has ended".into())),
                    }
                }
                None => {
                    let found = state.schema().get(&id).map(|c| c.id.clone());
                    match found {
                        Some(cid) => state.store.delete_collection(&cid).await.map(|_| ()),
                        None => Err(domain::StoreError::NotFound),
                    }
                }
            };
            result.map_err(store_error)?;
            Ok(Value::Null)
        }
        "truncateCollection" => {
            let collection = collection_of(state, tx.as_ref(), text(&args, "collection")).await?;
            match &tx {
                Some(tx) => {
                    let mut guard = tx.lock().await;
                    let open = guard.as_mut().ok_or_else(|| HostError::go("the transaction has ended"))?;
                    open.truncate_collection(&collection.id).await.map_err(store_error)?;
                }
                None => state
                    .store
                    .truncate_collection(&collection.id)
                    .await
                    .map_err(store_error)?,
            }
            Ok(Value::Null)
        }
        "importCollections" => {
            let list = args.get("collections").and_then(Value::as_array).cloned().unwrap_or_default();
            // Each definition is saved as `$app.save` would: one after the other, in the
            // script's transaction when it has one.
            for one in list {
                if let Value::Object(body) = one {
                    crate::collections::save_from_script(state, tx.as_ref(), body)
                        .await
                        .map_err(api_to_host)?;
                }
            }
            Ok(Value::Null)
        }
        _ => Err(HostError::go(format!("{op} is not supported by Plinth's hooks yet"))),
    }
}

fn api_to_host(error: crate::error::ApiError) -> HostError {
    HostError::Api {
        status: error.status.as_u16(),
        message: error.message,
        data: error.data,
    }
}

async fn collection_of(
    state: &SharedState,
    tx: Option<&SharedTx>,
    key: &str,
) -> Result<Arc<Collection>, HostError> {
    let schema = match tx {
        Some(tx) => match tx.lock().await.as_ref() {
            Some(open) => open.schema(),
            None => state.schema(),
        },
        None => state.schema(),
    };
    schema.get(key).cloned().ok_or_else(HostError::no_rows)
}

/// Saves a record a script built: created when it is new, else updated with the values it
/// holds (a plain password set with `setPassword` is hashed on the way).
pub(crate) async fn save_record(
    state: &SharedState,
    tx: Option<&SharedTx>,
    collection: &Arc<Collection>,
    wire: &Value,
) -> Result<Record, HostError> {
    let data = wire.get("data").and_then(Value::as_object).cloned().unwrap_or_default();
    let is_new = wire.get("isNew").and_then(Value::as_bool).unwrap_or(true);
    let mut change = SystemChange::new();
    for field in &collection.fields {
        let name = field.name.as_str();
        if matches!(field.kind, domain::FieldKind::Password(_) | domain::FieldKind::Autodate(_)) {
            continue;
        }
        if name == "tokenKey" && data.get(name).and_then(Value::as_str).unwrap_or("").is_empty() {
            continue;
        }
        if name == "id" && !is_new {
            continue;
        }
        if let Some(value) = data.get(name) {
            change = change.set(name, value.clone());
        }
    }
    if let Some(password) = wire.get("password").and_then(Value::as_str) {
        change = change.set("password", password);
        if collection.is_auth() {
            change = change.set("passwordConfirm", password);
        }
    }
    let system = System::of(state).in_tx(tx);
    let result = if is_new {
        system_create(system, collection, change).await
    } else {
        let id = data.get("id").and_then(Value::as_str).unwrap_or("").to_owned();
        system_update(system, collection, &id, change).await
    };
    result.map_err(store_error)
}

/// `$http.send`: one outbound request, answered with status, canonical headers, cookies and
/// the body (read up to [`HTTP_SEND_MAX_BYTES`]). A 4xx/5xx is an answer, not an error.
pub(crate) async fn http_send(args: Value) -> HostResult {
    let timeout = args.get("timeout").and_then(Value::as_f64).unwrap_or(120.0).clamp(1.0, 3600.0);
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs_f64(timeout))
        .build()
        .map_err(|e| HostError::go(e.to_string()))?;
    let url = text(&args, "url").to_owned();
    let method = reqwest::Method::from_bytes(text(&args, "method").as_bytes())
        .map_err(|_| HostError::go(format!("invalid method {:?}", text(&args, "method"))))?;
    let mut request = client.request(method.clone(), &url);
    if let Some(headers) = args.get("headers").and_then(Value::as_object) {
        for (name, value) in headers {
            let value = match value {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            request = request.header(name.as_str(), value);
        }
    }
    if let Some(body) = args.get("body").and_then(Value::as_str) {
        request = request.body(body.to_owned());
    } else if let Some(form) = args.get("form").and_then(Value::as_array) {
        let pairs: Vec<(String, String)> = form
            .iter()
            .filter_map(|p| Some((p.get(0)?.as_str()?.to_owned(), p.get(1)?.as_str()?.to_owned())))
            .collect();
        request = request.form(&pairs);
    } else if let Some(data) = args.get("data").filter(|d| !d.is_null()) {
        request = request.body(data.to_string());
    }
    let response = request.send().await.map_err(|e| {
        HostError::go(format!("{} \"{url}\": {e}", title_case(method.as_str())))
    })?;
    let status = response.status().as_u16();
    let mut headers: Map<String, Value> = Map::new();
    let mut cookies: Map<String, Value> = Map::new();
    for (name, value) in response.headers() {
        let value = value.to_str().unwrap_or("").to_owned();
        if name == reqwest::header::SET_COOKIE
            && let Some((cookie, rest)) = value.split_once('=')
        {
            let v = rest.split(';').next().unwrap_or("").to_owned();
            cookies.insert(cookie.to_owned(), json!({ "name": cookie, "value": v, "raw": value }));
        }
        let entry = headers
            .entry(canonical(name.as_str()))
            .or_insert_with(|| Value::Array(Vec::new()));
        if let Value::Array(list) = entry {
            list.push(Value::String(value));
        }
    }
    let mut body = Vec::new();
    let mut response = response;
    while let Some(chunk) = response.chunk().await.map_err(|e| HostError::go(e.to_string()))? {
        if body.len() + chunk.len() > HTTP_SEND_MAX_BYTES {
            return Err(HostError::go(format!(
                "the answer is larger than {HTTP_SEND_MAX_BYTES} bytes"
            )));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(json!({
        "statusCode": status,
        "headers": headers,
        "cookies": cookies,
        "body": String::from_utf8_lossy(&body),
    }))
}

fn title_case(method: &str) -> String {
    let lower = method.to_ascii_lowercase();
    let mut chars = lower.chars();
    match chars.next() {
        Some(first) => first.to_ascii_uppercase().to_string() + chars.as_str(),
        None => String::new(),
    }
}

/// Go's canonical header name: `content-type` → `Content-Type`.
fn canonical(name: &str) -> String {
    name.split('-')
        .map(title_case)
        .collect::<Vec<_>>()
        .join("-")
}

/// `cronAdd` from inside a handler: the job runs the given source.
pub(crate) fn cron_add(state: &SharedState, scripts: &Arc<Scripts>, args: &Value) -> HostResult {
    let id = text(args, "id").to_owned();
    let expr = text(args, "expr").to_owned();
    let source = text(args, "source").to_owned();
    let job = cron_job(state, scripts, json!({ "source": source }), "cronSource");
    state
        .crons
        .add(&id, &expr, job)
        .map_err(|e| HostError::go(format!("failed to add new cron job: {e}")))?;
    Ok(Value::Null)
}

/// A cron job running a script entry; a throw is logged as PocketBase logs it.
pub(crate) fn cron_job(
    state: &SharedState,
    scripts: &Arc<Scripts>,
    arg: Value,
    entry: &'static str,
) -> crate::cron::Job {
    let state = Arc::downgrade(state);
    let scripts = Arc::downgrade(scripts);
    Arc::new(move || {
        let state = state.upgrade();
        let scripts = scripts.upgrade();
        let arg = arg.clone();
        Box::pin(async move {
            let (Some(state), Some(scripts)) = (state, scripts) else {
                return Ok(());
            };
            let host = Arc::new(AppHost::new(state, scripts.clone()));
            scripts
                .engine
                .call(entry, arg, host)
                .await
                .map(|_| ())
                .map_err(|e| format!("[cronAdd] failed to execute cron job: {e}"))
        })
    })
}

/// Registers the cron jobs hook files added at load.
pub fn register_crons(state: &SharedState, scripts: &Arc<Scripts>) {
    for cron in &scripts.registry().crons {
        let job = cron_job(state, scripts, json!({ "handler": cron.handler }), "cron");
        if let Err(error) = state.crons.add(&cron.id, &cron.expr, job) {
            tracing::error!(id = %cron.id, %error, "[cronAdd] failed to register cron job");
        }
    }
}

/// Runs the after-success hooks of writes made in the script transaction `id`, now committed.
pub(crate) async fn after_commit(_state: &SharedState, scripts: &Arc<Scripts>, id: u64) {
    let pending = lock(&scripts.after).remove(&id).unwrap_or_default();
    for job in pending {
        job.await;
    }
}

/// Drops the after-success hooks of a rolled-back script transaction.
pub(crate) async fn after_rollback(_state: &SharedState, scripts: &Arc<Scripts>, id: u64) {
    lock(&scripts.after).remove(&id);
}
