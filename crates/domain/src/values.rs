//! Record values as PocketBase treats them on create and update: client input is cast to
//! each field type's canonical JSON (lenient, like Go's `cast` package: `"5"` becomes `5`,
//! `"abc"` becomes `0`, an unparseable date becomes `""`), the body modifiers (`views+`,
//! `+tags`, `tags-`, `code:autogenerate`) are applied to the current values, and the result
//! is validated with PocketBase's error codes, messages and params.
//!
//! Pure: relation existence and uniqueness are the store's checks, password hashing is the
//! server's (it fills [`PasswordInput::hash`] before the final [`apply`]).

use std::collections::{HashMap, HashSet};
use std::sync::{LazyLock, Mutex};

use chrono::{DateTime, Timelike, Utc};
use regex::Regex;
use serde_json::{Map, Value};

use crate::collection::Collection;
use crate::error::{FieldError, ValidationErrors};
use crate::field::{
    DateOptions, DomainOptions, EDITOR_DEFAULT_MAX_SIZE, Field, FieldKind, JSON_DEFAULT_MAX_SIZE,
    NumberOptions, PASSWORD_DEFAULT_MAX, PasswordOptions, SelectOptions, TEXT_DEFAULT_MAX,
    TextOptions,
};
use crate::record::{RecordData, number_to_json};

/// The most values a select, relation or file field may hold, whatever its `maxSelect`:
/// above every list a real schema needs, and low enough that a body listing hundreds of
/// thousands of ids is refused before it costs the store anything. A list longer than
/// this gets the field's "too many values" error with this number as its `maxSelect`.
pub const MAX_LIST_VALUES: usize = 10_000;

/// What one body key asks of a field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InputOp {
    /// `field`: replace the value.
    Set,
    /// `field+`: add (number) or append (select, relation, file).
    Append,
    /// `+field`: prepend (select, relation, file).
    Prepend,
    /// `field-`: subtract (number) or remove values (select, relation, file).
    Subtract,
    /// `field:autogenerate`: the sent prefix followed by a value from the field's pattern.
    Autogenerate,
}

/// One accepted body key.
#[derive(Debug, Clone, PartialEq)]
pub struct InputEntry {
    pub field: String,
    pub op: InputOp,
    pub value: Value,
}

/// A password sent for a `password` field: validated as plain text, stored as `hash`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PasswordInput {
    pub field: String,
    pub plain: String,
    /// Filled by the caller (hashing is slow and async) before the final [`apply`]. An empty
    /// `plain` clears the stored hash and needs none.
    pub hash: Option<String>,
}

/// Which body keys are accepted.
#[derive(Debug, Clone, Copy, Default)]
pub struct InputOptions<'a> {
    /// Whether hidden fields may be written (superusers); otherwise they are ignored.
    pub include_hidden: bool,
    /// Hidden fields that may be written anyway (an auth collection's `password`).
    pub allow_hidden: &'a [&'a str],
}

/// A request body reduced to the changes it asks for, in the order they apply: plain values
/// first, then modifiers in body order. Unknown keys, autodate fields and (unless allowed)
/// hidden fields are dropped silently, as PocketBase does.
#[derive(Debug, Clone, Default)]
pub struct RecordInput {
    entries: Vec<InputEntry>,
    passwords: Vec<PasswordInput>,
    new_files: HashMap<String, Vec<String>>,
}

impl RecordInput {
    pub fn parse(
        collection: &Collection,
        body: &Map<String, Value>,
        options: &InputOptions<'_>,
    ) -> Self {
        let mut sets = Vec::new();
        let mut modifiers = Vec::new();
        let mut passwords = Vec::new();
        for (key, value) in body {
            let Some((field, op)) = resolve_key(collection, key) else {
                continue;
            };
            if field.hidden
                && !options.include_hidden
                && !options.allow_hidden.contains(&field.name.as_str())
            {
                continue;
            }
            if !op_supported(field, op) {
                continue;
            }
            if matches!(field.kind, FieldKind::Password(_)) {
                passwords.retain(|p: &PasswordInput| p.field != field.name);
                passwords.push(PasswordInput {
                    field: field.name.clone(),
                    plain: to_go_string(value),
                    hash: None,
                });
                continue;
            }
            let entry = InputEntry {
                field: field.name.clone(),
                op,
                value: value.clone(),
            };
            if op == InputOp::Set {
                sets.push(entry);
            } else {
                modifiers.push(entry);
            }
        }
        sets.extend(modifiers);
        RecordInput {
            entries: sets,
            passwords,
            new_files: HashMap::new(),
        }
    }

    pub fn entries(&self) -> &[InputEntry] {
        &self.entries
    }

    pub fn passwords(&self) -> &[PasswordInput] {
        &self.passwords
    }

    /// For the caller to fill in hashes.
    pub fn passwords_mut(&mut self) -> &mut [PasswordInput] {
        &mut self.passwords
    }

    /// The plain password sent for `field`, if any.
    pub fn password(&self, field: &str) -> Option<&str> {
        self.passwords
            .iter()
            .find(|p| p.field == field)
            .map(|p| p.plain.as_str())
    }

    /// Whether the body touched `field` at all (any operation).
    pub fn touches(&self, field: &str) -> bool {
        self.entries.iter().any(|e| e.field == field) || self.password(field).is_some()
    }

    /// Drops every change to `field` (a value the caller may not set).
    pub fn remove_field(&mut self, field: &str) {
        self.entries.retain(|e| e.field != field);
        self.passwords.retain(|p| p.field != field);
    }

    /// Takes over the new file names declared on `other` (see [`RecordInput::add_new_files`]).
    pub fn merge_new_files(&mut self, other: RecordInput) {
        for (field, names) in other.new_files {
            self.add_new_files(&field, names);
        }
    }

    /// Declares names of files stored for `field` by this request, so that they are accepted
    /// as new values of the field.
    pub fn add_new_files(&mut self, field: &str, names: Vec<String>) {
        self.new_files
            .entry(field.to_owned())
            .or_default()
            .extend(names);
    }
}

/// Maps a body key to its field and operation, or `None` when it names no field.
fn resolve_key<'c>(collection: &'c Collection, key: &str) -> Option<(&'c Field, InputOp)> {
    if let Some(field) = collection.field(key) {
        return Some((field, InputOp::Set));
    }
    let candidates = [
        (key.strip_suffix(":autogenerate"), InputOp::Autogenerate),
        (key.strip_suffix('+'), InputOp::Append),
        (key.strip_prefix('+'), InputOp::Prepend),
        (key.strip_suffix('-'), InputOp::Subtract),
    ];
    candidates
        .into_iter()
        .find_map(|(name, op)| Some((collection.field(name?)?, op)))
}

/// Which operations each field type honours; the others are ignored like unknown keys.
fn op_supported(field: &Field, op: InputOp) -> bool {
    match (&field.kind, op) {
        (FieldKind::Autodate(_), _) => false,
        (_, InputOp::Set) => true,
        (FieldKind::Text(_), InputOp::Autogenerate) => true,
        (FieldKind::Number(_), InputOp::Append | InputOp::Subtract) => true,
        (
            FieldKind::Select(_) | FieldKind::Relation(_) | FieldKind::File(_),
            InputOp::Append | InputOp::Prepend | InputOp::Subtract,
        ) => true,
        _ => false,
    }
}

/// When and on what the changes are applied.
#[derive(Debug, Clone, Copy)]
pub struct ApplyContext<'a> {
    /// Creating a new record (else updating `current`).
    pub creating: bool,
    /// The timestamp for autodate fields, in PocketBase's format.
    pub now: &'a str,
}

/// A record with every field at its zero value: the starting point of a create.
pub fn blank_record(collection: &Collection) -> RecordData {
    crate::record::record_of(
        &collection.fields,
        collection.fields.iter().map(Field::zero_value),
    )
}

/// Applies `input` to `current` and validates the result: the new record data, or every
/// field error found.
pub fn build(
    collection: &Collection,
    current: &RecordData,
    input: &RecordInput,
    ctx: &ApplyContext<'_>,
) -> Result<RecordData, ValidationErrors> {
    validated(collection, apply(collection, current, input, ctx), input)
}

/// The second half of [`build`]: what [`apply`] returned, validated against the fields, its
/// errors and the validation's together. For a caller that already applied `input`.
///
/// A superuser record is always saved verified, whatever was sent (as in PocketBase).
pub fn validated(
    collection: &Collection,
    (mut data, mut errors): (RecordData, ValidationErrors),
    input: &RecordInput,
) -> Result<RecordData, ValidationErrors> {
    if collection.is_superusers() {
        data.insert("verified".into(), Value::Bool(true));
    }
    errors.merge("", validate(collection, &data, input));
    errors.into_result().map(|()| data)
}

/// Computes the new record data: casts and applies every entry to `current`, stores password
/// hashes, generates empty autogenerated text on create and stamps autodate fields. Returns
/// the errors only detectable while casting (a non-finite number, a changed primary key,
/// unknown file names).
pub fn apply(
    collection: &Collection,
    current: &RecordData,
    input: &RecordInput,
    ctx: &ApplyContext<'_>,
) -> (RecordData, ValidationErrors) {
    let mut errors = ValidationErrors::new();
    // The values by field position, not in a map: no name is hashed at each step, and the map
    // is made at the end from the fields' template (`record::record_of`).
    let mut values: Vec<Value> = crate::record::by_field(&collection.fields, current)
        .map(|(f, value)| value.cloned().unwrap_or_else(|| f.zero_value()))
        .collect();
    let position = |name: &str| collection.fields.iter().position(|f| f.name == name);
    for entry in &input.entries {
        let Some(at) = position(&entry.field) else {
            continue;
        };
        let (field, slot) = (&collection.fields[at], &mut values[at]);
        match apply_entry(field, slot, entry) {
            Ok(()) => {}
            Err(error) => errors.add(&field.name, error),
        }
    }
    for password in &input.passwords {
        if let Some(at) = position(&password.field) {
            values[at] = Value::String(match (&password.hash, password.plain.is_empty()) {
                (_, true) | (None, false) => String::new(),
                (Some(hash), false) => hash.clone(),
            });
        }
    }
    for (field, slot) in collection.fields.iter().zip(values.iter_mut()) {
        match &field.kind {
            FieldKind::Text(o) if ctx.creating && !o.autogenerate_pattern.is_empty() => {
                if slot.as_str().unwrap_or("").is_empty()
                    && let Some(generated) =
                        crate::ids::generate_from_pattern(&o.autogenerate_pattern)
                {
                    *slot = Value::String(generated);
                }
            }
            FieldKind::Autodate(o)
                if (ctx.creating && o.on_create) || (!ctx.creating && o.on_update) =>
            {
                *slot = Value::String(ctx.now.to_owned());
            }
            FieldKind::File(_) => {
                let original = string_list(current.get(&field.name).unwrap_or(&Value::Null));
                let known: HashSet<&str> = original
                    .iter()
                    .chain(input.new_files.get(&field.name).into_iter().flatten())
                    .map(String::as_str)
                    .collect();
                let invalid: Vec<String> = string_list(slot)
                    .into_iter()
                    .filter(|name| !known.contains(name.as_str()))
                    .collect();
                if !invalid.is_empty() {
                    errors.add(
                        &field.name,
                        FieldError::new(
                            "validation_invalid_file",
                            format!("Invalid new files: [{}].", invalid.join(" ")),
                        )
                        .with_param("invalidFiles", invalid),
                    );
                }
            }
            _ => {}
        }
        if field.is_primary_key() && !ctx.creating {
            let before = current.get(&field.name).and_then(Value::as_str);
            if before.is_some() && slot.as_str() != before {
                errors.add(
                    &field.name,
                    FieldError::new(
                        "validation_pk_change",
                        "The record primary key cannot be changed.",
                    ),
                );
            }
        }
    }
    (crate::record::record_of(&collection.fields, values), errors)
}

