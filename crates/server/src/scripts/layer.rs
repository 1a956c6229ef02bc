//! The HTTP side of hooks: `routerAdd` routes answered by scripts, and `routerUse`
//! middlewares run around every request (system routes included), as PocketBase runs them.
//!
//! A custom route's body is read whole (within the body limit) before the script runs, so
//! `e.requestInfo()` and `toString(e.request.body)` work. Around a system route the body is
//! left to the route: a global middleware sees the headers, query and auth, not the body.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::body::{Body, Bytes};
use axum::extract::Request;
use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use hooks::Link;
use serde_json::{Map, Value, json};

use super::host::{AppHost, wire};
use super::{Scripts, api_error, lock};
use crate::chain::Continue;
use crate::error::ApiError;
use crate::state::SharedState;

/// The middleware: custom routes first, then global middlewares around the system routes.
pub async fn layer<N: Continue>(state: SharedState, request: Request, next: N) -> Response {
    let Some(scripts) = super::of(&state).cloned() else {
        return next.run(request).await;
    };
    let registry = scripts.registry().clone();
    if registry.routes.is_empty() && registry.global_middlewares.is_empty() {
        return next.run(request).await;
    }
    let route = scripts.route_for(request.method().as_str(), request.uri().path());
    // The script paths are boxed: their futures are large, and without the box every
    // request's future would carry their size.
    if let Some((index, values)) = route {
        return Box::pin(custom_route(state, scripts, index, values, request)).await;
    }
    if registry.global_middlewares.is_empty() {
        return next.run(request).await;
    }
    Box::pin(around_system_route(state, scripts, request, next)).await
}

/// The priority of PocketBase's own auth-loading middleware.
const LOAD_AUTH_PRIORITY: i64 = -1020;

/// Global and route middlewares in PocketBase's order (stable by priority, globals first on
/// ties), then the handler.
fn links(scripts: &Scripts, route: Option<usize>) -> Vec<Link> {
    let registry = scripts.registry();
    let mut middlewares: Vec<(i64, usize, Link)> = registry
        .global_middlewares
        .iter()
        .map(|m| (m.priority, 0, m.link.clone()))
        .collect();
    if let Some(route) = route.and_then(|i| registry.routes.get(i)) {
        middlewares.extend(
            route
                .middlewares
                .iter()
                .map(|m| (m.priority, 1, m.link.clone())),
        );
    }
    middlewares.sort_by_key(|(priority, group, _)| (*priority, *group));
    // PocketBase loads the auth token in a middleware of priority -1020: the ones before it
    // run with no `e.auth` yet.
    let auth_at = middlewares
        .iter()
        .position(|(priority, _, _)| *priority >= LOAD_AUTH_PRIORITY)
        .unwrap_or(middlewares.len());
    let mut out: Vec<Link> = middlewares.into_iter().map(|(_, _, l)| l).collect();
    if auth_at > 0 {
        out.insert(
            auth_at,
            Link::Native {
                native: "loadAuth".into(),
                args: Vec::new(),
            },
        );
    }
    if let Some(route) = route.and_then(|i| registry.routes.get(i)) {
        out.push(route.handler.clone());
    }
    out
}

/// The request as scripts see it.
pub(crate) async fn describe(
    state: &SharedState,
    parts: &axum::http::request::Parts,
    path_values: HashMap<String, String>,
    body: Option<&Bytes>,
) -> Value {
    let mut headers: Map<String, Value> = Map::new();
    for (name, value) in &parts.headers {
        let entry = headers
            .entry(name.as_str().to_owned())
            .or_insert_with(|| Value::Array(Vec::new()));
        if let (Value::Array(list), Ok(v)) = (entry, value.to_str()) {
            list.push(Value::String(v.to_owned()));
        }
    }
    let auth = match crate::extract::header_token(&parts.headers) {
        Some(token) => crate::auth::token::resolve_auth_token(state, token).await,
        None => domain::AuthContext::Guest,
    };
    let auth = match &auth {
        domain::AuthContext::Record {
            collection, record, ..
        } => wire(collection, record),
        domain::AuthContext::Guest => Value::Null,
    };
    let peer = crate::peer::of(&parts.extensions)
        .map(|peer| peer.ip().to_string())
        .unwrap_or_else(|| "127.0.0.1".into());
    let content_type = parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    let text = body.map(|b| String::from_utf8_lossy(b).into_owned());
    let form = match (
        &text,
        content_type.starts_with("application/x-www-form-urlencoded"),
    ) {
        (Some(text), true) => {
            let pairs: Vec<(String, String)> = serde_urlencoded::from_str(text).unwrap_or_default();
            let mut form: Map<String, Value> = Map::new();
            for (k, v) in pairs {
                let entry = form.entry(k).or_insert_with(|| Value::Array(Vec::new()));
                if let Value::Array(list) = entry {
                    list.push(Value::String(v));
                }
            }
            Value::Object(form)
        }
        _ => Value::Null,
    };
    json!({
        "method": parts.method.as_str(),
        "host": parts.headers.get(header::HOST).and_then(|v| v.to_str().ok()).unwrap_or(""),
        "path": parts.uri.path(),
        "rawQuery": parts.uri.query().unwrap_or(""),
        "headers": headers,
        "pathValues": path_values,
        "body": text,
        "form": form,
        "auth": auth,
        "remoteIP": peer,
        "realIP": peer,
    })
}

