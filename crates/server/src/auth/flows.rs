//! The email flows of an auth collection: request/confirm verification, password reset and
//! email change. Requests answer 204 whatever the email (so they reveal nothing) and mail a
//! signed token in the background; confirmations check the token against the record's
//! current `tokenKey` and email, so changing either makes every older token useless.

use std::sync::Arc;

use crate::routing::{Routes, post};
use axum::extract::{FromRequest, Request, State};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::Response;
use domain::field::FieldKind;
use domain::{Collection, FieldError, Record, ValidationErrors};
use serde_json::Value;

use super::hooks;
use super::token::{self, Claims, TokenType};
use super::{
    auth_collection, find_by_field, form_text, is_email_error, new_token_key, options, password,
    save_record, validated,
};
use crate::error::{ApiError, ApiResult};
use crate::extract::{Auth, Path, TextForm};
use crate::records::pipeline::SystemChange;
use crate::state::SharedState;

pub fn router() -> Routes {
    let path = |action: &str| format!("/api/collections/{{collection}}/{action}");
    Routes::new()
        .route(&path("request-verification"), post(request_verification))
        .route(&path("confirm-verification"), post(confirm_verification))
        .route(
            &path("request-password-reset"),
            post(request_password_reset),
        )
        .route(
            &path("confirm-password-reset"),
            post(confirm_password_reset),
        )
        .route(&path("request-email-change"), post(request_email_change))
        .route(&path("confirm-email-change"), post(confirm_email_change))
}

/// The `email` of a request form: required, at most 255 characters and well-formed.
fn email_field(body: &serde_json::Map<String, Value>, key: &str) -> ApiResult<String> {
    let email = form_text(body, key)?;
    let mut errors = ValidationErrors::new();
    if email.is_empty() {
        errors.add(key, FieldError::required());
    } else if let Some(error) = super::too_long(&email, super::MAX_CREDENTIAL_CHARS) {
        errors.add(key, error);
    } else if !crate::superusers::valid_email(&email) {
        errors.add(key, is_email_error());
    }
    validated(errors)?;
    Ok(email)
}

/// The body of a flow that first refuses some requests from the path alone (the superusers'
/// verification and email change), read only once they passed.
async fn read_form(
    state: &SharedState,
    request: Request,
) -> ApiResult<serde_json::Map<String, Value>> {
    let TextForm(body) = TextForm::from_request(request, state).await?;
    Ok(body)
}

fn superusers_verified() -> ApiError {
    ApiError::bad_request_msg("All superusers are verified by default.")
}

fn superusers_change_email_directly() -> ApiError {
    ApiError::bad_request_msg("All superusers can change their emails directly.")
}

/// Whether the (unverified) claims of `token` carry a non-empty `key` when read as text, as
/// PocketBase reads them: a string, or a number or boolean (as the text they print as).
/// Read apart from the typed claims, so that a token missing another claim still gets the
/// answer its signature check gives.
fn has_text_claim(token: &str, key: &str) -> bool {
    match claim(token, key) {
        Some(Value::String(text)) => !text.is_empty(),
        Some(Value::Number(_) | Value::Bool(_)) => true,
        _ => false,
    }
}

/// Whether the (unverified) claims of `token` carry a non-empty string `key`.
fn has_string_claim(token: &str, key: &str) -> bool {
    matches!(claim(token, key), Some(Value::String(text)) if !text.is_empty())
}

/// The (unverified) claim `key` of `token`.
fn claim(token: &str, key: &str) -> Option<Value> {
    token::raw_claims(token)?.remove(key)
}

fn invalid_token() -> FieldError {
    FieldError::new("validation_invalid_token", "Invalid or expired token.")
}

/// How long a second request for the same email is silently dropped.
const RESEND_GUARD: std::time::Duration = std::time::Duration::from_secs(120);

