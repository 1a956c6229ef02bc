//! `DELETE /api/collections/{collection}/records/{id}`: deletes a record (204) the delete rule lets
//! the caller reach (else 404). The store applies relation cascades and refuses when a required
//! reference would break; the record's files are removed after the commit. The checks and the write
//! are the write pipeline's (`pipeline`), as for batch items.
//!
//! With `onRecordDeleteRequest` handlers, the record is first loaded through the delete rule
//! (a miss is the 404, before any hook), shown to them as `e.record`, and deleted behind the
//! last `e.next()`; a chain that never gets there deletes nothing and answers an empty 200.

use axum::extract::{RawQuery, Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

use super::create::request_parts;
use super::hooks;
use super::pipeline::{self, Action};
use crate::error::{ApiError, ApiResult};
use crate::extract::{Auth, Path};
use crate::state::SharedState;

const HOOK: &str = "onRecordDeleteRequest";

pub async fn delete(
    State(state): State<SharedState>,
    Path((collection, id)): Path<(String, String)>,
    Auth(auth): Auth,
    RawQuery(raw_query): RawQuery,
    request: Request,
) -> ApiResult<Response> {
    let prepared = pipeline::prepare(
        &state,
        Action::Delete(id),
        &collection,
        &auth,
        pipeline::Meta {
            method: request.method(),
            headers: request.headers(),
            context: rules::contexts::DEFAULT,
        },
        raw_query.as_deref(),
        Map::new(),
        Vec::new(),
        &[],
    )
    .await?;
    let hooked = prepared
        .delete_target()
        .and_then(|(collection, _, _)| hooks::hooked(&state, HOOK, collection));
    if let Some(scripts) = hooked {
        return with_request_hook(&state, &scripts, &request_parts(&request), prepared).await;
    }
    pipeline::execute(&state, vec![prepared], None)
        .await
        .map_err(|(_, error)| error)?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn with_request_hook(
    state: &SharedState,
    scripts: &std::sync::Arc<crate::state::scripts::Scripts>,
    parts: &axum::http::request::Parts,
    prepared: pipeline::Prepared,
) -> ApiResult<Response> {
    let Some((collection, id, guard)) = prepared.delete_target() else {
        return Err(ApiError::internal("a delete without a target"));
    };
    let collection = collection.clone();
    let record = state
        .store
        .get_record(collection.clone(), id, guard.cloned().into_iter().collect())
        .await?
        .ok_or_else(ApiError::not_found)?;
    let slot = std::sync::Arc::new(std::sync::Mutex::new(Some(prepared)));
    let core = {
        let state = state.clone();
        let handle = tokio::runtime::Handle::current();
        Box::new(move |_: Value| -> ::hooks::HostResult {
            let Some(prepared) = crate::scripts::lock(&slot).take() else {
                return Ok(Value::Null);
            };
            handle
                .block_on(pipeline::execute(&state, vec![prepared], None))
                .map(|_| Value::Null)
                .map_err(|(_, error)| hooks::host_error(error))
        }) as crate::scripts::host::Core
    };
    let outcome = crate::scripts::records::request_chain(
        state,
        scripts,
        HOOK,
        &collection,
        parts,
        None,
        json!({ "record": hooks::wire(&collection, &record) }),
        core,
    )
    .await?;
    Ok(hooks::finish(
        &outcome,
        &Default::default(),
        parts,
        Some(StatusCode::NO_CONTENT),
    ))
}
