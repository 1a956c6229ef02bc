//! `GET|HEAD /api/health`: liveness, with a few details for superusers.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, Request, State};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Value, json};

use crate::error::ApiResult;
use crate::extract::{Auth, FieldsParam};
use crate::response::apply_fields;
use crate::state::SharedState;

pub fn router() -> Router<SharedState> {
    Router::new().route("/api/health", get(health))
}

async fn health(
    State(state): State<SharedState>,
    Auth(auth): Auth,
    FieldsParam(fields): FieldsParam,
    request: Request,
) -> ApiResult<Json<Value>> {
    let data = if auth.is_superuser() {
        let ip = request
            .extensions()
            .get::<ConnectInfo<SocketAddr>>()
            .map(|info| info.0.ip().to_string())
            .unwrap_or_default();
        let can_backup = state.backups.can_backup();
        json!({"canBackup": can_backup, "realIP": ip, "possibleProxyHeader": ""})
    } else {
        json!({})
    };
    let mut body = json!({"message": "API is healthy.", "code": 200, "data": data});
    apply_fields(&mut body, &fields)?;
    Ok(Json(body))
}
