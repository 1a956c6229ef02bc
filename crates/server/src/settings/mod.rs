//! Runtime settings (PocketBase's `settings` param): loading them over the defaults into the
//! cache on first use, validating them, and the superuser endpoints `GET/PATCH /api/settings`
//! and `POST /api/settings/test/email`. The typed shape and the cache are on the ground floor
//! ([`crate::state::settings`]), since every feature reads them. Secrets (SMTP and S3
//! passwords) are write-only: stored, never returned.

mod apple;
pub mod encryption;
pub mod rate_limit;

use std::sync::Arc;

use crate::routing::{Routes, get, post};
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use domain::{AuthContext, FieldError, ValidationErrors};
use serde_json::{Map, Value, json};

use crate::error::{ApiError, ApiResult};
use crate::extract::{Auth, FieldsParam, FormBody};
use crate::state::SharedState;
use crate::state::settings::{Realtime, S3, Settings};

/// The key of the settings row in the store's params.
const PARAM_KEY: &str = "settings";

impl Realtime {
    fn validate(&self) -> ValidationErrors {
        let mut errors = ValidationErrors::new();
        for (name, value) in [
            ("clientQueueBytes", self.client_queue_bytes),
            ("clientQueueMessages", self.client_queue_messages),
            ("idleTimeout", self.idle_timeout),
            ("maxClients", self.max_clients),
            ("maxClientsPerIp", self.max_clients_per_ip),
            ("maxLifetime", self.max_lifetime),
        ] {
            if value == 0 {
                errors.add(name, FieldError::required());
            }
        }
        errors
    }
}

impl Settings {
    /// The API view: everything but the write-only secrets.
    pub fn to_api_json(&self) -> Value {
        let mut value = serde_json::to_value(self).unwrap_or_else(|_| json!({}));
        for path in [
            &["smtp", "password"][..],
            &["s3", "secret"],
            &["backups", "s3", "secret"],
        ] {
            remove_path(&mut value, path);
        }
        value
    }

