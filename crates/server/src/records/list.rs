//! `GET /api/collections/{collection}/records`: a page of records in PocketBase's list
//! envelope, restricted by the list rule, the client `filter` and the filters that come with
//! a `sort` through relations.
//!
//! `onRecordsListRequest` handlers run after the page query: `e.records` and `e.result`
//! (`page`, `perPage`, `totalItems`, `totalPages`) are theirs to edit before `e.next()`, which
//! renders the page as they left it.

use std::io::Write as _;
use std::sync::Arc;

use axum::extract::{RawQuery, Request, State};
use axum::response::Response;
use domain::{Collection, Record, RecordQuery};
use rules::RequestContext;
use serde_json::{Value, json};

use super::common::{reveal_managed_emails, target_for_read};
use super::create::request_parts;
use super::expand::expand_records_for;
use super::hooks;
use super::query::{self, QueryParams};
use crate::access;
use crate::error::ApiResult;
use crate::extract::{Auth, Path};
use crate::response::{KeyOrder, apply_fields, record_json_in};
use crate::state::SharedState;

const HOOK: &str = "onRecordsListRequest";

pub async fn list(
    State(state): State<SharedState>,
    Path(collection): Path<String>,
    Auth(auth): Auth,
    RawQuery(raw_query): RawQuery,
    request: Request,
) -> ApiResult<Response> {
    let target = target_for_read(&state, &collection).await?;
    let collection = &target.collection;
    let params = QueryParams::parse(raw_query.as_deref());
    let ctx = access::request_context(
        &auth,
        request.method(),
        request.headers(),
        params.pairs(),
        None,
    );
    let dialect = state.store.dialect();
    let rule = access::sql_guard(&target.rules.list, dialect, &ctx)?;
    let (filter, sort) = (params.text("filter"), params.text("sort"));
    query::refuse_privileged_references(filter, sort, &auth)?;
    let paging = query::paging(&params)?;
    let client_filter = access::compile_filter(&target.schema, collection, filter, &auth)?;
    let mut sort =
        access::compile_sort(&target.schema, collection, sort, &auth)?.to_sql(dialect, &ctx);
    if sort.terms.is_empty()
        && paging.per_page != 1
        && reads_through_joins(&target.rules.list, client_filter.as_ref(), &ctx)
    {
        // PocketBase reads such a list with `SELECT DISTINCT` over its joins, which SQLite
        // mostly answers walking the id index: its pages come in id order (observed on 0.40.6
        // for relation paths, back-relations, `:each` and `?=`, on fresh tables). Its plan, so
        // its order, can also follow a condition's index or, once it has gathered statistics
        // (it runs `PRAGMA optimize`), the table's own order. Plinth reads other rows in
        // subqueries, which keep the table's own plan, so it asks for the usual order. Not for
        // a page of one (the SDK's `getFirstListItem`): for `LIMIT 1` SQLite's plan there
        // walks the table and stops at the first match, the oldest (observed with 5 and 300
        // records), which is Plinth's plan order too.
        sort.terms.push(domain::SortTerm {
            expr: domain::SqlFragment::column(&collection.name, "id"),
            descending: false,
        });
    }
    let client_filter = client_filter.map(|compiled| compiled.to_sql(dialect, &ctx));
    let filters = rule
        .into_iter()
        .chain(client_filter)
        .chain(sort.filters)
        .collect();

    let query = RecordQuery {
        collection: collection.clone(),
        filters,
        sort: sort.terms,
        page: paging.page,
        per_page: paging.per_page,
        with_total: !paging.skip_total,
    };
    let hooked = hooks::hooked(&state, HOOK, collection);
    if hooked.is_none() && super::common::plain(&state, collection, &params) {
        // Nothing edits the answer: the page is serialized where the store read it.
        let (collection, viewer) = (collection.clone(), ctx.auth.clone());
        let body = state
            .store
            .list_records_mapped(
                query,
                Box::new(move |page| direct(&collection, &viewer, &page, &paging)),
            )
            .await?;
        return Ok(super::common::json_answer(body));
    }
    let page = state.store.list_records(query).await?;
    let (total_items, total_pages) = totals(&page, &paging);
    let result = json!({
        "page": paging.page,
        "perPage": paging.per_page,
        "totalItems": total_items,
        "totalPages": total_pages,
    });
    let Some(scripts) = hooked else {
        let envelope = render(
            &state,
            &ctx,
            collection,
            &page.items,
            None,
            &result,
            &params,
        )
        .await?;
        return Ok(super::common::json_answer(crate::json_out::to_vec(
            &envelope,
        )));
    };
    let parts = request_parts(&request);
    let collection = collection.clone();
    let wires: Vec<Value> = page
        .items
        .iter()
        .map(|r| hooks::wire(&collection, r))
        .collect();
    let answer: hooks::Answer = Default::default();
    let core = {
        let (state, collection, answer) = (state.clone(), collection.clone(), answer.clone());
        let (items, result) = (page.items, result.clone());
        let handle = tokio::runtime::Handle::current();
        Box::new(move |args: Value| -> ::hooks::HostResult {
            // The records and the result as the handlers left them.
            let exported: Vec<Value> = args
                .get("records")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            let records: Vec<Record> = exported
                .iter()
                .enumerate()
                .map(|(i, e)| match items.get(i) {
                    Some(stored) => hooks::record_from_export(stored, e),
                    None => Record::new(
                        e.get("data")
                            .and_then(Value::as_object)
                            .cloned()
                            .unwrap_or_default(),
                    ),
                })
                .collect();
            let result = args
                .get("result")
                .filter(|r| r.is_object())
                .unwrap_or(&result);
            let rendered = handle.block_on(render(
                &state,
                &ctx,
                &collection,
                &records,
                Some(&exported),
                result,
                &params,
            ));
            match rendered {
                Ok(envelope) => {
                    *crate::scripts::lock(&answer) = Some(envelope);
                    Ok(Value::Null)
                }
                Err(error) => Err(hooks::host_error(error)),
            }
        }) as crate::scripts::host::Core
    };
    let outcome = crate::scripts::records::request_chain(
        &state,
        &scripts,
        HOOK,
        &collection,
        &parts,
        None,
        json!({ "records": wires, "result": result }),
        core,
    )
    .await?;
    Ok(hooks::finish(&outcome, &answer, &parts, None))
}

