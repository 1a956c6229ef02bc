//! Realtime over server-sent events, as PocketBase speaks it: `GET /api/realtime` opens a
//! stream that starts with `PB_CONNECT`; `POST /api/realtime` replaces the client's
//! subscriptions and binds its auth; record changes arrive as one message per matching
//! subscription, named by the subscription string itself.
//!
//! Changes come from the store's durable change log (`fanout`), never from the handlers, so
//! every committed write is published — whatever wrote it — and nothing that rolled back is.
//! The hub the handlers and the fan-out share is on the ground floor ([`crate::state::hub`]).

mod fanout;
mod relay;
mod subscription;

#[cfg(test)]
mod tests;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use crate::routing::{Routes, post};
use axum::body::{Body, Bytes};
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, Extension, FromRequestParts, RawQuery, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, Version, header};
use axum::response::{IntoResponse, Response};
use domain::{AuthContext, FieldError, ValidationErrors};
use serde_json::Value;
use tokio::time::Instant;

use subscription::Subscription;

use crate::error::{ApiError, ApiResult};
use crate::extract::Auth;
use crate::handoff::{Handoff, HandoffBody};
use crate::state::SharedState;
use crate::state::hub::{Client, Hub, Refusal};

/// Most subscriptions per client, and longest subscription string (in bytes, as PocketBase
/// counts: 2,000 two-byte characters are too long).
const MAX_SUBSCRIPTIONS: usize = 1000;
const MAX_SUBSCRIPTION_LEN: usize = 2500;

/// The stream's path, where the accept loop offers a [`Handoff`].
pub const STREAM_PATH: &str = "/api/realtime";

pub fn router() -> Routes {
    Routes::new().route(
        STREAM_PATH,
        post(subscribe)
            .body_limit(DefaultBodyLimit::max(MAX_SUBSCRIBE_BODY))
            .get(connect),
    )
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
/// it is bound by the first authenticated subscription request. Past the realtime client
/// caps (a Plinth extension) the answer is 503 (all clients) or 429 (this client IP's; not
/// for loopback or `excludedIPs`).
async fn connect(
    State(state): State<SharedState>,
    PeerAddr(peer): PeerAddr,
    RawQuery(query): RawQuery,
    version: Version,
    handoff: Option<Extension<Arc<Handoff>>>,
    headers: HeaderMap,
) -> Response {
    let hub = state.realtime.clone();
    hub.ensure_started(&state).await;
    let ip = client_ip(&state, &headers, peer).await;
    let per_ip_capped = !exempt_from_per_ip_cap(&state, ip.as_deref()).await;
    let client = match hub.connect_from(ip, per_ip_capped) {
        Ok(client) => client,
        Err(Refusal::Full) => {
            return ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "Too many realtime connections; try again later.",
            )
            .into_response();
        }
        Err(Refusal::TooManyFromIp) => {
            return ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "Too many realtime connections from this address.",
            )
            .into_response();
        }
    };
    if wants_sequence_numbers(query.as_deref()) {
        client
            .numbered
            .store(true, std::sync::atomic::Ordering::Release);
    }
    let body = match handoff {
        // Hyper writes the head and `PB_CONNECT`; `write_stream` the rest, so an idle
        // client does not hold hyper's connection buffers.
        Some(Extension(handoff)) => {
            let mut connection = Connection::new(hub, client);
            let greeting = Bytes::from(connection.greeting());
            let chunked = version != Version::HTTP_10;
            let write_timeout = handoff.write_timeout();
            Body::new(HandoffBody::new(
                handoff,
                greeting,
                Box::new(move |socket| {
                    Box::pin(write_stream(connection, socket, chunked, write_timeout))
                }),
            ))
        }
        None => Body::from_stream(client_stream(hub, client)),
    };
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

/// `?seq=1` (or `true`): the stream numbers its record messages (a Plinth extension).
fn wants_sequence_numbers(query: Option<&str>) -> bool {
    serde_urlencoded::from_str::<Vec<(String, String)>>(query.unwrap_or_default())
        .unwrap_or_default()
        .iter()
        .any(|(key, value)| key == "seq" && matches!(value.as_str(), "1" | "true"))
}

