//! Collection definitions are checked and completed here before any store sees them: the
//! field ids and system fields a definition must carry, the indexes an auth collection needs,
//! and every rule PocketBase enforces on names, options and indexes, reported with its codes
//! and messages as a [`ValidationErrors`] tree (`fields.2.name`, `authToken.duration`, ...).
//!
//! Everything is pure: the caller passes the schema snapshot that names and relations are
//! checked against, so the same code serves create, update and import.

use std::collections::HashSet;
use std::sync::LazyLock;

use regex::Regex;
use serde_json::Value;

use crate::collection::{
    AuthOptions, Collection, CollectionType, EmailTemplate, RESERVED_NAMES, Schema, TokenConfig,
    auth_indexes, auth_system_fields, id_field,
};
use crate::error::{FieldError, ValidationErrors};
use crate::field::{Field, FieldKind};
use crate::index::IndexDef;

/// The id every default `id` field carries (`text` + CRC32 of "id").
pub const ID_FIELD_ID: &str = "text3208210256";
/// The pattern an `id` field gets when it has none.
pub const ID_DEFAULT_PATTERN: &str = "^[a-z0-9]+$";
/// Field names that would clash with record output keys or SQLite internals.
pub const RESERVED_FIELD_NAMES: [&str; 7] = [
    "null",
    "true",
    "false",
    "_rowid_",
    "collectionId",
    "collectionName",
    "expand",
];
/// The largest integer a JSON number carries exactly (2^53 - 1): the upper bound of size and
/// length options, as in PocketBase.
pub const MAX_SAFE_JSON_INT: u64 = 9_007_199_254_740_991;
/// Allowed token lifetimes, in seconds (three years at most).
pub const TOKEN_DURATION_MIN: u64 = 10;
pub const TOKEN_DURATION_MAX: u64 = 94_670_856;
/// Allowed MFA session lifetime, in seconds.
pub const MFA_DURATION_MAX: u64 = 86_400;
pub const OTP_LENGTH_MIN: u64 = 4;
/// Token secrets must be long enough to resist guessing, and fit the column.
pub const SECRET_MIN_LEN: usize = 30;
pub const SECRET_MAX_LEN: usize = 255;
/// bcrypt's cost range (0 means the default).
pub const BCRYPT_COST_MIN: u64 = 4;
pub const BCRYPT_COST_MAX: u64 = 31;

/// The OAuth2 providers PocketBase knows, as `(name, display name)`.
pub const OAUTH2_PROVIDERS: [(&str, &str); 32] = [
    ("apple", "Apple"),
    ("google", "Google"),
    ("microsoft", "Microsoft"),
    ("yandex", "Yandex"),
    ("facebook", "Facebook"),
    ("instagram2", "Instagram"),
    ("github", "GitHub"),
    ("gitlab", "GitLab"),
    ("bitbucket", "Bitbucket"),
    ("gitee", "Gitee"),
    ("gitea", "Gitea/Forgejo"),
    ("discord", "Discord"),
    ("twitter", "X/Twitter"),
    ("kakao", "Kakao"),
    ("vk", "ВКонтакте"),
    ("linear", "Linear"),
    ("notion", "Notion"),
    ("monday", "monday.com"),
    ("lark", "Lark"),
    ("box", "Box"),
    ("spotify", "Spotify"),
    ("trakt", "Trakt"),
    ("twitch", "Twitch"),
    ("patreon", "Patreon"),
    ("strava", "Strava"),
    ("wakatime", "WakaTime"),
    ("livechat", "LiveChat"),
    ("mailcow", "mailcow"),
    ("planningcenter", "Planning Center"),
    ("oidc", "OIDC"),
    ("oidc2", "OIDC"),
    ("oidc3", "OIDC"),
];

// PocketBase's `\w` is ASCII-only (Go's RE2), so `é` is not a word character here either.
static NAME_RE: LazyLock<Regex> = LazyLock::new(|| constant_regex(r"^[A-Za-z0-9_]+$"));
static THUMB_RE: LazyLock<Regex> = LazyLock::new(|| constant_regex(r"^\d+x\d+[tbf]?$"));
static DOMAIN_RE: LazyLock<Regex> = LazyLock::new(|| {
    constant_regex(
        r"(?i)^(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+(?:[a-z]{2,63}|xn--[a-z0-9]{1,59})$",
    )
});

/// Compiles one of the constant patterns above (covered by the unit tests).
fn constant_regex(pattern: &str) -> Regex {
    Regex::new(pattern).expect("constant pattern compiles")
}

// ---------------------------------------------------------------------------------------------
// Error constructors with PocketBase's codes and wording.

/// `validation_length_out_of_range`, as reported for names, ids, help texts and secrets.
pub fn length_out_of_range(min: usize, max: usize) -> FieldError {
    FieldError::new(
        "validation_length_out_of_range",
        format!("The length must be between {min} and {max}."),
    )
    .with_param("max", max)
    .with_param("min", min)
}

/// A numeric option below its minimum.
pub fn min_threshold(threshold: impl Into<Value> + std::fmt::Display + Copy) -> FieldError {
    FieldError::new(
        "validation_min_greater_equal_than_required",
        format!("Must be no less than {threshold}."),
    )
    .with_param("threshold", threshold)
}