    /// PocketBase's checks, as field errors nested like the settings object.
    pub fn validate(&self) -> Result<(), Value> {
        let mut out = Map::new();
        let mut meta = ValidationErrors::new();
        if self.meta.app_name.trim().is_empty() {
            meta.add("appName", FieldError::required());
        }
        if self.meta.app_url.trim().is_empty() {
            meta.add("appURL", FieldError::required());
        } else if url::Url::parse(&self.meta.app_url).is_err() {
            meta.add(
                "appURL",
                FieldError::new("validation_is_url", "Must be a valid URL."),
            );
        }
        if self.meta.sender_address.trim().is_empty() {
            meta.add("senderAddress", FieldError::required());
        } else if !crate::superusers::valid_email(&self.meta.sender_address) {
            meta.add("senderAddress", is_email_error());
        }
        if self.meta.sender_name.trim().is_empty() {
            meta.add("senderName", FieldError::required());
        }
        push_errors(&mut out, "meta", meta);
        let mut smtp = ValidationErrors::new();
        if self.smtp.enabled {
            if self.smtp.host.trim().is_empty() {
                smtp.add("host", FieldError::required());
            }
            if self.smtp.port == 0 {
                smtp.add("port", FieldError::required());
            }
        }
        if !["", "PLAIN", "LOGIN"].contains(&self.smtp.auth_method.as_str()) {
            smtp.add("authMethod", FieldError::invalid_value());
        }
        push_errors(&mut out, "smtp", smtp);
        push_errors(
            &mut out,
            "backups",
            crate::backups::settings_errors(&self.backups),
        );
        let ip_errors = |list: &[String]| {
            let mut errors = Map::new();
            for (index, entry) in list.iter().enumerate() {
                let error = if entry.is_empty() {
                    FieldError::required()
                } else if crate::state::parse_ip_or_subnet(entry).is_none() {
                    // PocketBase's code, spelling included.
                    FieldError::new(
                        "validation_invlaid_ip_or_subnet",
                        "Invalid IP or CIDR subnet.",
                    )
                } else {
                    continue;
                };
                errors.insert(
                    index.to_string(),
                    serde_json::to_value(error).unwrap_or_default(),
                );
            }
            errors
        };
        let superuser_ips = ip_errors(&self.superuser_ips);
        if !superuser_ips.is_empty() {
            out.insert("superuserIPs".into(), Value::Object(superuser_ips));
        }
        let mut rules = Map::new();
        for (index, rule) in self.rate_limits.rules.iter().enumerate() {
            let mut errors = ValidationErrors::new();
            if !["", "@guest", "@auth"].contains(&rule.audience.as_str()) {
                errors.add("audience", FieldError::invalid_value());
            }
            if rule.duration == 0 {
                errors.add("duration", FieldError::required());
            }
            if rule.label.trim().is_empty() {
                errors.add("label", FieldError::required());
            } else if !rate_limit::valid_rule_label(&rule.label) {
                errors.add(
                    "label",
                    FieldError::new("validation_match_invalid", "Must be in a valid format."),
                );
            }
            if rule.max_requests == 0 {
                errors.add("maxRequests", FieldError::required());
            }
            if !errors.is_empty() {
                rules.insert(index.to_string(), errors.into_json());
            }
        }
        // Only once every rule is valid on its own: the first rule (in order) that conflicts
        // with one before it, the same label for an overlapping audience (the same one, or
        // everyone's), as PocketBase reports it.
        if rules.is_empty() {
            let all = &self.rate_limits.rules;
            let conflict = all.iter().enumerate().find(|(index, rule)| {
                all[..*index].iter().any(|earlier| {
                    earlier.label == rule.label
                        && (earlier.audience == rule.audience
                            || earlier.audience.is_empty()
                            || rule.audience.is_empty())
                })
            });
            if let Some((index, rule)) = conflict {
                let error = FieldError::new(
                    "validation_conflicting_rate_limit_rule",
                    format!(
                        "Rate limit rule configuration with label {} already exists or conflicts with another rule.",
                        rule.label
                    ),
                )
                .with_param("label", rule.label.clone());
                let mut errors = ValidationErrors::new();
                errors.add("label", error);
                rules.insert(index.to_string(), errors.into_json());
            }
        }
        let excluded = ip_errors(&self.rate_limits.excluded_ips);
        let mut limits = Map::new();
        if !rules.is_empty() {
            limits.insert("rules".into(), Value::Object(rules));
        }
        if !excluded.is_empty() {
            limits.insert("excludedIPs".into(), Value::Object(excluded));
        }
        if !limits.is_empty() {
            out.insert("rateLimits".into(), Value::Object(limits));
        }
        push_errors(&mut out, "s3", validate_s3(&self.s3));
        let mut backups = validate_s3(&self.backups.s3);
        let mut backups_own = ValidationErrors::new();
        if !self.backups.cron.is_empty() {
            if crate::cron::schedule::Schedule::parse(&self.backups.cron).is_err() {
                backups_own.add(
                    "cron",
                    FieldError::new(
                        "validation_invalid_cron",
                        "Invalid cron expression - must be a valid macro or to have exactly 5 space separated segments.",
                    ),
                );
            }
            if self.backups.cron_max_keep == 0 {
                backups_own.add("cronMaxKeep", FieldError::required());
            }
        }
        let mut backups_json = backups_own.into_json();
        if !backups.is_empty() {
            backups_json["s3"] = std::mem::take(&mut backups).into_json();
        }
        if backups_json.as_object().is_some_and(|b| !b.is_empty()) {
            out.insert("backups".into(), backups_json);
        }
        let mut batch = ValidationErrors::new();
        if self.batch.enabled {
            if self.batch.max_requests == 0 {
                batch.add("maxRequests", FieldError::required());
            }
            if self.batch.timeout == 0 {
                batch.add("timeout", FieldError::required());
            }
        }
        push_errors(&mut out, "batch", batch);
        push_errors(&mut out, "realtime", self.realtime.validate());
        if out.is_empty() {
            Ok(())
        } else {
            Err(Value::Object(out))
        }
    }
}

/// The numbers PocketBase checks against a minimum, with that minimum. Plinth's types are
/// unsigned, so a negative one is taken out here (its error recorded, the value zeroed so
/// the rest of the body still loads and is checked) before the body is read into them.
const MINIMUMS: [(&[&str], i64); 7] = [
    (&["logs", "maxDataSize"], 0),
    (&["logs", "maxDays"], 0),
    (&["batch", "maxRequests"], 0),
    (&["batch", "timeout"], 0),
    (&["batch", "maxBodySize"], 0),
    (&["smtp", "port"], 0),
    (&["backups", "cronMaxKeep"], 1),
];

/// Rate-limit rules' numbers and their minimum.
const RULE_MINIMUMS: [(&str, i64); 2] = [("duration", 1), ("maxRequests", 1)];

