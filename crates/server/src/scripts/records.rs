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
pub(crate) async fn call(
    host: &AppHost,
    op: &str,
    args: Value,
    tx: Option<SharedTx>,
) -> HostResult {
    let state = &host.state;
    match op {
        "validateRecord" => {
            // Saved and rolled back: the same checks as a save, nothing kept.
            let wire = args.get("record").cloned().unwrap_or(Value::Null);
            let collection = collection_of(state, tx.as_ref(), text(&wire, "collectionId")).await?;
            let shared: SharedTx = match &tx {
                Some(tx) => tx.clone(),
                None => {
                    let open = state.store.begin(None).await.map_err(store_error)?;
                    Arc::new(tokio::sync::Mutex::new(Some(open)))
                }
            };
            let savepoint = tx.is_some();
            if savepoint && let Some(open) = shared.lock().await.as_mut() {
                open.savepoint().await.map_err(store_error)?;
            }
            let result = save_record(state, Some(&shared), &collection, &wire).await;
            let mut guard = shared.lock().await;
            if savepoint {
                if let Some(open) = guard.as_mut() {
                    let _ = open.rollback_to_savepoint().await;
                    let _ = open.release_savepoint().await;
                }
            } else if let Some(open) = guard.take() {
                let _ = open.rollback().await;
            }
            result.map(|_| Value::Null)
        }
        "saveRecord" => {
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
                        None => Err(domain::StoreError::Internal(
                            "the transaction has ended".into(),
                        )),
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
                    let open = guard
                        .as_mut()
                        .ok_or_else(|| HostError::go("the transaction has ended"))?;
                    open.truncate_collection(&collection.id)
                        .await
                        .map_err(store_error)?;
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
            let list = args
                .get("collections")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
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
        "recordAuthResponse" => {
            let wire = args.get("record").cloned().unwrap_or(Value::Null);
            let collection = collection_of(state, tx.as_ref(), text(&wire, "collectionId")).await?;
            let id = wire
                .get("data")
                .and_then(|d| d.get("id"))
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_owned();
            // The stored record under what the script holds (a record it has not saved
            // answers as it is).
            let stored = state
                .store
                .get_record(collection.clone(), &id, Vec::new())
                .await
                .map_err(store_error)?;
            let mut data = stored.map(|r| r.data).unwrap_or_default();
            if let Some(held) = wire.get("data").and_then(Value::as_object) {
                for (k, v) in held {
                    data.insert(k.clone(), v.clone());
                }
            }
            let meta = args.get("meta").filter(|m| !m.is_null()).cloned();
            let query: Vec<(String, String)> = args
                .get("query")
                .and_then(Value::as_object)
                .map(|q| {
                    q.iter()
                        .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_owned())))
                        .collect()
                })
                .unwrap_or_default();
            crate::auth::script_auth_response(
                state,
                &collection,
                Record::new(data),
                text(&args, "method").to_owned(),
                meta,
                &query,
            )
            .await
            .map_err(api_to_host)
        }
        _ => Err(HostError::go(format!(
            "{op} is not supported by Plinth's hooks yet"
        ))),
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
    let data = wire
        .get("data")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    let is_new = wire.get("isNew").and_then(Value::as_bool).unwrap_or(true);
    let mut change = SystemChange::new();
    for field in &collection.fields {
        let name = field.name.as_str();
        if matches!(
            field.kind,
            domain::FieldKind::Password(_) | domain::FieldKind::Autodate(_)
        ) {
            continue;
        }
        if name == "tokenKey"
            && data
                .get(name)
                .and_then(Value::as_str)
                .unwrap_or("")
                .is_empty()
        {
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
        let id = data
            .get("id")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned();
        system_update(system, collection, &id, change).await
    };
    result.map_err(store_error)
}