/// A numeric option above its maximum.
pub fn max_threshold(threshold: impl Into<Value> + std::fmt::Display + Copy) -> FieldError {
    FieldError::new(
        "validation_max_less_equal_than_required",
        format!("Must be no greater than {threshold}."),
    )
    .with_param("threshold", threshold)
}

pub fn match_invalid() -> FieldError {
    FieldError::new("validation_match_invalid", "Must be in a valid format.")
}

pub fn not_in_list() -> FieldError {
    FieldError::new("validation_not_in_invalid", "Must not be in list.")
}

fn found_via() -> FieldError {
    FieldError::new(
        "validation_found_via",
        "The value cannot contain \"_via_\".",
    )
}

fn must_be_nil() -> FieldError {
    FieldError::new("validation_nil", "Must be blank.")
}

fn must_be_empty() -> FieldError {
    FieldError::new("validation_empty", "Must be blank.")
}

fn invalid_regex(error: &regex::Error) -> FieldError {
    // The crate's message spans several lines (pattern, caret, reason); the reason is last.
    let text = error.to_string();
    let reason = text
        .lines()
        .rev()
        .find(|line| !line.trim().is_empty())
        .unwrap_or("invalid pattern")
        .trim()
        .trim_start_matches("error: ")
        .to_owned();
    FieldError::new(
        "validation_invalid_regex",
        format!("Error parsing regexp: {reason}."),
    )
}

/// A base or auth collection (or a view) without its `id` primary key.
pub fn missing_primary_key() -> FieldError {
    FieldError::new(
        "validation_missing_primary_key",
        "Missing or invalid \"id\" PK field.",
    )
}

fn invalid_index() -> FieldError {
    FieldError::new(
        "validation_invalid_index_expression",
        "Invalid CREATE INDEX expression.",
    )
}

/// A store-reported failure to build one index, attached to that index.
pub fn index_failure(index_name: &str, detail: &str) -> FieldError {
    FieldError::new(
        "validation_invalid_index_expression",
        sentence(&format!("Failed to create index {index_name} - {detail}")),
    )
}

/// A view query the store could not use.
pub fn invalid_view_query(detail: &str) -> FieldError {
    FieldError::new(
        "validation_invalid_view_query",
        sentence(&format!("Invalid query - {detail}")),
    )
}

/// The error a view query without an `id` column gets.
pub fn view_query_missing_id() -> FieldError {
    invalid_view_query(
        "missing required id column (you can use `(ROW_NUMBER() OVER()) as id` if you don't have one)",
    )
}

fn sentence(text: &str) -> String {
    let trimmed = text.trim();
    if trimmed.ends_with(['.', '?', '!']) {
        trimmed.to_owned()
    } else {
        format!("{trimmed}.")
    }
}

// ---------------------------------------------------------------------------------------------
// Normalization: what a definition gets before it is validated.

/// Gives every field an id and folds items that share an id into one (the later wins, in the
/// earlier one's place). Items without an id take the id of the previous field with the same
/// name and type (so a rename-free edit keeps its column), else `type + CRC32(name)`, with a
/// numeric suffix when that is taken.
pub fn assign_field_ids(items: Vec<Field>, previous: &[Field]) -> Vec<Field> {
    assign_field_ids_traced(items, previous).0
}

/// [`assign_field_ids`], also returning the id each input item ended up with (so that
/// problems found while reading an item can be reported at its final position).
pub fn assign_field_ids_traced(items: Vec<Field>, previous: &[Field]) -> (Vec<Field>, Vec<String>) {
    let mut assigned = Vec::with_capacity(items.len());
    let explicit: HashSet<String> = items
        .iter()
        .filter(|f| !f.id.is_empty())
        .map(|f| f.id.clone())
        .collect();
    let mut out: Vec<Field> = Vec::with_capacity(items.len());
    for mut field in items {
        if field.id.is_empty()
            && let Some(same_name) = out.iter().find(|f| f.name == field.name)
        {
            // PocketBase gives an id-less field the id of an earlier item with the same exact
            // name, so the later definition replaces the earlier one in place.
            field.id.clone_from(&same_name.id);
        }
        if field.id.is_empty() {
            let reusable = previous.iter().find(|old| {
                old.name == field.name
                    && old.type_name() == field.type_name()
                    && !explicit.contains(&old.id)
                    && !out.iter().any(|f| f.id == old.id)
            });
            field.id = match reusable {
                Some(old) => old.id.clone(),
                None => {
                    let base = crate::ids::field_id(field.type_name(), &field.name);
                    let taken = |id: &str| explicit.contains(id) || out.iter().any(|f| f.id == id);
                    let mut candidate = base.clone();
                    let mut suffix = 2;
                    while taken(&candidate) {
                        candidate = format!("{base}{suffix}");
                        suffix += 1;
                    }
                    candidate
                }
            };
        }
        assigned.push(field.id.clone());
        match out.iter().position(|f| f.id == field.id) {
            Some(pos) => out[pos] = field,
            None => out.push(field),
        }
    }
    (out, assigned)
}

