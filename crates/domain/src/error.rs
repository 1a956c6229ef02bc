//! Validation errors in PocketBase's `data` shape: field name → `{code, message[, params]}`,
//! nested objects for nested forms (`fields.0.name`).

use serde::Serialize;
use serde_json::{Map, Value};

/// One field's validation failure.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FieldError {
    pub code: String,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub params: Option<Map<String, Value>>,
}

impl FieldError {
    pub fn new(code: &str, message: impl Into<String>) -> Self {
        FieldError {
            code: code.to_owned(),
            message: message.into(),
            params: None,
        }
    }

    pub fn with_param(mut self, key: &str, value: impl Into<Value>) -> Self {
        self.params
            .get_or_insert_with(Map::new)
            .insert(key.to_owned(), value.into());
        self
    }

    pub fn required() -> Self {
        FieldError::new("validation_required", "Cannot be blank.")
    }

    pub fn not_unique() -> Self {
        FieldError::new("validation_not_unique", "Value must be unique.")
    }

    pub fn invalid_value() -> Self {
        FieldError::new("validation_in_invalid", "Must be a valid value.")
    }
}

/// A tree of field errors. Keys are field names (or list indexes as text); leaves are
/// [`FieldError`]s. Serializes to the `data` object of a 400 response.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ValidationErrors {
    tree: Map<String, Value>,
}

impl ValidationErrors {
    pub fn new() -> Self {
        Self::default()
    }

    /// A tree holding one error at `field`.
    pub fn single(field: &str, error: FieldError) -> Self {
        let mut errors = Self::new();
        errors.add(field, error);
        errors
    }

    /// Records `error` at `path` (dot-separated: `fields.0.name`). The first error at a path
    /// wins, as PocketBase reports one error per field.
    pub fn add(&mut self, path: &str, error: FieldError) {
        let leaf = serde_json::to_value(&error).unwrap_or(Value::Null);
        let mut node = &mut self.tree;
        let mut parts = path.split('.').peekable();
        while let Some(part) = parts.next() {
            if parts.peek().is_none() {
                node.entry(part.to_owned()).or_insert(leaf);
                return;
            }
            let child = node
                .entry(part.to_owned())
                .or_insert_with(|| Value::Object(Map::new()));
            match child {
                // A leaf (an error object, whose `code` is text) already sits above this
                // path: keep it, as it is the first error.
                Value::Object(map) if map.get("code").is_some_and(Value::is_string) => return,
                Value::Object(map) => node = map,
                _ => return,
            }
        }
    }

    /// Adds every error of `other` under `prefix` (or at the top when `prefix` is empty).
    pub fn merge(&mut self, prefix: &str, other: ValidationErrors) {
        if prefix.is_empty() {
            for (key, value) in other.tree {
                self.tree.entry(key).or_insert(value);
            }
        } else {
            let child = self
                .tree
                .entry(prefix.to_owned())
                .or_insert_with(|| Value::Object(Map::new()));
            if let Value::Object(map) = child {
                for (key, value) in other.tree {
                    map.entry(key).or_insert(value);
                }
            }
        }
    }

    /// The errors under the top-level key `field` alone (empty when it has none).
    pub fn subset(&self, field: &str) -> ValidationErrors {
        let mut tree = Map::new();
        if let Some(value) = self.tree.get(field) {
            tree.insert(field.to_owned(), value.clone());
        }
        Self { tree }
    }

    pub fn is_empty(&self) -> bool {
        self.tree.is_empty()
    }

    pub fn contains(&self, field: &str) -> bool {
        self.tree.contains_key(field)
    }

    /// `Ok(())` when empty, else `Err(self)`.
    pub fn into_result(self) -> Result<(), ValidationErrors> {
        if self.is_empty() { Ok(()) } else { Err(self) }
    }

    pub fn into_json(self) -> Value {
        Value::Object(self.tree)
    }

    pub fn as_map(&self) -> &Map<String, Value> {
        &self.tree
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nested_paths_build_objects_and_first_error_wins() {
        let mut errors = ValidationErrors::new();
        errors.add("fields.0.name", FieldError::required());
        errors.add("fields.0.name", FieldError::not_unique());
        errors.add("name", FieldError::not_unique().with_param("x", 1));
        let json = errors.into_json();
        assert_eq!(json["fields"]["0"]["name"]["code"], "validation_required");
        assert_eq!(json["name"]["params"]["x"], 1);
    }

    #[test]
    fn an_error_above_a_path_keeps_the_path_out() {
        let mut errors = ValidationErrors::new();
        errors.add("fields", FieldError::required());
        errors.add("fields.0.name", FieldError::not_unique());
        assert_eq!(
            errors.into_json(),
            serde_json::json!({"fields": {"code": "validation_required", "message": "Cannot be blank."}})
        );
    }
}
