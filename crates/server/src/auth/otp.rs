//! One-time passwords (`request-otp`, `auth-with-otp`) and MFA sessions, kept as rows of the
//! `_otps` and `_mfas` system collections as PocketBase does: a code is stored hashed, expires
//! the collection's duration after its row was made, and is deleted on use or after five
//! wrong guesses. Each code has its own lock ([`crate::state::otp::OtpGuards`]): guesses at one code queue only
//! behind each other, never behind other users' codes, and the lock makes a code single-use
//! and its attempt count exact under concurrency. Rows nobody uses are removed by an hourly
//! sweep once expired, as PocketBase does, so the tables do not grow with abandoned sign-ins.
//!
//! `request-otp` answers before any expensive work, whether or not the email exists: hashing
//! the code, storing it and mailing it happen in a background task, so the answer time does
//! not tell the two apart. An unknown email gets no background work at all: its answer has
//! already gone out, so hashing a code nobody receives would only burn CPU (the hasher is the
//! one password sign-in waits on) for an attacker. Pending deliveries are bounded in total
//! (`MAX_PENDING_OTPS`) and per client address (`MAX_PENDING_OTPS_PER_ADDRESS`), both
//! decided before the lookup so that a refusal says nothing about the email; the per-address
//! bound keeps one address from making `request-otp` answer 429 for everyone. The route also
//! has its own default rate-limit rule (`*:requestOTP`, see `settings`).

use std::sync::Arc;

use crate::routing::{Routes, post};
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use domain::{Collection, FieldError, Record, SqlFragment, SqlValue, ValidationErrors};
use rand::RngExt;
use serde_json::{Value, json};

use super::bookkeeping;
use super::{
    AuthMethod, auth_collection, find_by_field, finish_auth, form_text, is_email_error, mfa_id,
    options, password, validated,
};
use crate::error::{ApiError, ApiResult};
use crate::extract::{Path, TextForm};
use crate::state::SharedState;
use crate::state::otp::PendingDelivery;
use domain::collection::{MFAS_ID, OTPS_ID};

/// Wrong guesses allowed per code before it is dropped.
pub const MAX_OTP_ATTEMPTS: u32 = 5;
/// Longest code `auth-with-otp` reads, in characters (PocketBase's: bcrypt's 72-byte input
/// less one).
pub const MAX_OTP_CHARS: usize = 71;
/// Rows read per round of the sweep.
const SWEEP_PAGE: u64 = 200;
pub fn router() -> Routes {
    Routes::new()
        .route(
            "/api/collections/{collection}/request-otp",
            post(request_otp),
        )
        .route(
            "/api/collections/{collection}/auth-with-otp",
            post(auth_with_otp),
        )
}

fn otp_disabled() -> ApiError {
    ApiError::forbidden("The collection is not configured to allow OTP authentication.")
}

fn invalid_otp() -> ApiError {
    ApiError::bad_request_msg("Invalid or expired OTP.")
}

fn random_digits(length: usize) -> String {
    let mut rng = rand::rng();
    (0..length)
        .map(|_| char::from(b'0' + rng.random_range(0..10u8)))
        .collect()
}