/// Adds the system fields a base or auth collection must have, and forces the properties
/// that make them work (the `id` field is always the required text primary key, the
/// password and token key always hidden and required). A missing `id` goes first; missing
/// auth fields are appended in scaffold order. A same-named auth field of the wrong type is
/// replaced by the default one, keeping its id. View fields come from the query: untouched.
pub fn ensure_system_fields(collection: &mut Collection) {
    if collection.is_view() {
        return;
    }
    let is_auth = collection.is_auth();
    let fields = &mut collection.fields;
    if let Some(id) = fields
        .iter_mut()
        .find(|f| f.name == "id" && matches!(f.kind, FieldKind::Text(_)))
    {
        id.system = true;
        id.hidden = false;
        if let FieldKind::Text(options) = &mut id.kind {
            options.primary_key = true;
            options.required = true;
            if options.pattern.is_empty() {
                options.pattern = ID_DEFAULT_PATTERN.to_owned();
            }
        }
    } else if !fields.iter().any(|f| f.id == ID_FIELD_ID) {
        // A field that took the default id under another name is reported as a missing
        // primary key rather than silently replaced.
        fields.insert(0, id_field());
    }
    if !is_auth {
        return;
    }
    for default in auth_system_fields().into_iter().skip(1) {
        match fields.iter_mut().find(|f| f.name == default.name) {
            None => fields.push(default),
            Some(existing) if existing.type_name() != default.type_name() => {
                let id = std::mem::take(&mut existing.id);
                *existing = Field { id, ..default };
            }
            Some(existing) => {
                existing.system = true;
                match &mut existing.kind {
                    FieldKind::Password(options) => {
                        existing.hidden = true;
                        options.required = true;
                    }
                    FieldKind::Text(options) => {
                        existing.hidden = true;
                        options.required = true;
                        options.primary_key = false;
                    }
                    FieldKind::Email(_) => existing.hidden = false,
                    _ => {}
                }
            }
        }
    }
}

/// Appends the token-key and email unique indexes to an auth collection that lacks a
/// single-column unique index on either.
pub fn ensure_auth_indexes(collection: &mut Collection) {
    if !collection.is_auth() {
        return;
    }
    let parsed: Vec<IndexDef> = collection
        .indexes
        .iter()
        .filter_map(|sql| IndexDef::parse(sql).ok())
        .collect();
    let defaults = auth_indexes(&collection.id, &collection.name);
    for (column, sql) in ["tokenKey", "email"].into_iter().zip(defaults) {
        if !parsed.iter().any(|index| is_unique_on(index, column)) {
            collection.indexes.push(sql);
        }
    }
}

/// Points every index at the collection's own table (after a rename, or when the client
/// named another table), rewriting it in canonical form. Indexes that do not parse are left
/// for validation to report.
pub fn retarget_indexes(collection: &mut Collection) {
    let table = collection.name.clone();
    for sql in &mut collection.indexes {
        if let Ok(index) = IndexDef::parse(sql)
            && !index.table.eq_ignore_ascii_case(&table)
        {
            *sql = pocketbase_index_sql(&index, &table);
        }
    }
}

/// An index statement in PocketBase's rendering (see [`IndexDef::to_pocketbase`]).
pub fn pocketbase_index_sql(index: &IndexDef, table: &str) -> String {
    index.to_pocketbase(table)
}

/// The id a new collection gets: `pbc_` + CRC32(type + name), suffixed when already taken.
pub fn new_collection_id(kind: CollectionType, name: &str, schema: &Schema) -> String {
    let base = crate::ids::collection_id(kind.as_str(), name);
    let mut candidate = base.clone();
    let mut suffix = 2;
    while schema.get_by_id(&candidate).is_some() {
        candidate = format!("{base}{suffix}");
        suffix += 1;
    }
    candidate
}

/// Whether `index` is a unique index over exactly `column` (any partial condition allowed),
/// the shape identity lookups and the auth system columns need.
pub fn is_unique_on(index: &IndexDef, column: &str) -> bool {
    index.unique && index.columns.len() == 1 && index.columns[0].name.eq_ignore_ascii_case(column)
}

// ---------------------------------------------------------------------------------------------
// Validation.

/// Checks `new` (already normalized) and adds every problem to `errors`. `old` is the stored
/// version on update; `schema` is what names, relations and index names are checked against
/// (it may contain `new` itself, which is skipped by id).
pub fn validate_collection(
    errors: &mut ValidationErrors,
    new: &Collection,
    old: Option<&Collection>,
    schema: &Schema,
) {
    if old.is_none() {
        validate_new_id(errors, new, schema);
    }
    validate_name(errors, new, old, schema);
    if let Some(old) = old {
        if old.kind != new.kind {
            errors.add(
                "type",
                FieldError::new(
                    "validation_collection_type_change",
                    "Collection type cannot be changed.",
                ),
            );
        }
        if old.system != new.system {
            errors.add(
                "system",
                FieldError::new(
                    "validation_collection_system_flag_change",
                    "System collection state cannot be changed.",
                ),
            );
        }
    }
    validate_rules(errors, new, old);
    if new.is_view() {
        validate_view(errors, new);
    } else {
        validate_fields(errors, new, old, schema);
        validate_indexes(errors, new, schema);
    }
    if new.is_auth()
        && let Some(options) = &new.auth
    {
        let mut auth_errors = ValidationErrors::new();
        validate_auth_options(&mut auth_errors, new, options);
        // PocketBase asks MFA for a second method only once the auth options are otherwise
        // valid (a bad `otp.length` or token duration hides it).
        if auth_errors.is_empty() {
            check_mfa_methods(&mut auth_errors, options);
        }
        errors.merge("", auth_errors);
    }
}

