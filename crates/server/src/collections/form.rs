//! Request bodies become collection definitions here. A create starts from PocketBase's
//! scaffold for the type, an update from the stored definition; the keys present in the body
//! replace what was there (`fields` is always the full new list, auth options merge deeply,
//! secrets are kept unless written). The result is normalized (field ids, system fields, auth
//! indexes) but not validated: that is `domain::collection_validate`'s job.

use domain::collection::{AuthOptions, Collection, CollectionType, OAuth2MappedFields};
use domain::collection_validate::{
    assign_field_ids_traced, ensure_auth_indexes, ensure_system_fields, min_threshold,
    new_collection_id, retarget_indexes,
};
use domain::field::{Field, FieldKind};
use domain::{FieldError, Schema, ValidationErrors};
use serde_json::{Map, Value, json};

/// Why a body could not become a definition at all.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FormError {
    /// The body is not the expected shape; the text is PocketBase's message for the case.
    Load(&'static str),
    /// An update body names another collection id (which cannot change).
    IdMismatch,
}

/// A create reads `type` and `name` first; anything unreadable there gets this message.
pub const LOAD_TYPE: &str = "Failed to load the collection type data due to invalid formatting.";
/// Any other unreadable value.
pub const LOAD_DATA: &str = "Failed to load the submitted data due to invalid formatting.";

/// A definition built from a body, with the problems found while reading it (they are
/// reported together with validation's).
#[derive(Debug)]
pub struct Draft {
    pub collection: Collection,
    pub errors: ValidationErrors,
}

/// Auth option keys: merged deeply into auth collections, ignored on the others.
const AUTH_KEYS: [&str; 15] = [
    "authRule",
    "manageRule",
    "authAlert",
    "oauth2",
    "passwordAuth",
    "mfa",
    "otp",
    "authToken",
    "passwordResetToken",
    "emailChangeToken",
    "verificationToken",
    "fileToken",
    "verificationTemplate",
    "resetPasswordTemplate",
    "confirmEmailChangeTemplate",
];

/// Numeric auth options and the minimum a negative value is reported against (they are
/// unsigned in the model, so a negative one cannot reach validation).
const AUTH_NUMBERS: [(&str, &str, u64); 8] = [
    ("authToken", "duration", 10),
    ("passwordResetToken", "duration", 10),
    ("emailChangeToken", "duration", 10),
    ("verificationToken", "duration", 10),
    ("fileToken", "duration", 10),
    ("mfa", "duration", 10),
    ("otp", "duration", 10),
    ("otp", "length", 4),
];

/// Unsigned field options: a negative value is a validation error, not a format error.
const UNSIGNED_FIELD_OPTIONS: [&str; 6] =
    ["min", "max", "maxSelect", "minSelect", "maxSize", "cost"];

/// An empty collection of `kind` as the API scaffolds it: the `id` field (and the auth
/// system fields, options and fresh secrets), no OAuth2 field mapping.
pub fn scaffold(kind: CollectionType, name: &str) -> Collection {
    let mut collection = Collection::scaffold(kind, name);
    if let Some(auth) = collection.auth.as_mut() {
        auth.oauth2.mapped_fields = OAuth2MappedFields::default();
    }
    collection
}

