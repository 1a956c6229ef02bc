//! Authentication endpoints for every auth collection (superusers included): password, OTP
//! and MFA sign-in, refresh, impersonation, auth methods, and the email flows (verification,
//! password reset, email change). Every successful sign-in goes through [`finish_auth`],
//! which applies the collection's `authRule` and the MFA step before issuing a token.

pub mod apple;
pub mod bookkeeping;
pub mod flows;
pub mod hooks;
pub mod oauth2;
pub mod oauth2_redirect;
pub mod otp;
pub mod password;
pub mod token;

use std::sync::Arc;

use crate::routing::{Routes, get, post};
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use domain::collection::AUTH_ORIGINS_ID;
use domain::{AuthContext, Collection, FieldError, Record, ValidationErrors};
use serde_json::{Value, json};

use crate::access::Decision;
use crate::error::{ApiError, ApiResult};
use crate::extract::{Auth, FormBody, Path, TextForm, form_text};
use crate::records::pipeline::{self, System, SystemChange};
use crate::response::{apply_fields, auth_response};
use crate::state::SharedState;
use crate::state::lockouts;

pub fn router() -> Routes {
    Routes::new()
        .route(
            "/api/collections/{collection}/auth-methods",
            get(auth_methods),
        )
        .route(
            "/api/collections/{collection}/auth-with-password",
            post(auth_with_password),
        )
        .route(
            "/api/collections/{collection}/auth-refresh",
            post(auth_refresh),
        )
        .route(
            "/api/collections/{collection}/impersonate/{id}",
            post(impersonate),
        )
        .merge(flows::router())
        .merge(otp::router())
        .merge(oauth2::router())
        .merge(oauth2_redirect::router())
}

/// The collection named in the path, whatever its type (`None`: there is none).
async fn find_collection(
    state: &SharedState,
    id_or_name: &str,
) -> ApiResult<Option<Arc<Collection>>> {
    let mut schema = state.schema();
    if schema.get(id_or_name).is_none() && state.store.shared() {
        // Another node may have created it a moment ago (see `records::common::target`).
        state.store.catch_up().await.map_err(|error| {
            ApiError::from_store(error, "Missing or invalid collection context.")
        })?;
        schema = state.schema();
    }
    Ok(schema.get(id_or_name).cloned())
}

fn unknown_collection() -> ApiError {
    ApiError::not_found_msg("Missing or invalid collection context.")
}

fn not_auth_collection() -> ApiError {
    ApiError::not_found_msg("Missing or invalid auth collection context.")
}

fn is_auth_collection(collection: &Collection) -> bool {
    collection.is_auth() && collection.auth.is_some()
}

/// The auth collection named in the path, or PocketBase's 404 (whose message tells an
/// unknown collection from one that is not an auth collection).
pub async fn auth_collection(state: &SharedState, id_or_name: &str) -> ApiResult<Arc<Collection>> {
    match find_collection(state, id_or_name).await? {
        Some(collection) if is_auth_collection(&collection) => Ok(collection),
        Some(_) => Err(not_auth_collection()),
        None => Err(unknown_collection()),
    }
}

/// The auth collection of an endpoint that a superuser calls on another collection
/// (impersonation): PocketBase names an unknown collection as it names a non-auth one.
pub async fn superuser_target_collection(
    state: &SharedState,
    id_or_name: &str,
) -> ApiResult<Arc<Collection>> {
    match find_collection(state, id_or_name).await? {
        Some(collection) if is_auth_collection(&collection) => Ok(collection),
        _ => Err(not_auth_collection()),
    }
}

/// The caller's own auth collection and record, for the endpoints that act on the caller
/// (`auth-refresh`, `request-email-change`), in PocketBase's order: the collection in the
/// path must exist (404, whatever the token), the caller must be signed in (401), and the
/// path must name the caller's own collection (403, which a base or view collection never
/// is).
pub async fn own_collection<'a>(
    state: &SharedState,
    id_or_name: &str,
    auth: &'a AuthContext,
) -> ApiResult<(Arc<Collection>, &'a Record, bool)> {
    let collection = find_collection(state, id_or_name)
        .await?
        .ok_or_else(unknown_collection)?;
    require_signed_in(auth)?;
    let (_, record, refreshable) = require_record_of(auth, &collection)?;
    if !is_auth_collection(&collection) {
        return Err(not_auth_collection());
    }
    Ok((collection, record, refreshable))
}

/// 401 for guests.
pub fn require_signed_in(auth: &AuthContext) -> ApiResult<()> {
    if matches!(auth, AuthContext::Guest) {
        return Err(ApiError::unauthorized(
            "The request requires valid record authorization token.",
        ));
    }
    Ok(())
}

/// The collection's auth options (present for every collection [`auth_collection`] returns).
pub fn options(collection: &Collection) -> ApiResult<&domain::collection::AuthOptions> {
    collection
        .auth
        .as_ref()
        .ok_or_else(|| ApiError::not_found_msg("Missing or invalid auth collection context."))
}

/// Longest identity, password, email or id the auth forms read, in characters (PocketBase's).
pub const MAX_CREDENTIAL_CHARS: usize = 255;

