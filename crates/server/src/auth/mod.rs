//! Authentication endpoints for auth collections. This holds what the foundation needs
//! (password login and refresh for any auth collection, superusers included); the full flow
//! set (OTP, MFA, OAuth2, email flows) grows here.

pub mod password;
pub mod token;

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::routing::post;
use axum::{Json, Router};
use domain::{Collection, FieldError, SqlFragment, SqlValue, ValidationErrors};
use serde_json::Value;

use crate::error::{ApiError, ApiResult};
use crate::extract::{Auth, FieldsParam, FormBody};
use crate::response::{apply_fields, auth_response};
use crate::state::SharedState;

pub fn router() -> Router<SharedState> {
    Router::new()
        .route(
            "/api/collections/{collection}/auth-with-password",
            post(auth_with_password),
        )
        .route(
            "/api/collections/{collection}/auth-refresh",
            post(auth_refresh),
        )
}

/// The auth collection named in the path, or PocketBase's 404.
pub fn auth_collection(state: &SharedState, id_or_name: &str) -> ApiResult<Arc<Collection>> {
    match state.schema().get(id_or_name) {
        Some(collection) if collection.is_auth() => Ok(collection.clone()),
        _ => Err(ApiError::not_found_msg(
            "Missing or invalid auth collection context.",
        )),
    }
}

/// Reads a string form value, matching the key case-insensitively as PocketBase's forms do.
pub fn form_text(body: &serde_json::Map<String, Value>, key: &str) -> String {
    body.iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(key))
        .and_then(|(_, v)| match v {
            Value::String(s) => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            _ => None,
        })
        .unwrap_or_default()
}

async fn auth_with_password(
    State(state): State<SharedState>,
    Path(collection): Path<String>,
    FieldsParam(fields_param): FieldsParam,
    FormBody(body): FormBody,
) -> ApiResult<Json<Value>> {
    let collection = auth_collection(&state, &collection)?;
    let Some(options) = collection.auth.as_ref() else {
        return Err(ApiError::not_found_msg(
            "Missing or invalid auth collection context.",
        ));
    };
    if !options.password_auth.enabled {
        return Err(ApiError::forbidden(
            "The collection is not configured to allow password authentication.",
        ));
    }
    let identity = form_text(&body, "identity");
    let password = form_text(&body, "password");
    let identity_field = form_text(&body, "identityField");
    let mut errors = ValidationErrors::new();
    if identity.is_empty() {
        errors.add("identity", FieldError::required());
    }
    if password.is_empty() {
        errors.add("password", FieldError::required());
    }
    if !identity_field.is_empty()
        && !options
            .password_auth
            .identity_fields
            .contains(&identity_field)
    {
        errors.add("identityField", FieldError::invalid_value());
    }
    if let Err(errors) = errors.into_result() {
        return Err(ApiError::validation(
            "An error occurred while validating the submitted data.",
            errors,
        ));
    }
    let fields: Vec<&String> = if identity_field.is_empty() {
        options.password_auth.identity_fields.iter().collect()
    } else {
        vec![&identity_field]
    };
    let mut found = None;
    for field in fields {
        if collection.field(field).is_none() {
            continue;
        }
        let mut filter = SqlFragment::column(&collection.name, field);
        filter
            .push_sql(" = ")
            .push_param(SqlValue::Text(identity.clone()));
        let page = state
            .store
            .list_records(domain::RecordQuery {
                collection: collection.clone(),
                filters: vec![filter],
                sort: Vec::new(),
                page: 1,
                per_page: 1,
                with_total: false,
            })
            .await?;
        if let Some(record) = page.items.into_iter().next() {
            found = Some(record);
            break;
        }
    }
    let failed = || ApiError::bad_request_msg("Failed to authenticate.");
    let Some(record) = found else {
        // Spend the same time as a real check so that unknown identities are not revealed.
        password::verify(password, dummy_hash(state.config.bcrypt_cost).await).await;
        return Err(failed());
    };
    if !password::verify(password, record.text("password").to_owned()).await {
        return Err(failed());
    }
    let token = token::auth_token(&collection, &record).map_err(ApiError::internal)?;
    let mut response = auth_response(&collection, &record, token);
    apply_fields(&mut response, &fields_param)?;
    Ok(Json(response))
}

async fn auth_refresh(
    State(state): State<SharedState>,
    Path(collection): Path<String>,
    Auth(auth): Auth,
    FieldsParam(fields_param): FieldsParam,
    headers: axum::http::HeaderMap,
) -> ApiResult<Json<Value>> {
    let collection = auth_collection(&state, &collection)?;
    let domain::AuthContext::Record {
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
    let token = if refreshable {
        token::auth_token(&collection, &record).map_err(ApiError::internal)?
    } else {
        // Non-refreshable (impersonation) tokens come back unchanged.
        headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .map(|v| {
                v.trim_start_matches("Bearer ")
                    .trim_start_matches("bearer ")
                    .to_owned()
            })
            .unwrap_or_default()
    };
    let mut response = auth_response(&collection, &record, token);
    apply_fields(&mut response, &fields_param)?;
    Ok(Json(response))
}

/// A real hash at the configured cost, checked against when the identity is unknown so that
/// the failure costs the same time either way. Made once per process.
async fn dummy_hash(cost: u32) -> String {
    static DUMMY: tokio::sync::OnceCell<String> = tokio::sync::OnceCell::const_new();
    DUMMY
        .get_or_init(|| async move {
            password::hash(domain::ids::random_alnum(20), cost)
                .await
                .unwrap_or_default()
        })
        .await
        .clone()
}
