//! Collections: a named, typed table with access rules. Serialized as PocketBase's collection
//! JSON; auth collections carry their auth options flattened into the same object.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::field::{
    AutodateOptions, BasicOptions, DomainOptions, Field, FieldKind, FileOptions, PasswordOptions,
    TextOptions,
};

/// `base`, `auth` or `view`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CollectionType {
    #[default]
    Base,
    Auth,
    View,
}

impl CollectionType {
    pub fn as_str(self) -> &'static str {
        match self {
            CollectionType::Base => "base",
            CollectionType::Auth => "auth",
            CollectionType::View => "view",
        }
    }
}

/// A collection definition. A rule of `None` means superusers only; `Some("")` means
/// everyone; any other text is a filter expression.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Collection {
    #[serde(default)]
    pub id: String,
    #[serde(default)]
    pub list_rule: Option<String>,
    #[serde(default)]
    pub view_rule: Option<String>,
    #[serde(default)]
    pub create_rule: Option<String>,
    #[serde(default)]
    pub update_rule: Option<String>,
    #[serde(default)]
    pub delete_rule: Option<String>,
    #[serde(default)]
    pub name: String,
    #[serde(rename = "type", default)]
    pub kind: CollectionType,
    #[serde(default)]
    pub fields: Vec<Field>,
    #[serde(default)]
    pub indexes: Vec<String>,
    #[serde(default)]
    pub created: String,
    #[serde(default)]
    pub updated: String,
    #[serde(default)]
    pub system: bool,
    /// Only for `view` collections: the SELECT that defines them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub view_query: Option<String>,
    /// Only for `auth` collections.
    #[serde(flatten, default, skip_serializing_if = "Option::is_none")]
    pub auth: Option<AuthOptions>,
}

