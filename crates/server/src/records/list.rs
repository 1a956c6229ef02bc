//! `GET /api/collections/{collection}/records`: a page of records in PocketBase's list
//! envelope, restricted by the list rule, the client `filter` and the filters that come with
//! a `sort` through relations.

use axum::Json;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, Method};
use domain::RecordQuery;
use serde_json::{Value, json};

use super::common::{reveal_managed_emails, target_for_read};
use super::expand::expand_records_for;
use super::query::{self, QueryParams};
use crate::access;
use crate::error::ApiResult;
use crate::extract::Auth;
use crate::response::{apply_fields, record_json};
use crate::state::SharedState;

pub async fn list(
    State(state): State<SharedState>,
    Path(collection): Path<String>,
    Auth(auth): Auth,
    method: Method,
    headers: HeaderMap,
    RawQuery(raw_query): RawQuery,
) -> ApiResult<Json<Value>> {
    let target = target_for_read(&state, &collection)?;
    let collection = &target.collection;
    let params = QueryParams::parse(raw_query.as_deref());
    let ctx = access::request_context(&auth, &method, &headers, params.pairs(), None);
    let dialect = state.store.dialect();
    let rule = access::sql_guard(&target.rules.list, dialect, &ctx)?;
    let (filter, sort) = (params.text("filter"), params.text("sort"));
    query::refuse_privileged_references(filter, sort, &auth)?;
    let paging = query::paging(&params)?;
    let sort = access::compile_sort(&target.schema, collection, sort, &auth)?.to_sql(dialect, &ctx);
    let client_filter = access::compile_filter(&target.schema, collection, filter, &auth)?
        .map(|compiled| compiled.to_sql(dialect, &ctx));
    let filters = rule
        .into_iter()
        .chain(client_filter)
        .chain(sort.filters)
        .collect();

    let page = state
        .store
        .list_records(RecordQuery {
            collection: collection.clone(),
            filters,
            sort: sort.terms,
            page: paging.page,
            per_page: paging.per_page,
            with_total: !paging.skip_total,
        })
        .await?;
    let mut items: Vec<Value> = page
        .items
        .iter()
        .map(|record| record_json(collection, record, &auth))
        .collect();
    reveal_managed_emails(&state, &ctx, collection, &page.items, &mut items).await?;
    expand_records_for(
        &state,
        &ctx,
        collection,
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
