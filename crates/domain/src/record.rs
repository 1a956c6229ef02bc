//! Records as the store hands them over: field name → canonical JSON value, one entry per
//! field of the collection (hidden and password fields included; the API strips them).

use serde_json::{Map, Value};

/// Field values keyed by field name, in the collection's field order.
pub type RecordData = Map<String, Value>;

/// A record of `fields` holding `values`, one for each field in the fields' order.
///
/// Made from a copy of a map that already holds the fields' names (kept per thread, see
/// [`template`]), so no name is hashed: inserting them one by one hashed each (SipHash, as
/// `serde_json`'s map does), about a fifth of a row's decoding on a list page. Fields with
/// duplicate names (never in a stored collection) are inserted one by one as before: a later
/// value replaces an earlier one in the first one's place.
pub fn record_of(fields: &[crate::Field], values: impl IntoIterator<Item = Value>) -> RecordData {
    let mut values = values.into_iter();
    let Ok::<_, std::convert::Infallible>(data) =
        try_record_of(fields, |_, _| Ok(values.next().unwrap_or(Value::Null)));
    data
}

/// A record of `fields` whose values `value` gives (by position and field), stopping at the
/// first error: [`record_of`] for values that are read one by one and may fail, as a row's
/// columns are.
pub fn try_record_of<E>(
    fields: &[crate::Field],
    mut value: impl FnMut(usize, &crate::Field) -> Result<Value, E>,
) -> Result<RecordData, E> {
    match template(fields) {
        Some(mut data) => {
            for (i, (field, slot)) in fields.iter().zip(data.values_mut()).enumerate() {
                *slot = value(i, field)?;
            }
            Ok(data)
        }
        None => {
            let mut data = RecordData::with_capacity(fields.len());
            for (i, field) in fields.iter().enumerate() {
                data.insert(field.name.clone(), value(i, field)?);
            }
            Ok(data)
        }
    }
}

/// A record of `fields` with every value `null`, in the fields' order, or `None` when two
/// fields share a name. A copy of the thread's kept map for these fields, checked name by name
/// against them before it is used (a collection's fields may have been changed in place, or
/// another one's may have come to live at the same address); made anew when it does not match.
pub fn template(fields: &[crate::Field]) -> Option<RecordData> {
    use std::cell::RefCell;
    thread_local! {
        static TEMPLATES: RefCell<foldhash::HashMap<(usize, usize), RecordData>> =
            RefCell::default();
    }
    /// Templates kept per thread at most: one per collection in use, and schema changes
    /// make new ones; past this all are dropped and made again as needed.
    const MAX_TEMPLATES: usize = 256;
    let matches = |data: &RecordData| {
        data.len() == fields.len()
            && data
                .keys()
                .zip(fields)
                .all(|(name, field)| *name == field.name)
    };
    let key = (fields.as_ptr() as usize, fields.len());
    let kept = TEMPLATES.with(|templates| {
        templates
            .try_borrow()
            .ok()
            .and_then(|templates| templates.get(&key).filter(|data| matches(data)).cloned())
    });
    if kept.is_some() {
        return kept;
    }
    let fresh: RecordData = fields
        .iter()
        .map(|field| (field.name.clone(), Value::Null))
        .collect();
    if fresh.len() != fields.len() {
        return None;
    }
    TEMPLATES.with(|templates| {
        if let Ok(mut templates) = templates.try_borrow_mut() {
            if templates.len() >= MAX_TEMPLATES {
                templates.clear();
            }
            templates.insert(key, fresh.clone());
        }
    });
    Some(fresh)
}

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
    use serde_json::json;

    use super::*;

    fn named(names: &[&str]) -> Vec<crate::Field> {
        names
            .iter()
            .map(|name| {
                crate::Field::new(
                    name,
                    crate::field::FieldKind::Bool(crate::field::BasicOptions::default()),
                )
            })
            .collect()
    }

    /// What `record_of` stood for before templates: the names inserted one by one.
    fn inserted(fields: &[crate::Field], values: Vec<Value>) -> Vec<(String, Value)> {
        let data: RecordData = fields.iter().map(|f| f.name.clone()).zip(values).collect();
        data.into_iter().collect()
    }

    #[test]
    fn records_made_from_templates_match_names_inserted_one_by_one() {
        let mut fields = named(&["id", "title", "n", "ok"]);
        let values = |n: usize| (0..n).map(|i| json!(i * 10)).collect::<Vec<Value>>();
        for _ in 0..3 {
            let made = record_of(&fields, values(fields.len()));
            assert_eq!(
                made.into_iter().collect::<Vec<_>>(),
                inserted(&fields, values(fields.len()))
            );
        }
        // Changed in place (same address, same length, another name): the kept template no
        // longer matches and a new one is made.
        fields[2].name = "score".into();
        let made = record_of(&fields, values(4));
        assert_eq!(
            made.into_iter().collect::<Vec<_>>(),
            inserted(&fields, values(4))
        );
        assert!(template(&fields).is_some_and(|t| t.contains_key("score") && !t.contains_key("n")));
        // Duplicate names: no template, and the first place keeps the later value.
        let twice = named(&["id", "a", "a"]);
        assert!(template(&twice).is_none());
        let made = record_of(&twice, values(3));
        assert_eq!(
            made.into_iter().collect::<Vec<_>>(),
            inserted(&twice, values(3))
        );
        assert_eq!(record_of(&twice, values(3)).get("a"), Some(&json!(20)));
        // No fields at all.
        assert!(record_of(&[], Vec::new()).is_empty());
        // Read one by one: the same record, or the first error.
        for fields in [named(&["id", "title", "n"]), twice] {
            let read: Result<RecordData, ()> = try_record_of(&fields, |i, _| Ok(json!(i * 10)));
            assert_eq!(
                read.map(|data| data.into_iter().collect::<Vec<_>>()),
                Ok(inserted(&fields, values(fields.len())))
            );
            let failed = try_record_of(&fields, |i, field| match i {
                1 => Err(field.name.clone()),
                _ => Ok(Value::Null),
            });
            assert_eq!(failed, Err(fields[1].name.clone()));
        }
    }

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