/// A new collection from a create body. Its id is the body's, else derived from type and
/// name (suffixed when taken in `schema`).
pub fn draft_new(
    body: &Map<String, Value>,
    schema: &Schema,
    now: &str,
) -> Result<Draft, FormError> {
    let mut errors = ValidationErrors::new();
    let kind = match body.get("type") {
        None | Some(Value::Null) => CollectionType::Base,
        Some(Value::String(text)) => match text.as_str() {
            "" | "base" => CollectionType::Base,
            "auth" => CollectionType::Auth,
            "view" => CollectionType::View,
            _ => {
                errors.add("type", FieldError::invalid_value());
                CollectionType::Base
            }
        },
        Some(_) => return Err(FormError::Load(LOAD_TYPE)),
    };
    let name = match body.get("name") {
        None | Some(Value::Null) => "",
        Some(Value::String(text)) => text.as_str(),
        Some(_) => return Err(FormError::Load(LOAD_TYPE)),
    };
    let mut collection = build(&scaffold(kind, name), body, &mut errors)?;
    collection.id = match body.get("id") {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(id)) => id.clone(),
        Some(_) => return Err(FormError::Load(LOAD_DATA)),
    };
    if collection.id.is_empty() {
        collection.id = new_collection_id(kind, &collection.name, schema);
    }
    finish(&mut collection);
    collection.created = now.to_owned();
    collection.updated = now.to_owned();
    Ok(Draft { collection, errors })
}

/// `old` with the body applied.
pub fn draft_update(
    old: &Collection,
    body: &Map<String, Value>,
    now: &str,
) -> Result<Draft, FormError> {
    let mut errors = ValidationErrors::new();
    match body.get("id") {
        None | Some(Value::Null) => {}
        Some(Value::String(id)) if id.is_empty() || *id == old.id => {}
        Some(Value::String(_)) => return Err(FormError::IdMismatch),
        Some(_) => return Err(FormError::Load(LOAD_DATA)),
    }
    match body.get("type") {
        None | Some(Value::Null) => {}
        Some(Value::String(text)) => {
            let wanted = if text.is_empty() {
                "base"
            } else {
                text.as_str()
            };
            if wanted != old.kind.as_str() {
                // The rest of the body is still read as the stored type, so its other
                // problems are reported too.
                errors.add(
                    "type",
                    FieldError::new(
                        "validation_collection_type_change",
                        "Collection type cannot be changed.",
                    ),
                );
            }
        }
        Some(_) => return Err(FormError::Load(LOAD_DATA)),
    }
    let mut collection = build(old, body, &mut errors)?;
    collection.id = old.id.clone();
    finish(&mut collection);
    collection.created = old.created.clone();
    collection.updated = now.to_owned();
    Ok(Draft { collection, errors })
}

/// Applies `body` over `base` (same type) and reads the result back as a definition.
fn build(
    base: &Collection,
    body: &Map<String, Value>,
    errors: &mut ValidationErrors,
) -> Result<Collection, FormError> {
    let load = FormError::Load(LOAD_DATA);
    let Value::Object(mut json) = serde_json::to_value(base).map_err(|_| load.clone())? else {
        return Err(load);
    };
    merge_body(&mut json, body, base.kind);
    if base.is_auth() {
        complete_providers(&mut json, base.auth.as_ref());
        clamp_negative_auth_numbers(&mut json, errors);
    }
    let raw_fields = json.remove("fields").unwrap_or(Value::Null);
    let (items, pending) = read_fields(raw_fields)?;
    let mut collection: Collection =
        serde_json::from_value(Value::Object(json)).map_err(|_| FormError::Load(LOAD_DATA))?;
    collection.kind = base.kind;
    if base.is_auth() && collection.auth.is_none() {
        return Err(FormError::Load(LOAD_DATA));
    }
    let (fields, final_ids) = assign_field_ids_traced(items, &base.fields);
    collection.fields = fields;
    ensure_system_fields(&mut collection);
    for (item, option, error) in pending {
        let Some(id) = final_ids.get(item) else {
            continue;
        };
        // An item overridden by a later one with the same id left no trace to report on.
        if final_ids[item + 1..].contains(id) {
            continue;
        }
        if let Some(position) = collection.fields.iter().position(|f| f.id == *id) {
            errors.add(&format!("fields.{position}.{option}"), error);
        }
    }
    Ok(collection)
}

