use serde_json::{Value, json};

use super::*;
use crate::collection::{superusers_collection, users_collection};
use crate::field::{
    AutodateOptions, BasicOptions, DomainOptions, FileOptions, NumberOptions, PasswordOptions,
    RelationOptions, SelectOptions, TextOptions,
};

fn text(name: &str) -> Field {
    Field::new(name, FieldKind::Text(TextOptions::default()))
}

/// A base collection as the API would build it (id assigned, system fields ensured).
fn base(name: &str, extra: Vec<Field>) -> Collection {
    let mut c = Collection::scaffold(CollectionType::Base, name);
    c.id = crate::ids::collection_id("base", name);
    c.fields.extend(extra);
    c
}

fn auth(name: &str) -> Collection {
    let mut c = Collection::scaffold(CollectionType::Auth, name);
    c.id = crate::ids::collection_id("auth", name);
    ensure_auth_indexes(&mut c);
    c
}

fn schema() -> Schema {
    let now = "2026-01-01 00:00:00.000Z";
    let mut view = Collection::scaffold(CollectionType::View, "stats");
    view.id = "pbc_view".into();
    view.view_query = Some("select id from posts".into());
    view.fields = vec![id_field()];
    Schema::new(vec![
        superusers_collection(now),
        users_collection(now),
        base("posts", vec![]),
        view,
    ])
}

/// Validates `c` as a new collection against [`schema`] and returns the error tree.
fn check_new(c: &Collection) -> Value {
    let mut errors = ValidationErrors::new();
    validate_collection(&mut errors, c, None, &schema());
    errors.into_json()
}

fn check_update(old: &Collection, new: &Collection) -> Value {
    let mut errors = ValidationErrors::new();
    validate_collection(&mut errors, new, Some(old), &schema());
    errors.into_json()
}

#[test]
fn constant_patterns_behave() {
    assert!(NAME_RE.is_match("posts_2"));
    assert!(!NAME_RE.is_match("é"));
    assert!(THUMB_RE.is_match("100x100t"));
    assert!(!THUMB_RE.is_match("10x10x"));
    assert!(is_domain("example.com"));
    assert!(!is_domain("a"));
    assert!(!is_domain("not a domain"));
}

#[test]
fn field_ids_are_generated_reused_suffixed_and_merged() {
    let previous = vec![Field {
        id: "myid".into(),
        ..text("title")
    }];
    let mut fresh_title = text("title");
    fresh_title.id.clear();
    let mut fresh_a = text("a");
    fresh_a.id.clear();
    let taken = Field {
        id: crate::ids::field_id("text", "a"),
        ..text("zzz")
    };
    let out = assign_field_ids(vec![fresh_title, taken, fresh_a], &previous);
    let ids: Vec<&str> = out.iter().map(|f| f.id.as_str()).collect();
    // Same name and type as before: keeps the old id; a clash gets a numeric suffix.
    assert_eq!(ids, ["myid", "text3904355907", "text39043559072"]);

    let first = Field {
        id: "x".into(),
        ..text("a")
    };
    let second = Field {
        id: "x".into(),
        ..text("b")
    };
    let out = assign_field_ids(vec![first, text("c"), second], &[]);
    let names: Vec<&str> = out.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(
        names,
        ["b", "c"],
        "a later item with the same id replaces in place"
    );
}

#[test]
fn a_repeated_name_replaces_the_earlier_field_in_place() {
    let number = Field::new("title", FieldKind::Number(Default::default()));
    let mut later = number.clone();
    later.id.clear();
    let out = assign_field_ids(vec![text("title"), text("other"), later], &[]);
    assert_eq!(out.len(), 2);
    assert_eq!(out[0].name, "title");
    assert_eq!(out[0].type_name(), "number", "the later definition wins");
    assert_eq!(
        out[0].id,
        crate::ids::field_id("text", "title"),
        "with the earlier id"
    );
}