/// `$http.send`: one outbound request, answered with status, canonical headers, cookies and
/// the body (read up to [`HTTP_SEND_MAX_BYTES`]). A 4xx/5xx is an answer, not an error.
pub(crate) async fn http_send(args: Value) -> HostResult {
    let timeout = args
        .get("timeout")
        .and_then(Value::as_f64)
        .unwrap_or(120.0)
        .clamp(1.0, 3600.0);
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
            .filter_map(|p| {
                Some((
                    p.get(0)?.as_str()?.to_owned(),
                    p.get(1)?.as_str()?.to_owned(),
                ))
            })
            .collect();
        request = request.form(&pairs);
    } else if let Some(data) = args.get("data").filter(|d| !d.is_null()) {
        request = request.body(data.to_string());
    }
    let response = request
        .send()
        .await
        .map_err(|e| HostError::go(format!("{} \"{url}\": {e}", title_case(method.as_str()))))?;
    let status = response.status().as_u16();
    let mut headers: Map<String, Value> = Map::new();
    let mut cookies: Map<String, Value> = Map::new();
    for (name, value) in response.headers() {
        let value = value.to_str().unwrap_or("").to_owned();
        if name == reqwest::header::SET_COOKIE
            && let Some((cookie, rest)) = value.split_once('=')
        {
            let v = rest.split(';').next().unwrap_or("").to_owned();
            cookies.insert(
                cookie.to_owned(),
                json!({ "name": cookie, "value": v, "raw": value }),
            );
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
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| HostError::go(e.to_string()))?
    {
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
) -> crate::state::crons::Job {
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

/// Validation hooks, run on creates and updates (never on deletes, as in PocketBase).
const VALIDATE: &str = "onRecordValidate";

/// The model hooks of each action: around the write, then after commit or failure.
const CREATE_HOOKS: [&str; 4] = [
    "onRecordCreate",
    "onRecordCreateExecute",
    "onRecordAfterCreateSuccess",
    "onRecordAfterCreateError",
];
const UPDATE_HOOKS: [&str; 4] = [
    "onRecordUpdate",
    "onRecordUpdateExecute",
    "onRecordAfterUpdateSuccess",
    "onRecordAfterUpdateError",
];
const DELETE_HOOKS: [&str; 4] = [
    "onRecordDelete",
    "onRecordDeleteExecute",
    "onRecordAfterDeleteSuccess",
    "onRecordAfterDeleteError",
];

fn op_parts(op: &domain::WriteOp) -> (&Arc<Collection>, &'static [&'static str; 4]) {
    match op {
        domain::WriteOp::Create { collection, .. } => (collection, &CREATE_HOOKS),
        domain::WriteOp::Update { collection, .. } => (collection, &UPDATE_HOOKS),
        domain::WriteOp::Delete { collection, .. } => (collection, &DELETE_HOOKS),
    }
}

/// Whether any of `ops` has a model hook to run (else the plain write path runs).
pub(crate) fn model_hooks_apply(scripts: &Scripts, ops: &[domain::WriteOp]) -> bool {
    let registry = scripts.registry();
    ops.iter().any(|op| {
        let (collection, names) = op_parts(op);
        names
            .iter()
            .chain(std::iter::once(&VALIDATE))
            .any(|h| registry.applies(h, &collection.name, &collection.id))
    })
}

fn links_for(scripts: &Scripts, names: &[&str], collection: &Collection) -> Vec<Value> {
    names
        .iter()
        .flat_map(|h| {
            scripts
                .registry()
                .handlers_for(h, &collection.name, &collection.id)
        })
        .map(|h| json!({ "h": h }))
        .collect()
}

/// A failed invocation as the store error the write answers with.
pub(crate) fn hook_store_error(error: hooks::HookError) -> domain::StoreError {
    match error {
        hooks::HookError::Thrown {
            api: Some(api),
            text,
        } => {
            let api = *api;
            tracing::debug!(error = %text, "a model hook answered an API error");
            domain::StoreError::Hook {
                status: Some(api.status),
                message: api.message,
                data: api.data,
            }
        }
        other => domain::StoreError::Hook {
            status: None,
            message: other.to_string(),
            data: Value::Null,
        },
    }
}

/// The op that failed: its index, the error, its collection, its hooks and the record the
/// hooks saw.
type Failure = (
    usize,
    domain::StoreError,
    Arc<Collection>,
    &'static [&'static str; 4],
    Value,
);