/// Auth indexes and index table names follow the final id and name.
fn finish(collection: &mut Collection) {
    if collection.is_view() {
        return;
    }
    retarget_indexes(collection);
    ensure_auth_indexes(collection);
    // An OAuth2 mapping to a field the collection does not have is dropped, not refused.
    let fields = &collection.fields;
    if let Some(auth) = collection.auth.as_mut() {
        let mapped = &mut auth.oauth2.mapped_fields;
        for value in [
            &mut mapped.id,
            &mut mapped.name,
            &mut mapped.username,
            &mut mapped.avatar_url,
        ] {
            if !value.is_empty() && !fields.iter().any(|f| f.name == *value) {
                value.clear();
            }
        }
    }
}

/// Copies the keys a client may set from `body` into the serialized definition.
fn merge_body(json: &mut Map<String, Value>, body: &Map<String, Value>, kind: CollectionType) {
    for (key, value) in body {
        match key.as_str() {
            // Identity and timestamps are the server's; `type` was checked by the caller.
            "id" | "type" | "created" | "updated" => {}
            "fields" | "listRule" | "viewRule" | "createRule" | "updateRule" | "deleteRule" => {
                json.insert(key.clone(), value.clone());
            }
            "name" => {
                let name = if value.is_null() {
                    json!("")
                } else {
                    value.clone()
                };
                json.insert(key.clone(), name);
            }
            "system" => {
                let flag = if value.is_null() {
                    json!(false)
                } else {
                    value.clone()
                };
                json.insert(key.clone(), flag);
            }
            "indexes" => {
                let list = if value.is_null() {
                    json!([])
                } else {
                    value.clone()
                };
                json.insert(key.clone(), list);
            }
            "viewQuery" if kind == CollectionType::View => {
                let query = if value.is_null() {
                    json!("")
                } else {
                    value.clone()
                };
                json.insert(key.clone(), query);
            }
            key if kind == CollectionType::Auth && AUTH_KEYS.contains(&key) => {
                match json.get_mut(key) {
                    Some(existing) => deep_merge(existing, value),
                    None => {
                        json.insert(key.to_owned(), value.clone());
                    }
                }
            }
            // Unknown keys (and options of other collection types) are ignored.
            _ => {}
        }
    }
}

/// Objects merge key by key; anything else replaces.
fn deep_merge(target: &mut Value, patch: &Value) {
    match (target, patch) {
        (Value::Object(target), Value::Object(patch)) => {
            for (key, value) in patch {
                match target.get_mut(key) {
                    Some(existing) if existing.is_object() && value.is_object() => {
                        deep_merge(existing, value)
                    }
                    _ => {
                        target.insert(key.clone(), value.clone());
                    }
                }
            }
        }
        (target, patch) => *target = patch.clone(),
    }
}

/// Gives every OAuth2 provider PocketBase's full shape, and keeps the stored client secret of
/// a provider sent without one (clients never see secrets, so they cannot send them back).
fn complete_providers(json: &mut Map<String, Value>, stored: Option<&AuthOptions>) {
    let Some(Value::Array(providers)) = json.get_mut("oauth2").and_then(|o| o.get_mut("providers"))
    else {
        return;
    };
    let stored_providers = stored.map(|a| a.oauth2.providers.as_slice()).unwrap_or(&[]);
    for provider in providers.iter_mut() {
        let Value::Object(object) = provider else {
            continue;
        };
        let name = object.get("name").and_then(Value::as_str).unwrap_or("");
        let missing_secret = object
            .get("clientSecret")
            .and_then(Value::as_str)
            .is_none_or(str::is_empty);
        if missing_secret
            && let Some(secret) = stored_providers
                .iter()
                .find(|p| p.get("name").and_then(Value::as_str) == Some(name))
                .and_then(|p| p.get("clientSecret"))
        {
            object.insert("clientSecret".into(), secret.clone());
        }
        for (key, default) in [
            ("pkce", Value::Null),
            ("name", json!("")),
            ("clientId", json!("")),
            ("clientSecret", json!("")),
            ("authURL", json!("")),
            ("tokenURL", json!("")),
            ("userInfoURL", json!("")),
            ("displayName", json!("")),
            ("extra", json!({})),
        ] {
            let absent = object.get(key).is_none_or(|v| v.is_null() && key != "pkce");
            if absent {
                object.insert(key.into(), default);
            }
        }
    }
}

