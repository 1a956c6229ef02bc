//! Collections API (superusers only): list, view, create, update, delete, truncate, import,
//! scaffolds and the view dry run.

use axum::Router;

use crate::state::SharedState;

pub fn router() -> Router<SharedState> {
    Router::new()
}
