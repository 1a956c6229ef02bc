//! Rule text validation on collection save: every API rule (and an auth collection's
//! `authRule`, `manageRule` and, while MFA is enabled, `mfa.rule`) must compile against the
//! schema as it will be after the save, or the save fails with `validation_invalid_rule` on
//! that key, as PocketBase answers. It lives here, not in `domain::collection_validate`,
//! because the rules crate depends on the domain crate.

use std::sync::Arc;

use domain::{Collection, FieldError, Schema, ValidationErrors};
use rules::{ErrorKind, Rule};

/// Adds a `validation_invalid_rule` error for every rule of `collection` that does not
/// compile against `future` (the schema after the save, holding `collection`). Keys that
/// already carry an error keep it.
pub fn validate_rule_texts(
    errors: &mut ValidationErrors,
    collection: &Collection,
    future: &Schema,
) {
    let schema = Arc::new(Schema::new(
        future.all().iter().map(|c| (**c).clone()).collect(),
    ));
    let Some(current) = schema.get_by_id(&collection.id).cloned() else {
        return;
    };
    let auth = collection.auth.as_ref();
    // PocketBase checks the MFA rule only while MFA is enabled.
    let mfa_rule = auth
        .filter(|a| a.mfa.enabled)
        .map(|a| a.mfa.rule.clone())
        .filter(|rule| !rule.trim().is_empty());
    let texts = [
        ("listRule", collection.list_rule.clone()),
        ("viewRule", collection.view_rule.clone()),
        ("createRule", collection.create_rule.clone()),
        ("updateRule", collection.update_rule.clone()),
        ("deleteRule", collection.delete_rule.clone()),
        ("authRule", auth.and_then(|a| a.auth_rule.clone())),
        ("manageRule", auth.and_then(|a| a.manage_rule.clone())),
        ("mfa.rule", mfa_rule),
    ];
    for (key, text) in texts {
        // An MFA that cannot be enabled (`mfa.enabled`) is reported instead of its rule.
        if errors.contains(key) || (key == "mfa.rule" && errors.contains("mfa")) {
            continue;
        }
        let Some(text) = text else {
            continue;
        };
        // "" is "everyone"; whitespace alone is an empty expression, refused.
        if !text.is_empty() && text.trim().is_empty() {
            errors.add(key, invalid_rule_message("empty filter expression"));
            continue;
        }
        if let Err(error) = Rule::compile(&schema, &current, Some(&text)) {
            errors.add(key, invalid_rule(&text, &error));
        }
    }
}

/// The dashboard's as-you-type check: `{"ok": true}`, or `{"ok": false, "message", "start",
/// "end"}` with the error's span in UTF-16 code units (`null` when the error has no place).
pub fn check_text(schema: &Schema, draft: &Collection, text: &str) -> serde_json::Value {
    if text.is_empty() {
        return serde_json::json!({"ok": true});
    }
    if text.trim().is_empty() {
        let end = utf16_len(text);
        return serde_json::json!({
            "ok": false, "message": "Empty filter expression.", "start": 0, "end": end,
        });
    }
    let future = Arc::new(schema_with(schema, draft));
    let Some(current) = future.get_by_id(&draft.id).cloned() else {
        return serde_json::json!({"ok": true});
    };
    match Rule::compile(&future, &current, Some(text)) {
        Ok(_) => serde_json::json!({"ok": true}),
        Err(error) => {
            let mut message = error.message.clone();
            if let Some(first) = message.get(..1) {
                message = first.to_uppercase() + &message[1..];
            }
            if !message.ends_with('.') {
                message.push('.');
            }
            let (start, end) = match error.span {
                Some(span) => (
                    serde_json::json!(utf16_offset(text, span.start)),
                    serde_json::json!(utf16_offset(text, span.end)),
                ),
                None => (serde_json::Value::Null, serde_json::Value::Null),
            };
            serde_json::json!({"ok": false, "message": message, "start": start, "end": end})
        }
    }
}

/// A byte offset into `text` as a count of UTF-16 code units (clamped to the text, rounded
/// down to a character boundary).
fn utf16_offset(text: &str, byte: usize) -> usize {
    let mut byte = byte.min(text.len());
    while !text.is_char_boundary(byte) {
        byte -= 1;
    }
    utf16_len(&text[..byte])
}