fn apply_entry(field: &Field, slot: &mut Value, entry: &InputEntry) -> Result<(), FieldError> {
    match (&field.kind, entry.op) {
        (_, InputOp::Set) => {
            *slot = cast(field, &entry.value)?;
        }
        (FieldKind::Text(o), InputOp::Autogenerate) => {
            let mut text = to_go_string(&entry.value);
            if !o.autogenerate_pattern.is_empty()
                && let Some(generated) = crate::ids::generate_from_pattern(&o.autogenerate_pattern)
            {
                text.push_str(&generated);
            }
            *slot = Value::String(text);
        }
        (FieldKind::Number(_), op) => {
            let current = slot.as_f64().unwrap_or(0.0);
            let delta = to_number(&entry.value)?;
            let next = if op == InputOp::Subtract {
                current - delta
            } else {
                current + delta
            };
            *slot = number_to_json(next);
        }
        (FieldKind::Select(_) | FieldKind::Relation(_) | FieldKind::File(_), op) => {
            let mut values = string_list(slot);
            let given = string_list(&entry.value);
            match op {
                InputOp::Append => values.extend(given),
                InputOp::Prepend => {
                    let tail = std::mem::replace(&mut values, given);
                    values.extend(tail);
                }
                InputOp::Subtract => {
                    let removed: HashSet<&str> = given.iter().map(String::as_str).collect();
                    values.retain(|v| !removed.contains(v.as_str()));
                }
                InputOp::Set | InputOp::Autogenerate => {}
            }
            *slot = shape_list(field, values);
        }
        _ => {}
    }
    Ok(())
}

/// Casts one client value to `field`'s canonical JSON. Only a number spelled as NaN or
/// infinity is an error; everything else casts to something (often the zero value).
pub fn cast(field: &Field, raw: &Value) -> Result<Value, FieldError> {
    Ok(match &field.kind {
        FieldKind::Text(_)
        | FieldKind::Editor(_)
        | FieldKind::Email(_)
        | FieldKind::Url(_)
        | FieldKind::Password(_) => Value::String(to_go_string(raw)),
        FieldKind::Number(_) => number_to_json(to_number(raw)?),
        FieldKind::Bool(_) => Value::Bool(to_go_bool(raw)),
        FieldKind::Date(_) | FieldKind::Autodate(_) => match raw {
            Value::String(text) => Value::String(crate::time::normalize_input(text)),
            _ => Value::String(String::new()),
        },
        FieldKind::Select(_) | FieldKind::Relation(_) | FieldKind::File(_) => {
            shape_list(field, string_list(raw))
        }
        FieldKind::Json(_) => cast_json(raw),
        FieldKind::GeoPoint(_) => cast_geo_point(raw),
    })
}

/// Go's `cast.ToString`: text as is, numbers in shortest form without exponent, booleans as
/// `true`/`false`; null, arrays and objects become `""`.
pub fn to_go_string(value: &Value) -> String {
    match value {
        Value::String(text) => text.clone(),
        Value::Number(n) => match (n.as_i64(), n.as_u64(), n.as_f64()) {
            (Some(i), _, _) => i.to_string(),
            (_, Some(u), _) => u.to_string(),
            (_, _, Some(f)) => f.to_string(),
            _ => n.to_string(),
        },
        Value::Bool(b) => b.to_string(),
        Value::Null | Value::Array(_) | Value::Object(_) => String::new(),
    }
}

/// Go's `strconv.ParseBool` on text, non-zero for numbers; anything else is false.
pub fn to_go_bool(value: &Value) -> bool {
    match value {
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|f| f != 0.0),
        Value::String(text) => matches!(text.as_str(), "1" | "t" | "T" | "TRUE" | "true" | "True"),
        Value::Null | Value::Array(_) | Value::Object(_) => false,
    }
}

/// A number from client input: numbers as is, text parsed like Go's `strconv.ParseFloat`
/// (unparseable text is 0), true is 1. NaN and infinities are refused.
pub fn to_number(value: &Value) -> Result<f64, FieldError> {
    let number = match value {
        Value::Number(n) => n.as_f64().unwrap_or(0.0),
        Value::Bool(true) => 1.0,
        Value::String(text) => parse_go_float(text).unwrap_or(0.0),
        _ => 0.0,
    };
    if number.is_finite() {
        Ok(number)
    } else {
        Err(FieldError::new(
            "validation_not_a_number",
            "The submitted number is not properly formatted.",
        ))
    }
}

/// Go's float syntax: optional sign, digits with `_` between them, fraction, exponent, and
/// the words `inf`/`infinity`/`nan`. Out-of-range values are errors (`None`), as in Go.
fn parse_go_float(text: &str) -> Option<f64> {
    let bytes = text.as_bytes();
    let mut cleaned = String::with_capacity(text.len());
    for (i, c) in text.char_indices() {
        if c == '_' {
            let digit_before = i > 0 && bytes[i - 1].is_ascii_digit();
            let digit_after = bytes.get(i + 1).is_some_and(u8::is_ascii_digit);
            if !(digit_before && digit_after) {
                return None;
            }
        } else {
            cleaned.push(c);
        }
    }
    let parsed: f64 = cleaned.parse().ok()?;
    let spelled_special = cleaned
        .trim_start_matches(['+', '-'])
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic());
    if parsed.is_infinite() && !spelled_special {
        return None;
    }
    Some(parsed)
}

/// The values of a select, relation or file field as a list: one text becomes a list of one,
/// array items are cast to text; empty items and duplicates are dropped (the first
/// occurrence stays where it was). Linear in the length of the list.
pub fn string_list(value: &Value) -> Vec<String> {
    let raw: Vec<String> = match value {
        Value::Array(items) => items.iter().map(to_go_string).collect(),
        Value::Null => Vec::new(),
        other => vec![to_go_string(other)],
    };
    distinct_non_empty(raw)
}

/// `values` without empty items and repeats, in first-seen order, in linear time.
fn distinct_non_empty(mut values: Vec<String>) -> Vec<String> {
    // A short list (one relation id, a few select values: nearly every write) is compared
    // pairwise, which costs less than hashing and allocates nothing; a long one is hashed, so
    // the work stays linear in its length.
    if values.len() <= SHORT_LIST {
        let mut kept = 0;
        for at in 0..values.len() {
            let keep = !values[at].is_empty() && !values[..kept].contains(&values[at]);
            if keep {
                values.swap(kept, at);
                kept += 1;
            }
        }
        values.truncate(kept);
        return values;
    }
    let keep: Vec<bool> = {
        let mut seen: foldhash::HashSet<&str> =
            foldhash::HashSet::with_capacity_and_hasher(values.len(), Default::default());
        values
            .iter()
            .map(|v| !v.is_empty() && seen.insert(v.as_str()))
            .collect()
    };
    values
        .into_iter()
        .zip(keep)
        .filter_map(|(value, keep)| keep.then_some(value))
        .collect()
}

/// Lists up to this long are made distinct by comparing each item with those kept before it.
const SHORT_LIST: usize = 16;

/// A list as the field stores it: an array for multiple fields, else its last item (or "").
fn shape_list(field: &Field, values: Vec<String>) -> Value {
    let mut values = distinct_non_empty(values);
    if field.is_multiple() {
        Value::Array(values.into_iter().map(Value::String).collect())
    } else {
        Value::String(values.pop().unwrap_or_default())
    }
}

/// JSON input is kept as sent, except that text holding serialized JSON (not starting with
/// whitespace) is stored as the value it encodes. Text whose parsed form would be out of
/// [`json_within_bounds`] stays text (and meets the field's size limit as such).
fn cast_json(raw: &Value) -> Value {
    if let Value::String(text) = raw
        && !text.starts_with(|c: char| c.is_ascii_whitespace())
        && let Ok(parsed) = parse_json_within_bounds(text.as_bytes())
    {
        return parsed;
    }
    raw.clone()
}

/// Deepest nesting of arrays and objects accepted in submitted JSON: serde_json's own
/// recursion limit (Go's decoder, hence PocketBase, allows 10000).
pub const MAX_JSON_DEPTH: usize = 128;

/// Most values (array items, object members and containers) accepted in one submitted JSON
/// document. Parsed, a value costs up to ~100 bytes whatever its text, so a 32 MiB body of
/// `[{},{},…]` would take over a gigabyte; this bound keeps a parsed body near 100 MiB
/// while leaving room for a `json` field at its default 1 MiB limit filled with numbers.
pub const MAX_JSON_VALUES: usize = 1_000_000;

/// Why submitted JSON was refused before parsing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JsonBoundsError {
    TooDeep,
    TooManyValues,
}