/// PocketBase's length error when `value` has more than `max` characters.
pub fn too_long(value: &str, max: usize) -> Option<FieldError> {
    (value.chars().count() > max).then(|| {
        FieldError::new(
            "validation_length_out_of_range",
            format!("The length must be between 1 and {max}."),
        )
        .with_param("max", max)
        .with_param("min", 1)
    })
}

/// PocketBase's 429, as its rate limiter answers it.
pub fn too_many_requests() -> ApiError {
    ApiError::new(StatusCode::TOO_MANY_REQUESTS, "Too Many Requests.")
}

/// 400 "An error occurred while validating the submitted data." with `errors`, if any.
pub fn validated(errors: ValidationErrors) -> ApiResult<()> {
    errors.into_result().map_err(|errors| {
        ApiError::validation(
            "An error occurred while validating the submitted data.",
            errors,
        )
    })
}

pub fn is_email_error() -> FieldError {
    FieldError::new("validation_is_email", "Must be a valid email address.")
}

/// The auth record whose `field` equals `value` exactly, if any. The store answers identity
/// lookups on a unique field ahead of guests' list queries, so heavy filters cannot hold
/// sign-ins up.
pub async fn find_by_field(
    state: &SharedState,
    collection: &Arc<Collection>,
    field: &str,
    value: &str,
) -> ApiResult<Option<Record>> {
    Ok(state
        .store
        .find_by_field(collection.clone(), field, value)
        .await?)
}

/// Saves `change` to the stored record `id` through the write pipeline's system path (as a
/// superuser would, without rules; applied to the row inside the write transaction).
pub(crate) async fn save_record(
    state: &SharedState,
    collection: &Arc<Collection>,
    id: &str,
    change: SystemChange,
) -> ApiResult<Record> {
    pipeline::system_update(System::of(state), collection, id, change)
        .await
        .map_err(ApiError::from)
}

/// A fresh random `tokenKey`, which revokes every token signed with the old one.
pub fn new_token_key() -> Value {
    Value::String(domain::ids::random_alnum(50))
}

/// Marks an unverified record verified because someone just proved its email address (an
/// OTP sent to it, or an OAuth2 provider vouching for it). With `reset_password`, the
/// password becomes a random one nobody knows and the `tokenKey` is rotated: whoever
/// registered the address before its owner proved it (account pre-hijacking) loses both the
/// password they chose and every session it opened, as PocketBase does on OTP verification.
/// The owner signs in with the proof they just gave, or sets a password through a reset.
/// The record's OAuth2 links go too (see [`forget_links_on_verification`]).
pub async fn verify_proven_email(
    state: &SharedState,
    collection: &Arc<Collection>,
    record: &Record,
    reset_password: bool,
) -> ApiResult<Record> {
    let hash = if reset_password {
        let random = domain::ids::random_alnum(40);
        Some(
            password::hash_argon2(random, state.config.argon2)
                .await
                .map_err(ApiError::internal)?,
        )
    } else {
        None
    };
    let had_links = forget_links_on_verification(state, collection, record).await?;
    let mut change = SystemChange::new().set("verified", true);
    if let Some(hash) = hash {
        change = change.set_raw("password", hash);
    }
    if reset_password || had_links {
        change = change.set("tokenKey", new_token_key());
    } else {
        change = change.keep_token_key();
    }
    save_record(state, collection, record.id(), change).await
}

/// Removes the OAuth2 links of a record about to become verified, as PocketBase does on every
/// unverified-to-verified upgrade: while the address was unproven, whoever held the record may
/// have linked their own provider account to it. Returns whether any link was removed (the
/// caller then rotates the token key, so sessions opened through a link end too).
pub async fn forget_links_on_verification(
    state: &SharedState,
    collection: &Arc<Collection>,
    record: &Record,
) -> ApiResult<bool> {
    if record.bool("verified") {
        return Ok(false);
    }
    let links = bookkeeping::find(
        state,
        domain::collection::EXTERNAL_AUTHS_ID,
        &[
            ("collectionRef", &collection.id),
            ("recordRef", record.id()),
        ],
        1000,
    )
    .await?;
    for link in &links {
        bookkeeping::delete(state, domain::collection::EXTERNAL_AUTHS_ID, link.id()).await?;
    }
    Ok(!links.is_empty())
}

/// What checking a sign-in rule against a record found. `Undecided` (the stored rule no
/// longer compiles, or its SQL did not finish within the query timeout) is neither answer:
/// each caller resolves it to its own safe side, as a slow check must never be the way
/// around a rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RuleCheck {
    Match,
    NoMatch,
    Undecided,
}