#[test]
fn base_collections_get_their_id_field_first() {
    let mut c = base("things", vec![]);
    c.fields = vec![text("title")];
    ensure_system_fields(&mut c);
    assert_eq!(c.fields[0].id, ID_FIELD_ID);
    assert_eq!(c.fields[1].name, "title");

    // A text field named `id` becomes the primary key with its forced properties.
    let mut custom = Field {
        id: "custom".into(),
        hidden: true,
        ..text("id")
    };
    custom.system = false;
    c.fields = vec![custom];
    ensure_system_fields(&mut c);
    assert_eq!(c.fields.len(), 1);
    let id = &c.fields[0];
    assert!(id.system && !id.hidden && id.is_primary_key() && id.is_required());
    assert!(matches!(&id.kind, FieldKind::Text(o) if o.pattern == ID_DEFAULT_PATTERN));

    // The default id under another name is not silently replaced: it fails validation.
    c.fields = vec![Field {
        id: ID_FIELD_ID.into(),
        ..text("other")
    }];
    ensure_system_fields(&mut c);
    assert_eq!(c.fields.len(), 1);
    assert_eq!(
        check_new(&c)["fields"]["code"],
        "validation_missing_primary_key"
    );
}

#[test]
fn auth_collections_keep_their_system_fields() {
    let mut c = auth("members");
    let mut email_as_text = text("email");
    email_as_text.id = "text3885137012".into();
    let mut token_key = text("tokenKey");
    token_key.hidden = false;
    c.fields = vec![text("x"), email_as_text, token_key];
    ensure_system_fields(&mut c);
    let names: Vec<&str> = c.fields.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "id",
            "x",
            "email",
            "tokenKey",
            "password",
            "emailVisibility",
            "verified"
        ]
    );
    // The wrong-typed email was replaced by the real one, keeping its id.
    assert_eq!(c.fields[2].type_name(), "email");
    assert_eq!(c.fields[2].id, "text3885137012");
    assert!(c.fields[3].hidden && c.fields[3].system && c.fields[3].is_required());
}

#[test]
fn auth_indexes_are_added_only_when_missing() {
    let mut c = auth("members");
    assert_eq!(c.indexes.len(), 2);
    ensure_auth_indexes(&mut c);
    assert_eq!(c.indexes.len(), 2, "idempotent");

    // A non-unique index under the default name does not count, and then clashes.
    let id = c.id.clone();
    c.indexes = vec![format!(
        "CREATE INDEX idx_tokenKey_{id} ON members (tokenKey)"
    )];
    ensure_auth_indexes(&mut c);
    assert_eq!(c.indexes.len(), 3);
    assert_eq!(
        check_new(&c)["indexes"]["1"]["code"],
        "validation_duplicated_index_name"
    );
}

#[test]
fn indexes_follow_a_renamed_collection() {
    let mut c = base("posts2", vec![text("title")]);
    c.indexes = vec![
        "CREATE INDEX idx_a ON posts2 (title)".into(),
        "CREATE INDEX idx_b ON other (title)".into(),
    ];
    retarget_indexes(&mut c);
    assert_eq!(c.indexes[0], "CREATE INDEX idx_a ON posts2 (title)");
    assert_eq!(c.indexes[1], "CREATE INDEX `idx_b` ON `posts2` (`title`)");

    c.indexes = vec![
        "create unique index idx_c on old (title collate nocase desc, id) where title != 'it''s \"x\"'"
            .into(),
    ];
    retarget_indexes(&mut c);
    assert_eq!(
        c.indexes[0],
        "CREATE UNIQUE INDEX `idx_c` ON `posts2` (\n  `title` COLLATE NOCASE DESC,\n  `id`\n) WHERE `title` != 'it''s \"x\"'"
    );
}

#[test]
fn new_collection_ids_are_suffixed_when_taken() {
    let s = schema();
    assert_eq!(
        new_collection_id(CollectionType::Base, "posts", &s),
        "pbc_11258439852"
    );
    assert_eq!(
        new_collection_id(CollectionType::Base, "fresh", &s),
        crate::ids::collection_id("base", "fresh")
    );
}

