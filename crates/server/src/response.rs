//! Shapes shared by every endpoint that returns records: the public JSON of a record for a
//! given viewer, and the `fields` response filter.

use domain::{AuthContext, Collection, FieldKind, Record};
use serde_json::{Map, Value};

/// The record as `viewer` may see it: `collectionId`, `collectionName`, then every visible
/// field. Passwords and token keys are never shown; hidden fields only to superusers; an auth
/// record's email only to superusers, its owner, or when `emailVisibility` is on.
pub fn record_json(collection: &Collection, record: &Record, viewer: &AuthContext) -> Value {
    let superuser = viewer.is_superuser();
    let owner = viewer
        .record()
        .zip(viewer.collection())
        .is_some_and(|(r, c)| c.id == collection.id && r.id() == record.id());
    let mut out = Map::with_capacity(collection.fields.len() + 2);
    out.insert("collectionId".into(), Value::String(collection.id.clone()));
    out.insert(
        "collectionName".into(),
        Value::String(collection.name.clone()),
    );
    for field in &collection.fields {
        if matches!(field.kind, FieldKind::Password(_)) {
            continue;
        }
        if collection.is_auth() && field.name == "tokenKey" {
            continue;
        }
        if field.hidden && !superuser {
            continue;
        }
        if collection.is_auth()
            && field.name == "email"
            && !(superuser || owner || record.bool("emailVisibility"))
        {
            continue;
        }
        let value = record
            .data
            .get(&field.name)
            .cloned()
            .unwrap_or_else(|| field.zero_value());
        out.insert(field.name.clone(), value);
    }
    Value::Object(out)
}

/// An auth response: `{record, token}` with the email always included.
pub fn auth_response(collection: &Collection, record: &Record, token: String) -> Value {
    let mut record_value = record_json(
        collection,
        record,
        &AuthContext::Record {
            collection: std::sync::Arc::new(collection.clone()),
            record: Box::new(record.clone()),
            refreshable: true,
        },
    );
    if collection.is_superusers()
        && let Some(object) = record_value.as_object_mut()
    {
        // Superusers see their own hidden fields, as in PocketBase.
        for field in collection.fields.iter().filter(|f| f.hidden) {
            if matches!(field.kind, FieldKind::Password(_)) || field.name == "tokenKey" {
                continue;
            }
            let value = record.data.get(&field.name).cloned().unwrap_or(Value::Null);
            object.insert(field.name.clone(), value);
        }
    }
    serde_json::json!({"record": record_value, "token": token})
}