/// MFA needs two enabled methods among password, OTP and OAuth2 (enabled with or without
/// providers), or the second factor could never be given.
fn check_mfa_methods(errors: &mut ValidationErrors, o: &AuthOptions) {
    let methods = [o.password_auth.enabled, o.otp.enabled, o.oauth2.enabled]
        .into_iter()
        .filter(|enabled| *enabled)
        .count();
    if o.mfa.enabled && methods < 2 {
        errors.add(
            "mfa.enabled",
            FieldError::new(
                "validation_mfa_not_enough_auths",
                "MFA requires at least 2 auth methods to be enabled.",
            ),
        );
    }
}

fn validate_new_id(errors: &mut ValidationErrors, new: &Collection, schema: &Schema) {
    let id = new.id.as_str();
    if id.is_empty() {
        errors.add("id", FieldError::required());
    } else if id.chars().count() > 100 {
        errors.add("id", length_out_of_range(1, 100));
    } else if !NAME_RE.is_match(id) {
        errors.add("id", match_invalid());
    } else if schema.get_by_id(id).is_some_and(|c| **c != *new) {
        // A schema holding this very definition (an import's future schema) is no clash.
        errors.add(
            "id",
            FieldError::new(
                "validation_invalid_or_existing_id",
                "The model id is invalid or already exists.",
            ),
        );
    }
}

fn validate_name(
    errors: &mut ValidationErrors,
    new: &Collection,
    old: Option<&Collection>,
    schema: &Schema,
) {
    let name = new.name.as_str();
    let lower = name.to_lowercase();
    let renamed = old.is_none_or(|old| old.name != name);
    let error = if name.is_empty() {
        Some(FieldError::required())
    } else if name.chars().count() > 255 {
        Some(length_out_of_range(1, 255))
    } else if name.contains("_via_") {
        Some(found_via())
    } else if !NAME_RE.is_match(name) {
        Some(match_invalid())
    } else if renamed && old.is_some_and(|old| old.system) {
        Some(FieldError::new(
            "validation_collection_system_name_change",
            "System collection name cannot be changed.",
        ))
    } else if schema
        .all()
        .iter()
        .any(|c| c.id != new.id && c.name.to_lowercase() == lower)
        || (old.is_none_or(|old| old.name.to_lowercase() != lower)
            && RESERVED_NAMES.iter().any(|r| r.to_lowercase() == lower))
    {
        Some(FieldError::new(
            "validation_collection_name_exists",
            "Collection name must be unique (case insensitive).",
        ))
    } else {
        None
    };
    if let Some(error) = error {
        errors.add("name", error);
    }
}

fn validate_rules(errors: &mut ValidationErrors, new: &Collection, old: Option<&Collection>) {
    let auth_rules = |c: &Collection| {
        c.auth
            .as_ref()
            .map(|a| (a.auth_rule.clone(), a.manage_rule.clone()))
    };
    let rules = |c: &Collection| {
        let (auth_rule, manage_rule) = auth_rules(c).unzip();
        [
            ("listRule", c.list_rule.clone()),
            ("viewRule", c.view_rule.clone()),
            ("createRule", c.create_rule.clone()),
            ("updateRule", c.update_rule.clone()),
            ("deleteRule", c.delete_rule.clone()),
            ("authRule", auth_rule.flatten()),
            ("manageRule", manage_rule.flatten()),
        ]
    };
    if let Some(old) = old.filter(|old| old.system) {
        for ((key, before), (_, after)) in rules(old).into_iter().zip(rules(new)) {
            if before != after {
                errors.add(
                    key,
                    FieldError::new(
                        "validation_collection_system_rule_change",
                        "System collection API rule cannot be changed.",
                    ),
                );
            }
        }
    }
    // The rule texts themselves are compiled by the server on save
    // (`server::collections::rule_check`): the rules crate depends on this one.
}