#[test]
fn collection_names_are_checked_like_pocketbase() {
    let code = |name: &str| {
        let mut c = base(name, vec![]);
        c.id = "pbc_fresh".into();
        check_new(&c)["name"]["code"].clone()
    };
    assert_eq!(code(""), "validation_required");
    assert_eq!(code(&"a".repeat(256)), "validation_length_out_of_range");
    assert_eq!(code("a b_via_"), "validation_found_via");
    assert_eq!(code("a b"), "validation_match_invalid");
    assert_eq!(code("é"), "validation_match_invalid");
    assert_eq!(code("POSTS"), "validation_collection_name_exists");
    assert_eq!(code("_MFAS"), "validation_collection_name_exists");
    assert_eq!(code("fresh"), Value::Null);
    let long = base(&"a".repeat(256), vec![]);
    assert_eq!(
        check_new(&long)["name"]["params"],
        json!({"max": 255, "min": 1})
    );
}

#[test]
fn custom_collection_ids_are_checked() {
    let mut c = base("fresh", vec![]);
    c.id = "a b".into();
    assert_eq!(check_new(&c)["id"]["code"], "validation_match_invalid");
    c.id = crate::ids::collection_id("base", "posts");
    assert_eq!(
        check_new(&c)["id"]["code"],
        "validation_invalid_or_existing_id"
    );
    c.id = "a".repeat(101);
    assert_eq!(
        check_new(&c)["id"]["code"],
        "validation_length_out_of_range"
    );
}

#[test]
fn field_names_are_checked() {
    let c = base(
        "fresh",
        vec![
            text("a b"),
            text("null"),
            text("NULL"),
            text("a_via_b"),
            text(&"a".repeat(101)),
            text("dup"),
            text("DUP"),
        ],
    );
    let errors = check_new(&c);
    let code = |i: usize| errors["fields"][i.to_string()]["name"]["code"].clone();
    assert_eq!(code(1), "validation_match_invalid");
    assert_eq!(code(2), "validation_not_in_invalid");
    assert_eq!(code(3), Value::Null, "reserved names are case-sensitive");
    assert_eq!(code(4), "validation_found_via");
    assert_eq!(code(5), "validation_length_out_of_range");
    assert_eq!(code(6), Value::Null);
    assert_eq!(code(7), "validation_duplicated_field_name");
    assert_eq!(
        errors["fields"]["7"]["name"]["message"],
        "Duplicated or invalid field name DUP."
    );
}

