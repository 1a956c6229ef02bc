//! The auth request hooks (`onRecordAuthRequest`, `onRecordAuthWithPasswordRequest`, …):
//! finding whether a handler applies to the collection (a registry lookup, so a server without
//! such hooks pays nothing more), and running a chain whose last `e.next()` is the rest of
//! the endpoint's work. The answer is what a script wrote, else the core's answer, else
//! PocketBase's empty 200 for a chain that ended without `e.next()`.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};

use axum::http::request::Parts;
use axum::response::Response;
use domain::{Collection, Record};
use serde_json::{Map, Value, json};

use crate::error::ApiResult;
use crate::scripts;
use crate::state::SharedState;
use crate::state::scripts::Scripts;

pub const AUTH: &str = "onRecordAuthRequest";
pub const WITH_PASSWORD: &str = "onRecordAuthWithPasswordRequest";
pub const REFRESH: &str = "onRecordAuthRefreshRequest";
pub const WITH_OTP: &str = "onRecordAuthWithOTPRequest";
pub const REQUEST_OTP: &str = "onRecordRequestOTPRequest";
pub const WITH_OAUTH2: &str = "onRecordAuthWithOAuth2Request";
pub const REQUEST_RESET: &str = "onRecordRequestPasswordResetRequest";
pub const CONFIRM_RESET: &str = "onRecordConfirmPasswordResetRequest";
pub const REQUEST_VERIFICATION: &str = "onRecordRequestVerificationRequest";
pub const CONFIRM_VERIFICATION: &str = "onRecordConfirmVerificationRequest";
pub const REQUEST_EMAIL_CHANGE: &str = "onRecordRequestEmailChangeRequest";
pub const CONFIRM_EMAIL_CHANGE: &str = "onRecordConfirmEmailChangeRequest";

/// The scripts, when `hook` has a handler for `collection`.
pub fn hooked(state: &SharedState, hook: &str, collection: &Collection) -> Option<Arc<Scripts>> {
    scripts::of(state)
        .filter(|s| s.registry().applies(hook, &collection.name, &collection.id))
        .cloned()
}

/// What the handlers left on the event when the last one called `e.next()`.
pub struct Left {
    /// `e.record` as exported (`{collectionId, data, …}`), or `None` when it is null.
    pub record: Option<Value>,
    /// The other event fields the chain was started with, as they are now.
    pub extra: Map<String, Value>,
}

impl Left {
    fn of(args: &Value) -> Left {
        Left {
            record: args.get("record").filter(|r| !r.is_null()).cloned(),
            extra: args
                .get("extra")
                .and_then(Value::as_object)
                .cloned()
                .unwrap_or_default(),
        }
    }

    /// A text field of the event (`""` when unset or not text).
    pub fn text(&self, key: &str) -> String {
        self.extra
            .get(key)
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned()
    }

    /// A field of the event, `None` when null.
    pub fn value(&self, key: &str) -> Option<Value> {
        self.extra.get(key).filter(|v| !v.is_null()).cloned()
    }

    /// The id of `e.record`, when there is one.
    pub fn record_id(&self) -> Option<String> {
        self.record
            .as_ref()
            .and_then(|r| r.get("data"))
            .and_then(|d| d.get("id"))
            .and_then(Value::as_str)
            .map(str::to_owned)
    }

    /// `e.record`'s values over `fallback`'s (only the collection's own keys).
    pub fn record_over(&self, fallback: &Record) -> Record {
        let Some(data) = self
            .record
            .as_ref()
            .and_then(|r| r.get("data"))
            .and_then(Value::as_object)
        else {
            return fallback.clone();
        };
        let mut merged = fallback.data.clone();
        for (k, v) in data {
            if merged.contains_key(k) {
                merged.insert(k.clone(), v.clone());
            }
        }
        Record::new(merged)
    }
}

/// The rest of an endpoint's work, run behind the last `e.next()`.
pub type CoreFuture = Pin<Box<dyn Future<Output = ApiResult<Response>> + Send>>;