fn utf16_len(text: &str) -> usize {
    text.chars().map(char::len_utf16).sum()
}

/// A collection with its new version in place of the old one (or added).
pub fn schema_with(schema: &Schema, collection: &Collection) -> Schema {
    let mut collections: Vec<Collection> = schema
        .all()
        .iter()
        .filter(|c| c.id != collection.id)
        .map(|c| (**c).clone())
        .collect();
    collections.push(collection.clone());
    Schema::new(collections)
}

/// PocketBase's error for a rule that does not compile, with its raw error wording: the
/// checker's sentences already follow it; syntax errors are reworded from the language's
/// own messages.
fn invalid_rule(text: &str, error: &rules::Error) -> FieldError {
    let raw = match error.kind {
        ErrorKind::Syntax => syntax_wording(text, error),
        _ => error.message.trim_end_matches('.').to_owned(),
    };
    invalid_rule_message(&raw)
}

fn invalid_rule_message(raw: &str) -> FieldError {
    FieldError::new(
        "validation_invalid_rule",
        format!("Invalid rule. Raw error: {raw}."),
    )
}

fn syntax_wording(text: &str, error: &rules::Error) -> String {
    let spanned = error
        .span
        .and_then(|span| text.get(span.start..span.end))
        .unwrap_or("");
    // PocketBase reads a whole group before its inside, so an unclosed one is reported
    // first, unless a quoted text runs to the end.
    let unclosed = unclosed_groups(text);
    if unclosed > 0
        && !matches!(
            error.message.as_str(),
            "unterminated text literal" | "unbalanced closing parenthesis"
        )
    {
        return format!("invalid formatted group - missing {unclosed} closing bracket(s)");
    }
    match error.message.as_str() {
        "unclosed parenthesis" => format!(
            "invalid formatted group - missing {} closing bracket(s)",
            unclosed_groups(text).max(1)
        ),
        "unbalanced closing parenthesis" => "unexpected character ')'".to_owned(),
        "unterminated text literal" => format!("invalid quoted text {}", go_quote(spanned)),
        "expected a comparison sign" if spanned == "&&" || spanned == "||" => {
            format!("expected a sign operator, got \"{spanned}\" (join)")
        }
        _ => "invalid or incomplete filter expression".to_owned(),
    }
}

