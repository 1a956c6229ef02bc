//! Collections API (superusers only): list, view, create, update, delete, truncate, import,
//! scaffolds, the OAuth2 provider list and the view dry run.
//!
//! Handlers read the body into a draft (`form`), check it with
//! `domain::collection_validate`, and hand it to the store; store refusals are mapped back to
//! PocketBase's error shapes here.

mod form;
mod import;
mod list;
mod rule_check;
#[cfg(test)]
mod tests;

use std::sync::Arc;

use crate::routing::{Routes, delete, get, post, put};
use axum::Json;
use axum::extract::{RawQuery, Request, State};
use axum::http::StatusCode;
use domain::collection_validate::{
    OAUTH2_PROVIDERS, index_failure, invalid_view_query, missing_primary_key, validate_collection,
    view_query_missing_id,
};
use domain::index::IndexDef;
use domain::{AuthContext, Collection, CollectionType, FieldError, StoreError, ValidationErrors};
use serde_json::{Map, Value, json};

use crate::error::{ApiError, ApiResult};
use crate::extract::{Auth, BodyError, Path, parse_body};
use crate::response::apply_fields;
use crate::state::SharedState;

use form::{Draft, FormError};

pub fn router() -> Routes {
    Routes::new()
        .route(
            "/api/collections",
            get(list_collections).post(create_collection),
        )
        .route("/api/collections/import", put(import::import_collections))
        .route("/api/collections/meta/scaffolds", get(scaffolds))
        .route(
            "/api/collections/meta/oauth2-providers",
            get(oauth2_providers),
        )
        .route("/api/collections/meta/dry-run-view", post(dry_run_view))
        .route("/api/collections/meta/check-rule", post(check_rule))
        .route(
            "/api/collections/{collection}",
            get(view_collection)
                .patch(update_collection)
                .delete(delete_collection),
        )
        .route(
            "/api/collections/{collection}/truncate",
            delete(truncate_collection),
        )
}

const CREATE_FAILED: &str = "Failed to create collection.";
const UPDATE_FAILED: &str = "Failed to update collection.";
const DELETE_FAILED: &str = "Failed to delete collection.";
const TRUNCATE_FAILED: &str =
    "Failed to truncate collection (most likely due to required cascade delete record references).";
/// What helper forms (import, dry run) say about a body they cannot read.
/// Rows a view dry run returns as its preview.
const DRY_RUN_SAMPLE: usize = 10;
const FORM_LOAD_FAILED: &str = "An error occurred while loading the submitted data.";
const FORM_INVALID: &str = "An error occurred while validating the submitted data.";

/// Guests get 401, other auth records 403, as PocketBase answers every collections endpoint.
fn require_superuser(auth: &AuthContext) -> ApiResult<()> {
    if auth.is_superuser() {
        Ok(())
    } else if auth.is_guest() {
        Err(ApiError::unauthorized(
            "The request requires valid record authorization token.",
        ))
    } else {
        Err(ApiError::forbidden(
            "The authorized record is not allowed to perform this action.",
        ))
    }
}

/// The collection named in the path (id, or name in any case), or 404.
fn find(state: &SharedState, id_or_name: &str) -> ApiResult<Arc<Collection>> {
    state
        .schema()
        .get(id_or_name)
        .cloned()
        .ok_or_else(ApiError::not_found)
}

/// Reads a body after the caller was checked (so guests get 401, not a body error).
async fn read_body(
    state: &SharedState,
    request: Request,
    malformed: &str,
) -> ApiResult<Map<String, Value>> {
    parse_body(request, state)
        .await
        .map_err(|error| match error {
            BodyError::TooLarge => ApiError::too_large(),
            BodyError::UnsupportedContentType | BodyError::Malformed => {
                ApiError::bad_request_msg(malformed).with_detail(BodyError::MALFORMED_DETAIL)
            }
        })
}

/// A 2xx JSON body, filtered by the request's `fields` parameter (its first occurrence).
fn respond(mut body: Value, query: Option<&str>) -> ApiResult<Json<Value>> {
    let pairs: Vec<(String, String)> =
        serde_urlencoded::from_str(query.unwrap_or("")).map_err(|_| ApiError::bad_request())?;
    if let Some((_, fields)) = pairs.iter().find(|(key, _)| key == "fields") {
        apply_fields(&mut body, fields)?;
    }
    Ok(Json(body))
}