/// Whether an email of this `kind` went to this record within [`RESEND_GUARD`]; records the
/// send otherwise. The request still answers 204 either way.
fn recently_sent(
    state: &SharedState,
    collection: &Collection,
    record: &Record,
    kind: &str,
) -> bool {
    let key = format!("{}:{}:{kind}", collection.id, record.id());
    let now = std::time::Instant::now();
    let mut sent = state
        .mail_sent
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    sent.retain(|_, at| now.duration_since(*at) < RESEND_GUARD);
    if sent.contains_key(&key) {
        return true;
    }
    sent.insert(key, now);
    false
}

/// Signs a `token_type` token for `record` and mails it with `template` to `to`, unless the
/// same kind of email went to the record moments ago.
fn mail_token(
    state: &SharedState,
    collection: &Collection,
    record: &Record,
    token_type: TokenType,
    claims: Claims,
    template: &domain::collection::EmailTemplate,
    to: String,
) -> ApiResult<()> {
    if recently_sent(state, collection, record, token_type.as_str()) {
        return Ok(());
    }
    let token =
        token::sign(collection, record, token_type, claims, None).map_err(ApiError::internal)?;
    let template = template.clone();
    let record = record.clone();
    let state_for_mail = state.clone();
    let claim = format!(
        "mail:{}:{}:{}",
        collection.id,
        record.id(),
        token_type.as_str()
    );
    tokio::spawn(async move {
        // Nodes sharing a database: one such email per record in each two-minute slot, in
        // all (this node's exact guard above already held).
        let slot = chrono::Utc::now().timestamp() / RESEND_GUARD.as_secs() as i64;
        match state_for_mail.store.claim_once(&claim, slot).await {
            Ok(true) => {}
            Ok(false) => return,
            Err(error) => tracing::warn!(%error, "cannot claim the email's slot; sending it"),
        }
        let settings = match crate::settings::current(&state_for_mail).await {
            Ok(settings) => settings,
            Err(error) => {
                tracing::error!(message = %error.message, "cannot load settings");
                return;
            }
        };
        let rendered =
            crate::mail::render(&template, &settings, Some(&record), &[("TOKEN", &token)]);
        crate::mail::send_in_background(&state_for_mail, to, rendered);
    });
    Ok(())
}

/// Verifies `text` as a `token_type` token of `collection`, whose `email` claim still matches
/// the record's email.
async fn verify_for(
    state: &SharedState,
    collection: &Arc<Collection>,
    text: &str,
    token_type: TokenType,
) -> Result<(Record, Claims), FieldError> {
    let (own, record, claims) = token::verify(state, text, token_type)
        .await
        .ok_or_else(invalid_token)?;
    // A valid token of another auth collection is named as such, as PocketBase does.
    if own.id != collection.id {
        return Err(FieldError::new(
            "validation_token_collection_mismatch",
            "The provided token is for different auth collection.",
        ));
    }
    if claims.email.as_deref() != Some(record.text("email")) {
        return Err(invalid_token());
    }
    Ok((Arc::unwrap_or_clone(record), claims))
}

async fn request_verification(
    State(state): State<SharedState>,
    Path(collection): Path<String>,
    parts: Parts,
    request: Request,
) -> ApiResult<Response> {
    let collection = auth_collection(&state, &collection).await?;
    if collection.is_superusers() {
        return Err(superusers_verified());
    }
    let body = read_form(&state, request).await?;
    let email = email_field(&body, "email")?;
    let options = options(&collection)?;
    let template = options.verification_template.clone();
    // PocketBase runs the hook for an already verified record too; nothing is mailed then.
    if let Some(record) = find_by_field(&state, &collection, "email", &email).await? {
        let chain = chain(
            hooks::REQUEST_VERIFICATION,
            &collection,
            &parts,
            &body,
            &record,
        );
        let core = {
            let state = state.clone();
            let collection = collection.clone();
            move |left: hooks::Left| {
                hooks::boxed(async move {
                    let record = left.record_over(&record);
                    if record.bool("verified") {
                        return hooks::no_content();
                    }
                    let claims = Claims {
                        email: Some(email.clone()),
                        ..Claims::default()
                    };
                    mail_token(
                        &state,
                        &collection,
                        &record,
                        TokenType::Verification,
                        claims,
                        &template,
                        email,
                    )?;
                    hooks::no_content()
                })
            }
        };
        return hooks::around(&state, chain, core).await;
    }
    hooks::no_content()
}

