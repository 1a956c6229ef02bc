//! `GET|HEAD /api/health`: liveness, with a few details for superusers.

use std::sync::LazyLock;

use crate::routing::{Routes, get};
use axum::Json;
use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::error::ApiResult;
use crate::extract::{Auth, FieldsParam};
use crate::response::apply_fields;
use crate::state::SharedState;

pub fn router() -> Routes {
    Routes::new().route("/api/health", get(health))
}

/// The answer to everyone but a superuser, without `fields`: the same every time, so it is
/// serialized once.
static PLAIN: LazyLock<Bytes> =
    LazyLock::new(|| Bytes::from(serde_json::to_vec(&body(json!({}))).unwrap_or_default()));

fn body(data: Value) -> Value {
    json!({"message": "API is healthy.", "code": 200, "data": data})
}

async fn health(
    State(state): State<SharedState>,
    Auth(auth): Auth,
    FieldsParam(fields): FieldsParam,
    request: Request,
) -> ApiResult<Response> {
    let data = if auth.is_superuser() {
        let peer = crate::peer::of(request.extensions());
        let settings = crate::settings::current(&state).await?;
        let proxy = &settings.trusted_proxy;
        let headers = request.headers();
        let ip = crate::settings::rate_limit::client_ip(headers, peer, proxy).unwrap_or_default();
        let can_backup = state.backups.can_backup();
        json!({
            "canBackup": can_backup,
            "realIP": ip,
            "possibleProxyHeader": possible_proxy_header(headers, &proxy.headers),
        })
    } else if fields.is_empty() {
        return Ok(([(CONTENT_TYPE, "application/json")], PLAIN.clone()).into_response());
    } else {
        json!({})
    };
    let mut body = body(data);
    apply_fields(&mut body, &fields)?;
    Ok(Json(body).into_response())
}

/// The header a superuser may want to trust as the client's address, as PocketBase names it
/// (a hint shown by its dashboard): the first of the configured trusted-proxy headers, then
/// `CF-Connecting-IP`, `Fly-Client-IP` and `X-Forwarded-For`, that the request carries; `""`
/// when none.
fn possible_proxy_header(headers: &axum::http::HeaderMap, trusted: &[String]) -> String {
    const KNOWN: [&str; 3] = ["CF-Connecting-IP", "Fly-Client-IP", "X-Forwarded-For"];
    trusted
        .iter()
        .map(String::as_str)
        .chain(KNOWN)
        .find(|name| {
            headers
                .get(*name)
                .is_some_and(|value| !value.as_bytes().is_empty())
        })
        .map(str::to_owned)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use axum::http::{HeaderMap, HeaderValue};

    use super::possible_proxy_header;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(*name, HeaderValue::from_static(value));
        }
        map
    }

    #[test]
    fn the_proxy_hint_follows_pocketbase_order() {
        let none: Vec<String> = Vec::new();
        assert_eq!(possible_proxy_header(&headers(&[]), &none), "");
        // X-Real-IP is not one PocketBase suggests unless it is trusted.
        assert_eq!(
            possible_proxy_header(&headers(&[("x-real-ip", "1.2.3.4")]), &none),
            ""
        );
        assert_eq!(
            possible_proxy_header(
                &headers(&[("x-forwarded-for", "1.2.3.4"), ("fly-client-ip", "5.6.7.8")]),
                &none
            ),
            "Fly-Client-IP"
        );
        assert_eq!(
            possible_proxy_header(
                &headers(&[
                    ("cf-connecting-ip", "1.2.3.4"),
                    ("fly-client-ip", "5.6.7.8")
                ]),
                &none
            ),
            "CF-Connecting-IP"
        );
        let trusted = vec!["X-Real-IP".to_owned()];
        assert_eq!(
            possible_proxy_header(
                &headers(&[("x-real-ip", "1.2.3.4"), ("cf-connecting-ip", "5.6.7.8")]),
                &trusted
            ),
            "X-Real-IP"
        );
        assert_eq!(
            possible_proxy_header(&headers(&[("x-forwarded-for", "1.2.3.4")]), &trusted),
            "X-Forwarded-For"
        );
    }
}
