//! Records API: list, view, create, update and delete records of any collection.

use axum::Router;

use crate::state::SharedState;

pub fn router() -> Router<SharedState> {
    Router::new()
}