/// Checks `record` against `rule` (the collection's `authRule` or MFA rule, compiled once per
/// schema snapshot; `None` when the stored text does not compile), evaluated with the record
/// itself as `@request.auth`: `""` always matches, `null` never, an expression when the record
/// passes it (in memory when the rule is row-local, else in SQL).
async fn record_matches(
    state: &SharedState,
    collection: &Arc<Collection>,
    record: &Record,
    rule: Option<&rules::Rule>,
) -> ApiResult<RuleCheck> {
    let Some(rule) = rule else {
        return Ok(RuleCheck::Undecided);
    };
    let ctx = rules::RequestContext::new(AuthContext::Record {
        collection: collection.clone(),
        record: Arc::new(record.clone()),
        refreshable: true,
    })
    .with_method("POST");
    let question = crate::access::Question {
        rule,
        filter: None,
        collection,
        record,
        stored: true,
    };
    let sql = crate::access::SqlCheck::Strict;
    Ok(
        match crate::access::decide(state.store.as_ref(), question, &ctx, sql).await? {
            Decision::Allow(_) => RuleCheck::Match,
            Decision::Deny => RuleCheck::NoMatch,
            Decision::Undecided | Decision::NeedsSql(_) => {
                tracing::warn!(collection = %collection.name, "sign-in rule check timed out");
                RuleCheck::Undecided
            }
        },
    )
}

/// Whether `record` passes the collection's `authRule`. Fails closed: a rule check that could
/// not be decided refuses the sign-in.
async fn auth_rule_allows(
    state: &SharedState,
    collection: &Arc<Collection>,
    record: &Record,
) -> ApiResult<bool> {
    let rules = state.sign_in_rules(collection);
    Ok(record_matches(state, collection, record, rules.auth.as_ref()).await? == RuleCheck::Match)
}

/// Whether MFA applies to `record`: off for the collection is `NoMatch`, an empty rule
/// (everyone) `Match`, else the rule's check.
pub(crate) async fn mfa_check(
    state: &SharedState,
    collection: &Arc<Collection>,
    record: &Record,
) -> ApiResult<RuleCheck> {
    let options = options(collection)?;
    if !options.mfa.enabled {
        return Ok(RuleCheck::NoMatch);
    }
    if options.mfa.rule.trim().is_empty() {
        return Ok(RuleCheck::Match);
    }
    let rules = state.sign_in_rules(collection);
    record_matches(state, collection, record, rules.mfa.as_ref()).await
}

/// Whether signing in as `record` needs a second factor: MFA is on for the collection and
/// its rule (empty: everyone) matches the record. Fails closed: a rule check that could not be
/// decided (a heavy rule past the query timeout, say) demands the second factor, so flooding
/// the query lane cannot skip MFA.
pub async fn mfa_required(
    state: &SharedState,
    collection: &Arc<Collection>,
    record: &Record,
) -> ApiResult<bool> {
    Ok(mfa_check(state, collection, record).await? != RuleCheck::NoMatch)
}

/// Who is signing in from where: the client IP (through the trusted proxy settings) and the
/// User-Agent, used for the new-location alert.
#[derive(Debug, Clone, Default)]
pub struct ClientInfo {
    pub ip: String,
    pub user_agent: String,
}

impl axum::extract::FromRequestParts<SharedState> for ClientInfo {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &SharedState,
    ) -> Result<Self, Self::Rejection> {
        let peer = crate::peer::of(&parts.extensions);
        let ip = match crate::settings::current(state).await {
            Ok(settings) => crate::settings::rate_limit::client_ip(
                &parts.headers,
                peer,
                &settings.trusted_proxy,
            ),
            Err(_) => peer.map(|p| p.ip().to_string()),
        }
        .unwrap_or_default();
        let user_agent = parts
            .headers
            .get(axum::http::header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned();
        Ok(ClientInfo { ip, user_agent })
    }
}

/// A sign-in origin as stored: a SHA-256 of the IP and User-Agent, so the table holds no
/// addresses in the clear.
fn fingerprint(client: &ClientInfo) -> String {
    let text = format!("{}|{}", client.ip, client.user_agent);
    aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, text.as_bytes())
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// How many sign-in origins are remembered per record.
const MAX_ORIGINS: usize = 5;

/// Remembers where `record` signed in from and, when `authAlert` is on and this origin is new
/// (but not the very first), mails the alert template. Failures only log: the sign-in stands.
async fn note_origin(
    state: &SharedState,
    collection: &Collection,
    record: &Record,
    client: &ClientInfo,
) {
    let Some(options) = collection.auth.as_ref() else {
        return;
    };
    if !options.auth_alert.enabled || record.text("email").is_empty() {
        return;
    }
    let fingerprint = fingerprint(client);
    let rows = match bookkeeping::find(
        state,
        AUTH_ORIGINS_ID,
        &[
            ("collectionRef", &collection.id),
            ("recordRef", record.id()),
        ],
        100,
    )
    .await
    {
        Ok(rows) => rows,
        Err(error) => {
            tracing::warn!(message = %error.message, "cannot read auth origins");
            return;
        }
    };
    if rows
        .iter()
        .any(|row| row.text("fingerprint") == fingerprint)
    {
        return;
    }
    let first = rows.is_empty();
    let inserted = bookkeeping::insert(
        state,
        AUTH_ORIGINS_ID,
        None,
        vec![
            ("collectionRef", Value::String(collection.id.clone())),
            ("recordRef", Value::String(record.id().to_owned())),
            ("fingerprint", Value::String(fingerprint)),
        ],
    )
    .await;
    if let Err(error) = inserted {
        // A concurrent sign-in from the same new origin stored it first (the fingerprint is
        // unique per record): that one sends the alert.
        if error.status == axum::http::StatusCode::BAD_REQUEST {
            tracing::debug!(message = %error.message, "auth origin stored by another sign-in");
        } else {
            tracing::warn!(message = %error.message, "cannot store auth origin");
        }
        return;
    }
    // Keep the newest few: the rows come oldest first.
    let excess = (rows.len() + 1).saturating_sub(MAX_ORIGINS);
    for row in rows.iter().take(excess) {
        if let Err(error) = bookkeeping::delete(state, AUTH_ORIGINS_ID, row.id()).await {
            tracing::warn!(message = %error.message, "cannot prune auth origins");
        }
    }
    if first {
        return;
    }
    let Ok(settings) = crate::settings::current(state).await else {
        return;
    };
    let info = format!("{} {}", client.ip, client.user_agent);
    let rendered = crate::mail::render(
        &options.auth_alert.email_template,
        &settings,
        Some(record),
        &[("ALERT_INFO", info.trim())],
    );
    crate::mail::send_in_background(state, record.text("email").to_owned(), rendered);
}

