//! How a record's field values are kept in table columns. One encoding, owned here and used
//! twice: the engines bind it when they write a row, and the rules evaluator reads a row the
//! way the database holds it, so an in-memory decision and the SQL one see the same values.
//!
//! The format is PocketBase's (its data files stay alike): text-like fields as text (dates in
//! `YYYY-MM-DD HH:MM:SS.sssZ`, already formatted by [`crate::values`]), numbers as numbers,
//! bools as 0/1, json as JSON text or NULL, geoPoints as `{"lon":…,"lat":…}` text, multiple
//! select/relation/file fields as a JSON array of strings. Engines map each [`ColumnType`] to
//! a column type of their own; a value's stored form is the same on all of them.

use serde_json::Value;

use crate::field::{Field, FieldKind};
use crate::sql::SqlValue;

/// The kind of column a field is stored in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnType {
    /// Text: text, editor, email, url, date, autodate, password, single select/relation/file.
    Text,
    /// A number (SQLite: `NUMERIC`).
    Number,
    /// A bool, stored as 0/1 (SQLite: `BOOLEAN`).
    Bool,
    /// JSON text or NULL: json.
    Json,
    /// JSON object text `{"lon":…,"lat":…}`: geoPoint.
    Geo,
    /// JSON array text: multiple select/relation/file.
    Multi,
}

impl ColumnType {
    pub fn of(field: &Field) -> ColumnType {
        match &field.kind {
            FieldKind::Number(_) => ColumnType::Number,
            FieldKind::Bool(_) => ColumnType::Bool,
            FieldKind::Json(_) => ColumnType::Json,
            FieldKind::GeoPoint(_) => ColumnType::Geo,
            _ if field.is_multiple() => ColumnType::Multi,
            _ => ColumnType::Text,
        }
    }
}

/// The stored form of `value` in a column of type `ty`: what an engine binds for it. Lenient
/// with near misses (a number for a text field, a lone string for a multiple field), since
/// values are cast and validated before they get here; never fails.
///
/// This is the value as bound, before any conversion the column applies on its own (SQLite's
/// NUMERIC affinity turns the text `"5"` in a json column, or the real `3.0` in a number
/// column, into the integers 5 and 3; the rules evaluator models that part).
pub fn stored_value(ty: ColumnType, value: &Value) -> SqlValue {
    match ty {
        ColumnType::Text => SqlValue::Text(match value {
            Value::String(s) => s.clone(),
            Value::Null => String::new(),
            Value::Array(items) => items
                .last()
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned(),
            other => other.to_string(),
        }),
        ColumnType::Number => match value {
            Value::Number(n) => match n.as_i64() {
                Some(i) => SqlValue::Int(i),
                None => SqlValue::Real(n.as_f64().unwrap_or(0.0)),
            },
            Value::Bool(b) => SqlValue::Int(i64::from(*b)),
            Value::String(s) => s
                .trim()
                .parse::<f64>()
                .ok()
                .filter(|f| f.is_finite())
                .map_or(SqlValue::Int(0), SqlValue::Real),
            _ => SqlValue::Int(0),
        },
        ColumnType::Bool => SqlValue::Int(i64::from(match value {
            Value::Bool(b) => *b,
            Value::Number(n) => n.as_f64().is_some_and(|f| f != 0.0),
            Value::String(s) => matches!(s.as_str(), "true" | "1"),
            _ => false,
        })),
        ColumnType::Json => match value {
            Value::Null => SqlValue::Null,
            other => SqlValue::Text(other.to_string()),
        },
        ColumnType::Geo => SqlValue::Text(match value {
            Value::Object(_) => value.to_string(),
            _ => ZERO_GEO_POINT.to_owned(),
        }),
        ColumnType::Multi => SqlValue::Text(match value {
            Value::Array(_) => value.to_string(),
            Value::String(s) if !s.is_empty() => Value::Array(vec![value.clone()]).to_string(),
            _ => "[]".to_owned(),
        }),
    }
}

/// The stored form of `field`'s value in `data`, its zero value when absent.
pub fn stored_field_value(field: &Field, value: Option<&Value>) -> SqlValue {
    let ty = ColumnType::of(field);
    match value {
        Some(value) => stored_value(ty, value),
        None => stored_value(ty, &field.zero_value()),
    }
}