/// What an auth collection adds (spec §3.1). Token secrets are stored but never shown by the
/// API: see [`Collection::to_api_json`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AuthOptions {
    #[serde(default)]
    pub auth_rule: Option<String>,
    #[serde(default)]
    pub manage_rule: Option<String>,
    pub auth_alert: AuthAlert,
    pub oauth2: OAuth2Options,
    pub password_auth: PasswordAuth,
    pub mfa: MfaOptions,
    pub otp: OtpOptions,
    pub auth_token: TokenConfig,
    pub password_reset_token: TokenConfig,
    pub email_change_token: TokenConfig,
    pub verification_token: TokenConfig,
    pub file_token: TokenConfig,
    pub verification_template: EmailTemplate,
    pub reset_password_template: EmailTemplate,
    pub confirm_email_change_template: EmailTemplate,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct AuthAlert {
    pub enabled: bool,
    pub email_template: EmailTemplate,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct OAuth2Options {
    pub providers: Vec<Value>,
    pub mapped_fields: OAuth2MappedFields,
    pub enabled: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct OAuth2MappedFields {
    pub id: String,
    pub name: String,
    pub username: String,
    #[serde(rename = "avatarURL")]
    pub avatar_url: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct PasswordAuth {
    pub enabled: bool,
    pub identity_fields: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct MfaOptions {
    pub enabled: bool,
    pub duration: u64,
    pub rule: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct OtpOptions {
    pub enabled: bool,
    pub duration: u64,
    pub length: u64,
    pub email_template: EmailTemplate,
}

/// A token type's lifetime (seconds) and signing secret.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct TokenConfig {
    pub duration: u64,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub secret: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct EmailTemplate {
    pub subject: String,
    pub body: String,
}

/// Fixed ids of the system collections; SDKs hard-code the superusers one.
pub const SUPERUSERS_ID: &str = "pbc_3142635823";
pub const SUPERUSERS_NAME: &str = "_superusers";
pub const USERS_ID: &str = "_pb_users_auth_";
pub const USERS_NAME: &str = "users";

/// Collection names that are reserved for system collections created later.
pub const RESERVED_NAMES: [&str; 4] = ["_mfas", "_otps", "_externalAuths", "_authOrigins"];

impl Collection {
    /// An empty collection of `kind` named `name`, with PocketBase's scaffold: the `id` field,
    /// plus the auth system fields and options for auth collections.
    pub fn scaffold(kind: CollectionType, name: &str) -> Self {
        let mut collection = Collection {
            id: String::new(),
            list_rule: None,
            view_rule: None,
            create_rule: None,
            update_rule: None,
            delete_rule: None,
            name: name.to_owned(),
            kind,
            fields: Vec::new(),
            indexes: Vec::new(),
            created: String::new(),
            updated: String::new(),
            system: false,
            view_query: None,
            auth: None,
        };
        match kind {
            CollectionType::Base => collection.fields.push(id_field()),
            CollectionType::Auth => {
                collection.fields = auth_system_fields();
                collection.auth = Some(AuthOptions::defaults(86400 * 5));
            }
            CollectionType::View => collection.view_query = Some(String::new()),
        }
        collection
    }

    pub fn is_auth(&self) -> bool {
        self.kind == CollectionType::Auth
    }

    pub fn is_view(&self) -> bool {
        self.kind == CollectionType::View
    }

    pub fn is_superusers(&self) -> bool {
        self.id == SUPERUSERS_ID
    }

    pub fn field(&self, name: &str) -> Option<&Field> {
        self.fields.iter().find(|f| f.name == name)
    }

    /// The collection as the API shows it: token secrets and OAuth2 client secrets removed.
    pub fn to_api_json(&self) -> Value {
        let mut json = serde_json::to_value(self).unwrap_or(Value::Null);
        if let Some(object) = json.as_object_mut() {
            for key in [
                "authToken",
                "passwordResetToken",
                "emailChangeToken",
                "verificationToken",
                "fileToken",
            ] {
                if let Some(Value::Object(token)) = object.get_mut(key) {
                    token.remove("secret");
                }
            }
            if let Some(Value::Object(oauth2)) = object.get_mut("oauth2")
                && let Some(Value::Array(providers)) = oauth2.get_mut("providers")
            {
                for provider in providers.iter_mut().filter_map(Value::as_object_mut) {
                    provider.remove("clientSecret");
                }
            }
            if self.kind != CollectionType::View {
                object.remove("viewQuery");
            }
        }
        json
    }
}

impl AuthOptions {
    /// Defaults for a new auth collection, with fresh random secrets.
    pub fn defaults(auth_token_duration: u64) -> Self {
        let token = |duration| TokenConfig {
            duration,
            secret: crate::ids::random_alnum(50),
        };
        AuthOptions {
            auth_rule: Some(String::new()),
            manage_rule: None,
            auth_alert: AuthAlert {
                enabled: true,
                email_template: template(
                    "Login from a new location",
                    "<p>Hello,</p>\n<p>Your {APP_NAME} account was just used to sign in from a new location:</p>\n<p><em>{ALERT_INFO}</em></p>\n<p><strong>If this was not you, change your {APP_NAME} password now; that signs out every other session.</strong></p>\n<p>If it was you, there is nothing to do.</p>\n<p>\n  The {APP_NAME} team\n</p>",
                ),
            },
            oauth2: OAuth2Options {
                providers: Vec::new(),
                mapped_fields: OAuth2MappedFields {
                    id: String::new(),
                    name: "name".into(),
                    username: String::new(),
                    avatar_url: "avatar".into(),
                },
                enabled: false,
            },
            password_auth: PasswordAuth {
                enabled: true,
                identity_fields: vec!["email".into()],
            },
            mfa: MfaOptions {
                enabled: false,
                duration: 600,
                rule: String::new(),
            },
            otp: OtpOptions {
                enabled: false,
                duration: 180,
                length: 8,
                email_template: template(
                    "OTP for {APP_NAME}",
                    "<p>Hello,</p>\n<p>Your one-time password is <strong>{OTP}</strong></p>\n<p><i>If you did not ask for it, ignore this email.</i></p>\n<p>\n  The {APP_NAME} team\n</p>",
                ),
            },
            auth_token: token(auth_token_duration),
            password_reset_token: token(1800),
            email_change_token: token(1800),
            verification_token: token(86400),
            file_token: token(180),
            verification_template: template(
                "Verify your {APP_NAME} email",
                "<p>Hello,</p>\n<p>Welcome to {APP_NAME}. Please confirm your email address with the button below.</p>\n<p>\n  <a class=\"btn\" href=\"{APP_URL}/_/#/auth/confirm-verification/{TOKEN}\" target=\"_blank\" rel=\"noopener\">Verify</a>\n</p>\n<p><i>If you did not sign up, ignore this email.</i></p>\n<p>\n  The {APP_NAME} team\n</p>",
            ),
            reset_password_template: template(
                "Reset your {APP_NAME} password",
                "<p>Hello,</p>\n<p>Use the button below to choose a new password.</p>\n<p>\n  <a class=\"btn\" href=\"{APP_URL}/_/#/auth/confirm-password-reset/{TOKEN}\" target=\"_blank\" rel=\"noopener\">Reset password</a>\n</p>\n<p><i>If you did not ask for a reset, ignore this email.</i></p>\n<p>\n  The {APP_NAME} team\n</p>",
            ),
            confirm_email_change_template: template(
                "Confirm your new {APP_NAME} email address",
                "<p>Hello,</p>\n<p>Use the button below to confirm your new email address.</p>\n<p>\n  <a class=\"btn\" href=\"{APP_URL}/_/#/auth/confirm-email-change/{TOKEN}\" target=\"_blank\" rel=\"noopener\">Confirm new email</a>\n</p>\n<p><i>If you did not ask for this change, ignore this email.</i></p>\n<p>\n  The {APP_NAME} team\n</p>",
            ),
        }
    }
}

fn template(subject: &str, body: &str) -> EmailTemplate {
    EmailTemplate {
        subject: subject.to_owned(),
        body: body.to_owned(),
    }
}

/// The primary key field every base and auth collection starts with.
pub fn id_field() -> Field {
    let mut field = Field::new(
        "id",
        FieldKind::Text(TextOptions {
            autogenerate_pattern: "[a-z0-9]{15}".into(),
            max: 15,
            min: 15,
            pattern: "^[a-z0-9]+$".into(),
            primary_key: true,
            required: true,
            ..TextOptions::default()
        }),
    );
    field.system = true;
    field
}

/// The system fields of an auth collection, in PocketBase's scaffold order.
pub fn auth_system_fields() -> Vec<Field> {
    let system = |mut field: Field| {
        field.system = true;
        field
    };
    let hidden = |mut field: Field| {
        field.hidden = true;
        field
    };
    vec![
        id_field(),
        system(hidden(Field::new(
            "password",
            FieldKind::Password(PasswordOptions {
                min: 8,
                required: true,
                ..Default::default()
            }),
        ))),
        system(hidden(Field::new(
            "tokenKey",
            FieldKind::Text(TextOptions {
                autogenerate_pattern: "[a-zA-Z0-9]{50}".into(),
                max: 60,
                min: 30,
                required: true,
                ..TextOptions::default()
            }),
        ))),
        system(Field::new(
            "email",
            FieldKind::Email(DomainOptions {
                required: true,
                ..Default::default()
            }),
        )),
        system(Field::new(
            "emailVisibility",
            FieldKind::Bool(BasicOptions::default()),
        )),
        system(Field::new(
            "verified",
            FieldKind::Bool(BasicOptions::default()),
        )),
    ]
}

/// The `created`/`updated` autodate pair.
pub fn timestamp_fields() -> [Field; 2] {
    [
        Field::new(
            "created",
            FieldKind::Autodate(AutodateOptions {
                on_create: true,
                on_update: false,
            }),
        ),
        Field::new(
            "updated",
            FieldKind::Autodate(AutodateOptions {
                on_create: true,
                on_update: true,
            }),
        ),
    ]
}

/// The unique indexes every auth collection needs (token key, and email when not empty).
pub fn auth_indexes(collection_id: &str, table: &str) -> Vec<String> {
    vec![
        format!("CREATE UNIQUE INDEX `idx_tokenKey_{collection_id}` ON `{table}` (`tokenKey`)"),
        format!(
            "CREATE UNIQUE INDEX `idx_email_{collection_id}` ON `{table}` (`email`) WHERE `email` != ''"
        ),
    ]
}

/// The `_superusers` collection of a new database.
pub fn superusers_collection(now: &str) -> Collection {
    let mut collection = Collection::scaffold(CollectionType::Auth, SUPERUSERS_NAME);
    collection.id = SUPERUSERS_ID.to_owned();
    collection.system = true;
    collection
        .fields
        .extend(timestamp_fields().map(|mut field| {
            field.system = true;
            field
        }));
    collection.indexes = auth_indexes(SUPERUSERS_ID, SUPERUSERS_NAME);
    if let Some(auth) = collection.auth.as_mut() {
        *auth = AuthOptions::defaults(86400);
        auth.auth_alert.enabled = true;
        auth.oauth2.mapped_fields = OAuth2MappedFields::default();
    }
    collection.created = now.to_owned();
    collection.updated = now.to_owned();
    collection
}

/// The `users` collection of a new database, as PocketBase creates it.
pub fn users_collection(now: &str) -> Collection {
    let mut collection = Collection::scaffold(CollectionType::Auth, USERS_NAME);
    collection.id = USERS_ID.to_owned();
    let owner_only = Some("id = @request.auth.id".to_owned());
    collection.list_rule = owner_only.clone();
    collection.view_rule = owner_only.clone();
    collection.create_rule = Some(String::new());
    collection.update_rule = owner_only.clone();
    collection.delete_rule = owner_only;
    collection.fields.push(Field::new(
        "name",
        FieldKind::Text(TextOptions {
            max: 255,
            ..TextOptions::default()
        }),
    ));
    collection.fields.push(Field::new(
        "avatar",
        FieldKind::File(FileOptions {
            max_select: 1,
            mime_types: [
                "image/jpeg",
                "image/png",
                "image/svg+xml",
                "image/gif",
                "image/webp",
            ]
            .map(String::from)
            .to_vec(),
            ..FileOptions::default()
        }),
    ));
    collection.fields.extend(timestamp_fields());
    collection.indexes = auth_indexes(USERS_ID, USERS_NAME);
    collection.created = now.to_owned();
    collection.updated = now.to_owned();
    collection
}

/// Ids of the auth bookkeeping collections every database has.
pub const MFAS_ID: &str = "pbc_2279338944";
pub const OTPS_ID: &str = "pbc_1638494021";
pub const EXTERNAL_AUTHS_ID: &str = "pbc_2281828961";
pub const AUTH_ORIGINS_ID: &str = "pbc_4275539003";

/// The system collections whose rows belong to one auth record, which they name by
/// `collectionRef` (the auth collection's id) and `recordRef` (the record's id). They hold no
/// relation field, so the store deletes them with their record as it applies cascades: an
/// OAuth2 link, sign-in origin, pending code or MFA session never outlives its record.
pub const AUTH_RECORD_DEPENDENTS: [&str; 4] =
    [EXTERNAL_AUTHS_ID, AUTH_ORIGINS_ID, OTPS_ID, MFAS_ID];

/// The rule that lets an auth record see (and for some, delete) its own bookkeeping rows.
const OWNER_ONLY_RULE: &str = "@request.auth.id != '' && recordRef = @request.auth.id && collectionRef = @request.auth.collectionId";

/// A new database's system collections, in PocketBase's order: the auth bookkeeping ones
/// (`_mfas`, `_otps`, `_externalAuths`, `_authOrigins`), `_superusers` and `users`. Each is
/// created a millisecond after the one before it, as PocketBase's first migration leaves
/// them a few apart, so a list sorted by `created` has their order, newest `users` first with
/// `-created` (observed on 0.40.6), not a tie.
pub fn system_collections() -> Vec<Collection> {
    let now = chrono::Utc::now();
    let at = |step: i64| crate::time::format(now + chrono::Duration::milliseconds(step));
    let mut collections = auth_bookkeeping_collections(&at(0));
    for (step, collection) in (0..).zip(collections.iter_mut()) {
        let created = at(step);
        collection.created.clone_from(&created);
        collection.updated = created;
    }
    let next = i64::try_from(collections.len()).unwrap_or(0);
    collections.push(superusers_collection(&at(next)));
    collections.push(users_collection(&at(next + 1)));
    collections
}

/// The four system collections auth flows keep their state in (`_mfas`, `_otps`,
/// `_externalAuths`, `_authOrigins`), shaped as PocketBase creates them, in its order.
pub fn auth_bookkeeping_collections(now: &str) -> Vec<Collection> {
    let text = |name: &str, hidden: bool| {
        let mut field = Field::new(
            name,
            FieldKind::Text(TextOptions {
                required: true,
                ..TextOptions::default()
            }),
        );
        field.system = true;
        field.hidden = hidden;
        field
    };
    let base =
        |id: &str, name: &str, extra: Vec<Field>, indexes: Vec<String>, owner_delete: bool| {
            let mut collection = Collection::scaffold(CollectionType::Base, name);
            collection.id = id.to_owned();
            collection.system = true;
            collection.list_rule = Some(OWNER_ONLY_RULE.to_owned());
            collection.view_rule = Some(OWNER_ONLY_RULE.to_owned());
            collection.delete_rule = owner_delete.then(|| OWNER_ONLY_RULE.to_owned());
            collection.fields.push(text("collectionRef", false));
            collection.fields.push(text("recordRef", false));
            collection.fields.extend(extra);
            collection
                .fields
                .extend(timestamp_fields().map(|mut field| {
                    field.system = true;
                    field
                }));
            collection.indexes = indexes;
            collection.created = now.to_owned();
            collection.updated = now.to_owned();
            collection
        };
    let mut otp_password = Field::new(
        "password",
        FieldKind::Password(PasswordOptions {
            cost: 8,
            required: true,
            ..Default::default()
        }),
    );
    otp_password.system = true;
    otp_password.hidden = true;
    let mut sent_to = text("sentTo", true);
    if let FieldKind::Text(options) = &mut sent_to.kind {
        options.required = false;
    }
    vec![
        base(
            MFAS_ID,
            "_mfas",
            vec![text("method", false)],
            vec!["CREATE INDEX `idx_mfas_collectionRef_recordRef` ON `_mfas` (collectionRef,recordRef)".into()],
            false,
        ),
        base(
            OTPS_ID,
            "_otps",
            vec![otp_password, sent_to],
            vec!["CREATE INDEX `idx_otps_collectionRef_recordRef` ON `_otps` (collectionRef, recordRef)".into()],
            false,
        ),
        base(
            EXTERNAL_AUTHS_ID,
            "_externalAuths",
            vec![text("provider", false), text("providerId", false)],
            vec![
                "CREATE UNIQUE INDEX `idx_externalAuths_record_provider` ON `_externalAuths` (collectionRef, recordRef, provider)".into(),
                "CREATE UNIQUE INDEX `idx_externalAuths_collection_provider` ON `_externalAuths` (collectionRef, provider, providerId)".into(),
            ],
            true,
        ),
        base(
            AUTH_ORIGINS_ID,
            "_authOrigins",
            vec![text("fingerprint", false)],
            vec!["CREATE UNIQUE INDEX `idx_authOrigins_unique_pairs` ON `_authOrigins` (collectionRef, recordRef, fingerprint)".into()],
            true,
        ),
    ]
}

/// An immutable snapshot of every collection, swapped atomically after each schema change.
#[derive(Debug, Clone, Default)]
pub struct Schema {
    collections: Vec<Arc<Collection>>,
    by_id: foldhash::HashMap<String, usize>,
    by_lower_name: foldhash::HashMap<String, usize>,
}

impl Schema {
    pub fn new(collections: Vec<Collection>) -> Self {
        let collections: Vec<Arc<Collection>> = collections.into_iter().map(Arc::new).collect();
        let by_id = collections
            .iter()
            .enumerate()
            .map(|(i, c)| (c.id.clone(), i))
            .collect();
        let by_lower_name = collections
            .iter()
            .enumerate()
            .map(|(i, c)| (c.name.to_lowercase(), i))
            .collect();
        Schema {
            collections,
            by_id,
            by_lower_name,
        }
    }

    /// Looks a collection up by id, or by name ignoring case (as PocketBase does).
    pub fn get(&self, id_or_name: &str) -> Option<&Arc<Collection>> {
        let index = self.by_id.get(id_or_name).or_else(|| {
            if id_or_name.chars().any(char::is_uppercase) {
                self.by_lower_name.get(&id_or_name.to_lowercase())
            } else {
                self.by_lower_name.get(id_or_name)
            }
        })?;
        self.collections.get(*index)
    }

    pub fn get_by_id(&self, id: &str) -> Option<&Arc<Collection>> {
        self.by_id.get(id).and_then(|i| self.collections.get(*i))
    }

    pub fn all(&self) -> &[Arc<Collection>] {
        &self.collections
    }

    /// Collections with a relation field pointing at `collection_id`, with those fields.
    pub fn referencing(&self, collection_id: &str) -> Vec<(&Arc<Collection>, &Field)> {
        self.collections
            .iter()
            .flat_map(|c| c.fields.iter().map(move |f| (c, f)))
            .filter(|(_, f)| {
                matches!(&f.kind, FieldKind::Relation(o) if o.collection_id == collection_id)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_json_hides_secrets_and_keeps_shape() {
        let users = users_collection("2026-01-01 00:00:00.000Z");
        let json = users.to_api_json();
        assert_eq!(json["id"], USERS_ID);
        assert_eq!(json["type"], "auth");
        assert_eq!(json["authToken"], serde_json::json!({"duration": 432000}));
        assert!(json.get("viewQuery").is_none());
        assert_eq!(json["fields"][0]["id"], "text3208210256");
        assert_eq!(json["fields"][1]["name"], "password");
        assert_eq!(json["fields"][8]["id"], "autodate2990389176");
        // Round trip keeps the secrets.
        let text = serde_json::to_string(&users).expect("serializes");
        let back: Collection = serde_json::from_str(&text).expect("parses");
        assert_eq!(back, users);
    }

    #[test]
    fn lookup_is_by_id_or_case_insensitive_name() {
        let schema = Schema::new(vec![users_collection("")]);
        assert!(schema.get("USERS").is_some());
        assert!(schema.get(USERS_ID).is_some());
        assert!(schema.get("nope").is_none());
    }
}