/// The `expand` and `fields` query parameters of an auth response.
#[derive(Debug, Clone, Default)]
pub struct ResponseParams {
    pub expand: String,
    pub fields: String,
}

impl ResponseParams {
    pub fn from_uri(uri: &axum::http::Uri) -> Self {
        let pairs = query_pairs(uri);
        let first = |key: &str| {
            pairs
                .iter()
                .find(|(k, _)| k == key)
                .map(|(_, v)| v.clone())
                .unwrap_or_default()
        };
        ResponseParams {
            expand: first("expand"),
            fields: first("fields"),
        }
    }
}

/// The `{record, token}` body: `expand` resolved on the record as `viewer` sees it, then
/// `fields` applied.
pub async fn respond(
    state: &SharedState,
    collection: &Arc<Collection>,
    record: &Record,
    token: String,
    viewer: &AuthContext,
    params: &ResponseParams,
) -> ApiResult<Value> {
    let mut response = auth_response(collection, record, token);
    if !params.expand.trim().is_empty() {
        let mut outputs = vec![response["record"].take()];
        crate::records::expand::expand_records(
            state,
            viewer,
            collection,
            std::slice::from_ref(record),
            &mut outputs,
            Some(&params.expand),
        )
        .await?;
        response["record"] = outputs.pop().unwrap_or(Value::Null);
    }
    apply_fields(&mut response, &params.fields)?;
    Ok(response)
}

/// The record as the viewer of its own auth response.
fn self_viewer(collection: &Arc<Collection>, record: &Record) -> AuthContext {
    AuthContext::Record {
        collection: collection.clone(),
        record: Arc::new(record.clone()),
        refreshable: true,
    }
}

/// The sign-in methods MFA distinguishes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthMethod {
    Password,
    Otp,
    OAuth2,
}

impl AuthMethod {
    pub fn as_str(self) -> &'static str {
        match self {
            AuthMethod::Password => "password",
            AuthMethod::Otp => "otp",
            AuthMethod::OAuth2 => "oauth2",
        }
    }
}

/// How a sign-in happened and what its response needs.
pub struct SignIn<'a> {
    pub method: AuthMethod,
    /// The MFA session a second factor completes (`""` on a first factor; `None` when the
    /// request's `mfaId` could not be read as text).
    pub mfa_id: Option<String>,
    pub params: ResponseParams,
    pub client: &'a ClientInfo,
    /// OAuth2's provider data, added to the response as `meta`.
    pub meta: Option<Value>,
    /// The request's head, for `onRecordAuthRequest` (`None`: no hook runs).
    pub request: Option<&'a axum::http::request::Parts>,
}

/// The end of every sign-in: the `authRule`, then MFA (a 401 with an `mfaId` on the first
/// factor; the session consumed on a different second one), then the token and response.
pub async fn finish_auth(
    state: &SharedState,
    collection: &Arc<Collection>,
    record: Record,
    sign_in: SignIn<'_>,
) -> ApiResult<Response> {
    let SignIn {
        method,
        mfa_id,
        params,
        client,
        meta,
        request,
    } = sign_in;
    let params = &params;
    let options = options(collection)?;
    if !auth_rule_allows(state, collection, &record).await? {
        return Err(ApiError::forbidden(
            "The request doesn't satisfy the collection requirements to authenticate.",
        ));
    }
    if options.mfa.enabled {
        let required = mfa_required(state, collection, &record).await?;
        if required {
            let Some(mfa_id) = mfa_id else {
                return Err(ApiError::bad_request_msg("Failed to read MFA Id."));
            };
            if mfa_id.is_empty() {
                let id = otp::create_mfa(state, collection, &record, method).await?;
                return Ok((StatusCode::UNAUTHORIZED, Json(json!({"mfaId": id}))).into_response());
            }
            otp::consume_mfa(state, collection, &record, method, &mfa_id).await?;
        }
    }
    let token = token::auth_token(collection, &record).map_err(ApiError::internal)?;
    let answer = AuthAnswer {
        token,
        method: method.as_str().to_owned(),
        meta,
        params: params.clone(),
        viewer: None,
        client: Some(client.clone()),
    };
    auth_answer(state, collection, record, answer, request).await
}