async fn request_otp(
    State(state): State<SharedState>,
    Path(collection): Path<String>,
    parts: axum::http::request::Parts,
    client: super::ClientInfo,
    TextForm(body): TextForm,
) -> ApiResult<Response> {
    use axum::response::IntoResponse;
    let collection = auth_collection(&state, &collection).await?;
    let options = options(&collection)?;
    if !options.otp.enabled {
        return Err(otp_disabled());
    }
    let email = form_text(&body, "email")?;
    let mut errors = ValidationErrors::new();
    if email.is_empty() {
        errors.add("email", FieldError::required());
    } else if let Some(error) = super::too_long(&email, super::MAX_CREDENTIAL_CHARS) {
        errors.add("email", error);
    } else if !crate::superusers::valid_email(&email) {
        errors.add("email", is_email_error());
    }
    validated(errors)?;
    // Decided before the lookup, so a refusal says nothing about the email either.
    let Some(pending) = state.otp_guards.reserve_delivery(&client.ip) else {
        return Err(ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "Too Many Requests.",
        ));
    };
    let record = find_by_field(&state, &collection, "email", &email).await?;
    // A random id either way, so the answer does not reveal whether the email exists.
    let id = domain::ids::new_record_id();
    let code = random_digits(options.otp.length.clamp(4, 64) as usize);
    if let Some(scripts) = super::hooks::hooked(&state, super::hooks::REQUEST_OTP, &collection) {
        // `onRecordRequestOTPRequest` fires for unknown emails too (`e.record` null), with
        // the code about to be sent as `e.password`.
        let mut extra = serde_json::Map::new();
        extra.insert("password".into(), Value::String(code));
        let chain = super::hooks::Chain {
            hook: super::hooks::REQUEST_OTP,
            collection: &collection,
            parts: &parts,
            body: Some(Value::Object(body.clone())),
            record: record.as_ref().map(|r| super::hooks::wire(&collection, r)),
            extra,
        };
        let core = {
            let state = state.clone();
            let collection = collection.clone();
            move |left: super::hooks::Left| {
                super::hooks::boxed(async move {
                    let record = match (left.record_id(), record) {
                        (Some(id), Some(found)) if id == found.id() => {
                            Some(left.record_over(&found))
                        }
                        (Some(id), _) => state
                            .store
                            .get_record(collection.clone(), &id, Vec::new())
                            .await?
                            .map(|r| left.record_over(&r)),
                        (None, _) => None,
                    };
                    if let Some(record) = record {
                        let job = OtpDelivery {
                            collection,
                            record,
                            id: id.clone(),
                            email,
                            code: left.text("password"),
                        };
                        spawn_delivery(&state, job, pending);
                    }
                    Ok(Json(json!({"otpId": id})).into_response())
                })
            }
        };
        return super::hooks::run(&state, &scripts, chain, core).await;
    }
    // An unknown email: nothing to deliver, and the answer is the same without the work.
    let Some(record) = record else {
        return Ok(Json(json!({"otpId": id})).into_response());
    };
    let job = OtpDelivery {
        collection,
        record,
        id: id.clone(),
        email,
        code,
    };
    spawn_delivery(&state, job, pending);
    Ok(Json(json!({"otpId": id})).into_response())
}

/// Delivers in the background, holding the address's delivery slot until done.
fn spawn_delivery(state: &SharedState, job: OtpDelivery, pending: PendingDelivery) {
    let background = state.clone();
    tokio::spawn(async move {
        let _pending = pending;
        if let Err(error) = deliver_otp(&background, job).await {
            tracing::warn!(message = %error.message, "OTP not delivered");
        }
    });
}

/// What `request-otp` hands to the background for a known email.
pub struct OtpDelivery {
    pub collection: Arc<Collection>,
    pub record: Record,
    pub id: String,
    pub email: String,
    /// The code to send (made when the request came, so hooks can see it).
    pub code: String,
}

/// Makes, hashes, stores and mails the code.
pub async fn deliver_otp(state: &SharedState, job: OtpDelivery) -> ApiResult<()> {
    let options = options(&job.collection)?;
    let code = job.code;
    let record = job.record;
    bookkeeping::insert(
        state,
        OTPS_ID,
        Some(job.id),
        vec![
            ("collectionRef", Value::String(job.collection.id.clone())),
            ("recordRef", Value::String(record.id().to_owned())),
            // Hashed by the write pipeline, as any password field.
            ("password", Value::String(code.clone())),
            ("sentTo", Value::String(job.email.clone())),
        ],
    )
    .await?;
    let settings = crate::settings::current(state).await?;
    let rendered = crate::mail::render(
        &options.otp.email_template,
        &settings,
        Some(&record),
        &[("OTP", &code)],
    );
    crate::mail::send_in_background(state, job.email, rendered);
    Ok(())
}

async fn auth_with_otp(
    State(state): State<SharedState>,
    Path(collection): Path<String>,
    parts: axum::http::request::Parts,
    client: super::ClientInfo,
    TextForm(body): TextForm,
) -> ApiResult<Response> {
    let collection = auth_collection(&state, &collection).await?;
    if !options(&collection)?.otp.enabled {
        return Err(otp_disabled());
    }
    let otp_id = form_text(&body, "otpId")?;
    let code = form_text(&body, "password")?;
    let mut errors = ValidationErrors::new();
    if otp_id.is_empty() {
        errors.add("otpId", FieldError::required());
    } else if let Some(error) = super::too_long(&otp_id, super::MAX_CREDENTIAL_CHARS) {
        errors.add("otpId", error);
    }
    if code.is_empty() {
        errors.add("password", FieldError::required());
    } else if let Some(error) = super::too_long(&code, MAX_OTP_CHARS) {
        errors.add("password", error);
    }
    validated(errors)?;
    let uri = parts.uri.clone();
    let query = super::query_pairs(&uri);
    let mfa = mfa_id(&body, &query);
    let record = consume_otp(&state, &collection, &otp_id, code).await?;
    let Some(scripts) = super::hooks::hooked(&state, super::hooks::WITH_OTP, &collection) else {
        let sign_in = super::SignIn {
            method: AuthMethod::Otp,
            mfa_id: mfa,
            params: super::ResponseParams::from_uri(&uri),
            client: &client,
            meta: None,
            request: Some(&parts),
        };
        return finish_auth(&state, &collection, record, sign_in).await;
    };
    // `onRecordAuthWithOTPRequest` runs once the code is accepted, with its record.
    let chain = super::hooks::Chain {
        hook: super::hooks::WITH_OTP,
        collection: &collection,
        parts: &parts,
        body: Some(Value::Object(body.clone())),
        record: Some(super::hooks::wire(&collection, &record)),
        extra: serde_json::Map::new(),
    };
    let core = {
        let state = state.clone();
        let collection = collection.clone();
        let parts = parts.clone();
        move |left: super::hooks::Left| {
            super::hooks::boxed(async move {
                let record = left.record_over(&record);
                let sign_in = super::SignIn {
                    method: AuthMethod::Otp,
                    mfa_id: mfa,
                    params: super::ResponseParams::from_uri(&parts.uri),
                    client: &client,
                    meta: None,
                    request: Some(&parts),
                };
                finish_auth(&state, &collection, record, sign_in).await
            })
        }
    };
    super::hooks::run(&state, &scripts, chain, core).await
}