/// The chain of an email flow's hook: `e.record` is the record the flow acts on.
fn chain<'a>(
    hook: &'static str,
    collection: &'a Collection,
    parts: &'a Parts,
    body: &serde_json::Map<String, Value>,
    record: &Record,
) -> hooks::Chain<'a> {
    hooks::Chain {
        hook,
        collection,
        parts,
        body: Some(Value::Object(body.clone())),
        record: Some(hooks::wire(collection, record)),
        extra: serde_json::Map::new(),
    }
}

async fn confirm_verification(
    State(state): State<SharedState>,
    Path(collection): Path<String>,
    parts: Parts,
    request: Request,
) -> ApiResult<Response> {
    let collection = auth_collection(&state, &collection).await?;
    if collection.is_superusers() {
        return Err(superusers_verified());
    }
    let body = read_form(&state, request).await?;
    let text = form_text(&body, "token")?;
    if text.is_empty() {
        validated(ValidationErrors::single("token", FieldError::required()))?;
    }
    if !has_text_claim(&text, "email") {
        validated(ValidationErrors::single(
            "token",
            FieldError::new(
                "validation_invalid_token_claims",
                "Missing email token claim.",
            ),
        ))?;
    }
    let record = match verify_for(&state, &collection, &text, TokenType::Verification).await {
        Ok((record, _)) => record,
        Err(error) => {
            validated(ValidationErrors::single("token", error))?;
            return hooks::no_content();
        }
    };
    let chain = chain(
        hooks::CONFIRM_VERIFICATION,
        &collection,
        &parts,
        &body,
        &record,
    );
    let core = {
        let state = state.clone();
        let collection = collection.clone();
        move |left: hooks::Left| {
            hooks::boxed(async move {
                let record = left.record_over(&record);
                if !record.bool("verified") {
                    let had_links =
                        super::forget_links_on_verification(&state, &collection, &record).await?;
                    let mut change = SystemChange::new().set("verified", true);
                    if had_links {
                        change = change.set("tokenKey", new_token_key());
                    }
                    save_record(&state, &collection, record.id(), change).await?;
                }
                hooks::no_content()
            })
        }
    };
    hooks::around(&state, chain, core).await
}

async fn request_password_reset(
    State(state): State<SharedState>,
    Path(collection): Path<String>,
    parts: Parts,
    TextForm(body): TextForm,
) -> ApiResult<Response> {
    let collection = auth_collection(&state, &collection).await?;
    let email = email_field(&body, "email")?;
    let template = options(&collection)?.reset_password_template.clone();
    let Some(record) = find_by_field(&state, &collection, "email", &email).await? else {
        return hooks::no_content();
    };
    let chain = chain(hooks::REQUEST_RESET, &collection, &parts, &body, &record);
    let core = {
        let state = state.clone();
        let collection = collection.clone();
        move |left: hooks::Left| {
            hooks::boxed(async move {
                let record = left.record_over(&record);
                let claims = Claims {
                    email: Some(email.clone()),
                    ..Claims::default()
                };
                mail_token(
                    &state,
                    &collection,
                    &record,
                    TokenType::PasswordReset,
                    claims,
                    &template,
                    email,
                )?;
                hooks::no_content()
            })
        }
    };
    hooks::around(&state, chain, core).await
}

/// The password field's length limits: its own `min`, and `max` or 255 when unset.
fn password_limits(collection: &Collection) -> (u64, u64) {
    match collection.field("password").map(|f| &f.kind) {
        Some(FieldKind::Password(o)) => (o.min.max(1), if o.max == 0 { 255 } else { o.max }),
        _ => (8, 255),
    }
}