/// Checks, in one pass over the text and without allocating, that JSON `text` nests at most
/// [`MAX_JSON_DEPTH`] deep and holds at most [`MAX_JSON_VALUES`] values (counted as the
/// commas, `[` and `{` outside strings: one per value past the first of each container).
/// Malformed text may pass; the parser refuses it afterwards. Strings, most of a body's
/// bytes, are skipped 16 bytes at a time (see [`string_end`]).
pub fn json_within_bounds(text: &[u8]) -> Result<(), JsonBoundsError> {
    let mut depth = 0usize;
    let mut values = 0usize;
    let mut at = 0usize;
    while let Some(&byte) = text.get(at) {
        at += 1;
        match byte {
            b'"' => {
                at = string_end(text, at);
                continue;
            }
            b'[' | b'{' => {
                depth += 1;
                values += 1;
                if depth > MAX_JSON_DEPTH {
                    return Err(JsonBoundsError::TooDeep);
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            b',' => values += 1,
            _ => continue,
        }
        if values > MAX_JSON_VALUES {
            return Err(JsonBoundsError::TooManyValues);
        }
    }
    Ok(())
}

/// Where the string whose text starts at `at` ends: just past its closing quote, or the end
/// of `text` for an unterminated one. Blocks holding no byte JSON escapes (so neither `"` nor
/// `\`) are passed whole with the JSON writer's block test; an escape skips the byte it
/// escapes.
fn string_end(text: &[u8], mut at: usize) -> usize {
    use crate::json_out::{BLOCK, block_needs_escape};
    loop {
        while let Some(block) = text.get(at..).and_then(<[u8]>::first_chunk::<BLOCK>) {
            if block_needs_escape(block) {
                break;
            }
            at += BLOCK;
        }
        match text.get(at) {
            None => return text.len(),
            Some(b'"') => return at + 1,
            Some(b'\\') => at += 2,
            Some(_) => at += 1,
        }
    }
}

/// Why submitted JSON text was not parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JsonInputError {
    /// Past [`MAX_JSON_DEPTH`] or [`MAX_JSON_VALUES`].
    OutOfBounds(JsonBoundsError),
    /// Not JSON (serde_json's recursion limit, which is [`MAX_JSON_DEPTH`], lands here too).
    Malformed,
}

/// `text` parsed, when it is JSON within [`MAX_JSON_DEPTH`] and [`MAX_JSON_VALUES`]. The
/// scan of [`json_within_bounds`] runs only where it can refuse text the parser would take:
/// text of at most [`MAX_JSON_VALUES`] bytes cannot count more values than it has bytes, and
/// serde_json refuses nesting [`MAX_JSON_DEPTH`] deep itself (its recursion limit), so a
/// request body of ordinary size is read once instead of twice.
pub fn parse_json_within_bounds(text: &[u8]) -> Result<Value, JsonInputError> {
    if text.len() > MAX_JSON_VALUES {
        json_within_bounds(text).map_err(JsonInputError::OutOfBounds)?;
    }
    serde_json::from_slice(text).map_err(|_| JsonInputError::Malformed)
}

/// A request body's JSON as PocketBase reads one: its first value (whatever follows that value
/// is ignored, as a streaming decoder leaves it unread), within [`MAX_JSON_DEPTH`] and
/// [`MAX_JSON_VALUES`], and refused when any of its objects names a key twice (compared
/// after unescaping, at any depth; observed on 0.40.6). Text holding no value at all, only
/// whitespace, is malformed.
pub fn parse_request_json(text: &[u8]) -> Result<Value, JsonInputError> {
    parse_unique_keys(text, false)
}

/// A JSON document that is one value and nothing else (whitespace aside), with the bounds and
/// the unique keys of [`parse_request_json`]: how a multipart body's `@jsonPayload` part is
/// read (observed on 0.40.6: text after its value, or a key named twice, is refused).
pub fn parse_json_payload(text: &[u8]) -> Result<Value, JsonInputError> {
    parse_unique_keys(text, true)
}

fn parse_unique_keys(text: &[u8], whole: bool) -> Result<Value, JsonInputError> {
    use serde::Deserialize as _;
    if text.len() > MAX_JSON_VALUES {
        json_within_bounds(text).map_err(JsonInputError::OutOfBounds)?;
    }
    let mut deserializer = serde_json::Deserializer::from_slice(text);
    let UniqueKeys(value) =
        UniqueKeys::deserialize(&mut deserializer).map_err(|_| JsonInputError::Malformed)?;
    if whole {
        deserializer.end().map_err(|_| JsonInputError::Malformed)?;
    }
    Ok(value)
}

/// A JSON value whose objects never name a key twice (see [`parse_request_json`]).
struct UniqueKeys(Value);

impl<'de> serde::Deserialize<'de> for UniqueKeys {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer
            .deserialize_any(UniqueKeysVisitor)
            .map(UniqueKeys)
    }
}

struct UniqueKeysVisitor;

impl<'de> serde::de::Visitor<'de> for UniqueKeysVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, value: bool) -> Result<Value, E> {
        Ok(Value::Bool(value))
    }

    fn visit_i64<E>(self, value: i64) -> Result<Value, E> {
        Ok(Value::from(value))
    }

    fn visit_u64<E>(self, value: u64) -> Result<Value, E> {
        Ok(Value::from(value))
    }

    fn visit_f64<E>(self, value: f64) -> Result<Value, E> {
        Ok(serde_json::Number::from_f64(value).map_or(Value::Null, Value::Number))
    }

    fn visit_str<E>(self, value: &str) -> Result<Value, E> {
        Ok(Value::String(value.to_owned()))
    }

    fn visit_string<E>(self, value: String) -> Result<Value, E> {
        Ok(Value::String(value))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(64));
        while let Some(UniqueKeys(item)) = seq.next_element()? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut access: A) -> Result<Value, A::Error> {
        let mut map = Map::new();
        while let Some(key) = access.next_key::<String>()? {
            let UniqueKeys(value) = access.next_value()?;
            // One hash a key: the entry both finds a repeat and holds the place to insert.
            match map.entry(key) {
                serde_json::map::Entry::Occupied(_) => {
                    return Err(serde::de::Error::custom("a key is named twice"));
                }
                serde_json::map::Entry::Vacant(place) => {
                    place.insert(value);
                }
            }
        }
        Ok(Value::Object(map))
    }
}

/// `{"lon","lat"}` from an object (or its serialization); any non-number coordinate makes
/// the whole point zero, as a failed decode does in PocketBase.
fn cast_geo_point(raw: &Value) -> Value {
    let parsed;
    let object = match raw {
        Value::Object(map) => map,
        Value::String(text) => match serde_json::from_str::<Value>(text) {
            Ok(Value::Object(map)) => {
                parsed = map;
                &parsed
            }
            _ => return geo_point(0.0, 0.0),
        },
        _ => return geo_point(0.0, 0.0),
    };
    let coordinate = |key: &str| match object.get(key) {
        None | Some(Value::Null) => Some(0.0),
        Some(Value::Number(n)) => n.as_f64(),
        Some(_) => None,
    };
    match (coordinate("lon"), coordinate("lat")) {
        (Some(lon), Some(lat)) => geo_point(lon, lat),
        _ => geo_point(0.0, 0.0),
    }
}

fn geo_point(lon: f64, lat: f64) -> Value {
    let mut map = Map::new();
    map.insert("lon".into(), number_to_json(lon));
    map.insert("lat".into(), number_to_json(lat));
    Value::Object(map)
}

/// Validates every field of `data`. Password fields are checked on the plain text in
/// `input` when one was sent, else only for presence.
pub fn validate(
    collection: &Collection,
    data: &RecordData,
    input: &RecordInput,
) -> ValidationErrors {
    let mut errors = ValidationErrors::new();
    for (field, value) in crate::record::by_field(&collection.fields, data) {
        let value = value.unwrap_or(&Value::Null);
        let result = match &field.kind {
            FieldKind::Password(options) => match input.password(&field.name) {
                Some(plain) if !plain.is_empty() => validate_password(options, plain),
                _ => require(options.required, !is_blank_text(value)),
            },
            _ => validate_value(field, value),
        };
        if let Err(error) = result {
            errors.add(&field.name, error);
        }
    }
    errors
}

/// Validates one canonical value of `field` (not passwords: see [`validate_password`]).
pub fn validate_value(field: &Field, value: &Value) -> Result<(), FieldError> {
    match &field.kind {
        FieldKind::Text(o) => validate_text(o, value.as_str().unwrap_or("")),
        FieldKind::Editor(o) => {
            let text = value.as_str().unwrap_or("");
            require(o.required, !text.is_empty())?;
            let max = if o.max_size == 0 {
                EDITOR_DEFAULT_MAX_SIZE
            } else {
                o.max_size
            };
            if text.len() as u64 > max {
                return Err(FieldError::new(
                    "validation_content_size_limit",
                    format!("The maximum allowed content size is {max} bytes."),
                )
                .with_param("maxSize", max));
            }
            Ok(())
        }
        FieldKind::Number(o) => validate_number(o, value.as_f64().unwrap_or(0.0)),
        FieldKind::Bool(o) => require(o.required, value.as_bool().unwrap_or(false)),
        FieldKind::Email(o) => {
            let text = value.as_str().unwrap_or("");
            require(o.required, !text.is_empty())?;
            if text.is_empty() {
                return Ok(());
            }
            if !is_email(text) {
                return Err(FieldError::new(
                    "validation_is_email",
                    "Must be a valid email address.",
                ));
            }
            let domain = text.rsplit_once('@').map(|(_, d)| d).unwrap_or("");
            if !domain_allowed(o, domain) {
                return Err(FieldError::new(
                    "validation_email_domain_not_allowed",
                    "Email domain is not allowed.",
                ));
            }
            Ok(())
        }
        FieldKind::Url(o) => {
            let text = value.as_str().unwrap_or("");
            require(o.required, !text.is_empty())?;
            if text.is_empty() {
                return Ok(());
            }
            if !is_url(text) {
                return Err(FieldError::new(
                    "validation_invalid_url",
                    "Must be a valid url.",
                ));
            }
            let host = parse_go_url(text).map(|u| u.hostname()).unwrap_or_default();
            if !domain_allowed(o, &host) {
                return Err(FieldError::new(
                    "validation_url_domain_not_allowed",
                    "Url domain is not allowed.",
                ));
            }
            Ok(())
        }
        FieldKind::Date(o) => validate_date(o, value.as_str().unwrap_or("")),
        FieldKind::Autodate(_) => Ok(()),
        FieldKind::Select(o) => validate_select(field, o, value),
        FieldKind::Relation(o) => {
            let ids = string_list(value);
            require(o.required, !ids.is_empty())?;
            if ids.is_empty() {
                return Ok(());
            }
            if o.min_select > 0 && (ids.len() as u64) < o.min_select {
                return Err(FieldError::new(
                    "validation_not_enough_values",
                    format!("Select at least {}.", o.min_select),
                )
                .with_param("minSelect", o.min_select));
            }
            too_many(field.is_multiple(), o.max_select, ids.len())
        }
        FieldKind::File(o) => {
            let names = string_list(value);
            require(o.required, !names.is_empty())?;
            too_many_files(o.max_select, names.len())
        }
        FieldKind::Json(o) => {
            require(o.required, !is_blank_json(value))?;
            let max = if o.max_size == 0 {
                JSON_DEFAULT_MAX_SIZE
            } else {
                o.max_size
            };
            let size = serde_json::to_string(value).map(|s| s.len()).unwrap_or(0);
            if size as u64 > max {
                return Err(FieldError::new(
                    "validation_json_size_limit",
                    format!("The maximum allowed JSON size is {max} bytes."),
                )
                .with_param("maxSize", max));
            }
            Ok(())
        }
        FieldKind::Password(o) => require(o.required, !is_blank_text(value)),
        FieldKind::GeoPoint(o) => {
            let lon = value.get("lon").and_then(Value::as_f64).unwrap_or(0.0);
            let lat = value.get("lat").and_then(Value::as_f64).unwrap_or(0.0);
            require(o.required, lon != 0.0 || lat != 0.0)?;
            if !(-90.0..=90.0).contains(&lat) {
                return Err(FieldError::new(
                    "validation_invalid_latitude",
                    "Latitude must be between -90 and 90 degrees.",
                ));
            }
            if !(-180.0..=180.0).contains(&lon) {
                return Err(FieldError::new(
                    "validation_invalid_longitude",
                    "Longitude must be between -180 and 180 degrees.",
                ));
            }
            Ok(())
        }
    }
}

/// Validates a plain password before hashing. Lengths count characters; bcrypt refuses more
/// than 72 bytes, which PocketBase reports as an invalid value whatever the field's max.
pub fn validate_password(options: &PasswordOptions, plain: &str) -> Result<(), FieldError> {
    require(options.required, !plain.is_empty())?;
    if plain.is_empty() {
        return Ok(());
    }
    if plain.len() > 72 {
        return Err(FieldError::new(
            "validation_invalid_value",
            "Invalid value.",
        ));
    }
    let length = plain.chars().count() as u64;
    if options.min > 0 && length < options.min {
        return Err(FieldError::new(
            "validation_min_text_constraint",
            format!("Must be at least {} character(s).", options.min),
        ));
    }
    let max = if options.max == 0 {
        PASSWORD_DEFAULT_MAX
    } else {
        options.max
    };
    if length > max {
        return Err(FieldError::new(
            "validation_max_text_constraint",
            format!("Must be less than {max} character(s)."),
        ));
    }
    if !options.pattern.is_empty() && !pattern_matches(&options.pattern, plain) {
        return Err(invalid_format());
    }
    Ok(())
}