/// What an auth response is made of besides its record.
pub struct AuthAnswer {
    pub token: String,
    /// `password`, `otp`, `oauth2`, `""` for a refresh, or what `$apis.recordAuthResponse`
    /// was given.
    pub method: String,
    pub meta: Option<Value>,
    pub params: ResponseParams,
    /// Whose view of the record is answered (`None`: the record's own).
    pub viewer: Option<AuthContext>,
    /// Where a sign-in came from, for the new-location alert (`None`: no alert).
    pub client: Option<ClientInfo>,
}

/// The `{token, record, meta?}` answer, through `onRecordAuthRequest` when a handler applies
/// and the request is known: the handlers may change `e.token`, `e.record` and `e.meta`.
pub async fn auth_answer(
    state: &SharedState,
    collection: &Arc<Collection>,
    record: Record,
    answer: AuthAnswer,
    request: Option<&axum::http::request::Parts>,
) -> ApiResult<Response> {
    let scripts = request.and_then(|_| hooks::hooked(state, hooks::AUTH, collection));
    let (Some(scripts), Some(parts)) = (scripts, request) else {
        return plain_auth_answer(state, collection, &record, answer).await;
    };
    let mut extra = serde_json::Map::new();
    extra.insert("token".into(), Value::String(answer.token.clone()));
    extra.insert("meta".into(), answer.meta.clone().unwrap_or(Value::Null));
    extra.insert("authMethod".into(), Value::String(answer.method.clone()));
    let chain = hooks::Chain {
        hook: hooks::AUTH,
        collection,
        parts,
        body: None,
        record: Some(hooks::wire(collection, &record)),
        extra,
    };
    let core = {
        let state = state.clone();
        let collection = collection.clone();
        move |left: hooks::Left| {
            hooks::boxed(async move {
                let record = left.record_over(&record);
                let answer = AuthAnswer {
                    token: left.text("token"),
                    meta: left.value("meta"),
                    ..answer
                };
                plain_auth_answer(&state, &collection, &record, answer).await
            })
        }
    };
    hooks::run(state, &scripts, chain, core).await
}

/// `$apis.recordAuthResponse(e, record, method, meta)`: the auth answer for `record` as the
/// sign-in endpoints give it (the `authRule` checked first), through `onRecordAuthRequest`.
/// `query` holds the calling request's `expand` and `fields`. The answer comes back as
/// `{status, type, body}` (an empty body: nothing was written).
pub async fn script_auth_response(
    state: &SharedState,
    collection: &Arc<Collection>,
    record: Record,
    method: String,
    meta: Option<Value>,
    query: &[(String, String)],
) -> ApiResult<Value> {
    if !collection.is_auth() {
        return Err(ApiError::bad_request_msg(
            "The record is not from an auth collection.",
        ));
    }
    if !auth_rule_allows(state, collection, &record).await? {
        return Err(ApiError::forbidden(
            "The request doesn't satisfy the collection requirements to authenticate.",
        ));
    }
    let token = token::auth_token(collection, &record).map_err(ApiError::internal)?;
    let uri: axum::http::Uri = format!(
        "/?{}",
        serde_urlencoded::to_string(query).unwrap_or_default()
    )
    .parse()
    .unwrap_or_default();
    let params = ResponseParams::from_uri(&uri);
    let (parts, ()) = axum::http::Request::builder()
        .method(axum::http::Method::POST)
        .uri(uri)
        .body(())
        .unwrap_or_else(|_| axum::http::Request::new(()))
        .into_parts();
    let answer = AuthAnswer {
        token,
        method,
        meta,
        params,
        viewer: None,
        client: None,
    };
    let response = auth_answer(state, collection, record, answer, Some(&parts)).await?;
    let status = response.status().as_u16();
    let kind = response
        .headers()
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let bytes = axum::body::to_bytes(response.into_body(), 64 * 1024 * 1024)
        .await
        .map_err(|e| ApiError::internal(e.to_string()))?;
    Ok(json!({
        "status": status,
        "type": kind,
        "body": String::from_utf8_lossy(&bytes),
    }))
}

/// The auth answer itself: the record as its viewer sees it (`expand`, `fields`), the token,
/// `meta` when there is one; then the new-location alert for a sign-in.
async fn plain_auth_answer(
    state: &SharedState,
    collection: &Arc<Collection>,
    record: &Record,
    answer: AuthAnswer,
) -> ApiResult<Response> {
    let params = &answer.params;
    let viewer = answer
        .viewer
        .unwrap_or_else(|| self_viewer(collection, record));
    let mut response = respond(state, collection, record, answer.token, &viewer, params).await?;
    if let (Some(meta), Some(object)) = (answer.meta, response.as_object_mut()) {
        object.insert("meta".into(), meta);
        // `fields` may name `meta` too; apply it again now that the key exists.
        apply_fields(&mut response, &params.fields)?;
    }
    if let Some(client) = &answer.client {
        note_origin(state, collection, record, client).await;
    }
    Ok(Json(response).into_response())
}