/// The client IP as PocketBase resolves it: the configured trusted proxy header when the
/// request has it, else the peer address. Also brings the `realtime` settings section into
/// the hub, so a new stream starts with the current lifetimes.
async fn client_ip(
    state: &SharedState,
    headers: &HeaderMap,
    peer: Option<SocketAddr>,
) -> Option<String> {
    match crate::settings::current(state).await {
        Ok(settings) => {
            state.realtime.apply_settings(&settings.realtime);
            crate::settings::rate_limit::client_ip(headers, peer, &settings.trusted_proxy)
        }
        Err(_) => peer.map(|addr| addr.ip().to_string()),
    }
}

/// Whether a client IP is exempt from the per-IP realtime cap (the total cap still applies):
/// a loopback address, which behind a local reverse proxy without a configured
/// `trustedProxy` is every client of the site, or one the rate-limit settings exclude.
async fn exempt_from_per_ip_cap(state: &SharedState, ip: Option<&str>) -> bool {
    let Some(ip) = ip else {
        return false;
    };
    if ip
        .parse::<std::net::IpAddr>()
        .is_ok_and(|addr| addr.is_loopback())
    {
        return true;
    }
    crate::settings::current(state)
        .await
        .is_ok_and(|settings| settings.rate_limits.excluded_ips.iter().any(|x| x == ip))
}

/// A client's connection: its deadlines and its registration, which ends with the stream
/// (the guard's drop forgets the client).
struct Connection {
    hub: Hub,
    client: Arc<Client>,
    /// `PB_CONNECT` has gone out.
    greeted: bool,
    started: Instant,
    last_sent: Instant,
}

impl Drop for Connection {
    fn drop(&mut self) {
        tracing::debug!(client = %self.client.id, "realtime: stream ended");
        self.hub.disconnect(&self.client.id);
    }
}

impl Connection {
    fn new(hub: Hub, client: Arc<Client>) -> Connection {
        let now = Instant::now();
        Connection {
            hub,
            client,
            greeted: false,
            started: now,
            last_sent: now,
        }
    }

    /// The `PB_CONNECT` frame, which opens every stream.
    fn greeting(&mut self) -> String {
        self.greeted = true;
        self.last_sent = Instant::now();
        let seq = self
            .client
            .numbered
            .load(std::sync::atomic::Ordering::Acquire)
            .then(|| self.hub.cursor());
        crate::state::hub::connect_frame(&self.client.id, seq)
    }

    /// The next queued frame if one is there now, unless the stream is over.
    fn ready_frame(&mut self) -> Option<String> {
        if self.client.is_closed() || self.hub.is_shutting_down() {
            return None;
        }
        let frame = self.client.pop_frame()?;
        self.last_sent = Instant::now();
        Some(frame)
    }

    /// `PB_CONNECT`, then queued messages until the client is dropped by the hub, goes idle
    /// (no message sent for the idle timeout), reaches the maximum lifetime, or the server
    /// shuts down: `None` then. The lifetimes are read on every wake-up, so new settings
    /// apply to open streams too. Cancel-safe: a frame leaves the queue only when returned.
    async fn next_frame(&mut self) -> Option<String> {
        loop {
            if self.client.is_closed() || self.hub.is_shutting_down() {
                return None;
            }
            if !self.greeted {
                return Some(self.greeting());
            }
            if let Some(frame) = self.ready_frame() {
                return Some(frame);
            }
            let config = self.hub.config();
            let deadline =
                (self.last_sent + config.idle_timeout).min(self.started + config.max_lifetime);
            tokio::select! {
                biased;
                () = self.client.kick.notified() => {}
                () = tokio::time::sleep_until(deadline) => return None,
            }
        }
    }
}