fn validate_text(options: &TextOptions, text: &str) -> Result<(), FieldError> {
    require(options.required, !text.is_empty())?;
    if text.is_empty() {
        return Ok(());
    }
    let length = text.chars().count() as u64;
    if options.min > 0 && length < options.min {
        return Err(FieldError::new(
            "validation_min_text_constraint",
            format!("Must be at least {} character(s).", options.min),
        )
        .with_param("min", options.min));
    }
    let max = if options.max == 0 {
        TEXT_DEFAULT_MAX
    } else {
        options.max
    };
    if length > max {
        return Err(FieldError::new(
            "validation_max_text_constraint",
            format!("Must be no more than {max} character(s)."),
        )
        .with_param("max", max));
    }
    if !options.pattern.is_empty() && !pattern_matches(&options.pattern, text) {
        return Err(invalid_format());
    }
    Ok(())
}

fn validate_number(options: &NumberOptions, number: f64) -> Result<(), FieldError> {
    require(options.required, number != 0.0)?;
    if number == 0.0 {
        return Ok(());
    }
    // NOTE: PocketBase compares with a round trip through int64, so integral values outside
    // its range count as decimals.
    let integral = number.fract() == 0.0 && number.abs() < 9.223_372_036_854_775e18;
    if options.only_int && !integral {
        return Err(FieldError::new(
            "validation_only_int_constraint",
            "Decimal numbers are not allowed.",
        ));
    }
    if let Some(min) = options.min
        && number < min
    {
        return Err(FieldError::new(
            "validation_min_number_constraint",
            format!("Must be greater or equal than {}.", number_to_json(min)),
        )
        .with_param("min", number_to_json(min)));
    }
    if let Some(max) = options.max
        && number > max
    {
        return Err(FieldError::new(
            "validation_max_number_constraint",
            format!("Must be less or equal than {}.", number_to_json(max)),
        )
        .with_param("max", number_to_json(max)));
    }
    Ok(())
}

fn validate_date(options: &DateOptions, text: &str) -> Result<(), FieldError> {
    require(options.required, !text.is_empty())?;
    let Some(at) = crate::time::parse(text) else {
        return Ok(());
    };
    if let Some(min) = crate::time::parse(&options.min)
        && at < min
    {
        return Err(FieldError::new(
            "validation_min_greater_equal_than_required",
            format!("Must be no less than {}.", go_time_string(min)),
        )
        .with_param("threshold", go_rfc3339_nano(min)));
    }
    if let Some(max) = crate::time::parse(&options.max)
        && at > max
    {
        return Err(FieldError::new(
            "validation_max_less_equal_than_required",
            format!("Must be no greater than {}.", go_time_string(max)),
        )
        .with_param("threshold", go_rfc3339_nano(max)));
    }
    Ok(())
}

fn validate_select(
    field: &Field,
    options: &SelectOptions,
    value: &Value,
) -> Result<(), FieldError> {
    let values = string_list(value);
    require(options.required, !values.is_empty())?;
    too_many(field.is_multiple(), options.max_select, values.len())?;
    let allowed: HashSet<&str> = options.values.iter().map(String::as_str).collect();
    if let Some(unknown) = values.iter().find(|v| !allowed.contains(v.as_str())) {
        return Err(FieldError::new(
            "validation_invalid_value",
            format!("Invalid value {unknown}."),
        )
        .with_param("value", unknown.as_str()));
    }
    Ok(())
}

fn too_many(multiple: bool, max_select: u64, count: usize) -> Result<(), FieldError> {
    let max_select = max_select.min(MAX_LIST_VALUES as u64);
    if multiple && count as u64 > max_select {
        return Err(FieldError::new(
            "validation_too_many_values",
            format!("Select no more than {max_select}."),
        )
        .with_param("maxSelect", max_select));
    }
    Ok(())
}

/// Files have their own code and wording; a single-file field holds at most one.
fn too_many_files(max_select: u64, count: usize) -> Result<(), FieldError> {
    let max = max_select.clamp(1, MAX_LIST_VALUES as u64);
    if count as u64 > max {
        return Err(FieldError::new(
            "validation_too_many_files",
            format!("The maximum allowed files is {max}."),
        )
        .with_param("maxSelect", max));
    }
    Ok(())
}

fn require(required: bool, present: bool) -> Result<(), FieldError> {
    if required && !present {
        Err(FieldError::required())
    } else {
        Ok(())
    }
}

fn invalid_format() -> FieldError {
    FieldError::new("validation_invalid_format", "Invalid value format.")
}

fn is_blank_text(value: &Value) -> bool {
    value.as_str().is_none_or(str::is_empty)
}

/// `null`, `""`, `[]` and `{}` count as blank for a required json field.
fn is_blank_json(value: &Value) -> bool {
    match value {
        Value::Null => true,
        Value::String(s) => s.is_empty(),
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.is_empty(),
        Value::Bool(_) | Value::Number(_) => false,
    }
}

fn domain_allowed(options: &DomainOptions, domain: &str) -> bool {
    if options.except_domains.iter().any(|d| d == domain) {
        return false;
    }
    options.only_domains.is_empty() || options.only_domains.iter().any(|d| d == domain)
}

/// Matches a collection-defined pattern, compiled once per distinct pattern. A pattern that
/// does not compile matches nothing (the collection validator refuses such patterns).
fn pattern_matches(pattern: &str, text: &str) -> bool {
    static CACHE: LazyLock<Mutex<foldhash::HashMap<String, Option<Regex>>>> =
        LazyLock::new(Mutex::default);
    let Ok(mut cache) = CACHE.lock() else {
        return Regex::new(pattern).is_ok_and(|r| r.is_match(text));
    };
    // Looked up by `&str` first: the pattern is copied only when it is compiled.
    if let Some(compiled) = cache.get(pattern) {
        return compiled.as_ref().is_some_and(|r| r.is_match(text));
    }
    if cache.len() > 512 {
        cache.clear();
    }
    cache
        .entry(pattern.to_owned())
        .or_insert_with(|| Regex::new(pattern).ok())
        .as_ref()
        .is_some_and(|r| r.is_match(text))
}

/// Go's `time.Time.String()` for a UTC instant: `2020-01-01 00:00:00.5 +0000 UTC`.
fn go_time_string(at: DateTime<Utc>) -> String {
    format!(
        "{}{} +0000 UTC",
        at.format("%Y-%m-%d %H:%M:%S"),
        go_fraction(at)
    )
}

/// Go's RFC 3339 with nanoseconds, trailing zeros trimmed: `2020-01-01T00:00:00.5Z`.
fn go_rfc3339_nano(at: DateTime<Utc>) -> String {
    format!("{}{}Z", at.format("%Y-%m-%dT%H:%M:%S"), go_fraction(at))
}

fn go_fraction(at: DateTime<Utc>) -> String {
    let nanos = at.nanosecond() % 1_000_000_000;
    if nanos == 0 {
        return String::new();
    }
    let digits = format!("{nanos:09}");
    format!(".{}", digits.trim_end_matches('0'))
}

/// The email syntax PocketBase accepts: a dot-atom local part (a quoted one, `"a b"@c.com`,
/// is refused, observed on 0.40.6), and a domain of
/// dot-separated labels whose last label starts and ends with a letter (an optional final
/// dot is allowed; bare IPs are not). Non-ASCII letters count as letters.
pub fn is_email(text: &str) -> bool {
    static EMAIL: LazyLock<Regex> = LazyLock::new(|| {
        let ucs = r"\x{00A0}-\x{D7FF}\x{F900}-\x{FDCF}\x{FDF0}-\x{FFEF}";
        let atext = format!(r"[a-zA-Z0-9!#$%&'*+\-/=?^_`{{|}}~{ucs}]");
        let dot_atom = format!(r"{atext}+(?:\.{atext}+)*");
        let alnum = format!("[a-zA-Z0-9{ucs}]");
        let inner = format!(r"[a-zA-Z0-9\-._~{ucs}]");
        let alpha = format!("[a-zA-Z{ucs}]");
        let label = format!("(?:{alnum}|{alnum}{inner}*{alnum})");
        let top = format!("(?:{alpha}|{alpha}{inner}*{alpha})");
        Regex::new(&format!(r"^{dot_atom}@(?:{label}\.)+{top}\.?$"))
            .expect("the email pattern is valid")
    });
    EMAIL.is_match(text)
}

/// The URL syntax PocketBase accepts: lenient (a scheme is optional, `x.com` and
/// `mailto:a@b.com` pass) but the text must parse as a URL, and a bare word does not.
pub fn is_url(text: &str) -> bool {
    static URL: LazyLock<Regex> = LazyLock::new(|| {
        let ip = r"(?:[1-9][0-9]?|1[0-9][0-9]|2[01][0-9]|22[0-3]|24[0-9]|25[0-5])(?:\.(?:[0-9]{1,2}|1[0-9][0-9]|2[0-4][0-9]|25[0-5])){2}(?:\.(?:[0-9][0-9]?|1[0-9][0-9]|2[0-4][0-9]|25[0-5]))";
        let not_space = r"[^\t\n\x0C\r ]";
        let subdomain =
            r"(?:(?:www\.)|(?:[a-zA-Z0-9]+(?:[\-_.]?[a-zA-Z0-9])*[a-zA-Z0-9]\.[a-zA-Z0-9]+))";
        let word = r"[a-zA-Z\x{00a1}-\x{ffff}0-9]";
        let pattern = format!(
            r"^(?:(?:ftp|tcp|udp|wss?|https?)://)?(?:{not_space}+(?::{not_space}*)?@)?(?:(?:{ip}|(?:\[[0-9a-fA-F:.]+\])|(?:(?:[a-zA-Z0-9](?:[a-zA-Z0-9\-_]+)?[a-zA-Z0-9](?:[\-.][a-zA-Z0-9]+)*)|{subdomain}?)?(?:(?:{word}+-?-?)*{word}+)(?:\.[a-zA-Z\x{{00a1}}-\x{{ffff}}]+)?))\.?(?::[0-9]{{1,5}})?(?:[/?#]{not_space}*)?$"
        );
        Regex::new(&pattern).expect("the url pattern is valid")
    });
    if text.chars().count() >= 2083 || text.len() <= 3 || text.starts_with('.') {
        return false;
    }
    let candidate = if text.contains(':') && !text.contains("://") {
        format!("http://{text}")
    } else {
        text.to_owned()
    };
    let Some(parsed) = parse_go_url(&candidate) else {
        return false;
    };
    if parsed.host.starts_with('.') {
        return false;
    }
    if parsed.host.is_empty() && !parsed.path.is_empty() && !parsed.path.contains('.') {
        return false;
    }
    URL.is_match(text)
}

/// The parts of a URL that the checks above need, split the way Go's `url.Parse` splits.
#[derive(Debug, Default, PartialEq)]
struct GoUrl {
    host: String,
    path: String,
}