fn validate_view(errors: &mut ValidationErrors, new: &Collection) {
    for (key, rule) in [
        ("createRule", &new.create_rule),
        ("updateRule", &new.update_rule),
        ("deleteRule", &new.delete_rule),
    ] {
        if rule.is_some() {
            errors.add(key, must_be_nil());
        }
    }
    if !new.indexes.is_empty() {
        errors.add(
            "indexes",
            FieldError::new(
                "validation_indexes_not_supported",
                "View collections don't support indexes.",
            ),
        );
    }
    if new
        .view_query
        .as_deref()
        .is_none_or(|q| q.trim().is_empty())
    {
        errors.add("viewQuery", FieldError::required());
    }
    if new.fields.is_empty() {
        errors.add("fields", FieldError::required());
    } else if !has_primary_key(new) {
        errors.add("fields", missing_primary_key());
    }
    // The query's column names are the fields' names: one that is no valid field name (`t AS
    // "my col"`) is refused on that field, and the query is refused naming the first. The
    // query's message quotes the error as PocketBase words it before its API capitalizes it:
    // its generic checks in lower case without a period, its own messages as they are (so a
    // period is doubled, as there).
    let mut seen = HashSet::new();
    let mut first = None;
    for (index, field) in new.fields.iter().enumerate() {
        if let Some(error) = field_name_error(field, &mut seen) {
            let reason = match error.code.as_str() {
                "validation_found_via" | "validation_duplicated_field_name" => {
                    error.message.clone()
                }
                _ => {
                    let bare = error.message.trim_end_matches('.');
                    let mut chars = bare.chars();
                    chars.next().map_or(String::new(), |c| {
                        c.to_lowercase().chain(chars).collect::<String>()
                    })
                }
            };
            first.get_or_insert_with(|| {
                format!(
                    "Invalid query - invalid field {:?} ({index}): name: {reason}.",
                    field.name
                )
            });
            errors.add(&format!("fields.{index}.name"), error);
        }
    }
    if let Some(message) = first
        && !errors.contains("viewQuery")
    {
        errors.add(
            "viewQuery",
            FieldError::new("validation_invalid_view_query", message),
        );
    }
}

fn has_primary_key(collection: &Collection) -> bool {
    collection
        .fields
        .iter()
        .any(|f| f.name == "id" && f.is_primary_key())
}

fn validate_fields(
    errors: &mut ValidationErrors,
    new: &Collection,
    old: Option<&Collection>,
    schema: &Schema,
) {
    // A missing primary key is reported before a system field change (renaming `id` is
    // both; PocketBase names the missing key).
    if !has_primary_key(new) {
        errors.add("fields", missing_primary_key());
    }
    if let Some(old) = old {
        let system_changed = old.fields.iter().filter(|f| f.system).any(|before| {
            new.fields
                .iter()
                .find(|f| f.id == before.id)
                .is_none_or(|after| after.name != before.name)
        });
        if system_changed {
            errors.add(
                "fields",
                FieldError::new(
                    "validation_system_field_change",
                    "System fields cannot be deleted or renamed.",
                ),
            );
        }
    }
    let primary_keys = new.fields.iter().filter(|f| f.is_primary_key()).count();
    let mut seen_names: HashSet<String> = HashSet::new();
    for (index, field) in new.fields.iter().enumerate() {
        let prefix = format!("fields.{index}");
        if let Some(before) = old.and_then(|o| o.fields.iter().find(|f| f.id == field.id))
            && before.type_name() != field.type_name()
        {
            errors.add(
                &prefix,
                FieldError::new(
                    "validation_field_type_change",
                    "Field type cannot be changed.",
                ),
            );
            continue;
        }
        let mut field_errors = ValidationErrors::new();
        if field.id.chars().count() > 100 {
            field_errors.add("id", length_out_of_range(1, 100));
        }
        if let Some(error) = field_name_error(field, &mut seen_names) {
            field_errors.add("name", error);
        }
        if field_help(field).chars().count() > 300 {
            field_errors.add("help", length_out_of_range(1, 300));
        }
        validate_field_options(&mut field_errors, field, new, schema, primary_keys);
        // A relation keeps its target: the ids it holds name records of that collection.
        if let Some(before) = old.and_then(|o| o.fields.iter().find(|f| f.id == field.id))
            && let (FieldKind::Relation(before), FieldKind::Relation(after)) =
                (&before.kind, &field.kind)
            && before.collection_id != after.collection_id
        {
            field_errors.add(
                "collectionId",
                FieldError::new(
                    "validation_field_relation_change",
                    "The relation collection cannot be changed.",
                ),
            );
        }
        if !field_errors.is_empty() {
            for (key, value) in field_errors.as_map() {
                add_json(errors, &format!("{prefix}.{key}"), value);
            }
        }
    }
}

/// Copies an already-built error subtree under `path`.
fn add_json(errors: &mut ValidationErrors, path: &str, value: &Value) {
    match value {
        Value::Object(map) if !map.contains_key("code") => {
            for (key, child) in map {
                add_json(errors, &format!("{path}.{key}"), child);
            }
        }
        leaf => {
            let code = leaf.get("code").and_then(Value::as_str).unwrap_or("");
            let message = leaf.get("message").and_then(Value::as_str).unwrap_or("");
            let mut error = FieldError::new(code, message);
            if let Some(Value::Object(params)) = leaf.get("params") {
                error.params = Some(params.clone());
            }
            errors.add(path, error);
        }
    }
}

fn field_help(field: &Field) -> &str {
    match &field.kind {
        FieldKind::Text(o) => &o.help,
        FieldKind::Editor(o) => &o.help,
        FieldKind::Number(o) => &o.help,
        FieldKind::Bool(o) | FieldKind::GeoPoint(o) => &o.help,
        FieldKind::Email(o) | FieldKind::Url(o) => &o.help,
        FieldKind::Date(o) => &o.help,
        FieldKind::Autodate(_) => "",
        FieldKind::Select(o) => &o.help,
        FieldKind::Json(o) => &o.help,
        FieldKind::Relation(o) => &o.help,
        FieldKind::File(o) => &o.help,
        FieldKind::Password(o) => &o.help,
    }
}