/// The SSE body streamed through hyper, for a server that cannot hand the socket over (see
/// [`crate::handoff`]).
fn client_stream(
    hub: Hub,
    client: Arc<Client>,
) -> impl futures_util::Stream<Item = Result<String, Infallible>> + Send {
    futures_util::stream::unfold(Connection::new(hub, client), |mut connection| async move {
        let frame = connection.next_frame().await?;
        Some((Ok(frame), connection))
    })
}

/// Frames taken from the queue for one write, at most (about): a backlog goes out in a few
/// large writes rather than one per message.
const WRITE_BATCH_BYTES: usize = 64 << 10;

/// The rest of a handed-off stream: writes its frames to the socket (in HTTP/1.1 chunks when
/// `chunked`) until the stream ends, the client leaves (its side reads as closed) or a write
/// makes no progress for `write_timeout`. A stream that ends on the server's side ends its
/// body and closes the connection.
async fn write_stream(
    mut connection: Connection,
    mut socket: Box<dyn crate::handoff::Socket>,
    chunked: bool,
    write_timeout: std::time::Duration,
) {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    // A client sends nothing after its request; what it does send is read and dropped.
    let mut stray = [0u8; 64];
    loop {
        let frame = tokio::select! {
            biased;
            frame = connection.next_frame() => frame,
            read = socket.read(&mut stray) => match read {
                Ok(n) if n > 0 => continue,
                _ => return,
            },
        };
        let Some(frame) = frame else {
            break;
        };
        let mut out = Vec::with_capacity(frame.len() + 16);
        put_frame(&mut out, &frame, chunked);
        while out.len() < WRITE_BATCH_BYTES {
            let Some(frame) = connection.ready_frame() else {
                break;
            };
            put_frame(&mut out, &frame, chunked);
        }
        if !write_moving(&mut socket, &out, write_timeout).await {
            return;
        }
    }
    if !chunked || write_moving(&mut socket, b"0\r\n\r\n", write_timeout).await {
        let _ = tokio::time::timeout(write_timeout, socket.shutdown()).await;
    }
}

/// Writes and flushes `bytes`, failing (`false`) when the socket fails or `limit` passes
/// without a byte moving: the accept loop's write timeout, for a socket hyper no longer has.
async fn write_moving(
    socket: &mut Box<dyn crate::handoff::Socket>,
    mut bytes: &[u8],
    limit: std::time::Duration,
) -> bool {
    use tokio::io::AsyncWriteExt as _;
    while !bytes.is_empty() {
        match tokio::time::timeout(limit, socket.write(bytes)).await {
            Ok(Ok(n)) if n > 0 => bytes = &bytes[n..],
            _ => return false,
        }
    }
    matches!(
        tokio::time::timeout(limit, socket.flush()).await,
        Ok(Ok(()))
    )
}

/// Appends one SSE frame to `out`, as an HTTP/1.1 chunk when `chunked`.
fn put_frame(out: &mut Vec<u8>, frame: &str, chunked: bool) {
    use std::io::Write as _;
    if chunked {
        // Writing to a Vec cannot fail.
        let _ = write!(out, "{:X}\r\n", frame.len());
        out.extend_from_slice(frame.as_bytes());
        out.extend_from_slice(b"\r\n");
    } else {
        out.extend_from_slice(frame.as_bytes());
    }
}

/// The largest subscription body: 1,000 topics of 2,500 bytes with their JSON around them fit
/// well inside it, and nothing larger can be a valid request, so a bigger body is answered
/// 413 before it is read whole (the server-wide body limit is far larger).
pub const MAX_SUBSCRIBE_BODY: usize = 8 << 20;

