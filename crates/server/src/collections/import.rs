//! `PUT /api/collections/import`: many collection definitions applied in one store
//! transaction. Each item updates the collection with its id (or, without one, its name) or
//! creates a new one; with `deleteMissing`, unlisted non-system collections and the fields an
//! item leaves out are dropped, without it those fields are kept (as PocketBase does).
//! Every draft is validated against the schema as it will be after the import, so imported
//! collections may reference each other.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::StatusCode;
use domain::collection_validate::validate_collection;
use domain::{Collection, FieldError, Schema, StoreError, ValidationErrors};
use serde_json::{Map, Value};

use super::form::{self, Draft, FormError};
use super::{FORM_INVALID, FORM_LOAD_FAILED, read_body, require_superuser};
use crate::error::{ApiError, ApiResult};
use crate::extract::Auth;
use crate::state::SharedState;

const IMPORT_FAILED: &str = "Failed to import collections.";

/// Codes whose messages PocketBase prints, inside an import failure, in their terse
/// lower-case form ("must be in a valid format"); other messages keep their sentence form.
const TERSE_CODES: [&str; 11] = [
    "validation_required",
    "validation_match_invalid",
    "validation_length_out_of_range",
    "validation_in_invalid",
    "validation_not_in_invalid",
    "validation_nil",
    "validation_empty",
    "validation_is_url",
    "validation_is_domain",
    "validation_min_greater_equal_than_required",
    "validation_max_less_equal_than_required",
];