/// The query string as pairs (malformed input reads as none).
pub fn query_pairs(uri: &axum::http::Uri) -> Vec<(String, String)> {
    serde_urlencoded::from_str(uri.query().unwrap_or("")).unwrap_or_default()
}

/// `mfaId` from the query string (as the SDK may send it) or else the body: `""` when
/// neither has one, `None` when the body's is not a string (PocketBase reads it apart from
/// the sign-in form, so such a value only matters once MFA asks for it; see [`finish_auth`]).
pub fn mfa_id(body: &serde_json::Map<String, Value>, query: &[(String, String)]) -> Option<String> {
    let from_query = query
        .iter()
        .find(|(k, _)| k == "mfaId")
        .map(|(_, v)| v.as_str())
        .unwrap_or_default();
    if !from_query.is_empty() {
        return Some(from_query.to_owned());
    }
    match body.iter().find(|(k, _)| k.eq_ignore_ascii_case("mfaId")) {
        None | Some((_, Value::Null)) => Some(String::new()),
        Some((_, Value::String(id))) => Some(id.clone()),
        Some(_) => None,
    }
}

async fn auth_methods(
    State(state): State<SharedState>,
    Path(collection): Path<String>,
    crate::extract::FieldsParam(fields_param): crate::extract::FieldsParam,
) -> ApiResult<Json<Value>> {
    let collection = auth_collection(&state, &collection).await?;
    let options = options(&collection)?;
    let identity_fields = &options.password_auth.identity_fields;
    let enabled_duration = |enabled: bool, duration: u64| if enabled { duration } else { 0 };
    let providers: Vec<Value> = if options.oauth2.enabled {
        oauth2::providers(&collection)
            .iter()
            .map(oauth2::method_entry)
            .collect()
    } else {
        Vec::new()
    };
    let mut response = json!({
        "password": {
            // PocketBase lists no identity fields while password sign-in is off.
            "identityFields": if options.password_auth.enabled { identity_fields.clone() } else { Vec::new() },
            "enabled": options.password_auth.enabled,
        },
        "oauth2": {"providers": providers, "enabled": options.oauth2.enabled},
        "mfa": {
            "enabled": options.mfa.enabled,
            "duration": enabled_duration(options.mfa.enabled, options.mfa.duration),
        },
        "otp": {
            "enabled": options.otp.enabled,
            "duration": enabled_duration(options.otp.enabled, options.otp.duration),
        },
        "authProviders": providers,
        "usernamePassword": options.password_auth.enabled
            && identity_fields.iter().any(|f| f == "username"),
        "emailPassword": options.password_auth.enabled
            && identity_fields.iter().any(|f| f == "email"),
    });
    apply_fields(&mut response, &fields_param)?;
    Ok(Json(response))
}

async fn auth_with_password(
    State(state): State<SharedState>,
    Path(collection): Path<String>,
    parts: axum::http::request::Parts,
    client: ClientInfo,
    TextForm(body): TextForm,
) -> ApiResult<Response> {
    let uri = parts.uri.clone();
    let query = query_pairs(&uri);
    let params = ResponseParams::from_uri(&uri);
    let collection = auth_collection(&state, &collection).await?;
    let options = options(&collection)?;
    if !options.password_auth.enabled {
        return Err(ApiError::forbidden(
            "The collection is not configured to allow password authentication.",
        ));
    }
    let identity = form_text(&body, "identity")?;
    let password = form_text(&body, "password")?;
    let identity_field = form_text(&body, "identityField")?;
    let mut errors = ValidationErrors::new();
    for (key, value) in [("identity", &identity), ("password", &password)] {
        if value.is_empty() {
            errors.add(key, FieldError::required());
        } else if let Some(error) = too_long(value, MAX_CREDENTIAL_CHARS) {
            errors.add(key, error);
        }
    }
    if !identity_field.is_empty()
        && !options
            .password_auth
            .identity_fields
            .contains(&identity_field)
    {
        errors.add("identityField", FieldError::invalid_value());
    }
    validated(errors)?;
    // Reserved before the slow check, so a concurrent burst cannot all pass it at once.
    let lockout_key = lockouts::key(&collection.id, &identity);
    let Some(attempt) =
        state
            .login_lockouts
            .begin(&lockout_key, &client.ip, std::time::Instant::now())
    else {
        return Err(too_many_requests());
    };
    let fields: Vec<String> = if identity_field.is_empty() {
        options.password_auth.identity_fields.clone()
    } else {
        vec![identity_field]
    };
    let mut found = None;
    for field in &fields {
        if let Some(record) = find_by_field(&state, &collection, field, &identity).await? {
            found = Some(record);
            break;
        }
    }
    if let Some(scripts) = hooks::hooked(&state, hooks::WITH_PASSWORD, &collection) {
        let login = HookedLogin {
            collection,
            found,
            identity,
            identity_field: form_text(&body, "identityField")?,
            password,
            body,
            client,
            parts,
        };
        return password_with_hook(&state, &scripts, login, attempt).await;
    }
    let failed = |attempt: lockouts::Attempt<'_>| {
        attempt.failed(std::time::Instant::now());
        ApiError::bad_request_msg("Failed to authenticate.")
    };
    let Some(record) = found else {
        // Spend the same time as a real check so that unknown identities are not revealed.
        password::verify(password, dummy_hash(&state).await).await;
        return Err(failed(attempt));
    };
    let stored = record.text("password").to_owned();
    if !password::verify(password.clone(), stored.clone()).await {
        return Err(failed(attempt));
    }
    attempt.succeeded();
    let record = if password::needs_rehash(&stored) {
        rehash(&state, &collection, record, password).await
    } else {
        record
    };
    let mfa_id = mfa_id(&body, &query);
    let sign_in = SignIn {
        method: AuthMethod::Password,
        mfa_id,
        params,
        client: &client,
        meta: None,
        request: None,
    };
    finish_auth(&state, &collection, record, sign_in).await
}