/// Runs `ops` with their model hooks inside one transaction: `joined` when the write is part
/// of a script's transaction, else one of its own that commits here. Each op's
/// `onRecord{Create,Update,Delete}` and `…Execute` handlers wrap the write (what they change
/// on `e.record` is what is written); a throw rolls the whole transaction back. The
/// after-success hooks run once the transaction has committed (for a joined one, when the
/// script's transaction commits), the after-error hooks after a failure.
pub(crate) async fn commit_with_hooks(
    state: &SharedState,
    scripts: &Arc<Scripts>,
    ops: Vec<domain::WriteOp>,
    deadline: Option<std::time::Instant>,
    joined: Option<&SharedTx>,
) -> Result<Vec<domain::WriteResult>, domain::WriteError> {
    use domain::{StoreError, WriteError, WriteOp, WriteResult};
    let fail = |index: usize| move |error: StoreError| WriteError { index, error };
    let (shared, tx_id, own) = match joined {
        Some(tx) => {
            let id = scripts
                .id_of(tx)
                .unwrap_or_else(|| scripts.register_tx(tx.clone()));
            (tx.clone(), id, false)
        }
        None => {
            let open = state.store.begin(deadline).await.map_err(fail(0))?;
            let shared: SharedTx = Arc::new(tokio::sync::Mutex::new(Some(open)));
            let id = scripts.register_tx(shared.clone());
            (shared, id, true)
        }
    };
    let mut results: Vec<WriteResult> = Vec::new();
    let mut afters: Vec<(Arc<Collection>, &'static [&'static str; 4], Record)> = Vec::new();
    let mut failure: Option<Failure> = None;
    for (index, op) in ops.into_iter().enumerate() {
        let (collection, names) = {
            let (c, n) = op_parts(&op);
            (c.clone(), n)
        };
        // PocketBase's order: the action's hook, then validation, then the execute hook.
        let chain: &[&str] = if names[0] == "onRecordDelete" {
            &names[..2]
        } else {
            &[names[0], VALIDATE, names[1]]
        };
        let links = links_for(scripts, chain, &collection);
        // What the hooks see: the would-be row (create, update) or the stored one (delete).
        let (kind, start, original, guard, create_guard, apply) = match op {
            WriteOp::Create { data, guard, .. } => ("create", data, None, None, guard, None),
            WriteOp::Update {
                id,
                mut guard,
                apply,
                mut known,
                ..
            } => {
                // The row is read again here, under the rule's guard.
                domain::resolve_update_guard(&mut guard, known.as_mut());
                let current = read_in(&shared, &collection, &id, guard).await;
                match current {
                    Ok(Some(current)) => (
                        "update",
                        current.data.clone(),
                        Some(current),
                        None,
                        None,
                        Some(apply),
                    ),
                    Ok(None) => {
                        failure =
                            Some((index, StoreError::NotFound, collection, names, Value::Null));
                        break;
                    }
                    Err(error) => {
                        failure = Some((index, error, collection, names, Value::Null));
                        break;
                    }
                }
            }
            WriteOp::Delete { id, guard, .. } => {
                match read_in(&shared, &collection, &id, guard).await {
                    Ok(Some(current)) => (
                        "delete",
                        current.data.clone(),
                        Some(current),
                        None::<()>,
                        None,
                        None,
                    ),
                    Ok(None) => {
                        failure =
                            Some((index, StoreError::NotFound, collection, names, Value::Null));
                        break;
                    }
                    Err(error) => {
                        failure = Some((index, error, collection, names, Value::Null));
                        break;
                    }
                }
            }
        };
        let _ = guard;
        // An update's new values come from its change applied to the row as it is now.
        let start = match (kind, apply, &original) {
            ("update", Some(mut apply), Some(current)) => match apply(current) {
                Ok(data) => data,
                Err(error) => {
                    failure = Some((index, error, collection, names, Value::Null));
                    break;
                }
            },
            _ => start,
        };
        let wire_start = json!({
            "collectionId": collection.id,
            "data": Value::Object(start.clone()),
            "isNew": kind == "create",
        });
        let written: Arc<std::sync::Mutex<Option<Result<WriteResult, StoreError>>>> =
            Arc::default();
        let outcome = if links.is_empty() {
            let op = build_op(kind, &collection, start.clone(), create_guard.clone());
            let result = write_one(&shared, op).await;
            *lock(&written) = Some(result);
            Ok(())
        } else {
            let core = {
                let shared = shared.clone();
                let collection = collection.clone();
                let written = written.clone();
                let handle = tokio::runtime::Handle::current();
                let create_guard = std::sync::Mutex::new(create_guard.clone());
                let argon2 = state.config.argon2;
                Box::new(move |args: Value| -> HostResult {
                    let mut data = args
                        .get("record")
                        .and_then(|r| r.get("data"))
                        .and_then(Value::as_object)
                        .cloned()
                        .unwrap_or_default();
                    // A password the hook set (`setPassword`) is stored hashed.
                    if let Some(plain) = args
                        .get("record")
                        .and_then(|r| r.get("password"))
                        .and_then(Value::as_str)
                        .filter(|p| !p.is_empty())
                    {
                        let hash = handle
                            .block_on(crate::auth::password::hash_argon2(plain.to_owned(), argon2))
                            .map_err(|e| HostError::go(e.to_string()))?;
                        data.insert("password".into(), Value::String(hash));
                    }
                    let guard = lock(&create_guard).take();
                    let op = build_op(kind, &collection, data, guard);
                    let result = handle.block_on(write_one(&shared, op));
                    let answer = match &result {
                        Ok(done) => Ok(json!({
                            "record": { "data": Value::Object(done.record().data.clone()), "stored": true }
                        })),
                        Err(error) => Err(store_error(clone_store_error(error))),
                    };
                    *lock(&written) = Some(result);
                    answer
                }) as super::host::Core
            };
            let host = Arc::new(AppHost::new(state.clone(), scripts.clone()).with_core(core));
            scripts
                .engine
                .call_holding_writer(
                    "model",
                    json!({
                        "links": links,
                        "record": wire_start,
                        "original": original.as_ref().map(|r| Value::Object(r.data.clone())),
                        "core": true,
                        "tx": tx_id,
                    }),
                    host,
                )
                .await
                .map(|_| ())
                .map_err(hook_store_error)
        };
        let result = lock(&written).take();
        match (outcome, result) {
            (Err(error), _) | (Ok(()), Some(Err(error))) => {
                failure = Some((index, error, collection, names, wire_start));
                break;
            }
            (Ok(()), Some(Ok(done))) => {
                afters.push((collection, names, done.record().clone()));
                results.push(done);
            }
            // The chain ended without `e.next()`: nothing is written (PocketBase answers with
            // the unsaved record).
            (Ok(()), None) => {
                let record = Record::new(start);
                afters.push((collection, names, record.clone()));
                results.push(match kind {
                    "create" => WriteResult::Created(record),
                    "update" => WriteResult::Updated(record),
                    _ => WriteResult::Deleted {
                        record,
                        cascaded: Vec::new(),
                    },
                });
            }
        }
    }
    if let Some((index, error, collection, names, wire)) = failure {
        if own {
            scripts.forget_tx(tx_id);
            if let Some(open) = shared.lock().await.take() {
                let _ = open.rollback().await;
            }
            after_rollback(state, scripts, tx_id).await;
        }
        let links = links_for(scripts, &names[3..4], &collection);
        if !links.is_empty() && !wire.is_null() {
            let host = Arc::new(AppHost::new(state.clone(), scripts.clone()));
            let _ = scripts
                .engine
                .call(
                    "model",
                    json!({
                        "links": links,
                        "record": wire,
                        "core": false,
                        "error": error.to_string(),
                        "tx": if own { Value::Null } else { json!(tx_id) },
                    }),
                    host,
                )
                .await;
        }
        return Err(WriteError { index, error });
    }
    let mut jobs: Vec<super::AfterCommit> = Vec::new();
    for (collection, names, record) in afters {
        let links = links_for(scripts, &names[2..3], &collection);
        if links.is_empty() {
            continue;
        }
        let state = state.clone();
        let scripts = scripts.clone();
        jobs.push(Box::pin(async move {
            let host = Arc::new(AppHost::new(state, scripts.clone()));
            if let Err(error) = scripts
                .engine
                .call(
                    "model",
                    json!({ "links": links, "record": super::host::wire(&collection, &record), "core": false }),
                    host,
                )
                .await
            {
                tracing::warn!(%error, "an after-success hook failed");
            }
        }));
    }
    if own {
        scripts.forget_tx(tx_id);
        let open = shared.lock().await.take();
        match open {
            Some(open) => open.commit().await.map_err(fail(0))?,
            None => {
                return Err(fail(0)(StoreError::Internal(
                    "the transaction has ended".into(),
                )));
            }
        }
        for job in jobs {
            job.await;
        }
        // Saves a hook made inside this write joined its transaction; theirs run now too.
        after_commit(state, scripts, tx_id).await;
    } else {
        lock(&scripts.after).entry(tx_id).or_default().extend(jobs);
    }
    Ok(results)
}