async fn confirm_password_reset(
    State(state): State<SharedState>,
    Path(collection): Path<String>,
    parts: Parts,
    TextForm(body): TextForm,
) -> ApiResult<Response> {
    let collection = auth_collection(&state, &collection).await?;
    let text = form_text(&body, "token")?;
    let new_password = form_text(&body, "password")?;
    let confirm = form_text(&body, "passwordConfirm")?;
    let mut errors = ValidationErrors::new();
    let (min, max) = password_limits(&collection);
    let length = new_password.chars().count() as u64;
    if new_password.is_empty() {
        errors.add("password", FieldError::required());
    } else if length < min || length > max {
        errors.add(
            "password",
            FieldError::new(
                "validation_length_out_of_range",
                format!("The length must be between {min} and {max}."),
            )
            .with_param("max", max)
            .with_param("min", min),
        );
    }
    if confirm.is_empty() {
        errors.add("passwordConfirm", FieldError::required());
    } else if confirm != new_password {
        errors.add(
            "passwordConfirm",
            FieldError::new("validation_values_mismatch", "Values don't match."),
        );
    }
    let verified = if text.is_empty() {
        errors.add("token", FieldError::required());
        None
    } else {
        match verify_for(&state, &collection, &text, TokenType::PasswordReset).await {
            Ok(found) => Some(found),
            Err(error) => {
                errors.add("token", error);
                None
            }
        }
    };
    validated(errors)?;
    let Some((record, _)) = verified else {
        return Err(ApiError::bad_request());
    };
    let chain = chain(hooks::CONFIRM_RESET, &collection, &parts, &body, &record);
    let core = {
        let state = state.clone();
        let collection = collection.clone();
        move |left: hooks::Left| {
            hooks::boxed(async move {
                let record = left.record_over(&record);
                let hash = password::hash_argon2(new_password, state.config.argon2)
                    .await
                    .map_err(ApiError::internal)?;
                super::forget_links_on_verification(&state, &collection, &record).await?;
                // The password's limits were checked above (as the form's, not the stored
                // field's): the hash is stored as it is. The reset link reached this mailbox,
                // which proves the address.
                let change = SystemChange::new()
                    .set_raw("password", hash)
                    .set("tokenKey", new_token_key())
                    .set("verified", true);
                save_record(&state, &collection, record.id(), change).await?;
                // The owner has a new password: a lockout started by someone's guesses no
                // longer applies.
                for field in &options(&collection)?.password_auth.identity_fields {
                    let identity = record.text(field);
                    if !identity.is_empty() {
                        state
                            .login_lockouts
                            .clear(&crate::state::lockouts::key(&collection.id, identity));
                    }
                }
                hooks::no_content()
            })
        }
    };
    hooks::around(&state, chain, core).await
}

async fn request_email_change(
    State(state): State<SharedState>,
    Path(collection): Path<String>,
    Auth(auth): Auth,
    parts: Parts,
    request: Request,
) -> ApiResult<Response> {
    let (collection, record, _) = super::own_collection(&state, &collection, &auth).await?;
    if collection.is_superusers() {
        return Err(superusers_change_email_directly());
    }
    let body = read_form(&state, request).await?;
    let new_email = email_field(&body, "newEmail")?;
    if new_email == record.text("email") {
        validated(ValidationErrors::single(
            "newEmail",
            FieldError::new("validation_not_in_invalid", "Must not be in list."),
        ))?;
    }
    if find_by_field(&state, &collection, "email", &new_email)
        .await?
        .is_some()
    {
        validated(ValidationErrors::single(
            "newEmail",
            FieldError::new("validation_invalid_new_email", "Invalid new email address."),
        ))?;
    }
    let template = options(&collection)?.confirm_email_change_template.clone();
    let mut chain = chain(
        hooks::REQUEST_EMAIL_CHANGE,
        &collection,
        &parts,
        &body,
        record,
    );
    chain
        .extra
        .insert("newEmail".into(), Value::String(new_email));
    let core = {
        let state = state.clone();
        let collection = collection.clone();
        let record = record.clone();
        move |left: hooks::Left| {
            hooks::boxed(async move {
                let record = left.record_over(&record);
                let new_email = left.text("newEmail");
                let claims = Claims {
                    email: Some(record.text("email").to_owned()),
                    new_email: Some(new_email.clone()),
                    ..Claims::default()
                };
                mail_token(
                    &state,
                    &collection,
                    &record,
                    TokenType::EmailChange,
                    claims,
                    &template,
                    new_email,
                )?;
                hooks::no_content()
            })
        }
    };
    hooks::around(&state, chain, core).await
}

