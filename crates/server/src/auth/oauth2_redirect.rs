//! The all-in-one OAuth2 flow's redirect target. The SDK's `authWithOAuth2({provider})` opens
//! a realtime stream, subscribes to `@oauth2`, and sends the user to the provider with its
//! realtime client id as `state` and `/api/oauth2-redirect` as the redirect URL. The provider
//! then sends the browser here (a GET, or a form POST for Apple's `form_post`), and the `code`
//! is relayed to that client as one `@oauth2` message; the SDK finishes with
//! `auth-with-oauth2`. The browser is redirected to a success or failure page either way, as
//! PocketBase does (307 after a GET, 303 after a POST).
//!
//! With several nodes on one database the browser may come back to another node than the one
//! holding the client's stream. A node that does not hold the client leaves the message in
//! the database ([`Store::post_relay`](domain::Store::post_relay)); every node's hub looks
//! for messages to its own clients when woken, and the one holding the client takes the
//! message and delivers it. The redirect waits (at most [`relay::RELAY_WAIT`]) until some node took
//! it to choose between the success and the failure page (see [`crate::state::relay`]).

use crate::routing::{Routes, get};
use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::Value;

use crate::state::SharedState;
use crate::state::relay;

/// The realtime topic the SDK waits on.
pub const TOPIC: &str = "@oauth2";
/// Where PocketBase sends the browser afterwards (relative to `/api/oauth2-redirect`).
const SUCCESS_PATH: &str = "../_/#/auth/oauth2-redirect-success";
const FAILURE_PATH: &str = "../_/#/auth/oauth2-redirect-failure";

/// The longest message left for another node (a real `state` and `code` take a few hundred
/// bytes).
pub const MAX_RELAY_BYTES: usize = 8 * 1024;

pub fn router() -> Routes {
    Routes::new().route("/api/oauth2-redirect", get(redirect).post(redirect))
}

/// What the provider sent back, as relayed to the client.
#[derive(Debug, Default, PartialEq)]
struct RedirectData {
    state: String,
    code: String,
    error: String,
}

impl RedirectData {
    fn from_pairs(pairs: impl IntoIterator<Item = (String, Value)>) -> RedirectData {
        let mut data = RedirectData::default();
        for (key, value) in pairs {
            let text = match value {
                Value::String(text) => text,
                Value::Number(number) => number.to_string(),
                _ => continue,
            };
            // The first value of a repeated key wins, as with a query string.
            let slot = match key.as_str() {
                "state" => &mut data.state,
                "code" => &mut data.code,
                "error" => &mut data.error,
                _ => continue,
            };
            if slot.is_empty() {
                *slot = text;
            }
        }
        data
    }

    /// The message body: `state` and `code` always, `error` only when the provider sent one.
    /// Written by hand to keep PocketBase's key order.
    fn message(&self) -> String {
        let quoted = |text: &str| Value::String(text.to_owned()).to_string();
        let error = if self.error.is_empty() {
            String::new()
        } else {
            format!(",\"error\":{}", quoted(&self.error))
        };
        format!(
            "{{\"state\":{},\"code\":{}{error}}}",
            quoted(&self.state),
            quoted(&self.code)
        )
    }
}

async fn redirect(State(state): State<SharedState>, request: Request) -> Response {
    let status = if request.method() == Method::GET {
        StatusCode::TEMPORARY_REDIRECT
    } else {
        StatusCode::SEE_OTHER
    };
    let data = if request.method() == Method::POST {
        match crate::extract::parse_body(request, &state).await {
            Ok(body) => RedirectData::from_pairs(body),
            Err(_) => return redirect_to(status, FAILURE_PATH),
        }
    } else {
        let pairs: Vec<(String, String)> =
            serde_urlencoded::from_str(request.uri().query().unwrap_or("")).unwrap_or_default();
        RedirectData::from_pairs(pairs.into_iter().map(|(k, v)| (k, Value::String(v))))
    };
    if data.state.is_empty() || !hand_over(&state, &data.state, &data.message()).await {
        return redirect_to(status, FAILURE_PATH);
    }
    // The client hears about a provider error or a missing code too, so the SDK stops waiting.
    if !data.error.is_empty() || data.code.is_empty() {
        return redirect_to(status, FAILURE_PATH);
    }
    redirect_to(status, SUCCESS_PATH)
}

/// Queues `message` on [`TOPIC`] for the realtime client `client_id`, when that client exists
/// and is subscribed to the topic; the subscription is then dropped, so a `state` relays
/// once. Returns whether the message was queued. A client this node does not hold may be on
/// another node sharing the database: the message is left there, and this waits until a node
/// took it, or [`relay::RELAY_WAIT`] passed.
async fn hand_over(state: &SharedState, client_id: &str, message: &str) -> bool {
    if state.realtime.message_client(client_id, TOPIC, message) {
        return true;
    }
    if client_id.len() + message.len() > MAX_RELAY_BYTES {
        return false;
    }
    let outcome = relay::send(state, client_id, TOPIC, message, relay::Until::Taken).await;
    matches!(outcome, relay::Outcome::Done(_))
}

fn redirect_to(status: StatusCode, location: &'static str) -> Response {
    let mut response = status.into_response();
    response
        .headers_mut()
        .insert(header::LOCATION, HeaderValue::from_static(location));
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_message_carries_state_code_and_only_a_real_error() {
        let data = RedirectData::from_pairs(
            [
                ("state", json!("c1")),
                ("code", json!("abc")),
                ("user", json!("{\"name\":{}}")),
                ("code", json!("second")),
            ]
            .map(|(k, v)| (k.to_owned(), v)),
        );
        assert_eq!(data.message(), r#"{"state":"c1","code":"abc"}"#);
        let failed = RedirectData::from_pairs(
            [("state", json!("c1")), ("error", json!("access_denied"))]
                .map(|(k, v)| (k.to_owned(), v)),
        );
        assert_eq!(
            failed.message(),
            r#"{"state":"c1","code":"","error":"access_denied"}"#
        );
    }
}
