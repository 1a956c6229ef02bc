//! Rule text validation on collection save: every API rule (and an auth collection's
//! `authRule`, `manageRule` and `mfa.rule`) must compile against the schema as it will be
//! after the save, or the save fails with `validation_invalid_rule` on that key, as
//! PocketBase answers.

use std::sync::Arc;

use domain::{Collection, FieldError, Schema, ValidationErrors};
use rules::{ErrorKind, Rule};

/// Adds a `validation_invalid_rule` error for every rule of `collection` that does not
/// compile against `future` (the schema after the save, holding `collection`). Keys that
/// already carry an error keep it.
pub fn validate_rule_texts(
    errors: &mut ValidationErrors,
    collection: &Collection,
    future: &Schema,
) {
    let schema = Arc::new(Schema::new(
        future.all().iter().map(|c| (**c).clone()).collect(),
    ));
    let Some(current) = schema.get_by_id(&collection.id).cloned() else {
        return;
    };
    let auth = collection.auth.as_ref();
    let mfa_rule = auth
        .map(|a| a.mfa.rule.clone())
        .filter(|rule| !rule.trim().is_empty());
    let texts = [
        ("listRule", collection.list_rule.clone()),
        ("viewRule", collection.view_rule.clone()),
        ("createRule", collection.create_rule.clone()),
        ("updateRule", collection.update_rule.clone()),
        ("deleteRule", collection.delete_rule.clone()),
        ("authRule", auth.and_then(|a| a.auth_rule.clone())),
        ("manageRule", auth.and_then(|a| a.manage_rule.clone())),
        ("mfa.rule", mfa_rule),
    ];
    for (key, text) in texts {
        if errors.contains(key) {
            continue;
        }
        if let Err(error) = Rule::compile(&schema, &current, text.as_deref()) {
            errors.add(key, invalid_rule(&error));
        }
    }
}

/// A collection with its new version in place of the old one (or added).
pub fn schema_with(schema: &Schema, collection: &Collection) -> Schema {
    let mut collections: Vec<Collection> = schema
        .all()
        .iter()
        .filter(|c| c.id != collection.id)
        .map(|c| (**c).clone())
        .collect();
    collections.push(collection.clone());
    Schema::new(collections)
}

/// PocketBase's error for a rule that does not compile. The raw error is PocketBase's
/// wording for the common syntax case and the language's own sentence otherwise.
fn invalid_rule(error: &rules::Error) -> FieldError {
    let raw = match error.kind {
        ErrorKind::Syntax => "invalid or incomplete filter expression".to_owned(),
        _ => error.message.trim_end_matches('.').to_owned(),
    };
    FieldError::new(
        "validation_invalid_rule",
        format!("Invalid rule. Raw error: {raw}."),
    )
}

#[cfg(test)]
mod tests {
    use domain::collection::users_collection;

    use super::*;

    #[test]
    fn bad_rules_are_reported_per_key() {
        let mut users = users_collection("");
        users.list_rule = Some("nope = 1".into());
        users.view_rule = Some("name = ".into());
        users.create_rule = Some("@request.body.anything = 1".into());
        users.update_rule = Some("id = @request.auth.id".into());
        users.delete_rule = None;
        let schema = schema_with(&Schema::new(Vec::new()), &users);
        let mut errors = ValidationErrors::new();
        validate_rule_texts(&mut errors, &users, &schema);
        assert!(errors.contains("listRule"));
        assert!(errors.contains("viewRule"));
        assert!(!errors.contains("createRule"));
        assert!(!errors.contains("updateRule"));
        assert!(!errors.contains("deleteRule"));
        let json = errors.into_json();
        assert_eq!(json["listRule"]["code"], "validation_invalid_rule");
        assert_eq!(
            json["viewRule"]["message"],
            "Invalid rule. Raw error: invalid or incomplete filter expression."
        );
    }
}