/// `text` in double quotes with Go's escapes for quotes, backslashes and control characters
/// (how PocketBase prints a text inside its raw errors).
fn go_quote(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\u{b}' => out.push_str("\\v"),
            '\u{c}' => out.push_str("\\f"),
            c if c.is_ascii_control() => out.push_str(&format!("\\x{:02x}", u32::from(c))),
            c if c.is_control() => out.push_str(&format!("\\u{:04x}", u32::from(c))),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Opening parentheses never closed, outside quoted text.
fn unclosed_groups(text: &str) -> usize {
    let mut depth: usize = 0;
    let mut quote: Option<char> = None;
    let mut escaped = false;
    for c in text.chars() {
        if let Some(q) = quote {
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == q {
                quote = None;
            }
            continue;
        }
        match c {
            '\'' | '"' => quote = Some(c),
            '(' => depth += 1,
            ')' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    depth
}

#[cfg(test)]
mod tests {
    use domain::collection::users_collection;

    use super::*;

    #[test]
    fn bad_rules_are_reported_per_key() {
        let mut users = users_collection("");
        users.list_rule = Some("nope = 1".into());
        users.view_rule = Some("name = ".into());
        users.create_rule = Some("@request.body.anything = 1".into());
        users.update_rule = Some("id = @request.auth.id".into());
        users.delete_rule = None;
        let schema = schema_with(&Schema::new(Vec::new()), &users);
        let mut errors = ValidationErrors::new();
        validate_rule_texts(&mut errors, &users, &schema);
        assert!(errors.contains("listRule"));
        assert!(errors.contains("viewRule"));
        assert!(!errors.contains("createRule"));
        assert!(!errors.contains("updateRule"));
        assert!(!errors.contains("deleteRule"));
        let json = errors.into_json();
        assert_eq!(json["listRule"]["code"], "validation_invalid_rule");
        assert_eq!(
            json["viewRule"]["message"],
            "Invalid rule. Raw error: invalid or incomplete filter expression."
        );
    }

    #[test]
    fn mfa_rule_is_checked_only_while_mfa_is_enabled() {
        let mut users = users_collection("");
        let schema = schema_with(&Schema::new(Vec::new()), &users);
        if let Some(auth) = users.auth.as_mut() {
            auth.mfa.rule = "nope = 1".into();
            auth.mfa.enabled = false;
        }
        let mut errors = ValidationErrors::new();
        validate_rule_texts(&mut errors, &users, &schema);
        assert!(errors.is_empty());
        if let Some(auth) = users.auth.as_mut() {
            auth.mfa.enabled = true;
        }
        validate_rule_texts(&mut errors, &users, &schema);
        assert_eq!(
            errors.into_json()["mfa"]["rule"]["code"],
            "validation_invalid_rule"
        );
    }

    /// PocketBase 0.40.6's raw errors for the same rule texts.
    #[test]
    fn raw_errors_use_pocketbase_wording() {
        let users = users_collection("");
        let schema = schema_with(&Schema::new(Vec::new()), &users);
        let cases = [
            (
                "(name = 1",
                "invalid formatted group - missing 1 closing bracket(s)",
            ),
            (
                "((name = 1)",
                "invalid formatted group - missing 1 closing bracket(s)",
            ),
            ("name = 1)", "unexpected character ')'"),
            ("name = 1 ) && (", "unexpected character ')'"),
            ("name =", "invalid or incomplete filter expression"),
            ("name", "invalid or incomplete filter expression"),
            ("name = 1 &&", "invalid or incomplete filter expression"),
            ("name = 'x", "invalid quoted text \"'x\""),
            ("name = \"x", "invalid quoted text \"\\\"x\""),
            ("name = 'it\"s", "invalid quoted text \"'it\\\"s\""),
            (
                "(((",
                "invalid formatted group - missing 3 closing bracket(s)",
            ),
            (
                "name = 1 && (",
                "invalid formatted group - missing 1 closing bracket(s)",
            ),
            (
                "(name =",
                "invalid formatted group - missing 1 closing bracket(s)",
            ),
            (
                "((name = 1) && (",
                "invalid formatted group - missing 2 closing bracket(s)",
            ),
            ("(name = 'x", "invalid quoted text \"'x\""),
            (
                "@collection.nosuch:a.id = 1",
                "invalid left operand \"@collection.nosuch:a.id\" - failed to load collection \"nosuch:a\" from field path \"@collection.nosuch:a.id\"",
            ),
            (
                "nosuch_via_x.id = 1",
                "invalid left operand \"nosuch_via_x.id\" - failed to load back relation field \"nosuch_via_x\" collection",
            ),
            (
                "users_via_nope.id = 1",
                "invalid left operand \"users_via_nope.id\" - missing back relation field \"nope\"",
            ),
            (
                "users_via_name.id = 1",
                "invalid left operand \"users_via_name.id\" - invalid back relation field \"name\"",
            ),
            ("a && b", "expected a sign operator, got \"&&\" (join)"),
            (" ", "empty filter expression"),
            (
                "nope = 1",
                "invalid left operand \"nope\" - unknown field \"nope\"",
            ),
            (
                "nope.x = 1",
                "invalid left operand \"nope.x\" - failed to resolve field \"nope\"",
            ),
            (
                "foo(1) = 1",
                "invalid left operand \"foo\" - unknown function \"foo\"",
            ),
            (
                "name:nope = 1",
                "invalid left operand \"name:nope\" - unknown modifier in \"name:nope\"",
            ),
            (
                "name:lower.x = 1",
                "invalid left operand \"name:lower.x\" - failed to resolve field \"name:lower\"",
            ),
            (
                "name:lower:upper = 1",
                "invalid left operand \"name:lower:upper\" - unknown field \"name:lower:upper\"",
            ),
        ];
        let mut failures = Vec::new();
        for (text, raw) in cases {
            let mut c = users.clone();
            c.list_rule = Some(text.to_owned());
            let mut errors = ValidationErrors::new();
            validate_rule_texts(&mut errors, &c, &schema);
            let got = errors.into_json()["listRule"]["message"].clone();
            let want = format!("Invalid rule. Raw error: {raw}.");
            if got != want {
                failures.push(format!("{text:?}: got {got}, want {want:?}"));
            }
        }
        assert!(failures.is_empty(), "{}", failures.join("\n"));
    }
}
