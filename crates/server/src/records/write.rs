//! What create and update share: reading the body into a [`RecordInput`], the extra checks of
//! an auth record form (password confirmation, old password, email and verified locks), and
//! hashing the submitted passwords before the write is built.

use domain::values::{self, InputOptions, RecordInput};
use domain::{AuthContext, Collection, FieldError, Record, RecordData, ValidationErrors};
use serde_json::{Map, Value};

use crate::auth::password;
use crate::error::{ApiError, ApiResult};
use crate::state::SharedState;

/// Hidden auth fields a record's own form may still set.
const AUTH_WRITABLE_HIDDEN: [&str; 1] = ["password"];

/// The body as changes to `collection`: hidden fields only for superusers (plus an auth
/// collection's password).
pub fn parse_input(
    collection: &Collection,
    body: &Map<String, Value>,
    auth: &AuthContext,
) -> RecordInput {
    let allow_hidden: &[&str] = if collection.is_auth() {
        &AUTH_WRITABLE_HIDDEN
    } else {
        &[]
    };
    RecordInput::parse(
        collection,
        body,
        &InputOptions {
            include_hidden: auth.is_superuser(),
            allow_hidden,
        },
    )
}

/// The first-stage checks of an auth record form, reported alone when they fail (PocketBase
/// validates the fields only once these pass). `current` is `None` on create. `manager` is
/// true for superusers and callers passing the collection's manage rule.
pub async fn auth_form_errors(
    body: &Map<String, Value>,
    input: &RecordInput,
    current: Option<&Record>,
    manager: bool,
) -> ValidationErrors {
    let mut errors = ValidationErrors::new();
    let text = |key: &str| body.get(key).map(values::to_go_string).unwrap_or_default();
    let new_password = input.password("password").unwrap_or("").to_owned();
    let confirm = text("passwordConfirm");
    let old_password = text("oldPassword");
    let creating = current.is_none();
    if creating || !new_password.is_empty() || !confirm.is_empty() || !old_password.is_empty() {
        if new_password.is_empty() {
            errors.add("password", FieldError::required());
        }
        if confirm.is_empty() {
            errors.add("passwordConfirm", FieldError::required());
        } else if confirm != new_password {
            errors.add("passwordConfirm", mismatch());
        }
        if let Some(current) = current
            && !manager
        {
            if old_password.is_empty() {
                errors.add("oldPassword", FieldError::required());
            } else if !new_password.is_empty()
                && !password::verify(old_password, current.text("password").to_owned()).await
            {
                errors.add(
                    "oldPassword",
                    FieldError::new(
                        "validation_invalid_old_password",
                        "Missing or invalid old password.",
                    ),
                );
            }
        }
    }
    if !manager {
        let sent = |name: &str| {
            input
                .entries()
                .iter()
                .rev()
                .find(|e| e.field == name && e.op == values::InputOp::Set)
                .map(|e| &e.value)
        };
        if let Some(email) = sent("email")
            && let Some(current) = current
            && values::to_go_string(email) != current.text("email")
        {
            errors.add("email", mismatch());
        }
        if let Some(verified) = sent("verified") {
            let was = current.is_some_and(|c| c.bool("verified"));
            if values::to_go_bool(verified) != was {
                errors.add("verified", mismatch());
            }
        }
    }
    errors
}

fn mismatch() -> FieldError {
    FieldError::new("validation_values_mismatch", "Values don't match.")
}

/// Hashes every non-empty submitted password (argon2id with the configured parameters).
pub async fn hash_passwords(state: &SharedState, input: &mut RecordInput) -> ApiResult<()> {
    for entry in input.passwords_mut() {
        if entry.plain.is_empty() {
            continue;
        }
        let hash = password::hash_argon2(entry.plain.clone(), state.config.argon2)
            .await
            .map_err(ApiError::internal)?;
        entry.hash = Some(hash);
    }
    Ok(())
}

/// Puts the hashes computed by [`hash_passwords`] into validated record data.
pub fn store_hashes(input: &RecordInput, data: &mut RecordData) {
    for entry in input.passwords() {
        if let Some(hash) = &entry.hash {
            data.insert(entry.field.clone(), Value::String(hash.clone()));
        }
    }
}