async fn custom_route(
    state: SharedState,
    scripts: Arc<Scripts>,
    index: usize,
    values: HashMap<String, String>,
    request: Request,
) -> Response {
    let (parts, body) = request.into_parts();
    let limit = state.config.body_limit;
    let body = match axum::body::to_bytes(body, limit).await {
        Ok(bytes) => bytes,
        Err(_) => return ApiError::too_large().into_response(),
    };
    let described = describe(&state, &parts, values, Some(&body)).await;
    let fields = fields_param(parts.uri.query());
    let host = Arc::new(AppHost::new(state.clone(), scripts.clone()));
    let answer = scripts
        .engine
        .call(
            "route",
            json!({ "links": links(&scripts, Some(index)), "request": described, "core": false }),
            host,
        )
        .await;
    match answer {
        Ok(answer) => render(
            &answer["response"],
            fields.as_deref(),
            parts.method == axum::http::Method::HEAD,
        ),
        Err(error) => api_error(error, ApiError::bad_request()).into_response(),
    }
}

async fn around_system_route<N: Continue>(
    state: SharedState,
    scripts: Arc<Scripts>,
    request: Request,
    next: N,
) -> Response {
    let (parts, body) = request.into_parts();
    let described = describe(&state, &parts, HashMap::new(), None).await;
    let pending: Arc<Mutex<Option<(N, Request)>>> = Arc::new(Mutex::new(Some((
        next,
        Request::from_parts(parts.clone(), body),
    ))));
    let produced: Arc<Mutex<Option<Response>>> = Arc::new(Mutex::new(None));
    let handle = tokio::runtime::Handle::current();
    let (p, r) = (pending.clone(), produced.clone());
    let core: super::host::Core = Box::new(move |_args| {
        let taken = lock(&p).take();
        if let Some((next, request)) = taken {
            let response = handle.block_on(next.run(request));
            *lock(&r) = Some(response);
        }
        Ok(Value::Null)
    });
    let host = Arc::new(AppHost::new(state.clone(), scripts.clone()).with_core(core));
    let answer = scripts
        .engine
        .call(
            "route",
            json!({ "links": links(&scripts, None), "request": described, "core": true }),
            host,
        )
        .await;
    let fields = fields_param(parts.uri.query());
    match answer {
        Ok(answer) => {
            let written = answer.get("response").filter(|r| !r.is_null());
            if let Some(response) = written {
                return render(
                    response,
                    fields.as_deref(),
                    parts.method == axum::http::Method::HEAD,
                );
            }
            let produced = lock(&produced).take();
            match produced {
                Some(mut response) => {
                    add_script_headers(&mut response, &answer);
                    response
                }
                // The chain ended without reaching the route: an empty 200, as PocketBase.
                None => empty_ok(),
            }
        }
        Err(error) => api_error(error, ApiError::bad_request()).into_response(),
    }
}

/// Headers a middleware set with `e.response.header()` around a system route.
fn add_script_headers(response: &mut Response, answer: &Value) {
    let Some(headers) = answer.get("headers").and_then(Value::as_object) else {
        return;
    };
    for (name, values) in headers {
        let Ok(name) = HeaderName::from_bytes(name.as_bytes()) else {
            continue;
        };
        let mut first = true;
        for value in values.as_array().into_iter().flatten() {
            if let Some(Ok(value)) = value.as_str().map(HeaderValue::from_str) {
                if first {
                    response.headers_mut().insert(name.clone(), value);
                    first = false;
                } else {
                    response.headers_mut().append(name.clone(), value);
                }
            }
        }
    }
}

fn empty_ok() -> Response {
    let mut response = Response::new(Body::empty());
    response
        .headers_mut()
        .insert(header::CONTENT_LENGTH, HeaderValue::from_static("0"));
    response
}

fn fields_param(query: Option<&str>) -> Option<String> {
    let pairs: Vec<(String, String)> = serde_urlencoded::from_str(query.unwrap_or("")).ok()?;
    pairs
        .into_iter()
        .find(|(k, _)| k == "fields")
        .map(|(_, v)| v)
}

/// A response a script wrote: `{status, type, body, headers, json}`; `null` is PocketBase's
/// empty 200.
pub(crate) fn render(response: &Value, fields: Option<&str>, head: bool) -> Response {
    if response.is_null() {
        return empty_ok();
    }
    let status = response
        .get("status")
        .and_then(Value::as_u64)
        .and_then(|s| u16::try_from(s).ok())
        .and_then(|s| StatusCode::from_u16(s).ok())
        .unwrap_or(StatusCode::OK);
    let mut body = response
        .get("body")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_owned();
    if response.get("json").and_then(Value::as_bool) == Some(true)
        && let Some(fields) = fields.filter(|f| !f.is_empty())
        && let Ok(mut value) = serde_json::from_str::<Value>(&body)
        && crate::response::apply_fields(&mut value, fields).is_ok()
    {
        body = value.to_string();
    }
    let length = body.len();
    let mut out = if head || status == StatusCode::NO_CONTENT || status == StatusCode::NOT_MODIFIED
    {
        Response::new(Body::empty())
    } else {
        Response::new(Body::from(body))
    };
    *out.status_mut() = status;
    if let Some(kind) = response.get("type").and_then(Value::as_str)
        && let Ok(value) = HeaderValue::from_str(kind)
    {
        out.headers_mut().insert(header::CONTENT_TYPE, value);
    }
    if status != StatusCode::NO_CONTENT && status != StatusCode::NOT_MODIFIED {
        out.headers_mut()
            .insert(header::CONTENT_LENGTH, HeaderValue::from(length));
    }
    if let Some(headers) = response.get("headers").and_then(Value::as_object) {
        for (name, values) in headers {
            let Ok(name) = HeaderName::from_bytes(name.as_bytes()) else {
                continue;
            };
            if name == header::CONTENT_LENGTH {
                continue;
            }
            for value in values.as_array().into_iter().flatten() {
                if let Some(Ok(value)) = value.as_str().map(HeaderValue::from_str) {
                    out.headers_mut().append(name.clone(), value);
                }
            }
        }
    }
    out
}