#[test]
fn field_options_are_checked() {
    let field = |name: &str, kind| Field::new(name, kind);
    let c = base(
        "fresh",
        vec![
            field(
                "t",
                FieldKind::Text(TextOptions {
                    min: 10,
                    max: 5,
                    pattern: "([".into(),
                    ..Default::default()
                }),
            ),
            field(
                "n",
                FieldKind::Number(NumberOptions {
                    min: Some(10.0),
                    max: Some(5.5),
                    only_int: true,
                    ..Default::default()
                }),
            ),
            field("s", FieldKind::Select(SelectOptions::default())),
            field(
                "s2",
                FieldKind::Select(SelectOptions {
                    values: vec!["x".into(), "y".into()],
                    max_select: 5,
                    ..Default::default()
                }),
            ),
            field(
                "r",
                FieldKind::Relation(RelationOptions {
                    collection_id: "users".into(),
                    ..Default::default()
                }),
            ),
            field(
                "rv",
                FieldKind::Relation(RelationOptions {
                    collection_id: "pbc_view".into(),
                    min_select: 5,
                    max_select: 2,
                    ..Default::default()
                }),
            ),
            field(
                "f",
                FieldKind::File(FileOptions {
                    thumbs: vec!["100x100".into(), "0x0".into(), "abc".into()],
                    ..Default::default()
                }),
            ),
            field(
                "p",
                FieldKind::Password(PasswordOptions {
                    min: 80,
                    max: 10,
                    cost: 3,
                    ..Default::default()
                }),
            ),
            field(
                "e",
                FieldKind::Email(DomainOptions {
                    only_domains: vec!["a.com".into()],
                    except_domains: vec!["nope".into()],
                    ..Default::default()
                }),
            ),
            field("ad", FieldKind::Autodate(AutodateOptions::default())),
            field(
                "b",
                FieldKind::Bool(BasicOptions {
                    help: "h".repeat(301),
                    ..Default::default()
                }),
            ),
            field(
                "g",
                FieldKind::Text(TextOptions {
                    autogenerate_pattern: "(a|b)".into(),
                    ..Default::default()
                }),
            ),
        ],
    );
    let e = check_new(&c);
    let f = &e["fields"];
    assert_eq!(f["1"]["max"]["message"], "Must be no less than 10.");
    assert_eq!(f["1"]["max"]["params"], json!({"threshold": 10}));
    assert_eq!(f["1"]["pattern"]["code"], "validation_invalid_regex");
    assert_eq!(f["2"]["max"]["code"], "validation_only_int_constraint");
    assert_eq!(f["2"]["min"], Value::Null);
    assert_eq!(f["3"]["values"]["code"], "validation_required");
    assert_eq!(f["4"]["maxSelect"]["message"], "Must be no greater than 2.");
    assert_eq!(
        f["5"]["collectionId"]["code"],
        "validation_field_relation_missing_collection"
    );
    assert_eq!(
        f["6"]["collectionId"]["code"],
        "validation_relation_field_non_view_base_collection"
    );
    assert_eq!(f["6"]["maxSelect"]["params"]["threshold"], 5);
    assert_eq!(f["7"]["thumbs"]["1"]["code"], "validation_not_in_invalid");
    assert_eq!(f["7"]["thumbs"]["2"]["code"], "validation_match_invalid");
    assert_eq!(f["7"]["thumbs"].get("0"), None);
    assert_eq!(f["8"]["min"]["message"], "Must be no greater than 71.");
    assert_eq!(f["8"]["max"]["message"], "Must be no less than 80.");
    assert_eq!(f["8"]["cost"]["message"], "Must be no less than 4.");
    assert_eq!(f["9"]["onlyDomains"]["code"], "validation_empty");
    assert_eq!(f["9"]["exceptDomains"]["code"], "validation_empty");
    assert_eq!(
        f["10"]["onCreate"]["message"],
        "Either onCreate or onUpdate must be enabled."
    );
    assert_eq!(f["11"]["help"]["code"], "validation_length_out_of_range");
    assert_eq!(
        f["12"]["autogeneratePattern"]["code"],
        "validation_invalid_regex"
    );
    assert_eq!(f.get("0"), None, "the id field is fine");

    let number_order = base(
        "fresh",
        vec![field(
            "n",
            FieldKind::Number(NumberOptions {
                min: Some(10.0),
                max: Some(5.0),
                ..Default::default()
            }),
        )],
    );
    assert_eq!(
        check_new(&number_order)["fields"]["1"]["max"],
        json!({"code": "validation_min_number_constraint",
               "message": "Must be greater or equal than 10.", "params": {"min": 10}})
    );
}

#[test]
fn only_id_may_be_the_primary_key() {
    let mut other = text("other");
    if let FieldKind::Text(o) = &mut other.kind {
        o.primary_key = true;
    }
    let c = base("fresh", vec![other]);
    let e = check_new(&c);
    assert_eq!(
        e["fields"]["0"]["primaryKey"]["code"],
        "validation_unsupported_composite_pk"
    );
    assert_eq!(
        e["fields"]["1"]["name"]["message"],
        "The primary key must be named \"id\"."
    );
    assert_eq!(e["fields"]["1"]["pattern"]["code"], "validation_required");
    assert_eq!(e["fields"]["1"]["required"]["code"], "validation_required");
}