/// What is wrong with a field's name, if anything (`seen` holds the names before it).
fn field_name_error(field: &Field, seen: &mut HashSet<String>) -> Option<FieldError> {
    let name = field.name.as_str();
    if name.is_empty() {
        Some(FieldError::required())
    } else if name.chars().count() > 100 {
        Some(length_out_of_range(1, 100))
    } else if name.contains("_via_") {
        Some(found_via())
    } else if !NAME_RE.is_match(name) {
        Some(match_invalid())
    } else if RESERVED_FIELD_NAMES.contains(&name) {
        Some(not_in_list())
    } else if !seen.insert(name.to_lowercase()) {
        Some(
            FieldError::new(
                "validation_duplicated_field_name",
                format!("Duplicated or invalid field name {name}."),
            )
            .with_param("fieldName", name),
        )
    } else {
        None
    }
}

fn validate_field_options(
    errors: &mut ValidationErrors,
    field: &Field,
    collection: &Collection,
    schema: &Schema,
    primary_keys: usize,
) {
    match &field.kind {
        FieldKind::Text(o) => {
            if o.min > MAX_SAFE_JSON_INT {
                errors.add("min", max_threshold(MAX_SAFE_JSON_INT));
            }
            if o.max > 0 && o.max < o.min {
                errors.add("max", min_threshold(o.min));
            } else if o.max > MAX_SAFE_JSON_INT {
                errors.add("max", max_threshold(MAX_SAFE_JSON_INT));
            }
            check_pattern(errors, "pattern", &o.pattern);
            check_pattern(errors, "autogeneratePattern", &o.autogenerate_pattern);
            if !o.autogenerate_pattern.is_empty()
                && Regex::new(&o.autogenerate_pattern).is_ok()
                && crate::ids::generate_from_pattern(&o.autogenerate_pattern).is_none()
            {
                // Plinth generates values from `[class]{n}` sequences only; refusing other
                // patterns here beats failing every record create later.
                errors.add(
                    "autogeneratePattern",
                    FieldError::new(
                        "validation_invalid_regex",
                        "Unsupported autogenerate pattern: use character classes with counts, like [a-z0-9]{15}.",
                    ),
                );
            }
            if o.primary_key {
                if primary_keys > 1 {
                    errors.add(
                        "primaryKey",
                        FieldError::new(
                            "validation_unsupported_composite_pk",
                            "Composite PKs are not supported and the collection must have only 1 PK.",
                        ),
                    );
                }
                if field.name != "id" {
                    errors.add(
                        "name",
                        FieldError::new(
                            "validation_in_invalid",
                            "The primary key must be named \"id\".",
                        ),
                    );
                }
                if o.pattern.is_empty() {
                    errors.add("pattern", FieldError::required());
                }
                if !o.required {
                    errors.add("required", FieldError::required());
                }
            }
        }
        FieldKind::Number(o) => {
            if o.only_int {
                for (key, value) in [("min", o.min), ("max", o.max)] {
                    if value.is_some_and(|v| v.fract() != 0.0) {
                        errors.add(
                            key,
                            FieldError::new(
                                "validation_only_int_constraint",
                                "Decimal numbers are not allowed.",
                            ),
                        );
                    }
                }
            }
            if let (Some(min), Some(max)) = (o.min, o.max)
                && max < min
            {
                let shown = crate::record::number_to_json(min);
                errors.add(
                    "max",
                    FieldError::new(
                        "validation_min_number_constraint",
                        format!("Must be greater or equal than {shown}."),
                    )
                    .with_param("min", shown),
                );
            }
        }
        FieldKind::Select(o) => {
            if o.values.is_empty() {
                errors.add("values", FieldError::required());
            } else if o.max_select > o.values.len() as u64 {
                errors.add("maxSelect", max_threshold(o.values.len() as u64));
            }
        }
        FieldKind::Relation(o) => {
            if o.collection_id.is_empty() {
                errors.add("collectionId", FieldError::required());
            } else {
                let target_is_view = if o.collection_id == collection.id {
                    Some(collection.is_view())
                } else {
                    schema.get_by_id(&o.collection_id).map(|c| c.is_view())
                };
                match target_is_view {
                    None => errors.add(
                        "collectionId",
                        FieldError::new(
                            "validation_field_relation_missing_collection",
                            "The relation collection doesn't exist.",
                        ),
                    ),
                    Some(true) if !collection.is_view() => errors.add(
                        "collectionId",
                        FieldError::new(
                            "validation_relation_field_non_view_base_collection",
                            "Only view collections are allowed to have relations to other views.",
                        ),
                    ),
                    Some(_) => {}
                }
            }
            if o.max_select > 0 && o.max_select < o.min_select {
                errors.add("maxSelect", min_threshold(o.min_select));
            }
        }
        FieldKind::File(o) => {
            check_max_size(errors, o.max_size);
            for (i, thumb) in o.thumbs.iter().enumerate() {
                let path = format!("thumbs.{i}");
                if !THUMB_RE.is_match(thumb) {
                    errors.add(&path, match_invalid());
                } else if ["0x0", "0x0t", "0x0b", "0x0f"].contains(&thumb.as_str()) {
                    errors.add(&path, not_in_list());
                }
            }
        }
        FieldKind::Password(o) => {
            let cap = crate::field::PASSWORD_DEFAULT_MAX;
            if o.min > cap {
                errors.add("min", max_threshold(cap));
            }
            if o.max > 0 && o.max < o.min {
                errors.add("max", min_threshold(o.min));
            } else if o.max > cap {
                errors.add("max", max_threshold(cap));
            }
            if o.cost != 0 && o.cost < BCRYPT_COST_MIN {
                errors.add("cost", min_threshold(BCRYPT_COST_MIN));
            } else if o.cost > BCRYPT_COST_MAX {
                errors.add("cost", max_threshold(BCRYPT_COST_MAX));
            }
            check_pattern(errors, "pattern", &o.pattern);
        }
        FieldKind::Email(o) | FieldKind::Url(o) => {
            if !o.only_domains.is_empty() && !o.except_domains.is_empty() {
                errors.add("exceptDomains", must_be_empty());
                errors.add("onlyDomains", must_be_empty());
            }
            for (key, list) in [
                ("exceptDomains", &o.except_domains),
                ("onlyDomains", &o.only_domains),
            ] {
                for (i, domain) in list.iter().enumerate() {
                    if !is_domain(domain) {
                        errors.add(
                            &format!("{key}.{i}"),
                            FieldError::new("validation_is_domain", "Must be a valid domain."),
                        );
                    }
                }
            }
        }
        FieldKind::Autodate(o) => {
            if !o.on_create && !o.on_update {
                let error = FieldError::new(
                    "validation_required",
                    "Either onCreate or onUpdate must be enabled.",
                );
                errors.add("onCreate", error.clone());
                errors.add("onUpdate", error);
            }
        }
        FieldKind::Editor(o) => check_max_size(errors, o.max_size),
        FieldKind::Json(o) => check_max_size(errors, o.max_size),
        FieldKind::Bool(_) | FieldKind::Date(_) | FieldKind::GeoPoint(_) => {}
    }
}

