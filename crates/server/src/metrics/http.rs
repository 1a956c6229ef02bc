//! The HTTP side of the metrics: one counter per (method, route template, status) and one
//! latency histogram per (method, route template), recorded by a layer around every route.
//! The template comes from axum's `MatchedPath`, so `/api/collections/{collection}/records/{id}`
//! is one series however many records there are; what no route matched is `unmatched`.

use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::Response;

/// The route label of a request no route matched.
pub const UNMATCHED: &str = "unmatched";

/// The request metrics of one request: wraps every route (and the fallback) of the API router,
/// around the hooks, body limit and header layers (`middleware::wrap` puts it where the route
/// templates are still known); the CORS, panic and request-log layers outside it are not timed.
pub async fn track(request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = method_label(request.method());
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| UNMATCHED.to_owned(), |path| path.as_str().to_owned());
    let response = next.run(request).await;
    let status = response.status().as_u16().to_string();
    metrics::counter!(
        "plinth_http_requests_total",
        "method" => method,
        "route" => route.clone(),
        "status" => status
    )
    .increment(1);
    metrics::histogram!(
        "plinth_http_request_duration_seconds",
        "method" => method,
        "route" => route
    )
    .record(started.elapsed().as_secs_f64());
    response
}

/// The method as a label: the usual few by name, anything else `other` (methods are client
/// input and must not grow the label set).
fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PATCH => "PATCH",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}