/// A relation field keeps its target collection (its stored ids name records of it), as on
/// PocketBase; its other options may change.
#[test]
fn relation_fields_keep_their_target() {
    let users = users_collection("2026-01-01 00:00:00.000Z").id;
    let posts = crate::ids::collection_id("base", "posts");
    let relation = |target: &str, max_select: u64| {
        let mut field = Field::new(
            "r",
            FieldKind::Relation(RelationOptions {
                collection_id: target.into(),
                max_select,
                ..Default::default()
            }),
        );
        field.id = "relation1".into();
        field
    };
    let old = base("links", vec![relation(&users, 1)]);
    let mut retargeted = old.clone();
    retargeted.fields[1] = relation(&posts, 1);
    let e = check_update(&old, &retargeted);
    assert_eq!(
        e["fields"]["1"]["collectionId"],
        json!({"code": "validation_field_relation_change",
               "message": "The relation collection cannot be changed."})
    );
    let mut widened = old.clone();
    widened.fields[1] = relation(&users, 5);
    assert_eq!(check_update(&old, &widened), json!({}));
    // A new field (another id) may point anywhere.
    let mut added = old.clone();
    let mut other = relation(&posts, 1);
    other.id = "relation2".into();
    other.name = "p".into();
    added.fields.push(other);
    assert_eq!(check_update(&old, &added), json!({}));
}

#[test]
fn updates_keep_types_system_fields_and_system_collections() {
    let old = base("posts", vec![text("title")]);
    let mut new = old.clone();
    new.fields[1].kind = FieldKind::Number(NumberOptions::default());
    new.kind = CollectionType::Auth;
    new.system = true;
    let e = check_update(&old, &new);
    assert_eq!(e["fields"]["1"]["code"], "validation_field_type_change");
    assert_eq!(e["type"]["code"], "validation_collection_type_change");
    assert_eq!(
        e["system"]["code"],
        "validation_collection_system_flag_change"
    );

    // Renaming `id` leaves no primary key: that is what PocketBase reports.
    let mut renamed_id = old.clone();
    renamed_id.fields[0].name = "pk".into();
    assert_eq!(
        check_update(&old, &renamed_id)["fields"]["code"],
        "validation_missing_primary_key"
    );
    let mut system_title = old.clone();
    system_title.fields[1].system = true;
    let mut renamed_title = system_title.clone();
    renamed_title.fields[1].name = "headline".into();
    assert_eq!(
        check_update(&system_title, &renamed_title)["fields"]["code"],
        "validation_system_field_change"
    );

    let superusers = superusers_collection("");
    let mut changed = superusers.clone();
    changed.name = "admins".into();
    changed.list_rule = Some(String::new());
    if let Some(a) = changed.auth.as_mut() {
        a.auth_rule = None;
    }
    let e = check_update(&superusers, &changed);
    assert_eq!(
        e["name"]["code"],
        "validation_collection_system_name_change"
    );
    assert_eq!(
        e["listRule"]["code"],
        "validation_collection_system_rule_change"
    );
    assert_eq!(
        e["authRule"]["code"],
        "validation_collection_system_rule_change"
    );
    assert_eq!(e.get("viewRule"), None);
    assert_eq!(check_update(&superusers, &superusers), json!({}));
}

#[test]
fn view_collections_need_a_query_and_no_write_rules() {
    let mut v = Collection::scaffold(CollectionType::View, "v1");
    v.id = "pbc_v1".into();
    v.create_rule = Some(String::new());
    v.indexes = vec!["CREATE INDEX x ON v1 (id)".into()];
    let e = check_new(&v);
    assert_eq!(e["createRule"]["code"], "validation_nil");
    assert_eq!(e["indexes"]["code"], "validation_indexes_not_supported");
    assert_eq!(e["viewQuery"]["code"], "validation_required");
    assert_eq!(e["fields"]["code"], "validation_required");
    assert_eq!(e.get("updateRule"), None);

    v.fields = vec![text("title")];
    assert_eq!(
        check_new(&v)["fields"]["code"],
        "validation_missing_primary_key"
    );
}