pub(super) async fn import_collections(
    State(state): State<SharedState>,
    Auth(auth): Auth,
    request: Request,
) -> ApiResult<StatusCode> {
    require_superuser(&auth)?;
    let body = read_body(&state, request, FORM_LOAD_FAILED).await?;
    let value = |key: &str| {
        body.iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v)
    };
    let items: Vec<Map<String, Value>> = match value("collections") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(items)) => items
            .iter()
            .map(|item| match item {
                Value::Object(object) => Ok(object.clone()),
                _ => Err(ApiError::bad_request_msg(FORM_LOAD_FAILED)),
            })
            .collect::<ApiResult<_>>()?,
        Some(_) => return Err(ApiError::bad_request_msg(FORM_LOAD_FAILED)),
    };
    let delete_missing = match value("deleteMissing") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(flag)) => *flag,
        Some(_) => return Err(ApiError::bad_request_msg(FORM_LOAD_FAILED)),
    };
    if items.is_empty() {
        return Err(ApiError::validation(
            FORM_INVALID,
            ValidationErrors::single("collections", FieldError::required()),
        ));
    }

    let current = state.schema();
    let now = domain::time::now();
    let mut drafts: Vec<(Draft, Option<Arc<Collection>>)> = Vec::with_capacity(items.len());
    for item in &items {
        let existing = find_existing(&current, item);
        let draft = match &existing {
            Some(old) => form::draft_update(old, item, &now).map(|mut draft| {
                if !delete_missing {
                    keep_unlisted_fields(&mut draft.collection, old, item);
                }
                given_fields_first(&mut draft.collection, old, item);
                draft
            }),
            None => form::draft_new(item, &current, &now),
        };
        let draft = draft.map_err(|error| {
            let name = item.get("name").and_then(Value::as_str).unwrap_or("");
            let reason = match error {
                FormError::Load(message) => message.trim_end_matches('.').to_lowercase(),
                FormError::IdMismatch => "the id does not match the existing collection".into(),
            };
            failure(&format!(
                "Failed to import the collections configuration. Raw error:\ncollection {name:?}: {reason}."
            ))
        })?;
        drafts.push((draft, existing));
    }

    // Views are inferred now; one whose query reads a collection created by this same
    // import cannot be yet: it keeps the fields it was given (at least an `id`), and the
    // store, which infers every view again inside the import, has the last word.
    for (draft, _) in &mut drafts {
        let collection = &mut draft.collection;
        if !collection.is_view() {
            continue;
        }
        let query = collection.view_query.clone().unwrap_or_default();
        if query.trim().is_empty() {
            continue;
        }
        match state.store.infer_view_fields(&query).await {
            Ok(fields) => collection.fields = fields,
            Err(StoreError::Internal(detail)) => return Err(ApiError::internal(detail)),
            Err(_) => {
                if !collection.fields.iter().any(|f| f.name == "id") {
                    collection.fields.insert(0, domain::collection::id_field());
                }
            }
        }
    }

    let future = future_schema(&current, &drafts, delete_missing);
    for (draft, existing) in &mut drafts {
        validate_collection(
            &mut draft.errors,
            &draft.collection,
            existing.as_deref(),
            &future,
        );
        super::rule_check::validate_rule_texts(&mut draft.errors, &draft.collection, &future);
    }
    // PocketBase answers an index problem of any item on its own, as the top-level
    // `indexes` errors, before any other item's problems.
    if let Some((draft, _)) = drafts
        .iter()
        .find(|(draft, _)| draft.errors.contains("indexes"))
    {
        return Err(ApiError::validation(
            IMPORT_FAILED,
            draft.errors.subset("indexes"),
        ));
    }
    if let Some((draft, _)) = drafts.iter().find(|(draft, _)| !draft.errors.is_empty()) {
        let details = terse(&draft.errors.clone().into_json());
        let pretty = serde_json::to_string_pretty(&details).unwrap_or_default();
        return Err(failure(&format!(
            "Data validations failed for collection {:?} ({}):\n{pretty}.",
            draft.collection.name, draft.collection.id
        )));
    }

    let collections: Vec<Collection> = drafts.into_iter().map(|(d, _)| d.collection).collect();
    match state
        .store
        .import_collections(collections, delete_missing)
        .await
    {
        Ok(_) => Ok(StatusCode::NO_CONTENT),
        Err(StoreError::Internal(detail)) => Err(ApiError::internal(detail)),
        Err(StoreError::Validation(errors)) => Err(failure(&format!(
            "Failed to import the collections configuration. Raw error:\n{}.",
            serde_json::to_string(&errors.into_json()).unwrap_or_default()
        ))),
        Err(other) => Err(failure(&format!(
            "Failed to import the collections configuration. Raw error:\n{}.",
            match other {
                StoreError::Schema(detail) => detail,
                other => other.to_string(),
            }
        ))),
    }
}

/// On an import over an existing collection, PocketBase keeps the fields the item lists in
/// the item's order and puts the system fields it left out (re-added from the stored
/// collection) after them, in their stored order; a `PATCH` instead keeps `id` first.
/// Definitions exported, edited to drop `id`, and imported again therefore come back with
/// `id` last, and this does the same. View collections' fields come from their query.
fn given_fields_first(collection: &mut Collection, old: &Collection, item: &Map<String, Value>) {
    let Some(Value::Array(given)) = item.get("fields") else {
        return;
    };
    if collection.is_view() {
        return;
    }
    let listed = |field: &domain::Field| {
        given.iter().any(|entry| {
            let key = |name: &str| entry.get(name).and_then(Value::as_str);
            key("id").is_some_and(|id| !id.is_empty() && id == field.id)
                || key("name").is_some_and(|name| name.eq_ignore_ascii_case(&field.name))
        })
    };
    let (mut first, mut rest): (Vec<_>, Vec<_>) = std::mem::take(&mut collection.fields)
        .into_iter()
        .partition(|f| listed(f));
    // The ones left out follow in their stored order.
    rest.sort_by_key(|f| {
        old.fields
            .iter()
            .position(|o| o.id == f.id)
            .unwrap_or(usize::MAX)
    });
    first.extend(rest);
    collection.fields = first;
}