async fn list_collections(
    State(state): State<SharedState>,
    Auth(auth): Auth,
    RawQuery(query): RawQuery,
) -> ApiResult<Json<Value>> {
    require_superuser(&auth)?;
    let params = list::ListParams::parse(query.as_deref())?;
    let schema = state.schema();
    let matching = params.apply(schema.all());
    let total = matching.len() as u64;
    let start = (params.page - 1).saturating_mul(params.per_page);
    let items: Vec<Value> = matching
        .iter()
        .skip(usize::try_from(start).unwrap_or(usize::MAX))
        .take(usize::try_from(params.per_page).unwrap_or(usize::MAX))
        .map(|c| c.to_api_json())
        .collect();
    let (total_items, total_pages) = if params.skip_total {
        (json!(-1), json!(-1))
    } else {
        (json!(total), json!(total.div_ceil(params.per_page)))
    };
    let envelope = json!({
        "items": items,
        "page": params.page,
        "perPage": params.per_page,
        "totalItems": total_items,
        "totalPages": total_pages,
    });
    respond(envelope, query.as_deref())
}

async fn view_collection(
    State(state): State<SharedState>,
    Auth(auth): Auth,
    Path(id_or_name): Path<String>,
    RawQuery(query): RawQuery,
) -> ApiResult<Json<Value>> {
    require_superuser(&auth)?;
    respond(find(&state, &id_or_name)?.to_api_json(), query.as_deref())
}

async fn create_collection(
    State(state): State<SharedState>,
    Auth(auth): Auth,
    RawQuery(query): RawQuery,
    request: Request,
) -> ApiResult<Json<Value>> {
    require_superuser(&auth)?;
    let body = read_body(&state, request, form::LOAD_TYPE).await?;
    let schema = state.schema();
    let now = domain::time::now();
    let Draft {
        mut collection,
        mut errors,
    } = form::draft_new(&body, &schema, &now).map_err(form_error)?;
    if collection.is_view() {
        infer_view_fields(&state, &mut collection, &mut errors).await?;
    }
    validate_collection(&mut errors, &collection, None, &schema);
    let future = rule_check::schema_with(&schema, &collection);
    rule_check::validate_rule_texts(&mut errors, &collection, &future);
    if !errors.is_empty() {
        return Err(ApiError::validation(CREATE_FAILED, errors));
    }
    let id = collection.id.clone();
    let schema = state
        .store
        .create_collection(collection.clone())
        .await
        .map_err(|e| save_error(e, &collection, CREATE_FAILED))?;
    let saved = schema
        .get_by_id(&id)
        .cloned()
        .unwrap_or_else(|| Arc::new(collection));
    crate::scripts::migrations::automigrate(
        &state,
        crate::scripts::migrations::CollectionChange::Created(&saved),
    )
    .await;
    respond(saved.to_api_json(), query.as_deref())
}

async fn update_collection(
    State(state): State<SharedState>,
    Auth(auth): Auth,
    Path(id_or_name): Path<String>,
    RawQuery(query): RawQuery,
    request: Request,
) -> ApiResult<Json<Value>> {
    require_superuser(&auth)?;
    let old = find(&state, &id_or_name)?;
    let body = read_body(&state, request, form::LOAD_DATA).await?;
    let schema = state.schema();
    let Draft {
        mut collection,
        mut errors,
    } = form::draft_update(&old, &body, &domain::time::now()).map_err(|error| match error {
        FormError::IdMismatch => id_mismatch(&schema, &body),
        other => form_error(other),
    })?;
    if collection.is_view() {
        infer_view_fields(&state, &mut collection, &mut errors).await?;
    }
    validate_collection(&mut errors, &collection, Some(&old), &schema);
    let future = rule_check::schema_with(&schema, &collection);
    rule_check::validate_rule_texts(&mut errors, &collection, &future);
    if !errors.is_empty() {
        return Err(ApiError::validation(UPDATE_FAILED, errors));
    }
    let schema = state
        .store
        .update_collection(collection.clone())
        .await
        .map_err(|e| save_error(e, &collection, UPDATE_FAILED))?;
    let saved = schema
        .get_by_id(&old.id)
        .cloned()
        .unwrap_or_else(|| Arc::new(collection));
    crate::scripts::migrations::automigrate(
        &state,
        crate::scripts::migrations::CollectionChange::Updated {
            old: &old,
            new: &saved,
        },
    )
    .await;
    respond(saved.to_api_json(), query.as_deref())
}

