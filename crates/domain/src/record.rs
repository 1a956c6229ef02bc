//! Records as the store hands them over: field name → canonical JSON value, one entry per
//! field of the collection (hidden and password fields included; the API strips them).

use serde_json::{Map, Value};

/// Field values keyed by field name, in the collection's field order.
pub type RecordData = Map<String, Value>;

/// One stored record.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    pub data: RecordData,
}

impl Record {
    pub fn new(data: RecordData) -> Self {
        Record { data }
    }

    /// The record id (`""` if missing, which a stored record never is).
    pub fn id(&self) -> &str {
        self.data.get("id").and_then(Value::as_str).unwrap_or("")
    }

    /// A text value (`""` when absent or not a string).
    pub fn text(&self, field: &str) -> &str {
        self.data.get(field).and_then(Value::as_str).unwrap_or("")
    }

    pub fn get(&self, field: &str) -> Option<&Value> {
        self.data.get(field)
    }

    pub fn bool(&self, field: &str) -> bool {
        self.data
            .get(field)
            .and_then(Value::as_bool)
            .unwrap_or(false)
    }
}

/// A number as PocketBase prints it: whole values without a fraction (`10`, not `10.0`).
pub fn number_to_json(n: f64) -> Value {
    if !n.is_finite() {
        return Value::from(0);
    }
    if n.fract() == 0.0 && n.abs() < 9.007_199_254_740_992e15 {
        Value::from(n as i64)
    } else {
        serde_json::Number::from_f64(n)
            .map(Value::Number)
            .unwrap_or(Value::from(0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_print_like_go() {
        assert_eq!(number_to_json(10.0).to_string(), "10");
        assert_eq!(number_to_json(-2.5).to_string(), "-2.5");
        assert_eq!(number_to_json(f64::NAN).to_string(), "0");
    }
}