/// Only negative numbers get the minimum's message; a zero where PocketBase wants at least 1
/// is a "required" error of the later checks, as on PocketBase.
fn negative(value: &Value) -> bool {
    value.as_f64().is_some_and(|number| number < 0.0)
}

fn min_error(minimum: i64) -> Value {
    let error = FieldError::new(
        "validation_min_greater_equal_than_required",
        format!("Must be no less than {minimum}."),
    )
    .with_param("threshold", minimum);
    serde_json::to_value(error).unwrap_or_default()
}

/// Finds the negative numbers in the merged settings (see [`MINIMUMS`]), zeroes
/// them, and returns their errors nested like the settings object.
fn take_below_minimum(merged: &mut Value) -> Value {
    let mut errors = Value::Object(Map::new());
    for (path, minimum) in MINIMUMS {
        let [section, key] = path else { continue };
        if let Some(value) = merged.get_mut(section).and_then(|s| s.get_mut(key))
            && negative(value)
        {
            *value = json!(0);
            merge(
                &mut errors,
                json!({ *section: { *key: min_error(minimum) } }),
            );
        }
    }
    if let Some(Value::Array(rules)) = merged
        .get_mut("rateLimits")
        .and_then(|limits| limits.get_mut("rules"))
    {
        for (index, rule) in rules.iter_mut().enumerate() {
            for (key, minimum) in RULE_MINIMUMS {
                if let Some(value) = rule.get_mut(key)
                    && negative(value)
                {
                    *value = json!(0);
                    merge(
                        &mut errors,
                        json!({"rateLimits": {"rules": {index.to_string(): {key: min_error(minimum)}}}}),
                    );
                }
            }
        }
    }
    errors
}

/// PocketBase's checks of an S3 section that is switched on.
fn validate_s3(s3: &S3) -> ValidationErrors {
    let mut errors = ValidationErrors::new();
    if !s3.enabled {
        return errors;
    }
    for (name, value) in [
        ("accessKey", &s3.access_key),
        ("bucket", &s3.bucket),
        ("endpoint", &s3.endpoint),
        ("region", &s3.region),
        ("secret", &s3.secret),
    ] {
        if value.trim().is_empty() {
            errors.add(name, FieldError::required());
        }
    }
    if !s3.endpoint.trim().is_empty() && url::Url::parse(&s3.endpoint).is_err() {
        errors.add(
            "endpoint",
            FieldError::new("validation_is_url", "Must be a valid URL."),
        );
    }
    errors
}

fn is_email_error() -> FieldError {
    FieldError::new("validation_is_email", "Must be a valid email address.")
}

fn push_errors(out: &mut Map<String, Value>, key: &str, errors: ValidationErrors) {
    if !errors.is_empty() {
        out.insert(key.into(), errors.into_json());
    }
}

fn remove_path(value: &mut Value, path: &[&str]) {
    let Some((last, parents)) = path.split_last() else {
        return;
    };
    let mut current = value;
    for key in parents {
        match current.get_mut(*key) {
            Some(next) => current = next,
            None => return,
        }
    }
    if let Some(object) = current.as_object_mut() {
        object.remove(*last);
    }
}

/// Merges `patch` into `base`: objects key by key, everything else (arrays included) replaced.
fn merge(base: &mut Value, patch: Value) {
    match (base, patch) {
        (Value::Object(base), Value::Object(patch)) => {
            for (key, value) in patch {
                match base.get_mut(&key) {
                    Some(existing) if existing.is_object() && value.is_object() => {
                        merge(existing, value)
                    }
                    _ => {
                        base.insert(key, value);
                    }
                }
            }
        }
        (base, patch) => *base = patch,
    }
}

/// The current settings: the cached copy, else the stored ones over the defaults.
pub async fn current(state: &SharedState) -> ApiResult<Arc<Settings>> {
    // Read before loading: a change after this point makes the next call load again.
    let version = state.store.params_version();
    // Every request asks, several times: the published copy is taken without a wait, and the
    // loading path is boxed, so that it does not weigh on every caller's future.
    if let Some(settings) = state.settings.published_at(version) {
        return Ok(settings);
    }
    Box::pin(load(state, version)).await
}