async fn delete_collection(
    State(state): State<SharedState>,
    Auth(auth): Auth,
    Path(id_or_name): Path<String>,
) -> ApiResult<StatusCode> {
    require_superuser(&auth)?;
    let collection = find(&state, &id_or_name)?;
    let schema = state.schema();
    if collection.system {
        return Err(ApiError::bad_request_msg(DELETE_FAILED));
    }
    // A collection's own relation fields do not hold it back.
    let mut referrers: Vec<&str> = Vec::new();
    for (other, _) in schema.referencing(&collection.id) {
        if other.id != collection.id && !referrers.contains(&other.name.as_str()) {
            referrers.push(&other.name);
        }
    }
    if !referrers.is_empty() {
        return Err(ApiError::bad_request_msg(&format!(
            "Failed to delete collection probably due to existing reference in {}.",
            referrers.join(", ")
        )));
    }
    // Anything else the store refuses (a view still reading the table) gets the plain
    // message, as in PocketBase.
    match state.store.delete_collection(&collection.id).await {
        Ok(_) => {
            crate::scripts::migrations::automigrate(
                &state,
                crate::scripts::migrations::CollectionChange::Deleted(&collection),
            )
            .await;
            Ok(StatusCode::NO_CONTENT)
        }
        Err(StoreError::NotFound) => Err(ApiError::not_found()),
        Err(StoreError::Internal(detail)) => Err(ApiError::internal(detail)),
        Err(other) => {
            tracing::debug!(error = %other, "collection delete refused");
            Err(ApiError::bad_request_msg(DELETE_FAILED))
        }
    }
}

async fn truncate_collection(
    State(state): State<SharedState>,
    Auth(auth): Auth,
    Path(id_or_name): Path<String>,
) -> ApiResult<StatusCode> {
    require_superuser(&auth)?;
    let collection = find(&state, &id_or_name)?;
    if collection.is_view() {
        return Err(ApiError::bad_request_msg(
            "View collections cannot be truncated since they don't store their own records.",
        ));
    }
    // Emptying the superusers would lock everyone out; PocketBase refuses it as well.
    if collection.is_superusers() {
        return Err(ApiError::bad_request_msg(TRUNCATE_FAILED));
    }
    match state.store.truncate_collection(&collection.id).await {
        Ok(()) => Ok(StatusCode::NO_CONTENT),
        Err(StoreError::NotFound) => Err(ApiError::not_found()),
        Err(StoreError::Internal(detail)) => Err(ApiError::internal(detail)),
        Err(other) => {
            tracing::debug!(error = %other, "truncate refused");
            Err(ApiError::bad_request_msg(TRUNCATE_FAILED))
        }
    }
}

async fn scaffolds(Auth(auth): Auth, RawQuery(query): RawQuery) -> ApiResult<Json<Value>> {
    require_superuser(&auth)?;
    let mut auth_scaffold = form::scaffold(CollectionType::Auth, "");
    // The scaffold's indexes name a table and id that do not exist yet.
    auth_scaffold.indexes =
        domain::collection::auth_indexes(&domain::ids::random_lower_alnum(10), "");
    let body = json!({
        "auth": auth_scaffold.to_api_json(),
        "base": form::scaffold(CollectionType::Base, "").to_api_json(),
        "view": form::scaffold(CollectionType::View, "").to_api_json(),
    });
    respond(body, query.as_deref())
}

async fn oauth2_providers(Auth(auth): Auth, RawQuery(query): RawQuery) -> ApiResult<Json<Value>> {
    require_superuser(&auth)?;
    // FIXME(#oauth2): PocketBase also returns each provider's SVG logo; Plinth ships no
    // artwork, so `logo` is empty.
    let providers: Vec<Value> = OAUTH2_PROVIDERS
        .iter()
        .map(|(name, display)| json!({"name": name, "displayName": display, "logo": ""}))
        .collect();
    respond(Value::Array(providers), query.as_deref())
}

