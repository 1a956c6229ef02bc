//! `GET|HEAD /api/health`: liveness, with a few details for superusers.

use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Value, json};

use crate::extract::Auth;
use crate::state::SharedState;

pub fn router() -> Router<SharedState> {
    Router::new().route("/api/health", get(health))
}

async fn health(Auth(auth): Auth) -> Json<Value> {
    let data = if auth.is_superuser() {
        json!({"canBackup": false, "realIP": "", "possibleProxyHeader": ""})
    } else {
        json!({})
    };
    Json(json!({"message": "API is healthy.", "code": 200, "data": data}))
}