impl GoUrl {
    /// The host without port or IPv6 brackets.
    fn hostname(&self) -> String {
        if let Some(rest) = self.host.strip_prefix('[') {
            return rest.split(']').next().unwrap_or("").to_owned();
        }
        match self.host.rsplit_once(':') {
            Some((host, port)) if port.bytes().all(|b| b.is_ascii_digit()) => host.to_owned(),
            _ => self.host.clone(),
        }
    }
}

/// Splits `text` like Go's `url.Parse`, failing where it fails: control characters, a
/// missing scheme before `:`, bad `%` escapes, and characters not allowed in a host.
fn parse_go_url(text: &str) -> Option<GoUrl> {
    if text.chars().any(|c| c < ' ' || c == '\x7f') {
        return None;
    }
    let without_fragment = text.split('#').next().unwrap_or("");
    if !valid_escapes(&text[without_fragment.len()..]) {
        return None;
    }
    let (scheme, rest) = split_scheme(without_fragment)?;
    let rest = rest.split('?').next().unwrap_or("");
    if !scheme.is_empty() && !rest.starts_with('/') {
        // An opaque URL such as `mailto:a@b.com`.
        return Some(GoUrl::default());
    }
    if scheme.is_empty()
        && rest
            .split('/')
            .next()
            .is_some_and(|first| first.contains(':'))
    {
        return None;
    }
    let (host, path) = match rest.strip_prefix("//") {
        Some(after) if !scheme.is_empty() || !rest.starts_with("///") => {
            let end = after.find('/').unwrap_or(after.len());
            (after[..end].to_owned(), after[end..].to_owned())
        }
        _ => (String::new(), rest.to_owned()),
    };
    let host = match host.rsplit_once('@') {
        Some((userinfo, host)) => {
            let userinfo_ok = userinfo.chars().all(|c| {
                c.is_ascii_alphanumeric() || "-._:~!$&'()*+,;=%@".contains(c) || !c.is_ascii()
            });
            if !userinfo_ok {
                return None;
            }
            host.to_owned()
        }
        None => host,
    };
    if !valid_host(&host) || !valid_escapes(&path) {
        return None;
    }
    Some(GoUrl { host, path })
}

fn split_scheme(text: &str) -> Option<(&str, &str)> {
    for (i, c) in text.char_indices() {
        match c {
            'a'..='z' | 'A'..='Z' => {}
            '0'..='9' | '+' | '-' | '.' if i > 0 => {}
            ':' if i == 0 => return None,
            ':' => return Some((&text[..i], &text[i + 1..])),
            _ => return Some(("", text)),
        }
    }
    Some(("", text))
}

fn valid_host(host: &str) -> bool {
    if let Some(inner) = host.strip_prefix('[') {
        let Some((address, port)) = inner.split_once(']') else {
            return false;
        };
        return !address.is_empty() && valid_port(port);
    }
    let (name, port) = match host.rsplit_once(':') {
        Some((name, port)) => (name, Some(port)),
        None => (host, None),
    };
    if port.is_some_and(|p| !p.bytes().all(|b| b.is_ascii_digit())) {
        return false;
    }
    valid_escapes(name)
        && name.chars().all(|c| {
            !c.is_ascii() || c.is_ascii_alphanumeric() || "-_.~!$&'()*+,;=[]<>\"%".contains(c)
        })
}

fn valid_port(port: &str) -> bool {
    port.is_empty()
        || port
            .strip_prefix(':')
            .is_some_and(|p| p.bytes().all(|b| b.is_ascii_digit()))
}