/// A password sign-in whose collection has `onRecordAuthWithPasswordRequest` handlers.
struct HookedLogin {
    collection: Arc<Collection>,
    found: Option<Record>,
    identity: String,
    identity_field: String,
    password: String,
    body: serde_json::Map<String, Value>,
    client: ClientInfo,
    parts: axum::http::request::Parts,
}

/// The password check and the rest of the sign-in behind `onRecordAuthWithPasswordRequest`:
/// the handlers see `e.identity`, `e.identityField`, `e.password` and the found `e.record`
/// (null for an unknown identity), and may change them. The lockout counts what the check
/// decided; a chain that never reached it releases the attempt uncounted.
async fn password_with_hook(
    state: &SharedState,
    scripts: &Arc<crate::state::scripts::Scripts>,
    login: HookedLogin,
    attempt: lockouts::Attempt<'_>,
) -> ApiResult<Response> {
    let verdict: Arc<std::sync::Mutex<Option<bool>>> = Arc::default();
    let mut extra = serde_json::Map::new();
    extra.insert("identity".into(), Value::String(login.identity.clone()));
    extra.insert(
        "identityField".into(),
        Value::String(login.identity_field.clone()),
    );
    extra.insert("password".into(), Value::String(login.password.clone()));
    let record = login
        .found
        .as_ref()
        .map(|r| hooks::wire(&login.collection, r));
    let chain = hooks::Chain {
        hook: hooks::WITH_PASSWORD,
        collection: &login.collection,
        parts: &login.parts,
        body: Some(Value::Object(login.body.clone())),
        record,
        extra,
    };
    let core = {
        let state = state.clone();
        let collection = login.collection.clone();
        let found = login.found.clone();
        let body = login.body.clone();
        let client = login.client.clone();
        let parts = login.parts.clone();
        let verdict = verdict.clone();
        move |left: hooks::Left| {
            hooks::boxed(async move {
                let record = match (left.record_id(), &found) {
                    (Some(id), Some(found)) if id == found.id() => Some(left.record_over(found)),
                    (Some(id), _) => state
                        .store
                        .get_record(collection.clone(), &id, Vec::new())
                        .await?
                        .map(|r| left.record_over(&r)),
                    (None, _) => None,
                };
                let password = left.text("password");
                let failed = || ApiError::bad_request_msg("Failed to authenticate.");
                let Some(record) = record else {
                    password::verify(password, dummy_hash(&state).await).await;
                    *crate::scripts::lock(&verdict) = Some(false);
                    return Err(failed());
                };
                let stored = record.text("password").to_owned();
                if !password::verify(password.clone(), stored.clone()).await {
                    *crate::scripts::lock(&verdict) = Some(false);
                    return Err(failed());
                }
                *crate::scripts::lock(&verdict) = Some(true);
                let record = if password::needs_rehash(&stored) {
                    rehash(&state, &collection, record, password).await
                } else {
                    record
                };
                let query = query_pairs(&parts.uri);
                let sign_in = SignIn {
                    method: AuthMethod::Password,
                    mfa_id: mfa_id(&body, &query),
                    params: ResponseParams::from_uri(&parts.uri),
                    client: &client,
                    meta: None,
                    request: Some(&parts),
                };
                finish_auth(&state, &collection, record, sign_in).await
            })
        }
    };
    let result = hooks::run(state, scripts, chain, core).await;
    let decided = crate::scripts::lock(&verdict).take();
    match decided {
        Some(true) => attempt.succeeded(),
        Some(false) => attempt.failed(std::time::Instant::now()),
        None => drop(attempt),
    }
    result
}

/// Replaces a verified bcrypt hash by an argon2id one. The token key is kept (nothing about
/// the password changed); a failure only logs, the login itself has succeeded.
async fn rehash(
    state: &SharedState,
    collection: &Arc<Collection>,
    record: Record,
    plain: String,
) -> Record {
    let hash = match password::hash_argon2(plain, state.config.argon2).await {
        Ok(hash) => hash,
        Err(error) => {
            tracing::warn!(%error, "rehash skipped");
            return record;
        }
    };
    let id = record.id().to_owned();
    let change = SystemChange::new()
        .set_raw("password", hash)
        .keep_autodates()
        .keep_token_key();
    match save_record(state, collection, &id, change).await {
        Ok(updated) => updated,
        Err(error) => {
            tracing::warn!(message = %error.message, "rehash not stored");
            record
        }
    }
}