/// A `maxSize` option must stay within what a JSON number carries exactly.
fn check_max_size(errors: &mut ValidationErrors, max_size: u64) {
    if max_size > MAX_SAFE_JSON_INT {
        errors.add("maxSize", max_threshold(MAX_SAFE_JSON_INT));
    }
}

fn check_pattern(errors: &mut ValidationErrors, key: &str, pattern: &str) {
    if pattern.is_empty() {
        return;
    }
    if let Err(error) = Regex::new(pattern) {
        errors.add(key, invalid_regex(&error));
    }
}

/// Whether `text` is a plausible host name (`example.com`; a bare `localhost` is not).
pub fn is_domain(text: &str) -> bool {
    text.len() <= 253 && DOMAIN_RE.is_match(text)
}

fn validate_indexes(errors: &mut ValidationErrors, new: &Collection, schema: &Schema) {
    let mut names: HashSet<String> = HashSet::new();
    for (i, sql) in new.indexes.iter().enumerate() {
        let path = format!("indexes.{i}");
        let Ok(index) = IndexDef::parse(sql) else {
            errors.add(&path, invalid_index());
            continue;
        };
        let lower = index.name.to_lowercase();
        if !names.insert(lower.clone()) {
            errors.add(
                &path,
                FieldError::new(
                    "validation_duplicated_index_name",
                    "The index name already exists.",
                ),
            );
            continue;
        }
        let used_by = schema.all().iter().find(|c| {
            c.id != new.id
                && c.indexes.iter().any(|other| {
                    IndexDef::parse(other).is_ok_and(|o| o.name.to_lowercase() == lower)
                })
        });
        if let Some(other) = used_by {
            errors.add(
                &path,
                FieldError::new(
                    "validation_existing_index_name",
                    format!(
                        "The index name is already used in {} collection.",
                        other.name
                    ),
                )
                .with_param("usedTableName", other.name.clone()),
            );
            continue;
        }
        let missing = index.referenced_columns().into_iter().find(|column| {
            !new.fields
                .iter()
                .any(|f| f.name.eq_ignore_ascii_case(column))
        });
        if let Some(column) = missing {
            errors.add(
                &path,
                index_failure(
                    &index.name,
                    &format!("SQL logic error: no such column: {column} (1)"),
                ),
            );
        }
    }
}