fn valid_escapes(text: &str) -> bool {
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = |j: usize| bytes.get(j).is_some_and(u8::is_ascii_hexdigit);
            if !(hex(i + 1) && hex(i + 2)) {
                return false;
            }
            i += 3;
        } else {
            i += 1;
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::collection::{CollectionType, auth_system_fields};
    use crate::field::{
        AutodateOptions, BasicOptions, EditorOptions, FileOptions, JsonOptions, RelationOptions,
    };

    const NOW: &str = "2026-01-02 03:04:05.678Z";

    #[test]
    fn lists_are_made_distinct_in_order_on_both_sides_of_the_short_list_bound() {
        // The first occurrence of each non-empty item, in the order given.
        fn reference(values: &[String]) -> Vec<String> {
            let mut out: Vec<String> = Vec::new();
            for value in values {
                if !value.is_empty() && !out.contains(value) {
                    out.push(value.clone());
                }
            }
            out
        }
        let mut seed = 7u32;
        for len in [0, 1, 2, 3, SHORT_LIST - 1, SHORT_LIST, SHORT_LIST + 1, 40] {
            for _ in 0..50 {
                let values: Vec<String> = (0..len)
                    .map(|_| {
                        seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12_345);
                        match (seed >> 16) % 7 {
                            0 => String::new(),
                            n => format!("id{n}"),
                        }
                    })
                    .collect();
                assert_eq!(
                    distinct_non_empty(values.clone()),
                    reference(&values),
                    "{values:?}"
                );
            }
        }
    }

    fn field(name: &str, kind: FieldKind) -> Field {
        Field::new(name, kind)
    }

    fn collection(fields: Vec<Field>) -> Collection {
        let mut c = Collection::scaffold(CollectionType::Base, "t");
        c.id = "pbc_1".into();
        c.fields.extend(fields);
        c
    }

    fn select(max_select: u64) -> FieldKind {
        FieldKind::Select(SelectOptions {
            max_select,
            values: vec!["a".into(), "b".into(), "c".into()],
            ..Default::default()
        })
    }

    fn relation(max_select: u64, min_select: u64) -> FieldKind {
        FieldKind::Relation(RelationOptions {
            collection_id: "_pb_users_auth_".into(),
            max_select,
            min_select,
            ..Default::default()
        })
    }

    fn input(c: &Collection, body: Value) -> RecordInput {
        let Value::Object(map) = body else {
            panic!("test bodies are objects")
        };
        RecordInput::parse(c, &map, &InputOptions::default())
    }

    fn create(c: &Collection, body: Value) -> Result<RecordData, ValidationErrors> {
        let ctx = ApplyContext {
            creating: true,
            now: NOW,
        };
        build(c, &blank_record(c), &input(c, body), &ctx)
    }

    fn update(
        c: &Collection,
        current: &RecordData,
        body: Value,
    ) -> Result<RecordData, ValidationErrors> {
        let ctx = ApplyContext {
            creating: false,
            now: NOW,
        };
        build(c, current, &input(c, body), &ctx)
    }

    /// `{field: code}` of a failed build, for compact assertions.
    fn codes(result: Result<RecordData, ValidationErrors>) -> Value {
        let errors = result.expect_err("validation should fail").into_json();
        let map = errors
            .as_object()
            .expect("errors are an object")
            .iter()
            .map(|(k, v)| (k.clone(), v["code"].clone()))
            .collect();
        Value::Object(map)
    }

    fn error_of(result: Result<RecordData, ValidationErrors>, name: &str) -> Value {
        result.expect_err("validation should fail").into_json()[name].clone()
    }

    #[test]
    fn text_is_cast_like_go_and_validated_in_order() {
        let c = collection(vec![field(
            "title",
            FieldKind::Text(TextOptions {
                min: 2,
                max: 5,
                pattern: "^[a-z]+$".into(),
                ..Default::default()
            }),
        )]);
        assert_eq!(
            create(&c, json!({"title": true})).expect("ok")["title"],
            "true"
        );
        assert_eq!(
            create(&c, json!({"title": ["ab"]})).expect("ok")["title"],
            ""
        );
        assert_eq!(create(&c, json!({"title": null})).expect("ok")["title"], "");
        assert_eq!(
            error_of(create(&c, json!({"title": "A"})), "title"),
            json!({"code": "validation_min_text_constraint",
                   "message": "Must be at least 2 character(s).", "params": {"min": 2}})
        );
        assert_eq!(
            error_of(create(&c, json!({"title": "abcdefg"})), "title"),
            json!({"code": "validation_max_text_constraint",
                   "message": "Must be no more than 5 character(s).", "params": {"max": 5}})
        );
        assert_eq!(
            error_of(create(&c, json!({"title": 12})), "title"),
            json!({"code": "validation_invalid_format", "message": "Invalid value format."})
        );
        // Lengths count characters, not bytes.
        let c = collection(vec![field(
            "t",
            FieldKind::Text(TextOptions {
                max: 3,
                ..Default::default()
            }),
        )]);
        assert!(create(&c, json!({"t": "ééé"})).is_ok());
    }

    #[test]
    fn required_means_non_empty_non_zero_or_true() {
        let c = collection(vec![
            field(
                "t",
                FieldKind::Text(TextOptions {
                    required: true,
                    ..Default::default()
                }),
            ),
            field(
                "n",
                FieldKind::Number(NumberOptions {
                    required: true,
                    ..Default::default()
                }),
            ),
            field(
                "b",
                FieldKind::Bool(BasicOptions {
                    required: true,
                    ..Default::default()
                }),
            ),
            field(
                "j",
                FieldKind::Json(JsonOptions {
                    required: true,
                    ..Default::default()
                }),
            ),
            field(
                "g",
                FieldKind::GeoPoint(BasicOptions {
                    required: true,
                    ..Default::default()
                }),
            ),
            field(
                "e",
                FieldKind::Editor(EditorOptions {
                    required: true,
                    ..Default::default()
                }),
            ),
        ]);
        assert_eq!(
            codes(create(&c, json!({}))),
            json!({"t": "validation_required", "n": "validation_required",
                   "b": "validation_required", "j": "validation_required",
                   "g": "validation_required", "e": "validation_required"})
        );
        let ok = create(
            &c,
            json!({"t": " ", "n": -1, "b": true, "j": 0, "g": {"lon": 1, "lat": 0}, "e": "<p></p>"}),
        );
        assert!(ok.is_ok(), "{ok:?}");
        for blank in [json!({}), json!([]), json!(""), json!("null"), json!(null)] {
            let errors = codes(create(
                &c,
                json!({"t": "x", "n": 1, "b": true, "j": blank,
                                                 "g": {"lon": 1}, "e": "x"}),
            ));
            assert_eq!(errors, json!({"j": "validation_required"}));
        }
        assert!(
            create(
                &c,
                json!({"t": "x", "n": 1, "b": true, "j": false, "g": {"lat": 1}, "e": "x"})
            )
            .is_ok()
        );
    }

    #[test]
    fn numbers_cast_silently_and_check_int_min_max() {
        let c = collection(vec![
            field(
                "n",
                FieldKind::Number(NumberOptions {
                    min: Some(1.0),
                    max: Some(100.0),
                    ..Default::default()
                }),
            ),
            field(
                "i",
                FieldKind::Number(NumberOptions {
                    only_int: true,
                    ..Default::default()
                }),
            ),
        ]);
        let cases = [
            (json!("5"), json!(5)),
            (json!("5.5"), json!(5.5)),
            (json!(true), json!(1)),
            (json!([1]), json!(0)),
            (json!(null), json!(0)),
            (json!("abc"), json!(0)),
            (json!(" 7 "), json!(0)),
            (json!("1e2"), json!(100)),
            (json!("+5"), json!(5)),
            (json!("0x10"), json!(0)),
        ];
        for (given, expected) in cases {
            let data = create(&c, json!({"n": given})).expect("casts");
            assert_eq!(data["n"], expected, "for {given}");
        }
        // Zero skips min/max (only `required` looks at zero).
        assert_eq!(create(&c, json!({"n": 0})).expect("ok")["n"], 0);
        assert_eq!(
            error_of(create(&c, json!({"n": 0.5})), "n"),
            json!({"code": "validation_min_number_constraint",
                   "message": "Must be greater or equal than 1.", "params": {"min": 1}})
        );
        assert_eq!(
            error_of(create(&c, json!({"n": "1_000"})), "n"),
            json!({"code": "validation_max_number_constraint",
                   "message": "Must be less or equal than 100.", "params": {"max": 100}})
        );
        for special in ["NaN", "Inf", "-infinity"] {
            assert_eq!(
                codes(create(&c, json!({"n": special}))),
                json!({"n": "validation_not_a_number"})
            );
        }
        assert_eq!(
            codes(create(&c, json!({"i": 1.5}))),
            json!({"i": "validation_only_int_constraint"})
        );
        assert_eq!(
            codes(create(&c, json!({"i": 1e20}))),
            json!({"i": "validation_only_int_constraint"})
        );
        assert_eq!(create(&c, json!({"i": "2.0"})).expect("ok")["i"], 2);
        assert_eq!(
            create(&c, json!({"i": 9007199254740991_u64})).expect("ok")["i"],
            9007199254740991_u64
        );
    }

    #[test]
    fn only_int_is_checked_before_the_range() {
        let c = collection(vec![field(
            "i",
            FieldKind::Number(NumberOptions {
                only_int: true,
                min: Some(5.0),
                max: Some(10.0),
                ..Default::default()
            }),
        )]);
        assert_eq!(
            codes(create(&c, json!({"i": 2.5}))),
            json!({"i": "validation_only_int_constraint"})
        );
    }

    #[test]
    fn bools_cast_like_go() {
        let c = collection(vec![field("b", FieldKind::Bool(BasicOptions::default()))]);
        for (given, expected) in [
            (json!("true"), true),
            (json!("1"), true),
            (json!(1), true),
            (json!(2), true),
            (json!("TRUE"), true),
            (json!("t"), true),
            (json!("yes"), false),
            (json!("0"), false),
            (json!([true]), false),
            (json!(null), false),
        ] {
            assert_eq!(
                create(&c, json!({"b": given})).expect("ok")["b"],
                expected,
                "for {given}"
            );
        }
    }

    #[test]
    fn emails_follow_the_observed_syntax_and_domains() {
        for ok in [
            "a@example.com",
            "a.b+c@y-z.co",
            "a@b.c",
            "a@bc.d",
            "a@b_c.com",
            "ü@c.com",
            "a@ü.com",
            "a@c.com.",
        ] {
            assert!(is_email(ok), "{ok} should be valid");
        }
        for bad in [
            "Bad <x@y.com>",
            "x@y",
            "ab@cd",
            " x@y.com",
            "x@y.com ",
            "a..b@c.com",
            ".a@c.com",
            "a\"b@c.com",
            "\"ab\"@c.com",
            "\"a b\"@c.com",
            "\"\"@c.com",
            "a@-c.com",
            "a@c..com",
            "a@1.2.3.4",
            "a@[1.2.3.4]",
            "a@c",
            "12",
        ] {
            assert!(!is_email(bad), "{bad} should be invalid");
        }
        let c = collection(vec![
            field(
                "only",
                FieldKind::Email(DomainOptions {
                    only_domains: vec!["example.com".into()],
                    ..Default::default()
                }),
            ),
            field(
                "except",
                FieldKind::Email(DomainOptions {
                    except_domains: vec!["bad.com".into()],
                    ..Default::default()
                }),
            ),
        ]);
        assert_eq!(
            codes(create(
                &c,
                json!({"only": "a@EXAMPLE.com", "except": "x@bad.com"})
            )),
            json!({"only": "validation_email_domain_not_allowed",
                   "except": "validation_email_domain_not_allowed"})
        );
        assert!(create(&c, json!({"only": "a@example.com", "except": "x@BAD.COM"})).is_ok());
        assert_eq!(
            error_of(create(&c, json!({"except": 12})), "except"),
            json!({"code": "validation_is_email", "message": "Must be a valid email address."})
        );
    }

    #[test]
    fn urls_follow_the_observed_syntax_and_domains() {
        for ok in [
            "https://x.com:8080/a?b#c",
            "ftp://x.com",
            "x.com",
            "mailto:a@b.com",
            "http://localhost",
            "http://1.2.3.4",
            "http://sub.bad.com",
            "http://x",
        ] {
            assert!(is_url(ok), "{ok} should be valid");
        }
        for bad in [
            "http://",
            "http://a b.com",
            "abc",
            ".x.com",
            "notaurl",
            "http://x.com/a b",
        ] {
            assert!(!is_url(bad), "{bad} should be invalid");
        }
        let c = collection(vec![field(
            "u",
            FieldKind::Url(DomainOptions {
                except_domains: vec!["bad.com".into()],
                ..Default::default()
            }),
        )]);
        assert_eq!(
            error_of(create(&c, json!({"u": "https://bad.com/x"})), "u"),
            json!({"code": "validation_url_domain_not_allowed", "message": "Url domain is not allowed."})
        );
        assert_eq!(
            error_of(create(&c, json!({"u": "notaurl"})), "u"),
            json!({"code": "validation_invalid_url", "message": "Must be a valid url."})
        );
    }

    #[test]
    fn dates_normalize_or_empty_and_check_bounds() {
        let c = collection(vec![field(
            "d",
            FieldKind::Date(DateOptions {
                min: "2020-01-01 00:00:00.000Z".into(),
                max: "2030-01-01 00:00:00.500Z".into(),
                ..Default::default()
            }),
        )]);
        assert_eq!(
            create(&c, json!({"d": "2024-01-02T03:04:05Z"})).expect("ok")["d"],
            "2024-01-02 03:04:05.000Z"
        );
        assert_eq!(create(&c, json!({"d": "garbage"})).expect("ok")["d"], "");
        assert_eq!(create(&c, json!({"d": 1700000000})).expect("ok")["d"], "");
        // Go layouts as PocketBase tries them: no trimming, no partial clock.
        assert_eq!(
            create(&c, json!({"d": "Mon, 01 Jan 2024 10:00:00 +0100"})).expect("ok")["d"],
            "2024-01-01 09:00:00.000Z"
        );
        for blank in ["2024-01-01 10:00", " 2024-01-01", "2024-1-1"] {
            assert_eq!(
                create(&c, json!({"d": blank})).expect("ok")["d"],
                "",
                "{blank}"
            );
        }
        assert_eq!(
            error_of(create(&c, json!({"d": "2019-12-31 23:59:59.999Z"})), "d"),
            json!({"code": "validation_min_greater_equal_than_required",
                   "message": "Must be no less than 2020-01-01 00:00:00 +0000 UTC.",
                   "params": {"threshold": "2020-01-01T00:00:00Z"}})
        );
        assert_eq!(
            error_of(create(&c, json!({"d": "2031-01-01"})), "d"),
            json!({"code": "validation_max_less_equal_than_required",
                   "message": "Must be no greater than 2030-01-01 00:00:00.5 +0000 UTC.",
                   "params": {"threshold": "2030-01-01T00:00:00.5Z"}})
        );
    }

    #[test]
    fn selects_are_shaped_deduped_and_checked() {
        let c = collection(vec![field("s", select(1)), field("m", select(2))]);
        let data = create(&c, json!({"s": ["a", "b"], "m": ["a", "a", "", "b"]})).expect("ok");
        assert_eq!(
            (data["s"].clone(), data["m"].clone()),
            (json!("b"), json!(["a", "b"]))
        );
        assert_eq!(
            create(&c, json!({"m": "a"})).expect("ok")["m"],
            json!(["a"])
        );
        assert_eq!(
            error_of(create(&c, json!({"s": "A"})), "s"),
            json!({"code": "validation_invalid_value", "message": "Invalid value A.",
                   "params": {"value": "A"}})
        );
        assert_eq!(
            error_of(create(&c, json!({"m": ["z", "a", "b"]})), "m"),
            json!({"code": "validation_too_many_values", "message": "Select no more than 2.",
                   "params": {"maxSelect": 2}})
        );
        assert_eq!(
            error_of(create(&c, json!({"m": [1]})), "m")["params"],
            json!({"value": "1"})
        );
        assert_eq!(
            codes(create(&c, json!({"m": "a,b"}))),
            json!({"m": "validation_invalid_value"})
        );
    }

    #[test]
    fn relations_are_shaped_and_counted() {
        let c = collection(vec![field("r", relation(1, 0)), field("m", relation(3, 2))]);
        let data = create(&c, json!({"r": ["x1", "x2"], "m": ["a1", "a1", "", "b1"]})).expect("ok");
        assert_eq!(
            (data["r"].clone(), data["m"].clone()),
            (json!("x2"), json!(["a1", "b1"]))
        );
        assert_eq!(
            error_of(create(&c, json!({"m": "a1"})), "m"),
            json!({"code": "validation_not_enough_values", "message": "Select at least 2.",
                   "params": {"minSelect": 2}})
        );
        assert_eq!(
            codes(create(&c, json!({"m": ["a", "b", "c", "d"]}))),
            json!({"m": "validation_too_many_values"})
        );
        assert_eq!(
            create(&c, json!({"m": []})).expect("empty is fine")["m"],
            json!([])
        );
    }

    #[test]
    fn long_lists_are_deduped_in_order_and_capped() {
        // Duplicates are dropped keeping the first-seen order, in time linear in the list.
        let many: Vec<String> = (0..50_000).map(|i| format!("v{}", i % 25_000)).collect();
        let listed = string_list(&json!(many));
        assert_eq!(listed.len(), 25_000);
        assert_eq!(
            (listed[0].as_str(), listed[24_999].as_str()),
            ("v0", "v24999")
        );
        // A field whose maxSelect is above the cap is still held to the cap.
        let c = collection(vec![field("m", relation(999_999, 0))]);
        let ids: Vec<String> = (0..MAX_LIST_VALUES + 1).map(|i| format!("id{i}")).collect();
        assert_eq!(
            error_of(create(&c, json!({ "m": ids })), "m"),
            json!({"code": "validation_too_many_values",
                   "message": format!("Select no more than {MAX_LIST_VALUES}."),
                   "params": {"maxSelect": MAX_LIST_VALUES}})
        );
        let ids: Vec<String> = (0..MAX_LIST_VALUES).map(|i| format!("id{i}")).collect();
        assert!(create(&c, json!({ "m": ids })).is_ok());
        // Removing values with `field-` is linear too, and keeps the order of the rest.
        let current: RecordData = [
            ("id".to_owned(), json!("r1abcdefghijklm")),
            ("m".to_owned(), json!(["a", "b", "c", "d"])),
        ]
        .into_iter()
        .collect();
        let data = update(&c, &current, json!({"m-": ["c", "a", "zz"]})).expect("ok");
        assert_eq!(data["m"], json!(["b", "d"]));
    }

    #[test]
    fn json_bounds_count_depth_and_values_outside_strings() {
        assert_eq!(json_within_bounds(br#"{"a":[1,2,{"b":"x,[{"}]}"#), Ok(()));
        let deep = format!(
            "{}{}",
            "[".repeat(MAX_JSON_DEPTH),
            "]".repeat(MAX_JSON_DEPTH)
        );
        assert_eq!(json_within_bounds(deep.as_bytes()), Ok(()));
        let deeper = format!("[{deep}]");
        assert_eq!(
            json_within_bounds(deeper.as_bytes()),
            Err(JsonBoundsError::TooDeep)
        );
        let many = format!("[{}0]", "0,".repeat(MAX_JSON_VALUES));
        assert_eq!(
            json_within_bounds(many.as_bytes()),
            Err(JsonBoundsError::TooManyValues)
        );
        let fine = format!("[{}0]", "0,".repeat(MAX_JSON_VALUES - 2));
        assert_eq!(json_within_bounds(fine.as_bytes()), Ok(()));
        // Brackets and commas inside strings (escaped quotes included) do not count.
        let text = format!(
            "[\"{}\\\"{}\"]",
            ",".repeat(MAX_JSON_VALUES + 1),
            "[".repeat(200)
        );
        assert_eq!(json_within_bounds(text.as_bytes()), Ok(()));
        // Serialized JSON past the bounds stays text in a json field.
        let c = collection(vec![field("j", FieldKind::Json(JsonOptions::default()))]);
        let data = create(&c, json!({ "j": deeper.clone() })).expect("valid");
        assert_eq!(data["j"], json!(deeper));
    }

    #[test]
    fn parsing_within_bounds_refuses_what_the_scan_refuses() {
        let nested = |depth: usize| format!("{}{}", "[".repeat(depth), "]".repeat(depth));
        // Short texts skip the scan: serde_json's recursion limit is the depth bound.
        assert!(parse_json_within_bounds(nested(MAX_JSON_DEPTH - 1).as_bytes()).is_ok());
        for depth in [MAX_JSON_DEPTH, MAX_JSON_DEPTH + 1] {
            assert_eq!(
                parse_json_within_bounds(nested(depth).as_bytes()),
                Err(JsonInputError::Malformed),
                "depth {depth}"
            );
        }
        // Past the value bound only a long text can go, and the scan refuses it.
        let many = format!("[{}0]", "0,".repeat(MAX_JSON_VALUES));
        assert_eq!(
            parse_json_within_bounds(many.as_bytes()),
            Err(JsonInputError::OutOfBounds(JsonBoundsError::TooManyValues))
        );
        let fine = format!("[{}0]", "0,".repeat(MAX_JSON_VALUES - 2));
        let parsed = parse_json_within_bounds(fine.as_bytes()).expect("at the bound");
        assert_eq!(parsed.as_array().map(Vec::len), Some(MAX_JSON_VALUES - 1));
        // A long text nested too deep is refused by the scan before the parser sees it.
        let deep_and_long = format!("[\"{}\",{}]", "x".repeat(MAX_JSON_VALUES), nested(200));
        assert_eq!(
            parse_json_within_bounds(deep_and_long.as_bytes()),
            Err(JsonInputError::OutOfBounds(JsonBoundsError::TooDeep))
        );
        assert_eq!(
            parse_json_within_bounds(b"{\"a\":"),
            Err(JsonInputError::Malformed)
        );
        assert_eq!(
            parse_json_within_bounds(br#"{"a":[1,"b"]}"#),
            Ok(json!({"a": [1, "b"]}))
        );
    }

    #[test]
    fn request_json_is_its_first_value_with_each_key_once() {
        let parse = |text: &str| parse_request_json(text.as_bytes());
        assert_eq!(
            parse(r#" {"a":[1,2.5,"x",null,true]}"#),
            Ok(json!({"a": [1, 2.5, "x", null, true]}))
        );
        // What follows the first value is left unread.
        for trailing in [r#"{"a":1} xx"#, r#"{"a":1}{"a":2}"#, r#"{"a":1}]"#] {
            assert_eq!(parse(trailing), Ok(json!({"a": 1})), "{trailing}");
        }
        // A key named twice, at any depth and however it is escaped, is refused.
        for twice in [
            r#"{"a":1,"a":2}"#,
            r#"{"a":{"k":1,"k":2}}"#,
            r#"{"a":[{"k":1,"k":2}]}"#,
            r#"{"title":1,"titl\u0065":2}"#,
        ] {
            assert_eq!(parse(twice), Err(JsonInputError::Malformed), "{twice}");
        }
        // Equal keys in different objects, and keys differing in case, are fine.
        assert_eq!(
            parse(r#"{"a":[{"k":1},{"k":2}],"A":3}"#),
            Ok(json!({"a": [{"k": 1}, {"k": 2}], "A": 3}))
        );
        for nothing in ["", "   ", "\n", r#"{"a":1"#] {
            assert_eq!(
                parse(nothing),
                Err(JsonInputError::Malformed),
                "{nothing:?}"
            );
        }
        // The depth bound holds as for every other JSON input.
        let nested = |depth: usize| format!("{}{}", "[".repeat(depth), "]".repeat(depth));
        assert!(parse(&nested(MAX_JSON_DEPTH - 1)).is_ok());
        assert_eq!(
            parse(&nested(MAX_JSON_DEPTH)),
            Err(JsonInputError::Malformed)
        );
        let many = format!("[{}0]", "0,".repeat(MAX_JSON_VALUES));
        assert_eq!(
            parse(&many),
            Err(JsonInputError::OutOfBounds(JsonBoundsError::TooManyValues))
        );
        assert_eq!(
            parse("123456789012345678901234567890").ok(),
            Some(json!(1.2345678901234568e29))
        );
        // A multipart body's payload part is one whole document.
        assert_eq!(parse_json_payload(br#" {"a":1} "#), Ok(json!({"a": 1})));
        for refused in [r#"{"a":1} xx"#, r#"{"a":1}{"a":2}"#, r#"{"a":1,"a":2}"#] {
            assert_eq!(
                parse_json_payload(refused.as_bytes()),
                Err(JsonInputError::Malformed),
                "{refused}"
            );
        }
    }

    /// The byte-by-byte scan [`json_within_bounds`] replaced, as the reference.
    fn bounds_byte_by_byte(text: &[u8]) -> Result<(), JsonBoundsError> {
        let (mut depth, mut values) = (0usize, 0usize);
        let (mut in_string, mut escaped) = (false, false);
        for &byte in text {
            if in_string {
                if escaped {
                    escaped = false;
                } else if byte == b'\\' {
                    escaped = true;
                } else if byte == b'"' {
                    in_string = false;
                }
                continue;
            }
            match byte {
                b'"' => in_string = true,
                b'[' | b'{' => {
                    depth += 1;
                    values += 1;
                    if depth > MAX_JSON_DEPTH {
                        return Err(JsonBoundsError::TooDeep);
                    }
                }
                b']' | b'}' => depth = depth.saturating_sub(1),
                b',' => values += 1,
                _ => continue,
            }
            if values > MAX_JSON_VALUES {
                return Err(JsonBoundsError::TooManyValues);
            }
        }
        Ok(())
    }

    #[test]
    fn json_bounds_skip_strings_in_blocks_as_the_byte_scan_did() {
        // Strings whose quotes and escapes fall on every offset around a 16-byte block edge,
        // with structure inside and after them; unterminated ones; a lone trailing backslash.
        let pieces: [&[u8]; 8] = [b"\\\"", b"\\\\", b"\"", b",", b"[", b"{", b"x", b"\\"];
        let mut cases: Vec<Vec<u8>> = Vec::new();
        for pad in 0..40 {
            for (i, a) in pieces.iter().enumerate() {
                for b in &pieces[i..] {
                    let mut text = b"[\"".to_vec();
                    text.extend(std::iter::repeat_n(b'a', pad));
                    text.extend_from_slice(a);
                    text.extend(std::iter::repeat_n(b',', pad % 7));
                    text.extend_from_slice(b);
                    text.extend_from_slice(b"\",[[1,2],{\"k\":\"v\"}]");
                    cases.push(text.clone());
                    text.truncate(text.len() / 2);
                    cases.push(text);
                }
            }
        }
        let deep = format!("[\"{}\"{}", "a".repeat(33), "[".repeat(MAX_JSON_DEPTH));
        cases.push(deep.into_bytes());
        let many = format!("[\"\\\\\",{}0]", "0,".repeat(MAX_JSON_VALUES));
        cases.push(many.into_bytes());
        for text in &cases {
            assert_eq!(
                json_within_bounds(text),
                bounds_byte_by_byte(text),
                "{}",
                String::from_utf8_lossy(text)
            );
        }
        assert!(cases.iter().any(|t| json_within_bounds(t).is_err()));
    }

    #[test]
    fn json_keeps_values_and_decodes_serialized_text() {
        let c = collection(vec![field(
            "j",
            FieldKind::Json(JsonOptions {
                max_size: 30,
                ..Default::default()
            }),
        )]);
        let cases = [
            (json!("not json"), json!("not json")),
            (json!("{\"a\":1}"), json!({"a": 1})),
            (json!("[1, 2]"), json!([1, 2])),
            (json!("123"), json!(123)),
            (json!("\"s\""), json!("s")),
            (json!("null"), json!(null)),
            (json!(" 123"), json!(" 123")),
            (json!("{\"a\":1} "), json!({"a": 1})),
            (json!(""), json!("")),
        ];
        for (given, expected) in cases {
            assert_eq!(
                create(&c, json!({"j": given})).expect("ok")["j"],
                expected,
                "for {given}"
            );
        }
        assert_eq!(
            error_of(create(&c, json!({"j": "a".repeat(42)})), "j"),
            json!({"code": "validation_json_size_limit",
                   "message": "The maximum allowed JSON size is 30 bytes.",
                   "params": {"maxSize": 30}})
        );
    }

    #[test]
    fn editor_size_is_limited_in_bytes() {
        let c = collection(vec![field(
            "e",
            FieldKind::Editor(EditorOptions {
                max_size: 20,
                ..Default::default()
            }),
        )]);
        assert_eq!(
            error_of(create(&c, json!({"e": "a".repeat(21)})), "e"),
            json!({"code": "validation_content_size_limit",
                   "message": "The maximum allowed content size is 20 bytes.",
                   "params": {"maxSize": 20}})
        );
    }

    #[test]
    fn geo_points_cast_whole_or_zero_and_check_ranges() {
        let c = collection(vec![field(
            "g",
            FieldKind::GeoPoint(BasicOptions::default()),
        )]);
        let cases = [
            (json!("x"), json!({"lon": 0, "lat": 0})),
            (json!({"lon": "5", "lat": 1}), json!({"lon": 0, "lat": 0})),
            (json!({"lon": 1}), json!({"lon": 1, "lat": 0})),
            (json!("{\"lon\":1,\"lat\":2}"), json!({"lon": 1, "lat": 2})),
            (
                json!({"lon": 1, "lat": 2, "x": 3}),
                json!({"lon": 1, "lat": 2}),
            ),
            (
                json!({"lon": -180, "lat": 90}),
                json!({"lon": -180, "lat": 90}),
            ),
        ];
        for (given, expected) in cases {
            assert_eq!(
                create(&c, json!({"g": given})).expect("ok")["g"],
                expected,
                "for {given}"
            );
        }
        assert_eq!(
            error_of(create(&c, json!({"g": {"lon": 200, "lat": -100}})), "g"),
            json!({"code": "validation_invalid_latitude",
                   "message": "Latitude must be between -90 and 90 degrees."})
        );
        assert_eq!(
            codes(create(&c, json!({"g": {"lon": -181, "lat": 0}}))),
            json!({"g": "validation_invalid_longitude"})
        );
    }

    #[test]
    fn passwords_validate_plain_text_and_store_the_hash() {
        let c = collection(vec![field(
            "p",
            FieldKind::Password(PasswordOptions {
                min: 5,
                pattern: "^[a-z]+$".into(),
                ..Default::default()
            }),
        )]);
        assert_eq!(
            error_of(create(&c, json!({"p": "AB"})), "p"),
            json!({"code": "validation_min_text_constraint", "message": "Must be at least 5 character(s)."})
        );
        assert_eq!(
            codes(create(&c, json!({"p": "ABCDEFG"}))),
            json!({"p": "validation_invalid_format"})
        );
        assert_eq!(
            error_of(create(&c, json!({"p": "a".repeat(72)})), "p"),
            json!({"code": "validation_max_text_constraint", "message": "Must be less than 71 character(s)."})
        );
        assert_eq!(
            error_of(create(&c, json!({"p": "a".repeat(73)})), "p"),
            json!({"code": "validation_invalid_value", "message": "Invalid value."})
        );
        let mut given = input(&c, json!({"p": "secret"}));
        assert_eq!(given.password("p"), Some("secret"));
        given.passwords_mut()[0].hash = Some("$2a$hash".into());
        let ctx = ApplyContext {
            creating: true,
            now: NOW,
        };
        let data = build(&c, &blank_record(&c), &given, &ctx).expect("valid");
        assert_eq!(data["p"], "$2a$hash");
        // An empty password clears the stored hash.
        let cleared = update(&c, &data, json!({"p": ""})).expect("ok");
        assert_eq!(cleared["p"], "");
    }

    #[test]
    fn ids_autogenerate_on_create_and_never_change() {
        let c = collection(vec![field(
            "code",
            FieldKind::Text(TextOptions {
                autogenerate_pattern: "[a-z]{5}".into(),
                ..Default::default()
            }),
        )]);
        let data = create(&c, json!({})).expect("ok");
        assert_eq!(data["id"].as_str().map(str::len), Some(15));
        assert_eq!(data["code"].as_str().map(str::len), Some(5));
        let given = create(&c, json!({"id": "custom000000001", "code": "given"})).expect("ok");
        assert_eq!(
            (given["id"].clone(), given["code"].clone()),
            (json!("custom000000001"), json!("given"))
        );
        let numeric = create(&c, json!({"id": 123456789012345_u64})).expect("ok");
        assert_eq!(numeric["id"], "123456789012345");
        assert_eq!(
            codes(create(&c, json!({"id": "ABC"}))),
            json!({"id": "validation_min_text_constraint"})
        );
        assert_eq!(
            codes(create(&c, json!({"id": "UPPERCASE000001"}))),
            json!({"id": "validation_invalid_format"})
        );
        let prefixed = create(&c, json!({"code": "x", "code:autogenerate": "pre"})).expect("ok");
        let code = prefixed["code"].as_str().unwrap_or("");
        assert!(code.starts_with("pre") && code.len() == 8, "{code}");
        assert_eq!(
            codes(create(&c, json!({"id:autogenerate": "abc"}))),
            json!({"id": "validation_max_text_constraint"})
        );
        // Updates keep empty autogenerated text empty, and refuse a new id.
        let updated = update(&c, &given, json!({"code": "", "id": "custom000000001"})).expect("ok");
        assert_eq!(updated["code"], "");
        assert_eq!(
            error_of(update(&c, &given, json!({"id": ""})), "id"),
            json!({"code": "validation_pk_change", "message": "The record primary key cannot be changed."})
        );
    }

    #[test]
    fn autodates_ignore_input_and_follow_create_and_update() {
        let c = collection(vec![
            field(
                "created",
                FieldKind::Autodate(AutodateOptions {
                    on_create: true,
                    on_update: false,
                }),
            ),
            field(
                "updated",
                FieldKind::Autodate(AutodateOptions {
                    on_create: true,
                    on_update: true,
                }),
            ),
            field(
                "touched",
                FieldKind::Autodate(AutodateOptions {
                    on_create: false,
                    on_update: true,
                }),
            ),
        ]);
        let data = create(
            &c,
            json!({"created": "2020-01-01", "touched": "2020-01-01"}),
        )
        .expect("ok");
        assert_eq!(
            (
                data["created"].clone(),
                data["updated"].clone(),
                data["touched"].clone()
            ),
            (json!(NOW), json!(NOW), json!(""))
        );
        let mut old = data.clone();
        old.insert("created".into(), json!("2000-01-01 00:00:00.000Z"));
        let ctx = ApplyContext {
            creating: false,
            now: "2027-01-01 00:00:00.000Z",
        };
        let next = build(&c, &old, &input(&c, json!({})), &ctx).expect("ok");
        assert_eq!(next["created"], "2000-01-01 00:00:00.000Z");
        assert_eq!(next["updated"], "2027-01-01 00:00:00.000Z");
        assert_eq!(next["touched"], "2027-01-01 00:00:00.000Z");
    }

    #[test]
    fn modifiers_apply_after_plain_values_to_the_current_record() {
        let c = collection(vec![
            field("n", FieldKind::Number(NumberOptions::default())),
            field("s", select(1)),
            field("m", select(2)),
            field("r", relation(5, 0)),
            field("title", FieldKind::Text(TextOptions::default())),
        ]);
        let mut current = create(&c, json!({"n": 10, "m": ["a"], "r": ["x"]})).expect("ok");
        let step = |current: &RecordData, body: Value| update(&c, current, body);
        current = step(&current, json!({"n+": 5})).expect("ok");
        assert_eq!(current["n"], 15);
        current = step(&current, json!({"n-": 2.5})).expect("ok");
        assert_eq!(current["n"], 12.5);
        current = step(&current, json!({"n+": "abc"})).expect("ok");
        assert_eq!(current["n"], 12.5);
        current = step(&current, json!({"n+": 2, "n": 1})).expect("ok");
        assert_eq!(current["n"], 3);
        current = step(&current, json!({"+n": 1, "title+": "x"})).expect("ok");
        assert_eq!(
            (current["n"].clone(), current["title"].clone()),
            (json!(3), json!(""))
        );
        current = step(&current, json!({"m+": "b"})).expect("ok");
        assert_eq!(current["m"], json!(["a", "b"]));
        current = step(&current, json!({"m-": "a"})).expect("ok");
        assert_eq!(current["m"], json!(["b"]));
        current = step(&current, json!({"+m": "c"})).expect("ok");
        assert_eq!(current["m"], json!(["c", "b"]));
        assert_eq!(
            codes(step(&current, json!({"m+": ["a"]}))),
            json!({"m": "validation_too_many_values"})
        );
        assert_eq!(
            codes(step(&current, json!({"m+": "z", "m-": "b"}))),
            json!({"m": "validation_invalid_value"})
        );
        current = step(&current, json!({"m-": ["b", "c"]})).expect("ok");
        assert_eq!(current["m"], json!([]));
        current = step(&current, json!({"s+": "a"})).expect("ok");
        assert_eq!(current["s"], "a");
        current = step(&current, json!({"s-": "a"})).expect("ok");
        assert_eq!(current["s"], "");
        current = step(&current, json!({"r+": "y", "+r": ["w"]})).expect("ok");
        assert_eq!(current["r"], json!(["w", "x", "y"]));
        current = step(&current, json!({"r-": "x", "r": ["x", "z"]})).expect("ok");
        assert_eq!(current["r"], json!(["z"]));
    }

    #[test]
    fn hidden_unknown_and_autodate_keys_are_dropped() {
        let mut secret = field("secret", FieldKind::Text(TextOptions::default()));
        secret.hidden = true;
        let c = collection(vec![secret]);
        let body = json!({"secret": "s", "nope": 1, "collectionId": "x"});
        let Value::Object(map) = body else {
            unreachable!()
        };
        let guest = RecordInput::parse(&c, &map, &InputOptions::default());
        assert!(guest.entries().is_empty());
        let superuser = RecordInput::parse(
            &c,
            &map,
            &InputOptions {
                include_hidden: true,
                allow_hidden: &[],
            },
        );
        assert_eq!(superuser.entries().len(), 1);
        let allowed = RecordInput::parse(
            &c,
            &map,
            &InputOptions {
                include_hidden: false,
                allow_hidden: &["secret"],
            },
        );
        assert!(allowed.touches("secret"));
    }

    #[test]
    fn auth_passwords_are_hidden_but_allowed_explicitly() {
        let mut c = collection(Vec::new());
        c.fields = auth_system_fields();
        c.kind = CollectionType::Auth;
        let body = json!({"password": "12345678", "tokenKey": "x"});
        let Value::Object(map) = body else {
            unreachable!()
        };
        let parsed = RecordInput::parse(
            &c,
            &map,
            &InputOptions {
                include_hidden: false,
                allow_hidden: &["password"],
            },
        );
        assert_eq!(parsed.password("password"), Some("12345678"));
        assert!(!parsed.touches("tokenKey"));
    }

    #[test]
    fn file_names_must_already_belong_to_the_record() {
        let c = collection(vec![
            field(
                "f",
                FieldKind::File(FileOptions {
                    max_select: 1,
                    ..Default::default()
                }),
            ),
            field(
                "fm",
                FieldKind::File(FileOptions {
                    max_select: 3,
                    ..Default::default()
                }),
            ),
        ]);
        let mut current = blank_record(&c);
        current.insert("fm".into(), json!(["a.png", "b.png"]));
        current.insert("id".into(), json!("abcdefghijklmno"));
        assert_eq!(
            error_of(update(&c, &current, json!({"f": "nonexist.png"})), "f"),
            json!({"code": "validation_invalid_file", "message": "Invalid new files: [nonexist.png].",
                   "params": {"invalidFiles": ["nonexist.png"]}})
        );
        let kept = update(&c, &current, json!({"fm": ["b.png"]})).expect("ok");
        assert_eq!(kept["fm"], json!(["b.png"]));
        let removed = update(&c, &current, json!({"fm-": "a.png"})).expect("ok");
        assert_eq!(removed["fm"], json!(["b.png"]));
        let cleared = update(&c, &current, json!({"fm": []})).expect("ok");
        assert_eq!(cleared["fm"], json!([]));
    }

    #[test]
    fn go_float_parsing_matches_strconv() {
        assert_eq!(parse_go_float("1_000"), Some(1000.0));
        assert_eq!(parse_go_float("_1"), None);
        assert_eq!(parse_go_float("1e400"), None);
        assert_eq!(parse_go_float(".5"), Some(0.5));
        assert!(parse_go_float("nan").is_some_and(f64::is_nan));
        assert_eq!(to_go_string(&json!(1.5)), "1.5");
        assert_eq!(to_go_string(&json!(1e20)), "100000000000000000000");
    }
}
