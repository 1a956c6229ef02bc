//! Field definitions: the typed columns of a collection, serialized exactly as PocketBase's
//! collection JSON (`{"id","name","type","system","hidden","presentable", …type options}`).

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// One field of a collection. `kind` carries the type tag and its options; the common keys
/// live here so that every type serializes them the same way.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Field {
    #[serde(default)]
    pub id: String,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub system: bool,
    #[serde(default)]
    pub hidden: bool,
    #[serde(default)]
    pub presentable: bool,
    #[serde(flatten)]
    pub kind: FieldKind,
}

/// The field type and its options. The serde tag is PocketBase's `type` value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum FieldKind {
    #[serde(rename = "text")]
    Text(TextOptions),
    #[serde(rename = "editor")]
    Editor(EditorOptions),
    #[serde(rename = "number")]
    Number(NumberOptions),
    #[serde(rename = "bool")]
    Bool(BasicOptions),
    #[serde(rename = "email")]
    Email(DomainOptions),
    #[serde(rename = "url")]
    Url(DomainOptions),
    #[serde(rename = "date")]
    Date(DateOptions),
    #[serde(rename = "autodate")]
    Autodate(AutodateOptions),
    #[serde(rename = "select")]
    Select(SelectOptions),
    #[serde(rename = "json")]
    Json(JsonOptions),
    #[serde(rename = "relation")]
    Relation(RelationOptions),
    #[serde(rename = "file")]
    File(FileOptions),
    #[serde(rename = "password")]
    Password(PasswordOptions),
    #[serde(rename = "geoPoint")]
    GeoPoint(BasicOptions),
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct BasicOptions {
    pub help: String,
    pub required: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct TextOptions {
    pub autogenerate_pattern: String,
    pub help: String,
    #[serde(deserialize_with = "lenient_u64")]
    pub max: u64,
    #[serde(deserialize_with = "lenient_u64")]
    pub min: u64,
    pub pattern: String,
    pub primary_key: bool,
    pub required: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct EditorOptions {
    #[serde(rename = "convertURLs")]
    pub convert_urls: bool,
    pub help: String,
    #[serde(deserialize_with = "lenient_u64")]
    pub max_size: u64,
    pub required: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct NumberOptions {
    pub help: String,
    #[serde(serialize_with = "ser_opt_number")]
    pub max: Option<f64>,
    #[serde(serialize_with = "ser_opt_number")]
    pub min: Option<f64>,
    pub only_int: bool,
    pub required: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct DomainOptions {
    pub except_domains: Vec<String>,
    pub help: String,
    pub only_domains: Vec<String>,
    pub required: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct DateOptions {
    pub help: String,
    pub max: String,
    pub min: String,
    pub required: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct AutodateOptions {
    pub on_create: bool,
    pub on_update: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct SelectOptions {
    pub help: String,
    #[serde(deserialize_with = "lenient_u64")]
    pub max_select: u64,
    pub required: bool,
    pub values: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct JsonOptions {
    pub help: String,
    #[serde(deserialize_with = "lenient_u64")]
    pub max_size: u64,
    pub required: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct RelationOptions {
    pub cascade_delete: bool,
    pub collection_id: String,
    pub help: String,
    #[serde(deserialize_with = "lenient_u64")]
    pub max_select: u64,
    #[serde(deserialize_with = "lenient_u64")]
    pub min_select: u64,
    pub required: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct FileOptions {
    pub help: String,
    #[serde(deserialize_with = "lenient_u64")]
    pub max_select: u64,
    #[serde(deserialize_with = "lenient_u64")]
    pub max_size: u64,
    pub mime_types: Vec<String>,
    pub protected: bool,
    pub required: bool,
    pub thumbs: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct PasswordOptions {
    #[serde(deserialize_with = "lenient_u64")]
    pub cost: u64,
    pub help: String,
    #[serde(deserialize_with = "lenient_u64")]
    pub max: u64,
    #[serde(deserialize_with = "lenient_u64")]
    pub min: u64,
    pub pattern: String,
    pub required: bool,
}

/// Default maximum length of a text field when `max` is 0.
pub const TEXT_DEFAULT_MAX: u64 = 5000;
/// Default size limit of editor fields (bytes) when `maxSize` is 0.
pub const EDITOR_DEFAULT_MAX_SIZE: u64 = 5 << 20;
/// Default size limit of json fields (bytes) when `maxSize` is 0.
pub const JSON_DEFAULT_MAX_SIZE: u64 = 1 << 20;
/// Default size limit of one uploaded file (bytes) when `maxSize` is 0.
pub const FILE_DEFAULT_MAX_SIZE: u64 = 5 << 20;
/// bcrypt only reads the first 72 bytes; PocketBase caps passwords at 71.
pub const PASSWORD_DEFAULT_MAX: u64 = 71;

impl Field {
    /// A new field with PocketBase's default options for `kind`, and its id derived from
    /// the type and name (`text3208210256`).
    pub fn new(name: &str, kind: FieldKind) -> Self {
        let mut field = Field {
            id: String::new(),
            name: name.to_owned(),
            system: false,
            hidden: false,
            presentable: false,
            kind,
        };
        field.id = crate::ids::field_id(field.type_name(), name);
        field
    }

    /// PocketBase's `type` string.
    pub fn type_name(&self) -> &'static str {
        self.kind.type_name()
    }

    /// Whether the field holds several values (a JSON array column).
    pub fn is_multiple(&self) -> bool {
        match &self.kind {
            FieldKind::Select(o) => o.max_select > 1,
            FieldKind::Relation(o) => o.max_select > 1,
            FieldKind::File(o) => o.max_select > 1,
            _ => false,
        }
    }

    /// Whether `required` is set (autodate has no such option).
    pub fn is_required(&self) -> bool {
        match &self.kind {
            FieldKind::Text(o) => o.required,
            FieldKind::Editor(o) => o.required,
            FieldKind::Number(o) => o.required,
            FieldKind::Bool(o) | FieldKind::GeoPoint(o) => o.required,
            FieldKind::Email(o) | FieldKind::Url(o) => o.required,
            FieldKind::Date(o) => o.required,
            FieldKind::Autodate(_) => false,
            FieldKind::Select(o) => o.required,
            FieldKind::Json(o) => o.required,
            FieldKind::Relation(o) => o.required,
            FieldKind::File(o) => o.required,
            FieldKind::Password(o) => o.required,
        }
    }

    /// True for the text field flagged as the primary key (`id`).
    pub fn is_primary_key(&self) -> bool {
        matches!(&self.kind, FieldKind::Text(o) if o.primary_key)
    }

    /// The value a record holds when nothing was set (PocketBase's zero values, spec §1.6).
    pub fn zero_value(&self) -> serde_json::Value {
        use serde_json::Value;
        match &self.kind {
            FieldKind::Number(_) => Value::from(0),
            FieldKind::Bool(_) => Value::Bool(false),
            FieldKind::Json(_) => Value::Null,
            FieldKind::GeoPoint(_) => serde_json::json!({"lon": 0, "lat": 0}),
            _ if self.is_multiple() => Value::Array(Vec::new()),
            _ => Value::String(String::new()),
        }
    }
}

impl FieldKind {
    pub fn type_name(&self) -> &'static str {
        match self {
            FieldKind::Text(_) => "text",
            FieldKind::Editor(_) => "editor",
            FieldKind::Number(_) => "number",
            FieldKind::Bool(_) => "bool",
            FieldKind::Email(_) => "email",
            FieldKind::Url(_) => "url",
            FieldKind::Date(_) => "date",
            FieldKind::Autodate(_) => "autodate",
            FieldKind::Select(_) => "select",
            FieldKind::Json(_) => "json",
            FieldKind::Relation(_) => "relation",
            FieldKind::File(_) => "file",
            FieldKind::Password(_) => "password",
            FieldKind::GeoPoint(_) => "geoPoint",
        }
    }

    /// Every type name PocketBase knows, for validation messages.
    pub const TYPE_NAMES: [&'static str; 14] = [
        "text", "editor", "number", "bool", "email", "url", "date", "autodate", "select", "json",
        "relation", "file", "password", "geoPoint",
    ];
}

/// Writes whole numbers without a fraction (`100`, not `100.0`), as Go's encoder does.
pub fn ser_opt_number<S: Serializer>(value: &Option<f64>, s: S) -> Result<S::Ok, S::Error> {
    match value {
        None => s.serialize_none(),
        Some(n) => crate::record::number_to_json(*n).serialize(s),
    }
}

/// Accepts a non-negative number (integral or float) or null for an unsigned option; clients
/// (and PocketBase's own UI) sometimes send `5.0` or `null` where an integer is expected.
fn lenient_u64<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    let value = Option::<serde_json::Value>::deserialize(d)?;
    match value {
        None | Some(serde_json::Value::Null) => Ok(0),
        Some(serde_json::Value::Number(n)) => {
            if let Some(u) = n.as_u64() {
                Ok(u)
            } else if let Some(f) = n.as_f64().filter(|f| *f >= 0.0 && f.fract() == 0.0) {
                Ok(f as u64)
            } else {
                Err(serde::de::Error::custom("must be a non-negative integer"))
            }
        }
        Some(_) => Err(serde::de::Error::custom("must be a non-negative integer")),
    }
}