#[test]
fn indexes_are_checked() {
    let mut c = base("fresh", vec![text("title")]);
    c.indexes = vec![
        "garbage".into(),
        "CREATE INDEX idx_a ON fresh (title)".into(),
        "CREATE INDEX idx_a ON fresh (id)".into(),
        "CREATE UNIQUE INDEX idx_email__pb_users_auth_ ON fresh (title)".into(),
        "CREATE INDEX idx_c ON fresh (nosuch)".into(),
        "CREATE INDEX idx_d ON fresh (title); DROP TABLE users".into(),
    ];
    let e = check_new(&c);
    let i = &e["indexes"];
    assert_eq!(i["0"]["message"], "Invalid CREATE INDEX expression.");
    assert_eq!(i.get("1"), None);
    assert_eq!(i["2"]["code"], "validation_duplicated_index_name");
    assert_eq!(
        i["3"],
        json!({"code": "validation_existing_index_name",
               "message": "The index name is already used in users collection.",
               "params": {"usedTableName": "users"}})
    );
    assert_eq!(
        i["4"]["message"],
        "Failed to create index idx_c - SQL logic error: no such column: nosuch (1)."
    );
    assert_eq!(i["5"]["code"], "validation_invalid_index_expression");
}

#[test]
fn auth_options_are_checked() {
    let mut c = auth("members");
    c.fields.push(text("username"));
    {
        let o = c.auth.as_mut().expect("auth options");
        o.auth_token.duration = 5;
        o.file_token.duration = TOKEN_DURATION_MAX + 1;
        o.email_change_token.secret = "short".into();
        o.verification_token.secret.clear();
        o.password_reset_token.duration = 0;
        o.mfa.enabled = true;
        o.mfa.duration = 86_401;
        o.otp.enabled = true;
        o.otp.length = 3;
        o.otp.duration = 0;
        o.oauth2.enabled = true;
        o.verification_template.subject.clear();
        o.auth_alert.email_template.body.clear();
        o.password_auth.identity_fields = vec!["email".into(), "username".into()];
        o.oauth2.providers = vec![
            json!({"name": "nope"}),
            json!({"name": "github", "clientId": "a", "clientSecret": "b", "authURL": "not a url"}),
            json!({"name": "github", "clientId": "a", "clientSecret": "b"}),
        ];
    }
    let e = check_new(&c);
    assert_eq!(
        e["authToken"]["duration"]["message"],
        "Must be no less than 10."
    );
    assert_eq!(
        e["fileToken"]["duration"]["message"],
        "Must be no greater than 94670856."
    );
    assert_eq!(
        e["emailChangeToken"]["secret"]["message"],
        "The length must be between 30 and 255."
    );
    assert_eq!(
        e["verificationToken"]["secret"]["code"],
        "validation_required"
    );
    assert_eq!(
        e["passwordResetToken"]["duration"]["code"],
        "validation_required"
    );
    assert_eq!(
        e["mfa"]["duration"]["message"],
        "Must be no greater than 86400."
    );
    assert_eq!(e["otp"]["length"]["message"], "Must be no less than 4.");
    assert_eq!(e["otp"]["duration"]["code"], "validation_required");
    assert_eq!(
        e["verificationTemplate"]["subject"]["code"],
        "validation_required"
    );
    assert_eq!(
        e["authAlert"]["emailTemplate"]["body"]["code"],
        "validation_required"
    );
    assert_eq!(
        e["passwordAuth"]["identityFields"],
        json!({"code": "validation_missing_unique_constraint",
               "message": "The field username doesn't have a UNIQUE constraint.",
               "params": {"fieldName": "username"}})
    );
    let p = &e["oauth2"]["providers"];
    assert_eq!(p["0"]["name"]["code"], "validation_missing_provider");
    assert_eq!(p["0"]["clientId"]["code"], "validation_required");
    assert_eq!(p["1"]["authURL"]["code"], "validation_is_url");
    assert_eq!(p["2"]["name"]["code"], "validation_duplicated_provider");
    assert_eq!(e.get("authRule"), None);

    // Fixing the identity field's index and listing a missing field.
    let mut ok = auth("members");
    ok.fields.push(text("username"));
    ok.indexes
        .push("CREATE UNIQUE INDEX idx_u ON members (username) WHERE username != ''".into());
    if let Some(o) = ok.auth.as_mut() {
        o.password_auth.identity_fields = vec!["email".into(), "username".into()];
    }
    assert_eq!(check_new(&ok), json!({}));
    if let Some(o) = ok.auth.as_mut() {
        o.password_auth.identity_fields = vec!["nope".into()];
    }
    assert_eq!(
        check_new(&ok)["passwordAuth"]["identityFields"]["code"],
        "validation_missing_field"
    );
    if let Some(o) = ok.auth.as_mut() {
        o.password_auth.identity_fields.clear();
        o.password_auth.enabled = false;
    }
    assert_eq!(check_new(&ok), json!({}), "not needed while disabled");

    // The settings of disabled methods wait until they are enabled.
    if let Some(o) = ok.auth.as_mut() {
        o.otp.length = 0;
        o.mfa.duration = 0;
        o.oauth2.providers = vec![json!({"name": "nope"})];
    }
    assert_eq!(check_new(&ok), json!({}));
}