/// [`current`] when the cached copy is missing or stale.
async fn load(state: &SharedState, version: u64) -> ApiResult<Arc<Settings>> {
    let writer = state.settings.writer().await;
    // Loaded (or changed) by whoever held the guard before.
    if let Some(settings) = state.settings.published_at(version) {
        return Ok(settings);
    }
    let stored = encryption::load(state, PARAM_KEY).await?;
    let settings = match stored {
        Some(value) => {
            let mut base = serde_json::to_value(Settings::default()).map_err(ApiError::internal)?;
            merge(&mut base, value);
            serde_json::from_value(base).unwrap_or_else(|error| {
                tracing::error!(%error, "stored settings are unreadable; using the defaults");
                Settings::default()
            })
        }
        None => Settings::default(),
    };
    let settings = Arc::new(settings);
    state.settings.fill(&writer, settings.clone(), version);
    Ok(settings)
}

pub fn router() -> Routes {
    Routes::new()
        .route("/api/settings", get(get_settings).patch(patch_settings))
        .route("/api/settings/test/email", post(test_email))
        .route(
            "/api/settings/apple/generate-client-secret",
            post(apple::generate_client_secret),
        )
}

/// 401 for guests, 403 for records that are not superusers.
pub fn require_superuser(auth: &AuthContext) -> ApiResult<()> {
    match auth {
        AuthContext::Guest => Err(ApiError::unauthorized(
            "The request requires valid record authorization token.",
        )),
        _ if auth.is_superuser() => Ok(()),
        _ => Err(ApiError::forbidden(
            "The authorized record is not allowed to perform this action.",
        )),
    }
}

async fn get_settings(
    State(state): State<SharedState>,
    Auth(auth): Auth,
    FieldsParam(fields): FieldsParam,
) -> ApiResult<Json<Value>> {
    require_superuser(&auth)?;
    let mut body = current(&state).await?.to_api_json();
    // `fields` picks from the settings as from any JSON answer of PocketBase's.
    crate::response::apply_fields(&mut body, &fields)?;
    Ok(Json(body))
}

async fn patch_settings(
    State(state): State<SharedState>,
    _: crate::extract::Superuser,
    FieldsParam(fields): FieldsParam,
    FormBody(body): FormBody,
) -> ApiResult<Json<Value>> {
    let mut writer = state.settings.writer().await;
    let existing = match state.settings.published_at(state.store.params_version()) {
        Some(settings) => settings,
        None => {
            drop(writer);
            let loaded = current(&state).await?;
            writer = state.settings.writer().await;
            loaded
        }
    };
    let mut merged = serde_json::to_value(existing.as_ref()).map_err(ApiError::internal)?;
    merge(&mut merged, Value::Object(body));
    let below_minimum = take_below_minimum(&mut merged);
    let updated: Settings = serde_json::from_value(merged).map_err(|_| {
        ApiError::bad_request_msg("An error occurred while loading the submitted data.")
    })?;
    let mut invalid = match updated.validate() {
        Ok(()) => Value::Object(Map::new()),
        Err(data) => data,
    };
    merge(&mut invalid, below_minimum);
    if invalid.as_object().is_some_and(|errors| !errors.is_empty()) {
        let mut error =
            ApiError::bad_request_msg("An error occurred while saving the new settings.");
        error.data = invalid;
        return Err(error);
    }
    let stored = serde_json::to_value(&updated).map_err(ApiError::internal)?;
    // The version as it was before this write: read after it, it could also cover another
    // node's change saved in between, which this copy does not hold and would then never load.
    // Marked older, the copy is loaded once more after this write, with whatever else landed.
    let version = state.store.params_version();
    encryption::save(&state, PARAM_KEY, &stored).await?;
    state.realtime.apply_settings(&updated.realtime);
    crate::backups::apply_settings(&state, &updated.backups);
    let updated = Arc::new(updated);
    state.settings.fill(&writer, updated.clone(), version);
    let mut answer = updated.to_api_json();
    crate::response::apply_fields(&mut answer, &fields)?;
    Ok(Json(answer))
}

/// The templates the test endpoint can send, by PocketBase's names.
const TEST_TEMPLATES: [&str; 5] = [
    "verification",
    "password-reset",
    "email-change",
    "otp",
    "login-alert",
];

