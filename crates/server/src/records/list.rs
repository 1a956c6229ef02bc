//! `GET /api/collections/{collection}/records`: a page of records in PocketBase's list
//! envelope, restricted by the list rule and the client filter.

use axum::Json;
use axum::extract::{Path, RawQuery, State};
use domain::RecordQuery;
use serde_json::{Value, json};

use super::common::{collection_for_read, rule_guard};
use super::expand_records;
use super::query::{self, QueryParams};
use crate::error::ApiResult;
use crate::extract::Auth;
use crate::response::{apply_fields, record_json};
use crate::state::SharedState;

pub async fn list(
    State(state): State<SharedState>,
    Path(collection): Path<String>,
    Auth(auth): Auth,
    RawQuery(raw_query): RawQuery,
) -> ApiResult<Json<Value>> {
    let collection = collection_for_read(&state, &collection)?;
    let rule = rule_guard(collection.list_rule.as_deref(), &auth)?;
    let params = QueryParams::parse(raw_query.as_deref());
    let (filter, sort) = (params.text("filter"), params.text("sort"));
    query::refuse_privileged_references(filter, sort, &auth)?;
    let paging = query::paging(&params)?;
    let sort = query::sort_terms(&collection, sort, &auth, state.store.dialect())?;
    let client_filter = query::client_filter(&collection, filter, &auth)?;
    let filters = rule.into_iter().chain(client_filter).collect();

    let page = state
        .store
        .list_records(RecordQuery {
            collection: collection.clone(),
            filters,
            sort,
            page: paging.page,
            per_page: paging.per_page,
            with_total: !paging.skip_total,
        })
        .await?;
    let mut items: Vec<Value> = page
        .items
        .iter()
        .map(|record| record_json(&collection, record, &auth))
        .collect();
    expand_records(
        &state,
        &auth,
        &collection,
        &page.items,
        &mut items,
        params.first("expand"),
    )
    .await?;
    let (total_items, total_pages) = match page.total {
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