/// `POST /api/realtime`: replaces the client's subscriptions and binds the request's auth.
async fn subscribe(
    State(state): State<SharedState>,
    PeerAddr(peer): PeerAddr,
    headers: HeaderMap,
    Auth(auth): Auth,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<StatusCode> {
    let body = body.map_err(|_| ApiError::too_large())?;
    let form = if body.iter().all(u8::is_ascii_whitespace) {
        Value::Object(Default::default())
    } else {
        // Within the depth and value bounds, as every other JSON body is.
        domain::values::parse_json_within_bounds(&body).map_err(|_| ApiError::bad_request())?
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
    // A Plinth extension: resume after this change-log sequence (see `fanout::resume`).
    let after = form.get("after").map(Value::as_u64);

    let mut errors = ValidationErrors::new();
    if let Some(None) = after {
        errors.add(
            "after",
            FieldError::new(
                "validation_invalid_after",
                "Must be the seq of a received message (a non-negative integer).",
            ),
        );
    }
    if client_id.is_empty() {
        errors.add("clientId", FieldError::required());
    }
    if subscriptions.len() > MAX_SUBSCRIPTIONS {
        errors.add("subscriptions", too_long(MAX_SUBSCRIPTIONS));
    } else {
        for (index, topic) in subscriptions.iter().enumerate() {
            if topic.len() > MAX_SUBSCRIPTION_LEN {
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

    // Behind a trusted proxy both sides are the forwarded client IPs, as in PocketBase.
    let ip = client_ip(&state, &headers, peer).await;
    let subscriptions: Vec<String> = subscriptions.into_iter().map(str::to_owned).collect();
    let after = after.flatten();
    let Some(client) = state.realtime.client(client_id) else {
        // The balancer may have sent this request to another node than the stream's.
        return relay::subscribe_elsewhere(&state, client_id, ip, &auth, subscriptions, after)
            .await;
    };
    subscribe_held(&state, &client, ip, auth, subscriptions, after).await
}

/// A subscription request for a client this node holds, after the request's own checks.
pub(crate) async fn subscribe_held(
    state: &SharedState,
    client: &Arc<Client>,
    ip: Option<String>,
    auth: AuthContext,
    subscriptions: Vec<String>,
    after: Option<u64>,
) -> ApiResult<StatusCode> {
    if client.ip.is_some() && ip.is_some() && client.ip.as_deref() != ip.as_deref() {
        return Err(ApiError::bad_request_msg("Invalid realtime client."));
    }
    let current = client.auth();
    if !current.is_guest() && !same_identity(&current, &auth) {
        return Err(ApiError::forbidden(
            "The current and the previous request authorization don't match.",
        ));
    }
    if let Some(after) = after {
        let subscriptions = subscriptions
            .iter()
            .map(|raw| Subscription::parse(raw))
            .collect();
        let hub = state.realtime.clone();
        return match fanout::resume(state, &hub, client, auth, subscriptions, after).await {
            Ok(()) => Ok(StatusCode::NO_CONTENT),
            Err(fanout::ResumeError::Store(error)) => Err(error.into()),
            Err(refusal) => {
                let (code, message) = match refusal {
                    fanout::ResumeError::TooFarBehind => (
                        "validation_resume_too_far_behind",
                        "More changes were missed than the client's queue holds; reload instead.",
                    ),
                    _ => (
                        "validation_resume_unavailable",
                        "The change log no longer holds every change after this seq; reload instead.",
                    ),
                };
                let mut errors = ValidationErrors::new();
                errors.add("after", FieldError::new(code, message));
                Err(ApiError::validation(
                    "Something went wrong while processing your request.",
                    errors,
                ))
            }
        };
    }
    // New topics start after the newest committed change; topics the client keeps keep their
    // start, so nothing between two subscription requests is lost for them.
    let since = state.store.last_change_seq().await?;
    let previous = client.subscriptions();
    let subscriptions = subscriptions
        .iter()
        .map(|raw| {
            let mut subscription = Subscription::parse(raw);
            subscription.since = previous
                .iter()
                .find(|p| *p.raw == **raw)
                .map_or(since, |p| p.since);
            subscription
        })
        .collect();
    client.set(auth, subscriptions);
    Ok(StatusCode::NO_CONTENT)
}

/// The peer address of the connection, when the server was started with it.
struct PeerAddr(Option<SocketAddr>);

impl<S: Send + Sync> FromRequestParts<S> for PeerAddr {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Ok(PeerAddr(crate::peer::of(&parts.extensions)))
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
