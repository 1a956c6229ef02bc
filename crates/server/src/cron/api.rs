//! The crons API, superusers only (401 for guests, 403 for other auth records, as PocketBase):
//! `GET /api/crons` lists the registered jobs as `[{"id","expression"}…]` (`fields` applies),
//! `POST /api/crons/{id}` starts one in the background and answers `204` at once.

use crate::routing::{Routes, get, post};
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde_json::Value;

use crate::error::{ApiError, ApiResult};
use crate::extract::{FieldsParam, Path, Superuser};
use crate::response::apply_fields;
use crate::state::SharedState;

pub fn router() -> Routes {
    Routes::new()
        .route("/api/crons", get(list))
        .route("/api/crons/{id}", post(run))
}

async fn list(
    State(state): State<SharedState>,
    _: Superuser,
    FieldsParam(fields): FieldsParam,
) -> ApiResult<Json<Value>> {
    let mut body = serde_json::to_value(state.crons.list()).map_err(ApiError::internal)?;
    apply_fields(&mut body, &fields)?;
    Ok(Json(body))
}

async fn run(
    State(state): State<SharedState>,
    _: Superuser,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let missing = || ApiError::not_found_msg("Missing or invalid cron job.");
    // An id that is not UTF-8 (`%FF`) names no job (see `extract::Path`); an escaped slash
    // (`%2F`) is a path PocketBase's router does not match at all.
    if id.contains('/') {
        return Err(ApiError::not_found());
    }
    // A job already running is not started twice; the caller is told 204 all the same, as
    // the run it asked for is under way.
    state.crons.run_now(&id).map_err(|_| missing())?;
    Ok(StatusCode::NO_CONTENT)
}