/// Negative durations and lengths read as 0, and are reported against their minimum unless
/// they belong to a disabled method (whose settings are not checked).
fn clamp_negative_auth_numbers(json: &mut Map<String, Value>, errors: &mut ValidationErrors) {
    for (group, key, minimum) in AUTH_NUMBERS {
        let Some(settings) = json.get_mut(group) else {
            continue;
        };
        let disabled = settings.get("enabled").and_then(Value::as_bool) == Some(false);
        if let Some(value) = settings.get_mut(key)
            && value.as_f64().is_some_and(|n| n < 0.0)
        {
            *value = json!(0);
            if !disabled {
                errors.add(&format!("{group}.{key}"), min_threshold(minimum));
            }
        }
    }
}

/// A reading problem of one field item: (item index, option, error).
type Pending = (usize, &'static str, FieldError);

/// Reads the `fields` list. Nulls read as defaults, dates are normalized, negative unsigned
/// options become errors; an item without a known `type` fails the whole body.
fn read_fields(raw: Value) -> Result<(Vec<Field>, Vec<Pending>), FormError> {
    let items = match raw {
        Value::Null => return Ok((Vec::new(), Vec::new())),
        Value::Array(items) => items,
        _ => return Err(FormError::Load(LOAD_DATA)),
    };
    let mut fields = Vec::with_capacity(items.len());
    let mut pending = Vec::new();
    for (index, item) in items.into_iter().enumerate() {
        let Value::Object(mut object) = item else {
            return Err(FormError::Load(LOAD_DATA));
        };
        object.retain(|_, value| !value.is_null());
        let is_number = object.get("type").and_then(Value::as_str) == Some("number");
        for option in UNSIGNED_FIELD_OPTIONS {
            if is_number && (option == "min" || option == "max") {
                continue;
            }
            if let Some(value) = object.get_mut(option)
                && value.as_f64().is_some_and(|n| n < 0.0)
            {
                *value = json!(0);
                pending.push((index, option, min_threshold(0)));
            }
        }
        let mut field: Field = serde_json::from_value(Value::Object(object))
            .map_err(|_| FormError::Load(LOAD_DATA))?;
        if let FieldKind::Date(options) = &mut field.kind {
            options.min = domain::time::normalize_input(&options.min);
            options.max = domain::time::normalize_input(&options.max);
        }
        fields.push(field);
    }
    Ok((fields, pending))
}

#[cfg(test)]
mod tests {
    use super::*;
    use domain::collection::{USERS_ID, users_collection};
    use domain::collection_validate::validate_collection;

    fn body(value: Value) -> Map<String, Value> {
        match value {
            Value::Object(map) => map,
            _ => Map::new(),
        }
    }

    fn schema() -> Schema {
        Schema::new(vec![users_collection("2026-01-01 00:00:00.000Z")])
    }

    const NOW: &str = "2026-02-02 00:00:00.000Z";

    #[test]
    fn a_minimal_create_gets_pocketbase_defaults() {
        let draft = draft_new(&body(json!({"name": "posts"})), &schema(), NOW).expect("reads");
        let c = draft.collection;
        assert!(draft.errors.is_empty());
        assert_eq!(c.id, "pbc_1125843985");
        assert_eq!(c.kind, CollectionType::Base);
        assert_eq!(c.fields.len(), 1);
        assert_eq!(c.fields[0].id, "text3208210256");
        assert_eq!((c.created.as_str(), c.updated.as_str()), (NOW, NOW));
        assert_eq!(c.list_rule, None);
        assert_eq!(c.to_api_json().get("viewQuery"), None);
    }

    #[test]
    fn a_new_auth_collection_has_options_indexes_and_secrets() {
        let draft = draft_new(
            &body(json!({"name": "members", "type": "auth", "otp": {"enabled": true}})),
            &schema(),
            NOW,
        )
        .expect("reads");
        let c = draft.collection;
        assert_eq!(c.id, "pbc_2620428958");
        assert_eq!(c.fields.len(), 6);
        assert_eq!(
            c.indexes[0],
            "CREATE UNIQUE INDEX `idx_tokenKey_pbc_2620428958` ON `members` (`tokenKey`)"
        );
        let auth = c.auth.as_ref().expect("auth options");
        assert!(auth.otp.enabled);
        assert_eq!(auth.otp.length, 8, "the rest of otp keeps its defaults");
        assert_eq!(auth.auth_token.secret.len(), 50);
        assert_eq!(auth.oauth2.mapped_fields.name, "");
        let mut errors = ValidationErrors::new();
        validate_collection(&mut errors, &c, None, &schema());
        assert!(errors.is_empty(), "{:?}", errors.into_json());
    }

    #[test]
    fn create_reports_unreadable_type_and_name_and_bad_types() {
        let load = |v: Value| draft_new(&body(v), &schema(), NOW).err();
        assert_eq!(load(json!({"type": 1})), Some(FormError::Load(LOAD_TYPE)));
        assert_eq!(
            load(json!({"name": {"a": 1}})),
            Some(FormError::Load(LOAD_TYPE))
        );
        assert_eq!(
            load(json!({"name": "x", "fields": [{"name": "a"}]})),
            Some(FormError::Load(LOAD_DATA))
        );
        assert_eq!(
            load(json!({"name": "x", "fields": [{"name": "a", "type": "text", "min": "x"}]})),
            Some(FormError::Load(LOAD_DATA))
        );
        assert_eq!(
            load(json!({"name": "x", "listRule": 5})),
            Some(FormError::Load(LOAD_DATA))
        );
        let draft =
            draft_new(&body(json!({"name": "x", "type": "nope"})), &schema(), NOW).expect("reads");
        assert_eq!(
            draft.errors.into_json()["type"]["code"],
            "validation_in_invalid"
        );
    }

    #[test]
    fn negative_options_are_errors_at_the_final_position() {
        let draft = draft_new(
            &body(json!({"name": "x", "fields": [
                {"name": "a", "type": "text", "min": -1},
                {"name": "n", "type": "number", "min": -5}
            ]})),
            &schema(),
            NOW,
        )
        .expect("reads");
        let errors = draft.errors.into_json();
        // The id field was put first, so the text field sits at index 1.
        assert_eq!(
            errors["fields"]["1"]["min"],
            json!({"code": "validation_min_greater_equal_than_required",
                   "message": "Must be no less than 0.", "params": {"threshold": 0}})
        );
        assert_eq!(
            errors["fields"].get("2"),
            None,
            "number bounds may be negative"
        );
    }

    #[test]
    fn update_merges_keys_fields_and_auth_options() {
        let users = users_collection("2026-01-01 00:00:00.000Z");
        let secret = users.auth.as_ref().map(|a| a.auth_token.secret.clone());
        let draft = draft_update(
            &users,
            &body(json!({
                "listRule": null,
                "otp": {"length": 6},
                "fields": [{"name": "nickname", "type": "text"}],
                "created": "2000-01-01 00:00:00.000Z"
            })),
            NOW,
        )
        .expect("reads");
        let c = draft.collection;
        assert_eq!(c.list_rule, None);
        assert_eq!(c.view_rule, users.view_rule, "absent keys stay");
        assert_eq!(c.created, users.created);
        assert_eq!(c.updated, NOW);
        let auth = c.auth.as_ref().expect("auth");
        assert_eq!((auth.otp.length, auth.otp.duration), (6, 180));
        assert_eq!(Some(auth.auth_token.secret.clone()), secret);
        let names: Vec<&str> = c.fields.iter().map(|f| f.name.as_str()).collect();
        // `fields` replaced the list; the system fields came back.
        assert_eq!(
            names,
            [
                "id",
                "nickname",
                "password",
                "tokenKey",
                "email",
                "emailVisibility",
                "verified"
            ]
        );
        assert_eq!(c.fields[4].id, "email3885137012");
        assert_eq!(c.indexes, users.indexes);
    }

    #[test]
    fn update_refuses_another_id_and_reports_type_changes() {
        let users = users_collection("");
        assert_eq!(
            draft_update(&users, &body(json!({"id": "other"})), NOW).err(),
            Some(FormError::IdMismatch)
        );
        let same = draft_update(&users, &body(json!({"id": USERS_ID})), NOW);
        assert!(same.is_ok());
        let draft = draft_update(&users, &body(json!({"type": "base"})), NOW).expect("reads");
        assert_eq!(draft.collection.kind, CollectionType::Auth);
        assert_eq!(
            draft.errors.into_json()["type"]["code"],
            "validation_collection_type_change"
        );
    }

    #[test]
    fn rename_moves_indexes_and_providers_keep_secrets() {
        let mut users = users_collection("");
        if let Some(auth) = users.auth.as_mut() {
            auth.oauth2.providers =
                vec![json!({"name": "google", "clientId": "a", "clientSecret": "s3cret"})];
        }
        let draft = draft_update(
            &users,
            &body(json!({
                "name": "people",
                "oauth2": {"providers": [{"name": "google", "clientId": "b"}]},
                "authToken": {"duration": -1}
            })),
            NOW,
        )
        .expect("reads");
        let c = draft.collection;
        assert!(
            c.indexes.iter().all(|i| i.contains("`people`")),
            "{:?}",
            c.indexes
        );
        let provider = &c.auth.as_ref().expect("auth").oauth2.providers[0];
        assert_eq!(provider["clientSecret"], "s3cret");
        assert_eq!(provider["clientId"], "b");
        assert_eq!(provider["pkce"], Value::Null);
        assert_eq!(provider["extra"], json!({}));
        let shown = c.to_api_json();
        assert_eq!(shown["oauth2"]["providers"][0].get("clientSecret"), None);
        assert_eq!(
            draft.errors.into_json()["authToken"]["duration"]["message"],
            "Must be no less than 10."
        );
    }

    #[test]
    fn options_of_other_types_and_unknown_keys_are_ignored() {
        let draft = draft_new(
            &body(
                json!({"name": "x", "otp": {"length": "bad"}, "viewQuery": "select 1", "foo": 1}),
            ),
            &schema(),
            NOW,
        )
        .expect("reads");
        assert!(draft.collection.auth.is_none());
        assert!(draft.collection.view_query.is_none());
    }

    #[test]
    fn dates_are_normalized_and_nulls_read_as_defaults() {
        let draft = draft_new(
            &body(json!({"name": "x", "indexes": null, "fields": [
                {"name": "d", "type": "date", "min": "garbage", "max": "2020-01-01", "id": null},
                {"name": "e", "type": "date", "min": "Mon, 01 Jan 2024 10:00:00 +0100",
                 "max": "2024-01-01 10:00"}
            ]})),
            &schema(),
            NOW,
        )
        .expect("reads");
        let field = &draft.collection.fields[1];
        assert_eq!(field.id, domain::ids::field_id("date", "d"));
        match &field.kind {
            FieldKind::Date(o) => {
                assert_eq!(o.min, "");
                assert_eq!(o.max, "2020-01-01 00:00:00.000Z");
            }
            other => panic!("unexpected kind {other:?}"),
        }
        // Read as a date field's value is (as PocketBase reads both).
        match &draft.collection.fields[2].kind {
            FieldKind::Date(o) => {
                assert_eq!(o.min, "2024-01-01 09:00:00.000Z");
                assert_eq!(o.max, "");
            }
            other => panic!("unexpected kind {other:?}"),
        }
    }
}