/// Checks and deletes the code under the code's own lock (so it is used at most once and its
/// wrong guesses are counted exactly); the hash check runs outside any lock shared with other
/// codes. A right code sent to the record's own email also verifies the address, which
/// resets a password nobody proved (see [`super::verify_proven_email`]) unless MFA applies to
/// the record (then the password alone cannot sign in, and it may be the factor the owner
/// just gave before this code).
async fn consume_otp(
    state: &SharedState,
    collection: &Arc<Collection>,
    otp_id: &str,
    code: String,
) -> ApiResult<Record> {
    let slot = state.otp_guards.slot(otp_id);
    let mut failures = slot.failures.lock().await;
    let gone = |state: &SharedState| {
        state.otp_guards.forget(otp_id);
        invalid_otp()
    };
    let Some(row) = bookkeeping::get(state, OTPS_ID, otp_id).await? else {
        return Err(gone(state));
    };
    if row.text("collectionRef") != collection.id {
        return Err(invalid_otp());
    }
    if bookkeeping::expired(&row, options(collection)?.otp.duration) {
        // A dead code keeps no lock (the sweep removes its row).
        return Err(gone(state));
    }
    if !password::verify(code, row.text("password").to_owned()).await {
        *failures += 1;
        let counted = cluster_guesses(state, otp_id).await.max(*failures);
        if counted >= MAX_OTP_ATTEMPTS {
            bookkeeping::delete(state, OTPS_ID, otp_id).await?;
            return Err(gone(state));
        }
        return Err(invalid_otp());
    }
    // The delete decides who used the code: another node may have, a moment ago.
    if !bookkeeping::take(state, OTPS_ID, otp_id).await? {
        return Err(gone(state));
    }
    state.otp_guards.forget(otp_id);
    drop(failures);
    let Some(record) = state
        .store
        .get_record(collection.clone(), row.text("recordRef"), Vec::new())
        .await?
    else {
        return Err(invalid_otp());
    };
    if !record.bool("verified") && row.text("sentTo") == record.text("email") {
        // Where MFA applies, the password alone never signs in, so it may stay (as on
        // PocketBase): a password-then-OTP sign-in keeps the password it just proved. An
        // MFA rule not decided in time does not count as applying: the password goes.
        let keep_password =
            super::mfa_check(state, collection, &record).await? == super::RuleCheck::Match;
        return super::verify_proven_email(state, collection, &record, !keep_password).await;
    }
    Ok(record)
}

/// Which wrong guess at the code `otp_id` this one is among every node sharing the database:
/// each takes the first free numbered claim. Past [`MAX_OTP_ATTEMPTS`] claims, or when the
/// store cannot say, the node's own count decides.
async fn cluster_guesses(state: &SharedState, otp_id: &str) -> u32 {
    let key = format!("otp-guess:{otp_id}");
    for n in 1..=MAX_OTP_ATTEMPTS {
        match state.store.claim_once(&key, i64::from(n)).await {
            Ok(true) => return n,
            Ok(false) => {}
            Err(error) => {
                tracing::warn!(%error, "cannot count the guess across nodes");
                return 0;
            }
        }
    }
    MAX_OTP_ATTEMPTS
}

/// Starts an MFA session after a first factor and returns its id.
pub async fn create_mfa(
    state: &SharedState,
    collection: &Collection,
    record: &Record,
    method: AuthMethod,
) -> ApiResult<String> {
    let row = bookkeeping::insert(
        state,
        MFAS_ID,
        None,
        vec![
            ("collectionRef", Value::String(collection.id.clone())),
            ("recordRef", Value::String(record.id().to_owned())),
            ("method", Value::String(method.as_str().to_owned())),
        ],
    )
    .await?;
    Ok(row.id().to_owned())
}