async fn dry_run_view(
    State(state): State<SharedState>,
    Auth(auth): Auth,
    RawQuery(query_string): RawQuery,
    request: Request,
) -> ApiResult<Json<Value>> {
    require_superuser(&auth)?;
    let body = read_body(&state, request, FORM_LOAD_FAILED).await?;
    // Helper forms match keys case-insensitively.
    let query = match body.iter().find(|(k, _)| k.eq_ignore_ascii_case("query")) {
        None | Some((_, Value::Null)) => String::new(),
        Some((_, Value::String(text))) => text.clone(),
        Some(_) => return Err(ApiError::bad_request_msg(FORM_LOAD_FAILED)),
    };
    if query.trim().is_empty() {
        return Err(ApiError::validation(
            FORM_INVALID,
            ValidationErrors::single("query", FieldError::required()),
        ));
    }
    let (fields, sample) = match state.store.sample_view(&query, DRY_RUN_SAMPLE).await {
        Ok(found) => found,
        Err(StoreError::Internal(detail)) => return Err(ApiError::internal(detail)),
        Err(other) => {
            return Err(ApiError::bad_request_msg(&format!(
                "Invalid view query. Raw error: \n{}",
                view_error_detail(&other)
            )));
        }
    };
    if !fields.iter().any(|f| f.name == "id") {
        return Err(ApiError::bad_request_msg(
            "Invalid view query. Raw error: \nmissing required id column (you can use `(ROW_NUMBER() OVER()) as id` if you don't have one).",
        ));
    }
    let sample: Vec<Value> = sample
        .into_iter()
        .map(|record| json!(record.data))
        .collect();
    respond(
        json!({"fields": fields, "sample": sample}),
        query_string.as_deref(),
    )
}

/// Plinth's rule checker for the dashboard: compiles `rule` against `collection`, an unsaved
/// draft in the create/update body shape (an existing id or name is read as an update of it),
/// and answers where the text is wrong, so an editor can mark the error as the user types.
/// Offsets are UTF-16 code units, as a browser's text fields count them.
async fn check_rule(
    State(state): State<SharedState>,
    Auth(auth): Auth,
    request: Request,
) -> ApiResult<Json<Value>> {
    require_superuser(&auth)?;
    let body = read_body(&state, request, FORM_LOAD_FAILED).await?;
    let rule = match body.get("rule") {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(text)) => text.clone(),
        Some(_) => return Err(ApiError::bad_request_msg(FORM_LOAD_FAILED)),
    };
    let Some(Value::Object(draft_body)) = body.get("collection") else {
        return Err(ApiError::validation(
            FORM_INVALID,
            ValidationErrors::single("collection", FieldError::required()),
        ));
    };
    let schema = state.schema();
    let existing = [draft_body.get("id"), draft_body.get("name")]
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .find_map(|key| schema.get(key).cloned());
    let now = domain::time::now();
    let draft = match existing {
        Some(old) => form::draft_update(&old, draft_body, &now),
        None => form::draft_new(draft_body, &schema, &now),
    }
    .map_err(form_error)?;
    let answer = rule_check::check_text(&schema, &draft.collection, &rule);
    Ok(Json(answer))
}

/// A view collection's fields come from its query; problems land on `viewQuery`.
async fn infer_view_fields(
    state: &SharedState,
    collection: &mut Collection,
    errors: &mut ValidationErrors,
) -> ApiResult<()> {
    let query = collection.view_query.clone().unwrap_or_default();
    collection.fields.clear();
    if query.trim().is_empty() {
        return Ok(());
    }
    match state.store.infer_view_fields(&query).await {
        Ok(fields) => {
            if !fields.iter().any(|f| f.name == "id") {
                errors.add("viewQuery", view_query_missing_id());
            }
            collection.fields = fields;
            Ok(())
        }
        Err(StoreError::Internal(detail)) => Err(ApiError::internal(detail)),
        Err(other) => {
            let detail = view_error_detail(&other);
            if detail.contains("missing required id column") {
                errors.add("fields", missing_primary_key());
            }
            errors.add("viewQuery", invalid_view_query(&detail));
            Ok(())
        }
    }
}

/// The store's explanation of a refused view query, without its own prefix.
fn view_error_detail(error: &StoreError) -> String {
    match error {
        StoreError::Schema(detail) => detail
            .strip_prefix("invalid view query: ")
            .unwrap_or(detail)
            .to_owned(),
        other => other.to_string(),
    }
}

/// An update body naming another collection id: PocketBase reads the body over the stored
/// collection, so an id no collection has is not found (404), and one another collection has
/// is a mismatch on `id` (400).
fn id_mismatch(schema: &domain::Schema, body: &Map<String, Value>) -> ApiError {
    let id = body.get("id").and_then(Value::as_str).unwrap_or("");
    if schema.get_by_id(id).is_some() {
        ApiError::validation(
            UPDATE_FAILED,
            ValidationErrors::single(
                "id",
                FieldError::new("validation_values_mismatch", "Values don't match."),
            ),
        )
    } else {
        ApiError::not_found()
    }
}

