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

use crate::routing::{Routes, get};
use axum::extract::DefaultBodyLimit;

use crate::state::SharedState;

pub use expand::{expand_for_realtime, expand_records, expand_records_for};

pub fn router() -> Routes {
    Routes::new()
        .route(
            "/api/collections/{collection}/records",
            get(list::list)
                .post(create::create)
                // Creates and updates have their own limit, raised by the file fields'
                // sizes (`pipeline::body_limit`), applied while reading.
                .body_limit(DefaultBodyLimit::disable()),
        )
        .route(
            "/api/collections/{collection}/records/{id}",
            get(view::view)
                .patch(update::update)
                .delete(delete::delete)
                .body_limit(DefaultBodyLimit::disable()),
        )
}

/// One record's JSON as the records API would answer `ctx` with `?expand=<expand>`: its
/// public shape, managed emails revealed, expanded, and shaped by `onRecordEnrich` handlers.
/// Used by scripts (`$apis.enrichRecord`, `$app.expandRecord`).
pub(crate) async fn render_for_script(
    state: &SharedState,
    ctx: &rules::RequestContext,
    collection: &std::sync::Arc<domain::Collection>,
    record: domain::Record,
    expand: &str,
) -> crate::error::ApiResult<serde_json::Value> {
    let query = serde_urlencoded::to_string([("expand", expand)]).unwrap_or_default();
    let params = query::QueryParams::parse(Some(&query));
    common::respond_with_record(state, ctx, collection, record, &params)
        .await
        .map(|axum::Json(json)| json)
}
