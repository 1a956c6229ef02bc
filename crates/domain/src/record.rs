//! Records as the store hands them over: field name → canonical JSON value, one entry per
//! field of the collection (hidden and password fields included; the API strips them).

use serde_json::{Map, Value};

/// Field values keyed by field name, in the collection's field order.
pub type RecordData = Map<String, Value>;

/// Each of `fields` with its value in `data` (`None` when missing), in the fields' order.
///
/// A record made here holds its fields in the collection's order, so each value is normally
/// the next entry of `data`, found by comparing its name; only an entry out of place is looked
/// up by name (hashing it, which costs several times more). The answer is the same either way.
pub fn by_field<'a>(
    fields: &'a [crate::Field],
    data: &'a RecordData,
) -> impl Iterator<Item = (&'a crate::Field, Option<&'a Value>)> {
    let mut entries = data.iter().peekable();
    fields.iter().map(move |field| {
        let value = match entries.peek() {
            Some((name, value)) if **name == field.name => {
                let value = *value;
                entries.next();
                Some(value)
            }
            _ => data.get(&field.name),
        };
        (field, value)
    })
}

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
    // Go prints an integral float64 below 1e21 with all its digits; as far as a JSON integer
    // reaches (i64, then u64), so do we. The conversion is exact: the value is integral and
    // in range.
    if n.fract() == 0.0 && n.abs() < i64::MAX as f64 {
        Value::from(n as i64)
    } else if n.fract() == 0.0 && n > 0.0 && n < u64::MAX as f64 {
        Value::from(n as u64)
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
        // Past 2^53 Go still prints the integral value's digits.
        assert_eq!(
            number_to_json(9_007_199_254_740_993.0).to_string(),
            "9007199254740992"
        );
        assert_eq!(number_to_json(-1e18).to_string(), "-1000000000000000000");
        assert_eq!(number_to_json(1e19).to_string(), "10000000000000000000");
        assert_eq!(number_to_json(f64::NAN).to_string(), "0");
    }
}