fn validate_auth_options(errors: &mut ValidationErrors, collection: &Collection, o: &AuthOptions) {
    for (key, token) in [
        ("authToken", &o.auth_token),
        ("passwordResetToken", &o.password_reset_token),
        ("emailChangeToken", &o.email_change_token),
        ("verificationToken", &o.verification_token),
        ("fileToken", &o.file_token),
    ] {
        validate_token(errors, key, token);
    }
    for (key, template) in [
        ("authAlert.emailTemplate", &o.auth_alert.email_template),
        ("otp.emailTemplate", &o.otp.email_template),
        ("verificationTemplate", &o.verification_template),
        ("resetPasswordTemplate", &o.reset_password_template),
        (
            "confirmEmailChangeTemplate",
            &o.confirm_email_change_template,
        ),
    ] {
        validate_template(errors, key, template);
    }
    // The settings of a disabled method are not checked until it is enabled (templates and
    // tokens always are).
    if o.mfa.enabled {
        check_range(errors, "mfa.duration", o.mfa.duration, MFA_DURATION_MAX);
        // `mfa.rule` itself is compiled by the server (`collections/rule_check.rs`).
    }
    if o.otp.enabled {
        check_range(errors, "otp.duration", o.otp.duration, u64::MAX);
        if o.otp.length == 0 {
            errors.add("otp.length", FieldError::required());
        } else if o.otp.length < OTP_LENGTH_MIN {
            errors.add("otp.length", min_threshold(OTP_LENGTH_MIN));
        }
    }
    if o.password_auth.enabled {
        validate_identity_fields(errors, collection, &o.password_auth.identity_fields);
    }
    if o.oauth2.enabled {
        validate_providers(errors, &o.oauth2.providers);
    }
}

fn validate_token(errors: &mut ValidationErrors, key: &str, token: &TokenConfig) {
    check_range(
        errors,
        &format!("{key}.duration"),
        token.duration,
        TOKEN_DURATION_MAX,
    );
    let secret_len = token.secret.chars().count();
    if secret_len == 0 {
        errors.add(&format!("{key}.secret"), FieldError::required());
    } else if !(SECRET_MIN_LEN..=SECRET_MAX_LEN).contains(&secret_len) {
        errors.add(
            &format!("{key}.secret"),
            length_out_of_range(SECRET_MIN_LEN, SECRET_MAX_LEN),
        );
    }
}

/// A required duration between [`TOKEN_DURATION_MIN`] and `max` seconds.
fn check_range(errors: &mut ValidationErrors, path: &str, value: u64, max: u64) {
    if value == 0 {
        errors.add(path, FieldError::required());
    } else if value < TOKEN_DURATION_MIN {
        errors.add(path, min_threshold(TOKEN_DURATION_MIN));
    } else if value > max {
        errors.add(path, max_threshold(max));
    }
}

fn validate_template(errors: &mut ValidationErrors, key: &str, template: &EmailTemplate) {
    if template.body.trim().is_empty() {
        errors.add(&format!("{key}.body"), FieldError::required());
    }
    if template.subject.trim().is_empty() {
        errors.add(&format!("{key}.subject"), FieldError::required());
    }
}

fn validate_identity_fields(
    errors: &mut ValidationErrors,
    collection: &Collection,
    names: &[String],
) {
    const PATH: &str = "passwordAuth.identityFields";
    if names.is_empty() {
        errors.add(PATH, FieldError::required());
        return;
    }
    let indexes: Vec<IndexDef> = collection
        .indexes
        .iter()
        .filter_map(|sql| IndexDef::parse(sql).ok())
        .collect();
    for name in names {
        if collection.field(name).is_none() {
            errors.add(
                PATH,
                FieldError::new(
                    "validation_missing_field",
                    format!("Invalid or missing field {name}."),
                )
                .with_param("fieldName", name.clone()),
            );
            return;
        }
        if !indexes.iter().any(|index| is_unique_on(index, name)) {
            errors.add(
                PATH,
                FieldError::new(
                    "validation_missing_unique_constraint",
                    format!("The field {name} doesn't have a UNIQUE constraint."),
                )
                .with_param("fieldName", name.clone()),
            );
            return;
        }
    }
}

fn validate_providers(errors: &mut ValidationErrors, providers: &[Value]) {
    let mut seen: HashSet<String> = HashSet::new();
    for (i, provider) in providers.iter().enumerate() {
        let prefix = format!("oauth2.providers.{i}");
        let text = |key: &str| provider.get(key).and_then(Value::as_str).unwrap_or("");
        let name = text("name");
        if !OAUTH2_PROVIDERS.iter().any(|(known, _)| *known == name) {
            errors.add(
                &format!("{prefix}.name"),
                FieldError::new(
                    "validation_missing_provider",
                    format!("Invalid or missing provider with name {name}."),
                )
                .with_param("name", name),
            );
        } else if !seen.insert(name.to_owned()) {
            errors.add(
                &format!("{prefix}.name"),
                FieldError::new(
                    "validation_duplicated_provider",
                    format!("The provider {name} is already registered."),
                )
                .with_param("name", name),
            );
        }
        for key in ["clientId", "clientSecret"] {
            if text(key).is_empty() {
                errors.add(&format!("{prefix}.{key}"), FieldError::required());
            }
        }
        for key in ["authURL", "tokenURL", "userInfoURL"] {
            let value = text(key);
            if !value.is_empty() && !is_url(value) {
                errors.add(
                    &format!("{prefix}.{key}"),
                    FieldError::new("validation_is_url", "Must be a valid URL."),
                );
            }
        }
    }
}

fn is_url(text: &str) -> bool {
    url::Url::parse(text)
        .is_ok_and(|u| matches!(u.scheme(), "http" | "https") && u.host_str().is_some())
}

#[cfg(test)]
mod tests;