async fn confirm_email_change(
    State(state): State<SharedState>,
    Path(collection): Path<String>,
    parts: Parts,
    request: Request,
) -> ApiResult<Response> {
    let collection = auth_collection(&state, &collection).await?;
    if collection.is_superusers() {
        return Err(superusers_change_email_directly());
    }
    let body = read_form(&state, request).await?;
    let text = form_text(&body, "token")?;
    let plain = form_text(&body, "password")?;
    // PocketBase lists field errors alphabetically: `password` before `token`.
    let mut password_error = None;
    let mut token_error = None;
    if plain.is_empty() {
        password_error = Some(FieldError::required());
    }
    let mut verified = None;
    if text.is_empty() {
        token_error = Some(FieldError::required());
    } else if !has_string_claim(&text, "newEmail") {
        token_error = Some(FieldError::new(
            "validation_invalid_token_payload",
            "Invalid token payload - newEmail must be set.",
        ));
    } else {
        match verify_for(&state, &collection, &text, TokenType::EmailChange).await {
            Ok(found) => verified = Some(found),
            Err(error) => token_error = Some(error),
        }
    }
    if !plain.is_empty() {
        let matches = match &verified {
            Some((record, _)) => {
                password::verify(plain.clone(), record.text("password").to_owned()).await
            }
            None => false,
        };
        if !matches {
            password_error = Some(FieldError::new(
                "validation_invalid_password",
                "Missing or invalid auth record password.",
            ));
        }
    }
    let mut errors = ValidationErrors::new();
    if let Some(error) = password_error {
        errors.add("password", error);
    }
    if let Some(error) = token_error {
        errors.add("token", error);
    }
    validated(errors)?;
    let Some((record, claims)) = verified else {
        return Err(ApiError::bad_request());
    };
    let new_email = claims.new_email.unwrap_or_default();
    let mut chain = chain(
        hooks::CONFIRM_EMAIL_CHANGE,
        &collection,
        &parts,
        &body,
        &record,
    );
    chain
        .extra
        .insert("newEmail".into(), Value::String(new_email));
    let core = {
        let state = state.clone();
        let collection = collection.clone();
        move |left: hooks::Left| {
            hooks::boxed(async move {
                let record = left.record_over(&record);
                let new_email = left.text("newEmail");
                if find_by_field(&state, &collection, "email", &new_email)
                    .await?
                    .is_some()
                {
                    validated(ValidationErrors::single(
                        "newEmail",
                        FieldError::new(
                            "validation_invalid_new_email",
                            "Invalid new email address.",
                        ),
                    ))?;
                }
                super::forget_links_on_verification(&state, &collection, &record).await?;
                let change = SystemChange::new()
                    .set("email", new_email)
                    .set("verified", true)
                    .set("tokenKey", new_token_key());
                save_record(&state, &collection, record.id(), change)
                    .await
                    .map_err(|error| {
                        if error.status == StatusCode::BAD_REQUEST {
                            error
                        } else {
                            ApiError::bad_request_msg("Failed to confirm the email change.")
                        }
                    })?;
                hooks::no_content()
            })
        }
    };
    hooks::around(&state, chain, core).await
}