fn clone_store_error(error: &domain::StoreError) -> domain::StoreError {
    use domain::StoreError;
    match error {
        StoreError::NotFound => StoreError::NotFound,
        StoreError::GuardRejected => StoreError::GuardRejected,
        StoreError::Validation(e) => StoreError::Validation(e.clone()),
        StoreError::RequiredReference => StoreError::RequiredReference,
        StoreError::Schema(s) => StoreError::Schema(s.clone()),
        StoreError::TimedOut => StoreError::TimedOut,
        StoreError::Internal(s) => StoreError::Internal(s.clone()),
        StoreError::Hook {
            status,
            message,
            data,
        } => StoreError::Hook {
            status: *status,
            message: message.clone(),
            data: data.clone(),
        },
    }
}

fn build_op(
    kind: &str,
    collection: &Arc<Collection>,
    data: Map<String, Value>,
    guard: Option<domain::SqlFragment>,
) -> domain::WriteOp {
    let id = data
        .get("id")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_owned();
    match kind {
        "create" => domain::WriteOp::Create {
            collection: collection.clone(),
            data,
            guard,
        },
        "update" => domain::WriteOp::Update {
            collection: collection.clone(),
            id,
            guard: None,
            apply: Box::new(move |_| Ok(data.clone())),
            known: None,
        },
        _ => domain::WriteOp::Delete {
            collection: collection.clone(),
            id,
            guard: None,
        },
    }
}