async fn test_email(
    State(state): State<SharedState>,
    _: crate::extract::Superuser,
    FormBody(body): FormBody,
) -> ApiResult<StatusCode> {
    let email = crate::extract::form_text(&body, "email")?;
    let template = crate::extract::form_text(&body, "template")?;
    let collection_name = crate::extract::form_text(&body, "collection")?;
    // Added alphabetically, the order PocketBase lists field errors in.
    let mut errors = ValidationErrors::new();
    let schema = state.schema();
    let collection = if collection_name.is_empty() {
        schema.get(domain::collection::SUPERUSERS_NAME).cloned()
    } else {
        schema
            .get(&collection_name)
            .filter(|c| c.is_auth())
            .cloned()
    };
    if collection.is_none() {
        errors.add(
            "collection",
            FieldError::new(
                "validation_invalid_auth_collection",
                "Must be a valid auth collection id or name.",
            ),
        );
    }
    if email.is_empty() {
        errors.add("email", FieldError::required());
    } else if !crate::superusers::valid_email(&email) {
        errors.add("email", is_email_error());
    }
    if template.is_empty() {
        errors.add("template", FieldError::required());
    } else if !TEST_TEMPLATES.contains(&template.as_str()) {
        errors.add("template", FieldError::invalid_value());
    }
    let fail = "Failed to send the test email.";
    if let Err(errors) = errors.into_result() {
        return Err(ApiError::validation(fail, errors));
    }
    let Some(collection) = collection else {
        return Err(ApiError::bad_request_msg(fail));
    };
    let settings = current(&state).await?;
    let sent = match crate::mail::test_message(&settings, &collection, &template, &email) {
        Ok(message) => crate::mail::send(&settings, message).await,
        Err(error) => Err(error),
    };
    // PocketBase shows the transport's error to the superuser in the message itself.
    sent.map_err(|error| {
        tracing::warn!(%error, "test email failed");
        ApiError::bad_request_msg(&format!("{fail} Raw error: \n{error}"))
    })?;
    Ok(StatusCode::NO_CONTENT)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_match_pocketbase_shape_without_secrets() {
        let mut settings = Settings::default();
        settings.smtp.password = "hunter2".into();
        let value = settings.to_api_json();
        assert_eq!(value["smtp"]["port"], 587);
        assert!(value["smtp"].get("password").is_none());
        assert!(value["s3"].get("secret").is_none());
        assert_eq!(value["meta"]["appURL"], "http://localhost:8090");
        assert_eq!(value["rateLimits"]["rules"][0]["label"], "*:auth");
        assert_eq!(value["rateLimits"]["enabled"], true);
        assert_eq!(value["trustedProxy"]["useLeftmostIP"], false);
        assert_eq!(value["logs"]["logIP"], true);
        assert!(value["superuserIPs"].is_array());
    }

    #[test]
    fn merge_keeps_untouched_keys_and_replaces_arrays() {
        let mut base = json!({"a": {"b": 1, "c": 2}, "l": [1, 2]});
        merge(&mut base, json!({"a": {"c": 3}, "l": [9]}));
        assert_eq!(base, json!({"a": {"b": 1, "c": 3}, "l": [9]}));
    }

    #[test]
    fn negative_numbers_get_the_minimum_error_and_are_zeroed() {
        let mut merged = serde_json::to_value(Settings::default()).expect("json");
        merge(
            &mut merged,
            json!({
                "logs": {"maxDays": -1},
                "backups": {"cronMaxKeep": -3},
                "rateLimits": {"rules": [{"label": "x", "duration": -1, "maxRequests": 5}]},
            }),
        );
        let errors = take_below_minimum(&mut merged);
        assert_eq!(errors["logs"]["maxDays"]["params"]["threshold"], 0);
        assert_eq!(
            errors["backups"]["cronMaxKeep"]["message"],
            "Must be no less than 1."
        );
        assert_eq!(
            errors["rateLimits"]["rules"]["0"]["duration"]["code"],
            "validation_min_greater_equal_than_required"
        );
        assert!(
            errors["rateLimits"]["rules"]["0"]
                .get("maxRequests")
                .is_none()
        );
        assert_eq!(merged["logs"]["maxDays"], 0);
        let loaded: Settings = serde_json::from_value(merged).expect("loads once zeroed");
        assert_eq!(loaded.backups.cron_max_keep, 0);
    }

    #[test]
    fn validation_nests_errors_like_pocketbase() {
        let mut settings = Settings::default();
        settings.meta.app_name = String::new();
        settings.rate_limits.rules[1].max_requests = 0;
        let errors = settings.validate().expect_err("invalid");
        assert_eq!(errors["meta"]["appName"]["code"], "validation_required");
        assert_eq!(
            errors["rateLimits"]["rules"]["1"]["maxRequests"]["code"],
            "validation_required"
        );
        assert!(Settings::default().validate().is_ok());
    }
}