/// A geoPoint's zero value as stored (`Field::zero_value` of a geoPoint, as text).
const ZERO_GEO_POINT: &str = r#"{"lon":0,"lat":0}"#;

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::field::{BasicOptions, RelationOptions};

    fn text(s: &str) -> SqlValue {
        SqlValue::Text(s.to_owned())
    }

    #[test]
    fn the_stored_format_is_pinned() {
        use ColumnType::*;
        let cases: Vec<(ColumnType, Value, SqlValue)> = vec![
            // Text-like fields: the text itself; dates arrive formatted and stay as they are.
            (Text, json!("hello"), text("hello")),
            (
                Text,
                json!("2024-01-02 03:04:05.678Z"),
                text("2024-01-02 03:04:05.678Z"),
            ),
            (Text, Value::Null, text("")),
            (Text, json!(12), text("12")),
            (Text, json!(true), text("true")),
            (Text, json!(["a", "b"]), text("b")),
            (Text, json!([]), text("")),
            // Numbers: integers exact, others as reals; bools and numeric text accepted.
            (Number, json!(3), SqlValue::Int(3)),
            (Number, json!(-7), SqlValue::Int(-7)),
            (Number, json!(2.5), SqlValue::Real(2.5)),
            (Number, json!(3.0), SqlValue::Real(3.0)),
            (
                Number,
                json!(9_007_199_254_740_993_i64),
                SqlValue::Int(9_007_199_254_740_993),
            ),
            (Number, json!(u64::MAX), SqlValue::Real(u64::MAX as f64)),
            (Number, json!(true), SqlValue::Int(1)),
            (Number, json!(" 4.5 "), SqlValue::Real(4.5)),
            (Number, json!("NaN"), SqlValue::Int(0)),
            (Number, json!("x"), SqlValue::Int(0)),
            (Number, Value::Null, SqlValue::Int(0)),
            // Bools: 0/1.
            (Bool, json!(true), SqlValue::Int(1)),
            (Bool, json!(false), SqlValue::Int(0)),
            (Bool, json!(2), SqlValue::Int(1)),
            (Bool, json!(0.0), SqlValue::Int(0)),
            (Bool, json!("true"), SqlValue::Int(1)),
            (Bool, json!("1"), SqlValue::Int(1)),
            (Bool, json!("yes"), SqlValue::Int(0)),
            (Bool, Value::Null, SqlValue::Int(0)),
            // JSON: compact JSON text, NULL for null.
            (Json, Value::Null, SqlValue::Null),
            (Json, json!({"a": [1, "x"]}), text(r#"{"a":[1,"x"]}"#)),
            (Json, json!("5"), text(r#""5""#)),
            (Json, json!(5), text("5")),
            // GeoPoints: the object as JSON text, the zero point for anything else.
            (
                Geo,
                json!({"lon": 1.5, "lat": -2}),
                text(r#"{"lon":1.5,"lat":-2}"#),
            ),
            (Geo, Value::Null, text(r#"{"lon":0,"lat":0}"#)),
            // Multiple fields: a JSON array; a lone string becomes a one-item array.
            (Multi, json!(["a", "b"]), text(r#"["a","b"]"#)),
            (Multi, json!("a"), text(r#"["a"]"#)),
            (Multi, json!(""), text("[]")),
            (Multi, Value::Null, text("[]")),
        ];
        for (ty, value, expected) in cases {
            assert_eq!(stored_value(ty, &value), expected, "{ty:?} {value}");
        }
    }

    #[test]
    fn fields_map_to_their_column_type_and_zero_value() {
        let single = Field::new(
            "author",
            FieldKind::Relation(RelationOptions {
                max_select: 1,
                ..Default::default()
            }),
        );
        let multiple = Field::new(
            "tags",
            FieldKind::Relation(RelationOptions {
                max_select: 5,
                ..Default::default()
            }),
        );
        let point = Field::new("where", FieldKind::GeoPoint(BasicOptions::default()));
        assert_eq!(ColumnType::of(&single), ColumnType::Text);
        assert_eq!(ColumnType::of(&multiple), ColumnType::Multi);
        assert_eq!(ColumnType::of(&point), ColumnType::Geo);
        assert_eq!(stored_field_value(&single, None), text(""));
        assert_eq!(stored_field_value(&multiple, None), text("[]"));
        assert_eq!(
            stored_field_value(&point, None),
            SqlValue::Text(point.zero_value().to_string()),
            "the zero point is the field's zero value"
        );
        assert_eq!(
            stored_field_value(&multiple, Some(&json!(["x"]))),
            text(r#"["x"]"#)
        );
    }
}