async fn auth_refresh(
    State(state): State<SharedState>,
    Path(collection): Path<String>,
    Auth(auth): Auth,
    parts: axum::http::request::Parts,
) -> ApiResult<Response> {
    let (collection, record, refreshable) = own_collection(&state, &collection, &auth).await?;
    let record = record.clone();
    // Non-refreshable (impersonation) tokens come back unchanged.
    let presented = crate::extract::header_token(&parts.headers)
        .unwrap_or_default()
        .to_owned();
    let params = ResponseParams::from_uri(&parts.uri);
    let Some(scripts) = hooks::hooked(&state, hooks::REFRESH, &collection) else {
        let token = if refreshable {
            token::auth_token(&collection, &record).map_err(ApiError::internal)?
        } else {
            presented
        };
        let answer = AuthAnswer {
            token,
            method: String::new(),
            meta: None,
            params,
            viewer: Some(auth),
            client: None,
        };
        return auth_answer(&state, &collection, record, answer, Some(&parts)).await;
    };
    // `onRecordAuthRefreshRequest` sees the caller's record; the new token is made from what
    // the handlers left on it.
    let chain = hooks::Chain {
        hook: hooks::REFRESH,
        collection: &collection,
        parts: &parts,
        body: None,
        record: Some(hooks::wire(&collection, &record)),
        extra: serde_json::Map::new(),
    };
    let core = {
        let state = state.clone();
        let collection = collection.clone();
        let parts = parts.clone();
        move |left: hooks::Left| {
            hooks::boxed(async move {
                let record = left.record_over(&record);
                let token = if refreshable {
                    token::auth_token(&collection, &record).map_err(ApiError::internal)?
                } else {
                    presented
                };
                let answer = AuthAnswer {
                    token,
                    method: String::new(),
                    meta: None,
                    params,
                    viewer: Some(auth),
                    client: None,
                };
                auth_answer(&state, &collection, record, answer, Some(&parts)).await
            })
        }
    };
    hooks::run(&state, &scripts, chain, core).await
}

/// The caller's record when it belongs to `collection`: 401 for guests, 403 (naming the
/// caller's own collection, as PocketBase does) for another collection's record.
pub fn require_record_of<'a>(
    auth: &'a AuthContext,
    collection: &Collection,
) -> ApiResult<(&'a Arc<Collection>, &'a Record, bool)> {
    let AuthContext::Record {
        collection: own,
        record,
        refreshable,
    } = auth
    else {
        return Err(ApiError::unauthorized(
            "The request requires valid record authorization token.",
        ));
    };
    if own.id != collection.id {
        return Err(ApiError::forbidden(&format!(
            "The request requires auth record from {} collection.",
            own.name
        )));
    }
    Ok((own, record, *refreshable))
}

async fn impersonate(
    State(state): State<SharedState>,
    Path((collection, id)): Path<(String, String)>,
    crate::extract::Superuser(auth): crate::extract::Superuser,
    uri: axum::http::Uri,
    FormBody(body): FormBody,
) -> ApiResult<Json<Value>> {
    let collection = superuser_target_collection(&state, &collection).await?;
    // PocketBase's order: a body that does not load, then the record, then the duration's
    // bound (observed on 0.40.6: a negative duration for a missing record is the 404).
    let duration: i64 = match body
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("duration"))
    {
        None | Some((_, Value::Null)) => 0,
        Some((_, Value::Number(n))) => n.as_i64().ok_or_else(|| {
            ApiError::bad_request_msg("An error occurred while loading the submitted data.")
        })?,
        Some(_) => {
            return Err(ApiError::bad_request_msg(
                "An error occurred while loading the submitted data.",
            ));
        }
    };
    let Some(record) = state
        .store
        .get_record(collection.clone(), &id, Vec::new())
        .await?
    else {
        return Err(ApiError::not_found());
    };
    let Ok(duration) = u64::try_from(duration) else {
        return Err(ApiError::validation(
            "An error occurred while validating the submitted data.",
            ValidationErrors::single(
                "duration",
                FieldError::new(
                    "validation_min_greater_equal_than_required",
                    "Must be no less than 0.",
                )
                .with_param("threshold", 0),
            ),
        ));
    };
    let claims = token::Claims {
        refreshable: Some(false),
        ..token::Claims::default()
    };
    let token = token::sign(
        &collection,
        &record,
        token::TokenType::Auth,
        claims,
        (duration > 0).then_some(duration),
    )
    .map_err(ApiError::internal)?;
    let params = ResponseParams::from_uri(&uri);
    let response = respond(&state, &collection, &record, token, &auth, &params).await?;
    Ok(Json(response))
}

/// A real hash with the configured parameters, checked against when the identity is unknown
/// so that the failure costs the same time either way. Made once per process.
async fn dummy_hash(state: &SharedState) -> String {
    static DUMMY: tokio::sync::OnceCell<String> = tokio::sync::OnceCell::const_new();
    let params = state.config.argon2;
    DUMMY
        .get_or_init(|| async move {
            password::hash_argon2(domain::ids::random_alnum(20), params)
                .await
                .unwrap_or_default()
        })
        .await
        .clone()
}

#[cfg(test)]
mod tests;