async fn read_in(
    shared: &SharedTx,
    collection: &Arc<Collection>,
    id: &str,
    guard: Option<domain::SqlFragment>,
) -> Result<Option<Record>, domain::StoreError> {
    let mut open = shared.lock().await;
    let open = open
        .as_mut()
        .ok_or_else(|| domain::StoreError::Internal("the transaction has ended".into()))?;
    open.get_record(collection.clone(), id, guard.into_iter().collect())
        .await
}

async fn write_one(
    shared: &SharedTx,
    op: domain::WriteOp,
) -> Result<domain::WriteResult, domain::StoreError> {
    let mut open = shared.lock().await;
    let open = open
        .as_mut()
        .ok_or_else(|| domain::StoreError::Internal("the transaction has ended".into()))?;
    let mut results = open.write(vec![op]).await.map_err(|e| e.error)?;
    results
        .pop()
        .ok_or_else(|| domain::StoreError::Internal("the store reported no result".into()))
}

/// What a record request hook chain ended with.
pub(crate) struct RequestOutcome {
    /// A response a script wrote itself (rendered as it is).
    pub written: Option<Value>,
    /// What the chain gave back (`record`, `records`, `result`, …).
    #[allow(dead_code)]
    pub answer: Value,
}

/// Runs the `hook` request chain of `collection` (`onRecordCreateRequest`, …) for the request
/// `parts`, with `fields` (`record`, `records`, `result`) in the event, and `core` behind
/// the last `e.next()`.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn request_chain(
    state: &SharedState,
    scripts: &Arc<Scripts>,
    hook: &str,
    collection: &Collection,
    parts: &axum::http::request::Parts,
    parsed_body: Option<Value>,
    fields: Value,
    core: super::host::Core,
) -> Result<RequestOutcome, crate::error::ApiError> {
    let links: Vec<Value> = scripts
        .registry()
        .handlers_for(hook, &collection.name, &collection.id)
        .into_iter()
        .map(|h| json!({ "h": h }))
        .collect();
    let mut request =
        super::layer::describe(state, parts, std::collections::HashMap::new(), None).await;
    if let Some(obj) = request.as_object_mut() {
        obj.insert("parsedBody".into(), parsed_body.unwrap_or(Value::Null));
    }
    let mut arg = json!({
        "links": links,
        "request": request,
        "collection": collection.to_api_json(),
    });
    if let (Some(arg), Some(fields)) = (arg.as_object_mut(), fields.as_object()) {
        for (k, v) in fields {
            arg.insert(k.clone(), v.clone());
        }
    }
    let host = Arc::new(AppHost::new(state.clone(), scripts.clone()).with_core(core));
    let answer = scripts
        .engine
        .call("recordRequest", arg, host)
        .await
        .map_err(|e| super::api_error(e, crate::error::ApiError::bad_request()))?;
    let written = answer.get("response").filter(|r| !r.is_null()).cloned();
    Ok(RequestOutcome { written, answer })
}

/// The fields of `after` that differ from `before` (what a hook changed on `e.record`).
pub(crate) fn changed_fields(before: &Map<String, Value>, after: &Value) -> Map<String, Value> {
    let Some(after) = after.get("data").and_then(Value::as_object) else {
        return Map::new();
    };
    after
        .iter()
        .filter(|(k, v)| before.get(*k) != Some(*v))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}
