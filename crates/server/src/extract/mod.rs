//! Request extractors: the caller's identity and the submitted body, each failing with
//! PocketBase's error shape.

mod body;
pub(crate) mod path;

use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use domain::AuthContext;

pub use body::{
    BodyError, BodyKind, FormBody, MAX_MULTIPART_PARTS, MAX_URLENCODED_BYTES, RecordBody, TextForm,
    limit_request, parse_body, parse_body_with_files, parse_json, parse_plain_bytes,
    parse_urlencoded,
};

pub use path::Path;

use crate::state::SharedState;

/// The caller: a verified auth record, or a guest. A missing, malformed, expired or badly
/// signed token silently degrades to a guest, as PocketBase does.
pub struct Auth(pub AuthContext);

impl FromRequestParts<SharedState> for Auth {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &SharedState,
    ) -> Result<Self, Self::Rejection> {
        let Some(token) = bearer_token(parts) else {
            return Ok(Auth(AuthContext::Guest));
        };
        let auth = crate::auth::token::resolve_auth_token(state, &token).await;
        // The request log records who the caller was without resolving the token again.
        if let Some(slot) = parts.extensions.get::<crate::logs::AuthSlot>() {
            slot.record(&auth);
        }
        Ok(Auth(auth))
    }
}

/// The caller, who must be a superuser (401 for guests, 403 for other auth records): decided
/// from the headers alone, so that a superuser-only endpoint refuses before reading a body.
/// Put it before the body extractor in the handler's arguments.
pub struct Superuser(pub AuthContext);

impl FromRequestParts<SharedState> for Superuser {
    type Rejection = crate::error::ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &SharedState,
    ) -> Result<Self, Self::Rejection> {
        let Ok(Auth(auth)) = Auth::from_request_parts(parts, state).await;
        crate::settings::require_superuser(&auth)?;
        Ok(Superuser(auth))
    }
}

/// The first `fields` query parameter (`""` when absent), for endpoints that answer JSON.
pub struct FieldsParam(pub String);

impl<S: Send + Sync> FromRequestParts<S> for FieldsParam {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        // The pairs decoded one at a time up to the first `fields`; nothing at all without a
        // query.
        let fields = parts
            .uri
            .query()
            .and_then(|query| {
                form_urlencoded::parse(query.as_bytes()).find(|(key, _)| key == "fields")
            })
            .map(|(_, value)| value.into_owned())
            .unwrap_or_default();
        Ok(FieldsParam(fields))
    }
}

/// Reads a text form value, matching the key case-insensitively as PocketBase's forms do. A
/// missing or `null` value is blank; a value of another type (a JSON number, boolean, array
/// or object) cannot be loaded into the form, which PocketBase refuses as a whole.
pub fn form_text(
    body: &serde_json::Map<String, serde_json::Value>,
    key: &str,
) -> crate::error::ApiResult<String> {
    match body.iter().find(|(k, _)| k.eq_ignore_ascii_case(key)) {
        None | Some((_, serde_json::Value::Null)) => Ok(String::new()),
        Some((_, serde_json::Value::String(s))) => Ok(s.clone()),
        Some(_) => Err(crate::error::ApiError::bad_request_msg(
            "An error occurred while loading the submitted data.",
        )),
    }
}

/// The first value of each of `names` in `headers` (what `get` gives for each), found in one
/// pass over the request's few headers: a lookup each hashes its name and probes the map,
/// about 80 instructions for a standard name.
pub fn first_values<'a, const N: usize>(
    headers: &'a axum::http::HeaderMap,
    names: [&axum::http::HeaderName; N],
) -> [Option<&'a axum::http::HeaderValue>; N] {
    let mut found = [None; N];
    for (name, value) in headers {
        if let Some(slot) = names
            .iter()
            .position(|wanted| *wanted == name)
            .and_then(|at| found.get_mut(at))
            && slot.is_none()
        {
            *slot = Some(value);
        }
    }
    found
}

/// The token of the `Authorization` header, with or without a `Bearer ` prefix.
fn bearer_token(parts: &Parts) -> Option<String> {
    header_token(&parts.headers).map(str::to_owned)
}

/// The token an `Authorization` header carries (`None` when there is none): the value
/// without its outer whitespace and without one `Bearer ` prefix (any case), as PocketBase
/// reads it. Exactly one prefix goes: `Bearer  <token>` (two spaces) leaves a token starting
/// with a space, which verifies as nothing.
pub fn header_token(headers: &axum::http::HeaderMap) -> Option<&str> {
    let token = strip_bearer(headers.get(AUTHORIZATION)?.to_str().ok()?);
    (!token.is_empty()).then_some(token)
}

/// An `Authorization` value as the token it carries: see [`header_token`].
pub fn strip_bearer(value: &str) -> &str {
    let value = value.trim();
    match value.get(..7) {
        Some(prefix) if prefix.eq_ignore_ascii_case("bearer ") => &value[7..],
        _ => value,
    }
}

#[cfg(test)]
mod tests {
    use super::{first_values, strip_bearer};
    use axum::http::{HeaderMap, HeaderValue, header};

    #[test]
    fn first_values_are_what_get_gives_for_each_name() {
        let mut headers = HeaderMap::new();
        headers.append(header::REFERER, HeaderValue::from_static("r1"));
        headers.append(header::USER_AGENT, HeaderValue::from_static("ua"));
        headers.append(header::REFERER, HeaderValue::from_static("r2"));
        headers.append("x-other", HeaderValue::from_static("o"));
        let names = [&header::USER_AGENT, &header::REFERER, &header::ORIGIN];
        let found = first_values(&headers, names);
        for (name, value) in names.into_iter().zip(found) {
            assert_eq!(value, headers.get(name), "{name}");
        }
        assert_eq!(found[1].map(|v| v.as_bytes()), Some(&b"r1"[..]));
        assert_eq!(first_values(&HeaderMap::new(), names), [None; 3]);
    }

    #[test]
    fn one_bearer_prefix_of_any_case_is_taken_off() {
        assert_eq!(strip_bearer("Bearer abc"), "abc");
        assert_eq!(strip_bearer("bEaReR abc"), "abc");
        assert_eq!(strip_bearer("  abc "), "abc");
        assert_eq!(strip_bearer(" Bearer abc "), "abc");
        // Exactly one prefix: what follows it is the token, spaces and all.
        assert_eq!(strip_bearer("Bearer  abc"), " abc");
        assert_eq!(strip_bearer("Bearer Bearer abc"), "Bearer abc");
        assert_eq!(strip_bearer("Bearer\tabc"), "Bearer\tabc");
        assert_eq!(strip_bearer("Bearer"), "Bearer");
        // A multi-byte character where the prefix would end is no prefix (and no panic).
        assert_eq!(strip_bearer("Beareé abc"), "Beareé abc");
    }
}
