//! The logs API, superusers only (401 for guests, 403 for other auth records):
//! `GET /api/logs` (list envelope; `filter`/`sort` on `id, created, level, message, data,
//! data.<path>`), `GET /api/logs/{id}`, `GET /api/logs/stats?filter=` (hourly counts) and
//! `DELETE /api/logs` (204). Filters and sorts are compiled by `rules` against the synthetic
//! `_logs` collection; a bad one is the generic 400, as in PocketBase.

use std::sync::{Arc, LazyLock};

use crate::routing::{Routes, get};
use axum::Json;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, Method, StatusCode};
use domain::logs::logs_collection;
use domain::{AuthContext, Collection, LogQuery, Schema, SqlFragment};
use serde_json::{Value, json};

use crate::access;
use crate::error::{ApiError, ApiResult};
use crate::extract::{Path, Superuser};
use crate::records::query::{self, QueryParams};
use crate::response::apply_fields;
use crate::state::SharedState;

pub fn router() -> Routes {
    Routes::new()
        .route("/api/logs", get(list).delete(delete_all))
        .route("/api/logs/stats", get(stats))
        .route("/api/logs/{id}", get(view))
}

/// The `_logs` columns as a schema of one collection, for the filter compiler.
pub(super) static LOGS: LazyLock<(Arc<Schema>, Arc<Collection>)> = LazyLock::new(|| {
    let schema = Arc::new(Schema::new(vec![logs_collection()]));
    let collection = schema
        .get(domain::logs::LOGS_TABLE)
        .cloned()
        .unwrap_or_else(|| Arc::new(logs_collection()));
    (schema, collection)
});

/// The client `filter` as predicates on `"_logs"`.
fn filters(
    state: &SharedState,
    auth: &AuthContext,
    headers: &HeaderMap,
    params: &QueryParams,
) -> ApiResult<Vec<SqlFragment>> {
    let (schema, collection) = &*LOGS;
    let Some(compiled) = access::compile_filter(schema, collection, params.text("filter"), auth)?
    else {
        return Ok(Vec::new());
    };
    let ctx = access::request_context(auth, &Method::GET, headers, params.pairs(), None);
    Ok(vec![compiled.to_sql(dialect(state), &ctx)])
}

fn dialect(state: &SharedState) -> domain::Dialect {
    state
        .logs
        .store()
        .map_or_else(|| state.store.dialect(), |store| store.dialect())
}

async fn list(
    State(state): State<SharedState>,
    Superuser(auth): Superuser,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> ApiResult<Json<Value>> {
    let params = QueryParams::parse(raw.as_deref());
    let paging = query::paging(&params)?;
    let (schema, collection) = &*LOGS;
    let filters = filters(&state, &auth, &headers, &params)?;
    let ctx = access::request_context(&auth, &Method::GET, &headers, params.pairs(), None);
    let sort = access::compile_sort(schema, collection, params.text("sort"), &auth)?
        .to_sql(dialect(&state), &ctx);
    let (items, total) = match state.logs.store() {
        Some(store) => {
            let page = store
                .list(LogQuery {
                    filters: filters.into_iter().chain(sort.filters).collect(),
                    sort: sort.terms,
                    page: paging.page,
                    per_page: paging.per_page,
                    with_total: !paging.skip_total,
                })
                .await?;
            (page.items, page.total)
        }
        None => (Vec::new(), Some(0)),
    };
    let (total_items, total_pages) = match total {
        Some(total) if !paging.skip_total => (total as i64, total.div_ceil(paging.per_page) as i64),
        _ => (-1, -1),
    };
    let mut envelope = json!({
        "items": items,
        "page": paging.page,
        "perPage": paging.per_page,
        "totalItems": total_items,
        "totalPages": total_pages,
    });
    apply_fields(&mut envelope, params.text("fields"))?;
    Ok(Json(envelope))
}

async fn view(
    State(state): State<SharedState>,
    _: Superuser,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
) -> ApiResult<Json<Value>> {
    let store = state.logs.store().ok_or_else(ApiError::not_found)?;
    let entry = store.get(&id).await?;
    let mut body = serde_json::to_value(entry).map_err(ApiError::internal)?;
    let params = QueryParams::parse(raw.as_deref());
    apply_fields(&mut body, params.text("fields"))?;
    Ok(Json(body))
}

async fn stats(
    State(state): State<SharedState>,
    Superuser(auth): Superuser,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> ApiResult<Json<Value>> {
    let params = QueryParams::parse(raw.as_deref());
    // PocketBase words a bad stats filter differently from a bad list filter.
    let filters = filters(&state, &auth, &headers, &params).map_err(|error| {
        if error.status == StatusCode::BAD_REQUEST {
            ApiError::bad_request_msg("Invalid filter format.")
                .with_detail(error.detail.as_deref().unwrap_or("invalid filter"))
        } else {
            error
        }
    })?;
    let stats = match state.logs.store() {
        Some(store) => store.stats(filters).await?,
        None => Vec::new(),
    };
    let mut body = serde_json::to_value(stats).map_err(ApiError::internal)?;
    apply_fields(&mut body, params.text("fields"))?;
    Ok(Json(body))
}

/// The longest `DELETE /api/logs` waits for the log writer before truncating.
const FLUSH_LIMIT: std::time::Duration = std::time::Duration::from_secs(5);

async fn delete_all(State(state): State<SharedState>, _: Superuser) -> ApiResult<StatusCode> {
    if let Some(store) = state.logs.store() {
        // Entries of requests answered before this one may still wait in the writer's queue:
        // they are stored first, so the truncate removes them too.
        state.logs.flush(FLUSH_LIMIT).await;
        store.delete_all().await?;
    }
    Ok(StatusCode::NO_CONTENT)
}