/// Whether the list rule (applied to this caller) or the client filter reads through joins
/// (see [`rules::Compiled::reads_through_joins`]).
fn reads_through_joins(
    rule: &rules::Rule,
    filter: Option<&rules::Compiled>,
    ctx: &RequestContext,
) -> bool {
    let rule_joins = !ctx.auth.is_superuser()
        && matches!(rule, rules::Rule::Expr(compiled) if compiled.reads_through_joins());
    rule_joins || filter.is_some_and(rules::Compiled::reads_through_joins)
}

/// `totalItems` and `totalPages` of a page (-1 each when the total was skipped).
fn totals(page: &domain::RecordPage, paging: &query::Paging) -> (i64, i64) {
    match page.total {
        Some(total) if !paging.skip_total => (total as i64, total.div_ceil(paging.per_page) as i64),
        _ => (-1, -1),
    }
}

/// [`render`]'s envelope for a page [`super::common::plain`] lets through, written straight
/// from the records: the keys in the order `render`'s envelope serializes them.
fn direct(
    collection: &Collection,
    viewer: &domain::AuthContext,
    page: &domain::RecordPage,
    paging: &query::Paging,
) -> Vec<u8> {
    let (total_items, total_pages) = totals(page, paging);
    let mut out = Vec::with_capacity(256 + 512 * page.items.len());
    out.extend_from_slice(b"{\"items\":[");
    let order = KeyOrder::of(collection);
    for (i, record) in page.items.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        crate::response::RecordOut {
            collection,
            record,
            viewer,
            order: &order,
        }
        .write(&mut out);
    }
    // Writing into a `Vec` cannot fail.
    let _ = write!(
        out,
        "],\"page\":{},\"perPage\":{},\"totalItems\":{total_items},\"totalPages\":{total_pages}}}",
        paging.page, paging.per_page
    );
    out
}

/// The list envelope for `records` (their public JSON, emails revealed to managers,
/// expanded, shaped by what request hooks left on them (`exported`), enriched) with the
/// paging numbers of `result`, filtered by `fields`.
async fn render(
    state: &SharedState,
    ctx: &RequestContext,
    collection: &Arc<Collection>,
    records: &[Record],
    exported: Option<&[Value]>,
    result: &Value,
    params: &QueryParams,
) -> ApiResult<Value> {
    let order = KeyOrder::of(collection);
    let mut items: Vec<Value> = records
        .iter()
        .map(|record| record_json_in(&order, collection, record, &ctx.auth))
        .collect();
    reveal_managed_emails(state, ctx, collection, records, &mut items).await?;
    expand_records_for(
        state,
        ctx,
        collection,
        records,
        &mut items,
        params.first("expand"),
    )
    .await?;
    if let Some(exported) = exported {
        for ((record, item), one) in records.iter().zip(items.iter_mut()).zip(exported) {
            hooks::apply_export(item, &record.data, one);
        }
    }
    hooks::enrich(state, ctx, collection, records, &mut items).await?;
    let number = |key: &str| result.get(key).cloned().unwrap_or(Value::from(0));
    // Built by hand: `json!` would serialize `items` into a copy of itself (every record and
    // expansion taken apart and put together again) instead of moving it.
    let mut envelope = serde_json::Map::with_capacity(5);
    envelope.insert("items".into(), Value::Array(items));
    for key in ["page", "perPage", "totalItems", "totalPages"] {
        envelope.insert(key.into(), number(key));
    }
    let mut envelope = Value::Object(envelope);
    apply_fields(&mut envelope, params.text("fields"))?;
    Ok(envelope)
}