/// Completes an MFA session with a second, different factor for the same record.
pub async fn consume_mfa(
    state: &SharedState,
    collection: &Collection,
    record: &Record,
    method: AuthMethod,
    mfa_id: &str,
) -> ApiResult<()> {
    let _guard = state.auth_lock.lock().await;
    let invalid = || ApiError::bad_request_msg("Invalid or expired MFA session.");
    let Some(row) = bookkeeping::get(state, MFAS_ID, mfa_id).await? else {
        return Err(invalid());
    };
    let duration = options(collection)?.mfa.duration;
    if row.text("collectionRef") != collection.id
        || row.text("recordRef") != record.id()
        || bookkeeping::expired(&row, duration)
    {
        return Err(invalid());
    }
    if row.text("method") == method.as_str() {
        return Err(ApiError::bad_request_msg(
            "A different authentication method is required.",
        ));
    }
    // The delete decides who used the session: another node may have, a moment ago.
    if !bookkeeping::take(state, MFAS_ID, mfa_id).await? {
        return Err(invalid());
    }
    Ok(())
}

/// Deletes the `_otps` and `_mfas` rows that have outlived their auth collection's
/// `otp.duration` / `mfa.duration` (seconds since the row was made), and those whose auth
/// collection no longer exists. Returns how many rows were removed.
pub async fn sweep_expired(state: &SharedState) -> ApiResult<usize> {
    sweep_expired_in(state, &[OTPS_ID, MFAS_ID]).await
}

/// [`sweep_expired`] for some of the two tables (`OTPS_ID`, `MFAS_ID`): PocketBase sweeps
/// them as two cron jobs.
pub async fn sweep_expired_in(state: &SharedState, system_ids: &[&str]) -> ApiResult<usize> {
    let schema = state.schema();
    let auth_collections: Vec<&Arc<Collection>> = schema
        .all()
        .iter()
        .filter(|c| c.is_auth() && c.auth.is_some())
        .collect();
    let now = chrono::Utc::now();
    let mut removed = 0;
    for &system_id in system_ids {
        let system = bookkeeping::collection(state, system_id)?;
        let column = |name: &str| SqlFragment::column(&system.name, name);
        // One filter per auth collection (rows older than its duration), then the rows of
        // collections that are gone.
        let mut filters: Vec<SqlFragment> = Vec::new();
        for collection in &auth_collections {
            let Some(auth) = collection.auth.as_ref() else {
                continue;
            };
            let duration = if system_id == OTPS_ID {
                auth.otp.duration
            } else {
                auth.mfa.duration
            };
            let seconds = i64::try_from(duration).unwrap_or(i64::MAX);
            let cutoff =
                now - chrono::Duration::try_seconds(seconds).unwrap_or(chrono::Duration::MAX);
            let mut filter = column("collectionRef");
            filter
                .push_sql(" = ")
                .push_param(SqlValue::Text(collection.id.clone()))
                .push_sql(" AND ")
                .push_fragment(column("created"))
                .push_sql(" < ")
                .push_param(SqlValue::Text(domain::time::format(cutoff)));
            filters.push(filter);
        }
        let mut orphans = column("collectionRef");
        if auth_collections.is_empty() {
            orphans.push_sql(" IS NOT NULL");
        } else {
            orphans.push_sql(" NOT IN (");
            for (index, collection) in auth_collections.iter().enumerate() {
                if index > 0 {
                    orphans.push_sql(", ");
                }
                orphans.push_param(SqlValue::Text(collection.id.clone()));
            }
            orphans.push_sql(")");
        }
        filters.push(orphans);
        for filter in filters {
            removed += delete_matching(state, &system, filter).await?;
        }
    }
    Ok(removed)
}

/// Deletes every row of `system` matching `filter`, a page at a time.
async fn delete_matching(
    state: &SharedState,
    system: &Arc<Collection>,
    filter: SqlFragment,
) -> ApiResult<usize> {
    let mut removed = 0;
    loop {
        let page = state
            .store
            .list_records(domain::RecordQuery {
                collection: system.clone(),
                filters: vec![filter.clone()],
                sort: Vec::new(),
                page: 1,
                per_page: SWEEP_PAGE,
                with_total: false,
            })
            .await?;
        let count = page.items.len();
        for row in page.items {
            // A row consumed meanwhile is already gone; `delete` takes that as done.
            bookkeeping::delete(state, &system.id, row.id()).await?;
            removed += 1;
        }
        if (count as u64) < SWEEP_PAGE {
            return Ok(removed);
        }
    }
}
