//! Realtime over server-sent events, as PocketBase speaks it: `GET /api/realtime` opens a
//! stream that starts with `PB_CONNECT`; `POST /api/realtime` replaces the client's
//! subscriptions and binds its auth; record changes arrive as one message per matching
//! subscription, named by the subscription string itself.
//!
//! Changes come from the store's durable change log (`hub`), never from the handlers, so
//! every committed write is published — whatever wrote it — and nothing that rolled back is.

mod hub;
mod subscription;

#[cfg(test)]
mod tests;

use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::rejection::BytesRejection;
use axum::extract::{ConnectInfo, FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use domain::{AuthContext, FieldError, ValidationErrors};
use serde_json::Value;
use tokio::sync::mpsc;
use tokio::time::Instant;

pub use hub::{Hub, RealtimeConfig};

use hub::Client;
use subscription::Subscription;

use crate::error::{ApiError, ApiResult};
use crate::extract::Auth;
use crate::state::SharedState;

/// Most subscriptions per client, and longest subscription string (in characters).
const MAX_SUBSCRIPTIONS: usize = 1000;
const MAX_SUBSCRIPTION_LEN: usize = 2500;

pub fn router() -> Router<SharedState> {
    Router::new().route("/api/realtime", get(connect).post(subscribe))
}

/// Starts the hub's fan-out (and with it change-log pruning) in the background when a tokio
/// runtime is there; otherwise the first stream starts it.
pub fn spawn_hub(state: &SharedState) {
    if let Ok(runtime) = tokio::runtime::Handle::try_current() {
        let state = Arc::clone(state);
        runtime.spawn(async move { state.realtime.ensure_started(&state).await });
    }
}

/// `GET /api/realtime`: registers a client and streams its messages. No auth is read here;
/// it is bound by the first authenticated subscription request.
async fn connect(State(state): State<SharedState>, PeerIp(ip): PeerIp) -> Response {
    let hub = state.realtime.clone();
    hub.ensure_started(&state).await;
    let (client, receiver) = hub.connect(ip);
    let body = Body::from_stream(client_stream(hub, client, receiver));
    let mut response = body.into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert("x-accel-buffering", HeaderValue::from_static("no"));
    response
}

/// A client's connection: its queue, its deadlines, and its registration, which ends with
/// the stream (the guard's drop forgets the client).
struct Connection {
    hub: Hub,
    client: Arc<Client>,
    receiver: mpsc::Receiver<String>,
    idle_deadline: Instant,
    end: Instant,
}

impl Drop for Connection {
    fn drop(&mut self) {
        tracing::debug!(client = %self.client.id, "realtime: stream ended");
        self.hub.disconnect(&self.client.id);
    }
}

/// The SSE body: queued frames until the client is dropped by the hub, goes idle (no message
/// sent for the idle timeout), reaches the maximum lifetime, or the server shuts down.
fn client_stream(
    hub: Hub,
    client: Arc<Client>,
    receiver: mpsc::Receiver<String>,
) -> impl futures_util::Stream<Item = Result<String, Infallible>> + Send {
    let now = Instant::now();
    let config = hub.config().clone();
    let connection = Connection {
        hub,
        client,
        receiver,
        idle_deadline: now + config.idle_timeout,
        end: now + config.max_lifetime,
    };
    futures_util::stream::unfold(connection, move |mut connection| async move {
        if connection.client.is_closed() || connection.hub.is_shutting_down() {
            return None;
        }
        let deadline = connection.idle_deadline.min(connection.end);
        let next = tokio::select! {
            biased;
            () = connection.client.kick.notified() => None,
            frame = connection.receiver.recv() => frame,
            () = tokio::time::sleep_until(deadline) => None,
        };
        let frame = next?;
        if connection.client.is_closed() {
            return None;
        }
        connection.idle_deadline = Instant::now() + config.idle_timeout;
        Some((Ok(frame), connection))
    })
}

/// `POST /api/realtime`: replaces the client's subscriptions and binds the request's auth.
async fn subscribe(
    State(state): State<SharedState>,
    PeerIp(ip): PeerIp,
    Auth(auth): Auth,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<StatusCode> {
    let body = body.map_err(|_| ApiError::too_large())?;
    let form = if body.iter().all(u8::is_ascii_whitespace) {
        Value::Object(Default::default())
    } else {
        serde_json::from_slice::<Value>(&body).map_err(|_| ApiError::bad_request())?
    };
    let Value::Object(form) = form else {
        return Err(ApiError::bad_request());
    };
    let client_id = match form.get("clientId") {
        None | Some(Value::Null) => "",
        Some(Value::String(id)) => id.as_str(),
        Some(_) => return Err(ApiError::bad_request()),
    };
    let subscriptions: Vec<&str> = match form.get("subscriptions") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(items)) => items
            .iter()
            .map(|item| item.as_str().ok_or_else(ApiError::bad_request))
            .collect::<ApiResult<_>>()?,
        Some(_) => return Err(ApiError::bad_request()),
    };

    let mut errors = ValidationErrors::new();
    if client_id.is_empty() {
        errors.add("clientId", FieldError::required());
    }
    if subscriptions.len() > MAX_SUBSCRIPTIONS {
        errors.add("subscriptions", too_long(MAX_SUBSCRIPTIONS));
    } else {
        for (index, topic) in subscriptions.iter().enumerate() {
            if topic.chars().count() > MAX_SUBSCRIPTION_LEN {
                errors.add(
                    &format!("subscriptions.{index}"),
                    too_long(MAX_SUBSCRIPTION_LEN),
                );
            }
        }
    }
    if !errors.is_empty() {
        return Err(ApiError::validation(
            "Something went wrong while processing your request.",
            errors,
        ));
    }

    let client = state
        .realtime
        .client(client_id)
        .ok_or_else(|| ApiError::not_found_msg("Missing or invalid client id."))?;
    // FIXME(#6): behind a trusted proxy PocketBase compares the forwarded client IPs; this
    // compares peer addresses only.
    if client.ip.is_some() && ip.is_some() && client.ip != ip {
        return Err(ApiError::bad_request_msg("Invalid realtime client."));
    }
    let current = client.auth();
    if !current.is_guest() && !same_identity(&current, &auth) {
        return Err(ApiError::forbidden(
            "The current and the previous request authorization don't match.",
        ));
    }
    let subscriptions = subscriptions.into_iter().map(Subscription::parse).collect();
    client.set(auth, subscriptions);
    Ok(StatusCode::NO_CONTENT)
}

/// The peer address of the connection, when the server was started with it.
struct PeerIp(Option<IpAddr>);

impl<S: Send + Sync> FromRequestParts<S> for PeerIp {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Ok(PeerIp(
            parts
                .extensions
                .get::<ConnectInfo<SocketAddr>>()
                .map(|info| info.0.ip()),
        ))
    }
}

/// Both are the same auth record.
fn same_identity(a: &AuthContext, b: &AuthContext) -> bool {
    match (a, b) {
        (
            AuthContext::Record {
                collection: ca,
                record: ra,
                ..
            },
            AuthContext::Record {
                collection: cb,
                record: rb,
                ..
            },
        ) => ca.id == cb.id && ra.id() == rb.id(),
        _ => false,
    }
}

/// `validation_length_too_long`, as ozzo-validation words a `Length(0, max)` failure.
fn too_long(max: usize) -> FieldError {
    FieldError::new(
        "validation_length_too_long",
        format!("The length must be no more than {max}."),
    )
    .with_param("max", max)
    .with_param("min", 0)
}