fn form_error(error: FormError) -> ApiError {
    match error {
        FormError::Load(message) => ApiError::bad_request_msg(message),
        FormError::IdMismatch => ApiError::bad_request_msg(UPDATE_FAILED),
    }
}

/// A store's index failure without the `index "name": ` prefix it starts with.
fn index_detail<'a>(detail: &'a str, name: &str) -> &'a str {
    detail
        .strip_prefix(&format!("index {name:?}: "))
        .unwrap_or(detail)
}

/// Maps a store refusal of a create or update. Schema refusals land on the index or view
/// query they concern when that can be told, else PocketBase's "Raw error" message.
fn save_error(error: StoreError, collection: &Collection, message: &str) -> ApiError {
    match error {
        StoreError::Validation(errors) => ApiError::validation(message, errors),
        StoreError::NotFound => ApiError::not_found(),
        StoreError::Internal(detail) => ApiError::internal(detail),
        StoreError::TimedOut | StoreError::Hook { .. } => ApiError::bad_request_msg(message),
        StoreError::Schema(detail) => {
            if collection.is_view() {
                let error = invalid_view_query(&view_error_detail(&StoreError::Schema(detail)));
                return ApiError::validation(message, ValidationErrors::single("viewQuery", error));
            }
            let lower = detail.to_lowercase();
            let culprit = collection.indexes.iter().enumerate().find_map(|(i, sql)| {
                IndexDef::parse(sql)
                    .ok()
                    .filter(|index| lower.contains(&index.name.to_lowercase()))
                    .map(|index| (i, index.name))
            });
            match culprit {
                Some((i, name)) => ApiError::validation(
                    message,
                    ValidationErrors::single(
                        &format!("indexes.{i}"),
                        index_failure(&name, index_detail(&detail, &name)),
                    ),
                ),
                None => ApiError::bad_request_msg(&format!("{message} Raw error: \n{detail}")),
            }
        }
        StoreError::GuardRejected | StoreError::RequiredReference => {
            ApiError::bad_request_msg(message)
        }
    }
}

/// Saves a collection definition as a script gives it (`$app.save(collection)`): created
/// when no collection has its id (or name), else updated; validated as the API validates.
/// With `tx`, inside that transaction (whose schema it reads).
pub(crate) async fn save_from_script(
    state: &SharedState,
    tx: Option<&crate::scripts::SharedTx>,
    body: serde_json::Map<String, Value>,
) -> ApiResult<Value> {
    let schema = match tx {
        Some(tx) => tx
            .lock()
            .await
            .as_ref()
            .map(|open| open.schema())
            .ok_or_else(|| ApiError::internal("the transaction has ended"))?,
        None => state.schema(),
    };
    let key = |k: &str| body.get(k).and_then(Value::as_str).unwrap_or("").to_owned();
    let old = schema
        .get(&key("id"))
        .or_else(|| schema.get(&key("name")))
        .cloned()
        .filter(|_| !key("id").is_empty() || !key("name").is_empty());
    let now = domain::time::now();
    let (draft, failed) = match &old {
        Some(old) => (form::draft_update(old, &body, &now), UPDATE_FAILED),
        None => (form::draft_new(&body, &schema, &now), CREATE_FAILED),
    };
    let Draft {
        mut collection,
        mut errors,
    } = draft.map_err(form_error)?;
    if collection.is_view() {
        infer_view_fields(state, &mut collection, &mut errors).await?;
    }
    validate_collection(&mut errors, &collection, old.as_deref(), &schema);
    let future = rule_check::schema_with(&schema, &collection);
    rule_check::validate_rule_texts(&mut errors, &collection, &future);
    if !errors.is_empty() {
        return Err(ApiError::validation(failed, errors));
    }
    let id = collection.id.clone();
    let saved = match (tx, old.is_some()) {
        (Some(tx), exists) => {
            let mut guard = tx.lock().await;
            let open = guard
                .as_mut()
                .ok_or_else(|| ApiError::internal("the transaction has ended"))?;
            if exists {
                open.update_collection(collection.clone()).await
            } else {
                open.create_collection(collection.clone()).await
            }
        }
        (None, true) => state.store.update_collection(collection.clone()).await,
        (None, false) => state.store.create_collection(collection.clone()).await,
    }
    .map_err(|e| save_error(e, &collection, failed))?;
    let saved = saved
        .get_by_id(&id)
        .cloned()
        .unwrap_or_else(|| Arc::new(collection));
    Ok(saved.to_api_json())
}