/// One chain to run: the hook, its collection, the request, and the event's fields.
pub struct Chain<'a> {
    pub hook: &'static str,
    pub collection: &'a Collection,
    pub parts: &'a Parts,
    /// The request body as the handler read it (for `e.requestInfo().body`).
    pub body: Option<Value>,
    /// `e.record` (its wire form), `None` for null.
    pub record: Option<Value>,
    /// The other fields of the event (`token`, `meta`, `identity`, …), read back in [`Left`].
    pub extra: Map<String, Value>,
}

/// The wire form of a stored record as the hooks see it.
pub fn wire(collection: &Collection, record: &Record) -> Value {
    json!({
        "collectionId": collection.id,
        "data": Value::Object(record.data.clone()),
        "isNew": false,
    })
}

/// Runs `chain` with `core` behind its last `e.next()`. A core's error is thrown from
/// `e.next()` (an ApiError keeps its status); a throw that leaves the chain is answered as
/// PocketBase does (an ApiError as it is, anything else the generic 400).
pub async fn run<F>(
    state: &SharedState,
    scripts: &Arc<Scripts>,
    chain: Chain<'_>,
    core: F,
) -> ApiResult<Response>
where
    F: FnOnce(Left) -> CoreFuture + Send + 'static,
{
    let slot = Arc::new(Mutex::new(Some(core)));
    let answer: Arc<Mutex<Option<Response>>> = Arc::default();
    let host_core = {
        let answer = answer.clone();
        let handle = tokio::runtime::Handle::current();
        Box::new(move |args: Value| -> hooks::HostResult {
            let taken = scripts::lock(&slot).take();
            let Some(core) = taken else {
                return Ok(Value::Null);
            };
            match handle.block_on(core(Left::of(&args))) {
                Ok(response) => {
                    *scripts::lock(&answer) = Some(response);
                    Ok(Value::Null)
                }
                Err(error) => Err(hooks::HostError::Api {
                    status: error.status.as_u16(),
                    message: error.message,
                    data: error.data,
                }),
            }
        }) as scripts::host::Core
    };
    let extra_keys: Vec<&String> = chain.extra.keys().collect();
    let mut extra = chain.extra.clone();
    if chain.record.is_none() {
        // `e.record` is null (an unknown identity), not missing.
        extra.insert("record".into(), Value::Null);
    }
    let fields = json!({
        "record": chain.record,
        "extra": extra,
        "extraKeys": extra_keys,
    });
    let outcome = scripts::records::request_chain(
        state,
        scripts,
        chain.hook,
        chain.collection,
        chain.parts,
        chain.body,
        fields,
        host_core,
    )
    .await?;
    if let Some(written) = &outcome.written {
        let fields = super::query_pairs(&chain.parts.uri)
            .into_iter()
            .find(|(k, _)| k == "fields")
            .map(|(_, v)| v);
        return Ok(scripts::render(written, fields.as_deref(), false));
    }
    if let Some(response) = scripts::lock(&answer).take() {
        return Ok(response);
    }
    Ok(scripts::render(&Value::Null, None, false))
}

/// Boxes an async block as a [`CoreFuture`].
pub fn boxed<F>(future: F) -> CoreFuture
where
    F: Future<Output = ApiResult<Response>> + Send + 'static,
{
    Box::pin(future)
}

/// Runs `chain` around `core` when one of its handlers applies to the collection, else the
/// core alone (seeing the chain's own fields).
pub async fn around<F>(state: &SharedState, chain: Chain<'_>, core: F) -> ApiResult<Response>
where
    F: FnOnce(Left) -> CoreFuture + Send + 'static,
{
    match hooked(state, chain.hook, chain.collection) {
        Some(scripts) => run(state, &scripts, chain, core).await,
        None => {
            core(Left {
                record: chain.record,
                extra: chain.extra,
            })
            .await
        }
    }
}

/// The 204 the email flows answer.
pub fn no_content() -> ApiResult<Response> {
    Ok(axum::response::IntoResponse::into_response(
        axum::http::StatusCode::NO_CONTENT,
    ))
}