/// Without `deleteMissing`, PocketBase keeps the stored fields an item leaves out (matched by
/// id, else by name); `deleteMissing` drops them, as it drops unlisted collections. They are
/// appended here in stored order; [`given_fields_first`] then puts the listed ones first.
fn keep_unlisted_fields(collection: &mut Collection, old: &Collection, item: &Map<String, Value>) {
    if collection.is_view() || !matches!(item.get("fields"), Some(Value::Array(_))) {
        return;
    }
    for field in &old.fields {
        let present = collection
            .fields
            .iter()
            .any(|f| f.id == field.id || f.name.eq_ignore_ascii_case(&field.name));
        if !present {
            collection.fields.push(field.clone());
        }
    }
}

/// The stored collection an import item refers to: by id when it has one, else by name.
fn find_existing(schema: &Schema, item: &Map<String, Value>) -> Option<Arc<Collection>> {
    match item.get("id").and_then(Value::as_str) {
        Some(id) if !id.is_empty() => schema.get_by_id(id).cloned(),
        _ => {
            let name = item.get("name").and_then(Value::as_str)?;
            let lower = name.to_lowercase();
            schema
                .all()
                .iter()
                .find(|c| c.name.to_lowercase() == lower)
                .cloned()
        }
    }
}

/// The schema once the import is applied, for names, relations and index names.
fn future_schema(
    current: &Schema,
    drafts: &[(Draft, Option<Arc<Collection>>)],
    delete_missing: bool,
) -> Schema {
    let mut collections: Vec<Collection> = current
        .all()
        .iter()
        .filter(|c| !delete_missing || c.system)
        .map(|c| (**c).clone())
        .collect();
    for (draft, _) in drafts {
        let incoming = &draft.collection;
        match collections.iter_mut().find(|c| c.id == incoming.id) {
            Some(slot) => *slot = incoming.clone(),
            None => collections.push(incoming.clone()),
        }
    }
    Schema::new(collections)
}

fn failure(message: &str) -> ApiError {
    ApiError::validation(
        IMPORT_FAILED,
        ValidationErrors::single(
            "collections",
            FieldError::new("validation_collections_import_failure", message),
        ),
    )
}

/// The error tree with each leaf reduced to its message, as PocketBase prints it.
fn terse(tree: &Value) -> Value {
    match tree {
        Value::Object(map) if map.contains_key("code") => {
            let code = map.get("code").and_then(Value::as_str).unwrap_or("");
            let message = map.get("message").and_then(Value::as_str).unwrap_or("");
            if TERSE_CODES.contains(&code) {
                let mut chars = message.trim_end_matches('.').chars();
                let lowered: String = match chars.next() {
                    Some(first) => first.to_lowercase().chain(chars).collect(),
                    None => String::new(),
                };
                Value::String(lowered)
            } else if code == "validation_invalid_rule" {
                // A rule's raw parser error is printed without the closing period.
                Value::String(message.trim_end_matches('.').to_owned())
            } else {
                Value::String(message.to_owned())
            }
        }
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(key, child)| (key.clone(), terse(child)))
                .collect(),
        ),
        other => other.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn failures_print_terse_messages() {
        let tree = json!({
            "name": {"code": "validation_match_invalid", "message": "Must be in a valid format."},
            "type": {"code": "validation_collection_type_change", "message": "Collection type cannot be changed."},
            "listRule": {"code": "validation_invalid_rule",
                         "message": "Invalid rule. Raw error: invalid left operand \"x\" - unknown field \"x\"."},
            "fields": {"1": {"min": {"code": "validation_min_greater_equal_than_required",
                                      "message": "Must be no less than 0.", "params": {"threshold": 0}}}}
        });
        assert_eq!(
            terse(&tree),
            json!({
                "name": "must be in a valid format",
                "type": "Collection type cannot be changed.",
                "listRule": "Invalid rule. Raw error: invalid left operand \"x\" - unknown field \"x\"",
                "fields": {"1": {"min": "must be no less than 0"}}
            })
        );
    }
}
