//! One-time passwords (`request-otp`, `auth-with-otp`) and MFA sessions, kept as rows of the
//! `_otps` and `_mfas` system collections as PocketBase does: a code is stored hashed, expires
//! the collection's duration after its row was made, and is deleted on use or after five
//! wrong guesses. Consumption is serialized by `auth_lock`, so a code or session is used at
//! most once. Rows nobody uses are removed by an hourly sweep once expired, as PocketBase
//! does, so the tables do not grow with abandoned sign-ins.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, State};
use axum::response::Response;
use axum::routing::post;
use axum::{Json, Router};
use domain::{Collection, FieldError, Record, SqlFragment, SqlValue, ValidationErrors};
use rand::RngExt;
use serde_json::{Value, json};

use super::bookkeeping;
use super::{
    AuthMethod, auth_collection, find_by_field, finish_auth, form_text, is_email_error, mfa_id,
    options, password, update_record, validated,
};
use crate::error::{ApiError, ApiResult};
use crate::extract::TextForm;
use crate::state::SharedState;
use domain::collection::{MFAS_ID, OTPS_ID};

/// Wrong guesses allowed per code before it is dropped.
const MAX_OTP_ATTEMPTS: u32 = 5;
/// How often expired `_otps` and `_mfas` rows are removed (PocketBase: hourly).
const SWEEP_INTERVAL: Duration = Duration::from_secs(3600);
/// Rows read per round of the sweep.
const SWEEP_PAGE: u64 = 200;

pub fn router() -> Router<SharedState> {
    Router::new()
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
    TextForm(body): TextForm,
) -> ApiResult<Json<Value>> {
    let collection = auth_collection(&state, &collection)?;
    let options = options(&collection)?;
    if !options.otp.enabled {
        return Err(otp_disabled());
    }
    let email = form_text(&body, "email")?;
    let mut errors = ValidationErrors::new();
    if email.is_empty() {
        errors.add("email", FieldError::required());
    } else if !crate::superusers::valid_email(&email) {
        errors.add("email", is_email_error());
    }
    validated(errors)?;
    let id = domain::ids::new_record_id();
    let Some(record) = find_by_field(&state, &collection, "email", &email).await? else {
        // A random id all the same, so the answer does not reveal whether the email exists.
        return Ok(Json(json!({"otpId": id})));
    };
    let code = random_digits(options.otp.length.clamp(4, 64) as usize);
    let hash = password::hash_argon2(code.clone(), state.config.argon2)
        .await
        .map_err(ApiError::internal)?;
    bookkeeping::insert(
        &state,
        OTPS_ID,
        Some(id.clone()),
        vec![
            ("collectionRef", Value::String(collection.id.clone())),
            ("recordRef", Value::String(record.id().to_owned())),
            ("password", Value::String(hash)),
            ("sentTo", Value::String(email.clone())),
        ],
    )
    .await?;
    let settings = crate::settings::current(&state).await?;
    let rendered = crate::mail::render(
        &options.otp.email_template,
        &settings,
        Some(&record),
        &[("OTP", &code)],
    );
    crate::mail::send_in_background(&state, email, rendered);
    Ok(Json(json!({"otpId": id})))
}

async fn auth_with_otp(
    State(state): State<SharedState>,
    Path(collection): Path<String>,
    uri: axum::http::Uri,
    client: super::ClientInfo,
    TextForm(body): TextForm,
) -> ApiResult<Response> {
    let collection = auth_collection(&state, &collection)?;
    if !options(&collection)?.otp.enabled {
        return Err(otp_disabled());
    }
    let otp_id = form_text(&body, "otpId")?;
    let code = form_text(&body, "password")?;
    let mut errors = ValidationErrors::new();
    if otp_id.is_empty() {
        errors.add("otpId", FieldError::required());
    }
    if code.is_empty() {
        errors.add("password", FieldError::required());
    }
    validated(errors)?;
    let record = consume_otp(&state, &collection, &otp_id, code).await?;
    let query = super::query_pairs(&uri);
    let mfa = mfa_id(&body, &query)?;
    let sign_in = super::SignIn {
        method: AuthMethod::Otp,
        mfa_id: mfa,
        params: super::ResponseParams::from_uri(&uri),
        client: &client,
        meta: None,
    };
    finish_auth(&state, &collection, record, sign_in).await
}

/// Checks and deletes the code; a right code for a record's own email also verifies it.
async fn consume_otp(
    state: &SharedState,
    collection: &Arc<Collection>,
    otp_id: &str,
    code: String,
) -> ApiResult<Record> {
    let _guard = state.auth_lock.lock().await;
    let Some(row) = bookkeeping::get(state, OTPS_ID, otp_id).await? else {
        return Err(invalid_otp());
    };
    let duration = options(collection)?.otp.duration;
    if row.text("collectionRef") != collection.id || bookkeeping::expired(&row, duration) {
        return Err(invalid_otp());
    }
    if !password::verify(code, row.text("password").to_owned()).await {
        let failures = {
            let mut map = state
                .otp_failures
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            let count = map.entry(otp_id.to_owned()).or_insert(0);
            *count += 1;
            *count
        };
        if failures >= MAX_OTP_ATTEMPTS {
            forget_failures(state, otp_id);
            bookkeeping::delete(state, OTPS_ID, otp_id).await?;
        }
        return Err(invalid_otp());
    }
    forget_failures(state, otp_id);
    bookkeeping::delete(state, OTPS_ID, otp_id).await?;
    let Some(record) = state
        .store
        .get_record(collection.clone(), row.text("recordRef"), Vec::new())
        .await?
    else {
        return Err(invalid_otp());
    };
    if !record.bool("verified") && row.text("sentTo") == record.text("email") {
        return update_record(state, collection, record.id(), true, |data| {
            data.insert("verified".into(), Value::Bool(true));
        })
        .await;
    }
    Ok(record)
}

fn forget_failures(state: &SharedState, otp_id: &str) {
    state
        .otp_failures
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .remove(otp_id);
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
    bookkeeping::delete(state, MFAS_ID, mfa_id).await
}

/// Starts the hourly removal of expired one-time codes and MFA sessions. The task holds the
/// state weakly, so it ends with the server.
pub fn spawn_sweep(state: &SharedState) {
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        return;
    };
    let state = Arc::downgrade(state);
    runtime.spawn(async move {
        loop {
            tokio::time::sleep(SWEEP_INTERVAL).await;
            let Some(state) = state.upgrade() else {
                return;
            };
            match sweep_expired(&state).await {
                Ok(0) => {}
                Ok(removed) => tracing::debug!(removed, "removed expired OTPs and MFA sessions"),
                Err(error) => tracing::warn!(message = %error.message, "OTP/MFA sweep failed"),
            }
        }
    });
}

/// Deletes the `_otps` and `_mfas` rows that have outlived their auth collection's
/// `otp.duration` / `mfa.duration` (seconds since the row was made), and those whose auth
/// collection no longer exists. Returns how many rows were removed.
pub async fn sweep_expired(state: &SharedState) -> ApiResult<usize> {
    let schema = state.schema();
    let auth_collections: Vec<&Arc<Collection>> = schema
        .all()
        .iter()
        .filter(|c| c.is_auth() && c.auth.is_some())
        .collect();
    let now = chrono::Utc::now();
    let mut removed = 0;
    for system_id in [OTPS_ID, MFAS_ID] {
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
