//! Records API: list, view, create, update and delete records of any collection
//! (`/api/collections/{collection}/records[/{id}]`), with PocketBase's rule semantics,
//! `expand` and `fields`.

mod common;
mod create;
mod delete;
pub mod expand;
mod hooks;
mod list;
pub(crate) mod pipeline;
pub mod query;
mod update;
mod view;
mod write;

#[cfg(test)]
mod tests;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::get;

use crate::state::SharedState;

pub use expand::{expand_records, expand_records_for};

pub fn router() -> Router<SharedState> {
    Router::new()
        .route(
            "/api/collections/{collection}/records",
            get(list::list)
                .post(create::create)
                // Creates and updates have their own limit, raised by the file fields'
                // sizes (`pipeline::body_limit`), applied while reading.
                .layer(DefaultBodyLimit::disable()),
        )
        .route(
            "/api/collections/{collection}/records/{id}",
            get(view::view)
                .patch(update::update)
                .delete(delete::delete)
                .layer(DefaultBodyLimit::disable()),
        )
}