#[test]
fn mfa_needs_a_second_method_once_the_options_are_valid() {
    let mut c = auth("members");
    if let Some(o) = c.auth.as_mut() {
        o.mfa.enabled = true;
        o.otp.enabled = false;
        o.oauth2.enabled = false;
    }
    assert_eq!(
        check_new(&c)["mfa"]["enabled"]["code"],
        "validation_mfa_not_enough_auths"
    );
    // Another problem in the options is reported instead.
    if let Some(o) = c.auth.as_mut() {
        o.auth_token.duration = 5;
    }
    let e = check_new(&c);
    assert_eq!(
        e["authToken"]["duration"]["message"],
        "Must be no less than 10."
    );
    assert_eq!(e.get("mfa"), None);
    // OAuth2 counts as a method even without providers.
    if let Some(o) = c.auth.as_mut() {
        o.auth_token.duration = 3600;
        o.oauth2.enabled = true;
    }
    assert_eq!(check_new(&c), json!({}));
}

#[test]
fn a_fresh_scaffold_is_valid() {
    assert_eq!(check_new(&base("fresh", vec![])), json!({}));
    assert_eq!(check_new(&auth("members")), json!({}));
}

#[test]
fn sizes_and_lengths_stop_at_the_largest_safe_json_integer() {
    let too_big = MAX_SAFE_JSON_INT + 1;
    let long_id = Field {
        id: "x".repeat(101),
        ..text("a")
    };
    let c = base(
        "sized",
        vec![
            Field::new(
                "t",
                FieldKind::Text(TextOptions {
                    min: too_big,
                    ..TextOptions::default()
                }),
            ),
            Field::new(
                "u",
                FieldKind::Text(TextOptions {
                    max: too_big,
                    ..TextOptions::default()
                }),
            ),
            Field::new(
                "e",
                FieldKind::Editor(crate::field::EditorOptions {
                    max_size: too_big,
                    ..Default::default()
                }),
            ),
            Field::new(
                "j",
                FieldKind::Json(crate::field::JsonOptions {
                    max_size: too_big,
                    ..Default::default()
                }),
            ),
            Field::new(
                "f",
                FieldKind::File(FileOptions {
                    max_size: too_big,
                    ..FileOptions::default()
                }),
            ),
            long_id,
        ],
    );
    let e = check_new(&c);
    let bound = json!({"code": "validation_max_less_equal_than_required",
        "message": "Must be no greater than 9007199254740991.",
        "params": {"threshold": 9007199254740991_u64}});
    assert_eq!(e["fields"]["1"]["min"], bound);
    assert_eq!(e["fields"]["2"]["max"], bound);
    assert_eq!(e["fields"]["3"]["maxSize"], bound);
    assert_eq!(e["fields"]["4"]["maxSize"], bound);
    assert_eq!(e["fields"]["5"]["maxSize"], bound);
    assert_eq!(
        e["fields"]["6"]["id"]["code"],
        "validation_length_out_of_range"
    );
    let mut at_bound = c.clone();
    at_bound.fields.truncate(2);
    if let FieldKind::Text(o) = &mut at_bound.fields[1].kind {
        o.min = MAX_SAFE_JSON_INT;
    }
    assert_eq!(check_new(&at_bound), json!({}));
}
