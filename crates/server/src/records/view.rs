//! `GET /api/collections/{collection}/records/{id}`: one record, if the view rule lets the
//! caller see it (else 404, as if it did not exist). `onRecordViewRequest` handlers run after
//! the record is loaded through the rule; what they change on `e.record` before `e.next()`
//! shows in the answer, and one may answer itself.

use axum::extract::{RawQuery, Request, State};
use axum::response::{IntoResponse, Response};
use rules::{RequestContext, Rule};
use serde_json::{Value, json};

use super::common::{respond_with_record, respond_with_record_as, target_for_read};
use super::create::request_parts;
use super::hooks;
use super::query::QueryParams;
use crate::access;
use crate::error::{ApiError, ApiResult};
use crate::extract::{Auth, Path};
use crate::state::SharedState;

const HOOK: &str = "onRecordViewRequest";

/// The record `id` if `rule` lets the caller see it. A rule that reads only the row and the
/// request is decided in memory on the row read by id (its SQL is not written for every
/// view); any other is the read's guard. A superusers-only rule is a 403 for everyone else.
async fn read_through_rule(
    state: &SharedState,
    collection: &std::sync::Arc<domain::Collection>,
    rule: &Rule,
    id: &str,
    ctx: &RequestContext,
) -> ApiResult<Option<domain::Record>> {
    if let Rule::Expr(compiled) = rule
        && compiled.is_row_local()
        && !ctx.auth.is_superuser()
    {
        let Some(record) = state
            .store
            .get_record(collection.clone(), id, Vec::new())
            .await?
        else {
            return Ok(None);
        };
        // `decide` evaluates it; a value only the database compares as PocketBase does is
        // looked up again under the rule's SQL there.
        let question = access::Question {
            rule,
            filter: None,
            collection,
            record: &record,
            stored: true,
        };
        let decision = access::decide(
            state.store.as_ref(),
            question,
            ctx,
            access::SqlCheck::Lenient,
        )
        .await?;
        return Ok(decision.allows().then_some(record));
    }
    let guard = access::sql_guard(rule, state.store.dialect(), ctx)?;
    Ok(state
        .store
        .get_record(collection.clone(), id, guard.into_iter().collect())
        .await?)
}

pub async fn view(
    State(state): State<SharedState>,
    Path((collection, id)): Path<(String, String)>,
    Auth(auth): Auth,
    RawQuery(raw_query): RawQuery,
    request: Request,
) -> ApiResult<Response> {
    let target = target_for_read(&state, &collection).await?;
    let params = QueryParams::parse(raw_query.as_deref());
    let ctx = access::request_context(
        &auth,
        request.method(),
        request.headers(),
        params.pairs(),
        None,
    );
    let record = read_through_rule(&state, &target.collection, &target.rules.view, &id, &ctx)
        .await?
        .ok_or_else(ApiError::not_found)?;
    let Some(scripts) = hooks::hooked(&state, HOOK, &target.collection) else {
        if super::common::plain(&state, &target.collection, &params) {
            let out = crate::response::RecordOut {
                collection: &target.collection,
                record: &record,
                viewer: &ctx.auth,
                order: &crate::response::KeyOrder::of(&target.collection),
            };
            return Ok(super::common::json_answer(out.to_vec()));
        }
        return Ok(
            respond_with_record(&state, &ctx, &target.collection, record, &params)
                .await?
                .into_response(),
        );
    };
    let parts = request_parts(&request);
    let collection = target.collection.clone();
    let answer: hooks::Answer = Default::default();
    let core = {
        let (state, collection, answer) = (state.clone(), collection.clone(), answer.clone());
        let record = record.clone();
        let handle = tokio::runtime::Handle::current();
        Box::new(move |args: Value| -> ::hooks::HostResult {
            let exported = args.get("record").cloned().unwrap_or(Value::Null);
            let shown = hooks::record_from_export(&record, &exported);
            let rendered = handle.block_on(respond_with_record_as(
                &state,
                &ctx,
                &collection,
                shown,
                &params,
                Some(&exported),
            ));
            match rendered {
                Ok(axum::Json(json)) => {
                    *crate::scripts::lock(&answer) = Some(json);
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
        json!({ "record": hooks::wire(&collection, &record) }),
        core,
    )
    .await?;
    Ok(hooks::finish(&outcome, &answer, &parts, None))
}
